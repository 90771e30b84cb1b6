/* magstack.h - a lock-free stack of nodes (Treiber) that is safe from ABA: {top, tag} in 16
 * bytes replaced by one 128-bit CAS (cmpxchg16b). Every push and pop bumps the 64-bit tag,
 * so a CAS from a thread that read the head before a node was popped and pushed back
 * meanwhile fails, unless 2^64 operations went by in between (at a billion a second, 584
 * years); the 16-bit tag this replaces wrapped in 175 ms at full rate. Nothing is assumed
 * about pointer bits. Nodes must stay allocated while the stack is in use (a racing pop
 * may read a popped node's next; its CAS then fails). The task pool's magazines (pool.c).
 * Internal. */
#ifndef SHOAL_SCHED_MAGSTACK_H
#define SHOAL_SCHED_MAGSTACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct shoal__snode { _Atomic(struct shoal__snode *) next; } shoal__snode;
typedef struct shoal__stack { _Alignas(16) unsigned __int128 v; } shoal__stack;
_Static_assert(sizeof(void *) <= sizeof(uint64_t), "a node pointer fits the low half");
_Static_assert(_Alignof(shoal__stack) == 16 && sizeof(shoal__stack) == 16, "cmpxchg16b operand");

#if defined(__x86_64__)
#define SHOAL__CX16 __attribute__((target("cx16")))
#else
#define SHOAL__CX16
#endif

static inline shoal__snode *shoal__stack_top(unsigned __int128 v)
{
    return (shoal__snode *)(uintptr_t)(uint64_t)v;
}
static inline uint64_t shoal__stack_tag(unsigned __int128 v) { return (uint64_t)(v >> 64); }
/* The head that replaces v when n becomes the top: the tag moves on. */
static inline unsigned __int128 shoal__stack_next(unsigned __int128 v, shoal__snode *n)
{
    return ((unsigned __int128)(shoal__stack_tag(v) + 1) << 64) | (uint64_t)(uintptr_t)n;
}

/* The head, read with a CAS that writes only what is there: a 16-byte load cannot tear.
 * The __sync builtins are full barriers (seq_cst): each push publishes its node's contents
 * (release) to the pop that takes it (acquire). */
SHOAL__CX16 static inline unsigned __int128 shoal__stack_head(shoal__stack *st)
{
    return __sync_val_compare_and_swap(&st->v, (unsigned __int128)0, (unsigned __int128)0);
}

/* Replace the head by nv if it still is *h; else *h becomes what is there. */
SHOAL__CX16 static inline bool shoal__stack_cas(shoal__stack *st, unsigned __int128 *h,
                                                unsigned __int128 nv)
{
    unsigned __int128 seen = __sync_val_compare_and_swap(&st->v, *h, nv);
    if (seen == *h)
        return true;
    *h = seen;
    return false;
}

static inline void shoal__stack_push(shoal__stack *st, shoal__snode *n)
{
    unsigned __int128 h = shoal__stack_head(st);
    do
        atomic_store_explicit(&n->next, shoal__stack_top(h), memory_order_relaxed);
    while (!shoal__stack_cas(st, &h, shoal__stack_next(h, n)));
}

static inline shoal__snode *shoal__stack_pop(shoal__stack *st)
{
    unsigned __int128 h = shoal__stack_head(st);
    for (;;) {
        shoal__snode *n = shoal__stack_top(h);
        if (!n)
            return NULL;
        shoal__snode *next = atomic_load_explicit(&n->next, memory_order_relaxed);
        if (shoal__stack_cas(st, &h, shoal__stack_next(h, next)))
            return n;
    }
}

#endif
