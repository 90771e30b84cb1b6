/* inject.h - the injection queue: tasks from outside a worker's own deque (foreign threads,
 * other nodes, dependency completions) enter here. An intrusive multi-producer queue
 * (Vyukov's MPSC node queue): a producer is one atomic exchange and one store, never waits.
 * Consumers are the workers allowed to run its tasks; they take turns with a try-flag and
 * never wait for it (a worker that finds the flag taken looks elsewhere).
 *
 * Synchronisation:
 *   tail        producers exchange it (seq_cst: release publishes the task's fields, and
 *               seq_cst orders it before the producer's check of the sleeper count, the
 *               Dekker pair with park.c).
 *   link.next   the producer's release store links the predecessor; the consumer's acquire
 *               load pairs with it.
 *   head        consumer-only, under the flag.
 *   busy        the consumer flag: acquire exchange to take it, release store to drop it
 *               (the next consumer sees head as the last one left it).
 * A producer preempted between its exchange and its link hides the tasks behind it until it
 * resumes; consumers then see an empty queue with a nonempty tail and retry later.
 */
#ifndef SHOAL_SCHED_INJECT_H
#define SHOAL_SCHED_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>

#include "../core/rt.h"

typedef struct shoal__qlink {
    _Atomic(struct shoal__qlink *) next;
} shoal__qlink;

typedef struct shoal__inject {
    _Alignas(SHOAL__CACHELINE) _Atomic(shoal__qlink *) tail;   /* producers' line */
    _Alignas(SHOAL__CACHELINE) _Atomic int busy;                /* consumers' line */
    shoal__qlink *head;
    shoal__qlink stub;
} shoal__inject;

static inline void shoal__inject_init(shoal__inject *q)
{
    atomic_init(&q->stub.next, NULL);
    q->head = &q->stub;
    atomic_init(&q->tail, &q->stub);
    atomic_init(&q->busy, 0);
}

static inline void shoal__inject_push(shoal__inject *q, shoal__qlink *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* seq_cst: see the table above. */
    shoal__qlink *prev = atomic_exchange_explicit(&q->tail, n, memory_order_seq_cst);
    /* release: pairs with the consumer's acquire load of next. */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Any thread: whether the queue may hold a task. seq_cst: a sleeping worker's re-check,
 * the partner of the producer's exchange. The stub is the tail exactly when the queue has
 * been drained (the consumer re-pushes the stub to take the last task). */
static inline bool shoal__inject_nonempty(shoal__inject *q)
{
    return atomic_load_explicit(&q->tail, memory_order_seq_cst) != &q->stub;
}

/* Consumer, flag held: the oldest task, or NULL (empty, or a producer is mid-push). */
static inline shoal__qlink *shoal__inject_pop_locked(shoal__inject *q)
{
    shoal__qlink *head = q->head;
    /* acquire: pairs with the producer's release store of next. */
    shoal__qlink *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->stub) {
        if (!next)
            return NULL;
        q->head = head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next) {
        q->head = next;
        return head;
    }
    /* head is the last linked node: take it only once the stub is queued behind it. */
    if (atomic_load_explicit(&q->tail, memory_order_acquire) != head)
        return NULL;
    shoal__inject_push(q, &q->stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        q->head = next;
        return head;
    }
    return NULL;
}

static inline bool shoal__inject_trylock(shoal__inject *q)
{
    /* A plain load first keeps a busy flag's line shared while others poll it. */
    if (atomic_load_explicit(&q->busy, memory_order_relaxed))
        return false;
    /* acquire: pairs with the release in shoal__inject_unlock. */
    return atomic_exchange_explicit(&q->busy, 1, memory_order_acquire) == 0;
}

static inline void shoal__inject_unlock(shoal__inject *q)
{
    /* release: pairs with the acquire exchange in shoal__inject_trylock. */
    atomic_store_explicit(&q->busy, 0, memory_order_release);
}

#endif
