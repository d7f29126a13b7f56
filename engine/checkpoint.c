/*
 * checkpoint.c - open a checkpoint: resolve the prefix, read the whole
 * .index, parse the header and every BundleEntryProto, validate each number
 * against the format and the shard files, and keep the entries in key order.
 *
 * This is the trust boundary: after trestle_open() succeeds, every entry's
 * dtype, shape, size and byte range are known to be consistent, so the
 * planner and the pipeline never re-check file numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checked.h"
#include "checkpoint.h"
#include "ckpt_entry.h"
#include "ckpt_path.h"
#include "error.h"
#include "sstable.h"

#define MAX_INDEX_BYTES (4ull << 30) /* a 4 GiB index is already absurd */
#define MAX_SHARDS (1 << 20)

void trestle_open_options_init(trestle_open_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->verify_index = 1;
}

/* Read a whole file into memory (the index: small, read once). */
static int slurp(const char *path, uint8_t **out, size_t *len, trestle_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return trestle__error_set(err, errno == ENOENT ? TRESTLE_E_NOT_FOUND : TRESTLE_E_IO,
                                  errno, NULL, path, -1, -1, "cannot open %s: %s", path,
                                  strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > MAX_INDEX_BYTES) {
        int e = errno;
        close(fd);
        return trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1,
                                  "cannot use %s: %s", path,
                                  e ? strerror(e) : "index larger than 4 GiB");
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", path);
    }
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return trestle__error_set(err, r < 0 ? TRESTLE_E_IO : TRESTLE_E_SHORT_READ, e, NULL,
                                      path, (int64_t)got, -1, "%s: read failed at offset %zu: %s",
                                      path, got, r < 0 ? strerror(e) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return TRESTLE_OK;
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

static int open_shards(trestle_checkpoint *c, bool require_all, trestle_error *err)
{
    size_t n = (size_t)c->num_shards;
    c->shard_paths = calloc(n, sizeof *c->shard_paths);
    c->shard_fds = malloc(n * sizeof *c->shard_fds);
    c->shard_errno = calloc(n, sizeof *c->shard_errno);
    c->shard_sizes = calloc(n, sizeof *c->shard_sizes);
    if (!c->shard_paths || !c->shard_fds || !c->shard_errno || !c->shard_sizes)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        c->shard_fds[i] = -1;
    for (size_t i = 0; i < n; i++) {
        /* Names come from the header's num_shards, like TF's DataFilename. */
        if (asprintf(&c->shard_paths[i], "%s.data-%05zu-of-%05d", c->prefix, i,
                     c->num_shards) < 0) {
            c->shard_paths[i] = NULL;
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        int fd = open(c->shard_paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            c->shard_errno[i] = errno;
            if (require_all)
                return trestle__error_set(err, errno == ENOENT ? TRESTLE_E_NOT_FOUND
                                                               : TRESTLE_E_IO,
                                          errno, NULL, c->shard_paths[i], -1, -1,
                                          "cannot open data shard %s: %s", c->shard_paths[i],
                                          strerror(errno));
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            return trestle__error_set(err, TRESTLE_E_IO, e, NULL, c->shard_paths[i], -1, -1,
                                      "cannot stat %s: %s", c->shard_paths[i], strerror(e));
        }
        c->shard_fds[i] = fd;
        c->shard_sizes[i] = (uint64_t)st.st_size;
    }
    return TRESTLE_OK;
}

/* Every byte range must lie inside its (present) shard file. */
static int check_ranges(const trestle_checkpoint *c, trestle_error *err)
{
    for (size_t i = 0; i < c->num_entries; i++) {
        const trestle__entry *e = &c->entries[i];
        if (e->kind == TRESTLE__ENTRY_PARTITIONED || c->shard_fds[e->shard] < 0)
            continue;
        uint64_t end;
        if (!tr_add_u64(e->offset, e->size, &end) || end > c->shard_sizes[e->shard])
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key,
                                      c->shard_paths[e->shard], (int64_t)e->offset,
                                      (int64_t)e->size,
                                      "tensor '%s': bytes [%" PRIu64 ", %" PRIu64 "+%" PRIu64
                                      ") lie past the end of data shard %s (%" PRIu64 " bytes); "
                                      "entry at offset %" PRIu64 " of %s",
                                      e->key, e->offset, e->offset, e->size,
                                      c->shard_paths[e->shard], c->shard_sizes[e->shard],
                                      e->index_offset, c->index_path);
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
    trestle_open_options defaults;
    trestle_checkpoint *c = NULL;
    uint8_t *index = NULL;
    size_t index_len = 0;
    trestle__table_stats ts = { 0 };
    int rc;

    trestle_error_clear(err);
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    if (!opt) {
        trestle_open_options_init(&defaults);
        opt = &defaults;
    }
    c = calloc(1, sizeof *c);
    TR_FAIL_IF(!c, err, TRESTLE_E_NOMEM, "out of memory");
    TR_FORWARD(trestle__resolve_prefix(path, &c->prefix, err));
    TR_FAIL_IF(asprintf(&c->index_path, "%s.index", c->prefix) < 0, err, TRESTLE_E_NOMEM,
               "out of memory");
    TR_FORWARD(slurp(c->index_path, &index, &index_len, err));

    scan_ctx s = { .c = c };
    TR_FORWARD(trestle__table_scan(index, index_len, c->index_path, opt->verify_index != 0, visit,
                                   &s, &ts, err));
    TR_FAIL_IF(!s.have_header, err, TRESTLE_E_CORRUPT,
               "Unable to read file (%s). Perhaps the file is corrupt or was produced by a newer "
               "version of TensorFlow with format changes (failed to seek to header entry)",
               c->index_path);
    c->snappy_blocks = (int)ts.snappy_blocks;
    free(index);
    index = NULL;

    TR_FORWARD(trestle__entries_link_slices(c, err));
    TR_FORWARD(open_shards(c, opt->require_all_shards != 0, err));
    TR_FORWARD(check_ranges(c, err));
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
    for (int i = 0; c->shard_paths && i < c->num_shards; i++) {
        free(c->shard_paths[i]);
        if (c->shard_fds && c->shard_fds[i] >= 0)
            close(c->shard_fds[i]);
    }
    free(c->shard_paths);
    free(c->shard_fds);
    free(c->shard_errno);
    free(c->shard_sizes);
    free(c->listed);
    free(c->prefix);
    free(c->index_path);
    free(c);
}
