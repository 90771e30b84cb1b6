/* thread.c - the thread-local view of the runtime and its refresh, per-thread allocation
 * state and its registry, and the lifecycle lock that orders init, shutdown and thread exit.
 */
#include "thread.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "stats.h"

SHOAL_API __thread struct shoal__tls shoal__tls __attribute__((tls_model("initial-exec"))) = {
    .worker = -1,
};
SHOAL_API uint64_t shoal__epoch;
__thread struct shoal__call shoal__call __attribute__((tls_model("initial-exec")));

/* lifecycle orders init and shutdown; registry_lock guards the thread registry and is
 * the only lock a thread takes at exit (shutdown joins workers while holding lifecycle). */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shoal__thr *registry;
static pthread_key_t thr_key;
static pthread_once_t thr_key_once = PTHREAD_ONCE_INIT;

void shoal__lifecycle_lock(void) { pthread_mutex_lock(&lifecycle); }

void shoal__lifecycle_unlock(void) { pthread_mutex_unlock(&lifecycle); }

uint64_t shoal__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
    uint64_t e = shoal__epoch_load(__ATOMIC_ACQUIRE);
    /* An even epoch has no runtime (rt.h): do not look at shoal__rt, which may be a
     * runtime being freed by a shutdown that is past waiting for this call. */
    shoal__rt_t *rt = (e & 1) ? atomic_load_explicit(&shoal__rt, memory_order_acquire) : NULL;
    if (!rt || rt->epoch != e) {
        shoal__tls.nslots = 0;
        shoal__tls.epoch = e;
        return shoal__not_running();
    }
    shoal__tls.slots = (const unsigned char *)rt->slots;
    shoal__tls.base = rt->base;
    shoal__tls.span = rt->node_span * rt->nnodes;
    shoal__tls.nslots = rt->nslots;
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

static void thr_exit(void *p)
{
    struct shoal__thr *t = p;
    pthread_mutex_lock(&registry_lock);
    /* Shutdown clears shoal__rt before it flushes the registry under this lock, so a
     * runtime seen here stays alive until we unlock. */
    thr_flush(atomic_load_explicit(&shoal__rt, memory_order_acquire), t);
    SHOAL__DLIST_UNLINK(registry, t);
    pthread_mutex_unlock(&registry_lock);
    shoal__tls.thr = NULL;
    free(t);
}

static void thr_key_make(void) { pthread_key_create(&thr_key, thr_exit); }

struct shoal__thr *shoal__thr_slow(void)
{
    struct shoal__thr *t = shoal__tls.thr;
    if (!t) {
        pthread_once(&thr_key_once, thr_key_make);
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        pthread_mutex_lock(&registry_lock);
        SHOAL__DLIST_PUSH(registry, t);
        pthread_mutex_unlock(&registry_lock);
        pthread_setspecific(thr_key, t);
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
    for (struct shoal__thr *t = registry; t; t = t->next) {
        if (t->epoch != rt->epoch)
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
    for (struct shoal__thr *t = registry; t; t = t->next)
        thr_flush(rt, t);
    pthread_mutex_unlock(&registry_lock);
}

/* ---- call markers (rt.h) ----------------------------------------------------------------- */

/* calls_lock guards the registry of call markers. A thread takes it only with its mark even
 * (registration, thread exit), so a quiescer may hold it while it waits for marks. */
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shoal__call *calls;
static pthread_key_t call_key;
static pthread_once_t call_key_once = PTHREAD_ONCE_INIT;

static void call_exit(void *p)
{
    struct shoal__call *c = p;
    pthread_mutex_lock(&calls_lock);
    if (c->registered) {
        SHOAL__DLIST_UNLINK(calls, c);
        c->registered = false;
    }
    pthread_mutex_unlock(&calls_lock);
    /* A later call (another thread-exit hook) must register again: send it to the slow
     * path, which also sets this hook again. */
    shoal__tls.nslots = 0;
}

static void call_key_make(void) { pthread_key_create(&call_key, call_exit); }

static void call_register(struct shoal__call *c)
{
    pthread_once(&call_key_once, call_key_make);
    pthread_mutex_lock(&calls_lock);
    SHOAL__DLIST_PUSH(calls, c);
    c->registered = true;
    pthread_mutex_unlock(&calls_lock);
    pthread_setspecific(call_key, c);
}

int shoal__enter_slow(void)
{
    struct shoal__call *c = &shoal__call;
    if (unlikely(!c->registered) && c->depth == 1) {
        /* Registered with the mark even (see calls_lock), then marked again: the lock's
         * release/acquire orders our checks below after any quiescer's earlier changes. */
        atomic_store_explicit(&c->mark, atomic_load_explicit(&c->mark, memory_order_relaxed) + 1,
                              memory_order_release);
        call_register(c);
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

/* The quiescer's half of the Dekker pair: a full memory barrier on every running thread of
 * this process (membarrier, Linux 4.14), else a global one (4.3), else the TLB-shootdown
 * interrupts of an mprotect that takes a right away from a page every thread may have
 * mapped (what liburcu did before membarrier existed). */
static _Atomic int mb_mode;   /* 0 unknown, 1 private expedited, 2 global, 3 mprotect */

static void asym_barrier(void)
{
    int mode = atomic_load_explicit(&mb_mode, memory_order_relaxed);
    if (mode == 0) {
        mode = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1
               : syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) > 0 ? 2 : 3;
        atomic_store_explicit(&mb_mode, mode, memory_order_relaxed);
    }
    /* membarrier orders the caller's own accesses around it too. */
    if (mode == 1 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    if (mode <= 2 && syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
        return;
    static char *page;
    if (!page) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return;
        page = m;
    }
    *(volatile char *)page = 1;
    mprotect(page, 4096, PROT_READ);
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

void shoal__calls_quiesce(void)
{
    asym_barrier();
    pthread_mutex_lock(&calls_lock);
    for (struct shoal__call *c = calls; c; c = c->next) {
        if (c == &shoal__call)
            continue;
        /* acquire: pairs with the release in shoal__leave. */
        uint64_t m = atomic_load_explicit(&c->mark, memory_order_acquire);
        for (unsigned spins = 0; (m & 1) && atomic_load_explicit(&c->mark, memory_order_acquire) == m;
             spins++) {
            /* A call in progress: blocked ones were woken (rt->down) and return soon. */
            if (spins < 64) {
                sched_yield();
            } else {
                struct timespec ts = { 0, 50000 };
                nanosleep(&ts, NULL);
            }
        }
    }
    pthread_mutex_unlock(&calls_lock);
}

/* ---- fork() ------------------------------------------------------------------------------ */

/* In the child (only the forking thread exists): locks another thread may have held are
 * made anew, and the registries keep this thread alone. Process-private memory only. */
void shoal__threads_forget(bool had_runtime)
{
    if (had_runtime)
        atomic_store_explicit(&forked, 1, memory_order_relaxed);
    pthread_mutex_init(&lifecycle, NULL);
    pthread_mutex_init(&registry_lock, NULL);
    pthread_mutex_init(&calls_lock, NULL);
    struct shoal__thr *t = shoal__tls.thr;
    if (t)
        t->next = t->prev = NULL;
    registry = t;
    struct shoal__call *c = &shoal__call;
    c->next = c->prev = NULL;
    calls = c->registered ? c : NULL;
    atomic_store_explicit(&mb_mode, 0, memory_order_relaxed);   /* register again */
    shoal__tls.nslots = 0;
    shoal__tls.worker = -1;   /* a task that forked: the child runs no worker */
}
