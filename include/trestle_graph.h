/**
 * @file trestle_graph.h
 * @brief Graphs, object-graph names and rename inference: the op list a
 * TensorFlow graph restores, and why it does or does not restore.
 *
 * Who it is for: programs that start from what TensorFlow wrote beside the
 * weights rather than from an op list of their own: a tool that restores
 * what a Saver's `.meta` or a SavedModel asks for (`trestle ops`, `restore
 * --graph`), one that lines up a TF2 checkpoint's object-path keys with
 * graph names (`--names graph`), one that explains a restore that fails and
 * infers the renames that fix it (`trestle check`). A runtime that already
 * knows its ops needs only trestle.h.
 *
 * Three parts, all before planning (the planner never sees a graph):
 * - graphs: trestle_graph_open() reduces a graph file to its saver's op
 *   list (trestle_graph_ops()) and the variables' declared shapes
 *   (trestle_graph_op_shapes()), ready for trestle_plan_create();
 * - names: trestle_names_open() decodes a TF2 checkpoint's object graph
 *   into key <-> graph name pairs and the renames that use them;
 * - inference: trestle_infer_renames() plans without reading and says what
 *   each op resolves to, what nothing restores, and the renames, proven by
 *   planning again, that make the restore succeed.
 *
 * It is part of libtrestle: nothing else to link (`pkg-config --libs
 * trestle`, trestle::trestle). It includes trestle.h, whose global rules
 * (ownership, threads, errors, options, "Since X.Y") hold here too.
 * Releases up to 0.1 declared these calls in trestle.h; since 0.2 a program
 * that uses them includes this header.
 */
#ifndef TRESTLE_GRAPH_H
#define TRESTLE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================= */
/* Graphs: the op list a TensorFlow graph's saver would restore             */
/* ======================================================================= */

/**
 * An opened graph file reduced to what its saver restores: the op list of
 * every RestoreV2 (or, in graphs from 2016, RestoreSlice/Restore) node that
 * the SaverDef's restore op runs, in file order. Immutable once open;
 * thread-safe to read. Graphs sit before planning: the ops go to
 * trestle_plan_create() like any other op list, and the planner never sees
 * a graph.
 */
typedef struct trestle_graph trestle_graph;

/** What kind of file a graph came from. */
typedef enum trestle_graph_kind {
    TRESTLE_GRAPH_META = 1,        /**< a Saver's `.meta` (one MetaGraphDef) */
    TRESTLE_GRAPH_SAVED_MODEL = 2  /**< a SavedModel's `saved_model.pb` */
} trestle_graph_kind;

/** Where a graph's op list came from (trestle_graph_op_source()). Since 0.2. */
typedef enum trestle_graph_ops_source {
    TRESTLE_GRAPH_OPS_NONE = 0,      /**< nothing to restore: no saver, no variables */
    TRESTLE_GRAPH_OPS_SAVER = 1,     /**< the restore nodes of the SaverDef's restore op */
    TRESTLE_GRAPH_OPS_VARIABLES = 2  /**< no saver: the global variables of the meta graph's
                                          collections, as a default Saver restores them */
} trestle_graph_ops_source;

/**
 * Options for trestle_graph_open(). Fill with trestle_graph_options_init().
 * Read by the options rule (trestle.h's overview, "Options").
 */
typedef struct trestle_graph_options {
    size_t size;            /**< sizeof(trestle_graph_options), set by init */
    const char *tag;        /**< SavedModel: read the first meta graph with this tag
                                 (e.g. "train"); NULL (default): the only one, else the
                                 first tagged "serve", else the first */
    void *reserved[8];      /**< must be zero */
} trestle_graph_options;

/**
 * @brief Fill `opt` with the defaults (no tag) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_graph_options_init(trestle_graph_options *opt);

/**
 * @brief Open a graph file and find the ops its saver restores.
 *
 * `path` may be (1) a `.meta` file (a MetaGraphDef, as tf.train.Saver
 * writes beside checkpoint prefix P), (2) a checkpoint prefix P whose
 * `P.meta` exists, (3) a `saved_model.pb` (a SavedModel; TF1 or TF2), or
 * (4) a SavedModel directory. Other file names are recognised by content.
 * Since 0.2 it may also be a gs://, s3://, https:// or http:// URL of one
 * of these (fetched whole with trestle_url_read(): the URL, else
 * URL/saved_model.pb, else URL.meta); the graph's path and checkpoint
 * prefix (trestle_graph_get_info()) are then the URLs redacted
 * (trestle_url_redact()).
 *
 * The search starts at SaverDef.restore_op_name and follows inputs,
 * control inputs and function calls (a TF2 SavedModel's restore op calls
 * a library function holding its RestoreV2 nodes), so restore nodes that
 * are not the saver's (an Estimator's warm-start `checkpoint_initializer`
 * nodes, a second saver) are ignored. Each restore node's tensor names and
 * shape_and_slices come from its DT_STRING Const inputs and its dtypes from
 * its `dtypes` (or `dt`) attr. Exact duplicate ops are dropped.
 *
 * A meta graph without a SaverDef (or whose SaverDef names no restore op)
 * gives what a default `tf.compat.v1.train.Saver()` built on it would
 * restore: every VariableDef of its "variables" (global variables)
 * collection, keyed by the variable's op name (`dense/kernel` for
 * `dense/kernel:0`), or, for a partition (`save_slice_info_def`), by its
 * full name with the partition's slice spec; the dtype and shape come from
 * the variable's node. trestle_graph_op_source() tells which happened.
 * Since 0.2; 0.1 gave zero ops. A graph with neither gives zero ops
 * (TRESTLE_GRAPH_OPS_NONE), which is not an error here: a caller must not
 * pass an empty op list to trestle_plan_create(), where it means "every
 * tensor".
 *
 * Untrusted input: the file is walked field by field with every length
 * checked against the bytes left, nothing recursive is decoded, and the
 * sizes are bounded (2 GiB file, 4096 meta graphs, 2^24 ops).
 *
 * @param[in]  path  the graph; not NULL; copied.
 * @param[in]  opt   options, or NULL for defaults.
 * @param[out] out   receives the graph, or NULL on failure; free it with
 *                   trestle_graph_close().
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_NOT_FOUND (no such file, a directory
 *         without saved_model.pb, no meta graph with `opt->tag`),
 *         TRESTLE_E_NOT_FOUND's message for an unknown tag lists the tag
 *         sets present, e.g. `saved_model.pb: no meta graph is tagged
 *         'serve' (its meta graphs are tagged: [train] [eval])`;
 *         TRESTLE_E_CORRUPT (malformed protobuf, a restore node whose
 *         names are not string constants or disagree with its dtypes, a
 *         restore op that is not in the graph, a collection's VariableDef
 *         that does not decode: the message names the file, the node and
 *         the byte offset, also in err.offset),
 *         TRESTLE_E_UNSUPPORTED (a text-format saved_model.pbtxt),
 *         TRESTLE_E_LIMIT, TRESTLE_E_IO, TRESTLE_E_NOMEM.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_graph_open(const char *path, const trestle_graph_options *opt,
                                   trestle_graph **out, trestle_error *err);

/**
 * @brief Close a graph and free its op list.
 *
 * Op names and strings obtained from it become invalid; plans made from
 * its ops are unaffected (trestle_plan_create() copies what it keeps).
 *
 * @param[in] g  the graph, or NULL (then nothing happens). Since 0.1.
 */
TRESTLE_API void trestle_graph_close(trestle_graph *g);

/** Facts about an opened graph (strings owned by the graph). */
typedef struct trestle_graph_info {
    const char *path;               /**< the file read (saved_model.pb of a directory) */
    const char *checkpoint_prefix;  /**< where its checkpoint normally is: P for P.meta,
                                         DIR/variables/variables for DIR/saved_model.pb */
    const char *tensorflow_version; /**< the writer's TF version, "" when not recorded */
    const char *restore_op;         /**< SaverDef.restore_op_name, "" without a saver */
    const char *tags;               /**< the meta graph's tags, comma-separated, or "" */
    int kind;                       /**< trestle_graph_kind */
    int object_based;               /**< 1: a TF2 SavedModel (object_graph_def present) */
    size_t meta_graphs;             /**< meta graphs in the file */
    size_t restore_nodes;           /**< restore nodes the restore op reaches */
} trestle_graph_info;

/**
 * @brief Describe an opened graph.
 * @param[in]  g    the graph; NULL gives all zeros.
 * @param[out] out  caller-owned; NULL is ignored. Its strings are owned by
 *                  `g` and valid until trestle_graph_close(g).
 * Never fails. Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_graph_get_info(const trestle_graph *g, trestle_graph_info *out);

/**
 * @brief Where the graph's op list came from: its saver, or (without one)
 * the variables of its collections, or nowhere (zero ops).
 * @param[in] g  the graph; NULL gives TRESTLE_GRAPH_OPS_NONE.
 * @return a trestle_graph_ops_source. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_graph_op_source(const trestle_graph *g);

/**
 * @brief Number of ops the graph's saver restores (without a saver, the
 * variables a default Saver would restore; see trestle_graph_open()).
 * @param[in] g  the graph; NULL gives 0.
 * @return the count. Thread-safe. Since 0.1.
 */
TRESTLE_API size_t trestle_graph_op_count(const trestle_graph *g);

/**
 * @brief The graph's op list, ready for trestle_plan_create().
 *
 * Each op has the checkpoint key TensorFlow would ask for as `name`, its
 * `shape_and_slices` ("" for a whole tensor, e.g. "3 100 0,3:0,100" for a
 * partition), the restore node's `dtype`, and `dest_kind`
 * TRESTLE_DEST_ALLOCATE; nothing else is set. To restore into other
 * destinations, copy the array and set `dest_kind`/`ptr`/`capacity`:
 *
 *     trestle_plan_create(ckpt, trestle_graph_ops(g), trestle_graph_op_count(g),
 *                         NULL, &plan, &err);
 *
 * @param[in] g  the graph; NULL gives NULL.
 * @return trestle_graph_op_count(g) ops owned by `g` (strings included),
 *         valid until trestle_graph_close(g); NULL when there are none.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API const trestle_op *trestle_graph_ops(const trestle_graph *g);

/**
 * @brief The declared shape of the variable op `i` restores, when the graph
 * says it.
 *
 * An op list carries no shapes, but a TF1 graph's saver assigns each
 * restored tensor to a variable whose "shape" attr is known (Assign or
 * AssignVariableOp into VariableV2 or VarHandleOp, possibly through
 * Identity nodes). TF2 restore functions assign to resource arguments, so
 * their ops have no known shape. For an op with a slice spec it is the
 * shape of the partition variable, i.e. of the slice. Given to the planner
 * (trestle_plan_options.op_shapes, see trestle_graph_op_shapes()), it makes
 * a restore of a tensor of another shape fail, as TensorFlow's Assign
 * would, and tells two renamed candidates apart.
 *
 * @param[in]  g     the graph.
 * @param[in]  i     0 <= i < trestle_graph_op_count(g).
 * @param[out] rank  the rank, or -1 when the shape is unknown.
 * @param[out] dims  `rank` sizes owned by `g` (valid until
 *                   trestle_graph_close(g)), or NULL when unknown.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_graph_op_shape(const trestle_graph *g, size_t i, int *rank,
                                       const int64_t **dims);

/**
 * @brief Every op's declared shape at once, parallel to trestle_graph_ops(),
 * ready for trestle_plan_options.op_shapes.
 *
 * Entry `i` is what trestle_graph_op_shape(g, i, ...) gives (rank -1 when
 * unknown). Planning the graph's ops with these shapes refuses a key whose
 * shape is not its variable's (TRESTLE_E_SHAPE_MISMATCH naming the tensor
 * and both shapes, where TensorFlow's Assign would fail), and makes the
 * missing-key report offer only keys of each variable's shape, which tells
 * renamed candidates apart that dtype and spelling cannot:
 *
 *     trestle_plan_options po;
 *     trestle_plan_options_init(&po);
 *     po.op_shapes = trestle_graph_op_shapes(g);
 *     trestle_plan_create(ckpt, trestle_graph_ops(g), trestle_graph_op_count(g),
 *                         &po, &plan, &err);
 *
 * Use it only with the graph's own op list (or a copy in the same order).
 *
 * @param[in] g  the graph; NULL gives NULL.
 * @return trestle_graph_op_count(g) shapes owned by `g`, valid until
 *         trestle_graph_close(g); NULL when no op's shape is known (as in
 *         TF2 SavedModels), which the planner reads as "all unknown".
 * Thread-safe. Since 0.2.
 */
TRESTLE_API const trestle_shape *trestle_graph_op_shapes(const trestle_graph *g);

/* ======================================================================= */
/* Object-graph names: TF2 checkpoint keys beside their graph names         */
/* ======================================================================= */

/**
 * The name map of a TF2 (object-based) checkpoint, decoded from its
 * `_CHECKPOINTABLE_OBJECT_GRAPH` entry: for every saved tensor, its
 * checkpoint key (an object path such as
 * `layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`) and its graph
 * name (`dense/kernel`), the bridge between TF1-style names and TF2 keys.
 * Immutable once open; thread-safe to read; independent of the checkpoint
 * once open.
 */
typedef struct trestle_names trestle_names;

/** One saved tensor of the object graph (strings owned by the map). */
typedef struct trestle_name_info {
    const char *key;        /**< the checkpoint key */
    const char *full_name;  /**< SerializedTensor.full_name as stored, or "" */
    const char *graph_name; /**< the name a TF1-style restore would ask for: full_name, or
                                 VAR/SLOT for an optimizer slot (e.g. dense/kernel/m, VAR
                                 being the variable's full_name, else its key); "" when
                                 the object graph records none */
    const char *slot_name;  /**< the slot ("m", "v", "accumulator"...) for an optimizer
                                 slot, else "" */
    const char *slot_of;    /**< the checkpoint key of the slot's variable, else "" */
} trestle_name_info;

/**
 * @brief Read and decode a checkpoint's object graph into a name map.
 *
 * Reads the `_CHECKPOINTABLE_OBJECT_GRAPH` string (CRC-checked) and decodes
 * the TrackableObjectGraph in it. Node references are bounds-checked; a
 * reference out of range is ignored, and a key listed twice is an error.
 *
 * @param[in]  c    an open checkpoint; not NULL. The map does not keep it.
 * @param[out] out  the map, or NULL on failure; free with trestle_names_free().
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_KEY_NOT_FOUND (no object graph: a TF1,
 *         name-based checkpoint), TRESTLE_E_CORRUPT (the entry is not one
 *         string, or not a TrackableObjectGraph), the read errors of
 *         trestle_tensor_read(), TRESTLE_E_INVALID_ARG, TRESTLE_E_NOMEM.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_names_open(const trestle_checkpoint *c, trestle_names **out,
                                   trestle_error *err);

/**
 * @brief Free a name map.
 * @param[in] m  the map, or NULL (then nothing happens). Since 0.1.
 */
TRESTLE_API void trestle_names_free(trestle_names *m);

/**
 * @brief Number of saved tensors in the map (the object graph entry itself
 * is not one of them).
 * @param[in] m  the map; NULL gives 0.
 * @return the count. Thread-safe. Since 0.1.
 */
TRESTLE_API size_t trestle_names_count(const trestle_names *m);

/**
 * @brief Describe entry `i`, in checkpoint-key order.
 * @param[in]  m    the map.
 * @param[in]  i    0 <= i < trestle_names_count(m).
 * @param[out] out  caller-owned; its strings are owned by `m` and valid until
 *                  trestle_names_free(m).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_names_get(const trestle_names *m, size_t i, trestle_name_info *out);

/**
 * @brief Find the entry of a checkpoint key (binary search).
 * @param[in]  m      the map.
 * @param[in]  key    the checkpoint key, NUL-terminated.
 * @param[out] index  receives its position for trestle_names_get().
 * @return TRESTLE_OK, TRESTLE_E_KEY_NOT_FOUND, or TRESTLE_E_INVALID_ARG for
 *         a NULL argument. Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_names_find(const trestle_names *m, const char *key, size_t *index);

/**
 * @brief The renames that let ops be named by graph names: one rule
 * "GRAPH_NAME=KEY" per key whose graph name is its own and differs from the
 * key. A graph name several keys share gets no rule (restoring by it would
 * be a guess). Ready for trestle_plan_options.renames, as
 * `--names graph` uses them.
 * @param[in]  m      the map.
 * @param[out] rules  receives the rules, sorted by graph name, owned by `m`
 *                    and valid until trestle_names_free(m); may be NULL.
 * @return the number of rules (0 for a NULL map). Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_names_renames(const trestle_names *m, const char *const **rules);

/* ======================================================================= */
/* Rename inference: what a restore lacks, and the renames that fix it      */
/* ======================================================================= */

/**
 * The answer to "would these ops restore from this checkpoint, and if not,
 * which renames would make them?", computed without reading any tensor:
 * what each op resolves to (found, missing, dtype or shape mismatch,
 * excluded), the keys nothing restores, and renames inferred from that
 * evidence, each offered only when it is unique. It is what
 * `trestle check` prints. Immutable once made; thread-safe to read; keeps
 * a pointer to the checkpoint, which must outlive it. Since 0.2.
 */
typedef struct trestle_inference trestle_inference;

/** What became of one op (trestle_inferred_op.status). Since 0.2. */
typedef enum trestle_infer_status {
    TRESTLE_INFER_OK = 0,       /**< resolves to a key whose dtype (and known shape) fit */
    TRESTLE_INFER_MISSING = 1,  /**< no key, after the caller's renames */
    TRESTLE_INFER_DTYPE = 2,    /**< a key, of another dtype */
    TRESTLE_INFER_SHAPE = 3,    /**< a key, of another shape than the op's slice spec or
                                     declared shape (trestle_plan_options.op_shapes) */
    TRESTLE_INFER_EXCLUDED = 4  /**< excluded, or skipped as unrestorable */
} trestle_infer_status;

/** The evidence behind an inferred rename, strongest first. Since 0.2. */
typedef enum trestle_rule_kind {
    TRESTLE_RULE_NAMES = 0,    /**< a TF2 checkpoint's object graph names the key so
                                    (trestle_names_open(); `--names graph`) */
    TRESTLE_RULE_RNN = 1,      /**< TF 1.x RNN cell names, weights/biases <-> kernel/bias
                                    (trestle_plan_options.tf1_rnn_renames) */
    TRESTLE_RULE_RENUMBER = 2, /**< one path component differs only in its _N suffix
                                    (a Keras layer renumbered: dense_3 <-> dense) */
    TRESTLE_RULE_SCOPE = 3     /**< the same path under another scope (a prefix added,
                                    removed or replaced) */
} trestle_rule_kind;

/** Candidates kept per missing op; more still make it ambiguous. Since 0.2. */
#define TRESTLE_INFER_MAX_CANDIDATES 4

/** One op of an inference (strings owned by the inference). Since 0.2. */
typedef struct trestle_inferred_op {
    const char *name;       /**< the op's name as given */
    int status;             /**< trestle_infer_status */
    size_t tensor;          /**< OK, DTYPE, SHAPE: the tensor it resolves to; a mapped
                                 MISSING op: the tensor its rule maps it to (index for
                                 trestle_tensor_get_info()); else SIZE_MAX */
    int rule;               /**< a mapped MISSING op: its rule, for
                                 trestle_inference_rule(); else -1 */
    size_t candidates;      /**< MISSING: unused keys that fit it (see
                                 trestle_inference_candidate()); one and not shared: mapped;
                                 several: ambiguous; none: unresolved */
    int shared;             /**< MISSING with one candidate that another op's only
                                 candidate is too: ambiguous, as neither mapping is safe */
} trestle_inferred_op;

/** One inferred rule (strings owned by the inference). Since 0.2. */
typedef struct trestle_inferred_rule {
    int kind;               /**< trestle_rule_kind */
    const char *rename;     /**< the rule, ready for trestle_plan_options.renames and
                                 `trestle restore --rename` ("dense_3/=dense/", "a=b"); ""
                                 for the NAMES and RNN flags (`--names graph`,
                                 `--rnn-renames`), unless they were narrowed to one exact
                                 rename per op (trestle_inference_refused_count()) */
    size_t fixes;           /**< missing ops it maps, which are the only ops it changes
                                 (trestle_inferred_op.rule names them) */
    int shapes_checked;     /**< 1 when every op it maps had a shape to compare (a slice
                                 spec or a declared shape), 0 when dtypes alone agreed */
    const char *why;        /**< why it is safe to apply, one phrase, e.g. "a layer
                                 renumbered (only the _N suffix differs)" */
} trestle_inferred_rule;

/** The totals and the verdict of an inference. Since 0.2. */
typedef struct trestle_inference_info {
    size_t ops;             /**< ops given */
    size_t ok;              /**< ops that resolve as they are (TRESTLE_INFER_OK) */
    size_t missing;         /**< ops without a key (TRESTLE_INFER_MISSING) */
    size_t mismatched;      /**< ops whose key has another dtype or shape (DTYPE, SHAPE) */
    size_t unused;          /**< tensors no op resolves to (the object graph not counted) */
    size_t ambiguous;       /**< missing ops with several candidates, or a shared one */
    size_t unresolved;      /**< missing ops with no candidate */
    size_t rules;           /**< inferred rules (trestle_inference_rule()) */
    int restores;           /**< 1: trestle_plan_create() with the caller's options succeeds */
    int fixable;            /**< 1: it fails as is and succeeds with the inferred rules
                                 (trestle_inference_fixed_options()): planned to prove it */
    const char *failure;    /**< "" when `restores`; else why the plan fails as is (the
                                 planner's message), or, when the inferred rules were tried
                                 and failed too, why the plan fails with them */
} trestle_inference_info;

/**
 * @brief Infer the renames that would make `ops` restore from `c`.
 *
 * Plans the ops with the caller's options (renames, RNN table, exclusions)
 * and missing keys allowed, dtypes and slices left open, so every op gets
 * an answer; then, for every missing op, collects the keys nothing
 * restores that fit it, by four kinds of evidence (trestle_rule_kind). A
 * key fits when its dtype is the op's and its shape the op's slice spec's
 * full shape, or else the op's declared shape in `opt->op_shapes`, where
 * either is known. Object-graph names come from the checkpoint's own
 * object graph when it has a readable one. The first kinds that find a
 * key win; a scope move is tried only when nothing closer fits. One
 * candidate that no other op wants is a mapping; anything else is
 * reported as ambiguous, never guessed. The mappings are grouped into
 * rules, and every rule is checked against every op, including those that
 * already resolve: a rule that would change an op it does not map is
 * refused and narrowed to exact renames (trestle_inference_refused_count()),
 * so each rule changes exactly the ops it maps. When every missing op is
 * mapped and nothing mismatches, the restore is planned again with the
 * rules to prove them (trestle_inference_info.fixable).
 *
 * @param[in]  c    the checkpoint; not NULL; must outlive the inference.
 * @param[in]  ops  `n` >= 1 ops (names, shape_and_slices, dtype are read;
 *                  destinations are not); copied.
 * @param[in]  n    number of ops, >= 1 (an empty list means "every tensor"
 *                  to the planner and has nothing to infer).
 * @param[in]  opt  the options the restore would use, or NULL for defaults;
 *                  `op_shapes`, when set, is read during the call. The
 *                  inference keeps a copy of the struct (not of the arrays
 *                  it points to) for trestle_inference_fixed_options().
 * @param[out] out  the inference, or NULL on failure; free with
 *                  trestle_inference_free().
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK (whatever the verdict: a restore that fails is an
 *         answer, not an error), TRESTLE_E_INVALID_ARG (NULL arguments,
 *         n == 0, options as trestle_plan_create() rejects them),
 *         TRESTLE_E_NOMEM.
 * Thread-safe for distinct inferences. Since 0.2.
 */
TRESTLE_API int trestle_infer_renames(const trestle_checkpoint *c, const trestle_op *ops,
                                      size_t n, const trestle_plan_options *opt,
                                      trestle_inference **out, trestle_error *err);

/**
 * @brief Free an inference.
 * @param[in] inf  the inference, or NULL (then nothing happens). Since 0.2.
 */
TRESTLE_API void trestle_inference_free(trestle_inference *inf);

/**
 * @brief The totals and the verdict.
 * @param[in]  inf  the inference; NULL gives all zeros.
 * @param[out] out  caller-owned; NULL is ignored. Its strings are owned by
 *                  `inf`. Never fails. Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_inference_get_info(const trestle_inference *inf,
                                            trestle_inference_info *out);

/**
 * @brief What became of op `i` (in the order given).
 * @param[in]  inf  the inference.
 * @param[in]  i    0 <= i < trestle_inference_info.ops.
 * @param[out] out  caller-owned; strings owned by `inf`.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_op(const trestle_inference *inf, size_t i,
                                     trestle_inferred_op *out);

/**
 * @brief Candidate `k` of missing op `i`: an unused key that fits it.
 * @param[in]  inf     the inference.
 * @param[in]  i       a MISSING op.
 * @param[in]  k       0 <= k < trestle_inferred_op.candidates.
 * @param[out] tensor  its tensor index (trestle_tensor_get_info()); may be NULL.
 * @param[out] kind    the trestle_rule_kind that found it; may be NULL.
 * @param[out] rename  the rename that maps the op there, owned by `inf`; "" for
 *                     RNN and for NAMES (`--names graph` maps it), except a
 *                     graph name several keys share, whose keys are each
 *                     offered by an exact rename "NAME=KEY"; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for `inf` NULL or `i`, `k`
 *         out of range. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_candidate(const trestle_inference *inf, size_t i, size_t k,
                                            size_t *tensor, int *kind, const char **rename);

/**
 * @brief Inferred rule `r`, in the order the ops first needed them.
 * @param[in]  inf  the inference.
 * @param[in]  r    0 <= r < trestle_inference_info.rules.
 * @param[out] out  caller-owned; strings owned by `inf`.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_rule(const trestle_inference *inf, size_t r,
                                       trestle_inferred_rule *out);

/**
 * @brief Number of wider rules the inference refused because they would
 * change ops they do not fix.
 *
 * Every rule is checked against every op, including those that resolve as
 * they are: a rule may only move the ops it maps, each onto its candidate.
 * A prefix rule that fixes `dense/bias` as 'dense/=model/dense/' would also
 * move `dense/kernel`, which resolves as is, onto `model/dense/kernel` (or
 * leave it without a key); `--rnn-renames` and `--names graph` apply to
 * every op. Such a rule is refused and replaced by the narrowest rules
 * there are, one exact rename "NAME=KEY" per op it fixes (of the same
 * trestle_rule_kind, so a refused RNN or NAMES flag becomes renames too).
 * What the refused rule would have changed is kept for the report
 * (trestle_inference_refused_change()).
 *
 * @param[in] inf  the inference; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_inference_refused_count(const trestle_inference *inf);

/**
 * @brief Refused rule `k`, as trestle_inference_rule() describes a rule.
 * @param[in]  inf      the inference.
 * @param[in]  k        0 <= k < trestle_inference_refused_count(inf).
 * @param[out] out      caller-owned; its `rename` ("" for a flag) and `why`
 *                      are owned by `inf`; `fixes` counts the ops it would
 *                      have fixed. May be NULL.
 * @param[out] changes  the number of other ops it would change; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for `inf` NULL or `k` out of
 *         range. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_refused(const trestle_inference *inf, size_t k,
                                          trestle_inferred_rule *out, size_t *changes);

/**
 * @brief Change `j` of refused rule `k`: an op it does not fix, and where
 * it would have moved it.
 * @param[in]  inf     the inference.
 * @param[in]  k       a refused rule.
 * @param[in]  j       0 <= j < its `changes`.
 * @param[out] op      the op's index (trestle_inference_op()); may be NULL.
 * @param[out] tensor  the tensor the rule would resolve it to, or SIZE_MAX
 *                     when it would leave it without a key; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for `inf` NULL or `k`, `j`
 *         out of range. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_refused_change(const trestle_inference *inf, size_t k,
                                                 size_t j, size_t *op, size_t *tensor);

/**
 * @brief Whether some op resolves to tensor `t` as the ops stand (keys a
 * rule would map to are not counted: they are unused until renamed).
 * @param[in] inf  the inference; NULL gives 0.
 * @param[in] t    a tensor index of the checkpoint; out of range gives 0.
 * @return 1 or 0. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_tensor_used(const trestle_inference *inf, size_t t);

/**
 * @brief The caller's plan options with the inferred rules applied, ready
 * for trestle_plan_create() on the same ops.
 *
 * `out` becomes the options given to trestle_infer_renames() with every
 * rule added: each rule's rename appended to `renames`, the RNN table
 * switched on for an RNN flag, and for a NAMES flag every unambiguous
 * object-graph name as an exact rename (what `--names graph` does). The renames array is owned by `inf` (its first entries are still
 * the caller's strings); the other arrays are the caller's, as given,
 * except `op_shapes`, which was read during trestle_infer_renames() only
 * and is NULL here (set it again to plan with it). With no rules, `out` is
 * the caller's options. Rules are applied whatever the verdict; only
 * trestle_inference_info.fixable says they make the restore succeed.
 *
 * @param[in]  inf  the inference.
 * @param[out] out  caller-owned options; valid until trestle_inference_free(inf).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_inference_fixed_options(const trestle_inference *inf,
                                                trestle_plan_options *out);

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_GRAPH_H */
