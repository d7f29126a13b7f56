#!/usr/bin/env bash
# Issue 24: what a tensor costs, apart from what a byte costs. Models of N
# tensors of one size and the same bytes (build/bench/trestle_many_model:
# 300, 20,000, 100,000 tensors and a few between), and the issue's own pairs (`trestle
# synth --layers 2222` and `--layers 11111` beside 290-tensor synth models
# of about their bytes), each timed whole-process as a user runs it:
#   restore  trestle restore P --all --host --quiet
#   convert  trestle convert --no-sync P OUT.safetensors (the disk flush is left
#            out: it measures the disk)
#   python   python3 -c 'import trestle; trestle.restore(P, progress=False)'
#   inspect  trestle inspect P > /dev/null (the listing)
# The data is read into the page cache right before every run (cat, not
# timed). Runs go round-robin over models and commands, REPEAT times;
# the table gives the median wall time (min-max), the ratio to the
# 300-tensor model of the same bytes (the median of each round's ratio,
# whose two runs are seconds apart), the time each tensor adds
# ((min - min at 300) / (N - 300): minimums, as the least disturbed by
# whatever else the machine runs), and peak RSS over the data.
#   bench/many_tensors.sh                  # print a markdown report
#   REPEAT=9 COUNTS="300 20000 100001" bench/many_tensors.sh
#   RESULTS=1 bench/many_tensors.sh        # also replace its section of bench/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=${REPEAT:-7}
BYTES=${BYTES:-297795584}  # 284 MiB: what `trestle synth --layers 11111 --size 300M` holds
COUNTS=${COUNTS:-"300 1000 5000 20000 50000 100000"}
COMMANDS=${COMMANDS:-"restore convert python inspect"}
TRESTLE=${TRESTLE:-build/trestle}
MODEL=${MODEL:-build/bench/trestle_many_model}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONPATH=${PYTHONPATH:-build/python}
BEGIN='<!-- many_tensors.sh:begin -->'
END='<!-- many_tensors.sh:end -->'

for tool in "$TRESTLE" "$MODEL"; do
    [ -x "$tool" ] || { echo "many_tensors.sh: $tool is missing: run scripts/build.sh" >&2; exit 2; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-many-XXXXXX")
trap 'rm -rf "$dir"' EXIT

# Models: the equal-bytes family, then the issue's synth pairs.
models=""
for n in $COUNTS; do
    "$MODEL" "$dir/n$n" "$n" "$BYTES" >/dev/null
    models="$models n$n"
done
"$TRESTLE" synth "$dir/s11111" --size 300M --layers 11111 >/dev/null
"$TRESTLE" synth "$dir/s11111twin" --size 284M --layers 32 >/dev/null
"$TRESTLE" synth "$dir/s2222" --size 300M --layers 2222 >/dev/null
"$TRESTLE" synth "$dir/s2222twin" --size 227M --layers 32 >/dev/null
models="$models s11111 s11111twin s2222 s2222twin"

data_bytes() { cat "$dir/$1".data-* | wc -c; }
tensors() { "$TRESTLE" inspect "$dir/$1" --json | awk -F'[:,]' '/"num_tensors"/ {print $2+0}'; }

run() {  # MODEL COMMAND -> "wall_seconds peak_kib" on stdout
    local p="$dir/$1" out="$dir/time" t0 t1
    cat "$p".data-* >/dev/null
    t0=$EPOCHREALTIME
    case "$2" in
    restore) /usr/bin/time -f "%M" -o "$out" "$TRESTLE" restore "$p" --all --host --quiet ;;
    convert) /usr/bin/time -f "%M" -o "$out" "$TRESTLE" convert --no-sync "$p" "$dir/out.safetensors" >/dev/null ;;
    python)  /usr/bin/time -f "%M" -o "$out" "$PYTHON" -c \
                 "import trestle; trestle.restore('$p', progress=False)" ;;
    inspect) /usr/bin/time -f "%M" -o "$out" "$TRESTLE" inspect "$p" >/dev/null ;;
    esac
    t1=$EPOCHREALTIME
    rm -f "$dir/out.safetensors"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') $(tail -1 "$out")"
}

: >"$dir/runs"
for r in $(seq "$REPEAT"); do
    for c in $COMMANDS; do
        for m in $models; do
            echo "$c $m $r $(run "$m" "$c")" >>"$dir/runs"
        done
    done
done

: >"$dir/facts"
for m in $models; do
    echo "$m $(tensors "$m") $(data_bytes "$m")" >>"$dir/facts"
done

report() {
    model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    fs=$(df -T "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 {print $2}')
    echo "$BEGIN"
    echo "## Many tensors (issue 24): bench/many_tensors.sh"
    echo
    echo "Written by \`RESULTS=1 bench/many_tensors.sh\`; replaced on every run. This 2-core VM"
    echo "($(nproc) CPUs, ${model:-unknown model}, kernel $(uname -r), ${fs:-?} in ${TMPDIR:-/tmp}),"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet 2>/dev/null || echo ' (with local changes)'),"
    echo "page cache warm, whole process, median of $REPEAT runs (min-max) taken round-robin."
    echo "\"x 300\" is the ratio to the 300-tensor model of the same bytes (for the synth"
    echo "pairs: to the 290-tensor twin, per byte; inspect reads no data: plain ratio),"
    echo "the median of the ratios of the runs of one round (seconds apart, so that a slow"
    echo "stretch of the machine slows both sides);"
    echo "\"us/tensor\" is what each tensor adds ((min - min at 300) / (N - 300), from the"
    echo "fastest runs, the least disturbed): a flat column is a linear cost, a growing"
    echo "one a superlinear term (the scaling line). \"over data\""
    echo "is peak RSS less the tensor bytes; \"bytes/tensor over\" what each tensor adds to it."
    echo
    awk -v counts="$COUNTS" -v cmds="$COMMANDS" -v repeat="$REPEAT" '
        FILENAME ~ /facts$/ { n[$1] = $2; bytes[$1] = $3; next }
        { key = $1 " " $2; t[key] = t[key] " " $4; at[key, $3] = $4; if ($5 > rss[key]) rss[key] = $5 }
        function sorted(s, a,   k, i, j, x) {
            k = split(s, a, " ")
            for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return k
        }
        function med(key,   a, k) { k = sorted(t[key], a); return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
        function lo(key,   a) { sorted(t[key], a); return a[1] }
        function hi(key,   a, k) { k = sorted(t[key], a); return a[k] }
        function over(m, c) { return rss[c " " m] * 1024 - bytes[m] }
        # The median of the ratios of runs of one round: the two runs of a
        # pair are seconds apart, so a slow stretch of the machine slows both.
        function paired(k, b, scale,   r, s, a, n) {
            s = ""
            for (r = 1; r <= repeat; r++) s = s " " (at[k, r] / at[b, r]) * scale
            n = sorted(s, a)
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END {
            nc = split(counts, N, " "); ncmd = split(cmds, C, " ")
            base = "n" N[1]
            print "Equal bytes (" bytes[base] " bytes of bfloat16 in every model, in tensors of one size; build/bench/trestle_many_model):"
            print ""
            print "| command | tensors | wall s, median (min-max) | x 300 | us/tensor | peak RSS MiB | over data MiB | bytes/tensor over |"
            print "|---|---|---|---|---|---|---|---|"
            for (i = 1; i <= ncmd; i++) for (j = 1; j <= nc; j++) {
                m = "n" N[j]; c = C[i]; k = c " " m; b = c " " base
                per = n[m] > n[base] ? sprintf("%.2f", (lo(k) - lo(b)) / (n[m] - n[base]) * 1e6) : "-"
                pb = n[m] > n[base] && c != "inspect" ? sprintf("%.0f", (over(m, c) - over(base, c)) / (n[m] - n[base])) : "-"
                od = c != "inspect" ? sprintf("%.1f", over(m, c) / 1048576) : "-"
                printf "| %s | %d | %.3f (%.3f-%.3f) | %.2f | %s | %.1f | %s | %s |\n", c, n[m], med(k), lo(k), hi(k),
                       paired(k, b, 1), per, rss[k] / 1024, od, pb
            }
            print ""
            print "The issue'"'"'s models (`trestle synth --layers 11111 --size 300M`, `--layers 2222 --size 300M`)"
            print "beside 290-tensor synth models of about their bytes (`--layers 32 --size 284M`, `--size 227M`):"
            print ""
            print "| command | model | tensors | MiB | wall s, median (min-max) | twin s | x twin, per byte | over data MiB | bytes/tensor over |"
            print "|---|---|---|---|---|---|---|---|---|"
            split("s11111 s2222", S, " ")
            for (i = 1; i <= ncmd; i++) for (j = 1; j <= 2; j++) {
                m = S[j]; w = m "twin"; c = C[i]; k = c " " m; kw = c " " w
                ratio = paired(k, kw, c == "inspect" ? 1 : bytes[w] / bytes[m])
                od = c != "inspect" ? sprintf("%.1f", over(m, c) / 1048576) : "-"
                pb = c != "inspect" ? sprintf("%.0f", (over(m, c) - over(w, c)) / (n[m] - n[w])) : "-"
                printf "| %s | %s | %d | %.1f | %.3f (%.3f-%.3f) | %.3f | %.2f | %s | %s |\n", c, m == "s11111" ? "--layers 11111" : "--layers 2222",
                       n[m], bytes[m] / 1048576, med(k), lo(k), hi(k), med(kw), ratio, od, pb
            }
        }' "$dir/facts" "$dir/runs"
    echo
    echo "Command: \`REPEAT=$REPEAT COUNTS=\"$COUNTS\" bench/many_tensors.sh\`"
    echo "$END"
}

report >"$dir/section.md"
cat "$dir/section.md"
if [ -n "${RESULTS:-}" ]; then
    . bench/bench_lib.sh
    replace_section bench/RESULTS.md "$BEGIN" "$END" "$dir/section.md"
fi
