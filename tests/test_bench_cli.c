/*
 * test_bench_cli.c - `trestle bench`, run as a user runs it: on a small
 * synthetic checkpoint, every figure the command promises is printed
 * (stages, first tensor, peak RSS, every ceiling, "n/a" with its reason for
 * what this machine cannot measure), in text and in JSON, and bad command
 * lines exit 2. Numbers are not checked: they belong to the machine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* Run `trestle bench <args>`; returns the exit status, output in *out/*err. */
static int bench(const char *args, char **out, char **err)
{
    tu_cli_result r = tu_cli("bench %s", args);
    *out = r.out;
    *err = r.err;
    return r.rc;
}

/* 1 when the CLI's library was built with CUDA and sees a device. */
static int has_device(const char *out)
{
    return strstr(out, "no CUDA device") == NULL;
}

Test(bench_cli, synthetic_host_prints_every_figure)
{
    char *out, *err;
    int rc = bench("--synthetic 64M,2 --host --repeat 1", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    const char *labels[] = {
        "STAGE", "BEST GB/S", "MEDIAN GB/S", "VS CEILING", "\nread ", "\nverify ", "\ncopy ",
        "\ntotal ", "x raw buffered read", "x CRC32C per core", "first tensor: ", "peak RSS: ",
        "ceilings (same run):", "raw read, buffered", "raw read, O_DIRECT", "CRC32C per core",
        "memcpy per core", "host-to-device, pinned", "host-to-device, pageable", "cache: warm",
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        cr_assert(strstr(out, labels[i]), "'%s' missing from:\n%s", labels[i], out);
    if (!has_device(out)) {
        cr_assert(strstr(out, "host-to-device, pinned     n/a (no CUDA device)"), "%s", out);
        cr_assert(strstr(out, "host-to-device, pageable   n/a (no CUDA device)"), "%s", out);
    }
    /* The synthetic checkpoint is announced on stderr, keeping stdout for results. */
    cr_assert(strstr(err, "wrote 290 tensors"), "%s", err);
    free(out);
    free(err);
}

Test(bench_cli, json_has_every_key)
{
    char *out, *err;
    int rc = bench("--synthetic 64M,2 --host --repeat 1 --json", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert_eq(out[0], '{', "%s", out);
    const char *keys[] = {
        "\"path\":", "\"synthetic\": {\"size\": 67108864, \"shards\": 2",
        "\"destination\": \"host\"", "\"host_map\": false",
        "\"cold\": false", "\"cache\":", "\"repeats\": 1", "\"tensors\": 290", "\"bytes\":",
        "\"reader\":", "\"direct_reads\":", "\"stages\":", "\"read\": {", "\"verify\": {",
        "\"copy\": {", "\"total\": {", "\"best_seconds\":", "\"median_seconds\":",
        "\"best_gbps\":", "\"median_gbps\":", "\"ratio\":", "\"first_tensor_seconds\":",
        "\"device_startup_seconds\": null", "\"peak_rss_bytes\":", "\"ceilings\":", "\"raw_read_buffered\":", "\"raw_read_direct\":",
        "\"crc32c_per_core\":", "\"memcpy_per_core\":", "\"h2d_pinned\":", "\"h2d_pageable\":",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(strstr(out, keys[i]), "%s missing from:\n%s", keys[i], out);
    if (!has_device(out))
        cr_assert(strstr(out, "\"h2d_pinned\": {\"gbps\": null"), "%s", out);
    cr_assert(strstr(out, "STAGE") == NULL, "no table in JSON mode");
    free(out);
    free(err);
}

Test(bench_cli, map_is_passed_to_the_restore)
{
    char *out, *err;
    int rc = bench("--synthetic 64M,2 --map --repeat 1 --json", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert(strstr(out, "\"host_map\": true"), "%s", out);
    cr_assert(strstr(out, "\"tensors\": 290"), "%s", out);
    free(out);
    free(err);
}

/*
 * --cold drops the page cache before each repeat and each raw-read
 * ceiling: through /proc/sys/vm/drop_caches where this process may write
 * it (root outside a container), else with fadvise on the checkpoint's own
 * files, naming why drop_caches was refused. The same probe here tells
 * which of the two must be reported, so each outcome is asserted exactly;
 * "NOT dropped" is always a failure, since fadvise cannot be refused on
 * files the bench wrote itself. How much stays cached depends on the file
 * system (tmpfs keeps everything), so only its form is checked.
 */
Test(bench_cli, cold_drops_the_cache_and_says_how)
{
    char want[512], *out, *err;
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        snprintf(want, sizeof want, "cache: page cache dropped with /proc/sys/vm/drop_caches (");
    } else {
        snprintf(want, sizeof want, "cache: page cache dropped with fadvise (no permission for "
                 "drop_caches: %s; ", strerror(errno));
    }
    int rc = bench("--synthetic 64M,1 --cold --repeat 1", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    const char *line = strstr(out, "\ncache: ");
    cr_assert(line, "no cache line in:\n%s", out);
    cr_assert(tu_starts_with(line + 1, want), "expected '%s...' in:\n%s", want, out);
    int pct = -1, end = 0;
    sscanf(line + 1 + strlen(want), "%d%% of shard bytes still cached)%n", &pct, &end);
    cr_assert(end > 0 && pct >= 0 && pct <= 100, "no share still cached after '%s' in:\n%s",
              want, out);
    /* The cold figures: the buffered ceiling was read cold, and the read
     * stage is held against the faster of the two cold raw reads. */
    cr_assert(strstr(out, "(read() of 1 MiB blocks, 1 thread, cold page cache)"), "%s", out);
    cr_assert(strstr(out, "x raw buffered read") || strstr(out, "x raw O_DIRECT read"), "%s",
              out);
    cr_assert(strstr(out, "NOT dropped") == NULL, "%s", out);
    free(out);
    free(err);
}

Test(bench_cli, existing_checkpoint_path)
{
    char *dir = tu_mkdtemp(), cmd[2048], *out, *err;
    snprintf(cmd, sizeof cmd, "'%s' synth '%s/ckpt' --size 16M --shards 1", TRESTLE_CLI_PATH, dir);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s/ckpt' --repeat 2", dir);
    int rc = bench(cmd, &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert(strstr(out, "2 repeats"), "%s", out);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}

Test(bench_cli, bad_command_lines_exit_2)
{
    const char *bad[] = { "", "--synthetic nope", "--synthetic 64M,0", "--repeat 0 x",
                          "--device -1 x", "a b", "--synthetic 64M x", "--frob x",
                          "--device 0 --map x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out, *err;
        int rc = bench(bad[i], &out, &err);
        cr_assert_eq(rc, 2, "'bench %s' exited %d: %s", bad[i], rc, err);
        cr_assert(strstr(err, "trestle: bench: "), "%s", err);
        free(out);
        free(err);
    }
}

Test(bench_cli, missing_checkpoint_fails)
{
    char *out, *err;
    int rc = bench("/nonexistent/ckpt --repeat 1", &out, &err);
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert(strncmp(err, "trestle: ", 9) == 0, "%s", err);
    free(out);
    free(err);
}
