#!/usr/bin/env bash
# Serving throughput: flexc serve and (when it can be built from the cached
# llama.cpp sdist build) llama-server on the same model, same threads,
# greedy streamed completions from 1/2/4/8 concurrent clients; aggregate
# decode tok/s and time to first token; plus `flexc run`'s prefill time on
# the same prompt for the TTFT comparison. Writes bench/results/serve-smollm2.md.
#
#   bench/serve.sh [MODEL.gguf] [THREADS] [REQUESTS_PER_CLIENT] [MAX_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${FLEXC_CACHE_DIR:-$HOME/.cache/flexc}
MODEL=${1:-$CACHE/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-2}
REQS=${3:-2}
MAXTOK=${4:-64}
CLIENTS=1,2,4,8
OUT=bench/results/serve-smollm2.md
cargo build --release -p flexc >/dev/null
FLEXC=${CARGO_TARGET_DIR:-target}/release/flexc
LLAMA_SERVER=$CACHE/llama.cpp/build/bin/llama-server
PORT_F=18431
PORT_L=18432

wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.2; done; return 1; }

nice -n 10 "$FLEXC" serve "$MODEL" --threads "$THREADS" --port $PORT_F --parallel 8 --ctx 512 2>/tmp/flexc-serve.log &
FPID=$!
trap 'kill $FPID 2>/dev/null || true; [ -n "${LPID:-}" ] && kill $LPID 2>/dev/null || true' EXIT
wait_up $PORT_F
FLEXC_ROWS=$(python3 bench/serve_clients.py "http://127.0.0.1:$PORT_F" $CLIENTS "$REQS" "$MAXTOK")
kill $FPID; wait $FPID 2>/dev/null || true

RUN_STATS=$("$FLEXC" run "$MODEL" --threads "$THREADS" -p "Once upon a time, in a small village by the sea, there lived" -n 1 --stats 2>&1 >/dev/null | tail -1)

LLAMA_ROWS=""
if [ -x "$LLAMA_SERVER" ]; then
  nice -n 10 "$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" --port $PORT_L -np 8 -c 4096 >/tmp/llama-server.log 2>&1 &
  LPID=$!
  wait_up $PORT_L
  LLAMA_ROWS=$(python3 bench/serve_clients.py "http://127.0.0.1:$PORT_L" $CLIENTS "$REQS" "$MAXTOK")
  kill $LPID; wait $LPID 2>/dev/null || true
fi

python3 - "$FLEXC_ROWS" "$LLAMA_ROWS" "$RUN_STATS" "$MODEL" "$THREADS" "$REQS" "$MAXTOK" > "$OUT" <<'PY'
import json, sys
f, l, run, model, threads, reqs, maxtok = sys.argv[1:]
fr = [json.loads(x) for x in f.splitlines() if x.strip()]
lr = {r["clients"]: r for r in (json.loads(x) for x in l.splitlines() if x.strip())}
print(f"# Serving throughput: {model.split('/')[-1]}, {threads} threads\n")
print(f"Greedy streamed `/v1/completions`, {maxtok} tokens per request, {reqs} requests per client, "
      "clients 1/2/4/8 at once; aggregate tok/s = generated tokens / wall time; TTFT from request to first text chunk. "
      "flexc: `flexc serve --parallel 8 --ctx 512` (continuous batching); llama-server: `-np 8 -c 4096` (same model file, same threads).\n")
print("Command: `bench/serve.sh " + f"{model} {threads} {reqs} {maxtok}`\n")
base = fr[0]["aggregate_tok_s"] if fr else 1
print("| clients | flexc tok/s | × 1 client | flexc TTFT median (s) | llama-server tok/s | llama-server TTFT median (s) |")
print("|---|---|---|---|---|---|")
for r in fr:
    o = lr.get(r["clients"])
    print(f"| {r['clients']} | {r['aggregate_tok_s']} | {r['aggregate_tok_s'] / base:.2f} | {r['ttft_median_s']} | "
          f"{o['aggregate_tok_s'] if o else 'n/a'} | {o['ttft_median_s'] if o else 'n/a'} |")
print(f"\n`flexc run` on the same prompt (`-n 1 --stats`): {run}\n")
print("Raw rows (flexc):\n\n```\n" + f.strip() + "\n```\n")
if l.strip():
    print("Raw rows (llama-server):\n\n```\n" + l.strip() + "\n```")
else:
    print("llama-server: not built (no llama-server in the cached llama.cpp build).")
PY
cat "$OUT"
