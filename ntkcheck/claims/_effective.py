"""Shared machinery of the claims on the 1/n effective theory (four-point-vertex, ntk-fluctuations).

Each measures, per entry (ab)(cd) of two inputs, ``n Cov(S_ab, S_cd)`` over networks of width
n for a per-network (N, N) statistic S (the readout kernel G, or the empirical NTK), and
compares it with the effective theory's leading-order prediction P_(ab)(cd)
(:mod:`ntkcheck.effective`).

Measurement.  Each task samples a chunk of networks with the exact sampler
(:func:`ntkcheck.sampler.sample_init`, O(L n N^2) per network) and reports per entry ``n``
times the chunk's sample covariance and its delta-method standard error (the standard
deviation of the centred products over sqrt(M)).  One task per cell (chunk 0 of the smallest
width) also stores the prediction, its quadrature error and the power check's wrong prediction, in units
of n Cov and so the same at every width (the verdict recomputes nothing).

Test.  Per cell (activation, depth) and entry (ab)(cd) with ab <= cd, the discrepancy
``d_n = n Cov_hat - P`` is fitted as ``a + b/n`` over the widths (weighted least squares,
:func:`ntkcheck.stats.intercept_test`) and ``a = 0`` is tested; all cells and entries form one
Holm family at the claim's level.  The O(1/n^2) remainder biases the intercept: the grids
start at widths where it is small against the intercept's standard error for their depths.

Negative control (a setting where the theory is wrong, with its own networks): networks
with Rademacher weights (+-s_w, the same variance; biases Gaussian), sampled dense at the
``control_width`` widths, ``control_networks`` each, measured and tested as the claim against the
Gaussian-weight prediction; the Holm family of all its cells and entries must be rejected.  The
theory assumes Gaussian weights: with i.i.d. weights of fourth cumulant kappa_4 = -2 s_w^4, the
first layer's preactivations (sums over the d inputs' coordinates, d = 3) are far from Gaussian
at every width, so the kernel and the vertex of layer 2 differ at O(1); and in the NTK, which
holds the squares of the weights, the kappa_4 of every layer enters the 1/n coefficient (for one
hidden layer the B terms are C_W^2 Var(w^2) <s's's's'> Theta Theta / 2 each with the readout's
Var(w^2) = 2 + kappa_4 / s_w^4, which is 0 for Rademacher weights).  Power checks
(the claim's own data re-scored against a wrong target, reported, not required): the claim's
``power_target`` (the ``wrong`` prediction of :func:`make_claim`; cells of depth >= 2), the
infinite-width value 0, and the prediction x 0.9 and x 1.1, each by the same family.  The ``detectable`` intercept of each test is stated
relative to |prediction|: its minimum is the smallest relative error of the whole prediction the
claim detects, its maximum that of the least precise entry.

What is not verified: the O(1/n^2) terms (the slope b is free), widths unequal across layers
(r != 1), other parameterizations, more than two inputs at quick and standard, and the
prediction's quadrature beyond its stated error (stored per entry; the verdict reports the
largest relative one).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..sampler import sample_init
from ..stats import holm, intercept_test
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, KeyNumber, Task, Verdict, pool, split_cells, task_key
from .initcommon import Z95, cell_spec, save_figure

FALSE_PASS_RATE = 1e-3
CELL = ["activation", "depth", "entry"]
#: The quantities the cell's prediction task stores beside the measurement.
PREDICTED = ("prediction", "prediction_error", "power_target")
#: The negative control's keys and its weights' law (:data:`ntkcheck.networks.WEIGHT_LAWS`).
CONTROL_KEYS = ("control_width", "control_networks")
CONTROL_WEIGHTS = "rademacher"
#: The power check re-scores the data against the prediction times these factors.
POWER_SCALES = (0.9, 1.1)

_BASE = {"activation": ["relu", "erf", "tanh", "gelu"], "sigma_w": 1.5, "sigma_b": 0.2, "d_in": 3,
         "correlation": 0.6}
# The grids' smallest widths keep the O(1/n^2) remainder's bias of the intercept below ~1/3 of
# its standard error (ReLU's exact laws, vertex and NTK: zero at depth <= 2, 0.1 % at depth 3
# from width 32, 0.03 % at depth 8 from width 256); the sampler costs ~50 us per network below
# width 64, so small widths buy the most networks per second.
# The control's deviations are O(1) (Rademacher networks at widths 16-64, depth 2, 2,000 each:
# n Cov(G) 0.5-0.8 x the prediction for relu and gelu, z -5 to -26 per width; n Cov(Theta_hat)
# 0.02-0.7 x, z -9 to -1,400), so a few dense networks at small widths reject it.
GRIDS = {
    "quick": {**_BASE, "depth": [2], "width": [16, 64, 256], "n_networks": 7000, "chunk": 7000,
              "control_width": [16, 32, 64], "control_networks": 500},
    "standard": {**_BASE, "depth": [1, 2, 3], "width": [32, 64, 128, 256, 512], "n_networks": 30000,
                 "chunk": 30000, "control_width": [16, 32, 64], "control_networks": 4000},
    "full": {**_BASE, "depth": [1, 2, 4, 8], "width": [256, 512, 1024, 2048, 4096, 8192],
             "n_networks": 1000000, "chunk": 100000, "control_width": [16, 32, 64], "control_networks": 20000},
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
    if min(grid["chunk"], grid["n_networks"]) < 3:
        raise GridError("chunk", "needs >= 3 networks per task (a covariance and its standard error)")
    if len(set(grid["control_width"])) < 2:
        raise GridError("control_width", "needs >= 2 widths (the control's intercept in 1/n)")
    if grid["control_networks"] < 3:
        raise GridError("control_networks", "needs >= 3 networks per width (a covariance and its standard error)")
    for act in grid["activation"]:
        cell_spec({**grid, "activation": act, "width": 2, "depth": 1})


def split(grid: dict) -> list[tuple[str, dict]]:
    """:func:`ntkcheck.claims.split_cells`, with the prediction computed by one task per cell
    (chunk 0 of the smallest width): it does not depend on the width (equal hidden widths,
    r = 1, and predictions in units of n Cov); then the control's tasks, one per cell and
    control width, keyed by its weights' law."""
    base = {k: v for k, v in grid.items() if k not in CONTROL_KEYS}
    first = min(grid["width"])
    control = {**base, "width": list(grid["control_width"]), "n_networks": grid["control_networks"],
               "chunk": grid["control_networks"], "weights": CONTROL_WEIGHTS}
    prefix = task_key({"weights": CONTROL_WEIGHTS}) + ","
    return ([(key, {**p, "predict": p["width"] == first and p["chunk"] == 0}) for key, p in split_cells(base)]
            + [(prefix + key, {**p, "predict": False}) for key, p in split_cells(control)])


def run_task(task: Task, measure: Callable, predict: Callable) -> list[dict]:
    """Per entry: n Cov_hat(S_ab, S_cd) over the chunk and its standard error, with S =
    ``measure(spec, sample)`` (M, N, N) (quantity ``n_cov``; ``n_cov_control`` for the control's
    dense networks of Rademacher weights); and, in the cell's ``predict`` task,
    ``predict(spec, X)`` = (prediction, its quadrature error, the power check's wrong
    prediction), each (N, N, N, N) in units of n Cov."""
    p = task.params
    spec = cell_spec(p)
    X = inputs(p)
    if "weights" in p:
        sample = sample_init(spec, X, p["n_networks"], seed=task.seed, method="dense", weights=p["weights"])
    else:
        sample = sample_init(spec, X, p["n_networks"], seed=task.seed)
    quantity = "n_cov_control" if "weights" in p else "n_cov"
    S = measure(spec, sample)
    n, m = p["width"], p["n_networks"]
    stored = dict(zip(PREDICTED, predict(spec, X))) if p["predict"] else {}
    rows = []
    for a, b, c, d in entries(len(X)):
        x, y = S[:, a, b], S[:, c, d]
        prod = (x - x.mean()) * (y - y.mean())
        entry = f"{a}{b},{c}{d}"
        rows.append({"quantity": quantity, "entry": entry, "value": n * float(prod.sum() / (m - 1)),
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


def measurements(df, quantity: str = "n_cov") -> pd.DataFrame:
    """One row per (activation, depth, entry, width): ``n_cov`` (the claim's networks; the
    control's with ``quantity="n_cov_control"``) pooled over chunks, its ``stderr``,
    ``n_networks`` and the cell's ``prediction``, ``prediction_error`` and ``power_target``."""
    pooled = pool(df, CELL + ["width", "quantity"])
    measured = pooled[pooled.quantity == quantity].rename(columns={"value": "n_cov"})
    predicted = pooled[pooled.quantity.isin(PREDICTED)].pivot_table(index=CELL, columns="quantity", values="value")
    return measured.drop(columns="quantity").join(predicted, on=CELL).reset_index(drop=True)


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE, *, claim: str, wrong: str) -> Verdict:
    """The claim's verdict (module docstring); ``wrong`` describes the power check's wrong prediction."""
    wide = measurements(df)
    main, parts = _family(wide, "prediction", false_fail_rate, claim)
    controlled = measurements(df, "n_cov_control")
    # results without the control's rows (a grid run before it) report it as not run, not rejected
    control = (_family(controlled, "prediction", false_fail_rate, f"control: {CONTROL_WEIGHTS} weights")[0]
               if len(controlled) else None)
    # power checks: the claim's own data re-scored against wrong targets (not settings where the claim is false)
    deep = wide[wide.depth >= 2]
    power = {"zero": _family(wide.assign(zero=0.0), "zero", false_fail_rate, "power: 0")[0]}
    if len(deep):
        power["wrong"] = _family(deep, "power_target", false_fail_rate, f"power: {wrong}")[0]
    power.update({f"x{s:g}": _family(wide.assign(off=s * wide["prediction"]), "off", false_fail_rate,
                                     f"power: prediction x {s:g}")[0] for s in POWER_SCALES})
    rejected = control is not None and not control.passed
    last = wide.sort_values("width").groupby(CELL).last()
    widths = wide.groupby(CELL)["width"].agg(lambda w: "/".join(str(int(n)) for n in sorted(w)))
    table = pd.DataFrame([{"activation": act, "depth": depth, "entry": entry, "widths": widths[(act, depth, entry)],
                           "prediction": row["prediction"],
                           "intercept": r.details["a"], "se": r.details["se_a"], "slope": r.details["b"],
                           "gof_p": r.details["gof_pvalue"], "p": r.pvalue, "detectable": r.detectable}
                          for ((act, depth, entry), row), r in zip(last.iterrows(), parts)])
    rel = table["detectable"] / table["prediction"].abs()
    stats = {"n_tests": len(parts), "holm_p": main.pvalue, "max_abs_z": float(max(abs(r.statistic) for r in parts)),
             "min_detectable_rel": float(rel.min()), "median_detectable_rel": float(rel.median()),
             "max_detectable_rel": float(rel.max()),
             "max_quadrature_error_rel": float((last["prediction_error"] / last["prediction"].abs()).max()),
             "control_holm_p": control.pvalue if control else math.nan,
             **{f"power_holm_p[{k}]": c.pvalue for k, c in power.items()}}
    passed = bool(main.passed)
    summary = (f"{'pass' if passed else 'FAIL'}: intercepts of n Cov - prediction over {len(parts)} (cell, entry) "
               f"tests, max |z| = {stats['max_abs_z']:.2f}, Holm p = {main.pvalue:.2g} at false-fail rate "
               f"{false_fail_rate:.3g}; control ({CONTROL_WEIGHTS} weights) "
               + (f"{'rejected' if rejected else 'NOT rejected'} (Holm p = {control.pvalue:.2g})" if control
                  else "not run (no control rows)") + "; power checks: "
               + ", ".join(f"{k} {'rejected' if not c.passed else 'not rejected'} (Holm p = {c.pvalue:.2g})"
                           for k, c in power.items()))
    return Verdict(
        claim=claim, passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"an intercept (a prediction error) of {stats['min_detectable_rel']:.2g} x |prediction| in the "
                    f"most precise test, {stats['median_detectable_rel']:.2g} x in the median one and "
                    f"{stats['max_detectable_rel']:.2g} x in the worst, each with probability "
                    f">= {1 - FALSE_PASS_RATE:g}"),
        negative_control=(f"networks with {CONTROL_WEIGHTS} weights (the same variance): the Gaussian-weight "
                          "prediction must be excluded"),
        negative_control_rejected=rejected, table=table)


def figure(df, v: Verdict, path, *, quantity: str) -> None:
    """n Cov_hat against 1/n per entry with 95 % intervals, the fitted line a + b/n, at 1/n = 0
    the fitted intercept's 95 % interval and the prediction (star), and the negative control's
    networks (open markers); one panel per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = measurements(df)
    control = measurements(df, "n_cov_control").set_index(CELL)
    fits = v.table.set_index(CELL)
    cells = list(wide.groupby(["activation", "depth"], sort=True))
    cols = min(len(cells), 4)
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False)
    for ax, ((act, depth), g) in zip(axes.flat, cells):
        for k, (entry, e) in enumerate(g.groupby("entry", sort=True)):
            fit = fits.loc[(act, depth, entry)]
            x = 1.0 / e["width"].to_numpy()
            color = f"C{k}"
            ax.errorbar(x, e["n_cov"], yerr=Z95 * e["stderr"], marker="o", ms=3, capsize=2, ls="none", color=color,
                        label=f"[{entry}]")
            line = np.linspace(0.0, x.max(), 20)
            ax.plot(line, fit["prediction"] + fit["intercept"] + fit["slope"] * line, color=color, lw=0.7)
            ax.errorbar([0.0], [fit["prediction"] + fit["intercept"]], yerr=Z95 * fit["se"], color=color, capsize=3)
            ax.plot([0.0], [fit["prediction"]], marker="*", ms=8, color=color, mec="k", mew=0.5, ls="none")
            if (act, depth, entry) in control.index:
                c = control.loc[[(act, depth, entry)]]
                ax.errorbar(1.0 / c["width"].to_numpy(), c["n_cov"], yerr=Z95 * c["stderr"], marker="o", ms=3,
                            mfc="none", capsize=2, ls="none", color=color, lw=0.6)
        ax.set_title(f"{act}, $L$ = {depth}", fontsize=9)
        ax.set_xlabel("$1/n$")
        ax.legend(fontsize=6, title="entry (ab,cd)", title_fontsize=6)
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(quantity)
    fig.suptitle("Measured (95% intervals), fit a + b/n, prediction at 1/n = 0 (star); open: control",
                 fontsize=10)
    save_figure(fig, path)


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """Per cell, the extrapolated n Cov of the first entry ([00,00]: the variance of one input's
    statistic) with its interval at its test's level; the theory value is the prediction."""
    t = v.table
    rate = v.false_fail_rate / len(t)
    z = norm.isf(rate / 2)
    out = []
    for (act, depth), g in t.groupby(["activation", "depth"], sort=True):
        r = g.iloc[0]
        value, se = float(r["prediction"] + r["intercept"]), float(r["se"])
        out.append(KeyNumber(cell=f"{act}, $L$ = {depth}", name=f"limit [{r['entry']}]",
                             quantity=r"$n\,\mathrm{Cov}$ extrapolated in $1/n$", value=value, lo=value - z * se,
                             hi=value + z * se, level=1 - rate, theory=float(r["prediction"]),
                             widths=tuple(float(n) for n in r["widths"].split("/"))))
    return tuple(out)


def make_claim(claim_id: str, title: str, statement: str, sources: tuple[str, ...], measure: Callable,
               predict: Callable, wrong: str, quantity: str) -> Claim:
    """A claim of this family: :func:`run_task` with ``measure`` and ``predict``, :func:`verdict`
    naming ``wrong`` (the power check's wrong prediction, ``predict``'s third array), :func:`figure`
    labelling its axis ``quantity``."""
    return Claim(id=claim_id, title=title, statement=statement, sources=sources, grids=GRIDS,
                 run_task=partial(run_task, measure=measure, predict=predict),
                 verdict=partial(verdict, claim=claim_id, wrong=wrong), split=split, check=check,
                 figure=partial(figure, quantity=quantity), key_numbers=key_numbers)
