/*
 * test_writer.c - the bundle writer: proof of byte-identity with TensorFlow
 * (re-write the tensors of every real fixture and compare the files), and
 * round trips of every dtype, strings, many shards, alignment and
 * partitioned (sliced) variables.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "slice.h"
#include "testutil.h"

typedef struct order_item {
    size_t index;
    int shard;
    uint64_t offset;
} order_item;

static int by_position(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard - y->shard;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Re-write every tensor of a real checkpoint in its original data order. */
static void rewrite_and_compare(const char *rel, int snappy)
{
    const char *src = tu_fixture(rel);
    struct stat st;
    if (stat(src, &st) != 0)
        cr_skip_test("fixture %s is absent", src);
    trestle_checkpoint *c;
    trestle_error err;
    c = tu_open(src, NULL);
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);

    size_t n = trestle_tensor_count(c);
    order_item *order = calloc(n + 1, sizeof *order);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(c, i, &t);
        order[i] = (order_item){ i, t.shard, t.offset };
    }
    qsort(order, n, sizeof *order, by_position);

    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/%s", dir, strrchr(info.prefix, '/') + 1) > 0);
    trestle_writer_options opt;
    trestle_writer_options_init(&opt);
    opt.num_shards = info.num_shards;
    opt.snappy_index = snappy;
    trestle_writer *w;
    cr_assert_eq(trestle_writer_create(prefix, &opt, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t k = 0; k < n; k++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(c, order[k].index, &t);
        uint8_t *buf = malloc(t.size ? t.size : 1);
        cr_assert_eq(trestle_tensor_read(c, order[k].index, buf, t.size, 1, &err), TRESTLE_OK);
        if (t.dtype == TRESTLE_DT_STRING) {
            trestle_bytes *elems = calloc((size_t)t.num_elements + 1, sizeof *elems);
            cr_assert_eq(trestle_strings_decode(buf, t.size, (uint64_t)t.num_elements, elems, &err),
                         TRESTLE_OK);
            cr_assert_eq(trestle_writer_add_strings(w, t.name, t.rank, t.dims, elems, t.shard, &err),
                         TRESTLE_OK, "%s", err.message);
            free(elems);
        } else {
            cr_assert_eq(trestle_writer_add(w, t.name, t.dtype, t.rank, t.dims, buf, t.size,
                                            t.shard, &err), TRESTLE_OK, "%s", err.message);
        }
        free(buf);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s.index", info.prefix);
    snprintf(b, sizeof b, "%s.index", prefix);
    tu_assert_same_file(a, b);
    for (int s = 0; s < info.num_shards; s++) {
        snprintf(a, sizeof a, "%s.data-%05d-of-%05d", info.prefix, s, info.num_shards);
        snprintf(b, sizeof b, "%s.data-%05d-of-%05d", prefix, s, info.num_shards);
        tu_assert_same_file(a, b);
    }
    trestle_close(c);
    free(order);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(writer, rewrites_rust_regression_model_byte_for_byte) { rewrite_and_compare("tf-checkpoints/rust_regression_model", 0); }
Test(writer, rewrites_rust_regression_savedmodel_byte_for_byte) { rewrite_and_compare("tf-checkpoints/rust_regression_savedmodel", 0); }
Test(writer, rewrites_the_two_shard_keras_checkpoint_byte_for_byte) { rewrite_and_compare("tf-checkpoints/tfkeras_lso_ckpt_2shards", 0); }
Test(writer, rewrites_serving_tf_text_regression_byte_for_byte) { rewrite_and_compare("tf-checkpoints/serving_tf_text_regression", 0); }
Test(writer, rewrites_t2t_transformer_byte_for_byte) { rewrite_and_compare("tf-real/t2t_transformer_test_ckpt", 0); }
Test(writer, rewrites_deepchem_byte_for_byte) { rewrite_and_compare("tf-real/deepchem_qm7_graphconv", 0); }
Test(writer, rewrites_tfx_estimator_two_shards_byte_for_byte) { rewrite_and_compare("tf-real/tfx_estimator_ckpt_2shards_2019", 0); }
Test(writer, rewrites_all_string_keras_checkpoint_byte_for_byte) { rewrite_and_compare("tf-real/tfdeploy_keras_multiple_tf2alpha0", 0); }
Test(writer, rewrites_bool_and_odd_offsets_byte_for_byte) { rewrite_and_compare("tf-real/tfdf_adult_rf_bool", 1); }
Test(writer, rewrites_a_snappy_index_byte_for_byte) { rewrite_and_compare("tf-checkpoints/serving_half_plus_two_cpu_snappy", 1); }

/* ---- round trips ---- */

static trestle_checkpoint *reopen(const char *prefix)
{
    trestle_checkpoint *c;
    c = tu_open(prefix, NULL);
    return c;
}

Test(writer, round_trips_every_fixed_size_dtype_across_eight_shards)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/all", dir) > 0);
    trestle_writer_options opt;
    trestle_writer_options_init(&opt);
    opt.num_shards = 8;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &opt, &w, &err), TRESTLE_OK);
    int count = 0;
    for (int dt = 1; dt < TRESTLE_DT_COUNT_; dt++) {
        size_t es = trestle_dtype_size(dt);
        if (es == 0)
            continue;
        int64_t dims[3] = { 3, 5, dt };
        size_t size = 15 * (size_t)dt * es;
        uint8_t *data = malloc(size);
        tu_fill_random(data, size, (uint64_t)dt);
        char name[64];
        snprintf(name, sizeof name, "t/%s", trestle_dtype_name(dt));
        cr_assert_eq(trestle_writer_add(w, name, dt, 3, dims, data, size, dt % 8, &err), TRESTLE_OK,
                     "%s", err.message);
        free(data);
        count++;
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    trestle_checkpoint *c = reopen(prefix);
    cr_assert_eq(trestle_tensor_count(c), (size_t)count);
    for (size_t i = 0; i < trestle_tensor_count(c); i++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(c, i, &t);
        uint8_t *got = malloc(t.size), *want = malloc(t.size);
        tu_fill_random(want, t.size, (uint64_t)t.dtype);
        cr_assert_eq(trestle_tensor_read(c, i, got, t.size, 1, &err), TRESTLE_OK, "%s", err.message);
        cr_assert_arr_eq(got, want, t.size, "%s", t.name);
        cr_assert_eq(t.shard, t.dtype % 8);
        cr_assert_eq(t.dims[2], t.dtype);
        free(got);
        free(want);
    }
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(writer, aligns_tensors_when_asked)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/al", dir) > 0);
    trestle_writer_options opt;
    trestle_writer_options_init(&opt);
    opt.alignment = 4096;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &opt, &w, &err), TRESTLE_OK);
    uint8_t bytes[3] = { 1, 2, 3 };
    int64_t d = 3;
    cr_assert_eq(trestle_writer_add(w, "x", TRESTLE_DT_UINT8, 1, &d, bytes, 3, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "y", TRESTLE_DT_UINT8, 1, &d, bytes, 3, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    trestle_checkpoint *c = reopen(prefix);
    trestle_tensor_info t;
    trestle_tensor_get_info(c, 1, &t);
    cr_assert_eq(t.offset, 4096);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(writer, rejects_duplicate_keys_wrong_sizes_and_bad_shards)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/bad", dir) > 0);
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    float f[2] = { 1, 2 };
    int64_t d = 2;
    cr_assert_eq(trestle_writer_add(w, "a", TRESTLE_DT_FLOAT, 1, &d, f, 8, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "a", TRESTLE_DT_FLOAT, 1, &d, f, 8, 0, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "duplicate key 'a'");
    cr_assert_eq(trestle_writer_add(w, "b", TRESTLE_DT_FLOAT, 1, &d, f, 7, 0, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor 'b': 7 bytes given, shape x float needs 8");
    cr_assert_eq(trestle_writer_add(w, "c", TRESTLE_DT_FLOAT, 1, &d, f, 8, 1, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor 'c': shard 1 is not in 0..0");
    trestle_writer_free(w);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(writer, stores_partitioned_variables_that_reassemble)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/part", dir) > 0);
    trestle_writer_options opt;
    trestle_writer_options_init(&opt);
    opt.num_shards = 2;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &opt, &w, &err), TRESTLE_OK);
    /* emb [10,4] in three odd partitions along dim 0, as Python writes them. */
    float full[40];
    tu_fill_random(full, sizeof full, 7);
    const char *specs[] = { "10 4 0,3:0,4", "10 4 3,5:0,4", "10 4 8,2:0,4" };
    const int rows[][2] = { { 0, 3 }, { 3, 5 }, { 8, 2 } };
    for (int p = 0; p < 3; p++)
        cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, specs[p],
                                              full + rows[p][0] * 4, (uint64_t)rows[p][1] * 16,
                                              p % 2, &err), TRESTLE_OK, "%s", err.message);
    /* A slice that covers everything is a plain tensor. */
    cr_assert_eq(trestle_writer_add_slice(w, "plain", TRESTLE_DT_FLOAT, "2 -", full, 8, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    trestle_checkpoint *c = reopen(prefix);
    cr_assert_eq(trestle_tensor_count(c), 2); /* slice keys are hidden */
    cr_assert_eq(c->num_entries, 5);
    size_t i;
    cr_assert_eq(trestle_tensor_find(c, "emb", &i, &err), TRESTLE_OK);
    trestle_tensor_info t;
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.kind, TRESTLE_TENSOR_PARTITIONED);
    cr_assert_eq(t.num_slices, 3);
    cr_assert_eq(t.size, 160);
    float got[40];
    cr_assert_eq(trestle_tensor_read(c, i, got, sizeof got, 1, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_arr_eq(got, full, sizeof full);
    /* The slice key of part 2 is the ordered-code form from the format doc. */
    static const uint8_t key[] = { 0x00, 'e', 'm', 'b', 0x00, 0x01, 0x01, 0x02, 0x83, 0x85, 0x80, 0x84 };
    cr_assert_neq(trestle__checkpoint_lookup(c, (const char *)key, sizeof key), (size_t)-1);
    cr_assert_eq(trestle_tensor_find(c, "plain", &i, &err), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.kind, TRESTLE_TENSOR_PLAIN);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* Keys are found through a hash table that grows as entries come: a
 * duplicate is caught wherever it lies, after every growth, and a slice's
 * whole tensor is found again among thousands of others. */
Test(writer, finds_duplicates_among_many_keys)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/many", dir) > 0);
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    float f = 1;
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "layer_%d/w", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 0, NULL, &f, 4, 0, &err),
                     TRESTLE_OK, "%s", err.message);
        if (i % 997 == 0 && i > 0) {
            snprintf(name, sizeof name, "layer_%d/w", i / 2);
            cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 0, NULL, &f, 4, 0, &err),
                         TRESTLE_E_INVALID_ARG);
            char want[64];
            snprintf(want, sizeof want, "duplicate key '%s'", name);
            cr_assert_str_eq(err.message, want);
        }
    }
    float half[2] = { 1, 2 };
    cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "4 0,2", half, 8, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "4 2,2", half, 8, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "5 2,2", half, 8, 0, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "slice 5 2,2 of tensor 'emb' disagrees with its earlier slices "
                                  "or a whole tensor of that name");
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    trestle_checkpoint *c = reopen(prefix);
    cr_assert_eq(trestle_tensor_count(c), 5001);
    size_t i;
    cr_assert_eq(trestle_tensor_find(c, "emb", &i, &err), TRESTLE_OK);
    trestle_tensor_info t;
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(t.num_slices, 2);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* Small tensors gather in the shard's buffer and a large one goes out at
 * once after them: the bytes land where the entries say, in add order. */
Test(writer, buffers_small_tensors_around_a_large_one)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/mixed", dir) > 0);
    trestle_writer_options opt;
    trestle_writer_options_init(&opt);
    opt.alignment = 64;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &opt, &w, &err), TRESTLE_OK);
    size_t big_n = (size_t)9 << 20; /* over the 8 MiB buffer */
    uint8_t *big = malloc(big_n), small[3][1000];
    tu_fill_random(big, big_n, 1);
    for (int k = 0; k < 3; k++)
        tu_fill_random(small[k], sizeof small[k], (uint64_t)k + 2);
    int64_t d_small = 1000, d_big = (int64_t)big_n;
    cr_assert_eq(trestle_writer_add(w, "s0", TRESTLE_DT_UINT8, 1, &d_small, small[0], 1000, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "s1", TRESTLE_DT_UINT8, 1, &d_small, small[1], 1000, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "big", TRESTLE_DT_UINT8, 1, &d_big, big, big_n, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "s2", TRESTLE_DT_UINT8, 1, &d_small, small[2], 1000, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    char *data;
    cr_assert(asprintf(&data, "%s.data-00000-of-00001", prefix) > 0);
    size_t len;
    uint8_t *file = tu_read_file(data, &len);
    cr_assert_eq(len, 2048 + big_n + 1000); /* s0, pad, s1, pad, big, s2 */
    cr_assert_arr_eq(file, small[0], 1000);
    cr_assert_arr_eq(file + 1024, small[1], 1000);
    cr_assert_arr_eq(file + 2048, big, big_n);
    cr_assert_arr_eq(file + 2048 + big_n, small[2], 1000);
    trestle_checkpoint *c = reopen(prefix);
    const char *names[] = { "s0", "s1", "big", "s2" };
    const uint64_t offsets[] = { 0, 1024, 2048, 2048 + ((uint64_t)9 << 20) };
    for (int k = 0; k < 4; k++) {
        size_t i;
        trestle_tensor_info t;
        cr_assert_eq(trestle_tensor_find(c, names[k], &i, &err), TRESTLE_OK);
        trestle_tensor_get_info(c, i, &t);
        cr_assert_eq(t.offset, offsets[k], "%s at %llu", names[k], (unsigned long long)t.offset);
    }
    trestle_close(c);
    free(file);
    free(data);
    free(big);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* A write that fails names the shard file and the offset where it failed,
 * whether it fails as a tensor is added or when the buffer goes out at
 * finish: here the file may not grow past 1 MiB (RLIMIT_FSIZE). */
Test(writer, a_failed_write_names_the_file_and_offset)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/full", dir) > 0);
    signal(SIGXFSZ, SIG_IGN); /* the write fails with EFBIG instead */
    struct rlimit lim = { 1 << 20, 1 << 20 };
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    static uint8_t block[300000];
    int64_t d = sizeof block;
    int rc = TRESTLE_OK;
    char name[16];
    for (int k = 0; k < 4 && rc == TRESTLE_OK; k++) {
        snprintf(name, sizeof name, "t%d", k);
        rc = trestle_writer_add(w, name, TRESTLE_DT_UINT8, 1, &d, block, sizeof block, 0, &err);
    }
    if (rc == TRESTLE_OK)
        rc = trestle_writer_finish(w, &err);
    cr_assert_eq(rc, TRESTLE_E_IO);
    char want[512];
    snprintf(want, sizeof want, "writing %s.data-00000-of-00001 at offset 1048576: %s", prefix,
             strerror(EFBIG));
    cr_assert_str_eq(err.message, want);
    cr_assert_eq(err.offset, 1048576);
    trestle_writer_free(w);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
