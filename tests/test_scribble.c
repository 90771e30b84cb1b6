/* test_scribble.c - the owner never crashes, and never frees one of its live blocks,
 * because of what was written into shared memory (issue 11.8): any attached process can
 * write the arenas and the object table. The allocator's metadata is process-private, so
 * random bytes over every free byte of the span change nothing; every free is checked
 * against it, so a slot rewritten to another block, to the middle of one, to another
 * length, or to a block already freed, is refused (a leak and a notice) while the objects
 * it points at stay intact. The writes here are this process's own, standing in for a
 * client's: the slot table and the span are the same shared memory. */
#include "../core/store.h"
#include "lib/check.h"

static shoal__slot *slot(shoal_ref r)
{
    int err;
    shoal__slot *s = shoal__slot_of(r, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static void start(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
}

struct obj { shoal_ref r; size_t len; uint64_t seq; };

static int put_obj(struct obj *o, size_t len, uint64_t seq)
{
    static unsigned char buf[3u << 20];
    pat_fill(buf, len, 11, seq);
    o->len = len;
    o->seq = seq;
    return shoal_put(buf, len, &o->r);
}

static int obj_ok(const struct obj *o)
{
    const void *d = NULL;
    size_t n = 0;
    return shoal_get(o->r, &d, &n) == 0 && n == o->len && pat_ok(d, n, 11, o->seq);
}

/* Puts, checks and releases objects of every size: reuses whatever the allocator has. */
static int churn(uint64_t seed)
{
    struct obj o[64];
    uint64_t s = seed;
    int bad = 0;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 64; k++) {
            size_t len = k % 8 == 7 ? (512u << 10) + (size_t)(rnd_next(&s) % (1u << 20))
                                    : 1 + (size_t)(rnd_next(&s) % 20000);
            bad += put_obj(&o[k], len, seed * 1000 + (uint64_t)round * 64 + (uint64_t)k) != 0;
        }
        for (int k = 0; k < 64; k++) {
            bad += !obj_ok(&o[k]);
            bad += shoal_release(o[k].r) != 0;
        }
    }
    return bad;
}

static void t_random_bytes_over_free_space(void)
{
    start();
    shoal_info base = info_now();
    enum { N = 48 };
    struct obj keep[N];
    uint64_t s = 99;
    for (int k = 0; k < N; k++)
        ASSERT_OK(put_obj(&keep[k], k % 6 == 5 ? (1u << 20) + 3 : 1 + (size_t)(rnd_next(&s) % 9000),
                          (uint64_t)k));
    CHECK_RC(churn(1), 0);   /* free space of every kind: cached, in slabs, whole chunks */
    /* Every byte of the span that no live object holds gets random bytes. */
    char *lo = shoal__rt->base;
    size_t span = (size_t)shoal__rt->node_span * shoal__rt->nnodes;
    char *cur = lo;
    for (;;) {
        /* the next live object at or after cur */
        const char *next = lo + span, *end = NULL;
        for (int k = 0; k < N; k++) {
            const void *d;
            size_t n;
            if (shoal_get(keep[k].r, &d, &n) == 0 && (const char *)d >= cur && (const char *)d < next) {
                next = d;
                end = (const char *)d + n;
            }
        }
        for (char *p = cur; p < next; p++)
            *p = (char)rnd_next(&s);
        if (!end)
            break;
        cur = (char *)end;
    }
    CHECK_RC(churn(2), 0);
    for (int k = 0; k < N; k++) {
        CU_ASSERT(obj_ok(&keep[k]));
        CHECK_OK(shoal_release(keep[k].r));
    }
    shoal_info end = info_now();
    CU_ASSERT_EQUAL(end.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(end.bytes_used, base.bytes_used);
    CHECK_OK(shoal_shutdown());
}

static void t_forged_frees_refused(void)
{
    start();
    shoal_info base = info_now();
    struct obj small, medium, mis, big, big2, gone, forged;
    ASSERT_OK(put_obj(&small, 100, 1));
    ASSERT_OK(put_obj(&medium, 5000, 2));
    ASSERT_OK(put_obj(&mis, 100, 3));
    ASSERT_OK(put_obj(&big, 1u << 20, 4));
    ASSERT_OK(put_obj(&big2, 1u << 20, 5));
    ASSERT_OK(put_obj(&gone, 200, 6));
    ASSERT_OK(put_obj(&forged, 200, 7));
    uint64_t small_off = slot(small.r)->off, big_off = slot(big.r)->off;
    uint64_t gone_off = slot(gone.r)->off;

    /* Another class's block; the middle of a block; a large run at another length or
     * offset: each refused, so each forged object's own block leaks. */
    slot(medium.r)->off = small_off;
    CHECK_OK(shoal_release(medium.r));
    slot(mis.r)->off += 16;
    CHECK_OK(shoal_release(mis.r));
    slot(big2.r)->off = big_off + (64u << 10);
    CHECK_OK(shoal_release(big2.r));
    /* A block already freed (it sits in this thread's cache): no second copy of it. */
    CHECK_OK(shoal_release(gone.r));
    slot(forged.r)->off = gone_off;
    CHECK_OK(shoal_release(forged.r));
    struct obj a, b;
    ASSERT_OK(put_obj(&a, 200, 8));
    ASSERT_OK(put_obj(&b, 200, 9));
    CU_ASSERT(slot(a.r)->off != slot(b.r)->off);

    /* Reuse everything free: the objects the forgeries pointed at are untouched. */
    CHECK_RC(churn(3), 0);
    CU_ASSERT(obj_ok(&small));
    CU_ASSERT(obj_ok(&big));
    CU_ASSERT(obj_ok(&a));
    CU_ASSERT(obj_ok(&b));
    /* What leaked stays counted; the rest came back. */
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.objects_live, base.objects_live + 4);
    CU_ASSERT_EQUAL(i.bytes_used, base.bytes_used + 2 * 112 + 5120 + 2 * (1u << 20) + 3 * 224);
    CHECK_OK(shoal_release(small.r));
    CHECK_OK(shoal_release(big.r));
    CHECK_OK(shoal_release(a.r));
    CHECK_OK(shoal_release(b.r));
    CU_ASSERT_EQUAL(info_now().bytes_used, base.bytes_used + 112 + 5120 + (1u << 20) + 224);
    CHECK_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "random bytes over every free byte of the span", t_random_bytes_over_free_space },
        { "frees of forged offsets and lengths are refused", t_forged_frees_refused },
        { NULL, NULL },
    };
    return shoal_test_run("scribble", cases);
}
