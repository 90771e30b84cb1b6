/* stats.c - shoal_stats_get, which folds the lookup counters of every thread (kept in each
 * thread's record, core/store.h and core/thread.c, and in the fast_gets field of the
 * inline view in shoal.h) with the store's own figures; and the store's usage figures.
 */
#include <string.h>

#include "stats.h"
#include "thread.h"
#include "../layout/mpseg.h"
#include "../layout/segment.h"

#define FAST SHOAL__CNT_N                 /* index of the inline fast-path count in sums */

SHOAL_API int shoal_stats_get(shoal_stats *out, size_t size)
{
    if (out == NULL || size == 0)
        return shoal__err(SHOAL_EINVAL, "shoal_stats_get: %s", out ? "size is 0: pass "
                          "sizeof(shoal_stats)" : "out is NULL");
    uint64_t sum[SHOAL__CNT_N + 1] = { 0 };
    shoal__recs_sum(sum);

    shoal_stats s;
    memset(&s, 0, sizeof s);
    s.get_fast = sum[FAST];
    s.get_slow = sum[SHOAL__CNT_GET_SLOW];
    s.tls_refresh = sum[SHOAL__CNT_REFRESH];
    s.stale_ids = sum[SHOAL__CNT_STALE];
    s.invalid_ids = sum[SHOAL__CNT_INVALID];
    s.get_waits = sum[SHOAL__CNT_GET_WAIT];
    s.wait_sleeps = sum[SHOAL__CNT_WAIT_SLEEP];
    if (shoal__enter() == 0) {   /* spilling counters (io/spill.c): the store's */
        shoal__up.io_stats(&s);
        shoal__leave();
    }
    /* A caller built against an older header gets its prefix; a newer one reads zeros for
     * counters this library does not have. */
    size_t n = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, n);
    if (size > n)
        memset((char *)out + n, 0, size - n);
    return 0;
}

void shoal__store_usage(shoal__rt_t *rt, size_t *bytes_used, uint64_t *objects_live)
{
    int64_t credit[SHOAL__MAX_NODES] = { 0 }, objs[SHOAL__MAX_NODES] = { 0 };
    size_t b = 0;
    uint64_t o = 0;
    if (rt->batched) {
        shoal__threads_pending(rt, credit, objs);
        for (unsigned n = 0; n < rt->nnodes; n++) {
            b += atomic_load_explicit(&rt->hdr->node[n].bytes_used, memory_order_relaxed) -
                 (uint64_t)credit[n];
            o += atomic_load_explicit(&rt->hdr->node[n].objects, memory_order_relaxed) +
                 (uint64_t)objs[n];
        }
    } else {   /* published or attached: each process's share (layout/mpseg.h) */
        shoal__shards_sum(rt, credit, objs);
        for (unsigned n = 0; n < rt->nnodes; n++) {
            b += (uint64_t)credit[n];
            o += (uint64_t)objs[n];
        }
    }
    *bytes_used = b;
    *objects_live = o;
}
