/*
 * ckpt_scan.h - the index's header and entries into an open checkpoint
 * (ckpt_scan.c), on two threads where the index is large enough.
 */
#ifndef TRESTLE_CKPT_SCAN_H
#define TRESTLE_CKPT_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt_types.h"
#include "sstable.h"

/*
 * Walk the table in index[0..index_len) (sstable.h) into c: the header
 * into its fields, every other entry decoded and checked (ckpt_entry.h)
 * into c->entries, in key order, with keys and shapes in c->slab. On
 * failure what was decoded stays in c for trestle_close(). `st` counts
 * the walk. Errors as the walk and the entry checks report them, and
 * TRESTLE_E_CORRUPT for a table without a header.
 */
int trestle__checkpoint_scan(trestle_checkpoint *c, const uint8_t *index, size_t index_len,
                             int verify, trestle__table_stats *st, trestle_error *err);

#endif /* TRESTLE_CKPT_SCAN_H */
