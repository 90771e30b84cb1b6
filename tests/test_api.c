/* test_api.c - the API's defaults and room to grow: a zero-initialised shoal_task_opts
 * means any node (on a synthetic 2-node topology), reserved fields of the config, options
 * and info structs, shoal_version(), and the task context (opts.ctx, shoal_task_ctx,
 * opts.ctx_done on every way a task ends). Black-box through shoal.h. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

/* 4 nodes of one core each: with 2 workers, worker 0 serves node 0 and worker 1 node 1. */
#define TOPO4 "pack:4 numa:1 core:1 pu:1"

static void start_topo(const char *topo, unsigned workers)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.topology = topo;
    c.workers = workers;
    ASSERT_OK(shoal_init(&c));
}

/* ---- zero-initialised options: any node --------------------------------------------------- */

/* Two tasks meet: each marks its arrival and waits (bounded) until both have arrived, then
 * returns the node it ran on. Only two workers on two different nodes can run them at once,
 * so they meet only if the scheduler lets them run on both nodes. */
static atomic_int arrived;
static atomic_int stop_waiting;

static int t_meet(shoal_task *t)
{
    atomic_fetch_add(&arrived, 1);
    /* Bounded: a scheduler that keeps both on one node fails the test instead of hanging. */
    for (int i = 0; i < 20000 && atomic_load(&arrived) < 2 && !atomic_load(&stop_waiting); i++)
        nap_ms(1);
    long v = shoal_worker_node((unsigned)shoal_task_worker(t));
    if (atomic_load(&arrived) < 2)
        v = -100;   /* did not meet */
    return shoal_task_return(t, &v, sizeof v);
}

static void meet_with(const shoal_task_opts *o, long *n0, long *n1)
{
    atomic_store(&arrived, 0);
    atomic_store(&stop_waiting, 0);
    shoal_ref r[2];
    ASSERT_OK(shoal_submit(t_meet, NULL, 0, o, &r[0]));
    ASSERT_OK(shoal_submit(t_meet, NULL, 0, o, &r[1]));
    int rc;
    *n0 = get_long(r[0], &rc);
    CHECK_OK(rc);
    *n1 = get_long(r[1], &rc);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r[0]));
    CHECK_OK(shoal_release(r[1]));
}

static void test_zero_opts_any_node(void)
{
    start_topo(TOPO4, 2);
    CU_ASSERT_EQUAL(shoal_worker_node(0), 0);
    CU_ASSERT_EQUAL(shoal_worker_node(1), 1);
    long a, b;
    /* A name and nothing else: the rest zero, which must mean any node. */
    shoal_task_opts named = { .name = "map" };
    meet_with(&named, &a, &b);
    CU_ASSERT(a >= 0 && b >= 0);                  /* they met */
    CU_ASSERT((a == 0 && b == 1) || (a == 1 && b == 0));
    shoal_task_opts zero;
    memset(&zero, 0, sizeof zero);
    meet_with(&zero, &a, &b);
    CU_ASSERT((a == 0 && b == 1) || (a == 1 && b == 0));
    shoal_task_opts any = { .numa_node = -1, .flags = SHOAL_TASK_ON_NODE };
    meet_with(&any, &a, &b);
    CU_ASSERT((a == 0 && b == 1) || (a == 1 && b == 0));
    ASSERT_OK(shoal_shutdown());
}

/* Where a task ran. */
static int t_node(shoal_task *t)
{
    long v = shoal_worker_node((unsigned)shoal_task_worker(t));
    return shoal_task_return(t, &v, sizeof v);
}

static void test_pin_node0_and_node1(void)
{
    start_topo(TOPO4, 2);
    shoal_task_opts n0 = { .numa_node = 0, .flags = SHOAL_TASK_ON_NODE, .name = "n0" };
    shoal_task_opts n1 = { .numa_node = 1, .name = "n1" };   /* nonzero: no flag needed */
    for (int i = 0; i < 50; i++) {
        shoal_ref r0, r1;
        ASSERT_OK(shoal_submit(t_node, NULL, 0, &n0, &r0));
        ASSERT_OK(shoal_submit(t_node, NULL, 0, &n1, &r1));
        int rc;
        CU_ASSERT_EQUAL(get_long(r0, &rc), 0);
        CHECK_OK(rc);
        CU_ASSERT_EQUAL(get_long(r1, &rc), 1);
        CHECK_OK(rc);
        CHECK_OK(shoal_release(r0));
        CHECK_OK(shoal_release(r1));
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- reserved fields ----------------------------------------------------------------------- */

static void test_opts_reserved(void)
{
    start_workers(1, 0);
    shoal_ref r;
    shoal_task_opts o = { .name = "x" };
    o.reserved[2] = 1;
    CU_ASSERT_EQUAL(shoal_submit(t_node, NULL, 0, &o, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "zero-initialise"));
    memset(&o, 0, sizeof o);
    o.reserved0 = 7;
    CU_ASSERT_EQUAL(shoal_submit(t_node, NULL, 0, &o, &r), SHOAL_EINVAL);
    memset(&o, 0, sizeof o);
    o.flags = 0x80;
    CU_ASSERT_EQUAL(shoal_submit(t_node, NULL, 0, &o, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "opts.flags"));
    o.flags = SHOAL_TASK_ON_NODE;   /* node 0 of a one-node machine: fine */
    ASSERT_OK(shoal_submit(t_node, NULL, 0, &o, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 0);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));

    shoal_info in;
    memset(&in, 0xa5, sizeof in);
    ASSERT_OK(shoal_info_get(&in));
    for (size_t i = 0; i < sizeof in.reserved / sizeof in.reserved[0]; i++)
        CU_ASSERT_EQUAL(in.reserved[i], 0);
    ASSERT_OK(shoal_shutdown());

    shoal_config c = shoal_test_config();
    c.reserved[7] = 1;
    CU_ASSERT_EQUAL(shoal_init(&c), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "config.reserved[7]"));
    CU_ASSERT_EQUAL(shoal_shutdown(), SHOAL_ENOTINIT);   /* nothing started */
}

static void test_version(void)
{
    const char *v = shoal_version();
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR,
             SHOAL_VERSION_PATCH);
    CU_ASSERT_STRING_EQUAL(v, want);
    /* Works without a runtime, and is the same string every time. */
    CU_ASSERT_PTR_EQUAL(shoal_version(), v);
}

/* ---- the task context --------------------------------------------------------------------- */

struct ctx {
    long value;
    atomic_int done;          /* ctx_done calls */
    atomic_int ran;
};

static void ctx_done(void *p)
{
    struct ctx *c = p;
    atomic_fetch_add(&c->done, 1);
}

static int t_ctx(shoal_task *t)
{
    struct ctx *c = shoal_task_ctx(t);
    if (!c)
        return shoal_task_fail(t, "no ctx"), 1;
    atomic_fetch_add(&c->ran, 1);
    /* value + 1000 x the ctx_done calls so far: this task's has not run yet. */
    long v = c->value + 1000L * atomic_load(&c->done);
    return shoal_task_return(t, &v, sizeof v);
}

static int t_ctx_null(shoal_task *t)
{
    long v = shoal_task_ctx(t) == NULL;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_task_ctx(void)
{
    start_workers(2, 0);
    CU_ASSERT_PTR_NULL(shoal_task_ctx(NULL));
    struct ctx c = { .value = 42 };
    shoal_task_opts o = { .ctx = &c, .ctx_done = ctx_done, .name = "ctx" };
    shoal_ref r;
    int rc;
    /* Runs: sees ctx; ctx_done once, before the result is complete. */
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(shoal_submit(t_ctx, NULL, 0, &o, &r));
        CU_ASSERT_EQUAL(get_long(r, &rc), 42 + 1000L * i);
        CHECK_OK(rc);
        CU_ASSERT_EQUAL(atomic_load(&c.done), i + 1);
        CHECK_OK(shoal_release(r));
    }
    CU_ASSERT_EQUAL(atomic_load(&c.ran), 100);
    /* ctx without ctx_done, with arguments (the context sits after the argument table). */
    struct ctx d = { .value = 7 };
    shoal_task_opts od = { .ctx = &d };
    long x = 5;
    shoal_ref obj;
    ASSERT_OK(shoal_put(&x, sizeof x, &obj));
    shoal_arg args[3] = { SHOAL_VALUE(&x, sizeof x), SHOAL_REF(obj), SHOAL_REF_PASS(obj) };
    ASSERT_OK(shoal_submit(t_ctx, args, 3, &od, &r));
    CU_ASSERT_EQUAL(get_long(r, &rc), 7);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    /* No ctx: NULL. */
    ASSERT_OK(shoal_submit(t_ctx_null, args, 3, NULL, &r));
    CU_ASSERT_EQUAL(get_long(r, &rc), 1);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));

    /* Never runs, its REF argument failed: ctx_done still called once. */
    struct ctx e = { .value = 1 };
    shoal_task_opts oe = { .ctx = &e, .ctx_done = ctx_done };
    shoal_task_opts of = { .name = "fails" };
    shoal_ref bad, r2;
    ASSERT_OK(shoal_submit(t_ctx, NULL, 0, &of, &bad));   /* no ctx: fails */
    shoal_arg a = SHOAL_REF(bad);
    ASSERT_OK(shoal_submit(t_ctx, &a, 1, &oe, &r2));
    CU_ASSERT_EQUAL(get_long(r2, &rc), -1);
    CU_ASSERT_EQUAL(rc, SHOAL_ETASK);
    CU_ASSERT_EQUAL(atomic_load(&e.ran), 0);
    CU_ASSERT_EQUAL(atomic_load(&e.done), 1);
    CHECK_OK(shoal_release(bad));
    CHECK_OK(shoal_release(r2));

    /* A submit that fails calls nothing: ctx stays the caller's. */
    struct ctx f = { .value = 1 };
    shoal_task_opts obad = { .ctx = &f, .ctx_done = ctx_done };
    obad.reserved[0] = 1;
    CU_ASSERT_EQUAL(shoal_submit(t_ctx, NULL, 0, &obad, &r), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(atomic_load(&f.done), 0);

    /* Waiting at shutdown on an object never sealed: canceled, ctx_done once. */
    struct ctx g = { .value = 1 };
    shoal_task_opts og = { .ctx = &g, .ctx_done = ctx_done };
    void *buf;
    shoal_ref pending, r3;
    ASSERT_OK(shoal_create(8, &buf, &pending));
    shoal_arg p = SHOAL_REF(pending);
    ASSERT_OK(shoal_submit(t_ctx, &p, 1, &og, &r3));
    CHECK_OK(shoal_release(obj));
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(atomic_load(&g.ran), 0);
    CU_ASSERT_EQUAL(atomic_load(&g.done), 1);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "zero-initialised opts run on any node (2 nodes)", test_zero_opts_any_node },
        { "SHOAL_TASK_ON_NODE pins to node 0, nonzero numa_node pins", test_pin_node0_and_node1 },
        { "reserved fields must be zero; info's are zeroed", test_opts_reserved },
        { "shoal_version matches the header", test_version },
        { "task context: ctx, ctx_done on run, failure, cancel", test_task_ctx },
        { NULL, NULL },
    };
    return shoal_test_run("api", cases);
}
