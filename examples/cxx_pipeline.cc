/* cxx_pipeline.cc - the pipeline of examples/pipeline.c with shoal's C++ interface:
 * per batch, gen -> square -> sum as tasks that pass refs, then one task over every batch's
 * sum. Lambdas capture what they need; arrays travel as objects (shoal::bytes views,
 * zero-copy), results are filled in place. Usage: cxx_pipeline [BATCHES [N]]. */
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <shoal.hpp>

int main(int argc, char **argv)
{
    long batches = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 16;
    long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 4096;
    if (batches < 1 || batches > 4096 || n < 1 || n > (1L << 20)) {
        std::fprintf(stderr, "usage: cxx_pipeline [BATCHES [N]] (1..4096 batches of 1..2^20 values)\n");
        return 2;
    }
    try {
        shoal::runtime rt;
        std::vector<shoal::ref<long>> sums;
        for (long b = 0; b < batches; b++) {
            /* gen: n values b*n .. b*n+n-1, written straight into the result */
            auto gen = shoal::submit(shoal::options{ "gen" }, [b, n](shoal::task &t) {
                long *v = static_cast<long *>(t.result_buffer(sizeof(long) * (size_t)n));
                for (long i = 0; i < n; i++)
                    v[i] = b * n + i;
            });
            /* square: reads gen's bytes in place, writes its own in place */
            auto sq = shoal::submit(shoal::options{ "square" }, [](shoal::task &t, shoal::bytes in) {
                const long *x = in.as<long>();
                size_t k = in.count<long>();
                long *y = static_cast<long *>(t.result_buffer(sizeof(long) * k));
                for (size_t i = 0; i < k; i++)
                    y[i] = x[i] * x[i];
            }, gen);
            /* sum: a typed result */
            sums.push_back(shoal::submit(shoal::options{ "sum" }, [](shoal::bytes in) {
                long s = 0;
                for (size_t i = 0; i < in.count<long>(); i++)
                    s += in.as<long>()[i];
                return s;
            }, sq));
        }
        /* total: the batch sums are REF arguments; the vector of refs is captured and each
         * is read inside the task (they are ready by then, or the worker helps meanwhile) */
        auto total = shoal::submit(shoal::options{ "total" }, [sums]() {
            long t = 0;
            for (const auto &s : sums)
                t += s.get();
            return t;
        });
        long got = total.get();
        long m = batches * n;   /* sum of i^2 for i < m */
        long want = (m - 1) * m * (2 * m - 1) / 6;
        std::printf("%ld batches x %ld values through gen -> square -> sum -> total: %ld "
                    "(expected %ld) %s\n", batches, n, got, want, got == want ? "ok" : "WRONG");
        return got == want ? 0 : 1;
    } catch (const shoal::error &e) {
        std::fprintf(stderr, "cxx_pipeline: %s\n", e.what());
        return 1;
    }
}
