"""Shared machinery of the ensemble claims (readout-posterior, ntk-ensemble): train an
ensemble, compare it with the Gaussian process of :mod:`ntkcheck.gp`, and judge.

Per task (one width x chunk of networks) ``run_task`` trains the networks with the engine
(:func:`ntkcheck.train.gradient_descent`; readout only or all layers) and records, at the
steps ``t_finite`` and ``steps``:

* ``f``: each network's outputs on the test inputs (columns ``network, i, t``); on digits
  only the ensemble mean ``f_mean`` (control-variate estimate, see ``run_task``);
* ``coupling``: each network's RMS distance from the infinite-width affine map applied to
  its own initial function (:func:`ntkcheck.gp.coupling_gap`), sup over the two times;
  ``coupling_control`` the same with the other claim's kernel (the negative control);
* targets (chunk 0 only, ``network = -1``): ``mu``/``sigma`` of the claimed GP and
  ``mu_control``/``sigma_control`` of the control's, ``contraction`` = the largest
  ``|1 - eta lambda_i/N|^steps`` (how close ``steps`` is to t = inf); on digits also the
  kernel-regression means ``mu_ntk_inf`` (Theta_*X Theta^{-1} y) and ``mu_nngp_inf``.

The verdict: at the widest width, Holm's combination (:func:`ntkcheck.stats.holm`) of the
mean, covariance (of ``f - mu``) and Gaussianity tests at both times must pass and the same
tests against the control GP must fail; the coupling gap must shrink at least as fast as
width^-1/2 (:func:`ntkcheck.stats.power_law_fit`, :func:`bound_passed`: the theorems bound it by
O(n^-1/2); the control's gap must not).  The bound is one-sided because the fitted exponent
carries the gap's higher-order terms: over the quick calibration's first 122 seeds the sphere
exponents averaged -0.508 (readout-posterior; sd 0.015, 0.55 of an interval's standard error
below -1/2, pooled z = -5.7) and -0.505 (ntk-ensemble), so the two-sided test "interval contains
-1/2" failed readout-posterior at seed 120 (-0.55 [-0.60, -0.50]) at several times its stated
rate.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..data import digits, sphere_inputs
from ..gp import coupling_gap, ensemble_map, ensemble_moments
from ..kernels import output_kernels
from ..stats import covariance_test, gaussianity_test, holm, mean_test
from ..train import gradient_descent
from . import CLAIM_FALSE_FAIL_RATE, Convergence, GridError, Task, Verdict, pool, split_cells
from ._training import bound_passed, check_cells, spec_of, width_fit, width_series

#: The last recorded step counts as t = inf when every mode has contracted below this.
INF_TOLERANCE = 1e-9
TARGETS = ("mu", "sigma", "mu_control", "sigma_control")


def ensemble_data(name: str, n_train: int, n_test: int, d_in: int):
    """The fixed data of the ensemble claims.

    ``"sphere"``: ``n_train`` points uniform on the sphere of radius sqrt(d) (seed 0, so
    ``x.x/d = 1``), target ``y = sin(x_1 + x_2)``; test point i is the normalised midpoint of
    training points i and i+1 (mod N), so the posterior differs clearly from the prior.
    ``"digits"``: :func:`ntkcheck.data.digits` (parity target, d = 64).
    """
    if name == "sphere":
        X = sphere_inputs(n_train, d_in, seed=0, radius=math.sqrt(d_in))
        pairs = [(i % n_train, (i + 1) % n_train) for i in range(n_test)]
        X_test = np.stack([X[a] + X[b] for a, b in pairs])
        X_test *= math.sqrt(d_in) / np.linalg.norm(X_test, axis=1, keepdims=True)
        return X, np.sin(X[:, 0] + X[:, 1]), X_test, np.sin(X_test[:, 0] + X_test[:, 1])
    if name == "digits":
        return digits(n_train, n_test, seed=0)
    raise ValueError(f"unknown data set {name!r}; choose 'sphere' or 'digits'")


def _setup(p: dict, readout_only: bool):
    """Data, analytic kernels and the rate: ``lr_fraction`` x the critical rate 2N/lambda_max
    of the trained kernel (K for readout-only training, Theta otherwise)."""
    X, y, X_test, y_test = ensemble_data(p["data"], p["n_train"], p["n_test"], p["d_in"])
    state = output_kernels(spec_of(p, width=1), np.concatenate([X, X_test]))
    K, theta = state.nngp, state.ntk
    kern, ctrl = (K, theta) if readout_only else (theta, K)
    n = len(X)
    lr = p["lr_fraction"] * 2 * n / float(np.linalg.eigvalsh(kern[:n, :n])[-1])
    return X, y, X_test, y_test, K, kern, ctrl, lr


def contraction(kernel_train: np.ndarray, lr: float, steps: int) -> float:
    """Largest ``|1 - lr lambda_i/N|^steps``: the part of the initial residual GD has not removed."""
    lam = np.linalg.eigvalsh(kernel_train)
    return float(np.max(np.abs(1 - lr * lam / len(lam))) ** steps)


def split(grid: dict) -> list[tuple[str, dict]]:
    """Default cells and chunks per data set; digits cells take their sizes from the
    ``digits_*`` keys (fewer, larger networks in one chunk: they feed a table of means)."""
    out = []
    for data in grid["data"]:
        sub = {k: v for k, v in grid.items() if k != "digits_width"} | {"data": data}
        if data == "digits":
            sub.update(width=grid["digits_width"], n_networks=grid["digits_networks"], chunk=grid["digits_networks"],
                       n_train=grid["digits_train"], n_test=grid["digits_test"], steps=grid["digits_steps"])
        out += [(f"data={data},{key}", params) for key, params in split_cells(sub)]
    return out


def check(grid: dict, readout_only: bool) -> None:
    check_cells(grid, min_widths=3)
    if grid["parameterization"] != "ntk":
        raise GridError("parameterization", "the GP laws are for NTK parameterization")
    if not 0 < grid["t_finite"] < grid["steps"]:
        raise GridError("t_finite", "must lie strictly between 0 and steps")
    if grid["n_networks"] < 10:
        raise GridError("n_networks", "the Gaussianity test needs >= 10 networks")
    if not set(grid["data"]) <= {"sphere", "digits"} or "sphere" not in grid["data"]:
        raise GridError("data", "a list of 'sphere' (needed: the t = inf moment tests) and 'digits'")
    p = {**grid, "data": "sphere"}
    *_, K, kern, _, lr = _setup(p, readout_only)
    n = p["n_train"]
    if contraction(kern[:n, :n], lr, grid["steps"]) > INF_TOLERANCE:
        raise GridError("steps", f"too few steps for t = inf on 'sphere' (contraction above {INF_TOLERANCE})")


def run_task(task: Task, readout_only: bool) -> list[dict]:
    p = task.params
    X, y, X_test, y_test, K, kern, ctrl, lr = _setup(p, readout_only)
    n, times = len(X), [p["t_finite"], p["steps"]]
    tr = gradient_descent(spec_of(p), X, y, lr, p["steps"], n_networks=p["n_networks"], seed=task.seed,
                          X_test=X_test, record=[0] + times, readout_only=readout_only, track_weights=False)
    # At small widths the network's own top eigenvalue can exceed 2N/lr (a finite-width
    # fluctuation): such a network leaves the lazy regime and diverges.  It is counted and left
    # out (the verdict fails if any diverges at the widest width, where the moments are tested).
    kept = ~tr.diverged
    rows = [{"quantity": "diverged", "value": float(tr.diverged.sum()), "stderr": 0.0}] if tr.diverged.any() else []
    f_train, f_test = tr.f_train[kept], tr.f_test[kept]
    maps = {name: ensemble_map(k[:n, :n], k[n:, :n], lr, times) for name, k in (("", kern), ("_control", ctrl))}
    f0_train, f0_test = f_train[:, 0], f_test[:, 0]
    for j, t in enumerate(times):
        f = f_test[:, j + 1]
        if p["data"] == "digits":
            # the table needs the ensemble mean only, estimated with the control variate
            # f_0(x*) - A_t f_0(X) (exactly mean zero, strongly correlated with f_t): the
            # estimator's noise is then set by the coupling gap, not by the prior's spread
            f = f - f0_test + f0_train @ maps[""][j].T
            se = f.std(axis=0, ddof=1) / np.sqrt(len(f))
            rows += [{"quantity": "f_mean", "i": i, "t": t, "value": float(v), "stderr": float(e)}
                     for i, (v, e) in enumerate(zip(f.mean(axis=0), se))]
        else:
            rows += [{"quantity": "f", "network": m, "i": i, "t": t, "value": float(v), "stderr": 0.0}
                     for m, out in enumerate(f) for i, v in enumerate(out)]
    for suffix, A in maps.items():
        gap = coupling_gap(A, f0_train, f0_test, f_test[:, 1:], y).max(axis=1)
        rows += [{"quantity": "coupling" + suffix, "network": m, "value": float(v), "stderr": 0.0}
                 for m, v in enumerate(gap)]
    if p["chunk"] == 0:
        rows += _target_rows(p, X, y, y_test, K, kern, ctrl, maps, lr, times)
    return [{**r, "data": p["data"]} for r in rows]


def _target_rows(p, X, y, y_test, K, kern, ctrl, maps, lr, times) -> list[dict]:
    n = len(X)
    rows = [{"quantity": "contraction", "value": contraction(kern[:n, :n], lr, times[-1])}]
    for suffix, A in maps.items():
        mu, sigma = ensemble_moments(A, K[:n, :n], K[n:, :n], K[n:, n:], y)
        for j, t in enumerate(times):
            rows += [{"quantity": "mu" + suffix, "i": i, "t": t, "value": float(v)} for i, v in enumerate(mu[j])]
            if p["data"] == "digits":       # the digits table compares means only
                continue
            rows += [{"quantity": "sigma" + suffix, "i": i, "j": k, "t": t, "value": float(sigma[j, i, k])}
                     for i in range(sigma.shape[1]) for k in range(sigma.shape[2])]
    if p["data"] == "digits":
        for name, k in (("mu_ntk_inf", kern), ("mu_nngp_inf", ctrl)):
            mean = k[n:, :n] @ np.linalg.solve(k[:n, :n], y)
            rows += [{"quantity": name, "i": i, "value": float(v)} for i, v in enumerate(mean)]
        rows += [{"quantity": "y_test", "i": i, "value": float(v)} for i, v in enumerate(y_test)]
    return [{"network": -1, "stderr": 0.0, **r} for r in rows]


# --- verdict --------------------------------------------------------------------------------

def _target(g: pd.DataFrame, q: str, t: int | None = None) -> np.ndarray:
    rows = g[g["quantity"] == q]
    rows = rows if t is None else rows[rows["t"] == t]
    if q.startswith("sigma"):
        size = int(rows["i"].max()) + 1
        out = np.zeros((size, size))
        out[rows["i"].astype(int), rows["j"].astype(int)] = rows["value"]
        return out
    return rows.sort_values("i")["value"].to_numpy()


def _samples(g: pd.DataFrame, t: int) -> np.ndarray:
    f = g[(g["quantity"] == "f") & (g["t"] == t)]
    return f.pivot_table(index=["task", "network"], columns="i", values="value").to_numpy()


def moment_tests(g: pd.DataFrame, times, control: bool, alpha: float):
    """Mean, covariance and Gaussianity of the ensemble at each time vs the (control) GP,
    Holm-combined at level ``alpha`` (each component run at alpha / its count)."""
    suffix = "_control" if control else ""
    parts = []
    for t in times:
        f, mu, sigma = _samples(g, t), _target(g, "mu" + suffix, t), _target(g, "sigma" + suffix, t)
        a = alpha / (3 * len(times))
        parts += [mean_test(f, mu, false_fail_rate=a, name=f"mean t={t}"),
                  covariance_test(f - mu, sigma, false_fail_rate=a, name=f"covariance t={t}"),
                  gaussianity_test(f, sigma, mean=mu, seed=0, false_fail_rate=a, name=f"gaussianity t={t}")]
    return holm(parts, false_fail_rate=alpha), parts


def verdict(df: pd.DataFrame, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE, *, claim_id: str, theory: str,
            control: str) -> Verdict:
    df = df.assign(value=df["value"].astype(float))
    times = sorted(int(t) for t in df.loc[df["quantity"] == "f", "t"].unique())
    t_digits = df.loc[df["quantity"] == "f_mean", "t"].max()
    alpha = false_fail_rate / 4          # Bonferroni: claim moments, control moments, two gap fits / data set
    rows, series, gap_fits = [], [], {}
    for data, gd in df.groupby("data", sort=True):
        gap_fits[data] = {q: width_fit(gd[gd["quantity"] == q], -0.5, 0, alpha, q)
                          for q in ("coupling", "coupling_control")}
        for width, g in gd.groupby("width", sort=True):
            row = {"data": data, "width": int(width),
                   "coupling gap": g.loc[g["quantity"] == "coupling", "value"].mean(),
                   "control coupling gap": g.loc[g["quantity"] == "coupling_control", "value"].mean()}
            if data == "sphere":
                claim_test, parts = moment_tests(g, times, False, alpha)
                # the control is judged at the widest width only (a strongly rejected control costs
                # the whole bootstrap; the narrower widths would only fill the table)
                ctrl_test = (moment_tests(g, times, True, alpha)[0] if width == gd["width"].max() else None)
                row.update({"moments p (Holm)": claim_test.pvalue, "moments pass": claim_test.passed,
                            "control p (Holm)": ctrl_test.pvalue if ctrl_test is not None else math.nan,
                            "control rejected": (not ctrl_test.passed) if ctrl_test is not None else None,
                            "detectable mean shift": max(r.detectable for r in parts if r.name.startswith("mean")),
                            "contraction at t_end": g.loc[g["quantity"] == "contraction", "value"].max()})
            else:
                row.update(_regression_row(g, t_digits))
            rows.append(row)
        series.append(_convergence(gd, gap_fits[data], data, claim_id))
    table = pd.DataFrame(rows)
    sphere = table[table["data"] == "sphere"]
    widest = sphere[sphere["width"] == sphere["width"].max()].iloc[0]
    gaps_ok = all(bound_passed(f["coupling"], -0.5) for f in gap_fits.values())
    lost = df[df["quantity"] == "diverged"].groupby(["data", "width"])["value"].sum()
    lost_widest = float(lost.get(("sphere", int(widest["width"])), 0.0))
    passed = bool(widest["moments pass"] and widest["contraction at t_end"] <= INF_TOLERANCE and gaps_ok
                  and lost_widest == 0)
    rejected = bool(widest["control rejected"]
                    and not any(bound_passed(f["coupling_control"], -0.5) for f in gap_fits.values()))
    fmt = lambda q: ", ".join(f"{d}: {f[q].exponent:.2f} [{f[q].ci_low:.2f}, {f[q].ci_high:.2f}]"  # noqa: E731
                              for d, f in gap_fits.items())
    stats = {"widest width": int(widest["width"]), "moments p (Holm)": float(widest["moments p (Holm)"]),
             "control p (Holm)": float(widest["control p (Holm)"]), "times": ", ".join(map(str, times)),
             "contraction at t_end": float(widest["contraction at t_end"]),
             "coupling exponents": fmt("coupling"), "control coupling exponents": fmt("coupling_control")}
    summary = (f"{'pass' if passed else 'FAIL'}: at width {stats['widest width']} the ensemble matches the "
               f"{theory} at steps {stats['times']} (last = t->inf, contraction {stats['contraction at t_end']:.1e}; "
               f"Holm p = {stats['moments p (Holm)']:.3g}); coupling-gap exponents {stats['coupling exponents']} "
               f"(theory <= -1/2)"
               + "".join(f"; {int(v)} networks diverged at width {w} ({d}; left out)" for (d, w), v in lost.items())
               + f"; control ({control}) {'rejected' if rejected else 'NOT rejected'} "
               f"(p = {stats['control p (Holm)']:.2g}, gap exponents {stats['control coupling exponents']})")
    return Verdict(
        claim=claim_id, passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"a mean shift of {widest['detectable mean shift']:.2g} on a test input at the widest width "
                    f"(plus covariance and Gaussianity departures), or a coupling-gap exponent whose "
                    f"bootstrap interval lies above -1/2 or contains 0 (Bonferroni over 4 tests)"),
        negative_control=control, negative_control_rejected=rejected, convergence=tuple(series), table=table)


def _regression_row(g: pd.DataFrame, t_end: int) -> dict:
    """Digits: the ensemble mean on the test inputs against the NTK-GP mean at t_end and the
    NTK / NNGP kernel-regression predictions, and the parity accuracy of each."""
    f = pool(g[(g["quantity"] == "f_mean") & (g["t"] == t_end)], ["i"])["value"].to_numpy()
    mu = _target(g, "mu", t_end)
    ntk, nngp, y = (_target(g, q) for q in ("mu_ntk_inf", "mu_nngp_inf", "y_test"))
    rmse = lambda a: float(np.sqrt(np.mean((f - a) ** 2)))  # noqa: E731
    acc = lambda a: float(np.mean(np.sign(a) == y))  # noqa: E731
    return {"rmse vs NTK-GP mean": rmse(mu), "rmse vs NTK regression": rmse(ntk),
            "rmse vs NNGP regression": rmse(nngp), "accuracy ensemble": acc(f), "accuracy NTK regression": acc(ntk),
            "accuracy NNGP regression": acc(nngp)}


def _convergence(gd: pd.DataFrame, fits: dict, data: str, claim_id: str) -> Convergence:
    return width_series(gd[gd["quantity"] == "coupling"], gd[gd["quantity"] == "coupling_control"],
                        fits["coupling"],
                        f"{claim_id}: coupling gap to the infinite-width map, {data} data (control: other kernel)",
                        -0.5, r"RMS $|f_t - f^{\mathrm{GP}}_t|$ (GP map)")
