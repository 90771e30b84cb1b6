/* runtime.h - the runtime layer's own declarations (runtime/runtime.c, runtime/attach.c):
 * the segment's address space, fork handling, and the client's detach. The runtime layer is
 * the top of the stack: it starts and stops every layer below. Internal. */
#ifndef SHOAL_RUNTIME_RUNTIME_H
#define SHOAL_RUNTIME_RUNTIME_H

#include "../core/store.h"

/* The segment (header + table) is never unmapped, since a stale view may still read its
 * table: retire replaces it with a read-only zero mapping, and place returns such a range
 * of at least len bytes for the next segment of this process (MAP_FIXED), or NULL.
 * Lifecycle lock held (runtime.c). */
SHOAL__HIDDEN void  shoal__seg_retire(void *addr, size_t len);
SHOAL__HIDDEN void *shoal__seg_place(size_t len);

/* Fill the store's upcalls (core/store.h): once, before the first runtime of this process
 * is published (init and attach call it). */
SHOAL__HIDDEN void shoal__layers_wire(void);

/* In a child after fork(): the runtime inherited from the parent is abandoned (its threads
 * do not exist here and its allocator state is a copy), so the child can attach afresh.
 * Registered by every init and attach; the handler (runtime.c) calls shoal__publish_forget
 * (mproc/) and shoal__attach_forget (below) for a published or attached runtime. */
SHOAL__HIDDEN void shoal__atfork_register(void);
/* Client: shoal_shutdown of an attached runtime (lifecycle lock held). */
SHOAL__HIDDEN int  shoal__detach(shoal__rt_t *rt);
SHOAL__HIDDEN void shoal__attach_forget(void);

/* shoal_attach with handshake flags (SHOAL__HELLO_TOOL for tools/shoal-stat). */
SHOAL__HIDDEN int shoal__attach_ex(const char *name, unsigned flags);

#endif
