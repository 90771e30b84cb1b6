/* test_hugepages.c - page kinds: huge pages off, AUTO without reserved pages (a private
 * store is anonymous memory and gets transparent huge pages where the kernel gives them to
 * anonymous memory on request; a published one is a memfd, which needs shmem THP), REQUIRE
 * with pages this test reserves in /proc/sys/vm/nr_hugepages (as root; the old value is
 * always restored), REQUIRE without pages. In every kind, each object's bytes must lie
 * inside the store's region: the one internal look (core/store.h) any suite takes. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/check.h"
#include "../core/store.h"

#define NR_HUGE "/proc/sys/vm/nr_hugepages"

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int write_long(const char *path, long v)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%ld\n", v) > 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A /proc/meminfo field ("HugePages_Free"), -1 if absent. */
static long meminfo(const char *field)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Huge pages nobody has: free ones less those reserved by a mapping not faulted in yet (a
 * MAP_HUGETLB mapping reserves its pages at mmap; they still count as free until touched). */
static long hp_available(void)
{
    long f = meminfo("HugePages_Free"), r = meminfo("HugePages_Rsvd");
    return f < 0 ? f : r > 0 ? f - r : f;
}

/* 1 if the THP setting at path is off, so MADV_HUGEPAGE can do nothing: shmem_enabled for a
 * published store (memfd), enabled for a private one (anonymous memory). */
static int thp_off(const char *path)
{
    FILE *f = fopen(path, "r");
    char s[256] = "";
    if (f) {
        if (!fgets(s, sizeof s, f))
            s[0] = 0;
        fclose(f);
    }
    return strstr(s, "[never]") || strstr(s, "[deny]");
}
#define SHMEM_THP "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define ANON_THP "/sys/kernel/mm/transparent_hugepage/enabled"

/* Over the mappings inside the store's span, from /proc/self/smaps (process-local, so
 * other processes' use of the machine-wide huge page pool cannot disturb it): the kernel
 * page size in KiB (0 if none, -1 if they differ), and the KiB mapped by huge pages
 * (AnonHugePages for private memory, ShmemPmdMapped for a memfd). */
static void span_smaps(long *page_kb, long *huge_kb)
{
    uintptr_t lo = (uintptr_t)shoal__rt->base;
    uintptr_t hi = lo + (uintptr_t)shoal__rt->nnodes * shoal__rt->node_span;
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;
    *page_kb = *huge_kb = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        long k;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = a >= lo && b <= hi;
        else if (inside && sscanf(line, "KernelPageSize: %ld kB", &k) == 1)
            *page_kb = *page_kb == 0 || *page_kb == k ? k : -1;
        else if (inside && (sscanf(line, "AnonHugePages: %ld kB", &k) == 1 ||
                            sscanf(line, "ShmemPmdMapped: %ld kB", &k) == 1))
            *huge_kb += k;
    }
    if (f)
        fclose(f);
}

static long span_page_kb(void)
{
    long page, huge;
    span_smaps(&page, &huge);
    return page;
}

static long span_huge_kb(void)
{
    long page, huge;
    span_smaps(&page, &huge);
    return huge;
}

/* Mappings of the store's memfds left in this process (their names are internal:
 * "memfd:shoal-..."). Shutdown must leave none. */
static int store_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "memfd:shoal") != NULL;
    if (f)
        fclose(f);
    return n;
}

/* ---- every object inside the shared region ------------------------------------------- */

static int outside(const void *p, size_t len)
{
    const char *lo = shoal__rt->base;
    const char *hi = lo + (size_t)shoal__rt->nnodes * shoal__rt->node_span;
    const char *c = p;
    return !(c >= lo && c <= hi && len <= (size_t)(hi - c));
}

/* Puts objects of many sizes (256 small ones: the private-arena trap returned half of
 * those from private memory) and counts those whose bytes are outside the region. */
static void *put_and_check(void *arg)
{
    int *bad = arg;
    static const size_t sizes[] = { 1, 8, 64, 100, 1000, 4096, 100000, 3u << 20 };
    unsigned char *buf = calloc(1, 3u << 20);
    shoal_ref refs[256 + 8 + 1];
    int n = 0;
    for (int k = 0; k < 256; k++)
        if (shoal_put(buf, 64, &refs[n]) == 0)
            n++;
        else
            (*bad)++;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        if (shoal_put(buf, sizes[k], &refs[n]) == 0)
            n++;
        else
            (*bad)++;
    void *w;
    if (shoal_create(65536, &w, &refs[n]) == 0) {
        *bad += outside(w, 65536);
        *bad += shoal_seal(refs[n]) != 0;
        n++;
    } else {
        (*bad)++;
    }
    for (int k = 0; k < n; k++) {
        const void *d; size_t len;
        if (shoal_get(refs[k], &d, &len) != 0 || outside(d, len)) {
            if (*bad < 5)
                fprintf(stderr, "object %d (%zu bytes) at %p outside the shared region\n", k, len, d);
            (*bad)++;
        }
    }
    for (int k = 0; k < n; k++)
        *bad += shoal_release(refs[k]) != 0;
    free(buf);
    return NULL;
}

static int objects_outside_region(void)
{
    int bad_main = 0, bad_thread = 0;
    if (!shoal__rt) {                       /* non-fatal: callers must reach their restore */
        CU_FAIL("shoal__rt is NULL in a running runtime");
        return 1;
    }
    CU_ASSERT(shoal__rt->base != NULL && shoal__rt->nnodes >= 1 && shoal__rt->node_span > 0);
    put_and_check(&bad_main);
    pthread_t t;
    if (pthread_create(&t, NULL, put_and_check, &bad_thread) == 0)
        pthread_join(t, NULL);
    else
        bad_thread = 1;
    put_and_check(&bad_main);               /* again, now that caches are warm */
    return bad_main + bad_thread;
}

/* ---- page kinds --------------------------------------------------------------------- */

static void huge_off(const char *name)
{
    test_reset();
    shoal_config c = shoal_test_config();
    c.huge_pages = SHOAL_HUGE_OFF;
    c.name = name;
    ASSERT_OK(shoal_init(&c));
    CU_ASSERT_EQUAL(info_now().huge_pages, SHOAL_PAGES_NORMAL);
    CU_ASSERT_EQUAL(span_page_kb(), 4);
    CU_ASSERT_EQUAL(span_huge_kb(), 0);   /* off even where THP is "always" */
    /* Only a published store is a memfd; a private one is anonymous memory. */
    if (name) {
        CU_ASSERT(store_mappings() > 0);
    } else {
        CU_ASSERT_EQUAL(store_mappings(), 0);
    }
    CU_ASSERT_EQUAL(objects_outside_region(), 0);
    CU_ASSERT_EQUAL(span_huge_kb(), 0);
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(store_mappings(), 0);
}

static char *pub_name(void)
{
    static char name[48];
    snprintf(name, sizeof name, "alloc-huge-%d", (int)getpid());
    return name;
}

static void test_huge_off(void) { huge_off(NULL); }
static void test_huge_off_published(void) { huge_off(pub_name()); }

static void test_auto_without_reserved(void)
{
    test_reset();
    long nr = read_long(NR_HUGE), free_pages = meminfo("HugePages_Free");
    if (nr != 0 && free_pages != 0) {
        char why[128];
        snprintf(why, sizeof why, "%s is %ld with %ld free: AUTO may rightly use them", NR_HUGE,
                 nr, free_pages);
        SKIP_TEST(why);
    }
    for (int pub = 0; pub < 2; pub++) {
        shoal_config c = shoal_test_config();
        c.huge_pages = SHOAL_HUGE_AUTO;
        c.name = pub ? pub_name() : NULL;
        ASSERT_OK(shoal_init(&c));
        int kind = info_now().huge_pages;
        long huge_kb = span_huge_kb();
        CU_ASSERT(kind == SHOAL_PAGES_THP || kind == SHOAL_PAGES_NORMAL);
        /* The report is what the store got, never a wish. */
        if ((kind == SHOAL_PAGES_THP) != (huge_kb > 0))
            fprintf(stderr, "%s store: huge_pages reports %d with %ld KiB in huge pages\n",
                    pub ? "published" : "private", kind, huge_kb);
        CU_ASSERT((kind == SHOAL_PAGES_THP) == (huge_kb > 0));
        if (pub && thp_off(SHMEM_THP)) {
            /* MADV_HUGEPAGE on a memfd cannot give THP with shmem THP off. */
            CU_ASSERT_EQUAL(kind, SHOAL_PAGES_NORMAL);
        } else if (!pub && !thp_off(ANON_THP) && kind != SHOAL_PAGES_THP) {
            /* A private store asks for THP on anonymous memory: the kernel gives them at
             * the first fault of each 2 MiB unless it has no free huge page at hand. */
            fprintf(stderr, "private store: anonymous THP is on, yet the store got none\n");
            CU_FAIL("no THP for a private store");
        }
        CU_ASSERT_EQUAL(objects_outside_region(), 0);
        ASSERT_OK(shoal_shutdown());
    }
}

static void test_require_without_reserved(void)
{
    test_reset();
    long nr = read_long(NR_HUGE), free_pages = meminfo("HugePages_Free");
    if (nr != 0 && free_pages != 0) {
        char why[128];
        snprintf(why, sizeof why, "%s is %ld with %ld free; not zeroing another's reservation",
                 NR_HUGE, nr, free_pages);
        SKIP_TEST(why);
    }
    shoal_config c = shoal_test_config();
    c.huge_pages = SHOAL_HUGE_REQUIRE;
    int rc = shoal_init(&c);
    if (rc == 0)
        shoal_shutdown();
    CU_ASSERT_EQUAL(rc, SHOAL_ENOMEM);
    if (!strstr(shoal_last_error(), "nr_hugepages"))
        fprintf(stderr, "REQUIRE without pages: message '%s' does not name nr_hugepages\n",
                shoal_last_error());
    CU_ASSERT(strstr(shoal_last_error(), "nr_hugepages") != NULL);
    shoal_ref r;
    CHECK_RC(shoal_put("x", 1, &r), SHOAL_ENOTINIT);    /* the failed init left nothing */
}

/* Reserve pages, get HUGETLB under AUTO and REQUIRE, restore the old value whatever
 * happens: only non-fatal checks between the reservation and the restore. */
static void test_require_with_reserved(void)
{
    test_reset();
    if (geteuid() != 0)
        SKIP_TEST("not root: cannot reserve pages in " NR_HUGE);
    long old = read_long(NR_HUGE);
    if (old < 0)
        SKIP_TEST("cannot read " NR_HUGE);
    const long extra = 64;                   /* 128 MiB for a 64 MiB store and its table */
    if (write_long(NR_HUGE, old + extra) != 0)
        SKIP_TEST("the kernel refused a write to " NR_HUGE);
    long got = read_long(NR_HUGE), free_pages = hp_available();
    if (got < old + extra || free_pages < extra) {
        int restored = write_long(NR_HUGE, old);
        CU_ASSERT(restored == 0 && read_long(NR_HUGE) == old);
        char why[160];
        if (got < old + extra)
            snprintf(why, sizeof why, "the kernel reserved only %ld of %ld huge pages", got,
                     old + extra);
        else
            snprintf(why, sizeof why, "only %ld of %ld reserved huge pages are free and not "
                     "reserved by a mapping: another "
                     "process took them", free_pages, got);
        SKIP_TEST(why);
    }

    shoal_config c = shoal_test_config();
    int modes[2] = { SHOAL_HUGE_REQUIRE, SHOAL_HUGE_AUTO };
    for (int m = 0; m < 2; m++) {
        c.huge_pages = modes[m];
        long free_before = hp_available();
        int rc = shoal_init(&c);
        int kind = rc == 0 ? info_now().huge_pages : -1;
        /* A shoal process elsewhere (tests of another tree: AUTO is the default) may hold
         * the pages for a moment during our init and give them back before we look: try
         * again a few times, so that only a failure that repeats counts. */
        for (int again = 0; again < 3 && (rc != 0 || kind != SHOAL_PAGES_HUGETLB); again++) {
            fprintf(stderr, "huge_pages %d, try %d: rc %d, kind %d, %ld of %ld pages free "
                    "and unreserved before (%s): trying again\n", modes[m], again + 1, rc, kind,
                    free_before, free_pages, shoal_last_error());
            if (rc == 0)
                shoal_shutdown();
            usleep(200000);
            free_before = hp_available();
            rc = shoal_init(&c);
            kind = rc == 0 ? info_now().huge_pages : -1;
        }
        if (rc != 0 || kind != SHOAL_PAGES_HUGETLB) {
            /* Any shoal process starting meanwhile (AUTO is the default) may rightly take
             * the pages we reserved, even during our init: then this is no failure of the
             * library. Our own store holds none of them here (init failed or fell back). */
            long nr = read_long(NR_HUGE);
            long free_now = hp_available();
            if (nr != old + extra || free_before < free_pages || free_now < free_pages) {
                char why[200];
                snprintf(why, sizeof why, "another process took the reserved pages (%s %ld; "
                         "%ld of %ld free before init, %ld after)", NR_HUGE, nr, free_before,
                         free_pages, free_now);
                shoal_test_skip(why);
                if (rc == 0)
                    shoal_shutdown();
                continue;
            }
            fprintf(stderr, "init with huge_pages %d and %ld free pages: rc %d (%s), kind %d: %s\n",
                    modes[m], free_before, rc, shoal_strerror(rc), kind, shoal_last_error());
        }
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            continue;
        CU_ASSERT_EQUAL(kind, SHOAL_PAGES_HUGETLB);
        CU_ASSERT_EQUAL(info_now().store_bytes, c.store_bytes);
        /* The arena really sits on 2 MiB pages. */
        long kb = span_page_kb();
        if (kb != 2048)
            fprintf(stderr, "huge_pages %d: the store's mappings use %ld KiB pages\n", modes[m], kb);
        CU_ASSERT_EQUAL(kb, 2048);
        shoal_ref r;
        unsigned char b[5000];
        pat_fill(b, sizeof b, 9, (uint64_t)m);
        CHECK_OK(shoal_put(b, sizeof b, &r));
        const void *d = NULL; size_t n = 0;
        CHECK_OK(shoal_get(r, &d, &n));
        CU_ASSERT(d && n == sizeof b && pat_ok(d, n, 9, (uint64_t)m));
        CHECK_OK(shoal_release(r));
        CU_ASSERT_EQUAL(objects_outside_region(), 0);
        CHECK_OK(shoal_shutdown());
        /* Shutdown unmaps the store, which gives its pages back to the pool. */
        CU_ASSERT_EQUAL(store_mappings(), 0);
    }

    int restored = write_long(NR_HUGE, old);
    if (restored != 0 || read_long(NR_HUGE) != old)
        fprintf(stderr, "could not restore %s to %ld (now %ld)\n", NR_HUGE, old, read_long(NR_HUGE));
    CU_ASSERT(restored == 0 && read_long(NR_HUGE) == old);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "huge pages off: normal pages", test_huge_off },
        { "huge pages off, published store: normal pages", test_huge_off_published },
        { "AUTO without reserved pages: not hugetlb", test_auto_without_reserved },
        { "REQUIRE without reserved pages: ENOMEM", test_require_without_reserved },
        { "REQUIRE and AUTO with reserved pages: hugetlb", test_require_with_reserved },
        { NULL, NULL },
    };
    /* nr_hugepages is machine-wide: two runs at once (make test in two trees) would undo
     * each other's reservations. Anything else that changes it should take this lock too. */
    int lock = open("/tmp/shoal-hugepages.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
    if (lock >= 0)
        flock(lock, LOCK_EX);
    int rc = shoal_test_run("hugepages", cases);
    if (lock >= 0)
        close(lock);
    return rc;
}
