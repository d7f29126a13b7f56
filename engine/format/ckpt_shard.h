/*
 * ckpt_shard.h - the data files of an open checkpoint (engine/format/ckpt_shard.c):
 * found and measured at open, opened only when their bytes are needed.
 */
#ifndef TRESTLE_CKPT_SHARD_H
#define TRESTLE_CKPT_SHARD_H

#include <stdbool.h>

#include "ckpt_types.h"

/*
 * Name every shard after the header's num_shards and stat() it: size,
 * errno of a failed stat, or IRREGULAR for anything but a regular file
 * (nothing is opened, so a FIFO cannot block). With require_all, any shard
 * that is missing or irregular fails the open, and every shard is opened
 * now. TRESTLE_E_NOMEM, TRESTLE_E_NOT_FOUND, TRESTLE_E_IO.
 */
int trestle__shards_init(trestle_checkpoint *c, bool require_all, trestle_error *err);

/*
 * Open shard `shard` if no one has yet (thread-safe: the first caller opens,
 * the others see its descriptor). A missing file is recorded for the
 * reader to report and returns TRESTLE_OK; a file that is not a regular
 * one (checked again on the descriptor) is TRESTLE_E_IO naming the file and,
 * when given, the tensor `key` that needs it. Nothing happens for
 * hand-made checkpoints (shard_state NULL).
 */
int trestle__shard_open(const trestle_checkpoint *c, int shard, const char *key,
                        trestle_error *err);

/*
 * Why shard `shard` cannot be read, as an error naming the tensor `key`,
 * the file and `offset`: TRESTLE_E_NOT_FOUND for a missing file,
 * TRESTLE_E_IO with the errno of the call that failed, or for a file of the
 * wrong type ("is a directory", "is a FIFO"). TRESTLE_OK when it can be.
 */
int trestle__shard_check(const trestle_checkpoint *c, int shard, const char *key,
                         uint64_t offset, trestle_error *err);

/*
 * pread exactly `n` bytes of shard `shard` at `offset` into buf, opening
 * the shard first if needed and retrying EINTR and short reads;
 * TRESTLE_E_SHORT_READ at EOF, TRESTLE_E_IO on error, TRESTLE_E_NOT_FOUND
 * when the shard file is missing. `key` names the tensor in the error.
 */
int trestle__shard_pread(const trestle_checkpoint *c, int shard, uint64_t offset, void *buf,
                         uint64_t n, const char *key, trestle_error *err);

/* TRESTLE_E_CORRUPT: entry e's bytes lie past the end of its shard
 * (e->past_end), naming the tensor, the file, its size and the entry. */
int trestle__entry_past_end(const trestle_checkpoint *c, const trestle__entry *e,
                            trestle_error *err);

/* Close every opened shard and free the shard arrays. */
void trestle__shards_free(trestle_checkpoint *c);

#endif /* TRESTLE_CKPT_SHARD_H */
