/* tasks.h - small helpers the task suites share: longs in and out of tasks, naps, and
 * waiting for a live-object count to settle. */
#ifndef SHOAL_TEST_TASKS_H
#define SHOAL_TEST_TASKS_H

#include <string.h>
#include <time.h>

#include "check.h"

/* A fresh runtime with `workers` workers; max_objects 0 keeps the test config's table. */
static inline void start_workers(unsigned workers, size_t max_objects)
{
    shoal_config c = shoal_test_config();
    c.workers = workers;
    if (max_objects)
        c.max_objects = max_objects;
    test_start(c);
}

static inline void nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Argument i of a task as a long (0 if it is not one). */
static inline long arg_long(shoal_task *t, size_t i)
{
    const void *d;
    size_t n;
    long v = 0;
    if (shoal_task_arg(t, i, &d, &n) == 0 && n == sizeof v)
        memcpy(&v, d, sizeof v);
    return v;
}

/* r's bytes as a long (-1 unless they are one); *rc is the get's answer (bounded). */
static inline long get_long(shoal_ref r, int *rc)
{
    const void *d = NULL;
    size_t n = 0;
    *rc = get_within(r, &d, &n);
    long v = -1;
    if (*rc == 0 && n == sizeof v)
        memcpy(&v, d, sizeof v);
    return v;
}

/* A task drops its own reference on its result just after completing it, so a caller that
 * saw the result may still count it live for a moment: wait (bounded) for the count. */
static inline uint64_t live_settled(uint64_t want)
{
    uint64_t live = info_now().objects_live;
    for (int i = 0; i < 5000 && live != want; i++) {
        nap_ms(1);
        live = info_now().objects_live;
    }
    return live;
}

#endif
