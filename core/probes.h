/* probes.h - USDT (statically defined tracing) probes for perf, bpftrace and SystemTap.
 * Provider "shoal"; each probe is one nop in the code plus an ELF note (readelf -n shows
 * them), so they cost nothing measurable until a tracer attaches. Without sys/sdt.h (Debian:
 * systemtap-sdt-dev) or with SHOAL_NO_PROBES defined they compile to nothing. Internal.
 *
 *   shoal:put         (id, len)                  an object was put (shoal_put, _put_batch)
 *   shoal:get_slow    (id, timeout_ns)           a get left the inline fast path
 *   shoal:task_start  (worker, result id, fn)    a worker starts a task
 *   shoal:task_end    (worker, result id, rc)    the task returned (rc non-zero = failed)
 */
#ifndef SHOAL_CORE_PROBES_H
#define SHOAL_CORE_PROBES_H

#include <stdint.h>

#if !defined(SHOAL_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define SHOAL__HAVE_PROBES 1
#endif
#endif

#ifdef SHOAL__HAVE_PROBES
#define SHOAL__PROBE2(name, a, b)    DTRACE_PROBE2(shoal, name, a, b)
#define SHOAL__PROBE3(name, a, b, c) DTRACE_PROBE3(shoal, name, a, b, c)
#else
#define SHOAL__PROBE2(name, a, b)    do { (void)(a); (void)(b); } while (0)
#define SHOAL__PROBE3(name, a, b, c) do { (void)(a); (void)(b); (void)(c); } while (0)
#endif

#define SHOAL__PROBE_PUT(id, len)                 SHOAL__PROBE2(put, (uint64_t)(id), (uint64_t)(len))
#define SHOAL__PROBE_GET_SLOW(id, timeout_ns)     SHOAL__PROBE2(get_slow, (uint64_t)(id), (int64_t)(timeout_ns))
#define SHOAL__PROBE_TASK_START(worker, id, fn)   SHOAL__PROBE3(task_start, (int)(worker), (uint64_t)(id), (uint64_t)(uintptr_t)(fn))
#define SHOAL__PROBE_TASK_END(worker, id, rc)     SHOAL__PROBE3(task_end, (int)(worker), (uint64_t)(id), (int)(rc))

#endif
