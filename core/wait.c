/* wait.c - waiting for objects to complete: spin briefly, help (a worker runs other tasks),
 * then sleep on the segment's completion futex. One futex for the whole store keeps the
 * protocol simple and cross-process: a waiter sets the WAITERS bit on each object it waits
 * for, and only completions of such objects bump the sequence and call futex_wake.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "stats.h"

#define SPINS 256                       /* ~5 us of pause before sleeping */
#define WORKER_NAP_NS 1000000           /* a waiting worker's backstop: new work wakes it
                                           (sched/park.c), and without futex_waitv this
                                           is how often it looks for work */

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

/* Count the objects that are no longer pending; with arm, set WAITERS on the others.
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
            if (!shoal__w_pending(w) || !arm || (w & SHOAL__W_WAITERS))
                break;
            /* acq_rel: our earlier acquire load of seal_seq is ordered before the bit the
             * completer reads; see the protocol note at the top. */
            if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_WAITERS,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire))
                break;
        }
        bool done = !shoal__w_pending(w);
        if (ready)
            ready[i] = done;
        count += done;
    }
    return count;
}

void shoal__help_while_pending(const shoal__slot *s, shoal_ref ref)
{
    if (shoal__tls.worker < 0 || !shoal__help_hook)
        return;
    for (;;) {
        /* acquire: pairs with the completion's release, as in shoal_get. */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (shoal__w_gen(w) != shoal__id_gen(ref.id) || !shoal__w_pending(w) ||
            !shoal__help_hook())
            return;
    }
}

static void futex_sleep(_Atomic uint32_t *addr, uint32_t seen, uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    syscall(SYS_futex, addr, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static int wait_refs(const shoal_ref refs[], size_t n, size_t num_ready, int64_t timeout_ns,
                     bool ready[])
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t deadline = 0;
    unsigned spins = 0;
    for (;;) {
        int c = scan(refs, n, ready, false);
        if (c < 0 || (size_t)c >= num_ready || timeout_ns == 0)
            return c;
        /* acquire: pairs with the release store of down (its message). */
        if (unlikely(atomic_load_explicit(&rt->down, memory_order_acquire)))
            return shoal__down_err(rt);
        if (shoal__tls.worker >= 0 && shoal__help_hook && shoal__help_hook()) {
            if (n == 1)   /* scan checked the ref: help until it completes */
                shoal__help_while_pending(&rt->slots[shoal__id_idx(refs[0].id)], refs[0]);
            spins = 0;
            continue;
        }
        if (spins < SPINS) {
            spins++;
            cpu_relax();
            continue;
        }
        uint64_t now = shoal__now_ns();
        if (deadline == 0)
            deadline = timeout_ns < 0 ? UINT64_MAX : now + (uint64_t)timeout_ns;
        if (now >= deadline)
            return c;
        /* acquire: pairs with the release bump in wake_waiters (object.c). */
        uint32_t seq = atomic_load_explicit(&rt->hdr->seal_seq, memory_order_acquire);
        c = scan(refs, n, ready, true);
        if (c < 0 || (size_t)c >= num_ready)
            return c;
        /* After the sequence was read: a runtime taken down before its wake-up bumped the
         * sequence is seen here, one taken down after wakes the sleep below. */
        if (unlikely(atomic_load_explicit(&rt->down, memory_order_acquire)))
            return shoal__down_err(rt);
        uint64_t nap = deadline - now;
        shoal__count(SHOAL__CNT_WAIT_SLEEP);
        if (shoal__tls.worker >= 0) {
            /* New tasks wake the worker too (sched/park.c); the nap is only a backstop. */
            if (nap > WORKER_NAP_NS)
                nap = WORKER_NAP_NS;
            if (shoal__nap_hook && shoal__nap_hook(&rt->hdr->seal_seq, seq, nap))
                continue;
        }
        futex_sleep(&rt->hdr->seal_seq, seq, nap);
    }
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

SHOAL_API int shoal_wait(const shoal_ref refs[], size_t n, size_t num_ready,
                         int64_t timeout_ns, bool ready[])
{
    int rc = shoal__tls_check();
    if (rc)
        return rc;
    if ((n > 0 && refs == NULL) || num_ready > n)
        return shoal__err(SHOAL_EINVAL, "shoal_wait: %s",
                          num_ready > n ? "num_ready is larger than n" : "refs is NULL");
    if (n > INT32_MAX)
        return shoal__err(SHOAL_EINVAL, "shoal_wait: n is too large");
    return wait_refs(refs, n, num_ready, timeout_ns, ready);
}
