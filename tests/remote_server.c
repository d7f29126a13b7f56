/*
 * remote_server.c - nginx on 127.0.0.1 for the remote suites
 * (remote_server.h): a config written per test, the master started in
 * the foreground ("daemon off") and stopped by its PID.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "remote_server.h"
#include "testutil.h"

#define NGINX "/usr/sbin/nginx"

/* A port of 127.0.0.1 nothing listens on now (the kernel's pick). */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    return ntohs(a.sin_port);
}

static bool accepts(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

static void make_cert(tu_nginx *n)
{
    char *cmd, *out = NULL, *err = NULL;
    cr_assert(asprintf(&cmd, "openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
                             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                             "-keyout '%s/key.pem' -out '%s/cert.pem'", n->dir, n->dir) > 0);
    int rc = tu_run(cmd, &out, &err);
    cr_assert_eq(rc, 0, "openssl failed: %s", err);
    cr_assert(asprintf(&n->ca_file, "%s/cert.pem", n->dir) > 0);
    free(cmd);
    free(out);
    free(err);
}

void tu_nginx_start(tu_nginx *n, const char *root, bool tls, const char *extra)
{
    memset(n, 0, sizeof *n);
    if (access(NGINX, X_OK) != 0)
        tu_missing("nginx is not installed (scripts/deps.sh installs nginx-light)");
    if (tls && system("command -v openssl >/dev/null 2>&1") != 0)
        tu_missing("openssl is not installed (scripts/deps.sh installs it)");
    n->root = root;
    n->dir = tu_mkdtemp();
    cr_assert(n->dir);
    n->port = free_port();
    if (tls) {
        make_cert(n);
        do
            n->tls_port = free_port();
        while (n->tls_port == n->port);
    }
    /* Workers run as the test's user, so they can read its scratch files. */
    char user[300] = "";
    if (geteuid() == 0) {
        struct passwd *pw = getpwuid(geteuid());
        struct group *gr = getgrgid(getegid());
        if (pw && gr)
            snprintf(user, sizeof user, "user %s %s;\n", pw->pw_name, gr->gr_name);
    }
    char tls_lines[1200] = "";
    if (tls)
        snprintf(tls_lines, sizeof tls_lines,
                 "    listen 127.0.0.1:%d ssl http2;\n"
                 "    ssl_certificate %s/cert.pem;\n    ssl_certificate_key %s/key.pem;\n",
                 n->tls_port, n->dir, n->dir);
    char *conf, *path;
    cr_assert(asprintf(&conf,
        "daemon off;\nmaster_process on;\nworker_processes 2;\n%s"
        "pid %s/nginx.pid;\nerror_log %s/error.log info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  default_type application/octet-stream;\n"
        "  log_format t '$request_method $uri \"$args\" $status $body_bytes_sent "
        "\"$http_range\" $server_protocol \"$http_authorization\" \"$http_x_amz_date\" "
        "\"$http_x_amz_content_sha256\" \"$http_x_amz_security_token\" \"$http_if_match\" "
        "\"$http_host\" \"$http_x_amz_checksum_mode\" $connection';\n"
        "  access_log %s/access.log t;\n"
        "  log_format times '$status $msec $request_time';\n"
        "  access_log %s/times.log times;\n"
        "  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n"
        "  fastcgi_temp_path %s/fcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n"
        "  keepalive_requests 1000000;\n"
        "  server {\n    listen 127.0.0.1:%d;\n%s    root %s;\n%s\n  }\n"
        "}\n",
        user, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->port,
        tls_lines, root, extra ? extra : "") > 0);
    cr_assert(asprintf(&path, "%s/nginx.conf", n->dir) > 0);
    cr_assert_eq(tu_write_file(path, conf, strlen(conf)), 0);

    pid_t parent = getpid();
    n->pid = fork();
    cr_assert(n->pid >= 0);
    if (n->pid == 0) {
        /* Die with the test: a crashed test must not leave a server behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(NGINX, "nginx", "-c", path, "-p", n->dir, (char *)NULL);
        _exit(127);
    }
    free(conf);
    free(path);
    for (int i = 0; i < 1000; i++) {
        int status;
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            char *elog, *text;
            cr_assert(asprintf(&elog, "%s/error.log", n->dir) > 0);
            size_t len;
            text = (char *)tu_read_file(elog, &len);
            cr_assert_fail("nginx exited at start (status %d): %.*s", status, text ? (int)len : 0,
                     text ? text : "");
        }
        if (accepts(n->port) && (!tls || accepts(n->tls_port)))
            break;
        usleep(10000);
    }
    cr_assert(accepts(n->port), "nginx did not come up on port %d", n->port);
    cr_assert(asprintf(&n->base, "http://127.0.0.1:%d", n->port) > 0);
    if (tls)
        cr_assert(asprintf(&n->tls_base, "https://127.0.0.1:%d", n->tls_port) > 0);
}

void tu_nginx_stop(tu_nginx *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
    }
    if (n->dir)
        tu_rmtree(n->dir);
    free(n->dir);
    free(n->ca_file);
    free(n->base);
    free(n->tls_base);
    n->dir = n->ca_file = n->base = n->tls_base = NULL;
}

char *tu_nginx_log(const tu_nginx *n)
{
    char *path;
    size_t len;
    cr_assert(asprintf(&path, "%s/access.log", n->dir) > 0);
    char *text = (char *)tu_read_file(path, &len);
    free(path);
    if (!text)
        return strdup("");
    char *s = realloc(text, len + 1);
    s[len] = '\0';
    return s;
}

void tu_nginx_settle(const tu_nginx *n)
{
    char *path;
    cr_assert(asprintf(&path, "%s/access.log", n->dir) > 0);
    off_t last = -1;
    int stable = 0;
    for (int i = 0; i < 300 && stable < 10; i++) {
        struct stat st;
        off_t size = stat(path, &st) == 0 ? st.st_size : 0;
        stable = size == last ? stable + 1 : 0;
        last = size;
        usleep(10000);
    }
    free(path);
}

/* Walk the lines with `needle`: their count, and the sum of their fifth field. */
static size_t scan_log(const tu_nginx *n, const char *needle, uint64_t *bytes)
{
    char *log = tu_nginx_log(n), *line = log;
    size_t count = 0;
    *bytes = 0;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strstr(line, needle)) {
            char method[16], uri[4096], args[4096];
            int status;
            unsigned long long body = 0;
            count++;
            if (sscanf(line, "%15s %4095s %4095s %d %llu", method, uri, args, &status, &body) == 5)
                *bytes += body;
        }
        line = end ? end + 1 : NULL;
    }
    free(log);
    return count;
}

size_t tu_nginx_count(const tu_nginx *n, const char *needle)
{
    uint64_t bytes;
    return scan_log(n, needle, &bytes);
}

size_t tu_nginx_connections(const tu_nginx *n, const char *needle)
{
    char *log = tu_nginx_log(n), *save = NULL;
    unsigned long seen[4096];
    size_t count = 0;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *last = strrchr(line, ' ');
        if (!strstr(line, needle) || !last)
            continue;
        unsigned long c = strtoul(last + 1, NULL, 10);
        size_t i = 0;
        while (i < count && seen[i] != c)
            i++;
        if (i == count && count < sizeof seen / sizeof seen[0])
            seen[count++] = c;
    }
    free(log);
    return count;
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

size_t tu_nginx_most_started_within(const tu_nginx *n, int status, double window_s)
{
    char *path, *text;
    size_t len, count = 0, cap = 1024, most = 0;
    cr_assert(asprintf(&path, "%s/times.log", n->dir) > 0);
    text = (char *)tu_read_file(path, &len);
    free(path);
    double *start = malloc(cap * sizeof *start);
    cr_assert(start);
    for (char *line = text, *next; text && line < text + len; line = next + 1) {
        next = memchr(line, '\n', (size_t)(text + len - line));
        if (!next)
            break;
        int st;
        double end, took;
        if (sscanf(line, "%d %lf %lf", &st, &end, &took) != 3 || st != status)
            continue;
        if (count == cap)
            cr_assert(start = realloc(start, (cap *= 2) * sizeof *start));
        /* The end is when nginx logged the request, which a limit_rate delay
         * can hold past the client's last byte; the start is exact. */
        start[count++] = end - took;
    }
    qsort(start, count, sizeof *start, double_cmp);
    for (size_t i = 0, j = 0; j < count; j++) {
        while (start[j] - start[i] > window_s)
            i++;
        if (j - i + 1 > most)
            most = j - i + 1;
    }
    free(start);
    free(text);
    return most;
}

uint64_t tu_nginx_bytes(const tu_nginx *n, const char *needle)
{
    uint64_t bytes;
    scan_log(n, needle, &bytes);
    return bytes;
}

void tu_goog_hash(const char *path, char *buf, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len;
    uint8_t *data = tu_read_file(path, &len);
    cr_assert(data, "cannot read %s", path);
    uint32_t crc = trestle__crc32c(data, len);
    free(data);
    uint8_t be[4] = { (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                      (uint8_t)crc };
    char enc[9];
    enc[0] = b64[be[0] >> 2];
    enc[1] = b64[((be[0] & 3) << 4) | (be[1] >> 4)];
    enc[2] = b64[((be[1] & 15) << 2) | (be[2] >> 6)];
    enc[3] = b64[be[2] & 63];
    enc[4] = b64[be[3] >> 2];
    enc[5] = b64[(be[3] & 3) << 4];
    enc[6] = enc[7] = '=';
    enc[8] = '\0';
    snprintf(buf, cap, "crc32c=%s", enc);
}

/* ---- the model ---- */

static void add(trestle_writer *w, const char *name, int dt, int64_t d0, int64_t d1, int shard,
                uint64_t seed)
{
    trestle_error err;
    int64_t dims[2] = { d0, d1 };
    size_t size = (size_t)(d0 * d1) * trestle_dtype_size(dt);
    uint8_t *data = malloc(size);
    tu_fill_random(data, size, seed);
    if (dt == TRESTLE_DT_BOOL)
        for (size_t i = 0; i < size; i++)
            data[i] &= 1;
    cr_assert_eq(trestle_writer_add(w, name, dt, 2, dims, data, size, shard, &err), TRESTLE_OK,
                 "%s", err.message);
    free(data);
}

char *tu_remote_model(const char *root, const char *rel)
{
    char *prefix, *cmd;
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    cr_assert(asprintf(&cmd, "mkdir -p '%s/%s'", root, rel) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    cr_assert(asprintf(&prefix, "%s/%s/ckpt", root, rel) > 0);
    trestle_writer_options_init(&wo);
    wo.num_shards = TU_REMOTE_SHARDS;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    for (int dt = 1; dt < TRESTLE_DT_COUNT_; dt++) {
        char name[48];
        if (trestle_dtype_size(dt) == 0)
            continue;
        snprintf(name, sizeof name, "dt/%s", trestle_dtype_name(dt));
        add(w, name, dt, 7, 300 + dt, dt % TU_REMOTE_SHARDS, (uint64_t)dt * 31);
    }
    add(w, "big/kernel", TRESTLE_DT_FLOAT, TU_REMOTE_BIG_ROWS, 1024, 1, 99);
    float emb[50 * 8];
    tu_fill_random(emb, sizeof emb, 5);
    static const char *parts[] = { "50 8 0,17:-", "50 8 17,17:-", "50 8 34,16:-" };
    static const int rows[] = { 17, 17, 16 }, shard[] = { 0, 2, 3 };
    for (int k = 0, at = 0; k < 3; at += rows[k], k++)
        cr_assert_eq(trestle_writer_add_slice(w, "part/emb", TRESTLE_DT_FLOAT, parts[k],
                                              emb + at * 8, (uint64_t)rows[k] * 8 * 4, shard[k],
                                              &err), TRESTLE_OK, "%s", err.message);
    trestle_bytes words[3] = { { (const uint8_t *)"read", 4 }, { (const uint8_t *)"", 0 },
                               { (const uint8_t *)"once\0\xff", 6 } };
    static const int64_t three = 3;
    cr_assert_eq(trestle_writer_add_strings(w, "vocab", 1, &three, words, 3, &err), TRESTLE_OK,
                 "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

/* Every tensor whole, then two slices. */
static trestle_op *compare_ops(const trestle_checkpoint *c, size_t *n)
{
    size_t count = trestle_tensor_count(c);
    trestle_op *ops = calloc(count + 2, sizeof *ops);
    for (size_t i = 0; i < count; i++) {
        trestle_tensor_info t;
        cr_assert_eq(trestle_tensor_get_info(c, i, &t), TRESTLE_OK);
        ops[i] = (trestle_op){ .name = t.name, .dest_kind = TRESTLE_DEST_ALLOCATE };
    }
    ops[count] = (trestle_op){ .name = "part/emb", .shape_and_slices = "50 8 10,30:-",
                               .dest_kind = TRESTLE_DEST_ALLOCATE };
    ops[count + 1] = (trestle_op){ .name = "big/kernel", .shape_and_slices = "1200 1024 100,800:-",
                                   .dest_kind = TRESTLE_DEST_ALLOCATE };
    *n = count + 2;
    return ops;
}

void tu_remote_compare(const char *local, const char *url, const trestle_open_options *oo,
                       uint64_t chunk, trestle_stats *st)
{
    trestle_error err;
    trestle_checkpoint *lc = tu_open(local, NULL), *rc;
    int code = trestle_open(url, oo, &rc, &err);
    cr_assert_eq(code, TRESTLE_OK, "opening %s: %s", url, err.message);
    size_t n, rn;
    trestle_op *ops = compare_ops(lc, &n), *rops = compare_ops(rc, &rn);
    cr_assert_eq(n, rn);
    trestle_plan *lp = tu_plan(lc, ops, n, NULL), *rp = tu_plan(rc, rops, n, NULL);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    if (chunk)
        ro.chunk_bytes = chunk;
    trestle_stats lst, rst;
    cr_assert_eq(trestle_restore(lp, &ro, &lst, &err), TRESTLE_OK, "%s", err.message);
    code = trestle_restore(rp, &ro, &rst, &err);
    cr_assert_eq(code, TRESTLE_OK, "restoring %s: %s", url, err.message);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info a, b;
        cr_assert_eq(trestle_plan_get_op(lp, i, &a), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(rp, i, &b), TRESTLE_OK);
        cr_assert_str_eq(a.name, b.name);
        cr_assert_eq(a.bytes, b.bytes, "%s", a.name);
        cr_assert_arr_eq(a.data, b.data, a.bytes, "%s differs from the local restore", a.name);
    }
    cr_assert_eq(rst.reader, TRESTLE_READER_REMOTE);
    cr_assert_eq(rst.bytes_verified, lst.bytes_verified);
    cr_assert_eq(rst.tensors, n);
    if (st)
        *st = rst;
    trestle_plan_free(lp);
    trestle_plan_free(rp);
    trestle_close(lc);
    trestle_close(rc);
    free(ops);
    free(rops);
}

/* ---- SigV4 checked by an independent signer ---- */

#define PY "/usr/bin/python3" /* Debian's, with python3-botocore */

void tu_need_botocore(void)
{
    if (access(PY, X_OK) != 0 || system(PY " -c 'import botocore' 2>/dev/null") != 0)
        tu_missing("python3-botocore is not installed (scripts/deps.sh installs it)");
}

int tu_sigv4_check(const tu_nginx *n, const char *key, const char *secret, const char *token,
                   const char *region, char **out)
{
    char *cmd, *err = NULL;
    cr_assert(asprintf(&cmd, PY " '%s/tests/sigv4_check.py' '%s/access.log' '%s' '%s' '%s' '%s'",
                       TRESTLE_SOURCE_DIR, n->dir, key, secret, token, region) > 0);
    *out = NULL;
    int rc = tu_run(cmd, out, &err);
    cr_assert_geq(rc, 0, "%s: %s", cmd, err ? err : "");
    free(err);
    free(cmd);
    return rc;
}
