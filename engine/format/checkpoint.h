/*
 * checkpoint.h - the in-memory form of an open checkpoint, shared by the
 * modules above the format layer (plan, readers, restore, CLI helpers).
 *
 * trestle_open() reads the whole index once, validates every entry and
 * keeps them in key order; after that the object is immutable, so any
 * number of threads can plan and read from it.
 */
#ifndef TRESTLE_CHECKPOINT_H
#define TRESTLE_CHECKPOINT_H

#include "ckpt_entry.h"
#include "ckpt_shard.h"
#include "ckpt_types.h"

/* ---- the `checkpoint` state file (engine/format/state_file.c) ---- */

/*
 * Parse the text-format CheckpointState in `text` and return, in *out
 * (malloc'd), model_checkpoint_path joined to `dir` when relative.
 * TRESTLE_E_CORRUPT for unparseable text or an empty path (TF's
 * "Invalid checkpoint state loaded from <dir>"). `all_out`/`n_all` (may be
 * NULL) receive all_model_checkpoint_paths, joined likewise.
 */
int trestle__state_parse(const char *text, size_t len, const char *dir, const char *file_path,
                         char **out, char ***all_out, size_t *n_all, trestle_error *err);

#endif /* TRESTLE_CHECKPOINT_H */
