/* errors.c - error names and the thread-local last-error message (messages: core/log.c).
 * shoal__err is the one place a failure's message is written; it is cold by design. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt.h"

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
