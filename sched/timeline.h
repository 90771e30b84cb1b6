/* timeline.h - the task timeline: with SHOAL_TIMELINE=file.json in the environment at
 * shoal_init, every task's worker, name, start and end (and each steal) go into a ring per
 * worker, and the file is written as a Chrome trace / Perfetto JSON file by shoal_shutdown,
 * at exit (a return from main or exit() without a shutdown), and by shoal_timeline_write
 * (tools/shoal-timeline summarises one). Each task event carries how it ended (ok, failed,
 * cancelled before it ran, skipped because an argument failed), its result's id and its
 * first SHOAL__TL_REFS REF arguments, from which the writer draws dependency flows.
 * A process killed by a signal or abort() writes nothing more: it keeps only the files
 * written before. Internal.
 *
 * Synchronisation: a worker is the only writer of its ring and writes it with plain stores;
 * the rings are created before the workers start (thread create orders them) and each ring's
 * count is stored with release after its event, so a file written while workers run (on
 * demand, at exit) reads whole events; the hot path has no lock. shoal__tl_on is written
 * only while no worker runs. Threads that are not workers (a submitter running its own
 * task in shoal_get, a shutdown cancelling queued tasks, shoal_cancel) record into one more
 * ring, under a mutex.
 *
 * Environment:
 *   SHOAL_TIMELINE=path         write the trace there at shutdown or exit ("%p" becomes the pid;
 *                               over 4,095 bytes once expanded: logged, no timeline)
 *   SHOAL_TIMELINE_EVENTS=n     events kept per worker (default 131072, 128 bytes each); when
 *                               a ring is full the oldest events are overwritten and the
 *                               file says how many were lost
 */
#ifndef SHOAL_SCHED_TIMELINE_H
#define SHOAL_SCHED_TIMELINE_H

#include <stdbool.h>

#include "../core/store.h"

enum shoal__tl_kind {
    SHOAL__TL_TASK = 1,      /* a task ran: start, duration, name */
    SHOAL__TL_STEAL = 2,     /* an instant: this worker stole a task from worker `arg` */
    SHOAL__TL_PARK = 3,      /* an instant: this worker went to sleep (no work visible) */
};

/* How a task ended (the trace's args.status). */
enum shoal__tl_status {
    SHOAL__TL_OK = 0,
    SHOAL__TL_FAILED = 1,    /* returned non-zero or called shoal_task_fail */
    SHOAL__TL_CANCELLED = 2, /* never ran: cancelled, or the runtime shut down first */
    SHOAL__TL_SKIPPED = 3,   /* never ran: one of its REF arguments failed */
};

#define SHOAL__TL_REFS 6     /* REF arguments kept per task event, for the flows */
struct shoal__tl_task_info {
    uint64_t result;         /* the task's result id */
    enum shoal__tl_status status;
    uint32_t nrefs;          /* REF arguments in refs (at most SHOAL__TL_REFS) */
    uint64_t refs[SHOAL__TL_REFS];
};

extern bool shoal__tl_on;

/* Called by shoal_init before the workers start: reads the environment, allocates one ring
 * per worker. A timeline that cannot be set up is logged and left off; init goes on. */
SHOAL__HIDDEN void shoal__tl_start(unsigned workers);
/* Called by shoal_shutdown (and a failed init) after the workers are joined: writes the
 * file (logged on failure) and frees the rings. No-op when the timeline is off. */
SHOAL__HIDDEN void shoal__tl_stop(void);

/* In a fork() child (shoal__sched_forget): the lock is made anew (another thread may have
 * held it at fork(): writing a file, recording into the shared ring) and the timeline is
 * off, its rings (the child's copies) unmapped, until the child's own shoal_init starts
 * one; the child's exit writes nothing (the trace is its parent's). */
SHOAL__HIDDEN void shoal__tl_fork_child(void);
/* The lock, held across a fork() by tests (tests/test_fork.c), as shoal__procs_lock. */
SHOAL__HIDDEN void shoal__tl_lock(void);
SHOAL__HIDDEN void shoal__tl_unlock(void);

/* Cold halves of the inline calls below. */
SHOAL__HIDDEN void shoal__tl_task(unsigned worker, const char *name, shoal_fn fn,
                                  uint64_t start_ns, const struct shoal__tl_task_info *ti);
/* A task that ends without running (cancelled, skipped), from any thread: worker is the
 * calling thread's worker index or -1. */
SHOAL__HIDDEN void shoal__tl_unrun(int worker, const char *name, shoal_fn fn,
                                   const struct shoal__tl_task_info *ti);
/* A task that the thread which submitted it ran inside its shoal_get (not a worker). */
SHOAL__HIDDEN void shoal__tl_task_here(const char *name, shoal_fn fn, uint64_t start_ns,
                                       const struct shoal__tl_task_info *ti);
SHOAL__HIDDEN void shoal__tl_instant(unsigned worker, enum shoal__tl_kind kind, uint32_t arg);

/* The worker loop: `uint64_t t0 = shoal__tl_begin();` before running a task; after it,
 * `if (unlikely(shoal__tl_on))` fill a shoal__tl_task_info and call shoal__tl_task.
 * Off: one predictable branch each. */
static inline uint64_t shoal__tl_begin(void)
{
    return unlikely(shoal__tl_on) ? shoal__now_ns() : 0;
}
/* A steal by `worker` from `victim`, or a park (victim ignored). */
static inline void shoal__tl_mark(unsigned worker, enum shoal__tl_kind kind, unsigned victim)
{
    if (unlikely(shoal__tl_on))
        shoal__tl_instant(worker, kind, victim);
}

#endif
