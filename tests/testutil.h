/*
 * testutil.h - helpers shared by the Criterion suites: where the real
 * TensorFlow fixtures are (a skip without them, a failure in CI), opening
 * and planning that must succeed, scratch directories, whole-file reads,
 * running the CLI with captured output, seeded random data and regions,
 * and a reference slice copy.
 */
#ifndef TRESTLE_TESTUTIL_H
#define TRESTLE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* ../shared (or $TRESTLE_SHARED) when it exists, else NULL. */
const char *tu_shared_dir(void);

/*
 * A prerequisite CI promises is missing: skip the current test with the
 * printf-formatted reason, or, when the environment says CI=true (.ci/run,
 * which promises ../shared), fail it with that reason, so that a fixture
 * lost in CI cannot pass as a skip.
 */
void tu_missing(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Path of a real fixture under ../shared/fixtures/<rel> in a static
 * per-call buffer ring (valid for a few calls). When ../shared is absent,
 * tu_missing: a skip with a message, a failure under CI=true. `rel` may be
 * a checkpoint prefix that is no file of its own.
 */
const char *tu_fixture(const char *rel);

/* tu_fixture() for a file, a directory or a checkpoint prefix (PATH.index)
 * that must exist: tu_missing when ../shared is there but it is not. */
const char *tu_fixture_present(const char *rel);

/* trestle_open(), failing the current test with the code and message
 * unless it succeeds. Tests that expect a failure call trestle_open(). */
trestle_checkpoint *tu_open(const char *path, const trestle_open_options *opt);

/* trestle_plan_create() likewise: the plan, or the test fails naming the
 * first op, the checkpoint, the code and the message. */
trestle_plan *tu_plan(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                      const trestle_plan_options *opt);

/* A fresh directory $TMPDIR/trestle-test-XXXXXX (malloc'd path; NULL on
 * failure; removed by tu_rmtree), by scratch_dir.h, which bench/ shares. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *path);

/* Read a whole file; returns malloc'd bytes (NULL on failure), *len set. */
uint8_t *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);

/* Fail the test unless the files at a and b hold the same bytes, naming
 * the first byte where they differ. */
void tu_assert_same_file(const char *a, const char *b);

/* XOR byte `offset` of the file at path with `mask` (fails the test when
 * the file cannot be read or is too short). */
void tu_flip_byte(const char *path, size_t offset, uint8_t mask);

/* Run `cmd` with /bin/sh, capture stdout and stderr (malloc'd, NUL-terminated). Returns the exit status (or -1). */
int tu_run(const char *cmd, char **out, char **errout);

/* What `trestle ARGS` did: its exit status and output (malloc'd). */
typedef struct tu_cli_result {
    int rc;
    char *out;
    char *err;
} tu_cli_result;

/* Run the trestle CLI (TRESTLE_CLI_PATH) with printf-formatted arguments
 * (quote paths as '...'); fails the test when it cannot be started. */
tu_cli_result tu_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tu_cli_free(tu_cli_result *r);

/* 1 when s begins with prefix. */
int tu_starts_with(const char *s, const char *prefix);

/* The next value of a xorshift64 generator (state *x, never 0). */
uint64_t tu_rng_next(uint64_t *x);

/*
 * A random region (engine/plan/plan.h) of `rank` dims, each 1..maxdim long,
 * into dims[rank]: a stored block `src` and a destination block `dst`,
 * each often whole along a dim (so runs merge as in real slices), that
 * overlap in `cut`. r->dims points at dims.
 */
struct trestle__region;
void tu_random_region(uint64_t *rng, int rank, int64_t maxdim, int64_t *dims,
                      struct trestle__region *r);

/* Reference slice copy, element by element: the slice [start, start + len)
 * (rank <= 8) of the row-major tensor src of shape dims, `es` bytes per
 * element, packed into dst. */
void tu_ref_slice(const uint8_t *src, const int64_t *dims, int rank, const int64_t *start,
                  const int64_t *len, size_t es, uint8_t *dst);

/* trestle_restore(), except that the current test is skipped with the
 * reason when the kernel refuses io_uring (containers, seccomp): suites
 * that force the io_uring reader test it only where it exists. */
int tu_restore(trestle_plan *p, const trestle_restore_options *o, trestle_stats *st,
               trestle_error *err);

/* Deterministic pseudo-random bytes (xorshift), never all zeros. */
void tu_fill_random(void *buf, size_t n, uint64_t seed);

/*
 * A writer-made checkpoint at DIR/c over `shards` shards (prefix returned,
 * malloc'd): `n` float tensors "model/layerNN/{attn,mlp,norm}/kernel" (the
 * t-th is [16 + (37 t) % 300, 64 + t % 5], filled with tu_fill_random seed
 * t + 7, on shard t % shards), the partitioned variable "model/emb" [50,8]
 * stored as rows 0-16, 17-33, 34-49, and the string tensor "model/vocab"
 * {"read", "once"}. For suites that split one restore into parts.
 */
char *tu_write_mixed(const char *dir, int n, int shards);

/*
 * The device suites' checkpoint at DIR/m over two shards (prefix returned,
 * malloc'd): "w" [300,50] float (shard 0), "cube" [6,40,33] float and "bf"
 * [200,30] bfloat16 around 1.0 (shard 1), and `ntiny` int32 [4] tensors
 * "tiny/NNNNN" alternating shards; float bytes from tu_fill_random(seed).
 * Slices, uneven splits, widening casts and many small copies.
 */
char *tu_write_gpu_model(const char *dir, int ntiny, uint64_t seed);

/* One tensor of tu_zero_checkpoint(): rank 0 to 2. */
typedef struct tu_tensor {
    const char *name;
    int dtype, rank;
    int64_t dims[2];
} tu_tensor;

/* A one-shard checkpoint of `n` all-zero tensors at DIR/c, DIR a fresh
 * directory (returned in *dir, malloc'd), opened. For suites that need
 * only names, dtypes and shapes (suggestions, rename inference). */
trestle_checkpoint *tu_zero_checkpoint(char **dir, const tu_tensor *t, size_t n);

/* One options struct and a public call that reads it, for tu_check_options_rule(). */
typedef struct tu_options_kind {
    const char *name;         /* the struct's name, as messages give it */
    size_t size, reserved;    /* sizeof, offsetof(reserved) */
    void (*init)(void *opt);  /* its _init() */
    int (*call)(const void *opt, trestle_error *err); /* reads it (opt NULL: the defaults) */
    const char *via;          /* call's name, for failures */
    int accepted;             /* call's code for options the rule accepts */
    const char *prefix;       /* what call's messages start with ("", "rank 0 of 1: ") */
} tu_options_kind;

/*
 * The options rule through k's call: NULL and an init'd struct are
 * accepted, and a newer caller's zero tail; a size below the first
 * release, an absurd size, a nonzero byte beyond the struct and a nonzero
 * reserved field (the first and the last) are refused with their exact
 * messages.
 */
void tu_check_options_rule(const tu_options_kind *k);

#endif /* TRESTLE_TESTUTIL_H */
