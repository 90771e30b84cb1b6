/* test_deps.c - REF arguments as dependencies: a task waits (off the workers) until its
 * REF arguments are complete, runs once they are, and does not run when one failed; its
 * result then fails with the original code and message, down whole chains. A DAG of more
 * than 100,000 tasks, fan-out on one object, and completions from foreign threads.
 * Black-box through shoal.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

static _Atomic long runs;

/* Sum of the longs in all REF arguments, plus VALUE longs. */
static int t_add(shoal_task *t)
{
    atomic_fetch_add(&runs, 1);
    long s = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const void *d;
        size_t n;
        int rc = shoal_task_arg(t, i, &d, &n);
        if (rc)
            return rc;
        if (n == sizeof(long)) {
            long v;
            memcpy(&v, d, sizeof v);
            s += v;
        }
    }
    return shoal_task_return(t, &s, sizeof s);
}

/* A task waits for an unsealed object without holding a worker: with one worker, an
 * independent task still runs meanwhile. Sealing makes the waiting task run. */
static void test_waits_for_seal(void)
{
    start_workers(1, 1u << 20);
    atomic_store(&runs, 0);
    void *buf;
    shoal_ref x, t, u;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    shoal_arg a = SHOAL_REF(x);
    ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &t));
    long one = 1;
    shoal_arg b = SHOAL_VALUE(&one, sizeof one);
    ASSERT_OK(shoal_submit(t_add, &b, 1, NULL, &u));
    int rc;
    CU_ASSERT_EQUAL(get_long(u, &rc), 1);
    CHECK_OK(rc);
    CU_ASSERT_EQUAL(atomic_load(&runs), 1);     /* u ran; t did not */
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(shoal_get_timeout(t, 1000000, &d, &n), SHOAL_ETIMEDOUT);
    nap_ms(5);                                   /* let the worker go to sleep */
    long v = 41;
    memcpy(buf, &v, sizeof v);
    CHECK_OK(shoal_seal(x));                     /* from this (foreign) thread */
    CU_ASSERT_EQUAL(get_long(t, &rc), 41);
    CHECK_OK(rc);
    CU_ASSERT_EQUAL(atomic_load(&runs), 2);
    CHECK_OK(shoal_release(t));
    CHECK_OK(shoal_release(u));
    CHECK_OK(shoal_release(x));
    ASSERT_OK(shoal_shutdown());
}

/* A chain of tasks, each waiting on the previous result; all submitted before the first
 * can run, the caller dropping every intermediate reference at once. */
static void test_chain(void)
{
    start_workers(2, 1u << 20);
    shoal_info before = info_now();
    void *buf;
    shoal_ref x, prev;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    prev = x;
    CHECK_OK(shoal_retain(x));
    int len = 5000 / SAN_DIV;
    long one = 1;
    for (int i = 0; i < len; i++) {
        shoal_arg a[2] = { SHOAL_REF(prev), SHOAL_VALUE(&one, sizeof one) };
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_add, a, 2, NULL, &r));
        CHECK_OK(shoal_release(prev));
        prev = r;
    }
    long v = 100;
    memcpy(buf, &v, sizeof v);
    CHECK_OK(shoal_seal(x));
    CHECK_OK(shoal_release(x));
    int rc;
    CU_ASSERT_EQUAL(get_long(prev, &rc), 100 + len);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(prev));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

static int t_leaf(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    long v;
    memcpy(&v, d, sizeof v);
    return shoal_task_return(t, &v, sizeof v);
}

/* A reduction DAG: 2^16 leaf tasks and 2^16 - 1 sum tasks (131071 tasks), every internal
 * node waiting on two results; each level's references released right after submitting
 * the next. */
static long reduce_dag(int leaves, int *errors)
{
    shoal_ref *lvl = malloc((size_t)leaves * sizeof *lvl);
    for (long i = 0; i < leaves; i++) {
        shoal_arg a = SHOAL_VALUE(&i, sizeof i);
        if (shoal_submit(t_leaf, &a, 1, NULL, &lvl[i])) {
            (*errors)++;
            free(lvl);
            return -1;
        }
    }
    for (int n = leaves; n > 1; n /= 2) {
        for (int i = 0; i < n / 2; i++) {
            shoal_arg a[2] = { SHOAL_REF(lvl[2 * i]), SHOAL_REF(lvl[2 * i + 1]) };
            shoal_ref r;
            if (shoal_submit(t_add, a, 2, NULL, &r))
                (*errors)++;
            shoal_release(lvl[2 * i]);
            shoal_release(lvl[2 * i + 1]);
            lvl[i] = r;
        }
    }
    int rc;
    long v = get_long(lvl[0], &rc);
    if (rc)
        (*errors)++;
    shoal_release(lvl[0]);
    free(lvl);
    return v;
}

static void test_dag_100k(void)
{
    start_workers(2, 1u << 20);
    shoal_info before = info_now();
    int leaves = 1 << 16, errors = 0;
    long v = reduce_dag(leaves, &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_EQUAL(v, (long)leaves * (leaves - 1) / 2);
    shoal_info after = info_now();
    CU_ASSERT(after.tasks_run - before.tasks_run >= 100000);
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* The same DAG built by a task: submissions from a worker, dependents made runnable on
 * workers' deques. */
static int t_build_dag(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    int leaves, errors = 0;
    memcpy(&leaves, d, sizeof leaves);
    long v = reduce_dag(leaves, &errors);
    if (errors)
        return 2;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_dag_from_task(void)
{
    start_workers(2, 1u << 20);
    int leaves = 1 << (SAN_DIV > 1 ? 12 : 15);
    shoal_arg a = SHOAL_VALUE(&leaves, sizeof leaves);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_build_dag, &a, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), (long)leaves * (leaves - 1) / 2);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* Many tasks wait on one object, one of them twice. */
static void test_fan_out(void)
{
    start_workers(2, 1u << 20);
    atomic_store(&runs, 0);
    void *buf;
    shoal_ref x;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    int n = 2000 / SAN_DIV;
    shoal_ref *rs = calloc((size_t)n, sizeof *rs);
    for (int i = 0; i < n; i++) {
        shoal_arg a[2] = { SHOAL_REF(x), SHOAL_REF(x) };
        ASSERT_OK(shoal_submit(t_add, a, i == 0 ? 2 : 1, NULL, &rs[i]));
    }
    CU_ASSERT_EQUAL(atomic_load(&runs), 0);
    long v = 3;
    memcpy(buf, &v, sizeof v);
    CHECK_OK(shoal_seal(x));
    CHECK_OK(shoal_release(x));
    for (int i = 0; i < n; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(rs[i], &rc), i == 0 ? 6 : 3);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(rs[i]));
    }
    free(rs);
    CU_ASSERT_EQUAL(atomic_load(&runs), n);
    ASSERT_OK(shoal_shutdown());
}

/* ---- failures through refs -------------------------------------------------------------- */

static int t_fail(shoal_task *t)
{
    shoal_task_fail(t, "sensor 3 unplugged: check the cable");
    return 1;
}

static int t_fail_after(shoal_task *t)   /* waits on its REF arg, then fails */
{
    shoal_task_fail(t, "late failure: see the log");
    return 1;
}

static void check_failed(shoal_ref r, int code, const char *msg)
{
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(get_within(r, &d, &n), code);
    if (strcmp(shoal_last_error(), msg) != 0)
        fprintf(stderr, "message: '%s', want '%s'\n", shoal_last_error(), msg);
    CU_ASSERT_STRING_EQUAL(shoal_last_error(), msg);
}

/* fail -> dependent -> dependent of dependent: none of the dependents runs, and each
 * answers SHOAL_ETASK with the first task's message. Both orders: the failure already
 * known at submit, and the failure arriving while the dependents wait. */
static void test_error_chain(void)
{
    start_workers(2, 1u << 20);
    shoal_info before = info_now();
    for (int late = 0; late < 2; late++) {
        atomic_store(&runs, 0);
        shoal_ref x = SHOAL_REF_NULL, f, d1, d2, d3;
        void *buf;
        const char *msg;
        if (late) {
            ASSERT_OK(shoal_create(1, &buf, &x));
            shoal_arg a = SHOAL_REF(x);
            ASSERT_OK(shoal_submit(t_fail_after, &a, 1, NULL, &f));
            msg = "late failure: see the log";
        } else {
            ASSERT_OK(shoal_submit(t_fail, NULL, 0, NULL, &f));
            const void *d;
            size_t n;
            CU_ASSERT_EQUAL(get_within(f, &d, &n), SHOAL_ETASK);   /* failed before the rest */
            msg = "sensor 3 unplugged: check the cable";
        }
        long one = 1;
        shoal_arg a1[2] = { SHOAL_VALUE(&one, sizeof one), SHOAL_REF(f) };
        ASSERT_OK(shoal_submit(t_add, a1, 2, NULL, &d1));
        shoal_arg a2 = SHOAL_REF(d1);
        ASSERT_OK(shoal_submit(t_add, &a2, 1, NULL, &d2));
        shoal_ref ok;
        ASSERT_OK(shoal_put(&one, sizeof one, &ok));
        shoal_arg a3[2] = { SHOAL_REF(ok), SHOAL_REF(d2) };   /* one good, one failed */
        ASSERT_OK(shoal_submit(t_add, a3, 2, NULL, &d3));
        CHECK_OK(shoal_release(ok));
        if (late)
            CHECK_OK(shoal_seal(x));
        check_failed(d3, SHOAL_ETASK, msg);
        check_failed(d2, SHOAL_ETASK, msg);
        check_failed(d1, SHOAL_ETASK, msg);
        check_failed(f, SHOAL_ETASK, msg);
        CU_ASSERT_EQUAL(atomic_load(&runs), 0);
        shoal_ref all[4] = { f, d1, d2, d3 };
        for (int i = 0; i < 4; i++)
            CHECK_OK(shoal_release(all[i]));
        if (late)
            CHECK_OK(shoal_release(x));
    }
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* A long chain of failures does not recurse on the stack: each failed dependent goes
 * through a queue. */
static void test_long_error_chain(void)
{
    start_workers(2, 1u << 20);
    atomic_store(&runs, 0);
    void *buf;
    shoal_ref x, f, prev;
    ASSERT_OK(shoal_create(1, &buf, &x));
    shoal_arg a = SHOAL_REF(x);
    ASSERT_OK(shoal_submit(t_fail_after, &a, 1, NULL, &f));
    prev = f;
    CHECK_OK(shoal_retain(f));
    int len = 20000 / SAN_DIV;
    for (int i = 0; i < len; i++) {
        shoal_arg b = SHOAL_REF(prev);
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_add, &b, 1, NULL, &r));
        CHECK_OK(shoal_release(prev));
        prev = r;
    }
    CHECK_OK(shoal_seal(x));
    check_failed(prev, SHOAL_ETASK, "late failure: see the log");
    CU_ASSERT_EQUAL(atomic_load(&runs), 0);
    CHECK_OK(shoal_release(prev));
    CHECK_OK(shoal_release(f));
    CHECK_OK(shoal_release(x));
    ASSERT_OK(shoal_shutdown());
}

/* Completions from several foreign threads at once make dependents runnable. */
struct sealer {
    shoal_ref *objs;
    void **bufs;
    int from, to;
};

static void *seal_main(void *p)
{
    struct sealer *s = p;
    for (int i = s->from; i < s->to; i++) {
        long v = i;
        memcpy(s->bufs[i], &v, sizeof v);
        shoal_seal(s->objs[i]);
    }
    return NULL;
}

static void test_foreign_completions(void)
{
    start_workers(2, 1u << 20);
    int n = 4000 / SAN_DIV;
    shoal_ref *objs = calloc((size_t)n, sizeof *objs), *rs = calloc((size_t)n, sizeof *rs);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        ASSERT_OK(shoal_create(sizeof(long), &bufs[i], &objs[i]));
        shoal_arg a = SHOAL_REF(objs[i]);
        ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &rs[i]));
    }
    enum { T = 4 };
    pthread_t th[T];
    struct sealer s[T];
    for (int k = 0; k < T; k++) {
        s[k] = (struct sealer){ objs, bufs, n * k / T, n * (k + 1) / T };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k], NULL, seal_main, &s[k]), 0);
    }
    for (int k = 0; k < T; k++)
        pthread_join(th[k], NULL);
    for (int i = 0; i < n; i++) {
        int rc;
        CU_ASSERT_EQUAL(get_long(rs[i], &rc), i);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(rs[i]));
        CHECK_OK(shoal_release(objs[i]));
    }
    free(objs);
    free(rs);
    free(bufs);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "a task waits for a seal, off the worker", test_waits_for_seal },
        { "a chain of dependents", test_chain },
        { "a DAG of 131071 tasks", test_dag_100k },
        { "a DAG built inside a task", test_dag_from_task },
        { "fan-out on one object", test_fan_out },
        { "error chains keep the first message", test_error_chain },
        { "a long error chain", test_long_error_chain },
        { "completions from 4 foreign threads", test_foreign_completions },
        { NULL, NULL },
    };
    return shoal_test_run("deps", cases);
}
