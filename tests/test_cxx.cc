/* test_cxx.cc - the C++ interface (include/shoal.hpp), built with g++ -std=c++17: RAII refs
 * (a copy retains, destruction releases, the ID then answers SHOAL_ESTALE), typed get and
 * its size check, zero-copy views, submit of lambdas with captures and typed arguments
 * (refs, passed refs, bytes, values, a task& first), exceptions in both directions with
 * the code and message, and the callable freed however its task ends. */
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <shoal.hpp>

#include <chrono>
#include <thread>

extern "C" {
#include "lib/harness.h"
}

#define TEST_WAIT_NS (INT64_C(60) * 1000000000)

static void start(unsigned workers)
{
    (void)shoal_shutdown();
    shoal_config c = shoal_test_config();
    c.workers = workers;
    ASSERT_OK(shoal_init(&c));
}

static uint64_t live_now()
{
    shoal_info in;
    CU_ASSERT_EQUAL(shoal_info_get(&in), 0);
    return in.objects_live;
}

/* A task drops its own reference on its result just after completing it: wait (bounded)
 * for the live count to settle. */
static uint64_t live_settled(uint64_t want)
{
    uint64_t live = live_now();
    for (int i = 0; i < 5000 && live != want; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        live = live_now();
    }
    return live;
}

/* The runtime as a scope (shoal::runtime) works like init + shutdown. */
static void test_runtime_scope(void)
{
    (void)shoal_shutdown();
    {
        shoal_config c = shoal_test_config();
        shoal::runtime rt(c);
        CU_ASSERT_EQUAL(shoal::put(1).get(), 1);
        try {
            shoal::runtime again(c);   /* a second one: SHOAL_EEXIST */
            CU_FAIL("no exception");
        } catch (const shoal::error &e) {
            CU_ASSERT_EQUAL(e.code(), SHOAL_EEXIST);
        }
    }
    shoal_info in;
    CU_ASSERT_EQUAL(shoal_info_get(&in), SHOAL_ENOTINIT);   /* shut down at scope end */
    CU_ASSERT_STRING_EQUAL(shoal::version(), shoal_version());
}

static void test_raii(void)
{
    start(2);
    uint64_t base = live_now();
    shoal_ref raw;
    {
        shoal::ref<long> a = shoal::put(41L);
        raw = a.id();
        CU_ASSERT_EQUAL(a.get(), 41);
        {
            shoal::ref<long> b = a;                 /* retains */
            shoal::ref<long> c = std::move(b);      /* moves: no count change */
            CU_ASSERT_FALSE(bool(b));
            CU_ASSERT_EQUAL(c.id().id, raw.id);
            CU_ASSERT_EQUAL(live_now(), base + 1);
        }
        /* a still holds it */
        CU_ASSERT_EQUAL(a.get(), 41);
        shoal::ref<long> d;
        d = a;
        a.reset();
        CU_ASSERT_EQUAL(d.get(), 41);
    }
    /* every copy gone: freed, the ID is stale */
    CU_ASSERT_EQUAL(shoal_retain(raw), SHOAL_ESTALE);
    CU_ASSERT_EQUAL(live_settled(base), base);
    ASSERT_OK(shoal_shutdown());
}

/* transfer() empties the ref and puts its reference in flight; accept() takes it back as
 * a new ref (between threads here, as between processes); a second accept throws ESTALE. */
static void test_transfer_accept(void)
{
    start(1);
    uint64_t base = live_now();
    shoal::ref<long> a = shoal::put(7L);
    shoal_ref sent = a.transfer(INT64_C(60) * 1000000000);
    CU_ASSERT_FALSE(bool(a));
    CU_ASSERT_EQUAL(live_now(), base + 1);   /* alive in flight, nobody holds it */
    long got = 0;
    std::thread th([&] { got = shoal::ref<long>::accept(sent).get(); });
    th.join();
    CU_ASSERT_EQUAL(got, 7);
    try {
        (void)shoal::ref<long>::accept(sent);
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ESTALE);
    }
    CU_ASSERT_EQUAL(live_settled(base), base);   /* the thread's ref released it */
    ASSERT_OK(shoal_shutdown());
}

struct pt { int x, y; };

static void test_typed_get(void)
{
    start(2);
    shoal::ref<pt> p = shoal::put(pt{ 3, 4 });
    const pt &v = p.get();
    CU_ASSERT_EQUAL(v.x, 3);
    CU_ASSERT_EQUAL(v.y, 4);
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(p.id(), &d, &n));
    CU_ASSERT_PTR_EQUAL(&v, d);                       /* zero-copy */
    shoal::ref<shoal::bytes> b = shoal::put("hello", 5);
    CU_ASSERT_EQUAL(b.get().size(), 5u);
    CU_ASSERT_EQUAL(std::memcmp(b.get().data(), "hello", 5), 0);
    /* the wrong type: SHOAL_EINVAL naming both sizes */
    shoal::ref<long> wrong = shoal::ref<long>::retain(b.id());
    try {
        (void)wrong.get();
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(std::strstr(e.what(), "5 bytes"));
    }
    /* a created object, filled in place */
    shoal::ref<shoal::bytes> c = shoal::create(8, [](void *buf) { std::memset(buf, 7, 8); });
    CU_ASSERT_EQUAL(c.get().as<unsigned char>()[7], 7);
    CU_ASSERT_EQUAL(c.get().count<uint32_t>(), 2u);
    ASSERT_OK(shoal_shutdown());
}

static void test_submit(void)
{
    start(2);
    shoal::ref<long> x = shoal::put(20L);
    std::string label = "captured";
    /* a lambda with captures, a ref argument resolved to const long& */
    auto y = shoal::submit([k = 2L, label](const long &v) { return v * k + (long)label.size(); }, x);
    CU_ASSERT_EQUAL(y.get(), 48);
    /* task& first, a value, a ref; a worker, or -1: this thread ran it in its get */
    auto z = shoal::submit([](shoal::task &t, const long &v, int w) {
        return v + w + (t.worker() >= -1 ? 0 : 1000);
    }, x, 5);
    CU_ASSERT_EQUAL(z.get(), 25);
    /* bytes in (a VALUE copy), bytes out (copied into the result) */
    auto b = shoal::submit([](shoal::bytes in) { return in; }, shoal::bytes("abc", 3));
    CU_ASSERT_EQUAL(b.get().size(), 3u);
    CU_ASSERT_EQUAL(std::memcmp(b.get().data(), "abc", 3), 0);
    /* a passed ref: a ref<long> of the task's own */
    auto p = shoal::submit([](shoal::ref<long> r) { return r.get() + 1; }, shoal::pass(x));
    CU_ASSERT_EQUAL(p.get(), 21);
    /* zero-copy result; void result */
    auto v = shoal::submit([](shoal::task &t) { std::memcpy(t.result_buffer(3), "xyz", 3); });
    CU_ASSERT_EQUAL(std::memcmp(v.get().data(), "xyz", 3), 0);
    auto e = shoal::submit([] {});
    CU_ASSERT_EQUAL(e.get().size(), 0u);
    /* refs as arguments of refs: a chain, the caller's refs dropped right after submitting */
    shoal::ref<long> acc = shoal::put(0L);
    for (int i = 1; i <= 20; i++)
        acc = shoal::submit([i](long a) { return a + i; }, acc);
    CU_ASSERT_EQUAL(acc.get(), 210);
    /* a plain function, recursion through tasks */
    struct fib {
        static long run(long n)
        {
            if (n < 2)
                return n;
            auto a = shoal::submit(run, n - 1), b = shoal::submit(run, n - 2);
            return a.get() + b.get();
        }
    };
    CU_ASSERT_EQUAL(shoal::submit(fib::run, 12L).get(), 144);
    /* with options */
    auto named = shoal::submit(shoal::options{ "named", 0 }, [](shoal::task &t) {
        return t.worker() < 0 ? 0 : shoal_worker_node((unsigned)t.worker());
    });
    CU_ASSERT_EQUAL(named.get(), 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_errors(void)
{
    start(2);
    /* an exception in the task fails it: get throws SHOAL_ETASK with the message */
    auto bad = shoal::submit([]() -> long { throw std::runtime_error("boom at 7"); });
    try {
        (void)bad.get();
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ETASK);
        CU_ASSERT_PTR_NOT_NULL(std::strstr(e.what(), "boom at 7"));
    }
    /* a task whose argument failed does not run; its result throws the same */
    std::atomic<int> ran{ 0 };
    auto dep = shoal::submit([&ran](long v) { ran++; return v; }, bad);
    try {
        (void)dep.get();
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ETASK);
    }
    CU_ASSERT_EQUAL(ran.load(), 0);
    /* a timeout throws SHOAL_ETIMEDOUT; wait says false */
    shoal::ref<shoal::bytes> pending;
    void *buf;
    shoal_ref raw;
    ASSERT_OK(shoal_create(4, &buf, &raw));
    pending = shoal::ref<shoal::bytes>::adopt(raw);
    CU_ASSERT_FALSE(pending.wait(0));
    try {
        (void)pending.get(1000);
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ETIMEDOUT);
    }
    ASSERT_OK(shoal_seal(raw));
    CU_ASSERT_TRUE(pending.wait(TEST_WAIT_NS));
    ASSERT_OK(shoal_shutdown());
    /* no runtime: submit throws SHOAL_ENOTINIT and frees the callable */
    auto token = std::make_shared<int>(1);
    try {
        (void)shoal::submit([token] { return 1L; });
        CU_FAIL("no exception");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ENOTINIT);
        CU_ASSERT_PTR_NOT_NULL(std::strstr(e.what(), "shoal_submit"));
    }
    CU_ASSERT_EQUAL(token.use_count(), 1);
}

/* The callable (and what it captured) is freed when its task is over: after it ran
 * (before the result is ready), when its argument failed, and when shutdown cancels it. */
static void test_callable_freed(void)
{
    start(2);
    auto token = std::make_shared<int>(1);
    auto r = shoal::submit([token] { return (long)token.use_count(); });
    CU_ASSERT(r.get() >= 2);
    CU_ASSERT_EQUAL(token.use_count(), 1);                 /* freed before the result */
    auto bad = shoal::submit([]() -> long { throw std::runtime_error("x"); });
    auto skipped = shoal::submit([token](long v) { return v; }, bad);
    CU_ASSERT_TRUE(skipped.wait(TEST_WAIT_NS));
    CU_ASSERT_EQUAL(token.use_count(), 1);
    /* waiting on an object never sealed when shutdown comes */
    void *buf;
    shoal_ref raw;
    ASSERT_OK(shoal_create(4, &buf, &raw));
    auto never = shoal::ref<shoal::bytes>::adopt(raw);
    auto waiting = shoal::submit([token](shoal::bytes) { return 1L; }, never);
    CU_ASSERT_EQUAL(token.use_count(), 2);
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(token.use_count(), 1);
    /* refs destroyed after shutdown: nothing to release, no crash */
}

/* shoal::cancel and task::cancelled: a task waiting on an unsealed object is canceled
 * (true), get throws SHOAL_ECANCELED; a running one polls cancelled() and stops (false). */
/* shoal::put_with_refs keeps what it contains alive; shoal::contained reads it back. */
static void test_put_with_refs(void)
{
    start(1);
    shoal_info i0;
    ASSERT_OK(shoal_info_get(&i0));
    {
        shoal::ref<long> outer;
        {
            std::vector<shoal::ref<long>> kids = { shoal::put(1L), shoal::put(2L) };
            outer = shoal::put_with_refs(7L, kids);
        }   /* our references on the kids go here */
        CU_ASSERT_EQUAL(outer.get(), 7L);
        auto in = shoal::contained(outer);
        CU_ASSERT_EQUAL(in.size(), 2u);
        long sum = 0;
        for (auto &k : in)
            sum += *k.view().as<long>();
        CU_ASSERT_EQUAL(sum, 3L);
    }
    shoal_info i1;
    ASSERT_OK(shoal_info_get(&i1));
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

static void test_cancel(void)
{
    start(2);
    void *buf;
    shoal_ref raw;
    ASSERT_OK(shoal_create(4, &buf, &raw));
    auto gate = shoal::ref<shoal::bytes>::adopt(raw);
    auto token = std::make_shared<int>(1);
    auto waiting = shoal::submit([token](shoal::bytes) { return 1L; }, gate);
    CU_ASSERT_TRUE(shoal::cancel(waiting));
    try {
        (void)waiting.view(TEST_WAIT_NS);
        CU_FAIL("get of a canceled result did not throw");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ECANCELED);
    }
    ASSERT_OK(shoal_seal(gate.id()));   /* now it would run: it does not, and lets go */
    for (int i = 0; i < 5000 && token.use_count() != 1; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CU_ASSERT_EQUAL(token.use_count(), 1);
    std::atomic<int> started{ 0 };
    auto poller = shoal::submit([&started](shoal::task &t) {
        started = 1;
        for (int i = 0; i < 60000 && !t.cancelled(); i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return t.cancelled() ? 1L : 0L;
    });
    for (int i = 0; i < 60000 && !started; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CU_ASSERT_FALSE(shoal::cancel(poller));
    CU_ASSERT_TRUE(poller.wait(TEST_WAIT_NS));
    try {
        (void)poller.view(TEST_WAIT_NS);
        CU_FAIL("get of a result canceled while it ran did not throw");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_ECANCELED);
    }
    try {
        shoal::cancel(poller);
        CU_FAIL("cancel of a finished task did not throw");
    } catch (const shoal::error &e) {
        CU_ASSERT_EQUAL(e.code(), SHOAL_EEXIST);
    }
}

static void test_actor()
{
    start(2);
    struct account {
        long balance = 0;
        std::vector<long> seen;
        std::atomic<int> *freed;   /* the destructor may run on a worker */
        explicit account(std::atomic<int> *f) : freed(f) {}
        ~account() { ++*freed; }
    };
    std::atomic<int> freed{ 0 };
    {
        auto acc = shoal::actor<account>::make(&freed);
        std::vector<shoal::ref<long>> rs;
        for (long i = 1; i <= 100; i++)
            rs.push_back(acc.submit([](account &a, long v) {
                a.seen.push_back(v);
                return a.balance += v;
            }, i));
        long want = 0;
        for (long i = 1; i <= 100; i++) {
            want += i;
            CU_ASSERT_EQUAL(rs[(size_t)i - 1].get(), want);
        }
        auto n = acc.submit([](shoal::task &t, account &a) {
            return (long)a.seen.size() + (t.worker() >= 0 ? 0 : 1000);
        });
        CU_ASSERT_EQUAL(n.get(), 100);
        /* A call that throws fails its result; the actor goes on. */
        auto bad = acc.submit([](account &) -> long { throw std::runtime_error("no funds"); });
        try {
            (void)bad.get();
            CU_FAIL("the failed call did not throw");
        } catch (const shoal::error &e) {
            CU_ASSERT_EQUAL(e.code(), SHOAL_ETASK);
            CU_ASSERT_PTR_NOT_NULL(strstr(e.what(), "no funds"));
        }
        auto moved = std::move(acc);
        CU_ASSERT_EQUAL(moved.submit([](account &a) { return a.balance; }).get(), 5050);
    }   /* destroyed at the end of its scope: the account is deleted once */
    for (int i = 0; i < 5000 && freed != 1; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CU_ASSERT_EQUAL(freed.load(), 1);
    auto gone = shoal::actor<long>::make(1L);
    shoal_actor id = gone.id();
    gone.destroy();
    shoal_ref r;
    CU_ASSERT_EQUAL(shoal_actor_submit(id, [](shoal_task *) { return 0; }, nullptr, 0, nullptr, &r),
                    SHOAL_ESTALE);
    ASSERT_OK(shoal_shutdown());
}

int main()
{
    static const shoal_test_case cases[] = {
        { "shoal::runtime is init and shutdown", test_runtime_scope },
        { "RAII refs: copy retains, destruction releases", test_raii },
        { "typed get, size check, zero-copy views", test_typed_get },
        { "submit lambdas with captures and typed arguments", test_submit },
        { "errors throw shoal::error with code and message", test_errors },
        { "the callable is freed however its task ends", test_callable_freed },
        { "transfer() and accept() hand a reference over", test_transfer_accept },
        { "cancel a waiting task and a running one", test_cancel },
        { "an actor owning a C++ state", test_actor },
        { "put_with_refs and contained", test_put_with_refs },
        { nullptr, nullptr },
    };
    return shoal_test_run("cxx", cases);
}
