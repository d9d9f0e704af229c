"""loss-decay: residuals decay mode by mode at the rates of the tangent kernel.

Claim (the seed memo's ``|l| = exp(-t Theta)``; Lee et al. 2019, eq. 9; Arora et al. 2019,
"Fine-grained analysis ...", sec. 4): in the eigenbasis ``Theta_hat_0 = sum_i lam_i v_i v_i^T`` the residual component
``c_i(t) = v_i^T (f_t(X) - y)`` decays as ``exp(-eta lam_i t/N)`` under gradient flow, i.e. as
``(1 - eta lam_i/N)^t`` under gradient descent: large-eigenvalue modes are learned first.

Measured per network (GD at ``lr_fraction`` x the critical rate, so every top mode decays
without oscillating): for each of the ``n_modes`` largest eigenvalues of the network's own
Theta_hat_0, the measured rate ``-log|c_i(t_i)/c_i(0)| / t_i`` at the step ``t_i`` where the
predicted decay is ``e^-2`` (capped at T), against the predicted ``-log(1 - eta lam_i/N)``
(= eta lam_i/N + O((eta lam_i/N)^2), the flow rate); the relative error per mode, and its
geometric mean over the top modes (:func:`_mode_log_mean`: a mode whose ``c_i(0)`` happens to
be ~0 has an error O(1/n)/|c_i(0)|, heavy-tailed; averaged in log it cannot dominate).

Tests, on the geometric mean over networks of that per-network error
(:func:`._training.geometric_mean`: a regression of log error on log width with replicate
standard errors; pooled over 20 study seeds its local slopes are -0.84 (64 -> 256), -0.98,
-0.99 (to 4096), so the sharp fit from 256 is in its asymptotic range) vs width
(:func:`ntkcheck.stats.power_law_fit`, Student-t interval from the bootstrap standard error at
level ``1 - false_fail_rate / tests``; the standard grid's 64 networks per width make the
sharp test's ``detectable`` ~ 0.23 at power 0.99):

* the bound: it vanishes at least as fast as the O(n^{-1/2}) deviation from the linear model
  (Lee et al. 2019, Thm 2.1), failing when the interval over all widths lies above -1/2 or
  contains 0.  For ReLU this lies outside Thm 2.1's smoothness assumption (an empirical bound,
  measured ~ -0.7).
* smooth activations: the sharp rate -1, two-sided, on widths >= ``sharp_min_width``.  The
  rate error comes from the kernel's change during training: the modes of Theta_hat_t differ
  from those of Theta_hat_0 by O(|Theta_hat_t - Theta_hat_0|) = O(1/n) (Dyer & Gur-Ari 2019,
  sec. 3; first-order eigenvalue perturbation), so the relative rate error is O(1/n).

The relative error per mode at the largest width is tabulated, with the infinite-width
eigenvalues of the analytic Theta beside the measured ones.

Negative control: mean-field scaling (rate x n): the kernel moves O(1) during training, the
rates drift from those of Theta_hat_0, the error does not vanish (measured exponents
-0.05..-0.34 over 20 quick seeds, -0.25 and -0.10 at standard): every mean-field cell must
fail a test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels import ntk_kernel
from ..linearized import residual_modes
from ..networks import empirical_ntk, init_params
from ..train import gradient_descent
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict
from ._training import (cell_lr, check_cells, check_sharp, dataset, deviation_series, deviation_stats,
                        deviation_tests, geometric_mean, network_rows, sharp_rate, spec_of, test_row)

CELL = ["activation", "depth", "parameterization"]
CONTROL = "mean_field"

_BASE = {"activation": ["erf"], "depth": [1], "parameterization": ["ntk", CONTROL], "sigma_w": 1.5,
         "sigma_b": 0.0, "data": "gaussian", "n_train": 16, "d_in": 8, "steps": 60,
         "lr_fraction": 0.25, "n_modes": 4, "sharp_min_width": 256}
GRIDS = {
    # 16 networks, not 8: the bound test passes only if the interval excludes 0, and 1 of 75 correct
    # calibration seeds failed it (upper end +0.16), 1 of 75 kept its control; with 16, seeds 0-7, 49
    # and 62 pass with controls rejected (upper ends -0.29 to -0.74, control exponents -0.17 to -0.36)
    "quick": {**_BASE, "width": [64, 256, 1024, 4096], "n_networks": 16, "chunk": 8},
    "standard": {**_BASE, "activation": ["erf", "relu"],
                 "width": [64, 256, 512, 1024, 2048, 4096], "n_networks": 64, "chunk": 8},
    "full": {**_BASE, "activation": ["erf", "relu", "tanh"], "depth": [1, 2, 3],
             "width": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 64, "chunk": 8},
}


def check(grid: dict) -> None:
    check_cells(grid, min_widths=3, control=CONTROL)
    check_sharp(grid)
    if not 0 < grid["lr_fraction"] <= 0.5:
        raise GridError("lr_fraction", "must be in (0, 0.5]: above, the top modes oscillate")
    if not 1 <= grid["n_modes"] <= grid["n_train"]:
        raise GridError("n_modes", "must be between 1 and n_train")


def run_task(task: Task) -> list[dict]:
    """Per network and top mode k (1 = largest eigenvalue): measured and predicted rates."""
    p = task.params
    X, y, _, _ = dataset(p["data"], p["n_train"], 0, p["d_in"])
    n, lr = len(X), cell_lr(p, X)
    spec = spec_of(p)
    tr = gradient_descent(spec, X, y, lr, p["steps"], n_networks=p["n_networks"], seed=task.seed,
                          track_weights=False)
    # the same networks' Theta_hat_0 (network i is seed child i whatever the call)
    ntk0 = empirical_ntk(spec, init_params(spec, X.shape[1], task.seed, 0, p["n_networks"]), X)
    lam, modes = residual_modes(ntk0, tr.residuals)                   # ascending eigenvalues
    lam_inf = np.linalg.eigvalsh(ntk_kernel(spec, X))[::-1]
    rows, errors = [], []
    for k in range(p["n_modes"]):
        i = n - 1 - k
        predicted = -np.log1p(-lr * lam[:, i] / n)                       # per-step GD rate, (M,)
        t = np.minimum(np.ceil(2.0 / predicted), p["steps"]).astype(int)
        ratio = np.abs(modes[np.arange(len(t)), t, i] / modes[:, 0, i])
        measured = -np.log(ratio) / t
        errors.append(np.abs(measured / predicted - 1))
        rows += network_rows({"rate_error": errors[-1], "rate": measured, "predicted_rate": predicted,
                              "eigenvalue": lam[:, i]}, mode=k + 1, eigenvalue_inf=float(lam_inf[k]))
    # reported, not tested: a mode whose c_i(0) is ~0 dominates the arithmetic mean (see _mode_log_mean)
    rows += network_rows({"mean_rate_error": np.mean(errors, axis=0)}, mode=0, eigenvalue_inf=np.nan)
    return [{**r, "sharp_min_width": p["sharp_min_width"]} for r in rows]


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    df = df.assign(value=lambda d: d["value"].astype(float))
    min_width = int(df["sharp_min_width"].iloc[0]) if "sharp_min_width" in df else 0
    err = _mode_log_mean(df)
    cells = list(err.groupby(CELL, sort=True))
    n_tests = sum(1 + (sharp_rate(key[0]) is not None) for key, _ in cells if key[-1] != CONTROL)
    alpha = false_fail_rate / max(1, n_tests)
    rows, fits = [], {}
    for key, g in cells:
        for t in deviation_tests(g, key[0], alpha, "mode_geometric_mean_rate_error", geometric_mean, min_width):
            fits.setdefault(key, {})[t["kind"]] = t["fit"]
            rows.append(test_row(t, **dict(zip(CELL, key))))
    tests = pd.DataFrame(rows)
    claim, control = tests[tests["parameterization"] != CONTROL], tests[tests["parameterization"] == CONTROL]
    passed = bool(claim["passed"].all())
    rejected = bool(len(control) and not control.groupby(CELL[:-1])["passed"].all().any())
    series = []
    for (act, depth, par), g in cells:
        if par == CONTROL:
            continue
        ctrl = err[(err["activation"] == act) & (err["depth"] == depth) & (err["parameterization"] == CONTROL)]
        series.append(deviation_series(
            g, ctrl, fits[(act, depth, par)], act,
            f"relative rate error of the top modes (geometric mean): {act}, L={depth} (control: mean-field)",
            r"median over networks of $\exp \langle \log |\mathrm{rate}_i / (\eta\lambda_i/N) - 1| \rangle_i$"
            " (interquartile band)", min_width))
    stats = deviation_stats(claim, control, n_tests, alpha)
    detect = stats["detectable_at_power_0.99"]
    table = _mode_table(df)
    top = table[table["parameterization"] == "ntk"]
    stats["max_mode_error_at_largest_width"] = float(top["median relative rate error"].max())
    summary = (f"{'pass' if passed else 'FAIL'}: rate error exponents {stats['bound_exponents']} (all widths; "
               f"bound <= -1/2), smooth cells from width {min_width}: {stats['sharp_exponents'] or 'none'} "
               f"(claimed -1); {100 * (1 - alpha):.4g}% intervals; at width {int(df['width'].max())} the top-mode "
               f"rate errors are <= {stats['max_mode_error_at_largest_width']:.2g}; mean-field control "
               f"{'rejected' if rejected else 'NOT rejected'} (exponents {stats['control_exponents']})")
    return Verdict(
        claim="loss-decay", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"a smooth-activation exponent off -1 by {detect:.2g} with probability 0.99; an exponent whose "
                    f"interval lies above -1/2 (Bonferroni over {n_tests} fits)"),
        negative_control="mean-field scaling (rate x n): the kernel moves O(1), rate errors do not vanish",
        negative_control_rejected=rejected, convergence=tuple(series), table=table)


def _mode_log_mean(df) -> pd.DataFrame:
    """Per network, the geometric mean over the top modes of the relative rate error.

    A mode whose ``c_i(0)`` happens to be ~0 has an error ~ O(1/n) / |c_i(0)|: heavy-tailed
    (one network at width 4096 with error 0.25 against ~0.002, study seed 7), and it
    dominated the arithmetic mean over modes; in ``log`` it adds its excess / n_modes."""
    modes = df[(df["quantity"] == "rate_error") & (df["mode"] > 0)]
    keys = ["task", "network"] if "task" in modes else CELL + ["width", "network"]
    logs = modes.assign(value=np.log(modes["value"])).groupby(keys, sort=False)
    out = logs.first().drop(columns="value").join(np.exp(logs["value"].mean())).reset_index()
    return out.assign(quantity="mode_geometric_mean_rate_error")


def _mode_table(df) -> pd.DataFrame:
    """Per cell and top mode at the largest width: median measured vs predicted rate,
    relative error, and the analytic Theta's eigenvalue beside the measured one."""
    big = df[(df["width"] == df["width"].max()) & (df["mode"] > 0)]
    out = []
    for key, g in big.groupby(CELL + ["mode"], sort=True):
        med = {q: float(g.loc[g["quantity"] == q, "value"].median())
               for q in ("rate", "predicted_rate", "rate_error", "eigenvalue")}
        out.append({**dict(zip(CELL + ["mode"], key)), "width": int(g["width"].iloc[0]),
                    "measured rate": med["rate"], "eta lam_i/N (GD form)": med["predicted_rate"],
                    "median relative rate error": med["rate_error"], "lam_i (Theta_hat_0)": med["eigenvalue"],
                    "lam_i (analytic Theta)": float(g["eigenvalue_inf"].iloc[0])})
    return pd.DataFrame(out)


CLAIM = Claim(
    id="loss-decay",
    title="Residuals decay mode by mode at rates eta lam_i/N of the tangent kernel",
    statement=("In the eigenbasis of Theta_hat_0 each residual component decays at rate eta lam_i/N "
               "(exp(-eta Theta t/N)); the relative rate error of the top modes vanishes with width "
               "(NTK parameterization), not under mean-field scaling."),
    sources=("Lee et al. 2019, eq. 9",
             'Arora et al. 2019, "Fine-grained analysis of optimization and generalization for '
             'overparameterized two-layer neural networks", sec. 4',
             "Jacot et al. 2018, sec. 5"),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check,
)
