/*
 * test_serve.c - keeping checkpoints resident, end to end through the C
 * API (include/trestle_serve.h) against a real `trestle serve`: what an
 * attach maps is byte for byte what a restore gives (every tensor, or
 * ops with slices, partitions, strings and conversions); without a server,
 * or for another selection, it restores from storage and says why; a
 * checkpoint changed on disk is never served stale; a manifest that does
 * not match this process's plan is refused; a cap evicts the least
 * recently used entry no client holds, and a preload that cannot fit fails
 * naming the tier and the bytes, as does one bigger than the memory left;
 * a preload that dies frees its memory, also
 * while the server is still allocating it, which other clients do not wait
 * for; bytes that differ from their manifest are never published; a stop
 * counts only the clients it cuts off.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crc32c.h"
#include "memfd_tier.h"
#include "resident.h"
#include "servetest.h"
#include "testutil.h"

static trestle_attachment *attach(const char *sock, const char *path, const trestle_op *ops,
                                  size_t n, int require, trestle_attach_info *info)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_attach_options ao;
    trestle_attachment *a = NULL;
    trestle_error err;
    trestle_attach_options_init(&ao);
    ao.socket_path = sock;
    ao.require_resident = require;
    int rc = trestle_attach(c, ops, n, NULL, &ao, &a, &err);
    trestle_close(c); /* the attachment outlives the checkpoint */
    cr_assert_eq(rc, TRESTLE_OK, "attach: %s", err.message);
    trestle_attachment_get_info(a, info);
    return a;
}

/* A preload's steps by hand, as a hostile or dying preload would take
 * them: the selection of every tensor of `c` on the host tier. */
static void select_all(const trestle_checkpoint *c, trestle__selection *sel)
{
    trestle_error err;
    cr_assert_eq(trestle__selection_make(c, NULL, 0, NULL, TRESTLE__TIER_HOST, -1, sel, &err),
                 TRESTLE_OK, "%s", err.message);
}

/* An ALLOC of `bytes` for `sel` on a new connection (*sock): the frame
 * sent, and, when `reply` is not NULL, the call's code with the reply and
 * its descriptors. */
static int alloc_raw(const char *path, const trestle__selection *sel, uint64_t bytes, int *sock,
                     trestle__wire_msg *reply, int *fds, trestle_error *err)
{
    trestle__wire_msg req = { .type = TRESTLE__MSG_ALLOC };
    req.alloc.key = sel->key;
    req.alloc.bytes = bytes;
    req.alloc.tensors = (uint32_t)sel->kept;
    cr_assert_eq(trestle__resident_connect(path, sock, err), TRESTLE_OK);
    unsigned nfds;
    if (reply) {
        int rc = trestle__resident_call(*sock, path, &req, 60000, reply, fds, &nfds, err);
        cr_assert_eq(nfds, rc == TRESTLE_OK ? 1u : 0u);
        return rc;
    }
    trestle__buf frame = { 0 };
    cr_assert(trestle__wire_encode(&req, 0, &frame));
    cr_assert_eq(trestle__wire_send(*sock, frame.data, frame.len, NULL, 0, err), TRESTLE_OK);
    trestle__buf_free(&frame);
    return TRESTLE_OK;
}

/* What the host tier holds. */
static uint64_t host_used(const char *sock)
{
    trestle_resident_list *l = st_list(sock);
    trestle_resident_server sv;
    trestle_resident_list_server(l, &sv);
    trestle_resident_list_free(l);
    return sv.host_used;
}

/* Wait (5 s at most) until the host tier holds less than `bytes`: 1 when it did. */
static int host_used_drops_below(const char *sock, uint64_t bytes)
{
    for (int i = 0; i < 500; i++, usleep(10000))
        if (host_used(sock) < bytes)
            return 1;
    return 0;
}

Test(serve, attach_maps_exactly_what_a_restore_gives)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 12, 3);
    st_server s;
    st_start(&s, dir, NULL);
    trestle_preload_info pi;
    st_preload(s.sock, ck, NULL, 0, &pi);
    cr_assert_eq(pi.tensors, 14); /* 12 kernels, the partitioned emb, the vocab strings */
    cr_assert_eq(pi.replaced, 0);
    cr_assert(pi.memory_bytes >= pi.bytes);

    trestle_attach_info info;
    trestle_attachment *a = attach(s.sock, ck, NULL, 0, 1, &info);
    cr_assert_eq(info.resident, 1);
    cr_assert_eq(info.tier, TRESTLE_TIER_HOST);
    cr_assert_eq(info.device, -1);
    cr_assert_str_eq(info.note, "");
    cr_assert_eq(info.bytes, pi.bytes);
    cr_assert_eq(info.stats.bytes_read, 0); /* nothing read from storage */
    st_assert_same_as_restore(a, ck, NULL, 0);
    cr_assert(st_wait_clients(s.sock, 0, 1));
    trestle_attachment_free(a);
    cr_assert(st_wait_clients(s.sock, 0, 0), "freeing the attachment releases its reference");
    cr_assert_eq(st_stop(&s), 0);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* A stop counts the clients it cuts off: a held attachment, not one that
 * hung up while the server could not run. The server is stopped
 * (SIGSTOP) while the second attachment closes, so that SIGTERM and that
 * hangup are both waiting when it runs again, as they were under load in
 * CI, where the hangup was counted as a connection the stop closed. */
Test(serve, a_stop_counts_the_clients_it_cuts_off)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 2, 1);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle_attach_info info;
    trestle_attachment *held = attach(s.sock, ck, NULL, 0, 1, &info);
    trestle_attachment *gone = attach(s.sock, ck, NULL, 0, 1, &info);
    cr_assert(st_wait_clients(s.sock, 0, 2));
    int status;
    cr_assert_eq(kill(s.pid, SIGSTOP), 0);
    cr_assert_eq(waitpid(s.pid, &status, WUNTRACED), s.pid);
    cr_assert(WIFSTOPPED(status));
    trestle_attachment_free(gone);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    cr_assert_eq(kill(s.pid, SIGCONT), 0);
    cr_assert_eq(waitpid(s.pid, &status, 0), s.pid);
    s.pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a stop on SIGTERM is exit 0");
    char *log = st_log(&s);
    cr_assert(strstr(log, "trestle serve: stopping: 1 connections closed, every entry dropped "
                          "(clients' mappings stay valid)\n"), "%s", log);
    free(log);
    trestle_attachment_free(held);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve, ops_with_slices_partitions_and_conversions)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 6, 2);
    st_server s;
    st_start(&s, dir, NULL);
    const trestle_op ops[] = {
        { .name = "model/layer00/attn/kernel", .target_dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "model/layer00/mlp/kernel", .shape_and_slices = "53 65 10,20:-" },
        { .name = "model/emb", .shape_and_slices = "50 8 10,30:2,4" },
        { .name = "model/vocab" },
        { .name = "model/layer01/norm/kernel", .dtype = TRESTLE_DT_FLOAT,
          .target_dtype = TRESTLE_DT_HALF },
    };
    st_preload(s.sock, ck, ops, 5, NULL);
    trestle_attach_info info;
    trestle_attachment *a = attach(s.sock, ck, ops, 5, 1, &info);
    cr_assert_eq(info.resident, 1);
    st_assert_same_as_restore(a, ck, ops, 5);
    trestle_attachment_free(a);
    /* Every tensor of the same checkpoint is another selection. */
    a = attach(s.sock, ck, NULL, 0, 0, &info);
    cr_assert_eq(info.resident, 0);
    char want[512];
    snprintf(want, sizeof want, "%s is resident with another selection of tensors: attach with "
             "the ops, --graph or --as it was preloaded with, or preload this one", ck);
    cr_assert_str_eq(info.note, want);
    st_assert_same_as_restore(a, ck, NULL, 0);
    trestle_attachment_free(a);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve, without_a_server_the_restore_goes_ahead_and_says_why)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 4, 1);
    char sock[300];
    snprintf(sock, sizeof sock, "%s/none.sock", dir);
    trestle_attach_info info;
    trestle_attachment *a = attach(sock, ck, NULL, 0, 0, &info);
    cr_assert_eq(info.resident, 0);
    char want[512];
    snprintf(want, sizeof want, "no trestle server on %s (connect: No such file or directory)",
             sock);
    cr_assert_str_eq(info.note, want);
    cr_assert_gt(info.stats.bytes_read, 0);
    st_assert_same_as_restore(a, ck, NULL, 0);
    trestle_attachment_free(a);

    /* Required resident: the same reason, as an error. */
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle_attach_options ao;
    trestle_error err;
    trestle_attach_options_init(&ao);
    ao.socket_path = sock;
    ao.require_resident = 1;
    cr_assert_eq(trestle_attach(c, NULL, 0, NULL, &ao, &a, &err), TRESTLE_E_NOT_RESIDENT);
    cr_assert_null(a);
    cr_assert_str_eq(err.message, want);
    /* An op in the caller's host memory is neither mapped nor copied
     * (only device buffers are, with a device). */
    float buf[4];
    trestle_op op = { .name = "model/vocab", .dest_kind = TRESTLE_DEST_HOST, .ptr = buf,
                      .capacity = sizeof buf };
    cr_assert_eq(trestle_attach(c, &op, 1, NULL, &ao, &a, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "trestle_attach: op 0 ('model/vocab') is neither "
                                  "TRESTLE_DEST_ALLOCATE nor, with a device, TRESTLE_DEST_DEVICE: "
                                  "resident tensors are mapped, or copied into the caller's "
                                  "device memory");
    /* A device buffer needs the device tier. */
    op.dest_kind = TRESTLE_DEST_DEVICE;
    cr_assert_eq(trestle_attach(c, &op, 1, NULL, &ao, &a, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "trestle_attach: ops with TRESTLE_DEST_DEVICE need a device "
                                  "(trestle_attach_options.device): resident tensors are copied "
                                  "into them from that device's tier");
    trestle_close(c);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve, a_changed_checkpoint_is_never_served_stale)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, 8, 1);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    uint64_t old_sum = st_restore_checksum(ck, NULL, 0);

    /* The same names and shapes, other values: the index differs. */
    sleep(1); /* a new mtime even on coarse clocks */
    free(tu_write_gpu_model(dir, 8, 2));
    uint64_t new_sum = st_restore_checksum(ck, NULL, 0);
    cr_assert_neq(old_sum, new_sum);
    trestle_attach_info info;
    trestle_attachment *a = attach(s.sock, ck, NULL, 0, 0, &info);
    cr_assert_eq(info.resident, 0, "the old version was served");
    cr_assert(tu_starts_with(info.note, ck), "%s", info.note);
    cr_assert(strstr(info.note, " changed on disk since it was preloaded: its index differs "
                                "(resident: "), "%s", info.note);
    cr_assert_eq(st_attachment_checksum(a), new_sum);
    trestle_attachment_free(a);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_entry e;
    cr_assert_eq(trestle_resident_list_get(l, 0, &e), TRESTLE_OK);
    cr_assert_eq(e.changed, 1, "the list says the files changed");
    trestle_resident_list_free(l);

    /* A preload of the new version replaces the old one. */
    trestle_preload_info pi;
    st_preload(s.sock, ck, NULL, 0, &pi);
    cr_assert_eq(pi.replaced, 1);
    l = st_list(s.sock);
    cr_assert_eq(trestle_resident_list_count(l), 1);
    trestle_resident_list_free(l);
    a = attach(s.sock, ck, NULL, 0, 1, &info);
    cr_assert_eq(st_attachment_checksum(a), new_sum);
    trestle_attachment_free(a);

    /* Same bytes, a data file touched: still another version, said so. */
    char shard[512];
    snprintf(shard, sizeof shard, "%s.data-00001-of-00002", ck);
    sleep(1);
    cr_assert_eq(utimes(shard, NULL), 0);
    a = attach(s.sock, ck, NULL, 0, 0, &info);
    cr_assert_eq(info.resident, 0);
    char want[700];
    snprintf(want, sizeof want, " changed on disk since it was preloaded: its data file %s "
             "changed (resident: ", shard);
    cr_assert(strstr(info.note, want), "%s", info.note);
    cr_assert_eq(st_attachment_checksum(a), new_sum);
    trestle_attachment_free(a);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* The manifest check, field by field, against a lying entry. */
Test(serve, a_manifest_that_differs_from_the_plan_is_refused)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    trestle_error err;
    cr_assert_eq(trestle__selection_make(c, NULL, 0, NULL, TRESTLE__TIER_HOST, -1, &sel, &err),
                 TRESTLE_OK, "%s", err.message);
    uint8_t *mem = calloc(1, sel.bytes);
    trestle__wire_manifest m;
    cr_assert_eq(trestle__manifest_build(c, &sel, mem, NULL, 0, &m, &err), TRESTLE_OK);
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes, "server S", &err), TRESTLE_OK,
                 "%s", err.message);
    /* A shape, a dtype, an offset past the memory, an overlap, a stored CRC. */
    char want[512];
    m.tensors[1].dims[0]++;
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes, "server S", &err),
                 TRESTLE_E_CORRUPT);
    snprintf(want, sizeof want, "server S: its entry for %s does not match this process's "
             "plan: tensor 1 ('%s') differs in its shape or size", sel.key.id.path,
             m.tensors[1].name);
    cr_assert_str_eq(err.message, want);
    m.tensors[1].dims[0]--;
    m.tensors[0].dtype = TRESTLE_DT_HALF;
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes, "server S", &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "differs in its dtype"), "%s", err.message);
    m.tensors[0].dtype = TRESTLE_DT_FLOAT;
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes - 1, "server S", &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "differs in its place in the memory (unaligned, overlapping "
                                  "or outside it)"), "%s", err.message);
    uint64_t off = m.tensors[2].offset;
    m.tensors[2].offset = m.tensors[1].offset;
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes, "server S", &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "tensor 2 ("), "%s", err.message);
    m.tensors[2].offset = off;
    /* tensors[0] is the partitioned emb (its CRC is of the landed bytes);
     * tensors[1] a plain kernel, whose CRC is the index's. */
    cr_assert_eq(m.tensors[0].crc_kind, TRESTLE__CRC_LANDED);
    cr_assert_eq(m.tensors[1].crc_kind, TRESTLE__CRC_STORED);
    m.tensors[1].crc32c ^= 1;
    cr_assert_eq(trestle__manifest_check(c, &sel, &m, sel.bytes, "server S", &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "tensor 1 (") && strstr(err.message, "differs in its CRC32C "
              "(the index of the files this process opened says otherwise)"), "%s", err.message);
    m.tensors[1].crc32c ^= 1;
    /* verify recomputes: the zero bytes here are not the tensors' */
    cr_assert_eq(trestle__manifest_verify(&m, mem, "server S", &err), TRESTLE_E_CRC_MISMATCH);
    cr_assert(strstr(err.message, "server S: tensor '"), "%s", err.message);
    trestle__wire_manifest_free(&m);
    trestle__selection_free(&sel);
    free(mem);
    trestle_close(c);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve, a_cap_evicts_the_least_recently_used_entry_no_client_holds)
{
    char *dir = tu_mkdtemp();
    char *sub_a, *sub_b;
    cr_assert(asprintf(&sub_a, "%s/a", dir) > 0 && asprintf(&sub_b, "%s/b", dir) > 0);
    mkdir(sub_a, 0755);
    mkdir(sub_b, 0755);
    char *a_ck = tu_write_mixed(sub_a, 12, 2), *b_ck = tu_write_mixed(sub_b, 12, 2);
    /* Room for one entry (452 KiB each), not two. */
    const char *extra[] = { "--host-cap", "700K", NULL };
    st_server s;
    st_start(&s, dir, extra);
    st_preload(s.sock, a_ck, NULL, 0, NULL);
    st_preload(s.sock, b_ck, NULL, 0, NULL);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_entry e;
    cr_assert_eq(trestle_resident_list_count(l), 1);
    trestle_resident_list_get(l, 0, &e);
    cr_assert_str_eq(e.path, b_ck);
    trestle_resident_list_free(l);
    char *log = st_log(&s);
    char want[600];
    snprintf(want, sizeof want, "evicted %s (", a_ck);
    cr_assert(strstr(log, want) && strstr(log, "least recently used) to make room under the host "
                                               "tier cap of 700.00 KiB"), "%s", log);
    free(log);

    /* b held by a client: a's preload cannot make room, and says so. */
    trestle_attach_info info;
    trestle_attachment *held = attach(s.sock, b_ck, NULL, 0, 1, &info);
    trestle_checkpoint *c = tu_open(a_ck, NULL);
    trestle_preload_options po;
    trestle_error err;
    trestle_preload_options_init(&po);
    po.socket_path = s.sock;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_E_NOMEM);
    cr_assert(tu_starts_with(err.message, "server "), "%s", err.message);
    cr_assert(strstr(err.message, ": host tier: the checkpoint needs "), "%s", err.message);
    cr_assert(strstr(err.message, "and the tier's cap of 700.00 KiB has "), "%s", err.message);
    cr_assert(strstr(err.message, "; the rest is held by entries that clients attach (or preloads "
                                  "in progress), which are not evicted"), "%s", err.message);
    /* Released, it goes. */
    trestle_attachment_free(held);
    cr_assert(st_wait_clients(s.sock, 0, 0));
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_close(c);
    l = st_list(s.sock);
    trestle_resident_list_get(l, 0, &e);
    cr_assert_str_eq(e.path, a_ck);
    trestle_resident_list_free(l);
    st_stop(&s);
    tu_rmtree(dir);
    free(a_ck);
    free(b_ck);
    free(sub_a);
    free(sub_b);
    free(dir);
}

Test(serve, a_preload_too_big_for_the_cap_names_the_tier_and_the_bytes)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 12, 1);
    const char *extra[] = { "--host-cap", "64K", NULL };
    st_server s;
    st_start(&s, dir, extra);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle_preload_options po;
    trestle_error err;
    trestle_preload_options_init(&po);
    po.socket_path = s.sock;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_E_NOMEM);
    char want[512];
    snprintf(want, sizeof want, "server %s: host tier: the checkpoint needs 452.00 KiB (462848 "
             "bytes), more than the tier's cap of 64.00 KiB (65536 bytes)", s.sock);
    cr_assert_str_eq(err.message, want);
    trestle_close(c);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_server sv;
    trestle_resident_list_server(l, &sv);
    cr_assert_eq(sv.host_used, 0);
    trestle_resident_list_free(l);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* A preload that allocates and never publishes (it died) frees its memory. */
Test(serve, an_unpublished_preload_frees_its_memory)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    st_server s;
    st_start(&s, dir, NULL);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    trestle_error err;
    select_all(c, &sel);
    int sock, fds[TRESTLE__WIRE_MAX_FDS];
    trestle__wire_msg reply;
    cr_assert_eq(alloc_raw(s.sock, &sel, sel.bytes, &sock, &reply, fds, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_server sv;
    trestle_resident_list_server(l, &sv);
    cr_assert_geq(sv.host_used, sel.bytes);
    cr_assert_eq(trestle_resident_list_count(l), 0, "an unpublished entry is not listed");
    trestle_resident_list_free(l);
    close(fds[0]);
    close(sock); /* as if the preload died */
    cr_assert(host_used_drops_below(s.sock, 1));
    char *log = st_log(&s);
    cr_assert(strstr(log, "ended before it was published: memory freed"), "%s", log);
    free(log);
    trestle__wire_msg_free(&reply);
    trestle__selection_free(&sel);
    trestle_close(c);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Files that cannot be named any more have no version to look up: the
 * attach restores from storage (the index is already read) and says why. */
Test(serve, files_that_cannot_be_identified_are_restored_from_storage)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle_checkpoint *c = tu_open(ck, NULL);
    char index[512];
    snprintf(index, sizeof index, "%s.index", ck);
    cr_assert_eq(unlink(index), 0);
    trestle_attach_options ao;
    trestle_attachment *a = NULL;
    trestle_attach_info info;
    trestle_error err;
    trestle_attach_options_init(&ao);
    ao.socket_path = s.sock;
    cr_assert_eq(trestle_attach(c, NULL, 0, NULL, &ao, &a, &err), TRESTLE_OK, "%s", err.message);
    trestle_attachment_get_info(a, &info);
    cr_assert_eq(info.resident, 0);
    char want[700];
    snprintf(want, sizeof want, "which version of the files this is cannot be told: %s: No such "
             "file or directory", index);
    cr_assert_str_eq(info.note, want);
    trestle_attachment_free(a);
    /* A preload cannot go ahead without a version. */
    trestle_preload_options po;
    trestle_preload_options_init(&po);
    po.socket_path = s.sock;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_E_IO);
    snprintf(want, sizeof want, "cannot preload: %s: No such file or directory", index);
    cr_assert_str_eq(err.message, want);
    trestle_close(c);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* The server allocates a preload's memory a slice at a time between other
 * requests: a big preload (hundreds of GB take a minute to allocate) must
 * not hold up the attaches of processes that restart meanwhile, which
 * would otherwise wait, time out and read from storage. */
Test(serve, a_large_allocation_does_not_hold_up_other_clients)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    const char *extra[] = { "--no-huge-pages", NULL };
    st_server s;
    st_start(&s, dir, extra);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    trestle_error err;
    select_all(c, &sel);
    const uint64_t big = 1536ull << 20;
    for (int round = 0; round < 2; round++) {
        int sock;
        alloc_raw(s.sock, &sel, big, &sock, NULL, NULL, &err);
        /* While it allocates: another process attaches, and the memory
         * being allocated already counts against the tier. */
        trestle_attach_info info;
        trestle_attachment *a = attach(s.sock, ck, NULL, 0, 1, &info);
        cr_assert_geq(host_used(s.sock), big);
        struct pollfd p = { sock, POLLIN, 0 };
        cr_assert_eq(poll(&p, 1, 0), 0, "the attach waited for the whole allocation");
        trestle_attachment_free(a);
        if (round == 0) {
            int fds[TRESTLE__WIRE_MAX_FDS];
            unsigned nfds;
            trestle__wire_msg reply;
            cr_assert_eq(trestle__wire_recv(sock, 60000, "server", &reply, fds, &nfds, &err),
                         TRESTLE_OK, "%s", err.message);
            cr_assert_eq(reply.type, TRESTLE__MSG_ALLOC_REPLY);
            cr_assert_eq(nfds, 1);
            struct stat st;
            cr_assert_eq(fstat(fds[0], &st), 0);
            cr_assert_eq((uint64_t)st.st_size, big);
            cr_assert_geq((uint64_t)st.st_blocks * 512, big, "not every page is allocated");
            close(fds[0]);
            trestle__wire_msg_free(&reply);
        }
        close(sock); /* unpublished (round 1: still allocating): freed */
        cr_assert(host_used_drops_below(s.sock, big),
                  "round %d: the memory of a preload gone was not freed", round);
    }
    char *log = st_log(&s);
    cr_assert(strstr(log, "ended before it was published: memory freed"), "%s", log);
    free(log);
    /* A stop while allocating is a clean stop. */
    int sock;
    alloc_raw(s.sock, &sel, big, &sock, NULL, NULL, &err);
    host_used(s.sock); /* the ALLOC is in */
    cr_assert_eq(st_stop(&s), 0);
    close(sock);
    trestle__selection_free(&sel);
    trestle_close(c);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Without a cap, a preload bigger than the memory the host (or the
 * server's cgroup) has left is refused before a page is allocated: past
 * it, shmem that cannot be swapped brings in the OOM killer, which may
 * pick the server and every entry with it. */
Test(serve, a_preload_bigger_than_the_memory_left_is_refused_up_front)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    const char *extra[] = { "--no-huge-pages", NULL };
    st_server s;
    st_start(&s, dir, extra);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    trestle_error err;
    select_all(c, &sel);
    uint64_t avail;
    char source[600];
    cr_assert(trestle__host_room(&avail, source, sizeof source));
    int sock, fds[TRESTLE__WIRE_MAX_FDS];
    trestle__wire_msg reply;
    cr_assert_eq(alloc_raw(s.sock, &sel, 64ull << 40, &sock, &reply, fds, &err), TRESTLE_E_NOMEM,
                 "%s", err.message);
    trestle__wire_msg_free(&reply);
    char want[800];
    snprintf(want, sizeof want, "server %s: host tier: the checkpoint needs 65536.00 GiB "
             "(70368744177664 bytes) and ", s.sock);
    cr_assert(tu_starts_with(err.message, want), "%s", err.message);
    cr_assert(strstr(err.message, " is available (MemAvailable in /proc/meminfo); allocating it "
                                  "would bring in the OOM killer") ||
              strstr(err.message, " is available (the memory"), "%s", err.message);
    close(sock);
    char *log = st_log(&s);
    cr_assert(strstr(log, "failed: host tier: the checkpoint needs 65536.00 GiB"), "%s", log);
    free(log);
    /* Nothing held, and the server goes on: the real preload fits. */
    cr_assert_eq(host_used(s.sock), 0);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle__selection_free(&sel);
    trestle_close(c);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Memory process `pid` has locked (VmLck in /proc/PID/status), in KiB. */
__attribute__((unused)) static uint64_t locked_kib(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* The server checks a preload's bytes against its manifest once they are
 * sealed, before anyone maps them: a preload that wrote other bytes than
 * its manifest says (here: none, with the index's CRCs) is refused. */
Test(serve, bytes_that_differ_from_the_manifest_are_never_published)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    st_server s;
    st_start(&s, dir, NULL);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    trestle_error err;
    select_all(c, &sel);
    int sock, fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds;
    trestle__wire_msg reply;
    cr_assert_eq(alloc_raw(s.sock, &sel, sel.bytes, &sock, &reply, fds, &err), TRESTLE_OK, "%s",
                 err.message);
    uint64_t region = reply.alloc_reply.region_bytes;
    uint64_t entry = reply.alloc_reply.entry_id;
    trestle__wire_msg_free(&reply);
    /* Nothing written: the memory is zeros, the manifest the real one. */
    const uint8_t *zeros = trestle__memfd_map(fds[0], region, false);
    cr_assert_not_null(zeros);
    trestle__wire_msg req = { .type = TRESTLE__MSG_COMMIT };
    req.commit.entry_id = entry;
    req.commit.verified = 1;
    cr_assert_eq(trestle__manifest_build(c, &sel, zeros, NULL, 0, &req.commit.manifest, &err),
                 TRESTLE_OK, "%s", err.message);
    const trestle__wire_tensor *t = NULL;
    for (uint32_t i = 0; i < req.commit.manifest.count && !t; i++)
        if (req.commit.manifest.tensors[i].crc_kind == TRESTLE__CRC_STORED)
            t = &req.commit.manifest.tensors[i];
    cr_assert_not_null(t);
    char want[1024];
    snprintf(want, sizeof want, "server %s: %s: the bytes in memory are not what the manifest "
             "says: tensor %u ('%s'), %llu bytes at offset %llu: CRC32C 0x%08x in memory, not "
             "the manifest's 0x%08x; not published", s.sock, ck,
             (unsigned)(t - req.commit.manifest.tensors), t->name, (unsigned long long)t->bytes,
             (unsigned long long)t->offset,
             (unsigned)trestle__crc32c(zeros + t->offset, (size_t)t->bytes), (unsigned)t->crc32c);
    munmap((void *)zeros, region);
    cr_assert_eq(trestle__resident_call(sock, s.sock, &req, 5000, &reply, fds + 1, &nfds, &err),
                 TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    cr_assert_str_eq(err.message, want);
    trestle__wire_msg_free(&reply);
    trestle__wire_manifest_free(&req.commit.manifest);
    trestle_resident_list *l = st_list(s.sock);
    cr_assert_eq(trestle_resident_list_count(l), 0);
    trestle_resident_list_free(l);
    cr_assert_eq(host_used(s.sock), 0, "the refused entry's memory is still held");
    char *log = st_log(&s);
    cr_assert(strstr(log, " refused: its bytes are not what its manifest says: tensor "), "%s", log);
    free(log);
    close(fds[0]);
    close(sock);
    /* A real preload is checked the same way, published, and pinned
     * (locked in memory: root, as this suite runs, has no mlock limit). */
    st_preload(s.sock, ck, NULL, 0, NULL);
    log = st_log(&s);
    cr_assert(strstr(log, ", every byte CRC-checked, and checked by the server in its sealed "
                          "memory, pinned in memory (mlock)\n"), "%s", log);
    free(log);
#if !defined(__SANITIZE_ADDRESS__) /* ASan makes mlock a no-op: nothing shows in VmLck */
    cr_assert_geq(locked_kib(s.pid) * 1024, sel.bytes, "the server has not locked the entry");
    cr_assert_eq(trestle_resident_evict(s.sock, NULL, NULL, &err), TRESTLE_OK);
    cr_assert_lt(locked_kib(s.pid) * 1024, sel.bytes, "an evicted entry stays locked");
#endif
    trestle__selection_free(&sel);
    trestle_close(c);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}
