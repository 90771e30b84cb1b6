/* mapreduce.c - a map-reduce over 1 GiB of data split into objects of 8 MiB: generator
 * tasks write the chunks straight into the store (zero-copy), a map task per chunk counts
 * and sums its words and builds a 16-bucket histogram, and a tree of reduce tasks (fan-in
 * 8) merges the partial results. Refs are the only thing passed around; the main thread
 * submits everything and waits once. The data is word i = i * K, so the answer is known in
 * closed form and checked.
 *   usage: mapreduce [MiB]      (default 1024; `make test` runs it with 64)
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK   ((uint64_t)8 << 20)            /* bytes per object */
#define FANIN   8                              /* refs merged by one reduce task */
#define K       UINT64_C(0x9E3779B97F4A7C15)   /* odd: i*K mod 16 runs through all 16 values */

typedef struct partial {
    uint64_t words, sum;                       /* sum wraps mod 2^64 */
    uint64_t hist[16];                         /* by the word's low 4 bits */
} partial;

static void die(const char *what, int rc)
{
    fprintf(stderr, "mapreduce: %s: %s: %s\n", what, shoal_strerror(rc), shoal_last_error());
    exit(1);
}

static int fail(shoal_task *t)
{
    shoal_task_fail(t, shoal_last_error());
    return 1;
}

/* gen(chunk index): CHUNK bytes of words i * K, i counted from the start of the data. */
static int gen(shoal_task *t)
{
    const void *a;
    size_t len;
    uint64_t c, *w;
    shoal_task_arg(t, 0, &a, &len);
    memcpy(&c, a, sizeof c);
    if (shoal_task_return_buf(t, CHUNK, (void **)&w) != 0)
        return fail(t);
    uint64_t i0 = c * (CHUNK / sizeof *w);
    for (uint64_t j = 0; j < CHUNK / sizeof *w; j++)
        w[j] = (i0 + j) * K;
    return 0;
}

/* map(chunk): its partial result. The chunk is a REF argument: its bytes, zero-copy. */
static int map(shoal_task *t)
{
    const uint64_t *w;
    size_t len;
    if (shoal_task_arg(t, 0, (const void **)&w, &len) != 0)
        return fail(t);
    partial p;
    memset(&p, 0, sizeof p);
    p.words = len / sizeof *w;
    for (uint64_t j = 0; j < p.words; j++) {
        p.sum += w[j];
        p.hist[w[j] & 15]++;
    }
    return shoal_task_return(t, &p, sizeof p) != 0 ? fail(t) : 0;
}

/* reduce(partial...): their sum. */
static int reduce(shoal_task *t)
{
    partial r;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < shoal_task_nargs(t); i++) {
        const partial *p;
        size_t len;
        if (shoal_task_arg(t, i, (const void **)&p, &len) != 0 || len != sizeof *p)
            return shoal_task_fail(t, "reduce: an argument is not a partial result"), 1;
        r.words += p->words;
        r.sum += p->sum;
        for (int b = 0; b < 16; b++)
            r.hist[b] += p->hist[b];
    }
    return shoal_task_return(t, &r, sizeof r) != 0 ? fail(t) : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
    if (mib < 8 || mib % 8 || mib > 65536) {
        fprintf(stderr, "usage: mapreduce [MiB: a multiple of 8, default 1024]\n");
        return 2;
    }
    uint64_t bytes = mib << 20, chunks = bytes / CHUNK, n = bytes / sizeof(uint64_t);
    /* Room for the data, the partial results, and the allocator's slack. */
    shoal_config cfg = { .store_bytes = bytes + bytes / 4 + ((size_t)64 << 20) };
    int rc = shoal_init(&cfg);
    if (rc)
        die("shoal_init", rc);
    double t0 = now_s();

    shoal_ref *level = malloc(chunks * sizeof *level);
    shoal_arg *args = malloc(FANIN * sizeof *args);
    if (!level || !args)
        return 1;
    for (uint64_t c = 0; c < chunks; c++) {
        shoal_ref data;
        shoal_arg v = SHOAL_VALUE(&c, sizeof c);
        if ((rc = shoal_submit(gen, &v, 1, &(shoal_task_opts){ .name = "gen" }, &data)))
            die("submit gen", rc);
        /* map runs once its chunk exists; it holds the chunk, so ours can go. The chunk is
         * freed when map is done with it. */
        if ((rc = shoal_submit(map, &SHOAL_REF(data), 1, &(shoal_task_opts){ .name = "map" },
                               &level[c])))
            die("submit map", rc);
        shoal_release(data);
    }
    uint64_t width = chunks, reduces = 0;
    while (width > 1) {                        /* a tree: each level merges FANIN refs */
        uint64_t next = 0;
        for (uint64_t i = 0; i < width; i += FANIN) {
            size_t k = 0;
            for (; k < FANIN && i + k < width; k++)
                args[k] = SHOAL_REF(level[i + k]);
            if ((rc = shoal_submit(reduce, args, k, &(shoal_task_opts){ .name = "reduce" },
                                   &level[next++])))
                die("submit reduce", rc);
            reduces++;
            for (size_t j = 0; j < k; j++)
                shoal_release(args[j].ref);
        }
        width = next;
    }

    const partial *r;
    size_t len;
    if ((rc = shoal_get(level[0], (const void **)&r, &len)))
        die("get the result", rc);
    double dt = now_s() - t0;

    /* sum of i*K for i < n is K * n(n-1)/2 (mod 2^64); the low 4 bits are uniform. */
    uint64_t want_sum = (n % 2 ? n * ((n - 1) / 2) : (n / 2) * (n - 1)) * K;
    int ok = len == sizeof *r && r->words == n && r->sum == want_sum;
    for (int b = 0; b < 16; b++)
        ok &= r->hist[b] == n / 16;
    printf("mapreduce: %llu MiB in %llu objects of %llu MiB, %llu map and %llu reduce tasks: "
           "%llu words, sum 0x%016llx, histogram %s: %s\n",
           (unsigned long long)mib, (unsigned long long)chunks,
           (unsigned long long)(CHUNK >> 20), (unsigned long long)chunks,
           (unsigned long long)reduces, (unsigned long long)r->words,
           (unsigned long long)r->sum, ok ? "uniform" : "off", ok ? "ok" : "WRONG");
    printf("mapreduce: %.3f s, %.2f GB/s\n", dt, (double)bytes / dt / 1e9);
    shoal_release(level[0]);
    free(level);
    free(args);
    rc = shoal_shutdown();
    return ok && rc == 0 ? 0 : 1;
}
