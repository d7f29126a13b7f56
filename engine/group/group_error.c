/*
 * group_error.c - the one error formatter of libtrestle_mpi, beneath the
 * group's other files. libtrestle_mpi links only libtrestle's public API,
 * so it cannot use the engine's own (engine/common/error.c).
 */
#include <stdarg.h>
#include <stdio.h>

#include "group.h"

int trestle__group_error(trestle_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        trestle_error_clear(err);
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}
