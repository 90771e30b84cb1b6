/* ring.c - the I/O thread: owns the process's io_uring, drains the lock-free inbox other
 * threads post work to, submits primitive operations in batches and runs their completions.
 * When io_uring is unavailable it runs the same operations with plain syscalls (fallback.c).
 *
 * Why one dedicated I/O thread and not a ring per worker: workers must never block in the
 * kernel, and a ring driven from a worker's loop must still be entered (io_uring_enter) to
 * submit and to reap, which puts syscalls on the workers' path and ties I/O progress to task
 * lengths: a worker busy in a 10 ms task would leave its ring's completions unreaped. One
 * thread that only does I/O keeps workers syscall-free (posting is a lock-free push; the
 * doorbell is rung only when this thread sleeps), reaps completions as they land, and gets
 * the batching that matters here: one io_uring NOP costs 1.39 us alone and 0.086 us in
 * batches of 32 (measured on a 2-core x86-64 VM, kernel 6.18), and this thread submits everything one loop turn produced
 * with one io_uring_enter. Its CPU cost is the submit/reap work; the data moves by DMA
 * (O_DIRECT) or by the kernel's copy. On a many-node machine the natural extension is one
 * such thread per NUMA node; shoal runs one until a machine shows that one is not enough.
 *
 * Synchronisation (inbox: Treiber stack, drained whole):
 *   inbox     push: CAS, release (publishes the message); drain: exchange, acquire.
 *   sleeping  Dekker pair with inbox: the poster stores the message then reads sleeping, the
 *             I/O thread stores sleeping then reads the inbox, all four seq_cst (no fences:
 *             TSan does not model them), so at least one of them sees the other.
 *   bell      futex word bumped (release) by the poster that clears sleeping; the I/O thread
 *             reads it (acquire) before its last inbox check and sleeps only while it holds
 *             that value (FUTEX_WAIT semantics, in the ring or as a syscall).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "../alloc/arena.h"
#include "../core/thread.h"
#include "../os/futex.h"
#include "io.h"
#include "spill.h"

#define RING_ENTRIES 256
#define REAP_BATCH   64
#define FALLBACK_BATCH 64           /* ops run per loop turn before the inbox is looked at */
#define WAIT_SPINS   128

/* io_uring futex wait (kernel 6.7); liburing 2.3 predates it, so the SQE is built by hand. */
#define OP_FUTEX_WAIT 51
#define FUTEX2_SIZE_U32_ 0x02
#define FUTEX2_PRIVATE_  128

struct engine {
    shoal__rt_t *rt;
    pthread_t thread;
    bool started;
    bool fallback;                /* plain syscalls, no ring */
    bool direct;                  /* O_DIRECT allowed */
    bool futex_bell;              /* the ring can wait on the bell futex itself */
    int evfd;                     /* else: the bell is an eventfd read kept in the ring */
    struct io_uring ring;
    bool ring_made;

    _Alignas(SHOAL__CACHELINE) shoal__iomsg *_Atomic inbox;
    _Alignas(SHOAL__CACHELINE) _Atomic uint32_t sleeping;
    _Atomic uint32_t bell;
    _Atomic bool stop;

    /* I/O thread only below. */
    _Alignas(SHOAL__CACHELINE) shoal__iomsg *def_head, *def_tail;
    shoal__iop *back_head, *back_tail;     /* ring full or at the in-flight cap */
    shoal__iop *run_head, *run_tail;       /* fallback: queued operations */
    shoal__iop *done_head, *done_tail;     /* fallback: executed, completion not yet run */
    unsigned inflight, cap;
    bool bell_armed;
    uint64_t evbuf;
};

static _Atomic(struct engine *) engine_g;
static __thread bool io_thread;

bool shoal__io_self(void) { return io_thread; }

static inline struct engine *eng(void)
{
    /* acquire: pairs with the release in shoal__io_start; the engine's fields are visible. */
    return atomic_load_explicit(&engine_g, memory_order_acquire);
}

bool shoal__io_direct(void)
{
    struct engine *e = eng();
    return e && e->direct;
}

/* ---- posting ----------------------------------------------------------------------------- */

static void ring_bell(struct engine *e)
{
    /* release: pairs with the acquire load of bell in idle_wait. */
    atomic_fetch_add_explicit(&e->bell, 1, memory_order_release);
    if (!e->fallback && !e->futex_bell) {
        /* An eventfd write never blocks: the counter would have to reach 2^64 - 2. */
        uint64_t one = 1;
        ssize_t n = write(e->evfd, &one, sizeof one);
        (void)n;
    } else {
        shoal__futex_wake(&e->bell, 1, false);
    }
}

void shoal__io_kick(void)
{
    struct engine *e = eng();
    if (e)
        ring_bell(e);
}

int shoal__io_post(shoal__iomsg *m)
{
    struct engine *e = eng();
    if (unlikely(!e))
        return shoal__err(SHOAL_ENOTINIT, "the I/O engine is not running: call shoal_init() "
                                          "or shoal_attach() first (a forked child has none)");
    shoal__iomsg *h = atomic_load_explicit(&e->inbox, memory_order_relaxed);
    do {
        atomic_store_explicit(&m->next, h, memory_order_relaxed);
        /* seq_cst: publishes m (release) to the I/O thread's exchange, and is the store
         * half of the Dekker pair with idle_wait. */
    } while (!atomic_compare_exchange_weak_explicit(&e->inbox, &h, m, memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* seq_cst: the load half of the Dekker pair (see the top of the file). */
    if (atomic_load_explicit(&e->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&e->sleeping, 0, memory_order_relaxed))
        ring_bell(e);
    return 0;
}

void shoal__io_defer(shoal__iomsg *m)
{
    struct engine *e = eng();
    atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
    if (e->def_tail)
        atomic_store_explicit(&e->def_tail->next, m, memory_order_relaxed);
    else
        e->def_head = m;
    e->def_tail = m;
}

/* ---- synchronous requests --------------------------------------------------------------- */

int shoal__iosync_call(shoal__iosync *s) { return shoal__iosync_wait(s, true); }

int shoal__iosync_wait(shoal__iosync *s, bool help)
{
    if (io_thread)
        return shoal__err(SHOAL_EINVAL, "internal: the I/O thread cannot wait for itself");
    atomic_store_explicit(&s->done, 0, memory_order_relaxed);
    s->rc = 0;
    s->err[0] = 0;
    int rc = shoal__io_post(&s->msg);
    if (rc)
        return rc;
    unsigned spins = 0;
    /* acquire: pairs with the release store in shoal__iosync_answer (rc and err). */
    while (!atomic_load_explicit(&s->done, memory_order_acquire)) {
        if (help && shoal__tls.worker >= 0 && shoal__help_hook && shoal__help_hook()) {
            spins = 0;
            continue;
        }
        if (spins++ < WAIT_SPINS) {
            shoal__cpu_relax();
            continue;
        }
        /* A worker naps 1 ms at most so that it comes back to run new tasks. */
        struct timespec nap = { 0, 1000000 };
        shoal__futex_wait(&s->done, 0, shoal__tls.worker >= 0 ? &nap : NULL, false);
    }
    if (s->rc < 0)
        return shoal__err(s->rc, "%s", s->err);
    return s->rc;
}

void shoal__iosync_answer(shoal__iosync *s, int rc, const char *fmt, ...)
{
    s->rc = rc;
    s->err[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, sizeof s->err, fmt, ap);
        va_end(ap);
    }
    /* release: pairs with the acquire load in shoal__iosync_call. After this store the
     * caller may return and its stack frame (s) go away: the wake below uses only the
     * address, and a wake on a reused address is a harmless spurious wake-up. */
    atomic_store_explicit(&s->done, 1, memory_order_release);
    shoal__futex_wake(&s->done, 1, false);
}

/* ---- allocation on the I/O thread ------------------------------------------------------- */

int shoal__io_alloc(size_t len, int node, uint64_t *off, shoal__iowait *w)
{
    shoal__rt_t *rt = shoal__rt;
    struct shoal__thr *t = shoal__thr_get();
    if (!t)
        return shoal__err(SHOAL_ENOMEM, "out of memory for the I/O thread's caches");
    unsigned n = node >= 0 && (unsigned)node < rt->nnodes ? (unsigned)node : 0;
    int rc = shoal__arena_alloc(rt, t, len, n, off);
    if (rc != SHOAL_ENOMEM || !shoal__spill_on() || len > rt->hdr->store_bytes)
        return rc;
    w->need = len;
    w->rc = 0;
    w->err[0] = 0;
    shoal__spill_want(w);
    return 1;
}

void shoal__io_free(uint64_t off, size_t len)
{
    struct shoal__thr *t = shoal__thr_get();
    if (!t || !len)
        return;
    shoal__rt_t *rt = shoal__rt;
    unsigned n = shoal__off_node(rt, off);
    shoal__arena_free(rt, t, off, len);
    /* The capacity goes back to the store's count whole: the free keeps up to SHOAL__CREDIT
     * of it as this thread's credit (alloc/arena.h), and the spiller answers a waiting put
     * by the bytes its spills freed (io/spill.c). */
    shoal__cap_return_all(rt, t, n);
}

/* ---- the ring backend ------------------------------------------------------------------- */

static void prep(struct io_uring_sqe *sqe, shoal__iop *op)
{
    switch (op->code) {
    case SHOAL__IOP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->off);
        break;
    case SHOAL__IOP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->off);
        break;
    case SHOAL__IOP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, op->path, op->flags, op->len);
        break;
    case SHOAL__IOP_STATX:
        io_uring_prep_statx(sqe, op->fd >= 0 ? op->fd : AT_FDCWD, op->fd >= 0 ? "" : op->path,
                            op->fd >= 0 ? AT_EMPTY_PATH : 0,
                            STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, op->buf);
        break;
    case SHOAL__IOP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case SHOAL__IOP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, 0);
        break;
    case SHOAL__IOP_UNLINK:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, 0);
        break;
    case SHOAL__IOP_PUNCH:
        io_uring_prep_fallocate(sqe, op->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                op->off, op->len);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
}

static struct io_uring_sqe *get_sqe(struct engine *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) {
        io_uring_submit(&e->ring);   /* SQ full: hand this batch over, then go on */
        sqe = io_uring_get_sqe(&e->ring);
    }
    return sqe;
}

static void queue_back(struct engine *e, shoal__iop *op)
{
    op->next = NULL;
    if (e->back_tail)
        e->back_tail->next = op;
    else
        e->back_head = op;
    e->back_tail = op;
}

void shoal__io_submit(shoal__iop *op)
{
    struct engine *e = eng();
    op->next = NULL;
    if (e->fallback) {
        if (e->run_tail)
            e->run_tail->next = op;
        else
            e->run_head = op;
        e->run_tail = op;
        return;
    }
    struct io_uring_sqe *sqe;
    if (e->back_head || e->inflight >= e->cap || !(sqe = get_sqe(e))) {
        queue_back(e, op);
        return;
    }
    prep(sqe, op);
    e->inflight++;
}

static void bell_done(shoal__iop *op, int res)
{
    (void)res;
    ((struct engine *)op->owner)->bell_armed = false;
}

static shoal__iop bell_op = { .done = bell_done };

static void arm_bell(struct engine *e, uint32_t seen)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    if (!sqe)
        return;
    bell_op.owner = e;
    if (e->futex_bell) {
        io_uring_prep_rw(OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32_ | FUTEX2_PRIVATE_,
                         (const void *)&e->bell, 0, seen);
        sqe->addr3 = 0xffffffffu;   /* FUTEX_BITSET_MATCH_ANY */
    } else {
        io_uring_prep_read(sqe, e->evfd, &e->evbuf, sizeof e->evbuf, 0);
    }
    io_uring_sqe_set_data(sqe, &bell_op);
    e->bell_armed = true;
}

/* Move backlog into the ring, submit, reap; returns true if any completion ran. */
static bool ring_turn(struct engine *e)
{
    while (e->back_head && e->inflight < e->cap) {
        struct io_uring_sqe *sqe = get_sqe(e);
        if (!sqe)
            break;
        shoal__iop *op = e->back_head;
        e->back_head = op->next;
        if (!e->back_head)
            e->back_tail = NULL;
        prep(sqe, op);
        e->inflight++;
    }
    if (io_uring_sq_ready(&e->ring))
        io_uring_submit(&e->ring);
    bool any = false;
    for (;;) {
        struct io_uring_cqe *cqes[REAP_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&e->ring, cqes, REAP_BATCH);
        if (n == 0)
            break;
        shoal__iop *ops[REAP_BATCH];
        int res[REAP_BATCH];
        for (unsigned i = 0; i < n; i++) {
            ops[i] = io_uring_cqe_get_data(cqes[i]);
            res[i] = cqes[i]->res;
        }
        io_uring_cq_advance(&e->ring, n);
        for (unsigned i = 0; i < n; i++) {
            if (ops[i] != &bell_op)
                e->inflight--;
            ops[i]->done(ops[i], res[i]);
        }
        any = true;
    }
    return any;
}

/* ---- the fallback backend ------------------------------------------------------------- */

static bool fallback_turn(struct engine *e)
{
    bool any = false;
    for (int i = 0; i < FALLBACK_BATCH && e->run_head; i++) {
        shoal__iop *op = e->run_head;
        e->run_head = op->next;
        if (!e->run_head)
            e->run_tail = NULL;
        int res = shoal__io_exec(op);
        op->done(op, res);
        any = true;
    }
    return any;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static bool drain(struct engine *e)
{
    bool any = false;
    /* acquire: pairs with the release CAS in shoal__io_post. */
    shoal__iomsg *m = atomic_exchange_explicit(&e->inbox, NULL, memory_order_acquire);
    if (m) {
        shoal__iomsg *rev = NULL;   /* the stack is newest first: run in posting order */
        while (m) {
            shoal__iomsg *next = atomic_load_explicit(&m->next, memory_order_relaxed);
            atomic_store_explicit(&m->next, rev, memory_order_relaxed);
            rev = m;
            m = next;
        }
        while (rev) {
            shoal__iomsg *next = atomic_load_explicit(&rev->next, memory_order_relaxed);
            rev->run(rev);   /* may free rev */
            rev = next;
        }
        any = true;
    }
    /* Deferred messages queued before this point run now; ones they defer run next turn. */
    shoal__iomsg *d = e->def_head, *end = e->def_tail;
    if (d) {
        e->def_head = e->def_tail = NULL;
        for (;;) {
            shoal__iomsg *next = atomic_load_explicit(&d->next, memory_order_relaxed);
            bool last = d == end;
            d->run(d);
            if (last)
                break;
            d = next;
        }
        any = true;
    }
    return any;
}

static void idle_wait(struct engine *e, bool idle)
{
    /* seq_cst: the store half of the Dekker pair with shoal__io_post. */
    atomic_store_explicit(&e->sleeping, 1, memory_order_seq_cst);
    /* acquire: pairs with the release bump in ring_bell. */
    uint32_t seen = atomic_load_explicit(&e->bell, memory_order_acquire);
    /* seq_cst: the load half of the Dekker pair. */
    if (atomic_load_explicit(&e->inbox, memory_order_seq_cst) || e->def_head ||
        (idle && atomic_load_explicit(&e->stop, memory_order_acquire))) {
        atomic_store_explicit(&e->sleeping, 0, memory_order_relaxed);
        return;
    }
    /* Sleep until woken, or until the spiller has disk space to give back, or (a private
     * store's owner) until the first in-flight ref is due (mproc/inflight.c). */
    uint64_t due = shoal__spill_trim_due(), xd = e->rt->batched && shoal__tls_check() == 0 ? shoal__up.xfer_due() : 0;
    if (xd && (due == 0 || xd < due))
        due = xd;
    uint64_t now = due ? shoal__io_now() : 0;
    struct timespec ts;
    struct __kernel_timespec kts;
    if (due) {
        uint64_t ns = due > now ? due - now : 0;
        ts = (struct timespec){ (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
        kts = (struct __kernel_timespec){ ts.tv_sec, ts.tv_nsec };
    }
    if (e->fallback) {
        shoal__futex_wait(&e->bell, seen, due ? &ts : NULL, false);
    } else {
        if (!e->bell_armed)
            arm_bell(e, seen);
        if (due) {
            struct io_uring_cqe *cqe;
            io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &kts, NULL);
        } else {
            io_uring_submit_and_wait(&e->ring, 1);
        }
    }
    atomic_store_explicit(&e->sleeping, 0, memory_order_relaxed);
}

static void *io_main(void *arg)
{
    struct engine *e = arg;
    io_thread = true;
    pthread_setname_np(pthread_self(), "shoal-io");
    for (;;) {
        (void)shoal__tls_check();   /* messages only arrive once the runtime is published */
        bool busy = drain(e);
        shoal__spill_pump();
        if (e->rt->batched && shoal__tls_check() == 0)   /* a private store's refs in flight */
            shoal__up.xfer_expire(e->rt, false, NULL);   /* mproc/inflight.c */
        busy |= e->fallback ? fallback_turn(e) : ring_turn(e);
        if (busy || e->def_head || e->run_head)
            continue;
        bool idle = e->inflight == 0 && !e->back_head;
        if (idle && atomic_load_explicit(&e->stop, memory_order_acquire) &&
            !atomic_load_explicit(&e->inbox, memory_order_acquire)) {
            /* Work parked for room that will not come: its failure paths run first. */
            if (shoal__spill_cancel_waiters() || shoal__export_cancel_waiting())
                continue;
            break;
        }
        idle_wait(e, idle);
    }
    return NULL;
}

/* ---- probing and lifecycle ------------------------------------------------------------- */

static int read_int_file(const char *path, int dflt)
{
    FILE *f = fopen(path, "r");
    int v = dflt;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}


#define NO_URING_ASKED "SHOAL_NO_IO_URING=1"

/* io_uring with every opcode shoal uses, or a reason why not (said once per process). */
static const char *probe_ring(struct engine *e)
{
    if (shoal__env_flag("SHOAL_NO_IO_URING", false))
        return NO_URING_ASKED;
    if (read_int_file("/proc/sys/kernel/io_uring_disabled", 0) == 2)
        return "io_uring is disabled (/proc/sys/kernel/io_uring_disabled = 2)";
    int rc = io_uring_queue_init(RING_ENTRIES, &e->ring, 0);
    if (rc < 0) {
        static char why[128];
        snprintf(why, sizeof why, "io_uring_queue_init failed: %s", strerror(-rc));
        return why;
    }
    e->ring_made = true;
    struct io_uring_probe *p = io_uring_get_probe_ring(&e->ring);
    if (!p)
        return "the kernel cannot list io_uring opcodes (too old)";
    static const int need[] = { IORING_OP_READ, IORING_OP_WRITE, IORING_OP_OPENAT,
                                IORING_OP_STATX, IORING_OP_CLOSE, IORING_OP_FSYNC,
                                IORING_OP_UNLINKAT, IORING_OP_FALLOCATE };
    const char *missing = NULL;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!io_uring_opcode_supported(p, need[i]))
            missing = "the kernel's io_uring lacks an opcode shoal needs (read, write, openat, "
                      "statx, close, fsync, unlinkat or fallocate)";
    e->futex_bell = io_uring_opcode_supported(p, OP_FUTEX_WAIT) &&
                    !shoal__env_flag("SHOAL_IO_EVENTFD", false);
    io_uring_free_probe(p);
    if (missing)
        return missing;
    if (!e->futex_bell) {
        e->evfd = eventfd(0, EFD_CLOEXEC);
        if (e->evfd < 0)
            return "eventfd failed";
    }
    e->cap = RING_ENTRIES;   /* the CQ holds 2x: never overflows with the bell on top */
    return NULL;
}

/* fork() copies the engine's pointer but not its thread: a child has no I/O engine (its
 * file calls answer SHOAL_ENOTINIT rather than wait for a thread that is not there), and
 * no spilling a store of its own could call into (the parent's spill state is a copy). */
static void atfork_child(void)
{
    atomic_store_explicit(&engine_g, NULL, memory_order_relaxed);
    atomic_store_explicit(&shoal__alloc_full_hook, NULL, memory_order_relaxed);
    shoal__export_fork_child();
    shoal__ingest_fork_child();
    shoal__spill_fork_child();
}
static void atfork_once(void) { pthread_atfork(NULL, NULL, atfork_child); }

int shoal__io_start(shoal__rt_t *rt)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, atfork_once);
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return shoal__err(SHOAL_ENOMEM, "out of memory starting the I/O engine");
    e->rt = rt;
    e->evfd = -1;
    e->direct = shoal__env_flag("SHOAL_IO_DIRECT", true);
    const char *why = probe_ring(e);
    if (why) {
        static _Atomic int told;
        if (strcmp(why, NO_URING_ASKED) != 0 &&
            !atomic_exchange_explicit(&told, 1, memory_order_relaxed))
            shoal__log("io_uring unavailable (%s): file I/O and spilling use pread/pwrite on "
                       "a helper thread", why);
        if (e->ring_made)
            io_uring_queue_exit(&e->ring);
        e->ring_made = false;
        if (e->evfd >= 0)
            close(e->evfd);
        e->evfd = -1;
        e->fallback = true;
    }
    /* release: pairs with the acquire in eng(); spill_open below already uses the engine. */
    atomic_store_explicit(&engine_g, e, memory_order_release);
    int rc = 0;
    if (rt->cfg.spill_dir && (rc = shoal__spill_open(rt, rt->cfg.spill_dir)) == 0)
        /* A full store spills cold objects to make room (alloc/arena.h). */
        atomic_store_explicit(&shoal__alloc_full_hook, shoal__spill_alloc, memory_order_relaxed);
    if (rc == 0) {
        rc = pthread_create(&e->thread, NULL, io_main, e);
        if (rc)
            rc = shoal__err(SHOAL_ENOMEM, "cannot start the I/O thread: %s", strerror(rc));
        else
            e->started = true;
    }
    if (rc)
        shoal__io_stop(rt);
    return rc;
}

void shoal__io_stop(shoal__rt_t *rt)
{
    (void)rt;
    struct engine *e = eng();
    if (!e)
        return;
    if (e->started) {
        atomic_store_explicit(&e->stop, true, memory_order_release);
        atomic_store_explicit(&e->sleeping, 0, memory_order_relaxed);
        ring_bell(e);
        pthread_join(e->thread, NULL);
    }
    atomic_store_explicit(&shoal__alloc_full_hook, NULL, memory_order_relaxed);
    shoal__spill_close();
    atomic_store_explicit(&engine_g, NULL, memory_order_release);
    if (e->ring_made)
        io_uring_queue_exit(&e->ring);
    if (e->evfd >= 0)
        close(e->evfd);
    free(e);
}
