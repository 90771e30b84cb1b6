/* sockpath.c - where a published store's socket lives, and which names are allowed.
 *
 * The socket of store NAME is, in this order of preference:
 *   $SHOAL_RUN_DIR/shoal-NAME.sock     when SHOAL_RUN_DIR is set (tests, containers)
 *   $XDG_RUNTIME_DIR/shoal-NAME.sock   when XDG_RUNTIME_DIR is set (a per-user 0700 dir)
 *   /tmp/shoal-UID/NAME.sock           otherwise; the owner creates the directory 0700 and
 *                                      refuses one that is not a directory owned by this
 *                                      user with no group/other access (or a symlink)
 * Owner and clients must see the same environment. NAME is 1..64 bytes without '/', so it
 * cannot leave the directory; the socket itself is created 0600.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mproc.h"

#define NAME_MAX_BYTES 64

int shoal__name_check(const char *name)
{
    if (name == NULL)
        return shoal__err(SHOAL_EINVAL, "store name is NULL: pass the name the owner gave "
                                        "shoal_config.name");
    size_t n = strnlen(name, NAME_MAX_BYTES + 1);
    if (n == 0)
        return shoal__err(SHOAL_EINVAL, "store name is empty: use 1 to %d bytes without '/'",
                          NAME_MAX_BYTES);
    if (n > NAME_MAX_BYTES)
        return shoal__err(SHOAL_EINVAL, "store name is longer than %d bytes: use a shorter name",
                          NAME_MAX_BYTES);
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/' || (unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return shoal__err(SHOAL_EINVAL, "store name '%.*s' has a '/' or a control "
                                            "character: use a plain name", (int)n, name);
    return 0;
}

/* The /tmp fallback directory must be ours alone: anyone else could plant a socket there. */
static int check_dir(const char *dir, int make)
{
    struct stat st;
    if (make && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return shoal__err(errno == EACCES ? SHOAL_EPERM : SHOAL_EIO,
                          "cannot create the socket directory %s: %s", dir, strerror(errno));
    if (lstat(dir, &st) != 0)
        return shoal__err(SHOAL_ENOENT, "no store is published here (%s: %s)", dir,
                          strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
        return shoal__err(SHOAL_EPERM, "socket directory %s is not a private directory of "
                                       "uid %u (mode 0700): remove it or set SHOAL_RUN_DIR", dir,
                          (unsigned)geteuid());
    return 0;
}

int shoal__sock_path(const char *name, char *out, size_t cap, int make_dir)
{
    int rc = shoal__name_check(name);
    if (rc)
        return rc;
    const char *dir = getenv("SHOAL_RUN_DIR");
    if (!dir || !*dir)
        dir = getenv("XDG_RUNTIME_DIR");
    int n;
    if (dir && *dir) {
        struct stat st;
        const char *var = getenv("SHOAL_RUN_DIR") && *getenv("SHOAL_RUN_DIR") ? "SHOAL_RUN_DIR"
                                                                             : "XDG_RUNTIME_DIR";
        if (stat(dir, &st) != 0)
            return shoal__err(errno == ENOENT || errno == ENOTDIR ? SHOAL_ENOENT : SHOAL_EPERM,
                              "the socket directory %s=%s cannot be used (%s): create it, or "
                              "unset %s", var, dir, strerror(errno), var);
        if (!S_ISDIR(st.st_mode))
            return shoal__err(SHOAL_ENOENT, "the socket directory %s=%s is not a directory: "
                              "point it at a directory, or unset it", var, dir);
        n = snprintf(out, cap, "%s/shoal-%s.sock", dir, name);
    } else {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "/tmp/shoal-%u", (unsigned)geteuid());
        rc = check_dir(tmp, make_dir);
        if (rc)
            return rc;
        n = snprintf(out, cap, "%s/%s.sock", tmp, name);
    }
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= max)
        return shoal__err(SHOAL_EINVAL, "socket path for store '%s' is longer than %zu bytes: "
                                        "set SHOAL_RUN_DIR to a shorter directory", name, max - 1);
    return 0;
}
