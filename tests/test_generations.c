/* test_generations.c - a store runs for ever: slot generations wrap around instead of
 * retiring slots, a tiny table never fails a put while it has room, stale refs stay stale
 * across the wrap and across shutdown and init, the "table full" message gives the live
 * count and the table size, and the reference count has a clear ceiling.
 * SHOAL_TEST_GEN_BASE makes a store start its slots near the end of the generation space.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"

static void start_table(size_t max_objects)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.max_objects = max_objects;
    ASSERT_OK(shoal_init(&c));
}

static uint64_t gen_of(shoal_ref r) { return r.id >> 32; }

/* A store whose slots all start at generation `base` (SHOAL_TEST_GEN_BASE, read at init). */
static void start_at_gen(const char *base, size_t max_objects)
{
    test_reset();
    setenv("SHOAL_TEST_GEN_BASE", base, 1);
    shoal_config c = shoal_test_config();
    c.max_objects = max_objects;
    int rc = shoal_init(&c);
    unsetenv("SHOAL_TEST_GEN_BASE");
    ASSERT_OK(rc);
}

/* A table of 4 slots takes put + release for ever (here 20000 times from two threads;
 * 8a82041 retired a slot after its 26-bit generation ran out and failed around put 405). */
struct churn { int fails, n; };

static void *churn_thread(void *p)
{
    struct churn *c = p;
    for (int i = 0; i < c->n; i++) {
        shoal_ref r;
        int rc = shoal_put(&i, sizeof i, &r);
        if (rc) {
            if (c->fails++ == 0)
                fprintf(stderr, "put %d failed: %s\n", i, shoal_last_error());
            continue;
        }
        const void *d;
        size_t n;
        if (shoal_get(r, &d, &n) != 0 || n != sizeof i || memcmp(d, &i, n) != 0)
            c->fails++;
        if (shoal_release(r) != 0)
            c->fails++;
    }
    return NULL;
}

static void test_small_table_churn(void)
{
    start_table(4);
    struct churn c[2] = { { 0, 10000 }, { 0, 10000 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, churn_thread, &c[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(c[0].fails + c[1].fails, 0);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* Every slot of a small table is usable from any thread: slots another thread freed are not
 * held back in that thread's cache. */
static void *put_four(void *p)
{
    shoal_ref *r = p;
    for (int i = 0; i < 4; i++)
        if (shoal_put("x", 1, &r[i]) != 0) {
            fprintf(stderr, "put %d of 4: %s\n", i, shoal_last_error());
            return (void *)1;
        }
    return NULL;
}

static void test_small_table_any_thread(void)
{
    start_table(4);
    shoal_ref mine[4];
    for (int i = 0; i < 4; i++)
        ASSERT_OK(shoal_put("y", 1, &mine[i]));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(shoal_release(mine[i]));
    /* 0 live objects: another thread must get all four slots. */
    shoal_ref theirs[4];
    pthread_t th;
    void *res = (void *)2;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, put_four, theirs) == 0);
    pthread_join(th, &res);
    CU_ASSERT_PTR_NULL(res);
    CU_ASSERT_EQUAL(info_now().objects_live, 4);
    if (res == NULL)
        for (int i = 0; i < 4; i++)
            CHECK_OK(shoal_release(theirs[i]));
    ASSERT_OK(shoal_shutdown());
}

/* A slot's generation wraps from 2^32 - 1 to 1 (never 0); every ID is new; the stale ones
 * stay stale; a live object in another slot is untouched. */
static void test_generation_wraps(void)
{
    start_at_gen("0xfffffff0", 2);
    shoal_ref keep;
    ASSERT_OK(shoal_put("keep", 5, &keep));
    enum { N = 48 };
    shoal_ref ids[N];
    int wrapped = 0, zero = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_OK(shoal_put(&i, sizeof i, &ids[i]));
        if (gen_of(ids[i]) == 0)
            zero++;
        if (i > 0 && gen_of(ids[i - 1]) == 0xffffffffu && gen_of(ids[i]) == 1)
            wrapped++;
        for (int j = 0; j < i; j++)
            CU_ASSERT(ids[j].id != ids[i].id);
        ASSERT_OK(shoal_release(ids[i]));
    }
    CU_ASSERT_EQUAL(zero, 0);
    CU_ASSERT_EQUAL(wrapped, 1);
    if (wrapped != 1)
        fprintf(stderr, "generations: first %#llx last %#llx\n",
                (unsigned long long)gen_of(ids[0]), (unsigned long long)gen_of(ids[N - 1]));
    const void *d;
    size_t n;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(shoal_get_timeout(ids[i], 0, &d, &n), SHOAL_ESTALE);
        CU_ASSERT_EQUAL(shoal_retain(ids[i]), SHOAL_ESTALE);
        CU_ASSERT_EQUAL(shoal_release(ids[i]), SHOAL_ESTALE);
    }
    ASSERT_OK(shoal_get(keep, &d, &n));
    CU_ASSERT(n == 5 && memcmp(d, "keep", 5) == 0);
    CHECK_OK(shoal_release(keep));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* A ref kept across shutdown and init never names an object of the new store: the slot's
 * generations continue where the last store left them, wrap included. */
static void test_ref_across_stores(void)
{
    start_at_gen("0xfffffffe", 1);
    shoal_config c = shoal_test_config();
    c.max_objects = 1;
    shoal_ref old;
    ASSERT_OK(shoal_put("old", 4, &old));
    CU_ASSERT_EQUAL(gen_of(old), 0xfffffffeu);
    ASSERT_OK(shoal_shutdown());   /* with the object still live */

    for (int round = 0; round < 3; round++) {
        ASSERT_OK(shoal_init(&c));
        for (int i = 0; i < 200; i++) {
            shoal_ref r;
            ASSERT_OK(shoal_put(&i, sizeof i, &r));
            CU_ASSERT(r.id != old.id);
            if (round == 0 && i == 0)   /* the slot continues after the old object */
                CU_ASSERT_EQUAL(gen_of(r), 0xffffffffu);
            if (round == 0 && i == 1)
                CU_ASSERT_EQUAL(gen_of(r), 1);
            const void *d;
            size_t n;
            int g = shoal_get_timeout(old, 0, &d, &n);
            CU_ASSERT(g == SHOAL_ESTALE || g == SHOAL_EINVAL);
            ASSERT_OK(shoal_release(r));
        }
        ASSERT_OK(shoal_shutdown());
    }
}

/* "object table full" says how many objects are live and how large the table is. */
static void test_table_full_message(void)
{
    start_table(4);
    shoal_ref r[4], extra;
    for (int i = 0; i < 4; i++)
        ASSERT_OK(shoal_put("z", 1, &r[i]));
    CU_ASSERT_EQUAL(shoal_put("z", 1, &extra), SHOAL_ENOMEM);
    const char *m = shoal_last_error();
    fprintf(stderr, "message: %s\n", m);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "table full"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "4 live objects"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "table of 4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "max_objects"));
    for (int i = 0; i < 4; i++)
        CHECK_OK(shoal_release(r[i]));
    shoal_ref again;   /* room again at once */
    ASSERT_OK(shoal_put("z", 1, &again));
    CHECK_OK(shoal_release(again));
    ASSERT_OK(shoal_shutdown());
}

/* The reference count's ceiling (2^24 - 1) answers a clear EINVAL, and nothing breaks. */
static void test_refcount_ceiling(void)
{
    start_table(0);
    shoal_ref r;
    ASSERT_OK(shoal_put("rc", 3, &r));
    uint32_t held = 1;
    int rc = 0;
    while (held < (1u << 25) && (rc = shoal_retain(r)) == 0)
        held++;
    CU_ASSERT_EQUAL(rc, SHOAL_EINVAL);
    CU_ASSERT_EQUAL(held, (1u << 24) - 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "references"));
    fprintf(stderr, "after %u references: %s\n", held, shoal_last_error());
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 3 && memcmp(d, "rc", 3) == 0);
    for (uint32_t i = 0; i < held; i++)
        if (shoal_release(r) != 0) {
            CU_FAIL("release failed");
            break;
        }
    CU_ASSERT_EQUAL(shoal_release(r), SHOAL_ESTALE);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* An ID whose host field (bits 31..26) is not 0 names nothing here. */
static void test_host_field(void)
{
    start_table(0);
    shoal_ref r;
    ASSERT_OK(shoal_put("h", 1, &r));
    for (int b = 26; b < 32; b++) {
        shoal_ref f = { r.id | (UINT64_C(1) << b) };
        const void *d = NULL;
        size_t n;
        CU_ASSERT_EQUAL(shoal_get(f, &d, &n), SHOAL_EINVAL);
        CU_ASSERT_PTR_NULL(d);
        CU_ASSERT_EQUAL(shoal_retain(f), SHOAL_EINVAL);
        CU_ASSERT_EQUAL(shoal_release(f), SHOAL_EINVAL);
    }
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* A failed get, through the inline lookup (each way it misses: stale generation, an index
 * past the table, a host field, the null ref) and through the library's entry, leaves the
 * caller's data and len as they were: a program may keep bytes it got before. A get that
 * succeeds afterwards, through the same variables, still sets them. */
static void test_failed_get_leaves_outputs(void)
{
    start_table(16);
    shoal_ref live, gone;
    ASSERT_OK(shoal_put("kept", 5, &live));
    ASSERT_OK(shoal_put("gone", 5, &gone));
    CHECK_OK(shoal_release(gone));
    const void *d;
    size_t n;
    CHECK_OK(shoal_get(live, &d, &n));
    const void *kept = d;
    shoal_ref past = { (gone.id & ~UINT64_C(0xffffffff)) | 1000 };   /* table of 16 */
    shoal_ref host = { live.id | (UINT64_C(1) << 27) };
    const shoal_ref bad[] = { gone, past, host, SHOAL_REF_NULL };
    const int want[] = { SHOAL_ESTALE, SHOAL_EINVAL, SHOAL_EINVAL, SHOAL_EINVAL };
    for (int i = 0; i < 4; i++) {
        int rc = shoal_get(bad[i], &d, &n);
        CU_ASSERT_EQUAL(rc, want[i]);
        CU_ASSERT(d == kept && n == 5);
        rc = (shoal_get)(bad[i], &d, &n);
        CU_ASSERT_EQUAL(rc, want[i]);
        CU_ASSERT(d == kept && n == 5);
    }
    CU_ASSERT_STRING_EQUAL((const char *)d, "kept");
    d = NULL;
    n = 0;
    CHECK_OK(shoal_get(live, &d, &n));
    CU_ASSERT(d == kept && n == 5);
    CHECK_OK(shoal_release(live));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "a 4-slot table takes put+release for ever", test_small_table_churn },
        { "a small table's free slots serve any thread", test_small_table_any_thread },
        { "a slot's generation wraps around, skipping 0", test_generation_wraps },
        { "a ref kept across shutdown/init stays stale", test_ref_across_stores },
        { "table full names the live count and the table size", test_table_full_message },
        { "the reference count has a clear ceiling", test_refcount_ceiling },
        { "an ID with a host field names nothing", test_host_field },
        { "a failed get leaves data and len as they were", test_failed_get_leaves_outputs },
        { NULL, NULL },
    };
    return shoal_test_run("generations", cases);
}
