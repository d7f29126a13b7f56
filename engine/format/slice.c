/*
 * slice.c - tensor slices: TensorFlow's `shape_and_slices` grammar, slice
 * arithmetic, the N-d strided copy that moves a slice between row-major
 * blocks, and the ordered-code keys of stored slices.
 *
 * Place in the data flow: format layer. The parser serves RestoreV2-style
 * requests and the writer's AddSlice; the arithmetic and the keys serve
 * checkpoint.c (finding the stored parts of a partitioned variable) and
 * plan_pieces.c (cutting a request into pieces); trestle__slice_copy is the
 * host copy path that assembles those pieces (the CPU twin of the GPU
 * scatter).
 *
 * Nothing here allocates or keeps state. Spec strings come from callers and
 * may be hostile: every number is parsed with overflow checks and every sum
 * goes through checked.h. Format: tf-checkpoint-format.md §5 and §6.1.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checked.h"
#include "error.h"
#include "slice.h"

/* Room for any slice or shape of TRESTLE_MAX_SLICE_RANK dims in text. */
#define SLICE_TEXT_MAX (TRESTLE_MAX_SLICE_RANK * 42 + 1) /* "start,length:" x rank */
#define SHAPE_TEXT_MAX (TRESTLE_MAX_SLICE_RANK * 21 + 3) /* "[d,d,...]" */

/* ---- numbers and text ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * Parse p[0..n) as a decimal int64 the way TF's safe_strto64 does: optional
 * surrounding whitespace, an optional sign, at least one digit, nothing else.
 * False on junk or overflow (then *out is untouched).
 */
static bool parse_i64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    int64_t v = 0;

    while (i < n && is_space(p[i]))
        i++;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        neg = p[i++] == '-';
    if (i >= n || p[i] < '0' || p[i] > '9')
        return false;
    /* Accumulate towards the sign so that INT64_MIN itself parses. */
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        int64_t digit = p[i] - '0';
        if (!tr_mul_i64(v, 10, &v) || !tr_add_i64(v, neg ? -digit : digit, &v))
            return false;
    }
    while (i < n && is_space(p[i]))
        i++;
    if (i != n)
        return false;
    *out = v;
    return true;
}

/* Bounded appender with snprintf's contract: counts what it could not write. */
typedef struct text {
    char *buf;  /* may be NULL when cap == 0 */
    size_t cap; /* bytes at buf, terminator included */
    size_t len; /* bytes that the full text needs, terminator excluded */
} text;

static void text_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = t->len < t->cap ? t->buf + t->len : NULL;
    int n = vsnprintf(at, at ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

static void shape_text(int rank, const int64_t *dims, char *buf, size_t cap)
{
    text t = { buf, cap, 0 };
    text_printf(&t, "[");
    for (int d = 0; d < rank; d++)
        text_printf(&t, "%s%" PRId64, d ? "," : "", dims[d]);
    text_printf(&t, "]");
}

size_t trestle__slice_format(const trestle__slice *s, char *buf, size_t cap)
{
    text t = { buf, cap, 0 };
    if (buf && cap > 0)
        buf[0] = '\0'; /* rank 0 prints nothing, but still terminates */
    for (int d = 0; d < s->rank; d++) {
        if (s->length[d] == -1)
            text_printf(&t, "%s-", d ? ":" : "");
        else
            text_printf(&t, "%s%" PRId64 ",%" PRId64, d ? ":" : "", s->start[d], s->length[d]);
    }
    return t.len;
}

/* ---- parsing ---- */

/*
 * One extent "-" or "start,length" (p[0..n), no ':'). The pair is split on
 * ',' skipping empty pieces, as TF does, so "1,,2" is the pair 1,2.
 * `whole`/`whole_n` is the full slice text, quoted by the messages.
 */
static int parse_extent(const char *p, size_t n, const char *whole, size_t whole_n,
                        int64_t *start, int64_t *length, trestle_error *err)
{
    if (n == 1 && p[0] == '-') {
        *start = 0;
        *length = -1;
        return TRESTLE_OK;
    }
    const char *piece[2];
    size_t piece_n[2], count = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != ',')
            j++;
        if (j > i) {
            if (count < 2) {
                piece[count] = p + i;
                piece_n[count] = j - i;
            }
            count++;
        }
        i = j + 1;
    }
    int64_t s, l;
    if (count != 2 || !parse_i64(piece[0], piece_n[0], &s) ||
        !parse_i64(piece[1], piece_n[1], &l))
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Expected a pair of numbers or '-' but got '%.*s': "
                                     "string = %.*s", (int)n, p, (int)whole_n, whole);
    if (s < 0 || l <= 0)
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Expected non-negative start and positive length but got "
                                     "start = %" PRId64 ", length = %" PRId64 ": string = %.*s",
                                     s, l, (int)whole_n, whole);
    *start = s;
    *length = l;
    return TRESTLE_OK;
}

/*
 * Parse a slice text p[0..n) (split on ':', empty pieces skipped) into out,
 * whatever its rank. Every extent is checked before the rank limit, so a
 * malformed long slice reports its first bad extent as TF would.
 */
static int parse_slice_text(const char *p, size_t n, trestle__slice *out, trestle_error *err)
{
    int count = 0, rc;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != ':')
            j++;
        if (j > i) {
            int64_t s = 0, l = 0;
            if ((rc = parse_extent(p + i, j - i, p, n, &s, &l, err)) != TRESTLE_OK)
                return rc;
            if (count < TRESTLE_MAX_SLICE_RANK) {
                out->start[count] = s;
                out->length[count] = l;
            }
            if (count < INT32_MAX)
                count++;
        }
        i = j + 1;
    }
    if (count > TRESTLE_MAX_SLICE_RANK)
        return trestle__error_simple(err, TRESTLE_E_LIMIT,
                                     "slice %.*s has %d dimensions; trestle slices up to rank %d",
                                     (int)n, p, count, TRESTLE_MAX_SLICE_RANK);
    out->rank = count;
    return TRESTLE_OK;
}

int trestle__slice_parse(const char *text_in, int rank, trestle__slice *out, trestle_error *err)
{
    const char *p = text_in ? text_in : "";
    int rc = parse_slice_text(p, strlen(p), out, err);
    if (rc != TRESTLE_OK)
        return rc;
    if (out->rank != rank) {
        char sl[SLICE_TEXT_MAX];
        trestle__slice_format(out, sl, sizeof sl);
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Mismatching ranks: expected %d dimensions, slice = %s",
                                     rank, sl);
    }
    return TRESTLE_OK;
}

/*
 * TF's SliceTensorShape checks: same rank, and every explicit extent ends
 * inside its dim. start + length is checked for overflow, which counts as
 * out of bounds.
 */
static int check_against_shape(const trestle__spec *sp, trestle_error *err)
{
    char sh[SHAPE_TEXT_MAX], sl[SLICE_TEXT_MAX];
    const trestle__slice *s = &sp->slice;

    shape_text(sp->rank, sp->shape, sh, sizeof sh);
    trestle__slice_format(s, sl, sizeof sl);
    if (s->rank != sp->rank)
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Mismatching ranks: shape = %s, slice = %s", sh, sl);
    for (int d = 0; d < s->rank; d++) {
        int64_t end;
        if (s->length[d] == -1)
            continue;
        if (!tr_add_i64(s->start[d], s->length[d], &end) || end > sp->shape[d])
            return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                         "Extent in dimension %d out of bounds: shape = %s, "
                                         "slice = %s", d, sh, sl);
    }
    return TRESTLE_OK;
}

/*
 * Checks run in TF's order: token count, the slice, each dim, then the
 * slice against the shape. Two checks are trestle's own, where TF would
 * abort the process instead: negative dims and shapes whose element count
 * overflows int64. On failure *out is unspecified.
 */
int trestle__spec_parse(const char *text_in, trestle__spec *out, trestle_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text_in || !text_in[0]) {
        out->whole = true;
        return TRESTLE_OK;
    }
    /* Single-space split keeping empty tokens: the slice is after the last space. */
    const char *last = strrchr(text_in, ' ');
    if (!last)
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Need least two elements in shape_and_slice specification: "
                                     "%s", text_in);
    int rc = parse_slice_text(last + 1, strlen(last + 1), &out->slice, err);
    if (rc != TRESTLE_OK)
        return rc;

    int rank = 0;
    for (const char *p = text_in; p <= last;) {
        const char *sp = memchr(p, ' ', (size_t)(last - p) + 1);
        int64_t dim;
        if (!parse_i64(p, (size_t)(sp - p), &dim))
            return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                         "Non numerical dimension in shape_and_slice: %s",
                                         text_in);
        if (dim < 0)
            return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                         "Negative dimension in shape_and_slice: %s", text_in);
        if (rank < TRESTLE_MAX_SLICE_RANK)
            out->shape[rank] = dim;
        if (rank < INT32_MAX)
            rank++;
        p = sp + 1;
    }
    if (rank > TRESTLE_MAX_SLICE_RANK)
        return trestle__error_simple(err, TRESTLE_E_LIMIT,
                                     "shape_and_slice has rank %d; trestle slices up to rank %d: "
                                     "%s", rank, TRESTLE_MAX_SLICE_RANK, text_in);
    out->rank = rank;
    int64_t elements;
    if (!tr_num_elements(rank, out->shape, &elements))
        return trestle__error_simple(err, TRESTLE_E_BAD_SPEC,
                                     "Shape in shape_and_slice has more than 2^63-1 elements: %s",
                                     text_in);
    return check_against_shape(out, err);
}

/* ---- slice arithmetic ---- */

void trestle__slice_full(trestle__slice *s, int rank)
{
    memset(s, 0, sizeof *s);
    s->rank = rank;
    for (int d = 0; d < rank; d++)
        s->length[d] = -1;
}

bool trestle__slice_covers_all(const trestle__slice *s, const int64_t *dims)
{
    for (int d = 0; d < s->rank; d++)
        if (s->length[d] != -1 && (s->start[d] != 0 || s->length[d] != dims[d]))
            return false;
    return true;
}

void trestle__slice_resolve(const trestle__slice *s, const int64_t *dims, int64_t *start,
                            int64_t *length)
{
    for (int d = 0; d < s->rank; d++) {
        bool full = s->length[d] == -1;
        start[d] = full ? 0 : s->start[d];
        length[d] = full ? dims[d] : s->length[d];
    }
}

/* -1 when the count overflows int64 (slices checked at parse or open never do). */
int64_t trestle__slice_num_elements(const trestle__slice *s, const int64_t *dims)
{
    int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK], n;
    trestle__slice_resolve(s, dims, start, length);
    return tr_num_elements(s->rank, length, &n) ? n : -1;
}

/* End of [start, start+length), saturated so hostile extents cannot wrap. */
static int64_t extent_end(int64_t start, int64_t length)
{
    int64_t end;
    return tr_add_i64(start, length, &end) ? end : INT64_MAX;
}

/*
 * Per dim the intersection is [max(starts), min(ends)); one empty dim makes
 * it all empty. out may alias a or b. Slices of different ranks never
 * intersect. When false, out holds rank a->rank and unspecified extents.
 */
bool trestle__slice_intersect(const trestle__slice *a, const trestle__slice *b,
                              const int64_t *dims, trestle__slice *out)
{
    int64_t as[TRESTLE_MAX_SLICE_RANK], al[TRESTLE_MAX_SLICE_RANK];
    int64_t bs[TRESTLE_MAX_SLICE_RANK], bl[TRESTLE_MAX_SLICE_RANK];
    int rank = a->rank;
    bool nonempty = a->rank == b->rank;

    trestle__slice_resolve(a, dims, as, al);
    trestle__slice_resolve(b, dims, bs, bl);
    out->rank = rank;
    for (int d = 0; nonempty && d < rank; d++) {
        int64_t lo = as[d] > bs[d] ? as[d] : bs[d];
        int64_t ae = extent_end(as[d], al[d]), be = extent_end(bs[d], bl[d]);
        int64_t hi = ae < be ? ae : be;
        nonempty = hi > lo;
        out->start[d] = lo;
        out->length[d] = nonempty ? hi - lo : 0;
    }
    return nonempty;
}

bool trestle__slice_equal(const trestle__slice *a, const trestle__slice *b, const int64_t *dims)
{
    if (a->rank != b->rank)
        return false;
    for (int d = 0; d < a->rank; d++) {
        bool af = a->length[d] == -1, bf = b->length[d] == -1;
        if ((af ? 0 : a->start[d]) != (bf ? 0 : b->start[d]) ||
            (af ? dims[d] : a->length[d]) != (bf ? dims[d] : b->length[d]))
            return false;
    }
    return true;
}

/* ---- strided copy ---- */

/*
 * n rows of `run` bytes each, at byte strides ss (source) and ds
 * (destination). The common small widths get fixed-size memcpy calls,
 * which compilers turn into single moves; the loop is the innermost one of
 * every sliced restore.
 */
static void copy_rows(uint8_t *dp, const uint8_t *sp, int64_t n, size_t run, size_t ss, size_t ds)
{
#define ROWS(width)                                                             \
    for (int64_t i = 0; i < n; i++, dp += ds, sp += ss)                         \
        memcpy(dp, sp, (width));                                                \
    return
    switch (run) {
    case 4: ROWS(4);
    case 8: ROWS(8);
    case 16: ROWS(16);
    case 32: ROWS(32);
    default: ROWS(run);
    }
#undef ROWS
}

/*
 * The copy is described as axes (count, source stride, destination stride
 * in bytes), outermost first. Length-1 axes are dropped, and an axis merges
 * with the one inside it whenever both blocks store them back to back, so
 * a copy between blocks that differ only in their leading dim becomes one
 * memcpy. The innermost axis, when contiguous in both blocks, becomes the
 * memcpy run; the rest are walked with an odometer.
 */
void trestle__slice_copy(void *dst, const trestle__slice *dst_slice, const void *src,
                         const trestle__slice *src_slice, const trestle__slice *region,
                         const int64_t *dims, size_t elem_size)
{
    int64_t ds[TRESTLE_MAX_SLICE_RANK], dl[TRESTLE_MAX_SLICE_RANK];
    int64_t ss[TRESTLE_MAX_SLICE_RANK], sl[TRESTLE_MAX_SLICE_RANK];
    int64_t rs[TRESTLE_MAX_SLICE_RANK], rl[TRESTLE_MAX_SLICE_RANK];
    int64_t cnt[TRESTLE_MAX_SLICE_RANK], idx[TRESTLE_MAX_SLICE_RANK];
    size_t sstr[TRESTLE_MAX_SLICE_RANK], dstr[TRESTLE_MAX_SLICE_RANK];
    int rank = region->rank, m = 0;
    const uint8_t *sp = src;
    uint8_t *dp = dst;

    trestle__slice_resolve(dst_slice, dims, ds, dl);
    trestle__slice_resolve(src_slice, dims, ss, sl);
    trestle__slice_resolve(region, dims, rs, rl);
    for (int d = 0; d < rank; d++)
        if (rl[d] <= 0)
            return;

    /* Byte strides of each block, and the region's first element in each. */
    size_t s_acc = elem_size, d_acc = elem_size;
    for (int d = rank - 1; d >= 0; d--) {
        sp += (size_t)(rs[d] - ss[d]) * s_acc;
        dp += (size_t)(rs[d] - ds[d]) * d_acc;
        sstr[d] = s_acc;
        dstr[d] = d_acc;
        s_acc *= (size_t)sl[d];
        d_acc *= (size_t)dl[d];
    }
    for (int d = 0; d < rank; d++) {
        if (rl[d] == 1)
            continue;
        if (m > 0 && sstr[m - 1] == sstr[d] * (size_t)rl[d] &&
            dstr[m - 1] == dstr[d] * (size_t)rl[d]) {
            cnt[m - 1] *= rl[d];
            sstr[m - 1] = sstr[d];
            dstr[m - 1] = dstr[d];
            continue;
        }
        cnt[m] = rl[d];
        sstr[m] = sstr[d];
        dstr[m] = dstr[d];
        m++;
    }
    size_t run = elem_size;
    if (m > 0 && sstr[m - 1] == elem_size && dstr[m - 1] == elem_size)
        run *= (size_t)cnt[--m];
    if (m == 0) {
        memcpy(dp, sp, run);
        return;
    }

    memset(idx, 0, (size_t)m * sizeof idx[0]);
    for (;;) {
        copy_rows(dp, sp, cnt[m - 1], run, sstr[m - 1], dstr[m - 1]);
        int d = m - 2;
        for (; d >= 0; d--) {
            sp += sstr[d];
            dp += dstr[d];
            if (++idx[d] < cnt[d])
                break;
            /* This axis wrapped: rewind it and carry into the next outer one. */
            sp -= sstr[d] * (size_t)cnt[d];
            dp -= dstr[d] * (size_t)cnt[d];
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}

/* ---- ordered-code keys ---- */

size_t trestle__ordered_num_increasing(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    for (uint64_t x = v; x; x >>= 8)
        n++;
    out[0] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        out[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return n + 1;
}

/*
 * OrderedCode's SignedNumIncreasing. x is |v| folded so that v and ~v have
 * the same length; b bits of x take b/7 + 1 bytes (b <= 63, so at most 10).
 * The value is written as a sign-extended 10-byte big-endian number, the
 * last n bytes are kept, and the length header is XORed into their first
 * two bytes (negative numbers carry it inverted through their sign bits).
 */
size_t trestle__ordered_signed_num_increasing(int64_t v, uint8_t *out)
{
    /* Header bits per length n, first and second byte. */
    static const uint8_t header[11][2] = {
        { 0, 0 },       { 0x80, 0 },    { 0xc0, 0 },    { 0xe0, 0 },
        { 0xf0, 0 },    { 0xf8, 0 },    { 0xfc, 0 },    { 0xfe, 0 },
        { 0xff, 0 },    { 0xff, 0x80 }, { 0xff, 0xc0 },
    };
    uint64_t x = v < 0 ? ~(uint64_t)v : (uint64_t)v;
    if (x < 64) {
        out[0] = (uint8_t)(0x80 ^ (uint8_t)v);
        return 1;
    }
    int bits = 64 - __builtin_clzll(x);
    size_t n = (size_t)bits / 7 + 1;
    uint8_t buf[10];
    buf[0] = buf[1] = v < 0 ? 0xff : 0x00;
    for (int i = 0; i < 8; i++)
        buf[2 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    memcpy(out, buf + 10 - n, n);
    out[0] ^= header[n][0];
    out[1] ^= header[n][1];
    return n;
}

/* Appends to a key buffer; past cap it only counts. */
typedef struct keybuf {
    uint8_t *buf; /* may be NULL when cap == 0 */
    size_t cap;
    size_t len;   /* bytes the whole key needs */
} keybuf;

static void key_put(keybuf *k, const uint8_t *p, size_t n)
{
    if (n > 0 && k->len <= k->cap && n <= k->cap - k->len)
        memcpy(k->buf + k->len, p, n);
    k->len += n;
}

/* OrderedCode's WriteString: 00 -> 00 ff, ff -> ff 00, then 00 01. */
static void key_put_string(keybuf *k, const uint8_t *s, size_t n)
{
    static const uint8_t esc00[2] = { 0x00, 0xff }, escff[2] = { 0xff, 0x00 };
    static const uint8_t term[2] = { 0x00, 0x01 };
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != 0x00 && s[j] != 0xff)
            j++;
        key_put(k, s + i, j - i);
        if (j < n)
            key_put(k, s[j] ? escff : esc00, 2);
        i = j + 1;
    }
    key_put(k, term, 2);
}

size_t trestle__slice_key(const char *name, size_t name_len, const trestle__slice *s,
                          uint8_t *buf, size_t cap)
{
    keybuf k = { buf, cap, 0 };
    uint8_t num[10];

    key_put(&k, num, trestle__ordered_num_increasing(0, num));
    key_put_string(&k, (const uint8_t *)name, name_len);
    key_put(&k, num, trestle__ordered_num_increasing((uint64_t)s->rank, num));
    for (int d = 0; d < s->rank; d++) {
        bool full = s->length[d] == -1;
        key_put(&k, num, trestle__ordered_signed_num_increasing(full ? 0 : s->start[d], num));
        key_put(&k, num, trestle__ordered_signed_num_increasing(s->length[d], num));
    }
    return k.len;
}
