/* objrefs.h - objects that contain refs (shoal_put_with_refs, shoal_task_return_with_refs):
 * the list of contained refs kept at the end of the object's allocation, and the release of
 * what that list holds when the object goes. Internal: never installed.
 *
 * An object with refs has SHOAL__AUX_REFS in its slot's aux and one allocation laid out as
 *     [payload: len bytes][pad to 8][trailer: header, then n IDs]
 * with s->len the payload's length (what get returns; the fast path is unchanged) while the
 * object lives. The trailer is in the shared span, so whichever process drops the object's
 * last reference can read it; it holds IDs only. The object holds one reference on each
 * listed object, kept out of every process's reference ledger (mproc/): those references
 * belong to the object, not to the process that put it, so a put-and-die client does not
 * take them along, and whichever process frees the object drops them. In a published or
 * attached store they are counted per listed object instead (the list holds,
 * layout/mpseg.h), so that the owner, dropping what a dead process held, knows them as
 * holders and never takes one for the dead process's.
 *
 * When the object is freed, its freer releases the list (shoal__refs_free) and, before the
 * bytes go, rewrites s->len to the whole allocation's length and clears the flag: every
 * free path below (the allocator, another process's remote-free drain, a dead process's
 * reclaim) then frees exactly what was allocated, knowing nothing of trailers.
 */
#ifndef SHOAL_CORE_OBJREFS_H
#define SHOAL_CORE_OBJREFS_H

#include "store.h"

#define SHOAL__TR_MAGIC UINT32_C(0x73667273)   /* "srfs" */

/* The trailer. magic and n are written before the object is published and never change;
 * link, cursor and word are scratch for the one thread that frees the object (it owns the
 * dead object's bytes): its stack of objects being freed lives in their own trailers, so
 * that freeing a nested chain of any depth takes no recursion and no memory. cursor (IDs
 * released so far) starts at 0 and only grows, so that the owner finishing the free of a
 * process that died part-way resumes where it stopped. */
struct shoal__trailer {
    uint32_t magic;
    uint32_t n;          /* IDs that follow, <= SHOAL_OBJECT_REFS_MAX */
    uint32_t link;       /* being freed: the slot freed after this one (0 = none); being
                            put (not yet published): the IDs whose references are taken */
    uint32_t cursor;     /* being freed: IDs released so far */
    uint64_t word;       /* being freed: the slot word its last reference's drop saw */
    uint64_t ids[];
};
_Static_assert(sizeof(struct shoal__trailer) == 24, "the trailer is shared between processes");

/* Where the trailer starts after a payload of len bytes, and the allocation's length. */
static inline uint64_t shoal__trailer_at(uint64_t len) { return (len + 7) & ~(uint64_t)7; }
static inline uint64_t shoal__refs_alloc_len(uint64_t len, uint64_t n)
{
    return shoal__trailer_at(len) + sizeof(struct shoal__trailer) + 8 * n;
}

/* The trailer of an object whose bytes are at [off, off + len) with SHOAL__AUX_REFS, with
 * its count in *n, or NULL if any of it lies outside the span or it does not look like one
 * (another process wrote the table or the bytes): callers then leak rather than follow. */
static inline struct shoal__trailer *shoal__trailer_of(const shoal__rt_t *rt, uint64_t off,
                                                       uint64_t len, uint32_t *n)
{
    uint64_t span = rt->node_span * rt->nnodes;
    if (off >= span || len > span - off || shoal__trailer_at(len) > span - off ||
        span - off - shoal__trailer_at(len) < sizeof(struct shoal__trailer))
        return NULL;
    struct shoal__trailer *tr = (struct shoal__trailer *)(void *)(rt->base + off +
                                                                  shoal__trailer_at(len));
    uint32_t k = __atomic_load_n(&tr->n, __ATOMIC_RELAXED);
    if (__atomic_load_n(&tr->magic, __ATOMIC_RELAXED) != SHOAL__TR_MAGIC ||
        k > SHOAL_OBJECT_REFS_MAX || shoal__refs_alloc_len(len, k) > span - off)
        return NULL;
    *n = k;
    return tr;
}

/* The length of the allocation behind a slot's (off, len, aux) as read by a scanner (spill's
 * layout): len, or the payload and trailer of an object with refs. */
static inline uint64_t shoal__slot_alloc_len(const shoal__rt_t *rt, uint64_t off, uint64_t len,
                                             uint32_t aux)
{
    uint32_t n;
    if (likely(!(aux & SHOAL__AUX_REFS)) || !shoal__trailer_of(rt, off, len, &n))
        return len;
    return shoal__refs_alloc_len(len, n);
}

/* How a freer disposes of a dead object without refs (its last reference gone, word oldw):
 * core's own free (core/object.c) or a service thread's (mproc/remote_free.c). */
typedef void (*shoal__free_fn)(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *arg);

/* SHOAL_EINVAL (message naming `call`) when refs[0..n) cannot be a list: NULL with n > 0,
 * or n above SHOAL_OBJECT_REFS_MAX. */
SHOAL__HIDDEN int  shoal__refs_check(const shoal_ref refs[], size_t n, const char *call);
/* shoal_put_with_refs: the object in slot idx (not yet published; its off/len/aux and its
 * trailer, written with shoal__refs_write, are in place) takes one reference on each of
 * refs[0..n), all or nothing: on error (SHOAL_EINVAL, SHOAL_ESTALE; message "refs[i]: ...")
 * nothing is held and the slot's flag is cleared. Crash-safe across processes: the flag is
 * set before the first take and the trailer's link counts the references taken (each after
 * its take), so the owner drops exactly those of a client that dies before publishing
 * (shoal__refs_unput), but the one being taken at the kill (a leak, never a double drop). */
SHOAL__HIDDEN int  shoal__refs_put_take(shoal__rt_t *rt, uint32_t idx, const shoal_ref refs[],
                                        size_t n);
/* The owner, for a dead process: slot idx is an object it was putting with refs and never
 * published (FREE, flagged, in its cache): drop the references its list says were taken,
 * each object that frees in turn ending in free_plain (as shoal__refs_free), and clear the
 * flag; the slot is then a plain free slot. */
SHOAL__HIDDEN void shoal__refs_unput(shoal__rt_t *rt, uint32_t idx, shoal__free_fn free_plain,
                                     void *arg);
/* Take one reference on each of refs[0..n) for an object (out of the ledger, see above),
 * all or nothing: SHOAL_EINVAL (NULL list, n too large, a null, forged or full ref) or
 * SHOAL_ESTALE, message naming `call` and the index, nothing held. */
SHOAL__HIDDEN int  shoal__refs_take(const shoal_ref refs[], size_t n, const char *call);
/* Drop what shoal__refs_take took (a failed put). */
SHOAL__HIDDEN void shoal__refs_untake(const shoal_ref refs[], size_t n);
/* Write the trailer for refs[0..n) after a payload of len bytes at buf. */
SHOAL__HIDDEN void shoal__refs_write(void *buf, size_t len, const shoal_ref refs[], size_t n);
/* Slot idx (SHOAL__AUX_REFS) lost its last reference (word oldw): release its list, then
 * those of every object that frees in turn, iteratively, each object ending in
 * free_plain(rt, idx, oldw, arg). A trailer that fails its checks leaks its object. */
SHOAL__HIDDEN void shoal__refs_free(shoal__rt_t *rt, uint32_t idx, uint64_t oldw,
                                    shoal__free_fn free_plain, void *arg);
/* shoal__refs_free or core's plain free, whichever applies to slot idx (a release's). */
SHOAL__HIDDEN void shoal__refs_free_one(shoal__rt_t *rt, uint32_t idx, uint64_t oldw);
/* A live object with refs fails (a task result given with shoal_task_return_with_refs whose
 * task then failed or was canceled): release its list now and make s->len the whole
 * allocation's length, so that the caller frees it as any bytes. */
SHOAL__HIDDEN void shoal__refs_forget(shoal__rt_t *rt, shoal__slot *s);
/* A pending result gets its data and refs (shoal_task_return_with_refs): all or nothing;
 * SHOAL_EINVAL also when the list would make a cycle (the result itself, or an object whose
 * list reaches it). */
SHOAL__HIDDEN int  shoal__obj_fill_refs(shoal_ref result, const void *data, size_t len,
                                        const shoal_ref refs[], size_t n);

/* core/object.c: the reference-count half of shoal_retain/shoal_release; ledger false keeps
 * the change out of this process's ledger (a reference an object holds). unref sets *last
 * to the word it replaced when it dropped the last reference (the caller frees), else 0. */
SHOAL__HIDDEN int  shoal__ref_take(shoal_ref ref, bool ledger);
SHOAL__HIDDEN int  shoal__unref(shoal_ref ref, bool ledger, uint64_t *last);
/* core/object.c: free a dead object without refs (the rest of a release). */
SHOAL__HIDDEN void shoal__obj_free_plain(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, void *arg);
/* core/object.c: a new READY object with data and a trailer, taking its refs' references
 * (shoal__refs_put_take) before it is published. */
SHOAL__HIDDEN int  shoal__obj_put_refs(const void *data, size_t len, const shoal_ref refs[],
                                       size_t n, shoal_ref *out);

#endif
