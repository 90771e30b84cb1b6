/* client.c - attach's client side: connect to the owner's socket and check who serves it,
 * then the handshake: HELLO out, the welcome and the descriptors that come with it in.
 * runtime/attach.c maps what it is given and starts the client's runtime.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "mproc.h"
#include "proto.h"

#define ANSWER_TIMEOUT_S 5   /* an owner that accepts but never answers: give up */

void shoal__fds_close(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int shoal__client_connect(const char *path, const char *name, int *out)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return shoal__err(SHOAL_EIO, "shoal_attach: socket: %s", strerror(errno));
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            return shoal__err(SHOAL_ENOENT, "shoal_attach: no store named '%s' is published "
                                            "(nothing listens on %s): start its owner with "
                                            "shoal_config.name = \"%s\"", name, path, name);
        if (e == EACCES || e == EPERM)
            return shoal__err(SHOAL_EPERM, "shoal_attach: permission denied on %s: the store "
                                           "'%s' belongs to another user", path, name);
        return shoal__err(SHOAL_EIO, "shoal_attach: connect %s: %s", path, strerror(e));
    }
    /* The owner must be this user: attaching lets the store's processes write memory this
     * process uses (include/shoal.h, trust), so root too attaches to root's stores only. */
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
        close(fd);
        return shoal__err(SHOAL_EPERM, "shoal_attach: the process serving '%s' runs as uid %u, "
                                       "not as this user (uid %u): a store is shared by one "
                                       "user's processes only", name, (unsigned)cr.uid,
                          (unsigned)geteuid());
    }
    struct timeval tv = { ANSWER_TIMEOUT_S, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    *out = fd;
    return 0;
}

int shoal__client_hello(int sock, const char *name, unsigned flags, struct shoal__msg *m,
                         int *fds, unsigned *nfds)
{
    struct shoal__msg h;
    size_t n = shoal__msg_init(&h, SHOAL__MSG_HELLO);
    h.b.hello.lib_version = (SHOAL_VERSION_MAJOR << 16) | (SHOAL_VERSION_MINOR << 8) |
                            SHOAL_VERSION_PATCH;
    h.b.hello.pid = (int32_t)getpid();
    h.b.hello.flags = flags;
    /* A refusal may come before our HELLO is read (the owner answers at accept and closes):
     * the send then fails, but the answer is waiting to be read, and says why. */
    int send_err = send(sock, &h, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : errno;
    struct shoal__rx rx;
    rx.len = 0;
    *nfds = 0;
    int rc = 0;
    for (;;) {
        union { char buf[CMSG_SPACE(sizeof(int) * SHOAL__MAX_FDS)]; struct cmsghdr align; } u;
        struct iovec iov = { rx.buf + rx.len, sizeof rx.buf - rx.len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf };
        ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r == 0 && rx.len == 0 && send_err)) {
            int e = r < 0 ? errno : send_err;
            shoal__fds_close(fds, *nfds);
            *nfds = 0;
            if (send_err)
                return shoal__err(SHOAL_EIO, "shoal_attach '%s': cannot send the handshake "
                                  "(%s) and the owner said nothing", name, strerror(send_err));
            return shoal__err(e == EAGAIN || e == EWOULDBLOCK ? SHOAL_EPROTO : SHOAL_EIO,
                              "shoal_attach '%s': no answer from the owner (%s)", name,
                              e == EAGAIN ? "it did not answer within 5 s" : strerror(e));
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int got[SHOAL__MAX_FDS];
            memcpy(got, CMSG_DATA(cm), sizeof(int) * (k < SHOAL__MAX_FDS ? k : SHOAL__MAX_FDS));
            for (unsigned i = 0; i < k && i < SHOAL__MAX_FDS; i++) {
                if (*nfds < SHOAL__MAX_FDS)
                    fds[(*nfds)++] = got[i];
                else
                    close(got[i]);
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            shoal__fds_close(fds, *nfds);
            *nfds = 0;
            return shoal__err(SHOAL_EPROTO, "shoal_attach '%s': the owner sent more "
                                            "descriptors than the protocol allows", name);
        }
        rx.len += (uint32_t)r;
        rc = shoal__rx_next(&rx, m);
        if (rc != 0 || r == 0)
            break;
    }
    const char *why;
    int code = shoal__welcome_check(rc, m, *nfds, &why);
    if (code) {
        shoal__fds_close(fds, *nfds);
        *nfds = 0;
        return shoal__err(code, "shoal_attach '%s': %s", name, why);
    }
    return 0;
}
