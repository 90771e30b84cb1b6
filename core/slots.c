/* slots.c - the slot allocator: per-thread caches in front of a lock-free stack of free
 * slots in the shared segment, and a bump pointer over never-used slots (DPDK mempool's
 * cache-in-front-of-ring, with a Treiber stack for the ring). Slow paths only: the fast
 * path is shoal__slot_take/give in thread.h.
 *
 * The stack holds chains, pushed and popped whole with one CAS: a chain's slots are linked
 * through the low half of their FREE words (0 ends it; thread.h: only slots an attached
 * process caches carry a tag there, and those are never in the stack), and its first
 * slot's next names the next chain. Words, like every access to them, are atomic: other
 * processes write the same slots. A thread that pops a chain takes its slots one at a
 * time as it needs them, reading each link when it is about to write that slot anyway: a
 * thread that creates objects which others free (a producer feeding workers) used to pop
 * slot by slot, one CAS and one cache miss on the freer's line each, a quarter of its time.
 */
#include "segment.h"
#include "thread.h"

#include <unistd.h>

#include "../alloc/os.h"

#define TABLE_STEP ((uint64_t)SHOAL__HUGE_SIZE)  /* populate the table 2 MiB at a time */

/* Process-local: how much of the table this process has populated. */
static _Atomic uint64_t populated_bytes;
/* The next store in this process starts its generations here, so a ref kept across
 * shutdown and init never names an object of the new store (it answers ESTALE/EINVAL). */
static uint64_t next_gen_base;

static void table_populate(shoal__rt_t *rt, uint64_t upto_idx)
{
    uint64_t need = (upto_idx + 1) * sizeof(shoal__slot);
    uint64_t have = atomic_load_explicit(&populated_bytes, memory_order_relaxed);
    if (need <= have)
        return;
    uint64_t end = (need + TABLE_STEP - 1) / TABLE_STEP * TABLE_STEP;
    uint64_t max = rt->nslots * sizeof(shoal__slot);
    if (end > max)
        end = max;
    /* Racing populates of the same range are harmless: MADV_POPULATE_WRITE is idempotent. */
    if (end > have && shoal__os_populate((char *)rt->slots + have, end - have) == 0)
        atomic_store_explicit(&populated_bytes, end, memory_order_relaxed);
}

int shoal__slots_init(shoal__rt_t *rt)
{
    atomic_store_explicit(&populated_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->hdr->free_head, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->hdr->bump, 1, memory_order_relaxed);   /* slot 0 is never used */
    uint64_t base = next_gen_base;
    if (base == 0 || base >= (SHOAL__GEN_MASK >> 1)) {
        /* First store of this process, or bases used up: start somewhere random so that
         * refs of another process's earlier store are unlikely to alias. */
        uint64_t r = shoal__now_ns() ^ ((uint64_t)getpid() << 20);
        r ^= r >> 29;
        r *= UINT64_C(0xbf58476d1ce4e5b9);
        base = 1 + (r >> 40) % (SHOAL__GEN_MASK >> 2);
    }
    rt->hdr->gen_base = (uint32_t)base;
    table_populate(rt, rt->nslots < 65536 ? rt->nslots - 1 : 65535);
    return 0;
}

/* The first slot of a chain, now the caller's, or 0 when the stack is empty. */
static uint32_t chain_pop(shoal__rt_t *rt)
{
    struct shoal__hdr *h = rt->hdr;
    /* acquire: pairs with the release CAS in chain_push, so the chain's links (written
     * before that push) are visible. */
    uint64_t head = atomic_load_explicit(&h->free_head, memory_order_acquire);
    for (;;) {
        uint32_t idx = (uint32_t)head;
        if (idx == 0 || idx >= rt->nslots)   /* >= nslots: a process wrote the header */
            return 0;
        uint32_t next = atomic_load_explicit(&rt->slots[idx].next, memory_order_relaxed);
        uint64_t nh = (((head >> 32) + 1) << 32) | next;   /* tag defeats ABA */
        if (atomic_compare_exchange_weak_explicit(&h->free_head, &head, nh,
                                                  memory_order_acquire, memory_order_acquire))
            return idx;
    }
}

/* Push the chain starting at first (already linked through its FREE words). */
static void chain_push(shoal__rt_t *rt, uint32_t first)
{
    struct shoal__hdr *h = rt->hdr;
    uint64_t head = atomic_load_explicit(&h->free_head, memory_order_relaxed);
    do {
        atomic_store_explicit(&rt->slots[first].next, (uint32_t)head, memory_order_relaxed);
        /* release: publishes the chain's links to the acquire in chain_pop. */
    } while (!atomic_compare_exchange_weak_explicit(&h->free_head, &head,
                                                    (((head >> 32) + 1) << 32) | first,
                                                    memory_order_release, memory_order_relaxed));
}

/* The slot after idx in its chain (0: the last). A corrupt link ends the chain. */
static inline uint32_t chain_next(shoal__rt_t *rt, uint32_t idx)
{
    uint32_t n = (uint32_t)atomic_load_explicit(&rt->slots[idx].word, memory_order_relaxed);
    return n < rt->nslots ? n : 0;
}

void shoal__slots_retire(shoal__rt_t *rt)
{
    uint64_t used = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed), max = 0;
    if (used > rt->nslots)
        used = rt->nslots;
    for (uint64_t i = 1; i < used; i++) {
        uint64_t g = shoal__w_gen(atomic_load_explicit(&rt->slots[i].word, memory_order_relaxed));
        if (g > max)
            max = g;
    }
    next_gen_base = max + 1;
}

uint32_t shoal__slot_refill(shoal__rt_t *rt, struct shoal__thr *t)
{
    const uint32_t want = SHOAL__SLOT_CACHE / 2;
    uint64_t tag = rt->proc ? SHOAL__W_CACHED | rt->proc : 0;   /* see thread.h */
    if (t->chain == 0)
        t->chain = chain_pop(rt);
    if (t->chain != 0 && tag) {
        /* An attached process tags every slot it caches (thread.h), so it takes the whole
         * chain into its array now: at most SHOAL__SLOT_CACHE long, and the array is empty. */
        for (uint32_t idx = t->chain, next; idx && t->nfree < SHOAL__SLOT_CACHE; idx = next) {
            next = chain_next(rt, idx);   /* before the tag takes the link's place */
            shoal__slot_tag(rt, idx, tag);
            t->free[t->nfree++] = idx;
        }
        t->chain = 0;
    } else if (t->chain != 0) {
        uint32_t idx = t->chain;
        t->chain = chain_next(rt, idx);
        return idx;
    }
    if (t->nfree < want) {
        uint64_t n = want - t->nfree;
        uint64_t first = atomic_fetch_add_explicit(&rt->hdr->bump, n, memory_order_relaxed);
        if (first < rt->nslots) {
            if (first + n > rt->nslots)
                n = rt->nslots - first;
            table_populate(rt, first + n - 1);
            /* Fresh slots start at the store's base generation (never 0: an ID with
             * generation 0 is never valid). */
            for (uint64_t i = 0; i < n; i++) {
                atomic_store_explicit(&rt->slots[first + i].word,
                                      shoal__w_make(rt->hdr->gen_base, SHOAL__FREE, 0),
                                      memory_order_relaxed);
                if (tag)
                    shoal__slot_tag(rt, (uint32_t)(first + i), tag);
                t->free[t->nfree++] = (uint32_t)(first + n - 1 - i);
            }
        }
    }
    return t->nfree ? t->free[--t->nfree] : 0;
}

void shoal__slot_flush(shoal__rt_t *rt, struct shoal__thr *t, uint32_t n)
{
    if (n == 0 || n > t->nfree)
        return;
    /* Link the n oldest cached slots into a chain and push it with one CAS. */
    for (uint32_t i = 0; i < n; i++) {
        if (rt->proc)   /* back in the shared stack: no longer this process's (thread.h) */
            shoal__slot_tag(rt, t->free[i], 0);
        shoal__slot_set_low(rt, t->free[i], i + 1 < n ? t->free[i + 1] : 0);
    }
    chain_push(rt, t->free[0]);
    t->nfree -= n;
    for (uint32_t i = 0; i < t->nfree; i++)
        t->free[i] = t->free[i + n];
}

void shoal__slot_flush_all(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (t->nfree)
        shoal__slot_flush(rt, t, t->nfree);
    if (t->chain)   /* still linked as it was popped: the owner's only (clients empty it) */
        chain_push(rt, t->chain);
    t->chain = 0;
}
