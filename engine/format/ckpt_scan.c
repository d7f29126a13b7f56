/*
 * ckpt_scan.c - the index's entries into an open checkpoint: the header
 * first, then every BundleEntryProto decoded and checked (ckpt_entry.c)
 * into the entries array, in key order.
 *
 * A model of 100,000 tensors has an index of ~5 MB in ~20 data blocks of
 * 256 KiB, and decoding it was a sixth of a whole restore (issue 24). With
 * two processors and more than one block, the second half of the blocks
 * is decoded on a second thread into an entries array and a slab of its
 * own (a checkpoint in the making that shares nothing with this one), and
 * joined to the first half after: the arrays are concatenated and the
 * slab's blocks adopted. The table walk of each half is the whole walk's
 * (sstable.h), so every check is made as it was and the first error in
 * file order is the one reported: the first half's, else the second's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "ckpt_entry.h"
#include "ckpt_scan.h"
#include "cpus.h"
#include "error.h"
#include "sstable.h"

/* Below this a thread costs more than it saves. Fuzzing builds set it to 0
 * (CMakeLists.txt), so that the fuzzers' small indexes of two blocks or
 * more are decoded in two halves too. */
#ifndef TRESTLE__SCAN_PARALLEL_MIN
#define TRESTLE__SCAN_PARALLEL_MIN ((size_t)512 << 10)
#endif
/* An entry takes at least this many bytes of its block, as TensorFlow
 * writes them (a key, a dtype, a shape, a size and a CRC): a first
 * allocation of bytes / ENTRY_MIN_BYTES entries is never outgrown by such
 * an index. Its untouched pages cost address space only, where growing by
 * doubling faulted every page in again and copied the entries each time
 * (a sixth of trestle_open() at 100,000 tensors, issue 24). A stranger
 * index outgrows it and the array doubles, as before. */
#define ENTRY_MIN_BYTES 16
#define HINT_MAX ((size_t)1 << 24) /* entries: 1.2 GB of address space at most */
#define STOPPED 0x7fff                         /* a visit's code: the walk is not wanted */

typedef struct scan_ctx {
    trestle_checkpoint *c;
    size_t cap;               /* allocated entries */
    size_t hint;              /* entries to allocate at first: those the blocks may hold */
    bool have_header;
    const atomic_bool *stop;  /* the second half's: the first half failed; NULL: never */
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
    if (s->stop && atomic_load_explicit(s->stop, memory_order_relaxed))
        return STOPPED;
    if (c->num_entries == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : s->hint > 64 ? s->hint : 64;
        trestle__entry *grown = trestle__bulk_realloc(c->entries, cap, sizeof *grown);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        c->entries = grown;
        s->cap = cap;
    }
    trestle__entry *e = &c->entries[c->num_entries];
    memset(e, 0, sizeof *e);
    e->key = trestle__slab_strndup(&c->slab, key, key_len);
    if (!e->key)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    e->key_len = (uint32_t)key_len; /* the index is below 4 GiB, and so is any key */
    e->index_offset = (uint32_t)value_offset; /* inside an index of at most 4 GiB */
    c->num_entries++; /* counted now so a failure below still frees it */
    return trestle__entry_parse(c, e, value, value_len, err);
}

/* The header alone, as the first visit of the first block: the second
 * half's entries are checked against its shard count. */
static int header_only(void *user, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len, uint64_t value_offset, trestle_error *err)
{
    trestle_checkpoint *c = user;
    if (key_len != 0)
        return TRESTLE_E_CORRUPT; /* the whole walk says so, in its words */
    int rc = trestle__header_parse(c, value, value_len, value_offset, err);
    return rc == TRESTLE_OK ? STOPPED : rc;
}

/* Entries blocks [first, end) may hold (scan_ctx.hint). */
static size_t hint_for(const trestle__table *t, size_t first, size_t end)
{
    uint64_t bytes = 0;
    for (size_t i = first; i < end; i++)
        bytes += trestle__table_block_bytes(t, i);
    return bytes / ENTRY_MIN_BYTES < HINT_MAX ? (size_t)(bytes / ENTRY_MIN_BYTES) : HINT_MAX;
}

/* The second half: blocks [first, end) into a checkpoint of its own. */
typedef struct half {
    const trestle__table *t;
    size_t first, end;
    trestle_checkpoint part;  /* index_path and the header's fields, its own entries and slab */
    scan_ctx s;
    trestle__table_stats st;
    trestle_error err;
    int rc;
} half;

static void *second_half(void *arg)
{
    half *h = arg;
    h->rc = trestle__table_scan_blocks(h->t, h->first, h->end, visit, &h->s, &h->st, &h->err);
    return NULL;
}

static void free_entries(trestle_checkpoint *c)
{
    for (size_t i = 0; c->num_partitioned && i < c->num_entries; i++) {
        free(c->entries[i].slices);
        free(c->entries[i].slice_entries);
    }
    trestle__bulk_free(c->entries);
    c->entries = NULL;
    c->num_entries = 0;
    c->num_partitioned = 0;
    trestle__slab_free(&c->slab);
}

/* The second half's entries after the first's, its slab in the checkpoint's. */
static int join(trestle_checkpoint *c, trestle_checkpoint *part, trestle_error *err)
{
    size_t n = c->num_entries + part->num_entries;
    trestle__entry *all = trestle__bulk_realloc(c->entries, n ? n : 1, sizeof *all);
    if (!all)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    c->entries = all;
    memcpy(all + c->num_entries, part->entries, part->num_entries * sizeof *all);
    c->num_entries = n;
    c->num_partitioned += part->num_partitioned;
    trestle__slab_adopt(&c->slab, &part->slab);
    trestle__bulk_free(part->entries);
    part->entries = NULL;
    part->num_entries = 0;
    return TRESTLE_OK;
}

/* Where to cut: the first block at which half the blocks' bytes lie
 * before, or 0 (no cut) when the table is too small to be worth it. */
static size_t cut_at(const trestle__table *t, size_t index_len)
{
    size_t n = trestle__table_blocks(t);
    uint64_t total = 0, before = 0;
    if (n < 2 || index_len < TRESTLE__SCAN_PARALLEL_MIN || trestle__usable_cpus() < 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        total += trestle__table_block_bytes(t, i);
    for (size_t k = 1; k < n; k++) {
        before += trestle__table_block_bytes(t, k - 1);
        if (before * 2 >= total)
            return k;
    }
    return n - 1;
}

/* Both halves, the first on this thread with `first`; a failure of
 * either is reported as a walk in one piece would report it. */
static int scan_halves(trestle_checkpoint *c, const trestle__table *t, size_t k, scan_ctx *first,
                       trestle__table_stats *st, trestle_error *err)
{
    atomic_bool stop = false;
    half *h = calloc(1, sizeof *h);
    pthread_t th;
    if (!h)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    h->t = t;
    h->first = k;
    h->end = trestle__table_blocks(t);
    h->part.index_path = c->index_path;
    h->part.num_shards = c->num_shards;
    h->part.big_endian = c->big_endian;
    h->part.producer = c->producer;
    h->part.min_consumer = c->min_consumer;
    /* `first` was sized for every block: the second half's entries join its. */
    h->s = (scan_ctx){ .c = &h->part, .have_header = true, .stop = &stop,
                       .hint = hint_for(t, k, h->end) };
    trestle_error_clear(&h->err);
    if (pthread_create(&th, NULL, second_half, h) != 0) {
        free(h);
        return trestle__table_scan_blocks(t, 0, trestle__table_blocks(t), visit, first, st, err);
    }
    int rc = trestle__table_scan_blocks(t, 0, k, visit, first, st, err);
    if (rc != TRESTLE_OK)
        atomic_store(&stop, true);
    pthread_join(th, NULL);
    if (rc == TRESTLE_OK && h->rc != TRESTLE_OK) {
        rc = h->rc;
        if (err)
            *err = h->err;
    }
    if (rc == TRESTLE_OK)
        rc = join(c, &h->part, err);
    st->data_blocks += h->st.data_blocks;
    st->snappy_blocks += h->st.snappy_blocks;
    st->entries += h->st.entries;
    free_entries(&h->part);
    free(h);
    return rc;
}

int trestle__checkpoint_scan(trestle_checkpoint *c, const uint8_t *index, size_t index_len,
                             int verify, trestle__table_stats *st, trestle_error *err)
{
    trestle__table *t = NULL;
    scan_ctx s = { .c = c };
    size_t k;
    int rc;

    memset(st, 0, sizeof *st);
    TR_FORWARD(trestle__table_open(index, index_len, c->index_path, verify, &t, err));
    /* The header first, to cut only a table that starts with one (else
     * the walk in one piece reports what is wrong, as ever). */
    if ((k = cut_at(t, index_len)) > 0) {
        trestle_error ignored;
        if (trestle__table_scan_blocks(t, 0, 1, header_only, c, NULL, &ignored) != STOPPED)
            k = 0;
    }
    s.hint = hint_for(t, 0, trestle__table_blocks(t));
    rc = k > 0 ? scan_halves(c, t, k, &s, st, err)
               : trestle__table_scan_blocks(t, 0, trestle__table_blocks(t), visit, &s, st, err);
    if (rc == TRESTLE_OK && !s.have_header)
        rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, c->index_path, -1, -1,
                                "Unable to read file (%s). Perhaps the file is corrupt or was "
                                "produced by a newer version of TensorFlow with format changes "
                                "(failed to seek to header entry)", c->index_path);
fail:
    trestle__table_free(t);
    return rc;
}
