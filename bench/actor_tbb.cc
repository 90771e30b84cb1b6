/* actor_tbb.cc - the oneTBB peer of bench/actor. oneTBB has no actor; its nearest construct
 * is a flow-graph function_node of serial concurrency: calls put to it run one at a time, in
 * arrival order, on the arena's threads, each seeing the node's state. Driven as bench/actor
 * drives a shoal actor: n calls submitted from one thread (each adds to a counter), then the
 * round trip of one call (put it, wait for the graph). run.sh runs the two programs
 * alternately; these records are the baseline of bench/actor's "vs oneTBB" groups.
 */
#include <atomic>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

#include "bench.h"
#include "tbb_pin.h"

struct state {
    long value = 0;   /* touched by one call at a time: the node is serial */
};

using node_t = tbb::flow::function_node<long, tbb::flow::continue_msg>;

/* Mcalls/s of n calls put from this thread, until the graph has run them all. */
static double run_calls(tbb::flow::graph &g, node_t &node, long n)
{
    uint64_t t0 = bench_ns();
    for (long i = 0; i < n; i++)
        node.try_put(i);
    g.wait_for_all();
    return (double)n / ((double)(bench_ns() - t0) / 1e3);
}

/* ns per round trip: put one call and wait for the graph (the caller may run it). */
static double run_trip(tbb::flow::graph &g, node_t &node, long n)
{
    uint64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        node.try_put(i);
        g.wait_for_all();
    }
    return (double)(bench_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "actor_tbb");
    const char *wv = getenv("BENCH_WORKERS");
    int workers = wv && atoi(wv) > 0 ? atoi(wv) : 2;
    long calls = bench_actor_calls(), trips = bench_actor_trips();
    int reps = bench_reps();
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, (size_t)workers);
    tbb::task_arena arena(workers);
    pin_observer pin(arena);
    double vc[BENCH_MAX_REPS] = { 0 }, vt[BENCH_MAX_REPS] = { 0 };
    int k = 0;
    long expect = 0, got = 0;
    arena.execute([&] {
        state s;
        tbb::flow::graph g;
        node_t node(g, tbb::flow::serial, [&s](long) {
            s.value++;
            return tbb::flow::continue_msg();
        });
        run_calls(g, node, calls / 10);   /* warm up, as bench/actor does */
        expect += calls / 10;
        bench_progress("%s / %s: %ld calls, %ld round trips, %d repetitions ...",
                       BENCH_ACTOR_CALLS_VS_TBB, BENCH_ACTOR_TRIP_VS_TBB, calls, trips, reps);
        for (; k < reps && !bench_over_budget(); k++) {
            vc[k] = run_calls(g, node, calls);
            vt[k] = run_trip(g, node, trips);
            expect += calls + trips;
        }
        got = s.value;
    });
    if (k < reps || got != expect) {
        const char *why = got != expect ? "the node lost or repeated calls"
                                        : "skipped: the program used its time budget";
        bench_emit_error(BENCH_ACTOR_CALLS_VS_TBB, BENCH_ACTOR_TBB, "Mcalls/s", BENCH_ACTOR_TBB, why);
        bench_emit_error(BENCH_ACTOR_TRIP_VS_TBB, BENCH_ACTOR_TBB, "ns", BENCH_ACTOR_TBB, why);
        return 1;
    }
    bench_emit(BENCH_ACTOR_CALLS_VS_TBB, BENCH_ACTOR_TBB, "Mcalls/s", vc, k, BENCH_ACTOR_TBB);
    bench_emit(BENCH_ACTOR_TRIP_VS_TBB, BENCH_ACTOR_TBB, "ns", vt, k, BENCH_ACTOR_TBB);
    return 0;
}
