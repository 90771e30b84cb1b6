/* deps.c - per-object lists of dependents (tasks waiting for an argument), process-local.
 * A list is a lock-free stack of shoal__dep; completion swaps in CLOSED and fires them all,
 * so a registration either lands before the swap (and is fired) or sees CLOSED (and the
 * registrant proceeds at once). A slot reused for a new pending object gets a NULL list.
 * A registrant first sets DEPS in the slot word while the object is pending: a completion
 * whose CAS did not see it has no list to close and skips the exchange.
 */
#include "../layout/mpseg.h"
#include "store.h"

#define CLOSED ((void *)1)

_Atomic(shoal__dep_fn) shoal__dep_fns[SHOAL__DEP_KINDS];

/* 1 for a complete object, or 2 when it failed (shoal__dep_add_held). */
static inline int complete(uint64_t w) { return shoal__w_state(w) == SHOAL__FAILED ? 2 : 1; }

/* shoal__dep_add once ref's slot s is found; with failed_too, an object found complete
 * answers 2 if it failed. */
SHOAL__INLINE int dep_add_at(shoal_ref ref, shoal__slot *s, shoal__dep *d, bool failed_too)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (!shoal__w_pending(w))
        return failed_too ? complete(w) : 1;
    if (unlikely(shoal__holds != NULL) &&   /* published or attached, and made elsewhere */
        SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) != shoal__rt->proc)
        return shoal__up.dep_add_foreign(ref, s, d);   /* another process seals it */
    /* The completion's CAS either sees DEPS (and exchanges the list, which our push below
     * meets: both are RMWs of the head) or comes first (and we see the new state here).
     * acquire (on both outcomes, C11 wants success at least as strong as failure): a
     * completion seen here is read as the first load above would have; the push publishes
     * d. The caller's reference keeps the generation. */
    while (!(w & SHOAL__W_DEPS)) {
        if (!shoal__w_pending(w))
            return failed_too ? complete(w) : 1;
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_DEPS,
                                                  memory_order_acquire, memory_order_acquire))
            break;
    }
    _Atomic(void *) *head = &shoal__rt->deps[shoal__id_idx(ref.id)];
    void *h = atomic_load_explicit(head, memory_order_acquire);
    do {
        if (h == CLOSED)   /* its acquire load sees the state the completion wrote first */
            return failed_too ? complete(atomic_load_explicit(&s->word, memory_order_acquire))
                              : 1;
        d->next = h;
        /* release: d's fields are visible to the completer's acquire exchange. */
    } while (!atomic_compare_exchange_weak_explicit(head, &h, d, memory_order_release,
                                                    memory_order_acquire));
    return 0;
}

int shoal__dep_add(shoal_ref ref, shoal__dep *d)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    return dep_add_at(ref, s, d, false);
}

int shoal__dep_add_held(shoal_ref ref, shoal__dep *d)
{
    /* The caller's reference keeps the slot and its generation: shoal__slot_of checked the
     * ref when that reference was taken or handed over. */
    shoal__slot *s = &shoal__rt->slots[shoal__id_idx(ref.id)];
    int r = dep_add_at(ref, s, d, true);
    if (r == 1 && unlikely(shoal__holds != NULL))   /* the foreign path answers 1 alone */
        r = complete(atomic_load_explicit(&s->word, memory_order_acquire));
    return r;
}

void shoal__deps_fire(uint64_t idx, int failed)
{
    shoal__deps_fire_rt(shoal__rt, idx, failed);
}

void shoal__deps_fire_rt(shoal__rt_t *rt, uint64_t idx, int failed)
{
    /* acq_rel: acquire sees registered nodes' fields; release orders the state change
     * before any registrant that then reads CLOSED. */
    shoal__dep *d = atomic_exchange_explicit(&rt->deps[idx], CLOSED, memory_order_acq_rel);
    while (d && (void *)d != CLOSED) {
        shoal__dep *next = d->next;   /* read before fire: fire may free d */
        shoal__dep_fire_one(d, failed);
        d = next;
    }
}
