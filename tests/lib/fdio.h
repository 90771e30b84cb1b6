/* fdio.h - read or write exactly n bytes on a pipe or socket, retrying EINTR: the one loop
 * the tests' process helpers (proc.h) and bench/multiproc's client protocol share. Plain C,
 * no test framework, so a bench program may include it too. */
#ifndef SHOAL_TESTS_FDIO_H
#define SHOAL_TESTS_FDIO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* Read (writing 0) or write exactly n bytes on fd: 0, or -1 when the other end closed or
 * failed (a child that died: its stderr says why). */
static inline int test_xfer(int fd, void *p, size_t n, int writing)
{
    char *c = p;
    while (n) {
        ssize_t r = writing ? write(fd, c, n) : read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

#endif
