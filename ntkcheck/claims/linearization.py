"""linearization: a wide trained network follows its linear model.

Claim (Lee et al. 2019, Thm 2.1 and eqs. 8-9): with
``f^lin_t = f_0 + Theta_hat_0(x, X) Theta_hat_0^{-1} (I - (I - eta Theta_hat_0/N)^t)(y - f_0(X))``
(gradient descent; :func:`ntkcheck.linearized.linearized`, ``method="gd"``, from the network's
own Theta_hat_0 on the training and test inputs),
``sup_t max_x |f_t(x) - f^lin_t(x)| = O(n^{-1/2})`` on training and test inputs.

Measured per network: that sup over t in [0, T] (21 recorded times) and over the train
(resp. test) inputs.  Test: the exponent of the mean over networks vs width
(:func:`ntkcheck.stats.power_law_fit`) must be consistent with the bound -1/2: fail when
its whole bootstrap interval lies above -1/2 or contains 0.  The sharp rate is -1 for smooth
activations (Dyer & Gur-Ari 2019: the kernel moves O(1/n)); it is reported.

Negative control: mean-field scaling (rate x n): features move O(1) and the network leaves
its linear model by O(1): exponent ~ 0, the test must fail.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..linearized import linearized
from ..train import gradient_descent
from . import Claim, GridError, Task, Verdict
from ._training import bound_passed, cell_lr, check_cells, dataset, network_rows, spec_of, width_fit, width_series

FALSE_FAIL_RATE = 0.01
CELL = ["data", "activation", "depth", "parameterization"]
CONTROL = "mean_field"
SETS = ("train", "test")

_BASE = {"data": ["gaussian"], "activation": ["erf"], "depth": [2], "parameterization": ["ntk", CONTROL],
         "sigma_w": 1.5, "sigma_b": 0.0, "n_train": 16, "n_test": 8, "d_in": 8, "steps": 100,
         "lr_fraction": 0.5}
GRIDS = {
    "quick": {**_BASE, "width": [64, 256, 1024], "n_networks": 8, "chunk": 8},
    "standard": {**_BASE, "data": ["gaussian", "digits"], "activation": ["erf", "relu"],
                 "width": [64, 128, 256, 512, 1024, 2048], "n_networks": 8, "chunk": 8},
    "full": {**_BASE, "data": ["gaussian", "digits"], "activation": ["erf", "relu", "tanh"], "depth": [2, 3],
             "width": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 32, "chunk": 8},
}


def check(grid: dict) -> None:
    check_cells(grid, min_widths=3, control=CONTROL)
    if any(d not in ("gaussian", "digits") for d in grid["data"]):
        raise GridError("data", "must be 'gaussian' or 'digits'")


def run_task(task: Task) -> list[dict]:
    """Per network: sup_t max_x |f_t - f^lin_t| on train and on test inputs."""
    p = task.params
    X, y, X_test, _ = dataset(p["data"], p["n_train"], p["n_test"], p["d_in"])
    n = len(X)
    lr = cell_lr(p, X)
    record = np.unique(np.linspace(0, p["steps"], 21).round().astype(int))
    tr = gradient_descent(spec_of(p), X, y, lr, p["steps"], n_networks=p["n_networks"], seed=task.seed,
                          X_test=X_test, record=record, record_ntk=True, track_weights=False)
    K = tr.ntk[:, 0]
    f_train, f_test = linearized(K[:, :n, :n], tr.f_train[:, 0], y, lr, tr.steps,
                                 ntk_test_train=K[:, n:, :n], f0_test=tr.f_test[:, 0], method="gd")
    return network_rows({"train": np.abs(tr.f_train - f_train).max(axis=(1, 2)),
                         "test": np.abs(tr.f_test - f_test).max(axis=(1, 2)),
                         "diverged": tr.diverged.astype(float)}, data=p["data"])


def verdict(df) -> Verdict:
    df = df[df["quantity"].isin(SETS)].assign(value=lambda d: d["value"].astype(float))
    cells = list(df.groupby(CELL, sort=True))
    n_tests = sum(len(SETS) for key, _ in cells if key[-1] != CONTROL)
    alpha = FALSE_FAIL_RATE / max(1, n_tests)
    rows, fits = [], {}
    for key, g in cells:
        for q in SETS:
            fit = width_fit(g[g["quantity"] == q], -0.5, 0, alpha, q)
            fits[key + (q,)] = fit
            rows.append({**dict(zip(CELL, key)), "inputs": q, "exponent": fit.exponent, "ci_low": fit.ci_low,
                         "ci_high": fit.ci_high, "passed": bound_passed(fit, -0.5)})
    table = pd.DataFrame(rows)
    claim, control = table[table["parameterization"] != CONTROL], table[table["parameterization"] == CONTROL]
    passed, rejected = bool(claim["passed"].all()), bool(len(control) and not control["passed"].any())
    series = []
    for key, g in cells:
        if key[-1] == CONTROL:
            continue
        ctrl = df[(df[CELL[:-1]] == pd.Series(dict(zip(CELL[:-1], key[:-1])))).all(axis=1)
                  & (df["parameterization"] == CONTROL)]
        for q in SETS:
            cell = dict(zip(CELL, key))
            series.append(width_series(
                g[g["quantity"] == q], ctrl[ctrl["quantity"] == q], fits[key + (q,)],
                f"{q} inputs: {cell['data']}, {cell['activation']}, L={cell['depth']} (control: mean-field)",
                -0.5, r"$\sup_t \max_x |f_t - f^{\mathrm{lin}}_t|$", bound=True))
    fmt = lambda t: ", ".join(f"{e:.2f}" for e in t["exponent"])  # noqa: E731
    stats = {"n_tests": n_tests, "exponents": fmt(claim), "control_exponents": fmt(control),
             "max_exponent_upper": float(claim["ci_high"].max())}
    summary = (f"{'pass' if passed else 'FAIL'}: sup_t |f - f_lin| exponents {stats['exponents']} "
               f"(train/test per cell; claimed <= -1/2); mean-field control "
               f"{'rejected' if rejected else 'NOT rejected'} (exponents {stats['control_exponents']})")
    detect = max(f.detectable for k, f in fits.items() if k[len(CELL) - 1] != CONTROL)
    return Verdict(
        claim="linearization", passed=passed, summary=summary, statistics=stats, false_fail_rate=FALSE_FAIL_RATE,
        detectable=(f"an exponent above -1/2 by more than ~{detect:.2g} (bootstrap interval clear of -1/2; "
                    f"Bonferroni over {n_tests} fits)"),
        negative_control="mean-field scaling (rate x n): the network leaves its linear model, exponent ~ 0",
        negative_control_rejected=rejected, convergence=tuple(series), table=table)


CLAIM = Claim(
    id="linearization",
    title="Trained wide networks follow their linearization: sup_t |f - f_lin| = O(width^-1/2)",
    statement=("Gradient descent on a wide network (NTK parameterization, below the critical rate) stays "
               "within O(width^-1/2) of the closed-form linear model built from Theta_hat_0, on train and "
               "test inputs; not under mean-field scaling."),
    sources=("Lee et al. 2019, Thm 2.1, eqs. 8-9", "Dyer & Gur-Ari 2019"),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check,
)
