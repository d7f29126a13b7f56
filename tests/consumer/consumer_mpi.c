/* An MPI job over an installed libtrestle_mpi: every rank restores every
 * tensor, each byte read once for the job, and prints its rank, the tensor
 * count and an FNV-1a of the restored bytes (equal on every rank). */
#include <inttypes.h>
#include <stdio.h>
#include <trestle_mpi.h>   /* includes mpi.h and trestle.h */

int main(int argc, char **argv) {
    trestle_group *g = NULL; trestle_checkpoint *ckpt = NULL; trestle_plan *plan = NULL;
    trestle_error err; int rc;
    MPI_Init(&argc, &argv);
    if (argc != 2) { fprintf(stderr, "usage: app CKPT\n"); MPI_Finalize(); return 1; }
    rc = trestle_group_create(MPI_COMM_WORLD, &g, &err);
    if (!rc) rc = trestle_open(argv[1], NULL, &ckpt, &err);
    if (!rc) rc = trestle_plan_create(ckpt, NULL, 0, NULL, &plan, &err);   /* every tensor */
    if (!rc) rc = trestle_group_restore(g, plan, NULL, NULL, &err);        /* read once */
    if (rc) {
        fprintf(stderr, "%s\n", err.message);
    } else {
        uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis */
        for (size_t i = 0; i < trestle_plan_op_count(plan); i++) {
            trestle_plan_op_info op;
            trestle_plan_get_op(plan, i, &op);
            for (uint64_t b = 0; b < op.bytes; b++)
                h = (h ^ ((const unsigned char *)op.data)[b]) * 1099511628211ull;
        }
        printf("rank %d of %d: restored %zu tensors, fnv1a64 %016" PRIx64 "\n",
               trestle_group_rank(g), trestle_group_size(g), trestle_plan_op_count(plan), h);
    }
    trestle_plan_free(plan); trestle_close(ckpt); trestle_group_free(g);
    MPI_Finalize();
    return rc ? 1 : 0;
}
