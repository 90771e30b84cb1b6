/* test_sched_internals.c - the scheduler's memory over time: the task pool's magazine stack
 * (sched/magstack.h) refuses a stale CAS however many operations went by since it read the
 * head (the ABA case a 16-bit tag let through after 65536), and the task blocks of a run
 * are unmapped once its store is gone (8a82041 kept 26 MB resident after 200k pending
 * tasks and a shutdown), and the injection queue's ring, which starts as zeroed memory,
 * keeps its order across laps and spills to its overflow list when full. White-box for the
 * stack and the queue; black-box (RSS) for the pool.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../sched/magstack.h"
#include "../sched/task.h"
#include "lib/check.h"
#include "lib/tasks.h"

/* The ABA case: a popper reads head A (next B) and stalls; meanwhile A and B are popped,
 * X and A pushed (head A again, but A's next is X and B is in use elsewhere); then `extra`
 * more push/pop pairs. The stalled CAS must fail: it would make B, a node someone else
 * owns, the top. */
static int stale_cas_fails(unsigned extra)
{
    shoal__stack st = { 0 };
    shoal__snode a, b, x, c;
    shoal__stack_push(&st, &b);
    shoal__stack_push(&st, &a);
    unsigned __int128 stale = shoal__stack_head(&st);
    shoal__snode *stale_next = atomic_load_explicit(&a.next, memory_order_relaxed);
    CU_ASSERT_PTR_EQUAL(shoal__stack_top(stale), &a);
    CU_ASSERT_PTR_EQUAL(stale_next, &b);
    CU_ASSERT_PTR_EQUAL(shoal__stack_pop(&st), &a);
    CU_ASSERT_PTR_EQUAL(shoal__stack_pop(&st), &b);
    shoal__stack_push(&st, &x);
    shoal__stack_push(&st, &a);
    for (unsigned i = 0; i < extra; i++) {
        shoal__stack_push(&st, &c);
        if (shoal__stack_pop(&st) != &c)
            return 0;
    }
    unsigned __int128 h = stale;
    bool won = shoal__stack_cas(&st, &h, shoal__stack_next(stale, stale_next));
    /* Whatever happened, the stack must still be A -> X. */
    shoal__snode *p1 = shoal__stack_pop(&st), *p2 = shoal__stack_pop(&st), *p3 = shoal__stack_pop(&st);
    if (won || p1 != &a || p2 != &x || p3 != NULL) {
        fprintf(stderr, "after %u more operations the stale CAS %s; popped %p %p %p "
                        "(a %p x %p b %p)\n", 4 + 2 * extra, won ? "won" : "lost",
                (void *)p1, (void *)p2, (void *)p3, (void *)&a, (void *)&x, (void *)&b);
        return 0;
    }
    return 1;
}

static void test_magstack_aba(void)
{
    /* 4 + 2k operations: a 16-bit tag is back where the stalled popper read it at k =
     * 32766, and again every 32768 pairs after. */
    unsigned cases[] = { 0, 1, 32766, 32766 + 32768, 32766 + 3 * 32768 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CU_ASSERT(stale_cas_fails(cases[i]));
}

/* Concurrent pushes and pops from several threads lose and duplicate nothing. */
enum { NODES = 512, THREADS = 4 };
static shoal__stack shared_st;
static shoal__snode nodes[NODES];
static _Atomic int stop_flag;

static void *churn(void *p)
{
    long *moved = p;
    shoal__snode *held[8];
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        int n = 0;
        for (; n < 8; n++)
            if (!(held[n] = shoal__stack_pop(&shared_st)))
                break;
        for (int i = 0; i < n; i++)
            shoal__stack_push(&shared_st, held[i]);
        *moved += n;
    }
    return NULL;
}

static void test_magstack_concurrent(void)
{
    shared_st = (shoal__stack){ 0 };
    for (int i = 0; i < NODES; i++)
        shoal__stack_push(&shared_st, &nodes[i]);
    atomic_store(&stop_flag, 0);
    pthread_t th[THREADS];
    long moved[THREADS] = { 0 };
    for (int i = 0; i < THREADS; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, churn, &moved[i]) == 0);
    nap_ms(300);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    static bool seen[NODES];
    memset(seen, 0, sizeof seen);
    int count = 0, dup = 0;
    shoal__snode *n;
    while ((n = shoal__stack_pop(&shared_st)) && count <= NODES) {
        long k = n - nodes;
        CU_ASSERT_FATAL(k >= 0 && k < NODES);
        dup += seen[k];
        seen[k] = true;
        count++;
    }
    CU_ASSERT_EQUAL(count, NODES);
    CU_ASSERT_EQUAL(dup, 0);
}

/* ---- the pool's memory after shutdown -------------------------------------------------- */

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int t_nop(shoal_task *t)
{
    (void)t;
    return 0;
}

static void test_pool_unmapped_at_shutdown(void)
{
    start_workers(2, 0);
    ASSERT_OK(shoal_shutdown());   /* the libraries' own first-use memory, before measuring */
    long before = rss_kib();
    start_workers(2, 0);
    void *buf;
    shoal_ref u;
    ASSERT_OK(shoal_create(8, &buf, &u));   /* never sealed: every task stays pending */
    int n = 200000 / SAN_DIV;
    for (int i = 0; i < n; i++) {
        shoal_arg a = SHOAL_REF(u);
        shoal_ref r;
        ASSERT_OK(shoal_submit(t_nop, &a, 1, NULL, &r));
        CHECK_OK(shoal_release(r));
    }
    long during = rss_kib();
    size_t mapped = shoal__pool_mapped();
    ASSERT_OK(shoal_shutdown());
    long after = rss_kib();
    fprintf(stderr, "RSS: %ld KiB before, %ld with %d pending tasks (%zu KiB of task "
                    "blocks mapped), %ld after shutdown (%zu mapped)\n", before, during, n,
            mapped >> 10, after, shoal__pool_mapped() >> 10);
    CU_ASSERT(mapped >= (size_t)n * 128);
    CU_ASSERT_EQUAL(shoal__pool_mapped(), 0);
#if !defined(__SANITIZE_THREAD__)   /* TSan keeps the shadow of unmapped memory resident */
    /* The blocks alone are 128 bytes each (25 MB for 200k); a little slack for the C
     * library's own caches. */
    CU_ASSERT(after - before < (long)n * 128 / 1024 / 4 + 2048);
#endif
}

/* ---- the injection queue (sched/inject.h) ------------------------------------------------ */

/* Take everything q holds, QBATCH-like in 16s; each node's index goes to got[] in the order
 * taken. Returns how many. */
static size_t inject_drain(shoal__inject *q, shoal__qlink *nodes, size_t *got, size_t cap)
{
    size_t n = 0;
    shoal__qlink *l[16];
    unsigned k;
    while ((k = shoal__inject_take(q, l, 16)) > 0)
        for (unsigned i = 0; i < k; i++)
            if (n < cap)
                got[n++] = (size_t)(l[i] - nodes);
    return n;
}

/* A ring of zeroes is an empty queue whose cells are free for lap 0; pushes (one at a time
 * and in runs that straddle a lap's end) come out in order over several laps; a full ring
 * sends the rest to the overflow list, which is taken first; and the queue works on after. */
static void test_inject_ring(void)
{
    size_t qbytes = (sizeof(shoal__inject) + 4095) & ~(size_t)4095;
    shoal__inject *q = mmap(NULL, qbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    CU_ASSERT_FATAL(q != MAP_FAILED);
    enum { EXTRA = 1000, RUN = 999 };   /* RUN divides no lap: runs straddle lap ends */
    size_t nn = SHOAL__INJ_CAP + EXTRA;
    shoal__qlink *nodes = calloc(nn, sizeof *nodes);
    shoal__qlink **items = calloc(RUN, sizeof *items);
    size_t *got = calloc(nn, sizeof *got);
    CU_ASSERT_FATAL(nodes && items && got);
    shoal__inject_init(q);
    CU_ASSERT(!shoal__inject_ready(q));
    CU_ASSERT(!shoal__inject_nonempty(q));
    CU_ASSERT(shoal__inject_trylock(q));

    /* Three laps and a bit, alternately one at a time and in runs of RUN. */
    size_t bad = 0, pushed = 0;
    for (unsigned r = 0; pushed < 3 * (size_t)SHOAL__INJ_CAP + RUN; r++) {
        for (unsigned i = 0; i < RUN; i++)
            items[i] = &nodes[i];
        if (r % 2)
            shoal__inject_push_many(q, items, RUN);
        else
            for (unsigned i = 0; i < RUN; i++)
                shoal__inject_push(q, items[i]);
        pushed += RUN;
        CU_ASSERT(shoal__inject_ready(q));
        size_t n = inject_drain(q, nodes, got, nn);
        bad += n != RUN;
        for (size_t i = 0; i < n; i++)
            bad += got[i] != i;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(!shoal__inject_nonempty(q));

    /* Full: the last EXTRA go to the overflow list, which comes out first. */
    for (size_t i = 0; i < nn; i++)
        shoal__inject_push(q, &nodes[i]);
    CU_ASSERT(atomic_load_explicit(&q->tail, memory_order_relaxed) != &q->stub);
    size_t n = inject_drain(q, nodes, got, nn);
    CU_ASSERT_EQUAL(n, nn);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i] != (i < EXTRA ? SHOAL__INJ_CAP + i : i - EXTRA);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(!shoal__inject_nonempty(q));

    /* And on: a run after the overflow list emptied. */
    for (unsigned i = 0; i < RUN; i++)
        items[i] = &nodes[i];
    shoal__inject_push_many(q, items, RUN);
    n = inject_drain(q, nodes, got, nn);
    CU_ASSERT_EQUAL(n, RUN);
    for (size_t i = 0; i < n; i++)
        bad += got[i] != i;
    CU_ASSERT_EQUAL(bad, 0);
    shoal__inject_unlock(q);
    munmap(q, qbytes);
    free(nodes);
    free(items);
    free(got);
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "magazine stack: a stale CAS never wins (ABA)", test_magstack_aba },
        { "magazine stack: concurrent push/pop", test_magstack_concurrent },
        { "task blocks are unmapped after shutdown", test_pool_unmapped_at_shutdown },
        { "injection queue: zeroed ring, laps, overflow", test_inject_ring },
        { NULL, NULL },
    };
    return shoal_test_run("sched_internals", cases);
}
