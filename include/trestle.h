/**
 * @file trestle.h
 * @brief The core public API of libtrestle: open a checkpoint, plan a
 * restore, restore it into host or GPU memory, keep the memory (arenas),
 * restore onto several GPUs, write checkpoints, convert to safetensors.
 *
 * This is the header an inference runtime or a training job includes. Two
 * others serve narrower audiences and include this one:
 * - trestle_graph.h: graphs (`.meta`, SavedModel), a TF2 checkpoint's
 *   object-graph names, and rename inference, for tools that start from
 *   what a graph asks for rather than from an op list (also libtrestle);
 * - trestle_mpi.h: process groups that restore one checkpoint once across
 *   MPI ranks (libtrestle_mpi).
 *
 * The last section of this header, "Advanced", holds the plumbing that
 * libtrestle_mpi and programs splitting a restore themselves build on:
 * shard rules, a plan's extents (parts), CRC shares.
 */

/**
 * @mainpage trestle
 *
 * libtrestle restores TensorFlow V2 checkpoints ("tensor bundles": a
 * `<prefix>.index` SSTable plus `<prefix>.data-NNNNN-of-MMMMM` shard files)
 * into host or GPU memory as fast as the hardware allows, verifying the
 * CRC32C of every byte.
 *
 * Data flow:
 *
 *     trestle_open()         path or URL -> immutable checkpoint (index parsed
 *                            and validated, shard files or objects measured)
 *     trestle_plan_create()  op list (keys, shape_and_slices, dtypes,
 *                            renames, exclusions) -> plan of coalesced reads
 *     trestle_restore()      reads -> CRC32C check -> copy into destination,
 *                            overlapped; per-tensor ready callbacks; stats
 *
 * Global rules:
 * - Ownership: every pointer the library returns (names, dims, paths) is owned
 *   by the object it came from and stays valid until that object is freed.
 *   Every pointer the caller passes in stays owned by the caller; the library
 *   copies what it keeps, unless a function says otherwise.
 * - Threads: there is no global state. An open trestle_checkpoint is
 *   immutable and may be shared by any number of threads. A trestle_plan may
 *   be restored by one thread at a time; different plans are independent, so
 *   several restores may run at once in one process. trestle_restore_cancel()
 *   is the one call that may target a running restore from another thread.
 * - Errors: every fallible call returns 0 (TRESTLE_OK) or a positive
 *   trestle_code, and fills the caller-owned trestle_error when `err` is not
 *   NULL. The error is never stored on a handle. On failure an out-pointer
 *   is set to NULL and nothing half-built escapes.
 * - Options: option structs are plain data with a leading `size` field and
 *   trailing reserved fields, so that they grow without an ABI break. Fill
 *   one with its `*_options_init()`, then set fields; NULL for a struct
 *   means all defaults. Every function reads every options struct by one
 *   rule (trestle_options_read()), and refuses it with TRESTLE_E_INVALID_ARG,
 *   in a message that names the struct and the field, when:
 *   - `size` is smaller than the struct's first release or larger than
 *     4096 bytes (the struct was not filled by its init);
 *   - `size` is larger than the struct this library knows (a caller built
 *     against a newer header) and a byte beyond it is not zero: a newer
 *     option this library cannot honour;
 *   - a reserved field that `size` covers is not zero.
 *   Otherwise the library reads the first `size` bytes, and the fields past
 *   them (a caller built against an older header) keep their defaults. A
 *   field added after a struct's first release has zero as its default
 *   (e.g. trestle_plan_options.shard_world's 0 reads as 1), so a newer
 *   caller that leaves it alone also runs on an older library. Each
 *   struct's first release is the size of today's struct: every field
 *   added since took a reserved slot.
 * - The library never prints, never exits and never aborts on bad input.
 * - Versions: "Since X.Y" on each function is the release that added it.
 *   TRESTLE_VERSION_* (trestle_version.h) describe the header,
 *   trestle_version_number() the library actually loaded.
 *
 * Headers: trestle.h is the core (this page's data flow), ending in an
 * "Advanced" section for libraries built on it; trestle_graph.h adds graphs,
 * names and rename inference; trestle_mpi.h adds process groups
 * (libtrestle_mpi). Each includes trestle.h, and these rules hold in all.
 *
 * Linking: `cmake --install` provides `pkg-config --cflags --libs trestle`
 * and `find_package(trestle)` with targets trestle::trestle (shared) and
 * trestle::trestle_static, for trestle.h and trestle_graph.h alike. Only
 * trestle_* symbols are exported.
 */
#ifndef TRESTLE_H
#define TRESTLE_H

#include <stddef.h>
#include <stdint.h>

#include "trestle_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Marks exported symbols; everything else in the library is hidden. */
#if defined(TRESTLE_BUILDING_LIBRARY) && defined(__GNUC__)
#define TRESTLE_API __attribute__((visibility("default")))
#else
#define TRESTLE_API
#endif

/* ======================================================================= */
/* Version                                                                  */
/* ======================================================================= */

/**
 * @brief The runtime library's version as MAJOR*10000 + MINOR*100 + PATCH.
 *
 * Compare with the compile-time TRESTLE_VERSION_NUMBER (trestle_version.h)
 * to detect a program built against one header and run with another
 * library, as with ZSTD_versionNumber():
 *
 *     if (trestle_version_number() / 100 != TRESTLE_VERSION_NUMBER / 100)
 *         ... header and library differ in MAJOR.MINOR ...
 *
 * @return the version number, e.g. 200 for 0.2.0. Never fails.
 * Thread-safe; callable before any other function. Since 0.1.
 */
TRESTLE_API unsigned trestle_version_number(void);

/**
 * @brief The runtime library's version as "MAJOR.MINOR.PATCH".
 * @return static storage owned by the library; never NULL, never freed.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API const char *trestle_version_string(void);

/* ======================================================================= */
/* Errors                                                                   */
/* ======================================================================= */

/**
 * The one table of error codes. Values are grouped by tens and are stable:
 * 0 success; 1x caller misuse and resources; 2x corrupt data; 3x I/O;
 * 4x key/dtype/shape resolution; 5x pipeline; 6x CUDA; 7x process groups
 * (libtrestle_mpi, since 0.2); 8x resident checkpoints (`trestle serve`,
 * trestle_serve.h, since 0.2).
 * XX(name, value, text).
 */
#define TRESTLE_ERROR_MAP(XX)                                                  \
    XX(OK, 0, "success")                                                       \
    XX(E_INVALID_ARG, 10, "invalid argument")                                  \
    XX(E_NOMEM, 11, "out of memory")                                           \
    XX(E_UNSUPPORTED, 12, "unsupported feature")                               \
    XX(E_LIMIT, 13, "a built-in limit was exceeded")                           \
    XX(E_CORRUPT, 20, "corrupt checkpoint")                                    \
    XX(E_CRC_MISMATCH, 21, "CRC32C mismatch")                                  \
    XX(E_BAD_VERSION, 22, "checkpoint needs a newer reader")                   \
    XX(E_IO, 30, "I/O error")                                                  \
    XX(E_NOT_FOUND, 31, "file not found")                                      \
    XX(E_SHORT_READ, 32, "unexpected end of file")                             \
    XX(E_KEY_NOT_FOUND, 40, "key not found in checkpoint")                     \
    XX(E_DTYPE_MISMATCH, 41, "dtype mismatch")                                 \
    XX(E_SHAPE_MISMATCH, 42, "shape mismatch")                                 \
    XX(E_BAD_SPEC, 43, "invalid shape_and_slices or op specification")        \
    XX(E_INSUFFICIENT_SLICES, 44, "stored slices do not cover the request")    \
    XX(E_CANCELLED, 50, "restore cancelled")                                   \
    XX(E_NO_IO_URING, 51, "io_uring unavailable")                              \
    XX(E_CUDA, 60, "CUDA error")                                               \
    XX(E_NO_DEVICE, 61, "no CUDA device")                                     \
    XX(E_GROUP, 70, "process group failure")                                  \
    XX(E_SERVER, 80, "trestle server failure")                                 \
    XX(E_NOT_RESIDENT, 81, "not resident on the trestle server")

/** Error codes; see TRESTLE_ERROR_MAP. */
typedef enum trestle_code {
#define TRESTLE__XX(name, value, text) TRESTLE_##name = value,
    TRESTLE_ERROR_MAP(TRESTLE__XX)
#undef TRESTLE__XX
} trestle_code;

#define TRESTLE_ERROR_MESSAGE_MAX 1024 /**< bytes in trestle_error.message */
#define TRESTLE_ERROR_FIELD_MAX 512    /**< bytes in .key and .path */

/**
 * One error type for the whole library: a code, the structured facts behind
 * it, and a formatted message that names the tensor, file and byte offset.
 * Caller-owned; the library only writes into it. Fields that do not apply
 * are empty strings or -1.
 */
typedef struct trestle_error {
    int code;                              /**< a trestle_code */
    int sys_errno;                         /**< raw errno of an OS failure, else 0 */
    int64_t offset;                        /**< byte offset in .path, or -1 */
    int64_t length;                        /**< byte count involved, or -1 */
    char key[TRESTLE_ERROR_FIELD_MAX];     /**< tensor key involved, or "" */
    char path[TRESTLE_ERROR_FIELD_MAX];    /**< file involved, or "" */
    char message[TRESTLE_ERROR_MESSAGE_MAX]; /**< full human-readable text */
} trestle_error;

/**
 * @brief The static text of an error code, e.g. "CRC32C mismatch".
 *
 * For the full message of one failure (tensor, file, offset), use
 * trestle_error.message instead.
 *
 * @param[in] code  a trestle_code; any int is accepted.
 * @return static storage owned by the library, never NULL; unknown codes
 *         give "unknown error". Thread-safe. Since 0.1.
 */
TRESTLE_API const char *trestle_strerror(int code);

/**
 * @brief The code's enum name without the TRESTLE_ prefix, e.g. "E_CRC_MISMATCH".
 *
 * Meant for logs and machine-readable output (the CLI's --json).
 *
 * @param[in] code  a trestle_code; any int is accepted.
 * @return static storage owned by the library, never NULL; unknown codes
 *         give "UNKNOWN". Thread-safe. Since 0.1.
 */
TRESTLE_API const char *trestle_code_name(int code);

/**
 * @brief Reset an error to TRESTLE_OK: empty strings, offset and length -1.
 *
 * Optional: every fallible call fills `err` completely on failure, so a
 * caller never has to clear it first.
 *
 * @param[out] err  caller-owned error; NULL is accepted and ignored.
 * Thread-safe for distinct `err`. Since 0.1.
 */
TRESTLE_API void trestle_error_clear(trestle_error *err);

/* ======================================================================= */
/* Data types                                                               */
/* ======================================================================= */

/** TensorFlow DataType values, exactly as stored on disk (types.proto). */
typedef enum trestle_dtype {
    TRESTLE_DT_INVALID = 0,
    TRESTLE_DT_FLOAT = 1,
    TRESTLE_DT_DOUBLE = 2,
    TRESTLE_DT_INT32 = 3,
    TRESTLE_DT_UINT8 = 4,
    TRESTLE_DT_INT16 = 5,
    TRESTLE_DT_INT8 = 6,
    TRESTLE_DT_STRING = 7,
    TRESTLE_DT_COMPLEX64 = 8,
    TRESTLE_DT_INT64 = 9,
    TRESTLE_DT_BOOL = 10,
    TRESTLE_DT_QINT8 = 11,
    TRESTLE_DT_QUINT8 = 12,
    TRESTLE_DT_QINT32 = 13,
    TRESTLE_DT_BFLOAT16 = 14,
    TRESTLE_DT_QINT16 = 15,
    TRESTLE_DT_QUINT16 = 16,
    TRESTLE_DT_UINT16 = 17,
    TRESTLE_DT_COMPLEX128 = 18,
    TRESTLE_DT_HALF = 19,
    TRESTLE_DT_RESOURCE = 20,
    TRESTLE_DT_VARIANT = 21,
    TRESTLE_DT_UINT32 = 22,
    TRESTLE_DT_UINT64 = 23,
    TRESTLE_DT_FLOAT8_E5M2 = 24,
    TRESTLE_DT_FLOAT8_E4M3FN = 25,
    TRESTLE_DT_FLOAT8_E4M3FNUZ = 26,
    TRESTLE_DT_FLOAT8_E4M3B11FNUZ = 27,
    TRESTLE_DT_FLOAT8_E5M2FNUZ = 28,
    TRESTLE_DT_INT4 = 29,
    TRESTLE_DT_UINT4 = 30,
    TRESTLE_DT_INT2 = 31,
    TRESTLE_DT_UINT2 = 32,
    TRESTLE_DT_COUNT_ = 33 /**< one past the last known value */
} trestle_dtype;

/**
 * @brief TensorFlow's spelling of a dtype ("float", "bfloat16", "int64"...).
 * @param[in] dtype  a trestle_dtype; any int is accepted.
 * @return static storage owned by the library, never NULL: "INVALID" for 0
 *         and "unknown" for values outside trestle_dtype. Thread-safe. Since 0.1.
 */
TRESTLE_API const char *trestle_dtype_name(int dtype);

/**
 * @brief Parse a dtype name: trestle_dtype_name()'s spelling, "DT_FLOAT"
 * style, and the numpy spellings "float32"/"float16".
 * @param[in] name  NUL-terminated name; NULL gives TRESTLE_DT_INVALID.
 * @return the trestle_dtype, or TRESTLE_DT_INVALID when the name is unknown.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_dtype_from_name(const char *name);

/**
 * @brief Bytes per element on disk: 4 for float, 2 for bfloat16, 1 for int4...
 * @param[in] dtype  a trestle_dtype; any int is accepted.
 * @return the size, or 0 for variable-size (string, variant) and unknown
 *         types. Thread-safe. Since 0.1.
 */
TRESTLE_API size_t trestle_dtype_size(int dtype);

/**
 * @brief Can a restore convert `stored` to `target` on load
 * (trestle_op.target_dtype)?
 *
 * The pairs are float32 -> bfloat16, float32 -> float16 (round to nearest,
 * ties to even; overflow to float16 gives infinity; NaN stays NaN with its
 * sign), float16 -> float32 and bfloat16 -> float32 (exact). A dtype to
 * itself is no conversion and gives 0. Tools use it to decide which
 * tensors a blanket "convert to X" applies to.
 *
 * @param[in] stored  the dtype in the checkpoint; any int is accepted.
 * @param[in] target  the dtype wanted in memory; any int is accepted.
 * @return 1 when the pair converts, else 0. Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_dtype_can_convert(int stored, int target);

/* ======================================================================= */
/* Opening a checkpoint                                                     */
/* ======================================================================= */

/** An open checkpoint: immutable once open; thread-safe to read. */
typedef struct trestle_checkpoint trestle_checkpoint;

/**
 * Options for trestle_open(). Fill with trestle_open_options_init().
 * Read by the options rule (the overview's "Options").
 */
typedef struct trestle_open_options {
    size_t size;            /**< sizeof(trestle_open_options), set by init */
    int verify_index;       /**< verify index block CRCs (default 1; 0 only for forensics) */
    int require_all_shards; /**< fail at open when a shard file is missing, not a regular
                                 file, or shorter than its entries say, and open every shard
                                 now (default 0: the index still opens, shards open when
                                 needed, and reads of an unusable shard fail) */
    /* Remote checkpoints (gs://, s3://, https://, http://), since 0.2 (two of the
     * reserved slots, so the struct's size is unchanged on LP64). 0 means the default. */
    unsigned connections;   /**< HTTP transfers a restore keeps in flight at once, each a
                                 ranged GET of one staging chunk (default 0: 32; at most 1024).
                                 A restore also keeps no more reads in flight than its
                                 queue_depth and its staging buffers allow */
    unsigned attempts;      /**< tries per request, the first included, before a 5xx, 429,
                                 408, reset, timeout or short body fails the call (default 0:
                                 8) */
    unsigned backoff_ms;    /**< the first retry waits between half of this and all of it,
                                 each later one twice as long (default 0: 200 ms) */
    unsigned backoff_max_ms;/**< no retry waits longer than this (default 0: 10000 ms) */
    void *reserved[6];      /**< must be zero */
} trestle_open_options;

/**
 * @brief Fill `opt` with the defaults and set `opt->size`.
 *
 * Always call it before setting fields: a program built against an older
 * header passes a smaller `size`, and the library then uses defaults for
 * the fields it does not know about (ABI-stable growth).
 *
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_open_options_init(trestle_open_options *opt);

/**
 * @brief Open a checkpoint and validate its index against its shard files.
 *
 * `path` may be (1) a prefix `P` with `P.index` beside it, (2) the file
 * `P.index` itself, (3) a data file `P.data-NNNNN-of-MMMMM`, or (4) a
 * directory, resolved through its `checkpoint` state file (TensorFlow's
 * latest_checkpoint). Every number from the index is checked: block CRCs,
 * varints, dtype, shape rank/overflow, `size == elements x dtype size`,
 * duplicate and unordered keys, and that a partitioned tensor's stored
 * slices neither overlap nor leave a gap. The index must be a regular file
 * of at most 4 GiB. Data shards are only stat()ed here and opened when
 * their bytes are first needed (a plan or a read), so a checkpoint with a
 * missing, truncated or non-regular shard still opens and lists: reads of
 * the tensors it holds fail, naming the shard (and for a truncated shard
 * the byte range), unless `require_all_shards` refuses it here.
 *
 * `path` may also be a URL (since 0.2): `gs://BUCKET/KEY`, `s3://BUCKET/KEY`,
 * `https://HOST/PATH` or `http://HOST/PATH`, resolved as a local path is
 * (a prefix, its `.index`, a data file, a "directory" through its
 * `checkpoint` state file, a SavedModel's variables/variables, or, where
 * the store can list, s3:// and gs://, the one `*.index` under it). The
 * index is read in one GET; each shard is measured by a HEAD (all at once),
 * which pins its version (ETag, GCS generation): a shard replaced later
 * fails the reads of it rather than mixing versions. Credentials follow
 * each ecosystem's conventions (README, "Remote checkpoints"); no message,
 * name or path the checkpoint returns ever holds a secret: the query of a
 * presigned URL shows as `?<redacted>`, user:password is left out. Faults
 * are retried as `opt` says (connections, attempts, backoff).
 *
 * @param[in]  path  checkpoint location or URL; not NULL; copied.
 * @param[in]  opt   options, or NULL for defaults.
 * @param[out] out   receives the checkpoint, or NULL on failure. Free it
 *                   with trestle_close().
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_NOT_FOUND (no such checkpoint),
 *         TRESTLE_E_CORRUPT (malformed index: the message names the file and
 *         byte offset), TRESTLE_E_BAD_VERSION, TRESTLE_E_UNSUPPORTED
 *         (e.g. a big-endian bundle), TRESTLE_E_LIMIT (an index over 4 GiB,
 *         a `checkpoint` state file over 16 MiB),
 *         TRESTLE_E_IO (e.g. the index or the state file is a FIFO or
 *         unreadable: sys_errno tells; a URL's store failed: the message
 *         names the URL, the HTTP status and the attempts made),
 *         TRESTLE_E_NOMEM, TRESTLE_E_INVALID_ARG (NULL `out`, `opt` refused
 *         by the options rule, a URL that does not parse).
 * Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_open(const char *path, const trestle_open_options *opt,
                             trestle_checkpoint **out, trestle_error *err);

/**
 * @brief The latest checkpoint of a directory, as tf.train.latest_checkpoint
 * finds it: the prefix its `checkpoint` state file names.
 *
 * The state file is a text-format CheckpointState; this is the parser
 * trestle_open() uses for a directory (and Python's
 * trestle.latest_checkpoint()), so every way in gives one answer: C
 * escapes in strings, octal ones included (TensorFlow writes a non-ASCII
 * path as `m\303\266del`), the last of repeated `model_checkpoint_path`
 * lines, `#` comments, unknown fields skipped. A relative path is joined
 * to `dir` as os.path.join does. The file is read only if it is a regular
 * file of at most 16 MiB: a FIFO, device or directory is refused without
 * blocking, naming what it is.
 *
 * @param[in]  dir         the directory; not NULL. Not opened itself.
 * @param[in]  state_name  the state file's name inside `dir`, or NULL for
 *                         "checkpoint" (TensorFlow's `latest_filename`).
 * @param[out] out         receives the prefix (malloc'd: free it with
 *                         free()), or NULL: on failure, and with TRESTLE_OK
 *                         when `dir` has no state file (or is not a
 *                         directory), where TensorFlow returns None. Not
 *                         NULL.
 * @param[out] err         filled on failure, naming the state file; may be
 *                         NULL.
 * @return TRESTLE_OK; TRESTLE_E_NOT_FOUND when the named checkpoint has no
 *         index (`Couldn't match files for checkpoint P (named by F)`, as
 *         TensorFlow logs it); TRESTLE_E_CORRUPT for a file that does not
 *         parse (the message and `offset` give the byte) or whose
 *         model_checkpoint_path is empty (`Invalid checkpoint state loaded
 *         from DIR`, TensorFlow's ValueError); TRESTLE_E_IO for one that
 *         cannot be read or is not a regular file (`sys_errno` tells);
 *         TRESTLE_E_LIMIT over 16 MiB; TRESTLE_E_NOMEM;
 *         TRESTLE_E_INVALID_ARG (NULL `dir` or `out`).
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_latest_checkpoint(const char *dir, const char *state_name, char **out,
                                          trestle_error *err);

/**
 * @brief Whether `path` is a URL trestle_open() fetches from a store
 * rather than a local path: it starts with gs://, s3://, https:// or
 * http://.
 *
 * `dir` of trestle_latest_checkpoint() may be such a URL too: the state
 * file is then fetched, and the checkpoint it names is checked with a HEAD
 * of its index; the prefix returned is a URL, with the query of `dir` (a
 * presigned or token-carrying URL) appended so that it opens as it is.
 *
 * @param[in] path  any string, or NULL (then 0).
 * @return 1 or 0. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_is_url(const char *path);

/**
 * @brief `path` as a message may show it: a URL without its secrets (its
 * query, e.g. a presigned URL's signature, becomes `?<redacted>`, and
 * user:password@ is left out); any other path as it is. The form the
 * library's own messages and names use for a URL.
 *
 * @param[in]  path  any string; not NULL.
 * @param[out] buf   receives the text, NUL-terminated and cut to fit; not
 *                   NULL.
 * @param[in]  cap   bytes at `buf` (at least 1).
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_url_redact(const char *path, char *buf, size_t cap);

/**
 * @brief Fetch one object of a store whole: what a program needs to read a
 * file beside a remote checkpoint (a graph, a `.meta`) as trestle_open()
 * reads the index, with the same credentials, retries and redaction.
 *
 * @param[in]  url        a gs://, s3://, https:// or http:// URL; not NULL.
 * @param[in]  max_bytes  refuse a larger object (TRESTLE_E_LIMIT); 0: no
 *                        limit.
 * @param[out] data       receives the bytes (malloc'd, with a NUL after
 *                        them: free it with free()), or NULL on failure.
 *                        Not NULL.
 * @param[out] len        receives their count. Not NULL.
 * @param[out] err        filled on failure, naming the URL redacted; may be
 *                        NULL.
 * @return TRESTLE_OK; TRESTLE_E_NOT_FOUND (HTTP 404); TRESTLE_E_IO (another
 *         failure, after the retries a 5xx or reset earns: the message
 *         names the HTTP status and the attempts); TRESTLE_E_LIMIT;
 *         TRESTLE_E_NOMEM; TRESTLE_E_INVALID_ARG (not a URL, NULL `data`
 *         or `len`). Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_url_read(const char *url, uint64_t max_bytes, void **data, size_t *len,
                                 trestle_error *err);

/**
 * @brief Close a checkpoint: its shard files and every string it returned.
 *
 * Pointers obtained from the checkpoint (names, dims, paths) become invalid.
 *
 * @param[in] c  the checkpoint, or NULL (then nothing happens).
 * The caller must have freed every plan made from it and must ensure no
 * other thread still uses it. Since 0.1.
 */
TRESTLE_API void trestle_close(trestle_checkpoint *c);

/** Facts about the checkpoint as a whole (pointers owned by the checkpoint). */
typedef struct trestle_checkpoint_info {
    const char *prefix;     /**< resolved prefix P */
    const char *index_path; /**< P.index */
    int num_shards;         /**< from the header */
    int big_endian;         /**< header endianness (only 0 is restorable) */
    int producer;           /**< header version.producer */
    int min_consumer;       /**< header version.min_consumer */
    size_t num_tensors;     /**< listed tensors (slice-part keys hidden) */
    size_t num_entries;     /**< every index entry except the header */
    uint64_t data_bytes;    /**< sum of the listed tensors' stored sizes */
    int object_based;       /**< 1 when _CHECKPOINTABLE_OBJECT_GRAPH is present */
    int index_snappy_blocks;/**< number of snappy-compressed index blocks */
} trestle_checkpoint_info;

/**
 * @brief Describe the checkpoint as a whole.
 * @param[in]  c    an open checkpoint; not NULL.
 * @param[out] out  caller-owned; not NULL. Its strings are owned by `c` and
 *                  valid until trestle_close(c).
 * Never fails. Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_checkpoint_get_info(const trestle_checkpoint *c,
                                             trestle_checkpoint_info *out);

/**
 * @brief Which version of a checkpoint this is: the size and CRC-32C of
 * its `.index` file, as trestle_open() read it.
 *
 * The index holds every tensor's shape, offset and CRC32C, so two copies of
 * one checkpoint whose tensors differ in any byte have different indexes,
 * even when names, shapes and layout agree (unless their CRC-32Cs collide,
 * a 1 in 2^32 chance). Processes that each restore "the same" checkpoint
 * from a copy of their own (node-local disks) compare these to be sure they
 * read one version: trestle_group_restore() does so across MPI ranks.
 *
 * @param[in]  c             an open checkpoint.
 * @param[out] index_bytes   the index's size in bytes; not NULL.
 * @param[out] index_crc32c  the CRC-32C (Castagnoli, unmasked: the plain
 *                           checksum, as `crc32c` tools print it) of all of
 *                           its bytes; not NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for a NULL argument (then
 *         nothing is written). Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_checkpoint_identity(const trestle_checkpoint *c, uint64_t *index_bytes,
                                            uint32_t *index_crc32c);

/**
 * @brief Path of data shard `shard`, e.g. "P.data-00003-of-00008".
 * @param[in] c      an open checkpoint; NULL gives NULL.
 * @param[in] shard  0 <= shard < trestle_checkpoint_info.num_shards.
 * @return a string owned by the checkpoint (valid until trestle_close()), or
 *         NULL when `c` is NULL or `shard` is out of range. Thread-safe. Since 0.1.
 */
TRESTLE_API const char *trestle_shard_path(const trestle_checkpoint *c, int shard);

/**
 * @brief The version of data shard `shard` that trestle_open() found, and
 * that every later read of it is held to: its size and, for an object in a
 * store (a URL checkpoint), its validators as the store gave them: the
 * GCS generation and the ETag (`generation 1712345678901234, ETag "abc"`),
 * or Last-Modified where there is no ETag. A local file's version is its
 * size and mtime, which stat() gives: `validator` is then "".
 *
 * With trestle_checkpoint_identity() this tells two versions of one
 * checkpoint apart without reading the data: an object replaced in its
 * store has another validator, even with the same size and index.
 *
 * @param[in]  c          an open checkpoint; not NULL.
 * @param[in]  shard      0 <= shard < trestle_checkpoint_info.num_shards.
 * @param[out] bytes      receives the shard's size.
 * @param[out] validator  receives the validators, NUL-terminated ("" for a file).
 * @param[in]  cap        bytes at `validator` (400 is always enough).
 * @return TRESTLE_OK; TRESTLE_E_NOT_FOUND when the object could not be had
 *         at open (its reads fail, naming why); TRESTLE_E_LIMIT when `cap`
 *         is too small (the text is cut); TRESTLE_E_INVALID_ARG for a NULL
 *         argument, `cap` 0 or a shard out of range.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_shard_version(const trestle_checkpoint *c, int shard, uint64_t *bytes,
                                      char *validator, size_t cap);

/** How a listed tensor is stored. */
typedef enum trestle_tensor_kind {
    TRESTLE_TENSOR_PLAIN = 0,       /**< one contiguous run of bytes in one shard */
    TRESTLE_TENSOR_PARTITIONED = 1, /**< stored as several slices (TF1 partitioned variable) */
    TRESTLE_TENSOR_OBJECT_GRAPH = 2 /**< the TF2 _CHECKPOINTABLE_OBJECT_GRAPH string */
} trestle_tensor_kind;

/** One listed tensor. Pointers are owned by the checkpoint. */
typedef struct trestle_tensor_info {
    const char *name;       /**< the key, NUL-terminated */
    int dtype;              /**< trestle_dtype */
    int kind;               /**< trestle_tensor_kind */
    int rank;               /**< number of dimensions (0 = scalar) */
    const int64_t *dims;    /**< `rank` sizes, outermost first */
    int64_t num_elements;   /**< product of dims (1 for a scalar) */
    int shard;              /**< shard id (-1 for partitioned) */
    uint64_t offset;        /**< byte offset in the shard (0 for partitioned) */
    uint64_t size;          /**< stored bytes (sum of the slices' for partitioned) */
    uint32_t crc32c_masked; /**< stored masked CRC32C (0 for partitioned) */
    int num_slices;         /**< stored slices of a partitioned tensor, else 0 */
} trestle_tensor_info;

/**
 * @brief Number of listed tensors.
 *
 * Slice-part keys of partitioned tensors are hidden, as TensorFlow's
 * list_variables does; the object graph is listed.
 *
 * @param[in] c  an open checkpoint; NULL gives 0.
 * @return the count. Thread-safe. Since 0.1.
 */
TRESTLE_API size_t trestle_tensor_count(const trestle_checkpoint *c);

/**
 * @brief Describe listed tensor `i`, in key order.
 * @param[in]  c    an open checkpoint.
 * @param[in]  i    0 <= i < trestle_tensor_count(c).
 * @param[out] out  caller-owned; its `name` and `dims` are owned by `c` and
 *                  valid until trestle_close(c).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG when `c` or `out` is NULL or
 *         `i` is out of range (`out` is then untouched). Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_tensor_get_info(const trestle_checkpoint *c, size_t i,
                                        trestle_tensor_info *out);

/**
 * @brief Find a listed tensor by exact key (binary search).
 * @param[in]  c      an open checkpoint; not NULL.
 * @param[in]  name   the key, NUL-terminated; not NULL.
 * @param[out] index  receives its position for trestle_tensor_get_info().
 * @param[out] err    filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_KEY_NOT_FOUND (err names the key), or
 *         TRESTLE_E_INVALID_ARG for a NULL argument. Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_tensor_find(const trestle_checkpoint *c, const char *name,
                                    size_t *index, trestle_error *err);

/**
 * @brief Read the stored bytes of one tensor (assembled in row-major order
 * when partitioned) into `buf`, synchronously with pread. For inspection,
 * tools and tests; restores of many tensors should use a plan.
 *
 * @param[in]  c, i    the tensor (as for trestle_tensor_get_info).
 * @param[out] buf     at least `info.size` bytes (`num_elements x dtype size`
 *                     when partitioned); caller-owned.
 * @param[in]  cap     capacity of `buf`.
 * @param[in]  verify  1 to check CRC32C (and the string length checksum).
 * @param[out] err     filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_CRC_MISMATCH (names tensor, file, offset),
 *         TRESTLE_E_IO, TRESTLE_E_SHORT_READ, TRESTLE_E_NOT_FOUND (missing
 *         shard), TRESTLE_E_INVALID_ARG (cap too small). Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_tensor_read(const trestle_checkpoint *c, size_t i, void *buf,
                                    size_t cap, int verify, trestle_error *err);

/** A byte string: one element of a DT_STRING tensor. Not NUL-terminated. */
typedef struct trestle_bytes {
    const uint8_t *data; /**< points into the caller's buffer */
    uint64_t len;        /**< length in bytes */
} trestle_bytes;

/**
 * @brief Decode a DT_STRING tensor's stored bytes (varint lengths, masked
 * length checksum, element bytes) into `n` elements pointing into `buf`.
 * @param[in]  buf, size  the stored bytes, e.g. from trestle_tensor_read().
 * @param[in]  n          number of elements (the tensor's num_elements).
 * @param[out] elems      array of `n` caller-owned slots.
 * @param[out] err        filled on failure; may be NULL.
 * @return TRESTLE_OK or TRESTLE_E_CORRUPT (lengths overrun, checksum
 *         mismatch, trailing bytes). Thread-safe. Since 0.1.
 */
TRESTLE_API int trestle_strings_decode(const void *buf, uint64_t size, uint64_t n,
                                       trestle_bytes *elems, trestle_error *err);

/* ======================================================================= */
/* Writing checkpoints                                                      */
/* ======================================================================= */

/** A bundle writer: TensorFlow-identical bytes, any number of shards. */
typedef struct trestle_writer trestle_writer;

/**
 * Options for trestle_writer_create(). Fill with trestle_writer_options_init().
 * Read by the options rule (the overview's "Options").
 */
typedef struct trestle_writer_options {
    size_t size;           /**< sizeof(trestle_writer_options), set by init */
    int num_shards;        /**< data files to write (default 1) */
    uint32_t alignment;    /**< pad each tensor to this many bytes (default 1 = TF's SaveV2) */
    int snappy_index;      /**< snappy-compress index blocks like TF <= 1.1 (default 0) */
    void *reserved[8];     /**< must be zero */
} trestle_writer_options;

/**
 * @brief Fill `opt` with the defaults (one shard, no alignment, plain index
 * blocks) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_writer_options_init(trestle_writer_options *opt);

/**
 * @brief Start writing a checkpoint at `prefix`: the data files are created
 * now, the index at trestle_writer_finish().
 *
 * @param[in]  prefix  checkpoint prefix P (P.index, P.data-*); not NULL; copied.
 *                     Existing files of the same names are replaced.
 * @param[in]  opt     options, or NULL for defaults.
 * @param[out] out     the writer, or NULL on failure; free with trestle_writer_free().
 * @param[out] err     filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_IO (err has the path and errno),
 *         TRESTLE_E_INVALID_ARG (`opt` refused by the options rule, or
 *         num_shards outside 1..99999), TRESTLE_E_NOMEM.
 * A writer is used by one thread at a time; distinct writers are
 * independent. Since 0.1.
 */
TRESTLE_API int trestle_writer_create(const char *prefix, const trestle_writer_options *opt,
                                      trestle_writer **out, trestle_error *err);

/**
 * @brief Append a whole fixed-size tensor (not DT_STRING) to data shard `shard`.
 *
 * Keys may come in any order; data is laid out in call order per shard, as
 * TensorFlow does. The bytes are copied (and their CRC32C computed) before
 * the call returns, so `data` may be reused at once. Like TensorFlow's
 * BundleWriter, the writer gathers small tensors in a buffer of up to 8 MiB
 * per shard (at least 256 KiB, 64 MiB among all shards) and writes it out
 * when full and at trestle_writer_finish(): a failed write (a full disk) is
 * then reported by a later add or by finish, naming the shard file and the
 * offset where it failed. Adding N tensors takes time linear in N.
 *
 * @param[in]     w      the writer; not NULL.
 * @param[in]     name   the key; not NULL; copied.
 * @param[in]     dtype  a fixed-size trestle_dtype.
 * @param[in]     rank, dims  the shape (`dims` may be NULL when rank is 0); copied.
 * @param[in]     data   `size` bytes, row-major; caller-owned.
 * @param[in]     size   must equal elements x trestle_dtype_size(dtype).
 * @param[in]     shard  0 <= shard < num_shards.
 * @param[out]    err    filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (duplicate key, bad shard, size
 *         mismatch, string dtype), TRESTLE_E_IO, TRESTLE_E_NOMEM.
 * One thread at a time per writer. Since 0.1.
 */
TRESTLE_API int trestle_writer_add(trestle_writer *w, const char *name, int dtype, int rank,
                                   const int64_t *dims, const void *data, uint64_t size,
                                   int shard, trestle_error *err);

/**
 * @brief Append a DT_STRING tensor of `num_elements(dims)` elements.
 * @param[in]  w, name, rank, dims, shard, err  as for trestle_writer_add().
 * @param[in]  elems  one trestle_bytes per element, row-major; the bytes are
 *                    written before the call returns (caller keeps ownership).
 * @return as trestle_writer_add(). One thread at a time per writer. Since 0.1.
 */
TRESTLE_API int trestle_writer_add_strings(trestle_writer *w, const char *name, int rank,
                                           const int64_t *dims, const trestle_bytes *elems,
                                           int shard, trestle_error *err);

/**
 * @brief Append a DT_VARIANT tensor of `num_elements(dims)` elements, each
 * an opaque serialized VariantTensorDataProto, with TF's per-element
 * checksums (tf-checkpoint-format.md §4.5). For tests and tools: trestle
 * verifies such tensors but cannot restore them.
 * @param[in]  w, name, rank, dims, shard, err  as for trestle_writer_add().
 * @param[in]  elems  one trestle_bytes per element, row-major (caller keeps
 *                    ownership).
 * @return as trestle_writer_add(). One thread at a time per writer. Since 0.2.
 */
TRESTLE_API int trestle_writer_add_variants(trestle_writer *w, const char *name, int rank,
                                            const int64_t *dims, const trestle_bytes *elems,
                                            int shard, trestle_error *err);

/**
 * @brief Append one slice of a partitioned tensor, as SaveV2 with a non-empty
 * `shape_and_slices` does.
 *
 * @param[in] spec  "d0 d1 ... start,len:-:..." naming the full shape and
 *                  this slice; not NULL.
 * @param[in] data  the slice's elements, row-major; `size` bytes.
 * @param[in] size  bytes at `data`: the slice's elements times the dtype's
 *                  size.
 * @param[in] w, name, dtype, shard, err  as for trestle_writer_add().
 * @return as trestle_writer_add(), plus TRESTLE_E_BAD_SPEC.
 * One thread at a time per writer. Since 0.1.
 */
TRESTLE_API int trestle_writer_add_slice(trestle_writer *w, const char *name, int dtype,
                                         const char *spec, const void *data, uint64_t size,
                                         int shard, trestle_error *err);

/**
 * @brief Write the index (P.index) and close the data files. Call once.
 * @param[in]  w    the writer; not NULL. Still to be freed with trestle_writer_free().
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_IO, TRESTLE_E_NOMEM, TRESTLE_E_INVALID_ARG
 *         (called twice). One thread at a time per writer. Since 0.1.
 */
TRESTLE_API int trestle_writer_finish(trestle_writer *w, trestle_error *err);

/**
 * @brief Free a writer, finished or not (an unfinished one leaves data files
 * but no index, so no readable checkpoint).
 * @param[in] w  the writer, or NULL (then nothing happens).
 * Since 0.1.
 */
TRESTLE_API void trestle_writer_free(trestle_writer *w);

/* ======================================================================= */
/* Planning a restore                                                       */
/* ======================================================================= */

/** A resolved restore: ops, extents and batches. Independent of other plans. */
typedef struct trestle_plan trestle_plan;

/**
 * The highest rank a slice in `shape_and_slices` (and a shard rule's DIM)
 * may have. Whole tensors have no such limit (TensorFlow's own slice copy
 * stops at rank 8).
 */
#define TRESTLE_MAX_SLICE_RANK 32

/** Where a restored tensor goes. */
typedef enum trestle_dest_kind {
    TRESTLE_DEST_ALLOCATE = 0, /**< engine-owned memory, host or device per restore options */
    TRESTLE_DEST_HOST = 1,     /**< caller-owned host buffer `ptr` of `capacity` bytes */
    TRESTLE_DEST_DEVICE = 2,   /**< caller-owned device pointer (CUDA builds) */
    TRESTLE_DEST_DISCARD = 3   /**< read and verify only (verify, bench) */
} trestle_dest_kind;

/**
 * One restore op, as one element of TensorFlow's RestoreV2 inputs, plus
 * where its bytes go and, optionally, the dtype they are converted to on
 * the way (e.g. float32 weights restored as bfloat16). A converting op's
 * `capacity`, trestle_plan_op_info.bytes and the restored bytes are in the
 * target dtype; its CRC32C is still checked on the stored bytes. Zero the
 * whole struct (or use designated initializers) so that fields added at
 * its end stay 0.
 */
typedef struct trestle_op {
    const char *name;       /**< the graph's name; renames map it to a checkpoint key */
    const char *shape_and_slices; /**< "" or NULL for the whole tensor, else "d0 d1 ... slice" */
    int dtype;              /**< expected dtype, or TRESTLE_DT_INVALID to accept the stored one */
    int dest_kind;          /**< trestle_dest_kind */
    void *ptr;              /**< destination for HOST/DEVICE */
    uint64_t capacity;      /**< bytes available at `ptr` */
    int target_dtype;       /**< convert to this dtype on load, or TRESTLE_DT_INVALID (0) to
                                 keep the stored one. Pairs: trestle_dtype_can_convert(); rounding
                                 to nearest even, NaN stays NaN (and infinities stay infinite);
                                 `dtype` is still checked against the stored dtype; since 0.1 */
} trestle_op;

/**
 * A tensor shape known from outside the checkpoint, such as the shape a
 * graph declares for the variable an op restores. Since 0.2.
 */
typedef struct trestle_shape {
    int rank;               /**< the rank, or -1 when unknown (then `dims` is ignored) */
    const int64_t *dims;    /**< `rank` sizes; may be NULL when rank is 0 or -1 */
} trestle_shape;

/**
 * Options for trestle_plan_create(). Fill with trestle_plan_options_init().
 * Read by the options rule (the overview's "Options").
 */
typedef struct trestle_plan_options {
    size_t size;                 /**< sizeof(trestle_plan_options), set by init */
    const char *const *renames;  /**< `num_renames` rules "graph=ckpt" (exact) or
                                      "prefix/=ckpt_prefix/" (prefix rules end in '/') */
    size_t num_renames;          /**< entries of `renames` */
    int tf1_rnn_renames;         /**< also try TF 1.x RNN renames (weights->kernel...) */
    const char *const *excludes; /**< glob patterns (fnmatch) of names to skip */
    size_t num_excludes;         /**< entries of `excludes` */
    int allow_missing;           /**< skip missing keys (TF's expect_partial) */
    uint64_t max_batch_bytes;    /**< coalesce reads up to this (default 16 MiB) */
    uint64_t max_gap_bytes;      /**< read through holes up to this (default 64 KiB) */
    int skip_unsupported;        /**< skip (skipped = TRESTLE_SKIP_UNSUPPORTED) tensors whose
                                      dtype trestle cannot restore (DT_VARIANT) instead of
                                      failing; since 0.2 */
    /* Tensor-parallel shard rules, since 0.2 (they took three of the
     * reserved slots, so the struct's size is unchanged on LP64). */
    const char *const *shard_rules; /**< `num_shard_rules` rules "GLOB:DIM": an op whose
                                      name (as given, before renames) matches GLOB (fnmatch,
                                      no flags, as excludes) restores only part
                                      `shard_rank` of `shard_world` of dimension DIM, as the
                                      slice spec TensorFlow's partitioner would give it: a
                                      dim of n splits into parts of n / W elements, the first
                                      n % W parts one more. The first matching rule wins;
                                      unmatched ops are restored as asked. An op with its own
                                      shape_and_slices is split within its slice. */
    size_t num_shard_rules;      /**< entries of `shard_rules` */
    int shard_rank;              /**< the part this plan restores, 0 <= shard_rank < shard_world */
    int shard_world;             /**< parts each matched dim splits into (default 1; 0 reads as 1) */
    int partial_reads;           /**< with shard rules: 1 reads only the part's bytes of a plain
                                      (unsliced) stored tensor that a rule splits, instead of the
                                      whole tensor. Its CRC32C covers the whole tensor, so this
                                      plan alone cannot check it: the restore computes a CRC share
                                      of the part (trestle_plan_get_crc_share()) that the parts'
                                      shares must combine to (trestle_crc_shares_check(), or
                                      trestle_group_check_shares() across MPI ranks). Applies to
                                      an op restored whole before its rule split it, whose stored
                                      tensor no other op of the plan reads; others read whole, as
                                      with 0. Partitioned variables' stored slices are read per
                                      slice and fully checked either way. Default 0; since 0.2
                                      (it took one reserved slot) */
    const trestle_shape *op_shapes; /**< NULL (default), or one shape per op of
                                      trestle_plan_create(), parallel to `ops`: the
                                      declared shape of the variable a whole-tensor op
                                      restores (rank -1: unknown), which an op itself
                                      cannot carry; for an op with a slice spec, the
                                      slice's shape (a partition variable's).
                                      trestle_graph_op_shapes() gives a graph's. A found
                                      key must restore exactly that shape, as
                                      TensorFlow's Assign into the variable requires:
                                      every op whose stored shape (or slice) differs
                                      fails the plan at once with
                                      TRESTLE_E_SHAPE_MISMATCH, one line each naming the
                                      key and both shapes (0.2.0 took it as evidence
                                      only). A missing key's "did you mean"
                                      offers only keys of that shape (as it does for a
                                      sliced op's full shape), and
                                      trestle_infer_renames() maps only to them. Read
                                      during the call only; ignored with NULL ops.
                                      Since 0.2 (took a reserved slot) */
    void *reserved[2];           /**< must be zero */
} trestle_plan_options;

/** Why a plan op was skipped (trestle_plan_op_info.skipped). */
#define TRESTLE_SKIP_EXCLUDED 1    /**< its name matched an exclusion glob */
#define TRESTLE_SKIP_MISSING 2     /**< absent from the checkpoint, with allow_missing */
#define TRESTLE_SKIP_UNSUPPORTED 3 /**< a dtype trestle cannot restore (DT_VARIANT: opaque
                                        serialized objects), with skip_unsupported; since 0.2 */

/**
 * @brief Fill `opt` with the defaults (no renames, exclusions or shard rules,
 * missing keys are errors, 16 MiB batches, 64 KiB gaps) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_plan_options_init(trestle_plan_options *opt);

/**
 * @brief Resolve an op list against a checkpoint.
 *
 * Applies renames and exclusions, checks each op's dtype and shape against
 * the stored entry, parses `shape_and_slices`, finds the stored slices that
 * cover each request, and sorts and coalesces the reads per shard.
 * A missing key does not stop the check: the error lists every missing key
 * with the closest existing names, one line each, e.g.
 * `Key lstm_cell/biases not found in checkpoint (did you mean lstm_cell/bias?)`.
 * Likewise every op whose target_dtype the engine cannot convert its
 * stored dtype to is listed at once, one line each, e.g.
 * `tensor 'x': cannot convert int32 to bfloat16 on load (supported:
 * float32 -> bfloat16, float32 -> float16, float16 -> float32,
 * bfloat16 -> float32)` (on one line).
 *
 * Shard rules (trestle_plan_options.shard_rules) turn each matching op into
 * the slice spec of its part before anything else about its slice is
 * planned, so a restore only ever sees ops. The restored shape is the
 * part's (trestle_plan_op_info.dims). Because TensorFlow's CRC32C covers a
 * whole stored tensor, a part of a plain tensor is read and checked whole
 * by default; with `opt->partial_reads` only the part's byte runs are read
 * (one run per row of the dims before DIM, coalesced within max_gap_bytes)
 * and its check is deferred to the combination of every part's CRC share
 * (trestle_plan_get_crc_share()). A partitioned variable reads only the
 * stored slices the part meets, each checked in full.
 *
 * @param[in]  c    the checkpoint; must outlive the plan.
 * @param[in]  ops  `n` ops, or NULL with n == 0 for "every tensor, whole".
 *                  A DT_VARIANT tensor (e.g. a tf.data iterator state), which
 *                  trestle cannot restore, fails the plan with
 *                  TRESTLE_E_UNSUPPORTED naming every such tensor, unless it
 *                  is excluded or `opt->skip_unsupported` is set (then it is
 *                  skipped, as TRESTLE_SKIP_UNSUPPORTED). Since 0.2; 0.1
 *                  skipped them silently in every-tensor mode.
 *                  Copied; the caller's destination buffers must stay valid
 *                  until the restore ends.
 * @param[in]  n    number of ops.
 * @param[in]  opt  options, or NULL for the defaults; read during the call
 *                  only.
 * @param[out] out  the plan, or NULL on failure; free with trestle_plan_free().
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_KEY_NOT_FOUND, TRESTLE_E_DTYPE_MISMATCH
 *         (an op's `dtype` differs from the stored one, or its target_dtype
 *         is not a supported conversion), TRESTLE_E_SHAPE_MISMATCH (a slice
 *         spec's full shape is not the stored one; or, with `opt->op_shapes`,
 *         a restored shape is not the declared one: `tensor_name = KEY; shape
 *         in checkpoint [5,5,3,6] does not match the declared shape [5,5,1,6]
 *         of its variable (Assign requires shapes of both tensors to match)`,
 *         one line per op), TRESTLE_E_BAD_SPEC,
 *         TRESTLE_E_INSUFFICIENT_SLICES, TRESTLE_E_INVALID_ARG (capacity too
 *         small; a shard rule that is not GLOB:DIM or has an unclosed '[';
 *         shard_rank outside [0, shard_world)), TRESTLE_E_BAD_SPEC (a rule
 *         names a dimension the matched tensor lacks, or matches a scalar:
 *         the message names the tensor and the rule), TRESTLE_E_UNSUPPORTED
 *         (a DT_VARIANT tensor, see `ops`), TRESTLE_E_IO (a data shard the
 *         plan reads is a directory, FIFO or device), TRESTLE_E_NOMEM.
 *         Thread-safe for distinct plans. Since 0.1.
 */
TRESTLE_API int trestle_plan_create(const trestle_checkpoint *c, const trestle_op *ops,
                                    size_t n, const trestle_plan_options *opt,
                                    trestle_plan **out, trestle_error *err);

/**
 * @brief Free a plan and the engine-allocated (TRESTLE_DEST_ALLOCATE)
 * destinations it owns, host or device, and what its restores kept for
 * the next one: the staging memory (pinned once for device restores,
 * reused by every later restore of the plan) and, per device, the copy
 * streams, events and device windows (freed in stream order: no
 * device-wide synchronisation).
 *
 * Pointers obtained from the plan (op names, dims, `data` of engine memory)
 * become invalid; caller-owned destinations are untouched.
 *
 * @param[in] p  the plan, or NULL (then nothing happens). No restore of `p`
 *               may be running. Since 0.1.
 */
TRESTLE_API void trestle_plan_free(trestle_plan *p);

/** One resolved op of a plan (pointers owned by the plan). */
typedef struct trestle_plan_op_info {
    const char *name;        /**< the op's name as given */
    const char *key;         /**< the checkpoint key it resolved to, or NULL if skipped */
    int skipped;             /**< 0, or why it was skipped: TRESTLE_SKIP_EXCLUDED,
                                  TRESTLE_SKIP_MISSING or TRESTLE_SKIP_UNSUPPORTED */
    int dtype;               /**< stored dtype */
    int rank;                /**< rank of the restored (possibly sliced) tensor */
    const int64_t *dims;     /**< its shape */
    uint64_t bytes;          /**< bytes written to the destination */
    void *data;              /**< destination after restore (engine or caller memory) */
    int out_dtype;           /**< dtype of the restored bytes: the op's target_dtype, or the
                                  stored dtype when it converts nothing; since 0.1 */
    int device;              /**< CUDA device whose memory `data` is, or -1 for host memory
                                  (and before the first restore); since 0.1 */
} trestle_plan_op_info;

/**
 * @brief Number of ops in the plan, skipped ones included (for NULL ops:
 * one per restorable listed tensor).
 * @param[in] p  the plan; NULL gives 0.
 * @return the count. Thread-safe. Since 0.1.
 */
TRESTLE_API size_t trestle_plan_op_count(const trestle_plan *p);

/**
 * @brief Describe op `i`: its key, shape, bytes and, after a successful
 * restore, where its data is.
 * @param[in]  p    the plan.
 * @param[in]  i    0 <= i < trestle_plan_op_count(p).
 * @param[out] out  caller-owned; its pointers are owned by the plan and valid
 *                  until trestle_plan_free(p) (`data` may point to caller
 *                  memory for HOST/DEVICE destinations).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i` out
 *         of range. Not to be called while `p` is being restored, except from
 *         its ready callback. Since 0.1.
 */
TRESTLE_API int trestle_plan_get_op(const trestle_plan *p, size_t i, trestle_plan_op_info *out);

/**
 * @brief Copy op `i`'s bytes from its destination into host memory,
 * wherever the destination is.
 *
 * For checks, checksums and debugging in programs that have no CUDA code of
 * their own (tools/example_restore.c): host destinations are copied with
 * memcpy; device ones (trestle_plan_op_info.device >= 0) with a synchronous
 * cudaMemcpy on that device, which also waits for work queued on the
 * device's legacy default stream. The calling thread's current CUDA device
 * is left as it was.
 *
 * @param[in]  p    the plan, restored (the bytes are what its destinations
 *                  hold now).
 * @param[in]  i    0 <= i < trestle_plan_op_count(p).
 * @param[out] dst  host memory of at least `cap` bytes.
 * @param[in]  cap  at least the op's `bytes`.
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL arguments, `i` out of
 *         range, a skipped op, an engine-allocated op not restored yet,
 *         `cap` too small), or TRESTLE_E_CUDA / TRESTLE_E_NO_DEVICE when the
 *         copy from the device fails. Same threading rule as
 *         trestle_plan_get_op(). Since 0.1.
 */
TRESTLE_API int trestle_plan_read_op(const trestle_plan *p, size_t i, void *dst, uint64_t cap,
                                     trestle_error *err);

/**
 * @brief Point op `i` at other caller-owned memory without planning again.
 *
 * A plan's reads, CRC checks and coalescing do not depend on where its
 * tensors land, so a caller that learns where they go only from the plan
 * (sizing one buffer from every op's bytes, say, as trestle's safetensors
 * conversion does with its file) or restores one plan into a new buffer
 * each time (double buffering) plans once: create the plan with any
 * dest_kind (TRESTLE_DEST_ALLOCATE is fine), then set each op's
 * destination. At 100,000 tensors this spares the ~10 ms a second plan
 * takes. The next restore lands the op's bytes at `ptr`; engine memory a
 * previous restore gave the op stays in that restore's arena.
 *
 * @param[in,out] p   the plan.
 * @param[in]  i      0 <= i < trestle_plan_op_count(p); not a skipped op.
 * @param[in]  dest_kind  TRESTLE_DEST_HOST or TRESTLE_DEST_DEVICE (on the
 *                    device the next restore's options name).
 * @param[in]  ptr    the destination; NULL only for an op of 0 bytes.
 * @param[in]  capacity  bytes at `ptr`: at least the op's `bytes`
 *                    (trestle_plan_get_op), in its target dtype.
 * @param[out] err    filled on failure; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG (NULL plan, `i` out of
 *         range, another dest_kind, a skipped op, a NULL `ptr` or a
 *         `capacity` below the op's bytes: the message planning gives), the
 *         op unchanged. Not while `p` is being restored, and not from its
 *         ready callback. Since 0.2.
 */
TRESTLE_API int trestle_plan_set_dest(trestle_plan *p, size_t i, int dest_kind, void *ptr,
                                      uint64_t capacity, trestle_error *err);

/** Totals of a plan. */
typedef struct trestle_plan_stats {
    size_t ops;              /**< ops in the plan, skipped ones included */
    size_t skipped;          /**< excluded, allowed-missing or unsupported-and-skipped */
    uint64_t output_bytes;   /**< bytes that land in destinations */
    uint64_t read_bytes;     /**< bytes read from shards (>= output for slices) */
    size_t extents;          /**< distinct stored runs read */
    size_t batches;          /**< coalesced reads issued */
} trestle_plan_stats;

/**
 * @brief Totals of the plan: ops, bytes to read and to write, batches.
 * @param[in]  p    the plan; NULL gives all zeros.
 * @param[out] out  caller-owned; NULL is ignored.
 * Never fails. Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_plan_get_stats(const trestle_plan *p, trestle_plan_stats *out);

/* ======================================================================= */
/* Restoring                                                                */
/* ======================================================================= */

/**
 * @brief Per-op ready callback (trestle_restore_options.on_ready).
 *
 * Called once per op when its bytes are in place and verified, from a
 * pipeline thread, possibly from several threads at once and in any order,
 * so it must be quick and thread-safe. While it runs, that worker does not
 * copy, so a slow callback slows the restore. It may make CUDA calls, on
 * any device: the worker's own device is made current again after it.
 *
 * @param[in] user  trestle_restore_options.user, as given.
 * @param[in] i     the op's index in the plan.
 * @param[in] op    the op; the struct is valid only during the call, the
 *                  strings, dims and `data` it points to until
 *                  trestle_plan_free(). The tensor's bytes may be read (host)
 *                  or handed to another thread (device) from here.
 * @return 0 to go on; nonzero cancels the restore, which then returns
 *         TRESTLE_E_CANCELLED naming this op. Since 0.1.
 */
typedef int (*trestle_ready_fn)(void *user, size_t i, const trestle_plan_op_info *op);

/** Reader backends. */
typedef enum trestle_reader_kind {
    TRESTLE_READER_AUTO = 0,     /**< io_uring when the kernel allows, else pread */
    TRESTLE_READER_IO_URING = 1, /**< io_uring or fail with TRESTLE_E_NO_IO_URING */
    TRESTLE_READER_PREAD = 2,    /**< a pread thread pool */
    TRESTLE_READER_REMOTE = 3    /**< ranged HTTP GETs over libcurl's multi interface: what AUTO
                                      picks for a checkpoint opened from a URL, and the only
                                      reader such a checkpoint can use (since 0.2) */
} trestle_reader_kind;

/** O_DIRECT policy. */
typedef enum trestle_direct_policy {
    TRESTLE_DIRECT_AUTO = 0,  /**< O_DIRECT for data not in the page cache */
    TRESTLE_DIRECT_NEVER = 1,
    TRESTLE_DIRECT_ALWAYS = 2
} trestle_direct_policy;

/**
 * Options for trestle_restore(). Fill with trestle_restore_options_init().
 * Read by the options rule (the overview's "Options").
 */
typedef struct trestle_restore_options {
    size_t size;              /**< sizeof(trestle_restore_options), set by init */
    int verify;               /**< check CRC32C (default 1) */
    int reader;               /**< trestle_reader_kind (default AUTO) */
    int direct;               /**< trestle_direct_policy (default AUTO) */
    int device;               /**< CUDA device ordinal for DEST_ALLOCATE, or -1 for host (default -1) */
    unsigned threads;         /**< verify/copy workers (default: online cores, at most 8) */
    unsigned queue_depth;     /**< reads in flight (default 32) */
    uint64_t chunk_bytes;     /**< staging buffer size (default 8 MiB) */
    uint64_t staging_bytes;   /**< total staging memory bound (default 256 MiB) */
    trestle_ready_fn on_ready;/**< per-op ready callback, or NULL */
    void *user;               /**< passed to on_ready */
    void *cuda_stream;        /**< a cudaStream_t whose work queued so far (e.g. a
                                   cudaMallocAsync or memset of the destinations) every device
                                   copy waits for; NULL means the legacy default stream (0,
                                   cudaStreamLegacy). A per-thread default stream must be passed
                                   as cudaStreamPerThread. It may belong to another device than
                                   the restore's; a stream that is capturing a CUDA graph is
                                   refused (TRESTLE_E_INVALID_ARG). The caller's current CUDA
                                   context is left as it was. Since 0.1 */
    int host_map;             /**< 1: a whole tensor bound for engine host memory
                                   (DEST_ALLOCATE, no device, no conversion) whose bytes are in
                                   the page cache and whose file offset is 64-byte aligned is
                                   not copied: its `data` points into a private copy-on-write
                                   mapping of the shard file, still CRC-checked. No copy and no
                                   fresh memory, but the shard files must then not be truncated
                                   or rewritten in place while the tensors are used (a mapping
                                   of a truncated file raises SIGBUS). Default 0; since 0.1 */
    int no_numa;              /**< device restores: 1 leaves staging memory and worker threads
                                   where the system puts them. By default (0) staging is bound to
                                   the GPU's NUMA node and workers are pinned to its CPUs, best
                                   effort (see trestle_stats.numa_node); since 0.2 */
    /* Several GPUs in one restore, since 0.2 (two of the reserved slots,
     * so the struct's size is unchanged on LP64). */
    const int *devices;       /**< `num_devices` distinct CUDA ordinals, or NULL. With
                                   num_devices >= 2 every DEST_ALLOCATE op is restored onto
                                   each listed device (one engine arena per device), unless
                                   trestle_plan_place_op() put it on one of them: each byte is
                                   read from storage once and CRC-checked once, and the same
                                   pinned staging buffer is DMA'd to every device. `device` must
                                   then be -1 or devices[0]; trestle_plan_get_op() describes an
                                   op's copy on devices[0] (on its own device for a placed op),
                                   trestle_plan_op_replica() the others. A DEST_DEVICE op is
                                   copied once, to its pointer, which must be memory of a listed
                                   device (so one plan can hold each device's part of a tensor);
                                   a DEST_HOST op once, to its buffer. Staging memory is not
                                   bound to a NUMA node (the GPUs may sit on different ones).
                                   num_devices == 1 is `device` = devices[0]. Copied during
                                   the call only; at most 64 devices. Since 0.2 */
    size_t num_devices;       /**< entries of `devices`; 0 (default): `device` alone; since 0.2 */
    void *reserved[4];        /**< must be zero */
} trestle_restore_options;

/**
 * @brief Fill `opt` with the defaults (verify on, AUTO reader and O_DIRECT,
 * host memory, no callback) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_restore_options_init(trestle_restore_options *opt);

/** Per-stage figures of one restore. Seconds are busy time summed over threads
 *  except `wall_seconds`. */
typedef struct trestle_stats {
    uint64_t bytes_read;      /**< bytes read from shard files */
    uint64_t bytes_verified;  /**< bytes CRC-checked */
    uint64_t bytes_copied;    /**< bytes written to destinations (with a device list, every
                                   device's: twice the tensors' bytes on two devices; since
                                   0.2) */
    double read_seconds;      /**< wall time with reads in flight */
    double verify_seconds;    /**< CRC busy time, summed over workers */
    double copy_seconds;      /**< copy busy time, summed over workers */
    double wall_seconds;      /**< whole restore */
    double first_ready_seconds; /**< until the first op was ready, or -1 */
    size_t tensors;           /**< ops restored */
    int reader;               /**< backend used (trestle_reader_kind) */
    int direct_reads;         /**< 1 if any read used O_DIRECT */
    char reader_note[128];    /**< e.g. why io_uring was not used */
    double copy_wait_seconds; /**< device restores: time workers slept waiting for their copies to
                                   complete, summed over workers; since 0.2 */
    double device_copy_seconds; /**< device restores: time during which some copy to the
                                   device ran, timed on the device by CUDA events around each
                                   staging buffer's copies (the union of those intervals over
                                   the workers; with several devices, the busiest device's): the
                                   time to hold bytes_copied against the host-to-device
                                   ceiling; since 0.2 */
    int numa_node;            /**< device restores: the GPU's NUMA node, -1 when unknown (no
                                   NUMA, firmware that does not say, no_numa); since 0.2 */
    int numa_bound;           /**< 1 when staging memory was bound to numa_node (mbind); 0 when
                                   the kernel refused (e.g. a container without CAP_SYS_NICE)
                                   and pages went where first touched; since 0.2 */
    unsigned numa_pinned;     /**< worker threads pinned to numa_node's CPUs; since 0.2 */
    char staging_note[160];   /**< how staging memory is pinned when not as usual, e.g.
                                   "cudaHostRegister refused (...): staging is cudaHostAlloc
                                   memory"; "" otherwise; since 0.2 */
    uint64_t bytes_deferred;  /**< bytes read under trestle_plan_options.partial_reads whose CRC32C
                                   could not be checked here (a part of a tensor): they went into
                                   CRC shares (trestle_plan_get_crc_share()) and are verified only
                                   once every part's share is combined. Not in bytes_verified: a
                                   restore with bytes_deferred > 0 is not fully verified by
                                   itself; since 0.2 */
    uint64_t bytes_placed;    /**< of bytes_copied: bytes that reached their destination with no
                                   copy, read straight into it or (host_map) mapped there. Only
                                   bytes_copied - bytes_placed went through a copier in
                                   copy_seconds or device_copy_seconds, so a copy rate is that
                                   difference over those seconds; since 0.2 */
    uint64_t bytes_mapped;    /**< of bytes_read: host_map tensors' bytes, left in the page cache
                                   and mapped (CRC-checked, not read by any read call). Only
                                   bytes_read - bytes_mapped were read in read_seconds; since
                                   0.2 */
    /* Remote checkpoints (reader TRESTLE_READER_REMOTE), since 0.2; zero otherwise. */
    uint64_t bytes_fetched;   /**< body bytes received from the store, those of retried and
                                   abandoned attempts included: bytes_fetched - bytes_read is
                                   what faults cost */
    uint64_t remote_requests; /**< HTTP requests made, retries included */
    uint64_t remote_retries;  /**< of which retries (after a 5xx, 429, 408, reset, timeout or
                                   short body) */
    unsigned objects_whole;   /**< shard objects whose every byte this restore read */
    unsigned objects_verified;/**< of those, objects whose store-reported CRC32C (GCS's
                                   x-goog-hash, S3's full-object x-amz-checksum-crc32c) equals
                                   the CRC32C of the ranges read, combined: the whole object
                                   verified, on top of every tensor's own CRC32C */
} trestle_stats;

/**
 * @brief Run a plan: read, verify and copy every op into its destination.
 *
 * Memory is bounded by `staging_bytes` plus engine-allocated destinations,
 * whatever the checkpoint size. The first error stops the restore and is
 * reported; the restore never reports partial success.
 *
 * A plan may be restored again (e.g. after a cancellation or into freshly
 * refilled caller buffers); engine-allocated destinations are reused.
 *
 * A plan made with partial_reads that reads a part of some tensor
 * (trestle_plan_crc_share_count() > 0) cannot check those tensors' CRC32C
 * alone: TRESTLE_OK then means every other byte was verified, while the
 * parts' bytes (trestle_stats.bytes_deferred) are verified only when the
 * shares of all parts pass trestle_crc_shares_check() or
 * trestle_group_check_shares(). Until then the restore is not verified.
 *
 * @param[in,out] p     the plan; not NULL; one restore at a time per plan.
 * @param[in]     opt   options, or NULL for defaults. Copied; `opt->user`
 *                      must stay valid until the call returns.
 * @param[out]    stats filled (also on failure) when not NULL.
 * @param[out]    err   filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_CRC_MISMATCH, TRESTLE_E_IO,
 *         TRESTLE_E_SHORT_READ, TRESTLE_E_NOT_FOUND, TRESTLE_E_CANCELLED
 *         (trestle_restore_cancel() or a nonzero callback return),
 *         TRESTLE_E_NO_IO_URING (READER_IO_URING only), TRESTLE_E_NOMEM,
 *         TRESTLE_E_CUDA, TRESTLE_E_NO_DEVICE (device destinations without a
 *         usable GPU or CUDA build), TRESTLE_E_INVALID_ARG (`opt` refused by
 *         the options rule, or a field out of range). After a failure,
 *         destinations hold unspecified bytes: device copies are queued
 *         before a tensor's CRC is known, so a tensor that fails its check
 *         may already be partly or wholly overwritten. Nothing the failed
 *         restore wrote may be used; but when the call returns, failed,
 *         cancelled or not, no copy it queued is still running, so the
 *         caller may free or reuse the destinations at once.
 * Threads: blocks the calling thread and runs its own worker threads.
 * Distinct plans, even of one checkpoint, may be restored at the same time
 * from different threads. Since 0.1.
 */
TRESTLE_API int trestle_restore(trestle_plan *p, const trestle_restore_options *opt,
                                trestle_stats *stats, trestle_error *err);

/**
 * @brief Ask a running restore of `p` to stop.
 *
 * The restore returns TRESTLE_E_CANCELLED soon after (within one chunk per
 * worker, or ~50 ms of waiting) and engine-allocated memory stays owned by
 * the plan. Harmless when nothing runs: the flag is reset when the next
 * trestle_restore(p) starts, so a cancel issued before that is lost.
 *
 * @param[in] p  the plan; NULL is ignored. Must stay alive during the call.
 * Safe from any thread, including a ready callback. Since 0.1.
 */
TRESTLE_API void trestle_restore_cancel(trestle_plan *p);

/* ======================================================================= */
/* Keeping engine memory past the plan                                      */
/* ======================================================================= */

/**
 * The engine memory that holds a plan's TRESTLE_DEST_ALLOCATE tensors: one
 * allocation per restore (host memory, or device memory of one GPU), the
 * tensors in the order their bytes lie in the files. In device memory every
 * tensor starts on a 256-byte boundary. In host memory (0.2.0 put every
 * tensor on 256 bytes there too) a tensor of 4 KiB or more starts on a
 * 64-byte boundary, and smaller ones
 * lie as they lie in the file: a run of them, adjacent in their shard, end
 * to end, placed at their file offsets modulo 64, so that the run is read
 * as one range; every tensor is aligned to its element size (one whose
 * file offset is not is not packed). With host_map, also the private
 * mappings of shard files that mapped tensors point into (64-byte
 * aligned).
 */
typedef struct trestle_arena trestle_arena;

/** What an arena is. */
typedef struct trestle_arena_info {
    void *base;              /**< first byte (host or device address) */
    uint64_t bytes;          /**< size of the allocation */
    int device;              /**< CUDA device ordinal, or -1 for host memory */
} trestle_arena_info;

/**
 * @brief Take over the engine memory of a restored plan, so the tensors
 * outlive the plan.
 *
 * A runtime that keeps the weights and drops the bookkeeping restores,
 * records each op's `data` (trestle_plan_get_op()), adopts the arena and
 * frees the plan. From then on the plan no longer owns the memory:
 * trestle_plan_free() leaves it alone, `data` pointers stay valid until
 * trestle_arena_free(), and restoring the plan again allocates new memory.
 *
 * @param[in,out] p    the plan; no restore of it may be running.
 * @param[out]    out  the arena, or NULL when the plan holds no engine
 *                     memory (nothing restored yet, or no DEST_ALLOCATE op).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments.
 * Not thread-safe against a restore of the same plan. Since 0.1.
 */
TRESTLE_API int trestle_plan_adopt_arena(trestle_plan *p, trestle_arena **out);

/**
 * @brief Describe an adopted arena.
 * @param[in]  a    the arena; NULL gives all zeros and device -1.
 * @param[out] out  caller-owned; NULL is ignored.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_arena_get_info(const trestle_arena *a, trestle_arena_info *out);

/**
 * @brief Free an adopted arena and every tensor in it (host memory with
 * free(), device memory with cudaFree() on its device).
 * @param[in] a  the arena, or NULL (then nothing happens). No plan or
 *               restore may still be using its memory. Since 0.1.
 */
TRESTLE_API void trestle_arena_free(trestle_arena *a);

/* ======================================================================= */
/* Several GPUs in one process (trestle_restore_options.devices)           */
/* ======================================================================= */

/** trestle_plan_place_op(): restore the op onto every listed device. */
#define TRESTLE_EVERY_DEVICE (-1)

/**
 * @brief Put a DEST_ALLOCATE op on one device of a multi-device restore
 * instead of every device.
 *
 * With trestle_restore_options.num_devices >= 2, an engine-allocated op
 * is replicated onto each listed device by default. A placed op is
 * restored onto devices[device_index] only, into that device's arena. This
 * is how one plan splits a tensor over the GPUs of one process: W ops of
 * the same key, op d asking for part d as its shape_and_slices and placed
 * on device d; the stored tensor is read from storage and CRC-checked once
 * for all of them (`trestle restore --device 0,1 --shard GLOB:DIM`).
 *
 * Restores with one device (or host memory) ignore placement.
 *
 * @param[in,out] p             the plan; no restore of it may be running.
 * @param[in]     i             0 <= i < trestle_plan_op_count(p).
 * @param[in]     device_index  an index into the devices list (not an
 *                              ordinal): 0 .. 63, or TRESTLE_EVERY_DEVICE
 *                              (the default) to replicate again. An index
 *                              at or past the next restore's num_devices
 *                              fails that restore (TRESTLE_E_INVALID_ARG).
 * @param[out]    err           filled on failure; may be NULL.
 * @return TRESTLE_OK; TRESTLE_E_INVALID_ARG for a NULL plan, `i` out of
 *         range, an op that is not DEST_ALLOCATE, or an index out of
 *         range; TRESTLE_E_NOMEM. The next multi-device restore lays the
 *         arenas out anew. Not thread-safe against other use of `p`.
 *         Since 0.2.
 */
TRESTLE_API int trestle_plan_place_op(trestle_plan *p, size_t i, int device_index,
                                      trestle_error *err);

/**
 * @brief Where op `i`'s copy on devices[device_index] of the last
 * multi-device restore is.
 *
 * @param[in]  p             the plan, restored with num_devices >= 2.
 * @param[in]  i             0 <= i < trestle_plan_op_count(p).
 * @param[in]  device_index  an index into that restore's devices list.
 * @param[out] data          the device address (owned by the plan, or by
 *                           the arena once adopted), or NULL when the op
 *                           has no copy there (placed on another device,
 *                           skipped, or a DEST_HOST/DEST_DEVICE op on
 *                           another device). A DEST_DEVICE op's copy is
 *                           its caller pointer, on its own device.
 * @return TRESTLE_OK; TRESTLE_E_INVALID_ARG for NULL arguments, `i` out of
 *         range, or a device_index past the devices of the last restore
 *         (also when it had fewer than two devices). Same threading rule
 *         as trestle_plan_get_op(). Since 0.2.
 */
TRESTLE_API int trestle_plan_op_replica(const trestle_plan *p, size_t i, size_t device_index,
                                        void **data);

/**
 * @brief Take over the engine memory of one device of a multi-device
 * restore, as trestle_plan_adopt_arena() does for one device.
 *
 * Each listed device has an arena of its own; adopt each you keep (index
 * 0 is the arena trestle_plan_adopt_arena() gives). Adopting any of them
 * makes the next restore of the plan lay every device out anew.
 *
 * @param[in,out] p             the plan; no restore of it may be running.
 * @param[in]     device_index  an index into the last restore's devices.
 * @param[out]    out           the arena, or NULL when that device holds no
 *                              engine memory of the plan (or was adopted).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or an
 *         index past the devices of the last multi-device restore.
 *         Not thread-safe against a restore of the same plan. Since 0.2.
 */
TRESTLE_API int trestle_plan_adopt_arena_of(trestle_plan *p, size_t device_index,
                                            trestle_arena **out);

/**
 * @brief How many CUDA devices this process can use (for "every GPU").
 * @return the count, or 0 in a build without CUDA or without a usable
 *         device. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_cuda_device_count(void);

/* ======================================================================= */
/* Converting to safetensors                                                */
/* ======================================================================= */

/**
 * Options for trestle_convert_safetensors() and trestle_conversion_create().
 * Fill with trestle_convert_options_init(). Read by the options rule (the
 * overview's "Options").
 */
typedef struct trestle_convert_options {
    size_t size;              /**< sizeof(trestle_convert_options), set by init */
    const trestle_plan_options *plan;       /**< renames, exclusions, allow_missing,
                                                 skip_unsupported; NULL for the defaults.
                                                 Renames map op names to checkpoint keys, so
                                                 they need `ops` (with NULL ops they are
                                                 refused: use `key_rules` to name the
                                                 file's tensors) */
    const trestle_restore_options *restore; /**< reader, threads, staging; NULL for the
                                                 defaults. `verify` is forced on, `device`
                                                 to host and `host_map` off; `on_ready` is
                                                 called per tensor written, once it is in
                                                 the file in its final layout (its index is
                                                 in the conversion's own plan; op->name is
                                                 the checkpoint key it was read from, since
                                                 0.2; op->bytes are the bytes written to the
                                                 file), and a nonzero return cancels */
    int sync;                 /**< flush the file to disk before the rename (default 1); 0
                                   leaves that to the kernel (benchmarks, scratch files) */
    /* Naming, converting and transposing what goes into the file, since 0.2
     * (they took five of the reserved slots, so the struct's size is
     * unchanged on LP64). */
    const char *const *key_rules; /**< `num_key_rules` rules that name the file's tensors,
                                      applied in order, each to the name the previous ones
                                      left (as a sed script), starting from the op name (the
                                      checkpoint key without ops): "FROM=TO" renames the name
                                      FROM; "FROM/=TO" (FROM ends in '/') replaces the prefix
                                      FROM/ with TO; "re:PATTERN=REPLACEMENT" replaces every
                                      match of the POSIX extended regular expression PATTERN
                                      (which cannot hold a bare '=': write [=]) with
                                      REPLACEMENT, where \\1..\\9 are its groups, \\0 the
                                      match and \\\\ a backslash. A rule that matches no
                                      tensor is an error, as is a malformed one. Since 0.2 */
    size_t num_key_rules;     /**< entries of `key_rules`; since 0.2 */
    const char *const *transpose; /**< `num_transpose` glob patterns (fnmatch, no flags, as
                                      excludes) of op names (checkpoint keys without ops)
                                      whose tensors are written transposed: a 2-D [a, b]
                                      tensor becomes [b, a] in the file (TF's Dense kernels
                                      are [in, out], torch's Linear weights [out, in]). Each
                                      tensor is transposed as its bytes land, after its
                                      CRC32C is checked, never in a second pass over the
                                      file. A pattern that matches no tensor, or matches one
                                      that is not 2-D, is an error. Since 0.2 */
    size_t num_transpose;     /**< entries of `transpose`; since 0.2 */
    int as_dtype;             /**< TRESTLE_DT_INVALID (0, default), or a dtype every tensor
                                   whose stored dtype converts to it
                                   (trestle_dtype_can_convert()) is converted to, unless its
                                   op sets its own target_dtype; the rest go in as stored.
                                   None converting is an error. Since 0.2 */
    void *reserved[3];        /**< must be zero */
} trestle_convert_options;

/** What trestle_convert_safetensors() wrote. */
typedef struct trestle_convert_stats {
    size_t tensors;           /**< tensors in the file */
    size_t skipped;           /**< ops left out: excluded, allowed-missing, skipped as unsupported,
                                   and (every-tensor mode) string tensors, which safetensors
                                   cannot hold; trestle_conversion_get() names each */
    uint64_t header_bytes;    /**< JSON header, padding included */
    uint64_t file_bytes;      /**< the whole file */
    trestle_stats restore;    /**< the restore into the file */
} trestle_convert_stats;

/**
 * @brief Fill `opt` with the defaults (no renames, verify on, sync on) and
 * set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.1.
 */
TRESTLE_API void trestle_convert_options_init(trestle_convert_options *opt);

/**
 * @brief Restore tensors straight into a new safetensors file.
 *
 * The same plan as a restore (ops, shape_and_slices, renames, exclusions,
 * allow_missing, target_dtype conversions) with the file as destination:
 * the file is sized from the plan, mapped, and the pipeline's verified
 * bytes land in it, every CRC32C checked on the way. The file is written
 * atomically: a temporary `OUT.tmp-XXXXXX` beside `out_path` that is renamed
 * over `out_path` only once complete (after an fdatasync when `sync`); on any
 * failure it is removed and `out_path` is untouched. It is
 * trestle_conversion_create(), trestle_conversion_write() and
 * trestle_conversion_free() in one call.
 *
 * Layout (huggingface safetensors): an 8-byte little-endian header length,
 * the JSON header `{"__metadata__":{"format":"pt"},"NAME":{"dtype":"F32",
 * "shape":[...],"data_offsets":[BEGIN,END]},...}` padded with spaces to a
 * multiple of 8, then the tensors back to back, ordered by element size
 * (largest first) and then name, so every tensor is aligned to its element
 * size. Tensors are named by their op names (the checkpoint keys when `ops`
 * is NULL), then by `opt->key_rules`. Dtypes: float32/64, float16,
 * bfloat16, float8 e4m3fn/e5m2, (u)int8/16/32/64, bool.
 *
 * Names the JSON header cannot hold as they are are refused, naming the
 * tensor: `__metadata__` (the header's own key) and bytes that are not
 * valid UTF-8 (JSON text is UTF-8; a checkpoint key may be any bytes).
 * Rename them with `key_rules`, or leave them out with an exclusion.
 *
 * `out_path` must not be a file the checkpoint is made of (its index or a
 * data shard, compared by device and inode, so another name or a link to
 * one of them counts): the rename would destroy the checkpoint. Nor may it
 * be anything but a regular file when it exists (a device node, a FIFO, a
 * directory): the rename would replace it with a regular file.
 *
 * @param[in]  c         the checkpoint; not NULL.
 * @param[in]  ops       `n` ops as for trestle_plan_create() (their dest_kind,
 *                       ptr and capacity are ignored), or NULL with n == 0
 *                       for every tensor, string ones left out (counted as
 *                       skipped). A DT_VARIANT tensor is refused as by
 *                       trestle_plan_create(), with or without `as_dtype`,
 *                       unless excluded or skipped by the plan options'
 *                       `skip_unsupported`.
 * @param[in]  n         number of ops.
 * @param[in]  opt       options, or NULL for defaults.
 * @param[in]  out_path  the file to create or replace; not NULL.
 * @param[out] stats     filled on success when not NULL.
 * @param[out] err       filled on failure; may be NULL.
 * @return TRESTLE_OK; the codes of trestle_plan_create() and
 *         trestle_restore(); TRESTLE_E_UNSUPPORTED (an op's dtype has no
 *         safetensors equivalent, e.g. a string tensor named in `ops`),
 *         TRESTLE_E_INVALID_ARG (two tensors of the same name in the file,
 *         a name the header cannot hold, `out_path` one of the
 *         checkpoint's files or not a regular file, a bad key rule or
 *         transpose pattern, renames without ops, NULL arguments),
 *         TRESTLE_E_DTYPE_MISMATCH (`as_dtype` that no tensor converts to),
 *         TRESTLE_E_IO (creating, sizing, mapping, syncing or renaming the
 *         file; err names it and the errno).
 * Thread-safe for distinct output files. Since 0.1.
 */
TRESTLE_API int trestle_convert_safetensors(const trestle_checkpoint *c, const trestle_op *ops,
                                            size_t n, const trestle_convert_options *opt,
                                            const char *out_path, trestle_convert_stats *stats,
                                            trestle_error *err);

/**
 * A conversion planned but not yet written: what each op becomes in the
 * file (name, dtype, shape) and what is left out, so a program can show it,
 * name the tensors itself, and then write it. Since 0.2.
 */
typedef struct trestle_conversion trestle_conversion;

/** Why an entry of a conversion is left out of the file: the plan's reasons
 *  (TRESTLE_SKIP_EXCLUDED, TRESTLE_SKIP_MISSING, TRESTLE_SKIP_UNSUPPORTED)
 *  or this one. Since 0.2. */
#define TRESTLE_SKIP_NO_SAFETENSORS 4 /**< a string tensor in every-tensor mode:
                                           safetensors has no string dtype */

/** One op of a conversion (pointers owned by the conversion). Since 0.2. */
typedef struct trestle_conversion_entry {
    const char *name;        /**< the op's name as given (the checkpoint key without ops) */
    const char *key;         /**< the checkpoint key it reads, or NULL when the plan skipped it */
    const char *out_name;    /**< its name in the file (after key rules and
                                  trestle_conversion_set_name()), or NULL when skipped */
    int skipped;             /**< 0, or why it is left out: TRESTLE_SKIP_EXCLUDED,
                                  TRESTLE_SKIP_MISSING, TRESTLE_SKIP_UNSUPPORTED,
                                  TRESTLE_SKIP_NO_SAFETENSORS */
    int dtype;               /**< stored dtype (0 when the key is missing) */
    int out_dtype;           /**< dtype in the file (after target_dtype or as_dtype) */
    int transposed;          /**< 1 when written transposed (`transpose` matched it) */
    int rank;                /**< rank in the file */
    const int64_t *dims;     /**< shape in the file (transposed when `transposed`) */
    uint64_t bytes;          /**< bytes in the file */
} trestle_conversion_entry;

/**
 * @brief Plan a conversion to safetensors without writing anything.
 *
 * Plans `ops` as trestle_convert_safetensors() does, applies `as_dtype`,
 * the key rules and the transpose patterns, and checks them: a rule or
 * pattern that matches nothing, a transposed tensor that is not 2-D,
 * renames without ops, `as_dtype` that nothing converts to. Names the
 * header cannot hold and two tensors of one name are checked by
 * trestle_conversion_write(), after any trestle_conversion_set_name().
 *
 * @param[in]  c    the checkpoint; must outlive the conversion.
 * @param[in]  ops  as for trestle_convert_safetensors(); copied.
 * @param[in]  n    number of ops.
 * @param[in]  opt  options, or NULL for the defaults; copied (the restore
 *                  options' `on_ready` and `user` are kept for the write).
 * @param[out] out  the conversion, or NULL on failure; free with
 *                  trestle_conversion_free().
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, the codes of trestle_plan_create(), TRESTLE_E_INVALID_ARG
 *         (a malformed or unused key rule or transpose pattern, a
 *         transposed tensor that is not 2-D, renames without ops, NULL
 *         arguments), TRESTLE_E_DTYPE_MISMATCH (as_dtype), TRESTLE_E_UNSUPPORTED
 *         (an explicit op of a dtype safetensors lacks), TRESTLE_E_NOMEM.
 *         Thread-safe for distinct conversions. Since 0.2.
 */
TRESTLE_API int trestle_conversion_create(const trestle_checkpoint *c, const trestle_op *ops,
                                          size_t n, const trestle_convert_options *opt,
                                          trestle_conversion **out, trestle_error *err);

/**
 * @brief Number of entries: one per op, skipped ones included (without ops,
 * one per listed tensor).
 * @param[in] cv  the conversion; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_conversion_count(const trestle_conversion *cv);

/**
 * @brief Describe entry `i`.
 * @param[in]  cv   the conversion.
 * @param[in]  i    0 <= i < trestle_conversion_count(cv).
 * @param[out] out  caller-owned; its pointers are owned by the conversion
 *                  and valid until it is freed (`out_name` until the next
 *                  trestle_conversion_set_name() of entry `i`).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Not during a trestle_conversion_write() of `cv`.
 *         Since 0.2.
 */
TRESTLE_API int trestle_conversion_get(const trestle_conversion *cv, size_t i,
                                       trestle_conversion_entry *out);

/**
 * @brief Name entry `i` in the file, replacing what the key rules gave it
 * (for names a program computes itself, such as Python's `keys=`).
 * @param[in]  cv    the conversion.
 * @param[in]  i     an entry that is not skipped.
 * @param[in]  name  the new name; copied. Checked when written.
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL arguments, `i` out of
 *         range or skipped), TRESTLE_E_NOMEM. Not during a write of `cv`.
 *         Since 0.2.
 */
TRESTLE_API int trestle_conversion_set_name(trestle_conversion *cv, size_t i, const char *name,
                                            trestle_error *err);

/**
 * @brief Write the conversion's file, as trestle_convert_safetensors()
 * describes (names checked, the file's own checks, atomic, CRC-checked,
 * transposed as the bytes land).
 *
 * May be called again (to write another file); a failed write leaves the
 * conversion as it was.
 *
 * @param[in]  cv        the conversion.
 * @param[in]  out_path  the file to create or replace; not NULL.
 * @param[out] stats     filled on success when not NULL.
 * @param[out] err       filled on failure; may be NULL.
 * @return as trestle_convert_safetensors(). Not thread-safe for one
 *         conversion. Since 0.2.
 */
TRESTLE_API int trestle_conversion_write(trestle_conversion *cv, const char *out_path,
                                         trestle_convert_stats *stats, trestle_error *err);

/**
 * @brief Free a conversion (its names, shapes and plan).
 * @param[in] cv  the conversion, or NULL (then nothing happens). Since 0.2.
 */
TRESTLE_API void trestle_conversion_free(trestle_conversion *cv);

/* ======================================================================= */
/* Advanced: plumbing for restores split across processes and devices       */
/* ======================================================================= */

/**
 * @defgroup advanced Advanced: parts, shard rules, CRC shares and the options rule
 *
 * For libraries built on libtrestle rather than for applications:
 * libtrestle_mpi (trestle_mpi.h) uses every call here, and a program that
 * splits a restore itself (one process placing each part of a tensor on its
 * own GPU, a tool listing who reads what) uses some. An application that
 * only restores needs none of them: shard rules and partial reads are plan
 * options (trestle_plan_options.shard_rules, .partial_reads), and
 * trestle_restore() and trestle_group_restore() make these calls for it.
 *
 * Unlike zstd's ZSTD_STATIC_LINKING_ONLY section, this one is not behind a
 * macro. zstd gates prototypes it may still change, which a program must
 * therefore not use through its shared library. These calls are used
 * through libtrestle.so by design (libtrestle_mpi.so, a separate shared
 * library, links them), so they carry the same promise as the rest of this
 * header: a 0.x release keeps its MAJOR.MINOR's API, and "Since X.Y" holds.
 * The section says who they are for, not that they are less stable.
 * @{
 */

/* ---- Tensor-parallel shard rules (trestle_plan_options.shard_rules) ---- */

/*
 * The planner applies shard rules itself; these calls let a caller that
 * builds its own per-part ops (one process placing each part on its own
 * GPU, a tool listing who gets what) decide exactly as the planner does.
 */

/**
 * @brief Check the form of shard rules: "GLOB:DIM", DIM a number below
 * TRESTLE_MAX_SLICE_RANK, GLOB an fnmatch pattern with no unclosed '['
 * class or trailing '\' (which fnmatch would treat as never matching,
 * silently replicating tensors meant to be split), and no ':' outside a
 * class: "*:1:2" is refused rather than read as GLOB "*:1", DIM 2
 * (TensorFlow names hold no ':'; "\\:" matches one in another tool's key).
 * Whether a rule matches any tensor is the caller's to tell:
 * trestle_shard_rule_match() over its op names.
 * @param[in]  rules  `n` rules; may be NULL when n is 0.
 * @param[in]  n      number of rules.
 * @param[out] err    filled on failure, naming the rule; may be NULL.
 * @return TRESTLE_OK or TRESTLE_E_INVALID_ARG. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_shard_rules_check(const char *const *rules, size_t n,
                                          trestle_error *err);

/**
 * @brief The rule that applies to an op name: the first whose GLOB matches
 * it (fnmatch, no flags), as trestle_plan_create() picks it.
 * @param[in]  rules  `n` rules, checked by trestle_shard_rules_check()
 *                    (a malformed one never matches here).
 * @param[in]  n      number of rules.
 * @param[in]  name   the op's name as given (before renames).
 * @param[out] dim    receives the rule's DIM when one matches; may be NULL.
 * @return the rule's index, or -1 when none matches. Thread-safe. Since 0.2.
 */
TRESTLE_API long trestle_shard_rule_match(const char *const *rules, size_t n, const char *name,
                                          int *dim);

/**
 * @brief TensorFlow's partitioner rule: part `rank` of `world` of a
 * dimension of `n` elements. Parts hold n / world elements, the first
 * n % world of them one more, in rank order; a part past the elements is
 * empty (*len 0).
 * @param[in]  n      elements in the dimension, >= 0.
 * @param[in]  rank   0 <= rank < world.
 * @param[in]  world  parts, >= 1.
 * @param[out] start  first element of the part; not NULL.
 * @param[out] len    elements in it; not NULL.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_shard_part(int64_t n, int rank, int world, int64_t *start,
                                    int64_t *len);

/* ---- Parts of a plan (for groups of processes that share one restore) ---- */

/*
 * A plan reads its checkpoint as extents: stored runs of bytes, each read
 * and CRC-checked as a unit, sorted by (shard, offset). A group of
 * processes that restores one checkpoint once (trestle_mpi.h) gives each
 * member a consecutive range of extents to read, then hands the verified
 * destination bytes of each extent to the others. These four calls are
 * all it needs from libtrestle to split a plan; libtrestle knows nothing
 * of groups.
 */

/** One extent of a plan (trestle_plan_get_extent()). */
typedef struct trestle_plan_extent_info {
    int shard;               /**< data shard it is read from */
    uint64_t offset;         /**< byte offset in that shard */
    uint64_t size;           /**< bytes read and checked */
    const char *key;         /**< the tensor it belongs to, for messages; owned by the plan */
} trestle_plan_extent_info;

/**
 * @brief The checkpoint a plan was made from, so that a library handed only
 * a plan can tell which checkpoint it reads (libtrestle_mpi compares the
 * ranks' trestle_checkpoint_identity()).
 * @param[in] p  the plan; NULL gives NULL.
 * @return the checkpoint given to trestle_plan_create(), which the caller
 *         owns and keeps open while the plan lives. Thread-safe. Since 0.2.
 */
TRESTLE_API const trestle_checkpoint *trestle_plan_checkpoint(const trestle_plan *p);

/**
 * @brief Number of extents the plan reads, in (shard, offset) order.
 * @param[in] p  the plan; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_plan_extent_count(const trestle_plan *p);

/**
 * @brief Describe extent `i`.
 * @param[in]  p    the plan.
 * @param[in]  i    0 <= i < trestle_plan_extent_count(p).
 * @param[out] out  caller-owned; `key` is owned by the plan and valid until
 *                  trestle_plan_free(p).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_plan_get_extent(const trestle_plan *p, size_t i,
                                        trestle_plan_extent_info *out);

/**
 * @brief Destination bytes one extent produces (trestle_plan_extent_runs()):
 * `length` bytes at byte `offset` of op `op`'s destination
 * (trestle_plan_op_info.data once restored), in the op's restored dtype.
 * @return 0 to go on; nonzero stops the walk, which returns that value.
 */
typedef int (*trestle_run_fn)(void *user, size_t op, uint64_t offset, uint64_t length);

/**
 * @brief Walk the destination byte runs that extent `i`'s verified bytes
 * are copied to: one run per whole-tensor piece, one per contiguous row of
 * a sliced or partitioned piece (adjacent rows merged), in op order, then
 * destination order. Ops with a DISCARD destination give none.
 *
 * Once extent `i` is restored, exactly these bytes of these ops hold its
 * data, so a process that restored it can send them to one that did not.
 *
 * @param[in] p     the plan (restored or not: offsets do not depend on where
 *                  the destinations are).
 * @param[in] i     0 <= i < trestle_plan_extent_count(p).
 * @param[in] fn    called once per run, on the calling thread; not NULL.
 * @param[in] user  passed to fn.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL arguments, `i` out of
 *         range), or fn's nonzero return. Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_plan_extent_runs(const trestle_plan *p, size_t i, trestle_run_fn fn,
                                         void *user);

/**
 * @brief Restrict the plan to the extents [first, end): later restores read,
 * check and copy only those, and the kept extents are renumbered from 0.
 *
 * Every op keeps its destination (engine memory is still allocated whole),
 * but only the bytes the kept extents produce are written; an op is reported
 * ready (trestle_ready_fn, trestle_stats.tensors) when its kept pieces have
 * landed, at once when it has none. trestle_plan_get_stats() describes the
 * restricted reads. There is no way back: plan again for the whole.
 *
 * @param[in,out] p      the plan; no restore of it may be running.
 * @param[in]     first  first extent kept.
 * @param[in]     end    one past the last kept; first <= end <= count.
 * @param[out]    err    filled on failure; may be NULL.
 * @return TRESTLE_OK or TRESTLE_E_INVALID_ARG (bad range, NULL plan, a plan
 *         with partial reads, whose CRC shares need all of its runs); the
 *         plan is unchanged on failure. Not thread-safe against other use of
 *         `p`. Since 0.2.
 */
TRESTLE_API int trestle_plan_keep_extents(trestle_plan *p, size_t first, size_t end,
                                          trestle_error *err);

/**
 * @brief Leave op `i`'s bytes to the caller: later restores read none of
 * them, and the op keeps its destination.
 *
 * For a process that gets the op's bytes from elsewhere, such as another
 * process that read the stored tensor once for several (libtrestle_mpi's
 * trestle_group_restore_parts() does so when a tensor-parallel part lies in
 * rows too close together to read alone). The op's pieces are dropped, and
 * so are the extents no other op needs; a batch that held such an extent is
 * split there, so its bytes are not read as a gap either. The op is then
 * reported ready at once, as a zero-byte op is, with its destination
 * allocated (TRESTLE_DEST_ALLOCATE) but not written: the caller fills it
 * after the restore. trestle_plan_get_stats() describes the reads left.
 *
 * @param[in,out] p    the plan; no restore of it may be running.
 * @param[in]     i    0 <= i < trestle_plan_op_count(p), an op that is not
 *                     skipped.
 * @param[out]    err  filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL plan, `i` out of range, a
 *         skipped op, an op that reads a part under partial_reads, whose CRC
 *         share needs all of its runs), TRESTLE_E_NOMEM; the plan is
 *         unchanged on failure. Not thread-safe against other use of `p`.
 *         Since 0.2.
 */
TRESTLE_API int trestle_plan_drop_op_reads(trestle_plan *p, size_t i, trestle_error *err);

/* ---- CRC shares of tensors read in parts (partial_reads) ---- */

/*
 * TensorFlow's CRC32C covers a whole stored tensor. With
 * trestle_plan_options.partial_reads, each part of a tensor-parallel tensor
 * is read by its own plan (on its own rank), so no plan sees the whole. The
 * CRC is affine over GF(2), which lets each part be hashed alone: the
 * restore folds the runs it read into one 32-bit share, and the XOR of the
 * shares of all `shard_world` parts, combined with a constant of the
 * tensor's length, must equal the stored CRC. A part that read a corrupt
 * byte makes the combination fail; which part cannot be told.
 */

/** One tensor whose CRC32C check a plan defers to the combination of parts. */
typedef struct trestle_crc_share {
    size_t op;               /**< the op (index in the plan) that reads a part of it */
    const char *key;         /**< its checkpoint key; owned by the plan's checkpoint */
    const char *shard_path;  /**< the data shard file holding it; owned likewise */
    uint64_t offset;         /**< the stored tensor's byte offset in that shard */
    uint64_t tensor_bytes;   /**< the whole stored tensor's bytes (not the part's) */
    uint32_t expected;       /**< the stored CRC32C, unmasked (plain CRC-32C of all its bytes) */
    uint32_t share;          /**< this part's share; XOR the shares of every part into it
                                  before trestle_crc_shares_check() */
    int ready;               /**< 1 when `share` is this plan's: its last restore succeeded with
                                  verify on; else 0 and `share` is 0 */
    int part;                /**< the part this plan read (its shard_rank) */
    int parts;               /**< of how many (its shard_world): the shares of exactly these
                                  parts, each once, combine to the stored CRC */
} trestle_crc_share;

/**
 * @brief Number of tensors whose check the plan defers (one per op that
 * reads a part under partial_reads, its part empty or not, in op order).
 *
 * Every part's plan of the same ops and rules lists the same tensors in the
 * same order, whatever its shard_rank, so the shares of all parts can be
 * combined element by element (e.g. one MPI_Allreduce with MPI_BXOR).
 *
 * @param[in] p  the plan; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_plan_crc_share_count(const trestle_plan *p);

/**
 * @brief Describe deferred tensor `i` and this plan's CRC share of it.
 * @param[in]  p    the plan.
 * @param[in]  i    0 <= i < trestle_plan_crc_share_count(p).
 * @param[out] out  caller-owned; its strings are owned by the checkpoint and
 *                  valid until it is closed.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG for NULL arguments or `i`
 *         out of range. Not while `p` is being restored. Since 0.2.
 */
TRESTLE_API int trestle_plan_get_crc_share(const trestle_plan *p, size_t i,
                                           trestle_crc_share *out);

/**
 * @brief Check combined CRC shares: for each tensor, the XOR of every
 * part's share (in `share`) against its stored CRC.
 *
 * For one process that restored all the parts itself (a plan per
 * shard_rank), and for tests; trestle_group_check_shares() does the same
 * across MPI ranks.
 *
 * @param[in]  shares  `n` entries from trestle_plan_get_crc_share() of one
 *                     part's plan, each with `share` replaced by the XOR of
 *                     all parts' shares; NULL only with n == 0.
 * @param[in]  n       the count.
 * @param[in]  parts   how many parts were combined (for the message), >= 1.
 * @param[out] err     filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_CRC_MISMATCH for the first tensor that does
 *         not match ("CRC32C of tensor 'X' (shard PATH, offset N) over the
 *         3 ranks' parts does not match (stored CRC32C 0x..., the parts
 *         combine to 0x...): some part read corrupt bytes", with key, file
 *         and offset in `err`), TRESTLE_E_INVALID_ARG (NULL shares with
 *         n > 0, a share not `ready`, parts < 1). Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_crc_shares_check(const trestle_crc_share *shares, size_t n, int parts,
                                         trestle_error *err);

/** What plain parallel ranged GETs of a plan's bytes achieved (trestle_remote_ceiling()). */
typedef struct trestle_remote_ceiling_result {
    uint64_t bytes;    /**< bytes fetched: every batch of the plan, gaps included */
    uint64_t requests; /**< ranged GETs made, retries included */
    double seconds;    /**< wall time from the first GET to the last byte */
} trestle_remote_ceiling_result;

/**
 * @brief The yardstick of a remote restore's read stage: fetch the bytes a
 * plan reads with plain parallel ranged GETs, and nothing else (no CRC, no
 * copy, no staging pool), through the same store, credentials and
 * connection count (trestle_open_options.connections) as a restore of it.
 *
 * Each batch of the plan is cut into `chunk_bytes` ranges, as a restore
 * with that chunk cuts it, and the ranges are fetched, `connections` at
 * once, into as many scratch buffers (connections x chunk_bytes of memory,
 * freed before returning). `trestle bench URL` runs it in the same run as
 * the restores it reports.
 *
 * @param[in]  p            a plan of a checkpoint opened from a URL; not NULL.
 * @param[in]  chunk_bytes  bytes per GET; 0 for the restore default (8 MiB).
 * @param[out] out          the figures; not NULL.
 * @param[out] err          filled on failure; may be NULL.
 * @return TRESTLE_OK; TRESTLE_E_INVALID_ARG (NULL argument, a local
 *         checkpoint); TRESTLE_E_NOMEM; the first GET's failure after its
 *         retries (TRESTLE_E_IO, TRESTLE_E_NOT_FOUND, ...).
 * Blocks the calling thread; runs one thread of its own. Since 0.2.
 */
TRESTLE_API int trestle_remote_ceiling(const trestle_plan *p, uint64_t chunk_bytes,
                                       trestle_remote_ceiling_result *out, trestle_error *err);

/* ---- The options rule, for libraries built on trestle ---- */

/**
 * @brief Copy a caller's options struct over the defaults by the options
 * rule (the overview's "Options"), the one every trestle function applies.
 *
 * For libraries built on libtrestle whose own options structs follow the
 * same contract (libtrestle_mpi's trestle_group_options), or that copy a
 * caller's trestle struct before passing it on (trestle_group_restore()).
 * The struct must begin with `size_t size` and end in an array of
 * `void *` reserved fields.
 *
 * @param[in,out] dst         `size` bytes holding the defaults (from the
 *                            struct's init); on success it holds the
 *                            caller's fields and dst->size is `size`; on
 *                            failure it is untouched. Not NULL.
 * @param[in]     src         the caller's struct, or NULL (then `dst` keeps
 *                            the defaults and the call succeeds).
 * @param[in]     size        sizeof the struct as the calling library knows it.
 * @param[in]     first_size  the size of the struct's first release.
 * @param[in]     reserved    offsetof its reserved array, which runs to `size`.
 * @param[in]     name        the struct's name, for messages
 *                            ("trestle_group_options"); not NULL.
 * @param[out]    err         filled on failure; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG: the message names the
 *         struct and the field, e.g. "trestle_restore_options.size is 12:
 *         smaller than the 128 bytes of its first release; fill it with
 *         trestle_restore_options_init()", "trestle_plan_options.reserved[1]
 *         is not zero"; also for a layout no struct has (`size` smaller
 *         than a size_t, `first_size` above `size`, ...).
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_options_read(void *dst, const void *src, size_t size, size_t first_size,
                                     size_t reserved, const char *name, trestle_error *err);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_H */
