/* test_timeline.c - the task timeline (SHOAL_TIMELINE): the rings and the Chrome trace
 * writer driven directly (white-box: known events, overflow, bad settings, unwritable
 * paths), the file shoal_init/shoal_shutdown write, and tools/shoal-timeline's summary of
 * a hand-made trace with known busy times and of a trace the runtime wrote. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"
#include "../sched/timeline.h"
#include "../tools/json.h"
#include "../os/jsonesc.h"

static char dir[64];

static void make_dir(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/shoal-tl-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    }
}

static void path_in_dir(char *out, size_t n, const char *name)
{
    make_dir();
    snprintf(out, n, "%s/%s", dir, name);
}

/* Parse a trace file; counts its events by phase. NULL (and a failed assert) if invalid. */
struct counts {
    size_t total, x, instants, meta, thread_names;
};

static jval *load_trace(const char *path, struct counts *c)
{
    const char *err = NULL;
    size_t at = 0;
    jval *root = json_parse_file(path, &err, &at);
    if (!root)
        fprintf(stderr, "%s: %s at byte %zu\n", path, err, at);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    const jval *evs = json_get(root, "traceEvents");
    CU_ASSERT_FATAL(evs != NULL && evs->t == J_ARR);
    memset(c, 0, sizeof *c);
    c->total = evs->n;
    for (size_t i = 0; i < evs->n; i++) {
        const char *ph = json_str_of(&evs->items[i], "ph", "");
        c->x += !strcmp(ph, "X");
        c->instants += !strcmp(ph, "i");
        c->meta += !strcmp(ph, "M");
        c->thread_names += !strcmp(ph, "M") &&
                           !strcmp(json_str_of(&evs->items[i], "name", ""), "thread_name");
    }
    return root;
}

static int named_task(shoal_task *t)
{
    (void)t;
    return 0;
}

/* A task that ran and returned 0, as the worker loop records it (no result, no REF args). */
static void tl_end(unsigned worker, const char *name, shoal_fn fn, uint64_t t0)
{
    if (shoal__tl_on)
        shoal__tl_task(worker, name, fn, t0, &(struct shoal__tl_task_info){ 0 });
}

static void env_restore(void)
{
    unsetenv("SHOAL_TIMELINE");
    unsetenv("SHOAL_TIMELINE_EVENTS");
}

static void test_synthetic_events(void)
{
    char file[256];
    path_in_dir(file, sizeof file, "synthetic.json");
    setenv("SHOAL_TIMELINE", file, 1);
    shoal__tl_start(3);
    env_restore();
    CU_ASSERT_TRUE_FATAL(shoal__tl_on);
    enum { K = 30 };
    for (int i = 0; i < K; i++) {
        uint64_t t0 = shoal__tl_begin();
        CU_ASSERT_TRUE(t0 != 0);
        /* every third without a name: named after its function */
        tl_end((unsigned)(i % 3), i % 3 == 2 ? NULL : "a \"quoted\"\tname\\ that is "
                      "longer than thirty-one bytes", named_task, t0);
    }
    shoal__tl_mark(1, SHOAL__TL_STEAL, 0);
    shoal__tl_mark(0, SHOAL__TL_PARK, 0);
    tl_end(7, "no such worker: ignored", named_task, shoal__tl_begin());
    shoal__tl_stop();
    CU_ASSERT_FALSE(shoal__tl_on);
    CU_ASSERT_EQUAL(shoal__tl_begin(), 0);

    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, K);
    CU_ASSERT_EQUAL(c.instants, 2);
    CU_ASSERT_EQUAL(c.thread_names, 3 + 1);          /* the workers and "not run" */
    CU_ASSERT_EQUAL(c.total, 1 + 2 * 4 + K + 2);     /* process_name, thread name + sort */
    const jval *evs = json_get(root, "traceEvents");
    size_t fn_named = 0, quoted = 0, steals = 0;
    for (size_t i = 0; i < evs->n; i++) {
        const jval *e = &evs->items[i];
        const char *ph = json_str_of(e, "ph", ""), *name = json_str_of(e, "name", "");
        double tid = json_num_of(e, "tid", -1);
        CU_ASSERT_TRUE(tid >= 0 && tid < 4);
        CU_ASSERT_EQUAL(json_num_of(e, "pid", -1), (double)getpid());
        if (!strcmp(ph, "X")) {
            CU_ASSERT_TRUE(json_num_of(e, "ts", -1) >= 0);
            CU_ASSERT_TRUE(json_num_of(e, "dur", -1) >= 0);
            /* names are cut to 31 bytes and escaped; the parser gives them back */
            if (!strcmp(name, "a \"quoted\"\tname\\ that is longer")) {
                quoted++;
                CU_ASSERT_NOT_EQUAL(tid, 2);
            } else if (strstr(name, "test_timeline")) {
                fn_named++;   /* "test_timeline+0x...": no dynamic symbol for it */
                CU_ASSERT_EQUAL(tid, 2);
            }
        }
        if (!strcmp(ph, "i") && !strcmp(name, "steal")) {
            steals++;
            CU_ASSERT_EQUAL(tid, 1);
            CU_ASSERT_EQUAL(json_num_of(json_get(e, "args"), "victim", -1), 0);
        }
    }
    CU_ASSERT_EQUAL(quoted, 2 * K / 3);
    CU_ASSERT_EQUAL(fn_named, K / 3);
    CU_ASSERT_EQUAL(steals, 1);
    const jval *other = json_get(root, "otherData");
    CU_ASSERT_EQUAL(json_num_of(other, "workers", -1), 3);
    CU_ASSERT_EQUAL(json_num_of(other, "events_lost", -1), 0);
    json_free(root);
    unlink(file);
}

static void test_ring_overflow(void)
{
    char file[256];
    path_in_dir(file, sizeof file, "overflow.json");
    setenv("SHOAL_TIMELINE", file, 1);
    setenv("SHOAL_TIMELINE_EVENTS", "16", 1);
    shoal__tl_start(1);
    env_restore();
    CU_ASSERT_TRUE_FATAL(shoal__tl_on);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        tl_end(0, name, named_task, shoal__tl_begin());
    }
    shoal__tl_stop();
    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, 16);
    CU_ASSERT_EQUAL(json_num_of(json_get(root, "otherData"), "events_lost", -1), 24);
    /* The newest are kept, in order. */
    const jval *evs = json_get(root, "traceEvents");
    int next = 24;
    for (size_t i = 0; i < evs->n; i++) {
        if (strcmp(json_str_of(&evs->items[i], "ph", ""), "X"))
            continue;
        char want[16];
        snprintf(want, sizeof want, "t%d", next++);
        CU_ASSERT_STRING_EQUAL(json_str_of(&evs->items[i], "name", ""), want);
    }
    CU_ASSERT_EQUAL(next, 40);
    json_free(root);
    unlink(file);
}

/* The last message logged (test_bad_settings). */
static char logged[512];
static void capture_log(int level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    snprintf(logged, sizeof logged, "%s", message);
}

static void test_bad_settings(void)
{
    char file[256];
    path_in_dir(file, sizeof file, "bad-count.json");
    /* Not a count: the default is used and the trace still written. */
    setenv("SHOAL_TIMELINE", file, 1);
    setenv("SHOAL_TIMELINE_EVENTS", "lots", 1);
    shoal__tl_start(1);
    env_restore();
    CU_ASSERT_TRUE_FATAL(shoal__tl_on);
    tl_end(0, "one", named_task, shoal__tl_begin());
    shoal__tl_stop();
    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, 1);
    CU_ASSERT_EQUAL(json_num_of(json_get(root, "otherData"), "events_per_worker", -1), 131072);
    json_free(root);
    unlink(file);

    /* Empty or unset: no timeline, nothing recorded. */
    setenv("SHOAL_TIMELINE", "", 1);
    shoal__tl_start(2);
    env_restore();
    CU_ASSERT_FALSE(shoal__tl_on);
    tl_end(0, "dropped", named_task, shoal__tl_begin());
    shoal__tl_stop();

    /* A path no file can have (4,096 bytes or more, also once "%p" is the pid): said in
     * the log, no timeline; before, it was cut to 4,095 bytes, the timeline recorded, and
     * the write at shutdown failed naming the cut path. */
    static char longp[4200];
    char pid[24];
    size_t pidlen = (size_t)snprintf(pid, sizeof pid, "%ld", (long)getpid());
    for (int k = 0; k < 3; k++) {
        /* 4,095 bytes fit; 4,096 do not; k 2 ends in %p and is 4,096 bytes once expanded */
        size_t len = k == 0 ? 4095 : k == 1 ? 4096 : 4098 - pidlen;
        memset(longp, 'a', len);
        memcpy(longp, "/tmp/", 5);
        longp[len] = 0;
        if (k == 2)
            memcpy(longp + len - 2, "%p", 2);
        bool fits = (k == 2 ? len - 2 + pidlen : len) <= 4095;
        setenv("SHOAL_TIMELINE", longp, 1);
        logged[0] = 0;
        shoal_set_log(capture_log, NULL, SHOAL_LOG_WARN);
        shoal__tl_start(1);
        env_restore();
        CU_ASSERT_EQUAL(shoal__tl_on, fits);
        if (!fits) {
            if (!strstr(logged, "longer than 4095 bytes"))
                fprintf(stderr, "logged: '%s'\n", logged);
            CU_ASSERT_PTR_NOT_NULL(strstr(logged, "SHOAL_TIMELINE"));
            CU_ASSERT_PTR_NOT_NULL(strstr(logged, "longer than 4095 bytes"));
            CU_ASSERT_PTR_NOT_NULL(strstr(logged, "shorter path"));
        }
        shoal__tl_stop();   /* a fitting one writes nothing: /tmp/aaa... is too long a name */
        shoal_set_log(NULL, NULL, SHOAL_LOG_WARN);
    }

    /* An unwritable path: logged, no file, no crash. */
    setenv("SHOAL_TIMELINE", "/nonexistent-shoal-dir/x.json", 1);
    shoal__tl_start(1);
    env_restore();
    CU_ASSERT_TRUE(shoal__tl_on);
    tl_end(0, "lost", named_task, shoal__tl_begin());
    shoal__tl_stop();
    CU_ASSERT_FALSE(shoal__tl_on);
    CU_ASSERT_NOT_EQUAL(access("/nonexistent-shoal-dir/x.json", F_OK), 0);
}

/* The public path: shoal_init reads the variable, shoal_shutdown writes the file ("%p" is
 * the pid) with one thread per worker even when no task ran. */
static void test_init_shutdown_writes(void)
{
    test_reset();
    char pattern[256], file[256];
    path_in_dir(pattern, sizeof pattern, "run-%p.json");
    snprintf(file, sizeof file, "%s/run-%ld.json", dir, (long)getpid());
    setenv("SHOAL_TIMELINE", pattern, 1);
    shoal_config cfg = shoal_test_config();
    int rc = shoal_init(&cfg);
    env_restore();
    ASSERT_OK(rc);
    ASSERT_OK(shoal_shutdown());
    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, 0);
    CU_ASSERT_EQUAL(c.thread_names, cfg.workers + 1);
    json_free(root);
    unlink(file);
    /* Without the variable a run writes nothing. */
    ASSERT_OK(shoal_init(&cfg));
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_NOT_EQUAL(access(file, F_OK), 0);
}

static int tl_task(shoal_task *t)
{
    uint64_t v = 7;
    return shoal_task_return(t, &v, sizeof v) != 0;
}

/* Real tasks on the scheduler's workers: one complete event each, on a worker's thread. */
/* A runtime of the test config that records its timeline into file (in the suite's
 * directory, named `name`). */
static shoal_config start_traced(char *file, size_t n, const char *name)
{
    test_reset();
    path_in_dir(file, n, name);
    setenv("SHOAL_TIMELINE", file, 1);
    shoal_config cfg = shoal_test_config();
    int rc = shoal_init(&cfg);
    env_restore();
    ASSERT_OK(rc);
    return cfg;
}

static void test_tasks_recorded(void)
{
    enum { N = 40 };
    char file[256];
    shoal_config cfg = start_traced(file, sizeof file, "tasks.json");
    shoal_ref r[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_submit(tl_task, NULL, 0,
                              i % 2 ? NULL : &(shoal_task_opts){ .name = "tl-named" }, &r[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t n;
        CHECK_OK(get_within(r[i], &d, &n));
        CHECK_OK(shoal_release(r[i]));
    }
    ASSERT_OK(shoal_shutdown());

    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, N);
    CU_ASSERT_EQUAL(c.thread_names, cfg.workers + 1);
    const jval *evs = json_get(root, "traceEvents");
    size_t named = 0, by_fn = 0;
    for (size_t i = 0; i < evs->n; i++) {
        const jval *e = &evs->items[i];
        if (strcmp(json_str_of(e, "ph", ""), "X"))
            continue;
        const char *name = json_str_of(e, "name", "");
        named += !strcmp(name, "tl-named");
        by_fn += strstr(name, "test_timeline+0x") != NULL;
        double tid = json_num_of(e, "tid", -1);
        CU_ASSERT_TRUE(tid >= 0 && tid < cfg.workers);
    }
    CU_ASSERT_EQUAL(named, N / 2);
    CU_ASSERT_EQUAL(by_fn, N / 2);
    json_free(root);
    unlink(file);
}

/* A submit and get round trip: the submitter runs its own task inside shoal_get (shoal.h),
 * and that run is recorded too, on the ring of the threads outside the workers. Before,
 * only workers recorded a run: this file held none of the N tasks. */
static void test_tasks_run_by_submitter(void)
{
    enum { N = 20 };
    char file[256];
    shoal_config cfg = start_traced(file, sizeof file, "here.json");
    for (int i = 0; i < N; i++) {
        shoal_ref r;
        const void *d;
        size_t n;
        ASSERT_OK(shoal_submit(tl_task, NULL, 0, &(shoal_task_opts){ .name = "round-trip" },
                               &r));
        CHECK_OK(shoal_get(r, &d, &n));   /* no time limit: the submitter may run it */
        CHECK_OK(shoal_release(r));
    }
    ASSERT_OK(shoal_shutdown());

    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, N);
    const jval *evs = json_get(root, "traceEvents");
    size_t named = 0;
    for (size_t i = 0; evs && i < evs->n; i++) {
        const jval *e = &evs->items[i];
        if (strcmp(json_str_of(e, "ph", ""), "X"))
            continue;
        named += !strcmp(json_str_of(e, "name", ""), "round-trip");
        CU_ASSERT_STRING_EQUAL(json_str_of(json_get(e, "args"), "status", ""), "ok");
        double tid = json_num_of(e, "tid", -1);
        CU_ASSERT_TRUE(tid >= 0 && tid <= cfg.workers);   /* a worker, or the one more ring */
    }
    CU_ASSERT_EQUAL(named, N);
    json_free(root);
    unlink(file);
}

/* ---- end states, flows, names, writing on demand and at exit ---------------------------- */

static int fail_task(shoal_task *t)
{
    (void)t;
    return 1;
}

/* Valid per RFC 8259 to python3's parser too, not only to tools/json.h. */
static void python_accepts(const char *file)
{
    CU_ASSERT(test_python_json(file) <= 0);
}

static const jval *event_where(const jval *evs, const char *ph, const char *name)
{
    for (size_t i = 0; i < evs->n; i++)
        if (!strcmp(json_str_of(&evs->items[i], "ph", ""), ph) &&
            !strcmp(json_str_of(&evs->items[i], "name", ""), name))
            return &evs->items[i];
    return NULL;
}

/* Every "s" has one "f" with its id and vice versa; "f" binds to the enclosing slice; the
 * "s" sits inside a slice of its thread and the "f" at the start of one. Returns the pairs. */
static size_t check_flows(const jval *evs)
{
    size_t pairs = 0;
    for (size_t i = 0; i < evs->n; i++) {
        const jval *s = &evs->items[i];
        if (strcmp(json_str_of(s, "ph", ""), "s"))
            continue;
        double id = json_num_of(s, "id", -1);
        CU_ASSERT_TRUE(id > 0);
        size_t fs = 0, ss = 0;
        const jval *f = NULL;
        for (size_t k = 0; k < evs->n; k++) {
            const char *ph = json_str_of(&evs->items[k], "ph", "");
            if (json_num_of(&evs->items[k], "id", -1) != id)
                continue;
            ss += !strcmp(ph, "s");
            if (!strcmp(ph, "f")) {
                fs++;
                f = &evs->items[k];
            }
        }
        CU_ASSERT_EQUAL(ss, 1);
        CU_ASSERT_EQUAL_FATAL(fs, 1);
        CU_ASSERT_STRING_EQUAL(json_str_of(f, "bp", ""), "e");
        CU_ASSERT_TRUE(json_num_of(f, "ts", -1) >= json_num_of(s, "ts", -1));
        size_t s_in = 0, f_at = 0;
        for (size_t k = 0; k < evs->n; k++) {
            const jval *x = &evs->items[k];
            if (strcmp(json_str_of(x, "ph", ""), "X"))
                continue;
            double ts = json_num_of(x, "ts", -1), end = ts + json_num_of(x, "dur", 0);
            if (json_num_of(x, "tid", -1) == json_num_of(s, "tid", -2) &&
                ts <= json_num_of(s, "ts", -1) && json_num_of(s, "ts", -1) <= end)
                s_in++;
            if (json_num_of(x, "tid", -1) == json_num_of(f, "tid", -2) &&
                ts == json_num_of(f, "ts", -1))
                f_at++;
        }
        CU_ASSERT_TRUE(s_in >= 1);
        CU_ASSERT_TRUE(f_at >= 1);
        pairs++;
    }
    size_t fcount = 0;
    for (size_t i = 0; i < evs->n; i++)
        fcount += !strcmp(json_str_of(&evs->items[i], "ph", ""), "f");
    CU_ASSERT_EQUAL(fcount, pairs);
    return pairs;
}

static int slow_task(shoal_task *t)
{
    (void)t;
    return 0;
}

/* A failed task and the task it starved (skipped), a task cancelled by the shutdown, a
 * producer and consumer linked by a flow, a UTF-8 name and a name with bytes that are not
 * UTF-8; written on demand while the runtime is up, and again at shutdown. */
static void test_states_flows_names(void)
{
    char file[256], now[256];
    (void)start_traced(file, sizeof file, "states.json");
    path_in_dir(now, sizeof now, "states-now.json");
    shoal_ref a, b, f, sk, never, c, bad;
    CHECK_OK(shoal_submit(tl_task, NULL, 0, &(shoal_task_opts){ .name = "caf\xc3\xa9" }, &a));
    CHECK_OK(shoal_submit(slow_task, (shoal_arg[]){ SHOAL_REF(a) }, 1,
                          &(shoal_task_opts){ .name = "consumer" }, &b));
    CHECK_OK(shoal_submit(fail_task, NULL, 0, &(shoal_task_opts){ .name = "fails" }, &f));
    CHECK_OK(shoal_submit(slow_task, (shoal_arg[]){ SHOAL_REF(f) }, 1,
                          &(shoal_task_opts){ .name = "starved" }, &sk));
    CHECK_OK(shoal_submit(slow_task, NULL, 0,
                          &(shoal_task_opts){ .name = "bad\xff\xfe name \xe2\x82" }, &bad));
    /* a 30-byte name whose 31st and 32nd bytes are one character: cut before it */
    CHECK_OK(shoal_submit(slow_task, NULL, 0,
                          &(shoal_task_opts){ .name = "123456789012345678901234567890\xc3\xa9" },
                          &c));
    const void *d;
    size_t n;
    CHECK_OK(get_within(b, &d, &n));
    CU_ASSERT_EQUAL(shoal_get_timeout(sk, 10 * (int64_t)1000000000, &d, &n), SHOAL_ETASK);
    CHECK_OK(get_within(bad, &d, &n));
    CHECK_OK(get_within(c, &d, &n));
    /* never ready: its task waits until the shutdown cancels it */
    void *buf;
    shoal_ref pending, cancelled;
    CHECK_OK(shoal_create(8, &buf, &pending));
    CHECK_OK(shoal_submit(slow_task, (shoal_arg[]){ SHOAL_REF(pending) }, 1,
                          &(shoal_task_opts){ .name = "never" }, &cancelled));
    never = cancelled;
    (void)never;

    /* On demand: the file has what ended so far, and recording goes on. */
    CU_ASSERT_EQUAL(shoal_timeline_write(""), SHOAL_EINVAL);
    /* A path no file can have (4,096 bytes and more) is refused as such; before, it was cut
     * to 4,095 bytes and the write failed as SHOAL_EIO naming the cut path. */
    static char longp[4200];
    memset(longp, 'a', sizeof longp - 1);
    memcpy(longp, "/tmp/", 5);
    for (size_t cut = 4095; cut <= 4096; cut++) {
        longp[cut + 1] = 0;
        CU_ASSERT_EQUAL(shoal_timeline_write(longp), SHOAL_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "longer than 4095 bytes"));
    }
    ASSERT_OK(shoal_timeline_write(now));
    struct counts cn;
    jval *r0 = load_trace(now, &cn);
    CU_ASSERT_PTR_NOT_NULL(event_where(json_get(r0, "traceEvents"), "X", "consumer"));
    json_free(r0);
    python_accepts(now);
    unlink(now);
    ASSERT_OK(shoal_shutdown());
    CU_ASSERT_EQUAL(shoal_timeline_write(NULL), SHOAL_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "SHOAL_TIMELINE"));

    struct counts cc;
    jval *root = load_trace(file, &cc);
    python_accepts(file);
    const jval *evs = json_get(root, "traceEvents");
    struct { const char *name, *status; } want[] = {
        { "caf\xc3\xa9", "ok" }, { "consumer", "ok" }, { "fails", "failed" },
        { "starved", "skipped" }, { "never", "cancelled" },
        { "bad\xef\xbf\xbd\xef\xbf\xbd name \xef\xbf\xbd\xef\xbf\xbd", "ok" },
        { "123456789012345678901234567890", "ok" },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const jval *e = event_where(evs, "X", want[i].name);
        if (!e)
            fprintf(stderr, "no task event named \"%s\"\n", want[i].name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_STRING_EQUAL(json_str_of(json_get(e, "args"), "status", ""), want[i].status);
    }
    /* flows: café -> consumer, fails -> starved (pending was no task: no flow) */
    CU_ASSERT_EQUAL(check_flows(evs), 2);
    CU_ASSERT_EQUAL(json_num_of(json_get(root, "otherData"), "flows", -1), 2);
    const jval *ca = event_where(evs, "X", "caf\xc3\xa9"), *co = event_where(evs, "X", "consumer");
    for (size_t i = 0; i < evs->n; i++) {
        const jval *e = &evs->items[i];
        if (!strcmp(json_str_of(e, "ph", ""), "f") &&
            json_num_of(e, "ts", -1) == json_num_of(co, "ts", -2) &&
            json_num_of(e, "tid", -1) == json_num_of(co, "tid", -2)) {
            /* its "s" is in café's slice */
            for (size_t k = 0; k < evs->n; k++)
                if (!strcmp(json_str_of(&evs->items[k], "ph", ""), "s") &&
                    json_num_of(&evs->items[k], "id", -1) == json_num_of(e, "id", -2)) {
                    CU_ASSERT_EQUAL(json_num_of(&evs->items[k], "tid", -1), json_num_of(ca, "tid", -2));
                    CU_ASSERT_EQUAL(json_num_of(&evs->items[k], "ts", -1), json_num_of(ca, "ts", -2));
                }
        }
    }
    /* the bytes in the file: café as UTF-8, not as escaped Latin-1 bytes */
    FILE *fp = fopen(file, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[len] = 0;
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"caf\xc3\xa9\""));
    CU_ASSERT_PTR_NULL(strstr(text, "\\u00c3"));
    json_free(root);
    unlink(file);
}

/* The escaper on every kind of byte, and the cut on character boundaries. */
static void test_json_escaper(void)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    shoal__json_str(m, "q\"b\\c\x01\x1f\x7f\n\t caf\xc3\xa9 \xf0\x9f\x98\x80 \xc0\xaf \xed\xa0\x80 \xff");
    fclose(m);
    CU_ASSERT_STRING_EQUAL(out, "\"q\\\"b\\\\c\\u0001\\u001f\\u007f\\n\\t caf\xc3\xa9 "
                                "\xf0\x9f\x98\x80 \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\"");
    free(out);
    CU_ASSERT_EQUAL(shoal__utf8_cut("ab\xc3\xa9", 3), 2);
    CU_ASSERT_EQUAL(shoal__utf8_cut("ab\xc3\xa9", 4), 4);
    CU_ASSERT_EQUAL(shoal__utf8_cut("a\xf0\x9f\x98\x80", 4), 1);
    CU_ASSERT_EQUAL(shoal__utf8_cut("a\xf0\x9f\x98\x80", 5), 5);
    CU_ASSERT_EQUAL(shoal__utf8_cut("abc", 3), 3);
}

/* A program that returns from main without shoal_shutdown still leaves its timeline: this
 * test binary, run again with EXIT_CHILD, is that program. */
#define EXIT_CHILD "--timeline-return-from-main"
static int exit_child(void)
{
    alarm(60);   /* runaway guard */
    if (shoal_init(&(shoal_config){ .workers = 2, .store_bytes = 64u << 20 }) != 0)
        return 3;
    shoal_ref r[8];
    for (int i = 0; i < 8; i++)
        if (shoal_submit(tl_task, NULL, 0, &(shoal_task_opts){ .name = "before-exit" }, &r[i]))
            return 4;
    const void *d;
    size_t n;
    for (int i = 0; i < 8; i++)
        if (shoal_get_timeout(r[i], 30 * (int64_t)1000000000, &d, &n) != 0)
            return 5;
    return 0;   /* no shoal_shutdown */
}

static void test_written_at_exit(void)
{
    char self[PATH_MAX], file[256], cmd[PATH_MAX + 512], out[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CU_ASSERT_FATAL(len > 0);
    self[len] = 0;
    make_dir();
    snprintf(cmd, sizeof cmd, "SHOAL_TIMELINE='%s/exit.json' timeout 120 '%s' " EXIT_CHILD
                              " 2>&1", dir, self);
    int rc = test_run_cmd(cmd, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "the child said (exit %d):\n%s\n", rc, out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    path_in_dir(file, sizeof file, "exit.json");
    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, 8);
    CU_ASSERT_PTR_NOT_NULL(event_where(json_get(root, "traceEvents"), "X", "before-exit"));
    python_accepts(file);
    json_free(root);
    unlink(file);
}

/* ---- tools/shoal-timeline ------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Worker 0 runs [0,100] with [50,80] nested inside it, and [200,300]: busy 200 of the
 * 400 us span, idle gaps of 100 us. Worker 1 runs [0,400] and steals once. */
static const char KNOWN[] =
    "{\"traceEvents\":[\n"
    "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"worker 0\"}},\n"
    "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"worker 1\"}},\n"
    "{\"name\":\"outer\",\"ph\":\"X\",\"pid\":1,\"tid\":0,\"ts\":1000,\"dur\":100},\n"
    "{\"name\":\"inner\",\"ph\":\"X\",\"pid\":1,\"tid\":0,\"ts\":1050,\"dur\":30},\n"
    "{\"name\":\"late\",\"ph\":\"X\",\"pid\":1,\"tid\":0,\"ts\":1200,\"dur\":100},\n"
    "{\"name\":\"park\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":0,\"ts\":1100},\n"
    "{\"name\":\"long\\u0020one\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":1000,\"dur\":400},\n"
    "{\"name\":\"steal\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":1,\"ts\":1001,\"args\":{\"victim\":0}}\n"
    "],\"otherData\":{\"producer\":\"hand-made\",\"events_lost\":0}}\n";

static void test_tool_known_trace(void)
{
    char tool[PATH_MAX], file[256], cmd[PATH_MAX + 512], out[8192];
    test_sibling(tool, sizeof tool, "tools", "shoal-timeline");
    path_in_dir(file, sizeof file, "known.json");
    write_file(file, KNOWN);
    snprintf(cmd, sizeof cmd, "'%s' -n 2 '%s' 2>&1", tool, file);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
    if (!strstr(out, "4 tasks on 2 workers over 0.400 ms"))
        fprintf(stderr, "shoal-timeline said:\n%s\n", out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "4 tasks on 2 workers over 0.400 ms, hand-made"));
    /* worker, tasks, busy ms, busy %, steals, parks, longest idle ms */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 0            3       0.200    50.0       0       1            0.100"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 1            1       0.400   100.0       1       0            0.000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "all                 4       0.600    75.0       1       1"));
    /* -n 2: the two longest, the longest first */
    char *lt = strstr(out, "longest tasks");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lt);
    char *a = strstr(lt, "long one"), *b = strstr(lt, "outer");
    CU_ASSERT_TRUE(a != NULL && (b == NULL || a < b));
    CU_ASSERT_PTR_NULL(strstr(lt, "inner"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "tasks by name"));
    unlink(file);
}

static void test_tool_errors(void)
{
    char tool[PATH_MAX], file[256], cmd[PATH_MAX + 512], out[4096];
    test_sibling(tool, sizeof tool, "tools", "shoal-timeline");
    snprintf(cmd, sizeof cmd, "'%s' 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage"));
    snprintf(cmd, sizeof cmd, "'%s' /nonexistent-shoal.json 2>&1", tool);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "No such file"));
    path_in_dir(file, sizeof file, "broken.json");
    write_file(file, "{\"traceEvents\":[{\"ph\":\"X\",}]}");
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", tool, file);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "not valid JSON"));
    write_file(file, "{\"something\":1}");
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no traceEvents"));
    write_file(file, "{\"traceEvents\":[]}");
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no task events"));
    unlink(file);
}

/* The tool on a trace the runtime wrote: the counts it prints match the file. */
static void test_tool_on_runtime_trace(void)
{
    char tool[PATH_MAX], file[256], cmd[PATH_MAX + 512], out[8192];
    test_sibling(tool, sizeof tool, "tools", "shoal-timeline");
    path_in_dir(file, sizeof file, "runtime.json");
    setenv("SHOAL_TIMELINE", file, 1);
    shoal__tl_start(2);
    env_restore();
    CU_ASSERT_TRUE_FATAL(shoal__tl_on);
    for (int i = 0; i < 12; i++)
        tl_end((unsigned)(i & 1), i < 4 ? "first" : "second", named_task,
                      shoal__tl_begin());
    shoal__tl_mark(0, SHOAL__TL_STEAL, 1);
    shoal__tl_stop();
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", tool, file);
    CU_ASSERT_EQUAL(test_run_cmd(cmd, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "12 tasks on 2 workers"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 0            6"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 1            6"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "       8"));   /* "second" ran 8 times */
    unlink(file);
}

static void test_json_reader(void)
{
    const char *err = NULL;
    size_t at = 0;
    const char ok[] = " {\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\ud83d\\ude00\\n\"],\"b\":{}} ";
    jval *v = json_parse(ok, sizeof ok - 1, &err, &at);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    const jval *a = json_get(v, "a");
    CU_ASSERT_FATAL(a && a->t == J_ARR && a->n == 6);
    CU_ASSERT_EQUAL(a->items[1].num, -2500);
    CU_ASSERT_EQUAL(a->items[2].t, J_BOOL);
    CU_ASSERT_EQUAL(a->items[4].t, J_NULL);
    CU_ASSERT_STRING_EQUAL(a->items[5].str, "\xc3\xa9\xf0\x9f\x98\x80\n");
    CU_ASSERT_EQUAL(json_get(v, "b")->t, J_OBJ);
    json_free(v);
    const char *bad[] = { "", "[1,]", "{\"a\" 1}", "\"open", "[1] 2", "{1:2}", "tru",
                          "\"\\x\"", "[-]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = NULL;
        v = json_parse(bad[i], strlen(bad[i]), &err, &at);
        CU_ASSERT_PTR_NULL(v);
        CU_ASSERT_PTR_NOT_NULL(err);
        json_free(v);
    }
}

/* Teardown: every test removed its files, so the scratch directory is empty; a file left
 * behind fails the suite. */
static int remove_dir(void)
{
    if (!dir[0])
        return 0;
    int rc = rmdir(dir);
    if (rc != 0)
        fprintf(stderr, "%s is not empty: a test left a file behind\n", dir);
    dir[0] = 0;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], EXIT_CHILD))
        return exit_child();
    static const shoal_test_case cases[] = {
        { "synthetic events make a valid Chrome trace", test_synthetic_events },
        { "a full ring keeps the newest events and counts the lost", test_ring_overflow },
        { "bad settings: fallback count, off when empty, unwritable path", test_bad_settings },
        { "shoal_init/shoal_shutdown write the file (%p = pid)", test_init_shutdown_writes },
        { "tasks run by the workers are recorded", test_tasks_recorded },
        { "tasks their submitter runs in shoal_get are recorded", test_tasks_run_by_submitter },
        { "shoal-timeline on a known trace", test_tool_known_trace },
        { "shoal-timeline errors", test_tool_errors },
        { "shoal-timeline on a trace the runtime wrote", test_tool_on_runtime_trace },
        { "the JSON reader", test_json_reader },
        { "failed, skipped, cancelled; flows; UTF-8 names; written on demand",
          test_states_flows_names },
        { "the one JSON string escaper", test_json_escaper },
        { "a program that returns from main without shutdown leaves its timeline",
          test_written_at_exit },
        { NULL, NULL },
    };
    return shoal_test_run_fixture("timeline", cases, (shoal_test_fixture){ NULL, remove_dir });
}
