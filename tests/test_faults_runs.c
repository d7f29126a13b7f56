/*
 * test_faults_runs.c - faults inside the reads that scatter a run of small
 * tensors straight into their destinations (issue 24): hundreds of small
 * tensors with gaps between them (the writer's alignment), read buffered
 * with either reader. Short reads, EINTR and EAGAIN in the middle of such
 * a read are resumed at the right iovec to byte-identical tensors; an EIO
 * or end of file there fails naming the tensor whose bytes were at the
 * offset, and the same plan restores cleanly afterwards. The faults come
 * through the seam of engine/common/fault.h, as in test_faults.c.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "plan.h"
#include "testutil.h"
#include "trestle.h"

#define N 600              /* tensors: runs of up to ~500 (two iovecs each, with the gaps) */
#define ALIGN 64           /* the writer pads each tensor: gaps of 0..60 bytes */
#define TIMEOUT 60

typedef struct model {
    char *dir, *prefix;
    trestle_checkpoint *ckpt;
    trestle_plan *plan;
} model;

static size_t elements(size_t i)
{
    return 1 + (i * 37) % 700; /* 4 bytes to 2.8 KiB */
}

static model make_model(void)
{
    model m;
    trestle_error err;
    m.dir = tu_mkdtemp();
    cr_assert_not_null(m.dir);
    cr_assert(asprintf(&m.prefix, "%s/runs", m.dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.alignment = ALIGN;
    trestle_writer *w;
    cr_assert_eq(trestle_writer_create(m.prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < N; i++) {
        char name[32];
        int64_t dims[1] = { (int64_t)elements(i) };
        float *data = malloc(elements(i) * sizeof *data);
        tu_fill_random(data, elements(i) * sizeof *data, i + 7);
        snprintf(name, sizeof name, "t%03zu", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, dims, data,
                                        elements(i) * sizeof *data, 0, &err),
                     TRESTLE_OK, "%s", err.message);
        free(data);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    m.ckpt = tu_open(m.prefix, NULL);
    m.plan = tu_plan(m.ckpt, NULL, 0, NULL);
    return m;
}

static void free_model(model *m)
{
    trestle_plan_free(m->plan);
    trestle_close(m->ckpt);
    tu_rmtree(m->dir);
    free(m->dir);
    free(m->prefix);
}

static int restore(model *m, int reader, trestle__faults *fl, trestle_stats *st,
                   trestle_error *err)
{
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.reader = reader;
    o.direct = TRESTLE_DIRECT_NEVER;
    o.threads = 2;
    trestle__plan_set_faults(m->plan, fl);
    int rc = trestle_restore(m->plan, &o, st, err);
    trestle__plan_set_faults(m->plan, NULL);
    if (rc == TRESTLE_E_NO_IO_URING)
        cr_skip_test("io_uring unavailable here: %s", err->message);
    return rc;
}

static void check_bytes(const model *m)
{
    for (size_t i = 0; i < N; i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(m->plan, i, &op), TRESTLE_OK);
        size_t t = (size_t)atoi(op.key + 1), bytes = elements(t) * sizeof(float);
        cr_assert_eq(op.bytes, bytes);
        uint8_t *want = malloc(bytes);
        tu_fill_random(want, bytes, t + 7);
        cr_assert(memcmp(op.data, want, bytes) == 0, "tensor %s differs", op.key);
        free(want);
    }
}

static trestle_tensor_info info(const model *m, const char *name)
{
    size_t i;
    trestle_tensor_info t;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(m->ckpt, name, &i, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_tensor_get_info(m->ckpt, i, &t), TRESTLE_OK);
    return t;
}

static void fault(trestle__faults *fl, int kind, uint64_t at, unsigned times)
{
    memset(fl, 0, sizeof *fl);
    fl->read_fault = kind;
    fl->shard = 0;
    fl->at = at;
    fl->times = times;
    atomic_init(&fl->injected, 0);
}

static int readers[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };

ParameterizedTestParameters(faults_runs, are_resumed_at_the_right_iovec_to_exact_bytes)
{
    return cr_make_param_array(int, readers, 2);
}

ParameterizedTest(int *reader, faults_runs, are_resumed_at_the_right_iovec_to_exact_bytes,
                  .timeout = TIMEOUT)
{
    static const struct { int kind; unsigned times; const char *name; } kinds[] = {
        { TRESTLE__FAULT_SHORT, 40, "SHORT" },
        { TRESTLE__FAULT_EINTR, 3, "EINTR" },
        { TRESTLE__FAULT_EAGAIN, 3, "EAGAIN" },
    };
    static const char *const at[] = { "t000", "t123", "t299", "t450" };
    model m = make_model();
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t t = 0; t < sizeof at / sizeof at[0]; t++) {
            trestle_tensor_info ti = info(&m, at[t]);
            trestle__faults fl;
            fault(&fl, kinds[k].kind, ti.offset + ti.size / 2, kinds[k].times);
            trestle_stats st;
            trestle_error err;
            int rc = restore(&m, *reader, &fl, &st, &err);
            cr_assert_eq(rc, TRESTLE_OK, "%s in %s: %s", kinds[k].name, at[t], err.message);
            cr_assert_gt(atomic_load(&fl.injected), 0, "%s in %s: nothing injected",
                         kinds[k].name, at[t]);
            cr_assert_eq(st.tensors, N);
            check_bytes(&m);
        }
    free_model(&m);
}

ParameterizedTestParameters(faults_runs, eio_and_eof_name_the_tensor_at_the_offset)
{
    return cr_make_param_array(int, readers, 2);
}

ParameterizedTest(int *reader, faults_runs, eio_and_eof_name_the_tensor_at_the_offset,
                  .timeout = TIMEOUT)
{
    model m = make_model();
    const char *path = trestle_shard_path(m.ckpt, 0);
    static const char *const at[] = { "t001", "t377" };
    for (size_t t = 0; t < sizeof at / sizeof at[0]; t++) {
        trestle_tensor_info ti = info(&m, at[t]);
        uint64_t off = ti.offset + ti.size - 1;
        trestle__faults fl;
        trestle_stats st;
        trestle_error err;
        char want[2048];

        fault(&fl, TRESTLE__FAULT_EIO, off, 1);
        int rc = restore(&m, *reader, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_E_IO, "%s: %s", trestle_code_name(rc), err.message);
        snprintf(want, sizeof want, "tensor '%s': reading %s at offset %" PRIu64
                 ": Input/output error", at[t], path, off);
        cr_assert_str_eq(err.message, want);
        cr_assert_str_eq(err.key, at[t]);
        cr_assert_eq(err.offset, (int64_t)off);
        cr_assert_lt(st.tensors, N);

        fault(&fl, TRESTLE__FAULT_EOF, off, 1);
        rc = restore(&m, *reader, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
        snprintf(want, sizeof want, "tensor '%s': unexpected end of file in %s at offset %"
                 PRIu64 " (the file was shorter than the index says; was it truncated?)", at[t],
                 path, off);
        cr_assert_str_eq(err.message, want);

        rc = restore(&m, *reader, NULL, &st, &err);
        cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
        cr_assert_eq(st.tensors, N);
        check_bytes(&m);
    }
    free_model(&m);
}

/* Every op is reported ready once, through the batched notifications, and
 * a callback that stops the restore is the last one called. */
typedef struct calls {
    int count[N];
    size_t order[N], n;      /* ops in the order reported */
    size_t stop_at;          /* this op's callback returns 7; N: none does */
} calls;

static int on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    calls *c = user;
    c->count[i]++;
    c->order[c->n++ % N] = i;
    return i == c->stop_at ? 7 : 0;
}

Test(faults_runs, every_op_is_ready_once_and_a_stop_is_the_last_call, .timeout = TIMEOUT)
{
    model m = make_model();
    calls *c = calloc(1, sizeof *c);
    c->stop_at = N;
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.threads = 2;
    o.on_ready = on_ready;
    o.user = c;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(trestle_restore(m.plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(c->count[i], 1, "op %zu ready %d times", i, c->count[i]);
    cr_assert_eq(st.tensors, N);

    memset(c, 0, sizeof *c);
    c->stop_at = 250;
    o.threads = 1; /* one worker: the stop is seen before anything else is reported */
    cr_assert_eq(trestle_restore(m.plan, &o, &st, &err), TRESTLE_E_CANCELLED);
    cr_assert_str_eq(err.message, "restore cancelled by the ready callback (it returned 7 for op "
                                  "250, 't250')");
    cr_assert_gt(c->n, 0);
    cr_assert_eq(c->order[c->n - 1], 250, "op %zu was reported after the stop",
                 c->order[c->n - 1]);
    for (size_t i = 0; i < N; i++)
        cr_assert_leq(c->count[i], 1);
    cr_assert_eq(st.tensors, c->n, "stats count the ops reported");
    free(c);
    free_model(&m);
}

/* Engine memory is laid out in file order (issue 24): a run of small
 * tensors read in one scattering read lands in one stretch of memory, so
 * that tensors whose sizes are multiples of the arena's alignment are one
 * destination range for the kernel. The files here hold the tensors in the
 * reverse of their keys' order, which is the order of the ops. */
Test(faults_runs, engine_memory_follows_the_files, .timeout = TIMEOUT)
{
    enum { M = 200 };
    char *dir = tu_mkdtemp(), *prefix;
    trestle_error err;
    trestle_writer *w;
    cr_assert(asprintf(&prefix, "%s/rev", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    float data[64 * 3];
    for (int i = M - 1; i >= 0; i--) {
        char name[16];
        int64_t dims[1] = { 64 * (1 + i % 3) }; /* 256, 512, 768 bytes */
        tu_fill_random(data, sizeof data, (uint64_t)i);
        snprintf(name, sizeof name, "k%03d", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, dims, data,
                                        (size_t)dims[0] * 4, 0, &err), TRESTLE_OK);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 1; i < M; i++) {
        trestle_plan_op_info a, b;
        trestle_tensor_info ta, tb;
        cr_assert_eq(trestle_plan_get_op(p, i - 1, &a), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(p, i, &b), TRESTLE_OK);
        cr_assert_eq(trestle_tensor_get_info(c, i - 1, &ta), TRESTLE_OK);
        cr_assert_eq(trestle_tensor_get_info(c, i, &tb), TRESTLE_OK);
        cr_assert_gt(ta.offset, tb.offset, "keys in the reverse of file order");
        cr_assert_eq((const uint8_t *)b.data + tb.size, (const uint8_t *)a.data,
                     "%s does not end where %s begins", b.name, a.name);
    }
    for (size_t i = 0; i < M; i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(p, i, &op), TRESTLE_OK);
        tu_fill_random(data, sizeof data, (uint64_t)atoi(op.name + 1));
        cr_assert(memcmp(op.data, data, op.bytes) == 0, "%s differs", op.name);
    }
    trestle_plan_free(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}
