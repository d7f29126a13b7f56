/*
 * string_tensor.h - DT_STRING tensor encoding (tf-checkpoint-format.md §4.3),
 * and the per-element checksums of DT_VARIANT tensors (§4.5):
 * varint64 lengths, a masked CRC of the lengths, then the bytes. The entry
 * CRC of a string tensor is NOT the CRC of its stored bytes: lengths enter
 * it as fixed-width native integers. These helpers compute and check it.
 */
#ifndef TRESTLE_STRING_TENSOR_H
#define TRESTLE_STRING_TENSOR_H

#include <stdint.h>

#include "buf.h"
#include "trestle.h"

/*
 * Walk the `n`-element string tensor stored in buf[0..size), check its
 * length checksum and structure, and return in *crc the CRC32C that the
 * entry's crc32c field stores masked. `elems` may be NULL; otherwise it
 * receives the n elements. TRESTLE_E_CORRUPT on any inconsistency (the
 * message says which, with TF's wording where it has one).
 */
int trestle__strings_walk(const uint8_t *buf, uint64_t size, uint64_t n, trestle_bytes *elems,
                          uint32_t *crc, trestle_error *err);

/* Encode n elements as TF's writer does into out; *crc receives the entry CRC (unmasked). */
int trestle__strings_encode(const trestle_bytes *elems, uint64_t n, trestle__buf *out,
                            uint32_t *crc, trestle_error *err);

/*
 * DT_VARIANT tensors (format doc §4.5): each element is a varint64 length,
 * a serialized VariantTensorDataProto (opaque to trestle) and its own
 * masked running checksum. walk checks every element's checksum and
 * returns the entry CRC (unmasked) in *crc; TRESTLE_E_CORRUPT or
 * TRESTLE_E_CRC_MISMATCH naming the element and its byte. encode writes
 * elements as TF's writer does.
 */
int trestle__variants_walk(const uint8_t *buf, uint64_t size, uint64_t n, uint32_t *crc,
                           trestle_error *err);
int trestle__variants_encode(const trestle_bytes *elems, uint64_t n, trestle__buf *out,
                             uint32_t *crc, trestle_error *err);

#endif /* TRESTLE_STRING_TENSOR_H */
