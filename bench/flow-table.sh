#!/usr/bin/env bash
# FLOW vs OWL vs uniform N:M perplexity table (issue 6).
#
# usage: bench/flow-table.sh MODEL STATS [CHUNKS] [ONLY]
#   MODEL   a model name or file (smollm2-135m, gemma3-270m, ...)
#   STATS   calibration statistics from `flexc calibrate`
#   CHUNKS  perplexity chunks of 512 tokens (default 10)
#   ONLY    optional regex: run only rows whose label matches
#
# Every row runs
#   flexc perplexity MODEL -f pride-and-prejudice --ctx 512 --chunks K \
#         --format json --stats STATS --pipeline PIPE
# and, for pruned rows, `flexc sparsity-report --format json` on the same
# flow-nm options for the achieved sparsity (mean over blocks, and fraction
# of block-linear parameters pruned). Pruning is one-shot: every block is
# scored with statistics of the dense model (no sequential re-calibration).
#
# "ends" says which blocks are left dense: "0,L-1" = flow-nm's default
# dense-ends=true (blocks 0 and L-1 forced to 8:8, for every method,
# uniform included); "none" = dense-ends=false. Embeddings, lm_head and norms
# are never pruned.
#
# Output: a markdown table on stdout; raw JSON lines in $OUT_DIR (default
# bench/results/flow-table-raw).
set -u
MODEL=${1:?model}
STATS=${2:?stats file}
CHUNKS=${3:-10}
ONLY=${4:-}
FLEXC=${FLEXC:-./target/release/flexc}
TEXT=${TEXT:-pride-and-prejudice}
OUT_DIR=${OUT_DIR:-bench/results/flow-table-raw}
mkdir -p "$OUT_DIR"
tag=$(basename "$MODEL" | tr -c 'a-zA-Z0-9.\n-' _)

# Rows are in priority order (a truncated run still has the core comparison).
# label | target | ends | flow-nm options ("" = dense) | prune-nm options
ROWS=$(cat <<'EOF'
dense|0|all|-|-
uniform 2:4 wanda|0.5|0,L-1|method=uniform,pattern=2:4|
uniform 2:4 wanda|0.5|none|method=uniform,pattern=2:4,dense-ends=false|
FLOW nearest|0.5|0,L-1|sparsity=0.5,mode=nearest|
FLOW nearest|0.5|none|sparsity=0.5,mode=nearest,dense-ends=false|
OWL-NM base 4:8 (lamda=2,hyper-m=6)|0.5|0,L-1|method=owl-nm,pattern=4:8,lamda=2,hyper-m=6|
OWL-NM base 4:8 (lamda=2,hyper-m=6)|0.5|none|method=owl-nm,pattern=4:8,lamda=2,hyper-m=6,dense-ends=false|
FLOW nearest|0.25|0,L-1|sparsity=0.25,mode=nearest|
FLOW nearest|0.25|none|sparsity=0.25,mode=nearest,dense-ends=false|
uniform 3:4 wanda|0.25|0,L-1|method=uniform,pattern=3:4|
uniform 3:4 wanda|0.25|none|method=uniform,pattern=3:4,dense-ends=false|
OWL-NM base 6:8 (lamda=2,hyper-m=6)|0.25|none|method=owl-nm,pattern=6:8,lamda=2,hyper-m=6,dense-ends=false|
uniform 4:8 wanda|0.5|0,L-1|method=uniform,pattern=4:8|
uniform 4:8 wanda|0.5|none|method=uniform,pattern=4:8,dense-ends=false|
uniform 2:4 magnitude|0.5|none|method=uniform,pattern=2:4,dense-ends=false,score=magnitude|score=magnitude
OWL unstructured (lamda=0.08,hyper-m=5)|0.5|none|method=owl,sparsity=0.5,lamda=0.08,hyper-m=5,dense-ends=false|
OWL unstructured (lamda=0.08,hyper-m=5)|0.25|none|method=owl,sparsity=0.25,lamda=0.08,hyper-m=5,dense-ends=false|
uniform 6:8 wanda|0.25|none|method=uniform,pattern=6:8,dense-ends=false|
FLOW exact|0.5|0,L-1|sparsity=0.5,mode=exact|
EOF
)

echo "| # | method | target | dense blocks | achieved (block mean) | params pruned | patterns chosen | ppl ± stderr | time (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
i=0
while IFS='|' read -r label target ends fopts popts; do
  i=$((i + 1))
  [ -n "$ONLY" ] && ! [[ "$label $target $ends" =~ $ONLY ]] && continue
  raw="$OUT_DIR/$tag-$i.json"
  if [ "$fopts" = "-" ]; then
    pipe=""
    ach="0"; par="0"; pats="-"
  else
    pipe="flow-nm{$fopts},prune-nm${popts:+{$popts\}}"
    rep=$("$FLEXC" sparsity-report "$MODEL" --stats "$STATS" --pipeline "flow-nm{$fopts}" --format json 2>"$raw.report.err")
    if [ $? -ne 0 ]; then
      echo "| $i | $label | $target | $ends | report failed: $(tr '\n' ' ' <"$raw.report.err" | cut -c1-200) | | | | |"
      continue
    fi
    echo "$rep" >"$raw.report"
    ach=$(jq -r '.achieved_sparsity*10000|round/10000' <<<"$rep")
    par=$(jq -r '.param_sparsity*10000|round/10000' <<<"$rep")
    # histogram of per-block patterns, e.g. "2:4×12 4:8×10 8:8×8" (u0.53 for unstructured)
    pats=$(jq -r '[.blocks[] | if .n then "\(.n):\(.m)" else "u\(.sparsity*100|round/100)" end] | group_by(.) | map("\(.[0])×\(length)") | join(" ")' <<<"$rep")
  fi
  t0=$(date +%s.%N)
  if [ -z "$pipe" ]; then
    out=$("$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --stats "$STATS" 2>"$raw.err")
  else
    out=$("$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --stats "$STATS" --pipeline "$pipe" 2>"$raw.err")
  fi
  rc=$?
  t1=$(date +%s.%N)
  dt=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")
  echo "{\"label\":\"$label\",\"target\":$target,\"ends\":\"$ends\",\"pipeline\":\"$pipe\",\"rc\":$rc,\"seconds\":$dt,\"result\":${out:-null}}" >"$raw"
  if [ $rc -ne 0 ]; then
    ppl="FAILED rc=$rc: $(tr '\n' ' ' <"$raw.err" | cut -c1-200)"
  else
    ppl=$(jq -r '"\(.ppl*1000|round/1000) ± \(.stderr*1000|round/1000)"' <<<"$out")
  fi
  echo "| $i | $label${pipe:+ \`$pipe\`} | $target | $ends | $ach | $par | $pats | $ppl | $dt |"
done <<<"$ROWS"
