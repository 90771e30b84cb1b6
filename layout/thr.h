/* thr.h - the per-thread record's allocation state, which the allocator and the store read:
 * the slot cache and, per node, a cache of free blocks of each size class (alloc/arena.h).
 * Reached from shoal__tls.thr; reset when the runtime epoch changes; flushed at thread exit, when a worker parks, when an allocation
 * finds no room, and at shutdown. Internal. */
#ifndef SHOAL_LAYOUT_THR_H
#define SHOAL_LAYOUT_THR_H

#include <stdatomic.h>
#include <stdint.h>

#include "rt.h"

#define SHOAL__SLOT_CACHE 64

struct shoal__acache;   /* a thread's free blocks of one node (alloc/arena.h) */

struct shoal__thr {
    uint64_t epoch;                       /* the runtime these caches belong to */
    uint32_t nfree;
    uint32_t free[SHOAL__SLOT_CACHE];     /* free slot indices owned by this thread */
    uint32_t chain;                       /* a chain taken whole from the shared stack
                                             (linked through the FREE words, 0 ends it),
                                             or 0 (slots.c) */
    struct shoal__acache *ac[SHOAL__MAX_NODES];   /* NULL until first used */
    /* Batched counters (rt->batched only): capacity bytes this thread reserved from the
     * node's bytes_used and has not used yet, and objects it created minus freed that are
     * not yet in the node's count. Written by this thread only (relaxed load + store, no
     * RMW); shoal_info_get reads them under the registry lock (core/thread.c) to report
     * exact figures. */
    _Atomic int64_t credit[SHOAL__MAX_NODES];
    _Atomic int32_t objs[SHOAL__MAX_NODES];
};

#endif
