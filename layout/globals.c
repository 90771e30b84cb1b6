/* globals.c - the variables every layer reads, defined at the bottom of the stack so that
 * reading them is never a call up: the runtime pointer and epoch, the thread's view, and
 * this process's copy of the multi-process region's geometry. runtime/ and mproc/ fill
 * them; core/thread.c refreshes the view. */
#include "mpseg.h"

/* The hot thread-local view (struct shoal__tls, shoal.h) starts all-zero but for worker -1:
 * nslots 0 sends every lookup to the slow path (layout/rt.h). */
SHOAL_API __thread struct shoal__tls shoal__tls __attribute__((tls_model("initial-exec"))) = {
    .worker = -1,
};
SHOAL__HIDDEN struct shoal__epoch_line shoal__epoch = { .nest = SHOAL__NEST_SHUT };
_Static_assert(sizeof(struct shoal__tls) == 64 && _Alignof(struct shoal__tls) == 64,
               "the thread's view is one cache line of its own");
shoal__rt_t *_Atomic shoal__rt;
SHOAL__HIDDEN _Atomic uint64_t *shoal__holds;
SHOAL__HIDDEN uint32_t shoal__chunk_me;
SHOAL__HIDDEN struct shoal__geo shoal__geo;
SHOAL__HIDDEN struct shoal__own *shoal__own;
