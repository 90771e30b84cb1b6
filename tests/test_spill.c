/* test_spill.c - spilling to config.spill_dir (issue 6): a 64 MiB store holding 1 GiB of live
 * objects read back intact in random order (scaled down under sanitizers); oldest first;
 * objects that were read stay resident until shoal_advise_cold; file ingest, export and
 * tasks on a full store; concurrent puts and gets; disk errors (a file-size limit) answer
 * SHOAL_ENOMEM naming the spill failure and lose nothing; spill_dir validation at init;
 * files of crashed owners removed at the next init, live owners' kept; the counters; and the
 * pread/pwrite fallback. Temp dirs live under /tmp and are removed.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"

#define MiB ((size_t)1 << 20)

static char dir[64];

static void make_dir(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/shoal-spill-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

/* Files in dir whose name starts with prefix. */
static int count_files(const char *d, const char *prefix)
{
    DIR *dp = opendir(d);
    if (!dp)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(dp);
    return n;
}

/* Disk blocks (512 B) held by this run's spill file, -1 if there is none. */
static long long spill_file_blocks(void)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return -1;
    long long b = -1;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strncmp(e->d_name, "shoal-spill-", 12) == 0) {
            char p[sizeof dir + sizeof e->d_name + 2];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (stat(p, &st) == 0)
                b = (long long)st.st_blocks;
        }
    closedir(dp);
    return b;
}

static shoal_stats stats_now(void)
{
    shoal_stats s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(shoal_stats_get(&s, sizeof s), 0);
    return s;
}

static void start(size_t store, bool fallback)
{
    test_reset();
    make_dir();
    if (fallback)
        setenv("SHOAL_NO_IO_URING", "1", 1);
    else
        unsetenv("SHOAL_NO_IO_URING");
    shoal_config c = shoal_test_config();
    c.store_bytes = store;
    c.spill_dir = dir;
    ASSERT_OK(shoal_init(&c));
}

static void stop(void)
{
    CHECK_OK(shoal_shutdown());
    unsetenv("SHOAL_NO_IO_URING");
    /* Shutdown removes this run's spill file. */
    CU_ASSERT_EQUAL(count_files(dir, "shoal-spill-"), 0);
}

/* A cheap 64-bit pattern (a 1 GiB check must not take seconds). */
static inline uint64_t word(uint64_t seq, uint64_t i)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xC2B2AE3D27D4EB4Full);
    return x ^ (x >> 31);
}

static void fill(void *p, size_t n, uint64_t seq)
{
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        w[i] = word(seq, i);
    for (size_t i = n / 8 * 8; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)seq;
}

static int intact(const void *p, size_t n, uint64_t seq)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i] != word(seq, i))
            return 0;
    for (size_t i = n / 8 * 8; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)seq)
            return 0;
    return 1;
}

static int put_obj(size_t len, uint64_t seq, shoal_ref *r)
{
    void *buf;
    int rc = shoal_create(len, &buf, r);
    if (rc)
        return rc;
    fill(buf, len, seq);
    return shoal_seal(*r);
}

/* Get, check, and declare cold again (we keep no pointer), so it may be spilled anew. */
static int read_back(shoal_ref r, size_t len, uint64_t seq)
{
    const void *d;
    size_t n;
    int rc = shoal_get(r, &d, &n);
    if (rc) {
        fprintf(stderr, "get: %s\n", shoal_last_error());
        return 0;
    }
    int ok = n == len && intact(d, n, seq);
    CU_ASSERT_EQUAL(shoal_advise_cold(r), 0);
    return ok;
}

/* The headline: live data 16x the store, every object read back intact, in random order. */
static void many_times_the_store(bool fallback, size_t total, size_t store, size_t objsz)
{
    start(store, fallback);
    shoal_stats s0 = stats_now();
    size_t n = total / objsz;
    shoal_ref *refs = calloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        int rc = put_obj(objsz - (i % 3) * 100, i, &refs[i]);
        if (rc)
            fprintf(stderr, "put %zu: %s\n", i, shoal_last_error());
        CU_ASSERT_EQUAL_FATAL(rc, 0);
    }
    shoal_stats s = stats_now();
    CU_ASSERT(s.spilled_bytes - s0.spilled_bytes >= (total - store) / 10 * 9);
    CU_ASSERT(s.spilled_now_objects > 0);
    shoal_info inf = info_now();
    CU_ASSERT(inf.bytes_used <= store);
    CU_ASSERT_EQUAL(inf.objects_live, n);   /* spilled objects are live objects */
    size_t *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    srand(42);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        bad += !read_back(refs[i], objsz - (i % 3) * 100, i);
    }
    CU_ASSERT_EQUAL(bad, 0);
    shoal_stats s2 = stats_now();
    CU_ASSERT(s2.restored_objects > s.restored_objects);
    CU_ASSERT(s2.restored_bytes > 0 && s2.spill_ns > 0 && s2.restore_ns > 0);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(shoal_release(refs[i]));
    /* A spill write still in flight holds its object until it ends. */
    for (int i = 0; i < 5000 && info_now().objects_live != 0; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CU_ASSERT_EQUAL(stats_now().spilled_now_objects, 0);
    CU_ASSERT_EQUAL(stats_now().spilled_now_bytes, 0);
    /* Freed extents give their disk space back once the spill file is idle (100 ms). */
    long long used = -1;
    for (int i = 0; i < 300; i++) {
        used = spill_file_blocks();
        if (used >= 0 && used * 512 < (long long)(8 * MiB))
            break;
        usleep(10000);
    }
    if (used * 512 >= (long long)(8 * MiB))
        fprintf(stderr, "spill file still holds %lld bytes\n", used * 512);
    CU_ASSERT(used >= 0 && used * 512 < (long long)(8 * MiB));
    free(order);
    free(refs);
    stop();
}

static void test_gib_in_64mib(void)
{
    size_t total = SAN_DIV == 1 ? (size_t)1 << 30 : 128 * MiB;
    size_t store = SAN_DIV == 1 ? 64 * MiB : 32 * MiB;
    many_times_the_store(false, total, store, MiB);
}

static void test_small_objects(void)
{
    /* Many small objects, some smaller than a block: 48 MiB in 8 KiB and 3 KiB objects. */
    start(16 * MiB, false);
    size_t n = (SAN_DIV == 1 ? 48 * MiB : 24 * MiB) / (8 << 10);
    shoal_ref *refs = calloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(put_obj(i % 2 ? 8 << 10 : 3000, i, &refs[i]));
    CU_ASSERT(stats_now().spilled_objects > 0);
    size_t bad = 0;
    for (size_t i = n; i-- > 0;)
        bad += !read_back(refs[i], i % 2 ? 8 << 10 : 3000, i);
    CU_ASSERT_EQUAL(bad, 0);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(shoal_release(refs[i]));
    free(refs);
    stop();
}

static void test_fallback(void)
{
    many_times_the_store(true, SAN_DIV == 1 ? 256 * MiB : 64 * MiB, 32 * MiB, MiB);
}

/* The oldest cold objects go first. */
static void test_oldest_first(void)
{
    start(64 * MiB, false);
    enum { N = 70 };
    shoal_ref r[N];
    shoal_stats s0 = stats_now();
    for (int i = 0; i < 56; i++)
        ASSERT_OK(put_obj(MiB, (uint64_t)i, &r[i]));
    CU_ASSERT_EQUAL(stats_now().spilled_objects, s0.spilled_objects);
    for (int i = 56; i < N; i++)   /* 70 MiB > 64: the oldest go */
        ASSERT_OK(put_obj(MiB, (uint64_t)i, &r[i]));
    shoal_stats s1 = stats_now();
    uint64_t spilled = s1.spilled_objects - s0.spilled_objects;
    CU_ASSERT(spilled >= 6 && spilled <= 20);
    /* The younger half is resident: reading it restores nothing. */
    for (int i = N - 1; i >= N / 2; i--)
        CU_ASSERT(read_back(r[i], MiB, (uint64_t)i));
    CU_ASSERT_EQUAL(stats_now().restored_objects, s1.restored_objects);
    /* The oldest ones were spilled: reading them restores them. */
    for (int i = 0; i < (int)spilled; i++)
        CU_ASSERT(read_back(r[i], MiB, (uint64_t)i));
    CU_ASSERT_EQUAL(stats_now().restored_objects, s1.restored_objects + spilled);
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_release(r[i]));
    stop();
}

/* An object someone read stays resident; advise_cold makes it a candidate again. */
static void test_read_objects_stay(void)
{
    start(64 * MiB, false);
    shoal_ref a, b;
    ASSERT_OK(put_obj(40 * MiB, 1, &a));
    const void *pa;
    size_t n;
    ASSERT_OK(shoal_get(a, &pa, &n));      /* a pointer is held from here */
    CHECK_RC(put_obj(40 * MiB, 2, &b), SHOAL_ENOMEM);
    const char *m = shoal_last_error();
    if (!strstr(m, "nothing left to spill"))
        fprintf(stderr, "message: %s\n", m);
    CU_ASSERT(strstr(m, "nothing left to spill") != NULL);
    CU_ASSERT(strstr(m, "shoal_advise_cold") != NULL);
    CU_ASSERT(intact(pa, 40 * MiB, 1));     /* still there, untouched */
    CU_ASSERT_EQUAL(stats_now().spilled_now_objects, 0);
    /* Now the caller lets go of the pointer. */
    CHECK_OK(shoal_advise_cold(a));
    CHECK_OK(shoal_advise_cold(a));         /* twice is fine */
    ASSERT_OK(put_obj(40 * MiB, 2, &b));
    CU_ASSERT_EQUAL(stats_now().spilled_now_objects, 1);
    /* Reading a back spills b (cold, never read) to make room. */
    CU_ASSERT(read_back(a, 40 * MiB, 1));
    CU_ASSERT(read_back(b, 40 * MiB, 2));
    /* get_timeout with 0 on a spilled object restores it too (a disk read, not a hang). */
    const void *d;
    ASSERT_OK(shoal_get_timeout(a, 0, &d, &n));
    CU_ASSERT(n == 40 * MiB && intact(d, n, 1));
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_release(b));
    /* advise_cold on a freed, a null and a pending ref. */
    ASSERT_RC2(shoal_advise_cold(a), SHOAL_ESTALE, SHOAL_EINVAL);
    CHECK_RC(shoal_advise_cold(SHOAL_REF_NULL), SHOAL_EINVAL);
    void *buf;
    shoal_ref c;
    ASSERT_OK(shoal_create(100, &buf, &c));
    CHECK_OK(shoal_advise_cold(c));
    CHECK_OK(shoal_seal(c));
    CHECK_OK(shoal_release(c));
    stop();
}

/* Ingest into a full store, export of a spilled object. */
static void test_files_on_a_full_store(void)
{
    start(32 * MiB, false);
    char p[128];
    snprintf(p, sizeof p, "%s/file-in", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    void *big = malloc(10 * MiB);
    fill(big, 10 * MiB, 77);
    CU_ASSERT_FATAL(write(fd, big, 10 * MiB) == (ssize_t)(10 * MiB));
    close(fd);
    shoal_ref r[3], f, done;
    for (int i = 0; i < 3; i++)
        ASSERT_OK(put_obj(10 * MiB, (uint64_t)i, &r[i]));
    shoal_stats s0 = stats_now();
    /* The read needs 10 MiB more than the store has: the I/O thread spills to make room. */
    ASSERT_OK(shoal_put_file(p, 0, 0, &f));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(f, &d, &n));
    CU_ASSERT(n == 10 * MiB && intact(d, n, 77));
    CHECK_OK(shoal_advise_cold(f));
    CU_ASSERT(stats_now().spilled_objects - s0.spilled_objects >= 1);
    /* r[0] is on disk now; writing it out restores it first. */
    snprintf(p, sizeof p, "%s/file-out", dir);
    uint64_t restored = stats_now().restored_objects;
    ASSERT_OK(shoal_write_file(r[0], p, &done));
    ASSERT_OK(shoal_get(done, &d, &n));
    CU_ASSERT_EQUAL(stats_now().restored_objects, restored + 1);
    CHECK_OK(shoal_release(done));
    fd = open(p, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(read(fd, big, 10 * MiB) == (ssize_t)(10 * MiB));
    close(fd);
    CU_ASSERT(intact(big, 10 * MiB, 0));
    for (int i = 0; i < 3; i++)
        CU_ASSERT(read_back(r[i], 10 * MiB, (uint64_t)i));
    for (int i = 0; i < 3; i++)
        CHECK_OK(shoal_release(r[i]));
    CHECK_OK(shoal_release(f));
    unlink(p);
    snprintf(p, sizeof p, "%s/file-in", dir);
    unlink(p);
    free(big);
    stop();
}

/* Tasks produce more than the store holds, other tasks read it back. */
static int produce(shoal_task *t)
{
    const void *d;
    size_t n;
    uint64_t seq;
    if (shoal_task_arg(t, 0, &d, &n) || n != sizeof seq)
        return 1;
    memcpy(&seq, d, sizeof seq);
    void *buf;
    if (shoal_task_return_buf(t, MiB, &buf))
        return shoal_task_fail(t, shoal_last_error()), 1;
    fill(buf, MiB, seq);
    return 0;
}

static int check(shoal_task *t)
{
    const void *d, *v;
    size_t n, vn;
    uint64_t seq;
    shoal_ref r;
    if (shoal_task_arg(t, 1, &v, &vn) || vn != sizeof seq || shoal_task_arg_ref(t, 0, &r))
        return 1;
    memcpy(&seq, v, sizeof seq);
    if (shoal_task_arg(t, 0, &d, &n))
        return 1;
    uint64_t ok = n == MiB && intact(d, n, seq);
    shoal_advise_cold(r);   /* we hold no pointer past here */
    return shoal_task_return(t, &ok, sizeof ok);
}

static void test_tasks(void)
{
    start(32 * MiB, false);
    size_t n = SAN_DIV == 1 ? 160 : 64;
    shoal_ref *made = calloc(n, sizeof *made), *checked = calloc(n, sizeof *checked);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = i;
        shoal_arg a = SHOAL_VALUE(&seq, sizeof seq);
        ASSERT_OK(shoal_submit(produce, &a, 1, NULL, &made[i]));
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = i;
        shoal_arg a[2] = { SHOAL_REF(made[(i * 7) % n]), SHOAL_VALUE(&seq, sizeof seq) };
        seq = (i * 7) % n;
        a[1] = SHOAL_VALUE(&seq, sizeof seq);
        ASSERT_OK(shoal_submit(check, a, 2, NULL, &checked[i]));
    }
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t len;
        int rc = shoal_get(checked[i], &d, &len);
        if (rc)
            fprintf(stderr, "check %zu: %s\n", i, shoal_last_error());
        good += rc == 0 && len == 8 && *(const uint64_t *)d == 1;
        CHECK_OK(shoal_release(checked[i]));
    }
    CU_ASSERT_EQUAL(good, n);
    CU_ASSERT(stats_now().spilled_objects > 0);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(shoal_release(made[i]));
    free(made);
    free(checked);
    stop();
}

/* Threads putting and reading back at the same time: gets race spill writes. */
struct racer { size_t first, n; shoal_ref *refs; int bad; };

static void *race_reader(void *p)
{
    struct racer *r = p;
    unsigned seed = (unsigned)r->first;
    for (size_t k = 0; k < r->n * 3; k++) {
        size_t i = r->first + (size_t)rand_r(&seed) % r->n;
        r->bad += !read_back(r->refs[i], 256 << 10, i);
    }
    return NULL;
}

static void test_concurrent(void)
{
    start(16 * MiB, false);
    size_t n = SAN_DIV == 1 ? 512 : 128;   /* 256 KiB each: 8x the store */
    shoal_ref *refs = calloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(put_obj(256 << 10, i, &refs[i]));
    struct racer rs[3];
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        rs[t] = (struct racer){ .first = (size_t)t * n / 3, .n = n / 3, .refs = refs };
        pthread_create(&th[t], NULL, race_reader, &rs[t]);
    }
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
        CU_ASSERT_EQUAL(rs[t].bad, 0);
    }
    for (size_t i = 0; i < n; i++)
        CHECK_OK(shoal_release(refs[i]));
    free(refs);
    stop();
}

/* Disk full (a file-size limit makes writes fail with EFBIG): the put gets SHOAL_ENOMEM
 * naming the spill failure, every object stays readable, and spilling works again after. */
static void test_disk_full(void)
{
    start(32 * MiB, false);
    shoal_ref r[4];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(put_obj(10 * MiB, (uint64_t)i, &r[i]));
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 1 << 20;   /* 1 MiB: the next 10 MiB spill cannot be written */
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = put_obj(10 * MiB, 3, &r[3]);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    CU_ASSERT_EQUAL(rc, SHOAL_ENOMEM);
    const char *m = shoal_last_error();
    if (!strstr(m, "spilling to") || !strstr(m, "errno 27"))
        fprintf(stderr, "message: %s\n", m);
    CU_ASSERT(strstr(m, "spilling to") != NULL);
    CU_ASSERT(strstr(m, dir) != NULL);
    CU_ASSERT(strstr(m, "errno 27") != NULL);   /* EFBIG */
    CU_ASSERT(stats_now().spill_failures > 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(read_back(r[i], 10 * MiB, (uint64_t)i));
    CU_ASSERT_EQUAL(stats_now().spilled_now_objects, 0);
    /* The limit is gone: spilling works again. */
    ASSERT_OK(put_obj(10 * MiB, 3, &r[3]));
    for (int i = 0; i < 4; i++)
        CU_ASSERT(read_back(r[i], 10 * MiB, (uint64_t)i));
    for (int i = 0; i < 4; i++)
        CHECK_OK(shoal_release(r[i]));
    stop();
}

/* Run this program again as a child in `role` (see child_main): spawned, not forked, since
 * TSan's runtime breaks in a child forked from a process whose allocator holds many locks.
 * stdin_fd >= 0 becomes the child's stdin. Returns the pid. */
static pid_t spawn_self(const char *role, const char *arg, int stdin_fd)
{
    char *argv[] = { (char *)"test_spill", (char *)role, (char *)arg, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return pid;
}

static int wait_ok(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* "client NAME": attach to the store NAME, say so on stdout, read a ref (16 hex digits) and
 * a file path from stdin, then: a get of that (spilled) ref fails with SHOAL_EIO naming the
 * owner, and shoal_put_file works in this process too. */
static int client_role(const char *name)
{
    if (shoal_attach(name))
        return fprintf(stderr, "client: %s\n", shoal_last_error()), 7;
    if (write(1, "a", 1) != 1)
        return 8;
    unsigned long long id = 0;
    char path[256];
    if (scanf("%llx %255s", &id, path) != 2)
        return 9;
    shoal_ref r = { id }, f;
    const void *d;
    size_t n;
    int rc = shoal_get(r, &d, &n), ok = 1;
    if (rc != SHOAL_EIO || !strstr(shoal_last_error(), "owner")) {
        fprintf(stderr, "client get: %d %s\n", rc, shoal_last_error());
        ok = 0;
    }
    if (shoal_put_file(path, 0, 0, &f) != 0 || shoal_get(f, &d, &n) != 0 || n != 1000) {
        fprintf(stderr, "client put_file: %s\n", shoal_last_error());
        ok = 0;
    } else {
        shoal_release(f);
    }
    shoal_shutdown();
    return ok ? 0 : 1;
}

/* Child roles: "nobody-init DIR" (init with spill_dir DIR as an unprivileged user must
 * fail naming errno 13), "owner-crash DIR" (init, spill nothing, exit without shutdown),
 * "owner-live DIR" (init, wait for a byte on stdin, shut down). */
static int child_main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *role = argv[1], *d = argv[2];
    shoal_config c = shoal_test_config();
    c.spill_dir = d;
    if (strcmp(role, "nobody-init") == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            return 3;
        int rc = shoal_init(&c);
        int ok = rc == SHOAL_EINVAL && strstr(shoal_last_error(), "not writable") &&
                 strstr(shoal_last_error(), "errno 13");
        if (!ok)
            fprintf(stderr, "child: %d %s\n", rc, shoal_last_error());
        return ok ? 0 : 1;
    }
    if (strcmp(role, "client") == 0)
        return client_role(d);
    if (shoal_init(&c))
        return 4;
    if (strcmp(role, "owner-crash") == 0) {
        shoal_ref r;
        put_obj(MiB, 1, &r);
        _exit(0);   /* no shutdown: as if it crashed */
    }
    char ch;
    if (read(0, &ch, 1) < 0)
        return 5;
    return shoal_shutdown() == 0 ? 0 : 6;
}

static void expect_bad_dir(const char *d, const char *needle)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.spill_dir = d;
    CHECK_RC(shoal_init(&c), SHOAL_EINVAL);
    const char *m = shoal_last_error();
    if (!strstr(m, "spill_dir") || !strstr(m, needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", m, needle);
    CU_ASSERT(strstr(m, "spill_dir") != NULL);
    CU_ASSERT(strstr(m, needle) != NULL);
    /* The failed init left nothing running. */
    CHECK_RC(shoal_shutdown(), SHOAL_ENOTINIT);
}

static void test_bad_dirs(void)
{
    make_dir();
    char p[128];
    snprintf(p, sizeof p, "%s/missing", dir);
    expect_bad_dir(p, "errno 2");
    expect_bad_dir("", "empty");
    snprintf(p, sizeof p, "%s/a-file", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    close(fd);
    expect_bad_dir(p, "not a directory");
    unlink(p);
    expect_bad_dir("/proc/self", "not writable");   /* not even root creates files there */
    /* A directory without write permission, for an unprivileged process. */
    snprintf(p, sizeof p, "%s/readonly", dir);
    CU_ASSERT_FATAL(mkdir(p, 0555) == 0);
    CU_ASSERT_FATAL(chmod(dir, 0755) == 0);
    CU_ASSERT(wait_ok(spawn_self("nobody-init", p, -1)));
    rmdir(p);
    chmod(dir, 0700);
}

/* A spill file left by a process that died is removed at the next init; a live owner's is
 * not. */
static void test_crash_leftovers(void)
{
    make_dir();
    test_reset();
    int pipefd[2];
    CU_ASSERT_FATAL(pipe(pipefd) == 0);
    pid_t live = spawn_self("owner-live", dir, pipefd[0]);
    close(pipefd[0]);
    /* The live child's init must be done before the other one dies, or that init would
     * (rightly) clean up after it. */
    for (int i = 0; i < 5000 && count_files(dir, "shoal-spill-") < 1; i++)
        usleep(1000);
    pid_t dead = spawn_self("owner-crash", dir, -1);
    CU_ASSERT(wait_ok(dead));
    CU_ASSERT_EQUAL(count_files(dir, "shoal-spill-"), 2);
    char deadname[64];
    snprintf(deadname, sizeof deadname, "shoal-spill-%d-", (int)dead);
    CU_ASSERT_EQUAL(count_files(dir, deadname), 1);
    setenv("SHOAL_QUIET", "1", 1);
    start(32 * MiB, false);            /* removes the dead child's file */
    CU_ASSERT_EQUAL(count_files(dir, deadname), 0);
    char livename[64];
    snprintf(livename, sizeof livename, "shoal-spill-%d-", (int)live);
    CU_ASSERT_EQUAL(count_files(dir, livename), 1);
    CHECK_OK(shoal_shutdown());
    CU_ASSERT(write(pipefd[1], "x", 1) == 1);
    close(pipefd[1]);
    CU_ASSERT(wait_ok(live));
    CU_ASSERT_EQUAL(count_files(dir, "shoal-spill-"), 0);
}

/* An attached process does file I/O with its own I/O thread; it cannot restore what the
 * owner spilled (the bytes are in the owner's file) and says so. */
static void test_client(void)
{
    make_dir();
    test_reset();
    shoal_config c = shoal_test_config();
    c.store_bytes = 32 * MiB;
    c.spill_dir = dir;
    c.name = "shoal-test-spill";
    ASSERT_OK(shoal_init(&c));
    int in[2], out[2];
    CU_ASSERT_FATAL(pipe(in) == 0 && pipe(out) == 0);
    char *argv[] = { (char *)"test_spill", (char *)"client", (char *)c.name, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    pid_t pid;
    CU_ASSERT_FATAL(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    char ch;
    CU_ASSERT(read(out[0], &ch, 1) == 1);   /* attached (before the store fills) */
    shoal_ref r[48];
    for (int i = 0; i < 48; i++)
        ASSERT_OK(put_obj(MiB, (uint64_t)i, &r[i]));
    /* A client spills nothing: its put_file needs room the owner's spills make, which the
     * writes still in flight after the last put free as they land. */
    for (int i = 0; i < 3000; i++) {
        shoal_info now = info_now();
        if (now.store_bytes - now.bytes_used >= MiB)
            break;
        usleep(10000);
    }
    char p[128], line[256];
    snprintf(p, sizeof p, "%s/client-file", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[1000] = { 0 };
    CU_ASSERT(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
    close(fd);
    snprintf(line, sizeof line, "%016llx %s\n", (unsigned long long)r[0].id, p);   /* oldest */
    CU_ASSERT(write(in[1], line, strlen(line)) == (ssize_t)strlen(line));
    close(in[1]);
    CU_ASSERT(wait_ok(pid));
    close(out[0]);
    CU_ASSERT(read_back(r[0], MiB, 0));   /* the owner restores it */
    for (int i = 0; i < 48; i++)
        CHECK_OK(shoal_release(r[i]));
    unlink(p);
    stop();
}

/* Shutdown right after puts that spill: spill writes may still be in flight. */
static void test_shutdown_while_spilling(void)
{
    start(16 * MiB, false);
    shoal_ref r;
    for (int i = 0; i < 40; i++)
        ASSERT_OK(put_obj(MiB, (uint64_t)i, &r));
    stop();   /* also checks the spill file is gone */
    start(16 * MiB, false);
    ASSERT_OK(put_obj(MiB, 1, &r));
    CU_ASSERT(read_back(r, MiB, 1));
    stop();
}

/* Without spill_dir nothing changes: a full store answers ENOMEM, advise_cold is a no-op. */
static void test_no_spill_dir(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.store_bytes = 16 * MiB;
    ASSERT_OK(shoal_init(&c));
    shoal_ref a, b;
    ASSERT_OK(put_obj(10 * MiB, 1, &a));
    CHECK_OK(shoal_advise_cold(a));
    CHECK_RC(put_obj(10 * MiB, 2, &b), SHOAL_ENOMEM);
    CU_ASSERT(strstr(shoal_last_error(), "spill_dir") != NULL);   /* says how to get room */
    CU_ASSERT(read_back(a, 10 * MiB, 1));
    CHECK_OK(shoal_release(a));
    CHECK_OK(shoal_shutdown());
}

static void test_cleanup(void)
{
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
}

int main(int argc, char **argv)
{
    setenv("SHOAL_QUIET", "1", 0);
    if (argc > 1)
        return child_main(argc, argv);
    static const shoal_test_case cases[] = {
        { "1 GiB of live objects in a 64 MiB store, random reads", test_gib_in_64mib },
        { "small objects", test_small_objects },
        { "oldest first", test_oldest_first },
        { "read objects stay until advise_cold", test_read_objects_stay },
        { "file ingest and export on a full store", test_files_on_a_full_store },
        { "spilling while tasks run", test_tasks },
        { "concurrent gets race spill writes", test_concurrent },
        { "disk full: ENOMEM naming the failure, no loss", test_disk_full },
        { "spill_dir validation at init", test_bad_dirs },
        { "crash leftovers removed, live owners kept", test_crash_leftovers },
        { "no spill_dir: full is full", test_no_spill_dir },
        { "an attached process", test_client },
        { "shutdown while spilling", test_shutdown_while_spilling },
        { "fallback: pread/pwrite helper thread", test_fallback },
        { "remove temp dirs", test_cleanup },
        { NULL, NULL },
    };
    return shoal_test_run("spill", cases);
}
