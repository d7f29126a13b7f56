/*
 * mpicli_bench.c - `trestle-mpi bench`: a group restore (read once,
 * exchange over MPI) timed K times, beside the same restore by every rank
 * alone (--group none: each rank reads every byte itself) and the group's
 * own two ceilings, storage and exchange (mpicli_bench_ceiling.c),
 * measured in the same job.
 *
 * A rank of a group restore ends with every byte, so its delivery rate is
 * bounded by both ceilings: the checkpoint must be read once (storage) and
 * each rank must receive (N-1)/N of it (exchange). The result is given as
 * a fraction of min(storage, exchange), at most 1. Read-once pays when the
 * storage is the slow part; on one node whose page cache holds the
 * checkpoint, every rank reads it from memory at once, and the exchange is
 * only extra copies: the independent baseline shows which holds, and by
 * how much. The two kinds of restore alternate, so that a noisy machine
 * treats both alike. `trestle bench` under mpirun runs this.
 */
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
    "restore is given as a fraction of the lower, at most 1. Beside it, the same\n"
    "restore by every rank alone (as --group none: each reads every byte), timed\n"
    "in turn with the group's, shows whether reading once pays on this machine:\n"
    "on one node with the checkpoint in its page cache it usually does not.\n"
    "Wall times are given as min, median and max of the repeats (each in --json);\n"
    "rates are GB/s (1e9 bytes per second), sizes binary (MiB, GiB).\n"
    "\n"
    "Options:\n"
    "      --synthetic SIZE[,SHARDS]  benchmark a temporary `trestle synth`\n"
    "                       checkpoint of SIZE (bf16) in SHARDS files (default 4),\n"
    "                       written by rank 0 under $TMPDIR (which every rank\n"
    "                       must see) and removed at exit (also at a signal)\n"
    "      --cold           drop the page cache before each run (rank 0 of each\n"
    "                       node; drop_caches when permitted, else fadvise)\n"
    "      --repeat K       restores of each kind to time (default 3), all reported\n"
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
    CLI_REMOTE_HELP
    "  (For a URL the storage ceiling is n/a: it read()s files.)\n"
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
        CLI_REMOTE_LONGOPTS,                           { NULL, 0, NULL, 0 }
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
        case CLI_OPT_CONNECTIONS:
        case CLI_OPT_ATTEMPTS:
        case CLI_OPT_BACKOFF:
            if (cli_remote_option_quiet("bench", c, optarg, rank != 0) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
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

/* ---- the timed restores ---- */

/*
 * One restore of every tensor, timed on every rank: the group's (read
 * once, exchanged) or, with `alone`, each rank's own trestle_restore of
 * the whole checkpoint (--group none). *total: the checkpoint's bytes.
 */
static int one_restore(const bench_args *a, trestle_group *g, MPI_Comm node, int alone,
                       timed_run *out, uint64_t *total, trestle_group_stats *gs,
                       trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    trestle_plan *p = NULL;
    trestle_error mine;
    trestle_error_clear(&mine);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    if (a->threads)
        ro.threads = a->threads;
    cli_remote_fit(&ro);
    int rc = mpi_group_device(&a->group, g, &ro.device, &mine);
    if (rc == TRESTLE_OK)
        rc = trestle_open(a->path, cli_open_options(), &c, &mine);
    if (rc == TRESTLE_OK && a->cold)
        mpi_bench_drop_cache(c, node);
    else if (a->cold)
        MPI_Barrier(MPI_COMM_WORLD); /* keep step with the ranks that dropped */
    if (rc == TRESTLE_OK)
        rc = trestle_plan_create(c, NULL, 0, NULL, &p, &mine);
    rc = trestle_group_agree(g, rc, &mine, err);
    double wall = 0;
    uint64_t read = 0, received = 0;
    if (rc == TRESTLE_OK) {
        trestle_plan_stats ps;
        trestle_plan_get_stats(p, &ps);
        *total = ps.output_bytes;
        MPI_Barrier(MPI_COMM_WORLD);
        if (alone) {
            trestle_stats st;
            trestle_error_clear(&mine);
            rc = trestle_restore(p, &ro, &st, &mine);
            rc = trestle_group_agree(g, rc, &mine, err);
            wall = st.wall_seconds;
            read = st.bytes_read;
        } else {
            rc = trestle_group_restore(g, p, &ro, gs, err);
            wall = gs->wall_seconds;
            read = gs->bytes_read;
            received = gs->bytes_received;
        }
    }
    if (rc == TRESTLE_OK) {
        MPI_Allreduce(&wall, &out->wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&read, &out->read, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(&received, &out->exchanged, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    }
    trestle_plan_free(p);
    trestle_close(c);
    return rc;
}

/* The walls of K runs, spread. */
static void wall_spread(const timed_run *runs, int k, cli_spread *out)
{
    double w[1000];
    for (int i = 0; i < k; i++)
        w[i] = runs[i].wall;
    cli_spread_of(w, (size_t)k, out);
}

static void print_ceiling(const char *name, const cli_ceiling *c)
{
    if (c->valid)
        printf("  %-9s %8.2f GB/s  %s\n", name, c->gbps, c->note);
    else
        printf("  %-9s %8s       %s\n", name, "n/a", c->note);
}

/* What both reports print, worked out once. */
typedef struct bench_outcome {
    int n;                        /* ranks */
    uint64_t total;               /* checkpoint bytes */
    const timed_run *grp, *alone; /* a->repeat runs each */
    int best;                     /* the group's fastest run */
    cli_spread gw, aw;            /* walls: group, alone */
    double bound;                 /* the lower ceiling, GB/s, or 0 */
    double ratio;                 /* the group's median delivery over it, at most 1; 0: none */
    int capped;                   /* it measured above and was capped */
    cli_ceiling st, ex;
    trestle_group_ceiling gc;
    cli_machine machine;          /* rank 0's */
} bench_outcome;

static void json_walls(const char *key, const cli_spread *s, const timed_run *runs, int k)
{
    printf("\"%s\": {\"min\": %.6f, \"median\": %.6f, \"max\": %.6f, \"each\": [", key, s->min,
           s->median, s->max);
    for (int i = 0; i < k; i++)
        printf("%s%.6f", i ? ", " : "", runs[i].wall);
    printf("]}");
}

static void print_json(const bench_args *a, const trestle_group_stats *gs, const bench_outcome *o)
{
    const timed_run *best = &o->grp[o->best];
    printf("{\"ranks\": %d, \"nodes\": %d, \"scope\": \"%s\", \"checkpoint_bytes\": %" PRIu64
           ", \"best_wall_seconds\": %.6f, "
           "\"median_wall_seconds\": %.6f, \"bytes_read\": %" PRIu64 ", \"bytes_exchanged\": %"
           PRIu64 ", \"delivered_gbps\": %.4f, \"aggregate_gbps\": %.4f, "
           "\"storage_ceiling_gbps\": %.4f, \"exchange_ceiling_gbps\": %.4f, "
           "\"ratio_to_ceiling\": %.4f, \"exchange\": \"%s\", \"exchange_note\": ",
           o->n, gs->nodes, gs->scope == TRESTLE_GROUP_SCOPE_NODE ? "node" : "group", o->total,
           best->wall, o->gw.median, best->read, best->exchanged,
           (double)o->total / o->gw.median / 1e9, (double)o->total * o->n / o->gw.median / 1e9,
           o->st.valid ? o->st.gbps : -1.0, o->ex.valid ? o->ex.gbps : -1.0,
           o->ratio > 0 ? o->ratio : -1.0, mpi_exchange_kind_name(gs->exchange));
    cli_json_cstr(stdout, gs->exchange_note);
    /* The ceiling's own exchange: the same kind as the restore's, unless
     * something differs between the two (e.g. NCCL failed to start once). */
    printf(", \"exchange_ceiling_kind\": \"%s\", \"exchange_ceiling_note\": ",
           mpi_exchange_kind_name(o->gc.exchange));
    cli_json_cstr(stdout, o->ex.note);
    printf(", \"ratio_capped\": %s, ", o->capped ? "true" : "false");
    json_walls("wall_seconds", &o->gw, o->grp, a->repeat);
    printf(", \"independent\": {");
    json_walls("wall_seconds", &o->aw, o->alone, a->repeat);
    printf(", \"bytes_read\": %" PRIu64 ", \"delivered_gbps\": %.4f}, "
           "\"group_vs_independent\": %.4f, ", o->alone[0].read,
           (double)o->total / o->aw.median / 1e9, o->gw.median / o->aw.median);
    cli_machine_json(stdout, &o->machine, "");
    printf("}\n");
}

static void print_text(const bench_args *a, const trestle_group_stats *gs, const bench_outcome *o)
{
    char sz[32], rd[32], xc[32];
    const timed_run *r = &o->grp[o->best];
    cli_human_size(o->total, sz, sizeof sz);
    cli_human_size(r->read, rd, sizeof rd);
    cli_human_size(r->exchanged, xc, sizeof xc);
    printf("group restore of %s on %d ranks, %d repeat%s: wall %.3f s min, %.3f s median, "
           "%.3f s max\n", sz, o->n, a->repeat, a->repeat == 1 ? "" : "s", o->gw.min,
           o->gw.median, o->gw.max);
    printf("  read %s from storage in all, exchanged %s in all\n", rd, xc);
    printf("  delivered %.2f GB/s to every rank (%.2f GB/s aggregate), median",
           (double)o->total / o->gw.median / 1e9, (double)o->total * o->n / o->gw.median / 1e9);
    if (o->ratio > 0)
        printf(": %.2f of the lower ceiling%s\n", o->ratio,
               o->capped ? " (capped: it measured above it, so the ceiling's runs were "
                           "disturbed)" : "");
    else
        printf("\n");
    cli_human_size(o->alone[0].read, rd, sizeof rd);
    printf("independent restores (as --group none: each rank reads every byte), %d repeat%s: "
           "wall %.3f s min, %.3f s median, %.3f s max\n", a->repeat, a->repeat == 1 ? "" : "s",
           o->aw.min, o->aw.median, o->aw.max);
    printf("  read %s from storage in all; delivered %.2f GB/s to every rank, median\n", rd,
           (double)o->total / o->aw.median / 1e9);
    double x = o->gw.median / o->aw.median;
    if (x <= 1)
        printf("  read once pays here: the group restore's median wall is %.2fx the "
               "independent restores'\n", x);
    else
        printf("  read once does not pay here: the group restore's median wall is %.2fx the "
               "independent restores' (--group none restores alone)\n", x);
    printf("each repeat, wall seconds: group");
    for (int k = 0; k < a->repeat; k++)
        printf(" %.3f", o->grp[k].wall);
    printf("; independent");
    for (int k = 0; k < a->repeat; k++)
        printf(" %.3f", o->alone[k].wall);
    printf("\nscope %s: %s\n", gs->scope == TRESTLE_GROUP_SCOPE_NODE ? "node" : "group",
           gs->scope_note);
    if (a->group.device != -1)
        printf("exchange: %s\n", gs->exchange_note);
    printf("ceilings (checkpoint bytes per second to every rank):\n");
    print_ceiling("storage", &o->st);
    print_ceiling("exchange", &o->ex);
}

static int bench(const bench_args *a, trestle_group *g, MPI_Comm node)
{
    int rank = trestle_group_rank(g), n = trestle_group_size(g), rc = TRESTLE_OK;
    trestle_error err;
    timed_run *grp = calloc((size_t)a->repeat, sizeof *grp);
    timed_run *alone = calloc((size_t)a->repeat, sizeof *alone);
    bench_outcome o = { .n = n, .grp = grp, .alone = alone };
    trestle_group_stats gs = { 0 };
    if (!grp || !alone) {
        free(grp);
        free(alone);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    /* Group and independent in turn, so that both see the same machine. */
    for (int k = 0; k < a->repeat && rc == TRESTLE_OK; k++) {
        rc = one_restore(a, g, node, 0, &grp[k], &o.total, &gs, &err);
        if (rc == TRESTLE_OK)
            rc = one_restore(a, g, node, 1, &alone[k], &o.total, NULL, &err);
    }
    if (rc != TRESTLE_OK) {
        fprintf(stderr, "trestle: %s\n", err.message[0] ? err.message : trestle_strerror(rc));
        free(grp);
        free(alone);
        return CLI_EXIT_FAIL;
    }
    for (int k = 1; k < a->repeat; k++)
        if (grp[k].wall < grp[o.best].wall)
            o.best = k;
    wall_spread(grp, a->repeat, &o.gw);
    wall_spread(alone, a->repeat, &o.aw);

    trestle_checkpoint *c = NULL;
    rc = trestle_open(a->path, cli_open_options(), &c, &err);
    int ok = rc == TRESTLE_OK, all_ok;
    if (ok && rank == 0)
        cli_machine_probe(trestle_shard_path(c, 0), &o.machine);
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    /* Both ceilings over the restore's own read-once scope. */
    int per_node = gs.scope == TRESTLE_GROUP_SCOPE_NODE && gs.nodes > 1;
    MPI_Comm scope = per_node ? node : MPI_COMM_WORLD;
    if (all_ok)
        mpi_bench_storage_ceiling(c, a->cold, node, scope, per_node ? gs.nodes : 1, &o.st);
    else
        memset(&o.st, 0, sizeof o.st), snprintf(o.st.note, sizeof o.st.note, "n/a: cannot reopen");
    trestle_close(c);
    /* Between buffers where the restore put the tensors: this rank's device. */
    int device = -1;
    if (mpi_group_device(&a->group, g, &device, &err) != TRESTLE_OK)
        device = -1; /* the restores above had it: cannot happen */
    /* Tests only: TRESTLE_MPI_TEST_CEILING_BYTES=N times the exchange over
     * N bytes, not the checkpoint's: a size some device cannot hold, in
     * the test of a ceiling that fails on one rank. */
    const char *test_bytes = getenv("TRESTLE_MPI_TEST_CEILING_BYTES");
    uint64_t xbytes = test_bytes && *test_bytes ? strtoull(test_bytes, NULL, 10) : o.total;
    mpi_bench_exchange_ceiling(g, xbytes, device, per_node, &o.ex, &o.gc);

    if (o.st.valid)
        o.bound = o.st.gbps;
    if (o.ex.valid && (per_node ? gs.node_size : n) > 1 && (o.bound == 0 || o.ex.gbps < o.bound))
        o.bound = o.ex.gbps;
    if (o.bound > 0) {
        /* Nothing beats its ceiling: above it, the ceiling's runs were disturbed. */
        o.ratio = (double)o.total / o.gw.median / 1e9 / o.bound;
        o.capped = o.ratio > 1;
        if (o.capped)
            o.ratio = 1;
    }
    if (rank == 0) {
        if (a->json)
            print_json(a, &gs, &o);
        else
            print_text(a, &gs, &o);
        fflush(stdout);
    }
    free(grp);
    free(alone);
    return CLI_EXIT_OK;
}

/* ---- the synthetic checkpoint ---- */

/* Rank 0 writes it (cli_bench_synth.c), everyone learns the prefix; "" on failure. */
static int make_synthetic(const bench_args *a, char *dir, size_t dcap, char *prefix, size_t cap)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 && cli_bench_synth_make(a->synth_size, a->synth_shards, dir, dcap, prefix,
                                          cap) != CLI_EXIT_OK)
        prefix[0] = '\0';
    MPI_Bcast(prefix, (int)cap, MPI_CHAR, 0, MPI_COMM_WORLD);
    return prefix[0] ? CLI_EXIT_OK : CLI_EXIT_FAIL;
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
    if (rank == 0)
        cli_bench_synth_remove(dir);
    return status;
}
