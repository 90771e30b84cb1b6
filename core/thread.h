/* thread.h - the per-thread record's functions (core/thread.c): this thread's record and
 * its registry, the lifecycle lock, and the slot cache (core/slots.c). The record's layout
 * is layout/thr.h. Internal. */
#ifndef SHOAL_CORE_THREAD_H
#define SHOAL_CORE_THREAD_H

#include "store.h"
#include "../layout/mpseg.h"
#include "../layout/thr.h"

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
/* Shutdown: flush every thread's caches (tcaches destroyed), mark them stale and empty
 * every thread's view (the inline get's only guard against a dead store). Called after
 * the last quiesce and after shoal__rt is cleared, before the store is torn down; takes
 * the registry lock. */
SHOAL__HIDDEN void shoal__threads_flush_all(shoal__rt_t *rt);
/* Add every thread's batched counters (see struct shoal__thr) to credit[n] and objs[n]
 * for each node n, in one walk of the registry. */
SHOAL__HIDDEN void shoal__threads_pending(shoal__rt_t *rt, int64_t credit[], int64_t objs[]);
/* The lifecycle lock: init, attach and shutdown take it, for all of their run (a thread's
 * exit takes only the registry locks, never this one). */
SHOAL__HIDDEN void shoal__lifecycle_lock(void);
SHOAL__HIDDEN void shoal__lifecycle_unlock(void);
/* On the thread that holds it (a callback run inside init, attach or shutdown), the error
 * `code` with a message for the lifecycle call `who`; else 0. */
SHOAL__HIDDEN int shoal__lifecycle_reentered(const char *who, int code);

/* Count d objects on the node holding off: batched per thread where nobody else reads the
 * counts live (rt->batched; shoal_info_get adds the pending deltas), else straight into
 * the shared counter. A 64-object batch keeps the shared line out of every create/free. */
static inline void shoal__objs_add(shoal__rt_t *rt, struct shoal__thr *t, uint64_t off, int d)
{
    unsigned n = shoal__off_node(rt, off);
    if (likely(rt->batched && t != NULL)) {
        int32_t v = atomic_load_explicit(&t->objs[n], memory_order_relaxed) + d;
        if (likely(v < 64 && v > -64)) {
            atomic_store_explicit(&t->objs[n], v, memory_order_relaxed);
            return;
        }
        atomic_store_explicit(&t->objs[n], 0, memory_order_relaxed);
        d = v;
    }
    shoal__count_objs(rt, rt->proc, n, d);   /* the node's count, or this process's shard */
}

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
/* The slot after idx in its chain (slots.c; 0: the last). A corrupt link ends the chain. */
static inline uint32_t shoal__chain_next(shoal__rt_t *rt, uint32_t idx)
{
    uint64_t w = atomic_load_explicit(&rt->slots[idx].word, memory_order_relaxed);
    uint32_t n = (uint32_t)(w & SHOAL__W_FREE_LINK);
    return n < rt->nslots ? n : 0;
}
/* A FREE slot of a chain that shoal__slot_flush linked also names, in its `off` (unused
 * while FREE), the slot SHOAL__CHAIN_SKIP places further down the chain (0: none). Only a
 * hint for prefetching: a taker checks the bounds and nothing else reads it, so a stale
 * value (a chain made elsewhere) costs one useless prefetch. */
#define SHOAL__CHAIN_SKIP 4u
/* The first slot of t's popped chain (not 0), which the caller takes. The chain is a list
 * through the slots' words, last written by the threads that freed them: each link is a
 * miss, and the next one's address is known only once it is read. So the slot after it
 * and the one SHOAL__CHAIN_SKIP further (with its dependents entry, which the new object's
 * creation writes) start coming now, for ownership (their taker writes them), while the
 * caller works on this one: a thread taking a whole chain (a driver submitting tasks)
 * waits for one miss after another otherwise, and past the chain's first few slots finds
 * each one in its cache. */
static inline uint32_t shoal__chain_take(shoal__rt_t *rt, struct shoal__thr *t)
{
    uint32_t idx = t->chain;
    SHOAL__TSAN_HANDOVER_TAKE(&rt->slots[idx].off);   /* from its giver (os/compiler.h) */
    uint32_t n = shoal__chain_next(rt, idx);
    uint64_t skip = __atomic_load_n(&rt->slots[idx].off, __ATOMIC_RELAXED);
    t->chain = n;
    if (n)
        shoal__prefetchw(&rt->slots[n]);
    if (skip && skip < rt->nslots) {
        shoal__prefetchw(&rt->slots[skip]);
        shoal__prefetchw(&rt->deps[skip]);
    }
    return idx;
}
/* Take a free slot (0 = the table is full). The slot's word is FREE with its next gen.
 * A popped chain (only a thread that tags nothing keeps one, slots.c) gives its next slot
 * here, not in a call: a thread that makes objects others free (a driver submitting tasks)
 * takes every slot that way. */
static inline uint32_t shoal__slot_take(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (likely(t->nfree != 0))
        return t->free[--t->nfree];
    if (likely(t->chain != 0))
        return shoal__chain_take(rt, t);
    return shoal__slot_refill(rt, t);
}
/* A FREE slot in an attached process's cache carries SHOAL__W_CACHED | its process index in
 * the (otherwise 0) reference count, and its entry in the process's reference ledger says
 * SHOAL__HOLDS_CACHED, so that the owner finds and takes back the cached slots of a process
 * that died without scanning the table (mproc/publish.c). The owner never outlives its
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
