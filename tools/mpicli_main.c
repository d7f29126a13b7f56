/*
 * mpicli_main.c - `trestle-mpi restore`: one checkpoint restored by every
 * rank of an MPI job, each byte read from storage once (libtrestle_mpi),
 * with tensor-parallel parts per rank (--shard GLOB:DIM).
 *
 *     mpirun -np 8 trestle-mpi restore CKPT --all --shard '*_proj/kernel:1'
 *
 * A binary of its own, not a `trestle` command: `trestle` must run where
 * no MPI is installed, and loading an MPI library at run time (dlopen) ties
 * the binary to one MPI's ABI and plugin layout. `trestle restore` under
 * mpirun (or with --group mpi) runs this program instead (tools/cli_restore.c).
 *
 * Ops matching a --shard rule's glob are restored as parts
 * (trestle_group_restore_parts(): each rank reads its part's bytes where
 * they can be read alone, their CRC32C checked together, and one rank reads
 * a tensor whole and sends the others their parts where they cannot); the
 * others are planned without rules and restored by the group, read once.
 * Each rank prints one summary line, rank 0 an aggregate, and a note when
 * the ranks read more than about once what the tensors take. A client of
 * trestle.h and trestle_mpi.h only.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trestle_mpi.h"
#include "mpicli.h"

static const char help[] =
    "Usage: mpirun -np N trestle-mpi restore [OPTIONS] PATH\n"
    "\n"
    "Restore a checkpoint on every rank of an MPI job into host or GPU memory,\n"
    "reading each byte from storage on one rank only (or once per node, --scope)\n"
    "and sharing the verified bytes over MPI or NCCL, and print one summary line\n"
    "per rank and an aggregate on rank 0.\n"
    "\n"
    "What to restore:\n"
    "      --all              every tensor, whole (the default without --ops); fails\n"
    "                         on a variant tensor, naming each, unless\n"
    "                         --skip-unsupported or --exclude leaves it out\n"
    "      --skip-unsupported restore the rest and skip each variant tensor\n"
    "      --ops FILE         the ops listed in FILE (format: trestle restore --help)\n"
    "      --rename A=B       restore op name A from checkpoint key B (repeatable)\n"
    "      --exclude GLOB     skip op names matching GLOB (fnmatch; repeatable)\n"
    "      --shard GLOB:DIM   tensor parallelism (repeatable): an op whose name (as\n"
    "                         given, before --rename) matches GLOB gets on rank r of N\n"
    "                         only part r of dimension DIM, TensorFlow's partitioner\n"
    "                         rule: a dim of n splits into parts of n/N, the first\n"
    "                         n % N ranks one element more. The first matching rule\n"
    "                         wins; unmatched tensors are restored whole on every rank\n"
    "                         and read once by the group. Each rank reads only its\n"
    "                         part's bytes of a plain tensor (one run per row of the\n"
    "                         dims before DIM); TensorFlow's CRC32C covers the whole\n"
    "                         tensor, so each rank hashes its part into a share and\n"
    "                         the shares of all ranks are checked together before\n"
    "                         anything is reported restored. A tensor whose parts'\n"
    "                         runs lie less than 4 KiB apart (a narrow one split by\n"
    "                         columns) is read whole, and checked, by one rank,\n"
    "                         which sends every other rank its part, onto GPUs too\n"
    "                         (--device, by the exchange below): the parts are read\n"
    "                         once in all either way. E.g. with N = 4:\n"
    "                           --shard '*/attention/*/kernel:1'  (columns)\n"
    "                           --shard '*/mlp/wo/kernel:0'       (rows)\n"
    "      --group mpi        the process group (the default, and the only one)\n"
    "\n"
    "Where each byte is read once:\n"
    "      --scope auto|group|node\n"
    "                         group: once for the whole job, the ranks of all nodes\n"
    "                         sharing the reading and exchanging across nodes (for\n"
    "                         shared storage: NFS, Lustre, GPFS, CephFS, SMB, FUSE);\n"
    "                         node: once per node, exchanged within the node only\n"
    "                         (node-local disks or page cache). auto (the default):\n"
    "                         on one node both are the same; on several, group when\n"
    "                         every rank finds PATH on a shared file system (statfs),\n"
    "                         else node. Rank 0 prints the choice and why, e.g.\n"
    "                           scope node: 2 nodes and the checkpoint is on ext4,\n"
    "                           not a shared file system: each byte read once per node\n"
    "      --simulate-nodes N for tests on one machine: pretend the ranks are on N\n"
    "                         nodes, rank r of W on node r*N/W (as mpirun places\n"
    "                         them by slot), instead of asking MPI which ranks share\n"
    "                         memory\n"
    "\n"
    "Where the tensors go:\n"
    "      --device local|K   restore onto a GPU instead of host memory: local is this\n"
    "                         rank's GPU by node-local rank (rank i of a node gets GPU\n"
    "                         i modulo the node's GPU count: one process per GPU, as\n"
    "                         inference servers run), K is GPU K on every rank. Each\n"
    "                         rank copies its own part straight to its GPU, then the\n"
    "                         parts travel between GPUs with NCCL when libnccl.so.2\n"
    "                         loads, else through pinned host memory over MPI (2 x 64\n"
    "                         MiB bounce buffers). Rank 0 prints which ran:\n"
    "                           mpirun -np 8 trestle restore CKPT --all --device local\n"
    "      --exchange auto|staged|mpi-cuda\n"
    "                         device ranks: staged always takes pinned host memory,\n"
    "                         to compare with NCCL or rule it out (default auto);\n"
    "                         mpi-cuda broadcasts device memory with MPI when every\n"
    "                         rank's MPI says it is CUDA-aware: only when asked, since\n"
    "                         that answer is how Open MPI was built, not whether its\n"
    "                         transport (UCX without CUDA, say) takes device pointers\n"
    "\n"
    "How:\n"
    "      --no-verify        skip the CRC32C check\n"
    "      --threads N        verify/copy workers per rank (default: cores, at most 8)\n"
    "      --reader KIND      auto (default), io_uring or pread\n"
    "      --direct POLICY    O_DIRECT: auto (default), always or never\n"
    "      --checksum         also print each rank's FNV-1a 64 checksums of its whole\n"
    "                         tensors (every op's bytes in op order: without --shard,\n"
    "                         what `trestle restore --checksum` prints as the whole\n"
    "                         model's) and of its parts, and its bytes read\n"
    "  -h, --help             this text\n"
    "\n"
    CLI_REMOTE_HELP
    "\n"
    "Failure is collective: a CRC mismatch, I/O error or missing key on any rank\n"
    "fails every rank with the same message, naming the rank that saw it.\n"
    "Rates are GB/s (1e9 bytes per second), sizes binary (MiB, GiB).\n";

typedef struct args {
    const char *path, *ops_file;
    const char **renames, **excludes, **rules;
    size_t nrenames, nexcludes, nrules;
    int verify, reader, direct, checksum, skip_unsupported;
    mpi_group_args group;       /* --group, --scope, --simulate-nodes, --device, --exchange */
    unsigned threads;
} args;

static int push(const char ***v, size_t *n, const char *s)
{
    const char **g = realloc(*v, (*n + 1) * sizeof *g);
    if (!g)
        return -1;
    g[(*n)++] = s;
    *v = g;
    return 0;
}

/* CLI_EXIT_OK, or a usage error (printed by rank 0 only, to keep one copy). */
static int parse(int argc, char **argv, int rank, args *a)
{
    static const struct option longopts[] = {
        { "all", no_argument, NULL, 'a' },       { "ops", required_argument, NULL, 'o' },
        { "rename", required_argument, NULL, 'r' }, { "exclude", required_argument, NULL, 'x' },
        { "shard", required_argument, NULL, 's' }, TRESTLE_MPI_GROUP_LONGOPTS,
        { "no-verify", no_argument, NULL, 'V' }, { "threads", required_argument, NULL, 't' },
        { "reader", required_argument, NULL, 'R' }, { "checksum", no_argument, NULL, 'c' },
        { "direct", required_argument, NULL, 'D' },
        { "skip-unsupported", no_argument, NULL, 'U' }, CLI_REMOTE_LONGOPTS,
        { "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 },
    };
    int c, all = 0;
    long long v;
    a->verify = 1;
    mpi_group_args_init(&a->group);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int grc = mpi_group_option("restore", c, optarg, rank, &a->group);
        if (grc >= 0) {
            if (grc != CLI_EXIT_OK)
                return grc;
            continue;
        }
        switch (c) {
        case 'a': all = 1; break;
        case 'o': a->ops_file = optarg; break;
        case 'r':
            if (!strchr(optarg, '=') || push(&a->renames, &a->nrenames, optarg))
                return rank ? CLI_EXIT_USAGE
                            : cli_usage("restore", "--rename wants A=B, not '%s'", optarg);
            break;
        case 'x': push(&a->excludes, &a->nexcludes, optarg); break;
        case 's': push(&a->rules, &a->nrules, optarg); break;
        case 'V': a->verify = 0; break;
        case 'c': a->checksum = 1; break;
        case 'U': a->skip_unsupported = 1; break;
        case 't':
            if (cli_parse_int(optarg, 1, 1024, &v))
                return rank ? CLI_EXIT_USAGE
                            : cli_usage("restore", "--threads wants 1 to 1024, not '%s'", optarg);
            a->threads = (unsigned)v;
            break;
        case 'R':
            if (!strcmp(optarg, "auto")) a->reader = TRESTLE_READER_AUTO;
            else if (!strcmp(optarg, "io_uring")) a->reader = TRESTLE_READER_IO_URING;
            else if (!strcmp(optarg, "pread")) a->reader = TRESTLE_READER_PREAD;
            else return rank ? CLI_EXIT_USAGE
                             : cli_usage("restore", "--reader is auto, io_uring or pread");
            break;
        case 'D':
            if (!strcmp(optarg, "auto")) a->direct = TRESTLE_DIRECT_AUTO;
            else if (!strcmp(optarg, "always")) a->direct = TRESTLE_DIRECT_ALWAYS;
            else if (!strcmp(optarg, "never")) a->direct = TRESTLE_DIRECT_NEVER;
            else return rank ? CLI_EXIT_USAGE
                             : cli_usage("restore", "--direct is auto, always or never");
            break;
        case CLI_OPT_CONNECTIONS:
        case CLI_OPT_ATTEMPTS:
        case CLI_OPT_BACKOFF:
            if (cli_remote_option_quiet("restore", c, optarg, rank != 0) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            if (rank == 0)
                fputs(help, stdout);
            return -1;
        default:
            return rank ? CLI_EXIT_USAGE : cli_bad_option("restore", argv, c);
        }
    }
    if (optind + 1 != argc)
        return rank ? CLI_EXIT_USAGE : cli_usage("restore", "wants exactly one checkpoint PATH");
    if (all && a->ops_file)
        return rank ? CLI_EXIT_USAGE : cli_usage("restore", "--all and --ops exclude each other");
    a->path = argv[optind];
    return CLI_EXIT_OK;
}

/* ---- which ops go where ---- */

static bool excluded(const char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0)
            return true;
    return false;
}

/* Split the requested ops (the ops file, or every restorable tensor) into
 * those the group restores whole and those each rank restores a part of.
 * With `notes` (rank 0), say which --shard rules split nothing. */
static int split_ops(const args *a, const trestle_checkpoint *c, cli_ops *file, trestle_op **whole,
                     size_t *nwhole, trestle_op **part, size_t *npart, int notes)
{
    cli_shard_tally tally;
    size_t n = trestle_tensor_count(c);
    if (a->ops_file) {
        if (cli_ops_read(a->ops_file, TRESTLE_DEST_ALLOCATE, file) != CLI_EXIT_OK)
            return CLI_EXIT_FAIL;
        n = file->n;
    }
    *whole = calloc(n + 1, sizeof **whole);
    *part = calloc(n + 1, sizeof **part);
    if (!*whole || !*part || cli_shard_tally_init(&tally, a->nrules) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    for (size_t i = 0; i < n; i++) {
        trestle_op op = { .dest_kind = TRESTLE_DEST_ALLOCATE };
        if (a->ops_file) {
            op = file->ops[i];
        } else {
            /* Every tensor, variants included: the plan refuses them by
             * name, or skips them with --skip-unsupported, as restore does. */
            trestle_tensor_info t;
            trestle_tensor_get_info(c, i, &t);
            op.name = t.name;
        }
        if (excluded(a->excludes, a->nexcludes, op.name))
            continue;
        cli_shard_tally_add(&tally, a->rules, op.name);
        /* The planner's own choice of rule: a malformed rule matches
         * nothing here, and the plan of the parts refuses it by name. */
        if (trestle_shard_rule_match(a->rules, a->nrules, op.name, NULL) >= 0)
            (*part)[(*npart)++] = op;
        else
            (*whole)[(*nwhole)++] = op;
    }
    cli_shard_tally_done(&tally, a->rules, notes);
    return CLI_EXIT_OK;
}

/* ---- output ---- */

/* What rank 0 needs from every rank for the aggregate line. */
typedef struct figures {
    uint64_t read, sent, received, landed, deferred;
    double wall;
} figures;

/* Rank 0: "bytes read per rank: 0: 1.0 MiB, 1: 1.0 MiB" (one line). */
static void print_per_rank(const figures *all, int size)
{
    char line[4096], h[32];
    size_t n = (size_t)snprintf(line, sizeof line, "bytes read per rank:");
    for (int r = 0; r < size && n < sizeof line; r++) {
        cli_human_size(all[r].read, h, sizeof h);
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %d: %s", r ? "," : "", r, h);
    }
    printf("%s\n", line);
}

/* The stored bytes of the distinct tensors the plans restore: what the
 * job reads in all when every byte is read once. *both: a tensor that is
 * restored both whole and in parts (two op names, one key), which then is
 * read by both. */
static uint64_t stored_bytes(const trestle_checkpoint *c, const trestle_plan *whole,
                             const trestle_plan *part, const char **both)
{
    size_t n = trestle_tensor_count(c);
    uint8_t *seen = calloc(n ? n : 1, 1);
    uint64_t sum = 0;
    *both = NULL;
    const trestle_plan *plans[] = { whole, part };
    for (int k = 0; seen && k < 2; k++)
        for (size_t i = 0; plans[k] && i < trestle_plan_op_count(plans[k]); i++) {
            trestle_plan_op_info o;
            size_t at;
            trestle_plan_get_op(plans[k], i, &o);
            if (o.skipped || trestle_tensor_find(c, o.key, &at, NULL) != TRESTLE_OK)
                continue;
            if (seen[at] && seen[at] != k + 1 && !*both)
                *both = o.key;
            if (!seen[at]) {
                trestle_tensor_info t;
                trestle_tensor_get_info(c, at, &t);
                sum += t.size;
            }
            seen[at] |= (uint8_t)(k + 1);
        }
    free(seen);
    return sum;
}

/* What rank 0 says about the storage bytes beside the job's tensors. */
typedef struct reading {
    uint64_t needed;            /* stored bytes of the tensors restored, once */
    const char *both;           /* a tensor restored whole and in parts, or NULL */
} reading;

/* Rank 0: "note: ..." when the ranks read more than about once (10%) what
 * the tensors take, each read-once scope counted once, and why. */
static void print_reading(const reading *rd, const trestle_group_stats *gs, uint64_t read)
{
    int copies = gs->scope == TRESTLE_GROUP_SCOPE_NODE ? gs->nodes : 1;
    if (rd->needed == 0 || (double)read <= 1.1 * (double)rd->needed * copies)
        return;
    char all[32], need[32], why[256];
    cli_human_size(read, all, sizeof all);
    cli_human_size(rd->needed, need, sizeof need);
    if (rd->both)
        snprintf(why, sizeof why, "tensor '%.120s' is restored both whole and in parts, and each "
                 "is read on its own", rd->both);
    else
        snprintf(why, sizeof why, "the ranks' reads overlap");
    printf("note: read %s from storage in all, %.2fx the %s the tensors take%s: %s\n", all,
           (double)read / (double)rd->needed, need, copies > 1 ? " on each node" : "", why);
}

static void report(const trestle_group_stats *gs, int device, const trestle_group_stats *ps,
                   size_t tensors, size_t parts, uint64_t landed, double wall,
                   const trestle_plan *whole, const trestle_plan *part, int sums,
                   const reading *rdg)
{
    char rd[32], sent[32], recv[32];
    uint64_t read = gs->bytes_read + ps->bytes_read;
    cli_human_size(read, rd, sizeof rd);
    cli_human_size(gs->bytes_sent + ps->bytes_sent, sent, sizeof sent);
    cli_human_size(gs->bytes_received + ps->bytes_received, recv, sizeof recv);
    char parts_note[96] = "";
    if (ps->local.bytes_deferred > 0) {
        /* Only the group's check of the shares verified these bytes. */
        char def[32];
        cli_human_size(ps->local.bytes_deferred, def, sizeof def);
        snprintf(parts_note, sizeof parts_note, " (%s of parts, CRC32C checked across the %d "
                 "ranks)", def, gs->size);
    }
    printf("rank %d/%d: %zu tensors (%zu tensor-parallel parts); read %s from storage%s (%zu "
           "extents) in %.3f s; sent %s, received %s in %.3f s; wall %.3f s\n",
           gs->rank, gs->size, tensors, parts, rd, parts_note, gs->extents + ps->extents,
           gs->restore_seconds + ps->restore_seconds, sent, recv,
           gs->exchange_seconds + ps->exchange_seconds, wall);
    if (sums)
        printf("rank %d/%d checksum: whole %016" PRIx64 " parts %016" PRIx64 " read %" PRIu64
               " node %d device %d\n", gs->rank, gs->size, cli_checksum_plan(whole),
               cli_checksum_plan(part), read,
               gs->node, device);
    fflush(stdout);

    figures mine = { read, gs->bytes_sent + ps->bytes_sent,
                     gs->bytes_received + ps->bytes_received, landed, ps->local.bytes_deferred,
                     wall };
    figures *all = NULL;
    if (gs->rank == 0)
        all = calloc((size_t)gs->size, sizeof *all);
    MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0,
               MPI_COMM_WORLD);
    if (!all)
        return;
    figures sum = { 0 };
    for (int r = 0; r < gs->size; r++) {
        sum.read += all[r].read;
        sum.sent += all[r].sent;
        sum.received += all[r].received;
        sum.landed += all[r].landed;
        sum.deferred += all[r].deferred;
        if (all[r].wall > sum.wall)
            sum.wall = all[r].wall;
    }
    char landed_s[32], ex[32];
    cli_human_size(sum.read, rd, sizeof rd);
    cli_human_size(sum.received, ex, sizeof ex);
    cli_human_size(sum.landed, landed_s, sizeof landed_s);
    double s = sum.wall > 0 ? sum.wall : 1e-9;
    printf("group of %d: read %s from storage in all, exchanged %s, %s landed in %.3f s: "
           "aggregate %.2f GB/s (storage %.2f GB/s)\n", gs->size, rd, ex, landed_s, sum.wall,
           (double)sum.landed / s / 1e9, (double)sum.read / s / 1e9);
    print_per_rank(all, gs->size);
    printf("scope %s: %s\n", gs->scope == TRESTLE_GROUP_SCOPE_NODE ? "node" : "group",
           gs->scope_note);
    static const char *const kinds[] = { "auto", "mpi", "staged", "mpi-cuda", "nccl" };
    printf("exchange %s: %s\n", kinds[gs->exchange >= 0 && gs->exchange <= 4 ? gs->exchange : 0],
           gs->exchange_note);
    if (part)
        printf("parts: %s\n", ps->exchange_note);
    print_reading(rdg, gs, sum.read);
    free(all);
}

/* Tests only: TRESTLE_MPI_TEST_KILL_RANK=R kills rank R in the middle of
 * its restore (at its first ready tensor), as a crashed node would. */
static int die(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user, (void)i, (void)op;
    raise(SIGKILL);
    return 0;
}

static uint64_t landed_bytes(const trestle_plan *p)
{
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    return p ? st.output_bytes : 0;
}

static int restore(const args *a, trestle_group *g)
{
    int rank = trestle_group_rank(g), rc;
    trestle_checkpoint *c = NULL;
    trestle_plan *whole = NULL, *part = NULL;
    trestle_op *wops = NULL, *pops = NULL;
    size_t nw = 0, np = 0;
    cli_ops file = { 0 };
    trestle_error err, mine;
    trestle_group_stats ps = { 0 }, gs = { 0 };
    double t0 = MPI_Wtime();
    trestle_restore_options ro;
    trestle_plan_options po;

    trestle_error_clear(&mine);
    trestle_restore_options_init(&ro);
    ro.verify = a->verify;
    ro.reader = a->reader;
    ro.direct = a->direct;
    if (a->threads)
        ro.threads = a->threads;
    cli_remote_fit(&ro);
    rc = mpi_group_device(&a->group, g, &ro.device, &mine);
    const char *kill_rank = getenv("TRESTLE_MPI_TEST_KILL_RANK");
    if (kill_rank && atoi(kill_rank) == rank) {
        ro.on_ready = die;
    }

    /* Planning is local, but its failure is everyone's. */
    if (rc == TRESTLE_OK)
        rc = trestle_open(a->path, cli_open_options(), &c, &mine);
    if (rc == TRESTLE_OK && split_ops(a, c, &file, &wops, &nw, &pops, &np, rank == 0) != CLI_EXIT_OK) {
        rc = TRESTLE_E_INVALID_ARG;
        snprintf(mine.message, sizeof mine.message, "cannot read the op list");
    }
    trestle_plan_options_init(&po);
    po.renames = a->renames;
    po.num_renames = a->nrenames;
    po.skip_unsupported = a->skip_unsupported;
    if (rc == TRESTLE_OK)
        rc = trestle_plan_create(c, wops, nw, &po, &whole, &mine);
    rc = trestle_group_agree(g, rc, &mine, &err);
    po.shard_rules = a->rules;
    po.num_shard_rules = a->nrules;
    /* A part whose runs lie less than a page apart is not read in runs: one
     * rank reads its tensor whole for all and sends each rank its part. */
    po.max_gap_bytes = 4096;
    /* Each rank's own tensor-parallel parts first, then the shared rest.
     * Planned even when no op matches, so that a malformed rule is still
     * refused by the library, naming it, rather than matching nothing. */
    if (rc == TRESTLE_OK && a->nrules > 0)
        rc = trestle_group_restore_parts(g, c, pops, np, &po, &ro, &part, &ps, &err);
    if (rc == TRESTLE_OK)
        rc = trestle_group_restore(g, whole, &ro, &gs, &err);
    if (rc != TRESTLE_OK) {
        /* One write per rank: the ranks share mpirun's stderr, and a line
         * written in pieces interleaves with the others'. */
        fprintf(stderr, "trestle: %s\n", err.message[0] ? err.message : trestle_strerror(rc));
    } else {
        reading rd = { 0, NULL };
        rd.needed = stored_bytes(c, whole, part, &rd.both);
        report(&gs, ro.device, &ps, nw + np, np, landed_bytes(whole) + landed_bytes(part),
               MPI_Wtime() - t0, whole, part, a->checksum, &rd);
    }
    trestle_plan_free(whole);
    trestle_plan_free(part);
    trestle_close(c);
    cli_ops_free(&file);
    free(wops);
    free(pops);
    return rc == TRESTLE_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int main(int argc, char **argv)
{
    int provided, rank = 0, status;
    args a = { 0 };
    trestle_group *g = NULL;
    trestle_error err;

    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc >= 2 && !strcmp(argv[1], "bench")) {
        status = mpicli_bench_main(argc - 1, argv + 1);
        MPI_Finalize();
        return status;
    }
    if (argc < 2 || strcmp(argv[1], "restore") != 0) {
        if (rank == 0)
            fprintf(stderr, "%s", argc >= 2 && !strcmp(argv[1], "--help") ? help
                    : "trestle: usage: mpirun -np N trestle-mpi restore|bench [OPTIONS] PATH "
                      "(--help for more)\n");
        MPI_Finalize();
        return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    status = parse(argc - 1, argv + 1, rank, &a);
    if (status == CLI_EXIT_OK) {
        if (mpi_group_create(&a.group, a.path, &g, NULL, &err) != TRESTLE_OK)
            status = cli_fail(&err);
        else
            status = restore(&a, g);
    } else if (status < 0) {
        status = CLI_EXIT_OK; /* --help */
    }
    trestle_group_free(g);
    free(a.renames);
    free(a.excludes);
    free(a.rules);
    MPI_Finalize();
    return status;
}
