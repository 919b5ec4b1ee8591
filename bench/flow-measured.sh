#!/usr/bin/env bash
# FLOW that measures (flow-nm{method=flow}: per-block ΔNLL probes with the
# pipeline's own prune-nm, exact DP) against uniform N:M at the nearest
# pattern at least as sparse and OWL-NM, at 50/60/70% average sparsity,
# each with Wanda masks and with SparseGPT reconstruction (issue 15).
#
# usage: bench/flow-measured.sh [MODEL] [CHUNKS] [ONLY]
#   MODEL   model name or file (default smollm2-135m)
#   CHUNKS  perplexity chunks of 512 tokens (default 20)
#   ONLY    optional regex: run only rows whose label matches
# env: FLEXC (default ./target/release/flexc), TEXT (pride-and-prejudice),
#      STATS (statistics with Hessians; default: computed once into
#      ~/.cache/flexc/bench-stats/MODEL-32x512-hessian.json by
#      `flexc calibrate MODEL --samples 32 --seqlen 512 --hessian`; never
#      commit it), OUT_DIR (bench/results/flow-measured-raw).
#
# Every row is one-shot, dense-ends=false (no block kept dense; embeddings,
# LM head and norms never pruned):
#   flexc perplexity MODEL -f TEXT --ctx 512 --chunks CHUNKS --format json \
#       --stats STATS --pipeline PIPE
# The measured rows' block costs are measured (and cached under
# ~/.cache/flexc/sensitivity/) by the first command that needs them, the
# `flexc sparsity-report` that prints the plan; its stderr (with the
# measurement time) goes to $OUT_DIR/MODEL.report.err.
set -u
MODEL=${1:-smollm2-135m}
CHUNKS=${2:-20}
ONLY=${3:-}
FLEXC=${FLEXC:-./target/release/flexc}
TEXT=${TEXT:-pride-and-prejudice}
OUT_DIR=${OUT_DIR:-bench/results/flow-measured-raw}
mkdir -p "$OUT_DIR"
tag=$(basename "$MODEL" | tr -c 'a-zA-Z0-9.\n-' _)
STATS=${STATS:-$HOME/.cache/flexc/bench-stats/$tag-32x512-hessian.json}
if [ ! -f "$STATS" ]; then
  mkdir -p "$(dirname "$STATS")"
  nice -n 10 "$FLEXC" calibrate "$MODEL" --samples 32 --seqlen 512 --hessian -o "$STATS" || exit 1
fi

# label | flow-nm options | prune-nm options (in the order they were run)
ROWS=$(cat <<'EOF2'
60% measured, Wanda|sparsity=0.6,dense-ends=false|
50% measured, Wanda|sparsity=0.5,dense-ends=false|
70% measured, Wanda|sparsity=0.7,dense-ends=false|
70% uniform 2:8, Wanda|method=uniform,pattern=2:8,dense-ends=false|
60% measured, SparseGPT|sparsity=0.6,dense-ends=false|update=sparsegpt
50% measured, SparseGPT|sparsity=0.5,dense-ends=false|update=sparsegpt
70% measured, SparseGPT|sparsity=0.7,dense-ends=false|update=sparsegpt
70% uniform 2:8, SparseGPT|method=uniform,pattern=2:8,dense-ends=false|update=sparsegpt
60% OWL-NM 3:8, Wanda|method=owl-nm,pattern=3:8,lamda=2,hyper-m=6,dense-ends=false|
70% OWL-NM 2:8, Wanda|method=owl-nm,pattern=2:8,lamda=2,hyper-m=6,dense-ends=false|
60% OWL-NM 3:8, SparseGPT|method=owl-nm,pattern=3:8,lamda=2,hyper-m=6,dense-ends=false|update=sparsegpt
70% OWL-NM 2:8, SparseGPT|method=owl-nm,pattern=2:8,lamda=2,hyper-m=6,dense-ends=false|update=sparsegpt
50% OWL-NM 4:8, SparseGPT|method=owl-nm,pattern=4:8,lamda=2,hyper-m=6,dense-ends=false|update=sparsegpt
50% uniform 4:8, Wanda|method=uniform,pattern=4:8,dense-ends=false|
50% OWL-NM 4:8, Wanda|method=owl-nm,pattern=4:8,lamda=2,hyper-m=6,dense-ends=false|
50% uniform 4:8, SparseGPT|method=uniform,pattern=4:8,dense-ends=false|update=sparsegpt
60% uniform 3:8, Wanda|method=uniform,pattern=3:8,dense-ends=false|
60% uniform 3:8, SparseGPT|method=uniform,pattern=3:8,dense-ends=false|update=sparsegpt
62.5% measured, Wanda|sparsity=0.625,dense-ends=false|
62.5% measured, SparseGPT|sparsity=0.625,dense-ends=false|update=sparsegpt
75% measured, Wanda|sparsity=0.75,dense-ends=false|
75% measured, SparseGPT|sparsity=0.75,dense-ends=false|update=sparsegpt
dense|-|
EOF2
)

echo "| method | pipeline | params pruned | patterns | ppl ± stderr | ppl (s) |"
echo "|---|---|---|---|---|---|"
while IFS='|' read -r label fopts popts; do
  [ -n "$ONLY" ] && ! grep -Eq "$ONLY" <<<"$label" && continue
  if [ "$fopts" = "-" ]; then
    pipe=cpu
    achieved=0
    patterns=-
  else
    pipe="flow-nm{$fopts},prune-nm${popts:+{$popts\}}"
    rep=$(nice -n 10 "$FLEXC" sparsity-report "$MODEL" --stats "$STATS" --pipeline "$pipe" --format json 2>>"$OUT_DIR/$tag.report.err")
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
  jq -c --arg lab "$label" --arg pipe "$pipe" --arg patterns "$patterns" --arg achieved "$achieved" --arg dt "$dt" \
    '{label: $lab, pipeline: $pipe, achieved: $achieved, patterns: $patterns, ppl, stderr, chunks, seconds: ($dt|tonumber)}' <<<"$out" >>"$OUT_DIR/$tag.jsonl"
  echo "| $label | \`$pipe\` | $achieved | $patterns | $(jq -r '"\(.ppl*1000|round/1000) ± \(.stderr*1000|round/1000)"' <<<"$out") | $dt |"
done <<<"$ROWS"
