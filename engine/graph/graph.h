/*
 * graph.h - what the graph modules share: an opened graph (the public
 * trestle_graph) and the node tables that graph_file.c builds from the file
 * and graph_restore.c searches for the saver's restore ops.
 *
 * Place in the data flow: before planning. A graph file becomes an op list;
 * the planner never sees a graph.
 */
/* Not TRESTLE_GRAPH_H: that guard is the public trestle_graph.h's. */
#ifndef TRESTLE_ENGINE_GRAPH_H
#define TRESTLE_ENGINE_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "graph_wire.h"
#include "options.h"
#include "trestle_graph.h"

/* The size of trestle_graph_options' first release (engine/common/options.h
 * says how these constants change). */
#define TRESTLE__GRAPH_OPTIONS_FIRST_SIZE sizeof(trestle_graph_options) /* 0.1 */
TRESTLE__ENDS_IN_RESERVED(trestle_graph_options);

/* Built-in bounds on hostile graph files. */
#define TR_GRAPH_MAX_FILE (1ull << 31)   /* protobuf's own 2 GiB message limit */
#define TR_GRAPH_MAX_META_GRAPHS 4096    /* MetaGraphDefs in one SavedModel */
#define TR_GRAPH_MAX_OPS (1u << 24)      /* restore ops, all nodes together */
#define TR_GRAPH_MAX_HOPS 64             /* Identity nodes between a restore op and its Const */

/* One NodeDef: its name (bytes of the file, not NUL-terminated) and body. */
typedef struct tr_graph_node {
    const uint8_t *name;
    size_t name_len;
    tr_pb_span body;
} tr_graph_node;

/* The graph's own nodes (scope 0) or one library function's. */
typedef struct tr_graph_scope {
    const uint8_t *fname;   /* function name, or NULL for the graph */
    size_t fname_len;
    tr_graph_node *nodes;
    size_t n, cap;
    size_t *by_name;        /* node indexes sorted by name, for lookups */
} tr_graph_scope;

/* Every scope of the chosen meta graph. */
typedef struct tr_graph_nodes {
    const char *path;       /* file name for error messages */
    tr_graph_scope *scopes; /* [0] the graph, then one per function */
    size_t n, cap;
    size_t *fn_by_name;     /* indexes of scopes 1..n-1 sorted by function name */
} tr_graph_nodes;

/* A variable's shape as its graph declares it; rank -1 when unknown. The
 * public type, so that trestle_graph_op_shapes() can hand out the array;
 * dims are owned by the graph (malloc'd). */
typedef trestle_shape tr_graph_shape;

/* An opened graph: the restore op list and facts about where it came from. */
struct trestle_graph {
    char *path;               /* the file read */
    char *checkpoint_prefix;  /* the checkpoint it normally sits beside */
    char *tensorflow_version; /* MetaInfoDef.tensorflow_version, or "" */
    char *restore_op;         /* SaverDef.restore_op_name, or "" */
    char *tags;               /* the meta graph's tags, comma-separated */
    int kind;                 /* trestle_graph_kind */
    int object_based;         /* the meta graph has an object_graph_def */
    size_t meta_graphs;       /* MetaGraphDefs in the file */
    size_t restore_nodes;     /* restore nodes the restore op reaches */
    int ops_source;           /* trestle_graph_ops_source: saver, variables or none */
    trestle_op *ops;          /* the op list; names and specs owned here */
    size_t nops, cap;
    tr_graph_shape *shapes;   /* per op, or NULL when no op has a known shape */
};

/*
 * A graph at a URL (graph_url.c): fetch it whole (the URL, else
 * URL/saved_model.pb, else URL.meta) into *data (malloc'd: free() it) and
 * *size, and set g->path (redacted), g->kind from its name, and
 * g->checkpoint_prefix. Errors as trestle_url_read()'s.
 */
int trestle__graph_fetch(const char *url, trestle_graph *g, const uint8_t **data, size_t *size,
                         trestle_error *err);

/*
 * Room for element n of a growing array of `elem`-byte items with *cap
 * allocated (doubling, from `first`): returns the array, possibly moved,
 * with *cap updated; or NULL when out of memory or the size would
 * overflow, and then `arr` is unchanged and still the caller's.
 */
static inline void *tr_graph_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : first;
    if (c <= *cap || c > SIZE_MAX / elem)
        return NULL;
    void *grown = realloc(arr, c * elem);
    if (grown)
        *cap = c;
    return grown;
}

/* Sort each scope's nodes and the functions by name (call once, after the
 * tables are filled). Returns TRESTLE_OK or TRESTLE_E_NOMEM. */
int trestle__graph_index(tr_graph_nodes *t, trestle_error *err);

/*
 * Follow `restore_op` (a node of scope 0) through inputs, control inputs and
 * function calls, and append to `g` the ops of every RestoreV2,
 * RestoreSlice and Restore node it reaches, in file order. Returns
 * TRESTLE_OK, TRESTLE_E_CORRUPT (a node that does not decode, a restore node
 * whose inputs are not string constants or disagree in length; the message
 * names the file, node and byte offset), TRESTLE_E_NOT_FOUND (no such
 * restore op), TRESTLE_E_LIMIT or TRESTLE_E_NOMEM.
 */
int trestle__graph_collect(const tr_graph_nodes *t, const char *restore_op, trestle_graph *g,
                           trestle_error *err);

/* ---- shared by graph_restore.c and graph_shapes.c ---- */

struct Tensorflow__NodeDef;
struct Tensorflow__AttrValue;

/* Index of node `name` (len bytes) in scope `sc`, or -1. */
/* The scope of the library function named `name`, or 0 (the graph) when none is. */
size_t trestle__graph_find_function(const tr_graph_nodes *t, const char *name);

ptrdiff_t trestle__graph_find_node(const tr_graph_scope *sc, const char *name, size_t len);

/* Decode one node; TRESTLE_E_CORRUPT naming its offset when it does not. */
int trestle__graph_unpack_node(const tr_graph_nodes *t, const tr_graph_node *nd,
                               struct Tensorflow__NodeDef **out, trestle_error *err);

/* The attr `key` of a node, or NULL. */
const struct Tensorflow__AttrValue *trestle__graph_attr(const struct Tensorflow__NodeDef *n,
                                                        const char *key);

/* A restore node reached, and where its ops start in trestle_graph.ops. */
typedef struct tr_graph_found {
    size_t scope, node;       /* which node */
    size_t first, count;      /* its ops: ops[first .. first + count) */
} tr_graph_found;

/*
 * The shapes of the variables that restore ops feed: for every Assign or
 * AssignVariableOp node in `assigns` (scope, node pairs the restore op
 * reached) whose value is output k of a restore node in `found` (sorted by
 * scope and node), possibly through Identity nodes, the declared "shape" of
 * the variable it assigns becomes op first + k's shape. TF1 graphs have
 * these; TF2 restore functions assign to resource arguments, whose shapes
 * are not in the function. Best effort: anything unusual leaves the shape
 * unknown. Returns TRESTLE_OK or TRESTLE_E_NOMEM.
 */
int trestle__graph_shapes(const tr_graph_nodes *t, const tr_graph_found *found, size_t nfound,
                          const size_t (*assigns)[2], size_t nassigns, trestle_graph *g,
                          trestle_error *err);

/*
 * No saver: append to `g` the op of every VariableDef in the "variables"
 * collection of MetaGraphDef `meta` (graph_vars.c), keyed as a default
 * tf.compat.v1.train.Saver() keys it (the variable's op name; a
 * partition's full name and slice spec), with the dtype and declared shape
 * of its node in scope 0 of `t` when there is one. Returns TRESTLE_OK (no
 * collection: no ops), TRESTLE_E_CORRUPT (a collection or VariableDef that
 * does not decode, a partition whose slice disagrees with its shape; the
 * message names the file and byte offset), TRESTLE_E_LIMIT or
 * TRESTLE_E_NOMEM.
 */
int trestle__graph_variables(const tr_graph_nodes *t, tr_pb_span meta, trestle_graph *g,
                             trestle_error *err);

#endif /* TRESTLE_ENGINE_GRAPH_H */
