#!/usr/bin/env bash
# compare-llama-cpp.sh: llama.cpp, ik_llama.cpp and flexc side by side, on the
# same model file, the same text and the same thread count, in one run.
#
# What it does:
#   1. Builds llama-bench, llama-perplexity, llama-quantize and llama-imatrix of two engines
#      (static, -march=native, CPU only) under
#      ${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}:
#        llama.cpp     from the tree vendored in the PyPI sdist llama-cpp-python==0.3.36
#        ik_llama.cpp  from the tree vendored in the PyPI sdist ik-llama-cpp-python==0.1.5
#      (that tree lacks the generated common/build-info.cpp and
#      common/cmake/build-info-gen-cpp.cmake: the script writes both; it is
#      configured with GGML_IQK_FA_ALL_QUANTS=OFF, which only drops flash-
#      attention kernels for quantised KV caches, unused here, and halves
#      its build). cmake and ninja come from PyPI into a venv. A build is
#      skipped when its binaries are there.
#   2. Checks every engine's perplexity on the same text before quoting its
#      speed: llama-perplexity -c 512 -b 512 --chunks CHUNKS, and
#      flexc perplexity --ctx 512 --chunks CHUNKS. An engine whose perplexity
#      is more than PPL_TOL (default 5%) above the lowest of the engines'
#      computes that model wrongly: its speed is printed with "(wrong)" and
#      no ratio is taken against it.
#   3. Speed, in ROUNDS alternating rounds (engine order llama.cpp,
#      ik_llama.cpp, flexc inside each round, so load drift hits all alike):
#        llama-bench -p 512 -n 64 -r 3 -t THREADS -o json     (both llama.cpp builds)
#        flexc bench model MODEL --threads THREADS --repeats 3 --format json
#   4. Prints one table per model: metric, the three engines (median of the
#      rounds, the range of the rounds after it), flexc / llama.cpp and
#      flexc / ik_llama.cpp.
#
# How long it takes (2-core AMD EPYC): the llama.cpp build ~7 min and the
# ik_llama.cpp build ~25 min on idle cores (2-3x that on shared ones), once;
# per model and round about 1 min per engine; perplexity at 8 chunks
# ~15 s per engine (Gemma 3's 262k vocabulary makes it ~3x that).
#
# Usage: bench/compare-llama-cpp.sh [--threads N] [--chunks K] [--rounds R]
#          [--model NAME|PATH]... [--no-flexc] [--no-ik] [--flexc-128] [--build-only] [--json OUT]
#   --threads N   threads for every engine (default 2)
#   --chunks K    perplexity chunks of 512 tokens (default 8)
#   --rounds R    alternating speed rounds (default 2)
#   --model M     smollm2-135m, gemma3-270m, or a .gguf path; repeatable (default: both)
#   --no-flexc    no flexc rows;  --no-ik  no ik_llama.cpp rows
#   --flexc-128   also flexc with FLEXC_WIDE=off (Cranelift's 128-bit kernels
#                 only, no generated wide kernels) as engine "flexc-128"
#   --build-only  build both engines' tools and stop
#   --json OUT    also write every raw figure as JSON lines to OUT
# Environment: FLEXC=path/to/flexc (default: cargo build --release -p flexc in
# this repo, into ${CARGO_TARGET_DIR:-target}); PPL_TOL (default 0.05);
# FLEXC_ARGS: extra arguments for both flexc commands (e.g. "--pipeline none").

set -euo pipefail

THREADS=2
CHUNKS=8
ROUNDS=2
MODELS=()
RUN_FLEXC=1
RUN_IK=1
RUN_128=0
JSON_OUT=""
BUILD_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --chunks) CHUNKS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --model) MODELS+=("$2"); shift 2 ;;
        --no-flexc) RUN_FLEXC=0; shift ;;
        --no-ik) RUN_IK=0; shift ;;
        --flexc-128) RUN_128=1; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        --build-only) BUILD_ONLY=1; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#MODELS[@]} -eq 0 ] && MODELS=(smollm2-135m gemma3-270m)
PPL_TOL="${PPL_TOL:-0.05}"
read -r -a FLEXC_EXTRA <<<"${FLEXC_ARGS:-}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}"
TEXT="$CACHE/texts/pride_and_prejudice.unwrapped.txt"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/compare-llama-cpp.XXXXXX")"
VENV="$CACHE/bench-venv"
command -v jq >/dev/null || { echo "compare-llama-cpp.sh: needs jq (apt-get install jq)" >&2; exit 1; }

# ---------------------------------------------------------------- 1. builds
# Engine table: name, PyPI sdist, version, directory under the cache, source
# tree inside the sdist.
LC_DIR="$CACHE/llama.cpp";    LC_SRC="$LC_DIR/llama_cpp_python-0.3.36/vendor/llama.cpp"
IK_DIR="$CACHE/ik_llama.cpp"; IK_SRC="$IK_DIR/ik_llama_cpp_python-0.1.5/vendor/ik_llama.cpp"
LC_BIN="$LC_DIR/build/bin";   IK_BIN="$IK_DIR/build/bin"

ensure_tools() {
    if [ ! -x "$VENV/bin/cmake" ] || [ ! -x "$VENV/bin/ninja" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q cmake ninja >&2
    fi
}

# fetch_sdist DIR PACKAGE VERSION SUBTREE: unpacks SUBTREE of the sdist into DIR.
fetch_sdist() {
    local dir="$1" pkg="$2" ver="$3" sub="$4" stem
    stem="$(echo "$pkg" | tr - _)-$ver"
    [ -d "$dir/$stem/$sub" ] && return 0
    mkdir -p "$dir"
    python3 "$REPO/bench/pypi_sdist.py" "$pkg" "$ver" "$dir" >/dev/null
    tar xzf "$dir/$stem.tar.gz" -C "$dir" "$stem/$sub"
}

# build_engine NAME SRC DIR TARGETS EXTRA_CMAKE_ARGS...  (TARGETS: space-separated)
build_engine() {
    local name="$1" src="$2" dir="$3" targets="$4"; shift 4
    local bin="$dir/build/bin" t missing=0
    for t in $targets; do [ -x "$bin/$t" ] || missing=1; done
    [ "$missing" = 0 ] && return 0
    echo "== building $name into $dir (see the header for how long)" >&2
    ensure_tools
    mkdir -p "$dir/logs"
    local t0=$SECONDS
    PATH="$VENV/bin:$PATH" cmake -S "$src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF "$@" >"$dir/logs/cmake.log" 2>&1 ||
        { cat "$dir/logs/cmake.log" >&2; exit 1; }
    PATH="$VENV/bin:$PATH" nice -n 10 cmake --build "$dir/build" -j"$(nproc)" --target $targets \
        >"$dir/logs/build.log" 2>&1 || { grep -m20 -B2 -A5 'error' "$dir/logs/build.log" >&2; exit 1; }
    echo "== $name built in $((SECONDS - t0)) s" >&2
}

fetch_sdist "$LC_DIR" llama-cpp-python 0.3.36 vendor/llama.cpp
# mainline also builds llama-server and llama-simple, the references of
# bench/serve.sh and bench/artifact-startup.sh.
TOOLS="llama-perplexity llama-bench llama-quantize llama-imatrix"
build_engine llama.cpp "$LC_SRC" "$LC_DIR" "$TOOLS llama-server llama-simple"
if [ "$RUN_IK" = 1 ]; then
    fetch_sdist "$IK_DIR" ik-llama-cpp-python 0.1.5 vendor/ik_llama.cpp
    # The sdist ships build-info.cpp.in but not the file its git step generates.
    if [ ! -f "$IK_SRC/common/build-info.cpp" ]; then
        cat >"$IK_SRC/common/build-info.cpp" <<EOF
int LLAMA_BUILD_NUMBER = 0;
char const *LLAMA_COMMIT = "ik-llama-cpp-python-0.1.5";
char const *LLAMA_COMPILER = "$(cc --version | head -1)";
char const *LLAMA_BUILD_TARGET = "$(cc -dumpmachine)";
EOF
    fi
    mkdir -p "$IK_SRC/common/cmake"
    [ -f "$IK_SRC/common/cmake/build-info-gen-cpp.cmake" ] || : >"$IK_SRC/common/cmake/build-info-gen-cpp.cmake"
    build_engine ik_llama.cpp "$IK_SRC" "$IK_DIR" "$TOOLS" -DGGML_IQK_FA_ALL_QUANTS=OFF
fi
[ "$BUILD_ONLY" = 1 ] && { echo "$LC_BIN"; [ "$RUN_IK" = 1 ] && echo "$IK_BIN"; exit 0; }

# ---------------------------------------------------------------- helpers
model_path() {
    case "$1" in
        smollm2-135m) echo "$CACHE/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        gemma3-270m) echo "$CACHE/models/gemma3-270m/gemma-3-270m-q4_k_m.gguf" ;;
        *) echo "$1" ;;
    esac
}

FLEXC_CMD=()
if [ "$RUN_FLEXC" = 1 ]; then
    if [ -n "${FLEXC:-}" ]; then
        FLEXC_CMD=("$(realpath "$(command -v "$FLEXC")")")
    elif (cd "$REPO" && nice -n 10 cargo build --release -q -p flexc >"$LOGS/cargo.log" 2>&1); then
        FLEXC_CMD=("${CARGO_TARGET_DIR:-$REPO/target}/release/flexc")
    else
        echo "compare-llama-cpp.sh: cargo build of flexc failed (see $LOGS/cargo.log)" >&2
        exit 1
    fi
fi
[ -f "$TEXT" ] || { echo "missing $TEXT (run: flexc pull pride-and-prejudice)" >&2; exit 1; }

ENGINES=(llama.cpp)
[ "$RUN_IK" = 1 ] && ENGINES+=(ik_llama.cpp)
[ "$RUN_FLEXC" = 1 ] && ENGINES+=(flexc)
[ "$RUN_FLEXC" = 1 ] && [ "$RUN_128" = 1 ] && ENGINES+=(flexc-128)
# flexc_env ENGINE: the environment an engine's flexc runs with.
flexc_env() { if [ "$1" = flexc-128 ]; then echo FLEXC_WIDE=off; else echo FLEXC_WIDE=; fi; }
engine_bin() { case "$1" in llama.cpp) echo "$LC_BIN" ;; ik_llama.cpp) echo "$IK_BIN" ;; esac; }

RAW="$LOGS/raw.tsv"   # model \t engine \t metric \t value
: >"$RAW"
raw() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }

# ppl ENGINE PATH NAME: the engine's perplexity (or "failed").
ppl() {
    local e="$1" path="$2" name="$3" out="$LOGS/$name.$1.ppl"
    if [ "${e%-128}" = flexc ]; then
        env "$(flexc_env "$e")" "${FLEXC_CMD[@]}" perplexity "$path" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --threads "$THREADS" \
            "${FLEXC_EXTRA[@]}" --format json >"$out" 2>"$out.err" && jq -r '.ppl' "$out" && return 0
    else
        "$(engine_bin "$e")/llama-perplexity" -m "$path" -c 512 -b 512 --chunks "$CHUNKS" -t "$THREADS" -f "$TEXT" \
            >"$out" 2>"$out.err" &&
            cat "$out" "$out.err" | sed -n 's/.*Final estimate: PPL.* = \([0-9.]*\) .*/\1/p' | tail -1 && return 0
    fi
    echo "note: $e perplexity failed on $name (see $out.err)" >&2
    echo failed
}

# speed ENGINE PATH NAME ROUND: appends pp512 and tg64 tok/s to RAW.
speed() {
    local e="$1" path="$2" name="$3" out="$LOGS/$name.$1.bench$4.json"
    if [ "${e%-128}" = flexc ]; then
        if env "$(flexc_env "$e")" "${FLEXC_CMD[@]}" bench model "$path" --threads "$THREADS" --repeats 3 "${FLEXC_EXTRA[@]}" --format json \
            >"$out" 2>"$out.err"; then
            raw "$name" "$e" pp "$(jq -r '.prefill_tok_s' "$out")"
            raw "$name" "$e" tg "$(jq -r '.decode_tok_s' "$out")"
            return
        fi
    elif "$(engine_bin "$e")/llama-bench" -m "$path" -p 512 -n 64 -r 3 -t "$THREADS" -o json >"$out" 2>"$out.err"; then
        raw "$name" "$e" pp "$(jq -r '.[] | select(.n_prompt == 512 and .n_gen == 0) | .avg_ts' "$out")"
        raw "$name" "$e" tg "$(jq -r '.[] | select(.n_prompt == 0 and .n_gen == 64) | .avg_ts' "$out")"
        return
    fi
    echo "note: $e bench failed on $name (see $out.err)" >&2
}

# ---------------------------------------------------------------- 2 + 3. runs
cd "$LOGS"   # ik_llama.cpp writes llama.log into the working directory
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
START=$(date -u +%H:%M)
for m in "${MODELS[@]}"; do
    path="$(model_path "$m")"
    name="$(basename "$path" .gguf)"
    [ -f "$path" ] || { echo "missing model $path (run: flexc pull $m)" >&2; exit 1; }
    for e in "${ENGINES[@]}"; do
        echo "== $name: $e perplexity, $CHUNKS chunks" >&2
        raw "$name" "$e" ppl "$(ppl "$e" "$path" "$name")"
    done
    for r in $(seq 1 "$ROUNDS"); do
        for e in "${ENGINES[@]}"; do
            echo "== $name: $e speed, round $r/$ROUNDS" >&2
            speed "$e" "$path" "$name" "$r"
        done
    done
done

# ---------------------------------------------------------------- 4. table
echo
echo "$(date -u +%F) $START-$(date -u +%H:%M) UTC; threads $THREADS; load average (1 min) $LOAD0 before, $(cut -d' ' -f1 /proc/loadavg) after, on $(nproc) cores"
echo "llama.cpp: llama-cpp-python 0.3.36 sdist; ik_llama.cpp: ik-llama-cpp-python 0.1.5 sdist; flexc: ${FLEXC_CMD[*]:-none} $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
echo "perplexity: $(basename "$TEXT"), ctx 512, $CHUNKS chunks; speed: median of $ROUNDS alternating rounds [min-max] (logs: $LOGS)"
awk -F'\t' -v tol="$PPL_TOL" -v engines="${ENGINES[*]}" '
    function num(s) { return s ~ /^[0-9.eE+-]+$/ }
    function median(list,    a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        if (n == 0) return ""
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function range(list,    a, n, i, lo, hi) {
        n = split(list, a, " "); if (n < 2) return ""
        lo = hi = a[1] + 0
        for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
        return sprintf(" [%.0f-%.0f]", lo, hi)
    }
    { if (!($1 in seen)) { seen[$1] = 1; order[++nm] = $1 }
      if (num($4)) v[$1, $2, $3] = v[$1, $2, $3] (v[$1, $2, $3] == "" ? "" : " ") $4 }
    END {
        ne = split(engines, E, " "); has_flexc = 0
        for (k = 1; k <= ne; k++) if (E[k] == "flexc") has_flexc = 1
        for (i = 1; i <= nm; i++) {
            m = order[i]; best = ""
            for (k = 1; k <= ne; k++) { p = v[m, E[k], "ppl"]; if (p != "" && (best == "" || p + 0 < best + 0)) best = p }
            for (k = 1; k <= ne; k++) {
                p = v[m, E[k], "ppl"]
                wrong[E[k]] = (p == "" || p + 0 > best * (1 + tol))
            }
            printf "\n%s\n", m
            nr = 0
            if (has_flexc) for (k = 1; k <= ne; k++) if (E[k] != "flexc") R[++nr] = E[k]
            printf "| %-14s", "metric"; for (k = 1; k <= ne; k++) printf " | %-28s", E[k]
            for (k = 1; k <= nr; k++) printf " | flexc/%-12s", R[k]
            printf " |\n|----------------"; for (k = 1; k <= ne; k++) printf "|------------------------------"
            for (k = 1; k <= nr; k++) printf "|--------------------"; printf "|\n"
            split("ppl pp tg", M, " "); split("perplexity|pp512 tok/s|tg64 tok/s", L, "|")
            for (j = 1; j <= 3; j++) {
                printf "| %-14s", L[j]
                for (k = 1; k <= ne; k++) {
                    s = v[m, E[k], M[j]]
                    if (s == "") cell = "failed"
                    else if (j == 1) cell = sprintf("%.3f%s", s, wrong[E[k]] ? " (wrong)" : "")
                    else cell = sprintf("%.1f%s%s", median(s), range(s), wrong[E[k]] ? " (wrong)" : "")
                    med[E[k]] = (s == "") ? "" : (j == 1 ? s : median(s))
                    printf " | %-28s", cell
                }
                for (k = 1; k <= nr; k++) {
                    a = med["flexc"]; b = med[R[k]]; r = "-"
                    if (a != "" && b != "" && b + 0 != 0 && (j == 1 || (!wrong[R[k]] && !wrong["flexc"])))
                        r = sprintf(j == 1 ? "%.3f" : "%.2f", a / b)
                    printf " | %-18s", r
                }
                printf " |\n"
            }
            for (k = 1; k <= ne; k++) if (wrong[E[k]])
                printf "note: %s computes this model wrongly (perplexity %s, lowest %s, tolerance %g%%): its speed is not a fair reference\n", E[k], v[m, E[k], "ppl"] == "" ? "failed" : v[m, E[k], "ppl"], best, tol * 100
        }
    }' "$RAW"

if [ -n "$JSON_OUT" ]; then
    jq -Rn --argjson threads "$THREADS" --argjson chunks "$CHUNKS" \
        '[inputs | split("\t") | {model: .[0], engine: .[1], metric: .[2], value: (.[3] | tonumber? // .[3]), threads: $threads, chunks: $chunks}]' \
        <"$RAW" >"$JSON_OUT"
    echo "wrote $JSON_OUT" >&2
fi
