/* test_harness.c - tests never hang: a suite that does not finish is killed by
 * tests/run-suites.sh and reported as a timeout with its name (the other suites still
 * run), and a test that does not finish is named by the per-test watchdog of
 * tests/lib/harness.c, which ends its program with status 124. SHOAL_TEST_CASE (make test
 * CASE=...) runs one test of a suite, and a pattern that names none fails.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

static char dir[64];

static void write_exec(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
    CU_ASSERT_FATAL(chmod(path, 0755) == 0);
}

/* This program's own path, to run it again in a child role. */
static void self_exe(char *out, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    CU_ASSERT_FATAL(len > 0);
    out[len] = 0;
}

/* The repository's tests/run-suites.sh, from this program's place in <build>/tests. */
static void run_suites_path(char *out, size_t n)
{
    char self[PATH_MAX / 2];
    self_exe(self, sizeof self);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(self, '/');
        CU_ASSERT_PTR_NOT_NULL_FATAL(slash);
        *slash = 0;
    }
    snprintf(out, n, "%s/tests/run-suites.sh", self);
    CU_ASSERT_EQUAL_FATAL(access(out, X_OK), 0);
}

static void test_suite_timeout(void)
{
    snprintf(dir, sizeof dir, "/tmp/shoal-trust1-harness-%d", (int)getpid());
    char p[160], script[PATH_MAX], cmd[PATH_MAX + 256], out[8192];
    snprintf(p, sizeof p, "%s/tests", dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 || errno == EEXIST);
    CU_ASSERT_FATAL(mkdir(p, 0700) == 0 || errno == EEXIST);
    snprintf(p, sizeof p, "%s/tests/test_hangs", dir);
    write_exec(p, "#!/bin/sh\nexec sleep 1000\n");
    snprintf(p, sizeof p, "%s/tests/test_fine", dir);
    write_exec(p, "#!/bin/sh\necho 'Run Summary:    Type  Total    Ran Passed Failed Inactive'\n"
                  "echo '               tests      1      1      1      0        0'\n");
    run_suites_path(script, sizeof script);
    snprintf(cmd, sizeof cmd, "SHOAL_SUITE_TIMEOUT=2 %s %s test_hangs test_fine 2>&1", script,
             dir);
    time_t t0 = time(NULL);
    int rc = test_run_cmd(cmd, out, sizeof out);
    time_t took = time(NULL) - t0;
    int ok = rc != 0 && strstr(out, "TIMEOUT: suite test_hangs") &&
             strstr(out, "suites failed: test_hangs(timeout)") &&
             strstr(out, "1 passed") /* the other suite still ran */ && took < 60;
    if (!ok)   /* (quiet otherwise: its TIMEOUT lines would read as this suite's) */
        fprintf(stderr, "run-suites.sh answered %d after %lld s:\n%s", rc, (long long)took, out);
    CU_ASSERT(ok);
    unlink(p);
    snprintf(p, sizeof p, "%s/tests/test_hangs", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tests", dir);
    rmdir(p);
    rmdir(dir);
}

/* ---- the per-test watchdog, in a child run of this program ----------------------------------- */

static void hangs(void)
{
    struct timespec ts = { 100, 0 };
    nanosleep(&ts, NULL);   /* the watchdog ends the program long before */
}

static int child_hang(void)
{
    shoal_test_child_limits(60);
    static const shoal_test_case cases[] = { { "a test that hangs", hangs }, { NULL, NULL } };
    return shoal_test_run("hang_child", cases);
}

static void test_test_timeout(void)
{
    char self[PATH_MAX / 2], cmd[PATH_MAX], out[8192];
    self_exe(self, sizeof self);
    snprintf(cmd, sizeof cmd, "SHOAL_TEST_TIMEOUT=1 %s --hang-child 2>&1", self);
    time_t t0 = time(NULL);
    int rc = test_run_cmd(cmd, out, sizeof out);
    fprintf(stderr, "a hanging test: exit %d after %lld s\n", rc, (long long)(time(NULL) - t0));
    int ok = rc == 124 && strstr(out, "TIMEOUT: test 'a test that hangs'") != NULL;
    if (!ok)
        fprintf(stderr, "%s", out);
    CU_ASSERT(ok);
}

/* ---- one test out of a suite (SHOAL_TEST_CASE), in a child run of this program ------------- */

static void passes(void) { CU_PASS("ran"); }

static int child_cases(void)
{
    shoal_test_child_limits(60);
    static const shoal_test_case cases[] = {
        { "first case", passes }, { "second case", passes }, { "third", passes }, { NULL, NULL },
    };
    return shoal_test_run("cases_child", cases);
}

static void test_one_case(void)
{
    static const struct {
        const char *env;       /* the child's SHOAL_TEST_CASE setting */
        int fails;             /* the child must exit non-zero */
        const char *want[2], *unwanted[2];
    } runs[] = {
        /* one exact name: only that test runs */
        { "SHOAL_TEST_CASE='second case'", 0, { "tests      1      1      1      0", "second case" },
          { "first case", "third" } },
        /* a pattern: the two that match */
        { "SHOAL_TEST_CASE='*case'", 0, { "tests      2      2      2      0", NULL }, { "third", NULL } },
        /* a name that matches nothing fails and lists the suite's tests */
        { "SHOAL_TEST_CASE=nosuch", 1, { "no test matches SHOAL_TEST_CASE='nosuch'", "  third" },
          { NULL, NULL } },
        /* unset: the whole suite */
        { "env -u SHOAL_TEST_CASE", 0, { "tests      3      3      3      0", NULL }, { NULL, NULL } },
    };
    char self[PATH_MAX / 2], cmd[PATH_MAX], out[8192];
    self_exe(self, sizeof self);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --cases-child 2>&1", runs[i].env, self);
        int rc = test_run_cmd(cmd, out, sizeof out);
        int ok = (rc != 0) == runs[i].fails;
        for (int k = 0; k < 2; k++) {
            ok = ok && (!runs[i].want[k] || strstr(out, runs[i].want[k]));
            ok = ok && (!runs[i].unwanted[k] || !strstr(out, runs[i].unwanted[k]));
        }
        if (!ok)
            fprintf(stderr, "%s: exit %d\n%s", runs[i].env, rc, out);
        CU_ASSERT(ok);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--hang-child") == 0)
        return child_hang();
    if (argc > 1 && strcmp(argv[1], "--cases-child") == 0)
        return child_cases();
    static const shoal_test_case cases[] = {
        { "run-suites.sh kills and names a suite that hangs", test_suite_timeout },
        { "the watchdog names a test that hangs", test_test_timeout },
        { "SHOAL_TEST_CASE runs one test, or fails naming none", test_one_case },
        { NULL, NULL },
    };
    return shoal_test_run("harness", cases);
}
