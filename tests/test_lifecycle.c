/* test_lifecycle.c - shoal_init/shoal_shutdown: defaults, double init and shutdown, every
 * call outside a running runtime, re-init, threads whose cached view predates init or
 * outlives a shutdown, bad configs, and the error strings. Black-box through shoal.h. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "lib/check.h"

/* An ID that looks plausible (slot 1, generation 1) for calls that must fail before
 * they ever look at it. */
#define SOME_REF ((shoal_ref){ (UINT64_C(1) << 30) | 1 })

static int mentions_init(void) { return strstr(shoal_last_error(), "shoal_init()") != NULL; }

static int task_noop(shoal_task *t) { (void)t; return 0; }

/* Every call that needs a runtime answers ENOTINIT and says to call shoal_init(). */
static void check_all_notinit(void)
{
    shoal_ref r = SOME_REF, out = { 12345 };
    const void *d = NULL; size_t n = 0; void *buf = NULL; bool ready[1];
    const void *datas[1] = { "x" }; size_t lens[1] = { 1 };
    shoal_info info;
    shoal_arg arg = SHOAL_VALUE("x", 1);

#define NOTINIT(call) do { CHECK_RC(call, SHOAL_ENOTINIT);                               \
        if (!mentions_init()) fprintf(stderr, "%s: message '%s' lacks shoal_init()\n",    \
                                      #call, shoal_last_error());                        \
        CU_ASSERT(mentions_init()); } while (0)
    NOTINIT(shoal_put("x", 1, &out));
    NOTINIT(shoal_put(NULL, 0, &out));
    NOTINIT(shoal_put_batch(1, datas, lens, &out));
    NOTINIT(shoal_create(16, &buf, &out));
    NOTINIT(shoal_seal(r));
    NOTINIT(shoal_get(r, &d, &n));
    NOTINIT(shoal_get_timeout(r, 0, &d, &n));
    NOTINIT(shoal_get_timeout(r, 1000000, &d, &n));
    NOTINIT(shoal_wait(&r, 1, 1, 0, ready));
    NOTINIT(shoal_retain(r));
    NOTINIT(shoal_release(r));
    NOTINIT(shoal_info_get(&info));
    NOTINIT(shoal_object_node(r));
    NOTINIT(shoal_worker_node(0));
    NOTINIT(shoal_submit(task_noop, &arg, 1, NULL, &out));
    /* Files (issue 6) and attach (issue 4) check the same in their own suites. */
    NOTINIT(shoal_shutdown());
#undef NOTINIT
    CU_ASSERT_EQUAL(out.id, 12345);  /* a failed call leaves *out alone */
    CU_ASSERT_PTR_NULL(buf);
}

static void test_calls_before_init(void)
{
    test_reset();
    check_all_notinit();
}

static void test_calls_after_shutdown(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    shoal_ref r;
    ASSERT_OK(shoal_put("abc", 3, &r));
    ASSERT_OK(shoal_shutdown());
    check_all_notinit();
    /* The ref that was live at shutdown answers ENOTINIT too, never its old bytes. */
    const void *d = NULL; size_t n = 0;
    CHECK_RC(shoal_get(r, &d, &n), SHOAL_ENOTINIT);
    CU_ASSERT_PTR_NULL(d);
}

/* NULL config: defaults, a store of a quarter of physical memory (mapped sparse). */
static void test_init_null_config(void)
{
    test_reset();
    ASSERT_OK(shoal_init(NULL));
    shoal_info i = info_now();
    size_t phys = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    size_t want = phys / 4;
    /* Rounding to huge pages or per-node spans is allowed; more than 1% off is not. */
    size_t diff = i.store_bytes > want ? i.store_bytes - want : want - i.store_bytes;
    if (diff > want / 100)
        fprintf(stderr, "default store_bytes %zu, want about %zu (phys/4)\n", i.store_bytes, want);
    CU_ASSERT(diff <= want / 100);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CU_ASSERT(i.workers >= 1 && (long)i.workers <= cpus);
    CU_ASSERT(i.numa_nodes >= 1);
    shoal_ref r; const void *d; size_t n;
    CHECK_OK(shoal_put("defaults", 8, &r));
    CHECK_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 8 && memcmp(d, "defaults", 8) == 0);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

static void test_double_init_shutdown(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    CHECK_RC(shoal_init(&c), SHOAL_EEXIST);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CHECK_RC(shoal_init(NULL), SHOAL_EEXIST);
    /* The failed second init must not have disturbed the running store. */
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.store_bytes, c.store_bytes);
    shoal_ref r; const void *d; size_t n;
    CHECK_OK(shoal_put("still", 5, &r));
    CHECK_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 5 && memcmp(d, "still", 5) == 0);
    ASSERT_OK(shoal_shutdown());
    CHECK_RC(shoal_shutdown(), SHOAL_ENOTINIT);
    CU_ASSERT(mentions_init());
}

/* Init and shutdown many times, with objects live at each shutdown. */
static void test_reinit_many(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    for (int round = 0; round < 20; round++) {
        ASSERT_OK(shoal_init(&c));
        shoal_info i0 = info_now();
        CU_ASSERT_EQUAL(i0.objects_live, 0);
        CU_ASSERT_EQUAL(i0.bytes_used, 0);
        shoal_ref refs[50];
        for (int k = 0; k < 50; k++) {
            unsigned char b[300];
            pat_fill(b, sizeof b, (uint64_t)round, (uint64_t)k);
            CHECK_OK(shoal_put(b, (size_t)k * 6, &refs[k]));
        }
        for (int k = 0; k < 50; k++) {
            const void *d = NULL; size_t n = 0;
            CHECK_OK(shoal_get(refs[k], &d, &n));
            CU_ASSERT(n == (size_t)k * 6 && pat_ok(d, n, (uint64_t)round, (uint64_t)k));
        }
        CU_ASSERT_EQUAL(info_now().objects_live, 50);
        for (int k = 0; k < 50; k += 2)   /* leave half live: shutdown frees them */
            CHECK_OK(shoal_release(refs[k]));
        ASSERT_OK(shoal_shutdown());
    }
}

/* Shutdown frees every object, so a ref from an earlier store is a freed object's ID: it
 * must never name an object of the new store, even one in the same slot. */
static void test_old_refs_after_reinit(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    enum { N = 8 };
    shoal_ref old[N], fresh[N];
    ASSERT_OK(shoal_init(&c));
    for (int k = 0; k < N; k++)
        ASSERT_OK(shoal_put("old store", 9, &old[k]));
    ASSERT_OK(shoal_shutdown());
    ASSERT_OK(shoal_init(&c));
    for (int k = 0; k < N; k++)
        ASSERT_OK(shoal_put("new store", 9, &fresh[k]));
    int named = 0;
    for (int k = 0; k < N; k++) {
        const void *d = NULL; size_t n = 0;
        int rc = shoal_get_timeout(old[k], 0, &d, &n);
        if (rc == 0 || d != NULL) {
            if (named++ == 0)
                fprintf(stderr, "ref %#llx of the old store resolves in the new one (get = %d)\n",
                        (unsigned long long)old[k].id, rc);
        } else {
            CU_ASSERT(rc == SHOAL_ESTALE || rc == SHOAL_EINVAL);
        }
    }
    CU_ASSERT_EQUAL(named, 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- threads with a cached view -------------------------------------------------------- */

static pthread_barrier_t bar;

struct pre_init {
    int pre_rc, pre_msg, put_rc, get_rc, bytes_ok, rel_rc;
};

/* Calls before init (its TLS view is the empty sentinel), then uses the runtime once main
 * has initialised it. */
static void *pre_init_thread(void *arg)
{
    struct pre_init *p = arg;
    const void *d = NULL; size_t n = 0;
    p->pre_rc = shoal_get(SOME_REF, &d, &n);
    p->pre_msg = mentions_init();
    pthread_barrier_wait(&bar);          /* main: init */
    pthread_barrier_wait(&bar);
    shoal_ref r = SHOAL_REF_NULL;
    p->put_rc = shoal_put("after init", 10, &r);
    p->get_rc = shoal_get(r, &d, &n);
    p->bytes_ok = p->get_rc == 0 && n == 10 && memcmp(d, "after init", 10) == 0;
    p->rel_rc = shoal_release(r);
    return NULL;
}

static void test_thread_cache_predates_init(void)
{
    test_reset();
    struct pre_init p;
    memset(&p, 0x55, sizeof p);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, pre_init_thread, &p) == 0);
    pthread_barrier_wait(&bar);
    shoal_config c = shoal_test_config();
    CHECK_OK(shoal_init(&c));
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    CU_ASSERT_EQUAL(p.pre_rc, SHOAL_ENOTINIT);
    CU_ASSERT(p.pre_msg);
    CU_ASSERT_EQUAL(p.put_rc, 0);
    CU_ASSERT_EQUAL(p.get_rc, 0);
    CU_ASSERT(p.bytes_ok);
    CU_ASSERT_EQUAL(p.rel_rc, 0);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CHECK_OK(shoal_shutdown());
}

/* Init a store, start fn(arg) in a thread, wait at its first barrier (the thread has
 * filled its view), then shut the store down: the thread's view is now an old one. */
static pthread_t run_then_shutdown(const shoal_config *c, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CU_ASSERT_FATAL(shoal_init(c) == 0);
    pthread_barrier_init(&bar, NULL, 2);
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fn, arg) == 0);
    pthread_barrier_wait(&bar);
    CHECK_OK(shoal_shutdown());
    return t;
}

struct stale_view {
    int put_rc, get1_rc, down_rc, old_rc, old_rel_rc, new_put_rc, new_get_rc, new_ok, new_rel_rc;
    const void *old_data;
};

static int is_stale_answer(int rc)
{
    return rc == SHOAL_ESTALE || rc == SHOAL_EINVAL || rc == SHOAL_ENOTINIT;
}

/* Fills its view from one store, then uses it across a shutdown and a re-init by main. */
static void *stale_view_thread(void *arg)
{
    struct stale_view *s = arg;
    const void *d = NULL; size_t n = 0;
    shoal_ref old = SHOAL_REF_NULL, fresh = SHOAL_REF_NULL;
    s->put_rc = shoal_put("old store", 9, &old);
    s->get1_rc = shoal_get(old, &d, &n);
    pthread_barrier_wait(&bar);          /* main: shutdown */
    pthread_barrier_wait(&bar);
    s->down_rc = shoal_get(old, &d, &n);
    pthread_barrier_wait(&bar);          /* main: init again, no objects yet */
    pthread_barrier_wait(&bar);
    d = NULL;
    s->old_rc = shoal_get_timeout(old, 0, &d, &n);
    s->old_data = d;
    s->old_rel_rc = shoal_release(old);
    s->new_put_rc = shoal_put("new store", 9, &fresh);
    s->new_get_rc = shoal_get(fresh, &d, &n);
    s->new_ok = s->new_get_rc == 0 && n == 9 && memcmp(d, "new store", 9) == 0;
    s->new_rel_rc = shoal_release(fresh);
    return NULL;
}

static void test_thread_cache_outlives_store(void)
{
    test_reset();
    struct stale_view s;
    memset(&s, 0x55, sizeof s);
    s.old_data = NULL;
    shoal_config c = shoal_test_config();
    pthread_t t = run_then_shutdown(&c, stale_view_thread, &s);
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    CHECK_OK(shoal_init(&c));
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    CU_ASSERT_EQUAL(s.put_rc, 0);
    CU_ASSERT_EQUAL(s.get1_rc, 0);
    CU_ASSERT_EQUAL(s.down_rc, SHOAL_ENOTINIT);
    if (!is_stale_answer(s.old_rc))
        fprintf(stderr, "old ref in a new store: get = %d (%s)\n", s.old_rc, shoal_strerror(s.old_rc));
    CU_ASSERT(is_stale_answer(s.old_rc));
    CU_ASSERT_PTR_NULL(s.old_data);
    CU_ASSERT(is_stale_answer(s.old_rel_rc));
    CU_ASSERT_EQUAL(s.new_put_rc, 0);
    CU_ASSERT_EQUAL(s.new_get_rc, 0);
    CU_ASSERT(s.new_ok);
    CU_ASSERT_EQUAL(s.new_rel_rc, 0);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CHECK_OK(shoal_shutdown());
}

/* A thread's view filled in one store, and the thread's next call, after a shutdown and an
 * init by main, a get of the new store's object: its first lookup runs the inline fast
 * path on that old view. The new store has the same size, so its segment is mapped into
 * the old one's retired range (runtime.c shoal__seg_retire) and its table sits where the
 * old view points; a page of the old span is held meanwhile, so the new span lies
 * elsewhere. A get that trusted the old view would find the new object's slot and return
 * an address in the old span. It must return exactly what main's get does. */
struct view_after_reinit {
    shoal_ref fresh;
    int put_rc, get1_rc, get_rc;
    const void *old_data, *data;
    size_t len;
};

static void *view_after_reinit_thread(void *arg)
{
    struct view_after_reinit *v = arg;
    const void *d = NULL; size_t n = 0;
    shoal_ref old = SHOAL_REF_NULL;
    v->put_rc = shoal_put("old store", 9, &old);
    v->get1_rc = shoal_get(old, &d, &n);   /* the view is filled */
    v->old_data = d;
    pthread_barrier_wait(&bar);            /* main: shutdown, init, put */
    pthread_barrier_wait(&bar);
    d = NULL;
    n = 0;
    v->get_rc = shoal_get(v->fresh, &d, &n);
    v->data = d;
    v->len = n;
    return NULL;
}

static void test_view_after_reinit(void)
{
    test_reset();
    struct view_after_reinit v;
    memset(&v, 0, sizeof v);
    shoal_config c = shoal_test_config();
    pthread_t t = run_then_shutdown(&c, view_after_reinit_thread, &v);
    /* Hold a page of the old span (if nothing else took it), so the new span is elsewhere. */
    long pg = sysconf(_SC_PAGESIZE);
    void *at = (void *)((uintptr_t)v.old_data & ~(uintptr_t)(pg - 1));
    void *hold = v.old_data ? mmap(at, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                                   MAP_FIXED_NOREPLACE, -1, 0) : MAP_FAILED;
    int rc = shoal_init(&c);
    CHECK_OK(rc);
    const void *d = NULL; size_t n = 0;
    if (rc == 0) {
        CHECK_OK(shoal_put("new store", 9, &v.fresh));
        CHECK_OK(shoal_get(v.fresh, &d, &n));
    }
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    CU_ASSERT_EQUAL(v.put_rc, 0);
    CU_ASSERT_EQUAL(v.get1_rc, 0);
    CU_ASSERT_EQUAL(v.get_rc, 0);
    if (v.data != d)
        fprintf(stderr, "a thread's get after re-init returned %p, main's %p: its old view was "
                        "used\n", v.data, d);
    CU_ASSERT_PTR_EQUAL(v.data, d);
    CU_ASSERT_EQUAL(v.len, 9);
    if (rc == 0) {
        CHECK_OK(shoal_release(v.fresh));
        CHECK_OK(shoal_shutdown());
    }
    if (hold != MAP_FAILED)
        munmap(hold, (size_t)pg);
}

/* A thread that filled its slot and allocation caches in one store keeps living into the
 * next: nothing it cached may be handed out again there. It and main then put at once,
 * and every object must keep its own bytes and ID. */
enum { CACHED_N = 300 };
struct cacher {
    shoal_ref kept[CACHED_N / 3], fresh[CACHED_N];
    int rc1, old_rc, rc2;
};

static size_t cacher_len(int k) { return (size_t)(k * 53) % 9000; }

static void *cacher_thread(void *arg)
{
    struct cacher *c = arg;
    unsigned char buf[9000];
    c->rc1 = 0;
    for (int k = 0; k < CACHED_N && c->rc1 == 0; k++) {
        shoal_ref r;
        pat_fill(buf, cacher_len(k), 77, (uint64_t)k);
        c->rc1 = shoal_put(buf, cacher_len(k), &r);
        if (c->rc1 == 0 && k % 3 == 0)
            c->kept[k / 3] = r;
        else if (c->rc1 == 0)
            c->rc1 = shoal_release(r);
    }
    pthread_barrier_wait(&bar);          /* main: shutdown, init */
    pthread_barrier_wait(&bar);
    c->old_rc = shoal_release(c->kept[0]);
    c->rc2 = 0;
    for (int k = 0; k < CACHED_N && c->rc2 == 0; k++) {
        pat_fill(buf, cacher_len(k), 78, (uint64_t)k);
        c->rc2 = shoal_put(buf, cacher_len(k), &c->fresh[k]);
    }
    return NULL;
}

static void test_thread_caches_across_reinit(void)
{
    test_reset();
    shoal_config cfg = shoal_test_config();
    ASSERT_OK(shoal_init(&cfg));
    struct cacher c;
    memset(&c, 0, sizeof c);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, cacher_thread, &c) == 0);
    pthread_barrier_wait(&bar);
    CHECK_OK(shoal_shutdown());
    CHECK_OK(shoal_init(&cfg));
    pthread_barrier_wait(&bar);
    static shoal_ref mine[CACHED_N];
    unsigned char buf[9000];
    int rc = 0;
    for (int k = 0; k < CACHED_N && rc == 0; k++) {
        pat_fill(buf, cacher_len(k), 79, (uint64_t)k);
        rc = shoal_put(buf, cacher_len(k), &mine[k]);
    }
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(c.rc1, 0);
    CU_ASSERT(is_stale_answer(c.old_rc));
    CU_ASSERT_EQUAL(c.rc2, 0);
    if (rc != 0 || c.rc2 != 0) {
        CHECK_OK(shoal_shutdown());
        return;
    }
    CU_ASSERT_EQUAL(info_now().objects_live, 2 * CACHED_N);
    int corrupt = 0, dup = 0;
    for (int k = 0; k < CACHED_N; k++) {
        const void *d; size_t n;
        if (shoal_get(c.fresh[k], &d, &n) != 0 || n != cacher_len(k) || !pat_ok(d, n, 78, (uint64_t)k))
            corrupt++;
        if (shoal_get(mine[k], &d, &n) != 0 || n != cacher_len(k) || !pat_ok(d, n, 79, (uint64_t)k))
            corrupt++;
        for (int j = 0; j < CACHED_N; j++)
            dup += c.fresh[k].id == mine[j].id || (j < k && (c.fresh[j].id == c.fresh[k].id ||
                                                            mine[j].id == mine[k].id));
    }
    CU_ASSERT_EQUAL(corrupt, 0);
    CU_ASSERT_EQUAL(dup, 0);
    for (int k = 0; k < CACHED_N; k++) {
        CHECK_OK(shoal_release(c.fresh[k]));
        CHECK_OK(shoal_release(mine[k]));
    }
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.objects_live, 0);
    CU_ASSERT_EQUAL(i.bytes_used, 0);
    CHECK_OK(shoal_shutdown());
}

/* ---- bad configs --------------------------------------------------------------------- */

/* A rejected init leaves nothing behind: still ENOTINIT, and a good init then works. */
static void expect_bad_init(const shoal_config *c, int want, const char *what)
{
    int rc = shoal_init(c);
    if (rc != want)
        fprintf(stderr, "init with %s = %d (%s), want %d\n", what, rc, shoal_strerror(rc), want);
    CU_ASSERT_EQUAL(rc, want);
    if (rc == 0) {
        shoal_shutdown();
        return;
    }
    if (strlen(shoal_last_error()) == 0)
        fprintf(stderr, "init with %s: no message\n", what);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    shoal_ref r;
    CHECK_RC(shoal_put("x", 1, &r), SHOAL_ENOTINIT);
}

static void test_bad_config(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.store_bytes = 1;
    expect_bad_init(&c, SHOAL_EINVAL, "store_bytes 1");
    c = shoal_test_config();
    c.topology = "garbage((";
    expect_bad_init(&c, SHOAL_EINVAL, "topology 'garbage(('");
    c.topology = "/nonexistent/shoal-topology.xml";
    expect_bad_init(&c, SHOAL_EINVAL, "a missing topology XML file");
    c = shoal_test_config();
    c.huge_pages = 7;
    expect_bad_init(&c, SHOAL_EINVAL, "huge_pages 7");
    c.huge_pages = -1;
    expect_bad_init(&c, SHOAL_EINVAL, "huge_pages -1");
    /* Larger than any address space: cannot be mapped (or is rejected outright). */
    c = shoal_test_config();
    c.store_bytes = SIZE_MAX / 2;
    int rc = shoal_init(&c);
    if (rc == 0)
        shoal_shutdown();
    CU_ASSERT(rc == SHOAL_ENOMEM || rc == SHOAL_EINVAL);
    /* Limits nobody can meet are refused up front, not attempted. */
    c = shoal_test_config();
    c.workers = UINT_MAX;
    rc = shoal_init(&c);
    if (rc == 0)
        shoal_shutdown();
    CU_ASSERT(rc == SHOAL_EINVAL || rc == SHOAL_ENOMEM);
    c = shoal_test_config();
    c.max_objects = SIZE_MAX;
    rc = shoal_init(&c);
    if (rc == 0)
        shoal_shutdown();
    CU_ASSERT(rc == SHOAL_EINVAL || rc == SHOAL_ENOMEM);
    /* After all those failures, a good config works. */
    c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    shoal_ref r;
    CHECK_OK(shoal_put("ok", 2, &r));
    ASSERT_OK(shoal_shutdown());
}

/* A synthetic topology gives that many NUMA nodes, each with its arena, on any machine. */
static void test_synthetic_topology(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.topology = "numa:2 core:1 pu:1";
    c.workers = 0;
    ASSERT_OK(shoal_init(&c));
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.numa_nodes, 2);
    CU_ASSERT_EQUAL(i.workers, 2);       /* one per core of the topology */
    shoal_ref r; const void *d; size_t n;
    CHECK_OK(shoal_put("two nodes", 9, &r));
    CHECK_OK(shoal_get(r, &d, &n));
    CU_ASSERT(n == 9 && memcmp(d, "two nodes", 9) == 0);
    int node = shoal_object_node(r);
    CU_ASSERT(node >= 0 && node < 2);
    ASSERT_OK(shoal_shutdown());
}

/* ---- error strings ------------------------------------------------------------------- */

static void test_strerror(void)
{
    struct { int code; const char *name, *msg; } all[] = {
#define SHOAL__ROW(name, val, msg) { val, "SHOAL_" #name, msg },
        SHOAL_ERRNO_MAP(SHOAL__ROW)
#undef SHOAL__ROW
    };
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const char *s = shoal_strerror(all[k].code);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        char want[128];
        snprintf(want, sizeof want, "%s: %s", all[k].name, all[k].msg);
        if (strcmp(s, want) != 0)
            fprintf(stderr, "shoal_strerror(%d) = '%s', want '%s'\n", all[k].code, s, want);
        CU_ASSERT_STRING_EQUAL(s, want);
    }
    int unknown[] = { 1, 5, -15, -99, 1000, INT_MIN, INT_MAX };
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        const char *s = shoal_strerror(unknown[k]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_STRING_EQUAL(s, "SHOAL_E?: unknown error code");
    }
}

static void *fresh_thread_error(void *arg)
{
    const char **out = arg;
    out[0] = strdup(shoal_last_error());   /* copies: the buffer is this thread's */
    shoal_ref r;
    (void)shoal_put(NULL, 5, &r);       /* EINVAL: this thread's own message */
    out[1] = strdup(shoal_last_error());
    return NULL;
}

static void test_last_error(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    shoal_ref r;
    CHECK_RC(shoal_put(NULL, 5, &r), SHOAL_EINVAL);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", shoal_last_error());
    CU_ASSERT(strlen(mine) > 0);
    CU_ASSERT(strstr(mine, "shoal_init()") == NULL);   /* says what is wrong, not a stock text */
    /* A success leaves the message alone. */
    CHECK_OK(shoal_put("ok", 2, &r));
    CU_ASSERT_STRING_EQUAL(shoal_last_error(), mine);

    /* Messages are per thread: a new thread starts with "", and its failure is its own. */
    const char *th[2] = { NULL, NULL };
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fresh_thread_error, th) == 0);
    pthread_join(t, NULL);
    CU_ASSERT_PTR_NOT_NULL(th[0]);
    if (th[0])
        CU_ASSERT_STRING_EQUAL(th[0], "");
    CU_ASSERT(th[1] && strlen(th[1]) > 0);
    free((void *)th[0]);
    free((void *)th[1]);
    CU_ASSERT_STRING_EQUAL(shoal_last_error(), mine);

    /* Different failures give different messages. */
    const void *d; size_t n;
    CHECK_RC(shoal_get(SHOAL_REF_NULL, &d, &n), SHOAL_EINVAL);
    CU_ASSERT(strlen(shoal_last_error()) > 0);
    CU_ASSERT(strcmp(shoal_last_error(), mine) != 0);
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

static void test_encode_without_runtime(void)
{
    test_reset();
    unsigned char b[8];
    shoal_ref_encode((shoal_ref){ 0x1122334455667788ull }, b);
    CU_ASSERT_EQUAL(shoal_ref_decode(b).id, 0x1122334455667788ull);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "calls before init answer ENOTINIT", test_calls_before_init },
        { "calls after shutdown answer ENOTINIT", test_calls_after_shutdown },
        { "init with NULL config uses defaults", test_init_null_config },
        { "double init EEXIST, double shutdown ENOTINIT", test_double_init_shutdown },
        { "re-init 20 times with objects", test_reinit_many },
        { "old refs never name a new store's objects", test_old_refs_after_reinit },
        { "thread whose cache predates init", test_thread_cache_predates_init },
        { "thread whose cache outlives its store", test_thread_cache_outlives_store },
        { "a thread's old view is not used for the next store's objects", test_view_after_reinit },
        { "thread caches across shutdown and re-init", test_thread_caches_across_reinit },
        { "bad configs answer EINVAL", test_bad_config },
        { "synthetic topology with 2 NUMA nodes", test_synthetic_topology },
        { "strerror names every code", test_strerror },
        { "last_error is per thread", test_last_error },
        { "ref encode/decode need no runtime", test_encode_without_runtime },
        { NULL, NULL },
    };
    return shoal_test_run("lifecycle", cases);
}
