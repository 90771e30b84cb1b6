/* store.h - the object store's internal API, which sched/, io/, mproc/ and runtime/ build
 * on: the thread's view and its refresh, the call markers, objects, dependents, waiting,
 * and the calls the store makes up into the layers above it (hooks they fill). The
 * runtime descriptor itself is layout/rt.h. Internal: never installed; non-static names
 * use shoal__.
 */
#ifndef SHOAL_CORE_STORE_H
#define SHOAL_CORE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal.h"
#include "../layout/mpseg.h"
#include "../layout/rt.h"
#include "../os/clock.h"
#include "../os/errors.h"

/* Bytes and objects the store holds now (shoal_info_get's figures; core/stats.c). */
SHOAL__HIDDEN void shoal__store_usage(shoal__rt_t *rt, size_t *bytes_used, uint64_t *objects_live);

/* ---- thread cache (core/thread.c) ----------------------------------------------------- */
/* SHOAL_ENOTINIT with the message that says why no runtime is there and what to do. */
SHOAL__HIDDEN int shoal__not_running(void) __attribute__((cold));
/* Make this thread's view current: 0, or SHOAL_ENOTINIT (message set) if no runtime. */
SHOAL__HIDDEN int shoal__tls_refresh(void);
/* The view check for shoal's own threads (workers, I/O, service threads), which shutdown
 * stops before it frees anything. Public calls use shoal__enter instead. */
static inline int shoal__tls_check(void)
{
    if (likely(shoal__tls.epoch == shoal__epoch_load(memory_order_relaxed) && shoal__view_nslots() != 0))
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
 * mark is seen and waited for; so nothing a call may touch is freed under it. A thread's
 * record is registered (under the registry lock, with its mark even) before its first call
 * passes enter; its thread-exit hook unregisters it and makes its next call register again. */
struct shoal__call {
    _Atomic uint64_t mark;        /* odd while inside an outermost public call */
    uint32_t depth;               /* nesting depth (owner only) */
};

/* ---- the per-thread record (core/thread.c) ----------------------------------------------
 * Each thread that uses shoal has one record, in its TLS: its call marker, its lookup
 * counters (core/stats.h) and its allocation state (layout/thr.h, on the heap: reset at
 * each new runtime). One registry holds the records, under one lock, so that shutdown can
 * wait for calls, flush every thread's caches and fold every thread's counters; one
 * thread-exit hook takes a record out (its counters go to the process total, its caches
 * back to the store). The lock is never held while waiting for a call to end. */
enum shoal__cnt {
    SHOAL__CNT_GET_SLOW,     /* gets that entered the slow path */
    SHOAL__CNT_REFRESH,      /* successful refreshes of the thread's cached view */
    SHOAL__CNT_STALE,        /* refs found stale (their object was freed) */
    SHOAL__CNT_INVALID,      /* refs found invalid (null, forged, corrupt) */
    SHOAL__CNT_GET_WAIT,     /* gets that found their object unsealed and waited */
    SHOAL__CNT_WAIT_SLEEP,   /* futex sleeps of waiting threads */
    SHOAL__CNT_WORKER_WAKE,  /* futex wakes of a sleeping worker (sched/park.c) */
    SHOAL__CNT_N
};
struct shoal__rec {
    struct shoal__call call;
    bool registered;                    /* read and written by the owning thread only */
    _Atomic uint64_t cnt[SHOAL__CNT_N]; /* written by the owning thread only (stats.h) */
    struct shoal__tls *view;            /* &shoal__tls of the same thread: its fast_gets
                                           are summed, its view is emptied by a runtime
                                           going down (shoal__threads_flush_all) */
    struct shoal__thr *thr;             /* == shoal__tls.thr, for the registry's walks */
    struct shoal__rec *next, *prev;     /* the registry, under its lock */
    uint64_t qgen, qmark;               /* a quiescer's snapshot (registry lock held) */
};
extern __thread struct shoal__rec shoal__me __attribute__((tls_model("initial-exec")));
/* Put this thread's record in the registry (its first call, count or allocation). */
SHOAL__HIDDEN void shoal__rec_register(void) __attribute__((cold));
/* Add every registered thread's counters and those of exited threads into sum[0..N)
 * (stats.c), with shoal__tls.fast_gets of each into sum[SHOAL__CNT_N]. */
SHOAL__HIDDEN void shoal__recs_sum(uint64_t sum[SHOAL__CNT_N + 1]);
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
    if (shoal__me.call.depth++ != 0) {
        /* A nested call (a task's call inside a wait that runs it, a callback): the
         * outermost call on this thread passed every check below and has not left, so
         * its mark is odd and a shutdown waits for it before it frees anything; this
         * thread is registered and its view is filled. What can still change under it
         * is caught by one compare. A runtime going down shuts nest before it sets down
         * (shoal__rt_down), so nested calls answer the shutdown as outermost ones do
         * (a task that submits until a call fails still stops); every new epoch shuts it
         * too, which covers a fork() child (its epoch moves, and a later init in the
         * child opens a new epoch that this thread's stale view does not equal); a
         * thread's exit hook sets its view's epoch to 0, which nest never is, so a call
         * made from a later exit hook registers again. Any mismatch takes the full path. */
        if (likely(shoal__tls.epoch == shoal__nest_load()))
            return 0;
        return shoal__enter_slow();
    }
    atomic_store_explicit(&shoal__me.call.mark,
                          atomic_load_explicit(&shoal__me.call.mark, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* The mark before the checks below: a compiler barrier here, the hardware fence is
     * the quiescer's membarrier (see above). */
    atomic_signal_fence(memory_order_seq_cst);
    /* With the view current, shoal__rt is this view's runtime and stays allocated until
     * we leave (shutdown quiesces before it frees it). */
    if (likely(shoal__tls.epoch == shoal__epoch_load(memory_order_relaxed) && shoal__view_nslots() != 0 &&
               shoal__me.registered &&
               atomic_load_explicit(&atomic_load_explicit(&shoal__rt, memory_order_relaxed)->down,
                                    memory_order_relaxed) == 0))
        return 0;
    return shoal__enter_slow();
}

static inline void shoal__leave(void)
{
    if (likely(--shoal__me.call.depth == 0))
        /* release: everything this call did with the runtime happens before a quiescer's
         * acquire load that sees the mark move. */
        atomic_store_explicit(&shoal__me.call.mark,
                              atomic_load_explicit(&shoal__me.call.mark, memory_order_relaxed) + 1,
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
/* OR'd into shoal__obj_new's state: a task's result (SHOAL__AUX_TASK), which shoal_cancel
 * may act on. */
#define SHOAL__OBJ_TASK 0x100u
/* A task's result as shoal_submit makes it: shoal__obj_new(SHOAL__PENDING | SHOAL__OBJ_TASK,
 * 0, -1, 2, NULL, out) with its constants folded in (the submit path's). */
SHOAL__HIDDEN int shoal__obj_new_result(shoal_ref *out);
/* Give a PENDING object its data: allocates len bytes on node and returns the buffer; the
 * object stays PENDING until shoal__obj_complete. The caller holds a reference on ref (an
 * object it made), so ref is not checked beyond its generation. Errors: SHOAL_ENOMEM,
 * SHOAL_EEXIST (data given already). */
SHOAL__HIDDEN int shoal__obj_fill(shoal_ref ref, size_t len, int node, void **buf);
/* shoal__obj_fill for a task's result (node: the caller's): a result of at most
 * SHOAL__INL_MAX bytes in a store no other process maps is held in its slot (layout/table.h,
 * SHOAL__LEN_INL), and *buf points there. */
SHOAL__HIDDEN int shoal__obj_fill_result(shoal_ref ref, size_t len, void **buf);
/* PENDING/CREATED -> READY (code 0) or FAILED (code < 0, msg copied as the data; any
 * filled data is freed first). Wakes waiters and fires dependents. SHOAL_EEXIST if the
 * object is already READY/FAILED. */
SHOAL__HIDDEN int shoal__obj_complete(shoal_ref ref, int code, const char *msg);
/* shoal__obj_complete, then drop the caller's reference (a task's own on its result; not
 * checked beyond its generation, as for shoal__obj_fill). When that cannot free the object
 * and no dependent registered, one CAS does both. */
SHOAL__HIDDEN int shoal__obj_complete_drop(shoal_ref ref, int code, const char *msg);
/* shoal__obj_complete_drop for a task's own result: if shoal_cancel marked it while the
 * task ran (before this completion), it fails SHOAL_ECANCELED instead, with a message
 * naming the task (name, or NULL) and its result. */
SHOAL__HIDDEN int shoal__obj_complete_task(shoal_ref ref, int code, const char *msg,
                                           const char *name);
/* shoal_cancel's work on a task's result: 0 = its task had not started and never will
 * (the result failed SHOAL_ECANCELED), 1 = it is running (marked: shoal__obj_cancelled),
 * SHOAL_EEXIST (finished), SHOAL_ENOENT (not a task's result), SHOAL_EINVAL, SHOAL_ESTALE.
 * The caller holds a reference or not: a reference of its own is taken meanwhile. */
SHOAL__HIDDEN int shoal__obj_cancel(shoal_ref ref);
/* The worker about to run the task of result ref (which the task holds a reference on):
 * true if it may run (now marked started), false if shoal_cancel came first (it completes
 * the result; the task must not run or complete it). */
static inline bool shoal__obj_start(shoal_ref ref)
{
    shoal__slot *s = &shoal__rt->slots[shoal__id_idx(ref.id)];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    do {
        if (unlikely(w & SHOAL__W_CANCEL) || unlikely(!shoal__w_pending(w)))
            return false;
        /* relaxed: the mark orders nothing; the CAS only decides, against shoal_cancel's
         * CAS (core/object.c obj_cancel), which of the two acts on a task not yet begun. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_STARTED,
                                                    memory_order_relaxed, memory_order_relaxed));
    /* A task already depends on it: its completion exchanges the dependents entry, last
     * written by the registrant on another core. Start that miss now, while the task
     * runs. (A later registration is seen at completion as usual.) */
    if (w & SHOAL__W_DEPS)
        shoal__prefetchw(&shoal__rt->deps[shoal__id_idx(ref.id)]);
    return true;
}
/* 1 once shoal_cancel marked the result of a running task (its own result, held). */
static inline int shoal__obj_cancelled(shoal_ref ref)
{
    /* relaxed: a poll; the mark carries no data. */
    uint64_t w = atomic_load_explicit(&shoal__rt->slots[shoal__id_idx(ref.id)].word,
                                      memory_order_relaxed);
    return (w & SHOAL__W_CANCEL) && shoal__w_pending(w);
}
/* Whether word w is the object of id (a valid ID: its host field is 0) in state st, in one
 * compare: the generation is the high half of both, and the bits from the state up hold
 * only the state once the ID (whose index stops below them) is XORed out. Flags below the
 * state are not looked at. */
static inline bool shoal__w_is(uint64_t w, uint64_t id, unsigned st)
{
    return ((w ^ id) >> SHOAL__W_STATE_SHIFT) == st;
}
/* Whether word w is the object of id (a valid ID) in state st with none of the flags from
 * unread up (unread, waiters) set but those in `let`, in one compare: the inline get's
 * (shoal.h, SHOAL__HIT) for any state. Bits below unread (deps, cached, the count) are not
 * looked at: the ID's index reaches them. */
static inline bool shoal__w_hit(uint64_t w, uint64_t id, unsigned st, uint64_t let)
{
    uint64_t l = let >> SHOAL__HIT_SHIFT;
    return (((w ^ id) >> SHOAL__HIT_SHIFT) | l) ==
           (((uint64_t)st << (SHOAL__W_STATE_SHIFT - SHOAL__HIT_SHIFT)) | l);
}
/* shoal__obj_fill_result's in-slot case, inline: a result of 1..SHOAL__INL_MAX bytes of a
 * PENDING result with no data yet, in a store no other process maps, is held in its slot;
 * returns where to write it. NULL: any other case, nothing done (the caller calls
 * shoal__obj_fill_result, which takes or reports it). */
static inline void *shoal__obj_fill_small(shoal_ref ref, size_t len)
{
    shoal__slot *s = &shoal__rt->slots[shoal__id_idx(ref.id)];
    /* relaxed: the result is the task's own; nobody reads off or len before the completing
     * release (as obj_fill, core/object.c). */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (unlikely(len - 1 >= SHOAL__INL_MAX || shoal__holds != NULL ||
                 !shoal__w_is(w, ref.id, SHOAL__PENDING) || s->len != 0))
        return NULL;
    s->off = 0;
    s->len = SHOAL__LEN_INL | len;
    return &s->off;
}
/* shoal__obj_complete_task's common case, inline and in one CAS: a task that returned
 * (code 0) completes its own result and drops its reference on it, when nobody waits on the
 * result (no WAITERS to wake), no task depends on it (no DEPS to fire), shoal_cancel did not
 * mark it, another holder keeps it (refs > 1: the drop frees nothing), and the store is
 * neither shared with other processes (no ledger) nor spilling (no seal mark). false:
 * nothing was done (one of those, or the word moved under the CAS), and the caller calls
 * shoal__obj_complete_task, which sees the word afresh. */
static inline bool shoal__obj_complete_task_fast(shoal_ref ref)
{
    shoal__rt_t *rt = shoal__rt;
    if (unlikely(shoal__holds != NULL || rt->cfg.spill_dir != NULL))
        return false;
    shoal__slot *s = &rt->slots[shoal__id_idx(ref.id)];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    /* One compare for generation, state, waiters and cancel (unread's bit), then deps
     * (below them, as the ID's index reaches deps' bit) and the count. */
    if (unlikely(!shoal__w_hit(w, ref.id, SHOAL__PENDING, 0) || (w & SHOAL__W_DEPS) ||
                 shoal__w_refs(w) < 2))
        return false;
    uint64_t nw = ((w & ~(SHOAL__W_STATE_MASK | SHOAL__W_STARTED)) |
                   ((uint64_t)SHOAL__READY << SHOAL__W_STATE_SHIFT)) - 1;
    /* release: publishes the bytes and off/len to readers' acquire loads of the word and
     * orders the task's reads before its drop, as obj_complete's CAS (core/object.c); its
     * acquire half is for a waiter's count, and no waiter is registered here. */
    return atomic_compare_exchange_strong_explicit(&s->word, &w, nw, memory_order_release,
                                                   memory_order_relaxed);
}
/* On a worker: run other tasks until s (ref's slot, checked by the caller) is no longer
 * CREATED/PENDING, or nothing is left to run. Elsewhere: returns at once. A task's get of
 * a child it submitted, reading the word alone between tasks rather than rescanning. */
SHOAL__HIDDEN void shoal__help_while_pending(const shoal__slot *s, shoal_ref ref);
/* Wait until the object is no longer CREATED/PENDING. timeout_ns < 0 = for ever.
 * 0, SHOAL_ETIMEDOUT, SHOAL_ESTALE, SHOAL_EINVAL. Inside a worker, runs other tasks. */
SHOAL__HIDDEN int shoal__obj_wait(shoal_ref ref, int64_t timeout_ns);

/* shoal_get_timeout's wait and answer without the call marker, for calls inside one
 * (shoal_take): the same waiting, helping, spill reads and errors. counted: the caller
 * counted the wait in get_waits already (one get, one count). */
SHOAL__HIDDEN int shoal__get_wait(shoal_ref ref, int64_t timeout_ns, const void **data,
                                  size_t *len, bool counted);

SHOAL__HIDDEN void shoal__slot_corrupt(uint64_t idx) __attribute__((cold));

/* ---- dependents (core/deps.c) ---------------------------------------------------------- */
/* A callback fired once when an object leaves CREATED/PENDING. `failed` is 0 if it became
 * READY, else its negative error code. Runs on the completing thread: keep it short (push a
 * task to a queue). */
typedef struct shoal__dep shoal__dep;
typedef void (*shoal__dep_fn)(shoal__dep *d, int failed);
/* Whose record it is, which says what fires it. A record is 16 bytes so that a task's two
 * records and its two arguments share one cache line with nothing else (sched/task.h): in
 * place of a pointer to its function it names its kind, and the owner keeps 48 bits of
 * its own beside it. */
enum { SHOAL__DEP_TASK = 0, SHOAL__DEP_EXPORT = 1, SHOAL__DEP_KINDS };
struct shoal__dep {
    struct shoal__dep *next;
    uint32_t aux;               /* the owner's */
    uint16_t aux16;             /* the owner's */
    uint16_t kind;              /* SHOAL__DEP_* */
};
_Static_assert(sizeof(shoal__dep) == 16, "a dependency record is 16 bytes");
/* The function of each kind, set by its layer (sched, io) before it registers a record of
 * that kind (shoal__dep_kind_set) and never cleared: a record may fire after its layer
 * stopped (sched/task.h, pool). */
extern _Atomic(shoal__dep_fn) shoal__dep_fns[SHOAL__DEP_KINDS];
static inline void shoal__dep_kind_set(unsigned kind, shoal__dep_fn fn)
{
    /* relaxed: the registration that follows publishes it (its release push of the
     * record, the firer's acquire exchange of the list, or the foreign list's lock); a
     * thread that finds it set already writes nothing (no line for the firers to fetch
     * again). */
    if (atomic_load_explicit(&shoal__dep_fns[kind], memory_order_relaxed) != fn)
        atomic_store_explicit(&shoal__dep_fns[kind], fn, memory_order_relaxed);
}
/* Fire d, whose list was taken (acquire) from its object or from the foreign list. */
static inline void shoal__dep_fire_one(shoal__dep *d, int failed)
{
    /* relaxed: see shoal__dep_kind_set. */
    atomic_load_explicit(&shoal__dep_fns[d->kind], memory_order_relaxed)(d, failed);
}
/* Register d on ref. Returns 0 if registered (fire will run later, exactly once), 1 if the
 * object is already complete (d not registered: the caller proceeds at once), or < 0.
 * The caller must hold a reference on ref until fire has run. */
SHOAL__HIDDEN int shoal__dep_add(shoal_ref ref, shoal__dep *d);
/* shoal__dep_add for a caller whose reference on ref was taken through a checked lookup (a
 * task's argument): the slot is not looked up again, and a complete object answers 1 if it
 * is READY, 2 if it FAILED (the submit path needs to know, and has no second lookup). */
SHOAL__HIDDEN int shoal__dep_add_held(shoal_ref ref, shoal__dep *d);
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
/* The failure message of the failed object ref that found no room in the store (its slot
 * holds no bytes then), kept by this process (core/object.c): copied into buf (cap bytes),
 * true; false when this process kept none for it. */
SHOAL__HIDDEN bool shoal__fail_kept(shoal_ref ref, char *buf, size_t cap) __attribute__((cold));
/* In a fork() child (runtime.c's handler): free the entries the parent's threads held. */
SHOAL__HIDDEN void shoal__fail_kept_fork_child(void);
/* rt->down's code, with its message as this thread's last error. */
SHOAL__HIDDEN int shoal__down_err(shoal__rt_t *rt) __attribute__((cold));

/* ---- waiting with help (sched/ provides; core calls) ----------------------------------- */
/* If the calling thread is a worker, run one other runnable task and return 1; return 0 if
 * there is nothing to run (or not a worker). Set by sched at start, NULL otherwise. */
extern int (*shoal__help_hook)(void);
/* shoal__help_while_pending's loop, run by sched: on a worker, run other tasks until the
 * word of slot s no longer says PENDING/CREATED of generation gen, the runtime goes down,
 * or nothing is left to run. Set by sched at start, NULL otherwise. */
extern void (*shoal__help_while_hook)(const shoal__slot *s, uint64_t gen);
/* A worker inside a task, with nothing to help with, sleeps until *word (the completion
 * futex, shared) differs from seen, new work reaches its node, or ns pass. Returns false
 * if it did not sleep, so that the caller sleeps on word alone. Set by sched at start. */
extern bool (*shoal__nap_hook)(_Atomic uint32_t *word, uint32_t seen, uint64_t ns);
/* A thread that is not a worker, about to wait for ref with no time limit: if ref is the
 * result of a task it submitted and no worker has taken it yet, run that task on this
 * thread and return 1 (the submitter would only wait for it; no worker needs waking);
 * else 0. Set by sched at start. */
extern int (*shoal__run_own_hook)(shoal_ref ref);

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

/* ---- calls up into the layers above the store (they provide; core calls) ---------------
 * The store reaches io/ (spilled objects) and mproc/ (objects of other processes) only
 * through these pointers, never by name, as it reaches sched/ through the hooks above.
 * runtime/ fills them once, before its first runtime is published (the epoch's release
 * orders them for every thread that sees a runtime), and never clears them: each function
 * checks for itself whether it applies, as it did when the store called it by name. */
struct shoal__upcalls {
    /* io/spill.c, shoal__spill_touch: get found s SPILLING, SPILLED or RESTORING. */
    int  (*spill_touch)(shoal_ref ref, shoal__slot *s, int64_t timeout_ns);
    /* io/spill.c, shoal__spill_drop: the last reference to a SPILLED object (of generation
     * gen) went. */
    void (*spill_drop)(shoal__slot *s, uint64_t gen);
    /* io/spill.c, shoal__io_stats: the spill counters of shoal_stats_get. */
    void (*io_stats)(shoal_stats *out);
    /* mproc/foreign_deps.c, shoal__dep_add_foreign: shoal__dep_add on another process's
     * object (same contract). */
    int  (*dep_add_foreign)(shoal_ref ref, shoal__slot *s, shoal__dep *d);
    /* mproc/foreign_deps.c, shoal__notify_foreign: an object someone waits on completed or
     * failed; every process with foreign dependents may be waiting on it. */
    void (*notify_foreign)(shoal__rt_t *rt);
    /* mproc/remote_free.c, shoal__rfree_push: slot idx's bytes belong to process proc (its
     * word is FREE and marked FREEING by us). */
    void (*rfree_push)(shoal__rt_t *rt, uint32_t idx, unsigned proc);
    /* mproc/remote_free.c, shoal__own_release: the published owner's object in slot idx is
     * gone (its generation: gen); free its bytes from the owner's records. */
    bool (*own_release)(shoal__rt_t *rt, uint32_t idx, uint64_t gen);
    /* Refs in flight (shoal_transfer): a private store's owner expires them on its I/O
     * thread, which mproc/ wakes and io/ calls through these (siblings meet here).
     * io/ring.c, shoal__io_kick: wake the I/O thread to look at its deadlines again. */
    void (*io_kick)(void);
    /* mproc/inflight.c, shoal__xfer_expire (t NULL) and shoal__xfer_due. */
    uint64_t (*xfer_expire)(shoal__rt_t *rt, bool sweep, struct shoal__thr *t);
    uint64_t (*xfer_due)(void);
    /* io/file.c, shoal__ingest_take: a thread that is not a worker is about to wait with no
     * time limit for ref. If ref is a shoal_put_file that the I/O thread has not started,
     * run it on this thread (it reads the file as a pread loop would, where waiting would
     * cost two wake-ups) and return 1; else 0. */
    int (*ingest_take)(shoal_ref ref);
};
SHOAL__HIDDEN extern struct shoal__upcalls shoal__up;

#endif
