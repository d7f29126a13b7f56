/*
 * test_crc32c.c - CRC-32C values, TF's masking, extension and combination.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "testutil.h"

Test(crc32c, matches_the_standard_check_value)
{
    cr_assert_eq(trestle__crc32c("123456789", 9), 0xe3069283u);
    cr_assert_eq(trestle__crc32c("", 0), 0u);
}

Test(crc32c, masks_like_tensorflow)
{
    static const uint8_t zero_f32[4] = { 0, 0, 0, 0 };
    static const uint8_t one_f32[4] = { 0x00, 0x00, 0x80, 0x3f };
    cr_assert_eq(trestle__crc32c(zero_f32, 4), 0x48674bc7u);
    cr_assert_eq(trestle__crc_mask(0x48674bc7u), 0x3a117ba6u);
    cr_assert_eq(trestle__crc32c(one_f32, 4), 0xdd54c4abu);
    cr_assert_eq(trestle__crc_mask(0xdd54c4abu), 0x2bdaa581u);
    cr_assert_eq(trestle__crc_mask(0), 0xa282ead8u); /* a zero-byte tensor's stored CRC */
    for (uint32_t v = 1; v < 2000000000u; v += 7919 * 997)
        cr_assert_eq(trestle__crc_unmask(trestle__crc_mask(v)), v);
}

Test(crc32c, extends_incrementally)
{
    const char *s = "123456789";
    for (size_t cut = 0; cut <= 9; cut++)
        cr_assert_eq(trestle__crc32c_extend(trestle__crc32c(s, cut), s + cut, 9 - cut), 0xe3069283u);
}

Test(crc32c, combines_partial_crcs_of_any_split)
{
    size_t n = 1 << 20;
    uint8_t *buf = malloc(n);
    tu_fill_random(buf, n, 42);
    uint32_t whole = trestle__crc32c(buf, n);
    size_t cuts[] = { 0, 1, 3, 4096, 65535, 65536, 500000, n - 1, n };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t c = cuts[i];
        uint32_t a = trestle__crc32c(buf, c), b = trestle__crc32c(buf + c, n - c);
        cr_assert_eq(trestle__crc32c_combine(a, b, n - c), whole, "cut at %zu", c);
    }
    /* Many chunks combined left to right, as the pipeline does. */
    uint32_t acc = 0;
    for (size_t off = 0; off < n; off += 77777) {
        size_t len = n - off < 77777 ? n - off : 77777;
        acc = trestle__crc32c_combine(acc, trestle__crc32c(buf + off, len), len);
    }
    cr_assert_eq(acc, whole);
    free(buf);
}

Test(crc32c, handles_buffers_larger_than_isal_int_length)
{
    /* ISA-L takes an int length; 2 GiB + 3 bytes exercises the chunking. */
    size_t n = (2ull << 30) + 3;
    uint8_t *buf = calloc(1, n);
    if (!buf)
        cr_skip_test("cannot allocate 2 GiB");
    buf[n - 1] = 7;
    uint32_t split = trestle__crc32c_combine(trestle__crc32c(buf, 1u << 30),
                                             trestle__crc32c(buf + (1u << 30), n - (1u << 30)),
                                             n - (1u << 30));
    cr_assert_eq(trestle__crc32c(buf, n), split);
    free(buf);
}

/* ---- the register form: shares of tensors read in parts ---- */

/* The register after n zero bytes from `reg`, the slow way (ISA-L). */
static uint32_t shift_by_reading(uint32_t reg, const uint8_t *zeros, size_t n)
{
    return ~trestle__crc32c_extend(~reg, zeros, n);
}

Test(crc32c, shift_matches_reading_zero_bytes)
{
    size_t max = (size_t)1 << 24;
    uint8_t *zeros = calloc(1, max);
    cr_assert_not_null(zeros);
    uint32_t regs[] = { 0, 1, 0x80000000u, 0xffffffffu, 0xdeadbeefu };
    size_t lens[] = { 0, 1, 2, 3, 4, 7, 8, 63, 64, 1000, 4096, 65537, 1 << 20, max };
    for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++)
            cr_assert_eq(trestle__crc32c_shift(regs[i], lens[j]),
                         shift_by_reading(regs[i], zeros, lens[j]), "reg %08x, %zu bytes",
                         regs[i], lens[j]);
    cr_assert_eq(trestle__crc32c_zeros(0), 0u);
    cr_assert_eq(trestle__crc32c_zeros(4), trestle__crc32c(zeros, 4));
    cr_assert_eq(trestle__crc32c_zeros(max), trestle__crc32c(zeros, max));
    free(zeros);
}

Test(crc32c, shift_by_large_counts_composes)
{
    /* Entries past 2^24 bytes, checked by doubling from the read ones: two
     * shifts by 2^k are one by 2^(k+1), and shifts add. */
    uint32_t reg = 0x12345678u;
    for (unsigned k = 20; k < 63; k++) {
        uint64_t n = 1ull << k;
        cr_assert_eq(trestle__crc32c_shift(trestle__crc32c_shift(reg, n), n),
                     trestle__crc32c_shift(reg, n << 1), "2^%u", k);
    }
    uint64_t big[] = { (5ull << 30) + 3, (1ull << 40) + 12345, UINT64_MAX, 0x8000000000000001ull };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        uint64_t a = big[i] / 3, b = big[i] - a;
        cr_assert_eq(trestle__crc32c_shift(trestle__crc32c_shift(reg, a), b),
                     trestle__crc32c_shift(reg, big[i]), "%llu bytes",
                     (unsigned long long)big[i]);
    }
    /* x has order 2^31 - 1 modulo P: a shift by 8n bits with
     * n = 2^31 - 1 is the identity, so a table that drifts shows here. */
    cr_assert_eq(trestle__crc32c_shift(reg, (1ull << 31) - 1), reg);
    /* zeros() of a 5 GiB + 3 tensor, without 5 GiB of zeros. */
    uint64_t n5 = (5ull << 30) + 3, a5 = 1ull << 30;
    cr_assert_eq(trestle__crc32c_zeros(n5),
                 trestle__crc32c_combine(trestle__crc32c_zeros(a5), trestle__crc32c_zeros(n5 - a5),
                                         n5 - a5));
}

/* XOR over the runs of shift(raw(run), bytes after it), then ^ zeros(L). */
static uint32_t crc_from_runs(const uint8_t *buf, size_t n, const size_t *cuts, size_t ncuts)
{
    uint32_t acc = 0;
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        acc ^= trestle__crc32c_shift(trestle__crc32c_raw(buf + from, to - from), n - to);
        from = to;
    }
    return acc ^ trestle__crc32c_zeros(n);
}

Test(crc32c, shares_of_any_split_combine_to_the_crc)
{
    size_t n = 300000;
    uint8_t *buf = malloc(n);
    tu_fill_random(buf, n, 7);
    uint32_t whole = trestle__crc32c(buf, n);
    cr_assert_eq(trestle__crc32c_raw(buf, n) ^ trestle__crc32c_zeros(n), whole);

    /* Empty runs, 1-byte runs, and runs at both ends. */
    size_t fixed[] = { 0, 0, 1, 2, 2, 3, 4096, 4097, n - 1, n - 1, n };
    cr_assert_eq(crc_from_runs(buf, n, fixed, sizeof fixed / sizeof fixed[0]), whole);
    /* Many random splits, the runs' shares XORed in any order. */
    uint32_t seed = 12345;
    for (int trial = 0; trial < 200; trial++) {
        size_t cuts[16], k = 1 + (size_t)trial % 16;
        for (size_t i = 0; i < k; i++) {
            seed = seed * 1103515245u + 12345u;
            cuts[i] = (seed >> 4) % (n + 1);
        }
        for (size_t i = 1; i < k; i++) /* sort: runs are in file order */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        cr_assert_eq(crc_from_runs(buf, n, cuts, k), whole, "trial %d", trial);
    }
    /* A byte changed anywhere breaks it. */
    buf[n / 2] ^= 1;
    cr_assert_neq(crc_from_runs(buf, n, fixed, sizeof fixed / sizeof fixed[0]), whole);
    free(buf);
}

Test(crc32c, shares_over_a_tensor_larger_than_4_gib)
{
    /* The stored tensor is 4 GiB + 10 bytes of which only the last run and
     * a 1-byte run are nonzero; the zero runs' registers are 0, so the
     * check needs only shifts by > 4 GiB, never the bytes. */
    uint64_t n = (4ull << 30) + 10;
    uint8_t tail[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, one = 0x5a;
    uint64_t at = 3ull << 30; /* the 1-byte run */
    uint32_t share = trestle__crc32c_shift(trestle__crc32c_raw(&one, 1), n - at - 1) ^
                     trestle__crc32c_raw(tail, sizeof tail);
    /* The same CRC computed straight: the zeros before, the byte, zeros,
     * the tail, each joined with combine(). */
    uint32_t crc = trestle__crc32c_zeros(at);
    crc = trestle__crc32c_combine(crc, trestle__crc32c(&one, 1), 1);
    crc = trestle__crc32c_combine(crc, trestle__crc32c_zeros(n - at - 1 - sizeof tail),
                                  n - at - 1 - sizeof tail);
    crc = trestle__crc32c_combine(crc, trestle__crc32c(tail, sizeof tail), sizeof tail);
    cr_assert_eq(share ^ trestle__crc32c_zeros(n), crc);
}
