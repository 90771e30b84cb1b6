/* test_tools.c - the command-line tools tell the truth: shoal-stat --json is valid JSON (to
 * python3's parser and tools/json.h) for a store name with quotes, backslashes and UTF-8,
 * and reports what the store holds (objects and bytes per process, pending, the largest
 * objects, lookup counters); SHOAL_PUBLISH publishes an unnamed program's store; --watch
 * piped writes no escape sequence; every tool takes --help and rejects unknown options.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "../tools/json.h"

static char rundir[64];

static void private_run_dir(void)
{
    CU_ASSERT_EQUAL_FATAL(test_private_run_dir(rundir, sizeof rundir), 0);
}

/* Valid JSON to python3's parser too, not only to tools/json.h. */
static void python_accepts(const char *text)
{
    char file[128];
    snprintf(file, sizeof file, "/tmp/shoal-test-tools-%d.json", (int)getpid());
    FILE *f = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    CU_ASSERT(test_python_json(file) <= 0);
    unlink(file);
}

/* Run shoal-stat with the store name in $SHOAL_TEST_STORE (no shell quoting to get wrong). */
static int run_stat(const char *args, char *out, size_t n)
{
    char tool[PATH_MAX], cmd[PATH_MAX + 256];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "timeout 60 '%s' %s \"$SHOAL_TEST_STORE\"", tool, args);
    return test_run_cmd(cmd, out, n);
}

/* An unnamed store published by SHOAL_PUBLISH under a name with '"', '\' and 'é'; the JSON
 * is valid, the name comes back byte for byte, and the figures are the store's. */
static void test_stat_json_truthful(void)
{
    test_reset();
    private_run_dir();
    char name[64], want[64];
    snprintf(name, sizeof name, "tools-\"q\\b\xc3\xa9-%%p");
    snprintf(want, sizeof want, "tools-\"q\\b\xc3\xa9-%d", (int)getpid());
    setenv("SHOAL_PUBLISH", name, 1);
    setenv("SHOAL_TEST_STORE", want, 1);
    shoal_config c = shoal_test_config();   /* no name: SHOAL_PUBLISH gives it one */
    int rc = shoal_init(&c);
    unsetenv("SHOAL_PUBLISH");
    ASSERT_OK(rc);

    enum { SMALL = 20, BIG = 1 << 20, STALE = 7 };
    static char big[BIG];
    memset(big, 'x', sizeof big);
    shoal_ref b, mid, small[SMALL], gone;
    CHECK_OK(shoal_put(big, BIG, &b));
    CHECK_OK(shoal_put(big, BIG / 2, &mid));
    for (int i = 0; i < SMALL; i++)
        CHECK_OK(shoal_put("abc", 3, &small[i]));
    void *buf;
    shoal_ref created;
    CHECK_OK(shoal_create(64, &buf, &created));   /* pending until sealed */
    CHECK_OK(shoal_put("x", 1, &gone));
    CHECK_OK(shoal_release(gone));
    for (int i = 0; i < STALE; i++) {
        const void *d;
        size_t n;
        CU_ASSERT_EQUAL(shoal_get_timeout(gone, 0, &d, &n), SHOAL_ESTALE);
    }

    /* The owner's drainer publishes its lookup counters when it wakes (the tool wakes it):
     * on a loaded machine allow it a few tries. */
    static char out[1 << 16];
    jval *root = NULL;
    for (int attempt = 0; attempt < 40; attempt++) {
        json_free(root);
        root = NULL;
        rc = run_stat("--json --top 3", out, sizeof out);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        const char *err = NULL;
        size_t at = 0;
        root = json_parse(out, strlen(out), &err, &at);
        if (!root)
            fprintf(stderr, "shoal-stat --json: %s at %zu:\n%s\n", err, at, out);
        CU_ASSERT_PTR_NOT_NULL_FATAL(root);
        if (json_num_of(json_get(root, "lookups"), "bad_ids", 0) >= STALE)
            break;
        usleep(100000);
    }
    python_accepts(out);
    CU_ASSERT_STRING_EQUAL(json_str_of(root, "name", ""), want);
    CU_ASSERT_EQUAL(json_num_of(root, "owner_pid", -1), getpid());
    CU_ASSERT(json_num_of(json_get(root, "lookups"), "bad_ids", 0) >= STALE);
    /* the largest three, largest first */
    const jval *top = json_get(root, "largest");
    CU_ASSERT_FATAL(top && top->t == J_ARR && top->n == 3);
    CU_ASSERT_EQUAL(json_num_of(&top->items[0], "bytes", 0), BIG);
    CU_ASSERT_EQUAL(json_num_of(&top->items[1], "bytes", 0), BIG / 2);
    char id[32];
    snprintf(id, sizeof id, "0x%llx", (unsigned long long)b.id);
    CU_ASSERT_STRING_EQUAL(json_str_of(&top->items[0], "id", ""), id);
    CU_ASSERT_STRING_EQUAL(json_str_of(&top->items[0], "state", ""), "ready");
    CU_ASSERT_EQUAL(json_num_of(&top->items[0], "pid", 0), getpid());
    /* the owner's process line: what it allocated */
    const jval *procs = json_get(root, "processes");
    CU_ASSERT_FATAL(procs && procs->t == J_ARR && procs->n >= 1);
    const jval *own = &procs->items[0];
    CU_ASSERT_EQUAL(json_num_of(own, "pid", 0), getpid());
    CU_ASSERT_EQUAL(json_num_of(own, "objects", 0), 2 + SMALL + 1);
    CU_ASSERT_EQUAL(json_num_of(own, "pending", 0), 1);
    CU_ASSERT_EQUAL(json_num_of(own, "bytes", 0), BIG + BIG / 2 + 3 * SMALL);
    CU_ASSERT_EQUAL(json_num_of(json_get(root, "objects"), "pending", -1), 1);
    /* the tool itself is listed as one */
    int tools = 0;
    for (size_t i = 1; i < procs->n; i++)
        tools += json_get(&procs->items[i], "tool")->num == 1;
    CU_ASSERT_EQUAL(tools, 1);
    CU_ASSERT_PTR_NOT_NULL(json_get(root, "spill"));
    CU_ASSERT_PTR_NOT_NULL(json_get(root, "workers"));
    json_free(root);

    /* the text form says the same */
    rc = run_stat("--top 2", out, sizeof out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "largest       2 objects"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "1048576 bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "lookups"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "      1 pending"));

    /* --watch into a pipe: refreshes one after another, no escape sequence */
    char tool[PATH_MAX], cmd[PATH_MAX + 256];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "timeout -s INT 3 '%s' --watch \"$SHOAL_TEST_STORE\" | cat", tool);
    test_run_cmd(cmd, out, sizeof out);
    CU_ASSERT_PTR_NULL(memchr(out, '\033', strlen(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "store '"));

    CHECK_OK(shoal_seal(created));
    CHECK_OK(shoal_release(created));
    CHECK_OK(shoal_release(b));
    CHECK_OK(shoal_release(mid));
    for (int i = 0; i < SMALL; i++)
        CHECK_OK(shoal_release(small[i]));
    CHECK_OK(shoal_shutdown());
    unsetenv("SHOAL_TEST_STORE");
    unsetenv("SHOAL_RUN_DIR");
    CU_ASSERT_EQUAL(rmdir(rundir), 0);
}

/* A bad SHOAL_PUBLISH fails the init and names the variable. */
static void test_publish_bad_name(void)
{
    test_reset();
    setenv("SHOAL_PUBLISH", "no/slash", 1);
    shoal_config c = shoal_test_config();
    int rc = shoal_init(&c);
    unsetenv("SHOAL_PUBLISH");
    CU_ASSERT_EQUAL(rc, SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "SHOAL_PUBLISH"));
    if (rc == 0)
        shoal_shutdown();
}

/* getopt_long everywhere: --help on stdout with status 0, an unknown option or a missing
 * value on stderr with status 2. */
static void test_tools_options(void)
{
    static const char *const tools[] = { "shoal-stat", "shoal-timeline", "shoal-topo" };
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
        char tool[PATH_MAX], cmd[PATH_MAX + 64], out[8192];
        test_sibling(tool, sizeof tool, "tools", tools[i]);
        snprintf(cmd, sizeof cmd, "'%s' --help 2>/dev/null", tool);
        CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage:"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "--help"));
        snprintf(cmd, sizeof cmd, "'%s' -h 2>/dev/null", tool);
        CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
        snprintf(cmd, sizeof cmd, "'%s' --no-such-option x 2>&1 >/dev/null", tool);
        CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
        if (!strstr(out, "unknown option '--no-such-option'"))
            fprintf(stderr, "%s said: %s\n", tools[i], out);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown option '--no-such-option'"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage:"));
    }
    char tool[PATH_MAX], cmd[PATH_MAX + 64], out[4096];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "'%s' x --top 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs a value"));
    snprintf(cmd, sizeof cmd, "'%s' --top=-1 x 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    test_sibling(tool, sizeof tool, "tools", "shoal-timeline");
    snprintf(cmd, sizeof cmd, "'%s' --count 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    test_sibling(tool, sizeof tool, "tools", "shoal-topo");
    snprintf(cmd, sizeof cmd, "'%s' --workers=abc 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' --synthetic='pack:2 numa:1 core:2 pu:1' --json 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
    python_accepts(out);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "shoal-stat --json: valid for any name, and true", test_stat_json_truthful },
        { "a bad SHOAL_PUBLISH fails the init", test_publish_bad_name },
        { "every tool: getopt_long, --help, unknown options", test_tools_options },
        { NULL, NULL },
    };
    return shoal_test_run("tools", cases);
}
