/*
 * remote_listing.c - what an object store's listing says (remote_listing.h):
 * the keys of a ListObjectsV2 answer (S3, and GCS's XML API) and its
 * continuation token, read from XML as text. The answer is untrusted input,
 * fuzzed (tests/fuzz/fuzz_listing.c); remote_sync.c asks for it.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "remote_listing.h"
#include "trestle.h"

/* One XML character reference, `p` just past its "&#" and `e` at its ";" (code
 * point N as "N", or "xH"), as UTF-8 into out; its length, or 0 when it
 * is no character (0, a surrogate, past U+10FFFF, not a number). */
static size_t char_ref(const char *p, const char *e, char *out)
{
    unsigned long c = 0;
    bool hex = p < e && (*p == 'x' || *p == 'X');
    p += hex;
    if (p == e)
        return 0;
    for (; p < e; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0'
                : hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
        if (d < 0 || (c = c * (hex ? 16 : 10) + (unsigned long)d) > 0x10FFFF)
            return 0;
    }
    if (c == 0 || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    if (c < 0x80)
        return out[0] = (char)c, 1;
    if (c < 0x800)
        return out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000)
        return out[0] = (char)(0xE0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 63)),
               out[2] = (char)(0x80 | (c & 63)), 3;
    return out[0] = (char)(0xF0 | c >> 18), out[1] = (char)(0x80 | (c >> 12 & 63)),
           out[2] = (char)(0x80 | (c >> 6 & 63)), out[3] = (char)(0x80 | (c & 63)), 4;
}

/* The n bytes of XML character data at p as text (malloc'd, or NULL when
 * out of memory): S3 and GCS write '&', '<' and '>' in a listed key as
 * entities, and may write any character as a reference. A malformed one
 * stays as it is. No reference is longer as text than as XML. */
static char *xml_text(const char *p, size_t n)
{
    static const struct { const char *name; char c; } entity[] = {
        { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
    };
    char *out = malloc(n + 1), *w = out;
    const char *end = p + n;
    if (!out)
        return NULL;
    while (p < end) {
        const char *semi = *p == '&' ? memchr(p, ';', (size_t)(end - p)) : NULL;
        size_t len = 0, k;
        if (semi && p[1] == '#')
            len = char_ref(p + 2, semi, w);
        for (k = 0; semi && !len && k < sizeof entity / sizeof entity[0]; k++)
            if ((size_t)(semi - p - 1) == strlen(entity[k].name) &&
                memcmp(p + 1, entity[k].name, (size_t)(semi - p - 1)) == 0)
                len = 1, *w = entity[k].c;
        if (len) {
            w += len;
            p = semi + 1;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

int trestle__listing_keys(const char *xml, const char *suffix, char ***keys, size_t *n)
{
    size_t cap = 0, sl = strlen(suffix);
    for (const char *p = xml; (p = strstr(p, "<Key>")) != NULL;) {
        p += 5;
        const char *e = strstr(p, "</Key>");
        if (!e)
            break;
        char *key = xml_text(p, (size_t)(e - p));
        if (!key)
            return TRESTLE_E_NOMEM;
        size_t kl = strlen(key);
        if (kl >= sl && memcmp(key + kl - sl, suffix, sl) == 0) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 8;
                char **grown = realloc(*keys, cap * sizeof *grown);
                if (!grown) {
                    free(key);
                    return TRESTLE_E_NOMEM;
                }
                *keys = grown;
            }
            (*keys)[(*n)++] = key;
        } else {
            free(key);
        }
        p = e;
    }
    return TRESTLE_OK;
}

char *trestle__listing_token(const char *xml)
{
    const char *t = strstr(xml, "<IsTruncated>true</IsTruncated>") ?
                    strstr(xml, "<NextContinuationToken>") : NULL;
    if (!t)
        return NULL;
    t += strlen("<NextContinuationToken>");
    const char *e = strstr(t, "</NextContinuationToken>");
    return e && e > t ? xml_text(t, (size_t)(e - t)) : NULL;
}
