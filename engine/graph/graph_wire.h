/*
 * graph_wire.h - a field-by-field walker over protobuf wire bytes, for the
 * containers of a graph file (SavedModel, MetaGraphDef, GraphDef, function
 * library) that trestle never decodes whole.
 *
 * Walking instead of unpacking lets every error name the byte offset where
 * the bytes stop making sense, keeps memory to the file itself plus one
 * node at a time, and involves no recursion: the caller descends a fixed
 * path of known messages.
 */
#ifndef TRESTLE_GRAPH_WIRE_H
#define TRESTLE_GRAPH_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Wire types (protobuf encoding); groups (3, 4) are rejected. */
#define TR_WIRE_VARINT 0
#define TR_WIRE_FIXED64 1
#define TR_WIRE_LEN 2
#define TR_WIRE_FIXED32 5

/* A message's bytes and where they sit in the file. */
typedef struct tr_pb_span {
    const uint8_t *p;   /* first byte of the message body */
    size_t len;         /* body length */
    size_t offset;      /* file offset of p */
} tr_pb_span;

/* One field as read off the wire. */
typedef struct tr_pb_field {
    uint32_t num;       /* field number, >= 1 */
    int wire;           /* TR_WIRE_* */
    uint64_t value;     /* the varint (TR_WIRE_VARINT) */
    tr_pb_span body;    /* the payload (TR_WIRE_LEN) */
    size_t offset;      /* file offset of the field's tag */
} tr_pb_field;

/* Iteration state over one message body. */
typedef struct tr_pb_iter {
    tr_pb_span msg;     /* the body being walked */
    size_t pos;         /* next unread byte, relative to msg.p */
} tr_pb_iter;

static inline tr_pb_iter tr_pb_begin(tr_pb_span msg)
{
    tr_pb_iter it = { msg, 0 };
    return it;
}

/*
 * Read the next field of `it` into `f`. Returns 1 for a field, 0 at the end
 * of the body, -1 for malformed bytes: *bad receives the file offset of the
 * offending tag or length and *why a static reason.
 */
int trestle__pb_next(tr_pb_iter *it, tr_pb_field *f, size_t *bad, const char **why);

/* A walk over one message: the iterator, the current field and, after a
 * -1 from tr_pb_walk_next(), where and why the bytes went wrong. */
typedef struct tr_pb_walk {
    tr_pb_iter it;
    tr_pb_field f;
    size_t bad;         /* file offset of the malformed bytes */
    const char *why;    /* static reason */
} tr_pb_walk;

static inline tr_pb_walk tr_pb_walk_begin(tr_pb_span msg)
{
    tr_pb_walk w;
    w.it = tr_pb_begin(msg);
    w.bad = 0;
    w.why = "";
    return w;
}

/* trestle__pb_next() on the walk: 1 field in w->f, 0 end, -1 malformed. */
static inline int tr_pb_walk_next(tr_pb_walk *w)
{
    return trestle__pb_next(&w->it, &w->f, &w->bad, &w->why);
}

/*
 * The last occurrence of length-delimited field `num` in `msg` (protobuf's
 * rule for a singular field seen twice). Returns 1 and fills *out, 0 when
 * absent, -1 when malformed (as trestle__pb_next).
 */
int trestle__pb_find(tr_pb_span msg, uint32_t num, tr_pb_span *out, size_t *bad,
                     const char **why);

#endif /* TRESTLE_GRAPH_WIRE_H */
