/* xfer.c - chunked transfers between an fd and memory on the I/O thread: a large read or
 * write is cut into SHOAL__IO_CHUNK requests with up to SHOAL__IO_QD in flight, so the disk
 * sees a queue deep enough to reach its bandwidth while each completion refills the queue.
 * Used by file ingest/export and by spill writes and restores.
 */
#include <errno.h>

#include "io.h"

static void chunk_done(shoal__iop *op, int res);

static void issue(shoal__xfer *x)
{
    while (!x->err && x->next < x->span && x->inflight < x->qd) {
        unsigned i = (unsigned)__builtin_ctz(~x->busy);
        uint64_t n = x->span - x->next;
        if (n > x->chunk)
            n = x->chunk;
        shoal__iop *op = &x->ops[i];
        op->done = chunk_done;
        op->owner = x;
        op->code = x->write ? SHOAL__IOP_WRITE : SHOAL__IOP_READ;
        op->fd = x->fd;
        op->buf = x->buf + x->next;
        op->len = (uint32_t)n;
        op->off = x->foff + x->next;
        x->next += n;
        x->busy |= 1u << i;
        x->inflight++;
        shoal__io_submit(op);
    }
}

static void chunk_done(shoal__iop *op, int res)
{
    shoal__xfer *x = op->owner;
    if (res == -EINTR || res == -EAGAIN) {
        shoal__io_submit(op);   /* same request again */
        return;
    }
    uint64_t at = op->off - x->foff;                  /* first byte of this request */
    uint64_t want_end = at + op->len < x->len ? at + op->len : x->len;  /* useful end */
    if (res < 0) {
        if (!x->err)
            x->err = res;
    } else if (at + (uint64_t)res >= want_end) {
        if (want_end > at)
            x->moved += want_end - at;
    } else if (res == 0 || (x->direct && res % SHOAL__IO_ALIGN)) {
        /* A read that stops early ended at EOF (a direct one returns a partial block only
         * there); a write that makes no progress will not make any. */
        if (!x->err) {
            x->err = x->write ? -EIO : SHOAL__XFER_SHORT;
            x->short_at = at + (uint64_t)res;
        }
    } else {
        /* Short but progressing: continue where it stopped, with the same request slot. */
        x->moved += (uint64_t)res;
        op->buf = (char *)op->buf + res;
        op->off += (uint64_t)res;
        op->len -= (uint32_t)res;
        shoal__io_submit(op);
        return;
    }
    x->busy &= ~(1u << (unsigned)(op - x->ops));
    x->inflight--;
    issue(x);
    if (x->inflight == 0 && (x->err || x->next >= x->span))
        x->finish(x);
}

void shoal__xfer_start(shoal__xfer *x)
{
    x->span = x->direct ? (x->len + SHOAL__IO_ALIGN - 1) / SHOAL__IO_ALIGN * SHOAL__IO_ALIGN
                        : x->len;
    if (x->chunk == 0)
        x->chunk = SHOAL__IO_CHUNK;
    if (x->qd == 0 || x->qd > SHOAL__IO_QD)
        x->qd = SHOAL__IO_QD;
    x->next = x->moved = x->short_at = 0;
    x->inflight = 0;
    x->err = 0;
    x->busy = 0;
    if (x->span == 0) {
        x->finish(x);
        return;
    }
    issue(x);
}
