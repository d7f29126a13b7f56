/*
 * copy_cuda_marks.c - the CUDA copier's streams and events: each worker's
 * stream and the marks on it, how they retire, the DMA timing, and where
 * it all lives between restores (copy_cuda.h; the copies themselves are
 * engine/restore/copy_cuda.c).
 *
 *  - Marks. A worker marks the end of each staging buffer's copies with an
 *    event and retires the marks in order, querying first and waiting
 *    (cudaEventSynchronize on a cudaEventBlockingSync event: the thread
 *    sleeps) only when it must. wait_mark() waits for a later mark without
 *    retiring it: the conversion buffers (engine/restore/restore_convert.c)
 *    are reused once the mark of the read that filled them is done.
 *  - Timing. Each mark has a start event, recorded just before its first
 *    copy is queued, and each worker a reference event recorded as it
 *    starts: cudaEventElapsedTime gives every mark's DMA interval on the
 *    GPU's clock, and their union over the workers is
 *    trestle_stats.device_copy_seconds. A host clock read when a
 *    retirement is noticed would count the worker's CRC and callbacks too.
 *  - Stopping. A failed or cancelled restore waits for what it queued
 *    before it returns: retire() waits for its mark even after a failure,
 *    and close() waits for copies queued after the last mark. A stream
 *    destroyed with work on it would go on writing destinations the caller
 *    may free, and reading staging a retry refills.
 *  - Keeping. Streams, events and the device window are made once: close()
 *    leaves them in the plan (engine/memory/staging.h, one kept object per
 *    device) and the next restore onto that device takes them back. They
 *    are released with the plan, the window with cudaFreeAsync, so that no
 *    device-wide synchronisation happens then either. After a CUDA failure
 *    nothing is kept: the next restore starts from new streams.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copy.h"
#include "error.h"

#if TRESTLE_HAVE_CUDA

#include "copy_cuda.h"

#define MARKS TRESTLE__CUDA_MARKS

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- marks ---- */

static int cuda_mark(trestle__copier *c, unsigned worker, trestle_error *err)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = trestle__cuda_worker_get(s, worker);
    if (cw->failed == cudaSuccess && cw->len == MARKS)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "internal error: CUDA device %d: "
                                     "more than %d copy marks in flight", s->device, MARKS);
    trestle__cuda_flush(cw);
    cw->win_src = NULL; /* the next staging buffer may sit at the same address */
    unsigned slot = (cw->head + cw->len) % MARKS;
    if (!cw->open)
        cw->timed[slot] = false; /* nothing was copied: no interval */
    if (cw->failed == cudaSuccess && trestle__cuda_slot_events(cw, slot)) {
        trestle__cuda_note(cw, cudaEventRecord(cw->ev[slot], cw->stream),
                           "marking copies (cudaEventRecord)");
        if (cw->failed == cudaSuccess) {
            cw->len++;
            cw->open = false;
        }
    }
    return trestle__cuda_worker_error(s, cw, err);
}

/* Wait until ev is complete, querying first; the wait is timed. */
static cudaError_t wait_event(trestle__cuda_worker *cw, cudaEvent_t ev, bool wait)
{
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaErrorNotReady && wait) {
        double t = now_s();
        e = cudaEventSynchronize(ev);
        cw->wait_seconds += now_s() - t;
    }
    return e;
}

/* The DMA interval of the mark in `slot`, now complete. */
static void note_span(trestle__cuda_worker *cw, unsigned slot)
{
    float a, b;
    if (!cw->timed[slot] || !cw->have_ref ||
        cudaEventElapsedTime(&a, cw->ref, cw->from[slot]) != cudaSuccess ||
        cudaEventElapsedTime(&b, cw->ref, cw->ev[slot]) != cudaSuccess)
        return; /* the figure only: it comes out a little low */
    if (cw->nspans == cw->cap_spans) {
        size_t cap = cw->cap_spans ? 2 * cw->cap_spans : 64;
        trestle__cuda_span *v = realloc(cw->spans, cap * sizeof *v);
        if (!v)
            return;
        cw->spans = v;
        cw->cap_spans = cap;
    }
    cw->spans[cw->nspans++] = (trestle__cuda_span){ a, b };
}

/* Also after a failure: the mark's copies may still be running, and the
 * caller is about to give their staging buffer back. */
static int cuda_retire(trestle__copier *c, unsigned worker, bool wait, bool *done,
                       trestle_error *err)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = trestle__cuda_worker_get(s, worker);
    *done = false;
    if (cw->len > 0) {
        unsigned slot = cw->head;
        cudaError_t e = wait_event(cw, cw->ev[slot], wait);
        if (e != cudaErrorNotReady) {
            trestle__cuda_note(cw, e, "waiting for copies (cudaEventSynchronize)");
            if (e == cudaSuccess)
                note_span(cw, slot);
            cw->head = (cw->head + 1) % MARKS;
            cw->len--;
            *done = true;
        }
    }
    return trestle__cuda_worker_error(s, cw, err);
}

static int cuda_wait_mark(trestle__copier *c, unsigned worker, unsigned k, trestle_error *err)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = trestle__cuda_worker_get(s, worker);
    if (k < cw->len && cw->failed == cudaSuccess)
        trestle__cuda_note(cw, wait_event(cw, cw->ev[(cw->head + k) % MARKS], true),
                           "waiting for copies (cudaEventSynchronize)");
    return trestle__cuda_worker_error(s, cw, err);
}

/* Everything the worker queued, waited for on an event of its own (the
 * marks' ring is the pending reads'). Older marks are complete then too,
 * and retire at once. */
static cudaError_t drain(trestle__cuda_worker *cw)
{
    if (!cw->have_fence_ev) {
        cudaError_t e = cudaEventCreateWithFlags(&cw->fence_ev, cudaEventBlockingSync |
                                                                    cudaEventDisableTiming);
        if (e != cudaSuccess)
            return e;
        cw->have_fence_ev = true;
    }
    cudaError_t e = cudaEventRecord(cw->fence_ev, cw->stream);
    return e == cudaSuccess ? wait_event(cw, cw->fence_ev, true) : e;
}

/* Also after a failure: what was queued before it may still be running. */
static int cuda_fence(trestle__copier *c, unsigned worker, trestle_error *err)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = trestle__cuda_worker_get(s, worker);
    if (!cw->have_stream || !cw->started)
        return trestle__cuda_worker_error(s, cw, err);
    trestle__cuda_flush(cw);
    cw->win_src = NULL; /* fenced memory gets rewritten: a conversion buffer, say */
    trestle__cuda_note(cw, drain(cw), "waiting for copies (cudaEventSynchronize)");
    return trestle__cuda_worker_error(s, cw, err);
}

static void cuda_reenter(trestle__copier *c, unsigned worker)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = &s->w[worker < s->nworkers ? worker : s->nworkers - 1];
    if (cw->started)
        trestle__cuda_note(cw, cudaSetDevice(s->device), "making the copy device current again "
                                                         "after the ready callback "
                                                         "(cudaSetDevice)");
}

static double cuda_wait_seconds(const trestle__copier *c)
{
    const trestle__cuda_state *s = c->state;
    double sum = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        sum += s->w[i].wait_seconds;
    return sum;
}

/* ---- the DMA time: the union of every mark's interval ---- */

static int span_cmp(const void *a, const void *b)
{
    const trestle__cuda_span *p = a, *q = b;
    return p->from < q->from ? -1 : p->from > q->from;
}

/* Call once the workers are done: their reference events are complete. */
static double cuda_device_seconds(const trestle__copier *c)
{
    const trestle__cuda_state *s = c->state;
    size_t n = 0, k = 0;
    const trestle__cuda_worker *first = NULL;
    for (unsigned i = 0; i < s->nworkers; i++) {
        n += s->w[i].nspans;
        if (!first && s->w[i].started && s->w[i].have_ref)
            first = &s->w[i];
    }
    trestle__cuda_span *all = n ? malloc(n * sizeof *all) : NULL;
    if (!all || !first) {
        free(all);
        return 0;
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        const trestle__cuda_worker *cw = &s->w[i];
        float off = 0;
        /* Each worker's clock starts at its own reference: move it onto the
         * first worker's (same device, so the events compare). */
        if (cw->nspans == 0 || cudaEventElapsedTime(&off, first->ref, cw->ref) != cudaSuccess)
            continue;
        for (size_t j = 0; j < cw->nspans; j++)
            all[k++] = (trestle__cuda_span){ cw->spans[j].from + off, cw->spans[j].to + off };
    }
    double total = 0;
    if (k > 0) {
        qsort(all, k, sizeof *all, span_cmp);
        double from = all[0].from, to = all[0].to;
        for (size_t j = 1; j < k; j++) {
            if (all[j].from > to) {
                total += to - from;
                from = all[j].from;
            }
            if (all[j].to > to)
                to = all[j].to;
        }
        total += to - from;
    }
    free(all);
    return total * 1e-3;
}

/* ---- lifetime ---- */

/* Free everything (the plan's trestle__kept release hook). */
static void cuda_release(trestle__kept *k)
{
    trestle__cuda_state *s = (trestle__cuda_state *)k;
    cudaError_t e;
    TRESTLE__WITH_DEVICE(&s->api, s->device, e, {
        for (unsigned i = 0; i < s->nworkers; i++) {
            trestle__cuda_worker *cw = &s->w[i];
            if (cw->have_stream) {
                trestle__cuda_window_free(cw);
                /* Idle by now; this waits for the window's free. */
                cudaStreamSynchronize(cw->stream);
                cudaStreamDestroy(cw->stream);
            } else if (cw->win) {
                cudaFree(cw->win);
            }
            for (unsigned j = 0; j < cw->nev; j++) {
                cudaEventDestroy(cw->ev[j]);
                cudaEventDestroy(cw->from[j]);
            }
            if (cw->have_fence_ev)
                cudaEventDestroy(cw->fence_ev);
            if (cw->have_ref)
                cudaEventDestroy(cw->ref);
            free(cw->bdst);
            free(cw->bsrc);
            free(cw->bsize);
            free(cw->spans);
        }
        if (s->have_start)
            cudaEventDestroy(s->start);
    });
    (void)e;
    free(s->w);
    free(s);
}

/* Wait for whatever a worker queued that no retired mark covers: copies
 * after its last mark, marks a failed or cancelled restore did not retire. */
static void settle(trestle__cuda_worker *cw)
{
    if (cw->have_stream && (cw->open || cw->len > 0)) {
        cudaError_t e = drain(cw);
        trestle__cuda_note(cw, e, "waiting for copies (cudaEventSynchronize)");
    }
    cw->head = cw->len = 0;
    cw->open = false;
    cw->bn = 0;
}

static void cuda_close(trestle__copier *c)
{
    trestle__cuda_state *s = c->state;
    cudaError_t e;
    bool healthy = true;
    if (!s)
        return;
    c->state = NULL;
    TRESTLE__WITH_DEVICE(&s->api, s->device, e, {
        for (unsigned i = 0; i < s->nworkers; i++) {
            settle(&s->w[i]);
            healthy = healthy && s->w[i].failed == cudaSuccess;
        }
    });
    if (e != cudaSuccess || !healthy || !s->keep_in) {
        cuda_release(&s->kept);
        return;
    }
    s->current = NULL;
    trestle__staging_keep(s->keep_in, &s->kept);
}

static const trestle__copier_ops cuda_ops = {
    .name = "cuda",
    .arena_alloc = trestle__cuda_copier_arena,
    .staging_add = trestle__cuda_staging_add,
    .copy = trestle__cuda_copy,
    .copy_region = trestle__cuda_copy_region,
    .copy_widen = trestle__cuda_copy_widen,
    .fence = cuda_fence,
    .mark = cuda_mark,
    .retire = cuda_retire,
    .wait_mark = cuda_wait_mark,
    .reenter = cuda_reenter,
    .wait_seconds = cuda_wait_seconds,
    .device_seconds = cuda_device_seconds,
    .close = cuda_close,
};

/* The start event: made on the device of the stream it is recorded on
 * (an event and the stream recording it share a device), and refused for
 * a stream being captured into a graph, which a restore cannot be part
 * of (its copies run on streams of its own, on the host's schedule). */
static int record_start(trestle__cuda_state *s, cudaStream_t stream, trestle_error *err)
{
    int sdev = s->device;
    cudaError_t e = cudaSuccess;
    if (stream) {
        enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        TRESTLE__WITH_DEVICE(&s->api, s->device, e, {
            e = cudaStreamGetDevice(stream, &sdev);
            if (e == cudaSuccess)
                e = cudaStreamIsCapturing(stream, &cap);
        });
        if (e != cudaSuccess)
            return trestle__cuda_fail(err, e, s->device, "inspecting the caller's stream "
                                                         "(cudaStreamGetDevice)");
        if (cap != cudaStreamCaptureStatusNone)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "the cuda_stream of the restore options is capturing a "
                                         "CUDA graph: a restore cannot be captured (its copies "
                                         "run on trestle's own streams); restore before the "
                                         "capture or on another stream");
    }
    TRESTLE__WITH_DEVICE(&s->api, sdev, e,
                         e = trestle__cuda_record_on(&s->start, &s->have_start, &s->start_device,
                                                     sdev, stream ? stream : cudaStreamLegacy));
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, s->device,
                                  stream ? "waiting on the caller's stream (cudaEventRecord)"
                                         : "waiting on the legacy default stream "
                                           "(cudaEventRecord)");
    return TRESTLE_OK;
}

/* The state kept for `device` from the last restore of the plan, grown to
 * `workers`, or a new one; NULL when out of memory. */
static trestle__cuda_state *state_get(trestle__staging **keep_in, int device, unsigned workers)
{
    trestle__cuda_state *s =
        keep_in ? (trestle__cuda_state *)trestle__staging_take(*keep_in, device) : NULL;
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        s->kept = (trestle__kept){ .release = cuda_release, .device = device };
        s->device = device;
    }
    if (s->nworkers < workers) {
        trestle__cuda_worker *w = realloc(s->w, workers * sizeof *w);
        if (!w) {
            cuda_release(&s->kept);
            return NULL;
        }
        memset(w + s->nworkers, 0, (workers - s->nworkers) * sizeof *w);
        for (unsigned i = s->nworkers; i < workers; i++)
            trestle__cuda_batch_alloc(&w[i]);
        s->w = w;
        s->nworkers = workers;
    }
    /* This restore's part starts afresh. */
    s->nregions = 0;
    s->current = NULL;
    s->keep_in = keep_in;
    for (unsigned i = 0; i < s->nworkers; i++) {
        trestle__cuda_worker *cw = &s->w[i];
        cw->started = false;
        cw->failed = cudaSuccess;
        cw->what = NULL;
        cw->wait_seconds = 0;
        cw->win_failed = false;
        cw->win_src = NULL;
        cw->nspans = 0;
    }
    return s;
}

int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              struct trestle__staging **keep_in, trestle_error *err)
{
    trestle__ctx_api api;
    int count = 0;
    cudaError_t ce = cudaSuccess, e = trestle__cuda_ctx_load(&api);
    /* A device query, in a guard all the same: the caller's thread keeps
     * its context, or its lack of one. */
    if (e == cudaSuccess)
        TRESTLE__KEEPING_CONTEXT(&api, e, ce = cudaGetDeviceCount(&count));
    else
        ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                     "no usable CUDA device (cudaGetDeviceCount: %s)",
                                     ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, device, "finding cuCtxGetCurrent/cuCtxSetCurrent/"
                                                  "cuPointerGetAttribute "
                                                  "(cudaGetDriverEntryPointByVersion)");
    if (device < 0 || device >= count)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                     "CUDA device %d does not exist (this host has %d)", device,
                                     count);
    trestle__cuda_state *s = state_get(keep_in, device, workers ? workers : 1);
    if (!s)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    c->ops = &cuda_ops;
    c->state = s;
    c->host_dests = false;
    c->marks = MARKS;
    s->api = api;
    int rc = record_start(s, (cudaStream_t)stream, err);
    if (rc != TRESTLE_OK)
        cuda_close(c);
    return rc;
}

void trestle__copier_cuda_share(trestle__copier *c, int *current)
{
    ((trestle__cuda_state *)c->state)->current = current;
}

#endif /* TRESTLE_HAVE_CUDA */
