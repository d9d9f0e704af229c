"""linear-convergence: over-parameterised two-layer ReLU nets reach zero loss linearly.

Claim (Du, Zhai, Poczos & Singh 2018, "Gradient descent provably optimizes over-parameterized
neural networks", ICLR 2019): the network ``u(x) = (1/sqrt(m)) sum_r a_r relu(w_r.x)`` with
``a_r`` uniform on {-1, +1} and fixed, ``w_r ~ N(0, I_d)``, ``|x| = 1``, trained on the first
layer by gradient descent on ``Phi = 1/2 sum_i (u(x_i) - y_i)^2``:

* ``H_ij(0) = (1/m) x_i.x_j sum_r 1{w_r.x_i >= 0, w_r.x_j >= 0}`` has mean exactly
  ``H^inf_ij = x_i.x_j (pi - arccos x_i.x_j)/(2 pi)`` (their eq. 3) and
  ``|H(0) - H^inf| = O(m^{-1/2})`` (Lemma 3.1: Hoeffding per entry);
* with ``lambda_0 = lambda_min(H^inf) > 0`` and a small rate,
  ``|y - u(k)|^2 <= (1 - eta lambda_0/2)^k |y - u(0)|^2`` at every step k with probability
  ``1 - delta`` once ``m = Omega(N^6/(lambda_0^4 delta^3))`` (Thm 4.1; Thm 3.2 for the flow);
* ``max_r |w_r(k) - w_r(0)| = O(m^{-1/2})`` (the weights barely move; Lemma 3.2 / Thm 4.1).

Conversion to the catalogue's convention: Phi = N x ``(1/2N) sum (f - y)^2``, so Du's rate
eta is the catalogue's eta/N, and ``du/dt = -eta H(t) (u - y)`` is the catalogue's
``df/dt = -(eta/N) Theta_hat (f - y)`` with Theta_hat = H (only the first layer trains; the
1/sqrt(m) readout with w ~ N(0, I) and no 1/sqrt(d) is NTK parameterization with sigma_w =
sqrt(d) on the first layer).  Du's eta = O(lambda_0/N^2) is a sufficient order; here
``eta = lr_fraction / lambda_max(H^inf)``, which still keeps every mode of the linearized
dynamics contracting by at least ``1 - eta lambda`` per step, and stated next to the result.

Why a dedicated 20-line implementation instead of :mod:`ntkcheck.train`: the theorem's network
has a fixed +-1 readout, trains only its first layer, has no 1/sqrt(d) and a different loss;
expressing it in the engine would need three engine options used by no other claim, and the
whole forward/backward pass is two batched matmuls.

Tests (Bonferroni over three statistical tests at ``false_fail_rate`` (the claim's level)):
``E[H(0)] = H^inf``: :func:`count_test` per width (exact: ``m H_ij(0)/x_i.x_j`` counts the units
active on both inputs, Binomial(m, p_ij) per network), Holm-combined over the widths; its
p-value has no resampling floor, so it rejects at any number of widths (the bootstrap it
replaces was sized to the claim's level, not level / widths: never rejects at >= 21 widths);
the exponents of ``|H(0) - H^inf|_F`` and ``max_r |w_r(K) - w_r(0)|``:
:func:`ntkcheck.stats.power_law_fit` with claimed -1/2; the bound: every seed at the widest
width meets it at every step (a floating-point slack of 1e-12 relative), the fraction per
width and the smallest width where all seeds held are reported next to the theorem's
``N^6/(lambda_0^4 delta^3)`` (constant 1, delta = 0.1).

Negative controls (the same draws, in settings where the theorem does not hold):
the mean-field readout ``1/m`` with the rate x m (``control_steps`` steps): outside Du et al.'s
scaling the kernel H(t) moves O(1) and every unit travels O(1) (Mei, Montanari & Nguyen
2018), so the weight-change exponent (~0 measured) must exclude -1/2; and the rate
``control_lr_factor / lambda_max(H^inf)`` above the stability limit 2/lambda_max: no seed may
meet the bound.  Power checks (the claim's own samples re-scored): H^inf scaled by 1.05 (the
mean test must reject and the error must plateau: exponent ~ 0).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..data import sphere_inputs
from ..seeding import network_rngs
from ..stats import TestResult, holm
from . import CLAIM_FALSE_FAIL_RATE, Claim, Convergence, GridError, Task, Verdict
from ._training import FALSE_PASS_RATE, width_fit, width_series
from .initcommon import save_figure

CONTROL_SCALE = 1.05
DELTA = 0.1
SLACK = 1e-12

_BASE = {"n_train": 10, "d_in": 8, "lr_fraction": 1.0, "control_lr_factor": 2.5, "steps": 400,
         "control_steps": 100}
GRIDS = {
    "quick": {**_BASE, "width": [16, 64, 256, 1024, 4096], "n_networks": 16, "chunk": 16},
    "standard": {**_BASE, "width": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 48,
                 "chunk": 48},
    "full": {**_BASE, "width": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384], "n_networks": 200,
             "chunk": 50},
}


def data(n_train: int, d_in: int):
    """Du et al.'s setting in small: inputs uniform on the unit sphere, labels N(0, 1) (seed 0)."""
    X = sphere_inputs(n_train, d_in, seed=0)
    y = np.random.default_rng(1).standard_normal(n_train)
    return X, y


def h_infinity(X: np.ndarray) -> np.ndarray:
    """``H^inf_ij = x_i.x_j (pi - arccos x_i.x_j)/(2 pi)`` (Du et al. 2018, eq. 3)."""
    G = np.clip(X @ X.T, -1.0, 1.0)
    return G * (np.pi - np.arccos(G)) / (2 * np.pi)


def train(X, y, width: int, n_networks: int, seed, lr: float, steps: int, mean_field: bool = False):
    """GD on the first layer of M networks at once.  Returns H(0) (M, N, N), the squared
    residual norms (M, steps + 1) and ``max_r |w_r(K) - w_r(0)|`` (M,).  ``mean_field``: the
    readout ``1/m`` instead of ``1/sqrt(m)`` (the same draws; pass the rate x m so that u moves
    O(1) in O(1) steps, Mei, Montanari & Nguyen 2018)."""
    m, d = width, X.shape[1]
    c = 1 / m if mean_field else 1 / math.sqrt(m)
    W = np.empty((n_networks, m, d))
    a = np.empty((n_networks, m))
    for i, rng in enumerate(network_rngs(seed, 0, n_networks)):
        W[i] = rng.standard_normal((m, d))
        a[i] = rng.choice([-1.0, 1.0], size=m)
    W0 = W.copy()
    on = None
    res = np.empty((n_networks, steps + 1))
    for k in range(steps + 1):
        Z = W @ X.T                                                     # (M, m, N)
        on = Z >= 0
        r = c * np.einsum("mr,mri->mi", a, np.maximum(Z, 0.0)) - y
        res[:, k] = np.einsum("mi,mi->m", r, r)
        if k == 0:
            H0 = np.einsum("mri,mrj->mij", on.astype(float), on.astype(float)) * (X @ X.T) * c**2
        if k < steps:
            # dPhi/dw_r = c a_r sum_i r_i 1{w_r.x_i >= 0} x_i
            W -= (lr * c) * (a[..., None] * ((on * r[:, None, :]) @ X))
    return H0, res, np.linalg.norm(W - W0, axis=2).max(axis=1)


def bound_held(res: np.ndarray, lr: float, lam0: float) -> np.ndarray:
    """Per network: ``|y - u(k)|^2 <= (1 - eta lambda_0/2)^k |y - u(0)|^2`` at every step."""
    k = np.arange(res.shape[1])
    bound = res[:, :1] * (1 - lr * lam0 / 2) ** k
    return np.all(res <= bound * (1 + SLACK), axis=1)


def _rates(X):
    H = h_infinity(X)
    lam = np.linalg.eigvalsh(H)
    return H, lam[0], lam[-1]


def check(grid: dict) -> None:
    if len(grid["width"]) < 3:
        raise GridError("width", "needs at least 3 widths (exponents are fitted)")
    if grid["n_networks"] < 2:
        raise GridError("n_networks", "needs >= 2 networks")
    if not 0 < grid["lr_fraction"] <= 1:
        raise GridError("lr_fraction", "must be in (0, 1]: the claim needs a stable rate")
    if grid["control_steps"] < 1:
        raise GridError("control_steps", "must be >= 1 (the mean-field control trains that many steps)")
    if grid["control_lr_factor"] <= 2:
        raise GridError("control_lr_factor", "must exceed 2 (the stability limit) for the control")
    X, _ = data(grid["n_train"], grid["d_in"])
    if _rates(X)[1] <= 0:
        raise GridError("n_train", "H^inf is singular for these inputs (lambda_0 = 0)")


def run_task(task: Task) -> list[dict]:
    p = task.params
    X, y = data(p["n_train"], p["d_in"])
    H, lam0, lam_max = _rates(X)
    lr, lr_ctrl = p["lr_fraction"] / lam_max, p["control_lr_factor"] / lam_max
    H0, res, dw = train(X, y, p["width"], p["n_networks"], task.seed, lr, p["steps"])
    _, res_ctrl, _ = train(X, y, p["width"], p["n_networks"], task.seed, lr_ctrl, p["steps"])
    _, _, dw_mf = train(X, y, p["width"], p["n_networks"], task.seed, lr * p["width"], p["control_steps"],
                        mean_field=True)
    err = lambda target: np.linalg.norm(H0 - target, axis=(1, 2))  # noqa: E731
    per = {"H_error": err(H), "H_error_control": err(CONTROL_SCALE * H), "max_weight_change": dw,
           "max_weight_change_mean_field": dw_mf,
           "bound_held": bound_held(res, lr, lam0), "bound_held_control": bound_held(res_ctrl, lr_ctrl, lam0)}
    rows = [{"quantity": q, "network": i, "value": float(v), "stderr": 0.0}
            for q, vals in per.items() for i, v in enumerate(vals)]
    iu = np.triu_indices(len(X))
    G = X @ X.T
    rows += [{"quantity": "H0", "network": i, "i": int(a), "j": int(b), "value": float(H0[i, a, b]),
              "target": float(H[a, b]), "gram": float(G[a, b]), "stderr": 0.0}
             for i in range(len(H0)) for a, b in zip(*iu)]
    if p["chunk"] == 0:
        rows += [{"quantity": q, "network": -1, "value": float(v), "stderr": 0.0}
                 for q, v in (("lambda_0", lam0), ("lr", lr), ("lr_control", lr_ctrl))]
    return rows


def sufficient_width(n: int, lam0: float, delta: float = DELTA) -> float:
    """``N^6/(lambda_0^4 delta^3)``: Du et al. 2018 Thm 4.1's width order with constant 1."""
    return n**6 / (lam0**4 * delta**3)


def count_test(counts: np.ndarray, trials: int, prob: np.ndarray, rate: float, gram: np.ndarray,
               name: str) -> TestResult:
    """Exact test of ``E[H(0)] = scale H^inf`` at one width from the indicator counts.

    ``m H_ij(0) / x_i.x_j = sum_r 1{w_r.x_i >= 0, w_r.x_j >= 0}``, so over M networks of width m
    the count of entry (i, j) is Binomial(M m, p_ij) with ``p_ij = (pi - arccos x_i.x_j)/(2 pi)``
    exactly (the w_r are i.i.d.).  Per entry the two-sided p-value ``min(1, 2 min(P(S <= s),
    P(S >= s)))``, Bonferroni over the entries (they share the units): an exact level with no
    resampling floor, however small the per-test rate.  ``detectable``: an entry of E[H(0)] off
    by that much (absolute) is detected with probability 1 - FALSE_PASS_RATE (normal approximation).
    """
    k = counts.size
    p_entry = np.minimum(1.0, 2 * np.minimum(sps.binom.cdf(counts, trials, prob),
                                             sps.binom.sf(counts - 1, trials, prob)))
    pvalue = float(min(1.0, k * p_entry.min()))
    sd = np.abs(gram) * np.sqrt(prob * (1 - prob) / trials)
    detectable = float(((sps.norm.isf(rate / (2 * k)) + sps.norm.isf(FALSE_PASS_RATE)) * sd).max())
    return TestResult(name=name, statistic=float(p_entry.min()), pvalue=pvalue, passed=bool(pvalue > rate),
                      false_fail_rate=rate, detectable=detectable, n_samples=trials, false_pass_rate=FALSE_PASS_RATE,
                      details={"method": "exact binomial, Bonferroni over entries", "detectable_units": "absolute"})


def _mean_tests(h: pd.DataFrame, scale: float, alpha: float):
    """:func:`count_test` per width against ``scale`` x H^inf, Holm over the widths at ``alpha``."""
    tests = []
    for w, g in h.groupby("width", sort=True):
        e = g.groupby(["i", "j"]).agg(total=("value", "sum"), networks=("value", "size"), target=("target", "first"),
                                      gram=("gram", "first"))
        gram = e["gram"].to_numpy()
        counts = np.rint(e["total"].to_numpy() * w / gram)
        prob = scale * e["target"].to_numpy() / gram
        if np.any(prob > 1):
            raise ValueError(f"the power check's scale {scale} makes an indicator probability exceed 1")
        tests.append(count_test(counts, int(w) * int(e["networks"].iloc[0]), prob, alpha, gram, f"E[H(0)] m={w}"))
    return holm(tests, false_fail_rate=alpha), tests


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    missing = {"gram"} - set(df.columns) or {"max_weight_change_mean_field"} - set(df["quantity"])
    if missing:
        raise ValueError(f"linear-convergence rows lack {', '.join(sorted(missing))} (written by an older "
                         "version): run the claim again")
    df = df.assign(value=df["value"].astype(float))
    alpha = false_fail_rate / 3
    q = lambda name: df[df["quantity"] == name]  # noqa: E731
    lam0 = float(q("lambda_0")["value"].iloc[0])
    n = int(q("H0")["i"].max()) + 1
    mean_claim, parts = _mean_tests(q("H0"), 1.0, alpha)
    mean_power, _ = _mean_tests(q("H0"), CONTROL_SCALE, alpha)
    fits = {name: width_fit(q(name), -0.5, 0, alpha, name)
            for name in ("H_error", "H_error_control", "max_weight_change", "max_weight_change_mean_field")}
    held = q("bound_held").groupby("width")["value"].mean()
    held_ctrl = q("bound_held_control").groupby("width")["value"].mean()
    all_held = [int(w) for w, f in held.items() if f == 1.0]
    smallest = min((w for w in all_held if all(held[v] == 1.0 for v in held.index if v >= w)), default=None)
    m_suff = sufficient_width(n, lam0)
    passed = bool(mean_claim.passed and fits["H_error"].passed and fits["max_weight_change"].passed
                  and held.iloc[-1] == 1.0)
    mf = fits["max_weight_change_mean_field"]
    real = bool(not mf.passed and held_ctrl.iloc[-1] < 1.0)
    power = bool(not mean_power.passed and not fits["H_error_control"].passed)
    rejected = real and power
    table = pd.DataFrame({"width": held.index.astype(int), "fraction meeting the bound": held.to_numpy(),
                          "fraction (control rate)": held_ctrl.reindex(held.index).to_numpy(),
                          "mean |H(0) - H^inf|_F": q("H_error").groupby("width")["value"].mean().to_numpy(),
                          "mean max_r |dw_r|": q("max_weight_change").groupby("width")["value"].mean().to_numpy(),
                          "mean max_r |dw_r| (mean-field control)":
                              q("max_weight_change_mean_field").groupby("width")["value"].mean().to_numpy(),
                          "E[H(0)] test p": [t.pvalue for t in parts]})
    stats = {"lambda_0": lam0, "N": n, "lr (Du's eta)": float(q("lr")["value"].iloc[0]),
             "control lr": float(q("lr_control")["value"].iloc[0]),
             "E[H(0)] = H^inf p (Holm over widths)": mean_claim.pvalue,
             "H error exponent": fits["H_error"].exponent, "weight change exponent": fits["max_weight_change"].exponent,
             "smallest width with all seeds meeting the bound": smallest if smallest is not None else math.nan,
             "theorem's sufficient width N^6/(lambda_0^4 delta^3), delta=0.1": m_suff,
             "control: mean-field weight change exponent": mf.exponent,
             "control: mean-field weight change exponent interval": f"[{mf.ci_low:.3g}, {mf.ci_high:.3g}]",
             "control: unstable rate, fraction meeting the bound at the widest width": float(held_ctrl.iloc[-1]),
             "power check: E[H(0)] = 1.05 H^inf p": mean_power.pvalue,
             "power check: H error exponent against 1.05 H^inf": fits["H_error_control"].exponent}
    f = fits
    summary = (f"{'pass' if passed else 'FAIL'}: E[H(0)] = H^inf (exact, Holm p = {mean_claim.pvalue:.2g}); "
               f"|H(0) - H^inf| exponent {f['H_error'].exponent:.2f} [{f['H_error'].ci_low:.2f}, "
               f"{f['H_error'].ci_high:.2f}], max_r |dw_r| exponent {f['max_weight_change'].exponent:.2f} "
               f"[{f['max_weight_change'].ci_low:.2f}, {f['max_weight_change'].ci_high:.2f}] (theory -1/2); "
               f"bound met by all seeds from width {smallest} (fractions {', '.join(f'{v:.2f}' for v in held)}) "
               f"vs the theorem's sufficient width {m_suff:.2g}; controls {'rejected' if real else 'NOT rejected'} "
               f"(mean-field readout: weight change exponent {mf.exponent:.2f} [{mf.ci_low:.2f}, {mf.ci_high:.2f}]; "
               f"unstable rate: fraction {held_ctrl.iloc[-1]:.2f} at the widest width); power checks "
               f"{'rejected' if power else 'NOT rejected'} (1.05 H^inf p = {mean_power.pvalue:.2g}, "
               f"exponent {f['H_error_control'].exponent:.2f})")
    series = (_convergence(q("H_error"), fits["H_error"], q("H_error_control"), r"$\|H(0) - H^\infty\|_F$",
                           r"power check: $1.05\,H^\infty$"),
              _convergence(q("max_weight_change"), fits["max_weight_change"], q("max_weight_change_mean_field"),
                           r"$\max_r \|w_r(K) - w_r(0)\|$", "control: mean-field readout"))
    return Verdict(
        claim="linear-convergence", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=(f"an entry of E[H(0)] off H^inf by {max(t.detectable for t in parts):.2g} at some width; an "
                    f"exponent off -1/2 by ~{max(fits[k].detectable for k in ('H_error', 'max_weight_change')):.2g}; "
                    f"one seed violating the bound at the widest width"),
        negative_control=("the same networks with the mean-field readout 1/m (rate x m): the weights move O(1), "
                          "so the weight-change exponent must exclude -1/2; a rate above the stability limit "
                          f"2/lambda_max: the bound must fail; power checks: H^inf scaled by {CONTROL_SCALE} "
                          "(mean test, error exponent)"),
        negative_control_rejected=rejected, convergence=series, table=table)


def _convergence(g, fit, ctrl, label, ctrl_label) -> Convergence:
    return width_series(g, ctrl, fit, rf"{label} ({ctrl_label})", -0.5, label)


def figure(df, verdict: Verdict, path) -> None:
    """Fraction of seeds meeting the per-step bound vs width (claim rate and unstable control rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = verdict.table
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.semilogx(t["width"], t["fraction meeting the bound"], "o-", label=r"$\eta$ = lr_fraction / $\lambda_{\max}(H^\infty)$")
    ax.semilogx(t["width"], t["fraction (control rate)"], "s--", label="control: unstable rate")
    ax.set_xlabel("width m")
    ax.set_ylabel(r"fraction of seeds meeting $(1 - \eta\lambda_0/2)^k$")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Du et al. 2018: linear convergence bound")
    ax.legend()
    save_figure(fig, path)


CLAIM = Claim(
    id="linear-convergence",
    title="Du et al. 2018: E[H(0)] = H^inf, |H(0) - H^inf| ~ m^-1/2, linear convergence, weights move m^-1/2",
    statement=("Two-layer ReLU nets with fixed +-1 readout, first layer trained by GD on 1/2 sum (u - y)^2: "
               "E[H(0)] = H^inf exactly, |H(0) - H^inf| = O(m^-1/2), the loss bound (1 - eta lambda_0/2)^k holds "
               "for all seeds at large width, and max_r |w_r(k) - w_r(0)| = O(m^-1/2)."),
    sources=("Du, Zhai, Poczos & Singh 2018 (ICLR 2019), eq. 3, Lemmas 3.1-3.2, Thms 3.2 and 4.1",),
    grids=GRIDS, run_task=run_task, verdict=verdict, check=check, figure=figure,
)
