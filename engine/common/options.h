/*
 * options.h - reading a caller's options struct by the one rule of
 * engine/common/options.c (include/trestle.h, "Options"), and the size of
 * each struct's first release, below which a `size` is refused.
 */
#ifndef TRESTLE_OPTIONS_H
#define TRESTLE_OPTIONS_H

#include <stddef.h>

#include "trestle.h"

/*
 * The size of each struct's first release. Every field added since took a
 * reserved slot (the tests pin the LP64 sizes), so each is still today's
 * sizeof. A field added after the reserved slots run out goes at the end,
 * and the constant then becomes offsetof(type, that field): the size the
 * releases before it passed. libtrestle_mpi passes the same for
 * trestle_restore_options (engine/group/group_mpi.c): change both together.
 * trestle_graph_options' constant is the graph layer's (engine/graph/graph.h).
 */
#define TRESTLE__OPEN_OPTIONS_FIRST_SIZE sizeof(trestle_open_options)       /* 0.1 */
#define TRESTLE__WRITER_OPTIONS_FIRST_SIZE sizeof(trestle_writer_options)   /* 0.1 */
#define TRESTLE__PLAN_OPTIONS_FIRST_SIZE sizeof(trestle_plan_options)       /* 0.1 */
#define TRESTLE__RESTORE_OPTIONS_FIRST_SIZE sizeof(trestle_restore_options) /* 0.1 */
#define TRESTLE__CONVERT_OPTIONS_FIRST_SIZE sizeof(trestle_convert_options) /* 0.1 */

/* The rule reads reserved fields as the `void *reserved[]` that ends each struct. */
#define TRESTLE__ENDS_IN_RESERVED(type)                                                   \
    _Static_assert(offsetof(type, reserved) + sizeof(((type *)0)->reserved) == sizeof(type), \
                   #type " must end in its reserved array")
TRESTLE__ENDS_IN_RESERVED(trestle_open_options);
TRESTLE__ENDS_IN_RESERVED(trestle_writer_options);
TRESTLE__ENDS_IN_RESERVED(trestle_plan_options);
TRESTLE__ENDS_IN_RESERVED(trestle_restore_options);
TRESTLE__ENDS_IN_RESERVED(trestle_convert_options);

/*
 * Copy the caller's options `src` (a `const type *`, or NULL for the
 * defaults) over `dst`, a `type *` that holds the defaults (from
 * type_init()), by the rule: TRESTLE_OK, or TRESTLE_E_INVALID_ARG with a
 * message that names the struct and the field, `dst` then untouched. The
 * conditionals only make the compiler check both pointers' types.
 */
#define TRESTLE__OPTIONS_READ(type, dst, src, first_size, err)                              \
    trestle_options_read(1 ? (dst) : (type *)0, 1 ? (src) : (const type *)0, sizeof(type),  \
                         (first_size), offsetof(type, reserved), #type, (err))

#endif /* TRESTLE_OPTIONS_H */
