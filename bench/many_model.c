/*
 * many_model.c - write a bfloat16 checkpoint of about N tensors and exactly
 * BYTES bytes of tensor data, shaped like `trestle synth` models (a
 * Llama-style decoder: 9 tensors a layer, an embedding and a final norm),
 * for bench/many_tensors.sh: models of 300, 20,000 and 100,000 tensors of
 * the same bytes, so that what a tensor costs shows apart from what a byte
 * costs (issue 24).
 *
 *   build/bench/trestle_many_model OUT_PREFIX N BYTES
 *
 * The layers are as wide as fit (a hidden size that is a multiple of 16);
 * the embedding takes the bytes left, and the final norm the last few.
 * Public API only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trestle.h"

/* Elements of one layer of hidden size h: two norms, q and o (h x h), k
 * and v (h x h/4), gate, up and down (h x 7h/2). */
static uint64_t layer_elements(uint64_t h)
{
    return 2 * h + 2 * h * h + 2 * h * (h / 4) + 3 * h * (h * 7 / 2);
}

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
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUT_PREFIX N BYTES\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10), total = strtoull(argv[3], NULL, 10) / 2;
    uint64_t layers = n > 2 ? (n - 2) / 9 : 0, h = 0;
    for (uint64_t c = 16; layers * layer_elements(c) + c <= total; c += 16)
        h = c;
    if (layers == 0 || h == 0) {
        fprintf(stderr, "trestle_many_model: %" PRIu64 " tensors do not fit in %s bytes\n", n,
                argv[3]);
        return 2;
    }
    uint64_t left = total - layers * layer_elements(h) - h, vocab = left / h;
    uint64_t norm = h + left % h; /* the final norm takes what the embedding cannot */
    uint64_t biggest = vocab * h > h * h * 7 / 2 ? vocab * h : h * h * 7 / 2;
    uint16_t *buf = malloc((biggest > norm ? biggest : norm) * 2 + 2);
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    trestle_writer_options_init(&wo);
    if (!buf || trestle_writer_create(argv[1], &wo, &w, &err) != TRESTLE_OK) {
        fprintf(stderr, "trestle_many_model: %s\n", buf ? err.message : "out of memory");
        return 1;
    }
    static const struct {
        const char *path;
        int rows, cols; /* 1: h, 2: h/4, 3: 7h/2, 0: none */
    } layer[9] = {
        { "input_layernorm/scale", 1, 0 },     { "self_attn/q_proj/kernel", 1, 1 },
        { "self_attn/k_proj/kernel", 1, 2 },   { "self_attn/v_proj/kernel", 1, 2 },
        { "self_attn/o_proj/kernel", 1, 1 },   { "post_attention_layernorm/scale", 1, 0 },
        { "mlp/gate_proj/kernel", 1, 3 },      { "mlp/up_proj/kernel", 1, 3 },
        { "mlp/down_proj/kernel", 3, 1 },
    };
    int64_t size_of[4] = { 0, (int64_t)h, (int64_t)(h / 4), (int64_t)(h * 7 / 2) };
    int64_t emb[2] = { (int64_t)vocab, (int64_t)h }, fin[1] = { (int64_t)norm };
    int rc = vocab ? add(w, "model/embed_tokens/embedding", 2, emb, buf, 1) : 0;
    uint64_t count = vocab ? 1 : 0;
    for (uint64_t l = 0; rc == 0 && l < layers; l++)
        for (int k = 0; rc == 0 && k < 9; k++) {
            char name[96];
            int64_t dims[2] = { size_of[layer[k].rows], size_of[layer[k].cols] };
            snprintf(name, sizeof name, "model/layers.%" PRIu64 "/%s", l, layer[k].path);
            rc = add(w, name, layer[k].cols ? 2 : 1, dims, buf, l * 9 + (uint64_t)k + 2);
            count++;
        }
    if (rc == 0)
        rc = add(w, "model/norm/scale", 1, fin, buf, 7);
    count++;
    if (rc == 0 && trestle_writer_finish(w, &err) != TRESTLE_OK) {
        fprintf(stderr, "trestle_many_model: %s\n", err.message);
        rc = -1;
    }
    trestle_writer_free(w);
    free(buf);
    if (rc == 0)
        printf("wrote %" PRIu64 " tensors, %" PRIu64 " bytes (hidden %" PRIu64 ", %" PRIu64
               " layers) to %s\n", count, total * 2, h, layers, argv[1]);
    return rc == 0 ? 0 : 1;
}
