/* test_wakeups.c - completions wake only their own waiters: W threads each sleeping on its
 * own object, completing one wakes one (counted through shoal_stats.wait_sleeps: a woken
 * thread whose object is still pending goes back to sleep, which counts again), and no
 * wake-up is ever lost, with single- and multi-object waits, shared wake words and frees.
 * Every blocking call has a timeout: a lost wake-up fails instead of hanging.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"

#define WAIT_NS ((int64_t)20 * 1000000000)   /* a lost wake-up fails after this */

static uint64_t sleeps(void)
{
    shoal_stats s;
    CU_ASSERT_EQUAL(shoal_stats_get(&s, sizeof s), 0);
    return s.wait_sleeps;
}

static void nap_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* Join with a deadline, so that a thread stuck in a wait fails the test. */
static int join_within(pthread_t th, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_timedjoin_np(th, NULL, &ts);
}

struct waiter { shoal_ref ref; int rc; };

static void *wait_one(void *p)
{
    struct waiter *w = p;
    const void *d;
    size_t n;
    w->rc = shoal_get_timeout(w->ref, WAIT_NS, &d, &n);
    return NULL;
}

/* W threads wait on W objects whose slots map to different wake words; sealing them one
 * by one makes no thread sleep again (8a82041 woke all W at each seal: W(W-1)/2 re-sleeps). */
static void test_only_its_waiter_wakes(void)
{
    test_start(shoal_test_config());
    enum { W = 8 };
    struct waiter w[W];
    void *buf;
    int have = 0;
    shoal_ref spare[64];
    int nspare = 0;
    /* Objects in slots with different index bytes (the words are per slot index modulo a
     * power of two of at least 256). */
    while (have < W && nspare < 64) {
        shoal_ref r;
        ASSERT_OK(shoal_create(8, &buf, &r));
        int clash = 0;
        for (int i = 0; i < have; i++)
            clash |= ((w[i].ref.id ^ r.id) & 0xff) == 0;
        if (clash)
            spare[nspare++] = r;
        else
            w[have++].ref = r;
    }
    CU_ASSERT_EQUAL_FATAL(have, W);
    uint64_t s0 = sleeps();
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        w[i].rc = 1;
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, wait_one, &w[i]) == 0);
    }
    /* Every waiter asleep in the kernel (bounded: a waiter that never sleeps fails). */
    for (int i = 0; i < 20000 && sleeps() - s0 < W; i++)
        nap_us(500);
    uint64_t s1 = sleeps();
    CU_ASSERT_EQUAL(s1 - s0, W);
    for (int i = 0; i < W; i++) {
        ASSERT_OK(shoal_seal(w[i].ref));
        CU_ASSERT_EQUAL(join_within(th[i], 30), 0);
        CU_ASSERT_EQUAL(w[i].rc, 0);
    }
    uint64_t s2 = sleeps();
    if (s2 != s1)
        fprintf(stderr, "%llu extra sleeps after %d seals: other waiters were woken\n",
                (unsigned long long)(s2 - s1), W);
    CU_ASSERT_EQUAL(s2 - s1, 0);
    for (int i = 0; i < W; i++)
        CHECK_OK(shoal_release(w[i].ref));
    for (int i = 0; i < nspare; i++) {
        CHECK_OK(shoal_seal(spare[i]));
        CHECK_OK(shoal_release(spare[i]));
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- stress: no lost wake-ups --------------------------------------------------------- */

enum { K = 300, WT = 5 };   /* more objects than wake words: words are shared */

struct round {
    shoal_ref refs[K];
    int order[K];
    int bad;
    pthread_mutex_t mu;
};

struct stress_arg { struct round *r; int id; };

static void *stress_waiter(void *p)
{
    struct stress_arg *a = p;
    struct round *r = a->r;
    int bad = 0;
    if (a->id == 0) {
        /* all of them at once: the multi-object path */
        bool *ready = calloc(K, sizeof *ready);
        int c = shoal_wait(r->refs, K, K, WAIT_NS, ready);
        if (c != K) {
            fprintf(stderr, "shoal_wait(all) = %d: %s\n", c, shoal_last_error());
            bad++;
        }
        free(ready);
    } else if (a->id == 1) {
        /* three at a time, any one of them */
        for (int i = 0; i + 3 <= K; i += 3) {
            int c = shoal_wait(&r->refs[i], 3, 1, WAIT_NS, NULL);
            if (c < 1) {
                fprintf(stderr, "shoal_wait(3, 1) = %d: %s\n", c, shoal_last_error());
                bad++;
            }
        }
    } else {
        for (int i = a->id; i < K; i += WT) {
            const void *d;
            size_t n;
            int rc = shoal_get_timeout(r->refs[i], WAIT_NS, &d, &n);
            if (rc != 0 || n != sizeof(int) || *(const int *)d != i) {
                fprintf(stderr, "get %d = %d: %s\n", i, rc, shoal_last_error());
                bad++;
            }
        }
    }
    pthread_mutex_lock(&r->mu);
    r->bad += bad;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *stress_sealer(void *p)
{
    struct round *r = p;
    for (int i = 0; i < K; i++) {
        int k = r->order[i];
        if (shoal_seal(r->refs[k]) != 0) {
            pthread_mutex_lock(&r->mu);
            r->bad++;
            pthread_mutex_unlock(&r->mu);
        }
        if ((i & 31) == 0)
            sched_yield();
    }
    return NULL;
}

static void test_no_lost_wakeups(void)
{
    test_start(shoal_test_config());
    uint64_t seed = 0x77aa55cc33ee1100ull;
    int rounds = 200 / SAN_DIV + 2;
    for (int round = 0; round < rounds; round++) {
        struct round *r = calloc(1, sizeof *r);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        pthread_mutex_init(&r->mu, NULL);
        for (int i = 0; i < K; i++) {
            void *buf;
            ASSERT_OK(shoal_create(sizeof(int), &buf, &r->refs[i]));
            memcpy(buf, &i, sizeof i);
            r->order[i] = i;
        }
        for (int i = K - 1; i > 0; i--) {
            int j = (int)(rnd_next(&seed) % (uint64_t)(i + 1));
            int t = r->order[i];
            r->order[i] = r->order[j];
            r->order[j] = t;
        }
        pthread_t th[WT], sealer;
        struct stress_arg args[WT];
        for (int i = 0; i < WT; i++) {
            args[i] = (struct stress_arg){ r, i };
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, stress_waiter, &args[i]) == 0);
        }
        if (round & 1)
            nap_us(2000);   /* half the rounds: the waiters are asleep before the seals */
        CU_ASSERT_FATAL(pthread_create(&sealer, NULL, stress_sealer, r) == 0);
        CU_ASSERT_EQUAL(join_within(sealer, 60), 0);
        for (int i = 0; i < WT; i++)
            CU_ASSERT_EQUAL(join_within(th[i], 60), 0);
        CU_ASSERT_EQUAL(r->bad, 0);
        for (int i = 0; i < K; i++)
            CHECK_OK(shoal_release(r->refs[i]));
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* A waiter of an object whose last reference goes (never sealed) wakes with ESTALE. */
static void test_free_wakes_waiter(void)
{
    test_start(shoal_test_config());
    void *buf;
    struct waiter w;
    ASSERT_OK(shoal_create(8, &buf, &w.ref));
    uint64_t s0 = sleeps();
    pthread_t th;
    w.rc = 1;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, wait_one, &w) == 0);
    for (int i = 0; i < 20000 && sleeps() == s0; i++)
        nap_us(500);
    ASSERT_OK(shoal_release(w.ref));
    CU_ASSERT_EQUAL(join_within(th, 30), 0);
    CU_ASSERT_EQUAL(w.rc, SHOAL_ESTALE);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "completing an object wakes only its waiter", test_only_its_waiter_wakes },
        { "no lost wake-ups: shared words, multi waits", test_no_lost_wakeups },
        { "freeing a waited-on object wakes its waiter", test_free_wakes_waiter },
        { NULL, NULL },
    };
    return shoal_test_run("wakeups", cases);
}
