/* submit.c - shoal_submit and the way a task becomes runnable: copy VALUE bytes into a
 * pooled block, take the task's references on REF and REF_PASS arguments, create the
 * pending result, register the REF arguments that are not complete yet (the task then
 * waits in core's dependency lists, never on a worker), and queue it where it may run:
 * near its arguments' bytes, or on the node opts.numa_node asks for.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../core/result.h"
#include "sched_int.h"
#include "timeline.h"

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
    /* Nothing of t is read once it is pushed: a thief may run and free it at once. */
    bool bound = (t->flags & SHOAL__TF_BOUND) != 0;
    unsigned node = (unsigned)t->node;
    uint64_t idx = shoal__id_idx(t->result.id);
    int wi = shoal__tls.worker;
    if (wi >= 0) {
        struct shoal__worker *w = &s->w[wi];
        if ((!bound || node == w->node) &&
            likely(shoal__deque_push(&w->dq, shoal__tag(t)) == 0)) {
            /* Most likely the next task this worker runs (its deque is LIFO), whose first
             * step is a CAS on its result's slot, last written by the submitter on another
             * core: start that miss now, while this task finishes. */
            shoal__rt_t *rt = shoal__rt;
            if (likely(idx < rt->nslots))
                shoal__prefetch(&rt->slots[idx]);
            shoal__wake_check(s, w->node, bound);
            return;
        }
    }
    if (bound) {
        shoal__inject_push(&s->n[node].q, &t->link);
        shoal__wake_check(s, node, true);
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
    shoal__tl_fork_child();
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
    struct shoal_task *t = (struct shoal_task *)((char *)d - d->aux);
    if (unlikely(atomic_load_explicit(&t->state, memory_order_relaxed) == SHOAL__TS_ZOMBIE))
        return;   /* canceled by shutdown while it waited */
    if (unlikely(failed)) {
        uint32_t none = 0;
        /* relaxed: published by the acq_rel decrement below. */
        atomic_compare_exchange_strong_explicit(&t->fail_arg, &none, (uint32_t)d->aux16 + 1,
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

void shoal__sched_deps_init(void) { shoal__dep_kind_set(SHOAL__DEP_TASK, dep_fire); }

/* Register the task on each REF argument still pending. true: none is (and no count is
 * `held`), so the caller schedules it; false: the last firing will. */
static bool wait_deps(struct shoal_task *t, size_t dep_off, unsigned nref, int32_t held)
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
        td->dep.kind = SHOAL__DEP_TASK;
        td->dep.aux = (uint32_t)((char *)td - (char *)t);
        td->dep.aux16 = (uint16_t)i;   /* i < nargs <= MAX_ARGS */
        int r = shoal__dep_add_held((shoal_ref){ a[i].ref }, &td->dep);
        if (r != 0) {
            done++;
            if (unlikely(r != 1)) {   /* failed, or the other process's list failed us */
                uint32_t none = 0;
                atomic_compare_exchange_strong_explicit(&t->fail_arg, &none, i + 1,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed);
            }
        }
        td++;
    }
    /* acq_rel: as in dep_fire. */
    return atomic_fetch_sub_explicit(&t->pending, done, memory_order_acq_rel) == done;
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

/* Where an argument is, for messages: "argument i", or in a batch "task t argument i"
 * (task SIZE_MAX: a single submit). */
static const char *arg_where(char *buf, size_t cap, size_t task, size_t i)
{
    if (task == SIZE_MAX)
        snprintf(buf, cap, "argument %zu", i);
    else
        snprintf(buf, cap, "task %zu argument %zu", task, i);
    return buf;
}

SHOAL__COLD static int value_too_big(const char *who, size_t task, size_t i, size_t len,
                                     size_t before)
{
    char at[64];
    return shoal__err(SHOAL_EINVAL, "%s: %s: a VALUE of %zu bytes (after "
                      "%zu bytes of earlier VALUEs) passes the %zu-byte limit of the values "
                      "copied at submit: shoal_put the data and pass it as SHOAL_REF", who,
                      arg_where(at, sizeof at, task, i), len, before, MAX_VALUE_BYTES);
}

SHOAL__COLD static int bad_arg(const char *who, size_t task, size_t i, const shoal_arg *a)
{
    char at[64];
    arg_where(at, sizeof at, task, i);
    if (a->kind == SHOAL_ARG_VALUE)
        return shoal__err(SHOAL_EINVAL, "%s: %s: VALUE data is NULL but "
                                        "len is %zu", who, at, a->len);
    return shoal__err(SHOAL_EINVAL, "%s: %s: kind %d is not "
                                    "SHOAL_ARG_VALUE, SHOAL_ARG_REF or SHOAL_ARG_REF_PASS (the "
                                    "two REF kinds may have SHOAL_ARG_MOVE or'd in)", who,
                      at, a->kind);
}

/* What one task's block holds besides its header and argument table. */
typedef struct task_shape {
    size_t vbytes;              /* VALUE bytes, each rounded up to 16 */
    unsigned nref;              /* REF arguments: one dependency record each */
    unsigned nheld;             /* REF and REF_PASS arguments: one reference each */
} task_shape;

/* Check one task's arguments and size its block; nothing is taken. */
static inline int args_shape(const char *who, size_t task, const shoal_arg args[], size_t nargs,
                             task_shape *sh)
{
    size_t vbytes = 0;
    unsigned nref = 0, nheld = 0;
    for (size_t i = 0; i < nargs; i++) {
        const shoal_arg *a = &args[i];
        if (a->kind == SHOAL_ARG_VALUE) {
            if (unlikely(!a->data && a->len))
                return bad_arg(who, task, i, a);
            /* No sum may wrap: each length and the total stay below the limit. */
            if (unlikely(a->len > MAX_VALUE_BYTES || vbytes + align16(a->len) > MAX_VALUE_BYTES))
                return value_too_big(who, task, i, a->len, vbytes);
            vbytes += align16(a->len);
        } else if ((a->kind & ~SHOAL_ARG_MOVE) == SHOAL_ARG_REF) {
            nref++;
            nheld++;
        } else if ((a->kind & ~SHOAL_ARG_MOVE) == SHOAL_ARG_REF_PASS) {
            nheld++;
        } else {
            return bad_arg(who, task, i, a);
        }
    }
    sh->vbytes = vbytes;
    sh->nref = nref;
    sh->nheld = nheld;
    return 0;
}

/* Byte offset of the dependency records in a block. */
static inline size_t task_dep_off(size_t nargs, bool has_ctx, bool actor)
{
    return sizeof(struct shoal_task) + nargs * sizeof(shoal__targ) +
           (has_ctx ? sizeof(shoal__tctx) : 0) + (actor ? sizeof(shoal__tactor) : 0);
}

/* Drop the references taken on args[0..n): a moved argument's reference is still the
 * caller's (nothing was taken on it). */
static void drop_taken(const shoal_arg args[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (args[i].kind != SHOAL_ARG_VALUE && !(args[i].kind & SHOAL_ARG_MOVE))
            shoal__release(args[i].ref);
}

/* A moved argument: 0 if ref names a live object (the caller's reference keeps it so),
 * else the error shoal__slot_of reports. */
static inline int ref_live(shoal_ref ref)
{
    int err;
    return shoal__slot_of(ref, &err) ? 0 : err;
}

/* The task's references on args[0..nargs): a stale REF fails the submit before anything
 * exists. A moved one is the caller's, handed over: checked (null, forged, freed) but not
 * taken. 0, or the error with *at the argument that failed (those before it are taken). */
static inline int take_refs(const shoal_arg args[], size_t nargs, size_t *at)
{
    for (size_t i = 0; i < nargs; i++) {
        int rc;
        if (args[i].kind != SHOAL_ARG_VALUE &&
            unlikely(rc = (args[i].kind & SHOAL_ARG_MOVE) ? ref_live(args[i].ref)
                                                          : shoal__retain(args[i].ref))) {
            *at = i;
            return rc;
        }
    }
    return 0;
}

/* Submit failed: drop the references taken on args[0..n) and the block. */
SHOAL__COLD static int unwind(struct shoal_task *t, const shoal_arg args[], size_t n, int rc)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", shoal_last_error());
    drop_taken(args, n);
    shoal__task_free(t);
    return shoal__err(rc, "%s", msg);
}

SHOAL__COLD static int ref_error(const char *who, struct shoal_task *t, const shoal_arg args[],
                                 size_t i, int rc)
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

/* Fill a block whose references are taken and whose result exists: header, argument
 * table, copied values, name. The dependency records are written by wait_deps. */
static inline void task_build(struct shoal_task *t, struct shoal__sched *s, shoal_fn fn,
                              const shoal_arg args[], size_t nargs, int node,
                              const shoal_task_opts *opts, bool has_ctx,
                              struct shoal__actor *actor, const char *name, size_t namelen,
                              size_t val_off, unsigned nheld)
{
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
            shoal__copy_bytes(v, a->data, a->len);
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
}

/* A thread outside the workers remembers the result of the task it submitted last, for
 * its get (see shoal__run_own). */
static inline void remember_own(uint64_t id)
{
    if (shoal__tls.worker < 0) {
        struct shoal__submitted *own = shoal__pool_submitted();
        if (own)
            own->id = id;
    }
}

/* shoal__submit's body, folded into shoal_submit (no actor: its branches go) and into
 * shoal__submit for actor.c. */
SHOAL__INLINE int submit_one(const char *who, struct shoal__actor *actor, shoal_fn fn,
                             const shoal_arg args[], size_t nargs, const shoal_task_opts *opts,
                             shoal_ref *out)
{
    int rc;
    struct shoal__sched *s = shoal__rt->sched;
    /* One predictable branch each (as one condition it compiled to a chain of setcc). */
    if (unlikely(!s) || unlikely(!fn) || unlikely(!out) || unlikely(nargs > MAX_ARGS) ||
        unlikely(nargs && !args))
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
    task_shape sh = { 0, 0, 0 };
    if (unlikely(rc = args_shape(who, SIZE_MAX, args, nargs, &sh)))
        return rc;
    size_t dep_off = task_dep_off(nargs, has_ctx, actor != NULL);
    size_t val_off = dep_off + align16(sh.nref * sizeof(shoal__tdep));
    size_t namelen = name ? strnlen(name, NAME_COPY) : 0;
    struct shoal_task *t = shoal__task_alloc(val_off + sh.vbytes + (name ? namelen + 1 : 0));
    if (unlikely(!t))
        return SHOAL_ENOMEM;

    size_t at;
    if (sh.nheld && unlikely(rc = take_refs(args, nargs, &at)))
        return ref_error(who, t, args, at, rc);
    /* Two references: the caller's and the task's own, dropped when it completes, so a
     * caller that releases at once leaves the result alive for its dependents. */
    rc = shoal__obj_new_result(&t->result);
    if (unlikely(rc))
        return unwind(t, args, sh.nheld ? nargs : 0, rc);

    task_build(t, s, fn, args, nargs, node, opts, has_ctx, actor, name, namelen, val_off,
               sh.nheld);
    *out = t->result;   /* before the task is visible: it may finish and be freed at once */
    if (likely(!actor)) {
        if (sh.nref == 0 || wait_deps(t, dep_off, sh.nref, 0))
            shoal__task_ready(s, t);
        remember_own(out->id);
        return 0;
    }
    /* An actor's call keeps one count of `pending` until it is at the head of the actor's
     * queue (actor.c), so its arguments completing never schedule it on their own. */
    if (sh.nref == 0)
        atomic_store_explicit(&t->pending, 1, memory_order_relaxed);   /* published by the
                                                                          queue's release */
    else
        (void)wait_deps(t, dep_off, sh.nref, 1);   /* the held count: never ready here */
    shoal__actor_enqueue(actor, t);   /* never run by its submitter: see shoal__run_own */
    return 0;
}

int shoal__submit(const char *who, struct shoal__actor *actor, shoal_fn fn,
                  const shoal_arg args[], size_t nargs, const shoal_task_opts *opts,
                  shoal_ref *out)
{
    return submit_one(who, actor, fn, args, nargs, opts, out);
}

/* ---- shoal_submit_batch ----------------------------------------------------------------
 * n tasks of one function and one shape, all or nothing: every argument is checked, every
 * block allocated, every reference taken and every result made before any task is
 * visible, so a failure at any step undoes the earlier ones and leaves the caller's refs
 * (moved ones too) as they were. Each step runs over the whole batch: the slots of the
 * next tasks' REF arguments are prefetched while one task's are worked on (they were last
 * written by the workers that completed them: a cache miss each), and the tasks that are
 * ready at once go to the global queue BATCH_PUSH at a time, with one claim of the ring
 * and one wake check per group instead of one per task. */
#define BATCH_PUSH     256u
#define BATCH_PREFETCH 8u

/* A task's shape packed into a pointer-sized word (step 1 to step 2 of a batch): VALUE
 * bytes below 2^31 (MAX_VALUE_BYTES), the two counts below 2^16 (MAX_ARGS). */
_Static_assert(sizeof(void *) == 8 && MAX_VALUE_BYTES < ((size_t)1 << 31) && MAX_ARGS < 65536,
               "a task's shape fits a scratch entry");
static inline struct shoal_task *shape_pack(const task_shape *sh)
{
    return (struct shoal_task *)(uintptr_t)(sh->vbytes | (uint64_t)sh->nref << 32 |
                                            (uint64_t)sh->nheld << 48);
}
static inline task_shape shape_unpack(const struct shoal_task *p)
{
    uint64_t v = (uint64_t)(uintptr_t)p;
    return (task_shape){ (size_t)(v & 0xffffffffu), (unsigned)(v >> 32 & 0xffff),
                         (unsigned)(v >> 48) };
}

SHOAL__COLD static int batch_einval(const char *who, struct shoal__sched *s, size_t n,
                                    shoal_fn fn, const shoal_arg args[], size_t nargs_each,
                                    shoal_ref out[])
{
    if (!s)
        return submit_einval(who, s, fn, args, nargs_each, out);
    if (!fn)
        return shoal__err(SHOAL_EINVAL, "%s: fn is NULL", who);
    if (!out)
        return shoal__err(SHOAL_EINVAL, "%s: out is NULL but n is %zu", who, n);
    if (!args)
        return shoal__err(SHOAL_EINVAL, "%s: args is NULL but nargs_each is %zu", who,
                          nargs_each);
    if (nargs_each > MAX_ARGS)
        return shoal__err(SHOAL_EINVAL, "%s: %zu arguments per task; at most %u", who,
                          nargs_each, MAX_ARGS);
    return shoal__err(SHOAL_EINVAL, "%s: n = %zu tasks of %zu arguments: args[] cannot be "
                                    "that long", who, n, nargs_each);
}

/* A batch failed at task `failed`, which had taken the references of its first `taken`
 * arguments: let go of those, and of what tasks 0..failed-1 hold (their references, their
 * results, never seen by anyone, and their blocks), then report rc with the message, which
 * names task `failed`. */
SHOAL__COLD static int batch_unwind(const char *who, struct shoal_task *const tasks[],
                                    const shoal_arg args[], size_t nargs_each, size_t failed,
                                    size_t taken, int rc)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", shoal_last_error());
    drop_taken(&args[failed * nargs_each], taken);
    for (size_t i = 0; i < failed; i++) {
        drop_taken(&args[i * nargs_each], nargs_each);
        shoal__release(tasks[i]->result);   /* its two references: freed */
        shoal__release(tasks[i]->result);
        shoal__task_free(tasks[i]);
    }
    return shoal__err(rc, "%s: task %zu: %s (nothing was submitted)", who, failed, msg);
}

/* Warm the slots of one task's REF arguments (they are read or written next: a check, a
 * retain or a registration), and with deps (registering next) the REF arguments' slots and
 * dependents entries for writing (a registration on a pending one writes both). Only
 * indices inside the table are touched; the checks come later. */
static inline void prefetch_refs(const shoal__rt_t *rt, const shoal_arg a[], size_t nargs,
                                 bool deps)
{
    for (size_t j = 0; j < nargs; j++)
        if (a[j].kind != SHOAL_ARG_VALUE) {
            uint64_t idx = shoal__id_idx(a[j].ref.id);
            if (idx >= rt->nslots)
                continue;
            if (deps && (a[j].kind & ~SHOAL_ARG_MOVE) == SHOAL_ARG_REF) {
                shoal__prefetchw(&rt->slots[idx]);   /* a pending one's word is CASed */
                shoal__prefetchw(&rt->deps[idx]);
            } else {
                shoal__prefetch(&rt->slots[idx]);
            }
        }
}

static int submit_batch(const char *who, size_t n, shoal_fn fn, const shoal_arg args[],
                        size_t nargs_each, const shoal_task_opts *opts, shoal_ref out[])
{
    int rc;
    shoal__rt_t *rt = shoal__rt;
    struct shoal__sched *s = rt->sched;
    if (unlikely(!s || !fn || (n && !out) || (n && nargs_each && !args) ||
                 nargs_each > MAX_ARGS || (nargs_each && n > SIZE_MAX / nargs_each)))
        return batch_einval(who, s, n, fn, args, nargs_each, out);
    int node = -1;
    const char *name = NULL;
    if (opts) {
        if (unlikely(rc = opts_node(who, s, opts, &node)))
            return rc;
        if (unlikely(opts->ctx || opts->ctx_done))
            return shoal__err(SHOAL_EINVAL, "%s: opts.ctx / ctx_done are set: a context "
                                            "belongs to one task (its ctx_done runs once); "
                                            "submit tasks that need one with shoal_submit",
                              who);
        name = opts->name;
    }
    if (n == 0)
        return 0;
    /* Each task makes a result object: a count above the table (an underflowed n - 1) is
     * refused before the argument checks, which would otherwise turn n times. */
    if (unlikely(n > rt->nslots - 1))
        return shoal__err(SHOAL_ENOMEM, "%s: %zu tasks, more results than the object table "
                          "holds (%llu objects; config.max_objects): nothing was submitted",
                          who, n, (unsigned long long)(rt->nslots - 1));
    size_t namelen = name ? strnlen(name, NAME_COPY) : 0;
    size_t dep_off = task_dep_off(nargs_each, false, false);

    struct shoal_task **tasks = shoal__pool_scratch(n);
    if (unlikely(!tasks))
        return SHOAL_ENOMEM;
    /* 1. Check every argument: nothing is taken yet. Each task's shape waits in its entry
     *    of the scratch list for step 2 (which replaces it with the block), so that the
     *    arguments are not walked twice. */
    for (size_t i = 0; i < n; i++) {
        task_shape sh = { 0, 0, 0 };
        if (unlikely(rc = args_shape(who, i, &args[i * nargs_each], nargs_each, &sh)))
            return rc;
        tasks[i] = shape_pack(&sh);
    }

    /* 2. Per task: its references (the next tasks' argument slots warming meanwhile), its
     *    block, its result, and the block filled; nothing is visible yet. */
    for (size_t i = 0; i < n; i++) {
        const shoal_arg *a = &args[i * nargs_each];
        if (i + BATCH_PREFETCH < n)
            prefetch_refs(rt, &args[(i + BATCH_PREFETCH) * nargs_each], nargs_each, false);
        task_shape sh = shape_unpack(tasks[i]);   /* checked above */
        size_t at;
        if (sh.nheld && unlikely(rc = take_refs(a, nargs_each, &at))) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", shoal_last_error());
            shoal__err(rc, "argument %zu: %s", at, msg);
            return batch_unwind(who, tasks, args, nargs_each, i, at, rc);
        }
        size_t val_off = dep_off + align16(sh.nref * sizeof(shoal__tdep));
        size_t size = val_off + sh.vbytes + (name ? namelen + 1 : 0);
        if (i + BATCH_PREFETCH < n)   /* the block of a task further on, of this shape */
            shoal__task_prefetch_ahead(size, size, BATCH_PREFETCH);
        struct shoal_task *t = shoal__task_alloc(size);
        if (unlikely(!t))
            return batch_unwind(who, tasks, args, nargs_each, i, nargs_each, SHOAL_ENOMEM);
        /* Two references, as in shoal__submit. */
        if (unlikely(rc = shoal__obj_new_result(&t->result))) {
            shoal__task_free(t);
            return batch_unwind(who, tasks, args, nargs_each, i, nargs_each, rc);
        }
        task_build(t, s, fn, a, nargs_each, node, opts, false, NULL, name, namelen, val_off,
                   sh.nheld);
        /* How many dependency records to register: kept in `pending` (rewritten by
         * wait_deps) until step 3. relaxed: this thread's alone until then. */
        atomic_store_explicit(&t->pending, (int32_t)sh.nref, memory_order_relaxed);
        tasks[i] = t;
    }

    /* 3. Nothing can fail now: hand out each result, register each task's pending
     *    arguments and queue the ready ones. A task may run and be freed as soon as it is
     *    registered or queued: nothing of it is read after. On one node, from outside the
     *    workers, the ready ones go to the global queue in groups (where shoal__task_ready
     *    would put each); elsewhere shoal__task_ready places each. */
    bool group = s->nnodes == 1 && shoal__tls.worker < 0;
    size_t reg_bytes = dep_off + nargs_each * sizeof(shoal__tdep);
    if (reg_bytes > 4 * SHOAL__CACHELINE)
        reg_bytes = 4 * SHOAL__CACHELINE;
    shoal__qlink *ready[BATCH_PUSH];
    unsigned nready = 0;
    for (size_t i = 0; i < n; i++) {
        struct shoal_task *t = tasks[i];
        if (i + BATCH_PREFETCH < n) {   /* its block and the slots it registers on */
            /* Every line of the block that registering reads or writes (header, argument
             * table, dependency records): step 2 wrote them, but a long batch's blocks
             * have left the cache since, and a miss here stalls the locked operations
             * that follow. (A task with fewer REF arguments than nargs_each ends sooner:
             * its last line may be a neighbour's, which a prefetch only warms.) */
            const char *b = (const char *)tasks[i + BATCH_PREFETCH];
            for (size_t l = 0; l < reg_bytes; l += SHOAL__CACHELINE)
                shoal__prefetchw(b + l);
            prefetch_refs(rt, &args[(i + BATCH_PREFETCH) * nargs_each], nargs_each, true);
        }
        out[i] = t->result;   /* before the task is visible, as in shoal__submit */
        unsigned nref = (unsigned)atomic_load_explicit(&t->pending, memory_order_relaxed);
        if (nref && !wait_deps(t, dep_off, nref, 0))
            continue;
        if (!group) {
            shoal__task_ready(s, t);
            continue;
        }
        ready[nready++] = &t->link;
        if (nready == BATCH_PUSH) {
            shoal__inject_push_many(&s->global, ready, nready);
            shoal__wake_check(s, 0, false);
            nready = 0;
        }
    }
    if (nready) {
        shoal__inject_push_many(&s->global, ready, nready);
        shoal__wake_check(s, 0, false);
    }
    remember_own(out[n - 1].id);
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

/* ---- the small task ---------------------------------------------------------------------
 * shoal_submit's common case (fib's): no options and at most two VALUE arguments of at most
 * 16 bytes each (a count, a pair). It has nothing to check beyond that shape, no reference
 * to take, no dependency to register, no name, context or node; its block is always of the
 * smallest class. It builds what submit_one would build for it, with each step inline: the
 * block from the thread's cache, the result, the header, the values, and the push on the
 * worker's own deque. */
#define SMALL_NARGS 2u
#define SMALL_VALUE 16u
_Static_assert(sizeof(struct shoal_task) + SMALL_NARGS * (sizeof(shoal__targ) + SMALL_VALUE) <=
                   128, "a small task fits the smallest block class (task.h)");

static inline bool small_arg(const shoal_arg *a)
{
    return a->kind == SHOAL_ARG_VALUE && a->len <= SMALL_VALUE && a->data;
}

/* Unrolled (SMALL_NARGS is 2): no loop to set up for one or two arguments. */
_Static_assert(SMALL_NARGS == 2, "small_task and small_copy look at two arguments");
static inline bool small_task(const shoal_arg args[], size_t nargs)
{
    if (nargs == 0)
        return true;
    if (nargs > SMALL_NARGS || !args || !small_arg(&args[0]))
        return false;
    return nargs == 1 || small_arg(&args[1]);
}

/* Copy small argument a into its table entry and the value area at v. */
static inline void small_copy(shoal__targ *ta, char *v, const shoal_arg *a)
{
    shoal__copy_bytes(v, a->data, a->len);
    ta->data = v;
    ta->len_kind = (uint64_t)a->len << 2 | SHOAL_ARG_VALUE;
}

/* shoal__task_ready for an unbound task whose result is id: a worker pushes it on its own
 * deque; a thread outside the workers also remembers it (remember_own). */
SHOAL__INLINE void ready_unbound(struct shoal__sched *s, struct shoal_task *t, uint64_t id)
{
    int wi = shoal__tls.worker;
    if (likely(wi >= 0)) {
        struct shoal__worker *w = &s->w[wi];
        uint64_t idx = shoal__id_idx(id);   /* t is not read once pushed */
        if (likely(shoal__deque_push(&w->dq, (shoal__item)t) == 0)) {
            shoal__rt_t *rt = shoal__rt;   /* the next task this worker runs: see task_ready */
            if (likely(idx < rt->nslots))
                shoal__prefetch(&rt->slots[idx]);
            shoal__wake_check_own(s, w);
            return;
        }
        shoal__task_ready(s, t);
        return;
    }
    shoal__task_ready(s, t);
    remember_own(id);
}

SHOAL__INLINE int submit_small(struct shoal__sched *s, shoal_fn fn, const shoal_arg args[],
                               size_t nargs, shoal_ref *out)
{
    struct shoal_task *t = shoal__task_alloc_cls(0);
    if (unlikely(!t))
        return SHOAL_ENOMEM;
    /* Two references, as in submit_one. */
    int rc = shoal__obj_new_result_inl(&t->result);
    if (unlikely(rc))
        return unwind(t, args, 0, rc);
    t->fn = fn;
    t->nargs = (uint32_t)nargs;
    t->worker = -1;
    atomic_store_explicit(&t->fail_arg, 0, memory_order_relaxed);
    atomic_store_explicit(&t->pending, 0, memory_order_relaxed);
    t->node = -1;
    t->flags = 0;
    t->fail_msg = NULL;
    t->name = NULL;
    shoal__targ *ta = shoal__task_args(t);
    char *v = (char *)(ta + nargs);
    if (nargs) {
        small_copy(&ta[0], v, &args[0]);
        if (nargs == 2)
            small_copy(&ta[1], v + SMALL_VALUE, &args[1]);
    }
    shoal_ref r = t->result;
    *out = r;   /* before the task is visible, as in submit_one */
    ready_unbound(s, t, r.id);
    return 0;
}

/* Everything else: submit_one, out of line so that the small task's path stays short. */
__attribute__((noinline)) static int submit_general(shoal_fn fn, const shoal_arg args[],
                                                    size_t nargs, const shoal_task_opts *opts,
                                                    shoal_ref *out)
{
    return submit_one("shoal_submit", NULL, fn, args, nargs, opts, out);
}

SHOAL__INLINE int submit(shoal_fn fn, const shoal_arg args[], size_t nargs,
                         const shoal_task_opts *opts, shoal_ref *out)
{
    struct shoal__sched *s = shoal__rt->sched;
    if (likely(!opts && s && fn && out && small_task(args, nargs)))
        return submit_small(s, fn, args, nargs, out);
    return submit_general(fn, args, nargs, opts, out);
}

SHOAL_API int shoal_submit(shoal_fn fn, const shoal_arg args[], size_t nargs,
                           const shoal_task_opts *opts, shoal_ref *out)
{
    SHOAL__CALL(submit(fn, args, nargs, opts, out));
}

SHOAL_API int shoal_submit_batch(size_t n, shoal_fn fn, const shoal_arg args[],
                                 size_t nargs_each, const shoal_task_opts *opts, shoal_ref out[])
{
    SHOAL__CALL(submit_batch("shoal_submit_batch", n, fn, args, nargs_each, opts, out));
}
