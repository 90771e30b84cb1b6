/* tasks.c - shoal's side of the task benchmark (issue 3 item 11): empty-task throughput,
 * fib with every call a task, a reduction DAG over REF arguments and ping latency, through
 * the public API only. tasks_tbb and tasks_omp run the same workloads; run.sh merges them
 * and reports every shoal figure against oneTBB's (run.sh runs the three in alternating
 * processes, round after round). Shoal alone, each against a baseline in this process: a
 * ping to parked workers against a bare futex wake-and-answer between two threads, and
 * the same ping while every worker waits inside a task; the time from completing an object
 * to waking the thread that waits on it, among W = 2, 8 and 32 threads each waiting on its
 * own object (what targeted wake-ups buy); the CPU an idle runtime uses.
 * `tasks roundtrips N` only does N submit+get+release round trips (run.sh counts their
 * system calls under strace).
 */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "shoal.h"
#include "bench.h"

#define VARIANT "shoal"
#define BASELINE "oneTBB"
#define VARIANT_DAG_BATCH "shoal, batch submit"   /* bench/report.c judges this row */
#define VARIANT_DAG_ONE "shoal, one by one"
#define NW 5   /* workloads in main */

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

/* Read the 8-byte value an object holds and drop the caller's reference: shoal_take, the
 * get that consumes the reference (what a user reading a child's result once calls). */
static int take_u64(shoal_ref r, uint64_t *v)
{
    uint64_t x = 0;
    size_t len;
    int rc = shoal_take(r, &x, sizeof x, &len);
    if (rc == 0 && len != sizeof x)
        rc = SHOAL_EPROTO;
    if (rc == 0)
        *v = x;
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

static double dag_check(const bench_tasks_cfg *c, shoal_ref root, uint64_t t0)
{
    uint64_t v = 0;
    int rc = take_u64(root, &v);
    if (rc < 0)
        return fail_with("DAG result", rc);
    if (v != (uint64_t)c->dag_leaves * (uint64_t)(c->dag_leaves - 1) / 2) {
        snprintf(errbuf, sizeof errbuf, "DAG result %llu is wrong", (unsigned long long)v);
        return 0;
    }
    return (double)(2 * c->dag_leaves - 1) / ((double)(bench_ns() - t0) / 1e3);
}

/* Leaves first, then each level of pairwise sums, all submitted from this thread one
 * shoal_submit at a time; every ref is handed to the task that uses it (SHOAL_REF_MOVE:
 * what a driver that would release it right after submitting means, without a retain and
 * a release per argument). */
static double run_dag_one(const bench_tasks_cfg *c, shoal_ref *level)
{
    uint64_t t0 = bench_ns();
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
            shoal_arg a[2] = { SHOAL_REF_MOVE(level[i]), SHOAL_REF_MOVE(level[i + 1]) };
            shoal_ref out = SHOAL_REF_NULL;
            if (rc == 0 && (rc = shoal_submit(sum_fn, a, 2, NULL, &out)) < 0)
                fail_with("shoal_submit (sum)", rc);
            if (rc == 0) {
                level[m++] = out;   /* the task holds level[i] and level[i + 1] now */
            } else {                /* a failed submit left them ours */
                shoal_release(level[i]);
                shoal_release(level[i + 1]);
            }
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
    return dag_check(c, level[0], t0);
}


/* The same DAG as a Ray driver submits a list of tasks: the leaves in one
 * shoal_submit_batch, then each level of pairwise sums in one more (args[2i], args[2i+1]
 * move level[2i] and level[2i+1] into sum i). vals and args have room for c->dag_leaves
 * entries. */
static double run_dag(const bench_tasks_cfg *c, shoal_ref *level, uint64_t *vals,
                      shoal_arg *args)
{
    uint64_t t0 = bench_ns();
    long n = c->dag_leaves;
    for (long i = 0; i < n; i++) {
        vals[i] = (uint64_t)i;
        args[i] = SHOAL_VALUE(&vals[i], sizeof vals[i]);
    }
    int rc = shoal_submit_batch((size_t)n, leaf_fn, args, 1, NULL, level);
    if (rc < 0)
        return fail_with("shoal_submit_batch (leaves)", rc);
    while (n > 1) {
        long m = n / 2;
        for (long i = 0; i < m; i++) {
            args[2 * i] = SHOAL_REF_MOVE(level[2 * i]);
            args[2 * i + 1] = SHOAL_REF_MOVE(level[2 * i + 1]);
        }
        shoal_ref odd = level[n - 1];
        /* out may be level: the call reads only args, and writes out only on success */
        if ((rc = shoal_submit_batch((size_t)m, sum_fn, args, 2, NULL, level)) < 0) {
            fail_with("shoal_submit_batch (sums)", rc);
            for (long i = 0; i < n; i++)   /* a failed batch left every ref ours */
                shoal_release(level[i]);
            return 0;
        }
        if (n % 2)
            level[m++] = odd;
        n = m;
    }
    return dag_check(c, level[0], t0);
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

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
    nanosleep(&ts, NULL);
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


/* ---- a bare futex wake-and-answer between two threads: what a ping to parked workers
 *      costs at the least (the kernel's wake-up and the answer's cache line) ---------------- */

static _Atomic uint32_t fx_go, fx_ans;
static _Atomic int fx_stop;

static long futex(_Atomic uint32_t *w, int op, uint32_t v)
{
    return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* Sleeps on fx_go until it moves, then answers with its value in fx_ans. */
static void *fx_main(void *arg)
{
    uint32_t seen = 0, g;
    (void)arg;
    for (;;) {
        /* acquire: pairs with the release store of fx_go in futex_ping/futex_stop */
        while ((g = atomic_load_explicit(&fx_go, memory_order_acquire)) == seen)
            futex(&fx_go, FUTEX_WAIT_PRIVATE, seen);
        seen = g;
        if (atomic_load_explicit(&fx_stop, memory_order_relaxed))
            return NULL;
        /* release: pairs with the acquire spin in futex_ping */
        atomic_store_explicit(&fx_ans, g, memory_order_release);
    }
}

/* One wake-and-answer (ns): move fx_go, wake the sleeper, spin until it answers. */
static double futex_ping(void)
{
    uint32_t seq = atomic_load_explicit(&fx_go, memory_order_relaxed) + 1;
    uint64_t t0 = bench_ns(), spins = 0;
    /* release: pairs with the acquire load in fx_main */
    atomic_store_explicit(&fx_go, seq, memory_order_release);
    futex(&fx_go, FUTEX_WAKE_PRIVATE, 1);
    /* acquire: pairs with the release store of fx_ans in fx_main */
    while (atomic_load_explicit(&fx_ans, memory_order_acquire) != seq)
        if (++spins % 4096 == 0 && bench_ns() - t0 > 1000000000u)
            return 0;   /* a lost answer: report a failure, not a hang */
    return (double)(bench_ns() - t0);
}

static void futex_stop(pthread_t th)
{
    atomic_store_explicit(&fx_stop, 1, memory_order_relaxed);
    /* release: pairs with the acquire load in fx_main (which then sees fx_stop) */
    atomic_fetch_add_explicit(&fx_go, 1, memory_order_release);
    futex(&fx_go, FUTEX_WAKE_PRIVATE, 1);
    pthread_join(th, NULL);
}

/* n pings to parked workers (idle[]), n futex wake-and-answers to a parked thread (fx[]),
 * alternating, each after ~1.5 ms of sleep, and n pings while all workers wait inside
 * tasks (busy[]). false on failure (errbuf says why). */
static bool run_waiting(const bench_tasks_cfg *c, int n, double *idle, double *fx, double *busy)
{
    shoal_ref w[64];
    unsigned nw = c->workers < 64 ? c->workers : 64;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            sleep_us(1500);
            if ((i + k) % 2 == 0 && (idle[i] = one_ping()) == 0)
                return false;
            if ((i + k) % 2 == 1 && (fx[i] = futex_ping()) == 0) {
                snprintf(errbuf, sizeof errbuf, "the futex wake-and-answer thread never answered");
                return false;
            }
        }
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
            shoal_get_timeout(w[j], 10000000000, &d, &len);
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
    const char *name = "ping to parked workers", *fxn = "futex wake+answer";
    const char *idn = "shoal, workers parked", *bsn = "shoal, all waiting in tasks";
    double vi[BENCH_MAX_REPS], vf[BENCH_MAX_REPS], vb[BENCH_MAX_REPS], idle[40], fx[40], busy[40];
    int n = bench_g.quick ? 10 : 40, r = 0;
    pthread_t th;
    bench_progress("%s: %d repetitions ...", name, reps);
    if (pthread_create(&th, NULL, fx_main, NULL) != 0) {
        bench_emit_error(name, fxn, "ns", fxn, "pthread_create failed");
        return;
    }
    if (bench_round() && !run_waiting(c, 4, idle, fx, busy))   /* warm-up, untimed */
        r = -1;
    for (; r >= 0 && r < reps && !bench_over_budget(); r++) {
        if (!run_waiting(c, n, idle, fx, busy))
            break;
        vi[r] = bench_stats(idle, n).median;
        vf[r] = bench_stats(fx, n).median;
        vb[r] = bench_stats(busy, n).median;
    }
    futex_stop(th);
    if (r < reps) {
        const char *why = errbuf[0] ? errbuf : "skipped: the program used its time budget";
        bench_emit_error(name, fxn, "ns", fxn, why);
        bench_emit_error(name, idn, "ns", fxn, why);
        bench_emit_error(name, bsn, "ns", idn, why);
        return;
    }
    bench_emit(name, fxn, "ns", vf, r, fxn);
    bench_emit(name, idn, "ns", vi, r, fxn);
    bench_emit(name, bsn, "ns", vb, r, idn);
}

/* ---- completion to wake-up among W waiters, each on its own object ---------------------- */

struct waker {
    pthread_t th;
    shoal_ref obj;
    _Atomic int *entered;
    uint64_t woke;
    int rc;
};

static void *wake_waiter(void *arg)
{
    struct waker *k = arg;
    const void *d;
    size_t len;
    atomic_fetch_add(k->entered, 1);
    k->rc = shoal_get_timeout(k->obj, 10000000000, &d, &len);   /* 10 s: a hang fails */
    k->woke = bench_ns();
    return NULL;
}

/* trials times: W threads each block in a get of its own unsealed object; once all sleep,
 * one object is sealed: the time until its waiter runs again (us). Median over the trials,
 * 0 with errbuf set on failure. */
static double wake_one_of(unsigned W, int trials)
{
    static struct waker k[32];
    double lat[64];
    _Atomic int entered;
    int ok = 1;
    for (int t = 0; t < trials && ok; t++) {
        unsigned made = 0, j = (unsigned)t % W;
        atomic_store(&entered, 0);
        for (; made < W; made++) {
            void *buf;
            int rc = shoal_create(8, &buf, &k[made].obj);
            if (rc < 0) {
                fail_with("shoal_create", rc);
                break;
            }
            k[made].entered = &entered;
            k[made].rc = 0;
            if (pthread_create(&k[made].th, NULL, wake_waiter, &k[made]) != 0) {
                shoal_seal(k[made].obj);
                shoal_release(k[made].obj);
                snprintf(errbuf, sizeof errbuf, "pthread_create failed");
                break;
            }
        }
        ok = made == W;
        uint64_t t0 = bench_ns();
        while (ok && (unsigned)atomic_load(&entered) < W && bench_ns() - t0 < 2000000000u)
            sleep_us(100);
        sleep_us(3000);   /* past any spinning: every waiter sleeps in the kernel */
        t0 = bench_ns();
        int joined = ok;   /* waiter j, once sealed and joined here */
        if (ok) {
            shoal_seal(k[j].obj);
            pthread_join(k[j].th, NULL);
            lat[t] = (double)(k[j].woke - t0) / 1e3;
            if (k[j].rc < 0)
                ok = 0, fail_with("shoal_get_timeout of a sealed object", k[j].rc);
        }
        for (unsigned i = 0; i < made; i++) {
            if (joined && i == j)
                continue;
            shoal_seal(k[i].obj);
            pthread_join(k[i].th, NULL);
        }
        for (unsigned i = 0; i < made; i++)
            shoal_release(k[i].obj);
    }
    return ok ? bench_stats(lat, trials).median : 0;
}

static void bench_wakeups(int reps)
{
    static const unsigned ws[3] = { 2, 8, 32 };
    static const char *const names[3] = { "W=2", "W=8", "W=32" };
    const char *name = "wake 1 of W waiters";
    double v[3][BENCH_MAX_REPS];
    int trials = bench_g.quick ? 5 : 15, r = 0, ok = 1;
    bench_progress("%s: %d repetitions of %d trials ...", name, reps, trials);
    if (bench_round())
        for (int w = 0; w < 3 && ok; w++)
            ok = wake_one_of(ws[w], 2) > 0;
    for (; ok && r < reps && !bench_over_budget(); r++)
        for (int w = 0; w < 3 && ok; w++)
            ok = (v[w][r] = wake_one_of(ws[w], trials)) > 0;
    for (int w = 0; w < 3; w++) {
        if (!ok || r < reps)
            bench_emit_error(name, names[w], "us", names[0],
                             errbuf[0] ? errbuf : "skipped: the program used its time budget");
        else
            bench_emit(name, names[w], "us", v[w], r, names[0]);
    }
}

/* ---- what an idle runtime costs --------------------------------------------------------- */

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);   /* every thread of the process */
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6
         + (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* The CPU the whole process uses while this thread sleeps and nothing is submitted, in % of
 * one core, after the workers had 100 ms to settle. */
static void bench_idle(int reps)
{
    double v[BENCH_MAX_REPS];
    long us = bench_g.quick ? 200000 : 400000;
    int r = 0;
    for (; r < reps && !bench_over_budget(); r++) {
        sleep_us(100000);
        double c0 = cpu_s();
        uint64_t t0 = bench_ns();
        for (long left = us; left > 0; left -= 100000)
            sleep_us(left < 100000 ? left : 100000);
        v[r] = 100.0 * (cpu_s() - c0) / ((double)(bench_ns() - t0) / 1e9);
    }
    if (r < reps)
        bench_emit_error("idle runtime", "shoal, workers idle", "% core", NULL,
                         "skipped: the program used its time budget");
    else
        bench_emit("idle runtime", "shoal, workers idle", "% core", v, r, NULL);
}

/* `tasks roundtrips N`: N submit+get+release round trips of an empty task from this thread
 * (bench/run.sh counts the system calls of N = 0 and N = 100000 under strace). */
static int roundtrips(long n, unsigned workers)
{
    shoal_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    if (shoal_init(&cfg) < 0) {
        fprintf(stderr, "tasks roundtrips: %s\n", shoal_last_error());
        return 1;
    }
    for (long i = 0; i < n; i++)
        if (one_ping() == 0) {
            fprintf(stderr, "tasks roundtrips: %s\n", errbuf);
            shoal_shutdown();
            return 1;
        }
    return shoal_shutdown() < 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "roundtrips") == 0) {
        bench_init(1, argv, "tasks");
        return roundtrips(atol(argv[2]), bench_tasks_config().workers);
    }
    bench_init(argc, argv, "tasks");
    bench_tasks_cfg c = bench_tasks_config();
    /* Two rows of the DAG: each level in one shoal_submit_batch (how a Ray driver submits
     * a list of tasks: the goal's row), and one shoal_submit per task (BENCH_ONLY=dag1). */
    const char *names[NW] = { c.empty_name, c.fib_name, c.dag_name, c.ping_name, c.dag_name };
    const char *units[NW] = { "Mtasks/s", "Mtasks/s", "Mtasks/s", "ns", "Mtasks/s" };
    const char *only[NW] = { "empty", "fib", "dag", "ping", "dag1" };
    const char *variants[NW] = { VARIANT, VARIANT, VARIANT_DAG_BATCH, VARIANT,
                                 VARIANT_DAG_ONE };
    size_t nrefs = (size_t)(c.n_empty > c.dag_leaves ? c.n_empty : c.dag_leaves);
    shoal_ref *refs = malloc(nrefs * sizeof *refs);
    double *ping = malloc((size_t)c.pings * sizeof *ping);
    uint64_t *dvals = malloc((size_t)c.dag_leaves * sizeof *dvals);
    shoal_arg *dargs = malloc((size_t)c.dag_leaves * sizeof *dargs);
    int reps = bench_reps(), failures = 0;
    shoal_config cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.workers = c.workers;
    cfg.store_bytes = (size_t)256 << 20;
    cfg.max_objects = (size_t)4 << 20;
    if (!refs || !ping || !dvals || !dargs)
        return 1;
    int rc = shoal_init(&cfg);
    if (rc < 0) {
        fail_with("shoal_init", rc);
        for (int w = 0; w < NW; w++)
            bench_emit_error(names[w], variants[w], units[w], BASELINE, errbuf);
        return 1;
    }
    /* One ping first: a scheduler that cannot run tasks fails here, once, with its reason. */
    c.pings = 1;
    if (run_ping(&c, ping) == 0) {
        bench_progress("shoal tasks do not run yet (%s): no shoal task figures", errbuf);
        for (int w = 0; w < NW; w++)
            bench_emit_error(names[w], variants[w], units[w], BASELINE, errbuf);
        shoal_shutdown();
        return 1;
    }
    c = bench_tasks_config();
    bench_tasks_cfg warm = bench_tasks_warmup(c);
    for (int w = 0; w < NW; w++) {
        double v[BENCH_MAX_REPS];
        int n = 0;
        if (!bench_only(only[w]))
            continue;
        if (bench_over_budget()) {
            bench_emit_error(names[w], variants[w], units[w], BASELINE,
                             "skipped: the program used its time budget");
            failures++;
            continue;
        }
        errbuf[0] = 0;
        bench_progress("%s, %s: %d repetitions ...", names[w], variants[w], reps);
        /* a fresh process (run.sh's rounds): one untimed repetition warms it first */
        for (int r = bench_round() ? -1 : 0; r < reps; r++) {
            const bench_tasks_cfg *k = r < 0 ? &warm : &c;
            double x = w == 0 ? run_empty(k, refs) : w == 1 ? run_fib(k)
                     : w == 2 ? run_dag(k, refs, dvals, dargs)
                     : w == 4 ? run_dag_one(k, refs) : run_ping(k, ping);
            if (x == 0)
                break;
            if (r >= 0)
                v[n++] = x;
        }
        if (n < reps) {
            bench_emit_error(names[w], variants[w], units[w], BASELINE, errbuf);
            failures++;
        } else {
            bench_emit(names[w], variants[w], units[w], v, n, BASELINE);
        }
    }
    errbuf[0] = 0;
    if (bench_only("waiting"))
        bench_waiting(&c, reps);
    errbuf[0] = 0;
    if (bench_only("wakeups"))
        bench_wakeups(reps);
    if (bench_only("idle"))
        bench_idle(reps);
    shoal_shutdown();
    free(refs);
    free(ping);
    free(dvals);
    free(dargs);
    return failures ? 1 : 0;
}
