/*
 * cli.h - what the `trestle` command-line tool's files share: the command
 * entry points, exit codes, error and usage reporting, human sizes, value
 * formatting, tables, JSON, the ops-file parser and the per-tensor scan.
 *
 * The CLI is a client of the public API only (include/trestle.h; the graph
 * commands also include/trestle_graph.h); nothing here may reach into
 * engine/. Every command is `int cli_<name>_main(argc,
 * argv)` with argv[0] the command's name, and returns an exit code.
 */
#ifndef TRESTLE_CLI_H
#define TRESTLE_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trestle.h"

/* ---- exit codes ---- */
#define CLI_EXIT_OK 0       /* success (diff: identical) */
#define CLI_EXIT_FAIL 1     /* the operation failed (diff: different) */
#define CLI_EXIT_USAGE 2    /* bad command line (diff: trouble) */
#define CLI_EXIT_NOTHING 4  /* a graph with nothing to restore: no saver and no variables
                               (restore, check, ops; diff says 2, trouble) */

/* ---- commands (one file each) ---- */
int cli_inspect_main(int argc, char **argv);
int cli_verify_main(int argc, char **argv);
int cli_synth_main(int argc, char **argv);
int cli_restore_main(int argc, char **argv);
int cli_diff_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_convert_main(int argc, char **argv);
int cli_ops_main(int argc, char **argv);
int cli_check_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);
int cli_preload_main(int argc, char **argv);

/* ---- resident checkpoints (cli_attach.c) ---- */

#define CLI_ATTACH_FALLBACK (-1) /* not resident: restore from storage (the note is printed) */

/* What `restore --server` needs to attach and to print. */
typedef struct cli_attach_req {
    const char *server;      /* socket path ("default": the default socket) */
    const char *path;        /* the checkpoint as given */
    int device;              /* -1 host tier, else the device tier of this GPU */
    int quiet, json, list, checksum;
} cli_attach_req;

/* `restore --server`: attach to the resident entry of ckpt's ops. Returns
 * an exit code when attached (and printed) or failed, or
 * CLI_ATTACH_FALLBACK after printing why nothing resident fits, for the
 * caller to restore from storage as without --server. */
int cli_attach_restore(const cli_attach_req *r, const trestle_checkpoint *ckpt,
                       const trestle_op *ops, size_t n, const trestle_plan_options *popt);

/* The socket a --server or --socket argument names: NULL for "default". */
const char *cli_socket_arg(const char *arg);

/* ---- process groups (cli_group.c) ---- */

/* `trestle restore` or `trestle bench` (`cmd`) under mpirun or with
 * --group mpi: exec `trestle-mpi CMD` with the same arguments. Returns -1
 * when the command is not a group's (go on alone), else an exit code (it
 * failed to start). */
int cli_group_exec(const char *cmd, int argc, char **argv);

/* `trestle-mpi bench` (tools/mpicli_bench.c), in trestle-mpi only:
 * called between MPI_Init and MPI_Finalize with argv[0] "bench". */
int mpicli_bench_main(int argc, char **argv);

/* ---- errors and usage (cli_util.c) ---- */

/* Print "trestle: <message>" and a newline to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a library error as "trestle: <err->message>" (falling back to the
 * code's text when the message is empty); returns CLI_EXIT_FAIL. */
int cli_fail(const trestle_error *err);

/* Print "trestle: <cmd>: <message>" plus a pointer to `trestle <cmd> --help`
 * to stderr; returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Report what getopt_long rejected (`c` is '?' or ':'; getopt must run with
 * an optstring starting with ':' and opterr = 0). Returns CLI_EXIT_USAGE.
 */
int cli_bad_option(const char *cmd, char **argv, int c);

/* Reset getopt so that a command may parse its own argv from the start. */
void cli_getopt_reset(void);

/* ---- checkpoints given as URLs (cli_remote.c) ---- */

/* Option codes of the remote options, above every command's own. */
#define CLI_OPT_CONNECTIONS 0x7100
#define CLI_OPT_ATTEMPTS 0x7101
#define CLI_OPT_BACKOFF 0x7102
/* Entries for a command's struct option table. */
#define CLI_REMOTE_LONGOPTS                                                          \
    { "connections", required_argument, NULL, CLI_OPT_CONNECTIONS },                 \
        { "attempts", required_argument, NULL, CLI_OPT_ATTEMPTS },                   \
        { "backoff", required_argument, NULL, CLI_OPT_BACKOFF }
/* Their lines in a command's --help. */
#define CLI_REMOTE_HELP                                                                  \
    "Remote checkpoints (PATH a gs://, s3://, https:// or http:// URL; see README,\n"    \
    "\"Remote checkpoints\", for credentials):\n"                                        \
    "      --connections N    ranged GETs in flight at once (default 32; a restore\n"    \
    "                         raises --queue-depth and --staging to match unless set)\n" \
    "      --attempts N       tries per request before a 5xx, 429, reset, timeout or\n"  \
    "                         short body fails the command (default 8)\n"                \
    "      --backoff MS       the first retry waits MS/2 to MS milliseconds, each next\n" \
    "                         one twice as long, at most 10 s (default 200)\n"

/* Apply one of them (c a CLI_OPT_ code); CLI_EXIT_OK, or CLI_EXIT_USAGE
 * after reporting. */
int cli_remote_option(const char *cmd, int c, const char *arg);
/* The same, reporting nothing when `quiet` (trestle-mpi's ranks but 0). */
int cli_remote_option_quiet(const char *cmd, int c, const char *arg, int quiet);

/* The open options those set (the defaults otherwise); cli_open() uses them. */
const trestle_open_options *cli_open_options(void);

/* With --connections N: raise queue_depth and staging_bytes, where still at
 * their defaults, so that N reads can be in flight. */
void cli_remote_fit(trestle_restore_options *run);

/* After a restore's summary: one line of what a remote restore fetched
 * (requests, retries, bytes fetched vs read, objects verified whole). */
void cli_remote_summary(const trestle_stats *st);

/* The same as a `"remote": {...}` member (after a ",\n"), for --json. */
void cli_remote_json(FILE *f, const trestle_stats *st, const char *indent);

/* "io_uring", "pread", "remote" (a trestle_reader_kind as stats report
 * it), "auto" for anything else. */
const char *cli_reader_name(int reader);

/* Open a checkpoint with default options; prints the error and returns
 * CLI_EXIT_FAIL on failure, CLI_EXIT_OK otherwise. */
int cli_open(const char *path, trestle_checkpoint **out);

/* open(path, O_RDONLY | O_CLOEXEC | extra_flags) that cannot block and
 * keeps only a regular file (as the library opens the files a user
 * names): O_NONBLOCK for the open, fstat() of the descriptor, O_NONBLOCK
 * cleared again. -1 with errno set on failure, ENXIO for a FIFO, device or
 * socket, EISDIR for a directory. For the tools that read shard bytes
 * themselves (the bench ceilings). */
int cli_open_regular(const char *path, int extra_flags);

/* `s` as one safe line for a terminal (malloc'd; NULL out of memory):
 * control characters as \n \t \r \e or \xNN, a backslash as \\,
 * bytes that are not UTF-8 as \xNN, and C1 controls and bidirectional
 * overrides as \uNNNN, so a key cannot move the cursor, recolour the
 * terminal or hide its own text; other UTF-8 text as is. Human output
 * prints keys through it (JSON has its own escapes). */
char *cli_escape_text(const char *s);
/* The same into `out`, which holds CLI_ESCAPED_MAX(strlen(s)) bytes (each
 * byte becomes at most \xNN, each 2-3 byte character at most \uNNNN);
 * returns the length written (a NUL follows). */
#define CLI_ESCAPED_MAX(len) ((len) * 6 + 1)
size_t cli_escape_into(char *out, const char *s);

/* cli_open's hint after a checkpoint failed to open: when `path` names a graph file (.meta,
 * saved_model.pb), say where its checkpoint is and suggest --graph. */
void cli_graph_hint(const char *path);


/* ---- numbers and sizes (cli_util.c) ---- */

/* "4 B", "1.50 KiB", "2.00 GiB" into buf. */
void cli_human_size(uint64_t bytes, char *buf, size_t cap);

/* "4.40 GB/s" (1e9 bytes per second) into buf, or "-" when nothing moved or
 * no time passed. */
void cli_rate(uint64_t bytes, double seconds, char *buf, size_t cap);

/* Parse "4096", "64K", "1.5G", "8MiB" (binary suffixes K M G T, optional
 * "B"/"iB"). Returns 0 on success, -1 when malformed or overflowing. */
int cli_parse_size(const char *s, uint64_t *out);

/* Parse a decimal integer in [min, max]. Returns 0 or -1. */
int cli_parse_int(const char *s, long long min, long long max, long long *out);

/* The decimal digits of v, NUL-terminated, at out (room for 21 bytes;
 * 20 for an unsigned value); returns their count. snprintf's work per
 * number was a third of listing 100,000 tensors (issue 24). */
size_t cli_fmt_u64(char *out, uint64_t v);
size_t cli_fmt_i64(char *out, int64_t v);

/* "[]", "[4096]", "[2,2]" into buf (truncated with "..." if too long). */
void cli_shape_format(int rank, const int64_t *dims, char *buf, size_t cap);

/* Length of the decoded string of a scalar DT_STRING entry of `stored`
 * bytes (varint length + 4-byte checksum + bytes), computed without I/O. */
uint64_t cli_scalar_string_len(uint64_t stored);

/* The bytes a whole-tensor read needs: stored size, or elements x dtype
 * size for a partitioned tensor. */
uint64_t cli_read_size(const trestle_tensor_info *t);

/* ---- element values (cli_values.c) ---- */

/* 1 when the dtype's elements convert to a real number (ints, floats of any
 * width including bfloat16/half/float8, bool); 0 for string, complex... */
int cli_dtype_is_real(int dtype);

/* Element `i` of a fixed-size tensor as a double (for real dtypes). */
double cli_element_double(int dtype, const void *base, uint64_t i);

typedef enum cli_style {
    CLI_STYLE_PYTHON = 0, /* -0.8578622, 32768.0, True, nan, (1+2j) */
    CLI_STYLE_JSON = 1    /* the same numbers, true/false, null for nan/inf */
} cli_style;

/* Format element `i` of a fixed-size tensor into buf. Returns 0, or -1 for
 * dtypes without printable elements (variant, resource). */
int cli_format_element(int dtype, const void *base, uint64_t i, cli_style style, char *buf,
                       size_t cap);

/* Bit layout of a binary floating-point dtype (float, double, half,
 * bfloat16, float8_*): exponent bits, mantissa bits and exponent bias.
 * Returns 1 for those dtypes, 0 for any other. */
int cli_float_layout(int dtype, int *ebits, int *mbits, int *bias);

/* Shortest round-trip text of a float/double, Python repr style. */
void cli_format_float(float v, char *buf, size_t cap);
void cli_format_double(double v, char *buf, size_t cap);

/* Write bytes as a Python bytes literal (b'...'), at most `max` bytes of
 * content (0 = no limit), followed by "...(N bytes)" when cut. */
void cli_print_pybytes(FILE *f, const uint8_t *p, uint64_t len, uint64_t max);

/* ---- printing whole tensors (cli_print.c) ---- */

/*
 * Print a tensor's values numpy-style: nested brackets, ", " between
 * elements, rows on their own lines, lines wrapped at 75 columns. When
 * `all` is 0 and the tensor has more than 1000 elements, each axis shows
 * its first and last 3 entries around "...". `buf` holds the bytes that
 * trestle_tensor_read() returned. Returns 0 or a trestle code (corrupt
 * string tensor) with `err` filled.
 */
int cli_print_values(FILE *f, const trestle_tensor_info *t, const void *buf, uint64_t size,
                     int all, trestle_error *err);

/* Print values as a flat JSON array (first 1000 unless `all`); sets
 * *truncated. Returns 0 or a trestle code. */
int cli_print_values_json(FILE *f, const trestle_tensor_info *t, const void *buf, uint64_t size,
                          int all, int *truncated, trestle_error *err);

/* ---- statistics (cli_stats.c) ---- */

#define CLI_STAT_TEXT 48 /* bytes of one formatted statistic */

/* Statistics of one tensor, already formatted in both styles (indexed by
 * cli_style), so they outlive the tensor's bytes. */
typedef struct cli_stats {
    int valid;                      /* 1 when computed (real dtype) */
    uint64_t count;                 /* elements */
    uint64_t nans;                  /* NaN elements */
    char min[2][CLI_STAT_TEXT];     /* smallest non-NaN element, "nan"/null if none */
    char max[2][CLI_STAT_TEXT];     /* largest non-NaN element */
    char mean[2][CLI_STAT_TEXT];    /* mean of the non-NaN elements */
} cli_stats;

/* Compute min/max/mean/NaN count of a tensor's `n` elements; leaves
 * valid = 0 for dtypes that are not real numbers. */
void cli_stats_compute(int dtype, const void *buf, uint64_t n, cli_stats *out);

/* ---- synthetic models (cli_synth_model.c) ---- */

/* A Llama-shaped decoder scaled by its hidden size: attention with 4x fewer
 * KV heads, a gated MLP 3.5x wide, a vocabulary 31.3x the hidden size. */
typedef struct cli_synth_model {
    int64_t hidden;   /* 4096 at full size */
    int64_t ffn;      /* 3.5 x hidden (14336) */
    int64_t kv;       /* hidden / 4 (1024) */
    int64_t vocab;    /* 31.3125 x hidden (128256) */
    int layers;       /* 32 at full size */
} cli_synth_model;

typedef struct cli_synth_tensor {
    char name[96];    /* e.g. model/layers.3/mlp/up_proj/kernel */
    int rank;
    int64_t dims[2];
    int is_norm;      /* a norm scale: values near 1, not near 0 */
} cli_synth_tensor;

/* The biggest model whose tensors total at most `size` bytes with
 * `esize`-byte elements, with exactly `layers` layers (0: any number).
 * Returns 0, or -1 when even the smallest is bigger (*min_bytes then holds
 * the smallest size). */
int cli_synth_model_fit(uint64_t size, size_t esize, int layers, cli_synth_model *m,
                        uint64_t *min_bytes);
size_t cli_synth_model_count(const cli_synth_model *m);
void cli_synth_model_tensor(const cli_synth_model *m, size_t i, cli_synth_tensor *out);
uint64_t cli_synth_model_elements(const cli_synth_model *m);

/* ---- aligned text tables (cli_table.c) ---- */

typedef struct cli_table cli_table;

/* A table with `ncols` columns named `headers`; `right` marks columns that
 * are right-aligned (may be NULL). Returns NULL when out of memory. */
cli_table *cli_table_new(int ncols, const char *const *headers, const int *right);

/* Append a row of `ncols` cells (copied; NULL or "" for empty). Returns 0/-1. */
int cli_table_add(cli_table *t, const char *const *cells);
/* cli_table_add() with every cell through cli_escape_text(): for rows that
 * show bytes from a file (keys, graph names). */
int cli_table_add_escaped(cli_table *t, const char *const *cells);

/* Print with each column as wide as its widest cell, two spaces apart,
 * columns empty in every row left out, no trailing spaces. Frees nothing. */
void cli_table_print(const cli_table *t, FILE *f);
void cli_table_free(cli_table *t);

/* ---- JSON (cli_json.c) ---- */

/* Write `s` (len bytes) as a JSON string literal: quotes, backslashes and
 * control characters escaped; invalid UTF-8 bytes written as \u00XX. */
void cli_json_string(FILE *f, const char *s, size_t len);
void cli_json_cstr(FILE *f, const char *s);

/* ---- ops files (cli_opsfile.c) ---- */

typedef struct cli_ops {
    trestle_op *ops;    /* n ops; names/specs point into owned strings */
    size_t n;
    char **strings;     /* owned copies, freed by cli_ops_free */
    size_t nstrings;
    trestle_shape *shapes; /* from a graph: n declared shapes for
                              trestle_plan_options.op_shapes (owned), else NULL */
    int64_t *shape_dims;   /* the dims they point into (owned) */
} cli_ops;

/*
 * Read an ops file: one op per line,
 * `NAME[\tSHAPE_AND_SLICES[\tdtype=DTYPE][\tas=DTYPE]]` (as= sets
 * target_dtype); blank lines and lines starting with '#' are ignored. Every op gets
 * `dest_kind`. `path` "-" reads standard input. A file that lists no op,
 * a line over 64 KiB, a file over 256 MiB, a NUL byte or a read error
 * (with its errno) is an error. Prints "trestle: FILE:LINE: ..." and
 * returns CLI_EXIT_FAIL on error (leaving *out empty); CLI_EXIT_OK otherwise.
 */
int cli_ops_read(const char *path, int dest_kind, cli_ops *out);
void cli_ops_free(cli_ops *ops);

/* ---- --as and skipped ops, as restore says them (cli_restore.c) ---- */

/* At least one tensor of ckpt converts to `as` on load: CLI_EXIT_OK; else
 * the "--as DTYPE: no tensor of this checkpoint converts" error is printed
 * and CLI_EXIT_FAIL returned (restore and convert say it alike). */
int cli_as_check(const trestle_checkpoint *ckpt, int as);

/* --as without --ops (restore, preload): one whole-tensor op per listed
 * tensor, into engine memory, converted to `as` where its stored dtype
 * converts; names point into the checkpoint. CLI_EXIT_OK, or
 * CLI_EXIT_FAIL (reported) when none converts or memory runs out. */
int cli_ops_converting_all(const trestle_checkpoint *ckpt, int as, cli_ops *out);

/* A converted dtype as --as spells it: numpy's float32/float16 rather than
 * TensorFlow's float/half. */
const char *cli_conversion_name(int dtype);

/* Why an op was skipped (TRESTLE_SKIP_*), as restore and convert say it:
 * "excluded", "missing", "variant: opaque to trestle", ... */
const char *cli_skip_reason(int skipped);

/* ---- several GPUs in one process (cli_devices.c) ---- */

#define CLI_MAX_DEVICES 64 /* as the engine's device list */

/* --device ARG: "N", "N,M,..." (distinct) or "all" (every usable GPU),
 * into out (cap entries), *n of them. CLI_EXIT_OK, CLI_EXIT_USAGE or
 * CLI_EXIT_FAIL, reported. */
int cli_devices_parse(const char *cmd, const char *arg, int *out, size_t cap, size_t *n);

/* A --shard rule's form, GLOB:DIM; CLI_EXIT_USAGE (reported) when bad. */
int cli_devices_check_rule(const char *rule);

/* What each --shard rule did to the op names of a restore: the names its
 * glob matches, and those it takes (the first matching rule wins, as in
 * the planner), so that a rule that splits nothing is said, not silent. */
typedef struct cli_shard_tally {
    size_t nrules;
    size_t *matched;        /* per rule: names its glob matches */
    size_t *taken;          /* per rule: names it splits */
} cli_shard_tally;

/* Start a tally of `nrules` rules; CLI_EXIT_FAIL (reported) out of memory. */
int cli_shard_tally_init(cli_shard_tally *t, size_t nrules);
/* Count one op name against the rules. */
void cli_shard_tally_add(cli_shard_tally *t, const char *const *rules, const char *name);
/* With `print`, one "note:" line on stderr per rule that splits nothing
 * (saying whether its glob matches no name or an earlier rule takes every
 * name it matches); then free the tally. */
void cli_shard_tally_done(cli_shard_tally *t, const char *const *rules, int print);

/* Every tensor of ckpt, whole, for `w` devices: one op per part of those
 * a rule matches (part d, by TensorFlow's partitioner rule, placed on
 * device index d in (*place)[i], malloc'd), the others once
 * (TRESTLE_EVERY_DEVICE: replicated). Reports and returns CLI_EXIT_FAIL
 * for a rule naming a dimension a tensor lacks. */
int cli_devices_split_ops(const trestle_checkpoint *ckpt, const char *const *rules,
                          size_t nrules, size_t w, cli_ops *out, int **place);

/* One line per device (tensors and bytes it holds) and the aggregate
 * (bytes read once, bytes copied to all devices, GB/s). */
void cli_devices_summary(const trestle_plan *plan, const trestle_stats *st, const int *devices,
                         size_t ndev);

/* ---- graphs (cli_graph.c) ---- */

/* The op list a graph file's saver restores (trestle_graph_open; `tag`
 * picks a SavedModel's meta graph, NULL for the default), every op with
 * `dest_kind`, and the variables' declared shapes in out->shapes. Prints
 * a `note:` to stderr when the ops come from the variable collections
 * (no saver). Prints the error and returns CLI_EXIT_FAIL when the graph
 * cannot be read, CLI_EXIT_NOTHING when it restores nothing; CLI_EXIT_OK
 * otherwise. */
int cli_graph_ops(const char *path, const char *tag, int dest_kind, cli_ops *out);

/* 1 when `path` names a graph rather than an ops file or a checkpoint: a
 * .meta or .pb file, or a directory holding saved_model.pb. */
int cli_graph_is_path(const char *path);

/* An op list from a graph (cli_graph_ops, with `tag`) or an ops file
 * (cli_ops_read; then a `tag` is a usage error, printed, CLI_EXIT_USAGE),
 * whichever `path` is. Same contract as those. */
int cli_op_list_read(const char *path, const char *tag, int dest_kind, cli_ops *out);

/* Write `op` as one ops-file line (NAME<TAB>SPEC[<TAB>dtype=DTYPE]) that
 * cli_ops_read() reads back unchanged. Returns 0, or -1 after printing an
 * error when the name cannot be written so (a TAB, newline, leading '#'
 * or edge space in it). */
int cli_ops_write_line(FILE *f, const trestle_op *op);

/* ---- object-graph names (cli_names.c) ---- */

/* `inspect --names graph`: every key of a TF2 checkpoint beside its graph
 * name (optimizer slots as VAR/SLOT), as a table or JSON. Prints the error
 * and returns CLI_EXIT_FAIL when the checkpoint has no object graph. */
int cli_names_list(const trestle_checkpoint *c, int json);

typedef struct cli_names_rules {
    char **rules;       /* "graph_name=checkpoint_key", owned */
    size_t n;
} cli_names_rules;

/* `--names graph`: one exact rename rule per key whose graph name no other
 * key shares (shared names are ambiguous and get none). Prints the error
 * and returns CLI_EXIT_FAIL without an object graph; CLI_EXIT_OK otherwise. */
int cli_names_renames(const trestle_checkpoint *c, cli_names_rules *out);
void cli_names_rules_free(cli_names_rules *r);

/* After a restore of `ops` with --names graph found keys missing: for each
 * op named by a graph name that several keys share (and by no key), print
 * "graph name 'X' is shared by N keys: A and B; ..." to stderr. */
void cli_names_note_shared(const trestle_checkpoint *c, const trestle_op *ops, size_t n);

/* Append `names`' rules to po's renames: po->renames becomes a new array
 * (returned; free it after planning, and keep `names` until then). NULL,
 * after printing the error, when out of memory. */
const char **cli_names_merge(trestle_plan_options *po, const cli_names_rules *names);

/* ---- per-tensor scan: read, verify, stats (cli_scan.c) ---- */

typedef struct cli_scan_result {
    int code;           /* TRESTLE_OK or the read/verify failure */
    char *message;      /* malloc'd error message when code != 0 */
    int unreadable;     /* 1 when its data shard could not be used at all (missing,
                           unreadable, not a regular file): unreadable, not corrupt */
    char *shard;        /* that shard's path (malloc'd) until the scan has reported it */
    cli_stats stats;    /* when stats were asked for and the read succeeded */
} cli_scan_result;

/* Counts of a scan: tensors whose bytes were wrong, and tensors whose
 * shard could not be used (unreadable, not corrupt). */
typedef struct cli_scan_counts {
    size_t corrupt;
    size_t unreadable;
} cli_scan_counts;

/*
 * Read every listed tensor once, verifying its CRC32C (every command that
 * reads bytes checks them), computing statistics when `stats`, and
 * carrying on past failures so that every bad tensor is reported. Each
 * corrupt tensor is printed to stderr as it is found; a shard that cannot
 * be used is reported once, after the scan, with the tensors it holds.
 * Returns a malloc'd array of trestle_tensor_count() results (NULL when
 * out of memory) and fills *counts.
 */
cli_scan_result *cli_scan(const trestle_checkpoint *c, int stats, cli_scan_counts *counts);
void cli_scan_free(cli_scan_result *r, size_t n);

/* ---- restore progress and Ctrl-C (cli_progress.c) ---- */

typedef struct cli_progress cli_progress;

/*
 * Watch a running restore of `p`: make trestle_restore_cancel(p) the
 * signals' cancel hook (cli_signals_on_cancel) and, when `bar` is set, start
 * a thread that draws a progress bar on stderr (at most 10 times a second,
 * once the restore has run for half a second). `total` is the plan's
 * output bytes. With `p` NULL (a conversion, whose plan is the library's:
 * its ready callback returns cli_interrupted() to cancel it) there is no
 * hook, only the bar. Returns NULL when out of memory (the restore then
 * runs unwatched, its ready callback unset); without a thread to spare, no
 * bar.
 */
cli_progress *cli_progress_start(trestle_plan *p, uint64_t total, int bar);

/* The trestle_ready_fn to pass in trestle_restore_options.on_ready, with
 * the cli_progress as `user`: counts the bytes, and cancels once a signal
 * was taken (cli_interrupted). */
int cli_progress_on_ready(void *user, size_t i, const trestle_plan_op_info *op);

/* The ready callback a restore watched by `pg` needs, with `pg` as user:
 * cli_progress_on_ready when a bar is drawn; cli_signals_ready when a test
 * pauses in the "restore" phase; else none. A callback per op costs some
 * 30 ns a tensor (issue 24: a model of 100,000), and without a bar nothing
 * needs one: a signal cancels the restore through trestle_restore_cancel(),
 * and one that comes just before the restore starts ends the command once
 * it returns. */
trestle_ready_fn cli_progress_ready_fn(const cli_progress *pg);

/* Clear the cancel hook, stop the thread, erase the bar. Accepts NULL. */
void cli_progress_stop(cli_progress *pg);

/* ---- a restore's figures: stages, spread, JSON (cli_figures.c) ---- */

/* Units everywhere in the CLI: rates in GB/s (1e9 bytes per second), sizes
 * binary (KiB, MiB, GiB: 2^10, 2^20, 2^30 bytes). */

enum { CLI_STAGE_READ, CLI_STAGE_VERIFY, CLI_STAGE_COPY, CLI_STAGE_TOTAL, CLI_STAGES };

/* What one stage of one restore really moved. */
typedef struct cli_stage_run {
    uint64_t bytes;     /* through the stage: read by read calls, CRC-checked, copied by a
                           copier; total: the plan's output bytes */
    uint64_t bypassed;  /* read: mapped, never read (host_map); copy: read straight into
                           place or mapped, never copied */
    double seconds;     /* read, total: wall; verify, copy: busy time summed over workers
                           (a device copy: wall time with a copy in flight) */
} cli_stage_run;

/* The figures of one restore. */
typedef struct cli_run {
    trestle_stats raw;              /* as the library gave them */
    cli_stage_run stage[CLI_STAGES];
    int verify;                     /* verification was on */
    int device_copy;                /* the copy stage is a device's */
} cli_run;

/* Min, median and max of some values. */
typedef struct cli_spread {
    double min, median, max;
} cli_spread;

/* One stage over the runs that moved bytes through it. */
typedef struct cli_stage_sum {
    size_t runs;        /* runs with a rate; 0: the stage never ran */
    uint64_t bytes, bypassed; /* of the last run */
    cli_spread seconds, gbps;
} cli_stage_sum;

/* "read", "verify", "copy", "total". */
const char *cli_stage_name(int stage);

/* The figures of a restore of a plan of `output_bytes`; `device_copy` when
 * its copies went to a GPU (timed by device_copy_seconds). */
void cli_run_from_stats(const trestle_stats *st, uint64_t output_bytes, int device_copy,
                        int verify, cli_run *out);

/* The stage's GB/s, or 0 when it moved nothing in measurable time. */
double cli_stage_gbps(const cli_stage_run *r);

/* Spread of v[0..n) (0s for n = 0). 0, or -1 when out of memory. */
int cli_spread_of(const double *v, size_t n, cli_spread *out);
int cli_stage_summarize(const cli_run *runs, size_t n, int stage, cli_stage_sum *out);

/* A stage's rate for a summary line: "9.61 GB/s", "6.90 GB/s, 1.00 GiB more
 * read in place", or why it has none: "none: all 1.00 GiB read straight
 * into place", "none: all 1.00 GiB mapped from the page cache", "off". */
void cli_stage_text(const cli_run *run, int stage, char *buf, size_t cap);

/*
 * The "stats" object `trestle bench` and `trestle restore --json` print
 * for n >= 1 runs: tensors, bytes, reader, and per stage its bytes, the
 * bytes that bypassed it, how it is timed, seconds and GB/s as min,
 * median, max and each run's value, and a note when it never ran; time
 * to the first tensor likewise. `indent` prefixes every line after the
 * first. 0, or -1 when out of memory.
 */
int cli_json_stats(FILE *f, const cli_run *runs, size_t n, const char *indent);

/* ---- the machine a figure was measured on (cli_machine.c) ---- */

typedef struct cli_machine {
    char cpu[128];          /* /proc/cpuinfo's model name, or "unknown" */
    long cores;             /* online CPUs */
    uint64_t memory;        /* bytes of RAM */
    char kernel[400];       /* "Linux 6.1.0-18-amd64 x86_64" */
    char fs[64];            /* file system type of the shards, e.g. "ext4", "tmpfs" */
    char fs_source[256];    /* its source, e.g. "/dev/nvme0n1p2" */
    char mount[1024];       /* its mount point */
} cli_machine;

/* Probe this machine, and the file system holding `path` (a shard; NULL: unknown). */
void cli_machine_probe(const char *path, cli_machine *m);

/* CMAKE_BUILD_TYPE of this program ("Release", "RelWithDebInfo", ...), or "unknown". */
const char *cli_build_type(void);

/* "machine: ..." and "trestle 0.2.0, Release build" lines. */
void cli_machine_text(FILE *f, const cli_machine *m);

/* The members "trestle": {version, build_type} and "machine": {cpu, cores,
 * memory_bytes, kernel, filesystem, filesystem_source, mount_point}, the
 * first line after `indent`, no trailing comma. */
void cli_machine_json(FILE *f, const cli_machine *m, const char *indent);

/* ---- checksums of restored bytes (cli_checksum.c) ---- */

#define CLI_FNV1A_BASIS 1469598103934665603ull /* FNV-1a 64-bit offset basis */

/* FNV-1a 64 of n bytes, carried on from h. */
uint64_t cli_fnv1a(uint64_t h, const void *data, uint64_t n);

/* Op i's restored bytes (a device's read back): their FNV-1a into *op_hash,
 * and carried on into *chain. 0, or -1 when they cannot be read back. */
int cli_checksum_op(const trestle_plan *p, size_t i, uint64_t *op_hash, uint64_t *chain);

/* Every op's bytes in op order, carried on from the basis: the whole
 * model's checksum (0 when some op cannot be read back). */
uint64_t cli_checksum_plan(const trestle_plan *p);

/* ---- what `trestle restore` prints (cli_restore_report.c) ---- */

/* The summary line ("restored N tensors, ... GB/s (read ..., verify ..., copy
 * ...; reader ...)") and its notes. */
void cli_restore_summary(const trestle_plan *plan, const cli_run *run);

/* --list: one row per op (name, key when renamed or skipped, dtype, shape,
 * size). 0, or -1 when out of memory. */
int cli_restore_list(const trestle_plan *plan);

/* The same table for n ops of any source (a plan, an attachment): `get`
 * describes op i of `src` as trestle_plan_get_op() does. */
typedef int (*cli_op_getter)(const void *src, size_t i, trestle_plan_op_info *out);
int cli_op_table(const void *src, size_t n, cli_op_getter get);

/* --checksum: "fnv1a64 HASH  NAME" per restored op, then the whole model's
 * (cli_checksum.c). CLI_EXIT_OK, or CLI_EXIT_FAIL (reported). */
int cli_restore_checksums(const trestle_plan *plan);

/* --json: path, trestle and machine (the file system of ckpt's shards),
 * devices, ops and skipped counts, the "stats" object (cli_json_stats),
 * notes, and with `checksum` every op's and the model's checksum.
 * CLI_EXIT_OK or CLI_EXIT_FAIL (reported). */
int cli_restore_json(const char *path, const trestle_checkpoint *ckpt, const trestle_plan *plan,
                     const cli_run *run, const int *devices, size_t ndev, int checksum);

/* ---- SIGINT, SIGTERM, SIGHUP (cli_signal.c) ---- */

/*
 * In main(), before anything else: block SIGINT, SIGTERM and SIGHUP in
 * every thread (those the engine starts inherit it) and take them in one
 * watcher thread. On a signal the watcher calls the cancel hook; when the
 * command has not returned within half a second (a phase nothing cancels,
 * such as flushing a file) or at a second signal, it calls the cleanup
 * hook, prints "trestle: interrupted (SIGINT)" and ends the process by the
 * signal. Signals ignored at start (nohup) stay ignored.
 */
void cli_signals_install(void);

/* Before exec: give the new program the signal mask this process started with. */
void cli_signals_release(void);

/* The signal taken (SIGINT, SIGTERM, SIGHUP), or 0: commands poll it to wind down. */
int cli_interrupted(void);

/* What stops the work in progress at a signal (e.g. trestle_restore_cancel
 * of the running plan), called from the watcher thread; NULL clears it.
 * Clearing waits out a call in progress, so the argument may be freed
 * after. A restore started after the signal is not cancelled by it: its
 * ready callback must return cli_interrupted(). */
void cli_signals_on_cancel(void (*fn)(void *), void *arg);

/* What the process must remove if it is ended before the command returns
 * (a temporary checkpoint, a partial file): a stack of 4, run last pushed
 * first, from the watcher thread while the command's threads still run.
 * Pop it once the command has removed or kept those itself. */
void cli_signals_push_cleanup(void (*fn)(void *), void *arg);
void cli_signals_pop_cleanup(void);

/* Push the cleanup of trestle_convert_safetensors(..., out, ...): unlink
 * the library's temporary `out.tmp-XXXXXX` that this process holds open. */
void cli_signals_guard_temp(const char *out);

/* In main(), with the command's exit status: when a signal was taken,
 * print "trestle: interrupted (SIGNAME)" and end the process by it (the
 * shell sees 128 + its number); else return status. */
int cli_signals_finish(int status);

/* A trestle_ready_fn that cancels the restore once a signal is taken. */
int cli_signals_ready(void *user, size_t i, const trestle_plan_op_info *op);

/* Tests only: when TRESTLE_CLI_TEST_PAUSE names `phase`, print "trestle:
 * test pause at PHASE" to stderr and wait (60 s at most) for a signal, so
 * that a test can interrupt a command at a known point. */
void cli_signals_test_pause(const char *phase);

/* Tests only: whether TRESTLE_CLI_TEST_PAUSE names `phase`. */
int cli_signals_pausing(const char *phase);

/* ---- the temporary checkpoint of bench --synthetic (cli_bench_synth.c) ---- */

/*
 * Make $TMPDIR/trestle-bench-XXXXXX (into dir) and write `size` bytes of
 * bfloat16 tensors in `shards` files there through `trestle synth` (its
 * line goes to stderr), prefix DIR/ckpt into `prefix`. A signal's cleanup
 * (cli_signals_push_cleanup) removes the directory until
 * cli_bench_synth_remove(). CLI_EXIT_OK, or the failure (reported; nothing
 * left behind, dir set to "").
 */
int cli_bench_synth_make(uint64_t size, int shards, char *dir, size_t dcap, char *prefix,
                         size_t pcap);

/* Remove the directory and its files, and pop its cleanup; "" does nothing. */
void cli_bench_synth_remove(char *dir);

/* ---- benchmark yardsticks (cli_bench_ceiling.c) ---- */

#define CLI_YARDSTICK_RUNS 8 /* at most this many runs of one yardstick */

/* What a yardstick is, and so what a ratio to it means. */
enum {
    CLI_REFERENCE = 0, /* what a plain program gets (a reader like dd or cat): a stage may beat
                          it, and its ratio then says by how much; its figure is the median */
    CLI_CEILING = 1    /* the most this machine gives (a CRC32C or memcpy core, a PCIe
                          link): a stage at or above it is reported at 1.00, capped, with a
                          note; its figure is the best run */
};

/* One yardstick measured by `trestle bench` in the same run as the restores. */
typedef struct cli_ceiling {
    int valid;         /* 1 when measured; 0: n/a, `note` says why */
    int kind;          /* CLI_REFERENCE or CLI_CEILING */
    double gbps;       /* GB/s (1e9 bytes per second): the median run of a reference, the
                          best of a ceiling */
    uint64_t bytes;    /* bytes moved in one run */
    double seconds;    /* seconds of the run `gbps` is (the median run, or the best) */
    int runs;          /* runs measured */
    double each[CLI_YARDSTICK_RUNS]; /* GB/s of every run, in order */
    char note[256];    /* how it was measured, or why it is n/a */
} cli_ceiling;

/* Record one run of `bytes` in `seconds` (ignored when either is 0). */
void cli_ceiling_add(cli_ceiling *c, uint64_t bytes, double seconds);

/* Set gbps, bytes, seconds and valid from the runs: median or best, by kind. */
void cli_ceiling_finish(cli_ceiling *c);

/*
 * Drop the page cache of a checkpoint's shards and index: sync, then
 * /proc/sys/vm/drop_caches when writable, else fdatasync +
 * posix_fadvise(DONTNEED) per file. `what` receives one sentence saying
 * which happened and how much of the shard bytes is still cached. Returns
 * 0 when dropped via drop_caches, 1 via fadvise, -1 when neither worked.
 */
int cli_bench_drop_cache(const trestle_checkpoint *c, char *what, size_t cap);

/*
 * What a plain reader of every shard gets (CLI_REFERENCE): one thread
 * opens each shard in turn, read()s it in 1 MiB blocks into one
 * page-aligned buffer and closes it, as dd bs=1M and cat do, timed from
 * the first open to the last close; `runs` runs (the cache dropped before
 * each when `cold`), median. Stops early at a signal.
 */
void cli_bench_plain_read(const trestle_checkpoint *c, int cold, int runs, cli_ceiling *out);

/* Every shard byte read with O_DIRECT through a deep io_uring queue (a
 * 16-thread pread pool when io_uring is unavailable), the cache dropped
 * before each run when `cold` (CLI_REFERENCE, median of `runs`). */
void cli_bench_direct_read(const trestle_checkpoint *c, int cold, int runs, cli_ceiling *out);

/* A checkpoint opened from a URL: plain parallel ranged GETs of every
 * tensor's bytes, 8 MiB at a time, with the connections the checkpoint was
 * opened with (trestle_remote_ceiling()), `runs` times (CLI_CEILING: the
 * best). Stops early at a signal. */
void cli_bench_gets(const trestle_checkpoint *c, int runs, cli_ceiling *out);

/* CRC32C throughput of one core (CLI_CEILING): ISA-L's crc32_iscsi, the
 * engine's CRC32C, over a buffer in cache, best of 5. */
void cli_bench_crc(cli_ceiling *out);

/* memcpy throughput of one core between two touched buffers (CLI_CEILING). */
void cli_bench_memcpy(cli_ceiling *out);

/* Host-to-device copy into CUDA device `device` from pinned (`pinned` 1)
 * or pageable memory, via the CUDA runtime loaded with dlopen; n/a with
 * the reason when there is no runtime or no device (CLI_CEILING). */
void cli_bench_h2d(int device, int pinned, cli_ceiling *out);

#endif /* TRESTLE_CLI_H */
