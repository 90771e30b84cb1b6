/* test_mp_wait.c - waiting across processes (issue 11): a client's shoal_write_file of an
 * object another process completes later finishes (the owner's, another client's, and one
 * that fails), and a client blocked in shoal_get or shoal_wait when its owner dies or shuts
 * down wakes with a clear error; every later call says the owner is gone, and the bytes it
 * already had stay readable.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mp.h"

#define LONG_NS (20 * 1000000000ll)   /* a hang turns into a failure after this */

/* The file at path holds exactly the pattern (who, seq) of n bytes. */
static int file_has(const char *path, size_t n, uint64_t who, uint64_t seq)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    unsigned char *b = malloc(n + 1);
    ssize_t got = read(fd, b, n + 1);
    close(fd);
    int ok = got == (ssize_t)n && pat_ok(b, n, who, seq);
    free(b);
    return ok;
}

/* 11.3: a client writes out an object the owner seals later: its write finishes. */
static void test_client_write_file_of_owner_object(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    void *buf;
    shoal_ref src;
    ASSERT_OK(shoal_create(5000, &buf, &src));
    char path[96];
    snprintf(path, sizeof path, "%s/from-owner", mp_dir);
    struct mp_child c = mp_attached();
    struct mp_rep m = mp_call_s(&c, MP_WRITE_FILE, mp_ref_bits(src), 0, path);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    uint64_t done = m.a;
    CU_ASSERT_EQUAL(mp_call(&c, MP_GET_TIMEOUT, done, 1000000, 0, 0).rc, SHOAL_ETIMEDOUT);
    pat_fill(buf, 5000, 31, 1);
    ASSERT_OK(shoal_seal(src));
    m = mp_call(&c, MP_GET_TIMEOUT, done, LONG_NS, 0, 0);
    CU_ASSERT_EQUAL(m.rc, 0);
    if (m.rc)
        fprintf(stderr, "the client's write_file: %lld (%s)\n", (long long)m.rc, m.msg);
    CU_ASSERT(file_has(path, 5000, 31, 1));
    CU_ASSERT_EQUAL(mp_call(&c, MP_RELEASE, done, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_call(&c, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&c), 0);
    CHECK_OK(shoal_release(src));
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    unlink(path);
    CHECK_OK(shoal_shutdown());
}

/* 11.3: the same between two clients, and with a shoal_wait on the result; and when the
 * object fails (its creator dies), the write fails too instead of waiting for ever. */
static void test_client_write_file_of_client_object(void)
{
    mp_owner_start();
    shoal_info i0 = info_now();
    char path[96];
    snprintf(path, sizeof path, "%s/from-client", mp_dir);
    struct mp_child a = mp_attached(), b = mp_attached();
    struct mp_rep m = mp_call(&a, MP_CREATE, 70000, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    uint64_t src = m.a;
    m = mp_call_s(&b, MP_WRITE_FILE, src, 0, path);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    uint64_t done = m.a;
    CU_ASSERT_EQUAL(mp_call(&b, MP_WAIT, done, 1000000, 0, 0).rc, 0);   /* none ready yet */
    CU_ASSERT_EQUAL(mp_call(&a, MP_FILL_SEAL, src, 32, 2, 0).rc, 0);
    m = mp_call(&b, MP_WAIT, done, LONG_NS, 0, 0);
    CU_ASSERT_EQUAL(m.rc, 1);
    CU_ASSERT_EQUAL(mp_call(&b, MP_GET_TIMEOUT, done, 0, 0, 0).rc, 0);
    CU_ASSERT(file_has(path, 70000, 32, 2));
    CU_ASSERT_EQUAL(mp_call(&b, MP_RELEASE, done, 0, 0, 0).rc, 0);
    /* The creator dies before sealing: the write fails with the object's error. */
    m = mp_call(&a, MP_CREATE, 100, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    m = mp_call_s(&b, MP_WRITE_FILE, m.a, 0, path);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    done = m.a;
    CU_ASSERT_EQUAL(mp_kill(&a), 128 + SIGKILL);
    m = mp_call(&b, MP_GET_TIMEOUT, done, LONG_NS, 0, 0);
    CU_ASSERT(m.rc == SHOAL_ECANCELED || m.rc == SHOAL_EIO);
    if (m.rc != SHOAL_ECANCELED && m.rc != SHOAL_EIO)
        fprintf(stderr, "write_file of a dead creator's object: %lld (%s)\n", (long long)m.rc,
                m.msg);
    CU_ASSERT_EQUAL(mp_call(&b, MP_RELEASE, done, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_call(&b, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    CU_ASSERT_EQUAL(mp_reap(&b), 0);
    CU_ASSERT(mp_settle(i0.bytes_used, i0.objects_live, "all released"));
    unlink(path);
    CHECK_OK(shoal_shutdown());
}

struct blocked { shoal_ref r; bool wait; int rc; char msg[256]; };

static void *block_on(void *p)
{
    struct blocked *b = p;
    const void *d;
    size_t n;
    if (b->wait) {
        bool ready = false;
        b->rc = shoal_wait(&b->r, 1, 1, LONG_NS, &ready);
    } else {
        b->rc = shoal_get_timeout(b->r, LONG_NS, &d, &n);
    }
    snprintf(b->msg, sizeof b->msg, "%s", shoal_last_error());
    return NULL;
}

/* The owner is a child; this process attaches, reads one object and blocks in a get and a
 * wait on an object the owner never completes; then the owner goes (killed, or shut down). */
static void owner_goes(bool killed)
{
    test_reset();
    mp_new_name();
    struct mp_child o = mp_spawn();
    CU_ASSERT_FATAL(o.pid > 0);
    CU_ASSERT_EQUAL_FATAL(mp_call(&o, MP_INIT, 0, 0, 0, 0).rc, 0);
    struct mp_rep m = mp_call(&o, MP_PUT, 3000, 33, 1, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref kept = mp_bits_ref(m.a);
    m = mp_call(&o, MP_CREATE, 100, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(m.rc, 0);
    shoal_ref never = mp_bits_ref(m.a);
    ASSERT_OK(shoal_attach(mp_name));
    const void *d;
    size_t n;
    ASSERT_OK(shoal_get(kept, &d, &n));
    CU_ASSERT(n == 3000 && pat_ok(d, n, 33, 1));
    struct blocked g = { never, false, 1, "" }, w = { never, true, 1, "" };
    pthread_t tg, tw;
    pthread_create(&tg, NULL, block_on, &g);
    pthread_create(&tw, NULL, block_on, &w);
    usleep(50000);   /* not needed for correctness: lets both block before the owner goes */
    if (killed) {
        CU_ASSERT_EQUAL(mp_kill(&o), 128 + SIGKILL);
    } else {
        CU_ASSERT_EQUAL(mp_call(&o, MP_SHUTDOWN, 0, 0, 0, 0).rc, 0);
    }
    pthread_join(tg, NULL);
    pthread_join(tw, NULL);
    CU_ASSERT_EQUAL(g.rc, SHOAL_ECANCELED);
    CU_ASSERT_EQUAL(w.rc, SHOAL_ECANCELED);
    CU_ASSERT(strstr(g.msg, "owner") != NULL && strstr(g.msg, "shoal_shutdown") != NULL);
    if (g.rc != SHOAL_ECANCELED || w.rc != SHOAL_ECANCELED)
        fprintf(stderr, "blocked get: %d (%s); wait: %d (%s)\n", g.rc, g.msg, w.rc, w.msg);
    /* Every later call says so; the bytes read before stay readable until detaching. */
    shoal_ref r;
    CHECK_RC(shoal_put("x", 1, &r), SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), "owner") != NULL);
    CU_ASSERT(strstr(shoal_last_error(), killed ? "exited" : "shut down") != NULL);
    CHECK_RC(shoal_get_timeout(kept, 0, &d, &n), SHOAL_ECANCELED);
    CU_ASSERT(strstr(shoal_last_error(), "owner") != NULL);
    CHECK_RC(shoal_release(kept), SHOAL_ECANCELED);
    CU_ASSERT(pat_ok(d, 3000, 33, 1));
    CHECK_OK(shoal_shutdown());
    if (!killed) {
        CU_ASSERT_EQUAL(mp_reap(&o), 0);
    }
}

/* 11.6 */
static void test_owner_killed_under_blocked_calls(void) { owner_goes(true); }
static void test_owner_shutdown_under_blocked_calls(void) { owner_goes(false); }

static const shoal_test_case cases[] = {
    { "client_write_file_of_owner_object", test_client_write_file_of_owner_object },
    { "client_write_file_of_client_object", test_client_write_file_of_client_object },
    { "owner_killed_under_blocked_calls", test_owner_killed_under_blocked_calls },
    { "owner_shutdown_under_blocked_calls", test_owner_shutdown_under_blocked_calls },
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (mp_is_child(argc, argv))
        return mp_child_main(argv);
    return mp_run("mp_wait", cases);
}
