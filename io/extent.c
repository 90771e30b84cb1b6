/* extent.c - space in the spill file: page-aligned extents handed out first-fit from a list
 * of free ranges kept sorted by offset (neighbours coalesce on free), else from the end of
 * the file. Only the I/O thread touches it, so it takes no lock. Spilled objects are few
 * compared with resident ones and the list stays short; a tree would pay off only with
 * many thousands of holes.
 */
#include <stdlib.h>
#include <string.h>

#include "extent.h"

static bool grow(struct shoal__extents *x)
{
    size_t cap = x->cap ? x->cap * 2 : 64;
    shoal__ext *f = realloc(x->free, cap * sizeof *f);
    if (!f)
        return false;
    x->free = f;
    x->cap = cap;
    return true;
}

bool shoal__ext_alloc_free(struct shoal__extents *x, uint64_t len, uint64_t *off)
{
    for (size_t i = 0; i < x->n; i++) {
        if (x->free[i].len < len)
            continue;
        *off = x->free[i].off;
        x->free[i].off += len;
        x->free[i].len -= len;
        if (x->free[i].len == 0) {
            memmove(&x->free[i], &x->free[i + 1], (x->n - i - 1) * sizeof *x->free);
            x->n--;
        }
        x->used += len;
        return true;
    }
    return false;
}

uint64_t shoal__ext_alloc(struct shoal__extents *x, uint64_t len)
{
    uint64_t off;
    if (shoal__ext_alloc_free(x, len, &off))
        return off;
    off = x->end;
    x->end += len;
    x->used += len;
    return off;
}

bool shoal__ext_free(struct shoal__extents *x, uint64_t off, uint64_t len,
                     shoal__ext *merged)
{
    x->used -= len;
    size_t lo = 0, hi = x->n;   /* first free range after off */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->free[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo;
    bool left = i > 0 && x->free[i - 1].off + x->free[i - 1].len == off;
    bool right = i < x->n && off + len == x->free[i].off;
    if (left && right) {
        x->free[i - 1].len += len + x->free[i].len;
        memmove(&x->free[i], &x->free[i + 1], (x->n - i - 1) * sizeof *x->free);
        x->n--;
        i--;
    } else if (left) {
        x->free[i - 1].len += len;
        i--;
    } else if (right) {
        x->free[i].off = off;
        x->free[i].len += len;
    } else {
        if (x->n == x->cap && !grow(x))
            return false;   /* the range is lost to reuse (not to correctness) */
        memmove(&x->free[i + 1], &x->free[i], (x->n - i) * sizeof *x->free);
        x->free[i].off = off;
        x->free[i].len = len;
        x->n++;
    }
    *merged = x->free[i];
    /* A free range at the end of the file gives the file back its tail. */
    if (x->free[i].off + x->free[i].len == x->end) {
        x->end = x->free[i].off;
        x->n--;
    }
    return true;
}

size_t shoal__ext_take_free(struct shoal__extents *x, uint64_t min, shoal__ext *out, size_t cap)
{
    size_t n = 0, keep = 0;
    for (size_t i = 0; i < x->n; i++) {
        if (n < cap && x->free[i].len >= min) {
            out[n++] = x->free[i];
            x->used += x->free[i].len;   /* held by the punch until it comes back */
        } else {
            x->free[keep++] = x->free[i];
        }
    }
    x->n = keep;
    return n;
}

void shoal__ext_reset(struct shoal__extents *x)
{
    free(x->free);
    memset(x, 0, sizeof *x);
}
