/* stats.h - per-thread counters of the lookup paths, folded by shoal_stats_get (stats.c).
 * Each thread writes only its own counters, with a relaxed load and store (no lock prefix,
 * no read-modify-write); shoal_stats_get reads them with relaxed loads from another thread,
 * so the counts are exact for a thread that is quiet and never torn. Counting happens in
 * cold paths only; the inline fast path counts its hits only when the caller is compiled
 * with SHOAL_COUNT_GETS (shoal.h says why). Internal.
 */
#ifndef SHOAL_CORE_STATS_H
#define SHOAL_CORE_STATS_H

#include "rt.h"

enum shoal__cnt {
    SHOAL__CNT_GET_SLOW,     /* gets that entered the slow path */
    SHOAL__CNT_REFRESH,      /* successful refreshes of the thread's cached view */
    SHOAL__CNT_STALE,        /* refs found stale (their object was freed) */
    SHOAL__CNT_INVALID,      /* refs found invalid (null, forged, corrupt) */
    SHOAL__CNT_GET_WAIT,     /* gets that found their object unsealed and waited */
    SHOAL__CNT_WAIT_SLEEP,   /* futex sleeps of waiting threads */
    SHOAL__CNT_N
};

/* One thread's counters and its link in the registry (stats.c). Registered on the thread's
 * first count; at thread exit the counts move to the process total and the link goes. */
struct shoal__tstat {
    _Atomic uint64_t c[SHOAL__CNT_N];
    uint64_t *fast;                     /* &shoal__tls.fast_gets of the same thread */
    struct shoal__tstat *next, *prev;   /* registry, under the stats lock */
    int registered;                     /* read and written by the owning thread only */
};
extern __thread struct shoal__tstat shoal__tstat __attribute__((tls_model("initial-exec")));

SHOAL__HIDDEN void shoal__stats_register(void);
/* In a fork() child: make the registry's lock anew. */
SHOAL__HIDDEN void shoal__stats_forget(void);

/* Count one event of kind c on this thread. Cold paths only. */
static inline void shoal__count(enum shoal__cnt c)
{
    if (unlikely(!shoal__tstat.registered))
        shoal__stats_register();
    _Atomic uint64_t *p = &shoal__tstat.c[c];
    /* relaxed: a single writer; readers only need an untorn value (stats.c). */
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#endif
