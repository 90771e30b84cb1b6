/* test_dlopen.c - libshoal as a library others load (issue 14, items 1 and 2): the shared
 * library dlopens from C and from Python's ctypes on a default system, its static TLS block
 * stays small (a dlopen must fit it in glibc's surplus of about 512 bytes, shared with every
 * other library loaded later), and linking shoal never changes the program's malloc: this
 * suite links libshoal.a statically, as the examples and tools do. */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

/* Sanitizer builds replace malloc themselves, and their libraries load only into programs
 * that start with the sanitizer's runtime: those checks need a plain build. */
#define SANITIZED (SAN_DIV > 1)

/* What a dlopen has to find room for in the static TLS surplus: libshoal's PT_TLS size.
 * The hot view (shoal__tls) and a few small words; never a buffer. */
#define TLS_MAX 256

extern char **environ;

static void lib_path(char *out, size_t n) { test_sibling(out, n, "lib", "libshoal.so"); }

/* p_memsz of the file's PT_TLS segment (0 if none), -1 if it cannot be read. */
static long pt_tls_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    Elf64_Ehdr eh;
    long size = -1;
    if (fread(&eh, sizeof eh, 1, f) == 1 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        size = 0;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (fseek(f, (long)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET) != 0 ||
                fread(&ph, sizeof ph, 1, f) != 1) {
                size = -1;
                break;
            }
            if (ph.p_type == PT_TLS)
                size = (long)ph.p_memsz;
        }
    }
    fclose(f);
    return size;
}

static void t_tls_block_small(void)
{
    char path[4096];
    lib_path(path, sizeof path);
    long tls = pt_tls_size(path);
    if (tls > TLS_MAX || tls < 0)
        fprintf(stderr, "%s: PT_TLS of %ld bytes (at most %d fit beside other libraries in "
                "glibc's static TLS surplus)\n", path, tls, TLS_MAX);
    CU_ASSERT(tls >= 0 && tls <= TLS_MAX);
}

/* In a child (this program started afresh, `--dlopen-child`, with the environment of a
 * default system: no GLIBC_TUNABLES, no preload): dlopen the library, run a store through
 * dlsym'd entry points, shut it down. The child's own static copy of the library is never
 * called: the dlopen'ed one has its own state. */
static int dlopen_child(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen(%s): %s\n", path, dlerror());
        return 10;
    }
    int (*init)(const shoal_config *) = (int (*)(const shoal_config *))dlsym(h, "shoal_init");
    int (*put)(const void *, size_t, shoal_ref *) =
        (int (*)(const void *, size_t, shoal_ref *))dlsym(h, "shoal_put");
    int (*get)(shoal_ref, const void **, size_t *) =
        (int (*)(shoal_ref, const void **, size_t *))dlsym(h, "shoal_get");
    int (*rel)(shoal_ref) = (int (*)(shoal_ref))dlsym(h, "shoal_release");
    int (*down)(void) = (int (*)(void))dlsym(h, "shoal_shutdown");
    const char *(*last)(void) = (const char *(*)(void))dlsym(h, "shoal_last_error");
    if (!init || !put || !get || !rel || !down || !last)
        return 11;
    shoal_ref r;
    if (put("x", 1, &r) != SHOAL_ENOTINIT || strstr(last(), "shoal_init") == NULL)
        return 12;   /* the error path writes the thread's message */
    shoal_config c = shoal_test_config();
    c.workers = 1;
    if (init(&c) != 0) {
        fprintf(stderr, "shoal_init through dlopen: %s\n", last());
        return 13;
    }
    const void *d = NULL;
    size_t n = 0;
    int bad = put("hello", 5, &r) != 0 || get(r, &d, &n) != 0 || n != 5 ||
              memcmp(d, "hello", 5) != 0 || rel(r) != 0;
    if (down() != 0 || bad)
        return 14;
    /* Loading shoal brought no allocator of its own. */
    void *m = dlsym(h, "malloc");
    Dl_info di;
    if (!m || m != dlsym(RTLD_DEFAULT, "malloc") || !dladdr(m, &di) ||
        (!SANITIZED && !strstr(di.dli_fname, "libc")))
        return 15;
    return 0;   /* never dlclose: its threads' exit hooks point into it */
}

static void t_dlopen_from_c(void)
{
    char path[4096];
    lib_path(path, sizeof path);
    /* exec, not a bare fork: this process runs a watchdog thread, and a threaded process's
     * fork child may not start threads under TSan. */
    char *argv[] = { "test_dlopen", "--dlopen-child", path, NULL };
    char *envp[512];
    size_t ne = 0;
    for (char **e = environ; *e && ne < 511; e++)
        if (strncmp(*e, "GLIBC_TUNABLES=", 15) != 0 && strncmp(*e, "LD_PRELOAD=", 11) != 0)
            envp[ne++] = *e;
    envp[ne] = NULL;
    pid_t pid = -1;
    CU_ASSERT_FATAL(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp) == 0);
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);   /* bounded: the child runs under alarm() */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "dlopen child: status 0x%x\n", st);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void t_dlopen_from_python(void)
{
    if (SANITIZED)
        SKIP_TEST("a sanitizer build's library loads only into a program started with the "
                  "sanitizer's runtime: run this in a plain build");
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        SKIP_TEST("python3 is not installed: cannot check ctypes.CDLL");
    char path[4096], cmd[8192], out[4096];
    lib_path(path, sizeof path);
    /* ctypes.CDLL is a dlopen; the calls check that the library's TLS works there. */
    snprintf(cmd, sizeof cmd,
             "env -u GLIBC_TUNABLES -u LD_PRELOAD timeout 60 python3 -c \""
             "import ctypes; l = ctypes.CDLL('%s'); "
             "l.shoal_strerror.restype = ctypes.c_char_p; "
             "l.shoal_last_error.restype = ctypes.c_char_p; "
             "r = ctypes.c_uint64(); rc = l.shoal_put(b'x', 1, ctypes.byref(r)); "
             "print(rc, l.shoal_strerror(rc).decode(), '|', l.shoal_last_error().decode())"
             "\" 2>&1", path);
    int rc = test_run_cmd(cmd, out, sizeof out);
    if (rc != 0 || strstr(out, "SHOAL_ENOTINIT") == NULL || strstr(out, "shoal_init()") == NULL)
        fprintf(stderr, "python3 ctypes.CDLL(%s): exit %d:\n%s\n", path, rc, out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "SHOAL_ENOTINIT"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shoal_init()"));
}

static int no_jemalloc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "jemalloc"))
        *(int *)arg = 1;
    return 0;
}

static void t_malloc_not_replaced(void)
{
    /* This program links libshoal.a: its malloc must still be the C library's. */
    Dl_info di;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    CU_ASSERT_FATAL(m != NULL && dladdr(m, &di) != 0);
    if (!SANITIZED && !strstr(di.dli_fname, "libc"))
        fprintf(stderr, "malloc comes from %s, not the C library\n", di.dli_fname);
    CU_ASSERT(SANITIZED || strstr(di.dli_fname, "libc") != NULL);
    int found = 0;
    dl_iterate_phdr(no_jemalloc, &found);
    CU_ASSERT_EQUAL(found, 0);
    /* And a store runs with it. */
    test_reset();
    shoal_config c = shoal_test_config();
    ASSERT_OK(shoal_init(&c));
    shoal_ref r;
    CHECK_OK(shoal_put("abc", 3, &r));
    CHECK_OK(shoal_release(r));
    CHECK_OK(shoal_shutdown());
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dlopen-child") == 0) {
        alarm(60);   /* a hang fails the test */
        return dlopen_child(argv[2]);
    }
    static const shoal_test_case cases[] = {
        { "libshoal.so's static TLS block is small", t_tls_block_small },
        { "dlopen from C runs a store", t_dlopen_from_c },
        { "ctypes.CDLL from Python loads it and calls work", t_dlopen_from_python },
        { "linking shoal keeps the C library's malloc", t_malloc_not_replaced },
        { NULL, NULL },
    };
    return shoal_test_run("dlopen", cases);
}
