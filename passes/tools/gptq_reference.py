#!/usr/bin/env python3
"""An independent GPTQ in numpy (float64), written from the GPTQ paper's
Algorithm 1 (Frantar et al. 2022) and the reference implementation's
`fasterquant` without its lazy batching: H damped by 1% of its mean
diagonal, U = cholesky(H^-1) upper, columns quantized left to right, each
column's error (w - q) / U_cc subtracted times U_c,c+1.. from the rest.

Grids are static min-max asymmetric grids per (row, group of G columns),
fitted to the original weights (`value = (q - z)·d`, q in [0, 2^b - 1],
d rounded to f16 as flexc stores it). The fixture holds W, H, the grids and
the codes and output error this implementation produces; the Rust test
`quant::gptq::tests::matches_numpy_gptq` runs flexc's GPTQ loop on the
same W, H and grids and compares.

Regenerate: python3 passes/tools/gptq_reference.py > passes/tests/fixtures/gptq_numpy.json
"""
import json

import numpy as np


def minmax_grid(g, bits):
    qmax = 2**bits - 1
    lo, hi = min(g.min(), 0.0), max(g.max(), 0.0)
    d = float(np.float16((hi - lo) / qmax)) or 1.0
    z = float(np.clip(np.round(-lo / d), 0, qmax))
    return d, z


def gptq(w, h, grids, group, bits):
    n, k = w.shape
    qmax = 2**bits - 1
    h = h.copy()
    h += 0.01 * np.mean(np.diag(h)) * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper, H^-1 = U^T U
    w = w.copy()
    codes = np.zeros((n, k), dtype=np.int64)
    q = np.zeros((n, k))
    for c in range(k):
        d = np.array([grids[r][c // group][0] for r in range(n)])
        z = np.array([grids[r][c // group][1] for r in range(n)])
        code = np.clip(np.round(w[:, c] / d + z), 0, qmax)  # numpy rounds half to even
        codes[:, c] = code
        q[:, c] = (code - z) * d
        err = (w[:, c] - q[:, c]) / u[c, c]
        w[:, c + 1:] -= np.outer(err, u[c, c + 1:])
    return codes, q


def main():
    rng = np.random.default_rng(7)
    n, k, group, bits = 12, 64, 16, 3
    x = rng.standard_normal((256, k)) * np.linspace(0.2, 3.0, k)  # uneven channel scales
    x[:, 5] += 4.0  # an outlier channel
    # Both engines start from the same f32 inputs.
    h = (2.0 / x.shape[0] * x.T @ x).astype(np.float32).astype(np.float64)
    w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32).astype(np.float64)
    grids = [[minmax_grid(w[r, gi * group:(gi + 1) * group], bits) for gi in range(k // group)] for r in range(n)]
    codes, q = gptq(w, h, grids, group, bits)
    delta = w - q
    err = float(np.einsum("ri,ij,rj->", delta, h, delta))
    # The RTN error on the same grids, for scale.
    rtn = np.array([[(np.clip(np.round(w[r, c] / grids[r][c // group][0] + grids[r][c // group][1]), 0, 2**bits - 1) - grids[r][c // group][1]) * grids[r][c // group][0] for c in range(k)] for r in range(n)])
    dr = w - rtn
    print(json.dumps({
        "n": n, "k": k, "group": group, "bits": bits,
        "w": [float(np.float32(v)) for v in w.ravel()],
        "h": [float(np.float32(v)) for v in h.ravel()],
        "grids": [[list(g) for g in row] for row in grids],
        "codes": codes.ravel().tolist(),
        "output_error": err,
        "rtn_output_error": float(np.einsum("ri,ij,rj->", dr, h, dr)),
    }))


if __name__ == "__main__":
    main()
