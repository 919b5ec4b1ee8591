"""Drives `flexc serve` with the real `openai` package (installed by the Rust
test into a venv from PyPI). Modes:

  clients URL   streaming and non-streaming chat, completions, usage, a bad
                request, and a client that disconnects mid-stream
  load URL PID CLIENTS REQUESTS SECONDS
                bounded load test: prompts run alone first (greedy), then
                CLIENTS threads send REQUESTS requests in all; every answer
                must equal its prompt's lone answer, no errors, and the
                server's resident memory must stay flat

Prints one line per check and exits non-zero on the first failure.
"""

import sys
import threading
import time

import openai

MODEL = "smollm2"


def client(url, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600, **kw)


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def chat_clients(url):
    c = client(url)
    models = c.models.list()
    check(len(models.data) == 1 and models.data[0].object == "model", f"/v1/models lists one model ({models.data[0].id})")

    msgs = [{"role": "system", "content": "You are a geography expert."}, {"role": "user", "content": "What is the capital of France? Answer in one word."}]
    r = c.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=24)
    text = r.choices[0].message.content
    check(r.object == "chat.completion" and r.choices[0].message.role == "assistant", "chat completion shape")
    check("Paris" in text, f"greedy chat answer names Paris: {text!r}")
    u = r.usage
    check(u.prompt_tokens > 20 and 0 < u.completion_tokens <= 24 and u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage {u.prompt_tokens}+{u.completion_tokens}")
    check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")

    # The same request streamed gives the same text, chunk by chunk.
    chunks = list(c.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=24, stream=True, stream_options={"include_usage": True}))
    deltas = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    check(chunks[0].choices[0].delta.role == "assistant", "first stream chunk carries the role")
    check("".join(deltas) == text, f"streamed chat equals the non-streamed answer ({len(deltas)} chunks)")
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    check(finals == [r.choices[0].finish_reason], "one finish_reason, on the last chunk")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == u.completion_tokens, "include_usage adds the usage chunk")

    # A multi-turn conversation with a system message.
    conv = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a primary color."},
    ]
    r2 = c.chat.completions.create(model=MODEL, messages=conv, temperature=0, max_tokens=16)
    check(len(r2.choices[0].message.content) > 0, f"multi-turn answer {r2.choices[0].message.content!r}")

    # Completions, whole and streamed, with a stop string.
    p = "The capital of France is"
    w = c.completions.create(model=MODEL, prompt=p, temperature=0, max_tokens=12)
    check(w.object == "text_completion" and len(w.choices[0].text) > 0, f"completion {w.choices[0].text!r}")
    s = "".join(ch.choices[0].text for ch in c.completions.create(model=MODEL, prompt=p, temperature=0, max_tokens=12, stream=True) if ch.choices)
    check(s == w.choices[0].text, "streamed completion equals the whole one")
    cut = w.choices[0].text.strip().split()[0] if w.choices[0].text.strip() else None
    if cut and len(w.choices[0].text.split(cut, 1)[1]) > 0:
        st = c.completions.create(model=MODEL, prompt=p, temperature=0, max_tokens=12, stop=[cut])
        check(cut not in st.choices[0].text and st.choices[0].finish_reason == "stop", f"stop string {cut!r} cuts the text: {st.choices[0].text!r}")
    seeded = [c.completions.create(model=MODEL, prompt=p, temperature=0.9, seed=7, max_tokens=8).choices[0].text for _ in range(2)]
    check(seeded[0] == seeded[1], "same seed, same sampled text")

    # Bad requests: OpenAI-shaped 400s naming the field.
    for kw, param in [({"top_p": 2}, "top_p"), ({"temperature": -1}, "temperature"), ({"n": 2}, "n"), ({"max_tokens": -5}, "max_tokens")]:
        try:
            c.chat.completions.create(model=MODEL, messages=msgs, **kw)
            check(False, f"{kw} is rejected")
        except openai.BadRequestError as e:
            err = e.body if isinstance(e.body, dict) else {}
            check(e.status_code == 400 and err.get("param") == param and err.get("type") == "invalid_request_error", f"{kw} -> 400 {err.get('message')!r}")
    try:
        c.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "x"}])
        check(False, "unknown role is rejected")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"unknown role -> 400 {e.body.get('message')!r}")

    # A client that goes away mid-stream: the server stops that answer and serves the next at once.
    stream = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Tell me a very long story about a dragon."}], temperature=0, max_tokens=400, stream=True)
    got = 0
    for ch in stream:
        got += 1
        if got == 3:
            break
    stream.close()
    t0 = time.time()
    r3 = c.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=24)
    check(r3.choices[0].message.content == text, f"after a disconnect the next request is served ({time.time() - t0:.1f} s) and answers the same")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


PROMPTS = [
    "What is 2 + 2?",
    "Name a fruit.",
    "What color is the sky?",
    "Say hello in French.",
    "What is the largest planet?",
    "Name a programming language.",
    "What do bees make?",
    "How many legs does a spider have?",
]


def load(url, pid, clients, requests, seconds):
    c = client(url)

    def ask(prompt):
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=6)
        return r.choices[0].message.content, r.usage.completion_tokens

    alone = {p: ask(p) for p in PROMPTS}
    check(all(n > 0 for _, n in alone.values()), "every prompt answered alone")
    before = rss_kib(pid)
    errors, mismatches, done = [], [], [0]
    lock = threading.Lock()
    deadline = time.time() + seconds

    def worker(k):
        i = k
        while True:
            with lock:
                if done[0] >= requests:
                    return
                done[0] += 1
            if time.time() > deadline:
                with lock:
                    errors.append("time limit")
                return
            p = PROMPTS[i % len(PROMPTS)]
            i += clients
            try:
                got = ask(p)
                if got != alone[p]:
                    with lock:
                        mismatches.append((p, got, alone[p]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                with lock:
                    errors.append(repr(e))

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    after = rss_kib(pid)
    check(not errors, f"{requests} requests from {clients} clients in {took:.1f} s without errors {errors[:3]}")
    check(not mismatches, f"every answer equals its prompt run alone {mismatches[:2]}")
    check(after - before < 32 * 1024, f"server memory flat: {before // 1024} MiB before, {after // 1024} MiB after")


if __name__ == "__main__":
    if sys.argv[1] == "clients":
        chat_clients(sys.argv[2])
    elif sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
