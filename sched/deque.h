/* deque.h - the per-worker work-stealing deque (Chase-Lev, after Le, Pop, Cohen and Zappa
 * Nardelli, "Correct and efficient work-stealing for weak memory models", PPoPP 2013).
 * The owner pushes and takes at the bottom (LIFO, cache-warm); thieves steal at the top.
 * Growable: a full ring is replaced by one twice its size; old rings stay allocated until
 * the deque is destroyed, because a thief may still be reading one.
 *
 * Synchronisation (every non-relaxed order and its partner):
 *   bottom  written by the owner only. push stores it with release: publishes the slot
 *           and the task's fields to a thief's load of bottom (a seq_cst store here would
 *           cost a locked instruction, ~9 ns on this machine, per task; sched_int.h says why
 *           waking does not need it). take stores it
 *           seq_cst before loading top seq_cst: the store-load pair that stops an owner and
 *           a thief both taking the last task. Every other store of bottom is a release, so
 *           that whatever value a thief reads, it synchronises with the owner (TSan, like
 *           C++20, has no release sequences made of plain stores).
 *   top     advanced only by CAS (seq_cst), by thieves and by the owner taking the last
 *           task; whoever wins the CAS owns the task. push loads it with acquire, pairing
 *           with a thief's successful CAS (its release half): the thief's read of the slot
 *           it took happens before the owner reuses that slot for a new task (Le et al.'s
 *           push; with a relaxed load the owner could overwrite the slot, after the ring
 *           wrapped, before the thief read it).
 *   ring    the owner publishes a grown ring with a release store; thieves load it acquire.
 *   slots   relaxed atomics: a thief may read a slot the owner is overwriting; its CAS on
 *           top then fails and the value is discarded.
 */
#ifndef SHOAL_SCHED_DEQUE_H
#define SHOAL_SCHED_DEQUE_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../core/store.h"

struct shoal_task;

/* A slot holds a task pointer whose bit 0 says "bound to this deque's NUMA node" (tasks
 * are 64-byte aligned), so a remote thief can refuse a task without reading it. */
typedef uintptr_t shoal__item;
#define SHOAL__ITEM_BOUND ((shoal__item)1)

typedef struct shoal__ring {
    int64_t mask;                        /* capacity - 1; capacity is a power of two */
    struct shoal__ring *older;           /* retired rings, freed with the deque */
    _Atomic shoal__item slot[];
} shoal__ring;

typedef struct shoal__deque {
    _Alignas(SHOAL__CACHELINE) _Atomic int64_t top;   /* thieves' line */
    _Alignas(SHOAL__CACHELINE) _Atomic int64_t bottom; /* owner's line */
    _Atomic(shoal__ring *) ring;
} shoal__deque;

#define SHOAL__DEQUE_ABORT ((shoal__item)2)   /* steal lost a race: try again */

SHOAL__HIDDEN int  shoal__deque_init(shoal__deque *d, int64_t cap);
SHOAL__HIDDEN void shoal__deque_destroy(shoal__deque *d);
/* Cold: replace a full ring by one twice as large. NULL when out of memory. */
SHOAL__HIDDEN shoal__ring *shoal__deque_grow(shoal__deque *d, shoal__ring *a, int64_t b,
                                             int64_t t);

/* Owner only. Returns 0, or SHOAL_ENOMEM when the ring is full and cannot grow. */
static inline int shoal__deque_push(shoal__deque *d, shoal__item x)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the release half of a thief's seq_cst CAS on top in
     * shoal__deque_steal, so the slot a thief took was read before we overwrite it (see
     * the table above). A stale top only makes the ring look fuller than it is. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    shoal__ring *a = atomic_load_explicit(&d->ring, memory_order_relaxed);
    if (unlikely(b - t > a->mask)) {
        a = shoal__deque_grow(d, a, b, t);
        if (unlikely(!a))
            return SHOAL_ENOMEM;
    }
    atomic_store_explicit(&a->slot[b & a->mask], x, memory_order_relaxed);
    /* release: pairs with the thieves' loads of bottom (see the table above). */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

/* Owner only: the most recently pushed item, or 0. *more says whether items remain. */
static inline shoal__item shoal__deque_take(shoal__deque *d, bool *more)
{
    *more = false;
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    shoal__ring *a = atomic_load_explicit(&d->ring, memory_order_relaxed);
    /* Fast exit without a locked instruction when the deque is visibly empty: only the
     * owner grows bottom, and top never exceeds it, so a stale top can only be smaller. */
    if (atomic_load_explicit(&d->top, memory_order_relaxed) > b)
        return 0;
    /* seq_cst store then seq_cst load of top: pairs with the thief's seq_cst load of top
     * then bottom, so at most one side sees the last task. */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (likely(t < b)) {
        *more = true;
        return atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
    }
    shoal__item x = 0;
    if (t == b) {
        /* The last task: race the thieves for it. */
        x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            x = 0;
    }
    /* release: see the table (a thief reading this value synchronises with us). */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return x;
}

/* Any thread: the oldest item, 0 when empty, or SHOAL__DEQUE_ABORT on a lost race. A
 * remote thief (another NUMA node) leaves a bound item where it is and gets 0. */
static inline shoal__item shoal__deque_steal(shoal__deque *d, bool remote)
{
    /* seq_cst loads: the thief's half of the store-load pair with take; the load of bottom
     * also acquires the owner's push (release). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return 0;
    /* acquire: pairs with the release store of a grown ring in shoal__deque_grow. */
    shoal__ring *a = atomic_load_explicit(&d->ring, memory_order_acquire);
    shoal__item x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    if (remote && (x & SHOAL__ITEM_BOUND))
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return SHOAL__DEQUE_ABORT;
    return x;
}

/* Any thread: whether a steal could take something (a hint). For a remote thief, only
 * an unbound item at the top counts. seq_cst loads: a sleeping worker's re-check. */
static inline bool shoal__deque_has_work(shoal__deque *d, bool remote)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (atomic_load_explicit(&d->bottom, memory_order_seq_cst) <= t)
        return false;
    if (!remote)
        return true;
    /* acquire: as in shoal__deque_steal. */
    shoal__ring *a = atomic_load_explicit(&d->ring, memory_order_acquire);
    return !(atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed) &
             SHOAL__ITEM_BOUND);
}

#endif
