/*
 * pymodule.c - the module `trestle._trestle`: its functions and its types.
 * The top of the extension: it takes from every other file and gives to
 * none (pyerror.c holds what they all share).
 */
#include "pytrestle.h"

/* 1 in a TRESTLE_CUDA_MOCK test build: "devices" are tests/cudamock, whose
 * memory the host cannot touch, so the tests check device restores without
 * reading the bytes back. */
#ifdef TRESTLE_CUDA_MOCK
#define CUDA_MOCK 1
#else
#define CUDA_MOCK 0
#endif

/* decode_strings(buffer, n) -> list of n bytes: a DT_STRING tensor's stored
 * bytes (as read or restored) split into its elements. */
static PyObject *decode_strings(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long n;
    if (!PyArg_ParseTuple(args, "y*K", &view, &n))
        return NULL;
    PyObject *list = NULL;
    trestle_bytes *elems = PyMem_Calloc(n ? (size_t)n : 1, sizeof *elems);
    trestle_error err;
    int rc;
    if (!elems) {
        PyErr_NoMemory();
        goto out;
    }
    rc = trestle_strings_decode(view.buf, (uint64_t)view.len, n, elems, &err);
    if (rc != TRESTLE_OK) {
        pyt_raise(rc, &err);
        goto out;
    }
    if (!(list = PyList_New((Py_ssize_t)n)))
        goto out;
    for (unsigned long long i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)elems[i].data,
                                                (Py_ssize_t)elems[i].len);
        if (!b) {
            Py_CLEAR(list);
            goto out;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, b);
    }
out:
    PyMem_Free(elems);
    PyBuffer_Release(&view);
    return list;
}

/* The library's lookups by code or dtype number, each one line. */
static int int_arg(PyObject *arg, int *out)
{
    long v = PyLong_AsLong(arg);
    *out = (int)v;
    return v == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *dtype_name(PyObject *self, PyObject *arg)
{
    int d;
    return int_arg(arg, &d) < 0 ? NULL : PyUnicode_FromString(trestle_dtype_name(d));
}

static PyObject *dtype_size(PyObject *self, PyObject *arg)
{
    int d;
    return int_arg(arg, &d) < 0 ? NULL : PyLong_FromSize_t(trestle_dtype_size(d));
}

static PyObject *code_name(PyObject *self, PyObject *arg)
{
    int c;
    return int_arg(arg, &c) < 0 ? NULL : PyUnicode_FromString(trestle_code_name(c));
}

static PyObject *dtype_from_name(PyObject *self, PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    return s ? PyLong_FromLong(trestle_dtype_from_name(s)) : NULL;
}

static PyObject *dtype_can_convert(PyObject *self, PyObject *args)
{
    int a, b;
    if (!PyArg_ParseTuple(args, "ii", &a, &b))
        return NULL;
    return PyBool_FromLong(trestle_dtype_can_convert(a, b));
}

/* latest_checkpoint(dir, state_name=None) -> str or None: the engine's own
 * reading of a directory's `checkpoint` state file
 * (trestle_latest_checkpoint), so Python and trestle_open() agree. None
 * when there is no state file; every other failure raises. */
static PyObject *latest_checkpoint(PyObject *self, PyObject *args)
{
    PyObject *dir_obj, *name_arg = Py_None, *name_obj = NULL, *result = NULL;
    char *latest = NULL;
    trestle_error err;
    int rc;
    if (!PyArg_ParseTuple(args, "O&|O", PyUnicode_FSConverter, &dir_obj, &name_arg))
        return NULL;
    if (name_arg != Py_None && !PyUnicode_FSConverter(name_arg, &name_obj)) {
        Py_DECREF(dir_obj);
        return NULL;
    }
    const char *dir = PyBytes_AS_STRING(dir_obj);
    const char *name = name_obj ? PyBytes_AS_STRING(name_obj) : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = trestle_latest_checkpoint(dir, name, &latest, &err);
    Py_END_ALLOW_THREADS
    if (rc != TRESTLE_OK)
        pyt_raise(rc, &err);
    else if (!latest)
        result = Py_None, Py_INCREF(Py_None);
    else
        result = PyUnicode_DecodeFSDefault(latest);
    free(latest);
    Py_DECREF(dir_obj);
    Py_XDECREF(name_obj);
    return result;
}

/* numpy_c_api(on=None) -> bool: whether host_arrays() makes its arrays
 * through numpy's C API; on=False turns it off, True tries it again (the
 * tests run the restores both ways). */
static PyObject *numpy_c_api(PyObject *self, PyObject *args)
{
    PyObject *on = Py_None;
    (void)self;
    if (!PyArg_ParseTuple(args, "|O", &on))
        return NULL;
    int want = on == Py_None ? -1 : PyObject_IsTrue(on);
    if (want == -1 && on != Py_None)
        return NULL; /* on's truth raised */
    PyObject *np = PyImport_ImportModule("numpy"); /* the table comes from numpy */
    if (!np)
        return NULL;
    Py_DECREF(np);
    return PyBool_FromLong(pyt_numpy_api(want));
}

static PyMethodDef module_methods[] = {
    { "numpy_c_api", numpy_c_api, METH_VARARGS,
      "numpy_c_api(on=None) -> bool: whether restore()'s numpy arrays are made through "
      "numpy's C API (built with numpy's headers and the running numpy's ABI); False "
      "turns it off, True tries it again." },
    { "latest_checkpoint", latest_checkpoint, METH_VARARGS,
      "latest_checkpoint(dir, state_name=None) -> str or None: the prefix the directory's "
      "checkpoint state file names (trestle_latest_checkpoint)." },
    { "decode_strings", decode_strings, METH_VARARGS,
      "decode_strings(buffer, n) -> list of bytes: split a DT_STRING tensor's stored bytes." },
    { "dtype_name", dtype_name, METH_O, "TensorFlow's C++ spelling of a DataType value." },
    { "dtype_from_name", dtype_from_name, METH_O, "DataType value of a name, 0 if unknown." },
    { "dtype_size", dtype_size, METH_O, "Bytes per element, 0 for strings and unknown." },
    { "dtype_can_convert", dtype_can_convert, METH_VARARGS,
      "dtype_can_convert(stored, target): can a restore convert on load?" },
    { "code_name", code_name, METH_O, "An error code's name, e.g. E_CRC_MISMATCH." },
    { "attach", (PyCFunction)(void (*)(void))pyt_attach, METH_VARARGS | METH_KEYWORDS,
      "attach(checkpoint, ops=None, renames=None, excludes=None, allow_missing=False, "
      "rnn_renames=False, socket=None, device=-1) -> (Attachment, [Buffer or None]) when a "
      "trestle server has the selection resident, else (None, why)." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "trestle._trestle",
    "The C extension under the trestle package: libtrestle's public API as Python objects.",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__trestle(void); /* the one exported symbol */

PyMODINIT_FUNC PyInit__trestle(void)
{
    PyTypeObject *types[] = { &pyt_checkpoint_type, &pyt_plan_type, &pyt_arena_type,
                              &pyt_buffer_type, &pyt_writer_type, &pyt_conversion_type,
                              &pyt_attachment_type };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0)
            return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *dot = strrchr(types[i]->tp_name, '.');
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, dot + 1, (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(m);
            return NULL;
        }
    }
    if (PyModule_AddStringConstant(m, "version", trestle_version_string()) < 0 ||
        PyModule_AddIntConstant(m, "have_cuda", TRESTLE_HAVE_CUDA) < 0 ||
        PyModule_AddIntConstant(m, "cuda_mock", CUDA_MOCK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
