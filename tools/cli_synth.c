/*
 * cli_synth.c - `trestle synth`: write a synthetic LLM-shaped checkpoint of
 * a chosen size, for benchmarks and end-to-end tests.
 *
 * Tensors (see cli_synth_model.c) go round-robin over the shards through
 * the library's writer, so the files are what TensorFlow would write.
 * Contents are pseudo-random and deterministic per --seed: floats are
 * small finite weights (norms near 1), never NaN or zero, so a restore that
 * drops or misplaces bytes shows up in a diff or a stats line.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_SYNTH_LAYERS 100000 /* 900,002 tensors: far past any real model */

static const char synth_help[] =
    "Usage: trestle synth OUT_PREFIX --size SIZE [OPTIONS]\n"
    "\n"
    "Write a synthetic checkpoint OUT_PREFIX.index + OUT_PREFIX.data-*-of-* with\n"
    "LLM-like tensors: a Llama-style decoder (model/embed_tokens/embedding,\n"
    "model/layers.N/self_attn/{q,k,v,o}_proj/kernel, model/layers.N/mlp/\n"
    "{gate,up,down}_proj/kernel, layer norms, model/norm/scale) whose full shapes\n"
    "([4096,14336] MLP kernels, 32 layers) shrink to fit SIZE. Tensors are spread\n"
    "round-robin over the shards; contents are random but never all zero.\n"
    "Prints one summary line.\n"
    "\n"
    "Options:\n"
    "      --size SIZE    upper bound on the tensor bytes (required); K, M, G, T\n"
    "                     suffixes are binary (64M = 64 MiB)\n"
    "      --shards N     number of data files (default 1)\n"
    "      --dtype DTYPE  element type (default bfloat16): bf16, half (fp16),\n"
    "                     float (fp32), double, float8_e4m3fn (fp8), float8_e5m2,\n"
    "                     int8, int32, ... (TensorFlow names)\n"
    "      --seed S       random seed (default 1); the same seed gives the same bytes\n"
    "      --align N      pad each tensor in its shard to N bytes (default 1, as\n"
    "                     TensorFlow); e.g. 4096 for O_DIRECT-friendly layouts\n"
    "      --layers N     exactly N decoder layers (9 tensors each, plus 2), the\n"
    "                     hidden size shrinking to fit SIZE: many small tensors,\n"
    "                     e.g. --layers 2222 gives 20,000 tensors\n"
    "  -h, --help         show this help\n"
    "\n"
    "Examples:\n"
    "  trestle synth /tmp/llm/ckpt --size 2G --shards 8\n"
    "  trestle synth bench/small --size 64M --shards 2 --dtype float --seed 7\n"
    "  trestle synth /mnt/nvme/big --size 16G --shards 16 --align 4096\n";

/* ---- pseudo-random contents ---- */

/* splitmix64: tiny, fast, and good enough to make bytes look like data. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*
 * Fill `n` elements of `dtype`. Floats are built from their bit fields:
 * weights get exponents for magnitudes in [2^-8, 1) and a random sign,
 * norms get [1, 2), so no value is NaN, inf or zero in any float format.
 */
static void fill(void *buf, uint64_t n, int dtype, int is_norm, uint64_t seed)
{
    size_t es = trestle_dtype_size(dtype);
    uint8_t *p = buf;
    int ebits, mbits, bias;
    uint64_t s = seed;

    if (!cli_float_layout(dtype, &ebits, &mbits, &bias)) {
        for (uint64_t i = 0; i < n * es; i += 8) {
            uint64_t r = next_random(&s);
            size_t k = n * es - i < 8 ? (size_t)(n * es - i) : 8;
            memcpy(p + i, &r, k);
        }
        if (dtype == TRESTLE_DT_BOOL)
            for (uint64_t i = 0; i < n; i++)
                p[i] &= 1; /* TF's bools are 0 or 1 */
        if (n)
            p[0] |= 1; /* never all zero */
        return;
    }
    int lo = bias - 8 < 1 ? 1 : bias - 8, span = bias - lo; /* exponents lo .. bias-1 */
    uint64_t mmask = mbits >= 64 ? ~0ull : (1ull << mbits) - 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = next_random(&s);
        uint64_t e = is_norm ? (uint64_t)bias : (uint64_t)(lo + (int)((r >> 58) % (uint64_t)span));
        uint64_t sign = is_norm ? 0 : (r >> 57) & 1;
        uint64_t bits = (sign << (ebits + mbits)) | (e << mbits) | (r & mmask);
        switch (es) {
        case 1: p[i] = (uint8_t)bits; break;
        case 2: { uint16_t v = (uint16_t)bits; memcpy(p + 2 * i, &v, 2); break; }
        case 4: { uint32_t v = (uint32_t)bits; memcpy(p + 4 * i, &v, 4); break; }
        default: memcpy(p + 8 * i, &bits, 8); break;
        }
    }
}

/* ---- writing ---- */

typedef struct synth_args {
    const char *prefix;
    uint64_t size;
    int shards;
    int dtype;
    uint64_t seed;
    uint32_t align;
    int layers;        /* --layers, or 0: as SIZE allows */
} synth_args;

/* Interrupted: a half-written checkpoint is no checkpoint; remove its files. */
static void remove_partial(void *arg)
{
    const synth_args *a = arg;
    char path[4200];
    for (int s = 0; s < a->shards; s++) {
        snprintf(path, sizeof path, "%s.data-%05d-of-%05d", a->prefix, s, a->shards);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s.index", a->prefix);
    unlink(path);
}

static int write_model(const synth_args *a, const cli_synth_model *m, uint64_t *written)
{
    size_t es = trestle_dtype_size(a->dtype);
    size_t n = cli_synth_model_count(m);
    trestle_writer_options wo;
    trestle_writer *w = NULL;
    trestle_error err;
    void *buf = NULL;
    uint64_t cap = 0;
    int status = CLI_EXIT_FAIL;

    trestle_error_clear(&err);
    trestle_writer_options_init(&wo);
    wo.num_shards = a->shards;
    wo.alignment = a->align;
    if (trestle_writer_create(a->prefix, &wo, &w, &err) != TRESTLE_OK)
        return cli_fail(&err);
    *written = 0;
    cli_signals_push_cleanup(remove_partial, (void *)a);
    for (size_t i = 0; i < n; i++) {
        cli_synth_tensor t;
        if (i == 1)
            cli_signals_test_pause("synth");
        if (cli_interrupted())
            goto done;
        cli_synth_model_tensor(m, i, &t);
        uint64_t elems = 1;
        for (int d = 0; d < t.rank; d++)
            elems *= (uint64_t)t.dims[d];
        uint64_t bytes = elems * es;
        if (bytes > cap) {
            free(buf);
            cap = bytes;
            buf = malloc((size_t)cap);
            if (!buf) {
                cli_error("out of memory for tensor %s (%" PRIu64 " bytes)", t.name, bytes);
                goto done;
            }
        }
        /* Seed per tensor: contents do not depend on the shard count. */
        fill(buf, elems, a->dtype, t.is_norm, a->seed * 0x100000001b3ull + i);
        if (trestle_writer_add(w, t.name, a->dtype, t.rank, t.dims, buf, bytes,
                               (int)(i % (size_t)a->shards), &err) != TRESTLE_OK) {
            cli_fail(&err);
            goto done;
        }
        *written += bytes;
    }
    if (trestle_writer_finish(w, &err) != TRESTLE_OK) {
        cli_fail(&err);
        goto done;
    }
    status = CLI_EXIT_OK;
done:
    trestle_writer_free(w);
    free(buf);
    if (status != CLI_EXIT_OK && cli_interrupted())
        remove_partial((void *)a);
    cli_signals_pop_cleanup();
    return status;
}

static int parse_dtype(const char *s)
{
    static const struct { const char *alias; int dtype; } aliases[] = {
        { "bf16", TRESTLE_DT_BFLOAT16 }, { "fp16", TRESTLE_DT_HALF },
        { "f16", TRESTLE_DT_HALF },      { "fp32", TRESTLE_DT_FLOAT },
        { "f32", TRESTLE_DT_FLOAT },     { "fp64", TRESTLE_DT_DOUBLE },
        { "fp8", TRESTLE_DT_FLOAT8_E4M3FN },
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(s, aliases[i].alias) == 0)
            return aliases[i].dtype;
    int dt = trestle_dtype_from_name(s);
    return cli_dtype_is_real(dt) ? dt : TRESTLE_DT_INVALID;
}

int cli_synth_main(int argc, char **argv)
{
    enum { OPT_SIZE = 256, OPT_SHARDS, OPT_DTYPE, OPT_SEED, OPT_ALIGN, OPT_LAYERS };
    static const struct option longopts[] = {
        { "size", required_argument, NULL, OPT_SIZE },
        { "shards", required_argument, NULL, OPT_SHARDS },
        { "dtype", required_argument, NULL, OPT_DTYPE },
        { "seed", required_argument, NULL, OPT_SEED },
        { "align", required_argument, NULL, OPT_ALIGN },
        { "layers", required_argument, NULL, OPT_LAYERS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    synth_args a = { .shards = 1, .dtype = TRESTLE_DT_BFLOAT16, .seed = 1, .align = 1 };
    int have_size = 0, c;
    long long v;

    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SIZE:
            if (cli_parse_size(optarg, &a.size) != 0 || a.size == 0)
                return cli_usage("synth", "--size wants a size such as 64M or 2G, not '%s'",
                                 optarg);
            have_size = 1;
            break;
        case OPT_SHARDS:
            if (cli_parse_int(optarg, 1, 99999, &v) != 0)
                return cli_usage("synth", "--shards wants a number from 1 to 99999, not '%s'",
                                 optarg);
            a.shards = (int)v;
            break;
        case OPT_DTYPE:
            a.dtype = parse_dtype(optarg);
            if (a.dtype == TRESTLE_DT_INVALID)
                return cli_usage("synth", "--dtype wants a numeric dtype such as bf16, half, "
                                 "float or int8, not '%s'", optarg);
            break;
        case OPT_SEED:
            if (cli_parse_int(optarg, 0, INT64_MAX, &v) != 0)
                return cli_usage("synth", "--seed wants a non-negative integer, not '%s'", optarg);
            a.seed = (uint64_t)v;
            break;
        case OPT_ALIGN:
            if (cli_parse_int(optarg, 1, 1 << 30, &v) != 0)
                return cli_usage("synth", "--align wants a byte count such as 4096, not '%s'",
                                 optarg);
            a.align = (uint32_t)v;
            break;
        case OPT_LAYERS:
            if (cli_parse_int(optarg, 1, MAX_SYNTH_LAYERS, &v) != 0)
                return cli_usage("synth", "--layers wants a number from 1 to %d, not '%s'",
                                 MAX_SYNTH_LAYERS, optarg);
            a.layers = (int)v;
            break;
        case 'h': fputs(synth_help, stdout); return CLI_EXIT_OK;
        default: return cli_bad_option("synth", argv, c);
        }
    }
    if (argc == optind)
        return cli_usage("synth", "missing OUT_PREFIX");
    if (argc - optind > 1)
        return cli_usage("synth", "expected one OUT_PREFIX, got %d arguments", argc - optind);
    if (!have_size)
        return cli_usage("synth", "--size is required (e.g. --size 64M)");
    a.prefix = argv[optind];

    cli_synth_model m;
    uint64_t min_bytes = 0, written = 0;
    char want[32], got[32];
    cli_human_size(a.size, want, sizeof want);
    if (cli_synth_model_fit(a.size, trestle_dtype_size(a.dtype), a.layers, &m, &min_bytes) != 0) {
        cli_human_size(min_bytes, got, sizeof got);
        return cli_usage("synth", "--size %s is too small: the smallest %s model%s takes %s",
                         want, trestle_dtype_name(a.dtype), a.layers ? " of that many layers" : "",
                         got);
    }
    int status = write_model(&a, &m, &written);
    if (status != CLI_EXIT_OK)
        return status;
    cli_human_size(written, got, sizeof got);
    size_t n = cli_synth_model_count(&m);
    printf("wrote %zu tensors, %s in %d shard%s to %s (%s; hidden %" PRId64 ", %d layer%s, "
           "vocab %" PRId64 ")\n",
           n, got, a.shards, a.shards == 1 ? "" : "s", a.prefix, trestle_dtype_name(a.dtype),
           m.hidden, m.layers, m.layers == 1 ? "" : "s", m.vocab);
    return CLI_EXIT_OK;
}
