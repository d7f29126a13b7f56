/*
 * writer_safetensors.c - trestle_convert_safetensors(): a restore whose
 * destination happens to be a safetensors file.
 *
 * Where it sits: around the pipeline, never inside it. The op list is
 * planned once to learn what each op will restore (name, dtype after any
 * conversion, shape, bytes); the file is laid out from that, created under a
 * temporary name, sized and mapped; the same ops are planned again with
 * caller-owned host destinations pointing into the mapping, and restored.
 * So the bytes in the file are the pipeline's verified bytes, read once,
 * with no staging copy of the whole checkpoint in memory: the page cache
 * holds the file as it is written. Only public API is used, as by any
 * client; the file name and the rename make the write atomic.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "options.h"

#define HEADER_ALIGN 8 /* the header is padded so tensor data starts 8-aligned */

/* One tensor of the output file. */
typedef struct st_tensor {
    size_t op;              /* index in the first plan (and in the caller's ops) */
    const char *name;       /* the op's name, owned by the first plan */
    const char *dtype;      /* safetensors spelling, e.g. "BF16" */
    size_t esize;           /* element size, for the alignment order */
    int rank;
    const int64_t *dims;    /* owned by the first plan */
    uint64_t bytes;
    uint64_t offset;        /* from the start of the data section */
} st_tensor;

/* safetensors' dtype for a restored TensorFlow dtype, or NULL. */
static const char *st_dtype(int dtype)
{
    switch (dtype) {
    case TRESTLE_DT_FLOAT: return "F32";
    case TRESTLE_DT_DOUBLE: return "F64";
    case TRESTLE_DT_HALF: return "F16";
    case TRESTLE_DT_BFLOAT16: return "BF16";
    case TRESTLE_DT_FLOAT8_E4M3FN: return "F8_E4M3";
    case TRESTLE_DT_FLOAT8_E5M2: return "F8_E5M2";
    case TRESTLE_DT_INT8: return "I8";
    case TRESTLE_DT_UINT8: return "U8";
    case TRESTLE_DT_INT16: return "I16";
    case TRESTLE_DT_UINT16: return "U16";
    case TRESTLE_DT_INT32: return "I32";
    case TRESTLE_DT_UINT32: return "U32";
    case TRESTLE_DT_INT64: return "I64";
    case TRESTLE_DT_UINT64: return "U64";
    case TRESTLE_DT_BOOL: return "BOOL";
    default: return NULL;
    }
}

/* Largest element first, then by name: every tensor starts at a multiple
 * of its element size, as the reference writer arranges it. */
static int by_alignment_then_name(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->esize != y->esize)
        return x->esize > y->esize ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool add_str(trestle__buf *b, const char *s)
{
    return trestle__buf_append(b, s, strlen(s));
}

static bool add_u64(trestle__buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    return trestle__buf_append(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static bool add_json_string(trestle__buf *b, const char *s)
{
    bool ok = trestle__buf_append(b, "\"", 1);
    for (; ok && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = { '\\', (char)ch };
            ok = trestle__buf_append(b, esc, 2);
        } else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            ok = trestle__buf_append(b, esc, 6);
        } else {
            ok = trestle__buf_append(b, s, 1);
        }
    }
    return ok && trestle__buf_append(b, "\"", 1);
}

/* The 8-byte length and the JSON header, padded with spaces. */
static bool build_header(trestle__buf *h, const st_tensor *t, size_t n)
{
    bool ok = trestle__buf_append(h, "\0\0\0\0\0\0\0\0", 8) &&
              add_str(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; ok && i < n; i++) {
        ok = add_str(h, ",") && add_json_string(h, t[i].name) && add_str(h, ":{\"dtype\":\"") &&
             add_str(h, t[i].dtype) && add_str(h, "\",\"shape\":[");
        for (int d = 0; ok && d < t[i].rank; d++)
            ok = (d == 0 || add_str(h, ",")) && add_u64(h, (uint64_t)t[i].dims[d]);
        ok = ok && add_str(h, "],\"data_offsets\":[") && add_u64(h, t[i].offset) &&
             add_str(h, ",") && add_u64(h, t[i].offset + t[i].bytes) && add_str(h, "]}");
    }
    ok = ok && add_str(h, "}");
    while (ok && h->len % HEADER_ALIGN)
        ok = trestle__buf_append(h, " ", 1);
    if (ok)
        for (int i = 0; i < 8; i++)
            h->data[i] = (uint8_t)((uint64_t)(h->len - 8) >> (8 * i));
    return ok;
}

/*
 * From the first plan, the tensors that go into the file, laid out. In
 * every-tensor mode (`explicit_ops` 0) strings are left out and counted;
 * an explicit op of a dtype safetensors lacks is an error naming it.
 */
static int lay_out(const trestle_plan *p, int explicit_ops, st_tensor **out, size_t *count,
                   size_t *skipped, uint64_t *data_bytes, trestle_error *err)
{
    size_t n = trestle_plan_op_count(p), m = 0;
    st_tensor *t = calloc(n ? n : 1, sizeof *t);
    int rc = TRESTLE_OK;
    *skipped = 0;
    TR_FAIL_IF(!t, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(p, i, &op);
        const char *dt = op.skipped ? NULL : st_dtype(op.out_dtype);
        if (op.skipped || (!dt && !explicit_ops && op.out_dtype == TRESTLE_DT_STRING)) {
            (*skipped)++;
            continue;
        }
        if (!dt) {
            rc = trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, op.name, NULL, -1, -1,
                                    "tensor %s has dtype %s, which safetensors cannot hold",
                                    op.name, trestle_dtype_name(op.out_dtype));
            goto fail;
        }
        t[m++] = (st_tensor){ i, op.name, dt, trestle_dtype_size(op.out_dtype), op.rank,
                              op.dims, op.bytes, 0 };
    }
    qsort(t, m, sizeof *t, by_alignment_then_name);
    uint64_t at = 0;
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && strcmp(t[i - 1].name, t[i].name) == 0) {
            rc = trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, t[i].name, NULL, -1, -1,
                                    "two ops are named %s; a safetensors file holds one tensor "
                                    "per name", t[i].name);
            goto fail;
        }
        t[i].offset = at;
        at += t[i].bytes;
    }
    *out = t;
    *count = m;
    *data_bytes = at;
    return TRESTLE_OK;
fail:
    free(t);
    *out = NULL;
    return rc;
}

/* A file error that names the file and keeps errno. */
static int file_error(trestle_error *err, const char *path, const char *what)
{
    int e = errno;
    return trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1, "cannot %s %s: %s", what,
                              path, strerror(e));
}

/*
 * Create `OUT.tmp-XXXXXX` exclusively, mode 0666 less the umask as for any
 * new file (mkstemp's 0600 would make a model file private). On success
 * *tmp is malloc'd and *fd open; on failure both are left NULL / -1.
 */
static int create_temp(const char *out_path, char **tmp, int *fd, trestle_error *err)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(out_path);
    char *name = malloc(plen + sizeof ".tmp-XXXXXX");
    if (!name)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32;
    for (int attempt = 0; attempt < 100; attempt++) {
        memcpy(name, out_path, plen);
        memcpy(name + plen, ".tmp-", 5);
        for (int i = 0; i < 6; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            name[plen + 5 + i] = digits[(seed >> 33) % 36];
        }
        name[plen + 11] = '\0';
        *fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd >= 0) {
            *tmp = name;
            return TRESTLE_OK;
        }
        if (errno != EEXIST)
            break;
    }
    int rc = file_error(err, name, "create");
    free(name);
    return rc;
}

/* Flush the directory entry of `path`, so the rename itself is durable. */
static void sync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the file itself is already on disk */
        close(fd);
    }
    free(copy);
}

void trestle_convert_options_init(trestle_convert_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->sync = 1;
}

int trestle_convert_safetensors(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                                const trestle_convert_options *opt, const char *out_path,
                                trestle_convert_stats *stats, trestle_error *err)
{
    trestle_convert_options o;
    trestle_plan_options popt, popt2;
    trestle_restore_options ropt;
    trestle_plan *first = NULL, *second = NULL;
    trestle_op *dest_ops = NULL;
    st_tensor *t = NULL;
    trestle__buf header = { 0 };
    size_t count = 0, skipped = 0;
    uint64_t data_bytes = 0, file_bytes = 0, map_from = 0, map_bytes = 0, header_len = 0;
    char *tmp = NULL;
    int fd = -1, rc = TRESTLE_OK;
    uint8_t *map = NULL;

    TR_FAIL_IF(!c || !out_path || (!ops && n), err, TRESTLE_E_INVALID_ARG,
               "trestle_convert_safetensors needs a checkpoint, an output path, and ops or n = 0");
    trestle_convert_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_convert_options, &o, opt,
                                     TRESTLE__CONVERT_OPTIONS_FIRST_SIZE, err));
    trestle_plan_options_init(&popt);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_plan_options, &popt, o.plan,
                                     TRESTLE__PLAN_OPTIONS_FIRST_SIZE, err));
    trestle_restore_options_init(&ropt);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_restore_options, &ropt, o.restore,
                                     TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, err));
    ropt.verify = 1;
    ropt.device = -1;
    ropt.host_map = 0;

    /* Plan 1: what each op restores to, into engine memory it never
     * allocates (the plan is not restored), whatever the caller's dest_kind. */
    if (ops) {
        dest_ops = calloc(n ? n : 1, sizeof *dest_ops);
        TR_FAIL_IF(!dest_ops, err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            dest_ops[i] = ops[i];
            dest_ops[i].dest_kind = TRESTLE_DEST_ALLOCATE;
            dest_ops[i].ptr = NULL;
            dest_ops[i].capacity = 0;
        }
    }
    TR_FORWARD(trestle_plan_create(c, dest_ops, n, &popt, &first, err));
    free(dest_ops);
    dest_ops = NULL;
    TR_FORWARD(lay_out(first, ops != NULL, &t, &count, &skipped, &data_bytes, err));
    TR_FAIL_IF(!build_header(&header, t, count), err, TRESTLE_E_NOMEM, "out of memory");
    header_len = header.len;
    file_bytes = header_len + data_bytes;

    /* The temporary file beside the output, so the rename stays in one
     * file system and is atomic. */
    TR_FORWARD(create_temp(out_path, &tmp, &fd, err));
    /* Allocate the blocks up front and map them populated: page faults
     * one page at a time into a sparse file run at a third of write()'s
     * speed, while prefaulting allocated extents costs almost nothing (ext4:
     * 1 GiB in 0.26 s against 2.0 s). File systems without fallocate
     * (EOPNOTSUPP) get a sparse file and fault as they go. */
    if (fallocate(fd, 0, 0, (off_t)file_bytes) != 0 &&
        (errno != EOPNOTSUPP || ftruncate(fd, (off_t)file_bytes) != 0)) {
        rc = file_error(err, tmp, "allocate");
        goto fail;
    }
    if (pwrite(fd, header.data, header.len, 0) != (ssize_t)header.len) {
        rc = file_error(err, tmp, "write the header of");
        goto fail;
    }
    trestle__buf_free(&header); /* written: 11 MiB for 100,000 tensors, not kept (issue 24) */

    if (count > 0) {
        /* The data only, from the page the header ends in: the header is
         * written already, and a model of 100,000 tensors has a header of
         * 11 MiB that mapped pages would keep resident (issue 24). */
        map_from = header_len & ~(uint64_t)(sysconf(_SC_PAGESIZE) - 1);
        map_bytes = file_bytes - map_from;
        map = mmap(NULL, (size_t)map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   fd, (off_t)map_from);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = file_error(err, tmp, "map");
            goto fail;
        }
        /* Plan 2: the same ops, each into its place in the file. */
        dest_ops = calloc(count, sizeof *dest_ops);
        TR_FAIL_IF(!dest_ops, err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t i = 0; i < count; i++) {
            trestle_op *d = &dest_ops[i];
            if (ops) {
                *d = ops[t[i].op];
            } else {
                trestle_plan_op_info op;
                trestle_plan_get_op(first, t[i].op, &op);
                d->name = op.key;
            }
            d->dest_kind = TRESTLE_DEST_HOST;
            d->ptr = map + (header_len - map_from) + t[i].offset;
            d->capacity = t[i].bytes;
        }
        /* Exclusions and misses were settled by plan 1; renames still map
         * explicit op names to keys. Every-tensor ops are keys already. */
        trestle_plan_options_init(&popt2);
        if (ops) {
            popt2.renames = popt.renames;
            popt2.num_renames = popt.num_renames;
            popt2.tf1_rnn_renames = popt.tf1_rnn_renames;
        }
        popt2.max_batch_bytes = popt.max_batch_bytes;
        popt2.max_gap_bytes = popt.max_gap_bytes;
        /* Plan 1 and the layout have done their part (the ops' names are
         * the caller's or the checkpoint's keys): a model of 100,000
         * tensors should not hold two plans at once (issue 24). */
        trestle_plan_free(first);
        first = NULL;
        free(t);
        t = NULL;
        TR_FORWARD(trestle_plan_create(c, dest_ops, count, &popt2, &second, err));
        free(dest_ops);
        dest_ops = NULL;
        TR_FORWARD(trestle_restore(second, &ropt, stats ? &stats->restore : NULL, err));
        if (o.sync && msync(map, (size_t)map_bytes, MS_SYNC) != 0) {
            rc = file_error(err, tmp, "flush");
            goto fail;
        }
    }
    if (o.sync && fdatasync(fd) != 0) {
        rc = file_error(err, tmp, "flush");
        goto fail;
    }
    if (rename(tmp, out_path) != 0) {
        rc = file_error(err, out_path, "rename the finished file to");
        goto fail;
    }
    if (o.sync)
        sync_parent(out_path);
    free(tmp);
    tmp = NULL;
    if (stats) {
        stats->tensors = count;
        stats->skipped = skipped;
        stats->header_bytes = header_len;
        stats->file_bytes = file_bytes;
    }
fail:
    if (map)
        munmap(map, (size_t)map_bytes);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    trestle_plan_free(second);
    trestle_plan_free(first);
    free(dest_ops);
    free(t);
    trestle__buf_free(&header);
    return rc;
}
