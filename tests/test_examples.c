/* test_examples.c - every program under examples/ (C and C++) runs to success and prints what it
 * promises. Each runs as its own process from <build>/examples/, small-sized where it
 * takes a size (mapreduce: 64 MiB instead of 1 GiB). */
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"
#include "lib/proc.h"

/* Run examples/<name> with args; its output into out. Returns 1 if it exited with want. */
static int run_example(const char *name, const char *args, int want, char *out, size_t n)
{
    char exe[PATH_MAX], cmd[PATH_MAX + 256];
    test_sibling(exe, sizeof exe, "examples", name);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", exe, args);
    int rc = test_run_cmd(cmd, out, n);
    if (rc != want)
        fprintf(stderr, "%s %s exited with %d, want %d:\n%s\n", name, args, rc, want, out);
    return rc == want;
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
    CU_ASSERT_TRUE(run_example("hello", "", 0, out, sizeof out));
    expect(out, "hello, shoal (13 bytes)\n");
}

static void test_pipeline(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("pipeline", "", 0, out, sizeof out));
    expect(out, "16 batches x 4096 values through gen -> square -> sum -> total: "
                "93822844764160 (expected 93822844764160) ok\n");
    /* a wider pipeline: more tasks in flight than workers, total over 200 REF arguments */
    CU_ASSERT_TRUE(run_example("pipeline", "200 100", 0, out, sizeof out));
    expect(out, "200 batches x 100 values");
    expect(out, ") ok\n");
    /* bad arguments are refused with the usage */
    CU_ASSERT_TRUE(run_example("pipeline", "0", 2, out, sizeof out));
    expect(out, "usage: pipeline");
}

static void test_mapreduce(void)
{
    char out[4096];
    /* 64 MiB here; run it by hand for the full 1 GiB */
    CU_ASSERT_TRUE(run_example("mapreduce", "64", 0, out, sizeof out));
    expect(out, "mapreduce: 64 MiB in 8 objects of 8 MiB, 8 map and 1 reduce tasks: 8388608 "
                "words, sum 0xe122cd60fac00000, histogram uniform: ok\n");
    CU_ASSERT_TRUE(run_example("mapreduce", "12", 2, out, sizeof out));
    expect(out, "usage: mapreduce");
}

/* Needs shoal_attach: the child attaches to the parent's published store. */
static void test_twoproc(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("twoproc", "", 0, out, sizeof out));
    expect(out, "got \"hello from process ");
    expect(out, "got \"reply from process ");
    expect(out, "twoproc: ok: the message was freed with its last reference");
}

/* Refs in flight: no frame is lost when the producer detaches or is killed right after
 * writing; without shoal_transfer the consumer only reports what it lost (no figure is
 * checked: how many survive the race depends on scheduling). */
static void test_handoff(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("handoff", "2000 detach", 0, out, sizeof out));
    expect(out, "producer detached after its last write: 2000 consumed, 0 lost, 0 wrong");
    expect(out, "handoff: ok: every frame survived its producer\n");
    CU_ASSERT_TRUE(run_example("handoff", "2000 kill", 0, out, sizeof out));
    expect(out, "producer SIGKILLed after its last write: 2000 consumed, 0 lost, 0 wrong");
    CU_ASSERT_TRUE(run_example("handoff", "200 plain", 0, out, sizeof out));
    expect(out, "(no shoal_transfer): ");
    CU_ASSERT_TRUE(run_example("handoff", "0", 2, out, sizeof out));
    expect(out, "usage: handoff");
}

/* The C++ examples (include/shoal.hpp). */
static void test_cxx_fib(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("cxx_fib", "24", 0, out, sizeof out));
    expect(out, "fib(24) = 46368 ok\n");
    CU_ASSERT_TRUE(run_example("cxx_fib", "-1", 2, out, sizeof out));
    expect(out, "usage: cxx_fib");
}

static void test_cxx_pipeline(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("cxx_pipeline", "", 0, out, sizeof out));
    expect(out, "16 batches x 4096 values through gen -> square -> sum -> total: "
                "93822844764160 (expected 93822844764160) ok\n");
    CU_ASSERT_TRUE(run_example("cxx_pipeline", "200 100", 0, out, sizeof out));
    expect(out, ") ok\n");
    CU_ASSERT_TRUE(run_example("cxx_pipeline", "0", 2, out, sizeof out));
    expect(out, "usage: cxx_pipeline");
}

static void test_actor(void)
{
    char out[4096];
    CU_ASSERT_TRUE(run_example("actor", "", 0, out, sizeof out));
    expect(out, "actor: 1000 deposits from 4 tasks, balance 125500 (want 125500)\n");
    CU_ASSERT_TRUE(run_example("actor", "40000", 0, out, sizeof out));
    expect(out, "actor: 40000 deposits from 4 tasks, balance 200020000 (want 200020000)\n");
    CU_ASSERT_TRUE(run_example("actor", "2", 2, out, sizeof out));
    expect(out, "usage: actor");
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "hello: put and get", test_hello },
        { "pipeline: tasks passing refs", test_pipeline },
        { "mapreduce: 64 MiB in objects, map and reduce tasks", test_mapreduce },
        { "twoproc: two processes share a store", test_twoproc },
        { "handoff: frames survive their producer (shoal_transfer)", test_handoff },
        { "cxx_fib: recursive C++ tasks", test_cxx_fib },
        { "cxx_pipeline: C++ lambdas passing refs", test_cxx_pipeline },
        { "actor: deposits from 4 tasks into one account", test_actor },
        { NULL, NULL },
    };
    return shoal_test_run("examples", cases);
}
