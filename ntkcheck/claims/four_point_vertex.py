"""four-point-vertex: n x the connected four-point function of f converges to the predicted vertex.

Claim (Roberts, Yaida & Hanin 2022, ch. 4; Yaida 2020; computed by :mod:`ntkcheck.effective`):
for an MLP of any activation, depth L and width n, and inputs x_a,

    E[f_a f_b f_c f_d]_connected = (V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc)) / n + O(1/n^2),

with V = V^{L+1} the output's four-point vertex (:func:`ntkcheck.effective.four_point_vertex`).
The exact ReLU / linear single-input case is relu-fourth-moment.

Measurement.  f given the last hidden layer is N(0, G) with G the readout kernel
(:func:`ntkcheck.moments.readout_kernel`), so the connected four-point function of f is exactly
``Cov(G_ab, G_cd) + Cov(G_ac, G_bd) + Cov(G_ad, G_bc)`` and ``V_(ab)(cd)`` is measured entry by
entry as ``n Cov(G_ab, G_cd)`` (the readout noise integrated out).  Each task samples a chunk
of networks with the exact sampler (:func:`ntkcheck.sampler.sample_init`, O(L n N^2) per
network) and reports per entry ``n`` times the chunk's sample covariance and its delta-method
standard error (the standard deviation of the centred products over sqrt(M)); it also stores
the prediction, its quadrature error and the control's prediction (the verdict recomputes
nothing).

Test.  Per cell (activation, depth) and entry (ab)(cd) with ab <= cd, the discrepancy
``d_n = n Cov_hat - V`` is fitted as ``a + b/n`` over the widths (weighted least squares,
:func:`ntkcheck.stats.intercept_test`) and ``a = 0`` is tested; all cells and entries form one
Holm family at the claim's level.  The O(1/n^2) remainder biases the intercept: the grids
start at widths where it is far below the intercept's standard error for their depths.

Negative controls (tested with the same data, each family must be rejected): the vertex
without its propagation term (:func:`ntkcheck.effective.local_vertex`, cells of depth >= 2,
where it differs), and the infinite-width value 0.

Draft: not in the registry (``ntkcheck.claims._MODULES``), so ``ntkcheck verify`` does not run
it; its verdict is tested on planted data.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..effective import four_point_vertex, local_vertex
from ..moments import readout_kernel
from ..sampler import sample_init
from ..stats import holm, intercept_test
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict, pool, split_cells
from .initcommon import cell_spec

FALSE_PASS_RATE = 1e-3
CELL = ["activation", "depth", "entry"]

_BASE = {"activation": ["relu", "erf", "tanh", "gelu"], "sigma_w": 1.5, "sigma_b": 0.2, "d_in": 3,
         "correlation": 0.6}
GRIDS = {
    "quick": {**_BASE, "depth": [1, 3], "width": [64, 256, 1024], "n_networks": 6000, "chunk": 6000},
    "standard": {**_BASE, "depth": [1, 2, 4], "width": [64, 128, 256, 512, 1024, 2048], "n_networks": 100000,
                 "chunk": 25000},
    "full": {**_BASE, "depth": [1, 2, 4, 8], "width": [128, 256, 512, 1024, 2048, 4096, 8192],
             "n_networks": 1000000, "chunk": 100000},
}


def inputs(grid: dict) -> np.ndarray:
    """Two inputs of |x|^2 / d = 1 at the grid's ``correlation``."""
    rho, d = grid["correlation"], grid["d_in"]
    X = np.zeros((2, d))
    X[0, 0], X[1, 0], X[1, 1] = 1.0, rho, math.sqrt(1 - rho * rho)
    return math.sqrt(d) * X


def entries(n_inputs: int) -> list[tuple[int, int, int, int]]:
    """The entries (a, b, c, d) with a <= b, c <= d and (a, b) <= (c, d): V's distinct values."""
    pairs = [(a, b) for a in range(n_inputs) for b in range(a, n_inputs)]
    return [p + q for i, p in enumerate(pairs) for q in pairs[i:]]


def check(grid: dict) -> None:
    if not -1 < grid["correlation"] < 1:
        raise GridError("correlation", "must lie in (-1, 1) (parallel inputs have no finite vertex for kinked activations)")
    if grid["d_in"] < 2:
        raise GridError("d_in", "must be >= 2 (two inputs at a correlation)")
    if len(grid["width"]) < 2:
        raise GridError("width", "needs >= 2 widths (an intercept in 1/n)")
    for act in grid["activation"]:
        cell_spec({**grid, "activation": act, "width": 2, "depth": 1})


def split(grid: dict) -> list[tuple[str, dict]]:
    return split_cells(grid)


def run_task(task: Task) -> list[dict]:
    """Per entry: n Cov_hat(G_ab, G_cd) over the chunk and its standard error; the prediction V,
    its quadrature error and the local-only control's prediction."""
    p = task.params
    spec = cell_spec(p)
    X = inputs(p)
    sample = sample_init(spec, X, p["n_networks"], seed=task.seed)
    G = readout_kernel(spec, sample.post_grams)
    n, m = p["width"], p["n_networks"]
    V, local = four_point_vertex(spec, X), local_vertex(spec, X)
    rows = []
    for a, b, c, d in entries(len(X)):
        x, y = G[:, a, b], G[:, c, d]
        prod = (x - x.mean()) * (y - y.mean())
        entry = f"{a}{b},{c}{d}"
        rows.append({"quantity": "n_cov", "entry": entry, "value": n * float(prod.sum() / (m - 1)),
                     "stderr": n * float(prod.std(ddof=1) / math.sqrt(m))})
        for name, value in (("vertex", V.value[-1][a, b, c, d]), ("vertex_error", V.error[-1][a, b, c, d]),
                            ("local_vertex", local.value[a, b, c, d])):
            rows.append({"quantity": name, "entry": entry, "value": float(value), "stderr": 0.0})
    return rows


def _family(tests: pd.DataFrame, prediction: str, rate: float, name: str):
    """Intercept tests of d_n = n Cov_hat - prediction per (activation, depth, entry), Holm-combined."""
    results = []
    for (act, depth, entry), g in tests.groupby(CELL, sort=True):
        g = g.sort_values("width")
        results.append(intercept_test(g["width"], g["n_cov"] - g[prediction], g["stderr"], rate, FALSE_PASS_RATE,
                                      name=f"{act} L={depth} V[{entry}]", n_samples=int(g["n_networks"].sum())))
    return holm(results, rate, name=name), results


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    pooled = pool(df, CELL + ["width", "quantity"])
    wide = pooled.pivot_table(index=CELL + ["width"], columns="quantity", values="value").reset_index()
    se = pooled[pooled.quantity == "n_cov"].set_index(CELL + ["width"])
    wide = wide.join(se[["stderr", "n_networks"]], on=CELL + ["width"])
    main, parts = _family(wide, "vertex", false_fail_rate, "four-point-vertex")
    deep = wide[wide.depth >= 2]
    controls = {"zero": _family(wide.assign(zero=0.0), "zero", false_fail_rate, "control: V = 0")[0]}
    if len(deep):
        controls["local"] = _family(deep, "local_vertex", false_fail_rate, "control: local term only")[0]
    rejected = all(not c.passed for c in controls.values())
    table = pd.DataFrame([{"test": r.name, "intercept": r.details["a"], "se": r.details["se_a"],
                           "p": r.pvalue, "detectable": r.detectable} for r in parts])
    last = wide.sort_values("width").groupby(CELL).last()
    rel = table["detectable"].to_numpy() / np.abs(last["vertex"].to_numpy())
    stats = {"n_tests": len(parts), "holm_p": main.pvalue, "max_abs_z": float(max(abs(r.statistic) for r in parts)),
             "median_detectable_rel": float(np.median(rel)), "max_detectable_rel": float(rel.max()),
             "max_quadrature_error_rel": float((last["vertex_error"] / np.abs(last["vertex"])).max()),
             **{f"control_holm_p[{k}]": c.pvalue for k, c in controls.items()}}
    passed = bool(main.passed)
    summary = (f"{'pass' if passed else 'FAIL'}: intercepts of n Cov(G) - V over {len(parts)} (cell, entry) tests, "
               f"max |z| = {stats['max_abs_z']:.2f}, Holm p = {main.pvalue:.2g} at false-fail rate "
               f"{false_fail_rate:g}; controls " + ", ".join(
                   f"{k} {'rejected' if not c.passed else 'NOT rejected'} (Holm p = {c.pvalue:.2g})"
                   for k, c in controls.items()))
    return Verdict(
        claim="four-point-vertex", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=(f"an intercept (a vertex error) of {stats['median_detectable_rel']:.2g} x |V| in the median "
                    f"test, {stats['max_detectable_rel']:.2g} x |V| in the worst, each with probability "
                    f">= {1 - FALSE_PASS_RATE:g}"),
        negative_control="the vertex without its propagation term (depth >= 2) and the infinite-width value 0",
        negative_control_rejected=rejected, table=table)


CLAIM = Claim(
    id="four-point-vertex",
    title="n x connected four-point function of f -> the effective theory's vertex V (any activation)",
    statement=("For MLPs of any activation and depth, n x the connected four-point function of the outputs "
               "on several inputs converges to V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc), V the four-point vertex "
               "of the 1/n effective theory (ntkcheck.effective)."),
    sources=("Roberts, Yaida & Hanin 2022, ch. 4", "Yaida 2020"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check,
)
