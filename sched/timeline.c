/* timeline.c - per-worker rings of task events and the Chrome trace / Perfetto JSON writer
 * behind SHOAL_TIMELINE (timeline.h has the contract). Recording is a few stores into the
 * worker's own ring; naming functions, formatting and writing happen once, at shutdown.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "timeline.h"

#define DEFAULT_EVENTS (UINT32_C(1) << 18)
#define MAX_EVENTS     (UINT32_C(1) << 26)
#define NAME_LEN 32

/* One event: a cache line, so that a worker's stores never share a line with another's. */
struct tl_ev {
    uint64_t start;          /* ns since the timeline started */
    uint64_t dur;            /* ns; 0 for instants */
    uintptr_t fn;            /* the task's function, named at shutdown if name is empty */
    uint32_t kind;           /* enum shoal__tl_kind */
    uint32_t arg;            /* STEAL: the victim worker */
    char name[NAME_LEN];     /* copied: the task's name lives only as long as the task */
};
_Static_assert(sizeof(struct tl_ev) == 64, "one event per cache line");

struct tl_ring {
    _Alignas(SHOAL__CACHELINE) uint64_t n;   /* events ever written; slot n & mask is next */
    struct tl_ev *ev;
};

bool shoal__tl_on;
static struct tl_ring *rings;
static unsigned nrings;
static uint64_t mask;
static size_t ring_bytes;
static uint64_t t0;
static char *path;

static void free_rings(void)
{
    for (unsigned w = 0; rings && w < nrings; w++)
        if (rings[w].ev)
            munmap(rings[w].ev, ring_bytes);
    free(rings);
    free(path);
    rings = NULL;
    path = NULL;
    nrings = 0;
}

void shoal__tl_start(unsigned workers)
{
    const char *p = getenv("SHOAL_TIMELINE");
    if (!p || !*p || workers == 0)
        return;
    uint64_t cap = DEFAULT_EVENTS;
    const char *e = getenv("SHOAL_TIMELINE_EVENTS");
    if (e && *e) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end || v < 16 || v > MAX_EVENTS) {
            shoal__log("SHOAL_TIMELINE_EVENTS=%s is not a count from 16 to %u: using %u", e,
                       MAX_EVENTS, DEFAULT_EVENTS);
        } else {
            cap = 16;
            while (cap < v)
                cap <<= 1;
        }
    }
    /* Cache-line aligned: each worker bumps its own ring's count. */
    rings = aligned_alloc(SHOAL__CACHELINE, workers * sizeof *rings);
    path = strdup(p);
    if (!rings || !path)
        goto fail;
    memset(rings, 0, workers * sizeof *rings);
    nrings = workers;
    mask = cap - 1;
    ring_bytes = cap * sizeof(struct tl_ev);
    for (unsigned w = 0; w < workers; w++) {
        /* Populated now: a first touch while tasks run would cost a page fault every 64
         * events and show up as task time. */
        void *m = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED)
            goto fail;
        rings[w].ev = m;
    }
    t0 = shoal__now_ns();
    shoal__tl_on = true;
    return;
fail:
    shoal__log("SHOAL_TIMELINE: cannot allocate %u rings of %llu events (%s): no timeline",
               workers, (unsigned long long)cap, strerror(errno));
    free_rings();
}

static inline struct tl_ev *next_ev(unsigned worker)
{
    if (worker >= nrings)
        return NULL;
    struct tl_ring *r = &rings[worker];
    return &r->ev[r->n++ & mask];
}

void shoal__tl_task(unsigned worker, const char *name, shoal_fn fn, uint64_t start_ns)
{
    uint64_t end = shoal__now_ns();
    struct tl_ev *ev = next_ev(worker);
    if (!ev)
        return;
    ev->start = start_ns > t0 ? start_ns - t0 : 0;
    ev->dur = end > start_ns ? end - start_ns : 0;
    ev->fn = (uintptr_t)fn;
    ev->kind = SHOAL__TL_TASK;
    ev->arg = 0;
    if (name) {
        size_t n = strnlen(name, NAME_LEN - 1);
        memcpy(ev->name, name, n);
        ev->name[n] = 0;
    } else {
        ev->name[0] = 0;
    }
}

void shoal__tl_instant(unsigned worker, enum shoal__tl_kind kind, uint32_t arg)
{
    uint64_t now = shoal__now_ns();
    struct tl_ev *ev = next_ev(worker);
    if (!ev)
        return;
    ev->start = now > t0 ? now - t0 : 0;
    ev->dur = 0;
    ev->fn = 0;
    ev->kind = kind;
    ev->arg = arg;
    ev->name[0] = 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);   /* bytes, not UTF-8: a truncated name may split one */
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* A task without opts.name is named after its function: the symbol when the dynamic
 * symbol table has it, else "module+0xoffset" for `addr2line -f -e module 0xoffset`. */
static void fn_name(uintptr_t fn, char *out, size_t n)
{
    Dl_info di;
    if (fn && dladdr((void *)fn, &di) && di.dli_fname) {
        if (di.dli_sname && di.dli_saddr == (void *)fn) {
            snprintf(out, n, "%s", di.dli_sname);
            return;
        }
        const char *base = strrchr(di.dli_fname, '/');
        snprintf(out, n, "%s+0x%llx", base ? base + 1 : di.dli_fname,
                 (unsigned long long)(fn - (uintptr_t)di.dli_fbase));
        return;
    }
    snprintf(out, n, "fn@0x%llx", (unsigned long long)fn);
}

/* Names of functions met so far: many events share few functions and dladdr is slow. */
struct fn_cache {
    uintptr_t fn[256];
    char name[256][96];
};

static const char *cached_name(struct fn_cache *c, uintptr_t fn)
{
    unsigned h = (unsigned)((fn >> 4) * 0x9E3779B1u) >> 24;
    if (c->fn[h] != fn || !c->name[h][0]) {
        c->fn[h] = fn;
        fn_name(fn, c->name[h], sizeof c->name[h]);
    }
    return c->name[h];
}

/* "%p" in the path becomes the pid, so that several processes can trace at once. */
static void expand_path(char *out, size_t n)
{
    size_t o = 0;
    for (const char *s = path; *s && o + 1 < n; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            int k = snprintf(out + o, n - o, "%ld", (long)getpid());
            o = k > 0 && (size_t)k < n - o ? o + (size_t)k : n - 1;
            s++;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
}

static void us(FILE *f, uint64_t ns)
{
    fprintf(f, "%llu.%03u", (unsigned long long)(ns / 1000), (unsigned)(ns % 1000));
}

static int write_trace(FILE *f, struct fn_cache *cache, uint64_t *lost)
{
    long pid = (long)getpid();
    fprintf(f, "{\"traceEvents\":[\n");
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%ld,\"tid\":0,"
               "\"args\":{\"name\":\"shoal\"}}", pid);
    for (unsigned w = 0; w < nrings; w++) {
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%ld,\"tid\":%u,"
                   "\"args\":{\"name\":\"worker %u\"}}", pid, w, w);
        fprintf(f, ",\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%ld,\"tid\":%u,"
                   "\"args\":{\"sort_index\":%u}}", pid, w, w);
    }
    *lost = 0;
    for (unsigned w = 0; w < nrings; w++) {
        struct tl_ring *r = &rings[w];
        uint64_t first = r->n > mask + 1 ? r->n - (mask + 1) : 0;
        *lost += first;
        for (uint64_t i = first; i < r->n; i++) {
            const struct tl_ev *ev = &r->ev[i & mask];
            fputs(",\n{\"name\":", f);
            switch (ev->kind) {
            case SHOAL__TL_TASK:
                json_str(f, ev->name[0] ? ev->name : cached_name(cache, ev->fn));
                fprintf(f, ",\"cat\":\"task\",\"ph\":\"X\",\"pid\":%ld,\"tid\":%u,\"ts\":",
                        pid, w);
                us(f, ev->start);
                fputs(",\"dur\":", f);
                us(f, ev->dur);
                fputc('}', f);
                break;
            case SHOAL__TL_STEAL:
                fprintf(f, "\"steal\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%ld,"
                           "\"tid\":%u,\"ts\":", pid, w);
                us(f, ev->start);
                fprintf(f, ",\"args\":{\"victim\":%u}}", ev->arg);
                break;
            default:
                fprintf(f, "\"park\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%ld,"
                           "\"tid\":%u,\"ts\":", pid, w);
                us(f, ev->start);
                fputc('}', f);
                break;
            }
        }
    }
    fprintf(f, "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"producer\":\"shoal %d.%d.%d\","
               "\"workers\":%u,\"events_per_worker\":%llu,\"events_lost\":%llu}}\n",
            SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR, SHOAL_VERSION_PATCH, nrings,
            (unsigned long long)(mask + 1), (unsigned long long)*lost);
    return ferror(f) ? -1 : 0;
}

void shoal__tl_stop(void)
{
    if (!shoal__tl_on)
        return;
    shoal__tl_on = false;
    char file[4096], tmp[4200];
    expand_path(file, sizeof file);
    /* Written beside, then renamed: a reader never sees half a file. */
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", file, (long)getpid());
    struct fn_cache *cache = calloc(1, sizeof *cache);
    FILE *f = cache ? fopen(tmp, "w") : NULL;
    uint64_t lost = 0;
    if (!f) {
        shoal__log("SHOAL_TIMELINE: cannot write %s: %s", file, strerror(errno));
    } else {
        static char buf[1 << 16];
        setvbuf(f, buf, _IOFBF, sizeof buf);
        int rc = write_trace(f, cache, &lost);
        if (fclose(f) != 0 || rc != 0 || rename(tmp, file) != 0) {
            shoal__log("SHOAL_TIMELINE: cannot write %s: %s", file, strerror(errno));
            unlink(tmp);
        } else if (lost) {
            shoal__log("SHOAL_TIMELINE: %s: the oldest %llu events were overwritten; raise "
                       "SHOAL_TIMELINE_EVENTS (now %llu per worker)", file,
                       (unsigned long long)lost, (unsigned long long)(mask + 1));
        }
    }
    free(cache);
    free_rings();
}
