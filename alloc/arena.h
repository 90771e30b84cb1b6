/* arena.h - object bytes: one shared memfd arena per NUMA node, mapped side by side in one
 * address span, with a jemalloc arena per node whose extent hooks carve from it. Internal.
 */
#ifndef SHOAL_ALLOC_ARENA_H
#define SHOAL_ALLOC_ARENA_H

#include <jemalloc/jemalloc.h>

#include "../layout/segment.h"
#include "../layout/thr.h"
#include "../os/errors.h"
#include "sizeclass.h"

struct shoal__node_hooks {
    extent_hooks_t hooks;         /* first: jemalloc hands this pointer back to the hooks */
    unsigned node;
    shoal__rt_t *rt;              /* the runtime (not yet published while arenas are made) */
    _Atomic uint64_t populated;   /* bytes of this node's span populated in this process */
};

struct shoal__arenas {
    unsigned nnodes;
    int fds[SHOAL__MAX_NODES];
    unsigned je[SHOAL__MAX_NODES];           /* jemalloc arena index per node */
    bool je_made[SHOAL__MAX_NODES];
    struct shoal__node_hooks nh[SHOAL__MAX_NODES];
    void *span;                              /* == rt->base */
    size_t span_len;
};

/* Create the node segments (probing huge pages per cfg), map them into one span, bind each
 * to its node, create the jemalloc arenas. Sets rt->arenas, rt->base, rt->huge_kind.
 * rt->hdr, rt->nnodes, rt->node_span and rt->topo must be set. */
SHOAL__HIDDEN int  shoal__arenas_create(shoal__rt_t *rt, int huge_mode);
/* A client (runtime/attach.c): map the owner's node memfds (fds[0..nnodes), owned from now on,
 * closed by destroy) into a fresh span laid out as the owner's, and create this process's
 * own jemalloc arenas over them. rt->hdr, nnodes, node_span, huge_kind must be set. */
SHOAL__HIDDEN int  shoal__arenas_attach(shoal__rt_t *rt, const int *fds);
SHOAL__HIDDEN void shoal__arenas_destroy(shoal__rt_t *rt);
/* Free a thread's cached tiny cells and destroy its tcaches (their cached objects go back
 * to the arenas). */
SHOAL__HIDDEN void shoal__arena_thread_flush(shoal__rt_t *rt, struct shoal__thr *t);
SHOAL__HIDDEN unsigned shoal__arena_tcache_slow(shoal__rt_t *rt, struct shoal__thr *t, unsigned node);
SHOAL__HIDDEN int shoal__arena_full(shoal__rt_t *rt, size_t len) __attribute__((cold));

/* When an allocation finds no room: a chance to make some (io/ registers spilling here when
 * spill_dir is set; the allocator never calls up into io/ itself). Same contract as
 * shoal__spill_alloc (io/spill.h): 0 with *off set, < 0 with the message set, 1 when it does
 * not apply. NULL: none. */
typedef int (*shoal__alloc_full_fn)(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                    unsigned node, uint64_t *off);
SHOAL__HIDDEN extern _Atomic(shoal__alloc_full_fn) shoal__alloc_full_hook;
/* Large objects (>= SHOAL__LARGE_MIN): a run of whole chunks of node's span, populated; NULL
 * when no run is free. Giving it back makes the chunks free for any process (chunks.c). */
SHOAL__HIDDEN void *shoal__large_take(shoal__rt_t *rt, unsigned node, size_t len);
SHOAL__HIDDEN void  shoal__large_give(shoal__rt_t *rt, unsigned node, uint64_t start, size_t len);

/* Objects this large are page aligned: jemalloc otherwise starts a large allocation at a
 * random cache line of its first page (opt.cache_oblivious), which rules out O_DIRECT file
 * I/O straight from and into the object (io/). Their usable size is the same either way
 * (large size classes are page multiples), so sdallocx needs no alignment flag. */
#define SHOAL__ALIGN_MIN ((size_t)16 << 10)

/* Capacity. A node's bytes_used is every live object's shoal__acct_size plus the credit
 * threads hold: in a store nobody else reads live (rt->batched), a thread reserves capacity
 * SHOAL__CREDIT at a time and keeps up to twice that from its frees, so that puts and
 * frees on several workers do not all hit one shared cache line (fib with every call a
 * task ran slower on 2 workers than on 1). shoal_info_get subtracts the credit, so its
 * figure stays exact; near a full store a thread takes exactly what it needs. */
#define SHOAL__CREDIT ((int64_t)256 << 10)
SHOAL__HIDDEN bool shoal__cap_refill(shoal__rt_t *rt, struct shoal__thr *t, unsigned n,
                                     size_t usable);
SHOAL__HIDDEN void shoal__cap_return(shoal__rt_t *rt, struct shoal__thr *t, unsigned n);

static inline bool shoal__cap_take(shoal__rt_t *rt, struct shoal__thr *t, unsigned n,
                                   size_t usable)
{
    int64_t c = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
    if (likely(c >= (int64_t)usable)) {
        atomic_store_explicit(&t->credit[n], c - (int64_t)usable, memory_order_relaxed);
        return true;
    }
    return shoal__cap_refill(rt, t, n, usable);
}

static inline void shoal__cap_give(shoal__rt_t *rt, struct shoal__thr *t, unsigned n,
                                   size_t usable)
{
    int64_t c = atomic_load_explicit(&t->credit[n], memory_order_relaxed) + (int64_t)usable;
    atomic_store_explicit(&t->credit[n], c, memory_order_relaxed);
    if (unlikely(c > (rt->batched ? 2 * SHOAL__CREDIT : 0)))
        shoal__cap_return(rt, t, n);
}

/* Allocate len (> 0) bytes on node (or the next node with room) and return the offset from
 * rt->base. Capacity is counted by shoal__acct_size (sizeclass.h). SHOAL_ENOMEM when full; with
 * spill_dir set, cold objects are spilled first to make room (io/spill.c). */
static inline int shoal__arena_alloc(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                     unsigned node, uint64_t *off)
{
    struct shoal__arenas *a = rt->arenas;
    if (unlikely(len > ((size_t)1 << 46)))
        return shoal__arena_full(rt, len);
    size_t usable = shoal__acct_size(len);
    for (unsigned i = 0; i < a->nnodes; i++) {
        unsigned n = node + i < a->nnodes ? node + i : node + i - a->nnodes;
        if (unlikely(!shoal__cap_take(rt, t, n, usable)))
            continue;
        void *p;
        if (unlikely(len >= SHOAL__LARGE_MIN)) {
            p = shoal__large_take(rt, n, len);
        } else if (len <= SHOAL__TINY_MAX && t->tiny[n].n) {
            *off = t->tiny[n].off[--t->tiny[n].n];
            return 0;
        } else {
            unsigned tc = t->tcache[n];
            if (unlikely(tc == 0))
                tc = shoal__arena_tcache_slow(rt, t, n);
            int fl = MALLOCX_ARENA(a->je[n]) | MALLOCX_TCACHE(tc - 1) |
                     (len >= SHOAL__ALIGN_MIN ? MALLOCX_ALIGN(4096) : 0);
            p = tc ? mallocx(shoal__alloc_len(len), fl) : NULL;
        }
        if (unlikely(p == NULL)) {
            shoal__cap_give(rt, t, n, usable);
            continue;
        }
        *off = (uint64_t)((char *)p - rt->base);
        return 0;
    }
    shoal__alloc_full_fn hook = atomic_load_explicit(&shoal__alloc_full_hook, memory_order_relaxed);
    if (hook) {
        int rc = hook(rt, t, len, node, off);
        if (rc <= 0)
            return rc;
    }
    return shoal__arena_full(rt, len);
}

static inline void shoal__arena_free(shoal__rt_t *rt, struct shoal__thr *t, uint64_t off,
                                     size_t len)
{
    unsigned n = shoal__off_node(rt, off);
    if (unlikely(len >= SHOAL__LARGE_MIN)) {
        shoal__large_give(rt, n, off - (uint64_t)n * rt->node_span, len);
    } else if (len <= SHOAL__TINY_MAX && t->tiny[n].n < SHOAL__TINY_CACHE) {
        t->tiny[n].off[t->tiny[n].n++] = off;   /* every tiny object is one line */
    } else {
        unsigned tc = t->tcache[n];
        if (unlikely(tc == 0))
            tc = shoal__arena_tcache_slow(rt, t, n);
        sdallocx(rt->base + off, shoal__alloc_len(len),
                 tc ? MALLOCX_TCACHE(tc - 1) : MALLOCX_TCACHE_NONE);
    }
    shoal__cap_give(rt, t, n, shoal__acct_size(len));
}

#endif
