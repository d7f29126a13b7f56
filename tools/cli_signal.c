/*
 * cli_signal.c - Ctrl-C, SIGTERM and SIGHUP for every `trestle` command:
 * stop, remove what the command was making, say "interrupted", and end by
 * the same signal, so that the shell sees 130, 143 or 129 and a script's
 * loop stops as it does for any interrupted program.
 *
 * The three signals are blocked in every thread (the engine's workers
 * inherit the mask, so none of their system calls is ever interrupted)
 * and taken by one watcher thread with sigwait(), outside any signal
 * handler. On a signal the watcher records it and calls the command's
 * cancel hook (e.g. trestle_restore_cancel); the command notices
 * (cli_interrupted()), winds down and returns, and main() ends the process
 * by the signal (cli_signals_finish). When the command is in a phase
 * nothing can cancel (flushing a file, planning, writing a synthetic
 * checkpoint) and has not returned within CLI_SIGNAL_GRACE_MS, or at a
 * second signal, the watcher runs the command's cleanup hook itself and
 * ends the process. A signal ignored when the process started (nohup, a
 * background job of a script) stays ignored.
 *
 * The CLI is a process, so this is process-wide state, as any signal
 * disposition is; the library has none of it.
 */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CLI_SIGNAL_GRACE_MS 500 /* a command that has not wound down by then is ended */
#define PAUSE_LIMIT_S 60        /* a test pause gives up waiting for its signal */
#define MAX_CLEANUPS 4          /* nested cleanups: bench's directory, synth's files in it */

static const int handled[] = { SIGINT, SIGTERM, SIGHUP };
#define NUM_HANDLED (sizeof handled / sizeof handled[0])

typedef struct hook {
    void (*fn)(void *);
    void *arg;
} hook;

static struct {
    int installed;
    sigset_t set;                /* the handled signals not ignored at start */
    sigset_t old_mask;           /* the mask before install, for cli_signals_release */
    pthread_t watcher;
    atomic_int caught;           /* the first signal taken, else 0 */
    pthread_mutex_t mu;          /* guards the hooks, finishing, and the pause */
    pthread_cond_t wake;         /* broadcast when a signal is taken */
    hook cancel;
    hook cleanup[MAX_CLEANUPS];  /* run last pushed first */
    int ncleanup;
    int finishing;               /* main() has the command's status: no forced end */
    const char *pause_phase;     /* TRESTLE_CLI_TEST_PAUSE, read once */
} sig = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static const char *signal_name(int s)
{
    return s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP" : "signal";
}

/* End the process by signal `s`, as its default action would have. */
static void die_by(int s) __attribute__((noreturn));
static void die_by(int s)
{
    sigset_t one;
    fflush(stdout);
    signal(s, SIG_DFL);
    sigemptyset(&one);
    sigaddset(&one, s);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(s); /* to this thread, which now lets it through: the default action ends the process */
    _exit(128 + s);
}

/* The forced end: the command did not wind down in time (caller holds sig.mu). */
static void force_end(int s) __attribute__((noreturn));
static void force_end(int s)
{
    for (int i = sig.ncleanup - 1; i >= 0; i--)
        sig.cleanup[i].fn(sig.cleanup[i].arg);
    fprintf(stderr, "trestle: interrupted (%s)\n", signal_name(s));
    die_by(s);
}

static void *watch(void *unused)
{
    (void)unused;
    int s = 0;
    while (sigwait(&sig.set, &s) != 0 || s == 0)
        ;
    pthread_mutex_lock(&sig.mu);
    atomic_store(&sig.caught, s);
    if (sig.cancel.fn)
        sig.cancel.fn(sig.cancel.arg);
    pthread_cond_broadcast(&sig.wake);
    pthread_mutex_unlock(&sig.mu);

    /* Give the command its grace to return; a second signal cuts it short. */
    struct timespec step = { 0, 50 * 1000000L };
    for (int waited = 0; waited < CLI_SIGNAL_GRACE_MS; waited += 50) {
        siginfo_t info;
        if (sigtimedwait(&sig.set, &info, &step) > 0)
            break;
        pthread_mutex_lock(&sig.mu);
        int done = sig.finishing;
        pthread_mutex_unlock(&sig.mu);
        if (done)
            return NULL;
    }
    pthread_mutex_lock(&sig.mu);
    if (!sig.finishing)
        force_end(s);
    pthread_mutex_unlock(&sig.mu);
    return NULL;
}

void cli_signals_install(void)
{
    sigemptyset(&sig.set);
    for (size_t i = 0; i < NUM_HANDLED; i++) {
        struct sigaction old;
        /* An ignored signal is discarded even when blocked: leave it so. */
        if (sigaction(handled[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaddset(&sig.set, handled[i]);
    }
    sig.pause_phase = getenv("TRESTLE_CLI_TEST_PAUSE");
    if (pthread_sigmask(SIG_BLOCK, &sig.set, &sig.old_mask) != 0)
        return;
    if (pthread_create(&sig.watcher, NULL, watch, NULL) != 0) {
        /* No watcher: the signals keep their default action. */
        pthread_sigmask(SIG_SETMASK, &sig.old_mask, NULL);
        return;
    }
    pthread_detach(sig.watcher);
    sig.installed = 1;
}

void cli_signals_release(void)
{
    if (sig.installed)
        pthread_sigmask(SIG_SETMASK, &sig.old_mask, NULL);
}

int cli_interrupted(void)
{
    return atomic_load(&sig.caught);
}

void cli_signals_on_cancel(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&sig.mu);
    sig.cancel = (hook){ fn, arg };
    pthread_mutex_unlock(&sig.mu);
}

void cli_signals_push_cleanup(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&sig.mu);
    if (sig.ncleanup < MAX_CLEANUPS)
        sig.cleanup[sig.ncleanup++] = (hook){ fn, arg };
    pthread_mutex_unlock(&sig.mu);
}

void cli_signals_pop_cleanup(void)
{
    pthread_mutex_lock(&sig.mu);
    if (sig.ncleanup > 0)
        sig.ncleanup--;
    pthread_mutex_unlock(&sig.mu);
}

int cli_signals_finish(int status)
{
    pthread_mutex_lock(&sig.mu);
    sig.finishing = 1;
    int s = atomic_load(&sig.caught);
    pthread_mutex_unlock(&sig.mu);
    if (!s)
        return status;
    fprintf(stderr, "trestle: interrupted (%s)\n", signal_name(s));
    die_by(s);
}

int cli_signals_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user, (void)i, (void)op;
    cli_signals_test_pause("restore");
    return cli_interrupted() != 0;
}

int cli_signals_pausing(const char *phase)
{
    return sig.pause_phase && strcmp(sig.pause_phase, phase) == 0;
}

void cli_signals_test_pause(const char *phase)
{
    static atomic_int paused; /* once: a phase in the ready callback runs on every worker */
    if (!sig.pause_phase || strcmp(sig.pause_phase, phase) != 0 || cli_interrupted() ||
        atomic_exchange(&paused, 1))
        return;
    fprintf(stderr, "trestle: test pause at %s\n", phase);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += PAUSE_LIMIT_S;
    pthread_mutex_lock(&sig.mu);
    while (!atomic_load(&sig.caught) &&
           pthread_cond_timedwait(&sig.wake, &sig.mu, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&sig.mu);
}

/* ---- the temporary file of an atomic write ---- */

/* "DIR/BASE.tmp-" with DIR resolved, as /proc/self/fd shows the file. */
static char temp_prefix[PATH_MAX + 16];

/*
 * Unlink every file this process holds open whose path is temp_prefix
 * followed by six [0-9a-z]: the library's `OUT.tmp-XXXXXX` (trestle.h,
 * trestle_convert_safetensors), which only its own return would remove.
 */
static void remove_open_temp(void *unused)
{
    (void)unused;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t plen = strlen(temp_prefix);
    while (d && (e = readdir(d)) != NULL) {
        char link[300], target[PATH_MAX + 32];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0 || (size_t)n != plen + 6)
            continue; /* an unlinked file reads "... (deleted)": longer */
        target[n] = '\0';
        if (strncmp(target, temp_prefix, plen) != 0 ||
            strspn(target + plen, "0123456789abcdefghijklmnopqrstuvwxyz") != 6)
            continue;
        unlink(target);
    }
    if (d)
        closedir(d);
}

void cli_signals_guard_temp(const char *out)
{
    char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    snprintf(base, sizeof base, "%s", out);
    if (!realpath(dirname(dir), real))
        real[0] = '\0'; /* the library's own error will name the directory */
    snprintf(temp_prefix, sizeof temp_prefix, "%s/%s.tmp-", strcmp(real, "/") ? real : "",
             basename(base));
    cli_signals_push_cleanup(remove_open_temp, NULL);
}
