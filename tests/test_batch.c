/* test_batch.c - shoal_submit_batch: n tasks in one call, each an ordinary task (its own
 * result, its arguments held, errors through its ref, shoal_cancel), dependencies on
 * earlier batches and single submits, SHOAL_ARG_MOVE, and all or nothing on every failure
 * (bad input, a stale REF in the middle, a table too small for the batch).
 * Black-box through shoal.h. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "lib/tasks.h"

static _Atomic long runs;           /* t_sum bodies run */

/* The sum of its arguments, each a long (a VALUE or an object holding one) or empty (a
 * blocker's result: 0). */
static int t_sum(shoal_task *t)
{
    atomic_fetch_add(&runs, 1);
    long s = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const void *d;
        size_t n;
        int rc = shoal_task_arg(t, i, &d, &n);
        if (rc)
            return rc;
        long v;
        if (n == 0)
            continue;
        if (n != sizeof v)
            return shoal_task_fail(t, "t_sum: an argument is not a long"), 1;
        memcpy(&v, d, sizeof v);
        s += v;
    }
    return shoal_task_return(t, &s, sizeof s);
}

/* Fails when its argument is odd, naming it. */
static int t_fail_odd(shoal_task *t)
{
    long v = arg_long(t, 0);
    if (v % 2) {
        char msg[64];
        snprintf(msg, sizeof msg, "odd argument %ld", v);
        shoal_task_fail(t, msg);
        return 1;
    }
    return shoal_task_return(t, &v, sizeof v);
}

/* n VALUE arguments 0..n-1 (vals must outlive the call). */
static shoal_arg *value_args(size_t n, long *vals)
{
    shoal_arg *a = malloc(n * sizeof *a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (size_t i = 0; i < n; i++) {
        vals[i] = (long)i;
        a[i] = SHOAL_VALUE(&vals[i], sizeof vals[i]);
    }
    return a;
}

/* ---- correctness ---------------------------------------------------------------------- */

static void test_values(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 1000 };
    long vals[N];
    shoal_arg *a = value_args(N, vals);
    shoal_ref out[N];
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 1, NULL, out));
    vals[0] = 12345;   /* VALUEs were copied at submit */
    for (size_t i = 0; i < N; i++) {
        CU_ASSERT_NOT_EQUAL(out[i].id, 0);
        if (i)
            CU_ASSERT_NOT_EQUAL(out[i].id, out[i - 1].id);
        int rc;
        CU_ASSERT_EQUAL(get_long(out[i], &rc), (long)i);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(out[i]));
    }
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    /* No arguments at all, and two per task. */
    ASSERT_OK(shoal_submit_batch(3, t_sum, NULL, 0, NULL, out));
    for (size_t i = 0; i < 3; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(out[i], &rc), 0);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(out[i]));
    }
    long two[4] = { 1, 2, 30, 40 };
    shoal_arg a2[4] = { SHOAL_VALUE(&two[0], sizeof(long)), SHOAL_VALUE(&two[1], sizeof(long)),
                        SHOAL_VALUE(&two[2], sizeof(long)), SHOAL_VALUE(&two[3], sizeof(long)) };
    shoal_task_opts o = { .name = "pair" };
    ASSERT_OK(shoal_submit_batch(2, t_sum, a2, 2, &o, out));
    int rc;
    CU_ASSERT_EQUAL(get_long(out[0], &rc), 3);
    CU_ASSERT_EQUAL(get_long(out[1], &rc), 70);
    CHECK_OK(shoal_release(out[0]));
    CHECK_OK(shoal_release(out[1]));
    /* n = 0 does nothing, even with NULL arrays. */
    shoal_ref keep = { 777 };
    ASSERT_OK(shoal_submit_batch(0, t_sum, NULL, 2, NULL, NULL));
    ASSERT_OK(shoal_submit_batch(0, t_sum, a, 1, NULL, &keep));
    CU_ASSERT_EQUAL(keep.id, 777);
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    free(a);
    ASSERT_OK(shoal_shutdown());
}

/* ---- bad input: a specific code, nothing submitted, out[] untouched -------------------- */

static void test_bad_input(void)
{
    test_reset();
    shoal_ref out[8];
    for (int i = 0; i < 8; i++)
        out[i].id = 1000 + (uint64_t)i;
    long v = 1;
    shoal_arg ok[8];
    for (int i = 0; i < 8; i++)
        ok[i] = SHOAL_VALUE(&v, sizeof v);
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, ok, 1, NULL, out), SHOAL_ENOTINIT);

    start_workers(2, 0);
    atomic_store(&runs, 0);
    uint64_t live0 = info_now().objects_live;
    CU_ASSERT_EQUAL(shoal_submit_batch(4, NULL, ok, 1, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "fn"));
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, ok, 1, NULL, NULL), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "out"));
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, NULL, 1, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "args"));
    CU_ASSERT_EQUAL(shoal_submit_batch(1, t_sum, ok, 65536, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(shoal_submit_batch(SIZE_MAX / 2, t_sum, ok, 3, NULL, out), SHOAL_EINVAL);
    /* A bad argument in the middle: named by task and argument. */
    shoal_arg bad[8];
    memcpy(bad, ok, sizeof bad);
    bad[5].kind = 7;
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, bad, 2, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "task 2 argument 1"));
    memcpy(bad, ok, sizeof bad);
    bad[6] = SHOAL_VALUE(NULL, 8);
    CU_ASSERT_EQUAL(shoal_submit_batch(8, t_sum, bad, 1, NULL, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "task 6 argument 0"));
    /* Options: a context belongs to one task; the checks of shoal_submit. */
    shoal_task_opts o = { .ctx = &v };
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, ok, 1, &o, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "ctx"));
    shoal_task_opts o2 = { .reserved = { 1, 0, 0 } };
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, ok, 1, &o2, out), SHOAL_EINVAL);
    shoal_task_opts o3 = { .numa_node = -2 };
    CU_ASSERT_EQUAL(shoal_submit_batch(4, t_sum, ok, 1, &o3, out), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "numa_node"));
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(out[i].id, 1000 + (uint64_t)i);
    CU_ASSERT_EQUAL(info_now().objects_live, live0);
    nap_ms(20);
    CU_ASSERT_EQUAL(atomic_load(&runs), 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- all or nothing ------------------------------------------------------------------- */

/* A stale REF at task 7 of 10: the earlier tasks' references are given back (REF) or stay
 * the caller's (MOVE), no result is left, nothing runs. */
static void test_stale_ref_midway(void)
{
    start_workers(2, 0);
    atomic_store(&runs, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 10 };
    shoal_ref shared, mine[N], gone;
    long one = 1;
    ASSERT_OK(shoal_put(&one, sizeof one, &shared));
    for (int i = 0; i < N; i++)
        ASSERT_OK(shoal_put(&one, sizeof one, &mine[i]));
    ASSERT_OK(shoal_put(&one, sizeof one, &gone));
    CHECK_OK(shoal_release(gone));
    shoal_arg a[2 * N];
    for (int i = 0; i < N; i++) {
        a[2 * i] = SHOAL_REF(shared);
        a[2 * i + 1] = SHOAL_REF_MOVE(mine[i]);
    }
    a[2 * 7 + 1] = SHOAL_REF_MOVE(gone);
    shoal_ref out[N];
    for (int i = 0; i < N; i++)
        out[i].id = 42;
    CU_ASSERT_EQUAL(shoal_submit_batch(N, t_sum, a, 2, NULL, out), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "task 7"));
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "argument 1"));
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(out[i].id, 42);
    /* Same count of live objects: no result made, and shared's extra references given back
     * (its one release below frees it, which the count shows). */
    CU_ASSERT_EQUAL(info_now().objects_live, live0 + 1 + N);
    CHECK_OK(shoal_release(shared));
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_release(mine[i]));   /* the moved ones are still ours */
    CU_ASSERT_EQUAL(info_now().objects_live, live0);
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(shoal_get_timeout(shared, 0, &d, &n), SHOAL_ESTALE);
    /* A forged REF in the middle, without MOVE. */
    ASSERT_OK(shoal_put(&one, sizeof one, &shared));
    shoal_arg b[4] = { SHOAL_REF(shared), SHOAL_REF(shared),
                       SHOAL_REF(((shoal_ref){ 0x00ffffffffffffffull })), SHOAL_REF(shared) };
    ASSERT_RC2(shoal_submit_batch(4, t_sum, b, 1, NULL, out), SHOAL_EINVAL, SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "task 2"));
    CHECK_OK(shoal_release(shared));
    CU_ASSERT_EQUAL(info_now().objects_live, live0);
    nap_ms(20);
    CU_ASSERT_EQUAL(atomic_load(&runs), 0);
    ASSERT_OK(shoal_shutdown());
}

/* A batch larger than the object table: SHOAL_ENOMEM, nothing submitted, the table as it
 * was; a batch that fits then succeeds. */
static void test_table_full(void)
{
    start_workers(2, 1024);
    atomic_store(&runs, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 2000 };
    long *vals = malloc(N * sizeof *vals);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vals);
    shoal_arg *a = value_args(N, vals);
    shoal_ref *out = calloc(N, sizeof *out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    shoal_ref held;
    long one = 1;
    ASSERT_OK(shoal_put(&one, sizeof one, &held));
    for (int i = 0; i < N; i++)
        a[i] = SHOAL_REF(held);   /* references taken, then given back */
    CU_ASSERT_EQUAL(shoal_submit_batch(N, t_sum, a, 1, NULL, out), SHOAL_ENOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "nothing was submitted"));
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(out[i].id, 0);
    CU_ASSERT_EQUAL(info_now().objects_live, live0 + 1);
    nap_ms(20);
    CU_ASSERT_EQUAL(atomic_load(&runs), 0);
    ASSERT_OK(shoal_submit_batch(500, t_sum, a, 1, NULL, out));
    CHECK_OK(shoal_release(held));   /* the tasks hold it now */
    for (int i = 0; i < 500; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(out[i], &rc), 1);
        CHECK_OK(shoal_release(out[i]));
    }
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    free(a);
    free(vals);
    free(out);
    ASSERT_OK(shoal_shutdown());
}

/* A count no table can hold (an underflowed n - 1, say) is refused at once with
 * SHOAL_ENOMEM, before any argument or item is read. Before, shoal_submit_batch with no
 * arguments checked each of the n tasks' (none) first: SIZE_MAX turns of a loop, a hang
 * (the child below met its alarm); shoal_put_batch read data[i] for every i first (past
 * the caller's arrays) and sized its scratch array as n * 8 bytes, which wraps. Run in a
 * child, whose alarm ends a hang. */
static int t_nop(shoal_task *t)
{
    (void)t;
    return 0;
}

static int huge_counts_child(void)
{
    shoal_test_child_limits(20);
    shoal_config c = shoal_test_config();
    c.workers = 1;
    if (shoal_init(&c))
        return 2;
    shoal_ref out[2] = { { 7 }, { 7 } };
    int bad = 0;
    int rc = shoal_submit_batch(SIZE_MAX, t_nop, NULL, 0, NULL, out);
    if (rc != SHOAL_ENOMEM || !strstr(shoal_last_error(), "object table")) {
        fprintf(stderr, "submit_batch(SIZE_MAX) = %d: %s\n", rc, shoal_last_error());
        bad = 1;
    }
    long v = 1;
    shoal_arg one = SHOAL_VALUE(&v, sizeof v);
    rc = shoal_submit_batch((size_t)1 << 40, t_nop, &one, 1, NULL, out);
    if (rc != SHOAL_ENOMEM) {
        fprintf(stderr, "submit_batch(2^40) = %d: %s\n", rc, shoal_last_error());
        bad = 1;
    }
    const void *data[1] = { "x" };
    size_t len[1] = { 1 };
    rc = shoal_put_batch(((size_t)1 << 61) + 1, data, len, out);
    if (rc != SHOAL_ENOMEM || !strstr(shoal_last_error(), "object table")) {
        fprintf(stderr, "put_batch(2^61 + 1) = %d: %s\n", rc, shoal_last_error());
        bad = 1;
    }
    shoal_info in;   /* no CUnit here (info_now asserts): a program of its own */
    if (out[0].id != 7 || out[1].id != 7 || shoal_info_get(&in) || in.objects_live != 0)
        bad = 1;
    if (shoal_shutdown())
        return 2;
    return bad;
}

static void test_huge_counts(void)
{
    test_reset();
    CU_ASSERT_EQUAL(test_run_self("huge-counts"), 0);
}

/* ---- MOVE, dependencies ----------------------------------------------------------------- */

/* Moved refs belong to the tasks: the caller does not release them, and every object is
 * gone once the results are. */
static void test_move(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 200 };
    shoal_ref in[N], out[N];
    shoal_arg a[N];
    for (long i = 0; i < N; i++) {
        ASSERT_OK(shoal_put(&i, sizeof i, &in[i]));
        a[i] = i % 2 ? SHOAL_REF_MOVE(in[i]) : SHOAL_REF_PASS_MOVE(in[i]);
    }
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 1, NULL, out));
    for (long i = 0; i < N; i++) {
        int rc;
        long v = get_long(out[i], &rc);
        if (i % 2) {
            CU_ASSERT_EQUAL(v, i);
            CHECK_OK(rc);
        } else {   /* REF_PASS has no bytes for t_sum: the task fails with that error */
            CU_ASSERT_NOT_EQUAL(rc, 0);
        }
        CHECK_OK(shoal_release(out[i]));
    }
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    ASSERT_OK(shoal_shutdown());
}

/* A reduction tree, a batch per level, each level's REF_MOVE arguments the results of the
 * batch before (across batches), over pending results and finished ones alike. */
static void test_tree(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 4097 };
    long *vals = malloc(N * sizeof *vals);
    shoal_ref *level = malloc(N * sizeof *level);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vals);
    CU_ASSERT_PTR_NOT_NULL_FATAL(level);
    shoal_arg *a = value_args(N, vals);
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 1, NULL, level));
    size_t n = N;
    while (n > 1) {
        size_t m = n / 2;
        for (size_t i = 0; i < m; i++) {
            a[2 * i] = SHOAL_REF_MOVE(level[2 * i]);
            a[2 * i + 1] = SHOAL_REF_MOVE(level[2 * i + 1]);
        }
        shoal_ref odd = level[n - 1];
        ASSERT_OK(shoal_submit_batch(m, t_sum, a, 2, NULL, level));
        if (n % 2)
            level[m++] = odd;
        n = m;
    }
    int rc;
    CU_ASSERT_EQUAL(get_long(level[0], &rc), (long)N * (N - 1) / 2);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(level[0]));
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    free(a);
    free(vals);
    free(level);
    ASSERT_OK(shoal_shutdown());
}

/* Every task of one batch waits for the same pending result (a task that waits for the
 * gate) and for a single submit's result; none runs before they complete, all run after. */
static void test_shared_pending_dep(void)
{
    start_workers(2, 0);
    atomic_store(&runs, 0);
    shoal_ref blk[1];
    block_workers(1, blk);   /* one worker held: blk[0] stays pending */
    long ten = 10;
    shoal_arg sa = SHOAL_VALUE(&ten, sizeof ten);
    shoal_ref single;
    ASSERT_OK(shoal_submit(t_sum, &sa, 1, NULL, &single));
    enum { N = 300 };
    shoal_arg a[2 * N];
    for (int i = 0; i < N; i++) {
        a[2 * i] = SHOAL_REF(blk[0]);
        a[2 * i + 1] = SHOAL_REF(single);
    }
    shoal_ref out[N];
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 2, NULL, out));
    CHECK_OK(shoal_release(single));   /* the tasks hold it */
    nap_ms(20);
    CU_ASSERT(atomic_load(&runs) <= 1);   /* only `single` may have run */
    const void *d;
    size_t len;
    CU_ASSERT_EQUAL(shoal_get_timeout(out[0], 0, &d, &len), SHOAL_ETIMEDOUT);
    unblock_workers(1, blk);
    for (int i = 0; i < N; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(out[i], &rc), 10);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(out[i]));
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- cancel, errors in tasks ------------------------------------------------------------ */

static void test_cancel(void)
{
    start_workers(2, 0);
    atomic_store(&runs, 0);
    shoal_ref blk[2];
    block_workers(2, blk);
    enum { N = 10 };
    long vals[N];
    shoal_arg *a = value_args(N, vals);
    shoal_ref out[N];
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 1, NULL, out));
    /* a dependent of a canceled one, from a second batch */
    shoal_arg dep = SHOAL_REF(out[3]);
    shoal_ref after;
    ASSERT_OK(shoal_submit_batch(1, t_sum, &dep, 1, NULL, &after));
    CU_ASSERT_EQUAL(shoal_cancel(out[3]), 0);
    CU_ASSERT_EQUAL(shoal_cancel(out[3]), SHOAL_EEXIST);
    unblock_workers(2, blk);
    for (int i = 0; i < N; i++) {
        int rc;
        long v = get_long(out[i], &rc);
        if (i == 3) {
            CU_ASSERT_EQUAL(rc, SHOAL_ECANCELED);
        } else {
            CHECK_OK(rc);
            CU_ASSERT_EQUAL(v, i);
        }
        CHECK_OK(shoal_release(out[i]));
    }
    int rc;
    (void)get_long(after, &rc);
    CU_ASSERT_EQUAL(rc, SHOAL_ECANCELED);
    CHECK_OK(shoal_release(after));
    CU_ASSERT_EQUAL(atomic_load(&runs), N - 1);
    free(a);
    ASSERT_OK(shoal_shutdown());
}

static void test_errors_in_tasks(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 64 };
    long vals[N];
    shoal_arg *a = value_args(N, vals);
    shoal_ref out[N], sums[N / 2];
    ASSERT_OK(shoal_submit_batch(N, t_fail_odd, a, 1, NULL, out));
    shoal_arg b[N];
    for (int i = 0; i < N; i++)
        b[i] = SHOAL_REF(out[i]);
    ASSERT_OK(shoal_submit_batch(N / 2, t_sum, b, 2, NULL, sums));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t len;
        int rc = get_within(out[i], &d, &len);
        if (i % 2) {
            CU_ASSERT_EQUAL(rc, SHOAL_ETASK);
            char want[64];
            snprintf(want, sizeof want, "odd argument %d", i);
            CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), want));
        } else {
            CHECK_OK(rc);
        }
        CHECK_OK(shoal_release(out[i]));
    }
    for (int i = 0; i < N / 2; i++) {   /* each has an odd argument: failed in turn */
        int rc;
        (void)get_long(sums[i], &rc);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        CHECK_OK(shoal_release(sums[i]));
    }
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    free(a);
    ASSERT_OK(shoal_shutdown());
}

/* ---- big batches, from inside a task ------------------------------------------------------ */

/* 200k ready tasks at once, most of the object table (the global queue's ring, of
 * SHOAL__INJ_CAP = 262144 cells, holds them: test_sched_internals fills it to its overflow
 * list). */
static void test_big(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 200000 };
    long *vals = malloc(N * sizeof *vals);
    shoal_ref *out = malloc(N * sizeof *out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vals);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    shoal_arg *a = value_args(N, vals);
    ASSERT_OK(shoal_submit_batch(N, t_sum, a, 1, NULL, out));
    long bad = 0;
    for (long i = 0; i < N; i++) {
        int rc;
        if (get_long(out[i], &rc) != i || rc != 0)
            bad++;
        CHECK_OK(shoal_release(out[i]));
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    free(a);
    free(vals);
    free(out);
    ASSERT_OK(shoal_shutdown());
}

/* Tasks of one batch with different shapes: argument 0 a VALUE whose length varies (one
 * of more than 64 KiB), argument 1 a REF or a VALUE, argument 2 a REF_PASS or a VALUE.
 * Returns len0 * 1000 + the long of argument 1 + (7 for a REF_PASS, else the long of
 * argument 2), after checking argument 0's bytes. */
enum { SHAPES_BIG = 100000 };
static int t_shapes(shoal_task *t)
{
    const void *d;
    size_t n0, n;
    long v1, v2;
    shoal_ref r;
    if (shoal_task_arg(t, 0, &d, &n0) != 0)
        return shoal_task_fail(t, "t_shapes: argument 0"), 1;
    for (size_t k = 0; k < n0; k++)
        if (((const unsigned char *)d)[k] != (unsigned char)(n0 + k))
            return shoal_task_fail(t, "t_shapes: argument 0's bytes"), 1;
    if (shoal_task_arg(t, 1, &d, &n) != 0 || n != sizeof v1)
        return shoal_task_fail(t, "t_shapes: argument 1"), 1;
    memcpy(&v1, d, sizeof v1);
    if (shoal_task_arg_ref(t, 2, &r) == 0) {
        v2 = 7;
    } else {
        if (shoal_task_arg(t, 2, &d, &n) != 0 || n != sizeof v2)
            return shoal_task_fail(t, "t_shapes: argument 2"), 1;
        memcpy(&v2, d, sizeof v2);
    }
    long s = (long)n0 * 1000 + v1 + v2;
    return shoal_task_return(t, &s, sizeof s);
}

/* Each task's own shape (its VALUE bytes, its REF and held counts) is what its block is
 * sized and filled by: step 1 of a batch keeps every task's shape for step 2. */
static void test_mixed_shapes(void)
{
    start_workers(2, 0);
    uint64_t live0 = info_now().objects_live;
    enum { N = 40 };
    static unsigned char bytes[N][SHAPES_BIG];
    long vals[N][2], refval = 500;
    size_t len0[N];
    shoal_ref obj;
    ASSERT_OK(shoal_put(&refval, sizeof refval, &obj));
    shoal_arg a[N * 3];
    for (size_t i = 0; i < N; i++) {
        len0[i] = i == 5 ? SHAPES_BIG : i % 4 == 0 ? 0 : 8 * (i % 7) + 1;
        for (size_t k = 0; k < len0[i]; k++)
            bytes[i][k] = (unsigned char)(len0[i] + k);
        vals[i][0] = (long)i;
        vals[i][1] = 2 * (long)i;
        a[3 * i] = SHOAL_VALUE(bytes[i], len0[i]);
        a[3 * i + 1] = i % 3 == 0 ? SHOAL_REF(obj) : SHOAL_VALUE(&vals[i][0], sizeof(long));
        a[3 * i + 2] = i % 2 == 0 ? SHOAL_REF_PASS(obj) : SHOAL_VALUE(&vals[i][1], sizeof(long));
    }
    shoal_ref out[N];
    ASSERT_OK(shoal_submit_batch(N, t_shapes, a, 3, NULL, out));
    CHECK_OK(shoal_release(obj));   /* the tasks hold their own references */
    for (size_t i = 0; i < N; i++) {
        long want = (long)len0[i] * 1000 + (i % 3 == 0 ? refval : (long)i) +
                    (i % 2 == 0 ? 7 : 2 * (long)i);
        int rc;
        long got = get_long(out[i], &rc);
        CHECK_OK(rc);
        if (got != want)
            fprintf(stderr, "mixed shapes: task %zu gave %ld, not %ld\n", i, got, want);
        CU_ASSERT_EQUAL(got, want);
        CHECK_OK(shoal_release(out[i]));
    }
    CU_ASSERT_EQUAL(live_settled(live0), live0);
    ASSERT_OK(shoal_shutdown());
}

/* A task submits a batch (the worker path: its own deque) and sums the results. */
static int t_fan(shoal_task *t)
{
    enum { N = 100 };
    long vals[N];
    shoal_arg a[N];
    shoal_ref out[N];
    for (long i = 0; i < N; i++) {
        vals[i] = i;
        a[i] = SHOAL_VALUE(&vals[i], sizeof vals[i]);
    }
    if (shoal_submit_batch(N, t_sum, a, 1, NULL, out) != 0)
        return shoal_task_fail(t, shoal_last_error()), 1;
    long s = 0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int rc;
        long v = get_long(out[i], &rc);
        bad |= rc != 0;
        s += v;
        shoal_release(out[i]);
    }
    if (bad)
        return shoal_task_fail(t, "a child failed"), 1;
    return shoal_task_return(t, &s, sizeof s);
}

static void test_from_task(void)
{
    start_workers(2, 0);
    shoal_ref out[4];
    ASSERT_OK(shoal_submit_batch(4, t_fan, NULL, 0, NULL, out));
    for (int i = 0; i < 4; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(out[i], &rc), 99 * 100 / 2);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(out[i]));
    }
    ASSERT_OK(shoal_shutdown());
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "huge-counts") == 0)
        return huge_counts_child();
    static const shoal_test_case cases[] = {
        { "values, no args, two args, n = 0", test_values },
        { "bad input: a specific code, nothing submitted", test_bad_input },
        { "a stale REF midway: all or nothing", test_stale_ref_midway },
        { "a batch larger than the table: all or nothing", test_table_full },
        { "a count no table holds: ENOMEM at once", test_huge_counts },
        { "MOVE hands the refs to the tasks", test_move },
        { "a tree of batches over REF_MOVE", test_tree },
        { "a batch waits for one pending result", test_shared_pending_dep },
        { "cancel a batch-submitted task", test_cancel },
        { "errors inside tasks, and their dependents", test_errors_in_tasks },
        { "200k tasks in one batch", test_big },
        { "tasks of one batch with different shapes", test_mixed_shapes },
        { "a task submits a batch", test_from_task },
        { NULL, NULL },
    };
    return shoal_test_run("batch", cases);
}
