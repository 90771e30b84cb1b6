/* test_sched_numa.c - NUMA placement on synthetic topologies (2 and 4 nodes, binding
 * simulated) and on this machine: which node each worker serves, opts.numa_node pinning a
 * task to a node (checked inside the task), tasks placed on the node holding most of their
 * REF arguments' bytes, work stealing (a parent's children run on another worker) that
 * never moves a node-bound task off its node. Black-box through shoal.h. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/check.h"
#include "lib/tasks.h"

#define TOPO2 "pack:2 numa:1 core:2 pu:1"   /* 2 nodes x 2 cores */
#define TOPO4 "pack:4 numa:1 core:1 pu:1"   /* 4 nodes x 1 core */

static shoal_config placed(const char *topo, unsigned workers)
{
    shoal_config c = shoal_test_config();
    c.topology = topo;
    c.workers = workers;
    return c;
}

/* Where a task ran: (worker, node) packed in a long. */
static int t_where(shoal_task *t)
{
    int w = shoal_task_worker(t);
    long v = (long)w << 8 | (long)shoal_worker_node((unsigned)w);
    return shoal_task_return(t, &v, sizeof v);
}

static long where(shoal_ref r)
{
    int rc;
    long v = get_long(r, &rc);
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    return v;
}

/* ---- worker nodes ----------------------------------------------------------------------- */

static void test_worker_nodes(void)
{
    /* Worker w runs on core w % cores; cores 0-1 are node 0, 2-3 node 1. */
    test_start(placed(TOPO2, 6));
    shoal_info in = info_now();
    CU_ASSERT_EQUAL(in.numa_nodes, 2);
    CU_ASSERT_EQUAL(in.workers, 6);
    static const int want2[6] = { 0, 0, 1, 1, 0, 0 };
    for (unsigned w = 0; w < 6; w++)
        CU_ASSERT_EQUAL(shoal_worker_node(w), want2[w]);
    CU_ASSERT_EQUAL(shoal_worker_node(6), SHOAL_EINVAL);
    ASSERT_OK(shoal_shutdown());

    test_start(placed(TOPO4, 4));
    in = info_now();
    CU_ASSERT_EQUAL(in.numa_nodes, 4);
    for (unsigned w = 0; w < 4; w++)
        CU_ASSERT_EQUAL(shoal_worker_node(w), (int)w);
    ASSERT_OK(shoal_shutdown());

    test_start(placed(NULL, 2));     /* this machine: one node */
    in = info_now();
    CU_ASSERT(in.numa_nodes >= 1);
    for (unsigned w = 0; w < 2; w++) {
        int n = shoal_worker_node(w);
        CU_ASSERT(n >= 0 && (unsigned)n < in.numa_nodes);
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- opts.numa_node --------------------------------------------------------------------- */

static void check_pinned(const char *topo, unsigned workers, unsigned nodes)
{
    test_start(placed(topo, workers));
    int rounds = 200 / SAN_DIV;
    for (int i = 0; i < rounds; i++) {
        shoal_ref r[16];
        for (unsigned k = 0; k < nodes; k++) {
            shoal_task_opts o = { .numa_node = (int)k, .flags = SHOAL_TASK_ON_NODE, .name = "pinned" };
            ASSERT_OK(shoal_submit(t_where, NULL, 0, &o, &r[k]));
        }
        for (unsigned k = 0; k < nodes; k++) {
            long v = where(r[k]);
            CU_ASSERT_EQUAL(v & 0xff, (long)k);
            CU_ASSERT_EQUAL(shoal_worker_node((unsigned)(v >> 8)), (int)k);
        }
    }
    ASSERT_OK(shoal_shutdown());
}

static void test_numa_node_two(void) { check_pinned(TOPO2, 4, 2); }
static void test_numa_node_four(void) { check_pinned(TOPO4, 4, 4); }
static void test_numa_node_this_machine(void)
{
    test_start(placed(NULL, 2));
    shoal_task_opts o = { .numa_node = 0, .flags = SHOAL_TASK_ON_NODE };
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_where, NULL, 0, &o, &r));
    CU_ASSERT_EQUAL(where(r) & 0xff, 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_numa_node_errors(void)
{
    test_start(placed(TOPO2, 4));
    shoal_ref r;
    shoal_task_opts o = { .numa_node = 2 };
    CU_ASSERT_EQUAL(shoal_submit(t_where, NULL, 0, &o, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "numa_node 2"));
    o.numa_node = -5;
    CU_ASSERT_EQUAL(shoal_submit(t_where, NULL, 0, &o, &r), SHOAL_EINVAL);
    ASSERT_OK(shoal_shutdown());
    /* One worker on a two-node topology: node 1 has nobody to run its tasks. */
    test_start(placed(TOPO2, 1));
    o.numa_node = 1;
    CU_ASSERT_EQUAL(shoal_submit(t_where, NULL, 0, &o, &r), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "no worker"));
    o.numa_node = 0;
    ASSERT_OK(shoal_submit(t_where, NULL, 0, &o, &r));
    CU_ASSERT_EQUAL(where(r) & 0xff, 0);
    ASSERT_OK(shoal_shutdown());
}

/* A task on node a submits tasks bound to node b: they run on b. */
static int t_cross(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    int b;
    memcpy(&b, d, sizeof b);
    shoal_task_opts o = { .numa_node = b, .flags = SHOAL_TASK_ON_NODE };
    long bad = 0;
    for (int i = 0; i < 8; i++) {
        shoal_ref r;
        if (shoal_submit(t_where, NULL, 0, &o, &r))
            return 2;
        int rc;
        long v = get_long(r, &rc);
        shoal_release(r);
        bad += rc != 0 || (v & 0xff) != b;
    }
    return shoal_task_return(t, &bad, sizeof bad);
}

static void test_bound_from_other_node(void)
{
    test_start(placed(TOPO4, 4));
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            shoal_task_opts o = { .numa_node = a, .flags = SHOAL_TASK_ON_NODE };
            shoal_arg arg = SHOAL_VALUE(&b, sizeof b);
            shoal_ref r;
            ASSERT_OK(shoal_submit(t_cross, &arg, 1, &o, &r));
            int rc;
            CU_ASSERT_EQUAL(get_long(r, &rc), 0);
            CHECK_OK(rc);
            CHECK_OK(shoal_release(r));
        }
    ASSERT_OK(shoal_shutdown());
}

/* ---- placement near REF arguments --------------------------------------------------------- */

/* Runs where asked; puts `size` bytes (allocated on its own node) and returns their ref,
 * handing its reference to whoever gets the result. */
static int t_put_here(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    size_t size;
    memcpy(&size, d, sizeof size);
    void *buf = calloc(1, size);
    shoal_ref x;
    int rc = shoal_put(buf, size, &x);
    free(buf);
    if (rc)
        return 2;
    return shoal_task_return(t, &x, sizeof x);
}

/* Returns `size` bytes as its own result, from wherever it runs. */
static int t_return_here(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    size_t size;
    memcpy(&size, d, sizeof size);
    void *buf;
    if (shoal_task_return_buf(t, size, &buf))
        return 2;
    memset(buf, 1, size);
    return 0;
}

static shoal_ref put_on(int node, size_t size)
{
    shoal_task_opts o = { .numa_node = node, .flags = SHOAL_TASK_ON_NODE };
    shoal_arg a = SHOAL_VALUE(&size, sizeof size);
    shoal_ref r, x = SHOAL_REF_NULL;
    CU_ASSERT_EQUAL_FATAL(shoal_submit(t_put_here, &a, 1, &o, &r), 0);
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(get_within(r, &d, &n), 0);
    if (n == sizeof x)
        memcpy(&x, d, sizeof x);
    CHECK_OK(shoal_release(r));
    CU_ASSERT_EQUAL(shoal_object_node(x), node);
    return x;
}

static void test_placed_near_ref_bytes(void)
{
    test_start(placed(TOPO2, 4));
    int rounds = 20 / (SAN_DIV > 1 ? 4 : 1);
    for (int i = 0; i < rounds; i++) {
        shoal_ref big1 = put_on(1, 65536), small0 = put_on(0, 1024), big0 = put_on(0, 200000);
        shoal_ref r;
        /* one REF on node 1 */
        shoal_arg a1 = SHOAL_REF(big1);
        ASSERT_OK(shoal_submit(t_where, &a1, 1, NULL, &r));
        CU_ASSERT_EQUAL(where(r) & 0xff, 1);
        /* most bytes on node 1 */
        shoal_arg a2[2] = { SHOAL_REF(small0), SHOAL_REF(big1) };
        ASSERT_OK(shoal_submit(t_where, a2, 2, NULL, &r));
        CU_ASSERT_EQUAL(where(r) & 0xff, 1);
        /* most bytes on node 0; REF_PASS bytes do not count */
        shoal_arg a3[3] = { SHOAL_REF(big1), SHOAL_REF(big0), SHOAL_REF_PASS(big1) };
        ASSERT_OK(shoal_submit(t_where, a3, 3, NULL, &r));
        CU_ASSERT_EQUAL(where(r) & 0xff, 0);
        /* opts.numa_node wins over the bytes */
        shoal_task_opts o = { .numa_node = 0, .flags = SHOAL_TASK_ON_NODE };
        ASSERT_OK(shoal_submit(t_where, &a1, 1, &o, &r));
        CU_ASSERT_EQUAL(where(r) & 0xff, 0);
        CHECK_OK(shoal_release(big1));
        CHECK_OK(shoal_release(small0));
        CHECK_OK(shoal_release(big0));
    }
    ASSERT_OK(shoal_shutdown());
}

/* The dependent is submitted first and waits; its argument is produced on node 1 by a task;
 * when that completes, the dependent is placed by where the bytes landed. */
static void test_placed_when_dependency_completes(void)
{
    test_start(placed(TOPO4, 4));
    int rounds = 40 / SAN_DIV;
    for (int i = 0; i < rounds; i++) {
        int node = i % 4;
        void *gate_buf;
        shoal_ref gate, p, r;
        ASSERT_OK(shoal_create(sizeof(size_t), &gate_buf, &gate));
        shoal_task_opts o = { .numa_node = node, .flags = SHOAL_TASK_ON_NODE };
        shoal_arg pa = SHOAL_REF(gate);       /* the size comes through the gate */
        ASSERT_OK(shoal_submit(t_return_here, &pa, 1, &o, &p));
        shoal_arg da = SHOAL_REF(p);
        ASSERT_OK(shoal_submit(t_where, &da, 1, NULL, &r));
        size_t size = 4096;
        memcpy(gate_buf, &size, sizeof size);
        CHECK_OK(shoal_seal(gate));
        CU_ASSERT_EQUAL(where(r) & 0xff, node);
        CU_ASSERT_EQUAL(shoal_object_node(p), node);
        CHECK_OK(shoal_release(p));
        CHECK_OK(shoal_release(gate));
    }
    ASSERT_OK(shoal_shutdown());
}

/* ---- stealing ------------------------------------------------------------------------------- */

static _Atomic int parent_worker = -1;
static _Atomic int others_seen;

static int t_child(shoal_task *t)
{
    if (shoal_task_worker(t) != atomic_load(&parent_worker))
        atomic_fetch_add(&others_seen, 1);
    return t_where(t);
}

/* The parent pushes children on its own deque and then keeps its worker busy (without
 * waiting through shoal) until another worker has run one of them: that worker stole it.
 * numa_node >= 0 binds parent and children to one node: thieves from other nodes must
 * leave them alone. */
static int t_parent(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    int node;
    memcpy(&node, d, sizeof node);
    atomic_store(&parent_worker, shoal_task_worker(t));
    enum { K = 64 };
    shoal_ref r[K];
    shoal_task_opts o = { .numa_node = node, .flags = SHOAL_TASK_ON_NODE };
    for (int i = 0; i < K; i++)
        if (shoal_submit(t_child, NULL, 0, &o, &r[i]))
            return 2;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do     /* bounded: a broken steal fails the test instead of hanging it */
        clock_gettime(CLOCK_MONOTONIC, &now);
    while (atomic_load(&others_seen) == 0 && now.tv_sec - t0.tv_sec < 20);
    long bad = 0;
    for (int i = 0; i < K; i++) {
        int rc;
        long v = get_long(r[i], &rc);
        shoal_release(r[i]);
        bad += rc != 0 || (node >= 0 && (v & 0xff) != node);
    }
    return shoal_task_return(t, &bad, sizeof bad);
}

static void run_steal(const char *topo, unsigned workers, int node)
{
    test_start(placed(topo, workers));
    shoal_info before = info_now();
    atomic_store(&others_seen, 0);
    shoal_task_opts o = { .numa_node = node, .flags = SHOAL_TASK_ON_NODE };
    shoal_arg a = SHOAL_VALUE(&node, sizeof node);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_parent, &a, 1, &o, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 0);     /* no child ran off its node */
    CHECK_OK(rc);
    CHECK_OK(shoal_release(r));
    CU_ASSERT(atomic_load(&others_seen) > 0);
    CU_ASSERT(info_now().tasks_stolen > before.tasks_stolen);
    ASSERT_OK(shoal_shutdown());
}

static void test_steal_this_machine(void) { run_steal(NULL, 2, -1); }
static void test_steal_same_node_only(void)
{
    run_steal(TOPO2, 4, 0);
    run_steal(TOPO2, 4, 1);
}
static void test_steal_across_nodes(void) { run_steal(TOPO4, 4, -1); }

int main(void)
{
    static const shoal_test_case cases[] = {
        { "worker nodes on 2, 4 and 1 node(s)", test_worker_nodes },
        { "numa_node pins tasks (2 nodes)", test_numa_node_two },
        { "numa_node pins tasks (4 nodes)", test_numa_node_four },
        { "numa_node 0 on this machine", test_numa_node_this_machine },
        { "numa_node errors", test_numa_node_errors },
        { "bound tasks submitted from another node", test_bound_from_other_node },
        { "placed near REF bytes", test_placed_near_ref_bytes },
        { "placed when the dependency completes", test_placed_when_dependency_completes },
        { "stealing on this machine", test_steal_this_machine },
        { "bound tasks are stolen on their node only", test_steal_same_node_only },
        { "unbound tasks are stolen across nodes", test_steal_across_nodes },
        { NULL, NULL },
    };
    return shoal_test_run("sched_numa", cases);
}
