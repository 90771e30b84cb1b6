/* test_threads.c - many threads at once: puts, gets and releases of their own objects,
 * objects handed to and freed by another thread, shared objects retained and released
 * concurrently, and threads that exit while holding caches. The live counts must come back
 * to where they started. Black-box through shoal.h. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lib/check.h"

enum { NTHREADS = 6, NSHARED = 16, WINDOW = 32, MAILBOX = 64 };

/* A bounded hand-off queue between neighbour threads (a mutex is fine in a test). */
struct mailbox {
    pthread_mutex_t mu;
    shoal_ref q[MAILBOX];
    uint64_t seq[MAILBOX];
    int n;
};

struct worker {
    int id, iters;
    struct mailbox *in, *out;
    shoal_ref *shared;
    /* results, checked by main */
    int errors, corrupt;
    long received;
    char first_error[256];
};

static void note(struct worker *w, const char *what, int rc)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "thread %d: %s = %d (%s): %s",
                 w->id, what, rc, shoal_strerror(rc), shoal_last_error());
}

/* The object (who, seq) has a size derived from both, so a mix-up also shows in len. */
static size_t size_of(uint64_t who, uint64_t seq)
{
    uint64_t x = who * 131 + seq * 7919;
    if (seq % 97 == 0)
        return 65536 + x % 4096;            /* now and then a larger one */
    return x % 2048;
}

static void check_obj(struct worker *w, shoal_ref r, uint64_t who, uint64_t seq)
{
    const void *d = NULL; size_t n = 0;
    int rc = get_within(r, &d, &n);
    if (rc != 0)
        note(w, "shoal_get", rc);
    else if (n != size_of(who, seq) || !pat_ok(d, n, who, seq))
        w->corrupt++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    shoal_ref mine[WINDOW];
    uint64_t mine_seq[WINDOW];
    int have = 0, rc;
    unsigned char *buf = malloc(65536 + 4096);
    uint64_t rs = (uint64_t)w->id * 7 + 1;
    for (int i = 0; i < w->iters; i++) {
        uint64_t seq = (uint64_t)i;
        size_t len = size_of((uint64_t)w->id, seq);
        pat_fill(buf, len, (uint64_t)w->id, seq);
        shoal_ref r;
        if ((rc = shoal_put(buf, len, &r)) != 0) {
            note(w, "shoal_put", rc);
            continue;
        }
        check_obj(w, r, (uint64_t)w->id, seq);

        /* Every third object goes to the next thread, which checks and frees it. */
        int sent = 0;
        if (i % 3 == 0) {
            pthread_mutex_lock(&w->out->mu);
            if (w->out->n < MAILBOX) {
                w->out->q[w->out->n] = r;
                w->out->seq[w->out->n++] = ((uint64_t)w->id << 32) | seq;
                sent = 1;
            }
            pthread_mutex_unlock(&w->out->mu);
        }
        if (!sent) {
            if (have == WINDOW) {            /* keep a window: release the oldest */
                check_obj(w, mine[0], (uint64_t)w->id, mine_seq[0]);
                if ((rc = shoal_release(mine[0])) != 0)
                    note(w, "shoal_release(own)", rc);
                memmove(mine, mine + 1, sizeof mine[0] * (WINDOW - 1));
                memmove(mine_seq, mine_seq + 1, sizeof mine_seq[0] * (WINDOW - 1));
                have--;
            }
            mine[have] = r;
            mine_seq[have++] = seq;
        }

        /* Take what the previous thread sent. */
        shoal_ref got[MAILBOX];
        uint64_t got_seq[MAILBOX];
        int ng;
        pthread_mutex_lock(&w->in->mu);
        ng = w->in->n;
        memcpy(got, w->in->q, sizeof got[0] * (size_t)ng);
        memcpy(got_seq, w->in->seq, sizeof got_seq[0] * (size_t)ng);
        w->in->n = 0;
        pthread_mutex_unlock(&w->in->mu);
        for (int k = 0; k < ng; k++) {
            check_obj(w, got[k], got_seq[k] >> 32, got_seq[k] & 0xffffffffu);
            if ((rc = shoal_release(got[k])) != 0)
                note(w, "shoal_release(received)", rc);
            w->received++;
        }

        /* Shared objects: an extra reference taken and dropped by everyone at once. */
        shoal_ref s = w->shared[rnd_next(&rs) % NSHARED];
        if ((rc = shoal_retain(s)) != 0) {
            note(w, "shoal_retain(shared)", rc);
        } else {
            const void *d; size_t n;
            if ((rc = get_within(s, &d, &n)) != 0)
                note(w, "get_within(shared)", rc);
            else if (n != sizeof(uint64_t) * 8)
                w->corrupt++;
            if ((rc = shoal_release(s)) != 0)
                note(w, "shoal_release(shared)", rc);
        }
    }
    for (int k = 0; k < have; k++) {
        check_obj(w, mine[k], (uint64_t)w->id, mine_seq[k]);
        if ((rc = shoal_release(mine[k])) != 0)
            note(w, "shoal_release(own, end)", rc);
    }
    free(buf);
    return NULL;
}

static void test_many_threads(void)
{
    shoal_config c = shoal_test_config();
    test_start(c);
    shoal_info base = info_now();
    shoal_ref shared[NSHARED];
    for (int k = 0; k < NSHARED; k++) {
        uint64_t v[8];
        for (int j = 0; j < 8; j++)
            v[j] = (uint64_t)k * 8 + (uint64_t)j;
        ASSERT_OK(shoal_put(v, sizeof v, &shared[k]));
    }
    static struct mailbox mb[NTHREADS];
    static struct worker w[NTHREADS];
    pthread_t t[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        pthread_mutex_init(&mb[k].mu, NULL);
        mb[k].n = 0;
    }
    for (int k = 0; k < NTHREADS; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].id = k + 1;
        w[k].iters = 20000 / SAN_DIV;
        w[k].in = &mb[k];
        w[k].out = &mb[(k + 1) % NTHREADS];
        w[k].shared = shared;
        CU_ASSERT_FATAL(pthread_create(&t[k], NULL, worker_main, &w[k]) == 0);
    }
    long received = 0;
    for (int k = 0; k < NTHREADS; k++) {
        pthread_join(t[k], NULL);
        if (w[k].errors)
            fprintf(stderr, "%d errors, first: %s\n", w[k].errors, w[k].first_error);
        CU_ASSERT_EQUAL(w[k].errors, 0);
        CU_ASSERT_EQUAL(w[k].corrupt, 0);
        received += w[k].received;
    }
    CU_ASSERT(received > 0);                 /* the cross-thread path really ran */
    /* Whatever is still in a mailbox was sent after its receiver finished. */
    for (int k = 0; k < NTHREADS; k++) {
        for (int j = 0; j < mb[k].n; j++)
            CHECK_OK(shoal_release(mb[k].q[j]));
        pthread_mutex_destroy(&mb[k].mu);
    }
    /* Each shared object got back to exactly the one reference main holds. */
    for (int k = 0; k < NSHARED; k++) {
        const void *d; size_t n;
        CHECK_OK(get_within(shared[k], &d, &n));
        CU_ASSERT(n == 64 && ((const uint64_t *)d)[7] == (uint64_t)k * 8 + 7);
        CHECK_OK(shoal_release(shared[k]));
        CHECK_RC(shoal_get_timeout(shared[k], 0, &d, &n), SHOAL_ESTALE);
    }
    shoal_info end = info_now();
    CU_ASSERT_EQUAL(end.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(end.bytes_used, base.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

/* ---- threads that exit while holding caches ------------------------------------------ */

enum { KEEP = 100 };

struct leaver {
    int id, rc;
    shoal_ref kept[KEEP];
};

/* Fills its allocation and slot caches (puts and frees of many sizes), leaves KEEP objects
 * to main, and exits. */
static void *leaver_main(void *arg)
{
    struct leaver *l = arg;
    unsigned char buf[20000];
    l->rc = 0;
    for (int k = 0; k < 300 && l->rc == 0; k++) {
        size_t len = (size_t)(k * 61) % sizeof buf;
        pat_fill(buf, len, (uint64_t)l->id, (uint64_t)k);
        shoal_ref r;
        l->rc = shoal_put(buf, len, &r);
        if (l->rc == 0 && k < KEEP)
            l->kept[k] = r;
        else if (l->rc == 0)
            l->rc = shoal_release(r);
    }
    return NULL;
}

static int fill_count(size_t len, shoal_ref *refs, int max)
{
    static unsigned char buf[4096];
    int n = 0;
    while (n < max && shoal_put(buf, len, &refs[n]) == 0)
        n++;
    return n;
}

/* ---- slots handed between threads in chains ------------------------------------------- */

/* A thread that releases objects another thread made, or makes some and exits. */
struct hand { shoal_ref *refs; int n, made, bad; };

static void *release_all(void *arg)
{
    struct hand *h = arg;
    for (int i = 0; i < h->n; i++)
        h->bad += shoal_release(h->refs[i]) != 0;
    return NULL;
}

static void *make_some_and_exit(void *arg)
{
    struct hand *h = arg;
    static const unsigned char b[64];
    for (int i = 0; i < h->n; i++)
        if (shoal_put(b, sizeof b, &h->refs[i]) == 0)
            h->made++;
    for (int i = 0; i < h->made; i++)
        h->bad += shoal_release(h->refs[i]) != 0;
    return NULL;   /* exits holding what is left of the chains it took (core/slots.c) */
}

/* Slots freed by one thread go back to the shared stack in chains; a thread that takes a
 * chain holds its unused slots until it exits. None may be lost: after producers,
 * consumers and exiting threads, the table holds exactly as many objects as at first. */
static void test_slot_chains_come_back(void)
{
    shoal_config c = shoal_test_config();
    c.max_objects = 600;
    test_start(c);
    static shoal_ref refs[1000];
    int before = fill_count(64, refs, 1000);
    CU_ASSERT_EQUAL(before, 600);
    for (int round = 0; round < 4; round++) {
        /* This thread made them, another frees them: they reach the stack as chains. */
        struct hand h = { refs, before, 0, 0 };
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, release_all, &h) == 0);
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(h.bad, 0);
        /* Threads that take chains, use part of them and exit. */
        for (int k = 0; k < 3; k++) {
            static shoal_ref mine[50];
            struct hand m = { mine, 10 + 13 * k, 0, 0 };
            CU_ASSERT_FATAL(pthread_create(&t, NULL, make_some_and_exit, &m) == 0);
            pthread_join(t, NULL);
            CU_ASSERT_EQUAL(m.made, m.n);
            CU_ASSERT_EQUAL(m.bad, 0);
        }
        int again = fill_count(64, refs, 1000);
        CU_ASSERT_EQUAL(again, before);
        before = again;
    }
    for (int i = 0; i < before; i++)
        CHECK_OK(shoal_release(refs[i]));
    CU_ASSERT_EQUAL(info_now().objects_live, 0);
    ASSERT_OK(shoal_shutdown());
}

static void test_exiting_threads(void)
{
    shoal_config c = shoal_test_config();
    c.store_bytes = 16u << 20;
    c.max_objects = 2048;
    test_start(c);
    shoal_info base = info_now();
    enum { MAXFILL = 100000 };
    shoal_ref *refs = malloc(sizeof *refs * MAXFILL);
    /* How many 4 KiB objects fit before any thread came and went. */
    int before = fill_count(4096, refs, MAXFILL);
    CU_ASSERT(before > 0 && before < MAXFILL);
    for (int k = 0; k < before; k++)
        CHECK_OK(shoal_release(refs[k]));

    /* Threads one after another, each exiting with full caches and KEEP live objects. */
    const int nthreads = 200 / SAN_DIV;
    int bad = 0;
    for (int k = 0; k < nthreads; k++) {
        struct leaver l;
        memset(&l, 0, sizeof l);
        l.id = 1000 + k;
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, leaver_main, &l) == 0);
        pthread_join(t, NULL);
        if (l.rc != 0) {
            fprintf(stderr, "leaver %d: %d (%s)\n", k, l.rc, shoal_strerror(l.rc));
            bad++;
            continue;
        }
        /* Its objects outlive it: readable here, then released by main. */
        for (int j = 0; j < KEEP; j++) {
            const void *d; size_t n;
            size_t len = (size_t)(j * 61) % 20000;
            if (get_within(l.kept[j], &d, &n) != 0 || n != len || !pat_ok(d, n, (uint64_t)l.id, (uint64_t)j))
                bad++;
            if (shoal_release(l.kept[j]) != 0)
                bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    shoal_info mid = info_now();
    CU_ASSERT_EQUAL(mid.objects_live, base.objects_live);
    CU_ASSERT_EQUAL(mid.bytes_used, base.bytes_used);

    /* Nothing the dead threads cached is lost for good: the store still holds about as
     * many objects as before (a leak of a few slots or extents per thread would show). */
    int after = fill_count(4096, refs, MAXFILL);
    if (after < before - before / 20)
        fprintf(stderr, "store held %d objects before %d threads exited, %d after\n",
                before, nthreads, after);
    CU_ASSERT(after >= before - before / 20);
    for (int k = 0; k < after; k++)
        CHECK_OK(shoal_release(refs[k]));
    CU_ASSERT_EQUAL(info_now().objects_live, base.objects_live);
    free(refs);
    ASSERT_OK(shoal_shutdown());
}

/* ---- last references dropped by several threads at once ------------------------------ */

enum { RACERS = 4 };
struct racer {
    pthread_barrier_t *bar;
    shoal_ref *cur;
    int rounds, bad;
};

static void *racer_main(void *arg)
{
    struct racer *x = arg;
    for (int k = 0; k < x->rounds; k++) {
        pthread_barrier_wait(x->bar);       /* main: put and retain */
        x->bad += shoal_release(*x->cur) != 0;
        pthread_barrier_wait(x->bar);       /* main: check it is gone */
    }
    return NULL;
}

static void test_racing_last_release(void)
{
    shoal_config c = shoal_test_config();
    test_start(c);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, RACERS + 1);
    shoal_ref cur = SHOAL_REF_NULL;
    struct racer x[RACERS];
    pthread_t t[RACERS];
    const int rounds = 2000 / SAN_DIV;
    for (int k = 0; k < RACERS; k++) {
        x[k] = (struct racer){ .bar = &bar, .cur = &cur, .rounds = rounds, .bad = 0 };
        CU_ASSERT_FATAL(pthread_create(&t[k], NULL, racer_main, &x[k]) == 0);
    }
    int setup_bad = 0, alive = 0;
    for (int k = 0; k < rounds; k++) {
        uint64_t v = (uint64_t)k;
        setup_bad += shoal_put(&v, sizeof v, &cur) != 0;
        for (int j = 1; j < RACERS; j++)
            setup_bad += shoal_retain(cur) != 0;
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
        const void *d; size_t n;
        alive += shoal_get_timeout(cur, 0, &d, &n) != SHOAL_ESTALE;
    }
    for (int k = 0; k < RACERS; k++) {
        pthread_join(t[k], NULL);
        CU_ASSERT_EQUAL(x[k].bad, 0);
    }
    pthread_barrier_destroy(&bar);
    CU_ASSERT_EQUAL(setup_bad, 0);
    CU_ASSERT_EQUAL(alive, 0);
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.objects_live, 0);
    CU_ASSERT_EQUAL(i.bytes_used, 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- retain racing with free and reuse ----------------------------------------------- */

/* A writer puts and frees objects as fast as it can; a reader retains IDs that are about
 * to go stale. A retain either fails (ESTALE) or pins exactly the object its ID named. */
enum { PUBLISH = 1024 };
struct churn {
    _Atomic uint64_t ids[PUBLISH];
    _Atomic int64_t last;                   /* seq of the newest published ID, -1 none */
    _Atomic int done;
    int iters, writer_bad;
    long pinned, stale, wrong, reader_bad;
};

static void *churn_writer(void *arg)
{
    struct churn *c = arg;
    unsigned char b[64];
    for (int64_t s = 0; s < c->iters; s++) {
        pat_fill(b, sizeof b, 42, (uint64_t)s);
        shoal_ref r;
        if (shoal_put(b, sizeof b, &r) != 0) {
            c->writer_bad++;
            continue;
        }
        /* release (both): pair with the reader's acquires. A reader that sees this ID
         * then also sees last >= s - 1, which is how it tells a wrapped-around slot. */
        atomic_store_explicit(&c->ids[s % PUBLISH], r.id, memory_order_release);
        atomic_store_explicit(&c->last, s, memory_order_release);
        c->writer_bad += shoal_release(r) != 0;
    }
    atomic_store_explicit(&c->done, 1, memory_order_release);
    return NULL;
}

static void *churn_reader(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
        int64_t s = atomic_load_explicit(&c->last, memory_order_acquire);
        if (s < 0)
            continue;
        /* acquire: pairs with the writer's release of ids[]. The writer may have wrapped
         * around ids[] meanwhile: then r is a newer object, s + k * PUBLISH, and the
         * re-read of last below shows it. */
        shoal_ref r = { atomic_load_explicit(&c->ids[s % PUBLISH], memory_order_acquire) };
        int rc = shoal_retain(r);
        if (rc == SHOAL_ESTALE) {
            c->stale++;
            continue;
        }
        if (rc != 0) {
            c->reader_bad++;
            continue;
        }
        int64_t s2 = atomic_load_explicit(&c->last, memory_order_acquire);
        const void *d; size_t n;
        if (get_within(r, &d, &n) != 0 || n != 64) {
            c->reader_bad++;
        } else if (s2 - s < PUBLISH - 1) {   /* ids[s % PUBLISH] was still seq s */
            if (pat_ok(d, n, 42, (uint64_t)s))
                c->pinned++;
            else
                c->wrong++;
        }
        c->reader_bad += shoal_release(r) != 0;
    }
    return NULL;
}

static void test_retain_races_free(void)
{
    shoal_config c = shoal_test_config();
    test_start(c);
    static struct churn ch;
    for (int k = 0; k < PUBLISH; k++)
        atomic_init(&ch.ids[k], 0);
    atomic_init(&ch.last, -1);
    atomic_init(&ch.done, 0);
    ch.iters = 300000 / SAN_DIV;
    ch.writer_bad = 0;
    ch.pinned = ch.stale = ch.wrong = ch.reader_bad = 0;
    pthread_t w, r;
    CU_ASSERT_FATAL(pthread_create(&r, NULL, churn_reader, &ch) == 0);
    CU_ASSERT_FATAL(pthread_create(&w, NULL, churn_writer, &ch) == 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    CU_ASSERT_EQUAL(ch.writer_bad, 0);
    CU_ASSERT_EQUAL(ch.reader_bad, 0);
    if (ch.wrong)
        fprintf(stderr, "%ld retains pinned another object than their ID named (%ld right, "
                "%ld stale)\n", ch.wrong, ch.pinned, ch.stale);
    CU_ASSERT_EQUAL(ch.wrong, 0);
    shoal_info i = info_now();
    CU_ASSERT_EQUAL(i.objects_live, 0);
    CU_ASSERT_EQUAL(i.bytes_used, 0);
    ASSERT_OK(shoal_shutdown());
}

/* ---- a live but idle thread's caches do not starve the others ------------------------ */

struct idler {
    pthread_barrier_t *bar;
    size_t len;
    int count, rc;
};

/* Fills the store, frees everything (its caches now hold what it freed), then idles
 * until main has filled the store in turn. */
static void *idler_main(void *arg)
{
    struct idler *x = arg;
    enum { MAXFILL = 100000 };
    shoal_ref *refs = malloc(sizeof *refs * MAXFILL);
    x->count = fill_count(x->len, refs, MAXFILL);
    x->rc = 0;
    for (int k = 0; k < x->count; k++)
        x->rc |= shoal_release(refs[k]);
    free(refs);
    pthread_barrier_wait(x->bar);           /* main fills now */
    pthread_barrier_wait(x->bar);
    return NULL;
}

static void test_idle_thread_caches(void)
{
    struct { size_t store, max_objects, len; } cases[] = {
        { 16u << 20, 0, 4096 },              /* bytes run out first */
        { 16u << 20, 2048, 8 },              /* table slots run out first */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        shoal_config cfg = shoal_test_config();
        cfg.store_bytes = cases[c].store;
        cfg.max_objects = cases[c].max_objects;
        test_start(cfg);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 2);
        struct idler x = { .bar = &bar, .len = cases[c].len };
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, idler_main, &x) == 0);
        pthread_barrier_wait(&bar);
        enum { MAXFILL = 100000 };
        shoal_ref *refs = malloc(sizeof *refs * MAXFILL);
        int mine = fill_count(cases[c].len, refs, MAXFILL);
        pthread_barrier_wait(&bar);
        pthread_join(t, NULL);
        pthread_barrier_destroy(&bar);
        CU_ASSERT_EQUAL(x.rc, 0);
        CU_ASSERT(x.count > 0 && x.count < MAXFILL);
        if (mine < x.count - x.count / 10)
            fprintf(stderr, "%zu-byte objects: a thread filled %d, then with it idle another "
                    "filled only %d\n", cases[c].len, x.count, mine);
        CU_ASSERT(mine >= x.count - x.count / 10);
        for (int k = 0; k < mine; k++)
            CHECK_OK(shoal_release(refs[k]));
        free(refs);
        CU_ASSERT_EQUAL(info_now().objects_live, 0);
        ASSERT_OK(shoal_shutdown());
    }
}

/* Threads that only ever read: a get from a thread that never allocated. */
struct reader { shoal_ref r; int rc, ok; };
static void *reader_main(void *arg)
{
    struct reader *x = arg;
    const void *d; size_t n;
    x->rc = get_within(x->r, &d, &n);
    x->ok = x->rc == 0 && n == 11 && memcmp(d, "for readers", 11) == 0;
    return NULL;
}

static void test_readers_only(void)
{
    shoal_config c = shoal_test_config();
    test_start(c);
    shoal_ref r;
    ASSERT_OK(shoal_put("for readers", 11, &r));
    struct reader x[8];
    pthread_t t[8];
    for (int k = 0; k < 8; k++) {
        x[k].r = r;
        x[k].rc = 99;
        x[k].ok = 0;
        CU_ASSERT_FATAL(pthread_create(&t[k], NULL, reader_main, &x[k]) == 0);
    }
    for (int k = 0; k < 8; k++) {
        pthread_join(t[k], NULL);
        CU_ASSERT_EQUAL(x[k].rc, 0);
        CU_ASSERT(x[k].ok);
    }
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* A thread's first failure must allocate nothing: it may come from a signal handler (a
 * move that would wait for its own thread answers SHOAL_EDEADLK there), where malloc is not
 * safe. The message buffer is made when the thread first enters a runtime, so a failure
 * only writes into it: shoal_last_error() answers the same buffer before the thread's first
 * failure and after it. Before, the buffer was allocated by the first failure itself (the
 * answer before it was a constant ""). */
static _Atomic int in_handler_rc = 1;
static void fail_in_handler(int sig)
{
    (void)sig;
    atomic_store(&in_handler_rc, shoal_release(SHOAL_REF_NULL));
}

struct first_fail { const char *before, *after; int rc, handled; char msg[128]; };

static void *first_fail_main(void *arg)
{
    struct first_fail *f = arg;
    shoal_ref r;
    f->rc = shoal_put("first", 6, &r);   /* enters the runtime, fails nothing */
    if (f->rc == 0)
        f->rc = shoal_release(r);
    f->before = shoal_last_error();
    raise(SIGUSR1);                       /* the thread's first failure, in a handler */
    f->handled = atomic_load(&in_handler_rc);
    f->after = shoal_last_error();
    snprintf(f->msg, sizeof f->msg, "%s", f->after);
    return NULL;
}

static void test_first_failure_allocates_nothing(void)
{
    shoal_config c = shoal_test_config();
    test_start(c);
    struct sigaction sa = { .sa_handler = fail_in_handler }, old;
    sigemptyset(&sa.sa_mask);
    CU_ASSERT_FATAL(sigaction(SIGUSR1, &sa, &old) == 0);
    struct first_fail f = { 0 };
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, first_fail_main, &f) == 0);
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT_EQUAL(f.handled, SHOAL_EINVAL);
    CU_ASSERT(strstr(f.msg, "null ref") != NULL);
    CU_ASSERT(f.before == f.after);   /* the same buffer: none was made by the failure */
    if (f.before != f.after)
        fprintf(stderr, "the thread's message buffer was made by its first failure\n");
    ASSERT_OK(shoal_shutdown());
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "6 threads put/get/release, hand-offs, shared refs", test_many_threads },
        { "threads exit holding caches: nothing lost", test_exiting_threads },
        { "slots handed between threads in chains all come back", test_slot_chains_come_back },
        { "several threads drop the last references at once", test_racing_last_release },
        { "retain racing with free pins the right object or fails", test_retain_races_free },
        { "an idle thread's caches do not starve others", test_idle_thread_caches },
        { "threads that only read", test_readers_only },
        { "a thread's first failure (in a signal handler) allocates nothing",
          test_first_failure_allocates_nothing },
        { NULL, NULL },
    };
    return shoal_test_run("threads", cases);
}
