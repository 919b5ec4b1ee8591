#!/usr/bin/env python3
"""quality-frontier.py: the size / quality / speed frontier of flexc's
quantizers against llama.cpp's, measured side by side in one run.

For each model (default: smollm2-135m and gemma3-270m) it produces one table

    engine | config | bits per weight | perplexity | decode tok/s | prefill tok/s

and writes bench/results/frontier-<model>.{md,json,svg}:

* llama.cpp: the shipped file requantized (`llama-quantize --allow-requantize`)
  to Q4_0, IQ4_NL, Q3_K_M, Q2_K, Q2_0 and Q1_0, each without and with an
  importance matrix (`llama-imatrix` on Sense and Sensibility, 64 chunks of
  512: not the evaluation text), measured by `llama-perplexity` and
  `llama-bench -p 512 -n 64`. Bits per weight = file bytes x 8 / parameters
  (the tied embedding is the LM head, read whole per token). A type
  `llama-quantize` refuses is listed as refused.
* flexc: each configuration of --configs (default: the source file as
  shipped, RTN and GPTQ at 4 bits, and the mixed-precision search at
  --bpw targets, LM head included) compiled once by
  `flexc compile MODEL --target cpu --pipeline P` into a .flexc (cached under
  CACHE/frontier/<model>/flexc/ by model and pipeline, with its compile time;
  --recompile rebuilds), then measured by `flexc bench model X.flexc
  --ppl-file TEXT`: speed and perplexity on the same compiled model; bits per
  weight = the bytes the kernels stream per decoded token x 8 / parameters
  (measured by the runtime).

Perplexity: Pride and Prejudice, ctx 512, --chunks chunks (llama-perplexity's
method in both engines). Threads: --threads for both engines.

Usage: bench/quality-frontier.py [--model NAME]... [--chunks 20] [--threads 2]
         [--bpw 3.0,3.5,4.0,4.5,5.0] [--configs FILE] [--no-llama] [--no-flexc]
         [--no-speed | --speed-only EARLIER.json] [--recompile] [--out bench/results]
Quality and speed can be measured apart (perplexity does not depend on the
machine's load, speed does): a --no-speed run at any time, then a
--speed-only run on a quiet machine, which reuses the compiled .flexc files
and llama.cpp's quantized files and takes the perplexities from the first.
A configs file has one `name<TAB>pipeline` per line (# comments).
Environment: FLEXC (default: target/release/flexc, built if missing),
FLEXC_CACHE_DIR (default ~/.cache/flexc). llama.cpp's tools are built by
bench/compare-llama-cpp.sh --build-only when missing.
Only the Python standard library is needed.
"""

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FLEXC_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flexc")
BIN = CACHE / "llama.cpp" / "build" / "bin"
TEXT = CACHE / "texts" / "pride_and_prejudice.unwrapped.txt"
CALIB = CACHE / "texts" / "sense_and_sensibility.unwrapped.txt"
MODELS = {
    "smollm2-135m": CACHE / "models" / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": CACHE / "models" / "gemma3-270m" / "gemma-3-270m-q4_k_m.gguf",
}
LLAMA_TYPES = ["Q4_0", "IQ4_NL", "Q3_K_M", "Q2_K", "Q2_0", "Q1_0"]
CPU = "canonicalize,cse,dce,select-gemm{target=cpu},tile-gemm{target=cpu}"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def default_configs(bpws):
    cfg = [
        ("source", CPU),
        ("rtn gq4 g64", "quantize{bits=4,group=64,method=rtn}," + CPU),
        ("gptq gq4 g64", "quantize{bits=4,group=64}," + CPU),
        ("gptq gq4 g64 + head", "quantize{bits=4,group=64,lm-head=true}," + CPU),
    ]
    cfg += [(f"mixed bpw={b}", f"quantize{{bpw={b},lm-head=true}}," + CPU) for b in bpws]
    return cfg


def read_configs(path):
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, pipe = line.partition("\t")
            if not pipe:
                sys.exit(f"{path}: '{line}': expected name<TAB>pipeline")
            out.append((name.strip(), pipe.strip()))
    return out


def artifact(flexc, model, name, pipeline, a):
    """The config compiled once into a .flexc (cached by model and pipeline under
    CACHE/frontier/<model>/flexc/; --recompile rebuilds), so measuring again is
    cheap. Returns (path, compile seconds, error)."""
    key = hashlib.sha256(f"{model}\n{pipeline}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9.=-]+", "_", name)
    work = CACHE / "frontier" / model / "flexc"
    work.mkdir(parents=True, exist_ok=True)
    path, meta = work / f"{slug}-{key}.flexc", work / f"{slug}-{key}.json"
    st = Path(flexc).stat()
    build = f"{st.st_size}-{st.st_mtime_ns}"
    if path.exists() and meta.exists() and not a.recompile:
        m = json.loads(meta.read_text())
        if m.get("flexc_build") != build:
            log(f"note: {path.name} was compiled by another flexc build than {flexc}; --recompile if the quantizer changed since")
        return path, m.get("compile_s"), None
    t0 = time.time()
    r = run([flexc, "compile", model, "--target", "cpu", "--pipeline", pipeline, "-o", path])
    if r.returncode != 0:
        return None, None, r.stderr.strip()[-300:]
    compile_s = round(time.time() - t0, 1)
    meta.write_text(json.dumps({"model": model, "pipeline": pipeline, "compile_s": compile_s, "flexc_build": build}) + "\n")
    return path, compile_s, None


def flexc_row(flexc, model, name, pipeline, a):
    path, compile_s, err = artifact(flexc, model, name, pipeline, a)
    if err:
        log(f"flexc compile failed on {name}: {err.splitlines()[-1:]}")
        return {"engine": "flexc", "config": name, "pipeline": pipeline, "error": err}
    cmd = [flexc, "bench", "model", path, "--threads", a.threads, "--format", "json"]
    if not a.speed_only:
        cmd += ["--ppl-file", TEXT, "--ppl-chunks", a.chunks, "--ppl-ctx", 512]
    if a.no_speed:
        cmd += ["--repeats", 1, "--prompt-tokens", 16, "--gen-tokens", 4]
    t0 = time.time()
    r = run(cmd)
    if r.returncode != 0:
        log(f"flexc failed on {name}: {r.stderr.strip().splitlines()[-1:]}")
        return {"engine": "flexc", "config": name, "pipeline": pipeline, "error": r.stderr.strip()[-300:]}
    j = json.loads(r.stdout)
    return {
        "engine": "flexc", "config": name, "pipeline": pipeline, "bpw": j["bits_per_weight"], "ppl": j.get("perplexity"),
        "ppl_stderr": j.get("perplexity_stderr"), "decode": None if a.no_speed else j["decode_tok_s"],
        "prefill": None if a.no_speed else j["prefill_tok_s"], "parameters": j["parameters"],
        "compile_s": compile_s, "measure_s": round(time.time() - t0, 1),
        "formats": chosen_formats(j.get("remarks", [])),
    }


def chosen_formats(remarks):
    """Tensors per format from quantize's remarks ('quantize: @name → #gq<...>: N bytes, ...')."""
    counts = {}
    for r in remarks:
        if r.startswith("quantize: @") and " → " in r:
            fmt_ = r.split(" → ", 1)[1].rsplit(": ", 1)[0].split(": ")[0]
            counts[fmt_] = counts.get(fmt_, 0) + 1
    return counts


def llama_ppl(path, a):
    r = run([BIN / "llama-perplexity", "-m", path, "-c", 512, "-b", 512, "--chunks", a.chunks, "-t", a.threads, "-f", TEXT])
    m = re.findall(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", r.stdout + r.stderr)
    if r.returncode != 0 or not m:
        return None, None
    return float(m[-1][0]), float(m[-1][1])


def llama_speed(path, a):
    if a.no_speed:
        return None, None
    r = run([BIN / "llama-bench", "-m", path, "-p", 512, "-n", 64, "-r", 2, "-t", a.threads, "-o", "json"])
    if r.returncode != 0:
        return None, None
    rows = json.loads(r.stdout)
    pp = next((x["avg_ts"] for x in rows if x["n_prompt"] == 512 and x["n_gen"] == 0), None)
    tg = next((x["avg_ts"] for x in rows if x["n_prompt"] == 0 and x["n_gen"] == 64), None)
    return pp, tg


def llama_rows(model, src, params, work, a):
    imatrix = work / "imatrix.dat"
    if not imatrix.exists():
        r = run([BIN / "llama-imatrix", "-m", src, "-f", CALIB, "-c", 512, "--chunks", 64, "-t", a.threads, "-o", imatrix])
        if r.returncode != 0:
            sys.exit(f"llama-imatrix failed: {r.stderr[-500:]}")
    rows = []
    files = [("source", None, src)]
    for t in LLAMA_TYPES:
        for im in (False, True):
            out = work / f"{t}{'-imatrix' if im else ''}.gguf"
            if a.speed_only and out.exists():
                files.append((f"{t}{' + imatrix' if im else ''}", im, out))
                continue
            cmd = [BIN / "llama-quantize", "--allow-requantize"] + (["--imatrix", imatrix] if im else []) + [src, out, t, a.threads]
            r = run(cmd)
            label = f"{t}{' + imatrix' if im else ''}"
            if r.returncode != 0 or not out.exists():
                why = (r.stderr.strip().splitlines() or ["no output"])[-1][:160]
                rows.append({"engine": "llama.cpp", "config": label, "error": f"llama-quantize refused: {why}"})
                continue
            files.append((label, im, out))
    for label, im, path in files:
        ppl, err = (None, None) if a.speed_only else llama_ppl(path, a)
        pp, tg = llama_speed(path, a)
        rows.append({"engine": "llama.cpp", "config": label, "bpw": path.stat().st_size * 8 / params, "ppl": ppl, "ppl_stderr": err,
                     "decode": tg, "prefill": pp, "file_bytes": path.stat().st_size})
    return rows


def with_earlier_quality(rows, path, model):
    """Speed rows completed with the perplexity (and what else only the
    quality run knows) of the same engine and config in an earlier run."""
    j = json.loads(path.read_text())
    if j.get("model") != model:
        sys.exit(f"{path}: a frontier of {j.get('model')}, not {model}")
    earlier = {(r["engine"], r["config"]): r for r in j["rows"] if "error" not in r}
    out = []
    for r in rows:
        e = earlier.get((r["engine"], r["config"]))
        if "error" in r or e is None:
            out.append(r)
            continue
        out.append(dict(r, ppl=e.get("ppl"), ppl_stderr=e.get("ppl_stderr"), ppl_from=str(path),
                        **{k: e[k] for k in ("formats", "compile_s") if r.get(k) in (None, {}) and k in e}))
    return out


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown(model, rows, a, cmdline):
    lines = [f"# Size / quality / speed frontier: {model}", "",
             f"Perplexity: Pride and Prejudice, ctx 512, {a.chunks} chunks; speed: prefill 512 / decode 64 tokens at {a.threads} threads, "
             "both engines in one run on this machine (shared; compare within the table).", "",
             f"Command: `{cmdline}`", ""] + [f"Rows marked * come from an earlier run: `{c}`" for c in sorted({r["run"] for r in rows if "run" in r})] + [
             f"Perplexities (and formats, compile times) of this speed-only run are those of the same configs in `{c}`" for c in sorted({r["ppl_from"] for r in rows if "ppl_from" in r})] + ["",
             "| engine | config | bits per weight | perplexity | decode tok/s | prefill tok/s |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["engine"], r.get("bpw") or 99)):
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['config']}{'*' if 'run' in r else ''} | – | {r['error'][:120]} | – | – |")
        else:
            star = "*" if "run" in r else ""
            lines.append(f"| {r['engine']} | {r['config']}{star} | {fmt(r['bpw'], '.3f')} | {fmt(r['ppl'], '.2f')} | {fmt(r['decode'], '.1f')} | {fmt(r['prefill'], '.1f')} |")
    return "\n".join(lines + [""] + targets(rows)) + "\n"


def targets(rows):
    """The issue's frontier targets read off the rows: dominance, and the
    decode speed of the fastest flexc config at least as good as llama.cpp's
    Q4_0 + imatrix against llama.cpp's plain Q4_0."""
    ok = [r for r in rows if "error" not in r and r.get("ppl") is not None and r.get("bpw") is not None]
    flexc = [r for r in ok if r["engine"] == "flexc"]
    llama = {r["config"]: r for r in ok if r["engine"] == "llama.cpp"}
    out = ["## Targets, as measured in this table", ""]
    missed = [c for c, r in llama.items() if c != "source" and not any(f["bpw"] <= r["bpw"] and f["ppl"] <= r["ppl"] for f in flexc)]
    out.append(f"- Dominance (a flexc point with no more bits per weight and no higher perplexity than each llama.cpp file): "
               + ("held for all " + str(len(llama) - ("source" in llama)) + " files" if not missed else "missed for " + ", ".join(missed)))
    ref, base = llama.get("Q4_0 + imatrix"), llama.get("Q4_0")
    if ref and base and base.get("decode"):
        good = [f for f in flexc if f["ppl"] <= ref["ppl"] and f.get("decode")]
        if good:
            best = max(good, key=lambda f: f["decode"])
            out.append(f"- Speed at equal quality: `{best['config']}` ({best['ppl']:.2f} ≤ {ref['ppl']:.2f}, Q4_0 + imatrix) decodes at "
                       f"{best['decode']:.1f} tok/s = **{best['decode'] / base['decode']:.2f}×** llama.cpp Q4_0's {base['decode']:.1f}")
        else:
            out.append(f"- Speed at equal quality: no flexc config with speed reaches Q4_0 + imatrix's perplexity {ref['ppl']:.2f}")
    return out


def svg(model, rows):
    """Two panels: perplexity against bits per weight, and against decode tok/s; one polyline per engine."""
    ok = [r for r in rows if "error" not in r and r.get("ppl") and r["ppl"] < 200]
    W, H, P = 460, 340, 50
    colors = {"flexc": "#d62728", "llama.cpp": "#1f77b4"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="16" font-size="14">{model}: perplexity (lower is better) vs size and speed</text>']
    for panel, key, label in ((0, "bpw", "bits per weight read per token"), (1, "decode", "decode tok/s")):
        pts = [r for r in ok if r.get(key)]
        if not pts:
            continue
        x0 = panel * W
        xs = [r[key] for r in pts]
        ys = [r["ppl"] for r in pts]
        xmin, xmax = min(xs) * 0.95, max(xs) * 1.05
        ymin, ymax = min(ys) * 0.95, max(ys) * 1.05
        sx = lambda v: x0 + P + (v - xmin) / (xmax - xmin or 1) * (W - 2 * P)
        sy = lambda v: 30 + (H - P) - (v - ymin) / (ymax - ymin or 1) * (H - P - 20)
        out.append(f'<rect x="{x0 + P}" y="30" width="{W - 2 * P}" height="{H - P}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{x0 + W / 2 - 60}" y="{H + 22}">{label}</text>')
        for i in range(5):
            xv = xmin + (xmax - xmin) * i / 4
            yv = ymin + (ymax - ymin) * i / 4
            out.append(f'<text x="{sx(xv) - 10:.1f}" y="{H + 8}">{xv:.3g}</text>')
            out.append(f'<text x="{x0 + 8}" y="{sy(yv) + 4:.1f}">{yv:.3g}</text>')
        for eng, col in colors.items():
            e = sorted((r for r in pts if r["engine"] == eng), key=lambda r: r[key])
            if not e:
                continue
            out.append('<polyline fill="none" stroke="%s" stroke-opacity="0.4" points="%s"/>' % (col, " ".join(f"{sx(r[key]):.1f},{sy(r['ppl']):.1f}" for r in e)))
            for r in e:
                out.append(f'<circle cx="{sx(r[key]):.1f}" cy="{sy(r["ppl"]):.1f}" r="3.5" fill="{col}"><title>{eng} {r["config"]}: {r["ppl"]:.2f}</title></circle>')
        for i, (eng, col) in enumerate(colors.items()):
            out.append(f'<text x="{x0 + W - P - 70}" y="{48 + 14 * i}" fill="{col}">● {eng}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="smollm2-135m, gemma3-270m (repeatable; default both)")
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bpw", default="3.0,3.5,4.0,4.5,5.0", help="mixed-precision targets of the default configs")
    ap.add_argument("--configs", help="file of name<TAB>pipeline lines instead of the default flexc configs")
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--no-flexc", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="perplexity and size only")
    ap.add_argument("--speed-only", metavar="JSON",
                    help="measure speed only; perplexities (and formats, compile times) come from this earlier frontier-<model>.json, matched by engine and config")
    ap.add_argument("--recompile", action="store_true", help="compile every flexc config again instead of reusing its cached .flexc")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--include", action="append", default=[], metavar="JSON",
                    help="also list the rows of an earlier run's frontier-<model>.json (same model), e.g. to combine runs made one engine at a time")
    a = ap.parse_args()
    cmdline = "bench/quality-frontier.py " + " ".join(sys.argv[1:])
    flexc = Path(os.environ.get("FLEXC", REPO / "target" / "release" / "flexc"))
    if not a.no_flexc and "FLEXC" not in os.environ:
        r = run(["cargo", "build", "--release", "-q", "-p", "flexc"], cwd=REPO)
        if r.returncode != 0:
            sys.exit(f"cargo build failed:\n{r.stderr[-2000:]}")
    if not a.no_llama and not all((BIN / t).exists() for t in ("llama-perplexity", "llama-bench", "llama-quantize", "llama-imatrix")):
        r = run([REPO / "bench" / "compare-llama-cpp.sh", "--build-only"])
        if r.returncode != 0:
            sys.exit(f"building llama.cpp failed:\n{r.stderr[-2000:]}")
    for f in (TEXT, CALIB):
        if not f.exists():
            sys.exit(f"missing {f} (run: flexc pull pride-and-prejudice sense-and-sensibility)")
    configs = read_configs(a.configs) if a.configs else default_configs(a.bpw.split(","))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for model in a.model or list(MODELS):
        src = MODELS.get(model, Path(model))
        if not src.exists():
            sys.exit(f"missing model {src} (run: flexc pull {model})")
        rows = []
        if not a.no_flexc:
            for name, pipe in configs:
                rows.append(flexc_row(flexc, model, name, pipe, a))
                log(json.dumps(rows[-1]))
        params = next((r["parameters"] for r in rows if "parameters" in r), None)
        if not a.no_llama:
            if params is None:
                r = run([flexc, "inspect", src, "--format", "json"])
                if r.returncode == 0:
                    params = sum(math.prod(t["shape"]) for t in json.loads(r.stdout)["tensors"])
            if params is None:
                sys.exit("cannot tell the parameter count (run a flexc config first)")
            work = CACHE / "frontier" / model
            work.mkdir(parents=True, exist_ok=True)
            rows += llama_rows(model, src, params, work, a)
        if a.speed_only:
            rows = with_earlier_quality(rows, Path(a.speed_only), model)
        for inc in a.include:
            j = json.loads(Path(inc).read_text())
            if j.get("model") == model:
                rows += [dict(r, run=j.get("command", inc)) for r in j["rows"]]
        stem = out / f"frontier-{model}"
        Path(f"{stem}.json").write_text(json.dumps({"model": model, "chunks": a.chunks, "threads": a.threads, "command": cmdline, "rows": rows}, indent=1) + "\n")
        Path(f"{stem}.md").write_text(markdown(model, rows, a, cmdline))
        Path(f"{stem}.svg").write_text(svg(model, rows))
        print(markdown(model, rows, a, cmdline))


if __name__ == "__main__":
    main()
