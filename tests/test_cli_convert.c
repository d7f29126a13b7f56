/*
 * test_cli_convert.c - `trestle convert` as a user meets it: exact output
 * and exit codes for what it refuses (its own inputs and device nodes as
 * OUT, renames without ops, --as that converts nothing), what it leaves
 * out (named, with or without --as), and the names and layout options
 * (--key, --key-regex, --transpose, --list).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

#define ITERATOR "iterator/.ATTRIBUTES/ITERATOR_STATE"

/* DIR/ck over two shards: "model/dense/kernel" float [2,3] (0..5, shard
 * 0), "model/dense/bias" float [3] (shard 1), "vocab" string [2], and
 * with `variant` the tf.data iterator state ITERATOR. Returns the dir. */
static char *make(int variant, char **prefix)
{
    static const float k[6] = { 0, 1, 2, 3, 4, 5 }, b[3] = { 7, 8, 9 };
    int64_t dk[2] = { 2, 3 }, db = 3, two = 2;
    trestle_bytes words[2] = { { (const uint8_t *)"a", 1 }, { (const uint8_t *)"b", 1 } };
    trestle_writer_options o;
    trestle_writer *w;
    trestle_error err;
    char *dir = tu_mkdtemp();
    cr_assert(asprintf(prefix, "%s/ck", dir) > 0);
    trestle_writer_options_init(&o);
    o.num_shards = 2;
    cr_assert_eq(trestle_writer_create(*prefix, &o, &w, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "model/dense/kernel", TRESTLE_DT_FLOAT, 2, dk, k, sizeof k,
                                    0, &err), 0);
    cr_assert_eq(trestle_writer_add(w, "model/dense/bias", TRESTLE_DT_FLOAT, 1, &db, b, sizeof b,
                                    1, &err), 0);
    cr_assert_eq(trestle_writer_add_strings(w, "vocab", 1, &two, words, 0, &err), 0);
    if (variant) {
        static const uint8_t state[] = "\x0a\x08IteratorX";
        trestle_bytes elem = { state, sizeof state - 1 };
        int64_t one = 1;
        cr_assert_eq(trestle_writer_add_variants(w, ITERATOR, 1, &one, &elem, 0, &err), 0);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), 0, "%s", err.message);
    trestle_writer_free(w);
    return dir;
}

static void expect(const tu_cli_result *r, int rc, const char *out, const char *err)
{
    cr_assert_eq(r->rc, rc, "exit %d, stdout: %s, stderr: %s", r->rc, r->out, r->err);
    if (out)
        cr_assert_str_eq(r->out, out);
    if (err)
        cr_assert_str_eq(r->err, err);
}

/* stdout after the first line (the summary, whose time varies). */
static const char *after_summary(const tu_cli_result *r, const char *summary_start)
{
    cr_assert(tu_starts_with(r->out, summary_start), "%s", r->out);
    const char *nl = strchr(r->out, '\n');
    cr_assert(nl);
    return nl + 1;
}

/* Issue 22 item 5: --as dropped the variant that plain convert refuses,
 * and the skipped count with it. Now both refuse alike, and with
 * --skip-unsupported both skip, count and name the same tensors. */
Test(cli_convert, as_keeps_the_variant_refusal_and_names_the_skipped_tensors)
{
    char *prefix, *dir = make(1, &prefix);
    tu_cli_result plain = tu_cli("convert '%s' '%s/o.safetensors'", prefix, dir);
    tu_cli_result as = tu_cli("convert --as bfloat16 '%s' '%s/o.safetensors'", prefix, dir);
    expect(&plain, 1, "", NULL);
    cr_assert(strstr(plain.err, ITERATOR), "%s", plain.err);
    expect(&as, 1, "", plain.err);
    tu_cli_free(&plain);
    tu_cli_free(&as);
    const char *skipped = "skipped (variant: opaque to trestle): " ITERATOR "\n"
                          "skipped (string: safetensors has no strings): vocab\n";
    for (int with_as = 0; with_as < 2; with_as++) {
        tu_cli_result r = tu_cli("convert --skip-unsupported %s '%s' '%s/o.safetensors'",
                                 with_as ? "--as bfloat16" : "", prefix, dir);
        expect(&r, 0, NULL, "");
        char *start;
        cr_assert(asprintf(&start, "wrote %s/o.safetensors: 2 tensors (2 skipped), ", dir) > 0);
        cr_assert_str_eq(after_summary(&r, start), skipped);
        free(start);
        tu_cli_free(&r);
    }
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(cli_convert, names_at_most_ten_skipped_tensors_per_reason)
{
    char *dir = tu_mkdtemp(), *prefix;
    trestle_writer *w;
    int64_t one = 1;
    float v = 1;
    cr_assert(asprintf(&prefix, "%s/ck", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, NULL), 0);
    for (int i = 0; i < 13; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%02d", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, &one, &v, 4, 0, NULL), 0);
    }
    cr_assert_eq(trestle_writer_finish(w, NULL), 0);
    trestle_writer_free(w);
    tu_cli_result r = tu_cli("convert --exclude 'a*' --exclude a12 '%s' '%s/o'", prefix, dir);
    expect(&r, 0, NULL, "");
    cr_assert_str_eq(after_summary(&r, "wrote "),
                     "skipped (excluded): a00, a01, a02, a03, a04, a05, a06, a07, a08, a09, and "
                     "3 more (--list names them all)\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* Issue 25: convert --rename was silently ignored, while restore refused
 * it without --ops. */
Test(cli_convert, rename_without_ops_is_refused_as_restore_refuses_it)
{
    char *prefix, *dir = make(0, &prefix);
    tu_cli_result r = tu_cli("convert --rename model/= '%s' '%s/o'", prefix, dir);
    expect(&r, 2, "", "trestle: convert: --rename and --rnn-renames map the names of an ops file "
                      "to checkpoint keys; they need --ops (to name the tensors in the file, use "
                      "--key)\nTry 'trestle convert --help' for more information.\n");
    tu_cli_free(&r);
    r = tu_cli("convert --rnn-renames '%s' '%s/o'", prefix, dir);
    cr_assert_eq(r.rc, 2);
    tu_cli_free(&r);
    cr_assert_eq(access(dir, F_OK), 0);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* Python and the CLI give this one message too (python/tests). */
Test(cli_convert, as_that_converts_nothing_is_refused_as_restore_refuses_it)
{
    char *prefix, *dir = make(0, &prefix);
    const char *want = "trestle: --as int4: no tensor of this checkpoint converts to int4 "
                       "(supported: float32 -> bfloat16, float32 -> float16, float16 -> float32, "
                       "bfloat16 -> float32)\n";
    tu_cli_result c = tu_cli("convert --as int4 '%s' '%s/o'", prefix, dir);
    tu_cli_result r = tu_cli("restore --as int4 '%s'", prefix);
    expect(&c, 1, "", want);
    expect(&r, 1, "", want);
    tu_cli_free(&c);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* Issue 22 items 3 and 4 from the command line: exit 0 and a destroyed
 * checkpoint (or /dev/null replaced) before; now exit 1, all untouched. */
Test(cli_convert, refuses_its_own_inputs_and_device_nodes_as_out)
{
    char *prefix, *dir = make(0, &prefix);
    char *index, *shard, *ops, *dev, *want;
    cr_assert(asprintf(&index, "%s.index", prefix) > 0);
    cr_assert(asprintf(&shard, "%s.data-00001-of-00002", prefix) > 0);
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    cr_assert(asprintf(&dev, "%s/null", dir) > 0);
    cr_assert_eq(tu_write_file(ops, "model/dense/kernel\n", 19), 0);
    const char *outs[] = { index, shard };
    const char *whats[] = { "index", "data file" };
    for (int i = 0; i < 2; i++) {
        size_t n0, n1;
        uint8_t *was = tu_read_file(outs[i], &n0);
        tu_cli_result r = tu_cli("convert '%s' '%s'", prefix, outs[i]);
        cr_assert(asprintf(&want, "trestle: cannot write to %s: it is the same file as the "
                           "checkpoint's %s %s, and replacing it would destroy the checkpoint "
                           "being converted; write the file elsewhere\n", outs[i], whats[i],
                           outs[i]) > 0);
        expect(&r, 1, "", want);
        uint8_t *is = tu_read_file(outs[i], &n1);
        cr_assert(n0 == n1 && memcmp(was, is, n0) == 0);
        free(was);
        free(is);
        free(want);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("convert --ops '%s' '%s' '%s'", ops, prefix, ops);
    cr_assert(asprintf(&want, "trestle: cannot write to %s: it is the same file as the ops file "
                       "%s; write the file elsewhere\n", ops, ops) > 0);
    expect(&r, 1, "", want);
    free(want);
    tu_cli_free(&r);
    r = tu_cli("verify '%s'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        r = tu_cli("convert '%s' '%s'", prefix, dev);
        cr_assert(asprintf(&want, "trestle: cannot write to %s: it is a character device, not a "
                           "regular file; a conversion writes a new file and renames it into "
                           "place, which would replace it\n", dev) > 0);
        expect(&r, 1, "", want);
        struct stat st;
        cr_assert(stat(dev, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
        free(want);
        tu_cli_free(&r);
    } else {
        cr_log_warn("mknod needs CAP_MKNOD (%s): device node case not run", strerror(errno));
    }
    free(index);
    free(shard);
    free(ops);
    free(dev);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* Issue 25: names for another framework and 2-D kernels transposed; --list
 * shows the plan without writing. */
Test(cli_convert, key_rules_and_transpose_shape_the_file_and_list_shows_them)
{
    char *prefix, *dir = make(0, &prefix);
    const char *args = "--key model/= --key-regex '/=.' --key-regex 'kernel$=weight' "
                       "--transpose '*/kernel'";
    tu_cli_result r = tu_cli("convert --list %s '%s'", args, prefix);
    expect(&r, 0,
           "TENSOR              NAME IN FILE                          DTYPE    SHAPE              "
           " SIZE\n"
           "model/dense/bias    dense.bias                            float32  [3]                "
           " 12 B\n"
           "model/dense/kernel  dense.weight                          float32  [3,2] (transposed)"
           "  24 B\n"
           "vocab               (string: safetensors has no strings)  -        -                  "
           "    -\n",
           "");
    tu_cli_free(&r);
    r = tu_cli("convert %s '%s' '%s/o.safetensors'", args, prefix, dir);
    expect(&r, 0, NULL, "");
    tu_cli_free(&r);
    char *out;
    size_t len;
    cr_assert(asprintf(&out, "%s/o.safetensors", dir) > 0);
    uint8_t *f = tu_read_file(out, &len);
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"dense.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                         "\"dense.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":"
                         "[12,36]}}";
    size_t hl = strlen(header) + (8 - strlen(header) % 8) % 8;
    cr_assert_eq(len, 8 + hl + 36);
    cr_assert(memcmp(f + 8, header, strlen(header)) == 0, "%.*s", (int)hl, f + 8);
    static const float want[9] = { 7, 8, 9, 0, 3, 1, 4, 2, 5 };
    cr_assert(memcmp(f + 8 + hl, want, sizeof want) == 0);
    free(f);
    free(out);
    r = tu_cli("convert --key-regex '(=x' '%s' '%s/o'", prefix, dir);
    expect(&r, 1, "", "trestle: key rule 're:(=x' is not a valid regular expression: Unmatched "
                      "( or \\(\n");
    tu_cli_free(&r);
    r = tu_cli("convert --transpose '*/bias' '%s' '%s/o'", prefix, dir);
    expect(&r, 1, "", "trestle: transpose '*/bias' matches tensor model/dense/bias of rank 1; "
                      "only 2-D tensors transpose (narrow the pattern, e.g. '*/kernel')\n");
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}
