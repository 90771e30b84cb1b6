/* harness.h - shared helpers for the CUnit suites: one main per suite program, skips that
 * say why, and small config builders. Each tests/test_<feature>.c defines its tests and
 * calls shoal_test_run() from main. */
#ifndef SHOAL_TEST_HARNESS_H
#define SHOAL_TEST_HARNESS_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include "shoal.h"

typedef struct { const char *name; void (*fn)(void); } shoal_test_case;

/* Run the cases as one suite named `suite`; returns the process exit code (0 = all passed).
 * Each case runs under a watchdog: past SHOAL_TEST_TIMEOUT seconds (default 300) the
 * program prints which test hung and exits with 124. Blocking calls inside a test still
 * take their own, shorter timeouts, so that a lost wake-up names itself. */
int shoal_test_run(const char *suite, const shoal_test_case *cases);

/* A suite's fixture: setup runs before its first test, teardown after its last, whether the
 * tests passed or not (a scratch directory made and removed, say). Each returns 0, or
 * non-zero to fail the suite (a teardown that finds what a test left behind). Either may be
 * NULL. shoal_test_run is this with no fixture. */
typedef struct { int (*setup)(void); int (*teardown)(void); } shoal_test_fixture;
int shoal_test_run_fixture(const char *suite, const shoal_test_case *cases,
                           shoal_test_fixture fixture);

/* The running test ends as a TIMEOUT (the program exits 124 naming it) if it still runs
 * `seconds` from now: for a test whose hang would be inside a call without a time limit of
 * its own. Only shortens SHOAL_TEST_TIMEOUT's limit. */
void shoal_test_deadline(unsigned seconds);

/* In a child process a suite starts: ends it after `seconds` (SIGALRM) and when the parent
 * dies, so that neither a hang nor a killed parent leaves it running. */
void shoal_test_child_limits(unsigned seconds);

/* Report that a test could not exercise what it is about, and why. Counted and printed in
 * the summary as SKIP: a skip is not a pass. */
void shoal_test_skip(const char *why);
#define SKIP_TEST(why) do { shoal_test_skip(why); return; } while (0)

/* A config with a small store (64 MiB default, tests must not map gigabytes) and 2 workers. */
shoal_config shoal_test_config(void);

/* Assert a shoal call returns code; prints shoal_last_error() on mismatch. */
#define ASSERT_RC(call, code) do {                                                     \
        int rc__ = (call);                                                             \
        if (rc__ != (code))                                                            \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d; last error: %s\n",          \
                    __FILE__, __LINE__, #call, rc__, shoal_strerror(rc__), (code),     \
                    shoal_last_error());                                               \
        CU_ASSERT_EQUAL_FATAL(rc__, (code));                                           \
    } while (0)
#define ASSERT_OK(call) ASSERT_RC(call, 0)

#endif
