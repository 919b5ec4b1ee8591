#!/usr/bin/env bash
# artifact-startup.sh: start-up time and file size of a compiled `.flexc`
# against running the same pipeline from the GGUF, and llama.cpp's model load.
#
# For each pipeline (default: none, cpu, a 4-bit RTN quantization ending in
# the cpu preset's kernel selection, and the 3-bit GPTQ mixed-precision model
# of the README, `quantize{bpw=3.0,lm-head=true},cpu`) on MODEL (default
# smollm2-135m):
#   1. flexc compile MODEL --target cpu --pipeline P -o OUT.flexc   (time, size)
#   2. flexc run MODEL --pipeline P -p PROMPT -n 1 --stats          (GGUF + pipeline)
#   3. flexc run OUT.flexc -p PROMPT -n 1 --stats                   (artifact)
#      each run REPEATS times; the median wall time (process start to exit,
#      first token included) and the median of flexc's own load / compile
#      (passes + JIT) / prefill figures are reported. A pipeline whose
#      compile took over a minute (GPTQ, calibration) runs from the GGUF once.
# Then llama.cpp's load of the GGUF: llama-perplexity --chunks 1 -c 128 -lv 4,
# its `llama_perf_context_print: load time` (the file's mmap, tensor setup and
# repacking for its CPU kernels, and its warm-up decode; llama.cpp has no
# pass stage).
#
# Usage: bench/artifact-startup.sh [--model M] [--repeats N] [--threads T] [--out FILE.md]
# Environment: FLEXC=path/to/flexc (default: cargo build --release -p flexc).
set -euo pipefail
MODEL=smollm2-135m
REPEATS=5
THREADS=2
OUT=""
PIPELINES=("none" "cpu" "quantize{bits=4,group=64,method=rtn},select-gemm{target=cpu},tile-gemm{target=cpu}" "quantize{bpw=3.0,lm-head=true},cpu")
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --repeats) REPEATS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --pipeline) PIPELINES=("$2"); shift 2 ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${FLEXC:-}" ]; then
    (cd "$root" && cargo build --release -q -p flexc)
    FLEXC="${CARGO_TARGET_DIR:-$root/target}/release/flexc"
fi
cache=${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}
LLAMA=$cache/llama.cpp/build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gguf=$("$FLEXC" inspect "$MODEL" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["file"])')
text=$cache/texts/pride_and_prejudice.unwrapped.txt
PROMPT="The capital of France is"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# One run: wall seconds, then load, compile, prefill seconds from --stats.
one_run() {
    local t0 t1 stats
    t0=$(now)
    stats=$("$FLEXC" run "$@" -p "$PROMPT" -n 1 --threads "$THREADS" --stats 2>&1 >/dev/null | grep '^load')
    t1=$(now)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$stats" | sed -E 's/load ([0-9.]+) s \| compile ([0-9.]+) s \| prefill [0-9]+ tok in ([0-9.]+) s.*/\1 \2 \3/')"
}

# Median of each column over N runs: runs N ARGS...
runs() {
    local f=$tmp/runs n="$1"
    shift
    : > "$f"
    for _ in $(seq "$n"); do one_run "$@" >> "$f"; done
    for c in 1 2 3 4; do awk -v c=$c '{print $c}' "$f" | median; done | tr '\n' ' '
}

{
echo "# .flexc start-up: $MODEL ($(basename "$gguf"), $(stat -c %s "$gguf") bytes)"
echo
echo "flexc $("$FLEXC" --version | awk '{print $2}'), $THREADS threads, median of $REPEATS runs of \`flexc run ... -p \"$PROMPT\" -n 1 --stats\`;"
echo "wall = process start to exit (first token included); load/compile/prefill are flexc's own --stats figures"
echo "(compile = passes + JIT). Machine: $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg) at the start."
echo
echo "| pipeline | compile to .flexc (s) | .flexc bytes | from | wall (s) | load (s) | passes + JIT (s) | prefill (s) |"
echo "|---|---|---|---|---|---|---|---|"
for p in "${PIPELINES[@]}"; do
    art=$tmp/m.flexc
    t0=$(now)
    "$FLEXC" compile "$MODEL" --target cpu --pipeline "$p" -o "$art" 2>/dev/null
    tc=$(echo "$(now) - $t0" | bc -l)
    size=$(stat -c %s "$art")
    n=$REPEATS
    from="GGUF + pipeline"
    if [ "$(echo "$tc > 60" | bc -l)" = 1 ]; then n=1; from="GGUF + pipeline (1 run)"; fi
    read -r w l c f <<< "$(runs "$n" "$MODEL" --pipeline "$p")"
    printf '| `%s` | %.2f | %d | %s | %.3f | %.3f | %.3f | %.3f |\n' "$p" "$tc" "$size" "$from" "$w" "$l" "$c" "$f"
    read -r w l c f <<< "$(runs "$REPEATS" "$art")"
    printf '| | | | .flexc | %.3f | %.3f | %.3f | %.3f |\n' "$w" "$l" "$c" "$f"
done
if [ -x "$LLAMA/llama-perplexity" ]; then
    head -c 3000 "$text" > "$tmp/short.txt"
    f=$tmp/llama
    : > "$f"
    for _ in $(seq "$REPEATS"); do
        "$LLAMA/llama-perplexity" -m "$gguf" -f "$tmp/short.txt" -c 128 -b 128 --chunks 1 -t "$THREADS" -lv 4 2>&1 | grep -E 'load time' | sed -E 's/.*load time = *([0-9.]+) ms.*/\1/' >> "$f"
    done
    echo
    echo "llama.cpp ($LLAMA/llama-perplexity -m $(basename "$gguf") -c 128 --chunks 1 -t $THREADS): load time median $(median < "$f") ms over $REPEATS runs."
fi
if [ -x "$LLAMA/llama-simple" ]; then
    # llama-simple: load, prefill the prompt, print one token; the same work as
    # `flexc run -n 1`, timed the same way (process start to exit).
    f=$tmp/simple
    : > "$f"
    for _ in $(seq "$REPEATS"); do
        t0=$(now)
        "$LLAMA/llama-simple" -m "$gguf" -n 1 "$PROMPT" >/dev/null 2>&1
        echo "$(now) - $t0" | bc -l >> "$f"
    done
    echo
    echo "llama.cpp ($LLAMA/llama-simple -m $(basename "$gguf") -n 1, same prompt): wall median $(median < "$f") s over $REPEATS runs."
fi
} | tee ${OUT:+"$OUT"}
