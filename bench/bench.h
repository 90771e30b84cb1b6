/* bench.h - what every shoal benchmark program shares: monotonic timing, median/min/max
 * over repetitions, the JSON record format (emit and parse), progress lines and a time
 * budget. One header, static inline only, valid C11 and C++17 (the oneTBB peer uses it).
 *
 * Protocol between a bench program and bench/run.sh:
 *   prog [quick|full]       mode (default full); BENCH_BUDGET_S caps a program's run time
 *   stdout                  one JSON record per line, flushed as each figure is known:
 *     {"bench":..,"variant":..,"unit":..,"median":..,"min":..,"max":..,"baseline":..,"ratio":..}
 *     a failed figure has "median":null and an "error" string instead
 *   stderr                  human progress lines "[prog] ..."
 * ratio = median / median of the record named by "baseline" in the same bench group; the
 * program may leave it null when the baseline is measured by another program (a peer), and
 * bench/report fills it in from the merged records.
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

/* Parse argv[1] (quick|full) and BENCH_BUDGET_S. */
static inline void bench_init(int argc, char **argv, const char *prog)
{
    const char *b = getenv("BENCH_BUDGET_S");
    bench_g.prog = prog;
    bench_g.quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    bench_g.t0_ns = bench_ns();
    bench_g.budget_s = b ? atof(b) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int bench_quick(void) { return bench_g.quick; }
/* Repetitions per figure: at least 5 for a median worth the name (7: this machine is shared
 * and noisy); quick mode settles for 3. */
static inline int bench_reps(void) { return bench_g.quick ? 3 : 7; }
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

/* Median, min and max of v[0..n) (v is sorted in place). */
static inline bench_stat bench_stats(double *v, int n)
{
    bench_stat s;
    s.n = n;
    if (n <= 0) {
        s.median = s.min = s.max = NAN;
        return s;
    }
    qsort(v, (size_t)n, sizeof *v, bench__cmp);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

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

/* Write one record to f. ratio NAN = unknown here (filled in by report); error non-NULL
 * marks a figure that could not be measured. */
static inline void bench_write(FILE *f, const char *bench, const char *variant, const char *unit,
                               bench_stat s, const char *baseline, double ratio,
                               const char *error)
{
    fputc('{', f);
    bench__str(f, "bench", bench);     fputc(',', f);
    bench__str(f, "variant", variant); fputc(',', f);
    bench__str(f, "unit", unit);       fputc(',', f);
    bench__num(f, "median", error ? NAN : s.median); fputc(',', f);
    bench__num(f, "min", error ? NAN : s.min);       fputc(',', f);
    bench__num(f, "max", error ? NAN : s.max);       fputc(',', f);
    bench__str(f, "baseline", baseline); fputc(',', f);
    bench__num(f, "ratio", error ? NAN : ratio);
    if (error) {
        fputc(',', f);
        bench__str(f, "error", error);
    }
    fputs("}\n", f);
    fflush(f);
}

/* Emit a measured figure to stdout and say so on stderr. */
static inline void bench_emit(const char *bench, const char *variant, const char *unit,
                              bench_stat s, const char *baseline, double ratio)
{
    char vs[160] = "";
    bench_write(stdout, bench, variant, unit, s, baseline, ratio, NULL);
    if (baseline && strcmp(baseline, variant) && isfinite(ratio))
        snprintf(vs, sizeof vs, ", %.2fx %s", ratio, baseline);
    bench_progress("%-20s %-22s median %9.4g %-8s (min %.4g, max %.4g, %d reps%s)", bench,
                   variant, s.median, unit, s.min, s.max, s.n, vs);
}

/* Emit a figure that could not be measured, with the reason. */
static inline void bench_emit_error(const char *bench, const char *variant, const char *unit,
                                    const char *baseline, const char *why)
{
    bench_stat s;
    s.median = s.min = s.max = NAN;
    s.n = 0;
    bench_write(stdout, bench, variant, unit, s, baseline, NAN, why);
    bench_progress("%-20s %-22s FAILED: %s", bench, variant, why);
}

/* ---- reading records back (bench/report, bench/plot) -------------------------------- */

typedef struct bench_rec {
    char bench[96], variant[96], unit[24], baseline[96], error[256];
    double median, min, max, ratio;   /* NAN when null */
} bench_rec;

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

/* Parse one line written by bench_write. Returns 1 on a record, 0 on anything else. */
static inline int bench_parse(const char *line, bench_rec *r)
{
    if (!strstr(line, "{\"bench\":"))
        return 0;
    bench__get_str(line, "bench", r->bench, sizeof r->bench);
    bench__get_str(line, "variant", r->variant, sizeof r->variant);
    bench__get_str(line, "unit", r->unit, sizeof r->unit);
    bench__get_str(line, "baseline", r->baseline, sizeof r->baseline);
    bench__get_str(line, "error", r->error, sizeof r->error);
    r->median = bench__get_num(line, "median");
    r->min = bench__get_num(line, "min");
    r->max = bench__get_num(line, "max");
    r->ratio = bench__get_num(line, "ratio");
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
    c.dag_leaves = 50000;
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
