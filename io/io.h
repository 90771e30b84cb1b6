/* io.h - the I/O engine shared by io/ *.c: one I/O thread per process that owns an io_uring
 * (or, when io_uring is unavailable, runs the same primitive operations with plain syscalls),
 * the lock-free inbox through which any thread hands it work, and the primitive operations
 * the file and spill state machines are built from. Internal: never installed.
 *
 * Threads: everything below marked "I/O thread" runs only on the I/O thread and takes no
 * lock; shoal__io_post is the one entry point for other threads (lock-free, no syscall
 * unless the I/O thread sleeps).
 */
#ifndef SHOAL_IO_IO_H
#define SHOAL_IO_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../core/store.h"

#define SHOAL__IO_CHUNK   ((uint32_t)1 << 20)   /* bytes per read/write request */
#define SHOAL__IO_QD      16                    /* requests in flight per file operation */
/* Writes that extend a file go as fewer, larger requests: each takes the file's inode lock
 * exclusively (ext4), so sixteen 1 MiB writes in flight contend and reached 0.7x of a plain
 * pwrite loop here, where four 4 MiB writes in flight match it. */
#define SHOAL__IO_WCHUNK  ((uint32_t)4 << 20)
#define SHOAL__IO_WQD     4
#define SHOAL__IO_ALIGN   4096u                 /* O_DIRECT alignment we rely on */
/* Files and objects at least this large bypass the page cache (O_DIRECT): their bytes live
 * in the store, a second copy in the page cache only costs memory, and the disk gives the
 * same bandwidth either way. Smaller ones go through the cache: a hot small file is read at
 * memory speed there, where O_DIRECT would wait for the disk every time. */
#define SHOAL__IO_DIRECT_MIN ((uint64_t)1 << 20)

/* ---- primitive operations (I/O thread) ------------------------------------------------ */
enum shoal__iop_code {
    SHOAL__IOP_READ, SHOAL__IOP_WRITE, SHOAL__IOP_OPEN, SHOAL__IOP_STATX, SHOAL__IOP_CLOSE,
    SHOAL__IOP_FSYNC, SHOAL__IOP_UNLINK, SHOAL__IOP_PUNCH,
};

/* One system call's worth of work. The submitter owns the memory until done() runs. */
typedef struct shoal__iop {
    struct shoal__iop *next;      /* backend queues */
    void (*done)(struct shoal__iop *op, int res);   /* res: bytes, fd, 0, or -errno */
    void *owner;                  /* the state machine this belongs to */
    uint8_t code;
    int fd;                       /* READ/WRITE/CLOSE/FSYNC/PUNCH; STATX: -1 = by path */
    int flags;                    /* OPEN: open flags */
    void *buf;                    /* READ/WRITE data; STATX: struct statx * */
    uint32_t len;                 /* READ/WRITE/PUNCH bytes; OPEN: creation mode */
    uint64_t off;                 /* file offset */
    const char *path;             /* OPEN/STATX/UNLINK */
} shoal__iop;

/* Queue op on the ring (or the fallback executor); op->done runs later on the I/O thread,
 * never from inside this call. I/O thread only. */
SHOAL__HIDDEN void shoal__io_submit(shoal__iop *op);
/* Execute op with a plain syscall and return its result as io_uring would (-errno on
 * failure). The fallback backend's worker; also used for tiny synchronous steps. */
SHOAL__HIDDEN int shoal__io_exec(shoal__iop *op);

/* ---- messages from any thread --------------------------------------------------------- */
typedef struct shoal__iomsg {
    struct shoal__iomsg *_Atomic next;
    void (*run)(struct shoal__iomsg *m);   /* called on the I/O thread */
} shoal__iomsg;

/* Hand m to the I/O thread. Lock-free; rings the doorbell (one futex wake) only when the
 * I/O thread sleeps. Returns SHOAL_ENOTINIT when no engine runs. Any thread. */
SHOAL__HIDDEN int shoal__io_post(shoal__iomsg *m);
/* Wake the I/O thread so that it looks at its timers again (a private store's in-flight
 * refs got an earlier deadline, mproc/inflight.c). Any thread; nothing when no engine runs. */
SHOAL__HIDDEN void shoal__io_kick(void);
/* Run m on a later turn of the I/O thread's loop (after the current completions).
 * I/O thread only. */
SHOAL__HIDDEN void shoal__io_defer(shoal__iomsg *m);
/* True on the I/O thread. */
SHOAL__HIDDEN bool shoal__io_self(void);
/* O_DIRECT allowed (SHOAL_IO_DIRECT=0 turns it off: every transfer goes through the page
 * cache). Read at start. */
SHOAL__HIDDEN bool shoal__io_direct(void);

/* ---- synchronous requests: a thread waits for the I/O thread's answer ------------------ */
/* Room for a reason handed between the I/O thread and a caller: with the caller's own words
 * around it, it still fits a thread's 512-byte message (os/errors.c). */
#define SHOAL__IO_MSG 400
typedef struct shoal__iosync {
    shoal__iomsg msg;
    _Atomic uint32_t done;        /* futex word: 0 waiting, 1 answered */
    int rc;
    char err[SHOAL__IO_MSG];      /* message when rc < 0 */
} shoal__iosync;

/* Post s and wait for shoal__iosync_answer; a worker runs other tasks meanwhile.
 * Returns s->rc (message set as this thread's last error when < 0). */
SHOAL__HIDDEN int shoal__iosync_call(shoal__iosync *s);
/* The same; with help false a worker does not run other tasks while it waits (it naps). */
SHOAL__HIDDEN int shoal__iosync_wait(shoal__iosync *s, bool help);
/* I/O thread: answer s (rc, message copied from fmt) and wake its caller. s must not be
 * touched afterwards. */
SHOAL__HIDDEN void shoal__iosync_answer(shoal__iosync *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- allocation on the I/O thread -------------------------------------------------------- */
/* A state machine that needs store memory on the I/O thread must not wait for spilling
 * (that is the I/O thread's own job): it parks here and is run again when room was made. */
typedef struct shoal__iowait {
    shoal__iomsg msg;             /* msg.run is called again when room was made */
    uint64_t need;                /* bytes wanted */
    unsigned tries;               /* > 0: an earlier answer did not suffice, spill for real */
    int rc;                       /* set before msg.run: 0 retry, < 0 no room can be made */
    char err[SHOAL__IO_MSG];      /* the reason when rc < 0 */
    struct shoal__iowait *next;
} shoal__iowait;

/* Allocate len bytes on node (or any node with room) without waiting: 0 with *off set;
 * 1 when spilling may make room: w is parked and w->msg.run runs again later (w->rc 0 =
 * retry, < 0 = give up with w->err); < 0 when it cannot (message set). I/O thread only. */
SHOAL__HIDDEN int shoal__io_alloc(size_t len, int node, uint64_t *off, shoal__iowait *w);
/* Free bytes allocated in the store. Any thread that called shoal__tls_check. The store's
 * count of bytes in use drops by their whole footprint at least: the freeing thread keeps
 * no capacity credit (alloc/arena.h), which no other thread could use. */
SHOAL__HIDDEN void shoal__io_free(uint64_t off, size_t len);

/* ---- chunked transfers (io/xfer.c) ----------------------------------------------------- */
/* Move len bytes between buf and fd at file offset foff in SHOAL__IO_CHUNK requests, up to
 * SHOAL__IO_QD in flight, retrying EINTR/EAGAIN and continuing short transfers. With direct
 * (fd opened O_DIRECT, buf and foff aligned), requests are rounded up to SHOAL__IO_ALIGN, so
 * buf must have that much room. finish runs once on the I/O thread when every byte moved
 * (err 0) or after the first error, once nothing is in flight (err -errno, or
 * SHOAL__XFER_SHORT when a read hit the end of the file at byte short_at). */
#define SHOAL__XFER_SHORT (-100000)
typedef struct shoal__xfer {
    int fd;
    bool write, direct;
    char *buf;
    uint64_t len, foff;
    void (*finish)(struct shoal__xfer *x);
    void *owner;
    uint32_t chunk;               /* bytes per request; 0 = SHOAL__IO_CHUNK */
    unsigned qd;                  /* requests in flight, at most SHOAL__IO_QD; 0 = that */
    /* private */
    uint64_t span, next, moved, short_at;
    unsigned inflight;
    int err;
    uint32_t busy;                /* bit i: ops[i] in flight */
    shoal__iop ops[SHOAL__IO_QD];
} shoal__xfer;
SHOAL__HIDDEN void shoal__xfer_start(shoal__xfer *x);
/* True when a transfer of len bytes at buf (usable room `room`) and file offset foff can use
 * O_DIRECT: aligned, and the rounded-up requests stay inside the allocation. */
static inline bool shoal__xfer_can_direct(const void *buf, uint64_t len, uint64_t room,
                                          uint64_t foff)
{
    uint64_t up = (len + SHOAL__IO_ALIGN - 1) / SHOAL__IO_ALIGN * SHOAL__IO_ALIGN;
    return len >= SHOAL__IO_ALIGN && ((uintptr_t)buf % SHOAL__IO_ALIGN) == 0 &&
           foff % SHOAL__IO_ALIGN == 0 && room >= up;
}

/* ---- lifecycle (io/ring.c), called by runtime/runtime.c ---------------------------------- */
/* Validate spill_dir, clean what a crashed run left there, start the I/O thread.
 * Called by shoal_init before the runtime is published. */
SHOAL__HIDDEN int  shoal__io_start(shoal__rt_t *rt);
/* Finish the work queued and in flight (work parked for store room that cannot come fails
 * with SHOAL_ECANCELED), remove the spill file, join the I/O thread. Called by shutdown
 * after the workers stopped (their tasks may wait on I/O) and while the store is still
 * whole; idempotent. */
SHOAL__HIDDEN void shoal__io_stop(shoal__rt_t *rt);
/* On the I/O thread as it stops (io/file.c): fail and free every shoal_write_file still
 * waiting for a source nobody will complete now; true if there was one. */
SHOAL__HIDDEN bool shoal__export_cancel_waiting(void);
/* Tests: when set, a write's dependency firing asks it first and, when it answers non-zero
 * (a code, message set), acts as if shoal__io_post had failed with it. */
extern SHOAL__HIDDEN int (*shoal__export_post_hook)(void);
/* Tests: when set, the I/O thread calls it before it tries to start an ingest, so a test can
 * hold it there while a waiting caller takes the ingest over (shoal__ingest_take). */
extern SHOAL__HIDDEN void (*shoal__ingest_start_hook)(void);
/* In a fork() child (io/ring.c's handler): forget the parent's waiting writes. */
SHOAL__HIDDEN void shoal__export_fork_child(void);
/* The same for the parent's ingests that a waiting caller could have taken over. */
SHOAL__HIDDEN void shoal__ingest_fork_child(void);
/* io/file.c, the store's upcall ingest_take (core/store.h): if ref is a shoal_put_file the
 * I/O thread has not started, run it on the calling thread and return 1; else 0. */
SHOAL__HIDDEN int shoal__ingest_take(shoal_ref ref);

/* Timing helper for the counters. */
static inline uint64_t shoal__io_now(void) { return shoal__now_ns(); }

#endif
