/* spill.c - spilling: when the store is full, cold objects (sealed and not read since, oldest
 * first) are written to one spill file per process in spill_dir and their bytes freed; a get
 * brings them back. All spill state is owned by the I/O thread (no locks); other threads
 * reach it through messages (room requests, restores, freed extents) and core's hooks.
 *
 * Why "not read since sealed": shoal_get hands out pointers into the store that stay valid
 * while a reference is held, so an object someone has read may be in use and must stay put.
 * The UNREAD bit in the slot word (table.h) records coldness at no cost on the get fast
 * path: the fast path's compare fails on it, the first get clears it in the slow path, and
 * later gets are fast again. shoal_advise_cold sets it back.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "extent.h"
#include "io.h"
#include "spill.h"

#define MAX_SPILLS   32                      /* objects being written at once */
#define MAX_CAND     65536                   /* candidates kept from one scan of the table */
#define PUNCH_MIN    ((uint64_t)64 << 10)    /* free ranges this large give disk space back */
#define TRIM_MIN     ((uint64_t)64 << 20)    /* ... once this much was freed since last time */
#define TRIM_IDLE_NS ((uint64_t)100000000)   /* ... and the spill file saw no I/O for 100 ms */
#define SLACK_MIN    ((uint64_t)4 << 20)     /* spill at least this much beyond the need */
#define ROOM_TRIES   64

static inline uint64_t up4k(uint64_t n) { return (n + SHOAL__IO_ALIGN - 1) & ~(uint64_t)(SHOAL__IO_ALIGN - 1); }

struct cand { uint32_t idx, age; uint64_t gen; };

struct spill_op {                 /* one object being written out */
    shoal_ref ref;
    uint32_t idx;
    uint64_t ext, off, len, t0;
    shoal__xfer x;
};

struct restore {                  /* one object being read back */
    struct restore *next;
    shoal_ref ref;
    uint32_t idx;
    int node;
    uint64_t ext, len, off, t0;
    shoal__iowait aw;             /* parked allocation of the new bytes */
    shoal__iowait *waiters;
    shoal__xfer x;
};

struct pin { uint32_t idx, n; };

static struct {
    bool on;
    shoal__rt_t *rt;
    char path[PATH_MAX];
    int fd, fd_direct;
    struct shoal__extents ex;
    shoal__iowait *wh, *wt;       /* parked waiters, FIFO */
    uint64_t want;                /* bytes they need */
    uint64_t writing;             /* bytes being written */
    uint64_t freed;               /* bytes freed by spills, not yet handed to a waiter */
    unsigned spills;              /* spill writes in flight */
    unsigned punching;            /* hole punches in flight */
    uint64_t unpunched;           /* bytes freed in the file since the last trim */
    uint64_t last_io;             /* when a spill or restore last started or ended */
    uint64_t hw;                  /* the file may hold blocks below this offset */
    int fail_err;                 /* a spill write failed: -errno */
    struct cand *cand;
    size_t ncand, cur;
    bool dry;                     /* the last scan found nothing: wait for a change */
    struct restore *restores;
    struct pin *pins;
    size_t npins, pcap;
} sp = { .fd = -1, .fd_direct = -1 };

/* Counters, in the shared header (segment.h) so that every attached process and shoal-stat
 * read them: written by the owner's I/O thread (drops by any thread), relaxed. */
enum { C_SPILLED_OBJ, C_SPILLED_B, C_RESTORED_OBJ, C_RESTORED_B, C_SPILL_NS, C_RESTORE_NS,
       C_FAILURES, C_NOW_OBJ, C_NOW_B, C_N };
_Static_assert(C_N <= sizeof ((struct shoal__hdr *)0)->spill / sizeof(uint64_t),
               "spill counters fit the header's array");
#define cnt (shoal__rt->hdr->spill)
static inline void count(int c, uint64_t v) { atomic_fetch_add_explicit(&cnt[c], v, memory_order_relaxed); }

void shoal__io_stats(shoal_stats *s)
{
    /* The store's counters, read through this thread's view of the runtime (none: zeros). */
    if (shoal__tls_check() != 0)
        return;
    s->spilled_objects = atomic_load_explicit(&cnt[C_SPILLED_OBJ], memory_order_relaxed);
    s->spilled_bytes = atomic_load_explicit(&cnt[C_SPILLED_B], memory_order_relaxed);
    s->restored_objects = atomic_load_explicit(&cnt[C_RESTORED_OBJ], memory_order_relaxed);
    s->restored_bytes = atomic_load_explicit(&cnt[C_RESTORED_B], memory_order_relaxed);
    s->spill_ns = atomic_load_explicit(&cnt[C_SPILL_NS], memory_order_relaxed);
    s->restore_ns = atomic_load_explicit(&cnt[C_RESTORE_NS], memory_order_relaxed);
    s->spill_failures = atomic_load_explicit(&cnt[C_FAILURES], memory_order_relaxed);
    s->spilled_now_objects = atomic_load_explicit(&cnt[C_NOW_OBJ], memory_order_relaxed);
    s->spilled_now_bytes = atomic_load_explicit(&cnt[C_NOW_B], memory_order_relaxed);
}

bool shoal__spill_on(void) { return sp.on; }

/* ---- the spill file's space --------------------------------------------------------------- */

/* Freed extents go straight back to the allocator; disk space is given back later, in
 * batches, while the spill file is idle (trim): a hole punch takes the inode lock and waits
 * for direct I/O in flight, so punching at every free stalled restores (4 MiB took 5 ms
 * instead of 3 here). A range being punched is out of the free list until its punch is done:
 * a write reusing it must not race the punch, which io_uring runs on a worker thread. */
static void ext_release(uint64_t off, uint64_t len)
{
    shoal__ext merged;
    shoal__ext_free(&sp.ex, off, len, &merged);
    sp.unpunched += len;
}

static void punch_done(shoal__iop *op, int res)
{
    (void)res;   /* a hole that could not be punched only costs disk space */
    shoal__ext merged;
    if (op->off + op->len == sp.hw)
        sp.hw = op->off;   /* the file's tail is a hole now */
    if (sp.on)
        shoal__ext_free(&sp.ex, op->off, op->len, &merged);
    sp.punching--;
    free(op);
}

static void trim(void)
{
    shoal__ext r[65];
    size_t n = shoal__ext_take_free(&sp.ex, PUNCH_MIN, r, 64);
    sp.unpunched = 0;
    if (sp.hw > sp.ex.end) {
        /* Space freed at the end shrank the allocator's end below what the file holds:
         * reserve that tail for its punch, so no new extent lands there meanwhile. */
        r[n++] = (shoal__ext){ sp.ex.end, sp.hw - sp.ex.end };
        sp.ex.used += sp.hw - sp.ex.end;
        sp.ex.end = sp.hw;
    }
    for (size_t i = 0; i < n; i++) {
        shoal__iop *op = r[i].len <= UINT32_MAX ? calloc(1, sizeof *op) : NULL;
        if (!op) {
            shoal__ext merged;
            shoal__ext_free(&sp.ex, r[i].off, r[i].len, &merged);
            continue;
        }
        *op = (shoal__iop){ .code = SHOAL__IOP_PUNCH, .fd = sp.fd, .off = r[i].off,
                            .len = (uint32_t)r[i].len, .done = punch_done };
        sp.punching++;
        shoal__io_submit(op);
    }
}

struct drop_msg { shoal__iomsg msg; uint64_t ext, len; };

static void drop_run(shoal__iomsg *m)
{
    struct drop_msg *d = (struct drop_msg *)m;
    if (sp.on)
        ext_release(d->ext, d->len);
    free(d);
}

void shoal__spill_drop(shoal__slot *s)
{
    /* The acq_rel CAS that freed the slot saw the spiller's release of SPILLED, so `next`
     * is the extent written before it. */
    uint64_t ext = (uint64_t)atomic_load_explicit(&s->next, memory_order_relaxed) << 12;
    uint64_t len = s->len;
    atomic_fetch_sub_explicit(&cnt[C_NOW_OBJ], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cnt[C_NOW_B], len, memory_order_relaxed);
    if (!sp.on)
        return;   /* another process spilled it: its extent goes with that process's file */
    if (shoal__io_self()) {
        ext_release(ext, up4k(len));
        return;
    }
    struct drop_msg *d = malloc(sizeof *d);
    if (!d)
        return;   /* the extent stays used in the file until shutdown: space, not data */
    d->msg.run = drop_run;
    d->ext = ext;
    d->len = up4k(len);
    if (shoal__io_post(&d->msg))
        free(d);
}

/* ---- pins ------------------------------------------------------------------------------------- */

static bool pinned(uint32_t idx)
{
    for (size_t i = 0; i < sp.npins; i++)
        if (sp.pins[i].idx == idx)
            return true;
    return false;
}

void shoal__spill_pin(shoal_ref ref)
{
    uint32_t idx = (uint32_t)shoal__id_idx(ref.id);
    for (size_t i = 0; i < sp.npins; i++)
        if (sp.pins[i].idx == idx) {
            sp.pins[i].n++;
            return;
        }
    if (sp.npins == sp.pcap) {
        size_t cap = sp.pcap ? sp.pcap * 2 : 16;
        struct pin *p = realloc(sp.pins, cap * sizeof *p);
        if (!p)
            return;   /* unpinned: an advise_cold racing the write could spill it early */
        sp.pins = p;
        sp.pcap = cap;
    }
    sp.pins[sp.npins++] = (struct pin){ idx, 1 };
}

void shoal__spill_unpin(shoal_ref ref)
{
    uint32_t idx = (uint32_t)shoal__id_idx(ref.id);
    for (size_t i = 0; i < sp.npins; i++)
        if (sp.pins[i].idx == idx) {
            if (--sp.pins[i].n == 0)
                sp.pins[i] = sp.pins[--sp.npins];
            return;
        }
}

/* ---- choosing what to spill ------------------------------------------------------------------- */

static int cand_older(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->age != y->age)
        return x->age < y->age ? 1 : -1;    /* larger age (older) first */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Collect READY|UNREAD objects, keeping the MAX_CAND oldest: when the array fills, the
 * younger half is dropped and only objects older than what was kept are taken after. */
static void scan(void)
{
    shoal__rt_t *rt = sp.rt;
    if (!sp.cand && !(sp.cand = malloc(MAX_CAND * sizeof *sp.cand)))
        return;
    uint64_t end = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed);
    if (end > rt->nslots)
        end = rt->nslots;
    uint32_t now = shoal__seal_era(), floor = 0;
    size_t n = 0;
    for (uint64_t i = 1; i < end; i++) {
        shoal__slot *s = &rt->slots[i];
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (shoal__w_state(w) != SHOAL__READY || !(w & SHOAL__W_UNREAD))
            continue;
        uint32_t age = now - atomic_load_explicit(&s->next, memory_order_relaxed);
        if (n && age < floor)
            continue;
        if (n == MAX_CAND) {
            qsort(sp.cand, n, sizeof *sp.cand, cand_older);
            n = MAX_CAND / 2;
            floor = sp.cand[n - 1].age;
        }
        sp.cand[n++] = (struct cand){ (uint32_t)i, age, shoal__w_gen(w) };
    }
    qsort(sp.cand, n, sizeof *sp.cand, cand_older);
    sp.ncand = n;
    sp.cur = 0;
}

/* Put a claimed object back to READY (keeping our reference for the caller to release). */
static void unclaim(shoal__slot *s, bool unread)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    do {
        if (shoal__w_state(w) != SHOAL__SPILLING)
            return;   /* a get took it back already */
        nw = (w & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT) |
             (unread ? SHOAL__W_UNREAD : 0);
        /* release: pairs with getters' acquire; the bytes never moved. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_release,
                                                    memory_order_relaxed));
}

static void spill_written(shoal__xfer *x);

static bool start_one(void)
{
    shoal__rt_t *rt = sp.rt;
    for (;;) {
        if (sp.cur >= sp.ncand) {
            if (sp.dry)
                return false;
            scan();
            if (sp.ncand == 0) {
                sp.dry = true;
                return false;
            }
        }
        struct cand c = sp.cand[sp.cur++];
        if (pinned(c.idx))
            continue;
        shoal__slot *s = &rt->slots[c.idx];
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire), nw;
        bool claimed = false;
        while (shoal__w_gen(w) == c.gen && shoal__w_state(w) == SHOAL__READY &&
               (w & SHOAL__W_UNREAD) && shoal__w_refs(w) < SHOAL__REFS_MAX) {
            /* Claim: READY|UNREAD -> SPILLING plus one reference, so the object outlives the
             * write. acquire: pairs with the release that sealed it (off, len, bytes) and
             * with shoal_advise_cold's release (the caller's last reads happen before). */
            nw = ((w & ~(SHOAL__W_STATE_MASK | SHOAL__W_UNREAD)) |
                  ((uint64_t)SHOAL__SPILLING << SHOAL__W_STATE_SHIFT)) + 1;
            if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acquire,
                                                      memory_order_acquire)) {
                claimed = true;
                break;
            }
        }
        if (!claimed)
            continue;
        shoal_ref ref = { shoal__id_make(c.idx, c.gen) };
        uint64_t off = s->off, len = s->len;
        bool ours = (s->aux & 0xffu) == rt->proc;
        if (shoal__own)   /* published: where our records say, not the shared slot */
            ours = shoal__own_peek(c.idx, &off, &len);
        if (len == 0 || !ours) {
            /* No store bytes, never worth a write; or another process's bytes, which only
             * its allocator may free: leave it resident for good. */
            unclaim(s, false);
            shoal_release(ref);
            continue;
        }
        struct spill_op *op = malloc(sizeof *op);
        if (!op) {
            unclaim(s, true);
            shoal_release(ref);
            return false;
        }
        op->ref = ref;
        op->idx = c.idx;
        op->off = off;
        op->len = len;
        op->ext = shoal__ext_alloc(&sp.ex, up4k(op->len));
        if (sp.ex.end > sp.hw)
            sp.hw = sp.ex.end;
        op->t0 = shoal__io_now();
        char *buf = rt->base + op->off;
        bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                      shoal__xfer_can_direct(buf, op->len, nallocx(op->len, 0), op->ext);
        op->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = true,
                               .direct = direct, .buf = buf, .len = op->len, .foff = op->ext,
                               .finish = spill_written, .owner = op,
                               .chunk = SHOAL__IO_WCHUNK, .qd = SHOAL__IO_WQD };
        sp.writing += op->len;
        sp.spills++;
        sp.last_io = op->t0;
        shoal__xfer_start(&op->x);
        return true;
    }
}

static void spill_written(shoal__xfer *x)
{
    struct spill_op *op = x->owner;
    shoal__rt_t *rt = sp.rt;
    shoal__slot *s = &rt->slots[op->idx];
    sp.writing -= op->len;
    sp.spills--;
    sp.last_io = shoal__io_now();
    sp.dry = false;
    if (x->err) {
        if (!sp.fail_err)
            sp.fail_err = x->err;
        count(C_FAILURES, 1);
        unclaim(s, true);
        ext_release(op->ext, up4k(op->len));
    } else {
        /* `next` held the seal era; from now until the object is resident again it holds
         * the extent (in pages: 16 TiB of spill file at most). */
        atomic_store_explicit(&s->next, (uint32_t)(op->ext >> 12), memory_order_relaxed);
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
        bool spilled = false;
        while (shoal__w_state(w) == SHOAL__SPILLING) {
            nw = (w & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__SPILLED << SHOAL__W_STATE_SHIFT);
            /* release: publishes `next` to whoever frees or restores the object. */
            if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_release,
                                                      memory_order_relaxed)) {
                spilled = true;
                break;
            }
        }
        if (spilled) {
            shoal__own_spilled(op->idx, op->ext);
            shoal__io_free(op->off, op->len);
            sp.freed += op->len;
            count(C_SPILLED_OBJ, 1);
            count(C_SPILLED_B, op->len);
            count(C_SPILL_NS, shoal__io_now() - op->t0);
            count(C_NOW_OBJ, 1);
            count(C_NOW_B, op->len);
        } else {
            ext_release(op->ext, up4k(op->len));   /* a get took it back while it was written */
        }
    }
    shoal_release(op->ref);   /* the claim's reference; the last one frees a spilled object */
    free(op);
}

/* ---- waiters ----------------------------------------------------------------------------------- */

static bool room_for(uint64_t need)
{
    shoal__rt_t *rt = sp.rt;
    uint64_t usable = nallocx(need, 0);
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__node_stats *ns = &rt->hdr->node[n];
        if (atomic_load_explicit(&ns->bytes_used, memory_order_relaxed) + usable <= ns->cap)
            return true;
    }
    return false;
}

static uint64_t free_bytes(void)
{
    shoal__rt_t *rt = sp.rt;
    uint64_t f = 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__node_stats *ns = &rt->hdr->node[n];
        uint64_t used = atomic_load_explicit(&ns->bytes_used, memory_order_relaxed);
        f += used < ns->cap ? ns->cap - used : 0;
    }
    return f;
}

void shoal__spill_want(shoal__iowait *w)
{
    w->next = NULL;
    if (sp.wt)
        sp.wt->next = w;
    else
        sp.wh = w;
    sp.wt = w;
    sp.want += w->need;
    sp.dry = false;
}

static shoal__iowait *pop_waiter(void)
{
    shoal__iowait *w = sp.wh;
    sp.wh = w->next;
    if (!sp.wh)
        sp.wt = NULL;
    sp.want -= w->need;
    return w;
}

static void fail_waiters(int rc, const char *why)
{
    while (sp.wh) {
        shoal__iowait *w = pop_waiter();
        w->rc = rc;
        snprintf(w->err, sizeof w->err, "%s", why);
        shoal__io_defer(&w->msg);
    }
}

bool shoal__spill_cancel_waiters(void)
{
    if (!sp.wh)
        return false;
    fail_waiters(SHOAL_ECANCELED, "shoal is shutting down");
    return true;
}

uint64_t shoal__spill_trim_due(void)
{
    if (!sp.on || sp.unpunched < TRIM_MIN || sp.spills || sp.restores || sp.punching || sp.wh)
        return 0;
    return sp.last_io + TRIM_IDLE_NS;
}

void shoal__spill_pump(void)
{
    if (!sp.wh) {
        uint64_t due = shoal__spill_trim_due();
        if (due && shoal__io_now() >= due)
            trim();
        return;
    }
    /* Serve in order: a first request is served when there is room now (someone freed
     * memory); a repeated one only once spills freed what it needs. */
    while (sp.wh && ((sp.wh->tries == 0 && room_for(sp.wh->need)) || sp.freed >= sp.wh->need)) {
        shoal__iowait *w = pop_waiter();
        sp.freed = sp.freed > w->need ? sp.freed - w->need : 0;
        w->rc = 0;
        shoal__io_defer(&w->msg);
    }
    if (!sp.wh) {
        sp.freed = 0;
        return;
    }
    uint64_t store = sp.rt->hdr->store_bytes;
    uint64_t slack = store / 64 > SLACK_MIN ? store / 64 : SLACK_MIN;
    if (slack > store / 8)
        slack = store / 8;
    while (!sp.fail_err && sp.spills < MAX_SPILLS && sp.writing + sp.freed < sp.want + slack)
        if (!start_one())
            break;
    if (sp.spills)
        return;
    /* Nothing in flight and nothing more to start: the waiters cannot be served. */
    char why[256];
    if (sp.fail_err)
        snprintf(why, sizeof why, "spilling to %.150s failed: %s (errno %d); no object was lost",
                 sp.path, strerror(-sp.fail_err), -sp.fail_err);
    else if (room_for(sp.wh->need))
        snprintf(why, sizeof why, "the store has %llu bytes free but not in one piece "
                 "(fragmented by objects of other sizes), and nothing left to spill",
                 (unsigned long long)free_bytes());
    else
        snprintf(why, sizeof why, "nothing left to spill: every resident object was read since "
                 "it was sealed, or is pending (release objects, or call shoal_advise_cold on "
                 "those no longer read)");
    sp.fail_err = 0;
    sp.freed = 0;
    fail_waiters(SHOAL_ENOMEM, why);
}

/* ---- restoring ---------------------------------------------------------------------------------- */

static void restore_finish(struct restore *r, int rc, const char *why)
{
    sp.last_io = shoal__io_now();
    for (struct restore **p = &sp.restores; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    while (r->waiters) {
        shoal__iowait *w = r->waiters;
        r->waiters = w->next;
        w->rc = rc;
        snprintf(w->err, sizeof w->err, "%s", why ? why : "");
        shoal__io_defer(&w->msg);
    }
    shoal_release(r->ref);   /* the claim's reference */
    free(r);
}

static void restore_fail(struct restore *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void restore_fail(struct restore *r, int rc, const char *fmt, ...)
{
    shoal__slot *s = &sp.rt->slots[r->idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    do {   /* back to SPILLED: the data is still on disk, a later get tries again */
        nw = (w & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__SPILLED << SHOAL__W_STATE_SHIFT);
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    restore_finish(r, rc, why);
}

static void restore_read(shoal__xfer *x)
{
    struct restore *r = x->owner;
    shoal__rt_t *rt = sp.rt;
    if (x->err) {
        shoal__io_free(r->off, r->len);
        int e = x->err == SHOAL__XFER_SHORT ? EIO : -x->err;
        restore_fail(r, SHOAL_EIO, "restoring object 0x%016llx from %.150s failed: %s (errno %d)",
                     (unsigned long long)r->ref.id, sp.path, strerror(e), e);
        return;
    }
    shoal__slot *s = &rt->slots[r->idx];
    /* The objects counter follows the bytes to their new node. */
    unsigned from = shoal__off_node(rt, s->off), to = shoal__off_node(rt, r->off);
    if (from != to && from < rt->nnodes) {
        shoal__count_objs(rt, rt->proc, from, -1);
        shoal__count_objs(rt, rt->proc, to, 1);
    }
    s->off = r->off;   /* RESTORING is ours: nobody else reads or writes off now */
    shoal__own_restored(r->idx, r->off);
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    do {
        nw = (w & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT);
        /* release: publishes off and the bytes read to getters' acquire loads. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_release,
                                                    memory_order_relaxed));
    ext_release(r->ext, up4k(r->len));
    count(C_RESTORED_OBJ, 1);
    count(C_RESTORED_B, r->len);
    count(C_RESTORE_NS, shoal__io_now() - r->t0);
    atomic_fetch_sub_explicit(&cnt[C_NOW_OBJ], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cnt[C_NOW_B], r->len, memory_order_relaxed);
    restore_finish(r, 0, NULL);
}

static void restore_start(shoal__iomsg *m);

static void restore_alloc_retry(shoal__iomsg *m)
{
    struct restore *r = (struct restore *)((char *)m - offsetof(struct restore, aw));
    if (r->aw.rc < 0)
        restore_fail(r, r->aw.rc, "no room to restore object 0x%016llx (%llu bytes): %s",
                     (unsigned long long)r->ref.id, (unsigned long long)r->len, r->aw.err);
    else {
        r->aw.tries++;   /* from now on wait for spills, not just for free room */
        restore_start(m);
    }
}

static void restore_start(shoal__iomsg *m)
{
    struct restore *r = (struct restore *)((char *)m - offsetof(struct restore, aw));
    r->aw.msg.run = restore_alloc_retry;
    int rc = shoal__io_alloc(r->len, r->node, &r->off, &r->aw);
    if (rc == 1)
        return;
    if (rc < 0) {
        restore_fail(r, rc, "no room to restore object 0x%016llx (%llu bytes): %s",
                     (unsigned long long)r->ref.id, (unsigned long long)r->len,
                     shoal_last_error());
        return;
    }
    char *buf = sp.rt->base + r->off;
    bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                  shoal__xfer_can_direct(buf, r->len, nallocx(r->len, 0), r->ext);
    r->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = false,
                          .direct = direct, .buf = buf, .len = r->len, .foff = r->ext,
                          .finish = restore_read, .owner = r };
    shoal__xfer_start(&r->x);
}

int shoal__spill_resident(shoal_ref ref, int node, shoal__iowait *w)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    uint32_t idx = (uint32_t)shoal__id_idx(ref.id);
    uint64_t v = atomic_load_explicit(&s->word, memory_order_acquire), nv;
    for (;;) {
        if (shoal__w_gen(v) != shoal__id_gen(ref.id) || shoal__w_state(v) == SHOAL__FREE)
            return shoal__slot_of(ref, &err) ? SHOAL_ESTALE : err;
        switch (shoal__w_state(v)) {
        case SHOAL__SPILLING:
            /* The write is still running and the bytes are still here: take it back; the
             * write's completion sees READY and drops the copy. */
            nv = (v & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT);
            if (atomic_compare_exchange_weak_explicit(&s->word, &v, nv, memory_order_acq_rel,
                                                      memory_order_acquire))
                return 0;
            continue;
        case SHOAL__RESTORING:
            for (struct restore *r = sp.restores; r; r = r->next)
                if (r->idx == idx) {
                    w->next = r->waiters;
                    r->waiters = w;
                    return 1;
                }
            return 0;   /* not ours: cannot happen with one I/O thread */
        case SHOAL__SPILLED: {
            if (!sp.on)   /* its bytes are in the owner's spill file */
                return shoal__err(SHOAL_EIO, "object 0x%016llx is spilled to disk by the "
                                  "store's owner; this process cannot restore it (read it in "
                                  "the owner first)", (unsigned long long)ref.id);
            if (shoal__w_refs(v) == SHOAL__REFS_MAX)
                return shoal__err(SHOAL_EINVAL, "reference count overflow");
            struct restore *r = calloc(1, sizeof *r);
            if (!r)
                return shoal__err(SHOAL_ENOMEM, "out of memory restoring a spilled object");
            /* Claim with one more reference, so the object outlives the read. acquire:
             * pairs with the release that made it SPILLED (its extent in `next`). */
            nv = ((v & ~SHOAL__W_STATE_MASK) |
                  ((uint64_t)SHOAL__RESTORING << SHOAL__W_STATE_SHIFT)) + 1;
            if (!atomic_compare_exchange_weak_explicit(&s->word, &v, nv, memory_order_acquire,
                                                       memory_order_acquire)) {
                free(r);
                continue;
            }
            r->ref = ref;
            r->idx = idx;
            r->node = node;
            r->len = s->len;
            r->ext = (uint64_t)atomic_load_explicit(&s->next, memory_order_relaxed) << 12;
            shoal__own_extent(idx, &r->ext, &r->len);
            r->t0 = shoal__io_now();
            r->waiters = w;
            w->next = NULL;
            r->next = sp.restores;
            sp.restores = r;
            restore_start(&r->aw.msg);
            return 1;
        }
        default:
            return 0;
        }
    }
}

/* ---- requests from other threads --------------------------------------------------------------- */

struct touch_req { shoal__iosync sync; shoal__iowait w; shoal_ref ref; int node; };

static void touch_done(shoal__iomsg *m)
{
    struct touch_req *t = (struct touch_req *)((char *)m - offsetof(struct touch_req, w));
    shoal__iosync_answer(&t->sync, t->w.rc, t->w.rc ? "%s" : NULL, t->w.err);
}

static void touch_run(shoal__iomsg *m)
{
    struct touch_req *t = (struct touch_req *)m;
    t->w.msg.run = touch_done;
    int rc = shoal__spill_resident(t->ref, t->node, &t->w);
    if (rc != 1)
        shoal__iosync_answer(&t->sync, rc, rc < 0 ? "%s" : NULL, shoal_last_error());
}

int shoal__spill_touch(shoal_ref ref, shoal__slot *s)
{
    uint64_t v = atomic_load_explicit(&s->word, memory_order_acquire);
    if (shoal__w_gen(v) == shoal__id_gen(ref.id) && shoal__w_state(v) == SHOAL__SPILLING) {
        /* The bytes are still here while the write runs: take the object back at once; the
         * write's completion sees READY and drops its copy. acq_rel: acquire as the load
         * above; release orders nothing new (the bytes never moved). */
        uint64_t nv = (v & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT);
        atomic_compare_exchange_strong_explicit(&s->word, &v, nv, memory_order_acq_rel,
                                                memory_order_relaxed);
        return 0;   /* the caller looks again, whoever won */
    }
    struct touch_req t;
    memset(&t, 0, sizeof t);
    t.sync.msg.run = touch_run;
    t.ref = ref;
    t.node = shoal__tls.node;
    return shoal__iosync_call(&t.sync);
}

struct room_req { shoal__iosync sync; shoal__iowait w; };

static void room_done(shoal__iomsg *m)
{
    struct room_req *r = (struct room_req *)((char *)m - offsetof(struct room_req, w));
    shoal__iosync_answer(&r->sync, r->w.rc, r->w.rc ? "%s" : NULL, r->w.err);
}

static void room_run(shoal__iomsg *m)
{
    struct room_req *r = (struct room_req *)m;
    r->w.msg.run = room_done;
    shoal__spill_want(&r->w);
}

int shoal__spill_alloc(shoal__rt_t *rt, struct shoal__thr *t, size_t len, unsigned node,
                       uint64_t *off)
{
    /* The retry below must not come back here: its failure is answered by the next round. */
    static __thread bool retrying;
    if (retrying || shoal__io_self() || !sp.on || len > rt->hdr->store_bytes)
        return 1;
    for (unsigned tries = 0; tries < ROOM_TRIES; tries++) {
        struct room_req r;
        memset(&r, 0, sizeof r);
        r.sync.msg.run = room_run;
        r.w.need = len;
        r.w.tries = tries;
        int rc = shoal__iosync_call(&r.sync);
        if (rc)
            return shoal__err(rc, "store full: cannot place %zu bytes: %s", len, r.sync.err);
        retrying = true;
        rc = shoal__arena_alloc(rt, t, len, node, off);
        retrying = false;
        if (rc == 0)
            return 0;
    }
    return shoal__err(SHOAL_ENOMEM, "store full: spilling made room for %zu bytes %d times but "
                      "other allocations took it each time", len, ROOM_TRIES);
}

SHOAL_API int shoal_advise_cold(shoal_ref ref)
{
    int rc = shoal__tls_check();
    if (unlikely(rc))
        return rc;
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    if (!shoal__rt->cfg.spill_dir)
        return 0;   /* nothing is ever spilled */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    for (;;) {
        if (shoal__w_gen(w) != shoal__id_gen(ref.id) || shoal__w_state(w) == SHOAL__FREE)
            return shoal__slot_of(ref, &err) ? SHOAL_ESTALE : err;
        if (shoal__w_state(w) != SHOAL__READY || (w & SHOAL__W_UNREAD))
            return 0;   /* not resident and sealed, or already cold */
        /* Cold from now: it queues behind objects that went cold earlier. */
        atomic_store_explicit(&s->next, shoal__seal_era(), memory_order_relaxed);
        /* release: the caller's reads of the bytes happen before the spiller's acquire claim
         * (and so before the bytes are freed). */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_UNREAD,
                                                  memory_order_release, memory_order_relaxed))
            return 0;
    }
}

/* ---- the spill directory ------------------------------------------------------------------------- */

/* Remove spill files whose owner is gone. Each owner holds an exclusive flock on its file for
 * as long as it runs and the kernel drops it when the process dies, so a lock we can take
 * names a file nobody uses (pid reuse cannot fool it, as a pid in the name could). */
static void clean_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    int dfd = dirfd(d), removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "shoal-spill-", 12) != 0)
            continue;
        int fd = openat(dfd, de->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dfd, de->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    if (removed)
        shoal__log("removed %d spill file(s) left in %s by runs that did not shut down",
                   removed, dir);
}

int shoal__spill_open(shoal__rt_t *rt, const char *dir)
{
    static _Atomic unsigned seq;
    struct stat st;
    if (!*dir)
        return shoal__err(SHOAL_EINVAL, "config.spill_dir is empty: pass a directory, or NULL "
                          "for no spilling");
    if (stat(dir, &st) != 0)
        return shoal__err(SHOAL_EINVAL, "config.spill_dir '%s': %s (errno %d): pass an "
                          "existing, writable directory", dir, strerror(errno), errno);
    if (!S_ISDIR(st.st_mode))
        return shoal__err(SHOAL_EINVAL, "config.spill_dir '%s' is not a directory", dir);
    clean_leftovers(dir);
    int n = snprintf(sp.path, sizeof sp.path, "%s/shoal-spill-%d-%u.bin", dir, (int)getpid(),
                     atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed));
    if (n < 0 || (size_t)n >= sizeof sp.path)
        return shoal__err(SHOAL_EINVAL, "config.spill_dir '%s' is too long", dir);
    sp.fd = open(sp.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (sp.fd < 0) {
        int e = errno;
        return shoal__err(SHOAL_EINVAL, "config.spill_dir '%s' is not writable: cannot create "
                          "%s: %s (errno %d)", dir, sp.path, strerror(e), e);
    }
    if (flock(sp.fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        shoal__spill_close();
        return shoal__err(SHOAL_EINVAL, "config.spill_dir '%s': cannot lock %s: %s", dir,
                          sp.path, strerror(e));
    }
    sp.fd_direct = open(sp.path, O_RDWR | O_DIRECT | O_CLOEXEC);   /* -1: buffered only */
    sp.rt = rt;
    sp.on = true;
    return 0;
}

void shoal__spill_close(void)
{
    if (sp.fd >= 0) {
        unlink(sp.path);
        close(sp.fd);
    }
    if (sp.fd_direct >= 0)
        close(sp.fd_direct);
    for (struct restore *r = sp.restores, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    free(sp.cand);
    free(sp.pins);
    shoal__ext_reset(&sp.ex);
    memset(&sp, 0, sizeof sp);
    sp.fd = sp.fd_direct = -1;
}
