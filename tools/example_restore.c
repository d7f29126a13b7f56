/*
 * example_restore.c - a complete libtrestle consumer, meant to be copied.
 *
 *     example_restore [--device N] CKPT
 *
 * Opens CKPT, restores two tensors under new names into memory the engine
 * allocates (host by default, CUDA device N with --device): the first
 * tensor whole, and the first half along dim 0 of the first float tensor of
 * rank >= 1. A ready callback reports each tensor as it lands; at the end
 * each tensor's FNV-1a 64 checksum is printed (the same on a GPU as in host
 * memory). Uses only <trestle.h>.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <trestle.h>

static uint64_t fnv1a64(const void *data, uint64_t n)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ULL;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Runs on a pipeline thread as each tensor lands: keep it short. */
static int on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user;
    printf("landed %zu: %s\n", i, op->name);
    return 0; /* nonzero would cancel the restore */
}

int main(int argc, char **argv)
{
    trestle_checkpoint *ckpt = NULL;
    trestle_plan *plan = NULL;
    trestle_error err;
    trestle_tensor_info first, t;
    char rename0[600], rename1[600], spec[512];
    int device = -1, rc;

    if (argc == 4 && strcmp(argv[1], "--device") == 0)
        device = atoi(argv[2]);
    else if (argc != 2) {
        fprintf(stderr, "usage: %s [--device N] CKPT\n", argv[0]);
        return 2;
    }
    if ((rc = trestle_open(argv[argc - 1], NULL, &ckpt, &err)) != TRESTLE_OK)
        goto fail;

    /* Op 0: the first tensor, whole. Op 1: half of the first float matrix/vector. */
    trestle_op ops[2] = {{.name = "example/first", .dest_kind = TRESTLE_DEST_ALLOCATE},
                         {.name = "example/half", .dest_kind = TRESTLE_DEST_ALLOCATE}};
    size_t n = 1, count = trestle_tensor_count(ckpt);
    if (count == 0 || trestle_tensor_get_info(ckpt, 0, &first) != TRESTLE_OK) {
        fprintf(stderr, "%s: empty checkpoint\n", argv[argc - 1]);
        trestle_close(ckpt);
        return 1;
    }
    snprintf(rename0, sizeof rename0, "example/first=%s", first.name);
    for (size_t i = 0; i < count && n == 1; i++) {
        if (trestle_tensor_get_info(ckpt, i, &t) != TRESTLE_OK || t.dtype != TRESTLE_DT_FLOAT ||
            t.rank < 1 || t.rank > 16 || t.dims[0] < 2)
            continue;
        size_t len = 0; /* "d0 d1 ... 0,d0/2:-:..." as RestoreV2's shape_and_slices */
        for (int d = 0; d < t.rank; d++)
            len += (size_t)snprintf(spec + len, sizeof spec - len, "%" PRId64 " ", t.dims[d]);
        len += (size_t)snprintf(spec + len, sizeof spec - len, "0,%" PRId64, t.dims[0] / 2);
        for (int d = 1; d < t.rank; d++)
            len += (size_t)snprintf(spec + len, sizeof spec - len, ":-");
        snprintf(rename1, sizeof rename1, "example/half=%s", t.name);
        ops[1].shape_and_slices = spec;
        n = 2;
    }

    const char *renames[2] = {rename0, rename1};
    trestle_plan_options popt;
    trestle_plan_options_init(&popt);
    popt.renames = renames;
    popt.num_renames = n;
    if ((rc = trestle_plan_create(ckpt, ops, n, &popt, &plan, &err)) != TRESTLE_OK)
        goto fail;

    trestle_restore_options ropt;
    trestle_restore_options_init(&ropt);
    ropt.device = device;
    ropt.on_ready = on_ready;
    if ((rc = trestle_restore(plan, &ropt, NULL, &err)) != TRESTLE_OK)
        goto fail;

    for (size_t i = 0; i < trestle_plan_op_count(plan); i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(plan, i, &op);
        /* The bytes may be on a GPU: trestle_plan_read_op() copies them
         * back from wherever they are, so this file needs no CUDA code. */
        void *bytes = malloc(op.bytes ? op.bytes : 1);
        if (!bytes) {
            rc = TRESTLE_E_NOMEM;
            snprintf(err.message, sizeof err.message, "out of memory");
            goto fail;
        }
        if ((rc = trestle_plan_read_op(plan, i, bytes, op.bytes, &err)) != TRESTLE_OK) {
            free(bytes);
            goto fail;
        }
        printf("%s <- %s: %s, rank %d, %" PRIu64 " bytes, fnv1a64 %016" PRIx64 "\n", op.name,
               op.key, trestle_dtype_name(op.dtype), op.rank, op.bytes,
               fnv1a64(bytes, op.bytes));
        free(bytes);
    }
    trestle_plan_free(plan); /* frees the engine-allocated tensors too */
    trestle_close(ckpt);
    return 0;

fail:
    fprintf(stderr, "example_restore: %s (%s)\n", err.message, trestle_code_name(rc));
    trestle_plan_free(plan);
    trestle_close(ckpt);
    return 1;
}
