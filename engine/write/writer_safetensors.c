/*
 * writer_safetensors.c - trestle_conversion_write() and
 * trestle_convert_safetensors(): a restore whose destination happens to be
 * a safetensors file.
 *
 * Where it sits: around the pipeline, never inside it. conversion.c has
 * planned what each op becomes; here the file is laid out from that
 * (safetensors_header.c), created under a temporary name, sized and
 * mapped, and conversion.c's own plan, each op pointed at its place in the
 * mapping (trestle_plan_set_dest), is restored into it; only when the
 * file holds something other than what that plan restores are the file's
 * tensors planned again. So the bytes in the file are the pipeline's
 * verified bytes, read once, with no staging copy of the whole checkpoint
 * in memory: the page cache holds the file as it is written. A tensor to
 * transpose is transposed in its ready callback, as soon as its bytes are
 * in place and checked, while the pipeline goes on with the others. Only
 * public API drives the restore, as for any client; the file name and the
 * rename make the write atomic, and the output path is checked first so
 * that the rename can never replace the checkpoint's own files or a device
 * node.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bulk.h"
#include "ckpt_types.h"
#include "conversion.h"
#include "cpus.h"
#include "error.h"
#include "safetensors_header.h"
#include "transpose.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux >= 5.14; older kernels refuse the advice, which is handled */
#endif

/* ---- the output path ---- */

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static bool same_file(const struct stat *a, const char *path)
{
    struct stat b;
    return stat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

static int refuse_input(const char *out, const char *what, const char *path, trestle_error *err)
{
    return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, NULL, out, -1, -1,
                              "cannot write to %s: it is the same file as the checkpoint's %s "
                              "%s, and replacing it would destroy the checkpoint being "
                              "converted; write the file elsewhere", out, what, path);
}

/*
 * The finished file is renamed over `out`: refuse an `out` that exists and
 * is not a regular file (a rename would put a regular file in place of a
 * device node or FIFO) or is one of the checkpoint's own files (by device
 * and inode, so any name or hard link counts). Run before the file is
 * created and again just before the rename.
 */
static int check_out_path(const trestle_checkpoint *c, const char *out, trestle_error *err)
{
    struct stat o;
    if (stat(out, &o) != 0)
        return TRESTLE_OK; /* nothing there yet (creating the file reports other errors) */
    if (!S_ISREG(o.st_mode))
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, NULL, out, -1, -1,
                                  "cannot write to %s: it is %s, not a regular file; a "
                                  "conversion writes a new file and renames it into place, "
                                  "which would replace it", out, file_kind(o.st_mode));
    if (same_file(&o, c->index_path))
        return refuse_input(out, "index", c->index_path, err);
    for (int i = 0; i < c->num_shards; i++)
        if (same_file(&o, c->shard_paths[i]))
            return refuse_input(out, "data file", c->shard_paths[i], err);
    return TRESTLE_OK;
}

/* A file error that names the file and keeps errno. */
static int file_error(trestle_error *err, const char *path, const char *what)
{
    int e = errno;
    return trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1, "cannot %s %s: %s", what,
                              path, strerror(e));
}

/*
 * Create `OUT.tmp-XXXXXX` exclusively, mode 0666 less the umask as for any
 * new file (mkstemp's 0600 would make a model file private). On success
 * *tmp is malloc'd and *fd open; on failure both are left NULL / -1.
 */
static int create_temp(const char *out_path, char **tmp, int *fd, trestle_error *err)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(out_path);
    char *name = malloc(plen + sizeof ".tmp-XXXXXX");
    if (!name)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32;
    for (int attempt = 0; attempt < 100; attempt++) {
        memcpy(name, out_path, plen);
        memcpy(name + plen, ".tmp-", 5);
        for (int i = 0; i < 6; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            name[plen + 5 + i] = digits[(seed >> 33) % 36];
        }
        name[plen + 11] = '\0';
        *fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd >= 0) {
            *tmp = name;
            return TRESTLE_OK;
        }
        if (errno != EEXIST)
            break;
    }
    int rc = file_error(err, name, "create");
    free(name);
    return rc;
}

/* Flush the directory entry of `path`, so the rename itself is durable. */
static void sync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the file itself is already on disk */
        close(fd);
    }
    free(copy);
}

/* ---- the restore into the file ---- */

/*
 * Make `len` bytes of the shared mapping at `at` (file offset `off`, a
 * page boundary) resident and writable. MAP_POPULATE maps a shared file's
 * pages read-only (so that the kernel sees them dirtied), and then every
 * first write to one of them, by the reads and copies that fill it, traps
 * to make it writable; MADV_POPULATE_WRITE does that for all of them in
 * one call (10-20 % less system time of a whole convert of 284 MiB, this
 * 2-core VM). Kernels before 5.14 refuse the advice: then a populated
 * mapping over the same addresses, as before. False (errno set) when
 * neither works.
 */
static bool populate(uint8_t *at, uint64_t off, uint64_t len, int fd)
{
    if (len == 0 || madvise(at, (size_t)len, MADV_POPULATE_WRITE) == 0)
        return true;
    return mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE,
                fd, (off_t)off) != MAP_FAILED;
}

/* From this size up the data's pages are populated by two threads, a
 * half each: ext4 makes a shared file page writable (page_mkwrite) at
 * about 6.5 GB/s on one thread of this 2-core VM, and two take 0.70 of the
 * time (284 MiB: 42 -> 29.5 ms; four take longer again). Below it a thread
 * costs more than it saves. */
#define POPULATE_SPLIT_MIN ((uint64_t)16 << 20)
#define POPULATE_ALIGN ((uint64_t)2 << 20) /* where the halves meet: a page boundary */
_Static_assert(POPULATE_SPLIT_MIN > 2 * POPULATE_ALIGN, "each half holds something");

/* The back half of the data's mapping, populated on a thread of its own
 * while this one writes the header and then populates the front half. */
typedef struct populate_job {
    uint8_t *at;
    uint64_t off, len;
    int fd;
    int err;         /* the thread's errno when it failed, else 0 */
    bool started;    /* a thread runs (or ran) it and is not joined yet */
    pthread_t thread;
} populate_job;

static void *populate_thread(void *arg)
{
    populate_job *j = arg;
    j->err = populate(j->at, j->off, j->len, j->fd) ? 0 : errno ? errno : EIO;
    return NULL;
}

/* Start the back half of `len` bytes at `at` (file offset `off`) on a
 * thread when they are many and a second processor is there; *front is
 * what the caller populates itself: the front half, or all of it. */
static void populate_start(populate_job *j, uint8_t *at, uint64_t off, uint64_t len, int fd,
                           uint64_t *front)
{
    *front = len;
    if (len < POPULATE_SPLIT_MIN || trestle__usable_cpus() < 2)
        return;
    uint64_t half = (len / 2 + POPULATE_ALIGN - 1) & ~(POPULATE_ALIGN - 1);
    *j = (populate_job){ .at = at + half, .off = off + half, .len = len - half, .fd = fd };
    if (pthread_create(&j->thread, NULL, populate_thread, j) == 0) {
        j->started = true;
        *front = half;
    }
}

/* Wait for the back half: 0, or the errno it failed with. Once only;
 * then 0 (the fail path joins whatever the way there left running). */
static int populate_join(populate_job *j)
{
    if (!j->started)
        return 0;
    pthread_join(j->thread, NULL);
    j->started = false;
    return j->err;
}

/* What the ready callback needs to find op i's entry. */
typedef struct write_ctx {
    const trestle_conversion *cv;
    const st_slot *slots;       /* op i is slot i (a plan made here), or NULL: op i is entry i
                                   (the conversion's own plan) */
    trestle_ready_fn user_fn;   /* the caller's on_ready, or NULL */
    void *user;
    atomic_size_t nomem;        /* 1 + the op a transpose found no memory for, or 0 */
} write_ctx;

static const cv_entry *entry_of(const write_ctx *x, size_t i)
{
    return &x->cv->e[x->slots ? x->slots[i].entry : i];
}

/* Transpose a tensor in place in the file as soon as it is verified there
 * (through a copy: the two layouts overlap), then tell the caller, who is
 * promised the checkpoint key as the op's name (trestle.h), whichever
 * plan restores it. */
static int on_written(void *user, size_t i, const trestle_plan_op_info *op)
{
    write_ctx *x = user;
    const cv_entry *e = x->cv->transposed ? entry_of(x, i) : NULL;
    if (e && e->transposed && e->bytes) {
        uint8_t *at = op->data;
        void *copy = malloc(e->bytes);
        if (!copy) {
            atomic_store(&x->nomem, i + 1);
            return 1;
        }
        memcpy(copy, at, e->bytes);
        /* The file's shape is [b, a]; the bytes landed as [a, b]. */
        trestle__transpose2d(at, copy, (uint64_t)e->dims[1], (uint64_t)e->dims[0],
                             trestle_dtype_size(e->out_dtype));
        free(copy);
    }
    if (!x->user_fn)
        return 0;
    trestle_plan_op_info named = *op;
    if (named.key)
        named.name = named.key;
    return x->user_fn(x->user, i, &named);
}

/* The plan that restores the slots into the file at `data`: the
 * conversion's own, each op pointed at its slot, when it kept it (spent
 * then: *own set); else each slot's tensor planned again, by key, op k
 * for slot k. */
static int plan_into(trestle_conversion *cv, const st_slot *s, size_t m, uint8_t *data,
                     trestle_plan **out, bool *own, trestle_error *err)
{
    *own = cv->plan != NULL;
    if (cv->plan) {
        *out = cv->plan;
        cv->plan = NULL;
        for (size_t k = 0; k < m; k++) {
            const cv_entry *e = &cv->e[s[k].entry];
            int rc = trestle_plan_set_dest(*out, s[k].entry, TRESTLE_DEST_HOST,
                                           data + s[k].offset, e->bytes, err);
            if (rc != TRESTLE_OK)
                return rc;
        }
        return TRESTLE_OK;
    }
    trestle_plan_options po;
    trestle_op *ops = trestle__bulk_calloc(m ? m : 1, sizeof *ops);
    if (!ops)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m; i++) {
        const cv_entry *e = &cv->e[s[i].entry];
        ops[i] = (trestle_op){ .name = e->key, .shape_and_slices = e->spec,
                               .dest_kind = TRESTLE_DEST_HOST, .ptr = data + s[i].offset,
                               .capacity = e->bytes,
                               .target_dtype = e->out_dtype != e->dtype ? e->out_dtype : 0 };
    }
    /* Renames, exclusions and misses were settled by the first plan: the
     * ops are keys now. */
    trestle_plan_options_init(&po);
    po.max_batch_bytes = cv->max_batch_bytes;
    po.max_gap_bytes = cv->max_gap_bytes;
    int rc = trestle_plan_create(cv->c, ops, m, &po, out, err);
    trestle__bulk_free(ops);
    return rc;
}

int trestle_conversion_write(trestle_conversion *cv, const char *out_path,
                             trestle_convert_stats *stats, trestle_error *err)
{
    trestle_restore_options ropt;
    trestle_plan *plan = NULL;
    st_slot *slots = NULL;
    size_t count = 0;
    uint64_t data_bytes = 0, file_bytes = 0, header_bytes = 0, map_from = 0, map_bytes = 0;
    char *tmp = NULL;
    int fd = -1, rc = TRESTLE_OK;
    uint8_t *map = NULL;
    bool own_plan = false;
    populate_job back = { .started = false };
    uint64_t front = 0;

    TR_FAIL_IF(!cv || !out_path, err, TRESTLE_E_INVALID_ARG,
               "trestle_conversion_write needs a conversion and an output path");
    TR_FORWARD(trestle__safetensors_layout(cv, &slots, &count, &header_bytes, &data_bytes, err));
    file_bytes = header_bytes + data_bytes;
    TR_FORWARD(check_out_path(cv->c, out_path, err));

    /* The temporary file beside the output, so the rename stays in one
     * file system and is atomic. */
    TR_FORWARD(create_temp(out_path, &tmp, &fd, err));
    /* Allocate the blocks up front and map them populated: page faults
     * one page at a time into a sparse file run at a third of write()'s
     * speed, while prefaulting allocated extents costs almost nothing (ext4:
     * 1 GiB in 0.26 s against 2.0 s). File systems without fallocate
     * (EOPNOTSUPP) get a sparse file and fault as they go. */
    if (fallocate(fd, 0, 0, (off_t)file_bytes) != 0 &&
        (errno != EOPNOTSUPP || ftruncate(fd, (off_t)file_bytes) != 0)) {
        rc = file_error(err, tmp, "allocate");
        goto fail;
    }
    if (count > 0) {
        /* The data only, from the page the header ends in: the header's
         * pages, once mapped, would stay resident with the data. */
        map_from = header_bytes & ~(uint64_t)(sysconf(_SC_PAGESIZE) - 1);
        map_bytes = file_bytes - map_from;
        map = mmap(NULL, (size_t)map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   (off_t)map_from);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = file_error(err, tmp, "map");
            goto fail;
        }
        TR_FORWARD(plan_into(cv, slots, count, map + (header_bytes - map_from), &plan, &own_plan,
                             err));
        /* Populated only now: the planner's working memory is gone before
         * the data's pages are resident. The back half starts at once, on
         * a second thread, and is made resident while the header is
         * written (at 100,000 tensors that is 11 MiB and 7 ms). */
        populate_start(&back, map, map_from, map_bytes, fd, &front);
    }
    /* The header, formatted in memory of its exact size (huge pages from
     * 2 MiB: a model of 100,000 tensors has 11 MiB of header, and 4 KiB
     * page faults were most of its cost) and written. Formatting it in the
     * mapped file instead took longer still: a shared file page's first
     * write fault costs the file system more than write() does. */
    uint8_t *header = trestle__bulk_calloc((size_t)header_bytes, 1);
    if (!header) {
        rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory for a header of %"
                                   PRIu64 " bytes", header_bytes);
        goto fail;
    }
    trestle__safetensors_header_write(cv, slots, count, header);
    ssize_t wrote = pwrite(fd, header, (size_t)header_bytes, 0);
    int wrote_errno = wrote >= 0 ? EIO : errno; /* short: out of space or quota */
    trestle__bulk_free(header);
    if (wrote != (ssize_t)header_bytes) {
        errno = wrote_errno;
        rc = file_error(err, tmp, "write the header of");
        goto fail;
    }
    if (count > 0) {
        int back_errno = populate(map, map_from, front, fd) ? populate_join(&back) : errno;
        if (back_errno != 0) {
            errno = back_errno;
            rc = file_error(err, tmp, "map");
            goto fail;
        }
        /* The slots were the plan's destinations; from here only a
         * transpose of a plan made here needs them, to find its entry. */
        if (!cv->transposed || own_plan) {
            trestle__bulk_free(slots);
            slots = NULL;
        }
        write_ctx x = { cv, slots, cv->ropt.on_ready, cv->ropt.user, 0 };
        ropt = cv->ropt;
        ropt.verify = 1;
        ropt.device = -1;
        ropt.devices = NULL;
        ropt.num_devices = 0;
        ropt.host_map = 0;
        ropt.on_ready = on_written;
        ropt.user = &x;
        rc = trestle_restore(plan, &ropt, stats ? &stats->restore : NULL, err);
        size_t nomem = atomic_load(&x.nomem);
        if (rc != TRESTLE_OK && nomem) {
            const char *name = entry_of(&x, nomem - 1)->name;
            rc = trestle__error_set(err, TRESTLE_E_NOMEM, 0, name, NULL, -1, -1,
                                    "out of memory transposing tensor %s", name);
        }
        if (rc != TRESTLE_OK)
            goto fail;
    }
    if (cv->sync && map_bytes > 0 && msync(map, (size_t)map_bytes, MS_SYNC) != 0) {
        rc = file_error(err, tmp, "flush");
        goto fail;
    }
    if (cv->sync && fdatasync(fd) != 0) {
        rc = file_error(err, tmp, "flush");
        goto fail;
    }
    /* Again: the path may have changed while the tensors were written. */
    TR_FORWARD(check_out_path(cv->c, out_path, err));
    if (rename(tmp, out_path) != 0) {
        rc = file_error(err, out_path, "rename the finished file to");
        goto fail;
    }
    if (cv->sync)
        sync_parent(out_path);
    free(tmp);
    tmp = NULL;
    if (stats) {
        stats->tensors = count;
        stats->skipped = cv->n - count;
        stats->header_bytes = header_bytes;
        stats->file_bytes = file_bytes;
    }
fail:
    populate_join(&back); /* before the mapping it fills goes */
    if (map && map_bytes > 0)
        munmap(map, (size_t)map_bytes);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    /* The conversion's own plan is spent too: its ops point into this
     * file. A later write plans again. */
    trestle_plan_free(plan);
    trestle_plan_free(cv ? cv->plan : NULL);
    if (cv)
        cv->plan = NULL;
    trestle__bulk_free(slots);
    return rc;
}

int trestle_convert_safetensors(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                                const trestle_convert_options *opt, const char *out_path,
                                trestle_convert_stats *stats, trestle_error *err)
{
    trestle_conversion *cv;
    if (!out_path)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "trestle_convert_safetensors needs an output path");
    int rc = trestle_conversion_create(c, ops, n, opt, &cv, err);
    if (rc == TRESTLE_OK)
        rc = trestle_conversion_write(cv, out_path, stats, err);
    trestle_conversion_free(cv);
    return rc;
}
