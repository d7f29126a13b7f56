#!/usr/bin/env bash
# Issue-3 speed check: with the data in the page cache, `trestle restore`
# to host memory (CRC32C verification on) against `cat` of the same shard
# files to /dev/null. Best of REPEAT runs each. Usage:
#   bench/cat_compare.sh [SIZE] [SHARDS]      (default 1G 4)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
SHARDS=${2:-4}
REPEAT=${REPEAT:-5}
TRESTLE=${TRESTLE:-build/trestle}
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-catcmp-XXXXXX")
trap 'rm -rf "$dir"' EXIT
. bench/bench_lib.sh
warm_sample "$TRESTLE" "$dir/ckpt" "$SIZE" "$SHARDS"
cat_t=$(for _ in $(seq "$REPEAT"); do
    t0=$(now); cat "$dir"/ckpt.data-* >/dev/null; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best)
# `cat > /dev/null` may never touch the bytes (GNU cat can splice); reading
# them into a user buffer is what a restore must do at least once.
dd_t=$(for _ in $(seq "$REPEAT"); do
    t0=$(now); for f in "$dir"/ckpt.data-*; do dd if="$f" of=/dev/null bs=1M status=none; done; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best)
tr_t=$(for _ in $(seq "$REPEAT"); do
    t0=$(now); "$TRESTLE" restore "$dir/ckpt" --all --host --quiet; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best)
map_t=$(for _ in $(seq "$REPEAT"); do
    t0=$(now); "$TRESTLE" restore "$dir/ckpt" --all --host --map --quiet; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best)
bytes=$(cat "$dir"/ckpt.data-* | wc -c)
printf 'data: %s bytes in %s shards, page cache warm, best of %s\n' "$bytes" "$SHARDS" "$REPEAT"
awk -v n="$bytes" -v c="$cat_t" -v d="$dd_t" -v t="$tr_t" -v m="$map_t" 'BEGIN {
    printf "cat  > /dev/null         %8.3f s  %6.2f GB/s\n", c, n / c / 1e9
    printf "dd bs=1M > /dev/null     %8.3f s  %6.2f GB/s\n", d, n / d / 1e9
    printf "trestle restore --host   %8.3f s  %6.2f GB/s  (%.2fx cat, verify on)\n", t, n / t / 1e9, t / c
    printf "trestle restore --map    %8.3f s  %6.2f GB/s  (%.2fx cat, verify on)\n", m, n / m / 1e9, m / c
}'
"$TRESTLE" restore "$dir/ckpt" --all --host
