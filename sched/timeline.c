/* timeline.c - per-worker rings of task events and the Chrome trace / Perfetto JSON writer
 * behind SHOAL_TIMELINE (timeline.h has the contract). Recording is a few stores into the
 * worker's own ring; naming functions, formatting and writing happen when a file is
 * written: at shutdown, at exit, or when shoal_timeline_write asks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../os/jsonesc.h"
#include "timeline.h"

#define DEFAULT_EVENTS (UINT32_C(1) << 17)
#define MAX_EVENTS     (UINT32_C(1) << 25)
#define NAME_LEN 32

/* One event: two cache lines, so that a worker's stores never share a line with another's. */
struct tl_ev {
    uint64_t start;          /* ns since the timeline started */
    uint64_t dur;            /* ns; 0 for instants and for tasks that never ran */
    uintptr_t fn;            /* the task's function, named when written if name is empty */
    uint64_t result;         /* TASK: the id of the task's result (flows bind to it) */
    uint32_t kind;           /* enum shoal__tl_kind */
    uint32_t arg;            /* STEAL: the victim worker; TASK: enum shoal__tl_status */
    uint32_t nrefs;          /* TASK: REF arguments kept in refs (the first SHOAL__TL_REFS) */
    uint32_t pad;
    uint64_t refs[SHOAL__TL_REFS];
    char name[NAME_LEN];     /* copied: the task's name lives only as long as the task */
};
_Static_assert(sizeof(struct tl_ev) == 128, "one event per two cache lines");

/* n: events ever written; slot n & mask is next. Only the ring's writer stores n (a worker
 * for its own ring; for the last ring, any other thread, under `lock`); a file written on
 * demand or at exit reads the rings while the workers run. */
struct tl_ring {
    _Alignas(SHOAL__CACHELINE) _Atomic uint64_t n;
    struct tl_ev *ev;
};

bool shoal__tl_on;
static struct tl_ring *rings;
static unsigned nrings;       /* the workers' rings, then one for other threads */
static uint64_t mask;
static size_t ring_bytes;
static uint64_t t0;
static char *path;
static long owner_pid;        /* a forked child's exit writes nothing: the trace is its parent's */
/* Serialises writing a file, the shared ring, starting and freeing the rings (cold only). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

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

static void at_exit(void);

/* The longest path a file can have, with its NUL (Linux's PATH_MAX). */
#define TL_PATH_MAX 4096

/* The length of path p once "%p" became this process's id (expand_path). */
static size_t expanded_len(const char *p)
{
    char pid[24];
    size_t n = 0, k = (size_t)snprintf(pid, sizeof pid, "%ld", (long)getpid());
    for (; *p; p++, n++)
        if (p[0] == '%' && p[1] == 'p') {
            n += k - 1;
            p++;
        }
    return n;
}

void shoal__tl_start(unsigned workers)
{
    const char *p = getenv("SHOAL_TIMELINE");
    if (!p || !*p || workers == 0)
        return;
    /* A path no file can have is refused as shoal_timeline_write refuses it, and as a bad
     * SHOAL_TIMELINE_EVENTS is: said, and the runtime starts (without a timeline). Cut, it
     * named another file, which the write at shutdown then failed to create. */
    size_t plen = expanded_len(p);
    if (plen >= TL_PATH_MAX) {
        shoal__log("SHOAL_TIMELINE is %zu bytes long%s, longer than %d bytes: no timeline; "
                   "set a shorter path", plen, strstr(p, "%p") ? " with %p expanded" : "",
                   TL_PATH_MAX - 1);
        return;
    }
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
    static bool registered;   /* init and shutdown are serialised by the lifecycle lock */
    if (!registered && atexit(at_exit) == 0)
        registered = true;
    pthread_mutex_lock(&lock);
    unsigned n = workers + 1;
    /* Cache-line aligned: each worker bumps its own ring's count. */
    rings = aligned_alloc(SHOAL__CACHELINE, n * sizeof *rings);
    path = strdup(p);
    if (!rings || !path)
        goto fail;
    memset(rings, 0, n * sizeof *rings);
    nrings = n;
    mask = cap - 1;
    ring_bytes = cap * sizeof(struct tl_ev);
    for (unsigned w = 0; w < n; w++) {
        /* Populated now: a first touch while tasks run would cost a page fault every 32
         * events and show up as task time. */
        void *m = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED)
            goto fail;
        rings[w].ev = m;
    }
    t0 = shoal__now_ns();
    owner_pid = (long)getpid();
    shoal__tl_on = true;
    pthread_mutex_unlock(&lock);
    return;
fail:
    shoal__log("SHOAL_TIMELINE: cannot allocate %u rings of %llu events (%s): no timeline",
               n, (unsigned long long)cap, strerror(errno));
    free_rings();
    pthread_mutex_unlock(&lock);
}

/* The next event of ring `ring`: a worker's own, or the shared last one (under `lock`). */
static inline struct tl_ev *next_ev(unsigned ring, struct tl_ring **rp)
{
    if (ring >= nrings)
        return NULL;
    struct tl_ring *r = &rings[ring];
    *rp = r;
    /* relaxed: this thread is the ring's only writer. */
    return &r->ev[atomic_load_explicit(&r->n, memory_order_relaxed) & mask];
}

static inline void publish_ev(struct tl_ring *r)
{
    /* release: pairs with the acquire in write_trace; a file written meanwhile sees the
     * event whole. */
    atomic_store_explicit(&r->n, atomic_load_explicit(&r->n, memory_order_relaxed) + 1,
                          memory_order_release);
}

static void fill_task(struct tl_ev *ev, const char *name, shoal_fn fn, uint64_t start_ns,
                      uint64_t end, const struct shoal__tl_task_info *ti)
{
    ev->start = start_ns > t0 ? start_ns - t0 : 0;
    ev->dur = end > start_ns ? end - start_ns : 0;
    ev->fn = (uintptr_t)fn;
    ev->kind = SHOAL__TL_TASK;
    ev->arg = (uint32_t)ti->status;
    ev->result = ti->result;
    ev->nrefs = ti->nrefs < SHOAL__TL_REFS ? ti->nrefs : SHOAL__TL_REFS;
    memcpy(ev->refs, ti->refs, ev->nrefs * sizeof ev->refs[0]);
    if (name) {
        /* A name too long is cut on a character boundary: half a UTF-8 character is not
         * part of it (the writer replaces bytes that are not UTF-8 anyway). */
        size_t n = strnlen(name, NAME_LEN - 1);
        if (n == NAME_LEN - 1 && name[n])
            n = shoal__utf8_cut(name, n);
        memcpy(ev->name, name, n);
        ev->name[n] = 0;
    } else {
        ev->name[0] = 0;
    }
}

void shoal__tl_task(unsigned worker, const char *name, shoal_fn fn, uint64_t start_ns,
                    const struct shoal__tl_task_info *ti)
{
    uint64_t end = shoal__now_ns();
    struct tl_ring *r;
    struct tl_ev *ev = next_ev(worker, &r);
    if (!ev)
        return;
    fill_task(ev, name, fn, start_ns, end, ti);
    publish_ev(r);
}

/* A task event from a thread that is not a worker: into the last ring, under `lock`. */
static void other_task(const char *name, shoal_fn fn, uint64_t start_ns,
                       const struct shoal__tl_task_info *ti)
{
    pthread_mutex_lock(&lock);
    struct tl_ring *r;
    struct tl_ev *ev = shoal__tl_on && nrings ? next_ev(nrings - 1, &r) : NULL;
    if (ev) {
        fill_task(ev, name, fn, start_ns ? start_ns : shoal__now_ns(), shoal__now_ns(), ti);
        publish_ev(r);
    }
    pthread_mutex_unlock(&lock);
}

void shoal__tl_unrun(int worker, const char *name, shoal_fn fn,
                     const struct shoal__tl_task_info *ti)
{
    if (worker >= 0 && (unsigned)worker + 1 < nrings) {
        shoal__tl_task((unsigned)worker, name, fn, shoal__now_ns(), ti);
        return;
    }
    other_task(name, fn, 0, ti);
}

void shoal__tl_task_here(const char *name, shoal_fn fn, uint64_t start_ns,
                         const struct shoal__tl_task_info *ti)
{
    other_task(name, fn, start_ns, ti);
}

void shoal__tl_instant(unsigned worker, enum shoal__tl_kind kind, uint32_t arg)
{
    uint64_t now = shoal__now_ns();
    struct tl_ring *r;
    struct tl_ev *ev = next_ev(worker, &r);
    if (!ev)
        return;
    ev->start = now > t0 ? now - t0 : 0;
    ev->dur = 0;
    ev->fn = 0;
    ev->result = 0;
    ev->kind = kind;
    ev->arg = arg;
    ev->nrefs = 0;
    ev->name[0] = 0;
    publish_ev(r);
}

/* ---- writing ---------------------------------------------------------------------------- */

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


static const char *const status_name[] = { "ok", "failed", "cancelled", "skipped" };
/* Chrome's reserved colour names, so that a task that did not end well stands out. */
static const char *const status_cname[] = { NULL, "terrible", "grey", "yellow" };

/* Where each task result was produced: result id -> (ring, start). Open addressing. */
struct prod { uint64_t id, start; uint32_t ring; };
struct prod_map { struct prod *p; uint64_t mask; };

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return x;
}

static void prod_put(struct prod_map *m, uint64_t id, uint32_t ring, uint64_t start)
{
    for (uint64_t h = mix(id) & m->mask;; h = (h + 1) & m->mask)
        if (m->p[h].id == 0 || m->p[h].id == id) {
            m->p[h] = (struct prod){ id, start, ring };
            return;
        }
}

static const struct prod *prod_get(const struct prod_map *m, uint64_t id)
{
    for (uint64_t h = mix(id) & m->mask;; h = (h + 1) & m->mask) {
        if (m->p[h].id == id)
            return &m->p[h];
        if (m->p[h].id == 0)
            return NULL;
    }
}

/* Copy event i of ring r, or return false if a worker that kept running has overwritten it
 * (a file written on demand or at exit, while tasks run, can lose the oldest events). */
static bool read_ev(struct tl_ring *r, uint64_t i, struct tl_ev *out)
{
    memcpy(out, &r->ev[i & mask], sizeof *out);
    /* acquire: pairs with the release in publish_ev; a count that has not moved a whole
     * ring past i means slot i still held event i while it was copied. */
    return atomic_load_explicit(&r->n, memory_order_acquire) <= i + mask + 1;
}

static int write_trace(FILE *f, struct fn_cache *cache, uint64_t *lost)
{
    long pid = (long)getpid();
    unsigned nw = nrings - 1;
    uint64_t end[nrings], first[nrings], ntask = 0;
    *lost = 0;
    for (unsigned w = 0; w < nrings; w++) {
        /* acquire: pairs with the release in publish_ev (events before end are whole). */
        end[w] = atomic_load_explicit(&rings[w].n, memory_order_acquire);
        first[w] = end[w] > mask + 1 ? end[w] - (mask + 1) : 0;
        *lost += first[w];
        ntask += end[w] - first[w];
    }
    /* Producers first, so that each REF argument can be drawn as a flow from the task
     * that made it to the task that used it. */
    struct prod_map pm = { NULL, 0 };
    uint64_t cap = 16;
    while (cap < 2 * ntask)
        cap <<= 1;
    pm.p = calloc(cap, sizeof *pm.p);
    pm.mask = cap - 1;
    struct tl_ev ev;
    for (unsigned w = 0; pm.p && w < nrings; w++)
        for (uint64_t i = first[w]; i < end[w]; i++)
            if (read_ev(&rings[w], i, &ev) && ev.kind == SHOAL__TL_TASK && ev.result)
                prod_put(&pm, ev.result, w, ev.start);

    fprintf(f, "{\"traceEvents\":[\n");
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%ld,\"tid\":0,"
               "\"args\":{\"name\":\"shoal\"}}", pid);
    for (unsigned w = 0; w < nrings; w++) {
        if (w < nw)
            fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%ld,\"tid\":%u,"
                       "\"args\":{\"name\":\"worker %u\"}}", pid, w, w);
        else
            fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%ld,\"tid\":%u,"
                       "\"args\":{\"name\":\"outside the workers (run by its submitter, "
                       "or cancelled or skipped)\"}}", pid, w);
        fprintf(f, ",\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%ld,\"tid\":%u,"
                   "\"args\":{\"sort_index\":%u}}", pid, w, w);
    }
    uint64_t flow = 0;
    for (unsigned w = 0; w < nrings; w++) {
        for (uint64_t i = first[w]; i < end[w]; i++) {
            if (!read_ev(&rings[w], i, &ev)) {
                (*lost)++;
                continue;
            }
            fputs(",\n{\"name\":", f);
            switch (ev.kind) {
            case SHOAL__TL_TASK: {
                unsigned st = ev.arg < 4 ? ev.arg : 1;
                shoal__json_str(f, ev.name[0] ? ev.name : cached_name(cache, ev.fn));
                fprintf(f, ",\"cat\":\"task\",\"ph\":\"X\",\"pid\":%ld,\"tid\":%u,\"ts\":",
                        pid, w);
                us(f, ev.start);
                fputs(",\"dur\":", f);
                us(f, ev.dur);
                if (status_cname[st])
                    fprintf(f, ",\"cname\":\"%s\"", status_cname[st]);
                fprintf(f, ",\"args\":{\"status\":\"%s\",\"result\":\"0x%llx\"}}",
                        status_name[st], (unsigned long long)ev.result);
                /* A flow per REF argument whose producer is in the trace: "s" inside the
                 * producer's slice, "f" binding to the enclosing slice at this one's start. */
                for (uint32_t k = 0; pm.p && k < ev.nrefs; k++) {
                    const struct prod *p = prod_get(&pm, ev.refs[k]);
                    if (!p)
                        continue;
                    flow++;
                    fprintf(f, ",\n{\"name\":\"dep\",\"cat\":\"dep\",\"ph\":\"s\",\"id\":%llu,"
                               "\"pid\":%ld,\"tid\":%u,\"ts\":", (unsigned long long)flow,
                            pid, p->ring);
                    us(f, p->start);
                    fprintf(f, "},\n{\"name\":\"dep\",\"cat\":\"dep\",\"ph\":\"f\",\"bp\":\"e\","
                               "\"id\":%llu,\"pid\":%ld,\"tid\":%u,\"ts\":",
                            (unsigned long long)flow, pid, w);
                    us(f, ev.start);
                    fputc('}', f);
                }
                break;
            }
            case SHOAL__TL_STEAL:
                fprintf(f, "\"steal\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%ld,"
                           "\"tid\":%u,\"ts\":", pid, w);
                us(f, ev.start);
                fprintf(f, ",\"args\":{\"victim\":%u}}", ev.arg);
                break;
            default:
                fprintf(f, "\"park\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%ld,"
                           "\"tid\":%u,\"ts\":", pid, w);
                us(f, ev.start);
                fputc('}', f);
                break;
            }
        }
    }
    free(pm.p);
    fprintf(f, "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"producer\":\"shoal %d.%d.%d\","
               "\"workers\":%u,\"events_per_worker\":%llu,\"events_lost\":%llu,"
               "\"flows\":%llu}}\n",
            SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR, SHOAL_VERSION_PATCH, nw,
            (unsigned long long)(mask + 1), (unsigned long long)*lost,
            (unsigned long long)flow);
    return ferror(f) ? -1 : 0;
}

/* Write the rings as they are now to `file` (NULL: the SHOAL_TIMELINE path; a given one is
 * shorter than TL_PATH_MAX). The caller holds `lock` and the timeline is on. Returns 0 or
 * -errno. */
static int write_file(const char *file_arg)
{
    char file[TL_PATH_MAX], tmp[TL_PATH_MAX + 104];
    if (file_arg)
        snprintf(file, sizeof file, "%s", file_arg);
    else
        expand_path(file, sizeof file);
    /* Written beside, then renamed: a reader never sees half a file. */
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", file, (long)getpid());
    struct fn_cache *cache = calloc(1, sizeof *cache);
    FILE *f = cache ? fopen(tmp, "w") : NULL;
    uint64_t lost = 0;
    int err = 0;
    if (!f) {
        err = errno ? errno : ENOMEM;
        shoal__log("SHOAL_TIMELINE: cannot write %s: %s", file, strerror(err));
    } else {
        static char buf[1 << 16];
        setvbuf(f, buf, _IOFBF, sizeof buf);
        int rc = write_trace(f, cache, &lost);
        if (fclose(f) != 0 || rc != 0 || rename(tmp, file) != 0) {
            err = errno ? errno : EIO;
            shoal__log("SHOAL_TIMELINE: cannot write %s: %s", file, strerror(err));
            unlink(tmp);
        } else if (lost) {
            shoal__log("SHOAL_TIMELINE: %s: the oldest %llu events were overwritten; raise "
                       "SHOAL_TIMELINE_EVENTS (now %llu per worker)", file,
                       (unsigned long long)lost, (unsigned long long)(mask + 1));
        }
    }
    free(cache);
    return -err;
}

void shoal__tl_stop(void)
{
    pthread_mutex_lock(&lock);
    if (shoal__tl_on) {
        shoal__tl_on = false;
        write_file(NULL);
        free_rings();
    }
    pthread_mutex_unlock(&lock);
}

void shoal__tl_lock(void) { pthread_mutex_lock(&lock); }
void shoal__tl_unlock(void) { pthread_mutex_unlock(&lock); }

void shoal__tl_fork_child(void)
{
    /* Only this thread is left: a holder of the lock at fork() never unlocks it here. */
    pthread_mutex_init(&lock, NULL);
    /* On: no thread was inside free_rings (tl_stop turns the timeline off under the lock
     * before it frees), so the pointers are whole and the copies ours to unmap. Off: they
     * may be half freed; they are never read again (tl_start sets them anew). */
    if (shoal__tl_on) {
        shoal__tl_on = false;
        free_rings();
    }
}

/* exit() or a return from main without shoal_shutdown: write what the rings hold. The
 * workers may still run (they are never joined), so the rings stay mapped; events they add
 * while the file is written are not in it. */
static void at_exit(void)
{
    pthread_mutex_lock(&lock);
    if (shoal__tl_on && (long)getpid() == owner_pid)
        write_file(NULL);
    pthread_mutex_unlock(&lock);
}

SHOAL_API int shoal_timeline_write(const char *file)
{
    if (file && !*file)
        return shoal__err(SHOAL_EINVAL, "shoal_timeline_write: empty path (give NULL for "
                                         "the SHOAL_TIMELINE path)");
    /* Refused, not cut: a cut path names another file. */
    if (file && strnlen(file, TL_PATH_MAX) == TL_PATH_MAX)
        return shoal__err(SHOAL_EINVAL, "shoal_timeline_write: the path is longer than %d "
                                         "bytes, the most a file's path can have: give a "
                                         "shorter one", TL_PATH_MAX - 1);
    pthread_mutex_lock(&lock);
    if (!shoal__tl_on) {
        pthread_mutex_unlock(&lock);
        return shoal__err(SHOAL_ENOENT, "shoal_timeline_write: no timeline is being recorded "
                                         "(set SHOAL_TIMELINE=file.json before shoal_init)");
    }
    int rc = write_file(file);
    pthread_mutex_unlock(&lock);
    if (rc)
        return shoal__err(SHOAL_EIO, "shoal_timeline_write: cannot write the timeline: %s",
                           strerror(-rc));
    return 0;
}
