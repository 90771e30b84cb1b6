/* errors.c - error names, the thread-local last-error message, and stderr notices.
 * shoal__err is the one place a failure's message is written; it is cold by design. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "shoal.h"
#include "errors.h"

static __thread char last_msg[512];

SHOAL_API const char *shoal_strerror(int code)
{
    switch (code) {
#define SHOAL__STR(name, val, msg) case (val): return "SHOAL_" #name ": " msg;
        SHOAL_ERRNO_MAP(SHOAL__STR)
#undef SHOAL__STR
    }
    return "SHOAL_E?: unknown error code";
}

SHOAL_API const char *shoal_last_error(void) { return last_msg; }

int shoal__err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return code;
}

void shoal__log(const char *fmt, ...)
{
    if (getenv("SHOAL_QUIET"))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("shoal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
