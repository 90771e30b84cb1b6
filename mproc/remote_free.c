/* remote_free.c - bytes freed by a process other than the one that allocated them. Each
 * process's allocator keeps its metadata in that process, so the releaser of an object
 * another process allocated pushes the slot onto the allocator's remote-free stack
 * (layout/mpseg.h) and that process's drain thread gives the bytes back. The stacks of
 * processes that are gone are drained by the owner, which only accounts their bytes: their
 * chunks return whole once none of their objects is left (mproc/publish.c).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../alloc/chunks.h"
#include "mproc.h"
#include "../core/objrefs.h"
#include "../core/thread.h"
#include "../os/futex.h"

#define NAP_NS        10000000u   /* after work, nap 10 ms at a time before a long sleep */
#define NAPS          3
#define CLIENT_WAKE_S 1           /* a client's long sleep: look at the owner once a second */

static pthread_mutex_t procs_mu = PTHREAD_MUTEX_INITIALIZER;
void shoal__procs_lock(void) { pthread_mutex_lock(&procs_mu); }
void shoal__procs_unlock(void) { pthread_mutex_unlock(&procs_mu); }

static void futex_wake(_Atomic uint32_t *w) { shoal__futex_wake(w, INT32_MAX, true); }

static void futex_wait(_Atomic uint32_t *w, uint32_t seen, uint64_t ns)
{
    struct timespec ts = shoal__timespec_ns(ns);
    shoal__futex_wait(w, seen, ns ? &ts : NULL, true);
}

void shoal__wake_proc(shoal__rt_t *rt, unsigned p)
{
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    /* release: pairs with the drainer's load of `wake` before it re-checks its stack. Not
     * FUTEX_PRIVATE: the drainer is another process. */
    atomic_fetch_add_explicit(&P->wake, 1, memory_order_release);
    futex_wake(&P->wake);
}

void shoal__rfree_push(shoal__rt_t *rt, uint32_t idx, unsigned proc)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    struct shoal__proc *P = &x->procs[proc & 0xffu];
    uint64_t head = atomic_load_explicit(&P->rfree, memory_order_relaxed);
    do {
        atomic_store_explicit(&rt->slots[idx].next, (uint32_t)head, memory_order_relaxed);
        /* seq_cst: publishes the link (release, for the drainer's acquire exchange) and is
         * ordered before our load of `sleeping` below against the drainer's store of it. */
    } while (!atomic_compare_exchange_weak_explicit(&P->rfree, &head, idx, memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (head != 0)
        return;   /* not the first: whoever made the stack non-empty woke the drainer */
    /* Read the state after the push: a process marked gone before that is drained by the
     * owner, which the owner's own marking (seq_cst) makes sure to look at. */
    unsigned target = atomic_load_explicit(&P->state, memory_order_seq_cst) == SHOAL__PROC_LIVE
                          ? (proc & 0xffu) : 0;
    if (atomic_load_explicit(&x->procs[target].sleeping, memory_order_seq_cst))
        shoal__wake_proc(rt, target);
}

/* ---- giving slots back -------------------------------------------------------------------- */

static void reclaim(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx, bool mine)
{
    shoal__slot *s = &rt->slots[idx];
    /* A freed slot's word is FREE with no references; we claim it by making the count 1,
     * which nothing else looks at in a FREE slot and the next object overwrites. A repeated
     * or bogus entry (a live object, a slot claimed already) fails here and is ignored.
     * acquire: the word went FREE with an acq_rel CAS after the holders' last reads. */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (shoal__w_state(w) != SHOAL__FREE || (uint32_t)w != 0 ||
        !atomic_compare_exchange_strong_explicit(&s->word, &w, w + 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    uint64_t off = s->off, len = s->len, span = rt->node_span * rt->nnodes;
    if (len) {
        if (off >= span || len > span - off) {
            static _Atomic int told;
            if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
                shoal__log("remote free of slot %u with bytes [%llu, +%llu) outside the store: "
                           "ignored (a process wrote the object table)", idx,
                           (unsigned long long)off, (unsigned long long)len);
        } else {
            uint64_t node = off / rt->node_span;
            /* Ours: checked against our allocator's private records (a refused free stays
             * counted, a leak). Else allocated by a process that is gone: its chunks
             * return whole later (mproc/publish.c). */
            if (!mine || shoal__arena_free_direct(rt, off, len))
                atomic_fetch_sub_explicit(&rt->hdr->node[node].bytes_used, shoal__acct_size(len),
                                          memory_order_relaxed);
        }
    }
    shoal__slot_give(rt, t, idx);
}

size_t shoal__drain(shoal__rt_t *rt, struct shoal__thr *t, unsigned p, bool mine)
{
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    if (atomic_load_explicit(&P->rfree, memory_order_relaxed) == 0)
        return 0;
    /* acquire: pairs with the pushers' seq_cst CAS, so every link in the chain is visible. */
    uint64_t head = atomic_exchange_explicit(&P->rfree, 0, memory_order_acquire);
    uint64_t limit = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed);
    if (limit > rt->nslots)
        limit = rt->nslots;
    size_t n = 0;
    /* Bounded by the table size: a corrupt chain (a cycle) cannot keep us here. */
    while (head != 0 && n < rt->nslots) {
        uint32_t idx = (uint32_t)head;
        if (head >= limit)
            break;
        head = atomic_load_explicit(&rt->slots[idx].next, memory_order_relaxed);
        reclaim(rt, t, idx, mine);
        n++;
    }
    return n;
}

static void free_routed_cb(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *t)
{
    shoal__free_routed(rt, t, idx, oldw);
}

void shoal__free_routed(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx, uint64_t oldw)
{
    shoal__slot *s = &rt->slots[idx];
    if (unlikely(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS)) {
        /* It contains refs (core/objrefs.h): they are released first, and every object that
         * frees in turn comes back here without the flag. */
        shoal__refs_free(rt, idx, oldw, free_routed_cb, t);
        return;
    }
    uint64_t node = s->off / rt->node_span;
    if (node < rt->nnodes)
        atomic_fetch_sub_explicit(&rt->hdr->node[node].objects, 1, memory_order_relaxed);
    if (oldw & SHOAL__W_WAITERS)
        shoal__wake_slot(rt, idx);
    unsigned p = SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED));
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    if (p == rt->proc)
        reclaim(rt, t, idx, true);
    else if (atomic_load_explicit(&P->state, memory_order_acquire) == SHOAL__PROC_LIVE)
        shoal__rfree_push(rt, idx, p);
    else
        reclaim(rt, t, idx, false);
}

/* ---- the drain thread ------------------------------------------------------------------------ */

static struct {
    pthread_t th;
    bool running;
    shoal__rt_t *rt;
    int sock;
    _Atomic int stop;
} drain_g;

/* A client: has the owner shut down, or died (its end of our socket closed)? */
static bool owner_gone(shoal__rt_t *rt, int sock)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    if (atomic_load_explicit(&x->procs[0].state, memory_order_acquire) != SHOAL__PROC_LIVE)
        return true;
    char b;
    ssize_t r = recv(sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The owner: the stacks of processes that are gone (or whose index is free), whose
 * entries are orphans. Under the procs lock so that an index is never handed to a new
 * process while we take its stack. */
static size_t drain_orphans(shoal__rt_t *rt, struct shoal__thr *t, bool *pending)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    size_t n = 0;
    *pending = false;
    shoal__procs_lock();
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++) {
        struct shoal__proc *P = &x->procs[p];
        if (atomic_load_explicit(&P->state, memory_order_seq_cst) == SHOAL__PROC_LIVE)
            continue;
        if (atomic_load_explicit(&P->rfree, memory_order_seq_cst) != 0) {
            n += shoal__drain(rt, t, p, false);
            *pending = true;
        }
    }
    shoal__procs_unlock();
    return n;
}

static void client_owner_gone(shoal__rt_t *rt)
{
    uint64_t e = rt->epoch;
    /* release: as shoal_shutdown's store; every thread's cached view goes stale, so each
     * call answers SHOAL_ENOTINIT until the process calls shoal_shutdown() to detach. The
     * mappings stay valid (we hold the memfds): nothing faults. */
    if (__atomic_compare_exchange_n(&shoal__epoch, &e, e + 1, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        shoal__log("the store's owner (pid %d) is gone: calls now answer SHOAL_ENOTINIT; "
                   "call shoal_shutdown() to detach",
                   (int)atomic_load_explicit(&shoal__mp_of(rt)->procs[0].pid,
                                             memory_order_relaxed));
}

static void *drain_main(void *arg)
{
    (void)arg;
    shoal__rt_t *rt = drain_g.rt;
    struct shoal__proc *me = &shoal__mp_of(rt)->procs[rt->proc];
    struct shoal__thr t;
    memset(&t, 0, sizeof t);
    unsigned idle = 0;
    while (!atomic_load_explicit(&drain_g.stop, memory_order_acquire)) {
        bool orphans = false;
        size_t n = shoal__drain(rt, &t, rt->proc, true);
        if (rt->owner) {
            n += drain_orphans(rt, &t, &orphans);
            shoal__foreign_deps_scan(rt);
        }
        if (t.nfree)
            shoal__slot_flush(rt, &t, t.nfree);
        if (n) {
            idle = 0;
            continue;
        }
        if (!rt->owner && owner_gone(rt, drain_g.sock)) {
            client_owner_gone(rt);
            break;
        }
        /* acquire: pairs with the release bump in shoal__wake_proc. */
        uint32_t seq = atomic_load_explicit(&me->wake, memory_order_acquire);
        if (idle < NAPS) {
            /* Short naps keep `sleeping` clear, so steady traffic costs pushers nothing. */
            idle++;
            futex_wait(&me->wake, seq, NAP_NS);
            continue;
        }
        /* seq_cst: the Dekker pair with the pushers (rfree_push): either they see
         * `sleeping` and wake us, or we see their entry below. */
        atomic_store_explicit(&me->sleeping, 1, memory_order_seq_cst);
        seq = atomic_load_explicit(&me->wake, memory_order_seq_cst);
        bool empty = atomic_load_explicit(&me->rfree, memory_order_seq_cst) == 0;
        if (rt->owner && empty) {
            drain_orphans(rt, &t, &orphans);
            if (t.nfree)
                shoal__slot_flush(rt, &t, t.nfree);
        }
        if (empty && !orphans && !atomic_load_explicit(&drain_g.stop, memory_order_acquire))
            futex_wait(&me->wake, seq, rt->owner ? 0 : (uint64_t)CLIENT_WAKE_S * 1000000000u);
        atomic_store_explicit(&me->sleeping, 0, memory_order_relaxed);
    }
    if (t.nfree)
        shoal__slot_flush(rt, &t, t.nfree);
    return NULL;
}

int shoal__drain_start(shoal__rt_t *rt, int sock)
{
    drain_g.rt = rt;
    drain_g.sock = sock;
    atomic_store_explicit(&drain_g.stop, 0, memory_order_relaxed);
    int e = pthread_create(&drain_g.th, NULL, drain_main, NULL);
    if (e)
        return shoal__err(SHOAL_ENOMEM, "cannot start the remote-free thread: %s", strerror(e));
    drain_g.running = true;
    return 0;
}

void shoal__drain_stop(void)
{
    if (!drain_g.running)
        return;
    /* release: pairs with the drain thread's acquire load of stop. */
    atomic_store_explicit(&drain_g.stop, 1, memory_order_release);
    shoal__wake_proc(drain_g.rt, drain_g.rt->proc);
    pthread_join(drain_g.th, NULL);
    drain_g.running = false;
    /* What was pushed after the thread's last look is given back here, by this thread. */
    struct shoal__thr t;
    memset(&t, 0, sizeof t);
    shoal__drain(drain_g.rt, &t, drain_g.rt->proc, true);
    if (t.nfree)
        shoal__slot_flush(drain_g.rt, &t, t.nfree);
}
