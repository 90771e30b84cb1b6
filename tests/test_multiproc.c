/* test_multiproc.c - several processes on one store (issue 4): publish and attach, refs
 * that resolve in every process (through a socket, inside other objects), gets of objects
 * another process seals, frees by a process other than the allocator, a client killed with
 * SIGKILL while it holds references and a half-created object, chunks that come back after
 * many deaths, four clients at once, an owner that shuts down under its clients, and every
 * attach error (missing name, bad names, bad version, another user).
 *
 * Clients are this same program re-executed, driven by the command protocol of tests/lib/mp.h
 * (plus the few operations below), so that each is a fresh process with no inherited
 * runtime. A failed check in a child makes it exit non-zero with a message on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../mproc/proto.h"
#include "lib/mp.h"

/* ---- this suite's operations (tests/lib/mp.h has the common ones) ----------------------------- */

enum {
    OP_PUT_REF = MP_USER, /* a=ref -> rc, a=ref of a new object holding a's 8 encoded bytes */
    OP_GET_REF,           /* a=ref -> rc, a=the ref encoded in that object */
    OP_AWAIT_DOWN,        /* poll shoal_put until SHOAL_ECANCELED (5 s) -> rc */
    OP_LOOP,              /* a=iterations b=seed c=owner ref d=its len -> rc */
    OP_CANCEL,            /* a=ref -> rc of shoal_cancel */
};

#define CALL(c, code, ...) mp_call(&(c), code, __VA_ARGS__)

/* ---- the child ------------------------------------------------------------------------------ */

static int child_loop(uint64_t iters, uint64_t seed, shoal_ref oref, size_t olen)
{
    uint64_t s = seed | 1;
    shoal_ref mine[16];
    size_t lens[16];
    for (int i = 0; i < 16; i++) {
        lens[i] = 1 + rnd_next(&s) % 3000;
        unsigned char buf[3000];
        pat_fill(buf, lens[i], seed, (uint64_t)i);
        int rc = shoal_put(buf, lens[i], &mine[i]);
        if (rc)
            return rc;
    }
    for (uint64_t k = 0; k < iters; k++) {
        size_t len = rnd_next(&s) % 5000;
        unsigned char buf[5000];
        pat_fill(buf, len, seed, 1000 + k);
        shoal_ref r;
        int rc = shoal_put(buf, len, &r);
        if (rc)
            return rc;
        const void *d;
        size_t n;
        if ((rc = shoal_get(r, &d, &n)) || n != len || !pat_ok(d, n, seed, 1000 + k))
            return rc ? rc : -100;
        if ((rc = shoal_release(r)))
            return rc;
        int j = (int)(k % 16);
        if ((rc = shoal_get(mine[j], &d, &n)) || n != lens[j] || !pat_ok(d, n, seed, (uint64_t)j))
            return rc ? rc : -101;
        if (oref.id && ((rc = shoal_get(oref, &d, &n)) || n != olen || !pat_ok(d, n, 0, 777)))
            return rc ? rc : -102;
    }
    for (int i = 0; i < 16; i++)
        shoal_release(mine[i]);
    return 0;
}

static void multiproc_ops(const struct mp_cmd *m, struct mp_rep *r)
{
    shoal_ref ref = mp_bits_ref(m->a), out = SHOAL_REF_NULL;
    const void *d;
    size_t n;
    switch (m->code) {
    case OP_PUT_REF: {
        unsigned char b[8];
        shoal_ref_encode(ref, b);
        r->rc = shoal_put(b, 8, &out);
        r->a = mp_ref_bits(out);
        break;
    }
    case OP_GET_REF:
        r->rc = shoal_get(ref, &d, &n);
        if (r->rc == 0 && n == 8)
            r->a = mp_ref_bits(shoal_ref_decode(d));
        else if (r->rc == 0)
            r->rc = -100;
        break;
    case OP_AWAIT_DOWN:
        r->rc = -100;
        for (int i = 0; i < 5000; i++) {
            int rc = shoal_put("x", 1, &out);
            if (rc == SHOAL_ECANCELED) {
                r->rc = rc;
                break;
            }
            if (rc == 0)
                shoal_release(out);
            usleep(1000);
        }
        break;
    case OP_LOOP:
        r->rc = child_loop(m->a, m->b, mp_bits_ref(m->c), m->d);
        break;
    case OP_CANCEL:
        r->rc = shoal_cancel(ref);
        break;
    default:
        r->rc = -100;
    }
}

/* ---- tests ------------------------------------------------------------------------------------ */

static const size_t sizes[] = { 0, 1, 63, 4096, 100000, 3u << 20 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Owner puts, a client gets (zero-copy, same bytes), in every size; the ID is the same. */
static void test_owner_put_client_get(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    shoal_ref r[NSIZES];
    for (size_t k = 0; k < NSIZES; k++) {
        void *b = malloc(sizes[k] + 1);
        pat_fill(b, sizes[k], 0, k);
        ASSERT_OK(shoal_put(b, sizes[k], &r[k]));
        free(b);
        struct mp_rep m = CALL(c, MP_GET, mp_ref_bits(r[k]), 0, k, sizes[k]);
        CU_ASSERT_EQUAL(m.rc, 0);
    }
    /* The client's view of the store's figures is the owner's. */
    struct mp_rep m = CALL(c, MP_INFO, 0, 0, 0, 0);
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(m.a, i1.bytes_used);
    CU_ASSERT_EQUAL(m.b, i1.objects_live);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    for (size_t k = 0; k < NSIZES; k++)
        CHECK_OK(shoal_release(r[k]));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "owner objects released"));
    CHECK_OK(shoal_shutdown());
}

/* A client puts, the owner gets; refs travel as 8 encoded bytes, also inside an object.
 * An object the client sealed and the owner retained outlives the client. */
static void test_client_put_owner_get(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    shoal_ref r[NSIZES];
    for (size_t k = 0; k < NSIZES; k++) {
        struct mp_rep m = CALL(c, MP_PUT, sizes[k], 5, k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        r[k] = mp_bits_ref(m.a);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r[k], &d, &n));
        CU_ASSERT_EQUAL(n, sizes[k]);
        CU_ASSERT(pat_ok(d, n, 5, k));
    }
    /* A ref inside another object, both made by the client. */
    struct mp_rep m = CALL(c, OP_PUT_REF, mp_ref_bits(r[4]), 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref holder = mp_bits_ref(m.a);
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(holder, &d, &n));
    CU_ASSERT_EQUAL_FATAL(n, 8);
    shoal_ref inner = shoal_ref_decode(d);
    CU_ASSERT_EQUAL(inner.id, r[4].id);
    ASSERT_OK(shoal_get(inner, &d, &n));
    CU_ASSERT(n == sizes[4] && pat_ok(d, n, 5, 4));
    /* Keep one; the client detaches: its other objects go, this one stays intact. */
    ASSERT_OK(shoal_retain(r[5]));
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    ASSERT_OK(shoal_get(r[5], &d, &n));
    CU_ASSERT(n == sizes[5] && pat_ok(d, n, 5, 5));
    /* Only the retained object is left: its bytes and no more. */
    shoal_info i1;
    for (int k = 0; k < 10000; k++) {
        i1 = info_now();
        if (i1.objects_live == i0.objects_live + 1 &&
            i1.bytes_used - i0.bytes_used < sizes[5] + (64u << 10))
            break;
        usleep(1000);
    }
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live + 1);
    CU_ASSERT(i1.bytes_used - i0.bytes_used >= sizes[5]);
    CU_ASSERT(i1.bytes_used - i0.bytes_used < sizes[5] + (64u << 10));
    CHECK_RC(shoal_get(r[0], &d, &n), SHOAL_ESTALE);
    CHECK_OK(shoal_release(r[5]));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "orphan released"));
    CHECK_OK(shoal_shutdown());
}

/* Frees by a process other than the allocator go back to the allocator, both ways. */
static void test_remote_free(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    /* Owner's bytes, last released by the client. */
    void *b = malloc(200000);
    pat_fill(b, 200000, 0, 1);
    shoal_ref r;
    ASSERT_OK(shoal_put(b, 200000, &r));
    free(b);
    ASSERT_OK(shoal_retain(r));               /* the reference we send */
    ASSERT_OK(shoal_release(r));              /* our own */
    CU_ASSERT_EQUAL(CALL(c, MP_GET, mp_ref_bits(r), 0, 1, 200000).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, MP_RELEASE, mp_ref_bits(r), 0, 0, 0).rc, 0);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "owner bytes freed by the client"));
    CU_ASSERT_EQUAL(CALL(c, MP_GET, mp_ref_bits(r), 0, 1, 200000).rc, SHOAL_ESTALE);
    /* The client's bytes, last released by the owner, many times over: the client's
     * drain thread gives them back and its arena reuses them. */
    for (int k = 0; k < 50; k++) {
        struct mp_rep m = CALL(c, MP_PUT, 70000, 6, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        r = mp_bits_ref(m.a);
        CU_ASSERT_EQUAL(CALL(c, MP_RETAIN, m.a, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r, &d, &n));
        CU_ASSERT(n == 70000 && pat_ok(d, n, 6, (uint64_t)k));
        ASSERT_OK(shoal_release(r));
    }
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "client bytes freed by the owner"));
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Large objects (chunk runs of their own: alloc/sizeclass.h) freed by the other process
 * go back as chunk runs, both ways, and the room is usable again. */
static void test_remote_free_large(void)
{
    const size_t big = 6u << 20;
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child c = mp_attached();
    for (int k = 0; k < 4; k++) {
        void *b = malloc(big);
        pat_fill(b, big, 0, (uint64_t)k);
        shoal_ref r;
        ASSERT_OK(shoal_put(b, big, &r));
        free(b);
        ASSERT_OK(shoal_retain(r));           /* the reference we send */
        ASSERT_OK(shoal_release(r));          /* our own */
        CU_ASSERT_EQUAL(CALL(c, MP_GET, mp_ref_bits(r), 0, (uint64_t)k, big).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, MP_RELEASE, mp_ref_bits(r), 0, 0, 0).rc, 0);
        CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "owner's large object freed by the client"));
    }
    for (int k = 0; k < 4; k++) {
        struct mp_rep m = CALL(c, MP_PUT, big, 8, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        shoal_ref r = mp_bits_ref(m.a);
        CU_ASSERT_EQUAL(CALL(c, MP_RETAIN, m.a, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r, &d, &n));
        CU_ASSERT(n == big && pat_ok(d, n, 8, (uint64_t)k));
        ASSERT_OK(shoal_release(r));
        CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "client's large object freed by the owner"));
    }
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Two clients: one puts, the other gets and releases. */
static void test_client_to_client(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    struct mp_child a = mp_attached(), b = mp_attached();
    struct mp_rep m = CALL(a, MP_PUT, 12345, 7, 1, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    CU_ASSERT_EQUAL(CALL(a, MP_RETAIN, m.a, 0, 0, 0).rc, 0);     /* for b */
    CU_ASSERT_EQUAL(CALL(b, MP_GET, m.a, 7, 1, 12345).rc, 0);
    CU_ASSERT_EQUAL(CALL(a, MP_RELEASE, m.a, 0, 0, 0).rc, 0);    /* a's own */
    CU_ASSERT_EQUAL(CALL(b, MP_RELEASE, m.a, 0, 0, 0).rc, 0);    /* the last: a's bytes */
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "freed across clients"));
    CU_ASSERT_EQUAL(CALL(a, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(b, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&a), 0);
    CU_ASSERT_EQUAL(mp_reap(&b), 0);
    CHECK_OK(shoal_shutdown());
}

struct seal_later { shoal_ref r; void *buf; size_t len; };
static void *seal_after(void *p)
{
    struct seal_later *s = p;
    usleep(50000);
    pat_fill(s->buf, s->len, 0, 99);
    CHECK_OK(shoal_seal(s->r));
    return NULL;
}

/* A get waits, without spinning a core, for an object another process seals. */
static void test_wait_cross_process(void)
{
    mp_owner_start();
    struct mp_child c = mp_attached();
    /* The client waits on ours. */
    struct seal_later s = { SHOAL_REF_NULL, NULL, 5000 };
    ASSERT_OK(shoal_create(s.len, &s.buf, &s.r));
    CU_ASSERT_EQUAL(CALL(c, MP_GET_TIMEOUT, mp_ref_bits(s.r), 0, 0, 0).rc, SHOAL_ETIMEDOUT);
    pthread_t th;
    pthread_create(&th, NULL, seal_after, &s);
    CU_ASSERT_EQUAL(CALL(c, MP_GET, mp_ref_bits(s.r), 0, 99, s.len).rc, 0);
    pthread_join(th, NULL);
    /* We wait on the client's. */
    struct mp_rep m = CALL(c, MP_CREATE, 3000, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(mp_bits_ref(m.a), 1000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(CALL(c, MP_FILL_SEAL, m.a, 8, 8, 0).rc, 0);
    ASSERT_OK(shoal_get_timeout(mp_bits_ref(m.a), -1, &d, &n));
    CU_ASSERT(n == 3000 && pat_ok(d, n, 8, 8));
    bool ready = false;
    shoal_ref w = mp_bits_ref(m.a);
    CU_ASSERT_EQUAL(shoal_wait(&w, 1, 1, 0, &ready), 1);
    CU_ASSERT(ready);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_release(s.r));
    CHECK_OK(shoal_shutdown());
}

struct waiter { shoal_ref r; int rc; };
static void *wait_for(void *p)
{
    struct waiter *w = p;
    const void *d;
    size_t n;
    w->rc = shoal_get_timeout(w->r, 20 * 1000000000ll, &d, &n);
    return NULL;
}

/* A client killed with SIGKILL while it holds references to our objects, objects of its
 * own, and a half-created object another thread waits on: the owner's figures come back,
 * the waiter wakes with SHOAL_ECANCELED, and the object of its that we kept stays intact. */
static void test_client_killed(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    shoal_ref mine[3];
    for (int k = 0; k < 3; k++) {
        char b[1000];
        pat_fill(b, sizeof b, 0, (uint64_t)k);
        ASSERT_OK(shoal_put(b, sizeof b, &mine[k]));
    }
    shoal_info i1 = info_now();
    struct mp_child c = mp_attached();
    shoal_ref theirs[10];
    for (int k = 0; k < 10; k++) {
        struct mp_rep m = CALL(c, MP_PUT, 30000 + (uint64_t)k * 1000, 9, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        theirs[k] = mp_bits_ref(m.a);
    }
    for (int k = 0; k < 3; k++)   /* it holds extra references to ours */
        CU_ASSERT_EQUAL(CALL(c, MP_RETAIN, mp_ref_bits(mine[k]), 0, 0, 0).rc, 0);
    struct mp_rep m = CALL(c, MP_CREATE, 16384, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    struct waiter w = { mp_bits_ref(m.a), 1 };
    ASSERT_OK(shoal_retain(w.r));
    ASSERT_OK(shoal_retain(theirs[4]));
    pthread_t th;
    pthread_create(&th, NULL, wait_for, &w);
    usleep(20000);
    kill(c.pid, SIGKILL);
    CU_ASSERT_EQUAL(mp_reap(&c), 128 + SIGKILL);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.rc, SHOAL_ECANCELED);
    if (w.rc != SHOAL_ECANCELED)
        fprintf(stderr, "waiter: %d (%s)\n", w.rc, shoal_last_error());
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(theirs[4], &d, &n));
    CU_ASSERT(n == 34000 && pat_ok(d, n, 9, 4));
    CHECK_RC(shoal_get(w.r, &d, &n), SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), "before sealing") != NULL);
    CHECK_OK(shoal_release(w.r));
    CHECK_OK(shoal_release(theirs[4]));
    CU_ASSERT(mp_settle(i1.bytes_used, i1.objects_live, "killed client cleaned up"));
    CHECK_RC(shoal_get(theirs[0], &d, &n), SHOAL_ESTALE);
    for (int k = 0; k < 3; k++) {   /* its extra references were dropped: ours are the last */
        ASSERT_OK(shoal_get(mine[k], &d, &n));
        CU_ASSERT(pat_ok(d, n, 0, (uint64_t)k));
        CHECK_OK(shoal_release(mine[k]));
        CHECK_RC(shoal_get(mine[k], &d, &n), SHOAL_ESTALE);
    }
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* Clients that die one after another, each with a few MiB of objects: their chunks come
 * back, so the store never runs out of span (without reclaiming, 16 deaths would use more
 * than the whole span of this 64 MiB store). */
static void test_chunks_reclaimed(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    int rounds = SAN_DIV > 1 ? 8 : 16;
    for (int k = 0; k < rounds; k++) {
        struct mp_child c = mp_attached();
        for (int j = 0; j < 6; j++)
            CU_ASSERT_EQUAL(CALL(c, MP_PUT, 1u << 20, 10, (uint64_t)j, 0).rc, 0);
        if (k % 2)
            kill(c.pid, SIGKILL);
        else
            CALL(c, MP_EXIT, 0, 0, 0, 0);
        mp_reap(&c);
        CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "client gone"));
    }
    /* The owner can still fill most of the store. */
    shoal_ref r[40];
    int got = 0;
    void *b = calloc(1, 1u << 20);
    for (; got < 40; got++)
        if (shoal_put(b, 1u << 20, &r[got]) != 0)
            break;
    free(b);
    CU_ASSERT(got >= 40);
    for (int k = 0; k < got; k++)
        shoal_release(r[k]);
    CHECK_OK(shoal_shutdown());
}

/* The slots a killed client had cached come back: on a 600-slot table, 24 clients that each
 * cache 32 slots and die would otherwise leave the owner unable to put. */
static void test_cached_slots_recovered(void)
{
    shoal_config cfg = shoal_test_config();
    cfg.max_objects = 600;
    mp_owner_start_cfg(cfg);
    shoal_info i0 = info_now();
    for (int k = 0; k < 24; k++) {
        struct mp_child c = mp_attached();
        struct mp_rep m = CALL(c, MP_PUT, 10, 1, 1, 0);
        CU_ASSERT_EQUAL(m.rc, 0);
        CU_ASSERT_EQUAL(CALL(c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
        kill(c.pid, SIGKILL);
        mp_reap(&c);
        CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "client gone"));
    }
    /* Reclaiming is asynchronous: retry for a while before calling the table full. */
    shoal_ref r[560];
    int got = 0;
    for (int tries = 0; tries < 500 && got < 560; tries++) {
        while (got < 560 && shoal_put("x", 1, &r[got]) == 0)
            got++;
        if (got < 560)
            usleep(10000);
    }
    CU_ASSERT(got >= 560);
    if (got < 560)
        fprintf(stderr, "only %d of 560 puts fit after the clients died\n", got);
    for (int k = 0; k < got; k++)
        shoal_release(r[k]);
    CHECK_OK(shoal_shutdown());
}

/* Four clients put, get and release at once, with the owner doing the same. */
static void test_four_clients(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char ob[4096];
    pat_fill(ob, sizeof ob, 0, 777);
    shoal_ref o;
    ASSERT_OK(shoal_put(ob, sizeof ob, &o));
    struct mp_child c[4];
    for (int k = 0; k < 4; k++)
        c[k] = mp_attached();
    uint64_t iters = 3000 / SAN_DIV;
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(mp_send(&c[k], OP_LOOP, iters, 100 + (uint64_t)k, mp_ref_bits(o),
                                sizeof ob), 0);
    CU_ASSERT_EQUAL(child_loop(iters, 99, o, sizeof ob), 0);
    for (int k = 0; k < 4; k++) {
        struct mp_rep r = { .rc = -999 };
        CU_ASSERT_EQUAL(mp_recv(&c[k], &r), 0);
        CU_ASSERT_EQUAL(r.rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(mp_reap(&c[k]), 0);
    }
    CHECK_OK(shoal_release(o));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "four clients done"));
    CHECK_OK(shoal_shutdown());
}

/* The owner shuts down under two attached clients: they keep reading what they hold
 * (no fault), then every call answers SHOAL_ECANCELED (the owner is gone), and they detach
 * cleanly; after that, calls answer SHOAL_ENOTINIT. */
static void test_owner_shutdown_under_clients(void)
{
    mp_owner_start();
    char b[10000];
    pat_fill(b, sizeof b, 0, 5);
    shoal_ref r;
    ASSERT_OK(shoal_put(b, sizeof b, &r));
    struct mp_child c[2] = { mp_attached(), mp_attached() };
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(CALL(c[k], MP_GET, mp_ref_bits(r), 0, 5, sizeof b).rc, 0);
    CHECK_OK(shoal_shutdown());
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(CALL(c[k], MP_TOUCH, mp_ref_bits(r), 0, 5, sizeof b).rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], OP_AWAIT_DOWN, 0, 0, 0, 0).rc, SHOAL_ECANCELED);
        CU_ASSERT_EQUAL(CALL(c[k], MP_GET_TIMEOUT, mp_ref_bits(r), 0, 0, 0).rc, SHOAL_ECANCELED);
        CU_ASSERT_EQUAL(CALL(c[k], MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], MP_SHUTDOWN, 0, 0, 0, 0).rc, SHOAL_ENOTINIT);
        CU_ASSERT_EQUAL(CALL(c[k], MP_ATTACH, 0, 0, 0, 0).rc, SHOAL_ENOENT);
        CU_ASSERT_EQUAL(mp_reap(&c[k]), 0);
    }
}

static int sum_task(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = sum * 31 + ((const unsigned char *)d)[i];
    return shoal_task_return(t, &sum, sizeof sum);
}

/* The owner's task waits for an argument a client seals later; and for one whose client
 * dies first: the task does not run, its result fails instead of hanging. */
static void test_task_on_client_object(void)
{
    mp_owner_start();
    struct mp_child c = mp_attached();
    struct mp_rep m = CALL(c, MP_CREATE, 5000, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref arg = mp_bits_ref(m.a), res;
    shoal_arg a = SHOAL_REF(arg);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(res, 20000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(CALL(c, MP_FILL_SEAL, m.a, 3, 4, 0).rc, 0);
    ASSERT_OK(shoal_get_timeout(res, 10 * 1000000000ll, &d, &n));
    unsigned char want[5000];
    pat_fill(want, sizeof want, 3, 4);
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof want; i++)
        sum = sum * 31 + want[i];
    CU_ASSERT(n == 8 && memcmp(d, &sum, 8) == 0);
    CHECK_OK(shoal_release(res));
    /* The creator dies before sealing. */
    m = CALL(c, MP_CREATE, 100, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    arg = mp_bits_ref(m.a);
    a = SHOAL_REF(arg);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    kill(c.pid, SIGKILL);
    mp_reap(&c);
    int rc = shoal_get_timeout(res, 10 * 1000000000ll, &d, &n);
    CU_ASSERT(rc == SHOAL_ETASK || rc == SHOAL_ECANCELED);
    if (rc != SHOAL_ETASK && rc != SHOAL_ECANCELED)
        fprintf(stderr, "task on a dead client's object: %d (%s)\n", rc, shoal_last_error());
    CHECK_OK(shoal_release(res));
    CHECK_OK(shoal_shutdown());
}

/* The owner dies (SIGKILL, no shutdown): this process, attached, notices within a few
 * seconds (its connection closes), and its calls answer SHOAL_ECANCELED, never a fault. */
static void test_owner_killed(void)
{
    test_reset();
    mp_new_name();
    struct mp_child o = mp_spawn();
    CU_ASSERT_EQUAL_FATAL(CALL(o, MP_INIT, 0, 0, 0, 0).rc, 0);
    struct mp_rep m = CALL(o, MP_PUT, 3000, 4, 4, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    ASSERT_OK(shoal_attach(mp_name));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(mp_bits_ref(m.a), &d, &n));
    CU_ASSERT(n == 3000 && pat_ok(d, n, 4, 4));
    kill(o.pid, SIGKILL);
    mp_reap(&o);
    CU_ASSERT(pat_ok(d, n, 4, 4));   /* still mapped here: we hold the memfds */
    int rc = 0;
    for (int k = 0; k < 1000 && rc != SHOAL_ECANCELED; k++) {
        shoal_ref r;
        if ((rc = shoal_put("y", 1, &r)) == 0)
            shoal_release(r);
        usleep(10000);
    }
    CHECK_RC(rc, SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), "owner") != NULL);
    CHECK_OK(shoal_shutdown());
    CHECK_RC(shoal_attach(mp_name), SHOAL_ENOENT);
}

/* tools/shoal-stat attaches to a live store and reports what the owner reports. */
static void test_shoal_stat_tool(void)
{
    char tool[512];
    ssize_t k = readlink("/proc/self/exe", tool, sizeof tool - 64);
    if (k <= 0)
        SKIP_TEST("cannot find this program's path");
    tool[k] = 0;
    char *slash = strrchr(tool, '/');
    snprintf(slash, 64, "/../tools/shoal-stat");
    if (access(tool, X_OK) != 0)
        SKIP_TEST("tools/shoal-stat is not built next to this suite (make tools)");
    mp_owner_start();
    shoal_ref r[7];
    for (int i = 0; i < 7; i++)
        ASSERT_OK(shoal_put("0123456789", 10, &r[i]));
    char cmd[700], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s %s --json", tool, mp_name);
    FILE *f = popen(cmd, "r");
    CU_ASSERT_FATAL(f != NULL);
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = 0;
    CU_ASSERT_EQUAL(pclose(f), 0);
    CU_ASSERT(strstr(out, "\"objects_live\":7,") != NULL);
    CU_ASSERT(strstr(out, "\"tool\":true") != NULL);
    char want[64];
    snprintf(want, sizeof want, "\"owner_pid\":%d,", (int)getpid());
    CU_ASSERT(strstr(out, want) != NULL);
    if (!strstr(out, "\"objects_live\":7,"))
        fprintf(stderr, "shoal-stat said: %s\n", out);
    snprintf(cmd, sizeof cmd, "%s no-such-store-%d >/dev/null 2>&1", tool, (int)getpid());
    CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    for (int i = 0; i < 7; i++)
        CHECK_OK(shoal_release(r[i]));
    CHECK_OK(shoal_shutdown());
}

/* Tasks are the owner's: a client's submit says so. */
static void test_client_submit(void)
{
    mp_owner_start();
    struct mp_child c = mp_attached();
    struct mp_rep m = CALL(c, MP_SUBMIT, 0, 0, 0, 0);
    CU_ASSERT(m.rc < 0 && m.rc != -999);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

static int t_noop(shoal_task *t)
{
    (void)t;
    return 0;
}

/* Tasks are the owner's, so is cancelling them: a client's shoal_cancel of the owner's task
 * answers SHOAL_EPERM and leaves the task alone; the owner's own cancel then works. */
static void test_client_cancel(void)
{
    mp_owner_start();
    void *buf;
    shoal_ref gate, res;
    ASSERT_OK(shoal_create(8, &buf, &gate));   /* the task waits for it: not started */
    shoal_arg a = SHOAL_REF(gate);
    ASSERT_OK(shoal_submit(t_noop, &a, 1, NULL, &res));
    struct mp_child c = mp_attached();
    CU_ASSERT_EQUAL(CALL(c, OP_CANCEL, mp_ref_bits(res), 0, 0, 0).rc, SHOAL_EPERM);
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(res, 0, &d, &n), SHOAL_ETIMEDOUT);   /* still waiting */
    CHECK_RC(shoal_cancel(res), 0);
    CHECK_RC(get_within(res, &d, &n), SHOAL_ECANCELED);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_seal(gate));
    CHECK_OK(shoal_release(gate));
    CHECK_OK(shoal_release(res));
    CHECK_OK(shoal_shutdown());
}

/* ---- attach errors ---------------------------------------------------------------------------- */

static void test_attach_missing_and_bad_names(void)
{
    test_reset();
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = 0;
    CHECK_RC(shoal_attach("nobody-published-this"), SHOAL_ENOENT);
    CU_ASSERT(strstr(shoal_last_error(), "nobody-published-this") != NULL);
    CHECK_RC(shoal_attach(NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_attach(""), SHOAL_EINVAL);
    CHECK_RC(shoal_attach("a/b"), SHOAL_EINVAL);
    CHECK_RC(shoal_attach("../x"), SHOAL_EINVAL);
    CHECK_RC(shoal_attach(longname), SHOAL_EINVAL);
    longname[64] = 0;   /* 64 bytes is allowed */
    CHECK_RC(shoal_attach(longname), SHOAL_ENOENT);
    shoal_config c = shoal_test_config();
    c.name = "bad/name";
    CHECK_RC(shoal_init(&c), SHOAL_EINVAL);
    c.name = "";
    CHECK_RC(shoal_init(&c), SHOAL_EINVAL);
    /* A stale socket file (its owner died) answers ENOENT and does not block a new owner. */
    mp_new_name();
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    CU_ASSERT_FATAL(mp_sock_path(a.sun_path, sizeof a.sun_path) == 0);
    const char *path = a.sun_path;
    CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    CHECK_RC(shoal_attach(mp_name), SHOAL_ENOENT);
    c.name = mp_name;
    ASSERT_OK(shoal_init(&c));
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    /* Attached or initialized already; the same name twice. */
    CHECK_RC(shoal_attach(mp_name), SHOAL_EEXIST);
    struct mp_child ch = mp_spawn();
    CU_ASSERT_EQUAL(CALL(ch, MP_ATTACH, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(ch, MP_ATTACH, 0, 0, 0, 0).rc, SHOAL_EEXIST);
    CU_ASSERT_EQUAL(CALL(ch, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&ch), 0);
    CHECK_OK(shoal_shutdown());
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);   /* the owner removed its socket */
}

static void test_same_name_twice(void)
{
    mp_owner_start();
    /* Another process cannot publish the same name while we serve it. */
    struct mp_child c = mp_spawn();
    CU_ASSERT_EQUAL(CALL(c, MP_INIT, 0, 0, 0, 0).rc, SHOAL_EEXIST);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
    /* Once we are gone, the name is free again. */
    c = mp_spawn();
    CU_ASSERT_EQUAL(CALL(c, MP_INIT, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
}

/* A fake owner that answers a HELLO with `reply`. */
struct fake { int lfd; struct shoal__msg reply; size_t len; };
static void *fake_owner(void *p)
{
    struct fake *f = p;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct shoal__msg h;
    if (mp_xfer(fd, &h, sizeof h.h + sizeof h.b.hello, 0) == 0 && f->len)
        mp_xfer(fd, &f->reply, f->len, 1);
    close(fd);
    return NULL;
}

static int attach_to_fake(struct fake *f)
{
    mp_new_name();
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (mp_sock_path(a.sun_path, sizeof a.sun_path) != 0)
        return -999;
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->lfd, 1) != 0)
        return -999;
    pthread_t th;
    pthread_create(&th, NULL, fake_owner, f);
    int rc = shoal_attach(mp_name);
    pthread_join(th, NULL);
    close(f->lfd);
    unlink(a.sun_path);
    return rc;
}

/* An owner of another version, or one that rejects us, or talks nonsense: a clear error. */
static void test_attach_bad_version(void)
{
    test_reset();
    struct fake f;
    memset(&f, 0, sizeof f);
    f.len = shoal__msg_init(&f.reply, SHOAL__MSG_WELCOME);
    f.reply.h.version = SHOAL__PROTO_VERSION + 7;
    CHECK_RC(attach_to_fake(&f), SHOAL_EPROTO);
    CU_ASSERT(strstr(shoal_last_error(), "version") != NULL);
    /* A REJECT from any version is understood. */
    f.len = shoal__msg_init(&f.reply, SHOAL__MSG_REJECT);
    f.reply.h.version = SHOAL__PROTO_VERSION + 7;
    f.reply.b.reject.code = SHOAL_EPROTO;
    snprintf(f.reply.b.reject.msg, sizeof f.reply.b.reject.msg, "version 9 here");
    CHECK_RC(attach_to_fake(&f), SHOAL_EPROTO);
    CU_ASSERT(strstr(shoal_last_error(), "version 9 here") != NULL);
    f.reply.b.reject.code = SHOAL_EPERM;
    CHECK_RC(attach_to_fake(&f), SHOAL_EPERM);
    /* A WELCOME without its descriptors, garbage, a closed connection. */
    f.len = shoal__msg_init(&f.reply, SHOAL__MSG_WELCOME);
    CHECK_RC(attach_to_fake(&f), SHOAL_EPROTO);
    memset(&f.reply, 0x5a, sizeof f.reply);
    f.len = sizeof f.reply;
    CHECK_RC(attach_to_fake(&f), SHOAL_EPROTO);
    f.len = 0;
    CHECK_RC(attach_to_fake(&f), SHOAL_EPROTO);
    CHECK_RC(shoal_info_get(&(shoal_info){0}), SHOAL_ENOTINIT);
}

/* The owner's side: a HELLO of another version gets REJECT(EPROTO); garbage, a HELLO with
 * unknown flags, a second HELLO or a half message never hurt it; it keeps serving. */
static void test_owner_refuses_bad_peers(void)
{
    mp_owner_start();
    struct shoal__msg m, a;
    size_t n = shoal__msg_init(&m, SHOAL__MSG_HELLO);
    m.b.hello.pid = (int32_t)getpid();
    m.b.hello.lib_version = (SHOAL_VERSION_MAJOR << 16) | (SHOAL_VERSION_MINOR << 8);
    m.h.version = SHOAL__PROTO_VERSION + 1;
    int fd = mp_raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(mp_xfer(fd, &m, n, 1), 0);
    CU_ASSERT_EQUAL(mp_xfer(fd, &a, sizeof a.h + sizeof a.b.reject, 0), 0);
    CU_ASSERT_EQUAL(a.h.type, SHOAL__MSG_REJECT);
    CU_ASSERT_EQUAL(a.b.reject.code, SHOAL_EPROTO);
    close(fd);
    /* Library version from another release. */
    m.h.version = SHOAL__PROTO_VERSION;
    m.b.hello.lib_version = 99u << 16;
    fd = mp_raw_connect();
    CU_ASSERT_EQUAL(mp_xfer(fd, &m, n, 1), 0);
    CU_ASSERT_EQUAL(mp_xfer(fd, &a, sizeof a.h + sizeof a.b.reject, 0), 0);
    CU_ASSERT_EQUAL(a.b.reject.code, SHOAL_EPROTO);
    close(fd);
    /* Garbage, then a truncated message, then silence. */
    char junk[700];
    memset(junk, 0xa5, sizeof junk);
    fd = mp_raw_connect();
    CU_ASSERT(write(fd, junk, sizeof junk) > 0);
    char c1;
    CU_ASSERT(read(fd, &c1, 1) <= 0);   /* closed on us */
    close(fd);
    fd = mp_raw_connect();
    CU_ASSERT_EQUAL(mp_xfer(fd, &m, 10, 1), 0);
    close(fd);
    /* Still serving: a real client attaches and works. */
    struct mp_child c = mp_attached();
    CU_ASSERT_EQUAL(CALL(c, MP_PUT, 100, 1, 1, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Another user cannot attach: the socket is 0600 (and the owner checks SO_PEERCRED). */
static void test_attach_other_user(void)
{
    if (geteuid() != 0)
        SKIP_TEST("needs root to run a client as another user");
    mp_owner_start();
    struct mp_child c = mp_spawn();
    CU_ASSERT_EQUAL(CALL(c, MP_SETUID, 65534, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, MP_ATTACH, 0, 0, 0, 0).rc, SHOAL_EPERM);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

static const shoal_test_case cases[] = {
    { "owner_put_client_get", test_owner_put_client_get },
    { "client_put_owner_get", test_client_put_owner_get },
    { "remote_free", test_remote_free },
    { "large objects freed by the other process, both ways", test_remote_free_large },
    { "client_to_client", test_client_to_client },
    { "wait_cross_process", test_wait_cross_process },
    { "client_killed", test_client_killed },
    { "chunks_reclaimed", test_chunks_reclaimed },
    { "cached_slots_recovered", test_cached_slots_recovered },
    { "four_clients", test_four_clients },
    { "owner_shutdown_under_clients", test_owner_shutdown_under_clients },
    { "owner_killed", test_owner_killed },
    { "shoal_stat_tool", test_shoal_stat_tool },
    { "client_submit", test_client_submit },
    { "client_cancel", test_client_cancel },
    { "task_on_client_object", test_task_on_client_object },
    { "attach_missing_and_bad_names", test_attach_missing_and_bad_names },
    { "same_name_twice", test_same_name_twice },
    { "attach_bad_version", test_attach_bad_version },
    { "owner_refuses_bad_peers", test_owner_refuses_bad_peers },
    { "attach_other_user", test_attach_other_user },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    mp_child_hook = multiproc_ops;
    if (mp_is_child(argc, argv))
        return mp_child_main(argv);
    return mp_run("multiproc", cases);
}
