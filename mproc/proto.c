/* proto.c - framing and checks of the attach protocol (mproc/proto.h). No I/O and no global
 * state: the owner's service thread, the client's attach and tests/fuzz all call these.
 * Every length and field is checked before use; nothing here trusts the peer.
 */
#include "proto.h"
#include "../layout/mpseg.h"

#include <string.h>

#include "shoal.h"

static size_t body_size(unsigned type)
{
    switch (type) {
    case SHOAL__MSG_HELLO:   return sizeof(struct shoal__hello);
    case SHOAL__MSG_WELCOME: return sizeof(struct shoal__welcome);
    case SHOAL__MSG_REJECT:  return sizeof(struct shoal__reject);
    case SHOAL__MSG_BYE:
    case SHOAL__MSG_PING:
    case SHOAL__MSG_PONG:    return 0;
    default:                 return (size_t)-1;
    }
}

size_t shoal__msg_init(struct shoal__msg *m, unsigned type)
{
    memset(m, 0, sizeof *m);
    size_t n = body_size(type);
    if (n == (size_t)-1)
        n = 0;
    m->h.magic = SHOAL__PROTO_MAGIC;
    m->h.version = SHOAL__PROTO_VERSION;
    m->h.type = (uint16_t)type;
    m->h.len = (uint32_t)n;
    return sizeof m->h + n;
}

int shoal__rx_next(struct shoal__rx *rx, struct shoal__msg *out)
{
    if (rx->len > sizeof rx->buf)
        return SHOAL_EPROTO;   /* the caller broke the buffer: refuse rather than read past */
    if (rx->len < sizeof out->h)
        return 0;
    memset(out, 0, sizeof *out);
    memcpy(&out->h, rx->buf, sizeof out->h);
    if (out->h.magic != SHOAL__PROTO_MAGIC)
        return SHOAL_EPROTO;
    size_t want = body_size(out->h.type);
    /* A REJECT keeps its layout in every version, so a peer can always read why. */
    if (out->h.version != SHOAL__PROTO_VERSION && out->h.type != SHOAL__MSG_REJECT)
        return SHOAL_EPROTO;
    if (want == (size_t)-1 || out->h.len != want || out->h.zero != 0)
        return SHOAL_EPROTO;
    if (rx->len < sizeof out->h + want)
        return 0;
    memcpy(&out->b, rx->buf + sizeof out->h, want);
    size_t used = sizeof out->h + want;
    memmove(rx->buf, rx->buf + used, rx->len - used);
    rx->len -= (uint32_t)used;
    if (out->h.type == SHOAL__MSG_REJECT)
        out->b.reject.msg[sizeof out->b.reject.msg - 1] = 0;
    return 1;
}

enum shoal__conn_act shoal__conn_step(int *state, int rc, const struct shoal__msg *m,
                                      int32_t *code, const char **why)
{
    *code = 0;
    *why = "";
    if (*state == SHOAL__CONN_CLOSED || rc == 0)
        return SHOAL__ACT_NONE;
    if (rc < 0) {
        /* Our magic and a HELLO of another version: say why before closing. */
        if (*state == SHOAL__CONN_HANDSHAKE && m->h.magic == SHOAL__PROTO_MAGIC &&
            m->h.type == SHOAL__MSG_HELLO && m->h.version != SHOAL__PROTO_VERSION) {
            *state = SHOAL__CONN_CLOSED;
            *code = SHOAL_EPROTO;
            *why = "protocol version mismatch: the owner and this process use different "
                   "shoal versions; rebuild both against the same library";
            return SHOAL__ACT_REJECT;
        }
        *state = SHOAL__CONN_CLOSED;
        *why = "not the shoal attach protocol";
        return SHOAL__ACT_CLOSE;
    }
    if (*state == SHOAL__CONN_HANDSHAKE) {
        if (m->h.type != SHOAL__MSG_HELLO) {
            *state = SHOAL__CONN_CLOSED;
            *why = "the first message must be HELLO";
            return SHOAL__ACT_CLOSE;
        }
        if ((m->b.hello.flags & ~SHOAL__HELLO_TOOL) != 0 || m->b.hello.zero != 0 ||
            m->b.hello.pid <= 0) {
            *state = SHOAL__CONN_CLOSED;
            *code = SHOAL_EPROTO;
            *why = "HELLO with unknown flags or a bad pid";
            return SHOAL__ACT_REJECT;
        }
        if ((m->b.hello.lib_version >> 8) !=
            (((uint32_t)SHOAL_VERSION_MAJOR << 8) | SHOAL_VERSION_MINOR)) {
            *state = SHOAL__CONN_CLOSED;
            *code = SHOAL_EPROTO;
            *why = "library version mismatch: the owner and this process use different "
                   "shoal releases; rebuild both against the same library";
            return SHOAL__ACT_REJECT;
        }
        *state = SHOAL__CONN_ATTACHED;
        return SHOAL__ACT_WELCOME;
    }
    switch (m->h.type) {
    case SHOAL__MSG_PING:
        return SHOAL__ACT_PONG;
    case SHOAL__MSG_BYE:
        *state = SHOAL__CONN_CLOSED;
        return SHOAL__ACT_BYE;
    default:
        *state = SHOAL__CONN_CLOSED;
        *why = "unexpected message after the handshake";
        return SHOAL__ACT_CLOSE;
    }
}

int shoal__welcome_check(int rc, const struct shoal__msg *m, unsigned nfds, const char **why)
{
    *why = "";
    if (rc == 0) {
        *why = "the owner closed the connection during the handshake";
        return SHOAL_EPROTO;
    }
    if (rc < 0) {
        *why = m->h.magic == SHOAL__PROTO_MAGIC && m->h.version != SHOAL__PROTO_VERSION
                   ? "protocol version mismatch: the owner uses another shoal version"
                   : "the owner's answer is not the shoal attach protocol";
        return SHOAL_EPROTO;
    }
    if (m->h.type == SHOAL__MSG_REJECT) {
        int32_t c = m->b.reject.code;
        *why = m->b.reject.msg;
        /* Only codes a refusal can carry; anything else is a confused peer. */
        if (c != SHOAL_EPROTO && c != SHOAL_EPERM && c != SHOAL_EBUSY && c != SHOAL_ENOMEM &&
            c != SHOAL_ENOTINIT)
            return SHOAL_EPROTO;
        return c;
    }
    if (m->h.type != SHOAL__MSG_WELCOME) {
        *why = "the owner answered something other than WELCOME";
        return SHOAL_EPROTO;
    }
    const struct shoal__welcome *w = &m->b.welcome;
    if (w->proc == 0 || w->proc > 255 || w->inc == 0 || w->inc > 0xfffffeu || w->nnodes == 0 ||
        w->nnodes > 16 || w->nfds != 2 + w->nnodes || nfds != w->nfds || w->zero != 0 ||
        w->nslots < 2 || w->nslots > (UINT64_C(1) << 26) || w->holds_len != shoal__ledger_bytes(w->nslots) ||
        w->node_span == 0 || w->node_span % 4096 || w->node_span > (UINT64_C(1) << 47) ||
        w->seg_len < 4096 || w->seg_len > (UINT64_C(1) << 40) || w->owner_pid <= 0) {
        *why = "the owner's WELCOME has out-of-range fields or the wrong number of descriptors";
        return SHOAL_EPROTO;
    }
    return 0;
}
