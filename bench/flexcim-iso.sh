#!/usr/bin/env bash
# FlexCiM at iso-accuracy (issue 15, item 6): for SmolLM2, sweep the average
# sparsity with FLOW-measured N:M (flow-nm{method=flow}) + prune-nm under each
# accelerator's pattern set, and for every point measure the perplexity and
# simulate decode (1 row) and prefill (128 rows) latency and energy per token
# in both weight regimes (resident, streamed). Then bench/flexcim-iso.py
# writes the table (md + json) and the Pareto SVG and reads off each
# accelerator at the perplexity of uniform 4:8.
#
# usage: bench/flexcim-iso.sh [MODEL] [CHUNKS] [ONLY]
#   MODEL   default smollm2-135m;  CHUNKS perplexity chunks of 512 tokens (default 20)
#   ONLY    optional regex over the row labels
# env: FLEXC (default ./target/release/flexc), TEXT (pride-and-prejudice),
#      PRUNE (prune-nm options, default align=pairs:32: tile-aligned Wanda masks,
#      what the macros need; update=sparsegpt,align=pairs:32 for SparseGPT),
#      OUT_DIR (bench/results/flexcim-iso-raw), REFS (one more LABEL=PPL to read off at).
#
# Pattern sets (flow-nm candidates; each block gets one, the DP measures):
#   flexcim    {1..8}:8, {1..4}:4, 1:2 (flow-nm's default; the macro runs
#              1:8/3:8/6:8 as 2:8/4:8/8:8, see arch.toml)
#   fixed-2:4  2:4 and dense (so at most 50% sparsity)
#   vegeta     1:4, 2:4, dense (a VEGETA-like N:4 engine)
#   dense      the dense model on the dense DCiM
# Each point's hardware numbers are the accelerator's own run of that point's
# model: FlexCiM's, or the named `flexc sim --baseline` (the dense DCiM on the
# dense model). Statistics: flexc's cached default (Wanda scores, Hessians);
# N:M probe tables are cached under ~/.cache/flexc/sensitivity/.
# Commands per row:
#   flexc perplexity MODEL -f TEXT --ctx 512 --chunks CHUNKS --format json --pipeline PIPE
#   flexc sim MODEL --pipeline PIPE --engine analytical --rows 128 --baseline dense,fixed-2:4,vegeta --format json
set -u
MODEL=${1:-smollm2-135m}
CHUNKS=${2:-20}
ONLY=${3:-}
FLEXC=${FLEXC:-./target/release/flexc}
TEXT=${TEXT:-pride-and-prejudice}
PRUNE=${PRUNE:-align=pairs:32}
OUT_DIR=${OUT_DIR:-bench/results/flexcim-iso-raw}
mkdir -p "$OUT_DIR"
tag=$(basename "$MODEL" | tr -c 'a-zA-Z0-9.\n-' _)
out="$OUT_DIR/$tag.jsonl"

# accelerator | label | flow-nm options ('-' = the dense model)
ROWS=$(cat <<'EOF2'
flexcim|50% FLOW, FlexCiM set|sparsity=0.5,dense-ends=false
fixed-2:4|50% FLOW, 2:4 or dense|sparsity=0.5,candidates=2:4,8:8,dense-ends=false
reference|uniform 4:8|method=uniform,pattern=4:8,dense-ends=false
vegeta|50% FLOW, N:4 set|sparsity=0.5,candidates=1:4,2:4,4:4,dense-ends=false
flexcim|60% FLOW, FlexCiM set|sparsity=0.6,dense-ends=false
vegeta|60% FLOW, N:4 set|sparsity=0.6,candidates=1:4,2:4,4:4,dense-ends=false
flexcim|40% FLOW, FlexCiM set|sparsity=0.4,dense-ends=false
fixed-2:4|40% FLOW, 2:4 or dense|sparsity=0.4,candidates=2:4,8:8,dense-ends=false
vegeta|40% FLOW, N:4 set|sparsity=0.4,candidates=1:4,2:4,4:4,dense-ends=false
dense|dense|-
flexcim|70% FLOW, FlexCiM set|sparsity=0.7,dense-ends=false
vegeta|70% FLOW, N:4 set|sparsity=0.7,candidates=1:4,2:4,4:4,dense-ends=false
EOF2
)

i=0
while IFS='|' read -r acc label fopts; do
  i=$((i + 1))
  [ -n "$ONLY" ] && ! grep -Eq "$ONLY" <<<"$label" && continue
  if [ "$fopts" = "-" ]; then pipe=cpu; simpipe="flow-nm{method=uniform,pattern=8:8},prune-nm"; else pipe="flow-nm{$fopts},prune-nm{$PRUNE}"; simpipe=$pipe; fi
  # Raw outputs per row; an existing one (same pipeline) is reused, not re-measured.
  key=$(printf '%s|%s|%s' "$pipe" "$CHUNKS" "$TEXT" | sha1sum | cut -c1-12)
  pf="$OUT_DIR/$tag.$key.ppl.json"; sf="$OUT_DIR/$tag.$key.sim.json"
  echo "== $acc: $label: $pipe" >&2
  if [ ! -s "$pf" ]; then
    t0=$(date +%s)
    nice -n 10 "$FLEXC" perplexity "$MODEL" -f "$TEXT" --ctx 512 --chunks "$CHUNKS" --format json --pipeline "$pipe" >"$pf.tmp" 2>>"$OUT_DIR/$tag.err" || { echo "perplexity failed: $label" >&2; continue; }
    jq --argjson s "$(( $(date +%s) - t0 ))" '. + {wall_seconds: $s}' "$pf.tmp" >"$pf" && rm -f "$pf.tmp"
  fi
  if [ ! -s "$sf" ]; then
    # Only the headline and the remarks (the whole report is large).
    nice -n 10 "$FLEXC" sim "$MODEL" --pipeline "$simpipe" --engine analytical --rows 128 --baseline dense,fixed-2:4,vegeta --format json 2>>"$OUT_DIR/$tag.err" | jq -c '{remarks, headline}' >"$sf.tmp" && [ -s "$sf.tmp" ] && mv "$sf.tmp" "$sf" || { echo "sim failed: $label" >&2; continue; }
  fi
  echo "   ppl $(jq -r .ppl "$pf")" >&2
done <<<"$ROWS"
# One JSON line per row that has both, in ROWS order.
: >"$out"
while IFS='|' read -r acc label fopts; do
  if [ "$fopts" = "-" ]; then pipe=cpu; else pipe="flow-nm{$fopts},prune-nm{$PRUNE}"; fi
  key=$(printf '%s|%s|%s' "$pipe" "$CHUNKS" "$TEXT" | sha1sum | cut -c1-12)
  pf="$OUT_DIR/$tag.$key.ppl.json"; sf="$OUT_DIR/$tag.$key.sim.json"
  [ -s "$pf" ] && [ -s "$sf" ] || continue
  jq -c -n --arg acc "$acc" --arg lab "$label" --arg pipe "$pipe" --slurpfile p "$pf" --slurpfile s "$sf" '
    {accelerator: $acc, label: $lab, pipeline: $pipe, ppl: $p[0].ppl, stderr: $p[0].stderr, chunks: $p[0].chunks, ppl_wall_seconds: $p[0].wall_seconds,
     remarks: $s[0].remarks,
     hw: [$s[0].headline[] | {regime, phase, rows,
           flexcim: .flexcim, dense: (.baselines[] | select(.name == "dense")),
           "fixed-2:4": (.baselines[] | select(.name == "fixed-2:4")), vegeta: (.baselines[] | select(.name == "vegeta"))}]}' >>"$out"
done <<<"$ROWS"
# REFS: further LABEL=PPL read-offs (e.g. the per-row uniform 4:8 of flow-measured-smollm2.md).
python3 "$(dirname "$0")/flexcim-iso.py" "$out" "bench/results/flexcim-iso-$tag" ${REFS:+"$REFS"}
