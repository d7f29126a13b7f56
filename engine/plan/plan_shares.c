/*
 * plan_shares.c - the CRC shares of tensors a plan reads only a part of
 * (trestle_plan_options.partial_reads): what the plan tells its caller
 * about each deferred tensor, and the check of shares combined over every
 * part.
 *
 * The planner (engine/plan/plan_pieces.c) lists the deferred tensors; the
 * restore's workers (engine/restore/restore_worker.c) fold each run they read into
 * its tensor's share. This file sits beside engine/plan/plan.c, below both, and
 * owns nothing: the shares live in the plan.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "crc32c.h"
#include "error.h"
#include "plan.h"

size_t trestle_plan_crc_share_count(const trestle_plan *p) { return p ? p->num_shares : 0; }

int trestle_plan_get_crc_share(const trestle_plan *p, size_t i, trestle_crc_share *out)
{
    if (!p || !out || i >= p->num_shares)
        return TRESTLE_E_INVALID_ARG;
    const trestle__share *sh = &p->shares[i];
    const trestle__entry *e = &p->ckpt->entries[sh->entry];
    memset(out, 0, sizeof *out);
    out->op = sh->op;
    out->key = e->key;
    out->shard_path = p->ckpt->shard_paths ? p->ckpt->shard_paths[e->shard] : NULL;
    out->offset = e->offset;
    out->tensor_bytes = e->size;
    out->expected = trestle__crc_unmask(e->crc_masked);
    out->part = sh->part;
    out->parts = sh->parts;
    out->ready = p->shares_ready;
    out->share = p->shares_ready ? atomic_load(&sh->share) : 0;
    return TRESTLE_OK;
}

int trestle_crc_shares_check(const trestle_crc_share *shares, size_t n, int parts,
                             trestle_error *err)
{
    trestle_error_clear(err);
    if ((!shares && n > 0) || parts < 1)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "CRC shares: %s", parts < 1 ? "parts must be at least 1"
                                                                 : "shares is NULL but n > 0");
    for (size_t i = 0; i < n; i++) {
        const trestle_crc_share *s = &shares[i];
        if (!s->ready)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, s->key, s->shard_path,
                                      (int64_t)s->offset, (int64_t)s->tensor_bytes,
                                      "CRC share of tensor '%s' was not computed: its plan's "
                                      "last restore failed or ran without verify",
                                      s->key ? s->key : "?");
        /* The shares sum the register form; the stored CRC adds the
         * constant of the tensor's length (engine/common/crc32c.h). */
        uint32_t got = s->share ^ trestle__crc32c_zeros(s->tensor_bytes);
        if (got != s->expected)
            return trestle__error_set(err, TRESTLE_E_CRC_MISMATCH, 0, s->key, s->shard_path,
                                      (int64_t)s->offset, (int64_t)s->tensor_bytes,
                                      "CRC32C of tensor '%s' (shard %s, offset %" PRIu64 ") over "
                                      "the %d ranks' parts does not match (stored CRC32C 0x%08" PRIx32
                                      ", the parts combine to 0x%08" PRIx32 "): some part read "
                                      "corrupt bytes", s->key ? s->key : "?",
                                      s->shard_path ? s->shard_path : "?", s->offset, parts,
                                      s->expected, got);
    }
    return TRESTLE_OK;
}
