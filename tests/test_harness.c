/* test_harness.c - tests never hang: a suite that does not finish is killed by
 * tests/run-suites.sh and reported as a timeout with its name (the other suites still
 * run), and a test that does not finish is named by the per-test watchdog of
 * tests/lib/harness.c, which ends its program with status 124.
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

/* The repository's tests/run-suites.sh, from this program's place in <build>/tests. */
static void run_suites_path(char *out, size_t n)
{
    char self[PATH_MAX / 2];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(len > 0);
    self[len] = 0;
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
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(len > 0);
    self[len] = 0;
    snprintf(cmd, sizeof cmd, "SHOAL_TEST_TIMEOUT=1 %s --hang-child 2>&1", self);
    time_t t0 = time(NULL);
    int rc = test_run_cmd(cmd, out, sizeof out);
    fprintf(stderr, "a hanging test: exit %d after %lld s\n", rc, (long long)(time(NULL) - t0));
    int ok = rc == 124 && strstr(out, "TIMEOUT: test 'a test that hangs'") != NULL;
    if (!ok)
        fprintf(stderr, "%s", out);
    CU_ASSERT(ok);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--hang-child") == 0)
        return child_hang();
    static const shoal_test_case cases[] = {
        { "run-suites.sh kills and names a suite that hangs", test_suite_timeout },
        { "the watchdog names a test that hangs", test_test_timeout },
        { NULL, NULL },
    };
    return shoal_test_run("harness", cases);
}
