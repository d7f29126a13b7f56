/*
 * cli_bench_ceiling.c - the machine's own ceilings for `trestle bench`,
 * measured in the same run as the restores they are compared with: raw
 * reads of the same shard bytes (buffered, and O_DIRECT with a deep
 * io_uring queue), CRC32C per core, memcpy per core, and pinned/pageable
 * host-to-device copies. Also dropping the page cache for cold runs.
 *
 * The raw reads are the CLI's own code (libc and liburing), not the
 * engine's, so they show what the hardware gives without trestle. The CRC
 * ceiling goes through the public API (a DISCARD restore), since the API
 * has no CRC function. The CUDA runtime is loaded with dlopen, so the CLI
 * builds and runs without CUDA and reports "n/a" instead.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define RAW_BLOCK (1u << 20)   /* bytes per raw read */
#define RAW_QUEUE_DEPTH 64u    /* io_uring reads in flight */
#define RAW_THREADS 16         /* pread pool size when io_uring is unavailable */
#define DIRECT_ALIGN 4096u     /* O_DIRECT buffer/length alignment */
#define COPY_BYTES (256u << 20) /* memcpy and host-to-device buffer size */
#define STAGE_BYTES (8u << 20)  /* the engine's default staging chunk */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keep the best (shortest) run of `bytes` in `out`. */
static void keep_best(cli_ceiling *out, uint64_t bytes, double seconds)
{
    if (seconds <= 0 || bytes == 0)
        return;
    double gbps = (double)bytes / seconds / 1e9;
    if (!out->valid || gbps > out->gbps) {
        out->valid = 1;
        out->gbps = gbps;
        out->bytes = bytes;
        out->seconds = seconds;
    }
}

static void set_na(cli_ceiling *out, const char *what, const char *detail)
{
    out->valid = 0;
    snprintf(out->note, sizeof out->note, "%.64s%s%.120s", what, detail ? ": " : "",
             detail ? detail : "");
}

/* ---- page cache ---- */

/* Bytes of `path` resident in the page cache (mincore), or 0 when unknown. */
static uint64_t cached_bytes(const char *path, uint64_t *size)
{
    uint64_t resident = 0;
    struct stat st;
    int fd = cli_open_regular(path, 0);
    *size = 0;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        long page = sysconf(_SC_PAGESIZE);
        size_t len = (size_t)st.st_size, pages = (len + (size_t)page - 1) / (size_t)page;
        void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = malloc(pages);
        *size = (uint64_t)st.st_size;
        if (map != MAP_FAILED && vec && mincore(map, len, vec) == 0)
            for (size_t i = 0; i < pages; i++)
                if (vec[i] & 1)
                    resident += (uint64_t)page;
        if (resident > *size)
            resident = *size;
        free(vec);
        if (map != MAP_FAILED)
            munmap(map, len);
    }
    close(fd);
    return resident;
}

int cli_bench_drop_cache(const trestle_checkpoint *c, char *what, size_t cap)
{
    trestle_checkpoint_info info;
    int how = -1, proc_errno = 0, fadv_errno = 0;

    trestle_checkpoint_get_info(c, &info);
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && write(fd, "3\n", 2) == 2)
        how = 0;
    else
        proc_errno = errno;
    if (fd >= 0)
        close(fd);
    if (how != 0) {
        /* fadvise leaves dirty pages alone, so write them back first. */
        how = 1;
        for (int s = -1; s < info.num_shards; s++) {
            const char *path = s < 0 ? info.index_path : trestle_shard_path(c, s);
            int f = path ? cli_open_regular(path, 0) : -1;
            int rc = -1;
            if (f >= 0) {
                fdatasync(f);
                rc = posix_fadvise(f, 0, 0, POSIX_FADV_DONTNEED);
                close(f);
            }
            if (f < 0 || rc != 0) {
                fadv_errno = f < 0 ? errno : rc;
                how = -1;
            }
        }
    }
    uint64_t total = 0, resident = 0;
    for (int s = 0; s < info.num_shards; s++) {
        uint64_t size;
        const char *path = trestle_shard_path(c, s);
        if (path) {
            resident += cached_bytes(path, &size);
            total += size;
        }
    }
    double pct = total ? 100.0 * (double)resident / (double)total : 0;
    if (how == 0)
        snprintf(what, cap, "page cache dropped with /proc/sys/vm/drop_caches (%.0f%% of shard "
                 "bytes still cached)", pct);
    else if (how == 1)
        snprintf(what, cap, "page cache dropped with fadvise (no permission for drop_caches: %s; "
                 "%.0f%% of shard bytes still cached)", strerror(proc_errno), pct);
    else
        snprintf(what, cap, "page cache NOT dropped (drop_caches: %s; fadvise: %s; %.0f%% of "
                 "shard bytes still cached)", strerror(proc_errno), strerror(fadv_errno), pct);
    return how;
}

/* ---- raw reads ---- */

typedef struct raw_file {
    int fd;
    uint64_t size;
} raw_file;

/* Open every shard (O_DIRECT when asked). Returns the count, or -1 with
 * `out->note` set. */
static int open_shards(const trestle_checkpoint *c, int direct, raw_file *files, int max,
                       cli_ceiling *out)
{
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    int n = 0;
    for (int s = 0; s < info.num_shards && n < max; s++) {
        const char *path = trestle_shard_path(c, s);
        struct stat st;
        /* The errno of the call that failed, taken at once: set_na and
         * close must not stand in for it. */
        int fd = path ? cli_open_regular(path, direct ? O_DIRECT : 0) : -1;
        int why = !path ? ENOENT : fd < 0 ? errno : fstat(fd, &st) != 0 ? errno : 0;
        if (why != 0) {
            set_na(out, direct ? "cannot open shard with O_DIRECT" : "cannot open shard",
                   strerror(why));
            if (fd >= 0)
                close(fd);
            for (int i = 0; i < n; i++)
                close(files[i].fd);
            return -1;
        }
        files[n].fd = fd;
        files[n].size = (uint64_t)st.st_size;
        n++;
    }
    return n;
}

/* One thread, read() of RAW_BLOCK at a time, file after file: what cat does. */
static int read_buffered(const raw_file *files, int n, uint64_t *bytes, char *note, size_t cap)
{
    char *buf = malloc(RAW_BLOCK);
    if (!buf)
        return -1;
    *bytes = 0;
    for (int i = 0; i < n; i++) {
        off_t off = 0;
        for (;;) {
            ssize_t r = pread(files[i].fd, buf, RAW_BLOCK, off);
            if (r < 0) {
                snprintf(note, cap, "read failed: %s", strerror(errno));
                free(buf);
                return -1;
            }
            if (r == 0)
                break;
            off += r;
            *bytes += (uint64_t)r;
        }
    }
    free(buf);
    return 0;
}

/* The block list a deep-queue reader works through. */
typedef struct raw_work {
    const raw_file *files;
    int nfiles;
    atomic_uint_fast64_t next; /* next block, numbered across files */
    atomic_uint_fast64_t bytes;
    atomic_int failed;         /* errno of the first failure, else 0 */
} raw_work;

/* Map global block `b` to (file, offset); 0 when past the last block. */
static int block_at(const raw_work *w, uint64_t b, int *file, uint64_t *off)
{
    for (int i = 0; i < w->nfiles; i++) {
        uint64_t blocks = (w->files[i].size + RAW_BLOCK - 1) / RAW_BLOCK;
        if (b < blocks) {
            *file = i;
            *off = b * RAW_BLOCK;
            return 1;
        }
        b -= blocks;
    }
    return 0;
}

static void *pread_worker(void *arg)
{
    raw_work *w = arg;
    void *buf = NULL;
    if (posix_memalign(&buf, DIRECT_ALIGN, RAW_BLOCK) != 0) {
        atomic_store(&w->failed, ENOMEM);
        return NULL;
    }
    for (;;) {
        int f;
        uint64_t off;
        if (!block_at(w, atomic_fetch_add(&w->next, 1), &f, &off) || atomic_load(&w->failed))
            break;
        ssize_t r = pread(w->files[f].fd, buf, RAW_BLOCK, (off_t)off);
        if (r < 0) {
            atomic_store(&w->failed, errno);
            break;
        }
        atomic_fetch_add(&w->bytes, (uint64_t)r);
    }
    free(buf);
    return NULL;
}

/* O_DIRECT through a pool of RAW_THREADS pread threads. */
static int read_pool(raw_work *w)
{
    pthread_t t[RAW_THREADS];
    int started = 0;
    for (; started < RAW_THREADS; started++)
        if (pthread_create(&t[started], NULL, pread_worker, w) != 0)
            break;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    return started ? 0 : -1;
}

/* O_DIRECT through io_uring with RAW_QUEUE_DEPTH reads in flight. Returns
 * 0, -ENOSYS-like negative when io_uring cannot start, or an errno > 0. */
static int read_uring(raw_work *w)
{
    struct io_uring ring;
    void *bufs[RAW_QUEUE_DEPTH] = { 0 };
    unsigned inflight = 0;
    int rc = io_uring_queue_init(RAW_QUEUE_DEPTH, &ring, 0);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < RAW_QUEUE_DEPTH; i++)
        if (posix_memalign(&bufs[i], DIRECT_ALIGN, RAW_BLOCK) != 0) {
            rc = ENOMEM;
            goto done;
        }
    /* Fill the queue, then resubmit each slot as its read completes. */
    for (unsigned slot = 0; slot < RAW_QUEUE_DEPTH; slot++) {
        int f;
        uint64_t off;
        if (!block_at(w, atomic_fetch_add(&w->next, 1), &f, &off))
            break;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_read(sqe, w->files[f].fd, bufs[slot], RAW_BLOCK, off);
        io_uring_sqe_set_data64(sqe, slot);
        inflight++;
    }
    while (inflight) {
        struct io_uring_cqe *cqe;
        io_uring_submit(&ring);
        int wr = io_uring_wait_cqe(&ring, &cqe);
        if (wr < 0) {
            rc = -wr;
            goto done;
        }
        unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        inflight--;
        if (res < 0) {
            rc = -res;
            continue; /* drain what is in flight before leaving */
        }
        atomic_fetch_add(&w->bytes, (uint64_t)res);
        int f;
        uint64_t off;
        if (rc == 0 && block_at(w, atomic_fetch_add(&w->next, 1), &f, &off)) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_read(sqe, w->files[f].fd, bufs[slot], RAW_BLOCK, off);
            io_uring_sqe_set_data64(sqe, slot);
            inflight++;
        }
    }
done:
    io_uring_queue_exit(&ring);
    for (unsigned i = 0; i < RAW_QUEUE_DEPTH; i++)
        free(bufs[i]);
    return rc;
}

void cli_bench_raw_read(const trestle_checkpoint *c, int direct, int cold, int runs,
                        cli_ceiling *out)
{
    raw_file files[256];
    char what[256], note[128] = "";
    int used_pool = 0;

    memset(out, 0, sizeof *out);
    int n = open_shards(c, direct, files, (int)(sizeof files / sizeof files[0]), out);
    if (n < 0)
        return;
    for (int run = 0; run < runs; run++) {
        uint64_t bytes = 0;
        if (cold)
            cli_bench_drop_cache(c, what, sizeof what);
        double t0 = now_seconds();
        if (!direct) {
            if (read_buffered(files, n, &bytes, note, sizeof note) != 0) {
                set_na(out, note[0] ? note : "out of memory", NULL);
                goto done;
            }
        } else {
            raw_work w = { .files = files, .nfiles = n };
            int rc = used_pool ? -1 : read_uring(&w);
            if (rc < 0) {
                /* io_uring refused (old kernel, seccomp): the pread pool instead. */
                used_pool = 1;
                atomic_store(&w.next, 0);
                atomic_store(&w.bytes, 0);
                t0 = now_seconds();
                if (read_pool(&w) != 0)
                    rc = EAGAIN;
                else
                    rc = atomic_load(&w.failed);
            }
            if (rc > 0) {
                set_na(out, "O_DIRECT read failed", strerror(rc));
                goto done;
            }
            bytes = atomic_load(&w.bytes);
        }
        keep_best(out, bytes, now_seconds() - t0);
    }
    if (!direct)
        snprintf(out->note, sizeof out->note, "read() of 1 MiB blocks, 1 thread, %s page cache",
                 cold ? "cold" : "warm");
    else if (used_pool)
        snprintf(out->note, sizeof out->note, "O_DIRECT, pread pool of %d threads, 1 MiB blocks "
                 "(io_uring unavailable)", RAW_THREADS);
    else
        snprintf(out->note, sizeof out->note, "O_DIRECT, io_uring queue depth %u, 1 MiB blocks",
                 RAW_QUEUE_DEPTH);
done:
    for (int i = 0; i < n; i++)
        close(files[i].fd);
}

/* ---- CRC32C and memcpy per core ---- */

void cli_bench_crc(const trestle_checkpoint *c, cli_ceiling *out)
{
    size_t n = trestle_tensor_count(c), nops = 0;
    trestle_op *ops = calloc(n ? n : 1, sizeof *ops);
    trestle_error err;

    memset(out, 0, sizeof *out);
    if (!ops) {
        set_na(out, "out of memory", NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(c, i, &t) != TRESTLE_OK || t.dtype == TRESTLE_DT_VARIANT ||
            t.dtype == TRESTLE_DT_RESOURCE)
            continue;
        ops[nops].name = t.name;
        ops[nops].dest_kind = TRESTLE_DEST_DISCARD;
        nops++;
    }
    for (int run = 0; run < 2; run++) {
        trestle_plan *plan = NULL;
        trestle_restore_options ro;
        trestle_stats st;
        trestle_restore_options_init(&ro);
        ro.threads = 1;
        ro.verify = 1;
        memset(&st, 0, sizeof st);
        if (trestle_plan_create(c, ops, nops, NULL, &plan, &err) != TRESTLE_OK ||
            trestle_restore(plan, &ro, &st, &err) != TRESTLE_OK) {
            set_na(out, "DISCARD restore failed", err.message);
            trestle_plan_free(plan);
            break;
        }
        trestle_plan_free(plan);
        keep_best(out, st.bytes_verified, st.verify_seconds);
    }
    if (out->valid)
        snprintf(out->note, sizeof out->note, "DISCARD restore, 1 worker: CRC busy time");
    free(ops);
}

void cli_bench_memcpy(cli_ceiling *out)
{
    /* Like the engine's copies: from one staging-sized buffer that CRC32C
     * has just read (so it is cache-hot) into a large destination. */
    char *src = malloc(STAGE_BYTES), *dst = malloc(COPY_BYTES);
    memset(out, 0, sizeof *out);
    if (!src || !dst) {
        set_na(out, "out of memory", NULL);
        goto done;
    }
    /* Touch both first so that page faults are not part of the figure. */
    memset(src, 0x5a, STAGE_BYTES);
    memset(dst, 0, COPY_BYTES);
    for (int run = 0; run < 3; run++) {
        double t0 = now_seconds();
        for (size_t off = 0; off < COPY_BYTES; off += STAGE_BYTES)
            memcpy(dst + off, src, STAGE_BYTES);
        __asm__ __volatile__("" : : "r"(dst) : "memory"); /* keep the copies */
        keep_best(out, COPY_BYTES, now_seconds() - t0);
    }
    snprintf(out->note, sizeof out->note, "memcpy of an 8 MiB buffer into 256 MiB of touched "
             "memory, 1 thread");
done:
    free(src);
    free(dst);
}

/* ---- host-to-device copies (CUDA runtime via dlopen) ---- */

typedef struct cudart {
    void *lib;
    int (*set_device)(int);
    int (*malloc_dev)(void **, size_t);
    int (*free_dev)(void *);
    int (*malloc_host)(void **, size_t);
    int (*free_host)(void *);
    int (*memcpy_fn)(void *, const void *, size_t, int);
    int (*synchronize)(void);
} cudart;

#define CUDA_MEMCPY_H2D 1 /* cudaMemcpyHostToDevice */

/* dlsym into a function pointer without a data-to-function cast warning. */
static int sym(void *lib, const char *name, void *fnp)
{
    void *p = dlsym(lib, name);
    memcpy(fnp, &p, sizeof p);
    return p ? 0 : -1;
}

static int cudart_load(cudart *rt)
{
    static const char *const names[] = { "libcudart.so", "libcudart.so.13", "libcudart.so.12",
                                         "libcudart.so.11.0" };
    memset(rt, 0, sizeof *rt);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !rt->lib; i++)
        rt->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!rt->lib)
        return -1;
    if (sym(rt->lib, "cudaSetDevice", &rt->set_device) ||
        sym(rt->lib, "cudaMalloc", &rt->malloc_dev) || sym(rt->lib, "cudaFree", &rt->free_dev) ||
        sym(rt->lib, "cudaMallocHost", &rt->malloc_host) ||
        sym(rt->lib, "cudaFreeHost", &rt->free_host) ||
        sym(rt->lib, "cudaMemcpy", &rt->memcpy_fn) ||
        sym(rt->lib, "cudaDeviceSynchronize", &rt->synchronize)) {
        dlclose(rt->lib);
        rt->lib = NULL;
        return -1;
    }
    return 0;
}

void cli_bench_h2d(int device, int pinned, cli_ceiling *out)
{
    cudart rt;
    void *d_buf = NULL, *h_buf = NULL;

    memset(out, 0, sizeof *out);
    if (cudart_load(&rt) != 0) {
        set_na(out, "no CUDA runtime: libcudart.so not loadable", NULL);
        return;
    }
    if (rt.set_device(device) != 0 || rt.malloc_dev(&d_buf, COPY_BYTES) != 0) {
        set_na(out, "no CUDA device", NULL);
        goto done;
    }
    if (pinned ? rt.malloc_host(&h_buf, COPY_BYTES) != 0 : !(h_buf = malloc(COPY_BYTES))) {
        set_na(out, "host allocation failed", NULL);
        goto done;
    }
    memset(h_buf, 0x5a, COPY_BYTES);
    for (int run = 0; run < 4; run++) {
        double t0 = now_seconds();
        if (rt.memcpy_fn(d_buf, h_buf, COPY_BYTES, CUDA_MEMCPY_H2D) != 0 || rt.synchronize() != 0) {
            set_na(out, "cudaMemcpy failed", NULL);
            goto done;
        }
        if (run > 0) /* the first copy pays for context and mapping setup */
            keep_best(out, COPY_BYTES, now_seconds() - t0);
    }
    snprintf(out->note, sizeof out->note, "cudaMemcpy of 256 MiB from %s memory to device %d",
             pinned ? "pinned" : "pageable", device);
done:
    if (h_buf)
        pinned ? (void)rt.free_host(h_buf) : free(h_buf);
    if (d_buf)
        rt.free_dev(d_buf);
    dlclose(rt.lib);
}
