/* sizeclass.h - jemalloc's usable size for a request, computed inline. Capacity is counted
 * in usable bytes; calling nallocx for it cost ~70 instructions per allocation and again per
 * free (callgrind, fib with every call a task). jemalloc 5 with the default 16-byte quantum
 * has classes 8, 16, 32, ... 128, then four per doubling; tests/test_sizeclass.c checks this
 * against nallocx for every size up to 1 MiB and sampled sizes beyond. */
#ifndef SHOAL_ALLOC_SIZECLASS_H
#define SHOAL_ALLOC_SIZECLASS_H

#include <stddef.h>

static inline size_t shoal__usable_size(size_t len)
{
    if (len <= 8)
        return 8;
    if (len <= 128)
        return (len + 15) & ~(size_t)15;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(len - 1));
    size_t delta = (size_t)1 << (lg - 2);
    return (len + delta - 1) & ~(delta - 1);
}

#endif
