/* os.c - memfd, mmap, MADV_POPULATE_WRITE and huge-page probing (see os.h for contracts).
 * Modelled on mimalloc's prim layer: the rest of shoal never calls these syscalls. */
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shoal.h"
#include "errors.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

int shoal__os_memfd(const char *name, size_t size, int huge)
{
    /* ALLOW_SEALING: a published store seals its size so no client can shrink a segment
     * under the owner's mappings (mproc/publish.c). */
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0));
    if (fd < 0)
        return shoal__err(errno == ENOMEM ? SHOAL_ENOMEM : SHOAL_EINVAL,
                          "memfd_create(%s%s) failed: %s", name, huge ? ", MFD_HUGETLB" : "",
                          strerror(errno));
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return shoal__err(SHOAL_ENOMEM, "cannot size the %s segment to %zu bytes: %s", name,
                          size, strerror(e));
    }
    return fd;
}

int shoal__os_reserve(size_t len, size_t align, void **out)
{
    size_t total = len + align;
    char *p = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot reserve %zu bytes of address space: %s", len,
                          strerror(errno));
    char *a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    size_t tail = (size_t)((p + total) - (a + len));
    if (tail)
        munmap(a + len, tail);
    *out = a;
    return 0;
}

int shoal__os_map(int fd, size_t len, void *addr, void **out)
{
    void *p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | (addr ? MAP_FIXED : 0), fd, 0);
    if (p == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot map a %zu-byte segment: %s", len, strerror(errno));
    if (out)
        *out = p;
    return 0;
}

void shoal__os_unmap(void *addr, size_t len)
{
    if (addr && len)
        munmap(addr, len);
}

SHOAL__HIDDEN _Atomic int shoal__os_populate_fallback;

/* Kernels before 5.14 lack MADV_POPULATE_WRITE (RHEL 8, Debian 11, Ubuntu 20.04): touch
 * each page instead. The pages may be live, updated by other threads and processes
 * (slot words, other processes' chunks), so the touch is an atomic add of zero, which
 * faults the page in for writing and changes nothing: a plain read and write back would
 * undo any update made between the two. */
static void touch_pages(void *addr, size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t p = ((uintptr_t)addr + 7) & ~(uintptr_t)7, end = (uintptr_t)addr + len;
    for (; p + 8 <= end; p = (p & ~(uintptr_t)(pg - 1)) + pg)
        /* relaxed: no order, only the write fault; the RMW keeps every other update. */
        __atomic_fetch_add((uint64_t *)p, 0, __ATOMIC_RELAXED);
}

int shoal__os_populate(void *addr, size_t len)
{
    if (!atomic_load_explicit(&shoal__os_populate_fallback, memory_order_relaxed)) {
        int r, tries = 0;
        /* A signal may interrupt it (EINTR), a page lock be busy (EAGAIN): again. */
        while ((r = madvise(addr, len, MADV_POPULATE_WRITE)) != 0 &&
               (errno == EINTR || errno == EAGAIN) && ++tries < 100) {
        }
        if (r == 0)
            return 0;
        if (errno != EINVAL)
            return shoal__err(SHOAL_ENOMEM, "cannot populate %zu bytes of the store: %s", len,
                              strerror(errno));
    }
    touch_pages(addr, len);
    return 0;
}

/* The first line of a sysfs file ("" if it cannot be read). */
static void read_setting(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(buf, (int)n, f))
        buf[0] = 0;
    fclose(f);
}

static int thp_shmem_mode(void)
{
    char buf[128];
    read_setting("/sys/kernel/mm/transparent_hugepage/shmem_enabled", buf, sizeof buf);
    return strstr(buf, "[always]") || strstr(buf, "[within_size]") || strstr(buf, "[advise]") ||
           strstr(buf, "[force]");
}

int shoal__os_thp(void *addr, size_t len)
{
    if (madvise(addr, len, MADV_HUGEPAGE) != 0)
        return 0;
    return thp_shmem_mode();
}

int shoal__os_map_anon(void *addr, size_t len, int huge)
{
    /* A private hugetlb mapping reserves its pages now (no MAP_NORESERVE): it fails here
     * rather than with SIGBUS at a fault. Normal pages are committed as they are touched
     * (populated), as the memfd of a published store is. */
    int fl = MAP_PRIVATE | MAP_ANONYMOUS | (addr ? MAP_FIXED : 0) |
             (huge ? MAP_HUGETLB : MAP_NORESERVE);
    void *p = mmap(addr, len, PROT_READ | PROT_WRITE, fl, -1, 0);
    if (p == MAP_FAILED)
        return shoal__err(SHOAL_ENOMEM, "cannot map %zu bytes of private memory%s: %s", len,
                          huge ? " in 2 MiB pages" : "", strerror(errno));
    return 0;
}

int shoal__os_map_anon_any(size_t len, void **out)
{
    /* 2 MiB aligned, so that transparent huge pages can back it from its first byte. */
    void *at;
    int rc = shoal__os_reserve(len, SHOAL__HUGE_SIZE, &at);
    if (rc == 0 && (rc = shoal__os_map_anon(at, len, 0)) != 0)
        shoal__os_unmap(at, len);
    if (rc == 0) {
        shoal__os_thp_anon(at, len, 1);
        *out = at;
    }
    return rc;
}

int shoal__os_thp_anon(void *addr, size_t len, int on)
{
    if (madvise(addr, len, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0 || !on)
        return 0;
    char buf[128];
    read_setting("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf);
    return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

uint64_t shoal__os_huge_bytes(const void *addr, size_t len)
{
    uintptr_t lo = (uintptr_t)addr, hi = lo + len;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return 0;
    char line[512];
    int inside = 0;
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b, k;
        char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &a, &b) == 2)
            inside = a < hi && b > lo;
        else if (inside && (sscanf(line, "AnonHugePages: %lu kB", &k) == 1 ||
                            sscanf(line, "ShmemPmdMapped: %lu kB", &k) == 1))
            kb += k;
    }
    fclose(f);
    return kb << 10;
}

long shoal__os_free_hugepages(void)
{
    long n = 0;
    FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &n) != 1)
        n = 0;
    fclose(f);
    return n;
}

uint64_t shoal__os_phys_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
    return pages > 0 && pg > 0 ? (uint64_t)pages * (uint64_t)pg : (uint64_t)1 << 32;
}
