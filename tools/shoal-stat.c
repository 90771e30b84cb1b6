/* shoal-stat - attach to a live published store and show what it holds: capacity, bytes
 * used, live objects, the page kind, each NUMA node's usage, the attached processes, and
 * per-worker counters the owner's workers publish (layout/mpseg.h, wstats).
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
#include "../mproc/proto.h"
#include "../runtime/runtime.h"   /* shoal__attach_ex: a tool's attach */

static const char USAGE[] =
    "usage: shoal-stat NAME [--watch] [--json]\n"
    "  NAME     the store's name (shoal_config.name of its owner)\n"
    "  --watch  refresh every second until interrupted\n"
    "  --json   one JSON object per refresh, for scripts\n"
    "The socket is looked for in $SHOAL_RUN_DIR, $XDG_RUNTIME_DIR, else /tmp/shoal-UID.\n";

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
    int owner_pid;
    unsigned nworkers;
    struct { uint64_t run, stolen, parks; int node, cpu; } w[SHOAL__MAX_WSTATS];
};

static int take(struct snap *s)
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
    return 0;
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
    printf("  attached      %u process%s\n", s->nprocs, s->nprocs == 1 ? "" : "es");
    for (unsigned i = 0; i < s->nprocs; i++) {
        double age = s->procs[i].since_ns && now > s->procs[i].since_ns
                         ? (double)(now - s->procs[i].since_ns) / 1e9 : 0.0;
        printf("    #%-3u pid %-8d attached %8.1f s ago%s%s\n", s->procs[i].idx, s->procs[i].pid,
               age, s->procs[i].flags & SHOAL__PROC_TOOL ? "  (tool)" : "",
               s->procs[i].pid == (int)getpid() ? "  (this shoal-stat)" : "");
    }
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
}

static void print_json(const char *name, const struct snap *s)
{
    printf("{\"name\":\"%s\",\"owner_pid\":%d,\"store_bytes\":%llu,\"bytes_used\":%llu,"
           "\"largest_free\":%llu,\"objects_live\":%llu,\"page_kind\":\"%s\",\"slots\":%llu,\"slots_used_ever\":%llu,"
           "\"nodes\":[", name, s->owner_pid, (unsigned long long)s->info.store_bytes,
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
    printf(",\"processes\":[");
    for (unsigned i = 0; i < s->nprocs; i++)
        printf("%s{\"index\":%u,\"pid\":%d,\"tool\":%s,\"attached_ns\":%llu}", i ? "," : "",
               s->procs[i].idx, s->procs[i].pid,
               s->procs[i].flags & SHOAL__PROC_TOOL ? "true" : "false",
               (unsigned long long)s->procs[i].since_ns);
    printf("],\"gone\":%u,\"workers\":[", s->ngone);
    for (unsigned i = 0; i < s->nworkers; i++)
        printf("%s{\"worker\":%u,\"node\":%d,\"cpu\":%d,\"tasks_run\":%llu,\"tasks_stolen\":%llu,"
               "\"parks\":%llu}", i ? "," : "", i, s->w[i].node, s->w[i].cpu,
               (unsigned long long)s->w[i].run, (unsigned long long)s->w[i].stolen,
               (unsigned long long)s->w[i].parks);
    printf("]}\n");
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    int watch = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0)
            watch = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "shoal-stat: unexpected argument '%s'\n%s", argv[i], USAGE);
            return 2;
        } else
            name = argv[i];
    }
    if (!name) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (!getenv("SHOAL_QUIET"))
        setenv("SHOAL_QUIET", "1", 1);   /* our own notices would garble the output */
    int rc = shoal__attach_ex(name, SHOAL__HELLO_TOOL);
    if (rc) {
        fprintf(stderr, "shoal-stat: %s\n", shoal_last_error());
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    static struct snap s;
    int status = 0;
    do {
        if ((rc = take(&s)) != 0) {
            fprintf(stderr, "shoal-stat: the store is gone (%s)\n", shoal_strerror(rc));
            status = 1;
            break;
        }
        if (json) {
            print_json(name, &s);
        } else {
            if (watch)
                fputs("\033[H\033[2J", stdout);
            print_text(name, &s);
        }
        fflush(stdout);
        for (int k = 0; watch && k < 10 && !stop; k++)
            usleep(100000);
    } while (watch && !stop);
    shoal_shutdown();
    return status;
}
