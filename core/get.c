/* get.c - resolving an ObjectRef: the lookup fast path and its cold slow path.
 * Fast path budget: one TLS block (initial-exec, %fs-relative), one compare of the cached
 * epoch against the global, one bounds check, one index into the table, one acquire load
 * (a plain mov on x86) and one compare that checks host bits, generation and state at once.
 * No lock, no hashing, no syscall, no read-modify-write.
 */
#include "rt.h"

int (*shoal__help_hook)(void);

SHOAL__COLD static int get_slow(shoal_ref ref, int64_t timeout_ns, const void **data,
                                size_t *len);

static inline int get_fast(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len)
{
    const struct shoal__tls *v = &shoal__tls;
    uint64_t idx = shoal__id_idx(ref.id);
    if (likely(v->epoch == atomic_load_explicit(&shoal__epoch, memory_order_relaxed) &&
               idx < v->nslots)) {
        const shoal__slot *s = &v->slots[idx];
        /* acquire: pairs with the release that made the object READY (object.c), so off,
         * len and the bytes are visible. */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (likely((w >> 32) == shoal__id_ready_hi(ref.id))) {
            *data = v->base + s->off;
            *len = s->len;
            return 0;
        }
    }
    return get_slow(ref, timeout_ns, data, len);
}

SHOAL_API int shoal_get(shoal_ref ref, const void **data, size_t *len)
{
    return get_fast(ref, -1, data, len);
}

SHOAL_API int shoal_get_timeout(shoal_ref ref, int64_t timeout_ns, const void **data,
                                size_t *len)
{
    return get_fast(ref, timeout_ns, data, len);
}

/* The message of a failed object, as this thread's last error; returns its code. */
static int failed_result(const shoal__slot *s, shoal_ref ref)
{
    int code = -(int)((s->aux >> 8) & 0xff);
    if (code == 0)
        code = SHOAL_ETASK;
    if (s->len)
        return shoal__err(code, "%.*s", (int)s->len, (const char *)shoal__slot_data(s));
    return shoal__err(code, "object 0x%016llx failed (%s)", (unsigned long long)ref.id,
                      shoal_strerror(code));
}

static int get_slow(shoal_ref ref, int64_t timeout_ns, const void **data, size_t *len)
{
    int rc = shoal__tls_check();
    if (rc)
        return rc;
    if (!data || !len)
        return shoal__err(SHOAL_EINVAL, "shoal_get: data and len must be non-NULL");
    for (;;) {
        int err;
        shoal__slot *s = shoal__slot_of(ref, &err);
        if (!s)
            return err;
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (shoal__w_gen(w) != shoal__id_gen(ref.id))
            continue;   /* freed meanwhile: slot_of reports it */
        switch (shoal__w_state(w)) {
        case SHOAL__READY:
            *data = shoal__slot_data(s);
            *len = s->len;
            return 0;
        case SHOAL__FAILED:
            return failed_result(s, ref);
        case SHOAL__SPILLED:
            return shoal__err(SHOAL_EIO, "object 0x%016llx is spilled and this build cannot "
                                         "restore it", (unsigned long long)ref.id);
        default:
            rc = shoal__obj_wait(ref, timeout_ns);
            if (rc)
                return rc;
        }
    }
}
