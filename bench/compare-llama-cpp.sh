#!/usr/bin/env bash
# compare-llama-cpp.sh: flexc against llama.cpp, side by side, on the same
# model file, the same text and the same thread count.
#
# What it does:
#   1. Builds llama.cpp's llama-bench, llama-perplexity, llama-quantize and llama-imatrix from
#      the llama.cpp tree vendored in the PyPI sdist llama-cpp-python==0.3.36
#      (static, -march=native, CPU only) into
#      ${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}/llama.cpp.
#      cmake and ninja come from PyPI into a venv there. Skipped when the
#      binaries are already there.
#   2. For each model (default: smollm2-135m and gemma3-270m) runs
#        llama-bench -p 512 -n 64 -r 3 -t THREADS
#        llama-perplexity -c 512 -b 512 --chunks CHUNKS -t THREADS -f pride_and_prejudice.unwrapped.txt
#   3. Runs the flexc equivalents when this flexc has them
#        flexc bench model MODEL --format json
#        flexc perplexity MODEL -f TEXT --ctx 512 --chunks CHUNKS --format json
#      ("not available" in the table otherwise, or when they fail).
#   4. Prints one table: model, metric, llama.cpp, flexc, ratio (flexc / llama.cpp).
#
# How long it takes (2-core AMD EPYC, nothing else running):
#   the llama.cpp build, once: about 7 min (13 min when the cores are shared);
#   per model, llama.cpp: llama-bench ~1 min, llama-perplexity at 40 chunks
#   ~1 min (SmolLM2) to ~1.5 min (Gemma 3) at 2 threads, about twice that at 1;
#   the flexc rows: whatever flexc takes (the reference interpreter is far
#   slower than llama.cpp; pick a fast --backend when flexc has one).
#
# Usage: bench/compare-llama-cpp.sh [--threads N] [--chunks K] [--model NAME|PATH]...
#          [--backend B] [--no-flexc] [--json OUT.json]
#   --threads N   threads for both engines (default 2)
#   --chunks K    perplexity chunks of 512 tokens (default 40)
#   --model M     smollm2-135m, gemma3-270m, or a .gguf path; repeatable (default: both)
#   --backend B   passed to flexc as --backend B
#   --no-flexc    llama.cpp rows only
#   --json OUT    also write the figures as JSON to OUT
#   --build-only  build llama.cpp's tools and stop
# Environment: FLEXC=path/to/flexc (default: cargo build --release -p flexc in this repo).

set -euo pipefail

THREADS=2
CHUNKS=40
MODELS=()
BACKEND=""
RUN_FLEXC=1
JSON_OUT=""
BUILD_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --chunks) CHUNKS="$2"; shift 2 ;;
        --model) MODELS+=("$2"); shift 2 ;;
        --backend) BACKEND="$2"; shift 2 ;;
        --no-flexc) RUN_FLEXC=0; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        --build-only) BUILD_ONLY=1; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#MODELS[@]} -eq 0 ] && MODELS=(smollm2-135m gemma3-270m)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}"
LC="$CACHE/llama.cpp"
LCPP_VERSION=0.3.36
SRC="$LC/llama_cpp_python-$LCPP_VERSION/vendor/llama.cpp"
BUILD="$LC/build"
BIN="$BUILD/bin"
TEXT="$CACHE/texts/pride_and_prejudice.unwrapped.txt"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/compare-llama-cpp.XXXXXX")"

# ---------------------------------------------------------------- 1. build
build_llama_cpp() {
    if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-perplexity" ] && [ -x "$BIN/llama-quantize" ] && [ -x "$BIN/llama-imatrix" ]; then
        return 0
    fi
    echo "== building llama.cpp (llama-cpp-python $LCPP_VERSION sdist) into $LC; this takes 7-13 min" >&2
    mkdir -p "$LC"
    if [ ! -d "$SRC" ]; then
        local sdist="$LC/llama_cpp_python-$LCPP_VERSION.tar.gz"
        [ -f "$sdist" ] || python3 -m pip download --no-deps --no-binary :all: -d "$LC" "llama-cpp-python==$LCPP_VERSION" >&2
        tar xzf "$sdist" -C "$LC" "llama_cpp_python-$LCPP_VERSION/vendor/llama.cpp"
    fi
    if [ ! -x "$LC/venv/bin/cmake" ] || [ ! -x "$LC/venv/bin/ninja" ]; then
        python3 -m venv "$LC/venv"
        "$LC/venv/bin/pip" install -q cmake ninja >&2
    fi
    local t0=$SECONDS
    PATH="$LC/venv/bin:$PATH" cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >"$LOGS/cmake.log" 2>&1 || { cat "$LOGS/cmake.log" >&2; exit 1; }
    PATH="$LC/venv/bin:$PATH" cmake --build "$BUILD" -j2 --target llama-perplexity llama-bench llama-quantize llama-imatrix \
        >"$LOGS/build.log" 2>&1 || { tail -50 "$LOGS/build.log" >&2; exit 1; }
    echo "== llama.cpp built in $((SECONDS - t0)) s" >&2
}
build_llama_cpp
[ "$BUILD_ONLY" = 1 ] && { echo "$BIN"; exit 0; }

# ---------------------------------------------------------------- helpers
model_path() {
    case "$1" in
        smollm2-135m) echo "$CACHE/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        gemma3-270m) echo "$CACHE/models/gemma3-270m/gemma-3-270m-q4_k_m.gguf" ;;
        *) echo "$1" ;;
    esac
}

FLEXC_CMD=()
find_flexc() {
    if [ -n "${FLEXC:-}" ]; then
        FLEXC_CMD=("$FLEXC")
    elif (cd "$REPO" && cargo build --release -q -p flexc >"$LOGS/cargo.log" 2>&1); then
        FLEXC_CMD=("$REPO/target/release/flexc")
    else
        echo "note: cargo build of flexc failed (see $LOGS/cargo.log); flexc rows are not available" >&2
        RUN_FLEXC=0
    fi
}

# flexc_has SUBCOMMAND: whether this flexc knows the subcommand.
flexc_has() { "${FLEXC_CMD[@]}" "$1" --help >/dev/null 2>&1; }

ROWS="$LOGS/rows.tsv"   # model \t metric \t llama.cpp \t flexc
: >"$ROWS"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$ROWS"; }

# ---------------------------------------------------------------- 2 + 3. runs
[ "$RUN_FLEXC" = 1 ] && find_flexc
[ -f "$TEXT" ] || { echo "missing $TEXT (run: flexc pull pride-and-prejudice)" >&2; exit 1; }
BACKEND_ARGS=()
[ -n "$BACKEND" ] && BACKEND_ARGS=(--backend "$BACKEND")

for m in "${MODELS[@]}"; do
    path="$(model_path "$m")"
    name="$(basename "$path" .gguf)"
    [ -f "$path" ] || { echo "missing model $path (run: flexc pull $m)" >&2; exit 1; }
    echo "== $name: llama-bench -t $THREADS" >&2
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    "$BIN/llama-bench" -m "$path" -p 512 -n 64 -r 3 -t "$THREADS" -o json >"$LOGS/$name.bench.json" 2>"$LOGS/$name.bench.err" ||
        { cat "$LOGS/$name.bench.err" >&2; exit 1; }
    pp=$(jq -r '.[] | select(.n_prompt == 512 and .n_gen == 0) | "\(.avg_ts) \(.stddev_ts)"' "$LOGS/$name.bench.json")
    tg=$(jq -r '.[] | select(.n_prompt == 0 and .n_gen == 64) | "\(.avg_ts) \(.stddev_ts)"' "$LOGS/$name.bench.json")

    echo "== $name: llama-perplexity --chunks $CHUNKS -t $THREADS" >&2
    t0=$(date +%s.%N)
    "$BIN/llama-perplexity" -m "$path" -c 512 -b 512 --chunks "$CHUNKS" -t "$THREADS" -f "$TEXT" \
        >"$LOGS/$name.ppl.out" 2>"$LOGS/$name.ppl.err" || { tail -20 "$LOGS/$name.ppl.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    ppl=$(cat "$LOGS/$name.ppl.out" "$LOGS/$name.ppl.err" | sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 \2/p' | tail -1)
    ppl_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

    f_pp="not available"; f_tg="not available"; f_ppl="not available"; f_ppl_s="not available"
    if [ "$RUN_FLEXC" = 1 ]; then
        if flexc_has bench; then
            echo "== $name: flexc bench model" >&2
            if "${FLEXC_CMD[@]}" bench model "$path" --threads "$THREADS" "${BACKEND_ARGS[@]}" --format json \
                >"$LOGS/$name.flexc-bench.json" 2>"$LOGS/$name.flexc-bench.err"; then
                # flexc's documented contract: one object with prefill_tok_s and decode_tok_s.
                f_pp=$(jq -r '.prefill_tok_s // "not available"' "$LOGS/$name.flexc-bench.json")
                f_tg=$(jq -r '.decode_tok_s // "not available"' "$LOGS/$name.flexc-bench.json")
            else
                echo "note: flexc bench failed (see $LOGS/$name.flexc-bench.err)" >&2
            fi
        fi
        if flexc_has perplexity; then
            echo "== $name: flexc perplexity --chunks $CHUNKS" >&2
            t0=$(date +%s.%N)
            if "${FLEXC_CMD[@]}" perplexity "$path" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --threads "$THREADS" \
                "${BACKEND_ARGS[@]}" --format json >"$LOGS/$name.flexc-ppl.json" 2>"$LOGS/$name.flexc-ppl.err"; then
                t1=$(date +%s.%N)
                f_ppl=$(jq -r '.ppl' "$LOGS/$name.flexc-ppl.json")
                f_ppl_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
            else
                echo "note: flexc perplexity failed (see $LOGS/$name.flexc-ppl.err)" >&2
            fi
        fi
    fi
    row "$name" "pp512 tok/s" "${pp%% *}" "$f_pp"
    row "$name" "tg64 tok/s" "${tg%% *}" "$f_tg"
    row "$name" "ppl ($CHUNKS chunks of 512)" "${ppl%% *}" "$f_ppl"
    row "$name" "ppl wall s" "$ppl_s" "$f_ppl_s"
    echo "$name pp512 ${pp} tg64 ${tg} ppl ${ppl} ppl_wall_s ${ppl_s} loadavg1 ${load_before} $(cut -d' ' -f1 /proc/loadavg)" >>"$LOGS/llama.txt"
done

# ---------------------------------------------------------------- 4. table
echo
echo "load average (1 min) now: $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores: other work on the machine slows both engines"
echo "threads $THREADS, text $(basename "$TEXT"), llama.cpp from llama-cpp-python $LCPP_VERSION (logs: $LOGS)"
awk -F'\t' 'BEGIN { printf "%-28s %-26s %14s %14s %8s\n", "model", "metric", "llama.cpp", "flexc", "ratio" }
    {
        ratio = "-"
        if ($3 ~ /^[0-9.eE+-]+$/ && $4 ~ /^[0-9.eE+-]+$/ && $3 + 0 != 0) ratio = sprintf("%.3f", $4 / $3)
        l = ($3 ~ /^[0-9.eE+-]+$/) ? sprintf("%.4g", $3) : $3
        f = ($4 ~ /^[0-9.eE+-]+$/) ? sprintf("%.4g", $4) : $4
        printf "%-28s %-26s %14s %14s %8s\n", $1, $2, l, f, ratio
    }' "$ROWS"

if [ -n "$JSON_OUT" ]; then
    # One object per model with llama.cpp's raw figures (mean and stddev / error).
    jq -Rn --argjson threads "$THREADS" --argjson chunks "$CHUNKS" '
        [inputs | split(" ") | {model: .[0],
            pp512_tok_s: (.[2] | tonumber), pp512_stddev: (.[3] | tonumber),
            tg64_tok_s: (.[5] | tonumber), tg64_stddev: (.[6] | tonumber),
            ppl: (.[8] | tonumber), ppl_err: (.[9] | tonumber), ppl_wall_s: (.[11] | tonumber),
            loadavg1_before_after: [(.[13] | tonumber), (.[14] | tonumber)],
            threads: $threads, chunks: $chunks}]' <"$LOGS/llama.txt" >"$JSON_OUT"
    echo "wrote $JSON_OUT" >&2
fi
