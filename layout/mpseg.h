/* mpseg.h - the multi-process part of the shared segment: the process table (one entry per
 * attached process, with its remote-free stack and wake word), the chunk map that says which
 * process owns each chunk of the arenas, published per-worker counters, and the
 * per-process reference ledger ("holds"). Internal: never installed.
 *
 * Segment layout: [shoal__hdr][shoal__mp at hdr->ext_off][chunk map][worker stats][slots].
 * Offsets only; every process maps the same memfd.
 *
 * Synchronisation:
 *   procs[p].state   written by the owner only (mproc/publish.c); read relaxed/acquire by all.
 *   procs[p].rfree   MPSC stack of freed slot indices whose bytes process p allocated.
 *                    Pushers CAS (seq_cst: pairs with the drainer's seq_cst store of
 *                    `sleeping`, a Dekker pair); the drainer takes the whole chain with one
 *                    acquire exchange, so there is no ABA.
 *   procs[p].wake    futex word; a pusher bumps it (release) only when it made the stack
 *                    non-empty and saw `sleeping`, so steady traffic makes no syscall.
 *   chunk map        CAS by the allocator of every process (alloc/chunks.c); reclaimed by
 *                    the owner once a dead process's objects are all gone.
 *   holds[idx]       [63..32] generation (layout/table.h: never 0), [31..0] signed count of
 *                    references this process took on that object minus those it dropped;
 *                    0 = never used; generation 0 with count -1 = a slot in this process's
 *                    caches (SHOAL__HOLDS_CACHED). CAS by this process only, read by the
 *                    owner after the process is gone.
 */
#ifndef SHOAL_LAYOUT_MPSEG_H
#define SHOAL_LAYOUT_MPSEG_H

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
    /* This process's lookup counters (shoal_stats: get_slow, stale_ids + invalid_ids,
     * get_waits), published by its drain thread whenever it goes idle and once a second
     * while a tool is attached (mproc/remote_free.c); relaxed, for tools only. */
    _Atomic uint64_t get_slow;
    _Atomic uint64_t bad_ids;
    _Atomic uint64_t get_waits;
};
_Static_assert(sizeof(struct shoal__proc) == SHOAL__CACHELINE, "one line per process");

/* Per-worker counters the owner's scheduler publishes for tools (shoal-stat): worker w
 * writes its own line (relaxed: sched/worker.c, task.c, park.c); readers take a snapshot.
 * nworkers stays 0 until the scheduler starts. */
struct shoal__wstat {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t tasks_run;
    _Atomic uint64_t tasks_stolen;
    _Atomic uint64_t parks;
    int32_t node;
    int32_t cpu;
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
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t recycled[SHOAL__MAX_NODES];
    struct shoal__proc procs[SHOAL__MAX_PROCS];
};

/* This process's copy of the region's geometry, taken when the owner lays it out or a client
 * has checked it: nobody follows an offset that another process could rewrite. */
struct shoal__geo {
    struct shoal__mp *ext;
    _Atomic uint32_t *map;        /* chunk map, node-major */
    struct shoal__wstat *wstats;
    unsigned shift;               /* chunk size = 1 << shift */
    uint64_t nchunks;             /* per node */
};
extern struct shoal__geo shoal__geo;   /* filled by mproc/mproc.c; defined in layout/globals.c */

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

/* ---- chunk-map ownership ------------------------------------------------------------------ */
/* This process's chunk-map owner id: (incarnation << 8) | process index; never 0 or FREE. */
extern uint32_t shoal__chunk_me;
static inline uint32_t shoal__chunk_id(unsigned proc, uint32_t inc)
{
    return (inc << 8) | proc;
}

/* ---- holds: the reference ledger ---------------------------------------------------------- */
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

#endif
