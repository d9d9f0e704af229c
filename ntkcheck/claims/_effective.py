"""Shared machinery of the claims on the 1/n effective theory (four-point-vertex, ntk-fluctuations).

Each measures, per entry (ab)(cd) of two inputs, ``n Cov(S_ab, S_cd)`` over networks of width
n for a per-network (N, N) statistic S (the readout kernel G, or the empirical NTK), and
compares it with the effective theory's leading-order prediction P_(ab)(cd)
(:mod:`ntkcheck.effective`).

Measurement.  Each task samples a chunk of networks with the exact sampler
(:func:`ntkcheck.sampler.sample_init`, O(L n N^2) per network) and reports per entry ``n``
times the chunk's sample covariance and its delta-method standard error (the standard
deviation of the centred products over sqrt(M)); it also stores the prediction, its
quadrature error and the control's prediction (the verdict recomputes nothing).

Test.  Per cell (activation, depth) and entry (ab)(cd) with ab <= cd, the discrepancy
``d_n = n Cov_hat - P`` is fitted as ``a + b/n`` over the widths (weighted least squares,
:func:`ntkcheck.stats.intercept_test`) and ``a = 0`` is tested; all cells and entries form one
Holm family at the claim's level.  The O(1/n^2) remainder biases the intercept: the grids
start at widths where it is small against the intercept's standard error for their depths.

Negative controls (tested with the same data; each family must be rejected): the claim's
wrong prediction (``control``, cells of depth >= 2) and the infinite-width value 0.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

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
    """The entries (a, b, c, d) with a <= b, c <= d and (a, b) <= (c, d): the distinct values of a
    covariance of symmetric (N, N) statistics."""
    pairs = [(a, b) for a in range(n_inputs) for b in range(a, n_inputs)]
    return [p + q for i, p in enumerate(pairs) for q in pairs[i:]]


def check(grid: dict) -> None:
    if not -1 < grid["correlation"] < 1:
        raise GridError("correlation", "must lie in (-1, 1) (parallel inputs: no finite prediction for kinked "
                        "activations)")
    if grid["d_in"] < 2:
        raise GridError("d_in", "must be >= 2 (two inputs at a correlation)")
    if len(grid["width"]) < 2:
        raise GridError("width", "needs >= 2 widths (an intercept in 1/n)")
    for act in grid["activation"]:
        cell_spec({**grid, "activation": act, "width": 2, "depth": 1})


def run_task(task: Task, measure: Callable, predict: Callable) -> list[dict]:
    """Per entry: n Cov_hat(S_ab, S_cd) over the chunk and its standard error, with S =
    ``measure(spec, sample)`` (M, N, N); and ``predict(spec, X)`` = (prediction, its quadrature
    error, the control's prediction), each (N, N, N, N) in units of n Cov."""
    p = task.params
    spec = cell_spec(p)
    X = inputs(p)
    S = measure(spec, sample_init(spec, X, p["n_networks"], seed=task.seed))
    n, m = p["width"], p["n_networks"]
    stored = dict(zip(("prediction", "prediction_error", "control"), predict(spec, X)))
    rows = []
    for a, b, c, d in entries(len(X)):
        x, y = S[:, a, b], S[:, c, d]
        prod = (x - x.mean()) * (y - y.mean())
        entry = f"{a}{b},{c}{d}"
        rows.append({"quantity": "n_cov", "entry": entry, "value": n * float(prod.sum() / (m - 1)),
                     "stderr": n * float(prod.std(ddof=1) / math.sqrt(m))})
        rows += [{"quantity": q, "entry": entry, "value": float(T[a, b, c, d]), "stderr": 0.0}
                 for q, T in stored.items()]
    return rows


def _family(tests: pd.DataFrame, prediction: str, rate: float, name: str):
    """Intercept tests of d_n = n Cov_hat - prediction per (activation, depth, entry), Holm-combined."""
    results = []
    for (act, depth, entry), g in tests.groupby(CELL, sort=True):
        g = g.sort_values("width")
        results.append(intercept_test(g["width"], g["n_cov"] - g[prediction], g["stderr"], rate, FALSE_PASS_RATE,
                                      name=f"{act} L={depth} [{entry}]", n_samples=int(g["n_networks"].sum())))
    return holm(results, rate, name=name), results


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE, *, claim: str, control: str) -> Verdict:
    """The claim's verdict (module docstring); ``control`` describes the control's prediction."""
    pooled = pool(df, CELL + ["width", "quantity"])
    wide = pooled.pivot_table(index=CELL + ["width"], columns="quantity", values="value").reset_index()
    se = pooled[pooled.quantity == "n_cov"].set_index(CELL + ["width"])
    wide = wide.join(se[["stderr", "n_networks"]], on=CELL + ["width"])
    main, parts = _family(wide, "prediction", false_fail_rate, claim)
    deep = wide[wide.depth >= 2]
    controls = {"zero": _family(wide.assign(zero=0.0), "zero", false_fail_rate, "control: 0")[0]}
    if len(deep):
        controls["control"] = _family(deep, "control", false_fail_rate, f"control: {control}")[0]
    rejected = all(not c.passed for c in controls.values())
    table = pd.DataFrame([{"test": r.name, "intercept": r.details["a"], "se": r.details["se_a"],
                           "p": r.pvalue, "detectable": r.detectable} for r in parts])
    last = wide.sort_values("width").groupby(CELL).last()
    rel = table["detectable"].to_numpy() / np.abs(last["prediction"].to_numpy())
    stats = {"n_tests": len(parts), "holm_p": main.pvalue, "max_abs_z": float(max(abs(r.statistic) for r in parts)),
             "median_detectable_rel": float(np.median(rel)), "max_detectable_rel": float(rel.max()),
             "max_quadrature_error_rel": float((last["prediction_error"] / np.abs(last["prediction"])).max()),
             **{f"control_holm_p[{k}]": c.pvalue for k, c in controls.items()}}
    passed = bool(main.passed)
    summary = (f"{'pass' if passed else 'FAIL'}: intercepts of n Cov - prediction over {len(parts)} (cell, entry) "
               f"tests, max |z| = {stats['max_abs_z']:.2f}, Holm p = {main.pvalue:.2g} at false-fail rate "
               f"{false_fail_rate:g}; controls " + ", ".join(
                   f"{k} {'rejected' if not c.passed else 'NOT rejected'} (Holm p = {c.pvalue:.2g})"
                   for k, c in controls.items()))
    return Verdict(
        claim=claim, passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"an intercept (a prediction error) of {stats['median_detectable_rel']:.2g} x |prediction| in "
                    f"the median test, {stats['max_detectable_rel']:.2g} x in the worst, each with probability "
                    f">= {1 - FALSE_PASS_RATE:g}"),
        negative_control=f"{control} (depth >= 2) and the infinite-width value 0",
        negative_control_rejected=rejected, table=table)


def make_claim(claim_id: str, title: str, statement: str, sources: tuple[str, ...], measure: Callable,
               predict: Callable, control: str) -> Claim:
    """A claim of this family: :func:`run_task` with ``measure`` and ``predict``, :func:`verdict`
    naming ``control`` (the control's prediction is ``predict``'s third array)."""
    return Claim(id=claim_id, title=title, statement=statement, sources=sources, grids=GRIDS,
                 run_task=partial(run_task, measure=measure, predict=predict),
                 verdict=partial(verdict, claim=claim_id, control=control), split=split_cells, check=check)
