"""critical-lr: where lazy training stops.

Claim (Lee et al. 2019, sec. 2.4 and Fig. 4; Lewkowycz et al. 2020, "The large learning rate
phase of deep learning: the catapult mechanism"): for the loss ``(1/2N) sum (f - y)^2`` the
linearized dynamics ``r <- (I - eta Theta_hat_0/N) r`` are stable iff
``eta < eta_crit = 2N / lambda_max(Theta_hat_0)``.  A wide network trained by gradient descent
below eta_crit decreases its loss monotonically (lazy phase); just above it the top mode grows,
the loss spikes, and, up to a larger divergence rate (~4 eta_crit for the two-layer linear uv
model, ~12 for ReLU networks empirically), the network "catapults": the kernel shrinks until
``lambda_max < 2N/eta`` and the loss then converges.

Measured per network and rate ``eta = lr_factor x 2N/lambda_max(Theta)`` (analytic Theta, the
same rate at every width): the network's own ``c = eta lambda_max(Theta_hat_0)/(2N)``; whether
the loss ever exceeded its initial value (spike); whether it diverged (loss > 10^6 x start);
the final ``eta lambda_max(Theta_hat_T)/(2N)``; the final loss.

Test (deterministic at infinite width): every run with ``c < 1`` has no spike and every run
with ``c > 1`` spikes, except runs within the kernel's measured drift of the threshold,
``|c - 1| <= delta_n`` with ``delta_n`` the largest relative change of lambda_max among the
sub-critical runs at that width (measured, not tuned).  Stated false-fail rate 0: a single
mismatch outside the band fails the claim.  The catapult signature is reported: the fraction
of converged supercritical runs that end with ``eta lambda_max(Theta_hat_T)/(2N) < 1``, and
the measured divergence factor next to 4 (uv model) and ~12 (ReLU).

Negative control: the threshold without the loss's factor 1/2, ``N/lambda_max`` (a common
convention slip): runs with ``1/2 < c < 1`` do not spike, so the same test must fail.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..train import gradient_descent
from . import Claim, GridError, Task, Verdict
from ._training import check_cells, critical_lr, dataset, network_rows, spec_of

CELL = ["activation", "depth", "width"]
CONTROL_FACTOR = 0.5
QUANTITIES = ("c", "spiked", "diverged", "c_final", "final_loss_ratio", "peak_loss_ratio")

_FACTORS = [0.6, 0.8, 0.9, 0.95, 1.05, 1.1, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0]
_BASE = {"activation": ["relu"], "depth": [1], "parameterization": "ntk", "sigma_w": 1.5, "sigma_b": 0.0,
         "data": "gaussian", "n_train": 16, "d_in": 8, "steps": 300, "lr_factor": _FACTORS}
GRIDS = {
    "quick": {**_BASE, "width": [2048], "n_networks": 4, "chunk": 4},
    "standard": {**_BASE, "activation": ["relu", "erf"], "width": [256, 2048], "n_networks": 8, "chunk": 8},
    "full": {**_BASE, "activation": ["relu", "erf", "tanh"], "depth": [1, 2], "width": [256, 1024, 4096],
             "n_networks": 32, "chunk": 8},
}


def check(grid: dict) -> None:
    check_cells(grid, min_widths=1)
    if grid["parameterization"] != "ntk":
        raise GridError("parameterization", "the critical rate 2N/lambda_max is a statement about NTK scaling")
    factors = grid["lr_factor"] if isinstance(grid["lr_factor"], (list, tuple)) else [grid["lr_factor"]]
    if not (any(CONTROL_FACTOR < f < 1 for f in factors) and any(f > 1 for f in factors)):
        raise GridError("lr_factor", f"needs factors in ({CONTROL_FACTOR}, 1) and above 1 "
                        "(for the test and its negative control)")


def run_task(task: Task) -> list[dict]:
    p = task.params
    X, y, _, _ = dataset(p["data"], p["n_train"], 0, p["d_in"])
    n = len(X)
    eta = p["lr_factor"] * critical_lr(p, X)
    tr = gradient_descent(spec_of(p), X, y, eta, p["steps"], n_networks=p["n_networks"], seed=task.seed,
                          record=[0, p["steps"]], record_ntk=True, track_weights=False)
    finite = np.isfinite(tr.ntk).all(axis=(2, 3))
    lam = np.where(finite, np.linalg.eigvalsh(np.where(finite[..., None, None], tr.ntk, 0.0))[..., -1], np.nan)
    loss0 = tr.loss[:, 0]
    with np.errstate(invalid="ignore"):
        final = tr.loss[:, -1] / loss0
        peak = np.max(tr.loss[:, 1:], axis=1) / loss0
    return network_rows({"c": eta * lam[:, 0] / (2 * n), "spiked": (peak > 1).astype(float),
                         "diverged": tr.diverged.astype(float), "c_final": eta * lam[:, 1] / (2 * n),
                         "final_loss_ratio": final, "peak_loss_ratio": peak}, lr_factor=p["lr_factor"])


def _wide(df) -> pd.DataFrame:
    """One row per run (cell, factor, task, network) with the quantities as columns."""
    keys = CELL + ["lr_factor", "task", "network"]
    return df.pivot_table(index=keys, columns="quantity", values="value", aggfunc="first").reset_index()


def _mismatches(runs: pd.DataFrame, threshold: float) -> tuple[int, int]:
    """Runs whose spike disagrees with ``c > threshold``, outside each width's drift band;
    and the number of runs excluded by the band."""
    bad = excluded = 0
    for _, g in runs.groupby(CELL):
        lazy = g[(g["c"] < 1) & (g["diverged"] == 0)]
        delta = float(np.max(np.abs(lazy["c_final"] / lazy["c"] - 1))) if len(lazy) else 0.0
        near = np.abs(g["c"] / threshold - 1) <= delta
        predicted = g["c"] > threshold
        observed = g["spiked"] > 0
        bad += int(((predicted != observed) & ~near).sum())
        excluded += int(near.sum())
    return bad, excluded


def verdict(df) -> Verdict:
    df = df.assign(value=lambda d: d["value"].astype(float))
    runs = _wide(df)
    bad, excluded = _mismatches(runs, 1.0)
    bad_ctrl, _ = _mismatches(runs, CONTROL_FACTOR)
    passed, rejected = bad == 0, bad_ctrl > 0
    rows = []
    for (act, depth, width), g in runs.groupby(CELL):
        lazy_max = g.loc[g["spiked"] == 0, "c"].max()
        spike_min = g.loc[g["spiked"] > 0, "c"].min()
        by_factor = g.groupby("lr_factor")["diverged"].mean()
        div = by_factor[by_factor > 0.5]
        cata = g[(g["c"] > 1) & (g["diverged"] == 0) & (g["final_loss_ratio"] < 1)]
        rows.append({"activation": act, "depth": depth, "width": width, "theory threshold c": 1.0,
                     "largest c without spike": lazy_max, "smallest c with spike": spike_min,
                     "catapult runs (converged, c > 1)": len(cata),
                     "of which final c < 1": float((cata["c_final"] < 1).mean()) if len(cata) else np.nan,
                     "max peak loss / initial (catapults)": cata["peak_loss_ratio"].max() if len(cata) else np.nan,
                     "divergence factor (majority)": float(div.index.min()) if len(div) else np.nan,
                     "divergence theory": "4 (uv model), ~12 (ReLU, Lewkowycz et al.)"})
    table = pd.DataFrame(rows)
    stats = {"runs": int(len(runs)), "mismatches": bad, "excluded_by_drift_band": excluded,
             "control_mismatches": bad_ctrl,
             "catapult_final_c_below_1": float(np.nanmin(table["of which final c < 1"]))
             if table["of which final c < 1"].notna().any() else np.nan,
             "divergence_factors": ", ".join(f"{v:g}" for v in table["divergence factor (majority)"])}
    summary = (f"{'pass' if passed else 'FAIL'}: {bad} of {len(runs)} runs disagree with 'loss spikes iff "
               f"eta > 2N/lambda_max(Theta_hat_0)' ({excluded} within the kernel-drift band); catapults ending "
               f"below the threshold: {stats['catapult_final_c_below_1']:.0%}; divergence at "
               f"{stats['divergence_factors']} x eta_crit; control N/lambda_max "
               f"{'rejected' if rejected else 'NOT rejected'} ({bad_ctrl} mismatches)")
    return Verdict(
        claim="critical-lr", passed=passed, summary=summary, statistics=stats, false_fail_rate=0.0,
        detectable=("a threshold off 2N/lambda_max by more than the spacing of the rate grid around 1 "
                    "(factors 0.95 / 1.05) plus the kernel drift"),
        negative_control=f"threshold N/lambda_max (x{CONTROL_FACTOR}) must mispredict sub-critical runs",
        negative_control_rejected=rejected, table=table)


CLAIM = Claim(
    id="critical-lr",
    title="GD on wide nets turns unstable at eta = 2N/lambda_max(Theta_hat_0); catapult above",
    statement=("For the loss (1/2N) sum (f - y)^2, the loss of a wide network spikes iff "
               "eta > 2N/lambda_max(Theta_hat_0); between that and a divergence rate the network "
               "catapults and converges with eta lambda_max(Theta_hat_T) < 2N."),
    sources=("Lee et al. 2019, sec. 2.4", "Lewkowycz et al. 2020"),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check,
)
