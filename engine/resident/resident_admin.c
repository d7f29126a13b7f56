/*
 * resident_admin.c - asking a server what it holds (trestle_resident_query)
 * and dropping entries (trestle_resident_evict).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "resident.h"

struct trestle_resident_list {
    trestle__wire_msg reply;  /* the LIST_REPLY, owned */
};

/* One request and its reply, on a connection of its own. */
static int call(const char *socket_path, const trestle__wire_msg *req, unsigned want,
                trestle__wire_msg *reply, trestle_error *err)
{
    char path[TRESTLE__SOCKET_MAX];
    int sock = -1, fds[TRESTLE__WIRE_MAX_FDS], rc;
    unsigned nfds = 0;
    memset(reply, 0, sizeof *reply);
    TR_FORWARD(trestle__socket_resolve(socket_path, path, sizeof path, err));
    TR_FORWARD(trestle__resident_connect(path, &sock, err));
    rc = trestle__resident_call(sock, path, req, TRESTLE__RESIDENT_TIMEOUT_MS, reply, fds, &nfds,
                                err);
    close(sock);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (rc != TRESTLE_OK)
        goto fail;
    TR_FAIL_IF(reply->type != want, err, TRESTLE_E_SERVER, "server %s: replied to %s with %s",
               path, trestle__wire_type_name(req->type), trestle__wire_type_name(reply->type));
    return TRESTLE_OK;
fail:
    trestle__wire_msg_free(reply);
    return rc;
}

int trestle_resident_query(const char *socket_path, trestle_resident_list **out,
                           trestle_error *err)
{
    trestle__wire_msg req = { .type = TRESTLE__MSG_LIST };
    trestle_resident_list *l;
    int rc;
    TR_FAIL_IF(!out, err, TRESTLE_E_INVALID_ARG, "trestle_resident_query: out is NULL");
    *out = NULL;
    l = calloc(1, sizeof *l);
    TR_FAIL_IF(!l, err, TRESTLE_E_NOMEM, "out of memory");
    rc = call(socket_path, &req, TRESTLE__MSG_LIST_REPLY, &l->reply, err);
    if (rc != TRESTLE_OK) {
        free(l);
        return rc;
    }
    *out = l;
    return TRESTLE_OK;
fail:
    return rc;
}

size_t trestle_resident_list_count(const trestle_resident_list *l)
{
    return l ? l->reply.list_reply.count : 0;
}

int trestle_resident_list_get(const trestle_resident_list *l, size_t i,
                              trestle_resident_entry *out)
{
    if (!l || !out || i >= l->reply.list_reply.count)
        return trestle__error_simple(NULL, TRESTLE_E_INVALID_ARG, "bad argument");
    const trestle__wire_entry *e = &l->reply.list_reply.entries[i];
    memset(out, 0, sizeof *out);
    out->path = e->key.id.path;
    out->tier = e->key.tier;
    out->device = e->key.device;
    out->tensors = e->tensors;
    out->bytes = e->bytes;
    out->memory_bytes = e->region_bytes;
    out->clients = e->clients;
    out->loaded_at = (double)e->loaded_ns * 1e-9;
    out->last_used_at = (double)e->last_used_ns * 1e-9;
    out->verified = e->verified;
    out->huge_pages = e->pages;
    out->changed = e->changed;
    out->index_bytes = e->key.id.index_bytes;
    out->index_crc32c = e->key.id.index_crc32c;
    out->num_shards = (int)e->key.id.num_shards;
    out->selection = e->key.digest;
    return TRESTLE_OK;
}

void trestle_resident_list_server(const trestle_resident_list *l, trestle_resident_server *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!l)
        return;
    const trestle__wire_server *s = &l->reply.list_reply.server;
    out->pid = (int)s->pid;
    out->started_at = (double)s->started_ns * 1e-9;
    out->host_cap = s->host_cap;
    out->host_used = s->host_used;
    out->device_cap = s->device_cap;
    out->device_used = s->device_used;
    out->connections = s->connections;
}

void trestle_resident_list_free(trestle_resident_list *l)
{
    if (!l)
        return;
    trestle__wire_msg_free(&l->reply);
    free(l);
}

/* The absolute prefix an eviction names: the checkpoint `path` resolves to
 * when it still opens, else the path itself made absolute (its files may
 * be gone), without a trailing ".index". */
static int evict_target(const char *path, char *out, size_t cap, trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    trestle__wire_identity id;
    struct stat st;
    /* A directory names every entry under it, not its latest checkpoint. */
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (trestle_open(path, NULL, &c, NULL) == TRESTLE_OK &&
            trestle__identity_of(c, &id, NULL) == TRESTLE_OK) {
            snprintf(out, cap, "%s", id.path);
            trestle__wire_key_free(&(trestle__wire_key){ .id = id });
            trestle_close(c);
            return TRESTLE_OK;
        }
        trestle_close(c);
    }
    char real[PATH_MAX];
    if (realpath(path, real))
        snprintf(out, cap, "%s", real);
    else if (path[0] == '/' || !getcwd(real, sizeof real))
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%s/%s", real, path);
    size_t n = strlen(out);
    if (n > 6 && strcmp(out + n - 6, ".index") == 0)
        out[n - 6] = '\0';
    n = strlen(out);
    if (n >= cap - 1)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "%s: a path over %zu bytes", path,
                                     cap - 1);
    return TRESTLE_OK;
}

int trestle_resident_evict(const char *socket_path, const char *path, trestle_evict_info *out,
                           trestle_error *err)
{
    char target[PATH_MAX + 8] = "";
    trestle__wire_msg req = { .type = TRESTLE__MSG_EVICT }, reply;
    int rc;
    if (path)
        TR_FORWARD(evict_target(path, target, sizeof target, err));
    req.evict.path = target;
    TR_FORWARD(call(socket_path, &req, TRESTLE__MSG_EVICT_REPLY, &reply, err));
    if (out) {
        out->entries = reply.evict_reply.entries;
        out->bytes = reply.evict_reply.bytes;
        out->in_use = reply.evict_reply.in_use;
    }
    trestle__wire_msg_free(&reply);
    return TRESTLE_OK;
fail:
    return rc;
}
