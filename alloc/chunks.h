/* chunks.h - the chunk map's allocator side (alloc/chunks.c): which process owns each
 * piece of the arenas (the map itself is laid out in layout/mpseg.h). Internal. */
#ifndef SHOAL_ALLOC_CHUNKS_H
#define SHOAL_ALLOC_CHUNKS_H

#include <stdbool.h>
#include <stdint.h>

#include "../layout/mpseg.h"

/* Take `need` whole chunks in a row of node's span for this process (its slabs and large
 * objects): recycled ones first, found first fit, else fresh ones from the carve. Returns
 * the first chunk's index within the node, or -1 when no such run is free. */
SHOAL__HIDDEN int64_t shoal__run_take(shoal__rt_t *rt, unsigned node, uint64_t need);
/* Give a run back: free for any process at once. */
SHOAL__HIDDEN void shoal__run_give(shoal__rt_t *rt, unsigned node, uint64_t first, uint64_t need);
/* Return every chunk owned by `id` to the recycled pool; returns how many. Owner only,
 * once no object of that process is left. */
SHOAL__HIDDEN uint64_t shoal__chunks_reclaim(shoal__rt_t *rt, uint32_t id);

#endif
