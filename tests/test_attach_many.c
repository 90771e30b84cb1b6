/* test_attach_many.c - attaching takes no store memory (issue 11.5): a client's allocator
 * keeps its metadata in the client and takes chunks only as it allocates, so 150 clients
 * attach at once to a small store its owner has filled to the last byte, the owner's
 * figures do not move, and shoal-stat attaches to that full store too. Clients are this
 * program again (`--client`), each attached until the test closes a pipe. */
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

#define CLIENTS 150

extern char **environ;
static char g_dir[32];

struct report { int idx, rc; char msg[120]; };

static int client_main(const char *name, int idx, int out, int hold)
{
    alarm(300);   /* never outlive a test that went wrong */
    struct report r = { idx, shoal_attach(name), "" };
    if (r.rc)
        snprintf(r.msg, sizeof r.msg, "%s", shoal_last_error());
    if (write(out, &r, sizeof r) != (ssize_t)sizeof r)
        return 3;
    if (r.rc)
        return 1;
    char b;
    while (read(hold, &b, 1) < 0 && errno == EINTR) {
    }   /* EOF: the test is done with us */
    return shoal_shutdown() == 0 ? 0 : 4;
}

/* Fill the store with len-byte objects until ENOMEM; returns how many. */
static int fill(shoal_ref *refs, int max, size_t len)
{
    static unsigned char buf[64 << 10];
    int n = 0;
    while (n < max && shoal_put(buf, len, &refs[n]) == 0)
        n++;
    return n;
}

static void t_many_clients_on_full_store(void)
{
    test_reset();
    char name[48];
    snprintf(name, sizeof name, "alloc-many-%d", (int)getpid());
    shoal_config c = shoal_test_config();
    c.name = name;
    c.store_bytes = 16u << 20;
    ASSERT_OK(shoal_init(&c));
    /* Full to the last byte: large objects, then ever smaller ones into what is left. */
    enum { MAX = 1 << 20 };
    shoal_ref *refs = calloc(MAX, sizeof *refs);
    CU_ASSERT_FATAL(refs != NULL);
    int n = 0;
    for (size_t len = 64 << 10; len >= 64; len /= 4)
        n += fill(refs + n, MAX - n, len);
    shoal_ref extra;
    CHECK_RC(shoal_put("x", 1, &extra), SHOAL_ENOMEM);
    shoal_info full = info_now();
    fprintf(stderr, "full store: %d objects, %zu of %zu bytes\n", n, full.bytes_used,
            full.store_bytes);

    int res[2], hold[2];
    CU_ASSERT_FATAL(pipe2(res, O_CLOEXEC) == 0 && pipe2(hold, O_CLOEXEC) == 0);
    pid_t pids[CLIENTS];
    int spawned = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* The child keeps its ends: dup them onto themselves to clear close-on-exec. */
    posix_spawn_file_actions_adddup2(&fa, res[1], 100);
    posix_spawn_file_actions_adddup2(&fa, hold[0], 101);
    for (int k = 0; k < CLIENTS; k++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        char *argv[] = { "test_attach_many", "--client", name, idx, NULL };
        if (posix_spawn(&pids[k], "/proc/self/exe", &fa, NULL, argv, environ) != 0)
            break;
        spawned++;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(res[1]);
    close(hold[0]);
    CU_ASSERT_EQUAL(spawned, CLIENTS);

    int ok = 0, answered = 0;
    struct pollfd pf = { res[0], POLLIN, 0 };
    while (answered < spawned && poll(&pf, 1, 120000) == 1) {
        struct report r;
        if (read(res[0], &r, sizeof r) != (ssize_t)sizeof r)
            break;
        answered++;
        if (r.rc == 0)
            ok++;
        else if (answered - ok <= 3)
            fprintf(stderr, "client %d: attach = %d: %s\n", r.idx, r.rc, r.msg);
    }
    fprintf(stderr, "%d of %d clients attached to the full store\n", ok, spawned);
    CU_ASSERT_EQUAL(answered, spawned);
    CU_ASSERT_EQUAL(ok, spawned);
    /* Attaching took nothing from the store. */
    shoal_info during = info_now();
    CU_ASSERT_EQUAL(during.bytes_used, full.bytes_used);
    CU_ASSERT_EQUAL(during.objects_live, full.objects_live);

    /* A tool attaches to the full store too (beside all those clients). */
    char tool[4096], cmd[4200], out[8192];
    test_sibling(tool, sizeof tool, "tools", "shoal-stat");
    snprintf(cmd, sizeof cmd, "timeout 60 %s %s 2>&1", tool, name);
    int trc = test_run_cmd(cmd, out, sizeof out);
    if (trc != 0)
        fprintf(stderr, "shoal-stat on the full store: exit %d:\n%s\n", trc, out);
    CU_ASSERT_EQUAL(trc, 0);

    close(hold[1]);   /* every client detaches */
    int clean = 0;
    for (int k = 0; k < spawned; k++) {
        int st = 0;
        if (waitpid(pids[k], &st, 0) == pids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            clean++;
    }
    CU_ASSERT_EQUAL(clean, ok);
    close(res[0]);
    for (int k = 0; k < n; k++)
        CHECK_OK(shoal_release(refs[k]));
    free(refs);
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    CHECK_OK(shoal_shutdown());
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--client") == 0)
        return client_main(argv[2], atoi(argv[3]), 100, 101);
    if (test_private_run_dir(g_dir, sizeof g_dir) != 0)   /* for the clients and the tool */
        return 2;
    signal(SIGPIPE, SIG_IGN);
    static const shoal_test_case cases[] = {
        { "150 clients and shoal-stat attach to a full store", t_many_clients_on_full_store },
        { NULL, NULL },
    };
    int rc = shoal_test_run("attach_many", cases);
    rmdir(g_dir);
    return rc;
}
