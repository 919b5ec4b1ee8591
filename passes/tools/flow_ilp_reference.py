#!/usr/bin/env python3
"""Records reference outputs of FLOW's layer-wise N:M selection for flexc's tests.

This re-types FLOW's `sw/solver/ilp_solver.py` (`solver_main` + `ilp_solver`,
FLOW-open-project/FLOW @ af604014799d) as described line by line in
/work/shared/reference/papers.md section 1.3: OWL-style rescaling with Lamda,
the `any(x<0 or x>1 for x in O + D)` guard and min-max re-normalisation, the
candidate loop N in [4, 2, 8] x M in [8, 4] with n <= m, the PuLP model with
the exact-equality average-sparsity constraint solved by PuLP's bundled CBC,
and the post-processing (read the z whose varValue == 1 in block order, pad
with 4:8 up to L, solver status not checked).

Usage (PuLP lives in a throwaway venv, never in the repository):
    python3 -m venv /tmp/pulpenv && /tmp/pulpenv/bin/pip install pulp
    /tmp/pulpenv/bin/python passes/tools/flow_ilp_reference.py > passes/tests/fixtures/flow_ilp_reference.txt
"""
import random
import numpy as np
import pulp


def ilp_solver(O, D, S, L):
    if any(x < 0 or x > 1 for x in O + D):
        O = (O - O.min()) / (O.max() - O.min())
        D = (D - D.min()) / (D.max() - D.min())
    C = [(n, m) for n in [4, 2, 8] for m in [8, 4] if n <= m]
    prob = pulp.LpProblem("flow", pulp.LpMinimize)
    z = {(i, n, m): pulp.LpVariable(f"z_{i}_{n}_{m}", cat="Binary") for i in range(L) for (n, m) in C}
    Si = {i: pulp.LpVariable(f"S_{i}", 0, 1) for i in range(L)}
    prob += pulp.lpSum(z[i, n, m] * (1 * abs(n - 8 * O[i]) + 4 * abs(m - 8 * (1 - D[i]))) for i in range(L) for (n, m) in C)
    for i in range(L):
        prob += pulp.lpSum(z[i, n, m] for (n, m) in C) == 1
        prob += Si[i] == pulp.lpSum(z[i, n, m] * (m - n) / m for (n, m) in C)
    prob += pulp.lpSum(z[i, n, m] * (m - n) / m for i in range(L) for (n, m) in C) / L == S
    prob.solve(pulp.PULP_CBC_CMD(msg=0))
    out = []
    for i in range(L):
        for (n, m) in C:
            if z[i, n, m].varValue == 1:
                out.append((n, m))
    while len(out) < L:
        out.append((4, 8))
    return pulp.LpStatus[prob.status], out


def solver_main(r, li, S, lamda=0.2):
    r, li = np.array(r), np.array(li)
    D = (li - li.min()) * (1 / (li.max() - li.min()) * lamda)
    D = D - np.mean(D)
    O = (r - r.min()) * (1 / (r.max() - r.min()) * lamda)
    O = O - np.mean(O)
    return ilp_solver(O, D, S, len(r))


def main():
    print("# Reference outputs of FLOW's ILP selection (PuLP %s, bundled CBC)." % pulp.__version__)
    print("# Produced by passes/tools/flow_ilp_reference.py (see its docstring); one case per block:")
    print("# case NAME / target S / r: outlier ratios (%) / li: locality / status / result N:M per block (N kept of M).")
    rng = random.Random(42)
    cases = []
    for name, L, S in [("l30_s050", 30, 0.5), ("l30_s055", 30, 0.55), ("l32_s070_infeasible", 32, 0.7),
                       ("l30_s053_infeasible", 30, 0.53), ("l12_s060", 12, 0.6), ("l24_s040", 24, 0.4),
                       ("l18_s080_infeasible", 18, 0.8), ("l26_s050", 26, 0.5)]:
        r = [round(rng.uniform(1.0, 12.0), 6) for _ in range(L)]
        li = [float("%.6e" % (1.0 / rng.uniform(1e3, 2e6))) for _ in range(L)]
        cases.append((name, S, r, li))
    # A held-out batch (added after the tie rule was fitted on the first one).
    rng = random.Random(7)
    for name, L, S in [("h30_s051", 30, 0.51), ("h32_s062", 32, 0.62), ("h28_s047", 28, 0.47), ("h30_s070", 30, 0.7),
                       ("h20_s033", 20, 0.33), ("h30_s058", 30, 0.58), ("h16_s045", 16, 0.45), ("h30_s050", 30, 0.5)]:
        r = [round(rng.uniform(1.0, 12.0), 6) for _ in range(L)]
        li = [float("%.6e" % (1.0 / rng.uniform(1e3, 2e6))) for _ in range(L)]
        cases.append((name, S, r, li))
    for name, S, r, li in cases:
        status, out = solver_main(r, li, S)
        print(f"\ncase {name}")
        print(f"target {S}")
        print("r " + " ".join(repr(x) for x in r))
        print("li " + " ".join(repr(x) for x in li))
        print(f"status {status}")
        print("result " + " ".join(f"{n}:{m}" for n, m in out))


if __name__ == "__main__":
    main()
