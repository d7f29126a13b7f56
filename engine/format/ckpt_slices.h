/*
 * ckpt_slices.h - partitioned tensors of an index (engine/format/ckpt_slices.c),
 * checked once every entry has been read.
 */
#ifndef TRESTLE_CKPT_SLICES_H
#define TRESTLE_CKPT_SLICES_H

#include "ckpt_types.h"

/*
 * After all entries are in: resolve each partitioned tensor's slice
 * entries, check that its stored slices neither overlap nor leave a gap
 * and that each slice's entry matches, then hide slice-part keys.
 * TRESTLE_E_CORRUPT naming the tensor (and the missing range for a gap).
 */
int trestle__entries_link_slices(trestle_checkpoint *c, trestle_error *err);

#endif /* TRESTLE_CKPT_SLICES_H */
