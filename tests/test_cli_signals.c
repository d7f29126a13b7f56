/*
 * test_cli_signals.c - Ctrl-C, SIGTERM and SIGHUP sent to the `trestle`
 * CLI at each phase of its work: before the restore starts, during it,
 * after the last tensor (printing, measuring the bench's yardsticks,
 * flushing a converted file), and while `bench --synthetic` writes its
 * checkpoint. Every time the command says exactly "trestle: interrupted
 * (SIGNAME)", removes what it was making (the synthetic checkpoint, the
 * converted file's temporary) and ends by that signal, which the shell
 * shows as 130, 143 or 129.
 *
 * The CLI is started directly (fork and exec, no shell between), so the
 * signal reaches it and its wait status is its own. A phase is reached
 * through TRESTLE_CLI_TEST_PAUSE=PHASE, which makes the CLI print "trestle:
 * test pause at PHASE" and wait there for a signal; the flush of `convert`
 * happens inside the library, so tests/flush_shim (preloaded) holds it in
 * msync for 30 s instead, as a slow disk would.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* A CLI run under test. */
typedef struct child {
    pid_t pid;
    char out[4200], err[4200];  /* files its stdout and stderr go to */
} child;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * Start `trestle ARGV...` (NULL-terminated) with TRESTLE_CLI_TEST_PAUSE =
 * `pause` (NULL: unset), `env` "NAME=VALUE" more (NULL: none) and SIGINT
 * ignored when `ignore_int`, its output into files of `dir`.
 */
static void start(child *c, const char *dir, const char *pause, const char *env,
                  int ignore_int, char *const argv[])
{
    snprintf(c->out, sizeof c->out, "%s/stdout", dir);
    snprintf(c->err, sizeof c->err, "%s/stderr", dir);
    c->pid = fork();
    cr_assert_geq(c->pid, 0);
    if (c->pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        if (pause)
            setenv("TRESTLE_CLI_TEST_PAUSE", pause, 1);
        else
            unsetenv("TRESTLE_CLI_TEST_PAUSE");
        if (env)
            putenv((char *)env);
        signal(SIGINT, ignore_int ? SIG_IGN : SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(TRESTLE_CLI_PATH, argv);
        _exit(127);
    }
}

/* The whole file, "" while the child has not made it yet. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = calloc(1, 1);
    size_t len = 0, got;
    char buf[4096];
    while (f && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        s = realloc(s, len + got + 1);
        cr_assert(s);
        memcpy(s + len, buf, got);
        len += got;
        s[len] = '\0';
    }
    if (f)
        fclose(f);
    return s;
}

/* Wait (30 s at most) until the child's stderr holds `text`. */
static void wait_for(const child *c, const char *text)
{
    double until = now() + 30;
    for (;;) {
        char *e = slurp(c->err);
        int seen = strstr(e, text) != NULL;
        if (seen) {
            free(e);
            return;
        }
        int status;
        if (waitpid(c->pid, &status, WNOHANG) == c->pid)
            cr_assert_fail("the CLI ended (status %#x) before '%s'; stderr:\n%s", status, text, e);
        free(e);
        cr_assert(now() < until, "no '%s' within 30 s", text);
        usleep(20000);
    }
}

/* Wait for the child's end (`limit` seconds at most, else kill it and
 * fail); its wait status. */
static int finish(const child *c, double limit)
{
    double until = now() + limit;
    int status;
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (now() > until) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            cr_assert_fail("the CLI did not end within %.0f s of the signal", limit);
        }
        usleep(10000);
    }
    return status;
}

/* The child ended by `sig` (the shell shows 128 + sig) and its stderr is `want`. */
static void expect_ended_by(const child *c, int status, int sig, const char *want)
{
    char *e = slurp(c->err);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig,
              "wanted the end by signal %d (the shell's %d), got status %#x; stderr:\n%s", sig,
              128 + sig, status, e);
    cr_assert_str_eq(e, want);
    free(e);
}

/* Entries of `dir` other than the child's output files. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    cr_assert(d, "%s", dir);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "stdout") &&
            strcmp(e->d_name, "stderr"))
            n++;
    closedir(d);
    return n;
}

/* A small two-shard checkpoint DIR/ckpt, written by `trestle synth`. */
static char *make_ckpt(const char *dir)
{
    char cmd[4400], *out, *err, *prefix = malloc(4200);
    snprintf(prefix, 4200, "%s/ckpt", dir);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --size 8M --shards 2", TRESTLE_CLI_PATH, prefix);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    return prefix;
}

static const char *signame(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
}

/*
 * Run `trestle ARGV` until it pauses at `phase`, send `sig`, and check that
 * it ends by it at once saying exactly that, and prints nothing on stdout.
 * `outdir`, when not NULL, must then be empty (no output, no temporary).
 */
static void interrupt_at(char *const argv[], const char *phase, int sig, const char *outdir)
{
    char *run = tu_mkdtemp(), want[256];
    child c;
    start(&c, run, phase, NULL, 0, argv);
    snprintf(want, sizeof want, "trestle: test pause at %s\n", phase);
    wait_for(&c, want);
    kill(c.pid, sig);
    int status = finish(&c, 10);
    snprintf(want, sizeof want, "trestle: test pause at %s\ntrestle: interrupted (%s)\n", phase,
             signame(sig));
    expect_ended_by(&c, status, sig, want);
    char *out = slurp(c.out);
    cr_assert_str_eq(out, "", "an interrupted command reports nothing: %s", out);
    if (outdir)
        cr_assert_eq(entries(outdir), 0, "%s holds the output or its temporary file", outdir);
    free(out);
    tu_rmtree(run);
    free(run);
}

/* ---- restore ---- */

static void restore_interrupted_at(const char *phase, int sig)
{
    char *dir = tu_mkdtemp(), *prefix = make_ckpt(dir);
    char *argv[] = { "trestle", "restore", prefix, "--all", NULL };
    interrupt_at(argv, phase, sig, NULL);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(cli_signals, restore_interrupted_before_it_starts)
{
    restore_interrupted_at("before-restore", SIGINT);
}

Test(cli_signals, restore_interrupted_while_it_runs)
{
    restore_interrupted_at("restore", SIGINT);
    restore_interrupted_at("restore", SIGTERM);
    restore_interrupted_at("restore", SIGHUP);
}

Test(cli_signals, restore_interrupted_after_the_last_tensor)
{
    restore_interrupted_at("after-restore", SIGINT);
}

/* nohup, or a background job of a script: an ignored SIGINT stays ignored. */
Test(cli_signals, an_ignored_sigint_stays_ignored)
{
    char *dir = tu_mkdtemp(), *run = tu_mkdtemp(), *prefix = make_ckpt(dir);
    char *argv[] = { "trestle", "restore", prefix, "--all", NULL };
    child c;
    /* Ignored here first, so that the child never has it otherwise. */
    void (*old)(int) = signal(SIGINT, SIG_IGN);
    start(&c, run, NULL, NULL, 1, argv);
    kill(c.pid, SIGINT);
    signal(SIGINT, old);
    int status = finish(&c, 60);
    char *out = slurp(c.out), *err = slurp(c.err);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, err);
    cr_assert(tu_starts_with(out, "restored 290 tensors, "), "%s", out);
    free(out);
    free(err);
    tu_rmtree(dir);
    tu_rmtree(run);
    free(dir);
    free(run);
    free(prefix);
}

/* A phase no hook cancels (here: reading the op list from a pipe that
 * never ends) is cut short half a second after the signal. */
Test(cli_signals, a_phase_nothing_cancels_is_cut_short)
{
    char *dir = tu_mkdtemp(), *run = tu_mkdtemp(), *prefix = make_ckpt(dir);
    char *argv[] = { "trestle", "restore", prefix, "--ops", "-", NULL };
    int in[2];
    cr_assert_eq(pipe(in), 0);
    int saved = dup(STDIN_FILENO);
    dup2(in[0], STDIN_FILENO); /* the child reads the pipe, which stays open */
    child c;
    start(&c, run, NULL, NULL, 0, argv);
    dup2(saved, STDIN_FILENO);
    close(saved);
    close(in[0]);
    sleep(1); /* well past its start: the signals are its own by then */
    double t0 = now();
    kill(c.pid, SIGINT);
    int status = finish(&c, 10);
    cr_assert_lt(now() - t0, 5);
    expect_ended_by(&c, status, SIGINT, "trestle: interrupted (SIGINT)\n");
    close(in[1]);
    tu_rmtree(dir);
    tu_rmtree(run);
    free(dir);
    free(run);
    free(prefix);
}

/* ---- bench --synthetic: its temporary checkpoint goes, whatever the phase ---- */

static void bench_interrupted_at(const char *phase, int sig)
{
    char *tmp = tu_mkdtemp(), *run = tu_mkdtemp(), env[4200], want[256];
    char *argv[] = { "trestle", "bench", "--synthetic", "16M,2", "--repeat", "2", NULL };
    child c;
    snprintf(env, sizeof env, "TMPDIR=%s", tmp);
    start(&c, run, phase, env, 0, argv);
    snprintf(want, sizeof want, "trestle: test pause at %s\n", phase);
    wait_for(&c, want);
    cr_assert_eq(entries(tmp), 1, "the synthetic checkpoint's directory is there");
    kill(c.pid, sig);
    int status = finish(&c, 10);
    char *e = slurp(c.err);
    /* After the synthetic checkpoint is written, its line comes first. */
    const char *tail = strcmp(phase, "synth") == 0 ? e : strchr(e, '\n') + 1;
    cr_assert(tail == e || tu_starts_with(e, "wrote 290 tensors, "), "%s", e);
    snprintf(want, sizeof want, "trestle: test pause at %s\ntrestle: interrupted (%s)\n", phase,
             signame(sig));
    cr_assert_str_eq(tail, want);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig, "status %#x: %s", status, e);
    cr_assert_eq(entries(tmp), 0, "the synthetic checkpoint was left in %s", tmp);
    char *out = slurp(c.out);
    cr_assert_str_eq(out, "", "an interrupted bench reports nothing: %s", out);
    free(out);
    free(e);
    tu_rmtree(tmp);
    tu_rmtree(run);
    free(tmp);
    free(run);
}

Test(cli_signals, bench_interrupted_while_writing_its_synthetic_checkpoint)
{
    bench_interrupted_at("synth", SIGINT);
}

Test(cli_signals, bench_interrupted_before_the_restores)
{
    bench_interrupted_at("before-restore", SIGINT);
}

Test(cli_signals, bench_interrupted_during_a_restore)
{
    bench_interrupted_at("restore", SIGINT);
    bench_interrupted_at("restore", SIGTERM);
}

Test(cli_signals, bench_interrupted_while_measuring_the_yardsticks)
{
    bench_interrupted_at("after-restore", SIGHUP);
}

/* ---- convert: no output, no temporary file ---- */

static void convert_interrupted_at(const char *phase, int sig)
{
    char *dir = tu_mkdtemp(), *prefix = make_ckpt(dir), *outdir = tu_mkdtemp(), out[4200];
    snprintf(out, sizeof out, "%s/model.safetensors", outdir);
    char *argv[] = { "trestle", "convert", prefix, out, NULL };
    interrupt_at(argv, phase, sig, outdir);
    tu_rmtree(dir);
    tu_rmtree(outdir);
    free(dir);
    free(outdir);
    free(prefix);
}

Test(cli_signals, convert_interrupted_before_the_restore)
{
    convert_interrupted_at("before-restore", SIGINT);
}

/* Issue 22: SIGTERM (timeout, systemd, containers) and SIGHUP left the
 * full-size temporary file; Ctrl-C said "restore cancelled by the ready
 * callback (it returned 1 for op ...)". */
Test(cli_signals, convert_interrupted_while_it_writes)
{
    convert_interrupted_at("restore", SIGINT);
    convert_interrupted_at("restore", SIGTERM);
    convert_interrupted_at("restore", SIGHUP);
}

/* Issue 22: a Ctrl-C after the last tensor was ignored while the file was
 * flushed. The flush cannot be cancelled: the CLI removes the temporary
 * file itself and ends within a second, long before the 30 s flush. */
Test(cli_signals, convert_interrupted_while_it_flushes)
{
    char *dir = tu_mkdtemp(), *run = tu_mkdtemp(), *prefix = make_ckpt(dir), *outdir = tu_mkdtemp();
    char out[4200], preload[4400];
    snprintf(out, sizeof out, "%s/model.safetensors", outdir);
    /* An ASan build's runtime must come first; the shim asks nothing of it. */
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", TRESTLE_FLUSH_SHIM_PATH);
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
    char *argv[] = { "trestle", "convert", prefix, out, NULL };
    child c;
    start(&c, run, NULL, preload, 0, argv);
    wait_for(&c, "flush shim: stalling msync\n");
    cr_assert_eq(entries(outdir), 1, "the temporary file is being flushed");
    double t0 = now();
    kill(c.pid, SIGTERM);
    int status = finish(&c, 10);
    cr_assert_lt(now() - t0, 5, "the CLI waited for the flush");
    expect_ended_by(&c, status, SIGTERM,
                    "flush shim: stalling msync\ntrestle: interrupted (SIGTERM)\n");
    cr_assert_eq(entries(outdir), 0, "%s holds the output or its temporary file", outdir);
    tu_rmtree(dir);
    tu_rmtree(run);
    tu_rmtree(outdir);
    free(dir);
    free(run);
    free(outdir);
    free(prefix);
}
