/*
 * test_user_files.c - files a user names are opened by one rule (issue 22
 * item 7): a FIFO, a device or a directory where the `checkpoint` state
 * file, a graph or a data shard should be is refused, naming what it is,
 * and never blocks. Before the fix a FIFO as the state file or as the graph
 * hung every command and trestle_open(); here every CLI run is bounded by
 * timeout(1) and every test by alarm(2), so a regression fails (exit 124,
 * or SIGALRM) instead of hanging the suite. FIFOs and device nodes are made
 * by the tests in their own temporary directories.
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
#include "trestle_graph.h"

#define FIFO_NOTE "it is a FIFO; trestle reads only regular files"

typedef struct scene {
    char *dir;      /* scratch directory */
    char *prefix;   /* DIR/ck, a writer-made checkpoint of "w" [4] float */
    char *ops;      /* DIR/ops.txt: "w" */
} scene;

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static scene scene_make(void)
{
    scene s = { tu_mkdtemp(), NULL, NULL };
    cr_assert_not_null(s.dir);
    s.prefix = join(s.dir, "ck");
    s.ops = join(s.dir, "ops.txt");
    trestle_writer *w;
    trestle_error err;
    float v[4] = { 1, 2, 3, 4 };
    int64_t n = 4;
    cr_assert_eq(trestle_writer_create(s.prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 1, &n, v, sizeof v, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    cr_assert_eq(tu_write_file(s.ops, "w\n", 2), 0);
    return s;
}

static void scene_drop(scene *s)
{
    tu_rmtree(s->dir);
    free(s->dir);
    free(s->prefix);
    free(s->ops);
}

/* A test that blocks (in the library, before a CLI's timeout(1) applies)
 * is killed by SIGALRM and fails instead of hanging the suite. alarm(2)
 * rather than Criterion's .timeout, whose timer the runner leaks under
 * LeakSanitizer when tests with timeouts run in parallel. */
static void bound_test(void)
{
    alarm(60);
}

/* `trestle ARGS` under timeout(1): exit 124 means it blocked. */
static tu_cli_result bounded(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static tu_cli_result bounded(const char *fmt, ...)
{
    char *args = NULL, *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&args, fmt, ap), 0);
    va_end(ap);
    cr_assert_geq(asprintf(&cmd, "timeout -k 2 10 '%s' %s", TRESTLE_CLI_PATH, args), 0);
    tu_cli_result r;
    r.rc = tu_run(cmd, &r.out, &r.err);
    cr_assert_neq(r.rc, 124, "trestle %s blocked (killed after 10 s)", args);
    free(args);
    free(cmd);
    return r;
}

/* The command failed with exit `rc` and exactly one stderr line: `line`. */
static void fails_with(tu_cli_result r, int rc, const char *line, const char *what)
{
    cr_assert_eq(r.rc, rc, "%s: exit %d, stderr: %s", what, r.rc, r.err);
    char *want = NULL;
    cr_assert_geq(asprintf(&want, "trestle: %s\n", line), 0);
    cr_assert_str_eq(r.err, want, "%s", what);
    free(want);
    tu_cli_free(&r);
}

/* ---- the state file ---- */

Test(user_files, a_fifo_state_file_fails_every_command_at_once)
{
    bound_test();
    scene s = scene_make();
    char *state = join(s.dir, "checkpoint"), *line = NULL;
    cr_assert_eq(mkfifo(state, 0600), 0);
    cr_assert_geq(asprintf(&line, "cannot read the checkpoint state file %s: " FIFO_NOTE, state),
                  0);
    const char *d = s.dir;
    fails_with(bounded("inspect '%s'", d), 1, line, "inspect");
    fails_with(bounded("inspect --json '%s'", d), 1, line, "inspect --json");
    fails_with(bounded("verify '%s'", d), 1, line, "verify");
    fails_with(bounded("restore '%s' --all", d), 1, line, "restore");
    fails_with(bounded("convert '%s' '%s/out.safetensors'", d, d), 1, line, "convert");
    fails_with(bounded("diff '%s' '%s'", d, s.prefix), 2, line, "diff A");
    fails_with(bounded("diff '%s' '%s'", s.prefix, d), 2, line, "diff B");
    fails_with(bounded("check '%s' '%s'", s.ops, d), 1, line, "check");
    fails_with(bounded("ops --names graph '%s'", d), 1, line, "ops --names");

    trestle_checkpoint *c = (trestle_checkpoint *)1;
    trestle_error err;
    cr_assert_eq(trestle_open(d, NULL, &c, &err), TRESTLE_E_IO, "%s", err.message);
    cr_assert_null(c);
    cr_assert_str_eq(err.message, line);
    cr_assert_str_eq(err.path, state);
    char *latest = (char *)1;
    cr_assert_eq(trestle_latest_checkpoint(d, NULL, &latest, &err), TRESTLE_E_IO);
    cr_assert_null(latest);
    cr_assert_str_eq(err.message, line);
    free(line);
    free(state);
    scene_drop(&s);
}

Test(user_files, a_device_state_file_is_named_and_never_read)
{
    bound_test();
    scene s = scene_make();
    char *state = join(s.dir, "checkpoint"), *line = NULL;
    /* /dev/zero's numbers, made here: reading it would never end. A
     * symlink to the system's /dev/zero (read only) where mknod is not
     * allowed. */
    if (mknod(state, S_IFCHR | 0600, makedev(1, 5)) != 0)
        cr_assert_eq(symlink("/dev/zero", state), 0, "%s", strerror(errno));
    cr_assert_geq(asprintf(&line, "cannot read the checkpoint state file %s: it is a character "
                                  "device; trestle reads only regular files", state), 0);
    fails_with(bounded("inspect '%s'", s.dir), 1, line, "inspect");
    char *latest;
    trestle_error err;
    cr_assert_eq(trestle_latest_checkpoint(s.dir, NULL, &latest, &err), TRESTLE_E_IO);
    cr_assert_str_eq(err.message, line);
    free(line);
    free(state);
    scene_drop(&s);
}

Test(user_files, an_oversize_state_file_is_refused_before_reading)
{
    bound_test();
    scene s = scene_make();
    char *state = join(s.dir, "checkpoint"), *line = NULL;
    /* 99 MB, sparse: a valid first line, then zeros. Python took the
     * path from it where the engine refused the directory. */
    cr_assert_eq(tu_write_file(state, "model_checkpoint_path: \"ck\"\n", 28), 0);
    cr_assert_eq(truncate(state, 99000000), 0);
    cr_assert_geq(asprintf(&line, "cannot read the checkpoint state file %s: it is 99000000 "
                                  "bytes; a checkpoint state file is a few lines, and trestle "
                                  "reads at most 16 MiB", state), 0);
    char *latest;
    trestle_error err;
    cr_assert_eq(trestle_latest_checkpoint(s.dir, NULL, &latest, &err), TRESTLE_E_LIMIT);
    cr_assert_str_eq(err.message, line);
    cr_assert_eq(err.length, 99000000);
    trestle_checkpoint *c;
    cr_assert_eq(trestle_open(s.dir, NULL, &c, &err), TRESTLE_E_LIMIT);
    cr_assert_str_eq(err.message, line);
    fails_with(bounded("inspect '%s'", s.dir), 1, line, "inspect");
    free(line);
    free(state);
    scene_drop(&s);
}

/* ---- graphs ---- */

Test(user_files, a_fifo_graph_fails_every_command_at_once)
{
    bound_test();
    scene s = scene_make();
    char *meta = join(s.dir, "ck.meta"), *line = NULL;
    cr_assert_eq(mkfifo(meta, 0600), 0);
    cr_assert_geq(asprintf(&line, "cannot use %s: " FIFO_NOTE, meta), 0);
    fails_with(bounded("ops --graph '%s'", meta), 1, line, "ops --graph");
    fails_with(bounded("restore '%s' --graph '%s'", s.prefix, meta), 1, line, "restore --graph");
    fails_with(bounded("check '%s' '%s'", meta, s.prefix), 1, line, "check");
    fails_with(bounded("diff '%s' '%s'", meta, s.prefix), 2, line, "diff");

    trestle_graph *g = (trestle_graph *)1;
    trestle_error err;
    cr_assert_eq(trestle_graph_open(meta, NULL, &g, &err), TRESTLE_E_IO, "%s", err.message);
    cr_assert_null(g);
    cr_assert_str_eq(err.message, line);
    free(line);
    free(meta);
    scene_drop(&s);
}

Test(user_files, a_fifo_saved_model_pb_is_refused)
{
    bound_test();
    scene s = scene_make();
    char *sm = join(s.dir, "sm"), *pb = join(s.dir, "sm/saved_model.pb"), *line = NULL;
    cr_assert_eq(mkdir(sm, 0700), 0);
    cr_assert_eq(mkfifo(pb, 0600), 0);
    cr_assert_geq(asprintf(&line, "cannot use %s: " FIFO_NOTE, pb), 0);
    fails_with(bounded("ops --graph '%s'", sm), 1, line, "ops --graph DIR");
    fails_with(bounded("check '%s' '%s'", sm, s.prefix), 1, line, "check DIR");
    free(line);
    free(pb);
    free(sm);
    scene_drop(&s);
}

/* ---- data shards read by the tools themselves ---- */

Test(user_files, bench_of_a_checkpoint_with_a_fifo_shard_fails_without_blocking)
{
    bound_test();
    scene s = scene_make();
    char *data = join(s.dir, "ck.data-00000-of-00001"), *line = NULL;
    cr_assert_eq(unlink(data), 0);
    cr_assert_eq(mkfifo(data, 0600), 0);
    cr_assert_geq(asprintf(&line, "data shard %s, which is a FIFO; trestle reads only regular "
                                  "files", data), 0);
    fails_with(bounded("bench '%s' --host --repeat 1", s.prefix), 1, line, "bench");
    free(line);
    free(data);
    scene_drop(&s);
}
