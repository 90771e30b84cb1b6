/* compiler.h - the compiler hints and attributes every layer uses (branch weights, cold
 * paths, hidden visibility, the cache-line size, the spin-wait pause) and the intrusive list
 * macros. Bottom of the stack: includes nothing of shoal's. Internal. */
#ifndef SHOAL_OS_COMPILER_H
#define SHOAL_OS_COMPILER_H

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define SHOAL__COLD __attribute__((noinline, cold))
#define SHOAL__HIDDEN __attribute__((visibility("hidden")))
/* A step of a hot path that must fold into its caller: GCC leaves some `static inline`
 * helpers out of line, and each such call cost a task 15-25 instructions of saves,
 * restores and argument moves, and hid the caller's constant arguments from it. */
#define SHOAL__INLINE static inline __attribute__((always_inline))
#define SHOAL__CACHELINE 64

/* One step of a spin-wait: tells the core (and a hypervisor's pause-loop exiting) that
 * this thread is waiting, and gives the other hyperthread its resources. */
static inline void shoal__cpu_relax(void) { __builtin_ia32_pause(); }

/* Start fetching the cache line at p (a hint: p may be any address, it is never
 * dereferenced). An asm statement, because GCC 12 at -O2 dropped a __builtin_prefetch
 * whose address came from a load. */
static inline void shoal__prefetch(const void *p)
{
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
}

/* The same for a line the caller is about to write: fetched for ownership, so the write
 * finds it exclusive rather than upgrading a shared copy (another core last wrote it). */
static inline void shoal__prefetchw(const void *p)
{
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
}

/* Intrusive doubly linked lists (the thread registries, the pool's large tasks): n has
 * next and prev, head points at the first node. The caller holds the list's lock. */
#define SHOAL__DLIST_PUSH(head, n) do {                                                    \
        (n)->prev = NULL;                                                                  \
        (n)->next = (head);                                                                \
        if (head)                                                                          \
            (head)->prev = (n);                                                            \
        (head) = (n);                                                                      \
    } while (0)
#define SHOAL__DLIST_UNLINK(head, n) do {                                                  \
        if ((n)->prev)                                                                     \
            (n)->prev->next = (n)->next;                                                   \
        else                                                                               \
            (head) = (n)->next;                                                            \
        if ((n)->next)                                                                     \
            (n)->next->prev = (n)->prev;                                                   \
        (n)->next = (n)->prev = NULL;                                                      \
    } while (0)

#endif
