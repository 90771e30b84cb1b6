/* object.c - object lifecycle: put, create/seal, retain/release, completion of pending
 * objects, and the internal API that tasks and I/O build on (store.h). The get fast path and
 * waiting live in get.c and wait.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../alloc/arena.h"
#include "../layout/mpseg.h"
#include "probes.h"
#include "../layout/segment.h"
#include "objrefs.h"
#include "stats.h"
#include "thread.h"

#define FAILED_CODE_SHIFT 8


/* An object's bytes moved from old_off to new_off: move its count if the node changed. */
static inline void objs_move(shoal__rt_t *rt, struct shoal__thr *t, uint64_t old_off,
                             uint64_t new_off)
{
    if (shoal__off_node(rt, old_off) != shoal__off_node(rt, new_off)) {
        shoal__objs_add(rt, t, old_off, -1);
        shoal__objs_add(rt, t, new_off, 1);
    }
}

SHOAL__COLD static int bad_ref(uint64_t id)
{
    shoal__count(SHOAL__CNT_INVALID);
    if (id == 0)
        return shoal__err(SHOAL_EINVAL, "null ref (id 0): pass a ref returned by shoal_put, "
                                        "shoal_create or shoal_submit");
    return shoal__err(SHOAL_EINVAL, "invalid ref 0x%016llx: not an ID this store issued "
                                    "(corrupt or forged)", (unsigned long long)id);
}

SHOAL__COLD static int stale_ref(uint64_t id)
{
    shoal__count(SHOAL__CNT_STALE);
    return shoal__err(SHOAL_ESTALE, "stale ref 0x%016llx: its object was freed (its last "
                                    "reference was released)", (unsigned long long)id);
}

shoal__slot *shoal__slot_of(shoal_ref ref, int *err)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t id = ref.id, idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (unlikely(shoal__id_host(id) != 0 || idx == 0 || gen == 0 || idx >= rt->nslots ||
                 idx >= atomic_load_explicit(&rt->hdr->bump, memory_order_relaxed))) {
        *err = bad_ref(id);
        return NULL;
    }
    shoal__slot *s = &rt->slots[idx];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (unlikely(shoal__w_gen(w) != gen)) {
        /* A generation the slot has not reached yet was never issued (generations wrap:
         * "not reached" is the near side, table.h). */
        *err = shoal__gen_after(gen, shoal__w_gen(w)) ? bad_ref(id) : stale_ref(id);
        return NULL;
    }
    if (unlikely(shoal__w_state(w) == SHOAL__FREE)) {
        *err = stale_ref(id);
        return NULL;
    }
    return s;
}

/* The slot of a ref the caller made and holds a reference on (internal callers: a task's
 * result, an I/O target): its index is in range and its generation cannot change, so the
 * checks of shoal__slot_of are skipped. */
static inline shoal__slot *held_slot(shoal__rt_t *rt, shoal_ref ref)
{
    return &rt->slots[shoal__id_idx(ref.id)];
}

/* ---- creation ------------------------------------------------------------------------ */

SHOAL__COLD static int table_full(shoal__rt_t *rt)
{
    size_t bytes;
    uint64_t live;
    shoal__store_usage(rt, &bytes, &live);
    uint64_t size = rt->nslots - 1;   /* slot 0 is never used */
    if (rt->slot_cache)
        return shoal__err(SHOAL_ENOMEM, "object table full: %llu live objects in a table of "
                          "%llu (up to %u free slots per thread wait in thread caches): "
                          "release objects or raise config.max_objects",
                          (unsigned long long)live, (unsigned long long)size, rt->slot_cache);
    return shoal__err(SHOAL_ENOMEM, "object table full: %llu live objects in a table of %llu: "
                      "release objects or raise config.max_objects", (unsigned long long)live,
                      (unsigned long long)size);
}

/* crefs[0..ncrefs): the refs the new object contains, written into a trailer after the
 * payload and their references taken here (core/objrefs.h); none on every other path, where
 * ncrefs is the constant 0. */
SHOAL__INLINE int obj_make(shoal__rt_t *rt, unsigned state, const void *src, size_t len,
                           int node, uint32_t refs, void **buf, shoal_ref *out,
                           const shoal_ref *crefs, size_t ncrefs)
{
    uint32_t auxbits = state & SHOAL__OBJ_TASK ? SHOAL__AUX_TASK : 0;
    state &= ~SHOAL__OBJ_TASK;
    struct shoal__thr *t = shoal__thr_get();
    if (unlikely(t == NULL))
        return shoal__err(SHOAL_ENOMEM, "out of memory for this thread's caches");
    size_t alen = ncrefs ? (size_t)shoal__refs_alloc_len(len, ncrefs) : len;
    uint64_t off = 0;
    if (alen) {
        unsigned n = node >= 0 && (unsigned)node < rt->nnodes ? (unsigned)node
                     : (unsigned)shoal__tls.node < rt->nnodes ? (unsigned)shoal__tls.node : 0;
        int rc = shoal__arena_alloc(rt, t, alen, n, &off);
        if (unlikely(rc))
            return rc;
    }
    uint32_t idx;
    uint64_t w;
    for (unsigned bad = 0;; bad++) {
        idx = bad < 64 ? shoal__slot_take(rt, t) : 0;   /* a corrupt list may loop: give up */
        if (unlikely(idx == 0)) {
            if (alen)
                shoal__arena_free(rt, t, off, alen);
            return table_full(rt);
        }
        w = atomic_load_explicit(&rt->slots[idx].word, memory_order_relaxed);
        /* A free list another process corrupted can name a live object's slot: skip it
         * (leaked) rather than overwrite that object. */
        if (likely(shoal__w_state(w) == SHOAL__FREE))
            break;
        shoal__slot_corrupt(idx);
    }
    shoal__slot *s = &rt->slots[idx];
    uint64_t gen = shoal__w_gen(w);
    s->off = off;
    s->len = len;
    /* atomic (a plain store on x86): the owner's service thread reads the process byte of
     * slots a gone process named, one of which may be this one being reused
     * (mproc/publish.c). */
    __atomic_store_n(&s->aux, rt->proc | auxbits, __ATOMIC_RELAXED);
    if (src && len)
        memcpy(rt->base + off, src, len);
    if (ncrefs) {
        /* The list, then its references (which sets SHOAL__AUX_REFS): taken with the list
         * in the store, so that the owner drops them if we die before the word below. */
        shoal__refs_write(rt->base + off, len, crefs, ncrefs);
        int rc = shoal__refs_put_take(rt, idx, crefs, ncrefs);
        if (unlikely(rc)) {
            shoal__arena_free(rt, t, off, alen);
            shoal__slot_give(rt, t, idx);
            return rc;
        }
    }
    if (state != SHOAL__READY)
        atomic_store_explicit(&rt->deps[idx], NULL, memory_order_relaxed);
    if (unlikely(shoal__holds != NULL)) {   /* published or attached (layout/mpseg.h) */
        /* The ledger before the word: a process that dies between the two leaves its slot
         * FREE and tagged as cached, which the owner takes back; never a reference that no
         * ledger names. The owner records its own bytes: the whole allocation (an object
         * with refs frees its payload and trailer together, core/objrefs.h). The one update
         * that replaces the slot's cache mark (layout/mpseg.h, shoal__holds_cached). */
        shoal__holds_create(idx, gen, (int32_t)refs);
        if (shoal__own)
            shoal__own_set(idx, off, alen);
    }
    shoal__objs_add(rt, t, off, 1);
    uint64_t nw = shoal__w_make(gen, state, refs);
    if (state == SHOAL__READY)
        nw |= shoal__seal_mark(rt, s);
    /* release: publishes off/len/aux and the bytes to the acquire load in shoal_get. */
    atomic_store_explicit(&s->word, nw, memory_order_release);
    if (buf)
        *buf = rt->base + off;
    out->id = shoal__id_make(idx, gen);
    if (state == SHOAL__READY)
        SHOAL__PROBE_PUT(out->id, len);
    return 0;
}

static inline int put(const void *data, size_t len, shoal_ref *out)
{
    if (unlikely(out == NULL || (data == NULL && len != 0)))
        return shoal__err(SHOAL_EINVAL, out ? "shoal_put: data is NULL but len is %zu"
                                            : "shoal_put: out is NULL (%zu bytes)", len);
    return obj_make(shoal__rt, SHOAL__READY, data, len, -1, 1, NULL, out, NULL, 0);
}

SHOAL_API int shoal_put(const void *data, size_t len, shoal_ref *out)
{
    SHOAL__CALL(put(data, len, out));
}

static int put_batch(size_t n, const void *const data[], const size_t len[], shoal_ref out[])
{
    int rc;
    if (n == 0)
        return 0;
    if (!data || !len || !out)
        return shoal__err(SHOAL_EINVAL, "shoal_put_batch: data, len and out must be non-NULL");
    /* A count above the table (an underflowed n - 1) is refused before data[] is read and
     * before n sizes the scratch array (n * sizeof(shoal_ref) could wrap). */
    if (unlikely(n > shoal__rt->nslots - 1))
        return shoal__err(SHOAL_ENOMEM, "shoal_put_batch: %zu items, more objects than the "
                          "object table holds (%llu; config.max_objects): nothing was stored",
                          n, (unsigned long long)(shoal__rt->nslots - 1));
    for (size_t i = 0; i < n; i++)
        if (data[i] == NULL && len[i] != 0)
            return shoal__err(SHOAL_EINVAL, "shoal_put_batch: data[%zu] is NULL but len[%zu] "
                                            "is %zu", i, i, len[i]);
    /* Build into a scratch array so that a failure leaves out[] untouched. */
    shoal_ref stack[64], *tmp = n <= 64 ? stack : malloc(n * sizeof *tmp);
    if (!tmp)
        return shoal__err(SHOAL_ENOMEM, "shoal_put_batch: out of memory for %zu refs", n);
    for (size_t i = 0; i < n; i++) {
        rc = obj_make(shoal__rt, SHOAL__READY, data[i], len[i], -1, 1, NULL, &tmp[i], NULL, 0);
        if (unlikely(rc)) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", shoal_last_error());
            for (size_t j = 0; j < i; j++)
                shoal__release(tmp[j]);
            if (tmp != stack)
                free(tmp);
            return shoal__err(rc, "shoal_put_batch: item %zu: %s (nothing was stored)", i, msg);
        }
    }
    memcpy(out, tmp, n * sizeof *tmp);
    if (tmp != stack)
        free(tmp);
    return 0;
}

SHOAL_API int shoal_put_batch(size_t n, const void *const data[], const size_t len[],
                              shoal_ref out[])
{
    SHOAL__CALL(put_batch(n, data, len, out));
}

static inline int create(size_t len, void **buf, shoal_ref *out)
{
    if (unlikely(out == NULL || buf == NULL))
        return shoal__err(SHOAL_EINVAL, "shoal_create: buf and out must be non-NULL");
    return obj_make(shoal__rt, SHOAL__CREATED, NULL, len, -1, 1, buf, out, NULL, 0);
}

SHOAL_API int shoal_create(size_t len, void **buf, shoal_ref *out)
{
    SHOAL__CALL(create(len, buf, out));
}

int shoal__obj_new(unsigned state, size_t len, int node, uint32_t refs, void **buf,
                   shoal_ref *out)
{
    return obj_make(shoal__rt, state, NULL,
                    (state & ~SHOAL__OBJ_TASK) == SHOAL__PENDING ? 0 : len, node, refs, buf, out,
                    NULL, 0);
}

/* Every constant folded in: no bytes, no list, no seal mark, one store of the word (the
 * general case of shoal__obj_new_result_inl, core/result.h). */
int shoal__obj_new_result(shoal_ref *out)
{
    return obj_make(shoal__rt, SHOAL__PENDING | SHOAL__OBJ_TASK, NULL, 0, -1, 2, NULL, out,
                    NULL, 0);
}

int shoal__obj_put_refs(const void *data, size_t len, const shoal_ref refs[], size_t n,
                        shoal_ref *out)
{
    return obj_make(shoal__rt, SHOAL__READY, data, len, -1, 1, NULL, out, refs, n);
}

/* small: a task's result, which may be held in its slot (table.h, SHOAL__LEN_INL) when it
 * is small and no other process maps the table; the other fills (a file read into the
 * buffer, a result with refs) always take store bytes. */
/* obj_fill's store bytes (or none, len 0), out of line: the in-slot result stays a leaf. */
static int fill_bytes(shoal__rt_t *rt, shoal__slot *s, shoal_ref ref, size_t len, int node,
                      void **buf)
{
    if (len) {
        struct shoal__thr *t = shoal__thr_get();
        if (!t)
            return shoal__err(SHOAL_ENOMEM, "out of memory for this thread's caches");
        uint64_t off = 0;
        unsigned n = node >= 0 && (unsigned)node < rt->nnodes ? (unsigned)node
                     : (unsigned)shoal__tls.node < rt->nnodes ? (unsigned)shoal__tls.node : 0;
        int rc = shoal__arena_alloc(rt, t, len, n, &off);
        if (rc)
            return rc;
        objs_move(rt, t, s->off, off);   /* the objects counter follows the bytes' node */
        s->off = off;
        s->len = len;
        if (shoal__own)
            shoal__own_set(shoal__id_idx(ref.id), off, len);
    }
    if (buf)
        *buf = rt->base + s->off;
    return 0;
}

SHOAL__INLINE int obj_fill(shoal_ref ref, size_t len, int node, void **buf, bool small)
{
    shoal__rt_t *rt = shoal__rt;
    shoal__slot *s = held_slot(rt, ref);
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (unlikely(shoal__w_gen(w) != shoal__id_gen(ref.id)))
        return stale_ref(ref.id);
    if (shoal__w_state(w) != SHOAL__PENDING || s->len != 0)
        return shoal__err(SHOAL_EEXIST, "result already set");
    /* The slot is ours while PENDING: nobody reads off or len before the completing
     * release (the node counter stays where obj_make put it, the node of offset 0). */
    if (small && len && len <= SHOAL__INL_MAX && likely(shoal__holds == NULL)) {
        s->off = 0;
        s->len = SHOAL__LEN_INL | len;
        if (buf)
            *buf = &s->off;
        return 0;
    }
    return fill_bytes(rt, s, ref, len, node, buf);
}

int shoal__obj_fill(shoal_ref ref, size_t len, int node, void **buf)
{
    return obj_fill(ref, len, node, buf, false);
}

int shoal__obj_fill_result(shoal_ref ref, size_t len, void **buf)
{
    return obj_fill(ref, len, -1, buf, true);
}

/* ---- completion ------------------------------------------------------------------------ */

/* Failure messages kept out of the store. A failure message is the object's bytes, and a
 * full store has no room for them: often the very reason of the failure (a put, an ingest
 * that found no room) and its figures were lost, the reader told only "object ... failed".
 * Such a message is kept here instead, in this process's memory, which needs no allocation:
 * a reader in this process (a get, a task taking it as an argument) finds it by the
 * object's ID and the runtime's epoch; other processes read the generic text. A fixed
 * ring, written in turn: the last KEPT_ENTRIES messages stay (shoal.h), a later failure of
 * the same object replaces its own entry, a freed object's entry is never read again (its
 * slot's next object has another ID). Chosen by the slot index before, two failures whose
 * slots were 64 apart kept one message, however few failed in between. Each entry has a
 * spin lock of its own, held to copy one message, on failure paths only; a reader looks
 * at the IDs first (relaxed) and locks only the entry that names its object. */
#define KEPT_ENTRIES 64
/* A thread's message (os/errors.c) holds 511 bytes, and a reader adds nothing to it: the
 * whole of what a get reads from a store with room (400 cut a longer message short). */
#define KEPT_LEN     512
static struct kept {
    _Atomic uint32_t busy;
    _Atomic uint64_t id;   /* written under busy; read without it only to choose */
    uint64_t epoch;
    char msg[KEPT_LEN];
} kept[KEPT_ENTRIES];
static _Atomic uint32_t kept_next;   /* the ring's next entry to write */

static void kept_lock(struct kept *k)
{
    /* acquire: pairs with kept_unlock's release (the previous holder's id and message). */
    while (atomic_exchange_explicit(&k->busy, 1, memory_order_acquire))
        shoal__cpu_relax();
}

static void kept_unlock(struct kept *k)
{
    atomic_store_explicit(&k->busy, 0, memory_order_release);
}

/* The entry of object id in epoch ep, locked; NULL when none is kept. */
static struct kept *kept_find(uint64_t id, uint64_t ep)
{
    for (size_t i = 0; i < KEPT_ENTRIES; i++) {
        struct kept *k = &kept[i];
        /* relaxed: a hint only; the lock's acquire and the checks under it decide. */
        if (atomic_load_explicit(&k->id, memory_order_relaxed) != id)
            continue;
        kept_lock(k);
        if (atomic_load_explicit(&k->id, memory_order_relaxed) == id && k->epoch == ep)
            return k;
        kept_unlock(k);
    }
    return NULL;
}

SHOAL__COLD static void kept_put(shoal__rt_t *rt, uint64_t id, const char *msg)
{
    struct kept *k = kept_find(id, rt->epoch);
    if (!k) {
        /* relaxed: only spreads the writers over the ring; the entry's lock orders them. */
        k = &kept[atomic_fetch_add_explicit(&kept_next, 1, memory_order_relaxed) % KEPT_ENTRIES];
        kept_lock(k);
    }
    atomic_store_explicit(&k->id, id, memory_order_relaxed);   /* (under the lock) */
    k->epoch = rt->epoch;
    snprintf(k->msg, sizeof k->msg, "%s", msg);
    kept_unlock(k);
}

void shoal__fail_kept_fork_child(void)
{
    /* Another thread of the parent may have held an entry at fork(): its copy stays held. */
    for (size_t i = 0; i < KEPT_ENTRIES; i++)
        atomic_store_explicit(&kept[i].busy, 0, memory_order_relaxed);
}

bool shoal__fail_kept(shoal_ref ref, char *buf, size_t cap)
{
    struct kept *k = kept_find(ref.id, shoal__rt->epoch);
    if (!k)
        return false;
    snprintf(buf, cap, "%s", k->msg);
    kept_unlock(k);
    return true;
}

/* A completion that fails, before its CAS: the message becomes the object's bytes, so every
 * process can read it (what the object held goes first); in a store with no room left for
 * it, it is kept out of the store (above). Cold: obj_complete stays short. */
SHOAL__COLD static void fail_bytes(shoal__rt_t *rt, shoal__slot *s, shoal_ref ref, int code,
                                   const char *msg)
{
    struct shoal__thr *t = shoal__thr_get();
    uint64_t idx = shoal__id_idx(ref.id);
    if (unlikely(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS))
        shoal__refs_forget(rt, s);   /* its list goes now; s->len becomes the whole */
    uint64_t foff = s->off, flen = s->len;
    bool spilled;
    if (shoal__len_inl(flen)) {   /* held in the slot: nothing to free */
        s->off = 0;
        s->len = 0;
        flen = 0;
    }
    /* The published owner frees what its record says, not what the shared slot says
     * (for an object with refs, the whole allocation from the start: obj_make). */
    if (shoal__own && !shoal__own_take(idx, &foff, &flen, &spilled))
        flen = 0;
    if (flen && t) {
        shoal__arena_free(rt, t, foff, flen);
        s->len = 0;
    }
    size_t ml = msg ? strlen(msg) + 1 : 0;
    uint64_t off = 0;
    if (ml && t && shoal__arena_alloc(rt, t, ml, shoal__off_node(rt, s->off), &off) == 0) {
        memcpy(rt->base + off, msg, ml);
        objs_move(rt, t, s->off, off);
        s->off = off;
        s->len = ml;
    } else if (ml > 1) {
        kept_put(rt, ref.id, msg);   /* no room in the store for it */
    }
    if (shoal__own)
        shoal__own_set(idx, s->off, s->len);
    /* atomic: shoal__dep_add may read the process byte meanwhile (deps.c), shoal_cancel
     * the task bit. */
    __atomic_store_n(&s->aux, (s->aux & (0xffu | SHOAL__AUX_TASK)) |
                              ((uint32_t)(-code & 0xff) << FAILED_CODE_SHIFT),
                     __ATOMIC_RELAXED);
}

SHOAL__COLD static void cancel_msg(char *buf, size_t cap, const char *tname, shoal_ref ref)
{
    snprintf(buf, cap, "task%s%.63s (result 0x%016llx) canceled by shoal_cancel while it ran",
             tname ? " " : "", tname ? tname : "", (unsigned long long)ref.id);
}

/* With *drop, the caller's reference goes too: in the completing CAS when that leaves
 * another holder (the object cannot be freed) and no dependent registered (DEPS clear, so
 * nothing reads the slot after the CAS); otherwise by shoal_release after the firing,
 * since dependents are fired through the slot's index, which a free could hand to a new
 * object. *drop is cleared when the CAS took the reference. */
/* task (a task completing its own result, named tname or NULL): when shoal_cancel marked the
 * result (SHOAL__W_CANCEL) before the completing CAS, the result fails SHOAL_ECANCELED
 * instead; the mark and the completion meet on the word, so exactly one of them is first. */
SHOAL__INLINE int obj_complete(shoal__slot *s, shoal_ref ref, int code, const char *msg,
                               bool *drop, bool task, const char *tname)
{
    shoal__rt_t *rt = shoal__rt;
    char cmsg[160];
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
again:;
    unsigned target = code == 0 ? SHOAL__READY : SHOAL__FAILED;
    if (!shoal__w_pending(w))
        return shoal__err(SHOAL_EEXIST, "object 0x%016llx is already %s",
                          (unsigned long long)ref.id,
                          shoal__w_state(w) == SHOAL__FAILED ? "failed" : "sealed");
    if (target == SHOAL__FAILED)
        fail_bytes(rt, s, ref, code, msg);
    bool fused;
    for (;;) {
        if (shoal__w_gen(w) != shoal__id_gen(ref.id))
            return stale_ref(ref.id);
        if (!shoal__w_pending(w))
            return shoal__err(SHOAL_EEXIST, "object 0x%016llx completed twice",
                              (unsigned long long)ref.id);
        if (unlikely(task && (w & SHOAL__W_CANCEL)) && msg != cmsg) {
            /* Canceled while it ran: the task owns off/len, so the message is written as
             * for any failure (the filled bytes, if any, are freed first). */
            cancel_msg(cmsg, sizeof cmsg, tname, ref);
            code = SHOAL_ECANCELED;
            msg = cmsg;
            goto again;
        }
        fused = *drop && !(w & SHOAL__W_DEPS) && shoal__w_refs(w) > 1;
        uint64_t nw = (w & ~(SHOAL__W_STATE_MASK | SHOAL__W_WAITERS | SHOAL__W_DEPS |
                             SHOAL__W_STARTED | SHOAL__W_CANCEL)) |
                      ((uint64_t)target << SHOAL__W_STATE_SHIFT);
        if (target == SHOAL__READY)
            nw |= shoal__seal_mark(rt, s);
        if (fused)
            nw -= 1;
        /* release: publishes the bytes and off/len to readers' acquire loads of the word,
         * and orders the task's reads before a fused drop (never the last reference, so
         * nothing is freed here). acquire: a waiter's WAITERS CAS (acq_rel) published its
         * count in multi, which shoal__wake_slot reads (core/wait.c). */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (fused) {
        *drop = false;
        if (unlikely(shoal__holds != NULL))
            shoal__holds_add(shoal__id_idx(ref.id), shoal__id_gen(ref.id), -1);
    }
    if (w & SHOAL__W_WAITERS) {
        shoal__wake_slot(rt, shoal__id_idx(ref.id));
        if (unlikely(shoal__holds != NULL))   /* other processes' dependents may wait on it */
            shoal__up.notify_foreign(rt);     /* (mproc/foreign_deps.c) */
    }
    /* The exchange inside also closes the list against registrations racing with this
     * completion; a registrant sets DEPS first (deps.c), so without it there is no list. */
    if (w & SHOAL__W_DEPS)
        shoal__deps_fire(shoal__id_idx(ref.id), code);
    return 0;
}

int shoal__obj_complete(shoal_ref ref, int code, const char *msg)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    bool drop = false;
    return obj_complete(s, ref, code, msg, &drop, false, NULL);
}

int shoal__obj_complete_drop(shoal_ref ref, int code, const char *msg)
{
    bool drop = true;   /* the caller's reference: held_slot applies */
    int rc = obj_complete(held_slot(shoal__rt, ref), ref, code, msg, &drop, false, NULL);
    if (drop)
        shoal__release(ref);
    return rc;
}

int shoal__obj_complete_task(shoal_ref ref, int code, const char *msg, const char *name)
{
    bool drop = true;   /* the task's own reference: held_slot applies */
    int rc = obj_complete(held_slot(shoal__rt, ref), ref, code, msg, &drop, true, name);
    if (drop)
        shoal__release(ref);
    return rc;
}

/* ---- cancellation ------------------------------------------------------------------------ */

SHOAL__COLD static int cancel_done(shoal_ref ref, uint64_t w)
{
    unsigned st = shoal__w_state(w);
    if (st == SHOAL__FAILED) {
        int err;
        shoal__slot *s = shoal__slot_of(ref, &err);
        int c = s ? -(int)((__atomic_load_n(&s->aux, __ATOMIC_RELAXED) >> FAILED_CODE_SHIFT) & 0xff)
                  : 0;
        return shoal__err(SHOAL_EEXIST, "shoal_cancel: the task of 0x%016llx already finished: "
                          "its result %s (nothing to cancel)", (unsigned long long)ref.id,
                          c == SHOAL_ECANCELED ? "was canceled already" : "failed");
    }
    return shoal__err(SHOAL_EEXIST, "shoal_cancel: the task of 0x%016llx already finished: its "
                      "result is sealed (nothing to cancel)", (unsigned long long)ref.id);
}

/* The claim (see table.h, started/cancel): a CAS that sets CANCEL while the result is
 * PENDING. Not started yet: the worker's start CAS (shoal__obj_start) will fail, so we
 * alone complete the result. Started: the task's completing CAS sees the mark. */
static int obj_cancel(shoal_ref ref)
{
    int rc = shoal__retain(ref);   /* our own, so that a racing release cannot free it under us */
    if (unlikely(rc))
        return rc;   /* SHOAL_EINVAL (null, forged) or SHOAL_ESTALE, message set */
    shoal__slot *s = held_slot(shoal__rt, ref);
    /* acquire: pairs with the release of obj_make, which wrote aux. */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (!(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_TASK)) {
        shoal__release(ref);
        return shoal__err(SHOAL_ENOENT, "shoal_cancel: 0x%016llx is not a task's result (an "
                          "object from shoal_put, shoal_create or a file): only the ref "
                          "shoal_submit returned can be canceled", (unsigned long long)ref.id);
    }
    for (;;) {
        if (!shoal__w_pending(w)) {
            rc = cancel_done(ref, w);
            break;
        }
        if (w & SHOAL__W_CANCEL) {
            /* Asked before: while it runs, asking again is the same request; before it
             * started, the first canceller completed (or is completing) the result. */
            rc = (w & SHOAL__W_STARTED) ? 1 : cancel_done(ref, shoal__w_make(0, SHOAL__FAILED, 0));
            break;
        }
        /* relaxed: the mark carries no data; whoever acts on it reads only the word, and
         * the result's bytes are published by the completion's own release. */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | SHOAL__W_CANCEL,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            if (w & SHOAL__W_STARTED) {
                rc = 1;
            } else {
                char msg[160];
                snprintf(msg, sizeof msg, "task of result 0x%016llx canceled by shoal_cancel "
                         "before it started", (unsigned long long)ref.id);
                rc = shoal__obj_complete(ref, SHOAL_ECANCELED, msg);
            }
            break;
        }
    }
    shoal__release(ref);
    return rc;
}

int shoal__obj_cancel(shoal_ref ref)
{
    return obj_cancel(ref);
}

static int seal(shoal_ref ref)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    unsigned st = shoal__w_state(atomic_load_explicit(&s->word, memory_order_relaxed));
    if (st != SHOAL__CREATED)
        return shoal__err(SHOAL_EEXIST, "shoal_seal: object 0x%016llx is %s; only an object "
                                        "from shoal_create can be sealed, once",
                          (unsigned long long)ref.id,
                          st == SHOAL__PENDING ? "a pending task result" : "already sealed");
    return shoal__obj_complete(ref, 0, NULL);
}

SHOAL_API int shoal_seal(shoal_ref ref)
{
    SHOAL__CALL(seal(ref));
}

/* ---- references -------------------------------------------------------------------------- */

static inline int take(shoal_ref ref, bool ledger)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (unlikely(!s))
        return err;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    do {
        if (shoal__w_gen(w) != shoal__id_gen(ref.id) || shoal__w_state(w) == SHOAL__FREE)
            return stale_ref(ref.id);
        if (shoal__w_refs(w) == SHOAL__REFS_MAX)
            return shoal__err(SHOAL_EINVAL, "shoal_retain: object 0x%016llx already has %u "
                              "references, the most one object can have: release some first",
                              (unsigned long long)ref.id, SHOAL__REFS_MAX);
        /* relaxed: a new reference orders nothing; the caller already holds one. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, w + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (unlikely(shoal__holds != NULL) && ledger)
        shoal__holds_add(shoal__id_idx(ref.id), shoal__id_gen(ref.id), 1);
    return 0;
}

int shoal__retain(shoal_ref ref)
{
    return take(ref, true);
}

int shoal__ref_take(shoal_ref ref, bool ledger)
{
    return take(ref, ledger);
}

/* Whether the bytes of the object in slot idx belong to another process's allocator (or,
 * spilled, to the owner's spill file): the last release then leaves the slot to the drainer
 * of that process's remote-free stack. The published owner asks its records, not the slot. */
static inline bool freed_remotely(const shoal__rt_t *rt, const shoal__slot *s, uint64_t idx)
{
    if (unlikely(shoal__own != NULL))
        return !(atomic_load_explicit(&shoal__own[idx].off, memory_order_relaxed) & SHOAL__OWN_VALID);
    return SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)) != rt->proc;
}

/* Free a dead object without refs (or whose list is released already): remote when the
 * last drop marked it FREEING for its allocator's drainer. */
SHOAL__INLINE void obj_free_bytes(shoal__rt_t *rt, shoal__slot *s, uint32_t idx, uint64_t oldw,
                                  bool remote)
{
    if (unlikely(remote)) {
        /* Its allocator's drainer gives back the bytes (or the owner's, a spilled object's
         * extent), uncounts it and recycles the slot: ours is marked FREEING for it. */
        if (oldw & SHOAL__W_WAITERS)
            shoal__wake_slot(rt, idx);
        shoal__up.rfree_push(rt, idx, SHOAL__AUX_PROC(__atomic_load_n(&s->aux, __ATOMIC_RELAXED)));
        return;
    }
    struct shoal__thr *t = shoal__thr_get();
    if (unlikely(shoal__own != NULL)) {   /* the published owner's: from its records */
        if (oldw & SHOAL__W_WAITERS)
            shoal__wake_slot(rt, idx);
        shoal__up.own_release(rt, idx, shoal__w_gen(oldw));   /* (mproc/remote_free.c) */
        if (t)
            shoal__slot_give(rt, t, idx);
        return;
    }
    bool inl = shoal__len_inl(s->len);   /* held in the slot (table.h): no bytes to free */
    if (unlikely(!inl && !shoal__slot_bytes_ok(s))) {
        shoal__slot_corrupt(idx);   /* leak the slot and its bytes rather than free garbage */
        if (oldw & SHOAL__W_WAITERS)
            shoal__wake_slot(rt, idx);
        return;
    }
    shoal__objs_add(rt, t, inl ? 0 : s->off, -1);
    if (unlikely(shoal__w_state(oldw) == SHOAL__SPILLED)) {
        /* Its bytes were freed when it was spilled (off is only its old place): forget the
         * copy on disk and recycle the slot. */
        shoal__up.spill_drop(s, shoal__w_gen(oldw));
        if (oldw & SHOAL__W_WAITERS)
            shoal__wake_slot(rt, idx);
        if (t)
            shoal__slot_give(rt, t, idx);
        return;
    }
    if (s->len && t && !inl)
        shoal__arena_free(rt, t, s->off, s->len);
    if (oldw & SHOAL__W_WAITERS)
        shoal__wake_slot(rt, idx);   /* waiters on a freed object must see ESTALE, not sleep on */
    if (t)
        shoal__slot_give(rt, t, idx);
}

void shoal__obj_free_plain(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *arg)
{
    (void)arg;
    shoal__slot *s = &rt->slots[idx];
    /* The slot is ours from the last drop until it is pushed or given back, so its word
     * still says what that drop decided: FREEING (another process's bytes) or not. */
    obj_free_bytes(rt, s, idx, oldw,
                   shoal__w_freeing(atomic_load_explicit(&s->word, memory_order_relaxed)));
}

SHOAL_API int shoal_retain(shoal_ref ref)
{
    SHOAL__CALL(shoal__retain(ref));
}

/* An object's last reference went (word oldw): free it, and first what it contains. Its
 * list is released here, in the process that dropped the last reference, before the bytes
 * go anywhere (to our allocator, our records, or another process's drainer), so exactly
 * once; the drainer then frees a plain allocation (core/objrefs.h). */
SHOAL__INLINE void obj_free(shoal__rt_t *rt, shoal__slot *s, uint32_t idx, uint64_t oldw,
                            bool remote)
{
    if (unlikely(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS))
        shoal__refs_free(rt, idx, oldw, shoal__obj_free_plain, NULL);
    else
        obj_free_bytes(rt, s, idx, oldw, remote);
}

/* ledger false: a reference an object held (core/objrefs.h), never counted in a ledger. It
 * still names the slot in ours (a count of 0), so that if we die between the last drop and
 * giving the slot back or pushing it, the owner finds the slot we marked (publish.c). */
SHOAL__INLINE int unref(shoal_ref ref, bool ledger, uint64_t *last, bool *remotep)
{
    shoal__rt_t *rt = shoal__rt;
    *last = 0;
    *remotep = false;
    uint64_t id = ref.id, idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (unlikely(shoal__id_host(id) != 0 || idx == 0 || idx >= rt->nslots))
        return bad_ref(id);
    shoal__slot *s = &rt->slots[idx];
    /* Published or attached: the ledger first, so that a process that dies between the two
     * has dropped the reference from its ledger but not from the object (a leak), never the
     * reverse (the owner would drop it again). Undone below when the release fails. */
    bool mp = unlikely(shoal__holds != NULL), remote = false;
    bool counted = mp && ledger;
    if (mp)
        shoal__holds_add(idx, gen, counted ? -1 : 0);
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed), nw;
    /* The slot's next object takes the next generation (wrapping, table.h). Always a CAS,
     * even for a sole holder: a retain racing with the last release must either pin the
     * object or fail ESTALE (tests/test_threads.c), never be lost. */
    uint64_t newgen = shoal__gen_next(gen);
    do {
        if (unlikely(shoal__w_gen(w) != gen || shoal__w_state(w) == SHOAL__FREE ||
                     shoal__w_refs(w) == 0)) {
            if (counted)
                shoal__holds_add(idx, gen, 1);
            int e;
            return shoal__slot_of(ref, &e) ? stale_ref(id) : e;
        }
        if (shoal__w_refs(w) > 1) {
            nw = w - 1;
        } else {
            nw = shoal__w_make(newgen, SHOAL__FREE, 0);
            /* Freed for another process: marked so that only its drainer can claim it
             * (layout/mpseg.h), naming us in case we die before pushing it there. */
            remote = mp && freed_remotely(rt, s, idx);
            if (remote)
                nw |= shoal__freeing_mark();
            else if (mp)   /* ours to give back; HELD names us until we do (layout/mpseg.h) */
                nw |= SHOAL__W_HELD | rt->proc;
        }
        /* acq_rel: release orders this holder's reads of the bytes before the free; acquire
         * (on the last drop) sees every other holder's release before freeing. */
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (shoal__w_refs(w) == 1) {
        *last = w;   /* never 0: a live object's word has a generation */
        *remotep = remote;
    }
    return 0;
}

/* shoal_release and shoal__release, each with the whole path folded in (one call). */
SHOAL__INLINE int release(shoal_ref ref)
{
    uint64_t last;
    bool remote;
    int rc = unref(ref, true, &last, &remote);
    if (last != 0)
        obj_free(shoal__rt, &shoal__rt->slots[shoal__id_idx(ref.id)],
                 (uint32_t)shoal__id_idx(ref.id), last, remote);
    return rc;
}

int shoal__release(shoal_ref ref)
{
    return release(ref);
}

int shoal__unref(shoal_ref ref, bool ledger, uint64_t *last)
{
    bool remote;
    return unref(ref, ledger, last, &remote);
}

SHOAL_API int shoal_release(shoal_ref ref)
{
    SHOAL__CALL(release(ref));
}

/* ---- shoal_take: a get that consumes the caller's reference ------------------------------ */

/* min(n, cap) bytes from p to buf; a word-sized result (a count, a sum) inline. */
static inline void take_bytes(void *buf, size_t cap, const char *p, uint64_t n)
{
    if (n == 8 && cap >= 8)
        memcpy(buf, p, 8);
    else if (n && cap)
        memcpy(buf, p, n < cap ? (size_t)n : cap);
}

/* Everything but a ready object of this process's store: the wait (helping, running the
 * caller's own task, spill reads), failures and bad arguments, then the release. The
 * reference goes whatever the answer (shoal.h). */
static int get_take_slow(shoal_ref ref, void *buf, size_t cap, size_t *len, bool counted)
{
    const void *p;
    size_t n;
    int rc;
    if (unlikely(!len || (!buf && cap))) {
        /* The ref is looked up first: its message (a null, forged or freed ref holds
         * nothing to release) must not replace the one naming the argument. */
        bool held = shoal__slot_of(ref, &(int){ 0 }) != NULL;
        rc = shoal__err(SHOAL_EINVAL, "shoal_take: %s (%s)",
                        !len ? "len is NULL" : "buf is NULL but cap is not 0",
                        held ? "the reference is released all the same"
                             : "and the ref holds no reference: null, forged or freed");
        if (held)
            (void)release(ref);
        return rc;
    }
    if ((rc = shoal__get_wait(ref, -1, &p, &n, counted)) == 0) {
        take_bytes(buf, cap, p, n);   /* p stays valid until the release below */
        *len = n;
    }
    if (rc == SHOAL_EINVAL && shoal__slot_of(ref, &(int){ 0 }) == NULL)
        return rc;   /* a null or forged ref: nothing to release (its message stays) */
    if (rc == SHOAL_ESTALE)
        return rc;   /* freed: nothing held */
    int rr = release(ref);
    return rc ? rc : rr;
}

/* The last reference to a result held in its slot (no bytes, no list) went with word w:
 * obj_free_bytes' steps for it, inline: the count, the waiters, the slot. */
SHOAL__INLINE void take_free_inl(shoal__rt_t *rt, uint64_t idx, uint64_t w)
{
    if (unlikely(shoal__own != NULL)) {
        obj_free(rt, &rt->slots[idx], idx, w, false);
        return;
    }
    struct shoal__thr *t = shoal__thr_get();
    shoal__objs_add(rt, t, 0, -1);
    if (w & SHOAL__W_WAITERS)
        shoal__wake_slot(rt, idx);
    if (t)
        shoal__slot_give(rt, t, (uint32_t)idx);
}

/* Whether word w is ID id's object, READY, and not UNREAD (spilling on: the first get
 * clears it, which get_wait does): the inline get's compare with the waiters bit let
 * through (a drop wakes them below). The ID's host field is 0 here (checked first). */
static inline bool take_hit(uint64_t w, uint64_t id)
{
    return shoal__w_hit(w, id, SHOAL__READY, SHOAL__W_WAITERS);
}

/* The fast path: a ready object of a store no other process maps (no ledger), whose word
 * this thread reads once: the bytes are copied, and one CAS from that word drops the
 * reference (freeing the object on the last one, as unref does). get_take's general case,
 * out of line so that its registers and checks stay off the common path. */
__attribute__((noinline)) static int get_take_general(shoal_ref ref, void *buf, size_t cap,
                                                      size_t *len, bool counted)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t id = ref.id, idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (unlikely(shoal__id_host(id) != 0 || idx == 0 || idx >= rt->nslots ||
                 shoal__holds != NULL || !len || (!buf && cap)))
        return get_take_slow(ref, buf, cap, len, counted);
    shoal__slot *s = &rt->slots[idx];
    /* acquire: pairs with the release that made the object READY (its offset, length and
     * bytes are visible). */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (unlikely(shoal__w_gen(w) == gen && shoal__w_pending(w)) && shoal__tls.worker >= 0) {
        /* A task's get of a child it submitted: run other tasks (often the child itself)
         * until it completes, as get_wait would, then look again. One take that waits is
         * one count, however many of the steps below wait in turn (counted: take_help's). */
        if (!counted)
            shoal__count(SHOAL__CNT_GET_WAIT);
        counted = true;
        shoal__help_while_pending(s, ref);
        /* acquire: as above. */
        w = atomic_load_explicit(&s->word, memory_order_acquire);
    }
    const char *p;
    uint64_t n;
    /* UNREAD (spilling on): the first get clears it, which get_wait does. */
    if (unlikely(!take_hit(w, id) || shoal__w_refs(w) == 0) ||
        unlikely(!shoal__slot_bytes(s, &p, &n)))   /* rt.h: never a wild pointer */
        return get_take_slow(ref, buf, cap, len, counted);
    take_bytes(buf, cap, p, n);
    *len = (size_t)n;
    /* Held in its slot: no bytes and no list (the fills that make either take store bytes). */
    bool inl = shoal__len_inl(s->len);
    uint64_t nw = shoal__w_refs(w) > 1 ? w - 1 : shoal__w_make(shoal__gen_next(gen), SHOAL__FREE, 0);
    /* acq_rel, as unref's: release orders our copy of the bytes before the free; acquire
     * (on the last drop) sees every other holder's release before freeing. */
    if (likely(atomic_compare_exchange_strong_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                       memory_order_relaxed))) {
        if (shoal__w_refs(w) == 1) {
            if (likely(inl))
                take_free_inl(rt, idx, w);
            else
                obj_free(rt, s, idx, w, false);
        }
        return 0;
    }
    /* The word moved (another holder's retain or release): the general drop. */
    return release(ref);
}

/* A task's take of a child it submitted that is still pending: run other tasks (often the
 * child itself) until it completes, as get_wait would, and answer the word then (acquire:
 * as get_take's load). Out of line: half of fib's takes come here, the other half never. */
__attribute__((noinline)) static uint64_t take_help(const shoal__slot *s, shoal_ref ref)
{
    shoal__count(SHOAL__CNT_GET_WAIT);
    shoal__help_while_pending(s, ref);
    return atomic_load_explicit(&s->word, memory_order_acquire);
}

/* shoal_take's common case, a word-sized result (a count, a sum) held in its slot of a
 * store no other process maps, taken into a buffer that holds it: the word and the bytes
 * read, one CAS that drops the reference, and on the last one the slot back to this
 * thread's cache. Any other case, before anything is changed: get_take_general. */
SHOAL__INLINE int get_take(shoal_ref ref, void *buf, size_t cap, size_t *len)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t id = ref.id, idx = shoal__id_idx(id), gen = shoal__id_gen(id);
    if (unlikely(shoal__id_host(id) != 0 || idx == 0 || idx >= rt->nslots ||
                 shoal__holds != NULL || !len || !buf || cap < 8))
        return get_take_general(ref, buf, cap, len, false);
    shoal__slot *s = &rt->slots[idx];
    /* acquire: pairs with the release that made the object READY (its offset, length and
     * bytes are visible). */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (unlikely(!take_hit(w, id))) {
        if (!(shoal__w_gen(w) == gen && shoal__w_pending(w) && shoal__tls.worker >= 0))
            return get_take_general(ref, buf, cap, len, false);
        w = take_help(s, ref);
        if (unlikely(!take_hit(w, id)))
            return get_take_general(ref, buf, cap, len, true);   /* counted in take_help */
    }
    /* A word held in the slot's own field: inside the table, so no span check; read before
     * the drop below, after which the slot may be another object's. */
    if (unlikely(__atomic_load_n(&s->len, __ATOMIC_RELAXED) != (SHOAL__LEN_INL | 8) ||
                 shoal__w_refs(w) == 0))
        return get_take_general(ref, buf, cap, len, false);
    uint64_t v = __atomic_load_n(&s->off, __ATOMIC_RELAXED);
    uint64_t nw = shoal__w_refs(w) > 1 ? w - 1 : shoal__w_make(shoal__gen_next(gen), SHOAL__FREE, 0);
    /* acq_rel, as unref's: release orders our read of the bytes before the free; acquire
     * (on the last drop) sees every other holder's release before freeing. */
    if (unlikely(!atomic_compare_exchange_strong_explicit(&s->word, &w, nw, memory_order_acq_rel,
                                                          memory_order_relaxed)))
        return get_take_general(ref, buf, cap, len, false);   /* the word moved: nothing done */
    memcpy(buf, &v, 8);
    *len = 8;
    if (shoal__w_refs(w) == 1)
        take_free_inl(rt, idx, w);
    return 0;
}

SHOAL_API int shoal_take(shoal_ref ref, void *buf, size_t cap, size_t *len)
{
    SHOAL__CALL(get_take(ref, buf, cap, len));
}

void shoal__slot_corrupt(uint64_t idx)
{
    static _Atomic int told;
    if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
        shoal__log("object table slot %llu is corrupt (bytes outside the store, or a live "
                   "object on a free list: a process wrote the table): it is leaked, not "
                   "used or freed", (unsigned long long)idx);
}

/* ---- small queries ----------------------------------------------------------------------- */

static int object_node(shoal_ref ref)
{
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    return s ? shoal__slot_node(s) : err;
}

SHOAL_API int shoal_object_node(shoal_ref ref)
{
    SHOAL__CALL(object_node(ref));
}
