/*
 * state_file.c - the `checkpoint` state file: a text-format CheckpointState
 * (proto/checkpoint_state.proto) naming the latest checkpoint prefix of a
 * directory, as tf.train.latest_checkpoint reads it (tf-checkpoint-format §7).
 *
 * A tiny text-format reader: `name: value` pairs in any order, repeated
 * fields, double- or single-quoted strings with C escapes, numbers, and
 * `#` comments. Unknown fields are skipped, as newer TF adds some.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "regular_file.h"
#include "remote.h"
#include "state_file.h"

typedef struct lexer {
    const char *p, *end;
} lexer;

static void skip_space(lexer *lx)
{
    while (lx->p < lx->end) {
        if (isspace((unsigned char)*lx->p)) {
            lx->p++;
        } else if (*lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
        } else {
            break;
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Parse a quoted string at lx->p into out (NUL-terminated). */
static bool parse_string(lexer *lx, trestle__buf *out)
{
    char quote = *lx->p++;
    while (lx->p < lx->end && *lx->p != quote) {
        char c = *lx->p++;
        if (c == '\n')
            return false;
        if (c == '\\') {
            if (lx->p >= lx->end)
                return false;
            c = *lx->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'a': c = '\a'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'v': c = '\v'; break;
            case 'x': {
                int v = 0, digits = 0;
                while (digits < 2 && lx->p < lx->end && hexval(*lx->p) >= 0)
                    v = v * 16 + hexval(*lx->p++), digits++;
                if (digits == 0)
                    return false;
                c = (char)v;
                break;
            }
            default:
                if (c >= '0' && c <= '7') {
                    int v = c - '0', digits = 1;
                    while (digits < 3 && lx->p < lx->end && *lx->p >= '0' && *lx->p <= '7')
                        v = v * 8 + (*lx->p++ - '0'), digits++;
                    c = (char)v;
                }
                break; /* \" \\ \' and others stand for themselves */
            }
        }
        if (!trestle__buf_append(out, &c, 1))
            return false;
    }
    if (lx->p >= lx->end)
        return false;
    lx->p++; /* closing quote */
    return trestle__buf_append(out, "", 1);
}

/* Join a relative path to dir, as os.path.join does; absolute paths stay,
 * and so does a URL (a TF1 Saver on GCS writes gs://BUCKET/DIR/model.ckpt-N). */
static char *join_dir(const char *dir, const char *path)
{
    if (path[0] == '/' || dir[0] == '\0' || trestle__is_url(path))
        return strdup(path);
    size_t a = strlen(dir), b = strlen(path);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    size_t n = a;
    if (a > 0 && dir[a - 1] != '/')
        s[n++] = '/';
    memcpy(s + n, path, b + 1);
    return s;
}

/* Fail with TRESTLE_E_CORRUPT naming the state file and the byte at `at`. */
#define STATE_FAIL_IF(cond, at, ...)                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, file_path,        \
                                    (int64_t)((at) - text), -1, __VA_ARGS__);          \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

int trestle__state_parse(const char *text, size_t len, const char *dir, const char *file_path,
                         char **out, char ***all_out, size_t *n_all, trestle_error *err)
{
    lexer lx = { text, text + len };
    trestle__buf latest = { 0 }, str = { 0 };
    char **all = NULL;
    size_t nall = 0;
    int rc = TRESTLE_OK;

    *out = NULL;
    for (;;) {
        skip_space(&lx);
        if (lx.p >= lx.end)
            break;
        const char *name = lx.p;
        while (lx.p < lx.end && (isalnum((unsigned char)*lx.p) || *lx.p == '_'))
            lx.p++;
        size_t name_len = (size_t)(lx.p - name);
        STATE_FAIL_IF(name_len == 0, lx.p, "%s: unparseable checkpoint state at byte %zu",
                      file_path, (size_t)(lx.p - text));
        skip_space(&lx);
        if (lx.p < lx.end && *lx.p == ':')
            lx.p++;
        skip_space(&lx);
        STATE_FAIL_IF(lx.p >= lx.end, lx.p, "%s: field without a value at byte %zu", file_path,
                      (size_t)(lx.p - text));
        if (*lx.p == '"' || *lx.p == '\'') {
            const char *quote = lx.p;
            str.len = 0;
            STATE_FAIL_IF(!parse_string(&lx, &str), quote, "%s: bad string at byte %zu",
                          file_path, (size_t)(quote - text));
            if (name_len == 21 && memcmp(name, "model_checkpoint_path", 21) == 0) {
                latest.len = 0;
                TR_FAIL_IF(!trestle__buf_append(&latest, str.data, str.len), err,
                           TRESTLE_E_NOMEM, "out of memory");
            } else if (name_len == 26 && memcmp(name, "all_model_checkpoint_paths", 26) == 0 &&
                       all_out) {
                char **grown = realloc(all, (nall + 1) * sizeof *all);
                TR_FAIL_IF(!grown, err, TRESTLE_E_NOMEM, "out of memory");
                all = grown;
                all[nall] = join_dir(dir, (const char *)str.data);
                TR_FAIL_IF(!all[nall], err, TRESTLE_E_NOMEM, "out of memory");
                nall++;
            }
        } else {
            /* A number or enum identifier: skip it. */
            const char *v = lx.p;
            while (lx.p < lx.end && !isspace((unsigned char)*lx.p))
                lx.p++;
            STATE_FAIL_IF(lx.p == v, v, "%s: bad value at byte %zu", file_path,
                          (size_t)(v - text));
        }
    }
    /* TensorFlow's own words (a ValueError in get_checkpoint_state). */
    if (latest.len <= 1) {
        rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, file_path, -1, -1,
                                "Invalid checkpoint state loaded from %s", dir);
        goto fail;
    }
    /* A NUL would cut the path short: the file names another one than it says. */
    STATE_FAIL_IF(memchr(latest.data, 0, latest.len - 1) != NULL, text,
                  "%s: model_checkpoint_path holds a NUL byte", file_path);
    *out = join_dir(dir, (const char *)latest.data);
    TR_FAIL_IF(!*out, err, TRESTLE_E_NOMEM, "out of memory");
    trestle__buf_free(&latest);
    trestle__buf_free(&str);
    if (all_out) {
        *all_out = all;
        *n_all = nall;
    }
    return TRESTLE_OK;

fail:
    trestle__buf_free(&latest);
    trestle__buf_free(&str);
    for (size_t i = 0; i < nall; i++)
        free(all[i]);
    free(all);
    return rc;
}

int trestle__state_read(const char *dir, const char *name, char **out, trestle_error *err)
{
    static const trestle__file_rule state_rule = {
        .what = "the checkpoint state file",
        .max_bytes = TRESTLE__STATE_MAX_BYTES,
        .limit = "a checkpoint state file is a few lines, and trestle reads at most 16 MiB",
    };
    char *path = join_dir(dir, name ? name : "checkpoint"), *text = NULL;
    size_t len = 0;
    trestle_error why;
    *out = NULL;
    if (!path)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    int rc = trestle__file_read_regular(path, &state_rule, &text, &len, &why);
    if (rc != TRESTLE_OK && (why.sys_errno == ENOENT || why.sys_errno == ENOTDIR)) {
        rc = TRESTLE_OK; /* no state file: TensorFlow's None, not an error */
    } else if (rc != TRESTLE_OK) {
        if (err)
            *err = why;
    } else {
        rc = trestle__state_parse(text, len, dir, path, out, NULL, NULL, err);
    }
    free(text);
    free(path);
    return rc;
}
