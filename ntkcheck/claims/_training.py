"""Shared pieces of the training claims (lazy-kernel, linearization, loss-decay,
critical-lr): the claims' fixed data, the network of a grid cell, the learning
rate in units of the critical rate, and the width power-law fit of per-network
rows.
"""
from __future__ import annotations

import numpy as np

from ..data import digits, gaussian_inputs
from ..kernels import ntk_kernel
from ..spec import MLP
from ..stats import power_law_fit
from ..train import scaled_lr
from . import Convergence, GridError, grid_cells, split_cells, task_key

#: Bootstrap resamples of the power-law fits.
N_BOOT = 2000
#: Activations with a Lipschitz derivative, as Lee et al. 2019, Thm 2.1 assume: for them the
#: kernel moves O(1/n) during training (Dyer & Gur-Ari 2019), the sharp rate the claims test.
SMOOTH = ("erf", "tanh", "gelu", "sin", "cos", "sigmoid", "softplus", "identity")
#: Power of the sharp tests: an exponent off by ``detectable`` is rejected with probability 1 - this.
FALSE_PASS_RATE = 0.01
#: The exponent error the sharp tests are designed (by their networks per width) to detect.
TARGET_DETECTABLE = 0.25


def dataset(name: str, n_train: int, n_test: int, d_in: int):
    """The claims' fixed data (part of each claim's definition, the same for every task).

    ``"gaussian"``: rows ~ N(0, I_d) from seed 0, target ``y = sin(x_1 + x_2)``.
    ``"digits"``: scikit-learn's 8x8 digits (d = 64, ``d_in`` ignored), target the parity.
    """
    if name == "gaussian":
        X = gaussian_inputs(n_train + n_test, d_in, seed=0)
        y = np.sin(X[:, 0] + X[:, 1])
        return X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    if name == "digits":
        return digits(n_train, n_test, seed=0)
    raise ValueError(f"unknown data set {name!r}; choose 'gaussian' or 'digits'")


def spec_of(p: dict, width=None) -> MLP:
    return MLP(depth=p["depth"], width=p["width"] if width is None else width, activation=p["activation"],
               sigma_w=p["sigma_w"], sigma_b=p["sigma_b"], parameterization=p["parameterization"])


def critical_lr(p: dict, X: np.ndarray) -> float:
    """``2N / lambda_max(Theta)`` with Theta the analytic NTK of the cell's network in
    NTK parameterization (Lee et al. 2019, sec. 2.4): the same rate at every width."""
    theta = ntk_kernel(MLP(depth=p["depth"], width=1, activation=p["activation"], sigma_w=p["sigma_w"],
                           sigma_b=p["sigma_b"]), X)
    return 2 * len(X) / float(np.linalg.eigvalsh(theta)[-1])


def cell_lr(p: dict, X: np.ndarray) -> float:
    """The rate of a cell: ``lr_fraction`` x the critical rate, scaled for the
    parameterization by :func:`ntkcheck.train.scaled_lr` (x n for mean-field)."""
    return scaled_lr(spec_of(p), p["lr_fraction"] * critical_lr(p, X))


def check_cells(grid: dict, min_widths: int = 2, control: str | None = None) -> None:
    """Every cell makes a valid network; power-law fits need ``min_widths`` widths; a
    claim with a parameterization ``control`` needs it and ``"ntk"`` in the grid."""
    if len(grid["width"]) < min_widths:
        raise GridError("width", f"needs at least {min_widths} widths (the exponent is fitted across widths)")
    if control is not None and not {"ntk", control} <= set(grid["parameterization"]):
        raise GridError("parameterization", f"needs 'ntk' and the control {control!r}")
    if grid["n_networks"] < 2 or grid["chunk"] < 1:
        raise GridError("n_networks", "needs >= 2 networks (the fit resamples networks)")
    for cell in grid_cells(grid):
        try:
            spec = spec_of(cell)
            scaled_lr(spec, 1.0)
        except ValueError as err:
            key = next((k for k in ("activation", "parameterization", "sigma_b", "depth", "width")
                        if k in str(err)), "activation")
            raise GridError(key, str(err)) from None


def split_with_control(base: dict, control: dict) -> list[tuple[str, dict]]:
    """:func:`ntkcheck.claims.split_cells` of a claim's grid ``base`` (its task keys, hence
    seeds, are those of a grid without the control) and of its ``control`` grid, whose keys
    are prefixed by the control's parameterization."""
    prefix = task_key({"parameterization": control["parameterization"]}) + ","
    return split_cells(base) + [(prefix + key, params) for key, params in split_cells(control)]


def network_rows(quantities: dict[str, np.ndarray], **extra) -> list[dict]:
    """One row per network and quantity (``network`` = its index in the task's chunk),
    with the ``extra`` columns."""
    rows = []
    for q, values in quantities.items():
        for i, v in enumerate(np.asarray(values, dtype=float)):
            rows.append({"quantity": q, "network": i, "value": float(v), "stderr": 0.0, **extra})
    return rows


def geometric_mean(batch: np.ndarray) -> np.ndarray:
    """``exp(mean log x)`` over the last axis (networks): the statistic of the sharp-rate fits.

    Per-network deviations are ``C_i n^p`` with a random, width-independent factor ``C_i``
    (heavy right tail: a network whose residual mode starts near 0, a sup over times and
    inputs), so ``log`` turns the fit into a regression of ``log e`` on ``log n`` with
    additive noise of constant variance (the spread of ``log C_i``: ~ 0.5-0.9 measured):
    its mean over M networks has the unbiased variance ``s^2/M`` that
    :func:`ntkcheck.stats.power_law_fit` rescales its bootstrap to, and is as robust to a
    large outlier as the median, at ~2/3 of its variance for near-lognormal draws.
    """
    return np.exp(np.mean(np.log(batch), axis=-1))


def width_fit(df, claimed: float, seed: int, false_fail_rate: float, name: str, statistic=None,
              min_width: int = 0):
    """:func:`ntkcheck.stats.power_law_fit` of per-network rows (one quantity, one cell)
    over widths >= ``min_width``; the error at a width is ``statistic`` of its networks
    (default the mean); ``detectable`` at power ``1 - FALSE_PASS_RATE``."""
    widths = sorted(w for w in df["width"].unique() if w >= min_width)
    groups = [df.loc[df["width"] == w, "value"].to_numpy() for w in widths]
    return power_law_fit(widths, groups, claimed, seed=seed, n_boot=N_BOOT, statistic=statistic,
                         false_fail_rate=false_fail_rate, false_pass_rate=FALSE_PASS_RATE, name=name)


def sharp_rate(activation: str) -> float | None:
    """The sharp width exponent of the training deviations (kernel change, f - f_lin, rate
    error) for a smooth activation: -1 (Dyer & Gur-Ari 2019, Thm 1 / conjecture 1: d Theta/dt
    = O(1/n), so every deviation built from Theta_t - Theta_0 is O(1/n)); None for ReLU-like
    kinks, which lie outside the smoothness assumption of Lee et al. 2019, Thm 2.1."""
    return -1.0 if activation in SMOOTH else None


def check_sharp(grid: dict) -> None:
    """The sharp fits need >= 2 widths from ``sharp_min_width`` on."""
    if sum(w >= grid["sharp_min_width"] for w in grid["width"]) < 2:
        raise GridError("sharp_min_width", "needs >= 2 widths at or above it (the sharp rate is fitted there)")


def bound_passed(fit, bound: float) -> bool:
    """The claim "error = O(n^bound)": not contradicted unless the whole exponent
    interval lies above ``bound``; an interval containing 0 (no decay) fails."""
    return bool(fit.ci_low <= bound and fit.ci_high < 0)


def width_series(g, ctrl, fit, label: str, theory: float, y_name: str, robust: bool = False,
                 bound: bool = False, min_width: int = 0) -> Convergence:
    """Per-network rows ``g`` (one quantity and cell) and the control's ``ctrl`` as a
    :class:`Convergence` over widths: mean with a 95 % normal band, or with ``robust``
    the median with the interquartile band (level 0.5); ``fit`` (on widths >= ``min_width``)
    gives the exponent and its interval, at the fit's own level."""
    values = g.groupby("width")["value"]
    if robust:
        y = values.median()
        q = values.quantile([0.25, 0.75]).unstack()
        lo, hi = q[0.25], q[0.75]
        c = ctrl.groupby("width")["value"].median().reindex(y.index)
    else:
        y, se = values.mean(), values.std() / np.sqrt(values.count())
        lo, hi = np.maximum(y - 1.96 * se, 1e-300), y + 1.96 * se
        c = ctrl.groupby("width")["value"].mean().reindex(y.index)
    return Convergence(
        label=label, x=tuple(float(w) for w in y.index), y=tuple(y), lo=tuple(lo), hi=tuple(hi),
        theory_exponent=theory, exponent=float(fit.exponent), exponent_lo=float(fit.ci_low),
        exponent_hi=float(fit.ci_high), log_prefactor=float(fit.details["log_prefactor"]),
        fitted=tuple(bool(w >= min_width) for w in y.index),
        control=None if c.isna().all() else tuple(float(v) for v in c), y_name=y_name,
        level=0.5 if robust else 0.95, exponent_level=float(fit.level), bound=bound)


def deviation_tests(g, activation: str, alpha: float, name: str, statistic=None, min_width: int = 0) -> list[dict]:
    """The width tests of a training deviation (one quantity, one cell): the bound
    ``O(n^{-1/2})`` of Lee et al. 2019, Thm 2.1 over all widths (one-sided,
    :func:`bound_passed`) and, for a smooth activation, the sharp rate :func:`sharp_rate`
    two-sided on widths >= ``min_width`` (the asymptotic regime; the smallest widths
    carry O(n^{-3/2}) corrections that bend the fit)."""
    bound = width_fit(g, -0.5, 0, alpha, name, statistic)
    out = [{"kind": "bound", "claimed": -0.5, "fit": bound, "passed": bound_passed(bound, -0.5),
            "note": "Lee et al. Thm 2.1" if activation in SMOOTH
            else "outside Thm 2.1's smoothness assumption (kinks): an empirical bound"}]
    sharp = sharp_rate(activation)
    if sharp is not None:
        # passes when the interval contains the sharp rate: decay is the bound fit's to show (its
        # interval must exclude 0 over all widths); asking it again of the few sharp widths
        # made the false-fail rate 1 - power (loss-decay, quick: 5 of 30 seeds)
        fit = width_fit(g, sharp, 0, alpha, name, statistic, min_width)
        out.append({"kind": "sharp", "claimed": sharp, "fit": fit, "passed": bool(fit.pvalue > alpha),
                    "note": f"Dyer & Gur-Ari 2019, widths >= {min_width}"})
    return out


def test_row(t: dict, **cell) -> dict:
    """A table row of one :func:`deviation_tests` entry."""
    f = t["fit"]
    return {**cell, "kind": t["kind"], "claimed": t["claimed"], "exponent": f.exponent, "ci_low": f.ci_low,
            "ci_high": f.ci_high, "level": f.level, "detectable": f.detectable, "passed": t["passed"],
            "note": t["note"]}


def deviation_series(g, ctrl, fits: dict, activation: str, label: str, y_name: str, min_width: int) -> Convergence:
    """:func:`width_series` (median, robust) of a deviation with its sharp fit for a smooth
    activation, else its bound fit (``fits`` by kind)."""
    sharp = sharp_rate(activation) is not None
    return width_series(g, ctrl, fits["sharp" if sharp else "bound"], label, -1.0 if sharp else -0.5, y_name,
                        robust=True, bound=not sharp, min_width=min_width if sharp else 0)


def deviation_stats(claim, control, n_tests: int, alpha: float) -> dict:
    """The statistics of :func:`deviation_tests` tables (claim and control rows): exponents,
    level, the sharp tests' ``detectable`` at power 0.99 and whether it meets the design target."""
    fmt = lambda t: ", ".join(f"{e:.2f}" for e in t["exponent"])  # noqa: E731
    sharp = claim[claim["kind"] == "sharp"]
    detect = float(sharp["detectable"].max()) if len(sharp) else float("nan")
    return {"n_tests": n_tests, "level": 1 - alpha, "bound_exponents": fmt(claim[claim["kind"] == "bound"]),
            "sharp_exponents": fmt(sharp), "control_exponents": fmt(control[control["kind"] == "bound"]),
            "max_exponent_upper": float(claim["ci_high"].max()), "detectable_at_power_0.99": detect,
            "meets_target_0.25": bool(detect <= TARGET_DETECTABLE)}
