#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ASan/UBSan) and run each for
# FUZZ_SECONDS (default 60). Seed corpora: indexes made by trestle's own
# writer (partitioned in row, column and grid slices, many shards, every
# dtype, strings, snappy and multi-block: tests/fuzz/fuzz_seeds.c, run here
# each time) and the real TensorFlow indexes, state files and graphs in
# ../shared/fixtures when present (read in place, never copied into the
# project), plus tests/fuzz/seeds/<target>/. Exits non-zero on any crash,
# leak or sanitizer report, and prints each target's final coverage
# (edges, features, corpus) for bench/RESULTS.md.
#
#   scripts/fuzz.sh              fuzz every target
#   scripts/fuzz.sh coverage     fuzz every target, then replay each final
#                                corpus through a build with clang's source
#                                coverage and print the line coverage of
#                                every parser file (llvm-cov), failing when
#                                one is under FUZZ_MIN_LINES percent
#                                (default 85); every parser line with its
#                                count is left in build-fuzz-cov/parser-lines.txt
#                                (llvm-cov show), to see what is not reached
#
#   FUZZ_TARGETS="index entry"   run only these (default: all ten)
#   FUZZ_CRC=1                   keep the index block CRC verdict (the
#                                coverage before issue 13, for comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-fuzz}
case "$mode" in
    fuzz) scripts/deps.sh clang libclang-rt-14-dev ;;
    coverage) scripts/deps.sh clang libclang-rt-14-dev llvm-14 ;;
    *) echo "fuzz.sh: unknown mode '$mode' (fuzz, coverage)" >&2; exit 2 ;;
esac
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-index entry spec state opsfile plan graph names wire listing}
build=build-fuzz
crc=OFF
if [ "${FUZZ_CRC:-0}" = 1 ]; then build=build-fuzz-crc; crc=ON; fi
configure() { # DIR EXTRA_C_FLAGS
    CC=clang CXX=clang++ cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTRESTLE_FUZZ=ON -DTRESTLE_FUZZ_CRC=$crc -DTRESTLE_CUDA=OFF -DTRESTLE_BUILD_TESTS=OFF \
        -DTRESTLE_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="$2" -DCMAKE_EXE_LINKER_FLAGS="$2" >/dev/null
    cmake --build "$1" -j"$(nproc)" --target trestle fuzz_seeds \
        $(for t in $TARGETS; do echo fuzz_$t; done)
}
configure "$build" ""

work=$(mktemp -d "${TMPDIR:-/tmp}/trestle-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in $TARGETS; do
    mkdir -p "$work/$t"
    if [ -d "tests/fuzz/seeds/$t" ]; then cp tests/fuzz/seeds/$t/* "$work/$t/"; fi
done
# Seeds for the index parser (writer-made indexes of every kind, the
# synthetic model's, and the real ones) and the graph reader (small .meta
# files that reach its refusals: tests/fuzz/fuzz_seeds_graph.c).
mkdir "$work/seeds"
"$build/tests/fuzz/fuzz_seeds" "$work/seeds"
[ -d "$work/graph" ] && cp "$work"/seeds/graph/* "$work/graph/"
if [ -d "$work/index" ]; then
    cp "$work"/seeds/index/*.index "$work/index/"
    "$build/trestle" synth "$work/s1" --size 64K --shards 3 >/dev/null
    cp "$work/s1.index" "$work/index/synth.index"
fi
if [ -d ../shared/fixtures ]; then
    [ -d "$work/index" ] && find ../shared/fixtures -name '*.index' -size -64k | while read -r f; do
        cp "$f" "$work/index/$(echo "$f" | tr '/' '_')"
    done
    [ -d "$work/state" ] && find ../shared/fixtures -name checkpoint -type f -size -64k |
        while read -r f; do cp "$f" "$work/state/$(echo "$f" | tr '/' '_')"; done
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
[ "$mode" = coverage ] || exit $status

# ---- coverage: replay each final corpus through an instrumented build ----
# The fuzzing above ran the uninstrumented-for-coverage build at full speed;
# what it found is in each corpus, so one replay of it (-runs=0) measures
# what those seconds reached. The parser files are the code that reads
# untrusted bytes: indexes, entries, slices, shards, state files, graphs.
cov=build-fuzz-cov
configure "$cov" "-fprofile-instr-generate -fcoverage-mapping"
objects=()
for t in $TARGETS; do
    LLVM_PROFILE_FILE="$work/cov-$t.profraw" "$cov/tests/fuzz/fuzz_$t" "$work/$t" -runs=0 \
        -max_len=65536 -detect_leaks=0 >"$work/$t.cov.log" 2>&1 || {
        tail -20 "$work/$t.cov.log"; echo "fuzz_$t: the coverage replay failed"; status=1; }
    objects+=(-object "$cov/tests/fuzz/fuzz_$t")
done
llvm-profdata-14 merge -sparse "$work"/cov-*.profraw -o "$work/cov.profdata"
# graph_url.c is left out: it only names and fetches a graph at a URL
# (then parsed from memory by the files above), which no fuzzer reaches.
parsers=(engine/format/sstable.c engine/format/ckpt_entry.c engine/format/ckpt_scan.c
         engine/format/ckpt_slices.c engine/format/ckpt_shard.c engine/format/checkpoint.c
         engine/format/state_file.c engine/format/slice.c engine/wire/wire_msg.c
         engine/remote/remote_listing.c)
for f in engine/graph/graph_*.c; do
    [ "$f" = engine/graph/graph_url.c ] || parsers+=("$f")
done
llvm-cov-14 show -instr-profile="$work/cov.profdata" "${objects[@]:1}" "${parsers[@]}" \
    >"$cov/parser-lines.txt"
echo "line coverage of the parser files (under engine/) after ${SECONDS_EACH}s per target" \
     "($TARGETS):"
# llvm-cov's columns: file, regions (3), functions (3), then lines: total, missed, cover.
llvm-cov-14 report -instr-profile="$work/cov.profdata" "${objects[@]:1}" "${parsers[@]}" |
    awk -v min="${FUZZ_MIN_LINES:-85}" -v root="$PWD/" '
        $1 ~ /\.c$/ { sub(root, "", $1); pct = $10; sub("%", "", pct);
                      flag = pct + 0 < min ? "  under " min "%" : "";
                      printf "  %-32s %5d lines %5d missed %7s%s\n", $1, $8, $9, $10, flag;
                      if (flag != "") low = 1 }
        $1 == "TOTAL" { printf "  %-32s %5d lines %5d missed %7s\n", "all of them", $8, $9, $10 }
        END { exit low }' || status=1
exit $status
