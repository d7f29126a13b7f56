/*
 * test_install.c - libtrestle as an outside program sees it: the example
 * consumer in tools/, `cmake --install` followed by out-of-tree builds that
 * find the package with find_package(trestle 0.2) and with pkg-config (a
 * trestle.h and a trestle_graph.h program each, and statically through
 * `pkg-config --static`), an MPI program through trestle_mpi.pc and
 * trestle::trestle_mpi, and one version everywhere. (Concurrent restores
 * and cancellation from another thread: test_concurrency.c.)
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

/* ---- helpers ---- */

static uint64_t fnv1a64(const void *data, uint64_t n)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ULL;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Skips the test unless `tool` runs. */
static void require_tool(const char *tool)
{
    char *cmd;
    cr_assert(asprintf(&cmd, "command -v '%s' >/dev/null 2>&1", tool) > 0);
    int rc = tu_run(cmd, NULL, NULL);
    free(cmd);
    if (rc != 0)
        cr_skip_test("%s is not installed", tool);
}

/* Runs `cmd`, asserting exit status 0 and showing its output otherwise. */
static char *run_ok(const char *cmd)
{
    char *out = NULL, *errout = NULL;
    int rc = tu_run(cmd, &out, &errout);
    cr_assert_eq(rc, 0, "`%s` exited %d\nstdout:\n%s\nstderr:\n%s", cmd, rc, out ? out : "",
                 errout ? errout : "");
    free(errout);
    return out;
}

/*
 * The small checkpoint of the example and consumer tests: a scalar int64
 * first (key order), then a 4x3 float matrix and a float vector.
 */
static const int64_t step_value = 7;
static float kernel_values[12], bias_values[3];

static char *write_small_checkpoint(char **dir)
{
    trestle_writer *w;
    trestle_error err;
    char *prefix;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/ckpt-1", *dir) > 0);
    for (int i = 0; i < 12; i++)
        kernel_values[i] = 0.5f * (float)i - 1.0f;
    for (int i = 0; i < 3; i++)
        bias_values[i] = (float)(i + 1);
    const int64_t kdims[2] = { 4, 3 }, bdims[1] = { 3 };
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "a_step", TRESTLE_DT_INT64, 0, NULL, &step_value, 8, 0,
                                    &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "b_dense/kernel", TRESTLE_DT_FLOAT, 2, kdims,
                                    kernel_values, sizeof kernel_values, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "c_bias", TRESTLE_DT_FLOAT, 1, bdims, bias_values,
                                    sizeof bias_values, 0, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

/*
 * What tests/consumer/consumer_graph.c prints for `CKPT c_bias nope` on the
 * small checkpoint: the installed library's version and its header's, both
 * this build's (project() in CMakeLists.txt), then rename inference's verdict.
 */
static char *graph_consumer_expected(void)
{
    char *s;
    cr_assert(asprintf(&s, "library %s, header %s\nc_bias: ok\nnope: missing\nrestores: no\n",
                       TRESTLE_VERSION_STRING, TRESTLE_VERSION_STRING) > 0);
    return s;
}

/* `cmake --install` of this build tree into a fresh prefix; returns the prefix. */
static char *install_into_temp(void)
{
    char *prefix = tu_mkdtemp(), *cmd;
    cr_assert(asprintf(&cmd, "'%s' --install '%s' --prefix '%s'", TRESTLE_CMAKE_COMMAND,
                       TRESTLE_BUILD_DIR, prefix) > 0);
    free(run_ok(cmd));
    free(cmd);
    return prefix;
}

/* A fresh install, the small checkpoint and a build directory for one
 * consumer test; consumer_done() removes all three. */
typedef struct consumer_env {
    char *prefix;   /* the install */
    char *dir;      /* the checkpoint's directory */
    char *ckpt;     /* its prefix */
    char *bdir;     /* where the consumer is built */
} consumer_env;

static consumer_env consumer_begin(void)
{
    consumer_env e;
    e.prefix = install_into_temp();
    e.ckpt = write_small_checkpoint(&e.dir);
    e.bdir = tu_mkdtemp();
    return e;
}

static void consumer_done(consumer_env *e)
{
    tu_rmtree(e->bdir);
    tu_rmtree(e->prefix);
    tu_rmtree(e->dir);
    free(e->bdir);
    free(e->prefix);
    free(e->dir);
    free(e->ckpt);
}

/* ---- the example program ---- */

Test(install, example_restore_prints_renamed_slice_and_checksums)
{
    char *dir, *prefix = write_small_checkpoint(&dir), *cmd, *out = NULL, *errout = NULL;
    cr_assert(asprintf(&cmd, "'%s' '%s'", TRESTLE_EXAMPLE_PATH, prefix) > 0);
    int rc = tu_run(cmd, &out, &errout);
    cr_assert_eq(rc, 0, "example_restore exited %d: %s", rc, errout);
    cr_assert_str_empty(errout);

    /* The ready callback's lines come first, in landing order. */
    const char *a = "landed 0: example/first\n", *b = "landed 1: example/half\n";
    size_t la = strlen(a), lb = strlen(b);
    cr_assert(strlen(out) > la + lb, "output:\n%s", out);
    int ab = strncmp(out, a, la) == 0 && strncmp(out + la, b, lb) == 0;
    int ba = strncmp(out, b, lb) == 0 && strncmp(out + lb, a, la) == 0;
    cr_assert(ab || ba, "landing lines missing:\n%s", out);

    char *expected;
    cr_assert(asprintf(&expected,
                       "example/first <- a_step: int64, rank 0, 8 bytes, fnv1a64 %016" PRIx64 "\n"
                       "example/half <- b_dense/kernel: float, rank 2, 24 bytes, fnv1a64 %016"
                       PRIx64 "\n",
                       fnv1a64(&step_value, 8), fnv1a64(kernel_values, 24)) > 0);
    cr_assert_str_eq(out + la + lb, expected);
    free(expected);
    free(out);
    free(errout);
    free(cmd);
    free(prefix);
    tu_rmtree(dir);
}

Test(install, example_restore_reports_a_missing_checkpoint)
{
    char *cmd, *out = NULL, *errout = NULL;
    cr_assert(asprintf(&cmd, "'%s' /nonexistent/trestle/ckpt", TRESTLE_EXAMPLE_PATH) > 0);
    cr_assert_eq(tu_run(cmd, &out, &errout), 1);
    cr_assert(strstr(errout, "E_NOT_FOUND") != NULL, "stderr: %s", errout);
    cr_assert_str_empty(out);
    free(out);
    free(errout);
    free(cmd);
}

/* ---- the installed package ---- */

Test(install, installs_library_header_and_package_files)
{
    require_tool(TRESTLE_CMAKE_COMMAND);
    char *prefix = install_into_temp(), *cmd;
    static const char *const files[] = {
        "include/trestle.h", "include/trestle_graph.h", "include/trestle_version.h",
        "lib/libtrestle.a", "lib/libtrestle.so", "lib/pkgconfig/trestle.pc",
        "lib/cmake/trestle/trestleConfig.cmake",
        "lib/cmake/trestle/trestleConfigVersion.cmake", "lib/cmake/trestle/trestleTargets.cmake",
        "bin/trestle", "lib/trestle-static/libtrestle.a", "lib/pkgconfig/trestle-libdir.pc",
    };
    static const char *const mpi_files[] = {
        "include/trestle_mpi.h", "lib/libtrestle_mpi.so", "lib/pkgconfig/trestle_mpi.pc",
        "lib/cmake/trestle/trestleMpiTargets.cmake", "bin/trestle-mpi",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        cr_assert(asprintf(&cmd, "test -e '%s/%s' || test -e '%s/lib64/%s'", prefix, files[i],
                           prefix, files[i] + 4) > 0);
        cr_expect_eq(tu_run(cmd, NULL, NULL), 0, "not installed: %s", files[i]);
        free(cmd);
    }
    for (size_t i = 0; TRESTLE_MPIEXEC[0] && i < sizeof mpi_files / sizeof mpi_files[0]; i++) {
        cr_assert(asprintf(&cmd, "test -e '%s/%s' || test -e '%s/lib64/%s'", prefix,
                           mpi_files[i], prefix, mpi_files[i] + 4) > 0);
        cr_expect_eq(tu_run(cmd, NULL, NULL), 0, "not installed: %s", mpi_files[i]);
        free(cmd);
    }
    tu_rmtree(prefix);
    free(prefix);
}

/* find_package(trestle 0.2 REQUIRED) finds the install, as this build's
 * version; trestle.h and trestle_graph.h programs build and run against it. */
Test(install, find_package_consumer_builds_and_restores)
{
    require_tool(TRESTLE_CMAKE_COMMAND);
    char *prefix = install_into_temp(), *dir, *ckpt = write_small_checkpoint(&dir);
    char *bdir = tu_mkdtemp(), *cmd, *out, *found, *graph = graph_consumer_expected();
    cr_assert(asprintf(&cmd,
                       "'%s' -S '%s/tests/consumer' -B '%s' -DCMAKE_BUILD_TYPE=Release "
                       "-DCMAKE_PREFIX_PATH='%s' -DCONSUMER_STATIC=ON && '%s' --build '%s'",
                       TRESTLE_CMAKE_COMMAND, TRESTLE_SOURCE_DIR, bdir, prefix,
                       TRESTLE_CMAKE_COMMAND, bdir) > 0);
    out = run_ok(cmd);
    cr_assert(asprintf(&found, "-- consumer: found trestle %s\n", TRESTLE_VERSION_STRING) > 0);
    cr_assert(strstr(out, found) != NULL, "no `%s` in the configure output:\n%s", found, out);
    free(found);
    free(out);
    free(cmd);
    static const char *const exes[] = { "consumer", "consumer_static" };
    for (int i = 0; i < 2; i++) {
        cr_assert(asprintf(&cmd, "'%s/%s' '%s'", bdir, exes[i], ckpt) > 0);
        out = run_ok(cmd);
        cr_assert_str_eq(out, "restored 3 tensors\n",
                         "%s", exes[i]);
        free(out);
        free(cmd);
    }
    static const char *const graph_exes[] = { "consumer_graph", "consumer_graph_static" };
    for (int i = 0; i < 2; i++) {
        cr_assert(asprintf(&cmd, "'%s/%s' '%s' c_bias nope", bdir, graph_exes[i], ckpt) > 0);
        out = run_ok(cmd);
        cr_assert_str_eq(out, graph, "%s", graph_exes[i]);
        free(out);
        free(cmd);
    }
    free(graph);
    /* The shared consumer runs the installed library, found through its rpath. */
    cr_assert(asprintf(&cmd, "ldd '%s/consumer' | grep -qF 'libtrestle.so.0 => %s/'", bdir,
                       prefix) > 0);
    free(run_ok(cmd));
    free(cmd);
    tu_rmtree(bdir);
    tu_rmtree(prefix);
    tu_rmtree(dir);
    free(bdir);
    free(prefix);
    free(ckpt);
}

/* pkg-config finds the install at this build's version (--modversion), and
 * trestle.h and trestle_graph.h programs build and run against it. */
Test(install, pkg_config_consumer_builds_and_restores)
{
    require_tool("pkg-config");
    require_tool("make");
    require_tool(TRESTLE_CMAKE_COMMAND);
    char *prefix = install_into_temp(), *dir, *ckpt = write_small_checkpoint(&dir);
    char *bdir = tu_mkdtemp(), *cmd, *out, *expected, *graph = graph_consumer_expected();
    /* The package's lib dir is found through pkg-config itself, so lib64 works too. */
    cr_assert(asprintf(&cmd,
                       "export PKG_CONFIG_PATH='%s/lib/pkgconfig:%s/lib64/pkgconfig'; "
                       "libdir=$(pkg-config --variable=libdir trestle) && "
                       "make -s -f '%s/tests/consumer/Makefile' SRCDIR='%s/tests/consumer' "
                       "OUT='%s/consumer' OUT_GRAPH='%s/consumer_graph' && "
                       "pkg-config --modversion trestle && "
                       "LD_LIBRARY_PATH=\"$libdir\" '%s/consumer' '%s' && "
                       "LD_LIBRARY_PATH=\"$libdir\" '%s/consumer_graph' '%s' c_bias nope && "
                       "LD_LIBRARY_PATH=\"$libdir\" ldd '%s/consumer' | "
                       "grep -qF 'libtrestle.so.0 => %s/'",
                       prefix, prefix, TRESTLE_SOURCE_DIR, TRESTLE_SOURCE_DIR, bdir, bdir, bdir,
                       ckpt, bdir, ckpt, bdir, prefix) > 0);
    out = run_ok(cmd);
    cr_assert(asprintf(&expected, "%s\nrestored 3 tensors\n%s", TRESTLE_VERSION_STRING,
                       graph) > 0);
    cr_assert_str_eq(out, expected);
    free(expected);
    free(graph);
    free(out);
    free(cmd);
    tu_rmtree(bdir);
    tu_rmtree(prefix);
    tu_rmtree(dir);
    free(bdir);
    free(prefix);
    free(ckpt);
}

/* `pkg-config --static` links libtrestle.a (issue 25: the linker took
 * libtrestle.so from the same directory): the program needs no
 * libtrestle.so at run time, checked with ldd, and restores. */
Test(install, pkg_config_static_links_the_archive)
{
    require_tool("pkg-config");
    require_tool("make");
    require_tool(TRESTLE_CMAKE_COMMAND);
    consumer_env e = consumer_begin();
    char *cmd, *out, *graph = graph_consumer_expected(), *expected;
    cr_assert(asprintf(&cmd,
                       "export PKG_CONFIG_PATH='%s/lib/pkgconfig:%s/lib64/pkgconfig'; "
                       "make -s -f '%s/tests/consumer/Makefile' SRCDIR='%s/tests/consumer' "
                       "PC_FLAGS=--static OUT='%s/consumer' OUT_GRAPH='%s/consumer_graph' && "
                       "'%s/consumer' '%s' && '%s/consumer_graph' '%s' c_bias nope && "
                       "ldd '%s/consumer' '%s/consumer_graph' | grep -c 'libtrestle'; true",
                       e.prefix, e.prefix, TRESTLE_SOURCE_DIR, TRESTLE_SOURCE_DIR, e.bdir, e.bdir,
                       e.bdir, e.ckpt, e.bdir, e.ckpt, e.bdir, e.bdir) > 0);
    out = run_ok(cmd);
    cr_assert(asprintf(&expected, "restored 3 tensors\n%s0\n", graph) > 0);
    cr_assert_str_eq(out, expected, "the static consumers still need a libtrestle*.so");
    free(expected);
    free(graph);
    free(out);
    free(cmd);
    consumer_done(&e);
}

/* ---- libtrestle_mpi, as an MPI program sees it ---- */

/* What tests/consumer/consumer_mpi.c prints on `np` ranks for the small
 * checkpoint: per rank, every tensor and the FNV-1a of their bytes in key
 * order, the same on every rank; lines sorted by rank. */
static char *mpi_consumer_expected(int np)
{
    uint64_t h = 14695981039346656037ULL;
    const unsigned char *parts[] = { (const unsigned char *)&step_value,
                                     (const unsigned char *)kernel_values,
                                     (const unsigned char *)bias_values };
    const size_t sizes[] = { sizeof step_value, sizeof kernel_values, sizeof bias_values };
    for (int i = 0; i < 3; i++)
        for (size_t b = 0; b < sizes[i]; b++)
            h = (h ^ parts[i][b]) * 1099511628211ULL;
    char *s = strdup(""), *next;
    for (int r = 0; r < np; r++) {
        cr_assert(asprintf(&next, "%srank %d of %d: restored 3 tensors, fnv1a64 %016" PRIx64
                                  "\n", s, r, np, h) > 0);
        free(s);
        s = next;
    }
    return s;
}

/* mpirun -np 2 of an installed MPI consumer; its lines, sorted. */
static char *run_mpi_consumer(const char *exe, const char *libdir, const char *ckpt)
{
    char *cmd;
    cr_assert(asprintf(&cmd, "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                             "LD_LIBRARY_PATH='%s' timeout 120 '%s' --oversubscribe -np 2 "
                             "'%s' '%s' | sort", libdir, TRESTLE_MPIEXEC, exe, ckpt) > 0);
    char *out = run_ok(cmd);
    free(cmd);
    return out;
}

static void require_mpi(void)
{
    if (!TRESTLE_MPIEXEC[0])
        cr_skip_test("MPI was not found at build time: libtrestle_mpi is not built");
}

/* trestle_mpi.pc brings libtrestle_mpi, libtrestle and MPI's own flags. */
Test(install, mpi_consumer_builds_through_pkg_config)
{
    require_mpi();
    require_tool("pkg-config");
    require_tool("make");
    require_tool(TRESTLE_CMAKE_COMMAND);
    consumer_env e = consumer_begin();
    char *cmd, *exe, *libdir, *out, *version, *want = mpi_consumer_expected(2);
    cr_assert(asprintf(&cmd,
                       "export PKG_CONFIG_PATH='%s/lib/pkgconfig:%s/lib64/pkgconfig'; "
                       "pkg-config --modversion trestle_mpi && "
                       "make -s -f '%s/tests/consumer/Makefile' SRCDIR='%s/tests/consumer' "
                       "OUT_MPI='%s/consumer_mpi' mpi",
                       e.prefix, e.prefix, TRESTLE_SOURCE_DIR, TRESTLE_SOURCE_DIR, e.bdir) > 0);
    out = run_ok(cmd);
    cr_assert(asprintf(&version, "%s\n", TRESTLE_VERSION_STRING) > 0);
    cr_assert_str_eq(out, version);
    free(version);
    free(out);
    free(cmd);
    cr_assert(asprintf(&exe, "%s/consumer_mpi", e.bdir) > 0);
    cr_assert(asprintf(&libdir, "%s/lib:%s/lib64", e.prefix, e.prefix) > 0);
    out = run_mpi_consumer(exe, libdir, e.ckpt);
    cr_assert_str_eq(out, want);
    free(out);
    free(want);
    free(exe);
    free(libdir);
    consumer_done(&e);
}

/* find_package(trestle 0.2 COMPONENTS mpi) gives trestle::trestle_mpi. */
Test(install, mpi_consumer_builds_through_find_package)
{
    require_mpi();
    require_tool(TRESTLE_CMAKE_COMMAND);
    consumer_env e = consumer_begin();
    char *cmd, *exe, *out, *want = mpi_consumer_expected(2);
    cr_assert(asprintf(&cmd,
                       "'%s' -S '%s/tests/consumer' -B '%s' -DCMAKE_BUILD_TYPE=Release "
                       "-DCMAKE_PREFIX_PATH='%s' -DCONSUMER_MPI=ON && '%s' --build '%s' "
                       "--target consumer_mpi",
                       TRESTLE_CMAKE_COMMAND, TRESTLE_SOURCE_DIR, e.bdir, e.prefix,
                       TRESTLE_CMAKE_COMMAND, e.bdir) > 0);
    free(run_ok(cmd));
    free(cmd);
    cr_assert(asprintf(&exe, "%s/consumer_mpi", e.bdir) > 0);
    out = run_mpi_consumer(exe, "", e.ckpt);   /* its rpath finds the install */
    cr_assert_str_eq(out, want);
    free(out);
    free(want);
    free(exe);
    consumer_done(&e);
}

/* ---- the version ---- */

/* Each "Since X.Y" in the public headers names a release that has the call:
 * the version (project() in CMakeLists.txt) is at least the newest of them.
 * 0.1.0 with 0.2 calls documented made find_package(trestle 0.2) fail. */
Test(version, is_at_least_every_since_in_the_public_headers)
{
    static const char *const headers[] = { "trestle.h", "trestle_graph.h", "trestle_mpi.h" };
    int newest = 0, found = 0;
    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
        char *path, line[4096];
        cr_assert(asprintf(&path, "%s/include/%s", TRESTLE_SOURCE_DIR, headers[h]) > 0);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        while (fgets(line, sizeof line, f))
            for (char *s = line; (s = strcasestr(s, "since ")) != NULL; s++) {
                int major, minor;
                if (sscanf(s + 6, "%d.%d", &major, &minor) == 2) {
                    found++;
                    if (major * 100 + minor > newest)
                        newest = major * 100 + minor;
                }
            }
        fclose(f);
        free(path);
    }
    cr_assert_gt(found, 0, "no \"Since X.Y\" in the public headers");
    cr_assert_geq(TRESTLE_VERSION_MAJOR * 100 + TRESTLE_VERSION_MINOR, newest,
                  "the headers document calls since %d.%d, the version is %s", newest / 100,
                  newest % 100, TRESTLE_VERSION_STRING);
}

/* The library reports the version its header was generated with. */
Test(version, library_and_header_agree)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TRESTLE_VERSION_MAJOR, TRESTLE_VERSION_MINOR,
             TRESTLE_VERSION_PATCH);
    cr_assert_str_eq(TRESTLE_VERSION_STRING, want);
    cr_assert_str_eq(trestle_version_string(), TRESTLE_VERSION_STRING);
    cr_assert_eq(trestle_version_number(), TRESTLE_VERSION_NUMBER);
}
