/* test_populate.c - pre-faulting never races live memory (issue 10.7). Kernels before 5.14
 * lack MADV_POPULATE_WRITE, and the fallback touches each page of ranges that other threads
 * and processes are updating (slot words, other processes' chunks). The fallback is forced
 * here (os/mem.h's test hook) and run over pages whose first word other threads keep
 * incrementing atomically: every increment must survive. And what is populated stays so
 * (issue 10.8): a churn of puts and releases never discards a page of the store (no purge
 * per free), counted by this program's own madvise and fallocate, which the static
 * library's calls bind to. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../os/mem.h"
#include "../core/store.h"
#include "lib/check.h"
#include "lib/proc.h"

/* Calls that would give store pages back to the kernel, counted while `span` is set. */
static _Atomic(char *) span_lo, span_hi;
static _Atomic long discards;

static void count_discard(const void *addr, size_t len)
{
    const char *a = addr, *lo = atomic_load(&span_lo), *hi = atomic_load(&span_hi);
    if (lo && a < hi && a + len > lo)
        atomic_fetch_add(&discards, 1);
}

int madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE)
        count_discard(addr, len);
    return (int)syscall(SYS_madvise, addr, len, advice);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    if (mode & FALLOC_FL_PUNCH_HOLE) {   /* a hole in a store memfd: pages given back */
        if (atomic_load(&span_lo))
            atomic_fetch_add(&discards, 1);
    }
    return (int)syscall(SYS_fallocate, fd, mode, off, len);
}

#define PAGES 64
#define ITERS (200000 / SAN_DIV)

static char *region;
static size_t page;
static _Atomic int stop;

static void *incrementer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITERS; i++)
        for (int p = 0; p < PAGES; p++)
            /* the first word of each page: where a page touch lands */
            __atomic_fetch_add((uint64_t *)(void *)(region + (size_t)p * page), 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *populater(void *arg)
{
    long *rounds = arg;   /* negative: a populate failed */
    while (!atomic_load_explicit(&stop, memory_order_relaxed) && *rounds >= 0)
        *rounds = shoal__os_populate(region, PAGES * page) == 0 ? *rounds + 1 : -1;
    return NULL;
}

static void t_fallback_keeps_increments(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    /* Shared, as a published store's memfd is: the pages are live for every mapper. */
    region = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(region != MAP_FAILED);
    atomic_store(&shoal__os_populate_fallback, 1);
    atomic_store(&stop, 0);
    enum { INC = 2 };
    pthread_t inc[INC], pop;
    long rounds = 0;
    CU_ASSERT_FATAL(pthread_create(&pop, NULL, populater, &rounds) == 0);
    for (int k = 0; k < INC; k++)
        CU_ASSERT_FATAL(pthread_create(&inc[k], NULL, incrementer, NULL) == 0);
    for (int k = 0; k < INC; k++)
        pthread_join(inc[k], NULL);
    atomic_store(&stop, 1);
    pthread_join(pop, NULL);
    atomic_store(&shoal__os_populate_fallback, 0);
    uint64_t sum = 0;
    for (int p = 0; p < PAGES; p++)
        sum += *(uint64_t *)(void *)(region + (size_t)p * page);
    uint64_t want = (uint64_t)INC * ITERS * PAGES;
    if (sum != want)
        fprintf(stderr, "the counters are off by %lld of %llu increments after %ld populate "
                "rounds\n", (long long)(sum - want), (unsigned long long)want, rounds);
    CU_ASSERT_EQUAL(sum, want);
    CU_ASSERT(rounds > 0);
    munmap(region, PAGES * page);
}

static void t_fallback_populates(void)
{
    /* The touch still faults every page in. */
    page = (size_t)sysconf(_SC_PAGESIZE);
    char *r = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(r != MAP_FAILED);
    atomic_store(&shoal__os_populate_fallback, 1);
    CU_ASSERT_EQUAL(shoal__os_populate(r, PAGES * page), 0);
    atomic_store(&shoal__os_populate_fallback, 0);
    unsigned char vec[PAGES];
    CU_ASSERT_EQUAL_FATAL(mincore(r, PAGES * page, vec), 0);
    int resident = 0;
    for (int p = 0; p < PAGES; p++)
        resident += vec[p] & 1;
    CU_ASSERT_EQUAL(resident, PAGES);
    munmap(r, PAGES * page);
}

static void t_store_with_fallback(void)
{
    /* A whole store on the fallback path: init's pre-fault, slabs and large runs. */
    test_reset();
    atomic_store(&shoal__os_populate_fallback, 1);
    shoal_config c = shoal_test_config();
    int rc = shoal_init(&c);
    CHECK_OK(rc);
    if (rc == 0) {
        static unsigned char buf[2u << 20];
        shoal_ref r[40];
        for (int k = 0; k < 40; k++) {
            size_t len = k % 2 ? (size_t)(k + 1) * 1000 : sizeof buf - (size_t)k * 40960;
            pat_fill(buf, len, 7, (uint64_t)k);
            CHECK_OK(shoal_put(buf, len, &r[k]));
        }
        for (int k = 0; k < 40; k++) {
            size_t len = k % 2 ? (size_t)(k + 1) * 1000 : sizeof buf - (size_t)k * 40960, n = 0;
            const void *d = NULL;
            CHECK_OK(shoal_get(r[k], &d, &n));
            CU_ASSERT(n == len && d && pat_ok(d, n, 7, (uint64_t)k));
            CHECK_OK(shoal_release(r[k]));
        }
        CHECK_OK(shoal_shutdown());
    }
    atomic_store(&shoal__os_populate_fallback, 0);
}

/* 80,000 puts and releases of every size, emptying the store every 1,000: the moments a
 * slab's last block or a large run goes back, where a purging allocator gives pages back.
 * None is given back, and the store's bytes_used is back to 0. */
static void churn_discards_nothing(const char *name)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.name = name;
    c.store_bytes = 64u << 20;
    ASSERT_OK(shoal_init(&c));
    atomic_store(&discards, 0);
    atomic_store(&span_hi, shoal__rt->base + shoal__rt->node_span * shoal__rt->nnodes);
    atomic_store(&span_lo, shoal__rt->base);
    static unsigned char buf[1u << 20];
    enum { W = 1000 };
    static shoal_ref w[W];
    uint64_t s = 5;
    for (int round = 0; round < 80 / SAN_DIV; round++) {
        for (int k = 0; k < W; k++) {
            uint64_t r = rnd_next(&s) % 100;
            size_t len = r < 90 ? 1 + (size_t)(rnd_next(&s) % 8192)
                         : r < 99 ? 300000 : sizeof buf;
            CHECK_OK(shoal_put(buf, len, &w[k]));
            if (rnd_next(&s) % 2) {   /* half go at once, half at the end of the round */
                CHECK_OK(shoal_release(w[k]));
                w[k].id = 0;
            }
        }
        for (int k = 0; k < W; k++)
            if (w[k].id)
                CHECK_OK(shoal_release(w[k]));
    }
    atomic_store(&span_lo, NULL);
    long d = atomic_load(&discards);
    if (d)
        fprintf(stderr, "%s store: %ld calls gave store pages back during the churn\n",
                name ? "published" : "private", d);
    CU_ASSERT_EQUAL(d, 0);
    CU_ASSERT_EQUAL(info_now().bytes_used, 0);
    CHECK_OK(shoal_shutdown());
}

static void t_no_purge_private(void) { churn_discards_nothing(NULL); }

static void t_no_purge_published(void)
{
    char name[64];
    snprintf(name, sizeof name, "alloc-purge-%d", (int)getpid());
    churn_discards_nothing(name);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "forced fallback: concurrent atomic increments all survive", t_fallback_keeps_increments },
        { "forced fallback: every page is faulted in", t_fallback_populates },
        { "a store runs on the fallback path", t_store_with_fallback },
        { "a churn gives no page of a private store back", t_no_purge_private },
        { "a churn gives no page of a published store back", t_no_purge_published },
        { NULL, NULL },
    };
    char dir[32];
    if (test_private_run_dir(dir, sizeof dir) != 0)   /* for the published store */
        return 2;
    int rc = shoal_test_run("populate", cases);
    rmdir(dir);
    return rc;
}
