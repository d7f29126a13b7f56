/*
 * state_file.h - the `checkpoint` state file that tf.train.Checkpoint and
 * Saver write beside their checkpoints (a text-format CheckpointState
 * message), parsed by engine/format/state_file.c: the one parser, used
 * where a directory is resolved to its latest checkpoint (ckpt_path.c).
 */
#ifndef TRESTLE_STATE_FILE_H
#define TRESTLE_STATE_FILE_H

#include <stddef.h>

#include "trestle.h"

/*
 * Parse the text-format CheckpointState in `text` and return, in *out
 * (malloc'd), model_checkpoint_path joined to `dir` when relative.
 * TRESTLE_E_CORRUPT for unparseable text or an empty path (TF's
 * "Invalid checkpoint state loaded from <dir>"). `all_out`/`n_all` (may be
 * NULL) receive all_model_checkpoint_paths, joined likewise.
 */
int trestle__state_parse(const char *text, size_t len, const char *dir, const char *file_path,
                         char **out, char ***all_out, size_t *n_all, trestle_error *err);

#endif /* TRESTLE_STATE_FILE_H */
