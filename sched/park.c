/* park.c - idle workers: spin briefly (a handoff to a spinning worker costs ~0.2 us), then
 * sleep on their node's futex (a wake costs ~11 us, so producers call futex_wake only when
 * the node's idle word says someone sleeps and nobody spins). The Dekker argument that no
 * task is left behind is in sched_int.h. A worker waiting inside a task sleeps the same
 * way, on its node's futex and the completion futex at once (futex_waitv).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../core/stats.h"
#include "../os/futex.h"
#include "sched_int.h"
#include "timeline.h"

/* How long an idle worker spins before sleeping: long enough that back-to-back pings and
 * the gaps of a bursty DAG never pay a wake, short enough to be invisible when idle. */
#define SPIN_NS 20000
#define YIELD_AFTER_NS 5000


/* A wake in flight: a waker bumped seq and woke a sleeper that has not come back yet (the
 * woken thread may wait milliseconds for a core on a loaded machine). Until a sleeper comes
 * back, or another goes to sleep, every further submit would wake again, one system call
 * each, for nothing: the woken one looks for work when it comes back. A sleeper "sees" seq
 * (observe) before its last re-check and whenever it leaves the sleeping state; a waker
 * that finds seen behind seq leaves the wake to the one in flight.
 * No task is left behind: the waker published its task before it reads seq and seen
 * (seq_cst), the sleeper stores seen before it looks at the queues (seq_cst), so either
 * the waker reads the new seen and wakes, or the sleeper's look finds the task. seen lags
 * seq only while some sleeper is yet to observe: one that read seq before a bump sleeps on
 * the old value, so its futex_wait returns at once, and every exit from the sleeping state
 * observes. The woken worker spreads what it finds (Go's rule, worker.c and shoal__nap). */
static inline uint32_t observe(struct shoal__node *n)
{
    /* seq_cst load and store: the sleeper's half of the pair described above; the load is
     * also an acquire of the wakers' bumps. */
    uint32_t seq = atomic_load_explicit(&n->seq, memory_order_seq_cst);
    atomic_store_explicit(&n->seen, seq, memory_order_seq_cst);
    return seq;
}

/* Which sleeper a wake picks. Waking a thread on another CPU costs the waker an
 * inter-processor interrupt, which in a VM is an exit to the hypervisor: 16-18 us measured
 * on a 2-vCPU machine of this kind, where waking a thread of its own CPU took 6-8 us,
 * the woken thread's run until it slept again included (the kernel itself puts a woken
 * thread that may run anywhere on the waker's CPU, which is what a bare futex hand-off
 * between two threads measures). Workers are pinned, so the kernel cannot choose: when the
 * waker is a thread outside the workers (a worker's own CPU runs that worker) and the worker
 * pinned to its CPU sleeps here, the wake names that one (each worker sleeps under its own
 * futex bit). It then runs on the waker's CPU: either later (a getter of the task runs it
 * itself meanwhile, submit.c), or at once, preempting the waker, and then it gives the CPU
 * back as soon as it finds nothing more to take (yield_once) rather than spin on it. */
static inline uint32_t wake_bit(const struct shoal__worker *w) { return 1u << (w->idx % 32); }

static struct shoal__worker *sleeper_here(struct shoal__sched *s, unsigned node)
{
    if (!s->cpu_worker)
        return NULL;
    int cpu = sched_getcpu();   /* glibc reads it from rseq: no system call */
    if (cpu < 0 || (unsigned)cpu >= s->ncpus || s->cpu_worker[cpu] < 0)
        return NULL;
    struct shoal__worker *w = &s->w[s->cpu_worker[cpu]];
    /* relaxed: a hint; a stale value costs a plain wake (below), never a lost one. */
    if (w->node != node || !atomic_load_explicit(&w->parked, memory_order_relaxed))
        return NULL;
    return w;
}

void shoal__wake_node(struct shoal__sched *s, unsigned node)
{
    struct shoal__node *n = &s->n[node];
    /* seq_cst: the waker's half of the pair with observe (above); seq first. */
    uint32_t seq = atomic_load_explicit(&n->seq, memory_order_seq_cst);
    if (atomic_load_explicit(&n->seen, memory_order_seq_cst) != seq)
        return;
    shoal__count(SHOAL__CNT_WORKER_WAKE);   /* shoal_stats.worker_wakes */
    /* seq_cst: a release that pairs with the load of seq before a sleeper's last re-check
     * (a sleeper that read the old value is still before its futex_wait, which then
     * returns), and ordered with the loads above in the pair with observe. */
    atomic_fetch_add_explicit(&n->seq, 1, memory_order_seq_cst);
    /* One sleeper is woken either way: the one on this CPU if it still sleeps, else any.
     * woken_here may be left set on a worker that was not asleep after all: it then
     * yields once needlessly. relaxed: a hint, read by the worker after its wait. */
    struct shoal__worker *here = sleeper_here(s, node);
    if (here) {
        atomic_store_explicit(&here->woken_here, 1, memory_order_relaxed);
        if (shoal__futex_wake_bits(&n->seq, 1, wake_bit(here)) > 0)
            return;
    }
    shoal__futex_wake(&n->seq, 1, false);
}

void shoal__wake_all(struct shoal__sched *s)
{
    for (unsigned k = 0; k < s->nnodes; k++) {
        /* release: as in shoal__wake_node. */
        atomic_fetch_add_explicit(&s->n[k].seq, 1, memory_order_release);
        shoal__futex_wake(&s->n[k].seq, INT32_MAX, false);
    }
}

void shoal__wake_any(struct shoal__sched *s, unsigned prefer)
{
    unsigned target = UINT_MAX;
    for (unsigned i = 0; i < s->nnodes; i++) {
        unsigned n = (prefer + i) % s->nnodes;
        /* seq_cst: as in shoal__wake_check. */
        uint64_t v = atomic_load_explicit(&s->n[n].idle, memory_order_seq_cst);
        if ((uint32_t)v != 0)
            return;           /* a spinner anywhere will find an unbound task */
        if ((v >> 32) != 0 && target == UINT_MAX)
            target = n;
    }
    if (target != UINT_MAX)
        shoal__wake_node(s, target);
}

/* Whether any deque w may steal from (or its own) holds a task. */
static bool deques_have_work(struct shoal__sched *s, struct shoal__worker *w)
{
    struct shoal__node *n = &s->n[w->node];
    for (unsigned i = 0; i < n->nworkers; i++)
        if (shoal__deque_has_work(&s->w[n->members[i]].dq, false))
            return true;
    if (s->nnodes > 1)
        for (unsigned i = 0; i < s->nworkers; i++)
            if (s->w[i].node != w->node && shoal__deque_has_work(&s->w[i].dq, true))
                return true;
    return false;
}

/* What a spinning worker polls: shoal__work_visible with the queues' hints (inject.h). */
static bool work_hint(struct shoal__sched *s, struct shoal__worker *w)
{
    return atomic_load_explicit(&s->stop, memory_order_relaxed) ||
           shoal__inject_ready(&s->n[w->node].q) || shoal__inject_ready(&s->global) ||
           deques_have_work(s, w);
}

bool shoal__work_visible(struct shoal__sched *s, struct shoal__worker *w)
{
    /* seq_cst loads throughout (deque.h's has_work too): the sleeper's half of the Dekker
     * pair. */
    return atomic_load_explicit(&s->stop, memory_order_seq_cst) ||
           shoal__inject_nonempty(&s->n[w->node].q) || shoal__inject_nonempty(&s->global) ||
           deques_have_work(s, w);
}

/* Set when the kernel has no futex_waitv (before Linux 5.16), or SHOAL_NO_FUTEX_WAITV is
 * set (tests): waiting workers then nap on the completion futex alone and look for work
 * between naps (core/wait.c). */
static _Atomic int no_waitv;

void shoal__nap_init(void)
{
    atomic_store_explicit(&no_waitv, shoal__env_flag("SHOAL_NO_FUTEX_WAITV", false),
                          memory_order_relaxed);
}

bool shoal__nap(_Atomic uint32_t *word, uint32_t seen, uint64_t ns)
{
#ifdef SHOAL__HAVE_FUTEX_WAITV
    struct shoal__sched *s = shoal__sched_of();
    int wi = shoal__tls.worker;
    /* Stopping: work_visible stays true, which would make this return at once for as long
     * as the awaited object takes (an I/O, a seal); the caller's 1 ms nap instead. */
    if (atomic_load_explicit(&no_waitv, memory_order_relaxed) || !s || wi < 0 ||
        (unsigned)wi >= s->nworkers || atomic_load_explicit(&s->stop, memory_order_relaxed))
        return false;
    struct shoal__worker *w = &s->w[wi];
    struct shoal__node *n = &s->n[w->node];
    /* Counted as sleeping, so that a producer with work for this node wakes us. seq_cst:
     * the sleeper's half of the Dekker pair, as in shoal__idle. */
    atomic_fetch_add_explicit(&n->idle, SHOAL__IDLE_SLEEP, memory_order_seq_cst);
    uint32_t nseq = observe(n);
    bool handled = true, slept = false;
    if (!shoal__work_visible(s, w)) {
        uint64_t at = shoal__now_ns() + ns;   /* futex_waitv takes an absolute time */
        struct timespec ts = shoal__timespec_ns(at);
        /* The node's word is private (shoal__wake_node); the completion word is shared by
         * every process attached to the store (core/object.c). */
        shoal__tl_mark(w->idx, SHOAL__TL_PARK, 0);
        if (w->pub)
            shoal__wcount(&w->pub->parks);
        if (shoal__futex_wait2(&n->seq, nseq, word, seen, &ts) < 0 &&
            errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) {
            atomic_store_explicit(&no_waitv, 1, memory_order_relaxed);
            handled = false;   /* the caller sleeps on word alone, now and from now on */
        }
        slept = true;
        observe(n);   /* back: a wake in flight may have been ours */
    }
    atomic_fetch_sub_explicit(&n->idle, SHOAL__IDLE_SLEEP, memory_order_seq_cst);
    /* Go's rule, as in the worker loop: a wake we took may have been meant for more work
     * than we will run (we may go back to our own task): spread what is visible. */
    if (slept && shoal__work_visible(s, w))
        shoal__wake_check(s, w->node, false);
    return handled;
#else
    (void)word, (void)seen, (void)ns;
    return false;
#endif
}

bool shoal__idle(struct shoal__sched *s, struct shoal__worker *w, bool *spinning)
{
    struct shoal__node *n = &s->n[w->node];
    uint64_t v;
    bool spin = *spinning;   /* still counted as a spinner since its last return */
    /* At most spin_limit workers of a node spin at once; the others sleep at once, so an
     * idle runtime on a busy machine does not steal cycles from the threads that feed it. */
    if (!spin) {
        v = atomic_load_explicit(&n->idle, memory_order_relaxed);
        do {
            spin = (uint32_t)v < n->spin_limit;
            /* seq_cst: announcing idleness is the sleeper's half of the Dekker pair. */
        } while (!atomic_compare_exchange_weak_explicit(
            &n->idle, &v, v + (spin ? SHOAL__IDLE_SPIN : SHOAL__IDLE_SLEEP),
            memory_order_seq_cst, memory_order_relaxed));
    }
    *spinning = false;
    for (;;) {
        if (spin) {
            uint64_t t0 = shoal__now_ns();
            /* relaxed, here and below: a hint that work passes by (see the loop). */
            uint64_t seen = atomic_load_explicit(&s->global.deq, memory_order_relaxed);
            for (unsigned i = 1;; i++) {
                if (work_hint(s, w)) {
                    /* Still counted as spinning until the worker has a task (worker.c):
                     * a producer that comes meanwhile sees a spinner and wakes nobody, as
                     * Go's spinning Ms stay counted until they find work. A task from
                     * another thread's own submit is often gone before this worker gets
                     * to it (submit.c, shoal__run_own); leaving the count then re-entering
                     * it left a window in which that thread's next submit woke a sleeper. */
                    *spinning = true;
                    return !atomic_load_explicit(&s->stop, memory_order_relaxed);
                }
                if (unlikely(w->yield_once)) {
                    /* Woken by a thread of this CPU, which now waits for it: nothing is
                     * left to take, so give the CPU back before spinning on it. */
                    w->yield_once = false;
                    sched_yield();
                    continue;
                }
                shoal__cpu_relax();
                if ((i & 63) == 0) {
                    /* A thread that submits and runs its own tasks (submit.c,
                     * shoal__run_own) takes them from the global queue before this
                     * spinner sees them: the queue moving is activity all the same, and
                     * keeps this worker spinning, so that its submits find a spinner and
                     * wake nobody (a sleep here would cost that thread a wake-up on its
                     * next submit). */
                    uint64_t d = atomic_load_explicit(&s->global.deq, memory_order_relaxed);
                    if (d != seen) {
                        seen = d;
                        t0 = shoal__now_ns();
                    }
                    uint64_t spun = shoal__now_ns() - t0;
                    if (spun > SPIN_NS)
                        break;
                    /* Past the first few microseconds (a ping's round trip), a spinner
                     * must not starve the thread that feeds it when there are fewer cores
                     * than runnable threads: let it run. */
                    if (spun > YIELD_AFTER_NS)
                        sched_yield();
                }
            }
            /* seq_cst: spinning -> sleeping; the re-check below follows it. */
            atomic_fetch_add_explicit(&n->idle, SHOAL__IDLE_SLEEP - SHOAL__IDLE_SPIN,
                                      memory_order_seq_cst);
        }
        uint32_t seq = observe(n);
        if (shoal__work_visible(s, w)) {
            atomic_fetch_sub_explicit(&n->idle, SHOAL__IDLE_SLEEP, memory_order_seq_cst);
            observe(n);   /* leaving the sleeping state: a wake meanwhile may be ours */
            return !atomic_load_explicit(&s->stop, memory_order_relaxed);
        }
        shoal__tl_mark(w->idx, SHOAL__TL_PARK, 0);
        if (w->pub)
            shoal__wcount(&w->pub->parks);
        shoal__arena_idle();   /* a sleeping worker strands no free blocks (alloc/arena.h) */
        w->yield_once = false;
        /* relaxed, both: hints for a waker on this CPU (sleeper_here); a plain wake wakes
         * this worker whatever it says. */
        atomic_store_explicit(&w->parked, 1, memory_order_relaxed);
        shoal__futex_wait_bits(&n->seq, seq, wake_bit(w));
        atomic_store_explicit(&w->parked, 0, memory_order_relaxed);
        observe(n);   /* back (woken, or seq moved before we slept) */
        if (atomic_exchange_explicit(&w->woken_here, 0, memory_order_relaxed))
            w->yield_once = true;
        /* Woken (or spuriously): spin again, unless enough others already spin; then one
         * re-check and back to sleep. On a machine with as many workers as cores, a woken
         * worker that spins anyway competes for a core with the thread that woke it. */
        v = atomic_load_explicit(&n->idle, memory_order_relaxed);
        do {
            spin = (uint32_t)v < n->spin_limit;
            if (!spin)
                break;
            /* seq_cst: sleeping -> spinning, as above. */
        } while (!atomic_compare_exchange_weak_explicit(
            &n->idle, &v, v - SHOAL__IDLE_SLEEP + SHOAL__IDLE_SPIN, memory_order_seq_cst,
            memory_order_relaxed));
    }
}
