/*
 * test_regress_issue13.c - issue 13: wrong answers on real and hostile
 * inputs. Each test reproduces one item with trestle's own writer (a
 * variant tensor, a gapped partition), mkfifo, a sparse index or a damaged
 * shard, and pins the answer the fix gives. Before the fix each of them
 * failed: a variant made `verify` report an engine failure, an empty ops
 * file restored everything, a FIFO hung open(), and so on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

/* ---- helpers ---- */

typedef struct ck {
    char *dir;
    char *prefix;
} ck;

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static void ck_drop(ck *k)
{
    tu_rmtree(k->dir);
    free(k->dir);
    free(k->prefix);
}

static trestle_writer *wopen(const char *prefix, int shards)
{
    trestle_writer_options o;
    trestle_writer *w = NULL;
    trestle_error err;
    trestle_writer_options_init(&o);
    o.num_shards = shards;
    cr_assert_eq(trestle_writer_create(prefix, &o, &w, &err), TRESTLE_OK, "%s", err.message);
    return w;
}

static void wfloats(trestle_writer *w, const char *name, int64_t n, float v, int shard)
{
    float *data = malloc((size_t)n * sizeof *data);
    trestle_error err;
    for (int64_t i = 0; i < n; i++)
        data[i] = v + (float)i;
    cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, &n, data,
                                    (uint64_t)n * sizeof *data, shard, &err),
                 TRESTLE_OK, "%s", err.message);
    free(data);
}

static void wdone(trestle_writer *w)
{
    trestle_error err;
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
}

#define ITERATOR "iterator/.ATTRIBUTES/ITERATOR_STATE"

/* The layout of TF's "Training checkpoints" guide in small: a step, a
 * kernel, and the tf.data iterator state as a variant tensor of shape [1]. */
static ck make_with_variant(void)
{
    ck k = { tu_mkdtemp(), NULL };
    k.prefix = join(k.dir, "ckpt-1");
    trestle_writer *w = wopen(k.prefix, 1);
    static const uint8_t state[] = "\x0a\x08IteratorX\x12\x04" "abcd"; /* opaque to trestle */
    trestle_bytes elem = { state, sizeof state - 1 };
    int64_t one = 1;
    trestle_error err;
    wfloats(w, "net/kernel/.ATTRIBUTES/VARIABLE_VALUE", 6, 1.0f, 0);
    cr_assert_eq(trestle_writer_add_variants(w, ITERATOR, 1, &one, &elem, 0, &err), TRESTLE_OK,
                 "%s", err.message);
    wfloats(w, "step/.ATTRIBUTES/VARIABLE_VALUE", 1, 7.0f, 0);
    wdone(w);
    return k;
}

/* Shard 0: a, b, c, 16 floats each (64 bytes apiece, in that order). */
static ck make_three(int shards)
{
    ck k = { tu_mkdtemp(), NULL };
    k.prefix = join(k.dir, "model");
    trestle_writer *w = wopen(k.prefix, shards);
    wfloats(w, "a", 16, 1.0f, 0);
    wfloats(w, "b", 16, 2.0f, shards - 1);
    wfloats(w, "c", 16, 3.0f, shards - 1);
    wdone(w);
    return k;
}

static char *shard_path(const ck *k, int i, int n)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s.data-%05d-of-%05d", k->prefix, i, n), 0);
    return p;
}

static void flip(const char *path, size_t offset)
{
    tu_flip_byte(path, offset, 0x40);
}

static uint64_t tensor_offset(const char *prefix, const char *name, uint64_t *size)
{
    trestle_checkpoint *c;
    trestle_error err;
    size_t i;
    trestle_tensor_info t;
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_tensor_find(c, name, &i, &err), TRESTLE_OK, "%s", err.message);
    trestle_tensor_get_info(c, i, &t);
    trestle_close(c);
    if (size)
        *size = t.size;
    return t.offset;
}

/* ---- 1. variant tensors ---- */

Test(regress, issue_13_verify_checks_variant_tensors_and_passes_intact_ones)
{
    ck k = make_with_variant();
    tu_cli_result r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(tu_starts_with(r.out, "OK: 3 tensors"), "%s", r.out);
    cr_assert_null(strstr(r.err, "pipeline failed"), "%s", r.err);
    tu_cli_free(&r);

    /* A flipped byte inside the variant's serialized proto is found, named. */
    uint64_t size, off = tensor_offset(k.prefix, ITERATOR, &size);
    char *data = shard_path(&k, 0, 1);
    flip(data, (size_t)(off + 3));
    r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "FAILED: 1 of 3 tensors: " ITERATOR "\n");
    cr_assert(strstr(r.err, "variant element 0"), "%s", r.err);
    cr_assert_null(strstr(r.err, "pipeline failed"), "%s", r.err);
    tu_cli_free(&r);
    free(data);
    ck_drop(&k);
}

Test(regress, issue_13_restore_all_refuses_a_variant_unless_told_to_skip_it)
{
    ck k = make_with_variant();
    tu_cli_result r = tu_cli("restore --all '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "1 tensor of dtype variant (opaque to trestle"), "%s", r.err);
    cr_assert(strstr(r.err, ITERATOR), "%s", r.err);
    cr_assert(strstr(r.err, "--skip-unsupported"), "%s", r.err);
    cr_assert_null(strstr(r.out, "restored"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --all --skip-unsupported --list '%s'", k.prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, ITERATOR "    (variant: opaque to trestle)"), "%s", r.out);
    cr_assert(strstr(r.out, "restored 2 tensors (1 skipped: 1 variant: opaque to trestle), "),
              "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --exclude 'iterator/*' --list '%s'", k.prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "restored 2 tensors (1 skipped: 1 excluded), "), "%s", r.out);
    tu_cli_free(&r);

    /* --as builds its own op list: the same rule holds. */
    r = tu_cli("restore --as bfloat16 '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "opaque to trestle"), "%s", r.err);
    tu_cli_free(&r);
    ck_drop(&k);
}

Test(regress, issue_13_every_tensor_plan_names_the_variant_or_skips_it_when_asked)
{
    ck k = make_with_variant();
    trestle_checkpoint *c;
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    c = tu_open(k.prefix, NULL);
    cr_assert_eq(trestle_plan_create(c, NULL, 0, NULL, &p, &err), TRESTLE_E_UNSUPPORTED);
    cr_assert_null(p);
    cr_assert_str_eq(err.key, ITERATOR);

    trestle_plan_options o;
    trestle_plan_options_init(&o);
    o.skip_unsupported = 1;
    p = tu_plan(c, NULL, 0, &o);
    size_t skipped = 0;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(p, i, &op);
        if (op.skipped) {
            cr_assert_eq(op.skipped, TRESTLE_SKIP_UNSUPPORTED);
            cr_assert_str_eq(op.name, ITERATOR);
            skipped++;
        }
    }
    cr_assert_eq(skipped, 1);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_free(p);

    /* The synchronous reader checks each element's checksum. */
    size_t at;
    trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_find(c, ITERATOR, &at, &err), TRESTLE_OK);
    trestle_tensor_get_info(c, at, &t);
    uint8_t buf[64];
    cr_assert_leq(t.size, sizeof buf);
    cr_assert_eq(trestle_tensor_read(c, at, buf, sizeof buf, 1, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_close(c);
    ck_drop(&k);
}

/* ---- 2, 3. ops files ---- */

Test(regress, issue_13_an_ops_file_without_ops_is_an_error_not_all)
{
    ck k = make_three(1);
    char *empty = join(k.dir, "empty.ops"), *comments = join(k.dir, "comments.ops");
    cr_assert_eq(tu_write_file(empty, "", 0), 0);
    const char *text = "# nothing\n\n   \n# here\n";
    cr_assert_eq(tu_write_file(comments, text, strlen(text)), 0);
    const char *files[] = { empty, comments, "/dev/null" };
    for (size_t i = 0; i < 3; i++) {
        tu_cli_result r = tu_cli("restore --ops '%s' '%s'", files[i], k.prefix);
        cr_assert_eq(r.rc, 1, "%s: %s", files[i], r.out);
        cr_assert(strstr(r.err, "lists no ops"), "%s: %s", files[i], r.err);
        cr_assert(strstr(r.err, "--all"), "%s", r.err);
        cr_assert_null(strstr(r.out, "restored"), "%s", r.out);
        tu_cli_free(&r);
    }
    free(empty);
    free(comments);
    ck_drop(&k);
}

Test(regress, issue_13_ops_files_are_bounded_and_read_errors_name_errno, .timeout = 30)
{
    ck k = make_three(1);
    tu_cli_result r = tu_cli("restore --ops /dev/zero '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "/dev/zero:1: line longer than 65536 bytes"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --ops '%s' '%s'", k.dir, k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "read error: Is a directory"), "%s", r.err);
    tu_cli_free(&r);

    char *out = NULL, *err = NULL, cmd[8192];
    snprintf(cmd, sizeof cmd, "printf 'b\\n' | '%s' restore --ops - '%s'", TRESTLE_CLI_PATH,
             k.prefix);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    cr_assert(tu_starts_with(out, "restored 1 tensor, 64 B in"), "%s", out);
    free(out);
    free(err);
    ck_drop(&k);
}

/* ---- 4. stale errno ---- */

Test(regress, issue_13_an_index_over_4_gib_names_the_limit_not_a_stale_errno)
{
    char *dir = tu_mkdtemp(), *prefix = join(dir, "huge"), *index = join(dir, "huge.index");
    int fd = open(index, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)20 << 30), 0, "sparse 20 GiB file"); /* no blocks */
    close(fd);
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    cr_assert_eq(trestle_open(prefix, NULL, &c, &err), TRESTLE_E_LIMIT, "%s", err.message);
    cr_assert_null(c);
    cr_assert_eq(err.sys_errno, 0);
    cr_assert(strstr(err.message, "21474836480 bytes; trestle reads indexes up to 4 GiB"), "%s",
              err.message);
    cr_assert_null(strstr(err.message, "No such file"), "%s", err.message);
    tu_rmtree(dir);
    free(index);
    free(prefix);
    free(dir);
}

/* ---- 5. gaps between stored slices ---- */

Test(regress, issue_13_a_gap_between_stored_slices_is_refused_at_open)
{
    char *dir = tu_mkdtemp(), *prefix = join(dir, "part");
    trestle_writer *w = wopen(prefix, 1);
    float *rows = calloc(800 * 4, sizeof *rows);
    trestle_error err;
    cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "1600 4 0,800:-", rows,
                                          800 * 4 * 4, 0, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "1600 4 801,799:-", rows,
                                          799 * 4 * 4, 0, &err), TRESTLE_OK, "%s", err.message);
    wdone(w);
    free(rows);
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    cr_assert_eq(trestle_open(prefix, NULL, &c, &err), TRESTLE_E_CORRUPT, "%s", err.message);
    cr_assert_null(c);
    cr_assert_str_eq(err.key, "emb");
    cr_assert(strstr(err.message, "partitioned tensor 'emb': its stored slices cover 6396 of "
                                  "6400 elements; nothing stores 800,1:0,4"), "%s", err.message);

    tu_cli_result r = tu_cli("verify '%s'", prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "nothing stores 800,1:0,4"), "%s", r.err);
    cr_assert_null(strstr(r.err, "pipeline failed"), "%s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(prefix);
    free(dir);
}

/* ---- 6. FIFOs and other non-regular files ---- */

Test(regress, issue_13_a_fifo_index_is_refused_without_blocking, .timeout = 20)
{
    char *dir = tu_mkdtemp(), *prefix = join(dir, "fifo"), *index = join(dir, "fifo.index");
    cr_assert_eq(mkfifo(index, 0600), 0);
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    cr_assert_eq(trestle_open(prefix, NULL, &c, &err), TRESTLE_E_IO, "%s", err.message);
    cr_assert(strstr(err.message, "it is a FIFO; trestle reads only regular files"), "%s",
              err.message);
    tu_cli_result r = tu_cli("inspect '%s'", index);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "a FIFO"), "%s", r.err);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(index);
    free(prefix);
    free(dir);
}

Test(regress, issue_13_a_fifo_shard_lists_and_fails_reads_without_blocking, .timeout = 20)
{
    ck k = make_three(1);
    char *data = shard_path(&k, 0, 1);
    cr_assert_eq(unlink(data), 0);
    cr_assert_eq(mkfifo(data, 0600), 0);

    tu_cli_result r = tu_cli("inspect '%s'", k.prefix); /* the index is all it needs */
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "checkpoint "), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "which is a FIFO; trestle reads only regular files"), "%s", r.err);
    cr_assert(strstr(r.out, "FAILED: 3 of 3 tensors (0 corrupt, 3 unreadable): a, b, c"), "%s",
              r.out);
    tu_cli_free(&r);

    trestle_checkpoint *c;
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    c = tu_open(k.prefix, NULL);
    cr_assert_eq(trestle_plan_create(c, NULL, 0, NULL, &p, &err), TRESTLE_E_IO);
    cr_assert_null(p);
    cr_assert(strstr(err.message, "a FIFO"), "%s", err.message);
    trestle_close(c);
    free(data);
    ck_drop(&k);
}

Test(regress, issue_13_a_directory_where_a_shard_should_be_is_named_as_such)
{
    ck k = make_three(1);
    char *data = shard_path(&k, 0, 1);
    cr_assert_eq(unlink(data), 0);
    cr_assert_eq(mkdir(data, 0700), 0);
    tu_cli_result r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "which is a directory"), "%s", r.err);
    cr_assert_null(strstr(r.err, "past the end"), "%s", r.err);
    tu_cli_free(&r);
    free(data);
    ck_drop(&k);
}

/* ---- 7. every command that reads bytes checks them ---- */

Test(regress, issue_13_inspect_stats_checks_the_crc)
{
    ck k = make_three(1);
    char *data = shard_path(&k, 0, 1);
    flip(data, (size_t)tensor_offset(k.prefix, "b", NULL) + 5);
    tu_cli_result r = tu_cli("inspect --stats '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "CRC32C mismatch in tensor 'b'"), "%s", r.err);
    cr_assert(strstr(r.out, "verified 3 tensors: 1 BAD\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("inspect --stats --json '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.out, "\"error\": \"CRC32C mismatch in tensor 'b'"), "%s", r.out);
    cr_assert(strstr(r.out, "\"stats\": null"), "%s", r.out);
    tu_cli_free(&r);
    free(data);
    ck_drop(&k);
}

/* ---- truncated and missing shards ---- */

Test(regress, issue_13_a_truncated_shard_opens_lists_and_verify_names_every_tensor_past_it)
{
    ck k = make_three(1);
    char *data = shard_path(&k, 0, 1);
    cr_assert_eq(truncate(data, (off_t)tensor_offset(k.prefix, "b", NULL) + 10), 0);
    tu_cli_result r = tu_cli("inspect '%s'", k.prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "3 tensors"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "FAILED: 2 of 3 tensors: b, c\n");
    cr_assert(strstr(r.err, "tensor 'b': bytes") && strstr(r.err, "tensor 'c': bytes"), "%s",
              r.err);
    cr_assert(strstr(r.err, "lie past the end of data shard"), "%s", r.err);
    tu_cli_free(&r);
    free(data);
    ck_drop(&k);
}

Test(regress, issue_13_a_missing_shard_is_reported_once_and_counted_unreadable)
{
    ck k = make_three(2); /* a in shard 0; b, c in shard 1 */
    char *data = shard_path(&k, 1, 2);
    cr_assert_eq(unlink(data), 0);
    tu_cli_result r = tu_cli("verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "FAILED: 2 of 3 tensors (0 corrupt, 2 unreadable): b, c\n");
    cr_assert(strstr(r.err, "holds 2 unreadable tensors: b, c"), "%s", r.err);
    /* One line says why, one which tensors: not a line per tensor. */
    size_t lines = 0;
    for (const char *p = r.err; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, 2, "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("inspect --verify '%s'", k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.out, "UNREADABLE"), "%s", r.out);
    cr_assert(strstr(r.out, "verified 3 tensors: 2 unreadable\n"), "%s", r.out);
    tu_cli_free(&r);
    free(data);
    ck_drop(&k);
}

/* ---- paths ---- */

Test(regress, issue_13_an_unreadable_state_file_is_reported_as_such)
{
    ck k = make_three(1);
    char *state = join(k.dir, "checkpoint");
    cr_assert_eq(mkdir(state, 0700), 0); /* EISDIR */
    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    cr_assert_eq(trestle_open(k.dir, NULL, &c, &err), TRESTLE_E_IO, "%s", err.message);
    cr_assert(strstr(err.message, "cannot read the checkpoint state file"), "%s", err.message);
    /* Since issue 22 the one rule for files a user names says what it is. */
    cr_assert(strstr(err.message, "it is a directory; trestle reads only regular files"), "%s",
              err.message);
    cr_assert_eq(err.sys_errno, EISDIR);
    cr_assert_eq(rmdir(state), 0);
    if (geteuid() != 0) { /* root reads a mode-000 file anyway */
        cr_assert_eq(tu_write_file(state, "model_checkpoint_path: \"model\"\n", 31), 0);
        cr_assert_eq(chmod(state, 0), 0);
        cr_assert_eq(trestle_open(k.dir, NULL, &c, &err), TRESTLE_E_IO, "%s", err.message);
        cr_assert(strstr(err.message, "Permission denied"), "%s", err.message);
    }
    free(state);
    ck_drop(&k);
}

Test(regress, issue_13_a_meta_or_state_file_path_suggests_what_to_give)
{
    ck k = make_three(1);
    char *meta = join(k.dir, "model.meta"), *state = join(k.dir, "checkpoint");
    cr_assert_eq(tu_write_file(meta, "x", 1), 0);
    cr_assert_eq(tu_write_file(state, "model_checkpoint_path: \"model\"\n", 31), 0);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open(meta, NULL, &c, &err), TRESTLE_E_NOT_FOUND);
    cr_assert(strstr(err.message, "is a MetaGraph; its checkpoint prefix is"), "%s", err.message);
    cr_assert(strstr(err.message, k.prefix), "%s", err.message);
    cr_assert_eq(trestle_open(state, NULL, &c, &err), TRESTLE_E_NOT_FOUND);
    cr_assert(strstr(err.message, "is the checkpoint state file: give its directory"), "%s",
              err.message);
    free(meta);
    free(state);
    ck_drop(&k);
}

/* ---- options that silently did nothing ---- */

Test(regress, issue_13_options_that_would_do_nothing_are_errors)
{
    ck k = make_three(1);
    tu_cli_result r = tu_cli("restore --all --rename a=b '%s'", k.prefix);
    cr_assert_eq(r.rc, 2, "%s", r.out);
    cr_assert(strstr(r.err, "need --ops"), "%s", r.err);
    tu_cli_free(&r);

    char *ops = join(k.dir, "x.ops");
    cr_assert_eq(tu_write_file(ops, "x\n", 2), 0);
    r = tu_cli("restore --ops '%s' --rename x=a --rename x=b '%s'", ops, k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "both rename 'x'"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --exclude '[' '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "('[') has an unclosed '['"), "%s", r.err);
    tu_cli_free(&r);

    r = tu_cli("restore --as int4 '%s'", k.prefix);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "no tensor of this checkpoint converts to int4"), "%s", r.err);
    tu_cli_free(&r);
    free(ops);
    ck_drop(&k);
}

Test(regress, issue_13_a_long_missing_list_is_capped_with_a_count)
{
    ck k = make_three(1);
    char *ops = join(k.dir, "many.ops");
    FILE *f = fopen(ops, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 250; i++)
        fprintf(f, "missing/%03d\n", i);
    fclose(f);
    tu_cli_result r = tu_cli("diff --ops '%s' '%s'", ops, k.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.out, "missing from A: missing/099\n"), "%s", r.out);
    cr_assert_null(strstr(r.out, "missing/100"), "%s", r.out);
    cr_assert(strstr(r.out, "... and 150 more missing from A (--list-missing-all names them "
                            "all)\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("diff --list-missing-all --ops '%s' '%s'", ops, k.prefix);
    cr_assert(strstr(r.out, "missing from A: missing/249\n"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    ck_drop(&k);
}
