/* version.c - shoal_version(): the library's own version, so that a program can tell
 * whether the libshoal it runs with is the one its header came from. */
#include "store.h"

#define SHOAL__STR2(x) #x
#define SHOAL__STR(x) SHOAL__STR2(x)

SHOAL_API const char *shoal_version(void)
{
    return SHOAL__STR(SHOAL_VERSION_MAJOR) "." SHOAL__STR(SHOAL_VERSION_MINOR) "."
           SHOAL__STR(SHOAL_VERSION_PATCH);
}
