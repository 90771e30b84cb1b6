/* wait.c - waiting for objects to complete: spin briefly, help (a worker runs other tasks),
 * then sleep on a futex word of the shared header (segment.h), and the wake-ups that end
 * such sleeps. Cross-process (the words are in the segment; never FUTEX_PRIVATE).
 *
 * Protocol. A thread waiting for one object sleeps on wake[idx % SHOAL__WAKE_WORDS], the
 * word of its object's slot; one waiting for several sleeps on seal_seq and counts itself
 * in `multi` meanwhile. Before sleeping it reads its word (acquire), then sets WAITERS on
 * each object still pending (CAS, acq_rel), looks at the states once more and at rt->down,
 * and sleeps only while the word still holds what it read. A completion or free whose CAS
 * saw WAITERS calls shoal__wake_slot: it bumps the object's word (release) and wakes its
 * sleepers, and, when `multi` is not 0, seal_seq too. So only the waiters of that word
 * wake (W threads waiting on their own objects: W wake-ups, where one word for the store
 * made every completion wake every waiter, W^2), and no wake-up is lost:
 *   - the waiter read the word before its WAITERS CAS; the completer bumps it after its
 *     own CAS, which saw WAITERS. Whichever order the two CASes have on the object's word,
 *     either the waiter's re-check sees the object complete, or the bump comes after the
 *     waiter's read, so FUTEX_WAIT returns at once or is woken.
 *   - a multi waiter counts itself in `multi` before its WAITERS CASes (acq_rel); the
 *     completer's CAS that reads WAITERS is acq_rel too, so it then sees the count.
 *   - shoal__wake_waiters_all (shutdown, the owner's death) bumps every word after setting
 *     rt->down, which every waiter reads after its word: it sees down, or sleeps on a word
 *     that is about to move.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "../layout/segment.h"
#include "../os/futex.h"
#include "stats.h"

/* Pauses before sleeping: 5 to 15 us, as a pause costs 20 to 60 ns depending on the CPU
 * (about 14 us on the 2-vCPU EPYC VMs we measure on). */
#define SPINS 256
#define WORKER_NAP_NS 1000000           /* a waiting worker's backstop: new work wakes it
                                           (sched/park.c), and without futex_waitv this
                                           is how often it looks for work */


static inline _Atomic uint32_t *wake_word(shoal__rt_t *rt, uint64_t idx)
{
    return &rt->hdr->wake[idx % SHOAL__WAKE_WORDS].seq;
}

/* The words are shared: waiters in other processes sleep on them. */
static void futex_wake(_Atomic uint32_t *w) { shoal__futex_wake(w, INT32_MAX, true); }

void shoal__wake_slot(shoal__rt_t *rt, uint64_t idx)
{
    _Atomic uint32_t *w = wake_word(rt, idx);
    /* release: pairs with the waiter's acquire load of its word; the caller's state change
     * (its CAS, before this) is visible to whoever sees the new value. */
    atomic_fetch_add_explicit(w, 1, memory_order_release);
    futex_wake(w);
    /* relaxed: the caller's CAS that read WAITERS was acq_rel, so a waiter's count, made
     * before its WAITERS CAS (release), is visible here. */
    if (atomic_load_explicit(&rt->hdr->multi, memory_order_relaxed) != 0) {
        /* release: as above, for multi waiters' acquire load of seal_seq. */
        atomic_fetch_add_explicit(&rt->hdr->seal_seq, 1, memory_order_release);
        futex_wake(&rt->hdr->seal_seq);
    }
}

void shoal__wake_waiters_all(shoal__rt_t *rt)
{
    /* release: pairs with the waiters' acquire loads of their words; rt->down, set before
     * this by whoever takes the runtime down, is visible to a waiter that sees the bump. */
    for (unsigned k = 0; k < SHOAL__WAKE_WORDS; k++) {
        atomic_fetch_add_explicit(&rt->hdr->wake[k].seq, 1, memory_order_release);
        futex_wake(&rt->hdr->wake[k].seq);
    }
    atomic_fetch_add_explicit(&rt->hdr->seal_seq, 1, memory_order_release);
    futex_wake(&rt->hdr->seal_seq);
}

void shoal__rt_down(shoal__rt_t *rt, int code, const char *fmt, ...)
{
    int zero = 0;
    /* The first one to take the runtime down writes the message; relaxed claim, then the
     * release store publishes the message with the code. */
    if (atomic_compare_exchange_strong_explicit(&rt->down_claim, &zero, 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->down_msg, sizeof rt->down_msg, fmt, ap);
        va_end(ap);
        /* Nested calls compare nest alone (core/store.h shoal__enter): shut before down,
         * so that a call that sees down never finds nest open (the store order of x86:
         * a preempted shutdown left nest open after down for as long as it was off CPU). */
        shoal__nest_shut();
        /* seq_cst: a release for the message, and the store half of the Dekker pair with
         * the call markers (runtime.c: enter stores its mark, then reads down). */
        atomic_store_explicit(&rt->down, code, memory_order_seq_cst);
        /* And again after down (seq_cst both): the Dekker pair with shoal__nest_open
         * (layout/rt.h), which may have opened nest between the two. */
        shoal__nest_shut();
    }
    shoal__wake_waiters_all(rt);
}

int shoal__down_err(shoal__rt_t *rt)
{
    /* acquire: pairs with the store in shoal__rt_down (the message). */
    int code = atomic_load_explicit(&rt->down, memory_order_acquire);
    return shoal__err(code ? code : SHOAL_ECANCELED, "%s", rt->down_msg);
}

/* A get of it would wait: pending, or being read back from the spill file by another
 * process's I/O thread (io/spill.c wakes the waiters when the restore ends). */
static inline bool unsettled(uint64_t w)
{
    return shoal__w_pending(w) || shoal__w_state(w) == SHOAL__RESTORING;
}

/* Count the objects that are settled; with arm, set WAITERS on the others.
 * Returns the count or a negative code (a ref is stale or invalid). */
static int scan(const shoal_ref refs[], size_t n, bool ready[], bool arm)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        int err;
        shoal__slot *s = shoal__slot_of(refs[i], &err);
        if (!s)
            return err;
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        for (;;) {
            if (shoal__w_gen(w) != shoal__id_gen(refs[i].id))
                return shoal__slot_of(refs[i], &err) ? SHOAL_ESTALE : err;
            if (!unsettled(w) || !arm || (w & SHOAL__W_WAITERS))
                break;
            /* acq_rel: our earlier acquire load of the wake word (and our count in multi)
             * is ordered before the bit the completer reads; see the protocol above. */
            if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_WAITERS,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire))
                break;
        }
        bool done = !unsettled(w);
        if (ready)
            ready[i] = done;
        count += done;
    }
    return count;
}

static inline bool is_down(const shoal__rt_t *rt)
{
    return atomic_load_explicit(&rt->down, memory_order_relaxed) != 0;
}

void shoal__help_while_pending(const shoal__slot *s, shoal_ref ref)
{
    void (*hook)(const shoal__slot *, uint64_t) = shoal__help_while_hook;
    if (shoal__tls.worker >= 0 && hook)
        hook(s, shoal__id_gen(ref.id));   /* (sched/worker.c: help_while) */
}

static void futex_sleep(_Atomic uint32_t *addr, uint32_t seen, uint64_t ns)
{
    struct timespec ts = shoal__timespec_ns(ns);
    shoal__futex_wait(addr, seen, &ts, true);
}

static int wait_refs(const shoal_ref refs[], size_t n, size_t num_ready, int64_t timeout_ns,
                     bool ready[])
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t deadline = 0;
    unsigned spins = 0;
    /* One object: its own word. Several: seal_seq, counted in multi while we wait. */
    _Atomic uint32_t *word = n == 1 ? wake_word(rt, shoal__id_idx(refs[0].id))
                                    : &rt->hdr->seal_seq;
    bool counted = false;
    int c;
    for (;;) {
        c = scan(refs, n, ready, false);
        if (c < 0 || (size_t)c >= num_ready || timeout_ns == 0)
            break;
        if (unlikely(is_down(rt))) {
            c = shoal__down_err(rt);
            break;
        }
        if (shoal__tls.worker >= 0 && shoal__help_hook && shoal__help_hook()) {
            if (n == 1)   /* scan checked the ref: help until it completes */
                shoal__help_while_pending(&rt->slots[shoal__id_idx(refs[0].id)], refs[0]);
            spins = 0;
            continue;
        }
        if (spins < SPINS) {
            spins++;
            shoal__cpu_relax();
            continue;
        }
        uint64_t now = shoal__now_ns();
        if (deadline == 0)
            deadline = timeout_ns < 0 ? UINT64_MAX : now + (uint64_t)timeout_ns;
        if (now >= deadline)
            break;
        if (n > 1 && !counted) {
            /* seq_cst: ordered before our WAITERS CASes below (protocol, top of file). */
            atomic_fetch_add_explicit(&rt->hdr->multi, 1, memory_order_seq_cst);
            counted = true;
        }
        /* acquire: pairs with the release bump in shoal__wake_slot / _waiters_all. */
        uint32_t seq = atomic_load_explicit(word, memory_order_acquire);
        c = scan(refs, n, ready, true);
        if (c < 0 || (size_t)c >= num_ready)
            break;
        if (unlikely(is_down(rt))) {   /* read after the word: see the protocol */
            c = shoal__down_err(rt);
            break;
        }
        uint64_t nap = deadline - now;
        shoal__count(SHOAL__CNT_WAIT_SLEEP);
        if (shoal__tls.worker >= 0) {
            /* New tasks wake the worker too (sched/park.c); the nap is only a backstop. */
            if (nap > WORKER_NAP_NS)
                nap = WORKER_NAP_NS;
            if (shoal__nap_hook && shoal__nap_hook(word, seq, nap))
                continue;
        }
        futex_sleep(word, seq, nap);
    }
    if (counted)
        atomic_fetch_sub_explicit(&rt->hdr->multi, 1, memory_order_relaxed);
    return c;
}

int shoal__obj_wait(shoal_ref ref, int64_t timeout_ns)
{
    int c = wait_refs(&ref, 1, 1, timeout_ns, NULL);
    if (c < 0)
        return c;
    if (c == 0)
        return shoal__err(SHOAL_ETIMEDOUT, "object 0x%016llx not ready after %lld ns",
                          (unsigned long long)ref.id, (long long)timeout_ns);
    return 0;
}

static int wait_checked(const shoal_ref refs[], size_t n, size_t num_ready,
                        int64_t timeout_ns, bool ready[])
{
    if ((n > 0 && refs == NULL) || num_ready > n)
        return shoal__err(SHOAL_EINVAL, "shoal_wait: %s",
                          num_ready > n ? "num_ready is larger than n" : "refs is NULL");
    if (n > INT32_MAX)
        return shoal__err(SHOAL_EINVAL, "shoal_wait: n is %zu, more than %d", n, INT32_MAX);
    return wait_refs(refs, n, num_ready, timeout_ns, ready);
}

SHOAL_API int shoal_wait(const shoal_ref refs[], size_t n, size_t num_ready,
                         int64_t timeout_ns, bool ready[])
{
    SHOAL__CALL(wait_checked(refs, n, num_ready, timeout_ns, ready));
}
