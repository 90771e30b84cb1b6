/* test_sched_idle.c - an idle runtime costs (almost) no CPU: after a burst of work the
 * workers spin briefly, then sleep; over one second of idleness the whole process uses
 * far less than a core (the bound is generous: this checks that workers park, it is not
 * a benchmark). Sleeping workers wake for new work, from outside and from tasks. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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

static void burst(int n)
{
    shoal_ref r[64];
    for (int done = 0; done < n; done += 64) {
        for (int i = 0; i < 64; i++)
            ASSERT_OK(shoal_submit(t_empty, NULL, 0, NULL, &r[i]));
        for (int i = 0; i < 64; i++) {
            const void *d;
            size_t len;
            CHECK_OK(get_within(r[i], &d, &len));
            CHECK_OK(shoal_release(r[i]));
        }
    }
}

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
            shoal_task_opts o = { .numa_node = k };
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

int main(void)
{
    static const shoal_test_case cases[] = {
        { "an idle runtime sleeps (this machine)", test_idle_this_machine },
        { "an idle runtime sleeps (4 nodes, 4 workers)", test_idle_four_nodes },
        { "sleeping workers wake for their node's work", test_wake_after_sleep },
        { NULL, NULL },
    };
    return shoal_test_run("sched_idle", cases);
}
