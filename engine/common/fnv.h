/*
 * fnv.h - 64-bit FNV-1a: a quick, well-spread hash of a few bytes, for
 * hash tables (the bundle writer's keys) and fingerprints (what a resident
 * restore selects). Not a checksum: data is checked with CRC32C (crc32c.h).
 * libtrestle_mpi, which may use no engine header, hashes with a loop of its
 * own (engine/group/group_mpi.c).
 */
#ifndef TRESTLE_FNV_H
#define TRESTLE_FNV_H

#include <stddef.h>
#include <stdint.h>

#define TRESTLE__FNV_BASIS 0xcbf29ce484222325ull /* the hash of no bytes */

/* The hash `h` (TRESTLE__FNV_BASIS to start) continued over n bytes at p. */
static inline uint64_t trestle__fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif /* TRESTLE_FNV_H */
