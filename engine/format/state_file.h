/*
 * state_file.h - the `checkpoint` state file that tf.train.Checkpoint and
 * Saver write beside their checkpoints (a text-format CheckpointState
 * message), read and parsed by engine/format/state_file.c: the one parser,
 * used where a directory is resolved to its latest checkpoint (ckpt_path.c)
 * and by trestle_latest_checkpoint(), which Python's latest_checkpoint()
 * calls, so every way in gives one answer.
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

/* The largest state file read: TF's are a few hundred bytes, one line per
 * kept checkpoint; anything near this is not a state file. */
#define TRESTLE__STATE_MAX_BYTES (16u << 20)

/*
 * Read DIR/NAME (NAME NULL: "checkpoint") by the rule for files a user
 * names (regular_file.h: never blocks, regular files only, at most
 * TRESTLE__STATE_MAX_BYTES) and parse it as trestle__state_parse(). *out
 * (malloc'd) receives the latest prefix, or NULL with TRESTLE_OK when there
 * is no such file (ENOENT, or DIR is not a directory), as
 * tf.train.get_checkpoint_state returns None. Errors name the state file:
 * TRESTLE_E_IO (unreadable, not a regular file), TRESTLE_E_LIMIT,
 * TRESTLE_E_CORRUPT, TRESTLE_E_NOMEM.
 */
int trestle__state_read(const char *dir, const char *name, char **out, trestle_error *err);

#endif /* TRESTLE_STATE_FILE_H */
