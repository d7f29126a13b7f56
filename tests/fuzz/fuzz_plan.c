/*
 * fuzz_plan.c - libFuzzer target for planner input: the input is an op
 * list, one op per line, "NAME<TAB>SHAPE_AND_SLICES<TAB>DTYPE<TAB>AS" (AS:
 * a target dtype; such ops restore into engine memory, so conversion and
 * its seams run too). The first
 * line may carry rename/exclusion rules ("!rename a=b", "!exclude glob").
 * It is planned against a small partitioned checkpoint made once with
 * trestle's writer. Exercises shape_and_slices parsing, renames, the
 * missing-key report with its suggestions, slice resolution and batching.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "trestle.h"

static trestle_checkpoint *ckpt;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ckpt = fuzz_small_checkpoint("plan");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    enum { MAX_OPS = 64 };
    trestle_op ops[MAX_OPS];
    const char *renames[8], *excludes[8];
    size_t n = 0, nr = 0, ne = 0;
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < MAX_OPS;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "!rename ", 8) == 0 && nr < 8) {
            renames[nr++] = line + 8;
            continue;
        }
        if (strncmp(line, "!exclude ", 9) == 0 && ne < 8) {
            excludes[ne++] = line + 9;
            continue;
        }
        if (strcmp(line, "!missing") == 0) {
            po.allow_missing = 1;
            continue;
        }
        if (strcmp(line, "!rnn") == 0) {
            po.tf1_rnn_renames = 1;
            continue;
        }
        memset(&ops[n], 0, sizeof ops[n]);
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            ops[n].shape_and_slices = tab + 1;
            char *tab2 = strchr(tab + 1, '\t');
            if (tab2) {
                *tab2 = '\0';
                char *tab3 = strchr(tab2 + 1, '\t');
                if (tab3) {
                    *tab3 = '\0';
                    ops[n].target_dtype = trestle_dtype_from_name(tab3 + 1);
                }
                ops[n].dtype = trestle_dtype_from_name(tab2 + 1);
            }
        }
        ops[n].name = line;
        ops[n].dest_kind = ops[n].target_dtype ? TRESTLE_DEST_ALLOCATE : TRESTLE_DEST_DISCARD;
        n++;
    }
    po.renames = renames;
    po.num_renames = nr;
    po.excludes = excludes;
    po.num_excludes = ne;
    trestle_plan *p = NULL;
    trestle_error err;
    if (trestle_plan_create(ckpt, ops, n, &po, &p, &err) == TRESTLE_OK) {
        trestle_plan_stats st;
        trestle_plan_get_stats(p, &st);
        trestle_restore_options ro;
        trestle_restore_options_init(&ro);
        ro.reader = TRESTLE_READER_PREAD;
        ro.threads = 1;
        (void)trestle_restore(p, &ro, NULL, &err);
        trestle_plan_free(p);
    } else if (p != NULL) {
        abort();
    }
    free(text);
    return 0;
}
