/* chunks.c - who owns which piece of the span. A process takes runs of whole chunks for its
 * slabs and large objects here and records itself as their owner in the shared chunk map
 * (layout/mpseg.h), so that the chunks of a process that died can be given back once none of
 * its objects is left; a run given back is at once free for any process and any size.
 * Lock-free between processes (a CAS per chunk); slow path only.
 */
#include <sched.h>

#include "chunks.h"
#include "arena.h"

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Claim `need` recycled chunks in a row in [from, limit), first fit. *first_free: the
 * lowest index at or above from that was free when looked at (limit if none). */
static int64_t take_recycled(_Atomic uint32_t *map, uint64_t from, uint64_t limit,
                             uint64_t need, uint64_t *first_free)
{
    uint64_t i = from;
    *first_free = limit;
    while (i + need <= limit) {
        uint64_t j = 0;
        while (j < need && atomic_load_explicit(&map[i + j], memory_order_relaxed) == SHOAL__CHUNK_FREE)
            j++;
        if (j && i < *first_free)
            *first_free = i;
        if (j < need) {
            i += j + 1;
            continue;
        }
        uint64_t k = 0;
        for (; k < need; k++) {
            uint32_t want = SHOAL__CHUNK_FREE;
            /* acquire: pairs with the release in shoal__run_give, so the last owner's
             * accesses to the freed bytes happen before we reuse them. */
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

/* Give back our claims on entries [from, to): val 0 above the carve, FREE below it. */
static void unclaim(_Atomic uint32_t *map, uint64_t from, uint64_t to, uint32_t val)
{
    for (uint64_t c = from; c < to; c++) {
        uint32_t want = shoal__chunk_me;
        /* release: pairs with the acquire CAS in take_recycled and take_fresh. */
        atomic_compare_exchange_strong_explicit(&map[c], &want, val, memory_order_release,
                                                memory_order_relaxed);
    }
}

/* Fresh chunks from the carve (never used before), joined to the free chunks just below
 * it: a run freed at the end of what was carved merges with the rest of the span, so that
 * an object as large as a fresh store holds still fits after others came and went.
 * Every map entry is claimed before the carve moves past it (the free ones below it
 * FREE -> us, the fresh ones 0 -> us), so a process that dies at any instruction leaves
 * every chunk it took named by its id: below the carve the owner reclaims them with the
 * rest of its chunks, above it the next carver (or the owner) takes its claims over.
 * Returns the run's first chunk, or -1 when the span has no room. */
static int64_t take_fresh(shoal__rt_t *rt, struct shoal__mp *x, unsigned node,
                          _Atomic uint32_t *map, uint64_t need)
{
    unsigned shift = shoal__geo.shift;
    uint64_t nchunks = shoal__geo.nchunks, csz = (uint64_t)1 << shift;
    _Atomic uint64_t *carve = &rt->hdr->node[node].carve;
    for (unsigned spins = 0;; spins++) {
        if (spins > 64)
            sched_yield();
        uint64_t cur = atomic_load_explicit(carve, memory_order_relaxed);
        uint64_t s = round_up(cur, csz), below = 0;
        if (s < cur || (s >> shift) > nchunks)
            return -1;
        while (below < need && below < (s >> shift) &&
               atomic_load_explicit(&map[(s >> shift) - below - 1], memory_order_relaxed) ==
                   SHOAL__CHUNK_FREE)
            below++;
        uint64_t e = s + ((need - below) << shift);
        if (e > rt->node_span || e < s || (e >> shift) > nchunks)
            return -1;
        uint64_t first = (s >> shift) - below, c0 = s >> shift, c1 = e >> shift, k, f;
        for (f = first; f < c0; f++) {
            uint32_t want = SHOAL__CHUNK_FREE;
            /* acquire: as in take_recycled. */
            if (!atomic_compare_exchange_strong_explicit(&map[f], &want, shoal__chunk_me,
                                                         memory_order_acquire,
                                                         memory_order_relaxed))
                break;
        }
        if (f < c0) {   /* another process took one of the free chunks: look again */
            unclaim(map, first, f, SHOAL__CHUNK_FREE);
            continue;
        }
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
            /* Uncounted after the claims: a death in between leaves the count high. */
            if (below)
                atomic_fetch_sub_explicit(&x->recycled[node], below, memory_order_relaxed);
            return (int64_t)first;
        }
        unclaim(map, c0, k, 0);
        unclaim(map, first, c0, SHOAL__CHUNK_FREE);
    }
}

/* The hint only ever moves down past a free run (give) or up past what a scan found taken;
 * a stale one costs a rescan from 0 when it finds nothing, never a miss. */
static void hint_lower(_Atomic uint64_t *h, uint64_t to)
{
    uint64_t cur = atomic_load_explicit(h, memory_order_relaxed);
    while (to < cur && !atomic_compare_exchange_weak_explicit(h, &cur, to, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}

int64_t shoal__run_take(shoal__rt_t *rt, unsigned node, uint64_t need)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    unsigned shift = shoal__geo.shift;
    _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)node * shoal__geo.nchunks;
    _Atomic uint64_t *carve = &rt->hdr->node[node].carve;
    _Atomic uint64_t *hint = &rt->arenas->node[node].hint;
    if (need == 0 || need > shoal__geo.nchunks)
        return -1;

    if (atomic_load_explicit(&x->recycled[node], memory_order_relaxed) >= need) {
        uint64_t limit = atomic_load_explicit(carve, memory_order_relaxed) >> shift;
        if (limit > shoal__geo.nchunks)
            limit = shoal__geo.nchunks;
        uint64_t h0 = atomic_load_explicit(hint, memory_order_relaxed), ff;
        uint64_t from = h0 < limit ? h0 : limit;
        int64_t c = take_recycled(map, from, limit, need, &ff);
        /* A scan from the hint found nothing: frees by other processes may lie below it. */
        if (c < 0 && from > 0)
            c = take_recycled(map, 0, limit, need, &ff);
        uint64_t nh = c >= 0 && ff == (uint64_t)c ? (uint64_t)c + need : ff;
        atomic_compare_exchange_strong_explicit(hint, &h0, nh, memory_order_relaxed,
                                                memory_order_relaxed);
        if (c >= 0) {
            atomic_fetch_sub_explicit(&x->recycled[node], need, memory_order_relaxed);
            return c;
        }
    }
    /* -1: no run that long, the caller answers SHOAL_ENOMEM. */
    return take_fresh(rt, x, node, map, need);
}

void shoal__run_give(shoal__rt_t *rt, unsigned node, uint64_t first, uint64_t need)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)node * shoal__geo.nchunks;
    /* Counted before the entries change: a process that dies in between leaves the count
     * high (a search that finds less), never low (chunks no search looks for). */
    atomic_fetch_add_explicit(&x->recycled[node], need, memory_order_relaxed);
    for (uint64_t c = first; c < first + need && c < shoal__geo.nchunks; c++)
        /* release: pairs with the acquire CAS in take_recycled. */
        atomic_store_explicit(&map[c], SHOAL__CHUNK_FREE, memory_order_release);
    hint_lower(&rt->arenas->node[node].hint, first);
}

uint64_t shoal__chunks_reclaim(shoal__rt_t *rt, uint32_t id)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    uint64_t total = 0;
    if (id == 0 || id == SHOAL__CHUNK_FREE)
        return 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)n * shoal__geo.nchunks;
        uint64_t got = 0, low = UINT64_MAX;
        /* Its chunks below the carve are recycled; its claims above it (a take_fresh it
         * never finished) go back to unclaimed. */
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
                                                        memory_order_relaxed, memory_order_relaxed)) {
                got++;
                if (c < low)
                    low = c;
            }
        }
        if (got) {
            atomic_fetch_add_explicit(&x->recycled[n], got, memory_order_relaxed);
            if (rt->arenas)
                hint_lower(&rt->arenas->node[n].hint, low);
        }
        total += got;
    }
    return total;
}
