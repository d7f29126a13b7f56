#include <stdio.h>
#include <trestle.h>

int main(int argc, char **argv) {
    trestle_checkpoint *ckpt; trestle_plan *plan; trestle_error err;
    if (argc != 2 || trestle_open(argv[1], NULL, &ckpt, &err) ||
        trestle_plan_create(ckpt, NULL, 0, NULL, &plan, &err) ||   /* every tensor */
        trestle_restore(plan, NULL, NULL, &err))
        return fprintf(stderr, "%s\n", argc != 2 ? "usage: app CKPT" : err.message), 1;
    printf("restored %zu tensors\n", trestle_plan_op_count(plan));
    trestle_plan_free(plan); trestle_close(ckpt); return 0;   /* frees the tensors too */
}
