/* test_cancel.c - shoal_cancel and shoal_task_cancelled: a task not started never runs and
 * its result fails SHOAL_ECANCELED; its dependents fail carrying the cancellation, while
 * upstream and siblings are untouched; a running task sees the mark and stops early; the
 * errors (finished, plain object, null, forged, stale); cancels racing completions.
 * Black-box through shoal.h; every blocking call is bounded. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

static _Atomic long runs;           /* t_add bodies run */
static _Atomic int saw_cancel;      /* t_poll saw shoal_task_cancelled */
static _Atomic int poll_started;

static int t_add(shoal_task *t)
{
    atomic_fetch_add(&runs, 1);
    long s = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++)
        s += arg_long(t, i);
    return shoal_task_return(t, &s, sizeof s);
}

/* Works in steps until cancelled (at most 60 s), then returns a value anyway. */
static int t_poll(shoal_task *t)
{
    atomic_store(&poll_started, 1);
    int64_t end = test_now_ns() + TEST_WAIT_NS;
    while (!shoal_task_cancelled(t) && test_now_ns() < end)
        nap_ms(1);
    if (shoal_task_cancelled(t) == 1)
        atomic_store(&saw_cancel, 1);
    long v = 7;
    return shoal_task_return(t, &v, sizeof v);
}

/* The failure message of r (which must fail with code). */
static void check_fails(shoal_ref r, int code, const char *needle)
{
    const void *d;
    size_t n;
    int rc = get_within(r, &d, &n);
    CU_ASSERT_EQUAL(rc, code);
    if (needle && !strstr(shoal_last_error(), needle)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", shoal_last_error(), needle);
        CU_FAIL("message lacks the cancellation");
    }
}

/* A task queued behind blockers on every worker: cancel returns 0, its result fails at once
 * (while the workers are still busy), and it never runs. */
static void test_not_started(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    shoal_ref b[2], r;
    atomic_store(&runs, 0);
    block_workers(2, b);
    long one = 1;
    shoal_arg a = SHOAL_VALUE(&one, sizeof one);
    ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &r));
    CHECK_OK(shoal_cancel(r));
    check_fails(r, SHOAL_ECANCELED, "canceled by shoal_cancel before it started");
    CHECK_RC(shoal_cancel(r), SHOAL_EEXIST);          /* twice: it is finished now */
    unblock_workers(2, b);
    /* A later task runs, the canceled one stays unrun. */
    shoal_ref u;
    ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &u));
    int rc;
    CU_ASSERT_EQUAL(get_long(u, &rc), 1);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(u));
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(atomic_load(&runs), 1);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

/*        x (unsealed)    up
 *              \       /    \
 *                 mid        sib
 *                  |
 *                 down1 -> down2
 * mid waits for x; canceling mid fails down1 and down2 with the cancellation, while up and
 * sib complete. Sealing x afterwards never runs mid. */
static void test_dag(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    atomic_store(&runs, 0);
    void *buf;
    shoal_ref x, up, mid, sib, d1, d2;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &x));
    long ten = 10;
    shoal_arg v = SHOAL_VALUE(&ten, sizeof ten);
    ASSERT_OK(shoal_submit(t_add, &v, 1, NULL, &up));
    shoal_arg ma[2] = { SHOAL_REF(x), SHOAL_REF(up) };
    ASSERT_OK(shoal_submit(t_add, ma, 2, NULL, &mid));
    shoal_arg sa = SHOAL_REF(up);
    ASSERT_OK(shoal_submit(t_add, &sa, 1, NULL, &sib));
    shoal_arg da = SHOAL_REF(mid);
    ASSERT_OK(shoal_submit(t_add, &da, 1, NULL, &d1));
    shoal_arg db[2] = { SHOAL_REF(d1), SHOAL_REF(up) };
    ASSERT_OK(shoal_submit(t_add, db, 2, NULL, &d2));
    CHECK_OK(shoal_cancel(mid));
    check_fails(mid, SHOAL_ECANCELED, "canceled by shoal_cancel");
    check_fails(d1, SHOAL_ECANCELED, "canceled by shoal_cancel");
    check_fails(d2, SHOAL_ECANCELED, "canceled by shoal_cancel");
    int rc;
    CU_ASSERT_EQUAL(get_long(up, &rc), 10);
    CHECK_OK(rc);
    CU_ASSERT_EQUAL(get_long(sib, &rc), 10);
    CHECK_OK(rc);
    CHECK_RC(shoal_cancel(up), SHOAL_EEXIST);
    long five = 5;
    memcpy(buf, &five, sizeof five);
    CHECK_OK(shoal_seal(x));                      /* mid becomes runnable: it must not run */
    shoal_ref r[] = { x, up, mid, sib, d1, d2 };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        CHECK_OK(shoal_release(r[i]));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(atomic_load(&runs), 2);       /* up and sib only */
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

/* A running task polls shoal_task_cancelled, stops early; its result fails ECANCELED even
 * though it returned a value. */
static void test_running(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    atomic_store(&saw_cancel, 0);
    atomic_store(&poll_started, 0);
    shoal_task_opts o = { 0 };
    o.name = "poller";
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_poll, NULL, 0, &o, &r));
    int64_t end = test_now_ns() + TEST_WAIT_NS;
    while (!atomic_load(&poll_started) && test_now_ns() < end)
        nap_ms(1);
    CU_ASSERT_FATAL(atomic_load(&poll_started));
    CHECK_RC(shoal_cancel(r), 1);
    CHECK_RC(shoal_cancel(r), 1);                 /* asking again while it runs */
    check_fails(r, SHOAL_ECANCELED, "task poller");
    CU_ASSERT_EQUAL(atomic_load(&saw_cancel), 1);
    CHECK_RC(shoal_cancel(r), SHOAL_EEXIST);
    CU_ASSERT_EQUAL(shoal_task_cancelled(NULL), SHOAL_EINVAL);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

static int t_fail(shoal_task *t) { return shoal_task_fail(t, "no"), 1; }

/* Cancel from inside a task (a worker thread): the task cancels its REF_PASS argument. */
static int t_cancel_arg(shoal_task *t)
{
    shoal_ref r;
    int rc = shoal_task_arg_ref(t, 0, &r);
    if (rc == 0)
        rc = shoal_cancel(r);
    long v = rc;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_errors(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    long one = 1;
    shoal_arg a = SHOAL_VALUE(&one, sizeof one);
    shoal_ref done, failed, p, c, stale;
    ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &done));
    ASSERT_OK(shoal_submit(t_fail, NULL, 0, NULL, &failed));
    const void *d;
    size_t n;
    CHECK_OK(get_within(done, &d, &n));
    CU_ASSERT_EQUAL(get_within(failed, &d, &n), SHOAL_ETASK);
    CHECK_RC(shoal_cancel(done), SHOAL_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "already finished"));
    CHECK_RC(shoal_cancel(failed), SHOAL_EEXIST);
    CHECK_OK(get_within(done, &d, &n));           /* untouched, and still ours */
    CU_ASSERT_EQUAL(n, sizeof(long));

    ASSERT_OK(shoal_put(&one, sizeof one, &p));
    CHECK_RC(shoal_cancel(p), SHOAL_ENOENT);
    void *buf;
    ASSERT_OK(shoal_create(8, &buf, &c));
    CHECK_RC(shoal_cancel(c), SHOAL_ENOENT);
    CHECK_OK(shoal_seal(c));                      /* still an ordinary object */
    CHECK_RC(shoal_cancel((shoal_ref){ 0 }), SHOAL_EINVAL);
    CHECK_RC(shoal_cancel((shoal_ref){ UINT64_C(0x00000001ffffffff) }), SHOAL_EINVAL);
    ASSERT_OK(shoal_submit(t_add, &a, 1, NULL, &stale));
    CHECK_OK(get_within(stale, &d, &n));
    CHECK_OK(shoal_release(stale));
    CU_ASSERT_EQUAL(live_settled(before.objects_live + 4), before.objects_live + 4);
    CHECK_RC(shoal_cancel(stale), SHOAL_ESTALE);

    /* From a task: cancel a finished result (EEXIST) and a plain object (ENOENT). */
    shoal_arg ca = SHOAL_REF_PASS(done);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_cancel_arg, &ca, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), SHOAL_EEXIST);
    CHECK_OK(shoal_release(r));
    ca = SHOAL_REF_PASS(p);
    ASSERT_OK(shoal_submit(t_cancel_arg, &ca, 1, NULL, &r));
    CU_ASSERT_EQUAL(get_long(r, &rc), SHOAL_ENOENT);
    CHECK_OK(shoal_release(r));

    shoal_ref all[] = { done, failed, p, c };
    for (size_t i = 0; i < 4; i++)
        CHECK_OK(shoal_release(all[i]));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    ASSERT_OK(shoal_shutdown());
    CHECK_RC(shoal_cancel(done), SHOAL_ENOTINIT);
}

/* Cancels from three threads race each task's start and completion: no crash, and exactly
 * one outcome per task: either every cancel found it finished (EEXIST) and its result is
 * its value, or exactly one cancel won (0: it never ran; 1: it ran and its result failed
 * ECANCELED; others then EEXIST or, while it ran, 1). */
#define RACE_THREADS 3
static struct race {
    _Atomic uint64_t *ids;          /* published by the submitter, chased by the cancellers */
    shoal_ref *refs;
    size_t n;
    _Atomic int (*rc)[RACE_THREADS];
    _Atomic int go;
    _Atomic size_t prog;            /* tasks the first canceller is done with */
} race;
static _Atomic int race_ran[4096];

static int t_race(shoal_task *t)
{
    long i = arg_long(t, 0);
    if (i >= 0 && i < 4096)
        atomic_fetch_add(&race_ran[i], 1);
    return shoal_task_return(t, &i, sizeof i);
}

static void *race_main(void *p)
{
    int k = (int)(intptr_t)p;
    int64_t end = test_now_ns() + TEST_WAIT_NS;
    while (!atomic_load(&race.go) && test_now_ns() < end)
        ;
    for (size_t i = 0; i < race.n; i++) {
        uint64_t id;
        while ((id = atomic_load(&race.ids[i])) == 0 && test_now_ns() < end)
            ;
        atomic_store(&race.rc[i][k], shoal_cancel((shoal_ref){ id }));
        if (k == 0)
            atomic_store(&race.prog, i + 1);
    }
    return NULL;
}

/* Every task's outcome (see above); 0 when each is one of the allowed ones. Releases the
 * refs. */
static size_t race_check(size_t n, size_t *won0, size_t *won1, size_t *lost)
{
    size_t bad = 0;
    *won0 = *won1 = *lost = 0;
    for (size_t i = 0; i < n; i++) {
        int zero = 0, ones = 0, exist = 0;
        for (int k = 0; k < RACE_THREADS; k++) {
            int rc = atomic_load(&race.rc[i][k]);
            zero += rc == 0;
            ones += rc == 1;
            exist += rc == SHOAL_EEXIST;
        }
        const void *d;
        size_t len;
        int rc = get_within(race.refs[i], &d, &len);
        int ran = atomic_load(&race_ran[i]);
        bool ok;
        if (zero + ones + exist != RACE_THREADS)
            ok = false;
        else if (zero)      /* canceled before it started: never ran, nobody saw it run */
            ok = zero == 1 && ones == 0 && ran == 0 && rc == SHOAL_ECANCELED;
        else if (ones)      /* canceled while it ran */
            ok = ran == 1 && rc == SHOAL_ECANCELED;
        else                /* it finished first */
            ok = ran == 1 && rc == 0 && len == sizeof(long) && *(const long *)d == (long)i;
        *won0 += zero != 0;
        *won1 += zero == 0 && ones != 0;
        *lost += zero == 0 && ones == 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "task %zu: cancels %d/%d/%d (0/1/EEXIST), ran %d, get %d\n",
                    i, zero, ones, exist, ran, rc);
        CHECK_OK(shoal_release(race.refs[i]));
    }
    return bad;
}

static bool race_alloc(size_t n)
{
    race.refs = calloc(n, sizeof *race.refs);
    race.rc = calloc(n, sizeof *race.rc);
    race.ids = calloc(n, sizeof *race.ids);
    CU_ASSERT_PTR_NOT_NULL_FATAL(race.ids);
    CU_ASSERT_PTR_NOT_NULL_FATAL(race.refs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(race.rc);
    race.n = n;
    atomic_store(&race.go, 0);
    atomic_store(&race.prog, 0);
    for (size_t i = 0; i < n; i++)
        atomic_store(&race_ran[i], 0);
    return true;
}

static void race_free(void)
{
    free(race.refs);
    free((void *)race.ids);
    free((void *)race.rc);
}

static void test_race(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    size_t n = 4096 / SAN_DIV;
    race_alloc(n);
    pthread_t th[RACE_THREADS];
    for (int k = 0; k < RACE_THREADS; k++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k], NULL, race_main, (void *)(intptr_t)k), 0);
    for (size_t i = 0; i < n; i++) {
        long v = (long)i;
        shoal_arg a = SHOAL_VALUE(&v, sizeof v);
        ASSERT_OK(shoal_submit(t_race, &a, 1, NULL, &race.refs[i]));
        atomic_store(&race.ids[i], race.refs[i].id);
        if (i == 0)
            atomic_store(&race.go, 1);   /* cancels chase the submits */
    }
    atomic_store(&race.go, 1);
    for (int k = 0; k < RACE_THREADS; k++)
        pthread_join(th[k], NULL);
    size_t won0, won1, lost, bad = race_check(n, &won0, &won1, &lost);
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr, "  race: %zu canceled before start, %zu while running, %zu finished first\n",
            won0, won1, lost);
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    race_free();
    ASSERT_OK(shoal_shutdown());
}

/* The parent of test_race_own: submits the tasks from a worker, in batches, and waits for
 * each batch, so that its worker takes them from its own deque (the other worker steals
 * some) while the cancels chase the submits. */
#define OWN_BATCH 16
static int t_race_parent(shoal_task *t)
{
    (void)t;
    for (size_t i = 0; i < race.n; i += OWN_BATCH) {
        size_t e = i + OWN_BATCH < race.n ? i + OWN_BATCH : race.n;
        for (size_t j = i; j < e; j++) {
            long v = (long)j;
            shoal_arg a = SHOAL_VALUE(&v, sizeof v);
            if (shoal_submit(t_race, &a, 1, NULL, &race.refs[j]) < 0)
                return shoal_task_fail(t, shoal_last_error()), 1;
            atomic_store(&race.ids[j], race.refs[j].id);
            atomic_store(&race.go, 1);
        }
        /* Let the cancels into the batch, so that they meet the starts (newest first)
         * somewhere in its middle. */
        int64_t end = test_now_ns() + TEST_WAIT_NS;
        while (atomic_load(&race.prog) < i + (e - i) / 2 && test_now_ns() < end)
            ;
        for (size_t j = e; j-- > i;) {   /* newest first: the own deque's order */
            const void *d;
            size_t len;
            (void)shoal_get_timeout(race.refs[j], TEST_WAIT_NS, &d, &len);
        }
    }
    return 0;
}

/* test_race with the tasks submitted by a worker: the starts a cancel races are then the
 * owner's takes from its own deque, the path a start claim cheaper than a CAS would change
 * (a canceller that missed such a claim, or a runner that missed the mark, shows here as a
 * task that ran although a cancel answered 0). Several rounds: the window is narrow. */
static void test_race_own(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    size_t n = 4096 / SAN_DIV, won0 = 0, won1 = 0, lost = 0, bad = 0;
    for (int round = 0; round < 8; round++) {
        race_alloc(n);
        pthread_t th[RACE_THREADS];
        for (int k = 0; k < RACE_THREADS; k++)
            CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k], NULL, race_main, (void *)(intptr_t)k),
                                  0);
        shoal_ref p;
        ASSERT_OK(shoal_submit(t_race_parent, NULL, 0, NULL, &p));
        const void *d;
        size_t len;
        CHECK_OK(get_within(p, &d, &len));
        CHECK_OK(shoal_release(p));
        atomic_store(&race.go, 1);
        for (int k = 0; k < RACE_THREADS; k++)
            pthread_join(th[k], NULL);
        size_t w0, w1, l;
        bad += race_check(n, &w0, &w1, &l);
        won0 += w0, won1 += w1, lost += l;
        race_free();
    }
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr, "  race (own deque): %zu canceled before start, %zu while running, %zu "
            "finished first\n", won0, won1, lost);
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "a task not started never runs", test_not_started },
        { "a canceled task in the middle of a DAG", test_dag },
        { "a running task sees the cancel and stops", test_running },
        { "finished, plain, null, forged, stale refs", test_errors },
        { "cancels racing completions from 3 threads", test_race },
        { "cancels racing starts from the own deque", test_race_own },
        { NULL, NULL },
    };
    return shoal_test_run("cancel", cases);
}
