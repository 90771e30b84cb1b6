/* errors.h - this thread's last error (the message shoal_last_error returns, os/errors.c)
 * and warnings (os/log.c, with the other levels and the environment's parsing in log.h).
 * Every layer reports through these. Internal. */
#ifndef SHOAL_OS_ERRORS_H
#define SHOAL_OS_ERRORS_H

#include "compiler.h"
#include "log.h"

/* Record this thread's message and return code: `return shoal__err(SHOAL_EINVAL, "...")`. */
SHOAL__HIDDEN int shoal__err(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), cold));
/* Make this thread's message buffer now, if it has none (a slow path: a thread's
 * registration), so that its failures allocate nothing, in a signal handler too. */
SHOAL__HIDDEN void shoal__err_prepare(void) __attribute__((cold));
/* A warning (fallbacks, things a user should fix): shoal__log_at(SHOAL_LOG_WARN, ...), which
 * goes to the shoal_set_log sink or stderr (os/log.c). */
SHOAL__HIDDEN void shoal__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
