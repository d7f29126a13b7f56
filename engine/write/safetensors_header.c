/*
 * safetensors_header.c - the layout and JSON header of a conversion's
 * file, and what the header cannot hold.
 *
 * The header is a JSON object keyed by tensor name beside one reserved key,
 * "__metadata__". A checkpoint key is any bytes, so two kinds of name
 * would make a file that readers reject or misread: "__metadata__" itself
 * (a duplicate JSON key: one of the two is silently lost) and bytes that
 * are not UTF-8 (JSON text is UTF-8). Both are refused here, naming the
 * tensor, before the file is created; key rules or an exclusion deal with
 * them. Two tensors of one name are refused for the same reason.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "error.h"
#include "safetensors_header.h"

#define HEADER_ALIGN 8                 /* tensor data starts 8-aligned */
#define METADATA_KEY "__metadata__"    /* the header's own key */
#define NAME_TEXT 256                  /* bytes of a name quoted in a message */

/* ---- names ---- */

/* Offset of the first byte of `s` that breaks UTF-8 (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF), or -1. */
static long utf8_error_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i];) {
        unsigned char c = p[i];
        int more;
        unsigned char lo = 0x80, hi = 0xBF; /* bounds of the first continuation byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return (long)i;
        }
        for (int k = 1; k <= more; k++) {
            unsigned char b = p[i + (size_t)k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                return (long)i;
        }
        i += (size_t)more + 1;
    }
    return -1;
}

/* `s` for a message: printable ASCII as is, other bytes as \xNN. */
static void quote_name(const char *s, char *buf, size_t cap)
{
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && at + 5 < cap; p++) {
        if (*p >= 0x20 && *p < 0x7F)
            buf[at++] = (char)*p;
        else
            at += (size_t)snprintf(buf + at, cap - at, "\\x%02x", *p);
    }
    buf[at] = '\0';
}

/* Refuse a name the header cannot hold, naming the tensor and, when key
 * rules or a program renamed it, the name it was given. */
static int check_name(const cv_entry *e, trestle_error *err)
{
    char name[NAME_TEXT], given[NAME_TEXT + 32] = "";
    long bad = utf8_error_at(e->out_name);
    if (bad < 0 && strcmp(e->out_name, METADATA_KEY) != 0)
        return TRESTLE_OK;
    quote_name(e->name, name, sizeof name);
    if (strcmp(e->name, e->out_name) != 0) {
        char out[NAME_TEXT];
        quote_name(e->out_name, out, sizeof out);
        snprintf(given, sizeof given, " (named '%s' in the file)", out);
    }
    if (bad >= 0)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, e->name, NULL, -1, -1,
                                  "tensor '%s'%s: its name is not valid UTF-8 (byte %ld), "
                                  "and a safetensors header (JSON text) cannot hold it; name it "
                                  "with a key rule, or exclude it", name, given, bad);
    return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, e->name, NULL, -1, -1,
                              "tensor '%s'%s: " METADATA_KEY " is the safetensors header's "
                              "own key, and no tensor can have that name; name it with a key "
                              "rule, or exclude it", name, given);
}

/* ---- layout ---- */

/* Where the slots of each element size start when largest sizes come
 * first (trestle_dtype_size() is at most 16 bytes). */
#define MAX_ELEMENT 16

/* A slot's place in that order: 0 for the largest elements. */
static size_t size_class(const trestle_conversion *cv, const st_slot *s)
{
    size_t z = trestle_dtype_size(cv->e[s->entry].out_dtype);
    return MAX_ELEMENT - (z < MAX_ELEMENT ? z : MAX_ELEMENT);
}

/* By name, then entry, so that two of one name are adjacent, in op order. */
static int by_name(const void *a, const void *b, void *conversion)
{
    const trestle_conversion *cv = conversion;
    size_t i = ((const st_slot *)a)->entry, j = ((const st_slot *)b)->entry;
    int c = strcmp(cv->e[i].out_name, cv->e[j].out_name);
    return c ? c : i < j ? -1 : i > j;
}

/* Slots [0, m) sorted by name: a whole checkpoint's names come in key
 * order, and unless key rules renamed them they are sorted already. */
static void sort_by_name(st_slot *s, size_t m, const trestle_conversion *cv)
{
    for (size_t i = 1; i < m; i++)
        if (by_name(&s[i - 1], &s[i], (void *)cv) > 0) {
            qsort_r(s, m, sizeof *s, by_name, (void *)cv);
            return;
        }
}

/* Largest element first, then by name (the order the slots are in): every
 * tensor starts at a multiple of its element size, as the reference
 * writer arranges it. A stable partition by size, in one pass, where a
 * second sort by comparison cost a visible share of converting 100,000
 * tensors (issue 24). False when out of memory. */
static bool order_by_alignment(st_slot *s, size_t m, const trestle_conversion *cv)
{
    size_t start[MAX_ELEMENT + 2] = { 0 };
    for (size_t i = 0; i < m; i++)
        start[size_class(cv, &s[i]) + 1]++;
    for (size_t k = 1; k <= MAX_ELEMENT + 1; k++) {
        if (start[k] == m)
            return true; /* one element size (or none): in place already */
        start[k] += start[k - 1];
    }
    st_slot *out = trestle__bulk_calloc(m, sizeof *out);
    if (!out)
        return false;
    for (size_t i = 0; i < m; i++)
        out[start[size_class(cv, &s[i])]++] = s[i];
    memcpy(s, out, m * sizeof *s);
    trestle__bulk_free(out);
    return true;
}

/* Two adjacent slots of one name: refused, saying where the names came from. */
static int check_distinct(const cv_entry *a, const cv_entry *b, trestle_error *err)
{
    if (strcmp(a->out_name, b->out_name) != 0)
        return TRESTLE_OK;
    if (strcmp(a->name, b->name) == 0)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, b->name, NULL, -1, -1,
                                  "two ops are named %s; a safetensors file holds one tensor "
                                  "per name", b->name);
    return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, b->name, NULL, -1, -1,
                              "tensors %s and %s would both be named %s in the file; a "
                              "safetensors file holds one tensor per name", a->name, b->name,
                              b->out_name);
}

/* ---- JSON ---- */

/*
 * Where the header goes: `at` its first byte, or NULL to only count them.
 * The header is formatted twice, once counting and once into memory of
 * exactly that size, by the same code, so the length the file is laid out
 * with is the length written; a buffer grown as it went left its outgrown
 * copies (11 MiB at 100,000 tensors) in the heap, and a bound on it
 * touched three times the memory (issue 24).
 */
typedef struct jsink {
    uint8_t *at;
    size_t len;
} jsink;

static void put(jsink *s, const void *p, size_t n)
{
    if (s->at)
        memcpy(s->at + s->len, p, n);
    s->len += n;
}

static void put_str(jsink *s, const char *str)
{
    put(s, str, strlen(str));
}

static void put_u64(jsink *s, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof tmp;
    do
        tmp[--n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(s, tmp + n, sizeof tmp - n);
}

/* Bytes a JSON string cannot hold as they are (and the NUL that ends a
 * name): one table lookup a byte, where four tests took a visible share of
 * converting 100,000 tensors (issue 24). */
static const bool escaped[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
    [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
    [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};

/* A JSON string literal: quotes, backslashes and control bytes escaped
 * (the name is valid UTF-8, checked before). Runs of plain bytes go in
 * one put. */
static void put_json_string(jsink *s, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    put(s, "\"", 1);
    for (;;) {
        size_t run = 0;
        while (!escaped[(unsigned char)str[run]])
            run++;
        put(s, str, run);
        str += run;
        if (!*str)
            break;
        unsigned char ch = (unsigned char)*str++;
        if (ch == '"' || ch == '\\') {
            const char esc[2] = { '\\', (char)ch };
            put(s, esc, 2);
        } else {
            const char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
            put(s, esc, 6);
        }
    }
    put(s, "\"", 1);
}

/* The 8-byte length and the JSON header, padded with spaces to a multiple
 * of 8 (the data starts aligned). */
static void format_header(jsink *h, const trestle_conversion *cv, const st_slot *s, size_t n)
{
    put(h, "\0\0\0\0\0\0\0\0", 8);
    put_str(h, "{\"" METADATA_KEY "\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        const cv_entry *e = &cv->e[s[i].entry];
        put(h, ",", 1);
        put_json_string(h, e->out_name);
        put_str(h, ":{\"dtype\":\"");
        put_str(h, trestle__safetensors_dtype(e->out_dtype));
        put_str(h, "\",\"shape\":[");
        for (int d = 0; d < e->rank; d++) {
            if (d)
                put(h, ",", 1);
            put_u64(h, (uint64_t)e->dims[d]);
        }
        put_str(h, "],\"data_offsets\":[");
        put_u64(h, s[i].offset);
        put(h, ",", 1);
        put_u64(h, s[i].offset + e->bytes);
        put(h, "]}", 2);
    }
    put(h, "}", 1);
    while (h->len % HEADER_ALIGN)
        put(h, " ", 1);
    if (h->at)
        for (int i = 0; i < 8; i++)
            h->at[i] = (uint8_t)((uint64_t)(h->len - 8) >> (8 * i));
}

size_t trestle__safetensors_header_write(const trestle_conversion *cv, const st_slot *slots,
                                         size_t count, uint8_t *to)
{
    jsink h = { to, 0 };
    format_header(&h, cv, slots, count);
    return h.len;
}

int trestle__safetensors_layout(const trestle_conversion *cv, st_slot **slots, size_t *count,
                                uint64_t *header_bytes, uint64_t *data_bytes, trestle_error *err)
{
    st_slot *s = trestle__bulk_calloc(cv->n ? cv->n : 1, sizeof *s);
    size_t m = 0;
    uint64_t at = 0;
    int rc = TRESTLE_OK;
    *slots = NULL;
    TR_FAIL_IF(!s, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < cv->n; i++)
        if (!cv->e[i].skipped) {
            TR_FORWARD(check_name(&cv->e[i], err));
            s[m++].entry = i;
        }
    sort_by_name(s, m, cv);
    for (size_t i = 1; i < m; i++)
        TR_FORWARD(check_distinct(&cv->e[s[i - 1].entry], &cv->e[s[i].entry], err));
    TR_FAIL_IF(!order_by_alignment(s, m, cv), err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m; i++) {
        s[i].offset = at;
        at += cv->e[s[i].entry].bytes;
    }
    *header_bytes = trestle__safetensors_header_write(cv, s, m, NULL);
    *slots = s;
    *count = m;
    *data_bytes = at;
    return TRESTLE_OK;
fail:
    trestle__bulk_free(s);
    return rc;
}
