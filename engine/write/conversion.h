/*
 * conversion.h - a planned conversion to safetensors (trestle_conversion),
 * shared by conversion.c (planning: what goes in, under which name, in
 * which dtype and shape) and writer_safetensors.c (writing the file).
 */
#ifndef TRESTLE_CONVERSION_H
#define TRESTLE_CONVERSION_H

#include <stddef.h>
#include <stdint.h>

#include "slab.h"
#include "trestle.h"

/*
 * One op of the conversion: 56 bytes. A model of 100,000 tensors keeps one
 * per tensor through the write (issue 24), so nothing here is a malloc of
 * its own: `key` is the checkpoint's own string (the checkpoint outlives
 * the conversion, and the write's plan then shares it rather than copying
 * it), `name` and `out_name` are that string too when they equal it,
 * `dims` the checkpoint's shape when the file has the stored one, and
 * every other string and shape is in the conversion's slab. Only a name
 * set by trestle_conversion_set_name() is malloc'd (`out_owned`), as it
 * may be replaced again. Dtypes and ranks are below 256 (the checkpoint
 * keeps them in bytes).
 */
typedef struct cv_entry {
    const char *name;     /* the op's name (the checkpoint key without ops) */
    const char *key;      /* the key it reads; NULL when the plan skipped it */
    const char *out_name; /* its name in the file; NULL when skipped */
    const char *spec;     /* its shape_and_slices, or NULL for the whole tensor */
    const int64_t *dims;  /* shape in the file */
    uint64_t bytes;       /* bytes in the file */
    uint8_t skipped;      /* 0 or TRESTLE_SKIP_* */
    uint8_t dtype;        /* stored */
    uint8_t out_dtype;    /* in the file */
    uint8_t rank;
    uint8_t transposed;   /* written transposed */
    uint8_t out_owned;    /* out_name is malloc'd (set_name), freed with the entry */
} cv_entry;

struct trestle_conversion {
    const trestle_checkpoint *c;
    cv_entry *e;                  /* one per op of the first plan */
    size_t n;
    trestle__slab slab;           /* the entries' names, specs and shapes */
    size_t transposed;            /* entries written transposed */
    trestle_restore_options ropt; /* the caller's, kept for the write */
    trestle_plan *plan;           /* the first plan, kept for the first write to restore into
                                     the file (trestle_plan_set_dest), or NULL: freed at
                                     once when the file differs from what it restores (a
                                     dtype changed by as_dtype, string tensors left out), and
                                     spent by the write that uses it */
    uint64_t max_batch_bytes;     /* the caller's plan options a write plans with again */
    uint64_t max_gap_bytes;
    int sync;                     /* fdatasync before the rename */
};

/* The safetensors spelling of a dtype ("BF16"), or NULL when it has none. */
const char *trestle__safetensors_dtype(int dtype);

#endif /* TRESTLE_CONVERSION_H */
