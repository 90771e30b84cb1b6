/* thread.c - the per-thread record (core/store.h) and its one registry: the thread-local
 * view of the runtime and its refresh, the call markers and their quiescing, the lookup
 * counters' totals, the allocation state, one thread-exit hook for all of it; and the
 * lifecycle lock that orders init, shutdown and thread exit.
 */
#include "thread.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "stats.h"
#include "../os/barrier.h"

__thread struct shoal__rec shoal__me __attribute__((tls_model("initial-exec")));

/* lifecycle orders init and shutdown; registry_lock guards the registry of records and the
 * counts of exited threads, and is the only lock a thread takes at exit (shutdown joins
 * workers while holding lifecycle). Nobody waits for anything while holding it: a thread
 * may take it inside a call (its first allocation, shoal_info_get), and a quiescer waits
 * for calls with it released (shoal__calls_quiesce). */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shoal__rec *registry;
static uint64_t exited[SHOAL__CNT_N + 1];   /* counts of threads that have exited */
static uint64_t qgen;                       /* quiesce generation (registry lock held) */
static pthread_key_t rec_key;
static pthread_once_t rec_key_once = PTHREAD_ONCE_INIT;

/* The thread holding lifecycle (pthread_self(), 0: none), so that a lifecycle call from a
 * callback its own thread runs under the lock (an actor's destroy, a ctx_done, a log sink)
 * answers instead of waiting for itself. relaxed: only a thread's own store can make it
 * equal to its own id, and it clears it before it unlocks. */
static _Atomic uintptr_t lifecycle_holder;

void shoal__lifecycle_lock(void)
{
    pthread_mutex_lock(&lifecycle);
    atomic_store_explicit(&lifecycle_holder, (uintptr_t)pthread_self(), memory_order_relaxed);
}

void shoal__lifecycle_unlock(void)
{
    atomic_store_explicit(&lifecycle_holder, 0, memory_order_relaxed);
    pthread_mutex_unlock(&lifecycle);
}

int shoal__lifecycle_reentered(const char *who, int code)
{
    if (atomic_load_explicit(&lifecycle_holder, memory_order_relaxed) !=
        (uintptr_t)pthread_self())
        return 0;
    return shoal__err(code, "%s called from a callback that shoal_init, shoal_attach or "
                      "shoal_shutdown runs on this thread (an actor's destroy, a task's "
                      "ctx_done, a log sink): it would wait for itself; call it once that "
                      "call has returned", who);
}

/* Set in a fork() child of a process that ran a store, until it starts one of its own. */
static _Atomic int forked;

int shoal__not_running(void)
{
    if (atomic_load_explicit(&forked, memory_order_relaxed))
        return shoal__err(SHOAL_ENOTINIT, "this process is a fork() child of a process that "
                          "runs a shoal store: call shoal_attach(name) to join a published "
                          "store or shoal_init() for a new one");
    return shoal__err(SHOAL_ENOTINIT, "runtime not initialized (or shut down): call "
                                      "shoal_init() or shoal_attach() first");
}

void shoal__forked_clear(void) { atomic_store_explicit(&forked, 0, memory_order_relaxed); }

int shoal__tls_refresh(void)
{
    /* acquire: pairs with the release store of shoal__epoch in shoal_init, so the runtime's
     * fields are visible once its epoch is. */
    uint64_t e = shoal__epoch_load(memory_order_acquire);
    /* An even epoch has no runtime (layout/rt.h): do not look at shoal__rt, which may be a
     * runtime being freed by a shutdown that is past waiting for this call. */
    shoal__rt_t *rt = (e & 1) ? atomic_load_explicit(&shoal__rt, memory_order_acquire) : NULL;
    if (!rt || rt->epoch != e) {
        shoal__view_empty(&shoal__tls);
        shoal__tls.epoch = e;
        return shoal__not_running();
    }
    /* Only a registered thread holds a filled view: a runtime going down empties the
     * views of the registry's threads (shoal__threads_flush_all), and the inline get
     * trusts a filled view without comparing epochs. Callers are inside a public call
     * (registered at its entry) or are shoal's own threads, which it stops first. */
    if (unlikely(!shoal__me.registered))
        shoal__rec_register();
    shoal__tls.slots = (const unsigned char *)rt->slots;
    shoal__tls.base = rt->base;
    shoal__tls.span = rt->node_span * rt->nnodes;
    __atomic_store_n(&shoal__tls.nslots, rt->nslots, __ATOMIC_RELAXED);
    shoal__tls.epoch = e;
    shoal__count(SHOAL__CNT_REFRESH);
    return 0;
}

/* Empty t's caches and counters for the runtime of epoch (0: none): whatever they held was
 * given back, or belonged to a store that is gone. Registry lock held (threads_pending
 * reads them from other threads). */
static void thr_reset(struct shoal__thr *t, uint64_t epoch)
{
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++) {
        atomic_store_explicit(&t->credit[n], 0, memory_order_relaxed);
        atomic_store_explicit(&t->objs[n], 0, memory_order_relaxed);
    }
    t->nfree = 0;
    t->chain = 0;
    shoal__arena_thread_forget(t);
    t->epoch = epoch;
}

/* Return a thread's cached slots and blocks to the runtime. Registry lock held. */
static void thr_flush(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (rt && t->epoch == rt->epoch) {
        shoal__slot_flush_all(rt, t);
        shoal__arena_thread_flush(rt, t);
        for (unsigned n = 0; n < rt->nnodes; n++) {
            struct shoal__node_stats *ns = &rt->hdr->node[n];
            atomic_fetch_sub_explicit(&ns->bytes_used,
                                      (uint64_t)atomic_load_explicit(&t->credit[n], memory_order_relaxed),
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&ns->objects,
                                      (uint64_t)(int64_t)atomic_load_explicit(&t->objs[n], memory_order_relaxed),
                                      memory_order_relaxed);
        }
    }
    thr_reset(t, 0);   /* flushed above, or the store is gone */
}

/* shoal__tls.fast_gets is a plain field of the public header's struct, written with
 * __atomic builtins by the inline fast path; read it the same way. */
static inline uint64_t load_fast(const struct shoal__rec *r)
{
    return __atomic_load_n(&r->view->fast_gets, __ATOMIC_RELAXED);
}

/* The one thread-exit hook: the TLS record is still alive here, gone after. Its counters
 * go to the process total, its caches back to the store, and it leaves the registry. */
static void rec_exit(void *p)
{
    struct shoal__rec *r = p;
    struct shoal__thr *t = r->thr;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < SHOAL__CNT_N; i++) {
        exited[i] += atomic_load_explicit(&r->cnt[i], memory_order_relaxed);
        atomic_store_explicit(&r->cnt[i], 0, memory_order_relaxed);
    }
    exited[SHOAL__CNT_N] += load_fast(r);
    __atomic_store_n(&r->view->fast_gets, 0, __ATOMIC_RELAXED);
    /* Shutdown clears shoal__rt before it flushes the registry under this lock, so a
     * runtime seen here stays alive until we unlock. */
    if (t)
        thr_flush(atomic_load_explicit(&shoal__rt, memory_order_acquire), t);
    r->thr = NULL;
    if (r->registered) {
        SHOAL__DLIST_UNLINK(registry, r);
        r->registered = false;
    }
    pthread_mutex_unlock(&registry_lock);
    shoal__tls.thr = NULL;
    free(t);
    /* A later call, count or allocation (another thread-exit hook) registers again: send
     * calls to the slow path, which does. */
    shoal__view_empty(&shoal__tls);
}

static void rec_key_make(void) { pthread_key_create(&rec_key, rec_exit); }

void shoal__rec_register(void)
{
    struct shoal__rec *r = &shoal__me;
    pthread_once(&rec_key_once, rec_key_make);
    shoal__err_prepare();   /* a failure, maybe in a signal handler, then allocates nothing */
    r->view = &shoal__tls;
    r->thr = shoal__tls.thr;
    pthread_mutex_lock(&registry_lock);
    SHOAL__DLIST_PUSH(registry, r);
    r->registered = true;
    pthread_mutex_unlock(&registry_lock);
    pthread_setspecific(rec_key, r);
}

void shoal__recs_sum(uint64_t sum[SHOAL__CNT_N + 1])
{
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i <= SHOAL__CNT_N; i++)
        sum[i] += exited[i];
    for (const struct shoal__rec *r = registry; r; r = r->next) {
        for (int i = 0; i < SHOAL__CNT_N; i++)
            sum[i] += atomic_load_explicit(&r->cnt[i], memory_order_relaxed);
        sum[SHOAL__CNT_N] += load_fast(r);
    }
    pthread_mutex_unlock(&registry_lock);
}

struct shoal__thr *shoal__thr_slow(void)
{
    struct shoal__thr *t = shoal__tls.thr;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        if (!shoal__me.registered)
            shoal__rec_register();
        pthread_mutex_lock(&registry_lock);
        shoal__me.thr = t;
        pthread_mutex_unlock(&registry_lock);
        shoal__tls.thr = t;
    }
    /* A stale state's caches were emptied, and its counters flushed, by the shutdown
     * that made it stale. Under the registry lock: shoal__threads_pending reads epoch and
     * counters from other threads. */
    pthread_mutex_lock(&registry_lock);
    thr_reset(t, shoal__tls.epoch);
    pthread_mutex_unlock(&registry_lock);
    return t;
}

void shoal__threads_pending(shoal__rt_t *rt, int64_t credit[], int64_t objs[])
{
    pthread_mutex_lock(&registry_lock);
    for (struct shoal__rec *r = registry; r; r = r->next) {
        struct shoal__thr *t = r->thr;
        if (!t || t->epoch != rt->epoch)
            continue;
        for (unsigned n = 0; n < rt->nnodes; n++) {
            credit[n] += atomic_load_explicit(&t->credit[n], memory_order_relaxed);
            objs[n] += atomic_load_explicit(&t->objs[n], memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

void shoal__threads_flush_all(shoal__rt_t *rt)
{
    pthread_mutex_lock(&registry_lock);
    for (struct shoal__rec *r = registry; r; r = r->next) {
        /* The inline get compares no epoch (shoal.h): the view goes empty here, after the
         * quiesce that let every refresh from this runtime finish (refreshes happen inside
         * calls or in shoal's own threads, stopped by now), before the table is retired. */
        shoal__view_empty(r->view);
        if (r->thr)
            thr_flush(rt, r->thr);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- call markers (core/store.h) ---------------------------------------------------------- */

int shoal__enter_slow(void)
{
    struct shoal__call *c = &shoal__me.call;
    if (unlikely(!shoal__me.registered) && c->depth == 1) {
        /* Registered with the mark even, then marked again: the registry lock's
         * release/acquire orders our checks below after any quiescer's earlier changes
         * (a quiescer that looked at the registry before we joined it made its change
         * before it looked). */
        atomic_store_explicit(&c->mark, atomic_load_explicit(&c->mark, memory_order_relaxed) + 1,
                              memory_order_release);
        shoal__rec_register();
        atomic_store_explicit(&c->mark, atomic_load_explicit(&c->mark, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
    }
    int rc = shoal__tls_check();
    if (rc == 0) {
        shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
        if (unlikely(atomic_load_explicit(&rt->down, memory_order_relaxed) != 0))
            rc = shoal__down_err(rt);
    }
    if (rc)
        shoal__leave();
    return rc;
}

void shoal__calls_quiesce(void)
{
    shoal__asym_barrier();
    /* Snapshot every registered thread's mark, then wait, with the registry lock released,
     * until each one that was odd has moved on. A thread that joins the registry after
     * the snapshot made its change visible to itself through the lock (see enter_slow),
     * and records that leave are no longer looked at: each look is a fresh walk under the
     * lock. */
    pthread_mutex_lock(&registry_lock);
    uint64_t gen = ++qgen;
    for (struct shoal__rec *r = registry; r; r = r->next) {
        r->qgen = gen;
        /* acquire: pairs with the release in shoal__leave. */
        r->qmark = atomic_load_explicit(&r->call.mark, memory_order_acquire);
    }
    for (unsigned spins = 0;; spins++) {
        bool busy = false;
        for (struct shoal__rec *r = registry; r && !busy; r = r->next)
            /* acquire: as above. */
            busy = r != &shoal__me && r->qgen == gen && (r->qmark & 1) &&
                   atomic_load_explicit(&r->call.mark, memory_order_acquire) == r->qmark;
        if (!busy)
            break;
        /* A call in progress: blocked ones were woken (rt->down) and return soon. */
        pthread_mutex_unlock(&registry_lock);
        if (spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = { 0, 50000 };
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&registry_lock);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- fork() ------------------------------------------------------------------------------ */

/* In the child (only the forking thread exists): locks another thread may have held are
 * made anew, and the registries keep this thread alone. Process-private memory only. */
void shoal__threads_forget(bool had_runtime)
{
    if (had_runtime)
        atomic_store_explicit(&forked, 1, memory_order_relaxed);
    pthread_mutex_init(&lifecycle, NULL);
    atomic_store_explicit(&lifecycle_holder, 0, memory_order_relaxed);
    pthread_mutex_init(&registry_lock, NULL);
    /* The other threads' records go: their TLS blocks sit in stacks the C library gives to
     * the child's next threads, which start them afresh. Their counts are lost to the
     * child; their allocation state was a copy of the parent's. */
    struct shoal__rec *r = &shoal__me;
    r->next = r->prev = NULL;
    registry = r->registered ? r : NULL;
    shoal__asym_barrier_forget();   /* register again */
    shoal__view_empty(&shoal__tls);   /* the inline get would read the parent's table */
    shoal__tls.worker = -1;   /* a task that forked: the child runs no worker */
}
