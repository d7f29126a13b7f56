/*
 * cli_bench_ceiling.c - the yardsticks of `trestle bench`, measured in the
 * same run as the restores they are compared with: what a plain reader of
 * the same shards gets (one thread, read() of 1 MiB blocks, as dd and cat),
 * an O_DIRECT deep-queue read of them, CRC32C per core, memcpy per core,
 * and pinned/pageable host-to-device copies. Also dropping the page cache
 * for cold runs.
 *
 * Two kinds (cli.h): a reference is what a plain program gets, so a stage
 * may beat it (the engine keeps many reads in flight) and its median run
 * is the figure, as the restores' medians are; a ceiling is the most a core
 * or a link gives, its best run the figure, and nothing can honestly beat
 * it. The reads and copies are the CLI's own code (libc, liburing, ISA-L),
 * not the engine's, so they show what the machine gives without trestle.
 * The host-to-device ceilings are cli_bench_h2d.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
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
#define COPY_BYTES (256u << 20) /* bytes of one per-core ceiling run */
#define STAGE_BYTES (8u << 20)  /* the engine's default staging chunk */
#define CRC_STEP (256u << 10)   /* the engine's CRC-then-copy step, which fits in L2 */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_ceiling_add(cli_ceiling *c, uint64_t bytes, double seconds)
{
    if (seconds <= 0 || bytes == 0 || c->runs >= CLI_YARDSTICK_RUNS)
        return;
    c->each[c->runs++] = (double)bytes / seconds / 1e9;
    c->bytes = bytes;
}

void cli_ceiling_finish(cli_ceiling *c)
{
    cli_spread sp;
    c->valid = c->runs > 0 && cli_spread_of(c->each, (size_t)c->runs, &sp) == 0;
    if (!c->valid)
        return;
    c->gbps = c->kind == CLI_CEILING ? sp.max : sp.median;
    c->seconds = c->gbps > 0 ? (double)c->bytes / c->gbps / 1e9 : 0;
}

static void set_na(cli_ceiling *out, const char *what, const char *detail)
{
    out->valid = 0;
    snprintf(out->note, sizeof out->note, "%.120s%s%.120s", what, detail ? ": " : "",
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

/* Open every shard with O_DIRECT into *files (malloc'd). Returns the
 * count, or -1 with `out->note` set. */
static int open_shards(const trestle_checkpoint *c, raw_file **files, cli_ceiling *out)
{
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    int n = 0;
    *files = calloc(info.num_shards > 0 ? (size_t)info.num_shards : 1, sizeof **files);
    if (!*files) {
        set_na(out, "out of memory", NULL);
        return -1;
    }
    for (int s = 0; s < info.num_shards; s++) {
        const char *path = trestle_shard_path(c, s);
        struct stat st;
        /* The errno of the call that failed, taken at once: set_na and
         * close must not stand in for it. */
        int fd = path ? cli_open_regular(path, O_DIRECT) : -1;
        int why = !path ? ENOENT : fd < 0 ? errno : fstat(fd, &st) != 0 ? errno : 0;
        if (why != 0) {
            set_na(out, "cannot open shard with O_DIRECT", strerror(why));
            if (fd >= 0)
                close(fd);
            for (int i = 0; i < n; i++)
                close((*files)[i].fd);
            free(*files);
            *files = NULL;
            return -1;
        }
        (*files)[n].fd = fd;
        (*files)[n].size = (uint64_t)st.st_size;
        n++;
    }
    return n;
}

/*
 * One run of the plain reader: each shard opened in turn, read() to its
 * end in RAW_BLOCK blocks into `buf`, closed. 0 with *bytes, else -1 with
 * `note` set (a signal stops it too, with note "").
 */
static int read_plain(const trestle_checkpoint *c, char *buf, uint64_t *bytes, char *note,
                      size_t cap)
{
    trestle_checkpoint_info info;
    trestle_checkpoint_get_info(c, &info);
    *bytes = 0;
    for (int s = 0; s < info.num_shards; s++) {
        const char *path = trestle_shard_path(c, s);
        int fd = path ? cli_open_regular(path, 0) : -1;
        if (fd < 0) {
            snprintf(note, cap, "cannot open %s: %s", path ? path : "a shard",
                     strerror(path ? errno : ENOENT));
            return -1;
        }
        for (;;) {
            ssize_t r = read(fd, buf, RAW_BLOCK);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                snprintf(note, cap, "read of %s failed: %s", path, strerror(errno));
                close(fd);
                return -1;
            }
            if (r == 0)
                break;
            *bytes += (uint64_t)r;
            if (cli_interrupted()) {
                note[0] = '\0';
                close(fd);
                return -1;
            }
        }
        close(fd);
    }
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

void cli_bench_plain_read(const trestle_checkpoint *c, int cold, int runs, cli_ceiling *out)
{
    char what[256], note[192] = "";
    void *buf = NULL;

    memset(out, 0, sizeof *out);
    out->kind = CLI_REFERENCE;
    /* Page-aligned, as dd's and cat's buffers are: an unaligned destination
     * makes the kernel's copy out of the page cache up to twice as slow. */
    if (posix_memalign(&buf, DIRECT_ALIGN, RAW_BLOCK) != 0) {
        set_na(out, "out of memory", NULL);
        return;
    }
    for (int run = 0; run < runs && !cli_interrupted(); run++) {
        uint64_t bytes = 0;
        if (cold)
            cli_bench_drop_cache(c, what, sizeof what);
        double t0 = now_seconds();
        if (read_plain(c, buf, &bytes, note, sizeof note) != 0) {
            if (note[0])
                set_na(out, note, NULL);
            free(buf);
            return;
        }
        cli_ceiling_add(out, bytes, now_seconds() - t0);
    }
    free(buf);
    cli_ceiling_finish(out);
    snprintf(out->note, sizeof out->note, "1 thread opens each shard in turn and read()s it in "
             "1 MiB blocks into a page-aligned buffer, as dd bs=1M; %s page cache, median of "
             "%d", cold ? "cold" : "warm", out->runs);
}

void cli_bench_direct_read(const trestle_checkpoint *c, int cold, int runs, cli_ceiling *out)
{
    raw_file *files = NULL;
    char what[256];
    int used_pool = 0;

    memset(out, 0, sizeof *out);
    out->kind = CLI_REFERENCE;
    int n = open_shards(c, &files, out);
    if (n < 0)
        return;
    for (int run = 0; run < runs && !cli_interrupted(); run++) {
        if (cold)
            cli_bench_drop_cache(c, what, sizeof what);
        double t0 = now_seconds();
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
        cli_ceiling_add(out, atomic_load(&w.bytes), now_seconds() - t0);
    }
    cli_ceiling_finish(out);
    if (used_pool)
        snprintf(out->note, sizeof out->note, "O_DIRECT, pread pool of %d threads, 1 MiB blocks "
                 "(io_uring unavailable), median of %d", RAW_THREADS, out->runs);
    else
        snprintf(out->note, sizeof out->note, "O_DIRECT, io_uring queue depth %u, 1 MiB blocks, "
                 "median of %d", RAW_QUEUE_DEPTH, out->runs);
done:
    for (int i = 0; i < n; i++)
        close(files[i].fd);
    free(files);
}

/* ---- CRC32C and memcpy per core ---- */

/*
 * The per-core ceilings are timed the way the engine's workers time their
 * stages: a staging buffer is filled (as a read fills it), then checked or
 * copied out in 256 KiB steps, and only the steps' own time counts, summed
 * ("busy time"). Timed any other way (one long loop) the same CRC runs at
 * half the rate on a shared VM, and a stage would beat its "ceiling".
 */
typedef struct step_bench {
    unsigned char *src;   /* COPY_BYTES of data, as the shard bytes */
    unsigned char *stage; /* STAGE_BYTES: a staging buffer */
    unsigned char *dst;   /* COPY_BYTES of touched memory, the destinations (memcpy only) */
} step_bench;

/* One run: busy seconds of CRC32C (`crc` 1) or memcpy (0) over COPY_BYTES. */
static double step_run(const step_bench *b, int crc, uint32_t *reg)
{
    double busy = 0;
    for (size_t off = 0; off < COPY_BYTES; off += STAGE_BYTES) {
        memcpy(b->stage, b->src + off, STAGE_BYTES); /* the read that fills staging */
        for (size_t o = 0; o < STAGE_BYTES; o += CRC_STEP) {
            double t0 = now_seconds();
            if (crc)
                *reg = crc32_iscsi(b->stage + o, (int)CRC_STEP, *reg);
            else
                memcpy(b->dst + off + o, b->stage + o, CRC_STEP);
            busy += now_seconds() - t0;
        }
    }
    __asm__ __volatile__("" : : "r"(b->dst), "r"(*reg) : "memory"); /* keep the work */
    return busy;
}

static void step_ceiling(int crc, cli_ceiling *out)
{
    step_bench b = { malloc(COPY_BYTES), malloc(STAGE_BYTES), crc ? NULL : malloc(COPY_BYTES) };
    uint32_t reg = 0;
    memset(out, 0, sizeof *out);
    out->kind = CLI_CEILING;
    if (!b.src || !b.stage || (!crc && !b.dst)) {
        set_na(out, "out of memory", NULL);
        goto done;
    }
    /* Touch everything first so that page faults are not part of the figure. */
    for (size_t i = 0; i < COPY_BYTES; i++)
        b.src[i] = (unsigned char)(i * 131 + 7);
    memset(b.stage, 0, STAGE_BYTES);
    if (b.dst)
        memset(b.dst, 0, COPY_BYTES);
    for (int run = 0; run < 5 && !cli_interrupted(); run++)
        cli_ceiling_add(out, COPY_BYTES, step_run(&b, crc, &reg));
    cli_ceiling_finish(out);
    if (crc)
        snprintf(out->note, sizeof out->note, "crc32_iscsi (ISA-L, the engine's CRC32C) of 8 "
                 "MiB staging buffers in 256 KiB steps, timed per step as the workers are, 1 "
                 "thread, best of %d", out->runs);
    else
        snprintf(out->note, sizeof out->note, "memcpy of 8 MiB staging buffers in 256 KiB steps "
                 "into 256 MiB of touched memory, timed per step as the workers are, 1 thread, "
                 "best of %d", out->runs);
done:
    free(b.src);
    free(b.stage);
    free(b.dst);
}

void cli_bench_crc(cli_ceiling *out)
{
    step_ceiling(1, out);
}

void cli_bench_memcpy(cli_ceiling *out)
{
    step_ceiling(0, out);
}

/* ---- remote objects ---- */

void cli_bench_gets(const trestle_checkpoint *c, int runs, cli_ceiling *out)
{
    trestle_plan *plan = NULL;
    trestle_error err;
    trestle_remote_ceiling_result res = { 0 };
    memset(out, 0, sizeof *out);
    out->kind = CLI_CEILING;
    if (trestle_plan_create(c, NULL, 0, NULL, &plan, &err) != TRESTLE_OK) {
        snprintf(out->note, sizeof out->note, "%.200s", err.message);
        return;
    }
    for (int k = 0; k < runs && !cli_interrupted(); k++) {
        if (trestle_remote_ceiling(plan, 0, &res, &err) != TRESTLE_OK) {
            snprintf(out->note, sizeof out->note, "%.200s", err.message);
            break;
        }
        cli_ceiling_add(out, res.bytes, res.seconds);
    }
    cli_ceiling_finish(out);
    if (out->valid)
        snprintf(out->note, sizeof out->note, "%u connections, %" PRIu64 " ranged GETs of at "
                 "most 8 MiB into scratch buffers, nothing else",
                 cli_open_options()->connections ? cli_open_options()->connections : 32,
                 res.requests);
    trestle_plan_free(plan);
}
