/*
 * The graph API as an outside program sees it: built against the installed
 * trestle_graph.h, it asks rename inference which of its ops a checkpoint
 * restores, and prints the library's version beside the header's.
 * usage: consumer_graph CKPT OP...   (1 to 8 op names)
 */
#include <stdio.h>
#include <trestle_graph.h>

int main(int argc, char **argv) {
    static const char *const status[] = { "ok", "missing", "dtype", "shape", "excluded" };
    trestle_checkpoint *ckpt = NULL; trestle_inference *inf = NULL; trestle_error err;
    trestle_op ops[8] = { { 0 } }; trestle_inference_info v; trestle_inferred_op op;
    int n = argc - 2, rc = 1;
    printf("library %s, header %s\n", trestle_version_string(), TRESTLE_VERSION_STRING);
    if (n < 1 || n > 8)
        return fprintf(stderr, "usage: consumer_graph CKPT OP... (1 to 8 ops)\n"), 2;
    for (int i = 0; i < n; i++)
        ops[i].name = argv[i + 2];
    if (trestle_open(argv[1], NULL, &ckpt, &err) ||
        trestle_infer_renames(ckpt, ops, (size_t)n, NULL, &inf, &err)) {
        fprintf(stderr, "%s\n", err.message);
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (trestle_inference_op(inf, (size_t)i, &op) == TRESTLE_OK && op.status >= 0 &&
            op.status < 5)
            printf("%s: %s\n", op.name, status[op.status]);
    trestle_inference_get_info(inf, &v);
    printf("restores: %s\n", v.restores ? "yes" : "no");
    rc = 0;
out:
    trestle_inference_free(inf); trestle_close(ckpt); return rc;
}
