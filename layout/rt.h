/* rt.h - the runtime descriptor (shoal__rt_t) that every layer from the allocator up reads,
 * the runtime pointer and the thread-local view, and the accessors that only read them.
 * Types and inline reads only: the object store (core/) works on it, the runtime layer
 * (runtime/) fills it. Internal: never installed.
 *
 * Lifetime: shoal__rt is non-NULL between a successful shoal_init/attach and shutdown.
 * shoal__epoch changes at every init and every shutdown, by one: it is odd while a runtime
 * is up and even otherwise (an init that fails after publishing, a shutdown, a detach and a
 * fork() child's abandoning each make it even again). The library's own checks (calls'
 * entry, shoal's threads) compare a thread's cached epoch with it and refresh the view in
 * the slow path. The inline get reads no epoch: a runtime going down empties every
 * thread's view (core/thread.c shoal__threads_flush_all), so a view is either empty or the
 * runtime's that is up.
 */
#ifndef SHOAL_LAYOUT_RT_H
#define SHOAL_LAYOUT_RT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal.h"
#include "../os/compiler.h"
#include "../os/topo.h"
#include "table.h"

struct shoal__hdr;      /* the shared segment header, layout/segment.h */
struct shoal__arenas;   /* alloc/arena.h */
struct shoal__topo;     /* os/topo.h */
struct shoal__sched;    /* sched/sched.h */
struct shoal__thr;      /* the per-thread record, layout/thr.h */

/* The hot thread-local view (struct shoal__tls, declared in shoal.h for the inline get) starts
 * all-zero: a sentinel whose nslots 0 sends every lookup to the slow path, so the fast path
 * needs no init test. initial-exec TLS: measured 1.5 ns per call through a .so against
 * 3.1 ns for the default model, which calls __tls_get_addr.
 * The epoch has a cache line of its own: every call's entry reads it, and what shared its
 * line before (the thread registry) is written at every thread start and exit. */
struct shoal__epoch_line {
    _Atomic uint64_t v;
    /* The epoch whose nested calls may skip the entry checks (core/store.h shoal__enter):
     * the runtime's epoch while it is up and not going down, else SHOAL__NEST_SHUT, a value
     * no thread's view ever holds. Every change of the epoch shuts it (shoal__epoch_store);
     * a runtime opens it once it is up (shoal__nest_open) and shuts it when it starts going
     * down (core/wait.c shoal__rt_down). Read on the same line as the epoch. */
    _Atomic uint64_t nest;
    char pad[64 - 2 * sizeof(uint64_t)];
} __attribute__((aligned(64)));
#define SHOAL__NEST_SHUT UINT64_MAX
SHOAL__HIDDEN extern struct shoal__epoch_line shoal__epoch;
static inline uint64_t shoal__epoch_load(memory_order order) { return atomic_load_explicit(&shoal__epoch.v, order); }
/* relaxed load: a nested call that reads nest stale is still inside its outermost call,
 * whose mark holds the runtime up (core/store.h); it only answers a shutdown later.
 * seq_cst store: the Dekker pair with shoal__nest_open's (below). */
static inline void shoal__nest_shut(void) { atomic_store_explicit(&shoal__epoch.nest, SHOAL__NEST_SHUT, memory_order_seq_cst); }
static inline uint64_t shoal__nest_load(void) { return atomic_load_explicit(&shoal__epoch.nest, memory_order_relaxed); }
static inline void shoal__epoch_store(uint64_t e, memory_order order)
{
    shoal__nest_shut();
    atomic_store_explicit(&shoal__epoch.v, e, order);
}
/* A view's table size: written by its thread and by a runtime going down (to 0), so read
 * and written atomically (relaxed: a plain move on x86, as the inline get reads it). */
static inline uint64_t shoal__view_nslots(void) { return __atomic_load_n(&shoal__tls.nslots, __ATOMIC_RELAXED); }
static inline void shoal__view_empty(struct shoal__tls *v) { __atomic_store_n(&v->nslots, 0, __ATOMIC_RELAXED); }

typedef struct shoal__rt {
    uint64_t epoch;
    struct shoal__hdr *hdr;      /* shared segment: header + table */
    shoal__slot *slots;
    uint64_t nslots;
    char *base;                  /* arena span: node n's bytes at base + n * node_span */
    uint64_t node_span;
    unsigned nnodes;
    unsigned proc;               /* this process's index: 0 owner, >0 attached clients */
    uint32_t slot_cache;         /* free slots a thread may cache (core/slots.c) */
    bool owner;
    bool batched;                /* per-thread batched counters: nobody else reads them live
                                    (an owner whose store is not published) */
    int huge_kind;               /* SHOAL_PAGES_* obtained */
    struct shoal__arenas *arenas;
    struct shoal__topo *topo;
    struct shoal__sched *sched;  /* NULL in clients and until sched starts */
    _Atomic(void *) *deps;       /* process-local: per-slot list of waiting dependents */
    shoal_config cfg;
    /* Going down (shutdown, or a client's owner died or closed): 0 while up, else the
     * negative SHOAL_E* code that every call, and every blocked wait after its wake-up,
     * answers with down_msg. Set once, by shoal__rt_down. */
    _Atomic int down;
    _Atomic int down_claim;
    char down_msg[200];
} shoal__rt_t;

/* Written under the lifecycle lock before shoal__epoch is published; read with acquire. */
extern shoal__rt_t *_Atomic shoal__rt;

/* Open nest for rt, whose epoch is published: unless it is going down already. seq_cst
 * store, then seq_cst load of down: the Dekker pair with shoal__rt_down, which stores down
 * and then shuts nest, so nest never stays open on a runtime going down (a client's owner
 * may die while it attaches). */
static inline void shoal__nest_open(shoal__rt_t *rt)
{
    atomic_store_explicit(&shoal__epoch.nest, rt->epoch, memory_order_seq_cst);
    if (atomic_load_explicit(&rt->down, memory_order_seq_cst) != 0)
        shoal__nest_shut();
}

/* ---- reading a slot's bytes ---------------------------------------------------------------- */
static inline shoal__slot *shoal__tls_slots(void) { return (shoal__slot *)(void *)shoal__tls.slots; }
/* Data pointer of a slot in this process. */
static inline void *shoal__slot_data(const shoal__slot *s) { return shoal__rt->base + s->off; }
/* Whether a slot's offset and length lie inside the arena span. Every process can write
 * the table, so paths that dereference or free a slot's bytes check this first: a process
 * that wrote garbage into a slot costs a leak and a notice, never a crash. Stricter than
 * shoal__slot_bytes by one case: an empty range at the very end of the span is safe to
 * hand out, but no allocation starts there, so freeing it would be freeing garbage. */
static inline bool shoal__slot_bytes_ok(const shoal__slot *s)
{
    uint64_t span = shoal__rt->node_span * shoal__rt->nnodes;
    return s->off < span && s->len <= span - s->off;
}
/* The bytes of a slot another process may be rewriting: off and len read once, and false
 * unless they lie inside the span. Paths that hand out or read the bytes use these copies,
 * so a rewrite between the check and the use cannot send them outside. */
static inline bool shoal__slot_bytes(const shoal__slot *s, const char **data, uint64_t *len)
{
    uint64_t span = shoal__rt->node_span * shoal__rt->nnodes;
    uint64_t off = __atomic_load_n(&s->off, __ATOMIC_RELAXED);
    uint64_t n = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
    if (unlikely(shoal__len_inl(n))) {   /* held in the slot (table.h): its own field */
        *data = (const char *)&s->off;
        *len = n ^ SHOAL__LEN_INL;
        return true;
    }
    /* as an integer: off may be garbage, and base + off past the object is undefined */
    *data = (const char *)((uintptr_t)shoal__rt->base + off);
    *len = n;
    /* off + n <= span without wrapping around, as the inline get checks (shoal.h): an
     * empty range at the very end is inside too. */
    return off <= span && n <= span - off;
}
/* NUMA node of the arena span holding byte offset off. With one node (the common case) no
 * division, which costs ~40 cycles on the object paths that ask this. An offset beyond the
 * span (another process wrote the slot) counts as node 0: callers index arrays with it. */
static inline unsigned shoal__off_node(const shoal__rt_t *rt, uint64_t off)
{
    if (likely(rt->nnodes == 1))
        return 0;
    uint64_t n = off / rt->node_span;
    return n < rt->nnodes ? (unsigned)n : 0;
}
/* NUMA node holding a slot's bytes. */
static inline int shoal__slot_node(const shoal__slot *s)
{
    if (shoal__len_inl(s->len))
        return 0;   /* held in the slot: the table's memory, not a node's arena */
    return (int)shoal__off_node(shoal__rt, s->off);
}

#endif
