/*
 * cli_values.c - one tensor element as a number or as text.
 *
 * Narrow floats (bfloat16, half, the float8 family) are decoded to float
 * exactly, so stats and printing treat every real dtype alike. Floats print
 * as Python's repr does: the fewest significant digits that read back to
 * the same value, with ".0" on whole numbers and an exponent only outside
 * [1e-4, 1e16). That keeps `inspect --tensor` output comparable with what
 * TensorFlow users see from numpy.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- narrow float formats ---- */

enum { FMT_IEEE, FMT_FN, FMT_FNUZ }; /* how the format spells inf/NaN */

typedef struct minifloat {
    int ebits, mbits, bias;
    int kind; /* FMT_*: IEEE has inf and NaN at the top exponent; FN has NaN
                 only at all-ones; FNUZ has its one NaN at "negative zero" */
} minifloat;

static int minifloat_of(int dtype, minifloat *f)
{
    switch (dtype) {
    case TRESTLE_DT_HALF: *f = (minifloat){ 5, 10, 15, FMT_IEEE }; return 1;
    case TRESTLE_DT_BFLOAT16: *f = (minifloat){ 8, 7, 127, FMT_IEEE }; return 1;
    case TRESTLE_DT_FLOAT8_E5M2: *f = (minifloat){ 5, 2, 15, FMT_IEEE }; return 1;
    case TRESTLE_DT_FLOAT8_E4M3FN: *f = (minifloat){ 4, 3, 7, FMT_FN }; return 1;
    case TRESTLE_DT_FLOAT8_E4M3FNUZ: *f = (minifloat){ 4, 3, 8, FMT_FNUZ }; return 1;
    case TRESTLE_DT_FLOAT8_E4M3B11FNUZ: *f = (minifloat){ 4, 3, 11, FMT_FNUZ }; return 1;
    case TRESTLE_DT_FLOAT8_E5M2FNUZ: *f = (minifloat){ 5, 2, 16, FMT_FNUZ }; return 1;
    default: return 0;
    }
}

static double minifloat_decode(const minifloat *f, uint32_t bits)
{
    uint32_t sign = (bits >> (f->ebits + f->mbits)) & 1;
    uint32_t emax = (1u << f->ebits) - 1, mmax = (1u << f->mbits) - 1;
    uint32_t e = (bits >> f->mbits) & emax;
    uint32_t m = bits & mmax;
    if (f->kind == FMT_FNUZ && sign && e == 0 && m == 0)
        return NAN;
    if (f->kind == FMT_IEEE && e == emax)
        return m ? NAN : (sign ? -INFINITY : INFINITY);
    if (f->kind == FMT_FN && e == emax && m == mmax)
        return NAN;
    double v = e == 0 ? ldexp((double)m, 1 - f->bias - f->mbits)
                      : ldexp((double)(m | (mmax + 1)), (int)e - f->bias - f->mbits);
    return sign ? -v : v;
}

int cli_float_layout(int dtype, int *ebits, int *mbits, int *bias)
{
    minifloat f;
    if (dtype == TRESTLE_DT_FLOAT)
        f = (minifloat){ 8, 23, 127, FMT_IEEE };
    else if (dtype == TRESTLE_DT_DOUBLE)
        f = (minifloat){ 11, 52, 1023, FMT_IEEE };
    else if (!minifloat_of(dtype, &f))
        return 0;
    *ebits = f.ebits;
    *mbits = f.mbits;
    *bias = f.bias;
    return 1;
}

int cli_dtype_is_real(int dtype)
{
    minifloat f;
    if (minifloat_of(dtype, &f))
        return 1;
    switch (dtype) {
    case TRESTLE_DT_FLOAT: case TRESTLE_DT_DOUBLE:
    case TRESTLE_DT_INT8: case TRESTLE_DT_INT16: case TRESTLE_DT_INT32: case TRESTLE_DT_INT64:
    case TRESTLE_DT_UINT8: case TRESTLE_DT_UINT16: case TRESTLE_DT_UINT32: case TRESTLE_DT_UINT64:
    case TRESTLE_DT_QINT8: case TRESTLE_DT_QINT16: case TRESTLE_DT_QINT32:
    case TRESTLE_DT_QUINT8: case TRESTLE_DT_QUINT16:
    case TRESTLE_DT_INT4: case TRESTLE_DT_UINT4: case TRESTLE_DT_INT2: case TRESTLE_DT_UINT2:
    case TRESTLE_DT_BOOL:
        return 1;
    default:
        return 0;
    }
}

/* Load helpers: tensor bytes need not be aligned for the element type. */
#define DEFINE_LOAD(fn, type)                                              \
    static type fn(const void *base, uint64_t i)                           \
    {                                                                      \
        type v;                                                            \
        memcpy(&v, (const uint8_t *)base + i * sizeof v, sizeof v);        \
        return v;                                                          \
    }
DEFINE_LOAD(ld_u8, uint8_t)
DEFINE_LOAD(ld_i8, int8_t)
DEFINE_LOAD(ld_u16, uint16_t)
DEFINE_LOAD(ld_i16, int16_t)
DEFINE_LOAD(ld_u32, uint32_t)
DEFINE_LOAD(ld_i32, int32_t)
DEFINE_LOAD(ld_u64, uint64_t)
DEFINE_LOAD(ld_i64, int64_t)
DEFINE_LOAD(ld_f32, float)
DEFINE_LOAD(ld_f64, double)

static int is_signed_int(int dtype)
{
    return dtype == TRESTLE_DT_INT8 || dtype == TRESTLE_DT_INT16 || dtype == TRESTLE_DT_INT32 ||
           dtype == TRESTLE_DT_INT64 || dtype == TRESTLE_DT_QINT8 || dtype == TRESTLE_DT_QINT16 ||
           dtype == TRESTLE_DT_QINT32 || dtype == TRESTLE_DT_INT4 || dtype == TRESTLE_DT_INT2;
}

static int64_t load_signed(int dtype, const void *base, uint64_t i)
{
    switch (dtype) {
    case TRESTLE_DT_INT8: case TRESTLE_DT_QINT8: return ld_i8(base, i);
    case TRESTLE_DT_INT16: case TRESTLE_DT_QINT16: return ld_i16(base, i);
    case TRESTLE_DT_INT32: case TRESTLE_DT_QINT32: return ld_i32(base, i);
    case TRESTLE_DT_INT64: return ld_i64(base, i);
    /* int4/int2 are stored unpacked, one element in the low bits of a byte. */
    case TRESTLE_DT_INT4: return (int8_t)(uint8_t)(ld_u8(base, i) << 4) >> 4;
    case TRESTLE_DT_INT2: return (int8_t)(uint8_t)(ld_u8(base, i) << 6) >> 6;
    default: return 0;
    }
}

static uint64_t load_unsigned(int dtype, const void *base, uint64_t i)
{
    switch (dtype) {
    case TRESTLE_DT_UINT8: case TRESTLE_DT_QUINT8: case TRESTLE_DT_BOOL:
        return ld_u8(base, i);
    case TRESTLE_DT_UINT16: case TRESTLE_DT_QUINT16: return ld_u16(base, i);
    case TRESTLE_DT_UINT32: return ld_u32(base, i);
    case TRESTLE_DT_UINT64: return ld_u64(base, i);
    case TRESTLE_DT_UINT4: return ld_u8(base, i) & 0xF;
    case TRESTLE_DT_UINT2: return ld_u8(base, i) & 0x3;
    default: return 0;
    }
}

double cli_element_double(int dtype, const void *base, uint64_t i)
{
    minifloat f;
    if (dtype == TRESTLE_DT_FLOAT)
        return ld_f32(base, i);
    if (dtype == TRESTLE_DT_DOUBLE)
        return ld_f64(base, i);
    if (dtype == TRESTLE_DT_BFLOAT16) {
        /* bfloat16 is the top half of a float: exact and faster than decoding. */
        uint32_t bits = (uint32_t)ld_u16(base, i) << 16;
        float v;
        memcpy(&v, &bits, 4);
        return v;
    }
    if (minifloat_of(dtype, &f)) {
        uint32_t bits = trestle_dtype_size(dtype) == 2 ? ld_u16(base, i)
                                                       : ld_u8(base, i);
        return minifloat_decode(&f, bits);
    }
    if (is_signed_int(dtype))
        return (double)load_signed(dtype, base, i);
    if (dtype == TRESTLE_DT_BOOL)
        return ld_u8(base, i) ? 1.0 : 0.0;
    return (double)load_unsigned(dtype, base, i);
}

/* ---- shortest round-trip float text ---- */

/* Lay out `v` with `p` significant digits the way Python's repr does. */
static void repr_digits(double v, int p, char *buf, size_t cap)
{
    char e[64];
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    /* The exponent after rounding to p digits decides the notation. */
    int x = atoi(strchr(e, 'e') + 1);
    if (x >= -4 && x < 16) {
        int decimals = p - 1 - x;
        snprintf(buf, cap, "%.*f", decimals > 0 ? decimals : 0, v);
        if (!strchr(buf, '.'))
            strncat(buf, ".0", cap - strlen(buf) - 1);
    } else {
        /* Python drops a lone ".0" mantissa: 1e-05, not 1.0e-05. */
        snprintf(buf, cap, "%.*e", p - 1, v);
    }
}

static int nonfinite(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "nan");
    else if (isinf(v))
        snprintf(buf, cap, v < 0 ? "-inf" : "inf");
    else
        return 0;
    return 1;
}

void cli_format_float(float v, char *buf, size_t cap)
{
    if (nonfinite(v, buf, cap))
        return;
    char tmp[64];
    int p = 1;
    for (; p < 9; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, (double)v);
        if (strtof(tmp, NULL) == v)
            break;
    }
    repr_digits(v, p, buf, cap);
}

void cli_format_double(double v, char *buf, size_t cap)
{
    if (nonfinite(v, buf, cap))
        return;
    char tmp[64];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    repr_digits(v, p, buf, cap);
}

/* Python prints complex parts without a trailing ".0": (1+2j), (0.5-1.25j). */
static void complex_part(double v, int single, char *buf, size_t cap)
{
    if (single)
        cli_format_float((float)v, buf, cap);
    else
        cli_format_double(v, buf, cap);
    size_t n = strlen(buf);
    if (n > 2 && strcmp(buf + n - 2, ".0") == 0)
        buf[n - 2] = '\0';
}

static void format_complex(double re, double im, int single, cli_style style, char *buf,
                           size_t cap)
{
    char a[64], b[64];
    if (style == CLI_STYLE_JSON) {
        /* JSON has no complex numbers: [re, im], null for nan/inf. */
        if (single) {
            cli_format_float((float)re, a, sizeof a);
            cli_format_float((float)im, b, sizeof b);
        } else {
            cli_format_double(re, a, sizeof a);
            cli_format_double(im, b, sizeof b);
        }
        snprintf(buf, cap, "[%s, %s]", isfinite(re) ? a : "null", isfinite(im) ? b : "null");
        return;
    }
    complex_part(re, single, a, sizeof a);
    complex_part(im, single, b, sizeof b);
    snprintf(buf, cap, "(%s%s%sj)", a, (b[0] == '-' || isnan(im)) ? "" : "+", b);
}

int cli_format_element(int dtype, const void *base, uint64_t i, cli_style style, char *buf,
                       size_t cap)
{
    minifloat f;
    switch (dtype) {
    case TRESTLE_DT_FLOAT:
        cli_format_float(ld_f32(base, i), buf, cap);
        break;
    case TRESTLE_DT_DOUBLE:
        cli_format_double(ld_f64(base, i), buf, cap);
        break;
    case TRESTLE_DT_BOOL:
        if (style == CLI_STYLE_JSON)
            snprintf(buf, cap, "%s", ld_u8(base, i) ? "true" : "false");
        else
            snprintf(buf, cap, "%s", ld_u8(base, i) ? "True" : "False");
        return 0;
    case TRESTLE_DT_COMPLEX64:
        format_complex(ld_f32(base, 2 * i), ld_f32(base, 2 * i + 1), 1, style, buf,
                       cap);
        return 0;
    case TRESTLE_DT_COMPLEX128:
        format_complex(ld_f64(base, 2 * i), ld_f64(base, 2 * i + 1), 0, style, buf,
                       cap);
        return 0;
    case TRESTLE_DT_STRING: case TRESTLE_DT_VARIANT: case TRESTLE_DT_RESOURCE:
        return -1;
    default:
        if (minifloat_of(dtype, &f)) {
            /* Every narrow float is exactly a float. */
            cli_format_float((float)cli_element_double(dtype, base, i), buf, cap);
            break;
        }
        if (trestle_dtype_size(dtype) == 0)
            return -1;
        if (is_signed_int(dtype))
            snprintf(buf, cap, "%" PRId64, load_signed(dtype, base, i));
        else
            snprintf(buf, cap, "%" PRIu64, load_unsigned(dtype, base, i));
        return 0;
    }
    if (style == CLI_STYLE_JSON && (strstr(buf, "nan") || strstr(buf, "inf")))
        snprintf(buf, cap, "null");
    return 0;
}

/* ---- byte strings ---- */

void cli_print_pybytes(FILE *f, const uint8_t *p, uint64_t len, uint64_t max)
{
    uint64_t n = max && len > max ? max : len;
    /* Python's choice: single quotes unless only a double quote avoids escapes. */
    int has_sq = memchr(p, '\'', (size_t)n) != NULL, has_dq = memchr(p, '"', (size_t)n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    fputc('b', f);
    fputc(q, f);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '\\' || c == (uint8_t)q)
            fprintf(f, "\\%c", c);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
    fputc(q, f);
    if (n < len)
        fprintf(f, "...(%" PRIu64 " bytes)", len);
}
