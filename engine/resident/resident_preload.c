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
#include <stdio.h>
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

/* One entry a preload fills: the server's memory on one device (or the host). */
typedef struct preload_entry {
    int device;              /* CUDA ordinal, or -1 for the host tier */
    int sock;                /* its own connection: the server allows one preload on each */
    int mem;                 /* the descriptor of its memory */
    uint64_t id, region;
    int pages;
    uint8_t *base;           /* the writable mapping while it is filled */
    void *mapping;           /* device tier: vmm_tier.h's */
} preload_entry;

/*
 * The selection again, each kept op pointed at its place in each entry's
 * memory (host memory, or a device mapping): one block of ops per entry,
 * in entry order, so that one restore fills them all (with several
 * devices, trestle_restore_options.devices: the ops of one key share one
 * read and one CRC check). Renames, exclusions and shard rules resolve as
 * in the first plan, since the names and options are the same; declared
 * shapes follow their ops into the blocks.
 */
static int fill_plan(const trestle_checkpoint *c, const trestle__selection *s,
                     const trestle_plan_options *popt, const preload_entry *en, size_t nen,
                     trestle_plan **out, trestle_error *err)
{
    size_t n = trestle_plan_op_count(s->plan), k = 0, total = (s->kept ? s->kept : 1) * nen;
    trestle_op *ops = calloc(total, sizeof *ops);
    bool declared = popt && popt->op_shapes && s->ops; /* op_shapes is parallel to ops */
    trestle_shape *shapes = declared ? calloc(total, sizeof *shapes) : NULL;
    trestle_plan_options po;
    int rc;
    *out = NULL;
    if (!ops || (declared && !shapes)) {
        free(ops);
        free(shapes);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    for (size_t b = 0; b < nen; b++) {
        for (size_t i = 0; i < n; i++) {
            trestle_plan_op_info op;
            trestle_plan_get_op(s->plan, i, &op);
            if (op.skipped)
                continue;
            if (shapes)
                shapes[k] = popt->op_shapes[i];
            trestle_op *o = &ops[k++];
            o->name = op.name;
            o->shape_and_slices = trestle__selection_spec(s, i);
            o->dtype = s->ops ? s->ops[i].dtype : TRESTLE_DT_INVALID;
            o->target_dtype = op.out_dtype != op.dtype ? op.out_dtype : TRESTLE_DT_INVALID;
            o->dest_kind = en[b].device >= 0 ? TRESTLE_DEST_DEVICE : TRESTLE_DEST_HOST;
            o->ptr = en[b].base + s->offsets[i];
            o->capacity = op.bytes;
        }
    }
    if (popt)
        po = *popt;
    else
        trestle_plan_options_init(&po);
    po.op_shapes = shapes;
    rc = trestle_plan_create(c, ops, k, &po, out, err);
    free(ops);
    free(shapes);
    if (rc != TRESTLE_OK)
        return rc;
    /* The same selection must come out, in every block: anything else is a bug here. */
    for (size_t b = 0, j = 0; b < nen; b++) {
        for (size_t i = 0; i < n; i++) {
            trestle_plan_op_info a, f;
            trestle_plan_get_op(s->plan, i, &a);
            if (a.skipped)
                continue;
            trestle_plan_get_op(*out, j++, &f);
            if (f.skipped || f.bytes != a.bytes || f.out_dtype != a.out_dtype) {
                trestle_plan_free(*out);
                *out = NULL;
                return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "preload: op '%s' "
                                             "planned differently the second time (%s)", a.name,
                                             f.skipped ? "skipped" : "bytes or dtype");
            }
        }
    }
    return TRESTLE_OK;
}

/* The entries to fill: the host, one device, or each of a device list. */
static int entries_of(const trestle_preload_options *o, preload_entry **out, size_t *n,
                      trestle_error *err)
{
    size_t count = o->num_devices ? o->num_devices : 1;
    int rc;
    TR_FAIL_IF(o->num_devices && !o->devices, err, TRESTLE_E_INVALID_ARG,
               "trestle_preload: num_devices is %zu and devices is NULL", o->num_devices);
    TR_FAIL_IF(count > 64, err, TRESTLE_E_INVALID_ARG, "trestle_preload: %zu devices, more "
               "than 64", count);
    TR_FAIL_IF(o->num_devices && o->device >= 0 && o->device != o->devices[0], err,
               TRESTLE_E_INVALID_ARG, "trestle_preload: device is %d but devices[0] is %d "
               "(with a device list, device must be -1 or devices[0])", o->device,
               o->devices[0]);
    for (size_t i = 0; i < o->num_devices; i++) {
        TR_FAIL_IF(o->devices[i] < 0, err, TRESTLE_E_INVALID_ARG, "trestle_preload: devices[%zu] "
                   "is %d, not a CUDA ordinal", i, o->devices[i]);
        for (size_t j = 0; j < i; j++)
            TR_FAIL_IF(o->devices[j] == o->devices[i], err, TRESTLE_E_INVALID_ARG,
                       "trestle_preload: device %d is listed twice", o->devices[i]);
    }
    preload_entry *en = calloc(count, sizeof *en);
    TR_FAIL_IF(!en, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        en[i].device = o->num_devices ? o->devices[i] : o->device;
        en[i].sock = en[i].mem = -1;
    }
    *out = en;
    *n = count;
    return TRESTLE_OK;
fail:
    return rc;
}

/* The end of a call to the server: free its reply, close descriptors it
 * sent that were not kept, and return `rc`. */
static int call_done(int rc, trestle__wire_msg *reply, const int *fds, unsigned nfds)
{
    trestle__wire_msg_free(reply);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    return rc;
}

/* Ask the server for entry `e`'s memory (keyed as `sel`, on e->device) and map it writable. */
static int alloc_entry(const char *path, const trestle__selection *sel, preload_entry *e,
                       trestle_error *err)
{
    trestle__wire_msg req, reply = { 0 };
    int fds[TRESTLE__WIRE_MAX_FDS], rc;
    unsigned nfds = 0;
    bool host = e->device < 0;

    TR_FORWARD(trestle__resident_connect(path, &e->sock, err));
    memset(&req, 0, sizeof req);
    req.type = TRESTLE__MSG_ALLOC;
    req.alloc.key = sel->key; /* shallow: encoded, not freed */
    req.alloc.key.device = host ? -1 : e->device;
    req.alloc.bytes = sel->bytes;
    req.alloc.tensors = (uint32_t)sel->kept;
    TR_FORWARD(trestle__resident_call(e->sock, path, &req, SERVER_WORK_TIMEOUT_MS, &reply, fds,
                                      &nfds, err));
    TR_FAIL_IF(reply.type != TRESTLE__MSG_ALLOC_REPLY || nfds != 1, err, TRESTLE_E_SERVER,
               "server %s: replied to ALLOC with %s", path,
               trestle__wire_type_name(reply.type));
    e->mem = fds[0];
    nfds = 0;
    e->region = reply.alloc_reply.region_bytes;
    e->pages = reply.alloc_reply.pages;
    e->id = reply.alloc_reply.entry_id;
    TR_FAIL_IF(e->region < sel->bytes, err, TRESTLE_E_SERVER, "server %s: allocated %llu bytes "
               "for %llu", path, (unsigned long long)e->region, (unsigned long long)sel->bytes);
    if (host) {
        e->base = trestle__memfd_map(e->mem, e->region, true);
        TR_FAIL_IF(!e->base, err, TRESTLE_E_NOMEM, "mapping the server's %llu bytes: %s",
                   (unsigned long long)e->region, strerror(errno));
    } else {
        TR_FORWARD(trestle__vmm_map(e->mem, e->device, e->region, true, &e->mapping,
                                    (void **)&e->base, err));
    }
    rc = TRESTLE_OK;
fail:
    return call_done(rc, &reply, fds, nfds);
}

/* Drop entry `e`'s writable mapping (the server seals the memory: none may remain). */
static void unmap_entry(preload_entry *e)
{
    if (e->base && e->device < 0)
        munmap(e->base, (size_t)e->region);
    trestle__vmm_unmap(e->mapping);
    e->base = NULL;
    e->mapping = NULL;
}

/* Publish entry `e` with its manifest: the server's COMMIT_REPLY's replaced count. */
static int commit_entry(const char *path, preload_entry *e, bool verified,
                        trestle__wire_manifest *manifest, unsigned *replaced, trestle_error *err)
{
    trestle__wire_msg req, reply = { 0 };
    int fds[TRESTLE__WIRE_MAX_FDS], rc;
    unsigned nfds = 0;
    memset(&req, 0, sizeof req);
    req.type = TRESTLE__MSG_COMMIT;
    req.commit.entry_id = e->id;
    req.commit.verified = verified;
    req.commit.manifest = *manifest; /* shallow: the caller frees it */
    TR_FORWARD(trestle__resident_call(e->sock, path, &req, SERVER_WORK_TIMEOUT_MS, &reply, fds,
                                      &nfds, err));
    TR_FAIL_IF(reply.type != TRESTLE__MSG_COMMIT_REPLY, err, TRESTLE_E_SERVER,
               "server %s: replied to COMMIT with %s", path, trestle__wire_type_name(reply.type));
    *replaced += reply.commit_reply.replaced;
    rc = TRESTLE_OK;
fail:
    return call_done(rc, &reply, fds, nfds);
}

int trestle_preload(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                    const trestle_plan_options *popt, const trestle_preload_options *opt,
                    trestle_preload_info *info, trestle_error *err)
{
    trestle_preload_options o;
    trestle_restore_options ro;
    trestle__selection sel = { 0 };
    trestle__wire_manifest *manifests = NULL;
    preload_entry *en = NULL;
    size_t nen = 0;
    trestle_plan *fill = NULL;
    trestle_stats st;
    char path[TRESTLE__SOCKET_MAX];
    int devices[64];
    unsigned replaced = 0;
    int rc, tier;
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
    TR_FORWARD(entries_of(&o, &en, &nen, err));
    tier = en[0].device >= 0 ? TRESTLE__TIER_DEVICE : TRESTLE__TIER_HOST;
    TR_FORWARD(trestle__socket_resolve(o.socket_path, path, sizeof path, err));
    TR_FORWARD(trestle__selection_make(c, ops, n, popt, tier, en[0].device, &sel, err));
    TR_FAIL_IF(sel.unidentified[0], err, TRESTLE_E_IO, "cannot preload: %s", sel.unidentified);
    for (size_t i = 0; i < nen; i++)
        TR_FORWARD(alloc_entry(path, &sel, &en[i], err));

    /* One restore fills every entry: storage is read and CRC-checked once. */
    TR_FORWARD(fill_plan(c, &sel, popt, en, nen, &fill, err));
    ro.verify = 1;
    ro.device = en[0].device;
    ro.devices = NULL;
    ro.num_devices = 0;
    if (nen > 1) {
        for (size_t i = 0; i < nen; i++)
            devices[i] = en[i].device;
        ro.devices = devices;
        ro.num_devices = nen;
    }
    ro.host_map = 0;
    TR_FORWARD(trestle_restore(fill, &ro, &st, err));

    manifests = calloc(nen, sizeof *manifests);
    TR_FAIL_IF(!manifests, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nen; i++)
        TR_FORWARD(trestle__manifest_build(c, &sel, tier == TRESTLE__TIER_HOST ? en[i].base
                                                                                : NULL,
                                           fill, i * sel.kept, &manifests[i], err));
    for (size_t i = 0; i < nen; i++)
        unmap_entry(&en[i]);
    trestle_plan_free(fill);
    fill = NULL;
    for (size_t i = 0; i < nen; i++) {
        rc = commit_entry(path, &en[i], st.bytes_deferred == 0, &manifests[i], &replaced, err);
        if (rc != TRESTLE_OK && i > 0 && err) {
            /* Say what is resident already: the entries before this one are. */
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%.900s (CUDA device %d's entry is not resident; those "
                     "of the devices listed before it are)", err->message, en[i].device);
            memcpy(err->message, msg, sizeof msg);
        }
        if (rc != TRESTLE_OK)
            goto fail;
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->tensors = sel.kept;
        info->bytes = sel.data_bytes;
        for (size_t i = 0; i < nen; i++)
            info->memory_bytes += en[i].region;
        info->replaced = replaced;
        info->entries = (unsigned)nen;
        info->huge_pages = en[0].pages;
        info->stats = st;
        info->seconds = now_s() - t0;
    }
    rc = TRESTLE_OK;
fail:
    trestle_plan_free(fill);
    for (size_t i = 0; manifests && i < nen; i++)
        trestle__wire_manifest_free(&manifests[i]);
    free(manifests);
    for (size_t i = 0; en && i < nen; i++) {
        unmap_entry(&en[i]);
        if (en[i].mem >= 0)
            close(en[i].mem);
        if (en[i].sock >= 0)
            close(en[i].sock); /* unpublished: the server frees the memory */
    }
    free(en);
    trestle__selection_free(&sel);
    return rc;
}
