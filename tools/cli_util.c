/*
 * cli_util.c - the small things every command needs: error and usage
 * messages in one format ("trestle: ..." on stderr), getopt glue, opening
 * a checkpoint, human sizes and strict number parsing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- errors ---- */

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("trestle: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(const trestle_error *err)
{
    if (err && err->message[0])
        cli_error("%s", err->message);
    else
        cli_error("%s", trestle_strerror(err ? err->code : TRESTLE_E_INVALID_ARG));
    return CLI_EXIT_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "trestle: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'trestle %s --help' for more information.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char **argv, int c)
{
    /*
     * glibc's getopt leaves optopt = the short option's letter (0 for an
     * unknown long option, the option's value for a long one missing its
     * argument) and has advanced optind past a long option's word.
     */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    int is_long = strncmp(word, "--", 2) == 0;
    if (c == ':') {
        if (is_long || optopt <= ' ' || optopt > '~')
            return cli_usage(cmd, "option '%s' needs a value", word);
        return cli_usage(cmd, "option '-%c' needs a value", optopt);
    }
    if (optopt > ' ' && optopt <= '~')
        return cli_usage(cmd, "unknown option '-%c'", optopt);
    return cli_usage(cmd, "unknown option '%s'", word);
}

void cli_getopt_reset(void)
{
    /* glibc: optind = 0 re-initialises getopt fully (argument permutation too). */
    optind = 0;
    opterr = 0;
}

/* Said here, below the graph commands, so that cli_open needs nothing of them. */
int cli_open_regular(const char *path, int extra_flags)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | extra_flags);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : ENXIO;
        return -1;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Length of the UTF-8 sequence at p (1-4) and its code point, or 0 when
 * the bytes are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF). */
static int utf8_seq(const unsigned char *p, unsigned *cp)
{
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n <= 1) {
        *cp = c;
        return n;
    }
    unsigned v = c & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

size_t cli_escape_into(char *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t at = 0;
    while (*p) {
        /* Printable ASCII, nearly every byte of a key, is itself: a run of
         * it goes in one copy. */
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x7F && *p != '\\')
            p++;
        memcpy(out + at, run, (size_t)(p - run));
        at += (size_t)(p - run);
        if (!*p)
            break;
        unsigned cp;
        int n = utf8_seq(p, &cp);
        const char *short_form = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp == '\r' ? "\\r"
                               : cp == 0x1B ? "\\e" : cp == '\\' ? "\\\\" : NULL;
        if (n == 0) {
            at += (size_t)sprintf(out + at, "\\x%02x", *p);
            p++;
            continue;
        }
        if (n == 1 && short_form) {
            memcpy(out + at, short_form, 2);
            at += 2;
        } else if (n == 1 && (cp < 0x20 || cp == 0x7F)) {
            at += (size_t)sprintf(out + at, "\\x%02x", cp);
        } else if ((cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
                   (cp >= 0x2066 && cp <= 0x2069)) {
            at += (size_t)sprintf(out + at, "\\u%04x", cp);
        } else {
            memcpy(out + at, p, (size_t)n);
            at += (size_t)n;
        }
        p += n;
    }
    out[at] = '\0';
    return at;
}

char *cli_escape_text(const char *s)
{
    char *out = malloc(CLI_ESCAPED_MAX(strlen(s ? s : "")));
    if (out)
        cli_escape_into(out, s);
    return out;
}

void cli_graph_hint(const char *given)
{
    char path[4200];
    trestle_url_redact(given, path, sizeof path);
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".meta") == 0)
        cli_error("%s is a graph, not a checkpoint; its checkpoint is the prefix %.*s: "
                  "'trestle restore %.*s --graph %s' restores what the graph asks for",
                  path, (int)(n - 5), path, (int)(n - 5), path, path);
    else if (n >= 14 && strcmp(path + n - 14, "saved_model.pb") == 0)
        cli_error("%s is a SavedModel graph, not a checkpoint; its checkpoint is usually "
                  "%.*svariables/variables", path, (int)(n - 14), path);
}

const char *cli_reader_name(int reader)
{
    return reader == TRESTLE_READER_IO_URING ? "io_uring"
           : reader == TRESTLE_READER_PREAD  ? "pread"
           : reader == TRESTLE_READER_REMOTE ? "remote"
                                             : "auto";
}

/* ---- sizes ---- */

void cli_human_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    if (bytes < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    /* Switch unit before printing would round up to "1024.00". */
    while (v >= 1023.995 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.2f %s", v, units[u]);
}

void cli_rate(uint64_t bytes, double seconds, char *buf, size_t cap)
{
    if (seconds <= 0 || bytes == 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.2f GB/s", (double)bytes / seconds / 1e9);
}

int cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I'))
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return -1;
    v *= mul;
    if (v > 18446744073709549568.0) /* largest double below 2^64 */
        return -1;
    uint64_t r = (uint64_t)llround(v);
    /* "1.5" bytes is a typo, not half a byte. */
    if ((double)r != v && mul == 1)
        return -1;
    *out = r;
    return 0;
}

int cli_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || end == s || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- shapes ---- */

size_t cli_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof tmp;
    do
        tmp[--n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    memcpy(out, tmp + n, sizeof tmp - n);
    out[sizeof tmp - n] = '\0';
    return sizeof tmp - n;
}

size_t cli_fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return cli_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + cli_fmt_u64(out + 1, 0 - (uint64_t)v); /* INT64_MIN too */
}

void cli_shape_format(int rank, const int64_t *dims, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return;
    }
    buf[n++] = '[';
    for (int d = 0; d < rank; d++) {
        char num[32];
        size_t comma = d > 0; /* "," before every size but the first */
        num[0] = ',';
        size_t len = comma + cli_fmt_i64(num + comma, dims[d]);
        /* Each append leaves room for "...]" and the NUL, so a cut always fits. */
        if (n + len + 5 > cap) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(buf + n, num, len);
        n += len;
    }
    buf[n++] = ']';
    buf[n] = '\0';
}

static int varint_len(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint64_t cli_scalar_string_len(uint64_t stored)
{
    /* stored = varint(L) + 4-byte length checksum + L: solve for L. */
    if (stored < 5)
        return 0;
    uint64_t s = stored - 4;
    for (int v = 1; v <= 10 && (uint64_t)v <= s; v++)
        if (varint_len(s - (uint64_t)v) == v)
            return s - (uint64_t)v;
    return 0;
}

uint64_t cli_read_size(const trestle_tensor_info *t)
{
    size_t es = trestle_dtype_size(t->dtype);
    if (t->kind == TRESTLE_TENSOR_PARTITIONED && es)
        return (uint64_t)t->num_elements * es;
    return t->size;
}
