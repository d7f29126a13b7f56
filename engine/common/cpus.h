/*
 * cpus.h - how many processors this thread may run on (engine/common/cpus.c).
 *
 * Work that splits in two (decoding a large index, populating a large
 * output file) is worth a second thread only when a second processor is
 * there to run it: under taskset or a cgroup's cpuset that is fewer than
 * the machine has.
 */
#ifndef TRESTLE_CPUS_H
#define TRESTLE_CPUS_H

/* Processors in this thread's affinity mask; 1 when it cannot be read. */
int trestle__usable_cpus(void);

#endif /* TRESTLE_CPUS_H */
