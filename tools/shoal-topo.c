/* shoal-topo - show the topology as shoal sees it (this machine, a synthetic description or
 * an XML file) and where each worker would be pinned and which arena it allocates from,
 * using the scheduler's own placement rule (shoal__topo_worker_core).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal.h"
#include "../os/jsonesc.h"
#include "../os/topo.h"
#include "opts.h"

static const char USAGE[] =
    "usage: shoal-topo [--synthetic SPEC | --xml FILE] [--workers N] [--json]\n"
    "  -s, --synthetic SPEC  an hwloc synthetic topology, e.g. \"pack:2 numa:1 core:2 pu:1\"\n"
    "  -x, --xml FILE        an hwloc XML topology (write one with `lstopo file.xml`)\n"
    "  -w, --workers N       workers to place (default: one per core)\n"
    "  -j, --json            machine-readable output\n"
    "  -h, --help            this text\n"
    "Without --synthetic or --xml, shows this machine.\n";

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "shoal-topo: %s\n", why);
    fputs(USAGE, stderr);
    return 2;
}

static void print_json(const struct shoal__topo *t, unsigned workers, FILE *f)
{
    unsigned nn = shoal__topo_nodes(t), nc = shoal__topo_cores(t);
    fprintf(f, "{\n  \"source\": ");
    shoal__json_str(f, shoal__topo_source(t));
    fprintf(f, ",\n  \"spec\": ");
    if (shoal__topo_spec(t))
        shoal__json_str(f, shoal__topo_spec(t));
    else
        fprintf(f, "null");
    fprintf(f, ",\n  \"binding\": \"%s\",\n", shoal__topo_is_real(t) ? "real" : "simulated");
    fprintf(f, "  \"numa_nodes\": %u,\n  \"cores\": %u,\n  \"pus\": %u,\n", nn, nc,
            shoal__topo_pus(t));
    fprintf(f, "  \"nodes\": [");
    for (unsigned nd = 0; nd < nn; nd++) {
        fprintf(f, "%s\n    {\"node\": %u, \"cores\": [", nd ? "," : "", nd);
        unsigned k = 0;
        for (unsigned c = 0; c < nc; c++)
            if (shoal__topo_core_node(t, c) == nd)
                fprintf(f, "%s%u", k++ ? ", " : "", c);
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ],\n  \"workers\": [");
    for (unsigned w = 0; w < workers; w++) {
        unsigned c = shoal__topo_worker_core(t, w), nd = shoal__topo_core_node(t, c);
        fprintf(f, "%s\n    {\"worker\": %u, \"core\": %u, \"pu\": %u, \"node\": %u, "
                "\"arena\": %u}", w ? "," : "", w, c, shoal__topo_core_pu(t, c), nd, nd);
    }
    fprintf(f, "\n  ]\n}\n");
}

static void print_text(const struct shoal__topo *t, unsigned workers, bool dflt, FILE *f)
{
    shoal__topo_print(t, f);
    unsigned nc = shoal__topo_cores(t);
    fprintf(f, "%u worker%s (%s); worker w runs on core w %% %u and allocates from its "
            "node's arena:\n", workers, workers == 1 ? "" : "s",
            dflt ? "default: one per core" : "--workers", nc);
    for (unsigned w = 0; w < workers; w++) {
        unsigned c = shoal__topo_worker_core(t, w), nd = shoal__topo_core_node(t, c);
        fprintf(f, "  worker %u: core %u (%s %u), node %u, arena %u%s\n", w, c,
                shoal__topo_is_real(t) ? "cpu" : "PU", shoal__topo_core_pu(t, c), nd, nd,
                w >= nc ? " (shares its core)" : "");
    }
}

int main(int argc, char **argv)
{
    const char *spec = NULL, *kind = NULL;
    long workers = -1;
    bool json = false;
    static const struct option opts[] = {
        { "synthetic", required_argument, NULL, 's' },
        { "xml", required_argument, NULL, 'x' },
        { "workers", required_argument, NULL, 'w' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    opterr = 0;   /* our own messages, then the usage */
    while ((c = getopt_long(argc, argv, ":s:x:w:jh", opts, NULL)) != -1) {
        char msg[256];
        switch (c) {
        case 's':
        case 'x':
            if (kind)
                return usage("give at most one of --synthetic and --xml");
            kind = c == 's' ? "--synthetic" : "--xml";
            spec = optarg;
            if (!*spec)
                return usage("empty topology");
            break;
        case 'w': {
            char *end;
            errno = 0;
            workers = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || workers < 1 || workers > 65536)
                return usage("--workers needs a number from 1 to 65536");
            break;
        }
        case 'j': json = true; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default:
            return usage(tool_option_error(c, argv, msg, sizeof msg));
        }
    }
    if (optind < argc) {
        char msg[256];
        snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
        return usage(msg);
    }
    if (kind && !strcmp(kind, "--xml") && access(spec, R_OK) != 0) {
        fprintf(stderr, "shoal-topo: cannot read XML file \"%s\": %s\n", spec, strerror(errno));
        return 1;
    }
    if (kind && !strcmp(kind, "--synthetic") && access(spec, F_OK) == 0) {
        /* shoal__topo_load reads a spec naming a file as XML; say so rather than surprise. */
        fprintf(stderr, "shoal-topo: \"%s\" is a file; use --xml for XML files\n", spec);
        return 2;
    }
    struct shoal__topo *t;
    int rc = shoal__topo_load(spec, &t);
    if (rc != 0) {
        fprintf(stderr, "shoal-topo: %s: %s\n", shoal_strerror(rc), shoal_last_error());
        return 1;
    }
    bool dflt = workers < 0;
    unsigned n = dflt ? (unsigned)shoal__topo_default_workers(t) : (unsigned)workers;
    if (json)
        print_json(t, n, stdout);
    else
        print_text(t, n, dflt, stdout);
    shoal__topo_free(t);
    return fflush(stdout) == 0 ? 0 : 1;
}
