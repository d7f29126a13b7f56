/*
 * cli_synth_model.c - the tensor list of a synthetic LLM checkpoint, for
 * `trestle synth`.
 *
 * The shapes are a Llama-3-8B-like decoder (hidden 4096, MLP 14336, 8 KV
 * heads of 32, vocabulary 128256, 32 layers) so that a synthetic restore
 * sees the same mix of a few huge and many mid-sized and tiny tensors as a
 * real one. To fit a requested size the hidden size shrinks first (keeping
 * the ratios), then the layer count; above full size, layers are added.
 * A caller that fixes the layer count (synth --layers, e.g. 2222 layers for
 * a 20,000-tensor model) gets the widest hidden size that fits it.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define FULL_HIDDEN 4096
#define FULL_LAYERS 32
#define MAX_LAYERS 4096   /* bound on growth for very large --size */
#define TENSORS_PER_LAYER 9

static void shape_for(int64_t hidden, int layers, cli_synth_model *m)
{
    m->hidden = hidden;
    m->ffn = hidden * 7 / 2;
    m->kv = hidden / 4;
    m->vocab = hidden * 501 / 16; /* 4096 -> 128256 */
    m->layers = layers;
}

size_t cli_synth_model_count(const cli_synth_model *m)
{
    return 2 + (size_t)m->layers * TENSORS_PER_LAYER;
}

void cli_synth_model_tensor(const cli_synth_model *m, size_t i, cli_synth_tensor *out)
{
    static const struct {
        const char *path;  /* under model/layers.N/ */
        char rows, cols;   /* h = hidden, f = ffn, k = kv, 0 = rank 1 */
    } layer[TENSORS_PER_LAYER] = {
        { "input_layernorm/scale", 'h', 0 },
        { "self_attn/q_proj/kernel", 'h', 'h' },
        { "self_attn/k_proj/kernel", 'h', 'k' },
        { "self_attn/v_proj/kernel", 'h', 'k' },
        { "self_attn/o_proj/kernel", 'h', 'h' },
        { "post_attention_layernorm/scale", 'h', 0 },
        { "mlp/gate_proj/kernel", 'h', 'f' },
        { "mlp/up_proj/kernel", 'h', 'f' },
        { "mlp/down_proj/kernel", 'f', 'h' },
    };
    size_t n = cli_synth_model_count(m);
    memset(out, 0, sizeof *out);
    if (i == 0) {
        snprintf(out->name, sizeof out->name, "model/embed_tokens/embedding");
        out->rank = 2;
        out->dims[0] = m->vocab;
        out->dims[1] = m->hidden;
        return;
    }
    if (i == n - 1) {
        snprintf(out->name, sizeof out->name, "model/norm/scale");
        out->rank = 1;
        out->dims[0] = m->hidden;
        out->is_norm = 1;
        return;
    }
    size_t l = (i - 1) / TENSORS_PER_LAYER, k = (i - 1) % TENSORS_PER_LAYER;
    snprintf(out->name, sizeof out->name, "model/layers.%zu/%s", l, layer[k].path);
    char sym[2] = { layer[k].rows, layer[k].cols };
    out->rank = sym[1] ? 2 : 1;
    for (int d = 0; d < out->rank; d++)
        out->dims[d] = sym[d] == 'f' ? m->ffn : sym[d] == 'k' ? m->kv : m->hidden;
    out->is_norm = !sym[1];
}

uint64_t cli_synth_model_elements(const cli_synth_model *m)
{
    uint64_t h = (uint64_t)m->hidden, f = (uint64_t)m->ffn, k = (uint64_t)m->kv;
    uint64_t per_layer = 2 * h + 2 * h * h + 2 * h * k + 3 * h * f;
    return (uint64_t)m->vocab * h + h + (uint64_t)m->layers * per_layer;
}

static int fits(int64_t hidden, int layers, size_t esize, uint64_t size, cli_synth_model *m)
{
    cli_synth_model t;
    shape_for(hidden, layers, &t);
    if (cli_synth_model_elements(&t) * esize > size)
        return 0;
    *m = t;
    return 1;
}

int cli_synth_model_fit(uint64_t size, size_t esize, int layers, cli_synth_model *m,
                        uint64_t *min_bytes)
{
    /* Widest model first, in steps that keep every dimension a multiple of 16. */
    for (int64_t h = FULL_HIDDEN; h >= 64; h -= 64) {
        if (fits(h, layers ? layers : FULL_LAYERS, esize, size, m)) {
            while (!layers && h == FULL_HIDDEN && m->layers < MAX_LAYERS &&
                   fits(h, m->layers + 1, esize, size, m)) {
            }
            return 0;
        }
    }
    for (int l = FULL_LAYERS - 1; !layers && l >= 1; l--)
        if (fits(64, l, esize, size, m))
            return 0;
    for (int64_t h = 48; h >= 16; h -= 16)
        if (fits(h, layers ? layers : 1, esize, size, m))
            return 0;
    cli_synth_model smallest;
    shape_for(16, layers ? layers : 1, &smallest);
    *min_bytes = cli_synth_model_elements(&smallest) * esize;
    return -1;
}
