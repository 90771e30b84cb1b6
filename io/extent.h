/* extent.h - the spill file's space allocator (extent.c). I/O thread only. Internal. */
#ifndef SHOAL_IO_EXTENT_H
#define SHOAL_IO_EXTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/store.h"

typedef struct shoal__ext { uint64_t off, len; } shoal__ext;

struct shoal__extents {
    shoal__ext *free;    /* free ranges, sorted by offset, never adjacent */
    size_t n, cap;
    uint64_t end;        /* bytes of the file in use or free below this */
    uint64_t used;       /* bytes held by live extents */
};

/* An extent of len bytes (a multiple of the alignment the caller wants: every offset handed
 * out is a sum of such lengths). Never fails: the file grows. */
SHOAL__HIDDEN uint64_t shoal__ext_alloc(struct shoal__extents *x, uint64_t len);
/* The same from the free ranges only, never growing the file (the disk is full: only
 * space the file has is worth a write). false when no free range holds len bytes. */
SHOAL__HIDDEN bool shoal__ext_alloc_free(struct shoal__extents *x, uint64_t len, uint64_t *off);
/* Give [off, off+len) back. *merged receives the free range it became part of (for punching
 * a hole). Returns false when the bookkeeping could not grow (the range is then leaked in
 * the file, nothing else). */
SHOAL__HIDDEN bool shoal__ext_free(struct shoal__extents *x, uint64_t off, uint64_t len,
                                   shoal__ext *merged);
/* Take up to cap free ranges of at least min bytes out of the free list (into out), so that
 * holes can be punched in them without a write reusing them meanwhile. Returns how many. */
SHOAL__HIDDEN size_t shoal__ext_take_free(struct shoal__extents *x, uint64_t min, shoal__ext *out,
                                          size_t cap);
SHOAL__HIDDEN void shoal__ext_reset(struct shoal__extents *x);

#endif
