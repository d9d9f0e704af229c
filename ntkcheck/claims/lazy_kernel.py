"""lazy-kernel: during training the empirical NTK and the weights of a wide network barely move.

Claim (Jacot et al. 2018, Thm 2; Lee et al. 2019, Thm 2.1 and Fig. 1): trained by gradient
descent on the MSE loss below the critical rate, for t in [0, T],
``sup_t |Theta_hat_t - Theta_hat_0|_F / |Theta_hat_0|_F = O(n^{-1/2})`` and the relative
weight change is ``O(n^{-1/2})``.

Measured per network (``T`` steps at ``lr_fraction`` x the critical rate ``2N/lambda_max(Theta)``,
NTK on the training and test inputs at 21 times): the sup over t of the relative kernel
change and of each layer's relative parameter change ``|theta^l_t - theta^l_0|/|theta^l_0|``.

Tests, per cell, exponents of the mean over networks vs width
(:func:`ntkcheck.stats.power_law_fit`, percentile-bootstrap interval over networks):

* kernel: the bound ``O(n^{-1/2})``: fails when the whole interval lies above -1/2 (or
  contains 0).  The sharp rate is faster: -1 for smooth activations (Dyer & Gur-Ari 2019,
  "Asymptotics of wide networks from Feynman diagrams": d Theta/dt = O(1/n)); ReLU's kinks
  make it ~ -3/4 *(derived: activation-pattern flips of ~ sqrt(n) units, each O(1/n), of
  random sign)*.  Both are reported, not tested.
* weights: the first layer (d x n) and the readout (n x 1) change by O(1) in Frobenius norm
  against norms ~ sqrt(n): exponent -1/2 exactly, tested two-sided.  Hidden-to-hidden
  layers (n x n) have entries moving O(1/n) against a norm ~ n: exponent -1 *(derived)*,
  reported.

Negative control: the same networks in mean-field scaling (readout sigma_w/n, rate x n,
:func:`ntkcheck.train.scaled_lr`): the kernel and weights move O(1), exponent ~ 0, so the
tests must fail.  Mean-field needs sigma_b = 0 (its readout bias is not O(1/n)), so every
cell uses sigma_b = 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..train import gradient_descent
from . import Claim, Task, Verdict
from ._training import bound_passed, cell_lr, check_cells, dataset, network_rows, spec_of, width_fit, width_series

FALSE_FAIL_RATE = 0.01
CELL = ["activation", "depth", "parameterization"]
CONTROL = "mean_field"

_BASE = {"activation": ["erf"], "depth": [1], "parameterization": ["ntk", CONTROL], "sigma_w": 1.5,
         "sigma_b": 0.0, "data": "gaussian", "n_train": 16, "n_test": 8, "d_in": 8, "steps": 100,
         "lr_fraction": 0.5}
GRIDS = {
    "quick": {**_BASE, "width": [64, 256, 1024, 4096], "n_networks": 8, "chunk": 8},
    "standard": {**_BASE, "activation": ["erf", "relu"],
                 "width": [64, 128, 256, 512, 1024, 2048, 4096], "n_networks": 16, "chunk": 8},
    "full": {**_BASE, "activation": ["erf", "relu", "tanh"], "depth": [1, 2, 3],
             "width": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 64, "chunk": 8},
}


def check(grid: dict) -> None:
    check_cells(grid, min_widths=3, control=CONTROL)


def run_task(task: Task) -> list[dict]:
    """Per network: sup_t relative kernel change, sup_t relative change of each layer and of all weights."""
    p = task.params
    X, y, X_test, _ = dataset(p["data"], p["n_train"], p["n_test"], p["d_in"])
    record = np.unique(np.linspace(0, p["steps"], 21).round().astype(int))
    tr = gradient_descent(spec_of(p), X, y, cell_lr(p, X), p["steps"], n_networks=p["n_networks"],
                          seed=task.seed, X_test=X_test, record=record, record_ntk=True)
    quantities = {"kernel_change": tr.kernel_change.max(1), "weight_change": tr.total_weight_change.max(1),
                  "diverged": tr.diverged.astype(float)}
    for l in range(tr.weight_change.shape[2]):
        quantities[f"weight_change_layer{l + 1}"] = tr.weight_change[:, :, l].max(1)
    return network_rows(quantities)


def _tests(cell_df: pd.DataFrame, depth: int, alpha: float) -> list[dict]:
    """The cell's tested fits (kernel bound, first and readout layers) and reported ones."""
    out = []
    layers = {1: -0.5, depth + 1: -0.5, **{l: -1.0 for l in range(2, depth + 1)}}
    for q, claimed, kind in ([("kernel_change", -0.5, "bound")]
                             + [(f"weight_change_layer{l}", c, "exact" if c == -0.5 else "reported")
                                for l, c in sorted(layers.items())]):
        fit = width_fit(cell_df[cell_df["quantity"] == q], claimed, 0, alpha, q)
        passed = bound_passed(fit, claimed) if kind == "bound" else bool(fit.passed)
        out.append({"quantity": q, "kind": kind, "claimed": claimed, "exponent": fit.exponent,
                    "ci_low": fit.ci_low, "ci_high": fit.ci_high, "passed": passed, "fit": fit})
    return out


def verdict(df) -> Verdict:
    df = df[df["quantity"] != "diverged"].assign(value=lambda d: d["value"].astype(float))
    cells = list(df.groupby(CELL, sort=True))
    n_tested = sum(1 + 2 for (_, depth, par), _ in cells if par != CONTROL)
    alpha = FALSE_FAIL_RATE / max(1, n_tested)          # Bonferroni over the claim's tests
    rows, series, detect, fits = [], [], 0.0, {}
    for (act, depth, par), g in cells:
        for t in _tests(g, int(depth), alpha):
            if par != CONTROL and t["kind"] == "exact":
                detect = max(detect, t["fit"].detectable)
            fits[(act, depth, par, t["quantity"])] = t["fit"]
            rows.append({"activation": act, "depth": depth, "parameterization": par,
                         **{k: v for k, v in t.items() if k != "fit"}})
    table = pd.DataFrame(rows)
    tested = table[table["kind"] != "reported"]
    claim = tested[tested["parameterization"] != CONTROL]
    control = tested[tested["parameterization"] == CONTROL]
    passed = bool(claim["passed"].all())
    # the control is rejected when every mean-field cell fails its kernel test
    rejected = bool(len(control) and not control.groupby(["activation", "depth"])["passed"].all().any()
                    and not control[control["quantity"] == "kernel_change"]["passed"].any())
    for (act, depth, par), g in cells:
        if par == CONTROL:
            continue
        ctrl = df[(df["activation"] == act) & (df["depth"] == depth) & (df["parameterization"] == CONTROL)]
        for q in ("kernel_change", "weight_change_layer1"):
            series.append(width_series(g[g["quantity"] == q], ctrl[ctrl["quantity"] == q], fits[(act, depth, par, q)],
                                       f"{q}: {act}, L={depth}, NTK parameterization (control: mean-field)",
                                       -0.5, r"$\sup_t$ relative change", bound=q == "kernel_change"))
    k = claim[claim["quantity"] == "kernel_change"]
    stats = {"n_tests": int(len(claim)), "max_kernel_exponent_upper": float(k["ci_high"].max()),
             "kernel_exponents": ", ".join(f"{e:.2f}" for e in k["exponent"]),
             "weight_exponents": ", ".join(f"{e:.2f}" for e in claim[claim["kind"] == "exact"]["exponent"]),
             "control_kernel_exponents": ", ".join(
                 f"{e:.2f}" for e in control[control["quantity"] == "kernel_change"]["exponent"])}
    widths = sorted(df["width"].unique())
    summary = (f"{'pass' if passed else 'FAIL'}: kernel change exponents {stats['kernel_exponents']} "
               f"(claimed <= -1/2), first/readout weight exponents {stats['weight_exponents']} (claimed -1/2), "
               f"widths {widths[0]}..{widths[-1]}; mean-field control "
               f"{'rejected' if rejected else 'NOT rejected'} (kernel exponents {stats['control_kernel_exponents']})")
    return Verdict(
        claim="lazy-kernel", passed=passed, summary=summary, statistics=stats, false_fail_rate=FALSE_FAIL_RATE,
        detectable=(f"a weight-change exponent off -1/2 by {detect:.2g}, or a kernel-change exponent whose "
                    f"bootstrap interval lies above -1/2 (Bonferroni over {n_tested} tests)"),
        negative_control="mean-field scaling (rate x n): kernel and weights move O(1), exponent ~ 0",
        negative_control_rejected=rejected, convergence=tuple(series), table=table)


CLAIM = Claim(
    id="lazy-kernel",
    title="Training barely moves the NTK and the weights: relative changes O(width^-1/2)",
    statement=("Below the critical rate, sup_t |Theta_hat_t - Theta_hat_0|/|Theta_hat_0| and the relative "
               "weight change vanish as width^-1/2 or faster (NTK parameterization); not under mean-field."),
    sources=("Jacot et al. 2018, Thm 2", "Lee et al. 2019, Thm 2.1", "Dyer & Gur-Ari 2019"),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check,
)
