"""nngp-gaussian: outputs of a wide random network are a Gaussian process N(0, K).

Claim (Neal 1994; Lee et al. 2018; Matthews et al. 2018): for N fixed inputs, f(X) of a
random network converges in law to N(0, K^{L+1}(X, X)) as the width n grows; the
non-Gaussian part (the fourth cumulant) is O(L/n), so the excess kurtosis of f(x) falls
like 1/n.

Measurements, per cell (activation, depth, sigma_b) and width n, on ``n_inputs`` fixed
inputs (:func:`ntkcheck.claims.kernel_mean.inputs`), M networks from the exact sampler:

* Excess kurtosis of f(x_i), ``kappa = E[f^4]/E[f^2]^2 - 3 = 3 (E[G^2]/E[G]^2 - 1)`` with
  G the readout variance given the last hidden layer (f | G ~ N(0, G) exactly,
  :func:`ntkcheck.moments.readout_variance`): the readout noise is integrated out, so the
  relative precision of kappa does not degrade with width (it is ~ sqrt(2/M)); the naive
  estimate from f^4 is reported beside it.  The kurtosis averaged over the inputs is fitted
  ``kappa ~ C n^b`` by :func:`ntkcheck.stats.power_law_fit` (small-sample Student-t
  interval on the bootstrap spread over blocks of ``block`` networks) over the widths ``n >= fit_min_width x L`` (below, the
  O((L/n)^2) term bends the curve: for ReLU the exact ``3((1+5/n)^L - 1)`` has local slope
  -1.07 at n = 64, L = 3); claim b = -1 (interval contains -1 and excludes 0).  Cells are
  Bonferroni-combined: each fit runs at ``FIT_SHARE x false_fail_rate / n_cells`` (``false_fail_rate``: the
  claim's level, its share of the suite's family-wise rate).
* At widths ``>= test_min_width``: :func:`ntkcheck.stats.gaussianity_test` of f(X) against
  N(0, K) (marginal, projected and radial Anderson-Darling, radial kurtosis; whitened by
  the claimed K) and :func:`ntkcheck.stats.covariance_test` of E[f f^T] = K; and the
  Rao-Blackwellized covariance test: ``E[f f^T] = E[E[f f^T | hidden layers]]`` (law of
  total expectation), so the readout kernel (:func:`ntkcheck.moments.readout_kernel`)
  has the same mean as ``f f^T`` with a spread O(sqrt(L/n)) instead of O(1): per entry
  ``t = mean((E[f_i f_j | h] - K_ij) / sqrt(K_ii K_jj)) / SE``, Student t on M - 1 dof
  (computed in the verdict from the stored per-block means, so planted kernels can be
  fed to it).  At widths >= 10^4 it resolves relative covariance errors of ~0.1 %, far
  below the O(1/n) finite-width bias it must not see.  All of them one Holm family at
  the rest of the level (the Gaussianity and readout-kernel tests from
  :data:`EXACT_MIN_WIDTH`).  The tasks store the tests' p-values and what their detectables need
  (components or kernel entries, the largest relative standard error); the verdict states the
  detectables at its own level, which depends on how many claims are registered (task data
  must not: the covariance tests' bootstrap draws a fixed :data:`TEST_BOOT` resamples).

Negative control (a setting where the claim is false): at the small widths ``<=
control_max_width`` (with ``control_networks`` networks) f is far from Gaussian (its excess
kurtosis is O(L/n), e.g. ``3((1 + 5/n)^L - 1)`` for ReLU without biases), so the Gaussianity
test against N(0, K) must reject in every cell.  Power check (the claim's own large-width
samples re-scored, not a setting where the claim is false): the covariance test against the
NNGP of the network with ``sigma_w x power_sigma_w_factor`` (rows ``covariance_control``),
reported beside the control (``power_check_*``), not part of ``negative_control_rejected``.

Attention control (a setting where the claim is false, with its own networks; Hron, Bahri,
Sohl-Dickstein & Novak 2020, "Infinite attention", arXiv:2006.10540, sec. 3; the limit law:
Sakai, Karakida & Imaizumi 2025, arXiv:2506.00846): :func:`attention_network` ``"sqrt-1-head"``,
one head of softmax attention with the standard 1/sqrt(n_chan_key) logit scaling, on the
transformer cell's input sequences.  Its logits converge in law to a Gaussian of O(1) variance
as the key/value width n grows, not to a constant, so the attention weights stay random and f is
a scale mixture of Gaussians: its excess kurtosis stays O(1) and the claim's own kurtosis fit
(over ``attention_width``, ``attention_networks`` networks each, at the level of the claim's
cells) must reject the exponent -1.  There is no closed-form covariance, so the readout variance
is normalized by, and the Gaussianity test (reported at the largest width, not judged) whitened
by, the covariance the networks estimate (the mean readout kernel, relative error
O(sqrt(Var G / M)), far below what the test resolves).  Two twins where the
theory predicts a Gaussian process, reported beside it: ``"linear-1-head"`` (1/n_chan_key
scaling, query tied to key: the logits converge to the input covariance) and
``"sqrt-many-heads"`` (n / :data:`HEAD_CHANNELS` heads: a mean of i.i.d. heads, non-Gaussianity
O(1/heads) = O(1/n)).  ``negative_control_rejected`` needs this control (when run:
``attention_networks > 0``) and the small-width one.

Architecture cells (:mod:`ntkcheck.claims.architectures`: CNNs, a residual network, a LayerNorm
MLP and a one-block transformer encoder with single-head linear-scaling softmax attention, a
Gaussian process in the limit by Hron et al. 2020, sec. 3): the same tests, against the NNGP of
the same layer code that builds their networks; that NNGP must also match the frozen
neural-tangents kernel of the cell (:func:`ntkcheck.claims.architectures.reference_check`), else
the claim FAILs.  Their large widths (``arch_test_min_width``, 128-1024) are below
:data:`EXACT_MIN_WIDTH`: there the f f^T covariance test is judged and the tests of the exact
law (Gaussianity, readout kernel), which see its O(1/n) corrections, are reported; their
Gaussianity is judged through the kurtosis fit, whose law (excess ~ 1/n) holds at finite width.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import t as student

from .. import stax
from ..kernels import output_kernels
from ..moments import block_array, block_rows, log_ratio
from ..seeding import child
from ..stats import (TestResult, covariance_test, gaussianity_test, holm, kernel_entries, power_law_fit,
                     radial_kurtosis_detectable, sidak_level, slope_weights)
from . import CLAIM_FALSE_FAIL_RATE, Claim, Convergence, GridError, Task, Verdict, grid_cells, pool, task_key
from . import architectures
from .initcommon import Z95, check_blocks, check_cells

#: Share of the claim's level spent on the kurtosis fits; the rest goes to the large-width tests.
FIT_SHARE = 10 / 11
#: Resamples of the covariance tests' bootstrap, fixed so that task data do not depend on the
#: claim's level, which depends on how many claims are registered (it was the default of
#: :func:`ntkcheck.stats.mean_test`, 5 / level - 1: 76,641 with 14 claims).  This is that default
#: with 18 claims, so task data made then are reproduced draw for draw.  Its p-values floor at
#: 1 / (TEST_BOOT + 1) ~ 1e-5.
TEST_BOOT = 98_531
#: False-pass rate of the detectables (:func:`ntkcheck.stats.mean_test`, :func:`gaussianity_test`).
FALSE_PASS_RATE = 1e-3
N_BOOT = 20000
CELL = ["architecture", "activation", "depth", "sigma_b"]
TESTS = ("gaussianity", "covariance", "covariance_control")
#: The attention control's networks: name -> (linear_scaling, heads grow with the width).  Theory
#: (module docstring): the first is not a Gaussian process at infinite width, the others are.
ATTENTION = {"sqrt-1-head": (False, False), "linear-1-head": (True, False), "sqrt-many-heads": (False, True)}
#: the attention network where the claim is false (the negative control)
ATTENTION_FALSE = "sqrt-1-head"
#: key and value channels per head of the many-head network (its heads: width / this)
HEAD_CHANNELS = 4
#: Widths from which the tests against the exact limit law (Gaussianity of f, the readout
#: kernel's mean, :data:`TESTS` but the f f^T covariance) are judged; below they are reported.
#: At finite width that law is off by O(L/n) and those tests resolve it at n ~ 10^2 (quick
#: calibration, seeds 0-105: Gaussianity p <= 0.001 in 1.9 % of seeds for the resnet and
#: cnn-gap cells at n = 128; the transformer's readout-kernel t averages -0.50 at n = 128 and
#: -0.23 at 256), which put the family's Holm p <= 0.01 in 5 of 106 correct seeds.  At 10^4 the
#: O(1/n) terms are ~80x smaller than at 128.  The f f^T covariance test (spread O(1)) is judged
#: from the cells' own large widths.  A study's lower ``test_min_width`` does not lower this.
EXACT_MIN_WIDTH = 10_000

_BASE = {"activation": ["relu", "erf", "tanh"], "sigma_w": 1.5, "n_inputs": 3, "d_in": 4,
         "block": 20, "fit_min_width": 32, "test_min_width": EXACT_MIN_WIDTH, "control_max_width": 4,
         "control_networks": 2000, "power_sigma_w_factor": 1.5, "attention_networks": 1000,
         "architecture": list(architectures.ARCHITECTURES), "arch_activation": ["relu"], "arch_depth": [2]}
GRIDS = {
    "quick": {**_BASE, "depth": [2], "sigma_b": [0.2], "width": [2**k for k in range(1, 15)],
              "n_networks": 200, "arch_width": [2, 4, 64, 128, 256], "arch_test_min_width": 128,
              "attention_width": [16, 32, 64, 128]},
    "standard": {**_BASE, "depth": [1, 3], "sigma_b": [0.2], "width": [2**k for k in range(1, 17)],
                 "n_networks": 400, "arch_width": [2, 4, 64, 128, 256, 512], "arch_test_min_width": 512,
                 "attention_width": [16, 32, 64, 128, 256]},
    "full": {**_BASE, "depth": [1, 3, 5], "sigma_b": [0.0, 0.2], "width": [2**k for k in range(1, 17)],
             "n_networks": 4000, "arch_width": [2**k for k in range(1, 12)], "arch_test_min_width": 1024,
             "arch_activation": ["relu", "erf"], "attention_width": [16, 32, 64, 128, 256, 512],
             "attention_networks": 4000},
}


def check(grid: dict) -> None:
    architectures.check(_cells_grid(grid), _check_one)
    if grid["attention_networks"] == 0:         # no attention control
        return
    check_blocks(grid, "attention_networks")
    widths = grid["attention_width"]
    if (not isinstance(widths, list) or len(set(widths)) < 3
            or not all(isinstance(n, int) and n >= HEAD_CHANNELS and n % HEAD_CHANNELS == 0 for n in widths)):
        raise GridError("attention_width", f"the attention control's kurtosis fit needs a list of >= 3 widths, "
                                           f"multiples of {HEAD_CHANNELS} (the many-head network's channels per head)")


def _check_one(grid: dict) -> None:
    check_blocks(grid, "n_networks", "control_networks")
    if grid["n_networks"] < 10:
        raise GridError("n_networks", "the Gaussianity test needs >= 10 networks")
    if grid["n_inputs"] < 2:
        raise GridError("n_inputs", "needs >= 2 inputs (the claim is about the joint law)")
    if not any(n >= grid["test_min_width"] for n in grid["width"]):
        raise GridError("width", "needs a width >= test_min_width (where the Gaussianity test must pass)")
    if not any(n <= grid["control_max_width"] for n in grid["width"]):
        raise GridError("width", "needs a width <= control_max_width (the negative control)")
    if grid["power_sigma_w_factor"] == 1.0:
        raise GridError("power_sigma_w_factor", "must differ from 1 (the power check's kernel must be wrong)")
    check_cells(grid)


def split(grid: dict) -> list[tuple[str, dict]]:
    """One task per cell x width with all its networks (the tests need them together);
    ``control_networks`` networks at the control widths (cheap there, and the power to
    reject a kurtosis of ~0.5, erf at n = 4, needs them); per architecture; then one task per
    attention network and ``attention_width`` (none if ``attention_networks`` is 0)."""
    return architectures.split(_cells_grid(grid), _split_one) + [
        (task_key({"control": "attention", "network": name, "width": n}),
         {"role": "attention", "attention": name, "width": n, "n_networks": grid["attention_networks"],
          "block": grid["block"], "sigma_w": grid["sigma_w"], "n_inputs": grid["n_inputs"], "d_in": grid["d_in"]})
        for name in ATTENTION for n in grid["attention_width"] if grid["attention_networks"]]


def _cells_grid(grid: dict) -> dict:
    """``grid`` without the attention control's keys (its widths would be swept as an axis of
    the claim's cells)."""
    return {k: v for k, v in grid.items() if not k.startswith("attention_")}


def attention_network(name: str, width: int, sigma_w: float) -> stax.Layer:
    """An attention control network (module docstring): GlobalSelfAttention(width, width / H,
    width / H, H) softmax with ``linear_scaling`` of :data:`ATTENTION` (H = 1, or width /
    :data:`HEAD_CHANNELS`), key, query and output weights' std ``sigma_w``, value weights' 1,
    then GlobalAvgPool and Dense(1) with ``W_std = sigma_w``; no biases."""
    linear, many = ATTENTION[name]
    heads = width // HEAD_CHANNELS if many else 1
    return stax.serial(stax.GlobalSelfAttention(width, width // heads, width // heads, heads, linear_scaling=linear,
                                                W_key_std=sigma_w, W_query_std=sigma_w, W_out_std=sigma_w),
                       stax.GlobalAvgPool(), stax.Dense(1, W_std=sigma_w))


def _split_one(grid: dict) -> list[tuple[str, dict]]:
    return [(task_key({k: cell[k] for k in CELL[1:] + ["width"]}),
             {**cell, "n_networks": grid["control_networks"] if cell["width"] <= grid["control_max_width"]
              else grid["n_networks"]}) for cell in grid_cells(grid)]


def run_task(task: Task) -> list[dict]:
    """Per-block means of G/K_ii and (G/K_ii)^2 for each input; pooled f^2/K_ii, f^4/K_ii^2;
    at the test widths the p-values of the Gaussianity and covariance tests."""
    p = task.params
    if p.get("role") == "attention":
        return _attention_task(task)
    net = architectures.network(p)
    X = architectures.cell_inputs(p)
    K = output_kernels(net, X).nngp
    f, _, readout = architectures.sample(net, X, p["n_networks"], child(task.seed, 0),
                                         architectures.METHOD[p.get("architecture", "mlp")], ntk=False)
    G = np.einsum("mii->mi", readout) / np.diag(K)
    f2 = f**2 / np.diag(K)
    rows = block_rows({"G": G, "G^2": G**2}, p["block"])
    rows += block_rows({"f^2": f2, "f^4": f2**2}, p["n_networks"])
    n = p["width"]
    if n >= p["test_min_width"] or n <= p["control_max_width"]:
        wrong = output_kernels(architectures.network(p, p["power_sigma_w_factor"]), X).nngp
        results = {"gaussianity": gaussianity_test(f, K, seed=child(task.seed, 1)),
                   "covariance": covariance_test(f, K, n_boot=TEST_BOOT),
                   "covariance_control": covariance_test(f, wrong, n_boot=TEST_BOOT)}
        role = "claim" if n >= p["test_min_width"] else "control"
        rows += [{"quantity": name, "value": r.pvalue, "statistic": r.statistic, **_detectable_inputs(r),
                  "role": role} for name, r in results.items()]
        if role == "claim":
            draws, target, _, (i, j) = kernel_entries(readout, K)
            scale = np.sqrt(K[i, i] * K[j, j])
            for r in block_rows({"kernel_dev": (draws - target) / scale}, p["block"]):
                rows.append({**r, "kernel_rel": float(target[r["i"]] / scale[r["i"]]), "role": role})
    in_fit = n >= p["fit_min_width"] * p["depth"]
    return architectures.with_architecture([{**r, "in_fit": in_fit} for r in rows], p)


def _attention_task(task: Task) -> list[dict]:
    """The rows of :func:`run_task` for an attention control network on the transformer's
    inputs, against the covariance its own networks estimate (no closed form for 1/sqrt
    softmax): the mean readout kernel K_hat (its mean is E[f f^T], law of total expectation),
    whose relative error O(sqrt(Var G / M)) is far below what the Gaussianity test resolves."""
    p = task.params
    X = architectures.inputs("transformer", p["n_inputs"], p["d_in"])
    f, _, readout = architectures.sample(attention_network(p["attention"], p["width"], p["sigma_w"]), X,
                                         p["n_networks"], child(task.seed, 0), "dense", ntk=False)
    K = readout.mean(axis=0)
    G, f2 = np.einsum("mii->mi", readout) / np.diag(K), f**2 / np.diag(K)
    r = gaussianity_test(f, K, seed=child(task.seed, 1))
    rows = block_rows({"G": G, "G^2": G**2}, p["block"]) + block_rows({"f^2": f2, "f^4": f2**2}, p["n_networks"])
    rows.append({"quantity": "gaussianity", "value": r.pvalue, "statistic": r.statistic, **_detectable_inputs(r)})
    return [{**row, "role": "attention", "attention": p["attention"], "in_fit": True} for row in rows]


def _detectable_inputs(result: TestResult) -> dict:
    """What the verdict needs to state a stored test's detectable at its own level (not stored:
    the level depends on the claims registered): the test's components or kernel entries
    ``n_tests`` and, for a covariance test, ``relative_se``, the largest standard error of an
    entry relative to its scale ``sqrt(K_ii K_jj)``."""
    if "components" in result.details:      # gaussianity_test
        return {"n_tests": len(result.details["components"])}
    return {"n_tests": result.details["n_tests"],
            "relative_se": float(np.max(result.stderr / result.details["scale"]))}


def _detectables(tests, rate: float) -> np.ndarray:
    """Each stored test's ``detectable`` at the verdict's level ``rate`` (each test at that rate,
    false-pass rate :data:`FALSE_PASS_RATE`): the Gaussianity test's of its radial kurtosis
    (:func:`ntkcheck.stats.radial_kurtosis_detectable`), a covariance test's ``(t_{Sidak} +
    t_{1-b}) x relative_se`` (the Student-t critical value of :func:`ntkcheck.stats.mean_test`;
    its bootstrap-t value, where it ran to the end, is close).  Rows from before these columns:
    a Gaussianity test has :func:`ntkcheck.stats.gaussianity_test`'s default 3N + 2 components,
    a covariance test's is NaN (its stored ``detectable``, at the level of the registry it ran
    under, is ignored)."""
    def column(name, default=math.nan):
        return (tests[name] if name in tests else pd.Series(math.nan, index=tests.index)).fillna(default).to_numpy(float)
    m, n_tests, rel_se = column("n_networks"), column("n_tests"), column("relative_se")
    n_inputs = column("n_inputs", architectures.INPUTS_BEFORE["n_inputs"])
    gauss = (tests["quantity"] == "gaussianity").to_numpy()
    n_tests = np.where(gauss & np.isnan(n_tests), 3 * n_inputs + 2, n_tests)
    out = np.full(len(tests), np.nan)
    for r, (g, n, mm, k, se) in enumerate(zip(gauss, n_inputs, m, n_tests, rel_se)):
        if g:
            out[r] = radial_kurtosis_detectable(int(n), int(mm), int(k), rate, FALSE_PASS_RATE)
        elif not np.isnan(k):
            out[r] = (student.isf(sidak_level(rate, int(k)) / 2, mm - 1) + student.isf(FALSE_PASS_RATE, mm - 1)) * se
    return out


def _attention_fits(att, alpha: float) -> dict:
    """Per attention network: the kurtosis fit (claim -1, as the claim's cells, at their level
    ``alpha``), the kurtosis and the Gaussianity p-value at its largest width."""
    out = {}
    for name in ATTENTION if len(att) else ():      # results from before the control have none
        g = att[att.attention == name].assign(i=lambda d: d["i"].fillna(-1).astype(int))
        if not len(g):
            continue
        kurt = _cell_kurtosis(g)
        widths = np.array(sorted(kurt), dtype=float)
        fit = power_law_fit(widths, [kurt[n]["blocks"] for n in widths], -1.0, seed=0, statistic=_kurtosis,
                            n_boot=N_BOOT, false_fail_rate=alpha, name=f"kurtosis {name} attention")
        last = g[(g.width == widths[-1]) & (g.quantity == "gaussianity")]
        out[name] = {"fit": fit, "width": int(widths[-1]), "kurtosis": kurt[widths[-1]]["kurtosis"],
                     "gaussianity_p": float(last.value.iloc[0])}
    return out


def _kurtosis(batch: np.ndarray) -> np.ndarray:
    """Excess kurtosis averaged over inputs from block means (..., B, 2N) of (G_i, G_i^2)."""
    m = batch.mean(axis=-2)
    k = m.shape[-1] // 2
    return 3.0 * (m[..., k:] / m[..., :k] ** 2 - 1.0).mean(axis=-1)


def _cell_kurtosis(g) -> dict:
    """Per width of one cell: block arrays, kurtosis, its SE and the naive estimate."""
    out = {}
    for n, e in g.groupby("width", sort=True):
        blocks = e[e.quantity.isin(["G", "G^2"])]
        arr = np.concatenate([block_array(blocks[blocks.i == i], ["G", "G^2"]) for i in sorted(blocks.i.unique())],
                             axis=1)
        arr = arr[:, np.r_[0:arr.shape[1]:2, 1:arr.shape[1]:2]]   # (B, 2N): all G_i, then all G_i^2
        k = arr.shape[1] // 2
        per_input = [log_ratio(arr[:, [i, k + i]]) for i in range(k)]
        se = math.sqrt(sum((3 * math.exp(lr) * s) ** 2 for lr, s in per_input)) / k
        raw = e[e.quantity.isin(["f^2", "f^4"])].pivot_table(index="i", columns="quantity", values="value")
        out[n] = {"blocks": arr, "kurtosis": float(_kurtosis(arr)), "se": se,
                  "kurtosis_from_f": float((raw["f^4"] / raw["f^2"] ** 2 - 3).mean())}
    return out


def _rb_covariance(df) -> pd.DataFrame:
    """Per cell, width and kernel entry: the pooled mean of the readout kernel's normalized
    deviation from K, its standard error over networks, and the two-sided t-test."""
    rows = df[df.quantity == "kernel_dev"]
    if not len(rows):
        return pd.DataFrame(columns=CELL + ["width", "i", "value", "stderr", "n_networks", "t", "p"])
    g = pool(rows, CELL + ["width", "i"])
    t = g["value"] / g["stderr"]
    return g.assign(t=t, p=2 * student.sf(t.abs(), g["n_networks"] - 1))


def _excess_detectable(fit, kurt, large) -> float:
    """The smallest relative excess of E[f^4] over 3 E[f^2]^2 (kurtosis + 3 delta) at the
    large widths (``large``, those of the Gaussianity tests) that moves the fitted exponent
    by its ``detectable``: the slope is ``sum_w c_w log kappa_w`` (:func:`power_law_fit`),
    so the shift is ``sum_{w large} c_w log(1 + 3 delta / kappa_w)``, increasing in delta.
    Through the readout variance the kurtosis is resolved to ~sqrt(2/M) of itself at any
    width, so this is far below what a test on the draws of f alone detects.  NaN if no
    large width is in the fit (or the fit detects nothing finite)."""
    w = np.asarray(fit.details["widths"], dtype=float)
    c = slope_weights(w)
    hit = np.isin(w, large) & (c > 0)
    if not hit.any() or not math.isfinite(fit.detectable):
        return math.nan
    kappa = np.array([kurt[n]["kurtosis"] for n in w[hit]])

    def shift(delta):
        return float(c[hit] @ np.log1p(3 * delta / kappa)) - fit.detectable
    hi = 1.0
    while shift(hi) < 0:
        hi *= 10
    return float(brentq(shift, 0.0, hi, xtol=1e-12, rtol=1e-6))


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    attention = df["role"].eq("attention") if "role" in df else pd.Series(False, index=df.index)
    att, df = df[attention], df[~attention]
    df = architectures.fill(df).assign(i=df["i"].fillna(-1).astype(int))
    cells = list(df.groupby(CELL, sort=True))
    test_rate = (1 - FIT_SHARE) * false_fail_rate   # the large-width tests' share
    tests = df[df.quantity.isin(TESTS)]
    tests = tests.assign(detectable=_detectables(tests, test_rate))
    alpha_fit = FIT_SHARE * false_fail_rate / len(cells)
    fits, excess, series, table = {}, {}, [], []
    for key, g in cells:
        cell = dict(zip(CELL, key))
        kurt = _cell_kurtosis(g)
        widths = np.array(sorted(kurt), dtype=float)
        in_fit = g.groupby("width").in_fit.first().astype(bool)
        fitted = in_fit.loc[widths].to_numpy()
        res = power_law_fit(widths[fitted], [kurt[n]["blocks"] for n in widths[fitted]], -1.0, seed=0,
                            statistic=_kurtosis, n_boot=N_BOOT, false_fail_rate=alpha_fit,
                            name=f"kurtosis {cell}")
        fits[key] = res
        mine = tests[np.all([tests[c] == cell[c] for c in CELL], axis=0)]
        excess[key] = _excess_detectable(res, kurt, mine[(mine.role == "claim")
                                                         & (mine.width >= EXACT_MIN_WIDTH)].width.unique())
        y = np.array([kurt[n]["kurtosis"] for n in widths])
        se = np.array([kurt[n]["se"] for n in widths])
        series.append(Convergence(
            label=f"excess kurtosis of $f(x)$: {cell['architecture']}, {cell['activation']}, $L$={cell['depth']}, $\\sigma_b$={cell['sigma_b']:g}",
            x=tuple(widths), y=tuple(y), lo=tuple(np.maximum(y - Z95 * se, 0.0)), hi=tuple(y + Z95 * se),
            theory_exponent=-1.0, exponent=res.exponent, exponent_lo=res.ci_low, exponent_hi=res.ci_high,
            log_prefactor=res.details["log_prefactor"], fitted=tuple(bool(b) for b in fitted),
            floor=tuple(Z95 * se), y_name="excess kurtosis", exponent_level=res.level))
        for n, fit in zip(widths, fitted):
            pv = dict(zip(mine[mine.width == n].quantity, mine[mine.width == n].value))
            table.append({**cell, "width": int(n), "kurtosis": kurt[n]["kurtosis"], "se": kurt[n]["se"],
                          "kurtosis_from_f": kurt[n]["kurtosis_from_f"], "in_fit": bool(fit),
                          **{f"p_{q}": pv.get(q, math.nan) for q in TESTS}})
    large, small = tests[tests.role == "claim"], tests[tests.role == "control"]
    big = large[large.quantity.isin(["gaussianity", "covariance"])]
    exact = (big.quantity == "covariance") | (big.width >= EXACT_MIN_WIDTH)
    big_claim, reported = big[exact], big[~exact]     # reported: the exact law at finite width
    rb_all = _rb_covariance(df)
    rb = rb_all[rb_all.width >= EXACT_MIN_WIDTH]
    reported_p = np.r_[reported.value.to_numpy(float), rb_all[rb_all.width < EXACT_MIN_WIDTH].p.to_numpy(float)]
    members = [TestResult(name=f"{r.quantity} {r.architecture} {r.activation} L={r.depth} n={r.width}", statistic=r.statistic,
                          pvalue=r.value, passed=r.value > test_rate, false_fail_rate=test_rate,
                          detectable=r.detectable, n_samples=int(r.n_networks)) for r in big_claim.itertuples()]
    members += [TestResult(name=f"readout-kernel covariance {r.architecture} {r.activation} L={r.depth} n={r.width} entry {r.i}",
                           statistic=r.t, pvalue=r.p, passed=r.p > test_rate, false_fail_rate=test_rate,
                           detectable=None, n_samples=int(r.n_networks)) for r in rb.itertuples()]
    family = holm(members, test_rate, name="large-width tests")
    k = len(members)
    dof = rb.n_networks.to_numpy(float) - 1
    rb_detect = (student.isf(test_rate / (2 * k), dof) + student.isf(1e-3, dof)) * rb.stderr.to_numpy()
    gauss_small = small[small.quantity == "gaussianity"]
    cov_power = large[large.quantity == "covariance_control"]
    control_small = bool(len(gauss_small)) and bool((gauss_small.value <= test_rate).all())
    power_cov = bool(len(cov_power)) and bool((cov_power.value <= test_rate).all())
    att_fits = _attention_fits(att, alpha_fit)
    # the attention control (when run) is rejected when its fit rejects the claim's -1
    att_rejected = ATTENTION_FALSE not in att_fits or not att_fits[ATTENTION_FALSE]["fit"].passed
    reference = architectures.reference_check(df, ("nngp",))    # the NNGP against independent kernels
    passed = bool(all(f.passed for f in fits.values()) and family.passed and reference.passed)
    archs = sorted({k[0] for k in fits}, key=architectures.ARCHITECTURES.index)
    arch_control = {a: bool(((gauss_small.architecture == a) & (gauss_small.value <= test_rate)).any())
                    for a in archs}
    stats = {**{f"exponent[{architectures.stat_name(k)}]": f.exponent for k, f in fits.items()},
             "exponent_ci_min": min(f.ci_low for f in fits.values()),
             "exponent_ci_max": max(f.ci_high for f in fits.values()),
             "fit_level": 1 - alpha_fit,
             "large_width_holm_p": family.pvalue, "n_large_width_tests": len(big_claim),
             "min_large_width": int(large.width.min()),
             "max_gaussianity_detectable": float(big_claim[big_claim.quantity == "gaussianity"].detectable.max()),
             "n_reported_exact_law_tests": len(reported_p),
             "reported_exact_law_min_p": float(reported_p.min()) if len(reported_p) else math.nan,
             "max_fourth_moment_excess_detectable": max((v for v in excess.values() if not math.isnan(v)), default=math.nan),
             "max_covariance_detectable": float(large[large.quantity == "covariance"].detectable.max()),
             "max_rb_covariance_detectable": float(rb_detect.max()) if len(rb) else math.nan,
             "max_rb_covariance_abs_t": float(rb.t.abs().max()) if len(rb) else math.nan,
             "control_max_width": int(small.width.max()),
             "control_gaussianity_max_p": float(gauss_small.value.max()),
             "power_check_covariance_max_p": float(cov_power.value.max()), "power_check_rejected": power_cov,
             **{f"min_large_width[{a}]": int(large[large.architecture == a].width.min()) for a in archs},
             **{f"max_rb_covariance_detectable[{a}]": float(rb_detect[(rb.architecture == a).to_numpy()].max())
                for a in archs if (rb.architecture == a).any()},
             **{f"attention_{k}[{name}]": v for name, a in att_fits.items()
                for k, v in (("exponent", a["fit"].exponent), ("exponent_ci_low", a["fit"].ci_low),
                             ("exponent_ci_high", a["fit"].ci_high), ("kurtosis", a["kurtosis"]),
                             ("gaussianity_p", a["gaussianity_p"]))},
             **({"attention_control_rejected": att_rejected} if att_fits else {}),
             **reference.statistics}
    summary = (f"{'pass' if passed else 'FAIL'}: kurtosis exponents "
               + ", ".join(f"{f.exponent:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]" for f in fits.values())
               + f" ({100 * (1 - alpha_fit):.4g}% bootstrap intervals; claim -1); {len(members)} Gaussianity/covariance "
               f"tests (f f^T covariance from width {stats['min_large_width']}, Gaussianity and readout kernel from "
               f"{EXACT_MIN_WIDTH}): Holm p = {family.pvalue:.3g} ({len(reported_p)} tests of the exact law at smaller "
               f"widths reported, min p = {stats['reported_exact_law_min_p']:.2g}); control: Gaussianity at width <= "
               f"{stats['control_max_width']} {'rejected' if control_small else 'NOT rejected'} "
               f"(max p = {stats['control_gaussianity_max_p']:.2g}); power check: covariance against "
               f"the NNGP of a wrong sigma_w {'rejected' if power_cov else 'NOT rejected'} (max p = {stats['power_check_covariance_max_p']:.2g}); "
               f"architectures {', '.join(archs)} (control rejected in "
               + (", ".join(a for a in archs if arch_control[a]) or "none") + f"); {reference.text}"
               + _attention_text(att_fits, att_rejected))
    return Verdict(
        claim="nngp-gaussian", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=(f"a kurtosis exponent off by more than {max(f.detectable for f in fits.values()):.2g} "
                    f"(prob >= 0.999); at the large widths a relative excess of E[f^4] over 3 E[f^2]^2 above "
                    f"{stats['max_fourth_moment_excess_detectable']:.2g} (readout-variance kurtosis, through the "
                    f"fitted exponent) or of E|z|^4 above {stats['max_gaussianity_detectable']:.2g} (tests on the "
                    f"draws of f), and a relative covariance "
                    f"error above {stats['max_covariance_detectable']:.2g} (from f f^T) or "
                    f"{stats['max_rb_covariance_detectable']:.2g} in any entry (readout kernel, prob >= 0.999)"),
        negative_control=(f"widths <= {stats['control_max_width']} (f visibly non-Gaussian, excess kurtosis O(L/n)): "
                          "the Gaussianity test must reject in every cell (the power check, the large-width samples' "
                          "covariance against the NNGP of a wrong sigma_w, is reported beside it)"
                          + ("; single-head softmax attention with 1/sqrt(d) logits (not a Gaussian process at "
                             "infinite width, Hron et al. 2020): its kurtosis fit must reject -1" if att_fits else "")),
        negative_control_rejected=bool(control_small and att_rejected), convergence=tuple(series),
        table=pd.DataFrame(table))


def _attention_text(fits: dict, rejected: bool) -> str:
    """The attention control's clause of the summary (empty when it did not run)."""
    if not fits:
        return ""
    parts = [f"{name} {a['fit'].exponent:.3f} [{a['fit'].ci_low:.3f}, {a['fit'].ci_high:.3f}] "
             f"(kurtosis {a['kurtosis']:.3g}, Gaussianity p = {a['gaussianity_p']:.2g} at width {a['width']})"
             for name, a in fits.items()]
    return (f"; attention control (Hron et al. 2020): kurtosis exponents {'; '.join(parts)}; "
            f"{ATTENTION_FALSE} softmax {'rejected' if rejected else 'NOT rejected'} (claim -1)")


CLAIM = Claim(
    id="nngp-gaussian",
    title="Outputs of wide random networks are Gaussian N(0, K); excess kurtosis falls like 1/width",
    statement=("f(X) of a random network on fixed inputs converges in law to N(0, K^{L+1}(X, X)); its excess "
               "kurtosis (the fourth cumulant) is O(L/n), so it falls with exponent -1 in the width."),
    sources=("Neal 1994", "Lee et al. 2018", "Matthews et al. 2018", "Yang 2019-2020, Tensor Programs I-II",
             "Novak et al. 2019", "Garriga-Alonso et al. 2019",
             'Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention", sec. 3 (attention cells and control)',
             "Sakai, Karakida & Imaizumi 2025, arXiv:2506.00846 (single-head limit law)"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check,
)
