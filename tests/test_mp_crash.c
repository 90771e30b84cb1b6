/* test_mp_crash.c - a client killed at every instruction of a call (issue 11.7): the test
 * traces an attached client (ptrace), single-steps it through one call - put, create+seal,
 * the release that frees its own object, a retain and a release of the owner's object, the
 * release of another client's object, shoal_put_with_refs and the release of an object with
 * refs (its own, another client's, the owner's) - and SIGKILLs it after k instructions, for
 * every k (or every few, under sanitizers). After each death the owner must have lost nothing (its
 * objects live, with their bytes) and, once it has processed the death, the store's
 * figures must be back where they were: whatever the call was doing is reclaimed. The one
 * documented exception: a death inside shoal_retain / shoal_release between the reference
 * count and the dying process's ledger can leak that one reference (include/shoal.h), as can
 * a death inside shoal_put_with_refs or the release of a list between the count and the
 * list's own record of it; such leaks are counted, must be one reference at most, on the
 * object of the call or the one its list names, and are undone by the test. Then the same
 * while the object the call touches is named by lists and a ref of it is in flight: a
 * transfer or accept of a listed object (the dead client's, another's, the owner's), a
 * put_with_refs and the release of an outer object while the listed one is in flight.
 * And a client that dies while its owner is still inside shoal_init (a breakpoint stops it
 * there) does not take the owner down.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../alloc/chunks.h"
#include "../alloc/arena.h"
#include "../io/io.h"
#include "../layout/mpseg.h"
#include "../mproc/mproc.h"
#include "lib/mp.h"

enum { CR_RUN = MP_USER,     /* a=op b=ref c=len: stop, run the call, stop, reply (a=ref) */
       CR_TRANSFER,          /* a=ref: shoal_transfer untraced (XFER_TTL_NS) -> rc */
       CR_PUT_REFS,          /* a=ref b=len: shoal_put_with_refs untraced, listing a twice
                                -> rc, a=ref */
       CR_XFER_STUCK };      /* a=ref: shoal_transfer left inside its window, just after
                                the record: what a thread of ours stopped inside
                                shoal_transfer, between the record and the ledger, leaves
                                (layout/mpseg.h, "Windows") -> rc */
enum { OP_PUT = 1, OP_CREATE_SEAL, OP_RETAIN, OP_RELEASE, OP_TRANSFER, OP_ACCEPT,
       OP_PUT_REFS };        /* b=ref: shoal_put_with_refs of c bytes listing b twice */
#define XFER_TTL_NS (600ll * 1000000000)   /* no ref expires while a scenario looks */

static bool stop_here(void)
{
    return true;
}

static void crash_child(const struct mp_cmd *m, struct mp_rep *r)
{
    static unsigned char buf[1u << 16];
    shoal_ref ref = mp_bits_ref(m->b), out = SHOAL_REF_NULL;
    size_t len = m->c < sizeof buf ? (size_t)m->c : sizeof buf;
    if (m->code == CR_TRANSFER || m->code == CR_XFER_STUCK) {
        shoal_ref x = mp_bits_ref(m->a);
        if (m->code == CR_XFER_STUCK)
            shoal__xfer_window_hook = stop_here;
        r->rc = shoal_transfer(x, XFER_TTL_NS);
        shoal__xfer_window_hook = NULL;
        return;
    }
    if (m->code == CR_PUT_REFS) {
        shoal_ref two[2] = { mp_bits_ref(m->a), mp_bits_ref(m->a) };
        len = m->b < sizeof buf ? (size_t)m->b : sizeof buf;
        pat_fill(buf, len, 57, len);
        r->rc = shoal_put_with_refs(buf, len, two, 2, &out);
        r->a = mp_ref_bits(out);
        return;
    }
    if (m->code != CR_RUN) {
        r->rc = -100;
        return;
    }
    pat_fill(buf, len, 51, len);
    raise(SIGSTOP);   /* the tracer counts (or kills) from here ... */
    switch (m->a) {
    case OP_PUT:
        r->rc = shoal_put(buf, len, &out);
        break;
    case OP_CREATE_SEAL: {
        void *p;
        r->rc = shoal_create(len, &p, &out);
        if (r->rc == 0) {
            memcpy(p, buf, len);
            r->rc = shoal_seal(out);
        }
        break;
    }
    case OP_RETAIN:
        r->rc = shoal_retain(ref);
        break;
    case OP_RELEASE:
        r->rc = shoal_release(ref);
        break;
    case OP_TRANSFER:
        r->rc = shoal_transfer(ref, XFER_TTL_NS);
        break;
    case OP_ACCEPT:
        r->rc = shoal_accept(ref);
        break;
    case OP_PUT_REFS: {
        shoal_ref two[2] = { ref, ref };
        r->rc = shoal_put_with_refs(buf, len, two, 2, &out);
        break;
    }
    default:
        r->rc = -100;
    }
    raise(SIGSTOP);   /* ... to here */
    r->a = mp_ref_bits(out);
}

/* Send the call to c, traced: with kill_at < 0 let it finish and return how many
 * instructions it took (its answer in *rep); else SIGKILL it after kill_at instructions
 * (or when it finishes first) and return kill_at. < 0: tracing failed. */
static long traced_call(struct mp_child *c, uint64_t op, uint64_t ref, uint64_t len, long kill_at,
                        struct mp_rep *rep)
{
    int st;
    if (ptrace(PTRACE_SEIZE, c->pid, 0, 0) != 0)
        return -1;
    if (mp_send(c, CR_RUN, op, ref, len, 0) != 0)
        return -2;
    if (waitpid(c->pid, &st, __WALL) != c->pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP)
        return -3;
    long n = 0;
    int sig = 0;   /* the first SIGSTOP is suppressed, as are steps' SIGTRAPs */
    for (;;) {
        if (kill_at >= 0 && n == kill_at)
            break;
        if (ptrace(PTRACE_SINGLESTEP, c->pid, 0, (void *)(intptr_t)sig) != 0)
            return -4;
        if (waitpid(c->pid, &st, __WALL) != c->pid || !WIFSTOPPED(st))
            return -5;
        sig = 0;
        if (WSTOPSIG(st) == SIGSTOP)
            break;   /* the call is done */
        if (WSTOPSIG(st) != SIGTRAP)
            sig = WSTOPSIG(st);   /* someone else's signal: delivered on the next step */
        else
            n++;
    }
    if (kill_at >= 0) {
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &st, __WALL) == c->pid && !WIFEXITED(st) && !WIFSIGNALED(st)) {
        }
        close(c->fd);
        c->fd = -1;
        c->pid = -1;
        return kill_at;
    }
    if (ptrace(PTRACE_DETACH, c->pid, 0, 0) != 0 || mp_recv(c, rep) != 0)
        return -6;
    return n;
}

/* One scenario: a fresh client gets ready (prep), then the call is made traced and the
 * client killed at instruction k, for k over the whole call; after each death has been
 * processed, the store is checked. */
struct scen {
    const char *name;
    uint64_t op, len;
    /* Make the client ready; returns the ref the call takes (0 when none). */
    uint64_t (*prep)(struct mp_child *c);
    /* The object the call retains or releases, and the references it must have once the
     * death is processed (the owner's, or none: 0 = freed); see check_after. */
    uint32_t refs_after;
    /* The call moves a reference into or out of flight (shoal_transfer, shoal_accept):
     * after the death it is either in flight (refs_after + 1 references, and the owner's
     * shoal_accept takes it) or gone with the dead process's (refs_after, and nothing is
     * in flight) - exactly one of the two, never a leak. */
    bool inflight;
    /* Instead of check_after, after each death and after the clean run (the lists cases). */
    int (*check)(const struct scen *sc, uint64_t ref);
};

static shoal_ref owner_obj;          /* the owner's object the scenarios share */
static shoal_info base;              /* the owner's figures with owner_obj and nothing else */
static struct mp_child helper;       /* a second client, for another process's object */

static int owner_obj_ok(void)
{
    const void *d;
    size_t n;
    return shoal_get(owner_obj, &d, &n) == 0 && n == 5000 && pat_ok(d, n, 50, 1);
}


/* The references on the object ref names now: 0 when it is freed. */
static uint32_t refs_of(shoal_ref r)
{
    uint64_t w = atomic_load_explicit(&shoal__rt->slots[shoal__id_idx(r.id)].word,
                                      memory_order_acquire);
    if (shoal__w_gen(w) != shoal__id_gen(r.id) || shoal__w_state(w) == SHOAL__FREE)
        return 0;
    return shoal__w_refs(w);
}

/* Warm-up common to all: a few puts and releases (caches, arena, ledger pages). */
static void warm(struct mp_child *c)
{
    for (int i = 0; i < 3; i++) {
        struct mp_rep m = mp_call(c, MP_PUT, 3000, 52, (uint64_t)i, 0);
        CU_ASSERT_EQUAL(m.rc, 0);
        CU_ASSERT_EQUAL(mp_call(c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    }
}

static uint64_t prep_plain(struct mp_child *c)
{
    warm(c);
    return 0;
}

/* Its own object, which the call releases (the last reference: the free path). */
static uint64_t prep_own(struct mp_child *c)
{
    warm(c);
    struct mp_rep m = mp_call(c, MP_PUT, 3000, 53, 1, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    return m.a;
}

/* The owner's object, retained by the client (the call retains or releases it). */
static uint64_t prep_owner_held(struct mp_child *c)
{
    warm(c);
    CU_ASSERT_EQUAL(mp_call(c, MP_RETAIN, mp_ref_bits(owner_obj), 0, 0, 0).rc, 0);
    return mp_ref_bits(owner_obj);
}

/* Another client's object, whose last reference the call drops (a remote free). */
static uint64_t prep_other_clients(struct mp_child *c)
{
    warm(c);
    struct mp_rep m = mp_call(&helper, MP_PUT, 3000, 54, 1, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(mp_call(c, MP_RETAIN, m.a, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_call(&helper, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    return m.a;
}

/* The owner's object, with one more reference of the owner's in flight (the call accepts it). */
static uint64_t prep_owner_sent(struct mp_child *c)
{
    warm(c);
    CHECK_OK(shoal_retain(owner_obj));
    CHECK_OK(shoal_transfer(owner_obj, XFER_TTL_NS));
    return mp_ref_bits(owner_obj);
}

/* Another client's object, in flight (its only reference; the call accepts it). */
static uint64_t prep_other_sent(struct mp_child *c)
{
    warm(c);
    struct mp_rep m = mp_call(&helper, MP_PUT, 3000, 55, 1, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(mp_call(&helper, CR_TRANSFER, m.a, 0, 0, 0).rc, 0);
    return m.a;
}

/* Objects that contain refs (core/objrefs.c): each lists the owner's object twice, so
 * that the owner's object counts 3 references while it lives (check_after sees what a
 * death left of them). The call's put lists it (no object to release: the call makes one). */
static uint64_t prep_put_refs(struct mp_child *c)
{
    warm(c);
    return mp_ref_bits(owner_obj);
}

/* Its own object listing the owner's twice; the call frees it (its list on the way). */
static uint64_t prep_own_with_refs(struct mp_child *c)
{
    warm(c);
    struct mp_rep m = mp_call(c, CR_PUT_REFS, mp_ref_bits(owner_obj), 3000, 0, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(refs_of(owner_obj), 3);
    return m.a;
}

/* Another client's object listing the owner's twice, whose last reference the call drops
 * (a remote free: the list is released by the caller, the bytes go back to the helper). */
static uint64_t prep_other_clients_with_refs(struct mp_child *c)
{
    warm(c);
    struct mp_rep m = mp_call(&helper, CR_PUT_REFS, mp_ref_bits(owner_obj), 3000, 0, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(mp_call(c, MP_RETAIN, m.a, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_call(&helper, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    return m.a;
}

/* The owner's object with refs (listing owner_obj twice), whose last reference the call
 * drops: the owner gets the bytes back, the caller releases the list. */
static uint64_t prep_owner_with_refs(struct mp_child *c)
{
    warm(c);
    shoal_ref two[2] = { owner_obj, owner_obj }, o;
    CHECK_OK(shoal_put_with_refs("listing", 7, two, 2, &o));
    CU_ASSERT_EQUAL(mp_call(c, MP_RETAIN, mp_ref_bits(o), 0, 0, 0).rc, 0);
    CHECK_OK(shoal_release(o));
    return mp_ref_bits(o);
}

/* After the death: the owner's object intact; the call's object has refs_after references
 * (the owner's one, or freed), or exactly one more - the reference the call was taking or
 * dropping, leaked (documented; we drop it) - never fewer; and once everything is given
 * back the store's figures are where they were. 0 fine, 1 one leaked reference, -1 wrong. */
static int check_after(const struct scen *sc, uint64_t ref)
{
    int leaked = 0;
    if (!owner_obj_ok()) {
        fprintf(stderr, "%s: the owner's object is gone or changed\n", sc->name);
        return -1;
    }
    if (ref && sc->inflight) {
        shoal_ref r = mp_bits_ref(ref);
        uint32_t n = refs_of(r);
        int rc = shoal_accept(r);
        if (n == sc->refs_after + 1 && rc == 0) {
            CHECK_OK(shoal_release(r));   /* in flight: taken and given back by us */
        } else if (n != sc->refs_after || rc == 0) {
            fprintf(stderr, "%s: the call's object has %u references (%u without the one in "
                    "flight), and accepting it answers %d\n", sc->name, n, sc->refs_after, rc);
            if (rc == 0)
                shoal_release(r);
            return -1;
        }
    } else if (ref) {
        shoal_ref r = mp_bits_ref(ref);
        uint32_t n = refs_of(r);
        if (n == sc->refs_after + 1) {
            leaked = 1;
            CHECK_OK(shoal_release(r));   /* the leaked reference, given back by us */
        } else if (n != sc->refs_after) {
            fprintf(stderr, "%s: the call's object has %u references, not %u\n", sc->name, n,
                    sc->refs_after);
            return -1;
        }
    }
    /* The owner's object holds its own reference only (a scenario that retained it or
     * listed it in an object: what the dead process held is dropped, and the objects whose
     * lists named it are freed), or one more - the one reference the call was taking or
     * dropping, leaked as above - once in all. */
    if (ref != mp_ref_bits(owner_obj)) {
        uint32_t n = refs_of(owner_obj);
        if (n == 2 && !leaked) {
            leaked = 1;
            CHECK_OK(shoal_release(owner_obj));
        } else if (n != 1) {
            fprintf(stderr, "%s: the owner's object has %u references, not 1%s\n", sc->name, n,
                    leaked ? " (the call's object leaked one already)" : "");
            return -1;
        }
    }
    if (!mp_settle(base.bytes_used, base.objects_live, sc->name))
        return -1;
    return leaked;
}

static void run_scenario(const struct scen *sc)
{
    /* How long the call is: once to the end. */
    struct mp_child c = mp_attached();
    uint64_t ref = sc->prep(&c);
    struct mp_rep rep;
    long n = traced_call(&c, sc->op, ref, sc->len, -1, &rep);
    if (n == -1) {
        mp_kill(&c);
        SKIP_TEST("ptrace is not allowed here");
    }
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(rep.rc, 0);
    /* The owner drops what the detached client still held once it sees it go, on its
     * publish thread: the checks below wait for that, as after each kill. */
    uint64_t gone = mp_deaths();
    CU_ASSERT_EQUAL(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CU_ASSERT_FATAL(mp_death_processed(gone));
    if (sc->check) {
        CU_ASSERT_FATAL(sc->check(sc, ref) >= 0);
    } else {
        if (sc->inflight && sc->op == OP_TRANSFER) {   /* what it sent: we take it back */
            CHECK_OK(shoal_accept(mp_bits_ref(ref)));
            CHECK_OK(shoal_release(mp_bits_ref(ref)));
        }
        CU_ASSERT_FATAL(mp_settle(base.bytes_used, base.objects_live, "a clean run"));
    }
    /* Every instruction, or an even sample from a random start: at most 200 kills (20
     * under sanitizers; SHOAL_TEST_CRASH_KILLS=N for more, e.g. every instruction). */
    const char *e = getenv("SHOAL_TEST_CRASH_KILLS");
    long max = e && atol(e) > 0 ? atol(e) : 200 / SAN_DIV, stride = n / max + 1;
    long first = (long)((uint64_t)getpid() * 2654435761u % (uint64_t)stride);
    int wrong = 0, leaks = 0, kills = 0;
    for (long k = first; k <= n && !wrong; k += stride) {
        c = mp_attached();
        ref = sc->prep(&c);
        uint64_t seen = mp_deaths();
        long got = traced_call(&c, sc->op, ref, sc->len, k, NULL);
        CU_ASSERT_EQUAL_FATAL(got, k);
        kills++;
        CU_ASSERT_FATAL(mp_death_processed(seen));
        int a = sc->check ? sc->check(sc, ref) : check_after(sc, ref);
        if (a < 0) {
            fprintf(stderr, "%s: killed after %ld of %ld instructions: the store lost or kept "
                    "something\n", sc->name, k, n);
            wrong++;
        }
        leaks += a == 1;
    }
    if (getenv("SHOAL_TEST_VERBOSE"))
        printf("\n  [%s: %ld instructions, %d kills (every %ld from %ld), %d left one "
               "reference]", sc->name, n, kills, stride, first, leaks);
    CU_ASSERT_EQUAL(wrong, 0);
}

static void setup_owner(void)
{
    mp_owner_start();
    void *b = malloc(5000);
    pat_fill(b, 5000, 50, 1);
    ASSERT_OK(shoal_put(b, 5000, &owner_obj));
    free(b);
    base = info_now();
}

static void teardown_owner(void)
{
    CU_ASSERT(owner_obj_ok());
    CHECK_OK(shoal_release(owner_obj));
    CHECK_OK(shoal_shutdown());
}

/* One scenario against a fresh owner, with a second client (helper) when helped. */
static void scenario(const struct scen *sc, bool helped)
{
    setup_owner();
    if (helped)
        helper = mp_attached();
    run_scenario(sc);
    if (helped) {
        CU_ASSERT_EQUAL(mp_call(&helper, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
        CU_ASSERT_EQUAL(mp_reap(&helper), 0);
    }
    teardown_owner();
}

static void test_killed_in_put(void)
{
    scenario(&(struct scen){ "put", OP_PUT, 3000, prep_plain, 0, false, NULL }, false);
}

static void test_killed_in_create_seal(void)
{
    scenario(&(struct scen){ "create+seal",
                                 OP_CREATE_SEAL, 3000, prep_plain, 0, false, NULL }, false);
}

static void test_killed_freeing_own_object(void)
{
    scenario(&(struct scen){ "release (free)", OP_RELEASE, 0, prep_own, 0, false, NULL }, false);
}

static void test_killed_releasing_owner_object(void)
{
    scenario(&(struct scen){ "release (owner's)",
                                 OP_RELEASE, 0, prep_owner_held, 1, false, NULL }, false);
}

static void test_killed_retaining_owner_object(void)
{
    scenario(&(struct scen){ "retain (owner's)",
                                 OP_RETAIN, 0, prep_owner_held, 1, false, NULL }, false);
}

static void test_killed_freeing_other_clients_object(void)
{
    scenario(&(struct scen){ "release (remote free)",
                                 OP_RELEASE, 0, prep_other_clients, 0, false, NULL }, true);
}

/* Objects that contain refs (issue 15.2) across processes: a client killed while it puts one
 * (between taking the listed objects' references and publishing the object, those
 * references are named by no ledger: the owner must drop them from the unpublished object's
 * list), while it frees its own (the rest of the list after its death), another client's
 * (the rest of the list, and the bytes back to that client's allocator with the trailer's)
 * or the owner's. At most the one reference being taken or dropped at the kill leaks. */
static void test_killed_putting_with_refs(void)
{
    scenario(&(struct scen){ "put_with_refs",
                                 OP_PUT_REFS, 3000, prep_put_refs, 1, false, NULL }, false);
}

static void test_killed_freeing_own_object_with_refs(void)
{
    scenario(&(struct scen){ "release (free, with refs)", OP_RELEASE, 0, prep_own_with_refs,
                                 0, false, NULL }, false);
}

static void test_killed_freeing_other_clients_object_with_refs(void)
{
    scenario(&(struct scen){ "release (remote free, with refs)", OP_RELEASE, 0,
                                 prep_other_clients_with_refs, 0, false, NULL }, true);
}

static void test_killed_freeing_owner_object_with_refs(void)
{
    scenario(&(struct scen){ "release (owner's, with refs)", OP_RELEASE, 0,
                                 prep_owner_with_refs, 0, false, NULL }, false);
}

/* ---- a client that dies while its owner is still starting ---------------------------------- */

#if defined(__x86_64__)
#include <sys/user.h>

/* Where this program's executable is mapped in process pid (its first mapping). */
static uintptr_t exe_base(pid_t pid)
{
    char path[64], self[4096], line[4600];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    FILE *f = fopen(path, "r");
    uintptr_t base = 0;
    if (k <= 0 || !f) {
        if (f)
            fclose(f);
        return 0;
    }
    self[k] = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo;
        char *name = strchr(line, '/');
        if (name && sscanf(line, "%lx-", &lo) == 1 && strncmp(name, self, (size_t)k) == 0 &&
            (name[k] == '\n' || name[k] == 0)) {
            base = (uintptr_t)lo;
            break;
        }
    }
    fclose(f);
    return base;
}

/* 11.7: the owner's service thread runs (and answers attaches) before shoal_init has made
 * the runtime global. A client that attaches in that window and dies with an unsealed
 * object: the owner fails the object through the runtime it was handed (on 8a82041 it
 * went through the global, still NULL, and the owner died). The owner is a child stopped
 * by a breakpoint at shoal__io_start, the step after the service thread starts. */
/* Breakpoints in a traced child that runs this program. bp_set: stop child pid (traced
 * with PTRACE_SEIZE, running), plant an int3 at this program's function fn at the same
 * offset in the child, and let it run on. */
struct bp { pid_t pid; uintptr_t at; long orig; };

static int bp_set(struct bp *b, pid_t pid, void *fn)
{
    int st;
    b->pid = pid;
    b->at = (uintptr_t)fn - exe_base(getpid()) + exe_base(pid);
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0 || waitpid(pid, &st, __WALL) != pid ||
        !WIFSTOPPED(st))
        return -1;
    errno = 0;
    b->orig = ptrace(PTRACE_PEEKTEXT, pid, (void *)b->at, 0);
    if (errno != 0 ||
        ptrace(PTRACE_POKETEXT, pid, (void *)b->at, (void *)((b->orig & ~0xffL) | 0xcc)) != 0)
        return -1;
    return ptrace(PTRACE_CONT, pid, 0, 0) == 0 ? 0 : -1;
}

/* Until the child stops at the breakpoint (other signals are passed on): 0, else -1. */
static int bp_reach(struct bp *b)
{
    int st;
    for (;;) {
        if (waitpid(b->pid, &st, __WALL) != b->pid || !WIFSTOPPED(st))
            return -1;
        if (WSTOPSIG(st) == SIGTRAP)
            break;
        if (ptrace(PTRACE_CONT, b->pid, 0, (void *)(intptr_t)WSTOPSIG(st)) != 0)
            return -1;
    }
    struct user_regs_struct regs;
    return ptrace(PTRACE_GETREGS, b->pid, 0, &regs) == 0 && regs.rip == b->at + 1 ? 0 : -1;
}

/* Take the breakpoint out, step back onto its instruction and let the child run untraced. */
static int bp_leave(struct bp *b)
{
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, b->pid, 0, &regs) != 0 ||
        ptrace(PTRACE_POKETEXT, b->pid, (void *)b->at, (void *)b->orig) != 0)
        return -1;
    regs.rip = b->at;
    return ptrace(PTRACE_SETREGS, b->pid, 0, &regs) == 0 &&
           ptrace(PTRACE_DETACH, b->pid, 0, 0) == 0 ? 0 : -1;
}

/* A spawned child, once it has answered (so it has run exec and its mappings, which
 * exe_base reads, are its own), traced: 0, or -1 when ptrace is not allowed here. */
static int seize(struct mp_child *c, int64_t info_rc)
{
    CU_ASSERT_EQUAL_FATAL(mp_call(c, MP_INFO, 0, 0, 0, 0).rc, info_rc);
    return ptrace(PTRACE_SEIZE, c->pid, 0, 0) == 0 ? 0 : -1;
}

static void test_client_dies_while_owner_starts(void)
{
    test_reset();
    mp_new_name();
    struct mp_child o = mp_spawn();
    CU_ASSERT_FATAL(o.pid > 0);
    if (seize(&o, SHOAL_ENOTINIT) != 0) {
        mp_kill(&o);
        SKIP_TEST("ptrace is not allowed here");
    }
    /* The breakpoint: shoal__io_start, the step after the service thread starts. */
    struct bp b;
    CU_ASSERT_FATAL(bp_set(&b, o.pid, (void *)&shoal__io_start) == 0);
    CU_ASSERT_FATAL(mp_send(&o, MP_INIT, 0, 0, 0, 0) == 0);
    /* Until the breakpoint: the store is published, its service thread runs. */
    CU_ASSERT_FATAL(bp_reach(&b) == 0);
    /* A client attaches, creates an object, and dies without sealing it. */
    struct mp_child c = mp_spawn();
    CU_ASSERT_FATAL(c.pid > 0);
    CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_ATTACH, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL_FATAL(mp_call(&c, MP_CREATE, 100, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_kill(&c), 128 + SIGKILL);
    /* Another client watches the owner take it back (or the owner die). */
    struct mp_child w = mp_spawn();
    CU_ASSERT_FATAL(w.pid > 0);
    CU_ASSERT_EQUAL(mp_call(&w, MP_ATTACH, 0, 0, 0, 0).rc, 0);
    struct mp_rep m = { .rc = -1 };
    int st;
    for (int k = 0; k < 20000; k++) {
        m = mp_call(&w, MP_INFO, 0, 0, 0, 0);
        if (m.rc != 0 || m.b == 0 || waitpid(o.pid, &st, WNOHANG | __WALL) == o.pid)
            break;
        usleep(1000);
    }
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_EQUAL(m.b, 0);   /* the unsealed object is failed and freed */
    CU_ASSERT_EQUAL(mp_call(&w, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&w), 0);
    if (kill(o.pid, 0) != 0 || m.rc != 0) {
        fprintf(stderr, "the owner died processing the client's death during its start\n");
        mp_kill(&o);
        return;
    }
    CU_ASSERT_FATAL(bp_leave(&b) == 0);   /* the owner finishes its start */
    struct mp_rep r;
    CU_ASSERT_EQUAL_FATAL(mp_recv(&o, &r), 0);
    CU_ASSERT_EQUAL(r.rc, 0);
    CU_ASSERT_EQUAL(mp_call(&o, MP_PUT, 100, 1, 1, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_call(&o, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&o), 0);
}

/* A detaching client is done with its allocator's bookkeeping, which lives in its chunks of
 * the store, before the owner can see it go: once it has, and none of the client's objects
 * is left, the owner hands those chunks to other processes. Stopped at the start of that
 * teardown, the client still counts as attached for the owner, however long it stays
 * stopped. (On 8a82041 the teardown ran after the connection closed; under load another
 * process was writing into the chunks meanwhile and the client crashed in jemalloc.) */
static void test_detach_done_with_chunks_before_going(void)
{
    mp_owner_start();
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, MP_PUT, 100, 1, 1, 0);   /* its allocator is in use */
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    if (seize(&c, 0) != 0) {
        mp_kill(&c);
        CHECK_OK(shoal_shutdown());
        SKIP_TEST("ptrace is not allowed here");
    }
    struct bp b;
    CU_ASSERT_FATAL(bp_set(&b, c.pid, (void *)&shoal__arenas_destroy) == 0);
    CU_ASSERT_FATAL(mp_send(&c, MP_SHUTDOWN, 0, 0, 0, 0) == 0);
    CU_ASSERT_FATAL(bp_reach(&b) == 0);
    struct shoal__mp *x = shoal__mp_of(shoal__rt);
    unsigned p = 0;
    for (unsigned i = 1; i < SHOAL__MAX_PROCS && !p; i++)
        if (atomic_load(&x->procs[i].pid) == (int32_t)c.pid)
            p = i;
    CU_ASSERT_FATAL(p != 0);
    /* The owner would have seen a closed connection within milliseconds. */
    int live = 1;
    for (int k = 0; k < 100 && live; k++) {
        live = atomic_load(&x->procs[p].state) == SHOAL__PROC_LIVE;
        usleep(5000);
    }
    CU_ASSERT(live);
    CU_ASSERT_FATAL(bp_leave(&b) == 0);
    struct mp_rep r;
    CU_ASSERT_EQUAL_FATAL(mp_recv(&c, &r), 0);
    CU_ASSERT_EQUAL(r.rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_shutdown());
}
#else
static void test_client_dies_while_owner_starts(void)
{
    SKIP_TEST("x86-64 only (a breakpoint)");
}
static void test_detach_done_with_chunks_before_going(void)
{
    SKIP_TEST("x86-64 only (a breakpoint)");
}
#endif

/* A process killed inside a chunk take (alloc/chunks.c's take_fresh) leaves what it took
 * named by its id: fresh chunks above the carve it claimed before moving the carve, free
 * chunks just below the carve it claimed to join to them. Forged here in the chunk map
 * with the id of a process that is not live: the next take carves over its claims above
 * the carve, and reclaiming its id gives its chunks below the carve back as free and its
 * claims above the carve back as never carved (0), not as free chunks no search looks for
 * and the recycled count would count twice. */
static void test_killed_taking_chunks(void)
{
    mp_owner_start();
    shoal__rt_t *rt = shoal__rt;
    struct shoal__mp *x = shoal__mp_of(rt);
    _Atomic uint32_t *map = shoal__chunkmap(rt);   /* node 0 first */
    unsigned shift = shoal__geo.shift;
    const uint64_t need = 8;
    uint32_t gone = shoal__chunk_id(SHOAL__MAX_PROCS - 1, 7);
    CU_ASSERT_FATAL(atomic_load(&x->procs[SHOAL__MAX_PROCS - 1].state) != SHOAL__PROC_LIVE);
    CU_ASSERT_FATAL(atomic_load(&x->recycled[0]) < need);   /* the take below carves */

    /* It died after claiming [c, c + need) and before moving the carve. */
    uint64_t c = (atomic_load(&rt->hdr->node[0].carve) + ((uint64_t)1 << shift) - 1) >> shift;
    CU_ASSERT_FATAL(c + 2 * need + 2 <= shoal__geo.nchunks);
    for (uint64_t k = c; k < c + need; k++)
        atomic_store(&map[k], gone);
    int64_t first = shoal__run_take(rt, 0, need);
    CU_ASSERT_EQUAL_FATAL(first, (int64_t)c);
    for (uint64_t k = c; k < c + need; k++)
        CU_ASSERT_EQUAL(atomic_load(&map[k]), shoal__chunk_me);
    CU_ASSERT(atomic_load(&rt->hdr->node[0].carve) >= (c + need) << shift);
    shoal__run_give(rt, 0, (uint64_t)first, need);

    /* It died after claiming two of those free chunks (below the carve) and two fresh ones
     * above it, before moving the carve. */
    uint64_t top = atomic_load(&rt->hdr->node[0].carve) >> shift;
    atomic_store(&map[c], gone);
    atomic_store(&map[c + 1], gone);
    atomic_store(&map[top], gone);
    atomic_store(&map[top + 1], gone);
    uint64_t r0 = atomic_load(&x->recycled[0]);
    CU_ASSERT_EQUAL(shoal__chunks_reclaim(rt, gone), 2);
    CU_ASSERT_EQUAL(atomic_load(&map[c]), SHOAL__CHUNK_FREE);
    CU_ASSERT_EQUAL(atomic_load(&map[c + 1]), SHOAL__CHUNK_FREE);
    CU_ASSERT_EQUAL(atomic_load(&map[top]), 0);
    CU_ASSERT_EQUAL(atomic_load(&map[top + 1]), 0);
    CU_ASSERT_EQUAL(atomic_load(&x->recycled[0]), r0 + 2);

    /* The whole run is one again: the free chunks below the carve join fresh ones. */
    first = shoal__run_take(rt, 0, need + 2);
    CU_ASSERT_EQUAL(first, (int64_t)c);
    if (first >= 0)
        shoal__run_give(rt, 0, (uint64_t)first, need + 2);
    CHECK_OK(shoal_shutdown());
}

/* shoal_transfer and shoal_accept leave nothing to chance: a death at any instruction
 * leaves the reference either in flight or with the dead process's (released). */
static void test_killed_transferring_own_object(void)
{
    scenario(&(struct scen){ "transfer own", OP_TRANSFER, 0, prep_own, 0, true, NULL }, false);
}

static void test_killed_transferring_owner_object(void)
{
    scenario(&(struct scen){ "transfer owner's",
                                 OP_TRANSFER, 0, prep_owner_held, 1, true, NULL }, false);
}

static void test_killed_accepting_owner_object(void)
{
    scenario(&(struct scen){ "accept owner's", OP_ACCEPT, 0, prep_owner_sent, 1, true, NULL },
             false);
}

static void test_killed_accepting_other_clients_object(void)
{
    scenario(&(struct scen){ "accept other client's",
                                 OP_ACCEPT, 0, prep_other_sent, 0, true, NULL }, true);
}

/* ---- refs in flight x objects that contain refs -------------------------------------------
 * A list's references are in no process's ledger (core/objrefs.h), and a dying process's
 * ledger is one too high while it moves a ref into or out of flight until its window
 * settles it: the owner must drop exactly what the ledger and its window say, never a
 * list's reference (layout/mpseg.h, "Windows"). Each case kills a client at every instruction of a call
 * while an object it holds is named by a list and (or) is in flight; afterwards every list
 * must still resolve to its object's bytes, the ref in flight must still be accepted, and
 * once the last holder goes everything is freed exactly once. */
static shoal_ref outer;        /* the owner's object listing `inner` once (0: none) */
static shoal_ref inner;        /* the object a list names and a ref in flight may hold */
static shoal_ref dead_outer;   /* the dead client's object listing inner twice (0: none) */
static shoal_ref helper_outer; /* the helper's object listing inner twice (0: none) */
static uint64_t inner_who;     /* inner's bytes: 3000 of pat_fill(who, 1), or owner_obj's */

static void lists_reset(void)
{
    outer = inner = dead_outer = helper_outer = SHOAL_REF_NULL;
}

static bool inner_ok(void)
{
    const void *d;
    size_t n;
    if (inner.id == owner_obj.id)
        return owner_obj_ok();
    return shoal_get(inner, &d, &n) == 0 && n == 3000 && pat_ok(d, n, inner_who, 1);
}

/* The common start: c warmed, and `inner` a new object of `by`'s (pattern who), or, with
 * by NULL, the ref prep returned (the owner's object). */
static uint64_t inner_prep(struct mp_child *c, struct mp_child *by, uint64_t who,
                           uint64_t (*prep)(struct mp_child *c))
{
    uint64_t r;
    if (prep) {
        r = prep(c);
    } else {
        warm(c);
        struct mp_rep m = mp_call(by, MP_PUT, 3000, who, 1, 0);
        CU_ASSERT_EQUAL(m.rc, 0);
        r = m.a;
    }
    lists_reset();
    inner = mp_bits_ref(r);
    inner_who = who;
    return r;
}

/* An object of the owner's listing inner once. */
static void owner_lists_inner(void)
{
    CHECK_OK(shoal_put_with_refs("outer", 5, &inner, 1, &outer));
}

/* An object of p's listing inner twice; its ref. */
static shoal_ref lists_inner_twice(struct mp_child *p)
{
    struct mp_rep o = mp_call(p, CR_PUT_REFS, mp_ref_bits(inner), 3000, 0, 0);
    CU_ASSERT_EQUAL(o.rc, 0);
    return mp_bits_ref(o.a);
}

/* Its own object I, listed by an object of the owner's (the call transfers I). */
static uint64_t prep_own_listed(struct mp_child *c)
{
    uint64_t r = inner_prep(c, c, 60, NULL);
    owner_lists_inner();
    return r;
}

/* Its own object I, listed twice by an object of another client's (the call transfers I). */
static uint64_t prep_own_listed_by_other(struct mp_child *c)
{
    uint64_t r = inner_prep(c, c, 64, NULL);
    helper_outer = lists_inner_twice(&helper);
    return r;
}

/* The owner's object, retained by the client and listed by another object of the owner's. */
static uint64_t prep_owner_held_listed(struct mp_child *c)
{
    uint64_t r = inner_prep(c, NULL, 0, prep_owner_held);
    owner_lists_inner();
    return r;
}

/* Another client's object in flight (its only reference besides the list; the call accepts). */
static uint64_t prep_other_sent_listed(struct mp_child *c)
{
    uint64_t r = inner_prep(c, &helper, 61, NULL);
    owner_lists_inner();
    CU_ASSERT_EQUAL(mp_call(&helper, CR_TRANSFER, r, 0, 0, 0).rc, 0);
    return r;
}

/* The owner's object, one reference of the owner's in flight, listed by another of its objects. */
static uint64_t prep_owner_sent_listed(struct mp_child *c)
{
    uint64_t r = inner_prep(c, NULL, 0, prep_owner_sent);
    owner_lists_inner();
    return r;
}

/* Its own object I, in flight with the client's ledger still counting it (a thread stopped
 * inside shoal_transfer); the call lists I in a new object of its own. */
static uint64_t prep_inflight_put_refs(struct mp_child *c)
{
    uint64_t r = inner_prep(c, c, 62, NULL);
    CU_ASSERT_EQUAL(mp_call(c, CR_XFER_STUCK, r, 0, 0, 0).rc, 0);
    return r;
}

/* As above, I listed twice by an object O of the client's, which the call releases. */
static uint64_t prep_inflight_release_outer(struct mp_child *c)
{
    uint64_t r = inner_prep(c, c, 63, NULL);
    dead_outer = lists_inner_twice(c);
    CU_ASSERT_EQUAL(mp_call(c, CR_XFER_STUCK, r, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(refs_of(inner), 3);
    return mp_ref_bits(dead_outer);
}

/* After the death (or the clean run): inner holds refs_after references besides one in
 * flight - the call's transfer or accept leaves it in flight or not, exactly one of the two;
 * the other calls find it in flight, and may leave the one reference they were taking or
 * dropping (documented; we drop it). The lists resolve to inner's bytes; once the owner lets
 * go of what it holds, inner is freed (or back to the owner's one reference) and the store's
 * figures are where they were. 0 fine, 1 one leaked reference, -1 wrong. */
static int check_listed(const struct scen *sc, uint64_t ref)
{
    (void)ref;
    bool moves = sc->op == OP_TRANSFER || sc->op == OP_ACCEPT;
    int leaked = 0;
    if (!owner_obj_ok()) {
        fprintf(stderr, "%s: the owner's object is gone or changed\n", sc->name);
        return -1;
    }
    uint32_t d = dead_outer.id ? refs_of(dead_outer) : 0;
    if (d > 1) {
        fprintf(stderr, "%s: the dead client's object has %u references\n", sc->name, d);
        return -1;
    }
    if (d == 1) {   /* the reference its release was dropping, leaked: its list goes now */
        leaked = 1;
        CHECK_OK(shoal_release(dead_outer));
    }
    uint32_t n = refs_of(inner);
    int rc = shoal_accept(inner);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "%s: a ref in flight names a freed object\n", sc->name);
        return -1;
    }
    if (rc != 0 && !moves) {
        fprintf(stderr, "%s: the ref in flight is lost (accept answers %d)\n", sc->name, rc);
        return -1;
    }
    uint32_t held = n - (rc == 0);
    if (held == sc->refs_after + 1 && !moves && !leaked) {
        leaked = 1;
        CHECK_OK(shoal_release(inner));   /* the reference a list was taking, leaked */
    } else if (held != sc->refs_after) {
        fprintf(stderr, "%s: the listed object has %u references besides %d in flight, not "
                "%u\n", sc->name, held, rc == 0, sc->refs_after);
        if (rc == 0)
            shoal_release(inner);
        return -1;
    }
    int bad = rc == 0 && !inner_ok();
    if (outer.id) {
        shoal_ref got[4];
        size_t k = 0;
        int orc = shoal_object_refs(outer, got, 4, &k);
        bad |= orc != 0 || k != 1 || got[0].id != inner.id || !inner_ok();
    }
    if (helper_outer.id) {
        shoal_ref got[4];
        size_t k = 0;
        int orc = shoal_object_refs(helper_outer, got, 4, &k);
        bad |= orc != 0 || k != 2 || got[0].id != inner.id || got[1].id != inner.id ||
               !inner_ok();
    }
    if (bad)
        fprintf(stderr, "%s: a list's object (or the one in flight) no longer has its bytes "
                "(get answers %d)\n", sc->name, shoal_get(inner, &(const void *){ 0 },
                                                          &(size_t){ 0 }));
    if (rc == 0)
        CHECK_OK(shoal_release(inner));
    if (outer.id)
        CHECK_OK(shoal_release(outer));
    outer = SHOAL_REF_NULL;
    if (helper_outer.id)
        CU_ASSERT_EQUAL(mp_call(&helper, MP_RELEASE, mp_ref_bits(helper_outer), 0, 0, 0).rc, 0);
    helper_outer = SHOAL_REF_NULL;
    uint32_t left = refs_of(inner), want = inner.id == owner_obj.id;
    if (bad || left != want) {
        if (left != want)
            fprintf(stderr, "%s: once the lists are gone, the listed object has %u references, "
                    "not %u\n", sc->name, left, want);
        return -1;
    }
    if (!mp_settle(base.bytes_used, base.objects_live, sc->name))
        return -1;
    return leaked;
}

/* A put_with_refs given a ref naming a listed object's slot at a later generation (forged,
 * or from another store) fails, and must leave that object's count of list holds as it was:
 * it used to reset the entry to the later generation, so the owner no longer counted the
 * list's reference when a client died in a transfer of the object. */
static void test_failed_list_take_keeps_list_holds(void)
{
    setup_owner();
    shoal_ref x, y, z = SHOAL_REF_NULL;
    CHECK_OK(shoal_put("x", 1, &x));
    CHECK_OK(shoal_put_with_refs("y", 1, &x, 1, &y));
    uint64_t idx = shoal__id_idx(x.id), gen = shoal__id_gen(x.id);
    CU_ASSERT_EQUAL(shoal__gcount_of(atomic_load(shoal__lists_of(idx)), gen), 1);
    shoal_ref later = { shoal__id_make(idx, shoal__gen_next(gen)) };
    CU_ASSERT(shoal_put_with_refs("z", 1, &later, 1, &z) < 0);
    CU_ASSERT_EQUAL(shoal__gcount_of(atomic_load(shoal__lists_of(idx)), gen), 1);
    shoal_release(y);
    CU_ASSERT_EQUAL(shoal__gcount_of(atomic_load(shoal__lists_of(idx)), gen), 0);
    shoal_release(x);
    CU_ASSERT(mp_settle(base.bytes_used, base.objects_live, "a failed list take"));
    teardown_owner();
}

static void test_killed_transferring_listed_own_object(void)
{
    scenario(&(struct scen){ "transfer own, listed", OP_TRANSFER, 0, prep_own_listed, 1, true,
                             check_listed }, false);
}

static void test_killed_transferring_own_object_listed_by_other(void)
{
    scenario(&(struct scen){ "transfer own, listed by another client", OP_TRANSFER, 0,
                             prep_own_listed_by_other, 2, true, check_listed }, true);
}

static void test_killed_transferring_listed_owner_object(void)
{
    scenario(&(struct scen){ "transfer owner's, listed", OP_TRANSFER, 0, prep_owner_held_listed,
                             2, true, check_listed }, false);
}

static void test_killed_accepting_listed_other_clients_object(void)
{
    scenario(&(struct scen){ "accept other client's, listed", OP_ACCEPT, 0,
                             prep_other_sent_listed, 1, true, check_listed }, true);
}

static void test_killed_accepting_listed_owner_object(void)
{
    scenario(&(struct scen){ "accept owner's, listed", OP_ACCEPT, 0, prep_owner_sent_listed, 2,
                             true, check_listed }, false);
}

static void test_killed_putting_with_refs_in_flight(void)
{
    scenario(&(struct scen){ "put_with_refs, listed ref in flight", OP_PUT_REFS, 3000,
                             prep_inflight_put_refs, 0, true, check_listed }, false);
}

static void test_killed_releasing_outer_with_ref_in_flight(void)
{
    scenario(&(struct scen){ "release outer, listed ref in flight", OP_RELEASE, 0,
                             prep_inflight_release_outer, 0, true, check_listed }, false);
}

/* A client's drain thread takes each entry off its remote-free stack before it claims it
 * (mproc/remote_free.c). Killed in between - forged here as the drainer leaves it: the
 * client is stopped, the owner frees the client's object (a push onto the client's stack),
 * and the entry is taken off and named in the client's `draining` - the owner must claim
 * that entry itself: its releaser (the owner) lives, so nobody else would, and the dead
 * client's object would count for ever and its chunks never come back. */
static void test_killed_draining_its_stack(void)
{
    setup_owner();
    shoal__rt_t *rt = shoal__rt;
    struct mp_child c = mp_attached();
    warm(&c);
    struct mp_rep m = mp_call(&c, MP_PUT, 3000, 56, 1, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref r = mp_bits_ref(m.a);
    CHECK_OK(shoal_retain(r));
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    uint32_t idx = (uint32_t)shoal__id_idx(r.id);
    unsigned p = SHOAL__AUX_PROC(__atomic_load_n(&rt->slots[idx].aux, __ATOMIC_RELAXED));
    CU_ASSERT_FATAL(p != 0);
    struct shoal__proc *P = &shoal__mp_of(rt)->procs[p];
    int st = 0;
    CU_ASSERT_FATAL(kill(c.pid, SIGSTOP) == 0 && waitpid(c.pid, &st, WUNTRACED) == c.pid &&
                    WIFSTOPPED(st));
    CHECK_OK(shoal_release(r));   /* the last reference: onto the stopped client's stack */
    CU_ASSERT_EQUAL_FATAL(atomic_load(&P->rfree), idx);
    uint64_t w = atomic_load(&rt->slots[idx].word);
    CU_ASSERT_FATAL(shoal__w_freeing(w));
    atomic_store(&P->draining, shoal__id_make(idx, shoal__w_gen(w)));
    atomic_store(&P->rfree, atomic_load(&rt->slots[idx].next));
    uint64_t seen = mp_deaths();
    mp_kill(&c);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    CU_ASSERT(mp_settle(base.bytes_used, base.objects_live, "a drainer killed holding an entry"));
    for (int k = 0; k < 20000 && atomic_load(&P->state) != SHOAL__PROC_FREE; k++)
        usleep(1000);
    CU_ASSERT_EQUAL(atomic_load(&P->state), SHOAL__PROC_FREE);   /* its chunks went back */
    teardown_owner();
}

/* A slot our main thread read freeing a client's object (its list of refs, then a remote
 * free onto the client's stack), which that client's drainer took back and gave to the
 * shared chain, is cached by another client, recovered from its cache by the publish
 * thread when it is killed, and flushed to the chain again (its `off` rewritten). The two
 * accesses are ordered through the two clients (a drain, a chain push and pop, a death),
 * which ThreadSanitizer cannot see: without the handover annotations (os/compiler.h) a TSan
 * build reported a race on the slot's `off` here (issue: test_mp_crash under TSan). */
static void test_owner_freed_slot_recovered_from_killed_client(void)
{
    setup_owner();
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, CR_PUT_REFS, mp_ref_bits(owner_obj), 3000, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref x = mp_bits_ref(m.a);
    CHECK_OK(shoal_retain(x));
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    CHECK_OK(shoal_release(x));   /* the last: its list released here, its bytes to c */
    CU_ASSERT_EQUAL(refs_of(owner_obj), 1);
    /* c's drainer takes the entry back (the bytes and the slot, into its cache). */
    CU_ASSERT_FATAL(mp_settle(base.bytes_used, base.objects_live, "a remote free drained"));
    /* Another client takes the shared chain into its cache, and is killed. */
    struct mp_child d = mp_attached();
    warm(&d);
    uint64_t seen = mp_deaths();
    mp_kill(&d);
    CU_ASSERT_FATAL(mp_death_processed(seen));
    CU_ASSERT(mp_settle(base.bytes_used, base.objects_live, "its cache recovered"));
    CU_ASSERT_EQUAL(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    teardown_owner();
}

/* The same slot, our main thread's write of it (freeing a client's object with refs, then a
 * remote free onto that client's stack), taken back by the client's drainer into its cache
 * and pushed onto the shared chain by its detach, then popped off the chain by another
 * thread of ours (its puts). Ordered through the client (a drain, a flush, a chain push),
 * which ThreadSanitizer cannot see, and not through anything of ours: the popper waits on a
 * relaxed flag, and did its first put (its caches) before the free. A chain's pop is a
 * handover's take as the other takers are (os/compiler.h). */
static _Atomic int chain_go;   /* relaxed: no happens-before edge from the main thread */
enum { POP_PUTS = 400 };

static void *chain_popper(void *p)
{
    shoal_ref *refs = p;
    char b[64] = { 0 };
    shoal_ref r;
    if (shoal_put(b, sizeof b, &r) != 0 || shoal_release(r) != 0)
        return NULL;
    atomic_store_explicit(&chain_go, 1, memory_order_relaxed);   /* ready */
    while (atomic_load_explicit(&chain_go, memory_order_relaxed) != 2)
        usleep(1000);
    for (int i = 0; i < POP_PUTS; i++)
        if (shoal_put(b, sizeof b, &refs[i]) != 0)
            refs[i] = (shoal_ref){ 0 };
    return NULL;
}

static void test_owner_freed_slot_popped_off_the_chain(void)
{
    setup_owner();
    static shoal_ref refs[POP_PUTS];
    memset(refs, 0, sizeof refs);
    atomic_store_explicit(&chain_go, 0, memory_order_relaxed);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, chain_popper, refs) == 0);
    for (int i = 0; i < 20000 && atomic_load_explicit(&chain_go, memory_order_relaxed) != 1; i++)
        usleep(1000);
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call(&c, CR_PUT_REFS, mp_ref_bits(owner_obj), 3000, 0, 0);
    CU_ASSERT_FATAL(m.rc == 0);
    shoal_ref x = mp_bits_ref(m.a);
    CHECK_OK(shoal_retain(x));
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, m.a, 0, 0, 0).rc, 0);
    CHECK_OK(shoal_release(x));   /* the last: its list released here, its slot to c */
    CU_ASSERT_FATAL(mp_settle(base.bytes_used, base.objects_live, "a remote free drained"));
    CU_ASSERT_EQUAL(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);   /* its caches: the chain */
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    atomic_store_explicit(&chain_go, 2, memory_order_relaxed);
    pthread_join(th, NULL);
    for (int i = 0; i < POP_PUTS; i++)
        if (refs[i].id)
            CHECK_OK(shoal_release(refs[i]));
    teardown_owner();
}

static const shoal_test_case cases[] = {
    { "killed_in_put", test_killed_in_put },
    { "killed_in_create_seal", test_killed_in_create_seal },
    { "killed_freeing_own_object", test_killed_freeing_own_object },
    { "killed_releasing_owner_object", test_killed_releasing_owner_object },
    { "killed_retaining_owner_object", test_killed_retaining_owner_object },
    { "killed_freeing_other_clients_object", test_killed_freeing_other_clients_object },
    { "client_dies_while_owner_starts", test_client_dies_while_owner_starts },
    { "detach_done_with_chunks_before_going", test_detach_done_with_chunks_before_going },
    { "killed_taking_chunks", test_killed_taking_chunks },
    { "killed_transferring_own_object", test_killed_transferring_own_object },
    { "killed_transferring_owner_object", test_killed_transferring_owner_object },
    { "killed_accepting_owner_object", test_killed_accepting_owner_object },
    { "killed_accepting_other_clients_object", test_killed_accepting_other_clients_object },
    { "killed_draining_its_stack", test_killed_draining_its_stack },
    { "killed_putting_with_refs", test_killed_putting_with_refs },
    { "killed_freeing_own_object_with_refs", test_killed_freeing_own_object_with_refs },
    { "killed_freeing_other_clients_object_with_refs",
      test_killed_freeing_other_clients_object_with_refs },
    { "killed_freeing_owner_object_with_refs", test_killed_freeing_owner_object_with_refs },
    { "failed_list_take_keeps_list_holds", test_failed_list_take_keeps_list_holds },
    { "killed_transferring_listed_own_object", test_killed_transferring_listed_own_object },
    { "killed_transferring_listed_owner_object", test_killed_transferring_listed_owner_object },
    { "killed_transferring_own_object_listed_by_other",
      test_killed_transferring_own_object_listed_by_other },
    { "killed_accepting_listed_other_clients_object",
      test_killed_accepting_listed_other_clients_object },
    { "killed_accepting_listed_owner_object", test_killed_accepting_listed_owner_object },
    { "killed_putting_with_refs_in_flight", test_killed_putting_with_refs_in_flight },
    { "killed_releasing_outer_with_ref_in_flight", test_killed_releasing_outer_with_ref_in_flight },
    { "owner_freed_slot_recovered_from_killed_client",
      test_owner_freed_slot_recovered_from_killed_client },
    { "owner_freed_slot_popped_off_the_chain", test_owner_freed_slot_popped_off_the_chain },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    mp_child_hook = crash_child;
    if (mp_is_child(argc, argv))
        return mp_child_main(argv);
    return mp_run("mp_crash", cases);
}
