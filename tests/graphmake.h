/*
 * graphmake.h - a tiny TensorFlow graph writer shared by the graph suites
 * (tests/graphmake.c): what test_graph_made.c writes its graphs with, and
 * gm_write_saver_meta() for a TF1 saver whose variables declare shapes.
 */
#ifndef TRESTLE_TEST_GRAPHMAKE_H
#define TRESTLE_TEST_GRAPHMAKE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "graph.pb-c.h"
#include "trestle_graph.h"

/* One NodeDef, described flatly. */
typedef struct nspec {
    const char *name, *op;
    const char *in[8];           /* inputs, NULL-terminated */
    const char *strs[8];         /* Const: DT_STRING values */
    int nstrs;
    int64_t dim;                 /* Const: shape [dim]; -1 = scalar */
    int types[8], ntypes;        /* attr dtypes (list) */
    int dt;                      /* attr dt (type), 0 = none */
    const char *func;            /* attr f (a function call) */
} nspec;

/* Field `field` of `b` as length-delimited bytes, or as a packed message. */
void put_len(trestle__buf *b, uint32_t field, const void *p, size_t n);
void put_packed(trestle__buf *b, uint32_t field, const ProtobufCMessage *m);

/* Node `s` (or `n` nodes) as field `field` of `b` (GraphDef 1, FunctionDef 3). */
void put_node(trestle__buf *b, uint32_t field, const nspec *s);
void put_nodes(trestle__buf *b, uint32_t field, const nspec *s, size_t n);

/* A FunctionDef named `name` holding `nodes`, appended to library body `lib`. */
void put_function(trestle__buf *lib, const char *name, const nspec *nodes, size_t n);

/* A MetaGraphDef: tag (or NULL), the graph's nodes, a library (or NULL),
 * the SaverDef's restore op (or NULL: no saver). */
void put_meta(trestle__buf *out, const char *tag, const nspec *nodes, size_t n,
              const trestle__buf *lib, const char *restore_op);

/* A variable node (VariableV2, VarHandleOp) with "dtype" and "shape" attrs,
 * as field 1 (a GraphDef's node) of `b`. */
void put_variable(trestle__buf *b, const char *name, const char *op, int dtype, int rank,
                  const int64_t *dims);

/* The three nodes of one RestoreV2: its names and specs constants, then
 * the RestoreV2 named `node` reading them (its prefix is "save/Const"). */
void fill_v2(nspec out[3], const char *node, int n, const char *const *names,
             const char *const *specs, const int *types);

void write_buf(const char *path, const trestle__buf *b);
char *path_in(const char *dir, const char *name); /* dir/name, malloc'd */

/* trestle_graph_open() must succeed (with `tag`, or NULL), or must fail
 * with `code`, a message naming the file and containing `needle`. */
trestle_graph *open_ok(const char *path, const char *tag);
void open_fails(const char *path, int code, const char *needle);

/* A float tensor `name` of `n` elements base, base + 1, ... (n <= 64). */
void write_float(trestle_writer *w, const char *name, int rank, const int64_t *dims, int n,
                 float base, int shard);

/* ---- a TF1 saver whose variables declare their shapes ---- */

#define GM_MAX_VARS 7 /* variables of one gm_write_saver_meta() graph */

typedef struct gm_var {
    const char *name;   /* the variable's op name, which is also its key */
    int dtype;          /* its dtype (attr "dtype", and the RestoreV2's) */
    int rank;           /* its declared shape (attr "shape") */
    int64_t dims[4];
} gm_var;

/* Write at `path` the `.meta` a tf.compat.v1.train.Saver() builds for
 * `vars`: one RestoreV2 over every variable, each output assigned to its
 * VariableV2 (which declares the shape) by save/Assign_i, all run by the
 * SaverDef's restore op save/restore_all. */
void gm_write_saver_meta(const char *path, const gm_var *vars, size_t n);

#endif /* TRESTLE_TEST_GRAPHMAKE_H */
