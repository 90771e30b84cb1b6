/* stats.h - per-thread counters of the lookup paths, folded by shoal_stats_get (stats.c).
 * Each thread writes only its own counters, with a relaxed load and store (no lock prefix,
 * no read-modify-write); shoal_stats_get reads them with relaxed loads from another thread,
 * so the counts are exact for a thread that is quiet and never torn. Counting happens in
 * cold paths only; the inline fast path counts its hits only when the caller is compiled
 * with SHOAL_COUNT_GETS (shoal.h says why). Internal.
 */
#ifndef SHOAL_CORE_STATS_H
#define SHOAL_CORE_STATS_H

#include "store.h"

/* The counters (enum shoal__cnt) live in the thread's record (core/store.h), registered
 * on its first count; at thread exit they move to the process total (core/thread.c). */

/* Count one event of kind c on this thread. Slow paths only; always inlined all the same,
 * since get's slow path is a task's every wait for a child still running. */
SHOAL__INLINE void shoal__count(enum shoal__cnt c)
{
    if (unlikely(!shoal__me.registered))
        shoal__rec_register();
    _Atomic uint64_t *p = &shoal__me.cnt[c];
    /* relaxed: a single writer; readers only need an untorn value (stats.c). */
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#endif
