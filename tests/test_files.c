/* test_files.c - files into objects and back (issue 6): shoal_put_file of small, empty,
 * offset, unaligned, large (sparse, 1 GiB outside sanitizers) and missing files; permission
 * and short-read errors; shoal_write_file and reading the file back, of pending, failed and
 * released sources; bad arguments; tasks taking a file object as a REF argument; and every
 * case again on the pread/pwrite fallback (SHOAL_NO_IO_URING=1) and on buffered I/O
 * (SHOAL_IO_DIRECT=0); a buffered ingest of a cached file that wakes no io_uring worker;
 * ingests run by the caller waiting for them (an untimed shoal_get), alone and racing
 * other threads' ingests. Temp files live under a fresh /tmp directory, removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <spawn.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "../io/io.h"
#include "lib/check.h"

static char dir[64];

static void make_dir(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/shoal-files-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void path_of(char *out, size_t n, const char *name)
{
    make_dir();
    snprintf(out, n, "%s/%s", dir, name);
}

/* Write n pattern bytes of (who, seq) to a new file. */
static void write_pattern(const char *path, size_t n, uint64_t who, uint64_t seq)
{
    unsigned char *b = malloc(n ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pat_fill(b, n, who, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, b + done, n - done);
        CU_ASSERT_FATAL(w > 0);
        done += (size_t)w;
    }
    close(fd);
    free(b);
}

/* Start a runtime for a test; env forces the fallback or buffered I/O when set. */
static int mode;   /* 0 io_uring + O_DIRECT, 1 fallback, 2 buffered only, 3 eventfd doorbell */
/* The test config in the I/O mode under test (its environment set), store bytes 0 = the
 * test config's. */
static shoal_config io_config(size_t store)
{
    unsetenv("SHOAL_NO_IO_URING");
    unsetenv("SHOAL_IO_DIRECT");
    unsetenv("SHOAL_IO_EVENTFD");
    if (mode == 3)
        setenv("SHOAL_IO_EVENTFD", "1", 1);
    if (mode == 1)
        setenv("SHOAL_NO_IO_URING", "1", 1);
    if (mode == 2)
        setenv("SHOAL_IO_DIRECT", "0", 1);
    shoal_config c = shoal_test_config();
    if (store)
        c.store_bytes = store;
    return c;
}

static void stop(void)
{
    CHECK_OK(shoal_shutdown());
    unsetenv("SHOAL_NO_IO_URING");
    unsetenv("SHOAL_IO_DIRECT");
    unsetenv("SHOAL_IO_EVENTFD");
}

/* With untimed set, the gets below have no time limit: a caller that waits so runs an
 * ingest the I/O thread has not started itself (io/file.c, shoal__ingest_take); the
 * suite's watchdog bounds them. Otherwise they are bounded gets, which only wait. */
static int untimed;
static int get_ingest(shoal_ref r, const void **d, size_t *n)
{
    return untimed ? shoal_get(r, d, n) : get_within(r, d, n);
}

/* Ingest path at [off, off+len) and check it is the (who, seq) pattern from byte off. */
static void check_ingest(const char *path, uint64_t off, size_t len, size_t want_len,
                         uint64_t who, uint64_t seq)
{
    shoal_ref r;
    ASSERT_OK(shoal_put_file(path, off, len, &r));
    const void *d;
    size_t n;
    ASSERT_OK(get_ingest(r, &d, &n));
    CU_ASSERT_EQUAL(n, want_len);
    const unsigned char *b = d;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++)
        ok = b[i] == pat_byte(who, seq, off + i);
    CU_ASSERT(ok);
    CHECK_OK(shoal_release(r));
}

static void cases_small(void)
{
    char p[128];
    path_of(p, sizeof p, "small");
    write_pattern(p, 1000, 1, mode);
    check_ingest(p, 0, 0, 1000, 1, mode);        /* whole file */
    check_ingest(p, 0, 1000, 1000, 1, mode);     /* explicit length */
    check_ingest(p, 10, 0, 990, 1, mode);        /* offset to EOF */
    check_ingest(p, 999, 1, 1, 1, mode);         /* last byte */
    check_ingest(p, 1000, 0, 0, 1, mode);        /* offset at EOF: an empty object */
    path_of(p, sizeof p, "empty");
    write_pattern(p, 0, 1, mode);
    check_ingest(p, 0, 0, 0, 1, mode);
}

static void cases_medium(void)
{
    char p[128];
    path_of(p, sizeof p, "medium");
    size_t n = (5u << 20) + 123;   /* several chunks and a tail that is not a whole block */
    write_pattern(p, n, 2, mode);
    check_ingest(p, 0, 0, n, 2, mode);
    check_ingest(p, 4096, 0, n - 4096, 2, mode);          /* aligned offset: direct */
    check_ingest(p, 12345, 3u << 20, 3u << 20, 2, mode);  /* unaligned: buffered */
    check_ingest(p, 0, 20000, 20000, 2, mode);
}

static void test_ingest(void)
{
    test_start(io_config(0));
    cases_small();
    cases_medium();
    stop();
}

/* A 1 GiB sparse file reads as zeros (a scaled-down 64 MiB one under sanitizers, where the
 * store must stay small). */
static void test_ingest_large_sparse(void)
{
    size_t size = SAN_DIV == 1 ? (size_t)1 << 30 : (size_t)64 << 20;
    test_start(io_config(size + size / 2));
    char p[128];
    path_of(p, sizeof p, "sparse");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(ftruncate(fd, (off_t)size) == 0);
    /* A few marks so a misplaced chunk shows. */
    for (uint64_t at = 0; at < size; at += size / 8) {
        uint64_t v = at ^ 0x5a5a5a5a5a5a5a5aull;
        CU_ASSERT_FATAL(pwrite(fd, &v, sizeof v, (off_t)at) == sizeof v);
    }
    close(fd);
    shoal_ref r;
    ASSERT_OK(shoal_put_file(p, 0, 0, &r));
    const void *d;
    size_t n;
    ASSERT_OK(get_within(r, &d, &n));
    CU_ASSERT_EQUAL(n, size);
    const unsigned char *b = d;
    int ok = 1;
    for (uint64_t at = 0; at < size && ok; at += 4096) {
        if (at % (size / 8) == 0) {
            uint64_t v;
            memcpy(&v, b + at, sizeof v);
            ok = v == (at ^ 0x5a5a5a5a5a5a5a5aull);
        } else {
            ok = b[at] == 0 && b[at + 4095] == 0;
        }
    }
    CU_ASSERT(ok);
    CHECK_OK(shoal_release(r));
    unlink(p);
    stop();
}

/* File errors fail the object with SHOAL_EIO and a message naming the path and errno. */
static void expect_eio(const char *path, uint64_t off, size_t len, const char *needle)
{
    shoal_ref r;
    ASSERT_OK(shoal_put_file(path, off, len, &r));
    const void *d = NULL;
    size_t n;
    CHECK_RC(get_ingest(r, &d, &n), SHOAL_EIO);
    const char *m = shoal_last_error();
    if (!strstr(m, path) || !strstr(m, needle))
        fprintf(stderr, "message '%s' lacks '%s' or '%s'\n", m, path, needle);
    CU_ASSERT(strstr(m, path) != NULL);
    CU_ASSERT(strstr(m, needle) != NULL);
    /* shoal_wait counts a failed object as ready; a second get says the same. */
    bool ready = false;
    CHECK_RC(shoal_wait(&r, 1, 1, 0, &ready), 1);
    CHECK_RC(get_within(r, &d, &n), SHOAL_EIO);
    CHECK_OK(shoal_release(r));
}

static void cases_errors(void);
static void test_ingest_errors(void)
{
    test_start(io_config(0));
    cases_errors();
    stop();
}

static void cases_errors(void)
{
    char p[128];
    path_of(p, sizeof p, "does-not-exist");
    expect_eio(p, 0, 0, "errno 2");
    path_of(p, sizeof p, "short");
    write_pattern(p, 5000, 3, 0);
    expect_eio(p, 0, 6000, "short read");          /* more than the file holds */
    expect_eio(p, 4096, 5000, "short read");
    expect_eio(p, 6000, 0, "beyond the end");
    make_dir();
    expect_eio(dir, 0, 0, "errno 21");            /* a directory: EISDIR */
    unlink(p);
}

/* Permission denied names errno 13. Root reads a mode-0 file anyway, so the check runs in
 * a child (this program again, spawned: TSan breaks in forked children) that drops to
 * nobody first. */
static int child_eacces(const char *p)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 3;
    shoal_config c = shoal_test_config();
    if (shoal_init(&c) != 0)
        return 4;
    shoal_ref r;
    const void *d;
    size_t n;
    int ok = shoal_put_file(p, 0, 0, &r) == 0 && get_within(r, &d, &n) == SHOAL_EIO &&
             strstr(shoal_last_error(), "errno 13") && strstr(shoal_last_error(), p);
    if (!ok)
        fprintf(stderr, "child: %s\n", shoal_last_error());
    shoal_shutdown();
    return ok ? 0 : 1;
}

/* Threads of this process that io_uring made to run requests it could not complete at once
 * (named iou-wrk-<tid>). */
static int ring_workers(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[300], comm[32] = "";
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, "iou-wrk", 7) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* In a fresh process: a buffered put_file of a cached file runs every step on the I/O
 * thread itself (open, stat, reads, close) and hands nothing to io_uring's worker threads,
 * whose wake-ups cost scheduler turns before the first byte moves (a statx on the ring
 * always went there). Exit 0 when no such thread appeared. */
static int child_inline(const char *p)
{
    /* io_uring opens a path at once only from the dentry cache, which overlayfs and network
     * file systems decline (their opens and closes go to a worker): nothing to check there. */
    struct statfs sf;
    if (statfs(p, &sf) == 0 && (sf.f_type == 0x794c7630 /* overlayfs */ ||
                                sf.f_type == 0x6969 /* NFS */ ||
                                sf.f_type == 0x65735546 /* FUSE */)) {
        fprintf(stderr, "child: skipped on this file system (type 0x%lx)\n", (long)sf.f_type);
        return 0;
    }
    setenv("SHOAL_IO_DIRECT", "0", 1);
    shoal_config c = shoal_test_config();
    if (shoal_init(&c) != 0)
        return 4;
    int before = ring_workers();
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        shoal_ref r;
        const void *d;
        size_t n;
        ok = shoal_put_file(p, 0, 0, &r) == 0 && get_within(r, &d, &n) == 0 && n == (2u << 20);
        if (!ok)
            fprintf(stderr, "child: %s\n", shoal_last_error());
        else
            shoal_release(r);
    }
    int after = ring_workers();
    shoal_shutdown();
    if (ok && after > before)
        fprintf(stderr, "child: %d io_uring worker thread(s) appeared during the ingests\n",
                after - before);
    return ok ? (after > before ? 1 : 0) : 2;
}

static void test_ingest_inline(void)
{
    char p[128];
    path_of(p, sizeof p, "inline");
    write_pattern(p, 2u << 20, 4, 0);
    int fd = open(p, O_RDONLY);   /* read once: the child's reads hit the page cache */
    CU_ASSERT_FATAL(fd >= 0);
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    test_reset();
    char *argv[] = { (char *)"test_files", (char *)"inline", p, NULL };
    pid_t pid;
    CU_ASSERT_FATAL(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) == 0);
    int st = 0;
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unlink(p);
}

static void test_ingest_eacces(void)
{
    char p[128];
    path_of(p, sizeof p, "secret");
    write_pattern(p, 100, 3, 0);
    CU_ASSERT_FATAL(chmod(p, 0) == 0);
    CU_ASSERT_FATAL(chmod(dir, 0755) == 0);
    test_reset();
    char *argv[] = { (char *)"test_files", (char *)"eacces", p, NULL };
    pid_t pid;
    CU_ASSERT_FATAL(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) == 0);
    int st = 0;
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    chmod(dir, 0700);
    unlink(p);
}

static void test_bad_args(void)
{
    test_start(io_config(0));
    shoal_ref r = { 777 }, done = { 778 };
    CHECK_RC(shoal_put_file(NULL, 0, 0, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_put_file("", 0, 0, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_put_file("/tmp/x", 0, 0, NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_put_file("/tmp/x", UINT64_MAX, 0, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_put_file("/tmp/x", 0, SIZE_MAX, &r), SHOAL_EINVAL);
    CHECK_RC(shoal_put_file("/tmp/x", 0, (size_t)1 << 40, &r), SHOAL_EINVAL);   /* > store */
    char *longp = malloc(5000);
    memset(longp, 'a', 4999);
    longp[4999] = 0;
    CHECK_RC(shoal_put_file(longp, 0, 0, &r), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(r.id, 777);
    shoal_ref obj;
    ASSERT_OK(shoal_put("x", 1, &obj));
    CHECK_RC(shoal_write_file(obj, NULL, &done), SHOAL_EINVAL);
    CHECK_RC(shoal_write_file(obj, "", &done), SHOAL_EINVAL);
    CHECK_RC(shoal_write_file(obj, "/tmp/x", NULL), SHOAL_EINVAL);
    CHECK_RC(shoal_write_file(obj, longp, &done), SHOAL_EINVAL);
    CHECK_RC(shoal_write_file(SHOAL_REF_NULL, "/tmp/x", &done), SHOAL_EINVAL);
    CU_ASSERT_EQUAL(done.id, 778);
    CHECK_OK(shoal_release(obj));
    ASSERT_RC2(shoal_write_file(obj, "/tmp/x", &done), SHOAL_ESTALE, SHOAL_EINVAL);
    CHECK_RC(shoal_advise_cold(SHOAL_REF_NULL), SHOAL_EINVAL);
    free(longp);
    stop();
    /* Outside a runtime. */
    CHECK_RC(shoal_put_file("/tmp/x", 0, 0, &r), SHOAL_ENOTINIT);
    CHECK_RC(shoal_write_file(obj, "/tmp/x", &done), SHOAL_ENOTINIT);
    CHECK_RC(shoal_advise_cold(obj), SHOAL_ENOTINIT);
}

/* Read a file whole into malloc'd memory. */
static unsigned char *slurp(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    fstat(fd, &st);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, b + done, (size_t)st.st_size - done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    close(fd);
    *n = done;
    return b;
}

static void export_and_check(size_t len, uint64_t seq)
{
    char p[128];
    path_of(p, sizeof p, "export");
    void *buf;
    shoal_ref obj, done;
    ASSERT_OK(shoal_create(len, &buf, &obj));
    pat_fill(buf, len, 4, seq);
    ASSERT_OK(shoal_seal(obj));
    ASSERT_OK(shoal_write_file(obj, p, &done));
    CHECK_OK(shoal_release(obj));   /* the write holds its own reference */
    const void *d;
    size_t n = 99;
    ASSERT_OK(get_within(done, &d, &n));
    CU_ASSERT_EQUAL(n, 0);
    CHECK_OK(shoal_release(done));
    size_t got;
    unsigned char *b = slurp(p, &got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(got, len);
    CU_ASSERT(got == len && pat_ok(b, len, 4, seq));
    free(b);
    /* And back in through put_file. */
    check_ingest(p, 0, 0, len, 4, seq);
    unlink(p);
}

static void test_export(void)
{
    test_start(io_config(0));
    size_t sizes[] = { 0, 1, 4095, 4096, 16384, 100000, (3u << 20) + 17, 8u << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        export_and_check(sizes[i], i);
    /* An existing longer file is truncated. */
    export_and_check(10, 99);
    stop();
}

static void test_export_pending_and_failed(void)
{
    test_start(io_config(0));
    char src[128], dst[128];
    path_of(src, sizeof src, "chain-src");
    path_of(dst, sizeof dst, "chain-dst");
    write_pattern(src, 300000, 5, 0);
    /* Export an object still being read: the write waits for it. */
    shoal_ref in, done;
    ASSERT_OK(shoal_put_file(src, 0, 0, &in));
    ASSERT_OK(shoal_write_file(in, dst, &done));
    CHECK_OK(shoal_release(in));
    const void *d;
    size_t n;
    ASSERT_OK(get_within(done, &d, &n));
    CHECK_OK(shoal_release(done));
    size_t got;
    unsigned char *b = slurp(dst, &got);
    CU_ASSERT(b && got == 300000 && pat_ok(b, got, 5, 0));
    free(b);
    /* A failed source fails the write with its message. */
    char missing[128];
    path_of(missing, sizeof missing, "missing");
    ASSERT_OK(shoal_put_file(missing, 0, 0, &in));
    ASSERT_OK(shoal_write_file(in, dst, &done));
    CHECK_RC(get_within(done, &d, &n), SHOAL_EIO);
    CU_ASSERT(strstr(shoal_last_error(), "missing") != NULL);
    CHECK_OK(shoal_release(done));
    CHECK_OK(shoal_release(in));
    /* A destination that cannot be created. */
    shoal_ref obj;
    ASSERT_OK(shoal_put("abc", 3, &obj));
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/file", dir);
    ASSERT_OK(shoal_write_file(obj, bad, &done));
    CHECK_RC(get_within(done, &d, &n), SHOAL_EIO);
    CU_ASSERT(strstr(shoal_last_error(), bad) != NULL);
    CU_ASSERT(strstr(shoal_last_error(), "errno 2") != NULL);
    CHECK_OK(shoal_release(done));
    CHECK_OK(shoal_release(obj));
    unlink(src);
    unlink(dst);
    stop();
}

/* The caller may release the ref before the read completes: the object lives on until
 * the read ends and then goes; nothing leaks (objects_live back to 0). */
static void test_release_early(void)
{
    test_start(io_config(0));
    char p[128];
    path_of(p, sizeof p, "early");
    write_pattern(p, 2u << 20, 6, 0);
    for (int i = 0; i < 20; i++) {
        shoal_ref r;
        ASSERT_OK(shoal_put_file(p, 0, 0, &r));
        CHECK_OK(shoal_release(r));
    }
    /* Wait until the I/O thread has finished them all. */
    for (int i = 0; i < 5000 && info_now().objects_live != 0; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    unlink(p);
    stop();
}

/* Shutdown with reads and writes still in flight: it waits for them, nothing leaks (the
 * sanitizer builds check), and the next init works. */
static void test_shutdown_in_flight(void)
{
    test_start(io_config(256u << 20));
    char p[128], q[128];
    path_of(p, sizeof p, "inflight");
    path_of(q, sizeof q, "inflight-out");
    write_pattern(p, 8u << 20, 8, 0);
    shoal_ref r[10], obj, done;
    for (int i = 0; i < 10; i++)
        ASSERT_OK(shoal_put_file(p, 0, 0, &r[i]));
    void *buf;
    ASSERT_OK(shoal_create(4u << 20, &buf, &obj));
    memset(buf, 1, 4u << 20);
    ASSERT_OK(shoal_seal(obj));
    ASSERT_OK(shoal_write_file(obj, q, &done));
    CHECK_OK(shoal_shutdown());
    test_start(io_config(0));
    check_ingest(p, 0, 0, 8u << 20, 8, 0);
    unlink(p);
    unlink(q);
    stop();
}

/* Shutdown while a write waits for a source nobody will complete (created, never sealed):
 * the write's result is failed and its state freed, as a task waiting on such an argument is
 * canceled, and so is a second write of that write's result (which the first's cancel
 * fires). Before, each such write leaked its state (about 1.8 KiB). Under ASan the leak
 * check says so; in a plain build, rounds with such writes must not grow the heap more than
 * as many rounds without them (init and shutdown alone grow it a little, evenly). */
#if defined(__SANITIZE_ADDRESS__)
int __lsan_do_recoverable_leak_check(void);
#endif
static size_t waiting_rounds(int n, bool write)
{
    size_t before = mallinfo2().uordblks;
    for (int round = 0; round < n; round++) {
        test_start(io_config(0));
        char q[128];
        path_of(q, sizeof q, "waiting-out");
        void *buf;
        shoal_ref obj, done;
        ASSERT_OK(shoal_create(4096, &buf, &obj));
        if (write) {
            /* and a second write of the first one's result, which the first's cancel fires */
            shoal_ref done2;
            char q2[128];
            path_of(q2, sizeof q2, "waiting-out2");
            ASSERT_OK(shoal_write_file(obj, q, &done));
            ASSERT_OK(shoal_write_file(done, q2, &done2));
            const void *d;
            size_t len;
            CHECK_RC(shoal_get_timeout(done2, 1000000, &d, &len), SHOAL_ETIMEDOUT);
            unlink(q2);
        }
        CHECK_OK(shoal_shutdown());
        unlink(q);
    }
    size_t after = mallinfo2().uordblks;
    return after > before ? after - before : 0;
}

static void test_shutdown_with_write_waiting(void)
{
    waiting_rounds(16, false);   /* warm-up: caches that a first few inits fill */
    size_t plain = waiting_rounds(16, false), with = waiting_rounds(16, true);
    if (with > plain + 12 * 1024) {
        fprintf(stderr, "16 rounds: heap +%zu bytes with a waiting write, +%zu without\n",
                with, plain);
        CU_FAIL("a write waiting at shutdown leaked its state");
    }
#if defined(__SANITIZE_ADDRESS__)
    CU_ASSERT_EQUAL(__lsan_do_recoverable_leak_check(), 0);
#endif
    unsetenv("SHOAL_NO_IO_URING");
    unsetenv("SHOAL_IO_DIRECT");
    unsetenv("SHOAL_IO_EVENTFD");
}

/* A write whose source completes when no I/O engine takes its start (the post of its
 * dependency's firing fails, as at an engine that stopped; the hook stands in for that
 * moment): it ends on the completing thread, its result failed SHOAL_ECANCELED (a get of it
 * wakes) and its record and its hold on the source gone. It failed before: the post's
 * answer was dropped, the get waited out its limit (SHOAL_ETIMEDOUT) and the source's
 * reference and the record leaked (objects_live stayed 2). */
static int refuse_post(void)
{
    return shoal__err(SHOAL_ENOTINIT, "test: no I/O engine takes the write");
}

static void test_export_fire_not_posted(void)
{
    test_start(io_config(0));
    char p[128];
    path_of(p, sizeof p, "never-started");
    unlink(p);
    shoal_ref src, done;
    void *buf;
    ASSERT_OK(shoal_create(16, &buf, &src));
    memset(buf, 7, 16);
    ASSERT_OK(shoal_write_file(src, p, &done));   /* waits for the seal */
    shoal__export_post_hook = refuse_post;
    int rc = shoal_seal(src);                     /* fires the write: its post fails */
    shoal__export_post_hook = NULL;
    CHECK_OK(rc);
    const void *d;
    size_t n;
    CHECK_RC(get_within(done, &d, &n), SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), p) != NULL);
    CU_ASSERT(strstr(shoal_last_error(), "I/O engine") != NULL);
    CHECK_OK(shoal_release(done));
    CHECK_OK(shoal_release(src));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CU_ASSERT(access(p, F_OK) != 0);              /* never created */
    stop();
#if defined(__SANITIZE_ADDRESS__)
    CU_ASSERT_EQUAL(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* A task takes a file object as a REF argument before it is ready. */
static int sum_task(shoal_task *t)
{
    const void *d;
    size_t n;
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((const unsigned char *)d)[i];
    return shoal_task_return(t, &s, sizeof s);
}

static void test_task_arg(void)
{
    test_start(io_config(0));
    char p[128];
    path_of(p, sizeof p, "taskarg");
    size_t len = 1u << 20;
    write_pattern(p, len, 7, 0);
    unsigned char *b = malloc(len);
    pat_fill(b, len, 7, 0);
    uint64_t want = 0;
    for (size_t i = 0; i < len; i++)
        want += b[i];
    free(b);
    shoal_ref f, res;
    ASSERT_OK(shoal_put_file(p, 0, 0, &f));
    shoal_arg a = SHOAL_REF(f);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    CHECK_OK(shoal_release(f));
    const void *d;
    size_t n;
    ASSERT_OK(get_within(res, &d, &n));
    CU_ASSERT_EQUAL(n, sizeof want);
    CU_ASSERT(n == sizeof want && memcmp(d, &want, sizeof want) == 0);
    CHECK_OK(shoal_release(res));
    /* A task whose file argument fails does not run; its result carries the message. */
    char missing[128];
    path_of(missing, sizeof missing, "task-missing");
    ASSERT_OK(shoal_put_file(missing, 0, 0, &f));
    a = SHOAL_REF(f);
    ASSERT_OK(shoal_submit(sum_task, &a, 1, NULL, &res));
    int rc = get_within(res, &d, &n);
    CU_ASSERT(rc == SHOAL_EIO || rc == SHOAL_ETASK);
    CU_ASSERT(strstr(shoal_last_error(), "task-missing") != NULL);
    CHECK_OK(shoal_release(res));
    CHECK_OK(shoal_release(f));
    unlink(p);
    stop();
}

/* A write to a character device that takes bytes but cannot be synced (/dev/null, whose
 * fsync answers EINVAL) completes: the bytes were written and there is nothing to sync.
 * It failed: "shoal_write_file: fsync of '/dev/null': Invalid argument (errno 22)". A
 * device that refuses the bytes still fails with the write's error. */
static void export_to_devices(void)
{
    test_start(io_config(0));
    size_t sizes[] = { 0, 10, (2u << 20) + 5 };   /* the last one large enough for O_DIRECT */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *b = calloc(1, sizes[i] + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        shoal_ref src, done;
        ASSERT_OK(shoal_put(b, sizes[i], &src));
        free(b);
        ASSERT_OK(shoal_write_file(src, "/dev/null", &done));
        const void *d;
        size_t n;
        int rc = get_within(done, &d, &n);
        if (rc)
            fprintf(stderr, "mode %d, %zu bytes to /dev/null: %s\n", mode, sizes[i],
                    shoal_last_error());
        CU_ASSERT_EQUAL(rc, 0);
        CHECK_OK(shoal_release(done));
        if (sizes[i]) {   /* /dev/full takes no byte: the write's ENOSPC, not the sync's */
            ASSERT_OK(shoal_write_file(src, "/dev/full", &done));
            CU_ASSERT_EQUAL(get_within(done, &d, &n), SHOAL_EIO);
            CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "writing '/dev/full'"));
            CHECK_OK(shoal_release(done));
        }
        CHECK_OK(shoal_release(src));
    }
    stop();
}

static void test_export_device(void)
{
    for (mode = 0; mode < 2; mode++)   /* io_uring, then the pread/pwrite fallback */
        export_to_devices();
    mode = 0;
}

/* The ingest cases in I/O mode m on a runtime of their own (and the error cases). */
static void ingest_cases(int m, bool errors)
{
    mode = m;
    test_start(io_config(0));
    cases_small();
    cases_medium();
    if (errors)
        cases_errors();
    stop();
}

/* The same cases on the pread/pwrite helper thread and on buffered I/O. */
static void run_modes(int m)
{
    ingest_cases(m, false);
    test_export();
    mode = m;
    test_export_pending_and_failed();
    mode = 0;
}

/* Every ingest case with untimed gets, so that the waiting caller runs the ingests (with
 * the I/O thread reading part of a buffered one): io_uring and O_DIRECT (the caller opens
 * and allocates, the ring reads), buffered, and the fallback. */
static void test_ingest_by_caller(void)
{
    untimed = 1;
    for (int m = 0; m <= 2; m++)
        ingest_cases(m, true);
    mode = 0;
    untimed = 0;
}

/* Bytes thread tid of this process has read through read(2)-like calls
 * (/proc/self/task/TID/io rchar), or -1; thread_rchar: the calling thread's. */
static long long task_rchar(int tid)
{
    char p[64], line[128];
    snprintf(p, sizeof p, "/proc/self/task/%d/io", tid);
    FILE *f = fopen(p, "r");
    long long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "rchar:", 6) == 0)
            v = atoll(line + 6);
    fclose(f);
    return v;
}

static long long thread_rchar(void) { return task_rchar((int)gettid()); }

/* A caller that waits (no time limit) for a buffered ingest of a cached file the I/O
 * thread has not started reads at least part of it itself: it would only sleep meanwhile,
 * and the two hand-offs of leaving it all to the I/O thread (its wake-up, then the
 * caller's) each wait for a turn of the scheduler, up to milliseconds on a busy machine.
 * The I/O thread may win the race to start an ingest now and then: one taken of 20 tries
 * is the property (before, the caller never read a byte: the I/O thread's ring reads do
 * not count in any thread's rchar, the caller's preadv2 do). */
static void test_caller_reads(void)
{
    long long probe = thread_rchar();
    if (probe < 0) {
        fprintf(stderr, "no /proc/thread-self/io here: skipped\n");
        return;
    }
    char p[128];
    path_of(p, sizeof p, "cached");
    size_t size = (8u << 20) + 4321;
    write_pattern(p, size, 7, 1);
    mode = 2;
    test_start(io_config(0));
    int taken = 0;
    for (int i = 0; i < 20 && !taken; i++) {
        shoal_ref r;
        const void *d;
        size_t n;
        long long before = thread_rchar();
        ASSERT_OK(shoal_put_file(p, 0, 0, &r));
        ASSERT_OK(shoal_get(r, &d, &n));   /* untimed: the suite's watchdog bounds it */
        taken = thread_rchar() - before >= (1 << 20);
        CU_ASSERT_EQUAL(n, size);
        const unsigned char *b = d;
        int ok = 1;
        for (size_t k = 0; k < n && ok; k += 4093)
            ok = b[k] == pat_byte(7, 1, k);
        CU_ASSERT(ok && b[n - 1] == pat_byte(7, 1, n - 1));
        CHECK_OK(shoal_release(r));
    }
    CU_ASSERT(taken);
    stop();
    mode = 0;
    unlink(p);
}

/* Threads racing ingests of one file: each put_file is then waited for with no time limit
 * (taken by the caller, or not, and read by it with the I/O thread), with a bound (left to
 * the I/O thread), or not at all (released at once: the I/O thread runs it for nobody).
 * Every waited-for object holds the file's bytes; nothing leaks (ASan), no race (TSan). */
struct racer { const char *path; size_t size; int id, bad; };

static void *racer_main(void *arg)
{
    struct racer *rc = arg;
    for (int i = 0; i < 24; i++) {
        shoal_ref r;
        const void *d;
        size_t n;
        if (shoal_put_file(rc->path, 0, 0, &r) != 0) {
            rc->bad++;
            continue;
        }
        int how = (i + rc->id) % 3;
        int got = how == 0 ? shoal_get(r, &d, &n) : how == 1 ? get_within(r, &d, &n) : 1;
        if (got == 0) {
            const unsigned char *b = d;
            if (n != rc->size || b[0] != pat_byte(8, 0, 0) ||
                b[n / 2] != pat_byte(8, 0, n / 2) || b[n - 1] != pat_byte(8, 0, n - 1))
                rc->bad++;
        } else if (got != 1) {
            rc->bad++;
        }
        if (shoal_release(r) != 0)
            rc->bad++;
    }
    return NULL;
}

static void test_ingest_races(void)
{
    char p[128];
    path_of(p, sizeof p, "raced");
    size_t size = (3u << 20) + 777;
    write_pattern(p, size, 8, 0);
    for (int m = 0; m <= 2; m += 2) {   /* O_DIRECT and buffered */
        mode = m;
        test_start(io_config(0));
        struct racer rc[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            rc[i] = (struct racer){ .path = p, .size = size, .id = i };
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, racer_main, &rc[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CU_ASSERT_EQUAL(rc[i].bad, 0);
        }
        stop();
    }
    mode = 0;
    unlink(p);
}

static void test_fallback(void) { run_modes(1); }
static void test_buffered(void) { run_modes(2); }
/* The doorbell as an eventfd read kept in the ring (kernels without io_uring futex waits). */
static void test_eventfd_bell(void) { run_modes(3); }

/* Shutdown while a waiting caller runs a buffered ingest itself (shoal__ingest_take): the
 * caller is inside shoal_get, so shutdown's quiesce waited for it to read the whole file,
 * however large. Shutdown must stop it within a bounded time: the ingest ends as canceled
 * (its get answers SHOAL_ECANCELED, as every blocked get does) after the chunk in hand;
 * before the fix the get read all of it and answered 0 (0.2 s to 49 s here, with the load).
 * A sparse file of 1 GiB. A hook holds the I/O thread before it starts the ingest until the
 * test has seen the caller read (or 15 s passed), so that the caller takes it: without it,
 * on a loaded machine the I/O thread won the race in each of five tries (then the caller
 * only waits). Tried again if it still does. */
struct big_get { const char *path; int rc, tid; _Atomic int started, done; };
static _Atomic int io_may_start;

static void hold_ingest_start(void)
{
    for (int i = 0; i < 15000 && !atomic_load(&io_may_start); i++)
        usleep(1000);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *big_get_main(void *arg)
{
    struct big_get *g = arg;
    const void *d;
    size_t n;
    shoal_ref r;
    g->tid = (int)gettid();
    g->rc = shoal_put_file(g->path, 0, 0, &r);
    atomic_store(&g->started, 1);
    if (g->rc == 0)
        g->rc = shoal_get(r, &d, &n);   /* untimed: this thread may run the ingest */
    atomic_store(&g->done, 1);
    return NULL;
}

static void test_shutdown_stops_caller_ingest(void)
{
    shoal_test_deadline(SAN_DIV > 1 ? 400 : 240);
    if (thread_rchar() < 0)
        SKIP_TEST("no /proc/thread-self/io: cannot tell whether the caller reads");
    size_t size = (size_t)1 << 30;
    char p[128];
    path_of(p, sizeof p, "huge-sparse");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(ftruncate(fd, (off_t)size) == 0);
    close(fd);
    mode = 2;   /* buffered: the caller reads, not the ring */
    bool tried = false;
    for (int attempt = 0; attempt < 5 && !tried; attempt++) {
        atomic_store(&io_may_start, 0);
        shoal__ingest_start_hook = hold_ingest_start;   /* before the I/O thread starts */
        test_start(io_config(size + (64u << 20)));
        struct big_get g = { .path = p };
        pthread_t th;
        CU_ASSERT_FATAL(pthread_create(&th, NULL, big_get_main, &g) == 0);
        while (!atomic_load(&g.started))
            usleep(1000);
        /* The caller reads once its rchar grows past a few chunks (10 s at most). */
        long long r0 = task_rchar(g.tid), r = r0;
        for (int i = 0; i < 10000 && !atomic_load(&g.done) && r - r0 < (8 << 20); i++) {
            usleep(1000);
            r = task_rchar(g.tid);
        }
        tried = r - r0 >= (8 << 20) && !atomic_load(&g.done);
        atomic_store(&io_may_start, 1);
        double t0 = now_s();
        CHECK_OK(shoal_shutdown());
        double took = now_s() - t0;
        pthread_join(th, NULL);
        shoal__ingest_start_hook = NULL;
        if (!tried)
            continue;   /* the I/O thread ran it: again */
        if (getenv("SHOAL_TEST_VERBOSE") || took >= 20.0)
            fprintf(stderr, "shutdown took %.3f s (the get's rc %d)\n", took, g.rc);
        /* The rc is what tells: before, the get read the whole file and answered 0. The
         * time is only a bound on a hang (about 0.02 s here; a loaded sanitizer build is
         * slower by far), not a measurement. */
        CU_ASSERT(took < 20.0);
        CU_ASSERT_EQUAL(g.rc, SHOAL_ECANCELED);
    }
    if (!tried)
        fprintf(stderr, "the I/O thread started the ingest in every attempt\n");
    CU_ASSERT(tried);
    unsetenv("SHOAL_IO_DIRECT");
    mode = 0;
    unlink(p);
}

/* Teardown: remove the suite's temp files. */
static int remove_dir(void) { return test_remove_dir(dir); }

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "eacces") == 0) {
        shoal_test_child_limits(120);
        return child_eacces(argv[2]);
    }
    if (argc > 2 && strcmp(argv[1], "inline") == 0) {
        shoal_test_child_limits(120);
        return child_inline(argv[2]);
    }
    static const shoal_test_case cases[] = {
        { "ingest small, empty, offsets, chunks", test_ingest },
        { "ingest a large sparse file", test_ingest_large_sparse },
        { "ingest errors: missing, short, directory", test_ingest_errors },
        { "ingest error: permission denied", test_ingest_eacces },
        { "buffered ingest of a cached file: no io_uring worker", test_ingest_inline },
        { "ingests run by the caller that waits for them", test_ingest_by_caller },
        { "a waiting caller reads a cached file itself", test_caller_reads },
        { "threads racing ingests, waited for or not", test_ingest_races },
        { "bad arguments", test_bad_args },
        { "export and read back", test_export },
        { "export to /dev/null: a device without sync", test_export_device },
        { "export of pending and failed sources", test_export_pending_and_failed },
        { "release before the read completes", test_release_early },
        { "shutdown with I/O in flight", test_shutdown_in_flight },
        { "shutdown with a write waiting for a source never sealed", test_shutdown_with_write_waiting },
        { "shutdown stops an ingest its waiting caller runs", test_shutdown_stops_caller_ingest },
        { "a write whose start no I/O engine takes fails, leaving nothing behind",
          test_export_fire_not_posted },
        { "a file object as a task argument", test_task_arg },
        { "fallback: pread/pwrite helper thread", test_fallback },
        { "buffered I/O (SHOAL_IO_DIRECT=0)", test_buffered },
        { "eventfd doorbell (SHOAL_IO_EVENTFD=1)", test_eventfd_bell },
        { NULL, NULL },
    };
    return shoal_test_run_fixture("files", cases, (shoal_test_fixture){ NULL, remove_dir });
}
