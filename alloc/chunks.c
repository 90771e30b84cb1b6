/* chunks.c - who owns which piece of the arenas. Every process runs its own jemalloc arenas
 * over the shared span; the extent hooks take whole chunks for them here and record the
 * owner in the chunk map (core/mproc.h), so that the chunks of a process that died can be
 * given back once none of its objects is left, and so that a remote free can tell whose
 * jemalloc an offset belongs to. Slow path only: jemalloc calls the hooks every few MiB.
 */
#include <fcntl.h>
#include <sched.h>
#include <string.h>

#include "../core/mproc.h"
#include "arena.h"
#include "os.h"

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

/* Whether chunk-map entry id names a process that is gone (its claim above the carve is
 * left from a take_fresh it never finished). */
static bool claimer_gone(uint32_t id)
{
    if (id == 0 || id == SHOAL__CHUNK_FREE)
        return false;
    const struct shoal__proc *P = &shoal__geo.ext->procs[id & 0xffu];
    return atomic_load_explicit(&P->state, memory_order_acquire) != SHOAL__PROC_LIVE ||
           atomic_load_explicit(&P->inc, memory_order_relaxed) != (id >> 8);
}

/* Give back our claims on entries [from, to) (above the carve: to 0, below: recycled). */
static void unclaim(_Atomic uint32_t *map, uint64_t from, uint64_t to, uint32_t val)
{
    for (uint64_t c = from; c < to; c++) {
        uint32_t want = shoal__chunk_me;
        atomic_compare_exchange_strong_explicit(&map[c], &want, val, memory_order_release,
                                                memory_order_relaxed);
    }
}

/* Fresh chunks from the carve (never used: they read as zero). The map entries are claimed
 * before the carve moves past them, so a process that dies at any point leaves every chunk
 * it took named by its id: below the carve the owner reclaims them with the rest of its
 * chunks, above it the next carver (or the owner) takes its claims over. Chunks skipped to
 * align the run go to the recycled pool. */
static bool take_fresh(shoal__rt_t *rt, unsigned node, _Atomic uint32_t *map,
                       _Atomic uint64_t *carve, uint64_t need, unsigned shift, uint64_t align,
                       uint64_t *start)
{
    uint64_t nchunks = shoal__geo.nchunks;
    for (unsigned spins = 0;; spins++) {
        uint64_t cur = atomic_load_explicit(carve, memory_order_relaxed);
        uint64_t s = round_up(cur, align), e = s + (need << shift);
        if (e > rt->node_span || e < s || (e >> shift) > nchunks)
            return false;
        uint64_t c0 = cur >> shift, c1 = e >> shift, k;
        for (k = c0; k < c1; k++) {
            uint32_t want = 0;
            /* acquire: a claim taken over from a gone process sees what it wrote. */
            if (atomic_compare_exchange_strong_explicit(&map[k], &want, shoal__chunk_me,
                                                        memory_order_acquire, memory_order_relaxed))
                continue;
            if (claimer_gone(want) &&
                atomic_compare_exchange_strong_explicit(&map[k], &want, shoal__chunk_me,
                                                        memory_order_acquire, memory_order_relaxed))
                continue;
            break;   /* another carver's claim: it carves or gives up shortly */
        }
        if (k == c1 && atomic_compare_exchange_strong_explicit(carve, &cur, e, memory_order_relaxed,
                                                               memory_order_relaxed)) {
            if (s >> shift > c0) {   /* the alignment gap: recycled (counted first) */
                atomic_fetch_add_explicit(&shoal__geo.ext->recycled[node], (s >> shift) - c0,
                                          memory_order_relaxed);
                unclaim(map, c0, s >> shift, SHOAL__CHUNK_FREE);
            }
            *start = s;
            return true;
        }
        unclaim(map, c0, k < c1 ? k : c1, 0);
        if (spins > 64)
            sched_yield();
    }
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

    if (!take_fresh(rt, node, map, carve, need, shift, align, start))
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
    /* Counted before the entries change: a process that dies in between leaves the count
     * high (a search that finds less), never low (chunks no search looks for). */
    atomic_fetch_add_explicit(&x->recycled[node], need, memory_order_relaxed);
    for (uint64_t c = first; c < first + need && c < shoal__geo.nchunks; c++)
        /* release: pairs with the acquire CAS in take_recycled. */
        atomic_store_explicit(&map[c], SHOAL__CHUNK_FREE, memory_order_release);
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
        /* Its chunks below the carve are recycled; its claims above it (a take_fresh it
         * never finished, chunks.c) go back to unclaimed. */
        uint64_t carved = atomic_load_explicit(&rt->hdr->node[n].carve, memory_order_relaxed) >>
                          shoal__geo.shift;
        for (uint64_t c = 0; c < shoal__geo.nchunks; c++) {
            uint32_t want = id;
            if (atomic_load_explicit(&map[c], memory_order_relaxed) != id)
                continue;
            if (c >= carved) {
                atomic_compare_exchange_strong_explicit(&map[c], &want, 0, memory_order_relaxed,
                                                        memory_order_relaxed);
                continue;
            }
            if (atomic_compare_exchange_strong_explicit(&map[c], &want, SHOAL__CHUNK_FREE,
                                                        memory_order_relaxed, memory_order_relaxed))
                got++;
        }
        if (got)
            atomic_fetch_add_explicit(&x->recycled[n], got, memory_order_relaxed);
        total += got;
    }
    return total;
}
