/*
 * test_serve_device.c - the device tier of `trestle serve` on the CUDA
 * mock (tests/cudamock/cudamock_vmm.c: CUDA VMM across processes): the
 * server creates and exports device memory without ever making a CUDA
 * context; a preload in one process fills it; an attach in another maps
 * it read-only and reads the bytes a host restore gives; a write through
 * that mapping fails (illegal address) and changes nothing; the mapping
 * outlives a killed server; a cap and another device are refused or
 * explained; the CLI preloads a device list; the caller's device buffers
 * get the tensors by copies on its stream.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "servetest.h"
#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "testcuda.h"

#define NTINY 40

static void preload_on(const char *sock, const char *path, int device)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_preload_options po;
    trestle_preload_info info;
    trestle_error err;
    trestle_preload_options_init(&po);
    po.socket_path = sock;
    po.device = device;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, &info, &err), TRESTLE_OK, "%s",
                 err.message);
    cr_assert_eq(info.tensors, (size_t)NTINY + 3);
    trestle_close(c);
}

static int attach_on(const char *sock, const char *path, int device, trestle_attachment **out,
                     trestle_error *err)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_attach_options ao;
    trestle_attach_options_init(&ao);
    ao.socket_path = sock;
    ao.device = device;
    ao.require_resident = 1;
    int rc = trestle_attach(c, NULL, 0, NULL, &ao, out, err);
    trestle_close(c);
    return rc;
}

/* FNV-1a of every tensor's bytes, read back from the device. */
static uint64_t device_checksum(const trestle_attachment *a)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < trestle_attachment_op_count(a); i++) {
        trestle_plan_op_info op;
        trestle_attachment_get_op(a, i, &op);
        if (op.skipped)
            continue;
        uint8_t *b = malloc(op.bytes ? op.bytes : 1);
        CUDA_OK(cudaMemcpy(b, op.data, op.bytes, cudaMemcpyDeviceToHost));
        for (uint64_t k = 0; k < op.bytes; k++)
            h = (h ^ b[k]) * 1099511628211ull;
        free(b);
    }
    return h;
}

/* Run `fn` in a child process: its exit status. */
static int in_child(int (*fn)(const char *, const char *, uint64_t), const char *sock,
                    const char *path, uint64_t want)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(sock, path, want));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (status %d)", status);
    return WEXITSTATUS(status);
}

static int child_reads(const char *sock, const char *path, uint64_t want)
{
    trestle_attachment *a;
    trestle_attach_info info;
    if (attach_on(sock, path, 0, &a, NULL) != TRESTLE_OK)
        return 1;
    trestle_attachment_get_info(a, &info);
    if (!info.resident || info.tier != TRESTLE_TIER_DEVICE || info.device != 0)
        return 2;
    trestle_plan_op_info op;
    trestle_attachment_get_op(a, 0, &op);
    if (op.device != 0)
        return 3;
    return device_checksum(a) == want ? 0 : 4;
}

Test(serve_device, a_preload_in_one_process_is_read_in_another)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 7);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    setenv("TRESTLE_CUDAMOCK_STATS", "1", 1); /* the server prints its counters at exit */
    st_server s;
    st_start(&s, dir, NULL);
    unsetenv("TRESTLE_CUDAMOCK_STATS");
    preload_on(s.sock, ck, 0);
    cr_assert_eq(in_child(child_reads, s.sock, ck, want), 0);
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_entry e;
    cr_assert_eq(trestle_resident_list_get(l, 0, &e), TRESTLE_OK);
    cr_assert_eq(e.tier, TRESTLE_TIER_DEVICE);
    cr_assert_eq(e.device, 0);
    cr_assert_eq(e.memory_bytes % (2u << 20), 0, "VMM memory comes in whole granules");
    trestle_resident_list_free(l);
    cr_assert_eq(st_stop(&s), 0);
    /* The server created and exported device memory with no context of its own. */
    char *log = st_log(&s);
    cr_assert(strstr(log, "cudamock: ") && strstr(log, ", primary_contexts 0, vmm_creates 1, "
                                                       "vmm_exports 1, vmm_imports 0"),
              "%s", log);
    free(log);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

static int child_writes(const char *sock, const char *path, uint64_t want)
{
    (void)want;
    trestle_attachment *a;
    if (attach_on(sock, path, 0, &a, NULL) != TRESTLE_OK)
        return 1;
    trestle_plan_op_info op;
    trestle_attachment_get_op(a, 1, &op);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof junk);
    cudaError_t e = cudaMemcpy(op.data, junk, op.bytes < 64 ? op.bytes : 64,
                               cudaMemcpyHostToDevice);
    /* The copy faults when it runs, as on a GPU: the device's sticky error. */
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    cudamock_stats st;
    cudamock_get_stats(&st);
    return e == cudaErrorIllegalAddress && st.vmm_access_faults == 1 ? 0 : 2;
}

Test(serve_device, a_write_through_a_read_only_mapping_fails_and_changes_nothing)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 8);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);
    preload_on(s.sock, ck, 0);
    cr_assert_eq(in_child(child_writes, s.sock, ck, 0), 0, "the write was not refused");
    cr_assert_eq(in_child(child_reads, s.sock, ck, want), 0, "the bytes changed");
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_device, the_mapping_outlives_a_killed_server)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 9);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);
    preload_on(s.sock, ck, 1);
    trestle_attachment *a;
    trestle_error err;
    cr_assert_eq(attach_on(s.sock, ck, 1, &a, &err), TRESTLE_OK, "%s", err.message);
    st_kill9(&s);
    cr_assert_eq(device_checksum(a), want);
    trestle_attachment_free(a);
    cudamock_stats st;
    cudamock_get_stats(&st);
    cr_assert_eq(st.vmm_maps_live, 0, "trestle_attachment_free unmaps");
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_device, another_device_and_a_cap_are_explained)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 10);
    const char *extra[] = { "--device-cap", "3M", NULL };
    st_server s;
    st_start(&s, dir, extra);
    preload_on(s.sock, ck, 1);
    trestle_attachment *a;
    trestle_error err;
    cr_assert_eq(attach_on(s.sock, ck, 0, &a, &err), TRESTLE_E_NOT_RESIDENT);
    char want[600];
    snprintf(want, sizeof want, "%s is resident on the device tier (CUDA device 1), not the "
             "device tier (CUDA device 0)", ck);
    cr_assert_str_eq(err.message, want);
    /* Device 0's cap has room for one such entry; a second selection on it does not fit
     * while the first is attached. */
    preload_on(s.sock, ck, 0);
    cr_assert_eq(attach_on(s.sock, ck, 0, &a, &err), TRESTLE_OK, "%s", err.message);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle_preload_options po;
    trestle_preload_options_init(&po);
    po.socket_path = s.sock;
    po.device = 0;
    trestle_op one = { .name = "w" };
    cr_assert_eq(trestle_preload(c, &one, 1, NULL, &po, NULL, &err), TRESTLE_E_NOMEM);
    cr_assert(strstr(err.message, ": device tier (CUDA device 0): the checkpoint needs "),
              "%s", err.message);
    trestle_close(c);
    trestle_attachment_free(a);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_device, the_cli_preloads_a_device_list)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 11);
    st_server s;
    st_start(&s, dir, NULL);
    tu_cli_result r = tu_cli("preload '%s' --device 0,1 --socket '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, " onto the device tier of GPU 0 of "), "%s", r.out);
    cr_assert(strstr(r.out, " onto the device tier of GPU 1 of "), "%s", r.out);
    cr_assert(strstr(r.out, "\nread ") && strstr(r.out, " from storage once for 2 GPUs in "),
              "one read for both GPUs: %s", r.out);
    tu_cli_free(&r);
    r = tu_cli("preload --list --socket '%s'", s.sock);
    cr_assert(strstr(r.out, "  device 0  ") && strstr(r.out, "  device 1  "), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --device 1 --server '%s'", ck, s.sock);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "(resident on the device tier, mapped read-only; nothing read from "
                            "storage)"), "%s", r.out);
    tu_cli_free(&r);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Bytes this process has read through read(2)/pread(2) so far (/proc/self/io's
 * rchar, every thread): storage reads by a pread reader, counted by the kernel. */
static uint64_t process_rchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    unsigned long long v = 0;
    char line[128];
    cr_assert(f, "/proc/self/io");
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* The bytes of a checkpoint's data files. */
static uint64_t data_file_bytes(const char *path)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_checkpoint_info ci;
    uint64_t sum = 0;
    trestle_checkpoint_get_info(c, &ci);
    for (int i = 0; i < ci.num_shards; i++) {
        char f[4096];
        struct stat st;
        snprintf(f, sizeof f, "%s.data-%05d-of-%05d", path, i, ci.num_shards);
        cr_assert_eq(stat(f, &st), 0, "%s", f);
        sum += (uint64_t)st.st_size;
    }
    trestle_close(c);
    return sum;
}

/*
 * The "the same planner and pipeline run: read once, CRC-checked"
 * for a device list: one preload onto GPUs 0 and 1 reads the checkpoint
 * from storage once, not once per device (the kernel's count of bytes
 * read agrees), checks it once, and each device's entry, with its own
 * manifest, attaches with the bytes a plain restore gives. Before, each
 * device had a preload of its own, reading and checking everything again.
 */
Test(serve_device, a_device_list_is_read_from_storage_once)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 13);
    uint64_t want = st_restore_checksum(ck, NULL, 0), stored = data_file_bytes(ck);
    st_server s;
    st_start(&s, dir, NULL);
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle_preload_options po;
    trestle_restore_options ro;
    trestle_preload_info info;
    trestle_error err;
    int devices[] = { 0, 1 };
    trestle_preload_options_init(&po);
    trestle_restore_options_init(&ro);
    ro.reader = TRESTLE_READER_PREAD; /* counted in rchar, as io_uring's reads are not */
    po.socket_path = s.sock;
    po.devices = devices;
    po.num_devices = 2;
    po.restore = &ro;
    uint64_t rchar0 = process_rchar();
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, &info, &err), TRESTLE_OK, "%s",
                 err.message);
    uint64_t rchar = process_rchar() - rchar0;
    trestle_close(c);
    cr_assert_eq(info.entries, 2);
    cr_assert_eq(info.tensors, (size_t)NTINY + 3);
    cr_assert_eq(info.stats.bytes_read, stored, "storage read once: %" PRIu64 " of %" PRIu64
                 " stored bytes", info.stats.bytes_read, stored);
    cr_assert_eq(info.stats.bytes_verified, stored, "and CRC-checked once");
    cr_assert_eq(info.stats.bytes_copied, 2 * info.bytes, "copied to each device");
    cr_assert_geq(rchar, stored, "the kernel counted %" PRIu64 " bytes read", rchar);
    cr_assert_lt(rchar, stored + stored / 2, "the kernel counted %" PRIu64 " bytes read for %"
                 PRIu64 " stored: read more than once", rchar, stored);

    trestle_resident_list *l = st_list(s.sock);
    cr_assert_eq(trestle_resident_list_count(l), 2);
    for (size_t i = 0; i < 2; i++) {
        trestle_resident_entry e;
        cr_assert_eq(trestle_resident_list_get(l, i, &e), TRESTLE_OK);
        cr_assert_eq(e.tier, TRESTLE_TIER_DEVICE);
        cr_assert(e.verified);
        cr_assert_eq(e.tensors, (size_t)NTINY + 3);
    }
    trestle_resident_list_free(l);
    for (int d = 0; d < 2; d++) {
        trestle_attachment *a;
        trestle_attach_info ai;
        cr_assert_eq(attach_on(s.sock, ck, d, &a, &err), TRESTLE_OK, "device %d: %s", d,
                     err.message);
        trestle_attachment_get_info(a, &ai);
        cr_assert(ai.resident && ai.tier == TRESTLE_TIER_DEVICE && ai.device == d);
        trestle_plan_op_info op;
        trestle_attachment_get_op(a, 0, &op);
        cr_assert_eq(op.device, d);
        cr_assert_eq(device_checksum(a), want, "device %d's bytes are a plain restore's", d);
        trestle_attachment_free(a);
    }
    cr_assert_eq(st_stop(&s), 0);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* A device list is checked before anything is asked of the server. */
Test(serve_device, a_bad_device_list_is_refused)
{
    trestle_checkpoint *c;
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, 2, 14);
    trestle_preload_options po;
    trestle_error err;
    int twice[] = { 1, 1 }, other[] = { 0, 1 };
    c = tu_open(ck, NULL);
    trestle_preload_options_init(&po);
    po.socket_path = "/nonexistent/s.sock";
    po.devices = twice;
    po.num_devices = 2;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "trestle_preload: device 1 is listed twice");
    po.devices = other;
    po.device = 1;
    cr_assert_eq(trestle_preload(c, NULL, 0, NULL, &po, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "trestle_preload: device is 1 but devices[0] is 0 (with a "
                                  "device list, device must be -1 or devices[0])");
    trestle_close(c);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* FNV-1a of the caller's buffers, as device_checksum of an attachment. */
static uint64_t buffers_checksum(const trestle_op *ops, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint8_t *b = malloc(ops[i].capacity ? ops[i].capacity : 1);
        CUDA_OK(cudaMemcpy(b, ops[i].ptr, ops[i].capacity, cudaMemcpyDeviceToHost));
        for (uint64_t k = 0; k < ops[i].capacity; k++)
            h = (h ^ b[k]) * 1099511628211ull;
        free(b);
    }
    return h;
}

static void zero_buffers(const trestle_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CUDA_OK(cudaMemset(ops[i].ptr, 0, ops[i].capacity ? ops[i].capacity : 1));
    CUDA_OK(cudaDeviceSynchronize()); /* the legacy stream does not order a non-blocking one */
}

/* Ops with the caller's device buffers (TRESTLE_DEST_DEVICE): every
 * buffer of `a`'s ops, zeroed, one op per tensor of `c`. */
static trestle_op *device_ops(const trestle_checkpoint *c, size_t *n)
{
    trestle_plan *p;
    trestle_error err;
    cr_assert_eq(trestle_plan_create(c, NULL, 0, NULL, &p, &err), TRESTLE_OK, "%s", err.message);
    *n = trestle_plan_op_count(p);
    trestle_op *ops = calloc(*n, sizeof *ops);
    for (size_t i = 0; i < *n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(p, i, &op);
        ops[i].name = strdup(op.name);
        ops[i].dest_kind = TRESTLE_DEST_DEVICE;
        ops[i].capacity = op.bytes;
        CUDA_OK(cudaMalloc(&ops[i].ptr, op.bytes ? op.bytes : 1));
    }
    zero_buffers(ops, *n);
    trestle_plan_free(p);
    return ops;
}

static int attach_into(const char *sock, const char *path, const trestle_op *ops, size_t n,
                       void *stream, int require, trestle_attachment **out, trestle_error *err)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_attach_options ao;
    trestle_restore_options ro;
    trestle_attach_options_init(&ao);
    trestle_restore_options_init(&ro);
    ro.cuda_stream = stream;
    ao.socket_path = sock;
    ao.device = 0;
    ao.require_resident = require;
    ao.restore = &ro;
    int rc = trestle_attach(c, ops, n, NULL, &ao, out, err);
    trestle_close(c);
    return rc;
}

/* The "device-to-device copies into the caller's own buffers, on
 * the caller's stream": queued there (the mock runs a stream's work only
 * when something waits for that stream), the resident tensors' bytes once
 * it is synchronised, whether resident or restored from storage. */
Test(serve_device, device_buffers_get_copies_on_the_callers_stream)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_gpu_model(dir, NTINY, 12);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);
    preload_on(s.sock, ck, 0);
    trestle_checkpoint *c = tu_open(ck, NULL);
    size_t n;
    trestle_op *ops = device_ops(c, &n);
    trestle_close(c);
    cudaStream_t st;
    CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    trestle_attachment *a;
    trestle_error err;
    cr_assert_eq(attach_into(s.sock, ck, ops, n, st, 1, &a, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_attach_info info;
    trestle_attachment_get_info(a, &info);
    cr_assert_eq(info.resident, 1);
    trestle_plan_op_info op;
    trestle_attachment_get_op(a, 1, &op);
    cr_assert_eq(op.data, ops[1].ptr, "the tensor is the caller's buffer");
    /* Not yet copied: the copy waits on the caller's stream. */
    uint8_t b[16], zero[16] = { 0 };
    size_t k = op.bytes < sizeof b ? op.bytes : sizeof b;
    CUDA_OK(cudaMemcpy(b, op.data, k, cudaMemcpyDeviceToHost));
    cr_assert_eq(memcmp(b, zero, k), 0, "the copy ran before the caller's stream did");
    CUDA_OK(cudaStreamSynchronize(st));
    cr_assert_eq(device_checksum(a), want);
    trestle_attachment_free(a);
    /* Freed before the stream ran: the free waits for the copies, which
     * read the mapping it drops. */
    zero_buffers(ops, n);
    cr_assert_eq(attach_into(s.sock, ck, ops, n, st, 1, &a, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_attachment_free(a);
    cudamock_stats ms;
    cudamock_get_stats(&ms);
    cr_assert_eq(ms.vmm_maps_live, 0);
    CUDA_OK(cudaStreamSynchronize(st));
    cr_assert_eq(buffers_checksum(ops, n), want);

    /* Not resident (evicted): restored from storage, copied the same way. */
    zero_buffers(ops, n);
    cr_assert_eq(trestle_resident_evict(s.sock, ck, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(attach_into(s.sock, ck, ops, n, st, 0, &a, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_attachment_get_info(a, &info);
    cr_assert_eq(info.resident, 0);
    CUDA_OK(cudaStreamSynchronize(st));
    cr_assert_eq(device_checksum(a), want);
    trestle_attachment_free(a);

    /* A buffer too small, and a host destination, are refused by name. */
    ops[1].capacity--;
    cr_assert_eq(attach_into(s.sock, ck, ops, n, st, 0, &a, &err), TRESTLE_E_INVALID_ARG);
    char msg[600];
    snprintf(msg, sizeof msg, "tensor %s: destination holds %llu bytes, but the attach needs "
             "%llu bytes", ops[1].name, (unsigned long long)ops[1].capacity,
             (unsigned long long)ops[1].capacity + 1);
    cr_assert_str_eq(err.message, msg);
    ops[1].capacity++;
    ops[1].dest_kind = TRESTLE_DEST_HOST;
    cr_assert_eq(attach_into(s.sock, ck, ops, n, st, 0, &a, &err), TRESTLE_E_INVALID_ARG);
    snprintf(msg, sizeof msg, "trestle_attach: op 1 ('%s') is neither TRESTLE_DEST_ALLOCATE nor, "
             "with a device, TRESTLE_DEST_DEVICE: resident tensors are mapped, or copied into "
             "the caller's device memory", ops[1].name);
    cr_assert_str_eq(err.message, msg);
    for (size_t i = 0; i < n; i++) {
        CUDA_OK(cudaFree(ops[i].ptr));
        free((char *)ops[i].name);
    }
    free(ops);
    CUDA_OK(cudaStreamDestroy(st));
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

#else /* !TRESTLE_CUDA_MOCK */

Test(serve_device, needs_the_cuda_mock)
{
    cr_skip_test("the device tier's tests run on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON)");
}

#endif
