/* fuzz_owner.c - libFuzzer target for the attach protocol (`make fuzz`). Each input is sent,
 * as a client would, to a real published store running in this process: the owner's
 * service thread parses it (handshake, control messages), may attach and then drop the
 * "client", and must never crash, hang or leak; the input is then also fed in pieces to the
 * framing and to the client's check of an owner's answer. The corpus lives in
 * tests/fuzz/corpus (seeds: a valid HELLO, HELLO+PING+BYE, a HELLO of another version).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shoal.h"
#include "../../mproc/proto.h"

static char sock_path[108];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    static char dir[] = "/tmp/shoal-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    setenv("SHOAL_RUN_DIR", dir, 1);
    setenv("SHOAL_QUIET", "1", 1);
    shoal_config c;
    memset(&c, 0, sizeof c);
    c.store_bytes = 64u << 20;
    c.workers = 1;
    c.name = "fuzz";
    if (shoal_init(&c) != 0) {
        fprintf(stderr, "fuzz_owner: shoal_init: %s\n", shoal_last_error());
        abort();
    }
    snprintf(sock_path, sizeof sock_path, "%s/shoal-fuzz.sock", dir);
    return 0;
}

/* The owner's side, for real: one connection per input. */
static void send_to_owner(const uint8_t *data, size_t size)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "fuzz_owner: the owner stopped answering: %s\n", strerror(errno));
        abort();
    }
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* A pid field that names us, where the input has a HELLO at the front. */
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;   /* the owner closed on us: fine */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    /* Read until the owner closes: it has then handled everything (and cleaned up after a
     * "client" it welcomed). Descriptors it sent are discarded by plain reads. */
    char buf[1024];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) {
            fprintf(stderr, "fuzz_owner: the owner did not close a finished connection\n");
            abort();
        }
        break;
    }
    close(fd);
}

/* The framing and both ends' checks, fed in pieces whose sizes come from the input. */
static void parse_in_pieces(const uint8_t *data, size_t size)
{
    struct shoal__rx rx;
    rx.len = 0;
    int state = SHOAL__CONN_HANDSHAKE;
    size_t off = 0;
    unsigned step = size ? data[0] : 1;
    while (off < size && state != SHOAL__CONN_CLOSED) {
        size_t piece = 1 + (step = step * 33u + 7u) % 97u;
        if (piece > size - off)
            piece = size - off;
        if (piece > sizeof rx.buf - rx.len)
            piece = sizeof rx.buf - rx.len;
        memcpy(rx.buf + rx.len, data + off, piece);
        rx.len += (uint32_t)piece;
        off += piece;
        struct shoal__msg m;
        int rc;
        while ((rc = shoal__rx_next(&rx, &m)) != 0) {
            if (rx.len > sizeof rx.buf)
                abort();
            int32_t code;
            const char *why;
            shoal__conn_step(&state, rc, &m, &code, &why);
            if (why == NULL || strlen(why) > 300)
                abort();
            const char *cwhy;
            int c = shoal__welcome_check(rc, &m, (unsigned)(step % 20), &cwhy);
            if (c > 0 || cwhy == NULL)
                abort();
            if (rc < 0 || state == SHOAL__CONN_CLOSED)
                break;
        }
        if (rc < 0)
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    parse_in_pieces(data, size);
    send_to_owner(data, size);
    return 0;
}
