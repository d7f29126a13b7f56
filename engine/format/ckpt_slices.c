/*
 * ckpt_slices.c - partitioned tensors: once the whole index is read, find
 * the entry of each stored slice, and check that the slices tile the full
 * shape exactly. Overlaps and gaps are both refused at open: TF would
 * notice a gap only when a restore asks for the missing rows
 * ("Does not have sufficient slices"), and trestle promises that an open
 * checkpoint reads whole.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "ckpt_entry.h"
#include "ckpt_slices.h"
#include "error.h"

#define MAX_GAP_SEARCH (1u << 24) /* cells x slices examined to name a gap */

/* The sorted, distinct slice edges of dimension d, 0 and dims[d] included. */
static size_t edges(const trestle__entry *e, int d, int64_t *out)
{
    size_t n = 0;
    out[n++] = 0;
    out[n++] = e->dims[d];
    for (int k = 0; k < e->num_slices; k++) {
        int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK];
        trestle__slice_resolve(&e->slices[k], e->dims, start, length);
        out[n++] = start[d];
        out[n++] = start[d] + length[d];
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: n is small next to the index */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || out[m - 1] != out[i])
            out[m++] = out[i];
    return m;
}

/*
 * Find a box that no stored slice covers: the slice edges cut the shape
 * into cells that each lie wholly inside or outside every slice, so the
 * first cell outside all of them is a gap. False when the search would be
 * too long to be worth it (the message then gives counts only).
 */
static bool find_gap(const trestle__entry *e, trestle__slice *gap)
{
    int64_t *cut[TRESTLE_MAX_SLICE_RANK] = { 0 };
    size_t ncut[TRESTLE_MAX_SLICE_RANK], at[TRESTLE_MAX_SLICE_RANK] = { 0 };
    uint64_t cells = 1;
    bool found = false, ok = true;

    for (int d = 0; d < e->rank && ok; d++) {
        cut[d] = malloc((2 * (size_t)e->num_slices + 2) * sizeof *cut[d]);
        ok = cut[d] != NULL;
        if (ok) {
            ncut[d] = edges(e, d, cut[d]);
            ok = ncut[d] >= 2 && tr_mul_u64(cells, ncut[d] - 1, &cells);
        }
    }
    ok = ok && tr_mul_u64(cells, (uint64_t)e->num_slices, &cells) && cells <= MAX_GAP_SEARCH;
    while (ok && !found) {
        bool covered = false;
        for (int k = 0; k < e->num_slices && !covered; k++) {
            int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK];
            trestle__slice_resolve(&e->slices[k], e->dims, start, length);
            covered = true;
            for (int d = 0; d < e->rank && covered; d++)
                covered = cut[d][at[d]] >= start[d] && cut[d][at[d]] < start[d] + length[d];
        }
        if (!covered) {
            gap->rank = e->rank;
            for (int d = 0; d < e->rank; d++) {
                gap->start[d] = cut[d][at[d]];
                gap->length[d] = cut[d][at[d] + 1] - cut[d][at[d]];
            }
            found = true;
            break;
        }
        int d = e->rank - 1; /* next cell, row-major */
        while (d >= 0 && ++at[d] == ncut[d] - 1)
            at[d--] = 0;
        if (d < 0)
            break;
    }
    for (int d = 0; d < e->rank; d++)
        free(cut[d]);
    return found;
}

/* The stored slices of e, known not to overlap, must add up to the shape. */
static int check_coverage(const trestle_checkpoint *c, const trestle__entry *e,
                          trestle_error *err)
{
    uint64_t stored = 0;
    for (int k = 0; k < e->num_slices; k++) {
        int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK], n;
        trestle__slice_resolve(&e->slices[k], e->dims, start, length);
        if (tr_num_elements(e->rank, length, &n))
            stored += (uint64_t)n; /* parse_slices bounded each slice by the shape */
    }
    if (stored == (uint64_t)e->num_elements)
        return TRESTLE_OK;
    trestle__slice gap;
    char where[600] = "";
    if (find_gap(e, &gap)) {
        char spec[512];
        trestle__slice_format(&gap, spec, sizeof spec);
        snprintf(where, sizeof where, "; nothing stores %s", spec);
    }
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                              (int64_t)(uint64_t)e->index_offset, -1,
                              "partitioned tensor '%s': its stored slices cover %" PRIu64 " of "
                              "%" PRId64 " elements%s (entry at offset %" PRIu64 " of %s)",
                              e->key, stored, e->num_elements, where, (uint64_t)e->index_offset,
                              c->index_path);
}

int trestle__entries_link_slices(trestle_checkpoint *c, trestle_error *err)
{
    uint8_t stack_key[1024];

    for (size_t i = 0; c->num_partitioned && i < c->num_entries; i++) {
        trestle__entry *e = &c->entries[i];
        if (e->kind != TRESTLE__ENTRY_PARTITIONED)
            continue;
        for (int k = 0; k < e->num_slices; k++) {
            const trestle__slice *s = &e->slices[k];
            char spec[512];
            trestle__slice_format(s, spec, sizeof spec);
            for (int j = 0; j < k; j++) {
                trestle__slice inter;
                if (trestle__slice_intersect(s, &e->slices[j], e->dims, &inter))
                    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                                              (int64_t)(uint64_t)e->index_offset, -1,
                                              "partitioned tensor '%s': stored slices %d and %d "
                                              "overlap (%s)", e->key, j, k, spec);
            }
            size_t need = trestle__slice_key(e->key, e->key_len, s, stack_key, sizeof stack_key);
            uint8_t *key = need <= sizeof stack_key ? stack_key : malloc(need);
            if (!key)
                return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
            if (key != stack_key)
                trestle__slice_key(e->key, e->key_len, s, key, need);
            size_t at = trestle__checkpoint_lookup(c, (const char *)key, need);
            if (key != stack_key)
                free(key);
            if (at == (size_t)-1)
                return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                                          (int64_t)(uint64_t)e->index_offset, -1,
                                          "partitioned tensor '%s': no entry for its stored "
                                          "slice %s", e->key, spec);
            trestle__entry *part = &c->entries[at];
            int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK];
            trestle__slice_resolve(s, e->dims, start, length);
            bool same_shape = part->rank == e->rank;
            for (int d = 0; same_shape && d < e->rank; d++)
                same_shape = part->dims[d] == length[d];
            if (part->kind != TRESTLE__ENTRY_PLAIN || part->dtype != e->dtype || !same_shape)
                return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                                          (int64_t)(uint64_t)part->index_offset, -1,
                                          "partitioned tensor '%s': the entry of slice %s does "
                                          "not match it (dtype %s, rank %d)", e->key, spec,
                                          trestle_dtype_name(part->dtype), part->rank);
            part->kind = TRESTLE__ENTRY_SLICE_PART;
            e->slice_entries[k] = at;
            e->size += part->size;
        }
        int rc = check_coverage(c, e, err);
        if (rc != TRESTLE_OK)
            return rc;
    }
    /* Keys that start with a NUL byte are slice keys; unreferenced ones stay
     * hidden. Entries are in key order and no key is empty (that is the
     * header's), so they are the first entries, if any. */
    for (size_t i = 0; i < c->num_entries && c->entries[i].key_len > 0 &&
                       c->entries[i].key[0] == '\0'; i++)
        c->entries[i].kind = TRESTLE__ENTRY_SLICE_PART;
    return TRESTLE_OK;
}
