/* test_tasks.c - submitting tasks and what a task sees: VALUE, REF and REF_PASS arguments,
 * returning (copy, zero-copy, nothing), failing (message, non-zero return), the references a
 * task holds, worker identity (names, pinning, counters), submissions from many foreign
 * threads at once, and every error path of shoal_submit and the shoal_task_* calls.
 * Black-box through shoal.h. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

/* The result of r as a long, or the error code (and r is released either way). */
static long take_long(shoal_ref r, int *rc)
{
    const void *d = NULL;
    size_t n = 0;
    *rc = get_within(r, &d, &n);
    long v = -1;
    if (*rc == 0) {
        CU_ASSERT_EQUAL(n, sizeof(long));
        if (n == sizeof(long))
            memcpy(&v, d, sizeof v);
    }
    CHECK_OK(shoal_release(r));
    return v;
}

/* ---- returning ------------------------------------------------------------------------- */

static int t_empty(shoal_task *t) { (void)t; return 0; }

static int t_sum(shoal_task *t)
{
    long s = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const void *d;
        size_t n;
        int rc = shoal_task_arg(t, i, &d, &n);
        if (rc)
            return rc;
        for (size_t k = 0; k < n; k++)
            s += ((const unsigned char *)d)[k];
    }
    return shoal_task_return(t, &s, sizeof s);
}

static void test_empty_result(void)
{
    start_workers(2, 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_empty, NULL, 0, NULL, &r));
    CU_ASSERT_NOT_EQUAL(r.id, 0);
    const void *d;
    size_t n = 99;
    CHECK_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL(n, 0);          /* a task that returns nothing gives an empty object */
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

static void test_value_args_copied(void)
{
    start_workers(2, 0);
    unsigned char a[3] = { 1, 2, 3 }, big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    long want = 6;
    for (size_t i = 0; i < sizeof big; i++)
        want += big[i];
    shoal_arg args[3] = { SHOAL_VALUE(a, sizeof a), SHOAL_VALUE(big, sizeof big),
                          SHOAL_VALUE(NULL, 0) };
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_sum, args, 3, NULL, &r));
    memset(a, 0, sizeof a);         /* copied at submit: later changes do not reach it */
    memset(big, 0, sizeof big);
    int rc;
    CU_ASSERT_EQUAL(take_long(r, &rc), want);
    CHECK_OK(rc);
    ASSERT_OK(shoal_shutdown());
}

/* Many arguments: the task does not fit a pooled block and is allocated apart. */
static void test_many_args(void)
{
    start_workers(2, 0);
    enum { N = 300 };
    shoal_arg args[N];
    unsigned char v[N];
    long want = 0;
    for (int i = 0; i < N; i++) {
        v[i] = (unsigned char)i;
        want += v[i];
        args[i] = SHOAL_VALUE(&v[i], 1);
    }
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_sum, args, N, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(take_long(r, &rc), want);
    CHECK_OK(rc);
    ASSERT_OK(shoal_shutdown());
}

static int t_return_buf(shoal_task *t)
{
    void *buf;
    int rc = shoal_task_return_buf(t, 100000, &buf);
    if (rc)
        return rc;
    pat_fill(buf, 100000, 5, 6);
    /* Only once: both forms answer EEXIST afterwards. */
    if (shoal_task_return(t, "x", 1) != SHOAL_EEXIST ||
        shoal_task_return_buf(t, 1, &buf) != SHOAL_EEXIST)
        return 99;
    return 0;
}

static void test_return_buf(void)
{
    start_workers(2, 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_return_buf, NULL, 0, NULL, &r));
    const void *d;
    size_t n;
    ASSERT_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL(n, 100000);
    CU_ASSERT(pat_ok(d, n, 5, 6));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* ---- REF and REF_PASS ------------------------------------------------------------------ */

static int t_ref_args(shoal_task *t)
{
    /* arg 0: REF (resolved, zero-copy), arg 1: REF_PASS (the ref itself). */
    const void *d0;
    size_t n0;
    shoal_ref r0, r1;
    if (shoal_task_arg(t, 0, &d0, &n0) || shoal_task_arg_ref(t, 0, &r0) ||
        shoal_task_arg_ref(t, 1, &r1))
        return 1;
    /* zero-copy: the same bytes shoal_get gives */
    const void *g;
    size_t gn;
    if (get_within(r0, &g, &gn) || g != d0 || gn != n0)
        return 2;
    const void *d1;
    size_t n1;
    if (get_within(r1, &d1, &n1))
        return 3;
    long v = (long)n0 * 1000 + (long)n1;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_ref_and_ref_pass(void)
{
    start_workers(2, 0);
    shoal_ref a, b, r;
    ASSERT_OK(shoal_put("abcde", 5, &a));
    ASSERT_OK(shoal_put("xyz", 3, &b));
    shoal_arg args[2] = { SHOAL_REF(a), SHOAL_REF_PASS(b) };
    ASSERT_OK(shoal_submit(t_ref_args, args, 2, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(take_long(r, &rc), 5003);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_release(b));
    ASSERT_OK(shoal_shutdown());
}

/* The caller drops its references right after submitting: the task's own keep the objects
 * alive until it completes, and go when it does. */
static void test_refs_released_after_submit(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    int iters = 200 / SAN_DIV;
    for (int i = 0; i < iters; i++) {
        shoal_ref a, b, r;
        ASSERT_OK(shoal_put("abcde", 5, &a));
        ASSERT_OK(shoal_put("xyz", 3, &b));
        shoal_arg args[2] = { SHOAL_REF(a), SHOAL_REF_PASS(b) };
        ASSERT_OK(shoal_submit(t_ref_args, args, 2, NULL, &r));
        CHECK_OK(shoal_release(a));
        CHECK_OK(shoal_release(b));
        int rc;
        CU_ASSERT_EQUAL(take_long(r, &rc), 5003);
        CHECK_OK(rc);
        /* The task completed, so its references are gone: both objects are freed. */
        const void *d;
        size_t n;
        CU_ASSERT_EQUAL(shoal_get_timeout(a, 0, &d, &n), SHOAL_ESTALE);
        CU_ASSERT_EQUAL(shoal_get_timeout(b, 0, &d, &n), SHOAL_ESTALE);
    }
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* SHOAL_REF_MOVE / SHOAL_REF_PASS_MOVE: the caller hands its reference to the task, which
 * releases it when it ends (the objects go then, with no release by the caller); a submit
 * that fails leaves them the caller's; a moved ref that is null, forged or freed fails the
 * submit as a REF would. A kind with MOVE on a VALUE, or unknown bits, is refused. */
static void test_refs_moved(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    int iters = 200 / SAN_DIV;
    const void *d;
    size_t n;
    for (int i = 0; i < iters; i++) {
        shoal_ref a, b, r;
        ASSERT_OK(shoal_put("abcde", 5, &a));
        ASSERT_OK(shoal_put("xyz", 3, &b));
        shoal_arg args[2] = { SHOAL_REF_MOVE(a), SHOAL_REF_PASS_MOVE(b) };
        ASSERT_OK(shoal_submit(t_ref_args, args, 2, NULL, &r));
        int rc;
        CU_ASSERT_EQUAL(take_long(r, &rc), 5003);
        CHECK_OK(rc);
        /* The task ended and dropped the references it was given: both objects are gone. */
        CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
        CU_ASSERT_EQUAL(shoal_get_timeout(a, 0, &d, &n), SHOAL_ESTALE);
        CU_ASSERT_EQUAL(shoal_get_timeout(b, 0, &d, &n), SHOAL_ESTALE);
    }
    /* A failed submit (the second argument is freed) leaves the first the caller's. */
    shoal_ref a, gone, r = { 777 };
    ASSERT_OK(shoal_put("abcde", 5, &a));
    ASSERT_OK(shoal_put("x", 1, &gone));
    CHECK_OK(shoal_release(gone));
    shoal_arg bad[2] = { SHOAL_REF_MOVE(a), SHOAL_REF_MOVE(gone) };
    CU_ASSERT_EQUAL(shoal_submit(t_ref_args, bad, 2, NULL, &r), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "argument 1"));
    CU_ASSERT_EQUAL(r.id, 777);
    shoal_arg forged = SHOAL_REF_MOVE(((shoal_ref){ 0 }));
    CU_ASSERT_EQUAL(shoal_submit(t_ref_args, &forged, 1, NULL, &r), SHOAL_EINVAL);
    int x = 1;
    shoal_arg vmove = { .kind = SHOAL_ARG_VALUE | SHOAL_ARG_MOVE, .data = &x, .len = sizeof x };
    CU_ASSERT_EQUAL(shoal_submit(t_ref_args, &vmove, 1, NULL, &r), SHOAL_EINVAL);
    shoal_arg odd = { .kind = SHOAL_ARG_REF | 8, .ref = a };
    CU_ASSERT_EQUAL(shoal_submit(t_ref_args, &odd, 1, NULL, &r), SHOAL_EINVAL);
    CHECK_OK(shoal_get_timeout(a, 0, &d, &n));   /* still ours, still alive */
    CU_ASSERT_EQUAL(n, 5);
    CHECK_OK(shoal_release(a));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* Releasing the result early is safe: the task's own reference keeps it until it ends,
 * and then the result is freed. */
static void test_result_released_early(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    int iters = 2000 / SAN_DIV;
    for (int i = 0; i < iters; i++) {
        shoal_ref r;
        unsigned char v = 1;
        shoal_arg a = SHOAL_VALUE(&v, 1);
        ASSERT_OK(shoal_submit(t_sum, &a, 1, NULL, &r));
        CHECK_OK(shoal_release(r));
    }
    /* No ref is left to wait on: wait until every task has ended. */
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().tasks_run - before.tasks_run, (uint64_t)iters);
    ASSERT_OK(shoal_shutdown());
}

/* ---- failing ------------------------------------------------------------------------------ */

static int t_fail(shoal_task *t)
{
    shoal_task_return(t, "partial", 7);   /* a failure discards a result already set */
    shoal_task_fail(t, "disk on fire: replace it");
    if (shoal_task_fail(t, "second") != SHOAL_EEXIST)
        return 5;
    if (shoal_task_return(t, "x", 1) != SHOAL_EEXIST)
        return 6;
    return 1;
}

static int t_return7(shoal_task *t) { (void)t; return 7; }

static int t_fail_default(shoal_task *t)
{
    shoal_task_fail(t, NULL);
    return 0;   /* a failed task fails even if it returns 0 */
}

static void test_failures(void)
{
    start_workers(2, 0);
    shoal_ref r;
    const void *d;
    size_t n;
    ASSERT_OK(shoal_submit(t_fail, NULL, 0, NULL, &r));
    CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_STRING_EQUAL(shoal_last_error(), "disk on fire: replace it");
    CHECK_OK(shoal_release(r));

    shoal_task_opts o = { .numa_node = -1, .name = "seven" };
    ASSERT_OK(shoal_submit(t_return7, NULL, 0, &o, &r));
    CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "task seven returned 7"));
    CHECK_OK(shoal_release(r));

    ASSERT_OK(shoal_submit(t_return7, NULL, 0, NULL, &r));
    CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "returned 7"));
    CHECK_OK(shoal_release(r));

    o.name = "quiet";
    ASSERT_OK(shoal_submit(t_fail_default, NULL, 0, &o, &r));
    CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "quiet"));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* ---- errors of the task calls ------------------------------------------------------------- */

static _Atomic int task_errors;

static int t_bad_calls(shoal_task *t)
{
    const void *d;
    size_t n;
    shoal_ref r;
    void *b;
    int bad = 0;
    bad += shoal_task_nargs(t) != 2;
    bad += shoal_task_nargs(NULL) != 0;
    bad += shoal_task_arg(t, 2, &d, &n) != SHOAL_EINVAL;          /* out of range */
    bad += shoal_task_arg(t, 1, &d, &n) != SHOAL_EINVAL;          /* REF_PASS */
    bad += shoal_task_arg(t, 0, NULL, &n) != SHOAL_EINVAL;
    bad += shoal_task_arg(NULL, 0, &d, &n) != SHOAL_EINVAL;
    bad += shoal_task_arg_ref(t, 0, &r) != SHOAL_EINVAL;          /* a VALUE */
    bad += shoal_task_arg_ref(t, 5, &r) != SHOAL_EINVAL;
    bad += shoal_task_arg_ref(t, 1, NULL) != SHOAL_EINVAL;
    bad += shoal_task_arg_ref(NULL, 1, &r) != SHOAL_EINVAL;
    bad += shoal_task_return(t, NULL, 5) != SHOAL_EINVAL;
    bad += shoal_task_return(NULL, "x", 1) != SHOAL_EINVAL;
    bad += shoal_task_return_buf(t, 1, NULL) != SHOAL_EINVAL;
    bad += shoal_task_return_buf(NULL, 1, &b) != SHOAL_EINVAL;
    bad += shoal_task_fail(NULL, "x") != SHOAL_EINVAL;
    bad += shoal_task_worker(NULL) != SHOAL_EINVAL;
    atomic_store(&task_errors, bad);
    return 0;
}

static void test_task_call_errors(void)
{
    start_workers(1, 0);
    shoal_ref p, r;
    ASSERT_OK(shoal_put("p", 1, &p));
    int v = 1;
    shoal_arg args[2] = { SHOAL_VALUE(&v, sizeof v), SHOAL_REF_PASS(p) };
    atomic_store(&task_errors, -1);
    ASSERT_OK(shoal_submit(t_bad_calls, args, 2, NULL, &r));
    const void *d;
    size_t n;
    CHECK_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL(atomic_load(&task_errors), 0);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_release(p));
    ASSERT_OK(shoal_shutdown());
}

static void test_submit_errors(void)
{
    test_reset();
    shoal_ref r = { 12345 };
    CU_ASSERT_EQUAL(shoal_submit(t_empty, NULL, 0, NULL, &r), SHOAL_ENOTINIT);
    CU_ASSERT_EQUAL(r.id, 12345);
    CU_ASSERT_EQUAL(shoal_worker_node(0), SHOAL_ENOTINIT);

    start_workers(2, 0);
    shoal_info before = info_now();
    CU_ASSERT_EQUAL(shoal_submit(NULL, NULL, 0, NULL, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "fn"));
    CU_ASSERT_EQUAL(shoal_submit(t_empty, NULL, 0, NULL, NULL), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(shoal_submit(t_empty, NULL, 2, NULL, &r), SHOAL_EINVAL);
    shoal_arg bad_kind = { .kind = 7 };
    CU_ASSERT_EQUAL(shoal_submit(t_empty, &bad_kind, 1, NULL, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "argument 0"));
    shoal_arg null_value = SHOAL_VALUE(NULL, 4);
    CU_ASSERT_EQUAL(shoal_submit(t_empty, &null_value, 1, NULL, &r), SHOAL_EINVAL);
    shoal_task_opts o = { .numa_node = 1 };   /* this machine's topology has one node */
    shoal_info in = info_now();
    if (in.numa_nodes == 1) {
        CU_ASSERT_EQUAL(shoal_submit(t_empty, NULL, 0, &o, &r), SHOAL_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "numa_node"));
    }
    o.numa_node = -2;
    CU_ASSERT_EQUAL(shoal_submit(t_empty, NULL, 0, &o, &r), SHOAL_EINVAL);

    /* A stale or forged REF fails the submit and leaves nothing behind: the references
     * taken on the arguments before it are given back. */
    shoal_ref a, gone;
    ASSERT_OK(shoal_put("a", 1, &a));
    ASSERT_OK(shoal_put("g", 1, &gone));
    CHECK_OK(shoal_release(gone));
    shoal_arg args[3] = { SHOAL_REF(a), SHOAL_REF_PASS(a), SHOAL_REF(gone) };
    CU_ASSERT_EQUAL(shoal_submit(t_empty, args, 3, NULL, &r), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "argument 2"));
    args[2] = SHOAL_REF_PASS(SHOAL_REF_NULL);
    CU_ASSERT_EQUAL(shoal_submit(t_empty, args, 3, NULL, &r), SHOAL_EINVAL);
    args[2] = SHOAL_REF(((shoal_ref){ 0x00ffffffffffffffull }));
    ASSERT_RC2(shoal_submit(t_empty, args, 3, NULL, &r), SHOAL_EINVAL, SHOAL_ESTALE);
    CHECK_OK(shoal_release(a));    /* the only reference left: the object goes */
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(shoal_get_timeout(a, 0, &d, &n), SHOAL_ESTALE);
    CU_ASSERT_EQUAL(info_now().objects_live, before.objects_live);

    CU_ASSERT_EQUAL(shoal_worker_node(2), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(shoal_worker_node(UINT32_MAX), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(shoal_worker_node(0), 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- workers ------------------------------------------------------------------------------ */

struct seen {
    _Atomic int worker;
    char name[32];
    cpu_set_t cpus;
    int affinity_rc;
};

static int t_where(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    struct seen *s;
    memcpy(&s, d, sizeof s);
    pthread_getname_np(pthread_self(), s->name, sizeof s->name);
    s->affinity_rc = pthread_getaffinity_np(pthread_self(), sizeof s->cpus, &s->cpus);
    atomic_store(&s->worker, shoal_task_worker(t));
    return 0;
}

/* Each worker is named shoal-w<N>, reports its index, and (on this machine) is pinned to
 * one CPU of its own. Tasks bound to no node run wherever; to reach every worker, each
 * task holds its worker until all have been seen. */
static _Atomic int gate_seen[64];
static _Atomic int gate_count;

static int t_gate(shoal_task *t)
{
    int w = shoal_task_worker(t);
    if (w < 0 || w >= 64)
        return 1;
    if (atomic_exchange(&gate_seen[w], 1) == 0)
        atomic_fetch_add(&gate_count, 1);
    return t_where(t);
}

static void test_worker_identity(void)
{
    enum { W = 2 };
    start_workers(W, 0);
    shoal_info in = info_now();
    CU_ASSERT_EQUAL(in.workers, W);
    struct seen s[64];
    memset(s, 0, sizeof s);
    memset((void *)gate_seen, 0, sizeof gate_seen);
    atomic_store(&gate_count, 0);
    /* Submit batches until every worker has run one (each runs whatever it takes). */
    int rounds = 0;
    while (atomic_load(&gate_count) < W && rounds < 200000) {
        struct seen *p = &s[rounds % 64];
        atomic_store(&p->worker, -1);
        shoal_arg a = SHOAL_VALUE(&p, sizeof p);
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_gate, &a, 1, NULL, &r));
        const void *d;
        size_t n;
        CHECK_OK(get_within(r, &d, &n));
        CHECK_OK(shoal_release(r));
        int w = atomic_load(&p->worker);
        CU_ASSERT(w >= 0 && w < W);
        char want[32];
        snprintf(want, sizeof want, "shoal-w%d", w);
        CU_ASSERT_STRING_EQUAL(p->name, want);
        CU_ASSERT_EQUAL(p->affinity_rc, 0);
        rounds++;
        if (rounds % 64 == 0) {
            /* Keep both busy at once: a burst reaches the sleeping one. Each task of it
             * writes a record of its own (they run at the same time). */
            static struct seen burst[32];
            shoal_ref rs[32];
            for (int i = 0; i < 32; i++) {
                struct seen *b = &burst[i];
                shoal_arg ba = SHOAL_VALUE(&b, sizeof b);
                ASSERT_OK(shoal_submit(t_gate, &ba, 1, NULL, &rs[i]));
            }
            for (int i = 0; i < 32; i++) {
                CHECK_OK(get_within(rs[i], &d, &n));
                CHECK_OK(shoal_release(rs[i]));
            }
        }
    }
    CU_ASSERT_EQUAL(atomic_load(&gate_count), W);
    ASSERT_OK(shoal_shutdown());
}

/* On this machine binding is real: a worker runs on exactly one CPU, its own. */
static void test_workers_pinned(void)
{
    start_workers(1, 0);
    struct seen s;
    memset(&s, 0, sizeof s);
    struct seen *p = &s;
    shoal_arg a = SHOAL_VALUE(&p, sizeof p);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_where, &a, 1, NULL, &r));
    const void *d;
    size_t n;
    CHECK_OK(get_within(r, &d, &n));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(s.affinity_rc, 0);
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) > 1)
        CU_ASSERT_EQUAL(CPU_COUNT(&s.cpus), 1);
}

static _Atomic long counted;
static int t_count(shoal_task *t)
{
    (void)t;
    atomic_fetch_add(&counted, 1);
    return 0;
}

static void test_info_counters(void)
{
    start_workers(2, 0);
    shoal_info a = info_now();
    CU_ASSERT_EQUAL(a.workers, 2);
    CU_ASSERT(a.numa_nodes >= 1);
    int n = 1000 / SAN_DIV;
    shoal_ref *rs = calloc((size_t)n, sizeof *rs);
    for (int i = 0; i < n; i++)
        ASSERT_OK(shoal_submit(t_count, NULL, 0, NULL, &rs[i]));
    for (int i = 0; i < n; i++) {
        const void *d;
        size_t len;
        CHECK_OK(get_within(rs[i], &d, &len));
        CHECK_OK(shoal_release(rs[i]));
    }
    free(rs);
    shoal_info b = info_now();
    CU_ASSERT_EQUAL(b.tasks_run - a.tasks_run, (uint64_t)n);
    CU_ASSERT(b.tasks_stolen >= a.tasks_stolen);
    ASSERT_OK(shoal_shutdown());
}

/* ---- foreign threads ---------------------------------------------------------------------- */

struct submitter {
    int id, n, bad;
    long sum;
};

static int t_square(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n) || n != sizeof(long))
        return 1;
    long v;
    memcpy(&v, d, sizeof v);
    v *= v;
    return shoal_task_return(t, &v, sizeof v);
}

static void *submit_main(void *p)
{
    struct submitter *s = p;
    enum { WINDOW = 64 };
    shoal_ref w[WINDOW];
    int have = 0;
    for (int i = 0; i < s->n; i++) {
        long v = s->id * 100000L + i;
        shoal_arg a = SHOAL_VALUE(&v, sizeof v);
        if (shoal_submit(t_square, &a, 1, NULL, &w[have]) != 0) {
            s->bad++;
            continue;
        }
        if (++have == WINDOW || i == s->n - 1) {
            for (int k = 0; k < have; k++) {
                int rc;
                long r = take_long(w[k], &rc);
                if (rc)
                    s->bad++;
                else
                    s->sum += r;
            }
            have = 0;
        }
    }
    return NULL;
}

static void test_foreign_threads(void)
{
    start_workers(2, 0);
    enum { T = 4 };
    struct submitter s[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        s[i] = (struct submitter){ .id = i, .n = 20000 / SAN_DIV };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, submit_main, &s[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        long want = 0;
        for (int k = 0; k < s[i].n; k++) {
            long v = s[i].id * 100000L + k;
            want += v * v;
        }
        CU_ASSERT_EQUAL(s[i].bad, 0);
        CU_ASSERT_EQUAL(s[i].sum, want);
    }
    ASSERT_OK(shoal_shutdown());
}

/* Tasks submit tasks: a worker's submissions go to its own deque. */
static int t_spawner(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    int k;
    memcpy(&k, d, sizeof k);
    shoal_ref rs[16];
    long total = 0;
    for (int i = 0; i < k; i++) {
        long v = i;
        shoal_arg a = SHOAL_VALUE(&v, sizeof v);
        if (shoal_submit(t_square, &a, 1, NULL, &rs[i]))
            return 2;
    }
    for (int i = 0; i < k; i++) {
        int rc;
        total += take_long(rs[i], &rc);
        if (rc)
            return 3;
    }
    return shoal_task_return(t, &total, sizeof total);
}

/* Workers whose own deques never empty (each task resubmits itself) must still run a task
 * submitted from outside: the injection queues get a turn every so many picks. */
static _Atomic int spinners_stop;

static int spinner(shoal_task *t)
{
    (void)t;
    struct timespec d = { 0, 0 }, now;
    clock_gettime(CLOCK_MONOTONIC, &d);
    do   /* ~50 us of work, so the deques stay busy */
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - d.tv_sec) * 1000000000L + (now.tv_nsec - d.tv_nsec) < 50000);
    if (!atomic_load_explicit(&spinners_stop, memory_order_relaxed)) {
        shoal_ref r;
        if (shoal_submit(spinner, NULL, 0, NULL, &r) == 0)
            shoal_release(r);
    }
    return 0;
}

static int noop(shoal_task *t)
{
    (void)t;
    return 0;
}

static void test_outside_task_not_starved(void)
{
    start_workers(2, 0);
    atomic_store(&spinners_stop, 0);
    for (int i = 0; i < 4; i++) {
        shoal_ref r;
        ASSERT_OK(shoal_submit(spinner, NULL, 0, NULL, &r));
        shoal_release(r);
    }
    shoal_ref h;
    ASSERT_OK(shoal_submit(noop, NULL, 0, NULL, &h));
    const void *d;
    size_t n;
    int rc = shoal_get_timeout(h, 10 * 1000000000LL, &d, &n);
    atomic_store(&spinners_stop, 1);
    CU_ASSERT_EQUAL(rc, 0);
    shoal_release(h);
    CU_ASSERT_EQUAL(shoal_shutdown(), 0);
}

static void test_tasks_submit_tasks(void)
{
    start_workers(2, 0);
    int n = 500 / SAN_DIV;
    for (int i = 0; i < n; i++) {
        int k = 16;
        shoal_arg a = SHOAL_VALUE(&k, sizeof k);
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_spawner, &a, 1, NULL, &r));
        int rc;
        CU_ASSERT_EQUAL(take_long(r, &rc), 1240);   /* sum of squares 0..15 */
        CHECK_OK(rc);
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- small results --------------------------------------------------------------------- */

/* Returns arg 0 (a length 0..16) bytes 'a'+i; with arg 1 nonzero through return_buf; with
 * arg 2 nonzero it then fails. */
static int t_small(shoal_task *t)
{
    long len = arg_long(t, 0), buf = arg_long(t, 1), fail = arg_long(t, 2);
    char b[16];
    for (long i = 0; i < len; i++)
        b[i] = (char)('a' + i);
    if (buf) {
        void *p;
        int rc = shoal_task_return_buf(t, (size_t)len, &p);
        if (rc)
            return rc;
        if (len)
            memcpy(p, b, (size_t)len);
    } else if (shoal_task_return(t, b, (size_t)len)) {
        return 1;
    }
    if (fail)
        shoal_task_fail(t, "small result, then failed");
    return 0;
}

/* Reads its REF argument and returns its length and first byte. */
static int t_read_ref(shoal_task *t)
{
    const void *d;
    size_t n;
    int rc = shoal_task_arg(t, 0, &d, &n);
    if (rc)
        return rc;
    long v = (long)n * 1000 + (n ? ((const unsigned char *)d)[0] : 0);
    return shoal_task_return(t, &v, sizeof v);
}

static bool small_bytes_ok(const void *d, size_t n, long len)
{
    if (n != (size_t)len)
        return false;
    for (long i = 0; i < len; i++)
        if (((const char *)d)[i] != (char)('a' + i))
            return false;
    return true;
}

/* A result of at most 8 bytes is held in its object's table slot rather than in store
 * bytes (a fifth of a small task's cost was allocating and freeing them): every way of
 * reading it sees the same bytes, a dependent reads it as an argument, 100 of them held at
 * once take no store bytes (the 9-byte ones do), and one that failed after returning keeps
 * its message and leaks nothing. */
static void test_small_results(void)
{
    start_workers(2, 0);
    enum { HELD = 100 };
    static shoal_ref held[HELD];
    for (long len = 0; len <= 9; len++) {
        for (long buf = 0; buf < 2; buf++) {
            long a[3] = { len, buf, 0 };
            shoal_arg args[3] = { SHOAL_VALUE(&a[0], sizeof a[0]), SHOAL_VALUE(&a[1], sizeof a[1]),
                                  SHOAL_VALUE(&a[2], sizeof a[2]) };
            shoal_ref r, q;
            ASSERT_OK(shoal_submit(t_small, args, 3, NULL, &r));
            const void *d = NULL;
            size_t n = 99;
            CHECK_OK(get_within(r, &d, &n));
            CU_ASSERT(small_bytes_ok(d, n, len));
            CHECK_OK(shoal_get(r, &d, &n));                        /* the inline lookup */
            CU_ASSERT(small_bytes_ok(d, n, len));
            CHECK_OK((shoal_get)(r, &d, &n));                      /* the library's */
            CU_ASSERT(small_bytes_ok(d, n, len));
            CHECK_OK(shoal_get_timeout(r, 0, &d, &n));             /* the slow path */
            CU_ASSERT(small_bytes_ok(d, n, len));
            CU_ASSERT(shoal_object_node(r) >= 0);
            shoal_arg ra = SHOAL_REF(r);
            ASSERT_OK(shoal_submit(t_read_ref, &ra, 1, NULL, &q));
            int rc;
            CU_ASSERT_EQUAL(get_long(q, &rc), len * 1000 + (len ? 'a' : 0));
            CHECK_OK(rc);
            CHECK_OK(shoal_release(q));
            CHECK_OK(shoal_release(r));
        }
    }
    for (long len = 8; len <= 9; len++) {
        CU_ASSERT_EQUAL(live_settled(0), 0);
        size_t used0 = info_now().bytes_used;
        for (int i = 0; i < HELD; i++) {
            long a[3] = { len, i % 2, 0 };
            shoal_arg args[3] = { SHOAL_VALUE(&a[0], sizeof a[0]), SHOAL_VALUE(&a[1], sizeof a[1]),
                                  SHOAL_VALUE(&a[2], sizeof a[2]) };
            ASSERT_OK(shoal_submit(t_small, args, 3, NULL, &held[i]));
        }
        for (int i = 0; i < HELD; i++) {
            const void *d;
            size_t n;
            CHECK_OK(get_within(held[i], &d, &n));
            CU_ASSERT(small_bytes_ok(d, n, len));
        }
        size_t used = info_now().bytes_used;
        if (len == 8) {
            CU_ASSERT_EQUAL(used, used0);   /* held in their slots */
        } else {
            CU_ASSERT(used >= used0 + HELD * 9);
        }
        for (int i = 0; i < HELD; i++)
            CHECK_OK(shoal_release(held[i]));
    }
    CU_ASSERT_EQUAL(live_settled(0), 0);
    size_t used0 = info_now().bytes_used;
    for (long len = 1; len <= 9; len += 8) {
        long a[3] = { len, 0, 1 };
        shoal_arg args[3] = { SHOAL_VALUE(&a[0], sizeof a[0]), SHOAL_VALUE(&a[1], sizeof a[1]),
                              SHOAL_VALUE(&a[2], sizeof a[2]) };
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_small, args, 3, NULL, &r));
        const void *d;
        size_t n;
        CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
        CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "small result, then failed"));
        CHECK_OK(shoal_release(r));
    }
    CU_ASSERT_EQUAL(live_settled(0), 0);
    CU_ASSERT_EQUAL(info_now().bytes_used, used0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- the small task ------------------------------------------------------------------------
 * shoal_submit's short path takes at most two VALUE arguments of at most 16 bytes each and no
 * options; these shapes sit at and past each bound (and a NULL VALUE of 0 bytes, which it
 * leaves to the general path), submitted from this thread (the global queue) and from inside
 * a task (the worker's own deque). Each task sums its argument bytes. */
static const size_t shape_len[][3] = {   /* nargs, then each argument's length */
    { 0, 0, 0 }, { 1, 0, 0 }, { 1, 1, 0 }, { 1, 8, 0 }, { 1, 15, 0 }, { 1, 16, 0 },
    { 1, 17, 0 }, { 2, 16, 16 }, { 2, 8, 17 }, { 2, 4, 0 }, { 3, 1, 1 },
};
#define NSHAPES (sizeof shape_len / sizeof shape_len[0])

/* Submit every shape (twice: once with its last argument a NULL VALUE of 0 bytes) and check
 * each sum; the number of wrong answers. */
static int run_shapes(void)
{
    unsigned char bytes[3][32];
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 32; k++)
            bytes[i][k] = (unsigned char)(i * 40 + k + 1);
    for (size_t s = 0; s < NSHAPES; s++) {
        for (int null_last = 0; null_last < 2; null_last++) {
            size_t nargs = shape_len[s][0];
            shoal_arg args[3];
            long want = 0;
            for (size_t i = 0; i < nargs; i++) {
                bool null = null_last && i + 1 == nargs;
                size_t len = null ? 0 : i < 2 ? shape_len[s][1 + i] : 1;
                args[i] = SHOAL_VALUE(null ? NULL : bytes[i], len);
                for (size_t k = 0; k < len; k++)
                    want += bytes[i][k];
            }
            shoal_ref r;
            if (shoal_submit(t_sum, nargs ? args : NULL, nargs, NULL, &r) != 0) {
                bad++;
                continue;
            }
            int rc;
            long got = get_long(r, &rc);
            if (rc != 0 || got != want)
                bad++;
            if (shoal_release(r) != 0)
                bad++;
        }
    }
    return bad;
}

static int t_shapes(shoal_task *t)
{
    long bad = run_shapes();
    return shoal_task_return(t, &bad, sizeof bad);
}

static void test_small_task_shapes(void)
{
    start_workers(2, 0);
    CU_ASSERT_EQUAL(run_shapes(), 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_shapes, NULL, 0, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 0);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(live_settled(0), 0);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "empty result", test_empty_result },
        { "VALUE args are copied at submit", test_value_args_copied },
        { "many args (heap block)", test_many_args },
        { "return_buf is zero-copy, once", test_return_buf },
        { "REF and REF_PASS args", test_ref_and_ref_pass },
        { "refs released right after submit", test_refs_released_after_submit },
        { "refs moved to the task", test_refs_moved },
        { "result released early", test_result_released_early },
        { "failures carry their message", test_failures },
        { "task call errors", test_task_call_errors },
        { "submit errors leave nothing behind", test_submit_errors },
        { "worker names and indices", test_worker_identity },
        { "workers are pinned", test_workers_pinned },
        { "info counters", test_info_counters },
        { "4 foreign threads submit at once", test_foreign_threads },
        { "tasks submit tasks", test_tasks_submit_tasks },
        { "a task from outside is not starved by self-feeding workers", test_outside_task_not_starved },
        { "small results are held in their slots", test_small_results },
        { "small task shapes, at and past the short path's bounds", test_small_task_shapes },
        { NULL, NULL },
    };
    return shoal_test_run("tasks", cases);
}
