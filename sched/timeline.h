/* timeline.h - the task timeline: with SHOAL_TIMELINE=file.json in the environment at
 * shoal_init, every task's worker, name, start and end (and each steal) go into a ring per
 * worker, and shoal_shutdown writes them as a Chrome trace / Perfetto JSON file
 * (tools/shoal-timeline summarises one). Internal.
 *
 * Synchronisation: a worker is the only writer of its ring and writes it with plain stores;
 * the rings are created before the workers start and read after they are joined (thread
 * create and join order them), so the hot path has no lock and no atomic. shoal__tl_on is
 * written only while no worker runs.
 *
 * Environment:
 *   SHOAL_TIMELINE=path         write the trace there at shutdown ("%p" becomes the pid)
 *   SHOAL_TIMELINE_EVENTS=n     events kept per worker (default 262144, 64 bytes each); when
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

extern bool shoal__tl_on;

/* Called by shoal_init before the workers start: reads the environment, allocates one ring
 * per worker. A timeline that cannot be set up is logged and left off; init goes on. */
SHOAL__HIDDEN void shoal__tl_start(unsigned workers);
/* Called by shoal_shutdown (and a failed init) after the workers are joined: writes the
 * file (logged on failure) and frees the rings. No-op when the timeline is off. */
SHOAL__HIDDEN void shoal__tl_stop(void);

/* Cold halves of the inline calls below. */
SHOAL__HIDDEN void shoal__tl_task(unsigned worker, const char *name, shoal_fn fn,
                                  uint64_t start_ns);
SHOAL__HIDDEN void shoal__tl_instant(unsigned worker, enum shoal__tl_kind kind, uint32_t arg);

/* The worker loop: `uint64_t t0 = shoal__tl_begin();` before running a task and
 * `shoal__tl_end(worker, name, fn, t0);` after it. Off: one predictable branch each. */
static inline uint64_t shoal__tl_begin(void)
{
    return unlikely(shoal__tl_on) ? shoal__now_ns() : 0;
}
static inline void shoal__tl_end(unsigned worker, const char *name, shoal_fn fn,
                                 uint64_t start_ns)
{
    if (unlikely(shoal__tl_on))
        shoal__tl_task(worker, name, fn, start_ns);
}
/* A steal by `worker` from `victim`, or a park (victim ignored). */
static inline void shoal__tl_mark(unsigned worker, enum shoal__tl_kind kind, unsigned victim)
{
    if (unlikely(shoal__tl_on))
        shoal__tl_instant(worker, kind, victim);
}

#endif
