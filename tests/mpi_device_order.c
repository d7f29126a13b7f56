/*
 * mpi_device_order.c - an MPI program for tests/test_mpi_device.c (mock
 * builds with MPI): a group restore into device buffers that the caller
 * has just zeroed on its stream, from a thread without a CUDA context.
 *
 *   mpirun -np N mpi_device_order legacy|stream CKPT [GLOB:DIM]
 *
 * Each rank allocates a device buffer per tensor on its GPU
 * (trestle_group_local_device), queues cudaMemsetAsync(buf, 0) on the
 * legacy default stream or on a non-blocking stream of its own (not waited
 * for, so that only a wait for that very stream orders them), lets
 * go of its thread's context, and restores every tensor into the buffers
 * with trestle_group_restore, or with a shard rule its parts with
 * trestle_group_restore_parts (the buffers hold this rank's parts). Then
 * it checks that the thread still has no context, and reads every buffer
 * back against a host restore made in the same process: the bytes another
 * rank sent must land after the memset queued before the restore, never
 * under it. Prints "rank R/N: K tensors ok" or what went wrong; exits 1 on
 * any failure.
 */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trestle.h"
#include "trestle_mpi.h"

static CUresult ctx_get(CUcontext *c)
{
    void *fn = NULL;
    if (cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault,
                                         NULL) != cudaSuccess)
        return CUDA_ERROR_NOT_FOUND;
    return ((CUresult(CUDAAPI *)(CUcontext *))fn)(c);
}

static CUresult ctx_set(CUcontext c)
{
    void *fn = NULL;
    if (cudaGetDriverEntryPointByVersion("cuCtxSetCurrent", &fn, 12000, cudaEnableDefault,
                                         NULL) != cudaSuccess)
        return CUDA_ERROR_NOT_FOUND;
    return ((CUresult(CUDAAPI *)(CUcontext))fn)(c);
}

static int fail(int rank, const char *what, const char *detail)
{
    fprintf(stderr, "rank %d: %s%s%s\n", rank, what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int run(int rank, int size, const char *mode, const char *path, const char *rule)
{
    trestle_error err;
    trestle_group *g = NULL;
    trestle_checkpoint *ckpt = NULL;
    trestle_plan *host = NULL, *dev = NULL;
    int device = -1, bad = 0;
    /* With a rule, the host reference is this rank's parts. */
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    if (rule) {
        po.shard_rules = &rule;
        po.num_shard_rules = 1;
        po.shard_rank = rank;
        po.shard_world = size;
    }
    if (trestle_group_create(MPI_COMM_WORLD, &g, &err) != TRESTLE_OK ||
        trestle_group_local_device(g, &device, &err) != TRESTLE_OK ||
        trestle_open(path, NULL, &ckpt, &err) != TRESTLE_OK)
        return fail(rank, "setup", err.message);
    /* With a rule, only the tensors it splits: tensors restored whole
     * would give each rank copies of its own, which wait for the caller's
     * stream first and so would run the memsets before any part arrives. */
    size_t nt = trestle_tensor_count(ckpt), nwant = 0;
    trestle_op *want = calloc(nt ? nt : 1, sizeof *want);
    for (size_t i = 0; rule && i < nt; i++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(ckpt, i, &t);
        if (trestle_shard_rule_match(&rule, 1, t.name, NULL) >= 0)
            want[nwant++] = (trestle_op){ .name = t.name };
    }
    if (trestle_plan_create(ckpt, rule ? want : NULL, nwant, &po, &host, &err) != TRESTLE_OK ||
        trestle_restore(host, NULL, NULL, &err) != TRESTLE_OK)
        return fail(rank, "setup", err.message);
    free(want);

    size_t n = trestle_plan_op_count(host);
    trestle_op *ops = calloc(n, sizeof *ops);
    void **bufs = calloc(n, sizeof *bufs);
    cudaStream_t s = NULL;
    if (cudaSetDevice(device) != cudaSuccess ||
        (!strcmp(mode, "stream") &&
         cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess))
        return fail(rank, "cudaSetDevice or cudaStreamCreate", NULL);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(host, i, &o);
        if (cudaMalloc(&bufs[i], o.bytes ? o.bytes : 1) != cudaSuccess ||
            cudaMemsetAsync(bufs[i], 0, o.bytes, s) != cudaSuccess)
            return fail(rank, "cudaMalloc or cudaMemsetAsync", o.name);
        ops[i] = (trestle_op){ .name = o.name, .dest_kind = TRESTLE_DEST_DEVICE,
                               .ptr = bufs[i], .capacity = o.bytes };
    }
    /* The caller works through other threads: this one has no context. */
    CUcontext mine = NULL, now = NULL;
    ctx_get(&mine);
    ctx_set(NULL);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    ro.device = device;
    ro.cuda_stream = s;
    trestle_group_stats st;
    if (rule) {
        if (trestle_group_restore_parts(g, ckpt, ops, n, &po, &ro, &dev, &st, &err) !=
            TRESTLE_OK)
            return fail(rank, "trestle_group_restore_parts", err.message);
    } else {
        if (trestle_plan_create(ckpt, ops, n, NULL, &dev, &err) != TRESTLE_OK)
            return fail(rank, "plan", err.message);
        if (trestle_group_restore(g, dev, &ro, &st, &err) != TRESTLE_OK)
            return fail(rank, "trestle_group_restore", err.message);
    }
    if (ctx_get(&now) != CUDA_SUCCESS || now != NULL)
        bad = fail(rank, "the group restore left a CUDA context current in a thread that had "
                   "none", NULL);
    ctx_set(mine);
    /* The legacy stream of the reads below does not wait for a non-blocking
     * stream: run its memsets now, which land on the bytes unless the
     * exchange waited for them (a wait for the legacy stream would not do). */
    if (s && cudaStreamSynchronize(s) != cudaSuccess)
        return fail(rank, "cudaStreamSynchronize", NULL);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(host, i, &o);
        uint8_t *back = malloc(o.bytes ? o.bytes : 1);
        if (cudaMemcpy(back, bufs[i], o.bytes, cudaMemcpyDeviceToHost) != cudaSuccess ||
            memcmp(back, o.data, o.bytes) != 0)
            bad = fail(rank, "bytes differ from a host restore (the caller's memset landed on "
                       "them?)", o.name);
        free(back);
        cudaFree(bufs[i]);
    }
    if (!bad)
        printf("rank %d/%d: %zu tensors ok (%s%s%s, device %d, exchange %d, received %llu)\n",
               rank, size, n, mode, rule ? ", parts " : "", rule ? rule : "", device, st.exchange,
               (unsigned long long)st.bytes_received);
    if (s)
        cudaStreamDestroy(s);
    free(ops);
    free(bufs);
    trestle_plan_free(dev);
    trestle_plan_free(host);
    trestle_close(ckpt);
    trestle_group_free(g);
    return bad;
}

int main(int argc, char **argv)
{
    int rank = 0, size = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rc = argc == 3 || argc == 4
                 ? run(rank, size, argv[1], argv[2], argc == 4 ? argv[3] : NULL)
                 : fail(rank, "usage: mpi_device_order legacy|stream CKPT [GLOB:DIM]", NULL);
    fflush(stdout);
    MPI_Finalize();
    return rc;
}
