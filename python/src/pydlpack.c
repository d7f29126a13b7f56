/*
 * pydlpack.c - DLPack export of a Buffer: a "dltensor" PyCapsule that
 * torch.from_dlpack, numpy.from_dlpack, CuPy, JAX and others take without
 * copying, on the host or on a CUDA device.
 *
 * The structs below are DLPack's (dlpack.h, v0.8, the unversioned
 * DLManagedTensor every consumer accepts), spelled out here because they
 * are an ABI: fixed layout, and no package to depend on for four structs.
 * The managed tensor holds a reference to the Buffer (and so to its
 * Arena); the consumer's call of `deleter` drops it.
 */
#include "pytrestle.h"

typedef struct { int32_t device_type; int32_t device_id; } DLDevice;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;       /* in elements */
    uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

enum { DL_CPU = 1, DL_CUDA = 2 };   /* kDLCPU, kDLCUDA */

/* One allocation: the managed tensor, then shape and strides. */
typedef struct managed {
    DLManagedTensor mt;
    int64_t dims[];         /* ndim shape entries, then ndim strides */
} managed;

static void managed_delete(DLManagedTensor *self)
{
    /* Consumers may call this from any thread, with or without the GIL. */
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF((PyObject *)self->manager_ctx);
    PyGILState_Release(g);
    PyMem_RawFree(self);
}

/* A capsule never consumed (still named "dltensor") frees its tensor. */
static void capsule_destruct(PyObject *cap)
{
    if (!PyCapsule_IsValid(cap, "dltensor"))
        return;   /* consumed: renamed "used_dltensor", the consumer owns it */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    DLManagedTensor *mt = PyCapsule_GetPointer(cap, "dltensor");
    if (mt && mt->deleter)
        mt->deleter(mt);
    PyErr_Restore(type, value, tb);
}

PyObject *pyt_buffer_dlpack(PyObject *self, PyObject *args)
{
    pyt_buffer *b = (pyt_buffer *)self;
    int code, bits;
    PyObject *shape;
    if (!PyArg_ParseTuple(args, "iiO!", &code, &bits, &PyTuple_Type, &shape))
        return NULL;
    Py_ssize_t ndim = PyTuple_GET_SIZE(shape);
    if (code < 0 || code > 255 || bits <= 0 || bits > 255 || ndim > 255) {
        PyErr_SetString(PyExc_ValueError, "bad DLPack dtype or rank");
        return NULL;
    }
    managed *m = PyMem_RawCalloc(1, sizeof *m + 2 * (size_t)(ndim ? ndim : 1) * sizeof(int64_t));
    if (!m)
        return PyErr_NoMemory();
    int64_t *dims = m->dims, *strides = m->dims + ndim, elems = 1;
    for (Py_ssize_t d = 0; d < ndim; d++) {
        dims[d] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, d));
        if (dims[d] < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "negative dimension");
            PyMem_RawFree(m);
            return NULL;
        }
    }
    for (Py_ssize_t d = ndim; d-- > 0;) {
        strides[d] = elems;
        elems *= dims[d];
    }
    if ((uint64_t)elems * (uint64_t)bits > (uint64_t)b->len * 8) {
        PyMem_RawFree(m);
        PyErr_SetString(PyExc_ValueError, "shape is larger than the buffer");
        return NULL;
    }
    m->mt.dl_tensor = (DLTensor){
        .data = b->ptr,
        .device = { b->device >= 0 ? DL_CUDA : DL_CPU, b->device >= 0 ? b->device : 0 },
        .ndim = (int32_t)ndim,
        .dtype = { (uint8_t)code, (uint8_t)bits, 1 },
        .shape = dims,
        .strides = strides,
        .byte_offset = 0,
    };
    Py_INCREF(self);
    m->mt.manager_ctx = self;
    m->mt.deleter = managed_delete;
    PyObject *cap = PyCapsule_New(&m->mt, "dltensor", capsule_destruct);
    if (!cap) {
        Py_DECREF(self);
        PyMem_RawFree(m);
    }
    return cap;
}
