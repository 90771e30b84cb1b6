/* clock.h - the clocks: monotonic nanoseconds (os/clock.c) and a coarse cycle-counter era
 * for "went cold at" marks. Internal. */
#ifndef SHOAL_OS_CLOCK_H
#define SHOAL_OS_CLOCK_H

#include <stdint.h>

#include "compiler.h"

SHOAL__HIDDEN uint64_t shoal__now_ns(void);

/* A coarse clock for "went cold at": 2^20 TSC ticks (~0.3 ms), wrapping after weeks; only
 * differences are used. */
static inline uint32_t shoal__seal_era(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return (uint32_t)(__builtin_ia32_rdtsc() >> 20);
#else
    return (uint32_t)(shoal__now_ns() >> 18);
#endif
}

#endif
