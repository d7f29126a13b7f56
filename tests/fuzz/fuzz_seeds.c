/*
 * fuzz_seeds.c - writes the index seeds of fuzz_index with trestle's own
 * writer, so that the fuzzer starts from every kind of index the format
 * has rather than from plain tensors only: partitioned variables stored in
 * row, column and grid slices (the code behind ckpt_slices.c), many shards
 * (ckpt_shard.c), every fixed-size dtype, strings, variants, a TF2 object
 * graph, snappy-compressed and multi-block indexes.
 *
 *     fuzz_seeds DIR     writes DIR/index/<name>.index (and its data files)
 *                        and DIR/graph/<name>.meta (fuzz_seeds_graph.c)
 *
 * Every tensor's bytes are zeros, and fuzz_index lays zero-filled data
 * files beside each input (tests/fuzz/fuzz_index.c), so that the seeds'
 * stored CRC32Cs hold there and reads of them get past the checks to the
 * copy; each shard's tensors fit in the 64 KiB those files have. Run by
 * scripts/fuzz.sh before each fuzzing session; nothing it writes is
 * committed, so the seeds always follow the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_seeds.h"
#include "trestle.h"

static const uint8_t zeros[16384];

/* The seed being written, and where. */
typedef struct seed {
    trestle_writer *w;
    char prefix[4096];
} seed;

void fuzz_seeds_fail(const char *what, const trestle_error *err)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, err ? err->message : "");
    exit(1);
}


static void start(seed *s, const char *dir, const char *name, int shards, int snappy)
{
    trestle_writer_options wo;
    trestle_error err;
    trestle_writer_options_init(&wo);
    wo.num_shards = shards;
    wo.snappy_index = snappy;
    snprintf(s->prefix, sizeof s->prefix, "%s/%s", dir, name);
    if (trestle_writer_create(s->prefix, &wo, &s->w, &err) != TRESTLE_OK)
        fuzz_seeds_fail(s->prefix, &err);
}

static void finish(seed *s)
{
    trestle_error err;
    if (trestle_writer_finish(s->w, &err) != TRESTLE_OK)
        fuzz_seeds_fail(s->prefix, &err);
    trestle_writer_free(s->w);
}

/* A zero tensor of `dtype` and shape dims[rank] on `shard`. */
static void add(seed *s, const char *name, int dtype, int rank, const int64_t *dims, int shard)
{
    trestle_error err;
    uint64_t n = trestle_dtype_size(dtype);
    for (int d = 0; d < rank; d++)
        n *= (uint64_t)dims[d];
    if (n > sizeof zeros || trestle_writer_add(s->w, name, dtype, rank, dims, zeros, n, shard,
                                               &err) != TRESTLE_OK)
        fuzz_seeds_fail(name, &err);
}

/* A zero stored slice `spec` ("d0 d1 start,len:...") of `name`. */
static void add_slice(seed *s, const char *name, const char *spec, uint64_t elements, int shard)
{
    trestle_error err;
    if (trestle_writer_add_slice(s->w, name, TRESTLE_DT_FLOAT, spec, zeros, elements * 4, shard,
                                 &err) != TRESTLE_OK)
        fuzz_seeds_fail(name, &err);
}

/* "emb" [12,8] in two row slices, one on each of shards 0 and 1. */
static void add_row_slices(seed *s)
{
    add_slice(s, "emb", "12 8 0,6:-", 48, 0);
    add_slice(s, "emb", "12 8 6,6:-", 48, 1);
}

bool fuzz_seeds_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    char dir[4096], graphs[4096];
    snprintf(dir, sizeof dir, "%s/index", argv[1]);
    snprintf(graphs, sizeof graphs, "%s/graph", argv[1]);
    if ((mkdir(dir, 0700) != 0 && !fuzz_seeds_exists(dir)) ||
        (mkdir(graphs, 0700) != 0 && !fuzz_seeds_exists(graphs)))
        fuzz_seeds_fail(argv[1], NULL);
    fuzz_seeds_graphs(graphs);
    seed s;
    trestle_error err;
    static const int64_t d44[] = { 4, 4 }, d8[] = { 8 }, d3[] = { 3 };

    /* Partitioned in two row slices, beside plain tensors, over 2 shards. */
    start(&s, dir, "partitioned_rows", 2, 0);
    add_row_slices(&s);
    add(&s, "dense/kernel", TRESTLE_DT_FLOAT, 2, d44, 0);
    add(&s, "dense/bias", TRESTLE_DT_FLOAT, 1, d8, 1);
    finish(&s);

    /* Slices that leave a gap (row 6 is nobody's) and slices that
     * overlap: trestle_open() refuses both, naming a missing box or the
     * two slices, and the seeds start the fuzzer at those checks. */
    start(&s, dir, "partitioned_gap", 2, 0);
    add_slice(&s, "gap", "12 8 0,6:-", 48, 0);
    add_slice(&s, "gap", "12 8 7,5:-", 40, 1);
    finish(&s);
    start(&s, dir, "partitioned_gap_2d", 2, 0);
    add_slice(&s, "grid", "8 6 0,4:0,3", 12, 0);
    add_slice(&s, "grid", "8 6 4,4:-", 24, 1);
    finish(&s);
    start(&s, dir, "partitioned_overlap", 2, 0);
    add_slice(&s, "over", "12 8 0,7:-", 56, 0);
    add_slice(&s, "over", "12 8 6,6:-", 48, 1);
    finish(&s);

    /* Three column slices over three shards, and a scalar. */
    start(&s, dir, "partitioned_cols", 3, 0);
    add_slice(&s, "cols", "6 9 -:0,3", 18, 0);
    add_slice(&s, "cols", "6 9 -:3,3", 18, 1);
    add_slice(&s, "cols", "6 9 -:6,3", 18, 2);
    add(&s, "global_step", TRESTLE_DT_INT64, 0, NULL, 2);
    finish(&s);

    /* A 2x2 grid of slices of a rank-3 tensor, over 4 shards, and two
     * partitioned tensors whose keys sort between each other's slices. */
    start(&s, dir, "partitioned_grid", 4, 0);
    add_slice(&s, "grid", "8 6 4 0,4:0,3:-", 48, 0);
    add_slice(&s, "grid", "8 6 4 0,4:3,3:-", 48, 1);
    add_slice(&s, "grid", "8 6 4 4,4:0,3:-", 48, 2);
    add_slice(&s, "grid", "8 6 4 4,4:3,3:-", 48, 3);
    add_slice(&s, "grid/b", "10 0,5", 5, 1);
    add_slice(&s, "grid/b", "10 5,5", 5, 2);
    finish(&s);

    /* Every fixed-size dtype, a string tensor, a variant and an object
     * graph, in one shard. */
    start(&s, dir, "dtypes_strings_object_graph", 1, 0);
    static const int dtypes[] = { TRESTLE_DT_FLOAT, TRESTLE_DT_DOUBLE, TRESTLE_DT_INT32,
                                  TRESTLE_DT_UINT8, TRESTLE_DT_INT16, TRESTLE_DT_INT8,
                                  TRESTLE_DT_INT64, TRESTLE_DT_BOOL, TRESTLE_DT_BFLOAT16,
                                  TRESTLE_DT_UINT16, TRESTLE_DT_HALF, TRESTLE_DT_UINT32,
                                  TRESTLE_DT_UINT64, TRESTLE_DT_COMPLEX64,
                                  TRESTLE_DT_COMPLEX128, TRESTLE_DT_QINT8,
                                  TRESTLE_DT_FLOAT8_E5M2 };
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "layer/%s/.ATTRIBUTES/VARIABLE_VALUE",
                 trestle_dtype_name(dtypes[i]));
        add(&s, name, dtypes[i], 1, d3, 0);
    }
    trestle_bytes words[3] = { { (const uint8_t *)"", 0 }, { (const uint8_t *)"ab", 2 },
                               { (const uint8_t *)"c", 1 } };
    if (trestle_writer_add_strings(s.w, "vocab", 1, d3, words, 0, &err) != TRESTLE_OK ||
        trestle_writer_add_variants(s.w, "iterator", 0, NULL, words, 0, &err) != TRESTLE_OK ||
        trestle_writer_add_strings(s.w, "_CHECKPOINTABLE_OBJECT_GRAPH", 0, NULL, words + 1, 0,
                                   &err) != TRESTLE_OK)
        fuzz_seeds_fail("strings", &err);
    finish(&s);

    /* Snappy-compressed index blocks (TF <= 1.1) over a partitioned tensor. */
    start(&s, dir, "snappy_partitioned", 2, 1);
    add_row_slices(&s);
    for (int i = 0; i < 40; i++) {
        char name[64];
        snprintf(name, sizeof name, "model/layer_%02d/kernel", i);
        add(&s, name, TRESTLE_DT_FLOAT, 2, d44, i % 2);
    }
    finish(&s);

    /* Several index blocks: 300 tensors over 8 shards, one of them
     * partitioned across all of them. */
    start(&s, dir, "many_shards_multiblock", 8, 0);
    for (int i = 0; i < 300; i++) {
        char name[64];
        snprintf(name, sizeof name, "model/block_%03d/w", i);
        add(&s, name, TRESTLE_DT_BFLOAT16, 1, d8, i % 8);
    }
    for (int k = 0; k < 8; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "16 4 %d,2:-", 2 * k);
        add_slice(&s, "model/sharded", spec, 8, k);
    }
    finish(&s);

    /* Five and six shards: fuzz_index makes shard 4 of 5 missing and shard
     * 2 of 6 a directory, so reads and opens meet both. */
    start(&s, dir, "five_shards", 5, 0);
    for (int k = 0; k < 5; k++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", k);
        add(&s, name, TRESTLE_DT_FLOAT, 1, d8, k);
    }
    finish(&s);
    start(&s, dir, "six_shards_partitioned", 6, 0);
    for (int k = 0; k < 6; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "12 %d,2", 2 * k);
        add_slice(&s, "v", spec, 2, k);
    }
    finish(&s);
    return 0;
}
