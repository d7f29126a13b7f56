/*
 * checkpoint.c - open a checkpoint: resolve the prefix, read the whole
 * .index, parse the header and every BundleEntryProto, validate each number
 * against the format, measure the shard files (ckpt_shard.c; they are
 * opened later, when needed), and keep the entries in key order.
 *
 * This is the trust boundary: after trestle_open() succeeds, every entry's
 * dtype, shape and size are known to be consistent and every byte range is
 * inside its shard as measured, or marked past_end (a truncated shard), so
 * the planner and the pipeline never re-check file numbers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "checkpoint.h"
#include "ckpt_entry.h"
#include "ckpt_path.h"
#include "ckpt_remote.h"
#include "ckpt_shard.h"
#include "ckpt_slices.h"
#include "crc32c.h"
#include "error.h"
#include "options.h"
#include "regular_file.h"
#include "remote.h"
#include "sstable.h"

#define MAX_INDEX_BYTES (4ull << 30) /* a 4 GiB index is already absurd */
#define MAX_SHARDS (1 << 20)

void trestle_open_options_init(trestle_open_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->verify_index = 1;
}

/*
 * Read the whole index into memory (small, read once), by the one rule for
 * files a user names (regular_file.h): a FIFO, device or directory is
 * refused, naming what it is, without blocking, and so is an index over
 * 4 GiB. Every message carries the errno of the call that failed, or none.
 */
static int slurp(const char *path, uint8_t **out, size_t *len, trestle_error *err)
{
    static const trestle__file_rule index_rule = {
        .what = NULL, .max_bytes = MAX_INDEX_BYTES, .limit = "trestle reads indexes up to 4 GiB"
    };
    char *buf;
    int rc = trestle__file_read_regular(path, &index_rule, &buf, len, err);
    *out = (uint8_t *)buf;
    return rc;
}

/* ---- scanning: header first, then entries ---- */

typedef struct scan_ctx {
    trestle_checkpoint *c;
    size_t cap;          /* allocated entries */
    bool have_header;
} scan_ctx;

static int visit(void *user, const uint8_t *key, size_t key_len, const uint8_t *value,
                 size_t value_len, uint64_t value_offset, trestle_error *err)
{
    scan_ctx *s = user;
    trestle_checkpoint *c = s->c;

    if (!s->have_header) {
        /* TF seeks to "" and takes what it finds; we insist it is the header. */
        if (key_len != 0)
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, c->index_path,
                                      (int64_t)value_offset, -1,
                                      "Unable to read file (%s). Perhaps the file is corrupt or "
                                      "was produced by a newer version of TensorFlow with format "
                                      "changes (failed to seek to header entry)",
                                      c->index_path);
        s->have_header = true;
        return trestle__header_parse(c, value, value_len, value_offset, err);
    }
    if (c->num_entries == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        trestle__entry *grown = realloc(c->entries, cap * sizeof *grown);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        c->entries = grown;
        s->cap = cap;
    }
    trestle__entry *e = &c->entries[c->num_entries];
    memset(e, 0, sizeof *e);
    e->key = malloc(key_len + 1);
    if (!e->key)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    e->key_len = key_len;
    e->index_offset = value_offset;
    c->num_entries++; /* counted now so a failure below still frees it */
    return trestle__entry_parse(c, e, value, value_len, err);
}

/* ---- shard files ---- */

/*
 * Mark every byte range that does not lie inside its shard file as it was
 * at open. Such a checkpoint still opens and lists (a truncated copy is
 * worth inspecting); reading those tensors fails, naming each. With
 * require_all the first one fails the open.
 */
static int check_ranges(trestle_checkpoint *c, bool require_all, trestle_error *err)
{
    for (size_t i = 0; i < c->num_entries; i++) {
        trestle__entry *e = &c->entries[i];
        if (e->kind == TRESTLE__ENTRY_PARTITIONED ||
            c->shard_state[e->shard] == TRESTLE__SHARD_MISSING ||
            c->shard_state[e->shard] == TRESTLE__SHARD_IRREGULAR)
            continue;
        uint64_t end;
        e->past_end = !tr_add_u64(e->offset, e->size, &end) || end > c->shard_sizes[e->shard];
        if (e->past_end && require_all)
            return trestle__entry_past_end(c, e, err);
    }
    return TRESTLE_OK;
}

static int build_listing(trestle_checkpoint *c, trestle_error *err)
{
    c->listed = malloc((c->num_entries ? c->num_entries : 1) * sizeof *c->listed);
    if (!c->listed)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->num_entries; i++) {
        const trestle__entry *e = &c->entries[i];
        if (e->kind == TRESTLE__ENTRY_SLICE_PART)
            continue;
        c->listed[c->num_listed++] = i;
        c->data_bytes += e->size;
        if (e->kind == TRESTLE__ENTRY_OBJECT_GRAPH)
            c->object_based = true;
    }
    return TRESTLE_OK;
}

int trestle_open(const char *path, const trestle_open_options *opt, trestle_checkpoint **out,
                 trestle_error *err)
{
    trestle_open_options o;
    trestle_checkpoint *c = NULL;
    uint8_t *index = NULL;
    size_t index_len = 0;
    trestle__table_stats ts = { 0 };
    int rc;

    trestle_error_clear(err);
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    trestle_open_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_open_options, &o, opt,
                                     TRESTLE__OPEN_OPTIONS_FIRST_SIZE, err));
    c = calloc(1, sizeof *c);
    TR_FAIL_IF(!c, err, TRESTLE_E_NOMEM, "out of memory");
    if (trestle__is_url(path)) {
        /* An object store: the index in one GET (ckpt_remote.c). */
        TR_FORWARD(trestle__remote_open_index(c, path, &o, &index, &index_len, err));
    } else {
        TR_FORWARD(trestle__resolve_prefix(path, &c->prefix, err));
        TR_FAIL_IF(asprintf(&c->index_path, "%s.index", c->prefix) < 0, err, TRESTLE_E_NOMEM,
                   "out of memory");
        TR_FORWARD(slurp(c->index_path, &index, &index_len, err));
    }
    /* Every entry's CRC and offset is in these bytes, so two copies that
     * differ in any tensor differ here: what lets the ranks of a group
     * tell versions of one checkpoint apart (trestle_checkpoint_identity()). */
    c->index_bytes = index_len;
    c->index_crc32c = trestle__crc32c(index, index_len);

    scan_ctx s = { .c = c };
    TR_FORWARD(trestle__table_scan(index, index_len, c->index_path, o.verify_index != 0, visit,
                                   &s, &ts, err));
    TR_FAIL_IF(!s.have_header, err, TRESTLE_E_CORRUPT,
               "Unable to read file (%s). Perhaps the file is corrupt or was produced by a newer "
               "version of TensorFlow with format changes (failed to seek to header entry)",
               c->index_path);
    c->snappy_blocks = (int)ts.snappy_blocks;
    free(index);
    index = NULL;

    TR_FORWARD(trestle__entries_link_slices(c, err));
    TR_FORWARD(trestle__shards_init(c, o.require_all_shards != 0, err));
    TR_FORWARD(check_ranges(c, o.require_all_shards != 0, err));
    TR_FORWARD(build_listing(c, err));
    *out = c;
    return TRESTLE_OK;

fail:
    if (err && err->path[0] == '\0' && c && c->index_path)
        snprintf(err->path, sizeof err->path, "%s", c->index_path);
    free(index);
    trestle_close(c);
    return rc;
}

void trestle_close(trestle_checkpoint *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->num_entries; i++) {
        free(c->entries[i].key);
        free(c->entries[i].dims);
        free(c->entries[i].slices);
        free(c->entries[i].slice_entries);
    }
    free(c->entries);
    trestle__shards_free(c);
    trestle__remote_free(c);
    free(c->listed);
    free(c->prefix);
    free(c->index_path);
    free(c);
}
