/* errors.h - this thread's last error (the message shoal_last_error returns) and one-line
 * notices to stderr (os/errors.c). Every layer reports through these. Internal. */
#ifndef SHOAL_OS_ERRORS_H
#define SHOAL_OS_ERRORS_H

#include "compiler.h"

/* Record this thread's message and return code: `return shoal__err(SHOAL_EINVAL, "...")`. */
SHOAL__HIDDEN int shoal__err(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), cold));
/* One-line notice to stderr (fallbacks, warnings), unless SHOAL_QUIET is set. */
SHOAL__HIDDEN void shoal__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
