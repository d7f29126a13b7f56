/*
 * sstable.c - the reader side of TensorFlow's (LevelDB-format) sorted table:
 * one validating pass over a whole .index file already held in memory.
 *
 * Place in the data flow: checkpoint.c reads the .index file, hands the bytes
 * here, and receives every key/value pair through a visitor, in key order.
 * Nothing here does I/O or keeps state between calls; the scan owns only the
 * scratch it allocates (decompressed blocks, key buffers) and frees it before
 * returning.
 *
 * The index file is untrusted input. Every handle, length, restart offset
 * and varint is bounded against the bytes that are really there before it is
 * used, and the structure is checked more strictly than TensorFlow's own
 * reader (key order across blocks, separators that really bound their data
 * blocks, data blocks that do not overlap), because a reader that walks the
 * whole table sequentially would otherwise silently accept a table that TF's
 * seek-based lookups read differently. Format: tf-checkpoint-format.md §1.
 */
#include <snappy-c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "checked.h"
#include "crc32c.h"
#include "cursor.h"
#include "error.h"
#include "sstable.h"

/*
 * Fuzzing builds only (OSS-Fuzz's FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION):
 * the CRC is still computed, but any value passes, so that mutated blocks
 * reach the snappy decoder, the entry parser and the checks behind it
 * instead of nearly all stopping at the trailer.
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define FUZZING_TAKES_ANY_CRC 1
#else
#define FUZZING_TAKES_ANY_CRC 0
#endif

#define MAX_UNCOMPRESSED_BLOCK (1ull << 30) /* cap on a snappy block's declared size */
#define KEY_SHOWN_MAX 120                   /* key bytes a message can quote even when all are escaped */

/* ---- errors ---- */

/* What every check needs to report a located error. */
typedef struct scan_ctx {
    const uint8_t *file;        /* the whole index file */
    size_t size;                /* its length */
    uint64_t blocks_end;        /* offset of the footer: no block may reach past it */
    const char *path;           /* labels errors */
    int verify_crc;             /* check block trailers' CRCs */
    trestle__table_stats *st;   /* counters (never NULL inside the scan) */
    trestle_error *err;         /* may be NULL */
} scan_ctx;

/*
 * Fill err with TRESTLE_E_CORRUPT, the path and `off`, and a message
 * "<path>: <fmt...>". `key` (may be NULL) goes into err->key.
 */
__attribute__((format(printf, 4, 5)))
static int corrupt(const scan_ctx *s, uint64_t off, const char *key, const char *fmt, ...)
{
    char what[TRESTLE_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return trestle__error_set(s->err, TRESTLE_E_CORRUPT, 0, key, s->path, (int64_t)off, -1,
                              "%s: %s", s->path, what);
}

/* See sstable.h; shared by every message that quotes a key. */
const char *trestle__key_display(const void *key, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *k = key;
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        if (o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\') {
            buf[o++] = (char)k[i];
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[k[i] >> 4];
            buf[o++] = hex[k[i] & 15];
        }
    }
    buf[o] = '\0';
    return buf;
}

/* ---- blocks ---- */

/* A block read through its handle, decompressed when it was stored with snappy. */
typedef struct block {
    const uint8_t *data;  /* contents (into the file, or into `owned`) */
    size_t size;          /* bytes of contents */
    uint8_t *owned;       /* malloc'd decompressed contents, else NULL */
    uint64_t off;         /* file offset of the stored block */
} block;

/* File offset to blame for byte `pos` of a block's contents: exact for a
 * stored block, the block itself when positions went through snappy. */
static uint64_t at(const block *b, size_t pos)
{
    return b->owned ? b->off : b->off + pos;
}

/*
 * Decode a BlockHandle from `c` and check that the block and its trailer lie
 * before the footer. `where` is the file offset blamed on failure, `what`
 * names the block kind for the message.
 */
static int get_handle(const scan_ctx *s, trestle__cursor *c, uint64_t where, const char *what,
                      uint64_t *off, uint64_t *len)
{
    uint64_t end;
    if (!tr_get_varint64(c, off) || !tr_get_varint64(c, len))
        return corrupt(s, where, NULL, "bad block handle for the %s block at offset %llu", what,
                       (unsigned long long)where);
    if (!tr_add_u64(*off, *len, &end) || !tr_add_u64(end, TRESTLE_SSTABLE_TRAILER_SIZE, &end) ||
        end > s->blocks_end)
        return corrupt(s, where, NULL,
                       "bad block handle at offset %llu: %s block at offset %llu (size %llu) "
                       "runs past the end of the blocks at offset %llu",
                       (unsigned long long)where, what, (unsigned long long)*off,
                       (unsigned long long)*len, (unsigned long long)s->blocks_end);
    return TRESTLE_OK;
}

/*
 * Read the block at [off, off+len) whose handle was already range-checked:
 * verify the trailer CRC (when asked) and the type byte, and decompress a
 * snappy block. On success *b describes the contents; the caller frees
 * b->owned. On failure nothing is left allocated.
 */
static int read_block(const scan_ctx *s, uint64_t off, uint64_t len, block *b)
{
    const uint8_t *p = s->file + off;
    size_t n = (size_t)len;
    uint8_t type = p[n];
    size_t ulen = 0;

    memset(b, 0, sizeof *b);
    b->off = off;
    /* TF checks the CRC before it looks at the type byte; so do we. */
    if (s->verify_crc) {
        uint32_t want = trestle__crc_unmask(tr_load_le32(p + n + 1));
        if (trestle__crc32c(p, n + 1) != want && !FUZZING_TAKES_ANY_CRC)
            return corrupt(s, off, NULL, "block checksum mismatch in block at offset %llu (size %llu)",
                           (unsigned long long)off, (unsigned long long)len);
    }
    if (type == 0) {
        b->data = p;
        b->size = n;
        return TRESTLE_OK;
    }
    if (type != 1)
        return corrupt(s, off + len, NULL, "bad block type %u in block at offset %llu (size %llu)",
                       type, (unsigned long long)off, (unsigned long long)len);
    if (snappy_uncompressed_length((const char *)p, n, &ulen) != SNAPPY_OK ||
        ulen > MAX_UNCOMPRESSED_BLOCK)
        goto bad_snappy;
    b->owned = malloc(ulen ? ulen : 1);
    if (!b->owned)
        return trestle__error_set(s->err, TRESTLE_E_NOMEM, 0, NULL, s->path, (int64_t)off,
                                  (int64_t)ulen, "%s: out of memory decompressing block at offset %llu",
                                  s->path, (unsigned long long)off);
    if (snappy_uncompress((const char *)p, n, (char *)b->owned, &ulen) != SNAPPY_OK) {
        free(b->owned);
        b->owned = NULL;
        goto bad_snappy;
    }
    b->data = b->owned;
    b->size = ulen;
    s->st->snappy_blocks++;
    return TRESTLE_OK;

bad_snappy:
    return corrupt(s, off, NULL,
                   "corrupted compressed block contents in block at offset %llu (size %llu)",
                   (unsigned long long)off, (unsigned long long)len);
}

/* ---- entries inside a block ---- */

/*
 * Sequential iterator over a block's entries. `key` holds the current full
 * key, rebuilt from the shared prefix of the previous one.
 */
typedef struct block_iter {
    const block *b;          /* the block walked */
    size_t limit;            /* end of the entry area = start of the restart array */
    size_t pos;              /* next entry's offset in the contents */
    uint32_t num_restarts;   /* R */
    uint32_t next_restart;   /* index of the next restart point not yet reached */
    trestle__buf key;        /* current key (owned) */
    size_t entry_pos;        /* offset of the current entry in the contents */
    const uint8_t *value;    /* current value */
    size_t value_len;        /* its length */
    size_t value_pos;        /* its offset in the contents */
} block_iter;

static uint32_t restart_at(const block_iter *it, uint32_t i)
{
    return tr_load_le32(it->b->data + it->limit + 4 * (size_t)i);
}

/*
 * Check the restart array of block `b` and position `it` before its first
 * entry. The array must fit, be strictly increasing and lie inside the entry
 * area (an empty block may point at its end); the scan then checks that each
 * point starts an entry with no shared prefix, since TF's seeks land there.
 */
static int iter_init(const scan_ctx *s, const block *b, block_iter *it)
{
    memset(it, 0, sizeof *it);
    it->b = b;
    if (b->size < 4)
        return corrupt(s, at(b, 0), NULL,
                       "bad block contents in block at offset %llu: %zu bytes is too short",
                       (unsigned long long)b->off, b->size);
    uint32_t r = tr_load_le32(b->data + b->size - 4);
    if (r > (b->size - 4) / 4)
        return corrupt(s, at(b, b->size - 4), NULL,
                       "bad block contents in block at offset %llu: %u restart points cannot fit "
                       "in %zu bytes", (unsigned long long)b->off, r, b->size);
    it->num_restarts = r;
    it->limit = b->size - 4 - 4 * (size_t)r;
    if (r == 0 && it->limit != 0)
        return corrupt(s, at(b, b->size - 4), NULL,
                       "bad block contents in block at offset %llu: no restart points but %zu "
                       "bytes of entries", (unsigned long long)b->off, it->limit);
    for (uint32_t i = 0; i < r; i++) {
        uint32_t ro = restart_at(it, i);
        bool ok = ro <= it->limit && (i == 0 || ro > restart_at(it, i - 1));
        if (!ok)
            return corrupt(s, at(b, it->limit + 4 * (size_t)i), NULL,
                           "bad block contents in block at offset %llu: restart point %u "
                           "(offset %u) is out of range or out of order",
                           (unsigned long long)b->off, i, ro);
    }
    return TRESTLE_OK;
}

/*
 * Decode the next entry into it->key / it->value. *done is set when the
 * entry area is exhausted (restart points left over must sit at its end).
 */
static int iter_next(const scan_ctx *s, block_iter *it, bool *done)
{
    const block *b = it->b;
    uint32_t shared, non_shared, vlen;
    const uint8_t *delta;

    *done = false;
    if (it->pos >= it->limit) {
        if (it->next_restart < it->num_restarts && restart_at(it, it->next_restart) != it->limit)
            goto bad_restart;
        *done = true;
        return TRESTLE_OK;
    }
    it->entry_pos = it->pos;
    trestle__cursor c = tr_cursor(b->data + it->pos, it->limit - it->pos);
    if (!tr_get_varint32(&c, &shared) || !tr_get_varint32(&c, &non_shared) ||
        !tr_get_varint32(&c, &vlen))
        return corrupt(s, at(b, it->pos), NULL,
                       "bad entry in block at offset %llu: entry lengths at offset %zu overrun "
                       "the block", (unsigned long long)b->off, it->pos);
    if (shared > it->key.len)
        return corrupt(s, at(b, it->pos), NULL,
                       "bad entry in block at offset %llu: entry at offset %zu shares %u bytes "
                       "with a %zu-byte previous key", (unsigned long long)b->off, it->pos, shared,
                       it->key.len);
    if ((uint64_t)non_shared + vlen > tr_left(&c))
        return corrupt(s, at(b, it->pos), NULL,
                       "bad entry in block at offset %llu: entry at offset %zu has %u key and %u "
                       "value bytes but only %zu remain", (unsigned long long)b->off, it->pos,
                       non_shared, vlen, tr_left(&c));
    if (it->next_restart < it->num_restarts) {
        uint32_t ro = restart_at(it, it->next_restart);
        if (ro < it->pos)
            goto bad_restart;
        if (ro == it->pos) {
            if (shared != 0)
                goto bad_restart;
            it->next_restart++;
        }
    }
    tr_get_bytes(&c, non_shared, &delta);
    tr_get_bytes(&c, vlen, &it->value);
    it->key.len = shared;
    if (!trestle__buf_append(&it->key, delta, non_shared))
        return trestle__error_set(s->err, TRESTLE_E_NOMEM, 0, NULL, s->path, -1, -1,
                                  "%s: out of memory", s->path);
    it->value_len = vlen;
    it->value_pos = (size_t)(it->value - b->data);
    it->pos = (size_t)(c.p - b->data);
    return TRESTLE_OK;

bad_restart:
    return corrupt(s, at(b, it->limit + 4 * (size_t)it->next_restart), NULL,
                   "bad block contents in block at offset %llu: restart point %u (offset %u) "
                   "does not start an unshared entry", (unsigned long long)b->off,
                   it->next_restart, restart_at(it, it->next_restart));
}

/* ---- the scan ---- */

/* One data block of the table: its handle and the index separator that
 * bounds it (a copy: the index block may be a decompressed buffer). */
typedef struct table_block {
    uint64_t off, len;
    size_t sep_at, sep_len;  /* the separator: seps[sep_at .. + sep_len) */
    uint64_t where;          /* file offset of its index entry, for messages */
} table_block;

struct trestle__table {
    const uint8_t *file;
    size_t size;
    uint64_t blocks_end;
    const char *path;
    int verify_crc;
    table_block *blocks;     /* every data block whose index entry checked out, in order */
    size_t n;
    uint8_t *seps;           /* the separators, back to back */
    int deferred;            /* the error of the index entry after blocks[n - 1], or OK: */
    trestle_error deferred_err; /* reported after those blocks, as a sequential walk would */
    size_t index_snappy;     /* the index block was snappy-compressed */
};

/* State carried across data blocks. */
typedef struct walk {
    trestle__buf last;       /* last key visited (ordering across blocks) */
    bool have_last;          /* any key visited yet */
    const uint8_t *prev_sep; /* previous index separator, when have_sep */
    size_t prev_sep_len;
    bool have_sep;           /* any separator seen yet */
    trestle__table_visit_fn fn;
    void *user;
} walk;

/*
 * Walk one data block: every key must follow the previous one (across
 * blocks too), be above the previous separator and not above `sep`.
 */
static int scan_data_block(const scan_ctx *s, walk *w, const block *b, const uint8_t *sep,
                           size_t sep_len)
{
    block_iter it;
    char k1[KEY_SHOWN_MAX * 4 + 8], k2[KEY_SHOWN_MAX * 4 + 8];
    bool done = false;
    int rc = iter_init(s, b, &it);

    while (rc == TRESTLE_OK) {
        rc = iter_next(s, &it, &done);
        if (rc != TRESTLE_OK || done)
            break;
        const uint8_t *k = it.key.data ? it.key.data : (const uint8_t *)"";
        size_t kn = it.key.len;
        uint64_t eoff = at(b, it.entry_pos);
        if (w->have_last && trestle__key_cmp(k, kn, w->last.data, w->last.len) <= 0) {
            trestle__key_display(k, kn, k1, sizeof k1);
            rc = corrupt(s, eoff, k1, "%s key '%s' at offset %llu (after '%s')",
                         trestle__key_cmp(k, kn, w->last.data, w->last.len) ? "out-of-order" : "duplicate",
                         k1, (unsigned long long)eoff,
                         trestle__key_display(w->last.data, w->last.len, k2, sizeof k2));
            break;
        }
        if (w->have_sep && trestle__key_cmp(k, kn, w->prev_sep, w->prev_sep_len) <= 0) {
            trestle__key_display(k, kn, k1, sizeof k1);
            rc = corrupt(s, eoff, k1,
                         "key '%s' at offset %llu is not above the previous index separator '%s'",
                         k1, (unsigned long long)eoff,
                         trestle__key_display(w->prev_sep, w->prev_sep_len, k2, sizeof k2));
            break;
        }
        if (trestle__key_cmp(k, kn, sep, sep_len) > 0) {
            trestle__key_display(k, kn, k1, sizeof k1);
            rc = corrupt(s, eoff, k1,
                         "key '%s' at offset %llu is above its block's index separator '%s'", k1,
                         (unsigned long long)eoff, trestle__key_display(sep, sep_len, k2, sizeof k2));
            break;
        }
        w->last.len = 0;
        if (!trestle__buf_append(&w->last, k, kn)) {
            rc = trestle__error_set(s->err, TRESTLE_E_NOMEM, 0, NULL, s->path, -1, -1,
                                    "%s: out of memory", s->path);
            break;
        }
        w->have_last = true;
        s->st->entries++;
        rc = w->fn(w->user, k, kn, it.value, it.value_len, at(b, it.value_pos), s->err);
    }
    trestle__buf_free(&it.key);
    return rc;
}

/*
 * Check one index entry against the previous separator (`prev`, when
 * `have_prev`) and the previous data block's end, and record its block.
 */
static int add_block(const scan_ctx *s, trestle__table *t, trestle__buf *seps,
                     const block *ib, const block_iter *ix, uint64_t *data_end)
{
    char k1[KEY_SHOWN_MAX * 4 + 8], k2[KEY_SHOWN_MAX * 4 + 8];
    const uint8_t *sep = ix->key.data ? ix->key.data : (const uint8_t *)"";
    uint64_t where = at(ib, ix->entry_pos), off, len;

    if (t->n > 0) {
        const table_block *p = &t->blocks[t->n - 1];
        const uint8_t *prev = seps->data ? seps->data + p->sep_at : (const uint8_t *)"";
        if (trestle__key_cmp(sep, ix->key.len, prev, p->sep_len) <= 0)
            return corrupt(s, where, NULL,
                           "index separator '%s' at offset %llu does not follow the previous one "
                           "'%s'", trestle__key_display(sep, ix->key.len, k1, sizeof k1),
                           (unsigned long long)where,
                           trestle__key_display(prev, p->sep_len, k2, sizeof k2));
    }
    trestle__cursor c = tr_cursor(ix->value, ix->value_len);
    int rc = get_handle(s, &c, at(ib, ix->value_pos), "data", &off, &len);
    if (rc != TRESTLE_OK)
        return rc;
    /* TF writes data blocks back to back; overlap would let a small file
     * make the scan re-read (and re-check) the same bytes without bound. */
    if (off < *data_end)
        return corrupt(s, at(ib, ix->value_pos), NULL,
                       "data block at offset %llu overlaps or precedes the previous data block "
                       "(which ends at offset %llu)", (unsigned long long)off,
                       (unsigned long long)*data_end);
    *data_end = off + len + TRESTLE_SSTABLE_TRAILER_SIZE;
    if (t->n % 64 == 0) {
        table_block *grown = realloc(t->blocks, (t->n + 64) * sizeof *grown);
        if (!grown)
            return trestle__error_set(s->err, TRESTLE_E_NOMEM, 0, NULL, s->path, -1, -1,
                                      "%s: out of memory", s->path);
        t->blocks = grown;
    }
    t->blocks[t->n] = (table_block){ off, len, seps->len, ix->key.len, where };
    if (!trestle__buf_append(seps, sep, ix->key.len))
        return trestle__error_set(s->err, TRESTLE_E_NOMEM, 0, NULL, s->path, -1, -1,
                                  "%s: out of memory", s->path);
    t->n++;
    return TRESTLE_OK;
}

void trestle__table_free(trestle__table *t)
{
    if (!t)
        return;
    free(t->blocks);
    free(t->seps);
    free(t);
}

int trestle__table_open(const uint8_t *file, size_t size, const char *path, int verify_crc,
                        trestle__table **out, trestle_error *err)
{
    trestle__table_stats st = { 0 };
    scan_ctx s = { file, size, 0, path ? path : "", verify_crc, &st, err };
    trestle__table *t = NULL;
    trestle__buf seps = { 0 };
    block ib = { 0 };
    block_iter ix = { 0 };
    uint64_t meta_off, meta_len, idx_off, idx_len, data_end = 0;
    bool done = false;
    int rc;

    *out = NULL;
    if (!file || size < TRESTLE_SSTABLE_FOOTER_SIZE)
        return corrupt(&s, 0, NULL, "file is too short to be an sstable (%zu bytes, the footer "
                       "alone is %d)", file ? size : 0, TRESTLE_SSTABLE_FOOTER_SIZE);
    s.blocks_end = size - TRESTLE_SSTABLE_FOOTER_SIZE;
    if (tr_load_le64(file + size - 8) != TRESTLE_SSTABLE_MAGIC)
        return corrupt(&s, size - 8, NULL, "not an sstable (bad magic number) at offset %zu",
                       size - 8);
    /* Two handles of at most 20 bytes each, padded to 40; the rest is magic. */
    trestle__cursor fc = tr_cursor(file + s.blocks_end, 40);
    rc = get_handle(&s, &fc, s.blocks_end, "metaindex", &meta_off, &meta_len);
    if (rc == TRESTLE_OK)
        rc = get_handle(&s, &fc, s.blocks_end + (size_t)(fc.p - (file + s.blocks_end)), "index",
                        &idx_off, &idx_len);
    if (rc != TRESTLE_OK)
        return rc;
    if (!(t = calloc(1, sizeof *t)))
        return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, s.path, -1, -1,
                                  "%s: out of memory", s.path);
    *t = (trestle__table){ .file = file, .size = size, .blocks_end = s.blocks_end,
                           .path = s.path, .verify_crc = verify_crc };
    /* TF never reads the metaindex block (always empty), so neither do we. */
    rc = read_block(&s, idx_off, idx_len, &ib);
    if (rc != TRESTLE_OK) {
        trestle__table_free(t);
        return rc;
    }
    t->index_snappy = st.snappy_blocks;
    /* An index entry that does not check out ends the blocks; its error
     * comes after theirs, where a walk block by block would find it. */
    s.err = &t->deferred_err;
    rc = iter_init(&s, &ib, &ix);
    while (rc == TRESTLE_OK) {
        rc = iter_next(&s, &ix, &done);
        if (rc != TRESTLE_OK || done)
            break;
        rc = add_block(&s, t, &seps, &ib, &ix, &data_end);
    }
    t->deferred = rc;
    t->seps = seps.data;
    trestle__buf_free(&ix.key);
    free(ib.owned);
    if (rc == TRESTLE_E_NOMEM) {
        if (err)
            *err = t->deferred_err;
        trestle__table_free(t);
        return rc;
    }
    *out = t;
    return TRESTLE_OK;
}

size_t trestle__table_blocks(const trestle__table *t) { return t->n; }

uint64_t trestle__table_block_bytes(const trestle__table *t, size_t i) { return t->blocks[i].len; }

/*
 * The last key of the last block before `end` that has any (empty blocks
 * hold none), into *last; false when there is none or it does not decode
 * (then an earlier walk fails on that block and its error comes first).
 */
static bool last_key_before(const scan_ctx *s, const trestle__table *t, size_t end,
                            trestle__buf *last)
{
    for (size_t i = end; i-- > 0;) {
        block b;
        block_iter it;
        bool done = false, any = false;
        if (read_block(s, t->blocks[i].off, t->blocks[i].len, &b) != TRESTLE_OK)
            return false;
        int rc = iter_init(s, &b, &it);
        /* From the last restart point that starts an entry (one may sit
         * at the end of the entries), where no key is shared. */
        uint32_t r = rc == TRESTLE_OK ? it.num_restarts : 0;
        while (r > 0 && restart_at(&it, r - 1) >= it.limit)
            r--;
        if (r > 0) {
            it.pos = restart_at(&it, r - 1);
            it.next_restart = r - 1;
        }
        while (rc == TRESTLE_OK) {
            rc = iter_next(s, &it, &done);
            if (rc != TRESTLE_OK || done)
                break;
            last->len = 0;
            any = trestle__buf_append(last, it.key.data ? it.key.data : (const uint8_t *)"",
                                      it.key.len);
            rc = any ? TRESTLE_OK : TRESTLE_E_NOMEM;
        }
        trestle__buf_free(&it.key);
        free(b.owned);
        if (rc != TRESTLE_OK)
            return false;
        if (any)
            return true;
    }
    return false;
}

int trestle__table_scan_blocks(const trestle__table *t, size_t first, size_t end,
                               trestle__table_visit_fn fn, void *user,
                               trestle__table_stats *stats, trestle_error *err)
{
    trestle__table_stats local = { 0 };
    scan_ctx s = { t->file, t->size, t->blocks_end, t->path, t->verify_crc,
                   stats ? stats : &local, err };
    walk w = { .fn = fn, .user = user };
    int rc = TRESTLE_OK;

    memset(s.st, 0, sizeof *s.st);
    if (first == 0)
        s.st->snappy_blocks = t->index_snappy;
    /* Starting past the first block: as a walk from the first would stand
     * there, when the blocks before are sound (else their walk fails first). */
    if (first > 0) {
        trestle_error ignored;
        scan_ctx quiet = s;
        trestle__table_stats none = { 0 };
        quiet.err = &ignored;
        quiet.st = &none;
        w.have_last = last_key_before(&quiet, t, first, &w.last);
        w.prev_sep = t->seps ? t->seps + t->blocks[first - 1].sep_at : (const uint8_t *)"";
        w.prev_sep_len = t->blocks[first - 1].sep_len;
        w.have_sep = true;
    }
    for (size_t i = first; rc == TRESTLE_OK && i < end; i++) {
        const table_block *tb = &t->blocks[i];
        const uint8_t *sep = t->seps ? t->seps + tb->sep_at : (const uint8_t *)"";
        block db;
        rc = read_block(&s, tb->off, tb->len, &db);
        if (rc != TRESTLE_OK)
            break;
        s.st->data_blocks++;
        rc = scan_data_block(&s, &w, &db, sep, tb->sep_len);
        free(db.owned);
        w.prev_sep = sep;
        w.prev_sep_len = tb->sep_len;
        w.have_sep = true;
    }
    if (rc == TRESTLE_OK && end == t->n && t->deferred != TRESTLE_OK) {
        rc = t->deferred;
        if (err)
            *err = t->deferred_err;
    }
    trestle__buf_free(&w.last);
    return rc;
}

int trestle__table_scan(const uint8_t *file, size_t size, const char *path, int verify_crc,
                        trestle__table_visit_fn fn, void *user, trestle__table_stats *stats,
                        trestle_error *err)
{
    trestle__table *t;
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = trestle__table_open(file, size, path, verify_crc, &t, err);
    if (rc != TRESTLE_OK)
        return rc;
    rc = trestle__table_scan_blocks(t, 0, t->n, fn, user, stats, err);
    trestle__table_free(t);
    return rc;
}
