/*
 * testmpi.c - what the MPI suites (tests/test_mpi*.c) share: see testmpi.h.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testmpi.h"
#include "testutil.h"

const char *tm_tool(void)
{
    if (!TRESTLE_MPI_PATH[0] || access(TRESTLE_MPI_PATH, X_OK) != 0 || !TRESTLE_MPIEXEC[0])
        cr_skip("MPI was not found at build time: libtrestle_mpi and trestle-mpi are not built "
                "(install libopenmpi-dev openmpi-bin, scripts/deps.sh does)");
    return TRESTLE_MPI_PATH;
}

int tm_mpirun_sub(const char *t, int np, const char *env, const char *sub, const char *args,
                  char **out, char **err)
{
    char *cmd;
    /* Under ASan (scripts/check.sh asan) the ranks check leaks, except Open
     * MPI's own, which it keeps past MPI_Finalize on purpose; its plugins
     * stay loaded so that the suppressions can name their frames. */
    cr_assert(asprintf(&cmd, "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                             "OMPI_MCA_mca_base_component_disable_dlclose=1 "
                             "LSAN_OPTIONS=suppressions=%s/tests/lsan_mpi.supp:"
                             "print_suppressions=0 "
                             "ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\" "
                             "%s timeout 120 %s --oversubscribe -np %d %s %s %s",
                       TRESTLE_SOURCE_DIR, env ? env : "", TRESTLE_MPIEXEC, np, t, sub,
                       args) > 0);
    int rc = tu_run(cmd, out, err);
    free(cmd);
    return rc;
}

int tm_mpirun_prog(const char *t, int np, const char *env, const char *args, char **out,
                   char **err)
{
    return tm_mpirun_sub(t, np, env, "restore", args, out, err);
}

int tm_mpirun(int np, const char *env, const char *args, char **out, char **err)
{
    return tm_mpirun_prog(tm_tool(), np, env, args, out, err);
}

int tm_mpirun_per_rank(int np, const char *head, const char *tail, const char *args, char **out,
                       char **err)
{
    /* A shell per rank puts its rank into the path, then becomes trestle-mpi:
     * $0 the program, $1 and $2 the path around the rank, the rest ARGS. */
    char *prog, *sub;
    cr_assert(asprintf(&prog, "sh -c 'p=$0 h=$1 t=$2; shift 2; exec \"$p\" restore "
                              "\"$h${OMPI_COMM_WORLD_RANK:-$PMI_RANK}$t\" \"$@\"' '%s'",
                       tm_tool()) > 0);
    cr_assert(asprintf(&sub, "'%s' '%s'", head, tail) > 0);
    int rc = tm_mpirun_sub(prog, np, NULL, sub, args, out, err);
    free(prog);
    free(sub);
    return rc;
}

uint64_t tm_fnv(uint64_t h, const uint8_t *p, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        h = (h ^ p[k]) * 1099511628211ull;
    return h;
}

uint64_t tm_reference(const char *path, const trestle_op *ops, size_t n,
                      const char *const *renames, size_t nrenames, uint64_t *extent_bytes,
                      uint64_t *max_extent)
{
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = nrenames;
    c = tu_open(path, NULL);
    p = tu_plan(c, ops, n, &po);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    uint64_t h = TM_FNV0;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(p, i, &o);
        if (o.data)
            h = tm_fnv(h, o.data, o.bytes);
    }
    if (extent_bytes) {
        *extent_bytes = *max_extent = 0;
        for (size_t e = 0; e < trestle_plan_extent_count(p); e++) {
            trestle_plan_extent_info x;
            trestle_plan_get_extent(p, e, &x);
            *extent_bytes += x.size;
            if (x.size > *max_extent)
                *max_extent = x.size;
        }
    }
    trestle_plan_free(p);
    trestle_close(c);
    return h;
}

void tm_parse_ranks(const char *out, int np, tm_rank_line *lines)
{
    memset(lines, 0, (size_t)np * sizeof *lines);
    for (const char *s = out; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int r, n, node = -1, device = -1;
        uint64_t w, p, b;
        if (sscanf(s, "rank %d/%d checksum: whole %" SCNx64 " parts %" SCNx64 " read %" SCNu64
                   " node %d device %d", &r, &n, &w, &p, &b, &node, &device) >= 5) {
            cr_assert(n == np && r >= 0 && r < np, "bad line: %.80s", s);
            cr_assert(!lines[r].seen, "rank %d printed twice", r);
            lines[r] = (tm_rank_line){ 1, w, p, b, node, device };
        }
    }
    for (int r = 0; r < np; r++)
        cr_assert(lines[r].seen, "rank %d printed no checksum line in:\n%s", r, out);
}

char *tm_make_multishard(char **dir)
{
    *dir = tu_mkdtemp();
    return tu_write_mixed(*dir, 30, 3);
}

void tm_free_tp(tm_tp_fixture *f)
{
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

void tm_make_tp(tm_tp_fixture *f)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    f->dir = tu_mkdtemp();
    cr_assert(asprintf(&f->prefix, "%s/tp", f->dir) > 0);
    tu_fill_random(f->q, sizeof f->q, 11);
    tu_fill_random(f->wo, sizeof f->wo, 12);
    tu_fill_random(f->scale, sizeof f->scale, 13);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(f->prefix, &wo, &w, &err), TRESTLE_OK);
    static const int64_t qd[] = { 10, 7 }, wd[] = { 8, 12 }, sd[] = { 9 };
    cr_assert_eq(trestle_writer_add(w, "model/attn/q/kernel", TRESTLE_DT_FLOAT, 2, qd, f->q,
                                    sizeof f->q, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "model/mlp/wo/kernel", TRESTLE_DT_FLOAT, 2, wd, f->wo,
                                    sizeof f->wo, 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "model/norm/scale", TRESTLE_DT_FLOAT, 1, sd, f->scale,
                                    sizeof f->scale, 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
}

uint64_t tm_tp_parts(const tm_tp_fixture *f, int r, int np)
{
    static const int64_t qd[] = { 10, 7 }, wd[] = { 8, 12 };
    uint8_t buf[sizeof f->wo];
    int64_t s, n;
    uint64_t h = TM_FNV0;
    trestle_shard_part(10, r, np, &s, &n);
    int64_t qs[] = { s, 0 }, ql[] = { n, 7 };
    tu_ref_slice((const uint8_t *)f->q, qd, 2, qs, ql, 4, buf);
    h = tm_fnv(h, buf, (uint64_t)(n * 7 * 4));
    trestle_shard_part(12, r, np, &s, &n);
    int64_t ws[] = { 0, s }, wl[] = { 8, n };
    tu_ref_slice((const uint8_t *)f->wo, wd, 2, ws, wl, 4, buf);
    return tm_fnv(h, buf, (uint64_t)(8 * n * 4));
}

void tm_check_tp_env(tm_tp_fixture *f, int np, const char *env, const char *args,
                     uint64_t whole)
{
    char *out, *err;
    tm_rank_line lines[8];
    int rc = tm_mpirun(np, env, args, &out, &err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
    tm_parse_ranks(out, np, lines);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].parts, tm_tp_parts(f, r, np), "rank %d of %d: parts differ from the "
                     "reference slices", r, np);
        cr_assert_eq(lines[r].whole, whole, "rank %d of %d: the replicated tensor differs", r, np);
    }
    free(out);
    free(err);
}

void tm_make_narrow(tm_narrow *f)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    f->dir = tu_mkdtemp();
    cr_assert(asprintf(&f->prefix, "%s/narrow", f->dir) > 0);
    tu_fill_random(f->n, sizeof f->n, 31);
    tu_fill_random(f->q, sizeof f->q, 32);
    tu_fill_random(f->emb, sizeof f->emb, 33);
    tu_fill_random(f->cols, sizeof f->cols, 34);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(f->prefix, &wo, &w, &err), TRESTLE_OK);
    static const int64_t nd[] = { TM_N_ROWS, TM_N_COLS }, qd[] = { TM_Q_ROWS, TM_Q_COLS };
    cr_assert_eq(trestle_writer_add(w, "tp/n", TRESTLE_DT_FLOAT, 2, nd, f->n, sizeof f->n, 0,
                                    &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "tp/q", TRESTLE_DT_FLOAT, 2, qd, f->q, sizeof f->q, 1,
                                    &err), TRESTLE_OK);
    /* Slices are stored row-major in their own shape: rows 0-5, rows 6-11. */
    cr_assert_eq(trestle_writer_add_slice(w, "tp/emb", TRESTLE_DT_FLOAT, "12 8 0,6:-", f->emb,
                                          6 * 8 * 4, 0, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add_slice(w, "tp/emb", TRESTLE_DT_FLOAT, "12 8 6,6:-",
                                          f->emb + 48, 6 * 8 * 4, 1, &err), TRESTLE_OK);
    for (int k = 0; k < 3; k++) {
        float part[12 * 3];
        char spec[32];
        int64_t start[] = { 0, 3 * k }, len[] = { 12, 3 };
        static const int64_t cd[] = { 12, 9 };
        tu_ref_slice((const uint8_t *)f->cols, cd, 2, start, len, 4, (uint8_t *)part);
        snprintf(spec, sizeof spec, "12 9 -:%d,3", 3 * k);
        cr_assert_eq(trestle_writer_add_slice(w, "tp/cols", TRESTLE_DT_FLOAT, spec, part,
                                              sizeof part, k % 2, &err), TRESTLE_OK, "%s",
                     err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
}

char *tm_ops_file(const char *dir, const char *text)
{
    char *path;
    cr_assert(asprintf(&path, "%s/ops.txt", dir) > 0);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
    return path;
}

void tm_free_narrow(tm_narrow *f)
{
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

uint64_t tm_fnv_part(uint64_t h, const float *data, int64_t rows, int64_t cols, int dim, int r,
                     int np)
{
    uint8_t buf[TM_N_ROWS * TM_N_COLS * 4 + TM_Q_ROWS * TM_Q_COLS * 4];
    const int64_t d[] = { rows, cols };
    int64_t start[2] = { 0, 0 }, len[2] = { rows, cols };
    trestle_shard_part(d[dim], r, np, &start[dim], &len[dim]);
    tu_ref_slice((const uint8_t *)data, d, 2, start, len, 4, buf);
    return tm_fnv(h, buf, (uint64_t)(len[0] * len[1] * 4));
}

int tm_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle))
        n++;
    return n;
}

void tm_check_corrupt_env(long which, int owner, int np, const char *env,
                          const char *extra)
{
    char *dir, *prefix = tm_make_multishard(&dir), *args, *out, *err, *shard;
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);
    size_t n = trestle_plan_extent_count(p);
    trestle_plan_extent_info x;
    trestle_plan_get_extent(p, which < 0 ? n - 1 : (size_t)which, &x);
    char key[256];
    snprintf(key, sizeof key, "%s", x.key);
    cr_assert(asprintf(&shard, "%s", trestle_shard_path(c, x.shard)) > 0);
    trestle_plan_free(p);
    trestle_close(c);
    tu_flip_byte(shard, (size_t)(x.offset + x.size / 2), 0x5a);

    cr_assert(asprintf(&args, "'%s' --all %s", prefix, extra) > 0);
    int rc = tm_mpirun(np, env, args, &out, &err);
    cr_assert_neq(rc, 0, "a corrupt checkpoint restored:\n%s", out);
    char want[512];
    snprintf(want, sizeof want, "trestle: rank %d of %d: CRC32C mismatch in tensor '%s' (shard "
             "%s, offset %" PRIu64 ",", owner, np, key, shard, x.offset);
    cr_assert_eq(tm_count(err, want), np, "every rank reports rank %d's error; wanted %d x '%s' "
                 "in:\n%s", owner, np, want, err);
    cr_assert(!strstr(out, "group of "), "no aggregate after a failure:\n%s", out);
    free(args);
    free(out);
    free(err);
    free(shard);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

void tm_check_corrupt_on(long which, int owner, int np, const char *extra)
{
    tm_check_corrupt_env(which, owner, np, NULL, extra);
}

void tm_need_mock(void)
{
#if !TRESTLE_HAVE_CUDA || !defined(TRESTLE_CUDA_MOCK)
    cr_skip("device ranks run on the CUDA mock (-DTRESTLE_CUDA_MOCK=ON), and this build has none");
#endif
}

const char *tm_need_ncclmock(void)
{
    tm_tool();
    tm_need_mock();
    if (!TRESTLE_NCCLMOCK_PATH[0] || access(TRESTLE_NCCLMOCK_PATH, R_OK) != 0)
        cr_skip("the mock NCCL is built only in CUDA mock builds with MPI");
    return TRESTLE_NCCLMOCK_PATH;
}

char *tm_nccl_env(int devices, const char *extra)
{
    char *env;
    cr_assert(asprintf(&env, "TRESTLE_CUDAMOCK_DEVICES=%d TRESTLE_CUDAMOCK_NCCL='%s' "
                             "TRESTLE_NCCLMOCK_CHUNK=4000 TRESTLE_NCCLMOCK_STATS=1 %s",
                       devices, tm_need_ncclmock(), extra ? extra : "") > 0);
    return env;
}

void tm_parse_nccl(const char *err, int np, tm_nccl_line *v)
{
    memset(v, 0, (size_t)np * sizeof *v);
    for (const char *s = err; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int r, n, d;
        uint64_t b, snt, rcv;
        if (sscanf(s, "ncclmock: rank %d of %d on device %d: %" SCNu64 " broadcasts, %" SCNu64
                   " bytes sent, %" SCNu64 " bytes received", &r, &n, &d, &b, &snt, &rcv) == 6) {
            cr_assert(n == np && r >= 0 && r < np && !v[r].seen, "bad line: %.100s", s);
            v[r] = (tm_nccl_line){ 1, d, b, snt, rcv };
        }
    }
}

void tm_check_order(const char *path, int np, const char *mode, const char *rule,
                    uint64_t *received)
{
    const char *prog = TRESTLE_MPI_ORDER_PATH;
    if (!*prog)
        cr_skip_test("needs the CUDA mock build with MPI (mpi_device_order)");
    char *out, *err, *args, want[64];
    cr_assert(asprintf(&args, "'%s' %s%s%s", path, rule ? "'" : "", rule ? rule : "",
                       rule ? "'" : "") > 0);
    int rc = tm_mpirun_sub(prog, np, TM_MOCK_ENV, mode, args, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d\n%s%s", mode, rc, out, err);
    for (int r = 0; r < np; r++) {
        snprintf(want, sizeof want, "rank %d/%d: ", r, np);
        const char *line = strstr(out, want), *end = line ? strchr(line, '\n') : NULL;
        const char *got = line ? strstr(line, " received ") : NULL;
        cr_assert(line && strstr(line, " tensors ok (") && got && got < end,
                  "%s: rank %d:\n%s%s", mode, r, out, err);
        if (received)
            received[r] = strtoull(got + strlen(" received "), NULL, 10);
    }
    free(args);
    free(out);
    free(err);
}
