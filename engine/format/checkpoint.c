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

#include "bulk.h"
#include "checked.h"
#include "checkpoint.h"
#include "ckpt_entry.h"
#include "ckpt_path.h"
#include "ckpt_remote.h"
#include "ckpt_scan.h"
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
        .what = NULL, .max_bytes = MAX_INDEX_BYTES, .limit = "trestle reads indexes up to 4 GiB",
        .bulk = true
    };
    char *buf;
    int rc = trestle__file_read_regular(path, &index_rule, &buf, len, err);
    *out = (uint8_t *)buf;
    return rc;
}

static void free_index(uint8_t *index, bool bulk)
{
    if (bulk)
        trestle__bulk_free(index);
    else
        free(index);
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

/* The listed entries (all but slice parts), their bytes and whether the
 * checkpoint is object-based. Without slice parts the listing is every
 * entry, and no index array is kept (listed NULL: 8 bytes a tensor). */
static int build_listing(trestle_checkpoint *c, trestle_error *err)
{
    for (size_t i = 0; i < c->num_entries; i++) {
        const trestle__entry *e = &c->entries[i];
        if (e->kind == TRESTLE__ENTRY_SLICE_PART) {
            if (!c->listed) {
                c->listed = trestle__bulk_calloc(c->num_entries, sizeof *c->listed);
                if (!c->listed)
                    return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
                for (size_t k = 0; k < i; k++)
                    c->listed[k] = k;
            }
            continue;
        }
        if (c->listed)
            c->listed[c->num_listed] = i;
        c->num_listed++;
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
    bool index_bulk = false; /* a local index is bulk memory (slurp); a URL's, malloc'd */
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
        index_bulk = true;
    }
    /* Every entry's CRC and offset is in these bytes, so two copies that
     * differ in any tensor differ here: what lets the ranks of a group
     * tell versions of one checkpoint apart (trestle_checkpoint_identity()). */
    c->index_bytes = index_len;
    c->index_crc32c = trestle__crc32c(index, index_len);

    TR_FORWARD(trestle__checkpoint_scan(c, index, index_len, o.verify_index != 0, &ts, err));
    c->snappy_blocks = (int)ts.snappy_blocks;
    free_index(index, index_bulk);
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
    free_index(index, index_bulk);
    trestle_close(c);
    return rc;
}

void trestle_close(trestle_checkpoint *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->num_partitioned && i < c->num_entries; i++) {
        free(c->entries[i].slices);
        free(c->entries[i].slice_entries);
    }
    trestle__slab_free(&c->slab);
    trestle__bulk_free(c->entries);
    trestle__shards_free(c);
    trestle__remote_free(c);
    trestle__bulk_free(c->listed);
    free(c->prefix);
    free(c->index_path);
    free(c);
}
