"""ntk-finite-width: NTK fluctuations are governed by beta = L/n and grow exponentially in it.

Claim (Hanin & Nica 2019, Thm 1): for ReLU networks with He initialization (sigma_w^2 = 2,
sigma_b = 0) and equal widths, ``E[Theta_hat(x,x)^2] / E[Theta_hat(x,x)]^2 ~= exp(5 beta)``
with ``beta = L/n``, "~=" up to constants: at fixed L/n the NTK does not become
deterministic (unlike Jacot's fixed-depth limit).

Measurement.  Cells (n, L = beta n) on a grid of widths and beta in (0, 1/2], one input,
M networks each from the exact sampler; ``log R = log(mean Theta^2 / mean(Theta)^2)`` with
its delta-method standard error from blocks of networks (:func:`ntkcheck.moments.log_ratio`).

What is tested (weighted least squares on log R with those standard errors):

* Collapse onto L/n: ``log R(beta, n) = F(beta) + s beta/n`` with F free at each beta and
  one finite-width coefficient s (the form of the exact ReLU forward-norm identity
  ``L log(1 + 5/n) = 5 beta - 12.5 beta/n + O(beta/n^2)``): its residual chi^2 must not
  reject at ``FALSE_FAIL_RATE``, i.e. at fixed beta all n-dependence is one O(1/n) term
  and the cells collapse onto F(beta) as n grows.
* Exponential growth: ``log R = c + r beta + s beta/n`` (c: the claim's "up to
  constants"): the rate r's interval (level ``1 - FALSE_FAIL_RATE``, standard error
  scaled by sqrt(chi^2/dof) when the linear form is overdispersed) must exclude 0.  r is
  reported next to Hanin-Nica's 5, which is not tested (their statement holds up to
  constants); the chi^2 p-value of the linear form is reported, not required: at our
  precision log R is not exactly linear in beta (O(1) departures are what "~=" allows).

Negative control: the same two tests with each width's beta values reversed (the measured
ratios assigned to the wrong L/n): not a function of beta, not increasing, so the check
must fail.  The depth-only alternative (cells with equal L but different n agree, F(L)
free) is reported as well.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from ..moments import block_array, block_rows, log_ratio
from ..sampler import sample_init
from . import Claim, GridError, Task, Verdict, task_key
from .initcommon import Z95, cell_spec, save_figure

FALSE_FAIL_RATE = 1e-3
HANIN_NICA_RATE = 5.0
CELL = ["width", "depth"]

_BASE = {"activation": "relu", "sigma_w": math.sqrt(2.0), "sigma_b": 0.0, "d_in": 4,
         "beta": [0.0625, 0.125, 0.25, 0.375, 0.5], "block": 500}
GRIDS = {
    "quick": {**_BASE, "width": [16, 32], "n_networks": 10000, "chunk": 10000},
    "standard": {**_BASE, "width": [16, 32, 64], "n_networks": 40000, "chunk": 10000},
    "full": {**_BASE, "width": [16, 32, 64, 128], "n_networks": 1000000, "chunk": 20000},
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
    if grid["chunk"] % grid["block"] or grid["n_networks"] % grid["chunk"] or grid["n_networks"] // grid["block"] < 10:
        raise GridError("block", "chunk must be a multiple of block, n_networks of chunk, with >= 10 blocks")
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


def _collapse(x: np.ndarray, n: np.ndarray, y: np.ndarray, se: np.ndarray, correction: bool = True):
    """Fit y = F(x) + s x/n (F free per distinct x); returns (F values, s, chi^2 p-value)."""
    levels = np.unique(x)
    A = (x[:, None] == levels[None, :]).astype(float)
    if correction:
        A = np.column_stack([A, x / n])
    coef, _, _, p = _wls(A, y, se)
    return dict(zip(levels, coef[: len(levels)])), (coef[-1] if correction else 0.0), p


def _rate(beta, n, y, se):
    """Fit y = c + r beta + s beta/n: r, its SE (scaled by sqrt(chi^2/dof) when the fit is
    overdispersed: the "~=" of the claim allows O(1) departures from linearity), s, c and
    the chi^2 p-value of this form."""
    A = np.column_stack([np.ones_like(beta), beta, beta / n])
    coef, cov, rss, p = _wls(A, y, se)
    inflate = max(1.0, rss / (len(y) - A.shape[1]))
    return coef[1], math.sqrt(cov[1, 1] * inflate), coef[2], coef[0], p


def _judge(beta, n, y, se):
    """The two tests of the module docstring on (beta, n, log R, se)."""
    _, s, p_collapse = _collapse(beta, n, y, se)
    r, r_se, s_rate, c, p_linear = _rate(beta, n, y, se)
    z = norm.isf(FALSE_FAIL_RATE / 2)
    growth = r - z * r_se > 0
    return {"rate": r, "rate_lo": r - z * r_se, "rate_hi": r + z * r_se, "correction": s_rate, "log_constant": c,
            "collapse_p": p_collapse, "linear_p": p_linear, "collapse": p_collapse > FALSE_FAIL_RATE,
            "growth": bool(growth), "passed": bool(growth and p_collapse > FALSE_FAIL_RATE)}


def verdict(df) -> Verdict:
    cells = []
    for (n, L), g in df.groupby(CELL, sort=True):
        lr, se = log_ratio(block_array(g, ["theta", "theta^2"]))
        cells.append({"width": int(n), "depth": int(L), "beta": L / n, "n_networks": int(g.n_networks.sum() // 2),
                      "ratio": math.exp(lr), "log_ratio": lr, "se_log": se, "exp(5 beta)": math.exp(5 * L / n)})
    t = pd.DataFrame(cells)
    beta, n, y, se = (t[c].to_numpy(float) for c in ("beta", "width", "log_ratio", "se_log"))
    res = _judge(beta, n, y, se)
    # negative control: each width's betas reversed
    reversed_beta = t.groupby("width").beta.transform(lambda b: b.to_numpy()[::-1]).to_numpy(float)
    ctrl = _judge(reversed_beta, n, y, se)
    depth = t.depth.to_numpy(float)
    shared = np.isin(depth, t.depth[t.depth.duplicated()].to_numpy())
    _, _, p_depth = _collapse(depth[shared], n[shared], y[shared], se[shared], correction=False)
    limit, s, _ = _collapse(beta, n, y, se)
    t["limit F(beta)"] = [limit[b] for b in beta]
    stats = {"rate": res["rate"], "rate_lo": res["rate_lo"], "rate_hi": res["rate_hi"],
             "hanin_nica_rate": HANIN_NICA_RATE, "finite_width_correction_s": res["correction"],
             "log_constant_c": res["log_constant"],
             "collapse_chi2_p": res["collapse_p"], "linear_chi2_p": res["linear_p"],
             "control_rate": ctrl["rate"], "control_collapse_chi2_p": ctrl["collapse_p"],
             "depth_only_collapse_chi2_p": p_depth}
    summary = (f"{'pass' if res['passed'] else 'FAIL'}: log ratio = c + r beta + s beta/n with r = {res['rate']:.2f} "
               f"[{res['rate_lo']:.2f}, {res['rate_hi']:.2f}] (Hanin-Nica: {HANIN_NICA_RATE:g}), c = "
               f"{res['log_constant']:.3f}, s = {res['correction']:.2f}; collapse onto L/n chi^2 p = {res['collapse_p']:.3g}, linear in beta "
               f"p = {res['linear_p']:.3g}; reversed-beta control {'rejected' if not ctrl['passed'] else 'NOT rejected'} "
               f"(rate {ctrl['rate']:.2f}, collapse p = {ctrl['collapse_p']:.2g}); depth-only collapse p = {p_depth:.2g}")
    return Verdict(
        claim="ntk-finite-width", passed=res["passed"], summary=summary, statistics=stats,
        false_fail_rate=2 * FALSE_FAIL_RATE,
        detectable=(f"a rate of 0 (deterministic NTK at fixed L/n) is rejected when r > "
                    f"{(norm.isf(FALSE_FAIL_RATE / 2) + norm.isf(1e-3)) * (res['rate_hi'] - res['rate']) / norm.isf(FALSE_FAIL_RATE / 2):.2g}"
                    " with prob >= 0.999; collapse: chi^2 goodness of fit at the stated standard errors"),
        negative_control="the measured ratios assigned to reversed L/n within each width must fail both tests",
        negative_control_rejected=not ctrl["passed"], table=t)


def figure(df, v: Verdict, path) -> None:
    """Ratio vs beta for each width (95 % intervals), the extrapolated limit and exp(5 beta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = v.table
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for n, g in t.groupby("width"):
        ax.errorbar(g.beta, g.ratio, yerr=[g.ratio - np.exp(g.log_ratio - Z95 * g.se_log),
                                           np.exp(g.log_ratio + Z95 * g.se_log) - g.ratio],
                    marker="o", ms=3, capsize=2, label=f"$n$ = {n} (95% interval)")
    b = np.linspace(0, t.beta.max(), 100)
    lim = t.drop_duplicates("beta").sort_values("beta")
    ax.plot(lim.beta, np.exp(lim["limit F(beta)"]), "k--", label=r"limit $F(\beta)$ ($n \to \infty$)")
    ax.plot(b, np.exp(v.statistics["rate"] * b), "k:", label=rf"$\exp({v.statistics['rate']:.2f}\,\beta)$")
    ax.plot(b, np.exp(5 * b), color="gray", lw=0.8, label=r"$\exp(5\beta)$")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\beta = L/n$")
    ax.set_ylabel(r"$\mathbb{E}[\hat\Theta(x,x)^2] / \mathbb{E}[\hat\Theta(x,x)]^2$")
    ax.set_title("ntk-finite-width: NTK fluctuations vs depth/width", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


CLAIM = Claim(
    id="ntk-finite-width",
    title="NTK fluctuations E[Theta^2]/E[Theta]^2 collapse onto L/n and grow like exp(c L/n) (Hanin-Nica: c = 5)",
    statement=("For ReLU networks with He init and sigma_b = 0, E[Theta(x,x)^2]/E[Theta(x,x)]^2 is a function of "
               "beta = L/n as n grows and grows exponentially in beta (Hanin-Nica: ~ exp(5 beta) up to constants)."),
    sources=("Hanin & Nica 2019 (ICLR 2020), Thm 1",),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, figure=figure,
)
