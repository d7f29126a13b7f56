# bench_lib.sh - what the bench/*_compare.sh scripts share; source it.

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
