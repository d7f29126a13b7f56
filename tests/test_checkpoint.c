/*
 * test_checkpoint.c - opening real TensorFlow checkpoints (../shared
 * fixtures) and refusing malformed ones with errors that name the file and
 * the byte offset. Malformed indexes are made here with the project's own
 * SSTable builder and hand-packed entry protos.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "sstable.h"
#include "tensor_bundle.pb-c.h"
#include "testutil.h"

/* The real fixture `rel`, opened: a skip when ../shared is absent (a
 * failure under CI=true), and a failure when it does not open. */
static trestle_checkpoint *open_fixture(const char *rel)
{
    return tu_open(tu_fixture_present(rel), NULL);
}

static void read_f32(trestle_checkpoint *c, const char *name, float *out, size_t n)
{
    size_t i;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(c, name, &i, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_tensor_read(c, i, out, n * sizeof(float), 1, &err), TRESTLE_OK, "%s",
                 err.message);
}

/* ---- real fixtures ---- */

Test(checkpoint, reads_the_smallest_real_checkpoint)
{
    trestle_checkpoint *c = open_fixture("tf-checkpoints/rust_regression_model/variables");
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    cr_assert_eq(info.num_shards, 1);
    cr_assert_eq(info.num_tensors, 2);
    cr_assert_eq(info.producer, 1);
    trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_get_info(c, 1, &t), TRESTLE_OK);
    cr_assert_str_eq(t.name, "w");
    cr_assert_eq(t.dtype, TRESTLE_DT_FLOAT);
    cr_assert_eq(t.rank, 1);
    cr_assert_eq(t.dims[0], 1);
    cr_assert_eq(t.offset, 4);
    cr_assert_eq(t.size, 4);
    cr_assert_eq(t.crc32c_masked, 0x1b530575u);
    float w, b;
    read_f32(c, "w", &w, 1);
    read_f32(c, "b", &b, 1);
    cr_assert_float_eq(w, -0.8578622f, 1e-7);
    cr_assert_eq(b, 0.0f);
    trestle_close(c);
}

Test(checkpoint, reads_a_snappy_compressed_index)
{
    trestle_checkpoint *c =
        open_fixture("tf-checkpoints/serving_half_plus_two_cpu_snappy/variables.index");
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    cr_assert_eq(info.index_snappy_blocks, 1);
    const char *names[] = { "a", "a2", "b", "c", "c2" };
    const float want[] = { 0.5f, 0.5f, 2.0f, 3.0f, 3.0f };
    cr_assert_eq(trestle_tensor_count(c), 5);
    for (int k = 0; k < 5; k++) {
        float v;
        read_f32(c, names[k], &v, 1);
        cr_assert_eq(v, want[k], "%s", names[k]);
    }
    trestle_close(c);
}

Test(checkpoint, resolves_a_directory_through_its_state_file_and_reads_two_shards)
{
    trestle_checkpoint *c = open_fixture("tf-checkpoints/tfkeras_lso_ckpt_2shards");
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    cr_assert_eq(info.num_shards, 2);
    cr_assert(info.object_based);
    cr_assert(strstr(info.prefix, "tfkeras_lso_ckpt_2shards/ckpt") != NULL);
    float k[4];
    read_f32(c, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE", k, 4);
    const float want[4] = { 9.229685f, 10.901115f, 10.370763f, 9.757362f };
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(k[i], want[i], 1e-5);
    size_t i;
    trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_find(c, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE",
                                     &i, NULL), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.shard, 1);
    cr_assert_eq(trestle_tensor_find(c, TRESTLE_OBJECT_GRAPH_KEY, &i, NULL), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.kind, TRESTLE_TENSOR_OBJECT_GRAPH);
    cr_assert_eq(t.shard, 0);
    trestle_close(c);
}

Test(checkpoint, decodes_string_tensors_and_int64_scalars)
{
    trestle_checkpoint *c = open_fixture("tf-checkpoints/rust_regression_savedmodel");
    size_t i;
    trestle_tensor_info t;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(c, TRESTLE_OBJECT_GRAPH_KEY, &i, NULL), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.dtype, TRESTLE_DT_STRING);
    cr_assert_eq(t.size, 537);
    uint8_t buf[537];
    cr_assert_eq(trestle_tensor_read(c, i, buf, sizeof buf, 1, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_bytes elem;
    cr_assert_eq(trestle_strings_decode(buf, t.size, 1, &elem, &err), TRESTLE_OK);
    cr_assert_eq(elem.len, 531);
    cr_assert_eq(trestle_tensor_find(c, "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE", &i, NULL),
                 TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.dtype, TRESTLE_DT_INT64);
    cr_assert_eq(t.rank, 0);
    int64_t iter = -1;
    cr_assert_eq(trestle_tensor_read(c, i, &iter, 8, 1, &err), TRESTLE_OK);
    cr_assert_eq(iter, 0);
    trestle_close(c);
}

Test(checkpoint, every_real_tensor_passes_its_crc)
{
    static const char *dirs[] = {
        "tf-checkpoints/rust_regression_model", "tf-checkpoints/rust_regression_savedmodel",
        "tf-checkpoints/serving_half_plus_two_cpu_snappy", "tf-checkpoints/serving_half_plus_two_tf2_cpu",
        "tf-checkpoints/serving_tf_text_regression", "tf-checkpoints/tfkeras_lso_ckpt_2shards",
        "tf-real/deepchem_qm7_graphconv", "tf-real/java_saved_model_using_python",
        "tf-real/serving_saved_model_counter", "tf-real/serving_saved_model_half_plus_three",
        "tf-real/serving_saved_model_half_plus_two_gpu", "tf-real/serving_saved_model_half_plus_two_mkl",
        "tf-real/t2t_transformer_test_ckpt", "tf-real/tf2onnx_regression_ckpt",
        "tf-real/tfdeploy_keras_1_13", "tf-real/tfdeploy_keras_multiple_tf2alpha0",
        "tf-real/tfdeploy_tensorflow_1_12", "tf-real/tfdf_adult_rf_bool",
        "tf-real/tfjs_int64_multiply", "tf-real/tfjs_model_multi_output", "tf-real/tfjs_times_two_int",
        "tf-real/tfkeras_lso_savedmodel_2shards", "tf-real/tfranking_bert_lite_tf2",
        "tf-real/tfx_bench_tfma_savedmodel", "tf-real/tfx_estimator_ckpt",
        "tf-real/tfx_estimator_ckpt_2shards_2019", "tf-real/tfx_keras_savedmodel",
        "tf-real/tfx_kerastuner_prefix_named_checkpoint", "tf-real/tfx_transform_fn",
    };
    size_t checked = 0;
    tu_fixture("tf-checkpoints"); /* skips when ../shared is absent */
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        const char *p = tu_fixture(dirs[d]);
        struct stat st;
        if (stat(p, &st) != 0)
            continue; /* tf-real is optional */
        trestle_checkpoint *c = tu_open(p, NULL);
        for (size_t i = 0; i < trestle_tensor_count(c); i++) {
            trestle_tensor_info t;
            trestle_error err;
            trestle_tensor_get_info(c, i, &t);
            void *buf = malloc(t.size ? t.size : 1);
            cr_assert_eq(trestle_tensor_read(c, i, buf, t.size, 1, &err), TRESTLE_OK, "%s: %s",
                         dirs[d], err.message);
            free(buf);
            checked++;
        }
        trestle_close(c);
    }
    cr_assert_geq(checked, 20);
}

Test(checkpoint, opens_index_only_checkpoints_and_fails_reads_of_the_missing_shard)
{
    trestle_checkpoint *c = open_fixture("tf-real/t5x_mtf_tiny_t5_bf16_INDEXONLY");
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    cr_assert_eq(info.num_shards, 2);
    cr_assert_eq(info.num_tensors, 105);
    size_t i;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(c, "global_step", &i, NULL), TRESTLE_OK);
    int64_t step = -1;
    cr_assert_eq(trestle_tensor_read(c, i, &step, 8, 1, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(step, 0);
    /* Any bfloat16 tensor lives in the absent shard 1. */
    for (i = 0; i < trestle_tensor_count(c); i++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(c, i, &t);
        if (t.dtype == TRESTLE_DT_BFLOAT16 && t.shard == 1) {
            void *buf = malloc(t.size);
            cr_assert_eq(trestle_tensor_read(c, i, buf, t.size, 1, &err), TRESTLE_E_NOT_FOUND);
            cr_assert(strstr(err.message, "model.ckpt-0.data-00001-of-00002") != NULL, "%s",
                      err.message);
            cr_assert_str_eq(err.key, t.name);
            free(buf);
            break;
        }
    }
    cr_assert_lt(i, trestle_tensor_count(c), "no bfloat16 tensor found");
    trestle_close(c);

    trestle_open_options opt;
    trestle_open_options_init(&opt);
    opt.require_all_shards = 1;
    const char *t5x = tu_fixture_present("tf-real/t5x_mtf_tiny_t5_bf16_INDEXONLY");
    cr_assert_eq(trestle_open(t5x, &opt, &c, &err), TRESTLE_E_NOT_FOUND);
    cr_assert_null(c);
}

Test(checkpoint, refuses_a_state_file_that_points_nowhere)
{
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    const char *dir = tu_fixture_present("tf-checkpoints/serving_bad_half_plus_two_state");
    int rc = trestle_open(dir, NULL, &c, &err);
    cr_assert_eq(rc, TRESTLE_E_NOT_FOUND);
    cr_assert_null(c);
    cr_assert(strstr(err.message, "Couldn't match files for checkpoint "
                                  "/tmp/bad_half_plus_two/00000123/export") != NULL, "%s",
              err.message);
}

Test(checkpoint, resolves_a_prefix_named_checkpoint_and_data_file_paths)
{
    trestle_checkpoint *c = open_fixture("tf-real/tfx_kerastuner_prefix_named_checkpoint");
    cr_assert_eq(trestle_tensor_count(c), 30);
    trestle_close(c);
    c = open_fixture("tf-checkpoints/rust_regression_model/variables.data-00000-of-00001");
    cr_assert_eq(trestle_tensor_count(c), 2);
    trestle_close(c);
}

Test(checkpoint, reports_a_missing_checkpoint_clearly)
{
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open("/nonexistent/model.ckpt", NULL, &c, &err), TRESTLE_E_NOT_FOUND);
    cr_assert_str_eq(err.message, "no checkpoint at /nonexistent/model.ckpt: "
                                  "/nonexistent/model.ckpt.index does not exist");
}

/* ---- malformed indexes ---- */

typedef struct raw_entry {
    const char *key;
    int dtype, rank;
    int64_t dims[4];
    int shard;
    int64_t offset, size;
    uint32_t crc;
} raw_entry;

/* Build P.index from raw entries (keys sorted by the caller) and P.data-00000-of-00001. */
static char *make_ckpt(const char *dir, const raw_entry *es, size_t n, const void *data,
                       size_t data_len, uint8_t **index_out, size_t *index_len)
{
    char *prefix;
    cr_assert(asprintf(&prefix, "%s/ckpt", dir) > 0);
    trestle__table_builder *b;
    cr_assert_eq(trestle__table_builder_create(0, &b, NULL), TRESTLE_OK);
    static const uint8_t header[] = { 0x08, 0x01, 0x1a, 0x02, 0x08, 0x01 };
    cr_assert_eq(trestle__table_builder_add(b, (const uint8_t *)"", 0, header, sizeof header, NULL),
                 TRESTLE_OK);
    for (size_t i = 0; i < n; i++) {
        Tensorflow__BundleEntryProto m = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
        Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
        Tensorflow__TensorShapeProto__Dim dims[4], *dimp[4];
        for (int d = 0; d < es[i].rank; d++) {
            tensorflow__tensor_shape_proto__dim__init(&dims[d]);
            dims[d].size = es[i].dims[d];
            dimp[d] = &dims[d];
        }
        shape.n_dim = (size_t)es[i].rank;
        shape.dim = dimp;
        m.dtype = es[i].dtype;
        m.shape = &shape;
        m.shard_id = es[i].shard;
        m.offset = es[i].offset;
        m.size = es[i].size;
        m.crc32c = es[i].crc;
        uint8_t val[256];
        size_t len = tensorflow__bundle_entry_proto__pack(&m, val);
        cr_assert_eq(trestle__table_builder_add(b, (const uint8_t *)es[i].key, strlen(es[i].key),
                                                val, len, NULL), TRESTLE_OK);
    }
    cr_assert_eq(trestle__table_builder_finish(b, index_out, index_len, NULL), TRESTLE_OK);
    trestle__table_builder_free(b);
    char path[4096];
    snprintf(path, sizeof path, "%s.index", prefix);
    cr_assert_eq(tu_write_file(path, *index_out, *index_len), 0);
    snprintf(path, sizeof path, "%s.data-00000-of-00001", prefix);
    cr_assert_eq(tu_write_file(path, data, data_len), 0);
    return prefix;
}

static const float two_floats[2] = { 1.5f, -2.25f };

static raw_entry good_entry(void)
{
    raw_entry e = { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 1, 2 }, 0, 0, 8, 0 };
    e.crc = trestle__crc_mask(trestle__crc32c(two_floats, 8));
    return e;
}

static void expect_open_error(const char *prefix, int code, const char *needle, int64_t offset)
{
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    cr_assert_eq(trestle_open(prefix, NULL, &c, &err), code, "got %s: %s",
                 trestle_code_name(err.code), err.message);
    cr_assert_null(c);
    cr_assert(strstr(err.message, needle) != NULL, "message: %s", err.message);
    cr_assert(strstr(err.message, prefix) != NULL, "message does not name the file: %s",
              err.message);
    if (offset >= 0)
        cr_assert_eq(err.offset, offset, "offset %lld", (long long)err.offset);
}

Test(corrupt, opens_the_well_formed_baseline)
{
    char *dir = tu_mkdtemp();
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    float v[2];
    read_f32(c, "dense/kernel", v, 2);
    cr_assert_eq(v[1], -2.25f);
    trestle_close(c);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_a_truncated_footer)
{
    char *dir = tu_mkdtemp(), path[4096];
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    snprintf(path, sizeof path, "%s.index", prefix);
    tu_write_file(path, idx, len - 9);
    expect_open_error(prefix, TRESTLE_E_CORRUPT, "not an sstable (bad magic number)", -1);
    tu_write_file(path, idx, 40);
    expect_open_error(prefix, TRESTLE_E_CORRUPT, "file is too short to be an sstable", -1);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_bad_magic)
{
    char *dir = tu_mkdtemp(), path[4096];
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    idx[len - 1] ^= 0x01;
    snprintf(path, sizeof path, "%s.index", prefix);
    tu_write_file(path, idx, len);
    expect_open_error(prefix, TRESTLE_E_CORRUPT, "not an sstable (bad magic number)",
                      (int64_t)len - 8);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_a_bad_block_crc)
{
    char *dir = tu_mkdtemp(), path[4096];
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    idx[5] ^= 0x40; /* inside the header value of the first data block */
    snprintf(path, sizeof path, "%s.index", prefix);
    tu_write_file(path, idx, len);
    expect_open_error(prefix, TRESTLE_E_CORRUPT, "block checksum mismatch", 0);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, reads_of_an_offset_past_the_end_of_the_shard_fail_naming_the_range)
{
    char *dir = tu_mkdtemp();
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    e.offset = 4; /* 4 + 8 > 8 bytes in the shard */
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    /* It opens and lists (issue 13: a truncated copy is worth inspecting)... */
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_tensor_count(c), 1);
    /* ...and reading the tensor names it, the file and the offset. */
    float buf[2];
    cr_assert_eq(trestle_tensor_read(c, 0, buf, sizeof buf, 1, &err), TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.key, "dense/kernel");
    cr_assert(strstr(err.path, "ckpt.data-00000-of-00001") != NULL, "%s", err.path);
    cr_assert_eq(err.offset, 4);
    cr_assert(strstr(err.message, "tensor 'dense/kernel': bytes [4, 4+8) lie past the end of "
                                  "data shard") != NULL, "%s", err.message);
    trestle_close(c);
    /* require_all_shards keeps refusing it at open. */
    trestle_open_options opt;
    trestle_open_options_init(&opt);
    opt.require_all_shards = 1;
    cr_assert_eq(trestle_open(prefix, &opt, &c, &err), TRESTLE_E_CORRUPT);
    cr_assert_null(c);
    cr_assert(strstr(err.message, "lie past the end of data shard") != NULL, "%s", err.message);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_a_size_that_does_not_match_shape_and_dtype)
{
    char *dir = tu_mkdtemp();
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    e.size = 6;
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    expect_open_error(prefix, TRESTLE_E_CORRUPT,
                      "Invalid size in bundle entry: key dense/kernel; stored size 6; expected "
                      "size 8", -1);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_negative_dims_unknown_dtypes_and_bad_shards)
{
    struct { raw_entry e; const char *needle; } cases[] = {
        { { "t", TRESTLE_DT_FLOAT, 2, { -1, 2 }, 0, 0, 8, 0 }, "Invalid tensor shape: t [-1,2]" },
        { { "t", 99, 1, { 2 }, 0, 0, 8, 0 }, "tensor 't' has unknown or unstorable dtype 99" },
        { { "t", TRESTLE_DT_RESOURCE, 1, { 2 }, 0, 0, 8, 0 }, "unknown or unstorable dtype 20" },
        { { "t", TRESTLE_DT_FLOAT, 1, { 2 }, 3, 0, 8, 0 }, "tensor 't' names shard 3 of 1" },
        { { "t", TRESTLE_DT_FLOAT, 1, { 2 }, 0, -8, 8, 0 }, "has offset -8" },
        { { "t", TRESTLE_DT_FLOAT, 2, { INT64_MAX / 2, 4 }, 0, 0, 8, 0 }, "negative or overflowing" },
        { { "t", TRESTLE_DT_STRING, 1, { 3 }, 0, 0, 5, 0 }, "is too small for 3 string elements" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *dir = tu_mkdtemp();
        uint8_t *idx;
        size_t len;
        char *prefix = make_ckpt(dir, &cases[k].e, 1, two_floats, 8, &idx, &len);
        expect_open_error(prefix, TRESTLE_E_CORRUPT, cases[k].needle, -1);
        free(idx);
        free(prefix);
        tu_rmtree(dir);
        free(dir);
    }
}

Test(corrupt, reports_a_crc_mismatch_naming_tensor_file_and_offset)
{
    char *dir = tu_mkdtemp();
    uint8_t *idx;
    size_t len;
    raw_entry e = good_entry();
    e.crc ^= 1;
    char *prefix = make_ckpt(dir, &e, 1, two_floats, 8, &idx, &len);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    float v[2];
    trestle_error err;
    cr_assert_eq(trestle_tensor_read(c, 0, v, sizeof v, 1, &err), TRESTLE_E_CRC_MISMATCH);
    cr_assert_str_eq(err.key, "dense/kernel");
    cr_assert_eq(err.offset, 0);
    cr_assert(strstr(err.message, "CRC32C mismatch in tensor 'dense/kernel'") != NULL, "%s",
              err.message);
    cr_assert(strstr(err.message, "ckpt.data-00000-of-00001, offset 0, 8 bytes") != NULL, "%s",
              err.message);
    /* Unverified reads still return the bytes. */
    cr_assert_eq(trestle_tensor_read(c, 0, v, sizeof v, 0, &err), TRESTLE_OK);
    trestle_close(c);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(corrupt, rejects_a_table_without_a_header_entry)
{
    char *dir = tu_mkdtemp(), *prefix, path[4096];
    cr_assert(asprintf(&prefix, "%s/ckpt", dir) > 0);
    trestle__table_builder *b;
    uint8_t *idx;
    size_t len;
    cr_assert_eq(trestle__table_builder_create(0, &b, NULL), TRESTLE_OK);
    cr_assert_eq(trestle__table_builder_add(b, (const uint8_t *)"a", 1, (const uint8_t *)"", 0,
                                            NULL), TRESTLE_OK);
    cr_assert_eq(trestle__table_builder_finish(b, &idx, &len, NULL), TRESTLE_OK);
    trestle__table_builder_free(b);
    snprintf(path, sizeof path, "%s.index", prefix);
    tu_write_file(path, idx, len);
    expect_open_error(prefix, TRESTLE_E_CORRUPT, "(failed to seek to header entry)", -1);
    free(idx);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(checkpoint, a_directory_with_a_trailing_slash_resolves_without_double_slashes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s//", tu_fixture_present("tf-checkpoints/tfkeras_lso_ckpt_2shards"));
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    cr_assert_null(strstr(info.prefix, "//"), "%s", info.prefix);
    cr_assert(strstr(info.prefix, "tfkeras_lso_ckpt_2shards/ckpt") != NULL, "%s", info.prefix);
    trestle_close(c);
}

/* ---- which version: trestle_checkpoint_identity() ---- */

/* CRC-32C bit by bit (reflected Castagnoli polynomial), independent of the
 * engine's table-driven and ISA-L code. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* dir/NAME: one float tensor "w" [32,4] of values from `seed`. */
static char *write_version(const char *dir, const char *name, uint64_t seed)
{
    char *prefix;
    float w[128];
    trestle_writer *wr;
    static const int64_t d[] = { 32, 4 };
    cr_assert(asprintf(&prefix, "%s/%s", dir, name) > 0);
    tu_fill_random(w, sizeof w, seed);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &wr, NULL), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(wr, "w", TRESTLE_DT_FLOAT, 2, d, w, sizeof w, 0, NULL),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(wr, NULL), TRESTLE_OK);
    trestle_writer_free(wr);
    return prefix;
}

Test(checkpoint, identity_is_the_index_size_and_crc32c_and_tells_versions_apart)
{
    char *dir = tu_mkdtemp(), *a = write_version(dir, "a", 1), *b = write_version(dir, "b", 2);
    char path[4200];
    size_t len;
    snprintf(path, sizeof path, "%s.index", a);
    uint8_t *bytes = tu_read_file(path, &len);
    trestle_checkpoint *ca = tu_open(a, NULL), *cb = tu_open(b, NULL);
    uint64_t na, nb;
    uint32_t crca, crcb;
    cr_assert_eq(trestle_checkpoint_identity(ca, &na, &crca), TRESTLE_OK);
    cr_assert_eq(na, len);
    cr_assert_eq(crca, crc32c_bitwise(bytes, len), "0x%08x", crca);
    /* Same name, shape and layout, other values: only the stored CRC differs. */
    cr_assert_eq(trestle_checkpoint_identity(cb, &nb, &crcb), TRESTLE_OK);
    cr_assert_eq(nb, na);
    cr_assert_neq(crcb, crca);
    /* A library handed a plan finds its checkpoint. */
    trestle_plan *p = tu_plan(ca, NULL, 0, NULL);
    cr_assert_eq(trestle_plan_checkpoint(p), ca);
    cr_assert_null(trestle_plan_checkpoint(NULL));
    cr_assert_eq(trestle_checkpoint_identity(NULL, &na, &crca), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_checkpoint_identity(ca, NULL, &crca), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_checkpoint_identity(ca, &na, NULL), TRESTLE_E_INVALID_ARG);
    trestle_plan_free(p);
    trestle_close(ca);
    trestle_close(cb);
    free(bytes);
    free(a);
    free(b);
    tu_rmtree(dir);
    free(dir);
}
