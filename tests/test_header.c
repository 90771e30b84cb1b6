/* test_header.c - the public headers compile warning-free for every user we promise: a
 * translation unit that uses include/shoal.h (argument macros, the inline get, option
 * structs as users initialise them) is built as C11 and C17 with gcc and clang, and (with
 * include/shoal.hpp too) as C++17 and C++20 with g++ and clang++, each at -Wall -Wextra -Wpedantic -Werror -O2
 * (optimised, so that warnings of the middle end show too). A compiler that is missing
 * fails the test unless SHOAL_TEST_NO_CLANG=1 says to skip clang (a visible SKIP). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

/* Uses every macro and inline function of shoal.h the way C users write them. */
static const char c_unit[] =
    "#include <shoal.h>\n"
    "#include <shoal.h>\n"   /* include guard */
    "static int fn(shoal_task *t) { return shoal_task_ctx(t) != 0; }\n"
    "int use(void);\n"
    "int use(void)\n"
    "{\n"
    "    long x = 1;\n"
    "    shoal_ref r = SHOAL_REF_NULL, out;\n"
    "    shoal_arg a[3] = { SHOAL_VALUE(&x, sizeof x), SHOAL_REF(r), SHOAL_REF_PASS(r) };\n"
    "    shoal_task_opts o = { 0 };\n"
    "    shoal_task_opts named = { .name = \"map\", .ctx = &x };\n"
    "    shoal_config c = { 0 };\n"
    "    shoal_config c2 = { .workers = 2 };\n"
    "    const void *d; size_t n;\n"
    "    int rc = shoal_init(&c) | shoal_init(&c2);\n"
    "    rc |= shoal_submit(fn, a, 3, &o, &out) | shoal_submit(fn, &SHOAL_REF(r), 1, &named, &out);\n"
    "    rc |= shoal_get(out, &d, &n);\n"
    "    rc |= shoal_get_timeout(out, 0, &d, &n);\n"
    "    unsigned char e[8]; shoal_ref_encode(out, e);\n"
    "    return rc + (int)shoal_ref_decode(e).id + (shoal_version() != 0);\n"
    "}\n";

/* The same in C++, as C++ users write it, with the C++ interface. */
static const char cxx_unit[] =
    "#include <shoal.h>\n"
    "#include <shoal.h>\n"
    "#include <shoal.hpp>\n"
    "#include <shoal.hpp>\n"
    "static int fn(shoal_task *t) { return shoal_task_ctx(t) != nullptr; }\n"
    "int use();\n"
    "int use()\n"
    "{\n"
    "    long x = 1;\n"
    "    shoal_ref r = SHOAL_REF_NULL, out;\n"
    "    shoal_arg a[3] = { SHOAL_VALUE(&x, sizeof x), SHOAL_REF(r), SHOAL_REF_PASS(r) };\n"
    "    shoal_task_opts o;\n"
    "    shoal_task_opts o2{};\n"
    "    o.name = \"map\";\n"
    "    shoal_config c{};\n"
    "    const void *d; size_t n;\n"
    "    int rc = shoal_init(&c);\n"
    "    rc |= shoal_submit(fn, a, 3, &o, &out) | shoal_submit(fn, a, 1, &o2, &out);\n"
    "    rc |= shoal_get(out, &d, &n);\n"
    "#if __cplusplus >= 202002L\n"
    "    shoal_task_opts named = { .name = \"map\", .ctx = &x };\n"
    "    shoal_config c2 = { .workers = 2 };\n"
    "    rc |= shoal_init(&c2) | shoal_submit(fn, a, 1, &named, &out);\n"
    "#endif\n"
    "    shoal::ref<long> v = shoal::put(2L);\n"
    "    auto w = shoal::submit([k = 3L](const long &a, shoal::bytes b) { return a * k + (long)b.size(); },\n"
    "                           v, shoal::bytes(\"ab\", 2));\n"
    "    return rc + (int)w.get();\n"
    "}\n";

static char dir[64];
static char root[PATH_MAX / 2];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

static int have(const char *compiler)
{
    char cmd[128], out[256];
    snprintf(cmd, sizeof cmd, "command -v %s 2>&1", compiler);
    return test_run_cmd(cmd, out, sizeof out) == 0;
}

/* Compile file with compiler at std; 1 if it built warning-free. */
static int builds(const char *compiler, const char *std, const char *file)
{
    char cmd[PATH_MAX + 512], out[8192];
    snprintf(cmd, sizeof cmd,
             "%s -std=%s -Wall -Wextra -Wpedantic -Werror -O2 -I'%s/include' -c '%s/%s' "
             "-o '%s/out.o' 2>&1", compiler, std, root, dir, file, dir);
    int rc = test_run_cmd(cmd, out, sizeof out);
    if (rc != 0 || out[0])
        fprintf(stderr, "\n%s -std=%s: exit %d:\n%s\n", compiler, std, rc, out);
    return rc == 0 && out[0] == 0;
}

static void check(const char *compiler, const char *const stds[], const char *file)
{
    write_file("unit.c", c_unit);
    write_file("unit.cc", cxx_unit);
    if (!have(compiler)) {
        const char *skip = getenv("SHOAL_TEST_NO_CLANG");
        if (strstr(compiler, "clang") && skip && strcmp(skip, "1") == 0) {
            char why[128];
            snprintf(why, sizeof why, "%s is not installed (apt-get install clang): not checked",
                     compiler);
            SKIP_TEST(why);
        }
        fprintf(stderr, "%s is not installed: apt-get install -y clang g++ (or set "
                        "SHOAL_TEST_NO_CLANG=1 to skip clang)\n", compiler);
        CU_FAIL_FATAL("compiler missing");
    }
    for (int i = 0; stds[i]; i++)
        CU_ASSERT_TRUE(builds(compiler, stds[i], file));
}

static const char *const c_stds[] = { "c11", "c17", NULL };
static const char *const cxx_stds[] = { "c++17", "c++20", NULL };

static void test_gcc_c(void) { check("gcc", c_stds, "unit.c"); }
static void test_clang_c(void) { check("clang", c_stds, "unit.c"); }
static void test_gxx(void) { check("g++", cxx_stds, "unit.cc"); }
static void test_clangxx(void) { check("clang++", cxx_stds, "unit.cc"); }

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/shoal-header-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* The repository: <root>/<build>/tests/test_header. */
    ssize_t len = readlink("/proc/self/exe", root, sizeof root - 1);
    root[len > 0 ? len : 0] = 0;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(root, '/');
        if (slash)
            *slash = 0;
    }
    static const shoal_test_case cases[] = {
        { "shoal.h as C11 and C17 with gcc", test_gcc_c },
        { "shoal.h as C11 and C17 with clang", test_clang_c },
        { "shoal.h (and shoal.hpp) as C++17 and C++20 with g++", test_gxx },
        { "shoal.h (and shoal.hpp) as C++17 and C++20 with clang++", test_clangxx },
        { NULL, NULL },
    };
    int rc = shoal_test_run("header", cases);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
