#!/usr/bin/env bash
# Issue-16 speed check: the Python package against the CLI on the same
# checkpoint in the same run, page cache warm, best of REPEAT each:
#   trestle restore --all --host   vs  trestle.restore()        (numpy, torch)
#   one trestle.restore()          vs  get_tensor() per tensor
#   trestle convert (safetensors)  vs  cat of the shards
# Usage: bench/py_compare.sh [SIZE] [SHARDS]    (default 1G 4)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
SHARDS=${2:-4}
REPEAT=${REPEAT:-5}
TRESTLE=${TRESTLE:-build/trestle}
PYTHON=${PYTHON:-$(sed -n 's/^TRESTLE_PYTHON:FILEPATH=//p' build/CMakeCache.txt)}
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-pycmp-XXXXXX")
trap 'rm -rf "$dir"' EXIT
. bench/bench_lib.sh
warm_sample "$TRESTLE" "$dir/ckpt" "$SIZE" "$SHARDS"
cat_t=$(timeit sh -c "cat $dir/ckpt.data-* >/dev/null")
# A conversion writes a new file: the previous run's output is removed
# first, outside the timing (replacing it would time its deletion too).
convert_t() { for _ in $(seq "$REPEAT"); do
    rm -f "$dir/out.safetensors"; sync
    t0=$(now); "$TRESTLE" convert --quiet "$@" "$dir/ckpt" "$dir/out.safetensors"; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best; }
conv_t=$(convert_t --no-sync)
conv_sync_t=$(convert_t)
rm -f "$dir/out.safetensors"
dd_t=$(for _ in $(seq "$REPEAT"); do rm -f "$dir/dd.out"; sync
    t0=$(now); cat "$dir"/ckpt.data-* > "$dir/dd.out"; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; done | best)
rm -f "$dir/dd.out"
bytes=$(cat "$dir"/ckpt.data-* | wc -c)
printf 'data: %s bytes in %s shards, page cache warm, best of %s; python: %s\n' \
    "$bytes" "$SHARDS" "$REPEAT" "$PYTHON"
awk -v n="$bytes" -v c="$cat_t" -v v="$conv_t" -v s="$conv_sync_t" -v d="$dd_t" 'BEGIN {
    printf "%-44s %8.3f s  %6.2f GB/s\n", "cat > /dev/null", c, n / c / 1e9
    printf "%-44s %8.3f s  %6.2f GB/s\n", "cat > new file (no sync)", d, n / d / 1e9
    printf "%-44s %8.3f s  %6.2f GB/s  (%.2fx cat > file)\n", "trestle convert --no-sync (process)", v, n / v / 1e9, v / d
    printf "%-44s %8.3f s  %6.2f GB/s  (%.2fx cat > file)\n", "trestle convert, fdatasync (process)", s, n / s / 1e9, s / d
}'
PYTHONPATH=build/python "$PYTHON" bench/py_compare.py "$dir/ckpt" "$dir/py.safetensors" "$REPEAT" \
    "$TRESTLE"
