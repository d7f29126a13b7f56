/*
 * ckpt_path.h - resolve a user-given path to a checkpoint prefix.
 */
#ifndef TRESTLE_CKPT_PATH_H
#define TRESTLE_CKPT_PATH_H

#include "trestle.h"

/* *prefix (malloc'd) receives P such that P.index exists. TRESTLE_E_NOT_FOUND
 * when nothing matches, naming what was tried. */
int trestle__resolve_prefix(const char *path, char **prefix, trestle_error *err);

#endif /* TRESTLE_CKPT_PATH_H */
