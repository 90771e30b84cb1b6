/* opts.h - the tools' shared getopt_long error message: what was wrong with the option
 * getopt_long just refused (it is called with opterr = 0 and a leading ':' in optstring),
 * so that every tool says it the same way before printing its usage. Header-only.
 */
#ifndef SHOAL_TOOLS_OPTS_H
#define SHOAL_TOOLS_OPTS_H

#include <getopt.h>
#include <stdio.h>

/* c is what getopt_long returned: ':' (a missing value) or '?' (an unknown option). */
static inline const char *tool_option_error(int c, char *const argv[], char *msg, size_t n)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    int is_long = arg[0] == '-' && arg[1] == '-';
    if (c == ':') {
        if (is_long || !optopt)
            snprintf(msg, n, "option '%s' needs a value", arg);
        else
            snprintf(msg, n, "option '-%c' needs a value", optopt);
    } else if (optopt && !is_long) {
        snprintf(msg, n, "unknown option '-%c'", optopt);
    } else {
        snprintf(msg, n, "unknown option '%s'", arg);
    }
    return msg;
}

#endif
