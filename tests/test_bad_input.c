/* test_bad_input.c - every public call, fed bad input, answers its documented SHOAL_E* code
 * and a message that names the cause; nothing crashes, blocks or leaks. Table-driven: each
 * case is one call, the code it must return, and a piece of text its message must hold.
 * Groups: no runtime; bad configs for init and attach; calls with a runtime; the results
 * of file operations on unusable files (FIFOs, directories, missing files, /proc); calls
 * inside tasks; and the failure paths of tasks, which must leave no object behind.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/tasks.h"

#define SEC ((int64_t)1000000000)

/* Fixtures the cases use (made by each group's setup). */
static shoal_ref live, stale, forged, hosted, pending, failed_obj;
static const void *d;
static size_t n;
static void *vbuf;
static bool ready_flags[4];
static char tmpdir[64], fifo[96], regular[96], missing_dir[96];
static char longpath[PATH_MAX + 16];
static char bigname[80];
static unsigned char sink[8];
static char big_value[64];

static int t_nop(shoal_task *t)
{
    (void)t;
    return 0;
}

static int t_failing(shoal_task *t)
{
    return shoal_task_fail(t, "the task failed on purpose") ? 1 : 0;
}

struct bad_case {
    const char *what;
    int (*call)(void);
    int want;
    const char *cause;   /* text the message must contain */
};

/* ---- the cases ------------------------------------------------------------------------------
 * X(name, expression, expected code, text of the message) */

#define NO_RUNTIME(X)                                                                          \
    X(nr_put, shoal_put("x", 1, &live), SHOAL_ENOTINIT, "shoal_init")                          \
    X(nr_put_batch, shoal_put_batch(1, (const void *const[]){ "x" }, (const size_t[]){ 1 },    \
                                    &live), SHOAL_ENOTINIT, "shoal_init")                      \
    X(nr_create, shoal_create(8, &vbuf, &live), SHOAL_ENOTINIT, "shoal_init")                  \
    X(nr_seal, shoal_seal(live), SHOAL_ENOTINIT, "shoal_init")                                 \
    X(nr_get, shoal_get(live, &d, &n), SHOAL_ENOTINIT, "shoal_init")                           \
    X(nr_get_fn, (shoal_get)(live, &d, &n), SHOAL_ENOTINIT, "shoal_init")                      \
    X(nr_get_timeout, shoal_get_timeout(live, 0, &d, &n), SHOAL_ENOTINIT, "shoal_init")        \
    X(nr_wait, shoal_wait(&live, 1, 1, 0, NULL), SHOAL_ENOTINIT, "shoal_init")                 \
    X(nr_retain, shoal_retain(live), SHOAL_ENOTINIT, "shoal_init")                             \
    X(nr_release, shoal_release(live), SHOAL_ENOTINIT, "shoal_init")                           \
    X(nr_submit, shoal_submit(t_nop, NULL, 0, NULL, &live), SHOAL_ENOTINIT, "shoal_init")      \
    X(nr_put_file, shoal_put_file(regular, 0, 0, &live), SHOAL_ENOTINIT, "shoal_init")         \
    X(nr_write_file, shoal_write_file(live, regular, &live), SHOAL_ENOTINIT, "shoal_init")     \
    X(nr_advise_cold, shoal_advise_cold(live), SHOAL_ENOTINIT, "shoal_init")                   \
    X(nr_info, shoal_info_get(&(shoal_info){ 0 }), SHOAL_ENOTINIT, "shoal_init")               \
    X(nr_object_node, shoal_object_node(live), SHOAL_ENOTINIT, "shoal_init")                   \
    X(nr_worker_node, shoal_worker_node(0), SHOAL_ENOTINIT, "shoal_init")                      \
    X(nr_shutdown, shoal_shutdown(), SHOAL_ENOTINIT, "shoal_init")                             \
    X(nr_info_null, shoal_info_get(NULL), SHOAL_EINVAL, "out is NULL")                         \
    X(nr_stats_null, shoal_stats_get(NULL, sizeof(shoal_stats)), SHOAL_EINVAL, "out is NULL")  \
    X(nr_stats_size0, shoal_stats_get(&(shoal_stats){ 0 }, 0), SHOAL_EINVAL, "size is 0")

static int init_with(shoal_config c) { return shoal_init(&c); }
static shoal_config cfg(void) { return shoal_test_config(); }
static shoal_config cfg_huge(int h) { shoal_config c = cfg(); c.huge_pages = h; return c; }
static shoal_config cfg_store(size_t s) { shoal_config c = cfg(); c.store_bytes = s; return c; }
static shoal_config cfg_workers(unsigned w) { shoal_config c = cfg(); c.workers = w; return c; }
static shoal_config cfg_objects(size_t m) { shoal_config c = cfg(); c.max_objects = m; return c; }
static shoal_config cfg_name(const char *nm) { shoal_config c = cfg(); c.name = nm; return c; }
static shoal_config cfg_topo(const char *t) { shoal_config c = cfg(); c.topology = t; return c; }
static shoal_config cfg_spill(const char *s) { shoal_config c = cfg(); c.spill_dir = s; return c; }
static size_t ram_and_swap(void)
{
    struct sysinfo si;
    sysinfo(&si);
    return ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
}

/* SHOAL_RUN_DIR pointing at something that is not a directory, for one call. */
static int with_run_dir(const char *dir, int attach)
{
    const char *old = getenv("SHOAL_RUN_DIR");
    char keep[256] = "";
    if (old)
        snprintf(keep, sizeof keep, "%s", old);
    setenv("SHOAL_RUN_DIR", dir, 1);
    int rc = attach ? shoal_attach("trust1-bad-input") : init_with(cfg_name("trust1-bad-input"));
    if (old)
        setenv("SHOAL_RUN_DIR", keep, 1);
    else
        unsetenv("SHOAL_RUN_DIR");
    return rc;
}

#define BAD_CONFIG(X)                                                                          \
    X(init_huge, init_with(cfg_huge(7)), SHOAL_EINVAL, "huge_pages")                           \
    X(init_small, init_with(cfg_store(1000)), SHOAL_EINVAL, "too small")                       \
    X(init_64tib, init_with(cfg_store((size_t)1 << 47)), SHOAL_EINVAL, "too large")            \
    X(init_2p46, init_with(cfg_store((size_t)1 << 46)), SHOAL_ENOMEM, "RAM and swap")          \
    X(init_4x_ram, init_with(cfg_store(4 * ram_and_swap())), SHOAL_ENOMEM, "RAM and swap")     \
    X(init_workers, init_with(cfg_workers(5000)), SHOAL_EINVAL, "workers")                     \
    X(init_objects, init_with(cfg_objects((size_t)1 << 26)), SHOAL_EINVAL, "max_objects")      \
    X(init_objects_max, init_with(cfg_objects(SIZE_MAX)), SHOAL_EINVAL, "max_objects")         \
    X(init_name_empty, init_with(cfg_name("")), SHOAL_EINVAL, "empty")                         \
    X(init_name_slash, init_with(cfg_name("a/b")), SHOAL_EINVAL, "'/'")                        \
    X(init_name_ctrl, init_with(cfg_name("a\x01")), SHOAL_EINVAL, "control")                   \
    X(init_name_long, init_with(cfg_name(bigname)), SHOAL_EINVAL, "longer than 64")            \
    X(init_topo, init_with(cfg_topo("no such topology")), SHOAL_EINVAL, "topology")            \
    X(init_spill_missing, init_with(cfg_spill(missing_dir)), SHOAL_EINVAL, "spill_dir")        \
    X(init_spill_file, init_with(cfg_spill(regular)), SHOAL_EINVAL, "not a directory")         \
    X(init_spill_empty, init_with(cfg_spill("")), SHOAL_EINVAL, "spill_dir is empty")          \
    X(init_run_dir_missing, with_run_dir(missing_dir, 0), SHOAL_ENOENT, "SHOAL_RUN_DIR")       \
    X(init_run_dir_file, with_run_dir(regular, 0), SHOAL_ENOENT, "not a directory")            \
    X(attach_null, shoal_attach(NULL), SHOAL_EINVAL, "NULL")                                   \
    X(attach_empty, shoal_attach(""), SHOAL_EINVAL, "empty")                                   \
    X(attach_slash, shoal_attach("x/y"), SHOAL_EINVAL, "'/'")                                  \
    X(attach_long, shoal_attach(bigname), SHOAL_EINVAL, "longer than 64")                      \
    X(attach_nobody, shoal_attach("trust1-nobody-publishes-this"), SHOAL_ENOENT, "no store")   \
    X(attach_run_dir_missing, with_run_dir(missing_dir, 1), SHOAL_ENOENT, "SHOAL_RUN_DIR")   \
    /* the whole cause, not garbled: shoal_attach formatted its message from the one it was \
     * overwriting ("... is published (shoal_attach: no store named ... cannot be used") */ \
    X(attach_run_dir_cause, with_run_dir(missing_dir, 1), SHOAL_ENOENT,                        \
      "published (the socket directory SHOAL_RUN_DIR=")

static shoal_arg arg_value(const void *p, size_t len) { return SHOAL_VALUE(p, len); }
static int submit_args(const shoal_arg *a, size_t na) { return shoal_submit(t_nop, a, na, NULL, &pending); }
static int submit_two_values(size_t l1, size_t l2)
{
    shoal_arg a[2] = { arg_value(big_value, l1), arg_value(big_value, l2) };
    return submit_args(a, 2);
}
static int submit_kind(int kind) { shoal_arg a = { .kind = kind }; return submit_args(&a, 1); }
static int submit_node(int node)
{
    shoal_task_opts o = { .numa_node = node, .name = "bad-node" };
    shoal_ref r;
    return shoal_submit(t_nop, NULL, 0, &o, &r);
}
static int submit_ref(shoal_ref r, int kind) { shoal_arg a = { .kind = kind, .ref = r }; return submit_args(&a, 1); }
static int wait_huge(void) { return shoal_wait(&live, (size_t)INT32_MAX + 1, 1, 0, NULL); }
static int put_huge(void) { return shoal_put(big_value, (size_t)1 << 40, &pending); }
static int encode_null(void) { shoal_ref_encode(live, NULL); return SHOAL_EINVAL; }
static int decode_null(void) { return shoal_ref_decode(NULL).id == 0 ? SHOAL_EINVAL : 0; }
static int batch_bad_item(void)
{
    const void *const data[3] = { "a", NULL, "c" };
    const size_t lens[3] = { 1, 4, 1 };
    shoal_ref out[3];
    return shoal_put_batch(3, data, lens, out);
}
static int batch_big_item(void)
{
    const void *const data[2] = { "a", big_value };
    const size_t lens[2] = { 1, (size_t)1 << 40 };
    shoal_ref out[2];
    return shoal_put_batch(2, data, lens, out);
}

#define WITH_RUNTIME(X)                                                                        \
    X(put_out_null, shoal_put("x", 1, NULL), SHOAL_EINVAL, "out is NULL")                      \
    X(put_data_null, shoal_put(NULL, 5, &pending), SHOAL_EINVAL, "data is NULL")               \
    X(put_too_big, put_huge(), SHOAL_ENOMEM, "store")                                          \
    X(batch_data_null, shoal_put_batch(2, NULL, (const size_t[]){ 1, 1 }, &pending),           \
      SHOAL_EINVAL, "non-NULL")                                                                \
    X(batch_len_null, shoal_put_batch(1, (const void *const[]){ "x" }, NULL, &pending),        \
      SHOAL_EINVAL, "non-NULL")                                                                \
    X(batch_out_null, shoal_put_batch(1, (const void *const[]){ "x" }, (const size_t[]){ 1 },  \
                                      NULL), SHOAL_EINVAL, "non-NULL")                         \
    X(batch_item_null, batch_bad_item(), SHOAL_EINVAL, "data[1] is NULL")                      \
    X(batch_item_big, batch_big_item(), SHOAL_ENOMEM, "item 1")                                \
    X(create_buf_null, shoal_create(8, NULL, &pending), SHOAL_EINVAL, "non-NULL")              \
    X(create_out_null, shoal_create(8, &vbuf, NULL), SHOAL_EINVAL, "non-NULL")                 \
    X(create_too_big, shoal_create((size_t)1 << 40, &vbuf, &pending), SHOAL_ENOMEM, "store")   \
    X(seal_null, shoal_seal(SHOAL_REF_NULL), SHOAL_EINVAL, "null ref")                         \
    X(seal_forged, shoal_seal(forged), SHOAL_EINVAL, "invalid ref")                            \
    X(seal_host, shoal_seal(hosted), SHOAL_EINVAL, "invalid ref")                              \
    X(seal_stale, shoal_seal(stale), SHOAL_ESTALE, "freed")                                    \
    X(seal_sealed, shoal_seal(live), SHOAL_EEXIST, "already sealed")                           \
    X(seal_failed, shoal_seal(failed_obj), SHOAL_EEXIST, "only an object from shoal_create")   \
    X(get_null, shoal_get(SHOAL_REF_NULL, &d, &n), SHOAL_EINVAL, "null ref")                   \
    X(get_forged, shoal_get(forged, &d, &n), SHOAL_EINVAL, "invalid ref")                      \
    X(get_host, shoal_get(hosted, &d, &n), SHOAL_EINVAL, "invalid ref")                        \
    X(get_stale, shoal_get(stale, &d, &n), SHOAL_ESTALE, "freed")                              \
    X(get_data_null, shoal_get(live, NULL, &n), SHOAL_EINVAL, "non-NULL")                      \
    X(get_len_null, shoal_get(live, &d, NULL), SHOAL_EINVAL, "non-NULL")                       \
    X(get_fn_data_null, (shoal_get)(live, NULL, &n), SHOAL_EINVAL, "non-NULL")                 \
    X(get_failed, shoal_get(failed_obj, &d, &n), SHOAL_ETASK, "failed on purpose")             \
    X(get_timeout_poll, shoal_get_timeout(pending, 0, &d, &n), SHOAL_ETIMEDOUT, "not ready")   \
    X(get_timeout_short, shoal_get_timeout(pending, 1000, &d, &n), SHOAL_ETIMEDOUT, "not ready")\
    X(get_timeout_stale, shoal_get_timeout(stale, SEC, &d, &n), SHOAL_ESTALE, "freed")         \
    X(get_timeout_len_null, shoal_get_timeout(live, 0, &d, NULL), SHOAL_EINVAL, "non-NULL")    \
    X(wait_refs_null, shoal_wait(NULL, 1, 1, 0, NULL), SHOAL_EINVAL, "refs is NULL")           \
    X(wait_num_ready, shoal_wait(&live, 1, 2, 0, NULL), SHOAL_EINVAL, "num_ready")             \
    X(wait_n_huge, wait_huge(), SHOAL_EINVAL, "n is")                                          \
    X(wait_stale, shoal_wait(&stale, 1, 1, 0, ready_flags), SHOAL_ESTALE, "freed")             \
    X(wait_forged, shoal_wait(&forged, 1, 1, 0, ready_flags), SHOAL_EINVAL, "invalid ref")     \
    X(wait_null_ref, shoal_wait(&SHOAL_REF_NULL, 1, 1, 0, NULL), SHOAL_EINVAL, "null ref")     \
    X(retain_null, shoal_retain(SHOAL_REF_NULL), SHOAL_EINVAL, "null ref")                     \
    X(retain_forged, shoal_retain(forged), SHOAL_EINVAL, "invalid ref")                        \
    X(retain_host, shoal_retain(hosted), SHOAL_EINVAL, "invalid ref")                          \
    X(retain_stale, shoal_retain(stale), SHOAL_ESTALE, "freed")                                \
    X(release_null, shoal_release(SHOAL_REF_NULL), SHOAL_EINVAL, "null ref")                   \
    X(release_forged, shoal_release(forged), SHOAL_EINVAL, "invalid ref")                      \
    X(release_host, shoal_release(hosted), SHOAL_EINVAL, "invalid ref")                        \
    X(release_stale, shoal_release(stale), SHOAL_ESTALE, "freed")                              \
    X(object_node_null, shoal_object_node(SHOAL_REF_NULL), SHOAL_EINVAL, "null ref")           \
    X(object_node_stale, shoal_object_node(stale), SHOAL_ESTALE, "freed")                      \
    X(object_node_forged, shoal_object_node(forged), SHOAL_EINVAL, "invalid ref")              \
    X(advise_null, shoal_advise_cold(SHOAL_REF_NULL), SHOAL_EINVAL, "null ref")                \
    X(advise_stale, shoal_advise_cold(stale), SHOAL_ESTALE, "freed")                           \
    X(advise_forged, shoal_advise_cold(forged), SHOAL_EINVAL, "invalid ref")                   \
    X(submit_fn_null, shoal_submit(NULL, NULL, 0, NULL, &pending), SHOAL_EINVAL, "fn is NULL") \
    X(submit_out_null, shoal_submit(t_nop, NULL, 0, NULL, NULL), SHOAL_EINVAL, "out is NULL")  \
    X(submit_args_null, shoal_submit(t_nop, NULL, 2, NULL, &pending), SHOAL_EINVAL,            \
      "args is NULL")                                                                          \
    X(submit_nargs, shoal_submit(t_nop, (const shoal_arg *)big_value, 70000, NULL, &pending),  \
      SHOAL_EINVAL, "at most")                                                                 \
    X(submit_kind, submit_kind(7), SHOAL_EINVAL, "kind 7")                                     \
    X(submit_kind_neg, submit_kind(-1), SHOAL_EINVAL, "kind -1")                               \
    X(submit_value_null, submit_args(&(shoal_arg){ .kind = SHOAL_ARG_VALUE, .len = 5 }, 1),    \
      SHOAL_EINVAL, "VALUE data is NULL")                                                      \
    X(submit_value_max, submit_two_values(SIZE_MAX, 0), SHOAL_EINVAL, "limit")                 \
    X(submit_value_max1, submit_two_values(SIZE_MAX - 1, 0), SHOAL_EINVAL, "limit")            \
    X(submit_value_wrap, submit_two_values(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1), SHOAL_EINVAL,  \
      "limit")                                                                                 \
    X(submit_value_wrap16, submit_two_values(16, SIZE_MAX - 8), SHOAL_EINVAL, "limit")         \
    X(submit_value_2g, submit_two_values((size_t)1 << 31, 0), SHOAL_EINVAL, "limit")           \
    X(submit_ref_stale, submit_ref(stale, SHOAL_ARG_REF), SHOAL_ESTALE, "argument 0")          \
    X(submit_ref_forged, submit_ref(forged, SHOAL_ARG_REF), SHOAL_EINVAL, "argument 0")        \
    X(submit_pass_null, submit_ref(SHOAL_REF_NULL, SHOAL_ARG_REF_PASS), SHOAL_EINVAL,          \
      "null ref")                                                                              \
    X(submit_node_big, submit_node(5), SHOAL_EINVAL, "numa_node 5")                            \
    X(submit_node_neg, submit_node(-2), SHOAL_EINVAL, "numa_node -2")                          \
    X(put_file_null, shoal_put_file(NULL, 0, 0, &pending), SHOAL_EINVAL, "path is NULL")       \
    X(put_file_empty, shoal_put_file("", 0, 0, &pending), SHOAL_EINVAL, "path is empty")       \
    X(put_file_long, shoal_put_file(longpath, 0, 0, &pending), SHOAL_EINVAL, "PATH_MAX")       \
    X(put_file_out_null, shoal_put_file(regular, 0, 0, NULL), SHOAL_EINVAL, "out is NULL")     \
    X(put_file_overflow, shoal_put_file(regular, UINT64_MAX, 1, &pending), SHOAL_EINVAL,       \
      "overflows")                                                                             \
    X(put_file_too_big, shoal_put_file(regular, 0, (size_t)1 << 40, &pending), SHOAL_EINVAL,   \
      "larger than the whole store")                                                           \
    X(write_file_null, shoal_write_file(live, NULL, &pending), SHOAL_EINVAL, "path is NULL")   \
    X(write_file_empty, shoal_write_file(live, "", &pending), SHOAL_EINVAL, "path is empty")   \
    X(write_file_done_null, shoal_write_file(live, regular, NULL), SHOAL_EINVAL,               \
      "done is NULL")                                                                          \
    X(write_file_ref_null, shoal_write_file(SHOAL_REF_NULL, regular, &pending), SHOAL_EINVAL,  \
      "null ref")                                                                              \
    X(write_file_stale, shoal_write_file(stale, regular, &pending), SHOAL_ESTALE, "freed")     \
    X(write_file_forged, shoal_write_file(forged, regular, &pending), SHOAL_EINVAL,            \
      "invalid ref")                                                                           \
    X(info_null, shoal_info_get(NULL), SHOAL_EINVAL, "out is NULL")                            \
    X(worker_node_big, shoal_worker_node(99), SHOAL_EINVAL, "does not exist")                  \
    X(encode_null, encode_null(), SHOAL_EINVAL, "out is NULL")                                 \
    X(decode_null, decode_null(), SHOAL_EINVAL, "in is NULL")                                  \
    X(init_twice, init_with(cfg()), SHOAL_EEXIST, "shoal_shutdown() first")                    \
    X(attach_when_up, shoal_attach("trust1-anything"), SHOAL_EEXIST, "shoal_shutdown() first") \
    /* the runtime is checked before the socket directory: a missing one (/tmp/shoal-UID   \
     * before any store was published) does not turn the answer into SHOAL_ENOENT */       \
    X(attach_when_up_no_dir, with_run_dir(missing_dir, 1), SHOAL_EEXIST,                       \
      "shoal_shutdown() first")

#define DEFINE_CASE(name, expr, want, cause) static int c_##name(void) { return (expr); }
#define TABLE_ENTRY(name, expr, want, cause) { #name ": " #expr, c_##name, want, cause },
NO_RUNTIME(DEFINE_CASE)
BAD_CONFIG(DEFINE_CASE)
WITH_RUNTIME(DEFINE_CASE)
static const struct bad_case no_runtime[] = { NO_RUNTIME(TABLE_ENTRY) { NULL, NULL, 0, NULL } };
static const struct bad_case bad_config[] = { BAD_CONFIG(TABLE_ENTRY) { NULL, NULL, 0, NULL } };
static const struct bad_case with_runtime[] = { WITH_RUNTIME(TABLE_ENTRY) { NULL, NULL, 0, NULL } };

static int ncases;

/* Run each case: its code, and a message that is not empty and names the cause. */
static void run_table(const struct bad_case *cases, int inits)
{
    for (const struct bad_case *c = cases; c->what; c++) {
        /* A sentinel message first, so that a call that sets none is caught. */
        char sentinel[512];
        shoal_stats_get(NULL, 1);
        snprintf(sentinel, sizeof sentinel, "%s", shoal_last_error());
        int rc = c->call();
        const char *m = shoal_last_error();
        int fresh = strcmp(m, sentinel) != 0 || strstr(c->what, "shoal_stats_get") != NULL;
        int ok = rc == c->want && m[0] != 0 && fresh && strstr(m, c->cause) != NULL;
        if (!ok)
            fprintf(stderr, "%s\n    = %d (%s), want %d; message: \"%s\", want it to name "
                            "\"%s\"\n", c->what, rc, shoal_strerror(rc), c->want, m, c->cause);
        CU_ASSERT(ok);
        ncases++;
        if (inits && rc == 0 && c->want != 0)   /* an init that should have failed */
            (void)shoal_shutdown();
    }
}

static void make_files(void)
{
    if (tmpdir[0])
        return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/shoal-trust1-bad-%d", (int)getpid());
    CU_ASSERT_FATAL(mkdir(tmpdir, 0700) == 0 || errno == EEXIST);
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    snprintf(regular, sizeof regular, "%s/file", tmpdir);
    snprintf(missing_dir, sizeof missing_dir, "%s/missing", tmpdir);
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    FILE *f = fopen(regular, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("0123456789", f);
    fclose(f);
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = 0;
    memset(bigname, 'n', 65);
    bigname[65] = 0;
}

static void remove_files(void)
{
    char p[160];
    const char *names[] = { "fifo", "file", "out", "proc" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

static void test_no_runtime(void)
{
    test_reset();
    make_files();
    live = (shoal_ref){ (UINT64_C(7) << 32) | 1 };
    run_table(no_runtime, 0);
}

static void test_bad_configs(void)
{
    test_reset();
    make_files();
    run_table(bad_config, 1);
    CU_ASSERT_EQUAL(shoal_shutdown(), SHOAL_ENOTINIT);   /* none of them started a runtime */
}

static void make_fixtures(void)
{
    ASSERT_OK(shoal_put("live", 5, &live));
    ASSERT_OK(shoal_put("stale", 6, &stale));
    ASSERT_OK(shoal_release(stale));
    forged = (shoal_ref){ live.id + (UINT64_C(12345) << 32) };
    hosted = (shoal_ref){ live.id | (UINT64_C(1) << 29) };
    ASSERT_OK(shoal_create(8, &vbuf, &pending));   /* never sealed */
    ASSERT_OK(shoal_submit(t_failing, NULL, 0, NULL, &failed_obj));
    CU_ASSERT_EQUAL(shoal_get_timeout(failed_obj, 30 * SEC, &d, &n), SHOAL_ETASK);
}

static void test_with_runtime(void)
{
    start_workers(2, 0);
    make_files();
    make_fixtures();
    shoal_ref keep_pending = pending;
    shoal_info i0 = info_now();
    run_table(with_runtime, 0);
    pending = keep_pending;
    /* No case left an object or a byte behind. */
    shoal_info i1 = info_now();
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    /* and the store is still fine */
    ASSERT_OK(shoal_get(live, &d, &n));
    CU_ASSERT(n == 5 && memcmp(d, "live", 5) == 0);
    CHECK_OK(shoal_release(live));
    CHECK_OK(shoal_seal(pending));
    CHECK_OK(shoal_release(pending));
    CHECK_OK(shoal_release(failed_obj));
    ASSERT_OK(shoal_shutdown());
}

/* ---- files that cannot be read or written: the result objects say why ------------------- */

struct file_case {
    const char *what;
    int put;                 /* 1: put_file(path, offset, len); 0: write_file(live, path) */
    const char *path;
    uint64_t offset;
    size_t len;
    int want;
    const char *cause;
};

static void file_results(void)
{
    start_workers(2, 0);
    make_files();
    make_fixtures();
    char dir_as_file[160], no_such[160], in_missing[160];
    snprintf(dir_as_file, sizeof dir_as_file, "%s", tmpdir);
    snprintf(no_such, sizeof no_such, "%s/no-such-file", tmpdir);
    snprintf(in_missing, sizeof in_missing, "%s/x/y", missing_dir);
    const struct file_case cases[] = {
        { "put_file of a FIFO with no writer", 1, fifo, 0, 0, SHOAL_EIO, "FIFO" },
        { "put_file of a FIFO, len given", 1, fifo, 0, 10, SHOAL_EIO, "FIFO" },
        { "put_file of a missing file", 1, no_such, 0, 0, SHOAL_EIO, "No such file" },
        { "put_file of a directory", 1, dir_as_file, 0, 0, SHOAL_EIO, "Is a directory" },
        { "put_file offset past the end", 1, regular, 100, 0, SHOAL_EIO, "beyond the end" },
        { "put_file len past the end", 1, regular, 4, 100, SHOAL_EIO, "short read" },
        { "put_file of /dev/null to EOF", 1, "/dev/null", 0, 0, SHOAL_EIO, "pass len" },
        { "write_file to a FIFO with no reader", 0, fifo, 0, 0, SHOAL_EIO, "FIFO" },
        { "write_file to a directory", 0, dir_as_file, 0, 0, SHOAL_EIO, "Is a directory" },
        { "write_file into a missing directory", 0, in_missing, 0, 0, SHOAL_EIO, "No such file" },
    };
    shoal_info i0 = info_now();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct file_case *c = &cases[k];
        shoal_ref r;
        int rc = c->put ? shoal_put_file(c->path, c->offset, c->len, &r)
                        : shoal_write_file(live, c->path, &r);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) {
            fprintf(stderr, "%s: the call failed: %s\n", c->what, shoal_last_error());
            continue;
        }
        rc = shoal_get_timeout(r, 20 * SEC, &d, &n);
        const char *m = shoal_last_error();
        int ok = rc == c->want && strstr(m, c->cause) != NULL;
        if (!ok)
            fprintf(stderr, "%s: = %d (%s), want %d; message \"%s\" should name \"%s\"\n",
                    c->what, rc, shoal_strerror(rc), c->want, m, c->cause);
        CU_ASSERT(ok);
        ncases++;
        CHECK_OK(shoal_release(r));
    }
    /* A stuck file never stalls the others: after all that, a plain file still reads. */
    shoal_ref ok_ref;
    ASSERT_OK(shoal_put_file(regular, 0, 0, &ok_ref));
    ASSERT_OK(shoal_get_timeout(ok_ref, 20 * SEC, &d, &n));
    CU_ASSERT(n == 10 && memcmp(d, "0123456789", 10) == 0);
    CHECK_OK(shoal_release(ok_ref));
    /* A failed source: the write's done object fails and says so. */
    char out[160];
    snprintf(out, sizeof out, "%s/out", tmpdir);
    shoal_ref done;
    ASSERT_OK(shoal_write_file(failed_obj, out, &done));
    CU_ASSERT_EQUAL(shoal_get_timeout(done, 20 * SEC, &d, &n), SHOAL_ETASK);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "failed on purpose"));
    CHECK_OK(shoal_release(done));
    for (int i = 0; i < 200 && info_now().objects_live != i0.objects_live; i++)
        nap_ms(5);   /* the I/O thread drops its references just after completing */
    CU_ASSERT_EQUAL(info_now().objects_live, i0.objects_live);
    CHECK_OK(shoal_release(live));
    CHECK_OK(shoal_seal(pending));
    CHECK_OK(shoal_release(pending));
    CHECK_OK(shoal_release(failed_obj));
    ASSERT_OK(shoal_shutdown());
}

static void test_file_results(void)
{
    file_results();
    /* again without io_uring: the plain-syscall engine runs every open on the I/O thread */
    setenv("SHOAL_NO_IO_URING", "1", 1);
    file_results();
    unsetenv("SHOAL_NO_IO_URING");
}

/* A /proc file reports size 0: read to its end, not an empty object. */
static void test_proc_file(void)
{
    start_workers(1, 0);
    const char *files[] = { "/proc/self/status", "/proc/self/maps", "/proc/version" };
    const char *must[] = { "Name:", "[stack]", "Linux" };
    for (int k = 0; k < 3; k++) {
        shoal_ref r;
        ASSERT_OK(shoal_put_file(files[k], 0, 0, &r));
        int rc = shoal_get_timeout(r, 20 * SEC, &d, &n);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0) {
            if (n == 0 || !memmem(d, n, must[k], strlen(must[k])))
                fprintf(stderr, "%s: %zu bytes, without \"%s\"\n", files[k], n, must[k]);
            CU_ASSERT(n > 0 && memmem(d, n, must[k], strlen(must[k])) != NULL);
        }
        CHECK_OK(shoal_release(r));
    }
    /* with an offset */
    shoal_ref r;
    ASSERT_OK(shoal_put_file("/proc/self/status", 5, 0, &r));
    ASSERT_OK(shoal_get_timeout(r, 20 * SEC, &d, &n));
    CU_ASSERT(n > 0);
    CHECK_OK(shoal_release(r));
    /* A range (len > 0) is read as asked, not refused for the size of 0 the file reports
     * (it was: "short read: '/proc/version' has 0 bytes, fewer than offset 0 + len 5"). */
    const struct { const char *path; uint64_t off; size_t len; const char *want; } ranges[] = {
        { "/proc/version", 0, 5, "Linux" },
        { "/proc/self/status", 0, 5, "Name:" },
        { "/proc/self/status", 1, 3, "ame" },
    };
    for (int k = 0; k < 3; k++) {
        ASSERT_OK(shoal_put_file(ranges[k].path, ranges[k].off, ranges[k].len, &r));
        int rc = shoal_get_timeout(r, 20 * SEC, &d, &n);
        if (rc)
            fprintf(stderr, "%s [%llu, +%zu): %s\n", ranges[k].path,
                    (unsigned long long)ranges[k].off, ranges[k].len, shoal_last_error());
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0)
            CU_ASSERT(n == ranges[k].len && memcmp(d, ranges[k].want, n) == 0);
        CHECK_OK(shoal_release(r));
    }
    /* A range past the generated end still fails, naming the short read. */
    ASSERT_OK(shoal_put_file("/proc/version", 1 << 20, 5, &r));
    CU_ASSERT_EQUAL(shoal_get_timeout(r, 20 * SEC, &d, &n), SHOAL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(shoal_last_error(), "short read"));
    CHECK_OK(shoal_release(r));
    ASSERT_OK(shoal_shutdown());
}

/* ---- inside tasks ------------------------------------------------------------------------ */

enum { TC_N = 20 };
static int tc_rc[TC_N];
static char tc_msg[TC_N][512];

static void tc_note(int k, int rc)
{
    tc_rc[k] = rc;
    snprintf(tc_msg[k], sizeof tc_msg[k], "%s", shoal_last_error());
}

static int t_cases(shoal_task *t)
{
    const void *p;
    size_t l;
    shoal_ref r;
    void *b;
    tc_note(0, shoal_task_arg(t, 9, &p, &l));
    tc_note(1, shoal_task_arg(t, 0, NULL, &l));
    tc_note(2, shoal_task_arg(t, 1, &p, &l));             /* REF_PASS */
    tc_note(3, shoal_task_arg_ref(t, 0, &r));             /* a VALUE */
    tc_note(4, shoal_task_arg_ref(t, 7, &r));
    tc_note(5, shoal_task_arg_ref(t, 1, NULL));
    tc_note(6, shoal_task_arg(NULL, 0, &p, &l));
    tc_note(7, shoal_task_return(t, NULL, 5));
    tc_note(8, shoal_task_return_buf(t, 8, NULL));
    tc_note(9, shoal_task_return(NULL, "x", 1));
    tc_note(10, shoal_task_return_buf(NULL, 8, &b));
    tc_note(11, shoal_task_fail(NULL, "x"));
    tc_note(12, shoal_task_worker(NULL));
    tc_note(13, shoal_shutdown());
    tc_note(14, shoal_init(NULL));
    tc_note(15, shoal_attach("trust1-in-task"));
    tc_note(16, shoal_task_return(t, "ok", 3));
    tc_note(17, shoal_task_return(t, "again", 6));        /* at most once */
    tc_note(18, shoal_task_fail(t, "late"));
    tc_note(19, shoal_task_fail(t, "twice"));
    return 0;
}

static void test_task_calls(void)
{
    start_workers(2, 0);
    shoal_ref p, r;
    ASSERT_OK(shoal_put("p", 2, &p));
    shoal_arg a[2] = { SHOAL_VALUE("v", 2), SHOAL_REF_PASS(p) };
    ASSERT_OK(shoal_submit(t_cases, a, 2, NULL, &r));
    int rc = shoal_get_timeout(r, 30 * SEC, &d, &n);
    CU_ASSERT(rc == 0 || rc == SHOAL_ETASK);   /* it returned, then "failed" late */
    static const struct { int want; const char *cause; } want[TC_N] = {
        { SHOAL_EINVAL, "does not exist" }, { SHOAL_EINVAL, "non-NULL" },
        { SHOAL_EINVAL, "REF_PASS" }, { SHOAL_EINVAL, "is a VALUE" },
        { SHOAL_EINVAL, "does not exist" }, { SHOAL_EINVAL, "ref is NULL" },
        { SHOAL_EINVAL, "task is NULL" }, { SHOAL_EINVAL, "data is NULL" },
        { SHOAL_EINVAL, "non-NULL" }, { SHOAL_EINVAL, "task is NULL" },
        { SHOAL_EINVAL, "non-NULL" }, { SHOAL_EINVAL, "task is NULL" },
        { SHOAL_EINVAL, "task is NULL" }, { SHOAL_EBUSY, "inside a task" },
        { SHOAL_EEXIST, "inside a task" }, { SHOAL_EEXIST, "inside a task" },
        { 0, "" }, { SHOAL_EEXIST, "at most once" },
        { 0, "" }, { SHOAL_EEXIST, "already failed" },
    };
    for (int k = 0; k < TC_N; k++) {
        int ok = tc_rc[k] == want[k].want && (want[k].want == 0 ||
                                             (tc_msg[k][0] && strstr(tc_msg[k], want[k].cause)));
        if (!ok)
            fprintf(stderr, "task case %d: = %d, want %d; message \"%s\" should name \"%s\"\n",
                    k, tc_rc[k], want[k].want, tc_msg[k], want[k].cause);
        CU_ASSERT(ok);
        ncases++;
    }
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_release(p));
    ASSERT_OK(shoal_shutdown());
}

/* ---- the failure paths of tasks leave nothing behind ------------------------------------- */

static int fail_mode;
static int t_fail_paths(shoal_task *t)
{
    void *b;
    shoal_ref tmp;
    switch (fail_mode) {
    case 0: shoal_task_fail(t, "message"); return 0;
    case 1: shoal_task_fail(t, "message"); return 3;
    case 2: shoal_task_return(t, "abc", 3); shoal_task_fail(t, "after a return"); return 0;
    case 3: shoal_task_return_buf(t, 4096, &b); shoal_task_fail(t, "after a buffer"); return 0;
    case 4: shoal_task_return(t, "abc", 3); return 5;
    case 5: shoal_task_return_buf(t, 100000, &b); return 7;
    case 6: shoal_task_fail(t, NULL); return 0;
    case 7: shoal_task_fail(t, "first"); shoal_task_fail(t, "second"); return 0;
    case 8: shoal_put("x", 1, &tmp); shoal_task_fail(t, "after a put"); shoal_release(tmp); return 0;
    default: return 1;
    }
}

static void test_task_fail_paths_leak_nothing(void)
{
    start_workers(2, 0);
    shoal_info i0 = info_now();
    for (fail_mode = 0; fail_mode < 9; fail_mode++) {
        for (int chain = 0; chain < 2; chain++) {
            shoal_ref r, dep, dep2;
            ASSERT_OK(shoal_submit(t_fail_paths, NULL, 0, NULL, &r));
            shoal_arg a = SHOAL_REF(r);
            ASSERT_OK(shoal_submit(t_nop, &a, 1, NULL, &dep));     /* its argument failed */
            shoal_arg b[2] = { SHOAL_REF(dep), SHOAL_REF_PASS(r) };
            ASSERT_OK(shoal_submit(t_nop, b, 2, NULL, &dep2));
            if (chain) {   /* nobody looks: released at once */
                CHECK_OK(shoal_release(r));
                CHECK_OK(shoal_release(dep));
                CU_ASSERT_EQUAL(shoal_get_timeout(dep2, 30 * SEC, &d, &n), SHOAL_ETASK);
                CHECK_OK(shoal_release(dep2));
            } else {
                CU_ASSERT_EQUAL(shoal_get_timeout(r, 30 * SEC, &d, &n), SHOAL_ETASK);
                CU_ASSERT(strlen(shoal_last_error()) > 0);
                CU_ASSERT_EQUAL(shoal_get_timeout(dep2, 30 * SEC, &d, &n), SHOAL_ETASK);
                CHECK_OK(shoal_release(r));
                CHECK_OK(shoal_release(dep));
                CHECK_OK(shoal_release(dep2));
            }
        }
    }
    shoal_info i1 = info_now();
    for (int i = 0; i < 500 && (i1.objects_live != i0.objects_live ||
                                i1.bytes_used != i0.bytes_used); i++) {
        nap_ms(2);   /* a task drops its own reference just after completing */
        i1 = info_now();
    }
    if (i1.objects_live != i0.objects_live || i1.bytes_used != i0.bytes_used)
        fprintf(stderr, "left behind: %lld objects, %lld bytes\n",
                (long long)(i1.objects_live - i0.objects_live),
                (long long)(i1.bytes_used - i0.bytes_used));
    CU_ASSERT_EQUAL(i1.objects_live, i0.objects_live);
    CU_ASSERT_EQUAL(i1.bytes_used, i0.bytes_used);
    ASSERT_OK(shoal_shutdown());
}

static void test_count(void)
{
    fprintf(stderr, "%d bad-input cases\n", ncases);
    CU_ASSERT(ncases >= 100);
    remove_files();
}

int main(void)
{
    (void)sink;
    static const shoal_test_case cases[] = {
        { "calls without a runtime", test_no_runtime },
        { "bad configs for init and attach", test_bad_configs },
        { "bad arguments with a runtime", test_with_runtime },
        { "unusable files: the result says why", test_file_results },
        { "a /proc file is read to its end, or the range asked", test_proc_file },
        { "bad calls inside a task", test_task_calls },
        { "task failure paths leave nothing behind", test_task_fail_paths_leak_nothing },
        { "at least 100 cases ran", test_count },
        { NULL, NULL },
    };
    return shoal_test_run("bad_input", cases);
}
