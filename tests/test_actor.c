/* test_actor.c - actors: calls run one at a time in submission order and see the state;
 * actors run in parallel with each other and with tasks; REF arguments keep the order;
 * destroy (idle, with queued calls, with a call waiting for its arguments, from inside its
 * own call, racing a submitter), shoal_cancel of a call, shutdown with live actors, stale
 * and forged handles, placement, waiting inside a call, an attached client (SHOAL_EPERM)
 * and the error messages. Black-box through shoal.h; every blocking call is bounded. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "lib/tasks.h"

extern char **environ;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* An actor's state: a log of what its calls saw, in the order they ran. */
#define LOG_MAX 20000
struct st {
    long log[LOG_MAX];
    long n;
    _Atomic int inflight;           /* calls inside the body now: must never exceed 1 */
    _Atomic int overlap;            /* times a call found another one inside */
    _Atomic int destroyed;          /* destroy(state) calls */
    pthread_t destroy_thread;
};

static struct st *st_new(void)
{
    struct st *s = calloc(1, sizeof *s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static void st_destroy(void *p)
{
    struct st *s = p;
    s->destroy_thread = pthread_self();
    atomic_fetch_add(&s->destroyed, 1);
}

/* Wait (bounded) until *v reaches want. */
static int wait_int(_Atomic int *v, int want)
{
    int64_t end = now_ns() + TEST_WAIT_NS;
    while (atomic_load(v) < want && now_ns() < end)
        nap_ms(1);
    return atomic_load(v);
}

/* A method: append argument 0 (a long) to the log, inside an in-flight check; return it. */
static int m_append(shoal_task *t)
{
    struct st *s = shoal_task_actor_state(t);
    if (!s)
        return shoal_task_fail(t, "no actor state"), 1;
    if (atomic_fetch_add(&s->inflight, 1) != 0)
        atomic_fetch_add(&s->overlap, 1);
    long v = arg_long(t, 0);
    for (volatile int i = 0; i < 200; i++)   /* widen the window a second call would need */
        ;
    if (s->n < LOG_MAX)
        s->log[s->n++] = v;
    atomic_fetch_sub(&s->inflight, 1);
    return shoal_task_return(t, &v, sizeof v);
}

static shoal_ref call_long(shoal_actor a, shoal_fn fn, long v)
{
    shoal_ref r = SHOAL_REF_NULL;
    shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
    ASSERT_OK(shoal_actor_submit(a, fn, &arg, 1, NULL, &r));
    return r;
}

static void check_long(shoal_ref r, long want)
{
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), want);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
}

static void check_fails(shoal_ref r, int code, const char *needle)
{
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(get_within(r, &d, &n), code);
    if (needle && !strstr(shoal_last_error(), needle)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", shoal_last_error(), needle);
        CU_FAIL("message lacks the expected words");
    }
    CHECK_OK(shoal_release(r));
}

/* Gate for blocking methods: they spin until it opens (bounded). */
static _Atomic int gate, blocked_in;
static int m_block(shoal_task *t)
{
    (void)t;
    atomic_fetch_add(&blocked_in, 1);
    int64_t end = now_ns() + TEST_WAIT_NS;
    while (!atomic_load(&gate) && now_ns() < end)
        nap_ms(1);
    return 0;
}

/* The calls logged 0, 1, ... n - 1, in that order, never two at once. */
static void check_log_0_to(const struct st *s, long n)
{
    CU_ASSERT_EQUAL(s->n, n);
    long bad = 0;
    for (long i = 0; i < s->n; i++)
        bad += s->log[i] != i;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(atomic_load(&s->overlap), 0);
}

/* ---- order and serial execution -------------------------------------------------------- */

static void test_order(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    CU_ASSERT_NOT_EQUAL(a.id, 0);
    enum { N = 3000 };
    shoal_ref *r = calloc(N, sizeof *r);
    for (long i = 0; i < N; i++)
        r[i] = call_long(a, m_append, i);
    for (long i = 0; i < N; i++)
        check_long(r[i], i);
    check_log_0_to(s, N);
    ASSERT_OK(shoal_actor_destroy(a));
    /* Idle: on this thread before it returns; the worker of the last call may still be
     * letting go of the turn, though, and then it calls destroy(state) itself. */
    CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    free(r);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* Round trips (each result read before the next submit): the worker that ran a call keeps
 * the turn a few microseconds waiting for the next one (actor.c, await_call), so most calls
 * here are taken from the mailbox by a worker that is waiting for them. Order and state as
 * ever; destroy and shutdown while such a worker waits: destroy(state) once, on the holder
 * or on this thread, and nothing is left alive. */
static void test_round_trips(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    for (int round = 0; round < 2; round++) {
        struct st *s = st_new();
        shoal_actor a;
        ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
        enum { N = 2000 };
        for (long i = 0; i < N; i++) {
            shoal_ref r = call_long(a, m_append, i);
            check_long(r, i);
        }
        check_log_0_to(s, N);
        if (round == 0) {   /* destroy at once: the holder is most likely still waiting */
            ASSERT_OK(shoal_actor_destroy(a));
            CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
            nap_ms(5);
            CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 1);   /* exactly once */
            shoal_ref r;
            CU_ASSERT_EQUAL(shoal_actor_submit(a, m_append, NULL, 0, NULL, &r), SHOAL_ESTALE);
            CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
            free(s);
        } else {            /* shut down at once: shutdown destroys the live actor */
            ASSERT_OK(shoal_shutdown());
            CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 1);
            free(s);
            return;
        }
    }
}

/* Three threads submit to one actor at once: never two calls inside, every thread's calls
 * in its own order, none lost. */
struct sub_arg { shoal_actor a; long who; shoal_ref *r; };
enum { PER_THREAD = 1500 };
static void *submitter(void *p)
{
    struct sub_arg *x = p;
    for (long i = 0; i < PER_THREAD; i++) {
        long v = x->who * 100000 + i;
        shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
        if (shoal_actor_submit(x->a, m_append, &arg, 1, NULL, &x->r[i]) != 0)
            x->r[i] = SHOAL_REF_NULL;
    }
    return NULL;
}

static void test_serial_concurrent(void)
{
    start_workers(4, 0);
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    pthread_t th[3];
    struct sub_arg x[3];
    for (long k = 0; k < 3; k++) {
        x[k] = (struct sub_arg){ a, k + 1, calloc(PER_THREAD, sizeof(shoal_ref)) };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k], NULL, submitter, &x[k]), 0);
    }
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 3; k++) {
        for (long i = 0; i < PER_THREAD; i++) {
            CU_ASSERT_NOT_EQUAL(x[k].r[i].id, 0);
            if (x[k].r[i].id)
                check_long(x[k].r[i], (k + 1) * 100000 + i);
        }
        free(x[k].r);
    }
    CU_ASSERT_EQUAL(s->n, 3 * PER_THREAD);
    long next[4] = { 0 }, bad = 0;
    for (long i = 0; i < s->n; i++) {
        long who = s->log[i] / 100000, seq = s->log[i] % 100000;
        if (who < 1 || who > 3 || seq != next[who]++)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(atomic_load(&s->overlap), 0);
    ASSERT_OK(shoal_actor_destroy(a));
    CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- state ----------------------------------------------------------------------------- */

static int t_state(shoal_task *t)
{
    long v = shoal_task_actor_state(t) == NULL ? 1 : 0;
    return shoal_task_return(t, &v, sizeof v);
}

static int m_state_is(shoal_task *t)
{
    const void *d;
    size_t n;
    void *want = NULL;
    if (shoal_task_arg(t, 0, &d, &n) == 0 && n == sizeof want)
        memcpy(&want, d, sizeof want);
    long v = shoal_task_actor_state(t) == want;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_state(void)
{
    start_workers(2, 0);
    CU_ASSERT_PTR_NULL(shoal_task_actor_state(NULL));
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_state, NULL, 0, NULL, &r));   /* a plain task: NULL */
    check_long(r, 1);
    int x, y;
    shoal_actor a, b;
    ASSERT_OK(shoal_actor_create(&x, NULL, NULL, &a));
    ASSERT_OK(shoal_actor_create(&y, NULL, NULL, &b));
    CU_ASSERT_NOT_EQUAL(a.id, b.id);
    void *px = &x, *py = &y;
    shoal_arg ax = SHOAL_VALUE(&px, sizeof px), ay = SHOAL_VALUE(&py, sizeof py);
    shoal_ref r1, r2;
    ASSERT_OK(shoal_actor_submit(a, m_state_is, &ax, 1, NULL, &r1));
    ASSERT_OK(shoal_actor_submit(b, m_state_is, &ay, 1, NULL, &r2));
    check_long(r1, 1);
    check_long(r2, 1);
    /* A NULL state is allowed; its calls see NULL. */
    shoal_actor c;
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &c));
    ASSERT_OK(shoal_actor_submit(c, t_state, NULL, 0, NULL, &r));
    check_long(r, 1);
    ASSERT_OK(shoal_actor_destroy(a));
    ASSERT_OK(shoal_actor_destroy(b));
    ASSERT_OK(shoal_actor_destroy(c));
    ASSERT_OK(shoal_shutdown());
}

/* ---- parallelism ------------------------------------------------------------------------- */

static _Atomic int met_a, met_b;
/* Each side announces itself and waits (bounded) for the other: both finish with 1 only if
 * they ran at the same time. */
static int m_meet_a(shoal_task *t)
{
    atomic_store(&met_a, 1);
    long ok = wait_int(&met_b, 1) == 1;
    return shoal_task_return(t, &ok, sizeof ok);
}
static int m_meet_b(shoal_task *t)
{
    atomic_store(&met_b, 1);
    long ok = wait_int(&met_a, 1) == 1;
    return shoal_task_return(t, &ok, sizeof ok);
}

static void test_parallel(void)
{
    start_workers(2, 0);
    shoal_actor a, b;
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &a));
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &b));
    shoal_ref ra, rb;
    /* Two actors at once. */
    atomic_store(&met_a, 0);
    atomic_store(&met_b, 0);
    ASSERT_OK(shoal_actor_submit(a, m_meet_a, NULL, 0, NULL, &ra));
    ASSERT_OK(shoal_actor_submit(b, m_meet_b, NULL, 0, NULL, &rb));
    check_long(ra, 1);
    check_long(rb, 1);
    /* An actor and a plain task at once. */
    atomic_store(&met_a, 0);
    atomic_store(&met_b, 0);
    ASSERT_OK(shoal_actor_submit(a, m_meet_a, NULL, 0, NULL, &ra));
    ASSERT_OK(shoal_submit(m_meet_b, NULL, 0, NULL, &rb));
    check_long(ra, 1);
    check_long(rb, 1);
    ASSERT_OK(shoal_actor_destroy(a));
    ASSERT_OK(shoal_actor_destroy(b));
    ASSERT_OK(shoal_shutdown());
}

/* ---- REF arguments ------------------------------------------------------------------------ */

/* Appends its REF argument's long (argument 0). */
static int m_append_ref(shoal_task *t)
{
    struct st *s = shoal_task_actor_state(t);
    long v = arg_long(t, 0);
    if (s->n < LOG_MAX)
        s->log[s->n++] = v;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_ref_args(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    shoal_ref r0 = call_long(a, m_append, 0);
    /* Call 1 takes an object not sealed yet; calls 2..9 must wait behind it. */
    void *buf;
    shoal_ref obj;
    ASSERT_OK(shoal_create(sizeof(long), &buf, &obj));
    shoal_arg ra = SHOAL_REF(obj);
    shoal_ref r1;
    ASSERT_OK(shoal_actor_submit(a, m_append_ref, &ra, 1, NULL, &r1));
    CHECK_OK(shoal_release(obj));   /* the call holds its own reference */
    shoal_ref later[8];
    for (long i = 0; i < 8; i++)
        later[i] = call_long(a, m_append, 2 + i);
    check_long(r0, 0);
    const void *d;
    size_t n;
    /* Not sealed: no later call may have run (ETIMEDOUT is the only right answer). */
    CU_ASSERT_EQUAL(shoal_get_timeout(later[0], 50 * 1000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(shoal_get_timeout(later[7], 0, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(s->n, 1);
    long one = 1;
    memcpy(buf, &one, sizeof one);
    ASSERT_OK(shoal_seal(obj));
    check_long(r1, 1);
    for (long i = 0; i < 8; i++)
        check_long(later[i], 2 + i);
    CU_ASSERT_EQUAL(s->n, 10);
    long bad = 0;
    for (long i = 0; i < s->n; i++)
        bad += s->log[i] != i;
    CU_ASSERT_EQUAL(bad, 0);

    /* A call waiting for a REF argument, canceled while queued behind a running call: it
     * is skipped when its turn comes, and the calls after it run without the argument. */
    atomic_store(&gate, 0);
    atomic_store(&blocked_in, 0);
    shoal_ref blk;
    ASSERT_OK(shoal_actor_submit(a, m_block, NULL, 0, NULL, &blk));
    CU_ASSERT_EQUAL_FATAL(wait_int(&blocked_in, 1), 1);
    shoal_ref ok_before = call_long(a, m_append, 100);
    ASSERT_OK(shoal_create(8, &buf, &obj));
    shoal_ref skipped;
    shoal_arg rf = SHOAL_REF(obj);
    ASSERT_OK(shoal_actor_submit(a, m_append_ref, &rf, 1, NULL, &skipped));
    shoal_ref ok_after = call_long(a, m_append, 101);
    CHECK_OK(shoal_cancel(skipped));
    check_fails(skipped, SHOAL_ECANCELED, "canceled by shoal_cancel");
    atomic_store(&gate, 1);
    CHECK_OK(get_within(blk, &d, &n));
    CHECK_OK(shoal_release(blk));
    check_long(ok_before, 100);
    check_long(ok_after, 101);
    ASSERT_OK(shoal_seal(obj));
    CHECK_OK(shoal_release(obj));
    CU_ASSERT_EQUAL(s->n, 12);
    ASSERT_OK(shoal_actor_destroy(a));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(info_now().bytes_used, before.bytes_used);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* A REF argument produced by a task that fails. */
static int t_fail(shoal_task *t) { return shoal_task_fail(t, "upstream broke"), 1; }

static void test_ref_arg_fails(void)
{
    start_workers(2, 0);
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, NULL, NULL, &a));
    shoal_ref up, c1;
    ASSERT_OK(shoal_submit(t_fail, NULL, 0, NULL, &up));
    shoal_arg ru = SHOAL_REF(up);
    ASSERT_OK(shoal_actor_submit(a, m_append_ref, &ru, 1, NULL, &c1));
    CHECK_OK(shoal_release(up));
    shoal_ref c2 = call_long(a, m_append, 5);
    check_fails(c1, SHOAL_ETASK, "upstream broke");
    check_long(c2, 5);
    CU_ASSERT_EQUAL(s->n, 1);
    ASSERT_OK(shoal_actor_destroy(a));
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- destroy ------------------------------------------------------------------------------ */

static void test_destroy_queued(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, &(shoal_task_opts){ .name = "acct" }, &a));
    atomic_store(&gate, 0);
    atomic_store(&blocked_in, 0);
    shoal_ref running, q[10];
    ASSERT_OK(shoal_actor_submit(a, m_block, NULL, 0, NULL, &running));
    CU_ASSERT_EQUAL_FATAL(wait_int(&blocked_in, 1), 1);
    for (long i = 0; i < 10; i++)
        q[i] = call_long(a, m_append, i);
    ASSERT_OK(shoal_actor_destroy(a));
    /* The handle is dead at once; the queued calls fail while the running one still runs. */
    shoal_ref r;
    long v = 1;
    shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
    CHECK_RC(shoal_actor_submit(a, m_append, &arg, 1, NULL, &r), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "destroyed"));
    CHECK_RC(shoal_actor_destroy(a), SHOAL_ESTALE);
    for (int i = 0; i < 10; i++)
        check_fails(q[i], SHOAL_ECANCELED, "actor acct was destroyed");
    CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 0);   /* deferred: a call runs */
    atomic_store(&gate, 1);
    const void *d;
    size_t n;
    CHECK_OK(get_within(running, &d, &n));             /* the running call finished normally */
    CHECK_OK(shoal_release(running));
    CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
    nap_ms(20);
    CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 1);    /* exactly once */
    CU_ASSERT_EQUAL(s->n, 0);                          /* no queued call ran */
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* The head call waits for an argument that is never sealed: destroy fails it and everything
 * behind it at once, and destroy(state) runs before it returns. */
static void test_destroy_waiting_head(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    void *buf;
    shoal_ref obj, head, behind[5];
    ASSERT_OK(shoal_create(sizeof(long), &buf, &obj));
    shoal_arg ra = SHOAL_REF(obj);
    ASSERT_OK(shoal_actor_submit(a, m_append_ref, &ra, 1, NULL, &head));
    for (long i = 0; i < 5; i++)
        behind[i] = call_long(a, m_append, i);
    ASSERT_OK(shoal_actor_destroy(a));
    /* The turn was held by a call that had not started: destroy took it and finished the
     * actor on this thread, before returning. */
    CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 1);
    CU_ASSERT(pthread_equal(s->destroy_thread, pthread_self()));
    check_fails(head, SHOAL_ECANCELED, "destroyed");
    for (int i = 0; i < 5; i++)
        check_fails(behind[i], SHOAL_ECANCELED, "destroyed");
    /* The argument completes later: the dead call lets go of it and never runs. */
    memset(buf, 0, sizeof(long));
    ASSERT_OK(shoal_seal(obj));
    CHECK_OK(shoal_release(obj));
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    CU_ASSERT_EQUAL(s->n, 0);
    CU_ASSERT_EQUAL(atomic_load(&s->destroyed), 1);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* destroy from inside the actor's own call: deferred until the call returns. */
static shoal_actor self_actor;
static _Atomic int self_rc = 99, destroyed_during = -1;
static int m_destroy_self(shoal_task *t)
{
    struct st *s = shoal_task_actor_state(t);
    atomic_store(&self_rc, shoal_actor_destroy(self_actor));
    atomic_store(&destroyed_during, atomic_load(&s->destroyed));
    /* The state stays valid for the rest of the call. */
    long v = shoal_task_actor_state(t) == s;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_destroy_self(void)
{
    start_workers(1, 0);
    struct st *s = st_new();
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &self_actor));
    atomic_store(&gate, 0);
    atomic_store(&blocked_in, 0);
    shoal_ref b, me, after[3];
    /* Hold the actor while the calls queue, so that they are queued behind the destroyer. */
    ASSERT_OK(shoal_actor_submit(self_actor, m_block, NULL, 0, NULL, &b));
    CU_ASSERT_EQUAL_FATAL(wait_int(&blocked_in, 1), 1);
    ASSERT_OK(shoal_actor_submit(self_actor, m_destroy_self, NULL, 0, NULL, &me));
    for (long i = 0; i < 3; i++)
        after[i] = call_long(self_actor, m_append, i);
    atomic_store(&gate, 1);
    CHECK_OK(shoal_release(b));
    check_long(me, 1);
    CU_ASSERT_EQUAL(atomic_load(&self_rc), 0);
    CU_ASSERT_EQUAL(atomic_load(&destroyed_during), 0);
    for (int i = 0; i < 3; i++)
        check_fails(after[i], SHOAL_ECANCELED, "destroyed");
    CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
    CU_ASSERT_EQUAL(s->n, 0);
    CHECK_RC(shoal_actor_destroy(self_actor), SHOAL_ESTALE);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- cancel --------------------------------------------------------------------------------- */

static void test_cancel_call(void)
{
    start_workers(2, 0);
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    atomic_store(&gate, 0);
    atomic_store(&blocked_in, 0);
    shoal_ref b;
    ASSERT_OK(shoal_actor_submit(a, m_block, NULL, 0, NULL, &b));
    CU_ASSERT_EQUAL_FATAL(wait_int(&blocked_in, 1), 1);
    shoal_ref c1 = call_long(a, m_append, 1), c2 = call_long(a, m_append, 2),
              c3 = call_long(a, m_append, 3);
    CHECK_OK(shoal_cancel(c2));                  /* queued: never runs */
    CHECK_RC(shoal_cancel(b), 1);                /* running: marked */
    atomic_store(&gate, 1);
    check_fails(b, SHOAL_ECANCELED, "while it ran");
    check_fails(c2, SHOAL_ECANCELED, "before it started");
    check_long(c1, 1);
    check_long(c3, 3);
    CU_ASSERT_EQUAL(s->n, 2);
    CU_ASSERT_EQUAL(s->log[0], 1);
    CU_ASSERT_EQUAL(s->log[1], 3);
    ASSERT_OK(shoal_actor_destroy(a));
    CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- shutdown --------------------------------------------------------------------------------- */

static void test_shutdown_live(void)
{
    start_workers(2, 0);
    struct st *s1 = st_new(), *s2 = st_new(), *s3 = st_new();
    shoal_actor a1, a2, a3;
    ASSERT_OK(shoal_actor_create(s1, st_destroy, NULL, &a1));   /* idle */
    ASSERT_OK(shoal_actor_create(s2, st_destroy, NULL, &a2));   /* head waits for an object */
    ASSERT_OK(shoal_actor_create(s3, st_destroy, NULL, &a3));   /* destroyed before */
    shoal_ref done = call_long(a1, m_append, 7);
    check_long(done, 7);
    void *buf;
    shoal_ref obj, head, q[4];
    ASSERT_OK(shoal_create(8, &buf, &obj));
    shoal_arg ra = SHOAL_REF(obj);
    ASSERT_OK(shoal_actor_submit(a2, m_append_ref, &ra, 1, NULL, &head));
    for (long i = 0; i < 4; i++)
        q[i] = call_long(a2, m_append, i);
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(shoal_get_timeout(q[3], 0, &d, &n), SHOAL_ETIMEDOUT);
    ASSERT_OK(shoal_actor_destroy(a3));
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(atomic_load(&s1->destroyed), 1);
    CU_ASSERT_EQUAL(atomic_load(&s2->destroyed), 1);
    CU_ASSERT_EQUAL(atomic_load(&s3->destroyed), 1);
    CU_ASSERT(pthread_equal(s2->destroy_thread, pthread_self()));
    CU_ASSERT_EQUAL(s2->n, 0);
    /* A new runtime: the old handles are stale, never another actor. */
    start_workers(1, 0);
    shoal_actor fresh;
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &fresh));
    shoal_ref r;
    CHECK_RC(shoal_actor_submit(a1, m_append, NULL, 0, NULL, &r), SHOAL_ESTALE);
    CHECK_RC(shoal_actor_destroy(a2), SHOAL_ESTALE);
    ASSERT_OK(shoal_actor_destroy(fresh));
    ASSERT_OK(shoal_shutdown());
    free(s1);
    free(s2);
    free(s3);
}

/* ---- handles ------------------------------------------------------------------------------------ */

/* A plain task given the handle as a VALUE submits to the actor from inside. */
static int t_via_handle(shoal_task *t)
{
    const void *d;
    size_t n;
    shoal_actor a;
    if (shoal_task_arg(t, 0, &d, &n) != 0 || n != sizeof a)
        return 1;
    memcpy(&a, d, sizeof a);
    long v = 42;
    shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
    shoal_ref r;
    if (shoal_actor_submit(a, m_append, &arg, 1, NULL, &r) != 0)
        return 2;
    const void *rd;
    size_t rn;
    int rc = shoal_get(r, &rd, &rn);   /* inside a task: the worker helps meanwhile */
    long got = rc == 0 && rn == sizeof got ? *(const long *)rd : -1;
    shoal_release(r);
    return shoal_task_return(t, &got, sizeof got);
}

static void test_handles(void)
{
    start_workers(1, 0);
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &a));
    shoal_arg h = SHOAL_VALUE(&a, sizeof a);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_via_handle, &h, 1, NULL, &r));   /* one worker: no deadlock */
    check_long(r, 42);
    CU_ASSERT_EQUAL(s->n, 1);

    shoal_actor null = { 0 }, forged = { a.id + ((uint64_t)77 << 32) },
                idx_bad = { a.id | 0x3ffffff }, host_bad = { a.id | ((uint64_t)1 << 27) };
    long v = 0;
    shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
    CHECK_RC(shoal_actor_submit(null, m_append, &arg, 1, NULL, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "null actor handle"));
    CHECK_RC(shoal_actor_submit(forged, m_append, &arg, 1, NULL, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "invalid actor handle"));
    CHECK_RC(shoal_actor_submit(idx_bad, m_append, &arg, 1, NULL, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_actor_submit(host_bad, m_append, &arg, 1, NULL, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_actor_destroy(forged), SHOAL_EINVAL);
    CHECK_RC(shoal_actor_destroy(null), SHOAL_EINVAL);
    ASSERT_OK(shoal_actor_destroy(a));
    CHECK_RC(shoal_actor_submit(a, m_append, &arg, 1, NULL, &r), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "was destroyed"));
    /* The slot is reused under a new generation: the old handle stays stale. */
    shoal_actor b;
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &b));
    CU_ASSERT_NOT_EQUAL(a.id, b.id);
    CHECK_RC(shoal_actor_submit(a, m_append, &arg, 1, NULL, &r), SHOAL_ESTALE);
    CHECK_RC(shoal_actor_destroy(a), SHOAL_ESTALE);
    ASSERT_OK(shoal_actor_destroy(b));
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_errors(void)
{
    shoal_actor a;
    shoal_ref r;
    test_reset();
    CHECK_RC(shoal_actor_create(NULL, NULL, NULL, &a), SHOAL_ENOTINIT);
    start_workers(1, 0);
    CHECK_RC(shoal_actor_create(NULL, NULL, NULL, NULL), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "out is NULL"));
    int x;
    CHECK_RC(shoal_actor_create(NULL, NULL, &(shoal_task_opts){ .ctx = &x }, &a), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "belong to calls"));
    CHECK_RC(shoal_actor_create(NULL, NULL, &(shoal_task_opts){ .numa_node = 5 }, &a),
             SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "shoal_actor_create: numa_node 5"));
    CHECK_RC(shoal_actor_create(NULL, NULL, &(shoal_task_opts){ .flags = 8 }, &a), SHOAL_EINVAL);
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &a));
    CHECK_RC(shoal_actor_submit(a, NULL, NULL, 0, NULL, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "shoal_actor_submit: fn is NULL"));
    CHECK_RC(shoal_actor_submit(a, t_state, NULL, 0, NULL, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_actor_submit(a, t_state, NULL, 3, NULL, &r), SHOAL_EINVAL);
    shoal_task_opts on1 = { .numa_node = 1 };
    CHECK_RC(shoal_actor_submit(a, t_state, NULL, 0, &on1, &r), SHOAL_EINVAL);
    /* Node 0 asked for explicitly (one node here): the calls may say so too. */
    shoal_task_opts on0 = { .numa_node = 0, .flags = SHOAL_TASK_ON_NODE };
    shoal_actor b;
    ASSERT_OK(shoal_actor_create(NULL, NULL, &on0, &b));
    ASSERT_OK(shoal_actor_submit(b, t_state, NULL, 0, &on0, &r));
    check_long(r, 1);
    ASSERT_OK(shoal_actor_submit(b, t_state, NULL, 0, NULL, &r));
    check_long(r, 1);
    ASSERT_OK(shoal_actor_destroy(b));
    /* A stale REF argument: the message names the argument, nothing is queued. */
    shoal_ref gone;
    ASSERT_OK(shoal_put("x", 1, &gone));
    CHECK_OK(shoal_release(gone));
    shoal_arg rg = SHOAL_REF(gone);
    CHECK_RC(shoal_actor_submit(a, t_state, &rg, 1, NULL, &r), SHOAL_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "shoal_actor_submit: argument 0"));
    /* A call that fails: its result says so, the actor goes on. */
    ASSERT_OK(shoal_actor_submit(a, t_fail, NULL, 0, &(shoal_task_opts){ .name = "m" }, &r));
    check_fails(r, SHOAL_ETASK, "upstream broke");
    ASSERT_OK(shoal_actor_submit(a, t_state, NULL, 0, NULL, &r));
    check_long(r, 1);   /* the actor's state is NULL */
    ASSERT_OK(shoal_actor_destroy(a));
    ASSERT_OK(shoal_shutdown());
    CHECK_RC(shoal_actor_destroy(a), SHOAL_ENOTINIT);
    CHECK_RC(shoal_actor_submit(a, t_state, NULL, 0, NULL, &r), SHOAL_ENOTINIT);
}

/* ---- placement --------------------------------------------------------------------------------- */

static int m_node(shoal_task *t)
{
    long node = shoal_worker_node((unsigned)shoal_task_worker(t));
    return shoal_task_return(t, &node, sizeof node);
}

static void test_placement(void)
{
    shoal_config c = shoal_test_config();
    c.workers = 4;
    c.topology = "pack:2 numa:1 core:2 pu:1";
    test_start(c);
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(NULL, NULL, &(shoal_task_opts){ .numa_node = 1 }, &a));
    shoal_ref r[64];
    for (int i = 0; i < 64; i++)
        ASSERT_OK(shoal_actor_submit(a, m_node, NULL, 0, NULL, &r[i]));
    for (int i = 0; i < 64; i++)
        check_long(r[i], 1);
    shoal_task_opts on0 = { .numa_node = 0, .flags = SHOAL_TASK_ON_NODE };
    CHECK_RC(shoal_actor_submit(a, m_node, NULL, 0, &on0, &r[0]), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "where the actor was placed"));
    shoal_task_opts on1 = { .numa_node = 1 };
    ASSERT_OK(shoal_actor_submit(a, m_node, NULL, 0, &on1, &r[0]));
    check_long(r[0], 1);
    ASSERT_OK(shoal_actor_destroy(a));
    ASSERT_OK(shoal_shutdown());
}

/* ---- waiting inside a call ---------------------------------------------------------------------- */

static int t_child(shoal_task *t)
{
    long v = arg_long(t, 0) * 2;
    return shoal_task_return(t, &v, sizeof v);
}

/* A call that submits a plain task and waits for it; on one worker the worker helps (runs the
 * child) but never another call of this actor, which the in-flight count would catch. */
static int m_wait_child(shoal_task *t)
{
    struct st *s = shoal_task_actor_state(t);
    if (atomic_fetch_add(&s->inflight, 1) != 0)
        atomic_fetch_add(&s->overlap, 1);
    long v = arg_long(t, 0);
    shoal_arg a = SHOAL_VALUE(&v, sizeof v);
    shoal_ref r;
    long got = -1;
    if (shoal_submit(t_child, &a, 1, NULL, &r) == 0) {
        const void *d;
        size_t n;
        if (shoal_get(r, &d, &n) == 0 && n == sizeof got)
            memcpy(&got, d, sizeof got);
        shoal_release(r);
    }
    if (s->n < LOG_MAX)
        s->log[s->n++] = v;
    atomic_fetch_sub(&s->inflight, 1);
    return shoal_task_return(t, &got, sizeof got);
}

static void test_wait_inside(void)
{
    start_workers(1, 0);
    struct st *s = st_new();
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(s, NULL, NULL, &a));
    enum { N = 200 };
    shoal_ref r[N];
    for (long i = 0; i < N; i++) {
        shoal_arg arg = SHOAL_VALUE(&i, sizeof i);
        ASSERT_OK(shoal_actor_submit(a, m_wait_child, &arg, 1, NULL, &r[i]));
    }
    for (long i = 0; i < N; i++)
        check_long(r[i], 2 * i);
    CU_ASSERT_EQUAL(atomic_load(&s->overlap), 0);
    long bad = 0;
    for (long i = 0; i < s->n; i++)
        bad += s->log[i] != i;
    CU_ASSERT_EQUAL(s->n, N);
    CU_ASSERT_EQUAL(bad, 0);
    ASSERT_OK(shoal_actor_destroy(a));
    free(s);
    ASSERT_OK(shoal_shutdown());
}

/* ---- destroy racing submissions ----------------------------------------------------------------- */

struct race { shoal_actor a; _Atomic long ok, stale, other; shoal_ref *r; long n; };
static void *race_submitter(void *p)
{
    struct race *x = p;
    for (long i = 0; i < x->n; i++) {
        long v = i;
        shoal_arg arg = SHOAL_VALUE(&v, sizeof v);
        int rc = shoal_actor_submit(x->a, m_append, &arg, 1, NULL, &x->r[i]);
        if (rc == 0)
            atomic_fetch_add(&x->ok, 1);
        else if (rc == SHOAL_ESTALE)
            atomic_fetch_add(&x->stale, 1), x->r[i] = SHOAL_REF_NULL;
        else
            atomic_fetch_add(&x->other, 1), x->r[i] = SHOAL_REF_NULL;
    }
    return NULL;
}

static void test_destroy_race(void)
{
    start_workers(2, 0);
    shoal_info before = info_now();
    for (int round = 0; round < 20 / SAN_DIV + 2; round++) {
        struct st *s = st_new();
        struct race x = { .n = 2000 };
        x.r = calloc((size_t)x.n, sizeof *x.r);
        ASSERT_OK(shoal_actor_create(s, st_destroy, NULL, &x.a));
        pthread_t th;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, race_submitter, &x), 0);
        while (atomic_load(&x.ok) < 50 * round)
            sched_yield();
        ASSERT_OK(shoal_actor_destroy(x.a));
        pthread_join(th, NULL);
        CU_ASSERT_EQUAL(atomic_load(&x.other), 0);
        /* Each accepted call either ran (its value) or failed ECANCELED; the calls that ran
         * are a prefix of the accepted ones, in order. */
        long ran = 0, canceled = 0, bad = 0;
        for (long i = 0; i < x.n; i++) {
            if (!x.r[i].id)
                continue;
            int rc;
            long v = get_long(x.r[i], &rc);
            if (rc == 0 && v == i)
                ran++;
            else if (rc == SHOAL_ECANCELED && strstr(shoal_last_error(), "destroyed"))
                canceled++;
            else
                bad++;
            CHECK_OK(shoal_release(x.r[i]));
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(ran + canceled, atomic_load(&x.ok));
        CU_ASSERT_EQUAL(ran, s->n);
        CU_ASSERT_EQUAL(wait_int(&s->destroyed, 1), 1);
        long order = 0;
        for (long i = 0; i < s->n; i++)
            order += s->log[i] != i;
        CU_ASSERT_EQUAL(order, 0);
        free(x.r);
        free(s);
    }
    CU_ASSERT_EQUAL(live_settled(before.objects_live), before.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* ---- an attached client ------------------------------------------------------------------ */

/* The client: attach to store name, try every actor call on the owner's actor handle
 * (hex); exit 0 when each answered SHOAL_EPERM, else a bit per call that did not. */
static int client_main(const char *name, const char *handle)
{
    alarm(60);   /* a hang fails, never blocks the suite */
    shoal_actor a = { strtoull(handle, NULL, 16) }, mine;
    shoal_ref r;
    if (shoal_attach(name) != 0)
        return 100;
    int bad = 0;
    bad |= (shoal_actor_create(NULL, NULL, NULL, &mine) != SHOAL_EPERM) << 0;
    bad |= (strstr(shoal_last_error(), "attached client") == NULL) << 1;
    bad |= (shoal_actor_submit(a, t_state, NULL, 0, NULL, &r) != SHOAL_EPERM) << 2;
    bad |= (shoal_actor_destroy(a) != SHOAL_EPERM) << 3;
    shoal_shutdown();
    return bad;
}

/* A client process (this program again, posix_spawn'ed: no fork of a threaded process)
 * attaches to this process's published store: every actor call answers SHOAL_EPERM there
 * (the actors live with the workers, in the owner). */
static void test_client_eperm(void)
{
    char dir[64], name[64], handle[32];
    CU_ASSERT_EQUAL_FATAL(test_private_run_dir(dir, sizeof dir), 0);
    snprintf(name, sizeof name, "actor-%d", (int)getpid());
    shoal_config c = shoal_test_config();
    c.workers = 1;
    c.name = name;
    test_start(c);
    shoal_actor a;
    ASSERT_OK(shoal_actor_create(NULL, NULL, NULL, &a));
    snprintf(handle, sizeof handle, "%llx", (unsigned long long)a.id);
    char *argv[] = { "test_actor", "--client", name, handle, NULL };
    pid_t pid;
    CU_ASSERT_EQUAL_FATAL(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "client: status %#x\n", st);
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
    /* The actor is untouched. */
    shoal_ref r;
    ASSERT_OK(shoal_actor_submit(a, t_state, NULL, 0, NULL, &r));
    check_long(r, 1);
    ASSERT_OK(shoal_actor_destroy(a));
    ASSERT_OK(shoal_shutdown());
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--client") == 0)
        return client_main(argv[2], argv[3]);
    static const shoal_test_case cases[] = {
        { "calls run in submission order", test_order },
        { "three submitters: serial, each thread's order kept", test_serial_concurrent },
        { "round trips: a worker waiting for the next call; destroy, shutdown", test_round_trips },
        { "calls see the state; plain tasks see NULL", test_state },
        { "actors run in parallel with actors and tasks", test_parallel },
        { "REF arguments: later calls wait behind a pending one", test_ref_args },
        { "a failed REF argument fails that call only", test_ref_arg_fails },
        { "destroy: queued calls fail, the running one finishes", test_destroy_queued },
        { "destroy: a head waiting for its argument fails at once", test_destroy_waiting_head },
        { "destroy from inside the actor's own call is deferred", test_destroy_self },
        { "shoal_cancel of a queued and of a running call", test_cancel_call },
        { "shutdown with live actors destroys them", test_shutdown_live },
        { "handles: as VALUEs, null, forged, stale, reused slot", test_handles },
        { "errors and their messages", test_errors },
        { "placement on a node of a 2-node topology", test_placement },
        { "waiting inside a call on one worker", test_wait_inside },
        { "destroy racing a submitting thread", test_destroy_race },
        { "an attached client gets SHOAL_EPERM", test_client_eperm },
        { NULL, NULL },
    };
    return shoal_test_run("actor", cases);
}
