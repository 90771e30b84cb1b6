/* test_refs_in_objects.c - objects that contain refs (shoal_put_with_refs,
 * shoal_task_return_with_refs, shoal_object_refs): the contained objects outlive their
 * creator's release and go with the outer object (objects and bytes back to where they
 * were, ESTALE after); nests 10,000 deep freed on a small stack; a tree of tasks returning
 * their children's refs; all or nothing on a bad list; cycles refused; a failed task's list
 * let go; spilling under objects with refs; and across processes (a client puts, the owner
 * frees; the owner puts, a client frees; a client killed holding its object).
 * Black-box through shoal.h; every blocking call is bounded. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "lib/tasks.h"

extern char **environ;

#define CHUNKS 8
#define CHUNK_LEN 3000

/* Wait (bounded) until the store's figures are (bytes, objects): frees another process or
 * a task finishing makes land a moment later. Never a timing assertion. */
static int settle(uint64_t bytes, uint64_t objects)
{
    shoal_info i = info_now();
    for (int k = 0; k < 10000 && (i.bytes_used != bytes || i.objects_live != objects); k++) {
        nap_ms(1);
        i = info_now();
    }
    if (i.bytes_used != bytes || i.objects_live != objects)
        fprintf(stderr, "store at %llu bytes / %llu objects, want %llu / %llu\n",
                (unsigned long long)i.bytes_used, (unsigned long long)i.objects_live,
                (unsigned long long)bytes, (unsigned long long)objects);
    return i.bytes_used == bytes && i.objects_live == objects;
}

static int is_stale(shoal_ref r)
{
    const void *d;
    size_t n;
    return shoal_get_timeout(r, 0, &d, &n) == SHOAL_ESTALE;
}

static void put_chunks(shoal_ref c[], int n, uint64_t who)
{
    for (int i = 0; i < n; i++) {
        unsigned char b[CHUNK_LEN];
        pat_fill(b, sizeof b, who, (uint64_t)i);
        ASSERT_OK(shoal_put(b, sizeof b, &c[i]));
    }
}

/* Every ref the list object contains resolves to its chunk's pattern. */
static int chunks_ok(shoal_ref list, int n, uint64_t who)
{
    shoal_ref got[CHUNKS];
    size_t k = 0;
    int rc = shoal_object_refs(list, got, CHUNKS, &k);
    if (rc || k != (size_t)n) {
        fprintf(stderr, "shoal_object_refs = %d, n %zu: %s\n", rc, k, shoal_last_error());
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const void *d;
        size_t len;
        if ((rc = get_within(got[i], &d, &len)) || len != CHUNK_LEN || !pat_ok(d, len, who, (uint64_t)i)) {
            fprintf(stderr, "chunk %d: %d %s\n", i, rc, rc ? shoal_last_error() : "bad bytes");
            return 0;
        }
    }
    return 1;
}

/* ---- in one process ------------------------------------------------------------------------- */

/* The list of chunks: the creator releases the chunks, they live on in the list, and
 * releasing the list frees everything (objects and bytes back to their starting values). */
static void test_list_of_chunks(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    shoal_ref c[CHUNKS], list;
    put_chunks(c, CHUNKS, 1);
    const char payload[] = "a list of chunks";
    ASSERT_OK(shoal_put_with_refs(payload, sizeof payload, c, CHUNKS, &list));
    for (int i = 0; i < CHUNKS; i++)
        CHECK_OK(shoal_release(c[i]));   /* the caller's own: the list holds its own */
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live + CHUNKS + 1);
    const void *d;
    size_t n;
    ASSERT_OK(get_within(list, &d, &n));   /* the payload alone: the list is not in it */
    CU_ASSERT_EQUAL(n, sizeof payload);
    CU_ASSERT(memcmp(d, payload, n) == 0);
    CU_ASSERT(chunks_ok(list, CHUNKS, 1));
    /* A reader may retain a contained ref and keep its object past the list. */
    CHECK_OK(shoal_retain(c[3]));
    CHECK_OK(shoal_release(list));
    CU_ASSERT(is_stale(list));
    for (int i = 0; i < CHUNKS; i++)
        CU_ASSERT(i == 3 ? !is_stale(c[i]) : is_stale(c[i]));
    CHECK_OK(shoal_release(c[3]));
    CU_ASSERT(is_stale(c[3]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* Reading the list back: counts, a short buffer, objects without refs, errors. */
static void test_object_refs_readback(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    shoal_ref c[3], list, plain, created, got[2] = { { 0 }, { 0 } };
    put_chunks(c, 3, 2);
    /* A ref listed twice is held twice; an empty payload is fine. */
    shoal_ref l[4] = { c[0], c[1], c[2], c[0] };
    ASSERT_OK(shoal_put_with_refs(NULL, 0, l, 4, &list));
    size_t n = 99;
    CHECK_OK(shoal_object_refs(list, got, 2, &n));
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT(got[0].id == c[0].id && got[1].id == c[1].id);
    CHECK_OK(shoal_object_refs(list, NULL, 0, &n));
    CU_ASSERT_EQUAL(n, 4);
    ASSERT_OK(shoal_put("x", 1, &plain));
    CHECK_OK(shoal_object_refs(plain, got, 2, &n));
    CU_ASSERT_EQUAL(n, 0);
    /* nrefs 0 is shoal_put (refs may be NULL). */
    shoal_ref none;
    ASSERT_OK(shoal_put_with_refs("y", 1, NULL, 0, &none));
    CHECK_OK(shoal_object_refs(none, got, 2, &n));
    CU_ASSERT_EQUAL(n, 0);
    void *buf;
    ASSERT_OK(shoal_create(8, &buf, &created));
    CHECK_RC(shoal_object_refs(created, got, 2, &n), SHOAL_EBUSY);
    CHECK_RC(shoal_object_refs(list, got, 2, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_object_refs(list, NULL, 2, &n), SHOAL_EINVAL);
    CHECK_RC(shoal_object_refs(SHOAL_REF_NULL, got, 2, &n), SHOAL_EINVAL);
    for (int i = 0; i < 3; i++)
        CHECK_OK(shoal_release(c[i]));
    CHECK_OK(shoal_release(list));
    CHECK_RC(shoal_object_refs(list, got, 2, &n), SHOAL_ESTALE);
    CU_ASSERT(is_stale(c[0]) && is_stale(c[1]) && is_stale(c[2]));
    CHECK_OK(shoal_seal(created));
    CHECK_OK(shoal_release(created));
    CHECK_OK(shoal_release(plain));
    CHECK_OK(shoal_release(none));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* A bad list takes nothing and stores nothing: each ref keeps exactly its own reference. */
static void test_all_or_nothing(void)
{
    test_start(shoal_test_config());
    shoal_ref a, b, gone, out = { 12345 };
    ASSERT_OK(shoal_put("a", 1, &a));
    ASSERT_OK(shoal_put("b", 1, &b));
    ASSERT_OK(shoal_put("g", 1, &gone));
    ASSERT_OK(shoal_release(gone));
    shoal_info i0 = info_now();
    shoal_ref stale_last[3] = { a, b, gone };
    CHECK_RC(shoal_put_with_refs("x", 1, stale_last, 3, &out), SHOAL_ESTALE);
    CU_ASSERT(strstr(shoal_last_error(), "refs[2]") != NULL);
    shoal_ref forged[3] = { a, { 0x7fffffff00000000ull | 12345 }, b };
    ASSERT_RC2(shoal_put_with_refs("x", 1, forged, 3, &out), SHOAL_EINVAL, SHOAL_ESTALE);
    shoal_ref null_in[2] = { a, SHOAL_REF_NULL };
    CHECK_RC(shoal_put_with_refs("x", 1, null_in, 2, &out), SHOAL_EINVAL);
    CHECK_RC(shoal_put_with_refs("x", 1, NULL, 2, &out), SHOAL_EINVAL);
    CHECK_RC(shoal_put_with_refs(NULL, 1, &a, 1, &out), SHOAL_EINVAL);
    CHECK_RC(shoal_put_with_refs("x", 1, &a, 1, NULL), SHOAL_EINVAL);
    /* Too many: refused before any is looked at. */
    size_t too_many = (size_t)SHOAL_OBJECT_REFS_MAX + 1;
    shoal_ref *many = malloc(too_many * sizeof *many);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    for (size_t i = 0; i < too_many; i++)
        many[i] = a;
    CHECK_RC(shoal_put_with_refs("x", 1, many, too_many, &out), SHOAL_EINVAL);
    CU_ASSERT(strstr(shoal_last_error(), "SHOAL_OBJECT_REFS_MAX") != NULL);
    free(many);
    CU_ASSERT_EQUAL(out.id, 12345);
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    /* Nothing was retained: one release frees each. */
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_release(b));
    CU_ASSERT(is_stale(a) && is_stale(b));
    ASSERT_OK(shoal_shutdown());
}

/* The list lives in the store after the payload, where any process with the store mapped
 * could write: a list scribbled over is never followed blindly. Garbage IDs are skipped
 * (their objects keep their references: a leak, not a crash); a bad header or count leaks
 * the object with a notice. */
static void test_corrupt_list(void)
{
    test_start(shoal_test_config());
    shoal_ref c[2], list;
    put_chunks(c, 2, 5);
    ASSERT_OK(shoal_put_with_refs("abc", 3, c, 2, &list));
    const void *d;
    size_t n;
    ASSERT_OK(get_within(list, &d, &n));
    /* The trailer: 8-aligned after the payload; magic, count, scratch, then the IDs. */
    unsigned char *tr = (unsigned char *)(uintptr_t)d + 8;
    uint64_t junk[2] = { 0x7fffffff00000000ull | 77777, 0 };
    memcpy(tr + 24, junk, sizeof junk);   /* IDs: a forged one and a null one */
    CHECK_OK(shoal_release(list));
    CU_ASSERT(is_stale(list));
    CU_ASSERT(!is_stale(c[0]) && !is_stale(c[1]));   /* nothing released in their name */

    ASSERT_OK(shoal_put_with_refs("abc", 3, c, 2, &list));
    ASSERT_OK(get_within(list, &d, &n));
    tr = (unsigned char *)(uintptr_t)d + 8;
    uint32_t huge = 0xffffffffu;
    memcpy(tr + 4, &huge, sizeof huge);   /* a count far past the store */
    size_t k = 0;
    CHECK_RC(shoal_object_refs(list, NULL, 0, &k), SHOAL_EIO);
    CHECK_OK(shoal_release(list));   /* leaked with a notice, not followed */
    CU_ASSERT(is_stale(list));
    for (int i = 0; i < 2; i++) {
        CHECK_OK(shoal_release(c[i]));   /* ours and the first list's (skipped) */
        CHECK_OK(shoal_release(c[i]));   /* the second list's (leaked) */
    }
    ASSERT_OK(shoal_shutdown());
}

/* Frees a chain on a thread with a small stack: one frame per level would overflow it. */
struct chain_arg { shoal_ref top; int rc; };
static void *release_on_small_stack(void *p)
{
    struct chain_arg *a = p;
    a->rc = shoal_release(a->top);
    return NULL;
}

/* A chain 10,000 deep (each object contains the one below) freed by one release, with no
 * recursion: the release runs on a 256 KiB stack. */
static void test_nested_chain(void)
{
    shoal_config cfg = shoal_test_config();
    cfg.max_objects = 1 << 16;
    test_start(cfg);
    shoal_info i0 = info_now();
    enum { DEPTH = 10000 };
    shoal_ref *all = malloc(DEPTH * sizeof *all);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    ASSERT_OK(shoal_put("leaf", 5, &all[0]));
    for (int i = 1; i < DEPTH; i++) {
        ASSERT_OK(shoal_put_with_refs(&i, sizeof i, &all[i - 1], 1, &all[i]));
        ASSERT_OK(shoal_release(all[i - 1]));
    }
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live + DEPTH);
    /* Walk down from the top: every level holds the next. */
    shoal_ref r = all[DEPTH - 1];
    int levels = 0;
    for (;;) {
        shoal_ref below;
        size_t n;
        if (shoal_object_refs(r, &below, 1, &n) != 0 || n == 0)
            break;
        r = below;
        levels++;
    }
    CU_ASSERT_EQUAL(levels, DEPTH - 1);
    CU_ASSERT_EQUAL(r.id, all[0].id);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 << 10);
    struct chain_arg a = { all[DEPTH - 1], -1 };
    pthread_t th;
    ASSERT_OK(pthread_create(&th, &at, release_on_small_stack, &a));
    pthread_join(th, NULL);
    pthread_attr_destroy(&at);
    CHECK_OK(a.rc);
    int stale = 0;
    for (int i = 0; i < DEPTH; i++)
        stale += is_stale(all[i]);
    CU_ASSERT_EQUAL(stale, DEPTH);
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    free(all);
    ASSERT_OK(shoal_shutdown());
}

/* A wide and deep mix: many lists sharing children, dropped in random order. */
static void test_shared_children(void)
{
    test_start(shoal_test_config());
    shoal_info i0 = info_now();
    enum { LEAVES = 64, LISTS = 200 };
    shoal_ref leaf[LEAVES], list[LISTS];
    put_chunks(leaf, LEAVES, 3);
    uint64_t s = 42;
    for (int i = 0; i < LISTS; i++) {
        shoal_ref pick[6];
        int n = 1 + (int)(rnd_next(&s) % 6);
        for (int j = 0; j < n; j++)
            pick[j] = (i > 0 && j == 0 && rnd_next(&s) % 2) ? list[rnd_next(&s) % (uint64_t)i]
                                                          : leaf[rnd_next(&s) % LEAVES];
        ASSERT_OK(shoal_put_with_refs(&i, sizeof i, pick, (size_t)n, &list[i]));
    }
    for (int i = 0; i < LEAVES; i++)
        CHECK_OK(shoal_release(leaf[i]));
    for (int i = LISTS - 1; i > 0; i--) {   /* shuffle */
        int j = (int)(rnd_next(&s) % (uint64_t)(i + 1));
        shoal_ref t = list[i];
        list[i] = list[j];
        list[j] = t;
    }
    for (int i = 0; i < LISTS; i++)
        CHECK_OK(shoal_release(list[i]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* ---- tasks ------------------------------------------------------------------------------------ */

/* A tree walk: a node of depth d > 0 starts two children and returns their refs with its
 * own value (d), releasing its own references on them; a leaf returns 0. */
static int t_node(shoal_task *t)
{
    long d = arg_long(t, 0);
    if (d == 0)
        return shoal_task_return(t, &d, sizeof d);
    long cd = d - 1;
    shoal_arg a[] = { SHOAL_VALUE(&cd, sizeof cd) };
    shoal_ref kids[2];
    if (shoal_submit(t_node, a, 1, NULL, &kids[0]) != 0)
        return shoal_task_fail(t, shoal_last_error());
    if (shoal_submit(t_node, a, 1, NULL, &kids[1]) != 0) {
        shoal_release(kids[0]);
        return shoal_task_fail(t, shoal_last_error());
    }
    int rc = shoal_task_return_with_refs(t, &d, sizeof d, kids, 2);
    shoal_release(kids[0]);
    shoal_release(kids[1]);
    return rc;
}

/* Count the nodes under r (iteratively), checking each level's value. */
static long walk_tree(shoal_ref root, long depth)
{
    struct { shoal_ref r; long d; } st[64];
    int sp = 0;
    long nodes = 0;
    st[sp].r = root;
    st[sp++].d = depth;
    while (sp) {
        shoal_ref r = st[--sp].r;
        long d = st[sp].d;
        int rc;
        if (get_long(r, &rc) != d || rc != 0) {
            fprintf(stderr, "node of depth %ld: rc %d %s\n", d, rc, shoal_last_error());
            return -1;
        }
        nodes++;
        shoal_ref kids[2];
        size_t n = 0;
        if (shoal_object_refs(r, kids, 2, &n) != 0 || n != (d ? 2u : 0u))
            return -1;
        for (size_t i = 0; i < n && sp < 62; i++) {
            st[sp].r = kids[i];
            st[sp++].d = d - 1;
        }
    }
    return nodes;
}

/* The tree's result keeps every subtree alive after the tasks released theirs; read or
 * unread, releasing the root frees all of it. */
static void test_task_tree(void)
{
    start_workers(2, 0);
    shoal_info i0 = info_now();
    const long depth = 8;   /* 511 tasks */
    shoal_arg a[] = { SHOAL_VALUE(&depth, sizeof depth) };
    shoal_ref root;
    ASSERT_OK(shoal_submit(t_node, a, 1, NULL, &root));
    CU_ASSERT_EQUAL(walk_tree(root, depth), (1L << (depth + 1)) - 1);
    /* Every node is live: only the root's reference is ours. */
    CU_ASSERT_EQUAL(live_settled(i0.objects_live + (1u << (depth + 1)) - 1),
                    i0.objects_live + (1u << (depth + 1)) - 1);
    CHECK_OK(shoal_release(root));
    CU_ASSERT(is_stale(root));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));

    /* Unread: released at once, while the tree still grows. */
    ASSERT_OK(shoal_submit(t_node, a, 1, NULL, &root));
    CHECK_OK(shoal_release(root));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* Start a leaf child and return v with its ref in t's result (dropping our own reference
 * on the child); nonzero after failing t with the reason. */
static int return_leaf_child(shoal_task *t, long v)
{
    long zero = 0;
    shoal_arg a[] = { SHOAL_VALUE(&zero, sizeof zero) };   /* a leaf */
    shoal_ref kid;
    if (shoal_submit(t_node, a, 1, NULL, &kid) != 0) {
        shoal_task_fail(t, shoal_last_error());
        return -1;
    }
    int rc = shoal_task_return_with_refs(t, &v, sizeof v, &kid, 1);
    shoal_release(kid);
    if (rc) {
        shoal_task_fail(t, shoal_last_error());
        return -1;
    }
    return 0;
}

/* A task that returns a child's ref and then fails: its result lets go of the child. */
static int t_return_then_fail(shoal_task *t)
{
    int rc = return_leaf_child(t, 5);
    return rc ? rc : 1;   /* fails after returning */
}

/* Bad lists from a task (a stale ID arrives as a VALUE): the result is untouched and the
 * task may still return, once. */
static int t_bad_list(shoal_task *t)
{
    shoal_ref stale = SHOAL_REF_NULL;
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n) != 0 || n != sizeof stale)
        return shoal_task_fail(t, "no arg");
    memcpy(&stale, d, sizeof stale);
    long v = 9;
    int rc1 = shoal_task_return_with_refs(t, &v, sizeof v, NULL, 1);
    int rc2 = shoal_task_return_with_refs(t, &v, sizeof v, &stale, 1);
    long out = rc1 == SHOAL_EINVAL && rc2 == SHOAL_ESTALE ? 1 : -1000 * (long)-rc1 - (long)-rc2;
    if (shoal_task_return_with_refs(t, &out, sizeof out, NULL, 0) != 0)
        return shoal_task_fail(t, shoal_last_error());
    return shoal_task_return_with_refs(t, &out, sizeof out, NULL, 0) == SHOAL_EEXIST ? 0 : 1;
}

/* Returns a child's ref, then waits to be canceled (at most 60 s): its result fails
 * SHOAL_ECANCELED and lets go of the child. */
static _Atomic int returned_refs;
static int t_return_then_canceled(shoal_task *t)
{
    int rc = return_leaf_child(t, 6);
    if (rc)
        return rc;
    atomic_store(&returned_refs, 1);
    for (int i = 0; i < 60000 && !shoal_task_cancelled(t); i++)
        nap_ms(1);
    return 0;
}

static void test_task_errors(void)
{
    start_workers(2, 0);
    shoal_info i0 = info_now();
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_return_then_fail, NULL, 0, NULL, &r));
    const void *d;
    size_t n;
    CHECK_RC(get_within(r, &d, &n), SHOAL_ETASK);
    size_t k = 7;
    CHECK_OK(shoal_object_refs(r, NULL, 0, &k));
    CU_ASSERT_EQUAL(k, 0);
    CHECK_OK(shoal_release(r));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));

    atomic_store(&returned_refs, 0);
    ASSERT_OK(shoal_submit(t_return_then_canceled, NULL, 0, NULL, &r));
    for (int i = 0; i < 60000 && !atomic_load(&returned_refs); i++)
        nap_ms(1);
    CHECK_RC(shoal_cancel(r), 1);
    CHECK_RC(get_within(r, &d, &n), SHOAL_ECANCELED);
    CHECK_OK(shoal_object_refs(r, NULL, 0, &k));
    CU_ASSERT_EQUAL(k, 0);
    CHECK_OK(shoal_release(r));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));

    shoal_ref gone;
    ASSERT_OK(shoal_put("g", 1, &gone));
    ASSERT_OK(shoal_release(gone));
    shoal_arg a[] = { SHOAL_VALUE(&gone, sizeof gone) };
    ASSERT_OK(shoal_submit(t_bad_list, a, 1, NULL, &r));
    int rc;
    CU_ASSERT_EQUAL(get_long(r, &rc), 1);
    CHECK_OK(rc);
    CHECK_OK(shoal_object_refs(r, NULL, 0, &k));
    CU_ASSERT_EQUAL(k, 0);
    CHECK_OK(shoal_release(r));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* Cycles: task A returns B's result (B not done: allowed); B, which runs after A (its REF
 * argument), then lists A's result, which reaches B's own: refused, and B returns plainly.
 * A's ref reaches B's result through a created object the test seals. */
static int t_cycle_a(shoal_task *t)
{
    const void *d;
    size_t n;
    shoal_ref b;
    if (shoal_task_arg(t, 0, &d, &n) != 0 || n != sizeof b)
        return shoal_task_fail(t, "A: no ref of B");
    memcpy(&b, d, sizeof b);
    long v = 1;
    return shoal_task_return_with_refs(t, &v, sizeof v, &b, 1);
}

static int t_cycle_b(shoal_task *t)
{
    shoal_ref a;
    if (shoal_task_arg_ref(t, 0, &a) != 0)
        return shoal_task_fail(t, "B: no ref of A");
    long v = 2;
    int rc = shoal_task_return_with_refs(t, &v, sizeof v, &a, 1);
    if (rc == SHOAL_EINVAL && strstr(shoal_last_error(), "cannot contain itself")) {
        v = 3;   /* refused as a cycle */
        return shoal_task_return(t, &v, sizeof v);
    }
    return rc ? shoal_task_fail(t, shoal_last_error()) : 0;
}

static void test_cycle_refused(void)
{
    start_workers(2, 0);
    shoal_info i0 = info_now();
    shoal_ref box, ra, rb;
    void *buf;
    ASSERT_OK(shoal_create(sizeof(shoal_ref), &buf, &box));
    shoal_arg aa[] = { SHOAL_REF(box) };
    ASSERT_OK(shoal_submit(t_cycle_a, aa, 1, NULL, &ra));
    shoal_arg ab[] = { SHOAL_REF(ra) };
    ASSERT_OK(shoal_submit(t_cycle_b, ab, 1, NULL, &rb));
    memcpy(buf, &rb, sizeof rb);
    ASSERT_OK(shoal_seal(box));
    int rc;
    CU_ASSERT_EQUAL(get_long(rb, &rc), 3);
    CHECK_OK(rc);
    CU_ASSERT_EQUAL(get_long(ra, &rc), 1);
    size_t n = 0;
    shoal_ref in_a;
    CHECK_OK(shoal_object_refs(ra, &in_a, 1, &n));
    CU_ASSERT(n == 1 && in_a.id == rb.id);
    CHECK_OK(shoal_object_refs(rb, NULL, 0, &n));
    CU_ASSERT_EQUAL(n, 0);
    /* No cycle, so releasing frees everything. */
    CHECK_OK(shoal_release(box));
    CHECK_OK(shoal_release(rb));
    CU_ASSERT(!is_stale(rb));   /* A's result holds it */
    CHECK_OK(shoal_release(ra));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* ---- spilling --------------------------------------------------------------------------------- */

static char spill_dir[64];

/* A 16 MiB store spilling: the chunks a list contains are spilled and read back through
 * the list; the list itself stays resident with its refs; all freed at the end. */
static void test_spill_under_lists(void)
{
    enum { MiB = 1 << 20, BIG = MiB, NBIG = 6, FILL = 24 };
    snprintf(spill_dir, sizeof spill_dir, "/tmp/shoal-refs-spill-%d", (int)getpid());
    mkdir(spill_dir, 0700);
    shoal_config c = shoal_test_config();
    c.store_bytes = 16 * MiB;
    c.spill_dir = spill_dir;
    test_start(c);
    shoal_info i0 = info_now();
    shoal_stats s0;
    ASSERT_OK(shoal_stats_get(&s0, sizeof s0));
    shoal_ref big[NBIG], list, fill[FILL];
    unsigned char *b = malloc(BIG);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int i = 0; i < NBIG; i++) {
        pat_fill(b, BIG, 7, (uint64_t)i);
        ASSERT_OK(shoal_put(b, BIG, &big[i]));
    }
    pat_fill(b, BIG, 8, 0);
    ASSERT_OK(shoal_put_with_refs(b, BIG, big, NBIG, &list));
    for (int i = 0; i < NBIG; i++)
        CHECK_OK(shoal_release(big[i]));
    CHECK_OK(shoal_advise_cold(list));   /* asked, but an object with refs stays resident */
    /* Fill the store well past its size: the oldest cold objects go to disk. */
    for (int i = 0; i < FILL; i++) {
        pat_fill(b, BIG, 9, (uint64_t)i);
        ASSERT_OK(shoal_put(b, BIG, &fill[i]));
    }
    shoal_stats s1;
    ASSERT_OK(shoal_stats_get(&s1, sizeof s1));
    CU_ASSERT(s1.spilled_objects > s0.spilled_objects);
    /* The list reads back with its payload and its refs; each chunk comes back intact. */
    const void *d;
    size_t n;
    ASSERT_OK(get_within(list, &d, &n));
    CU_ASSERT(n == BIG && pat_ok(d, n, 8, 0));
    shoal_ref got[NBIG];
    size_t k = 0;
    CHECK_OK(shoal_object_refs(list, got, NBIG, &k));
    CU_ASSERT_EQUAL(k, NBIG);
    for (size_t i = 0; i < k && i < NBIG; i++) {
        int rc = get_within(got[i], &d, &n);
        CHECK_OK(rc);
        CU_ASSERT(rc == 0 && n == BIG && pat_ok(d, n, 7, i));
        if (rc == 0)
            CHECK_OK(shoal_advise_cold(got[i]));   /* we keep no pointer: may go again */
    }
    shoal_stats s2;
    ASSERT_OK(shoal_stats_get(&s2, sizeof s2));
    CU_ASSERT(s2.restored_objects > s0.restored_objects);
    /* Spilling the fillers again to make room did not touch the list. */
    for (int i = 0; i < FILL; i++)
        CHECK_OK(shoal_release(fill[i]));
    ASSERT_OK(get_within(list, &d, &n));
    CU_ASSERT(n == BIG && pat_ok(d, n, 8, 0));
    CHECK_OK(shoal_release(list));
    for (int i = 0; i < NBIG; i++)
        CU_ASSERT(is_stale(got[i]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    shoal_stats s3;
    ASSERT_OK(shoal_stats_get(&s3, sizeof s3));
    CU_ASSERT_EQUAL(s3.spilled_now_objects, 0);
    free(b);
    ASSERT_OK(shoal_shutdown());
    rmdir(spill_dir);
}

/* ---- across processes --------------------------------------------------------------------------
 * Children are fresh execs of this program (--child MODE NAME FD ARGS...), attached to the
 * test's published store, talking over a socketpair in 8-byte words. */

static char g_name[48];
static unsigned g_seq;

static int xfer(int fd, uint64_t *v, int writing) { return test_xfer(fd, v, 8, writing); }
static int send_u64(int fd, uint64_t v) { return xfer(fd, &v, 1); }
static uint64_t recv_u64(int fd)
{
    uint64_t v = UINT64_MAX;
    return xfer(fd, &v, 0) ? UINT64_MAX : v;
}

#define CK(cond) do { if (!(cond)) { fprintf(stderr, "child %d line %d: %s failed: %s\n", \
                        (int)getpid(), __LINE__, #cond, shoal_last_error()); _exit(3); } } while (0)

/* put: attach, put a list of the given refs, send its ID; on 1, release it, answer; on EOF
 * leave. free: attach, retain the given list, answer; on 1 check its chunks, release it,
 * answer. */
static int child_main(const char *mode, const char *name, int fd, int argc, char **argv)
{
    CK(shoal_attach(name) == 0);
    if (strcmp(mode, "put") == 0) {
        shoal_ref refs[CHUNKS];
        int n = argc < CHUNKS ? argc : CHUNKS;
        for (int i = 0; i < n; i++)
            refs[i].id = strtoull(argv[i], NULL, 16);
        shoal_ref list;
        CK(shoal_put_with_refs("from a client", 14, refs, (size_t)n, &list) == 0);
        CK(send_u64(fd, list.id) == 0);
        if (recv_u64(fd) == 1) {
            CK(shoal_release(list) == 0);
            CK(send_u64(fd, 0) == 0);
        }
    } else {
        shoal_ref list = { strtoull(argv[0], NULL, 16) };
        CK(shoal_retain(list) == 0);
        CK(send_u64(fd, 0) == 0);
        CK(recv_u64(fd) == 1);
        uint64_t ok = (uint64_t)chunks_ok(list, CHUNKS, 4);
        CK(shoal_release(list) == 0);
        CK(send_u64(fd, ok) == 0);
    }
    recv_u64(fd);   /* until the test closes its end */
    return shoal_shutdown() == 0 ? 0 : 4;
}

struct child { pid_t pid; int fd; };

static struct child spawn(const char *mode, int nids, const shoal_ref ids[])
{
    struct child c = { -1, -1 };
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int cfd = dup(sv[1]);   /* without CLOEXEC: the child's end */
    close(sv[1]);
    char fdarg[16], hex[CHUNKS][24];
    snprintf(fdarg, sizeof fdarg, "%d", cfd);
    char *argv[6 + CHUNKS] = { "test_refs_in_objects", "--child", (char *)mode, g_name, fdarg };
    for (int i = 0; i < nids && i < CHUNKS; i++) {
        snprintf(hex[i], sizeof hex[i], "%llx", (unsigned long long)ids[i].id);
        argv[5 + i] = hex[i];
    }
    if (posix_spawn(&c.pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        c.pid = -1;
    close(cfd);
    c.fd = sv[0];
    CU_ASSERT_FATAL(c.pid > 0);
    return c;
}

static int reap(struct child *c)
{
    int rc = test_reap(c->pid, c->fd);
    c->fd = -1;
    c->pid = -1;
    return rc;
}

static void owner_start(void)
{
    snprintf(g_name, sizeof g_name, "refs-%d-%u", (int)getpid(), ++g_seq);
    shoal_config c = shoal_test_config();
    c.name = g_name;
    test_start(c);
}

/* A client puts a list of the owner's chunks; the owner takes it over and the client lets
 * go; the owner's release frees the chunks (its own) and the list (the client's bytes). */
static void test_client_puts_owner_frees(void)
{
    owner_start();
    shoal_info i0 = info_now();
    shoal_ref c[CHUNKS];
    put_chunks(c, CHUNKS, 4);
    struct child ch = spawn("put", CHUNKS, c);
    shoal_ref list = { recv_u64(ch.fd) };
    CU_ASSERT_FATAL(list.id != UINT64_MAX);
    CHECK_OK(shoal_retain(list));
    for (int i = 0; i < CHUNKS; i++)
        CHECK_OK(shoal_release(c[i]));
    CU_ASSERT_EQUAL(send_u64(ch.fd, 1), 0);
    CU_ASSERT_EQUAL(recv_u64(ch.fd), 0);
    CU_ASSERT(chunks_ok(list, CHUNKS, 4));
    CHECK_OK(shoal_release(list));
    CU_ASSERT(is_stale(list));
    for (int i = 0; i < CHUNKS; i++)
        CU_ASSERT(is_stale(c[i]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));   /* the client frees its bytes */
    CU_ASSERT_EQUAL(reap(&ch), 0);
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

/* The owner puts the list and lets go; a client holds the last reference and its release
 * frees the owner's chunks. */
static void test_owner_puts_client_frees(void)
{
    owner_start();
    shoal_info i0 = info_now();
    shoal_ref c[CHUNKS], list;
    put_chunks(c, CHUNKS, 4);
    ASSERT_OK(shoal_put_with_refs("from the owner", 15, c, CHUNKS, &list));
    for (int i = 0; i < CHUNKS; i++)
        CHECK_OK(shoal_release(c[i]));
    struct child ch = spawn("free", 1, &list);
    CU_ASSERT_EQUAL(recv_u64(ch.fd), 0);   /* it retained */
    CHECK_OK(shoal_release(list));
    CU_ASSERT(!is_stale(list));
    CU_ASSERT_EQUAL(send_u64(ch.fd, 1), 0);
    CU_ASSERT_EQUAL(recv_u64(ch.fd), 1);   /* chunks read and list released there */
    CU_ASSERT(is_stale(list));
    for (int i = 0; i < CHUNKS; i++)
        CU_ASSERT(is_stale(c[i]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    CU_ASSERT_EQUAL(reap(&ch), 0);
    ASSERT_OK(shoal_shutdown());
}

/* A client puts a list of the owner's chunks and is killed holding it: the owner drops the
 * list for it, which lets go of the list's references only (the owner's own stay). */
static void test_client_killed_with_list(void)
{
    owner_start();
    shoal_info i0 = info_now();
    shoal_ref c[CHUNKS];
    put_chunks(c, CHUNKS, 4);
    shoal_info i1 = info_now();
    struct child ch = spawn("put", CHUNKS, c);
    shoal_ref list = { recv_u64(ch.fd) };
    CU_ASSERT_FATAL(list.id != UINT64_MAX);
    CHECK_OK(shoal_retain(list));   /* read it holding a reference, as the contract says */
    CU_ASSERT(chunks_ok(list, CHUNKS, 4));
    CHECK_OK(shoal_release(list));
    kill(ch.pid, SIGKILL);
    CU_ASSERT_EQUAL(reap(&ch), 128 + SIGKILL);
    /* The list goes, its chunks stay (ours). */
    CU_ASSERT(settle(i1.bytes_used, i1.objects_live));
    CU_ASSERT(is_stale(list));
    for (int i = 0; i < CHUNKS; i++) {
        const void *d;
        size_t n;
        CHECK_OK(shoal_get_timeout(c[i], 0, &d, &n));
        CHECK_OK(shoal_release(c[i]));
        CU_ASSERT(is_stale(c[i]));
    }
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live));
    ASSERT_OK(shoal_shutdown());
}

static const shoal_test_case cases[] = {
    { "list of chunks outlives the chunks' release", test_list_of_chunks },
    { "object_refs reads the list back", test_object_refs_readback },
    { "all or nothing on a bad list", test_all_or_nothing },
    { "a corrupt list is never followed blindly", test_corrupt_list },
    { "nested chain 10000 deep on a small stack", test_nested_chain },
    { "lists sharing children, released in any order", test_shared_children },
    { "task tree returns its children's refs", test_task_tree },
    { "task errors: a failed or canceled result lets go, bad lists", test_task_errors },
    { "a cycle through task results is refused", test_cycle_refused },
    { "spilling under lists: chunks spilled and restored", test_spill_under_lists },
    { "client puts a list, owner frees it", test_client_puts_owner_frees },
    { "owner puts a list, client frees it", test_owner_puts_client_frees },
    { "client killed holding its list", test_client_killed_with_list },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--child") == 0) {
        shoal_test_child_limits(120);
        return child_main(argv[2], argv[3], atoi(argv[4]), argc - 5, argv + 5);
    }
    char dir[32];
    if (test_private_run_dir(dir, sizeof dir) != 0)   /* inherited by the children */
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int rc = shoal_test_run("refs_in_objects", cases);
    rmdir(dir);
    return rc;
}
