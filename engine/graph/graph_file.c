/*
 * graph_file.c - open a graph file (a Saver's `.meta`, a SavedModel's
 * `saved_model.pb`, or a SavedModel directory) and turn it into the op list
 * its saver's restore op would run: trestle_graph_open() and its accessors.
 *
 * The file is mapped read-only and walked with graph_wire.h down a fixed
 * path (SavedModel -> MetaGraphDef -> GraphDef -> nodes and library
 * functions -> their nodes); only small leaves (SaverDef, MetaInfoDef, one
 * NodeDef at a time) go through protobuf-c. graph_restore.c then follows
 * the saver from its restore op. Every length and count is checked against
 * the bytes left, and every error names the file and byte offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "graph.h"
#include "graph.pb-c.h"
#include "options.h"
#include "regular_file.h"
#include "trestle_graph.h"

/* ---- the chosen meta graph's parts ---- */

typedef struct meta_parts {
    tr_pb_span info;        /* MetaInfoDef, len 0 when absent */
    tr_pb_span saver;       /* SaverDef, len 0 when absent */
    int object_based;       /* object_graph_def present */
} meta_parts;

static int malformed(trestle_error *err, const char *path, const char *what, size_t at,
                     const char *why)
{
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, path, (int64_t)at, -1,
                              "%s: malformed %s at byte offset %zu: %s", path, what, at, why);
}

/* ---- paths ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* dir/name, with dir's trailing slashes dropped; NULL when out of memory. */
static char *join(const char *dir, const char *name)
{
    char *s;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return asprintf(&s, "%.*s/%s", (int)n, dir, name) < 0 ? NULL : s;
}

/*
 * Resolve `path` to the graph file: a directory means its saved_model.pb;
 * a checkpoint prefix P without a file of that name means P.meta. Sets
 * g->path, g->kind hint (0 = sniff) and g->checkpoint_prefix.
 */
static int resolve(const char *path, trestle_graph *g, trestle_error *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        g->path = join(path, "saved_model.pb");
        if (!g->path)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        if (stat(g->path, &st) != 0) {
            char *text = join(path, "saved_model.pbtxt");
            int has_text = text && stat(text, &st) == 0;
            free(text);
            if (has_text)
                return trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, NULL, path, -1, -1,
                                          "%s: holds a text-format saved_model.pbtxt; trestle "
                                          "reads the binary saved_model.pb only", path);
            return trestle__error_set(err, TRESTLE_E_NOT_FOUND, errno, NULL, g->path, -1, -1,
                                      "%s: not a SavedModel directory (no saved_model.pb)", path);
        }
        g->kind = TRESTLE_GRAPH_SAVED_MODEL;
    } else {
        if (stat(path, &st) != 0) {
            char *meta = malloc(strlen(path) + 6);
            if (meta) {
                strcpy(meta, path);
                strcat(meta, ".meta");
            }
            if (meta && stat(meta, &st) == 0) {
                g->path = meta;
            } else {
                free(meta);
                return trestle__error_set(err, TRESTLE_E_NOT_FOUND, errno, NULL, path, -1, -1,
                                          "%s: no such graph file (nor %s.meta)", path, path);
            }
        } else {
            g->path = strdup(path);
        }
        if (!g->path)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        if (ends_with(g->path, ".meta"))
            g->kind = TRESTLE_GRAPH_META;
        else if (ends_with(g->path, "/saved_model.pb") || strcmp(g->path, "saved_model.pb") == 0)
            g->kind = TRESTLE_GRAPH_SAVED_MODEL;
    }
    /* Where the checkpoint normally is: P for P.meta, <dir>/variables/variables
     * beside a saved_model.pb. Other names get the SavedModel layout too. */
    if (ends_with(g->path, ".meta")) {
        g->checkpoint_prefix = strndup(g->path, strlen(g->path) - 5);
    } else {
        const char *slash = strrchr(g->path, '/');
        char *dir = slash ? strndup(g->path, (size_t)(slash - g->path) + 1) : strdup("");
        g->checkpoint_prefix = dir ? join(dir[0] ? dir : ".", "variables/variables") : NULL;
        free(dir);
    }
    if (!g->checkpoint_prefix)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    return TRESTLE_OK;
}

/* Map the whole file read-only. It is opened by the rule for files a user
 * names (regular_file.h): a FIFO, device or directory given as the graph
 * is refused without blocking, as an index or shard is. */
static int map_file(const char *path, const uint8_t **data, size_t *size, trestle_error *err)
{
    int fd;
    uint64_t n;
    int rc = trestle__file_open_regular(path, NULL, &fd, &n, err);
    if (rc != TRESTLE_OK)
        return rc;
    if (n == 0) {
        close(fd);
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, path, 0, 0,
                                  "%s: empty file: no graph in it", path);
    }
    if (n >= TR_GRAPH_MAX_FILE) {
        close(fd);
        return trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, path, -1, (int64_t)n,
                                  "%s: %llu bytes; a graph is a protobuf message, at most 2 GiB",
                                  path, (unsigned long long)n);
    }
    void *p = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1, "%s: cannot map: %s",
                                  path, strerror(e));
    *data = p;
    *size = (size_t)n;
    return TRESTLE_OK;
}

/* ---- SavedModel or MetaGraphDef ---- */

/*
 * What the file's top-level fields say it is. A SavedModel holds only
 * saved_model_schema_version (1, a varint TensorFlow always writes) and
 * meta_graphs (2, messages); a MetaGraphDef's field 1 is a message
 * (meta_info_def) and fields 3 to 7 (saver_def, collection_def,
 * signature_def, asset_file_def, object_graph_def) are its own. A file of
 * field 2s alone could be either: its name decides (`named`, 0 when the
 * name says nothing), else a SavedModel. A name the content contradicts is
 * an error that says what the file is: a `.meta` holding a SavedModel
 * would otherwise read as a graph without a saver, and a MetaGraphDef
 * named saved_model.pb fail on a wire type deep inside.
 */
static int sniff(const char *path, tr_pb_span file, int named, int *kind, trestle_error *err)
{
    tr_pb_walk w = tr_pb_walk_begin(file);
    int rc, saved_model = 0, meta = 0, metas = 0;
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.num == 2 && w.f.wire == TR_WIRE_LEN)
            metas++;
        else if (w.f.num == 1 && w.f.wire == TR_WIRE_VARINT)
            saved_model = 1;
        else
            meta = 1;
    }
    /* A named file's own walk says where it is malformed, and as what. */
    if (rc < 0 && !named)
        return malformed(err, path, "graph file", w.bad, w.why);
    int content = meta ? TRESTLE_GRAPH_META : saved_model && metas ? TRESTLE_GRAPH_SAVED_MODEL : 0;
    if (named && content && named != content)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, path, 0, -1, "%s: %s", path,
                                  content == TRESTLE_GRAPH_SAVED_MODEL
                                      ? "this file is a SavedModel (a saved_model.pb), not a "
                                        "MetaGraphDef (.meta): give its directory, with the "
                                        "file named saved_model.pb"
                                      : "this file is a MetaGraphDef (a Saver's .meta), not a "
                                        "SavedModel: give it named PREFIX.meta, beside its "
                                        "checkpoint PREFIX");
    *kind = content ? content : named ? named : metas ? TRESTLE_GRAPH_SAVED_MODEL
                                                      : TRESTLE_GRAPH_META;
    return TRESTLE_OK;
}

static int has_tag(const Tensorflow__MetaInfoDef *info, const char *tag)
{
    for (size_t i = 0; info && i < info->n_tags; i++)
        if (strcmp(info->tags[i], tag) == 0)
            return 1;
    return 0;
}

static int meta_parts_of(const char *path, tr_pb_span meta, meta_parts *out, trestle_error *err)
{
    tr_pb_walk w = tr_pb_walk_begin(meta);
    int rc;
    memset(out, 0, sizeof *out);
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.wire != TR_WIRE_LEN)
            continue;
        if (w.f.num == 1)
            out->info = w.f.body;
        else if (w.f.num == 3)
            out->saver = w.f.body;
        else if (w.f.num == 7)
            out->object_based = 1;
    }
    return rc < 0 ? malformed(err, path, "MetaGraphDef", w.bad, w.why) : TRESTLE_OK;
}

static Tensorflow__MetaInfoDef *unpack_info(tr_pb_span info)
{
    return info.len ? tensorflow__meta_info_def__unpack(NULL, info.len, info.p) : NULL;
}

/* Append " [a,b]" (or " []" for a meta graph without tags) to `buf`,
 * ending in "..." once it is full. */
static void add_tag_set(char *buf, size_t cap, const Tensorflow__MetaInfoDef *info)
{
    size_t len = strlen(buf);
    if (len + 4 >= cap)
        return;
    char *p = buf + len;
    size_t left = cap - len - 4; /* room kept for "..." */
    int n = snprintf(p, left, "%s[", len ? " " : "");
    for (size_t i = 0; info && i < info->n_tags && n > 0 && (size_t)n < left; i++)
        n += snprintf(p + n, left - (size_t)n, "%s%s", i ? "," : "", info->tags[i]);
    if (n > 0 && (size_t)n < left)
        n += snprintf(p + n, left - (size_t)n, "]");
    if (n < 0 || (size_t)n >= left)
        strcpy(buf + cap - 4, "...");
}

/*
 * The MetaGraphDef to read: the one tagged `tag` when given; else the only
 * one, else the first tagged "serve" (what serving loads), else the first.
 */
static int choose_meta(const char *path, tr_pb_span file, int kind, const char *tag,
                       trestle_graph *g, tr_pb_span *out, trestle_error *err)
{
    if (kind == TRESTLE_GRAPH_META) {
        g->meta_graphs = 1;
        *out = file;
        return TRESTLE_OK;
    }
    tr_pb_walk w = tr_pb_walk_begin(file);
    size_t chosen = 0, n = 0;
    int rc, serve = 0;
    char present[256] = ""; /* the tag sets seen, for an unknown tag's error */
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.num != 2 || w.f.wire != TR_WIRE_LEN)
            continue;
        if (++n > TR_GRAPH_MAX_META_GRAPHS)
            return trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, path, (int64_t)w.f.offset, -1,
                                      "%s: more than %d meta graphs", path,
                                      TR_GRAPH_MAX_META_GRAPHS);
        meta_parts parts;
        if ((rc = meta_parts_of(path, w.f.body, &parts, err)) != TRESTLE_OK)
            return rc;
        Tensorflow__MetaInfoDef *info = unpack_info(parts.info);
        if (parts.info.len && !info)
            return malformed(err, path, "MetaInfoDef", parts.info.offset, "does not decode");
        int pick = tag ? has_tag(info, tag) && !chosen
                       : n == 1 || (!serve && has_tag(info, "serve"));
        if (!tag && pick && has_tag(info, "serve"))
            serve = 1;
        add_tag_set(present, sizeof present, info);
        tensorflow__meta_info_def__free_unpacked(info, NULL);
        if (pick) {
            *out = w.f.body;
            chosen = n;
        }
    }
    if (rc < 0)
        return malformed(err, path, "SavedModel", w.bad, w.why);
    g->meta_graphs = n;
    if (n == 0)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, path, 0, -1,
                                  "%s: a SavedModel without any meta graph", path);
    if (!chosen)
        return trestle__error_set(err, TRESTLE_E_NOT_FOUND, 0, NULL, path, -1, -1,
                                  "%s: no meta graph is tagged '%s' (its meta graphs are "
                                  "tagged: %s)", path, tag, present);
    return TRESTLE_OK;
}

/* ---- node tables ---- */

static tr_graph_scope *new_scope(tr_graph_nodes *t)
{
    tr_graph_scope *grown = tr_graph_grow(t->scopes, &t->cap, t->n, sizeof *grown, 16);
    if (!grown)
        return NULL;
    t->scopes = grown;
    tr_graph_scope *s = &t->scopes[t->n++];
    memset(s, 0, sizeof *s);
    return s;
}

/* Record one NodeDef of `sc`: its body and its name (field 1). */
static int add_node(tr_graph_nodes *t, tr_graph_scope *sc, tr_pb_span body, trestle_error *err)
{
    tr_pb_span name = { NULL, 0, 0 };
    size_t bad;
    const char *why;
    if (trestle__pb_find(body, 1, &name, &bad, &why) < 0)
        return malformed(err, t->path, "NodeDef", bad, why);
    tr_graph_node *grown = tr_graph_grow(sc->nodes, &sc->cap, sc->n, sizeof *grown, 64);
    if (!grown)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    sc->nodes = grown;
    tr_graph_node *nd = &sc->nodes[sc->n++];
    nd->name = name.p;
    nd->name_len = name.len;
    nd->body = body;
    return TRESTLE_OK;
}

/* A FunctionDef: signature.name (OpDef field 1) and node_def (3). */
static int add_function(tr_graph_nodes *t, tr_pb_span fn, trestle_error *err)
{
    tr_graph_scope *sc = new_scope(t);
    if (!sc)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    tr_pb_walk w = tr_pb_walk_begin(fn);
    int rc;
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.wire != TR_WIRE_LEN)
            continue;
        if (w.f.num == 1) {
            tr_pb_span name = { NULL, 0, 0 };
            if (trestle__pb_find(w.f.body, 1, &name, &w.bad, &w.why) < 0)
                return malformed(err, t->path, "function signature", w.bad, w.why);
            sc = &t->scopes[t->n - 1];
            sc->fname = name.p ? name.p : (const uint8_t *)"";
            sc->fname_len = name.len;
        } else if (w.f.num == 3) {
            if ((rc = add_node(t, &t->scopes[t->n - 1], w.f.body, err)) != TRESTLE_OK)
                return rc;
        }
    }
    if (rc < 0)
        return malformed(err, t->path, "FunctionDef", w.bad, w.why);
    if (!t->scopes[t->n - 1].fname)
        t->scopes[t->n - 1].fname = (const uint8_t *)"";
    return TRESTLE_OK;
}

/* GraphDef: node (1) into scope 0, library (2) -> function (1) into new scopes. */
static int add_graph_def(tr_graph_nodes *t, tr_pb_span gd, trestle_error *err)
{
    tr_pb_walk w = tr_pb_walk_begin(gd);
    int rc;
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.wire != TR_WIRE_LEN)
            continue;
        if (w.f.num == 1) {
            if ((rc = add_node(t, &t->scopes[0], w.f.body, err)) != TRESTLE_OK)
                return rc;
        } else if (w.f.num == 2) {
            tr_pb_walk lib = tr_pb_walk_begin(w.f.body);
            while ((rc = tr_pb_walk_next(&lib)) == 1)
                if (lib.f.num == 1 && lib.f.wire == TR_WIRE_LEN &&
                    (rc = add_function(t, lib.f.body, err)) != TRESTLE_OK)
                    return rc;
            if (rc < 0)
                return malformed(err, t->path, "function library", lib.bad, lib.why);
        }
    }
    return rc < 0 ? malformed(err, t->path, "GraphDef", w.bad, w.why) : TRESTLE_OK;
}

/* Every graph_def (2) of the MetaGraphDef: repeated occurrences merge. */
static int build_nodes(tr_graph_nodes *t, tr_pb_span meta, trestle_error *err)
{
    if (!new_scope(t))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    tr_pb_walk w = tr_pb_walk_begin(meta);
    int rc;
    while ((rc = tr_pb_walk_next(&w)) == 1)
        if (w.f.num == 2 && w.f.wire == TR_WIRE_LEN &&
            (rc = add_graph_def(t, w.f.body, err)) != TRESTLE_OK)
            return rc;
    if (rc < 0)
        return malformed(err, t->path, "MetaGraphDef", w.bad, w.why);
    return trestle__graph_index(t, err);
}

static void free_nodes(tr_graph_nodes *t)
{
    for (size_t s = 0; s < t->n; s++) {
        free(t->scopes[s].nodes);
        free(t->scopes[s].by_name);
    }
    free(t->scopes);
    free(t->fn_by_name);
}

/* ---- the facts of the chosen meta graph ---- */

static char *join_tags(const Tensorflow__MetaInfoDef *info)
{
    size_t len = 1;
    for (size_t i = 0; info && i < info->n_tags; i++)
        len += strlen(info->tags[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; info && i < info->n_tags; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, info->tags[i]);
    }
    return s;
}

static int read_facts(trestle_graph *g, const meta_parts *parts, char **restore_op,
                      trestle_error *err)
{
    Tensorflow__MetaInfoDef *info = unpack_info(parts->info);
    if (parts->info.len && !info)
        return malformed(err, g->path, "MetaInfoDef", parts->info.offset, "does not decode");
    g->tags = join_tags(info);
    g->tensorflow_version =
        strdup(info && info->tensorflow_version ? info->tensorflow_version : "");
    tensorflow__meta_info_def__free_unpacked(info, NULL);
    g->object_based = parts->object_based;

    *restore_op = NULL;
    if (parts->saver.len) {
        Tensorflow__SaverDef *sd =
            tensorflow__saver_def__unpack(NULL, parts->saver.len, parts->saver.p);
        if (!sd)
            return malformed(err, g->path, "SaverDef", parts->saver.offset, "does not decode");
        if (sd->restore_op_name && sd->restore_op_name[0])
            *restore_op = strdup(sd->restore_op_name);
        tensorflow__saver_def__free_unpacked(sd, NULL);
    }
    g->restore_op = strdup(*restore_op ? *restore_op : "");
    if (!g->tags || !g->tensorflow_version || !g->restore_op)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    return TRESTLE_OK;
}

/* ---- public API ---- */

void trestle_graph_options_init(trestle_graph_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
}

int trestle_graph_open(const char *path, const trestle_graph_options *opt, trestle_graph **out,
                       trestle_error *err)
{
    trestle_graph *g = NULL;
    tr_graph_nodes nodes;
    const uint8_t *data = NULL;
    size_t size = 0;
    char *restore_op = NULL;
    trestle_graph_options o;
    int rc = TRESTLE_OK, fetched = 0;

    memset(&nodes, 0, sizeof nodes);
    if (out)
        *out = NULL;
    TR_FAIL_IF(!path || !out, err, TRESTLE_E_INVALID_ARG, "trestle_graph_open: NULL argument");
    trestle_graph_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_graph_options, &o, opt,
                                     TRESTLE__GRAPH_OPTIONS_FIRST_SIZE, err));
    g = calloc(1, sizeof *g);
    TR_FAIL_IF(!g, err, TRESTLE_E_NOMEM, "out of memory");
    fetched = trestle_is_url(path); /* an object store: fetched whole (graph_url.c) */
    if (fetched) {
        TR_FORWARD(trestle__graph_fetch(path, g, &data, &size, err));
    } else {
        TR_FORWARD(resolve(path, g, err));
        TR_FORWARD(map_file(g->path, &data, &size, err));
    }

    tr_pb_span file = { data, size, 0 }, meta;
    TR_FORWARD(sniff(g->path, file, g->kind, &g->kind, err));
    TR_FORWARD(choose_meta(g->path, file, g->kind, o.tag, g, &meta, err));
    meta_parts parts;
    TR_FORWARD(meta_parts_of(g->path, meta, &parts, err));
    TR_FORWARD(read_facts(g, &parts, &restore_op, err));
    nodes.path = g->path;
    TR_FORWARD(build_nodes(&nodes, meta, err));
    if (restore_op) {
        TR_FORWARD(trestle__graph_collect(&nodes, restore_op, g, err));
        g->ops_source = TRESTLE_GRAPH_OPS_SAVER;
    } else {
        /* No saver: what a default Saver would restore, if anything (a
         * SavedModel of assets or tables only has nothing). */
        TR_FORWARD(trestle__graph_variables(&nodes, meta, g, err));
        g->ops_source = g->nops ? TRESTLE_GRAPH_OPS_VARIABLES : TRESTLE_GRAPH_OPS_NONE;
    }
    *out = g;
    g = NULL;
fail:
    free_nodes(&nodes);
    free(restore_op);
    if (data && fetched)
        free((void *)data);
    else if (data)
        munmap((void *)data, size);
    trestle_graph_close(g);
    return rc;
}

void trestle_graph_close(trestle_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nops; i++) {
        free((char *)g->ops[i].name);
        free((char *)g->ops[i].shape_and_slices);
        if (g->shapes)
            free((int64_t *)g->shapes[i].dims);
    }
    free(g->shapes);
    free(g->ops);
    free(g->path);
    free(g->checkpoint_prefix);
    free(g->tensorflow_version);
    free(g->restore_op);
    free(g->tags);
    free(g);
}

void trestle_graph_get_info(const trestle_graph *g, trestle_graph_info *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!g)
        return;
    out->path = g->path;
    out->checkpoint_prefix = g->checkpoint_prefix;
    out->tensorflow_version = g->tensorflow_version;
    out->restore_op = g->restore_op;
    out->tags = g->tags;
    out->kind = g->kind;
    out->object_based = g->object_based;
    out->meta_graphs = g->meta_graphs;
    out->restore_nodes = g->restore_nodes;
}

size_t trestle_graph_op_count(const trestle_graph *g)
{
    return g ? g->nops : 0;
}

const trestle_op *trestle_graph_ops(const trestle_graph *g)
{
    return g ? g->ops : NULL;
}

int trestle_graph_op_source(const trestle_graph *g)
{
    return g ? g->ops_source : TRESTLE_GRAPH_OPS_NONE;
}
