/* test_task_wait.c - waiting on task results: shoal_get, shoal_get_timeout and shoal_wait
 * from the main thread and inside tasks. Inside a task a wait never deadlocks, even with
 * one worker: the waiting worker runs other tasks meanwhile (fib with every call a task,
 * a task waiting for work submitted later from outside). Black-box through shoal.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"
#include "lib/tasks.h"

/* fib with every call a task, each waiting for its two children. */
static int t_fib(shoal_task *t)
{
    long n = arg_long(t, 0), r;
    if (n < 2) {
        r = n;
        return shoal_task_return(t, &r, sizeof r);
    }
    shoal_ref ra, rb;
    int rc = fib_children(t_fib, n, &ra, &rb);
    if (rc)
        return rc;
    int rca, rcb;
    r = get_long(ra, &rca) + get_long(rb, &rcb);
    shoal_release(ra);
    shoal_release(rb);
    if (rca || rcb)
        return 1;
    return shoal_task_return(t, &r, sizeof r);
}

static void test_fib_one_worker(void) { run_fib_tasks(t_fib, 1, SAN_DIV > 1 ? 15 : 20, false); }
static void test_fib_two_workers(void) { run_fib_tasks(t_fib, 2, SAN_DIV > 1 ? 15 : 22, false); }
static void test_fib_more_workers_than_cores(void) { run_fib_tasks(t_fib, 5, SAN_DIV > 1 ? 14 : 18, false); }

/* Results that depend on an unsealed object stay pending: timeouts expire, polls answer at
 * once, shoal_wait counts what is ready; sealing completes them all. */
static int t_copy(shoal_task *t)
{
    long v = arg_long(t, 0);
    return shoal_task_return(t, &v, sizeof v);
}

static void test_timeouts_and_wait(void)
{
    start_workers(2, 1u << 20);
    void *buf;
    shoal_ref x;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    enum { N = 6 };
    shoal_ref r[N];
    for (int i = 0; i < N; i++) {
        long v = i;
        shoal_arg a = i < 2 ? SHOAL_VALUE(&v, sizeof v) : SHOAL_REF(x);
        ASSERT_OK(shoal_submit(t_copy, &a, 1, NULL, &r[i]));
    }
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(shoal_get_timeout(r[3], 0, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(shoal_get_timeout(r[3], 2000000, &d, &n), SHOAL_ETIMEDOUT);
    bool ready[N];
    /* r[0], r[1] complete soon; the rest wait on x. */
    CU_ASSERT_EQUAL(shoal_wait(r, N, 2, -1, ready), 2);
    CU_ASSERT(ready[0] && ready[1]);
    CU_ASSERT_EQUAL(shoal_wait(r, N, N, 2000000, ready), 2);   /* fewer at the timeout */
    CU_ASSERT(!ready[2] && !ready[5]);
    CU_ASSERT_EQUAL(shoal_wait(r, N, 3, 0, NULL), 2);           /* a poll */
    long v = 77;
    memcpy(buf, &v, sizeof v);
    CHECK_OK(shoal_seal(x));
    CU_ASSERT_EQUAL(shoal_wait(r, N, N, -1, ready), N);
    for (int i = 0; i < N; i++) {
        CU_ASSERT(ready[i]);
        int rc;
        CU_ASSERT_EQUAL(get_long(r[i], &rc), i < 2 ? i : 77);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(r[i]));
    }
    CU_ASSERT_EQUAL(shoal_wait(r, 1, 1, 0, NULL), SHOAL_ESTALE);
    CHECK_OK(shoal_release(x));
    ASSERT_OK(shoal_shutdown());
}

/* Inside a task on the only worker: a timed get on an object nobody completes times out;
 * shoal_wait on the task's own children returns once enough are done. */
static int t_waits_inside(shoal_task *t)
{
    shoal_ref x;
    if (shoal_task_arg_ref(t, 0, &x))
        return 1;
    const void *d;
    size_t n;
    if (shoal_get_timeout(x, 1000000, &d, &n) != SHOAL_ETIMEDOUT)
        return 2;
    if (shoal_get_timeout(x, 0, &d, &n) != SHOAL_ETIMEDOUT)
        return 3;
    enum { K = 8 };
    shoal_ref r[K];
    for (long i = 0; i < K; i++) {
        shoal_arg a = SHOAL_VALUE(&i, sizeof i);
        if (shoal_submit(t_copy, &a, 1, NULL, &r[i]))
            return 4;
    }
    bool ready[K];
    int c = shoal_wait(r, K, K / 2, -1, ready);
    int bad = c < K / 2;
    c = shoal_wait(r, K, K, -1, ready);
    bad |= c != K;
    long sum = 0;
    for (int i = 0; i < K; i++) {
        int rc;
        sum += get_long(r[i], &rc);
        bad |= rc != 0 || !ready[i];
        shoal_release(r[i]);
    }
    if (bad || sum != K * (K - 1) / 2)
        return 5;
    return shoal_task_return(t, &sum, sizeof sum);
}

static void test_wait_inside_task(void)
{
    start_workers(1, 1u << 20);
    void *buf;
    shoal_ref x, r;
    ASSERT_OK(shoal_create(1, &buf, &x));
    shoal_arg a = SHOAL_REF_PASS(x);
    ASSERT_OK(shoal_submit(t_waits_inside, &a, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 28);
    CHECK_OK(rc);
    if (rc)
        fprintf(stderr, "  %s\n", shoal_last_error());
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_release(x));
    ASSERT_OK(shoal_shutdown());
}

/* The only worker waits inside a task for an object that a task submitted later, from
 * outside, completes: the waiting worker must pick that task up. */
static _Atomic int waiter_started;

static int t_wait_for(shoal_task *t)
{
    shoal_ref x;
    if (shoal_task_arg_ref(t, 0, &x))
        return 1;
    atomic_store(&waiter_started, 1);
    const void *d;
    size_t n;
    int rc = get_within(x, &d, &n);
    if (rc)
        return 2;
    long v;
    memcpy(&v, d, sizeof v);
    return shoal_task_return(t, &v, sizeof v);
}

static int t_seal(shoal_task *t)
{
    shoal_ref x;
    const void *d;
    size_t n;
    if (shoal_task_arg_ref(t, 0, &x) || shoal_task_arg(t, 1, &d, &n))
        return 1;
    void *buf;
    memcpy(&buf, d, sizeof buf);
    long v = 5150;
    memcpy(buf, &v, sizeof v);
    return shoal_seal(x);
}

/* The worker, asleep inside t_wait_for, is woken by the new task (futex_waitv on its node's
 * word and the completion word), or with nap_only (SHOAL_NO_FUTEX_WAITV, as on kernels
 * before 5.16) finds it when its 1 ms nap ends. */
static void one_worker_waits_for_later_work(bool nap_only)
{
    if (nap_only)
        setenv("SHOAL_NO_FUTEX_WAITV", "1", 1);
    start_workers(1, 1u << 20);
    unsetenv("SHOAL_NO_FUTEX_WAITV");   /* read at start */
    atomic_store(&waiter_started, 0);
    void *buf;
    shoal_ref x, w, s;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    shoal_arg a = SHOAL_REF_PASS(x);
    ASSERT_OK(shoal_submit(t_wait_for, &a, 1, NULL, &w));
    for (int i = 0; i < 20000 && !atomic_load(&waiter_started); i++)
        nap_ms(1);
    CU_ASSERT_FATAL(atomic_load(&waiter_started));
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);   /* long enough for the waiter to be asleep (not asserted) */
    shoal_arg b[2] = { SHOAL_REF_PASS(x), SHOAL_VALUE(&buf, sizeof buf) };
    ASSERT_OK(shoal_submit(t_seal, b, 2, NULL, &s));
    int rc;
    CU_ASSERT_EQUAL(get_long(w, &rc), 5150);
    CHECK_OK(rc);
    const void *d;
    size_t n;
    CHECK_OK(get_within(s, &d, &n));
    CHECK_OK(shoal_release(w));
    CHECK_OK(shoal_release(s));
    CHECK_OK(shoal_release(x));
    ASSERT_OK(shoal_shutdown());
}

static void test_one_worker_waits_for_later_work(void) { one_worker_waits_for_later_work(false); }
static void test_one_worker_naps_for_later_work(void) { one_worker_waits_for_later_work(true); }

/* Waiting on a failed child inside a task: the error and message come back to the task. */
static int t_child_fails(shoal_task *t)
{
    (void)t;
    return 3;
}

static int t_parent(shoal_task *t)
{
    shoal_task_opts o = { .numa_node = -1, .name = "kid" };
    shoal_ref r;
    if (shoal_submit(t_child_fails, NULL, 0, &o, &r))
        return 1;
    const void *d;
    size_t n;
    int rc = get_within(r, &d, &n);
    char msg[128];
    snprintf(msg, sizeof msg, "parent saw: %s", shoal_last_error());
    shoal_release(r);
    if (rc != SHOAL_ETASK)
        return 2;
    return shoal_task_fail(t, msg) == 0 ? 1 : 3;
}

static void test_child_failure_seen_by_parent(void)
{
    start_workers(1, 1u << 20);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_parent, NULL, 0, NULL, &r));
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_STRING_EQUAL(shoal_last_error(), "parent saw: task kid returned 3");
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* A chain of nested waits on the only worker: each task submits the next and waits for
 * it, so the waits nest on the worker's stack, one level per task. */
static int t_nest(shoal_task *t)
{
    long depth = arg_long(t, 0);
    if (depth == 0)
        return shoal_task_return(t, &depth, sizeof depth);
    long next = depth - 1;
    shoal_arg a = SHOAL_VALUE(&next, sizeof next);
    shoal_ref r;
    if (shoal_submit(t_nest, &a, 1, NULL, &r))
        return 1;
    int rc;
    long v = get_long(r, &rc) + 1;
    shoal_release(r);
    if (rc)
        return 2;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_deeply_nested_waits(void)
{
    start_workers(1, 1u << 20);
    long depth = SAN_DIV > 1 ? 2000 : 10000;
    shoal_arg a = SHOAL_VALUE(&depth, sizeof depth);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_nest, &a, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), depth);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "fib with nested tasks on ONE worker", test_fib_one_worker },
        { "fib with nested tasks on two workers", test_fib_two_workers },
        { "fib on more workers than cores", test_fib_more_workers_than_cores },
        { "timeouts, polls and shoal_wait on task results", test_timeouts_and_wait },
        { "timed waits and shoal_wait inside a task", test_wait_inside_task },
        { "one worker waits for work submitted later", test_one_worker_waits_for_later_work },
        { "the same without futex_waitv (1 ms naps)", test_one_worker_naps_for_later_work },
        { "a parent sees its child's failure", test_child_failure_seen_by_parent },
        { "deeply nested waits on one worker", test_deeply_nested_waits },
        { NULL, NULL },
    };
    return shoal_test_run("task_wait", cases);
}
