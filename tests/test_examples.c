/* test_examples.c - every program under examples/ runs to success and prints what it
 * promises. Each runs as its own process from <build>/examples/, small-sized where it
 * takes a size (mapreduce: 64 MiB instead of 1 GiB). */
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"
#include "lib/proc.h"

/* Run examples/<name> with args; returns its exit status, its output in out. */
static int run_example(const char *name, const char *args, char *out, size_t n)
{
    char exe[PATH_MAX], cmd[PATH_MAX + 256];
    test_sibling(exe, sizeof exe, "examples", name);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", exe, args);
    int rc = test_run_cmd(cmd, out, n);
    if (rc != 0)
        fprintf(stderr, "%s %s exited with %d:\n%s\n", name, args, rc, out);
    return rc;
}

static void expect(const char *out, const char *what)
{
    if (!strstr(out, what))
        fprintf(stderr, "expected \"%s\" in:\n%s\n", what, out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, what));
}

static void test_hello(void)
{
    char out[4096];
    CU_ASSERT_EQUAL(run_example("hello", "", out, sizeof out), 0);
    expect(out, "hello, shoal (13 bytes)\n");
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "hello: put and get", test_hello },
        { NULL, NULL },
    };
    return shoal_test_run("examples", cases);
}
