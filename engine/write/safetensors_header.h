/*
 * safetensors_header.h - the layout and JSON header of a conversion's
 * safetensors file, and the checks on the names it holds.
 */
#ifndef TRESTLE_SAFETENSORS_HEADER_H
#define TRESTLE_SAFETENSORS_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "conversion.h"

/* One tensor of the file, in file order. */
typedef struct st_slot {
    size_t entry;     /* index into the conversion's entries */
    uint64_t offset;  /* from the start of the data section */
} st_slot;

/*
 * Lay out the conversion's kept entries: largest element first, then by
 * name, so each tensor starts at a multiple of its element size. First
 * every name is checked (valid UTF-8, not "__metadata__", no two alike),
 * so a refused name is reported before any file exists. On success
 * *slots (*count of them; free with trestle__bulk_free: a mapping of
 * its own from 256 KiB, so that none of it stays resident once freed),
 * the header's bytes (8-byte length, JSON, space padding to a multiple of
 * 8) and the data bytes are set. TRESTLE_E_INVALID_ARG names the tensor
 * whose name is refused.
 */
int trestle__safetensors_layout(const trestle_conversion *cv, st_slot **slots, size_t *count,
                                uint64_t *header_bytes, uint64_t *data_bytes, trestle_error *err);

/*
 * Format the header of that layout at `to` (exactly *header_bytes of
 * room), or with `to` NULL only count its bytes.
 * Returns the count, which is the layout's *header_bytes: the two passes
 * are one function. Never fails.
 */
size_t trestle__safetensors_header_write(const trestle_conversion *cv, const st_slot *slots,
                                         size_t count, uint8_t *to);

#endif /* TRESTLE_SAFETENSORS_HEADER_H */
