/* tasks.c - shoal's side of the task benchmark (issue 3 item 11): empty-task throughput,
 * fib with every call a task, a reduction DAG over REF arguments and ping latency, through
 * the public API only. tasks_tbb and tasks_omp run the same workloads; run.sh merges them
 * and reports every shoal figure against oneTBB's. Shoal alone: the latency of a task
 * submitted while every worker waits inside a task for an object nobody seals yet, against
 * the same ping with the workers idle.
 */
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include "shoal.h"
#include "bench.h"

#define VARIANT "shoal"
#define BASELINE "oneTBB"

static char errbuf[512];

/* Record why a workload failed; returns 0 (the figure) so callers can return it. */
static double fail_with(const char *what, int rc)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s: %s", what, shoal_strerror(rc), shoal_last_error());
    return 0;
}

static int empty_fn(shoal_task *t)
{
    (void)t;
    return 0;
}

/* Fail the running task with msg; the non-zero return marks it failed too. */
static int task_failed(shoal_task *t, const char *msg)
{
    shoal_task_fail(t, msg);
    return 1;
}

static int return_u64(shoal_task *t, uint64_t v)
{
    return shoal_task_return(t, &v, sizeof v) < 0 ? task_failed(t, shoal_last_error()) : 0;
}

/* Read the 8-byte value an object holds (and drop the caller's reference). */
static int take_u64(shoal_ref r, uint64_t *v)
{
    const void *d;
    size_t len;
    int rc = shoal_get(r, &d, &len);
    if (rc == 0 && len != sizeof *v)
        rc = SHOAL_EPROTO;
    if (rc == 0)
        memcpy(v, d, sizeof *v);
    shoal_release(r);
    return rc;
}

static int arg_u64(shoal_task *t, size_t i, uint64_t *v)
{
    const void *d;
    size_t len;
    int rc = shoal_task_arg(t, i, &d, &len);
    if (rc == 0 && len != sizeof *v)
        rc = SHOAL_EPROTO;
    if (rc == 0)
        memcpy(v, d, sizeof *v);
    return rc;
}

/* fib(n): submits fib(n-1) and fib(n-2) as tasks and waits for both inside the task (the
 * worker runs other tasks meanwhile). */
static int fib_fn(shoal_task *t)
{
    uint64_t n = 0, x = 0, y = 0;
    shoal_ref a, b;
    if (arg_u64(t, 0, &n) < 0)
        return task_failed(t, "fib: bad argument");
    if (n < 2)
        return return_u64(t, n);
    uint64_t n1 = n - 1, n2 = n - 2;
    shoal_arg arg1 = SHOAL_VALUE(&n1, sizeof n1), arg2 = SHOAL_VALUE(&n2, sizeof n2);
    if (shoal_submit(fib_fn, &arg1, 1, NULL, &a) < 0)
        return task_failed(t, shoal_last_error());
    if (shoal_submit(fib_fn, &arg2, 1, NULL, &b) < 0) {
        task_failed(t, shoal_last_error());
        shoal_release(a);
        return 1;
    }
    int ra = take_u64(a, &x), rb = take_u64(b, &y);
    if (ra < 0 || rb < 0)
        return task_failed(t, shoal_last_error());
    return return_u64(t, x + y);
}

static int leaf_fn(shoal_task *t)
{
    uint64_t v = 0;
    if (arg_u64(t, 0, &v) < 0)
        return task_failed(t, "leaf: bad argument");
    return return_u64(t, v);
}

/* An inner node of the reduction DAG: its two REF arguments are resolved before it runs. */
static int sum_fn(shoal_task *t)
{
    uint64_t x = 0, y = 0;
    if (arg_u64(t, 0, &x) < 0 || arg_u64(t, 1, &y) < 0)
        return task_failed(t, "sum: bad argument");
    return return_u64(t, x + y);
}

/* ---- workloads: each returns its figure, or 0 with errbuf set --------------------------- */

static double run_empty(const bench_tasks_cfg *c, shoal_ref *refs)
{
    uint64_t t0 = bench_ns();
    long n = 0;
    int rc = 0;
    for (; n < c->n_empty; n++)
        if ((rc = shoal_submit(empty_fn, NULL, 0, NULL, &refs[n])) < 0)
            break;
    if (rc < 0)
        fail_with("shoal_submit", rc);
    for (long i = 0; i < n; i++) {
        const void *d;
        size_t len;
        int g = shoal_get(refs[i], &d, &len);
        if (g < 0 && rc == 0)
            rc = g, fail_with("shoal_get of an empty task's result", g);
        shoal_release(refs[i]);
    }
    return rc < 0 ? 0 : (double)n / ((double)(bench_ns() - t0) / 1e3);
}

static double run_fib(const bench_tasks_cfg *c)
{
    uint64_t t0 = bench_ns(), n = (uint64_t)c->fib_n, v = 0;
    shoal_arg arg = SHOAL_VALUE(&n, sizeof n);
    shoal_ref r;
    int rc = shoal_submit(fib_fn, &arg, 1, NULL, &r);
    if (rc < 0)
        return fail_with("shoal_submit", rc);
    if ((rc = take_u64(r, &v)) < 0)
        return fail_with("fib result", rc);
    double us = (double)(bench_ns() - t0) / 1e3;
    uint64_t f0 = 0, f1 = 1;
    for (int i = 0; i < c->fib_n; i++) {
        uint64_t f2 = f0 + f1;
        f0 = f1;
        f1 = f2;
    }
    if (v != f0) {
        snprintf(errbuf, sizeof errbuf, "fib(%d) gave %llu, not %llu", c->fib_n,
                 (unsigned long long)v, (unsigned long long)f0);
        return 0;
    }
    return bench_fib_calls(c->fib_n) / us;
}

/* Leaves first, then each level of pairwise sums, all submitted from this thread; every
 * ref is released right after the tasks that use it are submitted. */
static double run_dag(const bench_tasks_cfg *c, shoal_ref *level)
{
    uint64_t t0 = bench_ns(), v = 0;
    long n = c->dag_leaves;
    int rc = 0;
    for (long i = 0; i < n; i++) {
        uint64_t x = (uint64_t)i;
        shoal_arg a = SHOAL_VALUE(&x, sizeof x);
        if ((rc = shoal_submit(leaf_fn, &a, 1, NULL, &level[i])) < 0) {
            while (i-- > 0)
                shoal_release(level[i]);
            return fail_with("shoal_submit (leaf)", rc);
        }
    }
    while (n > 1) {
        long m = 0;
        for (long i = 0; i + 1 < n; i += 2) {
            shoal_arg a[2] = { SHOAL_REF(level[i]), SHOAL_REF(level[i + 1]) };
            shoal_ref out = SHOAL_REF_NULL;
            if (rc == 0 && (rc = shoal_submit(sum_fn, a, 2, NULL, &out)) < 0)
                fail_with("shoal_submit (sum)", rc);
            shoal_release(level[i]);
            shoal_release(level[i + 1]);
            if (rc == 0)
                level[m++] = out;
        }
        if (n % 2)
            level[m++] = level[n - 1];
        if (rc < 0) {
            for (long i = 0; i < m; i++)
                shoal_release(level[i]);
            return 0;
        }
        n = m;
    }
    if ((rc = take_u64(level[0], &v)) < 0)
        return fail_with("DAG result", rc);
    if (v != (uint64_t)c->dag_leaves * (uint64_t)(c->dag_leaves - 1) / 2) {
        snprintf(errbuf, sizeof errbuf, "DAG result %llu is wrong", (unsigned long long)v);
        return 0;
    }
    return (double)(2 * c->dag_leaves - 1) / ((double)(bench_ns() - t0) / 1e3);
}

/* One ping's latency (ns): submit an empty task and get its result; 0 with errbuf set. */
static double one_ping(void)
{
    uint64_t p0 = bench_ns();
    shoal_ref r;
    const void *d;
    size_t len;
    int rc = shoal_submit(empty_fn, NULL, 0, NULL, &r);
    if (rc < 0)
        return fail_with("shoal_submit", rc);
    rc = shoal_get(r, &d, &len);
    shoal_release(r);
    if (rc < 0)
        return fail_with("shoal_get", rc);
    return (double)(bench_ns() - p0);
}

static double run_ping(const bench_tasks_cfg *c, double *buf)
{
    for (int i = 0; i < c->pings; i++)
        if ((buf[i] = one_ping()) == 0)
            return 0;
    return bench_stats(buf, c->pings).median;
}

/* ---- a task queued while every worker waits inside a task ------------------------------- */

static _Atomic unsigned arrived;
static unsigned want_arrived;

/* Holds its worker: waits until every worker runs one of these (so that no worker nests
 * them all while helping), then waits for the unsealed object it was given. */
static int waiter_fn(shoal_task *t)
{
    shoal_ref x;
    const void *d;
    size_t len;
    if (shoal_task_arg_ref(t, 0, &x) < 0)
        return task_failed(t, shoal_last_error());
    atomic_fetch_add(&arrived, 1);
    uint64_t t0 = bench_ns();
    while (atomic_load(&arrived) < want_arrived && bench_ns() - t0 < 200000000u)
        sched_yield();
    return shoal_get(x, &d, &len) < 0 ? task_failed(t, shoal_last_error()) : 0;
}

static void sleep_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* n ping latencies with the workers idle (idle[]) and while all of them wait (busy[]);
 * the waiters have napped ~1.5 ms when each ping is sent. false on failure. */
static bool run_waiting(const bench_tasks_cfg *c, int n, double *idle, double *busy)
{
    shoal_ref w[64];
    unsigned nw = c->workers < 64 ? c->workers : 64;
    for (int i = 0; i < n; i++) {
        sleep_us(1500);
        if ((idle[i] = one_ping()) == 0)
            return false;
        void *buf;
        shoal_ref x;
        int rc = shoal_create(8, &buf, &x);
        if (rc < 0) {
            fail_with("shoal_create", rc);
            return false;
        }
        atomic_store(&arrived, 0);
        want_arrived = nw;
        shoal_arg a = SHOAL_REF_PASS(x);
        unsigned k = 0;
        while (k < nw && (rc = shoal_submit(waiter_fn, &a, 1, NULL, &w[k])) == 0)
            k++;
        if (rc < 0)
            fail_with("shoal_submit (waiter)", rc);
        uint64_t t0 = bench_ns();
        while (rc == 0 && atomic_load(&arrived) < nw && bench_ns() - t0 < 200000000u)
            sleep_us(50);
        if (rc == 0 && atomic_load(&arrived) < nw)
            rc = -1, snprintf(errbuf, sizeof errbuf, "only %u of %u workers took a waiter",
                              atomic_load(&arrived), nw);
        if (rc == 0) {
            sleep_us(1500);
            busy[i] = one_ping();
            rc = busy[i] == 0 ? -1 : 0;
        }
        int sr = shoal_seal(x);
        if (sr < 0 && rc == 0)
            rc = sr, fail_with("shoal_seal", sr);
        for (unsigned j = 0; j < k; j++) {
            const void *d;
            size_t len;
            shoal_get(w[j], &d, &len);
            shoal_release(w[j]);
        }
        shoal_release(x);
        if (rc < 0)
            return false;
    }
    return true;
}

static void bench_waiting(const bench_tasks_cfg *c, int reps)
{
    const char *name = "ping, workers waiting";
    double vi[BENCH_MAX_REPS], vb[BENCH_MAX_REPS], idle[40], busy[40];
    int n = bench_g.quick ? 10 : 40, r = 0;
    bench_progress("%s: %d repetitions ...", name, reps);
    for (; r < reps && !bench_over_budget(); r++) {
        if (!run_waiting(c, n, idle, busy))
            break;
        vi[r] = bench_stats(idle, n).median;
        vb[r] = bench_stats(busy, n).median;
    }
    if (r < reps) {
        const char *why = errbuf[0] ? errbuf : "skipped: the program used its time budget";
        bench_emit_error(name, "workers idle", "ns", NULL, why);
        bench_emit_error(name, "all waiting in tasks", "ns", "workers idle", why);
        return;
    }
    bench_stat si = bench_stats(vi, r), sb = bench_stats(vb, r);
    bench_emit(name, "workers idle", "ns", si, NULL, NAN);
    bench_emit(name, "all waiting in tasks", "ns", sb, "workers idle", sb.median / si.median);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "tasks");
    bench_tasks_cfg c = bench_tasks_config();
    const char *names[4] = { c.empty_name, c.fib_name, c.dag_name, c.ping_name };
    const char *units[4] = { "Mtasks/s", "Mtasks/s", "Mtasks/s", "ns" };
    size_t nrefs = (size_t)(c.n_empty > c.dag_leaves ? c.n_empty : c.dag_leaves);
    shoal_ref *refs = malloc(nrefs * sizeof *refs);
    double *ping = malloc((size_t)c.pings * sizeof *ping);
    int reps = bench_reps(), failures = 0;
    shoal_config cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.workers = c.workers;
    cfg.store_bytes = (size_t)256 << 20;
    cfg.max_objects = (size_t)4 << 20;
    if (!refs || !ping)
        return 1;
    int rc = shoal_init(&cfg);
    if (rc < 0) {
        fail_with("shoal_init", rc);
        for (int w = 0; w < 4; w++)
            bench_emit_error(names[w], VARIANT, units[w], BASELINE, errbuf);
        return 1;
    }
    /* One ping first: a scheduler that cannot run tasks fails here, once, with its reason. */
    c.pings = 1;
    if (run_ping(&c, ping) == 0) {
        bench_progress("shoal tasks do not run yet (%s): no shoal task figures", errbuf);
        for (int w = 0; w < 4; w++)
            bench_emit_error(names[w], VARIANT, units[w], BASELINE, errbuf);
        shoal_shutdown();
        return 1;
    }
    c = bench_tasks_config();
    for (int w = 0; w < 4; w++) {
        double v[BENCH_MAX_REPS];
        int n = 0;
        if (bench_over_budget()) {
            bench_emit_error(names[w], VARIANT, units[w], BASELINE,
                             "skipped: the program used its time budget");
            failures++;
            continue;
        }
        errbuf[0] = 0;
        bench_progress("%s, %s: %d repetitions ...", names[w], VARIANT, reps);
        for (int r = 0; r < reps; r++) {
            double x = w == 0 ? run_empty(&c, refs) : w == 1 ? run_fib(&c)
                     : w == 2 ? run_dag(&c, refs) : run_ping(&c, ping);
            if (x == 0)
                break;
            v[n++] = x;
        }
        if (n < reps) {
            bench_emit_error(names[w], VARIANT, units[w], BASELINE, errbuf);
            failures++;
        } else {
            bench_emit(names[w], VARIANT, units[w], bench_stats(v, n), BASELINE, NAN);
        }
    }
    errbuf[0] = 0;
    bench_waiting(&c, reps);
    shoal_shutdown();
    free(refs);
    free(ping);
    return failures ? 1 : 0;
}
