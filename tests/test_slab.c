/*
 * test_slab.c - the allocators behind per-tensor state (issue 24): the
 * slab (engine/common/slab.c) hands out aligned, stable pieces of growing
 * blocks and frees them at once; bulk arrays (engine/common/bulk.c) are
 * zeroed, keep their contents when they grow or shrink across the size
 * where they become mappings, and free from either kind.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "slab.h"

Test(slab, hands_out_aligned_pieces_that_never_move)
{
    trestle__slab s = { 0 };
    enum { N = 20000 };
    char **keys = calloc(N, sizeof *keys);
    int64_t **dims = calloc(N, sizeof *dims);
    for (size_t i = 0; i < N; i++) {
        char key[64];
        int n = snprintf(key, sizeof key, "model/layers.%zu/mlp/kernel", i);
        keys[i] = trestle__slab_strndup(&s, key, (size_t)n);
        dims[i] = trestle__slab_alloc(&s, 2 * sizeof(int64_t), sizeof(int64_t));
        cr_assert(keys[i] && dims[i]);
        cr_assert_eq((uintptr_t)dims[i] % sizeof(int64_t), 0);
        dims[i][0] = (int64_t)i;
        dims[i][1] = -(int64_t)i;
    }
    void *big = trestle__slab_alloc(&s, 5 << 20, 16); /* larger than any block */
    cr_assert_not_null(big);
    cr_assert_eq((uintptr_t)big % 16, 0);
    memset(big, 0xab, 5 << 20);
    cr_assert_not_null(trestle__slab_alloc(&s, 0, 1), "0 bytes is a valid pointer");
    for (size_t i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof key, "model/layers.%zu/mlp/kernel", i);
        cr_assert_str_eq(keys[i], key);
        cr_assert_eq(dims[i][0], (int64_t)i);
        cr_assert_eq(dims[i][1], -(int64_t)i);
    }
    trestle__slab_free(&s);
    cr_assert_null(s.head);
    trestle__slab_free(&s); /* twice, and NULL, are fine */
    trestle__slab_free(NULL);
    free(keys);
    free(dims);
}

/* Two slabs filled apart (the two halves of an index, ckpt_scan.c) become
 * one: every piece of either stays where it was and readable, the adopting
 * slab keeps serving from its newest block, and one free frees them all
 * (leaks show under the ASan and valgrind runs). */
Test(slab, adopt_keeps_both_slabs_pieces_in_place)
{
    trestle__slab a = { 0 }, b = { 0 }, empty = { 0 };
    enum { N = 5000 };
    char *pa[N], *pb[N];
    for (int i = 0; i < N; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "a/%d", i);
        pa[i] = trestle__slab_strndup(&a, key, (size_t)n);
        n = snprintf(key, sizeof key, "b/%d", i);
        pb[i] = trestle__slab_strndup(&b, key, (size_t)n);
        cr_assert(pa[i] && pb[i]);
    }
    uint8_t *next = a.next;
    trestle__slab_adopt(&a, &empty); /* nothing to move */
    cr_assert_eq(a.next, next);
    trestle__slab_adopt(&a, &b);
    cr_assert_null(b.head, "the adopted slab is left empty");
    cr_assert_eq(a.next, next, "the newest block still serves");
    char *more = trestle__slab_strndup(&a, "more", 4);
    cr_assert_str_eq(more, "more");
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "a/%d", i);
        cr_assert_str_eq(pa[i], key);
        snprintf(key, sizeof key, "b/%d", i);
        cr_assert_str_eq(pb[i], key);
    }
    trestle__slab_adopt(&empty, &a); /* into an empty slab: it becomes it */
    cr_assert_null(a.head);
    cr_assert_str_eq(pb[N - 1], "b/4999");
    trestle__slab_free(&empty);
    trestle__slab_free(&b); /* empty: nothing */
}

Test(bulk, arrays_are_zeroed_and_keep_their_contents_across_sizes)
{
    static const size_t sizes[] = { 1, 1000, (size_t)7 << 20, (size_t)9 << 20, (size_t)40 << 20,
                                    (size_t)3 << 20, 10 };
    uint32_t *a = trestle__bulk_calloc(sizes[0], sizeof *a);
    cr_assert_not_null(a);
    size_t have = sizes[0];
    a[0] = 0;
    for (size_t k = 1; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint32_t *b = trestle__bulk_realloc(a, sizes[k], sizeof *b);
        cr_assert_not_null(b, "to %zu elements", sizes[k]);
        size_t keep = have < sizes[k] ? have : sizes[k];
        for (size_t i = 0; i < keep; i += 4093)
            cr_assert_eq(b[i], (uint32_t)i * 2654435761u, "element %zu after resizing to %zu", i,
                         sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++)
            b[i] = (uint32_t)i * 2654435761u;
        a = b;
        have = sizes[k];
    }
    trestle__bulk_free(a);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *z = trestle__bulk_calloc(sizes[k], 4);
        cr_assert_not_null(z);
        for (size_t i = 0; i < sizes[k] * 4; i += 511)
            cr_assert_eq(z[i], 0);
        trestle__bulk_free(z);
    }
    /* A zeroed array of a huge page or more starts on a huge-page boundary
     * (its 64-byte header first), so that it can be made of huge pages:
     * 512 times fewer page faults than 4 KiB pages (issue 24). */
    for (size_t mib = 2; mib <= 9; mib += 7) {
        uint8_t *z = trestle__bulk_calloc(mib << 20, 1);
        cr_assert_not_null(z);
        cr_assert_eq(((uintptr_t)z - 64) % ((size_t)2 << 20), 0, "%zu MiB at %p", mib, (void *)z);
        z[(mib << 20) - 1] = 1;
        uint8_t *g = trestle__bulk_realloc(z, (mib << 20) * 2, 1); /* moves its pages */
        cr_assert_not_null(g);
        cr_assert_eq(g[(mib << 20) - 1], 1);
        trestle__bulk_free(g);
    }
    cr_assert_null(trestle__bulk_calloc(SIZE_MAX / 2, 4), "an overflowing size");
    trestle__bulk_free(NULL);
}
