/*
 * graph_wire.c - the protobuf wire walker of graph_wire.h: tags, varints
 * and lengths, each checked against the bytes left before it is used.
 */
#include "graph_wire.h"

#include "cursor.h"

int trestle__pb_next(tr_pb_iter *it, tr_pb_field *f, size_t *bad, const char **why)
{
    if (it->pos >= it->msg.len)
        return 0;
    trestle__cursor c = tr_cursor(it->msg.p + it->pos, it->msg.len - it->pos);
    size_t at = it->msg.offset + it->pos;
    uint64_t tag;
    *bad = at;
    if (!tr_get_varint64(&c, &tag)) {
        *why = "field tag runs past the end of its message";
        return -1;
    }
    if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff) {
        *why = "field number out of range";
        return -1;
    }
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->offset = at;
    f->value = 0;
    f->body.p = NULL;
    f->body.len = 0;
    switch (f->wire) {
    case TR_WIRE_VARINT:
        if (!tr_get_varint64(&c, &f->value)) {
            *why = "varint runs past the end of its message";
            return -1;
        }
        break;
    case TR_WIRE_FIXED64:
    case TR_WIRE_FIXED32: {
        const uint8_t *skip;
        if (!tr_get_bytes(&c, f->wire == TR_WIRE_FIXED64 ? 8 : 4, &skip)) {
            *why = "fixed-size field runs past the end of its message";
            return -1;
        }
        break;
    }
    case TR_WIRE_LEN: {
        uint64_t len;
        *bad = at + (size_t)(c.p - (it->msg.p + it->pos));
        if (!tr_get_varint64(&c, &len)) {
            *why = "length runs past the end of its message";
            return -1;
        }
        if (len > tr_left(&c)) {
            *why = "length-delimited field is longer than the bytes left in its message";
            return -1;
        }
        f->body.p = c.p;
        f->body.len = (size_t)len;
        f->body.offset = it->msg.offset + (size_t)(c.p - it->msg.p);
        c.p += len;
        break;
    }
    default:
        *why = "unsupported wire type (groups are not used by TensorFlow's messages)";
        return -1;
    }
    it->pos = (size_t)(c.p - it->msg.p);
    return 1;
}

int trestle__pb_find(tr_pb_span msg, uint32_t num, tr_pb_span *out, size_t *bad,
                     const char **why)
{
    tr_pb_walk w = tr_pb_walk_begin(msg);
    int found = 0, rc;
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.num == num && w.f.wire == TR_WIRE_LEN) {
            *out = w.f.body;
            found = 1;
        }
    }
    *bad = w.bad;
    *why = w.why;
    return rc < 0 ? -1 : found;
}
