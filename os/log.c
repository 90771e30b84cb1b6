/* log.c - where shoal's messages go: the sink set with shoal_set_log, else stderr. The level
 * test is one relaxed load; a message that passes it is formatted on the stack and handed
 * to the sink under a read lock, so that shoal_set_log (the write lock) returns only once
 * no call to the previous sink is in progress. Messages are cold: no fast path logs. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/shoal.h"
#include "log.h"

static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static shoal_log_fn sink;                /* under sink_lock; NULL = stderr */
static void *sink_arg;                   /* under sink_lock */
/* Relaxed, all three: each is a setting read on its own; the sink and its argument, which
 * must be seen together, are under the lock. */
static _Atomic int max_level = SHOAL_LOG_WARN;
static _Atomic bool level_chosen;        /* shoal_set_log was called: the environment no
                                            longer decides the level */
static _Atomic bool quiet;               /* SHOAL_QUIET=1: the stderr sink prints nothing */
static _Atomic bool env_read;
static __thread bool in_sink;            /* this thread runs the sink now */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A fork() child has one thread: a lock another thread of the parent held stays held in
 * it. Nobody holds it in the child, so make it anew. */
static void child_reset(void)
{
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
    memcpy(&sink_lock, &fresh, sizeof fresh);
    in_sink = false;
}
static void atfork_register(void) { pthread_atfork(NULL, NULL, child_reset); }

static int parse_level(void)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    const char *v = getenv("SHOAL_LOG_LEVEL");
    if (!v || !*v)
        return SHOAL_LOG_WARN;
    for (int i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0 || (v[0] == '0' + i && v[1] == 0))
            return i;
    shoal__log_at(SHOAL_LOG_WARN, "SHOAL_LOG_LEVEL=%s is not one of error, warn, info, debug "
                                  "(or 0-3): using warn", v);
    return SHOAL_LOG_WARN;
}

void shoal__log_env(void)
{
    /* First, so that a warning about a bad value below does not come back here. */
    atomic_store_explicit(&env_read, true, memory_order_relaxed);
    if (!atomic_load_explicit(&level_chosen, memory_order_relaxed))
        atomic_store_explicit(&max_level, parse_level(), memory_order_relaxed);
    atomic_store_explicit(&quiet, false, memory_order_relaxed);
    atomic_store_explicit(&quiet, shoal__env_flag("SHOAL_QUIET", false), memory_order_relaxed);
}

static void to_stderr(const char *msg)
{
    if (!atomic_load_explicit(&quiet, memory_order_relaxed))
        fprintf(stderr, "shoal: %s\n", msg);   /* one call: lines from threads do not mix */
}

static void logv(int level, const char *fmt, va_list ap)
{
    if (!atomic_load_explicit(&env_read, memory_order_relaxed))
        shoal__log_env();
    if (level > atomic_load_explicit(&max_level, memory_order_relaxed))
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (in_sink) {             /* logged by a shoal call the sink made: the lock is ours */
        to_stderr(msg);
        return;
    }
    pthread_once(&atfork_once, atfork_register);
    pthread_rwlock_rdlock(&sink_lock);
    if (sink) {
        in_sink = true;
        sink(level, msg, sink_arg);
        in_sink = false;
    } else {
        to_stderr(msg);
    }
    pthread_rwlock_unlock(&sink_lock);
}

void shoal__log_at(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    logv(level, fmt, ap);
    va_end(ap);
}

/* The warnings of code that predates levels. */
void shoal__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    logv(SHOAL_LOG_WARN, fmt, ap);
    va_end(ap);
}

SHOAL_API void shoal_set_log(shoal_log_fn fn, void *arg, int max)
{
    if (in_sink)
        return;   /* the write lock would wait for this very call */
    if (max < SHOAL_LOG_ERROR)
        max = SHOAL_LOG_ERROR;
    if (max > SHOAL_LOG_DEBUG)
        max = SHOAL_LOG_DEBUG;
    if (!atomic_load_explicit(&env_read, memory_order_relaxed))
        shoal__log_env();   /* SHOAL_QUIET still applies to the stderr sink */
    pthread_once(&atfork_once, atfork_register);
    pthread_rwlock_wrlock(&sink_lock);
    sink = fn;
    sink_arg = arg;
    atomic_store_explicit(&level_chosen, true, memory_order_relaxed);
    atomic_store_explicit(&max_level, max, memory_order_relaxed);
    pthread_rwlock_unlock(&sink_lock);
}
