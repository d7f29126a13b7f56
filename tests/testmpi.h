/*
 * testmpi.h - the harness the MPI suites (tests/test_mpi*.c) share: running
 * trestle-mpi (or the trestle CLI) under `mpirun --oversubscribe -np N` on
 * this machine, the single-process references the ranks are compared
 * with, the ranks' checksum lines, the checkpoints several suites use, a
 * corrupt-byte check every rank must fail alike, and the skips of builds
 * without MPI, the CUDA mock or the mock NCCL.
 *
 * References are computed here, in the test's process, with libtrestle and
 * element-by-element slices: each rank prints FNV-1a checksums of its
 * whole tensors and of its parts (--checksum), and its bytes read.
 */
#ifndef TRESTLE_TESTMPI_H
#define TRESTLE_TESTMPI_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* ---- running ranks ---- */

/* trestle-mpi's path; skips the test when MPI was not found at build time. */
const char *tm_tool(void);

/* Run `mpirun -np N PROG SUB ARGS` with extra environment `env` (NULL for
 * none), its output in *out and *err (malloc'd). Returns the exit status. */
int tm_mpirun_sub(const char *t, int np, const char *env, const char *sub, const char *args,
                  char **out, char **err);

/* Run `mpirun -np N PROG restore ARGS` with extra environment. */
int tm_mpirun_prog(const char *t, int np, const char *env, const char *args, char **out,
                   char **err);

/* The same with trestle-mpi. */
int tm_mpirun(int np, const char *env, const char *args, char **out, char **err);

/* Run `mpirun -np N trestle-mpi restore HEAD<rank>TAIL ARGS`: each rank
 * names its own checkpoint path, as node-local copies of "one" checkpoint
 * would be on a real cluster (Open MPI's OMPI_COMM_WORLD_RANK, set in each
 * rank, picks it). */
int tm_mpirun_per_rank(int np, const char *head, const char *tail, const char *args, char **out,
                       char **err);

/* Occurrences of needle in hay. */
int tm_count(const char *hay, const char *needle);

/* ---- references ---- */

#define TM_FNV0 1469598103934665603ull /* FNV-1a's offset basis */

/* FNV-1a of n bytes at p, continuing from h. */
uint64_t tm_fnv(uint64_t h, const uint8_t *p, uint64_t n);

/* FNV of a single-process restore of `ops` (NULL: every tensor) with
 * `renames`; when extent_bytes is non-NULL, the plan's extents' total
 * and largest sizes in *extent_bytes and *max_extent. */
uint64_t tm_reference(const char *path, const trestle_op *ops, size_t n,
                      const char *const *renames, size_t nrenames, uint64_t *extent_bytes,
                      uint64_t *max_extent);

/* Each rank's "rank R/N checksum: whole H parts H read B" line. */
typedef struct tm_rank_line {
    int seen;
    uint64_t whole, parts, read;
    int node;                   /* the node it says it is on */
    int device;                 /* the GPU it restored to, -1 for host memory */
} tm_rank_line;

/* Fill lines[np] from the ranks' output; fails unless every rank printed
 * exactly one line. */
void tm_parse_ranks(const char *out, int np, tm_rank_line *lines);

/* ---- checkpoints ---- */

/* The suites' mixed checkpoint (testutil.h): 30 tensors over 3 shards, in
 * a fresh directory (*dir, malloc'd). Returns its prefix (malloc'd). */
char *tm_make_multishard(char **dir);

/* The checkpoint of the tensor-parallel tests: keys model/attn/q/kernel
 * [10,7] (uneven over 3 and 4), model/mlp/wo/kernel [8,12] (even over 4),
 * model/norm/scale [9]; each kept for the reference slices. */
typedef struct tm_tp_fixture {
    char *dir, *prefix;
    float q[70], wo[96], scale[9];
} tm_tp_fixture;

void tm_make_tp(tm_tp_fixture *f);
void tm_free_tp(tm_tp_fixture *f);

/* FNV of rank r's parts: q split along dim 0, wo along dim 1, in key order. */
uint64_t tm_tp_parts(const tm_tp_fixture *f, int r, int np);

/* np ranks restore with `env` and `args` (--checksum and the shard rules
 * of q and wo): each rank's parts equal tm_tp_parts() and its replicated
 * tensor's FNV is `whole`. */
void tm_check_tp_env(tm_tp_fixture *f, int np, const char *env, const char *args,
                     uint64_t whole);

/* The checkpoint of the parts no rank reads alone: "tp/n" [64,32] float,
 * whose parts along dim 1 are a few dozen bytes of every row, far under
 * trestle-mpi's 4 KiB gap, so reading a part alone would read the whole
 * tensor on every rank; "tp/q" [48,256], one run per rank along dim 0;
 * "tp/emb" [12,8], a partitioned variable stored as two row slices (0-5,
 * 6-11), which a column part meets both of; "tp/cols" [12,9], stored as
 * three column slices that match the partitioner over 3 ranks, so each
 * rank's part is one stored slice. Each kept for the reference slices. */
#define TM_N_ROWS 64
#define TM_N_COLS 32
#define TM_Q_ROWS 48
#define TM_Q_COLS 256

typedef struct tm_narrow {
    char *dir, *prefix;
    float n[TM_N_ROWS * TM_N_COLS], q[TM_Q_ROWS * TM_Q_COLS], emb[12 * 8], cols[12 * 9];
} tm_narrow;

void tm_make_narrow(tm_narrow *f);
void tm_free_narrow(tm_narrow *f);

/* An ops file of `text` in dir (mpirun gives stdin to rank 0 only); malloc'd path. */
char *tm_ops_file(const char *dir, const char *text);

/* FNV of part r of np along `dim` of a [rows,cols] float tensor, from h. */
uint64_t tm_fnv_part(uint64_t h, const float *data, int64_t rows, int64_t cols, int dim, int r,
                     int np);

/* ---- failures ---- */

/* Flip a byte in the middle of extent `which` (-1: the last) of a fresh
 * multi-shard checkpoint; restoring it on np ranks (with `env` and `extra`
 * options) must fail every rank with rank `owner`'s CRC error, the same
 * line np times. */
void tm_check_corrupt_env(long which, int owner, int np, const char *env, const char *extra);

/* The same without extra environment. */
void tm_check_corrupt_on(long which, int owner, int np, const char *extra);

/* ---- devices: the CUDA mock and the mock NCCL ---- */

#define TM_MOCK_ENV "TRESTLE_CUDAMOCK_DEVICES=2" /* the mock's two devices */

/* Device ranks need the mock build (scripts/check.sh asan); a CUDA build
 * on a machine without a GPU has nothing to run them on: skips there. */
void tm_need_mock(void);

/* The mock NCCL's path; skips where the mock or MPI is absent. */
const char *tm_need_ncclmock(void);

/* Each rank's "ncclmock: rank R of N on device D: B broadcasts, S bytes
 * sent, V bytes received" line (at ncclCommDestroy). */
typedef struct tm_nccl_line {
    int seen, device;
    uint64_t broadcasts, sent, received;
} tm_nccl_line;

/* The environment of ranks that exchange through the mock NCCL on
 * `devices` mock devices: windows of 4000 bytes, so that every broadcast
 * goes in many chunks, one partial; counters printed; then `extra`
 * (malloc'd). Skips where the mock NCCL is absent. */
char *tm_nccl_env(int devices, const char *extra);

/* Fill v[np] from the ranks' mock NCCL lines in `err` (those missing: seen 0). */
void tm_parse_nccl(const char *err, int np, tm_nccl_line *v);

/* mpi_device_order (tests/mpi_device_order.c) on np ranks of the mock's
 * two devices in `mode` (legacy or stream), restoring every tensor of
 * `path`, or with `rule` (GLOB:DIM, or NULL) each rank's parts: every rank
 * must say its tensors are ok. received: NULL, or each rank's bytes
 * received from others. Skips outside the mock build with MPI. */
void tm_check_order(const char *path, int np, const char *mode, const char *rule,
                    uint64_t *received);

#endif /* TRESTLE_TESTMPI_H */
