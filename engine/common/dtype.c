/*
 * dtype.c - the DataType table: TensorFlow's names and on-disk element sizes
 * (tf-checkpoint-format.md §3.4). One table, so name and size cannot drift.
 * Which dtypes convert into which on load is engine/common/convert.c's answer,
 * published here with the other dtype facts.
 */
#include <string.h>
#include <strings.h>

#include "trestle.h"
#include "trestle_kernels.h"

static const struct {
    const char *name; /* TF's DataTypeString spelling */
    unsigned size;    /* bytes per element on disk; 0 = variable or not storable */
} dtypes[TRESTLE_DT_COUNT_] = {
    [TRESTLE_DT_INVALID] = { "INVALID", 0 },
    [TRESTLE_DT_FLOAT] = { "float", 4 },
    [TRESTLE_DT_DOUBLE] = { "double", 8 },
    [TRESTLE_DT_INT32] = { "int32", 4 },
    [TRESTLE_DT_UINT8] = { "uint8", 1 },
    [TRESTLE_DT_INT16] = { "int16", 2 },
    [TRESTLE_DT_INT8] = { "int8", 1 },
    [TRESTLE_DT_STRING] = { "string", 0 },
    [TRESTLE_DT_COMPLEX64] = { "complex64", 8 },
    [TRESTLE_DT_INT64] = { "int64", 8 },
    [TRESTLE_DT_BOOL] = { "bool", 1 },
    [TRESTLE_DT_QINT8] = { "qint8", 1 },
    [TRESTLE_DT_QUINT8] = { "quint8", 1 },
    [TRESTLE_DT_QINT32] = { "qint32", 4 },
    [TRESTLE_DT_BFLOAT16] = { "bfloat16", 2 },
    [TRESTLE_DT_QINT16] = { "qint16", 2 },
    [TRESTLE_DT_QUINT16] = { "quint16", 2 },
    [TRESTLE_DT_UINT16] = { "uint16", 2 },
    [TRESTLE_DT_COMPLEX128] = { "complex128", 16 },
    [TRESTLE_DT_HALF] = { "half", 2 },
    [TRESTLE_DT_RESOURCE] = { "resource", 0 },
    [TRESTLE_DT_VARIANT] = { "variant", 0 },
    [TRESTLE_DT_UINT32] = { "uint32", 4 },
    [TRESTLE_DT_UINT64] = { "uint64", 8 },
    [TRESTLE_DT_FLOAT8_E5M2] = { "float8_e5m2", 1 },
    [TRESTLE_DT_FLOAT8_E4M3FN] = { "float8_e4m3fn", 1 },
    [TRESTLE_DT_FLOAT8_E4M3FNUZ] = { "float8_e4m3fnuz", 1 },
    [TRESTLE_DT_FLOAT8_E4M3B11FNUZ] = { "float8_e4m3b11fnuz", 1 },
    [TRESTLE_DT_FLOAT8_E5M2FNUZ] = { "float8_e5m2fnuz", 1 },
    /* int4/uint4/int2/uint2 are stored one element per byte (unpacked). */
    [TRESTLE_DT_INT4] = { "int4", 1 },
    [TRESTLE_DT_UINT4] = { "uint4", 1 },
    [TRESTLE_DT_INT2] = { "int2", 1 },
    [TRESTLE_DT_UINT2] = { "uint2", 1 },
};

const char *trestle_dtype_name(int dtype)
{
    if (dtype < 0 || dtype >= TRESTLE_DT_COUNT_)
        return "unknown";
    return dtypes[dtype].name;
}

size_t trestle_dtype_size(int dtype)
{
    if (dtype < 0 || dtype >= TRESTLE_DT_COUNT_)
        return 0;
    return dtypes[dtype].size;
}

int trestle_dtype_from_name(const char *name)
{
    static const struct { const char *alias; int dtype; } aliases[] = {
        { "float32", TRESTLE_DT_FLOAT }, { "float64", TRESTLE_DT_DOUBLE },
        { "float16", TRESTLE_DT_HALF },  { "bf16", TRESTLE_DT_BFLOAT16 },
        { "fp16", TRESTLE_DT_HALF },     { "fp32", TRESTLE_DT_FLOAT },
    };

    if (!name)
        return TRESTLE_DT_INVALID;
    if (strncasecmp(name, "DT_", 3) == 0)
        name += 3;
    for (int i = 1; i < TRESTLE_DT_COUNT_; i++)
        if (strcasecmp(name, dtypes[i].name) == 0)
            return i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0)
            return aliases[i].dtype;
    return TRESTLE_DT_INVALID;
}

int trestle_dtype_can_convert(int stored, int target)
{
    return trestle__convert_supported(target, stored);
}
