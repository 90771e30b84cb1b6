/* test_fork.c - a child of fork() never allocates from, frees into or submits to its
 * parent's store, private or published: every call in it answers SHOAL_ENOTINIT saying it
 * is a fork() child; the parent's objects are untouched after the child tried to release
 * an inherited ref; the child may read bytes its parent obtained before fork(), and can
 * start a store of its own. Also a fork from inside a task (what system() does).
 * Children run under alarm() and the parent reaps them with a deadline.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../mproc/mproc.h"
#include "../sched/timeline.h"
#include "lib/check.h"
#include "lib/tasks.h"

/* Under TSan: TSan cannot start threads in a child forked from a threaded process, so the
 * child checks everything but starting a store of its own. */
#if defined(__SANITIZE_THREAD__)
#define CHILD_MAY_INIT 0
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "detect_deadlocks=0"; }
#else
#define CHILD_MAY_INIT 1
#endif

/* Reap pid within `seconds` (killing it after): its exit code, or 128 + signal, or -1. */
static int reap(pid_t pid, int seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nap_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int t_nop(shoal_task *t)
{
    (void)t;
    return 0;
}

/* In the child: one code per check, so the parent can say which failed. */
static int child_checks(shoal_ref inherited, const void *bytes, size_t len, int may_init)
{
    shoal_test_child_limits(60);
    const void *d;
    size_t n;
    shoal_ref r;
    bool ready;
    shoal_info info;
    if (memcmp(bytes, "parent's", 8) != 0 || len != 9)   /* readable, as it was */
        return 10;
    /* The first call: a get of a ready object whose slot the child still maps, through
     * the view this thread filled before fork(): the inline fast path must miss. */
    if (shoal_get(inherited, &d, &n) != SHOAL_ENOTINIT)
        return 13;
    if (!strstr(shoal_last_error(), "fork()"))
        return 26;
    if (shoal_put("child", 6, &r) != SHOAL_ENOTINIT)
        return 11;
    if (!strstr(shoal_last_error(), "fork()"))
        return 12;
    if (shoal_release(inherited) != SHOAL_ENOTINIT)
        return 14;
    if (shoal_retain(inherited) != SHOAL_ENOTINIT)
        return 15;
    if (shoal_submit(t_nop, NULL, 0, NULL, &r) != SHOAL_ENOTINIT)
        return 16;
    if (shoal_wait(&inherited, 1, 1, 0, &ready) != SHOAL_ENOTINIT)
        return 17;
    void *buf;
    if (shoal_create(8, &buf, &r) != SHOAL_ENOTINIT)
        return 18;
    if (shoal_info_get(&info) != SHOAL_ENOTINIT)
        return 19;
    if (shoal_shutdown() != SHOAL_ENOTINIT)
        return 20;
    if (!may_init)
        return 0;
    /* A store of its own. */
    shoal_config c = shoal_test_config();
    if (shoal_init(&c) != 0)
        return 21;
    if (shoal_put("child", 6, &r) != 0 || shoal_get(r, &d, &n) != 0 || n != 6 ||
        memcmp(d, "child", 6) != 0)
        return 22;
    shoal_ref t;
    if (shoal_submit(t_nop, NULL, 0, NULL, &t) != 0 ||
        shoal_get_timeout(t, (int64_t)20 * 1000000000, &d, &n) != 0)
        return 23;
    if (shoal_release(r) != 0 || shoal_release(t) != 0)
        return 24;
    if (shoal_shutdown() != 0)
        return 25;
    return 0;
}

static void fork_case(const char *name)
{
    test_reset();
    shoal_config c = shoal_test_config();
    char nm[64];
    if (name) {
        snprintf(nm, sizeof nm, "%s-%d", name, (int)getpid());
        c.name = nm;
    }
    ASSERT_OK(shoal_init(&c));
    shoal_ref a;
    ASSERT_OK(shoal_put("parent's", 9, &a));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(a, &d, &n));
    shoal_info i0 = info_now();
    for (int k = 0; k < 3; k++) {
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0)
            _exit(child_checks(a, d, n, CHILD_MAY_INIT && k == 0));
        int rc = reap(pid, 90);
        if (rc != 0)
            fprintf(stderr, "%s store: child %d failed check %d\n", name ? "published" : "private",
                    k, rc);
        CU_ASSERT_EQUAL(rc, 0);
    }
    /* The parent's object is as it was: one reference, its bytes, the same counts. */
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    ASSERT_OK(shoal_get(a, &d, &n));
    CU_ASSERT(n == 9 && memcmp(d, "parent's", 9) == 0);
    shoal_ref b;   /* and the store goes on: a new object is not the child's */
    ASSERT_OK(shoal_put("after", 6, &b));
    CU_ASSERT(b.id != a.id);
    CHECK_OK(shoal_release(b));
    CHECK_OK(shoal_release(a));
    CU_ASSERT_EQUAL(shoal_release(a), SHOAL_ESTALE);   /* exactly one reference was left */
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_fork_private(void) { fork_case(NULL); }
static void test_fork_published(void) { fork_case("trust1-fork"); }

/* fork inside a task, as system() or popen() would: the child is no worker and has no
 * runtime; the parent's task and runtime go on. */
static int t_forks(shoal_task *t)
{
    shoal_ref a;
    if (shoal_task_arg_ref(t, 0, &a))
        return 1;
    const void *d;
    size_t n;
    if (shoal_get(a, &d, &n))
        return 2;
    pid_t pid = fork();
    if (pid < 0)
        return 3;
    if (pid == 0)
        _exit(child_checks(a, d, n, CHILD_MAY_INIT));
    int rc = reap(pid, 90);
    return shoal_task_return(t, &rc, sizeof rc) ? 4 : 0;
}

static void test_fork_in_task(void)
{
    start_workers(2, 0);
    shoal_ref a, r;
    ASSERT_OK(shoal_put("parent's", 9, &a));
    shoal_arg arg = SHOAL_REF_PASS(a);
    ASSERT_OK(shoal_submit(t_forks, &arg, 1, NULL, &r));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get_timeout(r, (int64_t)120 * 1000000000, &d, &n));
    int child_rc = -1;
    if (n == sizeof child_rc)
        memcpy(&child_rc, d, n);
    if (child_rc != 0)
        fprintf(stderr, "child of a task failed check %d\n", child_rc);
    CU_ASSERT_EQUAL(child_rc, 0);
    ASSERT_OK(shoal_get(a, &d, &n));
    CU_ASSERT(n == 9 && memcmp(d, "parent's", 9) == 0);
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_release(a));
    ASSERT_OK(shoal_shutdown());
}

/* An owner with a task waiting on another process's object (a foreign dependent, listed in
 * mproc/foreign_deps.c) forks; the child starts a published store of its own. Its drain
 * thread must not fire the parent's listed dependent: that names a task block of the
 * parent's scheduler, which the child unmapped (sched/pool.c), and an object of the
 * parent's store. Before, the child's first scan fired it and died of SIGSEGV (or, with
 * its own task chunk mapped there, corrupted that). */
static int child_creates(const char *nm, int idfd, int gofd)
{
    shoal_test_child_limits(60);
    if (shoal_attach(nm) != 0)
        return 30;
    void *buf;
    shoal_ref x;
    if (shoal_create(64, &buf, &x) != 0)
        return 31;
    if (write(idfd, &x.id, sizeof x.id) != (ssize_t)sizeof x.id)
        return 32;
    char go;
    if (read(gofd, &go, 1) != 1)
        return 33;
    memset(buf, 7, 64);
    if (shoal_seal(x) != 0 || shoal_release(x) != 0)
        return 34;
    return shoal_shutdown() != 0 ? 35 : 0;
}

static int child_own_published(const char *nm)
{
    shoal_test_child_limits(60);
    shoal_config c = shoal_test_config();
    c.name = nm;
    if (shoal_init(&c) != 0)
        return 40;
    nap_ms(300);   /* the drain thread scans at once, then naps: a few turns */
    shoal_ref r;
    const void *d;
    size_t n;
    if (shoal_put("child", 6, &r) != 0 || shoal_get(r, &d, &n) != 0 || shoal_release(r) != 0)
        return 41;
    return shoal_shutdown() != 0 ? 42 : 0;
}

static void test_fork_with_foreign_dependent(void)
{
    if (!CHILD_MAY_INIT)
        return;
    test_reset();
    shoal_config c = shoal_test_config();
    char nm[64], nm2[64];
    snprintf(nm, sizeof nm, "trust1-fdep-%d", (int)getpid());
    snprintf(nm2, sizeof nm2, "trust1-fdep2-%d", (int)getpid());
    c.name = nm;
    ASSERT_OK(shoal_init(&c));
    int idp[2], gop[2];
    CU_ASSERT_FATAL(pipe(idp) == 0 && pipe(gop) == 0);
    pid_t creator = fork();
    CU_ASSERT_FATAL(creator >= 0);
    if (creator == 0)
        _exit(child_creates(nm, idp[1], gop[0]));
    shoal_ref x;
    CU_ASSERT_FATAL(read(idp[0], &x.id, sizeof x.id) == (ssize_t)sizeof x.id);
    /* A task on the creator's pending object: its dependent waits in the foreign list. */
    shoal_arg arg = SHOAL_REF(x);
    shoal_ref r;
    ASSERT_OK(shoal_submit(t_nop, &arg, 1, NULL, &r));
    const void *d;
    size_t n;
    CHECK_RC(shoal_get_timeout(r, 20000000, &d, &n), SHOAL_ETIMEDOUT);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(child_own_published(nm2));
    int rc = reap(pid, 90);
    if (rc != 0)
        fprintf(stderr, "child with a store of its own: %s %d\n", rc > 128 ? "signal" : "check",
                rc > 128 ? rc - 128 : rc);
    CU_ASSERT_EQUAL(rc, 0);
    /* The parent's task still runs once its argument is sealed. */
    CU_ASSERT(write(gop[1], "g", 1) == 1);
    CHECK_OK(shoal_get_timeout(r, (int64_t)20 * 1000000000, &d, &n));
    CU_ASSERT_EQUAL(reap(creator, 60), 0);
    CHECK_OK(shoal_release(r));
    close(idp[0]);
    close(idp[1]);
    close(gop[0]);
    close(gop[1]);
    ASSERT_OK(shoal_shutdown());
}

/* An owner forks while its drain thread holds its private procs lock (it takes it at every
 * turn; the test holds it itself at fork() to make that moment certain). The child's own
 * store drains under that lock too. Before, it stayed locked in the child: the ref it put
 * in flight never expired and its shutdown waited for ever on its drain thread. (The
 * transfer lock this test also held when it was written is gone with the cap race fix.) */
static int child_locks(const char *nm)
{
    shoal_test_child_limits(60);
    shoal_config c = shoal_test_config();
    c.name = nm;
    if (shoal_init(&c) != 0)
        return 50;
    shoal_ref r;
    if (shoal_put("in flight", 10, &r) != 0 || shoal_transfer(r, 1000000) != 0)
        return 51;
    int rc = 0;
    for (int i = 0; i < 500 && (rc = shoal_accept(r)) == 0; i++) {
        /* accepted before its deadline passed: put it back in flight, look again */
        if (shoal_transfer(r, 1000000) != 0)
            return 52;
        nap_ms(10);
    }
    if (rc != SHOAL_ETIMEDOUT && rc != SHOAL_ESTALE)
        return 53;   /* never expired in 5 s */
    return shoal_shutdown() != 0 ? 54 : 0;
}

/* Reap pid within 30 s: it must exit 0 (else say how it ended, as `what`). */
static void expect_child_ok(pid_t pid, const char *what)
{
    int rc = reap(pid, 30);
    if (rc != 0)
        fprintf(stderr, "%s: %s %d\n", what, rc < 0 ? "hung" : rc > 128 ? "signal" : "check",
                rc > 128 ? rc - 128 : rc);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_fork_with_locks_held(void)
{
    if (!CHILD_MAY_INIT)
        return;
    test_reset();
    shoal_config c = shoal_test_config();
    char nm[64], nm2[64];
    snprintf(nm, sizeof nm, "trust1-flock-%d", (int)getpid());
    snprintf(nm2, sizeof nm2, "trust1-flock2-%d", (int)getpid());
    c.name = nm;
    ASSERT_OK(shoal_init(&c));
    shoal__procs_lock();
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_locks(nm2));
    shoal__procs_unlock();
    CU_ASSERT_FATAL(pid > 0);
    expect_child_ok(pid, "child with a store of its own");
    ASSERT_OK(shoal_shutdown());
}

/* A process recording a timeline (SHOAL_TIMELINE) forks while another thread holds the
 * timeline's lock (writing the trace, recording a cancelled task; the test holds it itself
 * at fork() to make that moment certain). The child's exit takes that lock (the atexit
 * writer), and so does its own shoal_init when it records a timeline too: before, the lock
 * stayed held in the child and both waited for ever. */
#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer at the child's exit() would report the parent's abandoned runtime (the
 * child's copies, never freed by design): off in that child only. */
static volatile int lsan_off;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return lsan_off; }
#define CHILD_NO_LEAK_CHECK() (lsan_off = 1)
#else
#define CHILD_NO_LEAK_CHECK() ((void)0)
#endif

static int child_timeline(const char *file)
{
    shoal_test_child_limits(60);
    CHILD_NO_LEAK_CHECK();
    if (CHILD_MAY_INIT) {
        start_workers(2, 0);
        shoal_ref r;
        if (shoal_submit(t_nop, NULL, 0, NULL, &r) != 0)
            return 70;
        const void *d;
        size_t n;
        if (shoal_get_timeout(r, 30ll * 1000000000, &d, &n) != 0 || shoal_release(r) != 0)
            return 71;
        if (shoal_timeline_write(file) != 0)
            return 72;
        if (shoal_shutdown() != 0)
            return 73;
        if (access(file, F_OK) != 0)
            return 74;
    }
    exit(0);   /* not _exit: the atexit writer runs (and writes nothing: not its trace) */
}

static void test_fork_with_timeline_lock_held(void)
{
    char dir[] = "/tmp/shoal-fork-tl-XXXXXX", path[96], file[96];
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/trace-%%p.json", dir);
    snprintf(file, sizeof file, "%s/child.json", dir);
    setenv("SHOAL_TIMELINE", path, 1);
    start_workers(2, 0);
    shoal__tl_lock();
    pid_t pid = fork();
    if (pid == 0)
        child_timeline(file);
    shoal__tl_unlock();
    CU_ASSERT_FATAL(pid > 0);
    expect_child_ok(pid, "child of a process recording a timeline");
    ASSERT_OK(shoal_shutdown());
    unsetenv("SHOAL_TIMELINE");
    CU_ASSERT_EQUAL(test_remove_dir(dir), 0);
}

/* A published owner forks while another of its threads is inside a shoal_transfer, its
 * transfer window open (held there by the window hook to make that moment certain). The
 * window's holder is not in the child: the child must not keep the mark naming it, or a
 * thread the child starts, given that thread's identity back (its stack reused), would take
 * itself for the holder of a window another thread opens (a false SHOAL_EDEADLK). Before,
 * the child kept the parent thread's mark. */
static shoal_ref wh_x;
static _Atomic int wh_in, wh_go, wh_rc = 1;
static _Atomic uintptr_t wh_holder;
static bool wh_hold(void)
{
    shoal__xfer_window_hook = NULL;   /* once */
    atomic_store(&wh_holder, (uintptr_t)pthread_self());
    atomic_store(&wh_in, 1);
    for (int k = 0; k < 20000 && !atomic_load(&wh_go); k++)
        nap_ms(1);
    return false;                     /* and the move goes on */
}
static void *wh_transfer(void *arg)
{
    (void)arg;
    atomic_store(&wh_rc, shoal_transfer(wh_x, 60ll * 1000000000));
    return NULL;
}

/* In the child: 0 when no window is marked as held by the parent's thread (80 + k if k is). */
static int child_windows(uintptr_t holder)
{
    shoal_test_child_limits(60);
    CHILD_NO_LEAK_CHECK();
    for (unsigned k = 0; k < SHOAL__NWINS; k++)
        if (shoal__xfer_window_holder(k) == holder)
            return 80 + (int)(k % 40);
    return 0;
}

static void test_fork_with_window_held(void)
{
    test_reset();
    shoal_config c = shoal_test_config();
    char nm[64];
    snprintf(nm, sizeof nm, "trust9-fwin-%d", (int)getpid());
    c.name = nm;
    ASSERT_OK(shoal_init(&c));
    ASSERT_OK(shoal_put("held", 5, &wh_x));
    atomic_store(&wh_in, 0);
    atomic_store(&wh_go, 0);
    shoal__xfer_window_hook = wh_hold;
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, wh_transfer, NULL) == 0);
    for (int k = 0; k < 20000 && !atomic_load(&wh_in); k++)
        nap_ms(1);
    CU_ASSERT(atomic_load(&wh_in));
    uintptr_t holder = atomic_load(&wh_holder);
    bool marked = false;   /* the parent's mark is there to be inherited */
    for (unsigned k = 0; k < SHOAL__NWINS; k++)
        marked |= holder && shoal__xfer_window_holder(k) == holder;
    CU_ASSERT(marked);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_windows(holder));
    atomic_store(&wh_go, 1);
    pthread_join(th, NULL);
    shoal__xfer_window_hook = NULL;
    CU_ASSERT_FATAL(pid > 0);
    expect_child_ok(pid, "child forked while a thread held a transfer window");
    CU_ASSERT_EQUAL(atomic_load(&wh_rc), 0);
    if (atomic_load(&wh_rc) == 0)
        CHECK_OK(shoal_accept(wh_x));
    CHECK_OK(shoal_release(wh_x));
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "fork child of a private store: errors, then its own", test_fork_private },
        { "fork child of a published store: errors, then its own", test_fork_published },
        { "fork inside a task", test_fork_in_task },
        { "fork child of an owner with a foreign dependent: its own published store",
          test_fork_with_foreign_dependent },
        { "fork while the owner's service locks are held: the child's own store works",
          test_fork_with_locks_held },
        { "fork while the timeline's lock is held: the child exits, records its own",
          test_fork_with_timeline_lock_held },
        { "fork while another thread holds a transfer window: the child forgets the mark",
          test_fork_with_window_held },
        { NULL, NULL },
    };
    return shoal_test_run("fork", cases);
}
