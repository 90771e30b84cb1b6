/* hello.c - the smallest shoal program: put bytes into the store, get them back by ref.
 * Build against an installed shoal: cc hello.c $(pkg-config --cflags --libs shoal) */
#include <shoal.h>
#include <stdio.h>

int main(void)
{
    shoal_ref ref;                                   /* a 64-bit ID, nothing else */
    const void *data;
    size_t len;
    if (shoal_init(NULL) != 0 ||                     /* default store, a worker per core */
        shoal_put("hello, shoal", 13, &ref) != 0 ||  /* copy into the shared store */
        shoal_get(ref, &data, &len) != 0) {          /* zero-copy: a pointer into it */
        fprintf(stderr, "hello: %s\n", shoal_last_error());
        return 1;
    }
    printf("%s (%zu bytes)\n", (const char *)data, len);
    shoal_release(ref);                              /* freed with its last reference */
    return shoal_shutdown() != 0;
}
