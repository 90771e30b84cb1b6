/* mp.c - the multi-process test harness (mp.h): the child's command loop and the parent's
 * side of the protocol. */
#include "mp.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../layout/mpseg.h"   /* the owner's count of processed deaths */

extern char **environ;

char mp_name[48];
char mp_dir[64];
void (*mp_child_hook)(const struct mp_cmd *m, struct mp_rep *r);

static unsigned name_seq;

#define CHILD_WATCHDOG_S 600   /* a child stuck for this long (its parent gone) dies */

uint64_t mp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mp_ref_bits(shoal_ref r)
{
    unsigned char b[8];
    uint64_t v;
    shoal_ref_encode(r, b);
    memcpy(&v, b, 8);
    return v;
}

shoal_ref mp_bits_ref(uint64_t v)
{
    unsigned char b[8];
    memcpy(b, &v, 8);
    return shoal_ref_decode(b);
}

int mp_xfer(int fd, void *p, size_t n, int writing)
{
    return test_xfer(fd, p, n, writing);
}

/* ---- the child ------------------------------------------------------------------------- */

#define CK(cond) do { if (!(cond)) { fprintf(stderr, "mp child %d %s:%d: %s failed; last error: %s\n", \
                        (int)getpid(), __FILE__, __LINE__, #cond, shoal_last_error()); _exit(3); } } while (0)

struct kept { uint64_t id; void *buf; const void *data; size_t len; };
static struct kept kept[64];

static struct kept *keep(uint64_t id)
{
    for (int i = 0; i < 64; i++)
        if (kept[i].id == id || kept[i].id == 0) {
            kept[i].id = id;
            return &kept[i];
        }
    return &kept[0];
}

/* Objects this churn made: their pattern is (seed, seq). */
struct churned { shoal_ref r; uint64_t seq; size_t len; };

/* The object a churning child is retaining or releasing, 0 outside those calls, in a file
 * of the run directory named for its pid (mp_churn_suspect). A child killed inside one may
 * leak that one reference (shoal.h, shoal_attach: the bounded leak of such a death). */
static void churn_suspects_path(char *p, size_t n, const char *dir, pid_t pid)
{
    snprintf(p, n, "%s/churn-%d.sus", dir, (int)pid);
}

_Atomic uint64_t *mp_shared_words(const char *path, size_t n, bool create)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0)
        return NULL;
    void *m = MAP_FAILED;
    if (!create || ftruncate(fd, (off_t)(n * 8)) == 0)
        m = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static _Atomic uint64_t *churn_suspect_map(void)
{
    const char *dir = getenv("SHOAL_RUN_DIR");
    static _Atomic uint64_t none;
    char p[160];
    if (!dir)
        return &none;
    churn_suspects_path(p, sizeof p, dir, getpid());
    _Atomic uint64_t *m = mp_shared_words(p, 1, true);
    return m ? m : &none;
}

/* relaxed and a signal fence: only a SIGKILL interrupts the child, and the parent reads
 * the file after reaping it. */
static inline void churn_mark(_Atomic uint64_t *sus, uint64_t id)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(sus, id, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}

uint64_t mp_churn_suspect(pid_t pid)
{
    char p[160];
    churn_suspects_path(p, sizeof p, mp_dir, pid);
    uint64_t id = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &id, sizeof id) != (ssize_t)sizeof id)
            id = 0;
        close(fd);
        unlink(p);
    }
    return id;
}

static void churn(uint64_t seed, uint64_t max_live, uint64_t max_len, uint64_t flags)
{
    _Atomic uint64_t *sus = churn_suspect_map();
    uint64_t s = seed | 1, seq = 0;
    if (max_live == 0 || max_live > 4096)
        max_live = 64;
    if (max_len == 0)
        max_len = 4096;
    struct churned *live = calloc(max_live, sizeof *live);
    unsigned char *buf = malloc(max_len);
    CK(live && buf);
    size_t n = 0;
    for (;;) {
        uint64_t op = rnd_next(&s) % 8;
        if (n < max_live && op < 4) {
            size_t len = (size_t)(rnd_next(&s) % (max_len + 1));
            struct churned c = { SHOAL_REF_NULL, ++seq, len };
            int rc;
            if (op < 2 || (flags & MP_CHURN_PUT_ONLY)) {
                pat_fill(buf, len, seed, c.seq);
                rc = shoal_put(buf, len, &c.r);
            } else {
                void *p = NULL;
                rc = shoal_create(len, &p, &c.r);
                if (rc == 0) {
                    pat_fill(p, len, seed, c.seq);
                    rc = shoal_seal(c.r);
                    CK(rc == 0);
                }
            }
            CK(rc == 0 || rc == SHOAL_ENOMEM);
            if (rc == 0)
                live[n++] = c;
            continue;
        }
        if (n == 0)
            continue;
        size_t i = (size_t)(rnd_next(&s) % n);
        const void *d = NULL;   /* gcc's LTO pass warns through the inline get otherwise */
        size_t len = 0;
        if (op < 6) {
            CK(shoal_get(live[i].r, &d, &len) == 0 && len == live[i].len &&
               pat_ok(d, len, seed, live[i].seq));
            if (op == 5) {
                churn_mark(sus, live[i].r.id);
                CK(shoal_retain(live[i].r) == 0);
                CK(shoal_release(live[i].r) == 0);
                churn_mark(sus, 0);
            }
        } else {
            churn_mark(sus, live[i].r.id);
            CK(shoal_release(live[i].r) == 0);
            churn_mark(sus, 0);
            live[i] = live[--n];
        }
    }
}

bool mp_is_child(int argc, char **argv)
{
    return argc >= 4 && strcmp(argv[1], "--mp-child") == 0;
}

int mp_child_main(char **argv)
{
    int fd = atoi(argv[2]);
    snprintf(mp_name, sizeof mp_name, "%s", argv[3]);
    shoal_test_child_limits(CHILD_WATCHDOG_S);   /* alarm, and die with the test */
    for (;;) {
        struct mp_cmd m;
        struct mp_rep r;
        memset(&r, 0, sizeof r);
        if (mp_xfer(fd, &m, sizeof m, 0))
            return 0;   /* the test went away */
        m.s[sizeof m.s - 1] = 0;
        shoal_ref ref = mp_bits_ref(m.a), out = SHOAL_REF_NULL;
        const void *d = NULL;
        size_t n = 0;
        switch (m.code) {
        case MP_ATTACH:
            r.rc = shoal_attach(mp_name);
            break;
        case MP_INIT: {
            shoal_config c = shoal_test_config();
            c.name = mp_name;
            if (m.a)
                c.store_bytes = m.a;
            if (m.b)
                c.spill_dir = m.s;
            r.rc = shoal_init(&c);
            break;
        }
        case MP_SHUTDOWN:
            r.rc = shoal_shutdown();
            break;
        case MP_EXIT:
            _exit(0);
        case MP_PUT: {
            void *buf = malloc(m.a ? m.a : 1);
            CK(buf);
            pat_fill(buf, m.a, m.b, m.c);
            r.rc = shoal_put(buf, m.a, &out);
            free(buf);
            r.a = mp_ref_bits(out);
            break;
        }
        case MP_CREATE: {
            void *buf = NULL;
            r.rc = shoal_create(m.a, &buf, &out);
            r.a = mp_ref_bits(out);
            struct kept *k = keep(out.id);
            k->buf = buf;
            k->len = m.a;
            break;
        }
        case MP_FILL_SEAL: {
            struct kept *k = keep(ref.id);
            CK(k->buf || k->len == 0);
            pat_fill(k->buf, k->len, m.b, m.c);
            r.rc = shoal_seal(ref);
            break;
        }
        case MP_GET:
            r.rc = shoal_get(ref, &d, &n);
            if (r.rc == 0 && (n != m.d || !pat_ok(d, n, m.b, m.c)))
                r.rc = -100;
            if (r.rc == 0) {
                struct kept *k = keep(ref.id);
                k->data = d;
                k->len = n;
            }
            r.a = (uint64_t)(uintptr_t)d;
            break;
        case MP_TOUCH: {
            struct kept *k = keep(ref.id);
            r.rc = k->data && k->len == m.d && pat_ok(k->data, k->len, m.b, m.c) ? 0 : -100;
            break;
        }
        case MP_GET_TIMEOUT:
            r.rc = shoal_get_timeout(ref, (int64_t)m.b, &d, &n);
            r.a = n;
            break;
        case MP_WAIT: {
            bool ready = false;
            r.rc = shoal_wait(&ref, 1, 1, (int64_t)m.b, &ready);
            r.a = ready;
            break;
        }
        case MP_RETAIN:
            r.rc = shoal_retain(ref);
            break;
        case MP_RELEASE:
            r.rc = shoal_release(ref);
            break;
        case MP_INFO: {
            shoal_info i;
            r.rc = shoal_info_get(&i);
            r.a = i.bytes_used;
            r.b = i.objects_live;
            break;
        }
        case MP_WRITE_FILE:
            r.rc = shoal_write_file(ref, m.s, &out);
            r.a = mp_ref_bits(out);
            break;
        case MP_PUT_FILE:
            r.rc = shoal_put_file(m.s, m.a, m.b, &out);
            r.a = mp_ref_bits(out);
            break;
        case MP_SUBMIT:
            r.rc = shoal_submit(NULL, NULL, 0, NULL, &out);
            break;
        case MP_CHURN:
            if (mp_xfer(fd, &r, sizeof r, 1))
                return 0;
            churn(m.a, m.b, m.c, m.d);
            return 0;
        case MP_SETUID:
            r.rc = setgid((gid_t)m.a) == 0 && setuid((uid_t)m.a) == 0 ? 0 : -errno;
            break;
        default:
            CK(m.code >= MP_USER && mp_child_hook);
            mp_child_hook(&m, &r);
        }
        if (r.rc)
            snprintf(r.msg, sizeof r.msg, "%s", shoal_last_error());
        if (mp_xfer(fd, &r, sizeof r, 1))
            return 0;
    }
}

/* ---- the parent --------------------------------------------------------------------------- */

static const char *suite_name;

static int fixture_setup(void)
{
    snprintf(mp_dir, sizeof mp_dir, "/tmp/shoal-%s-XXXXXX", suite_name);
    if (!mkdtemp(mp_dir)) {
        perror("mkdtemp");
        mp_dir[0] = 0;
        return 1;
    }
    setenv("SHOAL_RUN_DIR", mp_dir, 1);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int fixture_teardown(void)
{
    /* A test that stopped half-way (a failed fatal check) may have left a store up: its
     * socket is in the directory. */
    test_reset();
    return test_remove_dir(mp_dir);
}

int mp_run(const char *suite, const shoal_test_case *cases)
{
    suite_name = suite;
    /* SHOAL_TEST_CASE picks cases (lib/harness.c) */
    return shoal_test_run_fixture(suite, cases,
                                  (shoal_test_fixture){ fixture_setup, fixture_teardown });
}

int mp_sock_path(char *out, size_t n)
{
    char path[200];
    snprintf(path, sizeof path, "%s/shoal-%s.sock", mp_dir, mp_name);
    if (strlen(path) >= n)
        return -1;
    memcpy(out, path, strlen(path) + 1);
    return 0;
}

int mp_raw_connect(void)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (mp_sock_path(a.sun_path, sizeof a.sun_path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void mp_new_name(void)
{
    snprintf(mp_name, sizeof mp_name, "mp-%d-%u", (int)getpid(), ++name_seq);
}

struct mp_child mp_spawn(void)
{
    struct mp_child c = { -1, -1 };
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return c;
    char fdarg[16];
    int cfd = fcntl(sv[1], F_DUPFD, 3);   /* without CLOEXEC: the child inherits it */
    snprintf(fdarg, sizeof fdarg, "%d", cfd);
    /* posix_spawn, not fork: no atfork handlers run in this (multithreaded) process, and
     * the child is a fresh exec of this program. */
    char *argv[] = { "mp-child", "--mp-child", fdarg, mp_name, NULL };
    if (cfd < 0 || posix_spawn(&c.pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        c.pid = -1;
    if (cfd >= 0)
        close(cfd);
    close(sv[1]);
    c.fd = sv[0];
    return c;
}

static struct mp_cmd cmd(uint64_t code, uint64_t a, uint64_t b, uint64_t cc, uint64_t d)
{
    struct mp_cmd m;
    memset(&m, 0, sizeof m);
    m.code = code;
    m.a = a;
    m.b = b;
    m.c = cc;
    m.d = d;
    return m;
}

int mp_send(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc, uint64_t d)
{
    struct mp_cmd m = cmd(code, a, b, cc, d);
    return mp_xfer(c->fd, &m, sizeof m, 1);
}

int mp_recv(struct mp_child *c, struct mp_rep *r)
{
    return mp_xfer(c->fd, r, sizeof *r, 0);
}

static struct mp_rep call_m(struct mp_child *c, const struct mp_cmd *m)
{
    struct mp_rep r;
    memset(&r, 0, sizeof r);
    r.rc = -999;
    if (mp_xfer(c->fd, (void *)m, sizeof *m, 1) || mp_xfer(c->fd, &r, sizeof r, 0))
        r.rc = -999;   /* the child died: its stderr says why */
    if (r.rc && getenv("SHOAL_TEST_VERBOSE"))
        fprintf(stderr, "  [child %d op %llu: %lld %s]\n", (int)c->pid,
                (unsigned long long)m->code, (long long)r.rc, r.msg);
    return r;
}

struct mp_rep mp_call(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc,
                      uint64_t d)
{
    struct mp_cmd m = cmd(code, a, b, cc, d);
    return call_m(c, &m);
}

struct mp_rep mp_call_s(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b,
                        const char *s)
{
    struct mp_cmd m = cmd(code, a, b, 0, 0);
    snprintf(m.s, sizeof m.s, "%s", s);
    return call_m(c, &m);
}

struct mp_child mp_attached(void)
{
    struct mp_child c = mp_spawn();
    CU_ASSERT_FATAL(c.pid > 0);
    struct mp_rep r = mp_call(&c, MP_ATTACH, 0, 0, 0, 0);
    if (r.rc != 0)
        fprintf(stderr, "child attach: %lld (%s)\n", (long long)r.rc, r.msg);
    CU_ASSERT_EQUAL_FATAL(r.rc, 0);
    return c;
}

int mp_reap(struct mp_child *c)
{
    int st = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->pid <= 0 || waitpid(c->pid, &st, 0) != c->pid)
        return -1;
    c->pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int mp_kill(struct mp_child *c)
{
    if (c->pid > 0)
        kill(c->pid, SIGKILL);
    return mp_reap(c);
}

void mp_owner_start_cfg(shoal_config c)
{
    mp_new_name();
    c.name = mp_name;
    test_start(c);
}

void mp_owner_start(void)
{
    mp_owner_start_cfg(shoal_test_config());
}

uint64_t mp_deaths(void)
{
    /* acquire: pairs with the release increment at the end of the owner's processing. */
    return atomic_load_explicit(&shoal__mp_of(shoal__rt)->deaths, memory_order_acquire);
}

int mp_death_processed(uint64_t seen)
{
    for (int k = 0; k < 30000; k++) {
        if (mp_deaths() > seen)
            return 1;
        usleep(1000);
    }
    return 0;
}

int mp_settle(uint64_t bytes, uint64_t objects, const char *what)
{
    uint64_t t0 = mp_now_ns();
    shoal_info i;
    memset(&i, 0, sizeof i);
    for (int k = 0; k < 20000; k++) {
        if (shoal_info_get(&i) == 0 && i.bytes_used == bytes && i.objects_live == objects) {
            uint64_t t1 = mp_now_ns();
            if (getenv("SHOAL_TEST_VERBOSE"))
                printf("\n  [%s: back to %llu bytes / %llu objects after %.1f ms]", what,
                       (unsigned long long)bytes, (unsigned long long)objects,
                       (double)(t1 - t0) / 1e6);
            return 1;
        }
        usleep(1000);
    }
    fprintf(stderr, "%s: bytes_used %llu (want %llu), objects_live %llu (want %llu)\n", what,
            (unsigned long long)i.bytes_used, (unsigned long long)bytes,
            (unsigned long long)i.objects_live, (unsigned long long)objects);
    return 0;
}
