/* test_capacity.c - a full store: filled to SHOAL_ENOMEM, drained and filled again to the
 * same level, still usable throughout; objects bigger than the store; a full object table;
 * and large (256 MiB) objects. Black-box through shoal.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/check.h"

static shoal_config sized(size_t store, size_t max_objects)
{
    shoal_config c = shoal_test_config();
    c.store_bytes = store;
    c.max_objects = max_objects;
    return c;
}

/* Put len-byte objects until ENOMEM (or max); returns the count, -1 on another error. */
static int fill(size_t len, shoal_ref *refs, int max, uint64_t who)
{
    unsigned char *buf = malloc(len ? len : 1);
    int n = 0, rc = 0;
    while (n < max) {
        pat_fill(buf, len < 64 ? len : 64, who, (uint64_t)n);
        rc = shoal_put(buf, len, &refs[n]);
        if (rc != 0)
            break;
        n++;
    }
    free(buf);
    if (rc != SHOAL_ENOMEM) {
        fprintf(stderr, "fill stopped at %d with %d (%s): %s\n", n, rc, shoal_strerror(rc),
                shoal_last_error());
        return -1;
    }
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    return n;
}

static int all_readable(const shoal_ref *refs, int n, size_t len, uint64_t who)
{
    for (int k = 0; k < n; k++) {
        const void *d; size_t got;
        if (shoal_get(refs[k], &d, &got) != 0 || got != len || !pat_ok(d, len < 64 ? len : 64, who, (uint64_t)k))
            return 0;
    }
    return 1;
}

static void test_fill_drain(void)
{
    const size_t store = 16u << 20, len = 64u << 10;
    test_start(sized(store, 0));
    shoal_info base = info_now();
    enum { MAX = 4096 };
    static shoal_ref refs[MAX];
    int first = fill(len, refs, MAX, 1);
    CU_ASSERT_FATAL(first > 0);
    /* Most of the store is usable for 64 KiB objects. */
    if ((size_t)first < store / len / 2)
        fprintf(stderr, "only %d x 64 KiB fit in a 16 MiB store\n", first);
    CU_ASSERT((size_t)first >= store / len / 2);
    CU_ASSERT((size_t)first <= store / len);
    shoal_info full = info_now();
    CU_ASSERT_EQUAL(full.objects_live, base.objects_live + (uint64_t)first);
    CU_ASSERT(full.bytes_used >= (size_t)first * len);
    CU_ASSERT(full.bytes_used <= full.store_bytes);
    /* Full, yet usable: everything reads back, and a failed put again is a clean ENOMEM. */
    CU_ASSERT(all_readable(refs, first, len, 1));
    shoal_ref extra;
    unsigned char one[64 << 10];
    memset(one, 1, sizeof one);
    CHECK_RC(shoal_put(one, sizeof one, &extra), SHOAL_ENOMEM);
    CU_ASSERT_EQUAL(info_now().objects_live, full.objects_live);

    /* Release one and a put of the same size fits again. */
    CHECK_OK(shoal_release(refs[first - 1]));
    CHECK_OK(shoal_put(one, sizeof one, &refs[first - 1]));
    for (int k = 0; k < first; k++)
        CHECK_OK(shoal_release(refs[k]));
    shoal_info drained = info_now();
    CU_ASSERT_EQUAL(drained.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(drained.bytes_used, base.bytes_used);

    /* Fill again, several rounds: about the same count each time (no creeping loss). */
    for (int round = 0; round < 3; round++) {
        int again = fill(len, refs, MAX, 2);
        if (again < first - first / 10 || again > first + first / 10)
            fprintf(stderr, "round %d: %d objects fit, first time %d\n", round, again, first);
        CU_ASSERT(again >= first - first / 10 && again <= first + first / 10);
        CU_ASSERT(all_readable(refs, again, len, 2));
        for (int k = 0; k < again; k++)
            CHECK_OK(shoal_release(refs[k]));
    }
    CU_ASSERT_EQUAL(info_now().objects_live, base.objects_live);
    ASSERT_OK(shoal_shutdown());
}

/* Mixed sizes: small objects fill the gaps; the store refills after a drain. */
static void test_fill_mixed(void)
{
    test_start(sized(16u << 20, 0));
    enum { MAX = 200000 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    size_t sizes[] = { 100, 3000, 200000 };
    int counts[3];
    for (int s = 0; s < 3; s++) {
        counts[s] = fill(sizes[s], refs, MAX, 3);
        CU_ASSERT(counts[s] > 0);
        CU_ASSERT(all_readable(refs, counts[s], sizes[s], 3));
        for (int k = 0; k < counts[s]; k++)
            CHECK_OK(shoal_release(refs[k]));
        CU_ASSERT_EQUAL(info_now().objects_live, 0);
    }
    /* Each size uses a good part of the store (table permitting for the small ones). */
    CU_ASSERT((size_t)counts[2] * sizes[2] >= (16u << 20) / 2);
    free(refs);
    ASSERT_OK(shoal_shutdown());
}

static void test_too_big(void)
{
    const size_t store = 16u << 20;
    test_start(sized(store, 0));
    shoal_info base = info_now();
    unsigned char *src = calloc(1, store + 4096);
    shoal_ref r = { 4242 };
    CHECK_RC(shoal_put(src, store + 1, &r), SHOAL_ENOMEM);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CU_ASSERT_EQUAL(r.id, 4242);
    void *buf = NULL;
    CHECK_RC(shoal_create(store * 2, &buf, &r), SHOAL_ENOMEM);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CU_ASSERT_PTR_NULL(buf);
    int rc = shoal_create(SIZE_MAX, &buf, &r);
    CU_ASSERT(rc == SHOAL_ENOMEM || rc == SHOAL_EINVAL);
    rc = shoal_create(SIZE_MAX / 2 + 1, &buf, &r);
    CU_ASSERT(rc == SHOAL_ENOMEM || rc == SHOAL_EINVAL);
    shoal_info after = info_now();
    CU_ASSERT_EQUAL(after.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(after.bytes_used, base.bytes_used);
    /* Still usable, and a store-sized half fits. */
    CHECK_OK(shoal_put(src, store / 2, &r));
    CHECK_OK(shoal_release(r));
    free(src);
    ASSERT_OK(shoal_shutdown());
}

/* A small object table fills before the bytes do: ENOMEM too, and it recovers. */
static void test_table_full(void)
{
    test_start(sized(16u << 20, 256));
    enum { MAX = 1 << 20 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    int first = fill(8, refs, MAX, 4);
    CU_ASSERT_FATAL(first > 0);
    /* max_objects is honoured: not far below it (a reserved slot or a per-thread cache
     * is fine), and not unlimited. */
    if (first < 128 || first > 4096)
        fprintf(stderr, "max_objects 256: %d objects fit\n", first);
    CU_ASSERT(first >= 128 && first <= 4096);
    CU_ASSERT(all_readable(refs, first, 8, 4));
    for (int k = 0; k < first; k++)
        CHECK_OK(shoal_release(refs[k]));
    int again = fill(8, refs, MAX, 5);
    CU_ASSERT_EQUAL(again, first);
    for (int k = 0; k < again; k++)
        CHECK_OK(shoal_release(refs[k]));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    free(refs);
    ASSERT_OK(shoal_shutdown());
}

/* A 256 MiB object in a 512 MiB store: put, read back, release, and again. */
static void test_large_object(void)
{
    const size_t len = 256u << 20;
    test_start(sized(512u << 20, 0));
    shoal_info base = info_now();
    /* Untouched anonymous pages read as zero cheaply; mark a few spots. */
    unsigned char *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(src != MAP_FAILED);
    size_t spots[] = { 0, 1, 4095, 4096, (1u << 20) + 17, len / 2, len - 4097, len - 1 };
    enum { NSPOTS = sizeof spots / sizeof spots[0] };
    for (size_t k = 0; k < NSPOTS; k++)
        src[spots[k]] = (unsigned char)(0xA0 + k);
    for (int round = 0; round < 2; round++) {
        shoal_ref r;
        int rc = shoal_put(src, len, &r);
        if (rc != 0)
            fprintf(stderr, "256 MiB put, round %d: %d (%s): %s\n", round, rc,
                    shoal_strerror(rc), shoal_last_error());
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        const void *d; size_t n;
        CHECK_OK(shoal_get(r, &d, &n));
        CU_ASSERT_EQUAL(n, len);
        const unsigned char *b = d;
        for (size_t k = 0; k < NSPOTS; k++)
            CU_ASSERT_EQUAL(b[spots[k]], (unsigned char)(0xA0 + k));
        CU_ASSERT_EQUAL(b[len / 4], 0);
        CU_ASSERT_EQUAL(b[len - 2], 0);
        shoal_info i = info_now();
        CU_ASSERT(i.bytes_used >= base.bytes_used + len);
        CU_ASSERT_EQUAL(i.objects_live, base.objects_live + 1);
        int node = shoal_object_node(r);
        CU_ASSERT(node >= 0 && (unsigned)node < i.numa_nodes);
        CHECK_OK(shoal_release(r));
        CU_ASSERT_EQUAL(info_now().bytes_used, base.bytes_used);
    }
    /* A large object by create + seal, written in place. */
    void *buf;
    shoal_ref c;
    CHECK_OK(shoal_create(len, &buf, &c));
    if (buf) {
        unsigned char *w = buf;
        w[0] = 1; w[len / 2] = 2; w[len - 1] = 3;
        CHECK_OK(shoal_seal(c));
        const void *d; size_t n;
        CHECK_OK(shoal_get(c, &d, &n));
        CU_ASSERT(n == len && d == buf && w[len / 2] == 2);
        CHECK_OK(shoal_release(c));
    }
    munmap(src, len);
    ASSERT_OK(shoal_shutdown());
}

/* Four threads fill one store together. Each thread holds capacity credit (alloc/arena.h),
 * but near full it takes exactly what it needs, so together they still reach the capacity
 * (less one credit's worth per other thread), and the figures return exactly to where they
 * were once everything is released. */
#define FILLERS 4
struct filler { shoal_ref refs[512]; int n; };

static void *fill_thread(void *p)
{
    struct filler *f = p;
    f->n = fill(64u << 10, f->refs, 512, 7);
    return NULL;
}

static void test_threads_share_capacity(void)
{
    const size_t store = 16u << 20;
    test_start(sized(store, 0));
    shoal_info i0;
    ASSERT_OK(shoal_info_get(&i0));
    static struct filler f[FILLERS];
    pthread_t th[FILLERS];
    for (int k = 0; k < FILLERS; k++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k], NULL, fill_thread, &f[k]), 0);
    int total = 0;
    for (int k = 0; k < FILLERS; k++) {
        pthread_join(th[k], NULL);
        CU_ASSERT(f[k].n >= 0);
        total += f[k].n;
    }
    /* 256 objects of 64 KiB fill 16 MiB; each other thread may strand under 512 KiB. */
    CU_ASSERT(total >= 256 - (FILLERS - 1) * 8);
    CU_ASSERT(total <= 256);
    shoal_info i1;
    ASSERT_OK(shoal_info_get(&i1));
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live + (uint64_t)total);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used + (uint64_t)total * (64u << 10));
    for (int k = 0; k < FILLERS; k++)
        for (int j = 0; j < f[k].n && j < 512; j++)
            CHECK_OK(shoal_release(f[k].refs[j]));
    ASSERT_OK(shoal_info_get(&i1));
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    CHECK_OK(shoal_shutdown());
}

/* A task that fails in a full store: its message needs room in the store (an object's
 * failure message is its bytes), and there was none, so the get answered only "object ...
 * failed (task failed)": the cause the task gave was lost (as a client's ingest that failed
 * for want of room lost its figures, session 10's CI). It must survive: the get's message
 * carries the task's own words. */
static int fail_specific(shoal_task *t)
{
    return shoal_task_fail(t, "frobnicator 7 lost its widget (a cause worth keeping)");
}

static int succeed(shoal_task *t)
{
    return shoal_task_return(t, NULL, 0);
}

static void test_failure_message_in_full_store(void)
{
    test_start(sized(16u << 20, 0));
    enum { MAX = 300000 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(refs);
    int n = 0;
    size_t sizes[] = { 64u << 10, 4096, 512, 64, 8, 1 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int got = fill(sizes[k], refs + n, MAX - n, 9);
        CU_ASSERT_FATAL(got >= 0);
        n += got;
    }
    usleep(20000);   /* idle workers give their cached blocks back */
    for (int round = 0; round < 3; round++) {
        shoal_ref r;
        ASSERT_OK(shoal_submit(fail_specific, NULL, 0, NULL, &r));
        const void *d;
        size_t len;
        CHECK_RC(get_within(r, &d, &len), SHOAL_ETASK);
        if (!strstr(shoal_last_error(), "frobnicator 7 lost its widget"))
            fprintf(stderr, "round %d: a task's failure in a full store reads: %s\n", round,
                    shoal_last_error());
        CU_ASSERT(strstr(shoal_last_error(), "frobnicator 7 lost its widget") != NULL);
        /* A task taking it as an argument fails with its message too. */
        shoal_arg a = SHOAL_REF(r);
        shoal_ref r2;
        ASSERT_OK(shoal_submit(succeed, &a, 1, NULL, &r2));
        CHECK_RC(get_within(r2, &d, &len), SHOAL_ETASK);
        if (!strstr(shoal_last_error(), "frobnicator 7 lost its widget"))
            fprintf(stderr, "round %d: a task whose argument failed in a full store reads: %s\n",
                    round, shoal_last_error());
        CU_ASSERT(strstr(shoal_last_error(), "frobnicator 7 lost its widget") != NULL);
        CHECK_OK(shoal_release(r2));
        CHECK_OK(shoal_release(r));
    }
    for (int k = 0; k < n; k++)
        CHECK_OK(shoal_release(refs[k]));
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* Fill the store to the last byte: objects of falling sizes, twice (the blocks idle
 * workers give back meanwhile are taken by the second pass); returns the count. */
static int fill_to_the_brim(shoal_ref *refs, int max, uint64_t who)
{
    int n = 0;
    size_t sizes[] = { 64u << 10, 4096, 512, 64, 8, 1 };
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int got = fill(sizes[k], refs + n, max - n, who + (uint64_t)pass);
            CU_ASSERT_FATAL(got >= 0);
            n += got;
        }
        usleep(20000);   /* idle workers give their cached blocks back */
    }
    return n;
}

/* A long failure message (480 bytes: under the 511 a thread's message holds) reads whole
 * from a normal store; from a full store, where the failing process keeps it, it must read
 * whole too: the kept copy cut it at 399 bytes, losing its end (often the figures). */
#define LONG_TAIL "END-OF-CAUSE-42"
static char long_msg[481];

static int fail_long(shoal_task *t)
{
    return shoal_task_fail(t, long_msg);
}

static void long_message_reads_whole(const char *where)
{
    shoal_ref r;
    ASSERT_OK(shoal_submit(fail_long, NULL, 0, NULL, &r));
    const void *d;
    size_t len;
    CHECK_RC(get_within(r, &d, &len), SHOAL_ETASK);
    if (!strstr(shoal_last_error(), LONG_TAIL))
        fprintf(stderr, "%s: a 480-byte failure message reads %zu bytes\n", where,
                strlen(shoal_last_error()));
    CU_ASSERT(strstr(shoal_last_error(), LONG_TAIL) != NULL);
    CHECK_OK(shoal_release(r));
}

static void test_long_failure_message_in_full_store(void)
{
    memset(long_msg, 'x', sizeof long_msg - 1);
    memcpy(long_msg + sizeof long_msg - 1 - strlen(LONG_TAIL), LONG_TAIL, strlen(LONG_TAIL));
    test_start(sized(16u << 20, 0));
    long_message_reads_whole("a store with room");
    enum { MAX = 300000 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(refs);
    int n = fill_to_the_brim(refs, MAX, 11);
    long_message_reads_whole("a full store");
    for (int k = 0; k < n; k++)
        CHECK_OK(shoal_release(refs[k]));
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* shoal.h: the failing process keeps "the last 64 or so" messages that found no room. The
 * table was chosen by slot index (64 entries): two failures whose results' slots fell on
 * the same entry kept one message, however few failed in between. Here the results take
 * slots 64 apart (two 1-byte objects released just before, whose slots the next objects
 * take), and both messages must read. */
static int fail_first(shoal_task *t) { return shoal_task_fail(t, "first cause: gasket 1 leaked"); }
static int fail_second(shoal_task *t) { return shoal_task_fail(t, "second cause: gasket 2 leaked"); }

static void test_two_failures_in_a_full_store_keep_both(void)
{
    test_start(sized(16u << 20, 0));
    enum { MAX = 300000 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(refs);
    int n = fill_to_the_brim(refs, MAX, 13);
    /* Two of the last (1-byte) objects whose slots are 64 apart (modulo 64 equal). */
    int seen[64], a = -1, b = -1;
    for (int k = 0; k < 64; k++)
        seen[k] = -1;
    for (int k = n - 1; k >= 0 && k >= n - 1000 && a < 0; k--) {
        unsigned e = (unsigned)(refs[k].id & 0x3ffffff) % 64;   /* layout/table.h: idx */
        if (seen[e] >= 0) {
            a = seen[e];
            b = k;
        }
        seen[e] = k;
    }
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    CHECK_OK(shoal_release(refs[a]));
    CHECK_OK(shoal_release(refs[b]));
    refs[a].id = refs[b].id = 0;   /* released: skipped below */
    shoal_ref r1, r2;
    ASSERT_OK(shoal_submit(fail_first, NULL, 0, NULL, &r1));
    ASSERT_OK(shoal_submit(fail_second, NULL, 0, NULL, &r2));
    if ((r1.id & 0x3ffffff) % 64 != (r2.id & 0x3ffffff) % 64)
        fprintf(stderr, "two failures: slots %llu and %llu, not 64 apart\n",
                (unsigned long long)(r1.id & 0x3ffffff), (unsigned long long)(r2.id & 0x3ffffff));
    const void *d;
    size_t len;
    CHECK_RC(get_within(r1, &d, &len), SHOAL_ETASK);
    CHECK_RC(get_within(r2, &d, &len), SHOAL_ETASK);
    CHECK_RC(get_within(r1, &d, &len), SHOAL_ETASK);
    if (!strstr(shoal_last_error(), "gasket 1"))
        fprintf(stderr, "the first of two failures in a full store reads: %s\n", shoal_last_error());
    CU_ASSERT(strstr(shoal_last_error(), "gasket 1") != NULL);
    CHECK_RC(get_within(r2, &d, &len), SHOAL_ETASK);
    CU_ASSERT(strstr(shoal_last_error(), "gasket 2") != NULL);
    CHECK_OK(shoal_release(r1));
    CHECK_OK(shoal_release(r2));
    for (int k = 0; k < n; k++)
        if (refs[k].id)
            CHECK_OK(shoal_release(refs[k]));
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* Failures at once on the workers of a full store, read meanwhile: each get reads its own
 * object's message, whole (an entry is written under its lock and chosen by ID). 48: under
 * the 64 kept. */
static int fail_numbered(shoal_task *t)
{
    const void *d;
    size_t len;
    int k = -1;
    if (shoal_task_arg(t, 0, &d, &len) == 0 && len == sizeof k)
        memcpy(&k, d, sizeof k);
    char m[80];
    snprintf(m, sizeof m, "cause #%d# of a burst of failures", k);
    return shoal_task_fail(t, m);
}

static void test_burst_of_failures_in_a_full_store(void)
{
    test_start(sized(16u << 20, 0));
    enum { MAX = 300000, BURST = 48 };
    shoal_ref *refs = malloc(sizeof *refs * MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(refs);
    int n = fill_to_the_brim(refs, MAX, 15);
    shoal_ref r[BURST];
    int vals[BURST];
    for (int k = 0; k < BURST; k++) {
        vals[k] = k;
        shoal_arg a = SHOAL_VALUE(&vals[k], sizeof vals[k]);
        ASSERT_OK(shoal_submit(fail_numbered, &a, 1, NULL, &r[k]));
    }
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < BURST; k++) {
            const void *d;
            size_t len;
            CHECK_RC(get_within(r[k], &d, &len), SHOAL_ETASK);
            char want[32];
            snprintf(want, sizeof want, "cause #%d# of a burst", k);
            if (!strstr(shoal_last_error(), want))
                fprintf(stderr, "failure %d of a burst in a full store reads: %s\n", k,
                        shoal_last_error());
            CU_ASSERT(strstr(shoal_last_error(), want) != NULL);
        }
    for (int k = 0; k < BURST; k++)
        CHECK_OK(shoal_release(r[k]));
    for (int k = 0; k < n; k++)
        CHECK_OK(shoal_release(refs[k]));
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "fill 64 KiB objects to ENOMEM, drain, refill", test_fill_drain },
        { "fill with small, medium and large objects", test_fill_mixed },
        { "an object bigger than the store", test_too_big },
        { "a full object table", test_table_full },
        { "256 MiB objects", test_large_object },
        { "threads filling one store share its capacity", test_threads_share_capacity },
        { "a task failing in a full store keeps its message", test_failure_message_in_full_store },
        { "a long failure message in a full store reads whole",
          test_long_failure_message_in_full_store },
        { "two failures in a full store keep both messages",
          test_two_failures_in_a_full_store_keep_both },
        { "a burst of failures in a full store: each reads its own message",
          test_burst_of_failures_in_a_full_store },
        { NULL, NULL },
    };
    return shoal_test_run("capacity", cases);
}
