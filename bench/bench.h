/* bench.h - what every shoal benchmark program shares: monotonic timing, median/min/max
 * over repetitions, the JSON record format (emit and parse), progress lines and a time
 * budget. One header, static inline only, valid C11 and C++17 (the oneTBB peer uses it).
 *
 * Protocol between a bench program and bench/run.sh:
 *   prog [quick|full]       mode (default full); BENCH_BUDGET_S caps a program's run time;
 *                           BENCH_ROUND (1..) and BENCH_REPS when run.sh runs it in rounds;
 *                           BENCH_ONLY=fib,dag,... runs only those workloads (profiling);
 *                           BENCH_DAG_LEAVES=N sets the reduction DAG's leaves (default
 *                           50000; its row is then named after 2N tasks: profiling only)
 *   stdout                  one JSON record per line (bench_write_rec), flushed as each
 *                           figure is known: its key (bench, variant), unit, median/min/max,
 *                           baseline, and its repetitions in the order measured ("samples");
 *                           a failed figure has "median":null and an "error" string instead
 *   stderr                  human progress lines "[prog] ..."
 * bench/report merges the rounds, pairs each figure's repetitions with its baseline's and
 * computes every ratio (see "records" below).
 */
#ifndef SHOAL_BENCH_H
#define SHOAL_BENCH_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keep a value alive without emitting code: the compiler must assume asm reads it. */
#define BENCH_KEEP(x) __asm__ __volatile__("" : : "r"(x) : "memory")
/* Make the compiler forget what it knows about a value (stops hoisting across iterations). */
#define BENCH_LAUNDER(x) __asm__ __volatile__("" : "+r"(x))
#define BENCH_NOINLINE __attribute__((noinline, noipa))

#define BENCH_MAX_REPS 64

struct bench_state {
    const char *prog;
    int quick;
    uint64_t t0_ns;
    double budget_s;
    int round, reps;
};
static struct bench_state bench_g;

static inline uint64_t bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bench_progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s %5.1fs] ", bench_g.prog ? bench_g.prog : "bench",
            (double)(bench_ns() - bench_g.t0_ns) / 1e9);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Parse argv[1] (quick|full), BENCH_BUDGET_S, BENCH_ROUND and BENCH_REPS. */
static inline void bench_init(int argc, char **argv, const char *prog)
{
    const char *b = getenv("BENCH_BUDGET_S"), *r = getenv("BENCH_ROUND");
    const char *n = getenv("BENCH_REPS");
    bench_g.prog = prog;
    bench_g.quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    bench_g.t0_ns = bench_ns();
    bench_g.budget_s = b ? atof(b) : 0;
    bench_g.round = r && atoi(r) > 0 ? atoi(r) : 0;
    bench_g.reps = n && atoi(n) > 0 ? (atoi(n) < BENCH_MAX_REPS ? atoi(n) : BENCH_MAX_REPS) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int bench_quick(void) { return bench_g.quick; }
/* Whether workload `what` runs: BENCH_ONLY unset, or a comma-separated list naming it (to
 * profile or time one figure alone, e.g. BENCH_ONLY=fib). */
static inline int bench_only(const char *what)
{
    const char *o = getenv("BENCH_ONLY");
    size_t n = strlen(what);
    if (!o || !*o)
        return 1;
    for (const char *p = o; *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
        if (strncmp(p, what, n) == 0 && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}
/* The round this process is (BENCH_ROUND, 1..): run.sh runs the task programs of every
 * runtime one after the other, round after round, one repetition each, so that drift on
 * this shared machine hits all of them alike; 0 when the program runs on its own. */
static inline int bench_round(void) { return bench_g.round; }
/* Repetitions per figure: at least 5 for a median worth the name (7: this machine is shared
 * and noisy); quick mode settles for 3; BENCH_REPS overrides (run.sh: 1 per round). */
static inline int bench_reps(void)
{
    return bench_g.reps ? bench_g.reps : bench_g.quick ? 3 : 7;
}
static inline double bench_elapsed_s(void) { return (double)(bench_ns() - bench_g.t0_ns) / 1e9; }
/* True once the program has used its time budget: skip the remaining figures (reported as
 * errors) rather than let one slow peer push the whole run past its limit. */
static inline int bench_over_budget(void)
{
    return bench_g.budget_s > 0 && bench_elapsed_s() > bench_g.budget_s;
}

typedef struct bench_stat { double median, min, max; int n; } bench_stat;

static inline int bench__cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of v[0..n). v keeps its order: the order of the repetitions is what
 * pairs each one with the baseline's repetition measured next to it. */
static inline bench_stat bench_stats(const double *v, int n)
{
    bench_stat s;
    double *c = n > 0 ? (double *)malloc((size_t)n * sizeof *c) : NULL;
    s.n = n;
    if (!c) {
        s.median = s.min = s.max = NAN;
        return s;
    }
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, bench__cmp);
    s.min = c[0];
    s.max = c[n - 1];
    s.median = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
    return s;
}

/* ---- records ----------------------------------------------------------------------------
 * One record per figure; (bench, variant) is its key, unique in a run. samples[] are the
 * repetitions in the order they were measured; sample_rounds[] the round each came from.
 * A figure and its baseline pair up sample by sample when both were measured alternately
 * (paired = 1): in one process, repetition k of each next to the other; across processes,
 * the repetitions of the same round. The ratio is then the median of the per-pair ratios
 * (ratio_min, ratio_max: their spread), which drift on a shared machine cannot fake the way
 * it fakes a ratio of two medians taken at different times. bench/report merges rounds and
 * computes every ratio; a program only reports samples. */

typedef struct bench_rec {
    char bench[96], variant[96], unit[24], baseline[96], error[256], prog[32], pairing[24];
    double median, min, max;          /* NAN when null */
    double ratio, ratio_min, ratio_max;
    int pairs;                        /* pairs behind ratio (0: a ratio of medians) */
    int paired;                       /* samples were measured alternately with the baseline */
    int round, failed_rounds;
    int count;                        /* repetitions behind median/min/max */
    int nsamples;                     /* of them in samples[] (all, unless over BENCH_MAX_REPS) */
    double samples[BENCH_MAX_REPS];
    int sample_rounds[BENCH_MAX_REPS];
} bench_rec;

static inline void bench__str(FILE *f, const char *key, const char *s)
{
    fprintf(f, "\"%s\":", key);
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static inline void bench__num(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, "\"%s\":%.6g", key, v);
    else
        fprintf(f, "\"%s\":null", key);
}

/* Write one record as one line of JSON. stamp (may be NULL) is a JSON object appended as
 * "stamp" (bench/report stamps every record with the run's mode, date, machine). */
static inline void bench_write_rec(FILE *f, const bench_rec *r, const char *stamp)
{
    int err = r->error[0] != 0 && r->count == 0;
    fputc('{', f);
    bench__str(f, "bench", r->bench);     fputc(',', f);
    bench__str(f, "variant", r->variant); fputc(',', f);
    bench__str(f, "unit", r->unit);       fputc(',', f);
    bench__num(f, "median", err ? NAN : r->median); fputc(',', f);
    bench__num(f, "min", err ? NAN : r->min);       fputc(',', f);
    bench__num(f, "max", err ? NAN : r->max);       fputc(',', f);
    fprintf(f, "\"n\":%d,", r->count);
    bench__str(f, "baseline", r->baseline[0] ? r->baseline : NULL); fputc(',', f);
    bench__num(f, "ratio", err ? NAN : r->ratio);         fputc(',', f);
    bench__num(f, "ratio_min", err ? NAN : r->ratio_min); fputc(',', f);
    bench__num(f, "ratio_max", err ? NAN : r->ratio_max); fputc(',', f);
    fprintf(f, "\"pairs\":%d,", r->pairs);
    bench__str(f, "pairing", r->pairing[0] ? r->pairing : NULL); fputc(',', f);
    fprintf(f, "\"paired\":%s,", r->paired ? "true" : "false");
    bench__str(f, "prog", r->prog); fputc(',', f);
    fprintf(f, "\"round\":%d,\"failed_rounds\":%d,\"samples\":[", r->round, r->failed_rounds);
    for (int i = 0; i < r->nsamples; i++)
        fprintf(f, "%s%.6g", i ? "," : "", isfinite(r->samples[i]) ? r->samples[i] : 0);
    fputs("],\"sample_rounds\":[", f);
    for (int i = 0; i < r->nsamples; i++)
        fprintf(f, "%s%d", i ? "," : "", r->sample_rounds[i]);
    fputc(']', f);
    if (r->error[0]) {
        fputc(',', f);
        bench__str(f, "error", r->error);
    }
    if (stamp)
        fprintf(f, ",\"stamp\":%s", stamp);
    fputs("}\n", f);
    fflush(f);
}

/* Copy s into dst[cap], cut short if it does not fit. */
static inline void bench__copy(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = 0;
}

static inline void bench__rec_init(bench_rec *r, const char *bench, const char *variant,
                                   const char *unit, const char *baseline)
{
    memset(r, 0, sizeof *r);
    bench__copy(r->bench, sizeof r->bench, bench);
    bench__copy(r->variant, sizeof r->variant, variant);
    bench__copy(r->unit, sizeof r->unit, unit);
    bench__copy(r->baseline, sizeof r->baseline, baseline);
    bench__copy(r->prog, sizeof r->prog, bench_g.prog);
    r->round = bench_g.round;
    r->median = r->min = r->max = r->ratio = r->ratio_min = r->ratio_max = NAN;
}

static inline void bench__emit(const char *bench, const char *variant, const char *unit,
                               const double *v, int n, const char *baseline, int paired)
{
    static bench_rec r;
    bench__rec_init(&r, bench, variant, unit, baseline);
    bench_stat s = bench_stats(v, n);
    r.median = s.median;
    r.min = s.min;
    r.max = s.max;
    r.paired = paired;
    r.count = n;
    /* More repetitions than a record holds (single pings, say): the figure goes by its
     * median alone, and cannot be paired. */
    r.nsamples = n <= BENCH_MAX_REPS ? n : 0;
    r.paired = paired && r.nsamples == n;
    for (int i = 0; i < r.nsamples; i++) {
        r.samples[i] = v[i];
        r.sample_rounds[i] = bench_g.round;
    }
    bench_write_rec(stdout, &r, NULL);
    bench_progress("%-20s %-22s median %9.4g %-8s (min %.4g, max %.4g, %d reps)", bench,
                   variant, s.median, unit, s.min, s.max, s.n);
}

/* Emit a measured figure: its repetitions v[0..n) in the order measured. baseline names the
 * figure of the same bench group it is compared with (itself for the baseline, NULL for
 * none); each repetition was measured next to the baseline's repetition of the same index
 * (in this process) or of the same round (in a peer's process): bench/report pairs them. */
static inline void bench_emit(const char *bench, const char *variant, const char *unit,
                              const double *v, int n, const char *baseline)
{
    bench__emit(bench, variant, unit, v, n, baseline, 1);
}

/* As bench_emit, for a figure measured in a block of its own rather than alternately with
 * its baseline: the report compares medians and says so. */
static inline void bench_emit_unpaired(const char *bench, const char *variant, const char *unit,
                                       const double *v, int n, const char *baseline)
{
    bench__emit(bench, variant, unit, v, n, baseline, 0);
}

/* A figure known only as a median with min and max (its samples live in another process):
 * one sample, compared by medians. */
static inline void bench_emit_stat(const char *bench, const char *variant, const char *unit,
                                   bench_stat s, const char *baseline)
{
    static bench_rec r;
    bench__rec_init(&r, bench, variant, unit, baseline);
    r.median = s.median;
    r.min = s.min;
    r.max = s.max;
    r.count = s.n;
    bench_write_rec(stdout, &r, NULL);
    bench_progress("%-20s %-22s median %9.4g %-8s (min %.4g, max %.4g)", bench, variant,
                   s.median, unit, s.min, s.max);
}

/* Emit a figure that could not be measured, with the reason. */
static inline void bench_emit_error(const char *bench, const char *variant, const char *unit,
                                    const char *baseline, const char *why)
{
    static bench_rec r;
    bench__rec_init(&r, bench, variant, unit, baseline);
    bench__copy(r.error, sizeof r.error, why && why[0] ? why : "failed");
    bench_write_rec(stdout, &r, NULL);
    bench_progress("%-20s %-22s FAILED: %s", bench, variant, r.error);
}

/* ---- reading records back (bench/report, bench/plot) -------------------------------- */

/* Find "key": in line and return a pointer just past the colon, or NULL. */
static inline const char *bench__find(const char *line, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? p + strlen(pat) : NULL;
}

static inline void bench__get_str(const char *line, const char *key, char *out, size_t cap)
{
    const char *p = bench__find(line, key);
    size_t n = 0;
    out[0] = 0;
    if (!p || *p != '"')
        return;
    for (p++; *p && *p != '"' && n + 1 < cap; p++) {
        if (*p == '\\' && p[1])
            p++;
        out[n++] = *p;
    }
    out[n] = 0;
}

static inline double bench__get_num(const char *line, const char *key)
{
    const char *p = bench__find(line, key);
    char *end;
    double v;
    if (!p)
        return NAN;
    v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The numbers of the array "key": [a,b,...] (at most cap); returns how many. */
static inline int bench__get_array(const char *line, const char *key, double *out, int cap)
{
    const char *p = bench__find(line, key);
    int n = 0;
    if (!p || *p != '[')
        return 0;
    for (p++; *p && *p != ']' && n < cap;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[n++] = v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

/* Parse one line written by bench_write_rec. Returns 1 on a record, 0 on anything else. */
static inline int bench_parse(const char *line, bench_rec *r)
{
    double tmp[BENCH_MAX_REPS];
    const char *paired;
    if (!strstr(line, "{\"bench\":"))
        return 0;
    memset(r, 0, sizeof *r);
    bench__get_str(line, "bench", r->bench, sizeof r->bench);
    bench__get_str(line, "variant", r->variant, sizeof r->variant);
    bench__get_str(line, "unit", r->unit, sizeof r->unit);
    bench__get_str(line, "baseline", r->baseline, sizeof r->baseline);
    bench__get_str(line, "error", r->error, sizeof r->error);
    bench__get_str(line, "prog", r->prog, sizeof r->prog);
    bench__get_str(line, "pairing", r->pairing, sizeof r->pairing);
    r->median = bench__get_num(line, "median");
    r->min = bench__get_num(line, "min");
    r->max = bench__get_num(line, "max");
    r->ratio = bench__get_num(line, "ratio");
    r->ratio_min = bench__get_num(line, "ratio_min");
    r->ratio_max = bench__get_num(line, "ratio_max");
    r->pairs = (int)fmax(0, bench__get_num(line, "pairs"));
    r->round = (int)fmax(0, bench__get_num(line, "round"));
    r->failed_rounds = (int)fmax(0, bench__get_num(line, "failed_rounds"));
    paired = bench__find(line, "paired");
    r->paired = paired && !strncmp(paired, "true", 4);
    r->count = (int)fmax(0, bench__get_num(line, "n"));
    r->nsamples = bench__get_array(line, "samples", r->samples, BENCH_MAX_REPS);
    int nr = bench__get_array(line, "sample_rounds", tmp, BENCH_MAX_REPS);
    for (int i = 0; i < r->nsamples; i++)
        r->sample_rounds[i] = i < nr ? (int)tmp[i] : r->round;
    return r->bench[0] != 0;
}

/* ---- the task workloads, shared by bench/tasks (shoal), tasks_tbb and tasks_omp ------- */

typedef struct bench_tasks_cfg {
    long n_empty;        /* empty tasks submitted from one thread, then awaited */
    int fib_n;           /* fib(n), every call a task */
    long dag_leaves;     /* leaves of the reduction tree: 2*leaves - 1 tasks */
    int pings;           /* timed one by one per repetition */
    unsigned workers;    /* threads every runtime gets (BENCH_WORKERS, default 2) */
    char empty_name[32], fib_name[32], dag_name[32], ping_name[32];
} bench_tasks_cfg;

static inline bench_tasks_cfg bench_tasks_config(void)
{
    bench_tasks_cfg c;
    const char *w = getenv("BENCH_WORKERS");
    c.n_empty = bench_g.quick ? 200000 : 1000000;
    c.fib_n = bench_g.quick ? 25 : 30;
    /* The DAG's width, for profiling how its cost grows with what is in flight. */
    const char *dl = getenv("BENCH_DAG_LEAVES");
    c.dag_leaves = dl && atol(dl) >= 2 ? atol(dl) : 50000;
    c.pings = bench_g.quick ? 2000 : 10000;
    c.workers = w && atoi(w) > 0 ? (unsigned)atoi(w) : 2;
    if (c.n_empty % 1000000 == 0)
        snprintf(c.empty_name, sizeof c.empty_name, "empty tasks %ldM", c.n_empty / 1000000);
    else
        snprintf(c.empty_name, sizeof c.empty_name, "empty tasks %ldk", c.n_empty / 1000);
    snprintf(c.fib_name, sizeof c.fib_name, "fib(%d) tasks", c.fib_n);
    snprintf(c.dag_name, sizeof c.dag_name, "reduce DAG %ldk", 2 * c.dag_leaves / 1000);
    snprintf(c.ping_name, sizeof c.ping_name, "ping latency");
    return c;
}

/* The untimed warm-up repetition a fresh process runs first (run.sh's rounds): the same
 * empty tasks and DAG (their footprint is what needs faulting in), a smaller fib and fewer
 * pings (threads started and caches warm is all they need; a slow peer's full fib(30) would
 * eat the rounds' time budget). */
static inline bench_tasks_cfg bench_tasks_warmup(bench_tasks_cfg c)
{
    if (c.fib_n > 25)
        c.fib_n = 25;
    if (c.pings > 2000)
        c.pings = 2000;
    return c;
}

/* bench/actor and its oneTBB peer bench/actor_tbb, run by run.sh in alternating processes:
 * the calls each repetition submits from one thread, the round trips it times, and the
 * names of the groups in which the peer's records are the baseline. */
#define BENCH_ACTOR_CALLS_VS_TBB "actor calls vs oneTBB"
#define BENCH_ACTOR_TRIP_VS_TBB  "actor trip vs oneTBB"
#define BENCH_ACTOR_TBB          "oneTBB serial function_node"
static inline long bench_actor_calls(void) { return bench_g.quick ? 100000 : 1000000; }
static inline long bench_actor_trips(void) { return bench_g.quick ? 5000 : 50000; }

/* Calls (= tasks) of the naive recursive fib(n): 2*fib(n+1) - 1. */
static inline double bench_fib_calls(int n)
{
    double a = 0, b = 1;
    for (int i = 0; i < n + 1; i++) {
        double t = a + b;
        a = b;
        b = t;
    }
    return 2 * a - 1;
}

#endif
