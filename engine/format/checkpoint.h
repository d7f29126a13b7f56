/*
 * checkpoint.h - what the layers above engine/format/ (plan, restore,
 * write) include to use an open checkpoint: its in-memory form
 * (ckpt_types.h), the entry lookups (ckpt_entry.h) and the shard files
 * (ckpt_shard.h), in one include. Inside format/, each file includes only
 * the parts it needs.
 *
 * trestle_open() (checkpoint.c) reads the whole index once, validates
 * every entry and keeps them in key order; after that the object is
 * immutable, so any number of threads can plan and read from it.
 */
#ifndef TRESTLE_CHECKPOINT_H
#define TRESTLE_CHECKPOINT_H

#include "ckpt_entry.h"
#include "ckpt_shard.h"
#include "ckpt_types.h"

#endif /* TRESTLE_CHECKPOINT_H */
