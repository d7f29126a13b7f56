/*
 * mpi_exchange_ceiling.c - the exchange of a group restore alone: every
 * rank broadcasts its 1/N of BYTES to all the others in 64 MiB rounds, as
 * libtrestle_mpi does (engine/group_exchange.c), from and into memory
 * already touched, with no reading or checking beside it. The ceiling a
 * group restore's exchange is held against in bench/RESULTS.md.
 *
 *     mpirun -np 4 build/bench/mpi_exchange_ceiling 1G
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUND ((size_t)64 << 20) /* as engine/group_exchange.c */

/* "1G", "512M", "4096": bytes, or 0 when malformed. */
static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end ? -1 : 0;
    if (shift < 0 || v == 0 || v > (1ull << 40))
        return 0;
    return (size_t)(v << shift);
}

int main(int argc, char **argv)
{
    int rank, n;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    size_t total = argc == 2 ? parse_size(argv[1]) : 0;
    char *buf = total ? malloc(total) : NULL;
    if (!buf) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np N mpi_exchange_ceiling BYTES (e.g. 1G)\n");
        MPI_Finalize();
        return 2;
    }
    memset(buf, rank + 1, total); /* touched, as restored tensors are */
    for (int rep = 0; rep < 5; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int root = 0; root < n; root++) {
            size_t lo = total / (size_t)n * (size_t)root;
            size_t hi = root + 1 == n ? total : total / (size_t)n * (size_t)(root + 1);
            for (size_t at = lo; at < hi; at += ROUND) {
                size_t len = hi - at < ROUND ? hi - at : ROUND;
                MPI_Bcast(buf + at, (int)len, MPI_BYTE, root, MPI_COMM_WORLD);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double s = MPI_Wtime() - t0;
        if (rank == 0)
            printf("np %d: %.3f GB on every rank in %.3f s: %.2f GB/s received per rank, "
                   "%.2f GB/s in all\n", n, (double)total / 1e9, s,
                   (double)total * (n - 1) / n / s / 1e9, (double)total * (n - 1) / s / 1e9);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
