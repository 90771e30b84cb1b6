/* plot.c - draws the merged results (bench/results/latest.json) as SVG charts with no
 * dependency: lookup cost per variant, task figures of shoal against its peers, and put
 * bandwidth against memcpy across object sizes. Usage: plot latest.json OUTDIR
 * (not a benchmark: run.sh calls it after report).
 */
#include "bench.h"

#define MAX_RECS 1024
#define W 760

static bench_rec recs[MAX_RECS];
static int nrecs;
static char stamp[800] = "run: unknown (no \"run\" stamp in the results file)";

/* The chart's footer from the results' "run" line: mode, date, commit and machine. */
static void read_stamp(const char *line)
{
    char mode[16], date[40], commit[64], cpu[128], kernel[64], anon[24], shmem[24];
    double cores = bench__get_num(line, "cores"), huge = bench__get_num(line, "nr_hugepages");
    bench__get_str(line, "mode", mode, sizeof mode);
    bench__get_str(line, "date", date, sizeof date);
    bench__get_str(line, "commit", commit, sizeof commit);
    bench__get_str(line, "cpu", cpu, sizeof cpu);
    bench__get_str(line, "kernel", kernel, sizeof kernel);
    bench__get_str(line, "thp_anon", anon, sizeof anon);
    bench__get_str(line, "thp_shmem", shmem, sizeof shmem);
    snprintf(stamp, sizeof stamp, "%s run%s, %s, commit %.12s%s; %s, %.0f cores, kernel %s; "
             "%.0f huge pages, THP anon %s / shmem %s", mode,
             strcmp(mode, "quick") ? "" : " (figures not comparable)", date, commit,
             strchr(commit, '+') ? " with changes" : "", cpu, cores, kernel, huge, anon, shmem);
}

static const char *const palette[] = { "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f",
                                       "#e377c2", "#17becf" };

/* shoal's figures always blue; the others take palette colours in order of appearance. */
static const char *color_of(const char *variant, const char *seen[], int *nseen)
{
    if (strstr(variant, "shoal"))
        return "#1f77b4";
    for (int i = 0; i < *nseen; i++)
        if (!strcmp(seen[i], variant))
            return palette[i % 7];
    seen[*nseen] = variant;
    return palette[(*nseen)++ % 7];
}

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

static void text(FILE *f, double x, double y, const char *anchor, int size, const char *fill,
                 const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"%s\">", x,
            y, anchor, size, fill);
    esc(f, s);
    fputs("</text>\n", f);
}

static void line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke, double w)
{
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"%.1f\"/>\n", x1, y1, x2, y2, stroke, w);
}

static FILE *svg_open(const char *dir, const char *name, int h, const char *title)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    int hs = h + 20;   /* the stamp's line at the foot */
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, hs, W, hs);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, hs);
    text(f, W / 2.0, 24, "middle", 15, "#000", title);
    text(f, 6, hs - 6, "start", 9, "#555", stamp);
    return f;
}

static void svg_close(FILE *f, const char *dir, const char *name)
{
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        perror(name);
    else
        fprintf(stderr, "  wrote %s/%s\n", dir, name);
}

/* A round step for about n ticks up to max. */
static double nice_step(double max, int n)
{
    if (!(max > 0))
        return 1;
    double raw = max / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return p * (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10);
}

static void fmt(char *buf, size_t cap, double v)
{
    if (v >= 100 || v == floor(v))
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.3g", v);
}

/* ---- panel chart: one panel per benchmark group, horizontal bars with min-max whiskers,
 *      each panel on its own scale (the groups' magnitudes differ by orders) ------------- */

typedef int (*rec_filter)(const bench_rec *r);

/* The records of group g to draw: one per variant (a figure reported twice, against two
 * baselines, is drawn once). */
static int group_members(const char *g, rec_filter keep, const bench_rec *out[])
{
    int n = 0;
    for (int i = 0; i < nrecs; i++) {
        int dup = 0;
        if (strcmp(recs[i].bench, g) || !keep(&recs[i]))
            continue;
        for (int j = 0; j < n; j++)
            dup |= !strcmp(out[j]->variant, recs[i].variant);
        if (!dup)
            out[n++] = &recs[i];
    }
    return n;
}

/* The distinct groups passing keep, in order of appearance. */
static int groups_of(rec_filter keep, const char *out[])
{
    int n = 0;
    for (int i = 0; i < nrecs; i++) {
        int dup = 0;
        if (!keep(&recs[i]))
            continue;
        for (int j = 0; j < n; j++)
            dup |= !strcmp(out[j], recs[i].bench);
        if (!dup)
            out[n++] = recs[i].bench;
    }
    return n;
}

#define BAR_H 22
#define LABEL_W 200
#define PLOT_W 440

static void panel_chart(const char *dir, const char *name, const char *title, rec_filter keep)
{
    const char *groups[MAX_RECS], *seen[MAX_RECS];
    const bench_rec *m[MAX_RECS];
    int ng = groups_of(keep, groups), nseen = 0, h = 44;
    if (ng == 0) {
        fprintf(stderr, "  %s: nothing to draw\n", name);
        return;
    }
    for (int g = 0; g < ng; g++)
        h += 30 + group_members(groups[g], keep, m) * BAR_H + 26;
    FILE *f = svg_open(dir, name, h, title);
    double y = 44;
    for (int g = 0; g < ng; g++) {
        int n = group_members(groups[g], keep, m);
        double max = 0;
        char buf[256];
        for (int i = 0; i < n; i++)
            if (!isnan(m[i]->max) && m[i]->max > max)
                max = m[i]->max;
        double step = nice_step(max, 5), top = step * ceil(max / step);
        snprintf(buf, sizeof buf, "%s (%s, %s; ratios against %s)", groups[g], m[0]->unit,
                 strstr(m[0]->unit, "/s") ? "higher is better" : "lower is better",
                 m[0]->baseline[0] ? m[0]->baseline : "-");
        text(f, 10, y + 16, "start", 13, "#000", buf);
        y += 26;
        double x0 = LABEL_W, scale = top > 0 ? PLOT_W / top : 0;
        for (double t = 0; t <= top + step / 2; t += step) {
            line(f, x0 + t * scale, y, x0 + t * scale, y + n * BAR_H, "#ddd", 1);
            fmt(buf, sizeof buf, t);
            text(f, x0 + t * scale, y + n * BAR_H + 14, "middle", 10, "#555", buf);
        }
        for (int i = 0; i < n; i++) {
            const bench_rec *r = m[i];
            double cy = y + i * BAR_H + BAR_H / 2.0;
            text(f, x0 - 8, cy + 4, "end", 12, "#000", r->variant);
            if (isnan(r->median)) {
                snprintf(buf, sizeof buf, "failed: %.70s", r->error);
                text(f, x0 + 4, cy + 4, "start", 11, "#c00", buf);
                continue;
            }
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n",
                    x0, cy - BAR_H / 2.0 + 3, r->median * scale, BAR_H - 6,
                    color_of(r->variant, seen, &nseen));
            if (!isnan(r->min) && !isnan(r->max)) {
                line(f, x0 + r->min * scale, cy, x0 + r->max * scale, cy, "#000", 1);
                line(f, x0 + r->min * scale, cy - 4, x0 + r->min * scale, cy + 4, "#000", 1);
                line(f, x0 + r->max * scale, cy - 4, x0 + r->max * scale, cy + 4, "#000", 1);
            }
            fmt(buf, sizeof buf, r->median);
            if (!isnan(r->ratio) && strcmp(r->variant, r->baseline)) {
                size_t l = strlen(buf);
                snprintf(buf + l, sizeof buf - l, "  (%.2fx)", r->ratio);
            }
            text(f, x0 + (isnan(r->max) ? r->median : r->max) * scale + 6, cy + 4, "start", 11,
                 "#000", buf);
        }
        y += n * BAR_H + 30;
    }
    svg_close(f, dir, name);
}

static int is_lookup(const bench_rec *r) { return !strncmp(r->bench, "lookup ", 7); }
static int is_task(const bench_rec *r) { return !strcmp(r->baseline, "oneTBB"); }

/* ---- put bandwidth: GB/s against object size on a log2 axis ---------------------------- */

/* Object size of a "put <n> B|KiB|MiB" group, 0 if r is not one. */
static double put_size(const bench_rec *r)
{
    double n;
    char unit[8];
    if (sscanf(r->bench, "put %lf %7s", &n, unit) != 2 || strcmp(r->unit, "GB/s"))
        return 0;
    return !strcmp(unit, "MiB") ? n * 1048576 : !strcmp(unit, "KiB") ? n * 1024 : n;
}

static void put_chart(const char *dir, const char *name)
{
    const char *series[16], *seen[16];
    int ns = 0, nseen = 0, h = 420;
    double lo = 1e30, hi = 0, max = 0;
    for (int i = 0; i < nrecs; i++) {
        double s = put_size(&recs[i]);
        int dup = 0;
        if (s == 0)
            continue;
        lo = fmin(lo, s);
        hi = fmax(hi, s);
        if (!isnan(recs[i].max))
            max = fmax(max, recs[i].max);
        for (int j = 0; j < ns; j++)
            dup |= !strcmp(series[j], recs[i].variant);
        if (!dup && ns < 16)
            series[ns++] = recs[i].variant;
    }
    if (ns == 0) {
        fprintf(stderr, "  %s: nothing to draw\n", name);
        return;
    }
    FILE *f = svg_open(dir, name, h, "put bandwidth against memcpy into pre-faulted memory "
                                     "(GB/s, higher is better)");
    const double x0 = 70, x1 = W - 30, y0 = h - 50, y1 = 50;
    double l0 = log2(lo), l1 = log2(hi) > l0 ? log2(hi) : l0 + 1;
    double step = nice_step(max, 6), top = step * ceil(max / step);
    char buf[64];
#define PX(s) (x0 + (log2(s) - l0) / (l1 - l0) * (x1 - x0))
#define PY(v) (y0 - (v) / top * (y0 - y1))
    for (double t = 0; t <= top + step / 2; t += step) {
        line(f, x0, PY(t), x1, PY(t), "#ddd", 1);
        fmt(buf, sizeof buf, t);
        text(f, x0 - 6, PY(t) + 4, "end", 11, "#555", buf);
    }
    for (int i = 0; i < nrecs; i++) {
        double s = put_size(&recs[i]);
        if (s == 0 || strcmp(recs[i].variant, series[0]))
            continue;
        line(f, PX(s), y0, PX(s), y0 + 5, "#000", 1);
        text(f, PX(s), y0 + 18, "middle", 11, "#000", recs[i].bench + 4);
    }
    line(f, x0, y0, x1, y0, "#000", 1);
    line(f, x0, y0, x0, y1, "#000", 1);
    text(f, (x0 + x1) / 2, h - 10, "middle", 12, "#000", "object size");
    for (int k = 0; k < ns; k++) {
        const char *col = color_of(series[k], seen, &nseen);
        int first = 1;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < nrecs; i++) {
            double s = put_size(&recs[i]);
            if (s == 0 || strcmp(recs[i].variant, series[k]) || isnan(recs[i].median))
                continue;
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", PX(s), PY(recs[i].median));
            first = 0;
        }
        fputs("\"/>\n", f);
        for (int i = 0; i < nrecs; i++) {
            double s = put_size(&recs[i]);
            if (s == 0 || strcmp(recs[i].variant, series[k]))
                continue;
            if (isnan(recs[i].median)) {
                text(f, PX(s), y0 - 8 - 14 * k, "middle", 10, "#c00", "failed");
                continue;
            }
            if (!isnan(recs[i].min) && !isnan(recs[i].max))
                line(f, PX(s), PY(recs[i].min), PX(s), PY(recs[i].max), col, 1);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", PX(s),
                    PY(recs[i].median), col);
        }
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>\n",
                x0 + 16, y1 + 10 + 18 * k, col);
        text(f, x0 + 36, y1 + 15 + 18 * k, "start", 12, "#000", series[k]);
    }
#undef PX
#undef PY
    svg_close(f, dir, name);
}

int main(int argc, char **argv)
{
    static char line_buf[16384];
    if (argc < 3) {
        fprintf(stderr, "usage: plot latest.json OUTDIR\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    while (fgets(line_buf, sizeof line_buf, in)) {
        if (!strncmp(line_buf, "\"run\":", 6))
            read_stamp(line_buf);
        else if (nrecs < MAX_RECS && bench_parse(line_buf, &recs[nrecs]))
            nrecs++;
    }
    fclose(in);
    panel_chart(argv[2], "lookup.svg", "ObjectRef lookup: ns per resolved lookup", is_lookup);
    panel_chart(argv[2], "tasks.svg", "tasks: shoal against oneTBB and OpenMP, same workers",
                is_task);
    put_chart(argv[2], "put_bandwidth.svg");
    return 0;
}
