/* fallback.c - the primitive I/O operations as plain syscalls (pread, pwrite, openat, ...),
 * each returning what io_uring would put in its completion: a count, an fd, 0, or -errno.
 * The I/O thread runs them one by one when io_uring is unavailable or disabled
 * (SHOAL_NO_IO_URING=1); with a ring they are only used for the few steps that have no
 * io_uring opcode here. Only the I/O thread (or init/shutdown) calls them: they block.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

int shoal__io_exec(shoal__iop *op)
{
    long r = -1;
    switch (op->code) {
    case SHOAL__IOP_READ:
        r = pread(op->fd, op->buf, op->len, (off_t)op->off);
        break;
    case SHOAL__IOP_WRITE:
        r = pwrite(op->fd, op->buf, op->len, (off_t)op->off);
        break;
    case SHOAL__IOP_OPEN:
        r = openat(AT_FDCWD, op->path, op->flags, (mode_t)op->len);
        break;
    case SHOAL__IOP_STATX:
        /* Of an open fd: what the inode in memory says (no round trip to a file server). */
        r = statx(op->fd >= 0 ? op->fd : AT_FDCWD, op->fd >= 0 ? "" : op->path,
                  op->fd >= 0 ? AT_EMPTY_PATH | AT_STATX_DONT_SYNC : 0,
                  STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, op->buf);
        break;
    case SHOAL__IOP_CLOSE:
        r = close(op->fd);
        break;
    case SHOAL__IOP_FSYNC:
        r = fsync(op->fd);
        break;
    case SHOAL__IOP_UNLINK:
        r = unlinkat(AT_FDCWD, op->path, 0);
        break;
    case SHOAL__IOP_PUNCH:
        r = fallocate(op->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)op->off,
                      (off_t)op->len);
        break;
    default:
        errno = EINVAL;
    }
    return r < 0 ? -errno : (int)r;
}
