/*
 * plan_create.c - the restore planner: an op list (TensorFlow RestoreV2's
 * names, shape_and_slices and dtypes, plus destinations) becomes a plan of
 * resolved ops, deduplicated stored extents, the pieces that copy each
 * extent into its ops, and the coalesced reads (batches) the pipeline
 * issues.
 *
 * Sits between the checkpoint (engine/format/checkpoint.h, already validated, so
 * stored numbers are trusted here) and the pipeline (engine/restore/restore.c),
 * which relies on the invariants listed in engine/plan/plan.h. This file holds
 * the options and the order of the steps; the steps live in
 * engine/plan/plan_ops.c (op list -> resolved ops) and engine/plan/plan_pieces.c
 * (resolved ops -> pieces) and engine/plan/plan_extents.c (pieces -> extents ->
 * batches), sharing the builder of
 * engine/plan/plan_build.h; names (renames, exclusions) live in
 * engine/plan/plan_names.c, and the missing-key report with its suggestions
 * in engine/plan/plan_suggest.c. The built plan's accessors and destructor
 * are engine/plan/plan.c, the bottom of the planner, which calls none of these.
 *
 * Checks run in TensorFlow's order: every missing key, then every dtype
 * mismatch, then (trestle's own) every target dtype the stored one cannot
 * be converted to, then op by op (in the caller's order) whether the dtype
 * can be restored at all, its shape_and_slices, the shape, the destination
 * and the stored slices; last, as TensorFlow's Assign after its restore,
 * every restored shape against the declared one (plan option op_shapes). Nothing is read from the shard files; the plan owns
 * its arrays, op names, output shapes and any engine-allocated destinations.
 */
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "error.h"
#include "options.h"
#include "plan.h"
#include "plan_build.h"
#include "plan_names.h"
#include "plan_shard.h"

#define DEFAULT_MAX_BATCH_BYTES (16ull << 20) /* one big read, still a small staging share */
#define DEFAULT_MAX_GAP_BYTES (64ull << 10)   /* reading a hole is cheaper than a new request */

void trestle_plan_options_init(trestle_plan_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->max_batch_bytes = DEFAULT_MAX_BATCH_BYTES;
    opt->max_gap_bytes = DEFAULT_MAX_GAP_BYTES;
    opt->shard_world = 1;
}

/* Also used by engine/plan/plan_part.c when a plan keeps only some extents. */
void trestle__plan_fill_stats(trestle_plan *p)
{
    trestle_plan_stats *s = &p->stats;
    memset(s, 0, sizeof *s);
    s->ops = p->num_ops;
    for (size_t i = 0; i < p->num_ops; i++) {
        if (p->ops[i].skipped)
            s->skipped++;
        else
            s->output_bytes += p->ops[i].bytes;
    }
    for (size_t i = 0; i < p->num_batches; i++)
        s->read_bytes += p->batches[i].length;
    s->extents = p->num_extents;
    s->batches = p->num_batches;
}

int trestle_plan_create(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                        const trestle_plan_options *opt, trestle_plan **out, trestle_error *err)
{
    builder b;
    size_t count = 0;
    int rc = TRESTLE_OK;

    memset(&b, 0, sizeof b);
    trestle_error_clear(err);
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    TR_FAIL_IF(!c, err, TRESTLE_E_INVALID_ARG, "NULL checkpoint");
    TR_FAIL_IF(!ops && n > 0, err, TRESTLE_E_INVALID_ARG, "ops is NULL but n is %zu", n);
    trestle_plan_options_init(&b.o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_plan_options, &b.o, opt,
                                     TRESTLE__PLAN_OPTIONS_FIRST_SIZE, err));
    TR_FORWARD(trestle__plan_names_check(&b.o, err));
    TR_FORWARD(trestle__plan_shard_check(&b.o, err));
    b.c = c;

    count = ops ? n : c->num_listed;
    TR_FAIL_IF(count > TRESTLE__MAX_OPS, err, TRESTLE_E_INVALID_ARG,
               "%zu ops: a plan holds at most %zu", count, TRESTLE__MAX_OPS);
    b.p = calloc(1, sizeof *b.p);
    TR_FAIL_IF(!b.p, err, TRESTLE_E_NOMEM, "out of memory");
    b.p->ckpt = c;
    atomic_init(&b.p->cancel, 0);
    /* Zeroed ops free cleanly however far planning gets. */
    b.p->ops = trestle__bulk_calloc(count ? count : 1, sizeof *b.p->ops);
    /* Keys after renames exist only for a caller's op list. */
    b.lookup = ops ? calloc(count ? count : 1, sizeof *b.lookup) : NULL;
    TR_FAIL_IF(!b.p->ops || (ops && !b.lookup), err, TRESTLE_E_NOMEM, "out of memory");
    b.p->num_ops = count;

    TR_FORWARD(trestle__plan_ops_resolve(&b, ops, err));
    TR_FORWARD(trestle__plan_ops_check_missing(&b, ops, err));
    if (b.variants > 0)
        TR_FORWARD(trestle__plan_check_unsupported(c, b.p->ops, count, err));
    TR_FORWARD(trestle__plan_ops_check_dtypes(&b, ops, err));
    TR_FORWARD(trestle__plan_ops_check_conversions(&b, ops, err));
    if (b.o.partial_reads && b.o.num_shard_rules > 0) {
        /* A part is read alone only when no other op needs its tensor. */
        b.entry_refs = calloc(c->num_entries ? c->num_entries : 1, sizeof *b.entry_refs);
        TR_FAIL_IF(!b.entry_refs, err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t i = 0; i < count; i++)
            if (!b.p->ops[i].skipped)
                b.entry_refs[b.p->ops[i].entry]++;
    }
    /* Most ops want one entry: room for that many wants at once. */
    b.wants = trestle__bulk_calloc(count ? count : 1, sizeof *b.wants);
    TR_FAIL_IF(!b.wants, err, TRESTLE_E_NOMEM, "out of memory");
    b.cap_wants = count ? count : 1;
    for (size_t i = 0; i < count; i++)
        if (!b.p->ops[i].skipped)
            TR_FORWARD(trestle__plan_pieces_add(&b, i, ops ? &ops[i] : NULL, err));
    TR_FORWARD(trestle__plan_ops_check_declared(&b, ops, err));
    TR_FORWARD(trestle__plan_pieces_extents(&b, err));
    TR_FORWARD(trestle__plan_pieces_batches(&b, err));
    /* Shards open when first needed: now, for the ones this plan reads. */
    for (size_t k = 0; k < b.p->num_batches; k++)
        TR_FORWARD(trestle__shard_open(c, b.p->batches[k].shard, NULL, err));
    trestle__plan_fill_stats(b.p);
    *out = b.p;
    b.p = NULL;
fail:
    for (size_t i = 0; b.lookup && i < count; i++)
        free(b.lookup[i]);
    free(b.lookup);
    trestle__bulk_free(b.wants);
    trestle__bulk_free(b.order);
    free(b.entry_refs);
    trestle_plan_free(b.p);
    return rc;
}
