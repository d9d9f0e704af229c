"""kernel-mean: random networks average to the analytic NNGP and NTK.

Claim (Neal 1994; Lee et al. 2018, eq. 4; Jacot et al. 2018, Thm 1 and Prop. 1): for
networks at initialization, ``E[f(x) f(x')] = K^{L+1}(x, x') + b_K(x, x')/n + O(1/n^2)``
and ``E[Theta_hat(x, x')] = Theta^{L+1}(x, x') + b_Theta(x, x')/n + O(1/n^2)``: the
sample means converge to the analytic kernels, with a finite-width bias of order 1/n.

Test.  For each cell (activation, depth, parameterization, sigma's) and each entry (i, j)
of the N x N kernels, the normalized error of the sample mean at width n,
``d_n = (mean_n - target_n) / sqrt(target_ii target_jj)`` (standard error ``s_n`` from
the networks), is fitted over the widths by weighted least squares with the stated bias
model ``d_n = a + b/n``; ``b`` is free (estimated from the data, not tuned), and the claim
is ``a = 0``.  Each ``z = a / SE(a)`` is a two-sided normal test; all entries, cells and
both kernels form one Holm family at ``FALSE_FAIL_RATE``.  The model's adequacy (chi^2 of
the residuals) is reported.  Negative control: the same fit against ``1.03 x`` the analytic
kernels must be rejected.

Inputs: ``n_inputs`` fixed points in ``R^{d_in}`` drawn once from ``N(0, I)`` with seed 0
(part of the claim's definition, the same for every task).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2, norm

from ..kernels import nngp_kernel, ntk_kernel
from ..networks import sample_dense
from ..spec import MLP
from . import Claim, Convergence, GridError, Task, Verdict, grid_cells, pool

FALSE_FAIL_RATE = 0.01
CONTROL_FACTOR = 1.03
CELL = ["activation", "depth", "parameterization", "sigma_w", "sigma_b"]
QUANTITIES = {"nngp": "E[f(x) f(x')] vs K", "ntk": "E[Theta_hat(x, x')] vs Theta"}

_BASE = {"depth": [2], "activation": ["relu", "erf"], "parameterization": ["ntk"],
         "sigma_w": 1.5, "sigma_b": 0.1, "n_inputs": 3, "d_in": 4}
GRIDS = {
    "quick": {**_BASE, "width": [64, 128, 256], "n_networks": 2000, "chunk": 1000},
    "standard": {**_BASE, "width": [64, 128, 256, 512], "parameterization": ["ntk", "standard"],
                 "n_networks": 6000, "chunk": 1000},
    "full": {**_BASE, "width": [64, 128, 256, 512, 1024], "depth": [1, 2, 4],
             "activation": ["relu", "erf", "tanh", "gelu"], "parameterization": ["ntk", "standard"],
             "n_networks": 100000, "chunk": 5000},
}


def inputs(n_inputs: int, d_in: int) -> np.ndarray:
    """The claim's fixed inputs: ``N(0, I)`` rows from seed 0."""
    return np.random.default_rng(0).standard_normal((n_inputs, d_in))


def _spec(p: dict) -> MLP:
    return MLP(depth=p["depth"], width=p["width"], activation=p["activation"], sigma_w=p["sigma_w"],
               sigma_b=p["sigma_b"], parameterization=p["parameterization"])


def check(grid: dict) -> None:
    """Every cell must make a valid network; the bias fit needs two widths."""
    if len(grid["width"]) < 2:
        raise GridError("width", "needs at least two widths (the 1/n bias is fitted across widths)")
    if grid["chunk"] < 2:
        raise GridError("chunk", "must be >= 2 (each chunk reports a standard error)")
    for cell in grid_cells(grid):
        try:
            _spec(cell)
        except ValueError as err:
            key = next((k for k in ("activation", "parameterization", "depth", "width") if k in str(err)), "activation")
            raise GridError(key, str(err)) from None


def run_task(task: Task) -> list[dict]:
    """Sample means and standard errors of f(x_i) f(x_j) and Theta_hat(x_i, x_j), i <= j,
    with the analytic kernels as ``target``."""
    p = task.params
    spec = _spec(p)
    X = inputs(p["n_inputs"], p["d_in"])
    f, ntk = sample_dense(spec, X, p["n_networks"], seed=task.seed)
    f = f[..., 0]
    samples = {"nngp": f[:, :, None] * f[:, None, :], "ntk": ntk}
    targets = {"nngp": nngp_kernel(spec, X), "ntk": ntk_kernel(spec, X)}
    rows = []
    m = len(f)
    for q in QUANTITIES:
        mean = samples[q].mean(axis=0)
        se = samples[q].std(axis=0, ddof=1) / math.sqrt(m)
        for i, j in zip(*np.triu_indices(len(X))):
            rows.append({"quantity": q, "i": int(i), "j": int(j), "value": mean[i, j],
                         "stderr": se[i, j], "target": targets[q][i, j]})
    return rows


def _fit_bias(widths, d, se):
    """WLS fit of ``d = a + b / n``: (a, b), their covariance, residual chi^2."""
    A = np.stack([np.ones_like(widths), 1.0 / widths], axis=1)
    w = 1.0 / se**2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    beta = cov @ (A.T @ (w * d))
    resid = d - A @ beta
    return beta, cov, float(np.sum(w * resid**2))


def _holm(pvalues, alpha):
    """Holm's step-down rejections (valid under any dependence)."""
    order = np.argsort(pvalues)
    reject = np.zeros(len(pvalues), bool)
    for k, idx in enumerate(order):
        if pvalues[idx] > alpha / (len(pvalues) - k):
            break
        reject[idx] = True
    return reject


def _power_fit(x, y, se):
    """Weighted log-log fit ``log y = a + b log x`` (var(log y) = (se/y)^2): (a, b), cov."""
    A = np.stack([np.ones_like(x), np.log(x)], axis=1)
    w = (y / se) ** 2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    return cov @ (A.T @ (w * np.log(y))), cov


def verdict(df) -> Verdict:
    pooled = pool(df, CELL + ["quantity", "i", "j", "width", "target"])
    fits = []
    for key, g in pooled.groupby(CELL + ["quantity"], sort=True):
        g = g.sort_values("width")
        diag = {(r.i, r.width): r.target for r in g.itertuples() if r.i == r.j}
        for (i, j), e in g.groupby(["i", "j"], sort=True):
            widths = e["width"].to_numpy(float)
            scale = np.sqrt([diag[(i, n)] * diag[(j, n)] for n in e["width"]])
            se = e["stderr"].to_numpy() / scale
            row = dict(zip(CELL + ["quantity"], key), i=i, j=j)
            for tag, factor in (("", 1.0), ("control_", CONTROL_FACTOR)):
                d = (e["value"].to_numpy() - factor * e["target"].to_numpy()) / scale
                beta, cov, rss = _fit_bias(widths, d, se)
                row.update({f"{tag}a": beta[0], f"{tag}se_a": math.sqrt(cov[0, 0]), f"{tag}b": beta[1],
                            f"{tag}chi2": rss, f"{tag}d": d})
            row.update(widths=widths, se=se)
            fits.append(row)
    m = len(fits)
    z = np.array([f["a"] / f["se_a"] for f in fits])
    zc = np.array([f["control_a"] / f["control_se_a"] for f in fits])
    p, pc = 2 * norm.sf(np.abs(z)), 2 * norm.sf(np.abs(zc))
    reject, reject_c = _holm(p, FALSE_FAIL_RATE), _holm(pc, FALSE_FAIL_RATE)
    dof = [len(f["widths"]) - 2 for f in fits]
    gof = [chi2.sf(f["chi2"], k) for f, k in zip(fits, dof) if k > 0]
    z_crit = norm.isf(FALSE_FAIL_RATE / (2 * m))
    detect = z_crit * max(f["se_a"] for f in fits)
    passed, control = not reject.any(), bool(reject_c.any())
    stats = {"n_tests": m, "max_abs_z": float(np.abs(z).max()), "min_holm_p": float(p.min()),
             "max_abs_bias_b": float(max(abs(f["b"]) for f in fits)),
             "min_fit_gof_p": float(min(gof)) if gof else math.nan,
             "control_max_abs_z": float(np.abs(zc).max()), "detectable_intercept": float(detect)}
    for q in QUANTITIES:   # which kernel drives the control's rejection
        mask = np.array([f["quantity"] == q for f in fits])
        if mask.any():
            stats[f"control_max_abs_z_{q}"] = float(np.abs(zc[mask]).max())
    summary = (f"{'pass' if passed else 'FAIL'}: max |z| = {stats['max_abs_z']:.2f} over {m} kernel entries "
               f"(Holm, false-fail rate {FALSE_FAIL_RATE}); x{CONTROL_FACTOR} control "
               f"{'rejected' if control else 'NOT rejected'} (max |z| = {stats['control_max_abs_z']:.1f})")
    import pandas as pd

    table = pd.DataFrame([{**{k: f[k] for k in CELL + ["quantity", "i", "j"]},
                           "intercept a": f["a"], "se(a)": f["se_a"], "z": zf, "bias b": f["b"],
                           "rejected": bool(r), "control z": zcf}
                          for f, zf, r, zcf in zip(fits, z, reject, zc)])
    return Verdict(
        claim="kernel-mean", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=FALSE_FAIL_RATE,
        detectable=(f"an infinite-width error |a| > {detect:.2g} x sqrt(K_ii K_jj) in any entry "
                    f"(z > {z_crit:.2f}) is rejected with probability >= 1/2"),
        negative_control=f"the analytic kernels x {CONTROL_FACTOR} must be rejected",
        negative_control_rejected=control, convergence=tuple(_convergence(fits)), table=table)


def _convergence(fits) -> list[Convergence]:
    """Per cell and kernel, the off-diagonal entry with the largest bias: |d_n| vs width,
    fitted over the widths where it is resolved (|d_n| > 2 s_n); theory slope -1."""
    out = []
    groups: dict = {}
    for f in fits:
        groups.setdefault(tuple(f[k] for k in CELL + ["quantity"]), []).append(f)
    for key, fs in groups.items():
        f = max(fs, key=lambda f: (f["i"] != f["j"], abs(f["b"])))
        x, d, se = f["widths"], np.abs(f["d"]), f["se"]
        resolved = d > 2 * se
        fit = dict(fitted=tuple(bool(r) for r in resolved))
        if resolved.sum() >= 3:
            beta, cov = _power_fit(x[resolved], d[resolved], se[resolved])
            half = 1.96 * math.sqrt(cov[1, 1])
            fit.update(exponent=beta[1], exponent_lo=beta[1] - half, exponent_hi=beta[1] + half,
                       log_prefactor=beta[0], fit_cov=tuple(map(tuple, cov)))
        cell = dict(zip(CELL + ["quantity"], key))
        label = (f"{cell['quantity']} ({QUANTITIES[cell['quantity']]}), entry ({f['i']},{f['j']}): "
                 f"{cell['activation']}, L={cell['depth']}, {cell['parameterization']}")
        out.append(Convergence(
            label=label, x=tuple(x), y=tuple(d), lo=tuple(np.maximum(d - 1.96 * se, 0.0)),
            hi=tuple(d + 1.96 * se), theory_exponent=-1.0, floor=tuple(1.96 * se),
            control=tuple(np.abs(f["control_d"])), y_name="|mean - kernel| / sqrt(K_ii K_jj)", **fit))
    return out


CLAIM = Claim(
    id="kernel-mean",
    title="Sample means of f(x)f(x') and Theta_hat equal the analytic NNGP/NTK up to O(1/width)",
    statement=("Over random initializations, E[f(x)f(x')] and E[Theta_hat(x,x')] equal the "
               "analytic NNGP K and NTK Theta plus a finite-width bias of order 1/width."),
    sources=("Neal 1994", "Lee et al. 2018, eq. 4", "Jacot et al. 2018, Thm 1, Prop. 1"),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check,
)
