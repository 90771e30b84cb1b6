/* test_sizeclass.c - the allocator's size classes (alloc/sizeclass.h) and slab geometry
 * (alloc/slab.c): every length gets a block that holds it, wastes less than a quarter of
 * it, is at least a cache line, 16-byte aligned, and from 16 KiB page aligned; slabs hold
 * at least four blocks and leave at most an eighth over, for every chunk size a store can
 * have. */
#include "../alloc/slab.h"
#include "lib/check.h"

static void t_classes_hold_and_bound(void)
{
    size_t bad = 0;
    unsigned prev = 0;
    for (size_t len = 1; len <= SHOAL__SMALL_MAX; len++) {
        unsigned c = shoal__class_of(len);
        size_t sz = shoal__class_size(c);
        int ok = c < SHOAL__NCLASSES && sz >= len && sz >= SHOAL__LINE_MIN && sz % 16 == 0 &&
                 shoal__usable_size(len) == sz && shoal__acct_size(len) == sz &&
                 c >= prev && c <= prev + 1 &&
                 /* less than a quarter wasted past a line */
                 (len <= SHOAL__LINE_MIN || (sz - len) * 4 < len) &&
                 /* page-sized blocks from 16 KiB: O_DIRECT into objects (io/) */
                 (len < SHOAL__ALIGN_MIN || sz % 4096 == 0);
        if (!ok && bad++ < 5)
            fprintf(stderr, "len %zu: class %u of %zu bytes (previous class %u)\n", len, c, sz,
                    prev);
        prev = c;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(shoal__class_of(1), 0);
    CU_ASSERT_EQUAL(shoal__class_size(0), 64);
    CU_ASSERT_EQUAL(shoal__class_of(SHOAL__SMALL_MAX), SHOAL__NCLASSES - 1);
    CU_ASSERT_EQUAL(shoal__class_size(SHOAL__NCLASSES - 1), SHOAL__SMALL_MAX);
    /* The live map keeps class + 1 and a block's place in its line in a byte. */
    CU_ASSERT((SHOAL__NCLASSES << 2) + 3 < 256);
    CU_ASSERT(shoal__live_tag(0, 0) != 0);
}

static void t_classes_exact(void)
{
    /* Each class's own size maps to it; one byte more maps to the next class. */
    for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
        size_t sz = shoal__class_size(c);
        CU_ASSERT_EQUAL(shoal__class_of(sz), c);
        if (c + 1 < SHOAL__NCLASSES)
            CU_ASSERT_EQUAL(shoal__class_of(sz + 1), c + 1);
        if (c > 0)
            CU_ASSERT(sz > shoal__class_size(c - 1));
    }
    /* The table is 2^lg + j 2^(lg-2), j = 1..4, after 64: four per doubling. */
    for (unsigned c = 1; c < SHOAL__NCLASSES; c++) {
        unsigned lg = 6 + (c - 1) / 4, j = (c - 1) % 4 + 1;
        CU_ASSERT_EQUAL(shoal__class_size(c), ((size_t)1 << lg) + ((size_t)j << (lg - 2)));
    }
    CU_ASSERT_EQUAL(shoal__class_size(1), 80);
    CU_ASSERT_EQUAL(shoal__class_size(4), 128);
    CU_ASSERT_EQUAL(shoal__class_size(5), 160);
}

static void t_large_bound(void)
{
    size_t bad = 0;
    uint64_t s = 7;
    for (int k = 0; k < 1000000; k++) {
        size_t len = SHOAL__LARGE_MIN + (size_t)(rnd_next(&s) % ((uint64_t)1 << (20 + k % 17)));
        size_t a = shoal__acct_size(len);
        if ((a < len || a % 65536 != 0 || (a - len) * 4 >= len || a - len >= 65536) && bad++ < 5)
            fprintf(stderr, "large len %zu: accounted %zu\n", len, a);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(shoal__acct_size(SHOAL__LARGE_MIN), SHOAL__SMALL_MAX + 65536);
}

static void t_slab_geometry(void)
{
    size_t bad = 0;
    for (unsigned shift = 16; shift <= 26; shift++)
        for (unsigned c = 0; c < SHOAL__NCLASSES; c++) {
            uint32_t nch, nobj;
            shoal__slab_geometry(c, shift, &nch, &nobj);
            uint64_t bytes = (uint64_t)nch << shift, sz = shoal__class_size(c);
            int ok = nch >= 1 && nch <= 64 && nobj == bytes / sz && nobj >= 4 &&
                     (bytes - (uint64_t)nobj * sz) * 8 <= bytes;
            if (!ok && bad++ < 5)
                fprintf(stderr, "chunk 2^%u, class %u (%llu B): %u chunks, %u blocks\n", shift,
                        c, (unsigned long long)sz, nch, nobj);
        }
    CU_ASSERT_EQUAL(bad, 0);
}

/* In a store: every object starts on 16 bytes, and from 16 KiB on a page (O_DIRECT). */
static void t_store_alignment(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    static const size_t lens[] = { 1, 65, 100, 1000, 5000, 16384, 16385, 20000, 65537,
                                   100000, 262144, 262145, 300000, (1u << 20) + 1 };
    enum { N = sizeof lens / sizeof lens[0] };
    shoal_ref r[N][3];
    for (int k = 0; k < N; k++)
        for (int j = 0; j < 3; j++) {
            void *b = NULL;
            ASSERT_OK(shoal_create(lens[k], &b, &r[k][j]));
            uintptr_t p = (uintptr_t)b;
            if (p % 16 != 0 || (lens[k] >= SHOAL__ALIGN_MIN && p % 4096 != 0))
                fprintf(stderr, "a %zu-byte object at %p\n", lens[k], b);
            CU_ASSERT(p % 16 == 0);
            CU_ASSERT(lens[k] < SHOAL__ALIGN_MIN || p % 4096 == 0);
        }
    for (int k = 0; k < N; k++)
        for (int j = 0; j < 3; j++)
            CHECK_OK(shoal_release(r[k][j]));
    CHECK_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "every small length: a block that holds it, < 25% waste", t_classes_hold_and_bound },
        { "class sizes are fixed points, four per doubling", t_classes_exact },
        { "large objects: 64 KiB rounding, < 25% waste", t_large_bound },
        { "slabs: >= 4 blocks, <= 1/8 left over, any chunk size", t_slab_geometry },
        { "objects are 16-byte aligned, page aligned from 16 KiB", t_store_alignment },
        { NULL, NULL },
    };
    return shoal_test_run("sizeclass", cases);
}
