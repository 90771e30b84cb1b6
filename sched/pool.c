/* pool.c - task blocks: 2 MiB chunks (transparent huge pages: one fault instead of 512)
 * carved into fixed-size blocks of a few size classes, with a per-thread cache in front of
 * lock-free stacks of magazines (DPDK mempool style: a cache refills or flushes BATCH
 * blocks at a time with one CAS). The mutex only guards growth (carving new chunks),
 * thread exit and start/stop, so submitting and finishing tasks never take it once the
 * pool has grown. Blocks migrate freely: a task is freed into the cache of whichever
 * thread finishes it.
 * Larger tasks are malloc'd and kept on a list so that shutdown can find them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "magstack.h"
#include "task.h"

#define BATCH SHOAL__POOL_BATCH          /* blocks moved per refill / flush */
#define CHUNK ((size_t)2 << 20)

struct mag {                             /* a magazine: BATCH free blocks */
    shoal__snode link;                   /* first: magstack.h's node */
    struct shoal_task *obj[BATCH];
};
typedef shoal__stack magstack;

static inline void mag_push(magstack *st, struct mag *m) { shoal__stack_push(st, &m->link); }
static inline struct mag *mag_pop(magstack *st) { return (struct mag *)(void *)shoal__stack_pop(st); }

/* The per-thread cache (task.h: its fast paths are inline there). */
__thread struct shoal__pool_tl shoal__pool_tl __attribute__((tls_model("initial-exec")));
_Atomic uint64_t shoal__pool_gen;        /* 0 while stopped; relaxed: see tcache_slow */

struct chunk { char *base; uint32_t cls, carved; };

struct heap_hdr {                        /* in front of a malloc'd task */
    struct heap_hdr *prev, *next;
    char pad[SHOAL__CACHELINE - 2 * sizeof(void *)];
};

static struct {
    pthread_mutex_t mu;
    uint64_t last_gen;
    magstack full[SHOAL__NCLS];          /* magazines of free blocks */
    magstack empty;                      /* spare magazine shells */
    struct chunk *chunks;
    size_t nchunks, cap_chunks;
    size_t cur[SHOAL__NCLS];             /* chunk being carved per class, + 1 (0 = none) */
    struct heap_hdr *heap;
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

/* Thread exit: hand the cached blocks back if they belong to the running pool. */
static void flush_all_locked(struct shoal__tcache *c)
{
    for (unsigned k = 0; k < SHOAL__NCLS; k++) {
        while (c->cls[k].n) {
            struct mag *m = mag_pop(&pool.empty);
            if (!m && !(m = malloc(sizeof *m)))
                return;   /* the blocks stay in their chunks; stop frees them */
            uint32_t take = c->cls[k].n < BATCH ? c->cls[k].n : BATCH;
            memset(m->obj, 0, sizeof m->obj);
            memcpy(m->obj, &c->cls[k].obj[c->cls[k].n - take], take * sizeof(void *));
            c->cls[k].n -= take;
            mag_push(&pool.full[k], m);
        }
    }
}

static void tl_exit(void *p)
{
    struct shoal__tcache *c = p;
    pthread_mutex_lock(&pool.mu);
    if (shoal__pool_tl.gen &&
        shoal__pool_tl.gen == atomic_load_explicit(&shoal__pool_gen, memory_order_relaxed))
        flush_all_locked(c);
    pthread_mutex_unlock(&pool.mu);
    shoal__pool_tl.c = NULL;
    shoal__pool_tl.gen = 0;
    free(c->scratch);
    free(c);
}

static void tl_key_make(void) { pthread_key_create(&tl_key, tl_exit); }

/* This thread's cache for the running pool; a cache from an earlier run is emptied (its
 * blocks were freed with that run's chunks). */
SHOAL__COLD static struct shoal__tcache *tcache_slow(void)
{
    if (!shoal__pool_tl.c) {
        pthread_once(&tl_once, tl_key_make);
        shoal__pool_tl.c = calloc(1, sizeof *shoal__pool_tl.c);
        if (!shoal__pool_tl.c) {
            shoal__err(SHOAL_ENOMEM, "out of memory for this thread's task cache");
            return NULL;
        }
        pthread_setspecific(tl_key, shoal__pool_tl.c);
    }
    for (unsigned k = 0; k < SHOAL__NCLS; k++)
        shoal__pool_tl.c->cls[k].n = 0;
    shoal__pool_tl.c->own = (struct shoal__submitted){ 0, 0 };
    /* relaxed: the pool was started before this thread could reach the scheduler (the
     * caller passed shoal__tls_check, which acquired the runtime's epoch). */
    shoal__pool_tl.gen = atomic_load_explicit(&shoal__pool_gen, memory_order_relaxed);
    return shoal__pool_tl.c;
}

static inline struct shoal__tcache *tcache_get(void)
{
    struct shoal__tcache *c = shoal__tcache_get();
    return likely(c) ? c : tcache_slow();
}

/* Carve n fresh blocks of class k into dst. Mutex held. */
static uint32_t carve_locked(unsigned k, struct shoal_task **dst, uint32_t n)
{
    uint32_t bs = shoal__cls_size[k], per = (uint32_t)(CHUNK / bs), got = 0;
    while (got < n) {
        struct chunk *ch = pool.cur[k] ? &pool.chunks[pool.cur[k] - 1] : NULL;
        if (!ch || ch->carved == per) {
            if (pool.nchunks == pool.cap_chunks) {
                size_t nc = pool.cap_chunks ? pool.cap_chunks * 2 : 16;
                struct chunk *a = realloc(pool.chunks, nc * sizeof *a);
                if (!a)
                    break;
                pool.chunks = a;
                pool.cap_chunks = nc;
            }
            /* Over-map to align the chunk to 2 MiB, so that THP can back it. */
            char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED)
                break;
            char *base = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
            if (base > m)
                munmap(m, (size_t)(base - m));
            munmap(base + CHUNK, (size_t)(m + 2 * CHUNK - (base + CHUNK)));
            madvise(base, CHUNK, MADV_HUGEPAGE);   /* a hint: normal pages work too */
            pool.chunks[pool.nchunks] = (struct chunk){ base, k, 0 };
            pool.cur[k] = ++pool.nchunks;
            ch = &pool.chunks[pool.nchunks - 1];
        }
        while (got < n && ch->carved < per) {
            struct shoal_task *t = (struct shoal_task *)(ch->base + (size_t)ch->carved++ * bs);
            t->cls = (uint8_t)k;
            dst[got++] = t;
        }
    }
    return got;
}

SHOAL__COLD static int refill(struct shoal__tcache *c, unsigned k)
{
    struct mag *m = mag_pop(&pool.full[k]);
    if (m) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < BATCH && m->obj[i]; i++)
            c->cls[k].obj[n++] = m->obj[i];
        c->cls[k].n = n;
        mag_push(&pool.empty, m);
    } else {
        pthread_mutex_lock(&pool.mu);   /* the pool grows */
        c->cls[k].n = carve_locked(k, c->cls[k].obj, BATCH);
        pthread_mutex_unlock(&pool.mu);
    }
    if (c->cls[k].n == 0)
        return shoal__err(SHOAL_ENOMEM, "out of memory for task blocks");
    return 0;
}

SHOAL__COLD static void flush(struct shoal__tcache *c, unsigned k)
{
    struct mag *m = mag_pop(&pool.empty);
    if (!m)
        m = malloc(sizeof *m);   /* a new shell: the pool of blocks grew meanwhile */
    if (m) {
        c->cls[k].n -= BATCH;
        memcpy(m->obj, &c->cls[k].obj[c->cls[k].n], sizeof m->obj);
        mag_push(&pool.full[k], m);
    }
    /* Without a magazine the cache simply stays full: the caller then keeps the block out
     * of the cache (see shoal__task_free). */
}

SHOAL__COLD static struct shoal_task *heap_alloc(size_t size)
{
    struct heap_hdr *h = aligned_alloc(SHOAL__CACHELINE,
                                       (sizeof *h + size + SHOAL__CACHELINE - 1) &
                                           ~(size_t)(SHOAL__CACHELINE - 1));
    if (!h) {
        shoal__err(SHOAL_ENOMEM, "out of memory for a task of %zu bytes", size);
        return NULL;
    }
    pthread_mutex_lock(&pool.mu);
    SHOAL__DLIST_PUSH(pool.heap, h);
    pthread_mutex_unlock(&pool.mu);
    struct shoal_task *t = (struct shoal_task *)(h + 1);
    t->cls = SHOAL__CLS_HEAP;
    atomic_store_explicit(&t->state, SHOAL__TS_LIVE, memory_order_relaxed);
    return t;
}

SHOAL__COLD static void heap_free(struct shoal_task *t)
{
    struct heap_hdr *h = (struct heap_hdr *)t - 1;
    pthread_mutex_lock(&pool.mu);
    SHOAL__DLIST_UNLINK(pool.heap, h);
    pthread_mutex_unlock(&pool.mu);
    free(h);
}

struct shoal_task *shoal__task_alloc(size_t size)
{
    unsigned k = shoal__cls_of(size);
    if (unlikely(k == SHOAL__NCLS))
        return heap_alloc(size);
    return shoal__task_alloc_cls(k);
}

struct shoal_task *shoal__task_alloc_slow(unsigned k)
{
    struct shoal__tcache *c = tcache_get();
    if (unlikely(!c))
        return NULL;
    if (unlikely(c->cls[k].n == 0) && refill(c, k))
        return NULL;
    struct shoal_task *t = c->cls[k].obj[--c->cls[k].n];
    atomic_store_explicit(&t->state, SHOAL__TS_LIVE, memory_order_relaxed);
    /* The next block this cache hands out, for ownership: a thread that submits what
     * others run (a driver) gets blocks another core freed last, and writes their header
     * and argument table as soon as it has them. */
    if (likely(c->cls[k].n)) {
        struct shoal_task *next = c->cls[k].obj[c->cls[k].n - 1];
        shoal__prefetchw(next);
        shoal__prefetchw((char *)next + SHOAL__CACHELINE);
    }
    return t;
}

SHOAL__COLD static struct shoal_task **scratch_grow(struct shoal__tcache *c, size_t n)
{
    size_t want = n < 1024 ? 1024 : n;
    struct shoal_task **a = want <= SIZE_MAX / sizeof *a ? malloc(want * sizeof *a) : NULL;
    if (!a) {
        shoal__err(SHOAL_ENOMEM, "out of memory for a list of %zu tasks", n);
        return NULL;
    }
    free(c->scratch);
    c->scratch = a;
    c->nscratch = want;
    return a;
}

struct shoal_task **shoal__pool_scratch(size_t n)
{
    struct shoal__tcache *c = tcache_get();
    if (unlikely(!c))
        return NULL;
    if (likely(n <= c->nscratch))
        return c->scratch;
    return scratch_grow(c, n);
}

struct shoal__submitted *shoal__pool_submitted(void)
{
    struct shoal__tcache *c = shoal__tcache_get();
    return c ? &c->own : NULL;
}

void shoal__task_free(struct shoal_task *t)
{
    shoal__task_free_inl(t);
}

void shoal__task_free_slow(struct shoal_task *t)
{
    atomic_store_explicit(&t->state, SHOAL__TS_FREE, memory_order_relaxed);
    unsigned k = t->cls;
    if (unlikely(k == SHOAL__CLS_HEAP)) {
        heap_free(t);
        return;
    }
    struct shoal__tcache *c = tcache_get();
    if (unlikely(!c))
        return;   /* the block stays in its chunk until stop */
    if (unlikely(c->cls[k].n == 2 * BATCH)) {
        flush(c, k);
        if (c->cls[k].n == 2 * BATCH)
            return;
    }
    c->cls[k].obj[c->cls[k].n++] = t;
}

/* Memory of the previous run, kept mapped until the next start (see task.h). */
static struct {
    struct chunk *chunks;
    size_t nchunks;
    struct heap_hdr *heap;
} retired;

static void free_retired(void)
{
    for (size_t i = 0; i < retired.nchunks; i++)
        munmap(retired.chunks[i].base, CHUNK);
    free(retired.chunks);
    retired.chunks = NULL;
    retired.nchunks = 0;
    while (retired.heap) {
        struct heap_hdr *h = retired.heap;
        retired.heap = h->next;
        free(h);
    }
}

void shoal__pool_forget(void)
{
    /* fork() child: the blocks belong to the parent's scheduler; the copies are unmapped,
     * the rest (magazine shells, large tasks) left to the child's heap. */
    pthread_mutex_init(&pool.mu, NULL);
    for (size_t i = 0; i < pool.nchunks; i++)
        munmap(pool.chunks[i].base, CHUNK);
    for (size_t i = 0; i < retired.nchunks; i++)
        munmap(retired.chunks[i].base, CHUNK);
    free(pool.chunks);
    free(retired.chunks);
    memset(&retired, 0, sizeof retired);
    pool.chunks = NULL;
    pool.nchunks = pool.cap_chunks = 0;
    pool.heap = NULL;
    for (unsigned k = 0; k < SHOAL__NCLS; k++) {
        pool.cur[k] = 0;
        pool.full[k] = (shoal__stack){ 0 };
    }
    pool.empty = (shoal__stack){ 0 };
    atomic_store_explicit(&shoal__pool_gen, 0, memory_order_relaxed);
    shoal__pool_tl.gen = 0;
    if (shoal__pool_tl.c)
        for (unsigned k = 0; k < SHOAL__NCLS; k++)
            shoal__pool_tl.c->cls[k].n = 0;
}

size_t shoal__pool_mapped(void)
{
    pthread_mutex_lock(&pool.mu);
    size_t n = (pool.nchunks + retired.nchunks) * CHUNK;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

void shoal__pool_release(void)
{
    pthread_mutex_lock(&pool.mu);
    free_retired();
    pthread_mutex_unlock(&pool.mu);
}

int shoal__pool_start(void)
{
    pthread_mutex_lock(&pool.mu);
    /* The previous store is gone: nothing can reach its blocks any more. */
    free_retired();
    /* relaxed: threads reach the pool only after init publishes the runtime (release). */
    atomic_store_explicit(&shoal__pool_gen, ++pool.last_gen, memory_order_relaxed);
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

void shoal__pool_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    atomic_store_explicit(&shoal__pool_gen, 0, memory_order_relaxed);
    free_retired();
    retired.chunks = pool.chunks;
    retired.nchunks = pool.nchunks;
    retired.heap = pool.heap;
    pool.chunks = NULL;
    pool.nchunks = pool.cap_chunks = 0;
    pool.heap = NULL;
    /* The workers are joined and no other thread is inside a shoal call (shoal_shutdown's
     * contract): nobody pops while the magazines are freed. */
    struct mag *m;
    for (unsigned k = 0; k < SHOAL__NCLS; k++) {
        pool.cur[k] = 0;
        while ((m = mag_pop(&pool.full[k])))
            free(m);
    }
    while ((m = mag_pop(&pool.empty)))
        free(m);
    pthread_mutex_unlock(&pool.mu);
    /* This thread's cache points into retired chunks: forget it. */
    if (shoal__pool_tl.c)
        for (unsigned k = 0; k < SHOAL__NCLS; k++)
            shoal__pool_tl.c->cls[k].n = 0;
    shoal__pool_tl.gen = 0;
}

static bool walkable(struct shoal_task *t)
{
    unsigned st = atomic_load_explicit(&t->state, memory_order_relaxed);
    return st == SHOAL__TS_LIVE || st == SHOAL__TS_DROPPED;
}

size_t shoal__pool_each_live(bool (*fn)(struct shoal_task *))
{
    size_t n = 0;
    /* The chunk array may grow while fn runs (it may allocate): index it afresh each time. */
    for (size_t i = 0; i < pool.nchunks; i++) {
        uint32_t bs = shoal__cls_size[pool.chunks[i].cls];
        for (uint32_t j = 0; j < pool.chunks[i].carved; j++) {
            struct shoal_task *t = (struct shoal_task *)(pool.chunks[i].base + (size_t)j * bs);
            if (walkable(t))
                n += fn(t);
        }
    }
    for (struct heap_hdr *h = pool.heap, *next; h; h = next) {
        next = h->next;
        struct shoal_task *t = (struct shoal_task *)(h + 1);
        if (walkable(t))
            n += fn(t);
    }
    return n;
}
