/*
 * deadline.h - the CLOCK_MONOTONIC time `ms` milliseconds from now, for
 * pthread_cond_timedwait() on a condition variable whose clock is
 * CLOCK_MONOTONIC (set with pthread_condattr_setclock): the pread reader's
 * and the remote fetcher's waits for a finished read.
 */
#ifndef TRESTLE_DEADLINE_H
#define TRESTLE_DEADLINE_H

#include <time.h>

static inline void trestle__deadline_after(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

#endif /* TRESTLE_DEADLINE_H */
