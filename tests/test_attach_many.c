/* test_attach_many.c - attaching scales (issue 11.5): a client's allocator keeps its
 * metadata in the client and takes chunks only as it allocates, so the 255 clients the
 * protocol allows attach at once to a 64 MiB store its owner filled to the last byte (one
 * more answers EBUSY naming the limit), idle clients take none of the store's room (the
 * owner refills it as full as before), shoal-stat attaches to a full store, and a client
 * attaches to a store that was filled with small objects and emptied, and places an
 * object of most of its size. Clients are this program again (`--client`), each attached
 * until the test closes its pipe. Under sanitizers a tenth of the clients (memory). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

#define LIMIT 255                       /* processes besides the owner (shoal.h, attach) */
#define CLIENTS (LIMIT / SAN_DIV)
#define MiB ((size_t)1 << 20)
#define RES_FD 100                      /* a client's fds: where it reports, what it waits on */
#define HOLD_FD 101

extern char **environ;
static char g_dir[32];

struct report { int idx, rc, put_rc; char msg[120]; };

/* Attach, put (and read back) a put_len-byte object when put_len > 0, report, then stay
 * attached until the hold pipe closes. */
static int client_main(const char *name, int idx, size_t put_len)
{
    alarm(300);   /* never outlive a test that went wrong */
    struct report r = { idx, shoal_attach(name), 0, "" };
    if (r.rc == 0 && put_len > 0) {
        unsigned char *buf = malloc(put_len);
        shoal_ref ref = { 0 };
        const void *d = NULL;
        size_t n = 0;
        if (buf)
            memset(buf, 0x5a, put_len);
        r.put_rc = buf ? shoal_put(buf, put_len, &ref) : SHOAL_ENOMEM;
        if (r.put_rc == 0 && (r.put_rc = get_within(ref, &d, &n)) == 0 &&
            (n != put_len || ((const unsigned char *)d)[put_len - 1] != 0x5a))
            r.put_rc = SHOAL_EIO;
        if (ref.id)
            shoal_release(ref);
        free(buf);
    }
    if (r.rc || r.put_rc)
        snprintf(r.msg, sizeof r.msg, "%s", shoal_last_error());
    if (write(RES_FD, &r, sizeof r) != (ssize_t)sizeof r)
        return 3;
    if (r.rc)
        return 1;
    char b;
    while (read(HOLD_FD, &b, 1) < 0 && errno == EINTR) {
    }   /* EOF: the test is done with us */
    return shoal_shutdown() == 0 && r.put_rc == 0 ? 0 : 4;
}

/* Start a client reporting into res_w and attached until hold_r's pipe closes. */
static pid_t spawn_client(const char *name, int idx, size_t put_len, int res_w, int hold_r)
{
    char sidx[16], slen[24];
    snprintf(sidx, sizeof sidx, "%d", idx);
    snprintf(slen, sizeof slen, "%zu", put_len);
    char *argv[] = { "test_attach_many", "--client", (char *)name, sidx, slen, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, res_w, RES_FD);   /* clears close-on-exec */
    posix_spawn_file_actions_adddup2(&fa, hold_r, HOLD_FD);
    pid_t pid = -1;
    if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Read one report (within 120 s). */
static bool read_report(int res_r, struct report *r)
{
    struct pollfd pf = { res_r, POLLIN, 0 };
    return poll(&pf, 1, 120000) == 1 && read(res_r, r, sizeof *r) == (ssize_t)sizeof *r;
}

/* Reap pid within 120 s (killed after): true when it exited 0. */
static bool reap_ok(pid_t pid)
{
    for (int i = 0; i < 12000; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (r < 0)
            return false;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return false;
}

/* A published store of store bytes named alloc-<tag>-<pid> into name (64 bytes). */
static void start_published(const char *tag, size_t store, char *name)
{
    test_reset();
    snprintf(name, 64, "alloc-%s-%d", tag, (int)getpid());
    shoal_config c = shoal_test_config();
    c.name = name;
    c.store_bytes = store;
    ASSERT_OK(shoal_init(&c));
}

/* Fill the store to the last byte: 1 MiB objects, then ever smaller ones into what is
 * left. Returns how many objects; refs has room for max. */
static int fill_full(shoal_ref *refs, int max)
{
    static unsigned char buf[MiB];
    int n = 0;
    for (size_t len = MiB; len >= 64; len /= 4)
        while (n < max && shoal_put(buf, len, &refs[n]) == 0)
            n++;
    return n;
}

static void release_all(shoal_ref *refs, int n)
{
    for (int k = 0; k < n; k++)
        CHECK_OK(shoal_release(refs[k]));
}

static void t_limit_of_clients_on_full_store(void)
{
    char name[64];
    start_published("many", 64 * MiB, name);
    enum { MAX = 1 << 20 };
    shoal_ref *refs = calloc(MAX, sizeof *refs);
    CU_ASSERT_FATAL(refs != NULL);
    int n = fill_full(refs, MAX);
    shoal_ref extra;
    CHECK_RC(shoal_put("x", 1, &extra), SHOAL_ENOMEM);
    shoal_info full = info_now();
    fprintf(stderr, "full store: %d objects, %zu of %zu bytes\n", n, full.bytes_used,
            full.store_bytes);

    /* Client 0 has a hold pipe of its own, so it can leave first. */
    int res[2], hold[2], hold0[2];
    CU_ASSERT_FATAL(pipe2(res, O_CLOEXEC) == 0 && pipe2(hold, O_CLOEXEC) == 0 &&
                    pipe2(hold0, O_CLOEXEC) == 0);
    pid_t pids[LIMIT + 1];
    int spawned = 0;
    for (int k = 0; k < CLIENTS; k++) {
        pids[k] = spawn_client(name, k, 0, res[1], k == 0 ? hold0[0] : hold[0]);
        if (pids[k] < 0)
            break;
        spawned++;
    }
    CU_ASSERT_EQUAL(spawned, CLIENTS);
    int ok = 0, answered = 0;
    struct report r;
    while (answered < spawned && read_report(res[0], &r)) {
        answered++;
        if (r.rc == 0)
            ok++;
        else if (answered - ok <= 3)
            fprintf(stderr, "client %d: attach = %d: %s\n", r.idx, r.rc, r.msg);
    }
    fprintf(stderr, "%d of %d clients attached to the full store\n", ok, spawned);
    CU_ASSERT_EQUAL(answered, spawned);
    CU_ASSERT_EQUAL(ok, spawned);

    if (CLIENTS == LIMIT && ok == LIMIT) {   /* one more is refused, saying why */
        pid_t p = spawn_client(name, LIMIT, 0, res[1], hold[0]);
        CU_ASSERT(p > 0);
        if (p > 0) {
            pids[spawned++] = p;
            bool got = read_report(res[0], &r);
            CU_ASSERT(got);
            if (got) {
                CU_ASSERT_EQUAL(r.rc, SHOAL_EBUSY);
                CU_ASSERT(strstr(r.msg, "255") != NULL);
                if (r.rc != SHOAL_EBUSY || !strstr(r.msg, "255"))
                    fprintf(stderr, "attach beyond the limit: %d: %s\n", r.rc, r.msg);
            }
        }
    }

    /* Attaching took nothing from the store, shown or not: the owner empties it and fills
     * it again exactly as full as before, beside all those idle clients. */
    shoal_info during = info_now();
    CU_ASSERT_EQUAL(during.bytes_used, full.bytes_used);
    CU_ASSERT_EQUAL(during.objects_live, full.objects_live);
    release_all(refs, n);
    int n2 = fill_full(refs, MAX);
    shoal_info refull = info_now();
    fprintf(stderr, "refilled beside %d clients: %d objects, %zu bytes\n", ok, n2,
            refull.bytes_used);
    CU_ASSERT_EQUAL(n2, n);
    CU_ASSERT_EQUAL(refull.bytes_used, full.bytes_used);
    n = n2;

    /* A tool attaches to the full store: once client 0 has gone, there is room for one
     * more process (the owner handles its detach in the background: retry on EBUSY). */
    close(hold0[1]);
    CU_ASSERT(reap_ok(pids[0]));
    char tool[4096], cmd[4200], out[8192];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "timeout 60 %s %s --json 2>&1", tool, name);
    int trc = -1;
    for (int tries = 0; tries < 300; tries++) {
        trc = test_run_cmd(cmd, out, sizeof out);
        if (trc == 0 || !strstr(out, "too many processes"))
            break;
        usleep(100000);
    }
    if (trc != 0)
        fprintf(stderr, "shoal-stat on the full store: exit %d:\n%s\n", trc, out);
    CU_ASSERT_EQUAL(trc, 0);
    CU_ASSERT(strstr(out, "\"largest_free\":0,") != NULL);   /* nothing fits */

    close(hold[1]);   /* every client detaches */
    int clean = 0;
    for (int k = 1; k < spawned; k++)
        clean += reap_ok(pids[k]);
    CU_ASSERT_EQUAL(clean, ok - 1);   /* the refused one exits 1 */
    close(res[0]);
    close(res[1]);
    close(hold[0]);
    close(hold0[0]);
    release_all(refs, n);
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CHECK_OK(shoal_shutdown());
}

/* Small objects of many sizes fill the store, half go, other sizes fill it again, all go:
 * a client then attaches and places an object of three quarters of the store. */
static void t_attach_after_fill_and_empty(void)
{
    char name[64];
    start_published("refill", 64 * MiB, name);
    enum { MAX = 1 << 21 };
    shoal_ref *refs = calloc(MAX, sizeof *refs);
    CU_ASSERT_FATAL(refs != NULL);
    static unsigned char buf[8192];
    uint64_t s = 11;
    int n = 0;
    while (n < MAX && shoal_put(buf, 64 + (size_t)(rnd_next(&s) % 4000), &refs[n]) == 0)
        n++;
    int kept = 0;
    for (int k = 0; k < n; k++) {
        if (k % 2)
            CHECK_OK(shoal_release(refs[k]));
        else
            refs[kept++] = refs[k];
    }
    n = kept;
    while (n < MAX && shoal_put(buf, 1000 + (size_t)(rnd_next(&s) % 7000), &refs[n]) == 0)
        n++;
    fprintf(stderr, "filled with %d small objects\n", n);
    release_all(refs, n);
    free(refs);
    shoal_info empty = info_now();
    CU_ASSERT_EQUAL(empty.objects_live, 0);
    CU_ASSERT_EQUAL(empty.bytes_used, 0);

    int res[2], hold[2];
    CU_ASSERT_FATAL(pipe2(res, O_CLOEXEC) == 0 && pipe2(hold, O_CLOEXEC) == 0);
    pid_t pid = spawn_client(name, 0, 48 * MiB, res[1], hold[0]);
    CU_ASSERT_FATAL(pid > 0);
    struct report r = { -1, -1, -1, "" };
    bool got = read_report(res[0], &r);
    CU_ASSERT(got);
    if (r.rc || r.put_rc)
        fprintf(stderr, "client on the emptied store: attach %d, 48 MiB put %d: %s\n", r.rc,
                r.put_rc, r.msg);
    CU_ASSERT_EQUAL(r.rc, 0);
    CU_ASSERT_EQUAL(r.put_rc, 0);
    close(hold[1]);
    CU_ASSERT(reap_ok(pid));
    close(res[0]);
    close(res[1]);
    close(hold[0]);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CHECK_OK(shoal_shutdown());
}

/* Idle clients attached to an empty store first: the owner still fills all of it. */
static void t_idle_clients_take_no_room(void)
{
    char name[64];
    start_published("idle", 64 * MiB, name);
    int res[2], hold[2];
    CU_ASSERT_FATAL(pipe2(res, O_CLOEXEC) == 0 && pipe2(hold, O_CLOEXEC) == 0);
    enum { IDLE = 30 };
    pid_t pids[IDLE];
    int spawned = 0, ok = 0;
    for (int k = 0; k < IDLE && (pids[k] = spawn_client(name, k, 0, res[1], hold[0])) > 0; k++)
        spawned++;
    CU_ASSERT_EQUAL(spawned, IDLE);
    struct report r;
    for (int k = 0; k < spawned && read_report(res[0], &r); k++)
        ok += r.rc == 0;
    CU_ASSERT_EQUAL(ok, spawned);
    enum { MAX = 1 << 20 };
    shoal_ref *refs = calloc(MAX, sizeof *refs);
    CU_ASSERT_FATAL(refs != NULL);
    int n = fill_full(refs, MAX);
    shoal_info full = info_now();
    fprintf(stderr, "beside %d idle clients the owner put %d objects, %zu of %zu bytes\n", ok,
            n, full.bytes_used, full.store_bytes);
    CU_ASSERT_EQUAL(full.bytes_used, full.store_bytes);
    close(hold[1]);
    int clean = 0;
    for (int k = 0; k < spawned; k++)
        clean += reap_ok(pids[k]);
    CU_ASSERT_EQUAL(clean, ok);
    close(res[0]);
    close(res[1]);
    close(hold[0]);
    release_all(refs, n);
    free(refs);
    CHECK_OK(shoal_shutdown());
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--client") == 0)
        return client_main(argv[2], atoi(argv[3]), (size_t)strtoull(argv[4], NULL, 10));
    if (test_private_run_dir(g_dir, sizeof g_dir) != 0)   /* for the clients and the tool */
        return 2;
    signal(SIGPIPE, SIG_IGN);
    static const shoal_test_case cases[] = {
        { "255 clients attach to a full 64 MiB store and take none of its room",
          t_limit_of_clients_on_full_store },
        { "a client attaches to a store filled and emptied, and puts 48 MiB",
          t_attach_after_fill_and_empty },
        { "30 idle clients: the owner still fills the whole store", t_idle_clients_take_no_room },
        { NULL, NULL },
    };
    int rc = shoal_test_run("attach_many", cases);
    rmdir(g_dir);
    return rc;
}
