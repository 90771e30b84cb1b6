/* actor.c - actor calls against the same work done by plain tasks on a mutex-protected state
 * (issue 15.4): throughput of calls submitted from one thread (each call adds to a counter in
 * the state; the submitter keeps no ref), and the round trip of one call (submit, then get
 * its result) against that of one plain task. Each repetition of a figure is measured next
 * to its baseline's, so the report pairs them. In run.sh's rounds (alternating with
 * bench/actor_tbb, oneTBB's nearest construct: a flow-graph function_node of serial
 * concurrency) the actor's figures are also emitted against that peer's, paired by round.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "shoal.h"
#include "bench.h"

#define CALLS_BENCH "actor calls"
#define TRIP_BENCH  "actor round trip"
#define ACTOR_V     "shoal actor"
#define MUTEX_V     "shoal tasks + mutex"
#define CALL_V      "shoal actor call"
#define TASK_V      "shoal task"

struct counter {
    long value;
    pthread_mutex_t mu;          /* the plain tasks' lock; calls need none */
    _Atomic long done;
};

static char errbuf[256];

static void fail_with(const char *what, int rc)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s (%s)", what, shoal_strerror(rc), shoal_last_error());
}

static int m_add(shoal_task *t)
{
    struct counter *c = shoal_task_actor_state(t);
    c->value++;
    /* release: pairs with the acquire load of the waiting submitter. */
    atomic_fetch_add_explicit(&c->done, 1, memory_order_release);
    return 0;
}

static int t_add_locked(shoal_task *t)
{
    struct counter *c = shoal_task_ctx(t);
    pthread_mutex_lock(&c->mu);
    c->value++;
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add_explicit(&c->done, 1, memory_order_release);
    return 0;
}

static int t_echo(shoal_task *t)
{
    long v = 1;
    return shoal_task_return(t, &v, sizeof v);
}

/* Wait (bounded: 60 s) until n calls are done. */
static int wait_done(struct counter *c, long n)
{
    uint64_t end = bench_ns() + (uint64_t)60 * 1000000000u;
    while (atomic_load_explicit(&c->done, memory_order_acquire) < n)
        if (bench_ns() > end)
            return 0;
        else
            sched_yield();
    return 1;
}

/* Mcalls/s of n calls to actor a (actor) or n plain locked tasks (mutex); 0 on failure. */
static double run_calls(shoal_actor a, struct counter *c, long n, int actor)
{
    atomic_store(&c->done, 0);
    shoal_task_opts o = { .ctx = c };
    uint64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        shoal_ref r;
        int rc = actor ? shoal_actor_submit(a, m_add, NULL, 0, NULL, &r)
                       : shoal_submit(t_add_locked, NULL, 0, &o, &r);
        if (rc != 0) {
            fail_with(actor ? "shoal_actor_submit" : "shoal_submit", rc);
            return 0;
        }
        shoal_release(r);
    }
    if (!wait_done(c, n)) {
        snprintf(errbuf, sizeof errbuf, "calls did not finish within 60 s");
        return 0;
    }
    return (double)n / ((double)(bench_ns() - t0) / 1e3);
}

/* ns per round trip (submit, get, release), over n of them; 0 on failure. */
static double run_trip(shoal_actor a, long n, int actor)
{
    uint64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        shoal_ref r;
        const void *d;
        size_t len;
        int rc = actor ? shoal_actor_submit(a, t_echo, NULL, 0, NULL, &r)
                       : shoal_submit(t_echo, NULL, 0, NULL, &r);
        if (rc == 0)
            rc = shoal_get(r, &d, &len);
        if (rc != 0) {
            fail_with("round trip", rc);
            return 0;
        }
        shoal_release(r);
    }
    return (double)(bench_ns() - t0) / (double)n;
}

static double run_calls_fig(shoal_actor a, struct counter *c, long n, int actor)
{
    return run_calls(a, c, n, actor);
}

static double run_trip_fig(shoal_actor a, struct counter *c, long n, int actor)
{
    (void)c;
    return run_trip(a, n, actor);
}

/* One figure (variant, actor) and its baseline (base, plain tasks), repetition by
 * repetition alternately; 1 if it could not be measured. */
static int measure(const char *bench, const char *peer_bench, const char *variant,
                   const char *base, const char *unit, shoal_actor a, struct counter *c, long n,
                   int reps,
                   double (*run)(shoal_actor, struct counter *, long, int))
{
    double va[BENCH_MAX_REPS], vb[BENCH_MAX_REPS];
    int k = 0;
    errbuf[0] = 0;
    bench_progress("%s: %ld each, %d repetitions ...", bench, n, reps);
    for (; k < reps && !bench_over_budget(); k++) {
        va[k] = run(a, c, n, 1);
        vb[k] = run(a, c, n, 0);
        if (va[k] == 0 || vb[k] == 0)
            break;
    }
    if (k < reps) {
        const char *why = errbuf[0] ? errbuf : "skipped: the program used its time budget";
        bench_emit_error(bench, variant, unit, base, why);
        bench_emit_error(bench, base, unit, base, why);
        if (bench_round())
            bench_emit_error(peer_bench, variant, unit, BENCH_ACTOR_TBB, why);
        return 1;
    }
    bench_emit(bench, base, unit, vb, k, base);
    bench_emit(bench, variant, unit, va, k, base);
    /* The same repetitions against the oneTBB peer's of the same round (another process). */
    if (bench_round())
        bench_emit(peer_bench, variant, unit, va, k, BENCH_ACTOR_TBB);
    return 0;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "actor");
    long calls = bench_actor_calls(), trips = bench_actor_trips();
    int reps = bench_reps();
    const char *wv = getenv("BENCH_WORKERS");
    shoal_config cfg = { 0 };
    cfg.workers = wv && atoi(wv) > 0 ? (unsigned)atoi(wv) : 2;
    cfg.store_bytes = (size_t)256 << 20;
    struct counter c = { 0 };
    pthread_mutex_init(&c.mu, NULL);
    shoal_actor a;
    int rc = shoal_init(&cfg);
    if (rc == 0)
        rc = shoal_actor_create(&c, NULL, NULL, &a);
    if (rc != 0) {
        fail_with("shoal_init / shoal_actor_create", rc);
        bench_emit_error(CALLS_BENCH, ACTOR_V, "Mcalls/s", MUTEX_V, errbuf);
        bench_emit_error(CALLS_BENCH, MUTEX_V, "Mcalls/s", MUTEX_V, errbuf);
        bench_emit_error(TRIP_BENCH, CALL_V, "ns", TASK_V, errbuf);
        bench_emit_error(TRIP_BENCH, TASK_V, "ns", TASK_V, errbuf);
        if (bench_round()) {
            bench_emit_error(BENCH_ACTOR_CALLS_VS_TBB, ACTOR_V, "Mcalls/s", BENCH_ACTOR_TBB, errbuf);
            bench_emit_error(BENCH_ACTOR_TRIP_VS_TBB, CALL_V, "ns", BENCH_ACTOR_TBB, errbuf);
        }
        return 1;
    }
    int failures = 0;
    run_calls(a, &c, calls / 10, 1);   /* warm both paths */
    run_calls(a, &c, calls / 10, 0);
    failures += measure(CALLS_BENCH, BENCH_ACTOR_CALLS_VS_TBB, ACTOR_V, MUTEX_V, "Mcalls/s", a, &c,
                        calls, reps, run_calls_fig);
    failures += measure(TRIP_BENCH, BENCH_ACTOR_TRIP_VS_TBB, CALL_V, TASK_V, "ns", a, &c, trips,
                        reps, run_trip_fig);
    shoal_actor_destroy(a);
    shoal_shutdown();
    pthread_mutex_destroy(&c.mu);
    return failures ? 1 : 0;
}
