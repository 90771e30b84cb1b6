/* tbb_pin.h - what the oneTBB peers (bench/tasks_tbb, bench/actor_tbb) share: an observer
 * that pins each thread joining an arena to the core of its arena slot, as shoal pins its
 * workers, so neither runtime gains from the OS moving threads around. C++17 only.
 */
#ifndef SHOAL_BENCH_TBB_PIN_H
#define SHOAL_BENCH_TBB_PIN_H

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

class pin_observer : public tbb::task_scheduler_observer {
public:
    explicit pin_observer(tbb::task_arena &a) : tbb::task_scheduler_observer(a) { observe(true); }
    ~pin_observer() override { observe(false); }
    void on_scheduler_entry(bool) override
    {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int slot = tbb::this_task_arena::current_thread_index();
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)(slot % (ncpu > 0 ? ncpu : 1)), &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
};

#endif
