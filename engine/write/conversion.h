/*
 * conversion.h - a planned conversion to safetensors (trestle_conversion),
 * shared by conversion.c (planning: what goes in, under which name, in
 * which dtype and shape) and writer_safetensors.c (writing the file).
 */
#ifndef TRESTLE_CONVERSION_H
#define TRESTLE_CONVERSION_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* One op of the conversion; strings and dims are owned. */
typedef struct cv_entry {
    char *name;          /* the op's name (the checkpoint key without ops) */
    char *key;           /* the key it reads; NULL when the plan skipped it */
    char *out_name;      /* its name in the file; NULL when skipped */
    char *spec;          /* its shape_and_slices, or NULL for the whole tensor */
    int skipped;         /* 0 or TRESTLE_SKIP_* */
    int dtype;           /* stored */
    int out_dtype;       /* in the file */
    int transposed;      /* written transposed */
    int rank;
    int64_t *dims;       /* shape in the file */
    uint64_t bytes;      /* bytes in the file */
} cv_entry;

struct trestle_conversion {
    const trestle_checkpoint *c;
    cv_entry *e;                  /* one per op of the first plan */
    size_t n;
    trestle_restore_options ropt; /* the caller's, kept for the write */
    uint64_t max_batch_bytes;     /* the caller's plan options the write plans with */
    uint64_t max_gap_bytes;
    int sync;                     /* fdatasync before the rename */
};

/* The safetensors spelling of a dtype ("BF16"), or NULL when it has none. */
const char *trestle__safetensors_dtype(int dtype);

#endif /* TRESTLE_CONVERSION_H */
