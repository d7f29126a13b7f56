/*
 * staging.h - the host memory a plan's restores stage bytes through: the
 * read buffers of the pool (engine/restore/pool.c) and the dtype conversion
 * buffers (engine/restore/restore_convert.c), kept in the plan from one restore to
 * the next.
 *
 * Why a cache: a device restore needs this memory pinned, and pinning
 * 256 MiB costs milliseconds to tens of milliseconds (cudaHostRegister
 * walks and locks every page): paid at every restore it would sit inside
 * time-to-first-tensor. Kept in the plan, the first restore pins it and
 * every later one, to any device (the pinning is portable), reuses it.
 * trestle_plan_free() unpins and frees it.
 *
 * How it is pinned: ordinary pages registered with cudaHostRegister,
 * which O_DIRECT and io_uring registered buffers take like any memory;
 * where the host refuses to register ordinary pages (some sandboxes and
 * kernels), memory from cudaHostAlloc instead, said in the stats.
 *
 * The plan keeps more than memory from one restore to the next: a CUDA
 * copier leaves its streams, events and device windows here (a kept
 * object per device, trestle__staging_keep), since making them costs
 * calls, and freeing a device window with cudaFree would synchronise the
 * whole device, in every restore.
 */
#ifndef TRESTLE_STAGING_H
#define TRESTLE_STAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "trestle.h"

enum trestle__staging_area {
    TRESTLE__STAGING_READS = 0,   /* the pool's read buffers */
    TRESTLE__STAGING_CONVERT = 1, /* the workers' dtype conversion buffers */
    TRESTLE__STAGING_AREAS = 2
};

typedef struct trestle__staging trestle__staging;

/*
 * Staging memory for `area`: `count` buffers of `each` bytes in one
 * region, page-aligned, pinned for device copies when `device` >= 0 and
 * placed on NUMA node `node` when it is >= 0 (best effort), in *out: the
 * cached area when it is large enough (and pinned, for a device, and
 * placed for `node`), else a new one (the old one freed). *sp is created on first
 * use. `faults` (tests only, else NULL) makes the reads area's allocation
 * fail. TRESTLE_E_NOMEM ("cannot allocate COUNT staging buffers of EACH
 * bytes", or the pinning's own message), TRESTLE_E_CUDA.
 */
int trestle__staging_get(trestle__staging **sp, int area, unsigned count, size_t each,
                         int device, int node, trestle__faults *faults, uint8_t **out,
                         trestle_error *err);

/* Whether every area in use is bound to NUMA node `node` (engine/memory/numa.h). */
bool trestle__staging_bound(const trestle__staging *s, int node);

/* How the memory is pinned, for the stats: "" (host or registered pages)
 * or why cudaHostAlloc memory is used instead. */
const char *trestle__staging_note(const trestle__staging *s);

/* What a copier keeps in the plan for the next restore onto the same
 * device (engine/restore/copy_cuda.c: streams, events, device windows),
 * as the copier's own struct that starts with this one. It carries its
 * own release, as an arena does (arena.h), so that trestle_plan_free()
 * need not know what it holds. */
typedef struct trestle__kept trestle__kept;
struct trestle__kept {
    void (*release)(trestle__kept *k); /* frees k and everything it holds */
    int device;                        /* the CUDA device it belongs to */
    trestle__kept *next;               /* the staging's list (its own) */
};

/* Take back what was kept for `device`: NULL when nothing (or s is NULL);
 * it is no longer kept. */
trestle__kept *trestle__staging_take(trestle__staging *s, int device);

/* Keep k for the next restore (in *sp, made on first use). What was kept
 * for the same device is released; when *sp cannot be made, k is. */
void trestle__staging_keep(trestle__staging **sp, trestle__kept *k);

/* Release everything kept, unpin and free everything; NULL is ignored.
 * No restore may use it. */
void trestle__staging_free(trestle__staging *s);

#endif /* TRESTLE_STAGING_H */
