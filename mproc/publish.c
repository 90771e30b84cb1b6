/* publish.c - the owner's side of a published store: the Unix socket other processes attach
 * through, and what the owner does when one of them goes. One service thread (epoll over the
 * listening socket and every connection, process-private, no worker involved) answers
 * handshakes (SO_PEERCRED, then the memfds by SCM_RIGHTS) and, when a connection closes -
 * a clean detach, an exit or a SIGKILL alike - fails the objects that process created and
 * never sealed, drops the references its ledger says it still held, and once none of its
 * objects is left, takes back the free slots it had cached and returns its chunks to the
 * pool and its index to the free list. All of it walks the gone process's ledger (the
 * pages it touched), never the whole table.
 * Nothing read from the socket or from the shared segment is trusted without a bounds check.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../alloc/chunks.h"
#include "mproc.h"
#include "proto.h"
#include "../core/objrefs.h"
#include "../core/thread.h"

#define MAX_CONNS        512          /* attached processes + handshakes in flight; when
                                         full, the oldest silent handshake is dropped */
#define HANDSHAKE_NS     5000000000u  /* a connection that says nothing for 5 s is dropped */
#define RECLAIM_MIN_NS   100000000u   /* look at dead processes' leftovers every 100 ms */

struct ledger {                   /* a client's reference ledger, mapped here too */
    int fd;
    _Atomic uint64_t *e;          /* nslots entries: [63..32] generation, [31..0] count */
    uint64_t len;
};

struct conn {
    int fd;
    int state;                    /* enum shoal__conn_state */
    unsigned proc;                /* 0 until welcomed */
    uint32_t inc;
    int32_t pid;
    uint64_t since_ns;
    struct ledger l;
    struct shoal__rx rx;
};

struct gone {                     /* a process whose chunks are not reclaimed yet */
    unsigned proc;
    uint32_t inc;
    struct ledger l;              /* it names every object the process made */
};

static struct {
    bool on;
    shoal__rt_t *rt;
    int lfd, ep, evfd;
    int spare;                    /* /dev/null, kept to be closed when out of descriptors */
    bool listen_off;              /* out of descriptors: not listening until resume_ns */
    uint64_t resume_ns, told_ns;
    int seg_fd;
    uint64_t seg_len;
    pthread_t th;
    bool th_started;
    char path[108];
    dev_t dev;
    ino_t ino;
    struct conn *conns[MAX_CONNS];
    struct gone gone[SHOAL__MAX_PROCS];
    unsigned ngone;
    unsigned next_proc;
    uint64_t next_reclaim_ns, reclaim_gap_ns;
    _Atomic uint64_t *own_holds;
    uint64_t own_holds_len;
    uint64_t own_len;             /* bytes of the records shoal__own points to */
    struct shoal__thr t;          /* the service thread's slot cache (never registered) */
} pub = { .lfd = -1, .ep = -1, .evfd = -1, .spare = -1 };

static char tag_listen, tag_event;   /* epoll data for the two non-connection fds */

/* ---- dropping what a gone process held ------------------------------------------------------ */

/* Call fn for each live entry of a ledger: the memfd's populated pages only (SEEK_DATA), so
 * the cost follows what the process touched, not the table size. Every index is bounded. */
static bool walk_ledger(shoal__rt_t *rt, const struct ledger *l,
                        bool (*fn)(shoal__rt_t *rt, uint64_t idx, uint64_t v, void *arg), void *arg)
{
    uint64_t len = l->len < rt->nslots * 8 ? l->len : rt->nslots * 8, off = 0;
    while (off < len) {
        off_t d = lseek(l->fd, (off_t)off, SEEK_DATA);
        if (d < 0 || (uint64_t)d >= len)
            break;
        off_t h = lseek(l->fd, d, SEEK_HOLE);
        uint64_t end = h < 0 || (uint64_t)h > len ? len : (uint64_t)h;
        for (uint64_t i = (uint64_t)d / 8; i < end / 8; i++) {
            uint64_t v = atomic_load_explicit(&l->e[i], memory_order_relaxed);
            if (i != 0 && v != 0 && fn(rt, i, v, arg))
                return true;
        }
        off = end > off ? end : off + 8;
    }
    return false;
}

/* Drop what a gone process still held: exactly the count its ledger keeps, corrected by the
 * window its entry names, if any (a thread that died inside a transfer or an accept of that
 * object, layout/mpseg.h, "Windows"). Its ledger is never high: a retain or release it died
 * inside leaves it one low (that reference leaks, as include/shoal.h says), and a move in or
 * out of flight is settled through its window. So nothing is read that a live process
 * moves: no other holder's ledger, no list or record count, which the owner would read one
 * after another while they change (an earlier cap at "count minus the others' holdings"
 * read them low that way and dropped a live holder's reference). A ref the process handed
 * to another one whose receiver retained it is the receiver's too, in its own ledger and in
 * the count: dropping the gone one's leaves it. Only a ledger that claims more than the
 * object's count (garbage) is capped, at what we hold ourselves. */
static bool release_one(shoal__rt_t *rt, uint64_t i, uint64_t v, void *arg)
{
    const struct conn *c = arg;
    uint64_t gen = v >> 32;
    int32_t cnt = shoal__gcount(v);
    if (shoal__gcount_win(v))
        cnt += shoal__xfer_window_adjust(shoal__wins_of(c->l.e, rt->nslots),
                                         shoal__gcount_win(v), c->proc, c->inc);
    if (cnt <= 0)
        return false;
    shoal__slot *s = &rt->slots[i];
    /* acquire: for the cap below only - pairs with the release of a claim by a spill or a
     * restore (io/spill.c), whose +1 in our ledger comes first: a reference of ours seen
     * in this word is in our ledger read after it. */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire), nw;
    do {
        if (shoal__w_gen(w) != gen || shoal__w_state(w) == SHOAL__FREE || shoal__w_refs(w) == 0)
            return false;
        uint64_t refs = shoal__w_refs(w), r = (uint64_t)cnt;
        if (r > refs) {
            /* More than the object has: not an honest ledger (a forged one, or references
             * handed to other processes by their 8 bytes, whose receivers released them).
             * Never below what we hold ourselves (a moving figure, read only here). */
            uint64_t own = shoal__gcount_of(atomic_load_explicit(&pub.own_holds[i],
                                                                  memory_order_relaxed), gen);
            r = refs > own ? refs - own : 0;
            if (r == 0)
                return false;
        }
        nw = refs > r ? w - r : shoal__w_make(shoal__gen_next(gen), SHOAL__FREE, 0);
        /* acq_rel: as shoal_release - the free that may follow sees every holder's release.
         * acquire on failure: as the load above. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                    memory_order_acquire));
    if (shoal__w_state(nw) == SHOAL__FREE)
        shoal__free_routed(rt, &pub.t, (uint32_t)i, w);
    return false;
}

/* Objects the gone process created and never completed: CREATED ones it never sealed,
 * PENDING ones whose file read or write (or any result of its own) was in flight. Nobody
 * else may complete them, and anyone waiting would wait for ever. They become FAILED
 * (SHOAL_ECANCELED) with a message, their bytes (in the gone process's chunks) are let go,
 * and their references stay: a holder releases as usual. From then on the object is the
 * owner's: its message is in the owner's arena, counted in the owner's shard. */
struct fail_arg { unsigned p; int pid; };

/* A copy of msg in our own arena, counted as ours; 0 bytes when the store has no room. */
static uint64_t own_msg(shoal__rt_t *rt, unsigned node, const char *msg, size_t ml, size_t *mlen)
{
    size_t usable = shoal__acct_size(ml);
    struct shoal__node_stats *ns = &rt->hdr->node[node];
    *mlen = 0;
    if (atomic_fetch_add_explicit(&ns->bytes_used, usable, memory_order_relaxed) + usable > ns->cap) {
        atomic_fetch_sub_explicit(&ns->bytes_used, usable, memory_order_relaxed);
        return (uint64_t)node * rt->node_span;
    }
    uint64_t off;
    if (shoal__arena_alloc_direct(rt, ml, node, &off) != 0) {
        atomic_fetch_sub_explicit(&ns->bytes_used, usable, memory_order_relaxed);
        return (uint64_t)node * rt->node_span;
    }
    atomic_fetch_add_explicit(&shoal__shard_of(0)->bytes[node], (int64_t)usable, memory_order_relaxed);
    memcpy(rt->base + off, msg, ml);
    *mlen = ml;
    return off;
}

static bool fail_one(shoal__rt_t *rt, uint64_t idx, uint64_t v, void *arg)
{
    const struct fail_arg *fa = arg;
    unsigned p = fa->p;
    shoal__slot *s = &rt->slots[idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    /* Its ledger names every object it made (the entry's generation is the object's). */
    if (shoal__w_gen(w) != (v >> 32) || !shoal__w_pending(w) ||
        SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) != p ||
        shoal__w_refs(w) == SHOAL__REFS_MAX)
        return false;
    bool sealing = shoal__w_state(w) == SHOAL__CREATED;
    /* -> PENDING with a reference of our own: the fields are ours to change (a seal now
     * fails, readers keep waiting) and no release can free the slot under us. acquire:
     * pairs with the creator's release that published off/len. */
    uint64_t nw = ((w & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__PENDING << SHOAL__W_STATE_SHIFT)) + 1;
    if (!atomic_compare_exchange_strong_explicit(&s->word, &w, nw, memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    uint64_t off = s->off, len = s->len, span = rt->node_span * rt->nnodes;
    unsigned node = off < span ? (unsigned)(off / rt->node_span) : 0;
    /* Its bytes and its count leave the gone process's shard; the object is counted as ours. */
    if (len && off < span && len <= span - off)
        shoal__count_bytes(rt, p, node, -(int64_t)shoal__acct_size(len));
    shoal__count_objs(rt, p, node, -1);
    shoal__count_objs(rt, 0, node, 1);
    char msg[200];
    int ml = snprintf(msg, sizeof msg, "the process that created this object (pid %d) went "
                      "away before %s", fa->pid, sealing ? "sealing it"
                      : "completing it (a file read or write, or another result it was "
                        "producing)") + 1;
    size_t mlen;
    uint64_t moff = own_msg(rt, node, msg, (size_t)ml, &mlen);
    shoal__own_set(idx, moff, mlen);
    s->off = moff;
    s->len = mlen;
    __atomic_store_n(&s->aux, (uint32_t)(-SHOAL_ECANCELED & 0xff) << 8, __ATOMIC_RELAXED);
    /* PENDING -> FAILED dropping our reference. release: publishes off/len/aux and the
     * message to readers' acquire loads of the word. */
    w = nw;
    uint64_t fw;
    do {
        if (shoal__w_refs(w) > 1)
            fw = ((w & ~(SHOAL__W_STATE_MASK | SHOAL__W_WAITERS | SHOAL__W_DEPS)) |
                  ((uint64_t)SHOAL__FAILED << SHOAL__W_STATE_SHIFT)) - 1;
        else
            fw = shoal__w_make(shoal__gen_next(shoal__w_gen(w)), SHOAL__FREE, 0);
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, fw, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (shoal__w_refs(w) > 1) {
        if (w & SHOAL__W_WAITERS) {
            shoal__wake_slot(rt, idx);
            shoal__notify_foreign(rt);   /* dependents other processes registered */
        }
        shoal__deps_fire_rt(rt, idx, SHOAL_ECANCELED);
    } else {
        /* Ours was the last reference: no dependent is registered, here or in another
         * process, as each holds a reference until it fires (a task its REF argument,
         * shoal_write_file its source), so nobody's drain thread needs waking. Waiters
         * without a reference (a get of a ref received by its 8 bytes) are woken by
         * shoal__free_routed and answer SHOAL_ESTALE. */
        shoal__free_routed(rt, &pub.t, (uint32_t)idx, w);
    }
    return false;
}

static void fail_unfinished(shoal__rt_t *rt, const struct conn *c)
{
    struct fail_arg fa = { c->proc, (int)c->pid };
    walk_ledger(rt, &c->l, fail_one, &fa);
}

/* Is an object of the gone process left? Its ledger names every object it made. An object
 * another process freed is left until its drainer claimed it (we drained the gone process's
 * stack just before, under the procs lock, and claimed the entry its own drainer had taken
 * off it, shoal__drain_finish): while that releaser lives it will push it; if it died
 * before pushing, nobody will, and we claim it here. */
static bool left_one(shoal__rt_t *rt, uint64_t idx, uint64_t v, void *arg)
{
    const struct gone *g = arg;
    const shoal__slot *s = &rt->slots[idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    /* A cached slot's entry (generation 0) names no object of the process. */
    if (v == SHOAL__HOLDS_CACHED ||
        SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) != g->proc)
        return false;
    if (shoal__w_gen(w) == (v >> 32) && shoal__w_state(w) != SHOAL__FREE)
        return atomic_load_explicit(&s->word, memory_order_relaxed) == w;
    if (!shoal__w_freeing(w) || shoal__w_gen(w) != shoal__gen_next(v >> 32))
        return false;
    if (shoal__freeing_live(shoal__mp_of(rt), w))
        return true;
    if (shoal__claim(rt, (uint32_t)idx, w))
        shoal__free_routed(rt, &pub.t, (uint32_t)idx, w & ~SHOAL__W_LOW_MASK);
    return false;
}

/* How the owner disposes of what it finishes for a gone process (core/objrefs.h). */
static void routed(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *arg)
{
    shoal__free_routed(rt, arg, idx, oldw);
}

/* The slots a gone process held privately go back to the shared stack: those in its thread
 * caches (tagged, thread.h; its ledger names each) and one it was freeing itself when it
 * died (FREE and marked HELD by it, layout/mpseg.h, the generation after its ledger's). Run
 * once, as the death is processed: until then nothing else hands such a slot on.
 * Objects that contain refs (core/objrefs.h): a cached slot still flagged is an object it
 * was putting and never published, whose list names the references it had taken: they
 * are dropped. A slot it was freeing still flagged had its list released part-way: the
 * rest is released (from the trailer's cursor) and the object freed as any of a gone
 * process (shoal__free_routed). */
static bool recover_one(shoal__rt_t *rt, uint64_t idx, uint64_t v, void *arg)
{
    const struct gone *g = arg;
    shoal__slot *s = &rt->slots[idx];
    _Atomic uint64_t *wp = &s->word;
    uint64_t w = atomic_load_explicit(wp, memory_order_relaxed);
    if (shoal__w_state(w) != SHOAL__FREE)
        return false;
    uint32_t low = (uint32_t)w;
    /* A chain link can look like a tag in a table of 2^24 slots or more; the ledger tells. */
    /* Cached, or the one it was putting: its ledger names the new object (the ledger is
     * written before the word, core/object.c) and the word is still FREE. */
    bool cached = low == (SHOAL__W_CACHED | g->proc) &&
                  (v == SHOAL__HOLDS_CACHED || (v >> 32) == shoal__w_gen(w));
    bool freeing = low == (SHOAL__W_HELD | g->proc) && v != SHOAL__HOLDS_CACHED &&
                   shoal__w_gen(w) == shoal__gen_next(v >> 32) &&
                   SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) == g->proc;
    /* relaxed: the slot's links are written again before it is pushed (slot_flush). */
    if (!(cached || freeing) ||
        !atomic_compare_exchange_strong_explicit(wp, &w, (w & ~SHOAL__W_LOW_MASK) | 1,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false;
    /* The slot came from the shared chain or from a drain in the dead process, maybe
     * after a thread of ours freed it: the death orders that (os/compiler.h). */
    SHOAL__TSAN_HANDOVER_TAKE(&s->off);
    uint32_t aux = __atomic_load_n(&s->aux, __ATOMIC_RELAXED);
    if (unlikely(aux & SHOAL__AUX_REFS) && SHOAL__AUX_PROC(aux) == g->proc) {
        if (freeing) {
            shoal__free_routed(rt, &pub.t, (uint32_t)idx, w & ~SHOAL__W_LOW_MASK);
            return false;
        }
        shoal__refs_unput(rt, (uint32_t)idx, routed, &pub.t);
    }
    shoal__slot_give(rt, &pub.t, (uint32_t)idx);
    return false;
}

/* The bytes of process p's object in slot idx (claimed by us) go back to p's allocator in
 * a slot of ours: a free slot carrying the same offset, length and process, marked FREEING
 * by us and pushed on p's remote-free stack, which p's drainer frees like any other entry.
 * Slot idx itself stays claimed and unused: it may still be a link in p's stack (pushed by
 * a releaser that died before we could know), and p's drainer follows its `next`. */
static void forward_bytes(shoal__rt_t *rt, uint32_t idx, unsigned p)
{
    const shoal__slot *s = &rt->slots[idx];
    uint32_t f = shoal__slot_take(rt, &pub.t);
    if (f == 0) {   /* a full table: the bytes stay with p until it goes */
        shoal__log("slot %u: no free slot to send its bytes back to process %u: they stay "
                   "allocated until it detaches", idx, p);
        return;
    }
    shoal__slot *fs = &rt->slots[f];
    fs->off = s->off;
    fs->len = s->len;
    __atomic_store_n(&fs->aux, SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)),
                     __ATOMIC_RELAXED);
    /* relaxed: the slot is ours; rfree_push's CAS publishes it with its fields. */
    uint64_t w = atomic_load_explicit(&fs->word, memory_order_relaxed);
    atomic_store_explicit(&fs->word, (w & ~SHOAL__W_LOW_MASK) | shoal__freeing_mark(),
                          memory_order_relaxed);
    shoal__rfree_push(rt, f, p);
}

/* Objects of other processes that the gone process freed and died before pushing to their
 * allocator's remote-free stack (it named itself in their FREEING marker): nobody else
 * would free them. Ours: our stack was drained just before, under the procs lock, so what
 * is still marked was never pushed, and we free it. A live client's: it may or may not be
 * on that client's stack; we claim the slot (its drainer then skips it if it is there) and
 * forward the bytes (above). A gone client's: its own gone entry claims it (left_one). */
static bool unpushed_one(shoal__rt_t *rt, uint64_t idx, uint64_t v, void *arg)
{
    const struct gone *g = arg;
    const shoal__slot *s = &rt->slots[idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (!shoal__freeing_by(w, g->proc, g->inc) || shoal__w_gen(w) != shoal__gen_next(v >> 32) ||
        v == SHOAL__HOLDS_CACHED)
        return false;
    unsigned p = SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED));
    if (p == g->proc || (p != 0 && atomic_load_explicit(&shoal__mp_of(rt)->procs[p].state,
                                                        memory_order_acquire) != SHOAL__PROC_LIVE))
        return false;
    if (!shoal__claim(rt, (uint32_t)idx, w))
        return false;   /* its drainer took it meanwhile */
    /* Ours, or one whose list the dead releaser had not finished releasing (still flagged:
     * it had not pushed it, objrefs.c clears the flag first): the rest of the list goes,
     * then the bytes to their allocator (a push of this slot, which is on no stack). */
    if (p == 0 || (__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS))
        shoal__free_routed(rt, &pub.t, (uint32_t)idx, w & ~SHOAL__W_LOW_MASK);
    else
        forward_bytes(rt, (uint32_t)idx, p);
    return false;
}

static void ledger_free(struct ledger *l)
{
    if (l->e)
        munmap((void *)l->e, l->len);
    if (l->fd >= 0)
        close(l->fd);
    l->e = NULL;
    l->fd = -1;
}

static void flush_cache(shoal__rt_t *rt)
{
    if (pub.t.nfree)
        shoal__slot_flush(rt, &pub.t, pub.t.nfree);
}

/* Once none of a gone process's objects is left, its chunks go back to the pool, what its
 * shard still counts (work it never finished) is dropped, and its index can be given out
 * again. */
static void try_reclaim(shoal__rt_t *rt)
{
    uint64_t t0 = shoal__now_ns();
    if (t0 < pub.next_reclaim_ns)
        return;
    struct shoal__mp *x = shoal__mp_of(rt);
    bool deaths = pub.ngone != 0;   /* read before the loop below empties the list */
    for (unsigned i = 0; i < pub.ngone;) {
        struct gone *g = &pub.gone[i];
        shoal__procs_lock();
        shoal__drain(rt, &pub.t, g->proc, false);
        shoal__drain_finish(rt, &pub.t, g->proc);
        bool done = !walk_ledger(rt, &g->l, left_one, g);
        if (done) {
            shoal__chunks_reclaim(rt, shoal__chunk_id(g->proc, g->inc));
            shoal__shard_settle(rt, g->proc);
            atomic_store_explicit(&x->procs[g->proc].fdeps, 0, memory_order_relaxed);
            /* seq_cst: pushers read the state after pushing (rfree_push). */
            atomic_store_explicit(&x->procs[g->proc].state, SHOAL__PROC_FREE, memory_order_seq_cst);
        }
        shoal__procs_unlock();
        if (!done) {
            i++;
            continue;
        }
        ledger_free(&g->l);
        pub.gone[i] = pub.gone[--pub.ngone];
    }
    flush_cache(rt);
    /* The estimate capacity checks read comes back to the shards' sum (layout/mpseg.h), when
     * a process died: only a death leaves the two apart. A live process counts each change in
     * both, with two RMWs (the estimate first when it takes, its shard first when it gives),
     * so a resync between them read one and not the other and put the estimate off by that
     * change until the next resync, which, nobody being gone, came only when the service
     * thread next woke. Run after every wake (100 ms apart), a resync on the client's
     * HELLO that ran late (TSan, a loaded machine) could meet the owner's first 1 MiB put
     * in test_spill 'an attached process': the estimate stayed 1 MiB above the shards, and
     * a store whose shards had 1 MiB free turned the client's 1000-byte put_file down as
     * full (an attached process spills nothing). */
    if (deaths)
        shoal__estimate_resync(rt);
    /* A big ledger takes a while to walk: never spend more than ~5% of a core on it. */
    uint64_t took = shoal__now_ns() - t0;
    pub.reclaim_gap_ns = took * 20 > RECLAIM_MIN_NS ? took * 20 : RECLAIM_MIN_NS;
    pub.next_reclaim_ns = shoal__now_ns() + pub.reclaim_gap_ns;
}

static void client_gone(shoal__rt_t *rt, struct conn *c)
{
    struct shoal__mp *x = shoal__mp_of(rt);
    unsigned p = c->proc;
    struct gone g = { p, c->inc, c->l };
    shoal__procs_lock();
    /* seq_cst: pairs with the state load a pusher makes after its push (rfree_push). */
    atomic_store_explicit(&x->procs[p].state, SHOAL__PROC_DEAD, memory_order_seq_cst);
    /* What it held privately (cached slots, a slot it was freeing), then what it freed of
     * ours or of other clients without pushing it (our stack drained first, so what is
     * left of ours was never pushed; see unpushed_one for theirs). */
    walk_ledger(rt, &c->l, recover_one, &g);
    shoal__drain(rt, &pub.t, 0, true);
    walk_ledger(rt, &c->l, unpushed_one, &g);
    shoal__procs_unlock();
    shoal__wake_proc(rt, 0);    /* our drain thread takes the gone process's stack now */
    fail_unfinished(rt, c);
    shoal__foreign_deps_scan(rt);   /* tasks waiting on what it never completed */
    walk_ledger(rt, &c->l, release_one, c);
    /* Records it reserved and never sent, or took and never freed: after release_one, which
     * reads them (its windows). */
    shoal__xfer_expire(rt, true, &pub.t);
    flush_cache(rt);
    /* The ledger moves to the gone list: it finds the objects that are left. */
    pub.gone[pub.ngone++] = g;
    c->l.e = NULL;
    c->l.fd = -1;
    pub.next_reclaim_ns = 0;
    try_reclaim(rt);
    /* release: pairs with the acquire load of whoever waits for this death to be processed
     * and then looks at what it changed. */
    atomic_fetch_add_explicit(&x->deaths, 1, memory_order_release);
}

/* ---- connections ------------------------------------------------------------------------------ */

static void conn_close(shoal__rt_t *rt, unsigned i)
{
    struct conn *c = pub.conns[i];
    epoll_ctl(pub.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->proc)
        client_gone(rt, c);
    ledger_free(&c->l);
    free(c);
    pub.conns[i] = NULL;
}

static int send_msg(int fd, struct shoal__msg *m, size_t n, const int *fds, unsigned nfds)
{
    struct iovec iov = { m, n };
    union { char buf[CMSG_SPACE(sizeof(int) * SHOAL__MAX_FDS)]; struct cmsghdr align; } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void send_reject(int fd, int32_t code, const char *why)
{
    struct shoal__msg m;
    size_t n = shoal__msg_init(&m, SHOAL__MSG_REJECT);
    m.b.reject.code = code;
    snprintf(m.b.reject.msg, sizeof m.b.reject.msg, "%s", why);
    send_msg(fd, &m, n, NULL, 0);
}

/* Whether connection c (in handshake) has begun to speak: bytes of its HELLO read already or
 * waiting in its socket (a real client whose HELLO we have not read yet, say because we are
 * accepting a backlog in one go). */
static bool conn_spoke(const struct conn *c)
{
    char b;
    return c->rx.len || recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* The connection that has waited longest without saying HELLO, other than keep; MAX_CONNS
 * when there is none. One that has begun to speak goes only when every one has: evicting
 * silent ones first, a client whose HELLO waits to be read is never pushed out by the
 * connections queued behind it. */
static unsigned oldest_idle(unsigned keep)
{
    unsigned old = MAX_CONNS;
    bool old_spoke = true;
    for (unsigned k = 0; k < MAX_CONNS; k++) {
        if (k == keep || !pub.conns[k] || pub.conns[k]->state != SHOAL__CONN_HANDSHAKE)
            continue;
        bool spoke = conn_spoke(pub.conns[k]);
        if (old == MAX_CONNS || (old_spoke && !spoke) ||
            (spoke == old_spoke && pub.conns[k]->since_ns < pub.conns[old]->since_ns)) {
            old = k;
            old_spoke = spoke;
        }
    }
    return old;
}

/* Drop the oldest silent connection (not keep) to free its slot and descriptor: a real
 * client says HELLO at once, so idle connections never lock attaching out. */
static bool evict_idle(shoal__rt_t *rt, unsigned keep)
{
    unsigned old = oldest_idle(keep);
    if (old == MAX_CONNS)
        return false;
    conn_close(rt, old);
    return true;
}

/* A free process index, round-robin so that an index is reused as late as possible. */
static unsigned pick_proc(struct shoal__mp *x)
{
    for (unsigned k = 0; k < SHOAL__MAX_PROCS - 1; k++) {
        unsigned p = 1 + (pub.next_proc + k) % (SHOAL__MAX_PROCS - 1);
        if (atomic_load_explicit(&x->procs[p].state, memory_order_relaxed) == SHOAL__PROC_FREE) {
            pub.next_proc = p;
            return p;
        }
    }
    return 0;
}

/* The client's ledger: a sparse memfd both sides map, sealed at its size so that the
 * client cannot shrink it under our mapping. */
static int make_ledger(shoal__rt_t *rt, struct conn *c)
{
    c->l.len = shoal__ledger_bytes(rt->nslots);
    c->l.fd = memfd_create("shoal-ledger", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (c->l.fd < 0)
        return -1;
    if (ftruncate(c->l.fd, (off_t)c->l.len) != 0 ||
        fcntl(c->l.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return -1;
    void *m = mmap(NULL, c->l.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                   c->l.fd, 0);
    if (m == MAP_FAILED)
        return -1;
    c->l.e = m;
    return 0;
}

static void welcome(shoal__rt_t *rt, unsigned i, const struct shoal__hello *h)
{
    struct conn *c = pub.conns[i];
    struct shoal__mp *x = shoal__mp_of(rt);
    int rc;
    bool nofds = false;
    /* Out of descriptors: a silent connection makes room for the ledger's memfd. */
    while ((rc = make_ledger(rt, c)) != 0 &&
           (nofds = c->l.fd < 0 && (errno == EMFILE || errno == ENFILE)) && evict_idle(rt, i))
        ;
    if (rc != 0) {
        send_reject(c->fd, SHOAL_ENOMEM, nofds ? "the owner is out of file descriptors (its "
                                                 "ulimit -n): it cannot create the ledger"
                                               : "the owner cannot create the reference ledger");
        conn_close(rt, i);
        return;
    }
    shoal__procs_lock();
    unsigned p = pick_proc(x);
    if (p == 0) {
        shoal__procs_unlock();
        send_reject(c->fd, SHOAL_EBUSY, "too many processes attached (255): detach one first");
        conn_close(rt, i);
        return;
    }
    struct shoal__proc *P = &x->procs[p];
    /* Late frees for the index's previous holder are orphans: take them before reuse. */
    shoal__drain(rt, &pub.t, p, false);
    atomic_store_explicit(&P->draining, 0, memory_order_relaxed);
    uint32_t inc = atomic_load_explicit(&P->inc, memory_order_relaxed) + 1;
    if (inc == 0 || inc > 0xfffffeu)
        inc = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store_explicit(&P->inc, inc, memory_order_relaxed);
    atomic_store_explicit(&P->pid, c->pid, memory_order_relaxed);   /* SO_PEERCRED's */
    atomic_store_explicit(&P->flags, h->flags & SHOAL__HELLO_TOOL ? SHOAL__PROC_TOOL : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&P->sleeping, 0, memory_order_relaxed);
    atomic_store_explicit(&P->attached_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                          memory_order_relaxed);
    /* seq_cst: pushers read the state after pushing (rfree_push). */
    atomic_store_explicit(&P->state, SHOAL__PROC_LIVE, memory_order_seq_cst);
    shoal__procs_unlock();
    flush_cache(rt);
    c->proc = p;
    c->inc = inc;

    struct shoal__msg m;
    size_t n = shoal__msg_init(&m, SHOAL__MSG_WELCOME);
    struct shoal__welcome *w = &m.b.welcome;
    w->proc = p;
    w->inc = inc;
    w->nnodes = rt->nnodes;
    w->nfds = 2 + rt->nnodes;
    w->seg_len = pub.seg_len;
    w->node_span = rt->node_span;
    w->nslots = rt->nslots;
    w->holds_len = c->l.len;
    w->owner_pid = (int32_t)getpid();
    int fds[SHOAL__MAX_FDS];
    fds[0] = pub.seg_fd;
    fds[1] = c->l.fd;
    for (unsigned k = 0; k < rt->nnodes; k++)
        fds[2 + k] = rt->arenas->fds[k];
    if (send_msg(c->fd, &m, n, fds, w->nfds) != 0)
        conn_close(rt, i);   /* gone already: what it may have done is cleaned up */
}

static void conn_read(shoal__rt_t *rt, unsigned i)
{
    struct conn *c = pub.conns[i];
    for (;;) {
        ssize_t r = recv(c->fd, c->rx.buf + c->rx.len, sizeof c->rx.buf - c->rx.len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(rt, i);
            return;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return;
        c->rx.len += (uint32_t)r;
        struct shoal__msg m;
        int rc;
        while ((rc = shoal__rx_next(&c->rx, &m)) != 0) {
            int32_t code;
            const char *why;
            switch (shoal__conn_step(&c->state, rc, &m, &code, &why)) {
            case SHOAL__ACT_WELCOME:
                welcome(rt, i, &m.b.hello);
                if (!pub.conns[i])
                    return;
                break;
            case SHOAL__ACT_REJECT:
                send_reject(c->fd, code, why);
                conn_close(rt, i);
                return;
            case SHOAL__ACT_PONG: {
                struct shoal__msg pm;
                send_msg(c->fd, &pm, shoal__msg_init(&pm, SHOAL__MSG_PONG), NULL, 0);
                break;
            }
            case SHOAL__ACT_BYE:
            case SHOAL__ACT_CLOSE:
                conn_close(rt, i);
                return;
            case SHOAL__ACT_NONE:
                break;
            }
            if (rc < 0)
                break;
        }
    }
}

/* accept failed with EMFILE or ENFILE. The listening socket stays readable, so returning
 * would spin the thread: make room and say whether to accept again. The oldest silent
 * connection goes first (as when the table is full); with none, the spare descriptor lets
 * us take the pending connection and close it at once, the client reading a refusal that
 * says why; without a spare either, we stop listening for a while. */
static bool out_of_fds(shoal__rt_t *rt)
{
    int e = errno;
    if (evict_idle(rt, MAX_CONNS))
        return true;
    uint64_t now = shoal__now_ns();
    if (now - pub.told_ns > 10000000000u || pub.told_ns == 0) {
        pub.told_ns = now;
        shoal__log("store owner out of file descriptors (%s): refusing connections; raise "
                   "ulimit -n", strerror(e));
    }
    if (pub.spare >= 0) {
        close(pub.spare);
        pub.spare = -1;
        int fd = accept4(pub.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int ae = fd < 0 ? errno : 0;
        if (fd >= 0) {
            send_reject(fd, SHOAL_EBUSY, "the store owner is out of file descriptors (its "
                                         "ulimit -n): try again later");
            close(fd);
        }
        pub.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && pub.spare >= 0)
            return true;
        if (fd < 0 && ae != EMFILE && ae != ENFILE && pub.spare >= 0)
            return false;   /* nothing pending any more */
    }
    /* Someone else took the descriptors: listen again in a while (service_main). */
    struct epoll_event el = { .events = 0, .data.ptr = &tag_listen };
    epoll_ctl(pub.ep, EPOLL_CTL_MOD, pub.lfd, &el);
    pub.listen_off = true;
    pub.resume_ns = now + RECLAIM_MIN_NS;
    return false;
}

static void listen_resume(void)
{
    if (pub.spare < 0)
        pub.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event el = { .events = EPOLLIN, .data.ptr = &tag_listen };
    epoll_ctl(pub.ep, EPOLL_CTL_MOD, pub.lfd, &el);
    pub.listen_off = false;
}

static void conn_accept(shoal__rt_t *rt)
{
    for (;;) {
        int fd = accept4(pub.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && out_of_fds(rt))
                continue;
            return;
        }
        /* The peer's identity comes from the kernel, never from what it says (HELLO.pid). */
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
            send_reject(fd, SHOAL_EPERM, "permission denied: only processes of the store "
                                         "owner's user may attach (include/shoal.h, trust)");
            close(fd);
            continue;
        }
        unsigned i = 0;
        while (i < MAX_CONNS && pub.conns[i])
            i++;
        if (i == MAX_CONNS) {
            /* Full: the connection that has waited longest without saying HELLO goes. A
             * real client says it at once, so idle connections, however many, never lock
             * attaching out (at most 255 of the table are attached processes). */
            unsigned old = oldest_idle(MAX_CONNS);
            if (old < MAX_CONNS) {
                conn_close(rt, old);
                i = old;
            }
        }
        struct conn *c = i < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            send_reject(fd, SHOAL_EBUSY, "the owner has too many connections: detach a process");
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pid = (int32_t)cr.pid;
        c->l.fd = -1;
        c->since_ns = shoal__now_ns();
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (epoll_ctl(pub.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pub.conns[i] = c;
        (void)rt;
    }
}

static void *service_main(void *arg)
{
    shoal__rt_t *rt = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals are the application's business */
    struct epoll_event evs[32];
    for (;;) {
        bool handshakes = false;
        for (unsigned i = 0; i < MAX_CONNS; i++)
            handshakes |= pub.conns[i] && pub.conns[i]->state == SHOAL__CONN_HANDSHAKE;
        int timeout = pub.ngone || handshakes || pub.listen_off
                          ? (int)(RECLAIM_MIN_NS / 1000000u) : -1;
        int n = epoll_wait(pub.ep, evs, 32, timeout);
        for (int k = 0; k < n; k++) {
            void *d = evs[k].data.ptr;
            if (d == &tag_event)
                return NULL;
            if (d == &tag_listen) {
                conn_accept(rt);
                continue;
            }
            for (unsigned i = 0; i < MAX_CONNS; i++)
                if (pub.conns[i] == d) {
                    conn_read(rt, i);
                    break;
                }
        }
        uint64_t now = shoal__now_ns();
        if (pub.listen_off && now >= pub.resume_ns)
            listen_resume();
        for (unsigned i = 0; i < MAX_CONNS; i++)
            if (pub.conns[i] && pub.conns[i]->state == SHOAL__CONN_HANDSHAKE &&
                now - pub.conns[i]->since_ns > HANDSHAKE_NS)
                conn_close(rt, i);
        try_reclaim(rt);
    }
}

/* ---- start and stop ------------------------------------------------------------------------- */

/* Another owner may be serving the name; a socket file nobody answers is stale. */
static int claim_path(const char *path, const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return shoal__err(SHOAL_EIO, "socket: %s", strerror(errno));
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, path, strlen(path) + 1);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    if (r == 0)
        return shoal__err(SHOAL_EEXIST, "store name '%s' is already published by a live "
                                        "process (%s): pick another name", name, path);
    if (e == ECONNREFUSED && unlink(path) != 0 && errno != ENOENT)
        return shoal__err(SHOAL_EPERM, "stale socket %s cannot be removed: %s", path,
                          strerror(errno));
    return 0;
}

static void seal(int fd)
{
    /* Without ALLOW_SEALING (or on an old kernel) we go on unsealed; a client could then
     * shrink a segment under us, which only a malicious one would do. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
        static _Atomic int told;
        if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
            shoal__log("cannot seal the store's memfds (%s): published unsealed", strerror(errno));
    }
}

int shoal__publish_start(shoal__rt_t *rt, const char *name, int seg_fd, uint64_t seg_len)
{
    int rc = shoal__sock_path(name, pub.path, sizeof pub.path, 1);
    if (rc)
        return rc;
    rc = claim_path(pub.path, name);
    if (rc)
        return rc;
    pub.rt = rt;
    pub.seg_fd = seg_fd;
    pub.seg_len = seg_len;
    pub.ngone = 0;
    pub.next_proc = 0;
    pub.listen_off = false;
    pub.told_ns = 0;
    memset(pub.conns, 0, sizeof pub.conns);
    memset(&pub.t, 0, sizeof pub.t);
    pub.own_holds_len = shoal__ledger_bytes(rt->nslots);
    void *m = mmap(NULL, pub.own_holds_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot map the reference ledger");
    pub.own_holds = m;
    pub.on = true;   /* from here on, shoal__publish_stop undoes what is done */
    pub.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);   /* best effort: out_of_fds */
    /* The records of our own objects' bytes (layout/mpseg.h), before any object is made. */
    pub.own_len = rt->nslots * sizeof(struct shoal__own);
    m = mmap(NULL, pub.own_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
             MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot map the owner's object records");
    shoal__own = m;

    seal(seg_fd);
    for (unsigned n = 0; n < rt->nnodes; n++)
        seal(rt->arenas->fds[n]);

    pub.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (pub.lfd < 0)
        return shoal__err(SHOAL_EIO, "socket: %s", strerror(errno));
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, pub.path, strlen(pub.path) + 1);
    if (bind(pub.lfd, (struct sockaddr *)&a, sizeof a) != 0)
        return shoal__err(errno == EADDRINUSE ? SHOAL_EEXIST : SHOAL_EIO,
                          "cannot bind %s for store '%s': %s", pub.path, name, strerror(errno));
    struct stat st;
    /* Owner-only before anyone can connect: connecting to a socket that does not listen
     * yet is refused anyway. */
    if (chmod(pub.path, 0600) != 0 || stat(pub.path, &st) != 0) {
        unlink(pub.path);
        return shoal__err(SHOAL_EIO, "cannot make %s owner-only: %s", pub.path, strerror(errno));
    }
    pub.dev = st.st_dev;
    pub.ino = st.st_ino;
    if (listen(pub.lfd, 64) != 0)
        return shoal__err(SHOAL_EIO, "listen on %s: %s", pub.path, strerror(errno));
    pub.ep = epoll_create1(EPOLL_CLOEXEC);
    pub.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pub.ep < 0 || pub.evfd < 0)
        return shoal__err(SHOAL_EIO, "epoll/eventfd: %s", strerror(errno));
    struct epoll_event el = { .events = EPOLLIN, .data.ptr = &tag_listen };
    struct epoll_event ee = { .events = EPOLLIN, .data.ptr = &tag_event };
    if (epoll_ctl(pub.ep, EPOLL_CTL_ADD, pub.lfd, &el) != 0 ||
        epoll_ctl(pub.ep, EPOLL_CTL_ADD, pub.evfd, &ee) != 0)
        return shoal__err(SHOAL_EIO, "epoll_ctl: %s", strerror(errno));

    /* The ledger before any thread can take a reference while published. */
    shoal__holds = pub.own_holds;
    rc = shoal__drain_start(rt, -1);
    if (rc)
        return rc;
    int e = pthread_create(&pub.th, NULL, service_main, rt);
    if (e)
        return shoal__err(SHOAL_ENOMEM, "cannot start the publish thread: %s", strerror(e));
    pub.th_started = true;
    return 0;
}

static void close_conns(void)
{
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        struct conn *c = pub.conns[i];
        if (!c)
            continue;
        close(c->fd);
        ledger_free(&c->l);
        free(c);
        pub.conns[i] = NULL;
    }
}

void shoal__publish_stop(shoal__rt_t *rt)
{
    if (!pub.on)
        return;
    struct shoal__mp *x = shoal__mp_of(rt);
    /* seq_cst: clients' drain threads read it (owner_gone) after we wake them. */
    atomic_store_explicit(&x->procs[0].state, SHOAL__PROC_CLOSED, memory_order_seq_cst);
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++)
        if (atomic_load_explicit(&x->procs[p].state, memory_order_relaxed) == SHOAL__PROC_LIVE)
            shoal__wake_proc(rt, p);
    if (pub.th_started) {
        uint64_t one = 1;
        if (write(pub.evfd, &one, sizeof one) != (ssize_t)sizeof one)
            shoal__log("cannot wake the publish thread: %s", strerror(errno));
        pthread_join(pub.th, NULL);
        pub.th_started = false;
    }
    shoal__drain_stop();
    shoal__foreign_deps_forget();
    /* The store goes away with us: nothing a client held needs giving back. Clients keep
     * their own mappings (they hold the memfds), so they read on without faulting and
     * their calls answer SHOAL_ENOTINIT. */
    close_conns();
    for (unsigned i = 0; i < pub.ngone; i++)
        ledger_free(&pub.gone[i].l);
    pub.ngone = 0;
    if (pub.lfd >= 0) {
        struct stat st;
        if (stat(pub.path, &st) == 0 && st.st_dev == pub.dev && st.st_ino == pub.ino)
            unlink(pub.path);
        close(pub.lfd);
    }
    if (pub.ep >= 0)
        close(pub.ep);
    if (pub.evfd >= 0)
        close(pub.evfd);
    if (pub.spare >= 0)
        close(pub.spare);
    pub.lfd = pub.ep = pub.evfd = pub.spare = -1;
    pub.on = false;
}

void shoal__publish_release(void)
{
    /* Workers take and drop references until the scheduler stops: the ledger stays until
     * the store itself goes. */
    shoal__holds = NULL;
    if (pub.own_holds)
        munmap((void *)pub.own_holds, pub.own_holds_len);
    pub.own_holds = NULL;
    if (shoal__own)
        munmap(shoal__own, pub.own_len);
    shoal__own = NULL;
}

void shoal__publish_forget(void)
{
    /* Only forget: the service thread may have been closing a connection when we were
     * forked, and its number may name another descriptor here. The copies are harmless
     * (the owner learns of a client's death from the client's end) and close at exec. */
    pub.lfd = pub.ep = pub.evfd = pub.spare = -1;
    memset(pub.conns, 0, sizeof pub.conns);
    pub.th_started = false;
    pub.own_holds = NULL;
    shoal__own = NULL;
    pub.on = false;
}
