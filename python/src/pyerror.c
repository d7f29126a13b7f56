/*
 * pyerror.c - what every file of the extension shares: engine strings as
 * Python str, and engine errors as Python exceptions.
 *
 * Errors: every failed engine call is turned into an exception by
 * trestle.errors.from_engine(), so the classes (KeyError for missing keys,
 * and so on) and their fields are decided in one Python place, not here.
 */
#include "pytrestle.h"

PyObject *pyt_str(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", (Py_ssize_t)strlen(s ? s : ""), "surrogateescape");
}

PyObject *pyt_raise(int rc, const trestle_error *err)
{
    PyObject *mod = PyImport_ImportModule("trestle.errors");
    if (!mod)
        return NULL;
    /* `err` may be NULL or blank when a call failed before filling it. */
    trestle_error blank;
    if (!err) {
        trestle_error_clear(&blank);
        err = &blank;
    }
    PyObject *exc = PyObject_CallMethod(mod, "from_engine", "isNNNLLi", rc, trestle_code_name(rc),
                                        pyt_str(err->message[0] ? err->message
                                                                : trestle_strerror(rc)),
                                        pyt_str(err->key), pyt_str(err->path),
                                        (long long)err->offset, (long long)err->length,
                                        err->sys_errno);
    Py_DECREF(mod);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}
