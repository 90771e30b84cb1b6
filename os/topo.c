/* topo.c - the machine through hwloc: NUMA nodes and cores in logical order, the worker
 * placement rule, and thread/memory binding, real on this machine and simulated (never
 * touching the process's affinity) on a synthetic or XML topology.
 */
#include "topo.h"

#include <errno.h>
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shoal.h"
#include "errors.h"

enum { SRC_MACHINE, SRC_SYNTHETIC, SRC_XML };

struct shoal__topo {
    hwloc_topology_t h;
    int src;
    bool real;                /* binding reaches the kernel */
    bool can_cpubind;         /* support flags, read once at load */
    bool can_membind;
    unsigned nnodes, ncores, npus;
    hwloc_obj_t *core;        /* [ncores] HWLOC_OBJ_CORE (or PU when there are no cores) */
    unsigned *core_node;      /* [ncores] logical NUMA node of each core */
    hwloc_bitmap_t *node_set; /* [nnodes] nodeset of each node; NULL entries: no NUMA objects */
    char *spec;               /* copy of the spec, NULL for this machine */
};

static const char EXAMPLE[] = "use a synthetic string like \"pack:2 numa:1 core:2 pu:1\" "
                              "or an XML file path";

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Fill the per-core and per-node tables from a loaded topology. */
static int index_topology(struct shoal__topo *t)
{
    hwloc_obj_type_t ctype = HWLOC_OBJ_CORE;
    int n = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_CORE);
    if (n <= 0) {             /* some VMs and synthetic specs have no cores: use PUs */
        ctype = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_PU);
    }
    int npu = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_PU);
    int nn = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_NUMANODE);
    if (n <= 0 || npu <= 0)
        return shoal__err(SHOAL_EINVAL, "topology %s%s%s has no cores or PUs: %s",
                          t->spec ? "\"" : "", t->spec ? t->spec : "of this machine",
                          t->spec ? "\"" : "", EXAMPLE);
    t->ncores = (unsigned)n;
    t->npus = (unsigned)npu;
    t->nnodes = nn > 0 ? (unsigned)nn : 1;
    if (t->nnodes > SHOAL__MAX_NODES)
        return shoal__err(SHOAL_EINVAL, "topology has %u NUMA nodes, shoal supports at most %d: "
                          "use a topology with fewer nodes", t->nnodes, SHOAL__MAX_NODES);

    t->core = calloc(t->ncores, sizeof *t->core);
    t->core_node = calloc(t->ncores, sizeof *t->core_node);
    t->node_set = calloc(t->nnodes, sizeof *t->node_set);
    if (!t->core || !t->core_node || !t->node_set)
        return shoal__err(SHOAL_ENOMEM, "out of memory indexing the topology");

    for (int i = 0; i < nn; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, (unsigned)i);
        t->node_set[i] = o ? o->nodeset : NULL;
    }
    for (unsigned c = 0; c < t->ncores; c++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->h, ctype, c);
        if (!o || !o->cpuset || hwloc_bitmap_iszero(o->cpuset))
            return shoal__err(SHOAL_EINVAL, "topology core %u has no PU: %s", c, EXAMPLE);
        t->core[c] = o;
        /* First node whose CPUs include this core's; memory-only nodes never match. */
        for (int i = 0; i < nn; i++) {
            hwloc_obj_t nd = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, (unsigned)i);
            if (nd && nd->cpuset && hwloc_bitmap_intersects(o->cpuset, nd->cpuset)) {
                t->core_node[c] = (unsigned)i;
                break;
            }
        }
    }
    return 0;
}

int shoal__topo_load(const char *spec, struct shoal__topo **out)
{
    if (!out)
        return shoal__err(SHOAL_EINVAL, "shoal__topo_load: out is NULL");
    *out = NULL;
    struct shoal__topo *t = calloc(1, sizeof *t);
    if (!t)
        return shoal__err(SHOAL_ENOMEM, "out of memory loading the topology");
    int rc = 0;
    if (spec && !(t->spec = strdup(spec))) {
        free(t);
        return shoal__err(SHOAL_ENOMEM, "out of memory loading the topology");
    }
    if (hwloc_topology_init(&t->h) != 0) {
        t->h = NULL;
        rc = shoal__err(SHOAL_ENOMEM, "hwloc_topology_init failed: out of memory");
        goto fail;
    }
    /* Caches and I/O devices play no part in placement; skipping them keeps loading fast. */
    hwloc_topology_set_cache_types_filter(t->h, HWLOC_TYPE_FILTER_KEEP_NONE);
    hwloc_topology_set_icache_types_filter(t->h, HWLOC_TYPE_FILTER_KEEP_NONE);
    hwloc_topology_set_io_types_filter(t->h, HWLOC_TYPE_FILTER_KEEP_NONE);

    if (!spec) {
        t->src = SRC_MACHINE;
        t->real = true;
        /* Explicit, so an HWLOC_XMLFILE/HWLOC_SYNTHETIC in the environment cannot silently
         * turn real binding into a no-op. */
        hwloc_topology_set_flags(t->h, HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM);
    } else if (is_file(spec)) {
        /* No IS_THISSYSTEM: the file may describe another machine, so binding is simulated. */
        t->src = SRC_XML;
        if (hwloc_topology_set_xml(t->h, spec) != 0) {
            rc = shoal__err(SHOAL_EINVAL, "bad topology XML file \"%s\": hwloc cannot read it; "
                            "write one with `lstopo file.xml` or %s", spec, EXAMPLE);
            goto fail;
        }
    } else {
        t->src = SRC_SYNTHETIC;
        if (hwloc_topology_set_synthetic(t->h, spec) != 0) {
            rc = shoal__err(SHOAL_EINVAL, "bad topology \"%s\": hwloc rejected it; %s",
                            spec, EXAMPLE);
            goto fail;
        }
    }
    if (hwloc_topology_load(t->h) != 0) {
        if (spec)
            rc = shoal__err(SHOAL_EINVAL, "bad topology \"%s\": hwloc could not load it (%s); %s",
                            spec, strerror(errno), EXAMPLE);
        else
            rc = shoal__err(SHOAL_EINVAL, "hwloc could not read this machine's topology (%s): "
                            "check /sys is mounted, or pass a synthetic topology",
                            strerror(errno));
        goto fail;
    }
    if (t->real) {
        const struct hwloc_topology_support *s = hwloc_topology_get_support(t->h);
        t->can_cpubind = s && s->cpubind && s->cpubind->set_thisthread_cpubind;
        t->can_membind = s && s->membind && s->membind->set_area_membind && s->membind->bind_membind;
    }
    if ((rc = index_topology(t)) != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    shoal__topo_free(t);
    return rc;
}

void shoal__topo_free(struct shoal__topo *t)
{
    if (!t)
        return;
    if (t->h)
        hwloc_topology_destroy(t->h);
    free(t->core);
    free(t->core_node);
    free(t->node_set);
    free(t->spec);
    free(t);
}

bool shoal__topo_is_real(const struct shoal__topo *t) { return t->real; }
unsigned shoal__topo_nodes(const struct shoal__topo *t) { return t->nnodes; }
unsigned shoal__topo_cores(const struct shoal__topo *t) { return t->ncores; }
unsigned shoal__topo_pus(const struct shoal__topo *t) { return t->npus; }
int shoal__topo_default_workers(const struct shoal__topo *t) { return (int)t->ncores; }
const char *shoal__topo_spec(const struct shoal__topo *t) { return t->spec; }

const char *shoal__topo_source(const struct shoal__topo *t)
{
    return t->src == SRC_MACHINE ? "this machine" : t->src == SRC_XML ? "XML" : "synthetic";
}

unsigned shoal__topo_core_node(const struct shoal__topo *t, unsigned core)
{
    return core < t->ncores ? t->core_node[core] : 0;
}

unsigned shoal__topo_core_pu(const struct shoal__topo *t, unsigned core)
{
    if (core >= t->ncores)
        return 0;
    int pu = hwloc_bitmap_first(t->core[core]->cpuset);
    return pu < 0 ? 0 : (unsigned)pu;
}

unsigned shoal__topo_worker_core(const struct shoal__topo *t, unsigned w)
{
    return w % t->ncores;
}

int shoal__topo_bind_thread(const struct shoal__topo *t, unsigned core)
{
    if (!t || core >= t->ncores)
        return shoal__err(SHOAL_EINVAL, "bind to core %u: the topology has %u cores; "
                          "use a core in 0..%u", core, t ? t->ncores : 0,
                          t && t->ncores ? t->ncores - 1 : 0);
    if (!t->real || !t->can_cpubind)
        return 1;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set)
        return shoal__err(SHOAL_ENOMEM, "out of memory binding a thread");
    /* One PU, not the whole core: a thread that hops between hyperthreads loses its L1. */
    hwloc_bitmap_only(set, (unsigned)hwloc_bitmap_first(t->core[core]->cpuset));
    int r = hwloc_set_cpubind(t->h, set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(set);
    /* A refusal (cgroup cpuset, seccomp, ENOSYS) leaves the thread runnable anywhere: report
     * "placed without binding" and let the caller say so, rather than fail the runtime. */
    return r == 0 ? 0 : 1;
}

int shoal__topo_bind_mem(const struct shoal__topo *t, void *addr, size_t len, unsigned node)
{
    if (!t || node >= t->nnodes)
        return shoal__err(SHOAL_EINVAL, "bind memory to node %u: the topology has %u NUMA "
                          "nodes; use a node in 0..%u", node, t ? t->nnodes : 0,
                          t && t->nnodes ? t->nnodes - 1 : 0);
    if (!addr || len == 0)
        return shoal__err(SHOAL_EINVAL, "bind memory: empty range (addr %p, len %zu); "
                          "pass a mapped range", addr, len);
    if (!t->real || !t->can_membind || !t->node_set[node])
        return 1;
    /* hwloc rounds the range out to whole pages. Without MIGRATE, only pages not yet touched
     * follow the policy: callers bind before they populate. */
    int r = hwloc_set_area_membind(t->h, addr, len, t->node_set[node], HWLOC_MEMBIND_BIND,
                                   HWLOC_MEMBIND_BYNODESET);
    return r == 0 ? 0 : 1;
}

/* Print a sorted list of core numbers as ranges: "0-3,6". */
static void print_ranges(FILE *f, const unsigned *v, unsigned n)
{
    for (unsigned i = 0; i < n;) {
        unsigned j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        fprintf(f, "%s%u", i ? "," : "", v[i]);
        if (j > i)
            fprintf(f, "-%u", v[j]);
        i = j + 1;
    }
}

void shoal__topo_print(const struct shoal__topo *t, FILE *f)
{
    if (t->spec)
        fprintf(f, "topology: %s \"%s\"\n", shoal__topo_source(t), t->spec);
    else
        fprintf(f, "topology: this machine\n");
    fprintf(f, "%u NUMA node%s, %u core%s, %u PU%s\n", t->nnodes, t->nnodes == 1 ? "" : "s",
            t->ncores, t->ncores == 1 ? "" : "s", t->npus, t->npus == 1 ? "" : "s");
    if (!t->real)
        fprintf(f, "binding: simulated (threads and memory are placed without binding)\n");
    else
        fprintf(f, "binding: real (threads %s, memory %s)\n",
                t->can_cpubind ? "pinned" : "NOT pinned: unsupported here",
                t->can_membind ? "bound to its node" : "NOT bound: unsupported here");
    unsigned *list = malloc(t->ncores * sizeof *list);
    for (unsigned nd = 0; nd < t->nnodes; nd++) {
        unsigned n = 0, pus = 0;
        for (unsigned c = 0; c < t->ncores; c++)
            if (t->core_node[c] == nd) {
                if (list)
                    list[n] = c;
                n++;
                pus += (unsigned)hwloc_bitmap_weight(t->core[c]->cpuset);
            }
        fprintf(f, "  node %u: %u core%s", nd, n, n == 1 ? "" : "s");
        if (n && list) {
            fprintf(f, " (");
            print_ranges(f, list, n);
            fprintf(f, ")");
        }
        fprintf(f, ", %u PU%s\n", pus, pus == 1 ? "" : "s");
    }
    free(list);
}
