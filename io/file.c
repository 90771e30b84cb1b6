/* file.c - files into objects and back: shoal_put_file (open, statx, allocate in the store,
 * chunked reads straight into the object's bytes, close) and shoal_write_file (wait for the
 * object, create the file, chunked writes, fsync, close). The calls only validate, create
 * the result object and post a message; every step after runs on the I/O thread, so the
 * calling thread (often a worker) never enters the kernel for the file. One exception: a
 * thread that is not a worker and waits for an ingest the I/O thread has not started yet
 * runs it itself (shoal__ingest_take), as it would have read the file with pread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>


#include "../alloc/sizeclass.h"
#include "../layout/segment.h"
#include "../os/futex.h"
#include "io.h"
#include "spill.h"

/* ---- shared helpers ------------------------------------------------------------------- */

static int check_path(const char *fn, const char *path, size_t *n)
{
    if (!path || !*path)
        return shoal__err(SHOAL_EINVAL, "%s: path is %s", fn, path ? "empty" : "NULL");
    *n = strnlen(path, PATH_MAX);
    if (*n >= PATH_MAX)
        return shoal__err(SHOAL_EINVAL, "%s: path is longer than PATH_MAX (%d)", fn, PATH_MAX);
    return 0;
}

/* A close's completion that frees its state machine (op->owner). */
static void close_done(shoal__iop *op, int res)
{
    (void)res;
    free(op->owner);
}

/* Close fd (if open) on the ring and then let go of the state machine `owner`: release runs
 * with op->owner = owner once the close completed (at once when fd is not open). It frees
 * owner (close_done), or drops a reference a reference-counted one holds (an ingest's). */
static void close_and_free(shoal__iop *op, int fd, void *owner,
                           void (*release)(shoal__iop *op, int res))
{
    op->owner = owner;
    if (fd < 0) {
        release(op, 0);
        return;
    }
    op->code = SHOAL__IOP_CLOSE;
    op->fd = fd;
    op->done = release;
    shoal__io_submit(op);
}

/* Files are opened O_NONBLOCK, so that opening a FIFO (which waits for its other end) never
 * holds up the I/O thread, and through it every other file operation of the process. Once
 * the type is known: FIFOs, sockets and terminals are refused (their reads and writes wait
 * on another party for as long as it likes), everything else goes on blocking as usual. */
static const char *unfit_kind(int fd, mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) && isatty(fd))
        return "a terminal";
    return NULL;
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Turn O_DIRECT on or off on an open fd (F_SETFL may change it): a quick, non-blocking call
 * on the I/O thread. Files are opened buffered and switched once their size and the
 * buffer's alignment are known; a file system without O_DIRECT refuses here (EINVAL) and
 * the transfer stays buffered. */
static int set_direct(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
        return -errno;
    return 0;
}

/* ---- ingest: file -> object ---------------------------------------------------------------- */

struct ingest {
    shoal__iowait w;              /* w.msg: the fill retry, or the hand-over from a taker */
    shoal__iomsg start;           /* the message put_file posts */
    _Atomic unsigned refs;        /* the start message's and the owner's: the last frees */
    int take;                     /* index in takeable[], or -1 (not offered) */
    bool sync;                    /* run by a waiting caller (shoal__ingest_take), not the
                                     I/O thread: every step is a plain syscall */
    shoal_ref ref;
    int node;
    uint64_t offset, want, size;
    uint64_t base;                /* bytes a taker read before it handed the rest over */
    /* A taker's read, shared with the I/O thread (read_shared, help_read): chunks of
     * SHOAL__IO_CHUNK bytes, claimed in order by either of them. */
    shoal__iomsg help;            /* posted once by the taker: the I/O thread reads too */
    char *dst;                    /* the object's bytes */
    uint64_t nchunks;
    _Atomic uint64_t next;        /* the next chunk to claim */
    _Atomic uint64_t done;        /* chunks the I/O thread read */
    _Atomic uint64_t back;        /* 1 + a chunk the I/O thread claimed but gave back */
    _Atomic uint32_t wake;        /* futex: bumped after a done/back when the taker waits */
    _Atomic uint32_t waiting;
    int fd;
    bool dio_ok;                  /* the file and the length allow O_DIRECT */
    char *pre;                    /* bytes read ahead (a file whose size is unknown) */
    struct statx stx;
    shoal__iop op;
    shoal__xfer x;
    char path[];
};

/* Ingests that a waiting caller may take over: put_file offers each one here (when its
 * entry, chosen by the object's slot, is free), and whoever first moves the entry's id from
 * the ref's to 0, the I/O thread starting it or a caller about to wait for it, runs it. A
 * ref's id names one object for ever, so a taker that read an entry's id and g before the
 * entry moved on to another ingest fails its CAS. g is set (CAS from NULL: the entry is
 * claimed) before id is published, and cleared after id is taken. */
#define TAKE_SLOTS 64
static struct {
    _Atomic uint64_t id;
    _Atomic(struct ingest *) g;
} takeable[TAKE_SLOTS];

static void ingest_put(struct ingest *g)
{
    /* acq_rel: the other holder's writes to g happen before the free. */
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        free(g);
}

/* Offer g to waiting callers (any thread, before its start message is posted). */
static void offer(struct ingest *g)
{
    int i = (int)(shoal__id_idx(g->ref.id) % TAKE_SLOTS);
    struct ingest *none = NULL;
    g->take = -1;
    /* relaxed: the id's release store below publishes g with it. */
    if (!atomic_compare_exchange_strong_explicit(&takeable[i].g, &none, g, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;   /* another ingest holds the entry: this one is the I/O thread's alone */
    g->take = i;
    /* release: pairs with the acquire load in shoal__ingest_take (g and its fields). */
    atomic_store_explicit(&takeable[i].id, g->ref.id, memory_order_release);
}

/* Take g's entry back: true when the caller now runs g (nobody else will). */
static bool claim(int i, uint64_t id)
{
    if (i < 0)
        return true;
    /* acquire: pairs with offer's release (g's fields, when a taker claims). */
    if (!atomic_compare_exchange_strong_explicit(&takeable[i].id, &id, 0, memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    /* release: the entry is free for the next offer's CAS (nothing of g is read after). */
    atomic_store_explicit(&takeable[i].g, NULL, memory_order_release);
    return true;
}

void shoal__ingest_fork_child(void)
{
    /* A fork() child: the entries name the parent's ingests, which this process never runs. */
    for (int i = 0; i < TAKE_SLOTS; i++) {
        atomic_store_explicit(&takeable[i].id, 0, memory_order_relaxed);
        atomic_store_explicit(&takeable[i].g, NULL, memory_order_relaxed);
    }
}

/* Complete ref: ready (code 0), or failed with the formatted message; and drop the
 * reference the operation held on it, in the completing CAS when another holder remains.
 * A waiter woken by the completion then holds the last reference: its release frees the
 * bytes at once (with the drop after the wake-up, the next allocation of the woken thread
 * could come first, find the run still taken and fault in fresh pages for its own). */
static void complete_v(shoal_ref ref, int code, const char *fmt, va_list ap)
{
    if (code == 0) {
        shoal__obj_complete_drop(ref, 0, NULL);
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    shoal__obj_complete_drop(ref, code, msg);
}

static void ingest_closed(shoal__iop *op, int res)
{
    (void)res;
    ingest_put(op->owner);
}

static void ingest_end(struct ingest *g, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ingest_end(struct ingest *g, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complete_v(g->ref, code, fmt, ap);   /* and the reference this operation held */
    va_end(ap);
    free(g->pre);
    g->pre = NULL;
    if (g->fd >= 0 && g->sync) {
        close(g->fd);
        g->fd = -1;
    }
    close_and_free(&g->op, g->fd, g, ingest_closed);
}

static void ingest_fail_errno(struct ingest *g, const char *what, int res)
{
    ingest_end(g, SHOAL_EIO, "shoal_put_file: %s '%s': %s (errno %d)", what, g->path,
               strerror(-res), -res);
}

static void ingest_read_done(shoal__xfer *x)
{
    struct ingest *g = x->owner;
    if (x->err == SHOAL__XFER_SHORT)
        ingest_end(g, SHOAL_EIO, "shoal_put_file: short read: '%s' ended %llu bytes into the "
                   "%llu bytes wanted from offset %llu (the file shrank?)", g->path,
                   (unsigned long long)(g->base + x->short_at), (unsigned long long)g->size,
                   (unsigned long long)g->offset);
    else if (x->err)
        ingest_fail_errno(g, "reading", x->err);
    else
        ingest_end(g, 0, NULL);
}

static void ingest_fill(shoal__iomsg *m);

static void ingest_xfer_start(shoal__iomsg *m)
{
    shoal__xfer_start(&((struct ingest *)m)->x);
}

/* Chunk k of g: its bytes and their file offset. */
static size_t chunk_at(const struct ingest *g, uint64_t k, char **dst, off_t *foff)
{
    uint64_t at = k * SHOAL__IO_CHUNK, left = g->size - at;
    *dst = g->dst + at;
    *foff = (off_t)(g->offset + at);
    return left < SHOAL__IO_CHUNK ? (size_t)left : SHOAL__IO_CHUNK;
}

/* Read chunk k whole: from the page cache only (nowait: RWF_NOWAIT, a request that would
 * wait for the disk, or for a readahead a mark in the cache asks for, answers EAGAIN), or
 * blocking. 0, 1 when nowait could not, or a negative errno (-ENODATA: the file ended). */
static int read_chunk(const struct ingest *g, uint64_t k, bool nowait)
{
    char *dst;
    off_t foff;
    size_t n = chunk_at(g, k, &dst, &foff);
    while (n > 0) {
        struct iovec v = { dst, n };
        ssize_t r = preadv2(g->fd, &v, 1, foff, nowait ? RWF_NOWAIT : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && nowait && (errno == EAGAIN || errno == EOPNOTSUPP))
            return 1;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ENODATA;
        dst += r;
        foff += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The I/O thread's part of a taker's read (the help message): chunks claimed from the same
 * counter, read from the page cache only (it never waits for the disk: other files' work
 * goes through this thread), a few per turn of its loop. A chunk it cannot read that way
 * it gives back to the taker (back) and stops. */
#define HELP_TURN 8   /* chunks per turn: 8 MiB, about 0.5 ms of copying */
static void help_notify(struct ingest *g)
{
    /* seq_cst: the store half (done/back, before this) and the load half of the Dekker
     * pair with the taker's waiting flag (read_shared). */
    if (atomic_load_explicit(&g->waiting, memory_order_seq_cst)) {
        /* release: pairs with the taker's acquire load of wake. */
        atomic_fetch_add_explicit(&g->wake, 1, memory_order_release);
        shoal__futex_wake(&g->wake, 1, false);
    }
}

static void help_read(shoal__iomsg *m)
{
    struct ingest *g = (struct ingest *)((char *)m - offsetof(struct ingest, help));
    for (int i = 0; i < HELP_TURN; i++) {
        uint64_t k = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
        if (k >= g->nchunks) {
            ingest_put(g);   /* the help message's reference */
            return;
        }
        if (read_chunk(g, k, true) != 0) {
            /* seq_cst: see help_notify. The taker reads the bytes of this chunk itself. */
            atomic_store_explicit(&g->back, k + 1, memory_order_seq_cst);
            help_notify(g);
            ingest_put(g);
            return;
        }
        /* seq_cst: release of the chunk's bytes to the taker's acquire load of done, and
         * the store half of the Dekker pair in help_notify. */
        atomic_fetch_add_explicit(&g->done, 1, memory_order_seq_cst);
        help_notify(g);
    }
    shoal__io_defer(&g->help);   /* more next turn, after the other work of this one */
}

/* The taker waits until the I/O thread has read every chunk it claimed below `upto`, and
 * reads those it gave back (unless failing: then they only count). */
static int help_wait(struct ingest *g, uint64_t upto, uint64_t mine, bool failing)
{
    int rc = 0;
    unsigned spins = 0;
    while (atomic_load_explicit(&g->done, memory_order_acquire) + mine < upto) {
        /* acquire: pairs with help_read's store of back (the claim it gives up). */
        uint64_t b = atomic_exchange_explicit(&g->back, 0, memory_order_acquire);
        if (b) {
            if (!failing && (rc = read_chunk(g, b - 1, false)) != 0)
                failing = true;
            mine++;
            continue;
        }
        if (spins++ < 128) {
            shoal__cpu_relax();
            continue;
        }
        /* seq_cst: the Dekker pair with help_notify (waiting, then done/back). */
        atomic_store_explicit(&g->waiting, 1, memory_order_seq_cst);
        /* acquire: pairs with help_notify's release bump. */
        uint32_t seen = atomic_load_explicit(&g->wake, memory_order_acquire);
        if (atomic_load_explicit(&g->done, memory_order_seq_cst) + mine < upto &&
            !atomic_load_explicit(&g->back, memory_order_seq_cst)) {
            struct timespec nap = { 0, 1000000 };   /* a backstop only */
            shoal__futex_wait(&g->wake, seen, &nap, false);
        }
        atomic_store_explicit(&g->waiting, 0, memory_order_relaxed);
    }
    return rc;
}

/* A taker's reads: what the page cache holds, with the calling thread's plain preadv2 in
 * SHOAL__IO_CHUNK requests, as a pread loop would read it, while the I/O thread (woken by
 * one post, off this thread's path) claims chunks from the same counter and reads them too:
 * two threads copy where a pread loop has one. A chunk the cache could not serve whole is
 * read once more blocking (a readahead mark stops a RWF_NOWAIT read too; the blocking read
 * starts that readahead); two such chunks in a row mean the file is on the disk, and its
 * rest is better read by the I/O thread on the ring, several requests in flight.
 * Returns the bytes read (the rest is the caller's), or UINT64_MAX once it ended g. */
static uint64_t read_shared(struct ingest *g, void *buf)
{
    g->dst = buf;
    g->nchunks = (g->size + SHOAL__IO_CHUNK - 1) / SHOAL__IO_CHUNK;
    atomic_init(&g->next, 0);
    atomic_init(&g->done, 0);
    atomic_init(&g->back, 0);
    atomic_init(&g->wake, 0);
    atomic_init(&g->waiting, 0);
    /* Only worth a post when there is more than a chunk or two to share. */
    if (g->nchunks > 2) {
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);   /* the message's */
        g->help.run = help_read;
        if (shoal__io_post(&g->help) != 0)   /* its release publishes g's fields */
            ingest_put(g);
    }
    uint64_t mine = 0, k, upto;
    int misses = 0, rc = 0, down = 0;
    for (;;) {
        /* The runtime going down stops the read after the chunk in hand: shutdown waits for
         * this call to leave (its quiesce), and the file may be of any size. relaxed: the
         * code is read again with its message (acquire) below. */
        if (unlikely(atomic_load_explicit(&shoal__rt->down, memory_order_relaxed))) {
            uint64_t first = atomic_exchange_explicit(&g->next, g->nchunks, memory_order_relaxed);
            upto = first < g->nchunks ? first : g->nchunks;
            down = 1;
            break;
        }
        k = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
        if (k >= g->nchunks) {
            upto = g->nchunks;
            break;
        }
        rc = read_chunk(g, k, true);
        if (rc == 1) {
            misses++;
            rc = read_chunk(g, k, false);
        } else if (rc == 0) {
            misses = 0;
        }
        mine++;
        if (rc != 0 || misses >= 2) {
            /* Stop the claims: what nobody claimed yet is the I/O thread's ring's. */
            uint64_t first = atomic_exchange_explicit(&g->next, g->nchunks, memory_order_relaxed);
            upto = first < g->nchunks ? first : g->nchunks;
            break;
        }
    }
    int wrc = help_wait(g, upto, mine, rc != 0 || down);
    if (down) {
        int code = shoal__down_err(shoal__rt);
        ingest_end(g, code, "shoal_put_file: reading '%s' stopped: %s", g->path,
                   shoal_last_error());
        return UINT64_MAX;
    }
    if (rc == 0)
        rc = wrc;
    if (rc == -ENODATA) {
        ingest_end(g, SHOAL_EIO, "shoal_put_file: short read: '%s' ended before the %llu "
                   "bytes wanted from offset %llu (the file shrank?)", g->path,
                   (unsigned long long)g->size, (unsigned long long)g->offset);
        return UINT64_MAX;
    }
    if (rc) {
        ingest_fail_errno(g, "reading", rc);
        return UINT64_MAX;
    }
    if (upto < g->nchunks)
        return upto * SHOAL__IO_CHUNK;
    ingest_end(g, 0, NULL);
    return UINT64_MAX;
}

static void ingest_fill_retry(shoal__iomsg *m)
{
    struct ingest *g = (struct ingest *)m;
    if (g->w.rc < 0)
        ingest_end(g, g->w.rc, "shoal_put_file: cannot hold '%s' (%llu bytes) in the store: %s",
                   g->path, (unsigned long long)g->size, g->w.err);
    else {
        g->w.tries++;   /* from now on wait for spills, not just for free room */
        ingest_fill(m);
    }
}

static void ingest_fill(shoal__iomsg *m)
{
    struct ingest *g = (struct ingest *)m;
    void *buf = NULL;
    /* A taker's allocation spills for room itself, as shoal_create's would (alloc/arena.h);
     * the I/O thread parks the ingest until the spiller made room. */
    int rc = shoal__obj_fill(g->ref, g->size, g->node, &buf);
    if (rc == SHOAL_ENOMEM && !g->sync && shoal__spill_on() &&
        g->size <= shoal__rt->hdr->store_bytes) {
        g->w.msg.run = ingest_fill_retry;
        g->w.need = g->size;
        shoal__spill_want(&g->w);
        return;
    }
    if (rc) {
        ingest_end(g, rc, "shoal_put_file: cannot hold '%s' (%llu bytes) in the store: %s",
                   g->path, (unsigned long long)g->size, shoal_last_error());
        return;
    }
    if (g->pre) {   /* read ahead already (read_to_eof) */
        memcpy(buf, g->pre, g->size);
        ingest_end(g, 0, NULL);
        return;
    }
    bool direct = g->dio_ok &&
                  shoal__xfer_can_direct(buf, g->size, shoal__usable_size(g->size), g->offset) &&
                  set_direct(g->fd, true) == 0;
    uint64_t done = g->sync && !direct ? read_shared(g, buf) : 0;
    if (done == UINT64_MAX)
        return;   /* read_shared ended it */
    g->base = done;
    g->x = (shoal__xfer){ .fd = g->fd, .write = false, .direct = direct, .buf = (char *)buf + done,
                          .len = g->size - done, .foff = g->offset + done,
                          .finish = ingest_read_done, .owner = g };
    if (g->sync) {   /* the rest goes on the ring: requests in flight, where we had one */
        g->w.msg.run = ingest_xfer_start;
        g->sync = false;
        /* the post's release publishes g to the I/O thread */
        if (shoal__io_post(&g->w.msg) == 0)
            return;
        g->sync = true;
        ingest_end(g, SHOAL_ECANCELED, "shoal_put_file: the I/O engine stopped");
        return;
    }
    shoal__xfer_start(&g->x);
}

/* Files generated when read: procfs and sysfs report 0 or a page whatever they hold. */
static bool generated(int fd)
{
    struct statfs sf;
    return fstatfs(fd, &sf) == 0 && (sf.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ ||
                                     sf.f_type == 0x62656572 /* SYSFS_MAGIC */);
}

/* Files whose size says nothing about their contents (read to the end when len is 0). */
static bool size_unknown(int fd, uint64_t fsize)
{
    return fsize == 0 || generated(fd);
}

/* Read the file from g->offset to its end into g->pre. Synchronous on the I/O thread, and
 * still O_NONBLOCK: such files are generated by the kernel at once (a file that would make
 * us wait answers EAGAIN and fails instead). 0 or a negative errno. */
static int read_to_eof(struct ingest *g, uint64_t limit)
{
    size_t cap = 64 << 10, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > limit) {
                free(buf);
                return -EFBIG;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = pread(g->fd, buf + n, cap - n, (off_t)(g->offset + n));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > limit) {
        free(buf);
        return -EFBIG;
    }
    g->pre = buf;
    g->size = n;
    return 0;
}

static void ingest_statted(shoal__iop *op, int res)
{
    struct ingest *g = op->owner;
    if (res < 0) {
        ingest_fail_errno(g, "cannot stat", res);
        return;
    }
    uint64_t fsize = g->stx.stx_size;
    bool regular = S_ISREG(g->stx.stx_mode);
    if (S_ISDIR(g->stx.stx_mode)) {
        ingest_fail_errno(g, "cannot read", -EISDIR);
        return;
    }
    const char *unfit = unfit_kind(g->fd, g->stx.stx_mode);
    if (unfit) {
        ingest_end(g, SHOAL_EIO, "shoal_put_file: '%s' is %s: shoal_put_file reads regular "
                   "files and devices, whose reads never wait on another process; read it "
                   "yourself and shoal_put the bytes", g->path, unfit);
        return;
    }
    if (g->want == 0 && regular && size_unknown(g->fd, fsize)) {
        int rc = read_to_eof(g, shoal__rt->hdr->store_bytes);
        if (rc == -EFBIG)
            ingest_end(g, SHOAL_EINVAL, "shoal_put_file: '%s' holds more than the whole store "
                       "(%llu bytes)", g->path, (unsigned long long)shoal__rt->hdr->store_bytes);
        else if (rc == -EAGAIN)
            ingest_end(g, SHOAL_EIO, "shoal_put_file: reading '%s' would wait for data that "
                       "is not there yet (its size is unknown, so it is read at once to its "
                       "end): read it yourself and shoal_put the bytes", g->path);
        else if (rc)
            ingest_fail_errno(g, "reading", rc);
        else
            ingest_fill(&g->w.msg);
        return;
    }
    if ((res = set_blocking(g->fd)) != 0) {
        ingest_fail_errno(g, "fcntl on", res);
        return;
    }
    if (g->want == 0) {
        if (!regular) {
            ingest_end(g, SHOAL_EIO, "shoal_put_file: '%s' is not a regular file: its length "
                       "is unknown, pass len", g->path);
            return;
        }
        if (g->offset > fsize) {
            ingest_end(g, SHOAL_EIO, "shoal_put_file: offset %llu is beyond the end of '%s' "
                       "(%llu bytes)", (unsigned long long)g->offset, g->path,
                       (unsigned long long)fsize);
            return;
        }
        g->size = fsize - g->offset;
    } else {
        g->size = g->want;
        /* A generated file's size says nothing: its range is read as asked, and one that
         * ends early fails as a short read at the end of the transfer. */
        if (regular && g->offset + g->want > fsize && !generated(g->fd)) {
            ingest_end(g, SHOAL_EIO, "shoal_put_file: short read: '%s' has %llu bytes, fewer "
                       "than offset %llu + len %llu", g->path, (unsigned long long)fsize,
                       (unsigned long long)g->offset, (unsigned long long)g->want);
            return;
        }
    }
    /* A file system that reports its direct-I/O alignment and needs more than we align to,
     * or none at all, gets buffered reads. */
    g->dio_ok = shoal__io_direct() && regular && g->size >= SHOAL__IO_DIRECT_MIN &&
                g->offset % SHOAL__IO_ALIGN == 0 &&
                (!(g->stx.stx_mask & STATX_DIOALIGN) ||
                 (g->stx.stx_dio_mem_align != 0 && g->stx.stx_dio_mem_align <= SHOAL__IO_ALIGN &&
                  g->stx.stx_dio_offset_align <= SHOAL__IO_ALIGN));
    ingest_fill(&g->w.msg);
}

static void ingest_opened(shoal__iop *op, int res)
{
    struct ingest *g = op->owner;
    if (res < 0) {
        ingest_fail_errno(g, "cannot open", res);
        return;
    }
    g->fd = res;
    /* statx of the open fd runs here, not on the ring: io_uring always hands a statx to one
     * of its worker threads, and waking that thread and then this one back cost two turns of
     * the scheduler before the first read (up to 23 ms each on this 2-core machine when it
     * was busy; one 256 MiB read from the page cache takes 16-35 ms). Asked of an open fd
     * with AT_STATX_DONT_SYNC (io/fallback.c), it answers from the inode in memory and never
     * waits for a file server: the open has just revalidated what a network file system
     * caches. */
    op->code = SHOAL__IOP_STATX;
    op->fd = g->fd;
    op->buf = &g->stx;
    ingest_statted(op, shoal__io_exec(op));
}

static void ingest_open_op(struct ingest *g)
{
    g->op = (shoal__iop){ .code = SHOAL__IOP_OPEN, .path = g->path,
                          .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK,
                          .done = ingest_opened, .owner = g, .fd = -1 };
}

void (*shoal__ingest_start_hook)(void);

static void ingest_start(shoal__iomsg *m)
{
    struct ingest *g = (struct ingest *)((char *)m - offsetof(struct ingest, start));
    if (unlikely(shoal__ingest_start_hook != NULL))
        shoal__ingest_start_hook();
    bool mine = claim(g->take, g->ref.id);
    ingest_put(g);   /* the message's reference; the owner holds the other */
    if (!mine)
        return;      /* a waiting caller runs it (shoal__ingest_take) */
    ingest_open_op(g);
    shoal__io_submit(&g->op);
}

/* A waiting caller runs the whole ingest on its own thread when the I/O thread has not
 * started it yet. The caller would otherwise sleep while the I/O thread reads, and the two
 * hand-offs (the post waking the I/O thread, the completion waking the caller) each wait
 * for a turn of the scheduler: on a busy 2-core machine up to 5 ms each, against 17-25 ms
 * for reading 256 MiB from the page cache (the cause of buffered ingest's 0.73x-0.92x
 * pairs against a pread loop in one full run of bench/io). O_DIRECT reads, and files not
 * in the page cache, are still read by the I/O thread (read_shared hands them over). */
int shoal__ingest_take(shoal_ref ref)
{
    int i = (int)(shoal__id_idx(ref.id) % TAKE_SLOTS);
    /* acquire: pairs with offer's release; g's fields are visible. */
    if (atomic_load_explicit(&takeable[i].id, memory_order_acquire) != ref.id)
        return 0;
    struct ingest *g = atomic_load_explicit(&takeable[i].g, memory_order_relaxed);
    if (!g || !claim(i, ref.id))
        return 0;
    /* The thread may not be cancelled half way (the fd and the object would be lost): its
     * syscalls here are cancellation points. */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    g->sync = true;
    ingest_open_op(g);
    ingest_opened(&g->op, shoal__io_exec(&g->op));
    pthread_setcancelstate(old, NULL);
    return 1;
}

static int put_file(const char *path, uint64_t offset, size_t len, shoal_ref *out)
{
    int rc;
    size_t n;
    if ((rc = check_path("shoal_put_file", path, &n)))
        return rc;
    if (!out)
        return shoal__err(SHOAL_EINVAL, "shoal_put_file: out is NULL");
    if (offset > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - offset)
        return shoal__err(SHOAL_EINVAL, "shoal_put_file: offset %llu + len %zu overflows a file "
                          "offset", (unsigned long long)offset, len);
    if (len > shoal__rt->hdr->store_bytes)
        return shoal__err(SHOAL_EINVAL, "shoal_put_file: len %zu is larger than the whole store "
                          "(%llu bytes)", len, (unsigned long long)shoal__rt->hdr->store_bytes);
    struct ingest *g = calloc(1, sizeof *g + n + 1);
    if (!g)
        return shoal__err(SHOAL_ENOMEM, "shoal_put_file: out of memory");
    memcpy(g->path, path, n + 1);
    g->offset = offset;
    g->want = len;
    g->fd = -1;
    g->node = shoal__tls.node;
    /* Two references: the caller's, and this operation's until it completes the object. */
    rc = shoal__obj_new(SHOAL__PENDING, 0, g->node, 2, NULL, &g->ref);
    if (rc) {
        free(g);
        return rc;
    }
    shoal_ref ref = g->ref;
    atomic_init(&g->refs, 2);
    offer(g);
    g->start.run = ingest_start;
    rc = shoal__io_post(&g->start);
    if (rc) {
        if (!claim(g->take, ref.id)) {
            /* A thread that knew the id before we returned it took the ingest: it runs. */
            ingest_put(g);
            *out = ref;
            return 0;
        }
        shoal__obj_complete(ref, SHOAL_ECANCELED, "shoal_put_file: the I/O engine stopped");
        shoal__release(ref);
        shoal__release(ref);
        free(g);
        return rc;
    }
    *out = ref;
    return 0;
}

SHOAL_API int shoal_put_file(const char *path, uint64_t offset, size_t len, shoal_ref *out)
{
    SHOAL__CALL(put_file(path, offset, len, out));
}

/* ---- export: object -> file ---------------------------------------------------------------- */

struct export {
    shoal__iowait w;              /* w.msg: the start message, later the restore retry */
    shoal__dep dep;
    shoal_ref src, done;
    int failed;                   /* the source failed (from the dependency) */
    int node;
    int fd;
    bool pinned;
    bool special;                 /* not a regular file (a device): fsync may not apply */
    const char *data;
    uint64_t len, body;           /* body: the part written with O_DIRECT */
    shoal__iop op;
    shoal__xfer x;
    struct export *wprev, *wnext; /* on `waiting` while its dependency may still fire */
    bool waiting;
    bool canceled;                /* by shoal__export_cancel_waiting: a late fire is a no-op */
    char path[];
};

/* Writes registered as dependents of a source that has not completed yet. One that is
 * still here when the I/O thread stops waits on an object nobody will complete now (never
 * sealed, or another process's, whose list the drain thread's stop dropped): it is failed
 * and freed then (shoal__export_cancel_waiting), as the scheduler cancels a task waiting on
 * such an argument; before, its block (and its source's reference) leaked at shutdown. */
static pthread_mutex_t waiting_mu = PTHREAD_MUTEX_INITIALIZER;
static struct export *waiting;

int (*shoal__export_post_hook)(void);

static void waiting_add(struct export *e)
{
    pthread_mutex_lock(&waiting_mu);
    e->wprev = NULL;
    e->wnext = waiting;
    if (waiting)
        waiting->wprev = e;
    waiting = e;
    e->waiting = true;
    pthread_mutex_unlock(&waiting_mu);
}

static void waiting_unlink(struct export *e)
{
    if (e->wprev)
        e->wprev->wnext = e->wnext;
    else
        waiting = e->wnext;
    if (e->wnext)
        e->wnext->wprev = e->wprev;
    e->waiting = false;
}

static void waiting_take(struct export *e)
{
    pthread_mutex_lock(&waiting_mu);
    if (e->waiting)
        waiting_unlink(e);
    pthread_mutex_unlock(&waiting_mu);
}

void shoal__export_fork_child(void)
{
    /* A fork() child: the list holds the parent's writes (the child's copies), and its lock
     * may have been held by a thread that is not here. Forgotten, never canceled here. */
    pthread_mutex_init(&waiting_mu, NULL);
    waiting = NULL;
}

static void export_end(struct export *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void export_end(struct export *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complete_v(e->done, code, fmt, ap);   /* and the reference this operation held */
    va_end(ap);
    if (e->pinned)
        shoal__spill_unpin(e->src);
    shoal__release(e->src);
    close_and_free(&e->op, e->fd, e, close_done);
}

static void export_fail_errno(struct export *e, const char *what, int res)
{
    export_end(e, SHOAL_EIO, "shoal_write_file: %s '%s': %s (errno %d)", what, e->path,
               strerror(-res), -res);
}

static void export_synced(shoal__iop *op, int res)
{
    struct export *e = op->owner;
    /* EINVAL / EROFS: the fd is a special file that has no synchronization (/dev/null and
     * other character devices, fsync(2)): its writes are all there is, and they succeeded. */
    if ((res == -EINVAL || res == -EROFS) && e->special)
        res = 0;
    if (res < 0)
        export_fail_errno(e, "fsync of", res);
    else
        export_end(e, 0, NULL);
}

static void export_sync(struct export *e)
{
    e->op.code = SHOAL__IOP_FSYNC;
    e->op.fd = e->fd;
    e->op.done = export_synced;
    shoal__io_submit(&e->op);
}

static void export_tail_done(shoal__xfer *x)
{
    struct export *e = x->owner;
    if (x->err)
        export_fail_errno(e, "writing", x->err);
    else
        export_sync(e);
}

static void export_body_done(shoal__xfer *x)
{
    struct export *e = x->owner;
    if (x->err) {
        export_fail_errno(e, "writing", x->err);
        return;
    }
    if (e->body == e->len) {
        export_sync(e);
        return;
    }
    /* The tail is not a whole block: write it through the page cache. */
    int rc = e->body ? set_direct(e->fd, false) : 0;
    if (rc) {
        export_fail_errno(e, "fcntl on", rc);
        return;
    }
    e->x = (shoal__xfer){ .fd = e->fd, .write = true, .direct = false,
                          .buf = (char *)e->data + e->body, .len = e->len - e->body,
                          .foff = e->body, .finish = export_tail_done, .owner = e };
    shoal__xfer_start(&e->x);
}

static void export_opened(shoal__iop *op, int res)
{
    struct export *e = op->owner;
    if (res == -ENXIO) {   /* O_NONBLOCK open of a FIFO nobody reads */
        export_end(e, SHOAL_EIO, "shoal_write_file: '%s' is a FIFO (named pipe) with no "
                   "reader: shoal_write_file writes regular files and devices", e->path);
        return;
    }
    if (res < 0) {
        export_fail_errno(e, "cannot create", res);
        return;
    }
    e->fd = res;
    struct stat st;
    bool known = fstat(e->fd, &st) == 0;
    const char *unfit = known ? unfit_kind(e->fd, st.st_mode) : NULL;
    e->special = known && !S_ISREG(st.st_mode);
    if (unfit) {
        export_end(e, SHOAL_EIO, "shoal_write_file: '%s' is %s: shoal_write_file writes "
                   "regular files and devices, whose writes never wait on another process",
                   e->path, unfit);
        return;
    }
    if ((res = set_blocking(e->fd)) != 0) {
        export_fail_errno(e, "fcntl on", res);
        return;
    }
    if (e->body && set_direct(e->fd, true) != 0)
        e->body = 0;   /* this file system refuses O_DIRECT: write it all buffered */
    /* No fallocate first: writes into preallocated (unwritten) blocks each need a
     * conversion at completion, measured 0.7-0.9x of plain pwrite here, against 1.1-1.2x
     * for writes that extend the file. */
    e->x = (shoal__xfer){ .fd = e->fd, .write = true, .direct = e->body != 0,
                          .buf = (char *)e->data, .len = e->body, .foff = 0,
                          .finish = export_body_done, .owner = e,
                          .chunk = SHOAL__IO_WCHUNK, .qd = SHOAL__IO_WQD };
    shoal__xfer_start(&e->x);
}

/* A spilled source that found no room to come back fails the write with SHOAL_ENOMEM, as
 * a get of it would: nothing was lost and the caller may retry once there is room. Only a
 * failed read of the spill file is an I/O error. */
static int restore_code(int rc)
{
    return rc == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_EIO;
}

static void export_start(shoal__iomsg *m)
{
    struct export *e = (struct export *)m;
    if (e->w.rc < 0) {   /* the restore of a spilled source failed */
        export_end(e, restore_code(e->w.rc), "shoal_write_file '%s': %s", e->path, e->w.err);
        return;
    }
    const void *d;
    size_t n;
    if (!e->failed) {
        /* A spilled source comes back first; the restore runs this again when done. */
        e->w.msg.run = export_start;
        int rc = shoal__spill_resident(e->src, e->node, &e->w);
        if (rc == 1)
            return;
        if (rc < 0) {
            export_end(e, restore_code(rc), "shoal_write_file '%s': %s", e->path,
                       shoal_last_error());
            return;
        }
    }
    /* A get from this thread never waits: the source is complete and resident. It clears
     * the UNREAD mark, and the pin keeps the spiller off it while the bytes are written. */
    int rc = shoal_get_timeout(e->src, 0, &d, &n);
    if (rc) {
        export_end(e, rc == SHOAL_ETASK || rc == SHOAL_ECANCELED ? rc : SHOAL_EIO,
                   "shoal_write_file '%s': the object failed: %s", e->path, shoal_last_error());
        return;
    }
    shoal__spill_pin(e->src);
    e->pinned = true;
    e->data = d;
    e->len = n;
    if (shoal__io_direct() && n >= SHOAL__IO_DIRECT_MIN && (uintptr_t)d % SHOAL__IO_ALIGN == 0)
        e->body = n / SHOAL__IO_ALIGN * SHOAL__IO_ALIGN;
    e->op = (shoal__iop){ .code = SHOAL__IOP_OPEN, .path = e->path,
                          .flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK,
                          .len = 0644, .done = export_opened, .owner = e, .fd = -1 };
    shoal__io_submit(&e->op);
}

static void export_ready(shoal__dep *d, int failed)
{
    struct export *e = (struct export *)((char *)d - offsetof(struct export, dep));
    pthread_mutex_lock(&waiting_mu);
    bool canceled = e->canceled;
    if (e->waiting)
        waiting_unlink(e);
    pthread_mutex_unlock(&waiting_mu);
    if (canceled)
        return;   /* failed already; its source is another canceled write's result */
    e->failed = failed;
    int rc = unlikely(shoal__export_post_hook != NULL) ? shoal__export_post_hook() : 0;
    if (likely(rc == 0))
        rc = shoal__io_post(&e->w.msg);
    if (unlikely(rc != 0)) {
        /* No engine takes it (stopped, or stopping): the write never starts. It has opened
         * no file and pinned nothing, so it ends here, on the completing thread: its result
         * fails (a get of it wakes) and its record and its source's reference go. */
        export_end(e, SHOAL_ECANCELED, "shoal_write_file '%s': canceled: the I/O engine "
                   "could not start the write (%s)", e->path, shoal_last_error());
    }
}

bool shoal__export_cancel_waiting(void)
{
    /* All of them at once: a write's source may be another waiting write's result, which
     * this completes (firing the first write, a no-op now). Their dependencies stay
     * registered, but nothing else completes a source any more (the scheduler and the drain
     * thread have stopped; this is the last thread that completes objects): once all are
     * failed, none fires again, and they are freed. */
    pthread_mutex_lock(&waiting_mu);
    struct export *all = waiting;
    waiting = NULL;
    for (struct export *e = all; e; e = e->wnext) {
        e->waiting = false;
        e->canceled = true;
    }
    pthread_mutex_unlock(&waiting_mu);
    if (!all)
        return false;
    for (struct export *e = all; e; e = e->wnext) {
        char msg[PATH_MAX + 128];
        snprintf(msg, sizeof msg, "shoal_write_file '%s': canceled: the runtime stopped before "
                 "its source object completed", e->path);
        shoal__obj_complete(e->done, SHOAL_ECANCELED, msg);
        shoal__release(e->done);
        shoal__release(e->src);
    }
    while (all) {
        struct export *next = all->wnext;
        free(all);   /* never opened a file nor pinned its source */
        all = next;
    }
    return true;
}

static int write_file(shoal_ref ref, const char *path, shoal_ref *done)
{
    int rc;
    size_t n;
    if ((rc = check_path("shoal_write_file", path, &n)))
        return rc;
    if (!done)
        return shoal__err(SHOAL_EINVAL, "shoal_write_file: done is NULL");
    if ((rc = shoal__retain(ref)))   /* EINVAL / ESTALE with the message set */
        return rc;
    struct export *e = calloc(1, sizeof *e + n + 1);
    if (!e) {
        shoal__release(ref);
        return shoal__err(SHOAL_ENOMEM, "shoal_write_file: out of memory");
    }
    memcpy(e->path, path, n + 1);
    e->src = ref;
    e->fd = -1;
    e->node = shoal__tls.node;
    e->w.msg.run = export_start;
    e->dep.kind = SHOAL__DEP_EXPORT;
    shoal__dep_kind_set(SHOAL__DEP_EXPORT, export_ready);
    rc = shoal__obj_new(SHOAL__PENDING, 0, -1, 2, NULL, &e->done);
    if (rc) {
        shoal__release(ref);
        free(e);
        return rc;
    }
    shoal_ref d = e->done;
    /* Written when the source is complete: at once, or by its completion. On the waiting
     * list first: the dependency may fire as soon as it is registered. */
    waiting_add(e);
    rc = shoal__dep_add(ref, &e->dep);
    if (rc != 0)   /* not registered: it never fires */
        waiting_take(e);
    if (rc == 1)
        rc = shoal__io_post(&e->w.msg);
    if (rc < 0) {
        shoal__obj_complete(d, SHOAL_ECANCELED, "shoal_write_file: not started");
        shoal__release(d);
        shoal__release(d);
        shoal__release(ref);
        free(e);
        return rc;
    }
    *done = d;
    return 0;
}

SHOAL_API int shoal_write_file(shoal_ref ref, const char *path, shoal_ref *done)
{
    SHOAL__CALL(write_file(ref, path, done));
}
