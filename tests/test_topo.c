/* test_topo.c - the hwloc topology layer (os/topo.c) and tools/shoal-topo: this machine,
 * synthetic and XML topologies, node/core numbering, the worker placement rule, real and
 * simulated binding, and every error path.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hwloc.h>
#include <hwloc/export.h>

#include "lib/harness.h"
#include "../os/topo.h"

#define TWO_NODES "pack:2 numa:1 core:2 pu:1"
#define FOUR_NODES "pack:4 numa:1 core:2 pu:1"

static struct shoal__topo *load_ok(const char *spec)
{
    struct shoal__topo *t = NULL;
    int rc = shoal__topo_load(spec, &t);
    if (rc != 0)
        fprintf(stderr, "load(%s) = %d: %s\n", spec ? spec : "NULL", rc, shoal_last_error());
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static bool same_affinity(const cpu_set_t *a)
{
    cpu_set_t now;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof now, &now), 0);
    return CPU_EQUAL(&now, a);
}

static void test_this_machine(void)
{
    struct shoal__topo *t = load_ok(NULL);
    CU_ASSERT(shoal__topo_is_real(t));
    CU_ASSERT(shoal__topo_nodes(t) >= 1);
    CU_ASSERT(shoal__topo_cores(t) >= 1);
    CU_ASSERT(shoal__topo_pus(t) >= shoal__topo_cores(t));
    CU_ASSERT_EQUAL(shoal__topo_default_workers(t), (int)shoal__topo_cores(t));
    CU_ASSERT_PTR_NULL(shoal__topo_spec(t));
    CU_ASSERT_STRING_EQUAL(shoal__topo_source(t), "this machine");
    /* Every core's first PU is a CPU this process may run on. */
    cpu_set_t mine;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof mine, &mine), 0);
    for (unsigned c = 0; c < shoal__topo_cores(t); c++) {
        CU_ASSERT(shoal__topo_core_node(t, c) < shoal__topo_nodes(t));
        CU_ASSERT(CPU_ISSET(shoal__topo_core_pu(t, c), &mine));
    }
    shoal__topo_free(t);
}

static void test_two_nodes(void)
{
    struct shoal__topo *t = load_ok(TWO_NODES);
    CU_ASSERT_FALSE(shoal__topo_is_real(t));
    CU_ASSERT_EQUAL(shoal__topo_nodes(t), 2);
    CU_ASSERT_EQUAL(shoal__topo_cores(t), 4);
    CU_ASSERT_EQUAL(shoal__topo_pus(t), 4);
    CU_ASSERT_STRING_EQUAL(shoal__topo_source(t), "synthetic");
    CU_ASSERT_STRING_EQUAL(shoal__topo_spec(t), TWO_NODES);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 0), 0);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 1), 0);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 2), 1);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 3), 1);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 99), 0);   /* out of range: 0 by contract */
    shoal__topo_free(t);
}

static void test_four_nodes(void)
{
    struct shoal__topo *t = load_ok(FOUR_NODES);
    CU_ASSERT_EQUAL(shoal__topo_nodes(t), 4);
    CU_ASSERT_EQUAL(shoal__topo_cores(t), 8);
    for (unsigned c = 0; c < 8; c++)
        CU_ASSERT_EQUAL(shoal__topo_core_node(t, c), c / 2);
    shoal__topo_free(t);
}

static void test_smt_and_no_cores(void)
{
    /* NUMA nodes at the top, two hyperthreads per core: cores, not PUs, are counted. */
    struct shoal__topo *t = load_ok("numa:2 core:2 pu:2");
    CU_ASSERT_EQUAL(shoal__topo_nodes(t), 2);
    CU_ASSERT_EQUAL(shoal__topo_cores(t), 4);
    CU_ASSERT_EQUAL(shoal__topo_pus(t), 8);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 1), 0);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 2), 1);
    CU_ASSERT_EQUAL(shoal__topo_core_pu(t, 1), 2);      /* each core's first PU */
    shoal__topo_free(t);
    /* No Core objects and no NUMA level: PUs stand in for cores, and it is one node. */
    t = load_ok("pack:2 pu:3");
    CU_ASSERT_EQUAL(shoal__topo_nodes(t), 1);
    CU_ASSERT_EQUAL(shoal__topo_cores(t), 6);
    for (unsigned c = 0; c < 6; c++)
        CU_ASSERT_EQUAL(shoal__topo_core_node(t, c), 0);
    shoal__topo_free(t);
}

static void test_simulated_binding(void)
{
    struct shoal__topo *t = load_ok(TWO_NODES);
    cpu_set_t before;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof before, &before), 0);
    for (unsigned c = 0; c < 4; c++)
        ASSERT_RC(shoal__topo_bind_thread(t, c), 1);
    CU_ASSERT(same_affinity(&before));      /* simulated: the real affinity is untouched */
    size_t len = 2u << 20;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_NOT_EQUAL_FATAL(p, MAP_FAILED);
    ASSERT_RC(shoal__topo_bind_mem(t, p, len, 0), 1);
    ASSERT_RC(shoal__topo_bind_mem(t, p, len, 1), 1);
    munmap(p, len);
    shoal__topo_free(t);
}

static void test_bind_errors(void)
{
    struct shoal__topo *t = load_ok(TWO_NODES);
    char buf[64];
    ASSERT_RC(shoal__topo_bind_thread(t, 4), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "0..3"));
    ASSERT_RC(shoal__topo_bind_mem(t, buf, sizeof buf, 2), SHOAL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "0..1"));
    ASSERT_RC(shoal__topo_bind_mem(t, NULL, 4096, 0), SHOAL_EINVAL);
    ASSERT_RC(shoal__topo_bind_mem(t, buf, 0, 0), SHOAL_EINVAL);
    shoal__topo_free(t);
    /* The same checks on the real machine, before any syscall is made. */
    t = load_ok(NULL);
    ASSERT_RC(shoal__topo_bind_thread(t, shoal__topo_cores(t)), SHOAL_EINVAL);
    ASSERT_RC(shoal__topo_bind_mem(t, buf, sizeof buf, shoal__topo_nodes(t)), SHOAL_EINVAL);
    shoal__topo_free(t);
}

static void test_bad_spec(void)
{
    static const char *bad[] = { "xyz", "", "pack:0 core:2", "pack:2 numa:1 core:2 pu:1 bogus:3",
                                 NULL };
    for (const char **s = bad; *s; s++) {
        struct shoal__topo *t = (struct shoal__topo *)&t;   /* must be reset to NULL */
        ASSERT_RC(shoal__topo_load(*s, &t), SHOAL_EINVAL);
        CU_ASSERT_PTR_NULL(t);
        const char *msg = shoal_last_error();
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "bad topology"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "pack:2 numa:1 core:2 pu:1"));   /* what to do */
        char quoted[128];
        snprintf(quoted, sizeof quoted, "\"%s\"", *s);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, quoted));                        /* which spec */
    }
    ASSERT_RC(shoal__topo_load(TWO_NODES, NULL), SHOAL_EINVAL);
}

static void test_xml(void)
{
    /* Export a synthetic topology with hwloc itself, then load the file as shoal would. */
    char path[] = "/tmp/shoal-topo-XXXXXX.xml";
    int fd = mkstemps(path, 4);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    hwloc_topology_t h;
    CU_ASSERT_EQUAL_FATAL(hwloc_topology_init(&h), 0);
    int ok = hwloc_topology_set_synthetic(h, FOUR_NODES) == 0 && hwloc_topology_load(h) == 0
             && hwloc_topology_export_xml(h, path, 0) == 0;
    hwloc_topology_destroy(h);
    if (!ok)
        unlink(path);
    CU_ASSERT_FATAL(ok);

    struct shoal__topo *t = NULL;
    int rc = shoal__topo_load(path, &t);
    unlink(path);
    ASSERT_OK(rc);
    CU_ASSERT_STRING_EQUAL(shoal__topo_source(t), "XML");
    CU_ASSERT_FALSE(shoal__topo_is_real(t));
    CU_ASSERT_EQUAL(shoal__topo_nodes(t), 4);
    CU_ASSERT_EQUAL(shoal__topo_cores(t), 8);
    CU_ASSERT_EQUAL(shoal__topo_core_node(t, 5), 2);
    ASSERT_RC(shoal__topo_bind_thread(t, 0), 1);
    shoal__topo_free(t);
}

static void test_bad_xml(void)
{
    char path[] = "/tmp/shoal-topo-XXXXXX.xml";
    int fd = mkstemps(path, 4);
    CU_ASSERT_FATAL(fd >= 0);
    static const char junk[] = "<topology>this is not hwloc</nonsense>\n";
    ssize_t w = write(fd, junk, sizeof junk - 1);
    close(fd);
    CU_ASSERT_EQUAL(w, (ssize_t)(sizeof junk - 1));
    struct shoal__topo *t = NULL;
    int rc = shoal__topo_load(path, &t);
    unlink(path);
    ASSERT_RC(rc, SHOAL_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "XML"));
}

static void test_placement(void)
{
    struct shoal__topo *t = load_ok(TWO_NODES);
    CU_ASSERT_EQUAL(shoal__topo_default_workers(t), 4);
    /* More workers than cores: round-robin, so worker 5 shares core 1 on node 0. */
    static const unsigned want_core[10] = { 0, 1, 2, 3, 0, 1, 2, 3, 0, 1 };
    static const unsigned want_node[10] = { 0, 0, 1, 1, 0, 0, 1, 1, 0, 0 };
    for (unsigned w = 0; w < 10; w++) {
        unsigned c = shoal__topo_worker_core(t, w);
        CU_ASSERT_EQUAL(c, want_core[w]);
        CU_ASSERT_EQUAL(shoal__topo_core_node(t, c), want_node[w]);
    }
    shoal__topo_free(t);
}

static void test_real_binding(void)
{
    cpu_set_t saved;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof saved, &saved), 0);
    struct shoal__topo *t = load_ok(NULL);
    int rc = shoal__topo_bind_thread(t, 0);
    cpu_set_t now;
    int got = sched_getaffinity(0, sizeof now, &now);
    /* Restore before asserting: a failed assertion must not leave this thread pinned. */
    int restored = sched_setaffinity(0, sizeof saved, &saved);
    CU_ASSERT_EQUAL(restored, 0);
    ASSERT_OK(rc);
    CU_ASSERT_EQUAL_FATAL(got, 0);
    CU_ASSERT_EQUAL(CPU_COUNT(&now), 1);
    CU_ASSERT(CPU_ISSET(shoal__topo_core_pu(t, 0), &now));
    CU_ASSERT(same_affinity(&saved));

    /* Memory: bound (0) or placed without binding (1) on a one-node machine; never an error,
     * and the memory stays usable either way. */
    size_t len = 1u << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_NOT_EQUAL_FATAL(p, MAP_FAILED);
    rc = shoal__topo_bind_mem(t, p, len, 0);
    CU_ASSERT(rc == 0 || rc == 1);
    memset(p, 0x5a, len);
    CU_ASSERT_EQUAL(p[len - 1], 0x5a);
    munmap(p, len);
    shoal__topo_free(t);
}

/* ---- tools/shoal-topo ---------------------------------------------------------------- */

/* <builddir>/tests/test_topo -> <builddir>/tools/shoal-topo, so ASan/TSan builds test their
 * own tool. false if it is not built. */
static bool tool_path(char *out, size_t n)
{
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0)
        return false;
    self[k] = 0;
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(self, '/');
        if (!slash)
            return false;
        *slash = 0;
    }
    snprintf(out, n, "%s/tools/shoal-topo", self);
    return access(out, X_OK) == 0;
}

/* Run the tool with args; returns its exit code, stdout in out (NUL-terminated). */
static int run_tool(const char *tool, const char *args, char *out, size_t n)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", tool, args);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The line of text that starts with prefix (copied into line), or false. */
static bool find_line(const char *text, const char *prefix, char *line, size_t n)
{
    for (const char *s = text; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        while (*s == ' ')
            s++;
        if (!strncmp(s, prefix, strlen(prefix))) {
            size_t k = strcspn(s, "\n");
            snprintf(line, n, "%.*s", (int)k, s);
            return true;
        }
    }
    return false;
}

static void test_tool_text(void)
{
    char tool[4200], out[16384], line[256];
    if (!tool_path(tool, sizeof tool))
        SKIP_TEST("build/tools/shoal-topo is not built (make tools)");
    int rc = run_tool(tool, "--synthetic '" TWO_NODES "' --workers 6", out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 NUMA nodes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "simulated"));
    CU_ASSERT_FATAL(find_line(out, "worker 5:", line, sizeof line));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "core 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "node 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "arena 0"));
    CU_ASSERT_FATAL(find_line(out, "worker 2:", line, sizeof line));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "node 1"));
    CU_ASSERT_FALSE(find_line(out, "worker 6:", line, sizeof line));

    /* This machine, default workers: one per core. */
    rc = run_tool(tool, "", out, sizeof out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "this machine"));
    CU_ASSERT(find_line(out, "worker 0:", line, sizeof line));
}

/* Braces and brackets balance outside strings, and the text is one object. */
static bool json_balanced(const char *s)
{
    int depth = 0;
    bool in_str = false;
    while (*s == ' ' || *s == '\n')
        s++;
    if (*s != '{')
        return false;
    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                in_str = false;
        } else if (*s == '"') {
            in_str = true;
        } else if (*s == '{' || *s == '[') {
            depth++;
        } else if (*s == '}' || *s == ']') {
            if (--depth < 0)
                return false;
            if (depth == 0) {
                for (s++; *s == ' ' || *s == '\n'; s++)
                    ;
                return *s == 0;
            }
        }
    }
    return false;
}

static void test_tool_json(void)
{
    char tool[4200], out[16384];
    if (!tool_path(tool, sizeof tool))
        SKIP_TEST("build/tools/shoal-topo is not built (make tools)");
    int rc = run_tool(tool, "--synthetic '" TWO_NODES "' --workers 6 --json", out, sizeof out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(json_balanced(out));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"workers\": ["));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"numa_nodes\": 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"binding\": \"simulated\""));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "{\"worker\": 5, \"core\": 1, \"pu\": 1, \"node\": 0, \"arena\": 0}"));
    unsigned n = 0;
    for (const char *s = out; (s = strstr(s, "\"worker\":")); s++)
        n++;
    CU_ASSERT_EQUAL(n, 6);
}

static void test_tool_errors(void)
{
    char tool[4200], out[16384];
    if (!tool_path(tool, sizeof tool))
        SKIP_TEST("build/tools/shoal-topo is not built (make tools)");
    static const char *usage_errors[] = {
        "--workers 0", "--workers x", "--workers", "--bogus", "--synthetic",
        "--synthetic 'pack:2 core:1' --xml /nonexistent", NULL };
    for (const char **a = usage_errors; *a; a++) {
        int rc = run_tool(tool, *a, out, sizeof out);
        if (rc != 2)
            fprintf(stderr, "shoal-topo %s: exit %d, want 2\n", *a, rc);
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: shoal-topo"));
    }
    int rc = run_tool(tool, "--synthetic xyz", out, sizeof out);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad topology \"xyz\""));
    rc = run_tool(tool, "--xml /nonexistent/topo.xml", out, sizeof out);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/topo.xml"));
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "this machine loads, binding real", test_this_machine },
        { "synthetic 2 nodes x 2 cores", test_two_nodes },
        { "synthetic 4 nodes", test_four_nodes },
        { "SMT cores, and PUs without cores", test_smt_and_no_cores },
        { "simulated binding returns 1, affinity untouched", test_simulated_binding },
        { "bind errors: core/node out of range, empty range", test_bind_errors },
        { "bad synthetic spec: EINVAL with a message", test_bad_spec },
        { "XML exported by hwloc loads back", test_xml },
        { "bad XML file: EINVAL with a message", test_bad_xml },
        { "worker placement round-robin", test_placement },
        { "real thread binding to core 0, restored", test_real_binding },
        { "shoal-topo text output", test_tool_text },
        { "shoal-topo --json", test_tool_json },
        { "shoal-topo exit codes", test_tool_errors },
        { NULL, NULL },
    };
    return shoal_test_run("topo", cases);
}
