/* os.h - the one OS layer for memory: memfd segments, mappings, huge pages, populating.
 * Each function returns 0 or a negative SHOAL_E* code with the message set; errno is
 * converted here, once, at the syscall edge. */
#ifndef SHOAL_ALLOC_OS_H
#define SHOAL_ALLOC_OS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHOAL__HUGE_SIZE ((size_t)2 << 20)

/* A fresh memfd of size bytes. huge: try MFD_HUGETLB (size must be a 2 MiB multiple).
 * Returns the fd (>= 0) or a negative code. A hugetlb memfd may still fail to map. */
int  shoal__os_memfd(const char *name, size_t size, int huge);
/* Reserve len bytes of address space aligned to `align` (PROT_NONE, no memory). */
int  shoal__os_reserve(size_t len, size_t align, void **out);
/* Map fd's [0, len) shared read-write at addr (MAP_FIXED inside a reservation), or
 * anywhere when addr is NULL (*out receives it). */
int  shoal__os_map(int fd, size_t len, void *addr, void **out);
void shoal__os_unmap(void *addr, size_t len);
/* Fault [addr, addr+len) in for writing now, in one call, so that no put ever takes a
 * page fault (11.6 us per 4 KiB page here). Fails when hugetlb pages run out. Safe on
 * pages other threads and processes are updating: without MADV_POPULATE_WRITE (kernels
 * before 5.14) each page gets an atomic add of zero. */
int  shoal__os_populate(void *addr, size_t len);
/* Test hook: non-zero makes shoal__os_populate take the old-kernel path. */
extern _Atomic int shoal__os_populate_fallback;
/* Map len bytes of private anonymous memory at addr (MAP_FIXED inside a reservation), in
 * 2 MiB hugetlb pages if huge (reserved now: fails if the pool cannot give them). */
int  shoal__os_map_anon(void *addr, size_t len, int huge);
/* len bytes of private anonymous memory anywhere (2 MiB aligned), transparent huge pages
 * requested: *out. */
int  shoal__os_map_anon_any(size_t len, void **out);
/* Ask for transparent huge pages on a private anonymous mapping (on), or refuse them
 * (off: a store with huge pages off gets none even where THP is "always"); returns 1 when
 * the kernel may honour it (enabled is always or madvise), else 0. */
int  shoal__os_thp_anon(void *addr, size_t len, int on);
/* Bytes of [addr, addr+len) this process maps with huge pages now (/proc/self/smaps). */
uint64_t shoal__os_huge_bytes(const void *addr, size_t len);
/* Ask for transparent huge pages on a shared mapping; returns 1 when the kernel will honour
 * it for shmem (shmem_enabled is always/within_size/advise), else 0. */
int  shoal__os_thp(void *addr, size_t len);
/* Free 2 MiB pages the kernel has reserved and not in use (for messages). */
long shoal__os_free_hugepages(void);
uint64_t shoal__os_phys_bytes(void);

#endif
