/* thr.h - the per-thread record's layout, which the allocator and the store read: the slot
 * cache, one jemalloc tcache per node and a cache of tiny objects' bytes. Reached from shoal__tls.thr; reset when the runtime epoch
 * changes; flushed at thread exit and at shutdown. Internal. */
#ifndef SHOAL_LAYOUT_THR_H
#define SHOAL_LAYOUT_THR_H

#include <stdatomic.h>
#include <stdint.h>

#include "rt.h"

#define SHOAL__SLOT_CACHE 64

/* Objects of up to SHOAL__TINY_MAX bytes (one cache line each, alloc/sizeclass.h: task
 * results, counters) reuse the lines this thread freed last, held per node in front of
 * jemalloc, whose mallocx and sdallocx cost more than the rest of creating and freeing such
 * an object (alloc/arena.h). */
#define SHOAL__TINY_MAX 64
#define SHOAL__TINY_CACHE 32
struct shoal__tiny {
    uint32_t n;
    uint64_t off[SHOAL__TINY_CACHE];      /* offsets from rt->base of free cells */
};

struct shoal__thr {
    uint64_t epoch;                       /* the runtime these caches belong to */
    uint32_t nfree;
    uint32_t free[SHOAL__SLOT_CACHE];     /* free slot indices owned by this thread */
    uint32_t chain;                       /* a chain taken whole from the shared stack
                                             (linked through the FREE words, 0 ends it),
                                             or 0 (slots.c) */
    unsigned tcache[SHOAL__MAX_NODES];    /* jemalloc tcache id + 1; 0 = not created */
    struct shoal__tiny tiny[SHOAL__MAX_NODES];
    struct shoal__thr *next, *prev;       /* registry, under the registry lock (thread.c) */
    /* Batched counters (rt->batched only): capacity bytes this thread reserved from the
     * node's bytes_used and has not used yet, and objects it created minus freed that are
     * not yet in the node's count. Written by this thread only (relaxed load + store, no
     * RMW); shoal_info_get reads them under the registry lock to report exact figures. */
    _Atomic int64_t credit[SHOAL__MAX_NODES];
    _Atomic int32_t objs[SHOAL__MAX_NODES];
};

#endif
