/*
 * ckpt_remote.h - checkpoints in object stores (engine/format/ckpt_remote.c):
 * a URL resolved as a local path is (a prefix, its .index, a data file, a
 * "directory" through its `checkpoint` state file, a SavedModel's
 * variables/variables, or the one index a listing finds), the index read
 * in one GET, and the shards measured by HEAD requests sent all at once,
 * through engine/remote/.
 */
#ifndef TRESTLE_CKPT_REMOTE_H
#define TRESTLE_CKPT_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt_types.h"

/*
 * Open the store of `url` into c->store, resolve the checkpoint it names
 * and GET its index: *index (malloc'd) and *len; c->prefix and
 * c->index_path become display URLs. The remote fields of `o` configure
 * the store. Errors as trestle_open()'s, naming display URLs.
 */
int trestle__remote_open_index(trestle_checkpoint *c, const char *url,
                               const trestle_open_options *o, uint8_t **index, size_t *len,
                               trestle_error *err);

/* trestle__shards_init() for a remote checkpoint: name every shard and
 * HEAD them all at once (size, ETag, generation, CRC32C). With
 * require_all, a shard that cannot be had fails the open. */
int trestle__remote_shards_init(trestle_checkpoint *c, bool require_all, trestle_error *err);

/* trestle__shard_check() for a remote checkpoint: TRESTLE_OK when shard's
 * HEAD succeeded, else the error naming the tensor `key` (or none), the
 * shard's URL, `offset` and what the store said. */
int trestle__remote_shard_check(const trestle_checkpoint *c, int shard, const char *key,
                                uint64_t offset, trestle_error *err);

/* trestle__shard_pread() for a remote checkpoint: one ranged GET, pinned
 * to the version the HEAD saw, with the tensor `key` named in errors. */
int trestle__remote_shard_read(const trestle_checkpoint *c, int shard, uint64_t offset,
                               void *buf, uint64_t n, const char *key, trestle_error *err);

/* Free the store and the shard objects. */
void trestle__remote_free(trestle_checkpoint *c);

/* trestle_latest_checkpoint() of a URL directory: its state file GET and
 * parsed, the checkpoint it names checked with a HEAD of its index. */
int trestle__remote_latest(const char *dir, const char *state_name, char **out,
                           trestle_error *err);

#endif /* TRESTLE_CKPT_REMOTE_H */
