/*
 * fuzz_seeds.h - what the two files of the seed writer share
 * (tests/fuzz/fuzz_seeds.c: index seeds; tests/fuzz/fuzz_seeds_graph.c:
 * graph seeds).
 */
#ifndef TRESTLE_FUZZ_SEEDS_H
#define TRESTLE_FUZZ_SEEDS_H

#include <stdbool.h>

#include "trestle.h"

/* Print what failed (and err's message, when given) and exit 1. */
void fuzz_seeds_fail(const char *what, const trestle_error *err) __attribute__((noreturn));

/* True when path is a directory. */
bool fuzz_seeds_exists(const char *path);

/* Write the graph seeds into dir. */
void fuzz_seeds_graphs(const char *dir);

#endif /* TRESTLE_FUZZ_SEEDS_H */
