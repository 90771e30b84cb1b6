/* PLACEHOLDER (lead): lets the library link until the real scheduler lands.
 * Whoever adds the real shoal__sched_* definitions: delete this file in the same commit. */
#include "sched.h"
int shoal__sched_start(shoal__rt_t *rt, unsigned w) { (void)rt; (void)w; return 0; }
void shoal__sched_stop(shoal__rt_t *rt) { (void)rt; }
void shoal__sched_info(shoal_info *o) { (void)o; }
int shoal__sched_worker_node(unsigned w) { (void)w; return SHOAL_EINVAL; }
