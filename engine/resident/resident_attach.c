/*
 * resident_attach.c - trestle_attach(): the tensors of a selection from the
 * server's memory when an entry of this version and selection is resident
 * there, checked against this process's own plan; else restored from
 * storage, saying why.
 *
 * The plan comes first and does not depend on the server: it is what the
 * attach checks the entry's manifest against, and what it restores from
 * storage when nothing resident fits. Every way the server can fail to
 * give a usable entry (none running, this process refused, not resident,
 * a changed checkpoint, a manifest or memory that fails the checks) ends
 * in the restore from storage, with the reason in trestle_attach_info.note,
 * unless the caller required a resident entry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cuda_host.h"
#include "error.h"
#include "memfd_tier.h"
#include "resident.h"
#include "vmm_tier.h"

typedef struct att_op {
    char *name;              /* owned */
    char *key;               /* owned; NULL when skipped */
    int skipped;
    int dtype, out_dtype;
    int rank;
    int64_t *dims;           /* owned */
    uint64_t bytes;
    void *data;
    int device;
} att_op;

struct trestle_attachment {
    att_op *ops;
    size_t n;
    trestle_attach_info info;
    int sock;                /* resident: the connection that holds the reference */
    void *map;               /* host tier: the read-only mapping */
    uint64_t map_bytes;
    void *vmm;               /* device tier: the mapping (vmm_tier.h) */
    trestle_arena *arena;    /* from storage: the restored tensors */
    void *copied;            /* an event after the copies into the caller's device buffers
                                (they read the mapping or the arena: waited for before
                                either goes), or NULL */
    int copied_device;
};

void trestle_attach_options_init(trestle_attach_options *opt)
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

/* The plan's ops, copied so that the attachment outlives the plan. */
static int copy_ops(trestle_attachment *a, const trestle_plan *p, trestle_error *err)
{
    a->n = trestle_plan_op_count(p);
    a->ops = calloc(a->n ? a->n : 1, sizeof *a->ops);
    if (!a->ops)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < a->n; i++) {
        trestle_plan_op_info op;
        att_op *o = &a->ops[i];
        trestle_plan_get_op(p, i, &op);
        o->name = strdup(op.name);
        o->key = op.key ? strdup(op.key) : NULL;
        o->skipped = op.skipped;
        o->dtype = op.dtype;
        o->out_dtype = op.out_dtype;
        o->rank = op.skipped ? 0 : op.rank;
        o->dims = calloc(o->rank ? (size_t)o->rank : 1, sizeof *o->dims);
        o->bytes = op.bytes;
        o->device = -1;
        if (!o->name || (op.key && !o->key) || !o->dims)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        if (o->rank)
            memcpy(o->dims, op.dims, (size_t)o->rank * sizeof *o->dims);
    }
    return TRESTLE_OK;
}

/*
 * Map the entry the server has for `s`, checked: TRESTLE_OK with the
 * attachment's data pointers set and its connection kept; otherwise a
 * code and `err` saying why nothing resident is used (TRESTLE_E_NOT_RESIDENT
 * when the server answered that it has no such entry).
 */
static int map_resident(trestle_attachment *a, const trestle_checkpoint *c,
                        const trestle__selection *s, const trestle_attach_options *o,
                        trestle_error *err)
{
    char path[TRESTLE__SOCKET_MAX], what[TRESTLE__SOCKET_MAX + 16];
    trestle__wire_msg req, reply = { 0 };
    int sock = -1, fds[TRESTLE__WIRE_MAX_FDS], mem = -1, rc;
    unsigned nfds = 0;
    uint8_t *base = NULL;

    TR_FORWARD(trestle__socket_resolve(o->socket_path, path, sizeof path, err));
    snprintf(what, sizeof what, "server %s", path);
    TR_FAIL_IF(s->unidentified[0], err, TRESTLE_E_NOT_RESIDENT, "which version of the files "
               "this is cannot be told: %s", s->unidentified);
    TR_FORWARD(trestle__resident_connect(path, &sock, err));
    memset(&req, 0, sizeof req);
    req.type = TRESTLE__MSG_ATTACH;
    req.attach.key = s->key;
    TR_FORWARD(trestle__resident_call(sock, path, &req, TRESTLE__RESIDENT_TIMEOUT_MS, &reply, fds,
                                      &nfds, err));
    if (reply.type == TRESTLE__MSG_NOT_RESIDENT) {
        rc = trestle__error_simple(err, TRESTLE_E_NOT_RESIDENT, "%s",
                                   reply.not_resident.message);
        goto fail;
    }
    TR_FAIL_IF(reply.type != TRESTLE__MSG_ATTACH_REPLY || nfds != 1, err, TRESTLE_E_SERVER,
               "%s: replied to ATTACH with %s", what, trestle__wire_type_name(reply.type));
    mem = fds[0];
    nfds = 0;
    const trestle__wire_entry *e = &reply.attach_reply.entry;
    TR_FAIL_IF(e->key.tier != s->key.tier || e->key.device != s->key.device ||
                   e->key.digest != s->key.digest ||
                   !trestle__wire_identity_equal(&e->key.id, &s->key.id),
               err, TRESTLE_E_CORRUPT, "%s: sent an entry for another version, selection or "
               "tier than asked", what);
    TR_FORWARD(trestle__manifest_check(c, s, &reply.attach_reply.manifest, e->region_bytes, what,
                                       err));
    if (s->key.tier == TRESTLE__TIER_HOST) {
        TR_FORWARD(trestle__memfd_check_sealed(mem, e->region_bytes, what, err));
        base = trestle__memfd_map(mem, e->region_bytes, false);
        TR_FAIL_IF(!base, err, TRESTLE_E_NOMEM, "mapping %llu bytes of resident memory: %s",
                   (unsigned long long)e->region_bytes, strerror(errno));
        a->map = base;
        a->map_bytes = e->region_bytes;
        if (o->verify)
            TR_FORWARD(trestle__manifest_verify(&reply.attach_reply.manifest, base, what, err));
    } else {
        TR_FORWARD(trestle__vmm_map(mem, o->device, e->region_bytes, false, &a->vmm,
                                    (void **)&base, err));
    }
    for (size_t i = 0; i < a->n; i++)
        if (!a->ops[i].skipped) {
            a->ops[i].data = base + s->offsets[i];
            a->ops[i].device = s->key.tier == TRESTLE__TIER_HOST ? -1 : o->device;
        }
    close(mem);
    trestle__wire_msg_free(&reply);
    a->sock = sock; /* the reference: kept until trestle_attachment_free() */
    return TRESTLE_OK;
fail:
    if (a->map)
        munmap(a->map, (size_t)a->map_bytes);
    a->map = NULL;
    trestle__vmm_unmap(a->vmm);
    a->vmm = NULL;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (mem >= 0)
        close(mem);
    if (sock >= 0)
        close(sock);
    trestle__wire_msg_free(&reply);
    return rc;
}

/* The caller's restore options (for the restore from storage, and the
 * stream of copies into its buffers), read by the options rule. */
static int restore_options(const trestle_attach_options *o, trestle_restore_options *ro,
                           trestle_error *err)
{
    trestle_restore_options_init(ro);
    return o->restore ? TRESTLE__OPTIONS_READ(trestle_restore_options, ro, o->restore,
                                              TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, err)
                      : TRESTLE_OK;
}

/* Nothing resident fits: restore the plan from storage into engine memory. */
static int from_storage(trestle_attachment *a, trestle_plan *p, const trestle_attach_options *o,
                        trestle_error *err)
{
    trestle_restore_options ro;
    int rc;
    TR_FORWARD(restore_options(o, &ro, err));
    if (o->device >= 0)
        ro.device = o->device;
    TR_FORWARD(trestle_restore(p, &ro, &a->info.stats, err));
    for (size_t i = 0; i < a->n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(p, i, &op);
        a->ops[i].data = op.data;
        a->ops[i].device = op.device;
    }
    trestle_plan_adopt_arena(p, &a->arena);
    return TRESTLE_OK;
fail:
    return rc;
}

/* The caller's device buffers (ops given TRESTLE_DEST_DEVICE) get their
 * tensors, mapped or restored on the attach's device, by device-to-device
 * copies queued on the caller's stream (restore options' cuda_stream), as
 * a restore's copies wait for what that stream holds; the tensors' data
 * then points at the caller's buffers. */
static int copy_to_callers(trestle_attachment *a, const trestle_op *ops, size_t n,
                           const trestle_attach_options *o, trestle_error *err)
{
    trestle_restore_options ro;
    int rc;
    TR_FORWARD(restore_options(o, &ro, err));
    size_t last = n;
    for (size_t i = 0; i < n; i++)
        if (ops[i].dest_kind == TRESTLE_DEST_DEVICE && !a->ops[i].skipped && a->ops[i].bytes)
            last = i;
    for (size_t i = 0; i < n && last < n; i++) {
        att_op *t = &a->ops[i];
        if (ops[i].dest_kind != TRESTLE_DEST_DEVICE || t->skipped)
            continue;
        if (t->bytes)
            TR_FORWARD(trestle__cuda_copy_queued(o->device, ops[i].ptr, t->data, t->bytes,
                                                 ro.cuda_stream, i == last ? &a->copied : NULL,
                                                 err));
        t->data = ops[i].ptr;
        int dev = o->device;
        trestle__cuda_pointer_device(ops[i].ptr, &dev);
        t->device = dev;
    }
    a->copied_device = o->device;
    return TRESTLE_OK;
fail:
    return rc;
}

/* An op's destination that the attach takes: engine memory (mapped or
 * restored), or with a device, the caller's device memory, big enough. */
static int check_dest(const trestle_op *op, size_t i, const att_op *t, int device,
                      trestle_error *err)
{
    if (op->dest_kind == TRESTLE_DEST_ALLOCATE)
        return TRESTLE_OK;
    if (op->dest_kind != TRESTLE_DEST_DEVICE || device < 0)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "trestle_attach: op %zu ('%s') "
                                     "is neither TRESTLE_DEST_ALLOCATE nor, with a device, "
                                     "TRESTLE_DEST_DEVICE: resident tensors are mapped, or "
                                     "copied into the caller's device memory", i,
                                     op->name ? op->name : "");
    if (t->skipped || ((op->ptr || t->bytes == 0) && op->capacity >= t->bytes))
        return TRESTLE_OK;
    return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, t->name, NULL, -1,
                              (int64_t)t->bytes, "tensor %s: destination %s%llu bytes, but the "
                              "attach needs %llu bytes", t->name,
                              op->ptr ? "holds " : "is NULL with capacity ",
                              (unsigned long long)op->capacity, (unsigned long long)t->bytes);
}

int trestle_attach(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                   const trestle_plan_options *popt, const trestle_attach_options *opt,
                   trestle_attachment **out, trestle_error *err)
{
    trestle_attach_options o;
    trestle__selection sel = { 0 };
    trestle_attachment *a = NULL;
    trestle_error why;
    double t0 = now_s();
    int rc;

    TR_FAIL_IF(!out || !c, err, TRESTLE_E_INVALID_ARG, "trestle_attach: %s is NULL",
               out ? "the checkpoint" : "out");
    *out = NULL;
    trestle_attach_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_attach_options, &o, opt,
                                     TRESTLE__ATTACH_OPTIONS_FIRST_SIZE, err));
    bool to_callers = false;
    for (size_t i = 0; ops && i < n; i++) {
        if (ops[i].dest_kind != TRESTLE_DEST_DEVICE)
            TR_FORWARD(check_dest(&ops[i], i, NULL, o.device, err));
        to_callers |= ops[i].dest_kind == TRESTLE_DEST_DEVICE;
    }
    TR_FAIL_IF(to_callers && o.device < 0, err, TRESTLE_E_INVALID_ARG, "trestle_attach: ops "
               "with TRESTLE_DEST_DEVICE need a device (trestle_attach_options.device): "
               "resident tensors are copied into them from that device's tier");
    int tier = o.device >= 0 ? TRESTLE__TIER_DEVICE : TRESTLE__TIER_HOST;
    TR_FORWARD(trestle__selection_make(c, ops, n, popt, tier, o.device, &sel, err));
    a = calloc(1, sizeof *a);
    TR_FAIL_IF(!a, err, TRESTLE_E_NOMEM, "out of memory");
    a->sock = -1;
    TR_FORWARD(copy_ops(a, sel.plan, err));
    for (size_t i = 0; to_callers && i < n; i++)
        TR_FORWARD(check_dest(&ops[i], i, &a->ops[i], o.device, err));
    a->info.tensors = sel.kept;
    a->info.bytes = sel.data_bytes;
    a->info.device = -1;
    trestle_error_clear(&why);
    rc = map_resident(a, c, &sel, &o, &why);
    if (rc == TRESTLE_OK) {
        a->info.resident = 1;
        a->info.tier = tier;
        a->info.device = tier == TRESTLE__TIER_HOST ? -1 : o.device;
    } else if (o.require_resident) {
        if (err) {
            *err = why;
            err->code = TRESTLE_E_NOT_RESIDENT;
        }
        rc = TRESTLE_E_NOT_RESIDENT;
        goto fail;
    } else {
        /* The reason, cut to the note's size if need be. */
        size_t len = strnlen(why.message, sizeof a->info.note - 1);
        memcpy(a->info.note, why.message, len);
        a->info.note[len] = '\0';
        TR_FORWARD(from_storage(a, sel.plan, &o, err));
        a->info.device = o.device;
    }
    if (to_callers)
        TR_FORWARD(copy_to_callers(a, ops, n, &o, err));
    a->info.seconds = now_s() - t0;
    trestle__selection_free(&sel);
    *out = a;
    return TRESTLE_OK;
fail:
    trestle__selection_free(&sel);
    trestle_attachment_free(a);
    return rc;
}

size_t trestle_attachment_op_count(const trestle_attachment *a)
{
    return a ? a->n : 0;
}

int trestle_attachment_get_op(const trestle_attachment *a, size_t i, trestle_plan_op_info *out)
{
    if (!a || !out || i >= a->n)
        return trestle__error_simple(NULL, TRESTLE_E_INVALID_ARG, "bad argument");
    const att_op *o = &a->ops[i];
    memset(out, 0, sizeof *out);
    out->name = o->name;
    out->key = o->key;
    out->skipped = o->skipped;
    out->dtype = o->dtype;
    out->rank = o->rank;
    out->dims = o->dims;
    out->bytes = o->bytes;
    out->data = o->data;
    out->out_dtype = o->out_dtype;
    out->device = o->device;
    return TRESTLE_OK;
}

void trestle_attachment_get_info(const trestle_attachment *a, trestle_attach_info *out)
{
    if (!out)
        return;
    if (!a) {
        memset(out, 0, sizeof *out);
        out->device = -1;
        return;
    }
    *out = a->info;
}

void trestle_attachment_free(trestle_attachment *a)
{
    if (!a)
        return;
    /* Copies into the caller's buffers read what goes now. */
    trestle__cuda_done_wait(a->copied_device, a->copied);
    if (a->map)
        munmap(a->map, (size_t)a->map_bytes);
    trestle__vmm_unmap(a->vmm);
    trestle_arena_free(a->arena);
    if (a->sock >= 0)
        close(a->sock); /* the server counts one client less */
    for (size_t i = 0; a->ops && i < a->n; i++) {
        free(a->ops[i].name);
        free(a->ops[i].key);
        free(a->ops[i].dims);
    }
    free(a->ops);
    free(a);
}
