/*
 * test_ckpt_scan.c - an index decoded on two threads (engine/format/
 * ckpt_scan.c, issue 24) is the index decoded on one: the same entries,
 * and for a damaged index the same error (code, message, key, path,
 * offset), the one first in file order, whichever half holds it. One
 * processor (this process's affinity) makes trestle_open walk the index
 * in one piece; two make it cut the index in halves.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "testutil.h"
#include "trestle.h"

#define TENSORS 16000 /* an index of ~1 MB: four data blocks of 256 KiB */

static char *dir, *prefix, *index_path;
static cpu_set_t given; /* the processors this process was given */

static void make(void)
{
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(sched_getaffinity(0, sizeof given, &given), 0);
    dir = tu_mkdtemp();
    cr_assert_geq(asprintf(&prefix, "%s/m", dir), 0);
    cr_assert_geq(asprintf(&index_path, "%s.index", prefix), 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), 0, "%s", err.message);
    for (int i = 0; i < TENSORS; i++) {
        char key[96];
        int64_t dims[2] = { 1 + i % 3, 2 };
        float v[6] = { (float)i };
        snprintf(key, sizeof key, "model/layers.%05d/%s/kernel", i, i % 2 ? "mlp" : "attention");
        cr_assert_eq(trestle_writer_add(w, key, TRESTLE_DT_FLOAT, 2, dims, v,
                                        (size_t)dims[0] * 2 * sizeof *v, 0, &err),
                     0, "%s", err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), 0, "%s", err.message);
    trestle_writer_free(w);
}

static void clean(void)
{
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    free(index_path);
}

/* Run on `cpus` processors (1 or 2). */
static void use_cpus(int cpus)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0, n = 0; c < CPU_SETSIZE && n < cpus; c++)
        if (CPU_ISSET(c, &given)) {
            CPU_SET(c, &set);
            n++;
        }
    cr_assert_eq(sched_setaffinity(0, sizeof set, &set), 0);
}

static int open_on(int cpus, int verify, trestle_checkpoint **c, trestle_error *err)
{
    trestle_open_options o;
    trestle_open_options_init(&o);
    o.verify_index = verify;
    use_cpus(cpus);
    return trestle_open(prefix, &o, c, err);
}

Test(ckpt_scan, two_threads_decode_the_entries_one_does, .init = make, .fini = clean)
{
    if (CPU_COUNT(&given) < 2)
        cr_skip_test("one processor: the index is never cut");
    trestle_checkpoint *one, *two;
    trestle_error err;
    cr_assert_eq(open_on(1, 1, &one, &err), 0, "%s", err.message);
    cr_assert_eq(open_on(2, 1, &two, &err), 0, "%s", err.message);
    cr_assert_eq(one->num_entries, TENSORS);
    cr_assert_eq(two->num_entries, one->num_entries);
    cr_assert_eq(two->num_listed, one->num_listed);
    cr_assert_eq(two->data_bytes, one->data_bytes);
    for (size_t i = 0; i < one->num_entries; i++) {
        const trestle__entry *a = &one->entries[i], *b = &two->entries[i];
        cr_assert(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0,
                  "entry %zu: %s against %s", i, a->key, b->key);
        cr_assert(a->offset == b->offset && a->size == b->size && a->crc_masked == b->crc_masked &&
                  a->index_offset == b->index_offset && a->dtype == b->dtype &&
                  a->rank == b->rank && a->dims[0] == b->dims[0] && a->dims[1] == b->dims[1],
                  "entry %zu (%s) differs", i, a->key);
    }
    size_t at;
    cr_assert_eq(trestle_tensor_find(two, "model/layers.15999/mlp/kernel", &at, &err), 0);
    cr_assert_eq(at, TENSORS - 1);
    trestle_close(one);
    trestle_close(two);
}

/* The error of an open on `cpus` processors (TRESTLE_OK: none). */
static int error_on(int cpus, int verify, trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    trestle_error_clear(err);
    int rc = open_on(cpus, verify, &c, err);
    trestle_close(c);
    return rc;
}

/*
 * Damage at seeded places, one byte or two (one in each half of the file
 * most of the time), with and without the block CRC checks that would
 * otherwise catch it first: every open on two processors fails as the one
 * on one does, or succeeds as it does.
 */
Test(ckpt_scan, a_damaged_index_fails_alike_on_one_thread_and_two, .init = make, .fini = clean)
{
    if (CPU_COUNT(&given) < 2)
        cr_skip_test("one processor: the index is never cut");
    size_t len;
    uint8_t *good = tu_read_file(index_path, &len);
    uint64_t rng = 24;
    int failed = 0;
    cr_assert_gt(len, (size_t)600 << 10, "%zu bytes: the index would not be cut", len);
    for (int round = 0; round < 120; round++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, good, len);
        size_t flips = 1 + round % 2;
        for (size_t f = 0; f < flips; f++) {
            /* Mostly entries; now and then the index block or footer. */
            size_t pos = round % 10 == 9 ? len - 1 - tu_rng_next(&rng) % 800
                                         : tu_rng_next(&rng) % (len - 800);
            bad[pos] ^= (uint8_t)(1u << (tu_rng_next(&rng) % 8));
        }
        cr_assert_eq(tu_write_file(index_path, bad, len), 0);
        free(bad);
        for (int verify = 0; verify <= 1; verify++) {
            trestle_error e1, e2;
            int rc1 = error_on(1, verify, &e1), rc2 = error_on(2, verify, &e2);
            cr_assert_eq(rc2, rc1, "round %d verify %d: %d (%s) against %d (%s)", round, verify,
                         rc2, e2.message, rc1, e1.message);
            failed += rc1 != 0;
            if (rc1 == 0)
                continue;
            cr_assert_str_eq(e2.message, e1.message, "round %d verify %d", round, verify);
            cr_assert_str_eq(e2.key, e1.key, "round %d verify %d", round, verify);
            cr_assert_str_eq(e2.path, e1.path, "round %d verify %d", round, verify);
            cr_assert_eq(e2.offset, e1.offset, "round %d verify %d", round, verify);
        }
    }
    cr_assert_gt(failed, 100, "only %d opens failed: the damage missed", failed);
    cr_assert_eq(tu_write_file(index_path, good, len), 0);
    free(good);
}

static uint64_t varint(const uint8_t *p, size_t *at)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t b = p[(*at)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
}

/*
 * The two blocks either side of the cut broken (their CRC trailers): the
 * second half fails at once, the first only at its last block, and the
 * error is the first half's, as on one thread.
 */
Test(ckpt_scan, the_first_halfs_error_wins_however_late_it_comes, .init = make, .fini = clean)
{
    if (CPU_COUNT(&given) < 2)
        cr_skip_test("one processor: the index is never cut");
    size_t len, at = 0;
    uint8_t *f = tu_read_file(index_path, &len);
    /* Footer: metaindex and index handles; index entries: 0, key length,
     * value length, key, then the data block's handle. */
    const uint8_t *footer = f + len - 48;
    varint(footer, &at);
    varint(footer, &at);
    uint64_t ioff = varint(footer, &at), ilen = varint(footer, &at);
    const uint8_t *ib = f + ioff;
    uint32_t restarts;
    memcpy(&restarts, ib + ilen - 4, 4);
    size_t limit = ilen - 4 - 4 * (size_t)restarts, n = 0;
    uint64_t off[64], blen[64], total = 0, before = 0;
    for (at = 0; at < limit && n < 64; n++) {
        varint(ib, &at);
        uint64_t klen = varint(ib, &at);
        varint(ib, &at);
        at += klen;
        off[n] = varint(ib, &at);
        blen[n] = varint(ib, &at);
        total += blen[n];
    }
    cr_assert_geq(n, 3, "%zu data blocks", n);
    size_t k = 1;
    for (; k < n; k++) {
        before += blen[k - 1];
        if (before * 2 >= total)
            break;
    }
    cr_assert(k >= 2 && k < n, "cut at %zu of %zu", k, n);
    f[off[k - 1] + blen[k - 1] + 1] ^= 0x40; /* the CRCs after each block's type byte */
    f[off[k] + blen[k] + 1] ^= 0x40;
    cr_assert_eq(tu_write_file(index_path, f, len), 0);
    trestle_error e1, e2;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(error_on(1, 1, &e1), TRESTLE_E_CORRUPT);
        cr_assert_eq(error_on(2, 1, &e2), TRESTLE_E_CORRUPT);
        cr_assert_str_eq(e2.message, e1.message);
        cr_assert_eq(e2.offset, e1.offset);
        cr_assert_eq(e1.offset, (int64_t)off[k - 1]);
    }
    free(f);
}
