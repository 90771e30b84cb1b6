/* deque.c - the cold half of the work-stealing deque (deque.h): creating, growing and
 * destroying rings. Growth keeps the old ring alive until the deque is destroyed, because
 * a thief that loaded the old ring pointer may still read a slot of it.
 */
#include "deque.h"

static shoal__ring *ring_new(int64_t cap)
{
    shoal__ring *a = malloc(sizeof *a + (size_t)cap * sizeof(a->slot[0]));
    if (!a)
        return NULL;
    a->mask = cap - 1;
    a->older = NULL;
    return a;
}

int shoal__deque_init(shoal__deque *d, int64_t cap)
{
    shoal__ring *a = ring_new(cap);
    if (!a)
        return shoal__err(SHOAL_ENOMEM, "out of memory for a worker's deque");
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->ring, a);
    return 0;
}

void shoal__deque_destroy(shoal__deque *d)
{
    shoal__ring *a = atomic_load_explicit(&d->ring, memory_order_relaxed);
    while (a) {
        shoal__ring *o = a->older;
        free(a);
        a = o;
    }
    atomic_store_explicit(&d->ring, NULL, memory_order_relaxed);
}

shoal__ring *shoal__deque_grow(shoal__deque *d, shoal__ring *a, int64_t b, int64_t t)
{
    shoal__ring *n = ring_new((a->mask + 1) * 2);
    if (!n)
        return NULL;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(&n->slot[i & n->mask],
                              atomic_load_explicit(&a->slot[i & a->mask], memory_order_relaxed),
                              memory_order_relaxed);
    n->older = a;
    /* release: pairs with the acquire load of ring in shoal__deque_steal; the copied slots
     * are visible with the new ring. */
    atomic_store_explicit(&d->ring, n, memory_order_release);
    return n;
}
