/*
 * plan_unsupported.c - tensors a plan cannot restore because of their
 * dtype. DT_VARIANT holds serialized C++ objects (a tf.data iterator state,
 * a TensorList) that only TF's variant registry can rebuild, so trestle
 * verifies their checksums but never restores them. Planning one fails,
 * naming every such tensor at once, unless the caller excluded it or set
 * skip_unsupported: "no partial success reported as success".
 */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "plan.h"
#include "plan_names.h"

#define SHOWN 8 /* tensors named in the message; the rest are counted */

int trestle__plan_check_unsupported(const trestle_checkpoint *c, const trestle__plan_op *ops,
                                    size_t n, trestle_error *err)
{
    char names[TRESTLE_ERROR_MESSAGE_MAX] = "";
    size_t bad = 0, len = 0;
    const char *first = NULL;

    for (size_t i = 0; i < n; i++) {
        if (ops[i].skipped || ops[i].entry == TRESTLE__NOT_LISTED ||
            c->entries[ops[i].entry].dtype != TRESTLE_DT_VARIANT)
            continue;
        if (bad++ < SHOWN && len < sizeof names) {
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", bad > 1 ? ", " : "",
                                    ops[i].key);
            first = first ? first : ops[i].key;
        }
    }
    if (bad == 0)
        return TRESTLE_OK;
    char more[48] = "";
    if (bad > SHOWN)
        snprintf(more, sizeof more, " and %zu more", bad - SHOWN);
    int rc = trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, first, NULL, -1, -1,
                                "%zu tensor%s of dtype variant (opaque to trestle: serialized "
                                "objects such as a tf.data iterator state) cannot be restored: "
                                "%s%s; exclude %s or skip unsupported dtypes", bad,
                                bad == 1 ? "" : "s", names, more, bad == 1 ? "it" : "them");
    return rc;
}
