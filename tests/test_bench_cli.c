/*
 * test_bench_cli.c - `trestle bench`, run as a user runs it: on a small
 * synthetic checkpoint, every figure the command promises is printed
 * (stages with min, median and max, each against its yardstick, every
 * repeat, first tensor, peak RSS, the machine and the build, every
 * yardstick, "n/a" with its reason for what this machine cannot
 * measure), in text and in JSON, which is checked by Python's json module;
 * no ratio to a ceiling is above 1, and a stage that moved nothing says so
 * instead of giving a rate. Bad command lines exit 2. Speeds are not
 * checked: they belong to the machine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

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
    char *out, *err, want[256];
    int rc = bench("--synthetic 64M,2 --host --repeat 2", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    const char *labels[] = {
        "STAGE", "MIN S", "MEDIAN S", "MAX S", "MEDIAN GB/S", "AGAINST", "\nread ",
        "\nverify ", "\ncopy ", "\ntotal ", " x plain read\n", " of CRC32C per core",
        "\neach repeat, total seconds: ", "\nfirst tensor: ", " s min, ", " s median, ",
        " s max\n", "\npeak RSS: ", "\nyardsticks (same run; GB/s: the median run of a reader, "
        "the best of a ceiling):\n", "  plain read ", "  O_DIRECT read ", "  CRC32C per core ",
        "  memcpy per core ", "host-to-device, pinned", "host-to-device, pageable",
        "cache: warm", "1 thread opens each shard in turn and read()s it in 1 MiB blocks into "
        "a page-aligned buffer, as dd bs=1M; warm page cache, median of 5; runs: ",
        "crc32_iscsi (ISA-L, the engine's CRC32C) of 8 MiB staging buffers in 256 KiB steps, "
        "timed per step as the workers are, 1 thread, best of 5; runs: ",
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        cr_assert(strstr(out, labels[i]), "'%s' missing from:\n%s", labels[i], out);
    /* The machine and the build the figures belong to. */
    snprintf(want, sizeof want, ", %ld cores, ", sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert(strstr(out, "\nmachine: ") && strstr(out, want), "%s", out);
    cr_assert(strstr(out, " memory, Linux ") && strstr(out, "; shards on "), "%s", out);
    snprintf(want, sizeof want, "\ntrestle %s, ", trestle_version_string());
    cr_assert(strstr(out, want) && strstr(out, " build\n"), "%s", out);
    cr_assert(strstr(out, "unknown build") == NULL, "CMake names the build type: %s", out);
    if (!has_device(out)) {
        cr_assert(strstr(out, "host-to-device, pinned     n/a (no CUDA device)"), "%s", out);
        cr_assert(strstr(out, "host-to-device, pageable   n/a (no CUDA device)"), "%s", out);
    }
    /* One rate convention in every command: GB/s. */
    cr_assert(strstr(out, "GiB/s") == NULL, "%s", out);
    /* The synthetic checkpoint is announced on stderr, keeping stdout for results. */
    cr_assert(strstr(err, "wrote 290 tensors"), "%s", err);
    free(out);
    free(err);
}

/*
 * Check `json` with Python's json module and the assertions `py` (Python
 * statements over d, the parsed object). Fails the test with Python's
 * message.
 */
static void check_json(const char *json, const char *py)
{
    char *dir = tu_mkdtemp(), path[4200], script[4300], cmd[9000], *out, *err;
    snprintf(path, sizeof path, "%s/out.json", dir);
    snprintf(script, sizeof script, "%s/check.py", dir);
    cr_assert_eq(tu_write_file(path, json, strlen(json)), 0);
    char prog[8192];
    snprintf(prog, sizeof prog, "import json, os, sys\nd = json.load(open(sys.argv[1]))\n%s\n",
             py);
    cr_assert_eq(tu_write_file(script, prog, strlen(prog)), 0);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, path);
    int rc = tu_run(cmd, &out, &err);
    cr_assert_eq(rc, 0, "%s%s\nin:\n%s", out, err, json);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}

/* Every stage's and yardstick's figures, each repeat's too; ratios to a
 * ceiling at most 1. */
static const char bench_json_checks[] =
    "assert d['command'] == 'bench'\n"
    "st = d['stats']\n"
    "k = st['repeats']\n"
    "assert k == 3 and st['tensors'] == 290 and st['verify'] is True\n"
    "for name in ('read', 'verify', 'copy', 'total'):\n"
    "    s = st['stages'][name]\n"
    "    assert len(s['seconds']['each']) == k and len(s['gbps']['each']) == k, name\n"
    "    if s['ran']:\n"
    "        assert s['seconds']['min'] <= s['seconds']['median'] <= s['seconds']['max'], name\n"
    "        assert s['gbps']['min'] <= s['gbps']['median'] <= s['gbps']['max'], name\n"
    "        assert s['note'] is None, name\n"
    "    else:\n"
    "        assert s['gbps']['median'] is None and s['note'].startswith('none'), name\n"
    "    a = d['against'][name]\n"
    "    assert a['kind'] in ('reference', 'ceiling'), a\n"
    "    if a['kind'] == 'ceiling' and a['ratio'] is not None:\n"
    "        assert 0 < a['ratio'] <= 1, (name, a)\n"
    "        assert a['capped'] == (a['above_ceiling_by'] is not None), a\n"
    "assert d['against']['read']['yardstick'] == 'plain_read'\n"
    "assert d['against']['verify']['yardstick'] == 'crc32c_per_core'\n"
    "assert d['against']['copy']['yardstick'] == 'memcpy_per_core'\n"
    "assert len(st['first_tensor_seconds']['each']) == k\n"
    "y = d['yardsticks']\n"
    "assert y['plain_read']['kind'] == 'reference' and len(y['plain_read']['each_gbps']) == 5\n"
    "for c in ('crc32c_per_core', 'memcpy_per_core'):\n"
    "    assert y[c]['kind'] == 'ceiling' and len(y[c]['each_gbps']) == 5, c\n"
    "    assert y[c]['gbps'] == max(y[c]['each_gbps']), c\n"
    "assert y['h2d_pinned']['kind'] == 'ceiling'\n"
    "m = d['machine']\n"
    "assert m['cores'] == os.cpu_count() and m['memory_bytes'] > 0, m\n"
    "u = os.uname()\n"
    "assert m['kernel'] == '%s %s %s' % (u.sysname, u.release, u.machine), m\n"
    "assert m['cpu'] and m['filesystem'] not in ('', 'unknown'), m\n"
    "assert d['trestle']['build_type'] not in ('', 'unknown'), d['trestle']\n";

Test(bench_cli, json_has_every_figure_of_every_repeat)
{
    char *out, *err, py[sizeof bench_json_checks + 128];
    int rc = bench("--synthetic 64M,2 --host --repeat 3 --json", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert_eq(out[0], '{', "%s", out);
    snprintf(py, sizeof py, "%sassert d['trestle']['version'] == '%s'\n", bench_json_checks,
             trestle_version_string());
    check_json(out, py);
    const char *keys[] = {
        "\"synthetic\": {\"size\": 67108864, \"shards\": 2", "\"destination\": \"host\"",
        "\"host_map\": false", "\"cold\": false", "\"device_startup_seconds\": null",
        "\"peak_rss_bytes\":",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(strstr(out, keys[i]), "%s missing from:\n%s", keys[i], out);
    if (!has_device(out))
        cr_assert(strstr(out, "\"h2d_pinned\": {\"kind\": \"ceiling\", \"gbps\": null"), "%s",
                  out);
    cr_assert(strstr(out, "STAGE") == NULL, "no table in JSON mode");
    free(out);
    free(err);
}

/*
 * --map leaves every tensor in the page cache: nothing is read by a read
 * call and nothing copied. Both stages say so instead of dividing the
 * bytes by a near-zero time (the bench printed "copy 585.93 GB/s, 36.73 x
 * memcpy per core"). On tmpfs, where every byte is always cached.
 */
Test(bench_cli, map_has_no_read_and_no_copy_to_rate)
{
    struct stat st;
    if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode))
        cr_skip_test("no /dev/shm to keep the checkpoint cached");
    setenv("TMPDIR", "/dev/shm", 1); /* where --synthetic writes */
    char *out, *err;
    int rc = bench("--synthetic 64M,2 --map --repeat 2 --json", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    check_json(out,
               "st = d['stats']\n"
               "assert d['host_map'] is True and st['tensors'] == 290\n"
               "r, c = st['stages']['read'], st['stages']['copy']\n"
               "assert r['ran'] is False and r['bytes'] == 0, r\n"
               "assert r['mapped_bytes'] == st['bytes'], r\n"
               "assert r['note'] == 'none: all %.2f MiB mapped from the page cache' % "
               "(st['bytes'] / 2**20), r\n"
               "assert c['ran'] is False and c['bytes'] == 0 and c['in_place_bytes'] == "
               "st['bytes'], c\n"
               "assert c['note'] == 'none: all %.2f MiB read straight into place' % "
               "(st['bytes'] / 2**20), c\n"
               "assert r['gbps']['each'] == [None, None] and c['gbps']['each'] == [None, None]\n"
               "assert d['against']['copy']['ratio'] is None, d['against']\n"
               "assert d['against']['read']['ratio'] is None, d['against']\n"
               "assert st['stages']['verify']['ran'] and st['stages']['total']['ran']\n");
    free(out);
    free(err);
    /* The table says it too. */
    rc = bench("--synthetic 64M,2 --map --repeat 1", &out, &err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert(strstr(out, "  n/a: none: all ") && strstr(out, " MiB mapped from the page cache\n"),
              "%s", out);
    cr_assert(strstr(out, " MiB read straight into place\n"), "%s", out);
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
    cr_assert(strstr(out, "as dd bs=1M; cold page cache, median of 3; runs: "), "%s", out);
    cr_assert(strstr(out, " x plain read\n") || strstr(out, " x O_DIRECT read\n"), "%s", out);
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
