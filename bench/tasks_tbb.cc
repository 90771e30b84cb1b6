/* tasks_tbb.cc - the oneTBB peer of bench/tasks: the same four task workloads with
 * tbb::task_group, in a task_arena of BENCH_WORKERS (default 2) threads, each pinned to a
 * core on entry. Its "oneTBB" records are the baseline every task figure is compared with.
 */
#include <atomic>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <vector>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <tbb/task_scheduler_observer.h>

#include "bench.h"
#include "tbb_pin.h"

static const char *const VARIANT = "oneTBB";

static long fib(int n)
{
    if (n < 2)
        return n;
    long x = 0, y = 0;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    g.run([&] { y = fib(n - 2); });
    g.wait();
    return x + y;
}

/* The closest oneTBB shape to shoal's reduction DAG: a tree of tasks over the leaves, each
 * inner node waiting for its two children. */
static uint64_t reduce(long lo, long hi)
{
    if (hi - lo == 1)
        return (uint64_t)lo;
    long mid = lo + (hi - lo) / 2;
    uint64_t a = 0, b = 0;
    tbb::task_group g;
    g.run([&] { a = reduce(lo, mid); });
    g.run([&] { b = reduce(mid, hi); });
    g.wait();
    return a + b;
}

static double per_us(double n, uint64_t t0) { return n / ((double)(bench_ns() - t0) / 1e3); }

/* One repetition of workload w (Mtasks/s, or ns for the pings). */
static double run_once(tbb::task_arena &arena, const bench_tasks_cfg &c, int w,
                       std::vector<double> &ping)
{
    double out = 0;
    if (w == 4) {
        /* ping answered by another thread: the caller stays outside the arena and spins
         * on a flag that the task sets (release: pairs with the acquire in the loop). */
        for (int i = 0; i < c.pings; i++) {
            std::atomic<int> done(0);
            uint64_t p0 = bench_ns();
            arena.enqueue([&] { done.store(1, std::memory_order_release); });
            while (!done.load(std::memory_order_acquire))
                __builtin_ia32_pause();
            ping[(size_t)i] = (double)(bench_ns() - p0);
        }
        return bench_stats(ping.data(), c.pings).median;
    }
    arena.execute([&] {
        uint64_t t0 = bench_ns();
        if (w == 0) {
            tbb::task_group g;
            for (long i = 0; i < c.n_empty; i++)
                g.run([] { __asm__ __volatile__(""); });
            g.wait();
            out = per_us((double)c.n_empty, t0);
        } else if (w == 1) {
            long r = fib(c.fib_n);
            out = per_us(bench_fib_calls(c.fib_n), t0);
            BENCH_KEEP(r);
        } else if (w == 2) {
            uint64_t r = reduce(0, c.dag_leaves);
            out = per_us((double)(2 * c.dag_leaves - 1), t0);
            if (r != (uint64_t)c.dag_leaves * (uint64_t)(c.dag_leaves - 1) / 2)
                out = NAN;
        } else {
            /* ping where the waiting caller may run the task itself */
            for (int i = 0; i < c.pings; i++) {
                uint64_t p0 = bench_ns();
                tbb::task_group g;
                g.run([] { __asm__ __volatile__(""); });
                g.wait();
                ping[(size_t)i] = (double)(bench_ns() - p0);
            }
            out = bench_stats(ping.data(), c.pings).median;
        }
    });
    return out;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "tasks_tbb");
    bench_tasks_cfg c = bench_tasks_config();
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, c.workers);
    tbb::task_arena arena((int)c.workers);
    pin_observer pin(arena);
    bench_tasks_cfg warm = bench_tasks_warmup(c);
    std::vector<double> ping((size_t)c.pings);
    const char *names[5] = { c.empty_name, c.fib_name, c.dag_name, c.ping_name, c.ping_name };
    const char *units[5] = { "Mtasks/s", "Mtasks/s", "Mtasks/s", "ns", "ns" };
    const char *variants[5] = { VARIANT, VARIANT, VARIANT, "oneTBB caller runs", VARIANT };
    const char *only[5] = { "empty", "fib", "dag", "ping", "ping" };
    int reps = bench_reps();

    arena.initialize();
    run_once(arena, c, 3, ping);   /* start and pin the threads outside the timings */
    for (int w = 0; w < 5; w++) {
        double v[BENCH_MAX_REPS];
        int n = 0;
        if (!bench_only(only[w]))
            continue;
        if (bench_over_budget()) {
            bench_emit_error(names[w], variants[w], units[w], VARIANT,
                             "skipped: the program used its time budget");
            continue;
        }
        bench_progress("%s, %s: %d repetitions ...", names[w], variants[w], reps);
        if (bench_round())   /* a fresh process: one untimed repetition warms it first */
            run_once(arena, warm, w, ping);
        for (int r = 0; r < reps; r++)
            v[n++] = run_once(arena, c, w, ping);
        bench_stat s = bench_stats(v, n);
        if (std::isnan(s.median) || std::isnan(s.max))
            bench_emit_error(names[w], variants[w], units[w], VARIANT, "wrong result");
        else
            bench_emit(names[w], variants[w], units[w], v, n, VARIANT);
    }
    return 0;
}
