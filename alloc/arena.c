/* arena.c - the span and the allocator's slow paths: node regions (published: memfds,
 * hugetlb -> THP -> normal pages; private: anonymous memory, hugetlb -> THP -> normal
 * pages; what was obtained is reported), populating, thread caches, large runs, checked
 * frees, and what to do when there is no room (see arena.h for the whole design).
 */
#include "arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunks.h"
#include "../os/topo.h"
#include "../os/mem.h"
#include "slab.h"

#define PREFAULT_BYTES ((uint64_t)32 << 20)   /* populated per node at init */
#define TC_ROOM_MAX    ((int64_t)512 << 10)   /* bytes a thread caches per node, at most */

SHOAL__HIDDEN _Atomic(shoal__alloc_full_fn) shoal__alloc_full_hook;

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static inline uint64_t chunk_bytes(void) { return (uint64_t)1 << shoal__geo.shift; }

int shoal__arena_populate(shoal__rt_t *rt, unsigned node, uint64_t start, uint64_t end)
{
    _Atomic uint64_t *pop = &rt->arenas->node[node].populated;
    uint64_t have = atomic_load_explicit(pop, memory_order_relaxed);
    if (end <= have)
        return 0;
    /* Only this run (in whole 2 MiB pages, as THP and hugetlb fault them), never pages
     * of the span that other threads or processes use and that are not ours to touch. */
    start = (start > have ? start : have) / SHOAL__HUGE_SIZE * SHOAL__HUGE_SIZE;
    end = round_up(end, SHOAL__HUGE_SIZE);
    if (end > rt->node_span)
        end = rt->node_span;
    char *node_base = rt->base + (uint64_t)node * rt->node_span;
    if (shoal__os_populate(node_base + start, end - start) != 0) {
        atomic_fetch_add_explicit(&rt->arenas->nomem, 1, memory_order_relaxed);
        return -1;
    }
    /* Monotonic max, when the run continues what is populated (it does as the carve
     * grows); racing populates overlap harmlessly. */
    while (start <= have && have < end &&
           !atomic_compare_exchange_weak_explicit(pop, &have, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    return 0;
}

/* ---- mapping -------------------------------------------------------------------------- */

static int huge_required(shoal__rt_t *rt)
{
    return shoal__err(SHOAL_ENOMEM,
                      "huge pages required but %zu MiB of 2 MiB pages cannot be had "
                      "(%ld free): reserve them with 'echo N > /proc/sys/vm/nr_hugepages' "
                      "as root, or use SHOAL_HUGE_AUTO",
                      (size_t)(rt->node_span >> 20), shoal__os_free_hugepages());
}

/* A node of a published store: a memfd other processes can map. */
static int map_shared(shoal__rt_t *rt, struct shoal__arenas *a, unsigned n, int huge_mode,
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
            return huge_required(rt);
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

/* A node of a private store: anonymous memory, which gets transparent huge pages where
 * the kernel gives them to anonymous memory on request (shmem THP is often "never"), and
 * which a child of fork() gets as a copy-on-write copy, not as the parent's live bytes. */
static int map_private(shoal__rt_t *rt, unsigned n, int huge_mode, int *kind)
{
    void *at = rt->base + (uint64_t)n * rt->node_span;
    if (huge_mode != SHOAL_HUGE_OFF && *kind == SHOAL_PAGES_HUGETLB) {
        if (shoal__os_map_anon(at, rt->node_span, 1) == 0)
            return 0;
        if (huge_mode == SHOAL_HUGE_REQUIRE)
            return huge_required(rt);
        *kind = SHOAL_PAGES_THP;
    }
    int rc = shoal__os_map_anon(at, rt->node_span, 0);
    if (rc)
        return rc;
    if (!shoal__os_thp_anon(at, rt->node_span, huge_mode != SHOAL_HUGE_OFF))
        *kind = SHOAL_PAGES_NORMAL;
    return 0;
}

/* The arenas record, the reserved span and the private maps, for create (fds NULL: made
 * later, or none for a private store) and attach (the owner's fds, taken over). */
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
    /* Private maps, touched only where this process allocates: a byte per line of the
     * span, a word per chunk. */
    a->live_len = round_up(a->span_len >> SHOAL__LINE_SHIFT, 4096);
    a->ctab_len = round_up((size_t)rt->nnodes * shoal__geo.nchunks * sizeof(uintptr_t), 4096);
    void *l = mmap(NULL, a->live_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *c = mmap(NULL, a->ctab_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    a->live = l == MAP_FAILED ? NULL : l;
    a->ctab = c == MAP_FAILED ? NULL : c;
    if (!a->live || !a->ctab)
        return shoal__err(SHOAL_ENOMEM, "cannot map the allocator's tables: %s", strerror(errno));
    for (unsigned k = 0; k < SHOAL__NCLASSES; k++)
        shoal__slab_geometry(k, shoal__geo.shift, &a->slab_chunks[k], &a->slab_nobj[k]);
    /* A thirty-second of a node at most, so that a small store is not held in caches. */
    int64_t room = (int64_t)(rt->hdr->node[0].cap / 32);
    a->tc_room = room < TC_ROOM_MAX ? room : TC_ROOM_MAX;
    return shoal__slabs_init(rt);
}

int shoal__arenas_create(shoal__rt_t *rt, int huge_mode)
{
    bool anon = rt->cfg.name == NULL;   /* private: nobody else maps it */
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
        rc = anon ? map_private(rt, n, huge_mode, &kind) : map_shared(rt, a, n, huge_mode, &kind);
        if (rc)
            return rc;
    }

    bool unbound = false;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        void *at = rt->base + (uint64_t)n * rt->node_span;
        if (shoal__topo_bind_mem(rt->topo, at, rt->node_span, n) != 0)
            unbound = true;
        uint64_t pre = rt->hdr->node[n].cap < PREFAULT_BYTES ? rt->hdr->node[n].cap : PREFAULT_BYTES;
        shoal__arena_populate(rt, n, 0, pre);
    }
    if (unbound && shoal__topo_is_real(rt->topo) && rt->nnodes > 1)
        shoal__log("arena memory placed without NUMA binding (the kernel refused membind)");
    /* Transparent huge pages are a request: report what the populated part got. */
    if (kind == SHOAL_PAGES_THP && shoal__os_huge_bytes(rt->base, a->span_len) == 0)
        kind = SHOAL_PAGES_NORMAL;
    rt->huge_kind = kind;
    /* The page state is news, not a problem: info level, once per process (shoal_info
     * reports it for every store). */
    static _Atomic int told;
    if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed)) {
        if (huge_mode == SHOAL_HUGE_AUTO && kind != SHOAL_PAGES_HUGETLB)
            shoal__log_at(SHOAL_LOG_INFO, "no 2 MiB huge pages reserved (%ld free, %ld needed): "
                          "the store uses %s pages; reserve with "
                          "'echo N > /proc/sys/vm/nr_hugepages'", shoal__os_free_hugepages(),
                          need_pages, kind == SHOAL_PAGES_THP ? "transparent huge" : "normal 4 KiB");
        else
            shoal__log_at(SHOAL_LOG_INFO, "the store uses %s pages",
                          kind == SHOAL_PAGES_HUGETLB ? "2 MiB huge (hugetlbfs)" :
                          kind == SHOAL_PAGES_THP ? "transparent huge" : "normal 4 KiB");
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
        /* What is carved already belongs to other processes: it faults in here on first
         * touch (no zeroing, the pages exist) instead of being populated at attach, which
         * must stay under a millisecond. */
        uint64_t c = round_up(atomic_load_explicit(&rt->hdr->node[n].carve, memory_order_relaxed),
                              SHOAL__HUGE_SIZE);
        atomic_store_explicit(&a->node[n].populated, c < rt->node_span ? c : rt->node_span,
                              memory_order_relaxed);
    }
    return 0;
}

void shoal__arenas_destroy(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    if (!a)
        return;
    if (a->ctab)
        shoal__slabs_destroy(rt);
    else
        for (unsigned n = 0; n < a->nnodes; n++)
            free(a->node[n].bins);   /* no slab exists without the table */
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++)
        if (a->fds[n] >= 0)
            close(a->fds[n]);
    if (a->live)
        munmap((void *)a->live, a->live_len);
    if (a->ctab)
        munmap((void *)a->ctab, a->ctab_len);
    shoal__os_unmap(a->span, a->span_len);
    free(a);
    rt->arenas = NULL;
}

/* ---- thread caches -------------------------------------------------------------------- */

/* How many blocks of class c a thread caches: up to 128 KiB of them, 4 to 64. */
static uint32_t tc_cap(unsigned c)
{
    size_t n = ((size_t)128 << 10) / shoal__class_size(c);
    return n < 4 ? 4 : n > 64 ? 64 : (uint32_t)n;
}

static struct shoal__acache *cache_new(struct shoal__arenas *a)
{
    size_t total = 0;
    for (unsigned c = 0; c < SHOAL__NCLASSES; c++)
        total += tc_cap(c);
    struct shoal__acache *ac = malloc(sizeof *ac + total * sizeof(uint64_t));
    if (!ac)
        return NULL;
    uint64_t *p = (uint64_t *)(ac + 1);
    for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
        ac->bin[c].n = 0;
        ac->bin[c].cap = tc_cap(c);
        ac->bin[c].off = p;
        p += ac->bin[c].cap;
    }
    ac->room = a->tc_room;
    return ac;
}

/* Give the k oldest blocks of a bin back to the slabs. */
static void bin_flush(shoal__rt_t *rt, struct shoal__acache *ac, unsigned n, unsigned c,
                      uint32_t k)
{
    struct shoal__tbin *b = &ac->bin[c];
    if (k > b->n)
        k = b->n;
    if (k == 0)
        return;
    shoal__slab_give(rt, n, c, b->off, k);
    memmove(b->off, b->off + k, (b->n - k) * sizeof *b->off);
    b->n -= k;
    ac->room += (int64_t)k * (int64_t)shoal__class_size(c);
}

/* Everything t caches back to the slabs; returns how many blocks went. */
static size_t cache_flush(shoal__rt_t *rt, struct shoal__thr *t)
{
    size_t got = 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__acache *ac = t->ac[n];
        if (!ac)
            continue;
        for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
            got += ac->bin[c].n;
            bin_flush(rt, ac, n, c, ac->bin[c].n);
        }
    }
    return got;
}

void shoal__arena_thread_flush(shoal__rt_t *rt, struct shoal__thr *t)
{
    cache_flush(rt, t);
}

void shoal__arena_thread_forget(struct shoal__thr *t)
{
    for (unsigned n = 0; n < SHOAL__MAX_NODES; n++) {
        free(t->ac[n]);
        t->ac[n] = NULL;
    }
}

void shoal__arena_idle(void)
{
    struct shoal__thr *t = shoal__tls.thr;
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    if (!t || !rt || t->epoch != rt->epoch)
        return;
    cache_flush(rt, t);
    shoal__slabs_trim(rt);
    /* The capacity it reserved too (rt->batched): an idle thread holds none. */
    for (unsigned n = 0; n < rt->nnodes; n++) {
        int64_t c = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
        if (c > 0) {
            atomic_fetch_sub_explicit(&rt->hdr->node[n].bytes_used, (uint64_t)c,
                                      memory_order_relaxed);
            atomic_store_explicit(&t->credit[n], 0, memory_order_relaxed);
        }
    }
}

/* ---- allocation ----------------------------------------------------------------------- */

static inline void mark_live(struct shoal__arenas *a, uint64_t off, unsigned c)
{
    /* relaxed: as in shoal__arena_alloc. */
    atomic_store_explicit(&a->live[off >> SHOAL__LINE_SHIFT], shoal__live_tag(c, off),
                          memory_order_relaxed);
}

static int small_alloc(shoal__rt_t *rt, struct shoal__thr *t, unsigned n, size_t len,
                       uint64_t *off)
{
    struct shoal__arenas *a = rt->arenas;
    unsigned c = shoal__class_of(len);
    int64_t sz = (int64_t)shoal__class_size(c);
    struct shoal__acache *ac = t->ac[n];
    if (!ac && t->epoch == rt->epoch)   /* (a service thread's stack state has none) */
        ac = t->ac[n] = cache_new(a);
    if (!ac) {
        if (shoal__slab_take(rt, n, c, off, 1) != 1)
            return -1;
        mark_live(a, *off, c);
        return 0;
    }
    struct shoal__tbin *b = &ac->bin[c];
    if (b->n == 0) {
        /* Half the bin, within the cache's room (the block we hand out does not count). */
        int64_t fit = ac->room / sz + 1;
        uint32_t want = b->cap / 2 ? b->cap / 2 : 1;
        if ((int64_t)want > fit)
            want = (uint32_t)fit;
        uint32_t got = shoal__slab_take(rt, n, c, b->off, want);
        if (got == 0)
            return -1;
        b->n = got;
        ac->room -= (int64_t)got * sz;
    }
    uint64_t o = b->off[--b->n];
    ac->room += sz;
    mark_live(a, o, c);
    *off = o;
    return 0;
}

static inline uint64_t chunk_index(unsigned n, uint64_t within)
{
    return (uint64_t)n * shoal__geo.nchunks + (within >> shoal__geo.shift);
}

/* A large object: a run of whole chunks of its own, populated. */
static int large_alloc(shoal__rt_t *rt, unsigned n, size_t len, uint64_t *off)
{
    unsigned shift = shoal__geo.shift;
    uint64_t need = (len + chunk_bytes() - 1) >> shift;
    int64_t first = shoal__run_take(rt, n, need);
    if (first < 0)
        return -1;
    uint64_t within = (uint64_t)first << shift;
    if (shoal__arena_populate(rt, n, within, within + (need << shift)) != 0) {
        shoal__run_give(rt, n, (uint64_t)first, need);
        return -1;
    }
    /* relaxed: the run is this process's alone until the object is published. */
    atomic_store_explicit(&rt->arenas->ctab[chunk_index(n, within)],
                          SHOAL__RUN_TAG(shoal__acct_size(len)), memory_order_relaxed);
    *off = (uint64_t)n * rt->node_span + within;
    return 0;
}

/* Give back what t caches and the spare slabs: true if anything went. */
static bool make_room(shoal__rt_t *rt, struct shoal__thr *t)
{
    size_t got = t->epoch == rt->epoch ? cache_flush(rt, t) : 0;
    return shoal__slabs_trim(rt) + got > 0;
}

int shoal__arena_alloc_slow(shoal__rt_t *rt, struct shoal__thr *t, size_t len, unsigned node,
                            uint64_t *off)
{
    if (unlikely(len > ((size_t)1 << 46)))
        return shoal__arena_full(rt, len);
    size_t usable = shoal__acct_size(len);
    struct shoal__arenas *a = rt->arenas;
    uint32_t nomem = atomic_load_explicit(&a->nomem, memory_order_relaxed);
    for (int round = 0; round < 2; round++) {
        bool no_block = false;
        for (unsigned i = 0; i < a->nnodes; i++) {
            unsigned n = node + i < a->nnodes ? node + i : node + i - a->nnodes;
            if (!shoal__cap_take(rt, t, n, usable))
                continue;
            int rc = len <= SHOAL__SMALL_MAX ? small_alloc(rt, t, n, len, off)
                                             : large_alloc(rt, n, len, off);
            if (rc == 0)
                return 0;
            shoal__cap_give(rt, t, n, usable);
            no_block = true;
        }
        /* The capacity is there but not the space: what caches hold may make it. */
        if (!no_block || round == 1 || !make_room(rt, t))
            break;
    }
    shoal__alloc_full_fn hook = atomic_load_explicit(&shoal__alloc_full_hook, memory_order_relaxed);
    if (hook) {
        int rc = hook(rt, t, len, node, off);
        if (rc <= 0)
            return rc;
    }
    if (atomic_load_explicit(&a->nomem, memory_order_relaxed) != nomem)
        return shoal__err(SHOAL_ENOMEM, "cannot place %zu bytes: the store has room, but the "
                          "system gave no memory to fault its pages in (out of memory, or of "
                          "huge pages): free memory, or use a smaller store", len);
    return shoal__arena_full(rt, len);
}

int shoal__arena_alloc_direct(shoal__rt_t *rt, size_t len, unsigned node, uint64_t *off)
{
    if (len == 0 || len > ((size_t)1 << 46) || node >= rt->nnodes)
        return -1;
    if (len > SHOAL__SMALL_MAX)
        return large_alloc(rt, node, len, off);
    unsigned c = shoal__class_of(len);
    if (shoal__slab_take(rt, node, c, off, 1) != 1 &&
        (shoal__slabs_trim(rt) == 0 || shoal__slab_take(rt, node, c, off, 1) != 1))
        return -1;
    mark_live(rt->arenas, *off, c);
    return 0;
}

/* ---- freeing ---------------------------------------------------------------------------- */

SHOAL__COLD static void bad_free(shoal__rt_t *rt, uint64_t off, size_t len)
{
    static _Atomic uint64_t told;
    (void)rt;
    /* One notice, then one per thousand: a process scribbling over the table must not
     * flood the log, nor go unnoticed. */
    if (atomic_fetch_add_explicit(&told, 1, memory_order_relaxed) % 1000 == 0)
        shoal__log("refused to free %zu bytes at offset %llu: not a live block this process "
                   "allocated for that length (a second free, or a process wrote the object "
                   "table); the block is leaked, not freed", len, (unsigned long long)off);
}

/* Clear the live entry of a small block; false if it is not a live block of len's class. */
static bool small_unlive(struct shoal__arenas *a, uint64_t off, size_t len)
{
    uint8_t want = shoal__live_tag(shoal__class_of(len), off);
    /* relaxed: as in shoal__arena_free. */
    return off < a->span_len && (off & 15) == 0 &&
           atomic_compare_exchange_strong_explicit(&a->live[off >> SHOAL__LINE_SHIFT], &want, 0,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* Clear a large run's tag and give its chunks back; false if off does not start a live run
 * of len's size. */
static bool large_free(shoal__rt_t *rt, uint64_t off, size_t len)
{
    struct shoal__arenas *a = rt->arenas;
    if (off >= a->span_len || len > a->span_len)
        return false;
    unsigned n = shoal__off_node(rt, off);
    uint64_t within = off - (uint64_t)n * rt->node_span;
    if (within & (chunk_bytes() - 1))
        return false;
    uintptr_t want = SHOAL__RUN_TAG(shoal__acct_size(len));
    /* relaxed: the chunk map's release below orders our accesses before a reuse. */
    if (!atomic_compare_exchange_strong_explicit(&a->ctab[chunk_index(n, within)], &want, 0,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false;
    shoal__run_give(rt, n, within >> shoal__geo.shift, (len + chunk_bytes() - 1) >> shoal__geo.shift);
    return true;
}

void shoal__arena_free_slow(shoal__rt_t *rt, struct shoal__thr *t, uint64_t off, size_t len)
{
    struct shoal__arenas *a = rt->arenas;
    if (len > SHOAL__SMALL_MAX) {
        if (large_free(rt, off, len))
            shoal__cap_give(rt, t, shoal__off_node(rt, off), shoal__acct_size(len));
        else
            bad_free(rt, off, len);
        return;
    }
    if (!small_unlive(a, off, len)) {
        bad_free(rt, off, len);
        return;
    }
    unsigned c = shoal__class_of(len), n = shoal__off_node(rt, off);
    int64_t sz = (int64_t)shoal__class_size(c);
    struct shoal__acache *ac = t->ac[n];
    if (!ac && t->epoch == rt->epoch)
        ac = t->ac[n] = cache_new(a);
    if (ac) {
        struct shoal__tbin *b = &ac->bin[c];
        if (b->n == b->cap)
            bin_flush(rt, ac, n, c, b->cap / 2);
        if (ac->room < sz)   /* bigger blocks cached: this class's go first */
            bin_flush(rt, ac, n, c, b->n);
        if (ac->room >= sz && b->n < b->cap) {
            b->off[b->n++] = off;
            ac->room -= sz;
            shoal__cap_give(rt, t, n, (size_t)sz);
            return;
        }
    }
    shoal__slab_give(rt, n, c, &off, 1);
    shoal__cap_give(rt, t, n, (size_t)sz);
}

bool shoal__arena_free_direct(shoal__rt_t *rt, uint64_t off, size_t len)
{
    bool ok;
    if (len > SHOAL__SMALL_MAX) {
        ok = large_free(rt, off, len);
    } else if ((ok = small_unlive(rt->arenas, off, len))) {
        shoal__slab_give(rt, shoal__off_node(rt, off), shoal__class_of(len), &off, 1);
    }
    if (!ok)
        bad_free(rt, off, len);
    return ok;
}

/* ---- capacity ------------------------------------------------------------------------------ */

bool shoal__cap_refill(shoal__rt_t *rt, struct shoal__thr *t, unsigned n, size_t usable)
{
    struct shoal__node_stats *ns = &rt->hdr->node[n];
    int64_t have = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
    uint64_t want = usable - (uint64_t)have + (rt->batched ? (uint64_t)SHOAL__CREDIT : 0);
    for (;;) {
        uint64_t used = atomic_fetch_add_explicit(&ns->bytes_used, want, memory_order_relaxed);
        if (used + want <= ns->cap) {
            if (!rt->batched)   /* and into this process's shard (layout/mpseg.h) */
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

void shoal__cap_return_all(shoal__rt_t *rt, struct shoal__thr *t, unsigned n)
{
    int64_t c = atomic_load_explicit(&t->credit[n], memory_order_relaxed);
    if (c > 0) {
        shoal__count_bytes(rt, rt->proc, n, -c);
        atomic_store_explicit(&t->credit[n], 0, memory_order_relaxed);
    }
}

/* ---- how much room -------------------------------------------------------------------------- */

/* The longest run of chunks of node n that are free or never carved. */
static uint64_t longest_free_run(shoal__rt_t *rt, unsigned n)
{
    _Atomic uint32_t *map = shoal__chunkmap(rt) + (uint64_t)n * shoal__geo.nchunks;
    uint64_t carve = atomic_load_explicit(&rt->hdr->node[n].carve, memory_order_relaxed);
    uint64_t first_fresh = (carve + chunk_bytes() - 1) >> shoal__geo.shift;
    uint64_t best = 0, run = 0, total = rt->node_span >> shoal__geo.shift;
    for (uint64_t c = 0; c < total; c++) {
        bool free_ = c >= first_fresh ||
                     atomic_load_explicit(&map[c], memory_order_relaxed) == SHOAL__CHUNK_FREE;
        run = free_ ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

size_t shoal__arena_largest_free(shoal__rt_t *rt)
{
    struct shoal__arenas *a = rt->arenas;
    struct shoal__thr *t = shoal__tls.thr;
    if (t && t->epoch == rt->epoch)
        cache_flush(rt, t);
    shoal__slabs_trim(rt);
    size_t best = 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__node_stats *ns = &rt->hdr->node[n];
        uint64_t used = atomic_load_explicit(&ns->bytes_used, memory_order_relaxed);
        int64_t mine = t && t->epoch == rt->epoch
                           ? atomic_load_explicit(&t->credit[n], memory_order_relaxed) : 0;
        uint64_t room = used - (uint64_t)mine < ns->cap ? ns->cap - (used - (uint64_t)mine) : 0;
        uint64_t run = longest_free_run(rt, n), fit = 0;
        /* A large object of L bytes needs ceil(L / chunk) free chunks in a row and its
         * length rounded up to 64 KiB of capacity. */
        uint64_t big = run << shoal__geo.shift, cap64 = room & ~(uint64_t)0xffff;
        if (big > cap64)
            big = cap64;
        if (big > SHOAL__SMALL_MAX)
            fit = big;
        /* Else the largest class with a free block, or room for a new slab. */
        for (unsigned c = SHOAL__NCLASSES; fit == 0 && c-- > 0;)
            if (shoal__class_size(c) <= room &&
                (a->slab_chunks[c] <= run || shoal__slab_has_free(rt, n, c)))
                fit = shoal__class_size(c);
        if (fit > best)
            best = (size_t)fit;
    }
    return best;
}

int shoal__arena_full(shoal__rt_t *rt, size_t len)
{
    uint64_t used = 0;
    for (unsigned n = 0; n < rt->nnodes; n++)
        used += atomic_load_explicit(&rt->hdr->node[n].bytes_used, memory_order_relaxed);
    return shoal__err(SHOAL_ENOMEM,
                      "store full: cannot place %zu bytes (%llu of %llu bytes in use, counting "
                      "what threads reserved); release objects, raise store_bytes, or set "
                      "spill_dir",
                      len, (unsigned long long)used, (unsigned long long)rt->hdr->store_bytes);
}
