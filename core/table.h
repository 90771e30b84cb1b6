/* table.h - the object table: slot layout and the ID <-> slot encoding.
 * The table lives in the shared segment, so an ID names the same object in every attached
 * process; it holds offsets, never pointers. Internal: never installed.
 *
 * ID layout (64 bits):   [63..56] host (must be 0)  [55..30] generation  [29..0] slot index
 * Slot word (64 bits):   [63..38] generation  [37..34] state  [33] waiters  [32] unread
 *                        [31] cached (FREE slots only, thread.h)  [30] deps
 *                        [29..0] reference count
 * deps: a task registered on this pending object (deps.c); set by CAS while the object is
 * pending and cleared by the completing CAS, so a completion without it skips the list.
 * unread (set only while spill_dir is configured): sealed and not read since, a spill
 * candidate (io/spill.h). The fast path's compare expects it clear, so the first get of such
 * an object takes the slow path, which clears it; later gets are fast again.
 * A ready object's high 32 bits equal (id >> 30) << 6 | READY << 2 for the ID that names
 * it; a nonzero host field makes that value exceed 32 bits, so one compare checks host,
 * generation and state together (the lookup fast path).
 *
 * Synchronisation:
 *   word  - written only by CAS or by the exclusive owner of a free slot. A transition to
 *           READY/FAILED is a release (publishes off/len/data); get loads it with acquire.
 *   off, len, aux - written before the release that publishes the slot; read after acquire.
 */
#ifndef SHOAL_CORE_TABLE_H
#define SHOAL_CORE_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#include "shoal.h"

#define SHOAL__IDX_BITS   30
#define SHOAL__GEN_BITS   26
#define SHOAL__IDX_MASK   ((UINT64_C(1) << SHOAL__IDX_BITS) - 1)
#define SHOAL__GEN_MASK   ((UINT64_C(1) << SHOAL__GEN_BITS) - 1)
#define SHOAL__MAX_SLOTS  (UINT64_C(1) << 26)   /* table size cap: 64M objects */

enum shoal__state {
    SHOAL__FREE = 0,     /* on a free list */
    SHOAL__CREATED = 1,  /* shoal_create'd, not sealed: owner writes the buffer */
    SHOAL__PENDING = 2,  /* a task result or file read not produced yet (no data yet) */
    SHOAL__READY = 3,    /* sealed: immutable, readable */
    SHOAL__FAILED = 4,   /* data = message; aux.code = SHOAL_ETASK/EIO/ECANCELED */
    SHOAL__SPILLED = 5,  /* sealed, bytes on disk (io/spill) */
    SHOAL__SPILLING = 6, /* sealed, being written to disk; bytes still resident (io/spill) */
    SHOAL__RESTORING = 7,/* sealed, being read back from disk (io/spill) */
};

#define SHOAL__W_LOW_MASK    UINT64_C(0xffffffff)   /* refs and deps, or a FREE slot's tag */
#define SHOAL__W_REFS_MASK   UINT64_C(0x3fffffff)
#define SHOAL__REFS_MAX      ((uint32_t)SHOAL__W_REFS_MASK)
#define SHOAL__W_DEPS        (UINT64_C(1) << 30)
#define SHOAL__W_WAITERS     (UINT64_C(1) << 33)
#define SHOAL__W_UNREAD      (UINT64_C(1) << 32)
#define SHOAL__W_STATE_SHIFT 34
#define SHOAL__W_STATE_MASK  (UINT64_C(0xf) << SHOAL__W_STATE_SHIFT)
#define SHOAL__W_GEN_SHIFT   38

typedef struct shoal__slot {
    _Atomic uint64_t word;   /* gen | state | waiters | refs, see above */
    uint64_t off;            /* byte offset of the data from the arena span base; free: link */
    uint64_t len;            /* bytes */
    uint32_t aux;            /* [7..0] allocating process index, [15..8] -error code if FAILED,
                                [16] was read since sealed (spill candidate bookkeeping) */
    _Atomic uint32_t next;   /* free-list / remote-free link (slot index). With spilling on,
                                while READY: when it went cold (seal era); while SPILLED or
                                RESTORING: its spill-file extent in 4 KiB pages (io/spill) */
} shoal__slot;
_Static_assert(sizeof(shoal__slot) == 32, "slot layout is shared between processes");
/* The inline lookup in shoal.h reads word, off and len by position. */
_Static_assert(sizeof(shoal__slot) == (1u << SHOAL__SLOT_SHIFT), "slot size");
_Static_assert(__builtin_offsetof(shoal__slot, off) == 8 && __builtin_offsetof(shoal__slot, len) == 16,
               "slot field offsets used by shoal.h");
_Static_assert(SHOAL__ID_IDX_BITS == 30 && SHOAL__READY_HI == (3u << 2), "ID layout used by shoal.h");

static inline uint64_t shoal__id_idx(uint64_t id) { return id & SHOAL__IDX_MASK; }
static inline uint64_t shoal__id_gen(uint64_t id) { return (id >> SHOAL__IDX_BITS) & SHOAL__GEN_MASK; }
static inline uint64_t shoal__id_make(uint64_t idx, uint64_t gen) { return (gen << SHOAL__IDX_BITS) | idx; }

static inline uint64_t shoal__w_gen(uint64_t w)   { return w >> SHOAL__W_GEN_SHIFT; }
static inline unsigned shoal__w_state(uint64_t w) { return (unsigned)((w & SHOAL__W_STATE_MASK) >> SHOAL__W_STATE_SHIFT); }
static inline uint32_t shoal__w_refs(uint64_t w)  { return (uint32_t)(w & SHOAL__W_REFS_MASK); }
static inline uint64_t shoal__w_make(uint64_t gen, unsigned state, uint32_t refs)
{
    return (gen << SHOAL__W_GEN_SHIFT) | ((uint64_t)state << SHOAL__W_STATE_SHIFT) | refs;
}
/* Not complete yet (CREATED or PENDING): readers wait, dependents register. */
static inline bool shoal__w_pending(uint64_t w)
{
    unsigned st = shoal__w_state(w);
    return st == SHOAL__CREATED || st == SHOAL__PENDING;
}
/* The high 32 bits a slot holds when id names it and it is READY without waiters. */
static inline uint64_t shoal__id_ready_hi(uint64_t id)
{
    return ((id >> SHOAL__IDX_BITS) << 6) | ((uint64_t)SHOAL__READY << 2);
}

#endif
