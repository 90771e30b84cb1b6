/* arena.h - object bytes: the span (one region per NUMA node, shared memfds for a published
 * store, private anonymous memory otherwise) and the allocator over it. Internal.
 *
 * The allocator's metadata is all process-private (malloc'd or private anonymous maps):
 * the span holds object bytes only, plus the shared chunk map (layout/mpseg.h) that says
 * which process owns which chunk, so that the owner can take back a dead process's chunks.
 * Nothing another process writes into shared memory can corrupt it, fork() copies nothing
 * a parent's thread could be holding a lock in, and attaching takes no store memory.
 *
 *   chunks   the span is cut in chunks (64 KiB for spans up to 64 GiB per node); a process
 *            takes runs of them from the shared chunk map (chunks.c) as it allocates and
 *            gives them back whole.
 *   slabs    objects up to SHOAL__SMALL_MAX take a block of their size class in a slab, a
 *            run of chunks cut in equal blocks (slab.c). Per node and class the process
 *            keeps its slabs with free blocks under one lock; a slab whose blocks are all
 *            free again returns its chunks (one single-chunk slab per class is kept as a
 *            spare until an allocation finds no room, against churn).
 *   runs     larger objects take a run of chunks of their own (arena.c).
 *   caches   each thread keeps free blocks per node and class (core/thread.h), so a put and
 *            a release of a small object take no lock; caches are bounded in bytes and
 *            flushed when an allocation finds no room, when a worker parks and at exit.
 *   live map one private byte per 64-byte line of the span (no two blocks start in one line):
 *            the class of the live block that starts in it and where (shoal__live_tag),
 *            else 0; a large run's first chunk carries its length in the
 *            private chunk table. Every free is checked against them (a CAS that clears
 *            the entry), so a bad offset or length, or a second free, is refused with a
 *            notice (a leak) and never frees a block this process did not hand out.
 *
 * Pages are never purged: what was populated stays mapped (page churn slows the whole
 * process here), and freed space is reused as is.
 */
#ifndef SHOAL_ALLOC_ARENA_H
#define SHOAL_ALLOC_ARENA_H

#include "../layout/segment.h"
#include "../layout/thr.h"
#include "../os/errors.h"
#include "sizeclass.h"

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

struct shoal__bin;    /* slab.c: the slabs of one node and class, under its lock */

struct shoal__node_arena {
    _Atomic uint64_t populated;   /* bytes of this node's span populated in this process */
    _Atomic uint64_t hint;        /* chunk index below which no chunk was free when looked */
    struct shoal__bin *bins;      /* SHOAL__NCLASSES */
};

struct shoal__arenas {
    unsigned nnodes;
    int fds[SHOAL__MAX_NODES];               /* published or attached: the node memfds */
    void *span;                              /* == rt->base */
    size_t span_len;
    _Atomic uint8_t *live;                   /* span_len / 64 bytes (see above) */
    size_t live_len;
    _Atomic uintptr_t *ctab;                 /* per chunk, node-major as the chunk map: the
                                                slab it belongs to, a large run's tag on its
                                                first chunk (SHOAL__RUN_TAG), else 0 */
    size_t ctab_len;
    int64_t tc_room;                         /* bytes a thread may cache per node */
    _Atomic uint32_t spares;                 /* spare slabs kept (slab.c) */
    _Atomic uint32_t nomem;                  /* populates that failed: no memory */
    uint32_t slab_chunks[SHOAL__NCLASSES];   /* geometry of each class's slabs */
    uint32_t slab_nobj[SHOAL__NCLASSES];
    struct shoal__node_arena node[SHOAL__MAX_NODES];
};

/* The private chunk table's entry for a large run's first chunk: its accounted size. */
#define SHOAL__RUN_TAG(acct) (((uintptr_t)(acct) << 1) | 1u)

/* Create the node regions (probing huge pages per cfg), map them into one span, bind each
 * to its node, set up the allocator. A store that will be published (rt->cfg.name) gets
 * memfds (hugetlb, else THP on shmem, else normal pages); a private one gets anonymous
 * private memory (hugetlb, else THP, else normal pages), which a fork() child sees as a
 * copy-on-write copy rather than as the parent's live memory. Sets rt->arenas, rt->base,
 * rt->huge_kind (what was obtained). rt->hdr, rt->nnodes, rt->node_span, rt->topo, rt->cfg
 * must be set. */
SHOAL__HIDDEN int  shoal__arenas_create(shoal__rt_t *rt, int huge_mode);
/* A client (runtime/attach.c): map the owner's node memfds (fds[0..nnodes), owned from now on,
 * closed by destroy) into a fresh span laid out as the owner's. Takes no store memory: the
 * client takes chunks only as it allocates. rt->hdr, nnodes, node_span, huge_kind set. */
SHOAL__HIDDEN int  shoal__arenas_attach(shoal__rt_t *rt, const int *fds);
SHOAL__HIDDEN void shoal__arenas_destroy(shoal__rt_t *rt);
/* Give a thread's cached blocks back to the slabs (thread exit, shutdown). */
SHOAL__HIDDEN void shoal__arena_thread_flush(shoal__rt_t *rt, struct shoal__thr *t);
/* Drop a thread's caches without giving anything back (their runtime is gone, or they were
 * flushed): frees the cache memory. */
SHOAL__HIDDEN void shoal__arena_thread_forget(struct shoal__thr *t);
/* A worker is about to sleep: give back its cached blocks, the capacity it reserved and
 * the spare slabs, so that an idle runtime holds no free space away from other sizes and
 * processes. Cheap when there is nothing to give. */
SHOAL__HIDDEN void shoal__arena_idle(void);
/* The largest object a put on any node could place now (shoal_info.largest_free). Gives
 * back this thread's cached blocks and the spare slabs first, as a put that finds no room
 * would. */
SHOAL__HIDDEN size_t shoal__arena_largest_free(shoal__rt_t *rt);

/* Without a thread cache, for service threads (remote frees, a dead client's objects):
 * allocate len bytes on node (no capacity accounting: the caller counts), 0 or -1; free a
 * block this process allocated, checked as every free is: true if it was freed (the caller
 * then uncounts shoal__acct_size(len)), false if refused. */
SHOAL__HIDDEN int  shoal__arena_alloc_direct(shoal__rt_t *rt, size_t len, unsigned node,
                                             uint64_t *off);
SHOAL__HIDDEN bool shoal__arena_free_direct(shoal__rt_t *rt, uint64_t off, size_t len);

/* When an allocation finds no room on any node, even after flushing this thread's cache:
 * a chance to make some (io/ registers spilling here when spill_dir is set; the allocator
 * never calls up into io/ itself). Same contract as shoal__spill_alloc (core/store.h): 0 with
 * *off set, < 0 with the message set, 1 when it does not apply. NULL: none. */
typedef int (*shoal__alloc_full_fn)(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                    unsigned node, uint64_t *off);
SHOAL__HIDDEN extern _Atomic(shoal__alloc_full_fn) shoal__alloc_full_hook;

/* Make sure bytes [start, end) of node's span (a run this process just took) are populated
 * in this process: below the node's watermark they were once and stay so. 0, or -1 (no
 * memory: counted in nomem, message set). */
SHOAL__HIDDEN int  shoal__arena_populate(shoal__rt_t *rt, unsigned node, uint64_t start,
                                         uint64_t end);

/* Slow paths (arena.c). */
SHOAL__HIDDEN int  shoal__arena_alloc_slow(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                           unsigned node, uint64_t *off)
    __attribute__((cold));
SHOAL__HIDDEN void shoal__arena_free_slow(shoal__rt_t *rt, struct shoal__thr *t, uint64_t off,
                                          size_t len) __attribute__((cold));
SHOAL__HIDDEN int  shoal__arena_full(shoal__rt_t *rt, size_t len) __attribute__((cold));

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
/* All of this thread's credit on node n back to the count (a thread whose frees must give
 * the store their whole footprint: the I/O thread's, io/ring.c). Its own thread only. */
SHOAL__HIDDEN void shoal__cap_return_all(shoal__rt_t *rt, struct shoal__thr *t, unsigned n);

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
 * rt->base. Capacity is counted by shoal__acct_size. SHOAL_ENOMEM when full (after the
 * full hook, see above). Fast path: a small object from this thread's cache. */
static inline int shoal__arena_alloc(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                     unsigned node, uint64_t *off)
{
    if (likely(len <= SHOAL__SMALL_MAX)) {
        unsigned c = shoal__class_of(len);
        size_t sz = shoal__class_size(c);
        struct shoal__acache *ac = t->ac[node];
        if (likely(ac != NULL && ac->bin[c].n != 0 && shoal__cap_take(rt, t, node, sz))) {
            struct shoal__tbin *b = &ac->bin[c];
            uint64_t o = b->off[--b->n];
            ac->room += (int64_t)sz;
            /* relaxed: the block is this thread's alone until its object is published
             * (whose release orders everything); the byte only says the block is live. */
            atomic_store_explicit(&rt->arenas->live[o >> SHOAL__LINE_SHIFT],
                                  shoal__live_tag(c, o), memory_order_relaxed);
            *off = o;
            return 0;
        }
    }
    return shoal__arena_alloc_slow(rt, t, len, node, off);
}

/* Free what shoal__arena_alloc returned for len bytes. Checked against the private live
 * map: anything else (a rewritten offset or length, a second free) is refused and leaked
 * with a notice. Fast path: a small object into this thread's cache. */
static inline void shoal__arena_free(shoal__rt_t *rt, struct shoal__thr *t, uint64_t off,
                                     size_t len)
{
    struct shoal__arenas *a = rt->arenas;
    if (likely(len <= SHOAL__SMALL_MAX && off < a->span_len)) {
        unsigned c = shoal__class_of(len);
        size_t sz = shoal__class_size(c);
        unsigned n = shoal__off_node(rt, off);
        struct shoal__acache *ac = t->ac[n];
        uint8_t want = shoal__live_tag(c, off);
        /* relaxed: only who wins matters (one free of a live block of this class); the
         * bytes are ordered by the object's release and the slabs' lock. */
        if (likely((off & 15) == 0 && ac != NULL &&
                   ac->bin[c].n < ac->bin[c].cap && ac->room >= (int64_t)sz &&
                   atomic_compare_exchange_strong_explicit(&a->live[off >> SHOAL__LINE_SHIFT],
                                                           &want, 0, memory_order_relaxed,
                                                           memory_order_relaxed))) {
            struct shoal__tbin *b = &ac->bin[c];
            b->off[b->n++] = off;
            ac->room -= (int64_t)sz;
            shoal__cap_give(rt, t, n, sz);
            return;
        }
    }
    shoal__arena_free_slow(rt, t, off, len);
}

#endif
