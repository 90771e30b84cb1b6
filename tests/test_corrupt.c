/* test_corrupt.c - a slot whose offset or length a process overwrote with garbage (every
 * attached process can write the object table) costs a leak and a notice, never a crash:
 * release does not free it, and a failed object's message is not read from it. */
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

int main(void)
{
    static const shoal_test_case cases[] = {
        { "release of a slot with garbage bytes leaks, not crashes", test_release_of_corrupt_slot },
        { "a failed object's garbage message is not read", test_failed_object_with_corrupt_message },
        { NULL, NULL },
    };
    return shoal_test_run("corrupt", cases);
}
