/*
 * pywatch.c - run a long engine call (a restore, a conversion) on a thread
 * of its own while the calling thread, GIL released between looks, wakes
 * every 100 ms to report progress and to turn Ctrl-C, or an exception from
 * the progress callback, into a cancellation.
 */
#include <pthread.h>
#include <time.h>

#include "pytrestle.h"

typedef struct watch_run {
    const pyt_watch *w;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished;           /* under lock */
} watch_run;

static void *work_thread(void *arg)
{
    watch_run *r = arg;
    r->w->work(r->w->arg);
    pthread_mutex_lock(&r->lock);
    r->finished = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Wait up to 100 ms for the work to finish; 1 when it has. */
static int wait_a_while(watch_run *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->lock);
    if (!r->finished)
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    int done = r->finished;
    pthread_mutex_unlock(&r->lock);
    return done;
}

/* progress(done) once; -1 with the exception pending when it raised. */
static int report(const pyt_watch *w)
{
    PyObject *res = PyObject_CallFunction(w->progress, "K",
                                          (unsigned long long)atomic_load(w->done));
    Py_XDECREF(res);
    return res ? 0 : -1;
}

int pyt_watch_run(const pyt_watch *w)
{
    watch_run r = { .w = w };
    pthread_t tid;
    int started, failed = 0; /* failed: a Python exception is pending */
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    Py_BEGIN_ALLOW_THREADS
    started = pthread_create(&tid, NULL, work_thread, &r) == 0;
    if (!started)   /* no thread to spare: work here, unwatched */
        w->work(w->arg);
    Py_END_ALLOW_THREADS
    while (started) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = wait_a_while(&r);
        Py_END_ALLOW_THREADS
        if (done)
            break;
        if (failed)
            continue;
        if (w->progress != Py_None)
            failed = report(w) < 0;
        if (!failed)
            failed = PyErr_CheckSignals() < 0;
        if (failed)
            w->cancel(w->arg);
    }
    if (started) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(tid, NULL);
        Py_END_ALLOW_THREADS
    }
    /* The last figure, so a bar ends at 100%, once the work succeeded. */
    if (!failed && w->progress != Py_None && w->succeeded(w->arg))
        failed = report(w) < 0;
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
    return failed ? -1 : 0;
}
