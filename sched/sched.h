/* sched.h - the scheduler's entry points used by the runtime lifecycle (runtime/runtime.c).
 * Pinned workers, per-worker deques, an injection queue, dependency-driven readiness.
 */
#ifndef SHOAL_SCHED_SCHED_H
#define SHOAL_SCHED_SCHED_H

#include "../core/store.h"

/* Start `workers` worker threads placed on the topology's cores (round-robin when there are
 * more workers than cores). Called by shoal_init after the store is ready; on failure the
 * store is torn down and init fails with the returned code. */
SHOAL__HIDDEN int  shoal__sched_start(shoal__rt_t *rt, unsigned workers);
/* Cancel tasks not yet started (results SHOAL_ECANCELED), wait for running ones, join the
 * workers, free everything. Called by shoal_shutdown before the store goes, with the
 * lifecycle lock held throughout (a worker's thread-exit hooks take only the registry
 * locks). Idempotent. The task blocks' memory stays mapped until shoal__pool_release. */
SHOAL__HIDDEN void shoal__sched_stop(shoal__rt_t *rt);
/* After the store is torn down: unmap the task blocks the last run kept (a late completion
 * could reach them through the store's dependency lists until then). */
SHOAL__HIDDEN void shoal__sched_release(void);
/* In a fork() child (runtime/runtime.c): forget the parent's scheduler state (private memory
 * only), so that the child can start a scheduler of its own. */
SHOAL__HIDDEN void shoal__sched_forget(void);
/* Fill workers, tasks_run, tasks_stolen. */
SHOAL__HIDDEN void shoal__sched_info(shoal_info *out);
/* NUMA node of worker w, or SHOAL_EINVAL. */
SHOAL__HIDDEN int  shoal__sched_worker_node(unsigned w);

#endif
