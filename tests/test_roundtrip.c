/* test_roundtrip.c - a thread outside the workers that submits a task and gets its result
 * (a round trip) runs the task itself when no worker has taken it yet, so that a round trip
 * needs no worker and makes no system call: counted (shoal_stats.worker_wakes, wait_sleeps)
 * and shown with the only worker busy, where the get could otherwise only wait. A timed get
 * never runs the task: it keeps its bound.
 * Every blocking call has a bound: the round trips run on a thread joined with a deadline.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

#define JOIN_S 60                          /* a round-trip thread that hangs fails after this */

static shoal_stats stats_now(void)
{
    shoal_stats s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(shoal_stats_get(&s, sizeof s), 0);
    return s;
}

/* Holds the only worker until `release` is set (bounded: 60 s), after saying it started. */
static _Atomic int busy_started, release;
static int t_busy(shoal_task *t)
{
    (void)t;
    atomic_store(&busy_started, 1);
    for (int i = 0; i < 60000 && !atomic_load(&release); i++)
        nap_ms(1);
    return 0;
}

/* Records the worker it ran on: -1 when the thread that got it ran it. */
static _Atomic int ran_here, ran_on_worker;
static int t_where(shoal_task *t)
{
    if (shoal_task_worker(t) < 0)
        atomic_fetch_add(&ran_here, 1);
    else
        atomic_fetch_add(&ran_on_worker, 1);
    long v = 42;
    return shoal_task_return(t, &v, sizeof v);
}

struct trips { int n, failed; };

/* n submit + get (no time limit: the one that may run the task) + release round trips. */
static void *round_trips(void *p)
{
    struct trips *a = p;
    for (int i = 0; i < a->n; i++) {
        shoal_ref r;
        const void *d;
        size_t len;
        int rc = shoal_submit(t_where, NULL, 0, NULL, &r);
        if (rc == 0) {
            rc = shoal_get(r, &d, &len);
            if (rc == 0 && (len != sizeof(long) || *(const long *)d != 42))
                rc = -100;
            shoal_release(r);
        }
        if (rc) {
            fprintf(stderr, "round trip %d: %d (%s)\n", i, rc, shoal_last_error());
            a->failed++;
            break;
        }
    }
    return NULL;
}

/* Run the round trips on a thread and join it within JOIN_S; on a hang, let the busy task
 * go (so the gets can finish) and fail. */
static void run_trips(struct trips *a)
{
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, round_trips, a) == 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += JOIN_S;
    int jr = pthread_timedjoin_np(th, NULL, &ts);
    if (jr != 0) {
        fprintf(stderr, "the round trips did not finish within %d s\n", JOIN_S);
        atomic_store(&release, 1);
        pthread_join(th, NULL);
    }
    CU_ASSERT_EQUAL(jr, 0);
    CU_ASSERT_EQUAL(a->failed, 0);
}

/* A runtime with one worker, held by t_busy; the counters of t_where at zero. */
static shoal_ref hold_the_worker(void)
{
    start_workers(1, 0);
    atomic_store(&ran_here, 0);
    atomic_store(&ran_on_worker, 0);
    atomic_store(&busy_started, 0);
    atomic_store(&release, 0);
    shoal_ref b;
    ASSERT_OK(shoal_submit(t_busy, NULL, 0, NULL, &b));
    for (int i = 0; i < 60000 && !atomic_load(&busy_started); i++)
        nap_ms(1);
    CU_ASSERT_FATAL(atomic_load(&busy_started));
    return b;
}

static void let_the_worker_go(shoal_ref b)
{
    const void *d;
    size_t len;
    atomic_store(&release, 1);
    CHECK_OK(get_within(b, &d, &len));
    CHECK_OK(shoal_release(b));
}

/* With the one worker held by a task, a get can only finish if its caller runs the task:
 * main before this change waited for the worker (the test failed at its join bound). None
 * of the round trips wakes a worker or sleeps in the kernel. */
static void test_get_runs_own_task(void)
{
    shoal_ref b = hold_the_worker();
    shoal_stats s0 = stats_now();
    shoal_info i0 = info_now();
    struct trips a = { .n = 1000 };
    run_trips(&a);
    shoal_stats s1 = stats_now();
    shoal_info i1 = info_now();
    printf("[%d run by their caller, %d by the worker; %llu worker wakes, %llu sleeps] ",
           atomic_load(&ran_here), atomic_load(&ran_on_worker),
           (unsigned long long)(s1.worker_wakes - s0.worker_wakes),
           (unsigned long long)(s1.wait_sleeps - s0.wait_sleeps));
    CU_ASSERT_EQUAL(atomic_load(&ran_here), a.n);
    CU_ASSERT_EQUAL(atomic_load(&ran_on_worker), 0);
    CU_ASSERT_EQUAL(s1.worker_wakes - s0.worker_wakes, 0);
    CU_ASSERT_EQUAL(s1.wait_sleeps - s0.wait_sleeps, 0);
    CU_ASSERT_EQUAL(i1.tasks_run - i0.tasks_run, (uint64_t)a.n);   /* counted as run */
    let_the_worker_go(b);
    CU_ASSERT_EQUAL(live_settled(0), 0);
    ASSERT_OK(shoal_shutdown());
}

/* A task with REF arguments, complete when it is submitted (Ray's driver passing objects
 * it put), is queued at once and its caller runs it too; one whose argument is sealed only
 * later waits for it, queued by the seal, and is still its caller's to run. */
static int t_sum_refs(shoal_task *t)
{
    long v = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++)
        v += arg_long(t, i);
    if (shoal_task_worker(t) < 0)
        atomic_fetch_add(&ran_here, 1);
    return shoal_task_return(t, &v, sizeof v);
}

static void test_get_runs_own_task_with_refs(void)
{
    shoal_ref b = hold_the_worker();
    long x = 40, y = 2;
    shoal_ref rx, ry, r;
    ASSERT_OK(shoal_put(&x, sizeof x, &rx));
    void *buf;
    ASSERT_OK(shoal_create(sizeof y, &buf, &ry));
    shoal_arg a[2] = { SHOAL_REF(rx), SHOAL_REF(ry) };
    const void *d;
    size_t len;
    /* complete arguments: queued at submit */
    ASSERT_OK(shoal_submit(t_sum_refs, a, 1, NULL, &r));
    CHECK_OK(shoal_get(r, &d, &len));
    CU_ASSERT(len == sizeof x && *(const long *)d == 40);
    CHECK_OK(shoal_release(r));
    /* one argument sealed after the submit, by this thread: queued by the seal */
    ASSERT_OK(shoal_submit(t_sum_refs, a, 2, NULL, &r));
    memcpy(buf, &y, sizeof y);
    CHECK_OK(shoal_seal(ry));
    CHECK_OK(shoal_get(r, &d, &len));
    CU_ASSERT(len == sizeof x && *(const long *)d == 42);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(atomic_load(&ran_here), 2);
    CHECK_OK(shoal_release(rx));
    CHECK_OK(shoal_release(ry));
    let_the_worker_go(b);
    CU_ASSERT_EQUAL(live_settled(0), 0);
    ASSERT_OK(shoal_shutdown());
}

/* A timed get keeps its bound: it waits (here, times out) rather than run the task, which
 * the worker runs once free. */
static void test_timed_get_does_not_run(void)
{
    shoal_ref b = hold_the_worker();
    shoal_ref r;
    const void *d;
    size_t len;
    ASSERT_OK(shoal_submit(t_where, NULL, 0, NULL, &r));
    CHECK_RC(shoal_get_timeout(r, 20 * 1000000, &d, &len), SHOAL_ETIMEDOUT);
    CHECK_RC(shoal_get_timeout(r, 0, &d, &len), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(atomic_load(&ran_here), 0);
    let_the_worker_go(b);
    CHECK_OK(get_within(r, &d, &len));
    CU_ASSERT_EQUAL(atomic_load(&ran_on_worker), 1);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* Canceled before the get: the get answers at once and the task never runs, whoever takes
 * it from the queue (here the worker, once free). */
static void test_canceled_not_run(void)
{
    shoal_ref b = hold_the_worker();
    shoal_ref r;
    const void *d;
    size_t len;
    ASSERT_OK(shoal_submit(t_where, NULL, 0, NULL, &r));
    CHECK_OK(shoal_cancel(r));
    CHECK_RC(shoal_get(r, &d, &len), SHOAL_ECANCELED);
    CHECK_OK(shoal_release(r));
    let_the_worker_go(b);
    CU_ASSERT_EQUAL(live_settled(0), 0);
    CU_ASSERT_EQUAL(atomic_load(&ran_here) + atomic_load(&ran_on_worker), 0);
    ASSERT_OK(shoal_shutdown());
}

/* Round trips from one thread with the workers asleep at the start: a runtime that woke a
 * worker for each submit would count one wake per round trip (and, waiting for it, a sleep
 * of the getter). Here the getter runs what no worker took, and the worker woken first
 * keeps spinning while the queue moves: a few wakes, each time the queue stood still for
 * longer than a worker spins (20 us): 0-40 in 2000 on 2 cores shared by ten busy processes;
 * under ASan up to ~120, under TSan, whose round trip itself takes about that long, up to
 * ~800. The bound is loose on purpose: it separates "per submit" from "now and then", it
 * does not measure speed: half the round trips, and under a sanitizer fewer than one per
 * round trip (SAN_DIV > 1). */
static void test_no_wake_per_submit(void)
{
    start_workers(2, 0);
    nap_ms(50);                               /* every worker asleep */
    shoal_stats s0 = stats_now();
    struct trips a = { .n = 2000 };
    run_trips(&a);
    shoal_stats s1 = stats_now();
    uint64_t wakes = s1.worker_wakes - s0.worker_wakes;
    uint64_t sleeps = s1.wait_sleeps - s0.wait_sleeps;
    printf("[%d round trips: %llu worker wakes, %llu getter sleeps] ", a.n,
           (unsigned long long)wakes, (unsigned long long)sleeps);
    CU_ASSERT(wakes + sleeps < (SAN_DIV > 1 ? (uint64_t)a.n : (uint64_t)a.n / 2));
    ASSERT_OK(shoal_shutdown());
}

/* A chain: each task submits the next and gets it with no time limit. Started from a
 * thread with a small stack while the only worker is held, the chain's first tasks run on
 * that thread, nested in its gets, but only a few deep (8): then that thread waits, and the
 * rest runs on the worker (a 64 MiB stack) once it is let go. Without the cap, the thread
 * ran all CHAIN levels nested on its 512 KiB stack (or overflowed it). */
enum { CHAIN = 5000, NEST_MAX = 8 };
static _Atomic int chain_here;
static int t_chain(shoal_task *t)
{
    long n = arg_long(t, 0), v = 0;
    if (shoal_task_worker(t) < 0)
        atomic_fetch_add(&chain_here, 1);
    if (n > 0) {
        long m = n - 1;
        shoal_arg a = SHOAL_VALUE(&m, sizeof m);
        shoal_ref r;
        const void *d;
        size_t len;
        if (shoal_submit(t_chain, &a, 1, NULL, &r))
            return 1;
        int rc = shoal_get(r, &d, &len);
        if (rc == 0 && len == sizeof v)
            memcpy(&v, d, sizeof v);
        shoal_release(r);
        if (rc)
            return 1;
        v++;
    }
    return shoal_task_return(t, &v, sizeof v);
}

static void *chain_thread(void *p)
{
    long n = CHAIN, *out = p;
    shoal_arg a = SHOAL_VALUE(&n, sizeof n);
    shoal_ref r;
    if (shoal_submit(t_chain, &a, 1, NULL, &r) == 0) {
        const void *d;
        size_t len;
        if (shoal_get(r, &d, &len) == 0 && len == sizeof *out)   /* may run it here */
            memcpy(out, d, sizeof *out);
        shoal_release(r);
    }
    return NULL;
}

static void test_deep_chain_small_stack(void)
{
    shoal_ref b = hold_the_worker();
    atomic_store(&chain_here, 0);
    long got = -1;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 512 << 10);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, &at, chain_thread, &got) == 0);
    pthread_attr_destroy(&at);
    /* The thread runs what it may (bounded wait), then the worker is let go. */
    for (int i = 0; i < 10000 && atomic_load(&chain_here) < NEST_MAX; i++)
        nap_ms(1);
    nap_ms(20);
    let_the_worker_go(b);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += JOIN_S;
    CU_ASSERT_EQUAL_FATAL(pthread_timedjoin_np(th, NULL, &ts), 0);
    printf("[%d of %d levels on the calling thread] ", atomic_load(&chain_here), CHAIN + 1);
    CU_ASSERT_EQUAL(got, CHAIN);
    CU_ASSERT(atomic_load(&chain_here) >= 1 && atomic_load(&chain_here) <= NEST_MAX);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "a get with no time limit runs its own task", test_get_runs_own_task },
        { "... and its task with REF arguments", test_get_runs_own_task_with_refs },
        { "a timed get never runs the task", test_timed_get_does_not_run },
        { "a canceled task is not run by the get", test_canceled_not_run },
        { "round trips: no worker wake per submit", test_no_wake_per_submit },
        { "a deep chain from a small stack", test_deep_chain_small_stack },
        { NULL, NULL },
    };
    return shoal_test_run("roundtrip", cases);
}
