/*
 * test_serve_remote.c - `trestle serve` with checkpoints in an object
 * store, served by a real nginx on 127.0.0.1 (remote_server.c): a URL is
 * preloaded and attached like a path, and its entry is keyed by each data
 * object's validators (nginx's ETag, which changes with the file's mtime),
 * so an object replaced in the store between the preload and an attach is
 * never served resident: the attach restores from the store and says why.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "remote_server.h"
#include "servetest.h"
#include "testutil.h"
#include "trestle.h"

static trestle_attachment *attach_url(const char *sock, const char *url, int require,
                                      trestle_attach_info *info, int *rc, trestle_error *err)
{
    trestle_checkpoint *c = tu_open(url, NULL);
    trestle_attach_options ao;
    trestle_attachment *a = NULL;
    trestle_attach_options_init(&ao);
    ao.socket_path = sock;
    ao.require_resident = require;
    *rc = trestle_attach(c, NULL, 0, NULL, &ao, &a, err);
    if (*rc == TRESTLE_OK)
        trestle_attachment_get_info(a, info);
    trestle_close(c);
    return a;
}

Test(serve_remote, a_replaced_object_is_never_served_resident)
{
    char *root = tu_mkdtemp(), *dir = tu_mkdtemp(), *url = NULL;
    char *local = tu_remote_model(root, "bucket/m");
    tu_nginx n;
    tu_nginx_start(&n, root, false, NULL);
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", n.base) > 0);
    uint64_t want = st_restore_checksum(local, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);

    trestle_preload_info pi;
    st_preload(s.sock, url, NULL, 0, &pi);
    trestle_attach_info info;
    trestle_error err;
    int rc;
    trestle_attachment *a = attach_url(s.sock, url, 1, &info, &rc, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    cr_assert_eq(info.resident, 1);
    cr_assert_eq(st_attachment_checksum(a), want, "the store's bytes, mapped");
    trestle_attachment_free(a);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_entry e;
    cr_assert_eq(trestle_resident_list_get(l, 0, &e), TRESTLE_OK);
    cr_assert_str_eq(e.path, url, "an entry is named by its URL");
    cr_assert_eq(e.changed, 0, "the server asks no store: it does not guess 'changed'");
    trestle_resident_list_free(l);

    /* The same bytes put again: the object has a new mtime, so nginx gives
     * it a new ETag, as a store gives a replaced object a new ETag or
     * generation. The index is unchanged. */
    char shard[512], *obj = NULL;
    snprintf(shard, sizeof shard, "%s/bucket/m/ckpt.data-00001-of-00004", root);
    struct timeval later[2];
    gettimeofday(&later[0], NULL);
    later[0].tv_sec += 10;
    later[1] = later[0];
    cr_assert_eq(utimes(shard, later), 0);
    a = attach_url(s.sock, url, 0, &info, &rc, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    cr_assert_eq(info.resident, 0, "a replaced object was served resident");
    cr_assert(asprintf(&obj, "%s changed in its store since it was preloaded: its object "
                       "%s.data-00001-of-00004 was replaced in the store (resident: ", url,
                       url) > 0);
    cr_assert(tu_starts_with(info.note, obj), "%s", info.note);
    cr_assert_eq(st_attachment_checksum(a), want, "restored from the store instead");
    trestle_attachment_free(a);
    cr_assert_null(attach_url(s.sock, url, 1, &info, &rc, &err));
    cr_assert_eq(rc, TRESTLE_E_NOT_RESIDENT);

    /* A preload of the object as it is now replaces the entry. */
    st_preload(s.sock, url, NULL, 0, &pi);
    cr_assert_eq(pi.replaced, 1);
    a = attach_url(s.sock, url, 1, &info, &rc, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st_attachment_checksum(a), want);
    trestle_attachment_free(a);

    cr_assert_eq(st_stop(&s), 0);
    tu_nginx_stop(&n);
    tu_rmtree(root);
    tu_rmtree(dir);
    free(obj);
    free(url);
    free(local);
    free(root);
    free(dir);
}

/* The version a store pinned, through the public call the identity uses. */
Test(serve_remote, a_shard_version_is_its_etag)
{
    char *root = tu_mkdtemp(), *url = NULL;
    char *local = tu_remote_model(root, "bucket/m");
    tu_nginx n;
    tu_nginx_start(&n, root, false, NULL);
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", n.base) > 0);
    trestle_checkpoint *c = tu_open(url, NULL), *f = tu_open(local, NULL);
    char v[400], etag[64];
    uint64_t bytes;
    struct stat st;
    cr_assert_eq(stat(trestle_shard_path(f, 1), &st), 0);
    /* nginx's ETag: the mtime and the size in hex. */
    snprintf(etag, sizeof etag, "ETag \"%llx-%llx\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    cr_assert_eq(trestle_shard_version(c, 1, &bytes, v, sizeof v), TRESTLE_OK);
    cr_assert_str_eq(v, etag);
    cr_assert_eq(bytes, (uint64_t)st.st_size);
    cr_assert_eq(trestle_shard_version(f, 1, &bytes, v, sizeof v), TRESTLE_OK);
    cr_assert_str_eq(v, "", "a local file's version is its size and mtime");
    cr_assert_eq(trestle_shard_version(c, 1, &bytes, v, 4), TRESTLE_E_LIMIT);
    cr_assert_eq(trestle_shard_version(c, 4, &bytes, v, sizeof v), TRESTLE_E_INVALID_ARG);
    trestle_close(c);
    trestle_close(f);
    tu_nginx_stop(&n);
    tu_rmtree(root);
    free(url);
    free(local);
    free(root);
}
