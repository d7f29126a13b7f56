/*
 * sstable.h - TensorFlow's (LevelDB-format) immutable sorted table: the
 * reader that scans a whole .index file held in memory, and the builder
 * that writes one byte-identical to TensorFlow's TableBuilder.
 *
 * Format: tf-checkpoint-format.md §1. Keys compare as unsigned bytes
 * (memcmp, shorter prefix first) and may contain any byte, NUL included.
 */
#ifndef TRESTLE_SSTABLE_H
#define TRESTLE_SSTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "trestle.h"

#define TRESTLE_SSTABLE_FOOTER_SIZE 48
#define TRESTLE_SSTABLE_TRAILER_SIZE 5
#define TRESTLE_SSTABLE_MAGIC 0xdb4775248b80fb57ull
/* TF's table_options block_size. Fuzzing builds make it 4096
 * (CMakeLists.txt), so that the writer-made seeds hold several blocks. */
#ifndef TRESTLE_SSTABLE_BLOCK_SIZE
#define TRESTLE_SSTABLE_BLOCK_SIZE 262144
#endif
#define TRESTLE_SSTABLE_RESTART_INTERVAL 16

/* The table's only order: unsigned bytes, shorter prefix first (LevelDB's
 * BytewiseComparator). Every sorted key array in the engine uses it. */
static inline int trestle__key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Printable form of a key for messages (keys may hold any byte, NUL
 * included): ASCII as is, other bytes and '\\' as \xNN, cut with "..."
 * when buf (cap >= 8 bytes) is full. Returns buf. */
const char *trestle__key_display(const void *key, size_t len, char *buf, size_t cap);

/* Statistics a scan reports (for inspect and tests). */
typedef struct trestle__table_stats {
    size_t data_blocks;   /* data blocks visited */
    size_t snappy_blocks; /* of which snappy-compressed (any block kind) */
    size_t entries;       /* key/value pairs visited */
} trestle__table_stats;

/*
 * Called once per entry in key order. `key`/`value` point into memory that
 * is valid only during the call. `value_offset` is the byte offset of the
 * value inside the index file when the block is uncompressed, else the
 * offset of its block (for error messages). Return TRESTLE_OK to go on;
 * any other code stops the scan and is returned by trestle__table_scan
 * (the callback fills err).
 */
typedef int (*trestle__table_visit_fn)(void *user, const uint8_t *key, size_t key_len,
                                       const uint8_t *value, size_t value_len,
                                       uint64_t value_offset, trestle_error *err);

/*
 * Validate and walk every entry of the table in `file[0..size)`:
 * footer magic, block handles inside the file, trailer type byte and masked
 * CRC (when verify_crc), snappy decompression (bounded by the declared
 * uncompressed length, at most 1 GiB), restart array, entry varints,
 * shared-prefix lengths, strictly increasing keys across all blocks, and
 * that index-block separators bound their data blocks.
 * `path` only labels errors. Errors are TRESTLE_E_CORRUPT, with err->path
 * = path and err->offset = the offending byte offset in the file, and
 * messages in TF's words where TF has some, e.g.
 *   "<path>: not an sstable (bad magic number) at offset <size-8>".
 */
int trestle__table_scan(const uint8_t *file, size_t size, const char *path, int verify_crc,
                        trestle__table_visit_fn fn, void *user, trestle__table_stats *stats,
                        trestle_error *err);

/*
 * The same walk in parts, for two threads (ckpt_scan.c): the table's
 * footer and index block are read and checked once, then any range of its
 * data blocks can be walked on its own, as the whole walk would walk it
 * (key order and separators checked against the blocks before the range).
 * An error in the index block after the last good data block is reported
 * by the walk of the last range, after that range, as the whole walk
 * would find it. trestle__table_open fails only on the footer, the index
 * block itself, or memory.
 */
typedef struct trestle__table trestle__table;
int trestle__table_open(const uint8_t *file, size_t size, const char *path, int verify_crc,
                        trestle__table **out, trestle_error *err);
size_t trestle__table_blocks(const trestle__table *t);
uint64_t trestle__table_block_bytes(const trestle__table *t, size_t i);
/* Walk data blocks [first, end); `stats` counts this walk only (the index
 * block's compression with first == 0). */
int trestle__table_scan_blocks(const trestle__table *t, size_t first, size_t end,
                               trestle__table_visit_fn fn, void *user,
                               trestle__table_stats *stats, trestle_error *err);
void trestle__table_free(trestle__table *t);

/* ---- builder ---- */

typedef struct trestle__table_builder trestle__table_builder;

/*
 * `snappy`: compress blocks with snappy where TF would keep the compressed
 * form (compressed < raw - raw/8), as TF <= 1.1 wrote them.
 */
int trestle__table_builder_create(int snappy, trestle__table_builder **out, trestle_error *err);

/* Keys must be strictly increasing (else TRESTLE_E_INVALID_ARG). */
int trestle__table_builder_add(trestle__table_builder *b, const uint8_t *key, size_t key_len,
                               const uint8_t *value, size_t value_len, trestle_error *err);

/*
 * Finish the table: flush the last data block, write the empty metaindex
 * block, the index block (restart interval 1, shortest separators, short
 * successor for the last block, exactly as LevelDB's BytewiseComparator),
 * and the footer. On success *out (malloc'd, caller frees) holds the whole
 * file and *out_len its size.
 */
int trestle__table_builder_finish(trestle__table_builder *b, uint8_t **out, size_t *out_len,
                                  trestle_error *err);

void trestle__table_builder_free(trestle__table_builder *b);

#endif /* TRESTLE_SSTABLE_H */
