/* test_multiproc.c - several processes on one store (issue 4): publish and attach, refs
 * that resolve in every process (through a socket, inside other objects), gets of objects
 * another process seals, frees by a process other than the allocator, a client killed with
 * SIGKILL while it holds references and a half-created object, chunks that come back after
 * many deaths, four clients at once, an owner that shuts down under its clients, and every
 * attach error (missing name, bad names, bad version, another user).
 *
 * Clients are this same program re-executed (`--child`), driven over a socketpair by a tiny
 * command protocol, so that each is a fresh process with no inherited runtime. A failed
 * check in a child makes it exit non-zero with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "../mproc/proto.h"

/* ---- the command protocol between the test and its children ------------------------------ */

enum op {
    OP_ATTACH = 1,     /* -> rc */
    OP_PUT,            /* a=len b=who c=seq -> rc, ref */
    OP_CREATE,         /* a=len -> rc, ref (unsealed; buffer kept) */
    OP_FILL_SEAL,      /* a=ref b=who c=seq -> rc */
    OP_GET,            /* a=ref b=who c=seq d=len -> rc (pattern checked); pointer kept */
    OP_GET_TIMEOUT,    /* a=ref b=timeout ns -> rc */
    OP_RETAIN,         /* a=ref -> rc */
    OP_RELEASE,        /* a=ref -> rc */
    OP_INFO,           /* -> rc, bytes_used, objects_live */
    OP_PUT_REF,        /* a=ref -> rc, ref of a new object holding a's 8 encoded bytes */
    OP_GET_REF,        /* a=ref -> rc, the ref encoded in that object */
    OP_TOUCH,          /* a=ref b=who c=seq d=len: re-read the kept pointer -> rc */
    OP_AWAIT_NOTINIT,  /* poll shoal_put until SHOAL_ENOTINIT (5 s) -> rc */
    OP_SHUTDOWN,       /* -> rc */
    OP_LOOP,           /* a=iterations b=seed c=owner ref d=its len -> rc */
    OP_SUBMIT,         /* -> rc */
    OP_INIT,           /* shoal_init publishing the same name -> rc */
    OP_SETUID,         /* become uid/gid a -> rc (0 or -errno) */
    OP_EXIT,           /* exit(0) without detaching */
};

struct op_msg { uint64_t code, a, b, c, d; };
struct rep_msg { int64_t rc; uint64_t a, b; };

extern char **environ;

static char g_dir[32];
static char g_name[32];
static unsigned g_seq;

static uint64_t ref_bits(shoal_ref r)
{
    unsigned char b[8];
    uint64_t v;
    shoal_ref_encode(r, b);
    memcpy(&v, b, 8);
    return v;
}

static shoal_ref bits_ref(uint64_t v)
{
    unsigned char b[8];
    memcpy(b, &v, 8);
    return shoal_ref_decode(b);
}

static int xfer(int fd, void *p, size_t n, int writing)
{
    return test_xfer(fd, p, n, writing);
}

/* ---- the child ------------------------------------------------------------------------------ */

#define CK(cond) do { if (!(cond)) { fprintf(stderr, "child %d %s:%d: %s failed; last error: %s\n", \
                        (int)getpid(), __FILE__, __LINE__, #cond, shoal_last_error()); _exit(3); } } while (0)

struct kept { uint64_t id; void *buf; const void *data; size_t len; };
static struct kept kept[64];

static struct kept *keep(uint64_t id)
{
    for (int i = 0; i < 64; i++)
        if (kept[i].id == id || kept[i].id == 0) {
            kept[i].id = id;
            return &kept[i];
        }
    return &kept[0];
}

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

static int child_main(int fd, const char *name)
{
    for (;;) {
        struct op_msg m;
        struct rep_msg r = { 0, 0, 0 };
        if (xfer(fd, &m, sizeof m, 0)) {
            if (getenv("SHOAL_TEST_VERBOSE"))
                fprintf(stderr, "child %d: command channel closed (%s)\n", (int)getpid(),
                        strerror(errno));
            return 0;   /* the test went away */
        }
        shoal_ref ref = bits_ref(m.a), out = SHOAL_REF_NULL;
        const void *d = NULL;
        size_t n = 0;
        switch (m.code) {
        case OP_ATTACH:
            r.rc = shoal_attach(name);
            break;
        case OP_PUT: {
            void *buf = malloc(m.a ? m.a : 1);
            CK(buf);
            pat_fill(buf, m.a, m.b, m.c);
            r.rc = shoal_put(buf, m.a, &out);
            free(buf);
            r.a = ref_bits(out);
            break;
        }
        case OP_CREATE: {
            void *buf = NULL;
            r.rc = shoal_create(m.a, &buf, &out);
            r.a = ref_bits(out);
            struct kept *k = keep(out.id);
            k->buf = buf;
            k->len = m.a;
            break;
        }
        case OP_FILL_SEAL: {
            struct kept *k = keep(ref.id);
            CK(k->buf || k->len == 0);
            pat_fill(k->buf, k->len, m.b, m.c);
            r.rc = shoal_seal(ref);
            break;
        }
        case OP_GET:
            r.rc = shoal_get(ref, &d, &n);
            if (r.rc == 0 && (n != m.d || !pat_ok(d, n, m.b, m.c)))
                r.rc = -100;
            if (r.rc == 0) {
                struct kept *k = keep(ref.id);
                k->data = d;
                k->len = n;
            }
            break;
        case OP_GET_TIMEOUT:
            r.rc = shoal_get_timeout(ref, (int64_t)m.b, &d, &n);
            break;
        case OP_RETAIN:
            r.rc = shoal_retain(ref);
            break;
        case OP_RELEASE:
            r.rc = shoal_release(ref);
            break;
        case OP_INFO: {
            shoal_info i;
            r.rc = shoal_info_get(&i);
            r.a = i.bytes_used;
            r.b = i.objects_live;
            break;
        }
        case OP_PUT_REF: {
            unsigned char b[8];
            shoal_ref_encode(ref, b);
            r.rc = shoal_put(b, 8, &out);
            r.a = ref_bits(out);
            break;
        }
        case OP_GET_REF:
            r.rc = shoal_get(ref, &d, &n);
            if (r.rc == 0 && n == 8)
                r.a = ref_bits(shoal_ref_decode(d));
            else if (r.rc == 0)
                r.rc = -100;
            break;
        case OP_TOUCH: {
            struct kept *k = keep(ref.id);
            /* The owner may be gone: the bytes stay mapped here, so this must not fault. */
            r.rc = k->data && k->len == m.d && pat_ok(k->data, k->len, m.b, m.c) ? 0 : -100;
            break;
        }
        case OP_AWAIT_NOTINIT: {
            r.rc = -100;
            for (int i = 0; i < 5000; i++) {
                int rc = shoal_put("x", 1, &out);
                if (rc == SHOAL_ENOTINIT) {
                    r.rc = rc;
                    break;
                }
                if (rc == 0)
                    shoal_release(out);
                usleep(1000);
            }
            break;
        }
        case OP_SHUTDOWN:
            r.rc = shoal_shutdown();
            break;
        case OP_LOOP:
            r.rc = child_loop(m.a, m.b, bits_ref(m.c), m.d);
            break;
        case OP_SUBMIT:
            r.rc = shoal_submit(NULL, NULL, 0, NULL, &out);
            break;
        case OP_INIT: {
            shoal_config c = shoal_test_config();
            c.name = name;
            r.rc = shoal_init(&c);
            break;
        }
        case OP_SETUID:
            r.rc = setgid((gid_t)m.a) == 0 && setuid((uid_t)m.a) == 0 ? 0 : -errno;
            break;
        case OP_EXIT:
            _exit(0);
        default:
            CK(!"unknown op");
        }
        if (r.rc && shoal_last_error()[0] && getenv("SHOAL_TEST_VERBOSE"))
            fprintf(stderr, "child %d op %llu: %lld (%s)\n", (int)getpid(),
                    (unsigned long long)m.code, (long long)r.rc, shoal_last_error());
        if (xfer(fd, &r, sizeof r, 1))
            return 0;
    }
}

/* ---- the parent's side ------------------------------------------------------------------------ */

struct child { pid_t pid; int fd; };

static struct child spawn(void)
{
    struct child c = { -1, -1 };
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return c;
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
    /* posix_spawn, not fork: no atfork handlers run in this (multithreaded) process, and
     * the child is a fresh exec of this program. */
    char *argv[] = { "test_multiproc", "--child", fdarg, g_name, NULL };
    if (posix_spawn(&c.pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        c.pid = -1;
    close(sv[1]);
    c.fd = sv[0];
    return c;
}

static struct rep_msg call(struct child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc,
                           uint64_t d)
{
    struct op_msg m = { code, a, b, cc, d };
    struct rep_msg r = { -999, 0, 0 };
    if (xfer(c->fd, &m, sizeof m, 1) || xfer(c->fd, &r, sizeof r, 0))
        r.rc = -999;   /* the child died: its stderr says why */
    return r;
}
#define CALL(c, code, ...) call(&(c), code, __VA_ARGS__)

/* Exit status of the child: its code, or 128 + signal. */
static int reap(struct child *c)
{
    int rc = test_reap(c->pid, c->fd);
    c->fd = -1;
    c->pid = -1;
    return rc;
}

static void new_name(void)
{
    snprintf(g_name, sizeof g_name, "mp-%d-%u", (int)getpid(), ++g_seq);
}

static int owner_start(void)
{
    test_reset();
    new_name();
    shoal_config c = shoal_test_config();
    c.name = g_name;
    return shoal_init(&c);
}

static struct child attached_child(void)
{
    struct child c = spawn();
    CU_ASSERT_FATAL(c.pid > 0);
    struct rep_msg r = CALL(c, OP_ATTACH, 0, 0, 0, 0);
    if (r.rc == -999)
        fprintf(stderr, "child died attaching: status %d\n", reap(&c));
    else if (r.rc != 0)
        fprintf(stderr, "child attach: %lld (run with SHOAL_TEST_VERBOSE=1 for its message)\n",
                (long long)r.rc);
    CU_ASSERT_EQUAL(r.rc, 0);
    return c;
}

/* Wait until the owner's figures are back to (bytes, objects); never a timing assertion:
 * the deadline only keeps a broken build from hanging. Prints how long it took. */
static int settle(uint64_t bytes, uint64_t objects, const char *what)
{
    uint64_t t0 = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    shoal_info i;
    for (int k = 0; k < 10000; k++) {
        if (shoal_info_get(&i) == 0 && i.bytes_used == bytes && i.objects_live == objects) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t t1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
            if (getenv("SHOAL_TEST_VERBOSE") || (t1 - t0) > 100000000u)
                printf("\n  [%s: back to %llu bytes / %llu objects after %.1f ms]", what,
                       (unsigned long long)bytes, (unsigned long long)objects,
                       (double)(t1 - t0) / 1e6);
            return 1;
        }
        usleep(1000);
    }
    fprintf(stderr, "%s: bytes_used %llu (want %llu), objects_live %llu (want %llu)\n", what,
            (unsigned long long)i.bytes_used, (unsigned long long)bytes,
            (unsigned long long)i.objects_live, (unsigned long long)objects);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static const size_t sizes[] = { 0, 1, 63, 4096, 100000, 3u << 20 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Owner puts, a client gets (zero-copy, same bytes), in every size; the ID is the same. */
static void test_owner_put_client_get(void)
{
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    struct child c = attached_child();
    shoal_ref r[NSIZES];
    for (size_t k = 0; k < NSIZES; k++) {
        void *b = malloc(sizes[k] + 1);
        pat_fill(b, sizes[k], 0, k);
        ASSERT_OK(shoal_put(b, sizes[k], &r[k]));
        free(b);
        struct rep_msg m = CALL(c, OP_GET, ref_bits(r[k]), 0, k, sizes[k]);
        CU_ASSERT_EQUAL(m.rc, 0);
    }
    /* The client's view of the store's figures is the owner's. */
    struct rep_msg m = CALL(c, OP_INFO, 0, 0, 0, 0);
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(m.a, i1.bytes_used);
    CU_ASSERT_EQUAL(m.b, i1.objects_live);
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
    for (size_t k = 0; k < NSIZES; k++)
        CHECK_OK(shoal_release(r[k]));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "owner objects released"));
    CHECK_OK(shoal_shutdown());
}

/* A client puts, the owner gets; refs travel as 8 encoded bytes, also inside an object.
 * An object the client sealed and the owner retained outlives the client. */
static void test_client_put_owner_get(void)
{
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    struct child c = attached_child();
    shoal_ref r[NSIZES];
    for (size_t k = 0; k < NSIZES; k++) {
        struct rep_msg m = CALL(c, OP_PUT, sizes[k], 5, k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        r[k] = bits_ref(m.a);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r[k], &d, &n));
        CU_ASSERT_EQUAL(n, sizes[k]);
        CU_ASSERT(pat_ok(d, n, 5, k));
    }
    /* A ref inside another object, both made by the client. */
    struct rep_msg m = CALL(c, OP_PUT_REF, ref_bits(r[4]), 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref holder = bits_ref(m.a);
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
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
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
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "orphan released"));
    CHECK_OK(shoal_shutdown());
}

/* Frees by a process other than the allocator go back to the allocator, both ways. */
static void test_remote_free(void)
{
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    struct child c = attached_child();
    /* Owner's bytes, last released by the client. */
    void *b = malloc(200000);
    pat_fill(b, 200000, 0, 1);
    shoal_ref r;
    ASSERT_OK(shoal_put(b, 200000, &r));
    free(b);
    ASSERT_OK(shoal_retain(r));               /* the reference we send */
    ASSERT_OK(shoal_release(r));              /* our own */
    CU_ASSERT_EQUAL(CALL(c, OP_GET, ref_bits(r), 0, 1, 200000).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, OP_RELEASE, ref_bits(r), 0, 0, 0).rc, 0);
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "owner bytes freed by the client"));
    CU_ASSERT_EQUAL(CALL(c, OP_GET, ref_bits(r), 0, 1, 200000).rc, SHOAL_ESTALE);
    /* The client's bytes, last released by the owner, many times over: the client's
     * drain thread gives them back and its arena reuses them. */
    for (int k = 0; k < 50; k++) {
        struct rep_msg m = CALL(c, OP_PUT, 70000, 6, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        r = bits_ref(m.a);
        CU_ASSERT_EQUAL(CALL(c, OP_RETAIN, m.a, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, OP_RELEASE, m.a, 0, 0, 0).rc, 0);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r, &d, &n));
        CU_ASSERT(n == 70000 && pat_ok(d, n, 6, (uint64_t)k));
        ASSERT_OK(shoal_release(r));
    }
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "client bytes freed by the owner"));
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Large objects (chunk runs of their own: alloc/sizeclass.h) freed by the other process
 * go back as chunk runs, both ways, and the room is usable again. */
static void test_remote_free_large(void)
{
    const size_t big = 6u << 20;
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    struct child c = attached_child();
    for (int k = 0; k < 4; k++) {
        void *b = malloc(big);
        pat_fill(b, big, 0, (uint64_t)k);
        shoal_ref r;
        ASSERT_OK(shoal_put(b, big, &r));
        free(b);
        ASSERT_OK(shoal_retain(r));           /* the reference we send */
        ASSERT_OK(shoal_release(r));          /* our own */
        CU_ASSERT_EQUAL(CALL(c, OP_GET, ref_bits(r), 0, (uint64_t)k, big).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, OP_RELEASE, ref_bits(r), 0, 0, 0).rc, 0);
        CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "owner's large object freed by the client"));
    }
    for (int k = 0; k < 4; k++) {
        struct rep_msg m = CALL(c, OP_PUT, big, 8, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        shoal_ref r = bits_ref(m.a);
        CU_ASSERT_EQUAL(CALL(c, OP_RETAIN, m.a, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c, OP_RELEASE, m.a, 0, 0, 0).rc, 0);
        const void *d;
        size_t n;
        ASSERT_OK(shoal_get(r, &d, &n));
        CU_ASSERT(n == big && pat_ok(d, n, 8, (uint64_t)k));
        ASSERT_OK(shoal_release(r));
        CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "client's large object freed by the owner"));
    }
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Two clients: one puts, the other gets and releases. */
static void test_client_to_client(void)
{
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    struct child a = attached_child(), b = attached_child();
    struct rep_msg m = CALL(a, OP_PUT, 12345, 7, 1, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    CU_ASSERT_EQUAL(CALL(a, OP_RETAIN, m.a, 0, 0, 0).rc, 0);     /* for b */
    CU_ASSERT_EQUAL(CALL(b, OP_GET, m.a, 7, 1, 12345).rc, 0);
    CU_ASSERT_EQUAL(CALL(a, OP_RELEASE, m.a, 0, 0, 0).rc, 0);    /* a's own */
    CU_ASSERT_EQUAL(CALL(b, OP_RELEASE, m.a, 0, 0, 0).rc, 0);    /* the last: a's bytes */
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "freed across clients"));
    CU_ASSERT_EQUAL(CALL(a, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(b, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&a), 0);
    CU_ASSERT_EQUAL(reap(&b), 0);
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
    ASSERT_OK(owner_start());
    struct child c = attached_child();
    /* The client waits on ours. */
    struct seal_later s = { SHOAL_REF_NULL, NULL, 5000 };
    ASSERT_OK(shoal_create(s.len, &s.buf, &s.r));
    CU_ASSERT_EQUAL(CALL(c, OP_GET_TIMEOUT, ref_bits(s.r), 0, 0, 0).rc, SHOAL_ETIMEDOUT);
    pthread_t th;
    pthread_create(&th, NULL, seal_after, &s);
    CU_ASSERT_EQUAL(CALL(c, OP_GET, ref_bits(s.r), 0, 99, s.len).rc, 0);
    pthread_join(th, NULL);
    /* We wait on the client's. */
    struct rep_msg m = CALL(c, OP_CREATE, 3000, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(bits_ref(m.a), 1000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(CALL(c, OP_FILL_SEAL, m.a, 8, 8, 0).rc, 0);
    ASSERT_OK(shoal_get_timeout(bits_ref(m.a), -1, &d, &n));
    CU_ASSERT(n == 3000 && pat_ok(d, n, 8, 8));
    bool ready = false;
    shoal_ref w = bits_ref(m.a);
    CU_ASSERT_EQUAL(shoal_wait(&w, 1, 1, 0, &ready), 1);
    CU_ASSERT(ready);
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
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
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    shoal_ref mine[3];
    for (int k = 0; k < 3; k++) {
        char b[1000];
        pat_fill(b, sizeof b, 0, (uint64_t)k);
        ASSERT_OK(shoal_put(b, sizeof b, &mine[k]));
    }
    shoal_info i1 = info_now();
    struct child c = attached_child();
    shoal_ref theirs[10];
    for (int k = 0; k < 10; k++) {
        struct rep_msg m = CALL(c, OP_PUT, 30000 + (uint64_t)k * 1000, 9, (uint64_t)k, 0);
        CU_ASSERT_EQUAL_FATAL(m.rc, 0);
        theirs[k] = bits_ref(m.a);
    }
    for (int k = 0; k < 3; k++)   /* it holds extra references to ours */
        CU_ASSERT_EQUAL(CALL(c, OP_RETAIN, ref_bits(mine[k]), 0, 0, 0).rc, 0);
    struct rep_msg m = CALL(c, OP_CREATE, 16384, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    struct waiter w = { bits_ref(m.a), 1 };
    ASSERT_OK(shoal_retain(w.r));
    ASSERT_OK(shoal_retain(theirs[4]));
    pthread_t th;
    pthread_create(&th, NULL, wait_for, &w);
    usleep(20000);
    kill(c.pid, SIGKILL);
    CU_ASSERT_EQUAL(reap(&c), 128 + SIGKILL);
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
    CU_ASSERT(settle(i1.bytes_used, i1.objects_live, "killed client cleaned up"));
    CHECK_RC(shoal_get(theirs[0], &d, &n), SHOAL_ESTALE);
    for (int k = 0; k < 3; k++) {   /* its extra references were dropped: ours are the last */
        ASSERT_OK(shoal_get(mine[k], &d, &n));
        CU_ASSERT(pat_ok(d, n, 0, (uint64_t)k));
        CHECK_OK(shoal_release(mine[k]));
        CHECK_RC(shoal_get(mine[k], &d, &n), SHOAL_ESTALE);
    }
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "all released"));
    CHECK_OK(shoal_shutdown());
}

/* Clients that die one after another, each with a few MiB of objects: their chunks come
 * back, so the store never runs out of span (without reclaiming, 16 deaths would use more
 * than the whole span of this 64 MiB store). */
static void test_chunks_reclaimed(void)
{
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    int rounds = SAN_DIV > 1 ? 8 : 16;
    for (int k = 0; k < rounds; k++) {
        struct child c = attached_child();
        for (int j = 0; j < 6; j++)
            CU_ASSERT_EQUAL(CALL(c, OP_PUT, 1u << 20, 10, (uint64_t)j, 0).rc, 0);
        if (k % 2)
            kill(c.pid, SIGKILL);
        else
            CALL(c, OP_EXIT, 0, 0, 0, 0);
        reap(&c);
        CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "client gone"));
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
    test_reset();
    new_name();
    shoal_config cfg = shoal_test_config();
    cfg.name = g_name;
    cfg.max_objects = 600;
    ASSERT_OK(shoal_init(&cfg));
    shoal_info i0 = info_now();
    for (int k = 0; k < 24; k++) {
        struct child c = attached_child();
        struct rep_msg m = CALL(c, OP_PUT, 10, 1, 1, 0);
        CU_ASSERT_EQUAL(m.rc, 0);
        CU_ASSERT_EQUAL(CALL(c, OP_RELEASE, m.a, 0, 0, 0).rc, 0);
        kill(c.pid, SIGKILL);
        reap(&c);
        CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "client gone"));
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
    ASSERT_OK(owner_start());
    shoal_info i0 = info_now();
    char ob[4096];
    pat_fill(ob, sizeof ob, 0, 777);
    shoal_ref o;
    ASSERT_OK(shoal_put(ob, sizeof ob, &o));
    struct child c[4];
    for (int k = 0; k < 4; k++)
        c[k] = attached_child();
    uint64_t iters = 3000 / SAN_DIV;
    for (int k = 0; k < 4; k++) {
        struct op_msg m = { OP_LOOP, iters, 100 + (uint64_t)k, ref_bits(o), sizeof ob };
        CU_ASSERT_EQUAL(xfer(c[k].fd, &m, sizeof m, 1), 0);
    }
    CU_ASSERT_EQUAL(child_loop(iters, 99, o, sizeof ob), 0);
    for (int k = 0; k < 4; k++) {
        struct rep_msg r = { -999, 0, 0 };
        CU_ASSERT_EQUAL(xfer(c[k].fd, &r, sizeof r, 0), 0);
        CU_ASSERT_EQUAL(r.rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(reap(&c[k]), 0);
    }
    CHECK_OK(shoal_release(o));
    CU_ASSERT(settle(i0.bytes_used, i0.objects_live, "four clients done"));
    CHECK_OK(shoal_shutdown());
}

/* The owner shuts down under two attached clients: they keep reading what they hold
 * (no fault), then every call answers SHOAL_ENOTINIT, and they detach cleanly. */
static void test_owner_shutdown_under_clients(void)
{
    ASSERT_OK(owner_start());
    char b[10000];
    pat_fill(b, sizeof b, 0, 5);
    shoal_ref r;
    ASSERT_OK(shoal_put(b, sizeof b, &r));
    struct child c[2] = { attached_child(), attached_child() };
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(CALL(c[k], OP_GET, ref_bits(r), 0, 5, sizeof b).rc, 0);
    CHECK_OK(shoal_shutdown());
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(CALL(c[k], OP_TOUCH, ref_bits(r), 0, 5, sizeof b).rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], OP_AWAIT_NOTINIT, 0, 0, 0, 0).rc, SHOAL_ENOTINIT);
        CU_ASSERT_EQUAL(CALL(c[k], OP_GET, ref_bits(r), 0, 5, sizeof b).rc, SHOAL_ENOTINIT);
        CU_ASSERT_EQUAL(CALL(c[k], OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(CALL(c[k], OP_SHUTDOWN, 0, 0, 0, 0).rc, SHOAL_ENOTINIT);
        CU_ASSERT_EQUAL(CALL(c[k], OP_ATTACH, 0, 0, 0, 0).rc, SHOAL_ENOENT);
        CU_ASSERT_EQUAL(reap(&c[k]), 0);
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
    ASSERT_OK(owner_start());
    struct child c = attached_child();
    struct rep_msg m = CALL(c, OP_CREATE, 5000, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref arg = bits_ref(m.a), res;
    shoal_arg a = SHOAL_REF(arg);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(res, 20000000, &d, &n), SHOAL_ETIMEDOUT);
    CU_ASSERT_EQUAL(CALL(c, OP_FILL_SEAL, m.a, 3, 4, 0).rc, 0);
    ASSERT_OK(shoal_get_timeout(res, 10 * 1000000000ll, &d, &n));
    unsigned char want[5000];
    pat_fill(want, sizeof want, 3, 4);
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof want; i++)
        sum = sum * 31 + want[i];
    CU_ASSERT(n == 8 && memcmp(d, &sum, 8) == 0);
    CHECK_OK(shoal_release(res));
    /* The creator dies before sealing. */
    m = CALL(c, OP_CREATE, 100, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    arg = bits_ref(m.a);
    a = SHOAL_REF(arg);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    kill(c.pid, SIGKILL);
    reap(&c);
    int rc = shoal_get_timeout(res, 10 * 1000000000ll, &d, &n);
    CU_ASSERT(rc == SHOAL_ETASK || rc == SHOAL_ECANCELED);
    if (rc != SHOAL_ETASK && rc != SHOAL_ECANCELED)
        fprintf(stderr, "task on a dead client's object: %d (%s)\n", rc, shoal_last_error());
    CHECK_OK(shoal_release(res));
    CHECK_OK(shoal_shutdown());
}

/* The owner dies (SIGKILL, no shutdown): this process, attached, notices within a few
 * seconds (its connection closes), and its calls answer SHOAL_ENOTINIT, never a fault. */
static void test_owner_killed(void)
{
    test_reset();
    new_name();
    struct child o = spawn();
    CU_ASSERT_EQUAL_FATAL(CALL(o, OP_INIT, 0, 0, 0, 0).rc, 0);
    struct rep_msg m = CALL(o, OP_PUT, 3000, 4, 4, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    ASSERT_OK(shoal_attach(g_name));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(bits_ref(m.a), &d, &n));
    CU_ASSERT(n == 3000 && pat_ok(d, n, 4, 4));
    kill(o.pid, SIGKILL);
    reap(&o);
    CU_ASSERT(pat_ok(d, n, 4, 4));   /* still mapped here: we hold the memfds */
    int rc = 0;
    for (int k = 0; k < 1000 && rc != SHOAL_ENOTINIT; k++) {
        shoal_ref r;
        if ((rc = shoal_put("y", 1, &r)) == 0)
            shoal_release(r);
        usleep(10000);
    }
    CHECK_RC(rc, SHOAL_ENOTINIT);
    CHECK_OK(shoal_shutdown());
    CHECK_RC(shoal_attach(g_name), SHOAL_ENOENT);
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
    ASSERT_OK(owner_start());
    shoal_ref r[7];
    for (int i = 0; i < 7; i++)
        ASSERT_OK(shoal_put("0123456789", 10, &r[i]));
    char cmd[700], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s %s --json", tool, g_name);
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
    ASSERT_OK(owner_start());
    struct child c = attached_child();
    struct rep_msg m = CALL(c, OP_SUBMIT, 0, 0, 0, 0);
    CU_ASSERT(m.rc < 0 && m.rc != -999);
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
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
    new_name();
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/shoal-%s.sock", g_dir, g_name);
    const char *path = a.sun_path;
    CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    CHECK_RC(shoal_attach(g_name), SHOAL_ENOENT);
    c.name = g_name;
    ASSERT_OK(shoal_init(&c));
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    /* Attached or initialized already; the same name twice. */
    CHECK_RC(shoal_attach(g_name), SHOAL_EEXIST);
    struct child ch = spawn();
    CU_ASSERT_EQUAL(CALL(ch, OP_ATTACH, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(ch, OP_ATTACH, 0, 0, 0, 0).rc, SHOAL_EEXIST);
    CU_ASSERT_EQUAL(CALL(ch, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&ch), 0);
    CHECK_OK(shoal_shutdown());
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);   /* the owner removed its socket */
}

static void test_same_name_twice(void)
{
    ASSERT_OK(owner_start());
    /* Another process cannot publish the same name while we serve it. */
    struct child c = spawn();
    CU_ASSERT_EQUAL(CALL(c, OP_INIT, 0, 0, 0, 0).rc, SHOAL_EEXIST);
    CU_ASSERT_EQUAL(reap(&c), 0);
    CHECK_OK(shoal_shutdown());
    /* Once we are gone, the name is free again. */
    c = spawn();
    CU_ASSERT_EQUAL(CALL(c, OP_INIT, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
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
    if (xfer(fd, &h, sizeof h.h + sizeof h.b.hello, 0) == 0 && f->len)
        xfer(fd, &f->reply, f->len, 1);
    close(fd);
    return NULL;
}

static int attach_to_fake(struct fake *f)
{
    new_name();
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/shoal-%s.sock", g_dir, g_name);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->lfd, 1) != 0)
        return -999;
    pthread_t th;
    pthread_create(&th, NULL, fake_owner, f);
    int rc = shoal_attach(g_name);
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

static int raw_connect(void)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/shoal-%s.sock", g_dir, g_name);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* The owner's side: a HELLO of another version gets REJECT(EPROTO); garbage, a HELLO with
 * unknown flags, a second HELLO or a half message never hurt it; it keeps serving. */
static void test_owner_refuses_bad_peers(void)
{
    ASSERT_OK(owner_start());
    struct shoal__msg m, a;
    size_t n = shoal__msg_init(&m, SHOAL__MSG_HELLO);
    m.b.hello.pid = (int32_t)getpid();
    m.b.hello.lib_version = (SHOAL_VERSION_MAJOR << 16) | (SHOAL_VERSION_MINOR << 8);
    m.h.version = SHOAL__PROTO_VERSION + 1;
    int fd = raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(xfer(fd, &m, n, 1), 0);
    CU_ASSERT_EQUAL(xfer(fd, &a, sizeof a.h + sizeof a.b.reject, 0), 0);
    CU_ASSERT_EQUAL(a.h.type, SHOAL__MSG_REJECT);
    CU_ASSERT_EQUAL(a.b.reject.code, SHOAL_EPROTO);
    close(fd);
    /* Library version from another release. */
    m.h.version = SHOAL__PROTO_VERSION;
    m.b.hello.lib_version = 99u << 16;
    fd = raw_connect();
    CU_ASSERT_EQUAL(xfer(fd, &m, n, 1), 0);
    CU_ASSERT_EQUAL(xfer(fd, &a, sizeof a.h + sizeof a.b.reject, 0), 0);
    CU_ASSERT_EQUAL(a.b.reject.code, SHOAL_EPROTO);
    close(fd);
    /* Garbage, then a truncated message, then silence. */
    char junk[700];
    memset(junk, 0xa5, sizeof junk);
    fd = raw_connect();
    CU_ASSERT(write(fd, junk, sizeof junk) > 0);
    char c1;
    CU_ASSERT(read(fd, &c1, 1) <= 0);   /* closed on us */
    close(fd);
    fd = raw_connect();
    CU_ASSERT_EQUAL(xfer(fd, &m, 10, 1), 0);
    close(fd);
    /* Still serving: a real client attaches and works. */
    struct child c = attached_child();
    CU_ASSERT_EQUAL(CALL(c, OP_PUT, 100, 1, 1, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, OP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}

/* Another user cannot attach: the socket is 0600 (and the owner checks SO_PEERCRED). */
static void test_attach_other_user(void)
{
    if (geteuid() != 0)
        SKIP_TEST("needs root to run a client as another user");
    ASSERT_OK(owner_start());
    struct child c = spawn();
    CU_ASSERT_EQUAL(CALL(c, OP_SETUID, 65534, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(CALL(c, OP_ATTACH, 0, 0, 0, 0).rc, SHOAL_EPERM);
    CU_ASSERT_EQUAL(reap(&c), 0);
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
    if (argc >= 4 && strcmp(argv[1], "--child") == 0) {
        shoal_test_child_limits(300);
        return child_main(atoi(argv[2]), argv[3]);
    }
    if (test_private_run_dir(g_dir, sizeof g_dir) != 0)   /* inherited by the children */
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int rc = shoal_test_run("multiproc", cases);
    rmdir(g_dir);
    return rc;
}
