/*
 * options.c - the one rule by which every function reads a caller's
 * size-versioned options struct (include/trestle.h, "Options" in the
 * overview): how small, how large and which bytes may be nonzero. The
 * engine reads its structs through TRESTLE__OPTIONS_READ (options.h);
 * libtrestle_mpi, which may use only the public API, calls the same code
 * as trestle_options_read(). The rule is the Linux kernel's for extensible
 * structs (copy_struct_from_user: openat2, clone3, sched_setattr).
 */
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "trestle.h"

/* No options struct comes near this: a larger `size` is garbage (a struct
 * not filled by its _init()), and reading that far past it could fault. */
#define OPTIONS_MAX_SIZE 4096

/* The first nonzero byte of p in [from, to), or SIZE_MAX. */
static size_t first_nonzero(const unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (p[i])
            return i;
    return SIZE_MAX;
}

int trestle_options_read(void *dst, const void *src, size_t size, size_t first_size,
                         size_t reserved, const char *name, trestle_error *err)
{
    const unsigned char *s = src;
    size_t given, at;

    if (!dst || !name || size < sizeof(size_t) || first_size < sizeof(size_t) ||
        first_size > size || reserved < sizeof(size_t) || reserved > size ||
        (size - reserved) % sizeof(void *) != 0)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "trestle_options_read: a layout no options struct has "
                                     "(size %zu, first_size %zu, reserved at %zu)",
                                     size, first_size, reserved);
    if (!src)
        return TRESTLE_OK;
    memcpy(&given, s, sizeof given);
    if (given < first_size)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "%s.size is %zu: smaller than the %zu bytes of its first "
                                     "release; fill it with %s_init()",
                                     name, given, first_size, name);
    if (given > OPTIONS_MAX_SIZE)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "%s.size is %zu: larger than any options struct (%d bytes); "
                                     "fill it with %s_init()",
                                     name, given, OPTIONS_MAX_SIZE, name);
    /* A newer caller's fields beyond ours are zero when left at their
     * defaults; anything else asks for what this library cannot do. */
    if (given > size && (at = first_nonzero(s, size, given)) != SIZE_MAX)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "%s.size is %zu and its byte %zu is not zero: an option "
                                     "newer than the %zu bytes this library (trestle %s) knows",
                                     name, given, at, size, trestle_version_string());
    /* Only the reserved bytes `given` covers: the rest are not the caller's. */
    at = first_nonzero(s, reserved, given < size ? given : size);
    if (at != SIZE_MAX)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%s.reserved[%zu] is not zero",
                                     name, (at - reserved) / sizeof(void *));
    memcpy(dst, src, given < size ? given : size);
    memcpy(dst, &size, sizeof size);
    return TRESTLE_OK;
}
