#!/usr/bin/env bash
# `trestle bench URL` against a real nginx on 127.0.0.1: a `trestle synth`
# checkpoint of SIZE in SHARDS files (bf16, in the page cache as
# bench_lib.sh's warm_sample leaves it) is served by nginx (Debian's
# nginx-light, a config written here, started in the foreground and
# stopped by its PID at exit), then benchmarked over http:// with the
# given bench options; the report holds the read stage against plain
# parallel ranged GETs of the same bytes with the same connections,
# measured in the same run. Loopback has no network to wait for: what it
# shows is the engine's own cost per byte fetched (libcurl, CRC, copies)
# against a client that does nothing but GET. Usage:
#   bench/remote_bench.sh [SIZE] [SHARDS] [BENCH OPTIONS...]
#   bench/remote_bench.sh 1G 8 --repeat 5 --connections 8
# Then (COPY_FIRST=0 leaves it out) the same bytes copied to local disk with
# curl first and restored from there, against a restore from the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
SHARDS=${2:-8}
shift $(( $# < 2 ? $# : 2 ))
TRESTLE=${TRESTLE:-build/trestle}
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-remote-XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/www/bucket" "$dir/run"
. bench/bench_lib.sh
warm_sample "$TRESTLE" "$dir/www/bucket/ckpt" "$SIZE" "$SHARDS"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=
[ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
cat > "$dir/run/nginx.conf" <<CONF
daemon off; worker_processes 2; $user
pid $dir/run/nginx.pid; error_log $dir/run/error.log;
events { worker_connections 1024; }
http {
  default_type application/octet-stream; access_log off; keepalive_requests 1000000;
  client_body_temp_path $dir/run; proxy_temp_path $dir/run; fastcgi_temp_path $dir/run;
  uwsgi_temp_path $dir/run; scgi_temp_path $dir/run;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
CONF
/usr/sbin/nginx -c "$dir/run/nginx.conf" -p "$dir/run" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$port/bucket/ckpt"
"$TRESTLE" bench "$url" "$@"

# "Faster than copying first": what a user does without URLs, curl of every
# object (one per shard at once) to local disk and then a local restore,
# against trestle restore URL, both with default options, in turn ROUNDS
# times (default 3), each a whole process; medians.
if [ "${COPY_FIRST:-1}" = 1 ] && command -v curl >/dev/null; then
    rounds=${ROUNDS:-3}
    copy=()
    direct=()
    for _ in $(seq "$rounds"); do
        rm -rf "$dir/copy" && mkdir "$dir/copy"
        t0=$(now)
        (cd "$dir/www/bucket" && ls ckpt.*) |
            xargs -P "$SHARDS" -I{} curl -sf -o "$dir/copy/{}" "http://127.0.0.1:$port/bucket/{}"
        "$TRESTLE" restore "$dir/copy/ckpt" --all >/dev/null
        t1=$(now)
        "$TRESTLE" restore "$url" --all >/dev/null
        t2=$(now)
        copy+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")
        direct+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.3f", b-a}')")
    done
    median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
    echo
    echo "copy first vs from the URL ($rounds rounds in turn, whole processes, seconds):"
    echo "  curl of each object ($SHARDS at once) to disk, then trestle restore --all:" \
         "median $(median "${copy[@]}") (runs: ${copy[*]})"
    echo "  trestle restore URL --all:" \
         "median $(median "${direct[@]}") (runs: ${direct[*]})"
fi
