/* report.c - merges the records every bench program printed (stdin, bench.h format) into
 * one JSON file stamped with the run's mode, date, commit and machine; pairs each figure's
 * repetitions with its baseline's and reports the median of the per-pair ratios with their
 * min and max; prints the table `make bench` shows, then issue 13's targets met or missed
 * (full runs only: a quick run's figures are not comparable). Exits 1 if two records share a
 * key (bench, variant) in one round: each figure must have exactly one name.
 * Usage: report OUT.json MODE < records        (not a benchmark: run.sh calls it)
 * BENCH_COMMIT names the commit measured ("unknown" when unset).
 */
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_RECS 1024

static bench_rec recs[MAX_RECS];
static int nrecs, ndup;
static char dups[16][400];

/* ---- merging ---------------------------------------------------------------------------- */

static bench_rec *find_key(const char *bench, const char *variant)
{
    for (int i = 0; i < nrecs; i++)
        if (!strcmp(recs[i].bench, bench) && !strcmp(recs[i].variant, variant))
            return &recs[i];
    return NULL;
}

static int has_round(const bench_rec *r, int round)
{
    for (int i = 0; i < r->nsamples; i++)
        if (r->sample_rounds[i] == round)
            return 1;
    return r->round == round;
}

static void duplicate(const bench_rec *t, const char *why)
{
    if (ndup < 16)
        snprintf(dups[ndup], sizeof dups[ndup], "\"%.60s\" / \"%.60s\" (%.30s round %d): %.80s",
                 t->bench, t->variant, t->prog, t->round, why);
    ndup++;
}

/* Add one record read from a program. The same key from the same program in another round
 * (run.sh's alternating processes) adds that round's repetitions; anything else with a key
 * already seen is a duplicate. */
static void add(const bench_rec *t)
{
    bench_rec *e = find_key(t->bench, t->variant);
    if (!e) {
        if (nrecs == MAX_RECS)
            return;
        e = &recs[nrecs++];
        *e = *t;
        if (e->nsamples == 0 && e->error[0] && e->failed_rounds == 0)
            e->failed_rounds = 1;
        return;
    }
    if (strcmp(e->prog, t->prog)) {
        duplicate(t, "also written by another program");
        return;
    }
    if (t->round == 0 || has_round(e, t->round)) {
        duplicate(t, "written twice in one run");
        return;
    }
    /* (an error record says nothing about pairing: it has no repetitions to pair) */
    int t_failed = t->nsamples == 0 && t->error[0], e_failed = e->nsamples == 0 && e->error[0];
    if (strcmp(e->baseline, t->baseline) || (!t_failed && !e_failed && e->paired != t->paired)) {
        duplicate(t, "another baseline or pairing than in an earlier round");
        return;
    }
    if (t_failed) {
        e->failed_rounds += t->failed_rounds ? t->failed_rounds : 1;
        if (!e->error[0])
            snprintf(e->error, sizeof e->error, "%s", t->error);
        e->round = t->round;   /* this round is seen: a second record of it is a duplicate */
        return;
    }
    e->count += t->count;
    if (e_failed)
        e->paired = t->paired;   /* the first round that measured it says how */
    for (int i = 0; i < t->nsamples && e->nsamples < BENCH_MAX_REPS; i++) {
        e->samples[e->nsamples] = t->samples[i];
        e->sample_rounds[e->nsamples++] = t->sample_rounds[i];
    }
}

/* ---- ratios ------------------------------------------------------------------------------ */

typedef struct cmp { double med, min, max; int pairs; const char *how; } cmp;

/* Index of sample i among the samples of its round (repetition k of that round). */
static int rep_in_round(const bench_rec *r, int i)
{
    int k = 0;
    for (int j = 0; j < i; j++)
        k += r->sample_rounds[j] == r->sample_rounds[i];
    return k;
}

/* a against baseline b: the median, min and max of the ratios of the repetitions measured
 * next to each other (same round, same repetition), when both were measured that way;
 * otherwise the ratio of the two medians, said so. */
static cmp compare(const bench_rec *a, const bench_rec *b)
{
    cmp c = { NAN, NAN, NAN, 0, "-" };
    double v[BENCH_MAX_REPS];
    if (!b || isnan(a->median) || isnan(b->median) || b->median == 0)
        return c;
    if (a == b) {
        c.med = c.min = c.max = 1;
        c.how = "baseline";
        return c;
    }
    if (a->paired && b->paired)
        for (int i = 0; i < a->nsamples; i++) {
            int ki = rep_in_round(a, i);
            for (int j = 0; j < b->nsamples; j++)
                if (b->sample_rounds[j] == a->sample_rounds[i] && rep_in_round(b, j) == ki) {
                    if (b->samples[j] != 0)
                        v[c.pairs++] = a->samples[i] / b->samples[j];
                    break;
                }
        }
    if (c.pairs > 0) {
        bench_stat s = bench_stats(v, c.pairs);
        c.med = s.median;
        c.min = s.min;
        c.max = s.max;
        c.how = strcmp(a->prog, b->prog) ? "alternating processes" : "in one process";
    } else {
        c.med = a->median / b->median;
        c.how = "medians";
    }
    return c;
}

static const bench_rec *figure(const char *bench, const char *variant)
{
    const bench_rec *r = find_key(bench, variant);
    return r && !isnan(r->median) ? r : NULL;
}

static void finish(void)
{
    for (int i = 0; i < nrecs; i++) {
        bench_rec *r = &recs[i];
        if (r->nsamples > 0 && r->nsamples == r->count) {
            bench_stat s = bench_stats(r->samples, r->nsamples);
            r->median = s.median;
            r->min = s.min;
            r->max = s.max;
        } else if (r->error[0]) {
            r->median = r->min = r->max = NAN;
        }
    }
    for (int i = 0; i < nrecs; i++) {
        bench_rec *r = &recs[i];
        cmp c = r->baseline[0] ? compare(r, figure(r->bench, r->baseline)) : compare(r, NULL);
        r->ratio = c.med;
        r->ratio_min = c.min;
        r->ratio_max = c.max;
        r->pairs = c.pairs;
        snprintf(r->pairing, sizeof r->pairing, "%s",
                 isnan(c.med) ? "" : !strcmp(c.how, "alternating processes") ? "alternating"
                                                                             : c.how);
    }
}

/* ---- the stamp: what was measured, when, on what ----------------------------------------- */

static char stamp_json[2048];
static char stamp_line[1024];

static void read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)cap, f))
            out[0] = 0;
        fclose(f);
    }
    out[strcspn(out, "\n")] = 0;
}

/* The selected word of a sysfs choice line such as "always [madvise] never". */
static void thp_setting(const char *path, char *out, size_t cap)
{
    char buf[256];
    read_line(path, buf, sizeof buf);
    char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
    if (a && b) {
        *b = 0;
        bench__copy(out, cap, a + 1);
    } else {
        bench__copy(out, cap, buf[0] ? buf : "unknown");
    }
}

static void cpu_model(char *out, size_t cap)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, cap, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && !strncmp(line, "model name", 10)) {
            c++;
            while (*c == ' ' || *c == '\t')
                c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, cap, "%s", c);
            break;
        }
    }
    if (f)
        fclose(f);
}

/* Appends "key":"value" (escaped as bench_write_rec escapes) to the stamp. */
static void stamp_str(FILE *f, const char *key, const char *val, int first)
{
    if (!first)
        fputc(',', f);
    bench__str(f, key, val);
}

static void make_stamp(const char *mode)
{
    char date[64], cpu[256], nrh[32], anon[64], shmem[64];
    const char *commit = getenv("BENCH_COMMIT"), *workers = getenv("BENCH_WORKERS");
    struct utsname u;
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cpu_model(cpu, sizeof cpu);
    read_line("/proc/sys/vm/nr_hugepages", nrh, sizeof nrh);
    thp_setting("/sys/kernel/mm/transparent_hugepage/enabled", anon, sizeof anon);
    thp_setting("/sys/kernel/mm/transparent_hugepage/shmem_enabled", shmem, sizeof shmem);
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "unknown");
    if (!commit || !commit[0])
        commit = "unknown";
    FILE *f = fmemopen(stamp_json, sizeof stamp_json - 1, "w");
    if (!f) {
        snprintf(stamp_json, sizeof stamp_json, "{\"mode\":\"%s\"}", mode);
        return;
    }
    fputc('{', f);
    stamp_str(f, "mode", mode, 1);
    stamp_str(f, "date", date, 0);
    stamp_str(f, "commit", commit, 0);
    stamp_str(f, "cpu", cpu, 0);
    fprintf(f, ",\"cores\":%ld", sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, ",\"workers\":%d", workers && atoi(workers) > 0 ? atoi(workers) : 2);
    stamp_str(f, "kernel", u.release, 0);
    fprintf(f, ",\"nr_hugepages\":%s", nrh[0] ? nrh : "null");
    stamp_str(f, "thp_anon", anon, 0);
    stamp_str(f, "thp_shmem", shmem, 0);
    fputc('}', f);
    fclose(f);
    snprintf(stamp_line, sizeof stamp_line,
             "%s run, %s, commit %.12s%s; %.100s, %ld cores, kernel %.60s; huge pages %.20s "
             "reserved, THP anon %.20s, shmem %.20s", mode, date, commit,
             strchr(commit, '+') ? " (with uncommitted changes)" : "", cpu,
             sysconf(_SC_NPROCESSORS_ONLN),
             u.release, nrh[0] ? nrh : "?", anon, shmem);
}

static void write_json(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(1);
    }
    /* One record per line, as bench/plot reads them; the run's stamp on a line of its own
     * and in every record, so a record copied out of the file still says where it is from. */
    fprintf(f, "{\n\"run\": %s,\n\"records\": [\n", stamp_json);
    for (int i = 0; i < nrecs; i++) {
        fputs(i ? "," : " ", f);
        bench_write_rec(f, &recs[i], stamp_json);
    }
    fputs("]\n}\n", f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- the table ---------------------------------------------------------------------------- */

static int wb = 9, wv = 7, wu = 4, wbase = 8;

static void print_num(double v)
{
    if (isnan(v))
        printf(" %9s", "-");
    else if (v >= 1e4)
        printf(" %9.0f", v);
    else
        printf(" %9.4g", v);
}

static void print_row(const bench_rec *r, const char *group)
{
    printf("%-*s  %-*s  %-*s", wb, group, wv, r->variant, wu, r->unit);
    if (isnan(r->median)) {
        printf("  FAILED: %.100s\n", r->error[0] ? r->error : "no figure");
        return;
    }
    print_num(r->median);
    print_num(r->min);
    print_num(r->max);
    printf(" %3d", r->count);
    int self = !strcmp(r->variant, r->baseline);
    /* ratio (8) | min..max (1 + 14) | pairs, how (1 + 17) | baseline */
    if (self || !r->baseline[0] || isnan(r->ratio)) {
        printf("  %7s %14s %-17s", "-", "", "");
        printf("  %s", self ? "(baseline)" : r->baseline[0] ? "vs " : "");
        if (!self && r->baseline[0])
            printf("%s (no figure)", r->baseline);
    } else {
        printf("  %6.3fx", r->ratio);
        if (r->pairs > 0)
            printf(" %6.3f..%-6.3f %2d %-14s", r->ratio_min, r->ratio_max, r->pairs,
                   r->pairing);
        else
            printf(" %14s %-17s", "", "medians");
        printf("  vs %s", r->baseline);
    }
    if (r->failed_rounds)
        printf("  (%d round%s failed)", r->failed_rounds, r->failed_rounds > 1 ? "s" : "");
    putchar('\n');
}

static void print_table(int quick)
{
    static char done[MAX_RECS];
    for (int i = 0; i < nrecs; i++) {
        int l;
        if ((l = (int)strlen(recs[i].bench)) > wb) wb = l;
        if ((l = (int)strlen(recs[i].variant)) > wv) wv = l;
        if ((l = (int)strlen(recs[i].unit)) > wu) wu = l;
        if ((l = (int)strlen(recs[i].baseline) + 15) > wbase) wbase = l;
        if (!strcmp(recs[i].variant, recs[i].baseline) && wbase < 10) wbase = 10;
    }
    int width = wb + 2 + wv + 2 + wu + 3 * 10 + 4 + 2 + 7 + 15 + 18 + 2 + wbase;
    printf("\nshoal benchmarks: %s\n", stamp_line);
    if (quick)
        printf("QUICK RUN: smaller workloads and fewer repetitions; these figures are not "
               "comparable\nwith a full run's or with any target, so no target is judged.\n");
    printf("n = repetitions; ratio = median of the per-pair ratios figure/baseline, pairs "
           "measured next to\neach other (in one process, or in alternating processes, run.sh), "
           "with the pairs' min..max;\n\"medians\" = measured apart, the ratio of the two "
           "medians.\n");
    printf("%-*s  %-*s  %-*s %9s %9s %9s %3s  %7s %14s %-17s  %s\n", wb, "benchmark", wv,
           "variant", wu, "unit", "median", "min", "max", "n", "ratio", "min..max",
           "pairs", "baseline");
    for (int i = 0; i < width; i++)
        putchar('-');
    putchar('\n');
    /* groups in order of first appearance; within a group the baseline first */
    for (int i = 0; i < nrecs; i++) {
        if (done[i])
            continue;
        int first = 1;
        for (int pass = 0; pass < 2; pass++)
            for (int j = i; j < nrecs; j++) {
                int is_base = !strcmp(recs[j].variant, recs[j].baseline);
                if (done[j] || strcmp(recs[j].bench, recs[i].bench) || is_base != (pass == 0))
                    continue;
                print_row(&recs[j], first ? recs[j].bench : "");
                first = 0;
                done[j] = 1;
            }
    }
    printf("units ending in /s: higher is better (ratio > 1 beats the baseline); "
           "ns, us, %%: lower is better\n");
    for (int i = 0; i < nrecs; i++)
        if (recs[i].failed_rounds && recs[i].nsamples > 0)
            printf("  note: %s / %s: %d round(s) failed: %.120s\n", recs[i].bench,
                   recs[i].variant, recs[i].failed_rounds, recs[i].error);
}

/* ---- targets ------------------------------------------------------------------------------ */

enum op { AT_LEAST, AT_MOST, BELOW };

typedef struct target {
    const char *bench_prefix, *variant, *baseline;   /* baseline NULL: judge the median */
    enum op op;
    double limit;
    const char *text;
} target;

/* Issue 13's goals (sections 2 and 3), each judged on one full run: a ratio on the median
 * of its per-pair ratios, an absolute figure on its median. */
static const target goals[] = {
    { "fib(", "shoal", "oneTBB", AT_LEAST, 1.3, "fib, every call a task, >= 1.3x oneTBB" },
    { "empty tasks", "shoal", "oneTBB", AT_LEAST, 1.3,
      "empty tasks from one thread >= 1.3x oneTBB" },
    /* A Ray driver submits a level of the DAG as a list of tasks: the batch row. */
    { "reduce DAG", "shoal, batch submit", "oneTBB", AT_LEAST, 0.5,
      "reduction DAG, REF args, a level per batch submit >= 0.5x oneTBB's fork-join tree" },
    { "ping latency", "shoal", NULL, AT_MOST, 300, "ping <= 300 ns" },
    { "ping to parked workers", "shoal, workers parked", "futex wake+answer", AT_MOST, 1.3,
      "ping to parked workers <= 1.3x a bare futex wake-and-answer" },
    { "syscalls, 100k round trips", "shoal", NULL, BELOW, 100,
      "100k submit+get+release round trips < 100 system calls" },
    { "idle runtime", "shoal, workers idle", NULL, BELOW, 1, "an idle runtime < 1% of a core" },
    { "put 256 MiB", "shoal_put", "memcpy", AT_LEAST, 0.85, "put 256 MiB >= 0.85x memcpy" },
    { "spill", "shoal (4 MiB objects)", "O_DIRECT pwrite, 4 in flight", AT_LEAST, 0.8,
      "spill >= 0.8x the disk's O_DIRECT write bandwidth" },
    { "restore", "shoal (4 MiB objects)", "O_DIRECT pread, 4 in flight", AT_LEAST, 0.8,
      "restore >= 0.8x the disk's O_DIRECT read bandwidth" },
    { "ingest buffered", "shoal_put_file", "pread", AT_LEAST, 0.9,
      "buffered ingest >= 0.9x pread" },
    { "lookup hot64", "c shoal_get", "a ref+ptr inline", AT_MOST, 1.1,
      "hot shoal_get <= 1.1x a pointer-carrying ref resolved inline" },
};

/* Targets of earlier issues (2, 3, 4, 6) that issue 13 did not replace. */
static const target earlier[] = {
    { "lookup hot64", "c shoal_get", "a ref+ptr noinline", AT_MOST, 1.3,
      "hot shoal_get <= 1.3x a pointer-carrying ref resolved out of line" },
    { "lookup hot64", "c shoal_get lib call", "a ref+ptr noinline", AT_MOST, 1.3,
      "hot shoal_get as a library call <= 1.3x the ref resolved out of line" },
    { "put+release 64 B", "shoal", NULL, AT_LEAST, 10, "put+release of 64 B >= 10 M/s" },
    { "ingest O_DIRECT", "shoal_put_file", "pread", AT_LEAST, 0.9,
      "file ingest >= 0.9x pread, O_DIRECT" },
    { "export buffered", "shoal_write_file", "pwrite+fsync", AT_LEAST, 0.9,
      "file export >= 0.9x pwrite+fsync, buffered" },
    { "export O_DIRECT", "shoal_write_file", "pwrite+fsync", AT_LEAST, 0.9,
      "file export >= 0.9x pwrite+fsync, O_DIRECT" },
    { "multiproc get, 64 hot", "put by another process", "in-process", AT_MOST, 1.1,
      "get of an object another process put <= 1.1x in-process" },
    { "multiproc get in a client, 64 hot", "put by the owner", "in-process", AT_MOST, 1.1,
      "get in a client of the owner's object <= 1.1x its own" },
    { "multiproc attach", "shoal_attach", NULL, BELOW, 1000, "attach < 1 ms (in us)" },
};

static const bench_rec *target_rec(const target *g, const char *variant)
{
    for (int i = 0; i < nrecs; i++)
        if (!strncmp(recs[i].bench, g->bench_prefix, strlen(g->bench_prefix))
            && !strcmp(recs[i].variant, variant))
            return &recs[i];
    return NULL;
}

static void print_targets(const char *title, const target *t, size_t n, int quick)
{
    printf("\n%s%s:\n", title, quick ? " (quick run: not judged)" : "");
    for (size_t k = 0; k < n; k++) {
        const target *g = &t[k];
        const bench_rec *r = target_rec(g, g->variant);
        const bench_rec *b = r && g->baseline ? figure(r->bench, g->baseline) : NULL;
        cmp c = { NAN, NAN, NAN, 0, "" };
        if (r && !isnan(r->median) && g->baseline)
            c = compare(r, b);
        else if (r && !isnan(r->median))
            c = (cmp){ r->median, r->min, r->max, r->count, "" };
        double v = c.med;
        int ok = g->op == AT_LEAST ? v >= g->limit : g->op == AT_MOST ? v <= g->limit
                                                                      : v < g->limit;
        const char *verdict = isnan(v) ? "NOT MEASURED" : quick ? "-" : ok ? "met" : "MISSED";
        printf("  %-12s %s", verdict, g->text);
        if (isnan(v)) {
            putchar('\n');
            if (r && r->error[0])
                printf("               (%.110s)\n", r->error);
            continue;
        }
        const char *x = g->baseline ? "x" : "";
        if (isnan(c.min))
            printf(": %.4g%s (%s)\n", v, x, c.how);
        else
            printf(": median %.4g%s, min %.4g%s, max %.4g%s (%d %s%s)\n", v, x, c.min, x, c.max,
                   x, c.pairs, g->baseline ? "pairs, " : "", g->baseline ? c.how : "repetitions");
    }
}

int main(int argc, char **argv)
{
    static char line[16384];
    static bench_rec t;
    if (argc < 3 || (strcmp(argv[2], "full") && strcmp(argv[2], "quick"))) {
        fprintf(stderr, "usage: report OUT.json full|quick < records\n");
        return 2;
    }
    int quick = !strcmp(argv[2], "quick");
    while (fgets(line, sizeof line, stdin))
        if (bench_parse(line, &t))
            add(&t);
    finish();
    make_stamp(argv[2]);
    write_json(argv[1]);
    print_table(quick);
    print_targets("targets of issue 13 (a ratio: the median of the per-pair ratios)", goals,
                  sizeof goals / sizeof goals[0], quick);
    print_targets("targets of earlier issues", earlier, sizeof earlier / sizeof earlier[0],
                  quick);
    if (ndup) {
        printf("\n%d DUPLICATE KEY%s (bench, variant): every figure needs a name of its own\n",
               ndup, ndup > 1 ? "S" : "");
        for (int i = 0; i < ndup && i < 16; i++)
            printf("  %s\n", dups[i]);
        return 1;
    }
    return 0;
}
