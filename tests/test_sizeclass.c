/* test_sizeclass.c - shoal's inline size-class computation (capacity accounting) agrees
 * with jemalloc's nallocx for every size up to 1 MiB and for sampled sizes up to 64 GiB. */
#include <jemalloc/jemalloc.h>

#include "../alloc/sizeclass.h"
#include "lib/harness.h"

static void t_small_sizes_match(void)
{
    size_t bad = 0;
    for (size_t s = 1; s <= ((size_t)1 << 20); s++)
        if (nallocx(s, 0) != shoal__usable_size(s) && bad++ < 5)
            fprintf(stderr, "size %zu: jemalloc %zu, shoal %zu\n", s, nallocx(s, 0),
                    shoal__usable_size(s));
    CU_ASSERT_EQUAL(bad, 0);
}

static void t_large_sizes_match(void)
{
    size_t bad = 0;
    for (size_t s = (size_t)1 << 20; s <= ((size_t)1 << 36); s += s / 7 + 1)
        for (size_t d = 0; d < 3; d++)   /* just below, at and above each sample */
            if (nallocx(s + d - 1, 0) != shoal__usable_size(s + d - 1) && bad++ < 5)
                fprintf(stderr, "size %zu: jemalloc %zu, shoal %zu\n", s + d - 1,
                        nallocx(s + d - 1, 0), shoal__usable_size(s + d - 1));
    CU_ASSERT_EQUAL(bad, 0);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "sizes up to 1 MiB match nallocx", t_small_sizes_match },
        { "sampled sizes up to 64 GiB match nallocx", t_large_sizes_match },
        { NULL, NULL },
    };
    return shoal_test_run("sizeclass", cases);
}
