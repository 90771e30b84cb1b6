/* actor.c - actors: serial executors with state (Ray's actors, on one host). Each actor is a
 * mailbox of calls (tasks with SHOAL__TF_ACTOR) and a turn: the one call allowed to run. The
 * call holding the turn runs like any task on any worker; when it ends, its worker passes the
 * turn to the next call, running a bounded batch of them in a row (Seastar's and CAF's
 * design), so calls never run two at once and run in the order they entered the mailbox.
 * When the mailbox runs dry, that worker keeps the turn for a few microseconds more and
 * polls for the next call (await_call), so that a submitter calling in a loop hands its
 * calls straight to it, rather than each call going through the global queue to whichever
 * worker notices it (and, with none spinning, a futex wake).
 *
 * The mailbox is one word, `head`, which also says who holds the turn (CAF's LIFO inbox):
 *   IDLE     empty and nobody holds the turn: the submitter whose push replaces IDLE takes it;
 *   ACTIVE   empty, the turn is held (a call runs, waits for its arguments, or is queued);
 *   CLOSED   destroyed: pushes fail, the turn's holder finishes the actor (finalize);
 *   else     the newest call of a chain linked newest-first through link.next (the turn is
 *            held); the holder takes the whole chain with one CAS and reverses it into its
 *            private FIFO, `cache`.
 * Submission order: the order of the pushes' successful CASes (one thread's calls keep their
 * program order; concurrent submitters interleave in the order their CASes landed).
 *
 * A call's `pending` counts its REF arguments not complete yet plus one for "not at the head
 * yet": the holder hands a call the turn by storing it in `turn` and dropping that count;
 * whoever drops the last count (the holder, or the last argument to complete) schedules it,
 * so a call waiting for its arguments holds the turn without holding a worker, and later calls
 * wait behind it (Ray keeps submission order the same way). The worker that runs it takes
 * `turn` back with a CAS; shoal_actor_destroy competes for the same CAS to cancel a call that
 * has the turn but has not started, and whoever wins owns the actor from then on.
 *
 * Synchronisation:
 *   head        pushes: acq_rel CAS (release publishes the call's block to the holder; acquire,
 *               when replacing IDLE, pairs with the last holder's release of the turn, so the
 *               next call sees what the previous ones did to the state); the holder's takes and
 *               its IDLE: acq_rel CAS. Destroy's exchange to CLOSED and the holder's loads of it
 *               are seq_cst: the Dekker pair with `turn` below.
 *   turn        seq_cst store (holder) and CASes (runner, destroy): a runner that won the CAS
 *               then loads head (seq_cst); destroy exchanged head and then CASes turn; so
 *               either the runner sees CLOSED (and cancels), or destroy's CAS fails and the
 *               call counts as running before the destroy.
 *   word        generation << 32 | state << 30 | users: users counts the submitters and
 *               destroyers inside (an acq_rel add checks the handle; the slot is not put back
 *               on the free list while one is inside, so a late push can only meet CLOSED,
 *               never another actor's mailbox).
 *   cache, turn_result  the turn holder's own (passed on with the turn).
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../os/clock.h"
#include "sched_int.h"

#define CHUNK_BITS 10u
#define CHUNK      (1u << CHUNK_BITS)
#define MAX_CHUNKS 64u                        /* 65536 actors alive at once */
#define NO_SLOT    UINT32_MAX
#define BATCH      64u                        /* calls a worker runs in a row */
/* How long the worker whose actor's mailbox just ran dry waits for the next call before it
 * gives the turn up (await_call). It covers a submitter's gap between two calls (a get of
 * the last result, its release and the next submit: about a microsecond when the submitter
 * has a core) with room for a slow pause (~60 ns in some virtual machines). Longer buys
 * little: a submitter that takes more than this is most likely off its core, possibly this
 * one, which the wait then keeps from it. It is what an actor called now and then costs its
 * worker per call, and the point where an idle worker's spin starts yielding (park.c). */
#define AWAIT_NS   5000u
#define NAME_COPY  31u

enum { IDLE = 0, ACTIVE = 1, CLOSED = 2 };    /* head's values below any pointer */
enum { A_FREE = 0, A_LIVE = 1, A_DYING = 2, A_RETIRED = 3 };   /* RETIRED: free, not listed */

#define USERS_MASK ((UINT64_C(1) << 30) - 1)
static inline uint64_t a_gen(uint64_t w)      { return w >> 32; }
static inline unsigned a_state(uint64_t w)    { return (unsigned)((w >> 30) & 3); }
static inline uint64_t a_users(uint64_t w)    { return w & USERS_MASK; }
static inline uint64_t a_make(uint64_t gen, unsigned st, uint64_t users)
{
    return gen << 32 | (uint64_t)st << 30 | users;
}

struct shoal__actor {
    /* Submitters' line: the mailbox and the handle check. */
    _Alignas(SHOAL__CACHELINE) _Atomic uintptr_t head;
    _Atomic int sub_cpu;                     /* the processor of the latest submit (a hint) */
    _Atomic uint64_t word;
    void *state;                             /* written at create, before the LIVE release */
    void (*destroy)(void *state);
    int node;
    char name[NAME_COPY + 1];
    /* The turn holder's line. */
    _Alignas(SHOAL__CACHELINE) _Atomic(struct shoal_task *) turn;
    struct shoal_task *cache;
    uint64_t turn_result;
    uint32_t next_free;                      /* free list, under table_mu */
};

static struct shoal__actor *_Atomic chunks[MAX_CHUNKS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t free_head = NO_SLOT;         /* under table_mu */
static uint32_t nslots;                      /* slots made so far; under table_mu */

static inline struct shoal__actor *slot_at(uint32_t idx)
{
    /* acquire: pairs with the release that published the chunk (new_slot). */
    struct shoal__actor *c = atomic_load_explicit(&chunks[idx >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[idx & (CHUNK - 1)] : NULL;
}

static inline uint32_t idx_of(const struct shoal__actor *a)
{
    for (uint32_t k = 0; k < MAX_CHUNKS; k++) {
        struct shoal__actor *c = atomic_load_explicit(&chunks[k], memory_order_relaxed);
        if (c && a >= c && a < c + CHUNK)
            return k << CHUNK_BITS | (uint32_t)(a - c);
    }
    return NO_SLOT;
}

void *shoal__actor_state(const struct shoal__actor *a) { return a->state; }
int shoal__actor_node(const struct shoal__actor *a) { return a->node; }

static inline const char *label(const struct shoal__actor *a) { return a->name[0] ? a->name : "(unnamed)"; }

/* ---- the slot's users and its return to the free list ---------------------------------- */

static void list_free(struct shoal__actor *a)
{
    pthread_mutex_lock(&table_mu);
    a->next_free = free_head;
    free_head = idx_of(a);
    pthread_mutex_unlock(&table_mu);
}

/* RETIRED with no user inside: exactly one thread wins this CAS and lists the slot. */
static void try_list(struct shoal__actor *a, uint64_t w)
{
    if (a_state(w) != A_RETIRED || a_users(w) != 0)
        return;
    /* relaxed: the free list's mutex orders the slot's reuse. */
    if (atomic_compare_exchange_strong_explicit(&a->word, &w, a_make(a_gen(w), A_FREE, 0),
                                                memory_order_relaxed, memory_order_relaxed))
        list_free(a);
}

static inline void leave(struct shoal__actor *a)
{
    /* acq_rel: release makes our uses of the slot happen before a later thread lists it
     * for reuse (that thread's RMW on word acquires); acquire, for when we list it. */
    uint64_t w = atomic_fetch_sub_explicit(&a->word, 1, memory_order_acq_rel) - 1;
    if (unlikely(a_state(w) == A_RETIRED && a_users(w) == 0))
        try_list(a, w);
}

SHOAL__COLD static int bad_handle(const char *who, uint64_t id, struct shoal__actor *a, uint64_t w)
{
    if (id == 0)
        return shoal__err(SHOAL_EINVAL, "%s: null actor handle (shoal_actor_create never "
                                        "returns 0: was the actor created?)", who);
    if (!a || shoal__id_gen(id) == 0 || shoal__gen_after(shoal__id_gen(id), a_gen(w)) ||
        (a_gen(w) == shoal__id_gen(id) && a_state(w) == A_FREE))
        return shoal__err(SHOAL_EINVAL, "%s: invalid actor handle 0x%016llx (forged or "
                                        "corrupt: not from shoal_actor_create)", who,
                          (unsigned long long)id);
    return shoal__err(SHOAL_ESTALE, "%s: actor 0x%016llx was destroyed (shoal_actor_destroy, "
                                    "or a shoal_shutdown since): create a new one", who,
                      (unsigned long long)id);
}

/* Check handle id and count the caller in (leave() counts it out): NULL with the error. */
static inline struct shoal__actor *enter(const char *who, uint64_t id, int *err)
{
    struct shoal__actor *a = NULL;
    uint64_t w = 0;
    if (likely(id != 0 && shoal__id_host(id) == 0 && shoal__id_idx(id) < MAX_CHUNKS * CHUNK)) {
        a = slot_at((uint32_t)shoal__id_idx(id));
        if (likely(a)) {
            /* acq_rel: acquire pairs with create's release of LIVE (the actor's fields);
             * release: see leave. */
            w = atomic_fetch_add_explicit(&a->word, 1, memory_order_acq_rel);
            if (likely(a_gen(w) == shoal__id_gen(id) && a_state(w) == A_LIVE))
                return a;
            leave(a);
        }
    }
    *err = bad_handle(who, id, a, w);
    return NULL;
}

/* ---- the mailbox ---------------------------------------------------------------------- */


/* What await_call polls besides head: stopping, or work w would run. Hints, as an idle
 * worker's spin polls them (park.c): the injection queues' cells rather than
 * the producers' claim counter, which a poll would pull away from a thread submitting plain
 * tasks before each of its claims (inject.h); the deques of w's node, own included, which
 * w would steal from. Another node's work is left to its own workers for these microseconds. */
static inline bool other_work(struct shoal__sched *s, struct shoal__worker *w)
{
    struct shoal__node *n = &s->n[w->node];
    if (atomic_load_explicit(&s->stop, memory_order_relaxed) || shoal__inject_ready(&n->q) ||
        shoal__inject_ready(&s->global))
        return true;
    for (unsigned i = 0; i < n->nworkers; i++)
        if (shoal__deque_has_work(&s->w[n->members[i]].dq, false))
            return true;
    return false;
}

/* The turn holder on worker w found the mailbox empty (head ACTIVE): rather than give the
 * turn up at once, poll head for up to AWAIT_NS. A call pushed meanwhile is then taken by
 * this worker directly: its submitter finds the turn held and queues nothing, wakes nobody
 * (a submit to an IDLE actor goes through the global queue and a worker that notices it).
 * The wait ends early when other work is visible to w (the actor must not hold a worker
 * that has tasks to run) or the scheduler stops. Returns head as last seen. */
static uintptr_t await_call(struct shoal__actor *a, struct shoal__worker *w)
{
    struct shoal__sched *s = w->s;
    /* The latest submitter ran on this worker's processor: it cannot submit while we poll
     * (on a machine with more runnable threads than free cores the kernel often puts the
     * two together). relaxed: a hint, like the processor number itself. */
    if (atomic_load_explicit(&a->sub_cpu, memory_order_relaxed) == sched_getcpu())
        return ACTIVE;
    uint64_t t0 = shoal__now_ns();
    uintptr_t h;
    for (unsigned i = 1;; i++) {
        shoal__cpu_relax();
        /* seq_cst: a holder's load of head, as in next_call (CLOSED); the CAS that takes
         * a chain acquires the calls' blocks. */
        h = atomic_load_explicit(&a->head, memory_order_seq_cst);
        if (h != ACTIVE)
            return h;
        if ((i & 3) == 0 && (other_work(s, w) || shoal__now_ns() - t0 > AWAIT_NS))
            return h;
    }
}

/* The turn holder's next call (its FIFO first, then everything pushed since), or NULL with
 * the turn given up, or NULL with *closed set: the actor was destroyed, finish it. w: the
 * holder's worker, which may wait a little for a call (await_call), or NULL. */
static struct shoal_task *next_call(struct shoal__actor *a, struct shoal__worker *w,
                                    bool *closed)
{
    *closed = false;
    /* seq_cst: see the synchronisation note (destroy's exchange). */
    uintptr_t h = atomic_load_explicit(&a->head, memory_order_seq_cst);
    if (unlikely(h == CLOSED)) {
        *closed = true;
        return NULL;
    }
    struct shoal_task *t = a->cache;
    if (t) {
        a->cache = (struct shoal_task *)atomic_load_explicit(&t->link.next, memory_order_relaxed);
        return t;
    }
    for (;;) {
        if (h == CLOSED) {
            *closed = true;
            return NULL;
        }
        if (h == ACTIVE && w) {
            h = await_call(a, w);
            w = NULL;   /* once per empty mailbox */
            continue;
        }
        if (h == ACTIVE) {
            /* acq_rel: release hands what the calls did to the state to the next holder
             * (its acquire CAS on IDLE); acquire as below when a push got in first. */
            if (atomic_compare_exchange_weak_explicit(&a->head, &h, IDLE, memory_order_acq_rel,
                                                      memory_order_acquire))
                return NULL;
            continue;
        }
        /* acq_rel: acquire pairs with the pushes' release (the blocks); the CAS heads the
         * release sequence of the next push. */
        if (atomic_compare_exchange_weak_explicit(&a->head, &h, ACTIVE, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    /* Reverse the chain (newest first) into submission order. */
    struct shoal_task *n = (struct shoal_task *)h, *fifo = NULL;
    while (n) {
        struct shoal_task *older =
            (struct shoal_task *)atomic_load_explicit(&n->link.next, memory_order_relaxed);
        atomic_store_explicit(&n->link.next, (shoal__qlink *)fifo, memory_order_relaxed);
        fifo = n;
        n = older;
    }
    a->cache = (struct shoal_task *)atomic_load_explicit(&fifo->link.next, memory_order_relaxed);
    return fifo;
}

/* A call that never runs because its actor was destroyed (t is ours: taken from the mailbox
 * or holding the turn, and not started): fail its result. */
SHOAL__COLD static void fail_call(struct shoal__actor *a, struct shoal_task *t)
{
    if (shoal__obj_start(t->result)) {   /* false: shoal_cancel failed the result already */
        char msg[200];
        snprintf(msg, sizeof msg, "actor call%s%s (result 0x%016llx) canceled: its actor %s was "
                 "destroyed (shoal_actor_destroy or shoal_shutdown) before the call ran",
                 t->name ? " " : "", t->name ? t->name : "", (unsigned long long)t->result.id,
                 label(a));
        shoal__obj_complete(t->result, SHOAL_ECANCELED, msg);
    }
}

/* fail_call for a call that still has its "at the head" count: drop it too; the block goes
 * when its REF arguments are done (the last one schedules it, and it sees ORPHAN). */
SHOAL__COLD static void orphan(struct shoal__actor *a, struct shoal_task *t)
{
    fail_call(a, t);
    t->flags |= SHOAL__TF_ORPHAN;
    /* acq_rel: as dep_fire's (submit.c): the last decrementer sees ORPHAN and frees. */
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) == 1)
        shoal__task_discard(t);
}

/* The turn holder of a destroyed (CLOSED) actor: fail the calls it still holds, call
 * destroy(state), retire the slot (its generation moves on: the handle answers ESTALE). */
SHOAL__COLD static void finalize(struct shoal__actor *a)
{
    struct shoal_task *t = a->cache;
    a->cache = NULL;
    while (t) {
        struct shoal_task *n =
            (struct shoal_task *)atomic_load_explicit(&t->link.next, memory_order_relaxed);
        orphan(a, t);
        t = n;
    }
    if (a->destroy)
        a->destroy(a->state);
    uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed), nw;
    do
        nw = a_make(shoal__gen_next(a_gen(w)), A_RETIRED, a_users(w));
    while (!atomic_compare_exchange_weak_explicit(&a->word, &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed));
    try_list(a, nw);
}

static inline bool cancelled_early(struct shoal_task *t)
{
    /* relaxed: a hint; obj_start decides for real when the call comes to run. The call
     * holds its result, so the slot is its own. Complete before it started: shoal_cancel
     * failed it (the completion clears the mark, so look at the state too). */
    uint64_t w = atomic_load_explicit(&shoal__rt->slots[shoal__id_idx(t->result.id)].word,
                                      memory_order_relaxed);
    return !shoal__w_pending(w) || ((w & SHOAL__W_CANCEL) && !(w & SHOAL__W_STARTED));
}

/* The turn holder hands the turn to the next call. Returns that call when it is ready and
 * may run inline on worker w (NULL: never inline, nor wait for a call), else NULL (it was
 * scheduled, it waits for its arguments, the mailbox was empty, or the actor was finished). */
static struct shoal_task *pass_turn(struct shoal__actor *a, struct shoal__worker *w)
{
    for (;;) {
        bool closed;
        struct shoal_task *t = next_call(a, w, &closed);
        if (unlikely(closed)) {
            finalize(a);
            return NULL;
        }
        if (!t)
            return NULL;
        if (unlikely(cancelled_early(t))) {   /* shoal_cancel'ed while queued: skip it */
            orphan(a, t);
            continue;
        }
        a->turn_result = t->result.id;
        /* seq_cst: see the synchronisation note. */
        atomic_store_explicit(&a->turn, t, memory_order_seq_cst);
        /* acq_rel: as dep_fire's; whoever reaches zero schedules the call. */
        if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) != 1)
            return NULL;   /* its last REF argument to complete schedules it */
        if (!w || ((t->flags & SHOAL__TF_BOUND) && t->node != (int)w->node)) {
            shoal__task_ready(shoal__sched_of(), t);
            return NULL;
        }
        struct shoal_task *exp = t;
        if (!atomic_compare_exchange_strong_explicit(&a->turn, &exp, NULL, memory_order_seq_cst,
                                                     memory_order_seq_cst)) {
            shoal__task_discard(t);   /* shoal_actor_destroy took the turn and fails it */
            return NULL;
        }
        return t;
    }
}

void shoal__actor_enqueue(struct shoal__actor *a, struct shoal_task *t)
{
    /* relaxed: a hint for await_call, on the line the push below writes anyway. */
    atomic_store_explicit(&a->sub_cpu, sched_getcpu(), memory_order_relaxed);
    uintptr_t h = atomic_load_explicit(&a->head, memory_order_relaxed);
    for (;;) {
        if (unlikely(h == CLOSED)) {   /* destroyed while we submitted: the call fails */
            orphan(a, t);
            return;
        }
        atomic_store_explicit(&t->link.next, h > CLOSED ? (shoal__qlink *)h : NULL,
                              memory_order_relaxed);
        /* acq_rel: see the synchronisation note. */
        if (atomic_compare_exchange_weak_explicit(&a->head, &h, (uintptr_t)t,
                                                  memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    if (h == IDLE)   /* the turn is ours: hand it to the oldest call (ours) */
        pass_turn(a, NULL);
}

void shoal__actor_run(struct shoal_task *t, struct shoal__worker *w)
{
    if (unlikely(t->flags & SHOAL__TF_ORPHAN)) {
        shoal__task_discard(t);
        return;
    }
    struct shoal__actor *a = shoal__task_tactor(t)->actor;
    struct shoal_task *exp = t;
    /* seq_cst: see the synchronisation note. A failed CAS: destroy took the turn from this
     * call (and fails its result); t must neither run nor touch the actor. */
    if (unlikely(!atomic_compare_exchange_strong_explicit(&a->turn, &exp, NULL,
                                                          memory_order_seq_cst,
                                                          memory_order_seq_cst))) {
        shoal__task_discard(t);
        return;
    }
    struct shoal__sched *s = w->s;
    for (unsigned n = 1;; n++) {
        if (unlikely(atomic_load_explicit(&a->head, memory_order_seq_cst) == CLOSED)) {
            fail_call(a, t);   /* its "at the head" count is dropped already */
            shoal__task_discard(t);
            finalize(a);
            return;
        }
        shoal__task_run_one(t, w);
        /* Stopping: what is left is canceled by shutdown (shoal__actors_stop). */
        if (unlikely(atomic_load_explicit(&s->stop, memory_order_relaxed)))
            return;
        t = pass_turn(a, n < BATCH ? w : NULL);
        if (!t)
            return;
    }
}

/* ---- the API ---------------------------------------------------------------------------- */

SHOAL__COLD static int no_workers(const char *who)
{
    return shoal__err(SHOAL_EPERM, "%s: this process runs no workers (an attached client): "
                                   "actors live in the process that called shoal_init", who);
}

static struct shoal__actor *new_slot(void)
{
    struct shoal__actor *a = NULL;
    pthread_mutex_lock(&table_mu);
    if (free_head != NO_SLOT) {
        a = slot_at(free_head);
        free_head = a->next_free;
    } else if (nslots < MAX_CHUNKS * CHUNK) {
        uint32_t k = nslots >> CHUNK_BITS;
        struct shoal__actor *c = atomic_load_explicit(&chunks[k], memory_order_relaxed);
        if (!c) {
            c = aligned_alloc(SHOAL__CACHELINE, CHUNK * sizeof *c);
            if (c) {
                memset(c, 0, CHUNK * sizeof *c);
                for (uint32_t i = 0; i < CHUNK; i++)
                    atomic_init(&c[i].word, a_make(1, A_FREE, 0));
                /* release: pairs with slot_at's acquire. */
                atomic_store_explicit(&chunks[k], c, memory_order_release);
            }
        }
        if (c)
            a = &c[nslots++ & (CHUNK - 1)];
    }
    pthread_mutex_unlock(&table_mu);
    return a;
}

static int actor_create(void *state, void (*destroy)(void *), const shoal_task_opts *opts,
                        shoal_actor *out)
{
    static const char who[] = "shoal_actor_create";
    if (unlikely(!shoal__rt->sched))
        return no_workers(who);
    if (unlikely(!out))
        return shoal__err(SHOAL_EINVAL, "%s: out is NULL", who);
    int node, rc = shoal__task_opts_node(who, opts, &node);
    if (unlikely(rc))
        return rc;
    if (unlikely(opts && (opts->ctx || opts->ctx_done)))
        return shoal__err(SHOAL_EINVAL, "%s: opts.ctx and opts.ctx_done belong to calls "
                                        "(shoal_actor_submit); the actor's state is the state "
                                        "argument", who);
    struct shoal__actor *a = new_slot();
    if (unlikely(!a))
        return shoal__err(SHOAL_ENOMEM, "%s: %u actors are alive, the most there can be (or "
                                        "no memory for more): destroy some", who,
                          MAX_CHUNKS * CHUNK);
    a->state = state;
    a->destroy = destroy;
    a->node = node;   /* as asked: a task bound to a node of a one-node machine runs anywhere */
    a->name[0] = 0;
    if (opts && opts->name)
        snprintf(a->name, sizeof a->name, "%s", opts->name);
    a->cache = NULL;
    a->turn_result = 0;
    atomic_store_explicit(&a->turn, NULL, memory_order_relaxed);
    atomic_store_explicit(&a->head, IDLE, memory_order_relaxed);
    atomic_store_explicit(&a->sub_cpu, -1, memory_order_relaxed);
    /* release: publishes the fields above to enter()'s acquire. Users that counted
     * themselves in on the free slot (stale handles) keep their counts. */
    uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&a->word, &w,
                                                  a_make(a_gen(w), A_LIVE, a_users(w)),
                                                  memory_order_release, memory_order_relaxed))
        ;
    out->id = shoal__id_make(idx_of(a), a_gen(w));
    return 0;
}

SHOAL_API int shoal_actor_create(void *state, void (*destroy)(void *state),
                                 const shoal_task_opts *opts, shoal_actor *out)
{
    SHOAL__CALL(actor_create(state, destroy, opts, out));
}

/* The actor of handle h, counted in (leave() counts it out), or NULL with *err set. */
static inline struct shoal__actor *open_actor(const char *who, shoal_actor h, int *err)
{
    if (unlikely(!shoal__rt->sched)) {
        *err = no_workers(who);
        return NULL;
    }
    return enter(who, h.id, err);
}

static int actor_submit(shoal_actor h, shoal_fn fn, const shoal_arg args[], size_t nargs,
                        const shoal_task_opts *opts, shoal_ref *out)
{
    static const char who[] = "shoal_actor_submit";
    int err;
    struct shoal__actor *a = open_actor(who, h, &err);
    if (unlikely(!a))
        return err;
    int rc = shoal__submit(who, a, fn, args, nargs, opts, out);
    leave(a);
    return rc;
}

SHOAL_API int shoal_actor_submit(shoal_actor a, shoal_fn fn, const shoal_arg args[],
                                 size_t nargs, const shoal_task_opts *opts, shoal_ref *out)
{
    SHOAL__CALL(actor_submit(a, fn, args, nargs, opts, out));
}

/* destroy won the turn from a call that had it but had not started (queued on a worker or
 * waiting for its arguments): fail its result (the call discards itself when it comes to
 * run). The result is reached by its ID: the block may be gone already. */
SHOAL__COLD static void fail_turn(struct shoal__actor *a)
{
    shoal_ref r = { a->turn_result };
    if (shoal__retain(r) != 0)
        return;   /* freed: nobody is left to tell */
    if (shoal__obj_start(r)) {
        char msg[200];
        snprintf(msg, sizeof msg, "actor call (result 0x%016llx) canceled: its actor %s was "
                 "destroyed (shoal_actor_destroy) before the call ran",
                 (unsigned long long)r.id, label(a));
        shoal__obj_complete(r, SHOAL_ECANCELED, msg);
    }
    shoal__release(r);
}

static int actor_destroy(shoal_actor h)
{
    static const char who[] = "shoal_actor_destroy";
    int err;
    struct shoal__actor *a = open_actor(who, h, &err);
    if (unlikely(!a))
        return err;
    uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed);
    do {
        if (a_state(w) != A_LIVE) {   /* a concurrent destroy got there first */
            leave(a);
            return bad_handle(who, h.id, a, a_make(shoal__gen_next(a_gen(w)), A_DYING, 0));
        }
        /* relaxed: DYING only turns submitters away; CLOSED below is what they act on. */
    } while (!atomic_compare_exchange_weak_explicit(&a->word, &w,
                                                    a_make(a_gen(w), A_DYING, a_users(w)),
                                                    memory_order_relaxed, memory_order_relaxed));
    /* seq_cst: see the synchronisation note. The chain we take is ours to fail. */
    uintptr_t old = atomic_exchange_explicit(&a->head, CLOSED, memory_order_seq_cst);
    if (old > CLOSED) {
        struct shoal_task *t = (struct shoal_task *)old, *fifo = NULL;
        while (t) {   /* oldest first, so that results fail in submission order */
            struct shoal_task *older =
                (struct shoal_task *)atomic_load_explicit(&t->link.next, memory_order_relaxed);
            atomic_store_explicit(&t->link.next, (shoal__qlink *)fifo, memory_order_relaxed);
            fifo = t;
            t = older;
        }
        while (fifo) {
            struct shoal_task *n =
                (struct shoal_task *)atomic_load_explicit(&fifo->link.next, memory_order_relaxed);
            orphan(a, fifo);
            fifo = n;
        }
    }
    if (old == IDLE) {
        finalize(a);   /* nobody held the turn: it is ours */
    } else {
        struct shoal_task *t = atomic_load_explicit(&a->turn, memory_order_seq_cst);
        /* seq_cst: see the synchronisation note. Won: the call holding the turn has not
         * started; the actor is ours to finish. Lost (or no such call): a call runs, or its
         * worker is between two calls; it finishes the actor when it sees CLOSED. */
        if (t && atomic_compare_exchange_strong_explicit(&a->turn, &t, NULL, memory_order_seq_cst,
                                                         memory_order_seq_cst)) {
            fail_turn(a);
            finalize(a);
        }
    }
    leave(a);
    return 0;
}

SHOAL_API int shoal_actor_destroy(shoal_actor a)
{
    SHOAL__CALL(actor_destroy(a));
}

/* ---- shutdown and fork -------------------------------------------------------------------- */

void shoal__actors_stop(void)
{
    /* The workers are joined and every call is canceled: nothing else touches the actors. */
    pthread_mutex_lock(&table_mu);
    free_head = NO_SLOT;
    for (uint32_t i = nslots; i-- > 0;) {
        struct shoal__actor *a = slot_at(i);
        uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed);
        if (a_state(w) == A_LIVE || a_state(w) == A_DYING) {
            if (a->destroy)
                a->destroy(a->state);
            w = a_make(shoal__gen_next(a_gen(w)), A_FREE, 0);
        } else {
            w = a_make(a_gen(w), A_FREE, 0);
        }
        atomic_store_explicit(&a->word, w, memory_order_relaxed);
        atomic_store_explicit(&a->head, CLOSED, memory_order_relaxed);
        atomic_store_explicit(&a->turn, NULL, memory_order_relaxed);
        a->cache = NULL;
        a->next_free = free_head;
        free_head = i;
    }
    pthread_mutex_unlock(&table_mu);
}

void shoal__actors_forget(void)
{
    /* fork() child: the parent's actors (and their state) are not ours; nobody else runs
     * here, and the lock may have been held by a parent thread. */
    pthread_mutex_init(&table_mu, NULL);
    free_head = NO_SLOT;
    for (uint32_t i = nslots; i-- > 0;) {
        struct shoal__actor *a = slot_at(i);
        uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed);
        atomic_store_explicit(&a->word, a_make(shoal__gen_next(a_gen(w)), A_FREE, 0),
                              memory_order_relaxed);
        atomic_store_explicit(&a->head, CLOSED, memory_order_relaxed);
        atomic_store_explicit(&a->turn, NULL, memory_order_relaxed);
        a->cache = NULL;
        a->next_free = free_head;
        free_head = i;
    }
}
