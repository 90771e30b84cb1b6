/* barrier.c - the asymmetric memory barrier of the call markers' Dekker pair (core/thread.c):
 * the quiescer pays for a full fence on every thread of the process, so that the fast
 * path of a public call needs only a compiler barrier. */
#include "barrier.h"

#include <linux/membarrier.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The quiescer's half of the Dekker pair: a full memory barrier on every running thread of
 * this process (membarrier, Linux 4.14), else a global one (4.3), else the TLB-shootdown
 * interrupts of an mprotect that takes a right away from a page every thread may have
 * mapped (what liburcu did before membarrier existed). */
static _Atomic int mb_mode;   /* 0 unknown, 1 private expedited, 2 global, 3 mprotect */

void shoal__asym_barrier(void)
{
    int mode = atomic_load_explicit(&mb_mode, memory_order_relaxed);
    if (mode == 0) {
        mode = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1
               : syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) > 0 ? 2 : 3;
        atomic_store_explicit(&mb_mode, mode, memory_order_relaxed);
    }
    /* membarrier orders the caller's own accesses around it too. */
    if (mode == 1 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    if (mode <= 2 && syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
        return;
    static char *page;
    if (!page) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return;
        page = m;
    }
    *(volatile char *)page = 1;
    mprotect(page, 4096, PROT_READ);
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

void shoal__asym_barrier_forget(void) { atomic_store_explicit(&mb_mode, 0, memory_order_relaxed); }
