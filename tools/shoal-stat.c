/* shoal-stat - the `ray memory` of shoal: attach to a live published store (config.name, or
 * SHOAL_PUBLISH=name for any program) and show what it holds: capacity, bytes used, live
 * objects, the page kind, each NUMA node's usage, spilling, the attached processes with the
 * objects and bytes each allocated and how many are still pending, the largest objects, and
 * the counters the owner's workers publish (tasks run, stolen, parks: layout/mpseg.h).
 * It attaches as a tool (listed as such) and detaches when done; it holds no objects.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shoal.h"
#include "../layout/mpseg.h"
#include "../layout/table.h"
#include "../os/jsonesc.h"
#include "../mproc/mproc.h"
#include "../mproc/proto.h"
#include "../runtime/runtime.h"   /* shoal__attach_ex: a tool's attach */
#include "opts.h"

static const char USAGE[] =
    "usage: shoal-stat [OPTIONS] NAME\n"
    "  NAME            the store's name: its owner's shoal_config.name, or SHOAL_PUBLISH=NAME\n"
    "                  in the environment of any program that calls shoal_init\n"
    "  -w, --watch     refresh every second until interrupted (the screen is cleared only\n"
    "                  when standard output is a terminal)\n"
    "  -j, --json      one JSON object per refresh, for scripts\n"
    "  -t, --top N     list the N largest objects (default 10, 0 for none)\n"
    "  -h, --help      this text\n"
    "The socket is looked for in $SHOAL_RUN_DIR, $XDG_RUNTIME_DIR, else /tmp/shoal-UID.\n";

#define MAX_TOP 1000

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static const char *page_kind(int k)
{
    return k == SHOAL_PAGES_HUGETLB ? "hugetlb 2 MiB" : k == SHOAL_PAGES_THP ? "THP" : "normal 4 KiB";
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

static uint64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct snap {
    shoal_info info;
    shoal_stats st;               /* the spill counters are the store's (io/spill.c) */
    unsigned nnodes;
    uint64_t node_used[SHOAL__MAX_NODES], node_obj[SHOAL__MAX_NODES], node_cap[SHOAL__MAX_NODES];
    uint64_t node_carved[SHOAL__MAX_NODES], node_recycled[SHOAL__MAX_NODES], node_span;
    uint64_t nslots, slots_touched;
    unsigned nprocs, ngone;
    struct { unsigned idx; int pid; unsigned flags; uint64_t since_ns; } procs[SHOAL__MAX_PROCS];
    /* From a walk of the object table, by the process that allocated each object. */
    struct { uint64_t objects, bytes, pending, failed; } by_proc[SHOAL__MAX_PROCS];
    /* Lookup counters each process publishes in its line (owner: index 0). */
    struct look { uint64_t get_slow, bad_ids, get_waits; } look[SHOAL__MAX_PROCS], look_all;
    uint64_t pending, failed, spilled, walked_objects;
    unsigned ntop;
    struct top { uint64_t id, len; unsigned state, refs, proc; } top[MAX_TOP];
    int owner_pid;
    unsigned nworkers;
    struct { uint64_t run, stolen, parks; int node, cpu; } w[SHOAL__MAX_WSTATS];
};

static const char *state_name(unsigned st)
{
    switch (st) {
    case SHOAL__CREATED: return "created";
    case SHOAL__PENDING: return "pending";
    case SHOAL__READY: return "ready";
    case SHOAL__FAILED: return "failed";
    case SHOAL__SPILLED: return "spilled";
    case SHOAL__SPILLING: return "spilling";
    case SHOAL__RESTORING: return "restoring";
    default: return "?";
    }
}

/* Keep the `want` largest objects, largest first (insertion into a short sorted list). */
static void top_add(struct snap *s, unsigned want, const struct top *o)
{
    if (want == 0 || (s->ntop == want && o->len <= s->top[want - 1].len))
        return;
    unsigned i = s->ntop < want ? s->ntop++ : want - 1;
    while (i > 0 && s->top[i - 1].len < o->len) {
        s->top[i] = s->top[i - 1];
        i--;
    }
    s->top[i] = *o;
}

/* One pass over the slots ever used: every object's state, size and allocating process.
 * The owner and its clients change the table meanwhile: this is a snapshot of racing
 * reads, each value checked before it is used (a slot read mid-change counts as what its
 * word said). */
static void walk_table(struct snap *s, unsigned want_top)
{
    const shoal__rt_t *rt = shoal__rt;
    uint64_t end = s->slots_touched + 1;
    if (end > rt->nslots)
        end = rt->nslots;
    for (uint64_t i = 1; i < end; i++) {
        const shoal__slot *sl = &rt->slots[i];
        uint64_t w = atomic_load_explicit(&sl->word, memory_order_relaxed);
        unsigned st = shoal__w_state(w);
        if (st == SHOAL__FREE || st > SHOAL__RESTORING)
            continue;
        uint64_t len = sl->len;
        unsigned proc = SHOAL__AUX_PROC(sl->aux);
        if (len > s->info.store_bytes)
            len = 0;   /* torn or not yet written: not a size */
        s->walked_objects++;
        s->by_proc[proc].objects++;
        if (st == SHOAL__CREATED || st == SHOAL__PENDING) {
            s->pending++;
            s->by_proc[proc].pending++;
            continue;   /* no bytes yet (a created one's buffer is counted once sealed) */
        }
        if (st == SHOAL__FAILED) {
            s->failed++;
            s->by_proc[proc].failed++;
            continue;   /* its bytes are the message */
        }
        if (st == SHOAL__SPILLED)
            s->spilled++;
        s->by_proc[proc].bytes += len;
        struct top o = { shoal__id_make(i, shoal__w_gen(w)), len, st, shoal__w_refs(w), proc };
        top_add(s, want_top, &o);
    }
}

static int take(struct snap *s, unsigned want_top)
{
    memset(s, 0, sizeof *s);
    int rc = shoal_info_get(&s->info);
    if (rc)
        return rc;
    shoal_stats_get(&s->st, sizeof s->st);
    shoal__rt_t *rt = shoal__rt;
    const struct shoal__hdr *h = rt->hdr;
    const struct shoal__mp *x = shoal__mp_of(rt);
    s->nnodes = rt->nnodes;
    s->node_span = rt->node_span;
    int64_t used[SHOAL__MAX_NODES] = { 0 }, objs[SHOAL__MAX_NODES] = { 0 };
    shoal__shards_sum(rt, used, objs);   /* a published store counts per process */
    for (unsigned n = 0; n < rt->nnodes; n++) {
        s->node_used[n] = (uint64_t)used[n];
        s->node_obj[n] = (uint64_t)objs[n];
        s->node_cap[n] = h->node[n].cap;
        s->node_carved[n] = atomic_load_explicit(&h->node[n].carve, memory_order_relaxed);
        s->node_recycled[n] = atomic_load_explicit(&x->recycled[n], memory_order_relaxed)
                              << shoal__geo.shift;
    }
    s->nslots = rt->nslots;
    s->slots_touched = atomic_load_explicit(&h->bump, memory_order_relaxed) - 1;
    s->owner_pid = atomic_load_explicit(&x->procs[0].pid, memory_order_relaxed);
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++) {
        const struct shoal__proc *P = &x->procs[p];
        unsigned st = atomic_load_explicit(&P->state, memory_order_relaxed);
        if (st == SHOAL__PROC_DEAD)
            s->ngone++;
        if (st != SHOAL__PROC_LIVE)
            continue;
        s->procs[s->nprocs].idx = p;
        s->procs[s->nprocs].pid = atomic_load_explicit(&P->pid, memory_order_relaxed);
        s->procs[s->nprocs].flags = atomic_load_explicit(&P->flags, memory_order_relaxed);
        s->procs[s->nprocs].since_ns = atomic_load_explicit(&P->attached_ns, memory_order_relaxed);
        s->nprocs++;
    }
    /* Lookup counters: each process's drain thread publishes its own (mproc/remote_free.c). */
    for (unsigned p = 0; p < SHOAL__MAX_PROCS; p++) {
        const struct shoal__lookups *L = &x->lookups[p];
        if (atomic_load_explicit(&x->procs[p].state, memory_order_relaxed) != SHOAL__PROC_LIVE)
            continue;
        s->look[p].get_slow = atomic_load_explicit(&L->get_slow, memory_order_relaxed);
        s->look[p].bad_ids = atomic_load_explicit(&L->bad_ids, memory_order_relaxed);
        s->look[p].get_waits = atomic_load_explicit(&L->get_waits, memory_order_relaxed);
        s->look_all.get_slow += s->look[p].get_slow;
        s->look_all.bad_ids += s->look[p].bad_ids;
        s->look_all.get_waits += s->look[p].get_waits;
    }
    /* The owner's workers publish their counters in the segment (sched/worker.c). */
    unsigned nw = atomic_load_explicit(&x->nworkers, memory_order_acquire);
    s->nworkers = nw < SHOAL__MAX_WSTATS ? nw : SHOAL__MAX_WSTATS;
    const struct shoal__wstat *w = shoal__wstats(rt);
    for (unsigned i = 0; i < s->nworkers; i++) {
        s->w[i].run = atomic_load_explicit(&w[i].tasks_run, memory_order_relaxed);
        s->w[i].stolen = atomic_load_explicit(&w[i].tasks_stolen, memory_order_relaxed);
        s->w[i].parks = atomic_load_explicit(&w[i].parks, memory_order_relaxed);
        s->w[i].node = w[i].node;
        s->w[i].cpu = w[i].cpu;
    }
    walk_table(s, want_top);
    return 0;
}

/* The pid of process index p (0: the owner), or -1 when it is not attached now. */
static int pid_of(const struct snap *s, unsigned p)
{
    if (p == 0)
        return s->owner_pid;
    for (unsigned i = 0; i < s->nprocs; i++)
        if (s->procs[i].idx == p)
            return s->procs[i].pid;
    return -1;
}

static void print_text(const char *name, const struct snap *s)
{
    uint64_t now = now_realtime_ns();
    printf("store '%s' (owner pid %d)\n", name, s->owner_pid);
    printf("  capacity      %10.1f MiB, page kind %s\n", mib(s->info.store_bytes),
           page_kind(s->info.huge_pages));
    printf("  bytes used    %10.1f MiB (%.1f%%)\n", mib(s->info.bytes_used),
           s->info.store_bytes ? 100.0 * (double)s->info.bytes_used / (double)s->info.store_bytes : 0.0);
    printf("  largest free  %10.1f MiB (the largest object one put could place now)\n",
           mib(s->info.largest_free));
    printf("  live objects  %10llu  (table: %llu slots, %llu ever used)\n",
           (unsigned long long)s->info.objects_live, (unsigned long long)s->nslots,
           (unsigned long long)s->slots_touched);
    printf("  NUMA nodes    %u\n", s->nnodes);
    for (unsigned n = 0; n < s->nnodes; n++)
        printf("    node %-2u  used %9.1f / %.1f MiB, %8llu objects, carved %.1f of %.1f MiB, "
               "%.1f MiB recycled\n", n, mib(s->node_used[n]), mib(s->node_cap[n]),
               (unsigned long long)s->node_obj[n], mib(s->node_carved[n]), mib(s->node_span),
               mib(s->node_recycled[n]));
    const shoal_stats *t = &s->st;
    if (t->spilled_objects || t->spill_failures)
        printf("  spilled       %10llu objects (%.1f MiB) on disk now; since init %llu spilled "
               "(%.1f MiB, %.3f s), %llu restored (%.1f MiB, %.3f s), %llu failed writes\n",
               (unsigned long long)t->spilled_now_objects, mib(t->spilled_now_bytes),
               (unsigned long long)t->spilled_objects, mib(t->spilled_bytes),
               (double)t->spill_ns / 1e9, (unsigned long long)t->restored_objects,
               mib(t->restored_bytes), (double)t->restore_ns / 1e9,
               (unsigned long long)t->spill_failures);
    printf("  objects       %10llu pending (created or a task's result not made yet), "
           "%llu failed, %llu spilled\n", (unsigned long long)s->pending,
           (unsigned long long)s->failed, (unsigned long long)s->spilled);
    printf("  lookups       %10llu slow gets, %llu stale or invalid refs, %llu gets that waited "
           "(all processes; each publishes its own about once a second while a tool watches)\n",
           (unsigned long long)s->look_all.get_slow, (unsigned long long)s->look_all.bad_ids,
           (unsigned long long)s->look_all.get_waits);
    printf("  processes     by who allocated: objects, bytes, pending\n");
    printf("    #0   pid %-8d owner     %10llu objects %10.1f MiB %8llu pending\n", s->owner_pid,
           (unsigned long long)s->by_proc[0].objects, mib(s->by_proc[0].bytes),
           (unsigned long long)s->by_proc[0].pending);
    for (unsigned i = 0; i < s->nprocs; i++) {
        unsigned p = s->procs[i].idx;
        double age = s->procs[i].since_ns && now > s->procs[i].since_ns
                         ? (double)(now - s->procs[i].since_ns) / 1e9 : 0.0;
        printf("    #%-3u pid %-8d attached  %10llu objects %10.1f MiB %8llu pending, "
               "%.1f s ago%s%s\n", p, s->procs[i].pid, (unsigned long long)s->by_proc[p].objects,
               mib(s->by_proc[p].bytes), (unsigned long long)s->by_proc[p].pending, age,
               s->procs[i].flags & SHOAL__PROC_TOOL ? "  (tool)" : "",
               s->procs[i].pid == (int)getpid() ? "  (this shoal-stat)" : "");
    }
    for (unsigned p = 1; p < SHOAL__MAX_PROCS; p++)
        if (s->by_proc[p].objects && pid_of(s, p) < 0)
            printf("    #%-3u (gone)                 %10llu objects %10.1f MiB %8llu pending\n",
                   p, (unsigned long long)s->by_proc[p].objects, mib(s->by_proc[p].bytes),
                   (unsigned long long)s->by_proc[p].pending);
    if (s->ngone)
        printf("  gone          %u process%s whose objects are still referenced\n", s->ngone,
               s->ngone == 1 ? "" : "es");
    if (s->nworkers) {
        printf("  workers       %u\n", s->nworkers);
        for (unsigned i = 0; i < s->nworkers; i++)
            printf("    worker %-3u node %-2d cpu %-3d tasks run %10llu, stolen %8llu, parks %llu\n",
                   i, s->w[i].node, s->w[i].cpu, (unsigned long long)s->w[i].run,
                   (unsigned long long)s->w[i].stolen, (unsigned long long)s->w[i].parks);
    } else {
        printf("  workers       (the owner publishes no per-worker counters)\n");
    }
    if (s->ntop) {
        printf("  largest       %u object%s\n", s->ntop, s->ntop == 1 ? "" : "s");
        for (unsigned i = 0; i < s->ntop; i++)
            printf("    0x%016llx %12llu bytes  %-9s refs %-4u process #%u (pid %d)\n",
                   (unsigned long long)s->top[i].id, (unsigned long long)s->top[i].len,
                   state_name(s->top[i].state), s->top[i].refs, s->top[i].proc,
                   pid_of(s, s->top[i].proc));
    }
}

static void json_look(const struct look *l)
{
    printf("\"lookups\":{\"get_slow\":%llu,\"bad_ids\":%llu,\"get_waits\":%llu}}",
           (unsigned long long)l->get_slow, (unsigned long long)l->bad_ids,
           (unsigned long long)l->get_waits);
}

static void print_json(const char *name, const struct snap *s)
{
    fputs("{\"name\":", stdout);
    shoal__json_str(stdout, name);
    printf(",\"owner_pid\":%d,\"store_bytes\":%llu,\"bytes_used\":%llu,"
           "\"largest_free\":%llu,\"objects_live\":%llu,\"page_kind\":\"%s\",\"slots\":%llu,\"slots_used_ever\":%llu,"
           "\"nodes\":[", s->owner_pid, (unsigned long long)s->info.store_bytes,
           (unsigned long long)s->info.bytes_used, (unsigned long long)s->info.largest_free,
           (unsigned long long)s->info.objects_live, s->info.huge_pages == SHOAL_PAGES_HUGETLB ? "hugetlb"
           : s->info.huge_pages == SHOAL_PAGES_THP ? "thp" : "normal",
           (unsigned long long)s->nslots, (unsigned long long)s->slots_touched);
    for (unsigned n = 0; n < s->nnodes; n++)
        printf("%s{\"node\":%u,\"bytes_used\":%llu,\"capacity\":%llu,\"objects\":%llu,"
               "\"carved\":%llu,\"recycled\":%llu}", n ? "," : "", n,
               (unsigned long long)s->node_used[n], (unsigned long long)s->node_cap[n],
               (unsigned long long)s->node_obj[n], (unsigned long long)s->node_carved[n],
               (unsigned long long)s->node_recycled[n]);
    printf("]");
    const shoal_stats *t = &s->st;
    printf(",\"spill\":{\"now_objects\":%llu,\"now_bytes\":%llu,\"spilled_objects\":%llu,"
           "\"spilled_bytes\":%llu,\"spill_ns\":%llu,\"restored_objects\":%llu,"
           "\"restored_bytes\":%llu,\"restore_ns\":%llu,\"failures\":%llu}",
           (unsigned long long)t->spilled_now_objects, (unsigned long long)t->spilled_now_bytes,
           (unsigned long long)t->spilled_objects, (unsigned long long)t->spilled_bytes,
           (unsigned long long)t->spill_ns, (unsigned long long)t->restored_objects,
           (unsigned long long)t->restored_bytes, (unsigned long long)t->restore_ns,
           (unsigned long long)t->spill_failures);
    printf(",\"objects\":{\"pending\":%llu,\"failed\":%llu,\"spilled\":%llu}",
           (unsigned long long)s->pending, (unsigned long long)s->failed,
           (unsigned long long)s->spilled);
    printf(",\"lookups\":{\"get_slow\":%llu,\"bad_ids\":%llu,\"get_waits\":%llu}",
           (unsigned long long)s->look_all.get_slow, (unsigned long long)s->look_all.bad_ids,
           (unsigned long long)s->look_all.get_waits);
    printf(",\"processes\":[");
    printf("{\"index\":0,\"pid\":%d,\"owner\":true,\"tool\":false,\"objects\":%llu,"
           "\"bytes\":%llu,\"pending\":%llu,\"failed\":%llu,", s->owner_pid,
           (unsigned long long)s->by_proc[0].objects, (unsigned long long)s->by_proc[0].bytes,
           (unsigned long long)s->by_proc[0].pending, (unsigned long long)s->by_proc[0].failed);
    json_look(&s->look[0]);
    for (unsigned i = 0; i < s->nprocs; i++) {
        unsigned p = s->procs[i].idx;
        printf(",{\"index\":%u,\"pid\":%d,\"owner\":false,\"tool\":%s,\"attached_ns\":%llu,"
               "\"objects\":%llu,\"bytes\":%llu,\"pending\":%llu,\"failed\":%llu,", p,
               s->procs[i].pid, s->procs[i].flags & SHOAL__PROC_TOOL ? "true" : "false",
               (unsigned long long)s->procs[i].since_ns,
               (unsigned long long)s->by_proc[p].objects, (unsigned long long)s->by_proc[p].bytes,
               (unsigned long long)s->by_proc[p].pending, (unsigned long long)s->by_proc[p].failed);
        json_look(&s->look[p]);
    }
    printf("],\"gone\":%u,\"workers\":[", s->ngone);
    for (unsigned i = 0; i < s->nworkers; i++)
        printf("%s{\"worker\":%u,\"node\":%d,\"cpu\":%d,\"tasks_run\":%llu,\"tasks_stolen\":%llu,"
               "\"parks\":%llu}", i ? "," : "", i, s->w[i].node, s->w[i].cpu,
               (unsigned long long)s->w[i].run, (unsigned long long)s->w[i].stolen,
               (unsigned long long)s->w[i].parks);
    printf("],\"largest\":[");
    for (unsigned i = 0; i < s->ntop; i++)
        printf("%s{\"id\":\"0x%llx\",\"bytes\":%llu,\"state\":\"%s\",\"refs\":%u,"
               "\"process\":%u,\"pid\":%d}", i ? "," : "", (unsigned long long)s->top[i].id,
               (unsigned long long)s->top[i].len, state_name(s->top[i].state), s->top[i].refs,
               s->top[i].proc, pid_of(s, s->top[i].proc));
    printf("]}\n");
}

static int usage_error(const char *why)
{
    if (why)
        fprintf(stderr, "shoal-stat: %s\n", why);
    fputs(USAGE, stderr);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "watch", no_argument, NULL, 'w' },
        { "json", no_argument, NULL, 'j' },
        { "top", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int watch = 0, json = 0, c;
    unsigned want_top = 10;
    opterr = 0;   /* our own messages, then the usage */
    while ((c = getopt_long(argc, argv, ":wjt:h", opts, NULL)) != -1) {
        char msg[256];
        switch (c) {
        case 'w': watch = 1; break;
        case 'j': json = 1; break;
        case 't': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || optarg[0] == '-' || v > MAX_TOP) {
                snprintf(msg, sizeof msg, "--top needs a count from 0 to %d, not '%s'", MAX_TOP,
                         optarg);
                return usage_error(msg);
            }
            want_top = (unsigned)v;
            break;
        }
        case 'h': fputs(USAGE, stdout); return 0;
        default:
            return usage_error(tool_option_error(c, argv, msg, sizeof msg));
        }
    }
    if (optind >= argc)
        return usage_error("give the store's name");
    if (optind + 1 < argc) {
        char msg[256];
        snprintf(msg, sizeof msg, "unexpected argument '%s' (one store name only)",
                 argv[optind + 1]);
        return usage_error(msg);
    }
    const char *name = argv[optind];
    /* A refresh clears the screen only on a terminal: piped or redirected, each refresh
     * follows the last with no escape sequence. */
    const bool clear = watch && !json && isatty(STDOUT_FILENO);
    if (!getenv("SHOAL_QUIET"))
        setenv("SHOAL_QUIET", "1", 1);   /* our own notices would garble the output */
    int rc = shoal__attach_ex(name, SHOAL__HELLO_TOOL);
    if (rc) {
        fprintf(stderr, "shoal-stat: %s\n", shoal_last_error());
        return 1;
    }
    /* The owner's drainer publishes its lookup counters when it wakes: wake it, and give
     * it a moment, so that the first snapshot is fresh (it then wakes once a second while
     * this tool is attached). */
    shoal__wake_proc(shoal__rt, 0);
    usleep(50000);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    static struct snap s;
    int status = 0;
    do {
        if ((rc = take(&s, want_top)) != 0) {
            fprintf(stderr, "shoal-stat: the store is gone (%s)\n", shoal_strerror(rc));
            status = 1;
            break;
        }
        if (json) {
            print_json(name, &s);
        } else {
            if (clear)
                fputs("\033[H\033[2J", stdout);
            else if (watch)
                fputs("\n", stdout);
            print_text(name, &s);
        }
        fflush(stdout);
        for (int k = 0; watch && k < 10 && !stop; k++)
            usleep(100000);
    } while (watch && !stop);
    shoal_shutdown();
    return status;
}
