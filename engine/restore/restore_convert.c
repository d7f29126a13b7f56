/*
 * restore_convert.c - dtype conversion on load inside the restore pipeline:
 * an op whose target dtype differs from the stored one (float32 weights
 * restored as bfloat16, say) gets its elements converted by the worker
 * that copies them, with engine/common/convert.c's CPU twins, between the CRC
 * check (always over the stored bytes) and the copy.
 *
 * The piece and region of a converting op describe its destination layout
 * (engine/plan/plan.h): whole elements [a, b) of a stored span are converted
 * into the worker's conversion buffer, where they are bytes
 * [a x dst_es, b x dst_es) of the extent as if it were stored in the target
 * dtype, and go through the copier's ordinary copy or copy_region from
 * there. The buffers are one region of the plan's staging memory
 * (engine/memory/staging.c), taken only when some op converts, and pinned for a
 * device restore like the staging pool: device copies DMA out of them.
 *
 * Each worker's buffer is a ring: conversions take the next free bytes,
 * and the bytes a read's conversions took are free again once that
 * read's mark retires (its copies are done; restore_worker.c notes it),
 * or, when the ring comes round to them first, once the worker has waited
 * for that one mark (copy.h, wait_mark). So a narrowing conversion (float32
 * restored as bfloat16, the common inference case) never waits for the
 * worker's whole stream: the ring holds about four reads' conversions,
 * and by the time it comes round, their marks are usually done.
 *
 * A copier that converts on the device (copy_widen: the CUDA copier, for
 * widening pairs into whole-tensor destinations) gets the stored elements
 * instead, and the CPU converts nothing.
 *
 * Seams: an extent's parts end at file-offset chunk boundaries, so when the
 * extent starts at an odd offset an element can straddle two parts, which
 * different workers handle. Each part stores its bytes of such an element
 * in the extent's seam slot for that boundary (no two parts write the same
 * byte), and the worker that finishes the extent, once all parts are in and
 * the CRC holds, converts the seam elements and copies them to every
 * converting piece before any op is reported ready. Chunks are at least a
 * page, far more than an element, so no element spans two boundaries.
 *
 * Owns: the conversion buffers and the seam slots of one restore.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "error.h"
#include "restore.h"
#include "staging.h"

#define CONV_ALIGN 64           /* each conversion starts on a cache line */
#define CONV_SLACK 256          /* room for that alignment, several conversions per span */
#define CONV_PAGE 4096          /* buffers are whole pages: cudaHostRegister pins pages */

_Static_assert(TRESTLE__DIO_ALIGN >= 16, "a chunk must hold more than one element of any dtype");

/* ---- setup ---- */

/* The most stored bytes one copy_pieces() call is handed: a host restore
 * copies in TRESTLE__COPY_STEP steps, a device restore whole parts. */
static uint64_t span_max(const trestle__restore *x)
{
    if (x->copier.host_dests && x->chunk > TRESTLE__COPY_STEP)
        return TRESTLE__COPY_STEP;
    return x->chunk;
}

int trestle__restore_convert_open(trestle__restore *x, trestle_error *err)
{
    const trestle_plan *p = x->plan;
    uint64_t seams = 0, per, total;
    bool any = false;

    for (size_t e = 0; e < p->num_extents; e++) {
        const trestle__extent *ext = &p->extents[e];
        trestle__ext_state *st = &x->ext[e];
        for (size_t k = 0; k < ext->num_pieces; k++) {
            const trestle__plan_op *op = &p->ops[p->pieces[ext->first_piece + k].op];
            if (op->convert && op->dest_kind != TRESTLE_DEST_DISCARD)
                st->convert_es = (uint32_t)op->src_es;
        }
        if (!st->convert_es)
            continue;
        any = true;
        if (st->parts > 1)
            seams += (uint64_t)(st->parts - 1) * st->convert_es;
    }
    if (!any)
        return TRESTLE_OK;

    /* Calloc'd: slots of boundaries that cut no element are converted too
     * (harmlessly, never copied), and should not be uninitialised. */
    if (seams > SIZE_MAX || !(x->seam_bytes = calloc(seams ? (size_t)seams : 1, 1)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory for %" PRIu64
                                     " bytes of conversion seams", seams);
    seams = 0;
    for (size_t e = 0; e < p->num_extents; e++) {
        trestle__ext_state *st = &x->ext[e];
        if (st->convert_es && st->parts > 1) {
            st->seam = x->seam_bytes + seams;
            seams += (uint64_t)(st->parts - 1) * st->convert_es;
        }
    }

    /* Converting a span of n stored bytes takes at most 2n (float16 ->
     * float32), and the pairs out of one stored dtype together take at
     * most that too (float32 -> bfloat16 and -> float16: n/2 each). Only
     * workers convert: the calling thread finishes empty extents alone. */
    per = (2 * span_max(x) + CONV_SLACK + CONV_PAGE - 1) & ~(uint64_t)(CONV_PAGE - 1);
    if (!tr_mul_u64(per, x->opt.threads, &total) || total > SIZE_MAX)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "conversion buffers overflow");
    uint8_t *region = NULL;
    int device = x->copier.host_dests ? -1 : x->device;
    int rc = trestle__staging_get(&x->plan->staging, TRESTLE__STAGING_CONVERT, x->opt.threads,
                                  (size_t)per, device, x->numa_node, NULL, &region, err);
    if (rc != TRESTLE_OK)
        return rc;
    x->conv_region = region;
    x->conv_bytes = (size_t)per;
    /* Device copies read these buffers as they read staging. */
    if (x->copier.ops->staging_add)
        return x->copier.ops->staging_add(&x->copier, region, (size_t)total, err);
    return TRESTLE_OK;
}

void trestle__restore_convert_close(trestle__restore *x)
{
    free(x->seam_bytes); /* the buffers are the plan's staging memory */
    x->conv_region = NULL;
    x->seam_bytes = NULL;
}

/* ---- seams ---- */

/* Extent position of the boundary after part j (see part_length()). */
static uint64_t boundary(const trestle__restore *x, size_t e, uint64_t j)
{
    return x->ext[e].first_len + j * x->chunk;
}

/* Bytes [lo, hi) at p (extent positions, inside one element) into the
 * seam slot of the boundary at `at`. */
static void seam_put(trestle__restore *x, size_t e, uint64_t at, const uint8_t *p, uint64_t pos,
                     uint64_t lo, uint64_t hi)
{
    const trestle__ext_state *st = &x->ext[e];
    uint64_t es = st->convert_es, j = (at - st->first_len) / x->chunk;
    memcpy(st->seam + j * es + lo % es, p + (lo - pos), (size_t)(hi - lo));
}

void trestle__restore_seam_store(trestle__restore *x, size_t e, const uint8_t *p, uint64_t pos,
                                 uint64_t n)
{
    uint64_t es = x->ext[e].convert_es, end = pos + n;
    uint64_t head = (pos + es - 1) / es * es, tail = end / es * es;

    if (pos % es) /* the part starts inside an element: the boundary at pos */
        seam_put(x, e, pos, p, pos, pos, head < end ? head : end);
    if (end % es && end < x->plan->extents[e].size) /* it ends inside one */
        seam_put(x, e, end, p, pos, tail > pos ? tail : pos, end);
}

/* ---- the conversion ring ---- */

/* Wait for everything worker w queued: its whole ring is free then. */
static bool fence(trestle__restore *x, unsigned w)
{
    trestle_error le;
    if (x->copier.ops->fence(&x->copier, w, &le) != TRESTLE_OK) {
        trestle__restore_fail(x, &le);
        return false;
    }
    x->wstats[w].conv_free = x->wstats[w].conv_head;
    return true;
}

/* Wait until the first `upto` bytes handed out of w's ring are free: for
 * the marks of the pending reads that used them, oldest first, one at a
 * time; for bytes this read took itself (no mark yet), everything. */
static bool wait_free(trestle__restore *x, unsigned w, uint64_t upto)
{
    trestle__worker_stats *ws = &x->wstats[w];
    trestle__copier *cp = &x->copier;
    if (upto <= ws->conv_free)
        return true;
    if (!cp->ops->mark) { /* copies are done when the call returns */
        ws->conv_free = ws->conv_head;
        return true;
    }
    for (unsigned k = 0; k < ws->plen && upto > ws->conv_free; k++) {
        const trestle__pending *pd = &ws->pend[(ws->phead + k) % cp->marks];
        if (pd->conv_end <= ws->conv_free)
            continue;
        trestle_error le;
        if (cp->ops->wait_mark(cp, w, k, &le) != TRESTLE_OK) {
            trestle__restore_fail(x, &le);
            return false;
        }
        ws->conv_free = pd->conv_end;
    }
    return upto <= ws->conv_free || fence(x, w);
}

/* `need` free bytes of worker w's ring, or NULL with the failure recorded.
 * A take that would run past the ring's end starts at its beginning. */
static uint8_t *ring_take(trestle__restore *x, unsigned w, uint64_t need, const char *key)
{
    trestle__worker_stats *ws = &x->wstats[w];
    uint64_t size = x->conv_bytes, pos = ws->conv_head;
    if (need > size) { /* a span longer than convert_open planned for */
        trestle_error le;
        trestle__error_set(&le, TRESTLE_E_LIMIT, 0, key, NULL, -1, (int64_t)need,
                           "internal error: converting tensor '%s' needs %" PRIu64 " bytes at "
                           "once, the conversion buffer holds %" PRIu64, key, need, size);
        trestle__restore_fail(x, &le);
        return NULL;
    }
    if (pos % size + need > size)
        pos += size - pos % size;
    /* Those bytes were last handed out at positions below pos + need - size. */
    uint64_t reused = pos + need > size ? pos + need - size : 0;
    if (!wait_free(x, w, reused < ws->conv_head ? reused : ws->conv_head))
        return NULL;
    ws->conv_head = pos + need;
    return x->conv_region + (size_t)w * size + pos % size;
}

bool trestle__restore_convert_seams(trestle__restore *x, unsigned w, size_t e)
{
    const trestle_plan *plan = x->plan;
    const trestle__extent *ext = &plan->extents[e];
    const trestle__ext_state *st = &x->ext[e];
    uint64_t es = st->convert_es, copied = 0, nb = st->parts - 1;

    for (size_t k = 0; k < ext->num_pieces; k++) {
        const trestle__piece *pc = &plan->pieces[ext->first_piece + k];
        const trestle__plan_op *op = &plan->ops[pc->op];
        if (!op->convert || op->dest_kind == TRESTLE_DEST_DISCARD)
            continue;
        trestle__copier *cp = trestle__restore_copier_for(x, op);
        uint64_t des = op->dst_es, room = x->conv_bytes / 2 / des;
        /* Slots are consecutive elements: convert them in runs of half the
         * ring. The op is reported ready only once these copies are done,
         * so each run is fenced: the one wait a seam costs. */
        for (uint64_t j0 = 0; j0 < nb; j0 += room) {
            uint64_t cnt = nb - j0 < room ? nb - j0 : room, run = 0;
            uint8_t *buf = ring_take(x, w, cnt * des, op->key);
            if (!buf)
                return false;
            trestle__convert(buf, op->out_dtype, st->seam + j0 * es, op->dtype, cnt);
            for (uint64_t j = j0; j < j0 + cnt; j++) {
                uint64_t at = boundary(x, e, j);
                if (at % es == 0)
                    continue; /* this boundary cuts no element */
                uint64_t lo = at / es * des;
                const uint8_t *src = buf + (size_t)(j - j0) * des;
                if (pc->region == TRESTLE__NO_REGION)
                    run += cp->ops->copy(cp, w, (uint8_t *)op->dest + pc->dst_offset + lo, src,
                                         des);
                else
                    run += cp->ops->copy_region(cp, w, op->dest, &plan->regions[pc->region], src,
                                                lo, des);
            }
            /* No seam element in this run (boundaries on element edges): no wait. */
            if (run > 0 && !fence(x, w))
                return false;
            copied += run;
        }
    }
    x->wstats[w].copied += copied;
    return true;
}

/* ---- spans ---- */

/* `count` elements at src converted to op's target dtype in worker w's
 * ring, made once per span and target; NULL when a wait failed. */
static const uint8_t *converted(trestle__restore *x, unsigned w, trestle__conv_span *span,
                                const trestle__plan_op *op, const uint8_t *src, uint64_t count)
{
    const unsigned slots = sizeof span->dtype / sizeof span->dtype[0];
    /* Each conversion starts on a cache line; a small one (a tensor of a
     * few elements) on 16 bytes, so that thousands of them in one read
     * fill no more of the ring than their bytes. */
    uint64_t bytes = count * op->dst_es, align = bytes < 1024 ? 16 : CONV_ALIGN;
    uint64_t need = (bytes + align - 1) & ~(align - 1);

    for (unsigned i = 0; i < span->n; i++)
        if (span->dtype[i] == op->out_dtype)
            return span->at[i];
    uint8_t *buf = ring_take(x, w, need, op->key);
    if (!buf)
        return NULL;
    trestle__convert(buf, op->out_dtype, src, op->dtype, count);
    if (span->n < slots) {
        span->dtype[span->n] = op->out_dtype;
        span->at[span->n++] = buf;
    }
    return buf;
}

uint64_t trestle__restore_copy_converted(trestle__restore *x, unsigned w, trestle__copier *cp,
                                         const trestle__piece *pc, const uint8_t *p, uint64_t pos,
                                         uint64_t n, trestle__conv_span *span)
{
    const trestle__plan_op *op = &x->plan->ops[pc->op];
    uint64_t es = op->src_es, des = op->dst_es;
    uint64_t a = (pos + es - 1) / es, b = (pos + n) / es; /* whole elements [a, b) */

    if (b <= a)
        return 0; /* only parts of elements: they land through the seams */
    if (pc->region == TRESTLE__NO_REGION && cp->ops->copy_widen) {
        /* The device converts widening pairs: half the bytes cross the bus. */
        uint64_t done = cp->ops->copy_widen(cp, w, (uint8_t *)op->dest + pc->dst_offset + a * des,
                                            p + (a * es - pos), op->dtype, op->out_dtype, b - a);
        if (done)
            return done;
    }
    const uint8_t *conv = converted(x, w, span, op, p + (a * es - pos), b - a);
    if (!conv)
        return 0;
    if (pc->region == TRESTLE__NO_REGION)
        return cp->ops->copy(cp, w, (uint8_t *)op->dest + pc->dst_offset + a * des, conv,
                             (b - a) * des);
    return cp->ops->copy_region(cp, w, op->dest, &x->plan->regions[pc->region], conv, a * des,
                                (b - a) * des);
}
