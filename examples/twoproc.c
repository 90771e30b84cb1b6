/* twoproc.c - two processes sharing one store. The parent publishes its store under a name
 * (config.name) and puts a message; the child attaches to the store by that name, gets the
 * message through a ref that came over a pipe as 8 bytes, and answers with an object of
 * its own. A ref is only an ID: the bytes never cross the pipe, both processes read them
 * in the shared store.
 *
 * An encoded ref carries no reference of its own, so the sender keeps the object alive for
 * the receiver: it retains before sending, and the receiver releases when done.
 * The child is forked before shoal_init: a process with running workers must not fork.
 */
#include <shoal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int send_ref(int fd, shoal_ref r)
{
    unsigned char b[8];
    shoal_ref_encode(r, b);
    return write(fd, b, sizeof b) == (ssize_t)sizeof b ? 0 : -1;
}

static int recv_ref(int fd, shoal_ref *r)
{
    unsigned char b[8];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = read(fd, b + got, sizeof b - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    *r = shoal_ref_decode(b);
    return 0;
}

static int report(const char *who, const char *what, int rc)
{
    fprintf(stderr, "twoproc %s: %s: %s: %s\n", who, what, shoal_strerror(rc),
            shoal_last_error());
    return 1;
}

/* The child: attach, read the parent's message, answer with an object of its own. */
static int child(const char *name, int in, int out)
{
    shoal_ref msg, reply;
    const void *data;
    size_t len;
    char text[128];
    if (recv_ref(in, &msg) != 0)
        return 1;                      /* the parent could not start its store */
    int rc = shoal_attach(name);
    if (rc) {
        report("child", "shoal_attach", rc);
        return 3;                      /* the parent says what this means */
    }
    if ((rc = shoal_get(msg, &data, &len)))
        return report("child", "shoal_get", rc);
    printf("child %ld: got \"%.*s\" from the shared store\n", (long)getpid(), (int)len,
           (const char *)data);
    fflush(stdout);
    shoal_release(msg);                /* the reference the parent took for us */
    snprintf(text, sizeof text, "reply from process %ld", (long)getpid());
    if ((rc = shoal_put(text, strlen(text), &reply)))
        return report("child", "shoal_put", rc);
    if (send_ref(out, reply) != 0)
        return 1;
    char ack;
    if (read(in, &ack, 1) != 1)        /* the parent has read the reply: ours can go */
        return 1;
    shoal_release(reply);
    return shoal_shutdown() != 0;      /* detach; the parent's store lives on */
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "shoal-twoproc-%ld", (long)getpid());
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0) {
        perror("twoproc: pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("twoproc: fork");
        return 1;
    }
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        exit(child(name, down[0], up[1]));
    }
    close(down[0]);
    close(up[1]);

    shoal_config cfg = { .store_bytes = 64u << 20, .workers = 1, .name = name };
    shoal_ref msg, reply;
    const void *data;
    size_t len;
    char text[128];
    int rc = shoal_init(&cfg), status = 1;
    if (rc) {
        report("parent", "shoal_init", rc);
        close(down[1]);                /* the child sees EOF and exits */
        waitpid(pid, NULL, 0);
        return 1;
    }
    snprintf(text, sizeof text, "hello from process %ld", (long)getpid());
    if ((rc = shoal_put(text, strlen(text), &msg)) || (rc = shoal_retain(msg))) {
        report("parent", "shoal_put", rc);
        goto out;
    }
    if (send_ref(down[1], msg) != 0 || recv_ref(up[0], &reply) != 0) {
        int st = 0;
        close(down[1]);
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
            fprintf(stderr, "twoproc: the child could not attach to \"%s\": multi-process "
                            "stores do not work in this build (see its message above)\n", name);
        else
            fprintf(stderr, "twoproc: the child did not answer\n");
        pid = -1;
        goto out;
    }
    if ((rc = shoal_get(reply, &data, &len))) {
        report("parent", "shoal_get of the child's reply", rc);
        goto out;
    }
    printf("parent %ld: got \"%.*s\" from the shared store\n", (long)getpid(), (int)len,
           (const char *)data);
    status = 0;
out:
    if (pid > 0) {
        int st = 0;
        if (write(down[1], "k", 1) != 1)
            status = 1;
        close(down[1]);
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            status = 1;
    }
    if (status == 0) {
        /* The child released the reference we took for it; ours is the last. */
        shoal_release(msg);
        rc = shoal_get_timeout(msg, 0, &data, &len);
        printf("twoproc: %s\n", rc == SHOAL_ESTALE ? "ok: the message was freed with its last "
               "reference, held across two processes" : "the message outlived its references");
        status = rc == SHOAL_ESTALE ? 0 : 1;
    }
    return (shoal_shutdown() != 0) | status;
}
