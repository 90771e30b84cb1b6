/* spill.h - spilling cold objects to spill_dir and restoring them (io/spill.c): the entry
 * points the I/O thread, the file operations and the store's upcalls (core/store.h) use. Internal.
 *
 * Object states involved (table.h): READY|UNREAD (sealed, not read since: a candidate) ->
 * SPILLING (claimed by the spiller, which holds a reference; bytes still resident; a get
 * takes it back to READY and the spill is dropped) -> SPILLED (bytes only on disk; the slot
 * keeps its old offset for node accounting, the file extent lives in a process-local
 * table) -> RESTORING (claimed by the I/O thread with a reference, reading into new bytes)
 * -> READY. Only the I/O thread moves objects into SPILLING, SPILLED and RESTORING.
 * A SPILLED object's `next` is its extent in 4 KiB pages, or, when a failed swap left its
 * bytes in the I/O thread's private memory (parked), a park id at or above 0xF0000000; the
 * owner goes by its own record of both (io/spill.c), the slot's copy is for others to see.
 * Leaving RESTORING clears the WAITERS bit and wakes the waiters (core/wait.c counts a
 * RESTORING object as not settled: a get in another process sleeps there).
 */
#ifndef SHOAL_IO_SPILL_H
#define SHOAL_IO_SPILL_H

#include "io.h"

/* At start (before the I/O thread runs): validate dir, remove the files of dead owners,
 * create this process's spill file. SHOAL_EINVAL with a message when dir is unusable. */
SHOAL__HIDDEN int  shoal__spill_open(shoal__rt_t *rt, const char *dir);
/* At stop (after the I/O thread is joined): remove the spill file. */
SHOAL__HIDDEN void shoal__spill_close(void);
/* True between open and close. */
SHOAL__HIDDEN bool shoal__spill_on(void);

/* I/O thread: park w until room for w->need bytes was made (see shoal__io_alloc). */
SHOAL__HIDDEN void shoal__spill_want(shoal__iowait *w);
/* I/O thread, once per loop turn: serve parked waiters, start the spill writes they need. */
SHOAL__HIDDEN void shoal__spill_pump(void);
/* I/O thread: when it should wake to give freed spill-file space back (monotonic ns), or 0
 * when nothing is due; the pump does it once the time has come. */
SHOAL__HIDDEN uint64_t shoal__spill_trim_due(void);
/* I/O thread at stop: fail parked waiters with SHOAL_ECANCELED (their failure paths run as
 * deferred messages). Returns true if there were any. */
SHOAL__HIDDEN bool shoal__spill_cancel_waiters(void);
/* In a fork() child (io/ring.c's handler): forget the parent's spill state, touching nothing. */
SHOAL__HIDDEN void shoal__spill_fork_child(void);

/* I/O thread: make ref's bytes resident. 0 when they are (or the object is not a spilled
 * one); 1 when a restore runs and w->msg.run will run after it (w->rc says how it went);
 * < 0 for a stale or invalid ref (message set). */
SHOAL__HIDDEN int  shoal__spill_resident(shoal_ref ref, int node, shoal__iowait *w);
/* Tests: when set, called on the I/O thread as a restore of ref starts (the object is
 * RESTORING from then until the restore ends). */
extern SHOAL__HIDDEN void (*shoal__spill_restore_hook)(shoal_ref ref);
/* Tests: when set, called on the allocating thread before it asks for room again, its
 * allocation having failed after spilling made room for it (tries: the requests so far). */
extern SHOAL__HIDDEN void (*shoal__spill_again_hook)(unsigned tries);
/* Tests: bytes of the spill file held by extents (spilled objects, writes in flight, hole
 * punches in flight), asked of the I/O thread; 0 when spilling is off. */
SHOAL__HIDDEN uint64_t shoal__spill_extents_used(void);
/* Tests: how many spilled objects' `next` disagrees with the spiller's record of their
 * extent (should be none), asked of the I/O thread. */
SHOAL__HIDDEN uint64_t shoal__spill_check(void);
/* I/O thread: keep ref resident (the spiller skips it) until the matching unpin. */
SHOAL__HIDDEN void shoal__spill_pin(shoal_ref ref);
SHOAL__HIDDEN void shoal__spill_unpin(shoal_ref ref);

/* ---- what the store and the allocator reach through their hooks --------------------------- */
/* The store is full (alloc/arena.c calls it through shoal__alloc_full_hook, which io/ring.c
 * fills while spilling is on): spill cold objects and allocate again. 0 with *off
 * set, < 0 with the message set, or 1 when spilling does not apply (not configured, the I/O
 * thread itself, or a retry inside this very call): the caller reports "store full". */
SHOAL__HIDDEN int shoal__spill_alloc(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                     unsigned node, uint64_t *off);
/* The last reference to a SPILLED object of generation gen went (obj_free): forget its bytes
 * on disk (the spiller's record of (slot, gen) names them). It reads the slot's len for the
 * counters: call it before the slot is given back. */
SHOAL__HIDDEN void shoal__spill_drop(shoal__slot *s, uint64_t gen);
/* get found s SPILLING, SPILLED or RESTORING: make it resident (waits for a restore, at
 * most timeout_ns when another process or thread runs it, and for its own restore's room
 * at most timeout_ns; a worker runs other tasks meanwhile).
 * 0 = look again; < 0 with the message set. */
SHOAL__HIDDEN int shoal__spill_touch(shoal_ref ref, shoal__slot *s, int64_t timeout_ns);
/* shoal_shutdown, once the runtime is down (rt->down set) and before it waits for calls to
 * leave: end every get waiting for a spilled object's read-back (shoal__spill_touch); they
 * answer the shutdown's code (SHOAL_ECANCELED) at once, their restores go on. Any thread. */
SHOAL__HIDDEN void shoal__spill_gets_cancel(void);
/* Fill the spill counters of *out (shoal_stats_get). */
SHOAL__HIDDEN void shoal__io_stats(shoal_stats *out);

#endif
