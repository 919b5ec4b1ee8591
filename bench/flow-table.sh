#!/usr/bin/env bash
# FLOW vs OWL vs uniform N:M perplexity table (issue 6).
#
# usage: bench/flow-table.sh MODEL DENSE_STATS [CHUNKS] [ONLY]
#   MODEL        a model name or file (smollm2-135m, gemma3-270m, ...)
#   DENSE_STATS  dense statistics from
#                `flexc calibrate MODEL --samples $SAMPLES --seqlen $SEQLEN -o DENSE_STATS`
#   CHUNKS       perplexity chunks of 512 tokens (default 10)
#   ONLY         optional regex: run only rows whose "label target" matches
# env: SAMPLES, SEQLEN (default 16, 512: must match DENSE_STATS), PRUNING
#      (sequential | oneshot | both; default sequential), FLEXC, TEXT, OUT_DIR.
#
# Pruned rows:
#   sequential: flexc calibrate MODEL --samples S --seqlen L --dense DENSE_STATS \
#                   --sequential PIPE -o SEQ            (blocks pruned in order, each
#               scored on the outputs of the already-pruned earlier blocks), then
#               flexc perplexity MODEL ... --stats SEQ --pipeline PIPE
#   oneshot:    flexc perplexity MODEL ... --stats DENSE_STATS --pipeline PIPE
# with `flexc perplexity MODEL -f pride-and-prejudice --ctx 512 --chunks K
# --format json`. The N:M plan is chosen from the dense statistics in both
# modes; `flexc sparsity-report --format json` on the same flow-nm options
# gives the achieved sparsity. Every row has dense-ends=false (no block kept
# dense) unless its label says otherwise, so rows at one target are at the
# same sparsity. Embeddings, lm_head and norms are never pruned.
#
# Output: a markdown table on stdout; raw JSON lines in $OUT_DIR (default
# bench/results/flow-table-raw).
set -u
MODEL=${1:?model}
DENSE=${2:?dense statistics file}
CHUNKS=${3:-10}
ONLY=${4:-}
FLEXC=${FLEXC:-./target/release/flexc}
TEXT=${TEXT:-pride-and-prejudice}
SAMPLES=${SAMPLES:-16}
SEQLEN=${SEQLEN:-512}
PRUNING=${PRUNING:-sequential}
OUT_DIR=${OUT_DIR:-bench/results/flow-table-raw}
mkdir -p "$OUT_DIR"
tag=$(basename "$MODEL" | tr -c 'a-zA-Z0-9.\n-' _)

# Rows in priority order. label | target | flow-nm options ("-" = dense) | prune-nm options
ROWS=$(cat <<'EOF2'
dense|0|-|
FLOW nearest|0.5|method=flow-reference,sparsity=0.5,mode=nearest,dense-ends=false|
uniform 4:8|0.5|method=uniform,pattern=4:8,dense-ends=false|
OWL-NM base 4:8 (lamda=2,hyper-m=6)|0.5|method=owl-nm,pattern=4:8,lamda=2,hyper-m=6,dense-ends=false|
uniform 2:4|0.5|method=uniform,pattern=2:4,dense-ends=false|
FLOW exact|0.5|method=flow-reference,sparsity=0.5,mode=exact,dense-ends=false|
OWL unstructured (lamda=0.08,hyper-m=5)|0.5|method=owl,sparsity=0.5,lamda=0.08,hyper-m=5,dense-ends=false|
FLOW nearest|0.25|method=flow-reference,sparsity=0.25,mode=nearest,dense-ends=false|
uniform 6:8|0.25|method=uniform,pattern=6:8,dense-ends=false|
OWL-NM base 6:8 (lamda=2,hyper-m=6)|0.25|method=owl-nm,pattern=6:8,lamda=2,hyper-m=6,dense-ends=false|
OWL unstructured (lamda=0.08,hyper-m=5)|0.25|method=owl,sparsity=0.25,lamda=0.08,hyper-m=5,dense-ends=false|
uniform 3:4|0.25|method=uniform,pattern=3:4,dense-ends=false|
FLOW nearest, blocks 0 and L-1 dense|0.5|method=flow-reference,sparsity=0.5,mode=nearest|
FLOW exact|0.25|method=flow-reference,sparsity=0.25,mode=exact,dense-ends=false|
EOF2
)

ppl_of() { jq -r '"\(.ppl*1000|round/1000) ± \(.stderr*1000|round/1000)"' <<<"$1"; }

perplexity() { # stats pipeline raw → sets out, rc, dt
  local t0 t1
  t0=$(date +%s.%N)
  if [ -z "$2" ]; then
    out=$("$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --pipeline cpu 2>"$3.err")
  else
    out=$("$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --stats "$1" --pipeline "$2" 2>"$3.err")
  fi
  rc=$?
  t1=$(date +%s.%N)
  dt=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")
}

echo "| # | method | target | pruning | achieved (block mean) | patterns chosen | ppl ± stderr | calib (s) | ppl (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
i=0
while IFS='|' read -r label target fopts popts; do
  i=$((i + 1))
  [ -n "$ONLY" ] && ! [[ "$label $target" =~ $ONLY ]] && continue
  raw="$OUT_DIR/$tag-$i"
  if [ "$fopts" = "-" ]; then
    perplexity "" "" "$raw"
    echo "{\"label\":\"$label\",\"rc\":$rc,\"seconds\":$dt,\"result\":${out:-null}}" >"$raw.json"
    ppl=$([ $rc -eq 0 ] && ppl_of "$out" || echo "FAILED rc=$rc: $(tr '\n' ' ' <"$raw.err" | cut -c1-200)")
    echo "| $i | $label | 0 | - | 0 | - | $ppl | - | $dt |"
    continue
  fi
  pipe="flow-nm{$fopts},prune-nm${popts:+{$popts\}}"
  if ! rep=$("$FLEXC" sparsity-report "$MODEL" --stats "$DENSE" --pipeline "flow-nm{$fopts}" --format json 2>"$raw.report.err"); then
    echo "| $i | $label | $target | | report failed: $(tr '\n' ' ' <"$raw.report.err" | cut -c1-200) | | | | |"
    continue
  fi
  echo "$rep" >"$raw.report.json"
  ach=$(jq -r '.achieved_sparsity*10000|round/10000' <<<"$rep")
  # histogram of per-block patterns, e.g. "2:4×12 4:8×10 8:8×8" (u0.53 for unstructured)
  pats=$(jq -r '[.blocks[] | if .n then "\(.n):\(.m)" else "u\(.sparsity*100|round/100)" end] | group_by(.) | map("\(.[0])×\(length)") | join(" ")' <<<"$rep")
  for mode in sequential oneshot; do
    [ "$PRUNING" != both ] && [ "$PRUNING" != "$mode" ] && continue
    stats="$DENSE"; cdt="-"
    if [ "$mode" = sequential ]; then
      stats="$raw.seq.json"
      t0=$(date +%s.%N)
      if ! "$FLEXC" calibrate "$MODEL" --samples "$SAMPLES" --seqlen "$SEQLEN" --dense "$DENSE" --sequential "$pipe" -o "$stats" 2>"$raw.calib.err"; then
        echo "| $i | $label \`$pipe\` | $target | $mode | $ach | $pats | calibration FAILED: $(tr '\n' ' ' <"$raw.calib.err" | cut -c1-200) | | |"
        continue
      fi
      cdt=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
    fi
    perplexity "$stats" "$pipe" "$raw.$mode"
    echo "{\"label\":\"$label\",\"target\":$target,\"pruning\":\"$mode\",\"pipeline\":\"$pipe\",\"rc\":$rc,\"seconds\":$dt,\"calib_seconds\":\"$cdt\",\"result\":${out:-null}}" >"$raw.$mode.json"
    ppl=$([ $rc -eq 0 ] && ppl_of "$out" || echo "FAILED rc=$rc: $(tr '\n' ' ' <"$raw.$mode.err" | cut -c1-200)")
    echo "| $i | $label \`$pipe\` | $target | $mode | $ach | $pats | $ppl | $cdt | $dt |"
  done
done <<<"$ROWS"
