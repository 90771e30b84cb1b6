/* test_log.c - shoal's messages: shoal_set_log with levels (a callback captures them), the
 * default of warnings and errors only on stderr, the huge-page state at info level once per
 * process, an attached client's background thread logging through the sink, and the strict
 * parsing of environment variables (SHOAL_QUIET=0 is off; a bad value is a warning naming
 * the variable and what it accepts). Scenarios that read the environment at init or look
 * at stderr run in a child process (this program exec'd again) whose stderr is a pipe. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "lib/tasks.h"

/* ---- a capturing sink ----------------------------------------------------------------------- */

struct capture {
    pthread_mutex_t mu;
    char text[8192];          /* "LEVEL message\n" lines */
    int count[4];
};
static struct capture cap = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void sink(int level, const char *msg, void *arg)
{
    struct capture *c = arg;
    pthread_mutex_lock(&c->mu);
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof c->text - n, "%d %s\n", level, msg);
    if (level >= 0 && level < 4)
        c->count[level]++;
    pthread_mutex_unlock(&c->mu);
}

static void cap_reset(void)
{
    pthread_mutex_lock(&cap.mu);
    cap.text[0] = 0;
    memset(cap.count, 0, sizeof cap.count);
    pthread_mutex_unlock(&cap.mu);
}

static int cap_has(const char *s)
{
    pthread_mutex_lock(&cap.mu);
    int r = strstr(cap.text, s) != NULL;
    pthread_mutex_unlock(&cap.mu);
    return r;
}

/* ---- children with stderr captured --------------------------------------------------------- */

/* Run scenario `name` (see scenarios[] at the end) in a fresh process: this program
 * exec'd with "--child NAME" (a plain fork() of a threaded process cannot start threads
 * under TSan, and a fresh process has said nothing yet), its environment as set by env
 * ("NAME=VALUE" or "NAME" to unset, NULL-terminated) and its stderr into out. Returns its
 * exit status. */
static int in_child(const char *name, const char *const env[], char *out, size_t n)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        shoal_test_child_limits(60);   /* the alarm and the parent-death signal survive exec */
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        unsetenv("SHOAL_QUIET");
        unsetenv("SHOAL_LOG_LEVEL");
        for (int i = 0; env && env[i]; i++) {
            char kv[256];
            snprintf(kv, sizeof kv, "%s", env[i]);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = 0;
                setenv(kv, eq + 1, 1);
            } else {
                unsetenv(kv);
            }
        }
        execl("/proc/self/exe", "test_log", "--child", name, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t got;
    while (len < n - 1 && (got = read(p[0], out + len, n - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = 0;
    char sink_buf[4096];
    while (read(p[0], sink_buf, sizeof sink_buf) > 0)
        ;   /* drain: the child never blocks on a full pipe */
    close(p[0]);
    int st;
    CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "child %s exited with %#x; its stderr:\n%s\n", name, st, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int init_and_stop(void)
{
    shoal_config c = shoal_test_config();
    if (shoal_init(&c) != 0)
        return 10;
    return shoal_shutdown() != 0 ? 11 : 0;
}

/* The huge-page state is info level: absent from the default output, present with
 * SHOAL_LOG_LEVEL=info; a bad switch is a warning naming the variable, shown by default. */
static void test_default_level(void)
{
    char out[8192];
    const char *const dflt[] = { "SHOAL_NO_FUTEX_WAITV=yes", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", dflt, out, sizeof out), 0);
    CU_ASSERT_PTR_NULL(strstr(out, "pages"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shoal: SHOAL_NO_FUTEX_WAITV=yes is not 0 or 1"));

    const char *const info[] = { "SHOAL_LOG_LEVEL=info", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", info, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pages"));

    const char *const num[] = { "SHOAL_LOG_LEVEL=2", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", num, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pages"));

    const char *const bad[] = { "SHOAL_LOG_LEVEL=loud", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", bad, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "SHOAL_LOG_LEVEL=loud is not one of error, warn, info, "
                                       "debug"));
    CU_ASSERT_PTR_NULL(strstr(out, "pages"));   /* it stays warn */
}

/* SHOAL_QUIET: 1 silences stderr, 0 and empty do not, anything else is a warning. */
static void test_quiet_strict(void)
{
    char out[8192];
    const char *const q1[] = { "SHOAL_QUIET=1", "SHOAL_LOG_LEVEL=info", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", q1, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    const char *const q0[] = { "SHOAL_QUIET=0", "SHOAL_LOG_LEVEL=info", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", q0, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pages"));
    const char *const qe[] = { "SHOAL_QUIET=", "SHOAL_NO_FUTEX_WAITV=2", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", qe, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "SHOAL_NO_FUTEX_WAITV=2 is not 0 or 1"));
    const char *const qy[] = { "SHOAL_QUIET=yes", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", qy, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "SHOAL_QUIET=yes is not 0 or 1"));
    /* Other switches and numbers are strict too. */
    const char *const io[] = { "SHOAL_IO_DIRECT=no", "SHOAL_TEST_GEN_BASE=12abc", NULL };
    CU_ASSERT_EQUAL(in_child("init_and_stop", io, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "SHOAL_TEST_GEN_BASE=12abc is not a number from 1 to"));
}

/* With a sink: the huge-page state once per process at info, nothing on stderr. */
static int sink_child(void)
{
    cap_reset();
    shoal_set_log(sink, &cap, SHOAL_LOG_DEBUG);
    if (init_and_stop() != 0)
        return 20;
    if (cap.count[SHOAL_LOG_INFO] != 1 || !cap_has("pages"))
        return 21;
    cap_reset();
    if (init_and_stop() != 0)            /* once per process */
        return 22;
    if (cap_has("pages"))
        return 23;
    /* A level filter: warnings are dropped at ERROR. */
    shoal_set_log(sink, &cap, SHOAL_LOG_ERROR);
    setenv("SHOAL_NO_FUTEX_WAITV", "x", 1);
    if (init_and_stop() != 0)
        return 24;
    if (cap_has("SHOAL_NO_FUTEX_WAITV"))
        return 25;
    shoal_set_log(sink, &cap, SHOAL_LOG_WARN);
    if (init_and_stop() != 0)
        return 26;
    if (!cap_has("1 SHOAL_NO_FUTEX_WAITV=x is not 0 or 1"))
        return 27;
    /* Back to stderr. */
    shoal_set_log(NULL, NULL, SHOAL_LOG_WARN);
    cap_reset();
    if (init_and_stop() != 0)
        return 28;
    return cap.text[0] ? 29 : 0;
}

static void test_sink(void)
{
    char out[8192];
    const char *const env[] = { NULL };
    CU_ASSERT_EQUAL(in_child("sink_child", env, out, sizeof out), 0);
    /* Only the last init, after the sink was taken away, printed. */
    CU_ASSERT_PTR_NULL(strstr(out, "pages"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shoal: SHOAL_NO_FUTEX_WAITV=x is not 0 or 1"));
    char *first = strstr(out, "SHOAL_NO_FUTEX_WAITV");
    CU_ASSERT(first && !strstr(first + 1, "SHOAL_NO_FUTEX_WAITV"));
}

/* White-box: the library's logging call, to log from test threads (static link). */
void shoal__log_at(int level, const char *fmt, ...);

/* A sink that calls shoal (whose messages meanwhile go to stderr) and shoal_set_log
 * (ignored): no deadlock. */
static atomic_int nested_calls;
static void nested_sink(int level, const char *msg, void *arg)
{
    (void)level;
    (void)msg;
    (void)arg;
    atomic_fetch_add(&nested_calls, 1);
    shoal_set_log(NULL, NULL, SHOAL_LOG_DEBUG);   /* ignored */
    shoal__log_at(SHOAL_LOG_WARN, "nested message");
    shoal_info in;
    (void)shoal_info_get(&in);
}

static int nested_child(void)
{
    shoal_set_log(nested_sink, NULL, SHOAL_LOG_WARN);
    setenv("SHOAL_NO_FUTEX_WAITV", "x", 1);
    if (init_and_stop() != 0)
        return 30;
    if (atomic_load(&nested_calls) != 1)
        return 31;
    shoal__log_at(SHOAL_LOG_WARN, "second");   /* still our sink: set_log was ignored */
    shoal__log_at(SHOAL_LOG_INFO, "filtered");
    return atomic_load(&nested_calls) == 2 ? 0 : 32;
}

static void test_sink_reentry(void)
{
    char out[8192];
    const char *const env[] = { NULL };
    CU_ASSERT_EQUAL(in_child("nested_child", env, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shoal: nested message"));
    CU_ASSERT_PTR_NULL(strstr(out, "second"));
    CU_ASSERT_PTR_NULL(strstr(out, "SHOAL_NO_FUTEX_WAITV"));
}

/* Threads log while another swaps sinks: every message lands in exactly one sink, and
 * once shoal_set_log returns the old sink gets nothing more. */
static struct capture cap2 = { .mu = PTHREAD_MUTEX_INITIALIZER };
static atomic_int stop_swapping;
#define LOGS_PER_THREAD 2000

static void *swapper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_swapping)) {
        shoal_set_log(sink, &cap2, SHOAL_LOG_WARN);
        shoal_set_log(sink, &cap, SHOAL_LOG_WARN);
    }
    return NULL;
}

static void *logger(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOGS_PER_THREAD / SAN_DIV; i++)
        shoal__log_at(SHOAL_LOG_WARN, "m");
    return NULL;
}

static void test_concurrent_set_log(void)
{
    cap_reset();
    cap2.count[SHOAL_LOG_WARN] = 0;
    shoal_set_log(sink, &cap, SHOAL_LOG_WARN);
    pthread_t sw, lg[2];
    CU_ASSERT_FATAL(pthread_create(&sw, NULL, swapper, NULL) == 0);
    for (int k = 0; k < 2; k++)
        CU_ASSERT_FATAL(pthread_create(&lg[k], NULL, logger, NULL) == 0);
    for (int k = 0; k < 2; k++)
        pthread_join(lg[k], NULL);
    atomic_store(&stop_swapping, 1);
    pthread_join(sw, NULL);
    /* cap only now: after set_log returns, cap2 must never be called again. */
    pthread_mutex_lock(&cap2.mu);
    int in2 = cap2.count[SHOAL_LOG_WARN];
    pthread_mutex_unlock(&cap2.mu);
    shoal__log_at(SHOAL_LOG_WARN, "m");
    pthread_mutex_lock(&cap.mu);
    int in1 = cap.count[SHOAL_LOG_WARN];
    pthread_mutex_unlock(&cap.mu);
    CU_ASSERT_EQUAL(in1 + in2, 2 * (LOGS_PER_THREAD / SAN_DIV) + 1);
    CU_ASSERT_EQUAL(cap2.count[SHOAL_LOG_WARN], in2);
    shoal_set_log(NULL, NULL, SHOAL_LOG_WARN);
}

/* Every SHOAL_* variable the library, tools and harnesses read is in docs/ENVIRONMENT.md. */
static void test_env_documented(void)
{
    char root[PATH_MAX / 2];
    ssize_t len = readlink("/proc/self/exe", root, sizeof root - 1);
    CU_ASSERT_FATAL(len > 0);
    root[len] = 0;
    for (int up = 0; up < 3; up++)
        *strrchr(root, '/') = 0;       /* <root>/<build>/tests/test_log */
    char cmd[PATH_MAX], names[8192], doc[PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd '%s' && grep -rhoE '(getenv|env_flag|env_u64)\\(\"SHOAL_[A-Z_]+' "
             "os layout alloc core sched io mproc runtime tools tests/lib | grep -oE 'SHOAL_[A-Z_]+' | sort -u", root);
    CU_ASSERT_EQUAL_FATAL(test_run_cmd(cmd, names, sizeof names), 0);
    snprintf(doc, sizeof doc, "%s/docs/ENVIRONMENT.md", root);
    FILE *f = fopen(doc, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char text[32768];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    int found = 0;
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
        char cell[80];
        snprintf(cell, sizeof cell, "`%s`", name);
        if (!strstr(text, cell))
            fprintf(stderr, "%s is read but not in docs/ENVIRONMENT.md\n", name);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, cell));
        found++;
    }
    CU_ASSERT(found >= 8);   /* the grep found them */
}

int main(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(void); } scenarios[] = {
        { "init_and_stop", init_and_stop },
        { "sink_child", sink_child },
        { "nested_child", nested_child },
    };
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            if (strcmp(argv[2], scenarios[i].name) == 0)
                return scenarios[i].fn();
        return 126;
    }
    static const shoal_test_case cases[] = {
        { "default: warnings on stderr, info only with SHOAL_LOG_LEVEL", test_default_level },
        { "SHOAL_QUIET and other variables are parsed strictly", test_quiet_strict },
        { "a sink gets the huge-page state once, levels filter", test_sink },
        { "a sink may call shoal; set_log inside it is ignored", test_sink_reentry },
        { "set_log while other threads log", test_concurrent_set_log },
        { "every variable is documented", test_env_documented },
        { NULL, NULL },
    };
    return shoal_test_run("log", cases);
}
