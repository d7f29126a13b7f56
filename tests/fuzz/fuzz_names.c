/*
 * fuzz_names.c - libFuzzer target for the object-graph name map: the input
 * is the bytes of a TF2 checkpoint's _CHECKPOINTABLE_OBJECT_GRAPH string (a
 * TrackableObjectGraph). Each input is written into a fresh checkpoint by
 * trestle's writer beside two plain tensors, and trestle_names_open decodes
 * it: node references out of range, duplicate keys and garbage must give a
 * map or a filled error, never a crash, leak or sanitizer report. Seeds
 * (tests/fuzz/seeds/names): a variable with an optimizer slot, and a key
 * listed twice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "trestle_graph.h"

static char prefix[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_prefix(prefix, sizeof prefix, "names");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trestle_writer *w;
    trestle_checkpoint *c;
    trestle_names *m = (trestle_names *)1;
    trestle_error err;
    float v = 0;
    if (trestle_writer_create(prefix, NULL, &w, &err) != TRESTLE_OK)
        return 0;
    trestle_bytes s = { data, size };
    int ok = trestle_writer_add(w, "k/.ATTRIBUTES/VARIABLE_VALUE", TRESTLE_DT_FLOAT, 0, NULL, &v,
                                4, 0, &err) == TRESTLE_OK &&
             trestle_writer_add(w, "dense/kernel", TRESTLE_DT_FLOAT, 0, NULL, &v, 4, 0, &err) ==
                 TRESTLE_OK &&
             trestle_writer_add_strings(w, "_CHECKPOINTABLE_OBJECT_GRAPH", 0, NULL, &s, 0, &err) ==
                 TRESTLE_OK &&
             trestle_writer_finish(w, &err) == TRESTLE_OK;
    trestle_writer_free(w);
    if (!ok || trestle_open(prefix, NULL, &c, &err) != TRESTLE_OK)
        return 0;
    if (trestle_names_open(c, &m, &err) == TRESTLE_OK) {
        size_t total = 0;
        for (size_t i = 0; i < trestle_names_count(m); i++) {
            trestle_name_info ni;
            size_t at;
            if (trestle_names_get(m, i, &ni) != TRESTLE_OK ||
                trestle_names_find(m, ni.key, &at) != TRESTLE_OK || at != i)
                abort(); /* every listed key must be found where it is listed */
            total += strlen(ni.graph_name) + strlen(ni.slot_of);
        }
        /* The rename rules derived from the map, and lookups that miss:
         * a key past every listed one, an index past the end. */
        const char *const *rules;
        size_t nrules = trestle_names_renames(m, &rules);
        for (size_t i = 0; i < nrules; i++)
            total += strlen(rules[i]);
        static const char probe[] = "\x7f\x7f not a key"; /* unless the input lists it */
        size_t at;
        trestle_name_info ni;
        int found = trestle_names_find(m, probe, &at);
        if (found == TRESTLE_OK ? trestle_names_get(m, at, &ni) != TRESTLE_OK ||
                                      strcmp(ni.key, probe) != 0
                                : found != TRESTLE_E_KEY_NOT_FOUND)
            abort();
        if (trestle_names_get(m, trestle_names_count(m), &ni) != TRESTLE_E_INVALID_ARG ||
            trestle_names_find(m, NULL, &at) != TRESTLE_E_INVALID_ARG)
            abort();
        if (total == (size_t)-1)
            abort();
        trestle_names_free(m);
    } else if (m != NULL || err.code == TRESTLE_OK) {
        abort();
    }
    trestle_close(c);
    return 0;
}
