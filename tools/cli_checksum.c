/*
 * cli_checksum.c - FNV-1a (64-bit) checksums of restored bytes, one code
 * for `trestle restore --checksum` and `trestle-mpi restore --checksum`,
 * so that a restore alone and a group restore of the same ops print the
 * same whole-model value.
 *
 * A tensor's checksum is FNV-1a over its restored bytes, from the offset
 * basis; the whole model's is FNV-1a carried on over every restored op's
 * bytes in op order (skipped ops add nothing). Device tensors are read back
 * into host memory first (trestle_plan_read_op). FNV-1a is not a CRC32C:
 * it is computed here, on the restored bytes (after any conversion), so
 * it checks what landed, not what the checkpoint stored.
 */
#include <stdlib.h>

#include "cli.h"

uint64_t cli_fnv1a(uint64_t h, const void *data, uint64_t n)
{
    const uint8_t *b = data;
    for (uint64_t k = 0; k < n; k++)
        h = (h ^ b[k]) * 1099511628211ull;
    return h;
}

int cli_checksum_op(const trestle_plan *p, size_t i, uint64_t *op_hash, uint64_t *chain)
{
    trestle_plan_op_info o;
    if (trestle_plan_get_op(p, i, &o) != TRESTLE_OK)
        return -1;
    *op_hash = CLI_FNV1A_BASIS;
    if (!o.data || o.bytes == 0)
        return 0;
    const void *b = o.data;
    void *copy = NULL;
    if (o.device >= 0) {
        copy = malloc(o.bytes);
        if (!copy || trestle_plan_read_op(p, i, copy, o.bytes, NULL) != TRESTLE_OK) {
            free(copy);
            return -1;
        }
        b = copy;
    }
    *op_hash = cli_fnv1a(CLI_FNV1A_BASIS, b, o.bytes);
    *chain = cli_fnv1a(*chain, b, o.bytes);
    free(copy);
    return 0;
}

uint64_t cli_checksum_plan(const trestle_plan *p)
{
    uint64_t chain = CLI_FNV1A_BASIS, one;
    for (size_t i = 0; p && i < trestle_plan_op_count(p); i++)
        if (cli_checksum_op(p, i, &one, &chain) != 0)
            return 0;
    return chain;
}
