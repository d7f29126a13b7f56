/*
 * fuzz_graph.c - libFuzzer target for the graph reader: the input is a
 * whole graph file. It is written to a scratch directory twice, as
 * `g.meta` (read as a MetaGraphDef) and as `saved_model.pb` (read as a
 * SavedModel), and opened with trestle_graph_open, which walks the
 * containers, decodes nodes, follows the restore op through inputs and
 * function calls and builds the op list. Any crash, hang, leak or
 * sanitizer report is a bug; a failure must leave *out NULL and fill err.
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

static char dir[4096], meta_path[4200], pb_path[4200];

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

static void open_one(const char *path)
{
    trestle_graph *g = (trestle_graph *)1;
    trestle_error err;
    if (trestle_graph_open(path, NULL, &g, &err) == TRESTLE_OK) {
        trestle_graph_info gi;
        trestle_graph_get_info(g, &gi);
        const trestle_op *ops = trestle_graph_ops(g);
        size_t total = 0;
        for (size_t i = 0; i < trestle_graph_op_count(g); i++)
            total += strlen(ops[i].name) + strlen(ops[i].shape_and_slices);
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
    open_one(meta_path);
    open_one(pb_path);
    return 0;
}
