/*
 * fuzz_graph.c - libFuzzer target for the graph reader: the input is a
 * whole graph file. It is written to a scratch directory as `g.meta`
 * (read as a MetaGraphDef) and as `saved_model.pb` (read as a SavedModel)
 * and opened with trestle_graph_open, which walks the containers, decodes
 * nodes, follows the restore op through inputs and function calls and
 * builds the op list. Each input is then opened one way more, by its size
 * modulo 3, so that the ways cost one open per input between them: as
 * `g.pb` (its kind sniffed from its bytes), by the .meta's prefix `g`, or
 * as the SavedModel's directory with the tag "train" (the --tag choice).
 * Any crash, hang, leak or sanitizer report is a bug; a failure must leave
 * *out NULL and fill err.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "trestle_graph.h"

static char dir[4096], meta_path[4200], pb_path[4200], sniff_path[4200], prefix[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_prefix(dir, sizeof dir, "graph");
    mkdir(dir, 0700);
    snprintf(meta_path, sizeof meta_path, "%s/g.meta", dir);
    snprintf(pb_path, sizeof pb_path, "%s/saved_model.pb", dir);
    snprintf(sniff_path, sizeof sniff_path, "%s/g.pb", dir);
    snprintf(prefix, sizeof prefix, "%s/g", dir);
    return 0;
}

static void put(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return;
    if (write(fd, data, size) != (ssize_t)size) {
        /* A short write only makes a different input. */
    }
    close(fd);
}

static void open_one(const char *path, const char *tag)
{
    trestle_graph *g = (trestle_graph *)1;
    trestle_graph_options go;
    trestle_error err;
    trestle_graph_options_init(&go);
    go.tag = tag;
    if (trestle_graph_open(path, &go, &g, &err) == TRESTLE_OK) {
        trestle_graph_info gi;
        trestle_graph_get_info(g, &gi);
        const trestle_op *ops = trestle_graph_ops(g);
        size_t total = 0;
        const trestle_shape *shapes = trestle_graph_op_shapes(g);
        for (size_t i = 0; i < trestle_graph_op_count(g); i++) {
            int rank;
            const int64_t *dims;
            total += strlen(ops[i].name) + strlen(ops[i].shape_and_slices);
            /* The declared shapes, as check and restore --graph use them. */
            if (trestle_graph_op_shape(g, i, &rank, &dims) != TRESTLE_OK ||
                (shapes && shapes[i].rank != rank))
                abort();
            for (int d = 0; d < rank; d++)
                total += (size_t)dims[d];
        }
        if (strlen(gi.restore_op) + strlen(gi.tags) + total == (size_t)-1)
            abort(); /* keeps the reads from being optimised away */
        trestle_graph_close(g);
    } else if (g != NULL || err.code == TRESTLE_OK || !err.message[0]) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    put(meta_path, data, size);
    put(pb_path, data, size);
    open_one(meta_path, NULL);
    open_one(pb_path, NULL);
    switch (size % 3) {
    case 0:
        put(sniff_path, data, size);
        open_one(sniff_path, NULL);
        break;
    case 1: open_one(prefix, NULL); break;
    default: open_one(dir, "train"); break;
    }
    return 0;
}
