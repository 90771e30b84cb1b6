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
        shoal__tl_end((unsigned)(i % 3), i % 3 == 2 ? NULL : "a \"quoted\"\tname\\ that is "
                      "longer than thirty-one bytes", named_task, t0);
    }
    shoal__tl_mark(1, SHOAL__TL_STEAL, 0);
    shoal__tl_mark(0, SHOAL__TL_PARK, 0);
    shoal__tl_end(7, "no such worker: ignored", named_task, shoal__tl_begin());
    shoal__tl_stop();
    CU_ASSERT_FALSE(shoal__tl_on);
    CU_ASSERT_EQUAL(shoal__tl_begin(), 0);

    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, K);
    CU_ASSERT_EQUAL(c.instants, 2);
    CU_ASSERT_EQUAL(c.thread_names, 3);
    CU_ASSERT_EQUAL(c.total, 1 + 2 * 3 + K + 2);     /* process_name, thread name + sort */
    const jval *evs = json_get(root, "traceEvents");
    size_t fn_named = 0, quoted = 0, steals = 0;
    for (size_t i = 0; i < evs->n; i++) {
        const jval *e = &evs->items[i];
        const char *ph = json_str_of(e, "ph", ""), *name = json_str_of(e, "name", "");
        double tid = json_num_of(e, "tid", -1);
        CU_ASSERT_TRUE(tid >= 0 && tid < 3);
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
        shoal__tl_end(0, name, named_task, shoal__tl_begin());
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
    shoal__tl_end(0, "one", named_task, shoal__tl_begin());
    shoal__tl_stop();
    struct counts c;
    jval *root = load_trace(file, &c);
    CU_ASSERT_EQUAL(c.x, 1);
    CU_ASSERT_EQUAL(json_num_of(json_get(root, "otherData"), "events_per_worker", -1), 262144);
    json_free(root);
    unlink(file);

    /* Empty or unset: no timeline, nothing recorded. */
    setenv("SHOAL_TIMELINE", "", 1);
    shoal__tl_start(2);
    env_restore();
    CU_ASSERT_FALSE(shoal__tl_on);
    shoal__tl_end(0, "dropped", named_task, shoal__tl_begin());
    shoal__tl_stop();

    /* An unwritable path: logged, no file, no crash. */
    setenv("SHOAL_TIMELINE", "/nonexistent-shoal-dir/x.json", 1);
    shoal__tl_start(1);
    env_restore();
    CU_ASSERT_TRUE(shoal__tl_on);
    shoal__tl_end(0, "lost", named_task, shoal__tl_begin());
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
    CU_ASSERT_EQUAL(c.thread_names, cfg.workers);
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
static void test_tasks_recorded(void)
{
    test_reset();
    enum { N = 40 };
    char file[256];
    path_in_dir(file, sizeof file, "tasks.json");
    setenv("SHOAL_TIMELINE", file, 1);
    shoal_config cfg = shoal_test_config();
    int rc = shoal_init(&cfg);
    env_restore();
    ASSERT_OK(rc);
    shoal_ref r[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(shoal_submit(tl_task, NULL, 0,
                              i % 2 ? NULL : &(shoal_task_opts){ -1, "tl-named" }, &r[i]));
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
    CU_ASSERT_EQUAL(c.thread_names, cfg.workers);
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
        shoal__tl_end((unsigned)(i & 1), i < 4 ? "first" : "second", named_task,
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

/* Every test removed its files: the scratch directory is empty. */
static void test_cleanup(void)
{
    if (dir[0]) {
        int rc = rmdir(dir);
        if (rc != 0)
            fprintf(stderr, "%s is not empty: a test left a file behind\n", dir);
        CU_ASSERT_EQUAL(rc, 0);
        dir[0] = 0;
    }
}

int main(void)
{
    static const shoal_test_case cases[] = {
        { "synthetic events make a valid Chrome trace", test_synthetic_events },
        { "a full ring keeps the newest events and counts the lost", test_ring_overflow },
        { "bad settings: fallback count, off when empty, unwritable path", test_bad_settings },
        { "shoal_init/shoal_shutdown write the file (%p = pid)", test_init_shutdown_writes },
        { "tasks run by the workers are recorded", test_tasks_recorded },
        { "shoal-timeline on a known trace", test_tool_known_trace },
        { "shoal-timeline errors", test_tool_errors },
        { "shoal-timeline on a trace the runtime wrote", test_tool_on_runtime_trace },
        { "the JSON reader", test_json_reader },
        { "remove the scratch directory", test_cleanup },
        { NULL, NULL },
    };
    return shoal_test_run("timeline", cases);
}
