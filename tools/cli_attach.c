/*
 * cli_attach.c - `trestle restore PATH --server S`: the tensors from a
 * `trestle serve` server's memory when they are resident there, mapped
 * read-only; otherwise a note saying why, and the restore from storage
 * goes ahead as without --server (tools/cli_restore.c). A missing server
 * is never by itself a failure.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trestle_serve.h"

/* "fnv1a64 HASH  NAME" per tensor and the model's, exactly as
 * `restore --checksum` prints them, so the two can be compared. */
static void print_checksums(const trestle_attachment *at)
{
    uint64_t chain = CLI_FNV1A_BASIS;
    size_t n = 0;
    for (size_t i = 0; i < trestle_attachment_op_count(at); i++) {
        trestle_plan_op_info op;
        trestle_attachment_get_op(at, i, &op);
        if (op.skipped)
            continue;
        uint64_t h = cli_fnv1a(CLI_FNV1A_BASIS, op.data, op.bytes);
        chain = cli_fnv1a(chain, op.data, op.bytes);
        printf("fnv1a64 %016" PRIx64 "  %s\n", h, op.name);
        n++;
    }
    printf("fnv1a64 %016" PRIx64 "  (whole model: %zu tensor%s in op order)\n", chain, n,
           n == 1 ? "" : "s");
}

static int attached_op(const void *src, size_t i, trestle_plan_op_info *out)
{
    return trestle_attachment_get_op(src, i, out);
}

const char *cli_socket_arg(const char *arg)
{
    return arg && strcmp(arg, "default") != 0 ? arg : NULL;
}

int cli_attach_restore(const cli_attach_req *r, const trestle_checkpoint *ckpt,
                       const trestle_op *ops, size_t n, const trestle_plan_options *popt)
{
    trestle_attach_options ao;
    trestle_attachment *at = NULL;
    trestle_attach_info info;
    trestle_error err;
    char socket[256], bytes[32];

    trestle_attach_options_init(&ao);
    ao.socket_path = cli_socket_arg(r->server);
    ao.device = r->device;
    ao.require_resident = 1; /* restoring from storage is the caller's, as without --server */
    int rc = trestle_attach(ckpt, ops, n, popt, &ao, &at, &err);
    if (rc == TRESTLE_E_NOT_RESIDENT) {
        fprintf(stderr, "trestle: not resident: %s; restoring from storage\n", err.message);
        return CLI_ATTACH_FALLBACK;
    }
    if (rc != TRESTLE_OK)
        return cli_fail(&err);
    trestle_attachment_get_info(at, &info);
    if (!ao.socket_path)
        trestle_server_default_socket(socket, sizeof socket, NULL);
    else
        snprintf(socket, sizeof socket, "%s", ao.socket_path);
    cli_human_size(info.bytes, bytes, sizeof bytes);
    if (r->json) {
        printf("{\"path\": ");
        cli_json_cstr(stdout, r->path);
        printf(", \"server\": ");
        cli_json_cstr(stdout, socket);
        printf(", \"resident\": true, \"tier\": \"%s\", \"device\": %d, \"tensors\": %zu, "
               "\"bytes\": %" PRIu64 ", \"attach_seconds\": %.6f}\n",
               info.tier == TRESTLE_TIER_HOST ? "host" : "device", info.device, info.tensors,
               info.bytes, info.seconds);
    } else {
        if (r->list && cli_op_table(at, trestle_attachment_op_count(at), attached_op) != 0) {
            trestle_attachment_free(at);
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
        if (!r->quiet)
            printf("attached %zu tensor%s, %s from the trestle server on %s in %.4f s (resident "
                   "on the %s tier, mapped read-only; nothing read from storage)\n",
                   info.tensors, info.tensors == 1 ? "" : "s", bytes, socket, info.seconds,
                   info.tier == TRESTLE_TIER_HOST ? "host" : "device");
        if (r->checksum && info.device < 0)
            print_checksums(at);
        else if (r->checksum)
            cli_error("--checksum: device-tier tensors are not read back here");
    }
    trestle_attachment_free(at);
    return r->checksum && info.device >= 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
