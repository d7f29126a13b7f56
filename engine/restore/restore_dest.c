/*
 * restore_dest.c - where a restore's bytes go: which GPU it copies to (the
 * device option, or the device of the caller's device pointers), and the
 * engine memory (one arena per plan) for DEST_ALLOCATE ops.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "bulk.h"
#include "checked.h"
#include "cuda_host.h"
#include "error.h"
#include "replica.h"
#include "restore.h"

int trestle__restore_dest_device(const trestle__plan_op *op, int *device, trestle_error *err)
{
    if (trestle__cuda_pointer_device(op->dest, device) != 0)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                  "tensor %s: destination %p is not CUDA device memory",
                                  op->name, op->dest);
    return TRESTLE_OK;
}

/*
 * Which GPU the restore copies to, or -1 for none: the device option (for
 * DEST_ALLOCATE ops), else the device of the caller's DEST_DEVICE pointers.
 * One device per restore (its copier has one set of streams); every device
 * pointer must be device memory of that GPU. Host destinations may mix in.
 */
int trestle__restore_pick_device(const trestle__restore *x, int *device, trestle_error *err)
{
    const trestle_plan *p = x->plan;
    const trestle__plan_op *need = NULL, *first = NULL;
    char why[160];
    int dev = x->opt.device;

    *device = -1;
    for (size_t i = 0; i < p->num_ops && !need; i++) {
        const trestle__plan_op *op = &p->ops[i];
        if (!op->skipped && (op->dest_kind == TRESTLE_DEST_DEVICE ||
                             (op->dest_kind == TRESTLE_DEST_ALLOCATE && dev >= 0)))
            need = op;
    }
    if (!need)
        return TRESTLE_OK;
    if (trestle__cuda_device_count(why, sizeof why) <= 0)
        return trestle__error_set(err, TRESTLE_E_NO_DEVICE, 0, need->key, NULL, -1, -1,
                                  "tensor %s: restoring into CUDA device memory needs %s",
                                  need->name, why);
    for (size_t i = 0; i < p->num_ops; i++) {
        const trestle__plan_op *op = &p->ops[i];
        int d = -1;
        if (op->skipped || op->dest_kind != TRESTLE_DEST_DEVICE || op->bytes == 0)
            continue;
        int rc = trestle__restore_dest_device(op, &d, err);
        if (rc != TRESTLE_OK)
            return rc;
        if (dev < 0) {
            dev = d;
            first = op;
        } else if (d != dev) {
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                      "tensor %s: destination is on CUDA device %d, but this "
                                      "restore copies to device %d (%s); restore each GPU's "
                                      "tensors with its own plan", op->name, d, dev,
                                      first ? first->name : "the device option");
        }
    }
    *device = dev;
    return TRESTLE_OK;
}

/*
 * Engine memory for DEST_ALLOCATE ops: one arena per plan (engine/memory/arena.c),
 * made by the copier, each tensor at a TRESTLE__ARENA_ALIGN_OF(device) boundary in it,
 * in file order. One
 * allocation instead of one per tensor: no cudaMalloc per tensor on a GPU,
 * and on the host one region that transparent huge pages can back whatever
 * the tensor sizes (first-touch faults on 4 KiB pages otherwise dominate a
 * restore from the page cache). A plan restored again into the same kind
 * of memory reuses its arena; after trestle_plan_adopt_arena() (the plan
 * has none) or with another device, it gets a new one.
 */
/* Bytes op takes in an arena on `device` (-1: host memory): its size (at
 * least 1) rounded up to that memory's tensor alignment, so never 0; 0
 * means it overflows. */
uint64_t trestle__arena_span(const trestle__plan_op *op, int device)
{
    uint64_t align = TRESTLE__ARENA_ALIGN_OF(device);
    uint64_t n = op->bytes ? op->bytes : 1;
    if (!tr_add_u64(n, align - 1, &n))
        return 0;
    return n & ~(align - 1);
}

/* Each op's device as of this restore: its pointer's, the option's for
 * engine memory, -1 for host memory. */
static int op_device(const trestle__restore *x, const trestle__plan_op *op)
{
    return op->dest_kind == TRESTLE_DEST_DEVICE ? x->device
           : op->dest_kind == TRESTLE_DEST_ALLOCATE ? x->opt.device : -1;
}

/*
 * Small host tensors lie in engine memory as their bytes lie in the file:
 * a run of them, adjacent in their shard, is placed end to end with its
 * first byte at the file offset's place modulo 64, so that the run is one
 * destination range in the same alignment as its bytes in the page cache.
 * The kernel then copies a run of 100,000 tensors as one iovec at full
 * speed, where one iovec each, each on a fresh 64-byte boundary, took 36 ms
 * against 18 ms on this VM (per-iovec work, and copies whose source and
 * destination disagree in alignment): issue 24's "small tensors copied in
 * runs". A packed tensor is aligned to its element size (only one whose
 * file offset is a multiple of it is packed); every other host tensor
 * starts on a 64-byte boundary, and device tensors on 256.
 */
#define PACK_MAX ((uint64_t)4 << 10) /* tensors under 4 KiB pack */

static bool packs(const trestle__restore *x, const trestle__extent *ext, const trestle__piece *pc,
                  const trestle__plan_op *op)
{
    size_t es = trestle_dtype_size(op->out_dtype);
    return x->opt.device < 0 && ext->num_pieces == 1 && !ext->is_string && ext->size > 0 &&
           ext->size < PACK_MAX && pc->region == TRESTLE__NO_REGION && pc->dst_offset == 0 &&
           !op->convert && op->num_pieces == 1 && op->bytes == ext->size && es > 0 &&
           ext->offset % es == 0;
}

/* Op `i` (of `bytes`, at least 1 taken) placed at *at, which moves past
 * it: off[i] is the offset plus one (0: not placed). False when the arena
 * would pass what the next placement can still round up (at most 255
 * bytes of alignment). */
static bool place(uint64_t *off, size_t i, uint64_t bytes, uint64_t *at)
{
    off[i] = *at + 1;
    return tr_add_u64(*at, bytes ? bytes : 1, at) && *at <= UINT64_MAX - 512;
}

/* Every DEST_ALLOCATE op's offset in the arena, plus one (0: not placed),
 * in the order the bytes lie in the files (extents are sorted), ops that
 * no extent feeds (zero bytes) last; the arena's size in *total. False
 * when the offsets overflow. */
static bool lay_out(const trestle__restore *x, const trestle_plan *p, uint64_t *off,
                    uint64_t *total)
{
    uint64_t align = TRESTLE__ARENA_ALIGN_OF(x->opt.device), at = 0;
    const trestle__extent *run = NULL; /* the last packed extent, while a run goes on */
    for (size_t e = 0; e < p->num_extents; e++) {
        const trestle__extent *ext = &p->extents[e];
        if (e + 16 < p->num_extents && p->extents[e + 16].num_pieces) /* ops out of order */
            __builtin_prefetch(&p->ops[p->pieces[p->extents[e + 16].first_piece].op]);
        for (size_t k = 0; k < ext->num_pieces; k++) {
            const trestle__piece *pc = &p->pieces[ext->first_piece + k];
            const trestle__plan_op *op = &p->ops[pc->op];
            if (op->dest_kind != TRESTLE_DEST_ALLOCATE || op->skipped || off[pc->op])
                continue;
            if (packs(x, ext, pc, op)) {
                if (!run || run->shard != ext->shard || run->offset + run->size != ext->offset)
                    at += (ext->offset - at) & 63; /* a run starts: same place modulo 64 */
                run = ext;
            } else {
                run = NULL;
                at = (at + align - 1) & ~(align - 1);
            }
            if (!place(off, pc->op, op->bytes, &at))
                return false;
        }
    }
    for (size_t i = 0; i < p->num_ops; i++) {
        const trestle__plan_op *op = &p->ops[i];
        if (op->dest_kind != TRESTLE_DEST_ALLOCATE || op->skipped || off[i])
            continue;
        at = (at + align - 1) & ~(align - 1);
        if (!place(off, i, op->bytes, &at))
            return false;
    }
    *total = at;
    return true;
}

/* One arena for the DEST_ALLOCATE ops (laid out by lay_out()), and every
 * op's device. */
static int allocate_one(trestle__restore *x, trestle_error *err)
{
    trestle_plan *p = x->plan;
    uint64_t total = 0;

    if (p->replicas && p->replicas->ndev) {
        /* The last restore went to several devices: start afresh. */
        trestle__arena_release(p->arena);
        p->arena = NULL;
        trestle__replicas_drop(p->replicas);
    }
    bool keep = p->arena && p->arena->device == x->opt.device;
    if (!keep) {
        trestle__arena_release(p->arena);
        p->arena = NULL;
        uint64_t *off = trestle__bulk_calloc(p->num_ops ? p->num_ops : 1, sizeof *off);
        if (!off)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t i = 0; i < p->num_ops; i++)
            if (p->ops[i].dest_kind == TRESTLE_DEST_ALLOCATE)
                p->ops[i].dest = NULL; /* memory of an adopted or released arena */
        if (!lay_out(x, p, off, &total)) {
            trestle__bulk_free(off);
            return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, NULL, -1, -1,
                                      "destinations of %zu ops overflow", p->num_ops);
        }
        if (total) {
            trestle__copier *c = x->opt.device >= 0 ? &x->copier : &x->host;
            int rc = c->ops->arena_alloc(c, total, &p->arena, err);
            if (rc != TRESTLE_OK) {
                trestle__bulk_free(off);
                return rc;
            }
            for (size_t i = 0; i < p->num_ops; i++)
                if (off[i])
                    p->ops[i].dest = p->arena->base + (off[i] - 1);
        }
        trestle__bulk_free(off);
    }
    for (size_t i = 0; i < p->num_ops; i++)
        p->ops[i].device = op_device(x, &p->ops[i]);
    return TRESTLE_OK;
}

int trestle__restore_allocate(trestle__restore *x, trestle_error *err)
{
    return allocate_one(x, err);
}
