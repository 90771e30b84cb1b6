/* inject.h - the injection queue: tasks from outside a worker's own deque (foreign threads,
 * other nodes, dependency completions) enter here. Producers claim a cell of a ring with one
 * CAS (Vyukov's bounded queue) and never wait: when the ring is full they append to an
 * intrusive overflow list (Vyukov's MPSC node queue: one exchange and one store). Consumers
 * are the workers allowed to run the queue's tasks; they take turns with a try-flag, never
 * wait for it (a worker that finds it taken looks elsewhere), and take a batch at a time:
 * the ring hands over a batch of task pointers from a few cache lines, whose tasks can then
 * be fetched in parallel, where a linked list costs one dependent cache miss per task.
 *
 * Synchronisation:
 *   enq         producers CAS it to claim a cell (seq_cst: also orders the claim before the
 *               producer's check of the sleeper count, the Dekker pair with park.c).
 *   cell.seq    the producer's release store publishes the cell's item (and the task's
 *               fields) to the consumer's acquire load; the consumer's release store hands
 *               the emptied cell back to a producer's acquire load one lap later. It holds
 *               Vyukov's sequence number less the cell's index (cell_seq), so that a ring
 *               of zeroes is an empty one: the ring needs no initialising pass, and its
 *               pages (in memory mapped for it, zeroed by the kernel) are only touched once
 *               the queue gets that long.
 *   deq         written by the consumer holding the flag; others read it only to judge
 *               emptiness (relaxed: a stale value only makes the queue look fuller).
 *   tail        overflow: producers exchange it (seq_cst, as enq).
 *   link.next   overflow: the producer's release store links the predecessor; the
 *               consumer's acquire load pairs with it.
 *   head        overflow: consumer-only, under the flag.
 *   busy        the consumer flag: acquire exchange to take it, release store to drop it
 *               (the next consumer sees deq and head as the last one left them).
 * A producer preempted between its claim (or exchange) and its publication hides its task
 * (and, in the list, those behind it) until it resumes; consumers then see a nonempty queue
 * they cannot take from yet, and retry.
 */
#ifndef SHOAL_SCHED_INJECT_H
#define SHOAL_SCHED_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/store.h"

typedef struct shoal__qlink {
    _Atomic(struct shoal__qlink *) next;
} shoal__qlink;

/* Ring cells (16 bytes each, 4 MiB of address space). The overflow list costs its consumer
 * one dependent cache miss per task (the producer wrote the link, on another core): a DAG
 * driver's batch of 100k leaves, which workers drain slower than the driver makes them,
 * spent ~60% of the workers' time in taking from the queue on that chain with 65536 cells,
 * ~35% with this many. The pages of cells never reached are never touched (see cell.seq). */
#define SHOAL__INJ_CAP 262144u

typedef struct shoal__cell {
    _Atomic uint64_t seq;
    shoal__qlink *item;
} shoal__cell;

/* A cell's seq as stored for the cell that position pos maps to: Vyukov's number v less the
 * cell's index, which for the numbers a cell of pos takes (pos, pos + 1, pos + CAP) is v less
 * pos's lap start plus what pos adds to it, so a fresh cell holds 0 for pos = its index. */
static inline uint64_t shoal__cell_seq(uint64_t pos, uint64_t add)
{
    return (pos & ~(uint64_t)(SHOAL__INJ_CAP - 1)) + add;
}

typedef struct shoal__inject {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t enq;            /* producers' line */
    /* Its own line: unwritten while the ring has room, so pollers keep a shared copy. */
    _Alignas(SHOAL__CACHELINE) _Atomic(shoal__qlink *) tail;
    _Alignas(SHOAL__CACHELINE) _Atomic int busy;                /* consumers' line */
    _Atomic uint64_t deq;
    shoal__qlink *head;
    shoal__qlink stub;
    _Alignas(SHOAL__CACHELINE) shoal__cell cell[SHOAL__INJ_CAP];
} shoal__inject;

/* q is in zeroed memory (the scheduler maps it): every cell is empty for lap 0 already. */
static inline void shoal__inject_init(shoal__inject *q)
{
    atomic_init(&q->enq, 0);
    atomic_init(&q->deq, 0);
    atomic_init(&q->stub.next, NULL);
    q->head = &q->stub;
    atomic_init(&q->tail, &q->stub);
    atomic_init(&q->busy, 0);
}

static inline void shoal__inject_push_list(shoal__inject *q, shoal__qlink *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* seq_cst: see the table above. */
    shoal__qlink *prev = atomic_exchange_explicit(&q->tail, n, memory_order_seq_cst);
    /* release: pairs with the consumer's acquire load of next. */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

static inline void shoal__inject_push(shoal__inject *q, shoal__qlink *n)
{
    uint64_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        shoal__cell *c = &q->cell[pos & (SHOAL__INJ_CAP - 1)];
        /* acquire: pairs with the consumer's release that emptied the cell. */
        int64_t d = (int64_t)(atomic_load_explicit(&c->seq, memory_order_acquire) -
                              shoal__cell_seq(pos, 0));
        if (likely(d == 0)) {
            /* seq_cst: see the table above. */
            if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1,
                                                      memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                c->item = n;
                /* release: pairs with the consumer's acquire load of seq. */
                atomic_store_explicit(&c->seq, shoal__cell_seq(pos, 1), memory_order_release);
                return;
            }
        } else if (d < 0) {
            shoal__inject_push_list(q, n);   /* full: a lap behind */
            return;
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

/* Push items[0..n) in order, claiming a run of free cells with one CAS where the ring has
 * room for them all (else one at a time, as shoal__inject_push). Cells are emptied in
 * order (one consumer at a time, under the flag), so the last cell of the run being free
 * for this lap means every cell before it is: its acquire load pairs with the release
 * that emptied it, which the flag orders after the releases that emptied the earlier
 * ones. Each cell is still published by its own release store. n <= SHOAL__INJ_CAP. */
static inline void shoal__inject_push_many(shoal__inject *q, shoal__qlink *const items[],
                                           unsigned n)
{
    while (n) {
        uint64_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        shoal__cell *lastc = &q->cell[(pos + n - 1) & (SHOAL__INJ_CAP - 1)];
        /* acquire: pairs with the consumer's release that emptied the cell (see above). */
        int64_t d = (int64_t)(atomic_load_explicit(&lastc->seq, memory_order_acquire) -
                              shoal__cell_seq(pos + n - 1, 0));
        if (d < 0) {   /* no room for the run: one at a time (the overflow list if full) */
            shoal__inject_push(q, items[0]);
            items++;
            n--;
            continue;
        }
        /* seq_cst: as shoal__inject_push's claim. */
        if (d > 0 || !atomic_compare_exchange_strong_explicit(&q->enq, &pos, pos + n,
                                                              memory_order_seq_cst,
                                                              memory_order_relaxed))
            continue;   /* another producer claimed meanwhile */
        for (unsigned i = 0; i < n; i++) {
            shoal__cell *c = &q->cell[(pos + i) & (SHOAL__INJ_CAP - 1)];
            c->item = items[i];
            /* release: pairs with the consumer's acquire load of seq. */
            atomic_store_explicit(&c->seq, shoal__cell_seq(pos + i, 1), memory_order_release);
        }
        return;
    }
}

/* Any thread: whether the queue may hold a task. seq_cst loads: a sleeping worker's
 * re-check, the partner of the producer's claim or exchange. The overflow list is empty
 * exactly when its tail is the stub (the consumer re-queues the stub to take the last). */
static inline bool shoal__inject_nonempty(shoal__inject *q)
{
    return atomic_load_explicit(&q->enq, memory_order_seq_cst) !=
               atomic_load_explicit(&q->deq, memory_order_relaxed) ||
           atomic_load_explicit(&q->tail, memory_order_seq_cst) != &q->stub;
}

/* Any thread, a hint for pollers (find_task, spinning workers): whether a consumer would
 * find a task now. It reads the cell a consumer takes next and the overflow tail, not the
 * producers' enq line, which a poll would otherwise pull away from the producer before
 * each claim (a foreign thread submitting 1M tasks spent most of its time there).
 * relaxed: a hint; a sleeping worker's re-check uses shoal__inject_nonempty. */
static inline bool shoal__inject_ready(shoal__inject *q)
{
    uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    return atomic_load_explicit(&q->cell[pos & (SHOAL__INJ_CAP - 1)].seq,
                                memory_order_relaxed) == shoal__cell_seq(pos, 1) ||
           atomic_load_explicit(&q->tail, memory_order_relaxed) != &q->stub;
}

/* Consumer, flag held: the oldest task of the overflow list, or NULL. */
static inline shoal__qlink *shoal__inject_pop_list(shoal__inject *q)
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
    shoal__inject_push_list(q, &q->stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        q->head = next;
        return head;
    }
    return NULL;
}

/* Consumer, flag held: up to max of the oldest tasks into out[]; returns how many. The
 * overflow list goes first: it filled while the ring was full, so it holds old tasks. */
static inline unsigned shoal__inject_take(shoal__inject *q, shoal__qlink **out, unsigned max)
{
    unsigned n = 0;
    if (unlikely(atomic_load_explicit(&q->tail, memory_order_relaxed) != &q->stub)) {
        shoal__qlink *l;
        while (n < max && (l = shoal__inject_pop_list(q)))
            out[n++] = l;
    }
    uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    while (n < max) {
        shoal__cell *c = &q->cell[pos & (SHOAL__INJ_CAP - 1)];
        /* acquire: pairs with the producer's release store of seq. */
        if (atomic_load_explicit(&c->seq, memory_order_acquire) != shoal__cell_seq(pos, 1))
            break;
        out[n++] = c->item;
        /* release: pairs with the acquire load of the producer that reuses the cell. */
        atomic_store_explicit(&c->seq, shoal__cell_seq(pos, SHOAL__INJ_CAP),
                              memory_order_release);
        pos++;
    }
    /* relaxed: see the table (the next consumer acquires the flag). */
    atomic_store_explicit(&q->deq, pos, memory_order_relaxed);
    return n;
}

/* Consumer, flag held: the oldest task, left in the queue, or NULL when the ring has none
 * or an overflow list exists (its tasks go first). The task stays queued, so it stays
 * allocated while the flag is held: its fields may be read. shoal__inject_pop_head then
 * takes it. The thread that submitted a task and now waits for it looks this way
 * (sched/submit.c, shoal__run_own). */
static inline shoal__qlink *shoal__inject_peek(shoal__inject *q)
{
    if (atomic_load_explicit(&q->tail, memory_order_relaxed) != &q->stub)
        return NULL;
    uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    shoal__cell *c = &q->cell[pos & (SHOAL__INJ_CAP - 1)];
    /* acquire: pairs with the producer's release store of seq (the item and the task). */
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != shoal__cell_seq(pos, 1))
        return NULL;
    return c->item;
}

/* Consumer, flag held, right after shoal__inject_peek found a task: take it. */
static inline void shoal__inject_pop_head(shoal__inject *q)
{
    uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    /* release: pairs with the acquire load of the producer that reuses the cell. */
    atomic_store_explicit(&q->cell[pos & (SHOAL__INJ_CAP - 1)].seq,
                          shoal__cell_seq(pos, SHOAL__INJ_CAP), memory_order_release);
    /* relaxed: see the table (the next consumer acquires the flag). */
    atomic_store_explicit(&q->deq, pos + 1, memory_order_relaxed);
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
