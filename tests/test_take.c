/* test_take.c - shoal_take, the get that consumes the caller's reference: what it copies and
 * reports, that the reference is gone on every answer (the object freed when it was the
 * last, kept for the other holders otherwise), inside tasks (the waiting worker runs the
 * child) and outside them (the caller runs its own task, or waits), with other threads
 * retaining and releasing the same objects, in a published store (the ledger's path) and
 * with spilling on (an unread object's first read). Black-box through shoal.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/mp.h"
#include "lib/tasks.h"

/* The ref answers SHOAL_ESTALE now: the object went with the reference taken. */
static void check_freed(shoal_ref r)
{
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(r, 0, &d, &n), SHOAL_ESTALE);
}

static void test_ready_objects(void)
{
    start_workers(1, 0);
    /* 8 bytes, 3 bytes, 4 KiB and empty: every size the store keeps differently. */
    static unsigned char big[4096];
    pat_fill(big, sizeof big, 1, 1);
    uint64_t v = 0x0123456789abcdefull;
    const void *src[4] = { &v, "abc", big, NULL };
    size_t len[4] = { 8, 3, sizeof big, 0 };
    for (int i = 0; i < 4; i++) {
        shoal_ref r;
        ASSERT_OK(shoal_put(src[i], len[i], &r));
        unsigned char out[4096 + 16];
        memset(out, 0xee, sizeof out);
        size_t n = 12345;
        CHECK_OK(shoal_take(r, out, sizeof out, &n));
        CU_ASSERT_EQUAL(n, len[i]);
        CU_ASSERT(len[i] == 0 || memcmp(out, src[i], len[i]) == 0);
        CU_ASSERT_EQUAL(out[len[i]], 0xee);   /* nothing past the object's bytes */
        check_freed(r);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* A small buffer gets cap bytes and the whole length; the reference goes all the same. */
static void test_short_buffer(void)
{
    start_workers(1, 0);
    shoal_ref r;
    ASSERT_OK(shoal_put("0123456789", 10, &r));
    char out[5] = { 0 };
    size_t n = 0;
    CHECK_OK(shoal_take(r, out, 4, &n));
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(memcmp(out, "0123", 4), 0);
    CU_ASSERT_EQUAL(out[4], 0);
    check_freed(r);
    /* cap 0, buf NULL: only the length. */
    ASSERT_OK(shoal_put("xyz", 3, &r));
    n = 0;
    CHECK_OK(shoal_take(r, NULL, 0, &n));
    CU_ASSERT_EQUAL(n, 3);
    check_freed(r);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* With another holder the object stays for it, readable; its take then frees it. */
static void test_other_holders_keep_it(void)
{
    start_workers(1, 0);
    shoal_ref r;
    uint64_t v = 42, got = 0;
    ASSERT_OK(shoal_put(&v, sizeof v, &r));
    ASSERT_OK(shoal_retain(r));
    ASSERT_OK(shoal_retain(r));
    size_t n;
    CHECK_OK(shoal_take(r, &got, sizeof got, &n));
    CU_ASSERT_EQUAL(got, 42);
    const void *d;
    CHECK_OK(shoal_get_timeout(r, 0, &d, &n));   /* two references left */
    CU_ASSERT_EQUAL(n, sizeof v);
    CHECK_OK(shoal_release(r));
    got = 0;
    CHECK_OK(shoal_take(r, &got, sizeof got, &n));
    CU_ASSERT_EQUAL(got, 42);
    check_freed(r);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* Bad arguments: EINVAL, and the reference goes all the same (the contract: whatever the
 * call answers); a null, forged or freed ref holds nothing. */
static void test_bad_arguments(void)
{
    start_workers(1, 0);
    shoal_ref r;
    char out[8];
    size_t n;
    ASSERT_OK(shoal_put("abc", 3, &r));
    CHECK_RC(shoal_take(r, out, sizeof out, NULL), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "len is NULL") != NULL);
    check_freed(r);
    ASSERT_OK(shoal_put("abc", 3, &r));
    CHECK_RC(shoal_take(r, NULL, 3, &n), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "buf is NULL") != NULL);
    check_freed(r);
    CHECK_RC(shoal_take(SHOAL_REF_NULL, out, sizeof out, &n), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "null ref") != NULL);
    ASSERT_RC2(shoal_take((shoal_ref){ 0x7777777700000005ull }, out, sizeof out, &n),
               SHOAL_EINVAL, SHOAL_ESTALE);
    CHECK_RC(shoal_take(r, out, sizeof out, &n), SHOAL_ESTALE);   /* taken above */
    /* Bad arguments with a ref that holds nothing: the message still names the argument
     * (it said "stale ref ...", the code EINVAL: the lookup's message replaced it). */
    CHECK_RC(shoal_take(r, out, sizeof out, NULL), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "len is NULL") != NULL);
    CHECK_RC(shoal_take(SHOAL_REF_NULL, NULL, 3, &n), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "buf is NULL") != NULL);
    /* A stale ref whose slot holds a newer object must not touch that object. */
    shoal_ref other;
    uint64_t v = 7;
    ASSERT_OK(shoal_put(&v, sizeof v, &other));
    ASSERT_RC2(shoal_take(r, out, sizeof out, &n), SHOAL_ESTALE, SHOAL_EINVAL);
    const void *d;
    CHECK_OK(shoal_get_timeout(other, 0, &d, &n));
    CHECK_OK(shoal_release(other));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
    CHECK_RC(shoal_take(r, out, sizeof out, &n), SHOAL_ENOTINIT);
}

/* fib with every call a task that takes both children's results: the first child is still
 * pending when its parent takes it, so the worker runs tasks until it completes. */
static int t_fib(shoal_task *t)
{
    long n = arg_long(t, 0), r, x = -1, y = -1;
    if (n < 2) {
        r = n;
        return shoal_task_return(t, &r, sizeof r);
    }
    shoal_ref ra, rb;
    int rc = fib_children(t_fib, n, &ra, &rb);
    if (rc)
        return rc;
    size_t na = 0, nb = 0;
    int rca = shoal_take(ra, &x, sizeof x, &na), rcb = shoal_take(rb, &y, sizeof y, &nb);
    if (rca || rcb || na != sizeof x || nb != sizeof y)
        return 1;
    r = x + y;
    return shoal_task_return(t, &r, sizeof r);
}

/* every result was taken: nothing is left once the tasks let go of theirs */
static void test_fib_one_worker(void) { run_fib_tasks(t_fib, 1, SAN_DIV > 1 ? 15 : 20, true); }
static void test_fib_two_workers(void) { run_fib_tasks(t_fib, 2, SAN_DIV > 1 ? 15 : 22, true); }

/* A failed child: its code and message, and its reference goes too. */
static int t_fails(shoal_task *t)
{
    shoal_task_fail(t, "take-test failure 17");
    return 1;
}

static int t_parent_of_failure(shoal_task *t)
{
    shoal_ref c;
    int rc = shoal_submit(t_fails, NULL, 0, NULL, &c);
    if (rc)
        return rc;
    char buf[8];
    size_t n;
    rc = shoal_take(c, buf, sizeof buf, &n);
    long ok = rc == SHOAL_ETASK && strstr(shoal_last_error(), "take-test failure 17") != NULL;
    return shoal_task_return(t, &ok, sizeof ok);
}

static void test_failed_object(void)
{
    start_workers(1, 0);
    /* outside a task: the caller runs its own task, which fails */
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_fails, NULL, 0, NULL, &r));
    char buf[8];
    size_t n;
    CHECK_RC(shoal_take(r, buf, sizeof buf, &n), SHOAL_ETASK);
    CU_ASSERT(strstr(shoal_last_error(), "take-test failure 17") != NULL);
    check_freed(r);
    /* inside one */
    ASSERT_OK(shoal_submit(t_parent_of_failure, NULL, 0, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 1);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(live_settled(0), 0);
    ASSERT_OK(shoal_shutdown());
}

/* Outside the workers: a take waits for an object another thread seals later. */
static void *seal_later(void *arg)
{
    nap_ms(20);
    long v = 99;
    void *buf = arg;
    memcpy(((void **)buf)[0], &v, sizeof v);
    shoal_seal(*(shoal_ref *)((void **)buf)[1]);
    return NULL;
}

static void test_waits_for_seal(void)
{
    start_workers(1, 0);
    void *p;
    shoal_ref r;
    ASSERT_OK(shoal_create(sizeof(long), &p, &r));
    void *args[2] = { p, &r };
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, seal_later, args));
    long got = 0;
    size_t n = 0;
    CHECK_OK(shoal_take(r, &got, sizeof got, &n));   /* bounded by the harness's watchdog */
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(got, 99);
    CU_ASSERT_EQUAL(n, sizeof got);
    check_freed(r);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* Other threads retain and release the objects a take drops at the same time: the counts
 * stay exact (every object freed once at the end, none early: each retained copy is read
 * after the take). The take's CAS then often finds the word moved. */
enum { RACE_N = 2000 };
static shoal_ref race_refs[RACE_N];
static _Atomic int race_bad;

static void *race_retainer(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACE_N; i++) {
        /* The holder's extra reference (taken by the main thread) is ours to use and drop. */
        const void *d;
        size_t n;
        for (int k = 0; k < 4; k++) {
            if (shoal_retain(race_refs[i]) != 0 || shoal_release(race_refs[i]) != 0)
                atomic_fetch_add(&race_bad, 1);
        }
        if (shoal_get_timeout(race_refs[i], 0, &d, &n) != 0 || n != sizeof(uint64_t) ||
            memcmp(d, &(uint64_t){ (uint64_t)i }, sizeof(uint64_t)) != 0)
            atomic_fetch_add(&race_bad, 1);
        if (shoal_release(race_refs[i]) != 0)
            atomic_fetch_add(&race_bad, 1);
    }
    return NULL;
}

static void test_races_with_retain_release(void)
{
    start_workers(1, 1u << 16);
    atomic_store(&race_bad, 0);
    for (int i = 0; i < RACE_N; i++) {
        uint64_t v = (uint64_t)i;
        ASSERT_OK(shoal_put(&v, sizeof v, &race_refs[i]));
        ASSERT_OK(shoal_retain(race_refs[i]));   /* the other thread's */
    }
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, race_retainer, NULL));
    for (int i = 0; i < RACE_N; i++) {
        uint64_t got = ~0ull;
        size_t n = 0;
        CHECK_OK(shoal_take(race_refs[i], &got, sizeof got, &n));
        CU_ASSERT_EQUAL(got, (uint64_t)i);
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(atomic_load(&race_bad), 0);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* A published store keeps a ledger of what each process holds: a take drops the reference
 * from it too (the owner's count and the object's agree, so the object is freed). */
static void test_published_store(void)
{
    mp_new_name();
    shoal_config c = shoal_test_config();
    c.name = mp_name;
    test_start(c);
    for (int i = 0; i < 100; i++) {
        shoal_ref r;
        uint64_t v = (uint64_t)i * 3, got = 0;
        ASSERT_OK(shoal_put(&v, sizeof v, &r));
        if (i & 1)
            ASSERT_OK(shoal_retain(r));
        size_t n = 0;
        CHECK_OK(shoal_take(r, &got, sizeof got, &n));
        CU_ASSERT_EQUAL(got, v);
        if (i & 1)
            CHECK_OK(shoal_release(r));
        check_freed(r);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* With spilling on, a sealed object is unread (a spill candidate) until its first get: a
 * take is that read, and frees it. */
static void test_spilling_on(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/shoal-take-%d-XXXXXX", (int)getpid());
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    shoal_config c = shoal_test_config();
    c.spill_dir = dir;
    test_start(c);
    static unsigned char big[10000];
    pat_fill(big, sizeof big, 2, 3);
    shoal_ref r;
    ASSERT_OK(shoal_put(big, sizeof big, &r));
    static unsigned char out[sizeof big];
    size_t n = 0;
    CHECK_OK(shoal_take(r, out, sizeof out, &n));
    CU_ASSERT_EQUAL(n, sizeof big);
    CU_ASSERT(pat_ok(out, sizeof out, 2, 3));
    check_freed(r);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(test_remove_dir(dir), 0);
}

/* A worker's take of a child that a thief is running: one get that waited, one count in
 * get_waits. It was counted three times: take_help, then get_take_general's own wait, then
 * get_slow's, each when the object was still pending after the one before it had helped. */
static _Atomic int thief_started, take_counted;

static int t_slow_child(shoal_task *t)
{
    atomic_store(&thief_started, 1);
    nap_ms(50);   /* still running when the parent takes it */
    long v = 42;
    return shoal_task_return(t, &v, sizeof v);
}

static int t_take_stolen(shoal_task *t)
{
    shoal_ref c;
    int rc = shoal_submit(t_slow_child, NULL, 0, NULL, &c);
    if (rc)
        return rc;
    /* Another worker steals it (this one is busy here): wait until it runs (10 s at most). */
    for (int i = 0; i < 10000 && !atomic_load(&thief_started); i++)
        nap_ms(1);
    long out[3] = { atomic_load(&thief_started), -1, -1 };
    shoal_stats s0, s1;
    memset(&s0, 0, sizeof s0);
    memset(&s1, 0, sizeof s1);
    shoal_stats_get(&s0, sizeof s0);
    size_t n = 0;
    long v = 0;
    rc = shoal_take(c, &v, sizeof v, &n);
    shoal_stats_get(&s1, sizeof s1);
    atomic_store(&take_counted, 1);
    out[1] = rc == 0 && n == sizeof v ? v : -1;
    out[2] = (long)(s1.get_waits - s0.get_waits);
    return shoal_task_return(t, out, sizeof out);
}

static void test_take_of_a_stolen_child_counts_once(void)
{
    start_workers(2, 0);
    atomic_store(&thief_started, 0);
    atomic_store(&take_counted, 0);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_take_stolen, NULL, 0, NULL, &r));
    /* get_waits is the whole runtime's: this thread's own wait for r must not fall between
     * the task's two readings, so it waits without a get until they are done (10 s at
     * most). */
    for (int i = 0; i < 10000 && !atomic_load(&take_counted); i++)
        nap_ms(1);
    const void *d;
    size_t n;
    ASSERT_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL_FATAL(n, 3 * sizeof(long));
    long out[3];
    memcpy(out, d, sizeof out);
    CU_ASSERT_EQUAL(out[0], 1);    /* a thief ran the child */
    CU_ASSERT_EQUAL(out[1], 42);
    if (out[2] != 1)
        fprintf(stderr, "get_waits counted %ld for one take\n", out[2]);
    CU_ASSERT_EQUAL(out[2], 1);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "ready objects of every size: copied, reference gone", test_ready_objects },
        { "a short buffer gets cap bytes and the whole length", test_short_buffer },
        { "other holders keep the object", test_other_holders_keep_it },
        { "bad arguments, null, forged and stale refs", test_bad_arguments },
        { "fib taking every child on ONE worker", test_fib_one_worker },
        { "fib taking every child on two workers", test_fib_two_workers },
        { "a failed object: its code and message, reference gone", test_failed_object },
        { "outside the workers a take waits for the seal", test_waits_for_seal },
        { "takes race other threads' retains and releases", test_races_with_retain_release },
        { "a published store's ledger", test_published_store },
        { "spilling on: the take is the first read", test_spilling_on },
        { "a take of a child a thief runs: one get wait", test_take_of_a_stolen_child_counts_once },
        { NULL, NULL },
    };
    return mp_run("take", cases);
}
