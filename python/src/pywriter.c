/*
 * pywriter.c - _trestle.Writer: libtrestle's bundle writer (TensorFlow-
 * identical bytes), so Python tests and tools can make checkpoints of any
 * dtype, strings and partitioned variables included, without TensorFlow.
 */
#include "pytrestle.h"

typedef struct pyt_writer {
    PyObject_HEAD
    trestle_writer *w;
} pyt_writer;

static int writer_init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "prefix", "num_shards", NULL };
    pyt_writer *wr = (pyt_writer *)self;
    PyObject *prefix;
    int shards = 1;
    trestle_writer_options opt;
    trestle_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|i", kwlist, PyUnicode_FSConverter, &prefix,
                                     &shards))
        return -1;
    trestle_writer_options_init(&opt);
    opt.num_shards = shards;
    trestle_writer_free(wr->w);
    int rc = trestle_writer_create(PyBytes_AS_STRING(prefix), &opt, &wr->w, &err);
    Py_DECREF(prefix);
    if (rc != TRESTLE_OK) {
        pyt_raise(rc, &err);
        return -1;
    }
    return 0;
}

static void writer_dealloc(PyObject *self)
{
    trestle_writer_free(((pyt_writer *)self)->w);
    Py_TYPE(self)->tp_free(self);
}

/* dims from a tuple of ints; returns rank or -1. */
static int parse_dims(PyObject *shape, int64_t *dims, int cap)
{
    PyObject *fast = PySequence_Fast(shape, "shape must be a sequence of ints");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > cap) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "rank too large");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        dims[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (dims[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return (int)n;
}

/* add(name, dtype, shape, data, shard=0, spec=None): a whole tensor, or one
 * slice of a partitioned one when `spec` ("d0 d1 start,len:-") is given. */
static PyObject *writer_add(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "name", "dtype", "shape", "data", "shard", "spec", NULL };
    pyt_writer *wr = (pyt_writer *)self;
    const char *name, *spec = NULL;
    int dtype, shard = 0, rc;
    PyObject *shape;
    Py_buffer data;
    int64_t dims[64];
    trestle_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "siOy*|iz", kwlist, &name, &dtype, &shape,
                                     &data, &shard, &spec))
        return NULL;
    int rank = parse_dims(shape, dims, 64);
    if (rank < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (spec)
        rc = trestle_writer_add_slice(wr->w, name, dtype, spec, data.buf, (uint64_t)data.len,
                                      shard, &err);
    else
        rc = trestle_writer_add(wr->w, name, dtype, rank, dims, data.buf, (uint64_t)data.len,
                                shard, &err);
    PyBuffer_Release(&data);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, &err);
    Py_RETURN_NONE;
}

/* add_strings(name, shape, [bytes...], shard=0) */
static PyObject *writer_add_strings(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "name", "shape", "values", "shard", NULL };
    pyt_writer *wr = (pyt_writer *)self;
    const char *name;
    int shard = 0;
    PyObject *shape, *values;
    int64_t dims[64];
    trestle_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sOO|i", kwlist, &name, &shape, &values,
                                     &shard))
        return NULL;
    int rank = parse_dims(shape, dims, 64);
    PyObject *fast = rank < 0 ? NULL : PySequence_Fast(values, "values must be a list of bytes");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    trestle_bytes *elems = PyMem_Calloc(n ? (size_t)n : 1, sizeof *elems);
    if (!elems) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyBytes_Check(b)) {
            PyMem_Free(elems);
            Py_DECREF(fast);
            PyErr_SetString(PyExc_TypeError, "values must be bytes");
            return NULL;
        }
        elems[i].data = (const uint8_t *)PyBytes_AS_STRING(b);
        elems[i].len = (uint64_t)PyBytes_GET_SIZE(b);
    }
    int rc = trestle_writer_add_strings(wr->w, name, rank, dims, elems, shard, &err);
    PyMem_Free(elems);
    Py_DECREF(fast);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, &err);
    Py_RETURN_NONE;
}

static PyObject *writer_finish(PyObject *self, PyObject *unused)
{
    trestle_error err;
    int rc = trestle_writer_finish(((pyt_writer *)self)->w, &err);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, &err);
    Py_RETURN_NONE;
}

static PyMethodDef writer_methods[] = {
    { "add", (PyCFunction)(void (*)(void))writer_add, METH_VARARGS | METH_KEYWORDS,
      "add(name, dtype, shape, data, shard=0, spec=None)" },
    { "add_strings", (PyCFunction)(void (*)(void))writer_add_strings,
      METH_VARARGS | METH_KEYWORDS, "add_strings(name, shape, values, shard=0)" },
    { "finish", writer_finish, METH_NOARGS, "finish(): write the index." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_writer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Writer",
    .tp_doc = "Writer(prefix, num_shards=1): a TensorFlow bundle writer (trestle_writer).",
    .tp_basicsize = sizeof(pyt_writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = writer_init,
    .tp_dealloc = writer_dealloc,
    .tp_methods = writer_methods,
};
