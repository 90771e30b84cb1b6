/* check.h - small helpers the suites share on top of harness.h: non-fatal checks (so a test
 * still reaches its shoal_shutdown() or its restore step after a failure), loop scaling
 * under sanitizers, byte patterns that name their writer, an info snapshot, the one start
 * helper every suite uses (test_start) and the scratch-directory teardown. */
#ifndef SHOAL_TEST_CHECK_H
#define SHOAL_TEST_CHECK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Sanitizers slow loops by 5-20x; suites divide their iteration counts by SAN_DIV. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SAN_DIV 10
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SAN_DIV 10
#endif
#endif
#ifndef SAN_DIV
#define SAN_DIV 1
#endif

/* As ASSERT_RC but non-fatal: the test goes on to its cleanup. */
#define CHECK_RC(call, code) do {                                                      \
        int rc__ = (call);                                                             \
        if (rc__ != (code))                                                            \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d; last error: %s\n",          \
                    __FILE__, __LINE__, #call, rc__, shoal_strerror(rc__), (code),     \
                    shoal_last_error());                                               \
        CU_ASSERT_EQUAL(rc__, (code));                                                 \
    } while (0)
#define CHECK_OK(call) CHECK_RC(call, 0)

/* A failing call that may answer either of two codes (e.g. EINVAL or ESTALE). */
#define ASSERT_RC2(call, a, b) do {                                                    \
        int rc__ = (call);                                                             \
        if (rc__ != (a) && rc__ != (b))                                                \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d or %d; last error: %s\n",    \
                    __FILE__, __LINE__, #call, rc__, shoal_strerror(rc__), (a), (b),   \
                    shoal_last_error());                                               \
        CU_ASSERT_FATAL(rc__ == (a) || rc__ == (b));                                   \
    } while (0)

/* Blocking calls in tests are bounded: a lost wake-up fails the test instead of hanging it.
 * get_within is shoal_get with this bound, for objects that may not be complete yet. */
#define TEST_WAIT_NS ((int64_t)60 * 1000000000)
static inline int get_within(shoal_ref r, const void **data, size_t *len)
{
    return shoal_get_timeout(r, TEST_WAIT_NS, data, len);
}

/* Start each test from a stopped runtime, whatever an earlier failed test left behind. */
static inline void test_reset(void) { (void)shoal_shutdown(); }

/* The one way a suite starts the runtime a test runs on: from a stopped one (test_reset),
 * with config c (shoal_test_config() as the suite changed it). Fails the test when
 * shoal_init fails. */
static inline void test_start(shoal_config c)
{
    test_reset();
    ASSERT_OK(shoal_init(&c));
}

/* A suite's teardown: remove its scratch directory dir (empty string: none was made) and
 * all below it. 0, or non-zero to fail the suite. */
static inline int test_remove_dir(const char *dir)
{
    char cmd[128];
    if (!dir[0])
        return 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static inline shoal_info info_now(void)
{
    shoal_info i;
    memset(&i, 0, sizeof i);
    int rc = shoal_info_get(&i);
    if (rc != 0)
        fprintf(stderr, "shoal_info_get = %d: %s\n", rc, shoal_last_error());
    CU_ASSERT_EQUAL(rc, 0);
    return i;
}

/* Byte i of the object written by (who, seq): any mix-up of objects or offsets shows. */
static inline unsigned char pat_byte(uint64_t who, uint64_t seq, size_t i)
{
    uint64_t x = (who * 0x9E3779B97F4A7C15ull) ^ (seq * 0xC2B2AE3D27D4EB4Full) ^ (i * 0x165667B19E3779F9ull);
    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 17));
}
static inline void pat_fill(void *p, size_t n, uint64_t who, uint64_t seq)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pat_byte(who, seq, i);
}
/* 1 if the n bytes at p are the pattern of (who, seq). */
static inline int pat_ok(const void *p, size_t n, uint64_t who, uint64_t seq)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat_byte(who, seq, i))
            return 0;
    return 1;
}

/* xorshift64*: reproducible pseudo-random numbers for forged IDs and sizes. */
static inline uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
