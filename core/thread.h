/* thread.h - per-thread allocation state: the slot cache and, per node, a cache of free
 * blocks of each size class (alloc/arena.h). Reached from shoal__tls.thr; reset when the
 * runtime epoch changes; flushed at thread exit, when a worker parks, when an allocation
 * finds no room, and at shutdown. Internal. */
#ifndef SHOAL_CORE_THREAD_H
#define SHOAL_CORE_THREAD_H

#include "../alloc/sizeclass.h"
#include "mproc.h"

#define SHOAL__SLOT_CACHE 64

/* A thread's free blocks of one node, per size class, in front of the node's slabs
 * (alloc/slab.c): a put and a release of a small object pop and push here, with no lock and
 * no atomic read-modify-write but the live-map byte (arena.h). Bounded in bytes (room) as
 * well as per class (cap), so that no thread strands much of the store; allocated on the
 * thread's first small object on the node (alloc/arena.c). Process-private memory. */
struct shoal__tbin {
    uint32_t n, cap;
    uint64_t *off;                        /* offsets from rt->base of free blocks */
};
struct shoal__acache {
    int64_t room;                         /* bytes more this cache may hold */
    struct shoal__tbin bin[SHOAL__NCLASSES];
};

struct shoal__thr {
    uint64_t epoch;                       /* the runtime these caches belong to */
    uint32_t nfree;
    uint32_t free[SHOAL__SLOT_CACHE];     /* free slot indices owned by this thread */
    uint32_t chain;                       /* a chain taken whole from the shared stack
                                             (linked through the FREE words, 0 ends it),
                                             or 0 (slots.c) */
    struct shoal__acache *ac[SHOAL__MAX_NODES];   /* NULL until first used */
    struct shoal__thr *next, *prev;       /* registry, under the registry lock (thread.c) */
    /* Batched counters (rt->batched only): capacity bytes this thread reserved from the
     * node's bytes_used and has not used yet, and objects it created minus freed that are
     * not yet in the node's count. Written by this thread only (relaxed load + store, no
     * RMW); shoal_info_get reads them under the registry lock to report exact figures. */
    _Atomic int64_t credit[SHOAL__MAX_NODES];
    _Atomic int32_t objs[SHOAL__MAX_NODES];
};

/* This thread's state for the current epoch, created on first use (cold). NULL only when
 * malloc fails. The caller has passed shoal__tls_check(). */
SHOAL__HIDDEN struct shoal__thr *shoal__thr_slow(void);
static inline struct shoal__thr *shoal__thr_get(void)
{
    struct shoal__thr *t = shoal__tls.thr;
    if (likely(t != NULL && t->epoch == shoal__tls.epoch))
        return t;
    return shoal__thr_slow();
}
/* Shutdown: flush every thread's caches (blocks back to the slabs) and mark them stale. Called
 * after shoal__rt is cleared, before the store is torn down; takes the registry lock. */
SHOAL__HIDDEN void shoal__threads_flush_all(shoal__rt_t *rt);
/* Add every thread's batched counters (see struct shoal__thr) to credit[n] and objs[n]
 * for each node n, in one walk of the registry. */
SHOAL__HIDDEN void shoal__threads_pending(shoal__rt_t *rt, int64_t credit[], int64_t objs[]);
/* The lifecycle lock: init, attach and shutdown take it, for all of their run (a thread's
 * exit takes only the registry locks, never this one). */
SHOAL__HIDDEN void shoal__lifecycle_lock(void);
SHOAL__HIDDEN void shoal__lifecycle_unlock(void);

/* ---- slots (core/slots.c) ---- */
SHOAL__HIDDEN uint32_t shoal__slot_refill(shoal__rt_t *rt, struct shoal__thr *t);
SHOAL__HIDDEN void     shoal__slot_flush(shoal__rt_t *rt, struct shoal__thr *t, uint32_t n);
/* Give back everything t caches: its array and its chain (thread exit, shutdown). */
SHOAL__HIDDEN void     shoal__slot_flush_all(shoal__rt_t *rt, struct shoal__thr *t);
SHOAL__HIDDEN int      shoal__slots_init(shoal__rt_t *rt);
/* At shutdown (owner): remember where each slot's generations stopped, for the next store
 * of this process (slots.c). */
SHOAL__HIDDEN void     shoal__slots_retire(shoal__rt_t *rt);
/* In a fork() child: forget those records (the parent's store went on without them). */
SHOAL__HIDDEN void     shoal__slots_forget(void);
/* In a fork() child: make the lifecycle and registry locks anew, keep this thread alone in
 * the registries, and answer "a fork() child" until the next init or attach (clear). */
SHOAL__HIDDEN void     shoal__threads_forget(bool had_runtime);
SHOAL__HIDDEN void     shoal__forked_clear(void);
/* Take a free slot (0 = the table is full). The slot's word is FREE with its next gen. */
static inline uint32_t shoal__slot_take(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (likely(t->nfree != 0))
        return t->free[--t->nfree];
    return shoal__slot_refill(rt, t);
}
/* A FREE slot in an attached process's cache carries SHOAL__W_CACHED | its process index in
 * the (otherwise 0) reference count, and its entry in the process's reference ledger says
 * SHOAL__HOLDS_CACHED, so that the owner finds and takes back the cached slots of a process
 * that died without scanning the table (core/publish.c). The owner never outlives its
 * store: it tags nothing. */
/* Set the low half of a FREE slot's word: a cache tag, or a chain link (slots.c). relaxed:
 * the slot is the caller's alone; the next reader is ordered by the stack's CAS that hands
 * it over, or is the owner reading the tags of a dead process. */
static inline void shoal__slot_set_low(shoal__rt_t *rt, uint32_t idx, uint64_t low)
{
    _Atomic uint64_t *w = &rt->slots[idx].word;
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    atomic_store_explicit(w, (v & ~SHOAL__W_LOW_MASK) | low, memory_order_relaxed);
}
/* A tagged slot is always named by the ledger: tagging writes the ledger first and
 * untagging writes it last, so the owner finds every cached slot of a process that dies. */
static inline void shoal__slot_tag(shoal__rt_t *rt, uint32_t idx, uint64_t tag)
{
    if (tag && shoal__holds)
        atomic_store_explicit(&shoal__holds[idx], SHOAL__HOLDS_CACHED, memory_order_relaxed);
    shoal__slot_set_low(rt, idx, tag);
    if (!tag && shoal__holds)
        atomic_store_explicit(&shoal__holds[idx], 0, memory_order_relaxed);
}
/* Below 65536 slots (an explicit max_objects), threads cache no slots: every free slot
 * stays reachable by every thread, so a put fails only when every slot holds a live object.
 * Larger tables cache up to SHOAL__SLOT_CACHE per thread. Owner and clients alike. */
static inline uint32_t shoal__slot_cache_for(uint64_t nslots)
{
    return nslots >= 65536 ? SHOAL__SLOT_CACHE : 0;
}
/* Give a free slot back: into this thread's cache, or past its limit (rt->slot_cache:
 * SHOAL__SLOT_CACHE, or 0 for small tables, slots.c) to the shared stack. */
SHOAL__HIDDEN void shoal__slot_give_slow(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx);
static inline void shoal__slot_give(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx)
{
    if (unlikely(t->nfree >= rt->slot_cache)) {
        shoal__slot_give_slow(rt, t, idx);
        return;
    }
    if (unlikely(rt->proc != 0))
        shoal__slot_tag(rt, idx, SHOAL__W_CACHED | rt->proc);
    t->free[t->nfree++] = idx;
}

#endif
