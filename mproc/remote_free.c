/* remote_free.c - bytes freed by a process other than the one that allocated them. Each
 * process's allocator keeps its metadata in that process, so the releaser of an object
 * another process allocated pushes the slot onto the allocator's remote-free stack
 * (layout/mpseg.h) and that process's drain thread gives the bytes back. The stacks of
 * processes that are gone are drained by the owner, which only accounts their bytes: their
 * chunks return whole once none of their objects is left (mproc/publish.c).
 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../alloc/chunks.h"
#include "mproc.h"
#include "../core/objrefs.h"
#include "../core/thread.h"
#include "../os/futex.h"

#define NAP_NS        10000000u   /* after work, nap 10 ms at a time before a long sleep */
#define NAPS          3
#define CLIENT_WAKE_S 1           /* a client's long sleep: look at the owner once a second */

static pthread_mutex_t procs_mu = PTHREAD_MUTEX_INITIALIZER;
void shoal__procs_lock(void) { pthread_mutex_lock(&procs_mu); }
void shoal__procs_unlock(void) { pthread_mutex_unlock(&procs_mu); }

static void futex_wake(_Atomic uint32_t *w) { shoal__futex_wake(w, INT32_MAX, true); }

static void futex_wait(_Atomic uint32_t *w, uint32_t seen, uint64_t ns)
{
    struct timespec ts = shoal__timespec_ns(ns);
    shoal__futex_wait(w, seen, ns ? &ts : NULL, true);
}

void shoal__wake_proc(shoal__rt_t *rt, unsigned p)
{
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    /* release: pairs with the drainer's load of `wake` before it re-checks its stack. Not
     * FUTEX_PRIVATE: the drainer is another process. */
    atomic_fetch_add_explicit(&P->wake, 1, memory_order_release);
    futex_wake(&P->wake);
}

void shoal__rfree_push(shoal__rt_t *rt, uint32_t idx, unsigned proc)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    struct shoal__proc *P = &x->procs[proc & 0xffu];
    SHOAL__TSAN_HANDOVER_GIVE(&rt->slots[idx].off);   /* to its drainer (os/compiler.h) */
    uint64_t head = atomic_load_explicit(&P->rfree, memory_order_relaxed);
    do {
        atomic_store_explicit(&rt->slots[idx].next, (uint32_t)head, memory_order_relaxed);
        /* seq_cst: publishes the link (release, for the drainer's acquire exchange) and is
         * ordered before our load of `sleeping` below against the drainer's store of it. */
    } while (!atomic_compare_exchange_weak_explicit(&P->rfree, &head, idx, memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (head != 0)
        return;   /* not the first: whoever made the stack non-empty woke the drainer */
    /* Read the state after the push: a process marked gone before that is drained by the
     * owner, which the owner's own marking (seq_cst) makes sure to look at. */
    unsigned target = atomic_load_explicit(&P->state, memory_order_seq_cst) == SHOAL__PROC_LIVE
                          ? (proc & 0xffu) : 0;
    if (atomic_load_explicit(&x->procs[target].sleeping, memory_order_seq_cst))
        shoal__wake_proc(rt, target);
}

/* ---- the owner's records ---------------------------------------------------------------------- */

/* shoal__own (layout/mpseg.h) is defined in layout/globals.c: the store and io/ read it. */

SHOAL__COLD static void notice(const char *what, uint32_t idx)
{
    static _Atomic int told;
    if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
        shoal__log("slot %u: %s (a process wrote the object table): ignored, its bytes are "
                   "leaked, not freed", idx, what);
}

/* The node an offset another process may have written lies in (0 when outside the span). */
static inline unsigned node_of(const shoal__rt_t *rt, uint64_t off)
{
    uint64_t n = off / rt->node_span;
    return n < rt->nnodes ? (unsigned)n : 0;
}

bool shoal__own_release(shoal__rt_t *rt, uint32_t idx, uint64_t gen)
{
    uint64_t off, len;
    bool spilled;
    if (!shoal__own || !shoal__own_take(idx, &off, &len, &spilled))
        return false;
    shoal__slot *s = &rt->slots[idx];
    if (spilled) {
        /* Its bytes were freed when it was spilled; the spiller's own record of (idx, gen)
         * names its extent. The slot is ours (claimed or freed by us): the counters read
         * its length from there. */
        shoal__count_objs(rt, 0, node_of(rt, s->off), -1);
        s->len = len;
        shoal__up.spill_drop(s, gen);   /* io/spill.c, a sibling: through the store's hook */
        return true;
    }
    unsigned node = node_of(rt, off);
    shoal__count_objs(rt, 0, node, -1);
    if (len) {
        /* Not through a thread cache: this runs on service threads too. Checked against
         * our allocator's private records as well: a refused free stays counted (a leak). */
        if (shoal__arena_free_direct(rt, off, len))
            shoal__count_bytes(rt, 0, node, -(int64_t)shoal__acct_size(len));
    }
    return true;
}

/* Process p's object in slot idx is gone and the slot is the caller's: give its bytes back
 * (mine: to this process's allocator; else p is gone, its chunks return whole) and uncount
 * them from p's shard. False when the slot names no object of p inside the store (a forged
 * entry): nothing done. */
static bool give_bytes(shoal__rt_t *rt, uint32_t idx, unsigned p, bool mine)
{
    shoal__slot *s = &rt->slots[idx];
    if (SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) != p) {
        notice("a remote free names another process's object", idx);
        return false;
    }
    uint64_t off = s->off, len = s->len, span = rt->node_span * rt->nnodes;
    if (off >= span || len > span - off) {
        notice("remote free of bytes outside the store", idx);
        return false;
    }
    unsigned node = node_of(rt, off);
    shoal__count_objs(rt, p, node, -1);
    if (!len)
        return true;
    /* Ours: checked against our allocator's private records (a refused free stays counted,
     * a leak). Else allocated by a process that is gone: its chunks return whole later
     * (mproc/publish.c). */
    if (!mine || shoal__arena_free_direct(rt, off, len))
        shoal__count_bytes(rt, p, node, -(int64_t)shoal__acct_size(len));
    return true;
}

bool shoal__claim(shoal__rt_t *rt, uint32_t idx, uint64_t w)
{
    /* A freed slot on its way to its allocator carries FREEING; claiming it makes the low
     * half 1, which nothing else looks at in a FREE slot and the next use overwrites. A
     * repeated, stale or forged entry (a live object, a slot cached, chained or claimed
     * already) fails here and is ignored. acquire: the word went FREE with an acq_rel CAS
     * after the holders' last reads. */
    if (!shoal__w_freeing(w))
        return false;
    if (!atomic_compare_exchange_strong_explicit(&rt->slots[idx].word, &w,
                                                 (w & ~SHOAL__W_LOW_MASK) | 1,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    SHOAL__TSAN_HANDOVER_TAKE(&rt->slots[idx].off);   /* from its freer (os/compiler.h) */
    return true;
}

/* An entry of process p's remote-free stack, whose word was w when it was taken. */
static void reclaim(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx, uint64_t w, unsigned p,
                    bool mine)
{
    if (!shoal__claim(rt, idx, w))
        return;
    /* A FREE word holds the next generation: the freed object's is the one before. An entry
     * that names no object we can account for is forged (its FREEING mark written by a
     * process over a free slot: in a thread cache of ours, a chain of the shared stack):
     * the slot stays claimed and out of use (a leak), as giving it back would hand it out
     * twice, two objects under one ref. */
    if (!(rt->owner && p == 0 ? shoal__own_release(rt, idx, shoal__gen_prev(shoal__w_gen(w)))
                              : give_bytes(rt, idx, p, mine))) {
        notice("a remote free of an object the owner has no record of", idx);
        return;
    }
    shoal__slot_give(rt, t, idx);
}

/* Our own stack, one entry at a time, each named in `draining` (as an id: index and the
 * generation of its FREEING word) before it leaves the stack: if we die between taking an
 * entry and claiming it, the owner finds it there (shoal__drain_finish). Taking the whole
 * chain at once would leave every entry of it FREEING, off the stack, and named nowhere:
 * the owner would wait for ever for a live releaser to push them. One popper per stack
 * (its process; the owner once the process is gone), and an entry is pushed again only
 * after a drainer claimed it, so the next link read before the CAS is the right one. */
static size_t drain_mine(shoal__rt_t *rt, struct shoal__thr *t, struct shoal__proc *P,
                         unsigned p, uint64_t limit)
{
    size_t n = 0;
    /* acquire: pairs with the pushers' seq_cst CAS (the link and the FREEING word). */
    uint64_t head = atomic_load_explicit(&P->rfree, memory_order_acquire);
    /* Bounded by the table size: a corrupt chain (a cycle) cannot keep us here. */
    while (head != 0 && n < rt->nslots) {
        /* A slot pushed after we read the limit may lie above it: read it again first. */
        if (head >= limit) {
            limit = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed);
            if (limit > rt->nslots)
                limit = rt->nslots;
        }
        if (head >= limit) {   /* corrupt: drop the chain (a leak), as the owner's drain does */
            atomic_exchange_explicit(&P->rfree, 0, memory_order_relaxed);
            break;
        }
        uint32_t idx = (uint32_t)head;
        uint64_t w = atomic_load_explicit(&rt->slots[idx].word, memory_order_relaxed);
        /* relaxed: the owner reads it only after our death, which orders our writes. */
        atomic_store_explicit(&P->draining, shoal__id_make(idx, shoal__w_gen(w)),
                              memory_order_relaxed);
        uint64_t next = atomic_load_explicit(&rt->slots[idx].next, memory_order_relaxed);
        /* acquire (on failure too): as the load above, for the new head. */
        if (!atomic_compare_exchange_weak_explicit(&P->rfree, &head, next, memory_order_acquire,
                                                   memory_order_acquire))
            continue;
        reclaim(rt, t, idx, w, p, true);
        head = next;
        n++;
        if (head == 0)   /* pushed meanwhile? the CAS loads it next round */
            head = atomic_load_explicit(&P->rfree, memory_order_acquire);
    }
    atomic_store_explicit(&P->draining, 0, memory_order_relaxed);
    return n;
}

size_t shoal__drain(shoal__rt_t *rt, struct shoal__thr *t, unsigned p, bool mine)
{
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    if (atomic_load_explicit(&P->rfree, memory_order_relaxed) == 0)
        return 0;
    uint64_t limit = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed);
    if (limit > rt->nslots)
        limit = rt->nslots;
    if (mine)
        return drain_mine(rt, t, P, p, limit);
    /* A gone process's stack: nobody else pops it, and if we die the store goes with us.
     * acquire: pairs with the pushers' seq_cst CAS, so every link in the chain is visible. */
    uint64_t head = atomic_exchange_explicit(&P->rfree, 0, memory_order_acquire);
    size_t n = 0;
    /* Bounded by the table size: a corrupt chain (a cycle) cannot keep us here. */
    while (head != 0 && n < rt->nslots) {
        uint32_t idx = (uint32_t)head;
        if (head >= limit)
            break;
        head = atomic_load_explicit(&rt->slots[idx].next, memory_order_relaxed);
        reclaim(rt, t, idx, atomic_load_explicit(&rt->slots[idx].word, memory_order_acquire),
                p, false);
        n++;
    }
    return n;
}

static void free_routed_cb(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *t)
{
    shoal__free_routed(rt, t, idx, oldw);
}

void shoal__drain_finish(shoal__rt_t *rt, struct shoal__thr *t, unsigned p)
{
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    uint64_t id = atomic_exchange_explicit(&P->draining, 0, memory_order_relaxed);
    uint64_t idx = shoal__id_idx(id);
    if (idx == 0 || idx >= rt->nslots)
        return;
    /* acquire: the word went FREE with an acq_rel CAS after the holders' last reads. */
    uint64_t w = atomic_load_explicit(&rt->slots[idx].word, memory_order_acquire);
    /* Claimed already (by the dead drainer, or by our drain of its stack) or used again: the
     * generation or the marker differs and the claim fails. */
    if (shoal__w_gen(w) == shoal__id_gen(id))
        reclaim(rt, t, (uint32_t)idx, w, p, false);
}

void shoal__free_routed(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx, uint64_t oldw)
{
    shoal__slot *s = &rt->slots[idx];
    if (unlikely(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS)) {
        /* It contains refs (core/objrefs.h): they are released first, and every object that
         * frees in turn comes back here without the flag (the list's bytes with it: the
         * slot's len, and our record, cover the whole allocation by then). */
        shoal__refs_free(rt, idx, oldw, free_routed_cb, t);
        return;
    }
    if (oldw & SHOAL__W_WAITERS)
        shoal__wake_slot(rt, idx);
    if (shoal__own_release(rt, idx, shoal__w_gen(oldw))) {   /* ours, resident or spilled */
        shoal__slot_give(rt, t, idx);
        return;
    }
    unsigned p = SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED));
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    if (p == 0) {
        notice("the owner has no record of an object the table says is its own", idx);
    } else if (atomic_load_explicit(&P->state, memory_order_acquire) == SHOAL__PROC_LIVE) {
        /* Its allocator takes it back. The slot is ours until the push: mark it claimable. */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        atomic_store_explicit(&s->word, (w & ~SHOAL__W_LOW_MASK) | shoal__freeing_mark(),
                              memory_order_relaxed);
        shoal__rfree_push(rt, idx, p);
        return;
    } else {
        (void)give_bytes(rt, idx, p, false);   /* gone: its chunks return whole */
    }
    shoal__slot_give(rt, t, idx);
}

/* ---- the drain thread ------------------------------------------------------------------------ */

static struct {
    pthread_t th;
    bool running;
    shoal__rt_t *rt;
    int sock;
    _Atomic int stop;
} drain_g;

/* A client: has the owner shut down, or died (its end of our socket closed)? */
static bool owner_gone(shoal__rt_t *rt, int sock)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    if (atomic_load_explicit(&x->procs[0].state, memory_order_acquire) != SHOAL__PROC_LIVE)
        return true;
    char b;
    ssize_t r = recv(sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The owner: the stacks of processes that are gone (or whose index is free), whose
 * entries are orphans. Under the procs lock so that an index is never handed to a new
 * process while we take its stack. */
static size_t drain_orphans(shoal__rt_t *rt, struct shoal__thr *t, bool *pending)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    size_t n = 0;
    *pending = false;
    shoal__procs_lock();
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++) {
        struct shoal__proc *P = &x->procs[p];
        if (atomic_load_explicit(&P->state, memory_order_seq_cst) == SHOAL__PROC_LIVE)
            continue;
        if (atomic_load_explicit(&P->rfree, memory_order_seq_cst) != 0) {
            n += shoal__drain(rt, t, p, false);
            *pending = true;
        }
    }
    shoal__procs_unlock();
    return n;
}

static void client_owner_gone(shoal__rt_t *rt)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    int pid = (int)atomic_load_explicit(&x->procs[0].pid, memory_order_relaxed);
    bool closed = atomic_load_explicit(&x->procs[0].state, memory_order_acquire) == SHOAL__PROC_CLOSED;
    bool was_up = atomic_load_explicit(&rt->down, memory_order_relaxed) == 0;
    /* Every call from now on, and every call blocked in a wait (woken by it), answers
     * SHOAL_ECANCELED with this message until the process calls shoal_shutdown() to
     * detach. The mappings stay valid (we hold the memfds), so pointers stay readable. */
    shoal__rt_down(rt, SHOAL_ECANCELED, "the store's owner (pid %d) %s: nothing can be "
                   "stored, freed or completed any more (pointers already obtained stay "
                   "readable); call shoal_shutdown() to detach", pid,
                   closed ? "shut down" : "exited");
    if (was_up)
        shoal__log("%s", rt->down_msg);
}

/* This process's own stack. The owner drains it under the procs lock, so that once the
 * publish thread has drained it too (mproc/publish.c, a dead releaser's slots) every entry
 * pushed before is claimed. */
static size_t drain_own(shoal__rt_t *rt, struct shoal__thr *t)
{
    if (!rt->owner)
        return shoal__drain(rt, t, rt->proc, true);
    shoal__procs_lock();
    size_t n = shoal__drain(rt, t, rt->proc, true);
    shoal__procs_unlock();
    return n;
}

/* A futex timeout that ends at CLOCK_MONOTONIC due (0: none, sleep until woken). */
static uint64_t until(uint64_t due)
{
    if (!due)
        return 0;
    uint64_t now = shoal__now_ns();
    return due > now ? due - now : 1;
}

/* The lookup counters of this process, into its line of the segment for shoal-stat. */
static void publish_lookups(struct shoal__lookups *me)
{
    uint64_t sum[SHOAL__CNT_N + 1] = { 0 };
    shoal__recs_sum(sum);
    atomic_store_explicit(&me->get_slow, sum[SHOAL__CNT_GET_SLOW], memory_order_relaxed);
    atomic_store_explicit(&me->bad_ids, sum[SHOAL__CNT_STALE] + sum[SHOAL__CNT_INVALID],
                          memory_order_relaxed);
    atomic_store_explicit(&me->get_waits, sum[SHOAL__CNT_GET_WAIT], memory_order_relaxed);
}

/* A tool (shoal-stat) is attached: the owner's drainer then wakes once a second to keep
 * the published counters fresh, and otherwise sleeps until woken (an idle store costs no
 * CPU). Bounds: the process table is a fixed array. */
static bool tool_attached(const shoal__rt_t *rt)
{
    const struct shoal__mp *x = shoal__mp_of(rt);
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++)
        if (atomic_load_explicit(&x->procs[p].state, memory_order_relaxed) == SHOAL__PROC_LIVE &&
            (atomic_load_explicit(&x->procs[p].flags, memory_order_relaxed) & SHOAL__PROC_TOOL))
            return true;
    return false;
}

static void *drain_main(void *arg)
{
    (void)arg;
    shoal__rt_t *rt = drain_g.rt;
    struct shoal__proc *me = &shoal__mp_of(rt)->procs[rt->proc];
    struct shoal__lookups *looks = &shoal__mp_of(rt)->lookups[rt->proc];
    struct shoal__thr t;
    memset(&t, 0, sizeof t);
    unsigned idle = 0;
    while (!atomic_load_explicit(&drain_g.stop, memory_order_acquire)) {
        bool orphans = false;
        /* Before the drain and the scan below: a wake-up bumped after this read makes the
         * nap below return at once, so no completion notified meanwhile waits for it.
         * acquire: pairs with the release bump in shoal__wake_proc. */
        uint32_t seq = atomic_load_explicit(&me->wake, memory_order_acquire);
        size_t n = drain_own(rt, &t);
        if (rt->owner)
            n += drain_orphans(rt, &t, &orphans);
        shoal__foreign_deps_scan(rt);
        /* The owner releases refs in flight past their deadline (mproc/inflight.c). */
        uint64_t due = rt->owner ? shoal__xfer_expire(rt, false, &t) : 0;
        if (t.nfree)
            shoal__slot_flush(rt, &t, t.nfree);
        if (n) {
            idle = 0;
            continue;
        }
        if (!rt->owner && owner_gone(rt, drain_g.sock)) {
            client_owner_gone(rt);
            break;
        }
        if (idle == 0)
            publish_lookups(looks);
        if (idle < NAPS) {
            /* Short naps keep `sleeping` clear, so steady traffic costs pushers nothing. */
            idle++;
            futex_wait(&me->wake, seq, NAP_NS);
            continue;
        }
        /* seq_cst: the Dekker pair with the pushers (rfree_push): either they see
         * `sleeping` and wake us, or we see their entry below. */
        atomic_store_explicit(&me->sleeping, 1, memory_order_seq_cst);
        seq = atomic_load_explicit(&me->wake, memory_order_seq_cst);
        bool empty = atomic_load_explicit(&me->rfree, memory_order_seq_cst) == 0;
        /* Again after seq: an object another process completed or failed between the scan
         * at the top and seq (its completer bumped wake before we read it) would otherwise
         * leave its dependents waiting through the long sleep below, for ever on an idle
         * owner. Completions after seq change wake and end that sleep. */
        shoal__foreign_deps_scan(rt);
        /* The earliest deadline again, after seq: a sender lowers it before it bumps wake
         * (mproc/inflight.c, kick), so either we see its deadline here or our wait below
         * sees the bump. */
        if (rt->owner)
            due = shoal__xfer_due();
        if (rt->owner && empty) {
            drain_orphans(rt, &t, &orphans);
            if (t.nfree)
                shoal__slot_flush(rt, &t, t.nfree);
        }
        publish_lookups(looks);
        bool tool = rt->owner && tool_attached(rt);
        if (empty && !orphans && !atomic_load_explicit(&drain_g.stop, memory_order_acquire)) {
            /* The owner: until woken, or the first ref in flight is due (mproc/inflight.c),
             * or each second while a tool reads its counters. */
            uint64_t ns = rt->owner && !tool ? 0 : (uint64_t)CLIENT_WAKE_S * 1000000000u,
                     xd = rt->owner ? until(due) : 0;
            futex_wait(&me->wake, seq, xd && (ns == 0 || xd < ns) ? xd : ns);
        }
        atomic_store_explicit(&me->sleeping, 0, memory_order_relaxed);
    }
    if (t.nfree)
        shoal__slot_flush(rt, &t, t.nfree);
    return NULL;
}

int shoal__drain_start(shoal__rt_t *rt, int sock)
{
    drain_g.rt = rt;
    drain_g.sock = sock;
    atomic_store_explicit(&drain_g.stop, 0, memory_order_relaxed);
    int e = pthread_create(&drain_g.th, NULL, drain_main, NULL);
    if (e)
        return shoal__err(SHOAL_ENOMEM, "cannot start the remote-free thread: %s", strerror(e));
    drain_g.running = true;
    return 0;
}

void shoal__drain_stop(void)
{
    if (!drain_g.running)
        return;
    /* release: pairs with the drain thread's acquire load of stop. */
    atomic_store_explicit(&drain_g.stop, 1, memory_order_release);
    shoal__wake_proc(drain_g.rt, drain_g.rt->proc);
    pthread_join(drain_g.th, NULL);
    drain_g.running = false;
    /* What was pushed after the thread's last look is given back here, by this thread. */
    struct shoal__thr t;
    memset(&t, 0, sizeof t);
    drain_own(drain_g.rt, &t);
    if (t.nfree)
        shoal__slot_flush(drain_g.rt, &t, t.nfree);
}

void shoal__drain_fork_child(void)
{
    /* fork() child: the drain thread is not here (the parent's copy of it would be joined
     * by a later stop), and the procs lock may have been held by it, or by the publish
     * thread, at fork(): a store the child starts takes it at every drain. */
    pthread_mutex_init(&procs_mu, NULL);
    drain_g.running = false;
}
