/* result.h - a task's result made inline, for the submit path (sched/submit.c): a slot from
 * this thread's cache, the object's fields and one release store of its word, with no call.
 * Everything else (no cache, a shared store) is shoal__obj_new_result (core/object.c). */
#ifndef SHOAL_CORE_RESULT_H
#define SHOAL_CORE_RESULT_H

#include "thread.h"

/* shoal__obj_new_result: a PENDING task result with two references (the submitter's and
 * the task's own) and no bytes. */
static inline int shoal__obj_new_result_inl(shoal_ref *out)
{
    shoal__rt_t *rt = shoal__rt;
    struct shoal__thr *t = shoal__tls.thr;
    if (likely(t != NULL && t->epoch == shoal__tls.epoch && t->nfree != 0 &&
               shoal__holds == NULL)) {
        uint32_t idx = t->free[t->nfree - 1];
        shoal__slot *s = &rt->slots[idx];
        /* relaxed: a cached slot is this thread's alone (see obj_make). */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (likely(shoal__w_state(w) == SHOAL__FREE)) {   /* else obj_make skips it */
            t->nfree--;
            uint64_t gen = shoal__w_gen(w);
            s->off = 0;
            s->len = 0;
            /* atomic: as in obj_make (the owner's service thread may read it). */
            __atomic_store_n(&s->aux, rt->proc | SHOAL__AUX_TASK, __ATOMIC_RELAXED);
            atomic_store_explicit(&rt->deps[idx], NULL, memory_order_relaxed);
            shoal__objs_add(rt, t, 0, 1);
            /* release: publishes off/len/aux, as obj_make's store of the word. */
            atomic_store_explicit(&s->word, shoal__w_make(gen, SHOAL__PENDING, 2),
                                  memory_order_release);
            out->id = shoal__id_make(idx, gen);
            return 0;
        }
    }
    return shoal__obj_new_result(out);
}

#endif
