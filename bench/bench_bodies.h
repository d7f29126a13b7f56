/*
 * bench_bodies.h - the C bodies of the microbenchmarks. bench_main.cc (the
 * only C++ in the project) registers them with Google Benchmark; the
 * bodies themselves are plain C against the engine, so what is measured is
 * exactly the code the library runs.
 *
 * Each benchmark is a setup (returns an opaque context, or NULL when the
 * case cannot run here), a run (one iteration; returns the bytes or items
 * it processed) and a teardown.
 */
#ifndef TRESTLE_BENCH_BODIES_H
#define TRESTLE_BENCH_BODIES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void *tb_crc_setup(size_t bytes);
uint64_t tb_crc_run(void *ctx);          /* CRC32C of the whole buffer */
uint64_t tb_crc_combine_run(void *ctx);  /* CRC in 1 MiB pieces, combined */
void tb_crc_teardown(void *ctx);

void *tb_table_setup(size_t tensors);    /* a writer-made checkpoint of N tensors */
uint64_t tb_table_open_run(void *ctx);   /* trestle_open + listing: returns tensors */
void tb_table_teardown(void *ctx);

void *tb_plan_setup(size_t ops);         /* checkpoint + op list with slices and renames */
uint64_t tb_plan_run(void *ctx);         /* trestle_plan_create + free: returns ops */
void tb_plan_teardown(void *ctx);

/* Restore of a 256 MiB page-cached checkpoint with a given reader, chunk and depth. */
void *tb_reader_setup(int reader, size_t chunk_bytes, unsigned queue_depth);
uint64_t tb_reader_run(void *ctx);       /* bytes restored (verify on) */
void tb_reader_teardown(void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_BENCH_BODIES_H */
