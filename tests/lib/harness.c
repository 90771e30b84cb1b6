/* harness.c - the CUnit driver shared by every suite program, with a watchdog per test: a
 * test that runs longer than SHOAL_TEST_TIMEOUT seconds (default 300) is a lost wake-up or
 * a hang; the watchdog names it and ends the program, which fails the suite.
 * SHOAL_TEST_CASE=PATTERN runs only the tests whose name matches (fnmatch). */
#include "harness.h"

#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned skips;

void shoal_test_skip(const char *why)
{
    skips++;
    printf("\n  SKIP %s: %s\n", CU_get_current_test() ? CU_get_current_test()->pName : "?", why);
}

shoal_config shoal_test_config(void)
{
    shoal_config c;
    memset(&c, 0, sizeof c);
    c.store_bytes = 64u << 20;
    c.workers = 2;
    return c;
}

void shoal_test_child_limits(unsigned seconds)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(seconds);
}

/* ---- the watchdog ----------------------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int started;
    unsigned long armed;          /* bumped per test; 0 = disarmed */
    struct timespec deadline;
    char name[200];
} wd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, { 0, 0 }, "" };

static const char *suite_name;

static void *watchdog(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    for (;;) {
        if (!wd.armed) {
            pthread_cond_wait(&wd.cv, &wd.mu);
            continue;
        }
        unsigned long seen = wd.armed;
        if (pthread_cond_timedwait(&wd.cv, &wd.mu, &wd.deadline) != 0 && wd.armed == seen) {
            fprintf(stderr, "\nTIMEOUT: test '%s' of suite %s still running after its time "
                            "limit (SHOAL_TEST_TIMEOUT): a hang or a lost wake-up\n",
                    wd.name, suite_name);
            fflush(NULL);
            _exit(124);
        }
    }
    return NULL;
}

static int test_seconds(void)
{
    const char *v = getenv("SHOAL_TEST_TIMEOUT");
    int s = v ? atoi(v) : 0;
    return s > 0 ? s : 300;
}

static void arm(void)
{
    pthread_mutex_lock(&wd.mu);
    if (!wd.started && pthread_create(&wd.th, NULL, watchdog, NULL) == 0) {
        pthread_detach(wd.th);
        wd.started = 1;
    }
    clock_gettime(CLOCK_REALTIME, &wd.deadline);
    wd.deadline.tv_sec += test_seconds();
    CU_pTest t = CU_get_current_test();
    snprintf(wd.name, sizeof wd.name, "%s", t && t->pName ? t->pName : "?");
    wd.armed++;
    if (wd.armed == 0)
        wd.armed = 1;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
}

void shoal_test_deadline(unsigned seconds)
{
    pthread_mutex_lock(&wd.mu);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    now.tv_sec += seconds;
    if (wd.armed && now.tv_sec < wd.deadline.tv_sec) {
        wd.deadline = now;
        pthread_cond_signal(&wd.cv);   /* the watchdog waits for the new deadline */
    }
    pthread_mutex_unlock(&wd.mu);
}

static void disarm(void)
{
    pthread_mutex_lock(&wd.mu);
    wd.armed = 0;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
}

int shoal_test_run(const char *suite, const shoal_test_case *cases)
{
    return shoal_test_run_fixture(suite, cases, (shoal_test_fixture){ NULL, NULL });
}

int shoal_test_run_fixture(const char *suite, const shoal_test_case *cases,
                           shoal_test_fixture fixture)
{
    suite_name = suite;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite_with_setup_and_teardown(suite, fixture.setup, fixture.teardown,
                                                       arm, disarm);
    if (!s)
        return 2;
    /* One test (or a pattern of them) out of the suite, e.g. while debugging it. */
    /* Taken out of the environment, so that this program's children (some suites run
     * themselves in another role) run whole. No thread runs yet: unsetenv is safe here. */
    static char pattern[256];
    const char *only = getenv("SHOAL_TEST_CASE");
    if (only && *only) {
        snprintf(pattern, sizeof pattern, "%s", only);
        only = pattern;
    } else {
        only = NULL;
    }
    unsetenv("SHOAL_TEST_CASE");
    unsigned added = 0;
    for (const shoal_test_case *c = cases; c->name; c++) {
        if (only && fnmatch(only, c->name, 0) != 0)
            continue;
        if (!CU_add_test(s, c->name, c->fn))
            return 2;
        added++;
    }
    if (only && !added) {
        fprintf(stderr, "%s: no test matches SHOAL_TEST_CASE='%s'; its tests are:\n", suite, only);
        for (const shoal_test_case *c = cases; c->name; c++)
            fprintf(stderr, "  %s\n", c->name);
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                      CU_get_number_of_suites_failed();
    if (skips)
        printf("SKIP: %u test(s) of %s skipped (see SKIP lines above)\n", skips, suite);
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
