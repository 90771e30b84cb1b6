/* report.c - merges the records every bench program printed (stdin, bench.h format) into
 * one JSON file, computes each figure's ratio against the baseline of its group measured in
 * the same run, and prints the table `make bench` shows, then the issue targets met or not.
 * Usage: report OUT.json MODE < records        (not a benchmark: run.sh calls it)
 */
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_RECS 1024

static bench_rec recs[MAX_RECS];
static int nrecs;

static const bench_rec *find(const char *bench, const char *variant)
{
    for (int i = 0; i < nrecs; i++)
        if (!strcmp(recs[i].bench, bench) && !strcmp(recs[i].variant, variant)
            && !isnan(recs[i].median))
            return &recs[i];
    return NULL;
}

static void fill_ratios(void)
{
    for (int i = 0; i < nrecs; i++) {
        const bench_rec *b = recs[i].baseline[0] ? find(recs[i].bench, recs[i].baseline) : NULL;
        recs[i].ratio = b && !isnan(recs[i].median) && b->median != 0
                        ? recs[i].median / b->median : NAN;
    }
}

static void write_json(const char *path, const char *mode)
{
    char tmp[4096], date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(1);
    }
    fprintf(f, "{\n\"mode\": \"%s\",\n\"date\": \"%s\",\n\"cpus\": %ld,\n\"records\": [\n", mode,
            date, sysconf(_SC_NPROCESSORS_ONLN));
    for (int i = 0; i < nrecs; i++) {
        bench_stat s = { recs[i].median, recs[i].min, recs[i].max, 0 };
        fputs(i ? "," : " ", f);   /* one record per line, as bench/plot reads them */
        bench_write(f, recs[i].bench, recs[i].variant, recs[i].unit, s, recs[i].baseline,
                    recs[i].ratio, recs[i].error[0] ? recs[i].error : NULL);
    }
    fputs("]\n}\n", f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        exit(1);
    }
}

static void print_num(double v)
{
    if (isnan(v))
        printf(" %10s", "-");
    else if (v >= 1e5)
        printf(" %10.0f", v);
    else
        printf(" %10.4g", v);
}

static void print_row(const bench_rec *r, const char *group)
{
    printf("%-20s %-22s %-9s", group, r->variant, r->unit);
    if (r->error[0]) {
        printf(" FAILED: %.90s\n", r->error);
        return;
    }
    print_num(r->median);
    print_num(r->min);
    print_num(r->max);
    if (isnan(r->ratio))
        printf(" %7s", "-");
    else
        printf(" %7.2f", r->ratio);
    if (!strcmp(r->variant, r->baseline))
        printf("  (baseline)\n");
    else
        printf("  vs %s\n", r->baseline[0] ? r->baseline : "-");
}

static void print_table(const char *mode)
{
    static char done[MAX_RECS];
    printf("\nshoal benchmarks (%s run, %ld cpus); ratio = median / median of the baseline in "
           "the same run\n", mode, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-20s %-22s %-9s %10s %10s %10s %7s  %s\n", "benchmark", "variant", "unit", "median",
           "min", "max", "ratio", "baseline");
    for (int i = 0; i < 120; i++)
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
           "ns: lower is better (ratio < 1 beats it)\n");
}

/* The figures the issues set targets for (issues 2, 3, 4 and 6 "Targets"). */
typedef struct target {
    const char *bench_prefix, *variant, *baseline;
    int on_ratio;        /* 1: compare the ratio, 0: the median */
    int at_most;         /* 1: figure <= limit passes, 0: figure >= limit passes */
    double limit;
    const char *text;
} target;

static const target targets[] = {
    { "lookup hot64", "c shoal_get", "a ref+ptr noinline", 1, 1, 1.3,
      "hot shoal_get <= 1.3x a pointer-carrying ref resolved out of line" },
    { "lookup hot64", "c shoal_get", "a ref+ptr inline", 1, 1, 1.3,
      "hot shoal_get <= 1.3x a pointer-carrying ref resolved inline" },
    { "lookup hot64", "c shoal_get lib call", "a ref+ptr noinline", 1, 1, 1.3,
      "hot shoal_get as a library call <= 1.3x the ref resolved out of line" },
    { "put 256 MiB", "shoal_put", "memcpy", 1, 0, 0.8, "put of 256 MiB >= 0.8x memcpy bandwidth" },
    { "put+release 64 B", "shoal", "malloc+memcpy+free", 0, 0, 10,
      "put+release of 64 B >= 10 M/s on one thread" },
    { "empty tasks", "shoal", "oneTBB", 1, 0, 1.0, "empty-task throughput >= 1.0x oneTBB" },
    { "fib(", "shoal", "oneTBB", 1, 0, 1.0, "fib, every call a task, >= 1.0x oneTBB" },
    { "ping latency", "shoal", "oneTBB", 0, 1, 1000, "ping latency < 1 us" },
    { "ingest buffered", "shoal_put_file", "pread", 1, 0, 0.9,
      "file ingest >= 0.9x pread, buffered" },
    { "ingest O_DIRECT", "shoal_put_file", "pread", 1, 0, 0.9,
      "file ingest >= 0.9x pread, O_DIRECT" },
    { "export buffered", "shoal_write_file", "pwrite+fsync", 1, 0, 0.9,
      "file export >= 0.9x pwrite+fsync, buffered" },
    { "export O_DIRECT", "shoal_write_file", "pwrite+fsync", 1, 0, 0.9,
      "file export >= 0.9x pwrite+fsync, O_DIRECT" },
    { "spill", "shoal (4 MiB objects)", "O_DIRECT pwrite", 1, 0, 0.8,
      "spill >= 0.8x the disk's O_DIRECT write bandwidth" },
    { "restore", "shoal (4 MiB objects)", "O_DIRECT pread", 1, 0, 0.8,
      "restore >= 0.8x the disk's O_DIRECT read bandwidth" },
    { "multiproc get, 64 hot", "put by another process", "in-process", 1, 1, 1.1,
      "get of an object another process put <= 1.1x in-process (owner)" },
    { "multiproc get in a client, 64 hot", "put by the owner", "in-process", 1, 1, 1.1,
      "get in a client of the owner's object <= 1.1x its own" },
    { "multiproc attach", "shoal_attach", "", 0, 1, 1000, "attach < 1 ms (us)" },
};

static void print_targets(void)
{
    printf("\ntargets:\n");
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        const target *g = &targets[t];
        const bench_rec *r = NULL;
        for (int i = 0; i < nrecs && !r; i++)
            if (!strncmp(recs[i].bench, g->bench_prefix, strlen(g->bench_prefix))
                && !strcmp(recs[i].variant, g->variant) && !strcmp(recs[i].baseline, g->baseline))
                r = &recs[i];
        double v = r ? (g->on_ratio ? r->ratio : r->median) : NAN;
        const char *verdict = isnan(v) ? "NOT MEASURED"
                              : (g->at_most ? v <= g->limit : v >= g->limit) ? "met" : "MISSED";
        if (isnan(v))
            printf("  %-13s %s\n", verdict, g->text);
        else
            printf("  %-13s %s: %.3g%s\n", verdict, g->text, v, g->on_ratio ? "x" : "");
    }
}

int main(int argc, char **argv)
{
    char line[4096];
    if (argc < 3) {
        fprintf(stderr, "usage: report OUT.json MODE < records\n");
        return 2;
    }
    while (fgets(line, sizeof line, stdin))
        if (nrecs < MAX_RECS && bench_parse(line, &recs[nrecs]))
            nrecs++;
    fill_ratios();
    write_json(argv[1], argv[2]);
    print_table(argv[2]);
    print_targets();
    return 0;
}
