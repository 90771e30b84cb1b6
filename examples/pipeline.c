/* pipeline.c - a pipeline of tasks that pass refs: for each batch, gen -> square -> sum, and
 * one last task that adds up every batch's sum. Everything is submitted at once; each task
 * starts when the objects it takes as REF arguments are ready, and the main thread waits
 * only for the final result. Run with SHOAL_TIMELINE=pipeline.json to see it on a timeline.
 *   usage: pipeline [BATCHES [VALUES_PER_BATCH]]     (default 16 x 4096)
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "pipeline: %s: %s: %s\n", what, shoal_strerror(rc), shoal_last_error());
    exit(1);
}

/* gen(first, n): n consecutive values from first, as a u64 array. */
static int gen(shoal_task *t)
{
    const void *a;
    size_t len;
    uint64_t first, n;
    shoal_task_arg(t, 0, &a, &len);
    memcpy(&first, a, sizeof first);
    shoal_task_arg(t, 1, &a, &len);
    memcpy(&n, a, sizeof n);
    uint64_t *out;
    if (shoal_task_return_buf(t, n * sizeof *out, (void **)&out) != 0)   /* zero-copy */
        return shoal_task_fail(t, shoal_last_error()), 1;
    for (uint64_t i = 0; i < n; i++)
        out[i] = first + i;
    return 0;
}

/* square(values): each value squared. Its argument is a REF: the bytes of gen's result. */
static int square(shoal_task *t)
{
    const uint64_t *in;
    size_t len;
    shoal_task_arg(t, 0, (const void **)&in, &len);
    uint64_t *out;
    if (shoal_task_return_buf(t, len, (void **)&out) != 0)
        return shoal_task_fail(t, shoal_last_error()), 1;
    for (size_t i = 0; i < len / sizeof *in; i++)
        out[i] = in[i] * in[i];
    return 0;
}

/* sum(values): one u64. */
static int sum(shoal_task *t)
{
    const uint64_t *in;
    size_t len;
    shoal_task_arg(t, 0, (const void **)&in, &len);
    uint64_t s = 0;
    for (size_t i = 0; i < len / sizeof *in; i++)
        s += in[i];
    return shoal_task_return(t, &s, sizeof s) != 0;
}

/* total(sum_0, ..., sum_k): every argument is a REF to one batch's sum. */
static int total(shoal_task *t)
{
    uint64_t s = 0;
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const void *a;
        size_t len;
        uint64_t v;
        if (shoal_task_arg(t, i, &a, &len) != 0 || len != sizeof v)
            return shoal_task_fail(t, "total: an argument is not a u64"), 1;
        memcpy(&v, a, sizeof v);
        s += v;
    }
    return shoal_task_return(t, &s, sizeof s) != 0;
}

int main(int argc, char **argv)
{
    uint64_t batches = argc > 1 ? strtoull(argv[1], NULL, 10) : 16;
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 4096;
    if (batches == 0 || batches > 1000 || n == 0 || n > (1u << 20)) {
        fprintf(stderr, "usage: pipeline [BATCHES (1-1000) [VALUES_PER_BATCH (1-1048576)]]\n");
        return 2;
    }
    shoal_config cfg = { .store_bytes = 256u << 20 };
    int rc = shoal_init(&cfg);
    if (rc)
        die("shoal_init", rc);

    shoal_arg *sums = calloc(batches, sizeof *sums);
    if (!sums)
        return 1;
    for (uint64_t b = 0; b < batches; b++) {
        uint64_t first = b * n;
        shoal_ref g, q, s;
        shoal_arg gen_args[] = { SHOAL_VALUE(&first, sizeof first), SHOAL_VALUE(&n, sizeof n) };
        if ((rc = shoal_submit(gen, gen_args, 2, &(shoal_task_opts){ .name = "gen" }, &g)))
            die("submit gen", rc);
        /* square takes gen's result by ref: it runs once g is ready. A running or waiting
         * task holds its own reference, so ours can go right away. */
        if ((rc = shoal_submit(square, &SHOAL_REF(g), 1, &(shoal_task_opts){ .name = "square" }, &q)))
            die("submit square", rc);
        shoal_release(g);
        if ((rc = shoal_submit(sum, &SHOAL_REF(q), 1, &(shoal_task_opts){ .name = "sum" }, &s)))
            die("submit sum", rc);
        shoal_release(q);
        sums[b] = SHOAL_REF(s);
    }
    shoal_ref t;
    if ((rc = shoal_submit(total, sums, batches, &(shoal_task_opts){ .name = "total" }, &t)))
        die("submit total", rc);
    for (uint64_t b = 0; b < batches; b++)
        shoal_release(sums[b].ref);

    const void *data;
    size_t len;
    if ((rc = shoal_get(t, &data, &len)))        /* the only wait of the main thread */
        die("get total", rc);
    uint64_t got, want = 0;
    memcpy(&got, data, sizeof got);
    for (uint64_t v = 0; v < batches * n; v++)
        want += v * v;
    printf("pipeline: %llu batches x %llu values through gen -> square -> sum -> total: "
           "%llu (expected %llu) %s\n", (unsigned long long)batches, (unsigned long long)n,
           (unsigned long long)got, (unsigned long long)want, got == want ? "ok" : "WRONG");
    shoal_release(t);
    free(sums);
    rc = shoal_shutdown();
    return got == want && rc == 0 ? 0 : 1;
}
