"""ntk-finite-width: NTK fluctuations at fixed beta = L/n, exactly at every (n, L).

Claim (Hanin & Nica 2019, Thm 1): for ReLU networks with He initialization (sigma_w^2 = 2,
sigma_b = 0) and equal widths, ``E[Theta_hat(x,x)^2] / E[Theta_hat(x,x)]^2 ~= exp(5 beta)``
with ``beta = L/n``, "~=" up to constants: at fixed L/n the NTK does not become
deterministic (unlike Jacot's fixed-depth limit).  The quantitative prediction tested is
the exact finite-(n, L) value of that ratio for one input,
:func:`ntkcheck.moments.relu_ntk_ratio` (*derived*: forward and backward norms are
products of independent layer factors; verified against dense networks in the tests),
which is Hanin-Nica's ``exp(5 beta)`` up to constants: at n = 1024 its log is 0.23, 0.98,
2.04, 4.33, 9.14, 19.00 at beta = 1/16, 1/4, 1/2, 1, 2, 4 (slope 4.93 between beta = 2 and
4, offset ~ -1), i.e. the rate 5 holds at large beta while at beta <= 1/2 the local slope
is ~ 4 (the sum over layers in Theta averages part of the fluctuation out).

Measurement.  Cells (n, L = beta n) on a grid of widths and beta in (0, 1/2], one input,
``n_networks`` networks per cell from the exact sampler, in independent replicates of
``chunk`` networks (one task each, own seed).  ``log R_hat = log(mean Theta^2 /
mean(Theta)^2)`` over all networks of the cell.  Its standard error and second-order bias
come from the exact law (:func:`ntkcheck.moments.relu_ntk_log_ratio_law`, moments of
Theta up to the 4th): no estimated variances, which for these heavy tails are too small
exactly when the estimate is too small, and, used as weights, bias a pooled estimate
downwards.  The spread of log R over the independent replicates, ``sd_r / sqrt(R)``, is
reported beside it as a check of that standard error.

Tests (false-fail rate ``false_fail_rate``, the claim's level, half to each):

* per cell ``z = (log R_hat - bias - log R_exact) / SE``, two-sided, one Holm family;
* pooled scale: ``log R_hat - bias = kappa log R_exact`` fitted over the cells (weights
  1/SE^2), ``kappa = 1`` two-sided: a rate off by a fraction is seen by every cell at
  once.  Data whose rate is lowered by 1 (``log R - beta``) fail both.

Negative control: the depth-only alternative, "log R is a function of L alone" (cells of
equal L and different n agree), on the cells sharing a depth: its chi^2 (F(L) free) must
reject at ``false_fail_rate``.  Reported besides: the fit ``log R = c + r beta + s beta/n``
(rate r with its interval at its level, next to Hanin-Nica's 5).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from ..moments import block_array, block_rows, relu_ntk_log_ratio_law
from ..sampler import sample_init
from ..stats import TestResult, holm
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict, task_key
from .initcommon import Z95, cell_spec, save_figure

FALSE_PASS_RATE = 1e-3
HANIN_NICA_RATE = 5.0
CELL = ["width", "depth"]

_BASE = {"activation": "relu", "sigma_w": math.sqrt(2.0), "sigma_b": 0.0, "d_in": 4,
         "beta": [0.0625, 0.125, 0.25, 0.375, 0.5], "block": 500}
GRIDS = {
    "quick": {**_BASE, "width": [16, 32], "n_networks": 10000, "chunk": 1000},
    "standard": {**_BASE, "width": [16, 32, 64], "n_networks": 40000, "chunk": 4000},
    "full": {**_BASE, "width": [16, 32, 64, 128], "n_networks": 1000000, "chunk": 50000},
}


def depth_of(width: int, beta: float) -> int:
    """L = beta n; GridError unless it is an integer >= 1."""
    L = beta * width
    if L < 1 or abs(L - round(L)) > 1e-9:
        raise GridError("beta", f"beta x width must be an integer >= 1, got {beta} x {width}")
    return int(round(L))


def check(grid: dict) -> None:
    if grid["activation"] != "relu" or grid["sigma_b"] != 0 or abs(grid["sigma_w"] ** 2 - 2) > 1e-12:
        raise GridError("activation", "the claim is for ReLU with sigma_w^2 = 2, sigma_b = 0")
    if len(grid["width"]) < 2 or len(grid["beta"]) < 2:
        raise GridError("width", "needs >= 2 widths and >= 2 betas (collapse and rate)")
    if any(not 0 < b <= 0.5 for b in grid["beta"]):
        raise GridError("beta", "must lie in (0, 1/2]")
    if grid["chunk"] % grid["block"] or grid["n_networks"] % grid["chunk"]:
        raise GridError("block", "chunk must be a multiple of block, n_networks of chunk")
    if grid["n_networks"] // grid["chunk"] < 5:
        raise GridError("chunk", "needs >= 5 replicates (n_networks / chunk): the standard errors come from them")
    for n in grid["width"]:
        for b in grid["beta"]:
            depth_of(n, b)


def split(grid: dict) -> list[tuple[str, dict]]:
    fixed = {k: grid[k] for k in ("activation", "sigma_w", "sigma_b", "d_in", "block")}
    out = []
    for n in grid["width"]:
        for b in grid["beta"]:
            L = depth_of(n, b)
            for index, start in enumerate(range(0, grid["n_networks"], grid["chunk"])):
                out.append((task_key({"width": n, "depth": L, "chunk": index}),
                            {**fixed, "width": n, "depth": L, "beta": b, "n_networks": grid["chunk"],
                             "chunk": index}))
    return out


def run_task(task: Task) -> list[dict]:
    """Per-block means of Theta_hat(x,x) and its square."""
    p = task.params
    spec = cell_spec(p)
    theta = sample_init(spec, np.ones((1, p["d_in"])), p["n_networks"], seed=task.seed).ntk[:, 0, 0]
    return [{**r, "beta": p["beta"]} for r in block_rows({"theta": theta, "theta^2": theta**2}, p["block"])]


def _wls(A: np.ndarray, y: np.ndarray, se: np.ndarray):
    """Weighted least squares: coefficients, their covariance, residual chi^2 and its p-value."""
    w = 1.0 / se**2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    coef = cov @ (A.T @ (w * y))
    rss = float(np.sum(w * (y - A @ coef) ** 2))
    dof = len(y) - A.shape[1]
    return coef, cov, rss, float(chi2.sf(rss, dof)) if dof > 0 else math.nan


def _cells(df) -> pd.DataFrame:
    """Per cell: pooled log R, the exact value, standard error and bias, the replicate spread."""
    cells = []
    for (n, L), g in df.groupby(CELL, sort=True):
        reps = np.array([block_array(t, ["theta", "theta^2"]).mean(axis=0) for _, t in g.groupby("task", sort=True)])
        m = int(g.n_networks.sum() // 2)
        m1, m2 = reps.mean(axis=0)                              # equal-size replicates
        lr = math.log(m2 / m1**2)
        exact, se, bias = relu_ntk_log_ratio_law(int(n), int(L), m)
        z = (lr - bias - exact) / se
        rep_se = float(np.std(np.log(reps[:, 1] / reps[:, 0] ** 2), ddof=1) / math.sqrt(len(reps)))
        cells.append({"width": int(n), "depth": int(L), "beta": L / n, "n_networks": m, "replicates": len(reps),
                      "ratio": math.exp(lr), "log_ratio": lr, "exact log_ratio": exact, "log_bias": bias,
                      "se_log": se, "replicate_se": rep_se, "z": z, "p": float(2 * norm.sf(abs(z))),
                      "5 beta": 5 * L / n})
    return pd.DataFrame(cells)


def _scale_test(t: pd.DataFrame, false_fail_rate: float) -> TestResult:
    """``log R_hat - bias = kappa log R_exact`` through the origin; z-test of kappa = 1."""
    x, se = t["exact log_ratio"].to_numpy(float), t["se_log"].to_numpy(float)
    y = (t["log_ratio"] - t["log_bias"]).to_numpy(float)
    w = 1 / se**2
    kappa = float(np.sum(w * x * y) / np.sum(w * x * x))
    se_k = float(1 / math.sqrt(np.sum(w * x * x)))
    stat = (kappa - 1) / se_k
    rate = false_fail_rate / 2
    p = float(2 * norm.sf(abs(stat)))
    return TestResult(name="pooled scale kappa", statistic=stat, pvalue=p, passed=bool(p > rate), false_fail_rate=rate,
                      detectable=float((norm.isf(rate / 2) + norm.isf(FALSE_PASS_RATE)) * se_k),
                      n_samples=len(t), stderr=se_k, false_pass_rate=FALSE_PASS_RATE,
                      details={"kappa": kappa, "detectable_units": "relative error of log R"})


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    t = _cells(df)
    rate = false_fail_rate / 2
    cell_tests = [TestResult(name=f"n={r.width} L={r.depth}", statistic=r.z, pvalue=r.p, passed=r.p > rate,
                             false_fail_rate=rate, detectable=None, n_samples=r.n_networks) for r in t.itertuples()]
    family = holm(cell_tests, rate, name="per cell")
    scale = _scale_test(t, false_fail_rate)
    passed = bool(family.passed and scale.passed)
    t["holm_p"] = family.details["holm_pvalues"]
    beta, n, y, se = (t[c].to_numpy(float) for c in ("beta", "width", "log_ratio", "se_log"))
    # negative control: the depth-only alternative on the cells sharing a depth
    depth = t.depth.to_numpy(float)
    shared = np.isin(depth, t.depth[t.depth.duplicated()].to_numpy())
    levels = np.unique(depth[shared])
    _, _, _, p_depth = _wls((depth[shared][:, None] == levels[None, :]).astype(float), y[shared], se[shared])
    rejected = bool(p_depth <= false_fail_rate)
    # reported: log R = c + r beta + s beta/n, interval at level 1 - false_fail_rate (overdispersion-scaled)
    coef, cov, rss, p_lin = _wls(np.column_stack([np.ones_like(beta), beta, beta / n]), y, se)
    r_se = math.sqrt(cov[1, 1] * max(1.0, rss / (len(y) - 3)))
    zr = norm.isf(false_fail_rate / 2)
    level = f"{100 * (1 - false_fail_rate):g}%"
    # detectable per cell: a relative error of R that the Holm family rejects with prob >= 1 - FALSE_PASS_RATE
    crit = norm.isf(rate / (2 * len(t))) + norm.isf(FALSE_PASS_RATE)
    detect = np.expm1(crit * se)
    t["detectable_rel"] = detect
    stats = {"n_cells": len(t), "max_abs_z": float(t.z.abs().max()), "holm_p": family.pvalue,
             "max_replicate_se/exact_se": float((t.replicate_se / t.se_log).max()),
             "median_replicate_se/exact_se": float((t.replicate_se / t.se_log).median()),
             "kappa": scale.details["kappa"], "kappa_se": scale.stderr, "kappa_p": scale.pvalue,
             "kappa_detectable": scale.detectable, "max_detectable_rel": float(detect.max()),
             "median_detectable_rel": float(np.median(detect)),
             "fitted_rate": float(coef[1]), "fitted_rate_lo": float(coef[1] - zr * r_se),
             "fitted_rate_hi": float(coef[1] + zr * r_se), "hanin_nica_rate": HANIN_NICA_RATE,
             "linear_fit_chi2_p": p_lin, "depth_only_chi2_p": p_depth}
    summary = (f"{'pass' if passed else 'FAIL'}: log E[Theta^2]/E[Theta]^2 against the exact finite-(n, L) value: "
               f"max |z| = {stats['max_abs_z']:.2f} over {len(t)} cells (Holm p = {family.pvalue:.2g}); pooled "
               f"kappa = {stats['kappa']:.4f} +- {scale.stderr:.4f} (claim 1, p = {scale.pvalue:.2g}); false-fail "
               f"rate {false_fail_rate:g}; depth-only control {'rejected' if rejected else 'NOT rejected'} "
               f"(chi^2 p = {p_depth:.2g}); fitted rate r = {coef[1]:.2f} ({level} CI [{stats['fitted_rate_lo']:.2f}, "
               f"{stats['fitted_rate_hi']:.2f}], Hanin-Nica: {HANIN_NICA_RATE:g} as n -> inf)")
    return Verdict(
        claim="ntk-finite-width", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=(f"a relative error of the ratio above {stats['max_detectable_rel']:.2g} in any cell (median "
                    f"{stats['median_detectable_rel']:.2g}), or a common relative error of log R above "
                    f"{scale.detectable:.2g} (pooled), each with prob >= {1 - FALSE_PASS_RATE:g}"),
        negative_control="the depth-only alternative (log R a function of L alone) must be rejected by chi^2",
        negative_control_rejected=rejected, table=t.drop(columns=["p"]))


def figure(df, v: Verdict, path) -> None:
    """Measured ratio vs beta per width (95 % intervals, exact-law standard errors), the exact
    finite-(n, L) values (lines) and exp(5 beta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = v.table
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for n, g in t.groupby("width"):
        q = Z95 * g.se_log
        line = ax.plot(g.beta, np.exp(g["exact log_ratio"]), lw=0.8)[0]
        ax.errorbar(g.beta, g.ratio, yerr=[g.ratio - np.exp(g.log_ratio - q), np.exp(g.log_ratio + q) - g.ratio],
                    marker="o", ms=3, capsize=2, ls="none", color=line.get_color(), label=f"$n$ = {n} (95% interval; line: exact)")
    b = np.linspace(0, t.beta.max(), 100)
    ax.plot(b, np.exp(5 * b), color="gray", ls=":", label=r"$\exp(5\beta)$ (Hanin & Nica)")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\beta = L/n$")
    ax.set_ylabel(r"$\mathbb{E}[\hat\Theta(x,x)^2] / \mathbb{E}[\hat\Theta(x,x)]^2$")
    ax.set_title("ntk-finite-width: NTK fluctuations vs depth/width", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


CLAIM = Claim(
    id="ntk-finite-width",
    title="NTK fluctuations E[Theta^2]/E[Theta]^2 at fixed L/n: exact finite-(n, L) value, ~ exp(5 L/n) (Hanin-Nica)",
    statement=("For ReLU networks with He init and sigma_b = 0, E[Theta(x,x)^2]/E[Theta(x,x)]^2 for one input equals "
               "its exact finite-(n, L) value (a product of independent layer factors), which grows like "
               "exp(5 L/n) up to O(L/n^2) (Hanin-Nica: ~ exp(5 beta) up to constants): at fixed L/n the NTK stays random."),
    sources=("Hanin & Nica 2019 (ICLR 2020), Thm 1", "claims catalogue (derived: exact finite-width ratio)"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, figure=figure,
)
