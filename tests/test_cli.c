/*
 * test_cli.c - the `trestle` command-line tool, run as a user runs it.
 *
 * Each test runs the built binary (TRESTLE_CLI_PATH) through /bin/sh and
 * compares exact stdout where the output is a contract (listings, values,
 * summaries), exit codes everywhere, and key phrases of stderr. Real
 * TensorFlow fixtures come from ../shared (skipped when absent); other
 * inputs are written with the library's own writer.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

/* ---- helpers ---- */

static char *path_join(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

/* Copy a fixture directory's files into a fresh writable temp dir. */
static char *copy_fixture(const char *rel)
{
    const char *src = tu_fixture(rel);
    char *dir = tu_mkdtemp();
    char cmd[8192];
    cr_assert_not_null(dir);
    snprintf(cmd, sizeof cmd, "cp '%s'/* '%s'/ && chmod u+w '%s'/*", src, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    return dir;
}

/* XOR one byte of a file at `offset`. */
static void flip_byte(const char *path, size_t offset)
{
    tu_flip_byte(path, offset, 0x01);
}

/* Write a one-shard checkpoint through the public writer. */
static trestle_writer *writer_open(const char *prefix)
{
    trestle_writer *w = NULL;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    return w;
}

static void writer_add(trestle_writer *w, const char *name, int dtype, int rank,
                       const int64_t *dims, const void *data, uint64_t size)
{
    trestle_error err;
    cr_assert_eq(trestle_writer_add(w, name, dtype, rank, dims, data, size, 0, &err), TRESTLE_OK,
                 "%s", err.message);
}

static void writer_done(trestle_writer *w)
{
    trestle_error err;
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
}

/* ---- inspect: listings of real TensorFlow checkpoints ---- */

Test(cli, inspect_lists_rust_regression_model_exactly)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_model");
    tu_cli_result r = tu_cli("inspect '%s'", dir);
    char want[4096];
    snprintf(want, sizeof want,
             "checkpoint %s/variables: 2 tensors, 8 B in 1 shard\n"
             "NAME  DTYPE  SHAPE  SIZE  SHARD  OFFSET\n"
             "b     float  [1]     4 B      0       0\n"
             "w     float  [1]     4 B      0       4\n",
             dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, want);
    cr_assert_str_empty(r.err);
    tu_cli_free(&r);
}

Test(cli, inspect_accepts_prefix_index_and_data_file)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_model");
    const char *forms[] = { "variables", "variables.index", "variables.data-00000-of-00001" };
    for (size_t i = 0; i < 3; i++) {
        tu_cli_result r = tu_cli("inspect '%s/%s'", dir, forms[i]);
        cr_assert_eq(r.rc, 0, "%s: %s", forms[i], r.err);
        cr_assert(strstr(r.out, "2 tensors, 8 B in 1 shard"), "%s: %s", forms[i], r.out);
        tu_cli_free(&r);
    }
}

Test(cli, inspect_shows_object_graph_and_tf2_keys_as_stored)
{
    const char *dir = tu_fixture("tf-checkpoints/serving_half_plus_two_tf2_cpu");
    tu_cli_result r = tu_cli("inspect '%s'", dir);
    char want[4096];
    snprintf(want, sizeof want,
             "checkpoint %s/variables: 4 tensors, 631 B in 1 shard, object-based (TF2)\n"
             "NAME                          DTYPE   SHAPE   SIZE  SHARD  OFFSET  NOTE\n"
             "_CHECKPOINTABLE_OBJECT_GRAPH  string  []     619 B      0      12  "
             "(object graph, 613 bytes)\n"
             "a/.ATTRIBUTES/VARIABLE_VALUE  float   []       4 B      0       0\n"
             "b/.ATTRIBUTES/VARIABLE_VALUE  float   []       4 B      0       4\n"
             "c/.ATTRIBUTES/VARIABLE_VALUE  float   []       4 B      0       8\n",
             dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);

    r = tu_cli("inspect --tensor _CHECKPOINTABLE_OBJECT_GRAPH '%s'", dir);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "_CHECKPOINTABLE_OBJECT_GRAPH: string []\n(object graph, 613 bytes)\n");
    tu_cli_free(&r);
}

Test(cli, inspect_lists_two_shard_checkpoint_with_shard_numbers)
{
    const char *dir = tu_fixture("tf-checkpoints/tfkeras_lso_ckpt_2shards");
    tu_cli_result r = tu_cli("inspect '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "11 tensors, 1.41 KiB in 2 shards, object-based (TF2)\n"), "%s", r.out);
    cr_assert(strstr(r.out, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE  "
                            "                                                  float   [2,2]"
                            "      16 B      1       0\n"),
              "%s", r.out);
    tu_cli_free(&r);
}

/* ---- inspect --tensor: values ---- */

Test(cli, inspect_tensor_prints_w_of_rust_regression_model)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_model");
    tu_cli_result r = tu_cli("inspect --tensor w '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    /* float32 -0.85786223 needs 8 digits to read back as the same float. */
    cr_assert_str_eq(r.out, "w: float [1]\n[-0.85786223]\n");
    tu_cli_free(&r);

    r = tu_cli("inspect -t b -t w '%s'", dir);
    cr_assert_str_eq(r.out, "b: float [1]\n[0.0]\n\nw: float [1]\n[-0.85786223]\n");
    tu_cli_free(&r);
}

Test(cli, inspect_tensor_prints_half_plus_two_scalars)
{
    const char *dir = tu_fixture("tf-checkpoints/serving_half_plus_two_cpu_snappy");
    tu_cli_result r = tu_cli("inspect -t a -t a2 -t b -t c -t c2 '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "a: float []\n0.5\n\n"
                            "a2: float []\n0.5\n\n"
                            "b: float []\n2.0\n\n"
                            "c: float []\n3.0\n\n"
                            "c2: float []\n3.0\n");
    tu_cli_free(&r);
}

Test(cli, inspect_tensor_prints_2x2_kernel_from_shard_1)
{
    const char *dir = tu_fixture("tf-checkpoints/tfkeras_lso_ckpt_2shards");
    tu_cli_result r =
        tu_cli("inspect --tensor layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE "
               "--tensor optimizer/loss_scale/current_loss_scale/.ATTRIBUTES/VARIABLE_VALUE "
               "'%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out,
                     "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE: float [2,2]\n"
                     "[[9.229685, 10.901115],\n"
                     " [10.370763, 9.757362]]\n"
                     "\n"
                     "optimizer/loss_scale/current_loss_scale/.ATTRIBUTES/VARIABLE_VALUE: "
                     "float []\n"
                     "32768.0\n");
    tu_cli_free(&r);
}

Test(cli, inspect_tensor_prints_int64_scalar)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_savedmodel");
    tu_cli_result r =
        tu_cli("inspect --tensor optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE: int64 []\n0\n");
    tu_cli_free(&r);
}

Test(cli, inspect_tensor_with_unknown_name_fails_naming_it)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_model");
    tu_cli_result r = tu_cli("inspect --tensor nope '%s'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert(tu_starts_with(r.err, "trestle: Key nope not found in checkpoint"), "%s", r.err);
    tu_cli_free(&r);
}

Test(cli, inspect_summarises_big_tensors_unless_all)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "ckpt");
    float v[40 * 40];
    for (int i = 0; i < 40 * 40; i++)
        v[i] = (float)i;
    int64_t dims[2] = { 40, 40 };
    trestle_writer *w = writer_open(prefix);
    writer_add(w, "big", TRESTLE_DT_FLOAT, 2, dims, v, sizeof v);
    writer_done(w);

    tu_cli_result r = tu_cli("inspect --tensor big '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "big: float [40,40]\n"
                            "[[0.0, 1.0, 2.0, ..., 37.0, 38.0, 39.0],\n"
                            " [40.0, 41.0, 42.0, ..., 77.0, 78.0, 79.0],\n"
                            " [80.0, 81.0, 82.0, ..., 117.0, 118.0, 119.0],\n"
                            " ...,\n"
                            " [1480.0, 1481.0, 1482.0, ..., 1517.0, 1518.0, 1519.0],\n"
                            " [1520.0, 1521.0, 1522.0, ..., 1557.0, 1558.0, 1559.0],\n"
                            " [1560.0, 1561.0, 1562.0, ..., 1597.0, 1598.0, 1599.0]]\n");
    tu_cli_free(&r);

    r = tu_cli("inspect --all --tensor big '%s'", prefix);
    cr_assert_eq(r.rc, 0);
    cr_assert_null(strstr(r.out, "..."));
    cr_assert(strstr(r.out, " 1599.0]]\n"));
    cr_assert(strstr(r.out, "[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0,"));
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

Test(cli, inspect_converts_narrow_floats_for_values_and_stats)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "ckpt");
    /* half: 1.0, -2.0, 0.5, NaN; bfloat16: 1.0, -0.5; float8_e4m3fn: 1.0, -1.5 */
    uint16_t half[4] = { 0x3C00, 0xC000, 0x3800, 0x7E00 };
    uint16_t bf16[2] = { 0x3F80, 0xBF00 };
    uint8_t f8[2] = { 0x38, 0xBC };
    int64_t d4 = 4, d2 = 2;
    trestle_writer *w = writer_open(prefix);
    writer_add(w, "bf", TRESTLE_DT_BFLOAT16, 1, &d2, bf16, sizeof bf16);
    writer_add(w, "f8", TRESTLE_DT_FLOAT8_E4M3FN, 1, &d2, f8, sizeof f8);
    writer_add(w, "h", TRESTLE_DT_HALF, 1, &d4, half, sizeof half);
    writer_done(w);

    tu_cli_result r = tu_cli("inspect -t h -t bf -t f8 '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "h: half [4]\n[1.0, -2.0, 0.5, nan]\n\n"
                            "bf: bfloat16 [2]\n[1.0, -0.5]\n\n"
                            "f8: float8_e4m3fn [2]\n[1.0, -1.5]\n");
    tu_cli_free(&r);

    r = tu_cli("inspect --stats '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    char want[4096];
    snprintf(want, sizeof want,
             "checkpoint %s: 3 tensors, 14 B in 1 shard\n"
             "NAME  DTYPE          SHAPE  SIZE  SHARD  OFFSET   MIN  MAX         MEAN  NAN\n"
             "bf    bfloat16       [2]     4 B      0       0  -0.5  1.0         0.25    0\n"
             "f8    float8_e4m3fn  [2]     2 B      0       4  -1.5  1.0        -0.25    0\n"
             "h     half           [4]     8 B      0       6  -2.0  1.0  -0.16666667    1\n",
             prefix);
    /* The NaN is counted, and left out of min, max and mean. */
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

Test(cli, inspect_prints_strings_as_python_bytes)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "ckpt");
    trestle_bytes s[3] = {
        { (const uint8_t *)"plain", 5 },
        { (const uint8_t *)"it's", 4 },
        { (const uint8_t *)"\x00\xff\n\\", 4 },
    };
    int64_t d = 3;
    trestle_writer *w = writer_open(prefix);
    trestle_error err;
    cr_assert_eq(trestle_writer_add_strings(w, "vocab", 1, &d, s, 0, &err), TRESTLE_OK, "%s",
                 err.message);
    writer_done(w);

    tu_cli_result r = tu_cli("inspect --tensor vocab '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "vocab: string [3]\n[b'plain', b\"it's\", b'\\x00\\xff\\n\\\\']\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

/* A [4,3] float variable saved as two row slices in two shards, plus x. */
static char *write_partitioned(char **dir_out)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "ckpt");
    float top[6] = { 0, 1, 2, 3, 4, 5 }, bottom[6] = { 6, 7, 8, 9, 10, 11 }, x = 1;
    int64_t d1 = 1;
    trestle_writer_options o;
    trestle_writer *w = NULL;
    trestle_error err;
    trestle_writer_options_init(&o);
    o.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &o, &w, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "part", TRESTLE_DT_FLOAT, "4 3 0,2:-", top,
                                          sizeof top, 0, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "part", TRESTLE_DT_FLOAT, "4 3 2,2:-", bottom,
                                          sizeof bottom, 1, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "x", TRESTLE_DT_FLOAT, 1, &d1, &x, 4, 1, &err), TRESTLE_OK);
    writer_done(w);
    *dir_out = dir;
    return prefix;
}

Test(cli, inspect_partitioned_tensor_shows_slice_count_and_assembled_values)
{
    char *dir, *prefix = write_partitioned(&dir);
    tu_cli_result r = tu_cli("inspect --verify '%s'", prefix);
    char want[4096];
    snprintf(want, sizeof want,
             "checkpoint %s: 2 tensors, 52 B in 2 shards\n"
             "NAME  DTYPE  SHAPE  SIZE  SHARD  OFFSET  CRC32C  NOTE\n"
             "part  float  [4,3]  48 B      -       -  ok      (partitioned, 2 slices)\n"
             "x     float  [1]     4 B      1      24  ok\n"
             "verified 2 tensors: all CRC32C OK\n",
             prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);

    r = tu_cli("inspect --tensor part '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "part: float [4,3] (partitioned, 2 slices)\n"
                            "[[0.0, 1.0, 2.0],\n"
                            " [3.0, 4.0, 5.0],\n"
                            " [6.0, 7.0, 8.0],\n"
                            " [9.0, 10.0, 11.0]]\n");
    tu_cli_free(&r);

    r = tu_cli("inspect --json '%s'", prefix);
    cr_assert(strstr(r.out, "\"kind\": \"partitioned\", \"shard\": null, \"offset\": null, "
                            "\"slices\": 2}"), "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

Test(cli, restore_ops_file_with_slice_spec_restores_part_of_a_partitioned_tensor)
{
    char *dir, *prefix = write_partitioned(&dir);
    char *ops = path_join(dir, "ops.txt");
    /* Rows 1-2 straddle both stored slices. */
    const char *text = "part\t4 3 1,2:-\tdtype=float\nx\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    tu_cli_result r = tu_cli("restore --list --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "OP    DTYPE  SHAPE  SIZE\n"
                                 "part  float  [2,3]  24 B\n"
                                 "x     float  [1]     4 B\n"
                                 "restored 2 tensors, 28 B in "),
              "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ops);
    free(prefix);
    free(dir);
}

/* ---- inspect --stats / --json ---- */

Test(cli, inspect_stats_of_real_kernel)
{
    const char *dir = tu_fixture("tf-checkpoints/tfkeras_lso_ckpt_2shards");
    tu_cli_result r = tu_cli("inspect --stats '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "  MIN        MAX       MEAN  NAN  NOTE\n"), "%s", r.out);
    cr_assert(strstr(r.out, "9.229685  10.901115  10.064732    0\n"), "%s", r.out);
    cr_assert(strstr(r.out, "32768.0    32768.0    32768.0    0\n"), "%s", r.out);
    tu_cli_free(&r);
}

Test(cli, inspect_json_has_every_field_and_escapes_names)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "ckpt");
    float one = 1.0f;
    int64_t d = 1;
    trestle_writer *w = writer_open(prefix);
    writer_add(w, "quote\"back\\slash\nnewline", TRESTLE_DT_FLOAT, 1, &d, &one, 4);
    writer_done(w);

    tu_cli_result r = tu_cli("inspect --json --stats --verify '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "\"name\": \"quote\\\"back\\\\slash\\nnewline\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"dtype\": \"float\", \"shape\": [1], \"bytes\": 4"), "%s", r.out);
    cr_assert(strstr(r.out, "\"crc_ok\": true"), "%s", r.out);
    cr_assert(strstr(r.out, "\"stats\": {\"min\": 1.0, \"max\": 1.0, \"mean\": 1.0, \"nans\": 0}"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\"verify\": {\"checked\": 1, \"bad\": 0, \"corrupt\": 0, \"unreadable\": 0}"), "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

Test(cli, inspect_json_of_real_fixture_lists_object_graph)
{
    const char *dir = tu_fixture("tf-checkpoints/rust_regression_savedmodel");
    tu_cli_result r = tu_cli("inspect --json '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(r.out[0] == '{' && strstr(r.out, "\n}\n"), "%s", r.out);
    cr_assert(strstr(r.out, "\"num_tensors\": 7"), "%s", r.out);
    cr_assert(strstr(r.out, "\"object_based\": true"), "%s", r.out);
    cr_assert(strstr(r.out, "\"kind\": \"object_graph\""), "%s", r.out);
    cr_assert(strstr(r.out, "{\"name\": \"optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE\", "
                            "\"dtype\": \"int64\", \"shape\": [], \"bytes\": 8"),
              "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("inspect --json --tensor w/.ATTRIBUTES/VARIABLE_VALUE '%s'", dir);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "\"values\": [0.20429754], \"truncated\": false}"), "%s", r.out);
    tu_cli_free(&r);
}

/* ---- verify ---- */

Test(cli, verify_passes_on_real_fixtures)
{
    const char *dirs[] = { "tf-checkpoints/rust_regression_model",
                           "tf-checkpoints/rust_regression_savedmodel",
                           "tf-checkpoints/serving_half_plus_two_cpu_snappy",
                           "tf-checkpoints/serving_half_plus_two_tf2_cpu",
                           "tf-checkpoints/serving_tf_text_regression",
                           "tf-checkpoints/tfkeras_lso_ckpt_2shards" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        const char *dir = tu_fixture(dirs[i]);
        tu_cli_result r = tu_cli("verify '%s'", dir);
        cr_assert_eq(r.rc, 0, "%s: %s", dirs[i], r.err);
        cr_assert(tu_starts_with(r.out, "OK: "), "%s: %s", dirs[i], r.out);
        tu_cli_free(&r);
        r = tu_cli("inspect --verify '%s'", dir);
        cr_assert_eq(r.rc, 0, "%s: %s", dirs[i], r.err);
        cr_assert(strstr(r.out, ": all CRC32C OK\n"), "%s: %s", dirs[i], r.out);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("verify '%s'", tu_fixture("tf-checkpoints/rust_regression_model"));
    cr_assert_str_eq(r.out, "OK: 2 tensors, 8 B verified\n");
    tu_cli_free(&r);
}

Test(cli, verify_names_the_tensor_with_a_flipped_byte)
{
    char *dir = copy_fixture("tf-checkpoints/rust_regression_model");
    char *data = path_join(dir, "variables.data-00000-of-00001");
    flip_byte(data, 5); /* inside w, stored at offset 4 */

    tu_cli_result r = tu_cli("verify '%s'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "FAILED: 1 of 2 tensors: w\n");
    cr_assert(tu_starts_with(r.err, "trestle: "), "%s", r.err);
    cr_assert(strstr(r.err, "'w'"), "%s", r.err);
    cr_assert(strstr(r.err, data), "names the file: %s", r.err);
    tu_cli_free(&r);

    r = tu_cli("inspect --verify '%s'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.out, "b     float  [1]     4 B      0       0  ok\n"), "%s", r.out);
    cr_assert(strstr(r.out, "w     float  [1]     4 B      0       4  BAD\n"), "%s", r.out);
    cr_assert(strstr(r.out, "verified 2 tensors: 1 BAD\n"), "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(data);
    free(dir);
}

Test(cli, verify_keeps_going_to_report_every_bad_tensor)
{
    char *dir = copy_fixture("tf-checkpoints/rust_regression_model");
    char *data = path_join(dir, "variables.data-00000-of-00001");
    flip_byte(data, 1); /* b */
    flip_byte(data, 6); /* w */

    tu_cli_result r = tu_cli("verify '%s'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "FAILED: 2 of 2 tensors: b, w\n");
    cr_assert(strstr(r.err, "'b'") && strstr(r.err, "'w'"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("inspect --json --verify '%s'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.out, "\"verify\": {\"checked\": 2, \"bad\": 2, \"corrupt\": 2, \"unreadable\": 0}"), "%s", r.out);
    cr_assert(strstr(r.out, "\"crc_ok\": false, \"error\": \"CRC32C mismatch"), "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(data);
    free(dir);
}

/* ---- synth -> inspect -> restore -> diff ---- */

Test(cli, synth_inspect_restore_diff_round_trip)
{
    char *dir = tu_mkdtemp(), *a = path_join(dir, "a"), *b = path_join(dir, "b");

    tu_cli_result r = tu_cli("synth '%s' --size 1M --shards 3 --seed 5", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    char want[4096];
    snprintf(want, sizeof want,
             "wrote 65 tensors, 980.38 KiB in 3 shards to %s (bfloat16; hidden 64, 7 layers, "
             "vocab 2004)\n", a);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);

    /* The same seed with another shard count: same tensors, other layout. */
    r = tu_cli("synth '%s' --size 1M --shards 2 --seed 5", b);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    tu_cli_free(&r);

    r = tu_cli("inspect '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, ": 65 tensors, 980.38 KiB in 3 shards\n"), "%s", r.out);
    cr_assert(strstr(r.out, "\nmodel/layers.6/mlp/up_proj/kernel              bfloat16  [64,224]"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\nmodel/embed_tokens/embedding                   bfloat16  [2004,64]"),
              "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("inspect --stats '%s'", a);
    cr_assert_eq(r.rc, 0);
    cr_assert_null(strstr(r.out, "  0.0  "), "no all-zero tensor: %s", r.out);
    tu_cli_free(&r);

    r = tu_cli("verify '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "OK: 65 tensors, 980.38 KiB verified\n");
    tu_cli_free(&r);

    r = tu_cli("restore '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "restored 65 tensors, 980.38 KiB in "), "%s", r.out);
    cr_assert(strstr(r.out, " GB/s (read "), "%s", r.out);
    cr_assert(strstr(r.out, ", O_DIRECT "), "%s", r.out);
    cr_assert_str_empty(r.err, "no progress bar when stderr is not a TTY: %s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --all --reader pread --direct never --threads 2 --queue-depth 4 "
               "--chunk 64K --staging 1M --no-verify '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "verify off"), "%s", r.out);
    cr_assert(strstr(r.out, "reader pread"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --quiet '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_empty(r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --map '%s'", a);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "restored 65 tensors, 980.38 KiB in "), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("diff --values '%s' '%s'", a, b);
    cr_assert_eq(r.rc, 0, "stdout: %s stderr: %s", r.out, r.err);
    cr_assert_str_eq(r.out, "identical: 65 tensors, 980.38 KiB compared\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(a);
    free(b);
    free(dir);
}

Test(cli, synth_rejects_a_size_too_small_for_any_model)
{
    char *dir = tu_mkdtemp(), *a = path_join(dir, "a");
    tu_cli_result r = tu_cli("synth '%s' --size 1K", a);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "trestle: synth: --size 1.00 KiB is too small"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("synth '%s'", a);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--size is required"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("synth '%s' --size 1M --dtype string", a);
    cr_assert_eq(r.rc, 2);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(a);
    free(dir);
}

/* --layers fixes the layer count, hence the tensor count (9 a layer plus
 * the embedding and the final norm), and the hidden size shrinks to fit:
 * the many-small-tensors model of the GPU runbook (scripts/gpu_session.sh). */
Test(cli, synth_layers_fixes_the_tensor_count)
{
    char *dir = tu_mkdtemp(), *a = path_join(dir, "a");
    tu_cli_result r = tu_cli("synth '%s' --size 16M --layers 2222", a);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "wrote 20000 tensors, "), "%s", r.out);
    cr_assert(strstr(r.out, "(bfloat16; hidden 16, 2222 layers, vocab 501)"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --all", a);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(tu_starts_with(r.out, "restored 20000 tensors, "), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("synth '%s' --size 1M --layers 2222", a);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "trestle: synth: --size 1.00 MiB is too small: the smallest bfloat16 "
                            "model of that many layers takes "), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("synth '%s' --size 1M --layers 0", a);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--layers wants a number from 1 to 100000, not '0'"), "%s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(a);
    free(dir);
}

/* ---- restore with an ops file ---- */

Test(cli, restore_ops_file_with_rename_lists_each_op)
{
    const char *ckpt = tu_fixture("tf-checkpoints/rust_regression_model");
    char *dir = tu_mkdtemp(), *ops = path_join(dir, "ops.txt");
    const char *text = "# graph names\n"
                       "weights\n"
                       "\n"
                       "b\t\tdtype=float\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);

    tu_cli_result r = tu_cli("restore --list --ops '%s' --rename weights=w '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "OP       KEY  DTYPE  SHAPE  SIZE\n"
                                 "weights  w    float  [1]     4 B\n"
                                 "b             float  [1]     4 B\n"
                                 "restored 2 tensors, 8 B in "),
              "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ops);
    free(dir);
}

Test(cli, restore_ops_file_with_missing_key_fails_with_library_report)
{
    const char *ckpt = tu_fixture("tf-checkpoints/rust_regression_model");
    char *dir = tu_mkdtemp(), *ops = path_join(dir, "ops.txt");
    const char *text = "weights\nbias_missing\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);

    tu_cli_result r = tu_cli("restore --ops '%s' --rename weights=w '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_empty(r.out);
    cr_assert(tu_starts_with(r.err, "trestle: Key bias_missing not found in checkpoint"), "%s",
              r.err);
    tu_cli_free(&r);

    /* --allow-missing skips it, as TensorFlow's expect_partial does. */
    r = tu_cli("restore --list --allow-missing --ops '%s' --rename weights=w '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "bias_missing  (missing)"), "%s", r.out);
    cr_assert(strstr(r.out, "restored 1 tensor (1 skipped: 1 missing), 4 B in "), "%s", r.out);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ops);
    free(dir);
}

Test(cli, restore_rejects_malformed_ops_file_with_line_number)
{
    const char *ckpt = tu_fixture("tf-checkpoints/rust_regression_model");
    char *dir = tu_mkdtemp(), *ops = path_join(dir, "ops.txt");
    const char *text = "w\nb\t\tdtype=flaot\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    tu_cli_result r = tu_cli("restore --ops '%s' '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 1);
    char want[4096];
    snprintf(want, sizeof want, "trestle: %s:2: unknown dtype", ops);
    cr_assert(tu_starts_with(r.err, want), "%s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ops);
    free(dir);
}

/* ---- diff ---- */

Test(cli, diff_reports_keys_dtypes_shapes_and_values)
{
    char *dir = tu_mkdtemp(), *a = path_join(dir, "a"), *b = path_join(dir, "b");
    float fa[2] = { 1, 2 }, fb[2] = { 1, 3 };
    int64_t d1 = 1, d2 = 2;
    trestle_writer *w = writer_open(a);
    writer_add(w, "gone", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_add(w, "retyped", TRESTLE_DT_FLOAT, 1, &d1, fa, 4);
    writer_add(w, "reshaped", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_add(w, "same", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_add(w, "changed", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_done(w);
    w = writer_open(b);
    writer_add(w, "new", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_add(w, "retyped", TRESTLE_DT_INT32, 1, &d1, fa, 4);
    writer_add(w, "reshaped", TRESTLE_DT_FLOAT, 1, &d1, fa, 4);
    writer_add(w, "same", TRESTLE_DT_FLOAT, 1, &d2, fa, 8);
    writer_add(w, "changed", TRESTLE_DT_FLOAT, 1, &d2, fb, 8);
    writer_done(w);

    tu_cli_result r = tu_cli("diff --values '%s' '%s'", a, b);
    cr_assert_eq(r.rc, 1, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "values differ: changed\n"
                            "only in A: gone  float [2]\n"
                            "only in B: new  float [2]\n"
                            "shape differs: reshaped  [2] -> [1]\n"
                            "dtype differs: retyped  float -> int32\n"
                            "different: 1 only in A, 1 only in B, 1 dtype, 1 shape, 1 values\n");
    tu_cli_free(&r);

    r = tu_cli("diff '%s' '%s'", a, a);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "identical keys, dtypes and shapes: 5 tensors (values not compared; "
                            "use --values)\n");
    tu_cli_free(&r);

    r = tu_cli("diff -q '%s' '%s'", a, b);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_empty(r.out);
    tu_cli_free(&r);

    r = tu_cli("diff '%s' '%s/nothing-here'", a, dir);
    cr_assert_eq(r.rc, 2, "trouble is 2, as in diff(1)");
    cr_assert(tu_starts_with(r.err, "trestle: "), "%s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(a);
    free(b);
    free(dir);
}

Test(cli, diff_ops_reports_names_missing_from_checkpoint)
{
    const char *ckpt = tu_fixture("tf-checkpoints/rust_regression_model");
    char *dir = tu_mkdtemp(), *ops = path_join(dir, "ops.txt");
    const char *text = "w\nb\nlstm/missing\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);

    tu_cli_result r = tu_cli("diff --ops '%s' '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 1, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "missing from A: lstm/missing\n"
                            "different: 1 of 3 ops missing from A\n");
    tu_cli_free(&r);

    r = tu_cli("diff --ops '%s' --rename lstm/missing=w '%s'", ops, ckpt);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "identical: all 3 ops found in A\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ops);
    free(dir);
}

/* ---- help, version, usage errors ---- */

Test(cli, every_command_has_help_with_synopsis_options_and_examples)
{
    const char *cmds[] = { "inspect", "verify", "restore", "diff", "synth", "bench" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char usage[64];
        snprintf(usage, sizeof usage, "Usage: trestle %s", cmds[i]);
        tu_cli_result r = tu_cli("%s --help", cmds[i]);
        cr_assert_eq(r.rc, 0, "%s --help", cmds[i]);
        cr_assert(tu_starts_with(r.out, usage), "%s", r.out);
        cr_assert(strstr(r.out, "\nOptions:\n") || strstr(r.out, "\nWhat to restore:\n"), "%s",
                  r.out);
        cr_assert(strstr(r.out, "\nExamples:\n"), "%s", r.out);
        tu_cli_free(&r);

        r = tu_cli("help %s", cmds[i]);
        cr_assert_eq(r.rc, 0);
        cr_assert(tu_starts_with(r.out, usage), "%s", r.out);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("restore --help");
    cr_assert(strstr(r.out, "NAME<TAB>SHAPE_AND_SLICES<TAB>dtype=DTYPE"), "ops format documented");
    tu_cli_free(&r);
}

/* One rate convention in every command, stated where users look. */
Test(cli, every_command_that_prints_rates_states_the_units)
{
    const char *cmds[] = { "restore", "convert", "bench" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tu_cli_result r = tu_cli("%s --help", cmds[i]);
        cr_assert_eq(r.rc, 0);
        cr_assert(strstr(r.out, "GB/s (1e9 bytes per second)"), "%s --help:\n%s", cmds[i], r.out);
        cr_assert(strstr(r.out, "GiB/s") == NULL, "%s --help:\n%s", cmds[i], r.out);
        tu_cli_free(&r);
    }
}

/* ---- restore --json and --checksum ---- */

/* FNV-1a 64 of n bytes, carried on from h: the reference for --checksum. */
static uint64_t fnv1a(uint64_t h, const uint8_t *p, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        h = (h ^ p[k]) * 1099511628211ull;
    return h;
}

/* --checksum prints every restored tensor's FNV-1a of its bytes and the
 * whole model's (every tensor's bytes in op order, as trestle-mpi's
 * "whole"), computed here from a restore by the library. */
Test(cli, restore_checksum_hashes_each_tensor_and_the_model)
{
    char *dir = tu_mkdtemp(), *prefix = tu_write_mixed(dir, 6, 2);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_error err;
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    char want[16384];
    size_t len = 0, n = 0;
    uint64_t model = 1469598103934665603ull;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(p, i, &o);
        if (o.skipped)
            continue;
        uint64_t one = fnv1a(1469598103934665603ull, o.data, o.bytes);
        model = fnv1a(model, o.data, o.bytes);
        len += (size_t)snprintf(want + len, sizeof want - len, "fnv1a64 %016" PRIx64 "  %s\n", one,
                                o.name);
        n++;
    }
    snprintf(want + len, sizeof want - len,
             "fnv1a64 %016" PRIx64 "  (whole model: %zu tensors in op order)\n", model, n);
    tu_cli_result r = tu_cli("restore -q --checksum '%s'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);

    /* The same values in --json. */
    char key[96];
    r = tu_cli("restore --json --checksum '%s'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    snprintf(key, sizeof key, "\n  ], \"model\": \"%016" PRIx64 "\"}", model);
    cr_assert(strstr(r.out, key), "%s in:\n%s", key, r.out);
    cr_assert(strstr(r.out, "\"checksums\": {\"algorithm\": \"fnv1a64\", \"tensors\": ["),
              "%s", r.out);
    tu_cli_free(&r);
    trestle_plan_free(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/*
 * restore --json prints, under "stats", the object `bench --json` prints:
 * the same members at every depth (checked by Python's json module), with
 * one repeat; and the machine and build beside it.
 */
Test(cli, restore_json_has_the_stats_object_of_bench)
{
    char *dir = tu_mkdtemp(), *prefix = path_join(dir, "m"), *jr = path_join(dir, "r.json");
    char *jb = path_join(dir, "b.json"), *py = path_join(dir, "same.py");
    tu_cli_result r = tu_cli("synth '%s' --size 4M --shards 2", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore --json '%s' > '%s'", prefix, jr);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("bench '%s' --repeat 2 --json > '%s'", prefix, jb);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    static const char check[] =
        "import json, sys\n"
        "r, b = (json.load(open(f)) for f in sys.argv[1:3])\n"
        "def shape(v):\n"
        "    if isinstance(v, dict):\n"
        "        return {k: shape(x) for k, x in v.items()}\n"
        "    return 'list' if isinstance(v, list) else 'value'\n"
        "assert shape(r['stats']) == shape(b['stats']), (shape(r['stats']), shape(b['stats']))\n"
        "assert r['stats']['repeats'] == 1 and b['stats']['repeats'] == 2\n"
        "assert r['command'] == 'restore' and r['ops'] == r['stats']['tensors'] > 0\n"
        "assert r['skipped'] == {'excluded': 0, 'missing': 0, 'unsupported': 0}\n"
        "for k in ('trestle', 'machine'):\n"
        "    assert shape(r[k]) == shape(b[k]), k\n"
        "t = r['stats']['stages']['total']\n"
        "assert t['ran'] and t['bytes'] == r['stats']['bytes'] and len(t['seconds']['each']) == 1\n";
    cr_assert_eq(tu_write_file(py, check, strlen(check)), 0);
    char cmd[16384], *out, *err;
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s'", py, jr, jb);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s%s", out, err);
    free(out);
    free(err);
    /* --json is one object: no table beside it. */
    r = tu_cli("restore --json --list '%s'", prefix);
    cr_assert_eq(r.rc, 2, "%s", r.err);
    cr_assert_str_eq(r.err, "trestle: restore: --list prints a table and --json one JSON object; "
                            "--json --checksum lists every tensor\n"
                            "Try 'trestle restore --help' for more information.\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    free(jr);
    free(jb);
    free(py);
}

Test(cli, top_level_help_lists_commands)
{
    const char *forms[] = { "help", "--help", "-h" };
    for (size_t i = 0; i < 3; i++) {
        tu_cli_result r = tu_cli("%s", forms[i]);
        cr_assert_eq(r.rc, 0);
        cr_assert(tu_starts_with(r.out, "Usage: trestle COMMAND"), "%s", r.out);
        const char *cmds[] = { "  inspect ", "  verify ", "  restore ", "  diff ", "  synth ",
                               "  bench ", "  help ", "  version " };
        for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
            cr_assert(strstr(r.out, cmds[k]), "%s missing from %s", cmds[k], r.out);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("%s", "");
    cr_assert_eq(r.rc, 2, "no command is a usage error");
    cr_assert(strstr(r.err, "Usage: trestle COMMAND"));
    tu_cli_free(&r);
}

Test(cli, version_prints_library_version)
{
    char want[64];
    snprintf(want, sizeof want, "trestle %s\n", trestle_version_string());
    tu_cli_result r = tu_cli("version");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);
    r = tu_cli("--version");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);
}

Test(cli, usage_errors_exit_2)
{
    tu_cli_result r = tu_cli("frobnicate");
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "trestle: unknown command 'frobnicate'; run 'trestle help' for the "
                            "list\n");
    tu_cli_free(&r);

    r = tu_cli("inspect --frob x");
    cr_assert_eq(r.rc, 2);
    cr_assert(tu_starts_with(r.err, "trestle: inspect: unknown option '--frob'"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("inspect");
    cr_assert_eq(r.rc, 2);
    cr_assert(tu_starts_with(r.err, "trestle: inspect: missing PATH\n"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --reader fast x");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--reader is auto, io_uring, pread or remote, not 'fast'"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --all --ops f x");
    cr_assert_eq(r.rc, 2);
    tu_cli_free(&r);

    r = tu_cli("restore --all --map --device 0 x");
    cr_assert_eq(r.rc, 2);
    cr_assert(tu_starts_with(r.err, "trestle: restore: --map leaves tensors in host memory; it "
                                 "cannot go with --device\n"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --threads");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "option '--threads' needs a value"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("diff only-one");
    cr_assert_eq(r.rc, 2);
    tu_cli_free(&r);

    r = tu_cli("bench");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "trestle: bench: missing PATH"), "%s", r.err);
    tu_cli_free(&r);
}

Test(cli, missing_checkpoint_fails_with_library_message)
{
    char *dir = tu_mkdtemp();
    tu_cli_result r = tu_cli("inspect '%s/none'", dir);
    cr_assert_eq(r.rc, 1);
    cr_assert(tu_starts_with(r.err, "trestle: "), "%s", r.err);
    cr_assert(strstr(r.err, "/none"), "names the path: %s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(dir);
}
