/* proto.h - the attach protocol on a store's Unix socket: message framing, the handshake
 * structs and their checks. Pure functions with no I/O, so that tests/fuzz can feed them
 * anything. Internal: never installed.
 *
 * Every message is a 16-byte header then a fixed-size body of the type's size:
 *   client -> owner  HELLO    {lib_version, pid, flags}        (first message, once)
 *   owner -> client  WELCOME  {proc, inc, sizes...}  with SCM_RIGHTS fds: segment, holds,
 *                                                    then one per NUMA node
 *                    REJECT   {code, message}        the layout of REJECT never changes, so
 *                                                    a peer of another version can read why
 *   client -> owner  BYE      {}                     detaching cleanly (then it closes)
 *                    PING     {}  -> owner PONG {}   liveness, for tools
 * A header with a wrong magic, an unknown type or a wrong body size ends the connection.
 * A wrong version in a HELLO is answered REJECT(SHOAL_EPROTO).
 */
#ifndef SHOAL_CORE_PROTO_H
#define SHOAL_CORE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SHOAL__PROTO_MAGIC   UINT32_C(0x4c4f4853)   /* "SHOL" little-endian */
#define SHOAL__PROTO_VERSION 2u   /* the wire format; the client checks the segment's own
                                     version (SHOAL__SEG_VERSION) once it has mapped it */
#define SHOAL__MSG_MAX       512                     /* header + the largest body */
#define SHOAL__MAX_FDS       (2 + 16)                /* segment, holds, a node each */

enum shoal__msg_type {
    SHOAL__MSG_HELLO = 1,
    SHOAL__MSG_WELCOME = 2,
    SHOAL__MSG_REJECT = 3,
    SHOAL__MSG_BYE = 4,
    SHOAL__MSG_PING = 5,
    SHOAL__MSG_PONG = 6,
};

struct shoal__msg_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t len;        /* body bytes */
    uint32_t zero;       /* must be 0 */
};

#define SHOAL__HELLO_TOOL 1u   /* a tool (shoal-stat): listed as such */

struct shoal__hello {
    uint32_t lib_version;   /* SHOAL_VERSION_MAJOR << 16 | MINOR << 8 | PATCH */
    int32_t  pid;
    uint32_t flags;         /* SHOAL__HELLO_*; unknown bits are refused */
    uint32_t zero;
};

struct shoal__welcome {
    uint32_t proc;          /* the client's process index, 1..255 */
    uint32_t inc;           /* its incarnation (chunk-map owner id) */
    uint32_t nnodes;
    uint32_t nfds;          /* 2 + nnodes */
    uint64_t seg_len;
    uint64_t node_span;
    uint64_t nslots;
    uint64_t holds_len;     /* shoal__ledger_bytes(nslots): entries, then windows */
    int32_t  owner_pid;
    uint32_t zero;
};

struct shoal__reject {
    int32_t code;           /* a SHOAL_E* code */
    char    msg[200];       /* NUL-terminated within the array */
};

union shoal__msg_body {
    struct shoal__hello hello;
    struct shoal__welcome welcome;
    struct shoal__reject reject;
};

struct shoal__msg {
    struct shoal__msg_hdr h;
    union shoal__msg_body b;
};

_Static_assert(sizeof(struct shoal__msg_hdr) == 16, "wire layout");
_Static_assert(sizeof(struct shoal__hello) == 16, "wire layout");
_Static_assert(sizeof(struct shoal__welcome) == 56, "wire layout");
_Static_assert(sizeof(struct shoal__reject) == 204, "wire layout");
_Static_assert(sizeof(struct shoal__msg) <= SHOAL__MSG_MAX, "fits the receive buffer");

/* Bytes a connection has received and not yet parsed. */
struct shoal__rx {
    uint32_t len;
    unsigned char buf[SHOAL__MSG_MAX];
};

/* Fill a message's header for type (body size from the type). Returns the total size. */
size_t shoal__msg_init(struct shoal__msg *m, unsigned type);
/* Take the next whole message out of rx into *out. Returns 1 (a message), 0 (need more
 * bytes) or a negative SHOAL_E* code: SHOAL_EPROTO for bytes that are not this protocol, or
 * a known message of another version (out->h is then filled so the caller can answer). */
int shoal__rx_next(struct shoal__rx *rx, struct shoal__msg *out);

/* The owner's side of one connection: what to do with the next message. */
enum shoal__conn_state { SHOAL__CONN_HANDSHAKE = 0, SHOAL__CONN_ATTACHED = 1, SHOAL__CONN_CLOSED = 2 };
enum shoal__conn_act {
    SHOAL__ACT_NONE = 0,
    SHOAL__ACT_WELCOME,    /* a valid HELLO: attach it (the caller may still reject it) */
    SHOAL__ACT_REJECT,     /* answer REJECT(*code, why) and close */
    SHOAL__ACT_PONG,
    SHOAL__ACT_BYE,        /* the client detaches: release what it holds, close */
    SHOAL__ACT_CLOSE,      /* protocol violation: treat as gone, close */
};
/* rc: what shoal__rx_next returned for m. Advances *state. why: a static string. */
enum shoal__conn_act shoal__conn_step(int *state, int rc, const struct shoal__msg *m,
                                      int32_t *code, const char **why);

/* The client's check of the owner's answer (rc from shoal__rx_next): 0 for a usable
 * WELCOME, else the SHOAL_E* code to fail with and *why. nfds: descriptors received. */
int shoal__welcome_check(int rc, const struct shoal__msg *m, unsigned nfds, const char **why);

#endif
