#!/usr/bin/env bash
# What a plain reader of a checkpoint's shards gets, in the same minutes as
# trestle: `cat`, `dd bs=1M`, a Python 1 MiB readinto() loop and the "plain
# read" yardstick of `trestle bench` (one thread, read() of 1 MiB blocks
# into a page-aligned buffer, each shard opened in turn), then `trestle
# restore` to host memory (CRC32C verification on), copying and --map.
# Page cache warm. The readers run in turn, ROUNDS times, so that a busy
# machine slows them alike; each is given as the median of its rounds (and
# min-max). Usage:
#   bench/cat_compare.sh [SIZE] [SHARDS]      (default 1G 4; ROUNDS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
SHARDS=${2:-4}
ROUNDS=${ROUNDS:-5}
TRESTLE=${TRESTLE:-build/trestle}
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-catcmp-XXXXXX")
trap 'rm -rf "$dir"' EXIT
. bench/bench_lib.sh
warm_sample "$TRESTLE" "$dir/ckpt" "$SIZE" "$SHARDS"
bytes=$(cat "$dir"/ckpt.data-* | wc -c)

# GB/s of one timed command over the shard bytes.
rate() {  # COMMAND...
    t0=$(now); "$@" >/dev/null; t1=$(now)
    awk -v a="$t0" -v b="$t1" -v n="$bytes" 'BEGIN{printf "%.3f\n", n / (b - a) / 1e9}'
}
pyloop() {  # the loop a user writes: one 1 MiB bytearray, readinto until the end
    /usr/bin/python3 - "$dir"/ckpt.data-* <<'EOF'
import os, sys, time
buf = memoryview(bytearray(1 << 20))
t0, n = time.monotonic(), 0
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    while (k := os.readv(fd, [buf])) > 0:
        n += k
    os.close(fd)
print("%.3f" % (n / (time.monotonic() - t0) / 1e9))
EOF
}
ddall() { for f in "$dir"/ckpt.data-*; do dd if="$f" of=/dev/null bs=1M status=none; done; }
# The bench's plain-read yardstick (median of its 5 runs) and its restore's
# read and total stages (one repeat), from its JSON.
bench_json() {
    "$TRESTLE" bench "$dir/ckpt" --repeat 1 --json | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["stats"]["stages"]
print("%.3f %.3f %.3f" % (d["yardsticks"]["plain_read"]["gbps"], s["read"]["gbps"]["median"] or 0,
                          s["total"]["gbps"]["median"] or 0))'
}

: >"$dir/rows"
for r in $(seq "$ROUNDS"); do
    echo "cat $(rate cat "$dir"/ckpt.data-*)" >>"$dir/rows"
    echo "dd $(rate ddall)" >>"$dir/rows"
    echo "py $(pyloop)" >>"$dir/rows"
    read -r plain rd total < <(bench_json)
    echo "plain $plain" >>"$dir/rows"
    echo "bench_read $rd" >>"$dir/rows"
    echo "restore $(rate "$TRESTLE" restore "$dir/ckpt" --all --host --quiet)" >>"$dir/rows"
    echo "map $(rate "$TRESTLE" restore "$dir/ckpt" --all --host --map --quiet)" >>"$dir/rows"
done

printf 'data: %s bytes in %s shards, page cache warm, %s rounds in turn; GB/s = 1e9 B/s\n' \
    "$bytes" "$SHARDS" "$ROUNDS"
awk '
    { v[$1] = v[$1] " " $2 }
    END {
        split("cat dd py plain bench_read restore map", order, " ")
        label["cat"] = "cat shards > /dev/null (process)"
        label["dd"] = "dd bs=1M of each shard (processes)"
        label["py"] = "Python readinto() of 1 MiB (in process)"
        label["plain"] = "trestle bench: plain read yardstick"
        label["bench_read"] = "trestle bench: its restore'"'"'s read stage"
        label["restore"] = "trestle restore --host (process)"
        label["map"] = "trestle restore --host --map (process)"
        for (i = 1; i <= 7; i++) {
            k = order[i]; n = split(v[k], x, " ")
            # median by insertion sort
            for (a = 2; a <= n; a++) for (b = a; b > 1 && x[b-1] + 0 > x[b] + 0; b--) { t = x[b]; x[b] = x[b-1]; x[b-1] = t }
            med = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
            m[k] = med
            printf "%-44s %7.2f GB/s median (%.2f-%.2f)\n", label[k], med, x[1], x[n]
        }
        printf "plain read yardstick vs cat %.2fx, vs dd %.2fx, vs Python %.2fx\n", m["plain"] / m["cat"], m["plain"] / m["dd"], m["plain"] / m["py"]
        printf "restore --host vs cat %.2fx, --map vs cat %.2fx (rate ratios: above 1 is faster)\n", m["restore"] / m["cat"], m["map"] / m["cat"]
    }' "$dir/rows"
"$TRESTLE" restore "$dir/ckpt" --all --host
