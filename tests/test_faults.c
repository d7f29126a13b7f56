/*
 * test_faults.c - fault injection on the read path (issue 7): an EIO, end
 * of file, short reads, EINTR and EAGAIN at a chosen byte of a shard, a
 * shard truncated after it was opened, a failed staging allocation and a
 * refused io_uring. Each fault either fails the restore with the exact
 * error (code, message naming tensor, file and offset, and the structured
 * fields) or is retried to bytes identical to the writer's input; after
 * every failure the same plan restores correctly once the fault is gone.
 *
 * Faults come through the internal seam in engine/common/fault.h: a fault plan
 * attached to the restore plan, which both readers apply to every raw read
 * result. Every read case runs with both readers and with O_DIRECT NEVER
 * and ALWAYS (on a filesystem that refuses O_DIRECT, ALWAYS reads buffered).
 * Each test has a timeout, so a hang fails instead of stalling the suite;
 * the suite runs clean under ASan/LSan (no leaks on any failure path).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "plan.h"
#include "reader.h"
#include "testutil.h"
#include "trestle.h"

#define CHUNK (64 << 10)   /* read size: w2 spans 16 reads */
#define STAGING (256 << 10) /* 3 staging buffers of CHUNK + slack */
#define NTENSORS 5
#define TIMEOUT 60         /* seconds per test: a hang fails the test */

/* Two shards; w2 spans many chunks, emb is read straight into its
 * destination when buffered, w1/b1 share coalesced staging reads. */
static const struct {
    const char *name;
    int64_t d0, d1;
    int shard;
} tensors[NTENSORS] = {
    { "w1", 64, 64, 0 },   /* 16 KiB */
    { "emb", 320, 256, 0 }, /* 320 KiB */
    { "b1", 1, 64, 0 },
    { "w2", 256, 1024, 1 }, /* 1 MiB */
    { "b2", 1, 1024, 1 },
};

typedef struct config {
    int reader; /* TRESTLE_READER_IO_URING or _PREAD */
    int direct; /* TRESTLE_DIRECT_NEVER or _ALWAYS */
} config;

static config configs[] = {
    { TRESTLE_READER_IO_URING, TRESTLE_DIRECT_NEVER },
    { TRESTLE_READER_IO_URING, TRESTLE_DIRECT_ALWAYS },
    { TRESTLE_READER_PREAD, TRESTLE_DIRECT_NEVER },
    { TRESTLE_READER_PREAD, TRESTLE_DIRECT_ALWAYS },
};

typedef struct fixture {
    char *dir, *prefix;
    trestle_checkpoint *ckpt;
    trestle_plan *plan;
    bool direct_ok; /* the directory's filesystem takes O_DIRECT */
} fixture;

static size_t tensor_bytes(size_t i)
{
    return (size_t)(tensors[i].d0 * tensors[i].d1) * 4;
}

/* Can files in `dir` be read with O_DIRECT (tmpfs: no)? */
static bool probe_direct(const char *dir)
{
    char *path;
    cr_assert(asprintf(&path, "%s/probe", dir) > 0);
    void *buf;
    cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
    memset(buf, 1, 4096);
    cr_assert_eq(tu_write_file(path, buf, 4096), 0);
    int fd = open(path, O_RDONLY | O_DIRECT);
    bool ok = fd >= 0 && pread(fd, buf, 4096, 0) == 4096;
    if (fd >= 0)
        close(fd);
    unlink(path);
    free(path);
    free(buf);
    return ok;
}

/* Write the checkpoint, open it and plan every tensor into engine memory. */
static fixture setup_model(void)
{
    fixture f;
    trestle_error err;
    f.dir = tu_mkdtemp();
    cr_assert_not_null(f.dir);
    cr_assert(asprintf(&f.prefix, "%s/ckpt", f.dir) > 0);
    f.direct_ok = probe_direct(f.dir);

    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    trestle_writer *w;
    cr_assert_eq(trestle_writer_create(f.prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < NTENSORS; i++) {
        int64_t dims[2] = { tensors[i].d0, tensors[i].d1 };
        void *data = malloc(tensor_bytes(i));
        tu_fill_random(data, tensor_bytes(i), i + 1);
        cr_assert_eq(trestle_writer_add(w, tensors[i].name, TRESTLE_DT_FLOAT, 2, dims, data,
                                        tensor_bytes(i), tensors[i].shard, &err),
                     TRESTLE_OK, "%s", err.message);
        free(data);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    f.ckpt = tu_open(f.prefix, NULL);
    f.plan = tu_plan(f.ckpt, NULL, 0, NULL);
    cr_assert_eq(trestle_plan_op_count(f.plan), NTENSORS);
    return f;
}

static void teardown_model(fixture *f)
{
    trestle_plan_free(f->plan);
    trestle_close(f->ckpt);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

static trestle_tensor_info info_of(const fixture *f, const char *name)
{
    size_t i;
    trestle_tensor_info t;
    trestle_error err;
    cr_assert_eq(trestle_tensor_find(f->ckpt, name, &i, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_tensor_get_info(f->ckpt, i, &t), TRESTLE_OK);
    return t;
}

static const char *shard_path(const fixture *f, int shard)
{
    return trestle_shard_path(f->ckpt, shard);
}

/* Restore the plan with `faults` attached (NULL: none). A kernel that
 * refuses io_uring skips the test, unless the refusal is the fault. */
static int restore(fixture *f, const config *cfg, trestle__faults *faults, trestle_stats *st,
                   trestle_error *err)
{
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.reader = cfg->reader;
    o.direct = cfg->direct;
    o.chunk_bytes = CHUNK;
    o.staging_bytes = STAGING;
    o.threads = 2;
    o.queue_depth = 8;
    trestle__plan_set_faults(f->plan, faults);
    int rc = trestle_restore(f->plan, &o, st, err);
    trestle__plan_set_faults(f->plan, NULL);
    if (rc == TRESTLE_E_NO_IO_URING && !(faults && faults->uring_setup_errno))
        cr_skip_test("io_uring unavailable here: %s", err->message);
    return rc;
}

/* Every op holds exactly the bytes the writer was given. */
static void check_bytes(const fixture *f)
{
    for (size_t i = 0; i < NTENSORS; i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(f->plan, i, &op), TRESTLE_OK);
        size_t k = 0;
        while (k < NTENSORS && strcmp(tensors[k].name, op.key) != 0)
            k++;
        cr_assert_lt(k, NTENSORS, "unexpected op %s", op.key);
        cr_assert_eq(op.bytes, tensor_bytes(k));
        uint8_t *want = malloc(tensor_bytes(k));
        tu_fill_random(want, tensor_bytes(k), k + 1);
        cr_assert(memcmp(op.data, want, tensor_bytes(k)) == 0, "tensor %s differs", op.key);
        free(want);
    }
}

/* A successful restore: every tensor, the right bytes, O_DIRECT when asked and possible. */
static void check_success(const fixture *f, const config *cfg, const trestle_stats *st)
{
    cr_assert_eq(st->tensors, NTENSORS);
    cr_assert_eq(st->reader, cfg->reader);
    if (cfg->direct == TRESTLE_DIRECT_ALWAYS)
        cr_assert_eq(st->direct_reads, f->direct_ok ? 1 : 0);
    else
        cr_assert_eq(st->direct_reads, 0);
    check_bytes(f);
}

/* After a failure nothing is left in a bad state: the same plan restores. */
static void check_restores_again(fixture *f, const config *cfg)
{
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(restore(f, cfg, NULL, &st, &err), TRESTLE_OK, "%s", err.message);
    check_success(f, cfg, &st);
}

/* A restore that failed reports no success. */
static void check_failed_stats(const trestle_stats *st)
{
    cr_assert_lt(st->tensors, NTENSORS, "a failed restore claims %zu tensors", st->tensors);
}

static void read_fault(trestle__faults *fl, int kind, int shard, uint64_t at, unsigned times)
{
    memset(fl, 0, sizeof *fl);
    fl->read_fault = kind;
    fl->shard = shard;
    fl->at = at;
    fl->times = times;
    atomic_init(&fl->injected, 0);
}

/* Bytes inside w2 (shard 1, four chunks in) and inside b1 (shard 0, a
 * small tensor read together with its neighbours). */
typedef struct target {
    const char *name;
    uint64_t delta;
} target;
static const target targets[] = { { "w2", 3 * CHUNK + 100 }, { "b1", 40 } };

/* ---- failures ---- */

ParameterizedTestParameters(faults, eio_fails_naming_tensor_file_and_offset)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

ParameterizedTest(config *cfg, faults, eio_fails_naming_tensor_file_and_offset,
                  .timeout = TIMEOUT)
{
    fixture f = setup_model();
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        trestle_tensor_info ti = info_of(&f, targets[t].name);
        uint64_t at = ti.offset + targets[t].delta;
        trestle__faults fl;
        read_fault(&fl, TRESTLE__FAULT_EIO, ti.shard, at, 1);
        trestle_stats st;
        trestle_error err;
        int rc = restore(&f, cfg, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_E_IO, "%s: %s", trestle_code_name(rc), err.message);
        char want[2048];
        snprintf(want, sizeof want,
                 "tensor '%s': reading %s at offset %" PRIu64 ": Input/output error",
                 targets[t].name, shard_path(&f, ti.shard), at);
        cr_assert_str_eq(err.message, want);
        cr_assert_eq(err.code, TRESTLE_E_IO);
        cr_assert_eq(err.sys_errno, EIO);
        cr_assert_str_eq(err.key, targets[t].name);
        cr_assert_str_eq(err.path, shard_path(&f, ti.shard));
        cr_assert_eq(err.offset, (int64_t)at);
        cr_assert_eq(atomic_load(&fl.injected), 1);
        check_failed_stats(&st);
        check_restores_again(&f, cfg);
    }
    teardown_model(&f);
}

ParameterizedTestParameters(faults, eof_is_a_short_read_naming_tensor_file_and_offset)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

ParameterizedTest(config *cfg, faults, eof_is_a_short_read_naming_tensor_file_and_offset,
                  .timeout = TIMEOUT)
{
    fixture f = setup_model();
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        trestle_tensor_info ti = info_of(&f, targets[t].name);
        uint64_t at = ti.offset + targets[t].delta;
        trestle__faults fl;
        read_fault(&fl, TRESTLE__FAULT_EOF, ti.shard, at, 1);
        trestle_stats st;
        trestle_error err;
        int rc = restore(&f, cfg, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
        char want[2048];
        snprintf(want, sizeof want,
                 "tensor '%s': unexpected end of file in %s at offset %" PRIu64
                 " (the file was shorter than the index says; was it truncated?)",
                 targets[t].name, shard_path(&f, ti.shard), at);
        cr_assert_str_eq(err.message, want);
        cr_assert_eq(err.sys_errno, 0);
        cr_assert_str_eq(err.key, targets[t].name);
        cr_assert_str_eq(err.path, shard_path(&f, ti.shard));
        cr_assert_eq(err.offset, (int64_t)at);
        cr_assert_eq(atomic_load(&fl.injected), 1);
        check_failed_stats(&st);
        check_restores_again(&f, cfg);
    }
    teardown_model(&f);
}

ParameterizedTestParameters(faults, endless_eagain_gives_up_instead_of_hanging)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

/* A device that answers EAGAIN (or EINTR) forever must not spin a reader
 * thread for ever: after TRESTLE__READ_RETRIES tries without a byte it is an
 * I/O error. */
ParameterizedTest(config *cfg, faults, endless_eagain_gives_up_instead_of_hanging,
                  .timeout = TIMEOUT)
{
    static const struct { int kind, errnum; const char *text; } kinds[] = {
        { TRESTLE__FAULT_EAGAIN, EAGAIN, "Resource temporarily unavailable" },
        { TRESTLE__FAULT_EINTR, EINTR, "Interrupted system call" },
    };
    fixture f = setup_model();
    trestle_tensor_info ti = info_of(&f, "w2");
    uint64_t at = ti.offset + 5 * CHUNK + 12;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        trestle__faults fl;
        read_fault(&fl, kinds[k].kind, 1, at, UINT_MAX);
        trestle_stats st;
        trestle_error err;
        int rc = restore(&f, cfg, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_E_IO, "%s: %s", trestle_code_name(rc), err.message);
        char want[2048];
        snprintf(want, sizeof want,
                 "tensor 'w2': reading %s at offset %" PRIu64 ": %s (still failing after %u "
                 "retries)", shard_path(&f, 1), at, kinds[k].text, TRESTLE__READ_RETRIES);
        cr_assert_str_eq(err.message, want);
        cr_assert_eq(err.sys_errno, kinds[k].errnum);
        cr_assert_str_eq(err.key, "w2");
        cr_assert_eq(err.offset, (int64_t)at);
        cr_assert_eq(atomic_load(&fl.injected), TRESTLE__READ_RETRIES + 1);
        check_failed_stats(&st);
        check_restores_again(&f, cfg);
    }
    teardown_model(&f);
}

ParameterizedTestParameters(faults, a_shard_truncated_after_open_is_a_short_read)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

ParameterizedTest(config *cfg, faults, a_shard_truncated_after_open_is_a_short_read,
                  .timeout = TIMEOUT)
{
    fixture f = setup_model(); /* opened (and validated) whole */
    trestle_tensor_info ti = info_of(&f, "w2");
    const char *path = shard_path(&f, 1);
    size_t len;
    uint8_t *whole = tu_read_file(path, &len);
    cr_assert_not_null(whole);
    uint64_t end = ti.offset + 2 * CHUNK + 5000;
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)end), 0);

    trestle_stats st;
    trestle_error err;
    int rc = restore(&f, cfg, NULL, &st, &err);
    cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
    char want[2048];
    snprintf(want, sizeof want,
             "tensor 'w2': unexpected end of file in %s at offset %" PRIu64
             " (the file was shorter than the index says; was it truncated?)", path, end);
    cr_assert_str_eq(err.message, want);
    cr_assert_str_eq(err.key, "w2");
    cr_assert_str_eq(err.path, path);
    cr_assert_eq(err.offset, (int64_t)end);
    check_failed_stats(&st);

    /* Put the bytes back through the same inode: the open checkpoint sees them. */
    cr_assert_eq(pwrite(fd, whole, len, 0), (ssize_t)len);
    close(fd);
    free(whole);
    check_restores_again(&f, cfg);
    teardown_model(&f);
}

ParameterizedTestParameters(faults, staging_nomem_fails_cleanly)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

ParameterizedTest(config *cfg, faults, staging_nomem_fails_cleanly, .timeout = TIMEOUT)
{
    fixture f = setup_model();
    trestle__faults fl;
    read_fault(&fl, TRESTLE__FAULT_NONE, 0, 0, 0);
    fl.staging_nomem = true;
    trestle_stats st;
    trestle_error err;
    int rc = restore(&f, cfg, &fl, &st, &err);
    cr_assert_eq(rc, TRESTLE_E_NOMEM, "%s: %s", trestle_code_name(rc), err.message);
    /* 256 KiB of staging holds 3 buffers of 64 KiB + 8 KiB O_DIRECT slack. */
    cr_assert_str_eq(err.message, "cannot allocate 3 staging buffers of 73728 bytes");
    cr_assert_eq(err.sys_errno, ENOMEM);
    cr_assert_eq(err.length, 3 * 73728);
    cr_assert_eq(atomic_load(&fl.injected), 1);
    cr_assert_eq(st.tensors, 0);
    check_restores_again(&f, cfg);
    teardown_model(&f);
}

/* ---- faults the restore must absorb ---- */

ParameterizedTestParameters(faults, short_reads_eintr_and_eagain_are_retried_to_exact_bytes)
{
    return cr_make_param_array(config, configs, sizeof configs / sizeof configs[0]);
}

ParameterizedTest(config *cfg, faults, short_reads_eintr_and_eagain_are_retried_to_exact_bytes,
                  .timeout = TIMEOUT)
{
    static const struct { int kind; const char *name; } kinds[] = {
        { TRESTLE__FAULT_SHORT, "SHORT" },
        { TRESTLE__FAULT_EINTR, "EINTR" },
        { TRESTLE__FAULT_EAGAIN, "EAGAIN" },
    };
    fixture f = setup_model();
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            trestle_tensor_info ti = info_of(&f, targets[t].name);
            trestle__faults fl;
            read_fault(&fl, kinds[k].kind, ti.shard, ti.offset + targets[t].delta, 6);
            trestle_stats st;
            trestle_error err;
            int rc = restore(&f, cfg, &fl, &st, &err);
            cr_assert_eq(rc, TRESTLE_OK, "%s in %s: %s", kinds[k].name, targets[t].name,
                         err.message);
            check_success(&f, cfg, &st);
            unsigned n = atomic_load(&fl.injected);
            if (kinds[k].kind == TRESTLE__FAULT_SHORT)
                cr_assert_gt(n, 0, "no short read was injected in %s", targets[t].name);
            else /* the read at the fault retries until the budget is spent */
                cr_assert_eq(n, 6, "%s in %s: %u injected", kinds[k].name, targets[t].name, n);
        }
    }
    teardown_model(&f);
}

/* ---- io_uring refused ---- */

Test(faults, refused_io_uring_falls_back_to_pread_under_auto, .timeout = TIMEOUT)
{
    fixture f = setup_model();
    for (int d = TRESTLE_DIRECT_NEVER; d <= TRESTLE_DIRECT_ALWAYS; d++) {
        config cfg = { TRESTLE_READER_AUTO, d };
        trestle__faults fl;
        read_fault(&fl, TRESTLE__FAULT_NONE, 0, 0, 0);
        fl.uring_setup_errno = EPERM;
        trestle_stats st;
        trestle_error err;
        int rc = restore(&f, &cfg, &fl, &st, &err);
        cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
        cr_assert_eq(atomic_load(&fl.injected), 1);
        cr_assert_str_eq(st.reader_note, "io_uring unavailable (Operation not permitted): "
                                         "using pread");
        cfg.reader = TRESTLE_READER_PREAD; /* what it ran with */
        check_success(&f, &cfg, &st);
    }
    teardown_model(&f);
}

Test(faults, refused_io_uring_fails_when_io_uring_is_forced, .timeout = TIMEOUT)
{
    fixture f = setup_model();
    config cfg = { TRESTLE_READER_IO_URING, TRESTLE_DIRECT_NEVER };
    trestle__faults fl;
    read_fault(&fl, TRESTLE__FAULT_NONE, 0, 0, 0);
    fl.uring_setup_errno = EPERM;
    trestle_stats st;
    trestle_error err;
    int rc = restore(&f, &cfg, &fl, &st, &err);
    cr_assert_eq(rc, TRESTLE_E_NO_IO_URING, "%s: %s", trestle_code_name(rc), err.message);
    cr_assert_str_eq(err.message, "io_uring unavailable (Operation not permitted)");
    cr_assert_eq(err.sys_errno, EPERM);
    cr_assert_eq(atomic_load(&fl.injected), 1);
    cr_assert_eq(st.tensors, 0);
    check_restores_again(&f, &cfg); /* skips when this kernel really refuses io_uring */
    teardown_model(&f);
}

/* ---- regressions found by injecting faults ---- */

/* An O_DIRECT read starts at the 4096-aligned offset below the bytes it
 * wants, inside the previous tensor's bytes; when the whole read failed at
 * once, the error named that offset, and so the previous tensor. It now
 * names the first wanted byte. */
Test(regress, issue_7_failed_direct_read_names_its_own_first_byte, .timeout = TIMEOUT)
{
    fixture f = setup_model();
    trestle__reader r;
    trestle__reader_config rc = { .ckpt = f.ckpt, .queue_depth = 1 };
    trestle_error err;
    cr_assert_eq(trestle__reader_open_pread(&r, &rc, &err), TRESTLE_OK, "%s", err.message);
    trestle__read rq = { .shard = 1, .offset = 3 * 4096 + 100, .length = 5000 };
    trestle__read_prepare(&rq, true);
    cr_assert_eq(rq.io_offset, 3 * 4096);
    cr_assert_eq(trestle__read_step(&rq, -EIO), TRESTLE__READ_FAILED);
    cr_assert_eq(trestle__reader_fail(&r, &rq), TRESTLE_E_IO);
    cr_assert_eq(r.err.offset, 3 * 4096 + 100);
    cr_assert_eq(r.err.length, 5000);
    char want[2048];
    snprintf(want, sizeof want, "reading %s at offset %d: Input/output error", shard_path(&f, 1),
             3 * 4096 + 100);
    cr_assert_str_eq(r.err.message, want);
    r.ops->close(&r);
    teardown_model(&f);
}
