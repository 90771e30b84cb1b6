/* test_populate.c - pre-faulting never races live memory (issue 10.7). Kernels before 5.14
 * lack MADV_POPULATE_WRITE, and the fallback touches each page of ranges that other threads
 * and processes are updating (slot words, other processes' chunks). The fallback is forced
 * here (alloc/os.h's test hook) and run over pages whose first word other threads keep
 * incrementing atomically: every increment must survive. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../alloc/os.h"
#include "lib/check.h"

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

int main(void)
{
    static const shoal_test_case cases[] = {
        { "forced fallback: concurrent atomic increments all survive", t_fallback_keeps_increments },
        { "forced fallback: every page is faulted in", t_fallback_populates },
        { "a store runs on the fallback path", t_store_with_fallback },
        { NULL, NULL },
    };
    return shoal_test_run("populate", cases);
}
