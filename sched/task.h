/* task.h - a task as the scheduler holds it: one block with the header, the argument
 * table, the dependency records and the copied VALUE bytes, allocated from per-thread
 * caches (pool.c) so that submitting does not call malloc. Internal.
 *
 * Block layout: [struct shoal_task][shoal__targ x nargs][shoal__tctx if TF_CTX]
 *               [shoal__tactor if TF_ACTOR][shoal__tdep x nrefs][values][name]
 *
 * Synchronisation:
 *   fields   written by the submitter before the task is published (deque push, injection
 *            push or the release half of the last `pending` decrement), read by the worker
 *            that runs it after the matching acquire.
 *   pending  REF arguments not complete yet, plus one held by the submitter while it
 *            registers them; acq_rel decrements: the thread that reaches zero sees every
 *            earlier firer's write of fail_arg and schedules the task.
 *   fail_arg first failed REF argument (index + 1); CAS relaxed, published by `pending`.
 *   state    relaxed atomic: written by the allocating and freeing thread (ordered with the
 *            task's other uses by the queues and the pool), and at shutdown claimed by CAS
 *            (LIVE or DROPPED -> ZOMBIE, LIVE -> DROPPED) between the stopping thread and a
 *            late completion on another thread, so that exactly one of them acts.
 */
#ifndef SHOAL_SCHED_TASK_H
#define SHOAL_SCHED_TASK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/store.h"
#include "inject.h"

/* Size classes of pooled blocks; anything larger is malloc'd (SHOAL__CLS_HEAP). */
#define SHOAL__NCLS 3
#define SHOAL__CLS_HEAP 255
static const uint32_t shoal__cls_size[SHOAL__NCLS] = { 128, 256, 1024 };
/* The class of a block of size bytes: the smallest that holds it, SHOAL__NCLS if none. */
static inline unsigned shoal__cls_of(size_t size)
{
    unsigned k = 0;
    while (k < SHOAL__NCLS && size > shoal__cls_size[k])
        k++;
    return k;
}

/* Block states. DROPPED: made runnable by a thread outside the scheduler while shutdown
 * stopped taking such tasks; ZOMBIE: canceled by shutdown while it still waited. Both stay
 * allocated (see shoal__pool_stop). */
enum { SHOAL__TS_FREE = 0, SHOAL__TS_LIVE = 1, SHOAL__TS_ZOMBIE = 2, SHOAL__TS_DROPPED = 3 };

#define SHOAL__TF_RETURNED 1u   /* the result has its bytes (return / return_buf) */
#define SHOAL__TF_FAILED   2u   /* shoal_task_fail was called: fail_msg holds the message */
#define SHOAL__TF_BOUND    4u   /* node >= 0 is binding: only that node's workers run it */
#define SHOAL__TF_REFS     8u   /* holds references on REF / REF_PASS arguments */
#define SHOAL__TF_CTX     16u   /* a shoal__tctx follows the argument table (opts.ctx) */
#define SHOAL__TF_ACTOR   32u   /* an actor's call: a shoal__tactor follows (actor.c) */
#define SHOAL__TF_ORPHAN  64u   /* an actor's call its actor let go of (destroyed): its result
                                   is failed already; it only discards itself (actor.c) */

/* One argument: a VALUE's copy (data, len), or a ref (REF, REF_PASS). */
typedef struct shoal__targ {
    union { const void *data; uint64_t ref; };
    uint64_t len_kind;          /* len << 2 | kind */
} shoal__targ;

struct shoal_task;
/* A dependency record: registered on a pending REF argument (core/deps.c). In the owner's
 * fields: `aux` is its byte offset from the task (so the record finds its task without a
 * pointer), `aux16` the argument's index (below MAX_ARGS, 65535). 16 bytes: a task of two
 * REF arguments fills 128 bytes, two cache lines (the smallest block class). */
typedef struct shoal__tdep {
    shoal__dep dep;
} shoal__tdep;

struct shoal_task {
    shoal__qlink link;          /* injection queue / free list; must stay first */
    shoal_fn fn;
    shoal_ref result;
    uint32_t nargs;
    int32_t worker;             /* the worker running it */
    _Atomic int32_t pending;
    _Atomic uint32_t fail_arg;
    int16_t node;               /* NUMA node it must run on (BOUND) or -1 */
    uint8_t cls;                /* SHOAL__CLS_* */
    _Atomic uint8_t state;      /* SHOAL__TS_*; relaxed: see the synchronisation note */
    uint8_t flags;              /* SHOAL__TF_* */
    uint8_t pad[3];
    char *fail_msg;             /* malloc'd; shoal_task_fail */
    const char *name;           /* copied into the block, or NULL */
};
_Static_assert(sizeof(struct shoal_task) == 64, "the task header is one cache line");
_Static_assert(sizeof(shoal__tdep) == 16 &&
                   sizeof(struct shoal_task) + 2 * (sizeof(shoal__targ) + sizeof(shoal__tdep)) <= 128,
               "a task of two REF arguments fits the smallest block class");

static inline shoal__targ *shoal__task_args(struct shoal_task *t) { return (shoal__targ *)(t + 1); }

/* opts.ctx and opts.ctx_done, when either was given (SHOAL__TF_CTX). */
typedef struct shoal__tctx {
    void *ctx;
    void (*done)(void *ctx);
} shoal__tctx;
_Static_assert(sizeof(shoal__tctx) == 16, "keeps the dependency records 16-byte aligned");

static inline shoal__tctx *shoal__task_tctx(struct shoal_task *t)
{
    return (shoal__tctx *)(shoal__task_args(t) + t->nargs);
}

/* The actor an actor's call belongs to (SHOAL__TF_ACTOR). */
struct shoal__actor;
typedef struct shoal__tactor {
    struct shoal__actor *actor;
    uint64_t pad;
} shoal__tactor;
_Static_assert(sizeof(shoal__tactor) == 16, "keeps the dependency records 16-byte aligned");

static inline shoal__tactor *shoal__task_tactor(struct shoal_task *t)
{
    return (shoal__tactor *)((char *)(shoal__task_args(t) + t->nargs) +
                             ((t->flags & SHOAL__TF_CTX) ? sizeof(shoal__tctx) : 0));
}

static inline unsigned shoal__targ_kind(const shoal__targ *a) { return (unsigned)(a->len_kind & 3); }
static inline size_t shoal__targ_len(const shoal__targ *a) { return (size_t)(a->len_kind >> 2); }

/* ---- pool.c ------------------------------------------------------------------------------ */
/* Start / stop the block pool for one scheduler run. Stop forgets every block but keeps
 * the memory mapped until the next start: a task still registered on an object that a
 * thread outside the scheduler completes during shutdown (the I/O thread) is reached
 * through its dependency record after the scheduler is gone, until the store is torn down. */
SHOAL__HIDDEN int  shoal__pool_start(void);
SHOAL__HIDDEN void shoal__pool_stop(void);
/* Unmap what the last run kept mapped (sched.h: once the store is torn down). */
SHOAL__HIDDEN void shoal__pool_release(void);
/* Bytes of task-block chunks mapped now, this run's and the last one's (tests). */
SHOAL__HIDDEN size_t shoal__pool_mapped(void);
/* In a fork() child: drop the parent's blocks and make the lock anew. */
SHOAL__HIDDEN void shoal__pool_forget(void);
/* A block of at least `size` bytes, state LIVE, cls set. NULL with the error set. */
SHOAL__HIDDEN struct shoal_task *shoal__task_alloc(size_t size);
/* What a thread outside the workers remembers for shoal__run_own (submit.c): the result ID
 * of the task it submitted last, and how many of its tasks it runs now, nested. */
struct shoal__submitted {
    uint64_t id;
    uint32_t depth;
};
/* A thread's cache of free blocks, per class (pool.c), and the pool run it belongs to: a
 * block taken or given back without a call is what the task path's alloc and free are. */
#define SHOAL__POOL_BATCH 64u
struct shoal__tcache {
    struct { uint32_t n; struct shoal_task *obj[2 * SHOAL__POOL_BATCH]; } cls[SHOAL__NCLS];
    struct shoal__submitted own;         /* shoal__pool_submitted */
    struct shoal_task **scratch;         /* shoal__pool_scratch: malloc'd, grown as needed */
    size_t nscratch;
};
struct shoal__pool_tl {
    uint64_t gen;                        /* the pool run this cache belongs to */
    struct shoal__tcache *c;
};
SHOAL__HIDDEN extern __thread struct shoal__pool_tl shoal__pool_tl
    __attribute__((tls_model("initial-exec")));
/* The running pool's generation, 0 while stopped. relaxed loads: threads reach the pool
 * only after init publishes the runtime (release), which was started before. */
SHOAL__HIDDEN extern _Atomic uint64_t shoal__pool_gen;
/* The calling thread's cache of this pool run, or NULL (none yet, or an older run's). */
static inline struct shoal__tcache *shoal__tcache_get(void)
{
    struct shoal__tcache *c = shoal__pool_tl.c;
    if (likely(c && shoal__pool_tl.gen ==
                        atomic_load_explicit(&shoal__pool_gen, memory_order_relaxed)))
        return c;
    return NULL;
}
/* shoal__task_alloc of a class-k block (pool.c: the cache empty or stale, out of line). */
SHOAL__HIDDEN struct shoal_task *shoal__task_alloc_slow(unsigned k);
static inline struct shoal_task *shoal__task_alloc_cls(unsigned k)
{
    struct shoal__tcache *c = shoal__tcache_get();
    if (likely(c && c->cls[k].n)) {
        struct shoal_task *t = c->cls[k].obj[--c->cls[k].n];
        atomic_store_explicit(&t->state, SHOAL__TS_LIVE, memory_order_relaxed);
        return t;
    }
    return shoal__task_alloc_slow(k);
}
/* Warm, for ownership, the first `bytes` of the block that the `ahead`-th next
 * shoal__task_alloc(size) on this thread will most likely hand out (a batch submit writes
 * blocks that other cores freed last, one after another). Only a hint: nothing is taken. */
static inline void shoal__task_prefetch_ahead(size_t size, size_t bytes, unsigned ahead)
{
    unsigned k = shoal__cls_of(size);
    struct shoal__tcache *c = k < SHOAL__NCLS ? shoal__tcache_get() : NULL;
    if (c && c->cls[k].n > ahead) {
        const char *b = (const char *)c->cls[k].obj[c->cls[k].n - 1 - ahead];
        for (size_t l = 0; l < bytes && l < shoal__cls_size[k]; l += SHOAL__CACHELINE)
            shoal__prefetchw(b + l);
    }
}
/* The calling thread's shoal__submitted, kept with its block cache (no static TLS of its own);
 * NULL when the thread has no cache of this pool run (then nothing is remembered). */
SHOAL__HIDDEN struct shoal__submitted *shoal__pool_submitted(void);
SHOAL__HIDDEN void shoal__task_free(struct shoal_task *t);
/* shoal__task_free's general path (a heap block, a full or stale cache). */
SHOAL__HIDDEN void shoal__task_free_slow(struct shoal_task *t);
/* shoal__task_free with the cache's fast path inline. */
static inline void shoal__task_free_inl(struct shoal_task *t)
{
    unsigned k = t->cls;
    struct shoal__tcache *c = shoal__tcache_get();
    if (likely(k != SHOAL__CLS_HEAP && c && c->cls[k].n < 2 * SHOAL__POOL_BATCH)) {
        atomic_store_explicit(&t->state, SHOAL__TS_FREE, memory_order_relaxed);
        c->cls[k].obj[c->cls[k].n++] = t;
        return;
    }
    shoal__task_free_slow(t);
}
/* The calling thread's scratch list of at least n task pointers (shoal_submit_batch holds
 * its blocks there until they are all built), kept with its block cache and grown only
 * when a batch is longer than any before on this thread; freed at thread exit. Valid until
 * the thread's next call. NULL with the error set (SHOAL_ENOMEM). */
SHOAL__HIDDEN struct shoal_task **shoal__pool_scratch(size_t n);
/* Shutdown, after the workers are joined: call fn on every LIVE or DROPPED block (tasks
 * waiting for dependencies, or dropped). fn may free blocks. Returns how many calls
 * returned true. */
SHOAL__HIDDEN size_t shoal__pool_each_live(bool (*fn)(struct shoal_task *));

/* ---- task.c ------------------------------------------------------------------------------ */
struct shoal__worker;
/* Run t on the calling worker w, then complete its result and free it. */
SHOAL__HIDDEN void shoal__task_run(struct shoal_task *t, struct shoal__worker *w);
/* Run t (start claim, arguments, fn, completion) and free it: shoal__task_run's body for
 * one task, which an actor's call loop (actor.c) calls once it holds the actor. */
SHOAL__HIDDEN void shoal__task_run_one(struct shoal_task *t, struct shoal__worker *w);
/* Let go of a task that will never run and whose result someone else completed (or
 * completes): context, arguments, its own reference on the result; then free it. */
SHOAL__HIDDEN void shoal__task_discard(struct shoal_task *t);
/* Run t on the calling thread, which is not a worker (shoal__run_own): as shoal__task_run,
 * with shoal_task_worker answering -1 and no timeline event (the timeline is per worker). */
SHOAL__HIDDEN void shoal__task_run_here(struct shoal_task *t);
/* Complete t's result as canceled (or as failed, when a REF argument failed) without
 * running it; release its references and free it, or, for a zombie (its state already
 * ZOMBIE: shutdown's walk), keep it allocated. */
SHOAL__HIDDEN void shoal__task_cancel(struct shoal_task *t, bool zombie);

/* ---- actor.c ------------------------------------------------------------------------------ */
/* shoal__task_run for an actor's call (SHOAL__TF_ACTOR): take the actor's turn, run the call,
 * then the next calls of the actor while they are ready (a bounded batch). */
SHOAL__HIDDEN void shoal__actor_run(struct shoal_task *t, struct shoal__worker *w);
/* shoal_actor_submit's end (submit.c): t is built, its REF arguments registered, and one
 * count of `pending` is still held for "at the head of the actor's queue". Queue it. */
SHOAL__HIDDEN void shoal__actor_enqueue(struct shoal__actor *a, struct shoal_task *t);
/* The state pointer shoal_actor_create was given. */
SHOAL__HIDDEN void *shoal__actor_state(const struct shoal__actor *a);
/* The node an actor's calls are bound to, or -1. */
SHOAL__HIDDEN int shoal__actor_node(const struct shoal__actor *a);
/* Shutdown (shoal__sched_stop, after the workers are joined and every call canceled): call
 * destroy(state) of each actor still alive, once, and free them all. */
SHOAL__HIDDEN void shoal__actors_stop(void);
/* fork() child: the parent's actors are not the child's. */
SHOAL__HIDDEN void shoal__actors_forget(void);

#endif
