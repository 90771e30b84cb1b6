/* chunks.c - who owns which piece of the arenas. Every process runs its own jemalloc arenas
 * over the shared span; the extent hooks take whole chunks for them here and record the
 * owner in the chunk map (layout/mpseg.h), so that the chunks of a process that died can be
 * given back once none of its objects is left, and so that a remote free can tell whose
 * jemalloc an offset belongs to. Slow path only: jemalloc calls the hooks every few MiB.
 */
#include <fcntl.h>
#include <string.h>

#include "chunks.h"
#include "arena.h"
#include "../os/mem.h"

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Claim `need` recycled chunks in a row, aligned to `align` chunks, below `limit`. */
static int64_t take_recycled(_Atomic uint32_t *map, uint64_t limit, uint64_t need,
                             uint64_t align)
{
    uint64_t i = 0;
    while (i + need <= limit) {
        if (i % align) {
            i = round_up(i, align);
            continue;
        }
        uint64_t j = 0;
        while (j < need && atomic_load_explicit(&map[i + j], memory_order_relaxed) == SHOAL__CHUNK_FREE)
            j++;
        if (j < need) {
            i += j + 1;
            continue;
        }
        uint64_t k = 0;
        for (; k < need; k++) {
            uint32_t want = SHOAL__CHUNK_FREE;
            /* acquire: pairs with the release in shoal__large_give, so the last owner's
             * accesses to a freed large object happen before we reuse its bytes. */
            if (!atomic_compare_exchange_strong_explicit(&map[i + k], &want, shoal__chunk_me,
                                                         memory_order_acquire,
                                                         memory_order_relaxed))
                break;
        }
        if (k == need)
            return (int64_t)i;
        while (k-- > 0)   /* another process took part of the run: give ours back */
            atomic_store_explicit(&map[i + k], SHOAL__CHUNK_FREE, memory_order_relaxed);
        i += 1;
    }
    return -1;
}

/* Fresh chunks from the carve (never used: they read as zero). */
static bool take_fresh(shoal__rt_t *rt, _Atomic uint32_t *map, _Atomic uint64_t *carve,
                       uint64_t need, unsigned shift, uint64_t align, uint64_t *start)
{
    uint64_t nchunks = shoal__geo.nchunks;
    uint64_t cur = atomic_load_explicit(carve, memory_order_relaxed), s, e;
    do {
        s = round_up(cur, align);
        e = s + (need << shift);
        if (e > rt->node_span || e < s)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(carve, &cur, e, memory_order_relaxed,
                                                    memory_order_relaxed));
    for (uint64_t c = s >> shift; c < (e >> shift) && c < nchunks; c++)
        atomic_store_explicit(&map[c], shoal__chunk_me, memory_order_relaxed);
    *start = s;
    return true;
}

int shoal__chunk_take(shoal__rt_t *rt, unsigned node, uint64_t size, uint64_t align,
                      bool *zero, uint64_t *start)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    unsigned shift = shoal__geo.shift;
    uint64_t csz = (uint64_t)1 << shift, need = (size + csz - 1) >> shift;
    if (align < csz)
        align = csz;
    _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)node * shoal__geo.nchunks;
    _Atomic uint64_t *carve = &rt->hdr->node[node].carve;
    if (need == 0 || size > rt->node_span)
        return -1;

    if (atomic_load_explicit(&x->recycled[node], memory_order_relaxed) >= need) {
        uint64_t limit = atomic_load_explicit(carve, memory_order_relaxed) >> shift;
        int64_t c = take_recycled(map, limit < shoal__geo.nchunks ? limit : shoal__geo.nchunks, need,
                                  align >> shift);
        if (c >= 0) {
            atomic_fetch_sub_explicit(&x->recycled[node], need, memory_order_relaxed);
            *start = (uint64_t)c << shift;
            char *p = rt->base + (uint64_t)node * rt->node_span + *start;
            uint64_t len = need << shift;
            /* Another process's old bytes. jemalloc wants zeroed memory for its metadata
             * (base blocks): punching the pages out makes them read as zero and costs less
             * than a memset of pages that mostly stay unused; they fault in as touched.
             * Otherwise map them in now (they exist: no zeroing), as for fresh chunks. */
            int fd = rt->arenas ? rt->arenas->fds[node] : -1;
            if (*zero && (fd < 0 || fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                              (off_t)*start, (off_t)len) != 0)) {
                shoal__os_populate(p, len);
                memset(p, 0, len);
            } else if (!*zero) {
                shoal__os_populate(p, len);
            }
            return 0;
        }
    }

    if (!take_fresh(rt, map, carve, need, shift, align, start))
        return -1;   /* span exhausted: jemalloc reports OOM, we answer SHOAL_ENOMEM */
    *zero = true;    /* never carved before: fresh memfd pages read as zero */
    return 0;
}

void *shoal__large_take(shoal__rt_t *rt, unsigned node, size_t len)
{
    bool zero = false;
    uint64_t start, csz = (uint64_t)1 << shoal__geo.shift;
    if (shoal__chunk_take(rt, node, len, 4096, &zero, &start) != 0)
        return NULL;
    char *p = rt->base + (uint64_t)node * rt->node_span + start;
    /* Fresh chunks come back unpopulated (recycled ones were populated by chunk_take):
     * fault the whole run in with one call rather than page by page inside the copy. */
    if (zero && shoal__os_populate(p, round_up(len, csz)) != 0) {
        shoal__large_give(rt, node, start, len);
        return NULL;
    }
    return p;
}

void shoal__large_give(shoal__rt_t *rt, unsigned node, uint64_t start, size_t len)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    unsigned shift = shoal__geo.shift;
    uint64_t first = start >> shift, need = (len + ((uint64_t)1 << shift) - 1) >> shift;
    _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)node * shoal__geo.nchunks;
    for (uint64_t c = first; c < first + need && c < shoal__geo.nchunks; c++)
        /* release: pairs with the acquire CAS in take_recycled. */
        atomic_store_explicit(&map[c], SHOAL__CHUNK_FREE, memory_order_release);
    atomic_fetch_add_explicit(&x->recycled[node], need, memory_order_relaxed);
}

uint32_t shoal__chunk_owner(const shoal__rt_t *rt, uint64_t off)
{
    uint64_t node = off / rt->node_span, c = (off % rt->node_span) >> shoal__geo.shift;
    if (node >= rt->nnodes || c >= shoal__geo.nchunks)
        return 0;
    return atomic_load_explicit(&shoal__chunkmap(rt)[node * shoal__geo.nchunks + c],
                                memory_order_relaxed);
}

uint64_t shoal__chunks_reclaim(shoal__rt_t *rt, uint32_t id)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    uint64_t total = 0;
    if (id == 0 || id == SHOAL__CHUNK_FREE)
        return 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)n * shoal__geo.nchunks;
        uint64_t got = 0;
        for (uint64_t c = 0; c < shoal__geo.nchunks; c++) {
            uint32_t want = id;
            if (atomic_load_explicit(&map[c], memory_order_relaxed) == id &&
                atomic_compare_exchange_strong_explicit(&map[c], &want, SHOAL__CHUNK_FREE,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed))
                got++;
        }
        if (got)
            atomic_fetch_add_explicit(&x->recycled[n], got, memory_order_relaxed);
        total += got;
    }
    return total;
}
