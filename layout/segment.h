/* segment.h - the shared segment header: what every attached process reads first.
 * Holds sizes, the slot allocator's shared state, the completion futex and per-node
 * counters. Offsets and indices only, never pointers. Internal: never installed.
 *
 * Synchronisation:
 *   free_head  tagged Treiber stack of free slots (tag defeats ABA); CAS acq_rel.
 *   bump       next never-used slot index; fetch_add relaxed (the slot itself is then owned).
 *   wake[k]    futex words of the objects whose slot index is k modulo SHOAL__WAKE_WORDS:
 *              bumped (release) by a completion or free that saw the WAITERS bit; a waiter
 *              reads its object's word (acquire) before setting WAITERS (core/wait.c).
 *   seal_seq   the futex word of threads waiting for several objects at once (shoal_wait
 *              with n > 1), counted in multi; bumped as wake[k] is, when multi is not 0.
 *   node[n].*  counters, relaxed; carve is CAS'd by the allocator of every process.
 */
#ifndef SHOAL_CORE_SEGMENT_H
#define SHOAL_CORE_SEGMENT_H

#include <stdatomic.h>
#include <stdint.h>

#include "rt.h"

#define SHOAL__MAGIC       UINT64_C(0x314c414f4853)   /* "SHOAL1" */
#define SHOAL__SEG_VERSION 9u   /* 2: ext_off (layout/mpseg.h); 3: spill counters;
                                   4: 32-bit generations (table.h), wake words;
                                   5: per-process counter shards, fdeps (layout/mpseg.h);
                                   6: per-process lookup counters on their own line;
                                   7: the in-flight table (layout/mpseg.h, xfer_off), the
                                      entry a client is draining (procs[].draining);
                                   8: list holds, the references lists hold per object
                                      (layout/mpseg.h), after the in-flight table;
                                   9: ledger entries name a thread window, a ledger's
                                      memfd ends with its windows, TAKEN in-flight
                                      records (layout/mpseg.h) */

struct shoal__node_stats {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t bytes_used;  /* shoal__acct_size of live objects */
    _Atomic uint64_t objects;
    _Atomic uint64_t carve;       /* next uncarved byte offset within the node's span */
    uint64_t cap;                 /* capacity of this node in bytes (store_bytes / nnodes) */
};

/* Completions wake only the threads waiting on that object's word (core/wait.c): W threads
 * waiting on W objects cost W wake-ups, not W^2. One line each: completers of different
 * objects do not share a line. */
#define SHOAL__WAKE_WORDS 256
struct shoal__wake_word { _Alignas(SHOAL__CACHELINE) _Atomic uint32_t seq; };

struct shoal__hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t nnodes;
    uint64_t store_bytes;
    uint64_t node_span;           /* bytes of arena span per node (cap + allocator slack) */
    uint64_t nslots;
    uint64_t slots_off;           /* byte offset of the slot table from the header */
    int32_t  huge_kind;           /* SHOAL_PAGES_* */
    uint32_t gen_base;            /* generation of slots no earlier store used (slots.c) */
    uint64_t ext_off;             /* multi-process region (layout/mpseg.h) from the header */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t free_head;  /* [63..32] tag [31..0] slot idx */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t bump;
    _Alignas(SHOAL__CACHELINE) _Atomic uint32_t seal_seq;
    _Atomic uint32_t multi;       /* threads sleeping on seal_seq */
    struct shoal__node_stats node[SHOAL__MAX_NODES];
    /* Spilling's counters (io/spill.c): the owner's I/O thread spills and restores, every
     * attached process (shoal_stats_get, shoal-stat) reads them. Relaxed. */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t spill[16];
    struct shoal__wake_word wake[SHOAL__WAKE_WORDS];
};
_Static_assert(sizeof(struct shoal__hdr) % SHOAL__CACHELINE == 0, "header is cache-line sized");

#endif
