/*
 * resident_identity.c - what a client planned, in the terms an entry is
 * kept by: the version of the files (identity), the selection (a digest
 * of the plan's ops) and where each tensor goes in the entry's memory.
 *
 * A preload and an attach both call trestle__selection_make() on the
 * checkpoint they opened themselves, so the same ops, options and files
 * give the same key, and a change to any file's size or mtime, or to the
 * index's bytes, gives another. The server compares keys; it never
 * computes one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "fnv.h"
#include "resident.h"

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int stat_files(trestle__wire_identity *id)
{
    char path[PATH_MAX + 64];
    struct stat st;
    bool all = true;
    snprintf(path, sizeof path, "%s.index", id->path);
    if (stat(path, &st) == 0) {
        id->index_bytes = (uint64_t)st.st_size;
        id->index_mtime_ns = mtime_ns(&st);
    } else {
        all = false;
    }
    for (uint32_t i = 0; i < id->num_shards; i++) {
        snprintf(path, sizeof path, "%s.data-%05u-of-%05u", id->path, i, id->num_shards);
        if (stat(path, &st) == 0) {
            id->shard_bytes[i] = (uint64_t)st.st_size;
            id->shard_mtime_ns[i] = mtime_ns(&st);
        } else {
            /* A missing shard is a version of its own: it never equals one
             * whose shard was there. */
            id->shard_bytes[i] = UINT64_MAX;
            id->shard_mtime_ns[i] = -1;
            all = false;
        }
    }
    return all;
}

static bool alloc_shards(trestle__wire_identity *id, uint32_t n)
{
    id->num_shards = n;
    id->shard_bytes = calloc(n ? n : 1, sizeof *id->shard_bytes);
    id->shard_mtime_ns = calloc(n ? n : 1, sizeof *id->shard_mtime_ns);
    return id->shard_bytes && id->shard_mtime_ns;
}

/* Whether `path` is a URL (gs://, s3://, http(s)://): a checkpoint in an
 * object store, whose version is its objects' validators, not stat(). */
bool trestle__identity_is_url(const char *path)
{
    size_t n = strspn(path, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
    return n > 0 && strncmp(path + n, "://", 3) == 0;
}

/* A validator's text as the 63-bit number the identity carries in place of
 * an mtime (never negative: -1 is a shard that could not be had). */
static int64_t validator_hash(const char *v)
{
    return (int64_t)(trestle__fnv1a(TRESTLE__FNV_BASIS, v, strlen(v)) >> 1);
}

/*
 * The version of a checkpoint in an object store, as this process's open
 * pinned it: the index's size and CRC-32C (its bytes, read in one GET), and
 * each data object's size and validators (ETag, GCS generation; else
 * Last-Modified), which its reads are held to. An object replaced in the
 * store has another validator, so an attach that opens the checkpoint
 * again never meets the replaced copy's entry. A store that gives no
 * validator leaves nothing to tell versions apart: no identity.
 */
static int identity_of_url(const trestle_checkpoint *c, const trestle_checkpoint_info *info,
                           trestle__wire_identity *out, trestle_error *err)
{
    char v[512];
    uint64_t bytes;
    out->index_mtime_ns = 0; /* the index's bytes are in the key by their CRC */
    for (uint32_t i = 0; i < out->num_shards; i++) {
        int rc = trestle_shard_version(c, (int)i, &bytes, v, sizeof v);
        if (rc == TRESTLE_E_NOT_FOUND) {
            out->shard_bytes[i] = UINT64_MAX;
            out->shard_mtime_ns[i] = -1;
            continue;
        }
        if (rc != TRESTLE_OK || !v[0])
            return trestle__error_simple(err, TRESTLE_E_UNSUPPORTED, "%s.data-%05u-of-%05u: the "
                                         "store gave no ETag, generation or Last-Modified for "
                                         "it, so a resident copy could not be told from a "
                                         "replaced object", info->prefix, i, out->num_shards);
        out->shard_bytes[i] = bytes;
        out->shard_mtime_ns[i] = validator_hash(v);
    }
    return TRESTLE_OK;
}

int trestle__identity_of(const trestle_checkpoint *c, trestle__wire_identity *out,
                         trestle_error *err)
{
    trestle_checkpoint_info info;
    char real[PATH_MAX];
    uint64_t bytes;
    int rc;

    memset(out, 0, sizeof *out);
    trestle_checkpoint_get_info(c, &info);
    if (trestle__identity_is_url(info.index_path)) {
        /* Named by its display URL (no secret in it), as every message names it. */
        TR_FAIL_IF(strlen(info.prefix) > TRESTLE__WIRE_MAX_PATH, err, TRESTLE_E_LIMIT,
                   "%s: a URL over %d bytes", info.prefix, TRESTLE__WIRE_MAX_PATH);
        out->path = strdup(info.prefix);
        TR_FAIL_IF(!out->path || !alloc_shards(out, (uint32_t)info.num_shards), err,
                   TRESTLE_E_NOMEM, "out of memory");
        TR_FAIL_IF(trestle_checkpoint_identity(c, &out->index_bytes, &out->index_crc32c) !=
                   TRESTLE_OK, err, TRESTLE_E_INVALID_ARG, "trestle_checkpoint_identity failed");
        TR_FORWARD(identity_of_url(c, &info, out, err));
        return TRESTLE_OK;
    }
    /* The server and every client must name one checkpoint alike, from
     * whatever working directory and through whatever symlinks. */
    if (!realpath(info.index_path, real))
        return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, info.index_path, -1, -1,
                                  "%s: %s", info.index_path, strerror(errno));
    size_t len = strlen(real);
    if (len > 6 && strcmp(real + len - 6, ".index") == 0)
        real[len - 6] = '\0';
    TR_FAIL_IF(strlen(real) > TRESTLE__WIRE_MAX_PATH, err, TRESTLE_E_LIMIT,
               "%s: a path over %d bytes", real, TRESTLE__WIRE_MAX_PATH);
    out->path = strdup(real);
    TR_FAIL_IF(!out->path || !alloc_shards(out, (uint32_t)info.num_shards), err, TRESTLE_E_NOMEM,
               "out of memory");
    TR_FAIL_IF(trestle_checkpoint_identity(c, &bytes, &out->index_crc32c) != TRESTLE_OK, err,
               TRESTLE_E_INVALID_ARG, "trestle_checkpoint_identity failed");
    stat_files(out);
    /* The index as it was read, whatever its size on disk is now. */
    if (out->index_bytes != bytes)
        out->index_mtime_ns = -1;
    out->index_bytes = bytes;
    return TRESTLE_OK;
fail:
    trestle__wire_key_free(&(trestle__wire_key){ .id = *out });
    memset(out, 0, sizeof *out);
    return rc;
}

bool trestle__identity_restat(const trestle__wire_identity *id, trestle__wire_identity *now)
{
    memset(now, 0, sizeof *now);
    now->path = strdup(id->path);
    if (!now->path || !alloc_shards(now, id->num_shards))
        return false;
    now->index_crc32c = id->index_crc32c;
    if (trestle__identity_is_url(id->path)) {
        /* The server asks no store: each attach compares the validators its
         * own open pinned. As far as it knows, the entry is that version. */
        now->index_bytes = id->index_bytes;
        now->index_mtime_ns = id->index_mtime_ns;
        memcpy(now->shard_bytes, id->shard_bytes, id->num_shards * sizeof *id->shard_bytes);
        memcpy(now->shard_mtime_ns, id->shard_mtime_ns,
               id->num_shards * sizeof *id->shard_mtime_ns);
        return true;
    }
    return stat_files(now);
}

static void when_text(int64_t ns, char *buf, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    if (ns < 0 || !localtime_r(&t, &tm)) {
        snprintf(buf, cap, "?");
        return;
    }
    size_t n = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%09lld", (long long)(ns % 1000000000));
}

void trestle__identity_diff(const trestle__wire_identity *was, const trestle__wire_identity *now,
                            char *buf, size_t cap)
{
    char a[48], b[48];
    if (was->index_bytes != now->index_bytes || was->index_crc32c != now->index_crc32c) {
        snprintf(buf, cap, "its index differs (resident: %llu bytes, CRC32C 0x%08x; on disk "
                 "now: %llu bytes, CRC32C 0x%08x)", (unsigned long long)was->index_bytes,
                 (unsigned)was->index_crc32c, (unsigned long long)now->index_bytes,
                 (unsigned)now->index_crc32c);
        return;
    }
    if (was->index_mtime_ns != now->index_mtime_ns) {
        when_text(was->index_mtime_ns, a, sizeof a);
        when_text(now->index_mtime_ns, b, sizeof b);
        snprintf(buf, cap, "its index was modified (resident: %s; on disk now: %s)", a, b);
        return;
    }
    if (was->num_shards != now->num_shards) {
        snprintf(buf, cap, "it has %u shards, not %u", (unsigned)now->num_shards,
                 (unsigned)was->num_shards);
        return;
    }
    for (uint32_t i = 0; i < was->num_shards; i++) {
        if (was->shard_bytes[i] == now->shard_bytes[i] &&
            was->shard_mtime_ns[i] == now->shard_mtime_ns[i])
            continue;
        if (trestle__identity_is_url(was->path)) {
            if (now->shard_mtime_ns[i] < 0)
                snprintf(buf, cap, "its object %s.data-%05u-of-%05u could not be had", was->path,
                         i, was->num_shards);
            else
                snprintf(buf, cap, "its object %s.data-%05u-of-%05u was replaced in the store "
                         "(resident: %llu bytes, validators hashed to %016llx; in the store "
                         "now: %llu bytes, %016llx)", was->path, i, was->num_shards,
                         (unsigned long long)was->shard_bytes[i],
                         (unsigned long long)was->shard_mtime_ns[i],
                         (unsigned long long)now->shard_bytes[i],
                         (unsigned long long)now->shard_mtime_ns[i]);
            return;
        }
        when_text(was->shard_mtime_ns[i], a, sizeof a);
        when_text(now->shard_mtime_ns[i], b, sizeof b);
        if (now->shard_mtime_ns[i] < 0)
            snprintf(buf, cap, "its data file %s.data-%05u-of-%05u is gone", was->path, i,
                     was->num_shards);
        else
            snprintf(buf, cap, "its data file %s.data-%05u-of-%05u changed (resident: %llu "
                     "bytes, modified %s; on disk now: %llu bytes, modified %s)", was->path, i,
                     was->num_shards, (unsigned long long)was->shard_bytes[i], a,
                     (unsigned long long)now->shard_bytes[i], b);
        return;
    }
    snprintf(buf, cap, "the same files");
}

/* ---- the selection ---- */

typedef struct fnv {
    uint64_t h;
} fnv;

static void mix(fnv *f, const void *p, size_t n)
{
    f->h = trestle__fnv1a(f->h, p, n);
}

static void mix_str(fnv *f, const char *s)
{
    mix(f, s ? s : "", strlen(s ? s : "") + 1);
}

static void mix_u64(fnv *f, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    mix(f, b, 8);
}

const char *trestle__selection_spec(const trestle__selection *s, size_t i)
{
    if (!s->ops || i >= s->n || !s->ops[i].shape_and_slices)
        return "";
    return s->ops[i].shape_and_slices;
}

/* What the plan restores, op by op, and the options that change which
 * part of a tensor an op gets (shard rules), as one 64-bit FNV-1a. */
static uint64_t digest(const trestle__selection *s, const trestle_plan_options *popt)
{
    fnv f = { TRESTLE__FNV_BASIS };
    size_t n = trestle_plan_op_count(s->plan);
    mix_str(&f, "trestle selection 1");
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(s->plan, i, &op);
        if (op.skipped)
            continue;
        mix_str(&f, op.name);
        mix_str(&f, op.key);
        mix_str(&f, trestle__selection_spec(s, i));
        mix_u64(&f, (uint64_t)op.out_dtype);
        mix_u64(&f, (uint64_t)op.dtype);
        mix_u64(&f, (uint64_t)op.rank);
        for (int d = 0; d < op.rank; d++)
            mix_u64(&f, (uint64_t)op.dims[d]);
        mix_u64(&f, op.bytes);
    }
    if (popt && popt->num_shard_rules) {
        mix_str(&f, "shard rules");
        for (size_t i = 0; i < popt->num_shard_rules; i++)
            mix_str(&f, popt->shard_rules[i]);
        mix_u64(&f, (uint64_t)popt->shard_rank);
        mix_u64(&f, (uint64_t)popt->shard_world);
    }
    return f.h;
}

int trestle__selection_make(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                            const trestle_plan_options *popt, int tier, int device,
                            trestle__selection *out, trestle_error *err)
{
    trestle_op *copy = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    out->ops = ops;
    out->n = n;
    if (ops && n) {
        copy = calloc(n, sizeof *copy);
        TR_FAIL_IF(!copy, err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            copy[i] = ops[i];
            copy[i].dest_kind = TRESTLE_DEST_ALLOCATE;
            copy[i].ptr = NULL;
            copy[i].capacity = 0;
        }
    }
    TR_FORWARD(trestle_plan_create(c, copy, ops ? n : 0, popt, &out->plan, err));
    size_t count = trestle_plan_op_count(out->plan);
    out->offsets = calloc(count ? count : 1, sizeof *out->offsets);
    TR_FAIL_IF(!out->offsets, err, TRESTLE_E_NOMEM, "out of memory");
    uint64_t end = 0;
    for (size_t i = 0; i < count; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(out->plan, i, &op);
        if (op.skipped)
            continue;
        uint64_t at = (end + TRESTLE__RESIDENT_ALIGN - 1) / TRESTLE__RESIDENT_ALIGN *
                      TRESTLE__RESIDENT_ALIGN;
        out->offsets[i] = at;
        end = at + op.bytes;
        out->data_bytes += op.bytes;
        out->kept++;
    }
    out->bytes = end;
    /* A checkpoint whose files cannot be named (gone since it was opened,
     * or not files at all) has no version to look up: the plan stands,
     * and the caller decides (an attach restores from storage). */
    trestle_error why;
    if (trestle__identity_of(c, &out->key.id, &why) != TRESTLE_OK)
        snprintf(out->unidentified, sizeof out->unidentified, "%.*s",
                 (int)sizeof out->unidentified - 1, why.message);
    out->key.digest = digest(out, popt);
    out->key.tier = (uint8_t)tier;
    out->key.device = tier == TRESTLE__TIER_HOST ? -1 : device;
    free(copy);
    return TRESTLE_OK;
fail:
    free(copy);
    trestle__selection_free(out);
    return rc;
}

void trestle__selection_free(trestle__selection *s)
{
    trestle_plan_free(s->plan);
    free(s->offsets);
    trestle__wire_key_free(&s->key);
    memset(s, 0, sizeof *s);
}
