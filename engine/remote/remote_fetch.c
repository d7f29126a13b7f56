/*
 * remote_fetch.c - the fetcher (remote.h): one thread that drives a curl
 * multi handle, so that up to N transfers share its connections (reused
 * across requests; HTTP/2 where the server offers it) while the caller's
 * thread only queues transfers and collects finished ones.
 *
 * A transfer waits in a FIFO until a slot is free, runs an attempt
 * (remote_xfer.c judges the answer), and is either handed back, done or
 * failed, or put back in the FIFO with a time before which it may not
 * start: exponential backoff with "equal jitter", the k-th retry waiting between half and all of min(max, base * 2^(k-1)), so that
 * many ranges failing at once do not come back at once. Closing removes
 * every transfer from the multi handle at once: nothing waits for a slow
 * server to finish a body no one wants.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "error.h"
#include "remote_xfer.h"

#define IDLE_POLL_MS 1000 /* nothing to time: sleep until woken (a submit, a close) */

struct trestle__fetcher {
    const trestle__store *store;
    unsigned max_active;      /* transfers in flight at most */
    unsigned max_attempts;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;       /* guards the lists and flags below */
    pthread_cond_t done_cv;   /* a transfer was handed back (CLOCK_MONOTONIC waits) */
    trestle__xfer *inbox_head, *inbox_tail; /* submitted, not yet taken by the thread */
    trestle__xfer *done_head, *done_tail;   /* finished, not yet reaped */
    bool closing;
    uint64_t requests, retries; /* under mu */
    uint64_t fetched;         /* body bytes (atomic: added by the write callback) */
    /* The thread's own. */
    trestle__xfer *wait_head, *wait_tail;   /* to start, some not before their time */
    unsigned active;
    trestle__xfer **running;  /* max_active slots: the transfers in the multi handle */
    CURL **idle;              /* easy handles not in use (their connections stay cached) */
    unsigned nidle;
    uint64_t rng;             /* xorshift state for the jitter */
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void push(trestle__xfer **head, trestle__xfer **tail, trestle__xfer *x)
{
    x->next = NULL;
    if (*tail)
        (*tail)->next = x;
    else
        *head = x;
    *tail = x;
}

/* ---- the thread ---- */

static void hand_back(trestle__fetcher *f, trestle__xfer *x)
{
    trestle__xfer_state_free(x);
    pthread_mutex_lock(&f->mu);
    push(&f->done_head, &f->done_tail, x);
    pthread_cond_signal(&f->done_cv);
    pthread_mutex_unlock(&f->mu);
}

/* The k-th retry's delay: between half and all of min(max, base * 2^(k-1)). */
static int64_t backoff_ns(trestle__fetcher *f, unsigned k)
{
    const trestle__remote_config *c = trestle__store_config(f->store);
    uint64_t cap = c->backoff_ms;
    for (unsigned i = 1; i < k && cap < c->backoff_max_ms; i++)
        cap *= 2;
    if (cap > c->backoff_max_ms)
        cap = c->backoff_max_ms;
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    uint64_t half = cap / 2;
    uint64_t ms = half + (cap - half ? f->rng % (cap - half + 1) : 0);
    return (int64_t)ms * 1000000LL;
}

static void start(trestle__fetcher *f, trestle__xfer *x)
{
    CURL *easy = f->nidle ? f->idle[--f->nidle] : curl_easy_init();
    if (!easy) {
        x->status = trestle__error_simple(&x->err, TRESTLE_E_NOMEM, "curl_easy_init failed");
        hand_back(f, x);
        return;
    }
    x->attempts++;
    if (trestle__xfer_prepare(f->store, x, easy) != TRESTLE_OK ||
        curl_multi_add_handle(f->multi, easy) != CURLM_OK) {
        if (x->status == TRESTLE_OK)
            x->status = trestle__error_simple(&x->err, TRESTLE_E_NOMEM,
                                              "curl_multi_add_handle failed");
        f->idle[f->nidle++] = easy;
        hand_back(f, x);
        return;
    }
    for (unsigned i = 0; i < f->max_active; i++)
        if (!f->running[i]) {
            f->running[i] = x;
            break;
        }
    f->active++;
    pthread_mutex_lock(&f->mu);
    f->requests++;
    f->retries += x->attempts > 1;
    pthread_mutex_unlock(&f->mu);
}

/* Start what may start now; the ms until the next waiting one may. */
static long start_ready(trestle__fetcher *f)
{
    int64_t now = now_ns(), next = -1;
    trestle__xfer **link = &f->wait_head, *prev = NULL;
    while (*link && f->active < f->max_active) {
        trestle__xfer *x = *link;
        if (x->st->not_before_ns > now) {
            if (next < 0 || x->st->not_before_ns < next)
                next = x->st->not_before_ns;
            prev = x;
            link = &x->next;
            continue;
        }
        *link = x->next;
        if (f->wait_tail == x)
            f->wait_tail = prev;
        start(f, x);
    }
    if (f->active >= f->max_active || next < 0)
        return IDLE_POLL_MS;
    long ms = (long)((next - now + 999999) / 1000000);
    return ms < IDLE_POLL_MS ? ms : IDLE_POLL_MS;
}

static void finished(trestle__fetcher *f, CURLMsg *m)
{
    trestle__xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    CURLcode res = m->data.result;
    curl_multi_remove_handle(f->multi, m->easy_handle);
    f->idle[f->nidle++] = m->easy_handle;
    f->active--;
    for (unsigned i = 0; i < f->max_active; i++)
        if (f->running[i] == x)
            f->running[i] = NULL;
    switch (trestle__xfer_judge(f->store, x, res, f->max_attempts)) {
    case TRESTLE__XFER_RETRY:
        x->st->not_before_ns = now_ns() + backoff_ns(f, x->attempts);
        push(&f->wait_head, &f->wait_tail, x);
        break;
    case TRESTLE__XFER_DONE:
    case TRESTLE__XFER_FAILED:
        hand_back(f, x);
        break;
    }
}

static void *fetch_thread(void *arg)
{
    trestle__fetcher *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool closing = f->closing;
        while (f->inbox_head) {
            trestle__xfer *x = f->inbox_head;
            f->inbox_head = x->next;
            push(&f->wait_head, &f->wait_tail, x);
        }
        f->inbox_tail = NULL;
        pthread_mutex_unlock(&f->mu);
        if (closing)
            break;
        long wait_ms = start_ready(f);
        int running = 0, left = 0;
        curl_multi_perform(f->multi, &running);
        CURLMsg *m;
        bool any = false;
        while ((m = curl_multi_info_read(f->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE) {
                finished(f, m);
                any = true;
            }
        if (any)
            continue; /* slots were freed: fill them before sleeping */
        curl_multi_poll(f->multi, NULL, 0, (int)wait_ms, NULL);
    }
    /* Closing: abort what runs, at once; its bytes are no one's now. */
    for (unsigned i = 0; i < f->max_active; i++) {
        trestle__xfer *x = f->running[i];
        if (!x)
            continue;
        curl_multi_remove_handle(f->multi, x->st->easy);
        curl_easy_cleanup(x->st->easy);
        trestle__xfer_state_free(x);
        f->running[i] = NULL;
    }
    return NULL;
}

/* ---- the caller's side ---- */

int trestle__fetcher_open(const trestle__store *s, unsigned connections,
                          trestle__fetcher **out, trestle_error *err)
{
    trestle__fetcher *f;
    *out = NULL;
    /* Thread-safe in the libcurl this builds with (7.84 and later), and
     * cheap after the first call; there is nothing to undo per fetcher. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return trestle__error_simple(err, TRESTLE_E_IO, "cannot start libcurl");
    f = calloc(1, sizeof *f);
    if (!f)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    f->store = s;
    f->max_active = connections ? connections : trestle__store_config(s)->connections;
    f->max_attempts = trestle__store_config(s)->attempts;
    f->rng = (uint64_t)now_ns() ^ (uint64_t)(uintptr_t)f ^ 0x9e3779b97f4a7c15ull;
    if (!f->rng)
        f->rng = 1;
    f->idle = calloc(f->max_active, sizeof *f->idle);
    f->running = calloc(f->max_active, sizeof *f->running);
    f->multi = curl_multi_init();
    if (!f->idle || !f->running || !f->multi) {
        curl_multi_cleanup(f->multi);
        free(f->idle);
        free(f->running);
        free(f);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "cannot start libcurl");
    }
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)f->max_active);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)f->max_active);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)f->max_active);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    int ret = pthread_create(&f->thread, NULL, fetch_thread, f);
    if (ret != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->done_cv);
        curl_multi_cleanup(f->multi);
        free(f->idle);
        free(f->running);
        free(f);
        return trestle__error_set(err, TRESTLE_E_NOMEM, ret, NULL, NULL, -1, -1,
                                  "cannot start the fetch thread: %s", strerror(ret));
    }
    *out = f;
    return TRESTLE_OK;
}

void trestle__fetcher_submit(trestle__fetcher *f, trestle__xfer *x)
{
    x->status = TRESTLE_OK;
    x->attempts = 0;
    x->crc = 0;
    x->data = NULL;
    x->data_len = 0;
    trestle_error_clear(&x->err);
    x->st = calloc(1, sizeof *x->st);
    if (!x->st) {
        x->status = trestle__error_simple(&x->err, TRESTLE_E_NOMEM, "out of memory");
        pthread_mutex_lock(&f->mu);
        push(&f->done_head, &f->done_tail, x);
        pthread_cond_signal(&f->done_cv);
        pthread_mutex_unlock(&f->mu);
        return;
    }
    x->st->fetched = &f->fetched;
    x->st->generation = -1;
    pthread_mutex_lock(&f->mu);
    push(&f->inbox_head, &f->inbox_tail, x);
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
}

unsigned trestle__fetcher_reap(trestle__fetcher *f, trestle__xfer **done, unsigned max,
                               int timeout_ms)
{
    unsigned n = 0;
    pthread_mutex_lock(&f->mu);
    if (!f->done_head && timeout_ms > 0) {
        struct timespec deadline;
        trestle__deadline_after(&deadline, timeout_ms);
        while (!f->done_head)
            if (pthread_cond_timedwait(&f->done_cv, &f->mu, &deadline) == ETIMEDOUT)
                break;
    }
    while (n < max && f->done_head) {
        trestle__xfer *x = f->done_head;
        f->done_head = x->next;
        if (!f->done_head)
            f->done_tail = NULL;
        done[n++] = x;
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

void trestle__fetcher_counts(trestle__fetcher *f, trestle__remote_counts *out)
{
    pthread_mutex_lock(&f->mu);
    out->requests = f->requests;
    out->retries = f->retries;
    pthread_mutex_unlock(&f->mu);
    out->bytes_fetched = __atomic_load_n(&f->fetched, __ATOMIC_RELAXED);
}

static void drop_list(trestle__xfer *x)
{
    while (x) {
        trestle__xfer *next = x->next;
        trestle__xfer_state_free(x);
        x = next;
    }
}

void trestle__fetcher_close(trestle__fetcher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->closing = true;
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
    pthread_join(f->thread, NULL);

    drop_list(f->wait_head);
    drop_list(f->inbox_head);
    drop_list(f->done_head);
    for (unsigned i = 0; i < f->nidle; i++)
        curl_easy_cleanup(f->idle[i]);
    curl_multi_cleanup(f->multi);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->done_cv);
    free(f->idle);
    free(f->running);
    free(f);
}
