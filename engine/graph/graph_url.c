/*
 * graph_url.c - a graph file in an object store (a `.meta` or a
 * SavedModel's saved_model.pb at a gs://, s3:// or http(s):// URL),
 * fetched whole through the public trestle_url_read() (engine/graph/ may
 * use the public API and common only), then parsed from memory like a
 * mapped local file. Resolution follows the local rules of graph_file.c:
 * the URL itself, else URL/saved_model.pb (a SavedModel "directory"),
 * else URL.meta (a checkpoint prefix). Names kept (the graph's path and
 * its checkpoint prefix) are the URLs redacted, so that nothing printed
 * from them holds a presigned URL's signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

/* `url` with `suffix` put before its query ("s3://b/m" + ".meta"). */
static char *url_with(const char *url, const char *suffix)
{
    const char *scheme = strstr(url, "://");
    size_t path_end = strcspn(scheme ? scheme + 3 : url, "?#") + (size_t)(scheme ? scheme + 3 - url : 0);
    size_t keep = path_end;
    if (suffix[0] == '/')
        while (keep > 0 && url[keep - 1] == '/')
            keep--;
    char *s = NULL;
    if (asprintf(&s, "%.*s%s%s", (int)keep, url, suffix, url + path_end) < 0)
        return NULL;
    return s;
}

/* The redacted form of `url`, malloc'd. */
static char *shown(const char *url)
{
    char buf[TRESTLE_ERROR_FIELD_MAX * 4];
    trestle_url_redact(url, buf, sizeof buf);
    return strdup(buf);
}

int trestle__graph_fetch(const char *url, trestle_graph *g, const uint8_t **data, size_t *size,
                         trestle_error *err)
{
    static const char *const tries[] = { "", "/saved_model.pb", ".meta" };
    void *bytes = NULL;
    size_t len = 0;
    char *got = NULL;
    int rc = TRESTLE_E_NOT_FOUND;
    trestle_error why;

    /* Every name is tried: a store may refuse (403) rather than miss (404)
     * a key that is not there, and a web server a "directory". The first
     * refusal is the answer when no name is found. */
    why.code = TRESTLE_OK;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && rc != TRESTLE_OK; i++) {
        trestle_error e;
        free(got);
        got = url_with(url, tries[i]);
        if (!got)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        rc = trestle_url_read(got, TR_GRAPH_MAX_FILE - 1, &bytes, &len, &e);
        if (rc != TRESTLE_OK && rc != TRESTLE_E_NOT_FOUND && why.code == TRESTLE_OK)
            why = e;
    }
    if (rc != TRESTLE_OK && why.code != TRESTLE_OK)
        rc = why.code;
    if (rc == TRESTLE_E_NOT_FOUND) {
        char *u = shown(url);
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, 0, NULL, u, -1, -1,
                                "%s: no such graph object (nor %s/saved_model.pb, nor %s.meta)",
                                u ? u : "the URL", u ? u : "", u ? u : "");
        free(u);
    } else if (rc != TRESTLE_OK && err) {
        *err = why;
    }
    g->path = rc == TRESTLE_OK ? shown(got) : NULL;
    free(got);
    if (rc != TRESTLE_OK)
        return rc;
    if (!g->path) {
        free(bytes);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    if (len == 0) {
        free(bytes);
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, g->path, 0, 0,
                                  "%s: empty file: no graph in it", g->path);
    }
    /* Names decide as for a local file (graph_file.c); the query does not
     * count: the kind, and where the checkpoint normally is. */
    const char *mark = strstr(g->path, "?<redacted>");
    size_t n = mark ? (size_t)(mark - g->path) : strlen(g->path);
    if (n > 5 && memcmp(g->path + n - 5, ".meta", 5) == 0) {
        g->kind = TRESTLE_GRAPH_META;
        g->checkpoint_prefix = strndup(g->path, n - 5);
    } else {
        if (n > 15 && memcmp(g->path + n - 15, "/saved_model.pb", 15) == 0)
            g->kind = TRESTLE_GRAPH_SAVED_MODEL;
        const char *slash = memrchr(g->path, '/', n);
        size_t dir = slash ? (size_t)(slash - g->path) + 1 : 0;
        if (asprintf(&g->checkpoint_prefix, "%.*svariables/variables", (int)dir, g->path) < 0)
            g->checkpoint_prefix = NULL;
    }
    if (!g->checkpoint_prefix) {
        free(bytes);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    *data = bytes;
    *size = len;
    return TRESTLE_OK;
}
