"""relu-fourth-moment: ``E[f^4] / (3 E[f^2]^2) = (1 + 5/n)^L`` exactly, at every width.

Claim (claims catalogue, *derived*; the exact ReLU form of the 1/n four-point vertex of
Roberts, Yaida & Hanin 2022 and Yaida 2020): for a ReLU network with sigma_b = 0, any
sigma_w and any input, the output's normalized fourth moment is ``(1 + 5/n)^L``; for a
linear network ``(1 + 2/n)^L`` (derivation in :mod:`ntkcheck.moments`).

Estimator.  f given the last hidden layer is N(0, G) exactly, so
``E[f^4]/(3 E[f^2]^2) = E[G^2]/E[G]^2`` (:func:`ntkcheck.moments.readout_variance`); the
ratio is estimated from G (the readout noise integrated out), and the raw moments of f
are reported beside it.

Test.  Per cell (activation, width n, depth L, sampler), ``z = (log R_hat - log R) / SE``
with ``SE = sqrt(v / M)`` the delta-method standard error computed from the exact law of
the claim (:func:`ntkcheck.moments.norm_ratio_law`, no estimated variances, which are
unreliable for these heavy tails).  Every cell gets ``M`` networks with
``skewness(G^2) / sqrt(M) <= skew_limit`` (also from the exact law) so the normal
approximation holds; cells needing more than the budget's ``n_networks`` are listed as
not resolvable and not run.  ``log R_hat`` is corrected for its second-order bias, also from the exact law
(:func:`ntkcheck.moments.norm_ratio_bias`).  All cells form one Holm family at
``CELL_SHARE x false_fail_rate`` (the claim's level: its share of the suite's family-wise
rate).  Dense networks repeat the cells with width <= ``dense_max_width``.

Pooled test of the constant.  A per-cell family has little power against a small error
common to every cell (a constant 5.1 instead of 5 moves each cell by ~0.1 L/n standard
errors).  So per activation the constant c of ``log R = L log(1 + c/n)`` is fitted to all
its cells (weighted nonlinear least squares, weights ``1/SE^2``, Gauss-Newton from the
claimed value) and ``z = (c_hat - c) / SE(c_hat)`` is tested two-sided (5 for ReLU, 2 for
linear) at ``POOLED_SHARE x false_fail_rate`` per activation.  ``SE(c_hat) = (sum_i (L_i/(n_i+c))^2/SE_i^2)^-1/2``
with the cells' exact-law standard errors (cells are independent).  The claim's
false-fail rate is ``(CELL_SHARE + 2 POOLED_SHARE) false_fail_rate = false_fail_rate`` (union bound).

Negative controls (settings where the identity is false, tested against ``(1 + 5/n)^L``
with the ReLU law's standard error): ReLU with ``sigma_b = control_sigma_b > 0`` and
``control_activation`` (tanh) with sigma_b = 0, at the control widths and depths; each
family must be rejected (Holm at the same rate).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import labels
from ..moments import NORM_LAWS, norm_ratio, norm_ratio_bias, norm_ratio_law, readout_variance
from ..sampler import sample_init
from ..stats import TestResult, holm
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, KeyNumber, Task, Verdict, pool, task_key
from .initcommon import Z95, cell_spec, save_figure

#: Shares of the claim's level: the per-cell family, and each activation's pooled constant.
CELL_SHARE, POOLED_SHARE = 0.5, 0.25
FALSE_PASS_RATE = 1e-3
#: the claimed constant of ``(1 + c/n)^L`` per law
CONSTANT = {"relu": 5.0, "identity": 2.0}
CELL = ["role", "activation", "sigma_b", "method", "width", "depth"]

_BASE = {"activation": ["relu", "identity"], "depth": [1, 2, 3, 4, 5, 6, 7, 8], "sigma_w": 1.5,
         "sigma_b": 0.0, "control_activation": "tanh", "control_sigma_b": 0.5,
         "control_width": [2, 4, 8], "control_depth": [1], "d_in": 4, "skew_limit": 0.1,
         "min_networks": 2000, "dense_max_width": 16}
GRIDS = {
    "quick": {**_BASE, "width": [2, 8, 32, 128, 1024], "depth": [1, 2, 4, 8], "n_networks": 20000,
              "chunk": 20000, "dense_max_width": 8},
    "standard": {**_BASE, "width": [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], "n_networks": 200000,
                 "chunk": 25000},
    "full": {**_BASE, "width": [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], "n_networks": 4000000,
             "chunk": 100000, "dense_max_width": 64},
}


def networks_needed(width: int, depth: int, activation: str, skew_limit: float) -> int:
    """Networks for a normal sampling distribution: ``(skewness(G^2) / skew_limit)^2``
    under the claim's law (the ReLU law for the controls)."""
    _, skew = norm_ratio_law(width, depth, activation if activation in NORM_LAWS else "relu")
    return math.ceil((skew / skew_limit) ** 2)


def cells(grid: dict) -> tuple[list[dict], list[dict]]:
    """(cells to run, cells not resolvable at this budget), each with its ``n_networks``."""
    run, skipped = [], []
    cases = [("claim", a, grid["sigma_b"], grid["width"], grid["depth"]) for a in grid["activation"]]
    cases += [("control", "relu", grid["control_sigma_b"], grid["control_width"], grid["control_depth"]),
              ("control", grid["control_activation"], 0.0, grid["control_width"], grid["control_depth"])]
    for role, act, sigma_b, widths, depths in cases:
        law = act if role == "claim" else "relu"
        for n in widths:
            for L in depths:
                need = max(networks_needed(n, L, law, grid["skew_limit"]), grid["min_networks"])
                methods = ["exact"] + (["dense"] if n <= grid["dense_max_width"] else [])
                for method in methods:
                    cell = {"role": role, "activation": act, "sigma_b": float(sigma_b), "method": method,
                            "width": n, "depth": L, "n_networks": need}
                    (run if need <= grid["n_networks"] else skipped).append(cell)
    return run, skipped


def check(grid: dict) -> None:
    for act in grid["activation"]:
        if act not in NORM_LAWS:
            raise GridError("activation", f"the identity is exact only for {NORM_LAWS}, got {act!r}")
    if grid["sigma_b"] != 0:
        raise GridError("sigma_b", "the identity needs sigma_b = 0 (sigma_b > 0 is the negative control)")
    if grid["control_sigma_b"] <= 0:
        raise GridError("control_sigma_b", "must be > 0 (the control is a setting where the identity fails)")
    if grid["control_activation"] in NORM_LAWS:
        raise GridError("control_activation", f"must not be one of {NORM_LAWS} (they satisfy an identity)")
    if not 0 < grid["skew_limit"] <= 1:
        raise GridError("skew_limit", "must be in (0, 1]")
    if grid["chunk"] < 2:
        raise GridError("chunk", "must be >= 2")
    cell_spec({**grid, "activation": grid["control_activation"], "width": 2, "depth": 1})


def split(grid: dict) -> list[tuple[str, dict]]:
    """One task per runnable cell x chunk of ``chunk`` networks, and one empty task per
    cell not resolvable at this budget (it records the networks it would need)."""
    run, skipped = cells(grid)
    fixed = {k: grid[k] for k in ("sigma_w", "d_in")}
    out = [(task_key({k: cell[k] for k in CELL} | {"chunk": "none"}), {**fixed, **cell, "chunk": -1})
           for cell in skipped]
    for cell in run:
        total = cell["n_networks"]
        for index, start in enumerate(range(0, total, grid["chunk"])):
            params = {**fixed, **cell, "n_networks": min(grid["chunk"], total - start), "chunk": index}
            key = task_key({k: cell[k] for k in CELL} | {"chunk": index})
            out.append((key, params))
    return out


def run_task(task: Task) -> list[dict]:
    """Means of G, G^2 (the readout variance) and of f^2, f^4 over the chunk's networks."""
    p = task.params
    if p["chunk"] < 0:
        return [{"quantity": "networks_needed", "value": float(p["n_networks"]), "role": p["role"],
                 "method": p["method"]}]
    spec = cell_spec(p)
    X = np.ones((1, p["d_in"]))
    sample = sample_init(spec, X, p["n_networks"], seed=task.seed, method=p["method"])
    G = readout_variance(spec, sample.post_grams)[:, 0]
    f = sample.f[:, 0]
    values = {"G": G, "G^2": G**2, "f^2": f**2, "f^4": f**4}
    m = len(G)
    return [{"quantity": q, "value": float(x.mean()), "stderr": float(x.std(ddof=1) / math.sqrt(m)),
             "role": p["role"], "method": p["method"]} for q, x in values.items()]


def _cell_tests(pooled) -> pd.DataFrame:
    """One row per cell: the estimates and the z-test against the claimed ratio."""
    rows = []
    for key, g in pooled.groupby(CELL, sort=True):
        cell = dict(zip(CELL, key))
        q = g.set_index("quantity")
        m = int(q.loc["G", "n_networks"])
        law = cell["activation"] if cell["role"] == "claim" else "relu"
        target = norm_ratio(cell["width"], cell["depth"], law)
        var, _ = norm_ratio_law(cell["width"], cell["depth"], law)
        est = q.loc["G^2", "value"] / q.loc["G", "value"] ** 2
        raw = q.loc["f^4", "value"] / (3 * q.loc["f^2", "value"] ** 2)
        se = math.sqrt(var / m)
        bias = norm_ratio_bias(cell["width"], cell["depth"], law, m)
        z = (math.log(est) - bias - math.log(target)) / se
        rows.append({**cell, "n_networks": m, "ratio": est, "ratio_from_f": raw, "claimed": target,
                     "log_bias": bias, "se_log": se, "z": z, "p": float(2 * norm.sf(abs(z)))})
    return pd.DataFrame(rows)


def _family(df, name: str, rate: float):
    results = [TestResult(name=f"{r.activation} n={r.width} L={r.depth} {r.method}", statistic=r.z,
                          pvalue=r.p, passed=r.p > rate, false_fail_rate=rate,
                          detectable=None, n_samples=int(r.n_networks)) for r in df.itertuples()]
    return holm(results, rate, name=name)


def pooled_constant(width, depth, log_ratio, se, claimed: float, rate: float,
                    false_pass_rate: float = FALSE_PASS_RATE, name: str = "pooled constant") -> TestResult:
    """Fit c in ``log_ratio = L log(1 + c/n)`` (weights ``1/se^2``, Gauss-Newton from
    ``claimed``) and test ``c = claimed`` two-sided; ``detectable`` in units of c."""
    n, L, y, se = (np.asarray(v, dtype=float) for v in (width, depth, log_ratio, se))
    w = 1.0 / se**2
    c = float(claimed)
    for _ in range(50):
        d = L / (n + c)
        step = float(np.sum(w * d * (y - L * np.log1p(c / n))) / np.sum(w * d * d))
        c += step
        if abs(step) < 1e-12 * max(1.0, abs(c)):
            break
    d = L / (n + c)
    se_c = float(1.0 / math.sqrt(np.sum(w * d * d)))
    z = (c - claimed) / se_c
    p = float(2 * norm.sf(abs(z)))
    detect = (norm.isf(rate / 2) + norm.isf(false_pass_rate)) * se_c
    return TestResult(name=name, statistic=z, pvalue=p, passed=p > rate, false_fail_rate=rate,
                      detectable=float(detect), n_samples=len(y), stderr=se_c, false_pass_rate=false_pass_rate,
                      details={"constant": c, "claimed": float(claimed), "detectable_units": "constant c"})


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    cell_rate, pooled_rate = CELL_SHARE * false_fail_rate, POOLED_SHARE * false_fail_rate
    skipped = df[df.quantity == "networks_needed"]
    unresolved = skipped[CELL].assign(n_networks=skipped["value"].astype(int), status="not resolvable")
    pooled = pool(df[df.quantity != "networks_needed"], CELL + ["quantity"])
    tests = _cell_tests(pooled)
    claim = tests[tests.role == "claim"]
    control = tests[tests.role == "control"]
    main = _family(claim, "relu-fourth-moment", cell_rate)
    constants = {act: pooled_constant(g.width, g.depth, np.log(g.ratio) - g.log_bias, g.se_log, CONSTANT[act],
                                      pooled_rate, name=f"pooled constant {act}")
                 for act, g in claim.groupby("activation", sort=True)}
    passed = bool(main.passed and all(t.passed for t in constants.values()))
    families = {f"{a}, sigma_b={s:g}": _family(g, f"control {a} sigma_b={s:g}", false_fail_rate)
                for (a, s), g in control.groupby(["activation", "sigma_b"], sort=True)}
    rejected = bool(families) and all(not f.passed for f in families.values())
    k = len(claim)
    crit = norm.isf(cell_rate / (2 * k)) + norm.isf(FALSE_PASS_RATE)
    detect = crit * claim["se_log"]
    holm_p = main.details["holm_pvalues"]
    tests = tests.assign(holm_p=np.nan, rejected=False)
    tests.loc[claim.index, "holm_p"] = holm_p
    tests.loc[claim.index, "rejected"] = holm_p <= cell_rate
    for fam, (_, g) in zip(families.values(), control.groupby(["activation", "sigma_b"], sort=True)):
        tests.loc[g.index, "holm_p"] = fam.details["holm_pvalues"]
        tests.loc[g.index, "rejected"] = fam.details["holm_pvalues"] <= false_fail_rate
    stats = {"n_cells": k, "max_abs_z": float(claim["z"].abs().max()), "holm_p": main.pvalue,
             "max_detectable_rel": float(np.expm1(detect.max())),
             "median_detectable_rel": float(np.expm1(detect.median())),
             **{f"constant[{a}]": t.details["constant"] for a, t in constants.items()},
             **{f"constant_se[{a}]": t.stderr for a, t in constants.items()},
             **{f"constant_p[{a}]": t.pvalue for a, t in constants.items()},
             **{f"constant_detectable[{a}]": t.detectable for a, t in constants.items()},
             **{f"control_holm_p[{name}]": f.pvalue for name, f in families.items()},
             **{f"control_max_abs_z[{a}, sigma_b={s:g}]": float(g["z"].abs().max())
                for (a, s), g in control.groupby(["activation", "sigma_b"], sort=True)}}
    level = 1 - pooled_rate
    zc = norm.isf(pooled_rate / 2)
    fits = ", ".join(f"{a} c = {t.details['constant']:.4f} +- {t.stderr:.4f} ({100 * level:g}% CI "
                     f"[{t.details['constant'] - zc * t.stderr:.4f}, {t.details['constant'] + zc * t.stderr:.4f}], "
                     f"claimed {t.details['claimed']:g}, p = {t.pvalue:.2g})" for a, t in constants.items())
    summary = (f"{'pass' if passed else 'FAIL'}: pooled constants {fits}; per cell max |z| = "
               f"{stats['max_abs_z']:.2f} over {k} cells (Holm p = {main.pvalue:.2g}; {len(unresolved)} more cells "
               f"need more networks than the budget); false-fail rate {false_fail_rate:g} (cells {cell_rate:g}, "
               f"each constant {pooled_rate:g}); controls "
               + ", ".join(f"{n} {'rejected' if not f.passed else 'NOT rejected'} (Holm p = {f.pvalue:.2g})"
                           for n, f in families.items()))
    tests = pd.concat([tests.assign(status="tested"), unresolved], ignore_index=True)
    stats["n_cells_not_resolvable"] = len(unresolved)
    table = tests.drop(columns=["p"]).rename(columns={"ratio": "E[G^2]/E[G]^2",
                                                      "ratio_from_f": "E[f^4]/(3E[f^2]^2)"})
    return Verdict(
        claim="relu-fourth-moment", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=("pooled: a constant off by "
                    + ", ".join(f"{t.detectable:.3g} ({100 * t.detectable / t.details['claimed']:.2g}%, {a})"
                                for a, t in constants.items())
                    + f"; per cell: a relative error of the ratio above {stats['max_detectable_rel']:.2g} in any "
                    f"cell (median cell {stats['median_detectable_rel']:.2g}); each rejected with probability "
                    f">= {1 - FALSE_PASS_RATE:g}"),
        negative_control=("ReLU with sigma_b > 0 and tanh (sigma_b = 0), tested against (1 + 5/n)^L: "
                          "each family must be rejected"),
        negative_control_rejected=rejected, table=table)


def figure(df, v: Verdict, path) -> None:
    """Measured ratio / claimed ratio vs width, one line per depth, with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = v.table
    panels = list(t.groupby(["role", "activation", "sigma_b"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
    for ax, ((role, act, sb), g) in zip(axes[0], panels):
        for L, e in g[g.method == "exact"].groupby("depth"):
            r = e["E[G^2]/E[G]^2"] / e["claimed"]
            ax.errorbar(e["width"], r, yerr=Z95 * e["se_log"] * r, marker="o", ms=3, capsize=2, label=f"$L$ = {L}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{role}: {labels.cell(f'{act}, sigma_b={sb:g}')}", fontsize=9)
        ax.set_xlabel("width $n$")
        ax.legend(title="depth", fontsize=7, title_fontsize=7)
    axes[0][0].set_ylabel(r"measured / claimed $\mathbb{E}[G^2]/\mathbb{E}[G]^2$")
    fig.suptitle("Measured / claimed ratio with 95% intervals", fontsize=10)
    save_figure(fig, path)


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """Per activation, the pooled constant c of ``(1 + c/n)^L`` with its interval at the
    level of its test (module docstring)."""
    rate = POOLED_SHARE * v.false_fail_rate
    z = norm.isf(rate / 2)
    tested = v.table[(v.table["role"] == "claim") & (v.table["status"] == "tested")]
    out = []
    for act in sorted(CONSTANT):
        if f"constant[{act}]" not in v.statistics:
            continue
        c, se = v.statistics[f"constant[{act}]"], v.statistics[f"constant_se[{act}]"]
        widths = sorted(set(tested.loc[tested["activation"] == act, "width"].astype(float)))
        out.append(KeyNumber(cell=labels.cell(f"{act}, sigma_b=0"), name="constant c",
                             quantity=r"$\mathbb{E}[f^4]/(3\mathbb{E}[f^2]^2) = (1 + c/n)^L$",
                             value=c, lo=c - z * se, hi=c + z * se, level=1 - rate, theory=CONSTANT[act],
                             widths=tuple(widths)))
    return tuple(out)


CLAIM = Claim(
    id="relu-fourth-moment",
    title="E[f^4]/(3E[f^2]^2) = (1+5/n)^L for ReLU (sigma_b = 0), (1+2/n)^L for linear nets, at every width",
    statement=("For ReLU networks with sigma_b = 0 (any sigma_w, any input) the output's normalized "
               "fourth moment is exactly (1 + 5/n)^L at every width n and depth L; (1 + 2/n)^L for "
               "linear networks."),
    sources=("claims catalogue (derived)", "Roberts, Yaida & Hanin 2022, ch. 4-5", "Yaida 2020"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, figure=figure,
    key_numbers=key_numbers,
)
