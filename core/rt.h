/* rt.h - the global runtime, its thread-local cache, and the internal object API that
 * sched/ and io/ build on. Internal: never installed; non-static names use shoal__.
 *
 * Lifetime: shoal__rt is non-NULL between a successful shoal_init/attach and shutdown.
 * shoal__epoch changes at every init and every shutdown, by one: it is odd while a runtime
 * is up and even otherwise (an init that fails after publishing, a shutdown, a detach and a
 * fork() child's abandoning each make it even again). A thread whose cached epoch differs
 * refreshes its cache in the slow path and so never uses a dead store.
 */
#ifndef SHOAL_CORE_RT_H
#define SHOAL_CORE_RT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal.h"
#include "log.h"
#include "table.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define SHOAL__COLD __attribute__((noinline, cold))
#define SHOAL__HIDDEN __attribute__((visibility("hidden")))
#define SHOAL__MAX_NODES 16
#define SHOAL__CACHELINE 64

struct shoal__hdr;      /* the shared segment header, core/segment.h */
struct shoal__arenas;   /* alloc/arena.h */
struct shoal__topo;     /* sched/topo.h */
struct shoal__sched;    /* sched/sched.h */
struct shoal__thr;      /* per-thread heavy state, core/thread.c */

/* The hot thread-local view (struct shoal__tls, declared in shoal.h for the inline get) starts
 * all-zero: a sentinel whose nslots 0 sends every lookup to the slow path, so the fast path
 * needs no init test. initial-exec TLS: measured 1.5 ns per call through a .so against
 * 3.1 ns for the default model, which calls __tls_get_addr. shoal__epoch is accessed with
 * __atomic builtins only (it is a plain uint64_t so that the public header can read it). */
static inline uint64_t shoal__epoch_load(int order) { return __atomic_load_n(&shoal__epoch, order); }

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

/* The segment (header + table) is never unmapped, since a stale view may still read its
 * table: retire replaces it with a read-only zero mapping, and place returns such a range
 * of at least len bytes for the next segment of this process (MAP_FIXED), or NULL.
 * Lifecycle lock held (runtime.c). */
SHOAL__HIDDEN void  shoal__seg_retire(void *addr, size_t len);
SHOAL__HIDDEN void *shoal__seg_place(size_t len);

/* Bytes and objects the store holds now (shoal_info_get's figures; runtime.c). */
SHOAL__HIDDEN void shoal__store_usage(shoal__rt_t *rt, size_t *bytes_used, uint64_t *objects_live);

/* Intrusive doubly linked lists (the thread registries, the pool's large tasks): n has
 * next and prev, head points at the first node. The caller holds the list's lock. */
#define SHOAL__DLIST_PUSH(head, n) do {                                                    \
        (n)->prev = NULL;                                                                  \
        (n)->next = (head);                                                                \
        if (head)                                                                          \
            (head)->prev = (n);                                                            \
        (head) = (n);                                                                      \
    } while (0)
#define SHOAL__DLIST_UNLINK(head, n) do {                                                  \
        if ((n)->prev)                                                                     \
            (n)->prev->next = (n)->next;                                                   \
        else                                                                               \
            (head) = (n)->next;                                                            \
        if ((n)->next)                                                                     \
            (n)->next->prev = (n)->prev;                                                   \
        (n)->next = (n)->prev = NULL;                                                      \
    } while (0)

/* ---- errors (core/errors.c) ----------------------------------------------------------- */
/* Record this thread's message and return code: `return shoal__err(SHOAL_EINVAL, "...")`. */
SHOAL__HIDDEN int shoal__err(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), cold));
/* A warning (fallbacks, things a user should fix): shoal__log_at(SHOAL_LOG_WARN, ...), which
 * goes to the shoal_set_log sink or stderr (core/log.c). */
SHOAL__HIDDEN void shoal__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- thread cache (core/thread.c) ----------------------------------------------------- */
/* SHOAL_ENOTINIT with the message that says why no runtime is there and what to do. */
SHOAL__HIDDEN int shoal__not_running(void) __attribute__((cold));
/* Make this thread's view current: 0, or SHOAL_ENOTINIT (message set) if no runtime. */
SHOAL__HIDDEN int shoal__tls_refresh(void);
/* The view check for shoal's own threads (workers, I/O, service threads), which shutdown
 * stops before it frees anything. Public calls use shoal__enter instead. */
static inline int shoal__tls_check(void)
{
    if (likely(shoal__tls.epoch == shoal__epoch_load(__ATOMIC_RELAXED) && shoal__tls.nslots != 0))
        return 0;
    return shoal__tls_refresh();
}

/* ---- call markers: what makes shutdown safe from anywhere (core/thread.c) --------------
 * Every public call that reaches the runtime brackets itself with shoal__enter and
 * shoal__leave. enter makes this thread's mark odd (outermost call only: help runs tasks
 * inside a wait, whose calls nest), then checks the view and rt->down; leave makes it even
 * (release). Whoever takes the runtime down (shutdown) first publishes the change that
 * makes new calls fail (rt->down, later the epoch), then shoal__calls_quiesce: an
 * asymmetric barrier (membarrier: a full fence on every thread of the process, so the
 * calls' side needs only a compiler barrier), then it waits until every registered thread
 * whose mark is odd has moved on. Dekker: a call either sees the change and fails, or its
 * mark is seen and waited for; so nothing a call may touch is freed under it. A thread is
 * registered (under the registry lock, with its mark even) before its first call passes
 * enter; its thread-exit hook unregisters it and makes its next call register again. */
struct shoal__call {
    _Atomic uint64_t mark;        /* odd while inside an outermost public call */
    uint32_t depth;               /* nesting depth (owner only) */
    bool registered;
    struct shoal__call *next, *prev;   /* registry, under its lock */
};
extern __thread struct shoal__call shoal__call __attribute__((tls_model("initial-exec")));
/* The slow half of shoal__enter (view stale, not registered, or down). On failure the
 * call is left again and the error (message set) returned. */
SHOAL__HIDDEN int shoal__enter_slow(void) __attribute__((cold));
/* Wait until no thread is inside a public call that began before the caller's last change
 * (see above). The caller holds the lifecycle lock and is not inside a call. */
SHOAL__HIDDEN void shoal__calls_quiesce(void);

/* The TLS block is named directly, not through a pointer: GCC 12 with UBSan tested such a
 * pointer for null with stale flags after a call and reported a null access. */
static inline int shoal__enter(void)
{
    if (likely(shoal__call.depth++ == 0)) {
        atomic_store_explicit(&shoal__call.mark,
                              atomic_load_explicit(&shoal__call.mark, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        /* The mark before the checks below: a compiler barrier here, the hardware fence
         * is the quiescer's membarrier (see above). */
        atomic_signal_fence(memory_order_seq_cst);
    }
    /* With the view current, shoal__rt is this view's runtime and stays allocated until
     * we leave (shutdown quiesces before it frees it). */
    if (likely(shoal__tls.epoch == shoal__epoch_load(__ATOMIC_RELAXED) && shoal__tls.nslots != 0 &&
               shoal__call.registered &&
               atomic_load_explicit(&atomic_load_explicit(&shoal__rt, memory_order_relaxed)->down,
                                    memory_order_relaxed) == 0))
        return 0;
    return shoal__enter_slow();
}

static inline void shoal__leave(void)
{
    if (likely(--shoal__call.depth == 0))
        /* release: everything this call did with the runtime happens before a quiescer's
         * acquire load that sees the mark move. */
        atomic_store_explicit(&shoal__call.mark,
                              atomic_load_explicit(&shoal__call.mark, memory_order_relaxed) + 1,
                              memory_order_release);
}

/* The body of a public call: `SHOAL__CALL(impl(args));` enters, runs impl (which returns 0,
 * a count or a negative code) and leaves. */
#define SHOAL__CALL(expr) do {                                                             \
        int rc_ = shoal__enter();                                                          \
        if (likely(rc_ == 0)) {                                                            \
            rc_ = (expr);                                                                  \
            shoal__leave();                                                                \
        }                                                                                  \
        return rc_;                                                                        \
    } while (0)

/* ---- objects (core/object.c): the internal API for sched/ and io/ ---------------------- */
/* shoal_retain and shoal_release without the call marker, for internal callers (inside a
 * public call already, or a thread shoal runs itself). The caller passed the view check. */
SHOAL__HIDDEN int shoal__retain(shoal_ref ref);
SHOAL__HIDDEN int shoal__release(shoal_ref ref);
/* Resolve ref to its slot, checking host, index and generation (not state).
 * Returns the slot or NULL with *err set to SHOAL_EINVAL / SHOAL_ESTALE (message set). */
SHOAL__HIDDEN shoal__slot *shoal__slot_of(shoal_ref ref, int *err);
/* New object in state SHOAL__CREATED (len bytes allocated on node, -1 = this thread's node;
 * *buf writable) or SHOAL__PENDING (len must be 0, no data yet; *buf may be NULL), with
 * `refs` references. The caller has passed shoal__tls_check(). */
SHOAL__HIDDEN int shoal__obj_new(unsigned state, size_t len, int node, uint32_t refs,
                                 void **buf, shoal_ref *out);
/* Give a PENDING object its data: allocates len bytes on node and returns the buffer; the
 * object stays PENDING until shoal__obj_complete. The caller holds a reference on ref (an
 * object it made), so ref is not checked beyond its generation. Errors: SHOAL_ENOMEM,
 * SHOAL_EEXIST (data given already). */
SHOAL__HIDDEN int shoal__obj_fill(shoal_ref ref, size_t len, int node, void **buf);
/* PENDING/CREATED -> READY (code 0) or FAILED (code < 0, msg copied as the data; any
 * filled data is freed first). Wakes waiters and fires dependents. SHOAL_EEXIST if the
 * object is already READY/FAILED. */
SHOAL__HIDDEN int shoal__obj_complete(shoal_ref ref, int code, const char *msg);
/* shoal__obj_complete, then drop the caller's reference (a task's own on its result; not
 * checked beyond its generation, as for shoal__obj_fill). When that cannot free the object
 * and no dependent registered, one CAS does both. */
SHOAL__HIDDEN int shoal__obj_complete_drop(shoal_ref ref, int code, const char *msg);
/* On a worker: run other tasks until s (ref's slot, checked by the caller) is no longer
 * CREATED/PENDING, or nothing is left to run. Elsewhere: returns at once. A task's get of
 * a child it submitted, reading the word alone between tasks rather than rescanning. */
SHOAL__HIDDEN void shoal__help_while_pending(const shoal__slot *s, shoal_ref ref);
/* Wait until the object is no longer CREATED/PENDING. timeout_ns < 0 = for ever.
 * 0, SHOAL_ETIMEDOUT, SHOAL_ESTALE, SHOAL_EINVAL. Inside a worker, runs other tasks. */
SHOAL__HIDDEN int shoal__obj_wait(shoal_ref ref, int64_t timeout_ns);
static inline shoal__slot *shoal__tls_slots(void) { return (shoal__slot *)(void *)shoal__tls.slots; }
/* Data pointer of a slot in this process. */
static inline void *shoal__slot_data(const shoal__slot *s) { return shoal__rt->base + s->off; }
/* Whether a slot's offset and length lie inside the arena span. Every process can write
 * the table, so paths that dereference or free a slot's bytes check this first: a process
 * that wrote garbage into a slot costs a leak and a notice, never a crash. */
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
    *data = shoal__rt->base + off;
    *len = n;
    return off < span && n <= span - off;
}
SHOAL__HIDDEN void shoal__slot_corrupt(uint64_t idx) __attribute__((cold));
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
    return (int)shoal__off_node(shoal__rt, s->off);
}

/* ---- dependents (core/deps.c) ---------------------------------------------------------- */
/* A callback fired once when an object leaves CREATED/PENDING. `failed` is 0 if it became
 * READY, else its negative error code. Runs on the completing thread: keep it short (push a
 * task to a queue). */
typedef struct shoal__dep {
    struct shoal__dep *next;
    void (*fire)(struct shoal__dep *d, int failed);
} shoal__dep;
/* Register d on ref. Returns 0 if registered (fire will run later, exactly once), 1 if the
 * object is already complete (d not registered: the caller proceeds at once), or < 0.
 * The caller must hold a reference on ref until fire has run. */
SHOAL__HIDDEN int shoal__dep_add(shoal_ref ref, shoal__dep *d);
/* Called by shoal__obj_complete after the state change is visible, when the completing CAS
 * saw SHOAL__W_DEPS (a registration may have landed); also by whoever fails an object
 * outside it. */
SHOAL__HIDDEN void shoal__deps_fire(uint64_t idx, int failed);
/* The same for a runtime not published yet (the owner's service threads get it passed). */
SHOAL__HIDDEN void shoal__deps_fire_rt(shoal__rt_t *rt, uint64_t idx, int failed);

/* ---- waking and going down (core/wait.c) ---------------------------------------------- */
/* A CAS that saw SHOAL__W_WAITERS completed or freed slot idx: wake the threads waiting on
 * it (and those waiting on several objects). Call it after that CAS, which must have been
 * acq_rel (acquire: it sees the count of multi waiters, core/wait.c). */
SHOAL__HIDDEN void shoal__wake_slot(shoal__rt_t *rt, uint64_t idx);
/* Wake every waiter of the store (shutdown, the owner's death): they look again. */
SHOAL__HIDDEN void shoal__wake_waiters_all(shoal__rt_t *rt);
/* Take the runtime down: the first caller sets rt->down = code (< 0) and its message;
 * then every waiter is woken, and sees it. */
SHOAL__HIDDEN void shoal__rt_down(shoal__rt_t *rt, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), cold));
/* rt->down's code, with its message as this thread's last error. */
SHOAL__HIDDEN int shoal__down_err(shoal__rt_t *rt) __attribute__((cold));

/* ---- waiting with help (sched/ provides; core calls) ----------------------------------- */
/* If the calling thread is a worker, run one other runnable task and return 1; return 0 if
 * there is nothing to run (or not a worker). Set by sched at start, NULL otherwise. */
extern int (*shoal__help_hook)(void);
/* A worker inside a task, with nothing to help with, sleeps until *word (the completion
 * futex, shared) differs from seen, new work reaches its node, or ns pass. Returns false
 * if it did not sleep, so that the caller sleeps on word alone. Set by sched at start. */
extern bool (*shoal__nap_hook)(_Atomic uint32_t *word, uint32_t seen, uint64_t ns);

/* ---- monotonic time ------------------------------------------------------------------- */
SHOAL__HIDDEN uint64_t shoal__now_ns(void);

/* ---- spilling (io/spill.c provides; core calls) ----------------------------------------- */
/* A coarse clock for "went cold at": 2^20 TSC ticks (~0.3 ms), wrapping after weeks; only
 * differences are used. */
static inline uint32_t shoal__seal_era(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return (uint32_t)(__builtin_ia32_rdtsc() >> 20);
#else
    return (uint32_t)(shoal__now_ns() >> 18);
#endif
}
/* Word bits for an object being sealed READY: with spill_dir configured, UNREAD (a spill
 * candidate until its first get) and its seal era in `next`; nothing otherwise, one
 * predictable branch. The caller owns the slot (before its publishing release). */
static inline uint64_t shoal__seal_mark(const shoal__rt_t *rt, shoal__slot *s)
{
    if (likely(rt->cfg.spill_dir == NULL))
        return 0;
    atomic_store_explicit(&s->next, shoal__seal_era(), memory_order_relaxed);
    return SHOAL__W_UNREAD;
}
/* The store is full (alloc/arena.c): spill cold objects and allocate again. 0 with *off
 * set, < 0 with the message set, or 1 when spilling does not apply (not configured, the I/O
 * thread itself, or a retry inside this very call): the caller reports "store full". */
SHOAL__HIDDEN int shoal__spill_alloc(shoal__rt_t *rt, struct shoal__thr *t, size_t len,
                                     unsigned node, uint64_t *off);
/* The last reference to a SPILLED object went (obj_free): forget its bytes on disk. It reads
 * the slot's `next` (the extent, or a park id): call it before `next` serves as a link. */
SHOAL__HIDDEN void shoal__spill_drop(shoal__slot *s);
/* get found s SPILLING, SPILLED or RESTORING: make it resident (waits for a restore, at
 * most timeout_ns when another process runs it; a worker runs other tasks meanwhile).
 * 0 = look again; < 0 with the message set. */
SHOAL__HIDDEN int shoal__spill_touch(shoal_ref ref, shoal__slot *s, int64_t timeout_ns);
/* Fill the spill counters of *out (shoal_stats_get). */
SHOAL__HIDDEN void shoal__io_stats(shoal_stats *out);

#endif
