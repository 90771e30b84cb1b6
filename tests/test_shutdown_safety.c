/* test_shutdown_safety.c - shoal_shutdown is safe from anywhere: inside a task it answers
 * SHOAL_EBUSY; threads blocked in shoal_get / shoal_wait on objects nobody completes, and
 * tasks blocked in shoal_get (or get_timeout), return SHOAL_ECANCELED in bounded time and
 * do not hold shutdown up; threads hammering every call while another thread shuts down
 * see only the codes of a runtime going away and never crash (also run under ASan and
 * TSan); two concurrent shutdowns do the work once. Threads are joined with deadlines.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/tasks.h"

static int join_within(pthread_t th, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_timedjoin_np(th, NULL, &ts);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t wait_sleeps(void)
{
    shoal_stats s;
    memset(&s, 0, sizeof s);
    shoal_stats_get(&s, sizeof s);
    return s.wait_sleeps;
}

/* ---- inside a task ------------------------------------------------------------------------ */

static _Atomic int in_task_rc = 1;
static char in_task_msg[512];

static int t_shutdown(shoal_task *t)
{
    (void)t;
    int rc = shoal_shutdown();
    snprintf(in_task_msg, sizeof in_task_msg, "%s", shoal_last_error());
    atomic_store(&in_task_rc, rc);
    return 0;
}

static void test_shutdown_in_task(void)
{
    start_workers(2, 0);
    atomic_store(&in_task_rc, 1);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_shutdown, NULL, 0, NULL, &r));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get_timeout(r, (int64_t)30 * 1000000000, &d, &n));
    CU_ASSERT_EQUAL(atomic_load(&in_task_rc), SHOAL_EBUSY);
    CU_ASSERT_PTR_NOT_NULL(strstr(in_task_msg, "inside a task"));
    /* the runtime is intact */
    shoal_ref p;
    ASSERT_OK(shoal_put("ok", 3, &p));
    CHECK_OK(shoal_release(p));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* ---- blocked threads wake with ECANCELED ------------------------------------------------- */

struct blocked { int kind; shoal_ref refs[2]; int rc; char msg[512]; };

static void *block(void *p)
{
    struct blocked *b = p;
    const void *d;
    size_t n;
    switch (b->kind) {
    case 0: b->rc = shoal_get(b->refs[0], &d, &n); break;                    /* for ever */
    case 1: b->rc = shoal_wait(b->refs, 2, 1, -1, NULL); break;              /* for ever */
    case 2: b->rc = shoal_get_timeout(b->refs[0], (int64_t)120 * 1000000000, &d, &n); break;
    default: b->rc = shoal_wait(b->refs, 1, 1, -1, NULL); break;
    }
    snprintf(b->msg, sizeof b->msg, "%s", shoal_last_error());
    return NULL;
}

static void test_blocked_threads_canceled(void)
{
    start_workers(2, 0);
    void *buf;
    shoal_ref u, v;
    ASSERT_OK(shoal_create(8, &buf, &u));   /* never sealed */
    ASSERT_OK(shoal_create(8, &buf, &v));
    enum { NB = 4 };
    struct blocked b[NB];
    pthread_t th[NB];
    uint64_t s0 = wait_sleeps();
    for (int i = 0; i < NB; i++) {
        b[i] = (struct blocked){ .kind = i, .refs = { u, v }, .rc = 1 };
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, block, &b[i]) == 0);
    }
    for (int i = 0; i < 20000 && wait_sleeps() - s0 < NB; i++)
        nap_ms(1);
    CU_ASSERT(wait_sleeps() - s0 >= NB);   /* all asleep in the kernel */
    double t0 = now_s();
    ASSERT_OK(shoal_shutdown());
    for (int i = 0; i < NB; i++) {
        int j = join_within(th[i], 20);
        CU_ASSERT_EQUAL(j, 0);
        if (j != 0) {
            fprintf(stderr, "waiter %d still blocked 20 s after shutdown\n", i);
            continue;
        }
        CU_ASSERT_EQUAL(b[i].rc, SHOAL_ECANCELED);
        CU_ASSERT_PTR_NOT_NULL(strstr(b[i].msg, "shutting down"));
    }
    fprintf(stderr, "shutdown + wake-ups took %.3f s\n", now_s() - t0);
}

/* ---- tasks blocked in get do not hold shutdown up --------------------------------------- */

static _Atomic int task_blocked, task_rc = 1;

static int t_block_get(shoal_task *t)
{
    shoal_ref u;
    const void *d;
    size_t n;
    if (shoal_task_arg_ref(t, 0, &u))
        return 1;
    int timed = shoal_task_nargs(t) > 1;
    atomic_store(&task_blocked, 1);
    int rc = timed ? shoal_get_timeout(u, (int64_t)60 * 1000000000, &d, &n)
                   : shoal_get(u, &d, &n);
    atomic_store(&task_rc, rc);
    return 0;
}

static void task_blocked_case(int timed)
{
    start_workers(1, 0);
    atomic_store(&task_blocked, 0);
    atomic_store(&task_rc, 1);
    void *buf;
    shoal_ref u, r;
    ASSERT_OK(shoal_create(8, &buf, &u));
    shoal_arg a[2] = { SHOAL_REF_PASS(u), SHOAL_VALUE("t", 1) };
    ASSERT_OK(shoal_submit(t_block_get, a, timed ? 2 : 1, NULL, &r));
    for (int i = 0; i < 20000 && !atomic_load(&task_blocked); i++)
        nap_ms(1);
    CU_ASSERT_FATAL(atomic_load(&task_blocked));
    nap_ms(20);   /* well inside its get (not needed for the result: shutdown wakes it) */
    double t0 = now_s();
    ASSERT_OK(shoal_shutdown());
    double took = now_s() - t0;
    fprintf(stderr, "shutdown with a task in %s took %.3f s\n",
            timed ? "get_timeout(60 s)" : "get", took);
    CU_ASSERT(took < 30.0);   /* 8a82041: for ever, or the whole 60 s */
    CU_ASSERT_EQUAL(atomic_load(&task_rc), SHOAL_ECANCELED);
}

static void test_task_in_get(void) { task_blocked_case(0); }
static void test_task_in_get_timeout(void) { task_blocked_case(1); }

/* ---- hammering every call while another thread shuts down -------------------------------- */

static _Atomic int hammer_stop;

struct hammer {
    int id;
    long calls, bad;
    int bad_rc;
    char bad_msg[300];
    const char *path;
};

static int t_nop(shoal_task *t)
{
    (void)t;
    return 0;
}

static void hammer_bad(struct hammer *h, const char *call, int rc)
{
    if (h->bad++ == 0) {
        h->bad_rc = rc;
        snprintf(h->bad_msg, sizeof h->bad_msg, "%s = %d: %s", call, rc, shoal_last_error());
    }
}

/* The codes of a runtime going away; ESTALE only for a release of something released. */
static int going(int rc) { return rc == SHOAL_ENOTINIT || rc == SHOAL_ECANCELED; }

#define EXPECT(call, ok_extra) do {                                                    \
        int rc_ = (call);                                                              \
        if (rc_ != 0 && !going(rc_) && !(ok_extra))                                    \
            hammer_bad(h, #call, rc_);                                                 \
    } while (0)

static void *hammer(void *p)
{
    struct hammer *h = p;
    uint64_t seed = 0x1234567 + (uint64_t)h->id;
    while (!atomic_load_explicit(&hammer_stop, memory_order_relaxed)) {
        shoal_ref r = SHOAL_REF_NULL, t = SHOAL_REF_NULL, f = SHOAL_REF_NULL;
        const void *d;
        size_t n;
        unsigned char buf[64];
        pat_fill(buf, sizeof buf, (uint64_t)h->id, h->calls);
        int rc = shoal_put(buf, 1 + rnd_next(&seed) % sizeof buf, &r);
        EXPECT(rc, 0);
        if (rc == 0) {
            int g = shoal_get(r, &d, &n);          /* inline fast path */
            EXPECT(g, 0);
            EXPECT(shoal_get_timeout(r, 0, &d, &n), 0);
            EXPECT(shoal_retain(r), 0);
            EXPECT(shoal_release(r), 0);
        }
        switch (rnd_next(&seed) % 6) {
        case 0: {
            int s = shoal_submit(t_nop, NULL, 0, NULL, &t);
            EXPECT(s, 0);
            if (s == 0) {
                int g = shoal_get_timeout(t, 1000000, &d, &n);
                EXPECT(g, g == SHOAL_ETIMEDOUT);
                EXPECT(shoal_release(t), 0);
            }
            break;
        }
        case 1:
            if (rc == 0) {
                int w = shoal_wait(&r, 1, 1, 1000000, NULL);
                EXPECT(w < 0 ? w : 0, 0);
            }
            break;
        case 2: {
            void *cb;
            shoal_ref c;
            int cr = shoal_create(16, &cb, &c);
            EXPECT(cr, 0);
            if (cr == 0) {
                memset(cb, 1, 16);
                EXPECT(shoal_seal(c), 0);
                EXPECT(shoal_release(c), 0);
            }
            break;
        }
        case 3: {
            shoal_info i;
            EXPECT(shoal_info_get(&i), 0);
            shoal_stats s;
            EXPECT(shoal_stats_get(&s, sizeof s), 0);
            if (rc == 0) {
                int nd = shoal_object_node(r);
                EXPECT(nd < 0 ? nd : 0, 0);
            }
            break;
        }
        case 4:
            if (h->path) {
                int pf = shoal_put_file(h->path, 0, 0, &f);
                EXPECT(pf, 0);
                if (pf == 0) {
                    int g = shoal_get_timeout(f, 1000000, &d, &n);
                    EXPECT(g, g == SHOAL_ETIMEDOUT);
                    EXPECT(shoal_release(f), 0);
                }
            }
            break;
        default: {
            const void *const data[2] = { buf, buf };
            const size_t lens[2] = { 8, 16 };
            shoal_ref out[2];
            int pb = shoal_put_batch(2, data, lens, out);
            EXPECT(pb, 0);
            if (pb == 0) {
                EXPECT(shoal_release(out[0]), 0);
                EXPECT(shoal_release(out[1]), 0);
            }
            break;
        }
        }
        if (rc == 0)
            EXPECT(shoal_release(r), 0);
        h->calls++;
    }
    return NULL;
}

static void test_hammer_while_shutting_down(void)
{
    char path[] = "/tmp/shoal-trust1-hammer-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, "0123456789abcdef", 16) == 16);
    close(fd);
    enum { NH = 6 };
    int rounds = 40 / SAN_DIV + 4;
    long total = 0;
    for (int round = 0; round < rounds; round++) {
        start_workers(2, 0);
        atomic_store(&hammer_stop, 0);
        struct hammer h[NH];
        pthread_t th[NH];
        for (int i = 0; i < NH; i++) {
            h[i] = (struct hammer){ .id = i + 10 * round, .path = (i % 2) ? path : NULL };
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, hammer, &h[i]) == 0);
        }
        nap_ms(1 + round % 7);
        ASSERT_OK(shoal_shutdown());
        nap_ms(2);   /* calls against no runtime */
        atomic_store(&hammer_stop, 1);
        for (int i = 0; i < NH; i++) {
            int j = join_within(th[i], 60);
            CU_ASSERT_EQUAL_FATAL(j, 0);
            total += h[i].calls;
            if (h[i].bad)
                fprintf(stderr, "round %d thread %d: %ld unexpected answers, first: %s\n",
                        round, i, h[i].bad, h[i].bad_msg);
            CU_ASSERT_EQUAL(h[i].bad, 0);
        }
    }
    fprintf(stderr, "%d rounds, %ld hammer iterations\n", rounds, total);
    unlink(path);
}

/* ---- two shutdowns at once ---------------------------------------------------------------- */

static _Atomic int go;
static void *do_shutdown(void *p)
{
    for (long i = 0; i < 2000000000L && !atomic_load(&go); i++)   /* a spin start, bounded */
        ;
    *(int *)p = shoal_shutdown();
    return NULL;
}

static int t_busy(shoal_task *t)
{
    (void)t;
    nap_ms(30);   /* keeps the first shutdown in sched_stop for a while */
    return 0;
}

static void test_concurrent_shutdowns(void)
{
    for (int round = 0; round < 10; round++) {
        start_workers(2, 0);
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_busy, NULL, 0, NULL, &r));
        enum { NS = 3 };
        int rc[NS];
        pthread_t th[NS];
        atomic_store(&go, 0);
        for (int i = 0; i < NS; i++) {
            rc[i] = 1;
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, do_shutdown, &rc[i]) == 0);
        }
        atomic_store(&go, 1);
        int ok = 0, notinit = 0;
        for (int i = 0; i < NS; i++) {
            CU_ASSERT_EQUAL_FATAL(join_within(th[i], 60), 0);
            ok += rc[i] == 0;
            notinit += rc[i] == SHOAL_ENOTINIT;
        }
        CU_ASSERT_EQUAL(ok, 1);
        CU_ASSERT_EQUAL(notinit, NS - 1);
    }
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "shoal_shutdown inside a task answers EBUSY", test_shutdown_in_task },
        { "blocked get/wait return ECANCELED at shutdown", test_blocked_threads_canceled },
        { "a task blocked in get does not hold shutdown", test_task_in_get },
        { "a task in get_timeout does not hold shutdown", test_task_in_get_timeout },
        { "every call while another thread shuts down", test_hammer_while_shutting_down },
        { "concurrent shutdowns: one does it", test_concurrent_shutdowns },
        { NULL, NULL },
    };
    return shoal_test_run("shutdown_safety", cases);
}
