/* shoal-timeline - summarise a task timeline (SHOAL_TIMELINE=file.json, a Chrome trace /
 * Perfetto JSON file) in the terminal: per worker its tasks, busy time and share of the
 * traced span, steals, parks and longest idle gap; then the longest tasks and the task
 * names that took the most time. Reads any Chrome trace with "X" (complete) events.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "opts.h"

static const char USAGE[] =
    "usage: shoal-timeline [-n N] FILE.json\n"
    "  FILE.json     a trace written by a program run with SHOAL_TIMELINE=FILE.json\n"
    "  -n, --top N   how many longest tasks and task names to list (default 10)\n"
    "  -h, --help    this text\n"
    "Open the same file in https://ui.perfetto.dev or chrome://tracing to see it drawn.\n";

struct task {
    double ts, dur;              /* microseconds */
    long tid;
    const char *name;
};

struct worker {
    long tid;
    const char *label;
    size_t tasks, steals, parks;
    double busy, longest_idle;
};

struct byname {
    const char *name;
    size_t count;
    double total, max;
};

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "shoal-timeline: %s\n", why);
    fputs(USAGE, stderr);
    return 2;
}

static int by_tid_ts(const void *a, const void *b)
{
    const struct task *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static int by_dur_desc(const void *a, const void *b)
{
    const struct task *x = *(struct task *const *)a, *y = *(struct task *const *)b;
    return x->dur > y->dur ? -1 : x->dur < y->dur;
}

static int by_total_desc(const void *a, const void *b)
{
    const struct byname *x = a, *y = b;
    return x->total > y->total ? -1 : x->total < y->total;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct task *)a)->name, ((const struct task *)b)->name);
}

static struct worker *worker_of(struct worker **ws, size_t *nw, long tid)
{
    for (size_t i = 0; i < *nw; i++)
        if ((*ws)[i].tid == tid)
            return &(*ws)[i];
    struct worker *n = realloc(*ws, (*nw + 1) * sizeof **ws);
    if (!n) {
        fprintf(stderr, "shoal-timeline: out of memory\n");
        exit(1);
    }
    *ws = n;
    memset(&n[*nw], 0, sizeof n[0]);
    n[*nw].tid = tid;
    return &n[(*nw)++];
}

static int by_worker_tid(const void *a, const void *b)
{
    const struct worker *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

int main(int argc, char **argv)
{
    size_t top = 10;
    const char *file = NULL;
    static const struct option opts[] = {
        { "top", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    opterr = 0;   /* our own messages, then the usage */
    while ((c = getopt_long(argc, argv, ":n:h", opts, NULL)) != -1) {
        char msg[256];
        switch (c) {
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0)
                return usage("-n wants a count");
            top = (size_t)v;
            break;
        }
        case 'h': fputs(USAGE, stdout); return 0;
        default:
            return usage(tool_option_error(c, argv, msg, sizeof msg));
        }
    }
    if (optind < argc)
        file = argv[optind++];
    if (optind < argc) {
        char msg[256];
        snprintf(msg, sizeof msg, "unexpected argument '%s' (one file only)", argv[optind]);
        return usage(msg);
    }
    if (!file)
        return usage("no file given");

    const char *err = NULL;
    size_t at = 0;
    jval *root = json_parse_file(file, &err, &at);
    if (!root) {
        if (!strcmp(err, "cannot open the file"))
            fprintf(stderr, "shoal-timeline: %s: %s\n", file, strerror(errno));
        else
            fprintf(stderr, "shoal-timeline: %s: not valid JSON: %s at byte %zu\n", file, err, at);
        return 1;
    }
    const jval *evs = root->t == J_ARR ? root : json_get(root, "traceEvents");
    if (!evs || evs->t != J_ARR) {
        fprintf(stderr, "shoal-timeline: %s: no traceEvents array: not a Chrome trace\n", file);
        json_free(root);
        return 1;
    }

    struct task *tasks = calloc(evs->n ? evs->n : 1, sizeof *tasks);
    struct worker *ws = NULL;
    size_t nt = 0, nw = 0;
    if (!tasks) {
        fprintf(stderr, "shoal-timeline: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < evs->n; i++) {
        const jval *e = &evs->items[i];
        const char *ph = json_str_of(e, "ph", ""), *name = json_str_of(e, "name", "?");
        long tid = (long)json_num_of(e, "tid", 0);
        if (!strcmp(ph, "X")) {
            struct task *t = &tasks[nt++];
            t->ts = json_num_of(e, "ts", 0);
            t->dur = json_num_of(e, "dur", 0);
            t->tid = tid;
            t->name = name;
            worker_of(&ws, &nw, tid)->tasks++;
        } else if (!strcmp(ph, "i") || !strcmp(ph, "I")) {
            if (!strcmp(name, "steal"))
                worker_of(&ws, &nw, tid)->steals++;
            else if (!strcmp(name, "park"))
                worker_of(&ws, &nw, tid)->parks++;
        } else if (!strcmp(ph, "M") && !strcmp(name, "thread_name")) {
            worker_of(&ws, &nw, tid)->label = json_str_of(json_get(e, "args"), "name", NULL);
        }
    }

    const jval *other = json_get(root, "otherData");
    printf("%s: ", file);
    if (nt == 0) {
        printf("no task events (was the program run with SHOAL_TIMELINE set, and did it "
               "run tasks?)\n");
        free(tasks);
        free(ws);
        json_free(root);
        return 0;
    }
    double t_begin = tasks[0].ts, t_end = tasks[0].ts + tasks[0].dur;
    for (size_t i = 0; i < nt; i++) {
        if (tasks[i].ts < t_begin)
            t_begin = tasks[i].ts;
        if (tasks[i].ts + tasks[i].dur > t_end)
            t_end = tasks[i].ts + tasks[i].dur;
    }
    double span = t_end - t_begin;
    size_t nworkers_with_tasks = 0;
    for (size_t i = 0; i < nw; i++)
        nworkers_with_tasks += ws[i].tasks > 0;
    printf("%zu tasks on %zu workers over %.3f ms%s%s\n", nt, nworkers_with_tasks,
           span / 1000.0, other ? ", " : "", other ? json_str_of(other, "producer", "") : "");
    double lost = json_num_of(other, "events_lost", 0);
    if (lost > 0)
        printf("warning: the oldest %.0f events were overwritten (rings full): counts and busy "
               "time cover only the end of the run; raise SHOAL_TIMELINE_EVENTS\n", lost);

    /* Busy time is the union of a worker's task intervals: a task that waits inside a
     * get runs other tasks nested in its own interval, which must not count twice. */
    qsort(tasks, nt, sizeof *tasks, by_tid_ts);
    for (size_t i = 0; i < nt;) {
        struct worker *w = worker_of(&ws, &nw, tasks[i].tid);
        double cur_s = tasks[i].ts, cur_e = tasks[i].ts + tasks[i].dur, busy = 0;
        double idle = cur_s - t_begin;
        size_t j = i + 1;
        for (; j < nt && tasks[j].tid == tasks[i].tid; j++) {
            double s = tasks[j].ts, e = s + tasks[j].dur;
            if (s > cur_e) {
                busy += cur_e - cur_s;
                if (s - cur_e > idle)
                    idle = s - cur_e;
                cur_s = s;
                cur_e = e;
            } else if (e > cur_e) {
                cur_e = e;
            }
        }
        busy += cur_e - cur_s;
        if (t_end - cur_e > idle)
            idle = t_end - cur_e;
        w->busy = busy;
        w->longest_idle = idle;
        i = j;
    }
    qsort(ws, nw, sizeof *ws, by_worker_tid);

    printf("\n%-12s %8s %11s %7s %7s %7s %16s\n", "worker", "tasks", "busy ms", "busy %",
           "steals", "parks", "longest idle ms");
    size_t all_tasks = 0, all_steals = 0, all_parks = 0;
    double all_busy = 0;
    for (size_t i = 0; i < nw; i++) {
        char label[32];
        if (ws[i].label)
            snprintf(label, sizeof label, "%s", ws[i].label);
        else
            snprintf(label, sizeof label, "tid %ld", ws[i].tid);
        printf("%-12s %8zu %11.3f %7.1f %7zu %7zu %16.3f\n", label, ws[i].tasks,
               ws[i].busy / 1000.0, span > 0 ? 100.0 * ws[i].busy / span : 0.0, ws[i].steals,
               ws[i].parks, (ws[i].tasks ? ws[i].longest_idle : span) / 1000.0);
        all_tasks += ws[i].tasks;
        all_steals += ws[i].steals;
        all_parks += ws[i].parks;
        all_busy += ws[i].busy;
    }
    printf("%-12s %8zu %11.3f %7.1f %7zu %7zu\n", "all", all_tasks, all_busy / 1000.0,
           span > 0 && nw ? 100.0 * all_busy / (span * (double)nw) : 0.0, all_steals, all_parks);

    if (top > 0) {
        struct task **order = malloc(nt * sizeof *order);
        if (order) {
            for (size_t i = 0; i < nt; i++)
                order[i] = &tasks[i];
            qsort(order, nt, sizeof *order, by_dur_desc);
            size_t n = nt < top ? nt : top;
            printf("\nlongest tasks\n%12s %12s %8s  %s\n", "duration us", "start ms", "worker",
                   "name");
            for (size_t i = 0; i < n; i++)
                printf("%12.3f %12.3f %8ld  %s\n", order[i]->dur,
                       (order[i]->ts - t_begin) / 1000.0, order[i]->tid, order[i]->name);
            free(order);
        }

        qsort(tasks, nt, sizeof *tasks, by_name);
        struct byname *bn = calloc(nt, sizeof *bn);
        size_t nb = 0;
        for (size_t i = 0; bn && i < nt; i++) {
            if (nb == 0 || strcmp(bn[nb - 1].name, tasks[i].name))
                bn[nb++].name = tasks[i].name;
            struct byname *b = &bn[nb - 1];
            b->count++;
            b->total += tasks[i].dur;
            if (tasks[i].dur > b->max)
                b->max = tasks[i].dur;
        }
        if (bn) {
            qsort(bn, nb, sizeof *bn, by_total_desc);
            size_t n = nb < top ? nb : top;
            printf("\ntasks by name (by total time)\n%8s %12s %10s %10s  %s\n", "count",
                   "total ms", "mean us", "max us", "name");
            for (size_t i = 0; i < n; i++)
                printf("%8zu %12.3f %10.3f %10.3f  %s\n", bn[i].count, bn[i].total / 1000.0,
                       bn[i].total / (double)bn[i].count, bn[i].max, bn[i].name);
            free(bn);
        }
    }
    free(tasks);
    free(ws);
    json_free(root);
    return 0;
}
