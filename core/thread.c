/* thread.c - the thread-local view of the runtime and its refresh, per-thread allocation
 * state and its registry, and the lifecycle lock that orders init, shutdown and thread exit.
 */
#include "thread.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../alloc/arena.h"
#include "stats.h"

SHOAL_API __thread struct shoal__tls shoal__tls __attribute__((tls_model("initial-exec"))) = {
    .worker = -1,
};
SHOAL_API uint64_t shoal__epoch;

/* lifecycle orders init and shutdown; registry_lock guards the thread registry and is
 * the only lock a thread takes at exit (shutdown joins workers while holding lifecycle). */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shoal__thr *registry;
static pthread_key_t thr_key;
static pthread_once_t thr_key_once = PTHREAD_ONCE_INIT;

void shoal__lifecycle_lock(void) { pthread_mutex_lock(&lifecycle); }

int shoal__down_err(const shoal__rt_t *rt)
{
    return shoal__err(atomic_load_explicit(&rt->down, memory_order_acquire), "%s", rt->down_msg);
}
void shoal__lifecycle_unlock(void) { pthread_mutex_unlock(&lifecycle); }

uint64_t shoal__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int shoal__tls_refresh(void)
{
    /* acquire: pairs with the release store of shoal__epoch in shoal_init, so the runtime's
     * fields are visible once its epoch is. */
    uint64_t e = shoal__epoch_load(__ATOMIC_ACQUIRE);
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_acquire);
    if (!rt || rt->epoch != e) {
        shoal__tls.nslots = 0;
        shoal__tls.epoch = e;
        if (rt && atomic_load_explicit(&rt->down, memory_order_acquire))
            return shoal__err(SHOAL_ENOTINIT, "%s", rt->down_msg);   /* e.g. the owner is gone */
        return shoal__err(SHOAL_ENOTINIT,
                          "runtime not initialized: call shoal_init() or shoal_attach() first");
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
    memset(t->tcache, 0, sizeof t->tcache);
    memset(t->tiny, 0, sizeof t->tiny);
    t->epoch = epoch;
}

/* Return a thread's cached slots and its tcaches to the runtime. Registry lock held. */
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
    if (t->prev)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next)
        t->next->prev = t->prev;
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
        t->next = registry;
        if (registry)
            registry->prev = t;
        registry = t;
        pthread_mutex_unlock(&registry_lock);
        pthread_setspecific(thr_key, t);
        shoal__tls.thr = t;
    }
    /* A stale state's tcaches were destroyed, and its counters flushed, by the shutdown
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
