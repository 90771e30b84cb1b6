/* test_sched_idle.c - an idle runtime costs (almost) no CPU: after a burst of work the
 * workers spin briefly, then sleep; over one second of idleness the whole process uses
 * far less than a core (the bound is generous: this checks that workers park, it is not
 * a benchmark). Sleeping workers wake for new work, from outside and from tasks; a thread
 * outside the workers wakes the worker pinned to its own CPU when that one sleeps, and
 * another when it is busy. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/tasks.h"

static int t_empty(shoal_task *t) { (void)t; return 0; }

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* n tasks of fn, `batch` (at most 64) submitted at a time and then awaited. */
static void run_batches(shoal_fn fn, int n, int batch)
{
    shoal_ref r[64];
    for (int done = 0; done < n; done += batch) {
        for (int i = 0; i < batch; i++)
            ASSERT_OK(shoal_submit(fn, NULL, 0, NULL, &r[i]));
        for (int i = 0; i < batch; i++) {
            const void *d;
            size_t len;
            CHECK_OK(get_within(r[i], &d, &len));
            CHECK_OK(shoal_release(r[i]));
        }
    }
}

static void burst(int n) { run_batches(t_empty, n, 64); }

static void check_idle(const char *topo, unsigned workers)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.workers = workers;
    c.topology = topo;
    ASSERT_OK(shoal_init(&c));
    burst(4096 / SAN_DIV);
    nap_ms(100);                      /* past the spinning phase */
    double c0 = cpu_seconds();
    nap_ms(1000);
    double used = cpu_seconds() - c0;
    printf("[%.2f%% of a core over 1 s] ", used * 100);
    CU_ASSERT(used < 0.05);           /* the target is under 1%; 5% absorbs a noisy machine */
    /* Parked workers wake for new work. */
    burst(256);
    ASSERT_OK(shoal_shutdown());
}

static void test_idle_this_machine(void) { check_idle(NULL, 2); }
static void test_idle_four_nodes(void) { check_idle("pack:4 numa:1 core:1 pu:1", 4); }

/* After sleeping, workers wake for work made runnable by a completion on this thread and
 * for tasks bound to each node. */
static _Atomic int ran_on[4];
static int t_mark(shoal_task *t)
{
    atomic_fetch_add(&ran_on[shoal_worker_node((unsigned)shoal_task_worker(t))], 1);
    return 0;
}

static void test_wake_after_sleep(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.workers = 4;
    c.topology = "pack:4 numa:1 core:1 pu:1";
    ASSERT_OK(shoal_init(&c));
    for (int round = 0; round < 3; round++) {
        nap_ms(20);                   /* everyone asleep */
        void *buf;
        shoal_ref x, r[4];
        ASSERT_OK(shoal_create(1, &buf, &x));
        for (int k = 0; k < 4; k++) {
            shoal_task_opts o = { .numa_node = k, .flags = SHOAL_TASK_ON_NODE };
            shoal_arg a = SHOAL_REF(x);
            ASSERT_OK(shoal_submit(t_mark, &a, 1, &o, &r[k]));
        }
        nap_ms(5);
        CHECK_OK(shoal_seal(x));
        for (int k = 0; k < 4; k++) {
            const void *d;
            size_t n;
            CHECK_OK(get_within(r[k], &d, &n));
            CHECK_OK(shoal_release(r[k]));
        }
        CHECK_OK(shoal_release(x));
    }
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(atomic_load(&ran_on[k]), 3);
    ASSERT_OK(shoal_shutdown());
}

/* ---- which worker a wake picks ---------------------------------------------------------- */

static _Atomic int cpu_of[2], last_worker, b_ran;

static int t_learn_cpu(shoal_task *t)
{
    int w = shoal_task_worker(t);
    if (w == 0 || w == 1)
        atomic_store(&cpu_of[w], sched_getcpu());
    nap_ms(1);   /* so that the other worker takes the next one */
    return 0;
}

static int t_who(shoal_task *t)
{
    atomic_store(&last_worker, shoal_task_worker(t));
    return 0;
}

/* Two workers on this machine, and the CPU each is pinned to (a task on each says), or a
 * reason to skip: NULL when both are known and differ. */
static const char *learn_cpus(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return "one CPU: no wake can name a worker of another";
    start_workers(2, 0);
    atomic_store(&cpu_of[0], -1);
    atomic_store(&cpu_of[1], -1);
    for (int round = 0; round < 200 && (atomic_load(&cpu_of[0]) < 0 ||
                                        atomic_load(&cpu_of[1]) < 0); round++)
        run_batches(t_learn_cpu, 4, 4);
    int c0 = atomic_load(&cpu_of[0]), c1 = atomic_load(&cpu_of[1]);
    if (c0 < 0 || c1 < 0)
        return "a task never ran on one of the two workers";
    if (c0 == c1)
        return "both workers run on one CPU (not pinned here)";
    return NULL;
}

/* learn_cpus, and this thread's CPUs into *saved (put back with pthread_setaffinity_np);
 * false when the test is skipped (the runtime is then stopped). */
static bool start_two_pinned(cpu_set_t *saved)
{
    const char *why = learn_cpus();
    if (why) {
        CHECK_OK(shoal_shutdown());
        shoal_test_skip(why);
        return false;
    }
    CU_ASSERT_FATAL(pthread_getaffinity_np(pthread_self(), sizeof *saved, saved) == 0);
    return true;
}

static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* A thread on worker k's CPU submits while both workers sleep: the wake names worker k,
 * which runs the task (a wake of a thread on another CPU costs the waker an inter-processor
 * interrupt). A timed get never runs the task itself, so the worker that ran it is the one
 * that woke. Trials where no wake was made (a worker still spun) say nothing and are not
 * counted. Before the wake named its worker, the futex woke its sleepers in the order they
 * fell asleep, so that the two alternated: about half the trials ran on k. */
static void test_wake_names_local_worker(void)
{
    cpu_set_t saved;
    if (!start_two_pinned(&saved))
        return;
    int counted = 0, on_k = 0;
    for (int trial = 0; trial < 200 && counted < 16; trial++) {
        int k = (trial / 2) % 2;   /* 0 0 1 1 ...: never in step with an alternation */
        if (pin_to(atomic_load(&cpu_of[k])) != 0)
            break;
        nap_ms(20);                /* both asleep */
        shoal_stats s0, s1;
        CHECK_OK(shoal_stats_get(&s0, sizeof s0));
        shoal_ref r;
        const void *d;
        size_t len;
        atomic_store(&last_worker, -2);
        ASSERT_OK(shoal_submit(t_who, NULL, 0, NULL, &r));
        CHECK_OK(get_within(r, &d, &len));
        CHECK_OK(shoal_release(r));
        CHECK_OK(shoal_stats_get(&s1, sizeof s1));
        if (s1.worker_wakes - s0.worker_wakes != 1)
            continue;
        counted++;
        on_k += atomic_load(&last_worker) == k;
    }
    CU_ASSERT_FATAL(pthread_setaffinity_np(pthread_self(), sizeof saved, &saved) == 0);
    printf("[%d of %d wakes picked the worker of the waker's CPU] ", on_k, counted);
    CU_ASSERT(counted >= 16);
    CU_ASSERT(on_k * 10 >= counted * 8);   /* all but a sleeper caught half-way to sleep */
    ASSERT_OK(shoal_shutdown());
}

/* Holds its worker until t_b ran (bounded: 20 s); 1 if it never did. */
static int t_hold(shoal_task *t)
{
    atomic_store(&last_worker, shoal_task_worker(t));
    for (int i = 0; i < 20000 && !atomic_load(&b_ran); i++)
        nap_ms(1);
    return atomic_load(&b_ran) ? 0 : 1;
}

static int t_b(shoal_task *t)
{
    atomic_store(&b_ran, shoal_task_worker(t) + 1);
    return 0;
}

/* The worker of the waker's CPU is busy, the other sleeps: the wake goes to the other one
 * (a wake that could only name the worker of its CPU would leave the task until t_hold
 * gives up, 20 s later). */
static void test_wake_busy_local_worker(void)
{
    cpu_set_t saved;
    if (!start_two_pinned(&saved))
        return;
    atomic_store(&b_ran, 0);
    atomic_store(&last_worker, -2);
    shoal_ref h, b;
    const void *d;
    size_t len;
    ASSERT_OK(shoal_submit(t_hold, NULL, 0, NULL, &h));
    for (int i = 0; i < 60000 && atomic_load(&last_worker) < 0; i++)
        nap_ms(1);
    int k = atomic_load(&last_worker);
    CU_ASSERT_FATAL(k == 0 || k == 1);
    nap_ms(20);                    /* the other one asleep */
    CU_ASSERT_FATAL(pin_to(atomic_load(&cpu_of[k])) == 0);
    ASSERT_OK(shoal_submit(t_b, NULL, 0, NULL, &b));
    CHECK_OK(shoal_get_timeout(b, (int64_t)10 * 1000000000, &d, &len));
    CU_ASSERT_FATAL(pthread_setaffinity_np(pthread_self(), sizeof saved, &saved) == 0);
    CU_ASSERT_EQUAL(atomic_load(&b_ran), (1 - k) + 1);   /* on the other worker */
    atomic_store(&b_ran, atomic_load(&b_ran) ? atomic_load(&b_ran) : -1);   /* let h go */
    CHECK_OK(get_within(h, &d, &len));
    CHECK_OK(shoal_release(h));
    CHECK_OK(shoal_release(b));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "an idle runtime sleeps (this machine)", test_idle_this_machine },
        { "an idle runtime sleeps (4 nodes, 4 workers)", test_idle_four_nodes },
        { "sleeping workers wake for their node's work", test_wake_after_sleep },
        { "a wake names the worker of the waker's CPU", test_wake_names_local_worker },
        { "... and another when that one is busy", test_wake_busy_local_worker },
        { NULL, NULL },
    };
    return shoal_test_run("sched_idle", cases);
}
