/*
 * test_writer_safetensors.c - trestle_convert_safetensors(): the file's
 * layout and bytes, conversions, and that a failure leaves nothing behind.
 * The Python suite (python/tests/test_convert.py) checks every real fixture
 * with an independent reader; this suite runs the C path under ASan.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

/* A 2-shard checkpoint: a [3,4] float, a bfloat16 [5], an int64 scalar and
 * a string; returns its prefix inside a fresh temporary directory. */
static char *write_ckpt(char **dir)
{
    static float w[12];
    static uint16_t bf[5] = { 0x3F80, 0xC000, 0x7F80, 0x0001, 0x7FC0 };
    static int64_t step = 42;
    int64_t dw[2] = { 3, 4 }, dbf[1] = { 5 };
    trestle_bytes s = { (const uint8_t *)"hello", 5 };
    trestle_writer_options o;
    trestle_writer *wr;
    char *prefix;
    for (int i = 0; i < 12; i++)
        w[i] = (float)i * 0.5f - 1.0f;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/ckpt", *dir) > 0);
    trestle_writer_options_init(&o);
    o.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &o, &wr, NULL), 0);
    cr_assert_eq(trestle_writer_add(wr, "w", TRESTLE_DT_FLOAT, 2, dw, w, sizeof w, 0, NULL), 0);
    cr_assert_eq(trestle_writer_add(wr, "bf", TRESTLE_DT_BFLOAT16, 1, dbf, bf, sizeof bf, 1, NULL),
                 0);
    cr_assert_eq(trestle_writer_add(wr, "step", TRESTLE_DT_INT64, 0, NULL, &step, 8, 1, NULL), 0);
    cr_assert_eq(trestle_writer_add_strings(wr, "s", 0, NULL, &s, 0, NULL), 0);
    cr_assert_eq(trestle_writer_finish(wr, NULL), 0);
    trestle_writer_free(wr);
    return prefix;
}

/* Close the checkpoint, remove the directory, free the strings. */
static void cleanup(trestle_checkpoint *c, char *dir, char *out, char *prefix)
{
    trestle_close(c);
    tu_rmtree(dir);
    free(out);
    free(prefix);
    free(dir);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(writer_safetensors, writes_header_and_aligned_bytes_and_skips_strings)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_convert_stats st;
    trestle_error err;
    cr_assert(asprintf(&out, "%s/m.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, &st, &err), 0, "%s",
                 err.message);
    cr_assert_eq(st.tensors, 3);
    cr_assert_eq(st.skipped, 1);
    size_t len;
    uint8_t *f = tu_read_file(out, &len);
    cr_assert_eq(len, st.file_bytes);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f[i];
    cr_assert_eq(n % 8, 0);
    cr_assert_eq(8 + n, st.header_bytes);
    char *json = strndup((const char *)f + 8, (size_t)n);
    /* Largest elements first, then by name: step (8), w (4), bf (2). */
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[8,56]},"
                       "\"bf\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[56,66]}}";
    cr_assert(strncmp(json, want, strlen(want)) == 0, "header: %s", json);
    const uint8_t *data = f + 8 + n;
    cr_assert_eq(*(const int64_t *)data, 42);
    cr_assert_eq(((const float *)(data + 8))[11], 4.5f);
    cr_assert_eq(((const uint16_t *)(data + 56))[2], 0x7F80);
    cr_assert_eq(len, 8 + n + 66);
    free(json);
    free(f);
    cleanup(c, dir, out, prefix);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TEST_AUDIT_ARCH
/* From here on this process's kernel refuses madvise(MADV_POPULATE_WRITE)
 * with EINVAL, as kernels before 5.14 do (seccomp: nothing else changes). */
static bool refuse_populate_write(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* The advice, the third argument (its low half: little-endian). */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_POPULATE_WRITE, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}
#endif

/* A checkpoint of one float tensor of `mib` MiB of random bytes,
 * beside the small one in `dir`; returns its prefix. */
static char *write_big_ckpt(const char *dir, int mib)
{
    size_t n = (size_t)mib << 18; /* floats */
    float *v = malloc(n * sizeof *v);
    int64_t dims[1] = { (int64_t)n };
    trestle_writer *wr;
    char *prefix;
    cr_assert(v);
    tu_fill_random(v, n * sizeof *v, 24);
    cr_assert(asprintf(&prefix, "%s/big", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &wr, NULL), 0);
    cr_assert_eq(trestle_writer_add(wr, "big", TRESTLE_DT_FLOAT, 1, dims, v, n * sizeof *v, 0,
                                    NULL), 0);
    cr_assert_eq(trestle_writer_finish(wr, NULL), 0);
    trestle_writer_free(wr);
    free(v);
    return prefix;
}

/* Convert checkpoint `prefix` to `out`; TRESTLE_OK or the code. */
static int convert_path(const char *prefix, const char *out)
{
    trestle_checkpoint *c;
    if (trestle_open(prefix, NULL, &c, NULL) != TRESTLE_OK)
        return -1;
    int rc = trestle_convert_safetensors(c, NULL, 0, NULL, out, NULL, NULL);
    trestle_close(c);
    return rc;
}

/* The output is prefaulted with MADV_POPULATE_WRITE, or, where the kernel
 * refuses that advice, by a populated mapping over the same addresses: the
 * file must be the same either way, for a small file (one thread) and for
 * one large enough to be populated by two (24 MiB). The refusing kernel is
 * a child process under a seccomp filter. */
Test(writer_safetensors, a_kernel_without_populate_write_gets_the_same_file)
{
#ifndef TEST_AUDIT_ARCH
    cr_skip_test("no seccomp architecture constant for this machine");
#else
    char *dir, *prefix = write_ckpt(&dir), *big = write_big_ckpt(dir, 24);
    const char *names[2][2] = { { "new.safetensors", "old.safetensors" },
                                { "big-new.safetensors", "big-old.safetensors" } };
    char *paths[2][2];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++)
            cr_assert(asprintf(&paths[k][j], "%s/%s", dir, names[k][j]) > 0);
    cr_assert_eq(convert_path(prefix, paths[0][0]), TRESTLE_OK);
    cr_assert_eq(convert_path(big, paths[1][0]), TRESTLE_OK);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* No Criterion asserts here: exit codes say what went wrong. */
        static char page[1 << 16] __attribute__((aligned(1 << 16)));
        if (!refuse_populate_write())
            _exit(2);
        if (madvise(page, sizeof page, MADV_POPULATE_WRITE) == 0 || errno != EINVAL)
            _exit(3); /* the filter must be what the writer meets */
        if (convert_path(prefix, paths[0][1]) != TRESTLE_OK)
            _exit(4);
        _exit(convert_path(big, paths[1][1]) == TRESTLE_OK ? 0 : 5);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child ended by signal %d", WTERMSIG(status));
    if (WEXITSTATUS(status) == 2)
        cr_skip_test("seccomp is not available here");
    cr_assert_eq(WEXITSTATUS(status), 0, "child exit %d (3: the filter did not refuse the "
                 "advice; 4, 5: the small or the large conversion failed)",
                 WEXITSTATUS(status));
    for (int k = 0; k < 2; k++) {
        tu_assert_same_file(paths[k][0], paths[k][1]);
        free(paths[k][0]);
        free(paths[k][1]);
    }
    free(big);
    cleanup(NULL, dir, NULL, prefix);
#endif
}

Test(writer_safetensors, converts_on_load_and_names_ops)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_error err;
    trestle_op ops[2] = { { .name = "kernel", .target_dtype = TRESTLE_DT_BFLOAT16 },
                          { .name = "bf", .target_dtype = TRESTLE_DT_FLOAT } };
    const char *ren[] = { "kernel=w" };
    trestle_plan_options po;
    trestle_convert_options co;
    trestle_plan_options_init(&po);
    po.renames = ren;
    po.num_renames = 1;
    trestle_convert_options_init(&co);
    co.plan = &po;
    co.sync = 0;
    cr_assert(asprintf(&out, "%s/c.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, ops, 2, &co, out, NULL, &err), 0, "%s",
                 err.message);
    size_t len;
    uint8_t *f = tu_read_file(out, &len);
    cr_assert(memmem(f, len, "\"bf\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]}",
                     52));
    cr_assert(memmem(f, len, "\"kernel\":{\"dtype\":\"BF16\",\"shape\":[3,4]", 38));
    free(f);
    cleanup(c, dir, out, prefix);
}

Test(writer_safetensors, failure_leaves_no_file_and_keeps_the_old_one)
{
    char *dir, *out, *prefix = write_ckpt(&dir);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert(asprintf(&out, "%s/out", dir) > 0);
    cr_assert_eq(mkdir(out, 0755), 0);
    free(out);
    cr_assert(asprintf(&out, "%s/out/m.safetensors", dir) > 0);
    c = tu_open(prefix, NULL);

    trestle_op str = { .name = "s" };
    cr_assert_eq(trestle_convert_safetensors(c, &str, 1, NULL, out, NULL, &err),
                 TRESTLE_E_UNSUPPORTED);
    cr_assert_str_eq(err.key, "s");
    trestle_op twice[2] = { { .name = "w" }, { .name = "w", .shape_and_slices = "3 4 0,1:-" } };
    cr_assert_eq(trestle_convert_safetensors(c, twice, 2, NULL, out, NULL, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "two ops are named w"), "%s", err.message);
    trestle_close(c);

    /* A CRC mismatch midway through the restore into the file. */
    char *shard;
    cr_assert(asprintf(&shard, "%s.data-00000-of-00002", prefix) > 0);
    size_t len;
    uint8_t *bytes = tu_read_file(shard, &len);
    bytes[5] ^= 0x10;
    cr_assert_eq(tu_write_file(shard, bytes, len), 0);
    cr_assert_eq(tu_write_file(out, "old", 3), 0);
    c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, NULL, &err),
                 TRESTLE_E_CRC_MISMATCH);
    cr_assert_str_eq(err.key, "w");
    uint8_t *kept = tu_read_file(out, &len);
    cr_assert(len == 3 && memcmp(kept, "old", 3) == 0);
    char *outdir;
    cr_assert(asprintf(&outdir, "%s/out", dir) > 0);
    cr_assert_eq(entries(outdir), 1, "a temporary file was left behind");
    free(kept);
    free(bytes);
    free(shard);
    free(outdir);
    cleanup(c, dir, out, prefix);
}

Test(writer_safetensors, rejects_null_arguments)
{
    trestle_error err;
    cr_assert_eq(trestle_convert_safetensors(NULL, NULL, 0, NULL, "x", NULL, &err),
                 TRESTLE_E_INVALID_ARG);
}

/* ---- issue 22: outputs that used to succeed wrongly ---- */

static char *path_in(const char *dir, const char *name)
{
    char *p;
    cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

/* A one-shard checkpoint at DIR/c of float [2] tensors with the given names. */
static char *write_named(const char *dir, const char *const *names, size_t n)
{
    static const float v[2] = { 1.5f, -2.0f };
    int64_t two = 2;
    trestle_writer *wr;
    trestle_error err;
    char *prefix = path_in(dir, "c");
    cr_assert_eq(trestle_writer_create(prefix, NULL, &wr, &err), 0, "%s", err.message);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(trestle_writer_add(wr, names[i], TRESTLE_DT_FLOAT, 1, &two, v, sizeof v, 0,
                                        &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(wr, &err), 0, "%s", err.message);
    trestle_writer_free(wr);
    return prefix;
}

/* Item 3: the rename put the safetensors file in place of the index or a
 * shard and exited 0. Any name of the same file counts (a hard link). */
Test(writer_safetensors, refuses_to_write_over_the_checkpoints_own_files)
{
    char *dir, *prefix = write_ckpt(&dir);
    char *index = NULL, *shard0 = NULL, *shard1 = NULL, *hard = path_in(dir, "shard-link");
    cr_assert(asprintf(&index, "%s.index", prefix) > 0);
    cr_assert(asprintf(&shard0, "%s.data-00000-of-00002", prefix) > 0);
    cr_assert(asprintf(&shard1, "%s.data-00001-of-00002", prefix) > 0);
    cr_assert_eq(link(shard1, hard), 0);
    struct { const char *out, *what, *path; } cases[] = {
        { index, "index", index }, { shard0, "data file", shard0 },
        { shard1, "data file", shard1 }, { hard, "data file", shard1 },
    };
    trestle_checkpoint *c = tu_open(prefix, NULL);
    int before = entries(dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len0, len1;
        uint8_t *was = tu_read_file(cases[i].out, &len0);
        trestle_error err;
        char *want;
        cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, cases[i].out, NULL, &err),
                     TRESTLE_E_INVALID_ARG, "%s", cases[i].out);
        cr_assert(asprintf(&want, "cannot write to %s: it is the same file as the checkpoint's "
                           "%s %s, and replacing it would destroy the checkpoint being "
                           "converted; write the file elsewhere", cases[i].out, cases[i].what,
                           cases[i].path) > 0);
        cr_assert_str_eq(err.message, want);
        cr_assert_str_eq(err.path, cases[i].out);
        uint8_t *is = tu_read_file(cases[i].out, &len1);
        cr_assert(len0 == len1 && memcmp(was, is, len0) == 0, "%s changed", cases[i].out);
        free(want);
        free(was);
        free(is);
    }
    cr_assert_eq(entries(dir), before, "a temporary file was left behind");
    trestle_close(c);
    /* The checkpoint is whole: it opens and restores every tensor. */
    c = tu_open(prefix, NULL);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_error err;
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), 0, "%s", err.message);
    trestle_plan_free(p);
    free(index);
    free(shard0);
    free(shard1);
    free(hard);
    cleanup(c, dir, NULL, prefix);
}

/* Item 4: the rename replaced a device node (as root: /dev/null for the
 * whole machine) or a FIFO with a regular file. Nodes made here only. */
Test(writer_safetensors, refuses_a_device_node_fifo_or_directory_and_leaves_it)
{
    char *dir, *prefix = write_ckpt(&dir);
    char *dev = path_in(dir, "null"), *fifo = path_in(dir, "fifo"), *sub = path_in(dir, "sub");
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) != 0)
        cr_skip_test("mknod needs CAP_MKNOD (%s)", strerror(errno));
    cr_assert_eq(mkfifo(fifo, 0666), 0);
    cr_assert_eq(mkdir(sub, 0755), 0);
    struct { const char *out, *kind; mode_t type; } cases[] = {
        { dev, "a character device", S_IFCHR }, { fifo, "a FIFO", S_IFIFO },
        { sub, "a directory", S_IFDIR },
    };
    trestle_checkpoint *c = tu_open(prefix, NULL);
    int before = entries(dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        trestle_error err;
        char *want;
        struct stat st;
        cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, cases[i].out, NULL, &err),
                     TRESTLE_E_INVALID_ARG, "%s", cases[i].out);
        cr_assert(asprintf(&want, "cannot write to %s: it is %s, not a regular file; a "
                           "conversion writes a new file and renames it into place, which "
                           "would replace it", cases[i].out, cases[i].kind) > 0);
        cr_assert_str_eq(err.message, want);
        cr_assert_eq(stat(cases[i].out, &st), 0);
        cr_assert_eq(st.st_mode & S_IFMT, cases[i].type, "%s was replaced", cases[i].out);
        free(want);
    }
    struct stat st;
    cr_assert_eq(stat(dev, &st), 0);
    cr_assert_eq(st.st_rdev, makedev(1, 3));
    cr_assert_eq(entries(dir), before, "a temporary file was left behind");
    free(dev);
    free(fifo);
    free(sub);
    cleanup(c, dir, NULL, prefix);
}

/* Item 6: a tensor named __metadata__ gave a header with that key twice,
 * and a key that is not UTF-8 went into the JSON raw. Both are refused,
 * naming the tensor; valid UTF-8 goes in as it is. */
Test(writer_safetensors, refuses_a_metadata_or_non_utf8_name_naming_the_tensor)
{
    static const struct { const char *name, *message; } bad[] = {
        { "__metadata__", "tensor '__metadata__': __metadata__ is the safetensors header's own "
                          "key, and no tensor can have that name; name it with a key rule, or "
                          "exclude it" },
        { "bad\xff\xfe", "tensor 'bad\\xff\\xfe': its name is not valid UTF-8 (byte 3), and a "
                         "safetensors header (JSON text) cannot hold it; name it with a key "
                         "rule, or exclude it" },
        { "overlong/\xc0\xaf", "tensor 'overlong/\\xc0\\xaf': its name is not valid UTF-8 (byte "
                               "9), and a safetensors header (JSON text) cannot hold it; name "
                               "it with a key rule, or exclude it" },
        { "surrogate/\xed\xa0\x80", "tensor 'surrogate/\\xed\\xa0\\x80': its name is not valid "
                                    "UTF-8 (byte 10), and a safetensors header (JSON text) "
                                    "cannot hold it; name it with a key rule, or exclude it" },
        { "cut/\xe2\x82", "tensor 'cut/\\xe2\\x82': its name is not valid UTF-8 (byte 4), and a "
                          "safetensors header (JSON text) cannot hold it; name it with a key "
                          "rule, or exclude it" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *dir = tu_mkdtemp();
        const char *names[] = { "ok", bad[i].name };
        char *prefix = write_named(dir, names, 2), *out = path_in(dir, "o.safetensors");
        trestle_checkpoint *c = tu_open(prefix, NULL);
        trestle_error err;
        cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, NULL, &err),
                     TRESTLE_E_INVALID_ARG, "%s was accepted", bad[i].message);
        cr_assert_str_eq(err.message, bad[i].message);
        cr_assert_str_eq(err.key, bad[i].name);
        cr_assert_eq(access(out, F_OK), -1, "a file was written");
        cr_assert_eq(entries(dir), 2, "a temporary file was left behind");
        /* Excluded, the rest converts. */
        const char *ex[] = { bad[i].name };
        trestle_plan_options po;
        trestle_convert_options co;
        trestle_plan_options_init(&po);
        po.excludes = ex;
        po.num_excludes = 1;
        trestle_convert_options_init(&co);
        co.plan = &po;
        cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, &co, out, NULL, &err), 0, "%s",
                     err.message);
        cleanup(c, dir, out, prefix);
    }
    /* Valid UTF-8 beyond ASCII (a 2-, 3- and 4-byte character) is kept as
     * is; a quote, a backslash and control bytes are escaped; the names come
     * in byte order ('A' < 'n' < 'q' < 't'), each write_named's two floats. */
    char *dir = tu_mkdtemp();
    const char *names[] = { "na\xc3\xafve/\xe2\x82\xac/\xf0\x9f\x98\x80", "q\"b\\s",
                            "tab\there\x01", "A0" };
    char *prefix = write_named(dir, names, 4), *out = path_in(dir, "o.safetensors");
    trestle_checkpoint *c = tu_open(prefix, NULL);
    trestle_error err;
    cr_assert_eq(trestle_convert_safetensors(c, NULL, 0, NULL, out, NULL, &err), 0, "%s",
                 err.message);
    size_t len;
    uint8_t *f = tu_read_file(out, &len);
    const char *want =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"A0\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"na\xc3\xafve/\xe2\x82\xac/\xf0\x9f\x98\x80\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[8,16]},"
        "\"q\\\"b\\\\s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
        "\"tab\\u0009here\\u0001\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}";
    cr_assert(len > 8 && strncmp((const char *)f + 8, want, strlen(want)) == 0, "header: %.*s",
              (int)(len > 8 ? len - 8 : 0), f + 8);
    free(f);
    cleanup(c, dir, out, prefix);
}
