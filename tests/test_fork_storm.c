/* test_fork_storm.c - fork() in any form never disturbs the parent (issue 10.2a): a storm of
 * fork+_exit, system() and popen() while the parent's threads put, read and release
 * objects of every size, on a private and on a published store. The parent's threads must
 * keep going through the storm and end with nothing leaked. (What a child may do with the
 * runtime it inherits is another matter; these children only exit.) A stall fails the
 * suite: progress is checked with a deadline, and an alarm ends a fork that never returns. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

#define THREADS 2
#define STORM (300 / (SAN_DIV > 1 ? 3 : 1))
#define STALL_NS (20ull * 1000000000u)

static _Atomic int stop;
static _Atomic uint64_t ops;
static _Atomic int bad;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Small, medium and large objects, a window of 16 live ones, each checked before release. */
static void *churn(void *arg)
{
    uint64_t who = (uint64_t)(uintptr_t)arg, s = who * 7919 + 1, seq = 0;
    size_t cap = 300u << 10;
    unsigned char *buf = malloc(cap);
    shoal_ref held[16] = { { 0 } };
    size_t lens[16] = { 0 };
    uint64_t seqs[16] = { 0 };
    while (buf && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned k = (unsigned)(rnd_next(&s) % 16);
        if (held[k].id) {
            const void *d = NULL;
            size_t n = 0;
            if (shoal_get_timeout(held[k], 5000000000, &d, &n) != 0 || n != lens[k] ||
                !pat_ok(d, n < 256 ? n : 256, who, seqs[k]))
                atomic_fetch_add(&bad, 1);
            if (shoal_release(held[k]) != 0)
                atomic_fetch_add(&bad, 1);
            held[k].id = 0;
        }
        uint64_t r = rnd_next(&s) % 100;
        size_t len = r < 90 ? 1 + (size_t)(rnd_next(&s) % 4096)
                     : r < 98 ? 60000 : cap - (size_t)(rnd_next(&s) % 4096);
        pat_fill(buf, len < 256 ? len : 256, who, ++seq);
        if (shoal_put(buf, len, &held[k]) != 0) {
            atomic_fetch_add(&bad, 1);
            held[k].id = 0;
            continue;
        }
        lens[k] = len;
        seqs[k] = seq;
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
    }
    for (int k = 0; k < 16; k++)
        if (held[k].id && shoal_release(held[k]) != 0)
            atomic_fetch_add(&bad, 1);
    free(buf);
    return NULL;
}

/* Wait until the threads made progress past `from`; false after STALL_NS without any. */
static bool progress_since(uint64_t from)
{
    uint64_t t0 = now_ns();
    while (atomic_load(&ops) <= from) {
        if (now_ns() - t0 > STALL_NS)
            return false;
        usleep(1000);
    }
    return true;
}

static void one_fork(int i)
{
    switch (i % 3) {
    case 0: {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        CU_ASSERT(pid > 0);
        if (pid > 0)
            CU_ASSERT_EQUAL(waitpid(pid, NULL, 0), pid);
        break;
    }
    case 1:
        CU_ASSERT_EQUAL(system("true"), 0);
        break;
    default: {
        FILE *p = popen("true", "r");
        CU_ASSERT_PTR_NOT_NULL(p);
        if (p)
            CU_ASSERT_EQUAL(pclose(p), 0);
        break;
    }
    }
}

static void storm(const char *name)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.name = name;
    ASSERT_OK(shoal_init(&c));
    shoal_info base = info_now();
    atomic_store(&stop, 0);
    atomic_store(&ops, 0);
    atomic_store(&bad, 0);
    pthread_t th[THREADS];
    for (int k = 0; k < THREADS; k++)
        CU_ASSERT_FATAL(pthread_create(&th[k], NULL, churn, (void *)(uintptr_t)(k + 1)) == 0);
    alarm(600);   /* a fork that never returns ends the suite (a failure) */
    for (int i = 0; i < STORM; i++) {
        uint64_t before = atomic_load(&ops);
        one_fork(i);
        if (i % 10 == 9 && !progress_since(before)) {
            /* The threads are stuck for good: nothing below could finish. */
            fprintf(stderr, "%s store: the parent's threads made no progress for %llu s after "
                    "%d forks (%llu operations): deadlocked\n", name ? "published" : "private",
                    STALL_NS / 1000000000u, i + 1, (unsigned long long)atomic_load(&ops));
            _exit(2);
        }
    }
    alarm(0);
    atomic_store(&stop, 1);
    for (int k = 0; k < THREADS; k++)
        pthread_join(th[k], NULL);
    CU_ASSERT_EQUAL(atomic_load(&bad), 0);
    CU_ASSERT(atomic_load(&ops) > STORM);
    shoal_info end = info_now();
    CU_ASSERT_EQUAL(end.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(end.bytes_used, base.bytes_used);
    CHECK_OK(shoal_shutdown());
}

static void t_private(void) { storm(NULL); }

static void t_published(void)
{
    char name[64];
    snprintf(name, sizeof name, "alloc-fork-%d", (int)getpid());
    storm(name);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "fork storm beside a private store", t_private },
        { "fork storm beside a published store", t_published },
        { NULL, NULL },
    };
    return shoal_test_run("fork_storm", cases);
}
