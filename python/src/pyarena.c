/*
 * pyarena.c - the objects restored tensors live in: _trestle.Arena (an
 * adopted trestle_arena) and _trestle.Buffer (bytes inside one, through
 * the buffer protocol on the host), and the numpy views host_arrays()
 * (pyplan.c) makes over a Buffer of a whole arena.
 */
#include <stdbool.h>
#include <string.h>

#include "pytrestle.h"

/*
 * numpy's C API, where the build found numpy's headers (TRESTLE_NUMPY_API:
 * python/CMakeLists.txt): an array made by PyArray_NewFromDescr() costs a
 * third of an ndarray(shape, dtype, buffer, offset) call, which parses its
 * arguments and asks the Buffer for a view each time (issue 24: 100,000
 * arrays). The table is imported at the first host_arrays(), not at module
 * import (numpy stays a lazy import), and when the running numpy's ABI is
 * not the one built against (numpy 2 under numpy 1 headers, say) the
 * import fails and every array is made by ndarray() calls as before. The
 * arrays are the same either way: C-contiguous views whose base is the
 * Buffer of the whole arena.
 */
#ifdef TRESTLE_NUMPY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#endif

/* ---- Arena ---- */

static void arena_dealloc(PyObject *self)
{
    pyt_arena *ar = (pyt_arena *)self;
    if (ar->weakrefs)
        PyObject_ClearWeakRefs(self);
    trestle_arena_free(ar->a);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *arena_info(PyObject *self, PyObject *unused)
{
    trestle_arena_info in;
    trestle_arena_get_info(((pyt_arena *)self)->a, &in);
    return Py_BuildValue("{s:K,s:K,s:i}", "base", (unsigned long long)(uintptr_t)in.base, "bytes",
                         (unsigned long long)in.bytes, "device", in.device);
}

static PyMethodDef arena_methods[] = {
    { "info", arena_info, METH_NOARGS, "info() -> {'base', 'bytes', 'device'}." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_arena_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Arena",
    .tp_doc = "Engine memory adopted from a restored plan; freed when the object dies.",
    .tp_basicsize = sizeof(pyt_arena),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = arena_dealloc,
    .tp_weaklistoffset = offsetof(pyt_arena, weakrefs),
    .tp_methods = arena_methods,
};

/* ---- Buffer ---- */

static void buffer_dealloc(PyObject *self)
{
    Py_XDECREF(((pyt_buffer *)self)->arena);
    Py_TYPE(self)->tp_free(self);
}

static int buffer_get(PyObject *self, Py_buffer *view, int flags)
{
    pyt_buffer *b = (pyt_buffer *)self;
    if (b->device >= 0) {
        PyErr_SetString(PyExc_BufferError, "the tensor is in CUDA device memory; use DLPack");
        return -1;
    }
    return PyBuffer_FillInfo(view, self, b->ptr, b->len, b->readonly, flags);
}

static PyBufferProcs buffer_procs = { .bf_getbuffer = buffer_get };

static PyObject *buffer_get_arena(PyObject *self, void *c)
{
    PyObject *a = ((pyt_buffer *)self)->arena;
    Py_INCREF(a);
    return a;
}

static PyObject *buffer_get_nbytes(PyObject *self, void *c)
{
    return PyLong_FromSsize_t(((pyt_buffer *)self)->len);
}

static PyObject *buffer_get_device(PyObject *self, void *c)
{
    return PyLong_FromLong(((pyt_buffer *)self)->device);
}

static PyObject *buffer_get_readonly(PyObject *self, void *c)
{
    return PyBool_FromLong(((pyt_buffer *)self)->readonly);
}

static PyObject *buffer_get_address(PyObject *self, void *c)
{
    return PyLong_FromVoidPtr(((pyt_buffer *)self)->ptr);
}

static PyGetSetDef buffer_getset[] = {
    { "arena", buffer_get_arena, NULL, "the Arena that owns the bytes", NULL },
    { "nbytes", buffer_get_nbytes, NULL, "size in bytes", NULL },
    { "device", buffer_get_device, NULL, "CUDA ordinal, or -1 for host memory", NULL },
    { "address", buffer_get_address, NULL, "address of the first byte", NULL },
    { "readonly", buffer_get_readonly, NULL, "True for a trestle server's resident memory", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef buffer_methods[] = {
    { "dlpack", pyt_buffer_dlpack, METH_VARARGS,
      "dlpack(code, bits, shape) -> 'dltensor' capsule over these bytes." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Buffer",
    .tp_doc = "One restored tensor's bytes inside an Arena (buffer protocol when on the host).",
    .tp_basicsize = sizeof(pyt_buffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = buffer_dealloc,
    .tp_as_buffer = &buffer_procs,
    .tp_getset = buffer_getset,
    .tp_methods = buffer_methods,
};

PyObject *pyt_new_buffer_of(PyObject *owner, void *ptr, Py_ssize_t len, int device, int readonly)
{
    pyt_buffer *b = PyObject_New(pyt_buffer, &pyt_buffer_type);
    if (!b)
        return NULL;
    Py_INCREF(owner);
    b->arena = owner;
    b->ptr = ptr;
    b->len = len;
    b->device = device;
    b->readonly = readonly;
    return (PyObject *)b;
}

/* A Buffer of `len` bytes at `ptr` in arena `ar` (which it holds). */
PyObject *pyt_new_buffer(pyt_arena *ar, void *ptr, Py_ssize_t len, int device)
{
    return pyt_new_buffer_of((PyObject *)ar, ptr, len, device, 0);
}

/* 1 once numpy's C API table is imported, -1 when it cannot be (or a test
 * turned it off: pyt_numpy_api), 0 before the first try. Under the GIL. */
static int numpy_api;

int pyt_numpy_api(int want)
{
#ifdef TRESTLE_NUMPY_API
    if (want == 0)
        numpy_api = -1;
    else if (want == 1 || numpy_api == 0) {
        numpy_api = _import_array() == 0 ? 1 : -1;
        if (numpy_api < 0)
            PyErr_Clear(); /* the ndarray() calls work with any numpy */
    }
    return numpy_api > 0;
#else
    (void)want;
    return 0;
#endif
}

/* numpy's ndarray type, looked up once per call of host_arrays(). */
PyObject *pyt_ndarray_type(void)
{
    PyObject *np = PyImport_ImportModule("numpy");
    PyObject *t = np ? PyObject_GetAttrString(np, "ndarray") : NULL;
    Py_XDECREF(np);
    return t;
}

/* A tuple of the n dims at d. */
static PyObject *shape_tuple(const int64_t *d, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *v = PyLong_FromLongLong(d[i]);
        if (!v) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* The shape tuple of `dims`: the cached one when the op before had the
 * same shape (an expert's matrices, a layer's norms), else a new one that
 * becomes the cached one. A new reference. */
static PyObject *shape_of(pyt_shape_cache *c, const int64_t *dims, int rank)
{
    bool same = c->tuple && c->rank == rank && rank <= PYT_SHAPE_CACHE_RANK;
    for (int i = 0; same && i < rank; i++)
        same = c->dims[i] == dims[i];
    if (same) {
        Py_INCREF(c->tuple);
        return c->tuple;
    }
    PyObject *t = shape_tuple(dims, rank);
    if (t && rank <= PYT_SHAPE_CACHE_RANK) {
        Py_XSETREF(c->tuple, (Py_INCREF(t), t));
        c->rank = rank;
        memcpy(c->dims, dims, (size_t)rank * sizeof *dims);
    }
    return t;
}

#ifdef TRESTLE_NUMPY_API
/* The array of dtype `dt` and shape `dims` (`rank` of them) at `data`,
 * inside the whole arena's Buffer `wb`, by numpy's C API: the array that
 * ndarray(shape, dt, wb, offset) makes (flags worked out by numpy, `wb` its
 * base), or NULL with an exception set. */
static PyObject *api_view(PyObject *dt, const pyt_buffer *wb, void *data, const int64_t *dims,
                          int rank)
{
    npy_intp d[NPY_MAXDIMS];
    for (int i = 0; i < rank; i++)
        d[i] = (npy_intp)dims[i];
    Py_INCREF(dt); /* PyArray_NewFromDescr takes a reference to the descriptor */
    PyObject *a = PyArray_NewFromDescr(&PyArray_Type, (PyArray_Descr *)dt, rank, d, NULL, data,
                                       wb->readonly ? NPY_ARRAY_CARRAY_RO : NPY_ARRAY_CARRAY,
                                       NULL);
    if (!a)
        return NULL;
    PyArray_UpdateFlags((PyArrayObject *)a, NPY_ARRAY_UPDATE_ALL);
    Py_INCREF(wb);
    if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)wb) < 0) { /* steals wb */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}
#endif

/* ndarray(shape, dt, whole, offset), its arguments put in a tuple
 * directly: at 100,000 tensors, building them from a format string was a
 * visible share of restore() (issue 24). */
static PyObject *view_of(PyObject *ndarray, PyObject *shape, PyObject *dt, PyObject *whole,
                         uint64_t offset)
{
    PyObject *off = PyLong_FromUnsignedLongLong(offset), *args = off ? PyTuple_New(4) : NULL;
    if (!args) {
        Py_XDECREF(off);
        return NULL;
    }
    Py_INCREF(shape);
    Py_INCREF(dt);
    Py_INCREF(whole);
    PyTuple_SET_ITEM(args, 0, shape);
    PyTuple_SET_ITEM(args, 1, dt);
    PyTuple_SET_ITEM(args, 2, whole);
    PyTuple_SET_ITEM(args, 3, off);
    PyObject *value = PyObject_Call(ndarray, args, NULL);
    Py_DECREF(args);
    return value;
}

/* One op's value in host_arrays()'s result: its array over `whole`, or
 * None with (name, out_dtype, shape, Buffer) appended to `left`. */
int pyt_put_view(PyObject *ndarray, const pyt_buffer *wb, PyObject *whole, PyObject *result,
                 PyObject *left, const view_spec *v, const char *name_bytes,
                 const int64_t *dims, pyt_shape_cache *shapes)
{
    PyObject *name = pyt_str(name_bytes), *shape = NULL, *value = NULL;
    int rc = -1;
    if (!name)
        goto out;
#ifdef TRESTLE_NUMPY_API
    if (v->dt && v->bytes > 0 && v->rank <= NPY_MAXDIMS && numpy_api > 0) {
        value = api_view(v->dt, wb, v->data, dims, v->rank);
        goto put;
    }
#endif
    if (!(shape = shape_of(shapes, dims, v->rank)))
        goto out;
    if (!v->dt) {
        /* Without an arena every op has zero bytes: no Buffer then. */
        PyObject *b = wb ? pyt_new_buffer((pyt_arena *)wb->arena, v->data, (Py_ssize_t)v->bytes, -1)
                         : (Py_INCREF(Py_None), Py_None);
        PyObject *item = b ? Py_BuildValue("(OiON)", name, v->out_dtype, shape, b) : NULL;
        if (item && PyList_Append(left, item) == 0)
            value = (Py_INCREF(Py_None), Py_None);
        Py_XDECREF(item);
    } else if (v->bytes == 0) {
        /* A zero-byte tensor views nothing: numpy makes it as np.empty does. */
        value = PyObject_CallFunctionObjArgs(ndarray, shape, v->dt, NULL);
    } else {
        value = view_of(ndarray, shape, v->dt, whole,
                        (uint64_t)((uint8_t *)v->data - (uint8_t *)wb->ptr));
    }
#ifdef TRESTLE_NUMPY_API
put:
#endif
    rc = value ? PyDict_SetItem(result, name, value) : -1;
out:
    Py_XDECREF(value);
    Py_XDECREF(shape);
    Py_XDECREF(name);
    return rc;
}
