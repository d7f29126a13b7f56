/*
 * error.c - the one error type: codes, names and texts generated from
 * TRESTLE_ERROR_MAP in trestle.h, and the helpers that fill trestle_error.
 *
 * Nothing here keeps state: the error lives in the caller's struct.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "trestle_version.h"

const char *trestle_strerror(int code)
{
    switch (code) {
#define XX(name, value, text) case value: return text;
        TRESTLE_ERROR_MAP(XX)
#undef XX
    }
    return "unknown error";
}

const char *trestle_code_name(int code)
{
    switch (code) {
#define XX(name, value, text) case value: return #name;
        TRESTLE_ERROR_MAP(XX)
#undef XX
    }
    return "UNKNOWN";
}

unsigned trestle_version_number(void) { return TRESTLE_VERSION_NUMBER; }
const char *trestle_version_string(void) { return TRESTLE_VERSION_STRING; }

void trestle_error_clear(trestle_error *err)
{
    if (!err)
        return;
    err->code = TRESTLE_OK;
    err->sys_errno = 0;
    err->offset = -1;
    err->length = -1;
    err->key[0] = '\0';
    err->path[0] = '\0';
    err->message[0] = '\0';
}

static void copy_field(char *dst, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    /* Keys may be long; keep a truncated copy rather than nothing. */
    snprintf(dst, TRESTLE_ERROR_FIELD_MAX, "%s", src);
}

static int vset(trestle_error *err, int code, int sys_errno, const char *key, const char *path,
                int64_t offset, int64_t length, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->sys_errno = sys_errno;
    err->offset = offset;
    err->length = length;
    copy_field(err->key, key);
    copy_field(err->path, path);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return code;
}

int trestle__error_set(trestle_error *err, int code, int sys_errno, const char *key,
                       const char *path, int64_t offset, int64_t length, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, sys_errno, key, path, offset, length, fmt, ap);
    va_end(ap);
    return code;
}

int trestle__error_simple(trestle_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, 0, NULL, NULL, -1, -1, fmt, ap);
    va_end(ap);
    return code;
}

void trestle__error_prefix(trestle_error *err, const char *fmt, ...)
{
    char head[TRESTLE_ERROR_MESSAGE_MAX];
    char old[TRESTLE_ERROR_MESSAGE_MAX];
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    /* Assemble by hand: the message may be truncated, never overflowed. */
    memcpy(old, err->message, sizeof old);
    size_t n = strlen(head), cap = sizeof err->message - 1;
    if (n > cap)
        n = cap;
    memcpy(err->message, head, n);
    if (n + 2 <= cap) {
        memcpy(err->message + n, ": ", 2);
        n += 2;
    }
    size_t rest = strnlen(old, sizeof old);
    if (rest > cap - n)
        rest = cap - n;
    memcpy(err->message + n, old, rest);
    err->message[n + rest] = '\0';
}

void trestle__error_set_key(trestle_error *err, const char *key)
{
    if (err && key && err->key[0] == '\0')
        copy_field(err->key, key);
}
