/* foreign_deps.c - dependents (a task waiting for an argument, a shoal_write_file waiting
 * for its object) on objects another process creates and completes. The per-slot lists of
 * deps.c are process-local and reset by the creating process, so a dependent on another
 * process's object waits here instead, in any process: it keeps a short list, counts it in
 * its process entry (fdeps) and sets the object's WAITERS bit; whoever completes or fails
 * such an object then wakes the drain thread of every process that counts dependents
 * (shoal__notify_foreign), which fires what completed.
 */
#include <pthread.h>
#include <stdlib.h>

#include "mproc.h"

struct fdep { uint64_t id; shoal__dep *d; };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct fdep *list;
static size_t n, cap;
static _Atomic size_t count;   /* n, readable without the lock */
static shoal__rt_t *list_rt;   /* the runtime the list's entries belong to */

/* n changed: publish it here and in this process's entry (completers read that). */
static void set_count(void)
{
    atomic_store_explicit(&count, n, memory_order_relaxed);
    if (list_rt)
        /* relaxed: a registration orders it before its look at the object's word with the
         * seq_cst fence in shoal__dep_add_foreign (partner: the fence in notify below). */
        atomic_store_explicit(&shoal__mp_of(list_rt)->procs[list_rt->proc].fdeps, (uint32_t)n,
                              memory_order_relaxed);
}

/* Remove d from the list; true if it was there (nobody fired it yet). Lock held. */
static bool take(shoal__dep *d)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].d == d) {
            list[i] = list[--n];
            set_count();
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
    list_rt = shoal__rt;
    set_count();
    pthread_mutex_unlock(&mu);
    /* A store-buffer (Dekker) pair with the completer: we store our count (fdeps) and then
     * read the word; it writes the word (completing it) and then reads the counts
     * (shoal__notify_foreign). At least one side must see the other's store: we the
     * completion (and proceed or fire ourselves), or it our count (and wakes our drain
     * thread, whose scan fires us). The word alone does not order that when the WAITERS
     * bit is already set (another registrant, a local waiter): then we only load the
     * word, and nothing synchronises our count with the completer. seq_cst fence, partner:
     * the seq_cst fence in shoal__notify_foreign. Of the two fences one comes first in
     * the single total order: if ours, its load of fdeps sees our count; if its, our load
     * of the word below sees the completion. (On x86 the locked instructions on both sides
     * happened to give this; C11 does not promise it without the fences.) */
    atomic_thread_fence(memory_order_seq_cst);
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
        set_count();
        pthread_mutex_unlock(&mu);
        for (size_t i = 0; i < k; i++) {
            uint64_t idx = shoal__id_idx(fire[i].id);
            uint64_t w = atomic_load_explicit(&rt->slots[idx].word, memory_order_acquire);
            shoal__dep_fire_one(fire[i].d, shoal__w_gen(w) == shoal__id_gen(fire[i].id)
                                               ? failed_code(&rt->slots[idx], w)
                                               : SHOAL_ESTALE);
        }
    } while (k == 64);
}

void shoal__notify_foreign(shoal__rt_t *rt)
{
    /* seq_cst fence, partner: the seq_cst fence in shoal__dep_add_foreign (the store-buffer
     * pair explained there): between the completing RMW of the word, which the caller made,
     * and our loads of the counts. It is also an acquire fence: a registrant whose WAITERS
     * CAS (release) the completing RMW read counted itself before it. */
    atomic_thread_fence(memory_order_seq_cst);
    struct shoal__mp *x = shoal__mp_of(rt);
    for (unsigned p = 0; p < SHOAL__MAX_PROCS; p++)
        if (atomic_load_explicit(&x->procs[p].fdeps, memory_order_relaxed) &&
            atomic_load_explicit(&x->procs[p].state, memory_order_relaxed) == SHOAL__PROC_LIVE)
            shoal__wake_proc(rt, p);
}

void shoal__foreign_deps_forget(void)
{
    /* Shutdown or detach: the scheduler cancels the tasks these belong to, the I/O engine
     * its file operations; never fire them. */
    pthread_mutex_lock(&mu);
    free(list);
    list = NULL;
    n = cap = 0;
    set_count();
    list_rt = NULL;
    pthread_mutex_unlock(&mu);
}

void shoal__foreign_deps_fork_child(void)
{
    /* A fork() child: the list names the parent's dependents (task blocks of a scheduler
     * the child unmapped, write_file states, objects of the parent's store), and the lock
     * may have been held by a thread that is not here. Forgotten without a look, and
     * without touching the store (no fdeps written): a store the child starts later must
     * never fire them. The list's memory is left (another thread may have been moving it). */
    pthread_mutex_init(&mu, NULL);
    list = NULL;
    n = cap = 0;
    atomic_store_explicit(&count, 0, memory_order_relaxed);
    list_rt = NULL;
}
