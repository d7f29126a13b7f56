/*
 * test_state_file.c - the text-format `checkpoint` state file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_file.h"
#include "testutil.h"

static char *parse_ok(const char *text, const char *dir)
{
    char *out = NULL;
    trestle_error err;
    int rc = trestle__state_parse(text, strlen(text), dir, "checkpoint", &out, NULL, NULL, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    return out;
}

Test(state_file, joins_a_relative_latest_path_to_the_directory)
{
    char *p = parse_ok("model_checkpoint_path: \"ckpt\"\nall_model_checkpoint_paths: \"ckpt\"\n",
                       "/data/run");
    cr_assert_str_eq(p, "/data/run/ckpt");
    free(p);
}

Test(state_file, keeps_absolute_paths_and_the_last_value)
{
    char *p = parse_ok("model_checkpoint_path: \"/a/old\"\nmodel_checkpoint_path: '/a/new'\n",
                       "/x");
    cr_assert_str_eq(p, "/a/new");
    free(p);
}

Test(state_file, accepts_timestamps_comments_and_escapes)
{
    const char *text = "# written by CheckpointManager\n"
                       "model_checkpoint_path: \"ck\\\"pt\\055\\x41\"\n"
                       "all_model_checkpoint_paths: \"ckpt-1\"\n"
                       "all_model_checkpoint_timestamps: 1695412345.123\n"
                       "last_preserved_timestamp: 1695412000.5\n";
    char *p = parse_ok(text, "d");
    cr_assert_str_eq(p, "d/ck\"pt-A");
    free(p);
}

Test(state_file, lists_all_checkpoints_in_order)
{
    const char *text = "model_checkpoint_path: \"m-3\"\nall_model_checkpoint_paths: \"m-1\"\n"
                       "all_model_checkpoint_paths: \"/abs/m-2\"\nall_model_checkpoint_paths: \"m-3\"\n";
    char *latest, **all;
    size_t n;
    cr_assert_eq(trestle__state_parse(text, strlen(text), "d", "checkpoint", &latest, &all, &n,
                                      NULL), TRESTLE_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(all[0], "d/m-1");
    cr_assert_str_eq(all[1], "/abs/m-2");
    cr_assert_str_eq(all[2], "d/m-3");
    for (size_t i = 0; i < n; i++)
        free(all[i]);
    free(all);
    free(latest);
}

Test(state_file, rejects_an_empty_latest_path_like_tensorflow)
{
    char *out;
    trestle_error err;
    const char *text = "all_model_checkpoint_paths: \"x\"\n";
    cr_assert_eq(trestle__state_parse(text, strlen(text), "/d", "/d/checkpoint", &out, NULL,
                                      NULL, &err), TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.message, "Invalid checkpoint state loaded from /d");
}

Test(state_file, rejects_unterminated_strings)
{
    char *out;
    trestle_error err;
    const char *text = "model_checkpoint_path: \"abc\n";
    cr_assert_eq(trestle__state_parse(text, strlen(text), "/d", "/d/checkpoint", &out, NULL,
                                      NULL, &err), TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad string at byte 23") != NULL, "%s", err.message);
}

/* ---- trestle_latest_checkpoint(): the file, read and parsed by the engine ---- */

/* DIR/NAME holding `text` (the checkpoint's index made when `index` is
 * given, so the prefix resolves). */
static void put(const char *dir, const char *name, const char *text)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

/* The latest checkpoint of `dir`, which must resolve (TRESTLE_OK). */
static char *latest_ok(const char *dir, const char *state_name)
{
    char *out = (char *)1;
    trestle_error err;
    cr_assert_eq(trestle_latest_checkpoint(dir, state_name, &out, &err), TRESTLE_OK, "%s",
                 err.message);
    return out;
}

/* TensorFlow writes a non-ASCII path with octal escapes, keeps the last of
 * two model_checkpoint_path lines, and text format allows comments after a
 * field: the three cases Python's own regex got wrong (issue 22 item 8). */
Test(state_file, latest_checkpoint_reads_octal_escapes_the_last_line_and_comments)
{
    char *dir = tu_mkdtemp(), *want = NULL;
    put(dir, "m\303\266del.index", "");
    put(dir, "old.index", "");
    put(dir, "checkpoint", "model_checkpoint_path: \"m\\303\\266del\"\n");
    cr_assert_geq(asprintf(&want, "%s/m\303\266del", dir), 0);
    char *got = latest_ok(dir, NULL);
    cr_assert_str_eq(got, want);
    free(got);

    put(dir, "checkpoint", "model_checkpoint_path: \"old\"\n"
                           "all_model_checkpoint_paths: \"old\"\n"
                           "model_checkpoint_path: \"m\\303\\266del\"  # newest\n");
    got = latest_ok(dir, NULL);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    tu_rmtree(dir);
    free(dir);
}

Test(state_file, latest_checkpoint_is_null_without_a_state_file)
{
    char *dir = tu_mkdtemp(), *file = NULL;
    char *got = latest_ok(dir, NULL);
    cr_assert_null(got);
    /* A file given as the directory: TensorFlow's file_exists() is false. */
    put(dir, "plain", "x");
    cr_assert_geq(asprintf(&file, "%s/plain", dir), 0);
    got = latest_ok(file, NULL);
    cr_assert_null(got);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

Test(state_file, latest_checkpoint_joins_as_os_path_join_and_takes_a_state_name)
{
    char *dir = tu_mkdtemp(), *slash = NULL, *want = NULL;
    put(dir, "ck-2.index", "");
    put(dir, "other_state", "model_checkpoint_path: 'ck-2'\n");
    cr_assert_geq(asprintf(&slash, "%s/", dir), 0);
    cr_assert_geq(asprintf(&want, "%s/ck-2", dir), 0);
    char *got = latest_ok(slash, "other_state");
    cr_assert_str_eq(got, want);
    free(got);
    cr_assert_null(latest_ok(dir, NULL)); /* "checkpoint" is not there */
    free(want);
    free(slash);
    tu_rmtree(dir);
    free(dir);
}

Test(state_file, latest_checkpoint_names_a_checkpoint_whose_files_are_gone)
{
    char *dir = tu_mkdtemp(), *want = NULL, *state = NULL;
    put(dir, "checkpoint", "model_checkpoint_path: \"gone-1\"\n");
    cr_assert_geq(asprintf(&state, "%s/checkpoint", dir), 0);
    cr_assert_geq(asprintf(&want, "Couldn't match files for checkpoint %s/gone-1 (named by %s)",
                           dir, state), 0);
    char *out = (char *)1;
    trestle_error err;
    cr_assert_eq(trestle_latest_checkpoint(dir, NULL, &out, &err), TRESTLE_E_NOT_FOUND);
    cr_assert_null(out);
    cr_assert_str_eq(err.message, want);
    cr_assert_str_eq(err.path, state);
    free(want);
    free(state);
    tu_rmtree(dir);
    free(dir);
}

Test(state_file, latest_checkpoint_reports_bad_files_with_the_byte)
{
    char *dir = tu_mkdtemp(), *state = NULL, *want = NULL;
    cr_assert_geq(asprintf(&state, "%s/checkpoint", dir), 0);
    char *out;
    trestle_error err;

    put(dir, "checkpoint", "model_checkpoint_path: \"a\n");
    cr_assert_eq(trestle_latest_checkpoint(dir, NULL, &out, &err), TRESTLE_E_CORRUPT);
    cr_assert_geq(asprintf(&want, "%s: bad string at byte 23", state), 0);
    cr_assert_str_eq(err.message, want);
    cr_assert_str_eq(err.path, state);
    cr_assert_eq(err.offset, 23);
    free(want);

    put(dir, "checkpoint", "all_model_checkpoint_paths: \"a\"\n");
    cr_assert_eq(trestle_latest_checkpoint(dir, NULL, &out, &err), TRESTLE_E_CORRUPT);
    cr_assert_geq(asprintf(&want, "Invalid checkpoint state loaded from %s", dir), 0);
    cr_assert_str_eq(err.message, want);
    free(want);

    /* A NUL inside the path would name another file than the text says. */
    static const char nul[] = "model_checkpoint_path: \"a\\000b\"\n";
    put(dir, "a.index", "");
    put(dir, "checkpoint", nul);
    cr_assert_eq(trestle_latest_checkpoint(dir, NULL, &out, &err), TRESTLE_E_CORRUPT);
    cr_assert_geq(asprintf(&want, "%s: model_checkpoint_path holds a NUL byte", state), 0);
    cr_assert_str_eq(err.message, want);
    free(want);

    cr_assert_eq(trestle_latest_checkpoint(NULL, NULL, &out, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "trestle_latest_checkpoint: NULL dir");
    cr_assert_eq(trestle_latest_checkpoint(dir, NULL, NULL, &err), TRESTLE_E_INVALID_ARG);
    free(state);
    tu_rmtree(dir);
    free(dir);
}

/* trestle_open() of a directory and trestle_latest_checkpoint() are one
 * reading: the same prefix, or the same error. */
Test(state_file, open_and_latest_checkpoint_agree)
{
    static const char *const texts[] = {
        "model_checkpoint_path: \"ck\"\n",
        "model_checkpoint_path: \"ck\" # c\nmodel_checkpoint_path: \"ck2\"\n",
        "model_checkpoint_path: \"c\\153\"\n",
        "model_checkpoint_path: \"gone\"\n",
        "model_checkpoint_path: \"ck\n",
        "all_model_checkpoint_paths: \"ck\"\n",
    };
    char *dir = tu_mkdtemp(), *prefix = NULL;
    cr_assert_geq(asprintf(&prefix, "%s/ck", dir), 0);
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    put(dir, "ck2.index", "");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        put(dir, "checkpoint", texts[i]);
        char *latest = NULL;
        trestle_error e1, e2;
        trestle_checkpoint *c = NULL;
        int r1 = trestle_latest_checkpoint(dir, NULL, &latest, &e1);
        int r2 = trestle_open(dir, NULL, &c, &e2);
        if (r1 == TRESTLE_OK && strcmp(latest, prefix) == 0) {
            cr_assert_eq(r2, TRESTLE_OK, "text %zu: %s", i, e2.message);
        } else if (r1 == TRESTLE_OK) {
            /* ck2.index is empty: open finds the prefix and refuses its index. */
            cr_assert_neq(r2, TRESTLE_OK, "text %zu", i);
            cr_assert(strstr(e2.path, "ck2.index"), "text %zu: %s", i, e2.message);
        } else {
            cr_assert_eq(r2, r1, "text %zu: %s / %s", i, e1.message, e2.message);
            cr_assert_str_eq(e2.message, e1.message, "text %zu", i);
        }
        free(latest);
        trestle_close(c);
    }
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
