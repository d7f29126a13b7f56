/*
 * group.h - what the files of libtrestle_mpi share (engine/group_mpi.c:
 * the group, its collectives and the restore's order of steps;
 * engine/group_exchange.c: the destination runs of each rank's part and
 * the broadcasts that move them). libtrestle_mpi is a client of the public
 * API (trestle.h) only, like the CLI: nothing here reaches into the
 * engine's private headers, and libtrestle never sees MPI.
 */
#ifndef TRESTLE_GROUP_H
#define TRESTLE_GROUP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* A destination run (trestle_run_fn): bytes [offset, offset + length) of op. */
typedef struct trestle__group_run {
    size_t op;
    uint64_t offset, length;
} trestle__group_run;

/* The runs of one rank's part, in extent order. */
typedef struct trestle__group_runs {
    trestle__group_run *v;
    size_t n, cap;
    uint64_t bytes;             /* sum of the lengths */
} trestle__group_runs;

/* Fill err with code and a formatted message (no key, path or offset). */
int trestle__group_error(trestle_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The runs of extents [first, end) of p, appended to out. TRESTLE_E_NOMEM. */
int trestle__group_collect(const trestle_plan *p, size_t first, size_t end,
                           trestle__group_runs *out, trestle_error *err);

/* Every rank broadcasts the bytes of its runs (runs[r] for rank r) from
 * its destinations to the same places in everyone else's: plan p restored,
 * op destinations in host memory. TRESTLE_E_NOMEM or TRESTLE_E_GROUP. */
int trestle__group_exchange(MPI_Comm comm, int rank, int size, const trestle_plan *p,
                            const trestle__group_runs *runs, trestle_error *err);

#endif /* TRESTLE_GROUP_H */
