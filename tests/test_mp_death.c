/* test_mp_death.c - what a client's death leaves behind (issue 11): nothing. A client
 * SIGKILLed in the middle of put loops gives back its capacity and its objects; its
 * unfinished put_file / write_file results fail with SHOAL_ECANCELED instead of hanging and
 * its process index comes back; a spilled object whose last reference a dead client held
 * is forgotten without freeing memory a live object now owns.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../layout/mpseg.h"
#include "../mproc/mproc.h"
#include "lib/mp.h"

/* How many objects of len bytes the store takes now (then released again). */
static int fill_count(size_t len)
{
    static shoal_ref r[4096];
    void *b = calloc(1, len);
    int got = 0;
    while (got < 4096 && shoal_put(b, len, &r[got]) == 0)
        got++;
    for (int k = 0; k < got; k++)
        CHECK_OK(shoal_release(r[k]));
    free(b);
    return got;
}

/* 11.4: clients SIGKILLed at random moments of put / create+seal / get / release loops:
 * once they are gone the store's figures are back where they started, and the store holds
 * as many objects as it did before they came. */
static void test_killed_in_put_loops(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    uint64_t seed = (uint64_t)getpid() * 7919u;
    int rounds = SAN_DIV > 1 ? 3 : 6;
    uint64_t suspect[6 * 4];
    size_t nsuspect = 0;
    for (int round = 0; round < rounds; round++) {
        struct mp_child c[4];
        for (int k = 0; k < 4; k++) {
            c[k] = mp_attached();
            CU_ASSERT_EQUAL(mp_call(&c[k], MP_CHURN, seed + (uint64_t)k, 48, 70000, 0).rc, 0);
        }
        for (int k = 0; k < 4; k++) {
            usleep((useconds_t)(5000 + rnd_next(&seed) % 60000));
            pid_t pid = c[k].pid;
            uint64_t seen = mp_deaths();
            CU_ASSERT_EQUAL(mp_kill(&c[k]), 128 + SIGKILL);
            CU_ASSERT(mp_death_processed(seen));
            uint64_t id = mp_churn_suspect(pid);
            if (id && nsuspect < sizeof suspect / sizeof suspect[0])
                suspect[nsuspect++] = id;
        }
    }
    /* A client killed inside a retain or release, between its ledger and the object's
     * count, leaked that one reference (the bounded leak shoal.h documents): its objects
     * are its own, so that reference is dropped here. Killed anywhere else in the call, the
     * object is gone already (ESTALE). Anything else left fails below. */
    for (size_t i = 0; i < nsuspect; i++) {
        int rc = shoal_release((shoal_ref){ suspect[i] });
        CU_ASSERT(rc == 0 || rc == SHOAL_ESTALE);
    }
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "killed clients cleaned up"));
    int after = fill_count(64u << 10);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "fill released"));
    CHECK_OK(shoal_shutdown());
    /* The same store, fresh. */
    mp_owner_start();
    int fresh = fill_count(64u << 10);
    CHECK_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(after, fresh);
    if (after != fresh)
        fprintf(stderr, "a fresh store holds %d objects of 64 KiB, the one the clients died "
                "in %d\n", fresh, after);
}

/* An owner whose 16 MiB store spills to a fresh directory of ours (dir, 64 bytes). */
static void spill_owner_start(char *dir, const char *tag)
{
    snprintf(dir, 64, "/tmp/shoal-mp-%s-%d", tag, (int)getpid());
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 || errno == EEXIST);
    shoal_config cfg = shoal_test_config();
    cfg.store_bytes = 16u << 20;
    cfg.spill_dir = dir;
    mp_owner_start_cfg(cfg);
}

/* 11.1: a client held the last reference to an object the owner had spilled and died: the
 * owner forgets the spilled copy (its extent comes back) and frees nothing else. Before,
 * it freed the block the object had used before it was spilled, which a live object owned
 * by then, so a later put overwrote that object's bytes. */
static void test_dead_client_held_spilled_object(void)
{
    char dir[64];
    spill_owner_start(dir, "spill");
    shoal_info i0 = info_now();
    enum { N = 120, LEN = 256u << 10 };
    static shoal_ref r[N];
    void *b = malloc(LEN);
    pat_fill(b, LEN, 21, 0);
    ASSERT_OK(shoal_put(b, LEN, &r[0]));
    struct mp_child c = mp_attached();
    CU_ASSERT_EQUAL(mp_call(&c, MP_RETAIN, mp_ref_bits(r[0]), 0, 0, 0).rc, 0);
    CHECK_OK(shoal_release(r[0]));            /* the client holds the last reference */
    /* Fill the store twice over: the oldest unread objects, r[0] first, are spilled and
     * their blocks taken by newer objects. */
    for (int k = 1; k < N; k++) {
        pat_fill(b, LEN, 21, (uint64_t)k);
        ASSERT_OK(shoal_put(b, LEN, &r[k]));
    }
    shoal_stats st;
    CHECK_OK(shoal_stats_get(&st, sizeof st));
    CU_ASSERT(st.spilled_objects > 0);
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    /* Its object goes (bytes_used counts only resident objects, and the spiller may still
     * be writing some out: only the count is checked here). */
    uint64_t live = 0;
    for (int k = 0; k < 10000 && (live = info_now().objects_live) != i0.objects_live + N - 1; k++)
        usleep(1000);
    CU_ASSERT_EQUAL(live, i0.objects_live + N - 1);
    /* Puts that reuse freed blocks, then every object must still hold its own bytes. */
    static shoal_ref more[16];
    for (int k = 0; k < 16; k++) {
        pat_fill(b, LEN, 22, (uint64_t)k);
        ASSERT_OK(shoal_put(b, LEN, &more[k]));
    }
    /* Each checked object is released at once: an object that was read stays resident
     * (io/spill.c), so the restores need the room. */
    int bad = 0;
    for (int k = 1; k < N; k++) {
        const void *d;
        size_t n;
        int rc = shoal_get_timeout(r[k], 10 * 1000000000ll, &d, &n);
        if (rc != 0 || n != LEN || !pat_ok(d, n, 21, (uint64_t)k))
            bad++;
        if (rc != 0 && bad < 4)
            fprintf(stderr, "object %d: %d (%s)\n", k, rc, shoal_last_error());
        CHECK_OK(shoal_release(r[k]));
    }
    CU_ASSERT_EQUAL(bad, 0);
    if (bad)
        fprintf(stderr, "%d live objects lost their bytes\n", bad);
    for (int k = 0; k < 16; k++)
        CHECK_OK(shoal_release(more[k]));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    /* No spill space is held for the dead client's object (nor any other). */
    for (int k = 0; k < 5000; k++) {
        CHECK_OK(shoal_stats_get(&st, sizeof st));
        if (st.spilled_now_objects == 0 && st.spilled_now_bytes == 0)
            break;
        usleep(1000);
    }
    CU_ASSERT_EQUAL(st.spilled_now_objects, 0);
    CU_ASSERT_EQUAL(st.spilled_now_bytes, 0);
    free(b);
    CHECK_OK(shoal_shutdown());
    rmdir(dir);
}

/* The count the owner's ledger keeps for its object r (layout/mpseg.h), and the object's
 * own count. */
static uint32_t own_ledger(shoal_ref r)
{
    return shoal__gcount_of(atomic_load_explicit(&shoal__holds[shoal__id_idx(r.id)],
                                                 memory_order_relaxed), shoal__id_gen(r.id));
}

static uint64_t word_of(shoal_ref r)
{
    return atomic_load_explicit(&shoal__rt->slots[shoal__id_idx(r.id)].word, memory_order_acquire);
}

/* The owner's ledger counts what the owner holds through a spill and a restore. The
 * spiller's claim takes a reference of its own, which its release drops from the ledger:
 * it is counted there when taken. Before, each spill and each restore left the owner's
 * entry one lower than what it held, and the owner, capping what it drops for a dead
 * client at what its own ledger leaves (today only for a dead ledger that claims more than
 * the object's count: mproc/publish.c, release_one), could drop its own reference: the
 * object freed under it. */
static void test_owner_ledger_through_spill(void)
{
    char dir[64];
    spill_owner_start(dir, "spill2");
    shoal_info i0 = info_now();
    enum { N = 120, LEN = 256u << 10 };
    static shoal_ref r[N];
    void *b = malloc(LEN);
    for (int k = 0; k < N; k++) {   /* twice the store: the oldest unread, r[0] first, spill */
        pat_fill(b, LEN, 23, (uint64_t)k);
        ASSERT_OK(shoal_put(b, LEN, &r[k]));
    }
    /* Spilled, and the spiller has let go: its reference leaves the count, then the
     * ledger (core/object.c, release). */
    for (int k = 0; k < 10000 && !(shoal__w_state(word_of(r[0])) == SHOAL__SPILLED &&
                                   shoal__w_refs(word_of(r[0])) == 1 && own_ledger(r[0]) == 1); k++)
        usleep(1000);
    CU_ASSERT_EQUAL_FATAL(shoal__w_state(word_of(r[0])), SHOAL__SPILLED);
    CU_ASSERT_EQUAL(shoal__w_refs(word_of(r[0])), 1);
    CU_ASSERT_EQUAL(own_ledger(r[0]), 1);
    for (int j = N - 1; j > N / 2; j--)   /* room to restore it */
        CHECK_OK(shoal_release(r[j]));
    const void *d;
    size_t n;
    CHECK_OK(shoal_get_timeout(r[0], 10 * 1000000000ll, &d, &n));
    CU_ASSERT(n == LEN && pat_ok(d, n, 23, 0));
    /* The restore's claim is dropped just after the get is answered. */
    for (int k = 0; k < 10000 && !(shoal__w_refs(word_of(r[0])) == 1 && own_ledger(r[0]) == 1); k++)
        usleep(1000);
    CU_ASSERT_EQUAL(shoal__w_refs(word_of(r[0])), 1);
    CU_ASSERT_EQUAL(own_ledger(r[0]), 1);
    for (int j = 0; j <= N / 2; j++)
        CHECK_OK(shoal_release(r[j]));
    free(b);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
    rmdir(dir);
}

/* A client that dies inside a move of a reference into or out of flight, its ledger one
 * too high until its window settles it (layout/mpseg.h, "Windows"), while another holder
 * moves its own reference on the same object over and over. Each round the client dies
 * stopped just after the record's move, inside shoal_transfer (its retained reference is in
 * flight, its ledger still counts it: the owner must drop nothing) or inside shoal_accept
 * (it took one we sent, its ledger counts it: the owner must drop that one).
 * review6 found that an owner capping what it drops at the object's count minus what the
 * other holders' ledgers, the lists and the records in flight say, read one after the other
 * while they move, reads them low:
 *   - retain/release: a release and a retain between its read of the word and its read of
 *     that holder's ledger leave the word as it was (its CAS succeeds) and the ledger read
 *     one low;
 *   - transfer/accept: an accept between its read of the receiver's ledger (before the
 *     accept raised it) and its read of the records (after the accept freed its record)
 *     counts that reference nowhere; the word never changes.
 * Either way it drops a reference a live holder has: the count ends below the two that
 * are held (or reaches 0 while both are, the churn's call answering SHOAL_ESTALE), and the
 * next release frees the object under the other holder. review6's version of this test
 * (the dead ledger made one high by hand) failed on 9bfd8bf in every run; the owner now
 * reads only the dead ledger and its windows, which nothing live moves. */
enum { DE_XFER_STUCK = MP_USER,   /* a=ref: shoal_transfer stopped inside its window, just
                                     after the record's move (what a thread killed there
                                     leaves) -> rc */
       DE_ACCEPT_STUCK,           /* a=ref: shoal_accept stopped likewise -> rc */
       DE_ACCEPT_RACED,           /* a=ref: two threads accepting the same record, stopped
                                     (test_two_threads_accept_one_record) -> rc */
       DE_MAP,                    /* s=path: map the words shared with the parent -> rc */
       DE_XFER_SLOT_REUSED,       /* a=ref: shoal_transfer whose window waits for the parent
                                     (test_slot_reused_inside_send_window) -> rc */
       DE_ACCEPT_EXPIRING,        /* put, transfer and accept an object of its own, the accept
                                     held until the record expired and the slot is in this
                                     process's cache -> rc, a=ref, b=its ledger entry */
       DE_SELF_MOVE,              /* signal handlers moving the object their thread is moving
                                     (test_move_from_own_signal_handler) -> rc */
       DE_CANCEL_WAITER };        /* a thread waiting its turn in shoal_transfer, cancelled
                                     (test_cancel_while_waiting_turn) -> rc */

static bool stop_here(void)
{
    return true;
}

/* Two threads of this process accept the same record R of ref x, both having read it
 * INFLIGHT at sequence s: the first wins it and is stopped after settling its ledger entry,
 * before its TAKEN -> FREE store; the second is stopped after its (failed) CAS, before its
 * leave. The first is the real shoal_accept stopped by the hook, its next step (the one CAS
 * of entry_leave(e, 0)) made here; the second's steps, which the real code makes with the
 * same words (win_open, entry_enter(e, gen, k, +1), the CAS failing as R is TAKEN), are made
 * here as it would, its window k2 another than the first's. -> 0, or -1 with a message. */
static int accept_raced(shoal_ref x, struct mp_rep *r)
{
    shoal__xfer_window_hook = stop_here;
    int rc = shoal_accept(x);
    shoal__xfer_window_hook = NULL;
    if (rc != 0)
        return rc;
    _Atomic uint64_t *e = &shoal__holds[shoal__id_idx(x.id)];
    struct shoal__wins *ws = shoal__wins_of(shoal__holds, shoal__rt->nslots);
    uint64_t v = atomic_load(e);
    unsigned k1 = shoal__gcount_win(v);
    uint64_t used = atomic_load(&ws->used);
    if (k1 == 0 || !(used & (UINT64_C(1) << k1))) {
        snprintf(r->msg, sizeof r->msg, "no window named after the stopped accept (%llx)",
                 (unsigned long long)v);
        return -1;
    }
    uint64_t wv = atomic_load(&ws->win[k1]);   /* (s, R, ACCEPT) */
    /* The winner settles: count unchanged, window cleared (entry_leave(e, 0)). */
    atomic_store(e, v & ~(uint64_t)SHOAL__GC_WIN);
    /* The loser: its window, opened while it waited for the entry, names the same record
     * and sequence; it enters with + 1; its CAS from INFLIGHT s fails. */
    unsigned k2 = (unsigned)__builtin_ctzll(~used & ~UINT64_C(1));
    atomic_fetch_or(&ws->used, UINT64_C(1) << k2);
    atomic_store(&ws->win[k2], wv);
    atomic_store(e, (v & ~(uint64_t)SHOAL__GC_WIN) + SHOAL__GC_ONE + k2);
    return 0;
}

/* Words the child and the parent share (DE_MAP): [0] 1 = the child is inside its send
 * window, 2 = the parent has a new object in the slot, named in [1] (or, [3] = 1, has
 * released all but the child's last reference on the ref [1]); [2] the child's retain's
 * (release's) rc + 1000. */
static _Atomic uint64_t *shared;

/* Whether *w reaches v within 20 s (the other side of the test moves it). */
static bool word_reaches(_Atomic uint64_t *w, uint64_t v)
{
    for (int k = 0; k < 20000 && atomic_load(w) != v; k++)
        usleep(1000);
    return atomic_load(w) == v;
}

/* Inside the send's window, just after the record went INFLIGHT: wait for the parent to
 * accept and free the object and put another in its slot, retain that one (as any thread
 * of ours may, a new object in a slot our entry names), and go on. */
static bool wait_for_reuse(void)
{
    atomic_store(&shared[0], 1);
    bool reused = word_reaches(&shared[0], 2);
    shoal_ref y = mp_bits_ref(atomic_load(&shared[1]));
    if (reused)
        atomic_store(&shared[2], (uint64_t)((atomic_load(&shared[3]) ? shoal_release(y)
                                                                     : shoal_retain(y)) + 1000));
    return false;
}

/* Whether slot idx is in the store's shared stack of free slots (core/slots.c: chains
 * linked through their FREE words' low halves, 0 ending one, each chain's first slot's
 * `next` naming the next chain). While wait_cached looks, nothing pops (the thread that
 * would is this one) and a push leaves the chains below it as they were. Bounded by the
 * table size, as a walk of links another process writes must be. */
static bool in_shared_stack(uint32_t idx)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t seen = 0;
    uint32_t c = (uint32_t)atomic_load(&rt->hdr->free_head);
    while (c != 0 && c < rt->nslots && seen < rt->nslots) {
        for (uint32_t q = c; q != 0 && q < rt->nslots && seen < rt->nslots; seen++) {
            if (q == idx)
                return true;
            q = (uint32_t)(atomic_load(&rt->slots[q].word) & SHOAL__W_FREE_LINK);
        }
        c = atomic_load(&rt->slots[c].next);
    }
    return false;
}

/* DE_ACCEPT_EXPIRING's accept, held after it read its record INFLIGHT: wait (bounded) until
 * the record expired and the owner dropped the reference (the slot FREE; the client's
 * drain thread frees it and flushes it to the shared stack), then take slots into this
 * thread's cache (puts, until one of them is that slot, given back, or it is tagged): the
 * slot is in our cache, its ledger entry SHOAL__HOLDS_CACHED (core/thread.h). The puts are
 * kept (released with the client's death): giving them back would flush the oldest cached
 * slots, that one among them, to the shared stack. Once.
 * The wait is for the slot found in the shared stack itself, not for a look of its word:
 * the owner's drop makes the word FREE with a low half of 0 (mproc/inflight.c, drop) and
 * only then marks it FREEING for our drain thread (remote_free.c, shoal__free_routed), and
 * the last slot of a chain in the stack reads the same. An owner thread preempted between
 * the two (a loaded machine) let the wait take the slot for one in the stack: the puts all
 * came from the bump, the slot reached the stack only after them, and the test failed (8
 * runs of 130 with the test and three busy loops on one CPU). */
static uint32_t expiring_idx;
static bool expiring_cached, expiring_stacked;
static void wait_cached(void)
{
    shoal__xfer_accept_hook = NULL;
    _Atomic uint64_t *w = &shoal__rt->slots[expiring_idx].word;
    uint32_t tag = (uint32_t)(SHOAL__W_CACHED | shoal__rt->proc);
    for (int k = 0; k < 20000 && !(expiring_stacked = in_shared_stack(expiring_idx)); k++)
        usleep(1000);
    enum { PUTS = 4096 };
    static shoal_ref t[PUTS];
    int n = 0;
    while (n < PUTS && (uint32_t)atomic_load(w) != tag && shoal_put("c", 1, &t[n]) == 0)
        if (shoal__id_idx(t[n++].id) == expiring_idx)
            break;
    if (n && shoal__id_idx(t[n - 1].id) == expiring_idx)
        shoal_release(t[--n]);   /* back into our cache */
    uint64_t v = atomic_load(w);
    expiring_cached = shoal__w_state(v) == SHOAL__FREE && (uint32_t)v == tag;
}

static void accept_expiring(struct mp_rep *r)
{
    char b[64] = "expiring";
    shoal_ref x;
    if ((r->rc = shoal_put(b, sizeof b, &x)) != 0 ||
        (r->rc = shoal_transfer(x, 2000ll * 1000000)) != 0)
        return;
    uint32_t idx = (uint32_t)shoal__id_idx(x.id);
    expiring_idx = idx;
    expiring_cached = expiring_stacked = false;
    shoal__xfer_accept_hook = wait_cached;
    r->rc = shoal_accept(x);
    shoal__xfer_accept_hook = NULL;
    r->a = mp_ref_bits(x);
    r->b = atomic_load(&shoal__holds[idx]);
    if (!expiring_cached) {
        fprintf(stderr, "accept_expiring: the slot never reached this process's cache "
                "(accept rc %lld, slot word %016llx, %s the shared stack within 20 s)\n",
                (long long)r->rc, (unsigned long long)atomic_load(&shoal__rt->slots[idx].word),
                expiring_stacked ? "seen in" : "not seen in");
        r->rc = -1000;
    }
}

/* DE_SELF_MOVE: a handler of SIGUSR1, raised inside this thread's window (the hook), makes
 * the move named in self_move_code on self_x: 1 = accept, 2 = transfer. */
static shoal_ref self_x;
static volatile sig_atomic_t self_move_code;
static volatile int self_rc;
static void self_handler(int sig)
{
    (void)sig;
    self_rc = self_move_code == 1 ? shoal_accept(self_x)
                                  : shoal_transfer(self_x, 60ll * 1000000000);
}

static bool raise_inside(void)
{
    shoal__xfer_window_hook = NULL;   /* once */
    raise(SIGUSR1);
    return false;                     /* and the interrupted move goes on */
}

static int self_move(struct mp_rep *r)
{
    char b[64] = "self";
    (void)r;
    if (shoal_put(b, sizeof b, &self_x) != 0 || shoal_retain(self_x) != 0)
        return -3;
    struct sigaction sa = { .sa_handler = self_handler };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return -4;
    /* A handler that spins for ever kills this child (the parent's call answers -999). */
    alarm(20);
    /* The handler accepts while the transfer's window names our entry, then transfers
     * while the accept's does: each answers SHOAL_EDEADLK and does nothing. */
    self_move_code = 1;
    self_rc = 1;
    shoal__xfer_window_hook = raise_inside;
    int t = shoal_transfer(self_x, 60ll * 1000000000);
    int h1 = self_rc;
    self_move_code = 2;
    self_rc = 1;
    shoal__xfer_window_hook = raise_inside;
    int a = shoal_accept(self_x);
    int h2 = self_rc;
    shoal__xfer_window_hook = NULL;
    alarm(600);
    uint64_t idx = shoal__id_idx(self_x.id);
    uint64_t v = atomic_load(&shoal__holds[idx]);
    uint64_t used = atomic_load(&shoal__wins_of(shoal__holds, shoal__rt->nslots)->used);
    if (t != 0 || a != 0 || h1 != SHOAL_EDEADLK || h2 != SHOAL_EDEADLK ||
        shoal__gcount_of(v, shoal__id_gen(self_x.id)) != 2 || shoal__gcount_win(v) || used) {
        fprintf(stderr, "self_move: transfer %d (its handler's accept %d), accept %d (its "
                "handler's transfer %d), ledger %016llx, windows used %llx\n", t, h1, a, h2,
                (unsigned long long)v, (unsigned long long)used);
        return -1;
    }
    return shoal_release(self_x) != 0 || shoal_release(self_x) != 0 ? -2 : 0;
}

/* DE_CANCEL_WAITER: thread B's transfer of cw_x is held inside its window (the hook) while
 * thread A's transfer of cw_x waits its turn (spins, yields, then sleeps); A is cancelled
 * (pthread_cancel, deferred) meanwhile, and B let go. A move must hold no cancellation
 * point: a thread cancelled inside its window would leave the window taken for the
 * process's life (and a send's record RESERVED), and its caller no word of it. */
static shoal_ref cw_x;
static _Atomic int cw_in, cw_go, cw_rc_a = 1, cw_rc_b = 1;
static bool cw_hold(void)
{
    shoal__xfer_window_hook = NULL;   /* once: B's */
    atomic_store(&cw_in, 1);
    for (int k = 0; k < 20000 && !atomic_load(&cw_go); k++)
        usleep(1000);
    return false;                     /* and B's move goes on */
}
static void *cw_b(void *arg)
{
    (void)arg;
    atomic_store(&cw_rc_b, shoal_transfer(cw_x, 60ll * 1000000000));
    return NULL;
}
static void *cw_a(void *arg)
{
    (void)arg;
    atomic_store(&cw_rc_a, shoal_transfer(cw_x, 60ll * 1000000000));
    return NULL;
}

static int cancel_waiter(void)
{
    char b[64] = "cancel";
    if (shoal_put(b, sizeof b, &cw_x) != 0 || shoal_retain(cw_x) != 0 || shoal_retain(cw_x) != 0)
        return -3;
    pthread_t ta, tb;
    shoal__xfer_window_hook = cw_hold;
    if (pthread_create(&tb, NULL, cw_b, NULL) != 0)
        return -4;
    for (int k = 0; k < 20000 && !atomic_load(&cw_in); k++)
        usleep(1000);
    if (!atomic_load(&cw_in) || pthread_create(&ta, NULL, cw_a, NULL) != 0) {
        atomic_store(&cw_go, 1);
        pthread_join(tb, NULL);
        return -5;
    }
    usleep(100 * 1000);   /* A is past its spins and yields: sleeping between looks */
    pthread_cancel(ta);
    usleep(50 * 1000);
    atomic_store(&cw_go, 1);
    void *ra = NULL;
    pthread_join(tb, NULL);
    pthread_join(ta, &ra);
    uint64_t idx = shoal__id_idx(cw_x.id);
    uint64_t v = atomic_load(&shoal__holds[idx]);
    uint64_t used = atomic_load(&shoal__wins_of(shoal__holds, shoal__rt->nslots)->used);
    bool bad = ra == PTHREAD_CANCELED || atomic_load(&cw_rc_a) != 0 ||
               atomic_load(&cw_rc_b) != 0 || used || shoal__gcount_win(v) ||
               shoal__gcount_of(v, shoal__id_gen(cw_x.id)) != 1;
    if (bad)
        fprintf(stderr, "cancel_waiter: A %s (rc %d), B rc %d, ledger %016llx, windows used "
                "%llx\n", ra == PTHREAD_CANCELED ? "cancelled inside its move" : "returned",
                atomic_load(&cw_rc_a), atomic_load(&cw_rc_b), (unsigned long long)v,
                (unsigned long long)used);
    /* Whatever is in flight comes back (B's record, A's if it was sent), then all goes. */
    int got = 0;
    while (got < 2 && shoal_accept(cw_x) == 0)
        got++;
    for (int k = 0; k < got + 1; k++)
        shoal_release(cw_x);
    if (bad)
        return -1;
    return got != 2 ? -2 : 0;
}

static void death_child(const struct mp_cmd *m, struct mp_rep *r)
{
    if (m->code == DE_CANCEL_WAITER) {
        r->rc = cancel_waiter();
        return;
    }
    if (m->code == DE_ACCEPT_EXPIRING) {
        accept_expiring(r);
        return;
    }
    if (m->code == DE_SELF_MOVE) {
        r->rc = self_move(r);
        return;
    }
    if (m->code == DE_ACCEPT_RACED) {
        r->rc = accept_raced(mp_bits_ref(m->a), r);
        return;
    }
    if (m->code == DE_MAP) {
        shared = mp_shared_words(m->s, 4, false);
        r->rc = shared ? 0 : -1;
        return;
    }
    if (m->code == DE_XFER_SLOT_REUSED) {
        shoal__xfer_window_hook = wait_for_reuse;
        r->rc = shoal_transfer(mp_bits_ref(m->a), 600ll * 1000000000);
        shoal__xfer_window_hook = NULL;
        return;
    }
    shoal__xfer_window_hook = stop_here;
    r->rc = m->code == DE_XFER_STUCK ? shoal_transfer(mp_bits_ref(m->a), 600ll * 1000000000)
                                     : shoal_accept(mp_bits_ref(m->a));
    shoal__xfer_window_hook = NULL;
}

struct churn {
    shoal_ref r;
    bool xfer;
    _Atomic int stop, err;
    _Atomic uint64_t n;
};

static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    while (!atomic_load_explicit(&ch->stop, memory_order_relaxed)) {
        int rc = ch->xfer ? shoal_transfer(ch->r, 60ll * 1000000000) : shoal_retain(ch->r);
        /* A few hundred cycles in each state: the owner's count of the holders takes
         * about as long. */
        for (volatile int k = 0; k < 64; k++)
            ;
        if (rc == 0)
            rc = ch->xfer ? shoal_accept(ch->r) : shoal_release(ch->r);
        for (volatile int k = 0; k < 64; k++)
            ;
        if (rc != 0) {
            atomic_store(&ch->err, rc);
            break;
        }
        atomic_fetch_add_explicit(&ch->n, 1, memory_order_relaxed);
    }
    return NULL;
}

static void dead_ledger_high_while_holder_churns(bool xfer)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char b[64] = "churned";
    shoal_ref base;
    struct churn ch = { .xfer = xfer };
    ASSERT_OK(shoal_put(b, sizeof b, &base));
    ch.r = base;
    ASSERT_OK(shoal_retain(ch.r));   /* the churn's own reference */
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, churn_main, &ch) == 0);
    _Atomic uint64_t *word = &shoal__rt->slots[shoal__id_idx(ch.r.id)].word;
    int rounds = 0;
    for (; rounds < 150 && !atomic_load(&ch.err); rounds++) {
        struct mp_child c = mp_attached();
        bool sends = rounds % 2 == 0;
        if (sends) {   /* its own reference, stopped in flight */
            CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_RETAIN, mp_ref_bits(ch.r), 0, 0, 0).rc, 0);
            CU_ASSERT_EQUAL_FATAL(mp_call(&c, DE_XFER_STUCK, mp_ref_bits(ch.r), 0, 0, 0).rc, 0);
        } else {       /* one of ours, stopped taking it */
            ASSERT_OK(shoal_retain(ch.r));
            ASSERT_OK(shoal_transfer(ch.r, 60ll * 1000000000));
            CU_ASSERT_EQUAL_FATAL(mp_call(&c, DE_ACCEPT_STUCK, mp_ref_bits(ch.r), 0, 0, 0).rc, 0);
        }
        uint64_t seen = mp_deaths();
        CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
        CU_ASSERT_FATAL(mp_death_processed(seen));
        if (sends) {   /* the one it sent (or one the churn sent; they are alike) */
            CU_ASSERT_EQUAL_FATAL(shoal_accept(ch.r), 0);
            CU_ASSERT_EQUAL_FATAL(shoal_release(ch.r), 0);
        }
    }
    atomic_store(&ch.stop, 1);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(atomic_load(&ch.err), 0);
    if (getenv("SHOAL_TEST_VERBOSE"))
        fprintf(stderr, "%d deaths, %llu churns\n", rounds, (unsigned long long)atomic_load(&ch.n));
    uint64_t w = atomic_load(word);
    /* Ours and the churn's (its last accept or release done). */
    CU_ASSERT(shoal__w_gen(w) == shoal__id_gen(ch.r.id) && shoal__w_refs(w) == 2);
    if (atomic_load(&ch.err) || shoal__w_gen(w) != shoal__id_gen(ch.r.id) ||
        shoal__w_refs(w) != 2) {
        /* Left as it is: the next release would free the object under the other holder. */
        fprintf(stderr, "after %d deaths (%llu churns) the owner had dropped references live "
                "holders have: churn rc %d, object's count %u of 2\n", rounds,
                (unsigned long long)atomic_load(&ch.n), atomic_load(&ch.err),
                (unsigned)shoal__w_refs(w));
    } else {
        CHECK_OK(shoal_release(ch.r));
        CHECK_OK(shoal_release(base));
    }
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

static void test_dead_ledger_high_while_holder_retains(void)
{
    dead_ledger_high_while_holder_churns(false);
}

static void test_dead_ledger_high_while_holder_accepts(void)
{
    dead_ledger_high_while_holder_churns(true);
}

/* Two threads of one client accept the same record of a ref (two threads of one process
 * given the same 8 bytes, or racing for refs of one object), and the client dies with the
 * winner past its ledger settle but before its record's TAKEN -> FREE store, and the loser
 * inside its window (entered, count + 1, its CAS failed): reachable, as the loser waits in
 * entry_enter only while the winner's window is named, which entry_leave clears before the
 * record is freed. The record then still says "FREE naming this process at s + 1", which
 * is what the owner takes for "the window naming (R, s) won it" (shoal__xfer_window_adjust):
 * it keeps the loser's + 1 and drops two references where the client held one, one of them
 * ours: the object is freed under us. The owner must drop exactly the one it took. */
static void test_two_threads_accept_one_record(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char b[64] = "raced";
    shoal_ref x;
    ASSERT_OK(shoal_put(b, sizeof b, &x));
    ASSERT_OK(shoal_retain(x));
    ASSERT_OK(shoal_transfer(x, 60ll * 1000000000));
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, DE_ACCEPT_RACED, mp_ref_bits(x), 0, 0, 0);
    if (m.rc != 0)
        fprintf(stderr, "accept_raced: %lld %s\n", (long long)m.rc, m.msg);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    CU_ASSERT_EQUAL(shoal__w_refs(word_of(x)), 2);   /* ours and the one it took */
    uint64_t seen = mp_deaths();
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    uint64_t w = word_of(x);
    CU_ASSERT(shoal__w_gen(w) == shoal__id_gen(x.id) && shoal__w_state(w) != SHOAL__FREE &&
              shoal__w_refs(w) == 1);
    if (shoal__w_gen(w) == shoal__id_gen(x.id) && shoal__w_state(w) != SHOAL__FREE &&
        shoal__w_refs(w) == 1) {
        const void *d;
        size_t n;
        CHECK_OK(shoal_get_timeout(x, 10 * 1000000000ll, &d, &n));
        CU_ASSERT(n == sizeof b && memcmp(d, b, n) == 0);
        CHECK_OK(shoal_release(x));
    } else {
        fprintf(stderr, "the owner dropped our reference for the dead client: object %s, "
                "count %u of 1\n", shoal__w_gen(w) == shoal__id_gen(x.id) ? "live" : "freed",
                (unsigned)shoal__w_refs(w));
    }
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* A client's thread sends its reference on x; inside its window (the record INFLIGHT, its
 * ledger entry naming the window, not yet settled) the receiver accepts and releases it, x
 * is freed and its slot holds a new object y, which another thread of the client retains:
 * its ledger entry is reset to y's generation (counting 1). The sender's entry_leave then
 * takes its - 1 from y's count (and clears the window bits, whoever's they are): the
 * ledger says the client holds 0 of y while it holds 1, and when it dies the owner drops
 * nothing: y's reference leaks, a leak shoal.h does not allow (only a death inside a retain
 * or release may leak one). The leave must settle only the generation it entered. */
static void test_slot_reused_inside_send_window(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char path[96];
    snprintf(path, sizeof path, "%s/reuse-words", mp_dir);
    _Atomic uint64_t *w = mp_shared_words(path, 4, true);
    CU_ASSERT_FATAL(w != NULL);
    char b[64] = "first";
    shoal_ref x;
    ASSERT_OK(shoal_put(b, sizeof b, &x));
    struct mp_child c = mp_attached();
    CU_ASSERT_EQUAL_FATAL(mp_call_s(&c, DE_MAP, 0, 0, path).rc, 0);
    CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_RETAIN, mp_ref_bits(x), 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL_FATAL(mp_send(&c, DE_XFER_SLOT_REUSED, mp_ref_bits(x), 0, 0, 0), 0);
    CU_ASSERT_FATAL(word_reaches(&w[0], 1));
    CHECK_OK(shoal_accept(x));
    CHECK_OK(shoal_release(x));
    CHECK_OK(shoal_release(x));   /* x is freed */
    enum { TRIES = 256 };
    static shoal_ref t[TRIES];
    shoal_ref y = { 0 };
    int n = 0;
    for (; n < TRIES; n++) {   /* a new object in x's slot (our cache gives it back first) */
        snprintf(b, sizeof b, "second %d", n);
        ASSERT_OK(shoal_put(b, sizeof b, &t[n]));
        if (shoal__id_idx(t[n].id) == shoal__id_idx(x.id)) {
            y = t[n];
            break;
        }
    }
    for (int k = 0; k < n && k < TRIES; k++)
        CHECK_OK(shoal_release(t[k]));
    CU_ASSERT_FATAL(y.id != 0);
    atomic_store(&w[1], mp_ref_bits(y));
    atomic_store(&w[2], 0);
    atomic_store(&w[0], 2);
    struct mp_rep m;
    CU_ASSERT_EQUAL_FATAL(mp_recv(&c, &m), 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&w[2]), 1000);   /* the child's retain of y */
    CU_ASSERT_EQUAL(shoal__w_refs(word_of(y)), 2);     /* ours and the child's */
    uint64_t seen = mp_deaths();
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    uint64_t wy = word_of(y);
    CU_ASSERT(shoal__w_gen(wy) == shoal__id_gen(y.id) && shoal__w_refs(wy) == 1);
    if (shoal__w_gen(wy) == shoal__id_gen(y.id) && shoal__w_refs(wy) > 1) {
        fprintf(stderr, "the dead client's reference on y leaked: count %u, 1 expected\n",
                (unsigned)shoal__w_refs(wy));
        while (shoal__w_refs(word_of(y)) > 1)   /* what the owner should have dropped */
            CHECK_OK(shoal_release(y));
    }
    if (shoal__w_gen(word_of(y)) == shoal__id_gen(y.id))
        CHECK_OK(shoal_release(y));
    munmap((void *)w, 32);
    unlink(path);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* x's slot is free in a client's cache (its word's low half the cache tag); answers that
 * low half, for kill_expect_taken_back. Fails the test (fatally) otherwise. */
static uint32_t expect_in_client_cache(shoal_ref x)
{
    uint64_t wx = word_of(x);
    uint32_t low = (uint32_t)wx;
    bool cached = shoal__w_state(wx) == SHOAL__FREE && (low & ~0xffu) == SHOAL__W_CACHED;
    if (!cached)
        fprintf(stderr, "slot word %016llx: not in the child's cache\n", (unsigned long long)wx);
    CU_ASSERT_FATAL(cached);
    return low;
}

/* Kill client c, whose cache holds x's slot (its word's low half `low`, the cache tag):
 * once the owner processed the death, the slot is back (recover_one), not lost. */
static void kill_expect_taken_back(struct mp_child *c, shoal_ref x, uint32_t low)
{
    uint64_t seen = mp_deaths();
    CU_ASSERT_EQUAL(mp_kill(c), 128 + SIGKILL);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    CU_ASSERT_NOT_EQUAL((uint32_t)word_of(x), low);   /* the owner took it back */
    if ((uint32_t)word_of(x) == low)
        fprintf(stderr, "slot %u is still in the dead client's cache: lost\n",
                (unsigned)shoal__id_idx(x.id));
}

/* As slot_reused_inside_send_window, but the client frees the object itself inside the
 * send's window: another thread of it drops the last reference (the receiver having
 * released the one it accepted), the slot goes into that thread's cache and the ledger
 * entry says SHOAL__HOLDS_CACHED, so that the owner takes the slot back if the client
 * dies (publish.c, recover_one). The sender's entry_leave then rewrote that entry (the
 * cache mark minus one count: 0x00000000ffffff80), and when the client died the owner no
 * longer knew the slot was cached: a slot lost for the store's life. */
static void test_slot_cached_inside_send_window(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char path[96];
    snprintf(path, sizeof path, "%s/cache-words", mp_dir);
    _Atomic uint64_t *w = mp_shared_words(path, 4, true);
    CU_ASSERT_FATAL(w != NULL);
    struct mp_child c = mp_attached();
    CU_ASSERT_EQUAL_FATAL(mp_call_s(&c, DE_MAP, 0, 0, path).rc, 0);
    /* The child's object (its slot goes back to its own cache), two references. */
    struct mp_rep p = mp_call(&c, MP_PUT, 64, 7, 1, 0);
    CU_ASSERT_EQUAL_FATAL(p.rc, 0);
    shoal_ref x = mp_bits_ref(p.a);
    CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_RETAIN, mp_ref_bits(x), 0, 0, 0).rc, 0);
    atomic_store(&w[1], mp_ref_bits(x));
    atomic_store(&w[3], 1);
    CU_ASSERT_EQUAL_FATAL(mp_send(&c, DE_XFER_SLOT_REUSED, mp_ref_bits(x), 0, 0, 0), 0);
    CU_ASSERT_FATAL(word_reaches(&w[0], 1));
    CHECK_OK(shoal_accept(x));
    CHECK_OK(shoal_release(x));   /* the child's other reference is the last */
    atomic_store(&w[0], 2);
    struct mp_rep m;
    CU_ASSERT_EQUAL_FATAL(mp_recv(&c, &m), 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&w[2]), 1000);   /* the child's release of x */
    /* Freed by the child into its cache (a table of 65536 slots or more caches slots). */
    uint32_t low = expect_in_client_cache(x);
    kill_expect_taken_back(&c, x, low);
    munmap((void *)w, 32);
    unlink(path);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* A client's accept reads its record INFLIGHT; before it opens its window the record
 * expires, the owner drops the reference, and the object (the client's own) is freed into
 * the client's slot cache, its ledger entry saying SHOAL__HOLDS_CACHED. The accept's
 * entry_enter took that entry for "unused" and reset it to the object's generation, and its
 * failed CAS left it so: when the client died the owner no longer knew the slot was cached,
 * and it was lost for the store's life. The mark must survive the failed accept. */
static void test_accept_racing_expiry_into_cache(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, DE_ACCEPT_EXPIRING, 0, 0, 0, 0);
    if (m.rc != SHOAL_ETIMEDOUT)
        fprintf(stderr, "accept_expiring: %lld %s\n", (long long)m.rc, m.msg);
    CU_ASSERT_EQUAL_FATAL(m.rc, SHOAL_ETIMEDOUT);
    shoal_ref x = mp_bits_ref(m.a);
    uint32_t low = expect_in_client_cache(x);
    if (m.b != SHOAL__HOLDS_CACHED)
        fprintf(stderr, "the client's ledger entry for its cached slot says %016llx\n",
                (unsigned long long)m.b);
    CU_ASSERT_EQUAL(m.b, SHOAL__HOLDS_CACHED);
    kill_expect_taken_back(&c, x, low);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* The same mark, and a stale release (a double release, which answers SHOAL_ESTALE): the
 * release counts its - 1 in the ledger before it looks at the slot (core/object.c, unref),
 * and when the slot is in the client's cache that reset the entry to the freed generation
 * (then + 1 back to a count of 0): again the owner lost the slot when the client died. */
static void test_stale_release_keeps_cache_mark(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    struct mp_rep p = mp_call(&c, MP_PUT, 64, 7, 1, 0);
    CU_ASSERT_EQUAL_FATAL(p.rc, 0);
    shoal_ref x = mp_bits_ref(p.a);
    CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_RELEASE, mp_ref_bits(x), 0, 0, 0).rc, 0);
    uint32_t low = expect_in_client_cache(x);
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, mp_ref_bits(x), 0, 0, 0).rc, SHOAL_ESTALE);
    kill_expect_taken_back(&c, x, low);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* An attached child runs case `code` of its own (named `what` in a failure), which answers
 * 0 when everything in it held (`died`, when given, says what a child that died in it, rc
 * -999, most likely did); then it is killed, and once the owner processed the death every
 * byte and object of the test is back. */
static void child_case_then_killed(unsigned code, const char *what, const char *died)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, code, 0, 0, 0, 0);
    if (m.rc != 0)
        fprintf(stderr, "%s: %lld %s\n", what, (long long)m.rc,
                m.rc == -999 && died ? died : m.msg);
    CU_ASSERT_EQUAL(m.rc, 0);
    uint64_t seen = mp_deaths();
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* A thread waiting its turn in shoal_transfer is cancelled (DE_CANCEL_WAITER): it must
 * finish its move (no cancellation point inside one), its window given back. */
static void test_cancel_while_waiting_turn(void)
{
    child_case_then_killed(DE_CANCEL_WAITER, "cancel_waiter", NULL);
}

/* A signal handler that accepts (transfers) the object its thread is inside a transfer
 * (accept) of finds its ledger entry naming its own thread's window, which is closed only
 * once the handler returns: it waited for it for ever. It must answer SHOAL_EDEADLK and
 * leave everything as it was (the child checks its ledger and windows). */
static void test_move_from_own_signal_handler(void)
{
    child_case_then_killed(DE_SELF_MOVE, "self_move",
                           "(the child died: spinning until its alarm?)");
}

/* An object another process may not complete: the owner's, created and never sealed. */
static shoal_ref unsealed(void)
{
    void *buf;
    shoal_ref r;
    ASSERT_OK(shoal_create(100, &buf, &r));
    return r;
}

/* 11.2: a client dies with a shoal_write_file result in flight (PENDING, created by it):
 * the result fails with SHOAL_ECANCELED instead of hanging, and a waiter blocked on it
 * wakes. */
static void test_dead_creators_pending_object(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    shoal_ref src = unsealed();
    char path[96];
    snprintf(path, sizeof path, "%s/never-written", mp_dir);
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call_s(&c, MP_WRITE_FILE, mp_ref_bits(src), 0, path);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref done = mp_bits_ref(m.a);
    ASSERT_OK(shoal_retain(done));
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(done, 1000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    CHECK_RC(shoal_get_timeout(done, 10 * 1000000000ll, &d, &n), SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), "went away") != NULL);
    bool ready = false;
    CU_ASSERT_EQUAL(shoal_wait(&done, 1, 1, 0, &ready), 1);
    CHECK_OK(shoal_release(done));
    CHECK_OK(shoal_release(src));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "pending objects gone"));
    CU_ASSERT(access(path, F_OK) != 0);
    CHECK_OK(shoal_shutdown());
}

/* 11.2: more deaths than there are process indices, each leaving a pending object the
 * owner keeps: every index and its chunks come back, so attaching never runs out. */
static void test_indices_come_back_after_pending_deaths(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    shoal_ref src = unsealed();
    char path[96];
    snprintf(path, sizeof path, "%s/never-written", mp_dir);
    enum { ROUNDS = 260 };
    static shoal_ref kept[ROUNDS];
    int got = 0;
    for (int k = 0; k < ROUNDS; k++) {
        struct mp_child c = mp_spawn();
        CU_ASSERT_FATAL(c.pid > 0);
        struct mp_rep m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
        if (m.rc != 0) {
            fprintf(stderr, "attach #%d: %lld (%s)\n", k, (long long)m.rc, m.msg);
            mp_kill(&c);
            break;
        }
        m = mp_call_s(&c, MP_WRITE_FILE, mp_ref_bits(src), 0, path);
        CU_ASSERT_EQUAL(m.rc, 0);
        if (m.rc == 0 && shoal_retain(mp_bits_ref(m.a)) == 0)
            kept[got++] = mp_bits_ref(m.a);
        CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    }
    CU_ASSERT_EQUAL(got, ROUNDS);
    for (int k = 0; k < got; k++) {
        const void *d;
        size_t n;
        CHECK_RC(shoal_get_timeout(kept[k], 10 * 1000000000ll, &d, &n), SHOAL_ECANCELED);
        CHECK_OK(shoal_release(kept[k]));
    }
    CHECK_OK(shoal_release(src));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

static const shoal_test_case cases[] = {
    { "killed_in_put_loops", test_killed_in_put_loops },
    { "dead_client_held_spilled_object", test_dead_client_held_spilled_object },
    { "owner_ledger_through_spill", test_owner_ledger_through_spill },
    { "dead_ledger_high_while_holder_retains", test_dead_ledger_high_while_holder_retains },
    { "dead_ledger_high_while_holder_accepts", test_dead_ledger_high_while_holder_accepts },
    { "two_threads_accept_one_record", test_two_threads_accept_one_record },
    { "slot_reused_inside_send_window", test_slot_reused_inside_send_window },
    { "slot_cached_inside_send_window", test_slot_cached_inside_send_window },
    { "accept_racing_expiry_into_cache", test_accept_racing_expiry_into_cache },
    { "stale_release_keeps_cache_mark", test_stale_release_keeps_cache_mark },
    { "move_from_own_signal_handler", test_move_from_own_signal_handler },
    { "cancel_while_waiting_turn", test_cancel_while_waiting_turn },
    { "dead_creators_pending_object", test_dead_creators_pending_object },
    { "indices_come_back_after_pending_deaths", test_indices_come_back_after_pending_deaths },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    mp_child_hook = death_child;
    if (mp_is_child(argc, argv))
        return mp_child_main(argv);
    return mp_run("mp_death", cases);
}
