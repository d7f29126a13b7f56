/*
 * cli_progress.c - a thread beside a running restore that draws a progress
 * bar on stderr, and the restore's hook for Ctrl-C, SIGTERM and SIGHUP
 * (cli_signal.c): trestle_restore_cancel() at the signal, and a ready
 * callback that refuses to go on once one was taken.
 *
 * Bytes are counted in the on_ready callback (pipeline threads, so only an
 * atomic add); the bar itself is drawn by the thread at most 10 times a
 * second, and only once the restore has run for half a second, so short
 * restores and pipes never see it. Rates are GB/s (1e9 bytes per second),
 * sizes binary (MiB, GiB), as everywhere in the CLI.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_PERIOD_NS 100000000L /* redraw at most 10x a second */
#define PROGRESS_DELAY_S 0.5          /* restores shorter than this draw nothing */

struct cli_progress {
    trestle_plan *plan;
    uint64_t total;             /* the plan's output bytes */
    int bar;                    /* draw a bar (stderr is a TTY, not --quiet) */
    atomic_uint_fast64_t done;  /* bytes of ready ops */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* signalled by cli_progress_stop */
    int stop;                   /* under lock */
    int drawn;                  /* a bar is on screen (watcher thread only) */
    struct timespec start;
};

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void draw(cli_progress *pg, double elapsed)
{
    uint64_t done = atomic_load(&pg->done);
    char a[32], b[32], text[128];
    struct winsize ws;
    int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
    double frac = pg->total ? (double)done / (double)pg->total : 1.0;
    if (frac > 1)
        frac = 1;
    cli_human_size(done, a, sizeof a);
    cli_human_size(pg->total, b, sizeof b);
    snprintf(text, sizeof text, " %3d%%  %s / %s  %.2f GB/s", (int)(frac * 100), a, b,
             elapsed > 0 ? (double)done / elapsed / 1e9 : 0.0);
    int width = cols - (int)strlen(text) - 3;
    if (width > 50)
        width = 50;
    fputs("\r[", stderr);
    for (int k = 0; k < width; k++)
        fputc(k < (int)(frac * width) ? '#' : '.', stderr);
    fprintf(stderr, "]%s\033[K", text);
    fflush(stderr);
    pg->drawn = 1;
}

static void *watch(void *arg)
{
    cli_progress *pg = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&pg->lock);
    while (!pg->stop) {
        next.tv_nsec += PROGRESS_PERIOD_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        pthread_cond_timedwait(&pg->wake, &pg->lock, &next);
        if (pg->stop || cli_interrupted())
            break;
        double elapsed = since(&pg->start);
        if (pg->bar && elapsed >= PROGRESS_DELAY_S)
            draw(pg, elapsed);
    }
    pthread_mutex_unlock(&pg->lock);
    if (pg->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    return NULL;
}

static void cancel_restore(void *plan)
{
    trestle_restore_cancel(plan);
}

cli_progress *cli_progress_start(trestle_plan *p, uint64_t total, int bar)
{
    cli_progress *pg = calloc(1, sizeof *pg);
    pthread_condattr_t attr;
    if (!pg)
        return NULL;
    pg->plan = p;
    pg->total = total;
    pg->bar = bar;
    atomic_init(&pg->done, 0);
    clock_gettime(CLOCK_MONOTONIC, &pg->start);
    pthread_mutex_init(&pg->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pg->wake, &attr);
    pthread_condattr_destroy(&attr);
    /* A conversion (p NULL) runs the library's own plan: its ready
     * callback returns cli_interrupted() to cancel it instead. */
    if (p)
        cli_signals_on_cancel(cancel_restore, p);
    /* No thread to spare: no bar, still counted and cancellable. */
    if (bar && pthread_create(&pg->thread, NULL, watch, pg) != 0)
        pg->bar = 0;
    return pg;
}

int cli_progress_on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)i;
    cli_progress *pg = user;
    atomic_fetch_add(&pg->done, op->bytes);
    cli_signals_test_pause("restore");
    /* A signal taken before the restore started did not cancel it. */
    return cli_interrupted() != 0;
}

trestle_ready_fn cli_progress_ready_fn(const cli_progress *pg)
{
    if (pg && pg->bar)
        return cli_progress_on_ready;
    return cli_signals_pausing("restore") ? cli_signals_ready : NULL;
}

void cli_progress_stop(cli_progress *pg)
{
    if (!pg)
        return;
    if (pg->plan)
        cli_signals_on_cancel(NULL, NULL);
    if (pg->bar) {
        pthread_mutex_lock(&pg->lock);
        pg->stop = 1;
        pthread_cond_signal(&pg->wake);
        pthread_mutex_unlock(&pg->lock);
        pthread_join(pg->thread, NULL);
    }
    pthread_cond_destroy(&pg->wake);
    pthread_mutex_destroy(&pg->lock);
    free(pg);
}
