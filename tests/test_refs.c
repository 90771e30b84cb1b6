/* test_refs.c - ObjectRef IDs: the null ref, forged and corrupt IDs (never a crash, never
 * another object's bytes), stale IDs after heavy slot reuse, and the stable 8-byte
 * little-endian encoding, including refs stored inside objects. Black-box through shoal.h. */
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"

static int bad_ref_rc(int rc) { return rc == SHOAL_EINVAL || rc == SHOAL_ESTALE; }

/* Every call that takes a ref rejects r without touching anything. Returns 1 if all did. */
static int rejected_everywhere(shoal_ref r, int want_only)
{
    const void *d = NULL; size_t n = 12345; bool ready = true;
    int ok = 1, rc;
#define REJ(call) do { rc = (call);                                                        \
        if (!(want_only ? rc == want_only : bad_ref_rc(rc))) {                             \
            fprintf(stderr, "id %#llx: %s = %d (%s)\n", (unsigned long long)r.id, #call,  \
                    rc, shoal_strerror(rc));                                               \
            ok = 0;                                                                        \
        } } while (0)
    REJ(shoal_get_timeout(r, 0, &d, &n));
    REJ(shoal_get(r, &d, &n));              /* the inline fast path of shoal.h */
    REJ((shoal_get)(r, &d, &n));            /* the library function */
    REJ(shoal_retain(r));
    REJ(shoal_release(r));
    REJ(shoal_seal(r));
    REJ(shoal_object_node(r));
    REJ(shoal_wait(&r, 1, 1, 0, &ready));
#undef REJ
    if (d != NULL) {
        fprintf(stderr, "id %#llx: get gave data %p\n", (unsigned long long)r.id, d);
        ok = 0;
    }
    return ok;
}

static void test_null_ref(void)
{
    test_start(shoal_test_config());
    const void *d = NULL; size_t n;
    CHECK_RC(shoal_get(SHOAL_REF_NULL, &d, &n), SHOAL_EINVAL);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CU_ASSERT(rejected_everywhere(SHOAL_REF_NULL, SHOAL_EINVAL));
    ASSERT_OK(shoal_shutdown());
}

/* Forged IDs of every shape: the live objects stay intact and keep exactly one reference. */
static void test_forged_ids(void)
{
    test_start(shoal_test_config());
    enum { LIVE = 64 };
    shoal_ref live[LIVE];
    for (int k = 0; k < LIVE; k++) {
        unsigned char b[100];
        pat_fill(b, sizeof b, 5, (uint64_t)k);
        ASSERT_OK(shoal_put(b, sizeof b, &live[k]));
    }
    /* Freed ones too, so some slots hold an older generation. */
    for (int k = 0; k < 16; k++) {
        shoal_ref g;
        ASSERT_OK(shoal_put("gone", 4, &g));
        ASSERT_OK(shoal_release(g));
    }
    shoal_info i0 = info_now();

    int bad = 0;
    uint64_t s = 0x5eed5eed12345678ull;
    for (int k = 0; k < 20000 / SAN_DIV; k++) {
        shoal_ref r = { rnd_next(&s) };
        int is_live = 0;
        for (int j = 0; j < LIVE; j++)
            is_live |= r.id == live[j].id;
        if (r.id != 0 && !is_live && !rejected_everywhere(r, 0))
            bad++;
    }
    /* Structured forgeries around each live ID: high bits (host field), other
     * generations, and the same generation with huge or neighbouring indices. */
    for (int j = 0; j < LIVE; j++) {
        uint64_t id = live[j].id;
        uint64_t forged[] = {
            id | (UINT64_C(1) << 63), id | (UINT64_C(1) << 56), id | (UINT64_C(0xff) << 56),
            id ^ (UINT64_C(1) << 55), id + (UINT64_C(1) << 30), id - (UINT64_C(1) << 30),
            id & ((UINT64_C(1) << 30) - 1), id ^ (UINT64_C(1) << 40), ~id,
            (id & ~((UINT64_C(1) << 30) - 1)) | ((UINT64_C(1) << 30) - 1),
            (id & ~((UINT64_C(1) << 30) - 1)) | (UINT64_C(1) << 29),
            (id & ~((UINT64_C(1) << 30) - 1)) | (UINT64_C(1) << 26),
            (id & ~((UINT64_C(1) << 30) - 1)) | 0xFFFFFFu,
        };
        for (size_t f = 0; f < sizeof forged / sizeof forged[0]; f++) {
            int is_live = 0;
            for (int m = 0; m < LIVE; m++)
                is_live |= forged[f] == live[m].id;
            if (!is_live && !rejected_everywhere((shoal_ref){ forged[f] }, 0))
                bad++;
        }
    }
    uint64_t extremes[] = { UINT64_MAX, UINT64_C(1) << 63, UINT64_C(0x00ffffffffffffff),
                            (UINT64_C(1) << 30) - 1, UINT64_C(1) << 30, 1, 2, 3,
                            UINT64_C(0x0102030405060708) };
    for (size_t f = 0; f < sizeof extremes / sizeof extremes[0]; f++) {
        int is_live = 0;
        for (int m = 0; m < LIVE; m++)
            is_live |= extremes[f] == live[m].id;
        if (!is_live && !rejected_everywhere((shoal_ref){ extremes[f] }, 0))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);

    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    /* Each live object still has its bytes and exactly one reference: one release frees it
     * (a forged retain that reached it would keep it alive). */
    for (int k = 0; k < LIVE; k++) {
        const void *d; size_t n;
        CHECK_OK(shoal_get(live[k], &d, &n));
        CU_ASSERT(n == 100 && pat_ok(d, n, 5, (uint64_t)k));
        CHECK_OK(shoal_release(live[k]));
        CHECK_RC(shoal_get_timeout(live[k], 0, &d, &n), SHOAL_ESTALE);
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

/* The same slot reused 100,000 times: every earlier ID answers ESTALE for ever. */
static void test_slot_reuse_stale(void)
{
    test_start(shoal_test_config());
    enum { SAMPLE = 256 };
    const int iters = 100000 / SAN_DIV;
    const int every = iters / SAMPLE;
    shoal_ref sample[SAMPLE];
    int ns = 0, dup_prev = 0, bad = 0;
    uint64_t prev = 0;
    for (int k = 0; k < iters; k++) {
        uint64_t v = (uint64_t)k;
        shoal_ref r;
        int rc = shoal_put(&v, sizeof v, &r);
        if (rc != 0) {
            fprintf(stderr, "put %d = %d: %s\n", k, rc, shoal_last_error());
            bad++;
            break;
        }
        dup_prev += r.id == prev;
        prev = r.id;
        if (k % every == 0 && ns < SAMPLE)
            sample[ns++] = r;
        if (shoal_release(r) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(dup_prev, 0);      /* a reused slot never hands out the same ID */

    /* A live object, most likely in the very slot the samples used. */
    uint64_t magic = 0xfeedfacecafebeefull;
    shoal_ref cur;
    ASSERT_OK(shoal_put(&magic, sizeof magic, &cur));
    for (int k = 0; k < ns; k++) {
        CU_ASSERT(sample[k].id != cur.id);
        for (int j = 0; j < k; j++)
            if (sample[j].id == sample[k].id)
                CU_FAIL("two puts returned the same ID");
        if (!rejected_everywhere(sample[k], SHOAL_ESTALE))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    const void *d; size_t n;
    CHECK_OK(shoal_get(cur, &d, &n));
    CU_ASSERT(n == sizeof magic && memcmp(d, &magic, n) == 0);
    CU_ASSERT_EQUAL(info_now().objects_live, 1);   /* the stale releases freed nothing */
    CHECK_OK(shoal_release(cur));
    ASSERT_OK(shoal_shutdown());
}

static void test_encode_layout(void)
{
    unsigned char b[8];
    memset(b, 0xee, sizeof b);
    shoal_ref_encode((shoal_ref){ UINT64_C(0x0102030405060708) }, b);
    const unsigned char want[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };
    CU_ASSERT(memcmp(b, want, 8) == 0);
    CU_ASSERT_EQUAL(shoal_ref_decode(want).id, UINT64_C(0x0102030405060708));

    shoal_ref_encode(SHOAL_REF_NULL, b);
    const unsigned char zero[8] = { 0 };
    CU_ASSERT(memcmp(b, zero, 8) == 0);
    CU_ASSERT_EQUAL(shoal_ref_decode(zero).id, 0);
    const unsigned char ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    CU_ASSERT_EQUAL(shoal_ref_decode(ones).id, UINT64_MAX);
    const unsigned char top[8] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
    CU_ASSERT_EQUAL(shoal_ref_decode(top).id, UINT64_C(1) << 63);

    /* Round trip, also from an unaligned buffer. */
    uint64_t s = 42;
    unsigned char raw[9];
    for (int k = 0; k < 10000; k++) {
        shoal_ref r = { rnd_next(&s) };
        shoal_ref_encode(r, raw + 1);
        for (int j = 0; j < 8; j++)
            if (raw[1 + j] != (unsigned char)(r.id >> (8 * j)))
                CU_FAIL("encode is not little-endian");
        CU_ASSERT_EQUAL(shoal_ref_decode(raw + 1).id, r.id);
    }
}

/* A ref is data: encoded into another object's bytes, decoded later, it still resolves. */
static void test_ref_inside_object(void)
{
    test_start(shoal_test_config());
    shoal_ref inner;
    ASSERT_OK(shoal_put("the inner object", 16, &inner));
    unsigned char outer_bytes[24];
    memcpy(outer_bytes, "hdr:", 4);
    shoal_ref_encode(inner, outer_bytes + 4);
    memcpy(outer_bytes + 12, "trailer-xyz.", 12);
    shoal_ref outer;
    ASSERT_OK(shoal_put(outer_bytes, sizeof outer_bytes, &outer));

    /* Via shoal_create too: the ref written straight into the store. */
    void *buf;
    shoal_ref outer2;
    ASSERT_OK(shoal_create(8, &buf, &outer2));
    shoal_ref_encode(inner, buf);
    ASSERT_OK(shoal_seal(outer2));

    shoal_ref outers[2] = { outer, outer2 };
    size_t at[2] = { 4, 0 };
    for (int k = 0; k < 2; k++) {
        const void *d; size_t n;
        ASSERT_OK(shoal_get(outers[k], &d, &n));
        shoal_ref back = shoal_ref_decode((const unsigned char *)d + at[k]);
        CU_ASSERT_EQUAL(back.id, inner.id);
        const void *id; size_t in;
        CHECK_OK(shoal_get(back, &id, &in));
        CU_ASSERT(in == 16 && memcmp(id, "the inner object", 16) == 0);
    }
    /* The encoded copies carry no reference: one release frees the inner object, after
     * which the decoded ref answers ESTALE. */
    CHECK_OK(shoal_release(inner));
    const void *d; size_t n;
    ASSERT_OK(shoal_get(outer, &d, &n));
    shoal_ref back = shoal_ref_decode((const unsigned char *)d + 4);
    CHECK_RC(shoal_get_timeout(back, 0, &d, &n), SHOAL_ESTALE);
    CHECK_OK(shoal_release(outer));
    CHECK_OK(shoal_release(outer2));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "null ref answers EINVAL everywhere", test_null_ref },
        { "forged IDs are rejected, live objects untouched", test_forged_ids },
        { "slot reuse: old IDs stay ESTALE", test_slot_reuse_stale },
        { "encode/decode: little-endian layout and round trip", test_encode_layout },
        { "a ref stored inside an object resolves", test_ref_inside_object },
        { NULL, NULL },
    };
    return shoal_test_run("refs", cases);
}
