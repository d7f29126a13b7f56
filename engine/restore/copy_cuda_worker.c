/*
 * copy_cuda_worker.c - a CUDA copier worker's own state: its stream, made
 * in its thread on first use and ordered after the restore's start; the
 * events of its marks, made once; its first failure, kept (sticky); its
 * batch of small copies and its device window. Both halves of the copier
 * build on it: engine/restore/copy_cuda.c queues copies on a worker, and
 * engine/restore/copy_cuda_marks.c marks, retires and keeps what it made.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"

#if TRESTLE_HAVE_CUDA

#include "copy_cuda_worker.h"

/* ---- failures ---- */

void trestle__cuda_note(trestle__cuda_worker *cw, cudaError_t e, const char *what)
{
    if (e != cudaSuccess && cw->failed == cudaSuccess) {
        cw->failed = e;
        cw->what = what;
    }
}

int trestle__cuda_worker_error(const trestle__cuda_state *s, const trestle__cuda_worker *cw,
                               trestle_error *err)
{
    if (cw->failed == cudaSuccess)
        return TRESTLE_OK;
    return trestle__cuda_fail(err, cw->failed, s->device, cw->what);
}

/* ---- streams and events ---- */

/* An event of the worker's: timing on for the marks and the reference. */
static bool event_new(trestle__cuda_worker *cw, cudaEvent_t *ev, bool timing)
{
    unsigned flags = cudaEventBlockingSync | (timing ? 0 : cudaEventDisableTiming);
    trestle__cuda_note(cw, cudaEventCreateWithFlags(ev, flags),
                       "creating a copy event (cudaEventCreateWithFlags)");
    return cw->failed == cudaSuccess;
}

bool trestle__cuda_slot_events(trestle__cuda_worker *cw, unsigned slot)
{
    while (cw->nev <= slot && cw->failed == cudaSuccess) {
        if (!event_new(cw, &cw->ev[cw->nev], true))
            return false;
        if (!event_new(cw, &cw->from[cw->nev], true)) {
            cudaEventDestroy(cw->ev[cw->nev]);
            return false;
        }
        cw->nev++;
    }
    return cw->failed == cudaSuccess;
}

trestle__cuda_worker *trestle__cuda_worker_get(trestle__cuda_state *s, unsigned w)
{
    unsigned i = w < s->nworkers ? w : s->nworkers - 1;
    trestle__cuda_worker *cw = &s->w[i];
    if (cw->started && s->current && s->current[i] != s->device && cw->failed == cudaSuccess) {
        /* Another device's copier ran here last; kernels need their own. */
        trestle__cuda_note(cw, cudaSetDevice(s->device), "switching the copy device "
                                                         "(cudaSetDevice)");
        s->current[i] = s->device;
    }
    if (cw->started || cw->failed != cudaSuccess)
        return cw;
    if (s->current)
        s->current[i] = s->device;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess && !cw->have_stream) {
        e = cudaStreamCreateWithFlags(&cw->stream, cudaStreamNonBlocking);
        cw->have_stream = e == cudaSuccess;
        /* Every mark's events at once: a later restore that holds more
         * marks in flight makes none. */
        if (cw->have_stream && !trestle__cuda_slot_events(cw, TRESTLE__CUDA_MARKS - 1))
            return cw;
    }
    /* Every restore's copies come after the work the caller queued before it. */
    if (e == cudaSuccess && s->have_start)
        e = cudaStreamWaitEvent(cw->stream, s->start, 0);
    if (e != cudaSuccess) {
        trestle__cuda_note(cw, e, "creating a copy stream");
        return cw;
    }
    if (!cw->have_ref)
        cw->have_ref = event_new(cw, &cw->ref, true);
    if (cw->have_ref)
        trestle__cuda_note(cw, cudaEventRecord(cw->ref, cw->stream),
                           "marking copies (cudaEventRecord)");
    cw->started = cw->failed == cudaSuccess;
    return cw;
}

void trestle__cuda_begin(trestle__cuda_worker *cw)
{
    unsigned slot = (cw->head + cw->len) % TRESTLE__CUDA_MARKS;
    if (cw->open || cw->failed != cudaSuccess || cw->len == TRESTLE__CUDA_MARKS)
        return;
    cw->open = true; /* copies follow, whether or not they get a start */
    if (trestle__cuda_slot_events(cw, slot)) {
        trestle__cuda_note(cw, cudaEventRecord(cw->from[slot], cw->stream),
                           "marking copies (cudaEventRecord)");
        cw->timed[slot] = cw->failed == cudaSuccess;
    }
}

/* ---- small copies, batched ---- */

void trestle__cuda_batch_alloc(trestle__cuda_worker *cw)
{
    cw->bdst = malloc(TRESTLE__CUDA_BATCH_MAX * sizeof *cw->bdst);
    cw->bsrc = malloc(TRESTLE__CUDA_BATCH_MAX * sizeof *cw->bsrc);
    cw->bsize = malloc(TRESTLE__CUDA_BATCH_MAX * sizeof *cw->bsize);
    if (!cw->bdst || !cw->bsrc || !cw->bsize) {
        /* Unbatched, then: every small copy is a call of its own. */
        free(cw->bdst);
        free(cw->bsrc);
        free(cw->bsize);
        cw->bdst = NULL;
        cw->bsrc = NULL;
        cw->bsize = NULL;
    }
}

/* Queue the batched small copies, in one call. Everything else the
 * worker queues comes after them. */
void trestle__cuda_flush(trestle__cuda_worker *cw)
{
    if (cw->bn == 0 || cw->failed != cudaSuccess) {
        cw->bn = 0;
        return;
    }
    trestle__cuda_begin(cw);
    if (cw->bn == 1) {
        trestle__cuda_note(cw, cudaMemcpyAsync(cw->bdst[0], cw->bsrc[0], cw->bsize[0],
                                               cudaMemcpyHostToDevice, cw->stream),
                           "cudaMemcpyAsync (host to device)");
    } else {
        struct cudaMemcpyAttributes attr;
        size_t first = 0;
        memset(&attr, 0, sizeof attr);
        attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream; /* staging, in stream order */
        trestle__cuda_note(cw, cudaMemcpyBatchAsync(cw->bdst, cw->bsrc, cw->bsize, cw->bn, &attr,
                                                    &first, 1, cw->stream),
                           "cudaMemcpyBatchAsync (host to device)");
    }
    cw->bn = 0;
}

/* ---- the device window ---- */

void trestle__cuda_window_free(trestle__cuda_worker *cw)
{
    if (!cw->win)
        return;
    /* cudaFree would wait for the whole device; the window is the stream's. */
    if (cw->win_async)
        cudaFreeAsync(cw->win, cw->stream);
    else
        cudaFree(cw->win);
    cw->win = NULL;
    cw->win_bytes = 0;
}

#endif /* TRESTLE_HAVE_CUDA */
