#!/usr/bin/env bash
# export-llama-cpp.sh: flexc's quantizer, run by llama.cpp. Compiles MODEL
# with a ggml-typed quantizing pipeline (default: importance-weighted RTN to
# Q4_0 on every block linear) into a .flexc, exports it to GGUF, and measures
# perplexity on the same text and chunks with `flexc perplexity` on the
# .flexc and with llama.cpp's `llama-perplexity` on the exported GGUF. The
# two must agree within 0.5% (exit 1 otherwise).
#
# Usage: bench/export-llama-cpp.sh [--model M] [--pipeline P] [--chunks N] [--threads T] [--out FILE.md]
# Environment: FLEXC=path/to/flexc (default: cargo build --release -p flexc).
# Needs llama.cpp's tools (bench/compare-llama-cpp.sh --build-only builds them).
set -euo pipefail
MODEL=smollm2-135m
PIPELINE="quantize{scheme=q4_0,method=rtn},select-gemm{target=cpu},tile-gemm{target=cpu}"
CHUNKS=10
THREADS=2
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --pipeline) PIPELINE="$2"; shift 2 ;;
        --chunks) CHUNKS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
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
text=$cache/texts/pride_and_prejudice.unwrapped.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$FLEXC" compile "$MODEL" --target cpu --pipeline "$PIPELINE" -o "$tmp/m.flexc" 2>/dev/null
"$FLEXC" export "$tmp/m.flexc" -o "$tmp/m.gguf" 2>/dev/null
ours=$("$FLEXC" perplexity "$tmp/m.flexc" -f "$text" --ctx 512 --chunks "$CHUNKS" --threads "$THREADS" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
theirs=$("$LLAMA/llama-perplexity" -m "$tmp/m.gguf" -f "$text" -c 512 -b 512 --chunks "$CHUNKS" -t "$THREADS" 2>&1 | sed -nE 's/.*Final estimate: PPL = ([0-9.]+).*/\1/p')
[ -n "$theirs" ] || { echo "llama-perplexity did not load or run the exported GGUF" >&2; exit 1; }
{
echo "# GGUF export: flexc's quantizer in llama.cpp ($MODEL)"
echo
echo "Pipeline \`$PIPELINE\`; .flexc $(stat -c %s "$tmp/m.flexc") bytes, exported GGUF $(stat -c %s "$tmp/m.gguf") bytes."
echo "Perplexity on $(basename "$text"), $CHUNKS chunks of 512, $THREADS threads:"
echo
echo "| engine | file | perplexity |"
echo "|---|---|---|"
echo "| flexc perplexity | .flexc | $ours |"
echo "| llama-perplexity | exported .gguf | $theirs |"
echo
python3 -c "import sys; a,b=float('$ours'),float('$theirs'); d=abs(a-b)/b*100; print(f'difference {d:.3f}% (limit 0.5%)'); sys.exit(0 if d <= 0.5 else 1)"
} | tee ${OUT:+"$OUT"}
test "${PIPESTATUS[0]}" -eq 0
