/*
 * test_restore_layout.c - how a restore splits a batch into reads
 * (trestle__restore_segments, engine/restore/restore_layout.c), on a
 * batch laid out by hand: runs of small extents with host destinations are
 * read whole and in place, one scattering read per run (issue 24), broken
 * at a large extent, at an extent that goes through staging, at a gap the
 * sink cannot take, past the iovecs one readv takes and past a run's byte
 * bound; large extents are read alone in chunks, the rest through staging.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "restore.h"

#define MAX_EXT 4096

typedef struct layout {
    trestle_plan plan;
    trestle__batch batch;
    trestle__extent ext[MAX_EXT];
    trestle__ext_state st[MAX_EXT];
    trestle__restore x;
    uint64_t at;          /* file offset of the next extent */
    uint8_t dest[64];     /* any host memory: only its being set matters here */
} layout;

static layout *layout_new(uint64_t chunk)
{
    layout *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    l->plan.extents = l->ext;
    l->plan.batches = &l->batch;
    l->plan.num_batches = 1;
    l->x.plan = &l->plan;
    l->x.ext = l->st;
    l->x.chunk = chunk;
    return l;
}

/* An extent of `size` bytes after a `gap`; `in_place`: it has a host
 * destination (pick_destination would have given it one). */
static void add(layout *l, uint64_t gap, uint64_t size, bool in_place)
{
    size_t e = l->plan.num_extents++;
    cr_assert_lt(e, MAX_EXT);
    l->at += gap;
    l->ext[e] = (trestle__extent){ .offset = l->at, .size = size, .num_pieces = 1 };
    l->st[e].dest = in_place ? l->dest : NULL;
    l->at += size;
    l->batch.num_extents++;
    l->batch.length = l->at - l->batch.offset;
}

static size_t segments(layout *l, trestle__seg *out, size_t cap)
{
    size_t n = trestle__restore_segments(&l->x, 0, NULL);
    cr_assert_leq(n, cap);
    cr_assert_eq(trestle__restore_segments(&l->x, 0, out), n, "counting and filling agree");
    return n;
}

static void expect(const trestle__seg *s, uint64_t offset, uint64_t length, size_t extent,
                   size_t span, const char *what)
{
    cr_assert_eq(s->offset, offset, "%s: offset", what);
    cr_assert_eq(s->length, length, "%s: length", what);
    cr_assert_eq(s->extent, extent, "%s: extent", what);
    cr_assert_eq(s->span, span, "%s: span", what);
}

Test(restore_layout, reads_runs_of_small_extents_in_place_and_breaks_them_where_it_must)
{
    layout *l = layout_new(8 << 20);
    add(l, 0, 1000, true);          /* 0 \                          */
    add(l, 0, 3000, true);          /* 1  } one scattering read      */
    add(l, 100, 2000, true);        /* 2 /  (a 100-byte gap: sink)   */
    add(l, 0, 1 << 20, true);       /* 3: large, alone               */
    add(l, 0, 500, true);           /* 4 \ a run again               */
    add(l, 0, 0, true);             /* 5  (empty: in the span)       */
    add(l, 0, 700, true);           /* 6 /                           */
    add(l, 0, 300, false);          /* 7 \ staging                   */
    add(l, 10, 400, false);         /* 8 /                           */
    add(l, 0, 600, true);           /* 9: a run of one               */
    add(l, (64 << 10) + 1, 800, true); /* 10: past the sink: a new run */
    trestle__seg s[16];
    size_t n = segments(l, s, 16);
    cr_assert_eq(n, 6);
    expect(&s[0], 0, 6100, 0, 3, "small 0-2");
    expect(&s[1], 6100, 1 << 20, 3, 1, "large 3");
    expect(&s[2], 6100 + (1 << 20), 1200, 4, 3, "small 4-6");
    expect(&s[3], 6100 + (1 << 20) + 1200, 710, TRESTLE__NO_EXTENT, 1, "staging 7-8");
    expect(&s[4], 6100 + (1 << 20) + 1910, 600, 9, 1, "small 9");
    expect(&s[5], 6100 + (1 << 20) + 2510 + (64 << 10) + 1, 800, 10, 1, "small 10");
    free(l);
}

Test(restore_layout, a_run_takes_at_most_the_iovecs_one_read_takes)
{
    /* Every extent after a gap: two iovecs each. */
    layout *l = layout_new(8 << 20);
    size_t per = TRESTLE__READ_MAX_IOV / 2, total = per * 2 + 10;
    for (size_t i = 0; i < total; i++)
        add(l, i ? 8 : 0, 56, true);
    trestle__seg s[8];
    size_t n = segments(l, s, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(s[0].extent, 0);
    cr_assert_eq(s[0].span, per, "a gap and an extent each: %zu extents", per);
    cr_assert_eq(s[1].extent, per);
    cr_assert_eq(s[1].span, per);
    cr_assert_eq(s[2].extent, 2 * per);
    cr_assert_eq(s[2].span, 10);
    cr_assert_eq(s[1].offset, s[0].offset + s[0].length + 8, "the gap between runs is skipped");
    free(l);
}

Test(restore_layout, a_run_holds_at_most_a_chunk_and_the_run_bound)
{
    layout *l = layout_new(64 << 10);
    for (size_t i = 0; i < 100; i++)
        add(l, 0, 1000, true); /* 100,000 bytes: two chunks of 64 KiB */
    add(l, 0, 100 << 10, true); /* small for DEST_READ_MIN, but more than a chunk: alone */
    trestle__seg s[8];
    size_t n = segments(l, s, 8);
    cr_assert_eq(n, 4);
    expect(&s[0], 0, 65000, 0, 65, "first run");
    expect(&s[1], 65000, 35000, 65, 35, "second run");
    expect(&s[2], 100000, 64 << 10, 100, 1, "large, chunk 1");
    expect(&s[3], 100000 + (64 << 10), 36 << 10, 100, 1, "large, chunk 2");
    free(l);

    l = layout_new(8 << 20);
    for (size_t i = 0; i < 3000; i++)
        add(l, 0, 1000, true); /* 3,000,000 bytes */
    n = segments(l, s, 8);
    cr_assert_geq(n, 3, "runs are bounded below a chunk");
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(s[i].length, 1 << 20);
    free(l);
}
