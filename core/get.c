/* get.c - resolving an ObjectRef. The fast path is shoal__get_inline in shoal.h (inlined
 * into callers and into the exported shoal_get below); this file holds the exported entry
 * points and the cold slow path: refresh a stale view, wait for pending objects, report
 * failed, freed and invalid ones.
 */
#include "probes.h"
#include "store.h"
#include "stats.h"

int (*shoal__help_hook)(void);
void (*shoal__help_while_hook)(const shoal__slot *s, uint64_t gen);
bool (*shoal__nap_hook)(_Atomic uint32_t *word, uint32_t seen, uint64_t ns);
int (*shoal__run_own_hook)(shoal_ref ref);
struct shoal__upcalls shoal__up;

/* The exported get's miss: a result held in the slot (s not NULL), else the slow path.
 * It writes through data and len, which a caller of the library keeps in memory anyway;
 * answering in registers as the header's miss does made every hit of shoal_get set up a
 * frame and leave through the cold section (about 15% a call). */
static __attribute__((noinline, cold)) int get_miss(shoal_ref ref, const uint64_t *s,
                                                    const void **data, size_t *len)
{
    struct shoal__got g;
    if (s && shoal__get_held(s, &g)) {
        *data = g.data;
        *len = (size_t)g.len;
        return 0;
    }
    return shoal__get_slow(ref, -1, data, len);
}

/* The header's hit path with the miss above, a tail call: the hit needs no frame.
 * Parenthesised names: the shoal_get macro in shoal.h must not expand here. */
SHOAL_API int (shoal_get)(shoal_ref ref, const void **data, size_t *len)
{
    if (unlikely(!data || !len))
        return shoal__get_slow(ref, -1, data, len);
    const uint64_t *s;
    if (likely(shoal__get_hit(ref, data, len, &s)))
        return 0;
    return get_miss(ref, s, data, len);
}

SHOAL_API int shoal_get_timeout(shoal_ref ref, int64_t timeout_ns, const void **data,
                                size_t *len)
{
    if (timeout_ns < 0)
        return shoal__get_inline(ref, data, len);
    return shoal__get_slow(ref, timeout_ns, data, len);
}

/* The message of a failed object, as this thread's last error; returns its code. */
static int failed_result(const shoal__slot *s, shoal_ref ref)
{
    int code = -(int)((s->aux >> 8) & 0xff);
    if (code == 0)
        code = SHOAL_ETASK;
    const char *p;
    uint64_t n;
    if (shoal__slot_bytes(s, &p, &n) && n)
        return shoal__err(code, "%.*s", (int)(n < 4096 ? n : 4096), p);
    char kept[512];
    if (shoal__fail_kept(ref, kept, sizeof kept))   /* the store had no room for it */
        return shoal__err(code, "%s", kept);
    return shoal__err(code, "object 0x%016llx failed (%s)", (unsigned long long)ref.id,
                      shoal_strerror(code));
}

/* counted: the caller counted this get's wait in get_waits already (shoal_take's steps). */
static int get_slow(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len,
                    bool counted)
{
    int rc;
    if (!data || !len)
        return shoal__err(SHOAL_EINVAL, "shoal_get: data and len must be non-NULL");
    bool helped = timeout_ns == 0, waited = counted;   /* a zero timeout only looks */
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    for (;;) {
        /* The slot stays the ref's (the index was checked); a new look at the word tells
         * whether the object is still the one named. */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (unlikely(shoal__w_gen(w) != shoal__id_gen(ref.id) ||
                     shoal__w_state(w) == SHOAL__FREE))
            return shoal__slot_of(ref, &err)
                       ? shoal__err(SHOAL_ESTALE, "stale ref 0x%016llx: its object was freed",
                                    (unsigned long long)ref.id)
                       : err;   /* slot_of names why (generations only grow) */
        switch (shoal__w_state(w)) {
        case SHOAL__READY:
            /* A cold object (spilling on) is read now: clear UNREAD so the spiller leaves it
             * alone while references exist, and later gets stay on the fast path. relaxed:
             * the acquire load above ordered the bytes; a spiller's claim of the same word
             * makes this CAS fail and we look again. */
            if (unlikely(w & SHOAL__W_UNREAD) &&
                !atomic_compare_exchange_strong_explicit(&s->word, &w, w & ~SHOAL__W_UNREAD,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed))
                continue;
            const char *p;
            uint64_t n;
            if (unlikely(!shoal__slot_bytes(s, &p, &n)))   /* rt.h: never a wild pointer */
                return shoal__err(SHOAL_EIO, "object 0x%016llx: its slot names bytes outside "
                                  "the store (another process wrote the object table); it "
                                  "cannot be read", (unsigned long long)ref.id);
            *data = p;
            *len = (size_t)n;
            return 0;
        case SHOAL__FAILED:
            return failed_result(s, ref);
        case SHOAL__SPILLING:
        case SHOAL__SPILLED:
        case SHOAL__RESTORING:
            rc = shoal__up.spill_touch(ref, s, timeout_ns);   /* io/spill.c: brings them back */
            if (rc)
                return rc;
            continue;
        default:
            if (!waited)
                shoal__count(SHOAL__CNT_GET_WAIT);
            waited = true;
            if (!helped) {   /* a worker first runs what it can: often the very producer */
                helped = true;
                /* Elsewhere, a get with no time limit of the task this thread just
                 * submitted runs it here when no worker has taken it yet: it would only
                 * wait for it, and a parked worker costs a wake-up (the timed gets keep
                 * their bound: the task could run for longer). */
                if (shoal__tls.worker < 0) {
                    int (*own)(shoal_ref) = shoal__run_own_hook;
                    if (timeout_ns < 0 && own && own(ref))
                        continue;
                    /* The same for a file ingest the I/O thread has not started. */
                    if (timeout_ns < 0 && shoal__up.ingest_take && shoal__up.ingest_take(ref))
                        continue;
                } else {
                    shoal__help_while_pending(s, ref);
                }
                continue;
            }
            rc = shoal__obj_wait(ref, timeout_ns);
            if (rc)
                return rc;
        }
    }
}

int shoal__get_wait(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len,
                    bool counted)
{
    return get_slow(ref, timeout_ns, data, len, counted);
}

SHOAL_API int shoal__get_slow(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len)
{
    SHOAL__PROBE_GET_SLOW(ref.id, timeout_ns);
    shoal__count(SHOAL__CNT_GET_SLOW);
    SHOAL__CALL(get_slow(ref, timeout_ns, data, len, false));
}
