/*
 * cli_bench_result.h - what `trestle bench`'s files share: its arguments
 * and everything it measured (cli_bench.c measures, cli_bench_report.c
 * holds the figures against their yardsticks and prints the same numbers
 * as text or JSON, cli_bench_server.c times an attach beside a restore).
 */
#ifndef TRESTLE_CLI_BENCH_RESULT_H
#define TRESTLE_CLI_BENCH_RESULT_H

#include "cli.h"

typedef struct bench_args {
    const char *path;
    uint64_t synth_size;    /* 0 unless --synthetic */
    int synth_shards;
    int device;             /* -1 host, else the (first) device */
    int devices[CLI_MAX_DEVICES]; /* --device N,M,...: the list (ndevices >= 2) */
    size_t ndevices;
    int cold, json;
    int map;                /* --map: restore option host_map */
    int no_numa;            /* --no-numa: restore option no_numa */
    int repeat;
    const char *server;     /* --server S: attach vs restore (cli_bench_server.c), or NULL */
} bench_args;

/* A stage's yardstick: what its rate is held against. */
typedef struct bench_against {
    const cli_ceiling *by;  /* NULL: none */
    const char *name;       /* "plain read", "CRC32C per core", ... */
    const char *key;        /* its key in the JSON "ceilings" object */
} bench_against;

/* Everything measured, so that text and JSON print the same numbers. */
typedef struct bench_result {
    char path[4200];
    uint64_t output_bytes;
    char cache[320];        /* what cold mode did, or "warm" */
    cli_run *runs;          /* one per repeat */
    size_t nruns;
    double device_startup;  /* seconds of the warm-up device restore, or -1 */
    uint64_t peak_rss;      /* bytes */
    cli_machine machine;
    cli_ceiling plain, direct, crc, mem, h2d_pinned, h2d_pageable;
    cli_ceiling h2d_all;    /* several devices: pinned h2d of the first, times their number */
    cli_ceiling gets;       /* a URL: plain parallel ranged GETs of the plan's bytes */
    bench_against against[CLI_STAGES];
} bench_result;

/*
 * A stage's ratio to its yardstick: the stage's median GB/s over the
 * yardstick's figure. Against a ceiling it is at most 1: *capped is set
 * (and *over gets by how much the stage beat it, e.g. 0.04) when the stage
 * measured above. 0 when either side has no figure.
 */
double bench_ratio(const bench_result *r, int stage, int *capped, double *over);

/* --server: attach from a trestle server beside a fresh restore, in turn
 * (cli_bench_server.c). CLI_EXIT_OK, or CLI_EXIT_FAIL (reported). */
int cli_bench_server(const bench_args *a);

/* The report, as tables or as one JSON object. */
void bench_print_text(const bench_args *a, const bench_result *r);
int bench_print_json(const bench_args *a, const bench_result *r);

#endif /* TRESTLE_CLI_BENCH_RESULT_H */
