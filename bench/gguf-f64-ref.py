#!/usr/bin/env python3
"""gguf-f64-ref.py: an independent float64 reference for the last-prompt logits.

    PYTHONPATH=<llama.cpp>/gguf-py python3 bench/gguf-f64-ref.py MODEL.gguf FIXTURE.json > OUT.json

Dequantizes every weight with gguf-py (the quantization reference of llama.cpp's
own Python package) and runs the prompts of FIXTURE.json (their llama.cpp
prompt ids) through a plain numpy float64 transformer: no activation
quantization, no f16 KV cache. Supports the llama (SmolLM2) and gemma3 archs,
for prompts shorter than Gemma 3's sliding window. Prints, per prompt, the
top-20 (id, logit) and mean/std of the last position's logits.
It needs numpy and gguf-py only; ~1 min per model on 2 cores.
"""
import json
import sys

import gguf
import numpy as np

path, fixture = sys.argv[1], json.load(open(sys.argv[2]))
r = gguf.GGUFReader(path)
F = {k: (f.parts[f.data[0]][0] if f.data else None) for k, f in r.fields.items()}
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
T = {t.name: t for t in r.tensors}


def W(n):
    return gguf.quants.dequantize(T[n].data, T[n].tensor_type).astype(np.float64)


def key(k):
    return F[f"{arch}.{k}"]


L, D = int(key("block_count")), int(key("embedding_length"))
H, KV = int(key("attention.head_count")), int(key("attention.head_count_kv"))
eps = float(key("attention.layer_norm_rms_epsilon"))
hd = int(key("attention.key_length")) if f"{arch}.attention.key_length" in F else D // H
emb = W("token_embd.weight")
out_w = W("output.weight") if "output.weight" in T else emb
weights = {n: W(n) for n in T if n.startswith("blk.") or n == "output_norm.weight"}


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, pos, base, neox):
    inv = base ** (-np.arange(0, hd, 2) / hd)
    ang = pos[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if neox:  # rotate the two halves (gemma3)
        x0, x1 = x[..., : hd // 2], x[..., hd // 2 :]
        return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], -1)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # adjacent pairs (llama)
    o = np.empty_like(x)
    o[..., 0::2], o[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
    return o


def attention(q, k, v, n):
    rep = H // KV
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    a = np.einsum("qhd,khd->hqk", q, k) + np.triu(np.full((n, n), -np.inf), 1)
    a = np.exp(a - a.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", a, v).reshape(n, H * hd)


def forward(ids):
    n, pos = len(ids), np.arange(len(ids))
    x = emb[ids] * (np.sqrt(D) if arch == "gemma3" else 1.0)
    for layer in range(L):
        w = lambda s: weights[f"blk.{layer}.{s}.weight"]  # noqa: E731
        h = rms(x, w("attn_norm"))
        q, k, v = (h @ w("attn_q").T).reshape(n, H, hd), (h @ w("attn_k").T).reshape(n, KV, hd), (h @ w("attn_v").T).reshape(n, KV, hd)
        if arch == "gemma3":
            assert n < int(key("attention.sliding_window"))
            base = 10000.0 if layer % 6 < 5 else float(key("rope.freq_base"))  # llama.cpp: swa pattern 6, freq_base_swa 10000
            q = rope(rms(q, w("attn_q_norm")), pos, base, True) / np.sqrt(hd)
            k = rope(rms(k, w("attn_k_norm")), pos, base, True)
            x = x + rms(attention(q, k, v, n) @ w("attn_output").T, w("post_attention_norm"))
            h = rms(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            g = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3)))
            x = x + rms((g * (h @ w("ffn_up").T)) @ w("ffn_down").T, w("post_ffw_norm"))
        else:
            base = float(key("rope.freq_base"))
            q, k = rope(q, pos, base, False) / np.sqrt(hd), rope(k, pos, base, False)
            x = x + attention(q, k, v, n) @ w("attn_output").T
            h = rms(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            x = x + ((g / (1 + np.exp(-g))) * (h @ w("ffn_up").T)) @ w("ffn_down").T
    return rms(x[-1], weights["output_norm.weight"]) @ out_w.T


cases = []
for c in fixture["cases"]:
    lg = forward(c["prompt_ids"])
    top = np.argsort(-lg, kind="stable")[:20]
    cases.append({"prompt": c["prompt"], "prompt_ids": c["prompt_ids"], "last_prompt_logits": {
        "n_vocab": len(lg), "mean": float(lg.mean()), "std": float(lg.std()), "min": float(lg.min()), "max": float(lg.max()),
        "top": [[int(i), float(lg[i])] for i in top]}})
how = (f"bench/gguf-f64-ref.py {path.rsplit('/', 1)[-1]} {sys.argv[2].rsplit('/', 1)[-1]}: weights dequantized by gguf-py "
       f"(llama.cpp tree of llama-cpp-python 0.3.36), numpy {np.__version__} float64 forward, whole prompt at once, "
       "no activation quantization, no KV rounding.")
print(json.dumps({"how": how, "arch": arch, "cases": cases}, indent=1))
