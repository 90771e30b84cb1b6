/* sched_int.h - the scheduler's private state (workers, NUMA nodes, queues) and the inline
 * halves of scheduling a task and waking a worker. Shared by the files of sched/.
 *
 * Where a runnable task waits:
 *   - its worker's deque, when a worker submitted it or completed its last dependency
 *     (any worker of the node may steal it; a worker of another node only if it is not
 *     bound, which the deque item's tag says);
 *   - its node's injection queue, when it is bound to a node (opts.numa_node, or the node
 *     holding most of its REF arguments' bytes) and was made runnable elsewhere; only that
 *     node's workers take from it;
 *   - the global injection queue, when a foreign thread made an unbound task runnable.
 *
 * Idle workers (park.c): each node has one word counting its spinning workers (low half)
 * and sleeping workers (high half). A worker announces sleep with a seq_cst read-modify-
 * write of that word and then re-checks every queue it may take from (seq_cst loads); a
 * producer publishes a task and then loads the word. A producer that sees a spinner, or
 * nobody asleep, makes no syscall.
 *   - Injection queues: the producer's exchange is seq_cst, so one of the two sides sees
 *     the other (Dekker): a queued task is never left with every eligible worker asleep.
 *   - Deques: the push is a plain release store (a fence per task would cost more than the
 *     rest of the push), so a worker going to sleep at that very moment may miss it. The
 *     task is not stranded: its deque's owner is awake and runs it before it idles or
 *     waits (waiting helps, which takes from the own deque first). Only parallelism could
 *     be lost, and the owner restores it: each time it takes a task and more remain, it
 *     re-reads the idle word and wakes a sleeper (shoal__surplus_check), long after its
 *     store has become visible.
 */
#ifndef SHOAL_SCHED_SCHED_INT_H
#define SHOAL_SCHED_SCHED_INT_H

#include <pthread.h>
#include <string.h>

#include "deque.h"
#include "inject.h"
#include "sched.h"
#include "task.h"
#include "../os/topo.h"
#include "../layout/mpseg.h"

#define SHOAL__IDLE_SPIN  UINT64_C(1)
#define SHOAL__IDLE_SLEEP (UINT64_C(1) << 32)

struct shoal__worker {
    shoal__deque dq;
    _Alignas(SHOAL__CACHELINE) struct shoal__sched *s;   /* read-mostly: thieves read node */
    unsigned idx, node, core;
    pthread_t th;
    bool started;
    _Alignas(SHOAL__CACHELINE) uint32_t rng;  /* owner-written: victim selection */
    uint32_t tick;                      /* owner-written: picks until the queues go first */
    _Atomic uint64_t run, stolen;       /* written by the owner only (relaxed), summed by info */
    _Atomic uint64_t *runc;             /* where a task run is counted: &run, or the published
                                           line's tasks_run once there is one (one counter a
                                           task, not two; info adds both) */
    struct shoal__node *home;           /* &s->n[node]: the submit path's wake check reads
                                           its idle word without an index computed (a
                                           node is over a megabyte: no shift of a load) */
    struct shoal__wstat *pub;           /* this worker's line of the counters the segment
                                           publishes for tools (shoal-stat), or NULL */
    bool yield_once;                    /* owner-only: woken by a thread on its own CPU,
                                           which waits for that CPU (park.c) */
    /* Written by the worker and read by wakers (park.c, a wake on the waker's own CPU). */
    _Alignas(SHOAL__CACHELINE) _Atomic uint32_t parked;   /* in shoal__idle's futex wait */
    _Atomic uint32_t woken_here;        /* set by a waker on this worker's CPU */
};

/* Count one event on a counter only its worker writes: a relaxed load and store, no
 * read-modify-write (readers, in this process or another, only need an untorn value). */
static inline void shoal__wcount(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

struct shoal__node {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t idle;   /* spinning | sleeping << 32 */
    _Atomic uint32_t seq;               /* futex word: bumped by every wake */
    _Atomic uint32_t seen;              /* seq as a sleeper last saw it (park.c): a wake
                                           is in flight while it differs from seq */
    unsigned nworkers, spin_limit;
    unsigned *members;                  /* worker indices of this node (mapped) */
    size_t members_bytes;               /* length of that mapping */
    shoal__inject q;                    /* tasks bound to this node */
};

struct shoal__sched {
    shoal__rt_t *rt;
    unsigned nworkers, nnodes;
    _Atomic int stop;
    _Atomic int open;                   /* 0: tasks made runnable outside are dropped */
    struct shoal__worker *w;
    struct shoal__node *n;
    int *cpu_worker;                    /* CPU number -> the worker pinned there, or -1;
                                           NULL when workers are not pinned (park.c) */
    unsigned ncpus;                     /* entries of cpu_worker */
    shoal__inject global;               /* unbound tasks from foreign threads */
    /* Tasks their submitter ran in shoal_get (shoal__run_own); its own line, written by
     * foreign threads only, so that workers polling `stop` keep theirs shared. */
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t run_here;
};

/* A deque item: the task pointer tagged with "bound to this node" (deque.h). */
static inline shoal__item shoal__tag(struct shoal_task *t)
{
    return (shoal__item)t | ((t->flags & SHOAL__TF_BOUND) ? SHOAL__ITEM_BOUND : 0);
}
static inline struct shoal_task *shoal__untag(shoal__item x)
{
    return (struct shoal_task *)(x & ~SHOAL__ITEM_BOUND);
}

/* ---- park.c ------------------------------------------------------------------------------- */
SHOAL__HIDDEN void shoal__wake_node(struct shoal__sched *s, unsigned node);
SHOAL__HIDDEN void shoal__wake_any(struct shoal__sched *s, unsigned prefer);
SHOAL__HIDDEN void shoal__wake_all(struct shoal__sched *s);   /* stop */
/* Idle worker: spin, then sleep until work it may run is visible. false once stopping.
 * *spinning in and out: whether the worker is counted as one of its node's spinners; it
 * returns so counted after seeing work while spinning, and the worker drops the count once
 * it has a task (worker.c), or comes back here still counted. */
SHOAL__HIDDEN bool shoal__idle(struct shoal__sched *s, struct shoal__worker *w, bool *spinning);
SHOAL__HIDDEN bool shoal__work_visible(struct shoal__sched *s, struct shoal__worker *w);
/* shoal__nap_hook (core/store.h): a worker waiting inside a task sleeps until the completion
 * word moves, work reaches its node, or ns pass; counted as sleeping meanwhile. */
SHOAL__HIDDEN bool shoal__nap(_Atomic uint32_t *word, uint32_t seen, uint64_t ns);
SHOAL__HIDDEN void shoal__nap_init(void);   /* at scheduler start */

/* After publishing a task for `node` (bound) or for anyone: wake a sleeper only if no
 * eligible worker spins and one sleeps. Fast path: one plain load, no syscall. */
static inline void shoal__wake_check_at(struct shoal__sched *s, struct shoal__node *n,
                                        unsigned node, bool bound)
{
    /* seq_cst: the producer's half of the Dekker pair described at the top (a plain load
     * on x86; what orders it after an injection is the exchange before it). */
    uint64_t v = atomic_load_explicit(&n->idle, memory_order_seq_cst);
    if (likely(bound || s->nnodes == 1)) {
        if (unlikely((uint32_t)v == 0 && (v >> 32) != 0))
            shoal__wake_node(s, node);
        return;
    }
    shoal__wake_any(s, node);
}
static inline void shoal__wake_check(struct shoal__sched *s, unsigned node, bool bound)
{
    shoal__wake_check_at(s, &s->n[node], node, bound);
}
/* For unbound work that worker w published (its own deque): through w's node pointer. */
static inline void shoal__wake_check_own(struct shoal__sched *s, struct shoal__worker *w)
{
    shoal__wake_check_at(s, w->home, w->node, false);
}

/* The owner took a task and its deque still holds more: the backstop described at the
 * top. relaxed: a hint; a stale value is corrected at the next take. */
static inline void shoal__surplus_check(struct shoal__sched *s, unsigned node)
{
    uint64_t v = atomic_load_explicit(&s->n[node].idle, memory_order_relaxed);
    if (likely((v >> 32) == 0 || (uint32_t)v != 0))
        return;
    if (s->nnodes == 1)
        shoal__wake_node(s, node);
    else
        shoal__wake_any(s, node);
}

/* ---- submit.c ----------------------------------------------------------------------------- */
/* Make t runnable from the calling thread: its own deque when it is a worker allowed to
 * run t, else the right injection queue; then wake someone if needed. */
SHOAL__HIDDEN void shoal__task_ready(struct shoal__sched *s, struct shoal_task *t);

/* shoal_submit and shoal_actor_submit (actor NULL: a plain task); who names the call in
 * messages. */
SHOAL__HIDDEN int shoal__submit(const char *who, struct shoal__actor *actor, shoal_fn fn,
                                const shoal_arg args[], size_t nargs,
                                const shoal_task_opts *opts, shoal_ref *out);

/* The node opts asks for (-1 any; opts may be NULL), or SHOAL_EINVAL (unknown flags, a
 * nonzero reserved field, a node that does not exist or has no worker). */
SHOAL__HIDDEN int shoal__task_opts_node(const char *who, const shoal_task_opts *opts,
                                        int *node);

/* shoal__run_own_hook (core/store.h): the calling thread, not a worker, is about to wait
 * for ref; if ref is the result of the task it submitted last and that task is still the
 * oldest of the global queue, take it and run it here. 1 if it ran a task. */
SHOAL__HIDDEN int shoal__run_own(shoal_ref ref);

/* Shutdown: wait until no thread outside the scheduler is making a task runnable (after
 * closing the scheduler to them: open = 0, or rt->sched = NULL). */
SHOAL__HIDDEN void shoal__sched_quiesce(void);
/* Name the function that fires a task's dependency records to core (shoal__dep_kind_set);
 * at each start, before anything is submitted. */
SHOAL__HIDDEN void shoal__sched_deps_init(void);

/* ---- worker.c ----------------------------------------------------------------------------- */
/* True on the thread inside shoal__sched_stop: its completions queue tasks directly. */
SHOAL__HIDDEN extern __thread bool shoal__stopping __attribute__((tls_model("initial-exec")));

/* memcpy, with the common word-sized values (a count, a sum: a task's argument or result)
 * copied inline: the call to memcpy cost more than the copy. */
static inline void shoal__copy_bytes(void *dst, const void *src, size_t len)
{
    if (len == 8)
        memcpy(dst, src, 8);
    else if (len == 4)
        memcpy(dst, src, 4);
    else if (len)
        memcpy(dst, src, len);
}

static inline struct shoal__sched *shoal__sched_of(void)
{
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    return rt ? rt->sched : NULL;
}

#endif
