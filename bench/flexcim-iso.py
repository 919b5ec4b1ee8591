#!/usr/bin/env python3
"""Renders bench/flexcim-iso.sh's rows (JSON lines) as a Markdown table, a
JSON summary and Pareto SVGs (perplexity against simulated decode latency per
token, one curve per accelerator, one file per weight regime), and reads off
each accelerator at the perplexity of uniform 4:8: the best measured point
whose perplexity is at most that (the paper's "best configuration that
reaches a given perplexity").

usage: bench/flexcim-iso.py ROWS.jsonl OUT_PREFIX [LABEL=PPL ...]  (standard library only)
  LABEL=PPL: further perplexities to read off at (e.g. another run's uniform 4:8)
"""
import json
import math
import sys

ACCS = ["flexcim", "fixed-2:4", "vegeta", "dense"]
NAMES = {"flexcim": "FlexCiM", "fixed-2:4": "fixed-2:4 DCiM", "vegeta": "VEGETA-like", "dense": "dense DCiM"}
COLORS = {"flexcim": "#4e79a7", "fixed-2:4": "#e15759", "vegeta": "#59a14f", "dense": "#f28e2b"}
REGIMES = ["resident", "streamed"]


def hw(row, acc, regime, phase):
    """(latency µs, energy µJ) per token of `acc` on this row's model."""
    for h in row["hw"]:
        if h["regime"] == regime and h["phase"] == phase:
            a = h[acc]
            return a["latency_us"] / h["rows"], a["energy_pj"] / 1e6 / h["rows"]
    return None


def points(rows):
    """Per accelerator, the rows it runs: its own sweep (uniform 4:8 is a FlexCiM point too)."""
    pts = {a: [] for a in ACCS}
    for r in rows:
        acc = "flexcim" if r["accelerator"] == "reference" else r["accelerator"]
        pts[acc].append(r)
    return pts


def ticks(lo, hi, n=6):
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    k = math.ceil(lo / step - 1e-9)
    out = []
    while k * step <= hi + 1e-9 * step:
        out.append(round(k * step, 10))
        k += 1
    return out


def svg(pts, regime, model, ref):
    w, h, left, right, top, bottom = 720, 440, 80, 190, 44, 60
    pw, ph = w - left - right, h - top - bottom
    xy = {a: sorted((hw(r, a, regime, "decode")[0], r["ppl"], r["label"]) for r in pts[a]) for a in ACCS if pts[a]}
    xs = [p[0] for v in xy.values() for p in v]
    ys = [math.log10(p[1]) for v in xy.values() for p in v]
    x0, x1 = min(xs), max(xs)
    pad = (x1 - x0) * 0.08 or 1
    x0, x1 = max(0, x0 - pad), x1 + pad
    y0, y1 = math.floor(min(ys) * 10) / 10, math.ceil(max(ys) * 10) / 10 + 0.05
    px = lambda x: left + pw * (x - x0) / (x1 - x0)
    py = lambda y: top + ph - ph * (math.log10(y) - y0) / (y1 - y0)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{left}" y="20" font-size="14" font-weight="bold">{model}: perplexity vs decode latency, {regime} weights (lower left is better)</text>',
         f'<text x="{left}" y="36" font-size="10" fill="#555">FlexCiM-like model; Pride and Prejudice, ctx 512; each point one FLOW-measured plan (label: its target)</text>',
         f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>']
    for t in ticks(x0, x1):
        x = px(t)
        s.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#eee"/><text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in [v for e in range(0, 6) for v in (10 ** e, 2 * 10 ** e, 5 * 10 ** e) if y0 <= math.log10(v) <= y1]:
        y = py(t)
        s.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    if ref and y0 <= math.log10(ref) <= y1:
        y = py(ref)
        s.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#999" stroke-dasharray="4,3"/><text x="{left + 4}" y="{y - 4:.1f}" fill="#777" font-size="9">uniform 4:8 ({ref:.1f})</text>')
    for a, v in xy.items():
        c = COLORS[a]
        if len(v) > 1:
            s.append(f'<polyline points="{" ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in v)}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y, lab in v:
            s.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{c}"><title>{NAMES[a]} {lab}: {x:.2f} µs, ppl {y:.2f}</title></circle>')
            s.append(f'<text x="{px(x) + 6:.1f}" y="{py(y) - 5:.1f}" font-size="9" fill="{c}">{lab.split(",")[0]}</text>')
    s.append(f'<text x="{left + pw / 2}" y="{top + ph + 38}" text-anchor="middle" font-size="12">decode latency per token (µs, simulated)</text>')
    s.append(f'<text transform="translate({left - 52},{top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">perplexity (log scale)</text>')
    lx = left + pw + 16
    s.append(f'<text x="{lx}" y="{top + 10}" font-weight="bold">legend</text>')
    for i, a in enumerate(xy):
        y = top + 20 + 18 * i
        s.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{COLORS[a]}"/><text x="{lx + 16}" y="{y + 10}">{NAMES[a]}</text>')
    s.append("</svg>\n")
    return "\n".join(s)


def main():
    src, prefix = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(src) if l.strip()]
    pts = points(rows)
    ref_row = next((r for r in rows if r["accelerator"] == "reference"), None)
    ref = ref_row["ppl"] if ref_row else None
    model = prefix.rsplit("flexcim-iso-", 1)[-1]
    md = [f"| accelerator | plan | ppl ± stderr | " + " | ".join(f"{g} {p} latency (µs/token) | {g} {p} energy (µJ/token)" for g in REGIMES for p in ("decode", "prefill")) + " |",
          "|---|---|---|" + "---|" * 8]
    for a in ACCS:
        for r in sorted(pts[a], key=lambda r: r["ppl"]):
            vals = [v for g in REGIMES for p in ("decode", "prefill") for v in hw(r, a, g, p)]
            md.append(f"| {NAMES[a]} | {r['label']} | {r['ppl']:.2f} ± {r['stderr']:.2f} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    # References: this sweep's uniform 4:8 (same masks as every point), then any given as LABEL=PPL.
    refs = ([("uniform 4:8, this sweep's masks", ref)] if ref is not None else []) + [tuple(a.split("=", 1)) for a in sys.argv[3:]]
    readoffs = []
    for rlabel, rppl in refs:
        rppl = float(rppl)
        readoff = {}
        for a in ACCS:
            ok = [r for r in pts[a] if r["ppl"] <= rppl * (1 + 1e-9)]
            if not ok:
                readoff[a] = None
                continue
            best = {}
            for g in REGIMES:
                for p in ("decode", "prefill"):
                    r = min(ok, key=lambda r: hw(r, a, g, p)[0])
                    lat, en = hw(r, a, g, p)
                    best[f"{g} {p}"] = {"label": r["label"], "ppl": r["ppl"], "latency_us": lat, "energy_uj": en}
            readoff[a] = best
        readoffs.append({"reference": rlabel, "ppl": rppl, "accelerators": readoff})
        md.append("")
        md.append(f"Read-off at the perplexity of {rlabel} ({rppl:.2f}): each accelerator's best measured plan with perplexity ≤ that; ratios are that accelerator ÷ FlexCiM (above 1 FlexCiM is better).")
        md.append("")
        md.append("| regime, phase | accelerator | plan | ppl | latency (µs/token) | energy (µJ/token) | FlexCiM × faster than it | FlexCiM × less energy than it |")
        md.append("|---|---|---|---|---|---|---|---|")
        for key in [f"{g} {p}" for g in REGIMES for p in ("decode", "prefill")]:
            f = readoff.get("flexcim") and readoff["flexcim"][key]
            for a in ACCS:
                b = readoff.get(a) and readoff[a][key]
                if not b:
                    md.append(f"| {key} | {NAMES[a]} | no measured plan reaches {rppl:.2f} | | | | | |")
                    continue
                ratio = (f"{b['latency_us'] / f['latency_us']:.3f}", f"{b['energy_uj'] / f['energy_uj']:.3f}") if f else ("n/a", "n/a")
                md.append(f"| {key} | {NAMES[a]} | {b['label']} | {b['ppl']:.2f} | {b['latency_us']:.3f} | {b['energy_uj']:.4f} | {ratio[0]} | {ratio[1]} |")
    open(prefix + ".md", "w").write("\n".join(md) + "\n")
    json.dump({"reference_ppl": ref, "rows": rows, "readoffs": readoffs}, open(prefix + ".json", "w"), indent=1)
    for g in REGIMES:
        open(f"{prefix}-pareto-{g}.svg", "w").write(svg(pts, g, model, ref))
    print("\n".join(md))


if __name__ == "__main__":
    main()
