/* mproc.c - the multi-process region of the shared segment: its size, its set-up by the
 * owner and its validation by a process that maps it (layout/mpseg.h has the layout).
 */
#include "mproc.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* 64 KiB chunks keep the waste of rounding large objects small; bigger spans get
 * bigger chunks so that the map stays at most 1M entries (4 MiB, sparse) per node. */
static unsigned chunk_shift_for(uint64_t node_span)
{
    unsigned s = 16;
    while ((node_span >> s) > ((uint64_t)1 << 20))
        s++;
    return s;
}

struct ext_layout { unsigned shift; uint64_t nchunks, head, map, wstats, xfer, lists, total; };

static struct ext_layout layout(unsigned nnodes, uint64_t node_span, uint64_t nslots)
{
    struct ext_layout l;
    l.shift = chunk_shift_for(node_span);
    l.nchunks = (node_span + ((uint64_t)1 << l.shift) - 1) >> l.shift;
    l.head = round_up(sizeof(struct shoal__mp), 4096);
    l.map = round_up((uint64_t)nnodes * l.nchunks * sizeof(uint32_t), 4096);
    l.wstats = round_up(SHOAL__MAX_WSTATS * sizeof(struct shoal__wstat), 4096);
    l.xfer = round_up(sizeof(struct shoal__inflight), 4096);
    /* Sparse like the rest: only the pages of objects that lists name are ever touched. */
    l.lists = round_up(nslots * sizeof(uint64_t), 4096);
    l.total = l.head + l.map + l.wstats + l.xfer + l.lists;
    return l;
}

uint64_t shoal__mp_bytes(unsigned nnodes, uint64_t node_span, uint64_t nslots)
{
    return layout(nnodes, node_span, nslots).total;
}

static void adopt(const struct shoal__hdr *h, const struct ext_layout *l)
{
    char *b = (char *)h;
    shoal__geo.ext = (struct shoal__mp *)(b + h->ext_off);
    shoal__geo.map = (_Atomic uint32_t *)(b + h->ext_off + l->head);
    shoal__geo.wstats = (struct shoal__wstat *)(b + h->ext_off + l->head + l->map);
    shoal__geo.xfer = (struct shoal__inflight *)(b + h->ext_off + l->head + l->map + l->wstats);
    shoal__geo.lists = (_Atomic uint64_t *)(b + h->ext_off + l->head + l->map + l->wstats + l->xfer);
    shoal__geo.shift = l->shift;
    shoal__geo.nchunks = l->nchunks;
}

void shoal__mp_init(shoal__rt_t *rt)
{
    struct shoal__hdr *h = rt->hdr;
    struct ext_layout l = layout(rt->nnodes, rt->node_span, rt->nslots);
    adopt(h, &l);
    struct shoal__mp *x = shoal__mp_of(rt);
    x->magic = SHOAL__MP_MAGIC;
    x->nprocs = SHOAL__MAX_PROCS;
    x->chunk_shift = l.shift;
    x->nchunks = l.nchunks;
    x->chunks_off = h->ext_off + l.head;
    x->wstats_off = h->ext_off + l.head + l.map;
    x->xfer_off = x->wstats_off + l.wstats;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct shoal__proc *o = &x->procs[0];
    atomic_store_explicit(&o->inc, 1, memory_order_relaxed);
    atomic_store_explicit(&o->pid, (int32_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&o->attached_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                          memory_order_relaxed);
    atomic_store_explicit(&o->state, SHOAL__PROC_LIVE, memory_order_relaxed);
    shoal__chunk_me = shoal__chunk_id(0, 1);
}

int shoal__mp_check(const struct shoal__hdr *h, uint64_t seg_len)
{
    if (h->nnodes == 0 || h->nnodes > SHOAL__MAX_NODES || h->node_span == 0 ||
        h->node_span > ((uint64_t)1 << 47) || h->nslots < 2 || h->nslots > SHOAL__MAX_SLOTS)
        return -1;
    struct ext_layout l = layout(h->nnodes, h->node_span, h->nslots);
    if (h->ext_off < sizeof *h || h->ext_off % 4096 || h->ext_off > seg_len ||
        l.total > seg_len - h->ext_off || h->slots_off < h->ext_off + l.total ||
        h->slots_off > seg_len || h->nslots * sizeof(shoal__slot) > seg_len - h->slots_off)
        return -1;
    const struct shoal__mp *x = (const struct shoal__mp *)((const char *)h + h->ext_off);
    if (x->magic != SHOAL__MP_MAGIC || x->nprocs != SHOAL__MAX_PROCS ||
        x->chunk_shift != l.shift || x->nchunks != l.nchunks ||
        x->chunks_off != h->ext_off + l.head || x->wstats_off != h->ext_off + l.head + l.map ||
        x->xfer_off != x->wstats_off + l.wstats)
        return -1;
    adopt(h, &l);
    return 0;
}

/* ---- the counters' shards -------------------------------------------------------------------- */

/* shoal__shards_sum is layout/mpseg.h's (core/stats.c reads the sums too). */

void shoal__shard_settle(shoal__rt_t *rt, unsigned proc)
{
    struct shoal__shard *sh = shoal__shard_of(proc);
    for (unsigned n = 0; n < rt->nnodes; n++) {
        int64_t b = atomic_exchange_explicit(&sh->bytes[n], 0, memory_order_relaxed);
        atomic_store_explicit(&sh->objs[n], 0, memory_order_relaxed);
        atomic_fetch_sub_explicit(&rt->hdr->node[n].bytes_used, (uint64_t)b, memory_order_relaxed);
    }
}

void (*shoal__resync_hook)(void);

void shoal__estimate_resync(shoal__rt_t *rt)
{
    /* The estimate is a second RMW after each shard's, so a process that died between the
     * two left it off by what it was counting. Add the difference to the shards' sum; a
     * count in flight meanwhile is off until the next resync, never for good. */
    int64_t bytes[SHOAL__MAX_NODES] = { 0 }, objs[SHOAL__MAX_NODES] = { 0 };
    uint64_t est[SHOAL__MAX_NODES];
    for (unsigned n = 0; n < rt->nnodes; n++)
        est[n] = atomic_load_explicit(&rt->hdr->node[n].bytes_used, memory_order_relaxed);
    if (shoal__resync_hook)
        shoal__resync_hook();
    shoal__shards_sum(rt, bytes, objs);
    for (unsigned n = 0; n < rt->nnodes; n++)
        if ((uint64_t)bytes[n] != est[n])
            atomic_fetch_add_explicit(&rt->hdr->node[n].bytes_used, (uint64_t)bytes[n] - est[n],
                                      memory_order_relaxed);
}
