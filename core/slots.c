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
#include "../layout/segment.h"
#include "thread.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../os/mem.h"

#define TABLE_STEP ((uint64_t)SHOAL__HUGE_SIZE)  /* populate the table 2 MiB at a time */

/* Process-local: how much of the table this process has populated. */
static _Atomic uint64_t populated_bytes;

/* Generations across the stores of one process (table.h). saved[i] is the first generation
 * slot i has not issued yet in any earlier store of this process (0: the slot was never
 * used), written at each shutdown; the next store starts slot i there. So a ref kept across
 * shutdown and init can name an object of a later store only once that slot has been
 * reused 2^32 - 1 times since the ref's object was freed, counted over all the stores: the
 * same rule as within one store. Slots no earlier store used start at proc_base, picked at
 * random for the first store of the process (so refs from another process's store are
 * unlikely to alias, as nothing can promise more for them). A fork() child forgets both
 * (runtime.c): its parent's store went on issuing generations after the copy was made.
 * Process-private, MAP_NORESERVE: touched only as far as stores used their tables. */
static uint32_t *saved;
static uint64_t saved_n;          /* entries [1, saved_n) may be set */
static uint64_t proc_base;

/* SHOAL_TEST_GEN_BASE (tests): every slot of the next store starts at this generation, so
 * that a test can wrap a slot's generation in a few puts. */
static uint64_t test_gen_base(void)
{
    return shoal__env_u64("SHOAL_TEST_GEN_BASE", 1, SHOAL__GEN_MAX, 0);
}

static uint64_t random_base(void)
{
    uint64_t r = shoal__now_ns() ^ ((uint64_t)getpid() << 20);
    r ^= r >> 29;
    r *= UINT64_C(0xbf58476d1ce4e5b9);
    r ^= r >> 32;
    return 1 + r % SHOAL__GEN_MAX;   /* 1 .. 2^32 - 1 */
}

void shoal__slots_forget(void)
{
    saved_n = 0;
    proc_base = 0;
}

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
    rt->slot_cache = shoal__slot_cache_for(rt->nslots);
    if (proc_base == 0)
        proc_base = random_base();
    uint64_t base = test_gen_base();
    rt->hdr->gen_base = (uint32_t)(base ? base : proc_base);
    if (base == 0) {
        /* Slots earlier stores used continue their generations (see `saved`). The words
         * are written now, before any process can take these slots from the bump. */
        uint64_t n = saved_n < rt->nslots ? saved_n : rt->nslots;
        for (uint64_t i = 1; i < n; i++)
            if (saved[i])
                atomic_store_explicit(&rt->slots[i].word, shoal__w_make(saved[i], SHOAL__FREE, 0),
                                      memory_order_relaxed);
    }
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

void shoal__slots_retire(shoal__rt_t *rt)
{
    uint64_t used = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed);
    if (used > rt->nslots)
        used = rt->nslots;
    if (!saved) {
        void *m = mmap(NULL, SHOAL__MAX_SLOTS * sizeof *saved, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            /* Without the record, the next store starts every slot at a new random base:
             * a kept ref then aliases only by chance, as another process's would. */
            proc_base = 0;
            return;
        }
        saved = m;
    }
    for (uint64_t i = 1; i < used; i++) {
        uint64_t w = atomic_load_explicit(&rt->slots[i].word, memory_order_relaxed);
        uint64_t g = shoal__w_gen(w);
        if (g == 0)
            continue;   /* never written: nothing issued */
        /* A FREE slot's generation is the next one to issue (freeing advanced it); a live
         * object's is issued, so the next store starts after it. */
        saved[i] = (uint32_t)(shoal__w_state(w) == SHOAL__FREE ? g : shoal__gen_next(g));
    }
    if (used > saved_n)
        saved_n = used;
}

/* A never-used slot's word: the generation an earlier store left it at (slots_init), else
 * the store's base. Never 0: an ID with generation 0 is never valid. */
static inline void fresh_word(shoal__rt_t *rt, uint64_t idx)
{
    _Atomic uint64_t *wp = &rt->slots[idx].word;
    uint64_t g = shoal__w_gen(atomic_load_explicit(wp, memory_order_relaxed));
    if (g == 0 && (g = rt->hdr->gen_base) == 0)
        g = 1;
    atomic_store_explicit(wp, shoal__w_make(g, SHOAL__FREE, 0), memory_order_relaxed);
}

/* Small tables (rt->slot_cache 0): one slot from the stack or the bump, nothing cached. */
static uint32_t take_one(shoal__rt_t *rt)
{
    uint32_t idx = chain_pop(rt);
    if (idx) {
        SHOAL__TSAN_HANDOVER_TAKE(&rt->slots[idx].off);   /* (os/compiler.h) */
        uint32_t rest = shoal__chain_next(rt, idx);
        if (rest)
            chain_push(rt, rest);   /* still linked as it was pushed */
        return idx;
    }
    uint64_t first = atomic_fetch_add_explicit(&rt->hdr->bump, 1, memory_order_relaxed);
    if (first >= rt->nslots)
        return 0;
    table_populate(rt, first);
    fresh_word(rt, first);
    return (uint32_t)first;
}

void shoal__slot_give_slow(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx)
{
    if (rt->slot_cache == 0) {
        shoal__slot_set_low(rt, idx, 0);   /* a chain of one */
        chain_push(rt, idx);
        return;
    }
    shoal__slot_flush(rt, t, SHOAL__SLOT_CACHE / 2);
    if (unlikely(rt->proc != 0))
        shoal__slot_tag(rt, idx, SHOAL__W_CACHED | rt->proc);
    t->free[t->nfree++] = idx;
}

uint32_t shoal__slot_refill(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (rt->slot_cache == 0)
        return take_one(rt);
    const uint32_t want = SHOAL__SLOT_CACHE / 2;
    uint64_t tag = rt->proc ? SHOAL__W_CACHED | rt->proc : 0;   /* see thread.h */
    if (t->chain == 0)
        t->chain = chain_pop(rt);
    if (t->chain != 0 && tag) {
        /* An attached process tags every slot it caches (thread.h), so it takes the whole
         * chain into its array now: at most SHOAL__SLOT_CACHE long, and the array is empty. */
        for (uint32_t idx = t->chain, next; idx && t->nfree < SHOAL__SLOT_CACHE; idx = next) {
            SHOAL__TSAN_HANDOVER_TAKE(&rt->slots[idx].off);   /* (os/compiler.h) */
            next = shoal__chain_next(rt, idx);   /* before the tag takes the link's place */
            shoal__slot_tag(rt, idx, tag);
            t->free[t->nfree++] = idx;
        }
        t->chain = 0;
    } else if (t->chain != 0) {
        return shoal__chain_take(rt, t);
    }
    if (t->nfree < want) {
        uint64_t n = want - t->nfree;
        uint64_t first = atomic_fetch_add_explicit(&rt->hdr->bump, n, memory_order_relaxed);
        if (first < rt->nslots) {
            if (first + n > rt->nslots)
                n = rt->nslots - first;
            table_populate(rt, first + n - 1);
            for (uint64_t i = 0; i < n; i++) {
                fresh_word(rt, first + i);
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
    /* Link the n oldest cached slots into a chain and push it with one CAS; each also
     * names the slot SHOAL__CHAIN_SKIP further on, for its taker's prefetch (thread.h). */
    for (uint32_t i = 0; i < n; i++) {
        SHOAL__TSAN_HANDOVER_GIVE(&rt->slots[t->free[i]].off);   /* (os/compiler.h) */
        if (rt->proc)   /* back in the shared stack: no longer this process's (thread.h) */
            shoal__slot_tag(rt, t->free[i], 0);
        shoal__slot_set_low(rt, t->free[i], i + 1 < n ? t->free[i + 1] : 0);
        /* atomic: a scan of the table (io/spill.c) may read a slot's off as it is freed */
        __atomic_store_n(&rt->slots[t->free[i]].off,
                         i + SHOAL__CHAIN_SKIP < n ? t->free[i + SHOAL__CHAIN_SKIP] : 0,
                         __ATOMIC_RELAXED);
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
