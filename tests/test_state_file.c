/*
 * test_state_file.c - the text-format `checkpoint` state file.
 */
#include <criterion/criterion.h>
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
