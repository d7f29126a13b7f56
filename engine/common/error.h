/*
 * error.h - filling trestle_error, and the guard-clause macros the engine
 * uses to fail with a located message and jump to one cleanup label.
 */
#ifndef TRESTLE_ERROR_H
#define TRESTLE_ERROR_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>

#include "trestle.h"

/*
 * Fill `err` (if not NULL) with `code`, the structured facts, and a message
 * made from `fmt`. `key` and `path` may be NULL; `offset`/`length` may be -1.
 * Returns `code`, so callers can write `return trestle__fail(...)`.
 */
int trestle__error_set(trestle_error *err, int code, int sys_errno, const char *key,
                       const char *path, int64_t offset, int64_t length, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Shorthand for errors that name no tensor or file. */
int trestle__error_simple(trestle_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an already-filled error's message with "context: " (for callers
 * that know more, e.g. the tensor being read when a shard read failed). */
void trestle__error_prefix(trestle_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copy key into err->key when the error does not name one yet. */
void trestle__error_set_key(trestle_error *err, const char *key);

/*
 * Guard clauses (zstd's RETURN_ERROR_IF style): set `rc` and the error, then
 * jump to `fail`. The enclosing function must declare `int rc` and a `fail:`
 * label that frees everything it owns.
 */
#define TR_FAIL_IF(cond, err, code, ...)                                        \
    do {                                                                        \
        if (cond) {                                                             \
            rc = trestle__error_simple((err), (code), __VA_ARGS__);            \
            goto fail;                                                          \
        }                                                                       \
    } while (0)

/* Propagate a non-zero code from a callee that already filled the error. */
#define TR_FORWARD(expr)                                                        \
    do {                                                                        \
        rc = (expr);                                                            \
        if (rc != TRESTLE_OK)                                                   \
            goto fail;                                                          \
    } while (0)

#endif /* TRESTLE_ERROR_H */
