/* os.c - memfd, mmap, MADV_POPULATE_WRITE and huge-page probing (see os.h for contracts).
 * Modelled on mimalloc's prim layer: the rest of shoal never calls these syscalls. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/rt.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

int shoal__os_memfd(const char *name, size_t size, int huge)
{
    /* ALLOW_SEALING: a published store seals its size so no client can shrink a segment
     * under the owner's mappings (core/publish.c). */
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
        if (madvise(addr, len, MADV_POPULATE_WRITE) == 0)
            return 0;
        if (errno != EINVAL)
            return shoal__err(SHOAL_ENOMEM, "cannot populate %zu bytes of the store: %s", len,
                              strerror(errno));
    }
    touch_pages(addr, len);
    return 0;
}

static int thp_shmem_mode(void)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    fclose(f);
    return strstr(buf, "[always]") || strstr(buf, "[within_size]") || strstr(buf, "[advise]") ||
           strstr(buf, "[force]");
}

int shoal__os_thp(void *addr, size_t len)
{
    if (madvise(addr, len, MADV_HUGEPAGE) != 0)
        return 0;
    return thp_shmem_mode();
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
