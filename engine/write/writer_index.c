/*
 * writer_index.c - the second half of the bundle writer: serialize the
 * header and every entry as TF's protobuf C++ code would (proto3: default
 * values omitted, fields in number order, sub-messages always present where
 * TF sets them), sort by key and write the .index atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "slice.h"
#include "sstable.h"
#include "tensor_bundle.pb-c.h"
#include "writer_internal.h"

static int cmp_keys(const void *a, const void *b)
{
    const wentry *x = *(const wentry *const *)a, *y = *(const wentry *const *)b;
    return trestle__key_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* Pack one entry into out (malloc'd). */
static int pack_entry(const wentry *e, uint8_t **out, size_t *len, trestle_error *err)
{
    Tensorflow__BundleEntryProto m = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim *dims = NULL, **dimp = NULL;
    Tensorflow__TensorSliceProto *slices = NULL, **slicep = NULL;
    Tensorflow__TensorSliceProto__Extent *ext = NULL, **extp = NULL;
    int rc = TRESTLE_OK;

    size_t nd = (size_t)e->rank, ns = (size_t)e->num_slices;
    dims = calloc(nd + 1, sizeof *dims);
    dimp = calloc(nd + 1, sizeof *dimp);
    slices = calloc(ns + 1, sizeof *slices);
    slicep = calloc(ns + 1, sizeof *slicep);
    ext = calloc(ns * nd + 1, sizeof *ext);
    extp = calloc(ns * nd + 1, sizeof *extp);
    TR_FAIL_IF(!dims || !dimp || !slices || !slicep || !ext || !extp, err, TRESTLE_E_NOMEM,
               "out of memory");
    for (size_t d = 0; d < nd; d++) {
        tensorflow__tensor_shape_proto__dim__init(&dims[d]);
        dims[d].size = e->dims[d];
        dimp[d] = &dims[d];
    }
    shape.n_dim = nd;
    shape.dim = dimp;
    m.dtype = (Tensorflow__DataType)e->dtype;
    m.shape = &shape; /* TF always sets the shape, so a scalar is `12 00` */
    for (size_t s = 0; s < ns; s++) {
        tensorflow__tensor_slice_proto__init(&slices[s]);
        for (size_t d = 0; d < nd; d++) {
            Tensorflow__TensorSliceProto__Extent *x = &ext[s * nd + d];
            tensorflow__tensor_slice_proto__extent__init(x);
            /* TensorSlice::AsProto writes nothing for a full extent. */
            if (e->slices[s].length[d] >= 0) {
                x->start = e->slices[s].start[d];
                x->has_length_case = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
                x->length = e->slices[s].length[d];
            }
            extp[s * nd + d] = x;
        }
        slices[s].n_extent = nd;
        slices[s].extent = &extp[s * nd];
        slicep[s] = &slices[s];
    }
    m.n_slices = ns;
    m.slices = slicep;
    if (ns == 0) {
        m.shard_id = e->shard;
        m.offset = (int64_t)e->offset;
        m.size = (int64_t)e->size;
        m.crc32c = e->crc_masked;
    }
    *len = tensorflow__bundle_entry_proto__get_packed_size(&m);
    *out = malloc(*len ? *len : 1);
    TR_FAIL_IF(!*out, err, TRESTLE_E_NOMEM, "out of memory");
    tensorflow__bundle_entry_proto__pack(&m, *out);
fail:
    free(dims);
    free(dimp);
    free(slices);
    free(slicep);
    free(ext);
    free(extp);
    return rc;
}

static int write_file_atomic(const char *path, const uint8_t *data, size_t len,
                             trestle_error *err)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tempstate%ld", path, (long)getpid()) < 0)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = TRESTLE_OK;
    if (fd < 0) {
        rc = trestle__error_set(err, TRESTLE_E_IO, errno, NULL, tmp, -1, -1, "cannot create %s: %s",
                                tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t r = write(fd, data + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0; /* a write of 0 leaves errno stale */
            rc = trestle__error_set(err, TRESTLE_E_IO, e, NULL, tmp, (int64_t)done, -1,
                                    "writing %s: %s", tmp, e ? strerror(e) : "no progress");
            break;
        }
        done += (size_t)r;
    }
    if (close(fd) != 0 && rc == TRESTLE_OK)
        rc = trestle__error_set(err, TRESTLE_E_IO, errno, NULL, tmp, -1, -1, "closing %s: %s", tmp,
                                strerror(errno));
    if (rc == TRESTLE_OK && rename(tmp, path) != 0)
        rc = trestle__error_set(err, TRESTLE_E_IO, errno, NULL, path, -1, -1,
                                "renaming %s to %s: %s", tmp, path, strerror(errno));
    if (rc != TRESTLE_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

int trestle_writer_finish(trestle_writer *w, trestle_error *err)
{
    trestle__table_builder *b = NULL;
    const wentry **order = NULL;
    uint8_t *file = NULL, *val = NULL;
    size_t file_len = 0, val_len = 0;
    char *index_path = NULL;
    int rc = TRESTLE_OK;

    trestle_error_clear(err);
    if (!w || w->finished)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "writer already finished");
    w->finished = true;
    for (int i = 0; i < w->num_shards; i++) {
        TR_FORWARD(trestle__writer_flush(w, i, err));
        int fd = w->fds[i];
        w->fds[i] = -1;
        TR_FAIL_IF(close(fd) != 0, err, TRESTLE_E_IO, "closing %s: %s", w->paths[i],
                   strerror(errno));
    }
    order = malloc((w->num_entries + 1) * sizeof *order);
    TR_FAIL_IF(!order, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < w->num_entries; i++)
        order[i] = &w->entries[i];
    qsort(order, w->num_entries, sizeof *order, cmp_keys);

    TR_FORWARD(trestle__table_builder_create(w->snappy, &b, err));
    {
        Tensorflow__VersionDef version = TENSORFLOW__VERSION_DEF__INIT;
        Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
        uint8_t hbuf[64];
        version.producer = 1; /* kTensorBundleVersion */
        h.num_shards = w->num_shards;
        h.version = &version;
        size_t hlen = tensorflow__bundle_header_proto__pack(&h, hbuf);
        TR_FORWARD(trestle__table_builder_add(b, (const uint8_t *)"", 0, hbuf, hlen, err));
    }
    for (size_t i = 0; i < w->num_entries; i++) {
        TR_FORWARD(pack_entry(order[i], &val, &val_len, err));
        TR_FORWARD(trestle__table_builder_add(b, order[i]->key, order[i]->key_len, val, val_len,
                                              err));
        free(val);
        val = NULL;
    }
    TR_FORWARD(trestle__table_builder_finish(b, &file, &file_len, err));
    TR_FAIL_IF(asprintf(&index_path, "%s.index", w->prefix) < 0, err, TRESTLE_E_NOMEM,
               "out of memory");
    TR_FORWARD(write_file_atomic(index_path, file, file_len, err));
fail:
    free(index_path);
    free(file);
    free(val);
    free(order);
    trestle__table_builder_free(b);
    return rc;
}
