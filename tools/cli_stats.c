/*
 * cli_stats.c - min, max, mean and NaN count of one tensor, for
 * `trestle inspect --stats`.
 *
 * Min and max are tracked as element indices, not doubles, so that they
 * print exactly as the element itself would (an int64 beyond 2^53, a
 * bfloat16), while the mean is accumulated in double over the non-NaN
 * elements. Everything is formatted before the tensor's bytes are freed.
 */
#include <math.h>
#include <string.h>

#include "cli.h"

static void format_extreme(int dtype, const void *buf, int64_t at, cli_stats *out, int is_min)
{
    for (int style = 0; style < 2; style++) {
        char *dst = is_min ? out->min[style] : out->max[style];
        if (at < 0) {
            snprintf(dst, CLI_STAT_TEXT, "%s", style == CLI_STYLE_JSON ? "null" : "nan");
        } else if (dtype == TRESTLE_DT_BOOL && style == CLI_STYLE_JSON) {
            /* JSON statistics stay numbers, so that tools can compare them. */
            snprintf(dst, CLI_STAT_TEXT, "%d", cli_element_double(dtype, buf, (uint64_t)at) != 0);
        } else if (cli_format_element(dtype, buf, (uint64_t)at, (cli_style)style, dst,
                                      CLI_STAT_TEXT) != 0) {
            snprintf(dst, CLI_STAT_TEXT, "%s", style == CLI_STYLE_JSON ? "null" : "?");
        }
    }
}

static void format_mean(int dtype, double mean, cli_stats *out)
{
    if (dtype == TRESTLE_DT_DOUBLE)
        cli_format_double(mean, out->mean[CLI_STYLE_PYTHON], CLI_STAT_TEXT);
    else
        /* A float32-precision mean is all that the elements can support. */
        cli_format_float((float)mean, out->mean[CLI_STYLE_PYTHON], CLI_STAT_TEXT);
    if (isfinite(mean))
        snprintf(out->mean[CLI_STYLE_JSON], CLI_STAT_TEXT, "%s", out->mean[CLI_STYLE_PYTHON]);
    else
        snprintf(out->mean[CLI_STYLE_JSON], CLI_STAT_TEXT, "null");
}

void cli_stats_compute(int dtype, const void *buf, uint64_t n, cli_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!cli_dtype_is_real(dtype))
        return;
    out->valid = 1;
    out->count = n;

    double lo = 0, hi = 0, sum = 0;
    int64_t argmin = -1, argmax = -1;
    uint64_t counted = 0;
    for (uint64_t i = 0; i < n; i++) {
        double v = cli_element_double(dtype, buf, i);
        if (isnan(v)) {
            out->nans++;
            continue;
        }
        if (argmin < 0 || v < lo) {
            lo = v;
            argmin = (int64_t)i;
        }
        if (argmax < 0 || v > hi) {
            hi = v;
            argmax = (int64_t)i;
        }
        sum += v;
        counted++;
    }
    format_extreme(dtype, buf, argmin, out, 1);
    format_extreme(dtype, buf, argmax, out, 0);
    format_mean(dtype, counted ? sum / (double)counted : NAN, out);
}
