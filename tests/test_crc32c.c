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
