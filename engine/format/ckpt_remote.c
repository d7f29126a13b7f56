/*
 * ckpt_remote.c - checkpoints in object stores (ckpt_remote.h).
 *
 * A URL is resolved as ckpt_path.c resolves a local path, in as few
 * requests as the common case allows: for a prefix, the GET of PREFIX.index
 * both finds and reads the index, so opening costs one request plus one
 * HEAD per shard, all HEADs at once. A "directory" (a URL whose .index
 * does not exist) is resolved through its `checkpoint` state file, by the
 * one state-file parser (state_file.c), then through a SavedModel's
 * variables/variables, then, where the store can list (s3://, gs://),
 * through the one *.index inside; an http(s) server cannot list, and the
 * error says so and asks for the prefix.
 *
 * Names kept in the checkpoint (prefix, index_path, shard_paths) are
 * display URLs: the query of a presigned URL and any user:password are
 * left out, so every message built from them, in every layer, is safe to
 * print. The requests themselves carry them (engine/remote/).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_remote.h"
#include "error.h"
#include "remote.h"
#include "state_file.h"

#define MAX_INDEX_BYTES (4ull << 30)

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Length of P when `key` is "P.data-NNNNN-of-MMMMM", else 0. */
static size_t data_key_prefix_len(const char *key)
{
    size_t n = strlen(key);
    if (n <= 20)
        return 0;
    const char *t = key + n - 20;
    if (memcmp(t, ".data-", 6) != 0 || memcmp(t + 11, "-of-", 4) != 0)
        return 0;
    for (int i = 0; i < 5; i++)
        if (t[6 + i] < '0' || t[6 + i] > '9' || t[15 + i] < '0' || t[15 + i] > '9')
            return 0;
    return (size_t)(t - key);
}

static char *cat(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", a, b) < 0)
        return NULL;
    return s;
}

static trestle__remote_config config_of(const trestle_open_options *o)
{
    trestle__remote_config cfg = { 0 };
    if (o) {
        cfg.connections = o->connections;
        cfg.attempts = o->attempts;
        cfg.backoff_ms = o->backoff_ms;
        cfg.backoff_max_ms = o->backoff_max_ms;
    }
    return cfg;
}

/*
 * GET PREFIX.index: TRESTLE_OK with the bytes, TRESTLE_E_NOT_FOUND quietly
 * (*missing set, err untouched) when there is none and `quiet`. A 403 is
 * "missing" too when quiet (S3 answers 403 for an absent key to a user who
 * may not list the bucket), its error kept in *forbidden (may be NULL) for
 * when nothing else is found.
 */
static int get_index(const trestle__store *s, const char *prefix, bool quiet, uint8_t **data,
                     size_t *len, bool *missing, trestle_error *err, trestle_error *forbidden)
{
    char *key = cat(prefix, ".index");
    trestle__object o = { .generation = -1 };
    trestle_error why;
    if (!key)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    *missing = false;
    int rc = trestle__remote_get(s, key, MAX_INDEX_BYTES, "trestle reads indexes up to 4 GiB",
                                 data, len, &o, &why);
    free(key);
    trestle__object_clear(&o);
    if (rc == TRESTLE_E_IO && o.http_status == 403 && quiet) {
        if (forbidden)
            *forbidden = why;
        rc = TRESTLE_E_NOT_FOUND;
    }
    if (rc == TRESTLE_E_NOT_FOUND)
        *missing = true;
    if (rc != TRESTLE_OK && !(quiet && *missing) && err)
        *err = why;
    return rc;
}

/* The plain display of a key, for the state-file parser to join to: root
 * and key, without the "?<redacted>" mark. */
static char *plain(const trestle__store *s, const char *key)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", trestle__store_root(s), key) < 0)
        return NULL;
    return p;
}

/*
 * DIR/NAME, the state file, if the store has it: *prefix_key (malloc'd)
 * receives the key of the checkpoint it names, or stays NULL when there is
 * no state file. `state_shown` (malloc'd) names the file for messages.
 */
static int read_state(const trestle__store *s, const char *dir, const char *name,
                      char **prefix_key, char **state_shown, trestle_error *err)
{
    char *key = NULL, *dir_shown = plain(s, dir), *latest = NULL;
    uint8_t *text = NULL;
    size_t len = 0;
    trestle_error why;
    trestle__object state = { .generation = -1 };
    int rc;

    *prefix_key = NULL;
    *state_shown = NULL;
    if (asprintf(&key, "%s%s%s", dir, *dir ? "/" : "", name ? name : "checkpoint") < 0)
        key = NULL;
    TR_FAIL_IF(!key || !dir_shown || !(*state_shown = trestle__store_display(s, key)), err,
               TRESTLE_E_NOMEM, "out of memory");
    rc = trestle__remote_get(s, key, TRESTLE__STATE_MAX_BYTES,
                             "a checkpoint state file is a few lines, and trestle reads at most "
                             "16 MiB", &text, &len, &state, &why);
    trestle__object_clear(&state);
    if (rc == TRESTLE_E_NOT_FOUND || (rc == TRESTLE_E_IO && state.http_status == 403)) {
        rc = TRESTLE_OK; /* no state file (or none we may see): TensorFlow's None */
        goto fail;
    }
    if (rc != TRESTLE_OK) {
        if (err)
            *err = why;
        goto fail;
    }
    TR_FORWARD(trestle__state_parse((const char *)text, len, dir_shown, *state_shown, &latest,
                                    NULL, NULL, err));
    /* Relative names were joined to DIR; an absolute one must be in this store. */
    size_t root = strlen(trestle__store_root(s));
    if (strncmp(latest, trestle__store_root(s), root) != 0 || latest[root] != '/') {
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, *state_shown, -1, -1,
                                "Couldn't match files for checkpoint %s (named by %s): it is not "
                                "in %s", latest, *state_shown, trestle__store_root(s));
        goto fail;
    }
    TR_FAIL_IF(!(*prefix_key = strdup(latest + root + 1)), err, TRESTLE_E_NOMEM, "out of memory");
fail:
    free(latest);
    free(text);
    free(key);
    free(dir_shown);
    return rc;
}

/* A "directory" without a state file: a SavedModel's variables, else the
 * one index a listing finds. *list_refused: the store would not list it
 * (the error then says so, why, and asks for the prefix). */
static int resolve_bare_dir(const trestle__store *s, const char *dir, char **prefix,
                            uint8_t **index, size_t *len, bool *list_refused,
                            trestle_error *err)
{
    bool missing;
    *list_refused = false;
    char *shown = trestle__store_display(s, dir), *index_key = cat(dir, ".index");
    char *index_shown = index_key ? trestle__store_display(s, index_key) : NULL;
    char **keys = NULL;
    size_t n = 0;
    int rc;

    TR_FAIL_IF(!shown || !index_shown ||
                   asprintf(prefix, "%s%svariables/variables", dir, *dir ? "/" : "") < 0,
               err, TRESTLE_E_NOMEM, "out of memory");
    rc = get_index(s, *prefix, true, index, len, &missing, err, NULL);
    if (rc == TRESTLE_OK || !missing)
        goto fail;
    free(*prefix);
    *prefix = NULL;
    char *list_prefix = NULL;
    TR_FAIL_IF(asprintf(&list_prefix, "%s%s", dir, *dir ? "/" : "") < 0, err, TRESTLE_E_NOMEM,
               "out of memory");
    rc = trestle__remote_list(s, list_prefix, ".index", &keys, &n, err);
    free(list_prefix);
    if (rc == TRESTLE_E_UNSUPPORTED) {
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, 0, NULL, shown, -1, -1,
                                "no checkpoint at %s: no %s, no `checkpoint` state file and no "
                                "variables/variables.index under it, and an http(s) server "
                                "cannot be asked for a listing: give the checkpoint prefix (its "
                                ".index URL without \".index\")", shown, index_shown);
        goto fail;
    }
    if (rc != TRESTLE_OK && rc != TRESTLE_E_NOMEM) {
        /* Stores often grant reads but not listings (S3's ListBucket): what
         * is missing is still the checkpoint, and the prefix is the cure. */
        char why[TRESTLE_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err ? err->message : "");
        *list_refused = true;
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, 0, NULL, shown, -1, -1,
                                "no checkpoint at %s: no %s, no `checkpoint` state file and no "
                                "variables/variables.index under it, and it could not be listed "
                                "(%.400s): give the checkpoint prefix (its .index URL without "
                                "\".index\")", shown, index_shown, why);
        goto fail;
    }
    if (rc != TRESTLE_OK)
        goto fail;
    if (n != 1) {
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, n ? 0 : ENOENT, NULL, shown, -1, -1,
                                n ? "%s holds %zu *.index objects and no `checkpoint` state file: "
                                    "name the prefix to open"
                                  : "no checkpoint at %s: no `checkpoint` state file, no "
                                    "variables/variables.index and no *.index object under it%.0zu",
                                shown, n);
        goto fail;
    }
    TR_FAIL_IF(!(*prefix = strndup(keys[0], strlen(keys[0]) - 6)), err, TRESTLE_E_NOMEM,
               "out of memory");
    rc = get_index(s, *prefix, false, index, len, &missing, err, NULL);
fail:
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(shown);
    free(index_shown);
    free(index_key);
    if (rc != TRESTLE_OK) {
        free(*prefix);
        *prefix = NULL;
    }
    return rc;
}

/* `key` names no checkpoint and no directory: say what was tried. */
static int not_a_prefix(const trestle__store *s, const char *key, trestle_error *err)
{
    char *shown = trestle__store_display(s, key), *index_key = cat(key, ".index");
    char *index_shown = index_key ? trestle__store_display(s, index_key) : NULL;
    int rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, shown, -1, -1,
                                "no checkpoint at %s: %s does not exist, and it is no directory "
                                "with a `checkpoint` state file", shown ? shown : key,
                                index_shown ? index_shown : key);
    free(index_shown);
    free(index_key);
    free(shown);
    return rc;
}

/* Resolve `key` to a prefix key (malloc'd) and read its index. */
static int resolve(const trestle__store *s, const char *key, char **prefix, uint8_t **index,
                   size_t *len, trestle_error *err)
{
    bool missing = false;
    size_t n;
    char *dir = NULL, *state_shown = NULL;
    trestle_error forbidden;
    int rc;

    *prefix = NULL;
    forbidden.code = TRESTLE_OK;
    if (ends_with(key, ".index") && strlen(key) > 6) {
        *prefix = strndup(key, strlen(key) - 6);
    } else if ((n = data_key_prefix_len(key)) > 0) {
        *prefix = strndup(key, n);
    } else {
        size_t k = strlen(key);
        while (k > 0 && key[k - 1] == '/')
            k--;
        bool dir_only = k < strlen(key) || k == 0; /* "gs://b/dir/" or the bucket */
        TR_FAIL_IF(!(dir = strndup(key, k)), err, TRESTLE_E_NOMEM, "out of memory");
        if (!dir_only) {
            rc = get_index(s, dir, true, index, len, &missing, err, &forbidden);
            if (rc == TRESTLE_OK)
                *prefix = dir, dir = NULL;
            if (rc == TRESTLE_OK || !missing)
                goto fail;
        }
        /* A directory: the state file, as tf.train.latest_checkpoint. */
        TR_FORWARD(read_state(s, dir, NULL, prefix, &state_shown, err));
        if (!*prefix) {
            bool list_refused;
            rc = resolve_bare_dir(s, dir, prefix, index, len, &list_refused, err);
            /* A 403 for DIR.index is the answer when nothing else was found,
             * unless the listing was refused too: then that message, which
             * names the refusal and asks for the prefix, says more. */
            if (rc == TRESTLE_E_NOT_FOUND && forbidden.code != TRESTLE_OK && !list_refused) {
                rc = forbidden.code; /* nothing else found: the refusal was the answer */
                if (err)
                    *err = forbidden;
            } else if (rc == TRESTLE_E_NOT_FOUND && !dir_only && err &&
                       err->sys_errno == ENOENT) {
                rc = not_a_prefix(s, dir, err);
            }
            goto fail;
        }
        rc = get_index(s, *prefix, true, index, len, &missing, err, NULL);
        if (rc != TRESTLE_OK && missing) {
            char *shown = trestle__store_display(s, *prefix);
            rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, state_shown, -1, -1,
                                    "Couldn't match files for checkpoint %s (named by %s)",
                                    shown ? shown : *prefix, state_shown);
            free(shown);
        }
        goto fail;
    }
    TR_FAIL_IF(!*prefix, err, TRESTLE_E_NOMEM, "out of memory");
    rc = get_index(s, *prefix, false, index, len, &missing, err, NULL);
fail:
    if (rc != TRESTLE_OK) {
        free(*prefix);
        *prefix = NULL;
    }
    free(dir);
    free(state_shown);
    return rc;
}

int trestle__remote_open_index(trestle_checkpoint *c, const char *url,
                               const trestle_open_options *o, uint8_t **index, size_t *len,
                               trestle_error *err)
{
    trestle__remote_config cfg = config_of(o);
    char *key = NULL, *prefix = NULL;
    int rc;

    TR_FORWARD(trestle__store_open(url, &cfg, &c->store, &key, err));
    TR_FORWARD(resolve(c->store, key, &prefix, index, len, err));
    c->prefix = trestle__store_display(c->store, prefix);
    char *index_key = cat(prefix, ".index");
    c->index_path = index_key ? trestle__store_display(c->store, index_key) : NULL;
    free(index_key);
    TR_FAIL_IF(!c->prefix || !c->index_path, err, TRESTLE_E_NOMEM, "out of memory");
    /* The shards' keys are made from the prefix key, kept as the first
     * shard object's until trestle__remote_shards_init() names them. */
    c->remote_shards = calloc(1, sizeof *c->remote_shards);
    TR_FAIL_IF(!c->remote_shards, err, TRESTLE_E_NOMEM, "out of memory");
    c->remote_shards[0].key = prefix;
    prefix = NULL;
fail:
    free(key);
    free(prefix);
    return rc;
}

/* ---- shards ---- */

int trestle__remote_shards_init(trestle_checkpoint *c, bool require_all, trestle_error *err)
{
    size_t n = (size_t)c->num_shards;
    char *prefix = c->remote_shards[0].key;
    trestle__xfer *xs = NULL;
    int rc = TRESTLE_OK;

    c->remote_shards[0].key = NULL;
    free(c->remote_shards);
    c->remote_shards = calloc(n, sizeof *c->remote_shards);
    c->shard_paths = calloc(n, sizeof *c->shard_paths);
    c->shard_fds = malloc(n * sizeof *c->shard_fds);
    c->shard_errno = calloc(n, sizeof *c->shard_errno);
    c->shard_sizes = calloc(n, sizeof *c->shard_sizes);
    c->shard_state = calloc(n, sizeof *c->shard_state);
    xs = calloc(n, sizeof *xs);
    TR_FAIL_IF(!c->remote_shards || !c->shard_paths || !c->shard_fds || !c->shard_errno ||
               !c->shard_sizes || !c->shard_state || !xs, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        trestle__object *o = &c->remote_shards[i];
        c->shard_fds[i] = -1;
        o->generation = -1;
        /* Names come from the header's num_shards, like TF's DataFilename. */
        if (asprintf(&o->key, "%s.data-%05zu-of-%05d", prefix, i, c->num_shards) < 0) {
            o->key = NULL;
            rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
            goto fail;
        }
        o->display = trestle__store_display(c->store, o->key);
        c->shard_paths[i] = o->display ? strdup(o->display) : NULL;
        TR_FAIL_IF(!c->shard_paths[i], err, TRESTLE_E_NOMEM, "out of memory");
        xs[i] = (trestle__xfer){ .kind = TRESTLE__XFER_HEAD, .obj = o };
    }
    unsigned conns = trestle__store_config(c->store)->connections;
    TR_FORWARD(trestle__fetch_all(c->store, xs, n, n < conns ? (unsigned)n : conns, NULL, err));
    for (size_t i = 0; i < n; i++) {
        trestle__object *o = &c->remote_shards[i];
        if (xs[i].status == TRESTLE_OK) {
            c->shard_sizes[i] = o->size;
            c->shard_state[i] = TRESTLE__SHARD_OPEN;
            continue;
        }
        /* Keep "HTTP 404 Not Found" of "HEAD URL: HTTP 404 Not Found". */
        const char *m = xs[i].err.message;
        size_t skip = strlen("HEAD ") + strlen(o->display) + 2;
        snprintf(o->why, sizeof o->why, "%s", strncmp(m, "HEAD ", 5) == 0 &&
                                              strlen(m) > skip ? m + skip : m);
        o->code = xs[i].status;
        c->shard_errno[i] = o->code == TRESTLE_E_NOT_FOUND ? ENOENT : EIO;
        c->shard_state[i] = TRESTLE__SHARD_MISSING;
        if (require_all)
            TR_FORWARD(trestle__remote_shard_check(c, (int)i, NULL, 0, err));
    }
fail:
    free(xs);
    free(prefix);
    return rc;
}

int trestle__remote_shard_check(const trestle_checkpoint *c, int shard, const char *key,
                                uint64_t offset, trestle_error *err)
{
    const trestle__object *o = &c->remote_shards[shard];
    if (c->shard_state[shard] == TRESTLE__SHARD_OPEN)
        return TRESTLE_OK;
    int code = o->code == TRESTLE_E_NOT_FOUND ? TRESTLE_E_NOT_FOUND : TRESTLE_E_IO;
    if (!key)
        return trestle__error_set(err, code, c->shard_errno[shard], NULL, o->display, -1, -1,
                                  "cannot fetch data shard %s: %s", o->display, o->why);
    return trestle__error_set(err, code, c->shard_errno[shard], key, o->display,
                              (int64_t)offset, -1,
                              "tensor '%s' needs data shard %s, which could not be fetched: %s",
                              key, o->display, o->why);
}

int trestle__remote_shard_read(const trestle_checkpoint *c, int shard, uint64_t offset,
                               void *buf, uint64_t n, const char *key, trestle_error *err)
{
    int rc = trestle__remote_shard_check(c, shard, key, offset, err);
    if (rc == TRESTLE_OK)
        rc = trestle__remote_read(c->store, &c->remote_shards[shard], offset, buf, n, err);
    if (rc != TRESTLE_OK && key && err && err->key[0] == '\0') {
        trestle__error_prefix(err, "reading tensor '%s'", key);
        trestle__error_set_key(err, key);
    }
    return rc;
}

void trestle__remote_free(trestle_checkpoint *c)
{
    /* One object (the prefix) until trestle__remote_shards_init() made them all. */
    int n = c->shard_state ? c->num_shards : 1;
    for (int i = 0; c->remote_shards && i < n; i++)
        trestle__object_clear(&c->remote_shards[i]);
    free(c->remote_shards);
    c->remote_shards = NULL;
    trestle__store_free(c->store);
    c->store = NULL;
}

/* ---- the state file, on its own ---- */

int trestle__remote_latest(const char *dir, const char *state_name, char **out,
                           trestle_error *err)
{
    trestle__store *s = NULL;
    char *key = NULL, *prefix = NULL, *state_shown = NULL, *index_key = NULL;
    trestle__object idx = { .generation = -1 };
    int rc;

    TR_FORWARD(trestle__store_open(dir, NULL, &s, &key, err));
    for (size_t k = strlen(key); k > 0 && key[k - 1] == '/'; k--)
        key[k - 1] = '\0';
    TR_FORWARD(read_state(s, key, state_name, &prefix, &state_shown, err));
    if (!prefix)
        goto fail; /* no state file: NULL, as TensorFlow's None */
    TR_FAIL_IF(!(index_key = cat(prefix, ".index")) || !(idx.key = strdup(index_key)) ||
                   !(idx.display = trestle__store_display(s, index_key)),
               err, TRESTLE_E_NOMEM, "out of memory");
    trestle__xfer x = { .kind = TRESTLE__XFER_HEAD, .obj = &idx };
    TR_FORWARD(trestle__fetch_all(s, &x, 1, 1, NULL, err));
    if (x.status == TRESTLE_E_NOT_FOUND) {
        char *shown = trestle__store_display(s, prefix);
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, state_shown, -1, -1,
                                "Couldn't match files for checkpoint %s (named by %s)",
                                shown ? shown : prefix, state_shown);
        free(shown);
        goto fail;
    }
    if (x.status != TRESTLE_OK) {
        rc = x.status;
        if (err)
            *err = x.err;
        goto fail;
    }
    TR_FAIL_IF(!(*out = trestle__store_user_url(s, prefix)), err, TRESTLE_E_NOMEM,
               "out of memory");
fail:
    trestle__object_clear(&idx);
    free(index_key);
    free(state_shown);
    free(prefix);
    free(key);
    trestle__store_free(s);
    return rc;
}

/* ---- public calls ---- */

int trestle_is_url(const char *path) { return trestle__is_url(path); }

void trestle_url_redact(const char *path, char *buf, size_t cap)
{
    if (trestle__is_url(path))
        trestle__url_redact(path, buf, cap);
    else
        snprintf(buf, cap, "%s", path);
}

int trestle_url_read(const char *url, uint64_t max_bytes, void **data, size_t *len,
                     trestle_error *err)
{
    trestle__store *s = NULL;
    char *key = NULL;
    uint8_t *bytes = NULL;
    int rc;

    trestle_error_clear(err);
    if (!data || !len)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "trestle_url_read: NULL %s",
                                     data ? "len" : "data");
    *data = NULL;
    *len = 0;
    TR_FORWARD(trestle__store_open(url, NULL, &s, &key, err));
    TR_FORWARD(trestle__remote_get(s, key, max_bytes ? max_bytes : UINT64_MAX - 1,
                                   "larger than the caller's limit", &bytes, len, NULL, err));
    *data = bytes;
fail:
    free(key);
    trestle__store_free(s);
    return rc;
}

/* ---- a shard's pinned version (trestle.h) ---- */

int trestle_shard_version(const trestle_checkpoint *c, int shard, uint64_t *bytes,
                          char *validator, size_t cap)
{
    if (!c || shard < 0 || shard >= c->num_shards || !bytes || !validator || cap == 0)
        return TRESTLE_E_INVALID_ARG;
    validator[0] = '\0';
    *bytes = c->shard_sizes ? c->shard_sizes[shard] : 0;
    if (!c->remote_shards) /* a local file: its size and mtime are its version */
        return TRESTLE_OK;
    const trestle__object *o = &c->remote_shards[shard];
    if (c->shard_state[shard] != TRESTLE__SHARD_OPEN) /* its HEAD failed */
        return TRESTLE_E_NOT_FOUND;
    /* What later reads are pinned to: the generation (GCS) and the ETag,
     * else the Last-Modified time the store gave instead of an ETag. */
    char gen[40] = "";
    if (o->generation >= 0)
        snprintf(gen, sizeof gen, "generation %" PRId64 "%s", o->generation,
                 o->etag[0] || o->last_modified[0] ? ", " : "");
    int n = snprintf(validator, cap, "%s%s%s", gen,
                     o->etag[0] ? "ETag " : o->last_modified[0] ? "Last-Modified " : "",
                     o->etag[0] ? o->etag : o->last_modified);
    return n < 0 || (size_t)n >= cap ? TRESTLE_E_LIMIT : TRESTLE_OK;
}
