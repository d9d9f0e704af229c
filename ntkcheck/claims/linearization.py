"""linearization: a wide trained network follows its linear model.

Claim (Lee et al. 2019, Thm 2.1 and eqs. 8-9; Dyer & Gur-Ari 2019): with
``f^lin_t = f_0 + Theta_hat_0(x, X) Theta_hat_0^{-1} (I - (I - eta Theta_hat_0/N)^t)(y - f_0(X))``
(gradient descent; :func:`ntkcheck.linearized.linearized`, ``method="gd"``, from the network's
own Theta_hat_0 on the training and test inputs),
``sup_t max_x |f_t(x) - f^lin_t(x)| = O(n^{-1/2})`` on training and test inputs (the bound of
Thm 2.1, for activations with a Lipschitz derivative).

Sharp rate for smooth activations: O(1/n).  On the training inputs the difference obeys
``d(f - f_lin)/dt = -(eta/N) [Theta_hat_0 (f - f_lin) + (Theta_hat_t - Theta_hat_0) r_t]``, so it
is driven by the kernel's change, O(1/n) (Dyer & Gur-Ari 2019, sec. 3), against an O(1)
residual; at a test input the same holds with Theta_hat_t(x, X).  Hence
``sup_t |f_t - f^lin_t| = O(1/n)``: exponent -1, the same as the kernel's (Thm 2.1's -1/2
is a bound, from a kernel change bounded by O(n^{-1/2})).  ReLU lies outside the smoothness
assumption: the bound is kept as an empirical statement (measured ~ -0.75).

Measured per network: that sup over t in [0, T] (21 recorded times) and over the train
(resp. test) inputs.  Tests per cell and input set, exponents of the geometric mean over
networks (robust: the sup of a maximum is heavy-tailed; :func:`._training.geometric_mean`) vs
width (:func:`ntkcheck.stats.power_law_fit`, Student-t interval from the bootstrap standard
error at level ``1 - false_fail_rate / tests``): the bound on all widths
(fails when the whole interval lies above -1/2 or contains 0); for smooth activations the
sharp -1 two-sided on widths >= ``sharp_min_width`` = 256 (pooled over 20 quick study seeds
the local slope is ~ -0.85 from 128 to 512 and -1.03 from 512 to 2048: below 256 the fit is
pre-asymptotic).

Negative control: mean-field scaling (rate x n): features move O(1) and the network leaves
its linear model.  Measured exponents of the control are not 0: -0.11..-0.28 at depth 2
(standard grid), ~ -0.04 at depth 1 (quick grid): at these widths the mean-field deviation is still approaching its O(1) limit (the mean-field output
at initialisation is O(n^{-1/2}), and the part of f - f_lin it carries shrinks).  The
control is rejected when every mean-field cell fails a test: its exponent interval lies
above -1/2 and excludes -1.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..linearized import linearized
from ..train import gradient_descent
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict
from ._training import (cell_lr, check_cells, check_sharp, dataset, deviation_series, deviation_stats,
                        deviation_tests, geometric_mean, network_rows, sharp_rate, spec_of, test_row)

CELL = ["data", "activation", "depth", "parameterization"]
CONTROL = "mean_field"
SETS = ("train", "test")

_BASE = {"data": ["gaussian"], "activation": ["erf"], "depth": [2], "parameterization": ["ntk", CONTROL],
         "sigma_w": 1.5, "sigma_b": 0.0, "n_train": 16, "n_test": 8, "d_in": 8, "steps": 100,
         "lr_fraction": 0.5, "sharp_min_width": 256}
GRIDS = {
    # widths >= 256: below, the local slope of the geometric mean is ~ -0.85 (128 -> 512, pooled
    # over 20 study seeds) against -1.03 from 512 to 2048; the O(1/n) rate is asymptotic
    # 16 networks, not 8: the bound test passes only if the interval excludes 0, and on 7 degrees of
    # freedom 3 of 75 correct calibration seeds failed it (upper ends up to +0.02); with 16 the upper
    # ends at seeds 0-10, 33, 65 and 66 were -0.48 to -0.81
    "quick": {**_BASE, "depth": [1], "width": [256, 1024, 4096], "n_networks": 16, "chunk": 8},
    # depth 1 up to width 4096: the sharp fit needs a wide span of widths >= 256 and many networks,
    # which depth 2 (cost ~ width^2) cannot afford at this budget; the full grid has depths 2, 3.
    # Widths x4 apart: the slope's precision per CPU second is that of doubling steps, and 56
    # networks (log-spread ~ 0.5) make the sharp test's detectable <= 0.25
    "standard": {**_BASE, "data": ["gaussian", "digits"], "activation": ["erf", "relu"], "depth": [1],
                 "width": [64, 256, 1024, 4096], "n_networks": 56, "chunk": 8},
    "full": {**_BASE, "data": ["gaussian", "digits"], "activation": ["erf", "relu", "tanh"], "depth": [2, 3],
             "width": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 32, "chunk": 8},
}


def check(grid: dict) -> None:
    check_cells(grid, min_widths=3, control=CONTROL)
    check_sharp(grid)
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
                         "diverged": tr.diverged.astype(float)}, data=p["data"],
                        sharp_min_width=p["sharp_min_width"])


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    df = df[df["quantity"].isin(SETS)].assign(value=lambda d: d["value"].astype(float))
    min_width = int(df["sharp_min_width"].iloc[0]) if "sharp_min_width" in df else 0
    cells = list(df.groupby(CELL, sort=True))
    n_tests = sum(len(SETS) * (1 + (sharp_rate(key[1]) is not None)) for key, _ in cells if key[-1] != CONTROL)
    alpha = false_fail_rate / max(1, n_tests)
    rows, fits = [], {}
    for key, g in cells:
        for q in SETS:
            for t in deviation_tests(g[g["quantity"] == q], key[1], alpha, q, geometric_mean, min_width):
                fits.setdefault(key + (q,), {})[t["kind"]] = t["fit"]
                rows.append(test_row(t, **dict(zip(CELL, key)), inputs=q))
    table = pd.DataFrame(rows)
    claim, control = table[table["parameterization"] != CONTROL], table[table["parameterization"] == CONTROL]
    passed = bool(claim["passed"].all())
    rejected = bool(len(control) and not control.groupby(CELL[:-1] + ["inputs"])["passed"].all().any())
    series = []
    for key, g in cells:
        if key[-1] == CONTROL:
            continue
        ctrl = df[(df[CELL[:-1]] == pd.Series(dict(zip(CELL[:-1], key[:-1])))).all(axis=1)
                  & (df["parameterization"] == CONTROL)]
        for q in SETS:
            cell = dict(zip(CELL, key))
            series.append(deviation_series(
                g[g["quantity"] == q], ctrl[ctrl["quantity"] == q], fits[key + (q,)], cell["activation"],
                f"{q} inputs: {cell['data']}, {cell['activation']}, L={cell['depth']} (control: mean-field)",
                r"median $\sup_t \max_x |f_t - f^{\mathrm{lin}}_t|$ (interquartile band)", min_width))
    stats = deviation_stats(claim, control, n_tests, alpha)
    detect = stats["detectable_at_power_0.99"]
    summary = (f"{'pass' if passed else 'FAIL'}: sup_t |f - f_lin| exponents {stats['bound_exponents']} "
               f"(train/test per cell, all widths; bound <= -1/2), smooth cells from width {min_width}: "
               f"{stats['sharp_exponents'] or 'none'} (claimed -1); {100 * (1 - alpha):.4g}% intervals; "
               f"mean-field control {'rejected' if rejected else 'NOT rejected'} (exponents {stats['control_exponents']})")
    return Verdict(
        claim="linearization", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"a smooth-activation exponent off -1 by {detect:.2g} with probability 0.99; an exponent whose "
                    f"interval lies above -1/2 (Bonferroni over {n_tests} fits)"),
        negative_control="mean-field scaling (rate x n): the network leaves its linear model, exponents -0.1..-0.3",
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
