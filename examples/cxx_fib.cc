/* cxx_fib.cc - recursive Fibonacci with shoal's C++ interface: each call above a cutoff
 * submits its two halves as tasks and waits for them (a worker that waits runs other tasks
 * meanwhile, so this never deadlocks, even with one worker). Usage: cxx_fib [N] (default 30). */
#include <cstdio>
#include <cstdlib>

#include <shoal.hpp>

static long fib_serial(long n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

static long fib(long n)
{
    if (n < 18)
        return fib_serial(n);
    shoal::ref<long> a = shoal::submit(fib, n - 1);   /* typed: ref<long> */
    shoal::ref<long> b = shoal::submit(fib, n - 2);
    return a.get() + b.get();                          /* const long& into the store */
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 30;
    if (n < 0 || n > 60) {
        std::fprintf(stderr, "usage: cxx_fib [N], N from 0 to 60\n");
        return 2;
    }
    try {
        shoal::runtime rt;
        shoal::ref<long> r = shoal::submit(fib, n);
        long got = r.get(), want = fib_serial(n > 40 ? 0 : n);
        std::printf("fib(%ld) = %ld%s\n", n, got, n > 40 ? "" : got == want ? " ok" : " WRONG");
        return n > 40 || got == want ? 0 : 1;
    } catch (const shoal::error &e) {
        std::fprintf(stderr, "cxx_fib: %s\n", e.what());
        return 1;
    }
}
