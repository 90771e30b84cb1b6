/* handoff.c - a producer process hands frames to a consumer process through a pipe, and
 * goes away without waiting for them. The parent publishes a store and consumes; a child
 * attaches, puts each frame, passes its ref to shoal_transfer and writes the 8 bytes to
 * the pipe, then detaches (or, with "kill", SIGKILLs itself right after the last write).
 * The consumer reads each ref, shoal_accepts it (the reference the producer put in flight
 * becomes its own), checks the bytes and releases it. No frame is lost, although the
 * producer is gone before most of them are read.
 *
 *   handoff [frames] [detach|kill|plain]
 * "plain" is what happens without shoal_transfer: the producer releases each frame after
 * writing its ref, and the consumer's shoal_retain races that release (it mostly loses).
 * Prints frames/s from the first put to the last frame consumed, and how many were lost;
 * fails (exit 1) when, once every frame is released, the store is not back to the objects
 * and bytes it started with (in every mode: "plain" frees what it loses, too).
 * The child is forked before shoal_init: a process with running workers must not fork.
 */
#include <shoal.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { FRAME = 1024 };
enum mode { DETACH, KILL, PLAIN };
#define TTL_NS (30ll * 1000000000)   /* a frame nobody takes is released after 30 s */

static int xfer(int fd, void *p, size_t n, int writing)
{
    for (size_t done = 0; done < n;) {
        ssize_t k = writing ? write(fd, (char *)p + done, n - done) : read(fd, (char *)p + done, n - done);
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    return 0;
}

static void frame_fill(unsigned char *b, uint64_t k)
{
    for (size_t i = 0; i < FRAME; i++)
        b[i] = (unsigned char)(k * 131 + i * 7);
}

static int frame_ok(const unsigned char *b, size_t n, uint64_t k)
{
    if (n != FRAME)
        return 0;
    for (size_t i = 0; i < FRAME; i++)
        if (b[i] != (unsigned char)(k * 131 + i * 7))
            return 0;
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The producer: attach once the parent says the store is up, then put, transfer, write. */
static int producer(const char *name, long frames, enum mode mode, int go, int out)
{
    char ok;
    if (read(go, &ok, 1) != 1)
        return 1;                     /* the parent could not start its store */
    int rc = shoal_attach(name);
    if (rc) {
        fprintf(stderr, "handoff producer: shoal_attach: %s\n", shoal_last_error());
        return 3;
    }
    static unsigned char buf[FRAME];
    for (long k = 0; k < frames; k++) {
        shoal_ref r;
        frame_fill(buf, (uint64_t)k);
        if ((rc = shoal_put(buf, FRAME, &r))) {
            fprintf(stderr, "handoff producer: shoal_put: %s\n", shoal_last_error());
            return 1;
        }
        /* The put's reference goes in flight: from here the store holds it, not us. */
        if (mode != PLAIN && (rc = shoal_transfer(r, TTL_NS))) {
            fprintf(stderr, "handoff producer: shoal_transfer: %s\n", shoal_last_error());
            return 1;
        }
        unsigned char e[8];
        shoal_ref_encode(r, e);
        if (xfer(out, e, 8, 1) != 0)
            return 1;
        if (mode == PLAIN)
            shoal_release(r);         /* without a transfer this frees the frame */
    }
    if (mode == KILL)
        raise(SIGKILL);               /* gone at once: no detach, nothing released */
    return shoal_shutdown() != 0;     /* detach: the frames in flight stay */
}

int main(int argc, char **argv)
{
    long frames = argc > 1 ? atol(argv[1]) : 10000;
    enum mode mode = DETACH;
    if (argc > 2)
        mode = !strcmp(argv[2], "kill") ? KILL : !strcmp(argv[2], "plain") ? PLAIN
               : !strcmp(argv[2], "detach") ? DETACH : (enum mode)-1;
    if (frames < 1 || frames > 1000000 || (int)mode < 0 || argc > 3) {
        fprintf(stderr, "usage: handoff [frames (1..1000000, default 10000)] [detach|kill|plain]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "shoal-handoff-%ld", (long)getpid());
    int go[2], refs[2];
    if (pipe(go) != 0 || pipe(refs) != 0) {
        perror("handoff: pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("handoff: fork");
        return 1;
    }
    if (pid == 0) {
        close(go[1]);
        close(refs[0]);
        _exit(producer(name, frames, mode, go[0], refs[1]));
    }
    close(go[0]);
    close(refs[1]);

    /* Room for every frame at once: the producer may be far ahead of us. */
    shoal_config cfg = { .store_bytes = (size_t)frames * 2 * FRAME + (64u << 20), .workers = 1,
                         .name = name };
    int rc = shoal_init(&cfg);
    if (rc) {
        fprintf(stderr, "handoff: shoal_init: %s\n", shoal_last_error());
        close(go[1]);
        waitpid(pid, NULL, 0);
        return 1;
    }
    shoal_info before;
    shoal_info_get(&before);
    double t0 = now_s();
    long taken = 0, lost = 0, bad = 0;
    if (write(go[1], "g", 1) != 1)
        lost = frames;
    for (long k = 0; k < frames && lost < frames; k++) {
        unsigned char e[8];
        if (xfer(refs[0], e, 8, 0) != 0) {
            lost += frames - k;       /* the producer stopped early */
            break;
        }
        shoal_ref r = shoal_ref_decode(e);
        /* Take the reference in flight (plain: try to take one of our own, too late). */
        rc = mode == PLAIN ? shoal_retain(r) : shoal_accept(r);
        if (rc) {
            lost++;
            continue;
        }
        const void *d;
        size_t n;
        if (shoal_get(r, &d, &n) != 0 || !frame_ok(d, n, (uint64_t)k))
            bad++;
        else
            taken++;
        shoal_release(r);
    }
    double secs = now_s() - t0;
    close(go[1]);
    int st = 0;
    waitpid(pid, &st, 0);
    int gone_ok = mode == KILL ? WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                               : WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!gone_ok && WIFEXITED(st) && WEXITSTATUS(st) == 3)
        fprintf(stderr, "handoff: the producer could not attach to \"%s\"\n", name);
    /* A killed producer's leftovers (its share of the counts, frames it freed from our
     * side, its chunks) are the owner's to clean up, which it does a moment after the
     * death. Every frame is released by now, so the store must come back to where it
     * started: its objects and its bytes (up to 30 s, a bound for a loaded machine). */
    shoal_info after;
    for (int i = 0; i < 30000; i++) {
        shoal_info_get(&after);
        if (after.objects_live == before.objects_live && after.bytes_used == before.bytes_used)
            break;
        usleep(1000);
    }
    long left_objs = (long)(after.objects_live - before.objects_live),
         left_bytes = (long)after.bytes_used - (long)before.bytes_used;
    printf("handoff: %ld frames of %d bytes, producer %s: %ld consumed, %ld lost, %ld wrong, "
           "%.0f frames/s\n", frames, FRAME,
           mode == KILL ? "SIGKILLed after its last write" : mode == PLAIN
           ? "released each frame after writing (no shoal_transfer)" : "detached after its last write",
           taken, lost, bad, (double)frames / secs);
    if (left_objs || left_bytes)
        printf("handoff: left behind after the consumer was done: %ld objects, %ld bytes\n",
               left_objs, left_bytes);
    int ok = gone_ok && bad == 0 && (mode == PLAIN || (lost == 0 && taken == frames)) &&
             left_objs == 0 && left_bytes == 0;
    if (mode != PLAIN)
        printf("handoff: %s\n", ok ? "ok: every frame survived its producer"
                                   : "FAILED: frames were lost or left behind");
    else if (!ok)
        printf("handoff: FAILED: %s\n", bad ? "a frame read back wrong"
               : "the store did not come back to its starting objects and bytes");
    return (shoal_shutdown() != 0) | !ok;
}
