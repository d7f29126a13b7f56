/*
 * gpumodel.h - what the device restore suites share: one model written by
 * the project's writer (tensors of several dtypes over many chunks, 1-D to
 * 5-D ones to slice, a partitioned variable with odd partitions, a string
 * tensor), the slice ops every slice case uses, restore options small
 * enough that tensors span several chunks, and the check that a device
 * restore holds the bytes of a host one. CUDA builds only (the mock's too).
 */
#ifndef TRESTLE_GPUMODEL_H
#define TRESTLE_GPUMODEL_H

#include <stddef.h>

#include "trestle.h"

/* The number of usable devices; skips the test (with the runtime's reason)
 * when there is none. */
int gm_gpu_count(void);

/* Both readers, for the cases that run with each. */
extern const int gm_readers[2];

/* Restore options: 64 KiB chunks, 1 MiB staging, 3 threads, depth 8. */
void gm_opts(trestle_restore_options *o, int reader, int device);

/* Writes the model over `shards` shards; returns its prefix (malloc'd) and
 * sets *dir (malloc'd) to the directory to remove. */
char *gm_write_model(int shards, char **dir);

/* The sliced ops of the slice cases: names and shape_and_slices specs. */
#define GM_NSLICES 7
extern const char *const gm_slice_names[GM_NSLICES];
extern const char *const gm_slice_specs[GM_NSLICES];

/* Device bytes equal host bytes, op by op (skipped ops aside), read back
 * both with cudaMemcpy and through trestle_plan_read_op(). */
void gm_compare_plans(trestle_plan *host, trestle_plan *dev);

/* A plan of c's non-string tensors (strings have no device copy). */
trestle_plan *gm_plan_plain(trestle_checkpoint *c);

#endif
