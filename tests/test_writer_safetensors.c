/*
 * test_writer_safetensors.c - trestle_convert_safetensors(): the file's
 * layout and bytes, conversions, and that a failure leaves nothing behind.
 * The Python suite (python/tests/test_convert.py) checks every real fixture
 * with an independent reader; this suite runs the C path under ASan.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "trestle.h"

/* A 2-shard checkpoint: a [3,4] float, a bfloat16 [5], an int64 scalar and
 * a string; returns its prefix inside a fresh temporary directory. */
static char *write_ckpt(char **dir)
{
    static float w[12];
    static uint16_t bf[5] = { 0x3F80, 0xC000, 0x7F80, 0x0001, 0x7FC0 };
    static int64_t step = 42;
    int64_t dw[2] = { 3, 4 }, dbf[1] = { 5 };
    trestle_bytes s = { (const uint8_t *)"hello", 5 };
    trestle_writer_options o;
    trestle_writer *wr;
    char *prefix;
    for (int i = 0; i < 12; i++)
        w[i] = (float)i * 0.5f - 1.0f;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/ckpt", *dir) > 0);
    trestle_writer_options_init(&o);
    o.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &o, &wr, NULL), 0);
    cr_assert_eq(trestle_writer_add(wr, "w", TRESTLE_DT_FLOAT, 2, dw, w, sizeof w, 0, NULL), 0);
    cr_assert_eq(trestle_writer_add(wr, "bf", TRESTLE_DT_BFLOAT16, 1, dbf, bf, sizeof bf, 1, NULL),
                 0);
    cr_assert_eq(trestle_writer_add(wr, "step", TRESTLE_DT_INT64, 0, NULL, &step, 8, 1, NULL), 0);
    cr_assert_eq(trestle_writer_add_strings(wr, "s", 0, NULL, &s, 0, NULL), 0);
    cr_assert_eq(trestle_writer_finish(wr, NULL), 0);
    trestle_writer_free(wr);
    return prefix;
}

/* Close the checkpoint, remove the directory, free the strings. */
static void cleanup(trestle_checkpoint *c, char *dir, char *out, char *prefix)
{
    trestle_close(c);
    tu_rmtree(dir);
    free(out);
    free(prefix);
    free(dir);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(writer_safetensors, writes_header_and_aligned_bytes_and_skips_strings)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_convert_stats st;
    trestle_error err;
    cr_assert(asprintf(&out, "%s/m.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, &st, &err), 0, "%s",
                 err.message);
    cr_assert_eq(st.tensors, 3);
    cr_assert_eq(st.skipped, 1);
    size_t len;
    uint8_t *f = tu_read_file(out, &len);
    cr_assert_eq(len, st.file_bytes);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f[i];
    cr_assert_eq(n % 8, 0);
    cr_assert_eq(8 + n, st.header_bytes);
    char *json = strndup((const char *)f + 8, (size_t)n);
    /* Largest elements first, then by name: step (8), w (4), bf (2). */
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[8,56]},"
                       "\"bf\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[56,66]}}";
    cr_assert(strncmp(json, want, strlen(want)) == 0, "header: %s", json);
    const uint8_t *data = f + 8 + n;
    cr_assert_eq(*(const int64_t *)data, 42);
    cr_assert_eq(((const float *)(data + 8))[11], 4.5f);
    cr_assert_eq(((const uint16_t *)(data + 56))[2], 0x7F80);
    cr_assert_eq(len, 8 + n + 66);
    free(json);
    free(f);
    cleanup(c, dir, out, prefix);
}

Test(writer_safetensors, converts_on_load_and_names_ops)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_error err;
    trestle_op ops[2] = { { .name = "kernel", .target_dtype = TRESTLE_DT_BFLOAT16 },
                          { .name = "bf", .target_dtype = TRESTLE_DT_FLOAT } };
    const char *ren[] = { "kernel=w" };
    trestle_plan_options po;
    trestle_convert_options co;
    trestle_plan_options_init(&po);
    po.renames = ren;
    po.num_renames = 1;
    trestle_convert_options_init(&co);
    co.plan = &po;
    co.sync = 0;
    cr_assert(asprintf(&out, "%s/c.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, ops, 2, &co, out, NULL, &err), 0, "%s",
                 err.message);
    size_t len;
    uint8_t *f = tu_read_file(out, &len);
    cr_assert(memmem(f, len, "\"bf\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]}",
                     52));
    cr_assert(memmem(f, len, "\"kernel\":{\"dtype\":\"BF16\",\"shape\":[3,4]", 38));
    free(f);
    cleanup(c, dir, out, prefix);
}

Test(writer_safetensors, failure_leaves_no_file_and_keeps_the_old_one)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert(asprintf(&out, "%s/out", dir) > 0);
    cr_assert_eq(mkdir(out, 0755), 0);
    free(out);
    cr_assert(asprintf(&out, "%s/out/m.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);

    trestle_op str = { .name = "s" };
    cr_assert_eq(trestle_convert_safetensors(c, &str, 1, NULL, out, NULL, &err),
                 TRESTLE_E_UNSUPPORTED);
    cr_assert_str_eq(err.key, "s");
    trestle_op twice[2] = { { .name = "w" }, { .name = "w", .shape_and_slices = "3 4 0,1:-" } };
    cr_assert_eq(trestle_convert_safetensors(c, twice, 2, NULL, out, NULL, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "two ops are named w"), "%s", err.message);
    trestle_close(c);

    /* A CRC mismatch midway through the restore into the file. */
    char *shard;
    cr_assert(asprintf(&shard, "%s.data-00000-of-00002", prefix) > 0);
    size_t len;
    uint8_t *bytes = tu_read_file(shard, &len);
    bytes[5] ^= 0x10;
    cr_assert_eq(tu_write_file(shard, bytes, len), 0);
    cr_assert_eq(tu_write_file(out, "old", 3), 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, NULL, &err),
                 TRESTLE_E_CRC_MISMATCH);
    cr_assert_str_eq(err.key, "w");
    uint8_t *kept = tu_read_file(out, &len);
    cr_assert(len == 3 && memcmp(kept, "old", 3) == 0);
    char *outdir;
    cr_assert(asprintf(&outdir, "%s/out", dir) > 0);
    cr_assert_eq(entries(outdir), 1, "a temporary file was left behind");
    free(kept);
    free(bytes);
    free(shard);
    free(outdir);
    cleanup(c, dir, out, prefix);
}

Test(writer_safetensors, rejects_null_arguments)
{
    trestle_error err;
    cr_assert_eq(trestle_convert_safetensors(NULL, NULL, 0, NULL, "x", NULL, &err),
                 TRESTLE_E_INVALID_ARG);
}
