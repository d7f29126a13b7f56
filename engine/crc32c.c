/*
 * crc32c.c - CRC-32C through ISA-L (SSE4.2/AVX-512 CRC folding, chosen at
 * run time by ISA-L), plus combination of partial CRCs.
 *
 * ISA-L's crc32_iscsi() works on the raw register (no pre/post inversion)
 * and takes an int length, so this file adapts it to TF's finished-value
 * convention and feeds it at most 1 GiB at a time.
 */
#include <isa-l/crc.h>

#include "crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u
#define ISAL_MAX_CHUNK (1u << 30)

uint32_t trestle__crc32c_extend(uint32_t crc, const void *p, size_t n)
{
    unsigned char *b = (unsigned char *)p; /* ISA-L's prototype lacks const */
    uint32_t reg = ~crc;

    while (n > 0) {
        size_t step = n < ISAL_MAX_CHUNK ? n : ISAL_MAX_CHUNK;
        reg = crc32_iscsi(b, (int)step, reg);
        b += step;
        n -= step;
    }
    return ~reg;
}

uint32_t trestle__crc32c(const void *p, size_t n)
{
    return trestle__crc32c_extend(0, p, n);
}

/*
 * Polynomial arithmetic modulo the CRC polynomial, in the reflected bit
 * order CRC-32C uses (bit 31 is x^0). CRC(A||B) = CRC(A) * x^(8|B|) + CRC(B)
 * mod P, so combining costs O(log |B|) multiplications, independent of size.
 */
static uint32_t mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
        if (a & m)
            prod ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1;
    }
    return prod;
}

/* x^(8n) mod P. */
static uint32_t x_pow_8n(uint64_t n)
{
    uint32_t result = 1u << 31; /* x^0 */
    uint32_t sq = 1u << 23;     /* x^8: one byte of shift */
    while (n) {
        if (n & 1)
            result = mulmod(result, sq);
        sq = mulmod(sq, sq);
        n >>= 1;
    }
    return result;
}

uint32_t trestle__crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return mulmod(crc_a, x_pow_8n(len_b)) ^ crc_b;
}
