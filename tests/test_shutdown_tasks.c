/* test_shutdown_tasks.c - shutting down with work pending: tasks that have not started are
 * canceled (a task still running sees SHOAL_ECANCELED on their results, and so do their
 * dependents), running ones are waited for, tasks waiting on objects nobody will complete
 * are released, and init/shutdown cycles with tasks in flight leak nothing.
 * White-box in one place: a task watches the scheduler's stop flag (sched/sched_int.h) to
 * act at a known point of the shutdown. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../sched/sched_int.h"
#include "lib/check.h"
#include "lib/proc.h"
#include "lib/tasks.h"

static _Atomic long ran;
static int t_count(shoal_task *t)
{
    (void)t;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static _Atomic int blocker_rc = 1, blocker_dep_rc = 1, blocker_started, blocker_done;
static char blocker_msg[256], blocker_dep_msg[256];

/* Holds the only worker until shutdown has begun, then waits for a task queued behind it
 * and for a dependent of that task. The refs come through a mailbox object. */
static int t_blocker(shoal_task *t)
{
    shoal_ref box;
    if (shoal_task_arg_ref(t, 0, &box))
        return 1;
    atomic_store(&blocker_started, 1);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load_explicit(&shoal__rt->sched->stop, memory_order_relaxed)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 20)
            return 2;          /* shutdown never came: fail instead of hanging */
    }
    const void *d;
    size_t n;
    if (shoal_get(box, &d, &n) || n != 2 * sizeof(shoal_ref))   /* ready: no wait */
        return 3;
    shoal_ref refs[2];
    memcpy(refs, d, sizeof refs);
    int rc = get_within(refs[0], &d, &n);
    snprintf(blocker_msg, sizeof blocker_msg, "%s", shoal_last_error());
    atomic_store(&blocker_rc, rc);
    rc = get_within(refs[1], &d, &n);
    snprintf(blocker_dep_msg, sizeof blocker_dep_msg, "%s", shoal_last_error());
    atomic_store(&blocker_dep_rc, rc);
    atomic_store(&blocker_done, 1);
    return 0;
}

static void test_shutdown_cancels_pending(void)
{
    start_workers(1, 0);
    atomic_store(&ran, 0);
    atomic_store(&blocker_rc, 1);
    atomic_store(&blocker_dep_rc, 1);
    atomic_store(&blocker_started, 0);
    atomic_store(&blocker_done, 0);
    void *boxbuf, *ubuf;
    shoal_ref box, u, b, x[100], dep, waiting[3];
    ASSERT_OK(shoal_create(2 * sizeof(shoal_ref), &boxbuf, &box));
    ASSERT_OK(shoal_create(8, &ubuf, &u));           /* never sealed */
    shoal_arg ba = SHOAL_REF_PASS(box);
    ASSERT_OK(shoal_submit(t_blocker, &ba, 1, NULL, &b));
    for (int i = 0; i < 100; i++)
        ASSERT_OK(shoal_submit(t_count, NULL, 0, NULL, &x[i]));
    shoal_arg da = SHOAL_REF(x[0]);                   /* waits on a queued task */
    ASSERT_OK(shoal_submit(t_count, &da, 1, NULL, &dep));
    /* a chain waiting on an object nobody completes */
    shoal_arg wa = SHOAL_REF(u);
    ASSERT_OK(shoal_submit(t_count, &wa, 1, NULL, &waiting[0]));
    for (int i = 1; i < 3; i++) {
        shoal_arg a = SHOAL_REF(waiting[i - 1]);
        ASSERT_OK(shoal_submit(t_count, &a, 1, NULL, &waiting[i]));
    }
    shoal_ref refs[2] = { x[0], dep };
    memcpy(boxbuf, refs, sizeof refs);
    CHECK_OK(shoal_seal(box));
    for (int i = 0; i < 20000 && !atomic_load(&blocker_started); i++)   /* running, so */
        nap_ms(1);                                         /* shutdown must wait for it */
    CU_ASSERT_FATAL(atomic_load(&blocker_started));
    ASSERT_OK(shoal_shutdown());
    /* Shutdown waited for the running task, which saw the canceled results. */
    CU_ASSERT_EQUAL(atomic_load(&blocker_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&blocker_rc), SHOAL_ECANCELED);
    CU_ASSERT_PTR_NOT_NULL(strstr(blocker_msg, "canceled"));
    CU_ASSERT_EQUAL(atomic_load(&blocker_dep_rc), SHOAL_ECANCELED);
    CU_ASSERT_STRING_EQUAL(blocker_dep_msg, blocker_msg);
    CU_ASSERT_EQUAL(atomic_load(&ran), 0);            /* nothing queued started */
    /* The runtime comes back clean. */
    start_workers(2, 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_count, NULL, 0, NULL, &r));
    const void *d;
    size_t n;
    CHECK_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL(atomic_load(&ran), 1);
    CHECK_OK(shoal_release(r));
    /* the task drops its own reference on its result just after completing it */
    for (int i = 0; i < 5000 && info_now().objects_live != 0; i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* fib-like trees in flight, dependents waiting, results never fetched: shutdown at any
 * point, many times over, with the worker count changing. */
static int t_tree(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    int depth;
    memcpy(&depth, d, sizeof depth);
    if (depth == 0)
        return 0;
    depth--;
    shoal_arg a = SHOAL_VALUE(&depth, sizeof depth);
    shoal_ref r1, r2;
    if (shoal_submit(t_tree, &a, 1, NULL, &r1) || shoal_submit(t_tree, &a, 1, NULL, &r2))
        return 2;
    int rc1 = get_within(r1, &d, &n), rc2 = get_within(r2, &d, &n);
    shoal_release(r1);
    shoal_release(r2);
    /* canceled children (shutdown) fail the parent: fine, nobody looks */
    return rc1 || rc2;
}

static void test_cycles_with_work_in_flight(void)
{
    int cycles = 30 / (SAN_DIV > 1 ? 3 : 1);
    for (int i = 0; i < cycles; i++) {
        start_workers(1 + (unsigned)i % 3, 0);
        void *buf;
        shoal_ref u, w, r;
        ASSERT_OK(shoal_create(8, &buf, &u));
        for (int k = 0; k < 4; k++) {
            int depth = 8 + k;
            shoal_arg a = SHOAL_VALUE(&depth, sizeof depth);
            ASSERT_OK(shoal_submit(t_tree, &a, 1, NULL, &r));
            CHECK_OK(shoal_release(r));
        }
        shoal_arg wa[2] = { SHOAL_REF(u), SHOAL_REF_PASS(u) };
        ASSERT_OK(shoal_submit(t_count, wa, 2, NULL, &w));
        CHECK_OK(shoal_release(u));   /* only the waiting task holds u now */
        if (i % 2) {
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
        ASSERT_OK(shoal_shutdown());
    }
}

/* A task run inside another task's wait (its calls nest in that wait's call) that submits
 * once shutdown has begun: the runtime going down must reach nested calls too, which
 * compare one word at entry (core/store.h shoal__enter), or a task that submits until a
 * submit fails runs on (and shutdown waits for it). White-box: it watches rt->down. */
static _Atomic int nest_rc = 1, nest_started;
static _Atomic long nest_submits;
static int t_submit_until_fail(shoal_task *t)
{
    (void)t;
    shoal_ref r;
    if (shoal_submit(t_count, NULL, 0, NULL, &r))
        return 1;
    shoal_release(r);
    atomic_store(&nest_started, 1);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load_explicit(&shoal__rt->down, memory_order_relaxed)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 20) {
            atomic_store(&nest_rc, 2);   /* shutdown never came: fail, not hang */
            return 0;
        }
    }
    for (int i = 0; i < 1000; i++) {
        int rc = shoal_submit(t_count, NULL, 0, NULL, &r);
        if (rc) {
            atomic_store(&nest_rc, rc);
            return 0;
        }
        shoal_release(r);
        atomic_fetch_add(&nest_submits, 1);
    }
    atomic_store(&nest_rc, 3);   /* submits still succeed with the runtime going down */
    return 0;
}

static int t_wait_on_submitter(shoal_task *t)
{
    (void)t;
    shoal_ref r;
    if (shoal_submit(t_submit_until_fail, NULL, 0, NULL, &r))
        return 1;
    uint64_t v;
    size_t n;
    (void)shoal_take(r, &v, sizeof v, &n);   /* one worker: runs the submitter in here */
    return 0;
}

static void test_nested_calls_answer_shutdown(void)
{
    start_workers(1, 0);
    atomic_store(&nest_rc, 1);
    atomic_store(&nest_started, 0);
    atomic_store(&nest_submits, 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_wait_on_submitter, NULL, 0, NULL, &r));
    CHECK_OK(shoal_release(r));
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while (!atomic_load(&nest_started) && now.tv_sec - t0.tv_sec < 20);
    CU_ASSERT_TRUE_FATAL(atomic_load(&nest_started));
    ASSERT_OK(shoal_shutdown());
    if (atomic_load(&nest_rc) != SHOAL_ECANCELED)
        fprintf(stderr, "nested submit after down: %d (3: 1000 succeeded)\n",
                atomic_load(&nest_rc));
    CU_ASSERT_EQUAL(atomic_load(&nest_rc), SHOAL_ECANCELED);
    CU_ASSERT_EQUAL(atomic_load(&nest_submits), 0);
}

/* Objects completed by the I/O thread while shutdown takes the scheduler apart (the I/O
 * thread stops after the scheduler): their waiting dependents are canceled, dropped or
 * left to the store's teardown, never scheduled on a freed scheduler. Run under the
 * sanitizers, this is a memory-safety check; each round shuts down with reads in flight. */
static void test_io_completions_during_shutdown(void)
{
    char path[] = "/tmp/shoal-shutdown-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    static char block[1 << 16];
    memset(block, 7, sizeof block);
    for (int i = 0; i < 64; i++)     /* 4 MiB */
        CU_ASSERT_FATAL(write(fd, block, sizeof block) == (ssize_t)sizeof block);
    close(fd);
    int rounds = SAN_DIV > 1 ? 6 : 20;
    for (int i = 0; i < rounds; i++) {
        start_workers(1 + (unsigned)i % 2, 0);
        for (int k = 0; k < 8; k++) {
            shoal_ref f, r, prev;
            ASSERT_OK(shoal_put_file(path, (uint64_t)k << 16, (size_t)1 << 19, &f));
            shoal_arg a = SHOAL_REF(f);
            ASSERT_OK(shoal_submit(t_count, &a, 1, NULL, &r));
            prev = r;
            for (int j = 0; j < 4; j++) {          /* a chain behind it */
                shoal_arg b[2] = { SHOAL_REF(prev), SHOAL_REF_PASS(f) };
                ASSERT_OK(shoal_submit(t_count, b, 2, NULL, &r));
                CHECK_OK(shoal_release(prev));
                prev = r;
            }
            CHECK_OK(shoal_release(prev));
            CHECK_OK(shoal_release(f));
        }
        ASSERT_OK(shoal_shutdown());
    }
    unlink(path);
}

/* Shutdown with nothing submitted, twice in a row, and before any init. */
static void test_idle_shutdown(void)
{
    start_workers(2, 0);
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(shoal_shutdown(), SHOAL_ENOTINIT);
    shoal_ref r;
    CU_ASSERT_EQUAL(shoal_submit(t_count, NULL, 0, NULL, &r), SHOAL_ENOTINIT);
}

/* Callbacks shutdown runs on its own thread (an actor's destroy, the ctx_done of a task it
 * cancels) that call a lifecycle call answer at once: shoal_shutdown SHOAL_EBUSY (it would
 * wait for itself), shoal_init and shoal_attach SHOAL_EEXIST; the outer shutdown completes
 * and the next init works. Before, each waited for the lifecycle lock its own thread held:
 * the child below hung until its alarm (SIGALRM). Run in a child, whose alarm ends a hang. */
enum { CB_SHUT, CB_INIT, CB_ATTACH, CB_N };
static int cb_rc[2][CB_N];
static _Atomic int cb_ran[2];

static void cb_lifecycle(int who)
{
    shoal_config c = shoal_test_config();
    cb_rc[who][CB_SHUT] = shoal_shutdown();
    cb_rc[who][CB_INIT] = shoal_init(&c);
    cb_rc[who][CB_ATTACH] = shoal_attach("shoal-no-such-store");
    atomic_store(&cb_ran[who], 1);
}

static void cb_destroy(void *state) { (void)state; cb_lifecycle(0); }
static void cb_ctx_done(void *ctx) { (void)ctx; cb_lifecycle(1); }

static int t_nap(shoal_task *t)
{
    (void)t;
    nap_ms(200);
    return 0;
}

static int lifecycle_in_callbacks_child(void)
{
    shoal_test_child_limits(30);
    shoal_config c = shoal_test_config();
    c.workers = 1;
    if (shoal_init(&c))
        return 2;
    shoal_actor a;
    shoal_ref r1, r2;
    if (shoal_actor_create(NULL, cb_destroy, NULL, &a))
        return 2;
    /* The only worker naps; the task behind it has not started when shutdown cancels it. */
    shoal_task_opts o = { .ctx = &c, .ctx_done = cb_ctx_done };
    if (shoal_submit(t_nap, NULL, 0, NULL, &r1) || shoal_submit(t_count, NULL, 0, &o, &r2))
        return 2;
    if (shoal_shutdown())
        return 3;
    int bad = 0;
    for (int w = 0; w < 2; w++) {
        if (!atomic_load(&cb_ran[w])) {
            fprintf(stderr, "callback %d did not run\n", w);
            bad = 1;
            continue;
        }
        /* The actor's destroy runs on the thread in shoal_shutdown (shoal.h); a ctx_done
         * may run on the worker (then shutdown answers EBUSY too: inside a task). */
        if (cb_rc[w][CB_SHUT] != SHOAL_EBUSY || cb_rc[w][CB_INIT] != SHOAL_EEXIST ||
            (w == 0 && cb_rc[w][CB_ATTACH] != SHOAL_EEXIST)) {
            fprintf(stderr, "callback %d: shutdown %d, init %d, attach %d\n", w,
                    cb_rc[w][CB_SHUT], cb_rc[w][CB_INIT], cb_rc[w][CB_ATTACH]);
            bad = 1;
        }
    }
    if (shoal_init(&c) || shoal_shutdown())
        return 4;
    return bad;
}

static void test_lifecycle_in_callbacks(void)
{
    test_reset();
    CU_ASSERT_EQUAL(test_run_self("lifecycle-in-callbacks"), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "lifecycle-in-callbacks") == 0)
        return lifecycle_in_callbacks_child();
    static const shoal_test_case cases[] = {
        { "shutdown cancels what has not started", test_shutdown_cancels_pending },
        { "init/shutdown cycles with work in flight", test_cycles_with_work_in_flight },
        { "I/O completions during shutdown", test_io_completions_during_shutdown },
        { "idle shutdown", test_idle_shutdown },
        { "nested calls answer shutdown", test_nested_calls_answer_shutdown },
        { "lifecycle calls from callbacks shutdown runs", test_lifecycle_in_callbacks },
        { NULL, NULL },
    };
    return shoal_test_run("shutdown_tasks", cases);
}
