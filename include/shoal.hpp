/* shoal.hpp - C++17 interface to shoal (include/shoal.h), header-only, namespace shoal.
 *
 *   shoal::runtime rt;                                   // shoal_init; shutdown at scope end
 *   shoal::ref<long> x = shoal::put(20L);                // RAII: copy retains, dtor releases
 *   auto y = shoal::submit([k = 2L](long v) { return v * k; }, x);   // x resolved first
 *   long v = y.get();                                    // const long& into the store
 *
 * Everything here is a thin inline layer over the C calls, zero-copy like them: get() returns
 * a reference (or a shoal::bytes view) into the object's bytes, valid while the ref lives.
 * Failures throw shoal::error, which carries the SHOAL_E* code and shoal_last_error()'s
 * message. Refs are plain IDs: ref.id() gives the shoal_ref for the C API.
 *
 * Tasks: submit(f, args...) runs any callable (a lambda with captures included) on a worker.
 * Each argument becomes a task argument:
 *   ref<T>              SHOAL_ARG_REF, resolved before the task runs; f gets const T&
 *                       (ref<bytes>: a shoal::bytes view) into the store, zero-copy
 *   shoal::pass(ref<T>) SHOAL_ARG_REF_PASS, not awaited; f gets a ref<T> of its own
 *   shoal::bytes        a VALUE copy of the bytes; f gets a bytes view of the copy
 *   trivially copyable T  a VALUE copy; f gets a T
 * f may take a shoal::task& first (worker index, cancellation, a zero-copy result buffer).
 * Its result becomes the object: a trivially copyable R gives ref<R>; void or bytes give
 * ref<bytes> (bytes are copied; use task::result_buffer for zero-copy). An exception out of
 * f fails the task with its what() (get() then throws SHOAL_ETASK with that message).
 * The callable is moved to the heap and freed when the task is over (ran, canceled, or
 * its argument failed), through opts.ctx / opts.ctx_done.
 */
#ifndef SHOAL_HPP
#define SHOAL_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shoal.h"

namespace shoal {

/* A failed shoal call: the SHOAL_E* code and the message that says what to do. */
class error : public std::exception {
public:
    error(int code, std::string message) : code_(code), msg_(std::move(message)) {}
    int code() const noexcept { return code_; }
    const char *what() const noexcept override { return msg_.c_str(); }

private:
    int code_;
    std::string msg_;
};

namespace detail {
[[noreturn]] inline void fail(int rc, const char *call)
{
    std::string m = call;
    m += ": ";
    m += shoal_strerror(rc);
    const char *why = shoal_last_error();
    if (why && *why) {
        m += ": ";
        m += why;
    }
    throw error(rc, std::move(m));
}
inline void check(int rc, const char *call)
{
    if (rc < 0)
        fail(rc, call);
}
} // namespace detail

/* A read-only view of bytes: an object's, or a VALUE argument's. */
class bytes {
public:
    constexpr bytes() noexcept = default;
    constexpr bytes(const void *data, std::size_t size) noexcept : data_(data), size_(size) {}
    const unsigned char *data() const noexcept { return static_cast<const unsigned char *>(data_); }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const unsigned char *begin() const noexcept { return data(); }
    const unsigned char *end() const noexcept { return data() + size_; }
    /* The bytes as an array of U (size() must be a multiple of sizeof(U)). */
    template <class U> const U *as() const
    {
        static_assert(std::is_trivially_copyable<U>::value, "U must be trivially copyable");
        if (size_ % sizeof(U) != 0 ||
            reinterpret_cast<std::uintptr_t>(data_) % alignof(U) != 0)
            throw error(SHOAL_EINVAL, "shoal::bytes::as: " + std::to_string(size_) +
                                      " bytes are not an aligned array of " +
                                      std::to_string(sizeof(U)) + "-byte elements");
        return static_cast<const U *>(data_);
    }
    template <class U> std::size_t count() const noexcept { return size_ / sizeof(U); }

private:
    const void *data_ = nullptr;
    std::size_t size_ = 0;
};

/* The runtime, for the scope of this object: shoal_init, then shoal_shutdown. */
class runtime {
public:
    runtime() { detail::check(shoal_init(nullptr), "shoal_init"); }
    explicit runtime(const shoal_config &cfg) { detail::check(shoal_init(&cfg), "shoal_init"); }
    runtime(const runtime &) = delete;
    runtime &operator=(const runtime &) = delete;
    ~runtime() { (void)shoal_shutdown(); }
};

template <class T> class ref;

/* A reference to an object of any content: what ref<T> is built on. Copying retains,
 * destruction releases (errors ignored: after shoal_shutdown there is nothing to release). */
class object_ref {
public:
    object_ref() noexcept = default;
    /* Take over a reference the caller holds (from shoal_put, shoal_submit, ...). */
    static object_ref adopt(shoal_ref r) noexcept { object_ref o; o.r_ = r; return o; }
    /* Take a new reference on r (the caller keeps its own). */
    static object_ref retain(shoal_ref r)
    {
        detail::check(shoal_retain(r), "shoal_retain");
        return adopt(r);
    }
    object_ref(const object_ref &o) : r_(o.r_)
    {
        if (r_.id)
            detail::check(shoal_retain(r_), "shoal_retain");
    }
    object_ref(object_ref &&o) noexcept : r_(o.r_) { o.r_.id = 0; }
    object_ref &operator=(const object_ref &o)
    {
        if (this != &o) {
            object_ref copy(o);
            swap(copy);
        }
        return *this;
    }
    object_ref &operator=(object_ref &&o) noexcept
    {
        object_ref moved(std::move(o));
        swap(moved);
        return *this;
    }
    ~object_ref() { reset(); }

    void reset() noexcept
    {
        if (r_.id)
            (void)shoal_release(r_);
        r_.id = 0;
    }
    void swap(object_ref &o) noexcept { std::swap(r_, o.r_); }
    /* Give up ownership: the caller now holds the reference. */
    shoal_ref detach() noexcept
    {
        shoal_ref r = r_;
        r_.id = 0;
        return r;
    }
    shoal_ref id() const noexcept { return r_; }
    explicit operator bool() const noexcept { return r_.id != 0; }
    /* Put this reference in flight for another process or thread (shoal_transfer): the
     * store holds it for at most ttl_ns, this object_ref is empty after, and the returned
     * ref is what to send. On an error (thrown) this object_ref keeps its reference. */
    shoal_ref transfer(std::int64_t ttl_ns)
    {
        detail::check(shoal_transfer(r_, ttl_ns), "shoal_transfer");
        return detach();
    }
    /* Take a reference in flight (shoal_accept) as one's own. Throws shoal::error. */
    static object_ref accept(shoal_ref r)
    {
        detail::check(shoal_accept(r), "shoal_accept");
        return adopt(r);
    }

    /* The object's bytes, zero-copy; waits until it is ready. Throws shoal::error. */
    shoal::bytes view() const
    {
        const void *d;
        std::size_t n;
        int rc = shoal_get(r_, &d, &n);
        if (rc < 0)
            detail::fail(rc, "shoal_get");
        return shoal::bytes(d, n);
    }
    /* As view(), waiting at most timeout_ns (SHOAL_ETIMEDOUT throws too). */
    shoal::bytes view(std::int64_t timeout_ns) const
    {
        const void *d;
        std::size_t n;
        int rc = shoal_get_timeout(r_, timeout_ns, &d, &n);
        if (rc < 0)
            detail::fail(rc, "shoal_get_timeout");
        return shoal::bytes(d, n);
    }
    /* true once ready (or failed: a get will not block), false at the timeout. */
    bool wait(std::int64_t timeout_ns) const
    {
        int rc = shoal_wait(&r_, 1, 1, timeout_ns, nullptr);
        detail::check(rc, "shoal_wait");
        return rc == 1;
    }

protected:
    shoal_ref r_ = { 0 };
};

/* A typed reference: T trivially copyable (the object is exactly sizeof(T) bytes), or
 * shoal::bytes (any length). */
template <class T> class ref : public object_ref {
    static_assert(std::is_trivially_copyable<T>::value,
                  "shoal::ref<T>: T must be trivially copyable (or shoal::bytes)");
    static_assert(alignof(T) <= 64, "shoal::ref<T>: objects are 64-byte aligned");

public:
    using value_type = T;
    ref() noexcept = default;
    static ref adopt(shoal_ref r) noexcept { ref o; o.r_ = r; return o; }
    static ref retain(shoal_ref r)
    {
        detail::check(shoal_retain(r), "shoal_retain");
        return adopt(r);
    }
    static ref accept(shoal_ref r)
    {
        detail::check(shoal_accept(r), "shoal_accept");
        return adopt(r);
    }

    /* const T& into the store (zero-copy), or a bytes view for ref<bytes>; waits until the
     * object is ready. Throws shoal::error (a task's failure: SHOAL_ETASK with its message;
     * an object of another size: SHOAL_EINVAL). Valid while this ref (or a copy) lives. */
    const T &get() const { return typed(view()); }
    const T &get(std::int64_t timeout_ns) const { return typed(view(timeout_ns)); }

    /* The bytes as T, as a task argument sees them. */
    static const T &typed(shoal::bytes b)
    {
        if (b.size() != sizeof(T))
            throw error(SHOAL_EINVAL, "shoal::ref<T>::get: the object has " +
                                      std::to_string(b.size()) + " bytes, T has " +
                                      std::to_string(sizeof(T)));
        return *static_cast<const T *>(static_cast<const void *>(b.data()));
    }
};
template <> class ref<bytes> : public object_ref {
public:
    using value_type = shoal::bytes;
    ref() noexcept = default;
    static ref adopt(shoal_ref r) noexcept { ref o; o.r_ = r; return o; }
    static ref retain(shoal_ref r)
    {
        detail::check(shoal_retain(r), "shoal_retain");
        return adopt(r);
    }
    static ref accept(shoal_ref r)
    {
        detail::check(shoal_accept(r), "shoal_accept");
        return adopt(r);
    }
    /* Any object may be seen as bytes. */
    ref(const object_ref &o) : object_ref(o) {}
    ref(object_ref &&o) noexcept : object_ref(std::move(o)) {}
    shoal::bytes get() const { return view(); }
    shoal::bytes get(std::int64_t timeout_ns) const { return view(timeout_ns); }
    static shoal::bytes typed(shoal::bytes b) noexcept { return b; }
};

/* ---- put ---------------------------------------------------------------------------------- */

/* Copy v into a new object. */
template <class T> ref<T> put(const T &v)
{
    static_assert(std::is_trivially_copyable<T>::value, "shoal::put: T must be trivially copyable");
    static_assert(!std::is_pointer<T>::value, "shoal::put: a pointer means nothing in the store: "
                                              "put what it points to (shoal::bytes)");
    shoal_ref r;
    detail::check(shoal_put(&v, sizeof v, &r), "shoal_put");
    return ref<T>::adopt(r);
}
/* Copy bytes into a new object. */
inline ref<bytes> put(bytes b)
{
    shoal_ref r;
    detail::check(shoal_put(b.data(), b.size(), &r), "shoal_put");
    return ref<bytes>::adopt(r);
}
inline ref<bytes> put(const void *data, std::size_t len) { return put(bytes(data, len)); }

/* Copy v into a new object that contains refs (shoal_put_with_refs): it holds a reference
 * on each of their objects while it lives and releases them when it goes. refs is any
 * range of shoal::ref<U> / object_ref; the caller's own references stay its own. */
template <class T, class Refs> ref<T> put_with_refs(const T &v, const Refs &refs)
{
    static_assert(std::is_trivially_copyable<T>::value,
                  "shoal::put_with_refs: T must be trivially copyable");
    std::vector<shoal_ref> ids;
    for (const auto &r : refs)
        ids.push_back(r.id());
    shoal_ref r;
    detail::check(shoal_put_with_refs(&v, sizeof v, ids.data(), ids.size(), &r),
                  "shoal_put_with_refs");
    return ref<T>::adopt(r);
}
/* The refs an object contains (shoal_object_refs), each with a reference of its own. */
inline std::vector<object_ref> contained(const object_ref &o)
{
    std::size_t n = 0;
    detail::check(shoal_object_refs(o.id(), nullptr, 0, &n), "shoal_object_refs");
    std::vector<shoal_ref> ids(n);
    detail::check(shoal_object_refs(o.id(), ids.data(), n, &n), "shoal_object_refs");
    std::vector<object_ref> out;
    for (std::size_t i = 0; i < n && i < ids.size(); i++)
        out.push_back(object_ref::retain(ids[i]));
    return out;
}

/* Fill an object in place (zero-copy): fill(void *buf) writes its len bytes, then it is
 * sealed. If fill throws, the object is sealed as it is and released, and the exception
 * goes on. */
template <class Fill> ref<bytes> create(std::size_t len, Fill &&fill)
{
    void *buf;
    shoal_ref r;
    detail::check(shoal_create(len, &buf, &r), "shoal_create");
    ref<bytes> out = ref<bytes>::adopt(r);
    try {
        std::forward<Fill>(fill)(buf);
    } catch (...) {
        (void)shoal_seal(r);
        throw;
    }
    detail::check(shoal_seal(r), "shoal_seal");
    return out;
}

/* ---- tasks -------------------------------------------------------------------------------- */

/* The running task, for callables that take a shoal::task& first. */
class task {
public:
    explicit task(shoal_task *t) noexcept : t_(t) {}
    shoal_task *c() const noexcept { return t_; }
    /* The worker's index, or -1 when the submitting thread runs the task in its get (see
     * shoal_get in shoal.h). */
    int worker() const
    {
        int w = shoal_task_worker(t_);
        if (w != -1)
            detail::check(w, "shoal_task_worker");
        return w;
    }
    /* shoal_cancel was called on this task's result: return early (shoal_task_cancelled). */
    bool cancelled() const noexcept { return shoal_task_cancelled(t_) == 1; }
    /* A writable buffer that becomes the result (zero-copy); the callable then returns
     * void. */
    void *result_buffer(std::size_t len)
    {
        void *buf;
        detail::check(shoal_task_return_buf(t_, len, &buf), "shoal_task_return_buf");
        return buf;
    }

private:
    shoal_task *t_;
};

/* An argument passed as its ref (SHOAL_ARG_REF_PASS): not awaited; the callable gets a
 * ref<T> of its own. */
template <class T> struct passed { const ref<T> &r; };
template <class T> passed<T> pass(const ref<T> &r) noexcept { return passed<T>{ r }; }

/* Task options (a name, a NUMA node); the rest of shoal_task_opts is used by submit. */
struct options {
    const char *name = nullptr;
    int numa_node = -1;          /* -1 any; >= 0 that node (node 0 included) */
};

namespace detail {

template <class A> struct is_ref : std::false_type {};
template <class T> struct is_ref<ref<T>> : std::true_type {};

/* How an argument of type A goes into a task and what the callable receives. */
template <class A, class = void> struct arg_traits {
    static_assert(std::is_trivially_copyable<A>::value,
                  "shoal::submit: an argument must be a shoal::ref, shoal::pass(ref), "
                  "shoal::bytes or a trivially copyable value (capture anything else in the "
                  "callable)");
    using param = A;
    static shoal_arg to_c(const A &a) { return SHOAL_VALUE(&a, sizeof a); }
    static A from_task(shoal_task *t, std::size_t i)
    {
        const void *d;
        std::size_t n;
        check(shoal_task_arg(t, i, &d, &n), "shoal_task_arg");
        A v;
        std::memcpy(static_cast<void *>(&v), d, sizeof v);   /* a copy: VALUEs are 16-aligned */
        return v;
    }
};
template <class T> struct arg_traits<ref<T>> {
    using param = decltype(std::declval<const ref<T> &>().get());
    static shoal_arg to_c(const ref<T> &a) { return SHOAL_REF(a.id()); }
    static param from_task(shoal_task *t, std::size_t i)
    {
        const void *d;
        std::size_t n;
        check(shoal_task_arg(t, i, &d, &n), "shoal_task_arg");
        return ref<T>::typed(shoal::bytes(d, n));
    }
};
template <> struct arg_traits<object_ref> : arg_traits<ref<shoal::bytes>> {
    static shoal_arg to_c(const object_ref &a) { return SHOAL_REF(a.id()); }
};
template <class T> struct arg_traits<passed<T>> {
    using param = ref<T>;
    static shoal_arg to_c(const passed<T> &a) { return SHOAL_REF_PASS(a.r.id()); }
    static ref<T> from_task(shoal_task *t, std::size_t i)
    {
        shoal_ref r;
        check(shoal_task_arg_ref(t, i, &r), "shoal_task_arg_ref");
        return ref<T>::retain(r);
    }
};
template <> struct arg_traits<shoal::bytes> {
    using param = shoal::bytes;
    static shoal_arg to_c(const shoal::bytes &a) { return SHOAL_VALUE(a.data(), a.size()); }
    static shoal::bytes from_task(shoal_task *t, std::size_t i)
    {
        const void *d;
        std::size_t n;
        check(shoal_task_arg(t, i, &d, &n), "shoal_task_arg");
        return shoal::bytes(d, n);
    }
};

template <class A> using traits = arg_traits<std::decay_t<A>>;

/* What f returns when called (with a task& first, if it takes one). */
template <class F, class... A> struct call {
    static constexpr bool with_task =
        std::is_invocable<F &, task &, typename traits<A>::param...>::value;
    using result = typename std::conditional_t<
        with_task, std::invoke_result<F &, task &, typename traits<A>::param...>,
        std::invoke_result<F &, typename traits<A>::param...>>::type;
};

template <class R> struct result_ref {
    static_assert(std::is_trivially_copyable<R>::value,
                  "shoal::submit: the callable must return void, shoal::bytes or a trivially "
                  "copyable value");
    using type = ref<R>;
};
template <> struct result_ref<void> { using type = ref<shoal::bytes>; };
template <> struct result_ref<shoal::bytes> { using type = ref<shoal::bytes>; };

template <class F, class... A, std::size_t... I>
int run(shoal_task *t, F &f, std::index_sequence<I...>)
{
    using C = call<F, A...>;
    using R = typename C::result;
    task tk(t);
    auto invoke = [&]() -> R {
        if constexpr (C::with_task)
            return std::invoke(f, tk, traits<A>::from_task(t, I)...);
        else
            return std::invoke(f, traits<A>::from_task(t, I)...);
    };
    if constexpr (std::is_void<R>::value) {
        invoke();
        return 0;
    } else if constexpr (std::is_same<R, shoal::bytes>::value) {
        shoal::bytes b = invoke();
        check(shoal_task_return(t, b.data(), b.size()), "shoal_task_return");
        return 0;
    } else {
        R v = invoke();
        check(shoal_task_return(t, &v, sizeof v), "shoal_task_return");
        return 0;
    }
}

/* The C entry point of every C++ task: never lets an exception into C. */
template <class F, class... A> int trampoline(shoal_task *t)
{
    F &f = *static_cast<F *>(shoal_task_ctx(t));
    try {
        return run<F, A...>(t, f, std::index_sequence_for<A...>{});
    } catch (const std::exception &e) {
        (void)shoal_task_fail(t, e.what());
    } catch (...) {
        (void)shoal_task_fail(t, "the task threw an exception that is no std::exception");
    }
    return 1;
}

template <class F> void destroy(void *p) { delete static_cast<F *>(p); }

/* submit, to an actor when a is not null (shoal_actor_submit). */
template <class F, class... A>
auto submit_to(const shoal_actor *a, const options &o, F &&f, A &&...args)
{
    using Fn = std::decay_t<F>;
    using R = typename call<Fn, A...>::result;
    using Out = typename result_ref<std::remove_cv_t<std::remove_reference_t<R>>>::type;
    std::unique_ptr<Fn> fn(new Fn(std::forward<F>(f)));
    shoal_arg c_args[sizeof...(A) + 1] = { traits<A>::to_c(args)... };
    shoal_task_opts opts;   /* its members default to zero in C++ */
    opts.name = o.name;
    opts.numa_node = o.numa_node;
    if (o.numa_node >= 0)
        opts.flags = SHOAL_TASK_ON_NODE;
    opts.ctx = fn.get();
    opts.ctx_done = &destroy<Fn>;
    shoal_ref r;
    shoal_fn tramp = &trampoline<Fn, std::decay_t<A>...>;
    if (a)
        check(shoal_actor_submit(*a, tramp, c_args, sizeof...(A), &opts, &r),
              "shoal_actor_submit");
    else
        check(shoal_submit(tramp, c_args, sizeof...(A), &opts, &r), "shoal_submit");
    fn.release();   /* the task owns it now: ctx_done deletes it */
    return Out::adopt(r);
}

template <class F, class... A>
auto submit(const options &o, F &&f, A &&...args)
{
    return submit_to(nullptr, o, std::forward<F>(f), std::forward<A>(args)...);
}

} // namespace detail

/* Run f(args...) on a worker; returns the ref of its result at once. Throws shoal::error if
 * the submit fails (nothing runs then). */
template <class F, class... A,
          class = std::enable_if_t<!std::is_same<std::decay_t<F>, options>::value>>
auto submit(F &&f, A &&...args)
{
    return detail::submit(options{}, std::forward<F>(f), std::forward<A>(args)...);
}
/* The same with options (a name for the timeline and messages, a NUMA node). */
template <class F, class... A> auto submit(const options &o, F &&f, A &&...args)
{
    return detail::submit(o, std::forward<F>(f), std::forward<A>(args)...);
}

/* Wait for num_ready of the refs (any ref types) or the timeout; returns how many are
 * ready. */
template <class... R> std::size_t wait(std::size_t num_ready, std::int64_t timeout_ns,
                                       const R &...refs)
{
    shoal_ref ids[] = { refs.id()... };
    int rc = shoal_wait(ids, sizeof...(R), num_ready, timeout_ns, nullptr);
    detail::check(rc, "shoal_wait");
    return static_cast<std::size_t>(rc);
}

/* Cancel the task behind a result (shoal_cancel; the reference stays the caller's): true if
 * it had not started (it never runs), false if it is running (marked; its result fails
 * SHOAL_ECANCELED). Throws shoal::error for the rest, SHOAL_EEXIST when it already finished. */
template <class R> bool cancel(const R &result)
{
    int rc = shoal_cancel(result.id());
    detail::check(rc, "shoal_cancel");
    return rc == 0;
}

/* ---- actors -------------------------------------------------------------------------------- */

/* An actor owning a state of type S (shoal_actor_create): calls run one at a time, in
 * submission order, each getting S& first. Move-only; destroyed (shoal_actor_destroy: queued
 * calls fail SHOAL_ECANCELED, the running one finishes, then the S is deleted) by destroy()
 * or at the end of its scope; an actor still alive at shoal_shutdown is destroyed by it.
 *
 *   auto acc = shoal::actor<long>::make(0L);
 *   auto r = acc.submit([](long &balance, long v) { return balance += v; }, 5L);
 */
template <class S> class actor {
public:
    /* A new actor owning S(args...). */
    template <class... Args> static actor make(Args &&...args)
    {
        return actor(options{}, new S(std::forward<Args>(args)...));
    }
    /* The same, named and placed by o. */
    template <class... Args> static actor make_with(const options &o, Args &&...args)
    {
        return actor(o, new S(std::forward<Args>(args)...));
    }
    actor(actor &&o) noexcept : a_(o.a_) { o.a_.id = 0; }
    actor &operator=(actor &&o) noexcept
    {
        if (this != &o) {
            reset();
            a_ = o.a_;
            o.a_.id = 0;
        }
        return *this;
    }
    actor(const actor &) = delete;
    actor &operator=(const actor &) = delete;
    ~actor() { reset(); }

    /* The handle for the C API (pass it to a task as a VALUE, for instance). */
    shoal_actor id() const noexcept { return a_; }
    /* Queue f(S&, args...) (or f(task&, S&, args...)) as the next call; the arguments as
     * for shoal::submit. Returns the ref of its result at once. */
    template <class F, class... A> auto submit(F &&f, A &&...args)
    {
        auto g = [fn = std::forward<F>(f)](task &t, typename detail::traits<A>::param... p) mutable {
            S &s = *static_cast<S *>(shoal_task_actor_state(t.c()));
            if constexpr (std::is_invocable<decltype(fn) &, task &, S &,
                                            typename detail::traits<A>::param...>::value)
                return fn(t, s, std::forward<decltype(p)>(p)...);
            else
                return fn(s, std::forward<decltype(p)>(p)...);
        };
        return detail::submit_to(&a_, options{}, std::move(g), std::forward<A>(args)...);
    }
    /* Destroy it now (see shoal_actor_destroy); throws shoal::error if that fails. */
    void destroy()
    {
        shoal_actor a = a_;
        a_.id = 0;
        detail::check(shoal_actor_destroy(a), "shoal_actor_destroy");
    }

private:
    actor(const options &o, S *s)
    {
        std::unique_ptr<S> owned(s);
        shoal_task_opts opts;   /* its members default to zero in C++ */
        opts.name = o.name;
        opts.numa_node = o.numa_node;
        if (o.numa_node >= 0)
            opts.flags = SHOAL_TASK_ON_NODE;
        detail::check(shoal_actor_create(s, &detail::destroy<S>, &opts, &a_),
                      "shoal_actor_create");
        owned.release();   /* the actor owns it now: destroy deletes it */
    }
    void reset() noexcept
    {
        if (a_.id)
            (void)shoal_actor_destroy(a_);   /* after a shutdown: already destroyed */
        a_.id = 0;
    }
    shoal_actor a_{ 0 };
};

inline const char *version() noexcept { return shoal_version(); }

} // namespace shoal

#endif /* SHOAL_HPP */
