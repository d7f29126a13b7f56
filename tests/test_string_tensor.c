/*
 * test_string_tensor.c - DT_STRING encoding and its two checksums
 * (tf-checkpoint-format.md §4.3), including the worked example.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "crc32c.h"
#include "string_tensor.h"
#include "testutil.h"

Test(string_tensor, encodes_the_worked_example_byte_for_byte)
{
    trestle_bytes elems[2] = { { (const uint8_t *)"ab", 2 }, { (const uint8_t *)"", 0 } };
    static const uint8_t want[] = { 0x02, 0x00, 0x78, 0x27, 0x0b, 0x34, 0x61, 0x62 };
    trestle__buf out = { 0 };
    uint32_t crc;
    cr_assert_eq(trestle__strings_encode(elems, 2, &out, &crc, NULL), TRESTLE_OK);
    cr_assert_eq(out.len, sizeof want);
    cr_assert_arr_eq(out.data, want, sizeof want);
    cr_assert_eq(trestle__crc_mask(crc), 0x4db08891u);
    trestle__buf_free(&out);
}

Test(string_tensor, empty_tensor_is_just_the_masked_zero_checksum)
{
    trestle__buf out = { 0 };
    uint32_t crc;
    static const uint8_t want[] = { 0xd8, 0xea, 0x82, 0xa2 };
    cr_assert_eq(trestle__strings_encode(NULL, 0, &out, &crc, NULL), TRESTLE_OK);
    cr_assert_arr_eq(out.data, want, 4);
    trestle__buf_free(&out);
}

Test(string_tensor, walks_back_what_it_encoded)
{
    static uint8_t big[1024];
    memset(big, 'c', sizeof big);
    trestle_bytes elems[4] = { { (const uint8_t *)"hello", 5 }, { (const uint8_t *)"", 0 },
                               { (const uint8_t *)"\x00\x01", 2 }, { big, sizeof big } };
    trestle__buf out = { 0 };
    uint32_t crc, crc2;
    trestle_bytes back[4];
    cr_assert_eq(trestle__strings_encode(elems, 4, &out, &crc, NULL), TRESTLE_OK);
    cr_assert_eq(trestle__strings_walk(out.data, out.len, 4, back, &crc2, NULL), TRESTLE_OK);
    cr_assert_eq(crc, crc2);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(back[i].len, elems[i].len);
        cr_assert_arr_eq(back[i].data, elems[i].data, elems[i].len);
    }
    trestle__buf_free(&out);
}

Test(string_tensor, rejects_a_bad_length_checksum)
{
    uint8_t bytes[] = { 0x02, 0x00, 0x78, 0x27, 0x0b, 0x35, 0x61, 0x62 };
    trestle_error err;
    uint32_t crc;
    cr_assert_eq(trestle__strings_walk(bytes, sizeof bytes, 2, NULL, &crc, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "The length checksum does not match") != NULL, "%s",
              err.message);
}

Test(string_tensor, rejects_lengths_that_overrun_and_trailing_bytes)
{
    uint8_t overrun[] = { 0x05, 0x00, 0, 0, 0, 0, 'a' };
    uint8_t trailing[] = { 0x02, 0x00, 0x78, 0x27, 0x0b, 0x34, 0x61, 0x62, 0x63 };
    uint8_t unterminated[] = { 0x80, 0x80, 0x80 };
    trestle_error err;
    uint32_t crc;
    cr_assert_eq(trestle__strings_walk(overrun, sizeof overrun, 2, NULL, &crc, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert_eq(trestle__strings_walk(trailing, sizeof trailing, 2, NULL, &crc, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert_eq(trestle__strings_walk(unterminated, sizeof unterminated, 1, NULL, &crc, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "String lengths longer than expected") != NULL, "%s",
              err.message);
    /* More elements than bytes can hold is refused before any parsing. */
    cr_assert_eq(trestle__strings_walk(trailing, 4, 100, NULL, &crc, &err), TRESTLE_E_CORRUPT);
}
