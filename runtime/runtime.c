/* runtime.c - the runtime lifecycle: init builds the shared segment (header + object
 * table), the arenas and the scheduler; shutdown takes them down in reverse order and
 * moves the epoch so that every thread's cached view goes stale at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../os/mem.h"
#include "../io/io.h"
#include "../io/spill.h"
#include "../sched/sched.h"
#include "../core/stats.h"
#include "../sched/timeline.h"
#include "../os/topo.h"
#include "../mproc/mproc.h"
#include "../layout/segment.h"
#include "../core/thread.h"
#include "runtime.h"

struct rt_private {               /* what only the lifecycle needs */
    shoal__rt_t rt;
    int seg_fd;
    size_t seg_len;
    size_t deps_len;
};

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* ---- the segment's address space ------------------------------------------------------
 * The inline get (shoal.h) reads the object table through a thread's cached view with no
 * marker a shutdown could wait for: a thread may have passed its view's bounds check just
 * before the shutdown emptied the view and read the table just after. So a table's
 * addresses are never left unmapped:
 * at teardown the segment is replaced by a private read-only zero mapping (no memory: the
 * kernel's zero page), where every word reads 0, which no ID matches (generations are never
 * 0), so a stale lookup misses and takes the slow path, which refreshes and answers
 * SHOAL_ENOTINIT. The next segment of this process is mapped into such a range when one is
 * large enough, so the address space does not grow with init/shutdown cycles. Only when
 * more than GRAVES ranges are kept is the oldest unmapped: a lookup would have to stall
 * between two of its instructions for GRAVES whole shutdowns to fault there. Under the
 * lifecycle lock. */
#define GRAVES 16
static struct grave { char *addr; size_t len; } graves[GRAVES];
static unsigned ngraves;

void shoal__seg_retire(void *addr, size_t len)
{
    if (!addr || !len)
        return;
    if (mmap(addr, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
             -1, 0) == MAP_FAILED) {
        munmap(addr, len);   /* the segment must not stay mapped: it holds its memfd */
        return;
    }
    if (ngraves == GRAVES) {
        munmap(graves[0].addr, graves[0].len);
        memmove(&graves[0], &graves[1], (GRAVES - 1) * sizeof graves[0]);
        ngraves--;
    }
    graves[ngraves++] = (struct grave){ addr, len };
}

void *shoal__seg_place(size_t len)
{
    unsigned best = ngraves;
    for (unsigned i = 0; i < ngraves; i++)
        if (graves[i].len >= len && (best == ngraves || graves[i].len < graves[best].len))
            best = i;
    if (best == ngraves)
        return NULL;
    char *at = graves[best].addr;
    if (graves[best].len > len) {   /* the rest stays a grave */
        graves[best].addr += len;
        graves[best].len -= len;
    } else {
        graves[best] = graves[--ngraves];
    }
    return at;
}


static void teardown(struct rt_private *p)
{
    shoal__rt_t *rt = &p->rt;
    shoal__io_stop(rt);   /* a no-op once shutdown stopped it */
    shoal__publish_stop(rt);
    shoal__publish_release();
    shoal__arenas_destroy(rt);
    if (rt->deps)
        munmap((void *)rt->deps, p->deps_len);
    shoal__seg_retire(rt->hdr, p->seg_len);
    if (p->seg_fd >= 0)
        close(p->seg_fd);
    if (rt->topo)
        shoal__topo_free(rt->topo);
    free(p);
}

/* ---- fork() ------------------------------------------------------------------------------
 * A child of a process that runs a store, private, published or attached, never allocates
 * from, frees into or submits to that store: the inherited runtime is abandoned here, in
 * the child, touching only process-private memory (no slot, ledger or arena byte of the
 * store: the parent's threads are using them). Every call then answers SHOAL_ENOTINIT
 * saying the process is a fork() child (thread.c), and shoal_init or shoal_attach work
 * afresh: locks another thread held at fork() are made anew, the registries keep the one
 * thread there is, the scheduler's task blocks and the per-slot generation records
 * (slots.c: the parent went on issuing generations) are forgotten. A ref inherited from
 * the parent may name an object of the child's own new store only by chance, as a ref of
 * another process would. The I/O engine has its own handler (io/ring.c). */
static void atfork_child(void)
{
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    shoal__threads_forget(rt != NULL);
    shoal__sched_forget();
    shoal__foreign_deps_fork_child();   /* the parent's dependents: never fired here */
    shoal__drain_fork_child();          /* mproc's private locks, made anew */
    shoal__xfer_fork_child();           /* windows the parent's other threads held */
    shoal__fail_kept_fork_child();      /* failure messages kept out of the store */
    if (!rt)
        return;
    if (shoal__holds != NULL) {   /* published or attached (layout/mpseg.h) */
        shoal__holds = NULL;
        shoal__publish_forget();
        shoal__attach_forget();
    }
    atomic_store_explicit(&shoal__rt, NULL, memory_order_relaxed);
    /* odd (up) -> even (none), see layout/rt.h */
    shoal__epoch_store(shoal__epoch_load(memory_order_relaxed) + 1, memory_order_relaxed);
    shoal__slots_forget();
}

static void atfork_once(void) { pthread_atfork(NULL, NULL, atfork_child); }

/* The store's calls up into io/ and mproc/ (core/store.h): constant for the process. */
static void wire_once(void)
{
    shoal__up = (struct shoal__upcalls){
        .spill_touch = shoal__spill_touch,
        .spill_drop = shoal__spill_drop,
        .io_stats = shoal__io_stats,
        .dep_add_foreign = shoal__dep_add_foreign,
        .notify_foreign = shoal__notify_foreign,
        .rfree_push = shoal__rfree_push,
        .own_release = shoal__own_release,
        .io_kick = shoal__io_kick,
        .xfer_expire = shoal__xfer_expire,
        .xfer_due = shoal__xfer_due,
        .ingest_take = shoal__ingest_take,
    };
}

void shoal__layers_wire(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, wire_once);
}

void shoal__atfork_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, atfork_once);
}

/* RAM plus swap: the most a store could ever occupy here. */
static uint64_t shoal__machine_bytes(void)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0 || si.mem_unit == 0)
        return UINT64_MAX;
    return ((uint64_t)si.totalram + (uint64_t)si.totalswap) * si.mem_unit;
}

static int check_config(const shoal_config *c)
{
    for (size_t i = 0; i < sizeof c->reserved / sizeof c->reserved[0]; i++)
        if (c->reserved[i])
            return shoal__err(SHOAL_EINVAL, "config.reserved[%zu] is not zero: zero-initialise "
                                            "shoal_config (shoal_config c = { 0 })", i);
    if (c->huge_pages != SHOAL_HUGE_AUTO && c->huge_pages != SHOAL_HUGE_REQUIRE &&
        c->huge_pages != SHOAL_HUGE_OFF)
        return shoal__err(SHOAL_EINVAL, "config.huge_pages is %d: use SHOAL_HUGE_AUTO, "
                                        "SHOAL_HUGE_REQUIRE or SHOAL_HUGE_OFF", c->huge_pages);
    if (c->store_bytes != 0 && c->store_bytes < ((size_t)1 << 20))
        return shoal__err(SHOAL_EINVAL, "config.store_bytes %zu is too small: use at least "
                                        "1 MiB, or 0 for a quarter of physical memory",
                          c->store_bytes);
    if (c->store_bytes > ((size_t)1 << 46))
        return shoal__err(SHOAL_EINVAL, "config.store_bytes %zu is too large (64 TiB at most)",
                          c->store_bytes);
    /* A store is reserved, not committed: its pages are taken as objects fill it. One that
     * memory and swap together could never hold would fail (or meet the OOM killer) only
     * once it is nearly full; refuse it now. */
    uint64_t can = shoal__machine_bytes();
    if (c->store_bytes > can)
        return shoal__err(SHOAL_ENOMEM, "config.store_bytes %zu is more than this machine could "
                          "ever hold (%llu bytes of RAM and swap): use less, or 0 for a quarter "
                          "of physical memory", c->store_bytes, (unsigned long long)can);
    if (c->workers > 1024)
        return shoal__err(SHOAL_EINVAL, "config.workers %u is too many (1024 at most)",
                          c->workers);
    if (c->max_objects >= SHOAL__MAX_SLOTS)
        return shoal__err(SHOAL_EINVAL, "config.max_objects %zu is too many (%llu at most)",
                          c->max_objects, (unsigned long long)SHOAL__MAX_SLOTS - 1);
    if (c->name)
        return shoal__name_check(c->name);
    return 0;
}

/* The header and object table, in one memfd so another process can map it. */
static int make_segment(struct rt_private *p, const shoal_config *c)
{
    shoal__rt_t *rt = &p->rt;
    uint64_t nslots = c->max_objects + 1;   /* slot 0 is never used */
    if (c->max_objects == 0 && (nslots = c->store_bytes / 256) < 65536)
        nslots = 65536;
    if (nslots > SHOAL__MAX_SLOTS)
        nslots = SHOAL__MAX_SLOTS;
    uint64_t cap = c->store_bytes / rt->nnodes;
    /* Slack over the capacity for slab tails, blocks free in thread caches and in partly
     * used slabs, so that the byte count, not fragmentation, is what normally says "full". */
    rt->node_span = round_up(cap + cap / 16 + ((uint64_t)8 << 20), SHOAL__HUGE_SIZE);
    size_t ext_off = round_up(sizeof(struct shoal__hdr), 4096);
    size_t slots_off = ext_off + shoal__mp_bytes(rt->nnodes, rt->node_span, nslots);
    p->seg_len = round_up(slots_off + nslots * sizeof(shoal__slot), 4096);
    void *m = NULL;   /* set when rc is 0; gcc 12 -flto could not see it */
    void *at = shoal__seg_place(p->seg_len);   /* a dead table's range, or NULL (above) */
    int rc;
    if (c->name) {   /* published: a memfd other processes map */
        p->seg_fd = shoal__os_memfd("shoal-table", p->seg_len, 0);
        if (p->seg_fd < 0)
            return p->seg_fd;
        rc = shoal__os_map(p->seg_fd, p->seg_len, at, &m);
    } else if (at) { /* private: anonymous, huge pages where the kernel gives them */
        m = at;
        if ((rc = shoal__os_map_anon(at, p->seg_len, 0)) == 0)
            shoal__os_thp_anon(at, p->seg_len, 1);
    } else {
        rc = shoal__os_map_anon_any(p->seg_len, &m);
    }
    if (rc)
        return rc;
    struct shoal__hdr *h = m;
    rt->hdr = h;
    rt->slots = (shoal__slot *)((char *)m + slots_off);
    rt->nslots = nslots;
    h->magic = SHOAL__MAGIC;
    h->version = SHOAL__SEG_VERSION;
    h->nnodes = rt->nnodes;
    h->store_bytes = c->store_bytes;
    h->node_span = rt->node_span;
    h->nslots = nslots;
    h->slots_off = slots_off;
    h->ext_off = ext_off;
    shoal__mp_init(rt);   /* before the arenas: they take chunks from its chunk map */
    for (unsigned n = 0; n < rt->nnodes; n++)
        h->node[n].cap = cap;
    p->deps_len = round_up(nslots * sizeof(void *), 4096);
    void *d = mmap(NULL, p->deps_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (d == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot map the dependency table");
    rt->deps = d;
    return shoal__slots_init(rt);
}

/* SHOAL_PUBLISH=name publishes a store its program left unnamed, so that shoal-stat can
 * inspect any program's store ("%p" becomes the pid). The name must pass the same check as
 * config.name; a bad one fails the init, naming the variable. */
static int publish_from_env(shoal_config *c)
{
    static char name[128];   /* rt->cfg keeps the pointer; inits are one at a time */
    const char *e = getenv("SHOAL_PUBLISH");
    if (!e || !*e)
        return 0;
    size_t o = 0;
    for (const char *s = e; *s && o + 1 < sizeof name; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            int k = snprintf(name + o, sizeof name - o, "%ld", (long)getpid());
            o = k > 0 && (size_t)k < sizeof name - o ? o + (size_t)k : sizeof name - 1;
            s++;
        } else {
            name[o++] = *s;
        }
    }
    name[o] = 0;
    if (shoal__name_check(name) != 0)
        return shoal__err(SHOAL_EINVAL, "SHOAL_PUBLISH=%s is not a store name (1 to 64 bytes, "
                          "no '/' and no control character): fix or unset it", e);
    c->name = name;
    return 0;
}

SHOAL_API int shoal_init(const shoal_config *cfg)
{
    int rc0;
    shoal_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    shoal__log_env();   /* SHOAL_LOG_LEVEL, SHOAL_QUIET as they are now */
    if (!c.name && (rc0 = publish_from_env(&c)) != 0)
        return rc0;
    if (shoal__tls.worker >= 0)   /* the lifecycle lock may be held by a shutdown waiting for us */
        return shoal__err(SHOAL_EEXIST, "shoal_init called inside a task: the runtime that "
                                        "runs it is initialized already");
    if ((rc0 = shoal__lifecycle_reentered("shoal_init", SHOAL_EEXIST)) != 0)
        return rc0;
    int rc = check_config(&c);
    if (rc)
        return rc;
    shoal__layers_wire();
    shoal__atfork_register();   /* before the lock: pthread_once never waits for it */
    shoal__lifecycle_lock();
    if (atomic_load_explicit(&shoal__rt, memory_order_relaxed)) {
        shoal__lifecycle_unlock();
        return shoal__err(SHOAL_EEXIST, "already initialized: call shoal_shutdown() first");
    }
    struct rt_private *p = calloc(1, sizeof *p);
    if (!p) {
        shoal__lifecycle_unlock();
        return shoal__err(SHOAL_ENOMEM, "out of memory");
    }
    p->seg_fd = -1;
    shoal__rt_t *rt = &p->rt;
    rt->owner = true;
    rt->proc = 0;
    /* Batched per-thread counters only while no other process can read them live. */
    rt->batched = c.name == NULL;
    if (c.store_bytes == 0)
        c.store_bytes = (size_t)(shoal__os_phys_bytes() / 4);
    rt->cfg = c;
    rc = shoal__topo_load(c.topology, &rt->topo);
    if (rc)
        goto fail;
    rt->nnodes = shoal__topo_nodes(rt->topo);
    if (rt->nnodes > SHOAL__MAX_NODES) {
        rc = shoal__err(SHOAL_EINVAL, "topology has %u NUMA nodes; shoal supports %d",
                        rt->nnodes, SHOAL__MAX_NODES);
        goto fail;
    }
    rc = make_segment(p, &c);
    if (rc)
        goto fail;
    rc = shoal__arenas_create(rt, c.huge_pages);
    if (rc)
        goto fail;
    rt->hdr->huge_kind = rt->huge_kind;
    if (c.name && (rc = shoal__publish_start(rt, c.name, p->seg_fd, p->seg_len)) != 0)
        goto fail;
    rc = shoal__io_start(rt);   /* validates spill_dir; its thread waits for the epoch */
    if (rc)
        goto fail;

    uint64_t e = shoal__epoch_load(memory_order_relaxed) + 1;
    rt->epoch = e;
    atomic_store_explicit(&shoal__rt, rt, memory_order_release);
    /* release: pairs with the acquire in shoal__tls_refresh; a thread that sees the new
     * epoch sees a complete runtime. */
    shoal__epoch_store(e, memory_order_release);

    shoal__forked_clear();
    unsigned workers = c.workers ? c.workers : (unsigned)shoal__topo_default_workers(rt->topo);
    shoal__tl_start(workers);
    rc = shoal__sched_start(rt, workers);
    if (rc) {
        shoal__sched_stop(rt);
        shoal__tl_stop();
        shoal__io_stop(rt);
        shoal__epoch_store(e + 1, memory_order_seq_cst);
        shoal__calls_quiesce();   /* as shutdown: calls that saw epoch e have left */
        atomic_store_explicit(&shoal__rt, NULL, memory_order_release);
        shoal__threads_flush_all(rt);
        goto fail;
    }
    /* Up: nested calls may skip the entry checks from now on (core/store.h). */
    shoal__nest_open(rt);
    shoal__lifecycle_unlock();
    return 0;
fail:
    teardown(p);
    shoal__lifecycle_unlock();
    return rc;
}

/* Shutdown, safe from any thread while others call shoal (the contract in shoal.h):
 *  1. rt->down = SHOAL_ECANCELED with a message, and every waiter woken: blocked gets and
 *     waits (tasks' too) return it, and every call from now on answers it at its entry.
 *  2. Quiesce (core/store.h): wait until no call that began before (1) is still inside; such
 *     calls are short now, blocking ones having woken. From here only shoal's own threads
 *     use the runtime, and they are stopped in order: publish, scheduler (tasks not
 *     started are canceled, running ones finish; they too see (1)), timeline, I/O.
 *  3. A new epoch, then quiesce again: a call that entered before the new epoch and read
 *     rt->down has left, and later ones fail on the epoch without reading anything.
 *  4. shoal__rt = NULL; caches flushed; generations saved (slots.c); the store torn down,
 *     its table left as a zero mapping for stale views (see shoal__seg_retire); the task
 *     blocks unmapped.
 * The lifecycle lock is held throughout, so a second shutdown waits and then answers
 * SHOAL_ENOTINIT. Inside a task it answers SHOAL_EBUSY: it would wait for its own task. */
SHOAL_API int shoal_shutdown(void)
{
    if (shoal__tls.worker >= 0)
        return shoal__err(SHOAL_EBUSY, "shoal_shutdown called from inside a task (worker %d): "
                          "a task cannot stop the runtime that runs it; return from the task "
                          "and call shoal_shutdown() from another thread", shoal__tls.worker);
    if (shoal__me.call.depth != 0)
        return shoal__err(SHOAL_EBUSY, "shoal_shutdown called from inside another shoal call "
                          "(a signal handler?): call it from a thread outside shoal");
    int rc0 = shoal__lifecycle_reentered("shoal_shutdown", SHOAL_EBUSY);
    if (rc0)
        return rc0;
    shoal__lifecycle_lock();
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    if (!rt) {
        shoal__lifecycle_unlock();
        return shoal__not_running();
    }
    shoal__rt_down(rt, SHOAL_ECANCELED, "canceled: the runtime is shutting down (shoal_shutdown "
                   "was called), and its objects, refs and pointers go with it; call "
                   "shoal_init() or shoal_attach() for a new one");
    shoal__spill_gets_cancel();   /* gets waiting for read-backs sleep on their own words */
    shoal__calls_quiesce();
    if (!rt->owner) {   /* an attached process: detach (runtime/attach.c) */
        int rc = shoal__detach(rt);
        shoal__lifecycle_unlock();
        return rc;
    }
    /* Clients are told first, and the service threads that may hand tasks their foreign
     * arguments (mproc/publish.c) stop before the scheduler goes. */
    shoal__publish_stop(rt);
    /* Workers finish while the store is still whole; then every cached view goes stale. */
    shoal__sched_stop(rt);
    shoal__tl_stop();
    shoal__io_stop(rt);   /* after the workers (their tasks may wait on I/O), before the store */
    shoal__epoch_store(rt->epoch + 1, memory_order_seq_cst);
    shoal__calls_quiesce();
    atomic_store_explicit(&shoal__rt, NULL, memory_order_release);
    shoal__threads_flush_all(rt);
    shoal__slots_retire(rt);
    teardown((struct rt_private *)rt);
    shoal__sched_release();
    shoal__lifecycle_unlock();
    return 0;
}

SHOAL_API int shoal_info_get(shoal_info *out)
{
    if (!out)
        return shoal__err(SHOAL_EINVAL, "shoal_info_get: out is NULL");
    int rc = shoal__enter();
    if (rc)
        return rc;
    shoal__rt_t *rt = shoal__rt;
    memset(out, 0, sizeof *out);
    out->numa_nodes = rt->nnodes;
    out->huge_pages = rt->huge_kind;
    out->store_bytes = rt->hdr->store_bytes;
    shoal__store_usage(rt, &out->bytes_used, &out->objects_live);
    out->largest_free = shoal__arena_largest_free(rt);
    if (rt->sched)
        shoal__sched_info(out);
    shoal__leave();
    return 0;
}
