/* cxx.cc - what the C++ interface (include/shoal.hpp) costs over the C calls it wraps, side
 * by side in one process: put + get + release of a 64-byte object, and submit + get of an
 * empty task (the wrapper moves its lambda to the heap and frees it when the task is over).
 * Each figure is ns per operation; the C calls are the baseline of their group. */
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench.h"
#include <shoal.hpp>

namespace {

constexpr int kPuts = 200000;
constexpr int kTasks = 50000;

struct blob { unsigned char b[64]; };

double c_put_get(int n)
{
    blob x{};
    uint64_t t0 = bench_ns();
    for (int i = 0; i < n; i++) {
        x.b[0] = (unsigned char)i;
        shoal_ref r;
        const void *d;
        size_t len;
        if (shoal_put(&x, sizeof x, &r) || shoal_get(r, &d, &len) || shoal_release(r))
            return NAN;
        BENCH_KEEP(d);
    }
    return (double)(bench_ns() - t0) / n;
}

double cxx_put_get(int n)
{
    blob x{};
    uint64_t t0 = bench_ns();
    try {
        for (int i = 0; i < n; i++) {
            x.b[0] = (unsigned char)i;
            shoal::ref<blob> r = shoal::put(x);
            const blob &v = r.get();
            BENCH_KEEP(&v);
        }
    } catch (const shoal::error &) {
        return NAN;
    }
    return (double)(bench_ns() - t0) / n;
}

int empty_task(shoal_task *t) { (void)t; return 0; }

double c_submit_get(int n)
{
    uint64_t t0 = bench_ns();
    for (int i = 0; i < n; i++) {
        shoal_ref r;
        const void *d;
        size_t len;
        if (shoal_submit(empty_task, nullptr, 0, nullptr, &r) || shoal_get(r, &d, &len) ||
            shoal_release(r))
            return NAN;
    }
    return (double)(bench_ns() - t0) / n;
}

double cxx_submit_get(int n)
{
    uint64_t t0 = bench_ns();
    try {
        for (int i = 0; i < n; i++) {
            auto r = shoal::submit([] {});
            BENCH_KEEP(r.get().data());
        }
    } catch (const shoal::error &) {
        return NAN;
    }
    return (double)(bench_ns() - t0) / n;
}

void figure(const char *bench, double (*c)(int), double (*cxx)(int), int n)
{
    double vc[BENCH_MAX_REPS] = {0}, vx[BENCH_MAX_REPS] = {0};
    int reps = bench_reps(), k = 0;
    /* Interleaved, so that a noisy stretch of the machine hits both alike. */
    for (; k < reps && !bench_over_budget(); k++) {
        vc[k] = c(n);
        vx[k] = cxx(n);
    }
    bench_stat sc = bench_stats(vc, k), sx = bench_stats(vx, k);
    if (k == 0 || std::isnan(sc.max) || std::isnan(sx.max)) {
        bench_emit_error(bench, "C calls", "ns", "C calls", "a call failed or no time left");
        bench_emit_error(bench, "shoal.hpp", "ns", "C calls", "a call failed or no time left");
        return;
    }
    /* Paired: repetition k of each was measured next to the other's. */
    bench_emit(bench, "C calls", "ns", vc, k, "C calls");
    bench_emit(bench, "shoal.hpp", "ns", vx, k, "C calls");
}

} // namespace

int main(int argc, char **argv)
{
    bench_init(argc, argv, "cxx");
    shoal_config cfg{};
    cfg.store_bytes = 256u << 20;
    const char *w = getenv("BENCH_WORKERS");
    cfg.workers = w ? (unsigned)atoi(w) : 2;
    if (shoal_init(&cfg) != 0) {
        bench_emit_error("cxx put+get+release 64 B", "C calls", "ns", "C calls",
                         shoal_last_error());
        return 1;
    }
    int q = bench_quick() ? 10 : 1;
    c_put_get(1000);              /* warm the thread's caches */
    figure("cxx put+get+release 64 B", c_put_get, cxx_put_get, kPuts / q);
    c_submit_get(1000);
    figure("cxx submit+get empty task", c_submit_get, cxx_submit_get, kTasks / q);
    return shoal_shutdown() != 0;
}
