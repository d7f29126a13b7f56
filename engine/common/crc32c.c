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
 * Polynomial arithmetic modulo the CRC polynomial P, in the reflected bit
 * order CRC-32C uses (bit 31 is x^0, bit 0 is x^31).
 *
 * Why it works: let r(M) be the CRC register after M from init 0 with no
 * final xor. r is linear over GF(2) and r(A||B) = r(A) x^(8|B|) + r(B)
 * mod P, so a register can be moved past n bytes without reading them:
 * shift(c, n) = c x^(8n) mod P. The finished CRC uses ~0 for both the
 * init and the final xor, which makes it affine: crc(M) = r(M) ^
 * crc(0^|M|), where crc(0^n) = shift(~0, n) ^ ~0. Both conventions combine
 * adjacent pieces the same way, because the constant terms cancel.
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

/* x^(8 * 2^k) mod P for k = 0..63: one multiplication per set bit of a
 * byte count moves a register past it, whatever its size. Made by
 * squaring x^8; tests/test_crc32c.c checks every entry against ISA-L
 * run over zero bytes (directly up to 2^24 bytes, then by doubling). The
 * powers repeat with period 31 because x has order 2^31 - 1 modulo P. */
static const uint32_t x_8_2k[64] = {
    0x00800000u, 0x00008000u, 0x82f63b78u, 0x6ea2d55cu, 0x18b8ea18u, 0x510ac59au,
    0xb82be955u, 0xb8fdb1e7u, 0x88e56f72u, 0x74c360a4u, 0xe4172b16u, 0x0d65762au,
    0x35d73a62u, 0x28461564u, 0xbf455269u, 0xe2ea32dcu, 0xfe7740e6u, 0xf946610bu,
    0x3c204f8fu, 0x538586e3u, 0x59726915u, 0x734d5309u, 0xbc1ac763u, 0x7d0722ccu,
    0xd289cabeu, 0xe94ca9bcu, 0x05b74f3fu, 0xa51e1f42u, 0x40000000u, 0x20000000u,
    0x08000000u, 0x00800000u, 0x00008000u, 0x82f63b78u, 0x6ea2d55cu, 0x18b8ea18u,
    0x510ac59au, 0xb82be955u, 0xb8fdb1e7u, 0x88e56f72u, 0x74c360a4u, 0xe4172b16u,
    0x0d65762au, 0x35d73a62u, 0x28461564u, 0xbf455269u, 0xe2ea32dcu, 0xfe7740e6u,
    0xf946610bu, 0x3c204f8fu, 0x538586e3u, 0x59726915u, 0x734d5309u, 0xbc1ac763u,
    0x7d0722ccu, 0xd289cabeu, 0xe94ca9bcu, 0x05b74f3fu, 0xa51e1f42u, 0x40000000u,
    0x20000000u, 0x08000000u, 0x00800000u, 0x00008000u,
};

uint32_t trestle__crc32c_shift(uint32_t reg, uint64_t n)
{
    for (unsigned k = 0; n != 0 && reg != 0; k++, n >>= 1)
        if (n & 1)
            reg = mulmod(reg, x_8_2k[k]);
    return reg;
}

uint32_t trestle__crc32c_zeros(uint64_t n)
{
    return trestle__crc32c_shift(0xffffffffu, n) ^ 0xffffffffu;
}

uint32_t trestle__crc32c_raw(const void *p, size_t n)
{
    return trestle__crc32c(p, n) ^ trestle__crc32c_zeros(n);
}

uint32_t trestle__crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return trestle__crc32c_shift(crc_a, len_b) ^ crc_b;
}
