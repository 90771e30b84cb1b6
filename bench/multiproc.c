/* multiproc.c - several processes on one store (issue 4): what a get costs on an object
 * another process put, against one put in-process (same run, same process, interleaved);
 * put throughput from one and from two client processes against the owner's own; and the
 * time to attach and detach. The program is the owner; its clients are this program
 * re-executed with --client, driven over a socketpair.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shoal.h"
#include "bench.h"
#include "../tests/lib/fdio.h"   /* test_xfer: read or write exactly n bytes */

extern char **environ;

#define HOT 64                 /* hot set: fits in L1 */
#define WIDE 65536             /* wide set: misses caches and TLB, in random order */
#define PUT_LEN 64

enum { OP_ATTACH = 1, OP_PUTSET, OP_GETLOOP, OP_PUTS, OP_RELEASE_ALL, OP_ATTACH_TIMES, OP_BYE };
struct op { uint64_t code, a, b, c; };
struct rep { int64_t rc; double v; uint64_t n; };

static volatile uintptr_t sink;

/* ns per get over refs[order[k]] (order NULL: the hot set, k & 63). */
static double get_loop(const shoal_ref *refs, const uint32_t *order, size_t nrefs, size_t n)
{
    uintptr_t acc = 0;
    uint64_t t0 = bench_ns();
    for (size_t k = 0; k < n; k++) {
        size_t j = order ? order[k % nrefs] : (k & (HOT - 1));
        const void *d = NULL;
        size_t l = 0;
        int rc = shoal_get(refs[j], &d, &l);
        acc += (uintptr_t)d + l + (unsigned)rc;
        BENCH_LAUNDER(acc);
    }
    uint64_t t = bench_ns() - t0;
    sink ^= acc;
    return (double)t / (double)n;
}

static uint32_t *shuffled(size_t n, uint64_t seed)
{
    uint32_t *o = malloc(n * sizeof *o);
    for (size_t i = 0; i < n; i++)
        o[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        size_t j = seed % (i + 1);
        uint32_t t = o[i]; o[i] = o[j]; o[j] = t;
    }
    return o;
}

static int put_set(shoal_ref *refs, size_t n, uint64_t tag)
{
    unsigned char buf[PUT_LEN] = {0};
    for (size_t i = 0; i < n; i++) {
        uint64_t v = tag + i;
        memcpy(buf, &v, sizeof v);
        int rc = shoal_put(buf, sizeof buf, &refs[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* n puts of PUT_LEN bytes; returns seconds; the refs are kept in out[] for a later release. */
static double put_run(shoal_ref *out, size_t n, int *rc)
{
    unsigned char buf[PUT_LEN] = {1};
    uint64_t t0 = bench_ns();
    for (size_t i = 0; i < n; i++)
        if ((*rc = shoal_put(buf, sizeof buf, &out[i])) != 0)
            return 0;
    return (double)(bench_ns() - t0) / 1e9;
}

/* ---- the client --------------------------------------------------------------------------- */

static int client_main(int fd, const char *name)
{
    static shoal_ref set[WIDE];
    static shoal_ref owner_refs[WIDE];
    shoal_ref *puts = NULL;
    size_t nputs = 0;
    for (;;) {
        struct op m;
        struct rep r = { 0, 0, 0 };
        if (test_xfer(fd, &m, sizeof m, 0))
            return 0;
        switch (m.code) {
        case OP_ATTACH:
            r.rc = shoal_attach(name);
            break;
        case OP_PUTSET:    /* a: how many; the refs go back as 8 encoded bytes each */
            r.rc = put_set(set, m.a, 1000000);
            r.n = m.a;
            if (test_xfer(fd, &r, sizeof r, 1))
                return 0;
            for (size_t i = 0; i < m.a && r.rc == 0; i++) {
                unsigned char b[8];
                shoal_ref_encode(set[i], b);
                if (test_xfer(fd, b, 8, 1))
                    return 0;
            }
            continue;
        case OP_GETLOOP: { /* a: how many owner refs follow; b: gets; c: 1 = wide order */
            for (size_t i = 0; i < m.a; i++) {
                unsigned char b[8];
                if (test_xfer(fd, b, 8, 0))
                    return 0;
                owner_refs[i] = shoal_ref_decode(b);
            }
            uint32_t *o = m.c ? shuffled(m.a, 7) : NULL;
            get_loop(owner_refs, o, m.a, m.b / 4);   /* warm: fault the pages in */
            get_loop(set, o, m.a, m.b / 4);
            double own = 0, theirs = 0;
            for (int k = 0; k < 2; k++) {   /* interleaved, the better of two each */
                double a = get_loop(set, o, m.a, m.b), b = get_loop(owner_refs, o, m.a, m.b);
                own = k == 0 || a < own ? a : own;
                theirs = k == 0 || b < theirs ? b : theirs;
            }
            free(o);
            r.v = own;
            r.n = (uint64_t)(theirs * 1000.0);   /* ps, to fit the reply */
            break;
        }
        case OP_PUTS:      /* a: count; the owner times us from outside */
            puts = realloc(puts, m.a * sizeof *puts);
            nputs = 0;
            r.v = put_run(puts, m.a, (int *)&r.rc);
            if (r.rc == 0)
                nputs = m.a;
            break;
        case OP_RELEASE_ALL:
            for (size_t i = 0; i < nputs; i++)
                shoal_release(puts[i]);
            nputs = 0;
            break;
        case OP_ATTACH_TIMES: { /* a: rounds; reply: median attach us in v, detach in n (ns) */
            double at[BENCH_MAX_REPS * 8], de[BENCH_MAX_REPS * 8];
            int k = (int)(m.a < BENCH_MAX_REPS * 8 ? m.a : BENCH_MAX_REPS * 8);
            for (int i = 0; i < k && r.rc == 0; i++) {
                uint64_t t0 = bench_ns();
                r.rc = shoal_attach(name);
                uint64_t t1 = bench_ns();
                if (r.rc == 0)
                    r.rc = shoal_shutdown();
                uint64_t t2 = bench_ns();
                at[i] = (double)(t1 - t0) / 1e3;
                de[i] = (double)(t2 - t1) / 1e3;
            }
            if (r.rc == 0) {
                bench_stat a = bench_stats(at, k), d = bench_stats(de, k);
                r.v = a.median;
                r.n = (uint64_t)(d.median * 1000.0);
                /* min and max ride in a second reply */
                struct rep r2 = { 0, a.min, (uint64_t)(a.max * 1000.0) };
                if (test_xfer(fd, &r, sizeof r, 1) || test_xfer(fd, &r2, sizeof r2, 1))
                    return 0;
                continue;
            }
            break;
        }
        case OP_BYE:
            r.rc = shoal_shutdown();
            test_xfer(fd, &r, sizeof r, 1);
            return 0;
        }
        if (r.rc && r.rc != -999)
            fprintf(stderr, "[multiproc client %d] op %llu: %s\n", (int)getpid(),
                    (unsigned long long)m.code, shoal_last_error());
        if (test_xfer(fd, &r, sizeof r, 1))
            return 0;
    }
}

/* ---- the owner ----------------------------------------------------------------------------- */

struct child { pid_t pid; int fd; };
static char g_name[64];

static int spawn_client(struct child *c)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
    char *argv[] = { "multiproc", "--client", fdarg, g_name, NULL };
    int e = posix_spawn(&c->pid, "/proc/self/exe", NULL, NULL, argv, environ);
    close(sv[1]);
    if (e) {
        close(sv[0]);
        return -1;
    }
    c->fd = sv[0];
    return 0;
}

static struct rep call(struct child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc)
{
    struct op m = { code, a, b, cc };
    struct rep r = { -999, 0, 0 };
    if (test_xfer(c->fd, &m, sizeof m, 1) || test_xfer(c->fd, &r, sizeof r, 0))
        r.rc = -999;
    return r;
}

static void end_client(struct child *c)
{
    call(c, OP_BYE, 0, 0, 0);
    close(c->fd);
    waitpid(c->pid, NULL, 0);
}

static char why[256];
static const char *failed(const char *what, int64_t rc)
{
    snprintf(why, sizeof why, "%s: %s", what,
             rc == -999 ? "the client process died" : shoal_strerror((int)rc));
    return why;
}

static void bench_gets(struct child *c, int wide)
{
    size_t n = wide ? WIDE : HOT;
    size_t gets = wide ? (bench_quick() ? 1000000 : 4000000) : (bench_quick() ? 2000000 : 10000000);
    const char *bname = wide ? "multiproc get, 64k objects" : "multiproc get, 64 hot objects";
    const char *cname = wide ? "multiproc get in a client, 64k" : "multiproc get in a client, 64 hot";
    static shoal_ref mine[WIDE], theirs[WIDE];
    struct rep r = call(c, OP_PUTSET, n, 0, 0);
    int rc = put_set(mine, n, 0);
    if (r.rc == 0)
        for (size_t i = 0; i < n; i++) {
            unsigned char b[8];
            if (test_xfer(c->fd, b, 8, 0)) {
                r.rc = -999;
                break;
            }
            theirs[i] = shoal_ref_decode(b);
        }
    if (r.rc || rc) {
        bench_emit_error(bname, "put by another process", "ns/get", "in-process",
                         failed("put", r.rc ? r.rc : rc));
        return;
    }
    uint32_t *o = wide ? shuffled(n, 7) : NULL;
    get_loop(mine, o, n, gets / 4);
    get_loop(theirs, o, n, gets / 4);
    double a[BENCH_MAX_REPS], b[BENCH_MAX_REPS];
    int reps = bench_reps();
    for (int k = 0; k < reps; k++) {
        if (k & 1) {
            b[k] = get_loop(theirs, o, n, gets);
            a[k] = get_loop(mine, o, n, gets);
        } else {
            a[k] = get_loop(mine, o, n, gets);
            b[k] = get_loop(theirs, o, n, gets);
        }
    }
    bench_emit(bname, "in-process", "ns/get", a, reps, "in-process");
    bench_emit(bname, "put by another process", "ns/get", b, reps, "in-process");

    /* The same from the client's side: its own objects against the owner's. */
    double ca[BENCH_MAX_REPS], cb[BENCH_MAX_REPS];
    int ok = 1;
    for (int k = 0; k < reps && ok; k++) {
        struct op m = { OP_GETLOOP, n, gets, (uint64_t)wide };
        if (test_xfer(c->fd, &m, sizeof m, 1)) {
            ok = 0;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char bb[8];
            shoal_ref_encode(mine[i], bb);
            if (test_xfer(c->fd, bb, 8, 1))
                ok = 0;
        }
        struct rep rr = { -999, 0, 0 };
        if (!ok || test_xfer(c->fd, &rr, sizeof rr, 0) || rr.rc) {
            ok = 0;
            break;
        }
        ca[k] = rr.v;
        cb[k] = (double)rr.n / 1000.0;
    }
    if (ok) {
        bench_emit(cname, "in-process", "ns/get", ca, reps, "in-process");
        bench_emit(cname, "put by the owner", "ns/get", cb, reps, "in-process");
    } else {
        bench_emit_error(cname, "put by the owner", "ns/get", "in-process",
                         "the client process died");
    }
    free(o);
    for (size_t i = 0; i < n; i++)
        shoal_release(mine[i]);
}

static void bench_puts(struct child *cl, int nclients)
{
    size_t n = bench_quick() ? 50000 : 200000;
    int reps = bench_reps();
    double v[BENCH_MAX_REPS];
    char variant[48];
    const char *bname = "multiproc put 64 B";
    if (nclients == 0) {
        shoal_ref *refs = malloc(n * sizeof *refs);
        for (int k = 0; k < reps; k++) {
            int rc = 0;
            double s = put_run(refs, n, &rc);
            for (size_t i = 0; rc == 0 && i < n; i++)
                shoal_release(refs[i]);
            if (rc) {
                free(refs);
                bench_emit_error(bname, "owner, 1 thread", "Mops/s", "owner, 1 thread",
                                 failed("put", rc));
                return;
            }
            v[k] = (double)n / s / 1e6;
        }
        free(refs);
        bench_emit_unpaired(bname, "owner, 1 thread", "Mops/s", v, reps, "owner, 1 thread");
        return;
    }
    snprintf(variant, sizeof variant, "%d client process%s", nclients, nclients > 1 ? "es" : "");
    for (int k = 0; k < reps; k++) {
        uint64_t t0 = bench_ns();
        for (int c = 0; c < nclients; c++) {
            struct op m = { OP_PUTS, n, 0, 0 };
            test_xfer(cl[c].fd, &m, sizeof m, 1);
        }
        int64_t bad = 0;
        for (int c = 0; c < nclients; c++) {
            struct rep r = { -999, 0, 0 };
            if (test_xfer(cl[c].fd, &r, sizeof r, 0) || r.rc)
                bad = r.rc ? r.rc : -999;
        }
        double s = (double)(bench_ns() - t0) / 1e9;
        for (int c = 0; c < nclients; c++)
            call(&cl[c], OP_RELEASE_ALL, 0, 0, 0);
        if (bad) {
            bench_emit_error(bname, variant, "Mops/s", "owner, 1 thread", failed("put", bad));
            return;
        }
        v[k] = (double)n * nclients / s / 1e6;
    }
    /* measured after the owner's block, not alternately with it: compared by medians */
    bench_emit_unpaired(bname, variant, "Mops/s", v, reps, "owner, 1 thread");
}

static void bench_attach(struct child *c)
{
    int rounds = bench_quick() ? 20 : 100;
    struct rep r = call(c, OP_ATTACH_TIMES, (uint64_t)rounds, 0, 0);
    struct rep r2 = { -999, 0, 0 };
    if (r.rc == 0 && test_xfer(c->fd, &r2, sizeof r2, 0))
        r.rc = -999;
    if (r.rc) {
        bench_emit_error("multiproc attach", "shoal_attach", "us", NULL, failed("attach", r.rc));
        return;
    }
    bench_stat a = { r.v, r2.v, (double)r2.n / 1000.0, rounds };
    bench_stat d = { (double)r.n / 1000.0, NAN, NAN, rounds };
    d.min = d.max = d.median;
    bench_emit_stat("multiproc attach", "shoal_attach", "us", a, NULL);
    bench_emit_stat("multiproc attach", "shoal_shutdown (detach)", "us", d, NULL);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--client") == 0)
        return client_main(atoi(argv[2]), argv[3]);
    bench_init(argc, argv, "multiproc");
    setenv("SHOAL_QUIET", "1", 0);
    /* A private socket directory unless the caller chose one. */
    static char dir[] = "/tmp/shoal-bench-XXXXXX";
    int own_dir = 0;
    if (!getenv("SHOAL_RUN_DIR") && mkdtemp(dir)) {
        setenv("SHOAL_RUN_DIR", dir, 1);
        own_dir = 1;
    }
    snprintf(g_name, sizeof g_name, "bench-%d", (int)getpid());
    shoal_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.store_bytes = (size_t)512 << 20;
    cfg.workers = 1;
    cfg.name = g_name;
    int rc = shoal_init(&cfg);
    if (rc) {
        bench_emit_error("multiproc get, 64 hot objects", "in-process", "ns/get", NULL,
                         failed("shoal_init", rc));
        return 1;
    }
    struct child cl[2];
    int nc = 0;
    for (; nc < 2; nc++) {
        if (spawn_client(&cl[nc]) != 0)
            break;
        struct rep r = call(&cl[nc], OP_ATTACH, 0, 0, 0);
        if (r.rc) {
            bench_emit_error("multiproc attach", "shoal_attach", "us", NULL,
                             failed("attach", r.rc));
            close(cl[nc].fd);
            waitpid(cl[nc].pid, NULL, 0);
            break;
        }
    }
    if (nc >= 1) {
        bench_progress("get: a client's objects against our own, interleaved");
        bench_gets(&cl[0], 0);
        if (!bench_over_budget())
            bench_gets(&cl[0], 1);
        bench_progress("put throughput: in-process, then 1 and 2 clients");
        bench_puts(NULL, 0);
        if (!bench_over_budget())
            bench_puts(cl, 1);
        if (nc >= 2 && !bench_over_budget())
            bench_puts(cl, 2);
    }
    for (int k = 0; k < nc; k++)
        end_client(&cl[k]);
    /* Attach time: a fresh client attaches and detaches again and again. */
    struct child a;
    if (!bench_over_budget() && spawn_client(&a) == 0) {
        bench_attach(&a);
        close(a.fd);
        waitpid(a.pid, NULL, 0);
    }
    shoal_shutdown();
    if (own_dir)
        rmdir(dir);
    return 0;
}
