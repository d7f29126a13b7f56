/*
 * scratch_dir.h - scratch directories for the test suites and the
 * benchmarks: made under $TMPDIR, removed with everything in them. Plain C
 * without Criterion, so that bench/ compiles the same file (tests/
 * testutil.c wraps it as tu_mkdtemp() and tu_rmtree()).
 */
#ifndef TRESTLE_SCRATCH_DIR_H
#define TRESTLE_SCRATCH_DIR_H

/* A fresh directory $TMPDIR/trestle-<tag>-XXXXXX (/tmp without TMPDIR);
 * returns its path (malloc'd), or NULL on failure. */
char *scratch_dir_create(const char *tag);

/* Remove `path` and everything under it, without following symbolic
 * links; NULL is accepted. Errors are ignored: it is scratch. */
void scratch_dir_remove(const char *path);

#endif /* TRESTLE_SCRATCH_DIR_H */
