/*
 * test_conversion.c - a conversion to safetensors planned before it is
 * written (trestle_conversion_*): what each op becomes and why others are
 * left out, the names in the file (key rules, set_name), tensors
 * transposed as they land (bytes against a reference transposition), the
 * blanket dtype (as_dtype) keeping every-tensor mode's refusals and
 * counts, and each option that would do nothing refused with its message.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

#define ITERATOR "iterator/.ATTRIBUTES/ITERATOR_STATE"

typedef struct fixture {
    char *dir, *prefix, *out;
    trestle_checkpoint *c;
} fixture;

/* Stored values: "dense/kernel" float [3,5], "bert/layer_0/query/kernel"
 * bfloat16 [4,7], "bert/layer_1/query/kernel" int8 [33,40] (several
 * transpose tiles), "bert/layer_1/query/bias" double [2,3], "step" int64
 * scalar, "vocab" string [2]; with `variant`, ITERATOR too. */
static float kernel[15];
static uint16_t bf[28];
static int8_t wide[33 * 40];
static double dbl[6];

static fixture make(int variant)
{
    fixture f = { tu_mkdtemp(), NULL, NULL, NULL };
    trestle_writer *w;
    trestle_error err;
    int64_t dk[2] = { 3, 5 }, dbf[2] = { 4, 7 }, dw[2] = { 33, 40 }, dd[2] = { 2, 3 }, two = 2;
    int64_t step = 9;
    trestle_bytes words[2] = { { (const uint8_t *)"a", 1 }, { (const uint8_t *)"bc", 2 } };
    for (int i = 0; i < 15; i++)
        kernel[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 28; i++)
        bf[i] = (uint16_t)(0x3F80 + i);   /* 1.0 and up, exact in float32 */
    tu_fill_random(wide, sizeof wide, 3);
    for (int i = 0; i < 6; i++)
        dbl[i] = i * 1.5;
    cr_assert(asprintf(&f.prefix, "%s/ckpt", f.dir) > 0);
    cr_assert(asprintf(&f.out, "%s/out.safetensors", f.dir) > 0);
    cr_assert_eq(trestle_writer_create(f.prefix, NULL, &w, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "dense/kernel", TRESTLE_DT_FLOAT, 2, dk, kernel,
                                    sizeof kernel, 0, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "bert/layer_0/query/kernel", TRESTLE_DT_BFLOAT16, 2, dbf,
                                    bf, sizeof bf, 0, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "bert/layer_1/query/kernel", TRESTLE_DT_INT8, 2, dw, wide,
                                    sizeof wide, 0, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "bert/layer_1/query/bias", TRESTLE_DT_DOUBLE, 2, dd, dbl,
                                    sizeof dbl, 0, &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "step", TRESTLE_DT_INT64, 0, NULL, &step, 8, 0, &err), 0);
    cr_assert_eq(trestle_writer_add_strings(w, "vocab", 1, &two, words, 0, &err), 0);
    if (variant) {
        static const uint8_t state[] = "\x0a\x08IteratorX";
        trestle_bytes elem = { state, sizeof state - 1 };
        int64_t one = 1;
        cr_assert_eq(trestle_writer_add_variants(w, ITERATOR, 1, &one, &elem, 0, &err), 0, "%s",
                     err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), 0, "%s", err.message);
    trestle_writer_free(w);
    f.c = tu_open(f.prefix, NULL);
    return f;
}

static void done(fixture *f)
{
    trestle_close(f->c);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
    free(f->out);
}

static trestle_conversion *create_ok(const fixture *f, const trestle_op *ops, size_t n,
                                     const trestle_convert_options *co)
{
    trestle_conversion *cv;
    trestle_error err;
    cr_assert_eq(trestle_conversion_create(f->c, ops, n, co, &cv, &err), 0, "%s", err.message);
    return cv;
}

/* The entry named `name` (op name). */
static trestle_conversion_entry entry(const trestle_conversion *cv, const char *name)
{
    for (size_t i = 0; i < trestle_conversion_count(cv); i++) {
        trestle_conversion_entry e;
        cr_assert_eq(trestle_conversion_get(cv, i, &e), 0);
        if (strcmp(e.name, name) == 0)
            return e;
    }
    cr_assert_fail("no entry %s", name);
    return (trestle_conversion_entry){ 0 };
}

/* The file's bytes of tensor `name` (its header entry located by text):
 * data offsets parsed from `"NAME":{...,"data_offsets":[B,E]}`. */
static const uint8_t *tensor_in(const uint8_t *file, size_t len, const char *name,
                                const char *want_meta, uint64_t *bytes)
{
    uint64_t n = 0, begin, end;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | file[i];
    char *key, *header = strndup((const char *)file + 8, (size_t)n);
    cr_assert(asprintf(&key, "\"%s\":{%s,\"data_offsets\":[", name, want_meta) > 0);
    const char *at = strstr(header, key);
    cr_assert(at, "no '%s' in %s", key, header);
    cr_assert_eq(sscanf(at + strlen(key), "%" SCNu64 ",%" SCNu64 "]", &begin, &end), 2);
    cr_assert_leq(8 + n + end, len);
    *bytes = end - begin;
    free(key);
    free(header);
    return file + 8 + n + begin;
}

/* ---- key rules ---- */

Test(conversion, key_rules_apply_in_order_exact_prefix_and_regex_with_groups)
{
    fixture f = make(0);
    const char *rules[] = { "step=global_step", "bert/=", "re:layer_([0-9]+)=layer.\\1",
                            "re:/=.", "re:(kernel)$=weight", "re:^(dense)[.](weight)$=\\2.\\1",
                            "re:^global_(.*)=\\0:\\1\\\\" };
    trestle_convert_options co;
    trestle_convert_options_init(&co);
    co.key_rules = rules;
    co.num_key_rules = sizeof rules / sizeof rules[0];
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, NULL, 0, &co);
    cr_assert_str_eq(entry(cv, "bert/layer_0/query/kernel").out_name, "layer.0.query.weight");
    cr_assert_str_eq(entry(cv, "bert/layer_1/query/bias").out_name, "layer.1.query.bias");
    cr_assert_str_eq(entry(cv, "dense/kernel").out_name, "weight.dense");
    cr_assert_str_eq(entry(cv, "step").out_name, "global_step:step\\");
    cr_assert_null(entry(cv, "vocab").out_name);
    cr_assert_eq(entry(cv, "vocab").skipped, TRESTLE_SKIP_NO_SAFETENSORS);
    trestle_convert_stats st;
    trestle_error err;
    cr_assert_eq(trestle_conversion_write(cv, f.out, &st, &err), 0, "%s", err.message);
    cr_assert_eq(st.tensors, 5);
    cr_assert_eq(st.skipped, 1);
    size_t len;
    uint8_t *file = tu_read_file(f.out, &len);
    uint64_t bytes;
    const uint8_t *k = tensor_in(file, len, "weight.dense", "\"dtype\":\"F32\",\"shape\":[3,5]",
                                 &bytes);
    cr_assert(bytes == sizeof kernel && memcmp(k, kernel, bytes) == 0);
    /* JSON escapes the backslash a rule put in. */
    tensor_in(file, len, "global_step:step\\\\", "\"dtype\":\"I64\",\"shape\":[]", &bytes);
    free(file);
    trestle_conversion_free(cv);
    done(&f);
}

Test(conversion, a_malformed_or_unused_key_rule_is_refused_by_name)
{
    static const struct { const char *rule, *message; } cases[] = {
        { "noequals", "key rule 'noequals' is not FROM=TO" },
        { "=x", "key rule '=x' is not FROM=TO" },
        { "re:abc", "key rule 're:abc' is not re:PATTERN=REPLACEMENT" },
        { "re:(a=b", "key rule 're:(a=b' is not a valid regular expression: Unmatched ( or \\(" },
        { "re:(a)=\\2", "key rule 're:(a)=\\2' refers to group 2, and its pattern has 1" },
        { "re:a=\\n", "key rule 're:a=\\n' has an unknown escape in its replacement (use \\0..\\9 "
                      "for the match and its groups, \\\\ for a backslash)" },
        { "nothing=x", "key rule 'nothing=x' matches no tensor of the conversion" },
        { "nothing/=x/", "key rule 'nothing/=x/' matches no tensor of the conversion" },
        { "re:^zz=x", "key rule 're:^zz=x' matches no tensor of the conversion" },
    };
    fixture f = make(0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        trestle_convert_options co;
        trestle_conversion *cv = (void *)1;
        trestle_error err;
        trestle_convert_options_init(&co);
        co.key_rules = &cases[i].rule;
        co.num_key_rules = 1;
        cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err),
                     TRESTLE_E_INVALID_ARG, "%s", cases[i].rule);
        cr_assert_str_eq(err.message, cases[i].message);
        cr_assert_null(cv);
    }
    done(&f);
}

/* Names a program sets are checked when written, as the rules' are. */
Test(conversion, set_name_renames_and_the_write_checks_the_names)
{
    fixture f = make(0);
    trestle_convert_options co;
    trestle_error err;
    trestle_convert_options_init(&co);
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, NULL, 0, &co);
    size_t k = 0, s = 0, v = 0;
    for (size_t i = 0; i < trestle_conversion_count(cv); i++) {
        trestle_conversion_entry e;
        trestle_conversion_get(cv, i, &e);
        k = strcmp(e.name, "dense/kernel") == 0 ? i : k;
        s = strcmp(e.name, "step") == 0 ? i : s;
        v = strcmp(e.name, "vocab") == 0 ? i : v;
    }
    cr_assert_eq(trestle_conversion_set_name(cv, v, "x", &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor vocab is left out of the file; it has no name to set");
    cr_assert_eq(trestle_conversion_set_name(cv, 99, "x", &err), TRESTLE_E_INVALID_ARG);

    cr_assert_eq(trestle_conversion_set_name(cv, k, "__metadata__", &err), 0);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor 'dense/kernel' (named '__metadata__' in the file): "
                                  "__metadata__ is the safetensors header's own key, and no "
                                  "tensor can have that name; name it with a key rule, or "
                                  "exclude it");
    cr_assert_eq(trestle_conversion_set_name(cv, k, "same", &err), 0);
    cr_assert_eq(trestle_conversion_set_name(cv, s, "same", &err), 0);
    /* Different dtypes, so the two are apart in the file's order, yet caught. */
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensors dense/kernel and step would both be named same in "
                                  "the file; a safetensors file holds one tensor per name");
    cr_assert_eq(access(f.out, F_OK), -1);
    cr_assert_eq(trestle_conversion_set_name(cv, s, "global_step", &err), 0);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    size_t len;
    uint64_t bytes;
    uint8_t *file = tu_read_file(f.out, &len);
    tensor_in(file, len, "same", "\"dtype\":\"F32\",\"shape\":[3,5]", &bytes);
    tensor_in(file, len, "global_step", "\"dtype\":\"I64\",\"shape\":[]", &bytes);
    free(file);
    trestle_conversion_free(cv);
    done(&f);
}

/* ---- transposes ---- */

/* The reference: dst[c][r] = src[r][c], element by element. */
static void ref_transpose(uint8_t *dst, const uint8_t *src, int64_t rows, int64_t cols,
                          size_t es)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy(dst + (size_t)(c * rows + r) * es, src + (size_t)(r * cols + c) * es, es);
}

/* The bytes in the file are the reference transposition of the stored
 * ones: 1-, 4- and 8-byte elements, several tiles, a tensor converted on
 * load (bfloat16 -> float32) then transposed, and a slice. */
Test(conversion, transposed_tensors_land_transposed_byte_for_byte)
{
    fixture f = make(0);
    const char *globs[] = { "*/kernel", "bert/layer_1/query/bias" };
    trestle_op ops[] = {
        { .name = "dense/kernel" },
        { .name = "bert/layer_0/query/kernel", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "bert/layer_1/query/kernel" },
        { .name = "bert/layer_1/query/bias" },
        { .name = "part/kernel", .shape_and_slices = "3 5 1,2:1,3" },
    };
    const char *ren[] = { "part/kernel=dense/kernel" };
    trestle_plan_options po;
    trestle_convert_options co;
    trestle_error err;
    trestle_plan_options_init(&po);
    po.renames = ren;
    po.num_renames = 1;
    trestle_convert_options_init(&co);
    co.plan = &po;
    co.transpose = globs;
    co.num_transpose = 2;
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, ops, 5, &co);
    trestle_conversion_entry e = entry(cv, "bert/layer_1/query/kernel");
    cr_assert(e.transposed && e.rank == 2 && e.dims[0] == 40 && e.dims[1] == 33);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    size_t len;
    uint64_t bytes;
    uint8_t *file = tu_read_file(f.out, &len), want[33 * 40 * 8];

    ref_transpose(want, (const uint8_t *)kernel, 3, 5, 4);
    const uint8_t *got = tensor_in(file, len, "dense/kernel",
                                   "\"dtype\":\"F32\",\"shape\":[5,3]", &bytes);
    cr_assert(bytes == 60 && memcmp(got, want, 60) == 0);

    float widened[28], wide_t[28];
    for (int i = 0; i < 28; i++) {
        uint32_t u = (uint32_t)bf[i] << 16;
        memcpy(&widened[i], &u, 4);
    }
    ref_transpose((uint8_t *)wide_t, (const uint8_t *)widened, 4, 7, 4);
    got = tensor_in(file, len, "bert/layer_0/query/kernel", "\"dtype\":\"F32\",\"shape\":[7,4]",
                    &bytes);
    cr_assert(bytes == sizeof wide_t && memcmp(got, wide_t, bytes) == 0);

    ref_transpose(want, (const uint8_t *)wide, 33, 40, 1);
    got = tensor_in(file, len, "bert/layer_1/query/kernel", "\"dtype\":\"I8\",\"shape\":[40,33]",
                    &bytes);
    cr_assert(bytes == sizeof wide && memcmp(got, want, bytes) == 0);

    ref_transpose(want, (const uint8_t *)dbl, 2, 3, 8);
    got = tensor_in(file, len, "bert/layer_1/query/bias", "\"dtype\":\"F64\",\"shape\":[3,2]",
                    &bytes);
    cr_assert(bytes == sizeof dbl && memcmp(got, want, bytes) == 0);

    /* Rows 1-2, columns 1-3 of the [3,5] kernel, then transposed. */
    float slice[6] = { kernel[6], kernel[7], kernel[8], kernel[11], kernel[12], kernel[13] };
    ref_transpose(want, (const uint8_t *)slice, 2, 3, 4);
    got = tensor_in(file, len, "part/kernel", "\"dtype\":\"F32\",\"shape\":[3,2]", &bytes);
    cr_assert(bytes == sizeof slice && memcmp(got, want, bytes) == 0);
    free(file);
    trestle_conversion_free(cv);
    done(&f);
}

Test(conversion, a_transpose_pattern_that_matches_nothing_or_no_matrix_is_refused)
{
    static const struct { const char *glob, *message; } cases[] = {
        { "*/kernel/x", "transpose '*/kernel/x' matches no tensor of the conversion" },
        { "st*", "transpose 'st*' matches tensor step of rank 0; only 2-D tensors transpose "
                 "(narrow the pattern, e.g. '*/kernel')" },
        { "[ab", "transpose '[ab' has an unclosed '['" },
        /* A string tensor is left out before transposes are matched. */
        { "vocab", "transpose 'vocab' matches no tensor of the conversion" },
    };
    fixture f = make(0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        trestle_convert_options co;
        trestle_conversion *cv;
        trestle_error err;
        trestle_convert_options_init(&co);
        co.transpose = &cases[i].glob;
        co.num_transpose = 1;
        cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err),
                     TRESTLE_E_INVALID_ARG, "%s", cases[i].glob);
        cr_assert_str_eq(err.message, cases[i].message);
    }
    done(&f);
}

/* ---- what goes in, and what is left out ---- */

/* Issue 22 item 5: with as_dtype, every-tensor mode still refuses a
 * variant as it does without, and skips and counts the same tensors. */
Test(conversion, as_dtype_keeps_the_variant_refusal_and_the_skipped_count)
{
    fixture f = make(1);
    for (int as = 0; as < 2; as++) {
        trestle_convert_options co;
        trestle_plan_options po;
        trestle_conversion *cv;
        trestle_error err;
        trestle_convert_options_init(&co);
        co.as_dtype = as ? TRESTLE_DT_BFLOAT16 : 0;
        cr_assert_eq(trestle_convert_safetensors(f.c, NULL, 0, &co, f.out, NULL, &err),
                     TRESTLE_E_UNSUPPORTED, "as %d", as);
        cr_assert(strstr(err.message, ITERATOR), "%s", err.message);
        cr_assert_eq(access(f.out, F_OK), -1);

        trestle_plan_options_init(&po);
        po.skip_unsupported = 1;
        co.plan = &po;
        co.sync = 0;
        cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err), 0, "%s",
                     err.message);
        cr_assert_eq(entry(cv, ITERATOR).skipped, TRESTLE_SKIP_UNSUPPORTED);
        cr_assert_eq(entry(cv, "vocab").skipped, TRESTLE_SKIP_NO_SAFETENSORS);
        trestle_conversion_entry k = entry(cv, "dense/kernel");
        cr_assert_eq(k.out_dtype, as ? TRESTLE_DT_BFLOAT16 : TRESTLE_DT_FLOAT);
        cr_assert_eq(k.bytes, as ? 30 : 60);
        /* bfloat16 is no float32: only float32 converts to bfloat16. */
        cr_assert_eq(entry(cv, "step").out_dtype, TRESTLE_DT_INT64);
        trestle_convert_stats st;
        cr_assert_eq(trestle_conversion_write(cv, f.out, &st, &err), 0, "%s", err.message);
        cr_assert_eq(st.tensors, 5);
        cr_assert_eq(st.skipped, 2);
        trestle_conversion_free(cv);
        unlink(f.out);
    }
    done(&f);
}

Test(conversion, options_that_would_do_nothing_are_refused)
{
    fixture f = make(0);
    trestle_convert_options co;
    trestle_plan_options po;
    trestle_conversion *cv;
    trestle_error err;
    const char *ren[] = { "a/=b/" };

    trestle_convert_options_init(&co);
    co.as_dtype = TRESTLE_DT_INT4;
    cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err),
                 TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_str_eq(err.message, "as_dtype int4: no tensor of this conversion converts to int4 "
                                  "(supported: float32 -> bfloat16, float32 -> float16, "
                                  "float16 -> float32, bfloat16 -> float32)");

    trestle_convert_options_init(&co);
    trestle_plan_options_init(&po);
    po.renames = ren;
    po.num_renames = 1;
    co.plan = &po;
    cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "renames map op names to checkpoint keys, and without ops every "
                                  "tensor is named by its key, so they would do nothing; to name "
                                  "the tensors in the file, use key_rules");
    po.num_renames = 0;
    po.tf1_rnn_renames = 1;
    cr_assert_eq(trestle_conversion_create(f.c, NULL, 0, &co, &cv, &err), TRESTLE_E_INVALID_ARG);
    /* With ops they map, as in a restore. */
    trestle_op op = { .name = "a/kernel" };
    const char *dense[] = { "a/=dense/" };
    po.renames = dense;
    po.num_renames = 1;
    po.tf1_rnn_renames = 0;
    cv = create_ok(&f, &op, 1, &co);
    trestle_conversion_entry e = entry(cv, "a/kernel");
    cr_assert_str_eq(e.key, "dense/kernel");
    cr_assert_str_eq(e.out_name, "a/kernel");
    trestle_conversion_free(cv);
    done(&f);
}

Test(conversion, entries_say_why_each_op_is_left_out)
{
    fixture f = make(0);
    trestle_op ops[] = { { .name = "dense/kernel" }, { .name = "gone" }, { .name = "step" } };
    const char *ex[] = { "st*" };
    trestle_plan_options po;
    trestle_convert_options co;
    trestle_plan_options_init(&po);
    po.allow_missing = 1;
    po.excludes = ex;
    po.num_excludes = 1;
    trestle_convert_options_init(&co);
    co.plan = &po;
    trestle_conversion *cv = create_ok(&f, ops, 3, &co);
    cr_assert_eq(trestle_conversion_count(cv), 3);
    cr_assert_eq(entry(cv, "gone").skipped, TRESTLE_SKIP_MISSING);
    cr_assert_null(entry(cv, "gone").key);
    cr_assert_null(entry(cv, "gone").out_name);
    cr_assert_eq(entry(cv, "step").skipped, TRESTLE_SKIP_EXCLUDED);
    trestle_conversion_entry k = entry(cv, "dense/kernel");
    cr_assert(!k.skipped && k.rank == 2 && k.dims[0] == 3 && k.bytes == 60);
    trestle_conversion_entry none;
    cr_assert_eq(trestle_conversion_get(cv, 3, &none), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_conversion_count(NULL), 0);
    trestle_conversion_free(cv);
    trestle_conversion_free(NULL);
    done(&f);
}

/* A model of 100,000 tensors keeps a conversion entry per tensor through
 * the write (issue 24): every-tensor mode points at the checkpoint's own
 * keys and shapes rather than copying them, a shape the conversion
 * changes (a transpose) is its own and leaves the checkpoint's alone, and
 * the names of a caller's ops are copies that outlive the caller's
 * strings. Written twice, the file is the same. */
Test(conversion, entries_share_the_checkpoints_keys_and_shapes_and_copy_the_callers)
{
    fixture f = make(0);
    const char *globs[] = { "dense/kernel" }, *rules[] = { "step=global_step" };
    trestle_convert_options co;
    trestle_error err;
    trestle_convert_options_init(&co);
    co.transpose = globs;
    co.num_transpose = 1;
    co.key_rules = rules;
    co.num_key_rules = 1;
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, NULL, 0, &co);
    cr_assert_eq(trestle_conversion_count(cv), trestle_tensor_count(f.c));
    for (size_t i = 0; i < trestle_tensor_count(f.c); i++) {
        trestle_tensor_info t;
        trestle_conversion_entry e;
        cr_assert_eq(trestle_tensor_get_info(f.c, i, &t), 0);
        cr_assert_eq(trestle_conversion_get(cv, i, &e), 0);
        cr_assert(e.name == t.name, "%s: the name is a copy", t.name);
        if (e.skipped) /* vocab: a string */
            continue;
        cr_assert(e.key == t.name, "%s: the key is a copy", t.name);
        if (strcmp(t.name, "step") == 0)
            cr_assert_str_eq(e.out_name, "global_step");
        else
            cr_assert(e.out_name == t.name, "%s: the name in the file is a copy", t.name);
        if (strcmp(t.name, "dense/kernel") == 0)
            cr_assert(e.dims != t.dims && e.dims[0] == 5 && e.dims[1] == 3 && t.dims[0] == 3 &&
                      t.dims[1] == 5);
        else
            cr_assert(e.dims == t.dims, "%s: the shape is a copy", t.name);
    }
    size_t len1, len2;
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    uint8_t *first = tu_read_file(f.out, &len1);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    uint8_t *second = tu_read_file(f.out, &len2);
    cr_assert(len1 == len2 && memcmp(first, second, len1) == 0);
    free(first);
    free(second);
    trestle_conversion_free(cv);

    char name[] = "dense/kernel", spec[] = "3 5 0,2:0,5";
    trestle_op op = { .name = name, .shape_and_slices = spec };
    trestle_convert_options_init(&co);
    co.sync = 0;
    cv = create_ok(&f, &op, 1, &co);
    memset(name, 'x', sizeof name - 1);
    memset(spec, '9', sizeof spec - 1);
    trestle_conversion_entry e = entry(cv, "dense/kernel");
    cr_assert_str_eq(e.out_name, "dense/kernel");
    cr_assert(e.rank == 2 && e.dims[0] == 2 && e.dims[1] == 5 && e.bytes == 40);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    uint64_t bytes;
    uint8_t *file = tu_read_file(f.out, &len1);
    const uint8_t *got = tensor_in(file, len1, "dense/kernel",
                                   "\"dtype\":\"F32\",\"shape\":[2,5]", &bytes);
    cr_assert(bytes == 40 && memcmp(got, kernel, 40) == 0);
    free(file);
    trestle_conversion_free(cv);
    done(&f);
}

/* The caller's ready callback sees each tensor written; a nonzero return
 * cancels and leaves nothing behind. */
static int count_or_stop(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)i;
    int *seen = user;
    seen[0]++;
    seen[1] += (int)op->bytes;
    return seen[2];
}

Test(conversion, the_callers_ready_callback_counts_and_cancels)
{
    fixture f = make(0);
    int seen[3] = { 0, 0, 0 };
    trestle_restore_options ro;
    trestle_convert_options co;
    trestle_error err;
    const char *tr[] = { "dense/kernel" };
    trestle_restore_options_init(&ro);
    ro.on_ready = count_or_stop;
    ro.user = seen;
    trestle_convert_options_init(&co);
    co.restore = &ro;
    co.transpose = tr;
    co.num_transpose = 1;
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, NULL, 0, &co);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    cr_assert_eq(seen[0], 5);
    cr_assert_eq(seen[1], 60 + 56 + 1320 + 48 + 8);
    seen[2] = 1;
    unlink(f.out);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), TRESTLE_E_CANCELLED);
    cr_assert_eq(access(f.out, F_OK), -1);
    trestle_conversion_free(cv);
    done(&f);
}

/* A conversion restores its own plan into the file (trestle_plan_set_dest)
 * when the file holds what that plan restores: here ops named through a
 * rename, one transposed. The callback still sees the checkpoint key as
 * each op's name (trestle.h), the transposed tensor lands transposed, and
 * a second write, which plans again, writes the same bytes. */
typedef struct seen_names {
    int n;
    char names[8][64];
} seen_names;

static int note_name(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)i;
    seen_names *s = user;
    if (s->n < 8)
        snprintf(s->names[s->n++], sizeof s->names[0], "%s", op->name);
    return 0;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(conversion, a_kept_plan_names_keys_to_the_callback_and_writes_what_a_new_one_does)
{
    fixture f = make(0);
    seen_names seen = { 0 };
    trestle_restore_options ro;
    trestle_plan_options po;
    trestle_convert_options co;
    trestle_error err;
    const char *renames[] = { "graph/=bert/" }, *tr[] = { "graph/layer_0/query/kernel" };
    trestle_op ops[] = { { .name = "graph/layer_0/query/kernel" },
                         { .name = "graph/layer_1/query/bias" },
                         { .name = "dense/kernel" } };
    trestle_restore_options_init(&ro);
    ro.on_ready = note_name;
    ro.user = &seen;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_convert_options_init(&co);
    co.restore = &ro;
    co.plan = &po;
    co.transpose = tr;
    co.num_transpose = 1;
    co.sync = 0;
    trestle_conversion *cv = create_ok(&f, ops, 3, &co);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    cr_assert_eq(seen.n, 3);
    qsort(seen.names, (size_t)seen.n, sizeof seen.names[0], by_string);
    cr_assert_str_eq(seen.names[0], "bert/layer_0/query/kernel");
    cr_assert_str_eq(seen.names[1], "bert/layer_1/query/bias");
    cr_assert_str_eq(seen.names[2], "dense/kernel");

    size_t len1, len2;
    uint64_t bytes;
    uint8_t *first = tu_read_file(f.out, &len1);
    const uint8_t *got = tensor_in(first, len1, "graph/layer_0/query/kernel",
                                   "\"dtype\":\"BF16\",\"shape\":[7,4]", &bytes);
    cr_assert_eq(bytes, sizeof bf);
    for (int r = 0; r < 7; r++) /* stored [4, 7]: element [r][c] of the file is [c][r] */
        for (int c = 0; c < 4; c++)
            cr_assert_eq(((const uint16_t *)got)[r * 4 + c], bf[c * 7 + r], "[%d][%d]", r, c);
    got = tensor_in(first, len1, "graph/layer_1/query/bias",
                    "\"dtype\":\"F64\",\"shape\":[2,3]", &bytes);
    cr_assert(bytes == sizeof dbl && memcmp(got, dbl, sizeof dbl) == 0);

    unlink(f.out);
    cr_assert_eq(trestle_conversion_write(cv, f.out, NULL, &err), 0, "%s", err.message);
    uint8_t *second = tu_read_file(f.out, &len2);
    cr_assert(len1 == len2 && memcmp(first, second, len1) == 0,
              "a kept plan and a new one write the same file");
    free(first);
    free(second);
    trestle_conversion_free(cv);
    done(&f);
}
