/* worker.c - the workers: start (one pinned thread per core, named shoal-w<N>), the loop
 * that finds and runs tasks (own deque, own node's queue, the global queue, then stealing
 * from the same node before other nodes), helping while a task waits, and stop (cancel what
 * has not started, join, free).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/thread.h"
#include "sched_int.h"
#include "timeline.h"

#define QBATCH 16                 /* tasks moved from an injection queue per visit */
#define DEQUE_CAP 256             /* initial ring; it doubles when full */
#define WORKER_STACK ((size_t)64 << 20)

/* ---- finding work ------------------------------------------------------------------------ */

/* Take the oldest task of q and move up to QBATCH - 1 more into w's deque, where w's
 * node-mates can steal them; the queue's flag is held for a bounded time. A node's queue
 * holds only tasks bound to it, the global queue only unbound ones, so the deque items are
 * tagged without reading the tasks, whose lines are fetched in parallel meanwhile. */
static struct shoal_task *from_queue(struct shoal__sched *s, struct shoal__worker *w,
                                     shoal__inject *q, bool bound)
{
    if (!shoal__inject_ready(q) || !shoal__inject_trylock(q))
        return NULL;
    shoal__qlink *got[QBATCH];
    unsigned n = shoal__inject_take(q, got, QBATCH), i = 1;
    for (unsigned k = 0; k < n; k++)
        __builtin_prefetch(got[k]), __builtin_prefetch((char *)got[k] + 64);
    /* Each run starts with a CAS on its task's result slot, which the submitter on another
     * core wrote last: start those misses together now, while the tasks are still ours
     * (once pushed, a thief may run and free one), rather than one at a time as each
     * runs. The first header read waits for its line; the others came meanwhile. */
    shoal__rt_t *rt = s->rt;
    for (unsigned k = 0; k < n; k++) {
        uint64_t idx = shoal__id_idx(((struct shoal_task *)got[k])->result.id);
        if (likely(idx < rt->nslots))
            shoal__prefetchw(&rt->slots[idx]);
    }
    for (; i < n; i++)
        if (unlikely(shoal__deque_push(&w->dq, (shoal__item)got[i] |
                                                   (bound ? SHOAL__ITEM_BOUND : 0))))
            break;
    for (unsigned k = i; k < n; k++)
        shoal__inject_push(q, got[k]);   /* no memory to grow the deque: queue them again */
    shoal__inject_unlock(q);
    if (i > 1)
        shoal__wake_check(s, w->node, bound);
    return n ? (struct shoal_task *)got[0] : NULL;
}

static struct shoal_task *steal_from(struct shoal__worker *w, struct shoal__worker *v,
                                     bool remote)
{
    for (;;) {
        shoal__item x = shoal__deque_steal(&v->dq, remote);
        if (x == SHOAL__DEQUE_ABORT)
            continue;          /* another thief won: the deque moved on, look again */
        if (!x)
            return NULL;
        shoal__wcount(&w->stolen);
        if (w->pub)
            shoal__wcount(&w->pub->tasks_stolen);
        shoal__tl_mark(w->idx, SHOAL__TL_STEAL, v->idx);
        return shoal__untag(x);
    }
}

static inline uint32_t next_rand(struct shoal__worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    return w->rng;
}

SHOAL__COLD static struct shoal_task *steal(struct shoal__sched *s, struct shoal__worker *w)
{
    struct shoal__node *n = &s->n[w->node];
    struct shoal_task *t;
    if (n->nworkers > 1) {
        unsigned start = next_rand(w) % n->nworkers;
        for (unsigned i = 0; i < n->nworkers; i++) {
            struct shoal__worker *v = &s->w[n->members[(start + i) % n->nworkers]];
            if (v != w && (t = steal_from(w, v, false)))
                return t;
        }
    }
    if (s->nnodes > 1) {
        unsigned start = next_rand(w) % s->nworkers;
        for (unsigned i = 0; i < s->nworkers; i++) {
            struct shoal__worker *v = &s->w[(start + i) % s->nworkers];
            if (v->node != w->node && (t = steal_from(w, v, true)))
                return t;
        }
    }
    return NULL;
}

#define QUEUE_FIRST_EVERY 61       /* picks between two looks at the injection queues */

SHOAL__INLINE struct shoal_task *find_task(struct shoal__sched *s, struct shoal__worker *w,
                                           bool fair)
{
    /* Now and then the oldest work goes first, as Go's scheduler looks at its global run
     * queue every 61 ticks: the injection queues, then the far (oldest) end of the own
     * deque, taken as a thief would. Popping only the newest end, a worker whose deque
     * never empties (tasks that resubmit themselves) would starve the tasks it took in a
     * batch from a queue, and those still queued. While helping (fair false) only the
     * queues: an old task of the own deque run inside a wait nests its whole subtree on
     * this stack, keeps every object of the waiting levels alive and delays the waiter
     * (fib(30) on one worker ran at 9 rather than 12 Mtasks/s); the worker loop's picks
     * reach it. */
    if (unlikely(w->tick-- == 0)) {
        w->tick = QUEUE_FIRST_EVERY - 1;
        struct shoal_task *t = from_queue(s, w, &s->n[w->node].q, true);
        if (!t)
            t = from_queue(s, w, &s->global, false);
        if (t)
            return t;
        shoal__item x = fair ? shoal__deque_steal(&w->dq, false) : 0;
        if (x != 0 && x != SHOAL__DEQUE_ABORT)   /* ABORT: a thief won the race; pop below */
            return shoal__untag(x);
    }
    bool more;
    shoal__item x = shoal__deque_take(&w->dq, &more);
    if (likely(x)) {
        if (more)
            shoal__surplus_check(s, w->node);
        return shoal__untag(x);
    }
    struct shoal_task *t = from_queue(s, w, &s->n[w->node].q, true);
    if (!t)
        t = from_queue(s, w, &s->global, false);
    if (!t)
        t = steal(s, w);
    return t;
}

static inline void run(struct shoal__worker *w, struct shoal_task *t)
{
    shoal__task_run(t, w);
}

/* ---- helping: core's waits call this inside tasks ------------------------------------- */

static int help(void)
{
    int wi = shoal__tls.worker;
    struct shoal__sched *s = shoal__sched_of();
    if (wi < 0 || !s || (unsigned)wi >= s->nworkers)
        return 0;
    struct shoal__worker *w = &s->w[wi];
    struct shoal_task *t = find_task(s, w, false);
    if (!t)
        return 0;
    /* Stopping: what has not started is canceled, which also ends the wait of a task
     * that waits for it, so that running tasks finish and shutdown can join. */
    if (unlikely(atomic_load_explicit(&s->stop, memory_order_relaxed)))
        shoal__task_cancel(t, false);
    else
        run(w, t);
    return 1;
}

/* shoal__help_while_hook: help (as above) while slot sl's object of generation gen is
 * pending, with the worker looked up once for the whole wait. */
static void help_while(const shoal__slot *sl, uint64_t gen)
{
    int wi = shoal__tls.worker;
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    struct shoal__sched *s = rt ? rt->sched : NULL;
    if (wi < 0 || !s || (unsigned)wi >= s->nworkers)
        return;
    struct shoal__worker *w = &s->w[wi];
    for (;;) {
        /* acquire: pairs with the completion's release, as in shoal_get. */
        uint64_t x = atomic_load_explicit(&sl->word, memory_order_acquire);
        if (shoal__w_gen(x) != gen || !shoal__w_pending(x) ||
            atomic_load_explicit(&rt->down, memory_order_relaxed) != 0)
            return;
        struct shoal_task *t = find_task(s, w, false);
        if (!t)
            return;
        /* Stopping: as in help. */
        if (unlikely(atomic_load_explicit(&s->stop, memory_order_relaxed)))
            shoal__task_cancel(t, false);
        else
            run(w, t);
    }
}

/* ---- the worker thread ---------------------------------------------------------------- */

struct start_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned started;
};

struct worker_arg {
    struct shoal__worker *w;
    struct start_sync *sync;
    int bind_rc;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    struct shoal__worker *w = a->w;
    struct shoal__sched *s = w->s;
    char name[16];
    snprintf(name, sizeof name, "shoal-w%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    a->bind_rc = shoal__topo_bind_thread(s->rt->topo, w->core);
    shoal__tls_check();
    shoal__tls.worker = (int)w->idx;
    shoal__tls.node = (int)w->node;
    pthread_mutex_lock(&a->sync->mu);
    a->sync->started++;
    pthread_cond_broadcast(&a->sync->cv);
    pthread_mutex_unlock(&a->sync->mu);   /* a and sync are gone after this */

    bool was_idle = false;
    bool spinning = false;   /* counted as one of the node's spinners (park.c) */
    for (;;) {
        if (unlikely(atomic_load_explicit(&s->stop, memory_order_relaxed)))
            break;
        struct shoal_task *t = find_task(s, w, true);
        if (t) {
            if (unlikely(was_idle)) {
                was_idle = false;
                if (spinning) {
                    spinning = false;
                    /* seq_cst: leaving the spinners is part of the idle word's Dekker
                     * pair (sched_int.h): a producer that reads the word after this sees
                     * no spinner and wakes a sleeper itself. */
                    atomic_fetch_sub_explicit(&s->n[w->node].idle, SHOAL__IDLE_SPIN,
                                              memory_order_seq_cst);
                }
                /* The last spinner to find work wakes a sleeper if more is visible, so
                 * that a burst is spread without every producer paying for a wake (Go's
                 * rule). */
                if (shoal__work_visible(s, w))
                    shoal__wake_check(s, w->node, false);
            }
            run(w, t);
            continue;
        }
        if (!shoal__idle(s, w, &spinning))
            break;
        was_idle = true;
    }
    shoal__tls.worker = -1;
    return NULL;
}

/* ---- start / stop ----------------------------------------------------------------------- */

/* The scheduler and its nodes hold the injection queues' rings (1 MiB each): mapped
 * directly, zeroed, so that shutdown hands the memory back to the system whatever the
 * allocator would keep (an ASan quarantine keeps freed blocks resident). What only they
 * point to is mapped too: LeakSanitizer does not look inside our mappings, so a malloc'd
 * block named only from there reads as leaked when a process exits without shutdown. */
static void *zalloc_mapped(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void free_mapped(void *p, size_t n)
{
    if (p)
        munmap(p, n);
}

static void sched_free(struct shoal__sched *s)
{
    if (s->w)
        for (unsigned i = 0; i < s->nworkers; i++)
            if (atomic_load_explicit(&s->w[i].dq.ring, memory_order_relaxed))
                shoal__deque_destroy(&s->w[i].dq);
    if (s->n)
        for (unsigned i = 0; i < s->nnodes; i++)
            free_mapped(s->n[i].members, s->n[i].members_bytes);
    if (s->cpu_worker)
        free_mapped(s->cpu_worker, s->ncpus * sizeof *s->cpu_worker);
    free(s->w);
    free_mapped(s->n, s->nnodes * sizeof *s->n);
    free_mapped(s, sizeof *s);
}

/* CPU number -> the worker pinned there (park.c's wake on the waker's own CPU), for a
 * topology that is this machine. No map (NULL) is only a missed shortcut. */
static void map_cpus(shoal__rt_t *rt, struct shoal__sched *s)
{
    unsigned ncpus = 0;
    if (!shoal__topo_is_real(rt->topo))
        return;
    for (unsigned i = 0; i < s->nworkers; i++) {
        unsigned pu = shoal__topo_core_pu(rt->topo, s->w[i].core);
        if (pu >= ncpus)
            ncpus = pu + 1;
    }
    if (!(s->cpu_worker = zalloc_mapped(ncpus * sizeof *s->cpu_worker)))
        return;
    for (unsigned c = 0; c < ncpus; c++)
        s->cpu_worker[c] = -1;
    for (unsigned i = 0; i < s->nworkers; i++) {   /* two on one CPU: the first */
        unsigned pu = shoal__topo_core_pu(rt->topo, s->w[i].core);
        if (s->cpu_worker[pu] < 0)
            s->cpu_worker[pu] = (int)i;
    }
    s->ncpus = ncpus;
}

static void *zalloc_aligned(size_t n)
{
    size_t sz = (n + SHOAL__CACHELINE - 1) & ~(size_t)(SHOAL__CACHELINE - 1);
    void *p = aligned_alloc(SHOAL__CACHELINE, sz);
    if (p)
        memset(p, 0, sz);
    return p;
}

/* Give each worker its line of the segment's per-worker counters (layout/mpseg.h), which
 * tools read from another process (shoal-stat): where it runs now, counts from then on. */
static void publish_lines(shoal__rt_t *rt, struct shoal__sched *s)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    struct shoal__wstat *pub = shoal__wstats(rt);
    if (!x || !pub)
        return;
    unsigned n = s->nworkers < SHOAL__MAX_WSTATS ? s->nworkers : SHOAL__MAX_WSTATS;
    for (unsigned i = 0; i < n; i++) {
        struct shoal__worker *w = &s->w[i];
        pub[i].node = (int32_t)w->node;
        pub[i].cpu = (int32_t)shoal__topo_core_pu(rt->topo, w->core);
        w->pub = &pub[i];
        w->runc = &pub[i].tasks_run;   /* before any task runs: sched start */
    }
    /* release: pairs with the acquire load of nworkers in tools/shoal-stat.c, which then
     * reads node and cpu. */
    atomic_store_explicit(&x->nworkers, n, memory_order_release);
}

int shoal__sched_start(shoal__rt_t *rt, unsigned workers)
{
    if (workers == 0)
        workers = 1;
    struct shoal__sched *s = zalloc_mapped(sizeof *s);
    if (!s)
        return shoal__err(SHOAL_ENOMEM, "out of memory for the scheduler");
    s->rt = rt;
    atomic_init(&s->open, 1);
    s->nworkers = workers;
    s->nnodes = rt->nnodes ? rt->nnodes : 1;
    s->w = zalloc_aligned(workers * sizeof *s->w);
    s->n = zalloc_mapped(s->nnodes * sizeof *s->n);
    int rc = SHOAL_ENOMEM;
    if (!s->w || !s->n)
        goto nomem;
    shoal__inject_init(&s->global);
    for (unsigned i = 0; i < workers; i++) {
        struct shoal__worker *w = &s->w[i];
        w->s = s;
        w->idx = i;
        w->runc = &w->run;
        w->core = shoal__topo_worker_core(rt->topo, i);
        w->node = shoal__topo_core_node(rt->topo, w->core);
        if (w->node >= s->nnodes)
            w->node = 0;
        w->home = &s->n[w->node];
        w->rng = 0x9e3779b9u * (i + 1);
        s->n[w->node].nworkers++;
        if ((rc = shoal__deque_init(&w->dq, DEQUE_CAP)))
            goto fail;
    }
    for (unsigned k = 0; k < s->nnodes; k++) {
        struct shoal__node *n = &s->n[k];
        shoal__inject_init(&n->q);
        n->spin_limit = n->nworkers / 2 ? n->nworkers / 2 : 1;
        n->members_bytes = (n->nworkers ? n->nworkers : 1) * sizeof *n->members;
        n->members = zalloc_mapped(n->members_bytes);
        if (!n->members)
            goto nomem;
        n->nworkers = 0;
    }
    for (unsigned i = 0; i < workers; i++) {
        struct shoal__node *n = &s->n[s->w[i].node];
        n->members[n->nworkers++] = i;
    }
    if ((rc = shoal__pool_start()))
        goto fail;
    shoal__sched_deps_init();
    map_cpus(rt, s);   /* before the workers exist: they only read it */
    publish_lines(rt, s);
    rt->sched = s;
    shoal__help_hook = help;
    shoal__help_while_hook = help_while;
    shoal__run_own_hook = shoal__run_own;
    shoal__nap_init();
    shoal__nap_hook = shoal__nap;

    struct start_sync sync = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    struct worker_arg *args = calloc(workers, sizeof *args);
    if (!args)
        return shoal__err(SHOAL_ENOMEM, "out of memory for the workers");   /* stop cleans */
    /* Waiting inside a task runs other tasks on the same stack (help), so a worker's stack
     * grows with the depth of nested waits: give it room (address space, touched lazily). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    unsigned created = 0;
    for (; created < workers; created++) {
        args[created] = (struct worker_arg){ &s->w[created], &sync, 0 };
        if (pthread_create(&s->w[created].th, &attr, worker_main, &args[created]))
            break;
        s->w[created].started = true;
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_lock(&sync.mu);
    while (sync.started < created)
        pthread_cond_wait(&sync.cv, &sync.mu);
    pthread_mutex_unlock(&sync.mu);
    if (created < workers) {
        free(args);
        return shoal__err(SHOAL_ENOMEM, "cannot start worker %u of %u (thread creation "
                                        "failed): use fewer workers", created, workers);
    }
    unsigned simulated = 0, failed = 0;
    for (unsigned i = 0; i < workers; i++) {
        simulated += args[i].bind_rc == 1;
        failed += args[i].bind_rc < 0;
    }
    free(args);
    if (failed)
        shoal__log("%u of %u workers could not be pinned to their core and run unpinned",
                   failed, workers);
    else if (simulated && shoal__topo_is_real(rt->topo))
        shoal__log("workers run unpinned: this system does not support thread binding");
    return 0;

nomem:
    rc = shoal__err(SHOAL_ENOMEM, "out of memory for the scheduler");
fail:
    sched_free(s);
    return rc;
}

/* ---- shutdown --------------------------------------------------------------------------- */

static size_t drain(struct shoal__sched *s)
{
    size_t n = 0;
    for (unsigned i = 0; i < s->nworkers; i++) {
        shoal__item x;
        bool more;
        while ((x = shoal__deque_take(&s->w[i].dq, &more))) {
            shoal__task_cancel(shoal__untag(x), false);
            n++;
        }
    }
    for (unsigned k = 0; k <= s->nnodes; k++) {
        shoal__inject *q = k < s->nnodes ? &s->n[k].q : &s->global;
        shoal__qlink *l;
        while (shoal__inject_take(q, &l, 1)) {
            shoal__task_cancel((struct shoal_task *)l, false);
            n++;
        }
    }
    return n;
}

/* A block still in use after the drain is a task waiting for a dependency that nobody
 * will complete now, a task a late completion dropped (DROPPED), or one this thread made
 * runnable meanwhile (pending 0, queued: the next drain takes it). The CAS decides between
 * this thread and a late completion on another thread (submit.c); losing it means the task
 * changed meanwhile: report progress so that the walk runs again. */
static bool cancel_waiting(struct shoal_task *t)
{
    uint8_t st = SHOAL__TS_DROPPED;
    if (!atomic_compare_exchange_strong_explicit(&t->state, &st, SHOAL__TS_ZOMBIE,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        if (st != SHOAL__TS_LIVE || atomic_load_explicit(&t->pending, memory_order_relaxed) <= 0)
            return false;
        if (!atomic_compare_exchange_strong_explicit(&t->state, &st, SHOAL__TS_ZOMBIE,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed))
            return true;
    }
    shoal__task_cancel(t, true);
    return true;
}

__thread bool shoal__stopping __attribute__((tls_model("initial-exec")));

void shoal__sched_stop(shoal__rt_t *rt)
{
    struct shoal__sched *s = rt->sched;
    if (!s)
        return;
    /* seq_cst: a worker announcing sleep re-checks stop after its announcement. */
    atomic_store_explicit(&s->stop, 1, memory_order_seq_cst);
    shoal__wake_all(s);
    /* The lifecycle lock stays held while we join: an exiting worker's thread-exit hooks
     * (core/thread.c, stats.c, pool.c) take only their own registry locks. Holding it
     * keeps a second shoal_shutdown (or an init) out until this one is done. */
    for (unsigned i = 0; i < s->nworkers; i++)
        if (s->w[i].started)
            pthread_join(s->w[i].th, NULL);
    shoal__stopping = true;
    /* Threads outside the scheduler may still complete objects (the I/O thread stops after
     * the scheduler): from now on the tasks they make runnable are dropped, not queued. */
    atomic_store_explicit(&s->open, 0, memory_order_seq_cst);
    shoal__sched_quiesce();
    /* Cancel until nothing is left: each cancellation completes a result, which may make
     * dependents runnable (queued) or leave them waiting (found by the block walk). */
    while (drain(s) + shoal__pool_each_live(cancel_waiting) != 0)
        ;
    /* Every actor call is canceled now: destroy(state) of the actors still alive. */
    shoal__actors_stop();
    __atomic_store_n(&rt->sched, NULL, __ATOMIC_SEQ_CST);
    shoal__sched_quiesce();
    shoal__help_hook = NULL;
    shoal__help_while_hook = NULL;
    shoal__run_own_hook = NULL;
    shoal__nap_hook = NULL;
    shoal__pool_stop();
    sched_free(s);
    shoal__stopping = false;
}

void shoal__sched_release(void) { shoal__pool_release(); }

/* ---- queries -------------------------------------------------------------------------------- */

void shoal__sched_info(shoal_info *out)
{
    struct shoal__sched *s = shoal__sched_of();
    if (!s)
        return;
    out->workers = s->nworkers;
    out->tasks_run = atomic_load_explicit(&s->run_here, memory_order_relaxed);
    for (unsigned i = 0; i < s->nworkers; i++) {
        out->tasks_run += atomic_load_explicit(&s->w[i].run, memory_order_relaxed);
        if (s->w[i].runc != &s->w[i].run)
            out->tasks_run += atomic_load_explicit(s->w[i].runc, memory_order_relaxed);
        out->tasks_stolen += atomic_load_explicit(&s->w[i].stolen, memory_order_relaxed);
    }
}

int shoal__sched_worker_node(unsigned w)
{
    struct shoal__sched *s = shoal__sched_of();
    if (!s)
        return shoal__err(SHOAL_ENOTINIT, "no scheduler in this process: call shoal_init() "
                                          "first (attached clients have no workers)");
    if (w >= s->nworkers)
        return shoal__err(SHOAL_EINVAL, "worker %u does not exist: there are %u workers "
                                        "(0..%u)", w, s->nworkers, s->nworkers - 1);
    return (int)s->w[w].node;
}

SHOAL_API int shoal_worker_node(unsigned worker)
{
    SHOAL__CALL(shoal__sched_worker_node(worker));
}
