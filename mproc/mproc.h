/* mproc.h - multi-process support's internal header: laying out and checking the
 * multi-process region of the segment (mproc.c), remote frees and the drain thread
 * (remote_free.c), dependents on other processes' objects (foreign_deps.c), the store's
 * name and socket path (sockpath.c), and publishing a store (publish.c). The region's
 * layout itself is layout/mpseg.h. Internal: never installed.
 */
#ifndef SHOAL_MPROC_MPROC_H
#define SHOAL_MPROC_MPROC_H

#include <stdatomic.h>
#include <stdint.h>

#include "../core/store.h"
#include "../layout/mpseg.h"

/* ---- the store's figures per process (mproc/mproc.c) ---------------------------------- */
/* Owner: a gone process has no object left; what its shard still counts was counted for
 * work it never finished: drop it (and from the estimate). */
SHOAL__HIDDEN void shoal__shard_settle(shoal__rt_t *rt, unsigned proc);
/* Owner: bring the bytes_used estimates back to the shards' sums. */
SHOAL__HIDDEN void shoal__estimate_resync(shoal__rt_t *rt);
/* Tests: when set, called by shoal__estimate_resync between its read of the estimates and
 * its read of the shards. */
extern SHOAL__HIDDEN void (*shoal__resync_hook)(void);

/* ---- segment set-up (mproc/mproc.c) ------------------------------------------------------ */
/* Bytes the extension region needs (rounded to pages) for a store of that geometry. */
SHOAL__HIDDEN uint64_t shoal__mp_bytes(unsigned nnodes, uint64_t node_span, uint64_t nslots);
/* Initialise the region at hdr->ext_off (owner, fresh zeroed segment) and make this process
 * index 0. Must run before the arenas are created: the allocator uses the chunk map. */
SHOAL__HIDDEN void shoal__mp_init(shoal__rt_t *rt);
/* Check a mapped segment's extension region against its length (clients, tools); on success
 * take its geometry (shoal__geo). 0 or -1. */
SHOAL__HIDDEN int shoal__mp_check(const struct shoal__hdr *h, uint64_t seg_len);

/* ---- remote frees (mproc/remote_free.c) ------------------------------------------------------ */
struct shoal__thr;
/* The last reference to slot idx is gone (its word is already FREE with the next generation
 * and marked FREEING by us) and its bytes belong to process `proc` != this one: queue it
 * for that process. Cold. */
SHOAL__HIDDEN void shoal__rfree_push(shoal__rt_t *rt, uint32_t idx, unsigned proc)
    __attribute__((cold));
/* The drain thread every attached process runs (and the owner of a published store).
 * sock: a client's connection to the owner (watched for the owner's end), else -1. */
SHOAL__HIDDEN int  shoal__drain_start(shoal__rt_t *rt, int sock);
SHOAL__HIDDEN void shoal__drain_stop(void);
/* Service threads (drain, publish) of the owner: */
/* Orders proc state changes by the publish thread against the owner's draining of stacks
 * whose process is gone. Owner-local. */
SHOAL__HIDDEN void shoal__procs_lock(void);
SHOAL__HIDDEN void shoal__procs_unlock(void);
/* Take process p's remote-free stack and give back each slot it claims (only slots marked
 * FREEING). mine: p is this process (its bytes go back to this process's allocator, checked
 * against its private records); else p is gone and its bytes are only uncounted (its chunks
 * are reclaimed whole later). The owner's own objects are freed from its records. Every
 * index and offset is checked.
 * Returns how many entries were taken. The slots land in t's cache: flush it after. */
SHOAL__HIDDEN size_t shoal__drain(shoal__rt_t *rt, struct shoal__thr *t, unsigned p, bool mine);
/* Owner, under the procs lock, after draining gone process p's stack: the entry p's drainer
 * had taken off its stack when it died, if it never claimed it (procs[p].draining). */
SHOAL__HIDDEN void shoal__drain_finish(shoal__rt_t *rt, struct shoal__thr *t, unsigned p);
/* Claim slot idx, whose word was w: true when it was FREEING and is now the caller's. */
SHOAL__HIDDEN bool shoal__claim(shoal__rt_t *rt, uint32_t idx, uint64_t w);
/* Owner: the object in slot idx (a slot the caller holds), of generation gen, is gone: if
 * the owner's records say its bytes are the owner's, free them (or forget its spill
 * extent), uncount it and return true; false when there is no record (not the owner's, or
 * not published). */
SHOAL__HIDDEN bool shoal__own_release(shoal__rt_t *rt, uint32_t idx, uint64_t gen);
/* A service thread of the owner dropped the last reference to slot idx (oldw: the word
 * before; the word is FREE and the slot the caller's): wake its waiters, and send its
 * bytes where they belong. */
SHOAL__HIDDEN void shoal__free_routed(shoal__rt_t *rt, struct shoal__thr *t, uint32_t idx,
                                      uint64_t oldw);
/* Wake process p's drain thread (bump its futex word). */
SHOAL__HIDDEN void shoal__wake_proc(shoal__rt_t *rt, unsigned p);

/* ---- dependents on other processes' objects (mproc/foreign_deps.c) ------------------------- */
/* shoal__dep_add for an object another process made (its slot s, not complete when looked
 * at): same contract (0 registered, 1 complete already, < 0). Any process. */
SHOAL__HIDDEN int  shoal__dep_add_foreign(shoal_ref ref, shoal__slot *s, shoal__dep *d);
/* The drain thread of every process: fire the foreign dependents whose object completed. */
SHOAL__HIDDEN void shoal__foreign_deps_scan(shoal__rt_t *rt);
/* Shutdown or detach (after the threads that fire them stopped): drop them unfired. */
SHOAL__HIDDEN void shoal__foreign_deps_forget(void);
/* In a fork() child: drop the parent's dependents unfired, touching only private memory. */
SHOAL__HIDDEN void shoal__foreign_deps_fork_child(void);
/* In a fork() child: the procs lock made anew (a thread that is not here may have held
 * it), the drain thread forgotten. */
SHOAL__HIDDEN void shoal__drain_fork_child(void);
/* An object someone waits on (its completing CAS saw WAITERS) completed or failed: wake
 * every process that has foreign dependents, which may be waiting on it. Cold. */
SHOAL__HIDDEN void shoal__notify_foreign(shoal__rt_t *rt) __attribute__((cold));

/* ---- publish (owner, mproc/publish.c); attach is runtime/attach.c ------------------- */
/* Validate a store name: 1..64 bytes, no '/'. 0 or SHOAL_EINVAL (message set). */
SHOAL__HIDDEN int  shoal__name_check(const char *name);
/* The socket path of a store name (see mproc/sockpath.c for where it lives). */
SHOAL__HIDDEN int  shoal__sock_path(const char *name, char *out, size_t cap, int make_dir);
/* Owner: listen on the name's socket and serve attaches; called by shoal_init before the
 * runtime is published. seg_fd/seg_len: the header+table memfd. */
SHOAL__HIDDEN int  shoal__publish_start(shoal__rt_t *rt, const char *name, int seg_fd,
                                        uint64_t seg_len);
/* Owner: stop serving, tell clients, stop the service threads. Idempotent; shoal_shutdown
 * calls it before the scheduler stops (and teardown again). */
SHOAL__HIDDEN void shoal__publish_stop(shoal__rt_t *rt);
/* Owner: drop this process's ledger (teardown, once no thread takes references). */
SHOAL__HIDDEN void shoal__publish_release(void);
SHOAL__HIDDEN void shoal__publish_forget(void);

/* ---- attach's client side (mproc/client.c) ------------------------------------------------- */
struct shoal__msg;
/* Connect to the store name's socket at path and check that this user serves it; *sock is
 * the connection. 0, or SHOAL_ENOENT (nothing listens), SHOAL_EPERM, SHOAL_EIO (message set). */
SHOAL__HIDDEN int  shoal__client_connect(const char *path, const char *name, int *sock);
/* Send HELLO (flags: SHOAL__HELLO_*) and read the owner's answer into *m with the
 * descriptors that came with it (fds[0..*nfds), ours to close). 0, or SHOAL_EPROTO,
 * SHOAL_EIO, or the refusal's code (message set); nothing is left open on failure. */
SHOAL__HIDDEN int  shoal__client_hello(int sock, const char *name, unsigned flags,
                                       struct shoal__msg *m, int *fds, unsigned *nfds);
/* Close fds[0..n) that are open (>= 0) and mark them closed. */
SHOAL__HIDDEN void shoal__fds_close(int *fds, unsigned n);
/* ---- refs in flight (mproc/inflight.c; the table is layout/mpseg.h's) ----------------- */
/* Owner: release every in-flight reference whose deadline passed (and, with sweep, free the
 * records that senders which died had reserved, or receivers which died had taken). t: the calling service thread's slot
 * cache (published owner), NULL for a thread with its own (private store: the I/O thread).
 * Returns the earliest deadline still pending (CLOCK_MONOTONIC ns), 0 = none. */
SHOAL__HIDDEN uint64_t shoal__xfer_expire(shoal__rt_t *rt, bool sweep, struct shoal__thr *t);
/* The earliest pending deadline, 0 = none (a thread computing its sleep). */
SHOAL__HIDDEN uint64_t shoal__xfer_due(void);
/* The owner, dropping what a gone process (proc, incarnation inc) held: the correction to
 * its ledger's count of the object whose entry names its window k (windows ws), 0 or -1:
 * -1 when the move that window names was made and the entry not yet settled
 * (layout/mpseg.h, "Windows"). Reads only what the gone process alone could move. */
SHOAL__HIDDEN int shoal__xfer_window_adjust(const struct shoal__wins *ws, unsigned k,
                                            unsigned proc, uint32_t inc);
/* In a fork() child: forget which of the parent's other threads held transfer windows. */
SHOAL__HIDDEN void shoal__xfer_fork_child(void);
/* Tests only: the thread (pthread_self) marked as holding window k of this process, 0 none. */
SHOAL__HIDDEN uintptr_t shoal__xfer_window_holder(unsigned k);
/* Tests only (mproc/inflight.c): see there. */
extern SHOAL__HIDDEN bool (*shoal__xfer_window_hook)(void);
extern SHOAL__HIDDEN void (*shoal__xfer_accept_hook)(void);

#endif
