/* slab.c - the slabs of each node and size class: runs of chunks (chunks.c) cut in equal
 * blocks, each with a stack of the indices of its free blocks, all in process-private
 * memory under the bin's lock. Thread caches (arena.h) take and give blocks here in
 * batches; a slab whose blocks are all free again returns its chunks to the chunk map,
 * except one single-chunk slab per class kept as a spare, so that an object put and
 * released over and over does not take and return a chunk each time.
 */
#include "slab.h"
#include "chunks.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct shoal__slab {
    uint64_t off;                        /* offset from rt->base of block 0 */
    struct shoal__slab *next, *prev;     /* the bin's list, while listed */
    uint64_t first;                      /* first chunk, within the node */
    uint32_t nchunks;
    uint32_t nobj;
    uint32_t bump;                       /* blocks [bump, nobj) were never handed out */
    uint32_t nfree;                      /* entries of free[] */
    bool listed;                         /* on the list: it has a free block, and not all */
    uint32_t free[];                     /* indices of blocks given back */
};

struct shoal__bin {
    pthread_mutex_t mu;
    struct shoal__slab *head, *tail;     /* slabs with some blocks free and some not */
    struct shoal__slab *spare;           /* all free, kept (a single-chunk slab) */
    uint32_t cls, size, nchunks, nobj;
};

void shoal__slab_geometry(unsigned c, unsigned shift, uint32_t *nchunks, uint32_t *nobj)
{
    uint64_t sz = shoal__class_size(c), csz = (uint64_t)1 << shift, k = 1;
    for (;; k++) {
        uint64_t bytes = k * csz, n = bytes / sz;
        if ((n >= 4 && (bytes - n * sz) * 8 <= bytes) || k == 64)
            break;
    }
    *nchunks = (uint32_t)k;
    *nobj = (uint32_t)(k * csz / sz);
}

int shoal__slabs_init(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    for (unsigned n = 0; n < a->nnodes; n++) {
        struct shoal__bin *b = calloc(SHOAL__NCLASSES, sizeof *b);
        if (!b)
            return shoal__err(SHOAL_ENOMEM, "out of memory setting up the allocator");
        for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
            pthread_mutex_init(&b[c].mu, NULL);
            b[c].cls = c;
            b[c].size = (uint32_t)shoal__class_size(c);
            b[c].nchunks = a->slab_chunks[c];
            b[c].nobj = a->slab_nobj[c];
        }
        a->node[n].bins = b;
    }
    return 0;
}

static void list_add(struct shoal__bin *b, struct shoal__slab *s)
{
    s->next = NULL;
    s->prev = b->tail;
    if (b->tail)
        b->tail->next = s;
    else
        b->head = s;
    b->tail = s;
    s->listed = true;
}

static void list_del(struct shoal__bin *b, struct shoal__slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        b->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        b->tail = s->prev;
    s->next = s->prev = NULL;
    s->listed = false;
}

static inline _Atomic uintptr_t *ctab_at(shoal__rt_t *rt, unsigned node, uint64_t chunk)
{
    return &rt->arenas->ctab[(uint64_t)node * shoal__geo.nchunks + chunk];
}

/* A new slab for bin b: chunks from the map, populated, recorded in the chunk table. */
static struct shoal__slab *slab_new(shoal__rt_t *rt, unsigned node, struct shoal__bin *b)
{
    unsigned shift = shoal__geo.shift;
    int64_t first = shoal__run_take(rt, node, b->nchunks);
    if (first < 0)
        return NULL;
    struct shoal__slab *s = malloc(sizeof *s + (size_t)b->nobj * sizeof(uint32_t));
    uint64_t start = (uint64_t)first << shift, end = start + ((uint64_t)b->nchunks << shift);
    if (!s || shoal__arena_populate(rt, node, start, end) != 0) {
        free(s);
        shoal__run_give(rt, node, (uint64_t)first, b->nchunks);
        return NULL;
    }
    s->off = (uint64_t)node * rt->node_span + ((uint64_t)first << shift);
    s->first = (uint64_t)first;
    s->nchunks = b->nchunks;
    s->nobj = b->nobj;
    s->bump = 0;
    s->nfree = 0;
    s->listed = false;
    s->next = s->prev = NULL;
    for (uint64_t k = 0; k < b->nchunks; k++)
        /* release: pairs with the acquire load in slab_give (another thread's flush of a
         * block of this slab), so the slab's fields are seen whole. */
        atomic_store_explicit(ctab_at(rt, node, s->first + k), (uintptr_t)s, memory_order_release);
    return s;
}

static void slab_release(shoal__rt_t *rt, unsigned node, struct shoal__bin *b,
                         struct shoal__slab *s)
{
    for (uint64_t k = 0; k < b->nchunks; k++)
        atomic_store_explicit(ctab_at(rt, node, s->first + k), 0, memory_order_relaxed);
    shoal__run_give(rt, node, s->first, b->nchunks);
    free(s);
}

unsigned shoal__slab_take(shoal__rt_t *rt, unsigned node, unsigned c, uint64_t *out,
                          unsigned want)
{
    struct shoal__arenas *a = rt->arenas;
    struct shoal__bin *b = &a->node[node].bins[c];
    unsigned k = 0;
    pthread_mutex_lock(&b->mu);
    while (k < want) {
        struct shoal__slab *s = b->head;
        if (!s) {
            s = b->spare;
            if (s) {
                b->spare = NULL;
                atomic_fetch_sub_explicit(&a->spares, 1, memory_order_relaxed);
            } else if ((s = slab_new(rt, node, b)) == NULL) {
                break;
            }
            list_add(b, s);
        }
        while (k < want && (s->nfree || s->bump < s->nobj)) {
            uint32_t i = s->nfree ? s->free[--s->nfree] : s->bump++;
            out[k++] = s->off + (uint64_t)i * b->size;
        }
        if (!s->nfree && s->bump == s->nobj)
            list_del(b, s);   /* every block handed out */
    }
    pthread_mutex_unlock(&b->mu);
    return k;
}

void shoal__slab_give(shoal__rt_t *rt, unsigned node, unsigned c, const uint64_t *offs,
                      unsigned k)
{
    struct shoal__arenas *a = rt->arenas;
    struct shoal__bin *b = &a->node[node].bins[c];
    unsigned shift = shoal__geo.shift;
    uint64_t base = (uint64_t)node * rt->node_span;
    pthread_mutex_lock(&b->mu);
    for (unsigned j = 0; j < k; j++) {
        uint64_t off = offs[j], chunk = (off - base) >> shift;
        /* acquire: pairs with the release in slab_new. The live map vouched for the
         * block (its class's byte was set), so its slab is this bin's and cannot go while
         * we hold the lock; the checks below only guard against a bug. */
        uintptr_t e = chunk < shoal__geo.nchunks
                          ? atomic_load_explicit(ctab_at(rt, node, chunk), memory_order_acquire)
                          : 0;
        struct shoal__slab *s = (e & 1) ? NULL : (struct shoal__slab *)e;
        uint64_t i = s && off >= s->off ? (off - s->off) / b->size : UINT64_MAX;
        if (!s || i >= s->bump || s->off + i * b->size != off || s->nfree >= s->bump) {
            static _Atomic int told;
            if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
                shoal__log("allocator: block at %llu of class %u is in no slab of that class: "
                           "leaked", (unsigned long long)off, c);
            continue;
        }
        s->free[s->nfree++] = (uint32_t)i;
        if (s->nfree < s->bump) {
            if (!s->listed)
                list_add(b, s);
            continue;
        }
        /* Every block free again. */
        if (s->listed)
            list_del(b, s);
        s->nfree = 0;
        s->bump = 0;
        if (b->spare == NULL && b->nchunks == 1) {
            b->spare = s;
            atomic_fetch_add_explicit(&a->spares, 1, memory_order_relaxed);
        } else {
            slab_release(rt, node, b, s);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

unsigned shoal__slabs_trim(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    unsigned got = 0;
    if (atomic_load_explicit(&a->spares, memory_order_relaxed) == 0)
        return 0;
    for (unsigned n = 0; n < a->nnodes; n++)
        for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
            struct shoal__bin *b = &a->node[n].bins[c];
            pthread_mutex_lock(&b->mu);
            struct shoal__slab *s = b->spare;
            b->spare = NULL;
            if (s) {
                atomic_fetch_sub_explicit(&a->spares, 1, memory_order_relaxed);
                slab_release(rt, n, b, s);
                got++;
            }
            pthread_mutex_unlock(&b->mu);
        }
    return got;
}

bool shoal__slab_has_free(shoal__rt_t *rt, unsigned node, unsigned c)
{
    struct shoal__bin *b = &rt->arenas->node[node].bins[c];
    pthread_mutex_lock(&b->mu);
    bool any = b->head != NULL || b->spare != NULL;
    pthread_mutex_unlock(&b->mu);
    return any;
}

void shoal__slabs_destroy(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    for (unsigned n = 0; n < a->nnodes; n++) {
        struct shoal__bin *bins = a->node[n].bins;
        if (!bins)
            continue;
        /* Every slab, listed, spare or full, is in the chunk table from its first chunk. */
        for (uint64_t ch = 0; ch < shoal__geo.nchunks; ch++) {
            uintptr_t e = atomic_load_explicit(ctab_at(rt, n, ch), memory_order_relaxed);
            struct shoal__slab *s = (struct shoal__slab *)e;
            if (e && !(e & 1) && s->first == ch) {
                ch += s->nchunks - 1;   /* its other chunks name it too */
                free(s);
            }
        }
        for (unsigned c = 0; c < SHOAL__NCLASSES; c++)
            pthread_mutex_destroy(&bins[c].mu);
        free(bins);
        a->node[n].bins = NULL;
    }
}
