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
#include "../os/futex.h"
#include "sched_int.h"
#include "timeline.h"

/* How long an idle worker spins before sleeping: long enough that back-to-back pings and
 * the gaps of a bursty DAG never pay a wake, short enough to be invisible when idle. */
#define SPIN_NS 20000
#define YIELD_AFTER_NS 5000

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

void shoal__wake_node(struct shoal__sched *s, unsigned node)
{
    /* release: pairs with the acquire load of seq before a sleeper's last re-check; a
     * sleeper that read the old value is still before its futex_wait, which then returns. */
    atomic_fetch_add_explicit(&s->n[node].seq, 1, memory_order_release);
    shoal__futex_wake(&s->n[node].seq, 1, false);
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
    /* acquire: pairs with the release bump in shoal__wake_node. */
    uint32_t nseq = atomic_load_explicit(&n->seq, memory_order_acquire);
    bool handled = true;
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
    }
    atomic_fetch_sub_explicit(&n->idle, SHOAL__IDLE_SLEEP, memory_order_seq_cst);
    return handled;
#else
    (void)word, (void)seen, (void)ns;
    return false;
#endif
}

bool shoal__idle(struct shoal__sched *s, struct shoal__worker *w)
{
    struct shoal__node *n = &s->n[w->node];
    /* At most spin_limit workers of a node spin at once; the others sleep at once, so an
     * idle runtime on a busy machine does not steal cycles from the threads that feed it. */
    uint64_t v = atomic_load_explicit(&n->idle, memory_order_relaxed);
    bool spin;
    do {
        spin = (uint32_t)v < n->spin_limit;
        /* seq_cst: announcing idleness is the sleeper's half of the Dekker pair. */
    } while (!atomic_compare_exchange_weak_explicit(
        &n->idle, &v, v + (spin ? SHOAL__IDLE_SPIN : SHOAL__IDLE_SLEEP), memory_order_seq_cst,
        memory_order_relaxed));
    for (;;) {
        if (spin) {
            uint64_t t0 = shoal__now_ns();
            for (unsigned i = 1;; i++) {
                if (work_hint(s, w)) {
                    atomic_fetch_sub_explicit(&n->idle, SHOAL__IDLE_SPIN, memory_order_seq_cst);
                    return !atomic_load_explicit(&s->stop, memory_order_relaxed);
                }
                cpu_relax();
                if ((i & 63) == 0) {
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
        /* acquire: pairs with the release bump in shoal__wake_node. */
        uint32_t seq = atomic_load_explicit(&n->seq, memory_order_acquire);
        if (shoal__work_visible(s, w)) {
            atomic_fetch_sub_explicit(&n->idle, SHOAL__IDLE_SLEEP, memory_order_seq_cst);
            return !atomic_load_explicit(&s->stop, memory_order_relaxed);
        }
        shoal__tl_mark(w->idx, SHOAL__TL_PARK, 0);
        if (w->pub)
            shoal__wcount(&w->pub->parks);
        shoal__arena_idle();   /* a sleeping worker strands no free blocks (alloc/arena.h) */
        shoal__futex_wait(&n->seq, seq, NULL, false);
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
