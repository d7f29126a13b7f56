/*
 * test_restore_layout.c - how a restore splits a batch into reads
 * (trestle__restore_segments, engine/restore/restore_layout.c), on a
 * batch laid out by hand: runs of small extents with host destinations are
 * read whole and in place, one scattering read per run (issue 24), broken
 * at a large extent, at an extent that goes through staging, past the
 * iovecs one readv takes and past a run's byte bound; large extents are
 * read alone in chunks, the rest through staging; and between large
 * extents a batch still reads every byte it read before (gaps included).
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
    trestle_checkpoint ckpt; /* a local one: no store */
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
    l->x.ckpt = &l->ckpt;
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
                   size_t span, bool scatter, const char *what)
{
    cr_assert_eq(s->offset, offset, "%s: offset", what);
    cr_assert_eq(s->length, length, "%s: length", what);
    cr_assert_eq(s->extent, extent, "%s: extent", what);
    cr_assert_eq(s->span, span, "%s: span", what);
    cr_assert_eq(s->scatter, scatter, "%s: scatter", what);
}

Test(restore_layout, reads_runs_of_small_extents_in_place_and_breaks_them_where_it_must)
{
    layout *l = layout_new(8 << 20);
    add(l, 0, 1000, true);             /* 0 \                                 */
    add(l, 0, 3000, true);             /* 1  } one scattering read            */
    add(l, 100, 2000, true);           /* 2 /  (a 100-byte gap: the sink)     */
    add(l, 0, 1 << 20, true);          /* 3: large, alone                     */
    add(l, 0, 500, true);              /* 4 \ a run again                     */
    add(l, 0, 0, true);                /* 5  (empty: in the span, nothing)    */
    add(l, 0, 700, true);              /* 6 /                                 */
    add(l, 0, 300, false);             /* 7 \ staging                         */
    add(l, 10, 400, false);            /* 8 /                                 */
    add(l, 20, 600, true);             /* 9 \ from where staging ended: the   */
    add(l, (64 << 10) + 1, 800, true); /* 10 / gaps (one past the sink) too   */
    const trestle__extent *x = l->ext;
    uint64_t end3 = x[3].offset + x[3].size, end8 = x[8].offset + x[8].size;
    trestle__seg s[16];
    size_t n = segments(l, s, 16);
    cr_assert_eq(n, 5);
    expect(&s[0], 0, 6100, 0, 3, true, "small 0-2");
    expect(&s[1], 6100, 1 << 20, 3, 1, false, "large 3");
    expect(&s[2], end3, 1200, 4, 3, true, "small 4-6");
    expect(&s[3], end3 + 1200, 710, TRESTLE__NO_EXTENT, 1, false, "staging 7-8");
    expect(&s[4], end8, x[10].offset + 800 - end8, 9, 2, true, "small 9-10, gaps included");
    free(l);
}

/* A checkpoint in an object store (engine/remote/) is read into staging
 * buffers only: its reader fills buffers and takes no iovecs, so no run of
 * small extents is scattered even when they have host destinations (an
 * extent of a whole chunk may have one: remote extents of a chunk or more
 * are read alone). */
Test(restore_layout, a_remote_checkpoint_scatters_no_run)
{
    layout *l = layout_new(4096);
    l->ckpt.store = (struct trestle__store *)l->dest; /* any non-NULL store */
    add(l, 0, 4096, true); /* 0: exactly a chunk, its own read */
    add(l, 0, 1000, false);
    add(l, 0, 3000, false);
    trestle__seg s[8];
    size_t n = segments(l, s, 8);
    cr_assert_eq(n, 2);
    expect(&s[0], 0, 4096, 0, 1, false, "a chunk alone, not scattered");
    expect(&s[1], 4096, 4000, TRESTLE__NO_EXTENT, 1, false, "staging 1-2");
    l->ckpt.store = NULL; /* the same batch from a file scatters extent 0 */
    n = segments(l, s, 8);
    cr_assert_eq(n, 2);
    expect(&s[0], 0, 4096, 0, 1, true, "a run of one, scattered");
    free(l);
}

/* What a batch reads is what it read before runs went in place: between
 * large extents, every byte from the first extent to the last. */
Test(restore_layout, reads_every_byte_a_batch_read_through_staging)
{
    layout *l = layout_new(64 << 10);
    add(l, 0, 100, false);           /* 0: staging               */
    add(l, 70000, 500, true);        /* 1: small, after a gap larger than a chunk */
    add(l, 30, 200, false);          /* 2: staging again         */
    add(l, 5, 300, true);            /* 3: small                 */
    trestle__seg s[16];
    size_t n = segments(l, s, 16);
    uint64_t covered = s[0].offset, total = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(s[i].offset, covered, "read %zu starts where read %zu ended", i, i - 1);
        cr_assert_leq(s[i].length, 64 << 10, "read %zu is one chunk at most", i);
        covered += s[i].length;
        total += s[i].length;
    }
    cr_assert_eq(s[0].offset, 0);
    cr_assert_eq(total, l->at, "every byte from the first extent to the last");
    cr_assert_eq(n, 6);
    expect(&s[0], 0, 100, TRESTLE__NO_EXTENT, 1, false, "staging 0");
    expect(&s[1], 100, 64 << 10, TRESTLE__NO_EXTENT, 1, false, "the gap, through staging");
    expect(&s[2], 100 + (64 << 10), 70000 - (64 << 10), TRESTLE__NO_EXTENT, 1, false,
           "the rest of the gap");
    expect(&s[3], 70100, 500, 1, 1, true, "small 1");
    expect(&s[4], 70600, 230, TRESTLE__NO_EXTENT, 1, false, "staging 2");
    expect(&s[5], 70830, 305, 3, 1, true, "small 3 with the gap before it");
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
    cr_assert_eq(s[1].offset, s[0].offset + s[0].length, "the next run reads the gap before it");
    for (size_t i = 0; i < n; i++)
        cr_assert(s[i].scatter);
    free(l);
}

Test(restore_layout, a_run_holds_at_most_a_chunk_and_the_iovecs_of_one_read)
{
    layout *l = layout_new(64 << 10);
    for (size_t i = 0; i < 100; i++)
        add(l, 0, 1000, true); /* 100,000 bytes: two chunks of 64 KiB */
    add(l, 0, 100 << 10, true); /* small for DEST_READ_MIN, but more than a chunk: alone */
    trestle__seg s[8];
    size_t n = segments(l, s, 8);
    cr_assert_eq(n, 4);
    expect(&s[0], 0, 65000, 0, 65, true, "first run");
    expect(&s[1], 65000, 35000, 65, 35, true, "second run");
    expect(&s[2], 100000, 64 << 10, 100, 1, false, "large, chunk 1");
    expect(&s[3], 100000 + (64 << 10), 36 << 10, 100, 1, false, "large, chunk 2");
    free(l);

    /* Destinations apart: one iovec each, 1,024 a read. */
    l = layout_new(8 << 20);
    for (size_t i = 0; i < 3000; i++)
        add(l, 0, 1000, true); /* 3,000,000 bytes */
    n = segments(l, s, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(s[0].span, TRESTLE__READ_MAX_IOV);
    cr_assert_eq(s[1].span, TRESTLE__READ_MAX_IOV);
    cr_assert_eq(s[2].span, 3000 - 2 * TRESTLE__READ_MAX_IOV);
    free(l);

    /* Destinations end to end (engine memory in file order): their iovecs
     * join, and a run is bounded by the chunk. */
    l = layout_new(1 << 20);
    uint8_t *mem = malloc(3000 * 1024);
    for (size_t i = 0; i < 3000; i++) {
        add(l, 0, 1024, true);
        l->st[i].dest = mem + i * 1024;
    }
    n = segments(l, s, 8);
    cr_assert_eq(n, 3, "%zu reads", n);
    cr_assert_eq(s[0].span, 1024, "a chunk of 1 MiB");
    cr_assert_eq(s[0].length, 1 << 20);
    cr_assert_eq(s[2].span, 3000 - 2048);
    free(mem);
    free(l);
}
