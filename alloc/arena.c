/* arena.c - the shared arenas: node segments (memfd, hugetlb -> THP -> normal pages, the
 * result reported), jemalloc arenas over them through extent hooks, explicit tcaches.
 * jemalloc never gets memory from anywhere else for these arenas, so every object byte
 * lies in the shared span; pages are never purged (page churn slows the whole process
 * here, MEASURED.md), so freed extents stay mapped and populated for reuse.
 */
#include "arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/mproc.h"
#include "../sched/topo.h"
#include "os.h"

#define PREFAULT_BYTES ((uint64_t)32 << 20)   /* populated per node at init */

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static void populate_to(shoal__rt_t *rt, struct shoal__node_hooks *nh, uint64_t end)
{
    uint64_t have = atomic_load_explicit(&nh->populated, memory_order_relaxed);
    if (end <= have)
        return;
    end = round_up(end, SHOAL__HUGE_SIZE);
    if (end > rt->node_span)
        end = rt->node_span;
    char *node_base = rt->base + (uint64_t)nh->node * rt->node_span;
    if (shoal__os_populate(node_base + have, end - have) == 0) {
        /* Monotonic max; racing populates overlap harmlessly. */
        while (have < end && !atomic_compare_exchange_weak_explicit(
                                 &nh->populated, &have, end, memory_order_relaxed,
                                 memory_order_relaxed)) {
        }
    }
}

/* ---- extent hooks ------------------------------------------------------------------- */

static void *hook_alloc(extent_hooks_t *eh, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned arena_ind)
{
    (void)arena_ind;
    struct shoal__node_hooks *nh = (struct shoal__node_hooks *)eh;
    shoal__rt_t *rt = nh->rt;
    if (new_addr != NULL)
        return NULL;   /* we carve where we choose, never at a requested address */
    if (alignment < 4096)
        alignment = 4096;
    /* Whole chunks of the span, recorded as this process's in the chunk map (chunks.c). */
    uint64_t start;
    if (shoal__chunk_take(rt, nh->node, size, alignment, zero, &start) != 0)
        return NULL;   /* span exhausted: jemalloc reports OOM, we answer SHOAL_ENOMEM */
    populate_to(rt, nh, start + size);
    *commit = true;
    return rt->base + (uint64_t)nh->node * rt->node_span + start;
}

/* Declining dalloc makes jemalloc retain the extent for reuse: memory stays in the span. */
static bool hook_dalloc(extent_hooks_t *eh, void *addr, size_t size, bool committed, unsigned ai)
{
    (void)eh; (void)addr; (void)size; (void)committed; (void)ai;
    return true;
}

static void hook_destroy(extent_hooks_t *eh, void *addr, size_t size, bool committed, unsigned ai)
{
    (void)eh; (void)addr; (void)size; (void)committed; (void)ai;
}

static bool hook_commit(extent_hooks_t *eh, void *addr, size_t size, size_t off, size_t len,
                        unsigned ai)
{
    (void)eh; (void)addr; (void)size; (void)off; (void)len; (void)ai;
    return false;   /* always committed */
}

static bool hook_decline(extent_hooks_t *eh, void *addr, size_t size, size_t off, size_t len,
                         unsigned ai)
{
    (void)eh; (void)addr; (void)size; (void)off; (void)len; (void)ai;
    return true;    /* no decommit, no purge: keep pages mapped */
}

static bool hook_split(extent_hooks_t *eh, void *addr, size_t size, size_t a, size_t b,
                       bool committed, unsigned ai)
{
    (void)eh; (void)addr; (void)size; (void)a; (void)b; (void)committed; (void)ai;
    return false;   /* splitting our carve is fine */
}

static bool hook_merge(extent_hooks_t *eh, void *a, size_t asz, void *b, size_t bsz,
                       bool committed, unsigned ai)
{
    (void)eh; (void)a; (void)asz; (void)b; (void)bsz; (void)committed; (void)ai;
    return false;   /* one arena per node: adjacent extents are in the same segment */
}

static const extent_hooks_t hooks_template = {
    .alloc = hook_alloc, .dalloc = hook_dalloc, .destroy = hook_destroy,
    .commit = hook_commit, .decommit = hook_decline, .purge_lazy = hook_decline,
    .purge_forced = hook_decline, .split = hook_split, .merge = hook_merge,
};

/* ---- setup ---------------------------------------------------------------------------- */

static int map_node(shoal__rt_t *rt, struct shoal__arenas *a, unsigned n, int huge_mode,
                    int *kind)
{
    char name[32];
    snprintf(name, sizeof name, "shoal-node%u", n);
    void *at = rt->base + (uint64_t)n * rt->node_span;
    if (huge_mode != SHOAL_HUGE_OFF && *kind == SHOAL_PAGES_HUGETLB) {
        int fd = shoal__os_memfd(name, rt->node_span, 1);
        if (fd >= 0) {
            /* A hugetlb mapping reserves its pages now: it fails rather than SIGBUS later. */
            if (shoal__os_map(fd, rt->node_span, at, NULL) == 0) {
                a->fds[n] = fd;
                return 0;
            }
            close(fd);
        }
        if (huge_mode == SHOAL_HUGE_REQUIRE)
            return shoal__err(SHOAL_ENOMEM,
                              "huge pages required but %zu MiB of 2 MiB pages cannot be had "
                              "(%ld free): reserve them with 'echo N > /proc/sys/vm/nr_hugepages' "
                              "as root, or use SHOAL_HUGE_AUTO",
                              (size_t)(rt->node_span >> 20), shoal__os_free_hugepages());
        *kind = SHOAL_PAGES_THP;
    }
    int fd = shoal__os_memfd(name, rt->node_span, 0);
    if (fd < 0)
        return fd;
    int rc = shoal__os_map(fd, rt->node_span, at, NULL);
    if (rc) {
        close(fd);
        return rc;
    }
    a->fds[n] = fd;
    if (huge_mode == SHOAL_HUGE_OFF || !shoal__os_thp(at, rt->node_span))
        *kind = SHOAL_PAGES_NORMAL;
    return 0;
}

static int make_je_arena(shoal__rt_t *rt, struct shoal__arenas *a, unsigned n)
{
    a->nh[n].hooks = hooks_template;
    a->nh[n].node = n;
    a->nh[n].rt = rt;
    extent_hooks_t *h = &a->nh[n].hooks;
    unsigned ind;
    size_t sz = sizeof ind;
    if (mallctl("arenas.create", &ind, &sz, &h, sizeof h) != 0)
        return shoal__err(SHOAL_ENOMEM, "jemalloc could not create an arena for node %u", n);
    a->je[n] = ind;
    a->je_made[n] = true;
    char key[64];
    ssize_t never = 0;
    snprintf(key, sizeof key, "arena.%u.dirty_decay_ms", ind);
    mallctl(key, NULL, NULL, &never, sizeof never);
    snprintf(key, sizeof key, "arena.%u.muzzy_decay_ms", ind);
    mallctl(key, NULL, NULL, &never, sizeof never);
    return 0;
}

/* The arenas record and the reserved span, for create (fds NULL: made later) and attach
 * (the owner's fds, taken over). */
static int arenas_new(shoal__rt_t *rt, const int *fds)
{
    struct shoal__arenas *a = calloc(1, sizeof *a);
    if (!a)
        return shoal__err(SHOAL_ENOMEM, "out of memory setting up the arenas");
    a->nnodes = rt->nnodes;
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++)
        a->fds[n] = fds && n < rt->nnodes ? fds[n] : -1;
    rt->arenas = a;
    a->span_len = (size_t)rt->node_span * rt->nnodes;
    int rc = shoal__os_reserve(a->span_len, SHOAL__HUGE_SIZE, &a->span);
    if (rc)
        return rc;
    rt->base = a->span;
    return 0;
}

int shoal__arenas_create(shoal__rt_t *rt, int huge_mode)
{
    int rc = arenas_new(rt, NULL);
    if (rc)
        return rc;
    struct shoal__arenas *a = rt->arenas;

    long need_pages = (long)(a->span_len / SHOAL__HUGE_SIZE);
    int kind = SHOAL_PAGES_HUGETLB;
    if (huge_mode == SHOAL_HUGE_AUTO && shoal__os_free_hugepages() < need_pages)
        kind = SHOAL_PAGES_THP;   /* not enough reserved: don't even try hugetlb */
    if (huge_mode == SHOAL_HUGE_OFF)
        kind = SHOAL_PAGES_NORMAL;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        rc = map_node(rt, a, n, huge_mode, &kind);
        if (rc)
            return rc;
    }
    rt->huge_kind = kind;
    if (huge_mode == SHOAL_HUGE_AUTO && kind != SHOAL_PAGES_HUGETLB) {
        static _Atomic int told;
        if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
            shoal__log("no 2 MiB huge pages reserved (%ld free, %ld needed): the store uses %s "
                       "pages; reserve with 'echo N > /proc/sys/vm/nr_hugepages'",
                       shoal__os_free_hugepages(), need_pages,
                       kind == SHOAL_PAGES_THP ? "transparent huge" : "normal 4 KiB");
    }

    bool unbound = false;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        void *at = rt->base + (uint64_t)n * rt->node_span;
        if (shoal__topo_bind_mem(rt->topo, at, rt->node_span, n) != 0)
            unbound = true;
        uint64_t pre = rt->hdr->node[n].cap < PREFAULT_BYTES ? rt->hdr->node[n].cap : PREFAULT_BYTES;
        a->nh[n].node = n;
        a->nh[n].rt = rt;
        populate_to(rt, &a->nh[n], pre);
    }
    if (unbound && shoal__topo_is_real(rt->topo) && rt->nnodes > 1)
        shoal__log("arena memory placed without NUMA binding (the kernel refused membind)");

    for (unsigned n = 0; n < rt->nnodes; n++) {
        rc = make_je_arena(rt, a, n);
        if (rc)
            return rc;
    }
    return 0;
}

int shoal__arenas_attach(shoal__rt_t *rt, const int *fds)
{
    int rc = arenas_new(rt, fds);
    if (rc) {
        if (!rt->arenas)   /* the fds were not taken over */
            for (unsigned n = 0; n < rt->nnodes; n++)
                close(fds[n]);
        return rc;
    }
    struct shoal__arenas *a = rt->arenas;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        void *at = rt->base + (uint64_t)n * rt->node_span;
        rc = shoal__os_map(a->fds[n], rt->node_span, at, NULL);
        if (rc)
            return rc;
        if (rt->huge_kind == SHOAL_PAGES_THP)
            shoal__os_thp(at, rt->node_span);
        a->nh[n].node = n;
        a->nh[n].rt = rt;
        /* What is carved already belongs to other processes: it faults in here on first
         * touch (no zeroing, the pages exist) instead of being populated at attach, which
         * must stay under a millisecond. */
        uint64_t c = round_up(atomic_load_explicit(&rt->hdr->node[n].carve, memory_order_relaxed),
                              SHOAL__HUGE_SIZE);
        atomic_store_explicit(&a->nh[n].populated, c < rt->node_span ? c : rt->node_span,
                              memory_order_relaxed);
    }
    for (unsigned n = 0; n < rt->nnodes; n++) {
        rc = make_je_arena(rt, a, n);
        if (rc)
            return rc;
    }
    return 0;
}

void shoal__arenas_destroy(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    if (!a)
        return;
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++) {
        if (a->je_made[n]) {
            char key[64];
            snprintf(key, sizeof key, "arena.%u.destroy", a->je[n]);
            mallctl(key, NULL, NULL, NULL, 0);
        }
        if (a->fds[n] >= 0)
            close(a->fds[n]);
    }
    shoal__os_unmap(a->span, a->span_len);
    free(a);
    rt->arenas = NULL;
}

unsigned shoal__arena_tcache_slow(shoal__rt_t *rt, struct shoal__thr *t, unsigned node)
{
    (void)rt;
    /* An explicit tcache per (thread, node): with MALLOCX_ARENA and the automatic tcache,
     * half the objects came from the private default arena here (MEASURED.md). */
    unsigned tc;
    size_t sz = sizeof tc;
    if (mallctl("tcache.create", &tc, &sz, NULL, 0) != 0)
        return 0;   /* callers fall back to MALLOCX_TCACHE_NONE */
    t->tcache[node] = tc + 1;
    return tc + 1;
}

void shoal__arena_thread_flush(shoal__rt_t *rt, struct shoal__thr *t)
{
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++) {
        struct shoal__tiny *tc = &t->tiny[n];
        int fl = t->tcache[n] ? MALLOCX_TCACHE(t->tcache[n] - 1) : MALLOCX_TCACHE_NONE;
        while (tc->n)
            sdallocx(rt->base + tc->off[--tc->n], shoal__alloc_len(SHOAL__TINY_MAX), fl);
    }
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++) {
        if (t->tcache[n]) {
            unsigned tc = t->tcache[n] - 1;
            mallctl("tcache.destroy", NULL, NULL, &tc, sizeof tc);
            t->tcache[n] = 0;
        }
    }
}

bool shoal__cap_refill(shoal__rt_t *rt, struct shoal__thr *t, unsigned n, size_t usable)
{
    struct shoal__node_stats *ns = &rt->hdr->node[n];
    int64_t have = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
    uint64_t want = usable - (uint64_t)have + (rt->batched ? (uint64_t)SHOAL__CREDIT : 0);
    for (;;) {
        uint64_t used = atomic_fetch_add_explicit(&ns->bytes_used, want, memory_order_relaxed);
        if (used + want <= ns->cap) {
            if (!rt->batched)   /* and into this process's shard (core/mproc.h) */
                atomic_fetch_add_explicit(&shoal__shard_of(rt->proc)->bytes[n], (int64_t)want,
                                          memory_order_relaxed);
            atomic_store_explicit(&t->credit[n], have + (int64_t)want - (int64_t)usable,
                                  memory_order_relaxed);
            return true;
        }
        atomic_fetch_sub_explicit(&ns->bytes_used, want, memory_order_relaxed);
        if (want == usable - (uint64_t)have)
            return false;
        want = usable - (uint64_t)have;   /* nearly full: exactly what this object needs */
    }
}

void shoal__cap_return(shoal__rt_t *rt, struct shoal__thr *t, unsigned n)
{
    int64_t keep = rt->batched ? SHOAL__CREDIT : 0;
    int64_t c = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
    shoal__count_bytes(rt, rt->proc, n, -(c - keep));
    atomic_store_explicit(&t->credit[n], keep, memory_order_relaxed);
}

int shoal__arena_full(shoal__rt_t *rt, size_t len)
{
    uint64_t used = 0;
    for (unsigned n = 0; n < rt->nnodes; n++)
        used += atomic_load_explicit(&rt->hdr->node[n].bytes_used, memory_order_relaxed);
    return shoal__err(SHOAL_ENOMEM,
                      "store full: cannot place %zu bytes (%llu of %llu bytes in use); release "
                      "objects, raise store_bytes, or set spill_dir",
                      len, (unsigned long long)used, (unsigned long long)rt->hdr->store_bytes);
}
