#!/usr/bin/env bash
# Build trestle, run the microbenchmarks (build/bench/trestle_bench: CRC32C,
# index open, planner, readers) and `trestle bench --synthetic 2G,4 --host`,
# and record the machine, the date, the exact commands and their outputs in
# bench/RESULTS.md between the markers below (the section is replaced on
# each run, or appended when absent; the rest of the file is kept).
#   bench/run.sh                 # defaults
#   SYNTH=4G,8 BENCH_ARGS=--cold bench/run.sh
#   NO_RESULTS=1 bench/run.sh    # print only, leave RESULTS.md alone
set -euo pipefail
cd "$(dirname "$0")/.."

SYNTH=${SYNTH:-2G,4}
BENCH_ARGS=${BENCH_ARGS:-}
RESULTS=bench/RESULTS.md
BEGIN='<!-- run.sh:begin -->'
END='<!-- run.sh:end -->'

scripts/build.sh
micro_cmd=(build/bench/trestle_bench --benchmark_format=console)
# shellcheck disable=SC2206 # BENCH_ARGS is a list of words on purpose
bench_cmd=(build/trestle bench --synthetic "$SYNTH" --host $BENCH_ARGS)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trestle-run-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== ${micro_cmd[*]}" >&2
"${micro_cmd[@]}" 2>&1 | tee "$tmp/micro.txt" >&2
echo "== ${bench_cmd[*]}" >&2
"${bench_cmd[@]}" 2>&1 | tee "$tmp/bench.txt" >&2

model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || true)
fs=$(df -T "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 {print $2 " on " $1}')
{
    echo "$BEGIN"
    echo "## bench/run.sh: latest run"
    echo
    echo "Written by \`bench/run.sh\`; replaced on every run."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs (${model:-unknown model}), ${mem:-unknown memory}"
    echo "- Kernel: $(uname -srm)"
    echo "- Temp files: ${TMPDIR:-/tmp} (${fs:-unknown filesystem})"
    echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo
    echo "\`${micro_cmd[*]}\`:"
    echo
    echo '```'
    cat "$tmp/micro.txt"
    echo '```'
    echo
    echo "\`${bench_cmd[*]}\`:"
    echo
    echo '```'
    cat "$tmp/bench.txt"
    echo '```'
    echo "$END"
} > "$tmp/section.md"

if [ -n "${NO_RESULTS:-}" ]; then
    cat "$tmp/section.md"
    exit 0
fi
. bench/bench_lib.sh
replace_section "$RESULTS" "$BEGIN" "$END" "$tmp/section.md"
