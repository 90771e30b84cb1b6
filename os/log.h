/* log.h - shoal's messages (os/log.c) and strict parsing of its environment variables
 * (os/env.c). Internal. Every message goes through shoal__log_at, and so through the
 * sink set with shoal_set_log; docs/ENVIRONMENT.md lists every variable read here. */
#ifndef SHOAL_OS_LOG_H
#define SHOAL_OS_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* One line at level (SHOAL_LOG_*), if the level is on; cold, may take a lock. */
__attribute__((visibility("hidden"), format(printf, 2, 3), cold))
void shoal__log_at(int level, const char *fmt, ...);
/* Re-read SHOAL_LOG_LEVEL and SHOAL_QUIET (shoal_init does, so that each runtime starts
 * with the environment of its time). */
__attribute__((visibility("hidden"))) void shoal__log_env(void);

/* A switch: unset or empty = dflt, "0" = false, "1" = true; anything else is a warning that
 * names the variable and the accepted values, and dflt. */
__attribute__((visibility("hidden"))) bool shoal__env_flag(const char *name, bool dflt);
/* A decimal (or 0x hex) integer in [lo, hi]: unset or empty = dflt; anything else is a
 * warning naming the variable and the range, and dflt. */
__attribute__((visibility("hidden")))
uint64_t shoal__env_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t dflt);

#endif
