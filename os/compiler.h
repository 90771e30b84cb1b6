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

/* ThreadSanitizer sees the happens-before edges made inside one process only: an object
 * table slot handed from a thread of ours to another process (a remote-free push, a push of
 * the shared chain) and back to another thread of ours (taken from a dead process's cache,
 * claimed off a remote-free stack) is ordered by that process's atomics and by its death,
 * which TSan does not see. The giver's release and the taker's acquire of the slot's
 * handover (named by the slot's `off`, the field reused on the way) stand for that path;
 * nothing outside a TSan build. Givers: a flush onto the shared chain, a remote-free push;
 * takers: every slot taken off a popped chain, a remote-free claim, a dead process's cache
 * taken back. */
#if defined(__SANITIZE_THREAD__)          /* gcc's name for a TSan build */
#define SHOAL__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)       /* clang's */
#define SHOAL__TSAN 1
#endif
#endif
#if defined(SHOAL__TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SHOAL__TSAN_HANDOVER_GIVE(p) __tsan_release((void *)(p))
#define SHOAL__TSAN_HANDOVER_TAKE(p) __tsan_acquire((void *)(p))
#else
#define SHOAL__TSAN_HANDOVER_GIVE(p) ((void)0)
#define SHOAL__TSAN_HANDOVER_TAKE(p) ((void)0)
#endif

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
