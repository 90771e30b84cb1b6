/* test_mp_attach.c - attaching is never locked out and a refusal says why (issue 11): many
 * idle connections do not keep a real client out, nor spin an owner out of descriptors (whose
 * refusal, with nothing to give way, says why); a full process table answers SHOAL_EBUSY
 * with the limit; another user answers SHOAL_EPERM, never SHOAL_EIO "Broken pipe", from
 * either side; a store is shared by one user's processes only (root included); a client's
 * shoal_submit says that it runs no workers; the owner takes a client's pid from the
 * kernel, not from its HELLO; and a client refuses a segment of another layout version,
 * naming both versions.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../layout/mpseg.h"
#include "../mproc/proto.h"
#include "lib/mp.h"

/* ---- checks that say what they saw ------------------------------------------------------ */

/* A CI log may keep only the end of a suite's output: each check on a child's answer prints
 * the call, its code and its message when it fails, at the caller's line. */
static struct mp_rep expect_rep(struct mp_rep m, int64_t want, const char *what, int line)
{
    if (m.rc != want)
        fprintf(stderr, "%s:%d: %s answered %lld (%s), want %lld (%s)\n", __FILE__, line, what,
                (long long)m.rc, m.rc == -999 ? "the child died: see its own message above"
                                              : m.msg,
                (long long)want, shoal_strerror((int)want));
    CU_assertImplementation(m.rc == want, (unsigned)line, what, __FILE__, "", CU_FALSE);
    return m;
}
#define EXPECT_REP(m, want, what) expect_rep((m), (want), (what), __LINE__)

/* A child ends with status 0 (mp_reap: its exit code, or 128 + the signal). */
static void expect_reaped(struct mp_child *c, const char *what, int line)
{
    pid_t pid = c->pid;
    int st = mp_reap(c);
    if (st != 0)
        fprintf(stderr, "%s:%d: %s (pid %d) ended with status %d%s\n", __FILE__, line, what,
                (int)pid, st, st > 128 ? " (128 + a signal)" : "");
    CU_assertImplementation(st == 0, (unsigned)line, what, __FILE__, "", CU_FALSE);
}
#define EXPECT_REAPED(c, what) expect_reaped((c), (what), __LINE__)

/* A client whose attach answered attach_rc: it puts, shuts down and exits (a client that
 * did not attach answers SHOAL_ENOTINIT to both). */
static void client_put_and_quit(struct mp_child *c, int64_t attach_rc, int line)
{
    int64_t want = attach_rc == 0 ? 0 : SHOAL_ENOTINIT;
    expect_rep(mp_call(c, MP_PUT, 100, 1, 1, 0), want, "the client's put", line);
    expect_rep(mp_call(c, MP_SHUTDOWN, 0, 0, 0, 0), want, "the client's shutdown", line);
    expect_reaped(c, "the client", line);
}
#define CLIENT_PUT_AND_QUIT(c, attach_rc) client_put_and_quit((c), (attach_rc), __LINE__)

/* Whether this process may open `need` more descriptors, raising its soft limit towards the
 * hard one when it must. The owner (this process) and the test's own connections share the
 * one table: a test that opens k connections to its owner needs about 2k descriptors. */
static bool fds_for(long need, char *why, size_t n)
{
    long open_now = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        open_now += e->d_name[0] != '.';
    if (d)
        closedir(d);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return snprintf(why, n, "getrlimit: %s", strerror(errno)), false;
    if ((long)rl.rlim_cur - open_now < need && rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)(open_now + need) * 2
                          ? (rlim_t)(open_now + need) * 2 : rl.rlim_max;
        if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if ((long)rl.rlim_cur - open_now >= need)
        return true;
    snprintf(why, n, "needs %ld more file descriptors, has %ld (ulimit -n %lu, %ld open)", need,
             (long)rl.rlim_cur - open_now, (unsigned long)rl.rlim_cur, open_now);
    return false;
}

#define OWNER_MAX_CONNS 512   /* the owner's connection table (mproc/publish.c, MAX_CONNS) */

/* 11.9: 500 connections that never say anything, then a real client: it attaches. */
static void test_idle_connections_never_lock_out(void)
{
    enum { IDLE = 520 };
    /* Ours, and as many on the owner's side (it keeps up to OWNER_MAX_CONNS), in this one
     * process, plus what the owner and the client's handshake use. */
    char why[160];
    if (!fds_for(IDLE + OWNER_MAX_CONNS + 64, why, sizeof why))
        SKIP_TEST(why);
    mp_owner_start();
    static int fds[IDLE];
    int n = 0;
    for (; n < IDLE; n++)
        if ((fds[n] = mp_raw_connect()) < 0)
            break;
    if (n != IDLE)
        fprintf(stderr, "idle connection %d of %d: %s\n", n + 1, IDLE, strerror(errno));
    CU_ASSERT_EQUAL(n, IDLE);
    struct mp_child c = mp_spawn();
    CU_ASSERT(c.pid > 0);
    if (c.pid > 0) {
        uint64_t t0 = mp_now_ns();
        struct mp_rep m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
        if (m.rc)
            fprintf(stderr, "attach behind %d idle connections, after %.0f ms:\n", n,
                    (double)(mp_now_ns() - t0) / 1e6);
        EXPECT_REP(m, 0, "attach behind the idle connections");
        CLIENT_PUT_AND_QUIT(&c, m.rc);
    }
    for (int k = 0; k < n; k++)
        close(fds[k]);
    CHECK_OK(shoal_shutdown());
}

enum { OP_FD_LIMIT = MP_USER };   /* a=n: soft RLIMIT_NOFILE leaving n descriptors free */

static void attach_child(const struct mp_cmd *m, struct mp_rep *r)
{
    if (m->code != OP_FD_LIMIT) {
        r->rc = -1;
        return;
    }
    static bool used[65536];
    DIR *d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    for (struct dirent *e; d && (e = readdir(d));) {
        long f = atol(e->d_name);
        if (e->d_name[0] != '.' && f != self && f < 65536)
            used[f] = true;
    }
    if (d)
        closedir(d);
    /* Descriptors come lowest first: the limit is past the first n free numbers. */
    rlim_t lim = 0;
    for (uint64_t left = m->a; lim < 65535 && (used[lim] || left--); lim++)
        ;
    struct rlimit rl;
    r->rc = getrlimit(RLIMIT_NOFILE, &rl) != 0 ? -errno : 0;
    if (r->rc == 0) {
        rl.rlim_cur = lim;
        r->rc = setrlimit(RLIMIT_NOFILE, &rl) != 0 ? -errno : 0;
        r->a = rl.rlim_cur;
    }
}

/* CPU time process pid has used (utime + stime of /proc/<pid>/stat), in ms; -1 on error. */
static long cpu_ms(pid_t pid)
{
    char path[64], b[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0)
        return -1;
    b[n] = 0;
    char *p = strrchr(b, ')');
    unsigned long ut, st;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt, then
     * utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* An owner (a child) whose soft descriptor limit leaves it `spare` free descriptors, then
 * `idle` connections that say nothing: its service thread must not spin on the listening
 * socket (the connection it cannot accept keeps that readable), and a real client's attach
 * must answer want within its answer timeout, its message containing says. */
static void out_of_fds_case(unsigned spare, int idle, int64_t want, const char *says)
{
    mp_new_name();
    struct mp_child o = mp_spawn();
    CU_ASSERT_FATAL(o.pid > 0);
    EXPECT_REP(mp_call(&o, MP_INIT, 0, 0, 0, 0), 0, "the child owner's init");
    struct mp_rep lr = EXPECT_REP(mp_call(&o, OP_FD_LIMIT, spare, 0, 0, 0), 0,
                                  "lowering the owner's descriptor limit");
    static int fds[64];
    int n = 0;
    for (; n < idle && n < 64; n++)
        if ((fds[n] = mp_raw_connect()) < 0)
            break;
    CU_ASSERT_EQUAL(n, idle);
    usleep(300 * 1000);   /* the owner takes what it can and is then out of descriptors */
    long c0 = cpu_ms(o.pid);
    uint64_t w0 = mp_now_ns();
    usleep(500 * 1000);
    long c1 = cpu_ms(o.pid);
    long wall = (long)((mp_now_ns() - w0) / 1000000u);
    CU_ASSERT(c0 >= 0 && c1 >= 0);
    if (c1 - c0 > wall / 10)
        fprintf(stderr, "owner (limit %llu descriptors, %d idle connections) used %ld ms of "
                "CPU in %ld ms: its service thread spins\n", (unsigned long long)lr.a, n,
                c1 - c0, wall);
    CU_ASSERT(c1 - c0 <= wall / 10);   /* a busy loop takes (nearly) all of it */
    struct mp_child c = mp_spawn();
    CU_ASSERT(c.pid > 0);
    if (c.pid > 0) {
        uint64_t t0 = mp_now_ns();
        struct mp_rep m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
        if (m.rc != want)
            fprintf(stderr, "attach to an owner out of descriptors, after %.0f ms:\n",
                    (double)(mp_now_ns() - t0) / 1e6);
        EXPECT_REP(m, want, "attach to an owner out of descriptors");
        if (m.rc == want && !strstr(m.msg, says)) {
            fprintf(stderr, "attach's message '%s' does not say '%s'\n", m.msg, says);
            CU_FAIL("attach's message");
        }
        CLIENT_PUT_AND_QUIT(&c, m.rc);
    }
    for (int k = 0; k < n; k++)
        close(fds[k]);
    EXPECT_REP(mp_call(&o, MP_SHUTDOWN, 0, 0, 0, 0), 0, "the child owner's shutdown");
    EXPECT_REAPED(&o, "the child owner");
}

/* 11.9 (continued): an owner out of file descriptors, with silent connections holding
 * them: one makes room (for the client's socket and then its ledger), so the client
 * attaches. 48 > 16, and 48 - 16 + 1 stay under the listen backlog (64). */
static void test_out_of_descriptors_never_locks_out(void)
{
    out_of_fds_case(16, 48, 0, "");
}

/* ... and with none to give way, the client is refused at once with a message saying why
 * (the owner keeps a spare descriptor for taking and closing the connection). */
static void test_out_of_descriptors_says_why(void)
{
    out_of_fds_case(0, 8, SHOAL_EBUSY, "out of file descriptors");
}

/* 11.9 (continued): a real client whose HELLO is waiting to be read is never the one evicted
 * to make room, even when more connections queue behind it than the owner has descriptors:
 * the owner is stopped while the client connects and says HELLO and 12 silent connections
 * follow it into the backlog, so the owner accepts them all in one go. Evicting the oldest
 * silent connection would, after 4 of them, evict the client (its HELLO never read). */
static void test_out_of_descriptors_keeps_a_hello(void)
{
    mp_new_name();
    struct mp_child o = mp_spawn();
    CU_ASSERT_FATAL(o.pid > 0);
    EXPECT_REP(mp_call(&o, MP_INIT, 0, 0, 0, 0), 0, "the child owner's init");
    EXPECT_REP(mp_call(&o, OP_FD_LIMIT, 4, 0, 0, 0), 0, "lowering the owner's descriptor limit");
    int fds[16], n = 0;
    for (; n < 4; n++)
        fds[n] = mp_raw_connect();
    usleep(300 * 1000);   /* the owner takes them: out of descriptors */
    kill(o.pid, SIGSTOP);
    int fd = mp_raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    struct shoal__msg h;
    size_t hn = shoal__msg_init(&h, SHOAL__MSG_HELLO);
    h.b.hello.pid = (int32_t)getpid();
    h.b.hello.lib_version = (SHOAL_VERSION_MAJOR << 16) | (SHOAL_VERSION_MINOR << 8) |
                            SHOAL_VERSION_PATCH;
    CU_ASSERT(send(fd, &h, hn, MSG_NOSIGNAL) == (ssize_t)hn);
    for (; n < 16; n++)
        fds[n] = mp_raw_connect();
    kill(o.pid, SIGCONT);
    struct timeval tv = { 3, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    union { char buf[CMSG_SPACE(sizeof(int) * SHOAL__MAX_FDS)]; struct cmsghdr align; } u;
    struct shoal__msg a;
    memset(&a, 0, sizeof a);
    struct iovec iov = { &a, sizeof a.h };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf };
    ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (int i = 0; i < (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++)
                close(((int *)CMSG_DATA(cm))[i]);
    if (r != (ssize_t)sizeof a.h || a.h.type != SHOAL__MSG_WELCOME)
        fprintf(stderr, "a client whose HELLO waited: answer %zd bytes, type %u (errno %d)\n",
                r, (unsigned)a.h.type, r < 0 ? errno : 0);
    CU_ASSERT(r == (ssize_t)sizeof a.h && a.h.type == SHOAL__MSG_WELCOME);
    close(fd);
    for (int k = 0; k < n; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    EXPECT_REP(mp_call(&o, MP_SHUTDOWN, 0, 0, 0, 0), 0, "the child owner's shutdown");
    EXPECT_REAPED(&o, "the child owner");
}

/* Send a HELLO saying pid on fd and read the answer (closing any descriptors it carries). */
static int hello_as(int fd, struct shoal__msg *a, int32_t pid)
{
    struct shoal__msg h;
    size_t n = shoal__msg_init(&h, SHOAL__MSG_HELLO);
    h.b.hello.pid = pid;
    h.b.hello.lib_version = (SHOAL_VERSION_MAJOR << 16) | (SHOAL_VERSION_MINOR << 8) |
                            SHOAL_VERSION_PATCH;
    if (send(fd, &h, n, MSG_NOSIGNAL) != (ssize_t)n)
        return -1;
    union { char buf[CMSG_SPACE(sizeof(int) * SHOAL__MAX_FDS)]; struct cmsghdr align; } u;
    struct iovec iov = { a, sizeof a->h };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf };
    memset(a, 0, sizeof *a);
    ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int got[SHOAL__MAX_FDS];
            memcpy(got, CMSG_DATA(cm), sizeof(int) * (size_t)(k < SHOAL__MAX_FDS ? k : SHOAL__MAX_FDS));
            for (int i = 0; i < k && i < SHOAL__MAX_FDS; i++)
                close(got[i]);
        }
    if (r != (ssize_t)sizeof a->h || a->h.len > sizeof a->b)
        return -1;
    return recv(fd, &a->b, a->h.len, MSG_WAITALL) == (ssize_t)a->h.len ? 0 : -1;
}

static int hello(int fd, struct shoal__msg *a)
{
    return hello_as(fd, a, (int32_t)getpid());
}

/* 11.8: the owner records a client's pid from the kernel (SO_PEERCRED), not from what the
 * client says in its HELLO: the process table (shoal-stat, messages about a dead creator)
 * names the real process. */
static void test_hello_pid_from_the_kernel(void)
{
    mp_owner_start();
    int fd = mp_raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    struct shoal__msg a;
    a.h.type = 0;
    int hr = hello_as(fd, &a, 1);
    if (hr != 0 || a.h.type != SHOAL__MSG_WELCOME)
        fprintf(stderr, "HELLO saying pid 1: %d (%s), answer type %u%s%s\n", hr, strerror(errno),
                (unsigned)a.h.type, a.h.type == SHOAL__MSG_REJECT ? ": " : "",
                a.h.type == SHOAL__MSG_REJECT ? a.b.reject.msg : "");
    CU_ASSERT_EQUAL_FATAL(hr, 0);
    CU_ASSERT_EQUAL_FATAL(a.h.type, SHOAL__MSG_WELCOME);
    unsigned p = a.b.welcome.proc;
    if (!(p > 0 && p < SHOAL__MAX_PROCS))
        fprintf(stderr, "WELCOME names process index %u\n", p);
    CU_ASSERT_FATAL(p > 0 && p < SHOAL__MAX_PROCS);
    int32_t pid = atomic_load(&shoal__mp_of(shoal__rt)->procs[p].pid);
    CU_ASSERT_EQUAL(pid, (int32_t)getpid());
    if (pid != (int32_t)getpid())
        fprintf(stderr, "the process table says pid %d, the peer is %d\n", (int)pid,
                (int)getpid());
    close(fd);
    CHECK_OK(shoal_shutdown());
}

/* 11.9: with every process index taken, an attach answers SHOAL_EBUSY and names the limit;
 * once one goes, attaching works again. */
static void test_full_process_table_says_ebusy(void)
{
    /* Per attached connection: ours, the owner's end and the owner's map of its ledger. */
    char why[160];
    if (!fds_for(3 * 255 + 64, why, sizeof why))
        SKIP_TEST(why);
    mp_owner_start();
    shoal_info i0 = info_now();
    static int fds[255];
    int n = 0;
    for (; n < 255; n++) {
        struct shoal__msg a;
        a.h.type = 0;
        if ((fds[n] = mp_raw_connect()) < 0 || hello(fds[n], &a) != 0 ||
            a.h.type != SHOAL__MSG_WELCOME) {
            fprintf(stderr, "raw client %d of 255: fd %d, %s, answer type %u%s%s\n", n + 1,
                    fds[n], strerror(errno), (unsigned)a.h.type,
                    a.h.type == SHOAL__MSG_REJECT ? ": " : "",
                    a.h.type == SHOAL__MSG_REJECT ? a.b.reject.msg : "");
            if (fds[n] >= 0)
                close(fds[n]);
            break;
        }
    }
    CU_ASSERT_EQUAL(n, 255);
    struct mp_child c = mp_spawn();
    CU_ASSERT(c.pid > 0);
    if (c.pid > 0) {
        struct mp_rep m = EXPECT_REP(mp_call(&c, MP_ATTACH, 0, 0, 0, 0), SHOAL_EBUSY,
                                     "attach to a full process table");
        if (!strstr(m.msg, "255"))
            fprintf(stderr, "the refusal does not name the limit 255: '%s'\n", m.msg);
        CU_ASSERT(strstr(m.msg, "255") != NULL);
        /* The owner sees the connection go and frees its index in its own time: wait for it
         * (bounded by time, not by a count of tries, so that a loaded machine is no failure;
         * the bound only keeps a broken build from hanging). */
        if (n > 0)
            close(fds[--n]);
        uint64_t t0 = mp_now_ns();
        int tries = 0;
        m.rc = SHOAL_EBUSY;
        while (m.rc == SHOAL_EBUSY && mp_now_ns() - t0 < 60 * 1000000000ull) {
            if (tries++)
                usleep(5000);
            m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
        }
        if (m.rc)
            fprintf(stderr, "after a raw client went: %d attaches in %.0f ms, the last:\n", tries,
                    (double)(mp_now_ns() - t0) / 1e6);
        EXPECT_REP(m, 0, "attach once an index is free");
        EXPECT_REP(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0), m.rc == 0 ? 0 : SHOAL_ENOTINIT,
                   "the client's shutdown");
        EXPECT_REAPED(&c, "the client");
    }
    for (int k = 0; k < n; k++)
        close(fds[k]);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "raw clients gone"));
    CHECK_OK(shoal_shutdown());
}

/* 11.9: another user is refused with SHOAL_EPERM and a message, by the owner or by the
 * client itself, never with SHOAL_EIO; also when it can reach the socket. */
static void test_other_user_says_eperm(void)
{
    if (geteuid() != 0)
        SKIP_TEST("needs root to run a client as another user");
    mp_owner_start();
    /* Let uid 65534 reach the socket: only the uid checks stand in its way. */
    char sock[200];
    CU_ASSERT_FATAL(mp_sock_path(sock, sizeof sock) == 0);
    CU_ASSERT_EQUAL(chmod(mp_dir, 0711), 0);
    CU_ASSERT_EQUAL(chmod(sock, 0666), 0);
    int eio = 0, wrong = 0;
    for (int k = 0; k < 20; k++) {
        struct mp_child c = mp_spawn();
        CU_ASSERT_FATAL(c.pid > 0);
        EXPECT_REP(mp_call(&c, MP_SETUID, 65534, 0, 0, 0), 0, "setuid(65534)");
        struct mp_rep m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
        if (m.rc != SHOAL_EPERM && wrong++ == 0)   /* the first one says what it saw */
            EXPECT_REP(m, SHOAL_EPERM, "another user's attach (the first one not refused so)");
        else
            CU_ASSERT_EQUAL(m.rc, SHOAL_EPERM);
        CU_ASSERT(m.msg[0] != 0);
        eio += m.rc == SHOAL_EIO;
        EXPECT_REAPED(&c, "the other user's client");
    }
    if (wrong)
        fprintf(stderr, "another user's attach: %d of 20 not SHOAL_EPERM, %d of them SHOAL_EIO\n",
                wrong, eio);
    CU_ASSERT_EQUAL(eio, 0);
    CU_ASSERT_EQUAL(chmod(mp_dir, 0700), 0);
    CHECK_OK(shoal_shutdown());
}

/* 11.9: shoal.h and the code agree: a store is shared by its owner's user only; root
 * attaching to another user's store is refused (with a message that says why). */
static void test_root_and_other_users_store(void)
{
    if (geteuid() != 0)
        SKIP_TEST("needs root to run an owner as another user");
    test_reset();
    mp_new_name();
    CU_ASSERT_EQUAL(chmod(mp_dir, 0777), 0);   /* the other user's owner binds its socket here */
    struct mp_child o = mp_spawn();
    CU_ASSERT_FATAL(o.pid > 0);
    EXPECT_REP(mp_call(&o, MP_SETUID, 65534, 0, 0, 0), 0, "the owner's setuid(65534)");
    if (EXPECT_REP(mp_call(&o, MP_INIT, 0, 0, 0, 0), 0, "the other user's shoal_init").rc == 0) {
        CHECK_RC(shoal_attach(mp_name), SHOAL_EPERM);
        if (!strstr(shoal_last_error(), "user"))
            fprintf(stderr, "the refusal does not say 'user': '%s'\n", shoal_last_error());
        CU_ASSERT(strstr(shoal_last_error(), "user") != NULL);
        EXPECT_REP(mp_call(&o, MP_SHUTDOWN, 0, 0, 0, 0), 0, "the other user's shutdown");
    }
    EXPECT_REAPED(&o, "the other user's owner");
    test_reset();   /* in case the attach was let in after all */
    CU_ASSERT_EQUAL(chmod(mp_dir, 0700), 0);
}

/* 11.9: a client's shoal_submit says what is true: this process runs no workers. */
static void test_client_submit_says_no_workers(void)
{
    mp_owner_start();
    struct mp_child c = mp_attached();
    struct mp_rep m = EXPECT_REP(mp_call(&c, MP_SUBMIT, 0, 0, 0, 0), SHOAL_EPERM,
                                 "a client's shoal_submit");
    if (!strstr(m.msg, "no workers"))
        fprintf(stderr, "a client's submit does not say 'no workers': '%s'\n", m.msg);
    CU_ASSERT(strstr(m.msg, "no workers") != NULL);
    EXPECT_REP(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0), 0, "the client's shutdown");
    EXPECT_REAPED(&c, "the client");
    CHECK_OK(shoal_shutdown());
}

/* A store laid out by another shoal version (here: one version older) is refused with
 * SHOAL_EPROTO, and the message names both versions. */
static void test_other_segment_version_is_named(void)
{
    mp_owner_start();
    struct shoal__hdr *h = shoal__rt->hdr;
    h->version = SHOAL__SEG_VERSION - 1;
    struct mp_child c = mp_spawn();
    CU_ASSERT_FATAL(c.pid > 0);
    struct mp_rep m = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
    h->version = SHOAL__SEG_VERSION;
    char want[2][32];
    snprintf(want[0], sizeof want[0], "version %u", SHOAL__SEG_VERSION - 1);
    snprintf(want[1], sizeof want[1], "version %u", SHOAL__SEG_VERSION);
    CU_ASSERT_EQUAL(m.rc, SHOAL_EPROTO);
    CU_ASSERT(strstr(m.msg, want[0]) != NULL && strstr(m.msg, want[1]) != NULL);
    if (m.rc != SHOAL_EPROTO || !strstr(m.msg, want[0]))
        fprintf(stderr, "attach to a version %u segment: %lld (%s)\n", SHOAL__SEG_VERSION - 1,
                (long long)m.rc, m.msg);
    EXPECT_REAPED(&c, "the refused client");   /* the test's end of its pipe closes: it exits */
    struct mp_child ok = mp_attached();   /* the store itself is fine */
    EXPECT_REP(mp_call(&ok, MP_SHUTDOWN, 0, 0, 0, 0), 0, "the client's shutdown");
    EXPECT_REAPED(&ok, "the client");
    CHECK_OK(shoal_shutdown());
}

static const shoal_test_case cases[] = {
    { "idle_connections_never_lock_out", test_idle_connections_never_lock_out },
    { "out_of_descriptors_never_locks_out", test_out_of_descriptors_never_locks_out },
    { "out_of_descriptors_says_why", test_out_of_descriptors_says_why },
    { "out_of_descriptors_keeps_a_hello", test_out_of_descriptors_keeps_a_hello },
    { "full_process_table_says_ebusy", test_full_process_table_says_ebusy },
    { "other_user_says_eperm", test_other_user_says_eperm },
    { "root_and_other_users_store", test_root_and_other_users_store },
    { "client_submit_says_no_workers", test_client_submit_says_no_workers },
    { "hello_pid_from_the_kernel", test_hello_pid_from_the_kernel },
    { "other_segment_version_is_named", test_other_segment_version_is_named },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (mp_is_child(argc, argv)) {
        mp_child_hook = attach_child;
        return mp_child_main(argv);
    }
    return mp_run("mp_attach", cases);
}
