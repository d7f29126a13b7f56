/*
 * stub_checkpoint.c - trestle__checkpoint_lookup alone, for building
 * tests/test_plan.c by hand against engine/plan*.c without the rest of the
 * library (no protobuf-c, no shard files). Not a test suite: the name keeps
 * it out of CMake's tests/test_*.c glob, and the CMake build links the
 * real lookup (engine/ckpt_read.c) instead. Same contract: binary search
 * over entries in memcmp order, a shorter key before its extensions.
 */
#include <string.h>

#include "checkpoint.h"

size_t trestle__checkpoint_lookup(const trestle_checkpoint *c, const char *key, size_t key_len)
{
    size_t lo = 0, hi = c->num_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const trestle__entry *e = &c->entries[mid];
        size_t n = e->key_len < key_len ? e->key_len : key_len;
        int cmp = memcmp(e->key, key, n);
        if (cmp == 0)
            cmp = (e->key_len > key_len) - (e->key_len < key_len);
        if (cmp == 0)
            return mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (size_t)-1;
}
