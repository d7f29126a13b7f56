/*
 * test_restore_errors.c - what goes wrong, end to end: renames and
 * exclusions, the all-missing-keys report, CRC corruption in the middle of
 * a tensor spanning several chunks, truncated and missing shards, and
 * cancellation. Every failure must name the tensor and file and must never
 * be reported as success. Both readers.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

#define BIG_ROWS 512
#define BIG_COLS 1024 /* 2 MiB of float: 32 chunks of 64 KiB */

typedef struct fixture {
    char *dir, *prefix;
} fixture;

/* lstm_cell/{kernel,bias}, dense/kernel (big, shard 1), Adam slots. */
static fixture make_model(void)
{
    fixture f;
    f.dir = tu_mkdtemp();
    cr_assert(asprintf(&f.prefix, "%s/model", f.dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(f.prefix, &wo, &w, &err), TRESTLE_OK);
    const struct { const char *name; int64_t d0, d1; int shard; } ts[] = {
        { "rnn/lstm_cell/kernel", 8, 16, 0 }, { "rnn/lstm_cell/bias", 1, 16, 0 },
        { "dense/kernel", BIG_ROWS, BIG_COLS, 1 }, { "dense/bias", 1, BIG_COLS, 1 },
        { "dense/kernel/Adam", 4, 4, 0 }, { "dense/kernel/Adam_1", 4, 4, 0 },
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int64_t dims[2] = { ts[i].d0, ts[i].d1 };
        size_t size = (size_t)(ts[i].d0 * ts[i].d1) * 4;
        void *data = malloc(size);
        tu_fill_random(data, size, i + 1);
        cr_assert_eq(trestle_writer_add(w, ts[i].name, TRESTLE_DT_FLOAT, 2, dims, data, size,
                                        ts[i].shard, &err), TRESTLE_OK);
        free(data);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    return f;
}

static void drop(fixture *f)
{
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

static void opts(trestle_restore_options *o, int reader)
{
    trestle_restore_options_init(o);
    o->reader = reader;
    o->chunk_bytes = 64 << 10;
    o->staging_bytes = 256 << 10;
}

static int restore_all(trestle_checkpoint *c, int reader, trestle_error *err)
{
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options o;
    opts(&o, reader);
    int rc = trestle_restore(p, &o, NULL, err);
    trestle_plan_free(p);
    if (rc == TRESTLE_E_NO_IO_URING)
        cr_skip_test("io_uring unavailable: %s", err->message);
    return rc;
}

ParameterizedTestParameters(errors, names_the_tensor_on_a_crc_mismatch_mid_tensor)
{
    static int r[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };
    return cr_make_param_array(int, r, 2);
}

ParameterizedTest(int *reader, errors, names_the_tensor_on_a_crc_mismatch_mid_tensor)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    size_t i;
    trestle_tensor_info t;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(c, "dense/kernel", &i, &err), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    /* Flip one byte in the middle of the 2 MiB tensor (chunk 16 of 32). */
    int fd = open(trestle_shard_path(c, 1), O_RDWR);
    uint8_t b;
    off_t at = (off_t)(t.offset + t.size / 2 + 3);
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
    cr_assert_eq(restore_all(c, *reader, &err), TRESTLE_E_CRC_MISMATCH);
    cr_assert_str_eq(err.key, "dense/kernel");
    cr_assert(strstr(err.path, "model.data-00001-of-00002") != NULL, "%s", err.path);
    cr_assert_eq(err.offset, (int64_t)t.offset);
    cr_assert(strstr(err.message, "dense/kernel") != NULL, "%s", err.message);
    trestle_close(c);
    drop(&f);
}

ParameterizedTestParameters(errors, reports_a_truncated_shard_with_file_and_offset)
{
    static int r[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };
    return cr_make_param_array(int, r, 2);
}

ParameterizedTest(int *reader, errors, reports_a_truncated_shard_with_file_and_offset)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL); /* opened whole, truncated after */
    size_t i;
    trestle_tensor_info t;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(c, "dense/kernel", &i, &err), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &t);
    cr_assert_eq(truncate(trestle_shard_path(c, 1), (off_t)(t.offset + 1000)), 0);
    int rc = restore_all(c, *reader, &err);
    cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
    cr_assert(strstr(err.path, "model.data-00001-of-00002") != NULL, "%s", err.path);
    cr_assert_geq(err.offset, (int64_t)t.offset);
    trestle_close(c);
    drop(&f);
}

Test(errors, opens_a_truncated_shard_and_fails_its_restore)
{
    fixture f = make_model();
    char path[4096];
    snprintf(path, sizeof path, "%s.data-00001-of-00002", f.prefix);
    cr_assert_eq(truncate(path, 100), 0);
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    trestle_error err;
    int rc = restore_all(c, TRESTLE_READER_PREAD, &err);
    cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
    cr_assert(strstr(err.path, "model.data-00001-of-00002") != NULL, "%s", err.path);
    trestle_close(c);
    drop(&f);
}

Test(errors, reports_a_missing_shard_naming_file_and_tensor)
{
    fixture f = make_model();
    char path[4096];
    snprintf(path, sizeof path, "%s.data-00001-of-00002", f.prefix);
    cr_assert_eq(unlink(path), 0);
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    trestle_error err;
    cr_assert_eq(restore_all(c, TRESTLE_READER_PREAD, &err), TRESTLE_E_NOT_FOUND);
    cr_assert(strstr(err.message, "model.data-00001-of-00002") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "dense/") != NULL, "%s", err.message);
    trestle_close(c);
    drop(&f);
}

Test(errors, lists_every_missing_key_with_suggestions)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    trestle_op ops[] = {
        { .name = "rnn/lstm_cell/biases" }, { .name = "dense/kernel" },
        { .name = "dense/bais" }, { .name = "totally/unrelated/name" },
    };
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    cr_assert_eq(trestle_plan_create(c, ops, 4, NULL, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_null(p);
    cr_assert_str_eq(err.message,
                     "Key dense/bais not found in checkpoint (did you mean dense/bias?)\n"
                     "Key rnn/lstm_cell/biases not found in checkpoint (did you mean "
                     "rnn/lstm_cell/bias?)\n"
                     "Key totally/unrelated/name not found in checkpoint");
    trestle_close(c);
    drop(&f);
}

Test(errors, renames_exclusions_and_allow_missing_restore_the_rest)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    float kernel[8 * 16], bias[16];
    trestle_op ops[] = {
        { .name = "old/lstm_cell/weights", .dest_kind = TRESTLE_DEST_HOST, .ptr = kernel,
          .capacity = sizeof kernel },
        { .name = "old/lstm_cell/biases", .dest_kind = TRESTLE_DEST_HOST, .ptr = bias,
          .capacity = sizeof bias },
        { .name = "dense/kernel/Adam" }, { .name = "not/in/checkpoint" },
    };
    const char *renames[] = { "old/=rnn/" };
    const char *excludes[] = { "*/Adam", "*/Adam_1" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    po.tf1_rnn_renames = 1;
    po.excludes = excludes;
    po.num_excludes = 2;
    po.allow_missing = 1;
    trestle_plan *p;
    trestle_error err;
    p = tu_plan(c, ops, 4, &po);
    trestle_plan_stats ps;
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.skipped, 2);
    trestle_restore_options o;
    opts(&o, TRESTLE_READER_PREAD);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    float want[8 * 16];
    tu_fill_random(want, sizeof kernel, 1);
    cr_assert_arr_eq(kernel, want, sizeof kernel);
    tu_fill_random(want, sizeof bias, 2);
    cr_assert_arr_eq(bias, want, sizeof bias);
    trestle_plan_op_info op;
    trestle_plan_get_op(p, 0, &op);
    cr_assert_str_eq(op.key, "rnn/lstm_cell/kernel");
    trestle_plan_get_op(p, 2, &op);
    cr_assert_eq(op.skipped, 1);
    trestle_plan_get_op(p, 3, &op);
    cr_assert_eq(op.skipped, 2);
    trestle_plan_free(p);
    trestle_close(c);
    drop(&f);
}

static int cancel_after_first(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)i;
    (void)op;
    atomic_fetch_add((atomic_int *)user, 1);
    return 1; /* stop */
}

static int count_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)op;
    atomic_fetch_add(&((atomic_int *)user)[i], 1);
    return 0;
}

Test(errors, a_ready_callback_can_cancel_and_is_called_once_per_op)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    trestle_plan *p;
    trestle_error err;
    p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options o;
    opts(&o, TRESTLE_READER_PREAD);
    atomic_int calls = 0;
    o.on_ready = cancel_after_first;
    o.user = &calls;
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_CANCELLED);
    cr_assert_geq(atomic_load(&calls), 1);

    /* The same plan restores again afterwards, each op reported once. */
    atomic_int seen[6] = { 0 };
    o.on_ready = count_ready;
    o.user = seen;
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(atomic_load(&seen[i]), 1, "op %d", i);
    cr_assert_geq(st.first_ready_seconds, 0.0);
    trestle_plan_free(p);
    trestle_close(c);
    drop(&f);
}

Test(errors, verify_off_restores_corrupt_bytes_without_complaint)
{
    fixture f = make_model();
    trestle_checkpoint *c = tu_open(f.prefix, NULL);
    int fd = open(trestle_shard_path(c, 0), O_RDWR);
    uint8_t b = 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, 10), 1);
    close(fd);
    trestle_plan *p;
    trestle_error err;
    p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options o;
    opts(&o, TRESTLE_READER_PREAD);
    o.verify = 0;
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_verified, 0);
    o.verify = 1;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_E_CRC_MISMATCH);
    trestle_plan_free(p);
    trestle_close(c);
    drop(&f);
}
