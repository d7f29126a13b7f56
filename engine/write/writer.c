/*
 * writer.c - a bundle writer whose files are byte-identical to TensorFlow's
 * BundleWriter (+ MergeBundles for several shards) for the same tensors.
 *
 * Data goes to the shard files as tensors are added (per shard in call
 * order, as TF appends), through a buffer of up to 8 MiB per shard, as TF's
 * BundleWriter writes through an 8 MB FileOutputBuffer: a model of many
 * small tensors written one write() each leaves its pages in the page cache
 * as 4 KiB folios, which the kernel reads back at about half the speed of
 * the large folios that big writes (or readahead) make, so every later
 * restore from the cache would be slowed by how the file was written.
 * Entries are kept in memory (found by key through a hash table, so that
 * adding N tensors stays linear), sorted at finish and written through the
 * SSTable builder with the header under key "" (writer_index.c, which
 * calls back only trestle__writer_flush()). The writer's life, create to
 * free, is here. Tests and synthetic benchmarks make all their checkpoints
 * with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "checked.h"
#include "checkpoint.h"
#include "crc32c.h"
#include "error.h"
#include "fnv.h"
#include "options.h"
#include "slice.h"
#include "sstable.h"
#include "string_tensor.h"
#include "writer_internal.h"

#define WRITE_BUF_MAX ((size_t)8 << 20)
#define WRITE_BUF_MIN ((size_t)256 << 10)
#define WRITE_BUF_FIRST ((size_t)64 << 10) /* a shard's buffer at first; it doubles as it fills */

void trestle_writer_options_init(trestle_writer_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->num_shards = 1;
    opt->alignment = 1;
}

int trestle_writer_create(const char *prefix, const trestle_writer_options *opt,
                          trestle_writer **out, trestle_error *err)
{
    trestle_writer_options o;
    trestle_writer *w = NULL;
    int rc;

    trestle_error_clear(err);
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    trestle_writer_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_writer_options, &o, opt,
                                     TRESTLE__WRITER_OPTIONS_FIRST_SIZE, err));
    TR_FAIL_IF(!prefix || !*prefix, err, TRESTLE_E_INVALID_ARG, "empty checkpoint prefix");
    TR_FAIL_IF(o.num_shards < 1 || o.num_shards > 99999, err, TRESTLE_E_INVALID_ARG,
               "num_shards must be 1..99999, not %d", o.num_shards);
    w = calloc(1, sizeof *w);
    TR_FAIL_IF(!w, err, TRESTLE_E_NOMEM, "out of memory");
    w->num_shards = o.num_shards;
    w->alignment = o.alignment ? o.alignment : 1;
    w->snappy = o.snappy_index;
    w->prefix = strdup(prefix);
    w->fds = malloc((size_t)w->num_shards * sizeof *w->fds);
    w->paths = calloc((size_t)w->num_shards, sizeof *w->paths);
    w->sizes = calloc((size_t)w->num_shards, sizeof *w->sizes);
    w->bufs = calloc((size_t)w->num_shards, sizeof *w->bufs);
    w->buf_lens = calloc((size_t)w->num_shards, sizeof *w->buf_lens);
    w->buf_sizes = calloc((size_t)w->num_shards, sizeof *w->buf_sizes);
    TR_FAIL_IF(!w->prefix || !w->fds || !w->paths || !w->sizes || !w->bufs || !w->buf_lens ||
                   !w->buf_sizes, err, TRESTLE_E_NOMEM, "out of memory");
    /* 8 MiB a shard, as TF; many shards share 64 MiB, but none gets less
     * than 256 KiB (a shard of a many-shard checkpoint is written whole
     * before the next, by TF's savers and by most callers). */
    w->buf_cap = ((size_t)64 << 20) / (size_t)w->num_shards;
    w->buf_cap = w->buf_cap > WRITE_BUF_MAX ? WRITE_BUF_MAX
                 : w->buf_cap < WRITE_BUF_MIN ? WRITE_BUF_MIN
                                              : w->buf_cap & ~(size_t)4095;
    for (int i = 0; i < w->num_shards; i++)
        w->fds[i] = -1;
    for (int i = 0; i < w->num_shards; i++) {
        TR_FAIL_IF(asprintf(&w->paths[i], "%s.data-%05d-of-%05d", prefix, i, w->num_shards) < 0,
                   err, TRESTLE_E_NOMEM, "out of memory");
        w->fds[i] = open(w->paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (w->fds[i] < 0) {
            rc = trestle__error_set(err, TRESTLE_E_IO, errno, NULL, w->paths[i], -1, -1,
                                    "cannot create %s: %s", w->paths[i], strerror(errno));
            goto fail;
        }
    }
    *out = w;
    return TRESTLE_OK;

fail:
    trestle_writer_free(w);
    return rc;
}

void trestle_writer_free(trestle_writer *w)
{
    if (!w)
        return;
    for (int i = 0; w->fds && i < w->num_shards; i++)
        if (w->fds[i] >= 0)
            close(w->fds[i]);
    for (int i = 0; w->paths && i < w->num_shards; i++)
        free(w->paths[i]);
    for (size_t i = 0; i < w->num_entries; i++) {
        free(w->entries[i].key);
        free(w->entries[i].dims);
        free(w->entries[i].slices);
    }
    free(w->entries);
    free(w->paths);
    free(w->fds);
    free(w->sizes);
    for (int i = 0; w->bufs && i < w->num_shards; i++)
        free(w->bufs[i]);
    free(w->bufs);
    free(w->buf_lens);
    free(w->buf_sizes);
    free(w->slots);
    free(w->prefix);
    free(w);
}

/* write() all of [p, p + n) to the shard, whose file ends at `at`. */
static int write_out(trestle_writer *w, int shard, const uint8_t *b, uint64_t n, uint64_t at,
                     trestle_error *err)
{
    while (n > 0) {
        size_t step = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = write(w->fds[shard], b, step);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0; /* a write of 0 leaves errno stale */
            return trestle__error_set(err, TRESTLE_E_IO, e, NULL, w->paths[shard], (int64_t)at,
                                      (int64_t)n, "writing %s at offset %" PRIu64 ": %s",
                                      w->paths[shard], at, e ? strerror(e) : "no progress");
        }
        b += r;
        n -= (uint64_t)r;
        at += (uint64_t)r;
    }
    return TRESTLE_OK;
}

int trestle__writer_flush(trestle_writer *w, int shard, trestle_error *err)
{
    size_t n = w->buf_lens[shard];
    w->buf_lens[shard] = 0;
    return n ? write_out(w, shard, w->bufs[shard], n, w->sizes[shard] - n, err) : TRESTLE_OK;
}

/* Append to the shard: small writes gather in its buffer, a large one goes
 * out at once (after what the buffer holds). */
static int write_all(trestle_writer *w, int shard, const void *p, uint64_t n, trestle_error *err)
{
    int rc;
    if (n == 0)
        return TRESTLE_OK; /* an empty tensor: its data may be NULL */
    if (w->buf_lens[shard] + n > w->buf_cap && (rc = trestle__writer_flush(w, shard, err)) != 0)
        return rc;
    size_t need = w->buf_lens[shard] + (size_t)n;
    if (n < w->buf_cap && need > w->buf_sizes[shard]) {
        /* Grown as it fills, doubling up to the cap: a small checkpoint
         * never holds (nor clears) megabytes it does not use. */
        size_t size = w->buf_sizes[shard] ? w->buf_sizes[shard] : WRITE_BUF_FIRST;
        while (size < need)
            size *= 2;
        size = size < w->buf_cap ? size : w->buf_cap;
        uint8_t *grown = realloc(w->bufs[shard], size);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        w->bufs[shard] = grown;
        w->buf_sizes[shard] = size;
    }
    if (n >= w->buf_cap) {
        rc = write_out(w, shard, p, n, w->sizes[shard], err);
    } else {
        memcpy(w->bufs[shard] + w->buf_lens[shard], p, (size_t)n);
        w->buf_lens[shard] += (size_t)n;
        rc = TRESTLE_OK;
    }
    if (rc == TRESTLE_OK)
        w->sizes[shard] += n;
    return rc;
}

/* Zero-pad the shard so the next tensor starts at a multiple of the alignment. */
static int pad(trestle_writer *w, int shard, trestle_error *err)
{
    static const uint8_t zeros[4096];
    uint64_t rem = w->alignment > 1 ? w->sizes[shard] % w->alignment : 0;
    uint64_t n = rem ? w->alignment - rem : 0;
    while (n > 0) {
        uint64_t step = n < sizeof zeros ? n : sizeof zeros;
        int rc = write_all(w, shard, zeros, step, err);
        if (rc != TRESTLE_OK)
            return rc;
        n -= step;
    }
    return TRESTLE_OK;
}

/* FNV-1a: keys are short, and the table only needs them spread. */
static size_t key_hash(const void *k, size_t len)
{
    uint64_t h = trestle__fnv1a(TRESTLE__FNV_BASIS, k, len);
    return (size_t)(h ^ (h >> 32));
}

/* The slot where key is, or the empty one where it would go. */
static size_t *key_slot(const trestle_writer *w, const void *key, size_t key_len)
{
    size_t mask = w->num_slots - 1;
    for (size_t i = key_hash(key, key_len) & mask;; i = (i + 1) & mask) {
        size_t at = w->slots[i];
        if (!at || (w->entries[at - 1].key_len == key_len &&
                    memcmp(w->entries[at - 1].key, key, key_len) == 0))
            return &w->slots[i];
    }
}

/* Room in the table for one more entry: rebuilt twice as large when it
 * would be over half full. */
static bool key_room(trestle_writer *w)
{
    if (2 * (w->num_entries + 1) <= w->num_slots)
        return true;
    size_t n = w->num_slots ? 2 * w->num_slots : 128;
    size_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    free(w->slots);
    w->slots = slots;
    w->num_slots = n;
    for (size_t i = 0; i < w->num_entries; i++)
        *key_slot(w, w->entries[i].key, w->entries[i].key_len) = i + 1;
    return true;
}

static wentry *new_entry(trestle_writer *w, const void *key, size_t key_len, trestle_error *err)
{
    if (!key_room(w)) {
        trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        return NULL;
    }
    if (w->num_entries == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        wentry *grown = realloc(w->entries, cap * sizeof *grown);
        if (!grown) {
            trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
            return NULL;
        }
        w->entries = grown;
        w->cap = cap;
    }
    wentry *e = &w->entries[w->num_entries];
    memset(e, 0, sizeof *e);
    e->key = malloc(key_len ? key_len : 1);
    if (!e->key) {
        trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    w->num_entries++;
    *key_slot(w, key, key_len) = w->num_entries;
    return e;
}

static wentry *find_entry(trestle_writer *w, const void *key, size_t key_len)
{
    size_t at = w->num_slots ? *key_slot(w, key, key_len) : 0;
    return at ? &w->entries[at - 1] : NULL;
}

static int set_shape(wentry *e, int rank, const int64_t *dims, trestle_error *err)
{
    e->rank = rank;
    e->dims = malloc((rank ? (size_t)rank : 1) * sizeof *e->dims);
    if (!e->dims)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (rank)
        memcpy(e->dims, dims, (size_t)rank * sizeof *dims);
    return TRESTLE_OK;
}

/* Common path: append bytes to a shard and record a plain entry under key. */
static int add_bytes(trestle_writer *w, const void *key, size_t key_len, const char *shown,
                     int dtype, int rank, const int64_t *dims, const void *data, uint64_t size,
                     uint32_t crc, int shard, trestle_error *err)
{
    int rc;
    if (shard < 0 || shard >= w->num_shards)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, shown, NULL, -1, -1,
                                  "tensor '%s': shard %d is not in 0..%d", shown, shard,
                                  w->num_shards - 1);
    if (find_entry(w, key, key_len))
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, shown, NULL, -1, -1,
                                  "duplicate key '%s'", shown);
    if ((rc = pad(w, shard, err)) != TRESTLE_OK)
        return rc;
    uint64_t offset = w->sizes[shard];
    if ((rc = write_all(w, shard, data, size, err)) != TRESTLE_OK)
        return rc;
    wentry *e = new_entry(w, key, key_len, err);
    if (!e)
        return TRESTLE_E_NOMEM;
    e->dtype = dtype;
    e->shard = shard;
    e->offset = offset;
    e->size = size;
    e->crc_masked = trestle__crc_mask(crc);
    return set_shape(e, rank, dims, err);
}

static int check_shape(const char *name, int rank, const int64_t *dims, int64_t *n,
                       trestle_error *err)
{
    if (rank < 0 || rank > TRESTLE_MAX_RANK || (rank > 0 && !dims) ||
        !tr_num_elements(rank, dims, n))
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, -1,
                                  "tensor '%s': invalid shape (rank %d)", name, rank);
    return TRESTLE_OK;
}

int trestle_writer_add(trestle_writer *w, const char *name, int dtype, int rank,
                       const int64_t *dims, const void *data, uint64_t size, int shard,
                       trestle_error *err)
{
    int64_t n;
    uint64_t want;
    int rc;

    if (!w || !name || w->finished || (!data && size > 0))
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "bad writer call");
    if ((rc = check_shape(name, rank, dims, &n, err)) != TRESTLE_OK)
        return rc;
    size_t esize = trestle_dtype_size(dtype);
    if (esize == 0)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, -1,
                                  "tensor '%s': dtype %s cannot be added as fixed-size bytes%s",
                                  name, trestle_dtype_name(dtype),
                                  dtype == TRESTLE_DT_STRING ? " (use trestle_writer_add_strings)"
                                                             : "");
    if (!tr_mul_u64((uint64_t)n, esize, &want) || want != size)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, (int64_t)size,
                                  "tensor '%s': %" PRIu64 " bytes given, shape x %s needs %" PRIu64,
                                  name, size, trestle_dtype_name(dtype), want);
    return add_bytes(w, name, strlen(name), name, dtype, rank, dims, data, size,
                     trestle__crc32c(data, (size_t)size), shard, err);
}

/* Strings and variants: encode the elements (each dtype its own way), then
 * append them as one entry whose CRC the encoder computed. */
static int add_elements(trestle_writer *w, const char *name, int dtype, int rank,
                        const int64_t *dims, const trestle_bytes *elems, int shard,
                        trestle_error *err)
{
    trestle__buf enc = { 0 };
    int64_t n;
    uint32_t crc;
    int rc;

    if (!w || !name || w->finished)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "bad writer call");
    if ((rc = check_shape(name, rank, dims, &n, err)) != TRESTLE_OK)
        return rc;
    if (n > 0 && !elems)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL %s elements",
                                     trestle_dtype_name(dtype));
    rc = dtype == TRESTLE_DT_STRING ? trestle__strings_encode(elems, (uint64_t)n, &enc, &crc, err)
                                    : trestle__variants_encode(elems, (uint64_t)n, &enc, &crc, err);
    if (rc == TRESTLE_OK)
        rc = add_bytes(w, name, strlen(name), name, dtype, rank, dims, enc.data, enc.len, crc,
                       shard, err);
    trestle__buf_free(&enc);
    return rc;
}

int trestle_writer_add_strings(trestle_writer *w, const char *name, int rank,
                               const int64_t *dims, const trestle_bytes *elems, int shard,
                               trestle_error *err)
{
    return add_elements(w, name, TRESTLE_DT_STRING, rank, dims, elems, shard, err);
}

int trestle_writer_add_variants(trestle_writer *w, const char *name, int rank,
                                const int64_t *dims, const trestle_bytes *elems, int shard,
                                trestle_error *err)
{
    return add_elements(w, name, TRESTLE_DT_VARIANT, rank, dims, elems, shard, err);
}

int trestle_writer_add_slice(trestle_writer *w, const char *name, int dtype, const char *spec,
                             const void *data, uint64_t size, int shard, trestle_error *err)
{
    trestle__spec sp;
    int rc;

    if (!w || !name || w->finished || !spec || (!data && size > 0))
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "bad writer call");
    if ((rc = trestle__spec_parse(spec, &sp, err)) != TRESTLE_OK)
        return rc;
    if (sp.whole)
        return trestle_writer_add(w, name, dtype, 0, NULL, data, size, shard, err);
    /* A slice that covers everything is stored as a plain tensor, as TF does. */
    if (trestle__slice_covers_all(&sp.slice, sp.shape))
        return trestle_writer_add(w, name, dtype, sp.rank, sp.shape, data, size, shard, err);

    int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK];
    trestle__slice_resolve(&sp.slice, sp.shape, start, length);
    size_t esize = trestle_dtype_size(dtype);
    uint64_t want = 0;
    int64_t n;
    if (esize == 0 || !tr_num_elements(sp.rank, length, &n) ||
        !tr_mul_u64((uint64_t)n, esize, &want) || want != size)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, (int64_t)size,
                                  "slice %s of tensor '%s': %" PRIu64 " bytes given, needs %" PRIu64
                                  " of a fixed-size dtype", spec, name, size, want);

    wentry *full = find_entry(w, name, strlen(name));
    if (full) {
        bool same = full->num_slices > 0 && full->dtype == dtype && full->rank == sp.rank;
        for (int d = 0; same && d < sp.rank; d++)
            same = full->dims[d] == sp.shape[d];
        if (!same)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, -1,
                                      "slice %s of tensor '%s' disagrees with its earlier "
                                      "slices or a whole tensor of that name", spec, name);
    }
    size_t key_len = trestle__slice_key(name, strlen(name), &sp.slice, NULL, 0);
    uint8_t *key = malloc(key_len);
    if (!key)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    trestle__slice_key(name, strlen(name), &sp.slice, key, key_len);
    rc = add_bytes(w, key, key_len, name, dtype, sp.rank, length, data, size,
                   trestle__crc32c(data, (size_t)size), shard, err);
    free(key);
    if (rc != TRESTLE_OK)
        return rc;
    /* add_bytes may have moved the entry array: look the full entry up again. */
    full = find_entry(w, name, strlen(name));
    if (!full) {
        full = new_entry(w, name, strlen(name), err);
        if (!full)
            return TRESTLE_E_NOMEM;
        full->dtype = dtype;
        full->shard = 0;
        if ((rc = set_shape(full, sp.rank, sp.shape, err)) != TRESTLE_OK)
            return rc;
    }
    trestle__slice *grown = realloc(full->slices, (size_t)(full->num_slices + 1) * sizeof *grown);
    if (!grown)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    full->slices = grown;
    full->slices[full->num_slices++] = sp.slice;
    return TRESTLE_OK;
}
