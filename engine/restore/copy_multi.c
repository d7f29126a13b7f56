/*
 * copy_multi.c - the multi-device copier: one restore onto several GPUs of
 * this process (trestle_restore_options.devices), behind copy.h like the
 * host and CUDA copiers, so the workers (engine/restore/restore_worker.c) and the
 * conversions (engine/restore/restore_convert.c) do not know there are several.
 *
 * It holds one CUDA copier per device (engine/restore/copy_cuda.c), all on the
 * same workers: a worker has a stream on each device. A copy is handed a
 * destination address; a table of routes (one per op, made by
 * engine/restore/restore_multi.c) says which devices want those bytes and where,
 * and the copy is queued from the same pinned staging bytes to each of
 * them: the bytes were read and CRC-checked once. A mark is one mark per
 * device, and it retires only when every device's copies are complete,
 * so that a staging buffer goes back to the pool (to be read into again)
 * only after the slowest device has it. retire() can be asked to look
 * without waiting; the devices whose mark was already seen complete are
 * remembered per worker, as their copier has retired it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "error.h"

#define MAX_DEVICES 64 /* device sets are uint64_t masks */

/* Return a failing device copier's code (it filled the error). */
#define RETURN_IF_FAILED(expr)                                                  \
    do {                                                                        \
        int rc_ = (expr);                                                       \
        if (rc_ != TRESTLE_OK)                                                  \
            return rc_;                                                         \
    } while (0)

typedef struct multi_worker {
    uint64_t retired;        /* devices whose copier retired the oldest mark already */
    const void *lost;        /* a destination no route knows (an internal error), or NULL */
    char pad[48];            /* workers do not share cache lines */
} multi_worker;

typedef struct multi_state {
    size_t n;
    trestle__copier *dev;    /* n CUDA copiers */
    size_t opened;
    unsigned nworkers;
    multi_worker *w;
    int *current;            /* per worker: the device its thread has current (copy_cuda.c) */
    trestle__route *routes;  /* sorted by lo */
    size_t nroutes;
} multi_state;

static multi_worker *worker(multi_state *s, unsigned w)
{
    return &s->w[w < s->nworkers ? w : s->nworkers - 1];
}

/* The route of destination address p, or NULL (recorded against the worker). */
static const trestle__route *route(multi_state *s, unsigned w, const void *p)
{
    const uint8_t *b = p;
    size_t lo = 0, hi = s->nroutes;
    while (lo < hi) { /* the last route starting at or before p */
        size_t mid = lo + (hi - lo) / 2;
        if (s->routes[mid].lo <= b)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const trestle__route *r = &s->routes[lo - 1];
        if (b < r->lo + (r->bytes ? r->bytes : 1))
            return r;
    }
    if (!worker(s, w)->lost)
        worker(s, w)->lost = p;
    return NULL;
}

static int lost_error(multi_state *s, unsigned w, trestle_error *err)
{
    const void *p = worker(s, w)->lost;
    if (!p)
        return TRESTLE_OK;
    return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "internal error: a copy to %p "
                                 "matches no destination of the multi-device restore", p);
}

/* ---- copies: to every device the route names ---- */

static uint64_t multi_copy(trestle__copier *c, unsigned w, void *dst, const void *src, uint64_t n)
{
    multi_state *s = c->state;
    const trestle__route *r = route(s, w, dst);
    uint64_t total = 0;
    for (size_t k = 0; r && k < s->n; k++) {
        if (!(r->mask >> k & 1))
            continue;
        trestle__copier *d = &s->dev[k];
        total += d->ops->copy(d, w, r->to[k] + ((const uint8_t *)dst - r->lo), src, n);
    }
    return total;
}

static uint64_t multi_copy_region(trestle__copier *c, unsigned w, void *dst,
                                  const trestle__region *reg, const void *src, uint64_t lo,
                                  uint64_t n)
{
    multi_state *s = c->state;
    const trestle__route *r = route(s, w, dst);
    uint64_t total = 0;
    for (size_t k = 0; r && k < s->n; k++) {
        if (!(r->mask >> k & 1))
            continue;
        trestle__copier *d = &s->dev[k];
        total += d->ops->copy_region(d, w, r->to[k] + ((const uint8_t *)dst - r->lo), reg, src,
                                     lo, n);
    }
    return total;
}

/* Widening on the device only for a destination on one device: each
 * device's copier decides alone whether it has a window for it, and a
 * copy some devices widened and others refused could not be completed. */
static uint64_t multi_copy_widen(trestle__copier *c, unsigned w, void *dst, const void *src,
                                 int src_dtype, int dst_dtype, uint64_t count)
{
    multi_state *s = c->state;
    const trestle__route *r = route(s, w, dst);
    if (!r || r->mask == 0 || (r->mask & (r->mask - 1)) != 0)
        return 0;
    size_t k = (size_t)__builtin_ctzll(r->mask);
    trestle__copier *d = &s->dev[k];
    return d->ops->copy_widen(d, w, r->to[k] + ((const uint8_t *)dst - r->lo), src, src_dtype,
                              dst_dtype, count);
}

/* ---- marks: one per device, retired together ---- */

static int multi_mark(trestle__copier *c, unsigned w, trestle_error *err)
{
    multi_state *s = c->state;
    for (size_t k = 0; k < s->n; k++)
        RETURN_IF_FAILED(s->dev[k].ops->mark(&s->dev[k], w, err));
    return lost_error(s, w, err);
}

/* Every device is asked, also after one failed: with `wait`, each still
 * waits for its copies; the first failure is returned. */
static int multi_retire(trestle__copier *c, unsigned w, bool wait, bool *done, trestle_error *err)
{
    multi_state *s = c->state;
    multi_worker *mw = worker(s, w);
    int rc = TRESTLE_OK;
    *done = false;
    for (size_t k = 0; k < s->n; k++) {
        bool d = false;
        if (mw->retired >> k & 1)
            continue;
        trestle_error e;
        int r = s->dev[k].ops->retire(&s->dev[k], w, wait, &d, &e);
        if (r != TRESTLE_OK && rc == TRESTLE_OK) {
            rc = r;
            if (err)
                *err = e;
        }
        if (d)
            mw->retired |= (uint64_t)1 << k;
    }
    if (rc != TRESTLE_OK)
        return rc;
    uint64_t all = s->n == MAX_DEVICES ? ~(uint64_t)0 : ((uint64_t)1 << s->n) - 1;
    if (mw->retired == all) {
        mw->retired = 0;
        *done = true;
    }
    return lost_error(s, w, err);
}

/* The k-th oldest mark of the multi copier is each device's k-th, less
 * one where that device has retired the oldest already. */
static int multi_wait_mark(trestle__copier *c, unsigned w, unsigned k, trestle_error *err)
{
    multi_state *s = c->state;
    multi_worker *mw = worker(s, w);
    for (size_t d = 0; d < s->n; d++) {
        unsigned behind = (unsigned)(mw->retired >> d & 1);
        if (k >= behind)
            RETURN_IF_FAILED(s->dev[d].ops->wait_mark(&s->dev[d], w, k - behind, err));
    }
    return lost_error(s, w, err);
}

/* Every device fences, also after one failed; the first failure is returned. */
static int multi_fence(trestle__copier *c, unsigned w, trestle_error *err)
{
    multi_state *s = c->state;
    int rc = TRESTLE_OK;
    for (size_t k = 0; k < s->n; k++) {
        trestle_error e;
        int r = s->dev[k].ops->fence(&s->dev[k], w, &e);
        if (r != TRESTLE_OK && rc == TRESTLE_OK) {
            rc = r;
            if (err)
                *err = e;
        }
    }
    return rc != TRESTLE_OK ? rc : lost_error(s, w, err);
}

/* ---- the rest: every device, or the first ---- */

static int multi_arena_alloc(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                             trestle_error *err)
{
    multi_state *s = c->state;
    return s->dev[0].ops->arena_alloc(&s->dev[0], bytes, out, err);
}

static int multi_staging_add(trestle__copier *c, void *base, size_t bytes, trestle_error *err)
{
    multi_state *s = c->state;
    for (size_t k = 0; k < s->n; k++)
        RETURN_IF_FAILED(s->dev[k].ops->staging_add(&s->dev[k], base, bytes, err));
    return TRESTLE_OK;
}

static double multi_wait_seconds(const trestle__copier *c)
{
    const multi_state *s = c->state;
    double sum = 0;
    for (size_t k = 0; k < s->n; k++)
        sum += s->dev[k].ops->wait_seconds(&s->dev[k]);
    return sum;
}

/* Devices keep clocks of their own: their events cannot be compared, so
 * the figure is the busiest device's (the devices copy side by side). */
static double multi_device_seconds(const trestle__copier *c)
{
    const multi_state *s = c->state;
    double most = 0;
    for (size_t k = 0; k < s->n; k++) {
        double t = s->dev[k].ops->device_seconds(&s->dev[k]);
        if (t > most)
            most = t;
    }
    return most;
}

/* The callback may have switched the thread's device: let the next copier
 * used on this worker make its own current again. */
static void multi_reenter(trestle__copier *c, unsigned w)
{
    multi_state *s = c->state;
    s->current[w < s->nworkers ? w : s->nworkers - 1] = -1;
}

static void multi_close(trestle__copier *c)
{
    multi_state *s = c->state;
    if (!s)
        return;
    for (size_t k = 0; k < s->opened; k++)
        s->dev[k].ops->close(&s->dev[k]);
    free(s->dev);
    free(s->w);
    free(s->current);
    free(s->routes);
    free(s);
    c->state = NULL;
}

static const trestle__copier_ops multi_ops = {
    .name = "cuda",
    .arena_alloc = multi_arena_alloc,
    .staging_add = multi_staging_add,
    .copy = multi_copy,
    .copy_region = multi_copy_region,
    .copy_widen = multi_copy_widen,
    .fence = multi_fence,
    .mark = multi_mark,
    .retire = multi_retire,
    .wait_mark = multi_wait_mark,
    .reenter = multi_reenter,
    .wait_seconds = multi_wait_seconds,
    .device_seconds = multi_device_seconds,
    .close = multi_close,
};

int trestle__copier_open_multi(trestle__copier *c, const int *devices, size_t n,
                               unsigned workers, void *stream, struct trestle__staging **keep_in,
                               trestle_error *err)
{
    if (n < 2 || n > MAX_DEVICES)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "a multi-device restore "
                                     "takes 2 to %d devices, not %zu", MAX_DEVICES, n);
    multi_state *s = calloc(1, sizeof *s);
    workers = workers ? workers : 1;
    if (s) {
        s->dev = calloc(n, sizeof *s->dev);
        s->w = calloc(workers, sizeof *s->w);
        s->current = malloc(workers * sizeof *s->current);
    }
    c->ops = &multi_ops;
    c->state = s;
    if (!s || !s->dev || !s->w || !s->current) {
        if (s)
            multi_close(c);
        c->state = NULL;
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    s->n = n;
    s->nworkers = workers;
    for (unsigned i = 0; i < workers; i++)
        s->current[i] = -1;
    for (size_t k = 0; k < n; k++) {
        int rc = trestle__copier_open_cuda(&s->dev[k], devices[k], workers, stream, keep_in,
                                           err);
        if (rc != TRESTLE_OK) {
            multi_close(c);
            return rc;
        }
        s->opened++;
        trestle__copier_cuda_share(&s->dev[k], s->current);
    }
    c->host_dests = false;
    c->marks = s->dev[0].marks;
    return TRESTLE_OK;
}

static int route_cmp(const void *a, const void *b)
{
    const trestle__route *p = a, *q = b;
    return p->lo < q->lo ? -1 : p->lo > q->lo;
}

int trestle__copier_multi_routes(trestle__copier *c, const trestle__route *r, size_t n,
                                 trestle_error *err)
{
    multi_state *s = c->state;
    trestle__route *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    memcpy(copy, r, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, route_cmp);
    free(s->routes);
    s->routes = copy;
    s->nroutes = n;
    return TRESTLE_OK;
}

trestle__copier *trestle__copier_of_device(trestle__copier *c, size_t k)
{
    if (c->ops != &multi_ops)
        return c;
    multi_state *s = c->state;
    return &s->dev[k < s->n ? k : 0];
}

void trestle__copier_set_window(trestle__copier *c, uint64_t bytes)
{
    c->window_bytes = bytes;
    if (c->ops != &multi_ops)
        return;
    multi_state *s = c->state;
    for (size_t k = 0; k < s->n; k++)
        s->dev[k].window_bytes = bytes;
}
