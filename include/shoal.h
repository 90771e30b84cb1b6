/* shoal.h - the whole public API of shoal, a single-host task and object runtime.
 *
 * Objects are immutable byte strings in a shared-memory store, named by shoal_ref, a plain
 * 64-bit ID that can be copied, encoded, stored inside other objects and sent to other
 * processes. Tasks are functions run by pinned worker threads; each returns its result as
 * an object. Every call returns 0 (or a count, where stated) on success and a negative
 * SHOAL_E* code on failure; shoal_last_error() then says what went wrong and what to do.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHOAL_API __attribute__((visibility("default")))
#else
#define SHOAL_API
#endif

#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 1
#define SHOAL_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------
 * ObjectRefs
 * ------------------------------------------------------------------------------------- */

/* An ObjectRef: an ID and nothing else. id 0 is the null ref. The bit layout is private;
 * the only stable representation is the 8-byte encoding below. */
typedef struct shoal_ref { uint64_t id; } shoal_ref;

#define SHOAL_REF_NULL ((shoal_ref){0})

/* Write ref as 8 little-endian bytes; the format is stable across versions and processes.
 * An encoded ref carries no reference of its own: the sender keeps the object alive. */
SHOAL_API void      shoal_ref_encode(shoal_ref ref, unsigned char out[8]);
/* Inverse of shoal_ref_encode. Never fails; a corrupt ID is detected when it is used
 * (SHOAL_EINVAL or SHOAL_ESTALE). */
SHOAL_API shoal_ref shoal_ref_decode(const unsigned char in[8]);

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------- */

/* X-macro: the one table behind the enum and shoal_strerror(). */
#define SHOAL_ERRNO_MAP(X)                                                         \
    X(OK,        0,  "success")                                                    \
    X(ENOTINIT, -1,  "runtime not initialized")                                    \
    X(EINVAL,   -2,  "invalid argument")                                           \
    X(ENOMEM,   -3,  "out of memory (store full)")                                 \
    X(ESTALE,   -4,  "stale reference (object freed)")                             \
    X(ETIMEDOUT,-5,  "timed out")                                                  \
    X(ETASK,    -6,  "task failed")                                                \
    X(EEXIST,   -7,  "already exists / already done")                              \
    X(ENOENT,   -8,  "no such store or file")                                      \
    X(EIO,      -9,  "input/output error")                                         \
    X(EPERM,    -10, "permission denied")                                          \
    X(EPROTO,   -11, "protocol or version mismatch")                               \
    X(EBUSY,    -12, "busy")                                                       \
    X(ECANCELED,-13, "canceled")

enum {
#define SHOAL__ENUM(name, val, msg) SHOAL_##name = (val),
    SHOAL_ERRNO_MAP(SHOAL__ENUM)
#undef SHOAL__ENUM
};

/* The name and meaning of an error code ("SHOAL_ESTALE: stale reference ..."). Never NULL;
 * the string is static. Unknown codes give "SHOAL_E?: unknown error code". */
SHOAL_API const char *shoal_strerror(int code);
/* This thread's message for its last failed call: what went wrong and what to do. The
 * string stays valid until this thread's next failing shoal call. "" if none yet. */
SHOAL_API const char *shoal_last_error(void);

/* ---------------------------------------------------------------------------------------
 * Runtime lifecycle
 * ------------------------------------------------------------------------------------- */

enum { SHOAL_HUGE_AUTO = 0, SHOAL_HUGE_REQUIRE = 1, SHOAL_HUGE_OFF = 2 };
/* What shoal_info.huge_pages reports was obtained. */
enum { SHOAL_PAGES_NORMAL = 0, SHOAL_PAGES_THP = 1, SHOAL_PAGES_HUGETLB = 2 };

typedef struct shoal_config {     /* all-zero means defaults */
    size_t      store_bytes;      /* object store capacity; 0 = a quarter of physical memory */
    unsigned    workers;          /* 0 = one per core of the topology */
    int         huge_pages;       /* SHOAL_HUGE_AUTO (0), SHOAL_HUGE_REQUIRE, SHOAL_HUGE_OFF */
    const char *name;             /* non-NULL: publish the store so other processes can attach */
    const char *topology;         /* NULL = this machine; else an hwloc synthetic string or XML path */
    const char *spill_dir;        /* NULL = no spilling; else an existing writable directory
                                     (checked at init: SHOAL_EINVAL), see shoal_advise_cold */
    size_t      max_objects;      /* object table size; 0 = derived from store_bytes */
} shoal_config;

/* Start the runtime: map the store (one shared arena per NUMA node of the topology), start
 * the workers. cfg may be NULL (defaults). Blocks until the workers run.
 * Errors: SHOAL_EEXIST already initialized (call shoal_shutdown() first), or config.name is
 * published by a live process already; SHOAL_EINVAL bad config (bad topology string, store
 * too small, a name with '/' or over 64 bytes); SHOAL_ENOMEM the store cannot be mapped, or
 * huge pages were required and cannot be had. Not thread-safe against itself or shutdown. */
SHOAL_API int  shoal_init(const shoal_config *cfg);
/* Join a store another process published with config.name (1..64 bytes, no '/').
 *
 * Multi-process notes. The owner listens on a Unix socket, created 0600, at
 * $SHOAL_RUN_DIR/shoal-NAME.sock, else $XDG_RUNTIME_DIR/shoal-NAME.sock, else
 * /tmp/shoal-UID/NAME.sock (a 0700 directory); owner and clients must see the same
 * environment. Only processes running as the owner's (effective) user may attach: the
 * owner checks the peer's uid, the client the owner's (SO_PEERCRED), and root is no
 * exception (root attaches to root's stores only; see the trust model below for why). An
 * attached process maps the same memory: a ref from any process resolves here to the same
 * bytes, zero-copy, through the same inline fast path, and refs travel as their 8 encoded
 * bytes (pipes, files, objects). Everything but tasks works in it (shoal_submit answers
 * SHOAL_EPERM); puts allocate in the shared arenas without asking the owner; no call makes
 * a syscall in steady state.
 *
 * When an attached process exits or dies (at any instruction), the owner drops the
 * references it held, fails what it created and never completed - unsealed objects, file
 * reads and writes in flight - with SHOAL_ECANCELED (waiters wake), and once none of its
 * objects is left takes back its memory, its counts and its process index; objects it
 * completed that others hold stay. A death in the middle of a call never frees what someone
 * still holds; it can leak the one reference a shoal_retain or shoal_release was taking or
 * dropping (that object then stays until the store goes) and a few free table slots.
 *
 * When the owner shuts down or dies, calls blocked in its clients (shoal_get, shoal_wait)
 * return SHOAL_ECANCELED and every later call SHOAL_ENOTINIT, both with a message saying
 * the owner (pid) is gone. What survives in a client until it calls shoal_shutdown(), which
 * detaches: the pointers it obtained stay readable (it holds the memory), nothing else.
 * A child of fork() does not inherit an attached or published runtime: it attaches anew.
 *
 * Trust model. Attaching grants write access to the whole store: the object table, every
 * object's bytes and the shared bookkeeping. So a store is shared by one user's processes
 * only, and any of them can read, overwrite or destroy any object (as any thread of one
 * process can). What the owner guarantees against an attached process that writes
 * garbage: it never crashes and never frees or reuses the bytes of an object it still
 * holds because of what it read there. It bounds-checks every offset, length and index it
 * follows (a get returns an error rather than a pointer outside the store), frees its own
 * objects' bytes from records in its private memory, accepts a freed slot only with the
 * marker its releaser set, and takes the peer's identity from the kernel. A client gets no
 * such guarantee from the other clients. One exception while the object allocator is
 * jemalloc: jemalloc keeps its bookkeeping inside the arenas, so bytes written over the
 * arenas outside any object can crash the process whose bookkeeping they hit.
 *
 * Errors: SHOAL_EINVAL bad name; SHOAL_ENOENT nobody publishes it (at once); SHOAL_EPERM
 * the store belongs to another user (either side refuses; the message says which);
 * SHOAL_EPROTO the owner runs another shoal version; SHOAL_EBUSY 255 processes attached
 * already (the message says so); SHOAL_ENOMEM; SHOAL_EEXIST this process has a runtime
 * already. Never SHOAL_EIO for a refusal. */
SHOAL_API int  shoal_attach(const char *name);
/* Stop: cancel tasks not yet started (their results answer SHOAL_ECANCELED to anyone who
 * still looks), wait for running ones, join the workers, unmap and free the store. Every
 * ref and pointer obtained before becomes invalid. No other thread may be inside a shoal
 * call while it runs. Errors: SHOAL_ENOTINIT if not running. */
SHOAL_API int  shoal_shutdown(void);

/* ---------------------------------------------------------------------------------------
 * Objects. Thread-safe. Each call that produces a ref hands the caller one reference.
 * ------------------------------------------------------------------------------------- */

/* Copy len bytes into a new sealed object. data may be NULL only when len is 0.
 * Errors: SHOAL_ENOTINIT, SHOAL_EINVAL (out NULL), SHOAL_ENOMEM (store or table full: the
 * store stays usable; release objects and retry). Never blocks (unless spilling, see
 * shoal_config.spill_dir). */
SHOAL_API int  shoal_put(const void *data, size_t len, shoal_ref *out);
/* n puts in one call. On failure nothing is left allocated: out[] is untouched. */
SHOAL_API int  shoal_put_batch(size_t n, const void *const data[], const size_t len[],
                               shoal_ref out[]);
/* Allocate an unsealed object of len bytes and return a writable pointer to it: fill *buf,
 * then shoal_seal(). Readers wait until it is sealed. Errors as shoal_put. */
SHOAL_API int  shoal_create(size_t len, void **buf, shoal_ref *out);
/* Make a created object immutable and ready; wakes its waiters. The buffer must not be
 * written afterwards. Errors: SHOAL_EEXIST already sealed (or not created by shoal_create);
 * SHOAL_ESTALE freed; SHOAL_EINVAL null or forged ref. */
SHOAL_API int  shoal_seal(shoal_ref ref);
/* Resolve ref to its bytes, zero-copy: *data stays valid while the caller holds a reference.
 * Waits until the object is ready (inside a task, the worker runs other tasks meanwhile).
 * Errors: SHOAL_EINVAL null/forged ref; SHOAL_ESTALE freed; SHOAL_ETASK the task that makes
 * it failed (message in shoal_last_error()); SHOAL_ECANCELED its task was canceled, the
 * process that was making it died, or (in an attached process) the store's owner went away
 * while this call waited; SHOAL_EIO the file read behind it failed, or another process
 * wrote bytes outside the store into its slot. Fast path: no lock, no syscall, no
 * allocation. */
SHOAL_API int  shoal_get(shoal_ref ref, const void **data, size_t *len);
/* The lookup fast path, inline in the caller (see the end of this header). */
#define shoal_get(ref, data, len) shoal__get_inline((ref), (data), (len))
/* As shoal_get, waiting at most timeout_ns: < 0 waits for ever, 0 only polls.
 * Extra error: SHOAL_ETIMEDOUT. */
SHOAL_API int  shoal_get_timeout(shoal_ref ref, int64_t timeout_ns, const void **data,
                                 size_t *len);
/* Wait until num_ready of the n objects are ready (sealed, failed or canceled count as
 * ready: a get will not block) or the timeout passes (< 0 for ever, 0 polls). ready[i] is
 * set for each ready one (ready may be NULL). Returns how many are ready, which may be
 * fewer than num_ready at a timeout (not an error). Errors: SHOAL_EINVAL (num_ready > n,
 * refs NULL with n > 0), SHOAL_ESTALE (one of the refs is freed). */
SHOAL_API int  shoal_wait(const shoal_ref refs[], size_t n, size_t num_ready,
                          int64_t timeout_ns, bool ready[]);
/* Take one more reference. The caller must already hold one (or know someone does). */
SHOAL_API int  shoal_retain(shoal_ref ref);
/* Drop one reference; the object is freed when its last reference goes, and its ID then
 * answers SHOAL_ESTALE for ever. Errors: SHOAL_ESTALE (already freed: double release). */
SHOAL_API int  shoal_release(shoal_ref ref);

/* ---------------------------------------------------------------------------------------
 * Files and spilling (io_uring)
 * ------------------------------------------------------------------------------------- */

/* File I/O never blocks the calling thread (or a worker) in the kernel: a per-process I/O
 * thread does it through io_uring, or with pread/pwrite when io_uring is unavailable (said
 * once on stderr; SHOAL_NO_IO_URING=1 forces it). Transfers of 1 MiB or more bypass the page
 * cache (O_DIRECT) where the file system and alignment allow; SHOAL_IO_DIRECT=0 turns that
 * off. Callable from any thread, including tasks. */

/* Read [offset, offset+len) of path into a new object (len 0 = to the end of the file).
 * Returns at once with the caller's reference; the object becomes ready when the read
 * completes (a task may take it as a REF argument before). The read fails the object with
 * SHOAL_EIO and a message naming the path and errno (missing file, permission, a directory,
 * a file shorter than offset + len, I/O error), or SHOAL_ENOMEM when the store cannot hold
 * it. Errors at the call: SHOAL_EINVAL (path NULL, empty or too long, out NULL, offset + len
 * overflows, len larger than the store), SHOAL_ENOTINIT, SHOAL_ENOMEM. */
SHOAL_API int  shoal_put_file(const char *path, uint64_t offset, size_t len, shoal_ref *out);
/* Write the object's bytes to path (created or truncated, mode 0644) once the object is
 * ready; *done (an empty object, the caller's reference) becomes ready when the bytes are
 * written and fsync'd, or fails with SHOAL_EIO naming the path and errno (also when the
 * object itself failed). The write holds its own reference: ref may be released at once.
 * Counts as a read of the object (see shoal_advise_cold). Errors at the call: SHOAL_EINVAL
 * (path NULL, empty or too long, done NULL, a null or forged ref), SHOAL_ESTALE,
 * SHOAL_ENOTINIT. */
SHOAL_API int  shoal_write_file(shoal_ref ref, const char *path, shoal_ref *done);
/* With config.spill_dir set, a put or create that finds the store full first writes sealed
 * objects that nobody has read since they were sealed (oldest first) to spill_dir and frees
 * their memory; shoal_get brings a spilled object back (waiting for the read; a worker runs
 * other tasks meanwhile). An object someone has read stays resident while references
 * exist, since the reader may hold its pointer. shoal_advise_cold declares that the caller
 * holds no pointer into the object any more, making it a spill candidate again (a no-op
 * without spill_dir, or for an object not sealed and resident). Errors: SHOAL_EINVAL,
 * SHOAL_ESTALE, SHOAL_ENOTINIT. */
SHOAL_API int  shoal_advise_cold(shoal_ref ref);

/* ---------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_task shoal_task;                 /* the running task's context */
typedef int (*shoal_fn)(shoal_task *t);               /* non-zero return = task failed */

enum { SHOAL_ARG_VALUE = 0, SHOAL_ARG_REF = 1, SHOAL_ARG_REF_PASS = 2 };

typedef struct shoal_arg {
    int kind;                     /* SHOAL_ARG_VALUE, SHOAL_ARG_REF (resolved before the task runs),
                                     SHOAL_ARG_REF_PASS (the ref itself is passed, not awaited) */
    const void *data; size_t len; /* VALUE: copied at submit */
    shoal_ref ref;                /* REF, REF_PASS */
} shoal_arg;

#define SHOAL_VALUE(ptr, n)  ((shoal_arg){ .kind = SHOAL_ARG_VALUE, .data = (ptr), .len = (n) })
#define SHOAL_REF(r)         ((shoal_arg){ .kind = SHOAL_ARG_REF, .ref = (r) })
#define SHOAL_REF_PASS(r)    ((shoal_arg){ .kind = SHOAL_ARG_REF_PASS, .ref = (r) })

typedef struct shoal_task_opts { int numa_node; /* -1 = any */ const char *name; } shoal_task_opts;

/* Submit fn(args) and return its result's ref at once (the caller holds one reference).
 * VALUE args are copied; REF and REF_PASS args are retained by the task until it finishes,
 * so the caller may release its own refs at once. Callable from any thread, including a
 * task. opts may be NULL. Errors: SHOAL_ENOTINIT, SHOAL_EINVAL (fn NULL, bad kind, bad
 * numa_node), SHOAL_ESTALE (a REF argument is already freed), SHOAL_ENOMEM, SHOAL_EPERM
 * (an attached process: only the store's owner runs tasks). */
SHOAL_API int  shoal_submit(shoal_fn fn, const shoal_arg args[], size_t nargs,
                            const shoal_task_opts *opts, shoal_ref *out);
SHOAL_API size_t shoal_task_nargs(shoal_task *t);
/* Bytes of argument i: a VALUE's copy, or a REF's object, zero-copy. Errors: SHOAL_EINVAL
 * (i out of range, or the argument is REF_PASS). */
SHOAL_API int  shoal_task_arg(shoal_task *t, size_t i, const void **data, size_t *len);
/* The ref of argument i (REF or REF_PASS). The task's reference lasts until it returns;
 * retain it to keep it longer. Errors: SHOAL_EINVAL (i out of range or a VALUE). */
SHOAL_API int  shoal_task_arg_ref(shoal_task *t, size_t i, shoal_ref *ref);
/* Set the task's result to a copy of data. At most once per task: SHOAL_EEXIST after. */
SHOAL_API int  shoal_task_return(shoal_task *t, const void *data, size_t len);
/* Allocate the task's result in the store and hand back a writable buffer (zero-copy);
 * it is sealed when the task returns. At most once per task. */
SHOAL_API int  shoal_task_return_buf(shoal_task *t, size_t len, void **buf);
/* Mark the task failed with message (copied); its result answers SHOAL_ETASK. */
SHOAL_API int  shoal_task_fail(shoal_task *t, const char *message);

typedef struct shoal_info {       /* a snapshot, for tools and tests */
    unsigned workers, numa_nodes;
    int      huge_pages;          /* what was obtained: SHOAL_PAGES_HUGETLB, _THP or _NORMAL */
    size_t   store_bytes, bytes_used;   /* bytes_used: what live objects take of store_bytes:
                                       * at least a 64-byte cache line each (no two objects
                                       * share one), else the allocator's size class */
    uint64_t objects_live, tasks_run, tasks_stolen;
} shoal_info;
SHOAL_API int  shoal_info_get(shoal_info *out);

/* Counters of the lookup paths, for profiling lookup overhead (tools/shoal-stat shows them).
 * Totals for this process since it started, over all its threads, exited ones included;
 * never reset, so measure a stretch of code by subtracting two snapshots. Each thread counts
 * its own events in its own memory (no atomic read-modify-write, no lock), in the slow paths
 * only: they stay on in release builds. New fields are only ever appended. */
typedef struct shoal_stats {
    uint64_t get_fast;     /* gets answered by the inline fast path -- counted only in code
                              compiled with -DSHOAL_COUNT_GETS, since a per-get count costs
                              0.3-0.6 ns (up to a third of the lookup) in tight loops; else 0 */
    uint64_t get_slow;     /* gets that took the slow path: a thread's first get after each
                              init, an unsealed, failed, freed or invalid object, and every
                              shoal_get_timeout with a timeout >= 0 */
    uint64_t tls_refresh;  /* refreshes of a thread's cached view of the store (its first
                              call after each shoal_init) */
    uint64_t stale_ids;    /* refs found stale (object freed), by any call that resolves one */
    uint64_t invalid_ids;  /* null, forged or corrupt refs, by any call that resolves one */
    uint64_t get_waits;    /* gets that found their object not sealed yet and waited for it
                              (or timed out) */
    uint64_t wait_sleeps;  /* times a waiting thread (shoal_get, shoal_wait) slept in the kernel */
    /* Spilling (config.spill_dir): objects written out to make room and read back by a get.
     * These are the store's (since its shoal_init, the same in every attached process, 0
     * without a runtime), not this process's. */
    uint64_t spilled_objects;      /* objects spilled (each time one is written out) */
    uint64_t spilled_bytes;        /* their bytes */
    uint64_t restored_objects;     /* spilled objects read back */
    uint64_t restored_bytes;
    uint64_t spill_ns;             /* time spent spilling: start to end of each write, summed
                                      (writes overlap, so this can exceed wall time) */
    uint64_t restore_ns;           /* same for restores, from the request to the bytes' return */
    uint64_t spill_failures;       /* spill writes that failed (disk full, I/O error): the
                                      object stayed resident, the put got SHOAL_ENOMEM */
    uint64_t spilled_now_objects;  /* objects on disk right now (not counters: a snapshot) */
    uint64_t spilled_now_bytes;
} shoal_stats;
/* Fill *out with the current counters. size is sizeof(shoal_stats) as the caller was compiled
 * with: the library writes the first min(size, its own size) bytes and zeroes any rest, so a
 * program built against a newer header reads 0 for counters an older library lacks. Works
 * with or without an initialized runtime. Thread-safe; takes a short lock (not for hot loops).
 * Errors: SHOAL_EINVAL (out NULL or size 0). */
SHOAL_API int  shoal_stats_get(shoal_stats *out, size_t size);
SHOAL_API int  shoal_task_worker(shoal_task *t);          /* index of the worker running this task */
SHOAL_API int  shoal_worker_node(unsigned worker);        /* NUMA node of a worker */
SHOAL_API int  shoal_object_node(shoal_ref ref);          /* NUMA node that holds an object's bytes */

/* ---------------------------------------------------------------------------------------
 * Internal, not API: the inline lookup fast path behind shoal_get().
 * Inlining saves the call through the PLT (a .so call costs 3.3 ns here against 1.5 ns for
 * the same lookup inline). It reads the calling thread's cached view of the store: one TLS
 * block (initial-exec), one epoch compare, one bounds check, one table index, one compare
 * of the slot's state word against the ID (host bits, generation, READY) and a check that
 * the slot's bytes lie in the store. Anything else --
 * not initialized, a stale cache, a pending or freed object, a bad ID -- goes to the
 * library's slow path. The layout is tied to the soname; define SHOAL_NO_INLINE to call the
 * library instead (&shoal_get always names the library function).
 * ------------------------------------------------------------------------------------- */
struct shoal__thr;
struct shoal__tls {
    uint64_t epoch;                  /* shoal__epoch this view was filled at */
    const unsigned char *slots;      /* the object table: 32-byte slots */
    uint64_t nslots;                 /* 0 = empty sentinel: every lookup takes the slow path */
    char *base;                      /* object bytes: base + slot offset */
    struct shoal__thr *thr;          /* allocation caches */
    int worker;                      /* worker index, -1 outside workers */
    int node;                        /* NUMA node this thread allocates from */
    uint64_t fast_gets;              /* shoal_stats.get_fast: -DSHOAL_COUNT_GETS only */
    uint64_t span;                   /* bytes of the arena span: base + [0, span) */
};
SHOAL_API extern __thread struct shoal__tls shoal__tls __attribute__((tls_model("initial-exec")));
SHOAL_API extern uint64_t shoal__epoch;  /* changes at every init and shutdown; atomic access */
SHOAL_API int shoal__get_slow(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len)
    __attribute__((noinline, cold));

#define SHOAL__SLOT_SHIFT   5            /* slots are 32 bytes: word, off, len, aux+next */
#define SHOAL__ID_IDX_BITS  30
#define SHOAL__READY_HI     12u          /* READY (3) << 2 in the word's high half */

static inline int shoal__get_inline(shoal_ref ref, const void **data, size_t *len)
{
    const struct shoal__tls *v = &shoal__tls;
    uint64_t idx = ref.id & ((UINT64_C(1) << SHOAL__ID_IDX_BITS) - 1);
    /* data/len checks fold away when the caller passes addresses of locals. */
    if (__builtin_expect(v->epoch == __atomic_load_n(&shoal__epoch, __ATOMIC_RELAXED) &&
                         idx < v->nslots && data != NULL && len != NULL, 1)) {
        const uint64_t *s = (const uint64_t *)(const void *)(v->slots + (idx << SHOAL__SLOT_SHIFT));
        /* acquire: pairs with the release that made the object READY, so its offset,
         * length and bytes are visible. A nonzero host field in the ID makes the expected
         * value exceed 32 bits, so this one compare also rejects it. */
        uint64_t w = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (__builtin_expect((w >> 32) == (((ref.id >> SHOAL__ID_IDX_BITS) << 6) | SHOAL__READY_HI), 1)) {
            /* Read only once READY (before, the object's maker may still be writing them).
             * Any attached process can rewrite a slot's offset and length: a pair outside
             * the span goes to the slow path, which reports it, so a get never returns a
             * wild pointer. Each is read once: the checked copies are what is returned. */
            uint64_t off = __atomic_load_n(&s[1], __ATOMIC_RELAXED);
            uint64_t n = __atomic_load_n(&s[2], __ATOMIC_RELAXED);
            if (__builtin_expect(off < v->span && n <= v->span - off, 1)) {
                *data = v->base + off;
                *len = (size_t)n;
#ifdef SHOAL_COUNT_GETS
                /* relaxed load + store, not an RMW: this thread is the only writer and
                 * shoal_stats_get only needs an untorn value. */
                __atomic_store_n(&shoal__tls.fast_gets,
                                 __atomic_load_n(&shoal__tls.fast_gets, __ATOMIC_RELAXED) + 1,
                                 __ATOMIC_RELAXED);
#endif
                return 0;
            }
        }
    }
    return shoal__get_slow(ref, -1, data, len);
}
#ifdef SHOAL_NO_INLINE
#undef shoal_get
#endif

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
