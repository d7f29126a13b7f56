/*
 * testutil.c - see testutil.h.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan.h"
#include "scratch_dir.h"
#include "slice.h"
#include "testutil.h"

const char *tu_shared_dir(void)
{
    const char *env = getenv("TRESTLE_SHARED");
    const char *dir = env && *env ? env : TRESTLE_SHARED_DIR;
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return dir;
    return NULL;
}

/* 1 when the environment says CI=true. */
static int tu_ci(void)
{
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

void tu_missing(const char *fmt, ...)
{
    char why[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (tu_ci())
        cr_assert_fail("%s, and CI=true promises it (.ci/run: ../shared beside the checkout)",
                       why);
    cr_skip_test("%s: skipping", why);
}

const char *tu_fixture(const char *rel)
{
    static char ring[8][4096];
    static int next;
    const char *dir = tu_shared_dir();
    if (!dir)
        tu_missing("../shared is absent (the real TensorFlow fixture %s)", rel);
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/fixtures/%s", dir, rel);
    return p;
}

const char *tu_fixture_present(const char *rel)
{
    const char *p = tu_fixture(rel);
    char index[4200];
    struct stat st;
    snprintf(index, sizeof index, "%s.index", p);
    if (stat(p, &st) != 0 && stat(index, &st) != 0)
        tu_missing("fixture %s is absent", p);
    return p;
}

trestle_checkpoint *tu_open(const char *path, const trestle_open_options *opt)
{
    trestle_checkpoint *c = NULL;
    trestle_error err;
    int rc = trestle_open(path, opt, &c, &err);
    cr_assert_eq(rc, TRESTLE_OK, "open %s: %s: %s", path, trestle_code_name(rc), err.message);
    cr_assert_not_null(c);
    return c;
}

trestle_plan *tu_plan(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                      const trestle_plan_options *opt)
{
    trestle_plan *p = NULL;
    trestle_error err;
    int rc = trestle_plan_create(c, ops, n, opt, &p, &err);
    if (rc != TRESTLE_OK) {
        char first[512] = "every tensor";
        trestle_checkpoint_info ci;
        if (ops && n)
            snprintf(first, sizeof first, "%zu ops, the first '%s' '%s'", n,
                     ops[0].name ? ops[0].name : "(null)",
                     ops[0].shape_and_slices ? ops[0].shape_and_slices : "");
        trestle_checkpoint_get_info(c, &ci);
        cr_assert_fail("plan of %s in %s: %s: %s", first, ci.prefix, trestle_code_name(rc),
                       err.message);
    }
    cr_assert_not_null(p);
    return p;
}

char *tu_mkdtemp(void)
{
    return scratch_dir_create("test");
}

void tu_rmtree(const char *path)
{
    scratch_dir_remove(path);
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        *len = (size_t)n;
    return buf;
}

void tu_assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *da = tu_read_file(a, &la), *db = tu_read_file(b, &lb);
    cr_assert_not_null(da, "%s", a);
    cr_assert_not_null(db, "%s", b);
    cr_assert_eq(la, lb, "%s is %zu bytes, %s is %zu", a, la, b, lb);
    /* One memcmp; the walk to the first difference only when there is one. */
    size_t i = memcmp(da, db, la) == 0 ? la : 0;
    while (i < la && da[i] == db[i])
        i++;
    cr_assert_eq(i, la, "%s and %s differ at byte %zu", a, b, i);
    free(da);
    free(db);
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

void tu_flip_byte(const char *path, size_t offset, uint8_t mask)
{
    size_t len = 0;
    uint8_t *data = tu_read_file(path, &len);
    cr_assert_not_null(data, "cannot read %s", path);
    cr_assert_lt(offset, len);
    data[offset] ^= mask;
    cr_assert_eq(tu_write_file(path, data, len), 0);
    free(data);
}

static char *slurp(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    rewind(f);
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    s[len] = '\0';
    return s;
}

int tu_run(const char *cmd, char **out, char **errout)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    if (!fo || !fe)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(fo), 1);
        dup2(fileno(fe), 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (out)
        *out = slurp(fo);
    if (errout)
        *errout = slurp(fe);
    fclose(fo);
    fclose(fe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

tu_cli_result tu_cli(const char *fmt, ...)
{
    char args[8192], cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s", TRESTLE_CLI_PATH, args);
    tu_cli_result r = { 0 };
    r.rc = tu_run(cmd, &r.out, &r.err);
    cr_assert_geq(r.rc, 0, "could not run: %s", cmd);
    return r;
}

void tu_cli_free(tu_cli_result *r)
{
    free(r->out);
    free(r->err);
}

int tu_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

uint64_t tu_rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

void tu_random_region(uint64_t *rng, int rank, int64_t maxdim, int64_t *dims,
                      struct trestle__region *r)
{
    for (;;) {
        for (int d = 0; d < rank; d++)
            dims[d] = 1 + (int64_t)(tu_rng_next(rng) % (uint64_t)maxdim);
        r->src.rank = r->dst.rank = rank;
        for (int d = 0; d < rank; d++) {
            trestle__slice *s[2] = { &r->src, &r->dst };
            for (int k = 0; k < 2; k++) {
                /* Full dims often, so runs merge across dims as in real slices. */
                if (tu_rng_next(rng) % 3 == 0) {
                    s[k]->start[d] = 0;
                    s[k]->length[d] = dims[d];
                } else {
                    s[k]->start[d] = (int64_t)(tu_rng_next(rng) % (uint64_t)dims[d]);
                    s[k]->length[d] =
                        1 + (int64_t)(tu_rng_next(rng) % (uint64_t)(dims[d] - s[k]->start[d]));
                }
            }
        }
        if (trestle__slice_intersect(&r->src, &r->dst, dims, &r->cut))
            break;
    }
    r->dims = dims;
}

void tu_ref_slice(const uint8_t *src, const int64_t *dims, int rank, const int64_t *start,
                  const int64_t *len, size_t es, uint8_t *dst)
{
    int64_t idx[8] = { 0 }, total = 1;
    for (int d = 0; d < rank; d++)
        total *= len[d];
    for (int64_t k = 0; k < total; k++) {
        int64_t off = 0;
        for (int d = 0; d < rank; d++)
            off = off * dims[d] + start[d] + idx[d];
        memcpy(dst + (size_t)k * es, src + (size_t)off * es, es);
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < len[d])
                break;
            idx[d] = 0;
        }
    }
}

void tu_fill_random(void *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24) | 1; /* never zero: zeros hide copy bugs */
    }
}

int tu_restore(trestle_plan *p, const trestle_restore_options *o, trestle_stats *st,
               trestle_error *err)
{
    int rc = trestle_restore(p, o, st, err);
    if (rc == TRESTLE_E_NO_IO_URING)
        cr_skip_test("io_uring unavailable here: %s", err ? err->message : "");
    return rc;
}

char *tu_write_mixed(const char *dir, int n, int shards)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    char *prefix;
    cr_assert(asprintf(&prefix, "%s/c", dir) > 0);
    trestle_writer_options_init(&wo);
    wo.num_shards = shards;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    for (int t = 0; t < n; t++) {
        int64_t dims[2] = { 16 + (t * 37) % 300, 64 + t % 5 };
        size_t bytes = (size_t)(dims[0] * dims[1]) * 4;
        uint8_t *buf = malloc(bytes);
        char name[48];
        tu_fill_random(buf, bytes, (uint64_t)t + 7);
        snprintf(name, sizeof name, "model/layer%02d/%s/kernel", t / 3,
                 t % 3 == 0 ? "attn" : t % 3 == 1 ? "mlp" : "norm");
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 2, dims, buf, bytes,
                                        t % shards, &err), TRESTLE_OK, "%s", err.message);
        free(buf);
    }
    float emb[50 * 8];
    tu_fill_random(emb, sizeof emb, 5);
    static const char *parts[] = { "50 8 0,17:-", "50 8 17,17:-", "50 8 34,16:-" };
    static const int rows[] = { 17, 17, 16 };
    for (int k = 0, at = 0; k < 3; at += rows[k], k++)
        cr_assert_eq(trestle_writer_add_slice(w, "model/emb", TRESTLE_DT_FLOAT, parts[k],
                                              emb + at * 8, (uint64_t)rows[k] * 8 * 4,
                                              k % shards, &err), TRESTLE_OK, "%s", err.message);
    trestle_bytes words[2] = { { (const uint8_t *)"read", 4 }, { (const uint8_t *)"once", 4 } };
    static const int64_t two = 2;
    cr_assert_eq(trestle_writer_add_strings(w, "model/vocab", 1, &two, words, 1 % shards, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

char *tu_write_gpu_model(const char *dir, int ntiny, uint64_t seed)
{
    trestle_error err;
    char *prefix;
    cr_assert(asprintf(&prefix, "%s/m", dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    trestle_writer *w;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    static const int64_t wdims[2] = { 300, 50 }, cdims[3] = { 6, 40, 33 }, bdims[2] = { 200, 30 };
    size_t wn = 300 * 50 * 4, cn = 6 * 40 * 33 * 4, tn = (size_t)ntiny * 16;
    uint8_t *data = malloc(wn + (cn > tn ? cn : tn));
    tu_fill_random(data, wn + (cn > tn ? cn : tn), seed);
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 2, wdims, data, wn, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(w, "cube", TRESTLE_DT_FLOAT, 3, cdims, data + wn, cn, 1, &err),
                 TRESTLE_OK, "%s", err.message);
    uint16_t *bf = malloc(200 * 30 * 2);
    for (int i = 0; i < 200 * 30; i++)
        bf[i] = (uint16_t)(0x3f80 + (i % 251) - 125); /* finite values around 1.0 */
    cr_assert_eq(trestle_writer_add(w, "bf", TRESTLE_DT_BFLOAT16, 2, bdims, bf, 200 * 30 * 2, 1,
                                    &err), TRESTLE_OK, "%s", err.message);
    free(bf);
    for (int i = 0; i < ntiny; i++) {
        char name[32];
        int64_t dims[1] = { 4 };
        snprintf(name, sizeof name, "tiny/%05d", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_INT32, 1, dims, data + 16 * i, 16,
                                        i % 2, &err), TRESTLE_OK, "%s", err.message);
    }
    free(data);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

trestle_checkpoint *tu_zero_checkpoint(char **dir, const tu_tensor *t, size_t n)
{
    char *prefix;
    trestle_writer *w;
    trestle_checkpoint *c;
    trestle_error err;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/c", *dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = trestle_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].rank; d++)
            bytes *= (uint64_t)t[i].dims[d];
        void *zeros = calloc(1, bytes ? bytes : 1);
        cr_assert_eq(trestle_writer_add(w, t[i].name, t[i].dtype, t[i].rank, t[i].dims, zeros,
                                        bytes, 0, &err), TRESTLE_OK, "%s", err.message);
        free(zeros);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    c = tu_open(prefix, NULL);
    free(prefix);
    return c;
}

/* ---- the options rule (include/trestle.h, "Options") ---- */

/* err's message is `prefix` then what snprintf makes of fmt. */
static void expect_message(const trestle_error *err, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void expect_message(const trestle_error *err, const char *prefix, const char *fmt, ...)
{
    char want[TRESTLE_ERROR_MESSAGE_MAX];
    size_t n = (size_t)snprintf(want, sizeof want, "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want + n, sizeof want - n, fmt, ap);
    va_end(ap);
    cr_expect_eq(err->code, TRESTLE_E_INVALID_ARG);
    cr_expect_str_eq(err->message, want);
}

void tu_check_options_rule(const tu_options_kind *k)
{
    union {
        max_align_t align;
        unsigned char b[512]; /* room for a newer caller's struct */
    } buf;
    trestle_error err;
    size_t *size = (size_t *)buf.b;

    cr_assert_eq(k->call(NULL, &err), k->accepted, "%s via %s: %s", k->name, k->via,
                 err.message);
    memset(&buf, 0, sizeof buf);
    k->init(buf.b);
    cr_expect_eq(*size, k->size);
    cr_assert_eq(k->call(buf.b, &err), k->accepted, "%s via %s: %s", k->name, k->via,
                 err.message);

    /* Every struct's first release is today's size (tests/test_options.c). */
    size_t smalls[] = { 0, sizeof(size_t), k->size - 1 };
    for (size_t i = 0; i < sizeof smalls / sizeof smalls[0]; i++) {
        *size = smalls[i];
        cr_assert_eq(k->call(buf.b, &err), TRESTLE_E_INVALID_ARG, "%s via %s: size %zu",
                     k->name, k->via, smalls[i]);
        expect_message(&err, k->prefix, "%s.size is %zu: smaller than the %zu bytes of its "
                       "first release; fill it with %s_init()", k->name, smalls[i], k->size,
                       k->name);
    }
    *size = 100000;
    cr_assert_eq(k->call(buf.b, &err), TRESTLE_E_INVALID_ARG, "%s via %s", k->name, k->via);
    expect_message(&err, k->prefix, "%s.size is 100000: larger than any options struct (4096 "
                   "bytes); fill it with %s_init()", k->name, k->name);

    /* A caller built against a newer header, leaving its new fields alone. */
    *size = k->size + 24;
    cr_assert_eq(k->call(buf.b, &err), k->accepted, "%s via %s: %s", k->name, k->via,
                 err.message);
    buf.b[k->size + 17] = 1;
    cr_assert_eq(k->call(buf.b, &err), TRESTLE_E_INVALID_ARG, "%s via %s", k->name, k->via);
    expect_message(&err, k->prefix, "%s.size is %zu and its byte %zu is not zero: an option "
                   "newer than the %zu bytes this library (trestle %s) knows", k->name,
                   k->size + 24, k->size + 17, k->size, TRESTLE_VERSION_STRING);
    buf.b[k->size + 17] = 0;
    *size = k->size;

    size_t slots = (k->size - k->reserved) / sizeof(void *);
    size_t first_last[] = { 0, slots - 1 };
    for (size_t j = 0; j < 2; j++) {
        void **slot = (void **)(buf.b + k->reserved) + first_last[j];
        *slot = &buf;
        cr_assert_eq(k->call(buf.b, &err), TRESTLE_E_INVALID_ARG, "%s via %s", k->name,
                     k->via);
        expect_message(&err, k->prefix, "%s.reserved[%zu] is not zero", k->name,
                       first_last[j]);
        *slot = NULL;
    }
}
