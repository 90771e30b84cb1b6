/* table.h - the object table: slot layout and the ID <-> slot encoding.
 * The table lives in the shared segment, so an ID names the same object in every attached
 * process; it holds offsets, never pointers. Internal: never installed.
 *
 * ID layout (64 bits):   [63..32] generation  [31..26] host (must be 0)  [25..0] slot index
 * Slot word (64 bits):   [63..32] generation  [31..28] state  [27] waiters  [26] unread
 *                        [25] deps  [24] cached (FREE slots only, thread.h)
 *                        [23..0] reference count
 * The ID's high half equals the word's high half for the object it names, so the lookup
 * fast path (shoal.h) checks generation, state and flags with one XOR of word and ID, a
 * shift and one compare: a hit needs READY with waiters and unread clear, any count (deps
 * and cached, bits the ID's index overlaps, are never set on a READY word: the completing
 * CAS clears deps, cached is a FREE slot's). It takes the index as the ID's low 32
 * bits, host field included: the table has at most 2^26 slots, so a nonzero host field is
 * out of bounds and misses.
 *
 * Generations are 32 bits, never 0 (an ID with generation 0 is never valid, so a zeroed
 * word never matches one), and wrap around from 2^32 - 1 to 1 (shoal__gen_next): a slot is
 * never retired, so a store under any churn runs for ever. A freed object's ID answers
 * SHOAL_ESTALE until its slot has been reused 2^32 - 1 times (at a billion reuses of that
 * one slot per second, four seconds; at this machine's ~20 million puts per second spread
 * over the default 65536 slots, more than a year; every reuse of that slot must happen
 * while the holder of the stale ID keeps it). Generations are compared for equality only;
 * "newer" is serial-number arithmetic (shoal__gen_after) where a direction is needed.
 * Across shutdown and init in one process, each slot's generations continue where the last
 * store left them (slots.c), so a ref kept across stores obeys the same rule.
 *
 * started, cancel (PENDING task results only; the same bits as cached and unread, which a
 * PENDING slot never carries): started is set by the worker that begins the task, cancel by
 * shoal_cancel, each by CAS, so that exactly one of them wins a task not yet begun
 * (sched/task.c, core/object.c shoal__obj_cancel); the completing CAS clears both.
 * deps: a task registered on this pending object (deps.c); set by CAS while the object is
 * pending and cleared by the completing CAS, so a completion without it skips the list.
 * unread (set only while spill_dir is configured): sealed and not read since, a spill
 * candidate (io/spill.h). The fast path's compare expects it clear, so the first get of such
 * an object takes the slow path, which clears it; later gets are fast again.
 * waiters: a thread sleeps until the object completes or is freed (wait.c).
 * A FREE slot's low 28 bits are free-form: a chain link (slots.c) or a cache tag (thread.h);
 * its state bits stay FREE (0).
 *
 * The reference count has 24 bits (16.7 million references to one object): a retain past
 * that answers SHOAL_EINVAL, and internal paths that take references check it.
 *
 * Synchronisation:
 *   word  - written only by CAS or by the exclusive owner of a free slot. A transition to
 *           READY/FAILED is a release (publishes off/len/data); get loads it with acquire.
 *   off, len, aux - written before the release that publishes the slot; read after acquire.
 */
#ifndef SHOAL_CORE_TABLE_H
#define SHOAL_CORE_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shoal.h"

#define SHOAL__IDX_BITS   26
#define SHOAL__HOST_BITS  6
#define SHOAL__GEN_SHIFT  32
#define SHOAL__IDX_MASK   ((UINT64_C(1) << SHOAL__IDX_BITS) - 1)
#define SHOAL__GEN_MAX    UINT64_C(0xffffffff)
#define SHOAL__MAX_SLOTS  (UINT64_C(1) << SHOAL__IDX_BITS)   /* table size cap: 64M objects */

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

#define SHOAL__W_LOW_MASK    UINT64_C(0xffffffff)   /* state, flags, refs; a FREE slot's tag */
#define SHOAL__W_REFS_MASK   UINT64_C(0x00ffffff)
#define SHOAL__REFS_MAX      ((uint32_t)SHOAL__W_REFS_MASK)
#define SHOAL__W_CACHED      (UINT64_C(1) << 24)
#define SHOAL__W_DEPS        (UINT64_C(1) << 25)
#define SHOAL__W_UNREAD      (UINT64_C(1) << 26)
#define SHOAL__W_WAITERS     (UINT64_C(1) << 27)
#define SHOAL__W_STARTED     SHOAL__W_CACHED   /* PENDING task result: its task began */
#define SHOAL__W_CANCEL      SHOAL__W_UNREAD   /* PENDING task result: shoal_cancel asked */
#define SHOAL__W_STATE_SHIFT 28
#define SHOAL__W_STATE_MASK  (UINT64_C(0xf) << SHOAL__W_STATE_SHIFT)
#define SHOAL__W_GEN_SHIFT   32
#define SHOAL__W_FREE_LINK   UINT64_C(0x0fffffff)   /* a FREE slot's link or tag bits */

typedef struct shoal__slot {
    _Atomic uint64_t word;   /* gen | state | waiters | refs, see above */
    uint64_t off;            /* byte offset of the data from the arena span base; free: link;
                                a small result held in the slot (len has SHOAL__LEN_INL):
                                its bytes */
    uint64_t len;            /* bytes, or SHOAL__LEN_INL | bytes (below) */
    uint32_t aux;            /* [7..0] allocating process index, [15..8] -error code if FAILED,
                                [16] was read since sealed (spill candidate bookkeeping),
                                [17] a task's result (SHOAL__AUX_TASK: shoal_cancel applies),
                                [18] its allocation ends in a list of contained refs
                                (SHOAL__AUX_REFS, core/objrefs.h) */
    _Atomic uint32_t next;   /* free-list / remote-free link (slot index). With spilling on,
                                while READY: when it went cold (seal era); while SPILLED or
                                RESTORING: its spill-file extent in 4 KiB pages (io/spill) */
} shoal__slot;
_Static_assert(sizeof(shoal__slot) == 32, "slot layout is shared between processes");
/* The inline lookup in shoal.h reads word, off and len by position. */
_Static_assert(sizeof(shoal__slot) == (1u << SHOAL__SLOT_SHIFT), "slot size");
_Static_assert(__builtin_offsetof(shoal__slot, off) == 8 && __builtin_offsetof(shoal__slot, len) == 16,
               "slot field offsets used by shoal.h");
_Static_assert(SHOAL__HIT_LOW == ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT) &&
               SHOAL__HIT_REFS == SHOAL__W_REFS_MASK &&
               (SHOAL__W_CACHED | SHOAL__W_DEPS | SHOAL__W_UNREAD | SHOAL__W_WAITERS) ==
                   (SHOAL__W_LOW_MASK & ~SHOAL__W_STATE_MASK & ~SHOAL__W_REFS_MASK) &&
               SHOAL__W_GEN_SHIFT == SHOAL__GEN_SHIFT && SHOAL__GEN_SHIFT == 32,
               "word layout used by shoal.h: a hit is [gen | HIT_LOW, gen | HIT_LOW | HIT_REFS]");
_Static_assert(SHOAL__HIT_SHIFT == 26 && SHOAL__W_UNREAD == (UINT64_C(1) << SHOAL__HIT_SHIFT) &&
                   SHOAL__W_WAITERS == (UINT64_C(1) << 27) && SHOAL__W_DEPS < SHOAL__W_UNREAD &&
                   SHOAL__W_CACHED < SHOAL__W_UNREAD && SHOAL__IDX_BITS <= SHOAL__HIT_SHIFT &&
                   SHOAL__HIT == (uint64_t)SHOAL__READY << (SHOAL__W_STATE_SHIFT - SHOAL__HIT_SHIFT),
               "shoal.h's hit compare: (word ^ ID) >> HIT_SHIFT == HIT covers generation, "
               "state, waiters and unread, and no bit of the index");
_Static_assert(SHOAL__IDX_BITS + SHOAL__HOST_BITS == 32, "ID layout");
_Static_assert(SHOAL__W_FREE_LINK >= SHOAL__IDX_MASK && (SHOAL__W_FREE_LINK & SHOAL__W_STATE_MASK) == 0,
               "a FREE slot's link fits below its state bits");

/* A task result of at most SHOAL__INL_MAX bytes in a store no other process maps is held in
 * its slot's `off` field, with len = SHOAL__LEN_INL | bytes (core/object.c,
 * shoal__obj_fill_result): no allocation to make or free for it, which was a fifth of the
 * cost of a small task. Such a len lies outside every span, so a reader that checks the
 * bytes against the span (the inline get in shoal.h before it knew this form, the frees,
 * spilling, scans) never takes `off` for an offset; shoal__slot_bytes (rt.h) answers the
 * slot's own field. Never in a published or attached store (no other process sees one). */
#define SHOAL__LEN_INL (UINT64_C(1) << 63)
#define SHOAL__INL_MAX 8u
_Static_assert(SHOAL__INL_MAX <= sizeof(uint64_t) && SHOAL__INL_MAX == 8 &&
               SHOAL__LEN_INL == SHOAL__LEN_INL_BIT, "the form the inline get in shoal.h reads");
static inline bool shoal__len_inl(uint64_t len) { return (len ^ SHOAL__LEN_INL) <= SHOAL__INL_MAX; }

#define SHOAL__AUX_TASK (UINT32_C(1) << 17)
#define SHOAL__AUX_REFS (UINT32_C(1) << 18)

static inline uint64_t shoal__id_idx(uint64_t id)  { return id & SHOAL__IDX_MASK; }
static inline uint64_t shoal__id_host(uint64_t id) { return (uint32_t)id >> SHOAL__IDX_BITS; }
static inline uint64_t shoal__id_gen(uint64_t id)  { return id >> SHOAL__GEN_SHIFT; }
static inline uint64_t shoal__id_make(uint64_t idx, uint64_t gen)
{
    return (gen << SHOAL__GEN_SHIFT) | idx;
}

static inline uint64_t shoal__w_gen(uint64_t w)   { return w >> SHOAL__W_GEN_SHIFT; }
static inline unsigned shoal__w_state(uint64_t w) { return (unsigned)((w & SHOAL__W_STATE_MASK) >> SHOAL__W_STATE_SHIFT); }
static inline uint32_t shoal__w_refs(uint64_t w)  { return (uint32_t)(w & SHOAL__W_REFS_MASK); }
static inline uint64_t shoal__w_make(uint64_t gen, unsigned state, uint32_t refs)
{
    return (gen << SHOAL__W_GEN_SHIFT) | ((uint64_t)state << SHOAL__W_STATE_SHIFT) | refs;
}
/* The generation after g: wraps from 2^32 - 1 to 1, skipping 0 (never a valid ID). */
static inline uint64_t shoal__gen_next(uint64_t g) { return g >= SHOAL__GEN_MAX ? 1 : g + 1; }
/* The generation before g: a FREE slot's word holds the next one, this is the freed one's. */
static inline uint64_t shoal__gen_prev(uint64_t g) { return g <= 1 ? SHOAL__GEN_MAX : g - 1; }
/* Whether generation a was issued after b (serial-number arithmetic, RFC 1982): true when
 * a is less than 2^31 generations ahead of b. Only for generations of one slot that are
 * known to be close (a racing update, a forged ID); equality is what names an object. */
static inline bool shoal__gen_after(uint64_t a, uint64_t b)
{
    return a != b && (uint32_t)(a - b) < UINT32_C(0x80000000);
}
/* Not complete yet (CREATED or PENDING): readers wait, dependents register. */
static inline bool shoal__w_pending(uint64_t w)
{
    unsigned st = shoal__w_state(w);
    return st == SHOAL__CREATED || st == SHOAL__PENDING;
}

#endif
