/* mproc.h - the multi-process part of the shared segment: the process table (one entry per
 * attached process, with its remote-free stack and wake word), the chunk map that says which
 * process's allocator owns each piece of the arenas, each process's share of the store's
 * counters, published per-worker counters, and the per-process reference ledger ("holds").
 * Internal: never installed.
 *
 * Segment layout: [shoal__hdr][shoal__mp at hdr->ext_off][chunk map][worker stats][slots].
 * Offsets only; every process maps the same memfd.
 *
 * Trust: every attached process (same uid) can write all of this. The owner reads what a
 * client wrote only through bounds checks, frees its own bytes from records only it can
 * write (own[], below), and answers garbage with a leak and a notice, never a crash.
 *
 * Synchronisation:
 *   procs[p].state   written by the owner only (publish.c); read relaxed/acquire by all.
 *   procs[p].rfree   MPSC stack of freed slot indices whose bytes process p allocated.
 *                    Pushers CAS (seq_cst: pairs with the drainer's seq_cst store of
 *                    `sleeping`, a Dekker pair); the drainer takes the whole chain with one
 *                    acquire exchange, so there is no ABA.
 *   procs[p].wake    futex word; a pusher bumps it (release) only when it made the stack
 *                    non-empty and saw `sleeping`, so steady traffic makes no syscall.
 *   chunk map        CAS by the allocator of every process (alloc/chunks.c); reclaimed by
 *                    the owner once a dead process's objects are all gone.
 *   shard[p]         process p's share of the node counters (relaxed RMW): what it counted
 *                    for the objects it allocated. Written by p, by the drainer of p's
 *                    remote-free stack, and, once p is gone, by the owner alone.
 *   holds[idx]       [63..32] generation (core/table.h: never 0), [31..0] signed count of
 *                    references this process took on that object minus those it dropped;
 *                    0 = never used; generation 0 with count -1 = a slot in this process's
 *                    caches (SHOAL__HOLDS_CACHED). CAS by this process only, read by the
 *                    owner after the process is gone.
 *
 * Crash windows. Any process can die at any instruction; what it was doing must only ever
 * leak, and the owner reclaims the leak when it processes the death:
 *   - counters: a process counts in its own shard with one RMW per change, so its shard is
 *     exactly what it contributed; once none of its objects is left the owner zeroes it.
 *   - the ledger is updated before the slot word when references are created or dropped
 *     (create, release) and after it when they are taken (retain): it never over-counts.
 *   - a slot freed for another process carries a FREEING marker naming the releaser until
 *     its allocator's drainer claims it; the owner claims those of a releaser that died
 *     before pushing them (for a live client's object, whose stack may or may not hold it,
 *     it forwards the bytes in a slot of its own: publish.c, forward_bytes).
 *   - what can stay leaked: the reference a retain or release was taking or dropping (on
 *     the object, not in the ledger), free slots moving between a thread cache and the
 *     shared list, and a forwarded slot's index. Never bytes or a live object's
 *     reference. tests/test_mp_crash.c kills a client at every instruction of such calls.
 */
#ifndef SHOAL_CORE_MPROC_H
#define SHOAL_CORE_MPROC_H

#include <stdatomic.h>
#include <stdint.h>

#include "segment.h"

#define SHOAL__MAX_PROCS   256          /* slot aux keeps the allocating process in 8 bits */
#define SHOAL__MP_MAGIC   UINT64_C(0x3143525050414f48)   /* "HOAPPRC1" */
#define SHOAL__MAX_WSTATS  1024         /* config.workers is at most 1024 */
#define SHOAL__CHUNK_FREE  UINT32_MAX   /* chunk map: recycled, any process may take it */
#define SHOAL__AUX_PROC(aux) ((aux) & 0xffu)

#define SHOAL__PROC_TOOL 1u

enum shoal__proc_state {
    SHOAL__PROC_FREE = 0,     /* index unused (its stack may still receive late frees) */
    SHOAL__PROC_LIVE = 1,     /* attached (index 0: the owner, while its store is up) */
    SHOAL__PROC_DEAD = 2,     /* gone; the owner frees what it held and, once none of its
                                 objects is left, reclaims its chunks */
    SHOAL__PROC_CLOSED = 3,   /* index 0 only: the owner shut down */
};

struct shoal__proc {
    _Alignas(SHOAL__CACHELINE) _Atomic uint32_t state;
    _Atomic uint32_t inc;         /* incarnation, bumped each time the index is given out */
    _Atomic int32_t pid;
    _Atomic uint32_t sleeping;    /* the drainer is in a long sleep: the next pusher wakes it */
    _Atomic uint32_t wake;        /* futex word of the drainer */
    _Atomic uint32_t flags;       /* SHOAL__PROC_TOOL: a tool such as shoal-stat */
    _Atomic uint64_t rfree;       /* remote-free stack head (slot index), 0 = empty */
    _Atomic uint64_t attached_ns; /* CLOCK_REALTIME of the attach, for tools */
    _Atomic uint32_t fdeps;       /* dependents this process registered on objects other
                                     processes complete (foreign_deps.c): completers wake it */
};
_Static_assert(sizeof(struct shoal__proc) == SHOAL__CACHELINE, "one line per process");

/* Per-worker counters a scheduler may publish for tools (shoal-stat). Worker w writes its
 * own line (relaxed); readers take a snapshot. nworkers stays 0 until something publishes. */
struct shoal__wstat {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t tasks_run;
    _Atomic uint64_t tasks_stolen;
    _Atomic uint64_t parks;
    int32_t node;
    int32_t cpu;
};

/* A process's share of the node counters (see the synchronisation note above). */
struct shoal__shard {
    _Alignas(SHOAL__CACHELINE) _Atomic int64_t bytes[SHOAL__MAX_NODES];
    _Atomic int64_t objs[SHOAL__MAX_NODES];
};

struct shoal__mp {
    uint64_t magic;
    uint32_t nprocs;
    uint32_t chunk_shift;         /* log2 of the chunk-map granularity */
    uint64_t nchunks;             /* chunks per node */
    uint64_t chunks_off;          /* chunk map from the segment start: uint32 per chunk */
    uint64_t wstats_off;          /* SHOAL__MAX_WSTATS shoal__wstat from the segment start */
    _Atomic uint32_t nworkers;    /* published worker lines (the scheduler's hook) */
    uint32_t pad;
    _Atomic uint64_t deaths;      /* clients whose end the owner has processed (publish.c):
                                     for tools, and tests that wait for it */
    uint64_t xfer_off;            /* the in-flight table (struct shoal__inflight) from the start */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t recycled[SHOAL__MAX_NODES];
    struct shoal__proc procs[SHOAL__MAX_PROCS];
    struct shoal__shard shard[SHOAL__MAX_PROCS];
};
_Static_assert(__builtin_offsetof(struct shoal__mp, recycled) == SHOAL__CACHELINE,
               "the scalar fields of shoal__mp fit its first line");


/* ---- refs in flight (core/inflight.c) -------------------------------------------------------
 * shoal_transfer moves one of the sender's references into a record here; shoal_accept moves
 * it out into the receiver's hands; the owner releases it when its deadline passes. The
 * record holds the reference (the object's count does not change on either move), so the
 * object lives while the ref travels, whatever the sender does.
 *   st        [63..32] sequence (bumped by every move into FREE/EXPIRED and into RESERVED, so
 *             a CAS against a stale view fails), [31..10] low 22 bits of the incarnation and
 *             [9..2] the index of the process that reserved or sent it, [1..0] phase.
 *   id        the ref; deadline: CLOCK_MONOTONIC ns (one clock for every process).
 * A record is found from the ref's home (a hash) within SHOAL__XFER_PROBE records, so an
 * accept, and the owner's count of what is in flight for one object, read a bounded window.
 * Moves (each one CAS of st; every process may make them, bounds by construction):
 *   FREE|EXPIRED -> RESERVED   sender, then writes id and deadline
 *   RESERVED -> INFLIGHT       sender (release: publishes id and deadline); then the sender's
 *                              ledger drops the reference (after: a death in between leaves
 *                              the ledger one too high, and the owner counts the record as
 *                              another holder, publish.c release_one, so nothing is dropped
 *                              twice)
 *   INFLIGHT -> FREE           receiver, after its ledger took the reference (a death in
 *                              between: as above, the record still counts as the holder)
 *   INFLIGHT -> EXPIRED        the owner at the deadline, then it drops the reference; the
 *                              id stays, so a late accept answers SHOAL_ETIMEDOUT
 *   RESERVED -> FREE           the owner, for a sender that died before sending */
#define SHOAL__XFER_RECS   (1u << 16)
#define SHOAL__XFER_PROBE  128u
enum { SHOAL__XR_FREE = 0, SHOAL__XR_RESERVED = 1, SHOAL__XR_INFLIGHT = 2, SHOAL__XR_EXPIRED = 3 };
struct shoal__xrec {
    _Atomic uint64_t st;
    _Atomic uint64_t id;
    _Atomic uint64_t deadline;
};
struct shoal__inflight {
    /* Earliest deadline of a record in flight, 0 = none: senders lower it (CAS) and wake the
     * owner's expiring thread when they do; the owner resets and recomputes it as it scans. */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t due;
    _Alignas(SHOAL__CACHELINE) struct shoal__xrec rec[SHOAL__XFER_RECS];
};
_Static_assert(sizeof(struct shoal__xrec) == 24 && (SHOAL__XFER_RECS & (SHOAL__XFER_RECS - 1)) == 0 &&
               SHOAL__XFER_PROBE <= SHOAL__XFER_RECS && SHOAL__MAX_PROCS <= 256,
               "in-flight records: 24 bytes, a power-of-two table, 8 bits of process index");

/* Owner: release every in-flight reference whose deadline passed (and, with sweep, free the
 * records of senders that died while reserving one). t: the calling service thread's slot
 * cache (published owner), NULL for a thread with its own (private store: the I/O thread).
 * Returns the earliest deadline still pending (CLOCK_MONOTONIC ns), 0 = none. */
struct shoal__thr;
SHOAL__HIDDEN uint64_t shoal__xfer_expire(shoal__rt_t *rt, bool sweep, struct shoal__thr *t);
/* The earliest pending deadline, 0 = none (a thread computing its sleep). */
SHOAL__HIDDEN uint64_t shoal__xfer_due(void);
/* How many in-flight records hold a reference on object id (the owner, processing a death:
 * they are holders besides the live processes' ledgers). */
SHOAL__HIDDEN uint32_t shoal__xfer_held(uint64_t id);

/* This process's copy of the region's geometry, taken when the owner lays it out or a client
 * has checked it: nobody follows an offset that another process could rewrite. */
struct shoal__geo {
    struct shoal__mp *ext;
    _Atomic uint32_t *map;        /* chunk map, node-major */
    struct shoal__wstat *wstats;
    struct shoal__inflight *xfer;     /* the in-flight table */
    unsigned shift;               /* chunk size = 1 << shift */
    uint64_t nchunks;             /* per node */
};
extern struct shoal__geo shoal__geo;
/* This process's chunk-map owner id: (incarnation << 8) | process index; never 0 or FREE. */
extern uint32_t shoal__chunk_me;

static inline struct shoal__mp *shoal__mp_of(const shoal__rt_t *rt)
{
    (void)rt;
    return shoal__geo.ext;
}
static inline _Atomic uint32_t *shoal__chunkmap(const shoal__rt_t *rt)
{
    (void)rt;
    return shoal__geo.map;
}
static inline struct shoal__wstat *shoal__wstats(const shoal__rt_t *rt)
{
    (void)rt;
    return shoal__geo.wstats;
}

/* ---- counting bytes and objects ------------------------------------------------------------ */
/* A private store (rt->batched) counts in the node counters, batched per thread (core/object.c,
 * alloc/arena.h). A published or attached one counts each object in the shard of the process
 * whose allocator holds its bytes (one RMW per change, so a process that dies mid-way leaves
 * its shard exact), bytes also in the node's bytes_used, the estimate capacity checks read
 * (it may drift by what a dying process had half counted; the owner resyncs it). */
static inline struct shoal__shard *shoal__shard_of(unsigned proc)
{
    return &shoal__geo.ext->shard[proc & 0xffu];
}
static inline void shoal__count_objs(shoal__rt_t *rt, unsigned proc, unsigned n, int64_t d)
{
    if (rt->batched)
        atomic_fetch_add_explicit(&rt->hdr->node[n].objects, (uint64_t)d, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&shoal__shard_of(proc)->objs[n], d, memory_order_relaxed);
}
/* Bytes given back (d < 0) for an allocation of proc's, or taken (d > 0) once the estimate
 * said there was room. */
static inline void shoal__count_bytes(shoal__rt_t *rt, unsigned proc, unsigned n, int64_t d)
{
    if (!rt->batched)
        atomic_fetch_add_explicit(&shoal__shard_of(proc)->bytes[n], d, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->hdr->node[n].bytes_used, (uint64_t)d, memory_order_relaxed);
}
/* The store's figures per node: the shards summed (a published or attached store). */
SHOAL__HIDDEN void shoal__shards_sum(shoal__rt_t *rt, int64_t bytes[], int64_t objs[]);
/* Owner: a gone process has no object left; what its shard still counts was counted for
 * work it never finished: drop it (and from the estimate). */
SHOAL__HIDDEN void shoal__shard_settle(shoal__rt_t *rt, unsigned proc);
/* Owner: bring the bytes_used estimates back to the shards' sums. */
SHOAL__HIDDEN void shoal__estimate_resync(shoal__rt_t *rt);

/* ---- slots freed for another process --------------------------------------------------------- */
/* The low 28 bits of a FREE slot word (table.h) are a cache tag (thread.h: SHOAL__W_CACHED |
 * process) or a chain link (slots.c: a slot index, below bit 26, 0 at a chain's end) - or,
 * in a published or attached store, from the CAS that freed the object until the slot is
 * given back: HELD (bit 26) with the releaser's process index, while the releaser gives it
 * back itself (so that the owner recognises the slot of a releaser that died in between,
 * publish.c), or FREEING (bit 27) with the releaser's process index and the low 18 bits of
 * its incarnation, for a slot whose bytes another process's allocator must take back, until
 * a drainer claims it (remote_free.c). Only a FREEING slot can be claimed, so a stale or
 * forged remote-free entry for a slot that is cached or chained already claims nothing. */
#define SHOAL__W_HELD      (UINT64_C(1) << 26)
#define SHOAL__W_FREEING   (UINT64_C(1) << 27)
#define SHOAL__W_MARK_MASK (UINT64_C(3) << 26)
#define SHOAL__FREEING_INC UINT64_C(0x3ffff)   /* incarnation bits a marker keeps */
_Static_assert((SHOAL__W_MARK_MASK & ~SHOAL__W_FREE_LINK) == 0 && SHOAL__IDX_MASK < (UINT64_C(1) << 26) &&
               ((SHOAL__W_CACHED | 0xffu) & SHOAL__W_MARK_MASK) == 0 &&
               ((SHOAL__FREEING_INC << 8 | 0xffu) & SHOAL__W_MARK_MASK) == 0,
               "HELD and FREEING markers are told apart from a chain link, a cache tag and a claimed slot");
static inline uint64_t shoal__freeing_mark(void)
{
    uint64_t me = shoal__chunk_me;   /* shoal__chunk_id: incarnation << 8 | process */
    return SHOAL__W_FREEING | (me & 0xffu) | (((me >> 8) & SHOAL__FREEING_INC) << 8);
}
static inline bool shoal__w_freeing(uint64_t w)
{
    return shoal__w_state(w) == SHOAL__FREE && (w & SHOAL__W_MARK_MASK) == SHOAL__W_FREEING;
}
/* The FREEING word w names process `proc` of incarnation `inc` as its releaser. */
static inline bool shoal__freeing_by(uint64_t w, unsigned proc, uint32_t inc)
{
    return shoal__w_freeing(w) && (w & 0xffu) == proc &&
           ((w >> 8) & SHOAL__FREEING_INC) == (inc & SHOAL__FREEING_INC);
}
/* The releaser a FREEING word names: still that live process? */
static inline bool shoal__freeing_live(const struct shoal__mp *x, uint64_t w)
{
    const struct shoal__proc *P = &x->procs[w & 0xffu];
    return atomic_load_explicit(&P->state, memory_order_acquire) == SHOAL__PROC_LIVE &&
           (atomic_load_explicit(&P->inc, memory_order_relaxed) & SHOAL__FREEING_INC) ==
           ((w >> 8) & SHOAL__FREEING_INC);
}

/* ---- the owner's own records (core/remote_free.c) ------------------------------------------- */
/* While its store is published, the owner records in private memory where the bytes of each
 * of its objects are (or, spilled, its extent in the spill file), and frees from that record
 * only: a client that rewrites a slot's offset, length or process, or pushes forged
 * remote-free entries, can make the owner leak, never free a block that holds a live
 * object's bytes. One record per slot; written by the owner thread that allocates or
 * frees the object's bytes, ordered by the slot word like off and len themselves. */
struct shoal__own {
    _Atomic uint64_t off;         /* OWN_VALID | [OWN_SPILLED] | offset (or spill extent) */
    _Atomic uint64_t len;
};
#define SHOAL__OWN_VALID   (UINT64_C(1) << 63)
#define SHOAL__OWN_SPILLED (UINT64_C(1) << 62)
extern struct shoal__own *shoal__own;   /* nslots records; NULL unless published */

static inline void shoal__own_set(uint64_t idx, uint64_t off, uint64_t len)
{
    atomic_store_explicit(&shoal__own[idx].len, len, memory_order_relaxed);
    atomic_store_explicit(&shoal__own[idx].off, off | SHOAL__OWN_VALID, memory_order_relaxed);
}
/* The record of slot idx, taken (so that it is freed once): false when there is none. */
static inline bool shoal__own_take(uint64_t idx, uint64_t *off, uint64_t *len, bool *spilled)
{
    uint64_t v = atomic_exchange_explicit(&shoal__own[idx].off, 0, memory_order_relaxed);
    if (!(v & SHOAL__OWN_VALID))
        return false;
    *spilled = (v & SHOAL__OWN_SPILLED) != 0;
    *off = v & ~(SHOAL__OWN_VALID | SHOAL__OWN_SPILLED);
    *len = atomic_load_explicit(&shoal__own[idx].len, memory_order_relaxed);
    return true;
}
static inline bool shoal__own_peek(uint64_t idx, uint64_t *off, uint64_t *len)
{
    uint64_t v = atomic_load_explicit(&shoal__own[idx].off, memory_order_relaxed);
    *off = v & ~(SHOAL__OWN_VALID | SHOAL__OWN_SPILLED);
    *len = atomic_load_explicit(&shoal__own[idx].len, memory_order_relaxed);
    return (v & (SHOAL__OWN_VALID | SHOAL__OWN_SPILLED)) == SHOAL__OWN_VALID;
}
/* The owner's object idx was spilled (its bytes are freed) to extent ext / restored. */
SHOAL__HIDDEN void shoal__own_spilled(uint64_t idx, uint64_t ext);
SHOAL__HIDDEN void shoal__own_restored(uint64_t idx, uint64_t off);

/* ---- segment set-up (core/mproc.c) ------------------------------------------------------ */
/* Bytes the extension region needs (rounded to pages) for a store of that geometry. */
SHOAL__HIDDEN uint64_t shoal__mp_bytes(unsigned nnodes, uint64_t node_span);
/* Initialise the region at hdr->ext_off (owner, fresh zeroed segment) and make this process
 * index 0. Must run before the arenas are created: the allocator uses the chunk map. */
SHOAL__HIDDEN void shoal__mp_init(shoal__rt_t *rt);
/* Check a mapped segment's extension region against its length (clients, tools); on success
 * take its geometry (shoal__geo). 0 or -1. */
SHOAL__HIDDEN int shoal__mp_check(const struct shoal__hdr *h, uint64_t seg_len);

/* ---- chunks (alloc/chunks.c) -------------------------------------------------------------- */
static inline uint32_t shoal__chunk_id(unsigned proc, uint32_t inc)
{
    return (inc << 8) | proc;
}
/* Take `need` whole chunks in a row of node's span for this process (its slabs and large
 * objects): recycled ones first, found first fit, else fresh ones from the carve. Returns
 * the first chunk's index within the node, or -1 when no such run is free. */
SHOAL__HIDDEN int64_t shoal__run_take(shoal__rt_t *rt, unsigned node, uint64_t need);
/* Give a run back: free for any process at once. */
SHOAL__HIDDEN void shoal__run_give(shoal__rt_t *rt, unsigned node, uint64_t first, uint64_t need);
/* Return every chunk owned by `id` to the recycled pool; returns how many. Owner only,
 * once no object of that process is left. */
SHOAL__HIDDEN uint64_t shoal__chunks_reclaim(shoal__rt_t *rt, uint32_t id);

/* ---- holds: the reference ledger (core/mproc.c) ----------------------------------------- */
/* Non-NULL while this process is attached, or owns a published store: nslots entries. */
extern _Atomic uint64_t *shoal__holds;
/* A ledger entry for a FREE slot in this process's caches (thread.h): generation 0, which
 * no object has and the next object in the slot replaces, and a count that counts nothing. */
#define SHOAL__HOLDS_CACHED UINT64_C(0xffffffff)

/* Record d references taken (d > 0) or dropped (d < 0) on (idx, gen) by this process.
 * About 5 ns (one uncontended CAS on a line only this process writes). A newer generation
 * resets the entry; an update for an older one is dropped (that object is gone). */
static inline void shoal__holds_add(uint64_t idx, uint64_t gen, int32_t d)
{
    _Atomic uint64_t *e = &shoal__holds[idx];
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed), nv;
    do {
        uint64_t g = v >> 32;
        if (g == gen)
            nv = (v & ~(uint64_t)UINT32_MAX) | (uint32_t)((int32_t)(uint32_t)v + d);
        else if (g == 0 || shoal__gen_after(gen, g))   /* unused, cached, or older */
            nv = (gen << 32) | (uint32_t)d;
        else
            return;
        /* relaxed: the owner reads the ledger only after this process is gone (its socket
         * closed), which orders every write before the read. */
    } while (!atomic_compare_exchange_weak_explicit(e, &v, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ---- remote frees (core/remote_free.c) ------------------------------------------------------ */
struct shoal__thr;
/* The last reference to slot idx is gone (its word is already FREE with the next generation
 * and marked FREEING by us) and its bytes belong to process `proc` != this one: queue it
 * for that process. Cold. */
SHOAL__HIDDEN void shoal__rfree_push(shoal__rt_t *rt, uint32_t idx, unsigned proc)
    __attribute__((cold));
/* The drain thread every attached process runs (and the owner of a published store).
 * sock: a client's connection to the owner (watched for the owner's end), else -1. */
SHOAL__HIDDEN int  shoal__drain_start(shoal__rt_t *rt, int sock);
SHOAL__HIDDEN void shoal__drain_stop(void);
/* Service threads (drain, publish) of the owner: */
/* Orders proc state changes by the publish thread against the owner's draining of stacks
 * whose process is gone. Owner-local. */
SHOAL__HIDDEN void shoal__procs_lock(void);
SHOAL__HIDDEN void shoal__procs_unlock(void);
/* Take process p's remote-free stack and give back each slot it claims (only slots marked
 * FREEING). mine: p is this process (its bytes go back to this process's allocator, checked
 * against its private records); else p is gone and its bytes are only uncounted (its chunks
 * are reclaimed whole later). The owner's own objects are freed from its records. Every
 * index and offset is checked.
 * Returns how many entries were taken. The slots land in t's cache: flush it after. */
SHOAL__HIDDEN size_t shoal__drain(shoal__rt_t *rt, struct shoal__thr *t, unsigned p, bool mine);
/* Claim slot idx, whose word was w: true when it was FREEING and is now the caller's. */
SHOAL__HIDDEN bool shoal__claim(shoal__rt_t *rt, uint32_t idx, uint64_t w);
/* Owner: the object in slot idx (a slot the caller holds) is gone: if the owner's records
 * say its bytes are the owner's, free them (or forget its spill extent), uncount it and
 * return true; false when there is no record (not the owner's, or not published). */
SHOAL__HIDDEN bool shoal__own_release(shoal__rt_t *rt, uint32_t idx);
/* A service thread of the owner dropped the last reference to slot idx (oldw: the word
 * before; the word is FREE and the slot the caller's): wake its waiters, and send its
 * bytes where they belong. */
SHOAL__HIDDEN void shoal__free_routed(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx,
                                      uint64_t oldw);
/* Wake process p's drain thread (bump its futex word). */
SHOAL__HIDDEN void shoal__wake_proc(shoal__rt_t *rt, unsigned p);

/* ---- dependents on other processes' objects (core/foreign_deps.c) ------------------------- */
/* shoal__dep_add for an object another process made (its slot s, not complete when looked
 * at): same contract (0 registered, 1 complete already, < 0). Any process. */
SHOAL__HIDDEN int  shoal__dep_add_foreign(shoal_ref ref, shoal__slot *s, shoal__dep *d);
/* The drain thread of every process: fire the foreign dependents whose object completed. */
SHOAL__HIDDEN void shoal__foreign_deps_scan(shoal__rt_t *rt);
/* Shutdown or detach (after the threads that fire them stopped): drop them unfired. */
SHOAL__HIDDEN void shoal__foreign_deps_forget(void);
/* An object someone waits on (its completing CAS saw WAITERS) completed or failed: wake
 * every process that has foreign dependents, which may be waiting on it. Cold. */
SHOAL__HIDDEN void shoal__notify_foreign(shoal__rt_t *rt) __attribute__((cold));

/* ---- publish (owner, core/publish.c) and attach (client, core/attach.c) ------------------- */
/* Validate a store name: 1..64 bytes, no '/'. 0 or SHOAL_EINVAL (message set). */
SHOAL__HIDDEN int  shoal__name_check(const char *name);
/* The socket path of a store name (see core/sockpath.c for where it lives). */
SHOAL__HIDDEN int  shoal__sock_path(const char *name, char *out, size_t cap, int make_dir);
/* Owner: listen on the name's socket and serve attaches; called by shoal_init before the
 * runtime is published. seg_fd/seg_len: the header+table memfd. */
SHOAL__HIDDEN int  shoal__publish_start(shoal__rt_t *rt, const char *name, int seg_fd,
                                        uint64_t seg_len);
/* Owner: stop serving, tell clients, stop the service threads. Idempotent; shoal_shutdown
 * calls it before the scheduler stops (and teardown again). */
SHOAL__HIDDEN void shoal__publish_stop(shoal__rt_t *rt);
/* Owner: drop this process's ledger (teardown, once no thread takes references). */
SHOAL__HIDDEN void shoal__publish_release(void);
/* Client: shoal_shutdown of an attached runtime (lifecycle lock held). */
SHOAL__HIDDEN int  shoal__detach(shoal__rt_t *rt);
/* In a child after fork(): the runtime inherited from the parent is abandoned (its threads
 * do not exist here and its allocator state is a copy), so the child can attach afresh.
 * Registered by every init and attach; the handler is core/runtime.c's, which calls the
 * two below for a published or attached runtime. */
SHOAL__HIDDEN void shoal__atfork_register(void);
SHOAL__HIDDEN void shoal__publish_forget(void);
SHOAL__HIDDEN void shoal__attach_forget(void);

#endif
