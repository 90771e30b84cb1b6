/* attach.c - the client's side: shoal_attach joins a store another process published, maps
 * its segment and node memfds at the same layout (offsets in the table resolve the same
 * bytes here, zero-copy), runs its own allocator over the shared span, and keeps the
 * connection open: the owner learns that we are gone when it closes, however we go.
 * Detaching (shoal_shutdown in a client) undoes it all; the owner then drops what we held.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../alloc/arena.h"
#include "../os/mem.h"
#include "../io/io.h"
#include "../mproc/mproc.h"
#include "../mproc/proto.h"
#include "../core/thread.h"
#include "runtime.h"

struct client {
    shoal__rt_t rt;               /* first: shoal__rt points here */
    int sock;
    int seg_fd;
    uint64_t seg_len;
    int holds_fd;
    void *holds;
    uint64_t holds_len;
    size_t deps_len;
};

static struct client *cur;

static uint64_t fd_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 0;
}

/* Map what the owner sent and check it against the WELCOME before trusting any of it. */
static int map_store(struct client *c, const struct shoal__welcome *w, int *fds)
{
    shoal__rt_t *rt = &c->rt;
    const char *bad = NULL;
    char vbad[160];
    c->seg_fd = fds[0];
    c->holds_fd = fds[1];
    fds[0] = fds[1] = -1;
    c->seg_len = w->seg_len;
    c->holds_len = w->holds_len;
    if (fd_size(c->seg_fd) < w->seg_len || fd_size(c->holds_fd) != w->holds_len)
        bad = "segment or ledger smaller than announced";
    for (unsigned n = 0; !bad && n < w->nnodes; n++)
        if (fd_size(fds[2 + n]) < w->node_span)
            bad = "a node arena smaller than announced";
    void *m = MAP_FAILED;
    void *at = bad ? NULL : shoal__seg_place(c->seg_len);   /* runtime.c: stale views */
    if (!bad && (m = mmap(at, c->seg_len, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0),
                          c->seg_fd, 0)) == MAP_FAILED)
        bad = "cannot map the segment";
    struct shoal__hdr *h = m == MAP_FAILED ? NULL : m;
    if (h) {
        rt->hdr = h;
        if (h->magic != SHOAL__MAGIC)
            bad = "the segment is not a shoal store's";
        else if (h->version != SHOAL__SEG_VERSION) {
            snprintf(vbad, sizeof vbad, "the store's segment is version %u and this library "
                     "speaks version %u: attach with the same shoal release as the owner",
                     h->version, SHOAL__SEG_VERSION);
            bad = vbad;
        } else if (h->nnodes != w->nnodes || h->node_span != w->node_span ||
                   h->nslots != w->nslots || shoal__mp_check(h, c->seg_len) != 0)
            bad = "the segment header disagrees with the handshake";
    }
    if (bad) {
        shoal__fds_close(fds + 2, w->nnodes);
        return shoal__err(SHOAL_EPROTO, "shoal_attach: %s", bad);
    }
    rt->slots = (shoal__slot *)((char *)h + h->slots_off);
    rt->nslots = h->nslots;
    rt->slot_cache = shoal__slot_cache_for(rt->nslots);
    rt->nnodes = h->nnodes;
    rt->node_span = h->node_span;
    rt->huge_kind = h->huge_kind;
    rt->proc = w->proc;
    rt->owner = false;
    rt->cfg.store_bytes = h->store_bytes;

    c->holds = mmap(NULL, c->holds_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                    c->holds_fd, 0);
    c->deps_len = (rt->nslots * sizeof(void *) + 4095) / 4096 * 4096;
    void *d = mmap(NULL, c->deps_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (c->holds == MAP_FAILED || d == MAP_FAILED) {
        if (c->holds == MAP_FAILED)
            c->holds = NULL;
        if (d != MAP_FAILED)
            munmap(d, c->deps_len);
        shoal__fds_close(fds + 2, w->nnodes);
        return shoal__err(SHOAL_ENOMEM, "shoal_attach: cannot map the ledger or the "
                                        "dependency table");
    }
    rt->deps = d;
    /* The allocator records the chunks it takes under our id. */
    shoal__chunk_me = shoal__chunk_id(w->proc, w->inc);
    int rc = shoal__arenas_attach(rt, fds + 2);   /* owns the node fds from here */
    for (unsigned n = 0; n < w->nnodes; n++)
        fds[2 + n] = -1;
    return rc;
}

static void client_free(struct client *c)
{
    shoal__rt_t *rt = &c->rt;
    shoal__arenas_destroy(rt);
    if (rt->deps)
        munmap((void *)rt->deps, c->deps_len);
    if (c->holds)
        munmap(c->holds, c->holds_len);
    if (rt->hdr)
        shoal__seg_retire(rt->hdr, c->seg_len);   /* runtime.c: stale views may read it */
    if (c->holds_fd >= 0)
        close(c->holds_fd);
    if (c->seg_fd >= 0)
        close(c->seg_fd);
    if (c->sock >= 0)
        close(c->sock);
    free(c);
}

int shoal__attach_ex(const char *name, unsigned flags)
{
    if (shoal__tls.worker >= 0)   /* the lifecycle lock may be held by a shutdown waiting for us */
        return shoal__err(SHOAL_EEXIST, "shoal_attach called inside a task: this process runs "
                                        "a store already");
    int rc = shoal__lifecycle_reentered("shoal_attach", SHOAL_EEXIST);
    if (rc)
        return rc;
    rc = shoal__name_check(name);
    if (rc)
        return rc;
    shoal__layers_wire();   /* before the lock, as in shoal_init */
    shoal__lifecycle_lock();
    if (atomic_load_explicit(&shoal__rt, memory_order_relaxed)) {
        shoal__lifecycle_unlock();
        return shoal__err(SHOAL_EEXIST, "already initialized or attached: call "
                                        "shoal_shutdown() first");
    }
    /* After the check above: with a runtime up the answer is SHOAL_EEXIST whatever the
     * socket directory holds (it may not exist yet). */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    rc = shoal__sock_path(name, path, sizeof path, 0);
    if (rc) {
        shoal__lifecycle_unlock();
        return rc == SHOAL_ENOENT ? shoal__err(SHOAL_ENOENT, "shoal_attach: no store named "
                                               "'%s' is published (%s)", name,
                                               shoal_last_error())
                                  : rc;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        shoal__lifecycle_unlock();
        return shoal__err(SHOAL_ENOMEM, "out of memory");
    }
    c->sock = c->seg_fd = c->holds_fd = -1;
    struct shoal__msg m;
    int fds[SHOAL__MAX_FDS];
    unsigned nfds = 0;
    rc = shoal__client_connect(path, name, &c->sock);
    if (!rc)
        rc = shoal__client_hello(c->sock, name, flags, &m, fds, &nfds);
    if (!rc)
        rc = map_store(c, &m.b.welcome, fds);
    shoal__rt_t *rt = &c->rt;
    uint64_t e = shoal__epoch_load(memory_order_relaxed) + 1;
    rt->epoch = e;   /* before the drain thread, which reads it */
    if (!rc)
        rc = shoal__io_start(rt);   /* file I/O (io/); a client spills nothing */
    if (!rc) {
        shoal__holds = c->holds;
        shoal__atfork_register();
        rc = shoal__drain_start(rt, c->sock);
        if (rc)
            shoal__holds = NULL;
    }
    if (rc) {
        shoal__io_stop(rt);
        client_free(c);   /* closing the socket tells the owner to clean up after us */
        shoal__lifecycle_unlock();
        return rc;
    }
    atomic_store_explicit(&shoal__rt, rt, memory_order_release);
    /* release: pairs with the acquire in shoal__tls_refresh (as shoal_init). */
    shoal__epoch_store(e, memory_order_release);
    shoal__forked_clear();
    cur = c;
    shoal__lifecycle_unlock();
    return 0;
}

SHOAL_API int shoal_attach(const char *name)
{
    return shoal__attach_ex(name, 0);
}

int shoal__detach(shoal__rt_t *rt)
{
    struct client *c = (struct client *)rt;
    /* The drain thread first: its scan of foreign dependents starts file writes (io/file.c
     * export_ready), which must not reach an I/O engine that is going away. */
    shoal__drain_stop();
    shoal__foreign_deps_forget();   /* the drain thread that fires them has stopped */
    shoal__io_stop(rt);   /* finishes this process's file I/O while the store is whole */
    shoal__epoch_store(rt->epoch + 1, memory_order_seq_cst);
    shoal__calls_quiesce();   /* runtime.c's shutdown step 3 */
    atomic_store_explicit(&shoal__rt, NULL, memory_order_release);
    shoal__threads_flush_all(rt);
    shoal__holds = NULL;
    /* The owner hands our chunks of the store to other processes once it has seen us go
     * and none of our objects is left: our allocator is done with them (and with its
     * mapping of the span) before the owner can see that. (With jemalloc, whose
     * bookkeeping lived in those chunks, the teardown after the close below read them while
     * another process was already writing there.) */
    shoal__arenas_destroy(rt);
    struct shoal__msg m;
    size_t n = shoal__msg_init(&m, SHOAL__MSG_BYE);
    if (send(c->sock, &m, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n) {
        /* The owner is gone already: nothing to tell. */
    }
    close(c->sock);   /* the owner now drops whatever our ledger says we still hold */
    c->sock = -1;
    cur = NULL;
    client_free(c);
    return 0;
}

void shoal__attach_forget(void)
{
    struct client *c = cur;
    if (!c)
        return;
    /* Our copies of the parent's descriptors: the owner must see the parent's connection
     * close when the parent goes, and the memfds must not outlive the store because of us. */
    if (c->sock >= 0)
        close(c->sock);
    if (c->seg_fd >= 0)
        close(c->seg_fd);
    if (c->holds_fd >= 0)
        close(c->holds_fd);
    if (c->rt.arenas)
        for (unsigned n = 0; n < c->rt.nnodes; n++)
            if (c->rt.arenas->fds[n] >= 0)
                close(c->rt.arenas->fds[n]);
    cur = NULL;
}
