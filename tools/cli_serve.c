/*
 * cli_serve.c - `trestle serve`: the per-host server that keeps
 * checkpoints resident (include/trestle_serve.h), as a program.
 *
 * Everything the server does is the library's (trestle_server_create,
 * trestle_server_run); this file is the process around it: options, the
 * log (one line per event, timestamped, on stderr, a file or syslog),
 * SIGTERM, SIGINT and SIGHUP (each stops the server cleanly, exit 0),
 * --daemon (the parent returns once the socket listens, or with the
 * reason it could not), a pid file, and systemd's readiness notification
 * (READY=1 on $NOTIFY_SOCKET, for Type=notify units).
 *
 * Unlike the other commands, `serve` takes its signals itself
 * (tools/trestle.c starts no signal watcher for it): a stop is its normal
 * end, not an interruption.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trestle_serve.h"

static const char serve_help[] =
    "Usage: trestle serve [OPTIONS]\n"
    "\n"
    "Run the per-host server that keeps checkpoints resident in memory, so that\n"
    "processes attach to them in milliseconds instead of reading them again\n"
    "('trestle preload' fills it, 'trestle restore --server' and Python's\n"
    "trestle.restore(path, server=...) attach). It runs in the foreground and logs\n"
    "one line per event on stderr; SIGTERM, SIGINT or SIGHUP stop it cleanly\n"
    "(exit 0). It starts empty: what a server held does not outlive it, though the\n"
    "mappings its clients made do.\n"
    "\n"
    "Options:\n"
    "      --socket PATH      listen on PATH (default: $XDG_RUNTIME_DIR/trestle.sock,\n"
    "                         else /run/trestle/trestle.sock); its directory is made\n"
    "                         when missing; a stale socket is replaced, a live one\n"
    "                         refused\n"
    "      --group G          make the socket 0660 with group G (a name or number) and\n"
    "                         admit G's members; default: 0600, the server's user\n"
    "                         (and root) only\n"
    "      --host-cap SIZE    hold at most SIZE in host memory: a preload past it\n"
    "                         evicts the least recently used entries no client holds,\n"
    "                         and fails when that is not enough (default: no cap)\n"
    "      --device-cap SIZE  the same per GPU for the device tier\n"
    "      --no-huge-pages    host memory in ordinary pages (by default 2 MiB hugetlb\n"
    "                         pages when the pool has room, else ordinary pages with\n"
    "                         transparent huge pages advised)\n"
    "      --max-clients N    connections at once (default 4096)\n"
    "      --daemon           detach: return once the socket listens (exit 0), or\n"
    "                         with the reason it could not (exit 1); log to --log FILE\n"
    "                         or, without it, to syslog\n"
    "      --log FILE         append the log to FILE instead of stderr\n"
    "      --pidfile FILE     write the server's pid to FILE (removed at exit)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Security: every connection's peer is checked (SO_PEERCRED): the server's uid,\n"
    "root, or with --group a member of G. Clients only read: host memory is a memfd\n"
    "sealed against writes before any client sees it, handed out read-only; device\n"
    "memory is mapped read-only by the client library. Malformed requests get an\n"
    "error reply; the server goes on. The server never opens a checkpoint: a\n"
    "preload reads the files with its own permissions.\n"
    "\n"
    "Under systemd (Type=notify), the server says READY=1 once it listens; see\n"
    "tools/trestle-serve.service.\n"
    "\n"
    "Examples:\n"
    "  trestle serve\n"
    "  trestle serve --socket /run/trestle/trestle.sock --group trestle --host-cap 64G\n"
    "  trestle serve --daemon --log /var/log/trestle.log --pidfile /run/trestle.pid\n";

enum { OPT_SOCKET = 256, OPT_GROUP, OPT_HOST_CAP, OPT_DEVICE_CAP, OPT_NO_HUGE, OPT_MAX_CLIENTS,
       OPT_DAEMON, OPT_LOG, OPT_PIDFILE };

static const struct option serve_longopts[] = {
    { "socket", required_argument, NULL, OPT_SOCKET },
    { "group", required_argument, NULL, OPT_GROUP },
    { "host-cap", required_argument, NULL, OPT_HOST_CAP },
    { "device-cap", required_argument, NULL, OPT_DEVICE_CAP },
    { "no-huge-pages", no_argument, NULL, OPT_NO_HUGE },
    { "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
    { "daemon", no_argument, NULL, OPT_DAEMON },
    { "log", required_argument, NULL, OPT_LOG },
    { "pidfile", required_argument, NULL, OPT_PIDFILE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Where log lines go: stderr, a file, or syslog. */
typedef struct serve_log {
    FILE *file;      /* stderr or the --log file; NULL: syslog */
} serve_log;

static void log_line(void *user, const char *line)
{
    serve_log *l = user;
    if (!l->file) {
        syslog(LOG_INFO, "%s", line);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(l->file, "%s.%03ld trestle serve: %s\n", when, ts.tv_nsec / 1000000, line);
    fflush(l->file);
}

/* The server the signal handlers stop (process-wide, as signal dispositions are). */
static trestle_server *running;
static volatile sig_atomic_t stop_signal;

static void on_stop(int s)
{
    stop_signal = s;
    trestle_server_stop(running); /* async-signal-safe: a write to a pipe */
}

static void install_stop_handlers(void)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* Started with a signal ignored (nohup): it stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
}

/* systemd's Type=notify: "READY=1" to $NOTIFY_SOCKET, when there is one. */
static void notify_ready(const char *socket_path)
{
    const char *where = getenv("NOTIFY_SOCKET");
    struct sockaddr_un a;
    char msg[256];
    if (!where || (where[0] != '/' && where[0] != '@') || strlen(where) >= sizeof a.sun_path)
        return;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, where, strlen(where));
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0'; /* the abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    int n = snprintf(msg, sizeof msg, "READY=1\nMAINPID=%d\nSTATUS=listening on %s",
                     (int)getpid(), socket_path);
    sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&a,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(where)));
    close(fd);
}

/* Each client connection is a descriptor: let the server have all it may. */
static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static int parse_group(const char *arg, long *out)
{
    long long v;
    if (cli_parse_int(arg, 0, 0x7fffffff, &v) == 0) {
        *out = (long)v;
        return 0;
    }
    struct group *g = getgrnam(arg);
    if (!g)
        return -1;
    *out = (long)g->gr_gid;
    return 0;
}

typedef struct serve_args {
    trestle_server_options opt;
    int daemon;
    const char *log_path;
    const char *pidfile;
} serve_args;

static int parse_args(int argc, char **argv, serve_args *a)
{
    int c;
    long long v;
    uint64_t size;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", serve_longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(serve_help, stdout);
            return -1;
        case OPT_SOCKET: a->opt.socket_path = optarg; break;
        case OPT_GROUP:
            if (parse_group(optarg, &a->opt.group) != 0)
                return cli_usage("serve", "--group wants a group name or number; no group "
                                 "'%s'", optarg);
            break;
        case OPT_HOST_CAP:
        case OPT_DEVICE_CAP:
            if (cli_parse_size(optarg, &size) != 0 || size == 0)
                return cli_usage("serve", "--%s wants a size such as 64G, not '%s'",
                                 c == OPT_HOST_CAP ? "host-cap" : "device-cap", optarg);
            if (c == OPT_HOST_CAP)
                a->opt.host_cap = size;
            else
                a->opt.device_cap = size;
            break;
        case OPT_NO_HUGE: a->opt.huge_pages = 0; break;
        case OPT_MAX_CLIENTS:
            if (cli_parse_int(optarg, 1, 1 << 20, &v) != 0)
                return cli_usage("serve", "--max-clients wants a number from 1 to 1048576, not "
                                 "'%s'", optarg);
            a->opt.max_clients = (unsigned)v;
            break;
        case OPT_DAEMON: a->daemon = 1; break;
        case OPT_LOG: a->log_path = optarg; break;
        case OPT_PIDFILE: a->pidfile = optarg; break;
        default: return cli_bad_option("serve", argv, c);
        }
    }
    if (optind < argc)
        return cli_usage("serve", "unexpected argument '%s'", argv[optind]);
    return CLI_EXIT_OK;
}

/* Detach: the child carries on; the parent waits on `ready[0]` for one
 * line ("ok" or the error) and exits with it. Returns in the child only. */
static void daemonize(int ready[2])
{
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("serve --daemon: fork: %s", strerror(errno));
        exit(CLI_EXIT_FAIL);
    }
    if (pid > 0) {
        char msg[2048];
        close(ready[1]);
        ssize_t n = read(ready[0], msg, sizeof msg - 1);
        if (n <= 0) {
            cli_error("serve --daemon: the server exited before it listened");
            exit(CLI_EXIT_FAIL);
        }
        msg[n] = '\0';
        if (strncmp(msg, "ok ", 3) == 0) {
            printf("trestle serve: %s\n", msg + 3);
            exit(CLI_EXIT_OK);
        }
        cli_error("%s", msg);
        exit(CLI_EXIT_FAIL);
    }
    close(ready[0]);
    setsid();
    if (chdir("/") != 0) {
        /* "/" always exists; nothing to do */
    }
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
}

int cli_serve_main(int argc, char **argv)
{
    serve_args a;
    serve_log log = { stderr };
    trestle_server *s = NULL;
    trestle_error err;
    int ready[2] = { -1, -1 }, status;

    memset(&a, 0, sizeof a);
    trestle_server_options_init(&a.opt);
    if ((status = parse_args(argc, argv, &a)) != CLI_EXIT_OK)
        return status < 0 ? CLI_EXIT_OK : status;
    if (a.log_path) {
        log.file = fopen(a.log_path, "ae");
        if (!log.file) {
            cli_error("serve: cannot open the log %s: %s", a.log_path, strerror(errno));
            return CLI_EXIT_FAIL;
        }
    }
    if (a.daemon) {
        if (pipe2(ready, O_CLOEXEC) != 0) {
            cli_error("serve --daemon: pipe: %s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
        fflush(NULL);
        daemonize(ready);
        if (!a.log_path) {
            log.file = NULL;
            openlog("trestle", LOG_PID, LOG_DAEMON);
        }
    }
    a.opt.log = log_line;
    a.opt.log_user = &log;
    install_stop_handlers();
    raise_fd_limit();
    if (trestle_server_create(&a.opt, &s, &err) != TRESTLE_OK) {
        if (a.daemon) {
            dprintf(ready[1], "%s", err.message);
            _exit(CLI_EXIT_FAIL);
        }
        status = cli_fail(&err);
        goto out;
    }
    running = s;
    if (a.pidfile) {
        FILE *f = fopen(a.pidfile, "we");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        } else {
            log_line(&log, "cannot write the pid file");
        }
    }
    if (a.daemon) {
        dprintf(ready[1], "ok listening on %s, pid %d", trestle_server_socket(s), (int)getpid());
        close(ready[1]);
    }
    notify_ready(trestle_server_socket(s));
    status = CLI_EXIT_OK;
    if (!stop_signal && trestle_server_run(s, &err) != TRESTLE_OK) {
        log_line(&log, err.message);
        status = CLI_EXIT_FAIL;
    }
    running = NULL;
    trestle_server_free(s);
    if (a.pidfile)
        unlink(a.pidfile);
    if (stop_signal) {
        char line[64];
        snprintf(line, sizeof line, "stopped (%s)",
                 stop_signal == SIGTERM ? "SIGTERM" : stop_signal == SIGINT ? "SIGINT" : "SIGHUP");
        log_line(&log, line);
    }
out:
    if (log.file && log.file != stderr)
        fclose(log.file);
    if (!log.file)
        closelog();
    return status;
}
