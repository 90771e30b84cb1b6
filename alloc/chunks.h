/* chunks.h - the chunk map's allocator side (alloc/chunks.c): which process owns each
 * piece of the arenas (the map itself is laid out in layout/mpseg.h). Internal. */
#ifndef SHOAL_ALLOC_CHUNKS_H
#define SHOAL_ALLOC_CHUNKS_H

#include <stdbool.h>
#include <stdint.h>

#include "../layout/mpseg.h"

/* Give this process size bytes of node's span (whole chunks, aligned to at least align):
 * recycled chunks first, else fresh ones from the carve. *start: offset within the node.
 * *zero in: jemalloc needs zeroed memory; out: the memory reads as zero. 0, or -1 when the
 * span is exhausted. Called by the extent hooks (alloc/arena.c). */
SHOAL__HIDDEN int shoal__chunk_take(shoal__rt_t *rt, unsigned node, uint64_t size,
                                    uint64_t align, bool *zero, uint64_t *start);
/* The chunk-map owner of byte offset off (from rt->base); 0 when out of range. */
SHOAL__HIDDEN uint32_t shoal__chunk_owner(const shoal__rt_t *rt, uint64_t off);
/* Return every chunk owned by `id` to the recycled pool; returns how many. Owner only,
 * once no object of that process is left. */
SHOAL__HIDDEN uint64_t shoal__chunks_reclaim(shoal__rt_t *rt, uint32_t id);

#endif
