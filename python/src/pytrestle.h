/*
 * pytrestle.h - what the files of the Python extension `trestle._trestle`
 * share.
 *
 * The extension is a client of the public API only (include/trestle.h),
 * like the CLI: it wraps an open checkpoint, a plan, an adopted arena and
 * views into it as Python objects, and leaves every Python-level decision
 * (dtypes, frameworks, argument checks) to the package in python/trestle/.
 * Objects here keep what they point into alive: a Plan holds its
 * Checkpoint, a Buffer holds its Arena, a DLPack capsule holds its Buffer.
 */
#ifndef PYTRESTLE_H
#define PYTRESTLE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>

#include "trestle.h"

/* Raise the trestle.errors exception for a failed call (`rc`, `err`);
 * always returns NULL so callers can `return pyt_raise(...)` (pyerror.c). */
PyObject *pyt_raise(int rc, const trestle_error *err);

/* A Python str from bytes the engine hands out (keys may be any bytes:
 * invalid UTF-8 round-trips through surrogateescape, as os.fsdecode does). */
PyObject *pyt_str(const char *s);

/* The Checkpoint type (pyckpt.c) and its handle, for the Plan. */
typedef struct pyt_checkpoint {
    PyObject_HEAD
    trestle_checkpoint *c;  /* open until dealloc; plans hold a reference */
} pyt_checkpoint;
extern PyTypeObject pyt_checkpoint_type;

/* Plan (pyplan.c), Arena and Buffer (pyarena.c); DLPack capsules (pydlpack.c). */
extern PyTypeObject pyt_plan_type;
extern PyTypeObject pyt_arena_type;
extern PyTypeObject pyt_buffer_type;

/* A bundle writer (pywriter.c), for tests and tools. */
extern PyTypeObject pyt_writer_type;

/* An adopted arena (pyarena.c). */
typedef struct pyt_arena {
    PyObject_HEAD
    trestle_arena *a;
    PyObject *weakrefs;     /* tests watch the arena's death with weakref */
} pyt_arena;

/* A view of `len` bytes at `ptr` inside an arena (host or device). */
typedef struct pyt_buffer {
    PyObject_HEAD
    PyObject *arena;        /* the pyt_arena that owns the bytes */
    void *ptr;              /* first byte (host or device address) */
    Py_ssize_t len;         /* bytes */
    int device;             /* CUDA ordinal, or -1 for host memory */
    int readonly;           /* 1: resident memory of a trestle server (sealed, mapped
                               read-only); the buffer protocol refuses writable views */
} pyt_buffer;

/* A Buffer of `len` bytes at `ptr` held by `owner` (an Arena, or an
 * Attachment's mapping when `readonly`: the buffer protocol then refuses
 * writable views), or NULL. */
PyObject *pyt_new_buffer_of(PyObject *owner, void *ptr, Py_ssize_t len, int device, int readonly);

/* A Buffer of `len` bytes at `ptr` in arena `ar` (which it holds), or NULL. */
PyObject *pyt_new_buffer(pyt_arena *ar, void *ptr, Py_ssize_t len, int device);

/* Whether host_arrays() makes its arrays through numpy's C API (pyarena.c):
 * want 1 imports the table (again), 0 turns the API off (tests of the
 * ndarray() calls), -1 asks, importing it on first use. */
int pyt_numpy_api(int want);

/* numpy's ndarray type (a new reference), or NULL. */
PyObject *pyt_ndarray_type(void);

/* What host_arrays() keeps of an op once the plan is gone. */
typedef struct view_spec {
    size_t name;             /* its name: from here in the names buffer, NUL-terminated */
    PyObject *dt;            /* its numpy dtype (borrowed from `dtypes`), or NULL: the caller's */
    void *data;              /* its bytes */
    uint64_t bytes;
    size_t dims;             /* its shape: rank values from here in the dims array */
    int rank;
    int out_dtype;
} view_spec;

/* The shape tuple host_arrays() made last, kept for the next op of that
 * shape (consecutive ops often share one); the caller drops `tuple`. */
#define PYT_SHAPE_CACHE_RANK 8
typedef struct pyt_shape_cache {
    PyObject *tuple;
    int rank;
    int64_t dims[PYT_SHAPE_CACHE_RANK];
} pyt_shape_cache;

/* One op's value in host_arrays()'s result (pyplan.c): its array over
 * `whole`, or None with (name, out_dtype, shape, Buffer) appended to
 * `left`. 0, or -1 with a Python error set. */
int pyt_put_view(PyObject *ndarray, const pyt_buffer *wb, PyObject *whole, PyObject *result,
                 PyObject *left, const view_spec *v, const char *name_bytes,
                 const int64_t *dims, pyt_shape_cache *shapes);

/* Strings handed to the engine, owned here until the call that copies
 * them (trestle_plan_create) returns. */
typedef struct pyt_held {
    PyObject *list;         /* bytes objects; a new list */
} pyt_held;

/* A sequence of str (or None) as a PyMem array of C strings held by `h`. */
int pyt_hold_strings(pyt_held *h, PyObject *seq, const char ***out, size_t *n);

/* ops: None (every tensor: *out NULL) or a sequence of
 * (name, shape_and_slices or None, dtype, target_dtype) as a PyMem array of
 * DEST_ALLOCATE ops whose strings `h` holds. */
int pyt_hold_ops(pyt_held *h, PyObject *seq, trestle_op **out, size_t *n);

/* One op as Plan.ops() and Attachment.ops() give it: (name, key or None,
 * skipped, dtype, out_dtype, shape, bytes); NULL with an exception set. */
PyObject *pyt_op_tuple(const trestle_plan_op_info *op);

/* buffer.dlpack(code, bits, shape): a "dltensor" capsule over the buffer. */
PyObject *pyt_buffer_dlpack(PyObject *self, PyObject *args);

/* _trestle.Attachment and _trestle.attach() (pyattach.c): resident tensors
 * of a trestle server (trestle_attach). */
extern PyTypeObject pyt_attachment_type;
PyObject *pyt_attach(PyObject *self, PyObject *args, PyObject *kwargs);

/* _trestle.Conversion (pyconvert.c): trestle_conversion_create/write. */
extern PyTypeObject pyt_conversion_type;

/* A long engine call watched from the calling thread (pywatch.c). */
typedef struct pyt_watch {
    void (*work)(void *arg);      /* the call, run on a thread of its own without the GIL */
    void (*cancel)(void *arg);    /* asks it to stop (GIL held; may run while it works) */
    int (*succeeded)(void *arg);  /* after it returned: 1 when it succeeded */
    void *arg;                    /* passed to all three */
    _Atomic uint64_t *done;       /* bytes done so far, summed by the call's ready callback */
    PyObject *progress;           /* callable(done_bytes), or Py_None */
} pyt_watch;

/*
 * Run w->work on its own thread; every 100 ms call w->progress with the
 * bytes done and check for signals. A Ctrl-C or an exception from the
 * callback calls w->cancel and, once the work has stopped, is left
 * pending: -1. Otherwise 0 (after a last progress call if the work
 * succeeded), whatever the work's own result, which the caller reads.
 */
int pyt_watch_run(const pyt_watch *w);

#endif /* PYTRESTLE_H */
