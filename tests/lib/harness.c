/* harness.c - the CUnit driver shared by every suite program. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static unsigned skips;

void shoal_test_skip(const char *why)
{
    skips++;
    printf("\n  SKIP %s: %s\n", CU_get_current_test() ? CU_get_current_test()->pName : "?", why);
}

shoal_config shoal_test_config(void)
{
    shoal_config c;
    memset(&c, 0, sizeof c);
    c.store_bytes = 64u << 20;
    c.workers = 2;
    return c;
}

int shoal_test_run(const char *suite, const shoal_test_case *cases)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    if (!s)
        return 2;
    for (const shoal_test_case *c = cases; c->name; c++)
        if (!CU_add_test(s, c->name, c->fn))
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (skips)
        printf("SKIP: %u test(s) of %s skipped (see SKIP lines above)\n", skips, suite);
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
