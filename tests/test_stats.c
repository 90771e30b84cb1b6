/* test_stats.c - the lookup counters of shoal_stats_get: a known sequence of fast gets,
 * stale and invalid refs, waits and re-inits yields exactly the expected deltas; exited
 * threads keep their counts; readers and counting threads run concurrently (TSan); the
 * size argument is forward compatible; the owner's workers publish their counters in the
 * segment, where shoal-stat reads them. Compiled with SHOAL_COUNT_GETS so that the inline
 * fast path counts its hits too. */
#define SHOAL_COUNT_GETS 1
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "../layout/mpseg.h"   /* the per-worker lines the segment publishes */

static shoal_stats snap(void)
{
    shoal_stats s;
    memset(&s, 0xa5, sizeof s);
    int rc = shoal_stats_get(&s, sizeof s);
    if (rc != 0)
        fprintf(stderr, "shoal_stats_get = %d: %s\n", rc, shoal_last_error());
    CU_ASSERT_EQUAL(rc, 0);
    return s;
}

#define DELTA(b, a, field) ((long long)((a).field - (b).field))

static shoal_ref put_str(const char *s)
{
    shoal_ref r = SHOAL_REF_NULL;
    CHECK_OK(shoal_put(s, strlen(s) + 1, &r));
    return r;
}

static void test_fast_gets_counted(void)
{
    test_start(shoal_test_config());
    shoal_ref a = put_str("a");
    const void *d;
    size_t n;
    CHECK_OK(shoal_get(a, &d, &n));              /* the view is warm after the put */
    shoal_stats s0 = snap();
    for (int i = 0; i < 10; i++)
        CHECK_OK(shoal_get(a, &d, &n));
    /* The library's own shoal_get is compiled without SHOAL_COUNT_GETS: not counted. */
    CHECK_OK((shoal_get)(a, &d, &n));
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_fast), 10);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_slow), 0);
    CU_ASSERT_EQUAL(DELTA(s0, s1, stale_ids), 0);
    CU_ASSERT_EQUAL(DELTA(s0, s1, invalid_ids), 0);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_waits), 0);
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_shutdown());
}

static void test_stale_and_invalid(void)
{
    test_start(shoal_test_config());
    shoal_ref a = put_str("live"), b = put_str("freed");
    CHECK_OK(shoal_release(b));
    const void *d;
    size_t n;
    shoal_stats s0 = snap();
    CHECK_RC(shoal_get(b, &d, &n), SHOAL_ESTALE);                          /* stale +1 */
    CHECK_RC(shoal_get(SHOAL_REF_NULL, &d, &n), SHOAL_EINVAL);             /* invalid +1 */
    CHECK_RC(shoal_get((shoal_ref){ a.id | (UINT64_C(1) << 30) }, &d, &n),
             SHOAL_EINVAL);                               /* a host field: invalid +1 */
    CHECK_RC(shoal_release(b), SHOAL_ESTALE);                              /* stale +1 */
    CHECK_RC(shoal_retain(SHOAL_REF_NULL), SHOAL_EINVAL);                  /* invalid +1 */
    CHECK_OK(shoal_get(a, &d, &n));                                        /* fast +1 */
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, stale_ids), 2);
    CU_ASSERT_EQUAL(DELTA(s0, s1, invalid_ids), 3);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_slow), 3);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_fast), 1);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_waits), 0);
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_shutdown());
}

struct sealer {
    shoal_ref ref;
    uint64_t sleeps_before;
    int saw_sleep, rc;
};

/* Seal the object only once the waiter has gone to sleep in the kernel, as the counter
 * shows: no timing assumption. Gives up (and seals anyway) after 30 s. */
static void *sealer_main(void *p)
{
    struct sealer *s = p;
    struct timespec pause = { 0, 1000000 };
    for (int i = 0; i < 30000; i++) {
        shoal_stats now;
        if (shoal_stats_get(&now, sizeof now) == 0 && now.wait_sleeps > s->sleeps_before) {
            s->saw_sleep = 1;
            break;
        }
        nanosleep(&pause, NULL);
    }
    s->rc = shoal_seal(s->ref);
    return NULL;
}

static void test_waits_counted(void)
{
    test_start(shoal_test_config());
    void *buf;
    shoal_ref c;
    ASSERT_OK(shoal_create(8, &buf, &c));
    memcpy(buf, "unseal", 7);
    const void *d;
    size_t n;
    shoal_stats s0 = snap();
    CHECK_RC(shoal_get_timeout(c, 0, &d, &n), SHOAL_ETIMEDOUT);            /* a poll waits */
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_waits), 1);
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_slow), 1);
    CU_ASSERT_EQUAL(DELTA(s0, s1, wait_sleeps), 0);

    struct sealer sl = { .ref = c, .sleeps_before = s1.wait_sleeps };
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, sealer_main, &sl));
    CHECK_OK(shoal_get_timeout(c, (int64_t)60 * 1000000000, &d, &n));
    pthread_join(th, NULL);
    CHECK_OK(sl.rc);
    CU_ASSERT_TRUE(sl.saw_sleep);
    shoal_stats s2 = snap();
    CU_ASSERT_EQUAL(DELTA(s1, s2, get_waits), 1);
    CU_ASSERT_TRUE(DELTA(s1, s2, wait_sleeps) >= 1);
    CU_ASSERT_EQUAL(DELTA(s1, s2, stale_ids), 0);
    CHECK_OK(shoal_release(c));
    CHECK_OK(shoal_shutdown());
}

static void test_refresh_after_reinit(void)
{
    test_start(shoal_test_config());
    shoal_ref old = put_str("old store");
    CHECK_OK(shoal_shutdown());
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    const void *d;
    size_t n;
    shoal_stats s0 = snap();
    /* This thread's view is stale: the get refreshes it, then finds the old ref foreign. */
    ASSERT_RC2(shoal_get(old, &d, &n), SHOAL_EINVAL, SHOAL_ESTALE);
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_slow), 1);
    /* Workers may refresh their own views meanwhile: at least ours. */
    CU_ASSERT_TRUE(DELTA(s0, s1, tls_refresh) >= 1);
    CU_ASSERT_EQUAL(DELTA(s0, s1, stale_ids) + DELTA(s0, s1, invalid_ids), 1);
    CHECK_OK(shoal_shutdown());
}

struct counter_thread {
    shoal_ref live, dead;
    int gets;
    int errors;
};

static void *counter_main(void *p)
{
    struct counter_thread *ct = p;
    const void *d;
    size_t n;
    /* A new thread's first get takes the slow path (empty view) and refreshes. */
    for (int i = 0; i < ct->gets; i++)
        ct->errors += shoal_get(ct->live, &d, &n) != 0;
    ct->errors += shoal_get(ct->dead, &d, &n) != SHOAL_ESTALE;
    return NULL;
}

static void test_exited_threads_kept(void)
{
    test_start(shoal_test_config());
    shoal_ref live = put_str("shared"), dead = put_str("gone");
    CHECK_OK(shoal_release(dead));
    enum { T = 3, GETS = 50 };
    struct counter_thread ct[T];
    pthread_t th[T];
    shoal_stats s0 = snap();
    for (int i = 0; i < T; i++) {
        ct[i] = (struct counter_thread){ .live = live, .dead = dead, .gets = GETS };
        ASSERT_OK(pthread_create(&th[i], NULL, counter_main, &ct[i]));
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(ct[i].errors, 0);
    }
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_fast), T * (GETS - 1));
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_slow), T * 2);
    CU_ASSERT_EQUAL(DELTA(s0, s1, stale_ids), T);
    CU_ASSERT_TRUE(DELTA(s0, s1, tls_refresh) >= T);
    CHECK_OK(shoal_release(live));
    CHECK_OK(shoal_shutdown());
}

struct hammer {
    shoal_ref ref;
    int iters;
    _Atomic int *done;
    int errors;
};

static void *hammer_main(void *p)
{
    struct hammer *h = p;
    const void *d;
    size_t n;
    for (int i = 0; i < h->iters; i++)
        h->errors += shoal_get(h->ref, &d, &n) != 0;
    atomic_fetch_add(h->done, 1);
    return NULL;
}

/* Readers fold the counters while their owners write them: exact once they are quiet. */
static void test_concurrent_readers(void)
{
    test_start(shoal_test_config());
    shoal_ref r = put_str("hot");
    enum { T = 2 };
    const int iters = 200000 / SAN_DIV;
    _Atomic int done = 0;
    struct hammer h[T];
    pthread_t th[T];
    shoal_stats s0 = snap();
    for (int i = 0; i < T; i++) {
        h[i] = (struct hammer){ .ref = r, .iters = iters, .done = &done };
        ASSERT_OK(pthread_create(&th[i], NULL, hammer_main, &h[i]));
    }
    uint64_t last = s0.get_fast;
    int monotonic = 1, fails = 0;
    while (atomic_load(&done) < T) {
        shoal_stats s;
        fails += shoal_stats_get(&s, sizeof s) != 0;
        monotonic &= s.get_fast >= last;
        last = s.get_fast;
    }
    CU_ASSERT_EQUAL(fails, 0);
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(h[i].errors, 0);
    }
    CU_ASSERT_TRUE(monotonic);
    shoal_stats s1 = snap();
    CU_ASSERT_EQUAL(DELTA(s0, s1, get_fast) + DELTA(s0, s1, get_slow), (long long)T * iters);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

static void test_size_and_errors(void)
{
    test_reset();
    /* No runtime needed: the counters belong to the process. */
    shoal_stats s;
    CHECK_OK(shoal_stats_get(&s, sizeof s));
    CHECK_RC(shoal_stats_get(NULL, sizeof s), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "NULL"));
    CHECK_RC(shoal_stats_get(&s, 0), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "sizeof(shoal_stats)"));

    /* A newer caller's larger struct: the unknown tail is zeroed. */
    unsigned char big[sizeof(shoal_stats) + 16];
    memset(big, 0xff, sizeof big);
    CHECK_OK(shoal_stats_get((shoal_stats *)(void *)big, sizeof big));
    for (size_t i = sizeof(shoal_stats); i < sizeof big; i++)
        CU_ASSERT_EQUAL(big[i], 0);
    /* An older caller's smaller struct: nothing past its size is written. */
    memset(big, 0xff, sizeof big);
    CHECK_OK(shoal_stats_get((shoal_stats *)(void *)big, sizeof(uint64_t)));
    for (size_t i = sizeof(uint64_t); i < sizeof big; i++)
        CU_ASSERT_EQUAL(big[i], 0xff);
}

static int one_byte(shoal_task *t) { return shoal_task_return(t, "x", 1); }

/* The owner's workers count what they run, steal and park on their own lines of the
 * segment (layout/mpseg.h), which tools read from another process: the lines add up to the
 * scheduler's own figures, and shoal-stat prints them. */
static void test_worker_lines_published(void)
{
    test_reset();
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/shoal-test-stats-%d-XXXXXX", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    setenv("SHOAL_RUN_DIR", dir, 1);
    char name[64];
    snprintf(name, sizeof name, "test-stats-%d", (int)getpid());
    shoal_config c = shoal_test_config();
    c.name = name;
    ASSERT_OK(shoal_init(&c));
    enum { N = 200 };
    shoal_ref r[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(shoal_submit(one_byte, NULL, 0, NULL, &r[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t n;
        CHECK_OK(shoal_get_timeout(r[i], 30000000000LL, &d, &n));
        CHECK_OK(shoal_release(r[i]));
    }
    shoal_info info;
    ASSERT_OK(shoal_info_get(&info));
    const struct shoal__mp *x = shoal__geo.ext;
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(atomic_load(&x->nworkers), info.workers);
    uint64_t run = 0, stolen = 0;
    for (unsigned i = 0; i < info.workers; i++) {
        run += atomic_load(&shoal__geo.wstats[i].tasks_run);
        stolen += atomic_load(&shoal__geo.wstats[i].tasks_stolen);
        CU_ASSERT_EQUAL(shoal__geo.wstats[i].node, shoal_worker_node(i));
    }
    CU_ASSERT(run >= N);
    CU_ASSERT_EQUAL(run, info.tasks_run);
    CU_ASSERT_EQUAL(stolen, info.tasks_stolen);

    char tool[PATH_MAX], cmd[PATH_MAX + 128], out[16384];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "%s %s --json 2>&1", tool, name);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
    uint64_t shown = 0;
    unsigned lines = 0;
    for (const char *p = strstr(out, "{\"worker\":"); p; p = strstr(p + 1, "{\"worker\":")) {
        const char *q = strstr(p, "\"tasks_run\":");
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        shown += strtoull(q + strlen("\"tasks_run\":"), NULL, 10);
        lines++;
    }
    CU_ASSERT_EQUAL(lines, info.workers);
    CU_ASSERT_EQUAL(shown, run);
    if (shown != run)
        fprintf(stderr, "shoal-stat said: %s\n", out);
    CHECK_OK(shoal_shutdown());
    unsetenv("SHOAL_RUN_DIR");
    CU_ASSERT_EQUAL(rmdir(dir), 0);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "fast-path gets are counted (SHOAL_COUNT_GETS)", test_fast_gets_counted },
        { "stale and invalid refs are counted", test_stale_and_invalid },
        { "waits on unsealed objects and sleeps", test_waits_counted },
        { "a re-init refreshes the thread's view", test_refresh_after_reinit },
        { "exited threads keep their counts", test_exited_threads_kept },
        { "readers fold while threads count", test_concurrent_readers },
        { "size is forward compatible; errors", test_size_and_errors },
        { "workers publish their counters; shoal-stat prints them", test_worker_lines_published },
        { NULL, NULL },
    };
    return shoal_test_run("stats", cases);
}
