/* proc.h - running the programs built beside a suite (tools, examples) and capturing what
 * they print, for the suites that check them. Header-only; uses CUnit's fatal asserts. */
#ifndef SHOAL_TEST_PROC_H
#define SHOAL_TEST_PROC_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdio.h"
#include "harness.h"

/* Path of a program built into the same build directory as this suite:
 * <build>/tests/test_x -> <build>/<dir>/<name>. Fails the test if it is not there. */
static inline void test_sibling(char *out, size_t n, const char *dir, const char *name)
{
    char self[PATH_MAX / 2];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(len > 0);
    self[len] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(self, '/');
        CU_ASSERT_PTR_NOT_NULL_FATAL(slash);
        *slash = 0;
    }
    snprintf(out, n, "%s/%s/%s", self, dir, name);
    if (access(out, X_OK) != 0)
        fprintf(stderr, "%s is missing: build it with `make %s`\n", out, dir);
    CU_ASSERT_EQUAL_FATAL(access(out, X_OK), 0);
}

/* Run this suite's program again as a child, with argv[1] = role (its main dispatches on
 * it), and return the child's exit status, or 128 + the signal that ended it (a hang meets
 * the child's own alarm: shoal_test_child_limits); prints which when it is not 0. A new
 * program rather than a fork(): the suite has threads (the watchdog), and ThreadSanitizer
 * refuses threads started in a fork() child of a process with threads. */
static inline int test_run_self(const char *role)
{
    extern char **environ;
    char *argv[] = { (char *)"self", (char *)role, NULL };
    fflush(NULL);
    pid_t pid;
    CU_ASSERT_FATAL(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) == 0);
    int st = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &st, 0), pid);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc)
        fprintf(stderr, "child %s: %s %d\n", role, WIFEXITED(st) ? "exit" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    return rc;
}

/* Run a shell command; its stdout and stderr (add 2>&1) into out, NUL-terminated. Returns
 * its exit status, or 128 + the signal that killed it. */
static inline int test_run_cmd(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t len = 0, got;
    while (len < n - 1 && (got = fread(out + len, 1, n - 1 - len, p)) > 0)
        len += got;
    out[len] = 0;
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;   /* drain the rest, so the child never blocks on a full pipe */
    int st = pclose(p);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* Whether python3's json module (an independent parser) takes the file as JSON in strict
 * UTF-8: 0 yes, 1 no (said on stderr with the reason), -1 no python3 here (said too). */
static inline int test_python_json(const char *file)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        fprintf(stderr, "python3 is not installed: %s not checked by it\n", file);
        return -1;
    }
    char cmd[PATH_MAX + 256], out[4096];
    snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.loads(open(sys.argv[1], "
                              "\"rb\").read().decode(\"utf-8\", \"strict\"))' '%s' 2>&1", file);
    if (test_run_cmd(cmd, out, sizeof out) == 0)
        return 0;
    fprintf(stderr, "python3 rejects %s:\n%s\n", file, out);
    return 1;
}

/* A private socket directory for the stores this program publishes, in SHOAL_RUN_DIR so
 * that the processes it starts inherit it and parallel runs never meet. dir (32 bytes or
 * more) receives its path: rmdir it at the end. 0, or -1 (said on stderr). */
static inline int test_private_run_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/shoal-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    return setenv("SHOAL_RUN_DIR", dir, 1);
}

/* Close fd (if >= 0) and wait for child pid: its exit code, 128 + the signal that killed
 * it, or -1. */
static inline int test_reap(pid_t pid, int fd)
{
    int st = 0;
    if (fd >= 0)
        close(fd);
    if (pid <= 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
