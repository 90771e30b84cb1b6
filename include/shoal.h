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

/* In C++ the option and config structs' members default to zero (default member
 * initialisers), so `shoal_task_opts o;` and `shoal_task_opts o = { .name = "map" };` are the
 * defaults there too, warning-free; in C zero-initialise them: `shoal_task_opts o = { 0 };`. */
#ifdef __cplusplus
#define SHOAL__ZERO = {}
#else
#define SHOAL__ZERO
#endif

#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 2
#define SHOAL_VERSION_PATCH 0
/* The library's version, "MAJOR.MINOR.PATCH" (static string): compare it with the
 * SHOAL_VERSION_* macros to see whether the header and the library you run match. */
SHOAL_API const char *shoal_version(void);

/* ---------------------------------------------------------------------------------------
 * ObjectRefs
 * ------------------------------------------------------------------------------------- */

/* An ObjectRef: an ID and nothing else. id 0 is the null ref. The bit layout is private;
 * the only stable representation is the 8-byte encoding below. */
typedef struct shoal_ref { uint64_t id; } shoal_ref;

static inline shoal_ref shoal__ref_make(uint64_t id) { shoal_ref r; r.id = id; return r; }
#ifdef __cplusplus
#define SHOAL_REF_NULL shoal__ref_make(0)
#else
#define SHOAL_REF_NULL ((shoal_ref){ 0 })
#endif

/* Write ref as 8 little-endian bytes; the format is stable across versions and processes.
 * An encoded ref carries no reference of its own: to hand one to another process, pass it
 * to shoal_transfer before sending it and to shoal_accept on arrival; an object whose bytes
 * embed refs is put with shoal_put_with_refs instead, so that it keeps their objects alive
 * itself (see there).
 * out NULL: nothing is written (shoal_last_error() says so). */
SHOAL_API void      shoal_ref_encode(shoal_ref ref, unsigned char out[8]);
/* Inverse of shoal_ref_encode. Never fails; a corrupt ID is detected when it is used
 * (SHOAL_EINVAL or SHOAL_ESTALE). in NULL: the null ref (shoal_last_error() says so). */
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
    X(ECANCELED,-13, "canceled")                                                   \
    X(EDEADLK,  -14, "would deadlock (called inside the same call on this thread)")

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
 * Logging. shoal prints nothing on its own but through this: warnings and errors by default
 * (to stderr, "shoal: MESSAGE"); info (the huge-page state, once per process) and debug
 * only when asked for. Environment variables (SHOAL_LOG_LEVEL, SHOAL_QUIET and the others):
 * see docs/ENVIRONMENT.md, one table of them all.
 * ------------------------------------------------------------------------------------- */
enum { SHOAL_LOG_ERROR = 0, SHOAL_LOG_WARN = 1, SHOAL_LOG_INFO = 2, SHOAL_LOG_DEBUG = 3 };
/* A log sink: level is one of SHOAL_LOG_*, message one line without "shoal: " or a newline
 * (valid during the call only). May be called from any thread, shoal's own included (workers,
 * the I/O thread, an attached client's background thread), concurrently, also while a
 * lifecycle call runs: it may call shoal's object calls (what they log meanwhile goes to
 * stderr), not shoal_init, shoal_attach or shoal_shutdown. */
typedef void (*shoal_log_fn)(int level, const char *message, void *arg);
/* Send messages of level <= max_level to fn(level, message, arg); fn NULL = stderr (which
 * SHOAL_QUIET=1 silences). max_level outside SHOAL_LOG_ERROR..SHOAL_LOG_DEBUG is clamped.
 * Until it is called the level is SHOAL_LOG_LEVEL's, else SHOAL_LOG_WARN. Thread-safe: when it
 * returns, the previous fn is never called again (it waits for calls to it in progress).
 * Callable before shoal_init and after shoal_shutdown; the setting lasts for the process.
 * Called from inside a sink it does nothing (it would wait for itself). */
SHOAL_API void shoal_set_log(shoal_log_fn fn, void *arg, int max_level);

/* Two codes every call that needs the runtime may answer, listed again under each call:
 *   SHOAL_ENOTINIT  no runtime in this process: never started, shut down, a client whose
 *                   owner is gone and which has detached, or a fork() child (the message
 *                   says which and what to do).
 *   SHOAL_ECANCELED the runtime is going down: shoal_shutdown() has begun in this process
 *                   (or, in an attached client, the owner died or closed the store). Calls
 *                   blocked in shoal_get / shoal_get_timeout / shoal_wait wake with it too.
 * A ref argument that is null, forged or corrupt answers SHOAL_EINVAL ("null ref",
 * "invalid ref"); one whose object was freed answers SHOAL_ESTALE ("stale ref"). */

/* ---------------------------------------------------------------------------------------
 * Runtime lifecycle
 * ------------------------------------------------------------------------------------- */

enum { SHOAL_HUGE_AUTO = 0, SHOAL_HUGE_REQUIRE = 1, SHOAL_HUGE_OFF = 2 };
/* What shoal_info.huge_pages reports was obtained. */
enum { SHOAL_PAGES_NORMAL = 0, SHOAL_PAGES_THP = 1, SHOAL_PAGES_HUGETLB = 2 };

typedef struct shoal_config {     /* all-zero means defaults */
    size_t      store_bytes SHOAL__ZERO;  /* object store capacity; 0 = a quarter of physical
                                             memory */
    unsigned    workers SHOAL__ZERO;      /* 0 = one per core of the topology */
    int         huge_pages SHOAL__ZERO;   /* SHOAL_HUGE_AUTO (0), SHOAL_HUGE_REQUIRE,
                                             SHOAL_HUGE_OFF */
    const char *name SHOAL__ZERO;         /* non-NULL: publish the store so other processes can
                                             attach */
    const char *topology SHOAL__ZERO;     /* NULL = this machine; else an hwloc synthetic string
                                             or XML path */
    const char *spill_dir SHOAL__ZERO;    /* NULL = no spilling; else an existing writable
                                             directory (checked at init: SHOAL_EINVAL), see
                                             shoal_advise_cold */
    size_t      max_objects SHOAL__ZERO;  /* object table size; 0 = derived from store_bytes (one
                                             slot per 256 bytes, at least 65535), at most 2^26 - 1.
                                             Below 65535 threads cache no free slots, so every
                                             slot can hold an object; above, up to 64 free slots
                                             per thread may wait in that thread's cache. */
    uint64_t    reserved[8] SHOAL__ZERO;  /* must be 0: fields added later come out of this
                                             space, so the struct keeps its size and a
                                             zero-initialised config keeps meaning the defaults */
} shoal_config;

/* Start the runtime: map the store (one arena per NUMA node of the topology), start the
 * workers. cfg may be NULL (defaults). Blocks until the workers run. A published store
 * (config.name) is shared memory other processes map; an unpublished one is private
 * anonymous memory. Either way the allocator's own records live in each process's private
 * memory, never in the store.
 * store_bytes is reserved, not committed: memory is taken as objects fill the store. A
 * store larger than this machine's RAM and swap together is refused (it could never be
 * filled); one that fits but meets a machine short of memory fails the puts that cannot get
 * it with SHOAL_ENOMEM.
 * Errors: SHOAL_EEXIST already initialized or attached (call shoal_shutdown() first),
 * called inside a task or from a callback a lifecycle call of this thread runs (an actor's
 * destroy, a ctx_done), or config.name is published by a live process already;
 * SHOAL_EINVAL bad config: a nonzero reserved field (zero-initialise the struct),
 * huge_pages not one of the three values, store_bytes below 1 MiB
 * or above 64 TiB, workers above 1024, name empty, over 64
 * bytes or with '/' or a control character, max_objects 2^26 or more, topology unreadable
 * or with more than 16 NUMA nodes, spill_dir not an existing writable directory, or a
 * socket path too long;
 * SHOAL_ENOMEM store_bytes more than RAM and swap, the store cannot be mapped, huge pages
 * were required and cannot be had, or threads cannot be started; with config.name also
 * SHOAL_ENOENT SHOAL_RUN_DIR (or XDG_RUNTIME_DIR) names no directory, SHOAL_EPERM the
 * socket directory is not this user's private one, SHOAL_EIO the socket cannot be made.
 * Not thread-safe against another init or attach (shutdown from any thread is). */
SHOAL_API int  shoal_init(const shoal_config *cfg);
/* fork(). A child of a process that runs a store (its own, published or attached) does not
 * inherit it: it never allocates from, frees into or submits to its parent's store. Every
 * call in the child answers SHOAL_ENOTINIT ("this process is a fork() child ...") until it
 * calls shoal_init() for a store of its own or shoal_attach(name) to join a published one
 * (its parent's included). What the child may still read: bytes its parent obtained from
 * shoal_get before fork() stay mapped at the same addresses; treat them as valid only
 * while the parent still holds those objects (the child holds no reference of its own,
 * and a release in the child does nothing to the parent). Refs are plain IDs in the child:
 * encode them, send them to a process that can resolve them, or resolve them again after
 * attaching. Inside a task, system(), popen() and fork()+exec() are fine: the child is no
 * worker. */
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
 * dropping (that object then stays until the store goes) and a few free table slots
 * (shoal_transfer and shoal_accept leak nothing). References the dead process had put in
 * flight with shoal_transfer stay in flight for their receivers. Objects with refs: the
 * references a shoal_put_with_refs had taken for an object it never published are dropped,
 * and so is the rest of the list of an object whose release it was in the middle of (the
 * one reference being taken or dropped at the instant of death can leak, as above).
 *
 * When the owner shuts down or dies, calls blocked in its clients (shoal_get, shoal_wait)
 * wake and every later call answers, SHOAL_ECANCELED with a message saying the owner (pid)
 * is gone (only shoal_get of an object that was ready may still answer its bytes, from the
 * inline fast path: they stay mapped). What survives in a client until it calls
 * shoal_shutdown(), which detaches: the pointers it obtained stay readable (it holds the
 * memory), nothing else.
 * A child of fork() does not inherit an attached or published runtime (see shoal_init).
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
 * such guarantee from the other clients. The object allocator keeps its bookkeeping in
 * each process's private memory (the store holds object bytes and the shared chunk map),
 * so bytes written over the store outside any object reach no process's allocator.
 *
 * Errors: SHOAL_EINVAL bad name (NULL, empty, over 64 bytes, '/' or a control character);
 * SHOAL_ENOENT nobody publishes it (at once), or SHOAL_RUN_DIR / XDG_RUNTIME_DIR names no
 * directory; SHOAL_EPERM the store belongs to another user (either side refuses; the
 * message says which); SHOAL_EPROTO the owner runs another shoal version or answered
 * nonsense; SHOAL_EBUSY 255 processes attached already, or the owner's connection table is
 * full (the message says which); SHOAL_EEXIST this process has a runtime already (or called
 * inside a task, or from a callback a lifecycle call of this thread runs); SHOAL_ENOMEM the store cannot be mapped. Never SHOAL_EIO for a refusal. */
SHOAL_API int  shoal_attach(const char *name);
/* Stop: cancel tasks not yet started (their results answer SHOAL_ECANCELED to anyone who
 * still looks), wait for running ones, join the workers, unmap and free the store. Every
 * ref and pointer obtained before becomes invalid.
 * Safe from any thread while other threads call shoal: from the moment it starts, every
 * call answers SHOAL_ECANCELED ("the runtime is shutting down") and, once it is done,
 * SHOAL_ENOTINIT; calls blocked in shoal_get, shoal_get_timeout or shoal_wait (tasks'
 * too) wake and return SHOAL_ECANCELED at once, so a task blocked in a get does not hold
 * it up; it waits only for calls already inside the runtime to leave and for running tasks
 * to return. It never waits for readers of object bytes: stop reading pointers from
 * shoal_get before calling it (the bytes are unmapped). Two concurrent calls: one shuts
 * down, the other waits for it and answers SHOAL_ENOTINIT.
 * Errors: SHOAL_ENOTINIT not running; SHOAL_EBUSY called inside a task (it would wait for
 * its own task: return from the task and shut down from another thread), or from a callback
 * that shoal_init, shoal_attach or shoal_shutdown runs on this thread (an actor's destroy, a
 * ctx_done: it would wait for itself). */
SHOAL_API int  shoal_shutdown(void);

/* ---------------------------------------------------------------------------------------
 * Objects. Thread-safe. Each call that produces a ref hands the caller one reference.
 * ------------------------------------------------------------------------------------- */

/* Copy len bytes into a new sealed object. data may be NULL only when len is 0.
 * Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED, SHOAL_EINVAL (out NULL, or data NULL with len >
 * 0), SHOAL_ENOMEM (store or object table full, or larger than the store: the store stays
 * usable; release objects and retry). Never blocks (unless spilling, see
 * shoal_config.spill_dir, when it may also answer what the spill met: SHOAL_ENOMEM,
 * SHOAL_ECANCELED). */
SHOAL_API int  shoal_put(const void *data, size_t len, shoal_ref *out);
/* n puts in one call. On failure nothing is left allocated: out[] is untouched.
 * Errors: as shoal_put, and SHOAL_EINVAL (data, len or out NULL with n > 0, or data[i] NULL
 * with len[i] > 0); the message names the item that failed. n = 0 does nothing. */
SHOAL_API int  shoal_put_batch(size_t n, const void *const data[], const size_t len[],
                               shoal_ref out[]);
/* Allocate an unsealed object of len bytes and return a writable pointer to it: fill *buf,
 * then shoal_seal(). Readers wait until it is sealed. Errors: SHOAL_ENOTINIT,
 * SHOAL_ECANCELED, SHOAL_EINVAL (buf or out NULL), SHOAL_ENOMEM (as shoal_put). */
SHOAL_API int  shoal_create(size_t len, void **buf, shoal_ref *out);
/* Make a created object immutable and ready; wakes its waiters. The buffer must not be
 * written afterwards. Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED, SHOAL_EEXIST already sealed
 * (or not created by shoal_create: a put, a task result, a file read); SHOAL_ESTALE freed;
 * SHOAL_EINVAL null or forged ref. */
SHOAL_API int  shoal_seal(shoal_ref ref);
/* Resolve ref to its bytes, zero-copy: *data stays valid while the caller holds a reference
 * (and until shoal_shutdown, see there). Waits until the object is ready (inside a task,
 * the worker runs other tasks meanwhile). Outside the workers, if ref is the result of the
 * task this thread submitted last and no worker has taken it yet, the calling thread runs
 * it instead of waiting (no worker is woken: a round trip makes no system call; the task's
 * shoal_task_worker answers -1). A get with a time limit (shoal_get_timeout with
 * timeout_ns >= 0) never runs a task.
 * Errors: SHOAL_ENOTINIT; SHOAL_EINVAL null/forged ref, or data or len NULL; SHOAL_ESTALE
 * freed (also while waiting: its last reference went); SHOAL_ETASK the task that makes it
 * failed, or one of that task's arguments did (message in shoal_last_error()); SHOAL_ECANCELED
 * its task was canceled, the process that was making it died before completing it, or the
 * runtime is going down (a blocked get wakes with it; in an attached process, the store's
 * owner went away); SHOAL_EIO the file read behind it failed, or (spilling) the spill file
 * could not be read, or an attached process asked for an object the owner spilled, or
 * another process wrote bytes outside the store into its slot; SHOAL_ENOMEM (spilling) a
 * spilled object cannot be brought back for want of room: the message says why (nothing
 * left to spill, free space not in one piece, a full spill disk); the object stays spilled:
 * get it again after releasing objects or advising them cold. A failed object's message is
 * held in the store; when the store had no room left for it, the process that failed the
 * object keeps it (the last 64 or so such messages): gets there read it, gets in other
 * processes a generic one naming the code.
 * Fast path: no lock, no syscall, no allocation. */
SHOAL_API int  shoal_get(shoal_ref ref, const void **data, size_t *len);
/* The lookup fast path, inline in the caller (see the end of this header). */
#define shoal_get(ref, data, len) shoal__get_inline((ref), (data), (len))
/* As shoal_get, waiting at most timeout_ns: < 0 waits for ever, 0 only polls (a spilled
 * object is still read back: a disk read, not a wait for another thread; one that another
 * thread is reading back is waited for within the limit, and so is the room a read-back
 * must wait for in a full store: past the limit the get answers SHOAL_ETIMEDOUT and the
 * read-back goes on, so that a later get finds the object back).
 * Errors: those of shoal_get, and SHOAL_ETIMEDOUT (not ready in time; the caller's reference
 * is as it was: try again. A spilled object's read-back started by the get goes on, and may
 * spill colder objects to make room for it). */
SHOAL_API int  shoal_get_timeout(shoal_ref ref, int64_t timeout_ns, const void **data,
                                 size_t *len);
/* A get that consumes the caller's reference: waits for the object as shoal_get does (a
 * worker runs other tasks meanwhile; outside the workers it may run the caller's own task),
 * copies min(*len, cap) of its bytes into buf, sets *len to the object's length, and
 * releases the caller's reference, in one call. For a result read once and then let go (a
 * task's child): it saves shoal_release's separate entry, checks and loads, and the fast
 * path of a ready object is one load and one CAS on its word.
 * Ownership: the reference is the call's, whatever it returns (the caller no longer holds
 * it, and must not release it). *len > cap says that only cap bytes were copied (the rest
 * is gone with the reference: take with a buffer as large as the object, or use shoal_get
 * for objects of unknown size). With the runtime going down (SHOAL_ECANCELED before the
 * wait, SHOAL_ENOTINIT) the reference goes with the runtime.
 * Blocks until the object is complete, like shoal_get (no time limit: use
 * shoal_get_timeout and shoal_release where one is needed).
 * Errors: SHOAL_ENOTINIT; SHOAL_EINVAL null/forged ref, or len NULL, or buf NULL with cap
 * > 0; SHOAL_ESTALE freed; and the object's own failure as shoal_get reports it
 * (SHOAL_ETASK, SHOAL_ECANCELED, SHOAL_EIO, SHOAL_ENOMEM; message in shoal_last_error()).
 * Fast path: no lock, no syscall, no allocation. */
SHOAL_API int  shoal_take(shoal_ref ref, void *buf, size_t cap, size_t *len);
/* Wait until num_ready of the n objects are ready (sealed, failed or canceled count as
 * ready: a get will not block) or the timeout passes (< 0 for ever, 0 polls). ready[i] is
 * set for each ready one (ready may be NULL). Returns how many are ready, which may be
 * fewer than num_ready at a timeout (not an error). Errors: SHOAL_ENOTINIT;
 * SHOAL_ECANCELED (the runtime is going down: a blocked wait wakes with it); SHOAL_EINVAL
 * (num_ready > n, refs NULL with n > 0, n above INT32_MAX, or a null/forged ref);
 * SHOAL_ESTALE (one of the refs is freed). */
SHOAL_API int  shoal_wait(const shoal_ref refs[], size_t n, size_t num_ready,
                          int64_t timeout_ns, bool ready[]);
/* Take one more reference. The caller must already hold one (or know someone does).
 * Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED, SHOAL_EINVAL (null/forged ref, or the object has
 * 2^24 - 1 references already, the most one object can have), SHOAL_ESTALE (freed). */
SHOAL_API int  shoal_retain(shoal_ref ref);
/* Drop one reference; the object is freed when its last reference goes, and its ID then
 * answers SHOAL_ESTALE (until its slot has been reused 2^32 - 1 times, which at any
 * realistic rate is years). Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED, SHOAL_EINVAL
 * (null/forged ref), SHOAL_ESTALE (already freed: double release). */
SHOAL_API int  shoal_release(shoal_ref ref);

/* Refs in flight. An encoded ref carries no reference, so a receiver that merely decodes it
 * races the sender's release (and its exit). To hand a reference over through any channel
 * (pipe, socket, file, message queue, another object), and within one process between
 * threads alike:
 *   sender:   shoal_transfer(ref, ttl_ns); then write the 8 bytes (shoal_ref_encode).
 *   receiver: read them (shoal_ref_decode); shoal_accept(ref); use it; shoal_release(ref).
 * Who owns which reference when: shoal_transfer moves one of the caller's references into
 * the store (the caller must hold one and no longer does; the object's count does not
 * change). From then the object lives, whatever the sender does - release its other
 * references, shoal_shutdown (detach), exit, or die at any instruction - until a receiver's
 * shoal_accept moves that reference into the receiver's hands (the receiver releases it
 * like any of its own), or until ttl_ns pass: then the store's owner releases it, so a
 * message that is never received leaks nothing for longer than ttl_ns. Each transfer puts
 * one reference in flight: transfer n times to hand the ref to n receivers (each accept
 * takes one). The sender's process may accept its own transfer. In-flight references live
 * in the store: they end when the owner shuts down (or dies) with everything else.
 * A process killed inside either call leaves the count exact: the reference is either
 * still the sender's (then released with what the dead process held), in flight, or the
 * receiver's (released with what it held), never lost or dropped twice.
 * Expiry runs on a thread the owner already has (a published store's remote-free thread,
 * a private store's I/O thread) that sleeps until the earliest deadline: no polling.
 *
 * shoal_transfer: ttl_ns > 0 is the longest the store holds the reference (CLOCK_MONOTONIC;
 * it is released within a few ms after). No lock and no syscall except one futex wake when
 * this deadline is earlier than every other in flight; in an attached or published store,
 * two threads of one process transferring or accepting the same object at once take
 * turns for a few instructions (so does the 64th such move of one process at once), so
 * that a death inside either leaves the owner an exact count; a thread that waits its turn
 * for long yields, then sleeps for microseconds (a higher real-time priority cannot starve
 * the holder). Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED (the runtime or its owner is going
 * down), SHOAL_EINVAL (null, forged or corrupt ref, or ttl_ns <= 0), SHOAL_ESTALE (the object
 * is already freed), SHOAL_EBUSY (too many refs in flight: 65536 in the store, 128 whose IDs
 * hash near this one; accept some or use a shorter ttl_ns), SHOAL_EDEADLK (in an attached or
 * published store: called from a signal handler that interrupted this thread inside a
 * shoal_transfer or shoal_accept of the same object, whose turn it would wait for for ever;
 * nothing was done). On error the caller still holds its reference. */
SHOAL_API int  shoal_transfer(shoal_ref ref, int64_t ttl_ns);
/* Take one in-flight reference on ref (one that shoal_transfer put there, by any process
 * attached to this store) as the caller's own: release it when done. Never blocks (it does
 * not wait for a transfer to arrive: the receiver calls it after reading the ref from its
 * channel, which the sender writes after shoal_transfer returned). Errors: SHOAL_ENOTINIT,
 * SHOAL_ECANCELED, SHOAL_EINVAL (null, forged or corrupt ref), SHOAL_ETIMEDOUT (it was in
 * flight past its ttl_ns and the store released it; told while the store still remembers,
 * else SHOAL_ESTALE), SHOAL_ESTALE (none in flight: never transferred, or every transfer of
 * it was accepted already; the message says whether the object is freed), SHOAL_EDEADLK (as
 * shoal_transfer: from a signal handler inside this thread's move of the same object). On
 * error the caller holds nothing. */
SHOAL_API int  shoal_accept(shoal_ref ref);

/* ---- objects that contain refs (Ray's refs captured inside an object) ----
 * An encoded ref carries no reference of its own (see shoal_ref_encode). An object put with
 * the refs it contains holds one reference on each of their objects for as long as it lives,
 * so those objects outlive every other holder's release; when the object is freed (its last
 * reference released in any process, or dropped for a process that went away), it releases
 * them, and so on down a nest of any depth (iteratively: no recursion, no memory). Ownership:
 * the call takes the object's references itself; the caller keeps the references it held
 * on refs[] and releases them when it likes (at once, typically). All or nothing: on any
 * error no reference is taken and nothing is stored. The list lives in the store next to the
 * payload (not in the bytes shoal_get returns); shoal_object_refs reads it back. An object
 * with refs is never spilled (its payload stays resident; the objects it names may be).
 * At most SHOAL_OBJECT_REFS_MAX refs per object. */
#define SHOAL_OBJECT_REFS_MAX 1048576u
/* Copy len bytes into a new sealed object that contains refs[0..nrefs) (a ref listed twice
 * is held twice; refs may be NULL when nrefs is 0, which is shoal_put). Each ref must name a
 * live object (sealed, pending or failed); none can name the new object, so no cycle can
 * arise. The caller gets one reference on the new object, as from shoal_put.
 * Errors: those of shoal_put; SHOAL_EINVAL (refs NULL with nrefs > 0, nrefs above
 * SHOAL_OBJECT_REFS_MAX, a null or forged ref in the list, or one whose object has 2^24 - 1
 * references already) and SHOAL_ESTALE (a ref in the list was freed): the message names
 * the index. Attached processes may call it (the refs are IDs of the shared store). */
SHOAL_API int  shoal_put_with_refs(const void *data, size_t len, const shoal_ref refs[],
                                   size_t nrefs, shoal_ref *out);
/* The refs an object contains (those given to shoal_put_with_refs or
 * shoal_task_return_with_refs): sets *n to their number and copies the first min(cap, *n)
 * into out[]. They carry no reference for the caller: they stay valid while the caller
 * holds its reference on ref (retain one to keep it longer). An object without refs, or a
 * failed one, contains none (*n = 0). Never blocks.
 * Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED; SHOAL_EINVAL (n NULL, out NULL with cap > 0, a
 * null or forged ref); SHOAL_ESTALE (freed); SHOAL_EBUSY (not complete yet: a task result
 * still running, an unsealed object: wait for it first); SHOAL_EIO (the list is corrupt:
 * another process wrote the store). */
SHOAL_API int  shoal_object_refs(shoal_ref ref, shoal_ref out[], size_t cap, size_t *n);

/* ---------------------------------------------------------------------------------------
 * Files and spilling (io_uring)
 * ------------------------------------------------------------------------------------- */

/* File I/O never blocks the calling thread (or a worker) in the kernel: a per-process I/O
 * thread does it through io_uring, or with pread/pwrite when io_uring is unavailable (a
 * warning, once per process; SHOAL_NO_IO_URING=1 forces it). Transfers of 1 MiB or more bypass the page
 * cache (O_DIRECT) where the file system and alignment allow; SHOAL_IO_DIRECT=0 turns that
 * off. Callable from any thread, including tasks. One exception, for speed: a thread that
 * is not a worker and waits for a shoal_put_file object with shoal_get (no time limit)
 * before the I/O thread has started its read runs the read itself (open, stat, and the
 * bytes with preadv2, the I/O thread reading part of them too), as its own pread loop
 * would; a file that is not in the page cache, and O_DIRECT reads, go back to the I/O
 * thread after a chunk or two. */

/* Read [offset, offset+len) of path into a new object (len 0 = to the end of the file).
 * Returns at once with the caller's reference; the object becomes ready when the read
 * completes (a task may take it as a REF argument before). Files whose size says nothing
 * (/proc and /sys files report 0 or one page) are read to their end when len is 0, and the
 * range asked when it is not. A FIFO, socket or terminal is refused (its read would wait on
 * another party for as long as it likes, and the file is opened O_NONBLOCK, so no open ever
 * waits either): one stuck file never holds up the others. The read fails the object with SHOAL_EIO and a message naming
 * the path and the cause (missing file, permission, a directory, a FIFO, a device with len
 * 0, an offset past the end, a file shorter than offset + len, an I/O error), SHOAL_EINVAL
 * (a file of unknown size larger than the store), SHOAL_ENOMEM (the store cannot hold it),
 * or SHOAL_ECANCELED (the runtime shut down first). Errors at the call: SHOAL_ENOTINIT,
 * SHOAL_ECANCELED, SHOAL_EINVAL (path NULL, empty or too long, out NULL, offset + len
 * overflows, len larger than the store), SHOAL_ENOMEM. */
SHOAL_API int  shoal_put_file(const char *path, uint64_t offset, size_t len, shoal_ref *out);
/* Write the object's bytes to path (created or truncated, mode 0644) once the object is
 * ready; *done (an empty object, the caller's reference) becomes ready when the bytes are
 * written and fsync'd (on a device with nothing to sync, such as /dev/null, once written),
 * or fails with SHOAL_EIO naming the path and errno (also when the object itself failed).
 * The write holds its own reference: ref may be released at once. Counts as a read of the
 * object (see shoal_advise_cold). FIFOs, sockets and terminals are refused (SHOAL_EIO on
 * *done), as for shoal_put_file. *done fails with SHOAL_EIO, with
 * SHOAL_ENOMEM when the object is spilled and finds no room to come back (it stays spilled:
 * retry), with the object's own code (SHOAL_ETASK, SHOAL_ECANCELED) when the object failed,
 * or with SHOAL_ECANCELED when the runtime stops before the object completes. Errors at
 * the call: SHOAL_ENOTINIT, SHOAL_ECANCELED, SHOAL_EINVAL (path NULL, empty or too long,
 * done NULL, a null or forged ref), SHOAL_ESTALE, SHOAL_ENOMEM. */
SHOAL_API int  shoal_write_file(shoal_ref ref, const char *path, shoal_ref *done);
/* With config.spill_dir set, a put or create that finds the store full first writes sealed
 * objects that nobody has read since they were sealed (oldest first) to spill_dir and frees
 * their memory; shoal_get brings a spilled object back (waiting for the read; a worker runs
 * other tasks meanwhile, except while it already waits for one). When the bytes wanted are
 * free but not in one piece, the objects in the way are spilled. When the spill disk is
 * full, puts that need room fail (SHOAL_ENOMEM, "no object was lost"), but a spilled object
 * can still be read back: its bytes trade places with colder ones (through private memory,
 * where they may stay until the next get if no trade fits). Disk space comes back once the
 * objects are freed (the spill file is punched out after a moment without spill I/O).
 * Spilling is per store: only the owner spills and restores; in an attached process a get of
 * an object the owner spilled answers SHOAL_EIO, one the owner is restoring waits for it.
 *
 * Pointers and spilling: an object that was read stays resident while references exist,
 * since any holder may keep its pointer. A creator's buf (shoal_create) and a task's result
 * buffer are not reads: do not read through them after shoal_seal / the task's return.
 * shoal_advise_cold(ref) makes the object a spill candidate again, and with it every pointer
 * into it invalid as soon as it is spilled, so it counts only when the caller's reference is
 * the last one: the caller declares that it holds no pointer, and no other holder exists who
 * could. With other references (other holders, a task argument, a transfer in flight, an
 * object that embeds it, a file export of it) it answers SHOAL_EBUSY and nothing changes:
 * call it again once they are released. A later get (by anyone, after a shoal_retain) reads
 * it back if it was spilled and makes it resident again. No-op (0) without spill_dir, in an
 * attached process, or for an object that is not sealed and resident. Returns 0 also when it
 * was cold already. Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED,
 * SHOAL_EBUSY, SHOAL_EINVAL (null/forged ref), SHOAL_ESTALE. */
SHOAL_API int  shoal_advise_cold(shoal_ref ref);

/* ---------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_task shoal_task;                 /* the running task's context */
typedef int (*shoal_fn)(shoal_task *t);               /* non-zero return = task failed */

enum { SHOAL_ARG_VALUE = 0, SHOAL_ARG_REF = 1, SHOAL_ARG_REF_PASS = 2 };
/* Or'd into SHOAL_ARG_REF or SHOAL_ARG_REF_PASS: the caller hands one of its references on
 * the ref to the task (it must not release it afterwards), instead of the task taking one
 * of its own; when the submit fails, the caller keeps it. Saves a retain and a release
 * (two atomic read-modify-writes of the object's word) per argument for a caller that
 * would release its ref right after submitting (a driver that builds a DAG). */
#define SHOAL_ARG_MOVE 4

typedef struct shoal_arg {
    int         kind SHOAL__ZERO;   /* SHOAL_ARG_VALUE, SHOAL_ARG_REF (resolved before the task
                                       runs), SHOAL_ARG_REF_PASS (the ref itself is passed, not
                                       awaited); either REF kind | SHOAL_ARG_MOVE */
    const void *data SHOAL__ZERO;   /* VALUE: data and len, copied at submit */
    size_t      len SHOAL__ZERO;
    shoal_ref   ref SHOAL__ZERO;    /* REF, REF_PASS */
} shoal_arg;

/* Argument builders: SHOAL_VALUE(&x, sizeof x), SHOAL_REF(r), SHOAL_REF_PASS(r),
 * SHOAL_REF_MOVE(r), SHOAL_REF_PASS_MOVE(r), e.g.
 * `shoal_arg a[] = { SHOAL_VALUE(&n, sizeof n), SHOAL_REF(r) };`. In C they are compound
 * literals with every field named; C++ has no compound literals, so there they call inline
 * functions. Both compile warning-free at -Wall -Wextra -Wpedantic (C11 and later, C++11
 * and later). */
static inline shoal_arg shoal__arg_make(int kind, const void *data, size_t len, shoal_ref ref)
{
    shoal_arg a;
    a.kind = kind;
    a.data = data;
    a.len = len;
    a.ref = ref;
    return a;
}
#ifdef __cplusplus
#define SHOAL_VALUE(ptr, n)  shoal__arg_make(SHOAL_ARG_VALUE, (ptr), (n), shoal__ref_make(0))
#define SHOAL_REF(r)         shoal__arg_make(SHOAL_ARG_REF, nullptr, 0, (r))
#define SHOAL_REF_PASS(r)    shoal__arg_make(SHOAL_ARG_REF_PASS, nullptr, 0, (r))
#define SHOAL_REF_MOVE(r)    shoal__arg_make(SHOAL_ARG_REF | SHOAL_ARG_MOVE, nullptr, 0, (r))
#define SHOAL_REF_PASS_MOVE(r) \
    shoal__arg_make(SHOAL_ARG_REF_PASS | SHOAL_ARG_MOVE, nullptr, 0, (r))
#else
#define SHOAL_VALUE(ptr, n)  ((shoal_arg){ .kind = SHOAL_ARG_VALUE, .data = (ptr), .len = (n), \
                                           .ref = { 0 } })
#define SHOAL_REF(r)         ((shoal_arg){ .kind = SHOAL_ARG_REF, .data = NULL, .len = 0, \
                                           .ref = (r) })
#define SHOAL_REF_PASS(r)    ((shoal_arg){ .kind = SHOAL_ARG_REF_PASS, .data = NULL, .len = 0, \
                                           .ref = (r) })
#define SHOAL_REF_MOVE(r)    ((shoal_arg){ .kind = SHOAL_ARG_REF | SHOAL_ARG_MOVE, .data = NULL, \
                                           .len = 0, .ref = (r) })
#define SHOAL_REF_PASS_MOVE(r) ((shoal_arg){ .kind = SHOAL_ARG_REF_PASS | SHOAL_ARG_MOVE, \
                                             .data = NULL, .len = 0, .ref = (r) })
#endif

/* flags of shoal_task_opts */
#define SHOAL_TASK_ON_NODE 1u   /* numa_node is meant even when it is 0 (see numa_node) */

/* Options of one task; opts NULL or all-zero means the defaults: any node, no name, no
 * context. Zero-initialise it (C: `shoal_task_opts o = { 0 };` or designated initialisers;
 * C++: its members default to zero) so that fields added later read as their defaults. */
typedef struct shoal_task_opts {
    int         numa_node SHOAL__ZERO; /* run only on this node's workers: honoured when > 0,
                                          or when it is 0 and flags has SHOAL_TASK_ON_NODE (a
                                          zero alone means any node, as zero-initialised);
                                          -1 = any node, whatever flags says */
    const char *name SHOAL__ZERO;      /* copied (63 bytes at most): timeline, failure
                                          messages */
    void       *ctx SHOAL__ZERO;       /* handed to the task: shoal_task_ctx(t) returns it */
    void      (*ctx_done)(void *ctx) SHOAL__ZERO;
                                       /* non-NULL: called once with ctx when the task is over:
                                          after it ran, or when it never will (canceled, a REF
                                          argument failed, shutdown), before its result
                                          completes (except after shoal_cancel of a task not
                                          started: its result fails at once, and ctx_done
                                          runs when the task would have become runnable,
                                          or at shutdown). Not called when shoal_submit fails: ctx
                                          stays the caller's. Runs on whichever thread ends
                                          the task; must not wait for tasks. */
    unsigned    flags SHOAL__ZERO;     /* SHOAL_TASK_* bits; unknown bits: SHOAL_EINVAL */
    unsigned    reserved0 SHOAL__ZERO; /* must be 0 (room to grow without breaking callers) */
    uint64_t    reserved[3] SHOAL__ZERO;   /* must be 0 */
} shoal_task_opts;

/* Submit fn(args) and return its result's ref at once (the caller holds one reference).
 * VALUE args are copied (together at most 1 GiB: larger data belongs in an object passed
 * as a REF); REF and REF_PASS args are retained by the task until it finishes, so the
 * caller may release its own refs at once. With SHOAL_ARG_MOVE or'd into the kind
 * (SHOAL_REF_MOVE, SHOAL_REF_PASS_MOVE) the task takes one of the caller's references
 * instead: on success the caller no longer holds it (it must not release it); on failure
 * it still does. Callable from any thread, including a task.
 * opts may be NULL. Errors: SHOAL_ENOTINIT; SHOAL_EPERM (an attached process: only the
 * store's owner runs tasks); SHOAL_ECANCELED; SHOAL_EINVAL (fn or out NULL, args NULL with nargs >
 * 0, more than 65535 args, a kind that is none of the three (or of the two REF kinds with
 * SHOAL_ARG_MOVE), a VALUE with data NULL and len
 * > 0, VALUEs over 1 GiB, a numa_node that does not exist or has no worker, unknown
 * opts.flags bits or a nonzero opts.reserved field, a REF or
 * REF_PASS that is null or forged or, without MOVE, has 2^24 - 1 references already);
 * SHOAL_ESTALE (a REF
 * or REF_PASS argument is already freed); SHOAL_ENOMEM (no memory for the task or its
 * result). The message names the argument at fault. */
SHOAL_API int  shoal_submit(shoal_fn fn, const shoal_arg args[], size_t nargs,
                            const shoal_task_opts *opts, shoal_ref *out);
/* n submits of fn in one call, all or nothing (Ray's list of remote calls; a driver that
 * submits a level of a DAG at once). Task i's arguments are args[i * nargs_each ..
 * (i + 1) * nargs_each), with shoal_submit's kinds and ownership (VALUEs copied, REF and
 * REF_PASS held by the task until it is over; with SHOAL_ARG_MOVE the task takes the
 * caller's reference), and out[i] receives its result's ref (the caller holds one reference
 * on each). Every task is an ordinary task: its result reports its errors, shoal_cancel
 * works on it, it waits for its own REF arguments (results of earlier calls, batched or
 * not) and runs as soon as they complete, in no particular order relative to the others.
 * A task's arguments cannot name results of the same call (they do not exist yet): submit
 * a level, then the next. opts (NULL: defaults) applies to every task: numa_node, name;
 * opts.ctx and ctx_done must be NULL (a context belongs to one task: use shoal_submit).
 * All or nothing: every argument is checked, every block allocated, every reference taken
 * and every result made before any task becomes visible; on failure nothing was
 * submitted, out[] is untouched, and every reference (moved ones included) is still the
 * caller's. Does not wait for other tasks. Outside a task, on one NUMA node, the ready
 * tasks are queued 256 at a time with one wake check per group; inside a task (or on
 * several nodes) each is queued as shoal_submit queues it. It may allocate (a scratch
 * array of n pointers, task blocks) and so make a system call when memory must be mapped,
 * or when it wakes a sleeping worker. Callable from any thread, a task included.
 * n = 0 does nothing and returns 0 (out and args may then be NULL).
 * Errors: those of shoal_submit, for the task the message names ("task i argument j":
 * SHOAL_EINVAL for an argument's kind or VALUE, a null or forged REF, options;
 * SHOAL_ESTALE for a freed REF; SHOAL_ENOMEM when the blocks or results do not fit: the
 * store stays usable), SHOAL_EINVAL (fn NULL; out NULL with n > 0; args NULL with n > 0 and
 * nargs_each > 0; nargs_each over 65535; n * nargs_each overflowing; opts.ctx or ctx_done
 * set), SHOAL_EPERM (an attached process), SHOAL_ENOTINIT, SHOAL_ECANCELED. */
SHOAL_API int  shoal_submit_batch(size_t n, shoal_fn fn, const shoal_arg args[],
                                  size_t nargs_each, const shoal_task_opts *opts,
                                  shoal_ref out[]);
/* The calls below take the running task's context and are meant for its function, on its
 * worker, while it runs. */
SHOAL_API size_t shoal_task_nargs(shoal_task *t);   /* 0 for NULL */
/* The ctx its submitter put in opts.ctx (NULL if none, or t NULL). The task owns nothing
 * through it: whoever made ctx frees it (opts.ctx_done is called when the task is over). */
SHOAL_API void  *shoal_task_ctx(shoal_task *t);
/* Bytes of argument i: a VALUE's copy, or a REF's object, zero-copy. Errors: SHOAL_EINVAL
 * (t NULL, i out of range, data or len NULL, or the argument is REF_PASS); for a REF, what
 * shoal_get of it answers (it is complete before the task runs, so normally 0). */
SHOAL_API int  shoal_task_arg(shoal_task *t, size_t i, const void **data, size_t *len);
/* The ref of argument i (REF or REF_PASS). The task's reference lasts until it returns;
 * retain it to keep it longer. Errors: SHOAL_EINVAL (t or ref NULL, i out of range, or a
 * VALUE). */
SHOAL_API int  shoal_task_arg_ref(shoal_task *t, size_t i, shoal_ref *ref);
/* Set the task's result to a copy of data. At most once per task. Errors: SHOAL_EINVAL (t
 * NULL, or data NULL with len > 0), SHOAL_EEXIST (returned already, or failed with
 * shoal_task_fail), SHOAL_ENOMEM (the store cannot hold it). */
SHOAL_API int  shoal_task_return(shoal_task *t, const void *data, size_t len);
/* Allocate the task's result in the store and hand back a writable buffer (zero-copy);
 * it is sealed when the task returns. At most once per task. Errors: SHOAL_EINVAL (t or buf
 * NULL), SHOAL_EEXIST (as shoal_task_return), SHOAL_ENOMEM. */
SHOAL_API int  shoal_task_return_buf(shoal_task *t, size_t len, void **buf);
/* shoal_task_return, and the result contains refs[0..nrefs) as for shoal_put_with_refs: it
 * holds a reference on each while it lives, so a task can return the refs of child tasks it
 * started (pending ones too) and release its own: the children run on and stay alive until
 * the result is freed, read or not. Ownership: the call takes the result's references; the
 * task keeps its own on refs[] (release them before returning). If the task then fails
 * (shoal_task_fail, a non-zero return) or is canceled while it runs, the result lets go of
 * its refs at once. At most once per task, all or nothing.
 * Errors: those of shoal_task_return, those of shoal_put_with_refs for the list, and
 * SHOAL_EINVAL when the list names the task's own result or an object whose refs lead back
 * to it (a cycle). */
SHOAL_API int  shoal_task_return_with_refs(shoal_task *t, const void *data, size_t len,
                                           const shoal_ref refs[], size_t nrefs);
/* Mark the task failed with message (copied; NULL: "task NAME failed"); its result answers
 * SHOAL_ETASK with that message, whatever it returned, and a result it returned is dropped.
 * Errors: SHOAL_EINVAL (t NULL), SHOAL_EEXIST (failed already: the first message stays). */
SHOAL_API int  shoal_task_fail(shoal_task *t, const char *message);

/* Cancel the task whose result is task_result (the ref shoal_submit returned), Ray's
 * ray.cancel without force. Does not block, and does not consume the caller's reference (the
 * caller still releases the result as usual). Callable from any thread, a task included.
 *   - Not started yet (queued, or waiting for its REF arguments): it never runs; its result
 *     fails at once with SHOAL_ECANCELED and a message naming the result ("task of result
 *     0x... canceled by shoal_cancel before it started"), which wakes its waiters. Tasks
 *     that take it as a REF argument do not run either: their results fail SHOAL_ECANCELED
 *     carrying that message, and so on down the graph. Its own arguments and context are
 *     let go when it would have become runnable (or at shutdown). Returns 0.
 *   - Running: it is marked; shoal_task_cancelled(t) answers 1 from then on, so the task can
 *     stop early. Whatever it then returns or fails, its result fails SHOAL_ECANCELED ("task
 *     NAME (result 0x...) canceled by shoal_cancel while it ran"); if it completes before
 *     the mark lands, cancel finds it finished (SHOAL_EEXIST below). Returns 1; asking again
 *     while it runs returns 1 again.
 * Exactly one outcome: a cancel racing the task's start or its completion either wins (0 or
 * 1, result SHOAL_ECANCELED) or finds the task finished (SHOAL_EEXIST, result as produced).
 * Errors: SHOAL_EEXIST (the task already finished: its result is sealed, failed, or was
 * canceled before), SHOAL_ENOENT (task_result is not a task's result: an object from
 * shoal_put, shoal_create or a file), SHOAL_EINVAL (null or forged ref), SHOAL_ESTALE (the
 * object was freed), SHOAL_EPERM (an attached client: only the process that submitted a
 * task can cancel it), SHOAL_ENOTINIT. */
SHOAL_API int  shoal_cancel(shoal_ref task_result);
/* 1 once shoal_cancel was called on the running task's result (a cheap poll: one relaxed
 * load, no lock), else 0; a long task checks it between steps and returns early. Errors:
 * SHOAL_EINVAL (t NULL). */
SHOAL_API int  shoal_task_cancelled(shoal_task *t);

/* ---------------------------------------------------------------------------------------
 * Actors: serial executors with state (Ray's actors, on one host)
 *
 * An actor owns a state pointer and runs the calls submitted to it one at a time, in
 * submission order, each on some worker (not always the same one), each seeing the state
 * through shoal_task_actor_state(t); different actors, and plain tasks, run in parallel.
 * A call is a task like any other: VALUE, REF and REF_PASS arguments, a result ref, failure,
 * shoal_cancel, shoal_get inside it. Nothing on the call path takes a lock: a call enters the
 * actor's mailbox with one compare-and-swap, and the worker that finishes a call runs the
 * next ones in a row (up to 64, then it requeues the actor so that other work gets a turn).
 *
 * Order. Calls run in the order they entered the mailbox: one thread's calls in the order it
 * made them; calls from threads racing each other in the order their submissions completed
 * (any interleaving of the threads' own orders). A call with REF arguments waits for them
 * before it runs, and the calls after it wait behind it (Ray keeps submission order the same
 * way): an argument that never completes holds the actor (shoal_actor_destroy or
 * shoal_shutdown still end it). Waiting for arguments holds no worker. The calls' effects on
 * the state are visible to each later call (the hand-over between workers orders them).
 *
 * Waiting inside a call. A call may shoal_get or shoal_wait: its worker runs other tasks
 * meanwhile, never another call of the same actor (the next call starts only once this one
 * returns). As for plain tasks, a cycle (the call waits for something that waits for a later
 * call of its own actor) never completes.
 *
 * The handle is an ID like a ref: copy it, pass it as a VALUE argument (sizeof(shoal_actor)
 * bytes) or inside an object, use it from any thread or task of this process. It is not a
 * ref (do not pass it to the object calls). Once the actor is destroyed its handle answers
 * SHOAL_ESTALE for ever (a slot is reused under a new generation); a forged one answers
 * SHOAL_EINVAL. Actors live in the process that runs the workers: an attached client gets
 * SHOAL_EPERM from every call below.
 * ------------------------------------------------------------------------------------- */
typedef struct shoal_actor { uint64_t id; } shoal_actor;   /* id 0 is never an actor */

/* Create an actor owning state (any pointer, NULL too; shoal never reads it) and, when
 * destroy is non-NULL, the function that frees it: called exactly once, after the actor's
 * last call, by shoal_actor_destroy or shoal_shutdown (see there for the thread). opts may be
 * NULL: opts.numa_node places the actor (every call runs on that node's workers, as a task
 * with that numa_node; any node: each call is placed as a task is), opts.name names it in
 * messages (31 bytes kept); opts.ctx and ctx_done belong to calls. Never blocks; takes a short
 * lock (not a fast path). *out is the caller's to copy and pass around; it holds nothing.
 * Errors: SHOAL_ENOTINIT; SHOAL_ECANCELED (going down); SHOAL_EPERM (an attached client: no
 * workers here); SHOAL_EINVAL (out NULL, opts as shoal_submit rejects them, or opts.ctx /
 * ctx_done set); SHOAL_ENOMEM (65536 actors alive already, or no memory). */
SHOAL_API int  shoal_actor_create(void *state, void (*destroy)(void *state),
                                  const shoal_task_opts *opts, shoal_actor *out);
/* Submit fn(args) as the actor's next call and return its result's ref at once (the caller
 * holds one reference), as shoal_submit does: the same argument kinds and ownership (VALUEs
 * copied, REF and REF_PASS held by the call until it is over), the same result semantics.
 * opts may be NULL; opts.name and opts.ctx / ctx_done apply to the call; opts.numa_node must
 * be any (0 or -1) or the actor's own node: the actor decides where its calls run. Never
 * blocks, no lock (two atomic additions on the actor, one compare-and-swap to queue). Callable
 * from any thread of this process, a task or one of this actor's own calls included (the
 * call then runs after the current one).
 * If the actor is destroyed concurrently, the call either is refused (SHOAL_ESTALE) or was
 * queued first and then fails like every queued call (its result SHOAL_ECANCELED).
 * Errors: those of shoal_submit (SHOAL_EINVAL for its arguments and options, SHOAL_ESTALE for
 * a freed REF argument, SHOAL_ENOMEM, SHOAL_ECANCELED, SHOAL_ENOTINIT), and for the handle:
 * SHOAL_ESTALE (the actor was destroyed, or the runtime it belonged to shut down),
 * SHOAL_EINVAL (null or forged handle, or a numa_node other than the actor's), SHOAL_EPERM
 * (an attached client). */
SHOAL_API int  shoal_actor_submit(shoal_actor a, shoal_fn fn, const shoal_arg args[],
                                  size_t nargs, const shoal_task_opts *opts, shoal_ref *out);
/* The state of the actor whose call t is (the pointer given to shoal_actor_create), valid
 * while the call runs; NULL for a plain task or t NULL. Only the running call touches the
 * state: no lock is needed around it. */
SHOAL_API void *shoal_task_actor_state(shoal_task *t);
/* Destroy an actor (Ray's ray.kill without restart). Never blocks:
 *   - calls queued and not started never run: their results fail with SHOAL_ECANCELED and a
 *     message saying the actor was destroyed (tasks that take them as REF arguments fail in
 *     turn), at once when no call runs, else as soon as the running call returns; a call
 *     waiting for its REF arguments counts as queued;
 *   - a call that runs now finishes normally (its result is what it returns);
 *   - then destroy(state) runs exactly once: on the calling thread, before this returns,
 *     when no call was running; else on the running call's worker right after that call
 *     returns (it must not wait for tasks there).
 * The handle answers SHOAL_ESTALE from the moment this is called (submissions included).
 * Called from inside one of the actor's own calls it is deferred the same way: it returns 0,
 * the queued calls fail, and destroy(state) runs once the calling call has returned.
 * Actors still alive at shoal_shutdown are destroyed by it: their queued calls fail
 * SHOAL_ECANCELED and destroy(state) runs on the thread in shoal_shutdown, after every call
 * ended, at a moment when shoal calls answer SHOAL_ECANCELED (free memory, call no shoal).
 * Errors: SHOAL_ESTALE (destroyed already, concurrently, or by a shutdown), SHOAL_EINVAL (null
 * or forged handle), SHOAL_EPERM (an attached client), SHOAL_ENOTINIT, SHOAL_ECANCELED. */
SHOAL_API int  shoal_actor_destroy(shoal_actor a);

typedef struct shoal_info {       /* a snapshot, for tools and tests */
    unsigned workers, numa_nodes;
    int      huge_pages;          /* what was obtained: SHOAL_PAGES_HUGETLB, _THP or _NORMAL.
                                     A store that is not published is private anonymous
                                     memory and gets THP where the kernel gives anonymous
                                     memory huge pages on request (transparent_hugepage/
                                     enabled: always or madvise); a published one is shared
                                     memory, which needs reserved hugetlb pages or shmem THP */
    size_t   store_bytes, bytes_used;   /* bytes_used: what live objects count against
                                       * store_bytes, exactly: an object of len bytes counts
                                       * its block, len rounded up to its size class: 64 bytes
                                       * up to 64 (a cache line each: no two objects share
                                       * one), then four classes per doubling (80, 96, 112,
                                       * 128, 160, ...; under a quarter more than len) up to
                                       * 256 KiB; a larger object counts len rounded up to
                                       * 64 KiB. An empty object counts 0. */
    uint64_t objects_live, tasks_run, tasks_stolen;
    size_t   largest_free;        /* the largest object one put could place now (on the node
                                     with most room): free space in one piece, within what is
                                     left of store_bytes. After objects are released it comes
                                     back, whatever their sizes were: freed space is merged
                                     and no thread or process keeps much of it cached
                                     (computing it gives back what this thread caches); 0
                                     when nothing fits */
    uint64_t reserved[8];         /* 0 today; fields added later come out of this space */
} shoal_info;
/* Errors: SHOAL_EINVAL (out NULL), SHOAL_ENOTINIT, SHOAL_ECANCELED. */
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
    uint64_t spilled_now_objects;  /* objects spilled right now (not counters: a snapshot);
                                      a few may sit in the owner's private memory after a
                                      swap with a full disk found no room (shoal_advise_cold) */
    uint64_t spilled_now_bytes;
    uint64_t worker_wakes; /* times a thread woke a sleeping worker (a futex wake system call:
                              a submit, or a completion that made a task runnable, found no
                              worker spinning and one asleep) */
} shoal_stats;
/* Fill *out with the current counters. size is sizeof(shoal_stats) as the caller was compiled
 * with: the library writes the first min(size, its own size) bytes and zeroes any rest, so a
 * program built against a newer header reads 0 for counters an older library lacks. Works
 * with or without an initialized runtime. Thread-safe; takes a short lock (not for hot loops).
 * Errors: SHOAL_EINVAL (out NULL or size 0). */
SHOAL_API int  shoal_stats_get(shoal_stats *out, size_t size);
/* Write the task timeline recorded so far (SHOAL_TIMELINE set at shoal_init) as a Chrome
 * trace / Perfetto JSON file, now, and keep recording. path NULL = the SHOAL_TIMELINE path
 * ("%p" there becomes the pid). Written beside the file and renamed, so a reader never sees
 * half of one. Tasks running meanwhile are in the file only if they ended before it was
 * started; with tasks running, the oldest events of a full ring may be missing. The file is
 * also written at shoal_shutdown and at exit (a return from main, exit()); a process killed
 * by a signal or abort() keeps only the files written before, so a long program that may
 * crash calls this from time to time. Thread-safe; blocking (file I/O), not for hot loops.
 * Errors: SHOAL_ENOENT (no timeline: SHOAL_TIMELINE was not set at shoal_init, or the
 * runtime is shut down), SHOAL_EINVAL (path empty, or longer than 4,095 bytes), SHOAL_EIO
 * (cannot write; the message says why). */
SHOAL_API int  shoal_timeline_write(const char *path);
/* Index of the worker running this task, or -1 when the thread that submitted it runs it
 * inside its shoal_get (a get with no time limit of the task it submitted last, which no
 * worker had taken yet: see shoal_get). That -1 is not SHOAL_ENOTINIT (also -1): the only
 * error is SHOAL_EINVAL (t NULL), as a task exists only while its runtime does. */
SHOAL_API int  shoal_task_worker(shoal_task *t);
/* NUMA node of a worker. Errors: SHOAL_ENOTINIT (also in an attached client: no workers),
 * SHOAL_ECANCELED, SHOAL_EINVAL (no such worker). */
SHOAL_API int  shoal_worker_node(unsigned worker);
/* NUMA node that holds an object's bytes. Errors: SHOAL_ENOTINIT, SHOAL_ECANCELED,
 * SHOAL_EINVAL (null/forged ref), SHOAL_ESTALE. */
SHOAL_API int  shoal_object_node(shoal_ref ref);

/* ---------------------------------------------------------------------------------------
 * Internal, not API: the inline lookup fast path behind shoal_get().
 * Inlining saves the call through the PLT (a .so call costs 3.3 ns here against 1.5 ns for
 * the same lookup inline). It reads the calling thread's view of the store, one TLS block
 * (initial-exec, on a cache line of its own): a bounds check of the ID's low half (index and
 * host field) against the view's table size, one table index, one compare of the slot's
 * word XORed with the ID (its high half is the ID's, the generation, and below it READY
 * with waiters and unread clear) and a check that the slot's bytes lie in the store (one
 * sum whose carry is tested, one compare). Anything else -- not initialized, a result held in the slot (out of
 * line, still no library call), a pending, failed, spilled or freed object, a bad ID --
 * goes out of line, most of it to the library's slow path.
 *
 * No global is read: a view is never stale. Whoever takes a runtime down (shutdown, detach,
 * an init that fails late) empties every thread's view (nslots 0) once no call is inside,
 * a fork() child empties its one thread's, a thread's exit empties its own, and only the
 * slow path fills a view, from the runtime that is up. A lookup already past the bounds
 * check when its store goes reads the table through the old view: a table is never unmapped
 * under it (it becomes zeros, which no ID matches), so it misses and the slow path answers
 * (a lookup stalled between two instructions for a whole shutdown and a new init that
 * reuses that range could still read the new table: the epoch compare had that window too).
 *
 * ABI: what this reads (the struct below, the slot's word, off and len at 0, 8 and 16, the
 * word's layout) is compiled into programs. (The word compare skipping deps and cached
 * works against any library of this generation: a READY word never has them.) It changed
 * in 0.2.0 (hot fields first, no epoch
 * compare: the library must empty views as above), and the TLS block's linker name carries
 * that generation (shoal__tls_abi2), so a program built against another layout fails to
 * link or load instead of reading a block it does not understand. Define SHOAL_NO_INLINE to
 * call the library instead (&shoal_get always names the library function).
 * ------------------------------------------------------------------------------------- */
struct shoal__thr;
struct __attribute__((aligned(64))) shoal__tls {
    /* read by the inline lookup; written by the owning thread, nslots also by a runtime
     * going down (atomically, relaxed) */
    uint64_t nslots;                 /* 0 = empty view: every lookup takes the slow path */
    const unsigned char *slots;      /* the object table: 32-byte slots */
    char *base;                      /* object bytes: base + slot offset */
    uint64_t span;                   /* bytes of the arena span: base + [0, span) */
    /* the library's only */
    uint64_t epoch;                  /* the runtime epoch this view was filled at */
    struct shoal__thr *thr;          /* allocation caches */
    int worker;                      /* worker index, -1 outside workers */
    int node;                        /* NUMA node this thread allocates from */
    uint64_t fast_gets;              /* shoal_stats.get_fast: -DSHOAL_COUNT_GETS only */
};
SHOAL_API extern __thread struct shoal__tls shoal__tls __asm__("shoal__tls_abi2")
    __attribute__((tls_model("initial-exec")));
SHOAL_API int shoal__get_slow(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len)
    __attribute__((noinline, cold));

#define SHOAL__SLOT_SHIFT   5            /* slots are 32 bytes: word, off, len, aux+next */
#define SHOAL__HIT_LOW      0x30000000u  /* a hit's word below the generation: READY (3) << 28, */
#define SHOAL__HIT_REFS     0x00ffffffu  /* no flag, and any reference count up to this */
#define SHOAL__LEN_INL_BIT  (1ull << 63) /* len of a small result held in its slot */

/* A hit's word, shifted right by SHOAL__HIT_SHIFT after an XOR with the ID, equals SHOAL__HIT:
 * the generation (bits 63..32) equal, READY in bits 31..28, waiters and unread (27, 26)
 * clear. Bits 25 and 24 (deps, cached) are not compared: the completing CAS clears deps and
 * cached is a FREE slot's, so a READY word never has them; the ID's index bits 25..24 land
 * there, and skipping them keeps the compare to one shift. */
#define SHOAL__HIT_SHIFT    26
#define SHOAL__HIT          (SHOAL__HIT_LOW >> SHOAL__HIT_SHIFT)

/* What the out-of-line part of the lookup answers, in two registers (rax and rdx on x86-64,
 * x0 and x1 on arm64): on success the bytes and their length, on failure data NULL and the
 * error code in len (a get that succeeds never answers NULL: its bytes are in the store or
 * in the slot). So only the inline lookup writes the caller's *data and *len. While their
 * addresses went to the function out of line, the compiler kept a caller's two variables
 * in memory, and a caller that sets them before the get (const void *d = NULL) stored them
 * to its stack at every call, hit or not (two of bench/lookup's 33 instructions a get). */
struct shoal__got { const void *data; uint64_t len; };

/* A result of at most 8 bytes held in the slot itself (its length has the top bit set,
 * outside every span; its bytes are the offset field): whether s holds one, and if so its
 * bytes and length in *g. Read once the word said READY (the lookup's acquire load). */
static inline int shoal__get_held(const uint64_t *s, struct shoal__got *g)
{
    uint64_t n = __atomic_load_n(&s[2], __ATOMIC_RELAXED);
    if ((n ^ SHOAL__LEN_INL_BIT) > 8)
        return 0;
    g->data = (const void *)&s[1];
    g->len = n ^ SHOAL__LEN_INL_BIT;
    return 1;
}

/* The result held in the slot itself (s not NULL), and everything else the inline lookup
 * does not answer: out of the caller's hot loop (static, so no new symbol; emitted once per
 * program file that inlines a get). */
static __attribute__((noinline, cold, unused)) struct shoal__got shoal__get_miss(shoal_ref ref,
                                                                                  const uint64_t *s)
{
    struct shoal__got g;
    if (s && shoal__get_held(s, &g))
        return g;
    size_t n = 0;
    int rc = shoal__get_slow(ref, -1, &g.data, &n);
    if (rc < 0)
        g.data = NULL;
    g.len = rc < 0 ? (uint64_t)(int64_t)rc : (uint64_t)n;
    return g;
}

/* Two steps of the inline lookup, each one instruction and a branch on x86-64 with gcc or
 * clang (flag outputs of asm): the hit path is short enough that an extra instruction shows
 * (a separate load before the compare, a carry the compiler materializes with setc cost
 * 7-15% of a hot get here). Elsewhere, plain C with the same meaning. */
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
/* idx < the view's nslots, read once by the compare itself: an aligned 8-byte read, as the
 * relaxed atomic load of the C version (a runtime going down writes nslots atomically). */
static inline int shoal__view_has(uint64_t idx)
{
    unsigned char below;
    __asm__("cmpq %2, %1" : "=@ccb"(below) : "r"(idx), "m"(shoal__tls.nslots));
    return below;
}
/* *end = off + n; whether that sum did not wrap around (the carry of the add). */
static inline int shoal__sum_fits(uint64_t off, uint64_t n, uint64_t *end)
{
    unsigned char carry;
    __asm__("addq %2, %0" : "+r"(off), "=@ccc"(carry) : "r"(n));
    *end = off;
    return !carry;
}
#else
static inline int shoal__view_has(uint64_t idx)
{
    return idx < __atomic_load_n(&shoal__tls.nslots, __ATOMIC_RELAXED);
}
static inline int shoal__sum_fits(uint64_t off, uint64_t n, uint64_t *end)
{
    /* the empty asm keeps the compiler from turning the wrap test into a carry flag it
     * then materializes */
    uint64_t e = off + n;
    __asm__("" : "+r"(e));
    *end = e;
    return e >= off;
}
#endif

/* The hit path of the lookup, the one copy of its checks: the inline get below and the
 * library's exported shoal_get (core/get.c) each wrap it with a miss of the shape that suits
 * them. On a hit, writes *data and *len and answers 1; otherwise answers 0 and leaves them,
 * with *slot the slot whose word matched (a result held in it, or bytes outside the store)
 * or NULL (anything else). data and len are not NULL.
 * shoal__tls is named directly, not through a pointer to it: g++ 12 with UBSan's null check
 * miscompiles that pointer's test (it reads stale flags) and reports a null access. */
static inline __attribute__((always_inline)) int shoal__get_hit(shoal_ref ref,
                                                                const void **data,
                                                                size_t *len,
                                                                const uint64_t **slot)
{
    /* The ID's low half is host and index; tables have at most 2^26 slots, so a nonzero
     * host field fails the bounds check. */
    uint64_t idx = (uint32_t)ref.id;
    *slot = NULL;
    if (__builtin_expect(shoal__view_has(idx), 1)) {
        const uint64_t *s =
            (const uint64_t *)(const void *)(shoal__tls.slots + (idx << SHOAL__SLOT_SHIFT));
        /* acquire: pairs with the release that made the object READY, so its offset,
         * length and bytes are visible. */
        uint64_t w = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (__builtin_expect(((w ^ ref.id) >> SHOAL__HIT_SHIFT) == SHOAL__HIT, 1)) {
            /* Read only once READY (before, the object's maker may still be writing them).
             * Any attached process can rewrite a slot's offset and length: [off, off + n)
             * must lie in [0, span) or the slow path answers (it reports such a slot), so a
             * get never returns a wild pointer. A sum that does not wrap around and
             * end <= span is exactly that (shoal__sum_fits). Each field is read once: the
             * checked copies are what is returned. */
            uint64_t off = __atomic_load_n(&s[1], __ATOMIC_RELAXED);
            uint64_t n = __atomic_load_n(&s[2], __ATOMIC_RELAXED);
            uint64_t end;
            if (__builtin_expect(shoal__sum_fits(off, n, &end) && end <= shoal__tls.span, 1)) {
                *data = shoal__tls.base + off;
                *len = (size_t)n;
#ifdef SHOAL_COUNT_GETS
                /* relaxed load + store, not an RMW: this thread is the only writer and
                 * shoal_stats_get only needs an untorn value. */
                __atomic_store_n(&shoal__tls.fast_gets,
                                 __atomic_load_n(&shoal__tls.fast_gets, __ATOMIC_RELAXED) + 1,
                                 __ATOMIC_RELAXED);
#endif
                return 1;
            }
            *slot = s;   /* held in the slot, or bytes outside the store: the miss looks */
        }
    }
    return 0;
}

/* The inline get: its miss answers in registers (struct shoal__got above), so only this
 * code writes the caller's *data and *len and a caller's two variables stay in registers. */
static inline int shoal__get_inline(shoal_ref ref, const void **data, size_t *len)
{
    /* data and len NULL: the library reports it. This folds away when the caller passes
     * addresses of locals. */
    if (__builtin_expect(data == NULL || len == NULL, 0))
        return shoal__get_slow(ref, -1, data, len);
    const uint64_t *s;
    if (__builtin_expect(shoal__get_hit(ref, data, len, &s), 1))
        return 0;
    struct shoal__got g = shoal__get_miss(ref, s);
    if (__builtin_expect(g.data == NULL, 0)) {
        /* An error leaves *data and *len as they were (a program may keep bytes it got
         * before: test_mp_wait). gcc sees this path leave them unset and would warn in
         * callers that read them after an error, as it did not while their addresses went
         * out of line; the empty asm "sets" them to what they were. (clang's warning does
         * not look into inlined calls.) The error is < 0, and the test below says so, or
         * gcc sees a 0 that leaves them unset. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
        __asm__("" : "+r"(*data), "+r"(*len));
#pragma GCC diagnostic pop
#endif
        int rc = (int)(int64_t)g.len;
        return rc < 0 ? rc : SHOAL_EINVAL;
    }
    *data = g.data;
    *len = (size_t)g.len;
    return 0;
}
#ifdef SHOAL_NO_INLINE
#undef shoal_get
#endif

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
