/* task.c - running a task and completing its result: the calls a task makes on itself
 * (arguments, return, fail), the end of a run (release the task's references, seal or fail
 * the result), and cancellation (shutdown, or a REF argument that failed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/objrefs.h"
#include "../core/probes.h"
#include "sched_int.h"
#include "timeline.h"

/* ---- the end of a task ------------------------------------------------------------------ */

static inline void release_args(struct shoal_task *t)
{
    if (!(t->flags & SHOAL__TF_REFS))
        return;
    shoal__targ *a = shoal__task_args(t);
    for (uint32_t i = 0; i < t->nargs; i++)
        if (shoal__targ_kind(&a[i]) != SHOAL_ARG_VALUE)
            shoal__release((shoal_ref){ a[i].ref });
}

/* opts.ctx_done, once, before the result completes: whoever sees the result sees what the
 * context held already let go. */
static inline void ctx_done(struct shoal_task *t)
{
    if (!(t->flags & SHOAL__TF_CTX))
        return;
    shoal__tctx *c = shoal__task_tctx(t);
    if (c->done)
        c->done(c->ctx);
}

/* The timeline's record of how task t ended, with its REF arguments for the flows. */
SHOAL__COLD static void tl_info(struct shoal_task *t, enum shoal__tl_status st,
                                struct shoal__tl_task_info *ti)
{
    ti->result = t->result.id;
    ti->status = st;
    ti->nrefs = 0;
    shoal__targ *a = shoal__task_args(t);
    for (uint32_t i = 0; i < t->nargs && ti->nrefs < SHOAL__TL_REFS; i++)
        if (shoal__targ_kind(&a[i]) == SHOAL_ARG_REF)
            ti->refs[ti->nrefs++] = a[i].ref;
}

/* worker -1: the thread that submitted t ran it (shoal__task_run_here). */
SHOAL__COLD static void tl_ran(struct shoal_task *t, int worker, uint64_t t0, int rc)
{
    struct shoal__tl_task_info ti;
    tl_info(t, rc == 0 && !(t->flags & SHOAL__TF_FAILED) ? SHOAL__TL_OK : SHOAL__TL_FAILED, &ti);
    if (worker < 0)
        shoal__tl_task_here(t->name, t->fn, t0, &ti);
    else
        shoal__tl_task((unsigned)worker, t->name, t->fn, t0, &ti);
}

SHOAL__COLD static void fail_result(struct shoal_task *t, int rc)
{
    if (t->flags & SHOAL__TF_FAILED) {
        shoal__obj_complete_task(t->result, SHOAL_ETASK,
                                 t->fail_msg ? t->fail_msg : "task failed", t->name);
        free(t->fail_msg);
        t->fail_msg = NULL;
        return;
    }
    char msg[160];
    if (t->name)
        snprintf(msg, sizeof msg, "task %s returned %d", t->name, rc);
    else
        snprintf(msg, sizeof msg, "task returned %d (name it with opts.name; give a message "
                                  "with shoal_task_fail)", rc);
    shoal__obj_complete_task(t->result, SHOAL_ETASK, msg, t->name);
}

/* shoal_cancel came before the task began: it completed (or is completing) the result, so
 * the task never runs and only lets go of what it holds: its arguments, its context and
 * its own reference on the result. A zombie stays allocated (see shoal__task_cancel). */
SHOAL__COLD static void discard(struct shoal_task *t, bool zombie)
{
    shoal_ref r = t->result;
    ctx_done(t);
    release_args(t);
    shoal__release(r);
    if (!zombie)
        shoal__task_free(t);
}

void shoal__task_discard(struct shoal_task *t) { discard(t, false); }

static void cancel_claimed(struct shoal_task *t, bool zombie);

/* The start of a run: the start claim (one CAS on the result's word, no lock), which
 * shoal_cancel may have won, and a failed REF argument. false: t was dealt with. */
static inline bool task_begin(struct shoal_task *t)
{
    if (unlikely(!shoal__obj_start(t->result))) {
        discard(t, false);
        return false;
    }
    /* relaxed: whoever queued the task acquired the last `pending` decrement first. */
    if (unlikely(atomic_load_explicit(&t->fail_arg, memory_order_relaxed))) {
        cancel_claimed(t, false);
        return false;
    }
    return true;
}

/* The end of a run that returned rc: complete the result and free t. */
static void task_finish_any(struct shoal_task *t, int rc)
{
    shoal_ref r = t->result;
    /* Arguments and context go first, so that a caller that sees the result sees them
     * released. */
    ctx_done(t);
    release_args(t);
    if (likely(rc == 0 && !(t->flags & SHOAL__TF_FAILED))) {
        /* (no return: an empty object) */
        if (!shoal__obj_complete_task_fast(r))
            shoal__obj_complete_task(r, 0, NULL, t->name);
    } else
        fail_result(t, rc);   /* drops the task's reference too */
    shoal__task_free_inl(t);
}

/* task_finish_any with its common case (a task that returned 0, holds no context or
 * references and was not failed) tested in one go, the rest out of line. */
SHOAL__INLINE void task_finish(struct shoal_task *t, int rc)
{
    if (likely(rc == 0 && !(t->flags & (SHOAL__TF_CTX | SHOAL__TF_REFS | SHOAL__TF_FAILED)))) {
        /* (no return: an empty object) */
        if (!shoal__obj_complete_task_fast(t->result))
            shoal__obj_complete_task(t->result, 0, NULL, t->name);
        shoal__task_free_inl(t);
        return;
    }
    task_finish_any(t, rc);
}

/* shoal__task_run_one's body, folded into shoal__task_run too (one call a task). */
SHOAL__INLINE void run_one(struct shoal_task *t, struct shoal__worker *w)
{
    if (!task_begin(t))
        return;
    t->worker = (int32_t)w->idx;
    shoal__wcount(w->runc);   /* the published line's counter, or the worker's own */
    uint64_t t0 = shoal__tl_begin();
    SHOAL__PROBE_TASK_START(w->idx, t->result.id, t->fn);
    int rc = t->fn(t);
    SHOAL__PROBE_TASK_END(w->idx, t->result.id, rc);
    if (unlikely(shoal__tl_on))
        tl_ran(t, (int)w->idx, t0, rc);
    task_finish(t, rc);
}

void shoal__task_run(struct shoal_task *t, struct shoal__worker *w)
{
    if (unlikely(t->flags & SHOAL__TF_ACTOR))
        shoal__actor_run(t, w);   /* takes the actor, then shoal__task_run_one (actor.c) */
    else
        run_one(t, w);
}

void shoal__task_run_one(struct shoal_task *t, struct shoal__worker *w)
{
    run_one(t, w);
}

void shoal__task_run_here(struct shoal_task *t)
{
    if (!task_begin(t))
        return;
    t->worker = -1;   /* shoal_task_worker: run by a thread that is not a worker */
    uint64_t t0 = shoal__tl_begin();
    SHOAL__PROBE_TASK_START(-1, t->result.id, t->fn);
    int rc = t->fn(t);
    SHOAL__PROBE_TASK_END(-1, t->result.id, rc);
    if (unlikely(shoal__tl_on))
        tl_ran(t, -1, t0, rc);
    task_finish(t, rc);
}

/* The message and code of failed argument i, copied (the argument is released next). */
static char *arg_failure(struct shoal_task *t, uint32_t i, int *code)
{
    shoal__targ *a = &shoal__task_args(t)[i];
    int err;
    shoal__slot *sl = shoal__slot_of((shoal_ref){ a->ref }, &err);
    *code = SHOAL_ETASK;
    char *msg = NULL;
    if (sl) {
        /* acquire: pairs with the release that made the argument FAILED (its message). */
        uint64_t w = atomic_load_explicit(&sl->word, memory_order_acquire);
        if (shoal__w_state(w) == SHOAL__FAILED) {
            int c = -(int)((sl->aux >> 8) & 0xff);   /* table.h: aux[15..8] = -code */
            if (c < 0)
                *code = c;
            const char *p;
            uint64_t n;
            char kept[512];
            if (shoal__slot_bytes(sl, &p, &n) && n)   /* checked as the get path does (rt.h) */
                msg = strndup(p, n);
            else if (shoal__fail_kept((shoal_ref){ a->ref }, kept, sizeof kept))
                msg = strdup(kept);   /* the store had no room for it (core/object.c) */
        }
    }
    if (!msg) {
        char buf[160];
        snprintf(buf, sizeof buf, "argument %u of the task failed (%s)", i, shoal_strerror(*code));
        msg = strdup(buf);
    }
    return msg;
}

void shoal__task_cancel(struct shoal_task *t, bool zombie)
{
    if (!shoal__obj_start(t->result))
        discard(t, zombie);   /* shoal_cancel came first and completes the result */
    else
        cancel_claimed(t, zombie);
}

/* shoal__task_cancel once the task holds the start claim (nobody else completes it). */
static void cancel_claimed(struct shoal_task *t, bool zombie)
{
    uint32_t fa = atomic_load_explicit(&t->fail_arg, memory_order_relaxed);
    int code = SHOAL_ECANCELED;
    char buf[160], *msg = NULL;
    if (fa) {
        msg = arg_failure(t, fa - 1, &code);
    } else {
        snprintf(buf, sizeof buf, "%s%s%s canceled: the runtime shut down before it started",
                 (t->flags & SHOAL__TF_ACTOR) ? "actor call" : "task", t->name ? " " : "",
                 t->name ? t->name : "");
    }
    if (unlikely(shoal__tl_on)) {
        struct shoal__tl_task_info ti;
        tl_info(t, fa ? SHOAL__TL_SKIPPED : SHOAL__TL_CANCELLED, &ti);
        shoal__tl_unrun(shoal__tls.worker, t->name, t->fn, &ti);
    }
    /* A zombie (the caller marked it) stays allocated: its dependency records may still be
     * on lists of objects that never complete, and a late firing must find it marked. */
    shoal_ref r = t->result;
    ctx_done(t);
    release_args(t);
    shoal__obj_complete_drop(r, code, msg ? msg : fa ? "a task argument failed" : buf);
    free(msg);
    if (!zombie)
        shoal__task_free(t);
}

/* ---- calls a running task makes -------------------------------------------------------- */

SHOAL_API size_t shoal_task_nargs(shoal_task *t) { return t ? t->nargs : 0; }

SHOAL_API void *shoal_task_ctx(shoal_task *t)
{
    return t && (t->flags & SHOAL__TF_CTX) ? shoal__task_tctx(t)->ctx : NULL;
}

SHOAL_API void *shoal_task_actor_state(shoal_task *t)
{
    return t && (t->flags & SHOAL__TF_ACTOR) ? shoal__actor_state(shoal__task_tactor(t)->actor)
                                              : NULL;
}

SHOAL__COLD static int bad_index(shoal_task *t, size_t i, const char *call)
{
    if (!t)
        return shoal__err(SHOAL_EINVAL, "%s: task is NULL", call);
    return shoal__err(SHOAL_EINVAL, "%s: argument %zu does not exist (the task has %u)", call,
                      i, t->nargs);
}

/* shoal_task_arg's slow part (every kind but a VALUE, and bad arguments): out of line, so
 * that the common call, a VALUE, saves no registers. */
__attribute__((noinline)) static int task_arg(shoal_task *t, size_t i, const void **data,
                                              size_t *len)
{
    if (unlikely(!t || i >= t->nargs))
        return bad_index(t, i, "shoal_task_arg");
    if (unlikely(!data || !len))
        return shoal__err(SHOAL_EINVAL, "shoal_task_arg: data and len must be non-NULL");
    shoal__targ *a = &shoal__task_args(t)[i];
    switch (shoal__targ_kind(a)) {
    case SHOAL_ARG_VALUE:
        *data = a->data;
        *len = shoal__targ_len(a);
        return 0;
    case SHOAL_ARG_REF: {
        /* Complete before the task started, and held by it. A result of at most 8 bytes
         * held in its slot (a reduction's partial sum) is answered here, where the get
         * answers it out of line on its miss path (callgrind of bench/tasks' DAG: 25
         * instructions fewer an argument). Anything else (bytes in the store, a spill
         * candidate not read yet) is the get's, zero-copy. */
        const shoal__slot *sl = &shoal__rt->slots[shoal__id_idx(a->ref)];
        /* acquire: pairs with the release that made it READY (off and len). */
        uint64_t w = atomic_load_explicit(&sl->word, memory_order_acquire);
        if (likely(((w ^ a->ref) >> SHOAL__HIT_SHIFT) == SHOAL__HIT)) {
            /* Read only once READY (the spiller rewrites it in other states); atomic: an
             * attached process may write it (shoal.h's get reads it so). */
            uint64_t n = __atomic_load_n(&sl->len, __ATOMIC_RELAXED);
            if (likely(shoal__len_inl(n))) {
                *data = &sl->off;
                *len = (size_t)(n ^ SHOAL__LEN_INL);
                return 0;
            }
        }
        return shoal_get((shoal_ref){ a->ref }, data, len);
    }
    default:
        return shoal__err(SHOAL_EINVAL, "shoal_task_arg: argument %zu is REF_PASS (not "
                                        "resolved): use shoal_task_arg_ref", i);
    }
}

SHOAL_API int shoal_task_arg(shoal_task *t, size_t i, const void **data, size_t *len)
{
    if (likely(t && i < t->nargs && data && len)) {
        shoal__targ *a = &shoal__task_args(t)[i];
        if (likely(shoal__targ_kind(a) == SHOAL_ARG_VALUE)) {
            *data = a->data;
            *len = shoal__targ_len(a);
            return 0;
        }
    }
    return task_arg(t, i, data, len);
}

SHOAL_API int shoal_task_arg_ref(shoal_task *t, size_t i, shoal_ref *ref)
{
    if (unlikely(!t || i >= t->nargs))
        return bad_index(t, i, "shoal_task_arg_ref");
    if (unlikely(!ref))
        return shoal__err(SHOAL_EINVAL, "shoal_task_arg_ref: ref is NULL");
    shoal__targ *a = &shoal__task_args(t)[i];
    if (unlikely(shoal__targ_kind(a) == SHOAL_ARG_VALUE))
        return shoal__err(SHOAL_EINVAL, "shoal_task_arg_ref: argument %zu is a VALUE: use "
                                        "shoal_task_arg", i);
    ref->id = a->ref;
    return 0;
}

SHOAL__COLD static int already_set(shoal_task *t, const char *call)
{
    return shoal__err(SHOAL_EEXIST, "%s: the task's result is already %s", call,
                      (t->flags & SHOAL__TF_FAILED) ? "failed (shoal_task_fail)"
                                                    : "set (a task returns at most once)");
}

SHOAL_API int shoal_task_return_buf(shoal_task *t, size_t len, void **buf)
{
    if (unlikely(!t || !buf))
        return shoal__err(SHOAL_EINVAL, "shoal_task_return_buf: task and buf must be non-NULL");
    if (unlikely(t->flags & (SHOAL__TF_RETURNED | SHOAL__TF_FAILED)))
        return already_set(t, "shoal_task_return_buf");
    int rc = shoal__obj_fill_result(t->result, len, buf);
    if (unlikely(rc))
        return rc;
    t->flags |= SHOAL__TF_RETURNED;
    return 0;
}

/* shoal_task_return but for a result held in its slot: out of line, so that the public
 * call's fast path saves no registers. */
__attribute__((noinline)) static int task_return(shoal_task *t, const void *data, size_t len)
{
    if (unlikely(!t || (!data && len)))
        return shoal__err(SHOAL_EINVAL, t ? "shoal_task_return: data is NULL but len is %zu"
                                          : "shoal_task_return: task is NULL (%zu bytes)", len);
    if (unlikely(t->flags & (SHOAL__TF_RETURNED | SHOAL__TF_FAILED)))
        return already_set(t, "shoal_task_return");
    void *buf = NULL;   /* set when rc is 0; gcc 12 -flto could not see it */
    int rc = shoal__obj_fill_result(t->result, len, &buf);
    if (unlikely(rc))
        return rc;
    shoal__copy_bytes(buf, data, len);
    t->flags |= SHOAL__TF_RETURNED;
    return 0;
}

SHOAL_API int shoal_task_return(shoal_task *t, const void *data, size_t len)
{
    void *small;   /* a word-sized result (a count, a sum): held in its slot, no call */
    if (likely(t && data && !(t->flags & (SHOAL__TF_RETURNED | SHOAL__TF_FAILED))) &&
        likely((small = shoal__obj_fill_small(t->result, len)) != NULL)) {
        shoal__copy_bytes(small, data, len);
        t->flags |= SHOAL__TF_RETURNED;
        return 0;
    }
    return task_return(t, data, len);
}

SHOAL_API int shoal_task_return_with_refs(shoal_task *t, const void *data, size_t len,
                                         const shoal_ref refs[], size_t nrefs)
{
    if (unlikely(!t || (!data && len)))
        return shoal__err(SHOAL_EINVAL, t ? "shoal_task_return_with_refs: data is NULL but len "
                                            "is %zu"
                                          : "shoal_task_return_with_refs: task is NULL (%zu "
                                            "bytes)", len);
    if (unlikely(t->flags & (SHOAL__TF_RETURNED | SHOAL__TF_FAILED)))
        return already_set(t, "shoal_task_return_with_refs");
    int rc = shoal__obj_fill_refs(t->result, data, len, refs, nrefs);
    if (unlikely(rc))
        return rc;
    t->flags |= SHOAL__TF_RETURNED;
    return 0;
}

SHOAL_API int shoal_task_fail(shoal_task *t, const char *message)
{
    if (unlikely(!t))
        return shoal__err(SHOAL_EINVAL, "shoal_task_fail: task is NULL");
    if (t->flags & SHOAL__TF_FAILED)
        return shoal__err(SHOAL_EEXIST, "shoal_task_fail: the task already failed (the first "
                                        "message is kept)");
    char def[96];
    if (!message) {
        snprintf(def, sizeof def, "task%s%s failed", t->name ? " " : "", t->name ? t->name : "");
        message = def;
    }
    t->fail_msg = strdup(message);   /* NULL when out of memory: "task failed" is used */
    t->flags |= SHOAL__TF_FAILED;
    return 0;
}

/* ---- cancellation ---------------------------------------------------------------------- */

static int cancel(shoal_ref ref)
{
    if (unlikely(shoal__rt->sched == NULL))
        return shoal__err(SHOAL_EPERM, "shoal_cancel: this process runs no workers (an attached "
                                       "client): only the process that submitted a task can "
                                       "cancel it");
    return shoal__obj_cancel(ref);
}

SHOAL_API int shoal_cancel(shoal_ref ref)
{
    SHOAL__CALL(cancel(ref));
}

SHOAL_API int shoal_task_cancelled(shoal_task *t)
{
    if (unlikely(!t))
        return shoal__err(SHOAL_EINVAL, "shoal_task_cancelled: task is NULL");
    return shoal__obj_cancelled(t->result);
}

SHOAL_API int shoal_task_worker(shoal_task *t)
{
    if (unlikely(!t))
        return shoal__err(SHOAL_EINVAL, "shoal_task_worker: task is NULL");
    return t->worker;
}
