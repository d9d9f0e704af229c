"""critical-lr: the three learning-rate phases of a wide network.

Claim (Lee et al. 2019, sec. 2.4; Lewkowycz et al. 2020, "The large learning rate phase of
deep learning: the catapult mechanism", sec. 2-3): for the loss ``(1/2N) sum (f - y)^2`` and
``eta_crit = 2N / lambda_max(Theta_hat_0)`` (the linearized dynamics
``r <- (I - eta Theta_hat_0/N) r`` are stable iff eta < eta_crit), gradient descent on a wide
network shows three phases in ``c = eta / eta_crit``:

* lazy, ``c < 1``: the loss decreases monotonically and the kernel stays put;
* catapult, ``1 < c < c_max``: the loss spikes (exceeds its initial value), lambda_max of the
  empirical NTK falls until ``eta lambda_max(Theta_hat_T) < 2N`` and training converges;
* divergent, ``c > c_max``: the loss does not come back.

What Lewkowycz et al. predict, in these units (their lambda is the NTK normalised by the
number of samples, ``lambda_max(Theta_hat)/N`` here, so their ``k/lambda_0`` is ``k/2``
eta_crit): the lower edge at ``c = 1`` (their eta_crit = 2/lambda_0) for any model; the upper
edge at ``c_max = 2`` (eta_max = 4/lambda_0) for their two-layer linear "uv" model, derived at
large width; for deep ReLU networks they observe eta_max ~ 12/lambda_0, ``c_max ~ 6``
(empirical, CIFAR-10 and other settings).  There is no derived c_max for the networks here
(one hidden layer, erf or ReLU, Gaussian data), so the upper edge is measured and compared,
not tested against a number.  Measured (quick grid, ReLU, width 1024, study seeds 1-20): lower
edge intervals within [0.83, 1.19], upper edge intervals within [1.78, 2.60], mostly
[2.0, 2.4]: the upper edge sits at or just above the uv model's 2, far below deep ReLU's ~6.

Measured per network and rate factor (``eta = lr_factor x 2N/lambda_max(Theta)``, analytic
Theta): the network's own ``c = eta lambda_max(Theta_hat_0)/(2N)`` (the unit every edge is
measured in), whether the loss was monotone (no step increased it by more than 1e-12 of its
initial value: rounding), spiked (max loss > initial), converged (final loss < initial and
no blow-up), ``c_T = eta lambda_max(Theta_hat_T)/(2N)`` and the relative kernel change
``|Theta_hat_T - Theta_hat_0|_F / |Theta_hat_0|_F``.

Edges (per cell): the lower edge is the threshold in c that best separates monotone from
non-monotone runs, the upper edge the one that best separates converged from non-converged
runs (fewest misclassified runs; a tie is the whole range of such thresholds).  Interval: the
percentile bootstrap over networks (stratified by rate factor) of that range's ends, at level
``1 - false_fail_rate / cells`` (Bonferroni).  A best separating threshold estimates where the
outcome's probability crosses 1/2.  The lower edge is sharp (c is each run's own; measured,
quick, 76 study seeds: monotone up to c = 1.003, non-monotone from 1.03 on).  The upper edge
is not: each network has its own, and at width 1024 the converged fraction falls from 0.97
(rate factor 2) through 0.34 (2.25) and 0.02 (2.5) to 1 run in 304 at 3 and none at 4 and 6.

Test, per cell (all must hold):
1. the lower edge's interval contains 1 (two-sided: eta_crit is 2N/lambda_max, neither N/ nor
   4N/ lambda_max);
2. the upper edge's interval lies above the lower edge's (the catapult window is not empty);
3. every run below the lower edge's interval is lazy: monotone loss and kernel change
   <= ``LAZY_KERNEL_CHANGE`` (a catapult moves lambda_max by at least ``1 - 1/c``);
4. every run above the lower edge's interval spikes: its loss is not monotone (the linearized
   dynamics' top mode grows; the fraction of catapult runs whose loss exceeds its initial
   value, the spike proper, is reported: at width 256 and c < ~1.2 the kernel can shrink
   before the loss doubles);
5. every run above the lower edge's interval that converges ends with ``c_T < 1`` (the catapult
   mechanism: a run keeping eta lambda_max(Theta_hat_T) > 2N cannot settle);
6. the divergent phase is reached: some runs lie above the upper edge's interval.
Whether a single run above the upper edge converges is not tested: the edge is where
convergence stops being the likelier outcome, and asking every run beyond its interval to
diverge asks finite-width networks for the sharp edge of the large-width limit (a correct run
converging at c = 3.03, quick study seed 46, failed that test; its false-fail rate was the
chance that any of ~13 runs lands in the tail, stated nowhere).
Stated false-fail rate ``false_fail_rate`` (the claim's level): test 1's; 2-6 are deterministic
at the grid's rates (quick, 76 study seeds: window between the intervals >= 0.55 wide, lazy
kernel change <= 0.028, converged c_T <= 0.96, >= 8 runs above the upper interval), a failure
there is a finding.  Detectable: an eta_crit off by more than the spacing of the rate factors
around 1 (0.8 / 0.9 / 1.1 / 1.25: ~10-15 %); a converged run keeping ``c_T >= 1``; no divergence
within the grid's rates.

Negative control (the claim's own networks where it is false): the same cells in mean-field
scaling (readout 1/n, rate x n: ``scaled_lr``) at ``control_lr_factor`` < 1.  The lazy phase
below eta_crit is a large-width statement of NTK scaling (Lee et al. 2019, sec. 2.4: the
kernel stays at Theta_hat_0 for eta < eta_crit; Lewkowycz et al. 2020, sec. 2: in the uv model
lambda moves by O(eta f^2 / n) per step); under mean-field scaling that factor is O(1) and the
kernel moves O(1) whatever the rate (Mei, Montanari & Nguyen 2018; Chizat, Oyallon & Bach
2019), so test 3 applied to the control runs below the claim's lower-edge interval must fail
(measured, quick cell: kernel change 0.6-1.0 at c ~ 0.6-0.85, against the lazy bound 0.1).
Power check (the claim's samples re-scored): the threshold without the loss's factor 1/2,
``N/lambda_max`` (a common convention slip): in its units the lower edge sits at ~2, so test 1
must fail.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .. import labels
from ..train import gradient_descent, scaled_lr
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, KeyNumber, Task, Verdict
from ._training import check_cells, critical_lr, dataset, network_rows, spec_of, split_with_control
from .initcommon import save_figure

CELL = ["activation", "depth", "width"]
CONTROL_FACTOR = 2.0          # the power check's c is 2 c: eta in units of N/lambda_max
#: The real control's parameterization: the kernel moves O(1) below eta_crit, no lazy phase.
CONTROL = "mean_field"
LAZY_KERNEL_CHANGE = 0.1
N_BOOT = 2000
#: The largest rate factor a grid needs: test 6 asks for runs beyond the upper edge.
MIN_TOP_FACTOR = 4.0
#: Lewkowycz et al. 2020's upper edges in units of eta_crit: uv model (derived), deep ReLU (observed).
LITERATURE_C_MAX = {"uv model (derived)": 2.0, "deep ReLU (observed)": 6.0}

_FACTORS = [0.6, 0.8, 0.9, 1.1, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 4.0, 6.0]
_BASE = {"activation": ["relu"], "depth": [1], "parameterization": "ntk", "sigma_w": 1.5, "sigma_b": 0.0,
         "data": "gaussian", "n_train": 16, "d_in": 8, "steps": 300, "lr_factor": _FACTORS,
         "control_lr_factor": [0.6, 0.8]}
GRIDS = {
    "quick": {**_BASE, "width": [1024], "n_networks": 4, "chunk": 4},
    "standard": {**_BASE, "activation": ["relu", "erf"], "width": [256, 2048], "n_networks": 8, "chunk": 8},
    "full": {**_BASE, "activation": ["relu", "erf", "tanh"], "depth": [1, 2], "width": [256, 1024, 4096],
             "n_networks": 32, "chunk": 8},
}


def percent(level: float) -> str:
    return f"{100 * level:.4g}%"


def _grids(grid: dict) -> tuple[dict, dict]:
    """The claim's grid and its mean-field control's (rates ``control_lr_factor``)."""
    base = {k: v for k, v in grid.items() if k != "control_lr_factor"}
    return base, {**base, "parameterization": CONTROL, "lr_factor": list(grid["control_lr_factor"])}


def split(grid: dict) -> list[tuple[str, dict]]:
    return split_with_control(*_grids(grid))


def check(grid: dict) -> None:
    base, control = _grids(grid)
    check_cells(base, min_widths=1)
    if grid["parameterization"] != "ntk":
        raise GridError("parameterization", "the critical rate 2N/lambda_max is a statement about NTK scaling")
    factors = grid["lr_factor"] if isinstance(grid["lr_factor"], (list, tuple)) else [grid["lr_factor"]]
    if not (sum(f < 1 for f in factors) >= 2 and sum(f > 1 for f in factors) >= 2):
        raise GridError("lr_factor", "needs at least two factors below 1 and two above (the edges are "
                        "located between rates)")
    if max(factors) < MIN_TOP_FACTOR:
        raise GridError("lr_factor", f"needs a factor >= {MIN_TOP_FACTOR:g}: the divergent phase must be reached "
                        "(twice the uv model's upper edge 2)")
    if not all(0 < f < 1 for f in control["lr_factor"]):
        raise GridError("control_lr_factor", "must lie in (0, 1): the control runs where the claim predicts laziness")
    if grid["sigma_b"] != 0:
        raise GridError("sigma_b", "must be 0: the mean-field control's n-fold rate would blow up the readout "
                        "bias term of the kernel")
    check_cells(control, min_widths=1)


def run_task(task: Task) -> list[dict]:
    p = task.params
    X, y, _, _ = dataset(p["data"], p["n_train"], 0, p["d_in"])
    n = len(X)
    eta = scaled_lr(spec_of(p), p["lr_factor"] * critical_lr(p, X))   # x n under mean-field scaling
    tr = gradient_descent(spec_of(p), X, y, eta, p["steps"], n_networks=p["n_networks"], seed=task.seed,
                          record=[0, p["steps"]], record_ntk=True, track_weights=False)
    finite = np.isfinite(tr.ntk).all(axis=(2, 3))
    lam = np.where(finite, np.linalg.eigvalsh(np.where(finite[..., None, None], tr.ntk, 0.0))[..., -1], np.nan)
    with np.errstate(invalid="ignore"):
        change = np.linalg.norm(tr.ntk[:, -1] - tr.ntk[:, 0], axis=(1, 2)) / np.linalg.norm(tr.ntk[:, 0], axis=(1, 2))
    loss0 = tr.loss[:, :1]
    with np.errstate(invalid="ignore"):
        ratio = tr.loss / loss0
        monotone = ~np.any(np.diff(ratio, axis=1) > 1e-12, axis=1) & ~tr.diverged
        final = ratio[:, -1]
        peak = np.max(ratio[:, 1:], axis=1)
    converged = ~tr.diverged & (final < 1)
    return network_rows({"c": eta * lam[:, 0] / (2 * n), "c_final": eta * lam[:, -1] / (2 * n),
                         "monotone": monotone.astype(float), "spiked": (peak > 1).astype(float),
                         "converged": converged.astype(float), "diverged": tr.diverged.astype(float),
                         "kernel_change": change, "final_loss_ratio": final, "peak_loss_ratio": peak},
                        lr_factor=p["lr_factor"])


def _wide(df, parameterization: str = "ntk") -> pd.DataFrame:
    """One row per run (cell, factor, task, network) of one parameterization with the
    quantities as columns."""
    keys = CELL + ["lr_factor", "task", "network"]
    df = df[df["parameterization"] == parameterization]
    return df.pivot_table(index=keys, columns="quantity", values="value", aggfunc="first").reset_index()


def _brackets(c: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of runs (B, M): the range (lo, hi) of thresholds t minimising the number of runs
    misclassified by "z = 1 iff c > t" (lo = 0 / hi = inf when no run lies below / above),
    and that number."""
    order = np.argsort(c, axis=1)
    cs, zs = np.take_along_axis(c, order, 1), np.take_along_axis(z, order, 1)
    b = len(c)
    ones_below = np.concatenate([np.zeros((b, 1)), np.cumsum(zs, 1)], axis=1)             # split k = 0..M
    zeros_above = np.concatenate([np.cumsum((1 - zs)[:, ::-1], 1)[:, ::-1], np.zeros((b, 1))], axis=1)
    errors = ones_below + zeros_above
    least = errors.min(axis=1)
    best = errors == least[:, None]
    k_lo, k_hi = np.argmax(best, axis=1), best.shape[1] - 1 - np.argmax(best[:, ::-1], axis=1)
    padded = np.concatenate([np.zeros((b, 1)), cs, np.full((b, 1), np.inf)], axis=1)
    rows = np.arange(b)
    return padded[rows, k_lo], padded[rows, k_hi + 1], least


def _stratified(strata: np.ndarray, rng) -> np.ndarray:
    """(N_BOOT, M) indices resampling runs with replacement within each stratum."""
    cols = []
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        cols.append(members[rng.integers(0, len(members), size=(N_BOOT, len(members)))])
    return np.concatenate(cols, axis=1)


def edge(runs: pd.DataFrame, outcome: str, level: float, scale: float = 1.0) -> dict:
    """The threshold in ``scale`` x c separating ``outcome`` = 0 (below) from 1 (above): the
    sample's best range (lo, hi), the runs it misclassifies, and the stratified
    percentile-bootstrap interval of the range's ends at ``level`` (seeded by the data)."""
    c, z = scale * runs["c"].to_numpy(float), runs[outcome].to_numpy(float)
    lo, hi, least = _brackets(c[None], z[None])
    rng = np.random.default_rng(len(c))
    idx = _stratified(runs["lr_factor"].to_numpy(), rng)
    blo, bhi, _ = _brackets(c[idx], z[idx])
    a = (1 - level) / 2
    # outer order statistics, not interpolation: conservative, and an infinite end (no run
    # above the threshold) stays infinite instead of inf - inf = nan
    return {"lo": float(lo[0]), "hi": float(hi[0]), "misclassified": int(least[0]),
            "ci_low": float(np.quantile(blo, a, method="lower")),
            "ci_high": float(np.quantile(bhi, 1 - a, method="higher"))}


def _cell_test(g: pd.DataFrame, level: float, scale: float = 1.0) -> dict:
    """Tests 1-6 of the module docstring for one cell's runs (c in units ``scale`` x c)."""
    g = g.assign(nonmonotone=1.0 - g["monotone"], unconverged=1.0 - g["converged"])
    low, high = edge(g, "nonmonotone", level, scale), edge(g, "unconverged", level, scale)
    c = scale * g["c"]
    lazy = g[c < low["ci_low"]]
    past = g[c > low["ci_high"]]
    settled = past[past["converged"] == 1]
    window = g[(c > low["ci_high"]) & (c < high["ci_low"])]
    above = g[c > high["ci_high"]]
    checks = {
        "lower edge contains 1": bool(low["ci_low"] <= 1 <= low["ci_high"]),
        "window not empty": bool(high["ci_low"] > low["ci_high"]),
        "lazy runs lazy": bool(((lazy["monotone"] == 1) & (lazy["kernel_change"] <= LAZY_KERNEL_CHANGE)).all()),
        "runs past the lower edge spike": bool((past["monotone"] == 0).all()),
        "converged runs end with c_T < 1": bool((settled["c_final"] < 1).all()),
        "divergent phase reached": bool(len(above) > 0),
    }
    return {"low": low, "high": high, "checks": checks, "passed": all(checks.values()),
            "n_lazy": len(lazy), "n_window": len(window), "n_above": len(above),
            "converged_above": int(above["converged"].sum()),
            "max_lazy_kernel_change": float(lazy["kernel_change"].max()) if len(lazy) else np.nan,
            "max_settled_c_final": float(settled["c_final"].max()) if len(settled) else np.nan,
            "window_spiked": float(window["spiked"].mean()) if len(window) else np.nan}


def _not_lazy(ctrl: pd.DataFrame, edge: float) -> tuple[int, int, float]:
    """Control runs below ``edge`` (the claim's lower-edge interval), how many of them are not
    lazy (test 3 fails), and their smallest kernel change."""
    if not len(ctrl):
        return 0, 0, np.nan
    below = ctrl[ctrl["c"] < edge]
    lazy = (below["monotone"] == 1) & (below["kernel_change"] <= LAZY_KERNEL_CHANGE)
    return len(below), int((~lazy).sum()), float(below["kernel_change"].min()) if len(below) else np.nan


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    df = df.assign(value=lambda d: d["value"].astype(float))
    runs, control = _wide(df), _wide(df, CONTROL)
    cells = list(runs.groupby(CELL, sort=True))
    level = 1 - false_fail_rate / max(1, len(cells))
    rows, results = [], []
    for key, g in cells:
        t, power = _cell_test(g, level), _cell_test(g, level, scale=CONTROL_FACTOR)
        ctrl = control.merge(g[CELL].drop_duplicates()) if len(control) else control
        below, not_lazy, change = _not_lazy(ctrl, t["low"]["ci_low"])
        results.append((t, power, not_lazy))
        lo, hi = t["low"], t["high"]
        rows.append({**dict(zip(CELL, key)), "runs": len(g),
                     "lower edge (c)": f"{lo['lo']:.3g}..{lo['hi']:.3g}",
                     f"lower edge {level:.4g} CI": f"[{lo['ci_low']:.3g}, {lo['ci_high']:.3g}]",
                     "upper edge (c)": f"{hi['lo']:.3g}..{hi['hi']:.3g}",
                     f"upper edge {level:.4g} CI": f"[{hi['ci_low']:.3g}, {hi['ci_high']:.3g}]",
                     "misclassified (lower, upper)": f"{lo['misclassified']}, {hi['misclassified']}",
                     "lazy / catapult / above runs": f"{t['n_lazy']} / {t['n_window']} / {t['n_above']}",
                     "max lazy kernel change": t["max_lazy_kernel_change"],
                     "max c_T of converged runs past the lower edge": t["max_settled_c_final"],
                     "converged runs above the upper edge": t["converged_above"],
                     "catapult runs with loss > initial": t["window_spiked"],
                     "failed checks": "; ".join(k for k, ok in t["checks"].items() if not ok) or "none",
                     "mean-field control: runs below the edge / not lazy": f"{below} / {not_lazy}",
                     "mean-field control: min kernel change": change,
                     "power check (c x 2) lower edge CI":
                         f"[{power['low']['ci_low']:.3g}, {power['low']['ci_high']:.3g}]"})
    table = pd.DataFrame(rows)
    passed = all(t["passed"] for t, _, _ in results)
    real = all(n > 0 for _, _, n in results)
    power = all(not p["checks"]["lower edge contains 1"] for _, p, _ in results)
    highs = [t["high"] for t, _, _ in results]
    uv = LITERATURE_C_MAX["uv model (derived)"]
    stats = {"cells": len(cells), "runs": int(len(runs)), "level": level,
             "lower_edges": ", ".join(f"[{t['low']['ci_low']:.3g}, {t['low']['ci_high']:.3g}]" for t, _, _ in results),
             "upper_edges": ", ".join(f"[{h['ci_low']:.3g}, {h['ci_high']:.3g}]" for h in highs),
             "upper_edge_contains_uv_2": ", ".join(str(h["ci_low"] <= uv <= h["ci_high"]) for h in highs),
             "failed_checks": sum(not ok for t, _, _ in results for ok in t["checks"].values()),
             "converged_above_upper_edge": ", ".join(str(t["converged_above"]) for t, _, _ in results),
             "control_mean_field_runs": int(len(control)),
             "control_mean_field_not_lazy_below_edge": ", ".join(str(n) for _, _, n in results),
             "power_check_N_over_lambda_rejected": power}
    summary = (f"{'pass' if passed else 'FAIL'}: lower edge (monotone loss ends) at c in {stats['lower_edges']} "
               f"(claimed 1), upper edge (training stops converging) at {stats['upper_edges']} x eta_crit "
               f"({percent(level)} intervals; Lewkowycz et al.: 2 for the uv model, ~6 observed for deep "
               f"ReLU; runs above it that converged: {stats['converged_above_upper_edge']}, not tested one by one); "
               f"{stats['failed_checks']} failed phase checks; control (mean-field scaling, "
               f"c < 1: {stats['control_mean_field_not_lazy_below_edge']} runs below the lower edge not lazy) "
               f"{'rejected' if real else 'NOT rejected'}; power check N/lambda_max "
               f"{'rejected' if power else 'NOT rejected'}")
    return Verdict(
        claim="critical-lr", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=("an eta_crit off 2N/lambda_max by more than the rate grid's spacing around 1 "
                    "(factors 0.8, 0.9 / 1.1, 1.25: ~10-15 %), e.g. the factor-2 slip N/lambda_max; a converged "
                    "run with eta lambda_max(Theta_hat_T) >= 2N; no divergence within the grid's rates"),
        negative_control=("the same networks in mean-field scaling (rate x n) below eta_crit, where the kernel "
                          "moves O(1): test 3 (runs below the lower edge are lazy) must fail; power check: "
                          "threshold N/lambda_max, the lower edge's interval must exclude 1 in its units"),
        negative_control_rejected=real and power, table=table)


def figure(df, verdict: Verdict, path) -> None:
    """Per cell: peak and final loss / initial, and eta lambda_max(Theta_hat)/(2N) at t = 0 and T,
    against c = eta/eta_crit, with the measured edges' intervals shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _wide(df.assign(value=lambda d: d["value"].astype(float)))
    cells = list(runs.groupby(CELL, sort=True))
    level = 1 - verdict.false_fail_rate / max(1, len(cells))
    fig, axes = plt.subplots(2, len(cells), figsize=(max(6.5, 5 * len(cells)), 7), squeeze=False, sharex=True)
    for j, (key, g) in enumerate(cells):
        t = _cell_test(g, level)
        top, bottom = axes[0, j], axes[1, j]
        top.scatter(g["c"], g["peak_loss_ratio"], s=12, color="C3", label="peak loss / initial")
        top.scatter(g["c"], g["final_loss_ratio"], s=12, marker="x", color="C0", label="final loss / initial")
        gone = g[g["diverged"] == 1]
        if len(gone):
            ceiling = 10 * np.nanmax(np.where(np.isfinite(g["peak_loss_ratio"]), g["peak_loss_ratio"], np.nan))
            top.scatter(gone["c"], np.full(len(gone), ceiling), s=14, marker="^", color="black",
                        label="diverged (loss > 1e6 x initial)")
        top.set_yscale("log")
        activation, depth, width = key
        top.set_title(labels.cell(f"{activation}, L={depth}, n={width}"))
        bottom.scatter(g["c"], g["c"], s=12, color="gray", label="t = 0")
        bottom.scatter(g["c"], g["c_final"], s=12, color="C2", label="t = T")
        bottom.axhline(1, color="black", lw=0.8, ls="--", label="$\\eta\\lambda_{max} = 2N$")
        bottom.set_yscale("log")
        bottom.set_xlabel("$c = \\eta / \\eta_{crit}$ (own $\\hat\\Theta_0$)")
        for ax in (top, bottom):
            ax.set_xscale("log")
            for e, color in ((t["low"], "C1"), (t["high"], "C4")):
                ax.axvspan(e["ci_low"], min(e["ci_high"], g["c"].max() * 1.2), color=color, alpha=0.15)
            ax.axvline(LITERATURE_C_MAX["uv model (derived)"], color="C4", lw=0.8, ls=":")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].set_ylabel("$\\eta \\lambda_{max}(\\hat\\Theta_t) / 2N$")
    axes[1, 0].legend(fontsize=8)
    fig.suptitle(f"Lazy / catapult / divergent phases\nshaded: edge intervals ({percent(level)}); "
                 "dotted: uv-model edge c = 2 (Lewkowycz et al. 2020)", fontsize=9)
    save_figure(fig, path)


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """Per cell, the lower edge (claimed at c = 1): the middle of the thresholds that best
    separate monotone from non-monotone runs, and its interval, read back from the table
    :func:`verdict` formats (3 significant digits)."""
    ci = next(c for c in v.table.columns if c.startswith("lower edge ") and c.endswith(" CI"))
    level = float(ci.split()[2])
    out = []
    for _, r in v.table.iterrows():
        lo, hi = map(float, r["lower edge (c)"].split(".."))
        ci_lo, ci_hi = map(float, re.findall(r"[-+\d.eE]+", r[ci]))
        out.append(KeyNumber(cell=labels.cell(f"{r['activation']}, L={r['depth']}, n={r['width']}"),
                             quantity="learning rate $\\eta / \\eta_{\\mathrm{crit}}$ where monotone loss ends",
                             name="lower edge c", value=(lo + hi) / 2, lo=ci_lo, hi=ci_hi, level=level, theory=1.0,
                             widths=(float(r["width"]),)))
    return tuple(out)


CLAIM = Claim(
    id="critical-lr",
    title="GD on wide nets: lazy below eta_crit = 2N/lambda_max(Theta_hat_0), catapult above, then divergence",
    statement=("For the loss (1/2N) sum (f - y)^2, a wide network's loss decreases monotonically with the kernel "
               "fixed iff eta < 2N/lambda_max(Theta_hat_0); above, up to a larger edge, the loss spikes, "
               "lambda_max falls below 2N/eta and training converges; beyond that edge it does not converge."),
    sources=("Lee et al. 2019, sec. 2.4", "Lewkowycz et al. 2020, sec. 2-3"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, figure=figure,
    key_numbers=key_numbers,
)
