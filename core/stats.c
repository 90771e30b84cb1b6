/* stats.c - the registry of per-thread lookup counters and shoal_stats_get, which folds
 * them. The counters live in each thread's TLS (stats.h and the fast_gets field of the
 * inline view in shoal.h); the registry holds their addresses so another thread can read
 * them, and a thread's exit adds its counts to a process total before its TLS goes away.
 * The stats lock is taken once per thread (registration, exit) and by shoal_stats_get,
 * never on a lookup. No fork handler: it would hold one more lock across fork, where
 * jemalloc's prefork handler alone already nears TSan's limit of 64 held locks. A child
 * forked while another thread held the lock would block in shoal_stats_get; its lookups
 * never take the lock.
 */
#include <pthread.h>
#include <string.h>

#include "stats.h"

__thread struct shoal__tstat shoal__tstat __attribute__((tls_model("initial-exec")));

#define FAST SHOAL__CNT_N                 /* index of the inline fast-path count in sums */

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shoal__tstat *registry;      /* live registered threads */
static uint64_t exited[SHOAL__CNT_N + 1];  /* counts of threads that have exited */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static inline uint64_t load(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* shoal__tls.fast_gets is a plain field of the public header's struct, written with
 * __atomic builtins by the inline fast path; read it the same way. */
static inline uint64_t load_fast(const struct shoal__tstat *t)
{
    return __atomic_load_n(t->fast, __ATOMIC_RELAXED);
}

/* Thread exit: the TLS block is still alive here, gone after; fold it into the total. */
static void thread_exit(void *p)
{
    struct shoal__tstat *t = p;
    pthread_mutex_lock(&stats_lock);
    for (int i = 0; i < SHOAL__CNT_N; i++) {
        exited[i] += load(&t->c[i]);
        atomic_store_explicit(&t->c[i], 0, memory_order_relaxed);
    }
    exited[FAST] += load_fast(t);
    __atomic_store_n(t->fast, 0, __ATOMIC_RELAXED);
    SHOAL__DLIST_UNLINK(registry, t);
    pthread_mutex_unlock(&stats_lock);
    /* A later count (another destructor calling shoal) registers the thread again. */
    t->registered = 0;
}

static void exit_key_make(void) { pthread_key_create(&exit_key, thread_exit); }

void shoal__stats_register(void)
{
    struct shoal__tstat *t = &shoal__tstat;
    pthread_once(&exit_key_once, exit_key_make);
    t->fast = &shoal__tls.fast_gets;
    pthread_mutex_lock(&stats_lock);
    SHOAL__DLIST_PUSH(registry, t);
    pthread_mutex_unlock(&stats_lock);
    pthread_setspecific(exit_key, t);
    t->registered = 1;
}

void shoal__stats_forget(void)
{
    /* fork() child: the lock may have been held by a thread that is not here, and the
     * other threads' entries go: their TLS blocks sit in stacks the C library gives to the
     * child's next threads, which start them afresh. Their counts are lost to the child. */
    pthread_mutex_init(&stats_lock, NULL);
    struct shoal__tstat *t = &shoal__tstat;
    t->next = t->prev = NULL;
    registry = t->registered ? t : NULL;
}

SHOAL_API int shoal_stats_get(shoal_stats *out, size_t size)
{
    if (out == NULL || size == 0)
        return shoal__err(SHOAL_EINVAL, "shoal_stats_get: %s", out ? "size is 0: pass "
                          "sizeof(shoal_stats)" : "out is NULL");
    uint64_t sum[SHOAL__CNT_N + 1];
    pthread_mutex_lock(&stats_lock);
    memcpy(sum, exited, sizeof sum);
    for (const struct shoal__tstat *t = registry; t; t = t->next) {
        for (int i = 0; i < SHOAL__CNT_N; i++)
            sum[i] += load(&t->c[i]);
        sum[FAST] += load_fast(t);
    }
    pthread_mutex_unlock(&stats_lock);

    shoal_stats s;
    memset(&s, 0, sizeof s);
    s.get_fast = sum[FAST];
    s.get_slow = sum[SHOAL__CNT_GET_SLOW];
    s.tls_refresh = sum[SHOAL__CNT_REFRESH];
    s.stale_ids = sum[SHOAL__CNT_STALE];
    s.invalid_ids = sum[SHOAL__CNT_INVALID];
    s.get_waits = sum[SHOAL__CNT_GET_WAIT];
    s.wait_sleeps = sum[SHOAL__CNT_WAIT_SLEEP];
    if (shoal__enter() == 0) {   /* spilling counters (io/spill.c): the store's */
        shoal__io_stats(&s);
        shoal__leave();
    }
    /* A caller built against an older header gets its prefix; a newer one reads zeros for
     * counters this library does not have. */
    size_t n = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, n);
    if (size > n)
        memset((char *)out + n, 0, size - n);
    return 0;
}
