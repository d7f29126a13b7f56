#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ASan/UBSan) and run each for
# FUZZ_SECONDS (default 60). Seed corpora: indexes made by trestle's own
# writer (the test suite's checkpoints) and the real TensorFlow indexes in
# ../shared/fixtures when present (read in place, never copied into the
# project). Exits non-zero on any crash, leak or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh clang libclang-rt-14-dev
SECONDS_EACH=${FUZZ_SECONDS:-60}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTRESTLE_FUZZ=ON -DTRESTLE_CUDA=OFF -DTRESTLE_BUILD_TESTS=OFF -DTRESTLE_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_index fuzz_plan fuzz_graph fuzz_names trestle

work=$(mktemp -d "${TMPDIR:-/tmp}/trestle-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/index" "$work/plan" "$work/graph" "$work/names"
# Seeds for the index parser: writer-made indexes (plain, multi-shard,
# partitioned, strings, snappy-free) and the real ones.
build-fuzz/trestle synth "$work/s1" --size 64K --shards 3 >/dev/null
cp "$work/s1.index" "$work/index/synth.index"
if [ -d ../shared/fixtures ]; then
    find ../shared/fixtures -name '*.index' -size -64k | while read -r f; do
        cp "$f" "$work/index/$(echo "$f" | tr '/' '_')"
    done
fi
cp tests/fuzz/seeds/plan/* "$work/plan/"
# Seeds for the graph reader: two small hand-encoded graphs (a sharded
# saver beside a RestoreSlice; a SavedModel whose restore op calls a TF2
# restore function) and the real .meta and saved_model.pb files that fit
# -max_len.
cp tests/fuzz/seeds/graph/* "$work/graph/"
if [ -d ../shared/fixtures/tf-graphs ]; then
    find ../shared/fixtures/tf-graphs -type f \( -name '*.meta' -o -name '*.pb' \) -size -64k |
        while read -r f; do cp "$f" "$work/graph/$(echo "$f" | tr '/' '_')"; done
fi
# Seeds for the name map: a hand-encoded object graph with a slot variable.
cp tests/fuzz/seeds/names/* "$work/names/"

status=0
for t in index plan graph names; do
    echo "fuzz_$t: ${SECONDS_EACH}s"
    if ! build-fuzz/tests/fuzz/fuzz_$t "$work/$t" -max_total_time="$SECONDS_EACH" \
            -max_len=65536 -print_final_stats=1 -detect_leaks=1 2>"$work/$t.log"; then
        status=1
        tail -60 "$work/$t.log"
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$work/$t.log" | tail -3
done
exit $status
