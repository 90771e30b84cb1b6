/* spill.c - spilling: when the store is full, cold objects (sealed and not read since, oldest
 * first) are written to one spill file per process in spill_dir and their bytes freed; a get
 * brings them back. All spill state is owned by the I/O thread (no locks); other threads
 * reach it through messages (room requests, restores, freed extents) and core's hooks.
 *
 * Why "not read since sealed": shoal_get hands out pointers into the store that stay valid
 * while a reference is held, so an object someone has read may be in use and must stay put.
 * The UNREAD bit in the slot word (table.h) records coldness at no cost on the get fast
 * path: the fast path's compare fails on it, the first get clears it in the slow path, and
 * later gets are fast again. shoal_advise_cold sets it back, but only for the holder of the
 * one reference left: any other holder may still hold a pointer (shoal.h states the rule).
 *
 * Making room. A request parks here (shoal__spill_want); the pump serves requests in order,
 * spilling the oldest cold objects until what was freed covers the request plus some slack.
 * When the bytes are free in total but the allocation still failed (not in one piece), the
 * pump aims: it reads where the resident objects lie, finds the window of the size wanted
 * that costs the fewest bytes of cold objects to clear, and spills those; if the allocator
 * still cannot place the object it goes on oldest first, until nothing cold is left. After a
 * request had to wait, the pump keeps spilling ahead of demand until a reserve is free, so
 * a stream of puts finds room at once while the disk keeps writing (no put waits for its
 * own write, and the disk does not idle while the puts copy).
 *
 * A full disk. A spill write that fails for want of space leaves its object resident, and a
 * put that needed it fails. A restore still goes through, by a swap: the restored object's
 * bytes are read out of the file into private memory, which frees its extent; cold objects
 * that fit the freed space are spilled into it; the object is copied into the store memory
 * they freed. If no room comes of it, the bytes are written back to the file, or, when even
 * that fails, stay in private memory ("parked": SPILLED with a park id in `next`) until the
 * next get or the release. No object is lost or left unreadable while a swap can place it.
 *
 * Disk space comes back: freed extents are reused first fit, and once the spill file has
 * been idle for a moment the free ranges (and the file's tail) are punched out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../core/objrefs.h"
#include "../layout/mpseg.h"
#include "../os/futex.h"
#include "extent.h"
#include "io.h"
#include "spill.h"

#define MAX_SPILLS   32                      /* objects being written at once */
#define WRITE_CAP    ((uint64_t)4 * SHOAL__IO_WCHUNK)   /* bytes of spill writes in flight */
#define MAX_CAND     65536                   /* candidates kept from one scan of the table */
#define PUNCH_MIN    ((uint64_t)64 << 10)    /* free ranges this large give disk space back */
#define PUNCH_MAX    ((uint64_t)1 << 30)     /* one punch request at most (its length is 32-bit) */
#define TRIM_IDLE_NS ((uint64_t)100000000)   /* ... once the spill file saw no I/O for 100 ms */
#define SLACK_MIN    ((uint64_t)4 << 20)     /* spill at least this much beyond the need */
#define ROOM_TRIES   64
#define NO_EXT       UINT64_MAX              /* the bytes are not in the file */
/* `next` of a SPILLED object: its extent in 4 KiB pages, or PARK_BASE + a park id. */
#define PARK_BASE    0xF0000000u
#define PARK_MASK    0x0FFFFFFFu
#define PATH_SHOWN   96                      /* bytes of the spill file's path in a message */
#define SWEEP_NS     ((uint64_t)1000000000)  /* a published store looks for objects others freed */

static inline uint64_t up4k(uint64_t n) { return (n + SHOAL__IO_ALIGN - 1) & ~(uint64_t)(SHOAL__IO_ALIGN - 1); }

/* What an object of len bytes takes of the store (the allocator's usable size). */
static inline uint64_t footprint(uint64_t len) { return shoal__acct_size(len); }

static inline bool disk_full_err(int e) { return e == -ENOSPC || e == -EDQUOT || e == -EFBIG; }

struct cand { uint32_t idx, age; uint64_t gen; };

struct spill_op {                 /* one object being written out */
    struct spill_op *next;        /* sp.writes */
    shoal_ref ref;
    uint32_t idx;
    uint64_t ext, off, len, t0;
    shoal__xfer x;
};

struct restore {                  /* one object being read back (or parked in memory) */
    struct restore *next;
    shoal_ref ref;
    uint32_t idx;
    uint32_t park;                /* parked: its id (`next` holds PARK_BASE + park) */
    int node;
    uint64_t ext, len, off, t0;   /* ext: NO_EXT once the bytes left the file */
    char *mem;                    /* the bytes in private memory (a swap, or parked) */
    bool placed;                  /* off is allocated in the store */
    bool bouncing;                /* a read of the file into mem runs */
    shoal__iowait aw;             /* parked allocation of the new bytes */
    shoal__iowait *waiters;
    shoal__xfer x;
};

struct pin { uint32_t idx, n; };

struct rec { uint32_t idx, page; uint64_t gen, len; };   /* see "what this process spilled" */

static struct {
    bool on;
    shoal__rt_t *rt;
    char path[PATH_MAX];
    int fd, fd_direct;
    struct shoal__extents ex;
    shoal__iowait *wh, *wt;       /* parked waiters, FIFO */
    uint64_t want;                /* bytes they need */
    uint64_t writing;             /* bytes being written (store footprints, as below) */
    uint64_t freed;               /* bytes freed by spills, not yet handed to a waiter */
    unsigned spills;              /* spill writes in flight */
    struct spill_op *writes;      /* ... their list */
    unsigned punching;            /* hole punches in flight */
    unsigned bouncing;            /* swap reads in flight */
    uint64_t unpunched;           /* bytes freed in the file since the last trim */
    uint64_t last_io;             /* when a spill or restore last started or ended */
    uint64_t hw;                  /* the file may hold blocks below this offset */
    int fail_err;                 /* a spill write failed: -errno */
    bool disk_full;               /* ... for want of space: only write where the file has room */
    bool ahead;                   /* keep spilling until the reserve is free */
    uint64_t swap_next, swap_end; /* a swap's extent: where its victims go while the disk is full */
    struct restore *swapper;      /* the restore that swaps */
    struct cand *cand;
    size_t ncand, cur;
    bool dry;                     /* the last scan found nothing: wait for a change */
    struct cand *aim;             /* the window being cleared for a fragmented request */
    size_t naim, aimcur;
    const shoal__iowait *aimed;   /* the request it was chosen for */
    unsigned aim_spilled;         /* spills the aim started */
    struct restore *restores;
    struct restore *parked;       /* objects whose bytes only private memory holds */
    uint32_t park_seq;
    struct rec *recs;             /* what this process spilled, by slot index */
    size_t nrec, rcap;
    uint64_t last_sweep;
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

void (*shoal__spill_restore_hook)(shoal_ref ref);
void (*shoal__spill_again_hook)(unsigned tries);

/* The spill file's path for a message: its tail when it is long, so that what precedes it
 * (the reason) always fits the message buffer. */
static const char *path_shown(void)
{
    size_t n = strlen(sp.path);
    return n <= PATH_SHOWN ? sp.path : sp.path + n - PATH_SHOWN;
}
#define PATH_DOTS() (strlen(sp.path) > PATH_SHOWN ? "..." : "")

/* ---- the store's room ------------------------------------------------------------------- */

static bool room_for(uint64_t need)
{
    shoal__rt_t *rt = sp.rt;
    uint64_t usable = footprint(need);
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__node_stats *ns = &rt->hdr->node[n];
        if (atomic_load_explicit(&ns->bytes_used, memory_order_relaxed) + usable <= ns->cap)
            return true;
    }
    return false;
}

/* Bytes in use and the capacity, summed over the nodes (one snapshot, so that a message's
 * figures agree with each other). */
static void usage(uint64_t *used, uint64_t *cap)
{
    shoal__rt_t *rt = sp.rt;
    *used = *cap = 0;
    for (unsigned n = 0; n < rt->nnodes; n++) {
        struct shoal__node_stats *ns = &rt->hdr->node[n];
        uint64_t u = atomic_load_explicit(&ns->bytes_used, memory_order_relaxed);
        *used += u < ns->cap ? u : ns->cap;
        *cap += ns->cap;
    }
}

static uint64_t free_bytes(void)
{
    uint64_t used, cap;
    usage(&used, &cap);
    return cap - used;
}

/* Spill this much beyond a request, so that the next few find room at once. */
static uint64_t slack(void)
{
    uint64_t store = sp.rt->hdr->store_bytes;
    uint64_t s = store / 64 > SLACK_MIN ? store / 64 : SLACK_MIN;
    return s > store / 8 ? store / 8 : s;
}

/* ... and keep this much free while spilling ahead: at least two writes' worth. */
static uint64_t reserve(void)
{
    uint64_t store = sp.rt->hdr->store_bytes, r = slack();
    if (r < 2 * (uint64_t)SHOAL__IO_WCHUNK)
        r = 2 * (uint64_t)SHOAL__IO_WCHUNK;
    return r > store / 8 ? store / 8 : r;
}

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

/* An extent for len bytes (a multiple of 4 KiB). While a swap runs, its victims go into the
 * extent the swapped object left (those blocks exist: writing there needs no space); when
 * that is used up, nothing more is spilled for it. While the disk is full otherwise, only
 * the file's free ranges (growing the file would only fail again). The page number must
 * stay below the park ids. */
static bool ext_get(uint64_t len, uint64_t *ext)
{
    if (sp.swap_end) {
        if (sp.swap_end - sp.swap_next < len)
            return false;
        *ext = sp.swap_next;
        sp.swap_next += len;
        return true;
    }
    if (sp.disk_full) {
        if (!shoal__ext_alloc_free(&sp.ex, len, ext))
            return false;
    } else {
        *ext = shoal__ext_alloc(&sp.ex, len);
    }
    if ((*ext + len) >> 12 >= PARK_BASE) {
        ext_release(*ext, len);
        return false;
    }
    if (sp.ex.end > sp.hw)
        sp.hw = sp.ex.end;
    return true;
}

/* A swap ended: what its extent still holds unused goes back to the free list. */
static void swap_over(void)
{
    if (sp.swap_end > sp.swap_next)
        ext_release(sp.swap_next, sp.swap_end - sp.swap_next);
    sp.swap_next = sp.swap_end = 0;
    sp.swapper = NULL;
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

static void punch(uint64_t off, uint64_t len)
{
    shoal__iop *op = calloc(1, sizeof *op);
    if (!op) {
        shoal__ext merged;
        shoal__ext_free(&sp.ex, off, len, &merged);
        return;
    }
    *op = (shoal__iop){ .code = SHOAL__IOP_PUNCH, .fd = sp.fd, .off = off, .len = (uint32_t)len,
                        .done = punch_done };
    sp.punching++;
    shoal__io_submit(op);
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
    for (size_t i = 0; i < n; i++)
        for (uint64_t at = 0; at < r[i].len; at += PUNCH_MAX)
            punch(r[i].off + at, r[i].len - at < PUNCH_MAX ? r[i].len - at : PUNCH_MAX);
}

static uint64_t trim_due(void)
{
    if (!sp.on || (sp.unpunched == 0 && sp.hw <= sp.ex.end) || sp.spills || sp.restores ||
        sp.punching || sp.wh || sp.bouncing)
        return 0;
    return sp.last_io + TRIM_IDLE_NS;
}

/* Only a published store has other processes that free what we spilled. */
static uint64_t sweep_due(void)
{
    return sp.on && sp.nrec && sp.rt->cfg.name ? sp.last_sweep + SWEEP_NS : 0;
}

uint64_t shoal__spill_trim_due(void)
{
    uint64_t t = trim_due(), w = sweep_due();
    return !t ? w : !w ? t : t < w ? t : w;
}

/* ---- what this process spilled ----------------------------------------------------------- */

/* The owner's own record of each object it spilled: slot index, generation, extent page (or
 * park id) and length, in process memory. Restores and frees go by it, not by the slot's
 * `next` and `len`, which any attached process can write (a wrong word there could make the
 * owner read another object's extent, or free a live one). And a sweep finds the objects
 * another process freed, whose release cannot reach this I/O thread (the slot moved on):
 * their space is given back here. Open addressing on the slot index, linear probing,
 * deletion by backward shift; at most half full. */
static size_t rec_home(uint32_t idx) { return (idx * 0x9E3779B1u) & (sp.rcap - 1); }

static struct rec *rec_find(uint32_t idx)
{
    if (!sp.rcap)
        return NULL;
    for (size_t i = rec_home(idx);; i = (i + 1) & (sp.rcap - 1)) {
        if (sp.recs[i].idx == idx)
            return &sp.recs[i];
        if (sp.recs[i].idx == 0)
            return NULL;
    }
}

static void rec_del(struct rec *r)
{
    size_t i = (size_t)(r - sp.recs);
    for (size_t j = (i + 1) & (sp.rcap - 1); sp.recs[j].idx; j = (j + 1) & (sp.rcap - 1)) {
        size_t h = rec_home(sp.recs[j].idx);
        /* j's entry may move to the hole at i if its home is not in (i, j] (cyclically). */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            sp.recs[i] = sp.recs[j];
            i = j;
        }
    }
    sp.recs[i].idx = 0;
    sp.nrec--;
}

static void rec_insert(struct rec v)
{
    size_t i = rec_home(v.idx);
    while (sp.recs[i].idx)
        i = (i + 1) & (sp.rcap - 1);
    sp.recs[i] = v;
    sp.nrec++;
}

/* Room for one more record (a spill must not start without it). */
static bool rec_reserve(void)
{
    if ((sp.nrec + 1) * 2 <= sp.rcap)
        return true;
    size_t cap = sp.rcap ? sp.rcap * 2 : 1024;
    struct rec *old = sp.recs, *n = calloc(cap, sizeof *n);
    if (!n)
        return false;
    size_t ocap = sp.rcap;
    sp.recs = n;
    sp.rcap = cap;
    sp.nrec = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].idx)
            rec_insert(old[i]);
    free(old);
    return true;
}

static struct restore *unpark(uint32_t id)
{
    for (struct restore **p = &sp.parked; *p; p = &(*p)->next)
        if ((*p)->park == id) {
            struct restore *r = *p;
            *p = r->next;
            return r;
        }
    return NULL;
}

/* The space a record names goes back: its extent, or its parked bytes. */
static void rec_release(struct rec *r)
{
    if (r->page < PARK_BASE) {
        ext_release((uint64_t)r->page << 12, up4k(r->len));
    } else {
        struct restore *p = unpark(r->page & PARK_MASK);
        if (p) {
            free(p->mem);
            free(p);
        }
    }
    rec_del(r);
}

/* An object was spilled (or its bytes moved): record where they are now. A record for the
 * same slot left over is an object another process freed before a sweep saw it. */
static void rec_set(uint32_t idx, uint64_t gen, uint32_t page, uint64_t len)
{
    shoal__own_spilled(idx, (uint64_t)page << 12);   /* layout/mpseg.h: its bytes are freed */
    struct rec *r = rec_find(idx);
    if (r && r->gen != gen)
        rec_release(r), r = NULL;
    if (r) {
        r->page = page;
        r->len = len;
        return;
    }
    rec_insert((struct rec){ idx, page, gen, len });   /* rec_reserve made room */
}

/* Objects that were freed where their release could not tell us (another process): their
 * slot holds a later generation, or is no longer spilled. */
static void sweep(void)
{
    sp.last_sweep = shoal__io_now();
    for (size_t i = 0; i < sp.rcap;) {
        struct rec *r = &sp.recs[i];
        if (r->idx) {
            uint64_t w = atomic_load_explicit(&sp.rt->slots[r->idx].word, memory_order_relaxed);
            unsigned st = shoal__w_state(w);
            if (shoal__w_gen(w) != r->gen || (st != SHOAL__SPILLED && st != SHOAL__RESTORING)) {
                rec_release(r);   /* the backward shift may bring an entry to i: look again */
                continue;
            }
        }
        i++;
    }
}

struct drop_msg { shoal__iomsg msg; uint32_t idx; uint64_t gen; };

/* The last reference to spilled object (idx, gen) went in this process: give back the
 * space our record of it names, if there is one (a sweep may have done it already, and the
 * slot may hold a later object spilled anew). By the generation, not by the slot's `next`:
 * any holder advising the object cold writes `next` (mark_cold), and one that read the
 * word before the object was spilled still writes it after (two threads sharing a ref
 * both advising it cold), so a SPILLED object's `next` may name no extent at all. */
static void drop(uint32_t idx, uint64_t gen)
{
    struct rec *r = rec_find(idx);
    if (r && r->gen == gen)
        rec_release(r);
}

static void drop_run(shoal__iomsg *m)
{
    struct drop_msg *d = (struct drop_msg *)m;
    if (sp.on)
        drop(d->idx, d->gen);
    free(d);
}

void shoal__spill_drop(shoal__slot *s, uint64_t gen)
{
    uint64_t len = s->len;
    atomic_fetch_sub_explicit(&cnt[C_NOW_OBJ], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cnt[C_NOW_B], len, memory_order_relaxed);
    if (!sp.on)
        return;   /* another process spilled it: its sweep gives the space back */
    uint32_t idx = (uint32_t)(s - shoal__rt->slots);
    if (shoal__io_self()) {
        drop(idx, gen);
        return;
    }
    struct drop_msg *d = malloc(sizeof *d);
    if (!d)
        return;   /* the extent stays used in the file until shutdown: space, not data */
    d->msg.run = drop_run;
    d->idx = idx;
    d->gen = gen;
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

static uint64_t table_end(void)
{
    uint64_t end = atomic_load_explicit(&sp.rt->hdr->bump, memory_order_relaxed);
    return end > sp.rt->nslots ? sp.rt->nslots : end;
}

/* Collect READY|UNREAD objects, keeping the MAX_CAND oldest: when the array fills, the
 * younger half is dropped and only objects older than what was kept are taken after. */
static void scan(void)
{
    shoal__rt_t *rt = sp.rt;
    if (!sp.cand && !(sp.cand = malloc(MAX_CAND * sizeof *sp.cand)))
        return;
    uint64_t end = table_end();
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

/* Aiming at a window. The layout comes from the table: each resident object's [off, off +
 * footprint). Its off and len are read without owning the slot, so a free and reuse racing
 * with the read can give a wrong figure: the word is read again after them and a changed
 * object is skipped, and a wrong layout only costs a useless spill (the allocation is
 * retried and oldest-first takes over), never correctness. */
struct ent { uint64_t lo, hi, gen; uint32_t idx; bool cold; };

static int ent_lower(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool ent_add(struct ent **e, size_t *n, size_t *cap, struct ent v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        struct ent *p = realloc(*e, c * sizeof *p);
        if (!p)
            return false;
        *e = p;
        *cap = c;
    }
    (*e)[(*n)++] = v;
    return true;
}

static size_t layout(struct ent **out)
{
    shoal__rt_t *rt = sp.rt;
    uint64_t span = rt->node_span * rt->nnodes, end = table_end();
    struct ent *e = NULL;
    size_t n = 0, cap = 0;
    for (uint64_t i = 1; i < end; i++) {
        shoal__slot *s = &rt->slots[i];
        /* acquire: pairs with the release that published the object (its off and len). */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        unsigned st = shoal__w_state(w);
        /* PENDING objects get their bytes at completion (not readable here); SPILLED and
         * RESTORING ones have none at off (a restore's new bytes are listed below); the
         * bytes of SPILLING ones are being written out and go when the write ends. */
        if (st != SHOAL__READY && st != SHOAL__CREATED && st != SHOAL__FAILED)
            continue;
        uint64_t off = __atomic_load_n(&s->off, __ATOMIC_RELAXED);
        uint64_t len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
        uint32_t aux = __atomic_load_n(&s->aux, __ATOMIC_RELAXED);
        /* acquire: the reads above happen before this check (a seqlock-style re-read). */
        uint64_t w2 = atomic_load_explicit(&s->word, memory_order_acquire);
        if (shoal__w_gen(w2) != shoal__w_gen(w) || shoal__w_state(w2) != st)
            continue;
        if (len == 0 || off >= span || len > span - off)
            continue;
        /* An object with refs is never spilled (its list must stay where any freer reads
         * it, core/objrefs.h); its allocation runs on past len. */
        len = shoal__slot_alloc_len(rt, off, len, aux);
        bool cold = st == SHOAL__READY && (w2 & SHOAL__W_UNREAD) && !(aux & SHOAL__AUX_REFS) &&
                    SHOAL__AUX_PROC(aux) == rt->proc && shoal__w_refs(w2) < SHOAL__REFS_MAX &&
                    !pinned((uint32_t)i);
        if (!ent_add(&e, &n, &cap, (struct ent){ off, off + footprint(len), shoal__w_gen(w2),
                                                 (uint32_t)i, cold }))
            goto oom;
    }
    for (struct restore *r = sp.restores; r; r = r->next)
        if (r->placed &&
            !ent_add(&e, &n, &cap, (struct ent){ r->off, r->off + footprint(r->len), 0, 0, false }))
            goto oom;
    qsort(e, n, sizeof *e, ent_lower);
    *out = e;
    return n;
oom:
    free(e);
    *out = NULL;
    return 0;
}

/* The windows of one segment (cold objects [a, b) between seg_lo and seg_hi, nothing that
 * must stay in between): a window starts at the segment's start or at a cold object's edge.
 * Two pointers: lo_i is the first object that ends after the window's start, hi_i the first
 * that starts at or after its end; the cost is their footprints' sum. */
static void windows(const struct ent *e, size_t a, size_t b, uint64_t seg_lo, uint64_t seg_hi,
                    uint64_t len, uint64_t *best_cost, uint64_t *best_lo)
{
    size_t lo_i = a, hi_i = a;
    uint64_t cost = 0;
    for (size_t j = 0; j <= 2 * (b - a); j++) {
        uint64_t p = j == 0 ? seg_lo : (j & 1) ? e[a + (j - 1) / 2].lo : e[a + (j - 1) / 2].hi;
        if (p < seg_lo || p > seg_hi || seg_hi - p < len)
            continue;
        while (hi_i < b && e[hi_i].lo < p + len) {
            cost += e[hi_i].hi - e[hi_i].lo;
            hi_i++;
        }
        while (lo_i < hi_i && e[lo_i].hi <= p) {
            cost -= e[lo_i].hi - e[lo_i].lo;
            lo_i++;
        }
        /* Ties go to the higher window: allocators fill the span from its start and keep
         * their own structures low, which the table does not show. */
        if (cost <= *best_cost) {
            *best_cost = cost;
            *best_lo = p;
        }
    }
}

/* Choose the window of `need` bytes inside one node that holds no object which must stay
 * and the fewest bytes of cold ones; its cold objects become the aim list. No aim when the
 * cheapest window is free already (the layout does not explain the failure: the allocator
 * holds what the table does not show) or when every window holds an object that must stay. */
static void aim(uint64_t need)
{
    shoal__rt_t *rt = sp.rt;
    struct ent *e;
    size_t n = layout(&e);
    sp.naim = sp.aimcur = 0;
    if (!e)
        return;
    uint64_t len = footprint(need);
    uint64_t best_cost = UINT64_MAX, best_lo = 0;
    size_t i = 0;
    for (unsigned node = 0; node < rt->nnodes; node++) {
        uint64_t nhi = (uint64_t)(node + 1) * rt->node_span;
        size_t a = i;
        while (i < n && e[i].lo < nhi)
            i++;
        if (a == i)
            continue;
        /* This node's objects are [a, i), by address. Windows stay between the lowest and
         * the highest of them: below and above, the table cannot say what the allocator
         * keeps (its own structures, space it has not carved yet). */
        uint64_t seg_lo = e[a].lo, top = 0;
        for (size_t k = a; k < i; k++)
            top = e[k].hi > top ? e[k].hi : top;
        nhi = top;
        for (;;) {
            size_t b = a;
            while (b < i && e[b].cold)
                b++;
            windows(e, a, b, seg_lo, b < i ? e[b].lo : nhi, len, &best_cost, &best_lo);
            if (b >= i)
                break;
            if (e[b].hi > seg_lo)
                seg_lo = e[b].hi;
            a = b + 1;
        }
    }
    if (best_cost == 0 || best_cost == UINT64_MAX) {
        free(e);
        return;
    }
    size_t want = 0;
    for (size_t k = 0; k < n; k++)
        want += e[k].cold && e[k].hi > best_lo && e[k].lo < best_lo + len;
    struct cand *c = realloc(sp.aim, (want ? want : 1) * sizeof *c);
    if (c) {
        sp.aim = c;
        for (size_t k = 0; k < n; k++)
            if (e[k].cold && e[k].hi > best_lo && e[k].lo < best_lo + len)
                sp.aim[sp.naim++] = (struct cand){ e[k].idx, 0, e[k].gen };
    }
    free(e);
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

/* A spill write of slot idx is in flight (at most MAX_SPILLS to look through). */
static bool writing(uint32_t idx)
{
    for (const struct spill_op *op = sp.writes; op; op = op->next)
        if (op->idx == idx)
            return true;
    return false;
}

/* Claim candidate c if it is still a cold resident object of ours and start writing it.
 * 1 started, 0 skipped, -1 out of memory.
 * Invariant: at most one spill write per slot is in flight, so a slot's SPILLING state is
 * always the claim of the one write in sp.writes for it, and that write's end alone turns
 * it SPILLED (spill_written). A get can take an object back while it is written and
 * shoal_advise_cold make it cold again at once (advise_run counts the write's claim): it is
 * skipped, and that write's end spills it. Claimed again meanwhile, the first write's end
 * took the second claim's SPILLING for its own, and each end wrote `next`: the record and
 * `next` named different extents (the release, which went by `next` then, gave back
 * neither the one the record held), and the first end freed the object's store bytes while
 * the second write still read them (with a restore between the two ends, freed them a
 * second time). */
static int spill_one(struct cand c)
{
    shoal__rt_t *rt = sp.rt;
    if (pinned(c.idx) || writing(c.idx))
        return 0;
    if (!rec_reserve())
        return -1;
    shoal__slot *s = &rt->slots[c.idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire), nw;
    bool claimed = false;
    /* Published: the claim's reference, which the release below drops from our ledger, is
     * counted there before it is taken (layout/mpseg.h, crash windows): else our ledger
     * reads low, and the owner, capping a dead client's ledger that claims more than an
     * object has at what it holds itself (mproc/publish.c, release_one), drops too much. */
    if (shoal__holds)
        shoal__holds_add(c.idx, c.gen, 1);
    while (shoal__w_gen(w) == c.gen && shoal__w_state(w) == SHOAL__READY &&
           (w & SHOAL__W_UNREAD) && shoal__w_refs(w) < SHOAL__REFS_MAX) {
        /* Claim: READY|UNREAD -> SPILLING plus one reference, so the object outlives the
         * write. acquire: pairs with the release that sealed it (off, len, bytes) and
         * with shoal_advise_cold's release (the caller's last reads happen before).
         * release: the ledger's +1 above is seen by an owner that sees this reference
         * (pairs with the acquire load of the word in mproc/publish.c, release_one). */
        nw = ((w & ~(SHOAL__W_STATE_MASK | SHOAL__W_UNREAD)) |
              ((uint64_t)SHOAL__SPILLING << SHOAL__W_STATE_SHIFT)) + 1;
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            claimed = true;
            break;
        }
    }
    if (!claimed) {
        if (shoal__holds)
            shoal__holds_add(c.idx, c.gen, -1);
        return 0;
    }
    shoal_ref ref = { shoal__id_make(c.idx, c.gen) };
    uint64_t ext, off = s->off, len = s->len;
    bool ours = SHOAL__AUX_PROC(s->aux) == rt->proc;
    if (shoal__own)   /* published: where our records say, not the shared slot */
        ours = shoal__own_peek(c.idx, &off, &len);
    bool refs = s->aux & SHOAL__AUX_REFS;
    /* (A result held in its slot, layout/table.h, has no store bytes either.) */
    if (len == 0 || shoal__len_inl(len) || !ours || refs || !ext_get(up4k(len), &ext)) {
        /* No store bytes, never worth a write; another process's bytes, which only its
         * allocator may free, or an object with refs (core/objrefs.h): leave it resident
         * for good. No place in a full disk: leave it cold, a smaller one may fit. */
        unclaim(s, len && !shoal__len_inl(len) && ours && !refs);
        shoal__release(ref);
        return 0;
    }
    struct spill_op *op = malloc(sizeof *op);
    if (!op) {
        ext_release(ext, up4k(len));
        unclaim(s, true);
        shoal__release(ref);
        return -1;
    }
    op->ref = ref;
    op->idx = c.idx;
    op->off = off;
    op->len = len;
    op->ext = ext;
    op->t0 = shoal__io_now();
    char *buf = rt->base + op->off;
    bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                  shoal__xfer_can_direct(buf, op->len, shoal__usable_size(op->len), op->ext);
    op->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = true,
                           .direct = direct, .buf = buf, .len = op->len, .foff = op->ext,
                           .finish = spill_written, .owner = op,
                           .chunk = SHOAL__IO_WCHUNK, .qd = SHOAL__IO_WQD };
    sp.writing += footprint(op->len);
    sp.spills++;
    op->next = sp.writes;
    sp.writes = op;
    sp.last_io = op->t0;
    shoal__xfer_start(&op->x);
    return 1;
}

/* Start one spill write: the aimed window's objects first, then the oldest cold ones.
 * false when nothing (more) can be spilled. */
static bool start_one(void)
{
    while (sp.aimcur < sp.naim) {
        int rc = spill_one(sp.aim[sp.aimcur++]);
        sp.aim_spilled += rc > 0;
        if (rc)
            return rc > 0;
    }
    /* One scan per call at most: candidates that are skipped (no extent fits them while the
     * disk is full) stay cold, and the next scan would find them again. */
    bool scanned = false;
    for (;;) {
        if (sp.cur >= sp.ncand) {
            if (sp.dry || scanned) {
                sp.dry = true;
                return false;
            }
            scan();
            scanned = true;
        }
        if (sp.cur >= sp.ncand)
            continue;
        int rc = spill_one(sp.cand[sp.cur++]);
        if (rc)
            return rc > 0;
    }
}

static void spill_written(shoal__xfer *x)
{
    struct spill_op *op = x->owner;
    shoal__rt_t *rt = sp.rt;
    shoal__slot *s = &rt->slots[op->idx];
    sp.writing -= footprint(op->len);
    sp.spills--;
    for (struct spill_op **p = &sp.writes; *p; p = &(*p)->next)
        if (*p == op) {
            *p = op->next;
            break;
        }
    sp.last_io = shoal__io_now();
    sp.dry = false;
    if (x->err) {
        if (!sp.fail_err)
            sp.fail_err = x->err;
        if (disk_full_err(x->err))
            sp.disk_full = true;
        count(C_FAILURES, 1);
        unclaim(s, true);
        ext_release(op->ext, up4k(op->len));
    } else {
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
        bool spilled = false;
        /* SPILLING: our claim's (spill_one). READY|UNREAD: a get took it back while it was
         * written and its holder advised it cold again; the file holds its bytes all the
         * same (a sealed object never changes), and nobody reads them in the store any
         * more, as when spill_one claims it: it is spilled now. Dropping this write instead
         * (and claiming it again later) let a reader that takes back every write as it
         * runs and advises it cold again starve the restores waiting for room for ever:
         * no spill ever ended SPILLED. The claim's reference keeps the generation, and no
         * other write of the slot runs (spill_one's invariant). */
        while (shoal__w_state(w) == SHOAL__SPILLING ||
               (shoal__w_state(w) == SHOAL__READY && (w & SHOAL__W_UNREAD) &&
                !pinned(op->idx))) {
            /* `next` held the seal era; from now until the object is resident again it
             * holds the extent (in pages: below PARK_BASE, ext_get saw to it): while SPILLED
             * it names the extent our record names. Written only when we turn it SPILLED:
             * a get took it back otherwise. */
            atomic_store_explicit(&s->next, (uint32_t)(op->ext >> 12), memory_order_relaxed);
            nw = (w & ~(SHOAL__W_STATE_MASK | SHOAL__W_UNREAD)) |
                 ((uint64_t)SHOAL__SPILLED << SHOAL__W_STATE_SHIFT);
            /* release: publishes `next` to whoever frees or restores the object. acquire:
             * pairs with shoal_advise_cold's release (the holder's last reads of the bytes
             * happen before they are freed below), as spill_one's claim. */
            if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                      memory_order_relaxed)) {
                spilled = true;
                break;
            }
        }
        if (spilled) {
            rec_set(op->idx, shoal__id_gen(op->ref.id), (uint32_t)(op->ext >> 12), op->len);
            /* The store's count gets the whole footprint back (shoal__io_free keeps no
             * credit on this thread): else a put answered by sp.freed found less room than
             * that (the first spill of a store gave back 768 KiB of 1 MiB), failed, and its
             * repeated request, coming once writes in flight had made room, read as 'not in
             * one piece': the pump cleared a window (spilling the youngest object) or
             * spilled a request and slack more, past the reserve. */
            shoal__io_free(op->off, op->len);
            sp.freed += footprint(op->len);
            count(C_SPILLED_OBJ, 1);
            count(C_SPILLED_B, op->len);
            count(C_SPILL_NS, shoal__io_now() - op->t0);
            count(C_NOW_OBJ, 1);
            count(C_NOW_B, op->len);
        } else {
            ext_release(op->ext, up4k(op->len));   /* a get took it back while it was written */
        }
    }
    shoal__release(op->ref);   /* the claim's reference; the last one frees a spilled object */
    free(op);
}

/* ---- waiters ----------------------------------------------------------------------------------- */

void shoal__spill_want(shoal__iowait *w)
{
    w->next = NULL;
    if (sp.wt)
        sp.wt->next = w;
    else
        sp.wh = w;
    sp.wt = w;
    sp.want += footprint(w->need);
    sp.dry = false;
    sp.ahead = true;
}

/* The same at the head of the queue: a swap's restore, so that what it frees serves it. */
static void want_first(shoal__iowait *w)
{
    w->next = sp.wh;
    sp.wh = w;
    if (!sp.wt)
        sp.wt = w;
    sp.want += footprint(w->need);
    sp.dry = false;
}

static void unlink_waiter(shoal__iowait *w, shoal__iowait *prev)
{
    if (prev)
        prev->next = w->next;
    else
        sp.wh = w->next;
    if (sp.wt == w)
        sp.wt = prev;
    sp.want -= footprint(w->need);
    if (sp.aimed == w)
        sp.aimed = NULL;
}

static void answer(shoal__iowait *w, int rc, const char *why)
{
    w->rc = rc;
    snprintf(w->err, sizeof w->err, "%s", why ? why : "");
    shoal__io_defer(&w->msg);
}

static struct restore *restore_of(const shoal__iowait *w)
{
    for (struct restore *r = sp.restores; r; r = r->next)
        if (&r->aw == w)
            return r;
    return NULL;
}

/* Fail the waiters, but for those keep() spares. */
static void fail_waiters(int rc, const char *why, bool (*keep)(const shoal__iowait *w))
{
    shoal__iowait *prev = NULL;
    for (shoal__iowait *w = sp.wh, *next; w; w = next) {
        next = w->next;
        if (keep && keep(w)) {
            prev = w;
            continue;
        }
        unlink_waiter(w, prev);
        answer(w, rc, why);
    }
}

bool shoal__spill_cancel_waiters(void)
{
    if (!sp.wh)
        return false;
    fail_waiters(SHOAL_ECANCELED, "shoal is shutting down", NULL);
    return true;
}

/* A restore whose bytes are still in the file: a swap can free its extent. */
static bool swappable(const shoal__iowait *w)
{
    const struct restore *r = restore_of(w);
    return r && !r->mem && r->ext != NO_EXT;
}

static void bounce_start(struct restore *r);

/* Why the waiters cannot be served, with figures from one snapshot. */
static void why_no_room(char *why, size_t n, uint64_t need)
{
    uint64_t used, cap;
    usage(&used, &cap);
    if (sp.fail_err && disk_full_err(sp.fail_err))
        snprintf(why, n, "%s (%s, errno %d); no object was lost: free space in spill_dir, or "
                 "release objects (spill file %s%s)",
                 sp.fail_err == -EFBIG ? "the spill file cannot grow" : "the spill disk is full",
                 strerror(-sp.fail_err), -sp.fail_err, PATH_DOTS(), path_shown());
    else if (sp.fail_err)
        snprintf(why, n, "writing the spill file failed (%s, errno %d); no object was lost "
                 "(spill file %s%s)", strerror(-sp.fail_err), -sp.fail_err, PATH_DOTS(),
                 path_shown());
    else if (room_for(need))
        snprintf(why, n, "%llu of %llu bytes are free, but not %llu in one piece, and nothing "
                 "more can be spilled to join them (the objects between were read and not "
                 "advised cold, are pending, or are shared): release objects, or call "
                 "shoal_advise_cold on those no longer read",
                 (unsigned long long)(cap - used), (unsigned long long)cap,
                 (unsigned long long)footprint(need));
    else
        snprintf(why, n, "%llu of %llu bytes are in use and nothing is left to spill (every "
                 "resident object was read and not advised cold, is pending, or is shared): "
                 "release objects, or call shoal_advise_cold on those no longer read",
                 (unsigned long long)used, (unsigned long long)cap);
}

/* Spill ahead of demand: after requests had to wait, keep the reserve free, so that a
 * stream of puts finds room without waiting for a write each. */
static void spill_ahead(void)
{
    if (!sp.ahead)
        return;
    uint64_t target = reserve();
    while (sp.spills < MAX_SPILLS && sp.writing < WRITE_CAP &&
           free_bytes() + sp.writing < target)
        if (!start_one()) {
            sp.ahead = false;
            return;
        }
    if (sp.spills == 0)
        sp.ahead = false;
}

void shoal__spill_pump(void)
{
    /* Serve in order: a first request is served when there is room now (someone freed
     * memory); a repeated one once spills freed what it needs, or its window was cleared. */
    while (sp.wh && ((sp.wh->tries == 0 && room_for(sp.wh->need)) || sp.freed >= footprint(sp.wh->need) ||
                     (sp.aimed == sp.wh && sp.aim_spilled && sp.aimcur >= sp.naim &&
                      sp.spills == 0))) {
        shoal__iowait *w = sp.wh;
        unlink_waiter(w, NULL);
        uint64_t took = footprint(w->need);
        sp.freed = sp.freed > took ? sp.freed - took : 0;
        answer(w, 0, NULL);
    }
    if (!sp.wh) {
        sp.freed = 0;
        sp.naim = sp.aimcur = 0;
        if (!sp.bouncing) {
            /* A write failed since the requests were served: no spilling ahead (on a full
             * disk it would retry failing writes in a loop, and once space came back spill
             * objects that no request needs). The flags must be read before they clear. */
            if (sp.fail_err || sp.disk_full)
                sp.ahead = false;
            sp.disk_full = false;   /* the next request tries to grow the file again */
            sp.fail_err = 0;
            spill_ahead();
        }
        uint64_t now = shoal__io_now(), due = sweep_due();
        if (due && now >= due)
            sweep();
        if (!sp.spills && (due = trim_due()) && now >= due)
            trim();
        return;
    }
    if (sp.bouncing)
        return;   /* a swap reads its object out of the file: what its extent frees is its */
    shoal__iowait *head = sp.wh;
    if (head->tries && sp.aimed != head && room_for(head->need)) {
        /* Room was made (or was there) and the allocation failed all the same: the bytes
         * are free but not in one piece. Clear a window for it. */
        sp.aimed = head;
        sp.aim_spilled = 0;
        aim(head->need);
    }
    /* Spill: the window's objects alone while one is aimed at, else oldest first until the
     * requests and some slack are covered (also when none of the window could be taken). */
    bool aiming = sp.aimed == head && sp.naim;
    while (!sp.fail_err && sp.spills < MAX_SPILLS && sp.writing < WRITE_CAP &&
           (aiming ? sp.aimcur < sp.naim : sp.writing + sp.freed < sp.want + slack()))
        if (!start_one())
            break;
    if (aiming && !sp.spills && !sp.aim_spilled) {
        sp.naim = sp.aimcur = 0;
        while (!sp.fail_err && sp.spills < MAX_SPILLS && sp.writing < WRITE_CAP &&
               sp.writing + sp.freed < sp.want + slack())
            if (!start_one())
                break;
    }
    if (sp.spills)
        return;
    if (sp.aimed == head && sp.aim_spilled && !sp.fail_err) {
        unlink_waiter(head, NULL);   /* its window is clear (the spills ended this turn) */
        answer(head, 0, NULL);
        return;
    }
    /* Nothing in flight and nothing more to start: the waiters cannot be served. A full
     * disk still lets a restore swap with colder objects; the others fail. Spilling ahead
     * for them ends too: it would only retry what just failed. */
    sp.ahead = false;
    char why[SHOAL__IO_MSG];
    why_no_room(why, sizeof why, head->need);
    if (sp.fail_err && disk_full_err(sp.fail_err)) {
        sp.disk_full = true;
        fail_waiters(SHOAL_ENOMEM, why, swappable);
        if (sp.wh && !sp.swapper) {
            struct restore *r = restore_of(sp.wh);
            unlink_waiter(sp.wh, NULL);
            sp.fail_err = 0;
            sp.freed = 0;
            bounce_start(r);
            return;
        }
    }
    sp.fail_err = 0;
    sp.freed = 0;
    fail_waiters(SHOAL_ENOMEM, why, NULL);
}

/* ---- restoring ---------------------------------------------------------------------------------- */

/* Move s out of RESTORING to state (READY, or SPILLED again). The CAS clears WAITERS and
 * wakes whoever set it: a get in an attached process, or shoal_wait, sleeps on a RESTORING
 * object (core/wait.c). acq_rel: the release publishes off and the bytes (READY), or `next`
 * (SPILLED), to the acquire loads of getters and of whoever frees or restores it next; the
 * acquire is what shoal__wake_slot needs to see a waiter's count made before its WAITERS
 * CAS (core/wait.c). */
static void leave_restoring(shoal__slot *s, unsigned state)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    do {
        nw = (w & ~(SHOAL__W_STATE_MASK | SHOAL__W_WAITERS)) |
             ((uint64_t)state << SHOAL__W_STATE_SHIFT);
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (w & SHOAL__W_WAITERS)
        shoal__wake_slot(sp.rt, (uint64_t)(s - sp.rt->slots));
}

static void unlist(struct restore *r)
{
    for (struct restore **p = &sp.restores; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            return;
        }
}

static void answer_waiters(struct restore *r, int rc, const char *why)
{
    while (r->waiters) {
        shoal__iowait *w = r->waiters;
        r->waiters = w->next;
        answer(w, rc, why);
    }
}

static void restore_finish(struct restore *r, int rc, const char *why)
{
    sp.last_io = shoal__io_now();
    unlist(r);
    answer_waiters(r, rc, why);
    shoal__release(r->ref);   /* the claim's reference */
    free(r->mem);
    free(r);
}

/* The bytes only private memory holds, and they could not go back to the file: keep them
 * there under a park id until the next get or the release (drop). */
static void park(struct restore *r)
{
    shoal__slot *s = &sp.rt->slots[r->idx];
    r->park = sp.park_seq++ & PARK_MASK;
    atomic_store_explicit(&s->next, PARK_BASE + r->park, memory_order_relaxed);
    rec_set(r->idx, shoal__id_gen(r->ref.id), PARK_BASE + r->park, r->len);
    sp.last_io = shoal__io_now();
    unlist(r);
    r->next = sp.parked;
    sp.parked = r;
    leave_restoring(s, SHOAL__SPILLED);
    answer_waiters(r, 0, NULL);   /* those who came meanwhile look again */
    shoal__release(r->ref);
}

static void writeback_done(shoal__xfer *x)
{
    struct restore *r = x->owner;
    sp.writing -= footprint(r->len);
    if (x->err) {
        if (disk_full_err(x->err))
            sp.disk_full = true;
        ext_release(r->ext, up4k(r->len));
        r->ext = NO_EXT;
        park(r);
        return;
    }
    shoal__slot *s = &sp.rt->slots[r->idx];
    atomic_store_explicit(&s->next, (uint32_t)(r->ext >> 12), memory_order_relaxed);
    rec_set(r->idx, shoal__id_gen(r->ref.id), (uint32_t)(r->ext >> 12), r->len);
    leave_restoring(s, SHOAL__SPILLED);
    restore_finish(r, 0, NULL);   /* those who came meanwhile look again */
}

/* A restore that failed while its bytes are in private memory: answer its waiters now and
 * write the bytes back to the file (or park them). */
static void writeback(struct restore *r, int rc, const char *why)
{
    answer_waiters(r, rc, why);
    uint64_t ext;
    if (!ext_get(up4k(r->len), &ext)) {
        if (sp.swapper == r)
            swap_over();
        park(r);
        return;
    }
    r->ext = ext;
    if (sp.swapper == r)
        swap_over();   /* taken from the swap's extent first, when no victim went there */
    bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                  shoal__xfer_can_direct(r->mem, r->len, up4k(r->len), ext);
    r->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = true,
                          .direct = direct, .buf = r->mem, .len = r->len, .foff = ext,
                          .finish = writeback_done, .owner = r,
                          .chunk = SHOAL__IO_WCHUNK, .qd = SHOAL__IO_WQD };
    sp.writing += footprint(r->len);
    sp.last_io = shoal__io_now();
    shoal__xfer_start(&r->x);
}

static void restore_fail(struct restore *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void restore_fail(struct restore *r, int rc, const char *fmt, ...)
{
    char why[SHOAL__IO_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->mem && !r->bouncing) {
        writeback(r, rc, why);
        return;
    }
    /* back to SPILLED: the data is still on disk, a later get tries again */
    leave_restoring(&sp.rt->slots[r->idx], SHOAL__SPILLED);
    restore_finish(r, rc, why);
}

/* The object's bytes are at r->off now (read from the file or copied from memory). */
static void restore_done(struct restore *r)
{
    shoal__rt_t *rt = sp.rt;
    shoal__slot *s = &rt->slots[r->idx];
    /* The objects counter follows the bytes to their new node. */
    unsigned from = shoal__off_node(rt, s->off), to = shoal__off_node(rt, r->off);
    if (from != to && from < rt->nnodes) {
        shoal__count_objs(rt, rt->proc, from, -1);
        shoal__count_objs(rt, rt->proc, to, 1);
    }
    s->off = r->off;   /* RESTORING is ours: nobody else reads or writes off now */
    shoal__own_restored(r->idx, r->off);
    /* Counted before the object is READY: a getter woken by leave_restoring may read the
     * stats at once, and must find the restore counted and the object no longer spilled. */
    count(C_RESTORED_OBJ, 1);
    count(C_RESTORED_B, r->len);
    count(C_RESTORE_NS, shoal__io_now() - r->t0);
    atomic_fetch_sub_explicit(&cnt[C_NOW_OBJ], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cnt[C_NOW_B], r->len, memory_order_relaxed);
    leave_restoring(s, SHOAL__READY);
    if (r->ext != NO_EXT)
        ext_release(r->ext, up4k(r->len));
    struct rec *rc = rec_find(r->idx);
    if (rc)
        rec_del(rc);
    if (sp.swapper == r)
        swap_over();
    restore_finish(r, 0, NULL);
}

/* Reading r's bytes from the spill file failed (x->err): the object stays spilled. */
static void read_failed(struct restore *r, const shoal__xfer *x)
{
    int e = x->err == SHOAL__XFER_SHORT ? EIO : -x->err;
    restore_fail(r, SHOAL_EIO, "reading object 0x%016llx from the spill file failed: %s "
                 "(errno %d) (spill file %s%s)", (unsigned long long)r->ref.id, strerror(e), e,
                 PATH_DOTS(), path_shown());
}

static void restore_read(shoal__xfer *x)
{
    struct restore *r = x->owner;
    if (x->err) {
        shoal__io_free(r->off, r->len);
        r->placed = false;
        read_failed(r, x);
        return;
    }
    restore_done(r);
}

static void restore_start(shoal__iomsg *m);
/* A timed get's phases (struct touch_req, below). */
enum { PH_WAIT = 0, PH_ANSWERED = 1, PH_READING = 2, PH_ROOM = 3, PH_GONE = 4, PH_DOWN = 5 };
static void touch_phase(shoal__iowait *w, uint32_t to);
static void touch_placed(shoal__iowait *w);
static void restore_parked(struct restore *r);

#define NO_ROOM_FMT "cannot restore object 0x%016llx (%llu bytes) into the store: %s; it " \
                    "stays spilled, get it again once there is room"

static void restore_alloc_retry(shoal__iomsg *m)
{
    struct restore *r = (struct restore *)((char *)m - offsetof(struct restore, aw));
    if (r->aw.rc < 0)
        restore_fail(r, r->aw.rc, NO_ROOM_FMT, (unsigned long long)r->ref.id,
                     (unsigned long long)r->len, r->aw.err);
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
    if (rc == 1) {
        restore_parked(r);
        return;
    }
    if (rc < 0) {
        restore_fail(r, rc, NO_ROOM_FMT, (unsigned long long)r->ref.id,
                     (unsigned long long)r->len, shoal_last_error());
        return;
    }
    r->placed = true;
    for (shoal__iowait *w = r->waiters; w; w = w->next)
        touch_placed(w);   /* a timed get waits for the read from here, not for room */
    char *buf = sp.rt->base + r->off;
    if (r->mem) {   /* the bytes are here already (a swap, or parked) */
        memcpy(buf, r->mem, r->len);
        free(r->mem);
        r->mem = NULL;
        restore_done(r);
        return;
    }
    bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                  shoal__xfer_can_direct(buf, r->len, shoal__usable_size(r->len), r->ext);
    r->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = false,
                          .direct = direct, .buf = buf, .len = r->len, .foff = r->ext,
                          .finish = restore_read, .owner = r };
    shoal__xfer_start(&r->x);
}

/* A swap's first step done: the bytes are in memory, the extent can take colder objects. */
static void bounce_done(shoal__xfer *x)
{
    struct restore *r = x->owner;
    r->bouncing = false;
    sp.bouncing--;
    sp.last_io = shoal__io_now();
    if (x->err) {
        free(r->mem);
        r->mem = NULL;
        read_failed(r, x);
        return;
    }
    /* The extent is the swap's now: its victims are written there (ext_get). */
    sp.swap_next = r->ext;
    sp.swap_end = r->ext + up4k(r->len);
    sp.swapper = r;
    r->ext = NO_EXT;
    r->aw.tries++;
    r->aw.msg.run = restore_alloc_retry;
    want_first(&r->aw);
    restore_parked(r);
}

static void bounce_start(struct restore *r)
{
    r->mem = aligned_alloc(SHOAL__IO_ALIGN, up4k(r->len));
    if (!r->mem) {
        restore_fail(r, SHOAL_ENOMEM, NO_ROOM_FMT, (unsigned long long)r->ref.id,
                     (unsigned long long)r->len, "the spill disk is full and there is no "
                     "private memory to swap it through");
        return;
    }
    r->bouncing = true;
    sp.bouncing++;
    sp.last_io = shoal__io_now();
    bool direct = sp.fd_direct >= 0 && shoal__io_direct() &&
                  shoal__xfer_can_direct(r->mem, r->len, up4k(r->len), r->ext);
    r->x = (shoal__xfer){ .fd = direct ? sp.fd_direct : sp.fd, .write = false,
                          .direct = direct, .buf = r->mem, .len = r->len, .foff = r->ext,
                          .finish = bounce_done, .owner = r };
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
             * write's completion sees READY and drops the copy (or, advised cold again by
             * then, spills it: spill_written). */
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
                    /* A timed get that joins: the restore reads (placed) or waits for
                     * room, where its limit applies (touch_wait). */
                    touch_phase(w, r->placed ? PH_READING : PH_ROOM);
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
            /* Claim with one more reference, so the object outlives the read (in our
             * ledger first, as spill_one's). acquire: pairs with the release that made it
             * SPILLED (its extent in `next`). release: the ledger's +1 is seen by an owner
             * that sees this reference (mproc/publish.c, release_one's acquire load). */
            nv = ((v & ~SHOAL__W_STATE_MASK) |
                  ((uint64_t)SHOAL__RESTORING << SHOAL__W_STATE_SHIFT)) + 1;
            if (shoal__holds)
                shoal__holds_add(idx, shoal__id_gen(ref.id), 1);
            if (!atomic_compare_exchange_weak_explicit(&s->word, &v, nv, memory_order_acq_rel,
                                                       memory_order_acquire)) {
                if (shoal__holds)
                    shoal__holds_add(idx, shoal__id_gen(ref.id), -1);
                free(r);
                continue;
            }
            r->ref = ref;
            r->idx = idx;
            r->node = node;
            r->ext = NO_EXT;
            r->t0 = shoal__io_now();
            r->waiters = w;
            w->next = NULL;
            r->next = sp.restores;
            sp.restores = r;
            /* Where its bytes are comes from our own record, not from the slot. */
            struct rec *rc = rec_find(idx);
            struct restore *p = NULL;
            if (rc && rc->gen == shoal__w_gen(v) && rc->page >= PARK_BASE)
                p = unpark(rc->page & PARK_MASK);
            if (!rc || rc->gen != shoal__w_gen(v) || (rc->page >= PARK_BASE && !p)) {
                restore_fail(r, SHOAL_EIO, "object 0x%016llx is marked spilled but this "
                             "process did not spill it (the object table was written by "
                             "another process?)", (unsigned long long)ref.id);
                return 1;
            }
            r->len = rc->len;
            if (p) {   /* its bytes are parked in memory */
                r->mem = p->mem;
                free(p);
            } else {
                r->ext = (uint64_t)rc->page << 12;
            }
            if (shoal__spill_restore_hook)
                shoal__spill_restore_hook(ref);
            restore_start(&r->aw.msg);
            return 1;
        }
        default:
            return 0;
        }
    }
}

/* ---- requests from other threads --------------------------------------------------------------- */

/* A get's request to bring an object back. A get without a time limit waits for the answer
 * on its stack. A timed get's request lives on the heap, held by the caller and by the I/O
 * thread (refs): the caller may give up before the answer comes (its limit covers the wait
 * for room, not the object's own disk read), and the read-back goes on without it. Its
 * `done` word then also says where the restore is (PH_*): not looked at yet (PH_WAIT: one
 * turn of the I/O thread, waited for), waiting for room (PH_ROOM: the limit applies), or
 * reading (PH_READING: waited for). A shutdown moves any of the three to PH_DOWN (below):
 * the caller gives up at once, as every blocked get does then. An untimed get in a store
 * that spills waits the same way (with no limit), so that a shutdown ends it too. */
struct touch_req {
    shoal__iosync sync;
    shoal__iowait w;
    shoal_ref ref;
    int node;
    bool timed;
    _Atomic uint32_t refs;   /* timed: the caller's and the I/O thread's */
    struct touch_req *gprev, *gnext;   /* on `getting` while its caller waits */
};

/* The requests whose callers wait (touch_wait), for the shutdown to end them: it sets
 * rt->down, then takes the lock (shoal__spill_gets_cancel); a caller links its request
 * under the lock, then reads rt->down. Either the shutdown finds the request, or the
 * caller's lock follows the shutdown's unlock and it sees down. A restore from disk is no
 * fast path: a lock here costs nothing that matters. */
static pthread_mutex_t getting_mu = PTHREAD_MUTEX_INITIALIZER;
static struct touch_req *getting;

static struct touch_req *touch_of(shoal__iowait *w)
{
    return (struct touch_req *)((char *)w - offsetof(struct touch_req, w));
}

static void touch_put(struct touch_req *t)
{
    /* acq_rel: the side that frees sees every access of the other side before its drop. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

/* The restore found room and reads now: a timed caller waits for that read (a disk read,
 * shoal.h) without its limit. relaxed: the word only tells the caller how to wait; the
 * answer's release store publishes rc and err. */
static void touch_done(shoal__iomsg *m);

static void touch_phase(shoal__iowait *w, uint32_t to)
{
    if (w->msg.run != touch_done)
        return;   /* another kind of waiter (a file export's, io/file.c) */
    struct touch_req *t = touch_of(w);
    if (!t->timed)
        return;
    uint32_t phase = atomic_load_explicit(&t->sync.done, memory_order_relaxed);
    while ((phase == PH_WAIT || phase == PH_ROOM) && phase != to)
        if (atomic_compare_exchange_weak_explicit(&t->sync.done, &phase, to,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            shoal__futex_wake(&t->sync.done, 1, false);
            return;
        }
}

static void touch_placed(shoal__iowait *w) { touch_phase(w, PH_READING); }

/* The restore waits for room: a timed caller may give up from here (at its limit). */
static void restore_parked(struct restore *r)
{
    for (shoal__iowait *w = r->waiters; w; w = w->next)
        touch_phase(w, PH_ROOM);
}

static void touch_answer(struct touch_req *t, int rc, const char *err)
{
    bool timed = t->timed;   /* read first: an untimed caller's frame goes with the answer */
    shoal__iosync_answer(&t->sync, rc, rc < 0 ? "%s" : NULL, err);
    if (timed)
        touch_put(t);   /* a caller that gave up left it to us */
}

static void touch_done(shoal__iomsg *m)
{
    struct touch_req *t = (struct touch_req *)((char *)m - offsetof(struct touch_req, w));
    touch_answer(t, t->w.rc, t->w.err);
}

static void touch_run(shoal__iomsg *m)
{
    struct touch_req *t = (struct touch_req *)m;
    t->w.msg.run = touch_done;
    int rc = shoal__spill_resident(t->ref, t->node, &t->w);
    if (rc != 1)
        touch_answer(t, rc, shoal_last_error());
}

/* A worker runs other tasks while its restore runs, but not when it is inside such a wait
 * already: each task it runs there may restore an object in turn, which stays resident
 * (read) until the waits below it on its stack return, and a stack of them filled the store
 * with objects nobody could use yet (every further restore failed). */
static __thread unsigned restoring;

static void getting_add(struct touch_req *t)
{
    pthread_mutex_lock(&getting_mu);
    t->gprev = NULL;
    t->gnext = getting;
    if (getting)
        getting->gprev = t;
    getting = t;
    pthread_mutex_unlock(&getting_mu);
}

static void getting_remove(struct touch_req *t)
{
    pthread_mutex_lock(&getting_mu);
    if (t->gprev)
        t->gprev->gnext = t->gnext;
    else
        getting = t->gnext;
    if (t->gnext)
        t->gnext->gprev = t->gprev;
    pthread_mutex_unlock(&getting_mu);
}

void shoal__spill_gets_cancel(void)
{
    pthread_mutex_lock(&getting_mu);
    for (struct touch_req *t = getting; t; t = t->gnext) {
        /* relaxed: the word only tells the caller how to wait (touch_phase); rt->down, set
         * before, holds the code and message it answers (read with acquire). */
        uint32_t phase = atomic_load_explicit(&t->sync.done, memory_order_relaxed);
        while (phase == PH_WAIT || phase == PH_ROOM || phase == PH_READING) {
            if (atomic_compare_exchange_weak_explicit(&t->sync.done, &phase, PH_DOWN,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                shoal__futex_wake(&t->sync.done, 1, false);
                break;
            }
        }
    }
    pthread_mutex_unlock(&getting_mu);
}

/* A get of a spilled object in a store that spills: post its restore and wait for the
 * answer; with a limit (timeout_ns >= 0), give up at the limit while the restore still
 * waits for room (spills to make it, or other threads to free it); the restore goes on, and
 * a later get finds the object RESTORING or READY. A shutdown ends the wait at once. */
static int touch_wait(shoal_ref ref, int64_t timeout_ns)
{
    if (shoal__io_self())
        return shoal__err(SHOAL_EINVAL, "internal: the I/O thread cannot wait for itself");
    struct touch_req *t = calloc(1, sizeof *t);
    if (!t)
        return shoal__err(SHOAL_ENOMEM, "out of memory restoring a spilled object");
    t->sync.msg.run = touch_run;
    t->ref = ref;
    t->node = shoal__tls.node;
    t->timed = true;   /* the request outlives a caller that gives up */
    atomic_init(&t->sync.done, PH_WAIT);
    atomic_init(&t->refs, 2);
    getting_add(t);
    /* seq_cst: after the lock above; see `getting` for the pair with the shutdown. */
    if (unlikely(atomic_load_explicit(&shoal__rt->down, memory_order_seq_cst))) {
        getting_remove(t);
        free(t);
        return shoal__down_err(shoal__rt);
    }
    int rc = shoal__io_post(&t->sync.msg);
    if (rc) {
        getting_remove(t);
        free(t);
        return rc;
    }
    bool limited = timeout_ns >= 0;
    uint64_t deadline = limited ? shoal__now_ns() + (uint64_t)timeout_ns : 0;
    uint32_t phase;
    bool worker = shoal__tls.worker >= 0, help = worker && restoring == 0;
    /* A worker naps 1 ms at most so that it comes back to run new tasks (iosync_wait). */
    struct timespec nap = { 0, 1000000 };
    restoring++;
    /* acquire: pairs with the release store in shoal__iosync_answer (rc and err). */
    while ((phase = atomic_load_explicit(&t->sync.done, memory_order_acquire)) != PH_ANSWERED) {
        if (phase == PH_DOWN) {   /* a shutdown: the restore may go on, without us */
            getting_remove(t);
            touch_put(t);
            restoring--;
            return shoal__down_err(shoal__rt);
        }
        if (help && shoal__help_hook && shoal__help_hook())
            continue;   /* a task ran: look at the phase again */
        if (phase != PH_ROOM || !limited) {
            /* not looked at yet (a turn of the I/O thread), reading, or no limit */
            shoal__futex_wait(&t->sync.done, phase, worker ? &nap : NULL, false);
            continue;
        }
        uint64_t now = shoal__now_ns();
        if (now >= deadline) {
            /* Give up unless the restore moved on meanwhile (answered, or reading). */
            if (atomic_compare_exchange_strong_explicit(&t->sync.done, &phase, PH_GONE,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed)) {
                getting_remove(t);
                touch_put(t);
                restoring--;
                return shoal__err(SHOAL_ETIMEDOUT, "object 0x%016llx not ready after %lld "
                                  "ns: it is spilled and its read-back waits for room in the "
                                  "store (the read-back goes on: get it again)",
                                  (unsigned long long)ref.id, (long long)timeout_ns);
            }
            continue;
        }
        struct timespec ts = shoal__timespec_ns(deadline - now);
        if (worker && deadline - now > 1000000)
            ts = nap;
        shoal__futex_wait(&t->sync.done, PH_ROOM, &ts, false);
    }
    getting_remove(t);
    restoring--;
    rc = t->sync.rc;
    if (rc < 0)
        rc = shoal__err(rc, "%s", t->sync.err);
    touch_put(t);
    return rc;
}

int shoal__spill_touch(shoal_ref ref, shoal__slot *s, int64_t timeout_ns)
{
    uint64_t v = atomic_load_explicit(&s->word, memory_order_acquire);
    if (shoal__w_gen(v) == shoal__id_gen(ref.id) && shoal__w_state(v) == SHOAL__SPILLING) {
        /* The bytes are still here while the write runs: take the object back at once; the
         * write's completion sees READY and drops its copy (or, advised cold again by then,
         * spills it: spill_written). acq_rel: acquire as the load above; release orders
         * nothing new (the bytes never moved). */
        uint64_t nv = (v & ~SHOAL__W_STATE_MASK) | ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT);
        atomic_compare_exchange_strong_explicit(&s->word, &v, nv, memory_order_acq_rel,
                                                memory_order_relaxed);
        return 0;   /* the caller looks again, whoever won */
    }
    if (shoal__w_state(v) == SHOAL__RESTORING &&
        (!shoal__rt->cfg.spill_dir || timeout_ns >= 0)) {
        /* Another process (the owner) is reading it back, or another thread of ours is and
         * the caller has a time limit: sleep until it is done, as for a pending object (the
         * restore's end wakes the waiters, see leave_restoring), at most timeout_ns. Joined
         * through the I/O thread (below), a timed get waited for that whole restore, its
         * wait for room included, a poll too: the restore is another thread's wait, which
         * the limit covers (only the caller's own disk read is not bounded, shoal.h). */
        return shoal__obj_wait(ref, timeout_ns);
    }
    if (shoal__rt->cfg.spill_dir)
        return touch_wait(ref, timeout_ns);
    /* A worker runs other tasks meanwhile unless nested (restoring, above). */
    struct touch_req t;
    memset(&t, 0, sizeof t);
    t.sync.msg.run = touch_run;
    t.ref = ref;
    t.node = shoal__tls.node;
    restoring++;
    int rc = shoal__iosync_wait(&t.sync, restoring == 1);
    restoring--;
    return rc;
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
        if (tries && shoal__spill_again_hook)
            shoal__spill_again_hook(tries);
        int rc = shoal__iosync_call(&r.sync);
        if (rc)
            return shoal__err(rc, "no room for %zu bytes: %s", len, r.sync.err);
        retrying = true;
        rc = shoal__arena_alloc(rt, t, len, node, off);
        retrying = false;
        if (rc == 0)
            return 0;
    }
    return shoal__err(SHOAL_ENOMEM, "no room for %zu bytes: spilling made room for it %d times "
                      "and each time the allocation failed (other threads took the room, or it "
                      "was not in one piece): retry, or release objects", len, ROOM_TRIES);
}

/* Mark s cold if the caller's reference is the only one that may hold a pointer: refs is
 * 1 + `internal`, the references this process's I/O thread holds itself (a spill write a get
 * took the object back from keeps its claim until the write ends; it reads nothing the
 * caller could still use, and the write's end, seeing READY, only drops its copy). 0 when
 * marked (or nothing to do), SHOAL_EBUSY when other holders remain. */
static int mark_cold(shoal_ref ref, shoal__slot *s, uint32_t internal)
{
    int err;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    for (;;) {
        if (shoal__w_gen(w) != shoal__id_gen(ref.id) || shoal__w_state(w) == SHOAL__FREE)
            return shoal__slot_of(ref, &err)
                       ? shoal__err(SHOAL_ESTALE, "shoal_advise_cold: stale ref 0x%016llx: "
                                    "its object was freed", (unsigned long long)ref.id)
                       : err;
        if (shoal__w_state(w) != SHOAL__READY || (w & SHOAL__W_UNREAD))
            return 0;   /* not resident and sealed, or already cold */
        if (shoal__w_refs(w) > 1 + internal)
            return SHOAL_EBUSY;
        /* Cold from now: it queues behind objects that went cold earlier. */
        atomic_store_explicit(&s->next, shoal__seal_era(), memory_order_relaxed);
        /* release: the caller's reads of the bytes happen before the spiller's acquire claim
         * (and so before the bytes are freed). The CAS compares the reference count too: a
         * retain racing with it makes it fail and look again. */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_UNREAD,
                                                  memory_order_release, memory_order_relaxed))
            return 0;
    }
}

/* Tests: what the spill file's extents hold, and the spilled objects whose `next` names
 * another extent than our record (see spill_one's invariant: while SPILLED they agree, but
 * for a cold advice that read the word before the spill, see drop), read on the I/O
 * thread that owns them. */
struct probe_req { shoal__iosync sync; uint64_t used, bad; };

static void probe_run(shoal__iomsg *m)
{
    struct probe_req *p = (struct probe_req *)m;
    p->used = sp.on ? sp.ex.used : 0;
    for (size_t i = 0; sp.on && i < sp.rcap; i++) {
        const struct rec *r = &sp.recs[i];
        if (!r->idx)
            continue;
        const shoal__slot *s = &sp.rt->slots[r->idx];
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (shoal__w_gen(w) == r->gen && shoal__w_state(w) == SHOAL__SPILLED &&
            atomic_load_explicit(&s->next, memory_order_relaxed) != r->page)
            p->bad++;
    }
    shoal__iosync_answer(&p->sync, 0, NULL);
}

static struct probe_req probe(void)
{
    struct probe_req p;
    memset(&p, 0, sizeof p);
    p.sync.msg.run = probe_run;
    if (sp.on && shoal__iosync_call(&p.sync) != 0)
        p.used = p.bad = UINT64_MAX;
    return p;
}

uint64_t shoal__spill_check(void) { return probe().bad; }
uint64_t shoal__spill_extents_used(void) { return probe().used; }

struct advise_req { shoal__iosync sync; shoal_ref ref; };

static void advise_run(shoal__iomsg *m)
{
    struct advise_req *a = (struct advise_req *)m;
    uint32_t internal = 0;
    for (struct spill_op *op = sp.writes; op; op = op->next)
        internal += op->ref.id == a->ref.id;
    int err;
    shoal__slot *s = shoal__slot_of(a->ref, &err);
    int rc = s ? mark_cold(a->ref, s, internal) : err;
    shoal__iosync_answer(&a->sync, rc, rc < 0 && rc != SHOAL_EBUSY ? "%s" : NULL,
                         shoal_last_error());
}

static int advise_cold(shoal_ref ref)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    if (!shoal__rt->cfg.spill_dir)
        return 0;   /* nothing is ever spilled */
    int rc = mark_cold(ref, s, 0);
    if (rc == SHOAL_EBUSY && !shoal__io_self()) {
        /* Other references: some may be the I/O thread's own, which it alone can count
         * (and only it drops them, so its answer holds while it marks). */
        struct advise_req a;
        memset(&a, 0, sizeof a);
        a.sync.msg.run = advise_run;
        a.ref = ref;
        rc = shoal__iosync_call(&a.sync);
    }
    if (rc == SHOAL_EBUSY) {
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        return shoal__err(SHOAL_EBUSY, "shoal_advise_cold: object 0x%016llx has other "
                          "references (%u in all), whose holders may still read it: it stays "
                          "resident; advise it cold once they released theirs",
                          (unsigned long long)ref.id, shoal__w_refs(w));
    }
    return rc;
}

SHOAL_API int shoal_advise_cold(shoal_ref ref)
{
    SHOAL__CALL(advise_cold(ref));
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

/* The messages below name the reason first and the (possibly long) path last, so that a
 * long spill_dir only ever cuts the path. */
int shoal__spill_open(shoal__rt_t *rt, const char *dir)
{
    static _Atomic unsigned seq;
    struct stat st;
    if (!*dir)
        return shoal__err(SHOAL_EINVAL, "config.spill_dir is empty: pass a directory, or NULL "
                          "for no spilling");
    if (stat(dir, &st) != 0) {
        int e = errno;
        return shoal__err(SHOAL_EINVAL, "config.spill_dir cannot be used: %s (errno %d): pass "
                          "an existing, writable directory: '%s'", strerror(e), e, dir);
    }
    if (!S_ISDIR(st.st_mode))
        return shoal__err(SHOAL_EINVAL, "config.spill_dir is not a directory: '%s'", dir);
    int n = snprintf(sp.path, sizeof sp.path, "%s/shoal-spill-%d-%u.bin", dir, (int)getpid(),
                     atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed));
    if (n < 0 || (size_t)n >= sizeof sp.path)
        return shoal__err(SHOAL_EINVAL, "config.spill_dir is too long (%zu bytes; a path holds "
                          "%d): '%s'", strlen(dir), PATH_MAX - 32, dir);
    clean_leftovers(dir);
    sp.fd = open(sp.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (sp.fd < 0) {
        int e = errno;
        return shoal__err(SHOAL_EINVAL, "config.spill_dir is not writable: %s (errno %d) "
                          "creating the spill file %s", strerror(e), e, sp.path);
    }
    if (flock(sp.fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        int rc = shoal__err(SHOAL_EINVAL, "config.spill_dir: cannot lock the spill file: %s "
                            "(errno %d): %s", strerror(e), e, sp.path);
        shoal__spill_close();
        return rc;
    }
    sp.fd_direct = open(sp.path, O_RDWR | O_DIRECT | O_CLOEXEC);   /* -1: buffered only */
    sp.rt = rt;
    sp.on = true;
    return 0;
}

void shoal__spill_fork_child(void)
{
    /* fork() child: the spill state is the parent's (its file, its records, its free
     * extents, its rt, whose table the child still maps): a store the child starts must not
     * see it, or its I/O thread trims holes into the parent's file, spills the parent's
     * objects and unlinks the file at its shutdown. Only forgotten: the descriptors may be
     * closing in the parent at fork() (their numbers may name other files here; they close
     * at exec), and the heap blocks may be mid-realloc. */
    memset(&sp, 0, sizeof sp);
    sp.fd = sp.fd_direct = -1;
    /* The same for the parent's waiting gets; their lock may have been held by a thread
     * that is not here. */
    pthread_mutex_init(&getting_mu, NULL);
    getting = NULL;
}

static void free_restores(struct restore *r)
{
    for (struct restore *n; r; r = n) {
        n = r->next;
        free(r->mem);
        free(r);
    }
}

void shoal__spill_close(void)
{
    if (sp.fd >= 0) {
        unlink(sp.path);
        close(sp.fd);
    }
    if (sp.fd_direct >= 0)
        close(sp.fd_direct);
    free_restores(sp.restores);
    free_restores(sp.parked);
    free(sp.cand);
    free(sp.aim);
    free(sp.pins);
    free(sp.recs);
    shoal__ext_reset(&sp.ex);
    memset(&sp, 0, sizeof sp);
    sp.fd = sp.fd_direct = -1;
    /* `getting` is empty here: shutdown's quiesce waited for every get to return, and each
     * takes its request off the list before it does. */
}
