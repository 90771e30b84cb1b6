/* futex.h - sleeping on a 32-bit word until it changes, and waking its sleepers (Linux
 * futex): shared words (in the segment, slept on across processes) and private ones (this
 * process only), and the two-word sleep of futex_waitv (Linux 5.16). Internal. */
#ifndef SHOAL_OS_FUTEX_H
#define SHOAL_OS_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "compiler.h"

/* ns as a relative (or, from shoal__now_ns, an absolute monotonic) timespec. */
static inline struct timespec shoal__timespec_ns(uint64_t ns)
{
    return (struct timespec){ (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
}

/* Wake up to n threads sleeping on w. shared: w lies in memory other processes map. */
static inline void shoal__futex_wake(_Atomic uint32_t *w, int n, bool shared)
{
    syscall(SYS_futex, w, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Sleep while *w == seen, for at most *ts (NULL: no limit). Returns as the system call
 * does (-1 with errno EAGAIN, ETIMEDOUT, EINTR). */
static inline long shoal__futex_wait(_Atomic uint32_t *w, uint32_t seen, const struct timespec *ts,
                                     bool shared)
{
    return syscall(SYS_futex, w, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, seen, ts, NULL, 0);
}

/* As shoal__futex_wait on a private word with no time limit, counted as one of the sleepers
 * that `bits` (not 0) names: shoal__futex_wake_bits wakes it only when its bits meet these,
 * a plain shoal__futex_wake wakes it as any other sleeper. */
static inline long shoal__futex_wait_bits(_Atomic uint32_t *w, uint32_t seen, uint32_t bits)
{
    return syscall(SYS_futex, w, FUTEX_WAIT_BITSET_PRIVATE, seen, NULL, NULL, bits);
}

/* Wake up to n sleepers of the private word w whose bits meet `bits` (sleepers of a plain
 * wait, or of futex_waitv, meet every bit). Returns how many it woke, or -1. */
static inline long shoal__futex_wake_bits(_Atomic uint32_t *w, int n, uint32_t bits)
{
    return syscall(SYS_futex, w, FUTEX_WAKE_BITSET_PRIVATE, n, NULL, NULL, bits);
}

#ifdef SYS_futex_waitv
#define SHOAL__HAVE_FUTEX_WAITV 1
/* Sleep while the private word *a == va and the shared word *b == vb, until the absolute
 * CLOCK_MONOTONIC time *at. Returns as the system call does (-1 with errno EAGAIN,
 * ETIMEDOUT, EINTR, or ENOSYS and the like when the kernel lacks it). */
static inline long shoal__futex_wait2(_Atomic uint32_t *a, uint32_t va, _Atomic uint32_t *b,
                                      uint32_t vb, const struct timespec *at)
{
    struct futex_waitv v[2] = {
        { .val = va, .uaddr = (uintptr_t)a, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG },
        { .val = vb, .uaddr = (uintptr_t)b, .flags = FUTEX_32 },
    };
    return syscall(SYS_futex_waitv, v, 2u, 0u, at, CLOCK_MONOTONIC);
}
#endif

#endif
