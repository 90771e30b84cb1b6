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

/* From this size objects take whole chunk runs of the span (alloc/chunks.c) instead of
 * jemalloc: with opt.retain, jemalloc never merges extents that came from separate hook
 * calls, so freed large objects stayed in pieces and a 30 MiB put failed in an empty 64 MiB
 * store. Chunk runs are recycled and found first-fit by any later large put. */
#define SHOAL__LARGE_MIN ((size_t)4 << 20)

/* Objects smaller than a cache line get a line of their own, as DPDK's mempool pads its
 * elements: two threads' small objects never share a line. A task's result is written by
 * the worker that ran it and freed by the one that read it, so with dense 8-byte cells
 * a freed cell went to the reader's hot cache while its line-mates stayed the writer's,
 * and fib with every call a task lost a quarter of its speed on 2 workers over a few runs
 * (bench/tasks; a line per cell kept it flat). */
#define SHOAL__LINE_MIN ((size_t)64)

/* What is asked of jemalloc (mallocx, sdallocx) for an object of len bytes. */
static inline size_t shoal__alloc_len(size_t len)
{
    return len < SHOAL__LINE_MIN ? SHOAL__LINE_MIN : len;
}

/* What an object counts against the store's capacity: jemalloc's usable size of what it
 * allocates, or for a large object its length rounded up to the 64 KiB minimum chunk. */
static inline size_t shoal__acct_size(size_t len)
{
    if (len >= SHOAL__LARGE_MIN)
        return (len + 0xffff) & ~(size_t)0xffff;
    return shoal__usable_size(shoal__alloc_len(len));
}

#endif
