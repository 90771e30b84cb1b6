/* errors.c - error names and the thread-local last-error message (messages: os/log.c).
 * shoal__err is the one place a failure's message is written; it is cold by design. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"
#include "errors.h"

/* The message lives on the heap, one buffer per thread that entered a runtime (made when
 * it registers, shoal__err_prepare, so that a failure only writes into it: a failure in a
 * signal handler allocates nothing) or failed a call: only this pointer is thread-local.
 * Every thread-local variable of the library is in its static TLS block (shoal__tls is
 * initial-exec), which a dlopen must find room for in glibc's small surplus (512 bytes by
 * default), so a 512-byte buffer here made dlopen fail next to another library's static
 * TLS (tests/test_dlopen.c checks the block's size). */
#define MSG_LEN 512
static __thread char *last_msg;
static __thread bool msg_lost;           /* the buffer could not be allocated */
static pthread_key_t msg_key;
static pthread_once_t msg_once = PTHREAD_ONCE_INIT;

static void msg_free(void *p)
{
    last_msg = NULL;   /* a later failure in another destructor allocates anew */
    free(p);
}

static void msg_key_make(void) { pthread_key_create(&msg_key, msg_free); }

static char *msg_buf(void)
{
    char *m = last_msg;
    if (likely(m != NULL))
        return m;
    pthread_once(&msg_once, msg_key_make);
    m = calloc(1, MSG_LEN);
    if (m && pthread_setspecific(msg_key, m) != 0) {
        free(m);
        m = NULL;
    }
    last_msg = m;
    msg_lost = m == NULL;
    return m;
}

void shoal__err_prepare(void)
{
    (void)msg_buf();
}

SHOAL_API const char *shoal_strerror(int code)
{
    switch (code) {
#define SHOAL__STR(name, val, msg) case (val): return "SHOAL_" #name ": " msg;
        SHOAL_ERRNO_MAP(SHOAL__STR)
#undef SHOAL__STR
    }
    return "SHOAL_E?: unknown error code";
}

SHOAL_API const char *shoal_last_error(void)
{
    if (msg_lost)
        return "out of memory: the message of this thread's last failure was lost";
    return last_msg ? last_msg : "";
}

int shoal__err(int code, const char *fmt, ...)
{
    char *m = msg_buf();
    if (m) {
        /* Formatted aside, then copied: an argument may be this thread's message itself
         * (shoal_last_error(), to wrap a cause), which vsnprintf must not write over while
         * it reads it. */
        char tmp[MSG_LEN];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
        memcpy(m, tmp, len);
        m[len] = 0;
    }
    return code;
}
