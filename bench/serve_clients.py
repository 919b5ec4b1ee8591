"""Concurrent-client load for an OpenAI-compatible server (flexc serve or
llama-server): for each client count, that many threads each send REQUESTS
streamed greedy /v1/completions of MAX_TOKENS tokens (ignore_eos for
llama-server) and the script reports aggregate decode throughput (generated
tokens / wall time of the phase) and time to first token. Standard library
only. Prints one JSON object per client count.

  python3 bench/serve_clients.py URL CLIENTS[,CLIENTS...] REQUESTS MAX_TOKENS
"""

import json
import sys
import threading
import time
import urllib.request

PROMPTS = [
    "Once upon a time, in a small village by the sea, there lived",
    "The history of the printing press begins",
    "In the beginning of the twentieth century, the city of London",
    "The most important thing about learning to cook is",
    "A long time ago, the mountains of the north were home to",
    "Scientists have recently discovered that the ocean floor",
    "The old lighthouse keeper looked out over the water and",
    "When the train finally arrived at the station, the passengers",
]


def one(url, prompt, max_tokens):
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True, "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft, tokens, chunks = None, None, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("choices") and ev["choices"][0].get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
    return ttft, tokens if tokens is not None else chunks, time.perf_counter() - t0


def phase(url, clients, requests, max_tokens):
    results, lock = [], threading.Lock()

    def worker(k):
        for i in range(requests):
            r = one(url, PROMPTS[(k + i * clients) % len(PROMPTS)], max_tokens)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    toks = sum(r[1] for r in results)
    ttfts = sorted(r[0] for r in results if r[0] is not None)
    return {"clients": clients, "requests": len(results), "tokens": toks, "wall_s": round(wall, 3),
            "aggregate_tok_s": round(toks / wall, 2), "ttft_median_s": round(ttfts[len(ttfts) // 2], 3),
            "ttft_max_s": round(ttfts[-1], 3)}


if __name__ == "__main__":
    url, counts, requests, max_tokens = sys.argv[1], [int(c) for c in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
    one(url, PROMPTS[0], 4)  # warm-up
    for c in counts:
        print(json.dumps(phase(url, c, requests, max_tokens)), flush=True)
