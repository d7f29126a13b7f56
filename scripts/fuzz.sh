#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ASan/UBSan) and run each for
# FUZZ_SECONDS (default 60). Seed corpora: indexes made by trestle's own
# writer (the test suite's checkpoints) and the real TensorFlow indexes and
# state files in ../shared/fixtures when present (read in place, never
# copied into the project), plus tests/fuzz/seeds/<target>/. Exits non-zero
# on any crash, leak or sanitizer report, and prints each target's final
# coverage (edges, features, corpus) for bench/RESULTS.md.
#
#   FUZZ_TARGETS="index entry"   run only these (default: all eight)
#   FUZZ_CRC=1                   keep the index block CRC verdict (the
#                                coverage before issue 13, for comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh clang libclang-rt-14-dev
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-index entry spec state opsfile plan graph names}
build=build-fuzz
crc=OFF
if [ "${FUZZ_CRC:-0}" = 1 ]; then build=build-fuzz-crc; crc=ON; fi
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTRESTLE_FUZZ=ON -DTRESTLE_FUZZ_CRC=$crc -DTRESTLE_CUDA=OFF -DTRESTLE_BUILD_TESTS=OFF \
    -DTRESTLE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target trestle $(for t in $TARGETS; do echo fuzz_$t; done)

work=$(mktemp -d "${TMPDIR:-/tmp}/trestle-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in $TARGETS; do
    mkdir -p "$work/$t"
    if [ -d "tests/fuzz/seeds/$t" ]; then cp tests/fuzz/seeds/$t/* "$work/$t/"; fi
done
# Seeds for the index parser: writer-made indexes (plain, multi-shard,
# partitioned, strings, snappy-free) and the real ones.
"$build/trestle" synth "$work/s1" --size 64K --shards 3 >/dev/null
cp "$work/s1.index" "$work/index/synth.index"
if [ -d ../shared/fixtures ]; then
    find ../shared/fixtures -name '*.index' -size -64k | while read -r f; do
        cp "$f" "$work/index/$(echo "$f" | tr '/' '_')"
    done
    mkdir -p "$work/state"
    find ../shared/fixtures -name checkpoint -type f -size -64k | while read -r f; do
        cp "$f" "$work/state/$(echo "$f" | tr '/' '_')"
    done
fi
# Seeds for the graph reader: the hand-encoded graphs in tests/fuzz/seeds/graph
# (a sharded saver beside a RestoreSlice; a SavedModel whose restore op calls
# a TF2 restore function) and the real .meta and saved_model.pb files that
# fit -max_len.
if [ -d "$work/graph" ] && [ -d ../shared/fixtures/tf-graphs ]; then
    find ../shared/fixtures/tf-graphs -type f \( -name '*.meta' -o -name '*.pb' \) -size -64k |
        while read -r f; do cp "$f" "$work/graph/$(echo "$f" | tr '/' '_')"; done
fi
# The plan seeds are op lists too.
[ -d "$work/opsfile" ] && cp tests/fuzz/seeds/plan/* "$work/opsfile/" 2>/dev/null || true

status=0
for t in $TARGETS; do
    echo "fuzz_$t: ${SECONDS_EACH}s"
    # Crash inputs go beside the logs in $build, not into the checkout
    # (libFuzzer writes them to the working directory by default).
    mkdir -p "$build/fuzz-crashes"
    if ! "$build/tests/fuzz/fuzz_$t" "$work/$t" -max_total_time="$SECONDS_EACH" \
            -max_len=65536 -print_final_stats=1 -detect_leaks=1 \
            -artifact_prefix="$build/fuzz-crashes/$t-" 2>"$work/$t.log"; then
        status=1
        tail -60 "$work/$t.log"
        echo "fuzz_$t: the failing input is in $build/fuzz-crashes/"
    fi
    # The last status line: "#N DONE cov: E ft: F corp: C/..." gives edges and corpus.
    grep -E "^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)" "$work/$t.log" | tail -1 |
        sed -E "s/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/fuzz_$t: runs \1 edges \2 features \3 corpus \4/"
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/$t.log" | tail -2
done
exit $status
