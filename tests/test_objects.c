/* test_objects.c - the object calls: put/get, zero-copy, empty objects, put_batch and its
 * all-or-nothing failure, create+seal and waiting on unsealed objects, retain/release
 * counting, shoal_wait, shoal_info_get and shoal_object_node. Black-box through shoal.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_put_get(void)
{
    test_start(shoal_test_config());
    size_t sizes[] = { 1, 7, 8, 63, 64, 65, 1000, 4096, 70000, 1u << 20 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t len = sizes[k];
        unsigned char *src = malloc(len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(src);
        pat_fill(src, len, 1, k);
        shoal_ref r = SHOAL_REF_NULL;
        CHECK_OK(shoal_put(src, len, &r));
        CU_ASSERT(r.id != 0);
        memset(src, 0, len);                /* the object is a copy */
        const void *d = NULL; size_t n = 0;
        CHECK_OK(shoal_get(r, &d, &n));
        CU_ASSERT_EQUAL(n, len);
        CU_ASSERT(d != NULL && d != (const void *)src && pat_ok(d, n, 1, k));
        const void *d2 = NULL; size_t n2 = 0;
        CHECK_OK(shoal_get(r, &d2, &n2));   /* zero-copy: the same bytes every time */
        CU_ASSERT_PTR_EQUAL(d2, d);
        CU_ASSERT_EQUAL(n2, n);
        CHECK_OK(shoal_get_timeout(r, 0, &d2, &n2));
        CU_ASSERT_PTR_EQUAL(d2, d);
        d2 = NULL;
        CHECK_OK((shoal_get)(r, &d2, &n2));   /* the library function, not the inline path */
        CU_ASSERT_PTR_EQUAL(d2, d);
        CU_ASSERT_EQUAL(n2, n);
        CHECK_OK(shoal_release(r));
        free(src);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_distinct_ids(void)
{
    test_start(shoal_test_config());
    enum { N = 1000 };
    static shoal_ref r[N];
    for (int k = 0; k < N; k++)
        ASSERT_OK(shoal_put(&k, sizeof k, &r[k]));
    for (int k = 0; k < N; k++) {
        const void *d; size_t n;
        CHECK_OK(shoal_get(r[k], &d, &n));
        CU_ASSERT(n == sizeof k && memcmp(d, &k, sizeof k) == 0);
        for (int j = k + 1; j < N; j++)
            if (r[j].id == r[k].id)
                CU_FAIL("two live objects share an ID");
    }
    for (int k = 0; k < N; k++)
        CHECK_OK(shoal_release(r[k]));
    ASSERT_OK(shoal_shutdown());
}

static void test_empty_objects(void)
{
    test_start(shoal_test_config());
    shoal_ref a, b, c;
    CHECK_OK(shoal_put(NULL, 0, &a));
    CHECK_OK(shoal_put("ignored", 0, &b));
    void *buf = (void *)1;
    CHECK_OK(shoal_create(0, &buf, &c));
    CHECK_OK(shoal_seal(c));
    CU_ASSERT(a.id && b.id && c.id && a.id != b.id && b.id != c.id && a.id != c.id);
    shoal_ref all[3] = { a, b, c };
    for (int k = 0; k < 3; k++) {
        const void *d; size_t n = 99;
        CHECK_OK(shoal_get(all[k], &d, &n));
        CU_ASSERT_EQUAL(n, 0);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 3);
    for (int k = 0; k < 3; k++)
        CHECK_OK(shoal_release(all[k]));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_bad_args(void)
{
    test_start(shoal_test_config());
    shoal_ref r = { 777 };
    void *buf = NULL;
    shoal_info i0 = info_now();
    CHECK_RC(shoal_put(NULL, 5, &r), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(r.id, 777);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CHECK_RC(shoal_put("abc", 3, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_create(16, NULL, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_create(16, &buf, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_info_get(NULL), SHOAL_EINVAL);
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);   /* nothing leaked by a failure */
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

/* NULL out-pointers to the get calls are bad arguments: EINVAL, not a crash. (They ran in
 * fork() children once; a child has no runtime now, tests/test_fork.c.) */
static int get_null_call(int k, shoal_ref r)
{
    const void *d; size_t n;
    return k == 0 ? shoal_get(r, NULL, &n)
         : k == 1 ? shoal_get(r, &d, NULL)
         : k == 2 ? (shoal_get)(r, NULL, &n)
         : k == 3 ? (shoal_get)(r, &d, NULL)
         : k == 4 ? shoal_get_timeout(r, 0, NULL, &n)
                  : shoal_get_timeout(r, 0, &d, NULL);
}

static void test_get_null_outputs(void)
{
    test_start(shoal_test_config());
    shoal_ref r;
    ASSERT_OK(shoal_put("ready", 5, &r));
    static const char *what[] = {
        "shoal_get(r, NULL, &n)", "shoal_get(r, &d, NULL)", "(shoal_get)(r, NULL, &n)",
        "(shoal_get)(r, &d, NULL)", "shoal_get_timeout(r, 0, NULL, &n)",
        "shoal_get_timeout(r, 0, &d, NULL)",
    };
    for (int k = 0; k < 6; k++) {
        int rc = get_null_call(k, r);
        if (rc != SHOAL_EINVAL)
            fprintf(stderr, "%s on a ready object: %d, not EINVAL\n", what[k], rc);
        CU_ASSERT_EQUAL(rc, SHOAL_EINVAL);
    }
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* ---- put_batch --------------------------------------------------------------------- */

/* How many of out[] a failed batch overwrote (all were 0xABCDEF before). */
static int touched(const shoal_ref *out, int n)
{
    int t = 0;
    for (int k = 0; k < n; k++)
        t += out[k].id != 0xABCDEF;
    if (t)
        fprintf(stderr, "a failed put_batch overwrote %d of out[]\n", t);
    return t;
}

static void test_put_batch(void)
{
    test_start(shoal_test_config());
    enum { N = 100 };
    const void *data[N]; size_t len[N]; shoal_ref out[N];
    unsigned char *bufs[N];
    for (int k = 0; k < N; k++) {
        len[k] = (size_t)(k * 37 % 2000);
        bufs[k] = malloc(len[k] + 1);
        pat_fill(bufs[k], len[k], 2, (uint64_t)k);
        data[k] = bufs[k];
        out[k].id = 0;
    }
    shoal_info i0 = info_now();
    CHECK_OK(shoal_put_batch(0, data, len, out));
    CU_ASSERT_EQUAL(out[0].id, 0);
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live);

    CHECK_OK(shoal_put_batch(N, data, len, out));
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live + N);
    for (int k = 0; k < N; k++) {
        const void *d; size_t n;
        CHECK_OK(shoal_get(out[k], &d, &n));
        CU_ASSERT(n == len[k] && pat_ok(d, n, 2, (uint64_t)k));
        for (int j = 0; j < k; j++)
            if (out[j].id == out[k].id)
                CU_FAIL("put_batch gave two objects one ID");
    }
    for (int k = 0; k < N; k++)
        CHECK_OK(shoal_release(out[k]));

    /* One bad entry (NULL data with len > 0) in the middle: nothing is left allocated and
     * out[] is untouched. */
    shoal_info i1 = info_now();
    for (int k = 0; k < N; k++)
        out[k].id = 0xABCDEF;
    const void *saved = data[57];
    data[57] = NULL;
    CHECK_RC(shoal_put_batch(N, data, len, out), SHOAL_EINVAL);
    data[57] = saved;
    shoal_info i2 = info_now();
    CU_ASSERT_EQUAL(i2.objects_live, i1.objects_live);
    CU_ASSERT_EQUAL(i2.bytes_used, i1.bytes_used);
    CU_ASSERT_EQUAL(touched(out, N), 0);

    /* One entry too big for the store (the 90th): the first 89 are rolled back. */
    size_t big = 128u << 20;
    unsigned char *huge = malloc(1);
    size_t saved_len = len[89];
    const void *saved_data = data[89];
    len[89] = big;
    data[89] = huge;                         /* never read: rejected by size first */
    CHECK_RC(shoal_put_batch(N, data, len, out), SHOAL_ENOMEM);
    len[89] = saved_len;
    data[89] = saved_data;
    free(huge);
    i2 = info_now();
    CU_ASSERT_EQUAL(i2.objects_live, i1.objects_live);
    CU_ASSERT_EQUAL(i2.bytes_used, i1.bytes_used);
    CU_ASSERT_EQUAL(touched(out, N), 0);

    CHECK_RC(shoal_put_batch(N, data, len, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_put_batch(N, NULL, len, out), SHOAL_EINVAL);
    CHECK_RC(shoal_put_batch(N, data, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(info_now().objects_live, i1.objects_live);
    for (int k = 0; k < N; k++)
        free(bufs[k]);
    ASSERT_OK(shoal_shutdown());
}

/* ---- create and seal ---------------------------------------------------------------- */

static void test_create_seal(void)
{
    test_start(shoal_test_config());
    void *buf = NULL;
    shoal_ref r;
    ASSERT_OK(shoal_create(4096, &buf, &r));
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    pat_fill(buf, 4096, 3, 0);
    const void *d = NULL; size_t n = 0;
    CHECK_RC(shoal_get_timeout(r, 0, &d, &n), SHOAL_ETIMEDOUT);          /* poll */
    CHECK_RC(shoal_get_timeout(r, 1000000, &d, &n), SHOAL_ETIMEDOUT);    /* 1 ms */
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    bool ready = true;
    CHECK_RC(shoal_wait(&r, 1, 1, 0, &ready), 0);
    CU_ASSERT(!ready);
    CHECK_OK(shoal_seal(r));
    CHECK_OK(shoal_get(r, &d, &n));
    CU_ASSERT_PTR_EQUAL(d, buf);            /* the bytes written are the object, no copy */
    CU_ASSERT(n == 4096 && pat_ok(d, n, 3, 0));
    CHECK_RC(shoal_seal(r), SHOAL_EEXIST);
    CHECK_RC(shoal_wait(&r, 1, 1, 0, &ready), 1);
    CU_ASSERT(ready);

    shoal_ref p;
    CHECK_OK(shoal_put("sealed", 6, &p));
    CHECK_RC(shoal_seal(p), SHOAL_EEXIST);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CHECK_OK(shoal_release(p));
    CHECK_RC(shoal_seal(p), SHOAL_ESTALE);
    CHECK_OK(shoal_release(r));

    /* Releasing an unsealed object frees it; its ID is stale from then on. */
    ASSERT_OK(shoal_create(100, &buf, &r));
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.objects_live, 1);
    CHECK_OK(shoal_release(r));
    CHECK_RC(shoal_seal(r), SHOAL_ESTALE);
    CHECK_RC(shoal_get_timeout(r, 0, &d, &n), SHOAL_ESTALE);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

struct waiter {
    shoal_ref ref;
    int mode;              /* 0 shoal_get, 1 get_timeout 10 s, 2 shoal_wait for ever,
                              3 get_timeout < 0 (for ever) */
    int rc;
    const void *d;
    size_t n;
};

static void *waiter_thread(void *arg)
{
    struct waiter *w = arg;
    if (w->mode == 0)
        w->rc = shoal_get(w->ref, &w->d, &w->n);
    else if (w->mode == 1)
        w->rc = shoal_get_timeout(w->ref, 10ll * 1000 * 1000 * 1000, &w->d, &w->n);
    else if (w->mode == 3)
        w->rc = shoal_get_timeout(w->ref, -1, &w->d, &w->n);
    else
        w->rc = shoal_wait(&w->ref, 1, 1, -1, NULL);
    return NULL;
}

/* n waiter threads on r, thread k in mode k, each with rc 12345 until it returns. */
static void start_waiters(struct waiter w[], pthread_t t[], int n, shoal_ref r)
{
    for (int k = 0; k < n; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].ref = r;
        w[k].mode = k;
        w[k].rc = 12345;
        CU_ASSERT_FATAL(pthread_create(&t[k], NULL, waiter_thread, &w[k]) == 0);
    }
}

/* Readers block on an unsealed object and a seal from another thread wakes them all. */
static void test_seal_wakes_waiters(void)
{
    test_start(shoal_test_config());
    void *buf;
    shoal_ref r;
    ASSERT_OK(shoal_create(1000, &buf, &r));
    struct waiter w[4];
    pthread_t t[4];
    start_waiters(w, t, 4, r);
    sleep_ms(30);                             /* let them block (not asserted) */
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(w[k].rc, 12345);      /* nobody returned before the seal */
    pat_fill(buf, 1000, 4, 0);
    CHECK_OK(shoal_seal(r));
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    CU_ASSERT_EQUAL(w[0].rc, 0);
    CU_ASSERT(w[0].n == 1000 && w[0].d && pat_ok(w[0].d, 1000, 4, 0));
    CU_ASSERT_EQUAL(w[1].rc, 0);
    CU_ASSERT(w[1].n == 1000 && w[1].d && pat_ok(w[1].d, 1000, 4, 0));
    CU_ASSERT_EQUAL(w[2].rc, 1);
    CU_ASSERT_EQUAL(w[3].rc, 0);
    CU_ASSERT(w[3].n == 1000 && w[3].d && pat_ok(w[3].d, 1000, 4, 0));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* Readers block on an unsealed object whose last reference then goes: they wake with
 * ESTALE at once (not after their timeout), and nothing of the object is left. */
static void test_free_wakes_waiters(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    void *buf;
    shoal_ref r;
    ASSERT_OK(shoal_create(1000, &buf, &r));
    struct waiter w[3];
    pthread_t t[3];
    start_waiters(w, t, 3, r);   /* get, get_timeout 10 s, wait for ever */
    sleep_ms(30);                             /* let them block (not asserted) */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_OK(shoal_release(r));
    for (int k = 0; k < 3; k++)
        pthread_join(t[k], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (int k = 0; k < 3; k++)
        CU_ASSERT_EQUAL(w[k].rc, SHOAL_ESTALE);
    CU_ASSERT(b.tv_sec - a.tv_sec < 5);      /* woken, not timed out (10 s) */
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, i0.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

/* ---- references -------------------------------------------------------------------- */

static void test_retain_release(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    shoal_ref r;
    ASSERT_OK(shoal_put("counted", 7, &r));
    CHECK_OK(shoal_retain(r));
    CHECK_OK(shoal_retain(r));              /* three references */
    const void *d; size_t n;
    for (int k = 0; k < 2; k++) {
        CHECK_OK(shoal_release(r));
        CHECK_OK(shoal_get(r, &d, &n));     /* still alive */
        CU_ASSERT(n == 7 && memcmp(d, "counted", 7) == 0);
        CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live + 1);
    }
    CHECK_OK(shoal_release(r));             /* the last one */
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    d = NULL;
    CHECK_RC(shoal_get(r, &d, &n), SHOAL_ESTALE);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CHECK_RC(shoal_get_timeout(r, 0, &d, &n), SHOAL_ESTALE);
    CHECK_RC(shoal_release(r), SHOAL_ESTALE);   /* double release */
    CHECK_RC(shoal_retain(r), SHOAL_ESTALE);
    CHECK_RC(shoal_object_node(r), SHOAL_ESTALE);
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live);
    /* A double release must not free somebody else's object that reused the slot. */
    shoal_ref s;
    ASSERT_OK(shoal_put("next", 4, &s));
    CHECK_RC(shoal_release(r), SHOAL_ESTALE);
    CHECK_OK(shoal_get(s, &d, &n));
    CU_ASSERT(n == 4 && memcmp(d, "next", 4) == 0);
    CHECK_OK(shoal_release(s));
    ASSERT_OK(shoal_shutdown());
}

static void test_wait(void)
{
    test_start(shoal_test_config());
    shoal_ref r[5];
    void *bufs[2];
    for (int k = 0; k < 3; k++)
        ASSERT_OK(shoal_put(&k, sizeof k, &r[k]));
    ASSERT_OK(shoal_create(8, &bufs[0], &r[3]));
    ASSERT_OK(shoal_create(8, &bufs[1], &r[4]));
    /* Mix the order so the ready ones are not simply a prefix. */
    shoal_ref m[5] = { r[3], r[0], r[4], r[1], r[2] };
    bool want[5] = { false, true, false, true, true };
    bool ready[5];

    CHECK_RC(shoal_wait(m, 5, 6, 0, ready), SHOAL_EINVAL);
    CHECK_RC(shoal_wait(NULL, 2, 1, 0, ready), SHOAL_EINVAL);
    CHECK_RC(shoal_wait(NULL, 0, 0, 0, NULL), 0);

    memset(ready, 0x7f, sizeof ready);
    CHECK_RC(shoal_wait(m, 5, 3, -1, ready), 3);    /* three are ready: returns at once */
    for (int k = 0; k < 5; k++)
        CU_ASSERT_EQUAL(ready[k], want[k]);
    memset(ready, 0x7f, sizeof ready);
    CHECK_RC(shoal_wait(m, 5, 5, 1000000, ready), 3);   /* timeout: fewer, not an error */
    for (int k = 0; k < 5; k++)
        CU_ASSERT_EQUAL(ready[k], want[k]);
    CHECK_RC(shoal_wait(m, 5, 4, 0, NULL), 3);
    int got = shoal_wait(m, 5, 1, 0, NULL);   /* may stop counting at num_ready */
    CU_ASSERT(got >= 1 && got <= 3);

    CHECK_OK(shoal_seal(r[4]));
    memset(ready, 0, sizeof ready);
    CHECK_RC(shoal_wait(m, 5, 4, 0, ready), 4);
    CU_ASSERT(!ready[0] && ready[1] && ready[2] && ready[3] && ready[4]);
    CHECK_OK(shoal_seal(r[3]));
    CHECK_RC(shoal_wait(m, 5, 5, -1, ready), 5);

    /* A freed ref or a null ref in the list is an error, not "not ready". */
    shoal_ref gone;
    ASSERT_OK(shoal_put("x", 1, &gone));
    CHECK_OK(shoal_release(gone));
    shoal_ref with_stale[3] = { r[0], gone, r[1] };
    CHECK_RC(shoal_wait(with_stale, 3, 1, 0, NULL), SHOAL_ESTALE);
    shoal_ref with_null[2] = { r[0], SHOAL_REF_NULL };
    CHECK_RC(shoal_wait(with_null, 2, 1, 0, NULL), SHOAL_EINVAL);
    for (int k = 0; k < 5; k++)
        CHECK_OK(shoal_release(r[k]));
    ASSERT_OK(shoal_shutdown());
}

enum { NSEAL = 16 };
struct sealer { shoal_ref refs[NSEAL]; int bad; };

/* Seals the objects one by one in a scrambled order, pausing now and then. */
static void *sealer_thread(void *arg)
{
    struct sealer *s = arg;
    for (int k = 0; k < NSEAL; k++) {
        if (k % 4 == 0)
            sleep_ms(2);
        s->bad += shoal_seal(s->refs[(k * 7) % NSEAL]) != 0;
    }
    return NULL;
}

/* shoal_wait blocked on many objects is woken by seals from another thread. */
static void test_wait_woken_by_seals(void)
{
    test_start(shoal_test_config());
    for (int round = 0; round < 2; round++) {
        struct sealer s = { .bad = 0 };
        for (int k = 0; k < NSEAL; k++) {
            void *buf;
            ASSERT_OK(shoal_create(32, &buf, &s.refs[k]));
        }
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, sealer_thread, &s) == 0);
        bool ready[NSEAL];
        if (round == 0) {
            int got = shoal_wait(s.refs, NSEAL, 1, -1, ready);   /* the first seal suffices */
            CU_ASSERT(got >= 1 && got <= NSEAL);
        }
        CHECK_RC(shoal_wait(s.refs, NSEAL, NSEAL, -1, ready), NSEAL);
        for (int k = 0; k < NSEAL; k++)
            CU_ASSERT(ready[k]);
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(s.bad, 0);
        for (int k = 0; k < NSEAL; k++)
            CHECK_OK(shoal_release(s.refs[k]));
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- info and placement ----------------------------------------------------------- */

static void test_info(void)
{
    test_start(shoal_test_config());
    shoal_config c = shoal_test_config();
    shoal_info i0 = info_now();
    CU_ASSERT_EQUAL(i0.store_bytes, c.store_bytes);
    CU_ASSERT_EQUAL(i0.workers, c.workers);
    CU_ASSERT(i0.numa_nodes >= 1);
    CU_ASSERT(i0.huge_pages == SHOAL_PAGES_NORMAL || i0.huge_pages == SHOAL_PAGES_THP ||
              i0.huge_pages == SHOAL_PAGES_HUGETLB);
    CU_ASSERT_EQUAL(i0.objects_live, 0);
    CU_ASSERT_EQUAL(i0.tasks_run, 0);
    CU_ASSERT_EQUAL(i0.tasks_stolen, 0);
    CU_ASSERT(i0.bytes_used <= i0.store_bytes);

    size_t len = 1u << 20;
    unsigned char *src = calloc(1, len);
    shoal_ref a, b;
    ASSERT_OK(shoal_put(src, len, &a));
    shoal_info i1 = info_now();
    CU_ASSERT(i1.bytes_used >= i0.bytes_used + len);
    CU_ASSERT_EQUAL(i1.objects_live, 1);
    ASSERT_OK(shoal_put(src, 100, &b));
    shoal_info i2 = info_now();
    CU_ASSERT(i2.bytes_used >= i1.bytes_used + 100);
    CU_ASSERT_EQUAL(i2.objects_live, 2);
    CHECK_OK(shoal_release(a));
    shoal_info i3 = info_now();
    CU_ASSERT(i3.bytes_used < i2.bytes_used);
    CU_ASSERT(i3.bytes_used + len <= i2.bytes_used);
    CU_ASSERT_EQUAL(i3.objects_live, 1);
    CHECK_OK(shoal_release(b));
    shoal_info i4 = info_now();
    CU_ASSERT_EQUAL(i4.bytes_used, i0.bytes_used);
    CU_ASSERT_EQUAL(i4.objects_live, 0);
    CU_ASSERT_EQUAL(i4.store_bytes, c.store_bytes);
    free(src);
    ASSERT_OK(shoal_shutdown());

    /* workers as configured, also for another count */
    c.workers = 1;
    ASSERT_OK(shoal_init(&c));
    CU_ASSERT_EQUAL(info_now().workers, 1);
    ASSERT_OK(shoal_shutdown());
}

/* Objects under 64 bytes take a cache line each (alloc/sizeclass.h): their bytes start on
 * distinct lines, each counts 64 bytes, and a freed line is reused by the next small put of
 * the same thread, with its new bytes, while another thread's objects never land in it. */
enum { SMALL_N = 300 };
struct small_puts { shoal_ref r[SMALL_N]; uintptr_t line[SMALL_N]; int bad; };

static void *put_small(void *arg)
{
    struct small_puts *p = arg;
    for (int i = 0; i < SMALL_N; i++) {
        unsigned char v[64];
        memset(v, i, sizeof v);
        const void *d;
        size_t n;
        if (shoal_put(v, 1 + (size_t)i % 64, &p->r[i]) != 0 || shoal_get(p->r[i], &d, &n) != 0) {
            p->bad++;
            continue;
        }
        p->line[i] = (uintptr_t)d;
    }
    return NULL;
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void test_small_objects_own_lines(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    static struct small_puts p[2];
    memset(p, 0, sizeof p);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, put_small, &p[1]) == 0);
    put_small(&p[0]);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(p[0].bad + p[1].bad, 0);
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live + 2 * SMALL_N);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used + 2 * SMALL_N * 64);
    uintptr_t all[2 * SMALL_N];
    for (int i = 0; i < 2 * SMALL_N; i++) {
        all[i] = p[i / SMALL_N].line[i % SMALL_N];
        CU_ASSERT_EQUAL(all[i] % 64, 0);
    }
    qsort(all, 2 * SMALL_N, sizeof all[0], cmp_uptr);
    for (int i = 1; i < 2 * SMALL_N; i++)
        CU_ASSERT(all[i] - all[i - 1] >= 64);   /* no two objects share a line */
    /* The other thread's objects are freed here: their lines come back to this thread,
     * and a new small put may take one; its bytes are its own. */
    for (int i = 0; i < SMALL_N; i++)
        CHECK_OK(shoal_release(p[1].r[i]));
    uint64_t v = 42;
    shoal_ref r;
    const void *d;
    size_t n;
    ASSERT_OK(shoal_put(&v, sizeof v, &r));
    ASSERT_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == sizeof v && memcmp(d, &v, sizeof v) == 0);
    CHECK_OK(shoal_release(r));
    for (int i = 0; i < SMALL_N; i++)
        CHECK_OK(shoal_release(p[0].r[i]));
    shoal_info i2 = info_now();
    CU_ASSERT_EQUAL(i2.bytes_used, i0.bytes_used);
    CU_ASSERT_EQUAL(i2.objects_live, i0.objects_live);
    ASSERT_OK(shoal_shutdown());
}

static void test_object_node(void)
{
    test_start(shoal_test_config());
    shoal_info i = info_now();
    shoal_ref r;
    ASSERT_OK(shoal_put("where", 5, &r));
    int node = shoal_object_node(r);
    CU_ASSERT(node >= 0 && (unsigned)node < i.numa_nodes);
    void *buf;
    shoal_ref u;
    ASSERT_OK(shoal_create(64, &buf, &u));
    node = shoal_object_node(u);                /* placed at create, before the seal */
    CU_ASSERT(node >= 0 && (unsigned)node < i.numa_nodes);
    CHECK_RC(shoal_object_node(SHOAL_REF_NULL), SHOAL_EINVAL);
    CHECK_OK(shoal_release(r));
    CHECK_RC(shoal_object_node(r), SHOAL_ESTALE);
    CHECK_OK(shoal_release(u));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "put/get bytes, zero-copy", test_put_get },
        { "1000 live objects have distinct IDs", test_distinct_ids },
        { "empty objects", test_empty_objects },
        { "bad arguments answer EINVAL", test_bad_args },
        { "NULL out-pointers to get answer EINVAL", test_get_null_outputs },
        { "put_batch all or nothing", test_put_batch },
        { "create, get_timeout, seal, seal twice", test_create_seal },
        { "seal wakes waiting readers", test_seal_wakes_waiters },
        { "freeing an unsealed object wakes its readers with ESTALE", test_free_wakes_waiters },
        { "retain/release counting, double release", test_retain_release },
        { "shoal_wait on objects", test_wait },
        { "shoal_wait woken by seals from another thread", test_wait_woken_by_seals },
        { "info_get fields", test_info },
        { "object_node", test_object_node },
        { "small objects take a cache line each; freed lines serve new puts",
          test_small_objects_own_lines },
        { NULL, NULL },
    };
    return shoal_test_run("objects", cases);
}
