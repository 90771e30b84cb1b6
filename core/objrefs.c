/* objrefs.c - objects that contain refs: putting them (shoal_put_with_refs), giving a task's
 * result its refs (shoal_task_return_with_refs, via shoal__obj_fill_refs), reading the list
 * back (shoal_object_refs), and releasing what an object holds when it goes, iteratively.
 * The layout and the ownership rules are in objrefs.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objrefs.h"
#include "thread.h"

/* ---- taking the references ---------------------------------------------------------------- */

/* A list's reference on ref, taken or dropped: in a published or attached store the list
 * holds of its object (layout/mpseg.h) count it too. The count goes up before the object's
 * and down after it: it never reads low. */
static int list_take(shoal_ref ref)
{
    shoal__rt_t *rt = shoal__rt;
    uint64_t idx = shoal__id_idx(ref.id), gen = shoal__id_gen(ref.id);
    /* Only for the generation the slot holds now: a stale or forged ref naming a later one
     * would otherwise reset the entry to that generation (shoal__gcount_add) and drop the
     * live object's count of list holds for good, though its own take fails. A caller that
     * holds ref keeps that generation in the slot until the take below. */
    bool mp = unlikely(shoal__holds != NULL) && shoal__id_host(ref.id) == 0 && idx != 0 &&
              idx < rt->nslots &&
              shoal__w_gen(atomic_load_explicit(&rt->slots[idx].word,
                                                memory_order_relaxed)) == gen;
    if (mp)   /* relaxed: read by tools and tests only (layout/mpseg.h, list holds) */
        shoal__gcount_add(shoal__lists_of(idx), gen, 1);
    int rc = shoal__ref_take(ref, false);
    if (unlikely(rc) && mp)
        shoal__gcount_add(shoal__lists_of(idx), gen, -1);
    return rc;
}

static int list_drop(shoal_ref ref, uint64_t *last)
{
    int rc = shoal__unref(ref, false, last);
    /* After the object's count, so it never reads low (a death in between leaves it one
     * too high for that object's life). */
    if (rc == 0 && unlikely(shoal__holds != NULL))
        shoal__gcount_add(shoal__lists_of(shoal__id_idx(ref.id)), shoal__id_gen(ref.id), -1);
    return rc;
}

void shoal__refs_untake(const shoal_ref refs[], size_t n)
{
    uint64_t last;
    for (size_t i = 0; i < n; i++)
        if (list_drop(refs[i], &last) == 0 && last != 0)
            /* The caller's own reference went meanwhile (it broke the contract by releasing
             * while putting): this was the last one, so it is freed here as by any release. */
            shoal__refs_free_one(shoal__rt, (uint32_t)shoal__id_idx(refs[i].id), last);
}

int shoal__refs_check(const shoal_ref refs[], size_t n, const char *call)
{
    if (unlikely(n != 0 && refs == NULL))
        return shoal__err(SHOAL_EINVAL, "%s: refs is NULL but nrefs is %zu", call, n);
    if (unlikely(n > SHOAL_OBJECT_REFS_MAX))
        return shoal__err(SHOAL_EINVAL, "%s: %zu refs, more than one object may contain "
                          "(SHOAL_OBJECT_REFS_MAX, %u): split them over several objects and "
                          "list those", call, n, (unsigned)SHOAL_OBJECT_REFS_MAX);
    return 0;
}

int shoal__refs_take(const shoal_ref refs[], size_t n, const char *call)
{
    if (n == 0)
        return 0;
    int rc = shoal__refs_check(refs, n, call);
    if (unlikely(rc))
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = list_take(refs[i]);
        if (unlikely(rc)) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s", shoal_last_error());
            shoal__refs_untake(refs, i);
            return shoal__err(rc, "%s: refs[%zu]: %s (nothing was retained or stored)", call,
                              i, msg);
        }
    }
    return 0;
}

int shoal__refs_put_take(shoal__rt_t *rt, uint32_t idx, const shoal_ref refs[], size_t n)
{
    shoal__slot *s = &rt->slots[idx];
    struct shoal__trailer *tr = (struct shoal__trailer *)(void *)(rt->base + s->off +
                                                                  shoal__trailer_at(s->len));
    /* An attached process: the slot is named by its ledger and tagged as cached (a slot
     * from a small table's shared stack is not yet), so that the owner finds it if we die
     * before publishing. The flag after the trailer (written by the caller): a flagged
     * unpublished slot has a whole list. */
    if (unlikely(shoal__holds != NULL) && rt->proc != 0)
        shoal__slot_tag(rt, idx, SHOAL__W_CACHED | rt->proc);
    __atomic_fetch_or(&s->aux, SHOAL__AUX_REFS, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++) {
        int rc = list_take(refs[i]);
        if (likely(rc == 0)) {
            /* After the take: a death between the two leaks that one reference, never
             * drops one not taken. */
            __atomic_store_n(&tr->link, (uint32_t)(i + 1), __ATOMIC_RELAXED);
            continue;
        }
        char msg[200];
        snprintf(msg, sizeof msg, "%s", shoal_last_error());
        size_t bad = i;
        /* Undone last first, the count before each drop (a death between leaks it). */
        uint64_t last;
        while (i-- > 0) {
            __atomic_store_n(&tr->link, (uint32_t)i, __ATOMIC_RELAXED);
            if (list_drop(refs[i], &last) == 0 && last != 0)
                shoal__refs_free_one(rt, (uint32_t)shoal__id_idx(refs[i].id), last);
        }
        __atomic_fetch_and(&s->aux, ~SHOAL__AUX_REFS, __ATOMIC_RELAXED);
        return shoal__err(rc, "refs[%zu]: %s", bad, msg);
    }
    return 0;
}

void shoal__refs_write(void *buf, size_t len, const shoal_ref refs[], size_t n)
{
    struct shoal__trailer *tr = (struct shoal__trailer *)(void *)((char *)buf +
                                                                  shoal__trailer_at(len));
    tr->magic = SHOAL__TR_MAGIC;
    tr->n = (uint32_t)n;
    tr->link = 0;
    tr->cursor = 0;
    tr->word = 0;
    for (size_t i = 0; i < n; i++)
        tr->ids[i] = refs[i].id;
}

/* ---- releasing what an object holds ---------------------------------------------------------
 * The thread that frees an object with refs keeps a stack of such objects being freed,
 * linked through their own trailers (objrefs.h): the top one's next ID is released; an
 * object that frees in turn and has refs is pushed; one whose IDs are all released is
 * popped and freed. Depth costs neither stack frames nor memory, and no thread-local
 * storage: the stack's head is a local of the outermost call (libshoal.so's static TLS is
 * kept small for dlopen, tests/test_dlopen.c). */
struct dropper {
    shoal__rt_t *rt;
    uint32_t top;              /* slot index of the top object, 0 = empty */
    shoal__free_fn free_plain; /* how an object without refs is freed */
    void *arg;
};

SHOAL__COLD static void leak_corrupt(shoal__rt_t *rt, uint32_t idx, uint64_t oldw)
{
    static _Atomic int told;
    if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
        shoal__log("object table slot %u: its list of contained refs is corrupt (a process "
                   "wrote the store): the object and what it lists are leaked, not freed", idx);
    /* Its length is unknown: leak slot and bytes. */
    if (oldw & SHOAL__W_WAITERS)
        shoal__wake_slot(rt, idx);
}

static void push(struct dropper *d, uint32_t idx, uint64_t oldw)
{
    shoal__slot *s = &d->rt->slots[idx];
    uint32_t n;
    struct shoal__trailer *tr = shoal__trailer_of(d->rt, s->off, s->len, &n);
    if (unlikely(tr == NULL)) {
        leak_corrupt(d->rt, idx, oldw);
        return;
    }
    /* cursor is left as it is: 0 from shoal__refs_write for a first free; for an object
     * whose freer died part-way (the owner finishing it: publish.c, left_one and
     * unpushed_one), where that freer got to, so no ID is dropped twice (one it was
     * dropping when it died is leaked: cursor moves before the drop). */
    tr->link = d->top;
    tr->word = oldw;
    d->top = idx;
}

/* Drop the reference an object held on id: if it was the last, free that object, or push
 * it if it has refs. Errors (a forged or already freed ID in the list) are skipped: the
 * list is data another process could have written; what it names is checked. */
static void drop_one(struct dropper *d, uint64_t id)
{
    uint64_t last;
    if (list_drop((shoal_ref){ id }, &last) != 0 || last == 0)
        return;
    uint32_t idx = (uint32_t)shoal__id_idx(id);
    if (__atomic_load_n(&d->rt->slots[idx].aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS)
        push(d, idx, last);
    else
        d->free_plain(d->rt, idx, last, d->arg);
}

static void run(struct dropper *d)
{
    shoal__rt_t *rt = d->rt;
    while (d->top != 0) {
        uint32_t idx = d->top, n;
        shoal__slot *s = &rt->slots[idx];
        /* Checked again: another process could have written the slot or the bytes since
         * the push. Then the rest of the stack is let go (leaked), never followed. */
        struct shoal__trailer *tr = shoal__trailer_of(rt, s->off, s->len, &n);
        if (unlikely(tr == NULL)) {
            d->top = 0;
            leak_corrupt(rt, idx, 0);
            return;
        }
        uint32_t c = tr->cursor;
        if (c < n) {
            tr->cursor = c + 1;
            drop_one(d, tr->ids[c]);
            continue;
        }
        uint32_t link = tr->link;
        uint64_t w = tr->word;
        d->top = link < rt->nslots ? link : 0;
        /* From here the object is bytes like any other: no flag, its whole allocation. The
         * flag first: a freer that dies between the two leaves a plain object of its payload's
         * length (the owner frees its own from its records; another process's allocator
         * checks the length, a leak at worst), where the other order left a flagged object
         * whose trailer can no longer be found (its list finished again: leaked whole). */
        uint64_t whole = shoal__refs_alloc_len(s->len, n);
        __atomic_fetch_and(&s->aux, ~SHOAL__AUX_REFS, __ATOMIC_RELAXED);
        s->len = whole;
        d->free_plain(rt, idx, w, d->arg);
    }
}

void shoal__refs_free(shoal__rt_t *rt, uint32_t idx, uint64_t oldw, shoal__free_fn free_plain,
                      void *arg)
{
    struct dropper d = { rt, 0, free_plain, arg };
    push(&d, idx, oldw);
    run(&d);
}

void shoal__refs_unput(shoal__rt_t *rt, uint32_t idx, shoal__free_fn free_plain, void *arg)
{
    shoal__slot *s = &rt->slots[idx];
    uint32_t n;
    struct shoal__trailer *tr = shoal__trailer_of(rt, s->off, s->len, &n);
    if (unlikely(tr == NULL)) {
        leak_corrupt(rt, idx, 0);
    } else {
        uint32_t k = __atomic_load_n(&tr->link, __ATOMIC_RELAXED);
        struct dropper d = { rt, 0, free_plain, arg };
        for (uint32_t i = 0; i < k && i < n; i++) {
            drop_one(&d, tr->ids[i]);
            run(&d);
        }
    }
    __atomic_fetch_and(&s->aux, ~SHOAL__AUX_REFS, __ATOMIC_RELAXED);
}

void shoal__refs_free_one(shoal__rt_t *rt, uint32_t idx, uint64_t oldw)
{
    if (__atomic_load_n(&rt->slots[idx].aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS)
        shoal__refs_free(rt, idx, oldw, shoal__obj_free_plain, NULL);
    else
        shoal__obj_free_plain(rt, idx, oldw, NULL);
}

/* ---- cycles ------------------------------------------------------------------------------------
 * put_with_refs cannot make one: its object is new, so no list can name it. A task's result
 * exists (pending) before its task returns, so shoal_task_return_with_refs checks that no
 * listed object reaches the result through the lists of objects that have one. The checks
 * and the lists they read are serialised by one lock (only the owner runs tasks, so a
 * process-private lock suffices): of two results returned at once that would name each
 * other, the second sees the first's list. Objects reached are alive (held by the lists
 * that reach them, from references the caller took), so their lists are safe to read. */
static pthread_mutex_t fill_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fill_once = PTHREAD_ONCE_INIT;
static void fill_lock_child(void) { pthread_mutex_init(&fill_lock, NULL); }
static void fill_lock_atfork(void) { pthread_atfork(NULL, NULL, fill_lock_child); }
static void fill_lock_take(void)
{
    pthread_once(&fill_once, fill_lock_atfork);
    pthread_mutex_lock(&fill_lock);
}

struct walk {
    uint64_t *stack;
    size_t n, cap;
    uint32_t *seen;     /* open addressing, 0 = empty (slot 0 is never an object) */
    size_t nseen, mask;
};

static bool walk_push(struct walk *k, uint64_t id)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        uint64_t *p = realloc(k->stack, cap * sizeof *p);
        if (!p)
            return false;
        k->stack = p;
        k->cap = cap;
    }
    k->stack[k->n++] = id;
    return true;
}

/* 1 if idx was added, 0 if seen before, -1 out of memory. */
static int walk_see(struct walk *k, uint32_t idx)
{
    if (2 * (k->nseen + 1) > k->mask + 1) {
        size_t cap = k->mask ? 2 * (k->mask + 1) : 64;
        uint32_t *p = calloc(cap, sizeof *p);
        if (!p)
            return -1;
        for (size_t i = 0; k->seen && i <= k->mask; i++)
            if (k->seen[i])
                for (size_t h = (k->seen[i] * 2654435761u) & (cap - 1);; h = (h + 1) & (cap - 1))
                    if (!p[h]) {
                        p[h] = k->seen[i];
                        break;
                    }
        free(k->seen);
        k->seen = p;
        k->mask = cap - 1;
    }
    for (size_t h = (idx * 2654435761u) & k->mask;; h = (h + 1) & k->mask) {
        if (k->seen[h] == idx)
            return 0;
        if (!k->seen[h]) {
            k->seen[h] = idx;
            k->nseen++;
            return 1;
        }
    }
}

/* 1 if target is refs[i] or reachable from one through lists, 0 if not, SHOAL_ENOMEM. */
static int reaches(shoal__rt_t *rt, uint64_t target, const shoal_ref refs[], size_t n)
{
    struct walk k = { 0 };
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!walk_push(&k, refs[i].id))
            rc = SHOAL_ENOMEM;
    while (rc == 0 && k.n) {
        uint64_t id = k.stack[--k.n], idx = shoal__id_idx(id);
        if (id == target) {
            rc = 1;
            break;
        }
        if (shoal__id_host(id) != 0 || idx == 0 || idx >= rt->nslots)
            continue;
        shoal__slot *s = &rt->slots[idx];
        /* acquire: pairs with the release that published the object (its list). */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (shoal__w_gen(w) != shoal__id_gen(id) || shoal__w_state(w) == SHOAL__FREE ||
            !(__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS))
            continue;
        int seen = walk_see(&k, (uint32_t)idx);
        if (seen <= 0) {
            rc = seen < 0 ? SHOAL_ENOMEM : 0;
            continue;
        }
        uint32_t m;
        const struct shoal__trailer *tr = shoal__trailer_of(rt, s->off, s->len, &m);
        for (uint32_t j = 0; tr && j < m && rc == 0; j++)
            if (!walk_push(&k, tr->ids[j]))
                rc = SHOAL_ENOMEM;
    }
    free(k.stack);
    free(k.seen);
    return rc;
}

int shoal__obj_fill_refs(shoal_ref result, const void *data, size_t len, const shoal_ref refs[],
                         size_t n)
{
    const char *call = "shoal_task_return_with_refs";
    if (unlikely(len > SIZE_MAX / 2))
        return shoal__err(SHOAL_ENOMEM, "%s: %zu bytes is more than any store holds", call, len);
    int rc = shoal__refs_take(refs, n, call);
    if (unlikely(rc))
        return rc;
    shoal__rt_t *rt = shoal__rt;
    fill_lock_take();
    rc = n ? reaches(rt, result.id, refs, n) : 0;
    if (unlikely(rc)) {
        pthread_mutex_unlock(&fill_lock);
        shoal__refs_untake(refs, n);
        if (rc == 1)
            return shoal__err(SHOAL_EINVAL, "%s: the list names the task's own result "
                              "0x%016llx, or an object whose refs lead back to it: an object "
                              "cannot contain itself (nothing was retained or stored)", call,
                              (unsigned long long)result.id);
        return shoal__err(rc, "%s: out of memory checking the list for cycles", call);
    }
    void *buf;
    size_t alen = n ? (size_t)shoal__refs_alloc_len(len, n) : len;
    rc = shoal__obj_fill(result, alen, -1, &buf);
    if (likely(rc == 0)) {
        if (len)
            memcpy(buf, data, len);
        if (n) {
            shoal__refs_write(buf, len, refs, n);
            shoal__slot *s = &rt->slots[shoal__id_idx(result.id)];
            s->len = len;   /* the payload; published by the completion's release */
            __atomic_fetch_or(&s->aux, SHOAL__AUX_REFS, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&fill_lock);
    if (unlikely(rc))
        shoal__refs_untake(refs, n);
    return rc;
}

void shoal__refs_forget(shoal__rt_t *rt, shoal__slot *s)
{
    fill_lock_take();
    uint32_t n;
    struct shoal__trailer *tr = shoal__trailer_of(rt, s->off, s->len, &n);
    if (unlikely(tr == NULL)) {
        leak_corrupt(rt, (uint32_t)(s - rt->slots), 0);
        s->len = 0;   /* its length is unknown: leak the bytes */
    } else {
        struct dropper d = { rt, 0, shoal__obj_free_plain, NULL };
        for (uint32_t i = 0; i < n; i++) {
            drop_one(&d, tr->ids[i]);
            run(&d);
        }
        s->len = shoal__refs_alloc_len(s->len, n);
    }
    __atomic_fetch_and(&s->aux, ~SHOAL__AUX_REFS, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&fill_lock);
}

/* ---- the public calls ------------------------------------------------------------------------- */

static int put_with_refs(const void *data, size_t len, const shoal_ref refs[], size_t nrefs,
                         shoal_ref *out)
{
    if (unlikely(out == NULL || (data == NULL && len != 0)))
        return shoal__err(SHOAL_EINVAL, out ? "shoal_put_with_refs: data is NULL but len is %zu"
                                            : "shoal_put_with_refs: out is NULL (%zu bytes)", len);
    if (unlikely(len > SIZE_MAX / 2))
        return shoal__err(SHOAL_ENOMEM, "shoal_put_with_refs: %zu bytes is more than any "
                          "store holds", len);
    int rc = shoal__refs_check(refs, nrefs, "shoal_put_with_refs");
    if (unlikely(rc))
        return rc;
    /* The references are taken inside, once the list is in the store (shoal__refs_put_take). */
    rc = shoal__obj_put_refs(data, len, refs, nrefs, out);
    if (unlikely(rc)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", shoal_last_error());
        return shoal__err(rc, "shoal_put_with_refs: %s (nothing was retained or stored)", msg);
    }
    return 0;
}

SHOAL_API int shoal_put_with_refs(const void *data, size_t len, const shoal_ref refs[],
                                  size_t nrefs, shoal_ref *out)
{
    SHOAL__CALL(put_with_refs(data, len, refs, nrefs, out));
}

static int object_refs(shoal_ref ref, shoal_ref out[], size_t cap, size_t *n)
{
    if (unlikely(n == NULL || (out == NULL && cap != 0)))
        return shoal__err(SHOAL_EINVAL, n ? "shoal_object_refs: out is NULL but cap is %zu"
                                          : "shoal_object_refs: n is NULL (cap %zu)", cap);
    int err;
    shoal__slot *s = shoal__slot_of(ref, &err);
    if (!s)
        return err;
    shoal__rt_t *rt = shoal__rt;
    /* acquire: pairs with the release that published the object (off, len, aux, list). */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (shoal__w_pending(w))
        return shoal__err(SHOAL_EBUSY, "shoal_object_refs: object 0x%016llx is not complete "
                          "yet: wait for it (shoal_get_timeout, shoal_wait) first",
                          (unsigned long long)ref.id);
    uint32_t k = 0;
    if (__atomic_load_n(&s->aux, __ATOMIC_RELAXED) & SHOAL__AUX_REFS) {
        const struct shoal__trailer *tr = shoal__trailer_of(rt, s->off, s->len, &k);
        if (!tr)
            return shoal__err(SHOAL_EIO, "shoal_object_refs: the list of refs of object "
                              "0x%016llx is corrupt (a process wrote the store)",
                              (unsigned long long)ref.id);
        for (size_t i = 0; i < k && i < cap; i++)
            out[i].id = tr->ids[i];
    }
    /* The contract has the caller hold a reference, so the object cannot go meanwhile; this
     * re-check (as spill's scan does: a seqlock-style re-read) only turns a caller that broke
     * it into an ESTALE, rather than another object's list, where loads keep their order.
     * acquire: pairs with the release of the free's CAS. */
    uint64_t w2 = atomic_load_explicit(&s->word, memory_order_acquire);
    if (shoal__w_gen(w2) != shoal__w_gen(w) || shoal__w_state(w2) == SHOAL__FREE)
        return shoal__err(SHOAL_ESTALE, "shoal_object_refs: stale ref 0x%016llx: its object "
                          "was freed", (unsigned long long)ref.id);
    *n = k;
    return 0;
}

SHOAL_API int shoal_object_refs(shoal_ref ref, shoal_ref out[], size_t cap, size_t *n)
{
    SHOAL__CALL(object_refs(ref, out, cap, n));
}
