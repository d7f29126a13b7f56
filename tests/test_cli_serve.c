/*
 * test_cli_serve.c - `trestle serve`, `trestle preload` and `trestle
 * restore --server` as a user sees them: exact lines for the server's
 * start, stop and refusal of a live socket, --daemon's return and pid
 * file, the preload, --list and --evict outputs, --checksum lines equal to
 * a plain restore's, the note when nothing resident fits, the default
 * socket ($XDG_RUNTIME_DIR, else /run/trestle), a real checkpoint's part
 * chosen by --graph or --ops, bench --server, the usage errors and the
 * help.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "servetest.h"
#include "testutil.h"

/* The lines of `s` from the first starting with `prefix` (NULL: none). */
static const char *from_line(const char *s, const char *prefix)
{
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (tu_starts_with(p, prefix))
            return p;
    return NULL;
}

/* The pid in a pid file ("1234\n"). */
static pid_t read_pid(const char *path)
{
    size_t len;
    uint8_t *p = tu_read_file(path, &len);
    cr_assert_not_null(p, "no pid file %s", path);
    char text[32] = "";
    memcpy(text, p, len < sizeof text - 1 ? len : sizeof text - 1);
    free(p);
    return (pid_t)atoi(text);
}

Test(cli_serve, stops_cleanly_on_sigterm_and_refuses_a_live_socket)
{
    char *dir = tu_mkdtemp();
    st_server s;
    st_start(&s, dir, NULL);
    tu_cli_result r = tu_cli("serve --socket '%s'", s.sock);
    cr_assert_eq(r.rc, 1);
    char want[600];
    snprintf(want, sizeof want, "trestle: another trestle server answers on %s: stop it first, "
             "or give this one another --socket\n", s.sock);
    cr_assert_str_eq(r.err, want);
    tu_cli_free(&r);
    pid_t pid = s.pid;
    cr_assert_eq(st_stop(&s), 0, "a stop on SIGTERM is exit 0");
    struct stat st;
    cr_assert_neq(stat(s.sock, &st), 0, "the socket file was left behind");
    char *log = st_log(&s);
    snprintf(want, sizeof want, "trestle serve: listening on %s (mode 0600), pid %d: started "
             "empty (resident memory does not outlive the server that held it)\n", s.sock,
             (int)pid);
    cr_assert(strstr(log, want), "%s", log);
    cr_assert(strstr(log, "trestle serve: stopping: 0 connections closed, every entry dropped "
                          "(clients' mappings stay valid)\n"), "%s", log);
    cr_assert(strstr(log, "trestle serve: stopped (SIGTERM)\n"), "%s", log);
    free(log);
    tu_rmtree(dir);
    free(dir);
}

Test(cli_serve, daemon_returns_once_listening_and_keeps_a_pid_file)
{
    char *dir = tu_mkdtemp();
    char sock[300], log[300], pidf[300];
    snprintf(sock, sizeof sock, "%s/d.sock", dir);
    snprintf(log, sizeof log, "%s/d.log", dir);
    snprintf(pidf, sizeof pidf, "%s/d.pid", dir);
    tu_cli_result r = tu_cli("serve --daemon --socket '%s' --log '%s' --pidfile '%s'", sock, log,
                             pidf);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    int pid = (int)read_pid(pidf);
    char want[400];
    snprintf(want, sizeof want, "trestle serve: listening on %s, pid %d\n", sock, pid);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);
    r = tu_cli("preload --list --socket '%s'", sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(tu_starts_with(r.out, "nothing resident (server pid "), "%s", r.out);
    tu_cli_free(&r);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    struct stat st;
    for (int i = 0; i < 500 && stat(pidf, &st) == 0; i++)
        usleep(10000);
    cr_assert_neq(stat(pidf, &st), 0, "the pid file outlived the server");
    cr_assert_neq(stat(sock, &st), 0);
    tu_rmtree(dir);
    free(dir);
}

Test(cli_serve, preload_list_restore_and_evict)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 12, 3);
    const char *extra[] = { "--no-huge-pages", NULL };
    st_server s;
    st_start(&s, dir, extra);
    tu_cli_result r = tu_cli("preload '%s' --socket '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char want[600];
    snprintf(want, sizeof want, "preloaded 14 tensors, 448.02 KiB onto the host tier (ordinary "
             "pages) of %s in ", s.sock);
    cr_assert(tu_starts_with(r.out, want), "%s", r.out);
    cr_assert(strstr(r.out, " GB/s, every byte CRC-checked\n"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("preload --list --socket '%s'", s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(tu_starts_with(r.out, "PATH"), "%s", r.out);
    const char *row = from_line(r.out, ck);
    cr_assert_not_null(row, "%s", r.out);
    cr_assert(strstr(row, "  host       14  448.02 KiB        0  "), "%s", row);
    cr_assert(strstr(row, "  yes       index "), "%s", row);
    cr_assert(strstr(row, ", 3 shards\n"), "%s", row);
    cr_assert_not_null(from_line(r.out, "server pid "), "%s", r.out);
    cr_assert(strstr(r.out, ": host tier 452.00 KiB held (no cap), device tier 0 B; 1 "
                            "connection\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("preload --list --json --socket '%s'", s.sock);
    cr_assert_eq(r.rc, 0);
    snprintf(want, sizeof want, "{\"path\": \"%s\", \"tier\": \"host\", \"device\": -1, "
             "\"tensors\": 14, ", ck);
    cr_assert(strstr(r.out, want), "%s", r.out);
    tu_cli_free(&r);

    /* The resident bytes' checksums are a plain restore's. */
    tu_cli_result plain = tu_cli("restore '%s' --checksum", ck);
    r = tu_cli("restore '%s' --checksum --server '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    snprintf(want, sizeof want, "attached 14 tensors, 448.02 KiB from the trestle server on %s in ",
             s.sock);
    cr_assert(tu_starts_with(r.out, want), "%s", r.out);
    cr_assert(strstr(r.out, " s (resident on the host tier, mapped read-only; nothing read from "
                            "storage)\n"), "%s", r.out);
    const char *a = from_line(r.out, "fnv1a64 "), *b = from_line(plain.out, "fnv1a64 ");
    cr_assert(a && b);
    cr_assert_str_eq(a, b);
    tu_cli_free(&plain);
    tu_cli_free(&r);
    /* --list prints restore's table. */
    plain = tu_cli("restore '%s' --list -q", ck);
    r = tu_cli("restore '%s' --list -q --server '%s'", ck, s.sock);
    cr_assert_str_eq(r.out, plain.out);
    tu_cli_free(&plain);
    tu_cli_free(&r);

    r = tu_cli("preload --evict '%s' --socket '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "evicted 1 entry, 452.00 KiB\n");
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --server '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0);
    snprintf(want, sizeof want, "trestle: not resident: %s is not resident on this server; "
             "restoring from storage\n", ck);
    cr_assert_str_eq(r.err, want);
    cr_assert(tu_starts_with(r.out, "restored 14 tensors, 448.02 KiB in "), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("preload --evict-all --socket '%s'", s.sock);
    cr_assert_str_eq(r.out, "nothing to evict\n");
    tu_cli_free(&r);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(cli_serve, as_dtype_preloads_and_attaches_converted)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    st_server s;
    st_start(&s, dir, NULL);
    tu_cli_result r = tu_cli("preload '%s' --as bfloat16 --socket '%s' -q", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    tu_cli_free(&r);
    tu_cli_result plain = tu_cli("restore '%s' --as bfloat16 --checksum", ck);
    r = tu_cli("restore '%s' --as bfloat16 --checksum --server '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(tu_starts_with(r.out, "attached 5 tensors"), "%s", r.out);
    cr_assert_str_eq(from_line(r.out, "fnv1a64 "), from_line(plain.out, "fnv1a64 "));
    tu_cli_free(&plain);
    tu_cli_free(&r);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* A part of a real TensorFlow checkpoint, chosen by its graph (or by the
 * ops file the graph prints, which is the same selection), preloaded and
 * attached with the same option; the whole checkpoint is another
 * selection. */
Test(cli_serve, graph_and_ops_preload_what_they_restore)
{
    const char *g = tu_fixture("tf-graphs/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta");
    const char *ck = tu_fixture("tf-real/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000");
    char *dir = tu_mkdtemp();
    char ops[300], want[900];
    snprintf(ops, sizeof ops, "%s/ops.txt", dir);
    tu_cli_result r = tu_cli("ops --graph '%s' > '%s'", g, ops);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    st_server s;
    st_start(&s, dir, NULL);
    r = tu_cli("preload '%s' --graph '%s' --socket '%s'", ck, g, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(tu_starts_with(r.out, "preloaded 51 tensors, 123.22 KiB onto the host tier"), "%s",
              r.out);
    tu_cli_free(&r);
    tu_cli_result plain = tu_cli("restore '%s' --graph '%s' --checksum", ck, g);
    cr_assert_eq(plain.rc, 0, "%s", plain.err);
    const char *how[] = { "--graph", "--ops" };
    const char *what[] = { g, ops };
    for (int i = 0; i < 2; i++) {
        r = tu_cli("restore '%s' %s '%s' --checksum --server '%s'", ck, how[i], what[i], s.sock);
        cr_assert_eq(r.rc, 0, "%s", r.err);
        cr_assert_str_eq(r.err, "", "%s", how[i]);
        snprintf(want, sizeof want, "attached 51 tensors, 123.22 KiB from the trestle server on "
                 "%s in ", s.sock);
        cr_assert(tu_starts_with(r.out, want), "%s: %s", how[i], r.out);
        cr_assert_str_eq(from_line(r.out, "fnv1a64 "), from_line(plain.out, "fnv1a64 "));
        tu_cli_free(&r);
    }
    tu_cli_free(&plain);
    r = tu_cli("restore '%s' --server '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.err, " is resident with another selection of tensors: attach with the "
                            "ops, --graph or --as it was preloaded with, or preload this one; "
                            "restoring from storage\n"), "%s", r.err);
    tu_cli_free(&r);
    st_stop(&s);
    tu_rmtree(dir);
    free(dir);
}

/* bench --server: the attach beside a fresh restore of the same
 * checkpoint, preloading it for the bench and evicting it after. */
Test(cli_serve, bench_times_the_attach_beside_a_restore)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 12, 3);
    st_server s;
    st_start(&s, dir, NULL);
    tu_cli_result r = tu_cli("bench '%s' --server '%s' --repeat 2", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char want[700];
    snprintf(want, sizeof want, "bench %s (448.02 KiB, 14 tensors) against the trestle server "
             "on %s, host tier, page cache warm, 2 repeats in turn:\n  preload (it was not "
             "resident): ", ck, s.sock);
    cr_assert(tu_starts_with(r.out, want), "%s", r.out);
    cr_assert_not_null(from_line(r.out, "  attach  (open, plan, look up, check, map read-only): "
                                        "median "), "%s", r.out);
    cr_assert_not_null(from_line(r.out, "  restore (open, plan, read, CRC-check, copy into fresh "
                                        "memory): median "), "%s", r.out);
    cr_assert_not_null(from_line(r.out, "  attach / restore: "), "%s", r.out);
    cr_assert_not_null(from_line(r.out, "  first read of every attached page ("), "%s", r.out);
    tu_cli_free(&r);
    /* Preloaded for the bench, evicted after. */
    trestle_resident_list *l = st_list(s.sock);
    cr_assert_eq(trestle_resident_list_count(l), 0);
    trestle_resident_list_free(l);
    r = tu_cli("bench '%s' --server '%s' --cold", ck, s.sock);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "trestle: bench: --server benchmarks the host tier with a warm page "
                            "cache: not with --device, --map or --cold\nTry 'trestle bench "
                            "--help' for more information.\n");
    tu_cli_free(&r);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(cli_serve, without_a_server_restore_goes_ahead_and_says_why)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    tu_cli_result r = tu_cli("restore '%s' --server '%s/none.sock'", ck, dir);
    cr_assert_eq(r.rc, 0);
    char want[600];
    snprintf(want, sizeof want, "trestle: not resident: no trestle server on %s/none.sock "
             "(connect: No such file or directory); restoring from storage\n", dir);
    cr_assert_str_eq(r.err, want);
    cr_assert(tu_starts_with(r.out, "restored 5 tensors"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("preload '%s' --socket '%s/none.sock'", ck, dir);
    cr_assert_eq(r.rc, 1);
    snprintf(want, sizeof want, "trestle: no trestle server on %s/none.sock (connect: No such "
             "file or directory)\n", dir);
    cr_assert_str_eq(r.err, want);
    tu_cli_free(&r);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Without --socket, every command finds the same socket:
 * $XDG_RUNTIME_DIR/trestle.sock, else /run/trestle/trestle.sock. */
Test(cli_serve, the_default_socket_is_in_xdg_runtime_dir_else_run_trestle)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    char rt[300], sock[320], pidf[320], log[320], want[700];
    snprintf(rt, sizeof rt, "%s/runtime", dir);
    cr_assert_eq(mkdir(rt, 0700), 0);
    snprintf(sock, sizeof sock, "%s/trestle.sock", rt);
    snprintf(pidf, sizeof pidf, "%s/serve.pid", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    cr_assert_eq(setenv("XDG_RUNTIME_DIR", rt, 1), 0); /* this test's process and its children */
    tu_cli_result r = tu_cli("serve --daemon --log '%s' --pidfile '%s'", log, pidf);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    snprintf(want, sizeof want, "trestle serve: listening on %s, pid ", sock);
    cr_assert(tu_starts_with(r.out, want), "%s", r.out);
    tu_cli_free(&r);
    pid_t pid = read_pid(pidf);

    r = tu_cli("preload '%s'", ck);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    snprintf(want, sizeof want, " of %s in ", sock);
    cr_assert(strstr(r.out, want), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --server default", ck);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    snprintf(want, sizeof want, "attached 5 tensors, 42.24 KiB from the trestle server on %s in ",
             sock);
    cr_assert(tu_starts_with(r.out, want), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("preload --list");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_not_null(from_line(r.out, ck), "%s", r.out);
    tu_cli_free(&r);
    char buf[512];
    trestle_error err;
    cr_assert_eq(trestle_server_default_socket(buf, sizeof buf, &err), TRESTLE_OK);
    cr_assert_str_eq(buf, sock);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    struct stat st;
    for (int i = 0; i < 500 && stat(pidf, &st) == 0; i++)
        usleep(10000);

    /* No runtime directory (or not an absolute one): /run/trestle. */
    cr_assert_eq(setenv("XDG_RUNTIME_DIR", "relative", 1), 0);
    cr_assert_eq(trestle_server_default_socket(buf, sizeof buf, &err), TRESTLE_OK);
    cr_assert_str_eq(buf, "/run/trestle/trestle.sock");
    cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
    cr_assert_eq(trestle_server_default_socket(buf, sizeof buf, &err), TRESTLE_OK);
    cr_assert_str_eq(buf, "/run/trestle/trestle.sock");
    if (stat("/run/trestle/trestle.sock", &st) == 0) {
        cr_log_warn("a trestle server runs on /run/trestle/trestle.sock: its refusal not checked");
    } else {
        r = tu_cli("restore '%s' --server default", ck);
        cr_assert_eq(r.rc, 0, "%s", r.err);
        cr_assert_str_eq(r.err, "trestle: not resident: no trestle server on "
                                "/run/trestle/trestle.sock (connect: No such file or "
                                "directory); restoring from storage\n");
        tu_cli_free(&r);
    }
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(cli_serve, usage_errors)
{
    static const struct {
        const char *args, *err;
    } cases[] = {
        { "preload", "trestle: preload: missing PATH (or --list, --evict PATH)\n" },
        { "preload --list x", "trestle: preload: --list and --evict take no PATH to preload\n" },
        { "preload --json x", "trestle: preload: --json goes with --list\n" },
        { "preload --list --evict-all", "trestle: preload: --list, --evict and --evict-all "
                                        "exclude each other\n" },
        { "preload x --ops o --as bfloat16", "trestle: preload: --ops, --graph and --as exclude "
                                             "each other\n" },
        { "restore x --server s --map", "trestle: restore: --server attaches to one tier: --host "
                                        "or --device N, without --map or --shard\n" },
        { "serve --host-cap lots", "trestle: serve: --host-cap wants a size such as 64G, not "
                                   "'lots'\n" },
        { "serve --group no-such-group-here", "trestle: serve: --group wants a group name or "
                                              "number; no group 'no-such-group-here'\n" },
        { "serve extra", "trestle: serve: unexpected argument 'extra'\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_cli_result r = tu_cli("%s", cases[i].args);
        cr_assert_eq(r.rc, 2, "%s", cases[i].args);
        const char *cmd = strchr(cases[i].args, ' ') ? cases[i].args : cases[i].args;
        char want[400];
        int n = (int)strcspn(cmd, " ");
        snprintf(want, sizeof want, "%sTry 'trestle %.*s --help' for more information.\n",
                 cases[i].err, n, cmd);
        cr_assert_str_eq(r.err, want, "%s", cases[i].args);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("help");
    cr_assert(strstr(r.out, "  serve     run the per-host server that keeps checkpoints resident "
                            "in memory\n"), "%s", r.out);
    cr_assert(strstr(r.out, "  preload   make a checkpoint resident on the server; --list, "
                            "--evict\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("serve --help");
    cr_assert_eq(r.rc, 0);
    cr_assert(tu_starts_with(r.out, "Usage: trestle serve [OPTIONS]\n"));
    cr_assert(strstr(r.out, "      --socket PATH      listen on PATH (default: "
                            "$XDG_RUNTIME_DIR/trestle.sock,\n"), "%s", r.out);
    cr_assert(strstr(r.out, "\nSecurity: every connection's peer is checked (SO_PEERCRED)"),
              "%s", r.out);
    tu_cli_free(&r);
    /* preload's help: its three forms, what to preload, where, what is resident. */
    r = tu_cli("preload --help");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.err, "");
    cr_assert(tu_starts_with(r.out, "Usage: trestle preload [OPTIONS] PATH\n"
                                    "       trestle preload --list [--json] [--socket S]\n"
                                    "       trestle preload --evict PATH|--evict-all [--socket "
                                    "S]\n"), "%s", r.out);
    cr_assert(strstr(r.out, "\nWhat to preload (as for 'trestle restore'):\n"), "%s", r.out);
    cr_assert(strstr(r.out, "      --device N[,M...]  CUDA device memory on each listed GPU"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\nWhat is resident:\n      --list             every entry, least "
                            "recently used first"), "%s", r.out);
    cr_assert(strstr(r.out, "\nExamples:\n  trestle preload /models/llm/ckpt-1000\n"), "%s",
              r.out);
    tu_cli_free(&r);
    /* restore's help names --server. */
    r = tu_cli("restore --help");
    cr_assert(strstr(r.out, "      --server S "), "%s", r.out);
    tu_cli_free(&r);
}
