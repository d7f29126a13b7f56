/*
 * resident_preload.c - trestle_preload(): plan the selection, have the
 * server allocate its memory, restore into that memory with the public
 * pipeline (every byte CRC-checked), describe it in a manifest, and
 * publish it.
 *
 * The preload is the only writer an entry ever has, and only until it
 * publishes: it unmaps its writable mapping before COMMIT, and the server
 * seals the memory before anyone else sees it. The server's memory is
 * filled by this process, with this process's read permissions on the
 * files: the server itself opens no checkpoint.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "memfd_tier.h"
#include "resident.h"
#include "vmm_tier.h"

/* The server allocates (zeroes) the memory before its ALLOC reply, and
 * checks every byte before its COMMIT reply: minutes for hundreds of GB. */
#define SERVER_WORK_TIMEOUT_MS 600000

void trestle_preload_options_init(trestle_preload_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->device = -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * The selection again, each kept op pointed at its place in `base` (host
 * memory, or a device mapping on `device`): a plan whose restore fills
 * the entry. Renames, exclusions and shard rules resolve as in the first
 * plan, since the names and options are the same.
 */
static int fill_plan(const trestle_checkpoint *c, const trestle__selection *s,
                     const trestle_plan_options *popt, uint8_t *base, int device,
                     trestle_plan **out, trestle_error *err)
{
    size_t n = trestle_plan_op_count(s->plan), k = 0;
    trestle_op *ops = calloc(s->kept ? s->kept : 1, sizeof *ops);
    int rc;
    *out = NULL;
    if (!ops)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(s->plan, i, &op);
        if (op.skipped)
            continue;
        trestle_op *o = &ops[k++];
        o->name = op.name;
        o->shape_and_slices = trestle__selection_spec(s, i);
        o->dtype = s->ops ? s->ops[i].dtype : TRESTLE_DT_INVALID;
        o->target_dtype = op.out_dtype != op.dtype ? op.out_dtype : TRESTLE_DT_INVALID;
        o->dest_kind = device >= 0 ? TRESTLE_DEST_DEVICE : TRESTLE_DEST_HOST;
        o->ptr = base + s->offsets[i];
        o->capacity = op.bytes;
    }
    rc = trestle_plan_create(c, ops, k, popt, out, err);
    free(ops);
    if (rc != TRESTLE_OK)
        return rc;
    /* The same selection must come out: anything else is a bug here. */
    for (size_t i = 0, j = 0; i < n; i++) {
        trestle_plan_op_info a, b;
        trestle_plan_get_op(s->plan, i, &a);
        if (a.skipped)
            continue;
        trestle_plan_get_op(*out, j++, &b);
        if (b.skipped || b.bytes != a.bytes || b.out_dtype != a.out_dtype) {
            trestle_plan_free(*out);
            *out = NULL;
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "preload: op '%s' planned "
                                         "differently the second time (%s)", a.name,
                                         b.skipped ? "skipped" : "bytes or dtype");
        }
    }
    return TRESTLE_OK;
}

int trestle_preload(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                    const trestle_plan_options *popt, const trestle_preload_options *opt,
                    trestle_preload_info *info, trestle_error *err)
{
    trestle_preload_options o;
    trestle_restore_options ro;
    trestle__selection sel = { 0 };
    trestle__wire_msg req, reply = { 0 };
    trestle_plan *fill = NULL;
    trestle_stats st;
    char path[TRESTLE__SOCKET_MAX];
    int sock = -1, mem = -1, fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds = 0;
    uint8_t *base = NULL;
    void *mapping = NULL;
    uint64_t region = 0;
    int rc, pages = 0, tier = TRESTLE__TIER_HOST;
    double t0 = now_s();

    trestle_preload_options_init(&o);
    trestle_restore_options_init(&ro);
    memset(&st, 0, sizeof st);
    TR_FAIL_IF(!c, err, TRESTLE_E_INVALID_ARG, "trestle_preload: checkpoint is NULL");
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_preload_options, &o, opt,
                                     TRESTLE__PRELOAD_OPTIONS_FIRST_SIZE, err));
    if (o.restore)
        TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_restore_options, &ro, o.restore,
                                         TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, err));
    tier = o.device >= 0 ? TRESTLE__TIER_DEVICE : TRESTLE__TIER_HOST;
    TR_FORWARD(trestle__socket_resolve(o.socket_path, path, sizeof path, err));
    TR_FORWARD(trestle__selection_make(c, ops, n, popt, tier, o.device, &sel, err));
    TR_FAIL_IF(sel.unidentified[0], err, TRESTLE_E_IO, "cannot preload: %s", sel.unidentified);
    TR_FORWARD(trestle__resident_connect(path, &sock, err));

    memset(&req, 0, sizeof req);
    req.type = TRESTLE__MSG_ALLOC;
    req.alloc.key = sel.key;
    req.alloc.bytes = sel.bytes;
    req.alloc.tensors = (uint32_t)sel.kept;
    TR_FORWARD(trestle__resident_call(sock, path, &req, SERVER_WORK_TIMEOUT_MS, &reply, fds, &nfds,
                                      err));
    TR_FAIL_IF(reply.type != TRESTLE__MSG_ALLOC_REPLY || nfds != 1, err, TRESTLE_E_SERVER,
               "server %s: replied to ALLOC with %s", path,
               trestle__wire_type_name(reply.type));
    mem = fds[0];
    nfds = 0;
    region = reply.alloc_reply.region_bytes;
    pages = reply.alloc_reply.pages;
    uint64_t entry = reply.alloc_reply.entry_id;
    trestle__wire_msg_free(&reply);
    TR_FAIL_IF(region < sel.bytes, err, TRESTLE_E_SERVER, "server %s: allocated %llu bytes for "
               "%llu", path, (unsigned long long)region, (unsigned long long)sel.bytes);

    if (tier == TRESTLE__TIER_HOST) {
        base = trestle__memfd_map(mem, region, true);
        TR_FAIL_IF(!base, err, TRESTLE_E_NOMEM, "mapping the server's %llu bytes: %s",
                   (unsigned long long)region, strerror(errno));
    } else {
        TR_FORWARD(trestle__vmm_map(mem, o.device, region, true, &mapping, (void **)&base, err));
    }
    TR_FORWARD(fill_plan(c, &sel, popt, base, tier == TRESTLE__TIER_HOST ? -1 : o.device, &fill,
                         err));
    ro.verify = 1;
    ro.device = tier == TRESTLE__TIER_HOST ? -1 : o.device;
    ro.devices = NULL;
    ro.num_devices = 0;
    ro.host_map = 0;
    TR_FORWARD(trestle_restore(fill, &ro, &st, err));

    memset(&req, 0, sizeof req);
    req.type = TRESTLE__MSG_COMMIT;
    req.commit.entry_id = entry;
    req.commit.verified = st.bytes_deferred == 0;
    TR_FORWARD(trestle__manifest_build(c, &sel, tier == TRESTLE__TIER_HOST ? base : NULL, fill,
                                       &req.commit.manifest, err));
    /* The server seals the memory: no writable mapping may remain. */
    if (tier == TRESTLE__TIER_HOST)
        munmap(base, (size_t)region);
    else
        trestle__vmm_unmap(mapping);
    base = NULL;
    mapping = NULL;
    trestle_plan_free(fill);
    fill = NULL;
    rc = trestle__resident_call(sock, path, &req, SERVER_WORK_TIMEOUT_MS, &reply, fds, &nfds,
                                err);
    trestle__wire_manifest_free(&req.commit.manifest);
    if (rc != TRESTLE_OK)
        goto fail;
    TR_FAIL_IF(reply.type != TRESTLE__MSG_COMMIT_REPLY, err, TRESTLE_E_SERVER,
               "server %s: replied to COMMIT with %s", path, trestle__wire_type_name(reply.type));
    if (info) {
        memset(info, 0, sizeof *info);
        info->tensors = sel.kept;
        info->bytes = sel.data_bytes;
        info->memory_bytes = region;
        info->replaced = reply.commit_reply.replaced;
        info->huge_pages = pages;
        info->stats = st;
        info->seconds = now_s() - t0;
    }
    rc = TRESTLE_OK;
fail:
    if (base && tier == TRESTLE__TIER_HOST)
        munmap(base, (size_t)region);
    if (mapping)
        trestle__vmm_unmap(mapping);
    trestle_plan_free(fill);
    trestle__wire_msg_free(&reply);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (mem >= 0)
        close(mem);
    if (sock >= 0)
        close(sock); /* unpublished: the server frees the memory */
    trestle__selection_free(&sel);
    return rc;
}
