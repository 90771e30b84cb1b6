/* topo.h - the machine as shoal sees it, through hwloc: NUMA nodes, cores, binding.
 * A synthetic topology ("pack:2 numa:1 core:2 pu:1") or an XML file can stand in for the
 * machine; binding is then simulated (hwloc returns success and does nothing), so placement
 * logic is testable on a one-node machine. Every function returns 0 or a SHOAL_E* code.
 */
#ifndef SHOAL_OS_TOPO_H
#define SHOAL_OS_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* NUMA nodes shoal uses at most (arrays per node are sized by it). */
#define SHOAL__MAX_NODES 16

struct shoal__topo;

/* Load the topology. spec NULL: this machine. A spec naming an existing file: XML. Anything
 * else: an hwloc synthetic description. SHOAL_EINVAL with a message naming the spec if hwloc
 * rejects it; SHOAL_ENOMEM. *out is freed with shoal__topo_free. */
int  shoal__topo_load(const char *spec, struct shoal__topo **out);
void shoal__topo_free(struct shoal__topo *t);
/* True when the topology is this machine (binding is real), false when simulated. */
bool shoal__topo_is_real(const struct shoal__topo *t);
/* NUMA node count (at least 1: a machine without NUMA objects counts as one node). */
unsigned shoal__topo_nodes(const struct shoal__topo *t);
/* Core count (at least 1). Cores are numbered 0..cores-1 in hwloc logical order. */
unsigned shoal__topo_cores(const struct shoal__topo *t);
/* The NUMA node (0..nodes-1, logical) of a core; 0 when the core is out of range. */
unsigned shoal__topo_core_node(const struct shoal__topo *t, unsigned core);
/* Pin the calling thread to a core (its first PU). Returns 0 when bound, 1 when the binding
 * was simulated or not supported (the thread runs unpinned: the caller says so once), or a
 * negative code. */
int  shoal__topo_bind_thread(const struct shoal__topo *t, unsigned core);
/* Bind [addr, addr+len) to a NUMA node. 0 bound, 1 placed without binding (simulated,
 * single node, or the kernel refused: the caller reports it), negative on bad arguments. */
int  shoal__topo_bind_mem(const struct shoal__topo *t, void *addr, size_t len, unsigned node);
/* Human-readable summary: nodes, cores per node, PUs; used by tools/shoal-topo. */
void shoal__topo_print(const struct shoal__topo *t, FILE *f);

/* ---- additions (placement rule shared by the scheduler and tools/shoal-topo) ---------- */
/* The one placement rule: worker w runs on core w % cores; its NUMA node is that core's
 * node and it allocates from arena <node>. The scheduler and the tool both call this. */
unsigned shoal__topo_worker_core(const struct shoal__topo *t, unsigned w);
/* Default worker count: one per core. */
int shoal__topo_default_workers(const struct shoal__topo *t);
/* PU (processing unit, hardware thread) count, at least the core count. */
unsigned shoal__topo_pus(const struct shoal__topo *t);
/* The OS index of the PU a core's worker is pinned to (its first PU): the Linux CPU number
 * on this machine, hwloc's numbering in a synthetic or XML topology. 0 when out of range. */
unsigned shoal__topo_core_pu(const struct shoal__topo *t, unsigned core);
/* Where the topology came from: "this machine", "synthetic" or "XML"; and the spec given
 * (NULL for this machine). The strings live as long as t. */
const char *shoal__topo_source(const struct shoal__topo *t);
const char *shoal__topo_spec(const struct shoal__topo *t);

#endif
