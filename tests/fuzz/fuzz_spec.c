/*
 * fuzz_spec.c - libFuzzer target for TensorFlow's shape_and_slices text
 * ("4 6 0,2:-"), the string every restore op carries. A spec that parses
 * is formatted back, parsed again (the round trip must agree), encoded
 * as an ordered-code slice key and intersected with a fixed slice, which
 * are the uses the planner and the writer make of it.
 * Any crash, leak or sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    trestle__spec sp, again;
    trestle_error err;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (trestle__spec_parse(text, &sp, &err) == TRESTLE_OK && !sp.whole) {
        char shown[4096];
        trestle__slice_format(&sp.slice, shown, sizeof shown);
        uint8_t key[1024];
        size_t need = trestle__slice_key("k", 1, &sp.slice, key, sizeof key);
        if (need == 0)
            abort();
        trestle__slice other, inter;
        trestle__slice_full(&other, sp.rank);
        if (sp.rank > 0)
            other.start[0] = 1, other.length[0] = sp.shape[0] > 1 ? sp.shape[0] - 1 : 1;
        (void)trestle__slice_intersect(&sp.slice, &other, sp.shape, &inter);
        /* The text form of a parsed slice parses to the same slice. */
        char spec2[8192];
        size_t n = 0;
        for (int d = 0; d < sp.rank && n < sizeof spec2; d++)
            n += (size_t)snprintf(spec2 + n, sizeof spec2 - n, "%lld ", (long long)sp.shape[d]);
        if (n < sizeof spec2) {
            snprintf(spec2 + n, sizeof spec2 - n, "%s", shown);
            if (trestle__spec_parse(spec2, &again, &err) != TRESTLE_OK ||
                again.rank != sp.rank ||
                memcmp(again.slice.start, sp.slice.start, (size_t)sp.rank * 8) != 0)
                abort();
        }
    }
    free(text);
    return 0;
}
