#!/usr/bin/env bash
# Issue 7's comparison: the plan select-gemm picks against every
# single-primitive plan (select-gemm{only=...}), on a real model whose layers
# differ: attention weights re-quantized to 2-bit #gq (LUT territory), FFN
# weights pruned 2:4 (#nm, sparse territory), the LM head left as shipped.
# Plans alternate within each round, so each round's ratios are measured
# side by side on the same (noisy, shared) machine.
#
#   bench/select-gemm.sh [model] [rounds]
set -euo pipefail
model=${1:-smollm2-135m}
rounds=${2:-2}
cd "$(dirname "$0")/.."
cargo build -q --release -p flexc
flexc=target/release/flexc
base='prune-nm{pattern=2:4,score=magnitude},quantize{bits=2,group=64,layers=*attn*}'
echo "model $model | base pipeline $base"
$flexc import "$model" -o /tmp/flexc-select-gemm.fir
$flexc opt /tmp/flexc-select-gemm.fir --passes "$base,select-gemm{target=cpu},tile-gemm{target=cpu}" --explain -o /dev/null 2>&1 \
  | awk '/->/ {n[$3]++} END {for (p in n) printf "selected: %s for %d GEMMs\n", p, n[p]}'
for r in $(seq "$rounds"); do
  for only in "" ",only=dense" ",only=lut" ",only=sparse"; do
    printf 'round %s  %-28s ' "$r" "select-gemm{target=cpu$only}"
    $flexc bench model "$model" --repeats 3 --prompt-tokens 128 --gen-tokens 32 \
      --pipeline "$base,select-gemm{target=cpu$only},tile-gemm{target=cpu}" | tail -2 | tr '\n' ' '
    echo
  done
done
