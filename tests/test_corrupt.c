/* test_corrupt.c - a slot whose offset or length a process overwrote with garbage (every
 * attached process can write the object table) costs a leak and a notice, never a crash:
 * release does not free it, a failed object's message is not read from it, and a get
 * (inline or the library's) answers SHOAL_EIO instead of a pointer outside the store. The
 * inline get reads no slot past its thread's view of the table either. */
#include "../core/store.h"
#include "lib/check.h"

static shoal__slot *slot(shoal_ref r)
{
    int err;
    shoal__slot *s = shoal__slot_of(r, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static void test_release_of_corrupt_slot(void)
{
    test_start(shoal_test_config());
    static const uint64_t bad_off[] = { UINT64_MAX, UINT64_C(1) << 62, 0 };
    static const uint64_t bad_len[] = { 64, 64, UINT64_MAX };
    for (int k = 0; k < 3; k++) {
        shoal_ref r;
        ASSERT_OK(shoal_put("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                            64, &r));
        shoal__slot *s = slot(r);
        s->off = bad_off[k];
        s->len = bad_len[k];
        CHECK_OK(shoal_release(r));             /* no crash: the object is leaked */
        const void *d;
        size_t n;
        CHECK_RC(get_within(r, &d, &n), SHOAL_ESTALE);
    }
    /* The store goes on working. */
    shoal_ref r;
    const void *d;
    size_t n;
    ASSERT_OK(shoal_put("ok", 3, &r));
    ASSERT_OK(get_within(r, &d, &n));
    CU_ASSERT(n == 3 && memcmp(d, "ok", 3) == 0);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

static void test_failed_object_with_corrupt_message(void)
{
    test_start(shoal_test_config());
    shoal_ref r;
    ASSERT_OK(shoal__obj_new(SHOAL__PENDING, 0, -1, 1, NULL, &r));
    ASSERT_OK(shoal__obj_complete(r, SHOAL_ETASK, "the real message"));
    const void *d;
    size_t n;
    CHECK_RC(get_within(r, &d, &n), SHOAL_ETASK);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "the real message"));
    shoal__slot *s = slot(r);
    uint64_t off = s->off, len = s->len;
    s->off = UINT64_MAX - 8;
    CHECK_RC(get_within(r, &d, &n), SHOAL_ETASK);  /* a generic message, not a wild read */
    CU_ASSERT_PTR_NULL(strstr(shoal_last_error(), "the real message"));
    s->off = off;
    s->len = len;
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

/* What each way of getting answers for one slot content; 0 must come with the bytes named
 * (want = base + off, or the slot's own field for a result held in it). */
static void expect_gets(shoal_ref r, int rc_want, const void *want, size_t n_want,
                        uint64_t off, uint64_t len)
{
    for (int way = 0; way < 3; way++) {
        const void *d = (const void *)1;
        size_t n = 12345;
        int rc = way == 0   ? shoal_get(r, &d, &n)        /* the inline fast path */
                 : way == 1 ? (shoal_get)(r, &d, &n)      /* the library's entry */
                            : shoal_get_timeout(r, 0, &d, &n);   /* the slow path */
        CU_ASSERT_EQUAL(rc, rc_want);
        if (rc == 0) {
            CU_ASSERT(d == want && n == n_want);
        } else {   /* left as they were */
            CU_ASSERT(d == (const void *)1 && n == 12345);
        }
        if (rc != rc_want || (rc == 0 && (d != want || n != n_want)))
            fprintf(stderr, "way %d: slot off %#llx len %#llx: rc %d (want %d), len %zu\n", way,
                    (unsigned long long)off, (unsigned long long)len, rc, rc_want, n);
    }
}

/* The bounds the fast path checks with one sum (off + len <= span, no wrap-around): every
 * edge, the sums that wrap around to inside the span, and results held in the slot. */
static void test_get_of_corrupt_slot(void)
{
    test_start(shoal_test_config());
    shoal_ref r;
    ASSERT_OK(shoal_put("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 64,
                        &r));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(r, &d, &n));   /* fills this thread's view */
    shoal__slot *s = slot(r);
    const uint64_t off0 = s->off, len0 = s->len, span = shoal__tls.span;
    const char *base = shoal__tls.base;
    CU_ASSERT_FATAL(span == shoal__rt->node_span * shoal__rt->nnodes && base == shoal__rt->base);
    const uint64_t M = UINT64_MAX;
    struct { int ok; uint64_t off, len; } c[] = {
        { 1, 0, 64 },
        { 1, span - 64, 64 },            /* off + len == span */
        { 0, span - 63, 64 },            /* one past */
        { 0, span - 64, 65 },
        { 1, 0, span },                  /* the whole span */
        { 0, 0, span + 1 },
        { 1, span, 0 },                  /* empty, at the end */
        { 0, span + 1, 0 },
        { 0, span, 1 },
        { 0, M, 0 }, { 0, M, 1 }, { 0, 0, M }, { 0, 1, M }, { 0, M, M },
        { 0, (UINT64_C(1) << 63) + 64, (UINT64_C(1) << 63) - 64 },   /* sum 0 */
        { 0, 64, M - 63 },               /* sum 0 */
        { 0, M, span + 1 },              /* sum span: wrapped around, inside */
        { 0, M - 63, span },             /* sum span - 64 */
        { 0, span - 64, M - span + 65 }, /* sum 0 */
        { 0, UINT64_C(1) << 46, 64 },
        { 0, 64, UINT64_C(1) << 46 },
        { 0, UINT64_C(1) << 62, UINT64_C(1) << 62 },
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        __atomic_store_n(&s->off, c[k].off, __ATOMIC_RELAXED);
        __atomic_store_n(&s->len, c[k].len, __ATOMIC_RELAXED);
        expect_gets(r, c[k].ok ? 0 : SHOAL_EIO, (const void *)((uintptr_t)base + c[k].off),
                    (size_t)c[k].len, c[k].off, c[k].len);
    }
    /* Results held in the slot: up to 8 bytes, the offset field is their bytes. */
    for (uint64_t k = 0; k <= 9; k++) {
        uint64_t len = SHOAL__LEN_INL | k;
        __atomic_store_n(&s->off, UINT64_C(0x3736353433323130), __ATOMIC_RELAXED);
        __atomic_store_n(&s->len, len, __ATOMIC_RELAXED);
        expect_gets(r, k <= 8 ? 0 : SHOAL_EIO, &s->off, (size_t)k, s->off, len);
    }
    __atomic_store_n(&s->len, SHOAL__LEN_INL | 8, __ATOMIC_RELAXED);
    ASSERT_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 8 && memcmp(d, "01234567", 8) == 0);
    s->off = off0;
    s->len = len0;
    ASSERT_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 64 && memcmp(d, "0123456789abcdef", 16) == 0);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

/* The inline get's index check against this thread's view of the table: the view's last
 * slot is answered inline, the one just past it goes to the library (which checks the index
 * against the whole table and answers too). The view is narrowed to end at a live object's
 * slot; the library's get_slow counter tells which path answered. */
static void test_index_past_the_view(void)
{
    test_start(shoal_test_config());
    shoal_ref r;
    ASSERT_OK(shoal_put("0123456789abcdef", 16, &r));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(r, &d, &n));   /* fills this thread's view */
    const uint64_t nslots = shoal__tls.nslots, idx = shoal__id_idx(r.id);
    CU_ASSERT_FATAL(idx > 0 && idx < nslots);
    for (uint64_t view = idx; view <= idx + 1; view++) {
        shoal_stats s0, s1;
        __atomic_store_n(&shoal__tls.nslots, view, __ATOMIC_RELAXED);
        ASSERT_OK(shoal_stats_get(&s0, sizeof s0));
        d = NULL;
        n = 0;
        CHECK_OK(shoal_get(r, &d, &n));
        ASSERT_OK(shoal_stats_get(&s1, sizeof s1));
        CU_ASSERT(d != NULL && n == 16 && memcmp(d, "0123456789abcdef", 16) == 0);
        CU_ASSERT_EQUAL(s1.get_slow - s0.get_slow, view == idx ? 1 : 0);
        CU_ASSERT_EQUAL(__atomic_load_n(&shoal__tls.nslots, __ATOMIC_RELAXED), view);
    }
    __atomic_store_n(&shoal__tls.nslots, nslots, __ATOMIC_RELAXED);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "release of a slot with garbage bytes leaks, not crashes", test_release_of_corrupt_slot },
        { "a failed object's garbage message is not read", test_failed_object_with_corrupt_message },
        { "a get of a slot naming bytes outside the store fails", test_get_of_corrupt_slot },
        { "an index just past the thread's view goes to the library", test_index_past_the_view },
        { NULL, NULL },
    };
    return shoal_test_run("corrupt", cases);
}
