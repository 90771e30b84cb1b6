/* tasks.h - small helpers the task suites share: longs in and out of tasks, naps,
 * waiting for a live-object count to settle, and blockers that hold workers until a gate
 * opens. */
#ifndef SHOAL_TEST_TASKS_H
#define SHOAL_TEST_TASKS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

/* A fresh runtime with `workers` workers; max_objects 0 keeps the test config's table. */
static inline void start_workers(unsigned workers, size_t max_objects)
{
    shoal_config c = shoal_test_config();
    c.workers = workers;
    if (max_objects)
        c.max_objects = max_objects;
    test_start(c);
}

static inline void nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Argument i of a task as a long (0 if it is not one). */
static inline long arg_long(shoal_task *t, size_t i)
{
    const void *d;
    size_t n;
    long v = 0;
    if (shoal_task_arg(t, i, &d, &n) == 0 && n == sizeof v)
        memcpy(&v, d, sizeof v);
    return v;
}

/* r's bytes as a long (-1 unless they are one); *rc is the get's answer (bounded). */
static inline long get_long(shoal_ref r, int *rc)
{
    const void *d = NULL;
    size_t n = 0;
    *rc = get_within(r, &d, &n);
    long v = -1;
    if (*rc == 0 && n == sizeof v)
        memcpy(&v, d, sizeof v);
    return v;
}

/* A task drops its own reference on its result just after completing it, so a caller that
 * saw the result may still count it live for a moment: wait (bounded) for the count. */
static inline uint64_t live_settled(uint64_t want)
{
    uint64_t live = info_now().objects_live;
    for (int i = 0; i < 5000 && live != want; i++) {
        nap_ms(1);
        live = info_now().objects_live;
    }
    return live;
}

/* Inside fib task fn with argument n >= 2: submit its children fn(n - 1) and fn(n - 2).
 * 0, or the submit's error with nothing left held. */
static inline int fib_children(shoal_fn fn, long n, shoal_ref *ra, shoal_ref *rb)
{
    long a = n - 1, b = n - 2;
    shoal_arg aa = SHOAL_VALUE(&a, sizeof a), ab = SHOAL_VALUE(&b, sizeof b);
    int rc = shoal_submit(fn, &aa, 1, NULL, ra);
    if (rc)
        return rc;
    if ((rc = shoal_submit(fn, &ab, 1, NULL, rb)))
        shoal_release(*ra);
    return rc;
}

static inline long fib_ref(long n) { return n < 2 ? n : fib_ref(n - 1) + fib_ref(n - 2); }

/* A fresh runtime with `workers` workers runs fn, a fib whose every call is a task (its
 * argument a long, its result a long), for n: the value is fib(n), every call was a task
 * (2 fib(n+1) - 1 of them) and, with settled, no object is left once the tasks have let go
 * of theirs. */
static inline void run_fib_tasks(shoal_fn fn, unsigned workers, long n, bool settled)
{
    start_workers(workers, 1u << 20);
    shoal_info before = info_now();
    shoal_arg a = SHOAL_VALUE(&n, sizeof n);
    shoal_ref r;
    ASSERT_OK(shoal_submit(fn, &a, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), fib_ref(n));
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(info_now().tasks_run - before.tasks_run, (uint64_t)(2 * fib_ref(n + 1) - 1));
    if (settled)
        CU_ASSERT_EQUAL(live_settled(0), 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- blockers: tasks that hold workers until a gate opens ----------------------------- */

static inline int64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The gate blockers spin on (1: open) and how many blockers started. */
static inline _Atomic int *test_gate(void) { static _Atomic int g; return &g; }
static inline _Atomic int *test_blockers_in(void) { static _Atomic int n; return &n; }

/* Holds its worker until the gate opens (at most TEST_WAIT_NS: a lost release fails, not
 * hangs). */
static inline int t_block(shoal_task *t)
{
    (void)t;
    atomic_fetch_add(test_blockers_in(), 1);
    int64_t end = test_now_ns() + TEST_WAIT_NS;
    while (!atomic_load(test_gate()) && test_now_ns() < end)
        nap_ms(1);
    return 0;
}

/* Submit n blockers (their results in out[]) and wait until each holds a worker. */
static inline void block_workers(unsigned n, shoal_ref out[])
{
    atomic_store(test_gate(), 0);
    atomic_store(test_blockers_in(), 0);
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(shoal_submit(t_block, NULL, 0, NULL, &out[i]));
    int64_t end = test_now_ns() + TEST_WAIT_NS;
    while (atomic_load(test_blockers_in()) < (int)n && test_now_ns() < end)
        nap_ms(1);
    CU_ASSERT_EQUAL_FATAL(atomic_load(test_blockers_in()), (int)n);
}

/* Open the gate and wait for (and release) the n blockers' results. */
static inline void unblock_workers(unsigned n, shoal_ref b[])
{
    atomic_store(test_gate(), 1);
    for (unsigned i = 0; i < n; i++) {
        const void *d;
        size_t len;
        CHECK_OK(get_within(b[i], &d, &len));
        CHECK_OK(shoal_release(b[i]));
    }
}

#endif
