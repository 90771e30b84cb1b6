/* tasks_omp.c - the OpenMP (gcc libgomp) peer of bench/tasks: the same four task workloads
 * with `omp task`, on the same number of threads (OMP_NUM_THREADS / OMP_PROC_BIND come from
 * bench/run.sh). Prints bench.h records with variant "OpenMP" against the oneTBB baseline.
 */
#include <omp.h>

#include "bench.h"

#define VARIANT "OpenMP"
#define BASELINE "oneTBB"

static long fib(int n)
{
    long x, y;
    if (n < 2)
        return n;
#pragma omp task shared(x)
    x = fib(n - 1);
#pragma omp task shared(y)
    y = fib(n - 2);
#pragma omp taskwait
    return x + y;
}

/* The closest OpenMP shape to shoal's reduction DAG: a tree of tasks over the leaves, each
 * inner node waiting for its two children. */
static uint64_t reduce(long lo, long hi)
{
    uint64_t a, b;
    long mid = lo + (hi - lo) / 2;
    if (hi - lo == 1)
        return (uint64_t)lo;
#pragma omp task shared(a)
    a = reduce(lo, mid);
#pragma omp task shared(b)
    b = reduce(mid, hi);
#pragma omp taskwait
    return a + b;
}

/* One repetition of workload w; returns its figure (Mtasks/s, or ns for the ping). */
static double run_once(const bench_tasks_cfg *c, int w, double *ping_buf)
{
    double out = 0;
#pragma omp parallel
#pragma omp single
    {
        uint64_t t0 = bench_ns();
        if (w == 0) {
            for (long i = 0; i < c->n_empty; i++) {
#pragma omp task
                __asm__ __volatile__("");
            }
#pragma omp taskwait
            out = (double)c->n_empty / ((double)(bench_ns() - t0) / 1e3);
        } else if (w == 1) {
            long r = fib(c->fib_n);
            out = bench_fib_calls(c->fib_n) / ((double)(bench_ns() - t0) / 1e3);
            BENCH_KEEP(r);
        } else if (w == 2) {
            uint64_t r = reduce(0, c->dag_leaves);
            out = (double)(2 * c->dag_leaves - 1) / ((double)(bench_ns() - t0) / 1e3);
            if (r != (uint64_t)c->dag_leaves * (uint64_t)(c->dag_leaves - 1) / 2)
                out = NAN;
        } else {
            for (int i = 0; i < c->pings; i++) {
                uint64_t p0 = bench_ns();
#pragma omp task
                __asm__ __volatile__("");
#pragma omp taskwait
                ping_buf[i] = (double)(bench_ns() - p0);
            }
            out = bench_stats(ping_buf, c->pings).median;
        }
    }
    return out;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "tasks_omp");
    bench_tasks_cfg c = bench_tasks_config(), warm = bench_tasks_warmup(c);
    const char *names[4] = { c.empty_name, c.fib_name, c.dag_name, c.ping_name };
    const char *units[4] = { "Mtasks/s", "Mtasks/s", "Mtasks/s", "ns" };
    const char *variants[4] = { VARIANT, VARIANT, VARIANT, VARIANT " task+taskwait" };
    double *ping_buf = malloc(sizeof(double) * (size_t)c.pings);
    int reps = bench_reps();

    omp_set_num_threads((int)c.workers);
    if (!ping_buf)
        return 1;
    run_once(&c, 3, ping_buf);   /* start the thread team outside the timings */
    for (int w = 0; w < 4; w++) {
        double v[BENCH_MAX_REPS];
        int n = 0;
        if (bench_over_budget()) {
            bench_emit_error(names[w], variants[w], units[w], BASELINE,
                             "skipped: the program used its time budget");
            continue;
        }
        bench_progress("%s, %s: %d repetitions ...", names[w], variants[w], reps);
        if (bench_round())   /* a fresh process: one untimed repetition warms it first */
            run_once(&warm, w, ping_buf);
        for (int r = 0; r < reps; r++)
            v[n++] = run_once(&c, w, ping_buf);
        bench_stat s = bench_stats(v, n);
        if (isnan(s.median) || isnan(s.max))
            bench_emit_error(names[w], variants[w], units[w], BASELINE, "wrong result");
        else
            bench_emit(names[w], variants[w], units[w], v, n, BASELINE);
    }
    free(ping_buf);
    return 0;
}
