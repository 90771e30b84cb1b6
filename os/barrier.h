/* barrier.h - a full memory barrier on every running thread of this process, paid for by
 * the caller alone (membarrier, else an mprotect's TLB shootdown; os/barrier.c). Internal. */
#ifndef SHOAL_OS_BARRIER_H
#define SHOAL_OS_BARRIER_H

#include "compiler.h"

/* After it returns, every other thread of the process has passed a full fence since the
 * call began, and the caller's own accesses are ordered around it. */
SHOAL__HIDDEN void shoal__asym_barrier(void);
/* In a fork() child: register with the kernel again on the next barrier. */
SHOAL__HIDDEN void shoal__asym_barrier_forget(void);

#endif
