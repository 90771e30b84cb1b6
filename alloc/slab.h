/* slab.h - slabs: runs of chunks cut in blocks of one size class, kept per node and class
 * in process-private memory (slab.c). Used by arena.c only. Internal. */
#ifndef SHOAL_ALLOC_SLAB_H
#define SHOAL_ALLOC_SLAB_H

#include "arena.h"

/* The slabs of every node of rt->arenas (geometry already set). 0 or SHOAL_ENOMEM. */
SHOAL__HIDDEN int  shoal__slabs_init(shoal__rt_t *rt);
/* Free every slab descriptor (the store goes away: its chunks go with it). */
SHOAL__HIDDEN void shoal__slabs_destroy(shoal__rt_t *rt);
/* Chunks per slab and blocks per slab of class c with chunks of 2^shift bytes: at least
 * four blocks, and at most an eighth of the slab left over. */
SHOAL__HIDDEN void shoal__slab_geometry(unsigned c, unsigned shift, uint32_t *nchunks,
                                        uint32_t *nobj);
/* Take up to `want` free blocks of class c on node into out[] (offsets from rt->base),
 * making a new slab when none has any; returns how many (0: no room for a slab). The
 * blocks are not marked live. */
SHOAL__HIDDEN unsigned shoal__slab_take(shoal__rt_t *rt, unsigned node, unsigned c,
                                        uint64_t *out, unsigned want);
/* Give back k blocks of class c on node (their live bytes already cleared). A slab whose
 * blocks are all free again returns its chunks, or becomes its class's spare. */
SHOAL__HIDDEN void shoal__slab_give(shoal__rt_t *rt, unsigned node, unsigned c,
                                    const uint64_t *offs, unsigned k);
/* Return every spare slab's chunks; returns how many slabs went. */
SHOAL__HIDDEN unsigned shoal__slabs_trim(shoal__rt_t *rt);
/* Whether a block of class c on node is free now without a new slab. */
SHOAL__HIDDEN bool shoal__slab_has_free(shoal__rt_t *rt, unsigned node, unsigned c);

#endif
