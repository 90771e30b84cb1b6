/* env.c - strict parsing of shoal's environment variables: a value that is not one of the
 * accepted ones is never silently taken for something else ("SHOAL_QUIET=0" means off, not
 * "set"); it is a warning that names the variable and what it accepts. The table of every
 * variable is docs/ENVIRONMENT.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../include/shoal.h"
#include "log.h"

bool shoal__env_flag(const char *name, bool dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    if (strcmp(v, "0") == 0)
        return false;
    if (strcmp(v, "1") == 0)
        return true;
    shoal__log_at(SHOAL_LOG_WARN, "%s=%s is not 0 or 1: ignored (it stays %d)", name, v,
                  (int)dflt);
    return dflt;
}

uint64_t shoal__env_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno || *end || *v == '-' || x < lo || x > hi) {
        shoal__log_at(SHOAL_LOG_WARN, "%s=%s is not a number from %llu to %llu: ignored",
                      name, v, (unsigned long long)lo, (unsigned long long)hi);
        return dflt;
    }
    return x;
}
