/* os.c - memfd, mmap, MADV_POPULATE_WRITE and huge-page probing (see os.h for contracts).
 * Modelled on mimalloc's prim layer: the rest of shoal never calls these syscalls. */
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
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

int shoal__os_populate(void *addr, size_t len)
{
    if (madvise(addr, len, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno == EINVAL) {
        /* Kernels before 5.14 lack MADV_POPULATE_WRITE: touch one byte per page instead. */
        long pg = sysconf(_SC_PAGESIZE);
        for (size_t i = 0; i < len; i += (size_t)pg)
            ((volatile char *)addr)[i] = ((volatile char *)addr)[i];
        return 0;
    }
    return shoal__err(SHOAL_ENOMEM, "cannot populate %zu bytes of the store: %s", len,
                      strerror(errno));
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
