# bench_lib.sh - what the bench/*.sh scripts share; source it.

# Write a SIZE, SHARDS-shard bfloat16 sample at PREFIX with `trestle synth`
# and leave it in the page cache as an operator has it: a checkpoint written
# earlier and cached by reading it, not one this process just wrote
# (freshly written files sit in the cache as small dirty 4 KiB folios; read
# back they come in large folios, which both cat and trestle read faster).
# So: flush, drop these files from the cache, and read them back in.
warm_sample() {  # TRESTLE PREFIX SIZE SHARDS
    "$1" synth "$2" --size "$3" --shards "$4" --dtype bf16 >/dev/null
    sync
    for f in "$2".data-*; do dd if="$f" iflag=nocache count=0 status=none; done
    cat "$2".data-* >/dev/null
}

best() { sort -g | head -1; }
now() { date +%s.%N; }

# Best wall time of REPEAT runs of a command (its output discarded).
timeit() {
    for _ in $(seq "$REPEAT"); do
        t0=$(now); "$@" >/dev/null; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'
    done | best
}

# Put SECTION_FILE (which starts with the line BEGIN and ends with END) into
# RESULTS_FILE: in place of the old section between those marker lines,
# keeping everything around it, or appended when there is none.
replace_section() {  # RESULTS_FILE BEGIN END SECTION_FILE
    local out
    out=$(mktemp "${TMPDIR:-/tmp}/trestle-results-XXXXXX")
    touch "$1"
    if grep -qF "$2" "$1" && grep -qF "$3" "$1"; then
        awk -v begin="$2" -v end="$3" -v section="$4" '
            $0 == begin { while ((getline line < section) > 0) print line; skip = 1; next }
            $0 == end   { skip = 0; next }
            !skip       { print }' "$1" > "$out"
    else
        { cat "$1"; echo; cat "$4"; } > "$out"
    fi
    cp "$out" "$1"
    rm -f "$out"
    echo "updated $1" >&2
}
