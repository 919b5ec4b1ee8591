#!/usr/bin/env bash
# N:M pruning with and without SparseGPT reconstruction, uniform against the
# measured allocation (flow-nm{method=flow}) and FLOW's own formulation
# (method=flow-reference), perplexity on Pride and Prejudice (issue 15).
#
# usage: bench/sparsegpt-nm.sh [MODEL] [CHUNKS] [ONLY]
#   MODEL   model name or file (default smollm2-135m)
#   CHUNKS  perplexity chunks of 512 tokens (default 20)
#   ONLY    optional regex: run only rows whose label matches
# env: FLEXC (default ./target/release/flexc), TEXT (pride-and-prejudice),
#      STATS (calibration statistics with Hessians; default: computed once
#      into ~/.cache/flexc/bench-stats/MODEL-32x512-hessian.json (400 MB with
#      its .hessian.bin sidecar for SmolLM2; never commit it) by
#      `flexc calibrate MODEL --samples 32 --seqlen 512 --hessian`, the
#      settings of flexc's cached default statistics), OUT_DIR
#      (bench/results/sparsegpt-nm-raw).
#
# Every pruned row is one-shot (the plan and the masks from the dense
# statistics; no sequential recalibration) with dense-ends=false: no block is
# kept dense; embeddings, the LM head and norms are never pruned. Rows:
#   flexc perplexity MODEL -f TEXT --ctx 512 --chunks CHUNKS --format json \
#       --stats STATS --pipeline PIPE
# Output: a markdown table on stdout; one JSON line per row in
# $OUT_DIR/MODEL.jsonl (with the plan summary from `flexc sparsity-report`).
set -u
MODEL=${1:-smollm2-135m}
CHUNKS=${2:-20}
ONLY=${3:-}
FLEXC=${FLEXC:-./target/release/flexc}
TEXT=${TEXT:-pride-and-prejudice}
OUT_DIR=${OUT_DIR:-bench/results/sparsegpt-nm-raw}
mkdir -p "$OUT_DIR"
tag=$(basename "$MODEL" | tr -c 'a-zA-Z0-9.\n-' _)
STATS=${STATS:-$HOME/.cache/flexc/bench-stats/$tag-32x512-hessian.json}
if [ ! -f "$STATS" ]; then
  mkdir -p "$(dirname "$STATS")"
  nice -n 10 "$FLEXC" calibrate "$MODEL" --samples 32 --seqlen 512 --hessian -o "$STATS" || exit 1
fi

# label | flow-nm options ("-": none; "=": prune-nm only) | prune-nm options
ROWS=$(cat <<'EOF2'
uniform 4:8, Wanda|method=uniform,pattern=4:8,dense-ends=false|
uniform 4:8, SparseGPT|method=uniform,pattern=4:8,dense-ends=false|update=sparsegpt
measured 60%, Wanda|sparsity=0.6,dense-ends=false|
measured 60%, SparseGPT|sparsity=0.6,dense-ends=false|update=sparsegpt
uniform 3:8, Wanda|method=uniform,pattern=3:8,dense-ends=false|
uniform 3:8, SparseGPT|method=uniform,pattern=3:8,dense-ends=false|update=sparsegpt
measured 50%, Wanda|sparsity=0.5,dense-ends=false|
measured 50%, SparseGPT|sparsity=0.5,dense-ends=false|update=sparsegpt
uniform 4:8 pairs:32, SparseGPT|method=uniform,pattern=4:8,dense-ends=false|update=sparsegpt,align=pairs:32
uniform 2:4, SparseGPT|method=uniform,pattern=2:4,dense-ends=false|update=sparsegpt
measured 60% pairs:32, SparseGPT|sparsity=0.6,dense-ends=false|update=sparsegpt,align=pairs:32
FLOW-reference 60% nearest, Wanda|method=flow-reference,sparsity=0.6,mode=nearest,dense-ends=false|
dense|-|
EOF2
)

echo "| method | pipeline | achieved sparsity | patterns | ppl ± stderr | ppl (s) |"
echo "|---|---|---|---|---|---|"
while IFS='|' read -r label fopts popts; do
  [ -n "$ONLY" ] && ! grep -Eq "$ONLY" <<<"$label" && continue
  if [ "$fopts" = "-" ]; then
    pipe=cpu
    achieved=0
    patterns=-
  else
    pipe="flow-nm{$fopts},prune-nm${popts:+{$popts\}}"
    rep=$("$FLEXC" sparsity-report "$MODEL" --stats "$STATS" --pipeline "flow-nm{$fopts}" --format json 2>/dev/null)
    achieved=$(jq -r '.param_sparsity*10000|round/10000' <<<"$rep" 2>/dev/null)
    patterns=$(jq -r '[.blocks[] | "\(.n):\(.m)"] | group_by(.) | map("\(.[0])×\(length)") | join(" ")' <<<"$rep" 2>/dev/null)
  fi
  t0=$(date +%s.%N)
  out=$(nice -n 10 "$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --stats "$STATS" --pipeline "$pipe" 2>"$OUT_DIR/$tag.err")
  rc=$?
  dt=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  if [ $rc -ne 0 ]; then
    echo "| $label | \`$pipe\` | $achieved | $patterns | failed (exit $rc: $(tail -1 "$OUT_DIR/$tag.err")) | $dt |"
    continue
  fi
  jq -c --arg label "$label" --arg pipe "$pipe" --arg patterns "$patterns" --arg achieved "$achieved" --arg dt "$dt" \
    '{label: $label, pipeline: $pipe, achieved: $achieved, patterns: $patterns, ppl, stderr, seconds: ($dt|tonumber)}' <<<"$out" >>"$OUT_DIR/$tag.jsonl"
  echo "| $label | \`$pipe\` | $achieved | $patterns | $(jq -r '"\(.ppl*1000|round/1000) ± \(.stderr*1000|round/1000)"' <<<"$out") | $dt |"
done <<<"$ROWS"
