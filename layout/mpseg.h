/* mpseg.h - the multi-process part of the shared segment: the process table (one entry per
 * attached process, with its remote-free stack and wake word), the chunk map that says which
 * process's allocator owns each piece of the arenas, each process's share of the store's
 * counters, published per-worker counters, and the per-process reference ledger ("holds").
 * Internal: never installed.
 *
 * Segment layout: [shoal__hdr][shoal__mp at hdr->ext_off][chunk map][worker stats]
 * [in-flight table][list holds][slots].
 * Offsets only; every process maps the same memfd.
 *
 * Trust: every attached process (same uid) can write all of this. The owner reads what a
 * client wrote only through bounds checks, frees its own bytes from records only it can
 * write (own[], below), and answers garbage with a leak and a notice, never a crash.
 *
 * Synchronisation:
 *   procs[p].state   written by the owner only (mproc/publish.c); read relaxed/acquire by all.
 *   procs[p].rfree   MPSC stack of freed slot indices whose bytes process p allocated.
 *                    Pushers CAS (seq_cst: pairs with the drainer's seq_cst store of
 *                    `sleeping`, a Dekker pair). p's drainer pops one entry at a time
 *                    (acquire CAS), naming it in procs[p].draining first, so that an entry
 *                    it took and never claimed is found when it dies; once p is gone the
 *                    owner takes the whole chain with one acquire exchange. One popper per
 *                    stack, and an entry goes back on a stack only after it was claimed:
 *                    no ABA.
 *   procs[p].wake    futex word; a pusher bumps it (release) only when it made the stack
 *                    non-empty and saw `sleeping`, so steady traffic makes no syscall.
 *   chunk map        CAS by the allocator of every process (alloc/chunks.c); reclaimed by
 *                    the owner once a dead process's objects are all gone.
 *   shard[p]         process p's share of the node counters (relaxed RMW): what it counted
 *                    for the objects it allocated. Written by p, by the drainer of p's
 *                    remote-free stack, and, once p is gone, by the owner alone.
 *   holds[idx]       [63..32] generation (layout/table.h: never 0), [31..6] signed count of
 *                    references this process took on that object minus those it dropped,
 *                    [5..0] the window (1..63) of a thread of this process inside a transfer
 *                    or accept of that object, 0 = none (below, "windows"); 0 = never used;
 *                    0xffffffff = a slot in this process's caches (SHOAL__HOLDS_CACHED). CAS
 *                    by this process only, read by the owner after the process is gone.
 *   windows          after the ledger's nslots entries, in the same memfd (struct
 *                    shoal__wins): which thread window names which in-flight record.
 *                    Written by this process only, read by the owner after it is gone.
 *   lists[idx]       list holds: [63..32] generation, [31..0] signed count of the references
 *                    that lists of objects with refs (core/objrefs.h) hold on that object, a
 *                    count no ledger has. CAS by whichever process takes or drops such a
 *                    reference; read by the owner when a process dies (below).
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
 *   - transfer and accept move a reference between the ledger and an in-flight record, two
 *     words: the ledger entry names the thread's window while it does, and the window
 *     names the record and its sequence, whose state then says whether the move happened
 *     (below, "windows"). So a dead process's ledger, read with its windows, is exact or
 *     low, never high, and the owner drops exactly what it says, reading nothing that
 *     live processes move.
 *   - what can stay leaked: the reference a retain or release was taking or dropping (on
 *     the object, not in the ledger), free slots moving between a thread cache and the
 *     shared list, and a forwarded slot's index. Never bytes or a live object's
 *     reference. tests/test_mp_crash.c kills a client at every instruction of such calls,
 *     also while what it holds is named by lists and in flight.
 */
#ifndef SHOAL_LAYOUT_MPSEG_H
#define SHOAL_LAYOUT_MPSEG_H

#include <stdatomic.h>
#include <stdbool.h>
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
    _Atomic uint64_t draining;    /* the entry its drainer is taking off rfree, as an id
                                     (index, FREEING generation); 0 = none (remote_free.c) */
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

/* A process's lookup counters (shoal_stats: get_slow, stale_ids + invalid_ids, get_waits),
 * published by its drain thread whenever it goes idle and once a second while a tool is
 * attached (mproc/remote_free.c); relaxed, for tools only. Not in its process line, which is
 * full and whose stack head every releaser CASes. */
struct shoal__lookups {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t get_slow;
    _Atomic uint64_t bad_ids;
    _Atomic uint64_t get_waits;
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
    _Atomic uint64_t deaths;      /* clients whose end the owner has processed (mproc/publish.c):
                                     for tools, and tests that wait for it */
    uint64_t xfer_off;            /* the in-flight table (struct shoal__inflight) from the start */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t recycled[SHOAL__MAX_NODES];
    struct shoal__proc procs[SHOAL__MAX_PROCS];
    struct shoal__shard shard[SHOAL__MAX_PROCS];
    struct shoal__lookups lookups[SHOAL__MAX_PROCS];
};
_Static_assert(__builtin_offsetof(struct shoal__mp, recycled) == SHOAL__CACHELINE,
               "the scalar fields of shoal__mp fit its first line");


/* ---- refs in flight (mproc/inflight.c) -------------------------------------------------------
 * shoal_transfer moves one of the sender's references into a record here; shoal_accept moves
 * it out into the receiver's hands; the owner releases it when its deadline passes. The
 * record holds the reference (the object's count does not change on either move), so the
 * object lives while the ref travels, whatever the sender does.
 *   st        [63..32] sequence (bumped by every move into FREE/EXPIRED and into RESERVED, so
 *             a CAS against a stale view fails), [31..10] low 22 bits of the incarnation and
 *             [9..2] the index of the process that reserved or sent it, [1..0] phase;
 *             TAKEN (phase FREE): [31..16] low 16 bits of the receiver's incarnation,
 *             [15..10] the window (1..63) of the thread that took it, [9..2] its index.
 *   id        the ref; deadline: CLOCK_MONOTONIC ns (one clock for every process).
 * A record is found from the ref's home (a hash) within SHOAL__XFER_PROBE records, so an
 * accept, and the owner's count of what is in flight for one object, read a bounded window.
 * Moves (each one CAS of st; every process may make them, bounds by construction):
 *   FREE|EXPIRED -> RESERVED   sender, then writes id and deadline
 *   RESERVED -> INFLIGHT       sender (release: publishes id and deadline), inside its
 *                              window (below); then its ledger drops the reference
 *   INFLIGHT -> TAKEN          receiver, inside its window, its ledger already counting the
 *                              reference; TAKEN is FREE naming the receiver, at the next
 *                              sequence: no sender reserves it, so it still says, if the
 *                              receiver dies now, that its move happened
 *   TAKEN -> FREE              the receiver, once its ledger is settled (the owner, for a
 *                              receiver that died before)
 *   INFLIGHT -> EXPIRED        the owner at the deadline, then it drops the reference; the
 *                              id stays, so a late accept answers SHOAL_ETIMEDOUT
 *   RESERVED -> FREE           the owner, for a sender that died before sending
 * Windows (published or attached store; struct shoal__wins). A move between a ledger and a
 * record is two words, and a process may die between them, so the owner must learn which
 * were written. A thread takes a window k of its process (a bit of `used`), writes in it
 * the record and the sequence it moves (win[k]), then names k in its ledger entry for the
 * object - one CAS, which waits while another thread of the process has a window named
 * there (one move per process and object at a time) - then moves the record, then settles
 * the ledger and clears k with one CAS:
 *   send    enter (count unchanged), RESERVED -> INFLIGHT, leave (count - 1): the record
 *           still RESERVED at the window's sequence by this process = not sent (the
 *           count is right), anything else = sent (the count is one too high);
 *   accept  enter (count + 1), INFLIGHT -> TAKEN (or a failed CAS), leave (count - 1 if it
 *           failed): the record TAKEN by this process at the window's sequence + 1 = taken
 *           (the count is right), anything else = not (one too high). TAKEN names the
 *           window, and the receiver closes it only after freeing the record: a thread of
 *           the process that read the record at the same sequence, lost it and entered
 *           once the winner had settled its entry (the record still TAKEN) is told apart.
 * A RESERVED record only its sender moves, and a TAKEN one only its receiver, while they
 * live: once the process is gone, what the owner reads in the record is final. */
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


/* This process's copy of the region's geometry, taken when the owner lays it out or a client
 * has checked it: nobody follows an offset that another process could rewrite. */
struct shoal__geo {
    struct shoal__mp *ext;
    _Atomic uint32_t *map;        /* chunk map, node-major */
    struct shoal__wstat *wstats;
    struct shoal__inflight *xfer;     /* the in-flight table */
    _Atomic uint64_t *lists;      /* list holds, one entry per slot */
    unsigned shift;               /* chunk size = 1 << shift */
    uint64_t nchunks;             /* per node */
};
extern struct shoal__geo shoal__geo;   /* filled by mproc/mproc.c; defined in layout/globals.c */
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
/* ---- list holds (core/objrefs.c) -----------------------------------------------------------
 * The references that lists hold on their objects, per object: they are in no ledger. Raised
 * before the object's count (with a release fence) and lowered after it, so it never reads
 * low. The owner's processing of a death no longer reads it (it drops exactly what the dead
 * ledger and its windows say, publish.c release_one); it is kept for tools and tests. A
 * newer generation resets the entry; an older one's update is dropped (that object is
 * gone). */
static inline _Atomic uint64_t *shoal__lists_of(uint64_t idx)
{
    return &shoal__geo.lists[idx];
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
static inline void shoal__shards_sum(shoal__rt_t *rt, int64_t bytes[], int64_t objs[])
{
    for (unsigned p = 0; p < SHOAL__MAX_PROCS; p++) {
        const struct shoal__shard *sh = shoal__shard_of(p);
        for (unsigned n = 0; n < rt->nnodes; n++) {
            bytes[n] += atomic_load_explicit(&sh->bytes[n], memory_order_relaxed);
            objs[n] += atomic_load_explicit(&sh->objs[n], memory_order_relaxed);
        }
    }
}

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

/* ---- the owner's own records (mproc/remote_free.c) ------------------------------------------- */
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
static inline void shoal__own_spilled(uint64_t idx, uint64_t ext)
{
    if (shoal__own)   /* the bytes are freed by the spiller; the record keeps the extent */
        atomic_store_explicit(&shoal__own[idx].off, ext | SHOAL__OWN_VALID | SHOAL__OWN_SPILLED,
                              memory_order_relaxed);
}
static inline void shoal__own_restored(uint64_t idx, uint64_t off)
{
    if (shoal__own)
        atomic_store_explicit(&shoal__own[idx].off, off | SHOAL__OWN_VALID, memory_order_relaxed);
}

/* ---- chunk-map ownership ------------------------------------------------------------------ */
static inline uint32_t shoal__chunk_id(unsigned proc, uint32_t inc)
{
    return (inc << 8) | proc;
}

/* ---- holds: the reference ledger (mproc/mproc.c) ----------------------------------------- */
/* Non-NULL while this process is attached, or owns a published store: nslots entries. */
extern _Atomic uint64_t *shoal__holds;
/* A ledger entry for a FREE slot in this process's caches (thread.h): generation 0, which
 * no object has and the next object in the slot replaces, and a count that counts nothing. */
#define SHOAL__HOLDS_CACHED UINT64_C(0xffffffff)

/* An entry's low half: [31..6] a signed count (26 bits: more than SHOAL__REFS_MAX either
 * way), [5..0] a window (ledgers only; 0 in the list holds). */
#define SHOAL__GC_WIN   UINT32_C(63)
#define SHOAL__GC_ONE   UINT32_C(64)
static inline int32_t shoal__gcount(uint64_t v)
{
    return (int32_t)((uint32_t)v & ~SHOAL__GC_WIN) / (int32_t)SHOAL__GC_ONE;
}
static inline unsigned shoal__gcount_win(uint64_t v)
{
    return (unsigned)v & SHOAL__GC_WIN;
}

/* Invariant: an entry that says SHOAL__HOLDS_CACHED is rewritten only by this process's
 * own cache moves (shoal__slot_tag, core/thread.h) and by the create of the slot's next
 * object (shoal__holds_create). While it says so the slot is FREE in one of our caches, so
 * no object of any generation lives there: whatever a retain, release, spill claim, or a
 * transfer or accept window adds for some generation is for a dead object (a stale ref, or
 * an accept racing its record's expiry). Written over the mark, it would hide the cached slot
 * from the owner when we die (mproc/publish.c, recover_one checks the mark, or the slot's
 * own generation), and the slot would be lost for the store's life. So those leave it. */
static inline bool shoal__holds_cached(uint64_t v)
{
    return v == SHOAL__HOLDS_CACHED;
}

/* Add d to the count of (idx, gen) in a [generation | signed count | window] entry (a
 * ledger's, or the list holds), keeping its window: a newer generation resets the entry;
 * an update for an older one is dropped (that object is gone), and so is any update of a
 * cached slot's entry (above) unless it is the create of the slot's next object (create).
 * relaxed: see each caller for what orders it. */
static inline void shoal__gcount_upd(_Atomic uint64_t *e, uint64_t gen, int32_t d, bool create)
{
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed), nv;
    do {
        uint64_t g = v >> 32;
        if (g == gen)
            nv = (v & ~(uint64_t)UINT32_MAX) | (uint32_t)((uint32_t)v + (uint32_t)d * SHOAL__GC_ONE);
        else if (shoal__holds_cached(v) && !create)
            return;
        else if (g == 0 || shoal__gen_after(gen, g))   /* unused, cached (create), or older */
            nv = (gen << 32) | ((uint32_t)d * SHOAL__GC_ONE);
        else
            return;
    } while (!atomic_compare_exchange_weak_explicit(e, &v, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
}
static inline void shoal__gcount_add(_Atomic uint64_t *e, uint64_t gen, int32_t d)
{
    shoal__gcount_upd(e, gen, d, false);
}

/* The positive count an entry keeps for (idx, gen), 0 for another generation. */
static inline uint32_t shoal__gcount_of(uint64_t v, uint64_t gen)
{
    int32_t n = shoal__gcount(v);
    return (v >> 32) == gen && n > 0 ? (uint32_t)n : 0;
}

/* A ledger's thread windows (layout above, "Windows"): in the ledger's memfd, after its
 * nslots entries. win[k]: [63..32] the record's sequence, [31..16] the record's index,
 * [1..0] SHOAL__WIN_SEND or SHOAL__WIN_ACCEPT. used: bit k = window k taken (never bit 0). */
#define SHOAL__NWINS     64u
#define SHOAL__WIN_SEND   1u
#define SHOAL__WIN_ACCEPT 2u
struct shoal__wins {
    _Atomic uint64_t used;
    _Atomic uint64_t win[SHOAL__NWINS];
};
#define SHOAL__WINS_BYTES 4096u
_Static_assert(sizeof(struct shoal__wins) <= SHOAL__WINS_BYTES && SHOAL__NWINS - 1 == SHOAL__GC_WIN &&
               SHOAL__XFER_RECS <= 65536, "windows: one page, indices fit an entry, records 16 bits");
/* Bytes of a ledger's memfd: its entries, then its windows. */
static inline uint64_t shoal__ledger_bytes(uint64_t nslots)
{
    return nslots * sizeof(uint64_t) + SHOAL__WINS_BYTES;
}
static inline struct shoal__wins *shoal__wins_of(_Atomic uint64_t *ledger, uint64_t nslots)
{
    return (struct shoal__wins *)(void *)(ledger + nslots);
}

/* Record d references taken (d > 0) or dropped (d < 0) on (idx, gen) by this process.
 * About 5 ns (one uncontended CAS on a line only this process writes). relaxed: the owner
 * reads the ledger only after this process is gone (its socket closed), which orders every
 * write before the read. */
static inline void shoal__holds_add(uint64_t idx, uint64_t gen, int32_t d)
{
    shoal__gcount_add(&shoal__holds[idx], gen, d);
}
/* A new object (idx, gen) with refs references, made by this process: the one update that
 * replaces a cached slot's mark (the slot left our cache for it), as it replaces an entry
 * for an older generation or one never used. Before the slot's word (core/object.c). */
static inline void shoal__holds_create(uint64_t idx, uint64_t gen, int32_t refs)
{
    shoal__gcount_upd(&shoal__holds[idx], gen, refs, true);
}

#endif
