/* soak.c - the multi-process chaos soak (`make soak DURATION=seconds`): an owner with a small
 * spilling store and several attached clients put, create+seal, get, retain, release, post
 * refs on a shared board that the others read, mail each other objects with refs whose
 * listed object is in flight too (shoal_put_with_refs, shoal_transfer, shoal_accept), write
 * objects to files and read them back;
 * the owner also runs tasks on REF arguments (its own objects and the clients', some not
 * sealed yet) and marks objects cold so that they are spilled and restored. Meanwhile
 * clients are SIGKILLed at random moments (now and then stopped cleanly) and restarted.
 * Every object names its writer and sequence number in its first 16 bytes and carries the
 * matching pattern, so every read checks its bytes. At the end: nothing read was wrong, the
 * objects the owner keeps are intact, shoal_info_get shows objects and bytes back at their
 * starting values, no spill space is held, and the owner's fds and threads did not grow.
 * One leak is by design (shoal.h, shoal_attach): a client killed inside shoal_retain or
 * shoal_release (its own, or its I/O thread's on a file operation's objects) may leak that
 * call's one reference. Each client names the refs it is taking or dropping references on
 * (shared.inflight, shared.io_refs); a leftover object counts as such a leak only if a
 * killed client named exactly it, and then its reference is dropped and reported; any other
 * leftover fails the run.
 * Prints operations, kills, restarts and anything lost (must be nothing); exit 0 = pass.
 *
 *   soak [--duration S] [--clients N] [--seed X] [--store MIB] [--dir D]
 *
 * It can never multiply. A client is a process whose environment has SHOAL_SOAK_ROLE=client,
 * which only the owner puts there (never in its own environment); a client never spawns. An
 * owner refuses to start under another owner (SHOAL_SOAK_OWNER, which every owner sets in
 * its own environment, so that its children inherit it). The owner keeps at most --clients
 * (<= 8) children, restarts only one it reaped, and gives up on a restart storm. Every
 * process has a hard alarm(); clients die with the owner (PR_SET_PDEATHSIG) and exit when
 * they find their parent is not the owner; the clients live in a process group of their own,
 * which the owner kills at every exit (normal, alarm, exit()). The owner removes its
 * directory at the end.
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoal.h"
#include "../../layout/mpseg.h"   /* the leftover dump only: what a failed run left in the table */

extern char **environ;

#define ROLE_ENV  "SHOAL_SOAK_ROLE"       /* "client": set only in a client's environment */
#define OWNER_ENV "SHOAL_SOAK_OWNER"      /* an owner's pid: its descendants never own */
#define MAXC      8
#define BSLOTS    8                       /* board entries per process */
#define ANCHORS   16
#define HDR       16                      /* writer, sequence */
#define WAIT_NS   (60 * 1000000000ll)     /* every blocking call: a hang becomes an error */
#define STOP_NS   (20 * 1000000000ull)    /* a client asked to stop that has not exited: KILL */
#define END_SLACK 600                     /* the owner's alarm: duration + this many seconds */

enum { K_PUT, K_CREATE, K_GET, K_RETAIN, K_RELEASE, K_POST, K_PEEK, K_FILE, K_TASK, K_COLD,
       K_ANCHOR, K_MAIL, K_UNMAIL, NK };
static const char *const kname[NK] = { "put", "create+seal", "get", "retain", "release",
                                       "post", "peek", "file round trip", "task", "advise_cold",
                                       "anchor read", "mail (list + transfers)",
                                       "mail taken (accepts)" };
#define MSLOTS    4                       /* mail entries per process */
#define MAIL_TTL_NS (3ll * 1000000000)    /* a letter nobody takes expires: the owner drops it */

#define IO_RING 6                         /* two file round trips' refs */

/* Shared between the owner and its clients (a memfd inherited across exec). */
struct shared {
    _Atomic uint64_t ops[MAXC + 1];       /* steps per process slot; [MAXC]: the owner */
    _Atomic uint64_t kind[NK];            /* operations by kind */
    _Atomic uint64_t errors;
    _Atomic uint64_t gone;                /* board objects found freed or failed (poster died) */
    _Atomic uint64_t expired;             /* refs of letters that expired before their taker */
    _Atomic uint64_t refused;             /* attaches refused (no room yet): restarted */
    _Atomic uint64_t enomem;              /* puts/restores that found no room */
    /* Board: process slot p posts refs it retained for the board in board[p][]; only p
     * (or its successor in the slot, which clears it) changes its row; others read it and
     * retain what they find for themselves. The board's reference is the poster's: when
     * the poster dies, the owner drops it with the rest of its references. */
    _Atomic uint64_t board[MAXC + 1][BSLOTS];
    _Atomic uint64_t anchors[ANCHORS];    /* the owner's objects kept all along */
    /* Mail: process slot p sends letters in mail[p][]: an object with refs O listing one of
     * its objects X, both transferred (shoal_transfer), so that both are in flight while
     * a list names X. Only p (or its successor in the slot) fills an empty entry; anyone
     * (p too) takes a letter with an exchange, accepts O, finds X in O's list, accepts X,
     * checks both and releases them. A letter whose taker dies, or that nobody takes,
     * expires (MAIL_TTL_NS) and the owner drops its references. */
    _Atomic uint64_t mail[MAXC + 1][MSLOTS];
    /* The ref whose reference a process is taking or dropping (retain, release, the
     * retain inside write_file), 0 between such calls: a client killed inside one may leak
     * that one reference, as shoal.h says; the owner notes it at the kill (suspects). */
    _Atomic uint64_t inflight[MAXC + 1];
    /* A second such ref: the object whose list a release of inflight[] may be dropping. */
    _Atomic uint64_t inflight2[MAXC + 1];
    /* The same for the references a client's I/O thread holds and drops on its own, after
     * the call returned (write_file's source and result, put_file's object): the refs of its
     * last file round trips, a ring per process. */
    _Atomic uint64_t io_refs[MAXC + 1][IO_RING];
    _Atomic uint32_t nmsg;                /* messages claimed in msg[] */
    char msg[4][512];                     /* the first errors' messages */
};

static struct shared *sh;
static uint64_t g_who;                    /* writer id: 1 + client slot, or 100 = owner */
static int g_slot;                        /* board row and ops counter: client slot, MAXC */
static int g_is_owner;
static char g_name[64], g_dir[200];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- objects that check themselves ---------------------------------------------------------- */

static inline uint8_t pat(uint64_t who, uint64_t seq, size_t i)
{
    uint64_t x = who * 0x9E3779B97F4A7C15ull ^ seq * 0xC2B2AE3D27D4EB4Full ^ i * 0x165667B19E3779F9ull;
    x ^= x >> 29;
    return (uint8_t)(x ^ (x >> 17));
}

static void fill(void *p, size_t n, uint64_t who, uint64_t seq)
{
    uint8_t *b = p;
    memcpy(b, &who, 8);
    memcpy(b + 8, &seq, 8);
    for (size_t i = HDR; i < n; i++)
        b[i] = pat(who, seq, i);
}

/* The bytes hold their own header's pattern. */
static int intact(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t who, seq;
    if (n < HDR)
        return 0;
    memcpy(&who, b, 8);
    memcpy(&seq, b + 8, 8);
    for (size_t i = HDR; i < n; i++)
        if (b[i] != pat(who, seq, i))
            return 0;
    return 1;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    atomic_fetch_add(&sh->errors, 1);
    uint32_t k = atomic_fetch_add(&sh->nmsg, 1);
    if (k < 4) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(sh->msg[k], sizeof sh->msg[k], "[%s %d] ", g_is_owner ? "owner" : "client",
                         (int)getpid());
        vsnprintf(sh->msg[k] + n, sizeof sh->msg[k] - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static void count(int k) { atomic_fetch_add_explicit(&sh->kind[k], 1, memory_order_relaxed); }

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t bits(shoal_ref r) { unsigned char b[8]; uint64_t v; shoal_ref_encode(r, b); memcpy(&v, b, 8); return v; }
static shoal_ref unbits(uint64_t v) { unsigned char b[8]; memcpy(b, &v, 8); return shoal_ref_decode(b); }

static size_t pick_len(uint64_t *s)
{
    uint64_t k = rnd(s) % 100;
    if (k < 70)
        return HDR + (size_t)(rnd(s) % 2000);
    if (k < 95)
        return HDR + (size_t)(rnd(s) % 70000);
    return (size_t)(256u << 10) + (size_t)(rnd(s) % (2u << 20));
}

/* Read r (the caller holds a reference) and check its bytes; 1 when read intact.
 * theirs: another process's object, which may fail because its maker died before
 * completing it (SHOAL_ECANCELED), or be on disk where only the owner can restore it. */
static int check(shoal_ref r, int theirs, const char *what)
{
    const void *d;
    size_t n;
    int rc = shoal_get_timeout(r, WAIT_NS, &d, &n);
    count(K_GET);
    if (rc == SHOAL_ENOMEM) {   /* no room to restore it now */
        atomic_fetch_add(&sh->enomem, 1);
        return 0;
    }
    if (theirs && (rc == SHOAL_ECANCELED || (rc == SHOAL_EIO && strstr(shoal_last_error(), "spill")))) {
        atomic_fetch_add(&sh->gone, 1);
        return 0;
    }
    if (rc) {
        fail("%s: get 0x%016llx: %d (%s)", what, (unsigned long long)r.id, rc, shoal_last_error());
        return 0;
    }
    if (!intact(d, n)) {
        fail("%s: object 0x%016llx (%zu bytes) holds bytes that are not its own", what,
             (unsigned long long)r.id, n);
        return 0;
    }
    return 1;
}

/* Around a call that takes or drops a reference on r (see shared.inflight). relaxed and a
 * signal fence: only a SIGKILL can interrupt us, and the owner reads it after reaping. */
static inline void ref_op_begin(shoal_ref r)
{
    atomic_store_explicit(&sh->inflight[g_slot], r.id, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}
static inline void ref_op_end(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&sh->inflight[g_slot], 0, memory_order_relaxed);
    atomic_store_explicit(&sh->inflight2[g_slot], 0, memory_order_relaxed);
}
/* As ref_op_begin, for the release of r, whose list names `listed`. */
static inline void ref_op_begin2(shoal_ref r, shoal_ref listed)
{
    atomic_store_explicit(&sh->inflight2[g_slot], listed.id, memory_order_relaxed);
    ref_op_begin(r);
}
/* A ref whose reference this process's I/O thread holds and drops by itself (io_refs). */
static void io_ref(shoal_ref r)
{
    static unsigned k;
    atomic_store_explicit(&sh->io_refs[g_slot][k++ % IO_RING], r.id, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}

static int retain_op(shoal_ref r)
{
    ref_op_begin(r);
    int rc = shoal_retain(r);
    ref_op_end();
    return rc;
}

/* Drop a reference the caller holds: never an error. */
static void rel(shoal_ref r, const char *what)
{
    ref_op_begin(r);
    int rc = shoal_release(r);
    ref_op_end();
    count(K_RELEASE);
    if (rc)
        fail("%s: release 0x%016llx: %d (%s)", what, (unsigned long long)r.id, rc, shoal_last_error());
}

/* ---- one process's workload ------------------------------------------------------------------- */

struct live { shoal_ref r; int sealed; void *buf; size_t len; uint64_t seq; };

struct work {
    uint64_t seed, seq;
    struct live l[64];
    int n;
    unsigned files;
};

static void put_one(struct work *w)
{
    size_t len = pick_len(&w->seed);
    uint64_t seq = ++w->seq;
    struct live x = { SHOAL_REF_NULL, 1, NULL, len, seq };
    int rc;
    if (rnd(&w->seed) % 3) {
        void *b = malloc(len);
        fill(b, len, g_who, seq);
        rc = shoal_put(b, len, &x.r);
        free(b);
        count(K_PUT);
    } else {
        rc = shoal_create(len, &x.buf, &x.r);
        x.sealed = 0;
        count(K_CREATE);
    }
    if (rc == SHOAL_ENOMEM) {
        atomic_fetch_add(&sh->enomem, 1);
        return;
    }
    if (rc) {
        fail("put/create %zu: %d (%s)", len, rc, shoal_last_error());
        return;
    }
    w->l[w->n++] = x;
}

static void seal_one(struct live *x)
{
    fill(x->buf, x->len, g_who, x->seq);
    int rc = shoal_seal(x->r);
    if (rc)
        fail("seal 0x%016llx: %d (%s)", (unsigned long long)x->r.id, rc, shoal_last_error());
    x->sealed = 1;
}

static void drop(struct work *w, int i)
{
    if (!w->l[i].sealed)
        seal_one(&w->l[i]);
    rel(w->l[i].r, "own object");
    w->l[i] = w->l[--w->n];
}

/* Post one of ours on our board row (retained for it; sealed or not yet). */
static void post(struct work *w, int i)
{
    _Atomic uint64_t *e = &sh->board[g_slot][rnd(&w->seed) % BSLOTS];
    if (atomic_load(e) != 0)
        return;
    if (retain_op(w->l[i].r) != 0) {
        fail("retain for the board: %s", shoal_last_error());
        return;
    }
    count(K_RETAIN);
    count(K_POST);
    atomic_store(e, bits(w->l[i].r));
}

/* Take one of our posts down again (the board's reference is dropped). */
static void unpost(struct work *w, int all)
{
    for (int k = 0; k < BSLOTS; k++) {
        if (!all && (int)(rnd(&w->seed) % BSLOTS) != k)
            continue;
        uint64_t v = atomic_exchange(&sh->board[g_slot][k], 0);
        if (v)
            rel(unbits(v), "board post taken down");
    }
}

/* Read what another process posted: our own reference first (the poster may take its post
 * down or die meanwhile: then the object is freed, SHOAL_ESTALE, or, never completed,
 * fails with SHOAL_ECANCELED). 1 with *out retained by us. */
static int peek(struct work *w, shoal_ref *out)
{
    int row = (int)(rnd(&w->seed) % (MAXC + 1));
    if (row == g_slot)
        return 0;
    uint64_t v = atomic_load(&sh->board[row][rnd(&w->seed) % BSLOTS]);
    if (!v)
        return 0;
    shoal_ref r = unbits(v);
    int rc = retain_op(r);
    count(K_PEEK);
    if (rc == SHOAL_ESTALE) {
        atomic_fetch_add(&sh->gone, 1);
        return 0;
    }
    if (rc) {
        fail("retain a board object 0x%016llx: %d (%s)", (unsigned long long)r.id, rc,
             shoal_last_error());
        return 0;
    }
    count(K_RETAIN);
    *out = r;
    return 1;
}

static void peek_and_read(struct work *w)
{
    shoal_ref r;
    if (!peek(w, &r))
        return;
    check(r, 1, "board object");
    rel(r, "board object (our reference)");
}

/* Write one of ours to a file and read it back into a new object. */
/* Send a letter (see shared.mail): X = our object i, retained for the letter; O lists X. A
 * kill inside may leak one reference on X (the retain, or the list's take); the transfers
 * leak nothing. */
static void mail_send(struct work *w, int i)
{
    _Atomic uint64_t *e = &sh->mail[g_slot][rnd(&w->seed) % MSLOTS];
    struct live *x = &w->l[i];
    if (atomic_load(e) != 0 || !x->sealed)
        return;
    unsigned char b[HDR + 200];
    fill(b, sizeof b, g_who, ++w->seq);
    shoal_ref o = SHOAL_REF_NULL;
    count(K_MAIL);
    ref_op_begin(x->r);
    int rc = shoal_retain(x->r), step = 0;
    if (rc == 0 && ++step && (rc = shoal_put_with_refs(b, sizeof b, &x->r, 1, &o)) == 0 &&
        ++step && (rc = shoal_transfer(x->r, MAIL_TTL_NS)) == 0 && ++step)
        rc = shoal_transfer(o, MAIL_TTL_NS);
    char m[300];
    snprintf(m, sizeof m, "%s", rc ? shoal_last_error() : "");
    /* Undone on a failure: X's transfer taken back, O and the retain dropped. */
    if (rc && step == 3 && shoal_accept(x->r) != 0)
        fail("mail: taking back our own transfer: %s", shoal_last_error());
    if (rc && step >= 2)
        shoal_release(o);
    if (rc && step >= 1)
        shoal_release(x->r);
    ref_op_end();
    if (rc == SHOAL_ENOMEM) {
        atomic_fetch_add(&sh->enomem, 1);
        return;
    }
    if (rc) {
        fail("mail (step %d): %d (%s)", step, rc, m);
        return;
    }
    atomic_store(e, bits(o));
}

/* Take a letter (O, taken off its entry) and read it. */
static void mail_take(shoal_ref o)
{
    count(K_UNMAIL);
    int rc = shoal_accept(o);
    if (rc == SHOAL_ETIMEDOUT || rc == SHOAL_ESTALE) {   /* expired: the owner dropped it */
        atomic_fetch_add(&sh->expired, 1);
        return;
    }
    if (rc) {
        fail("mail: accept 0x%016llx: %d (%s)", (unsigned long long)o.id, rc, shoal_last_error());
        return;
    }
    shoal_ref in[2] = { SHOAL_REF_NULL, SHOAL_REF_NULL };
    size_t n = 0;
    rc = shoal_object_refs(o, in, 2, &n);
    if (rc || n != 1) {
        fail("mail: the list of 0x%016llx: %d, %zu refs (%s)", (unsigned long long)o.id, rc, n,
             rc ? shoal_last_error() : "one expected");
        rel(o, "letter");
        return;
    }
    /* X: accepted, or expired meanwhile - O's list holds it either way. */
    int ra = shoal_accept(in[0]);
    if (ra == SHOAL_ETIMEDOUT || ra == SHOAL_ESTALE)
        atomic_fetch_add(&sh->expired, 1);
    else if (ra)
        fail("mail: accept listed 0x%016llx: %d (%s)", (unsigned long long)in[0].id, ra,
             shoal_last_error());
    check(in[0], 1, "listed object (mail)");
    check(o, 1, "letter");
    if (ra == 0)
        rel(in[0], "listed object (mail)");
    ref_op_begin2(o, in[0]);   /* its release drops the list's reference on X */
    rc = shoal_release(o);
    ref_op_end();
    count(K_RELEASE);
    if (rc)
        fail("mail: release letter: %d (%s)", rc, shoal_last_error());
}

static void mail_recv(struct work *w)
{
    int row = (int)(rnd(&w->seed) % (MAXC + 1));
    uint64_t v = atomic_exchange(&sh->mail[row][rnd(&w->seed) % MSLOTS], 0);
    if (v)
        mail_take(unbits(v));
}

/* Every letter of a row (or of all rows: row < 0) taken. */
static void mail_drain(int row)
{
    for (int p = 0; p <= MAXC; p++)
        for (int k = 0; row < 0 || p == row ? k < MSLOTS : 0; k++) {
            uint64_t v = atomic_exchange(&sh->mail[p][k], 0);
            if (v)
                mail_take(unbits(v));
        }
}

static void file_roundtrip(struct work *w, int i)
{
    char path[256];
    snprintf(path, sizeof path, "%s/f-%d-%u", g_dir, (int)getpid(), w->files++);
    shoal_ref done, back;
    count(K_FILE);
    ref_op_begin(w->l[i].r);   /* it retains the object for the write */
    io_ref(w->l[i].r);
    int rc = shoal_write_file(w->l[i].r, path, &done);
    ref_op_end();
    if (rc == 0)
        io_ref(done);
    if (rc) {
        fail("write_file: %d (%s)", rc, shoal_last_error());
        return;
    }
    const void *d;
    size_t n;
    rc = shoal_get_timeout(done, WAIT_NS, &d, &n);
    rel(done, "write_file result");
    if (rc) {
        /* A spilled object that finds no room to come back (none in total, or none in one
         * piece) fails the write with SHOAL_ENOMEM: room, not a loss. */
        if (rc == SHOAL_ENOMEM)
            atomic_fetch_add(&sh->enomem, 1);
        else
            fail("write_file result: %d (%s)", rc, shoal_last_error());
        unlink(path);
        return;
    }
    rc = shoal_put_file(path, 0, 0, &back);
    if (rc == 0)
        io_ref(back);
    if (rc == 0) {
        check(back, 0, "put_file object");
        rel(back, "put_file object");
    } else if (rc == SHOAL_ENOMEM) {
        atomic_fetch_add(&sh->enomem, 1);
    } else {
        fail("put_file: %d (%s)", rc, shoal_last_error());
    }
    unlink(path);
}

static int task_check(shoal_task *t)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const void *d;
        size_t n;
        int rc = shoal_task_arg(t, i, &d, &n);
        if (rc != 0) {   /* e.g. spilled since, and no room to restore it: its message says */
            char m[400];
            snprintf(m, sizeof m, "argument %zu not readable: %d (%s)", i, rc, shoal_last_error());
            return shoal_task_fail(t, m);
        }
        if (!intact(d, n)) {
            fail("task argument %zu holds bytes that are not its own", i);
            return shoal_task_fail(t, "argument corrupt");
        }
        sum += n;
    }
    return shoal_task_return(t, &sum, sizeof sum);
}

/* The owner: a task on two of its objects and one a client posted (perhaps not sealed yet;
 * its maker may die first: then the task fails with SHOAL_ETASK). */
static void submit_one(struct work *w)
{
    shoal_arg a[3];
    size_t na = 0;
    for (int k = 0; k < 2 && w->n; k++) {
        struct live *x = &w->l[rnd(&w->seed) % (uint64_t)w->n];
        if (!x->sealed)   /* else the task would wait for this thread, which waits for it */
            seal_one(x);
        a[na++] = SHOAL_REF(x->r);
    }
    shoal_ref theirs;
    int got = peek(w, &theirs);
    if (got)
        a[na++] = SHOAL_REF(theirs);
    shoal_ref res;
    count(K_TASK);
    int rc = shoal_submit(task_check, a, na, NULL, &res);
    if (got)   /* the task holds its own reference now */
        rel(theirs, "board object given to a task");
    if (rc == SHOAL_ENOMEM) {
        atomic_fetch_add(&sh->enomem, 1);
        return;
    }
    if (rc) {
        fail("submit: %d (%s)", rc, shoal_last_error());
        return;
    }
    const void *d;
    size_t n;
    rc = shoal_get_timeout(res, WAIT_NS, &d, &n);
    count(K_GET);
    if ((rc == SHOAL_ETASK || rc == SHOAL_ECANCELED) && got)
        atomic_fetch_add(&sh->gone, 1);   /* the client's object failed (its maker died:
                                             ECANCELED, the argument's code, sched/task.c) */
    else if (rc == SHOAL_ETASK && (strstr(shoal_last_error(), "no room") ||
                                   strstr(shoal_last_error(), "cannot restore")))
        atomic_fetch_add(&sh->enomem, 1);
    else if (rc == SHOAL_ENOMEM)
        atomic_fetch_add(&sh->enomem, 1);
    else if (rc)
        fail("task result: %d (%s)", rc, shoal_last_error());
    rel(res, "task result");
}

static void step(struct work *w)
{
    uint64_t op = rnd(&w->seed) % 100;
    /* Objects created and not sealed yet get sealed a few steps later (posted meanwhile). */
    for (int i = 0; i < w->n; i++)
        if (!w->l[i].sealed && rnd(&w->seed) % 4 == 0)
            seal_one(&w->l[i]);
    if (w->n < 48 && op < 30) {
        put_one(w);
    } else if (w->n && op < 52) {
        struct live *x = &w->l[rnd(&w->seed) % (uint64_t)w->n];
        if (x->sealed)
            check(x->r, 0, "own object");
    } else if (w->n && op < 58) {
        struct live *x = &w->l[rnd(&w->seed) % (uint64_t)w->n];
        if (retain_op(x->r) == 0) {
            count(K_RETAIN);
            rel(x->r, "own object (retain/release)");
        } else {
            fail("retain own object: %s", shoal_last_error());
        }
    } else if (w->n && op < 70) {
        drop(w, (int)(rnd(&w->seed) % (uint64_t)w->n));
    } else if (w->n && op < 76) {
        post(w, (int)(rnd(&w->seed) % (uint64_t)w->n));
    } else if (op < 79) {
        unpost(w, 0);
    } else if (op < 84) {
        peek_and_read(w);
    } else if (w->n && op < 86) {
        mail_send(w, (int)(rnd(&w->seed) % (uint64_t)w->n));
    } else if (op < 88) {
        mail_recv(w);
    } else if (w->n && op < 90) {
        struct live *x = &w->l[rnd(&w->seed) % (uint64_t)w->n];
        if (x->sealed)
            file_roundtrip(w, (int)(x - w->l));
    } else if (g_is_owner && op < 96) {
        submit_one(w);
    } else if (g_is_owner && w->n) {
        struct live *x = &w->l[rnd(&w->seed) % (uint64_t)w->n];
        if (x->sealed) {   /* may be spilled now, and read back by a later get */
            count(K_COLD);
            int rc = shoal_advise_cold(x->r);
            if (rc && rc != SHOAL_EBUSY)   /* EBUSY: posted, or a task's argument: shared */
                fail("advise_cold: %d (%s)", rc, shoal_last_error());
        }
    } else {
        count(K_ANCHOR);
        shoal_ref a = unbits(atomic_load(&sh->anchors[rnd(&w->seed) % ANCHORS]));
        check(a, 0, "anchor");
    }
    atomic_fetch_add_explicit(&sh->ops[g_slot], 1, memory_order_relaxed);
}

static void work_end(struct work *w)
{
    unpost(w, 1);
    mail_drain(g_slot);
    while (w->n)
        drop(w, w->n - 1);
}

/* ---- clients -------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_req;
static void on_stop(int sig) { (void)sig; stop_req = 1; }

#ifndef __SANITIZE_ADDRESS__   /* ASan reports faults itself */
/* A client that faults says where before it dies (addr2line -e soak resolves the offsets). */
static void on_crash(int sig)
{
    static const char m[] = "soak: client crashed; its stack:\n";
    if (write(2, m, sizeof m - 1) < 0) {}
    void *pc[64];
    backtrace_symbols_fd(pc, backtrace(pc, 64), 2);
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

/* argv: soak-client FD SLOT SEED NAME DIR OWNER_PID DEADLINE (CLOCK_MONOTONIC seconds). */
static int client_main(int argc, char **argv)
{
    if (argc != 8)
        _exit(2);
    pid_t owner = (pid_t)atoi(argv[6]);
    /* Die with the owner; and if it is gone already (or this is not its child), now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (owner <= 0 || getppid() != owner)
        _exit(2);
    long left = atol(argv[7]) - (long)(now_ns() / 1000000000u);
    alarm((unsigned)(left > 0 ? left : 0) + END_SLACK / 2);   /* hard stop whatever happens */
#ifndef __SANITIZE_ADDRESS__   /* ASan reports faults itself */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGABRT, on_crash);
#endif
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[1]), 0);
    if (sh == MAP_FAILED)
        _exit(2);
    g_slot = atoi(argv[2]);
    if (g_slot < 0 || g_slot >= MAXC)
        _exit(2);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    snprintf(g_name, sizeof g_name, "%s", argv[4]);
    snprintf(g_dir, sizeof g_dir, "%s", argv[5]);
    g_who = 1 + (uint64_t)g_slot;
    signal(SIGTERM, on_stop);
    /* The posts of this slot's killed predecessor: their references were its own, which the
     * owner drops as it processes that death. */
    for (int k = 0; k < BSLOTS; k++)
        atomic_store(&sh->board[g_slot][k], 0);
    int rc = shoal_attach(g_name);
    if (rc == SHOAL_EBUSY || rc == SHOAL_ENOMEM) {
        atomic_fetch_add(&sh->refused, 1);   /* room comes back as the dead are reclaimed */
        return 0;
    }
    if (rc) {
        fail("attach: %d (%s)", rc, shoal_last_error());
        return 1;
    }
    struct work *w = calloc(1, sizeof *w);
    if (!w)
        _exit(2);
    w->seed = seed | 1;
    w->seq = seed << 20;
    for (uint64_t n = 0; !stop_req; n++) {
        step(w);
        shoal_info i;
        if (n % 64 == 0 && shoal_info_get(&i) != 0)
            break;   /* the owner is gone (SHOAL_ECANCELED) */
    }
    work_end(w);
    free(w);
    shoal_shutdown();
    return 0;
}

/* ---- the owner -------------------------------------------------------------------------------- */

static _Atomic int owner_stop;

static void *owner_work(void *arg)
{
    struct work *w = arg;
    while (!atomic_load(&owner_stop))
        step(w);
    return NULL;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Our threads, without the kernel's io_uring workers (iou-wrk-*), which come and go with the
 * I/O load and are not ours to stop. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], comm[64] = "";
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        n += strncmp(comm, "iou-", 4) != 0;
    }
    closedir(d);
    return n;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    remove(p);
    return 0;
}

/* Refs whose reference a killed client was taking or dropping (shared.inflight): each may
 * have leaked one reference, the bounded leak shoal.h documents. At the end, a leftover
 * object is accounted to these windows only if a suspect names it exactly; any other
 * leftover fails the run. */
#define MAX_SUSPECTS 65536
static uint64_t suspects[MAX_SUSPECTS];
static size_t nsuspects;
static uint64_t suspects_lost;   /* suspects beyond the array: leftovers then cannot be told */

static void suspect(uint64_t id)
{
    if (!id)
        return;
    if (nsuspects < MAX_SUSPECTS)
        suspects[nsuspects++] = id;
    else
        suspects_lost++;
}

static void note_inflight(int c)
{
    suspect(atomic_exchange(&sh->inflight[c], 0));
    suspect(atomic_exchange(&sh->inflight2[c], 0));
    for (int k = 0; k < IO_RING; k++)
        suspect(atomic_exchange(&sh->io_refs[c][k], 0));
}

/* The object in table slot i if it is live and not an anchor (the end of a run: nothing
 * else should be left), else a null ref; *w its word. */
static shoal_ref leftover(uint64_t i, uint64_t *w)
{
    shoal__rt_t *rt = shoal__rt;
    *w = atomic_load_explicit(&rt->slots[i].word, memory_order_acquire);
    if (shoal__w_state(*w) == SHOAL__FREE)
        return SHOAL_REF_NULL;
    shoal_ref r = { shoal__id_make(i, shoal__w_gen(*w)) };
    for (int k = 0; k < ANCHORS; k++)
        if (bits(r) == atomic_load(&sh->anchors[k]))
            return SHOAL_REF_NULL;
    return r;
}

/* Leftovers that a killed client's retain or release explains (suspects): the reference it
 * leaked is dropped here, once per suspect naming the object. Returns the references
 * dropped. */
static uint64_t drop_window_leaks(void)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t end = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed), dropped = 0;
    for (uint64_t i = 1; i < end && i < rt->nslots; i++) {
        uint64_t w;
        shoal_ref r = leftover(i, &w);
        if (r.id == 0)
            continue;
        uint32_t n = 0;
        for (size_t k = 0; k < nsuspects; k++)
            n += suspects[k] == r.id;
        for (uint32_t k = 0; k < n && k < shoal__w_refs(w); k++)
            dropped += shoal_release(r) == 0;
    }
    return dropped;
}

/* A failed run: every object left in the table but the anchors, with what its bytes say
 * about its maker (writer 100 = the owner, 1 + slot = a client) and its process. */
static void dump_leftovers(void)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t end = atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed), shown = 0;
    for (uint64_t i = 1; i < end && i < rt->nslots && shown < 20; i++) {
        shoal__slot *s = &rt->slots[i];
        uint64_t w;
        shoal_ref r = leftover(i, &w);
        if (r.id == 0)
            continue;
        uint64_t who = 0, seq = 0;
        if (shoal__w_state(w) == SHOAL__READY && s->len >= HDR &&
            s->off < rt->node_span * rt->nnodes) {
            memcpy(&who, rt->base + s->off, 8);
            memcpy(&seq, rt->base + s->off + 8, 8);
        }
        printf("soak:   left: 0x%016llx state %u refs %u, %llu bytes, process %u, writer %llu "
               "seq %llu\n", (unsigned long long)r.id, shoal__w_state(w), shoal__w_refs(w),
               (unsigned long long)s->len, SHOAL__AUX_PROC(s->aux), (unsigned long long)who,
               (unsigned long long)seq);
        shown++;
    }
}

/* Wait until the figures are back at the start's and no spill space is held, or until they
 * stop moving for 5 s (at most 60 s): the owner processes the last deaths meanwhile. */
static void settle(const shoal_info *ia, shoal_info *in, shoal_stats *st)
{
    uint64_t t0 = now_ns(), moved = t0, last = UINT64_MAX;
    for (;;) {
        shoal_info_get(in);
        shoal_stats_get(st, sizeof *st);
        if (in->objects_live == ia->objects_live && in->bytes_used == ia->bytes_used &&
            st->spilled_now_objects == 0 && st->spilled_now_bytes == 0)
            return;
        uint64_t now = now_ns(), sig = in->objects_live * 1000003u + in->bytes_used;
        if (sig != last) {
            last = sig;
            moved = now;
        }
        if (now - moved > 5000000000ull || now - t0 > 60000000000ull)
            return;
        usleep(10000);
    }
}

static char self_path[4096];
static int shared_fd;
static char **client_env;
static pid_t pid[MAXC];                   /* live clients (0: none in that slot) */
static uint64_t deadline_s;
/* The clients' process group (not ours, so that killing it spares the owner and whatever
 * started it): every client is spawned into it; 0 until the first. A new group is made only
 * when the old one has no member left, so every client alive or unreaped is in it. */
static pid_t client_pgid;

/* Every client, whatever happened to our bookkeeping: their whole process group. Async-
 * signal-safe; run at every exit of the owner. */
static void kill_clients(void)
{
    for (int c = 0; c < MAXC; c++)
        if (pid[c] > 0)
            kill(pid[c], SIGKILL);
    if (client_pgid > 0)
        kill(-client_pgid, SIGKILL);
}

/* The SIGALRM of a hung owner: take the clients down with it (they would follow anyway). */
static void on_owner_alarm(int sig)
{
    (void)sig;
    static const char m[] = "soak: FAIL: the owner hit its hard alarm (a hang): killing everything\n";
    kill_clients();
    if (write(2, m, sizeof m - 1) < 0) {}
    _exit(3);
}

/* Only the owner spawns, into an empty slot: at most --clients children live at once. */
static void spawn_client(int slot, uint64_t seed)
{
    if (!g_is_owner || slot < 0 || slot >= MAXC || pid[slot] > 0)
        abort();
    char a_fd[16], a_slot[16], a_seed[32], a_owner[16], a_dl[32];
    snprintf(a_fd, sizeof a_fd, "%d", shared_fd);
    snprintf(a_slot, sizeof a_slot, "%d", slot);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)seed);
    snprintf(a_owner, sizeof a_owner, "%d", (int)getpid());
    snprintf(a_dl, sizeof a_dl, "%llu", (unsigned long long)deadline_s);
    char *argv[] = { "soak-client", a_fd, a_slot, a_seed, g_name, g_dir, a_owner, a_dl, NULL };
    pid_t p;
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, client_pgid);
    int e = posix_spawn(&p, self_path, NULL, &at, argv, client_env);
    if (e != 0 && client_pgid != 0) {   /* the group is gone with its last member: a new one */
        posix_spawnattr_setpgroup(&at, 0);
        client_pgid = 0;
        e = posix_spawn(&p, self_path, NULL, &at, argv, client_env);
    }
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        fail("posix_spawn: %s", strerror(e));
        return;
    }
    if (client_pgid == 0)
        client_pgid = p;
    pid[slot] = p;
}

/* Reap slot c's client, asking it to stop first when term (a clean detach), else SIGKILL. */
static uint64_t stop_killed;   /* clients asked to stop that had to be killed */

static void stop_client(int c, int term)
{
    if (pid[c] <= 0)
        return;
    if (term) {
        kill(pid[c], SIGTERM);
        uint64_t t0 = now_ns();
        int st = 0;
        pid_t r;
        while ((r = waitpid(pid[c], &st, WNOHANG)) == 0) {
            if (now_ns() - t0 > STOP_NS) {
                kill(pid[c], SIGKILL);
                waitpid(pid[c], NULL, 0);
                stop_killed++;
                break;
            }
            usleep(2000);
        }
        /* It may have ended by itself just before (no room to attach: status 0). */
        if (r == pid[c] && (!WIFEXITED(st) || WEXITSTATUS(st) != 0) &&
            !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
            fail("client %d (slot %d) asked to stop ended with %s %d", (int)pid[c], c,
                 WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    } else {
        int st = 0;
        kill(pid[c], SIGKILL);
        waitpid(pid[c], &st, 0);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fail("client %d (slot %d) ended by itself with %s %d", (int)pid[c], c,
                 WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    note_inflight(c);
    pid[c] = 0;
}

/* An environment for clients: ours plus the role, which we never have ourselves. */
static char **make_client_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **e = calloc(n + 2, sizeof *e);
    if (!e)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ROLE_ENV "=", sizeof ROLE_ENV) != 0)
            e[k++] = environ[i];
    e[k++] = ROLE_ENV "=client";
    e[k] = NULL;
    return e;
}

static volatile sig_atomic_t owner_term;
static void on_owner_term(int sig) { (void)sig; owner_term = 1; }

int main(int argc, char **argv)
{
    const char *role = getenv(ROLE_ENV);
    if (role) {   /* only ever a client, whatever its arguments say */
        if (strcmp(role, "client") != 0)
            return 2;
        return client_main(argc, argv);
    }
    const char *up = getenv(OWNER_ENV);
    if (up) {
        fprintf(stderr, "soak: started under another soak owner (pid %s): refusing to run\n", up);
        return 2;
    }
    g_is_owner = 1;
    ssize_t k = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (k <= 0)
        return 2;
    self_path[k] = 0;
    double duration = 60;
    int nclients = 4;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    size_t store_mib = 48;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--duration"))
            duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            nclients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--store"))
            store_mib = (size_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else {
            fprintf(stderr, "soak: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nclients < 1 || nclients > MAXC || duration < 1 || duration > 7 * 86400 || store_mib < 16) {
        fprintf(stderr, "soak: --clients 1..%d, --duration 1..604800 s, --store >= 16 MiB\n", MAXC);
        return 2;
    }
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    setenv(OWNER_ENV, pidbuf, 1);   /* anything we start inherits it and never owns */
    deadline_s = now_ns() / 1000000000u + (uint64_t)duration;
    signal(SIGALRM, on_owner_alarm);
    alarm((unsigned)duration + END_SLACK);
    atexit(kill_clients);   /* every return from main too (the normal end has reaped them) */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_owner_term);
    signal(SIGINT, on_owner_term);
    g_who = 100;
    g_slot = MAXC;
    /* Our own directory (socket, spill file, file round trips), removed at the end. */
    if (dir)
        snprintf(g_dir, sizeof g_dir, "%s/soak-%d", dir, (int)getpid());
    else
        snprintf(g_dir, sizeof g_dir, "/tmp/shoal-soak-%d", (int)getpid());
    if (mkdir(g_dir, 0700) != 0) {
        perror(g_dir);
        return 2;
    }
    char spill[256];
    snprintf(spill, sizeof spill, "%s/spill", g_dir);
    mkdir(spill, 0700);
    setenv("SHOAL_RUN_DIR", g_dir, 1);
    snprintf(g_name, sizeof g_name, "soak-%d", (int)getpid());
    client_env = make_client_env();
    shared_fd = memfd_create("soak", 0);   /* inherited by the clients across exec */
    if (!client_env || shared_fd < 0 || ftruncate(shared_fd, sizeof *sh) != 0)
        return 2;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, shared_fd, 0);
    if (sh == MAP_FAILED)
        return 2;

    shoal_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.store_bytes = store_mib << 20;
    cfg.workers = 2;
    cfg.name = g_name;
    cfg.spill_dir = spill;
    int rc = shoal_init(&cfg);
    if (rc) {
        fprintf(stderr, "soak: shoal_init: %s\n", shoal_last_error());
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 2;
    }
    printf("soak: %.0f s, %d clients, seed 0x%llx, %zu MiB store spilling to %s\n", duration,
           nclients, (unsigned long long)seed, store_mib, spill);
    fflush(stdout);
    /* Warm up every path of the owner once (threads and rings start on first use), then
     * the anchors: kept all along, read once so that they stay resident. */
    struct work *ow = calloc(1, sizeof *ow);
    uint64_t rs = seed | 1;
    ow->seed = rnd(&rs) | 1;
    for (int i = 0; i < 4; i++)
        put_one(ow);
    for (int i = 0; i < ow->n; i++)
        if (!ow->l[i].sealed)
            seal_one(&ow->l[i]);
    if (ow->n) {
        file_roundtrip(ow, 0);
        shoal_advise_cold(ow->l[0].r);
    }
    submit_one(ow);
    work_end(ow);
    for (int i = 0; i < ANCHORS; i++) {
        size_t len = HDR + 1000u * (size_t)i;
        void *b = malloc(len);
        fill(b, len, 100, 1u << 30 | (uint64_t)i);
        shoal_ref r;
        if (shoal_put(b, len, &r) != 0) {
            fprintf(stderr, "soak: anchor put: %s\n", shoal_last_error());
            return 2;
        }
        free(b);
        check(r, 0, "anchor");
        atomic_store(&sh->anchors[i], bits(r));
    }
    shoal_info ia;
    shoal_info_get(&ia);
    int fds0 = count_dir("/proc/self/fd"), thr0 = count_threads();

    uint64_t kills = 0, restarts = 0, clean = 0, spawned = 0;
    for (int c = 0; c < nclients; c++) {
        spawn_client(c, rnd(&rs));
        spawned++;
    }
    pthread_t th;
    pthread_create(&th, NULL, owner_work, ow);

    uint64_t t_start = now_ns(), t_end = t_start + (uint64_t)(duration * 1e9);
    uint64_t next_report = t_start + 10000000000ull;
    int storm = 0;
    while (now_ns() < t_end && !owner_term) {
        usleep((useconds_t)(20000 + rnd(&rs) % 280000));
        int c = (int)(rnd(&rs) % (uint64_t)nclients);
        if (rnd(&rs) % 10 == 0) {   /* now and then a clean exit */
            stop_client(c, 1);
            clean++;
        } else {
            stop_client(c, 0);
            kills++;
        }
        /* Any that exited on its own (no room to attach yet, or a failure) is restarted
         * too: every empty slot is filled, none twice. */
        for (int j = 0; j < nclients; j++) {
            int st;
            if (pid[j] > 0 && waitpid(pid[j], &st, WNOHANG) == pid[j]) {
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                    fail("client %d (slot %d) ended by itself with %s %d", (int)pid[j], j,
                         WIFEXITED(st) ? "status" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                pid[j] = 0;
            }
        }
        for (int j = 0; j < nclients; j++)
            if (pid[j] == 0) {
                spawn_client(j, rnd(&rs));
                restarts++;
                spawned++;
            }
        /* A restart storm (clients dying at once on start) ends the run. */
        double secs = (double)(now_ns() - t_start) / 1e9;
        if ((double)spawned > 8.0 * (secs + 1.0) * nclients) {
            fail("restart storm: %llu clients started in %.0f s", (unsigned long long)spawned, secs);
            storm = 1;
            break;
        }
        if (now_ns() >= next_report) {
            uint64_t ops = 0;
            for (int j = 0; j <= MAXC; j++)
                ops += atomic_load(&sh->ops[j]);
            printf("soak: %.0f s: %llu operations, %llu kills, %llu restarts, %llu errors\n",
                   secs, (unsigned long long)ops, (unsigned long long)kills,
                   (unsigned long long)restarts, (unsigned long long)atomic_load(&sh->errors));
            fflush(stdout);
            next_report += 10000000000ull;
        }
    }

    /* The end: clients killed (mid-work too), the owner's work stopped and dropped. */
    for (int c = 0; c < MAXC; c++)
        if (pid[c] > 0) {
            stop_client(c, 0);
            kills++;
        }
    atomic_store(&owner_stop, 1);
    pthread_join(th, NULL);
    mail_drain(-1);   /* the letters of every process, the dead's included */
    int failed = storm;
    /* Every object the owner still keeps holds its own bytes. */
    for (int i = 0; i < ow->n; i++)
        if (ow->l[i].sealed && !check(ow->l[i].r, 0, "owner's object at the end"))
            failed = 1;
    work_end(ow);
    shoal_info in;
    shoal_stats st;
    uint64_t t0 = now_ns();
    settle(&ia, &in, &st);
    /* Not back: a killed client may have leaked the reference it was taking or dropping
     * (the bounded leak shoal.h documents); drop those its suspects name, then look again. */
    uint64_t window_leaks = 0;
    if (in.objects_live != ia.objects_live || in.bytes_used != ia.bytes_used) {
        window_leaks = drop_window_leaks();
        if (window_leaks)
            settle(&ia, &in, &st);
    }
    printf("soak: settled after %.2f s: %llu objects / %llu bytes (start %llu / %llu, with %d "
           "anchors), %llu objects / %llu bytes spilled\n", (double)(now_ns() - t0) / 1e9,
           (unsigned long long)in.objects_live, (unsigned long long)in.bytes_used,
           (unsigned long long)ia.objects_live, (unsigned long long)ia.bytes_used, ANCHORS,
           (unsigned long long)st.spilled_now_objects, (unsigned long long)st.spilled_now_bytes);
    if (in.objects_live != ia.objects_live || in.bytes_used != ia.bytes_used) {
        printf("soak: FAIL: objects or bytes did not come back\n");
        dump_leftovers();
        failed = 1;
    }
    if (st.spilled_now_objects || st.spilled_now_bytes) {
        printf("soak: FAIL: spill space still held\n");
        failed = 1;
    }
    for (int i = 0; i < ANCHORS; i++)
        if (!check(unbits(atomic_load(&sh->anchors[i])), 0, "anchor at the end"))
            failed = 1;
    int fds1 = count_dir("/proc/self/fd"), thr1 = count_threads();
    for (int tries = 0; tries < 300 && (fds1 > fds0 || thr1 > thr0); tries++) {
        usleep(10000);
        fds1 = count_dir("/proc/self/fd");
        thr1 = count_threads();
    }
    printf("soak: owner's fds %d -> %d, threads %d -> %d\n", fds0, fds1, thr0, thr1);
    if (fds1 > fds0 || thr1 > thr0) {
        printf("soak: FAIL: fds or threads grew\n");
        failed = 1;
    }
    uint64_t ops = 0;
    for (int j = 0; j <= MAXC; j++)
        ops += atomic_load(&sh->ops[j]);
    uint64_t errors = atomic_load(&sh->errors);
    shoal_stats_get(&st, sizeof st);
    printf("soak: %llu operations (owner %llu) in %.0f s: %llu clients killed, %llu stopped "
           "cleanly (%llu of them killed after %llu s), %llu restarts (%llu attaches refused "
           "for room), %llu objects spilled, %llu restored; %llu board objects found gone with "
           "their poster, %llu letters' refs expired, %llu times no room\n",
           (unsigned long long)ops, (unsigned long long)atomic_load(&sh->ops[MAXC]),
           (double)(now_ns() - t_start) / 1e9, (unsigned long long)kills,
           (unsigned long long)clean, (unsigned long long)stop_killed,
           (unsigned long long)(STOP_NS / 1000000000u), (unsigned long long)restarts,
           (unsigned long long)atomic_load(&sh->refused), (unsigned long long)st.spilled_objects,
           (unsigned long long)st.restored_objects, (unsigned long long)atomic_load(&sh->gone),
           (unsigned long long)atomic_load(&sh->expired), (unsigned long long)atomic_load(&sh->enomem));
    printf("soak: refs named by killed clients (retain, release, file I/O, mail): %zu%s; references "
           "leaked in those calls (the bounded "
           "leak shoal.h documents), dropped at the end: %llu\n", nsuspects,
           suspects_lost ? " (more not recorded)" : "", (unsigned long long)window_leaks);
    printf("soak: by kind:");
    for (int j = 0; j < NK; j++)
        printf(" %s %llu%s", kname[j], (unsigned long long)atomic_load(&sh->kind[j]),
               j + 1 < NK ? "," : "\n");
    printf("soak: %llu errors%s\n", (unsigned long long)errors, errors ? "; the first:" : "");
    for (uint64_t k = 0; k < errors && k < 4; k++)
        printf("soak:   %s\n", sh->msg[k]);
    if (errors)
        failed = 1;
    for (int i = 0; i < ANCHORS; i++)
        shoal_release(unbits(atomic_load(&sh->anchors[i])));
    free(ow);
    rc = shoal_shutdown();
    if (rc) {
        printf("soak: FAIL: shoal_shutdown: %s\n", shoal_last_error());
        failed = 1;
    }
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(client_env);
    printf("soak: %s\n", failed ? "FAILED" : "passed: nothing lost");
    return failed;
}
