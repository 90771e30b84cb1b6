/* foreign_deps.c - dependents (tasks waiting for an argument) on objects another process
 * creates and seals. The per-slot lists of deps.c are process-local and reset by the
 * creating process, so a dependent on a client's object waits here instead: the owner keeps
 * it in a short list, sets the object's WAITERS bit, and the client that seals the object
 * then wakes the owner's drain thread (shoal__notify_owner), which fires what completed.
 */
#include <pthread.h>
#include <stdlib.h>

#include "mproc.h"

struct fdep { uint64_t id; shoal__dep *d; };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct fdep *list;
static size_t n, cap;
static _Atomic size_t count;   /* n, readable without the lock */

/* Remove d from the list; true if it was there (nobody fired it yet). Lock held. */
static bool take(shoal__dep *d)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].d == d) {
            list[i] = list[--n];
            atomic_store_explicit(&count, n, memory_order_relaxed);
            return true;
        }
    return false;
}

int shoal__dep_add_foreign(shoal_ref ref, shoal__slot *s, shoal__dep *d)
{
    pthread_mutex_lock(&mu);
    if (n == cap) {
        size_t nc = cap ? cap * 2 : 64;
        struct fdep *nl = realloc(list, nc * sizeof *nl);
        if (!nl) {
            pthread_mutex_unlock(&mu);
            return shoal__err(SHOAL_ENOMEM, "out of memory registering a dependency");
        }
        list = nl;
        cap = nc;
    }
    list[n++] = (struct fdep){ ref.id, d };
    atomic_store_explicit(&count, n, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    /* Ask the sealer to tell us. acq_rel: as a waiter's arming in wait.c; a completion that
     * comes after sees the bit and notifies, one that came before is seen here. */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    while (shoal__w_pending(w) && !(w & SHOAL__W_WAITERS) &&
           !atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_WAITERS,
                                                  memory_order_acq_rel, memory_order_acquire)) {
    }
    if (shoal__w_pending(w))
        return 0;
    pthread_mutex_lock(&mu);
    bool mine = take(d);
    pthread_mutex_unlock(&mu);
    return mine ? 1 : 0;   /* complete already: proceed, unless the scan fired it */
}

/* The error an object completed with, as shoal__deps_fire reports it. */
static int failed_code(const shoal__slot *s, uint64_t w)
{
    if (shoal__w_state(w) != SHOAL__FAILED)
        return 0;
    int code = -(int)((__atomic_load_n(&s->aux, __ATOMIC_RELAXED) >> 8) & 0xff);
    return code ? code : SHOAL_ETASK;
}

void shoal__foreign_deps_scan(shoal__rt_t *rt)
{
    if (atomic_load_explicit(&count, memory_order_relaxed) == 0)
        return;
    struct fdep fire[64];
    size_t k;
    do {
        k = 0;
        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < n && k < 64;) {
            uint64_t idx = shoal__id_idx(list[i].id);
            const shoal__slot *s = &rt->slots[idx];
            uint64_t w = idx < rt->nslots ? atomic_load_explicit(&s->word, memory_order_acquire) : 0;
            if (idx < rt->nslots && shoal__w_gen(w) == shoal__id_gen(list[i].id) &&
                shoal__w_pending(w)) {
                i++;
                continue;
            }
            fire[k++] = list[i];
            list[i] = list[--n];
        }
        atomic_store_explicit(&count, n, memory_order_relaxed);
        pthread_mutex_unlock(&mu);
        for (size_t i = 0; i < k; i++) {
            uint64_t idx = shoal__id_idx(fire[i].id);
            uint64_t w = atomic_load_explicit(&rt->slots[idx].word, memory_order_acquire);
            fire[i].d->fire(fire[i].d, shoal__w_gen(w) == shoal__id_gen(fire[i].id)
                                           ? failed_code(&rt->slots[idx], w) : SHOAL_ESTALE);
        }
    } while (k == 64);
}

void shoal__notify_owner(shoal__rt_t *rt)
{
    shoal__wake_proc(rt, 0);
}

void shoal__foreign_deps_forget(void)
{
    /* Shutdown: the scheduler cancels the tasks these belong to; never fire them. */
    pthread_mutex_lock(&mu);
    free(list);
    list = NULL;
    n = cap = 0;
    atomic_store_explicit(&count, 0, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
}
