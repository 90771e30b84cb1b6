/* inflight.c - refs in flight between processes (shoal_transfer / shoal_accept): a record in
 * the shared segment holds the reference while the 8-byte ref travels through whatever
 * channel the user chose, and the owner releases it when its deadline passes. The layout,
 * the moves and their crash windows are in layout/mpseg.h ("refs in flight").
 */

#include <pthread.h>
#include <sched.h>
#include <time.h>   /* struct timespec */

#include "../core/thread.h"
#include "../os/futex.h"
#include "mproc.h"

#define XR_PHASE(st)  ((unsigned)((st) & 3u))
#define XR_SEQ(st)    ((st) >> 32)
#define XR_WHO_MASK   UINT64_C(0xfffffffc)   /* [31..2]: incarnation bits and process index */
#define XR_INC_BITS   UINT32_C(0x3fffff)

static inline struct shoal__inflight *table(void) { return shoal__geo.xfer; }

/* Tests only: called inside a transfer's or an accept's window, just after its move of the
 * record; when it answers true the call returns 0 at once, leaving the window open as a
 * thread stopped there would (tests/test_mp_death.c, test_mp_crash.c). */
bool (*shoal__xfer_window_hook)(void);
/* Tests only: called in an accept that read its record INFLIGHT, before it opens its
 * window: a test holds it there while the record expires (tests/test_mp_death.c). */
void (*shoal__xfer_accept_hook)(void);

/* The first record a ref probes: its bits mixed (Fibonacci hashing), so that neighbouring
 * slots spread over the table while every transfer of one object starts at one place. */
static inline uint32_t home(uint64_t id)
{
    return (uint32_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 40) & (SHOAL__XFER_RECS - 1);
}

/* This process's name in a record: its index and the low bits of its incarnation. */
static inline uint64_t me_bits(const shoal__rt_t *rt)
{
    return ((uint64_t)((shoal__chunk_me >> 8) & XR_INC_BITS) << 10) | ((uint64_t)(rt->proc & 0xffu) << 2);
}

/* A record TAKEN by this process through its window k (layout/mpseg.h, "Windows"): the
 * index, the low 16 bits of the incarnation, and k, which names the one thread that won
 * it. Another thread of ours that read the record at the same sequence and lost may be
 * inside its own window naming it when we die: the record must tell the two apart. */
#define XR_TAKEN_INC_BITS UINT32_C(0xffff)
static inline uint64_t taken_who(unsigned proc, uint32_t inc, unsigned k)
{
    return ((uint64_t)(inc & XR_TAKEN_INC_BITS) << 16) | ((uint64_t)(k & 63u) << 10) |
           ((uint64_t)(proc & 0xffu) << 2);
}

static inline uint64_t st_make(uint64_t seq, uint64_t who, unsigned phase)
{
    return (seq << 32) | (who & XR_WHO_MASK) | phase;
}

/* ---- windows (layout/mpseg.h, "Windows"): a move between our ledger and a record ---------- */

/* Which thread holds each of our windows (pthread_self, as an integer; 0 = none), so that
 * a move that finds its object's entry naming a window its own thread holds knows it
 * interrupted that thread inside a move of that object (a signal handler's transfer or
 * accept): waiting there would never end, as the window's holder runs only once the
 * handler returns. Invariant: win_holder[k] says this thread exactly while it holds window
 * k - stored after the CAS that takes k and before any entry names it, cleared before k is
 * given back (win_close) - and only the holder stores its own identity, so a thread that
 * reads itself there holds k (another's stale value never equals it); that the entry's
 * naming of k is that holder's, not the last one's, is win_open's acquire. relaxed: each thread
 * compares only with its own identity, which only its own stores put there, and a thread
 * reads its own stores in order; the signal fences keep the compiler from moving these
 * stores across the entry's and the used word's RMWs, as a handler on this thread would
 * see them. Process memory, not thread-local: the library's static TLS block is full. */
static _Atomic uintptr_t win_holder[SHOAL__NWINS];

static inline uintptr_t me_thread(void) { return (uintptr_t)pthread_self(); }

void shoal__xfer_fork_child(void)
{
    /* A fork() child: the other threads that held windows are not here, and a thread the
     * child starts may get one's identity back (glibc reuses their stacks), so their marks
     * would say it holds a window it never took. Ours stays: a fork from a signal handler
     * that interrupted our move resumes that move when the handler returns. relaxed: only
     * this thread is left. */
    uintptr_t me = me_thread();
    for (unsigned k = 0; k < SHOAL__NWINS; k++)
        if (atomic_load_explicit(&win_holder[k], memory_order_relaxed) != me)
            atomic_store_explicit(&win_holder[k], 0, memory_order_relaxed);
}

uintptr_t shoal__xfer_window_holder(unsigned k)
{
    return k < SHOAL__NWINS ? atomic_load_explicit(&win_holder[k], memory_order_relaxed) : 0;
}

/* Bounded spinning for a turn: a few pause loops (the holder's move takes a few
 * instructions), then sched_yield, then short sleeps, none a cancellation point - a waiter
 * at a higher real-time priority than the holder, on the holder's CPU, would otherwise spin
 * for ever (a yield only lets threads of its own priority run; a sleep lets any). Slow path
 * only. */
#define TURN_SPINS  64u
#define TURN_YIELDS 64u
static void wait_turn(unsigned *n)
{
    unsigned k = (*n)++;
    if (k < TURN_SPINS) {
        shoal__cpu_relax();
    } else if (k < TURN_SPINS + TURN_YIELDS) {
        sched_yield();
    } else {
        /* 20 us on a private word nobody wakes: a raw system call, not nanosleep, which
         * is a cancellation point - a thread cancelled here would leave its window taken
         * (and a send's record RESERVED) for the process's life; async-signal-safe, as a
         * move may be made from a handler. */
        _Atomic uint32_t w = 0;
        struct timespec ts = { 0, 20000 };
        shoal__futex_wait(&w, 0, &ts, false);
    }
}

/* Take a window of ours and name in it record rec at sequence seq, moved as kind. Waits
 * only while all 63 are taken (63 threads of this process inside a move at once). relaxed:
 * written and read by threads of this process in their own program order, and by the
 * owner only once we are gone (as the ledger, shoal__holds_add). */
static unsigned win_open(struct shoal__wins *ws, uint32_t rec, uint64_t seq, unsigned kind)
{
    uint64_t u = atomic_load_explicit(&ws->used, memory_order_relaxed);
    unsigned n = 0;
    for (;;) {
        uint64_t avail = ~u & ~UINT64_C(1);
        if (!avail) {
            wait_turn(&n);
            u = atomic_load_explicit(&ws->used, memory_order_relaxed);
            continue;
        }
        unsigned k = (unsigned)__builtin_ctzll(avail);
        /* acquire: pairs with the release in win_close of k's last holder, so that
         * entry_enter reads each entry as that holder left it (its window cleared), never
         * an older value naming k: k is ours now, and win_holder[k] would then make that
         * stale naming look like our own (ENTER_SELF) - a false SHOAL_EDEADLK. */
        if (atomic_compare_exchange_weak_explicit(&ws->used, &u, u | UINT64_C(1) << k,
                                                  memory_order_acquire, memory_order_relaxed)) {
            atomic_signal_fence(memory_order_seq_cst);
            atomic_store_explicit(&win_holder[k], me_thread(), memory_order_relaxed);
            atomic_signal_fence(memory_order_seq_cst);
            atomic_store_explicit(&ws->win[k], (seq << 32) | ((uint64_t)rec << 16) | kind,
                                  memory_order_relaxed);
            return k;
        }
    }
}

static void win_close(struct shoal__wins *ws, unsigned k)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&win_holder[k], 0, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    /* release: pairs with the acquire CAS in win_open of k's next holder (the entry this
     * window named was settled before: entry_leave). */
    atomic_fetch_and_explicit(&ws->used, ~(UINT64_C(1) << k), memory_order_release);
}

/* entry_enter's answers. */
enum { ENTER_NONE = 0, ENTER_OK = 1, ENTER_SELF = -1 };

/* Name window k in our ledger entry e for generation gen, adding d to its count, in one
 * CAS; waits (wait_turn) while another thread of ours has a window named there (its move
 * takes a few instructions). ENTER_NONE: the entry is for a newer generation (a stale ref;
 * the move fails later, and nothing is counted, as shoal__gcount_add would drop it), or it
 * marks the slot as in one of our caches: no object lives there, so the move of generation
 * gen fails too (an accept racing its record's expiry, the slot freed into our cache
 * meanwhile), and the mark stays (layout/mpseg.h, shoal__holds_cached: overwritten, the
 * slot would be lost for the store's life when we die). ENTER_SELF: the window named there
 * is this very thread's (a signal handler moving the object its thread is moving): nothing
 * done. relaxed: as above. */
static int entry_enter(_Atomic uint64_t *e, uint64_t gen, unsigned k, int32_t d)
{
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed), nv;
    unsigned n = 0;
    for (;;) {
        uint64_t g = v >> 32;
        unsigned held = shoal__gcount_win(v);
        if (g == gen && held) {
            if (unlikely(atomic_load_explicit(&win_holder[held], memory_order_relaxed) ==
                         me_thread()))
                return ENTER_SELF;
            wait_turn(&n);
            v = atomic_load_explicit(e, memory_order_relaxed);
            continue;
        }
        if (g == gen)
            nv = (v & ~(uint64_t)UINT32_MAX) |
                 (uint32_t)((uint32_t)v + (uint32_t)d * SHOAL__GC_ONE + k);
        else if (shoal__holds_cached(v))
            return ENTER_NONE;
        else if (g == 0 || shoal__gen_after(gen, g))   /* unused, or older */
            nv = (gen << 32) | ((uint32_t)d * SHOAL__GC_ONE + k);
        else
            return ENTER_NONE;
        if (atomic_compare_exchange_weak_explicit(e, &v, nv, memory_order_relaxed,
                                                  memory_order_relaxed))
            return ENTER_OK;
    }
}

/* The message of a move that would wait for its own thread (ENTER_SELF). */
SHOAL__COLD static int self_move(const char *call, uint64_t id)
{
    return shoal__err(SHOAL_EDEADLK, "%s: this thread is already inside a shoal_transfer or "
                      "shoal_accept of object 0x%016llx (called from a signal handler that "
                      "interrupted it?): the move would wait for itself; make it after the "
                      "interrupted call returns", call, (unsigned long long)id);
}

/* Settle the entry for generation gen: add d to its count and clear its window, in one
 * CAS. The generation may have moved on while our window was named: once a send's record
 * is INFLIGHT, or while an accept's CAS is failing (the record expired), nothing of ours
 * holds the object, which may be freed and its slot given a new object, which any thread
 * of ours may retain or move - resetting the entry to that generation, without our window
 * and perhaps naming its own. Then our move's object is gone with its count: leave the
 * entry alone (our - 1 would come off the new object's count, and our clearing would drop
 * another thread's window). */
static void entry_leave(_Atomic uint64_t *e, uint64_t gen, int32_t d)
{
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed), nv;
    do {
        if ((v >> 32) != gen)
            return;
        nv = (v & ~(uint64_t)UINT32_MAX) |
             (uint32_t)(((uint32_t)v & ~SHOAL__GC_WIN) + (uint32_t)d * SHOAL__GC_ONE);
    } while (!atomic_compare_exchange_weak_explicit(e, &v, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
}

int shoal__xfer_window_adjust(const struct shoal__wins *ws, unsigned k, unsigned proc, uint32_t inc)
{
    if (k == 0 || k >= SHOAL__NWINS)
        return 0;
    uint64_t wv = atomic_load_explicit(&ws->win[k], memory_order_relaxed);
    uint64_t seq = wv >> 32, who = ((uint64_t)(inc & XR_INC_BITS) << 10) | ((uint64_t)(proc & 0xffu) << 2);
    const struct shoal__xrec *r = &table()->rec[(wv >> 16) & (SHOAL__XFER_RECS - 1)];
    uint64_t st = atomic_load_explicit(&r->st, memory_order_relaxed);
    switch (wv & 3u) {
    case SHOAL__WIN_SEND:      /* still reserved by it: not sent, the count is right */
        return XR_PHASE(st) == SHOAL__XR_RESERVED && XR_SEQ(st) == seq &&
               (st & XR_WHO_MASK) == who ? 0 : -1;
    case SHOAL__WIN_ACCEPT:    /* taken by this very window: the count (raised first) is
                                * right; TAKEN by another window of the process (a thread
                                * that won the record and settled its entry, ours entering
                                * after it and losing) is not ours */
        return XR_PHASE(st) == SHOAL__XR_FREE && XR_SEQ(st) == ((seq + 1) & UINT32_MAX) &&
               (st & XR_WHO_MASK) == taken_who(proc, inc, k) ? 0 : -1;
    default:                   /* garbage it wrote: count what the ledger says */
        return 0;
    }
}

uint64_t shoal__xfer_due(void)
{
    struct shoal__inflight *x = table();
    return x ? atomic_load_explicit(&x->due, memory_order_relaxed) : 0;
}

/* Lower the earliest deadline to dl; true when it was later (or none): the expiring thread
 * may sleep past dl and must be woken. seq_cst: with the scanner's exchange of due and its
 * loads of the records (shoal__xfer_expire): either it scans after our record was in flight,
 * or our CAS comes after its exchange and leaves dl here. */
static bool due_lower(struct shoal__inflight *x, uint64_t dl)
{
    uint64_t cur = atomic_load_explicit(&x->due, memory_order_seq_cst);
    while (cur == 0 || dl < cur)
        if (atomic_compare_exchange_weak_explicit(&x->due, &cur, dl, memory_order_seq_cst,
                                                  memory_order_seq_cst))
            return true;
    return false;
}

/* Wake the thread that expires records: the published owner's drain thread (its futex word
 * is in the shared segment, so a client can wake it), or a private store's I/O thread. */
static void kick(shoal__rt_t *rt)
{
    if (rt->batched) {
        shoal__up.io_kick();   /* io/ring.c */
        return;
    }
    _Atomic uint32_t *w = &shoal__mp_of(rt)->procs[0].wake;
    /* release: pairs with the acquire load of wake in the drain loop (remote_free.c). */
    atomic_fetch_add_explicit(w, 1, memory_order_release);
    shoal__futex_wake(w, INT32_MAX, true);   /* shared: a client wakes the owner */
}

static int transfer(shoal_ref ref, int64_t ttl_ns)
{
    shoal__rt_t *rt = shoal__rt;
    if (ttl_ns <= 0)
        return shoal__err(SHOAL_EINVAL, "shoal_transfer: ttl_ns is %lld: give how long (ns, > 0) "
                          "the store keeps the ref for its receiver before releasing it",
                          (long long)ttl_ns);
    int err;
    if (!shoal__slot_of(ref, &err))
        return err;   /* EINVAL (forged) or ESTALE (freed), message set */
    struct shoal__inflight *x = table();
    uint64_t now = shoal__now_ns();
    uint64_t dl = (uint64_t)ttl_ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + (uint64_t)ttl_ns;
    uint32_t h = home(ref.id);
    for (uint32_t i = 0; i < SHOAL__XFER_PROBE; i++) {
        struct shoal__xrec *r = &x->rec[(h + i) & (SHOAL__XFER_RECS - 1)];
        uint64_t st = atomic_load_explicit(&r->st, memory_order_relaxed);
        unsigned ph = XR_PHASE(st);
        if ((ph != SHOAL__XR_FREE && ph != SHOAL__XR_EXPIRED) ||
            (ph == SHOAL__XR_FREE && (st & XR_WHO_MASK)))   /* TAKEN: its receiver's still */
            continue;
        uint64_t rst = st_make(XR_SEQ(st) + 1, me_bits(rt), SHOAL__XR_RESERVED);
        /* relaxed: a reserved record is only ours; its fields are published below. */
        if (!atomic_compare_exchange_strong_explicit(&r->st, &st, rst, memory_order_relaxed,
                                                     memory_order_relaxed))
            continue;
        atomic_store_explicit(&r->id, ref.id, memory_order_relaxed);
        atomic_store_explicit(&r->deadline, dl, memory_order_relaxed);
        /* Published or attached: inside a window naming this reservation, so that if we die
         * anywhere in the move the owner knows whether the record or our ledger holds the
         * reference (layout/mpseg.h, "Windows"). The owner reads our ledger and windows only
         * once we are gone, which orders all these writes before its reads. */
        struct shoal__wins *ws = NULL;
        _Atomic uint64_t *e = NULL;
        unsigned k = 0;
        if (shoal__holds) {
            ws = shoal__wins_of(shoal__holds, rt->nslots);
            e = &shoal__holds[shoal__id_idx(ref.id)];
            k = win_open(ws, (h + i) & (SHOAL__XFER_RECS - 1), XR_SEQ(rst), SHOAL__WIN_SEND);
            int in = entry_enter(e, shoal__id_gen(ref.id), k, 0);
            if (unlikely(in == ENTER_SELF)) {
                /* Nothing moved: the reservation goes back (FREE, naming nobody: a sender
                 * reserves it from there; relaxed, it publishes nothing), then the window,
                 * which no entry names. The caller keeps its reference. */
                atomic_store_explicit(&r->st, st_make(XR_SEQ(rst), 0, SHOAL__XR_FREE),
                                      memory_order_relaxed);
                win_close(ws, k);
                return self_move("shoal_transfer", ref.id);
            }
            if (in != ENTER_OK)
                e = NULL;
        }
        /* release: publishes id and deadline to the acquire loads of st in accept and
         * expire. From here the record holds the reference. */
        atomic_store_explicit(&r->st, st_make(XR_SEQ(rst), rst, SHOAL__XR_INFLIGHT),
                              memory_order_release);
        if (unlikely(shoal__xfer_window_hook != NULL) && shoal__xfer_window_hook())
            return 0;
        if (e)
            entry_leave(e, shoal__id_gen(ref.id), -1);
        if (ws)
            win_close(ws, k);
        if (due_lower(x, dl))
            kick(rt);
        return 0;
    }
    return shoal__err(SHOAL_EBUSY, "shoal_transfer: too many refs are in flight near 0x%016llx "
                      "(the store holds up to %u, %u per neighbourhood): have receivers accept "
                      "them, or transfer with a shorter ttl_ns", (unsigned long long)ref.id,
                      SHOAL__XFER_RECS, SHOAL__XFER_PROBE);
}

SHOAL_API int shoal_transfer(shoal_ref ref, int64_t ttl_ns)
{
    SHOAL__CALL(transfer(ref, ttl_ns));
}

static int accept_ref(shoal_ref ref)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t id = ref.id, idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (shoal__id_host(id) != 0 || idx == 0 || gen == 0 || idx >= rt->nslots)
        return shoal__err(SHOAL_EINVAL, "shoal_accept: 0x%016llx is not a ref of this store "
                          "(null, forged or corrupt): pass the 8 bytes the sender wrote, "
                          "decoded with shoal_ref_decode", (unsigned long long)id);
    struct shoal__inflight *x = table();
    uint32_t h = home(id);
    bool expired = false;
    for (uint32_t i = 0; i < SHOAL__XFER_PROBE; i++) {
        struct shoal__xrec *r = &x->rec[(h + i) & (SHOAL__XFER_RECS - 1)];
        /* acquire: pairs with the sender's release store of INFLIGHT (id and deadline). */
        uint64_t st = atomic_load_explicit(&r->st, memory_order_acquire);
        unsigned ph = XR_PHASE(st);
        if ((ph != SHOAL__XR_INFLIGHT && ph != SHOAL__XR_EXPIRED) ||
            atomic_load_explicit(&r->id, memory_order_relaxed) != id)
            continue;
        if (ph == SHOAL__XR_EXPIRED) {
            expired = true;
            continue;
        }
        if (unlikely(shoal__xfer_accept_hook != NULL))
            shoal__xfer_accept_hook();
        /* Published or attached: inside a window naming this record and sequence, our
         * ledger counting the reference first; the record then goes TAKEN, naming us, and
         * FREE once our ledger is settled. If we die anywhere in the move the owner knows
         * from the record whether it is ours (layout/mpseg.h, "Windows"). */
        uint32_t ri = (h + i) & (SHOAL__XFER_RECS - 1);
        struct shoal__wins *ws = NULL;
        _Atomic uint64_t *e = NULL;
        unsigned k = 0;
        uint64_t who = 0;
        if (shoal__holds) {
            ws = shoal__wins_of(shoal__holds, rt->nslots);
            e = &shoal__holds[idx];
            k = win_open(ws, ri, XR_SEQ(st), SHOAL__WIN_ACCEPT);
            who = taken_who(rt->proc, shoal__chunk_me >> 8, k);
            int in = entry_enter(e, gen, k, 1);
            if (unlikely(in == ENTER_SELF)) {   /* nothing moved; no entry names k */
                win_close(ws, k);
                return self_move("shoal_accept", id);
            }
            if (in != ENTER_OK)
                e = NULL;
        }
        /* acquire: the reference is ours now; pairs with the sender's release above (the
         * object's bytes themselves are published by its seal). */
        bool won = atomic_compare_exchange_strong_explicit(&r->st, &st,
                                                           st_make(XR_SEQ(st) + 1, who, SHOAL__XR_FREE),
                                                           memory_order_acquire, memory_order_relaxed);
        if (won && unlikely(shoal__xfer_window_hook != NULL) && shoal__xfer_window_hook())
            return 0;
        if (e)
            entry_leave(e, gen, won ? 0 : -1);   /* another receiver, or the deadline, was first */
        if (ws) {
            if (won)   /* TAKEN -> FREE: only we move a record that names us (relaxed: it
                        * publishes nothing; a sender's reservation CASes from it) */
                atomic_store_explicit(&r->st, st_make(XR_SEQ(st) + 1, 0, SHOAL__XR_FREE),
                                      memory_order_relaxed);
            /* Only now: while the record names window k, no other thread of ours may take
             * k (and name the record in it). */
            win_close(ws, k);
        }
        if (won)
            return 0;
        i--;   /* look at this record again: it may have been sent again meanwhile */
    }
    if (expired)
        return shoal__err(SHOAL_ETIMEDOUT, "shoal_accept: ref 0x%016llx was in flight longer "
                          "than its ttl_ns and the store released it (the object may be gone): "
                          "have the sender transfer it with a longer ttl_ns",
                          (unsigned long long)id);
    int err;
    if (!shoal__slot_of(ref, &err))
        return err == SHOAL_ESTALE
            ? shoal__err(SHOAL_ESTALE, "shoal_accept: ref 0x%016llx has no reference in flight "
                         "and its object is freed: it was never transferred, or every transfer "
                         "of it was accepted (or expired) already", (unsigned long long)id)
            : err;
    return shoal__err(SHOAL_ESTALE, "shoal_accept: ref 0x%016llx has no reference in flight: "
                      "it was never passed to shoal_transfer, or each transfer of it was "
                      "accepted already (one accept per transfer)", (unsigned long long)id);
}

SHOAL_API int shoal_accept(shoal_ref ref)
{
    SHOAL__CALL(accept_ref(ref));
}

/* Drop the record's reference on id. The published owner's service threads free through
 * their own slot cache, as publish.c drops a gone process's references; a private store's
 * I/O thread releases like any caller (no ledger there). */
static void drop(shoal__rt_t *rt, uint64_t id, struct shoal__thr *t)
{
    if (!t) {
        shoal__release((shoal_ref){ id });
        return;
    }
    uint64_t idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (idx == 0 || idx >= rt->nslots)
        return;   /* a record a process scribbled on: leak, never follow */
    shoal__slot *s = &rt->slots[idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    do {
        if (shoal__w_gen(w) != gen || shoal__w_state(w) == SHOAL__FREE || shoal__w_refs(w) == 0)
            return;
        nw = shoal__w_refs(w) > 1 ? w - 1 : shoal__w_make(shoal__gen_next(gen), SHOAL__FREE, 0);
        /* acq_rel: as shoal_release - the free that may follow sees every holder's release. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (shoal__w_refs(w) == 1)
        shoal__free_routed(rt, t, (uint32_t)idx, w);
}

/* A record reserved (it died between reserving and sending) or TAKEN (between taking and
 * freeing it) by a process that is gone. */
static bool reserver_gone(const shoal__rt_t *rt, uint64_t st)
{
    unsigned p = (unsigned)(st >> 2) & 0xffu;
    bool taken = XR_PHASE(st) == SHOAL__XR_FREE;   /* TAKEN: 16 bits of it (taken_who) */
    uint32_t bits = taken ? XR_TAKEN_INC_BITS : XR_INC_BITS;
    uint32_t inc = (uint32_t)(st >> (taken ? 16 : 10)) & bits;
    if (rt->batched)
        return false;
    const struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    return atomic_load_explicit(&P->state, memory_order_acquire) != SHOAL__PROC_LIVE ||
           (atomic_load_explicit(&P->inc, memory_order_relaxed) & bits) != inc;
}

uint64_t shoal__xfer_expire(shoal__rt_t *rt, bool sweep, struct shoal__thr *t)
{
    struct shoal__inflight *x = table();
    if (!x)
        return 0;
    uint64_t due = atomic_load_explicit(&x->due, memory_order_relaxed), now = shoal__now_ns();
    if (!sweep && (due == 0 || due > now))
        return due;
    /* seq_cst: see due_lower. A deadline lowered after this exchange stays. */
    atomic_exchange_explicit(&x->due, 0, memory_order_seq_cst);
    uint64_t next = 0;
    for (uint32_t i = 0; i < SHOAL__XFER_RECS; i++) {
        struct shoal__xrec *r = &x->rec[i];
        /* acquire: pairs with the sender's release store of INFLIGHT. */
        uint64_t st = atomic_load_explicit(&r->st, memory_order_acquire);
        unsigned ph = XR_PHASE(st);
        if ((ph == SHOAL__XR_RESERVED || (ph == SHOAL__XR_FREE && (st & XR_WHO_MASK))) &&
            sweep && reserver_gone(rt, st)) {   /* reserved or TAKEN by a process now gone */
            atomic_compare_exchange_strong_explicit(&r->st, &st, st_make(XR_SEQ(st) + 1, 0, SHOAL__XR_FREE),
                                                    memory_order_relaxed, memory_order_relaxed);
            continue;
        }
        if (ph != SHOAL__XR_INFLIGHT)
            continue;
        uint64_t dl = atomic_load_explicit(&r->deadline, memory_order_relaxed);
        if (dl > now) {
            if (next == 0 || dl < next)
                next = dl;
            continue;
        }
        uint64_t id = atomic_load_explicit(&r->id, memory_order_relaxed);
        /* acquire: the reference is ours to drop (pairs with the sender's release). */
        if (atomic_compare_exchange_strong_explicit(&r->st, &st,
                                                    st_make(XR_SEQ(st) + 1, st, SHOAL__XR_EXPIRED),
                                                    memory_order_acquire, memory_order_relaxed))
            drop(rt, id, t);
    }
    /* A sweep runs on the publish thread, beside the expiring thread, which may have read
     * due as 0 while we had it reset: wake it to look again. */
    if (next && due_lower(x, next) && sweep)
        kick(rt);
    return atomic_load_explicit(&x->due, memory_order_relaxed);
}
