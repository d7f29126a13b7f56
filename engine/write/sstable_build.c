/*
 * sstable_build.c - the writer side of TensorFlow's (LevelDB-format) sorted
 * table: builds a whole .index file in memory, byte-identical to what TF's
 * table::TableBuilder writes with the options TF uses for tensor bundles.
 *
 * Place in the data flow: writer_index.c feeds the header and tensor entries
 * in key order and writes the returned image to disk; tests use it to make
 * tables (well-formed or, after editing, corrupt) for the reader.
 *
 * Byte identity with TF rests on reproducing its decisions exactly: when a
 * data block is cut (after the entry that brings the size estimate to
 * block_size, or before an entry of at least 2*block_size), which separator
 * the index gets (shortest separator between the last key of a block and the
 * first key of the next one, short successor after the last block), the
 * restart intervals (16 for data, 1 for the index), and when a snappy block
 * is kept (only if it saves more than 1/8). Format: tf-checkpoint-format.md §1.
 */
#include <snappy-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crc32c.h"
#include "cursor.h"
#include "error.h"
#include "sstable.h"

#define INDEX_RESTART_INTERVAL 1 /* every index entry is a restart point */
#define OVERLY_LARGE_RATIO 2     /* an entry this many blocks big gets a block of its own */

/* ---- one block being built ---- */

/* Entries of one block, prefix-compressed against the previous key. */
typedef struct block_builder {
    trestle__buf body;     /* entries so far; the restart array is appended on finish */
    trestle__buf restarts; /* restart offsets, already encoded as fixed32 */
    trestle__buf last;     /* key of the last entry, for prefix sharing */
    size_t since_restart;  /* entries since the last restart point */
    size_t interval;       /* restart interval */
    bool empty;            /* no entry added since the last reset */
} block_builder;

static bool bb_reset(block_builder *bb)
{
    bb->body.len = 0;
    bb->restarts.len = 0;
    bb->last.len = 0;
    bb->since_restart = 0;
    bb->empty = true;
    /* The first restart point is always the start of the block. */
    return trestle__buf_append_le32(&bb->restarts, 0);
}

static void bb_free(block_builder *bb)
{
    trestle__buf_free(&bb->body);
    trestle__buf_free(&bb->restarts);
    trestle__buf_free(&bb->last);
}

/* Size the finished block would have: TF's CurrentSizeEstimate. */
static size_t bb_estimate(const block_builder *bb)
{
    return bb->body.len + bb->restarts.len + 4;
}

/* Append one entry; key/value lengths fit 32 bits (checked by the caller).
 * Returns false when memory runs out. */
static bool bb_add(block_builder *bb, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    size_t shared = 0;
    if (bb->since_restart < bb->interval) {
        size_t n = bb->last.len < key_len ? bb->last.len : key_len;
        while (shared < n && bb->last.data[shared] == key[shared])
            shared++;
    } else {
        /* Restart offsets are fixed32 in the format. */
        if (bb->body.len > UINT32_MAX || !trestle__buf_append_le32(&bb->restarts, (uint32_t)bb->body.len))
            return false;
        bb->since_restart = 0;
    }
    if (!trestle__buf_append_varint(&bb->body, shared) ||
        !trestle__buf_append_varint(&bb->body, key_len - shared) ||
        !trestle__buf_append_varint(&bb->body, value_len) ||
        !trestle__buf_append(&bb->body, key + shared, key_len - shared) ||
        !trestle__buf_append(&bb->body, value, value_len))
        return false;
    bb->last.len = shared;
    if (!trestle__buf_append(&bb->last, key + shared, key_len - shared))
        return false;
    bb->since_restart++;
    bb->empty = false;
    return true;
}

/* Append the restart array and its count; body then holds the whole block. */
static bool bb_finish(block_builder *bb)
{
    return trestle__buf_append(&bb->body, bb->restarts.data, bb->restarts.len) &&
           trestle__buf_append_le32(&bb->body, (uint32_t)(bb->restarts.len / 4));
}

/* ---- the table ---- */

struct trestle__table_builder {
    int snappy;                 /* try snappy on every block */
    trestle__buf file;          /* the image written so far */
    block_builder data;         /* the data block being filled */
    block_builder index;        /* the index block */
    trestle__buf last_key;      /* last key added (then turned into a separator) */
    uint64_t num_entries;       /* keys added */
    bool pending_index;         /* a flushed data block awaits its index entry */
    uint64_t pending_off;       /* that block's handle */
    uint64_t pending_size;
    bool finished;              /* finish() ran: no more adds */
};

static int nomem(trestle_error *err)
{
    return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory building an sstable");
}

/*
 * Write `bb` as the next block of the file (compressed when snappy pays, as
 * TF decides), with its trailer, report its handle and reset it.
 */
static int write_block(trestle__table_builder *b, block_builder *bb, uint64_t *off,
                       uint64_t *size, trestle_error *err)
{
    char *packed = NULL;
    const uint8_t *stored;
    size_t stored_len;
    uint8_t trailer[TRESTLE_SSTABLE_TRAILER_SIZE] = { 0 };
    int rc = TRESTLE_OK;

    TR_FAIL_IF(!bb_finish(bb), err, TRESTLE_E_NOMEM, "out of memory building an sstable");
    stored = bb->body.data;
    stored_len = bb->body.len;
    if (b->snappy) {
        size_t raw = bb->body.len, plen = snappy_max_compressed_length(raw);
        packed = malloc(plen);
        TR_FAIL_IF(!packed, err, TRESTLE_E_NOMEM, "out of memory building an sstable");
        /* Kept only when it saves more than an eighth; else TF stores it raw. */
        if (snappy_compress((const char *)bb->body.data, raw, packed, &plen) == SNAPPY_OK &&
            plen < raw - raw / 8) {
            stored = (const uint8_t *)packed;
            stored_len = plen;
            trailer[0] = 1;
        }
    }
    uint32_t crc = trestle__crc32c_extend(trestle__crc32c(stored, stored_len), trailer, 1);
    tr_store_le32(trailer + 1, trestle__crc_mask(crc));
    *off = b->file.len;
    *size = stored_len;
    TR_FAIL_IF(!trestle__buf_append(&b->file, stored, stored_len) ||
                   !trestle__buf_append(&b->file, trailer, sizeof trailer) || !bb_reset(bb),
               err, TRESTLE_E_NOMEM, "out of memory building an sstable");
fail:
    free(packed);
    return rc;
}

/* Write the current data block, if any; its index entry waits for the next key. */
static int flush(trestle__table_builder *b, trestle_error *err)
{
    if (b->data.empty)
        return TRESTLE_OK;
    int rc = write_block(b, &b->data, &b->pending_off, &b->pending_size, err);
    if (rc == TRESTLE_OK)
        b->pending_index = true;
    return rc;
}

/* Add the pending index entry under the separator now in last_key. */
static int add_pending_index(trestle__table_builder *b, trestle_error *err)
{
    static const uint8_t nothing[1] = { 0 };
    const uint8_t *sep = b->last_key.data ? b->last_key.data : nothing; /* an empty buffer has no storage */
    uint8_t handle[20];
    size_t n = tr_put_varint64(handle, b->pending_off);
    n += tr_put_varint64(handle + n, b->pending_size);
    if (!bb_add(&b->index, sep, b->last_key.len, handle, n))
        return nomem(err);
    b->pending_index = false;
    return TRESTLE_OK;
}

/*
 * LevelDB's BytewiseComparator::FindShortestSeparator: shorten `start` to a
 * key K with start <= K < limit, by bumping the first differing byte when
 * that stays below limit. Left alone when one key is a prefix of the other.
 */
static void shortest_separator(trestle__buf *start, const uint8_t *limit, size_t limit_len)
{
    size_t n = start->len < limit_len ? start->len : limit_len, i = 0;
    while (i < n && start->data[i] == limit[i])
        i++;
    if (i >= n)
        return;
    uint8_t c = start->data[i];
    if (c < 0xff && c + 1 < limit[i]) {
        start->data[i] = (uint8_t)(c + 1);
        start->len = i + 1;
    }
}

/* BytewiseComparator::FindShortSuccessor: bump the first byte that is not
 * 0xff and drop the rest; a key of only 0xff bytes stays as it is. */
static void short_successor(trestle__buf *key)
{
    for (size_t i = 0; i < key->len; i++) {
        if (key->data[i] != 0xff) {
            key->data[i]++;
            key->len = i + 1;
            return;
        }
    }
}

int trestle__table_builder_create(int snappy, trestle__table_builder **out, trestle_error *err)
{
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    trestle__table_builder *b = calloc(1, sizeof *b);
    if (!b)
        return nomem(err);
    b->snappy = snappy;
    b->data.interval = TRESTLE_SSTABLE_RESTART_INTERVAL;
    b->index.interval = INDEX_RESTART_INTERVAL;
    if (!bb_reset(&b->data) || !bb_reset(&b->index)) {
        trestle__table_builder_free(b);
        return nomem(err);
    }
    *out = b;
    return TRESTLE_OK;
}

int trestle__table_builder_add(trestle__table_builder *b, const uint8_t *key, size_t key_len,
                               const uint8_t *value, size_t value_len, trestle_error *err)
{
    static const uint8_t nothing[1] = { 0 };
    int rc = TRESTLE_OK;

    TR_FAIL_IF(!b || b->finished, err, TRESTLE_E_INVALID_ARG,
               "sstable builder is NULL or already finished");
    TR_FAIL_IF((!key && key_len) || (!value && value_len), err, TRESTLE_E_INVALID_ARG,
               "NULL key or value with a non-zero length");
    /* Entry lengths are varint32 in the block format. */
    TR_FAIL_IF(key_len > UINT32_MAX || value_len > UINT32_MAX, err, TRESTLE_E_INVALID_ARG,
               "sstable key or value longer than 4 GiB");
    if (!key)
        key = nothing;
    if (!value)
        value = nothing;
    if (b->num_entries > 0) {
        TR_FAIL_IF(trestle__key_cmp(key, key_len, b->last_key.data, b->last_key.len) <= 0, err,
                   TRESTLE_E_INVALID_ARG, "sstable keys must be strictly increasing");
        /* TF gives an entry of 2 blocks or more a fresh block of its own. */
        if (key_len + value_len >= (size_t)OVERLY_LARGE_RATIO * TRESTLE_SSTABLE_BLOCK_SIZE)
            TR_FORWARD(flush(b, err));
    }
    if (b->pending_index) {
        shortest_separator(&b->last_key, key, key_len);
        TR_FORWARD(add_pending_index(b, err));
    }
    b->last_key.len = 0;
    TR_FAIL_IF(!trestle__buf_append(&b->last_key, key, key_len) ||
                   !bb_add(&b->data, key, key_len, value, value_len),
               err, TRESTLE_E_NOMEM, "out of memory building an sstable");
    b->num_entries++;
    if (bb_estimate(&b->data) >= TRESTLE_SSTABLE_BLOCK_SIZE)
        TR_FORWARD(flush(b, err));
fail:
    return rc;
}

int trestle__table_builder_finish(trestle__table_builder *b, uint8_t **out, size_t *out_len,
                                  trestle_error *err)
{
    block_builder meta = { .interval = TRESTLE_SSTABLE_RESTART_INTERVAL };
    uint64_t meta_off, meta_size, idx_off, idx_size;
    uint8_t footer[TRESTLE_SSTABLE_FOOTER_SIZE] = { 0 };
    int rc = TRESTLE_OK;

    TR_FAIL_IF(!out || !out_len, err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    *out_len = 0;
    TR_FAIL_IF(!b || b->finished, err, TRESTLE_E_INVALID_ARG,
               "sstable builder is NULL or already finished");
    b->finished = true;
    TR_FORWARD(flush(b, err));
    /* TF writes an empty metaindex block (no filters, no stats). */
    TR_FAIL_IF(!bb_reset(&meta), err, TRESTLE_E_NOMEM, "out of memory building an sstable");
    TR_FORWARD(write_block(b, &meta, &meta_off, &meta_size, err));
    if (b->pending_index) {
        short_successor(&b->last_key);
        TR_FORWARD(add_pending_index(b, err));
    }
    TR_FORWARD(write_block(b, &b->index, &idx_off, &idx_size, err));

    size_t n = tr_put_varint64(footer, meta_off);
    n += tr_put_varint64(footer + n, meta_size);
    n += tr_put_varint64(footer + n, idx_off);
    tr_put_varint64(footer + n, idx_size);
    tr_store_le64(footer + TRESTLE_SSTABLE_FOOTER_SIZE - 8, TRESTLE_SSTABLE_MAGIC);
    TR_FAIL_IF(!trestle__buf_append(&b->file, footer, sizeof footer), err, TRESTLE_E_NOMEM,
               "out of memory building an sstable");
    /* Hand the image over; the builder keeps nothing of it. */
    *out = b->file.data;
    *out_len = b->file.len;
    b->file.data = NULL;
    b->file.len = b->file.cap = 0;
fail:
    bb_free(&meta);
    return rc;
}

void trestle__table_builder_free(trestle__table_builder *b)
{
    if (!b)
        return;
    trestle__buf_free(&b->file);
    bb_free(&b->data);
    bb_free(&b->index);
    trestle__buf_free(&b->last_key);
    free(b);
}
