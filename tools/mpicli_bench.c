/*
 * mpicli_bench.c - `trestle-mpi bench`: a group restore (read once,
 * exchange over MPI) timed K times, beside the group's own two ceilings,
 * measured in the same job:
 *
 *   storage   every rank reads its byte-balanced share of the shard files
 *             at once (1 MiB read()s through the page cache, or with
 *             --cold after dropping it), nothing else: the most the group
 *             can read per second;
 *   exchange  the exchange of a group restore alone, measured by the
 *             library (trestle_group_exchange_ceiling()): each rank
 *             broadcasts its 1/N of the same bytes to all the others by
 *             the restore's own rounds and path, between host buffers or,
 *             with --device, buffers on each rank's device (NCCL, CUDA-aware
 *             MPI or pinned staging, as the restore chooses).
 *
 * A rank of a group restore ends with every byte, so its delivery rate is
 * bounded by both: the checkpoint must be read once (storage) and each
 * rank must receive (N-1)/N of it (exchange). The result is given as a
 * ratio to min(storage, exchange), the "aggregate restore >= 90%
 * of min(storage, fabric)". `trestle bench` under mpirun runs this.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "trestle_mpi.h"
#include "mpicli.h"

#define READ_BLOCK ((size_t)1 << 20)

static const char help[] =
    "Usage: mpirun -np N trestle bench (PATH | --synthetic SIZE[,SHARDS]) [OPTIONS]\n"
    "\n"
    "Time a group restore (every rank ends with every tensor in host memory,\n"
    "each byte read from storage once and shared over MPI) K times, and hold it\n"
    "against the group's own ceilings, measured in the same job:\n"
    "  storage   every rank reads its 1/N of the shard bytes at once, nothing else\n"
    "  exchange  every rank broadcasts its 1/N of the same bytes to the others,\n"
    "            nothing else, by the restore's own exchange: 64 MiB rounds of MPI\n"
    "            broadcasts between host buffers, or for --device the one the\n"
    "            restore picks (nccl, mpi-cuda or staged), between device buffers\n"
    "A rank's delivery (checkpoint bytes / wall) is bounded by both, so the\n"
    "restore is given as a ratio to the lower. GB/s is 1e9 bytes/s.\n"
    "\n"
    "Options:\n"
    "      --synthetic SIZE[,SHARDS]  benchmark a temporary `trestle synth`\n"
    "                       checkpoint of SIZE (bf16) in SHARDS files (default 4),\n"
    "                       written by rank 0 under $TMPDIR (which every rank\n"
    "                       must see) and removed at exit\n"
    "      --cold           drop the page cache before each run (rank 0 of each\n"
    "                       node; drop_caches when permitted, else fadvise)\n"
    "      --repeat K       restores to time (default 3); best and median reported\n"
    "      --threads N      verify/copy workers per rank\n"
    "      --json           one JSON object on rank 0 instead of the table\n"
    "      --host           restore into host memory (the default)\n"
    "      --device local|K each rank onto its GPU (local: by node-local rank) or\n"
    "                       GPU K; the exchange ceiling runs between buffers there\n"
    "      --exchange auto|staged|mpi-cuda  device ranks: as trestle-mpi restore --help says\n"
    "      --scope auto|group|node each byte read once per job or once per node, as\n"
    "                       trestle-mpi restore --help says; both ceilings are\n"
    "                       measured over the same scope (node: every node at once)\n"
    "      --simulate-nodes N  tests on one machine: ranks on N pretend nodes\n"
    "      --group mpi      the process group (the default, and the only one)\n"
    "  -h, --help           this text\n"
    "\n"
    "Examples:\n"
    "  mpirun -np 4 trestle bench --synthetic 2G,8\n"
    "  mpirun -np 8 --map-by node trestle bench /lustre/ckpt/model.ckpt-1000 --cold\n"
    "  mpirun -np 8 trestle bench --synthetic 8G,8 --device local   # NCCL where it loads\n"
    "  mpirun -np 8 trestle bench --synthetic 8G,8 --device local --exchange staged\n";

typedef struct bench_args {
    const char *path;
    uint64_t synth_size;
    int synth_shards, cold, repeat, json;
    mpi_group_args group;   /* --group, --scope, --simulate-nodes, --device, --exchange */
    unsigned threads;
} bench_args;

/* One rank's view of a run, reduced to the group's by max/sum. */
typedef struct timed_run {
    double wall;          /* max over ranks */
    uint64_t read;        /* sum over ranks */
    uint64_t exchanged;   /* sum of bytes received */
} timed_run;

/* Every rank parses, so that every rank knows to stop; rank 0 speaks. */
#define USAGE(...) (rank ? CLI_EXIT_USAGE : cli_usage("bench", __VA_ARGS__))

static int parse(int argc, char **argv, int rank, bench_args *a)
{
    static const struct option longs[] = {
        { "synthetic", required_argument, NULL, 's' }, { "cold", no_argument, NULL, 'c' },
        { "repeat", required_argument, NULL, 'r' },    { "threads", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },            { "help", no_argument, NULL, 'h' },
        { "host", no_argument, NULL, 'H' },            TRESTLE_MPI_GROUP_LONGOPTS,
        { NULL, 0, NULL, 0 }
    };
    a->repeat = 3;
    a->synth_shards = 4;
    mpi_group_args_init(&a->group);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        char *end;
        int grc = mpi_group_option("bench", c, optarg, rank, &a->group);
        if (grc >= 0) {
            if (grc != CLI_EXIT_OK)
                return grc;
            continue;
        }
        switch (c) {
        case 's': {
            char *comma = strchr(optarg, ',');
            if (comma) {
                a->synth_shards = (int)strtol(comma + 1, &end, 10);
                if (*end || a->synth_shards < 1 || a->synth_shards > 10000)
                    return USAGE("--synthetic SIZE,SHARDS: bad shard count '%s'",
                                     comma + 1);
                *comma = '\0';
            }
            if (cli_parse_size(optarg, &a->synth_size) != 0 || a->synth_size == 0)
                return USAGE("--synthetic: bad size '%s' (e.g. 1G, 512M)", optarg);
            break;
        }
        case 'c': a->cold = 1; break;
        case 'r':
            a->repeat = (int)strtol(optarg, &end, 10);
            if (*end || a->repeat < 1 || a->repeat > 1000)
                return USAGE("--repeat takes 1 to 1000, not '%s'", optarg);
            break;
        case 't':
            a->threads = (unsigned)strtoul(optarg, &end, 10);
            if (*end || a->threads < 1 || a->threads > 256)
                return USAGE("--threads takes 1 to 256, not '%s'", optarg);
            break;
        case 'j': a->json = 1; break;
        case 'H': a->group.device = -1; break;
        case 'h':
            if (rank == 0)
                fputs(help, stdout);
            return -1;
        default:
            return rank ? CLI_EXIT_USAGE : cli_bad_option("bench", argv, c);
        }
    }
    if (optind < argc)
        a->path = argv[optind++];
    if (optind < argc)
        return USAGE("one checkpoint at a time ('%s' is extra)", argv[optind]);
    if (!a->path == !a->synth_size)
        return USAGE("give a checkpoint PATH or --synthetic SIZE, one of the two");
    return CLI_EXIT_OK;
}

/* ---- ceilings ---- */

/* Read bytes [lo, hi) of the shard files taken end to end, 1 MiB at a time. */
static int read_share(const trestle_checkpoint *c, uint64_t lo, uint64_t hi, char *buf,
                      uint64_t *done, char *why, size_t cap)
{
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    uint64_t base = 0;
    for (int s = 0; s < ci.num_shards && base < hi; s++) {
        const char *path = trestle_shard_path(c, s);
        struct stat st;
        if (!path || stat(path, &st) != 0) {
            snprintf(why, cap, "%s: %s", path ? path : "shard", strerror(errno));
            return -1;
        }
        uint64_t end = base + (uint64_t)st.st_size;
        if (end > lo) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                snprintf(why, cap, "%s: %s", path, strerror(errno));
                return -1;
            }
            uint64_t off = lo > base ? lo - base : 0, stop = (hi < end ? hi : end) - base;
            while (off < stop) {
                size_t want = stop - off < READ_BLOCK ? (size_t)(stop - off) : READ_BLOCK;
                ssize_t n = pread(fd, buf, want, (off_t)off);
                if (n <= 0) {
                    snprintf(why, cap, "%s at offset %" PRIu64 ": %s", path, off,
                             n < 0 ? strerror(errno) : "unexpected end of file");
                    close(fd);
                    return -1;
                }
                off += (uint64_t)n;
                *done += (uint64_t)n;
            }
            close(fd);
        }
        base = end;
    }
    return 0;
}

/* Rank 0 of each node drops the page cache of the checkpoint, then all wait. */
static void drop_cache(const trestle_checkpoint *c, MPI_Comm node)
{
    int local;
    MPI_Comm_rank(node, &local);
    if (local == 0) {
        char what[256];
        cli_bench_drop_cache(c, what, sizeof what);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Every rank reads its 1/N of the shard bytes, N the ranks of its read-once
 * scope (`scope`: the world, or its node), all scopes at once; `copies` is
 * how many scopes read the checkpoint, so the rate is per copy. */
static void storage_ceiling(const trestle_checkpoint *c, const bench_args *a, MPI_Comm node,
                            MPI_Comm scope, int copies, cli_ceiling *out)
{
    int rank, n;
    MPI_Comm_rank(scope, &rank);
    MPI_Comm_size(scope, &n);
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    uint64_t total = 0;
    for (int s = 0; s < ci.num_shards; s++) {
        struct stat st;
        if (trestle_shard_path(c, s) && stat(trestle_shard_path(c, s), &st) == 0)
            total += (uint64_t)st.st_size;
    }
    uint64_t lo = total / (uint64_t)n * (uint64_t)rank;
    uint64_t hi = rank + 1 == n ? total : total / (uint64_t)n * (uint64_t)(rank + 1);
    char *buf = malloc(READ_BLOCK);
    memset(out, 0, sizeof *out);
    for (int run = 0; run < 3; run++) {
        if (a->cold)
            drop_cache(c, node);
        char why[160] = "";
        uint64_t done = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        int bad = !buf ? (snprintf(why, sizeof why, "out of memory"), 1)
                       : read_share(c, lo, hi, buf, &done, why, sizeof why) != 0;
        double mine = MPI_Wtime() - t0, wall;
        int any_bad;
        uint64_t all = 0;
        MPI_Allreduce(&mine, &wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&done, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        if (any_bad) {
            snprintf(out->note, sizeof out->note, "n/a: a rank could not read%s%s",
                     bad ? ": " : "", bad ? why : "");
            out->valid = 0;
            break;
        }
        all /= (uint64_t)copies;
        if (wall > 0 && (!out->valid || all / wall > out->bytes / out->seconds)) {
            out->valid = 1;
            out->bytes = all;
            out->seconds = wall;
            out->gbps = (double)all / wall / 1e9;
        }
    }
    if (out->valid && copies > 1)
        snprintf(out->note, sizeof out->note, "on each of %d nodes at once, its ranks each "
                 "read() 1/%d of the shard bytes%s, best of 3", copies, n,
                 a->cold ? " (cache dropped)" : "");
    else if (out->valid)
        snprintf(out->note, sizeof out->note, "%d ranks each read() 1/%d of the shard bytes at "
                 "once%s, best of 3", n, n, a->cold ? " (cache dropped)" : "");
    free(buf);
}

/* The kinds of trestle_group_exchange_kind, as trestle-mpi restore names them. */
static const char *kind_name(int kind)
{
    static const char *const kinds[] = { "auto", "mpi", "staged", "mpi-cuda", "nccl" };
    return kinds[kind >= 0 && kind <= 4 ? kind : 0];
}

/* The exchange of a restore alone, between buffers where this rank's
 * restore puts its tensors (`device`, -1: host memory), by the path the
 * restore takes, within each read-once scope, all scopes at once
 * (trestle_group_exchange_ceiling()). */
static void exchange_ceiling(trestle_group *g, uint64_t total, int device, int per_node,
                             cli_ceiling *out, trestle_group_ceiling *gc)
{
    trestle_error err;
    memset(out, 0, sizeof *out);
    int rc = trestle_group_exchange_ceiling(g, total, device, gc, &err);
    if (rc != TRESTLE_OK) {
        snprintf(out->note, sizeof out->note, "n/a: %.180s", err.message);
        return;
    }
    if (gc->seconds <= 0) {
        snprintf(out->note, sizeof out->note, "n/a: %s", gc->exchange_note);
        return;
    }
    out->valid = 1;
    out->bytes = gc->bytes;
    out->seconds = gc->seconds;
    out->gbps = gc->gbps;
    /* Which exchange ran first: the note is cut at its end. */
    const char *how = gc->exchange == TRESTLE_GROUP_EXCHANGE_STAGED ? "pinned host staging over MPI"
                      : gc->exchange == TRESTLE_GROUP_EXCHANGE_MPI_CUDA
                          ? "CUDA-aware MPI broadcasts device memory"
                      : gc->exchange == TRESTLE_GROUP_EXCHANGE_NCCL ? "ncclBroadcast between the devices"
                                                                    : "MPI broadcasts host memory";
    snprintf(out->note, sizeof out->note, "%s: %s; %d roots broadcast 1/%d each in 64 MiB "
             "rounds%s, as the restore does, best of %d", kind_name(gc->exchange), how,
             gc->ranks, gc->ranks, per_node ? " within each node" : "", gc->runs);
}

/* ---- the timed restores ---- */

static int one_restore(const bench_args *a, trestle_group *g, MPI_Comm node, timed_run *out,
                       uint64_t *total, trestle_group_stats *gs, trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    trestle_plan *p = NULL;
    trestle_error mine;
    trestle_error_clear(&mine);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    if (a->threads)
        ro.threads = a->threads;
    int rc = mpi_group_device(&a->group, g, &ro.device, &mine);
    if (rc == TRESTLE_OK)
        rc = trestle_open(a->path, NULL, &c, &mine);
    if (rc == TRESTLE_OK && a->cold)
        drop_cache(c, node);
    else if (a->cold)
        MPI_Barrier(MPI_COMM_WORLD); /* keep step with the ranks that dropped */
    if (rc == TRESTLE_OK)
        rc = trestle_plan_create(c, NULL, 0, NULL, &p, &mine);
    rc = trestle_group_agree(g, rc, &mine, err);
    if (rc == TRESTLE_OK) {
        trestle_plan_stats ps;
        trestle_plan_get_stats(p, &ps);
        *total = ps.output_bytes;
        MPI_Barrier(MPI_COMM_WORLD);
        rc = trestle_group_restore(g, p, &ro, gs, err);
    }
    if (rc == TRESTLE_OK) {
        MPI_Allreduce(&gs->wall_seconds, &out->wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&gs->bytes_read, &out->read, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(&gs->bytes_received, &out->exchanged, 1, MPI_UINT64_T, MPI_SUM,
                      MPI_COMM_WORLD);
    }
    trestle_plan_free(p);
    trestle_close(c);
    return rc;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void print_ceiling(const char *name, const cli_ceiling *c)
{
    if (c->valid)
        printf("  %-9s %8.2f GB/s  %s\n", name, c->gbps, c->note);
    else
        printf("  %-9s %8s       %s\n", name, "n/a", c->note);
}

static void print_json(int n, const trestle_group_stats *gs, uint64_t total,
                       const timed_run *best, double median, const cli_ceiling *st,
                       const cli_ceiling *ex, const trestle_group_ceiling *gc, double bound)
{
    printf("{\"ranks\": %d, \"nodes\": %d, \"scope\": \"%s\", \"checkpoint_bytes\": %" PRIu64
           ", \"best_wall_seconds\": %.6f, "
           "\"median_wall_seconds\": %.6f, \"bytes_read\": %" PRIu64 ", \"bytes_exchanged\": %"
           PRIu64 ", \"delivered_gbps\": %.4f, \"aggregate_gbps\": %.4f, "
           "\"storage_ceiling_gbps\": %.4f, \"exchange_ceiling_gbps\": %.4f, "
           "\"ratio_to_ceiling\": %.4f, \"exchange\": \"%s\", \"exchange_note\": ",
           n, gs->nodes, gs->scope == TRESTLE_GROUP_SCOPE_NODE ? "node" : "group", total,
           best->wall, median, best->read, best->exchanged,
           (double)total / best->wall / 1e9, (double)total * n / best->wall / 1e9,
           st->valid ? st->gbps : -1.0, ex->valid ? ex->gbps : -1.0,
           bound > 0 ? (double)total / best->wall / 1e9 / bound : -1.0,
           kind_name(gs->exchange));
    cli_json_cstr(stdout, gs->exchange_note);
    /* The ceiling's own exchange: the same kind as the restore's, unless
     * something differs between the two (e.g. NCCL failed to start once). */
    printf(", \"exchange_ceiling_kind\": \"%s\", \"exchange_ceiling_note\": ",
           kind_name(gc->exchange));
    cli_json_cstr(stdout, ex->note);
    printf("}\n");
}

static int bench(const bench_args *a, trestle_group *g, MPI_Comm node)
{
    int rank = trestle_group_rank(g), n = trestle_group_size(g), rc = TRESTLE_OK;
    trestle_error err;
    timed_run *runs = calloc((size_t)a->repeat, sizeof *runs);
    double *walls = calloc((size_t)a->repeat, sizeof *walls);
    uint64_t total = 0;
    trestle_group_stats gs = { 0 };
    if (!runs || !walls) {
        free(runs);
        free(walls);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int k = 0; k < a->repeat && rc == TRESTLE_OK; k++) {
        rc = one_restore(a, g, node, &runs[k], &total, &gs, &err);
        walls[k] = runs[k].wall;
    }
    if (rc != TRESTLE_OK) {
        fprintf(stderr, "trestle: %s\n", err.message[0] ? err.message : trestle_strerror(rc));
        free(runs);
        free(walls);
        return CLI_EXIT_FAIL;
    }
    int b = 0;
    for (int k = 1; k < a->repeat; k++)
        if (runs[k].wall < runs[b].wall)
            b = k;
    qsort(walls, (size_t)a->repeat, sizeof *walls, cmp_double);
    double median = walls[a->repeat / 2];

    cli_ceiling st, ex;
    trestle_checkpoint *c = NULL;
    rc = trestle_open(a->path, NULL, &c, &err);
    int ok = rc == TRESTLE_OK, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    /* Both ceilings over the restore's own read-once scope. */
    int per_node = gs.scope == TRESTLE_GROUP_SCOPE_NODE && gs.nodes > 1;
    MPI_Comm scope = per_node ? node : MPI_COMM_WORLD;
    if (all_ok)
        storage_ceiling(c, a, node, scope, per_node ? gs.nodes : 1, &st);
    else
        memset(&st, 0, sizeof st), snprintf(st.note, sizeof st.note, "n/a: cannot reopen");
    trestle_close(c);
    /* Between buffers where the restore put the tensors: this rank's device. */
    int device = -1;
    trestle_group_ceiling gc;
    memset(&gc, 0, sizeof gc);
    if (mpi_group_device(&a->group, g, &device, &err) != TRESTLE_OK)
        device = -1; /* the restores above had it: cannot happen */
    /* Tests only: TRESTLE_MPI_TEST_CEILING_BYTES=N times the exchange over
     * N bytes, not the checkpoint's: a size some device cannot hold, in
     * the test of a ceiling that fails on one rank. */
    const char *test_bytes = getenv("TRESTLE_MPI_TEST_CEILING_BYTES");
    uint64_t xbytes = test_bytes && *test_bytes ? strtoull(test_bytes, NULL, 10) : total;
    exchange_ceiling(g, xbytes, device, per_node, &ex, &gc);

    double bound = 0;
    if (st.valid)
        bound = st.gbps;
    if (ex.valid && (per_node ? gs.node_size : n) > 1 && (bound == 0 || ex.gbps < bound))
        bound = ex.gbps;
    if (rank == 0) {
        const timed_run *r = &runs[b];
        if (a->json) {
            print_json(n, &gs, total, r, median, &st, &ex, &gc, bound);
        } else {
            char sz[32], rd[32], xc[32];
            cli_human_size(total, sz, sizeof sz);
            cli_human_size(r->read, rd, sizeof rd);
            cli_human_size(r->exchanged, xc, sizeof xc);
            printf("group restore of %s on %d ranks, best of %d (median %.3f s):\n", sz, n,
                   a->repeat, median);
            printf("  read %s from storage in all, exchanged %s in all, wall %.3f s\n", rd, xc,
                   r->wall);
            printf("  delivered %.2f GB/s to every rank (%.2f GB/s aggregate)", 
                   (double)total / r->wall / 1e9, (double)total * n / r->wall / 1e9);
            if (bound > 0)
                printf(": %.0f%% of the lower ceiling\n",
                       100.0 * (double)total / r->wall / 1e9 / bound);
            else
                printf("\n");
            printf("scope %s: %s\n", gs.scope == TRESTLE_GROUP_SCOPE_NODE ? "node" : "group",
                   gs.scope_note);
            if (a->group.device != -1)
                printf("exchange: %s\n", gs.exchange_note);
            printf("ceilings (checkpoint bytes per second to every rank):\n");
            print_ceiling("storage", &st);
            print_ceiling("exchange", &ex);
        }
        fflush(stdout);
    }
    free(runs);
    free(walls);
    return CLI_EXIT_OK;
}

/* ---- the synthetic checkpoint ---- */

/* Rank 0 writes it (synth's own output to stderr), everyone learns the
 * prefix; "" on failure. */
static int make_synthetic(const bench_args *a, char *dir, size_t dcap, char *prefix, size_t cap)
{
    int rank, rc = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, dcap, "%s/trestle-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            cli_error("cannot make a directory %s: %s", dir, strerror(errno));
            rc = CLI_EXIT_FAIL;
        } else {
            snprintf(prefix, cap, "%s/synthetic", dir);
            char size[32], shards[16];
            snprintf(size, sizeof size, "%" PRIu64, a->synth_size);
            snprintf(shards, sizeof shards, "%d", a->synth_shards);
            char *argv[] = { "synth", prefix, "--size", size, "--shards", shards, "--dtype",
                             "bf16", NULL };
            fflush(stdout);
            int saved = dup(STDOUT_FILENO);
            if (saved >= 0)
                dup2(STDERR_FILENO, STDOUT_FILENO);
            rc = cli_synth_main(8, argv);
            fflush(stdout);
            if (saved >= 0) {
                dup2(saved, STDOUT_FILENO);
                close(saved);
            }
            cli_getopt_reset();
        }
        if (rc != CLI_EXIT_OK)
            prefix[0] = '\0';
    }
    MPI_Bcast(prefix, (int)cap, MPI_CHAR, 0, MPI_COMM_WORLD);
    return prefix[0] ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* The synthetic checkpoint's directory holds only its files. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4352];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int mpicli_bench_main(int argc, char **argv)
{
    bench_args a = { 0 };
    int rank, status;
    trestle_group *g = NULL;
    trestle_error err;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    status = parse(argc, argv, rank, &a);
    if (status < 0)
        return CLI_EXIT_OK; /* --help */
    if (status != CLI_EXIT_OK)
        return status;

    char dir[4096] = "", prefix[4200] = "";
    if (a.synth_size) {
        if (make_synthetic(&a, dir, sizeof dir, prefix, sizeof prefix) != CLI_EXIT_OK)
            return CLI_EXIT_FAIL;
        a.path = prefix;
    }
    /* The node's ranks: each node's page cache is dropped once, and with
     * scope node the ceilings are measured within each. */
    MPI_Comm node;
    if (mpi_group_create(&a.group, a.path, &g, &node, &err) != TRESTLE_OK)
        status = cli_fail(&err);
    else
        status = bench(&a, g, node);
    trestle_group_free(g);
    MPI_Comm_free(&node);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && dir[0])
        remove_dir(dir);
    return status;
}
