/* sizeclass.h - the allocator's size classes, computed inline: what block an object of len
 * bytes gets, and so what it counts against the store's capacity. Small objects (up to
 * SHOAL__SMALL_MAX) take a block of their class in a slab (alloc/slab.c); larger ones take
 * a run of whole chunks of the span (alloc/chunks.c). tests/test_sizeclass.c checks the
 * bounds and the waste of every class. */
#ifndef SHOAL_ALLOC_SIZECLASS_H
#define SHOAL_ALLOC_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

/* Objects smaller than a cache line get a line of their own, as DPDK's mempool pads its
 * elements: two threads' small objects never share a line. A task's result is written by
 * the worker that ran it and freed by the one that read it, so with dense 8-byte cells
 * a freed cell went to the reader's hot cache while its line-mates stayed the writer's,
 * and fib with every call a task lost a quarter of its speed on 2 workers over a few runs
 * (bench/tasks; a line per cell kept it flat). So no two blocks start in one line, which
 * lets the allocator's private map of live blocks keep one byte per line (arena.h). */
#define SHOAL__LINE_MIN ((size_t)64)
#define SHOAL__LINE_SHIFT 6

/* Classes: one of 64 bytes (every object up to a line), then four per doubling up to
 * 256 KiB: 80, 96, 112, 128, 160, 192, 224, 256, 320, ... 224 Ki, 256 Ki. A block wastes
 * less than a quarter of its object (len > 2^k is rounded up to 2^k + j 2^(k-2)). Every
 * class is a multiple of 16 bytes, so every block is 16-byte aligned. From
 * 16 KiB on, class sizes are multiples of 4 KiB and slabs start on a chunk, so those
 * blocks are page aligned: O_DIRECT file I/O goes straight from and into the object (io/). */
#define SHOAL__SMALL_MAX ((size_t)256 << 10)
#define SHOAL__NCLASSES 49u
/* Objects of this size and more take a run of chunks: a 64 KiB chunk rounds them up by
 * less than a quarter too. Runs are found first-fit in the chunk map and given back to it
 * whole on free, so freed space is at once usable by objects of any size. */
#define SHOAL__LARGE_MIN (SHOAL__SMALL_MAX + 1)
#define SHOAL__ALIGN_MIN ((size_t)16 << 10)

/* The class of a small object (len <= SHOAL__SMALL_MAX; 0 counts as a line). */
static inline unsigned shoal__class_of(size_t len)
{
    if (len <= SHOAL__LINE_MIN)
        return 0;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(len - 1));  /* 2^lg < len */
    unsigned sh = lg - 2;
    return 1 + (lg - SHOAL__LINE_SHIFT) * 4 + (unsigned)((len - 1 - ((size_t)1 << lg)) >> sh);
}

/* The block size of each class: 2^lg + j 2^(lg-2) (j = 1..4) after the first. A table
 * costs one load where the arithmetic cost eight instructions on every put and release. */
static const uint32_t shoal__class_sizes[SHOAL__NCLASSES] = {
    64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288,
    14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304,
    114688, 131072, 163840, 196608, 229376, 262144
};
static inline size_t shoal__class_size(unsigned c) { return shoal__class_sizes[c]; }

/* What an object of len (> 0) bytes holds of the store, which is also what it counts
 * against the capacity (shoal_info.bytes_used) and what it may use past len (a direct
 * read rounds its length up to a page): its class's block size, or for a large object its
 * length rounded up to 64 KiB (the smallest chunk; a run is whole chunks, chunks.c). */
static inline size_t shoal__usable_size(size_t len)
{
    if (len > SHOAL__SMALL_MAX)
        return (len + 0xffff) & ~(size_t)0xffff;
    return shoal__class_size(shoal__class_of(len));
}
static inline size_t shoal__acct_size(size_t len) { return shoal__usable_size(len); }

/* The live map's byte for a live block of class c at offset off (16-byte aligned): the
 * class and where in its line the block starts (arena.h). Never 0. */
static inline uint8_t shoal__live_tag(unsigned c, uint64_t off)
{
    return (uint8_t)(((c + 1) << 2) | ((off >> 4) & 3));
}

#endif
