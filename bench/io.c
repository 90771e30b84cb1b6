/* io.c - issue 6's figures: file ingest (shoal_put_file) and export (shoal_write_file)
 * against plain pread/pwrite of the same file in the same run, buffered and O_DIRECT;
 * spilling and restoring against the disk's O_DIRECT bandwidth measured in the same run;
 * and the latency of a task that depends on a file read, with idle and with busy workers.
 * Files live in a fresh directory under BENCH_IO_DIR (default /tmp), removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shoal.h"
#include "bench.h"

#define MiB ((size_t)1 << 20)
#define CHUNK MiB   /* the baselines' request size, shoal's too */

static char dir[256];
static char errbuf[512];
static size_t file_bytes;

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static double gbps(size_t bytes, uint64_t ns) { return (double)bytes / (double)ns; }

static void *aligned(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, n))
        return NULL;
    memset(p, 1, n);   /* pre-faulted, as the store's pages are */
    return p;
}

static int make_file(const char *path, size_t n)
{
    void *b = aligned(CHUNK);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || !b)
        return -1;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        memset(b, (int)(off / CHUNK), k);
        if (pwrite(fd, b, k, (off_t)off) != (ssize_t)k)
            return -1;
    }
    fsync(fd);
    close(fd);
    free(b);
    return 0;
}

/* ---- baselines: plain pread/pwrite, one request at a time, 1 MiB each ------------------ */

static double pread_file(const char *path, int direct, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0)
        return 0;
    uint64_t t0 = bench_ns();
    for (size_t off = 0; off < n; off += CHUNK)
        if (pread(fd, buf + off, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
            close(fd);
            return 0;
        }
    uint64_t t1 = bench_ns();
    close(fd);
    return gbps(n, t1 - t0);
}

static double pwrite_file(const char *path, int direct, const char *buf, size_t n)
{
    uint64_t t0 = bench_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0)
        return 0;
    for (size_t off = 0; off < n; off += CHUNK)
        if (pwrite(fd, buf + off, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
            close(fd);
            return 0;
        }
    fsync(fd);
    close(fd);
    return gbps(n, bench_ns() - t0);
}

/* ---- the disk's O_DIRECT bandwidth as spilling uses it: several requests in flight --------
 * Spilling and restoring keep SPILL_QD requests of SPILL_CHUNK bytes in flight through
 * io_uring (io/io.h: SHOAL__IO_WQD, SHOAL__IO_WCHUNK), and never fsync (a spill file does
 * not outlive its process). One request at a time and an fsync (the file baselines above)
 * understate what the disk does for spilling, so the spill baseline is SPILL_QD threads,
 * each moving every SPILL_QD-th chunk with O_DIRECT, and no fsync. */
#define SPILL_QD    4
#define SPILL_CHUNK (4 * MiB)
#define SPILL_WB    "O_DIRECT pwrite, 4 in flight"
#define SPILL_RB    "O_DIRECT pread, 4 in flight"

struct qd_part {
    int fd, write, ok;
    char *buf;
    size_t n, first;
    pthread_t th;
};

static void *qd_run(void *arg)
{
    struct qd_part *q = arg;
    q->ok = 1;
    for (size_t off = q->first * SPILL_CHUNK; off < q->n; off += SPILL_QD * SPILL_CHUNK) {
        size_t k = q->n - off < SPILL_CHUNK ? q->n - off : SPILL_CHUNK;
        ssize_t got = q->write ? pwrite(q->fd, q->buf + off, k, (off_t)off)
                               : pread(q->fd, q->buf + off, k, (off_t)off);
        if (got != (ssize_t)k) {
            q->ok = 0;
            break;
        }
    }
    return NULL;
}

/* GB/s of moving n bytes between buf and path with O_DIRECT, SPILL_QD requests in flight;
 * 0 on failure. */
static double qd_file(const char *path, int write, char *buf, size_t n)
{
    int fd = open(path, write ? O_WRONLY | O_CREAT | O_DIRECT : O_RDONLY | O_DIRECT, 0644);
    if (fd < 0)
        return 0;
    struct qd_part q[SPILL_QD];
    int started = 0, ok = 1;
    uint64_t t0 = bench_ns();
    for (; started < SPILL_QD; started++) {
        q[started] = (struct qd_part){ .fd = fd, .write = write, .buf = buf, .n = n,
                                       .first = (size_t)started };
        if (pthread_create(&q[started].th, NULL, qd_run, &q[started]) != 0) {
            ok = 0;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(q[i].th, NULL);
        ok = ok && q[i].ok;
    }
    uint64_t t1 = bench_ns();
    close(fd);
    return ok ? gbps(n, t1 - t0) : 0;
}

/* ---- shoal --------------------------------------------------------------------------------- */

static int start(size_t store, int direct, const char *spill)
{
    setenv("SHOAL_IO_DIRECT", direct ? "1" : "0", 1);
    shoal_config c;
    memset(&c, 0, sizeof c);
    c.store_bytes = store;
    c.workers = 2;
    c.spill_dir = spill;
    int rc = shoal_init(&c);
    if (rc)
        snprintf(errbuf, sizeof errbuf, "shoal_init: %s", shoal_last_error());
    return rc;
}

static double ingest(const char *path, size_t n)
{
    shoal_ref r;
    const void *d;
    size_t len;
    uint64_t t0 = bench_ns();
    if (shoal_put_file(path, 0, 0, &r) || shoal_get(r, &d, &len) || len != n) {
        snprintf(errbuf, sizeof errbuf, "ingest: %s", shoal_last_error());
        return 0;
    }
    uint64_t t1 = bench_ns();
    shoal_release(r);
    return gbps(n, t1 - t0);
}

static double export(shoal_ref obj, const char *path, size_t n)
{
    shoal_ref done;
    const void *d;
    size_t len;
    uint64_t t0 = bench_ns();
    if (shoal_write_file(obj, path, &done) || shoal_get(done, &d, &len)) {
        snprintf(errbuf, sizeof errbuf, "export: %s", shoal_last_error());
        return 0;
    }
    uint64_t t1 = bench_ns();
    shoal_release(done);
    return gbps(n, t1 - t0);
}

/* A baseline and a candidate measured alternately, rep by rep: this shared machine's disk
 * drifts by tens of percent within seconds, and alternating puts both under the same drift.
 * Base and candidate take turns at going first (base, cand, extra; then cand, base, extra),
 * so that neither always runs right after the other (the cache, the CPU's clock and the
 * scheduler's view of the process carry over from one run to the next).
 * extra (may be NULL) is a second, informational baseline measured in the same rotation.
 * reps: the pairs wanted (capped at BENCH_MAX_REPS). */
static void pair(const char *bench, int reps, const char *extra_name, double (*extra)(void *),
                 const char *base_name, double (*base)(void *), const char *cand_name,
                 double (*cand)(void *), void *ctx)
{
    double x[BENCH_MAX_REPS], b[BENCH_MAX_REPS], c[BENCH_MAX_REPS];
    int n = 0;
    errbuf[0] = 0;
    if (reps > BENCH_MAX_REPS)
        reps = BENCH_MAX_REPS;
    for (int i = 0; i < reps; i++) {
        if (i % 2 == 0) {
            b[n] = base(ctx);
            c[n] = cand(ctx);
        } else {
            c[n] = cand(ctx);
            b[n] = base(ctx);
        }
        x[n] = extra ? extra(ctx) : 1;
        if (getenv("BENCH_IO_DEBUG"))
            bench_progress("%s rep %d: %s %.3f, %s %.3f, %s %.3f", bench, i,
                           extra ? extra_name : "-", x[n], base_name, b[n], cand_name, c[n]);
        if (x[n] <= 0 || b[n] <= 0 || c[n] <= 0) {
            const char *why = errbuf[0] ? errbuf : "failed";
            bench_emit_error(bench, c[n] <= 0 ? cand_name : base_name, "GB/s", NULL, why);
            return;
        }
        n++;
    }
    bench_emit(bench, base_name, "GB/s", b, n, base_name);
    bench_emit(bench, cand_name, "GB/s", c, n, base_name);
    if (extra)
        bench_emit(bench, extra_name, "GB/s", x, n, base_name);
}

/* buf: plain memory (malloc'd, transparent huge pages where the kernel gives them); sbuf: the
 * bytes of an object in the store, the memory shoal's own transfers use. */
struct ctx { const char *path; char *buf, *sbuf; size_t n; int direct; shoal_ref obj; };

static double c_pread(void *p) { struct ctx *c = p; return pread_file(c->path, c->direct, c->buf, c->n); }
static double c_pwrite(void *p) { struct ctx *c = p; return pwrite_file(c->path, c->direct, c->buf, c->n); }
static double c_pread_store(void *p) { struct ctx *c = p; return pread_file(c->path, c->direct, c->sbuf, c->n); }
static double c_pwrite_store(void *p) { struct ctx *c = p; return pwrite_file(c->path, c->direct, c->sbuf, c->n); }
static double c_ingest(void *p) { struct ctx *c = p; return ingest(c->path, c->n); }
static double c_export(void *p) { struct ctx *c = p; return export(c->obj, c->path, c->n); }

/* The baselines read into and write from store memory, as shoal does: the same page kind on
 * both sides. Without huge pages the store's 4 KiB pages are slower for direct I/O than a
 * malloc'd buffer on transparent huge pages (0.75x here for O_DIRECT writes, whoever
 * issues them); the malloc'd-buffer figure is reported next to it for that reason.
 *
 * What an ingest pair compares, each timed from the first call to the bytes in memory:
 *   pread           open(2) the file (O_DIRECT or not), pread(2) it whole in 1 MiB
 *                   requests, one at a time, into the bytes of an object created and
 *                   written once before the pairs (mapped, no page faults), close(2);
 *   shoal_put_file  shoal_put_file(file) then shoal_get of its result: the object is
 *                   allocated in the store, the file opened, stat'ed, read into it and
 *                   closed, and the object completed, by whichever thread shoal picks (the
 *                   I/O thread; or, for an ingest not started yet, the calling thread
 *                   waiting in shoal_get, and for a buffered one the I/O thread reading
 *                   part of the chunks alongside it: two threads may copy where the pread
 *                   loop has one); the release after is not timed.
 * An export pair: pwrite+fsync of the object's bytes to a new file against shoal_write_file
 * and shoal_get of its done object. */
static void files(const char *in, const char *out, int direct_from, int direct_to)
{
    char *buf = aligned(file_bytes);
    if (!buf) {
        bench_emit_error("ingest buffered", "pread", "GB/s", NULL, "out of memory");
        return;
    }
    for (int direct = direct_from; direct <= direct_to && !bench_over_budget(); direct++) {
        char ib[48], eb[48];
        snprintf(ib, sizeof ib, "ingest %s", direct ? "O_DIRECT" : "buffered");
        snprintf(eb, sizeof eb, "export %s", direct ? "O_DIRECT" : "buffered");
        struct ctx c = { .path = in, .buf = buf, .n = file_bytes, .direct = direct };
        pread_file(in, 0, buf, file_bytes);   /* warm: the buffered figures read the cache */
        if (start(file_bytes * 3 + 64 * MiB, direct, NULL)) {
            bench_emit_error(ib, "shoal_put_file", "GB/s", "pread", errbuf);
            continue;
        }
        void *sb;
        if (shoal_create(file_bytes, &sb, &c.obj)) {
            bench_emit_error(ib, "shoal_put_file", "GB/s", "pread", shoal_last_error());
            shoal_shutdown();
            continue;
        }
        c.sbuf = sb;
        memset(sb, 0, file_bytes);
        ingest(in, file_bytes);   /* the store's first touch of its pages is not the figure */
        /* Buffered, both sides copy from the page cache (the file was read just before and
         * the machine has room for it) into pages of the store that are already mapped;
         * a rep takes 20-60 ms, so three times the pairs cost about a second and steady the
         * median on this shared machine. */
        pair(ib, direct ? bench_reps() : 3 * bench_reps(), "pread, malloc'd buffer", c_pread,
             "pread", c_pread_store, "shoal_put_file", c_ingest, &c);
        shoal_seal(c.obj);        /* now the object to export (its bytes: the file's) */
        c.path = out;
        pair(eb, bench_reps(), "pwrite+fsync, malloc'd buffer", c_pwrite, "pwrite+fsync",
             c_pwrite_store, "shoal_write_file", c_export, &c);
        shoal_release(c.obj);
        shoal_shutdown();
    }
    unsetenv("SHOAL_IO_DIRECT");
    free(buf);
}

/* ---- spill and restore ----------------------------------------------------------------------- */

/* This process's resident bytes (/proc/self/statm), -1 when unknown: how much memory a
 * timed section touched for the first time. */
static int64_t rss_bytes(void)
{
    long pages = -1, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    int got = fscanf(f, "%ld %ld", &pages, &res);
    fclose(f);
    return got == 2 ? (int64_t)res * sysconf(_SC_PAGESIZE) : -1;
}

/* n bytes, pre-faulted, in the kind of page a private store gets where no huge pages are
 * reserved: transparent huge pages, where the kernel gives them on request (and 4 KiB
 * pages on both sides where it does not). The page kind decides how the block layer cuts a
 * direct transfer: 4 KiB pages make 4 KiB segments and this VM's disk takes 254 segments a
 * request, so a 4 MiB write from a plain malloc'd buffer went as four requests of about
 * 1 MiB, where the store's 2 MiB pages go as one: that baseline ran at about half the
 * disk's speed here, and shoal's spill and restore "beat the disk" by 1.4x-2x. */
static void *aligned_huge(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 2 * MiB, n))
        return NULL;
    madvise(p, n, MADV_HUGEPAGE);   /* a request; refused, the pages stay 4 KiB */
    memset(p, 1, n);
    return p;
}

static void spilling(const char *scratch)
{
    size_t store = bench_quick() ? 64 * MiB : 256 * MiB, objsz = 4 * MiB;
    size_t disk = store * 2;
    char *buf = aligned_huge(disk);
    if (!buf)
        return;
    struct ctx c = { .path = scratch, .buf = buf, .n = disk, .direct = 1 };
    double sv[BENCH_MAX_REPS], rv[BENCH_MAX_REPS], wb[BENCH_MAX_REPS], rb[BENCH_MAX_REPS];
    int n = 0;
    errbuf[0] = 0;
    for (int rep = 0; rep < bench_reps() && !bench_over_budget(); rep++) {
        /* The disk's own figures with spilling's queue depth, alternated with shoal's. */
        wb[n] = qd_file(c.path, 1, c.buf, c.n);
        rb[n] = qd_file(c.path, 0, c.buf, c.n);
        unlink(scratch);
        if (start(store, 1, dir))
            break;
        /* Fill the store until it spills: from then on it is full, each put of the timed
         * section needs a spill, and every page of the store has been touched. (Filling
         * three quarters of it left its last quarter to be touched for the first time
         * inside the timed section, by puts that needed no spill: on this VM, whose host
         * takes back the memory a guest frees, that first touch ran at 0.5 GB/s in some
         * repetitions and 13 GB/s in others, and the spill figure with it, where the
         * baseline's buffer is pre-faulted.) */
        size_t fit = store / objsz * 3 / 4, more = disk / objsz, filled = 0;
        shoal_ref *refs = calloc(store / objsz + more, sizeof *refs);
        shoal_stats s0, s1, s2;
        int rc = 0;
        memset(&s0, 0, sizeof s0);
        while (!rc && filled < store / objsz && s0.spilled_objects == 0) {
            rc = shoal_put(buf + (filled % 8) * objsz, objsz, &refs[filled]);
            filled += rc == 0;
            shoal_stats_get(&s0, sizeof s0);
        }
        size_t total = filled + more;
        int64_t rss0 = rss_bytes();
        uint64_t t0 = bench_ns();
        for (size_t i = filled; i < total && !rc; i++)   /* every one of these needs a spill */
            rc = shoal_put(buf + (i % 8) * objsz, objsz, &refs[i]);
        uint64_t t1 = bench_ns();
        int64_t rss1 = rss_bytes();
        shoal_stats_get(&s1, sizeof s1);
        /* Room for the oldest (spilled) ones: drop the youngest (resident), then read the
         * oldest back, so the restores need no spill of their own: three quarters of the
         * store (big objects waste part of the span in the allocator, extents of separate
         * grows never merge, so a full store holds fewer of them). */
        for (size_t i = total - fit; i < total; i++)
            shoal_release(refs[i]);
        uint64_t t2 = bench_ns();
        for (size_t i = 0; i < fit && !rc; i++) {
            const void *d;
            size_t len;
            rc = shoal_get(refs[i], &d, &len);
            if (rc == 0)
                shoal_advise_cold(refs[i]);   /* no pointer kept: it may go out again */
        }
        uint64_t t3 = bench_ns();
        shoal_stats_get(&s2, sizeof s2);
        if (rc)
            snprintf(errbuf, sizeof errbuf, "%s", shoal_last_error());
        for (size_t i = 0; i < total - fit; i++)
            shoal_release(refs[i]);
        free(refs);
        shoal_shutdown();
        if (rc)
            break;
        sv[n] = gbps(s1.spilled_bytes - s0.spilled_bytes, t1 - t0);
        rv[n] = gbps(s2.restored_bytes - s1.restored_bytes, t3 - t2);
        if (getenv("BENCH_IO_DEBUG"))
            bench_progress("rep %d: spill %.3f GB/s vs %.3f (%.2fx), process grew %lld MiB "
                           "meanwhile; restore %.3f vs %.3f (%.2fx), spilled %llu MiB while "
                           "restoring %llu MiB", rep, sv[n], wb[n], sv[n] / wb[n],
                           (long long)(rss1 - rss0) >> 20, rv[n], rb[n], rv[n] / rb[n],
                           (unsigned long long)((s2.spilled_bytes - s1.spilled_bytes) >> 20),
                           (unsigned long long)((s2.restored_bytes - s1.restored_bytes) >> 20));
        n++;
    }
    if (n == 0) {
        if (!errbuf[0])
            snprintf(errbuf, sizeof errbuf, "skipped: the program used its time budget");
        bench_emit_error("spill", "shoal (4 MiB objects)", "GB/s", SPILL_WB, errbuf);
        bench_emit_error("restore", "shoal (4 MiB objects)", "GB/s", SPILL_RB, errbuf);
    } else {
        bench_emit("spill", SPILL_WB, "GB/s", wb, n, SPILL_WB);
        bench_emit("spill", "shoal (4 MiB objects)", "GB/s", sv, n, SPILL_WB);
        bench_emit("restore", SPILL_RB, "GB/s", rb, n, SPILL_RB);
        bench_emit("restore", "shoal (4 MiB objects)", "GB/s", rv, n, SPILL_RB);
    }
    free(buf);
}

/* ---- latency of a task that depends on a file read ----------------------------------------- */

static _Atomic int busy_stop;
static _Atomic int busy_inflight;
static _Atomic uint64_t started_at;

static int spin_task(shoal_task *t)
{
    (void)t;
    uint64_t end = bench_ns() + 100000;   /* 100 us of work */
    while (bench_ns() < end)
        BENCH_KEEP(end);
    atomic_fetch_sub_explicit(&busy_inflight, 1, memory_order_relaxed);
    return 0;
}

/* Keeps the workers busy from outside: always a few 100 us tasks queued, submitted through
 * the same queue the file-dependent task arrives by. (Tasks that resubmit themselves from
 * inside would starve that queue: a worker whose own deque never empties does not look at
 * the injection queue, see the report.) */
static void *feeder(void *arg)
{
    unsigned depth = *(unsigned *)arg;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed)) {
        if ((unsigned)atomic_load_explicit(&busy_inflight, memory_order_relaxed) >= depth) {
            sched_yield();
            continue;
        }
        shoal_ref r;
        atomic_fetch_add_explicit(&busy_inflight, 1, memory_order_relaxed);
        if (shoal_submit(spin_task, NULL, 0, NULL, &r) == 0)
            shoal_release(r);
        else
            atomic_fetch_sub_explicit(&busy_inflight, 1, memory_order_relaxed);
    }
    return NULL;
}

static int reader_task(shoal_task *t)
{
    atomic_store_explicit(&started_at, bench_ns(), memory_order_relaxed);
    const void *d;
    size_t n;
    return shoal_task_arg(t, 0, &d, &n) ? 1 : 0;
}

static void latency(const char *small)
{
    int reps = bench_quick() ? 50 : 200;
    for (int busy = 0; busy <= 1; busy++) {
        if (start(256 * MiB, 1, NULL)) {
            bench_emit_error("file-read task latency", busy ? "busy: task start" : "idle: task start",
                             "us", NULL, errbuf);
            return;
        }
        atomic_store(&busy_stop, 0);
        pthread_t th;
        unsigned depth = 4;   /* two queued 100 us tasks per worker */
        if (busy)
            pthread_create(&th, NULL, feeder, &depth);
        usleep(20000);
        double v[1024], w[1024];
        int n = 0;
        for (int i = 0; i < reps; i++) {
            shoal_ref f, res;
            const void *d;
            size_t len;
            uint64_t t0 = bench_ns();
            shoal_arg a;
            if (shoal_put_file(small, 0, 0, &f))
                break;
            a = SHOAL_REF(f);
            if (shoal_submit(reader_task, &a, 1, NULL, &res))
                break;
            shoal_release(f);
            if (shoal_get(res, &d, &len))
                break;
            uint64_t t1 = bench_ns();
            v[n] = (double)(atomic_load(&started_at) - t0) / 1000.0;
            w[n] = (double)(t1 - t0) / 1000.0;
            n++;
            shoal_release(res);
        }
        atomic_store(&busy_stop, 1);
        if (busy)
            pthread_join(th, NULL);
        shoal_shutdown();
        if (n == 0) {
            bench_emit_error("file-read task latency", busy ? "busy: task start" : "idle: task start",
                             "us", NULL, shoal_last_error());
            continue;
        }
        /* The idle and the busy latencies are measured in blocks of their own (the feeder
         * runs for the whole busy block): compared by medians. */
        bench_emit_unpaired("file-read task latency", busy ? "busy: task start" : "idle: task start",
                            "us", v, n, "idle: task start");
        bench_emit_unpaired("file-read task latency",
                            busy ? "busy: result ready" : "idle: result ready", "us", w, n,
                            "idle: result ready");
    }
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "io");
    setenv("SHOAL_QUIET", "1", 0);
    const char *base = getenv("BENCH_IO_DIR") ? getenv("BENCH_IO_DIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/shoal-bench-io-XXXXXX", base);
    if (!mkdtemp(dir)) {
        bench_emit_error("ingest buffered", "pread", "GB/s", NULL, strerror(errno));
        return 1;
    }
    file_bytes = bench_quick() ? 64 * MiB : 256 * MiB;
    char in[300], out[300], scratch[300], small[300];
    path_of(in, sizeof in, "in");
    path_of(out, sizeof out, "out");
    path_of(scratch, sizeof scratch, "scratch");
    path_of(small, sizeof small, "small");
    if (make_file(in, file_bytes) || make_file(small, 64 << 10)) {
        bench_emit_error("ingest buffered", "pread", "GB/s", NULL, "cannot write the test file");
        return 1;
    }
    bench_progress("files of %zu MiB in %s", file_bytes >> 20, dir);
    /* BENCH_IO_ONLY=files|spill|latency runs one part (for profiling); buffered or direct
     * only the files part's buffered or O_DIRECT half. */
    const char *only = getenv("BENCH_IO_ONLY");
    if (!only || strcmp(only, "files") == 0)
        files(in, out, 0, 1);
    else if (strcmp(only, "buffered") == 0 || strcmp(only, "direct") == 0)
        files(in, out, only[0] == 'd', only[0] == 'd');
    const char *late = "skipped: the time budget (BENCH_BUDGET_S) was used up";
    if (!only || strcmp(only, "spill") == 0) {
        if (!bench_over_budget())
            spilling(scratch);
        else
            bench_emit_error("spill", "shoal (4 MiB objects)", "GB/s", SPILL_WB, late);
    }
    if (!only || strcmp(only, "latency") == 0) {
        if (!bench_over_budget())
            latency(small);
        else
            bench_emit_error("file-read task latency", "busy: task start", "us",
                             "idle: task start", late);
    }
    unlink(in);
    unlink(out);
    unlink(scratch);
    unlink(small);
    rmdir(dir);
    return 0;
}
