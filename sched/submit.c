/* submit.c - shoal_submit and the way a task becomes runnable: copy VALUE bytes into a
 * pooled block, take the task's references on REF and REF_PASS arguments, create the
 * pending result, register the REF arguments that are not complete yet (the task then
 * waits in core's dependency lists, never on a worker), and queue it where it may run:
 * near its arguments' bytes, or on the node opts.numa_node asks for.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "sched_int.h"

#define MAX_ARGS  65535u
#define NAME_COPY 63u              /* longest task name kept for messages */
/* VALUE arguments are copied into the task's block: together at most 1 GiB (anything that
 * large belongs in an object passed as a REF). Also keeps every length below 2^62, which
 * the argument table stores shifted left by 2. */
#define MAX_VALUE_BYTES ((size_t)1 << 30)

static inline size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- placement ------------------------------------------------------------------------ */

/* Bind t to the node holding most of its REF arguments' bytes (ties: the caller's node). */
SHOAL__COLD static void place_by_refs(struct shoal__sched *s, struct shoal_task *t)
{
    uint64_t bytes[SHOAL__MAX_NODES] = { 0 };
    shoal__targ *a = shoal__task_args(t);
    for (uint32_t i = 0; i < t->nargs; i++) {
        if (shoal__targ_kind(&a[i]) != SHOAL_ARG_REF)
            continue;
        int err;
        /* The task holds a reference, so the slot is live; its acquire load of the word
         * makes off and len (published by the completion) visible. */
        shoal__slot *sl = shoal__slot_of((shoal_ref){ a[i].ref }, &err);
        if (sl && !shoal__len_inl(sl->len)) {   /* a result held in its slot weighs nothing */
            unsigned n = (unsigned)shoal__slot_node(sl);
            if (n < s->nnodes)
                bytes[n] += sl->len;
        }
    }
    unsigned best = shoal__tls.worker >= 0 ? s->w[shoal__tls.worker].node : 0;
    for (unsigned n = 0; n < s->nnodes; n++)
        if (bytes[n] > bytes[best])
            best = n;
    if (bytes[best] && s->n[best].nworkers) {
        t->node = (int16_t)best;
        t->flags |= SHOAL__TF_BOUND;
    }
}

void shoal__task_ready(struct shoal__sched *s, struct shoal_task *t)
{
    if (unlikely(s->nnodes > 1) &&
        (t->flags & (SHOAL__TF_REFS | SHOAL__TF_BOUND)) == SHOAL__TF_REFS &&
        !atomic_load_explicit(&t->fail_arg, memory_order_relaxed))
        place_by_refs(s, t);
    bool bound = (t->flags & SHOAL__TF_BOUND) != 0;
    int wi = shoal__tls.worker;
    if (wi >= 0) {
        struct shoal__worker *w = &s->w[wi];
        if ((!bound || (unsigned)t->node == w->node) &&
            likely(shoal__deque_push(&w->dq, shoal__tag(t)) == 0)) {
            shoal__wake_check(s, w->node, bound);
            return;
        }
    }
    if (bound) {
        shoal__inject_push(&s->n[t->node].q, &t->link);
        shoal__wake_check(s, (unsigned)t->node, true);
    } else {
        shoal__inject_push(&s->global, &t->link);
        shoal__wake_check(s, wi >= 0 ? s->w[wi].node : 0, false);
    }
}

/* ---- dependencies --------------------------------------------------------------------- */

/* Tasks made runnable by threads outside the scheduler (a thread that seals or puts, the
 * I/O thread, the thread that fires other processes' completions) while shutdown may be
 * taking the scheduler apart. Such a thread counts itself in, then looks: shutdown first
 * closes the scheduler to them (open = 0, later sched = NULL) and then waits for this count
 * to drop, so either it waits for the thread or the thread sees it closed and only marks
 * the task DROPPED, for shutdown to cancel (worker.c). */
static _Atomic long foreign_fires;

static void ready_foreign(struct shoal_task *t)
{
    /* seq_cst: the Dekker pair with shoal__sched_quiesce (see above). */
    atomic_fetch_add_explicit(&foreign_fires, 1, memory_order_seq_cst);
    shoal__rt_t *rt = atomic_load_explicit(&shoal__rt, memory_order_relaxed);
    struct shoal__sched *s = rt ? __atomic_load_n(&rt->sched, __ATOMIC_SEQ_CST) : NULL;
    if (likely(s && atomic_load_explicit(&s->open, memory_order_seq_cst))) {
        shoal__task_ready(s, t);
    } else {
        uint8_t live = SHOAL__TS_LIVE;
        atomic_compare_exchange_strong_explicit(&t->state, &live, SHOAL__TS_DROPPED,
                                                memory_order_relaxed, memory_order_relaxed);
    }
    /* release: pairs with the acquire load in shoal__sched_quiesce; our uses of the
     * scheduler happen before it frees anything. */
    atomic_fetch_sub_explicit(&foreign_fires, 1, memory_order_release);
}

void shoal__sched_forget(void)
{
    /* fork() child: a thread that was firing is not here to count itself out. */
    atomic_store_explicit(&foreign_fires, 0, memory_order_relaxed);
    shoal__pool_forget();
    shoal__actors_forget();
}

void shoal__sched_quiesce(void)
{
    /* acquire: pairs with the release decrement in ready_foreign. */
    while (atomic_load_explicit(&foreign_fires, memory_order_acquire) != 0)
        sched_yield();
}

/* Fired by core when a pending REF argument completes (0) or fails (its code). */
static void dep_fire(shoal__dep *d, int failed)
{
    shoal__tdep *td = (shoal__tdep *)d;
    struct shoal_task *t = (struct shoal_task *)((char *)td - td->back);
    if (unlikely(atomic_load_explicit(&t->state, memory_order_relaxed) == SHOAL__TS_ZOMBIE))
        return;   /* canceled by shutdown while it waited */
    if (unlikely(failed)) {
        uint32_t none = 0;
        /* relaxed: published by the acq_rel decrement below. */
        atomic_compare_exchange_strong_explicit(&t->fail_arg, &none, td->arg + 1,
                                                memory_order_relaxed, memory_order_relaxed);
    }
    /* acq_rel: release publishes fail_arg; the last decrementer acquires every other
     * firer's writes before it schedules the task. */
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) == 1) {
        /* A worker, or the thread stopping the scheduler: the scheduler outlives it. */
        if (likely(shoal__tls.worker >= 0 || shoal__stopping))
            shoal__task_ready(shoal__sched_of(), t);
        else
            ready_foreign(t);
    }
}

static bool ref_failed(uint64_t id)
{
    int err;
    shoal__slot *sl = shoal__slot_of((shoal_ref){ id }, &err);
    return !sl ||
           shoal__w_state(atomic_load_explicit(&sl->word, memory_order_acquire)) == SHOAL__FAILED;
}

/* Register the task on each REF argument still pending; schedule it once none is (and
 * no count is `held`). */
static void wait_deps(struct shoal__sched *s, struct shoal_task *t, size_t dep_off,
                      unsigned nref, int32_t held)
{
    shoal__targ *a = shoal__task_args(t);
    shoal__tdep *td = (shoal__tdep *)((char *)t + dep_off);
    /* One extra count held while registering, so that no firing reaches zero early, and
     * `held` more that stay (an actor's call: its turn, see actor.c).
     * relaxed: dep_add's release publishes it with the record. */
    atomic_store_explicit(&t->pending, (int32_t)nref + 1 + held, memory_order_relaxed);
    int32_t done = 1;
    for (uint32_t i = 0; i < t->nargs; i++) {
        if (shoal__targ_kind(&a[i]) != SHOAL_ARG_REF)
            continue;
        td->dep.fire = dep_fire;
        td->back = (uint32_t)((char *)td - (char *)t);
        td->arg = i;
        int r = shoal__dep_add((shoal_ref){ a[i].ref }, &td->dep);
        if (r != 0) {
            done++;
            if (unlikely(r < 0 || ref_failed(a[i].ref))) {
                uint32_t none = 0;
                atomic_compare_exchange_strong_explicit(&t->fail_arg, &none, i + 1,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed);
            }
        }
        td++;
    }
    /* acq_rel: as in dep_fire. */
    if (atomic_fetch_sub_explicit(&t->pending, done, memory_order_acq_rel) == done)
        shoal__task_ready(s, t);
}

/* ---- shoal_submit --------------------------------------------------------------------- */

SHOAL__COLD static int submit_einval(const char *who, struct shoal__sched *s, shoal_fn fn,
                                     const shoal_arg args[], size_t nargs, shoal_ref *out)
{
    if (!s)
        return shoal__err(SHOAL_EPERM, "%s: this process runs no workers: it is "
                                       "attached to a store (shoal_attach), and only the "
                                       "store's owner runs tasks", who);
    if (!fn)
        return shoal__err(SHOAL_EINVAL, "%s: fn is NULL", who);
    if (!out)
        return shoal__err(SHOAL_EINVAL, "%s: out is NULL", who);
    if (nargs && !args)
        return shoal__err(SHOAL_EINVAL, "%s: args is NULL but nargs is %zu", who, nargs);
    return shoal__err(SHOAL_EINVAL, "%s: %zu arguments; at most %u", who, nargs, MAX_ARGS);
}

SHOAL__COLD static int bad_node(const char *who, struct shoal__sched *s, int node)
{
    if (node >= 0 && (unsigned)node < s->nnodes)
        return shoal__err(SHOAL_EINVAL, "%s: numa_node %d has no worker (%u workers "
                                        "on %u nodes): raise config.workers", who, node,
                          s->nworkers, s->nnodes);
    return shoal__err(SHOAL_EINVAL, "%s: numa_node %d does not exist: use -1 (any) "
                                    "or 0..%u", who, node, s->nnodes - 1);
}

SHOAL__COLD static int bad_opts(const char *who, const shoal_task_opts *o)
{
    if (o->flags & ~SHOAL_TASK_ON_NODE)
        return shoal__err(SHOAL_EINVAL, "%s: opts.flags %#x has unknown bits (known: "
                                        "SHOAL_TASK_ON_NODE)", who, o->flags);
    return shoal__err(SHOAL_EINVAL, "%s: opts.reserved is not zero: zero-initialise "
                                    "shoal_task_opts (shoal_task_opts o = { 0 })", who);
}

/* The node opts asks for (-1: any), or SHOAL_EINVAL for options that are not valid. */
static inline int opts_node(const char *who, struct shoal__sched *s, const shoal_task_opts *opts,
                            int *out)
{
    if (unlikely((opts->flags & ~SHOAL_TASK_ON_NODE) | opts->reserved0 |
                 opts->reserved[0] | opts->reserved[1] | opts->reserved[2]))
        return bad_opts(who, opts);
    /* A zero numa_node is "any" unless the caller says it means node 0: zero-initialised
     * options are the defaults. */
    int node = opts->numa_node;
    if (node == 0 && !(opts->flags & SHOAL_TASK_ON_NODE))
        node = -1;
    if (unlikely(node != -1 && (node < 0 || (unsigned)node >= s->nnodes ||
                                s->n[node].nworkers == 0)))
        return bad_node(who, s, node);
    *out = node;
    return 0;
}

int shoal__task_opts_node(const char *who, const shoal_task_opts *opts, int *node)
{
    *node = -1;
    return opts ? opts_node(who, shoal__rt->sched, opts, node) : 0;
}

SHOAL__COLD static int value_too_big(const char *who, size_t i, size_t len, size_t before)
{
    return shoal__err(SHOAL_EINVAL, "%s: argument %zu: a VALUE of %zu bytes (after "
                      "%zu bytes of earlier VALUEs) passes the %zu-byte limit of the values "
                      "copied at submit: shoal_put the data and pass it as SHOAL_REF", who,
                      i, len, before, MAX_VALUE_BYTES);
}

SHOAL__COLD static int bad_arg(const char *who, size_t i, const shoal_arg *a)
{
    if (a->kind == SHOAL_ARG_VALUE)
        return shoal__err(SHOAL_EINVAL, "%s: argument %zu: VALUE data is NULL but "
                                        "len is %zu", who, i, a->len);
    return shoal__err(SHOAL_EINVAL, "%s: argument %zu: kind %d is not "
                                    "SHOAL_ARG_VALUE, SHOAL_ARG_REF or SHOAL_ARG_REF_PASS (the "
                                    "two REF kinds may have SHOAL_ARG_MOVE or'd in)", who,
                      i, a->kind);
}

/* Drop the references taken on args[0..n) and the block: submit failed. A moved
 * argument's reference is still the caller's: nothing was taken on it. */
SHOAL__COLD static int unwind(struct shoal_task *t, const shoal_arg args[], size_t n, int rc)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", shoal_last_error());
    for (size_t i = 0; i < n; i++)
        if (args[i].kind != SHOAL_ARG_VALUE && !(args[i].kind & SHOAL_ARG_MOVE))
            shoal__release(args[i].ref);
    shoal__task_free(t);
    return shoal__err(rc, "%s", msg);
}

/* A moved argument: 0 if ref names a live object (the caller's reference keeps it so),
 * else the error shoal__slot_of reports. */
static inline int ref_live(shoal_ref ref)
{
    int err;
    return shoal__slot_of(ref, &err) ? 0 : err;
}

SHOAL__COLD static int ref_error(const char *who, struct shoal_task *t, const shoal_arg args[], size_t i, int rc)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", shoal_last_error());
    shoal__err(rc, "%s: argument %zu: %s", who, i, msg);
    return unwind(t, args, i, rc);
}

SHOAL__COLD static int actor_node(const char *who, int node, int actor_node)
{
    return shoal__err(SHOAL_EINVAL, "%s: opts.numa_node %d: an actor's calls run where the "
                      "actor was placed (%s%d): leave numa_node at any (0 or -1)", who, node,
                      actor_node < 0 ? "any node, " : "node ", actor_node);
}

int shoal__submit(const char *who, struct shoal__actor *actor, shoal_fn fn,
                  const shoal_arg args[], size_t nargs, const shoal_task_opts *opts,
                  shoal_ref *out)
{
    int rc;
    struct shoal__sched *s = shoal__rt->sched;
    if (unlikely(!s || !fn || !out || (nargs && !args) || nargs > MAX_ARGS))
        return submit_einval(who, s, fn, args, nargs, out);
    int node = -1;
    const char *name = NULL;
    bool has_ctx = false;
    if (opts) {
        if (unlikely(rc = opts_node(who, s, opts, &node)))
            return rc;
        name = opts->name;
        has_ctx = opts->ctx || opts->ctx_done;
    }
    if (actor) {
        int an = shoal__actor_node(actor);
        if (unlikely(node != -1 && node != an))
            return actor_node(who, node, an);
        node = an;
    }

    /* Size the block: header, argument table, dependency records, values, name. */
    size_t vbytes = 0;
    unsigned nref = 0, nheld = 0;
    for (size_t i = 0; i < nargs; i++) {
        const shoal_arg *a = &args[i];
        if (a->kind == SHOAL_ARG_VALUE) {
            if (unlikely(!a->data && a->len))
                return bad_arg(who, i, a);
            /* No sum may wrap: each length and the total stay below the limit. */
            if (unlikely(a->len > MAX_VALUE_BYTES || vbytes + align16(a->len) > MAX_VALUE_BYTES))
                return value_too_big(who, i, a->len, vbytes);
            vbytes += align16(a->len);
        } else if ((a->kind & ~SHOAL_ARG_MOVE) == SHOAL_ARG_REF) {
            nref++;
            nheld++;
        } else if ((a->kind & ~SHOAL_ARG_MOVE) == SHOAL_ARG_REF_PASS) {
            nheld++;
        } else {
            return bad_arg(who, i, a);
        }
    }
    size_t dep_off = sizeof(struct shoal_task) + nargs * sizeof(shoal__targ) +
                     (has_ctx ? sizeof(shoal__tctx) : 0) + (actor ? sizeof(shoal__tactor) : 0);
    size_t val_off = dep_off + align16(nref * sizeof(shoal__tdep));
    size_t namelen = name ? strnlen(name, NAME_COPY) : 0;
    struct shoal_task *t = shoal__task_alloc(val_off + vbytes + (name ? namelen + 1 : 0));
    if (unlikely(!t))
        return SHOAL_ENOMEM;

    /* The task's references first: a stale REF fails the submit before anything exists. A
     * moved one is the caller's, handed over: checked (null, forged, freed) but not taken. */
    if (nheld)
        for (size_t i = 0; i < nargs; i++)
            if (args[i].kind != SHOAL_ARG_VALUE &&
                unlikely(rc = (args[i].kind & SHOAL_ARG_MOVE) ? ref_live(args[i].ref)
                                                              : shoal__retain(args[i].ref)))
                return ref_error(who, t, args, i, rc);
    /* Two references: the caller's and the task's own, dropped when it completes, so a
     * caller that releases at once leaves the result alive for its dependents. */
    rc = shoal__obj_new(SHOAL__PENDING | SHOAL__OBJ_TASK, 0, -1, 2, NULL, &t->result);
    if (unlikely(rc))
        return unwind(t, args, nheld ? nargs : 0, rc);

    t->fn = fn;
    t->nargs = (uint32_t)nargs;
    t->worker = -1;
    atomic_store_explicit(&t->fail_arg, 0, memory_order_relaxed);
    atomic_store_explicit(&t->pending, 0, memory_order_relaxed);
    t->node = (int16_t)(s->nnodes > 1 ? node : -1);
    t->flags = (uint8_t)((nheld ? SHOAL__TF_REFS : 0) | (t->node >= 0 ? SHOAL__TF_BOUND : 0) |
                         (has_ctx ? SHOAL__TF_CTX : 0) | (actor ? SHOAL__TF_ACTOR : 0));
    if (has_ctx) {
        shoal__tctx *c = shoal__task_tctx(t);
        c->ctx = opts->ctx;
        c->done = opts->ctx_done;
    }
    if (actor)
        shoal__task_tactor(t)->actor = actor;
    t->fail_msg = NULL;
    t->name = NULL;
    shoal__targ *ta = shoal__task_args(t);
    char *v = (char *)t + val_off;
    for (size_t i = 0; i < nargs; i++) {
        const shoal_arg *a = &args[i];
        if (a->kind == SHOAL_ARG_VALUE) {
            if (a->len)
                memcpy(v, a->data, a->len);
            ta[i].data = v;
            ta[i].len_kind = (uint64_t)a->len << 2 | SHOAL_ARG_VALUE;
            v += align16(a->len);
        } else {
            ta[i].ref = a->ref.id;
            ta[i].len_kind = (uint64_t)(a->kind & ~SHOAL_ARG_MOVE);   /* held alike now */
        }
    }
    if (name) {
        memcpy(v, name, namelen);
        v[namelen] = 0;
        t->name = v;
    }
    *out = t->result;   /* before the task is visible: it may finish and be freed at once */
    if (likely(!actor)) {
        if (nref == 0)
            shoal__task_ready(s, t);
        else
            wait_deps(s, t, dep_off, nref, 0);
        if (shoal__tls.worker < 0) {   /* remembered for its get: see shoal__run_own */
            struct shoal__submitted *own = shoal__pool_submitted();
            if (own)
                own->id = out->id;
        }
        return 0;
    }
    /* An actor's call keeps one count of `pending` until it is at the head of the actor's
     * queue (actor.c), so its arguments completing never schedule it on their own. */
    if (nref == 0)
        atomic_store_explicit(&t->pending, 1, memory_order_relaxed);   /* published by the
                                                                          queue's release */
    else
        wait_deps(s, t, dep_off, nref, 1);
    shoal__actor_enqueue(actor, t);   /* never run by its submitter: see shoal__run_own */
    return 0;
}

/* ---- the submitter runs its own task ------------------------------------------------------
 * A thread outside the workers that submits a task and then gets its result would only wait
 * for it: a worker has to notice it (a spinning one) or be woken (a futex wake, 11-41 us on
 * machines of this kind, and the worker's sleep after it), and then the waiter is woken in
 * turn. When the task is still the oldest of the global queue, that thread takes it as a
 * worker would and runs it itself, like oneTBB's caller-runs: a submit+get+release round
 * trip then makes no system call, whether the workers spin or sleep. Only the task it
 * submitted last is looked for (its result's ID, kept in the thread's pool cache: no static
 * TLS of its own, see test_dlopen), and only for a get with no time limit (a timed get
 * keeps its bound; the task could run for longer). */
/* A task run here that gets a task of its own runs that one here too, on this thread's
 * stack, which may be small (a worker's has 64 MiB): past this depth, the worker runs it. */
#define OWN_DEPTH_MAX 8

int shoal__run_own(shoal_ref ref)
{
    struct shoal__submitted *own = shoal__pool_submitted();
    if (!own || own->id != ref.id || own->depth >= OWN_DEPTH_MAX)
        return 0;
    own->id = 0;
    struct shoal__sched *s = shoal__sched_of();
    if (!s || atomic_load_explicit(&s->stop, memory_order_relaxed) ||
        !shoal__inject_trylock(&s->global))
        return 0;
    /* A queued task stays allocated while we hold the flag: its result may be read. */
    struct shoal_task *t = (struct shoal_task *)shoal__inject_peek(&s->global);
    /* An actor's call runs only under its actor (actor.c), never here. */
    bool mine = t && t->result.id == ref.id && !(t->flags & SHOAL__TF_ACTOR);
    if (mine)
        shoal__inject_pop_head(&s->global);
    shoal__inject_unlock(&s->global);
    if (!mine)
        return 0;
    own->depth++;
    shoal__task_run_here(t);   /* ours now, as a popped task is a worker's */
    own->depth--;   /* still this thread's cache: freed only at its exit */
    /* relaxed: a count summed by shoal_info_get. */
    atomic_fetch_add_explicit(&s->run_here, 1, memory_order_relaxed);
    return 1;
}

SHOAL_API int shoal_submit(shoal_fn fn, const shoal_arg args[], size_t nargs,
                           const shoal_task_opts *opts, shoal_ref *out)
{
    SHOAL__CALL(shoal__submit("shoal_submit", NULL, fn, args, nargs, opts, out));
}
