/*
 * many_model.c - write a bfloat16 checkpoint of N tensors and exactly
 * BYTES bytes of tensor data, for bench/many_tensors.sh: models of 300,
 * 20,000 and 100,000 tensors of the same bytes, so that what a tensor
 * costs shows apart from what a byte costs (issue 24). Every tensor has
 * the same size (a multiple of 64 bytes; the last one takes the rest), so
 * the tensor count is the only thing that differs; they are named like
 * `trestle synth`'s layers (model/layers.L/..., nine a layer), so that key
 * order and file order differ as they do there.
 *
 *   build/bench/trestle_many_model OUT_PREFIX N BYTES
 *
 * Public API only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trestle.h"

static void fill(uint16_t *p, uint64_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint16_t)(0x3c00 | (x & 0x03ff) | ((x >> 20) & 0x8000)); /* small finite bf16 */
    }
}

static int add(trestle_writer *w, const char *name, int rank, const int64_t *dims, uint16_t *buf,
               uint64_t seed)
{
    uint64_t n = 1;
    trestle_error err;
    for (int d = 0; d < rank; d++)
        n *= (uint64_t)dims[d];
    fill(buf, n, seed);
    if (trestle_writer_add(w, name, TRESTLE_DT_BFLOAT16, rank, dims, buf, n * 2, 0, &err) !=
        TRESTLE_OK) {
        fprintf(stderr, "trestle_many_model: %s\n", err.message);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const part[9] = {
        "input_layernorm/scale", "self_attn/q_proj/kernel", "self_attn/k_proj/kernel",
        "self_attn/v_proj/kernel", "self_attn/o_proj/kernel", "post_attention_layernorm/scale",
        "mlp/gate_proj/kernel", "mlp/up_proj/kernel", "mlp/down_proj/kernel",
    };
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUT_PREFIX N BYTES\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10), total = strtoull(argv[3], NULL, 10) / 2;
    uint64_t each = n ? total / n / 32 * 32 : 0; /* elements: a multiple of 64 bytes */
    if (n == 0 || each == 0) {
        fprintf(stderr, "trestle_many_model: %s tensors do not fit in %s bytes\n", argv[2],
                argv[3]);
        return 2;
    }
    uint64_t last = total - each * (n - 1);
    uint16_t *buf = malloc(last * 2 + 2);
    trestle_writer *w;
    trestle_error err;
    if (!buf || trestle_writer_create(argv[1], NULL, &w, &err) != TRESTLE_OK) {
        fprintf(stderr, "trestle_many_model: %s\n", buf ? err.message : "out of memory");
        return 1;
    }
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        char name[96];
        int64_t dims[1] = { (int64_t)(i + 1 < n ? each : last) };
        snprintf(name, sizeof name, "model/layers.%" PRIu64 "/%s", i / 9, part[i % 9]);
        rc = add(w, name, 1, dims, buf, i + 1);
    }
    if (rc == 0 && trestle_writer_finish(w, &err) != TRESTLE_OK) {
        fprintf(stderr, "trestle_many_model: %s\n", err.message);
        rc = -1;
    }
    trestle_writer_free(w);
    free(buf);
    if (rc == 0)
        printf("wrote %" PRIu64 " tensors of %" PRIu64 " bytes, %" PRIu64 " bytes in all, to %s\n",
               n, each * 2, total * 2, argv[1]);
    return rc == 0 ? 0 : 1;
}
