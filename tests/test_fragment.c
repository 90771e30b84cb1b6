/* test_fragment.c - free space comes back (issue 10.5): after a churn of small and medium
 * objects, released to the last one, an empty store holds as large an object as a fresh
 * one, whether the churn ran on this thread or in tasks on the workers (whose caches go
 * back when they park); shoal_info.largest_free says what one put can place, exactly. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

#define STORE (64u << 20)

/* The largest object a put places now, to 64 KiB (created, not copied, then released). */
static size_t largest_put(void)
{
    size_t lo = 0, hi = STORE + (64u << 10);   /* lo fits, hi does not */
    while (hi - lo > (64u << 10)) {
        size_t mid = (lo + hi) / 2 & ~(size_t)0xffff;
        void *buf;
        shoal_ref r;
        if (shoal_create(mid, &buf, &r) == 0) {
            CHECK_OK(shoal_release(r));
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void start(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.store_bytes = STORE;
    ASSERT_OK(shoal_init(&c));
}

/* Sizes of a churn: mostly small, some medium, a few just below the large threshold. */
static size_t churn_len(uint64_t *s)
{
    uint64_t r = rnd_next(s) % 100;
    return r < 80 ? 1 + (size_t)(rnd_next(s) % 4096)
           : r < 97 ? 4096 + (size_t)(rnd_next(s) % 60000)
                    : 100000 + (size_t)(rnd_next(s) % 150000);
}

/* A churn over a window of live objects, up to about a third of the store, then release
 * every other one, fill again, and release all. */
static int churn(uint64_t seed, int rounds)
{
    enum { W = 4096 };
    shoal_ref *w = calloc(W, sizeof *w);
    static unsigned char buf[256u << 10];
    uint64_t s = seed | 1;
    size_t live = 0;
    int fails = 0;
    for (int i = 0; i < rounds; i++) {
        unsigned k = (unsigned)(rnd_next(&s) % W);
        if (w[k].id) {
            fails += shoal_release(w[k]) != 0;
            w[k].id = 0;
        }
        if (live < STORE / 3 || rnd_next(&s) % 2) {
            size_t len = churn_len(&s);
            if (shoal_put(buf, len, &w[k]) != 0)
                w[k].id = 0;
        }
        live = 0;
        if (i % 256 == 0) {
            shoal_info in;
            if (shoal_info_get(&in) == 0)
                live = in.bytes_used;
        }
    }
    for (unsigned k = 0; k < W; k += 2)
        if (w[k].id) {
            fails += shoal_release(w[k]) != 0;
            w[k].id = 0;
        }
    for (unsigned k = 0; k < W; k += 2)
        if (shoal_put(buf, 1 + (size_t)(rnd_next(&s) % 2000), &w[k]) != 0)
            w[k].id = 0;
    for (unsigned k = 0; k < W; k++)
        if (w[k].id)
            fails += shoal_release(w[k]) != 0;
    free(w);
    return fails;
}

static void t_churn_then_large(void)
{
    start();
    shoal_info base = info_now();
    size_t fresh = largest_put();
    CU_ASSERT(fresh >= STORE / 2);
    CHECK_RC(churn(1, 200000 / SAN_DIV), 0);
    shoal_info empty = info_now();
    CU_ASSERT_EQUAL(empty.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(empty.bytes_used, base.bytes_used);
    size_t after = largest_put();
    if (after < fresh)
        fprintf(stderr, "after the churn an empty store holds %zu KiB objects, a fresh one "
                "%zu KiB\n", after >> 10, fresh >> 10);
    CU_ASSERT(after >= fresh);
    CHECK_OK(shoal_shutdown());
}

/* A task that churns on its worker. */
static int churn_task(shoal_task *t)
{
    const void *d;
    size_t n;
    uint64_t seed = 0;
    if (shoal_task_arg(t, 0, &d, &n) == 0 && n == sizeof seed)
        memcpy(&seed, d, n);
    int fails = churn(seed, 20000 / SAN_DIV);
    return shoal_task_return(t, &fails, sizeof fails) != 0;
}

static void t_churn_in_tasks(void)
{
    start();
    size_t fresh = largest_put();
    shoal_ref r[4];
    for (uint64_t k = 0; k < 4; k++) {
        shoal_arg a = SHOAL_VALUE(&k, sizeof k);
        ASSERT_OK(shoal_submit(churn_task, &a, 1, NULL, &r[k]));
    }
    for (int k = 0; k < 4; k++) {
        const void *d = NULL;
        size_t n = 0;
        CHECK_OK(shoal_get_timeout(r[k], 120000000000, &d, &n));
        CU_ASSERT(n == sizeof(int) && d && *(const int *)d == 0);
        CHECK_OK(shoal_release(r[k]));
    }
    /* The workers' caches go back when they park: within a bounded time, nothing is held. */
    size_t after = 0;
    for (int i = 0; i < 200 && (after = info_now().largest_free) < fresh; i++)
        usleep(50000);
    if (after < fresh)
        fprintf(stderr, "10 s after the tasks, largest_free is %zu KiB, fresh %zu KiB\n",
                after >> 10, fresh >> 10);
    CU_ASSERT(after >= fresh);
    CU_ASSERT(largest_put() >= fresh);
    CHECK_OK(shoal_shutdown());
}

static void t_largest_free_exact(void)
{
    start();
    shoal_info i0 = info_now();
    CU_ASSERT(i0.largest_free > 0 && i0.largest_free <= i0.store_bytes);
    CU_ASSERT_EQUAL(i0.largest_free, largest_put());
    /* Holes: large objects with every other one released, small ones between. */
    shoal_ref big[8], small[64];
    for (int k = 0; k < 8; k++) {
        ASSERT_OK(shoal_put(NULL, 0, &small[k]));
        CHECK_OK(shoal_release(small[k]));
        void *b;
        ASSERT_OK(shoal_create(3u << 20, &b, &big[k]));
    }
    for (int k = 0; k < 64; k++)
        ASSERT_OK(shoal_put("0123456789", 10, &small[k]));
    for (int k = 0; k < 8; k += 2)
        CHECK_OK(shoal_release(big[k]));
    shoal_info i1 = info_now();
    CU_ASSERT(i1.largest_free <= i1.store_bytes - i1.bytes_used);
    size_t got = largest_put();
    if (i1.largest_free != got)
        fprintf(stderr, "largest_free %zu, largest put %zu\n", i1.largest_free, got);
    CU_ASSERT_EQUAL(i1.largest_free, got);
    for (int k = 1; k < 8; k += 2)
        CHECK_OK(shoal_release(big[k]));
    for (int k = 0; k < 64; k++)
        CHECK_OK(shoal_release(small[k]));
    CU_ASSERT_EQUAL(info_now().largest_free, i0.largest_free);
    CHECK_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "after a churn, an empty store holds what a fresh one does", t_churn_then_large },
        { "the same after a churn in tasks on the workers", t_churn_in_tasks },
        { "largest_free is the largest put that succeeds", t_largest_free_exact },
        { NULL, NULL },
    };
    return shoal_test_run("fragment", cases);
}
