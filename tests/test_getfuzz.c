/* test_getfuzz.c - the inline get (include/shoal.h: asm flag outputs on x86-64) never returns
 * a pointer for a ref that the library's own get refuses, and never one outside the store:
 * random IDs, live objects' IDs with neighbouring generations, indexes around the table's end,
 * freed objects, results held in their slot, refs kept across shutdown and a new init. */
#include "../core/store.h"
#include "lib/check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return rnd_next(&rng); }   /* lib/check.h */

/* The three ways of getting agree on rc and pointer; a 0 names bytes inside the store. */
static int agree(shoal_ref r)
{
    const void *d[3] = { (const void *)1, (const void *)1, (const void *)1 };
    size_t n[3] = { 7, 7, 7 };
    int rc[3];
    rc[0] = shoal_get(r, &d[0], &n[0]);
    rc[1] = (shoal_get)(r, &d[1], &n[1]);
    rc[2] = shoal_get_timeout(r, 0, &d[2], &n[2]);
    int ok = 1;
    for (int k = 1; k < 3; k++)
        if (rc[k] != rc[0] || (rc[0] == 0 && (d[k] != d[0] || n[k] != n[0])))
            ok = 0;
    if (!ok) {
        fprintf(stderr, "ref 0x%016llx: inline %d %p %zu, library %d %p %zu, slow %d %p %zu\n",
                (unsigned long long)r.id, rc[0], d[0], n[0], rc[1], d[1], n[1], rc[2], d[2], n[2]);
        return 0;
    }
    if (rc[0] == 0 && shoal__rt) {
        const char *b = shoal__rt->base;
        uint64_t span = shoal__rt->node_span * shoal__rt->nnodes;
        const char *p = d[0];
        int in_store = p >= b && p + n[0] <= b + span;
        int in_table = p >= (const char *)shoal__rt->slots &&
                       p + n[0] <= (const char *)(shoal__rt->slots + shoal__rt->nslots);
        if (!in_store && !in_table) {
            fprintf(stderr, "ref 0x%016llx: pointer %p (%zu bytes) outside the store\n",
                    (unsigned long long)r.id, (const void *)p, n[0]);
            return 0;
        }
        volatile char sink = 0;
        for (size_t i = 0; i < n[0]; i++)   /* ASan: readable */
            sink ^= p[i];
        (void)sink;
    }
    return 1;
}

static int t_small(shoal_task *t)
{
    uint64_t v = 0x1122334455667788ull;
    return shoal_task_return(t, &v, sizeof v);
}

static void test_fuzz_ids(void)
{
    shoal_config c = shoal_test_config();
    c.max_objects = 1000;
    test_start(c);
    enum { N = 64 };
    shoal_ref live[N], dead[N];
    char buf[100];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(shoal_put(buf, 1 + (size_t)i, &live[i]));
        ASSERT_OK(shoal_put(buf, 33, &dead[i]));
    }
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_release(dead[i]));
    shoal_ref small[8];
    for (int i = 0; i < 8; i++) {
        ASSERT_OK(shoal_submit(t_small, NULL, 0, NULL, &small[i]));
        const void *d;
        size_t n;
        ASSERT_OK(get_within(small[i], &d, &n));
    }
    uint64_t nslots = shoal__rt->nslots;
    int bad = 0;
    for (int iter = 0; iter < 200000 / SAN_DIV && bad < 5; iter++) {
        uint64_t id;
        switch (iter % 6) {
        case 0: id = rnd(); break;
        case 1: id = live[rnd() % N].id + (((rnd() % 5) - 2) << 32); break;
        case 2: id = dead[rnd() % N].id + (((rnd() % 5) - 2) << 32); break;
        case 3: id = (rnd() & ~(uint64_t)UINT32_MAX) | (nslots - 3 + rnd() % 6); break;
        case 4: id = small[rnd() % 8].id ^ (UINT64_C(1) << (rnd() % 64)); break;
        default: id = live[rnd() % N].id ^ (UINT64_C(1) << (rnd() % 64)); break;
        }
        bad += !agree((shoal_ref){ id });
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_release(live[i]));
    for (int i = 0; i < 8; i++)
        CHECK_OK(shoal_release(small[i]));
    CHECK_OK(shoal_shutdown());
}

/* Refs kept across a shutdown and across a new init: never a pointer. */
static void test_refs_across_reinit(void)
{
    shoal_config c = shoal_test_config();
    c.max_objects = 1000;
    test_start(c);
    shoal_ref r[16];
    const void *d;
    size_t n;
    for (int i = 0; i < 16; i++) {
        ASSERT_OK(shoal_put("0123456789abcdef0123456789abcdef", 32, &r[i]));
        ASSERT_OK(shoal_get(r[i], &d, &n));
    }
    CHECK_OK(shoal_shutdown());
    for (int i = 0; i < 16; i++) {
        d = NULL;
        CHECK_RC(shoal_get(r[i], &d, &n), SHOAL_ENOTINIT);
        CU_ASSERT_PTR_NULL(d);
    }
    ASSERT_OK(shoal_init(&c));
    shoal_ref s[16];
    for (int i = 0; i < 16; i++)
        ASSERT_OK(shoal_put("ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP", 32, &s[i]));
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        d = NULL;
        int rc = shoal_get(r[i], &d, &n);
        if (rc == 0)
            fprintf(stderr, "old ref 0x%016llx resolved in the new store\n",
                    (unsigned long long)r[i].id);
        bad += rc == 0;
        bad += !agree(r[i]);
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int i = 0; i < 16; i++)
        CHECK_OK(shoal_release(s[i]));
    CHECK_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "random and neighbouring IDs: the inline get agrees with the library", test_fuzz_ids },
        { "refs kept across shutdown and a new init resolve to nothing", test_refs_across_reinit },
        { NULL, NULL },
    };
    return shoal_test_run("getfuzz", cases);
}
