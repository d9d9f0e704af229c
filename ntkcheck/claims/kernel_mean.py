"""kernel-mean: random networks average to the analytic NNGP and NTK.

Claim (Neal 1994; Lee et al. 2018, eq. 4; Jacot et al. 2018, Thm 1 and Prop. 1): for
networks at initialization, ``E[f(x) f(x')] = K^{L+1}(x, x') + b_K(x, x')/n + O(1/n^2)``
and ``E[Theta_hat(x, x')] = Theta^{L+1}(x, x') + b_Theta(x, x')/n + O(1/n^2)``: the
sample means converge to the analytic kernels, with a finite-width bias of order 1/n.

Sampling.  :func:`ntkcheck.sampler.sample_init` (exact sampler) gives each network's
empirical NTK and last-layer Gram.  The NNGP sample is the readout's conditional second
moment ``E[f(x) f(x') | hidden layers]`` (:func:`ntkcheck.moments.readout_kernel`): the
same mean as ``f(x) f(x')`` with far less spread (Rao-Blackwell), so like the NTK its
per-network relative spread falls as ``n^{-1/2}``.  Widths up to ``cost_width`` get
``n_networks`` networks; above it the networks shrink as ``1/n`` (at least
``min_networks``), so every width costs about the same and the standard error of the
mean is about the same at every width.  Each width is split into ``n_networks / chunk``
equal chunks (the tasks, and the bootstrap units of the convergence fits).

Test.  For each cell (activation, depth, parameterization, sigma's), kernel and entry
(i <= j) of the N x N kernels, the normalized error of the sample mean at width n,
``d_n = (mean_n - target_n) / sqrt(target_ii target_jj)`` (standard error ``s_n`` from
the networks), is fitted ``d_n = a + b/n`` by :func:`ntkcheck.stats.intercept_test`
(weighted least squares, ``b`` free: the O(1/n) bias, estimated not tuned), and the
claim is ``a = 0``.  All entries, cells and both kernels form one Holm family at
``false_fail_rate`` (the claim's level: its share of the suite's family-wise
rate); each test's ``detectable`` is taken at the Bonferroni level
``false_fail_rate / m`` and false-pass rate ``FALSE_PASS_RATE``.  The fit's adequacy
(chi^2 of the residuals) is reported, not tested.

Negative control (a setting where the claim is false): the same MLP cells drawn in the
mean-field parameterization (readout multiplier ``sigma_w/n`` instead of
``sigma_w/sqrt(n)``; Mei, Montanari & Nguyen 2018; Chizat, Oyallon & Bach 2019), at the
widths ``control_width`` with ``control_n_networks`` networks each, judged by the same fits
against the NTK parameterization's analytic kernels.  Given the hidden layers the readout
is ``f_MF = (f_NTK - sigma_b b)/sqrt(n) + sigma_b b``, so ``E[f f'] = (E_NTK[f f'] -
sigma_b^2)/n + sigma_b^2 -> sigma_b^2`` and likewise ``E[Theta_hat] -> sigma_b^2`` (only
the readout bias stays O(1)): the intercept is ``a = sigma_b^2 / sqrt(K_ii K_jj) - 1``, not
0.  Each kernel's family (NNGP and NTK separately, Holm at ``false_fail_rate``) must
reject.  Power check (not a setting where the claim is false: the claim's own samples
re-scored): the same fits against ``POWER_FACTOR x`` the analytic kernels, reported (statistics
``power_check_*``) beside the control, not part of ``negative_control_rejected``.

Convergence figure (descriptive, not part of the verdict): per cell and kernel, the
off-diagonal entry with the largest fitted bias, ``|d_n|`` vs width with 95 % intervals,
and the exponent of ``|d_n| ~ C n^p`` (theory -1) by :func:`ntkcheck.stats.power_law_fit`
(bootstrap over chunks, 95 % interval) over the widths where the bias is resolved
(``|d_n| > 2 s_n`` at every width from the smallest on, at least three).

Inputs: ``n_inputs`` fixed points in ``R^{d_in}`` drawn once from ``N(0, I)`` with seed 0
(part of the claim's definition, the same for every task); 1-D signals of 4 positions x
``d_in`` channels for the CNNs.

Architectures (the Tensor Programs master theorem, Yang 2019, arXiv:1902.04760 and Yang 2020,
arXiv:2006.14548, Thm 7.2; CNN-GP, Novak et al. 2019, sec. 2; CNTK, Arora et al. 2019, "On exact
computation with an infinitely wide neural net", sec. 4; attention with linear scaling, Hron,
Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention", sec. 3): besides the MLP, cells of a CNN
with global average pooling, a CNN with Flatten, a residual network, a LayerNorm MLP and a
one-block transformer encoder (:mod:`ntkcheck.claims.architectures`), each against its own
analytic kernels
(:func:`ntkcheck.output_kernels`), with the same fits: a check that sampler and recursion agree.
The targets themselves must match the frozen neural-tangents kernels of the cell
(:func:`ntkcheck.claims.architectures.reference_check`), else the claim FAILs.  Their networks have real
weights (``architectures.METHOD``) and the NNGP sample is the readout kernel of the readout's
input features; they take their own sweep from the grid's ``arch_*`` keys.  The power
check is reported per architecture (``power_check_rejected[<architecture>]``) besides the
pooled families of the verdict; the mean-field control runs on the MLP cells.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import labels
from ..kernels import output_kernels
from ..stats import holm, intercept_test, power_law_fit
from . import (CLAIM_FALSE_FAIL_RATE, Claim, Convergence, GridError, KeyNumber, Task, Verdict, grid_cells, pool, split_cells,
               task_key)
from . import architectures
from .initcommon import Z95, claim_grid, mlp_grid

FALSE_PASS_RATE = 1e-3
#: the power check's kernel factor (the claim's samples re-scored against a wrong target)
POWER_FACTOR = 1.03
#: the negative control's parameterization (its networks are judged against the NTK kernels)
CONTROL_PARAMETERIZATION = "mean_field"
#: confidence level of the descriptive exponent intervals of the convergence figure
FIT_LEVEL = 0.95
CELL = ["architecture", "activation", "depth", "parameterization", "sigma_w", "sigma_b"]
QUANTITIES = {"nngp": r"$\mathbb{E}[f(x) f(x')]$ vs $K$", "ntk": r"$\mathbb{E}[\hat\Theta(x, x')]$ vs $\Theta$"}

_BASE = {"depth": [2], "activation": ["relu", "erf"], "parameterization": ["ntk"],
         "sigma_w": 1.5, "sigma_b": 0.1, "n_inputs": 3, "d_in": 4, "cost_width": 256,
         "architecture": list(architectures.ARCHITECTURES), "arch_activation": ["relu"], "arch_depth": [2],
         "arch_parameterization": ["ntk"], "control_width": [64, 256, 1024], "control_n_networks": 64}
GRIDS = {
    "quick": {**_BASE, "width": [2**k for k in (6, 8, 10, 12, 14)], "n_networks": 8192, "chunk": 1024,
              "min_networks": 128, "arch_width": [16, 32, 64], "arch_n_networks": 2048, "arch_chunk": 1024},
    "standard": {**_BASE, "width": [2**k for k in range(6, 17)], "parameterization": ["ntk", "standard"],
                 "n_networks": 65536, "chunk": 4096, "min_networks": 256,
                 "arch_width": [16, 32, 64, 128], "arch_n_networks": 8192, "arch_chunk": 4096},
    "full": {**_BASE, "width": [2**k for k in range(6, 17)], "depth": [1, 2, 4],
             "activation": ["relu", "erf", "tanh", "gelu"], "parameterization": ["ntk", "standard"],
             "n_networks": 262144, "chunk": 8192, "min_networks": 2048,
             "arch_width": [2**k for k in range(4, 11)], "arch_n_networks": 65536, "arch_chunk": 8192,
             "arch_activation": ["relu", "erf"]},
}


def inputs(n_inputs: int, d_in: int) -> np.ndarray:
    """The claim's fixed inputs of the MLP: ``N(0, I)`` rows from seed 0."""
    return architectures.inputs("mlp", n_inputs, d_in)


def chunk_size(grid: dict, width: int) -> int:
    """Networks per chunk at ``width``: ``chunk`` up to ``cost_width``, then shrinking as
    ``1/width`` (equal cost per width), but at least ``min_networks`` per width in all."""
    n_chunks = grid["n_networks"] // grid["chunk"]
    shrunk = max(-(-grid["min_networks"] // n_chunks), grid["chunk"] * grid["cost_width"] // width)
    return min(grid["chunk"], shrunk)


def split(grid: dict) -> list[tuple[str, dict]]:
    """``n_networks / chunk`` equal chunks per cell and width, of :func:`chunk_size` networks,
    per architecture (its own sweep, :func:`ntkcheck.claims.architectures.expand`)."""
    return architectures.split(grid, _split_one) + _control_split(mlp_grid(grid))


def _split_one(grid: dict) -> list[tuple[str, dict]]:
    n_chunks = grid["n_networks"] // grid["chunk"]
    claim = claim_grid(grid)
    return [pair for n in grid["width"] for pair in split_cells(
        {**claim, "width": [n], "n_networks": n_chunks * chunk_size(grid, n), "chunk": chunk_size(grid, n)})]


def _control_split(grid: dict) -> list[tuple[str, dict]]:
    """The negative control's tasks: per MLP cell (any parameterization of the grid) and
    control width, ``control_n_networks`` mean-field networks in one task (none if 0)."""
    if grid["control_n_networks"] == 0:
        return []
    cells = grid_cells({**claim_grid(grid), "parameterization": CONTROL_PARAMETERIZATION,
                        "width": grid["control_width"], "n_networks": grid["control_n_networks"]})
    return [(task_key({"control": CONTROL_PARAMETERIZATION,
                       **{k: c[k] for k in ("activation", "depth", "sigma_w", "sigma_b", "width")}}),
             {**c, "role": "control"}) for c in cells]


def check(grid: dict) -> None:
    """Every cell (of every architecture) must make a valid network; the bias fit needs two
    widths; chunks must be equal (bootstrap units) and hold >= 2 networks (each reports a
    standard error); the control needs two widths and >= 2 networks each (or 0: no control,
    which a verdict then reports as not rejected, for tests of the machinery)."""
    architectures.check(grid, _check_one)
    if grid["control_n_networks"] == 0:
        return
    if len(set(grid["control_width"])) < 2:
        raise GridError("control_width", "needs at least two distinct widths (the control runs the same fits)")
    if grid["control_n_networks"] < 2:
        raise GridError("control_n_networks", "must be 0 (no control) or >= 2 (each control width reports a "
                        "standard error)")


def _check_one(grid: dict) -> None:
    if len(set(grid["width"])) < 2:
        raise GridError("width", "needs at least two distinct widths (the 1/n bias is fitted across widths)")
    if grid["chunk"] < 2:
        raise GridError("chunk", "must be >= 2 (each chunk reports a standard error)")
    if grid["n_networks"] % grid["chunk"] or grid["n_networks"] // grid["chunk"] < 2:
        raise GridError("n_networks", "must be a multiple of chunk with >= 2 chunks (equal bootstrap units)")
    for key in ("cost_width", "min_networks"):
        if not isinstance(grid[key], int) or grid[key] < 1:
            raise GridError(key, f"must be an integer >= 1, got {grid[key]!r}")
    for cell in grid_cells(claim_grid(grid)):
        if chunk_size(grid, cell["width"]) < 2:
            raise GridError("min_networks", f"leaves < 2 networks per chunk at width {cell['width']}")
        try:
            architectures.network(cell)
        except ValueError as err:
            key = next((k for k in ("activation", "parameterization", "depth", "width") if k in str(err)), "activation")
            raise GridError(key, str(err)) from None


def run_task(task: Task) -> list[dict]:
    """Chunk means and standard errors of the readout kernel E[f(x_i) f(x_j) | hidden] and
    of Theta_hat(x_i, x_j), i <= j, with the analytic kernels as ``target`` (for the
    negative control's mean-field networks, those of the NTK parameterization)."""
    p = task.params
    arch = p.get("architecture", "mlp")
    net = architectures.network(p)
    X = architectures.cell_inputs(p)
    _, ntk, readout = architectures.sample(net, X, p["n_networks"], task.seed, architectures.METHOD[arch])
    samples = {"nngp": readout, "ntk": ntk}
    control = p.get("role") == "control"
    exact = output_kernels(architectures.network({**p, "parameterization": "ntk"}) if control else net, X)
    targets = {"nngp": exact.nngp, "ntk": exact.ntk}
    rows = []
    m = len(ntk)
    for q in QUANTITIES:
        mean = samples[q].mean(axis=0)
        se = samples[q].std(axis=0, ddof=1) / math.sqrt(m)
        for i, j in zip(*np.triu_indices(len(X))):
            rows.append({"quantity": q, "i": int(i), "j": int(j), "value": mean[i, j],
                         "stderr": se[i, j], "target": targets[q][i, j]} | ({"role": "control"} if control else {}))
    return architectures.with_architecture(rows, p)


def _entries(df) -> list[dict]:
    """Per cell, kernel and entry: widths, the normalized errors d_n (pooled) with their
    standard errors, and each chunk's d (the bootstrap units), sorted by width."""
    keys = CELL + ["quantity"]
    diag = df[df.i == df.j].groupby(keys + ["i", "width"]).target.first()
    scale = np.sqrt(diag.loc[list(zip(*[df[k] for k in keys + ["i", "width"]]))].to_numpy()
                    * diag.loc[list(zip(*[df[k] for k in keys + ["j", "width"]]))].to_numpy())
    df = df.assign(scale=scale)
    pooled = pool(df, keys + ["i", "j", "width", "target", "scale"])
    out = []
    for key, g in pooled.groupby(keys + ["i", "j"], sort=True):
        g = g.sort_values("width")
        chunks = df[np.all([df[k] == v for k, v in zip(keys + ["i", "j"], key)], axis=0)]
        out.append({**dict(zip(keys + ["i", "j"], key)), "widths": g.width.to_numpy(float),
                    "value": g.value.to_numpy(), "target": g.target.to_numpy(), "scale": g.scale.to_numpy(),
                    "se": (g.stderr / g.scale).to_numpy(),
                    "chunks": [((c.value - c.target) / c.scale).to_numpy()
                               for _, c in chunks.groupby("width", sort=True)]})
    return out


def _rows(df) -> tuple:
    """The claim's rows and the negative control's (``role == "control"``; none in results
    from before the control)."""
    df = architectures.fill(df)
    control = df["role"].eq("control") if "role" in df else pd.Series(False, index=df.index)
    return df[~control], df[control]


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    claim_rows, control_rows = _rows(df)
    entries = _entries(claim_rows)
    m = len(entries)
    alpha = false_fail_rate / m        # Bonferroni level: each test's detectable holds under Holm
    tests, powers = [], []
    for e in entries:
        name = (f"{e['quantity']} ({e['i']},{e['j']}) {e['architecture']} {e['activation']} L={e['depth']} "
                f"{e['parameterization']}")
        e["d"] = (e["value"] - e["target"]) / e["scale"]
        tests.append(intercept_test(e["widths"], e["d"], e["se"], alpha, FALSE_PASS_RATE, name=name))
        powers.append(intercept_test(e["widths"], (e["value"] - POWER_FACTOR * e["target"]) / e["scale"], e["se"],
                                     alpha, FALSE_PASS_RATE, name="power check " + name))
    # the negative control: mean-field networks through the claim's own test, at its level
    control_entries = _entries(control_rows) if len(control_rows) else []
    controls = [intercept_test(e["widths"], (e["value"] - e["target"]) / e["scale"], e["se"], alpha,
                               FALSE_PASS_RATE, name=f"control {e['quantity']} ({e['i']},{e['j']}) {e['activation']} "
                                                     f"L={e['depth']} mean-field") for e in control_entries]
    family = holm(tests, false_fail_rate, name="kernel-mean")
    by_q = {q: [k for k, e in enumerate(entries) if e["quantity"] == q] for q in QUANTITIES}
    power_families = {q: holm([powers[k] for k in ks], false_fail_rate, name=f"power check {q}")
                      for q, ks in by_q.items() if ks}
    control_by_q = {q: [c for e, c in zip(control_entries, controls) if e["quantity"] == q] for q in QUANTITIES}
    control_families = {q: holm(cs, false_fail_rate, name=f"control {q}") for q, cs in control_by_q.items() if cs}
    reference = architectures.reference_check(claim_rows)     # the targets against independent kernels
    passed = family.passed and reference.passed
    control = set(control_families) == set(QUANTITIES) and all(not f.passed for f in control_families.values())
    power = bool(power_families) and all(not f.passed for f in power_families.values())
    archs = sorted({e["architecture"] for e in entries}, key=_arch_order)
    # per architecture, the power check must be rejected by some entry (Holm over its entries)
    arch_power = {a: not holm([c for e, c in zip(entries, powers) if e["architecture"] == a],
                              false_fail_rate, name=f"power check {a}").passed for a in archs}
    z = np.array([t.statistic for t in tests])
    zp = np.array([t.statistic for t in powers])
    detect = {q: max(tests[k].detectable for k in ks) for q, ks in by_q.items() if ks}
    gof = [t.details["gof_pvalue"] for t in tests if t.details["dof"] > 0]
    stats = {"n_tests": m, "max_abs_z": float(np.abs(z).max()), "holm_p": family.pvalue,
             "max_abs_bias_b": float(max(abs(t.details["b"]) for t in tests)),
             "min_fit_gof_p": float(min(gof)) if gof else math.nan,
             **{f"detectable_{q}": v for q, v in detect.items()},
             **{f"control_min_abs_z_{q}": float(min(abs(c.statistic) for c in control_by_q[q]))
                for q in control_families},
             **{f"control_holm_p_{q}": f.pvalue for q, f in control_families.items()},
             **{f"power_check_max_abs_z_{q}": float(np.abs(zp[ks]).max()) for q, ks in by_q.items() if ks},
             **{f"power_check_holm_p_{q}": f.pvalue for q, f in power_families.items()},
             "power_check_rejected": power,
             **{f"power_check_rejected[{a}]": r for a, r in arch_power.items()},
             **{f"max_abs_z[{a}]": float(np.abs([t.statistic for e, t in zip(entries, tests)
                                                  if e["architecture"] == a]).max()) for a in archs},
             **reference.statistics}
    detect_text = ", ".join(f"{v:.2g} ({q.upper()})" for q, v in detect.items())
    control_text = (" and ".join(f"{'rejected' if not f.passed else 'NOT rejected'} by the {q.upper()} "
                                 f"(min |z| = {stats[f'control_min_abs_z_{q}']:.1f})"
                                 for q, f in control_families.items())
                    if control_families else "not run (no control rows)")
    summary = (f"{'pass' if passed else 'FAIL'}: max |z| = {stats['max_abs_z']:.2f} over {m} kernel entries "
               f"(Holm p = {family.pvalue:.3g}, false-fail rate {false_fail_rate}); detects a relative error "
               f"|a| >= {detect_text}; mean-field control {control_text}; x{POWER_FACTOR} power check "
               + " and ".join(f"{'rejected' if not f.passed else 'NOT rejected'} by the {q.upper()} "
                              f"(max |z| = {stats[f'power_check_max_abs_z_{q}']:.1f})"
                              for q, f in power_families.items())
               + f"; architectures {', '.join(archs)} (power check rejected in "
               + (", ".join(a for a in archs if arch_power[a]) or "none") + f"); {reference.text}")
    holm_p = family.details["holm_pvalues"]
    table = pd.DataFrame([{**{k: e[k] for k in CELL + ["quantity", "i", "j"]},
                           "intercept a": t.details["a"], "se(a)": t.details["se_a"], "z": t.statistic,
                           "bias b": t.details["b"], "fit gof p": t.details["gof_pvalue"],
                           "rejected": bool(hp <= false_fail_rate), "power check z": c.statistic}
                          for e, t, c, hp in zip(entries, tests, powers, holm_p)])
    return Verdict(
        claim="kernel-mean", passed=passed, summary=summary, statistics=stats,
        false_fail_rate=false_fail_rate,
        detectable=(f"an infinite-width error |a| >= {detect_text} x sqrt(K_ii K_jj) in any entry is rejected "
                    f"with probability >= {1 - FALSE_PASS_RATE:g} (Bonferroni level {alpha:.2g} per entry)"),
        negative_control=("the MLP cells in mean-field parameterization (readout sigma_w/n: E[f f'] and "
                          "E[Theta_hat] tend to sigma_b^2, not to the NTK parameterization's K and Theta) must be "
                          "rejected by the NNGP and by the NTK tests (the power check against the analytic "
                          f"kernels x {POWER_FACTOR}, the claim's samples re-scored, is reported beside it)"),
        negative_control_rejected=bool(control), convergence=tuple(_convergence(entries, tests)),
        table=table)


def _arch_order(name: str) -> int:
    return architectures.ARCHITECTURES.index(name) if name in architectures.ARCHITECTURES else len(
        architectures.ARCHITECTURES)


def _convergence(entries, tests) -> list[Convergence]:
    """Per cell and kernel, the off-diagonal entry with the largest fitted bias (module docstring)."""
    groups: dict = {}
    for e, t in zip(entries, tests):
        groups.setdefault(tuple(e[k] for k in CELL + ["quantity"]), []).append((e, t))
    out = []
    for key, pairs in groups.items():
        e, _ = max(pairs, key=lambda p: (p[0]["i"] != p[0]["j"], abs(p[1].details["b"])))
        x, d, se = e["widths"], np.abs(e["d"]), e["se"]
        resolved = np.logical_and.accumulate(d > 2 * se)   # the run of widths from the smallest on
        fit = dict(fitted=tuple(bool(r) for r in resolved), exponent_level=FIT_LEVEL)
        if resolved.sum() >= 3:
            res = power_law_fit(x[resolved], [c for c, r in zip(e["chunks"], resolved) if r], -1.0, seed=0,
                                statistic=lambda b: np.abs(b.mean(axis=1)), false_fail_rate=1 - FIT_LEVEL)
            fit.update(exponent=res.exponent, exponent_lo=res.ci_low, exponent_hi=res.ci_high,
                       log_prefactor=res.details["log_prefactor"])
        cell = dict(zip(CELL + ["quantity"], key))
        label = (f"{cell['quantity'].upper()} ({QUANTITIES[cell['quantity']]}), entry ({e['i']},{e['j']}): "
                 f"{cell['architecture']}, {cell['activation']}, L={cell['depth']}, {cell['parameterization']}")
        out.append(Convergence(
            label=label, x=tuple(x), y=tuple(d), lo=tuple(np.maximum(d - Z95 * se, 0.0)),
            hi=tuple(d + Z95 * se), theory_exponent=-1.0, floor=tuple(Z95 * se), y_name=r"$|\mathrm{mean} - \mathrm{kernel}| / \sqrt{K_{ii} K_{jj}}$", **fit))
    return out


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """Per cell and kernel, the entry with the largest |z|: its intercept ``a`` (the relative
    bias left at infinite width, claimed 0) with its interval at the test's Bonferroni level."""
    t = v.table
    level = 1 - v.false_fail_rate / len(t)
    z = norm.isf((1 - level) / 2)
    out = []
    for key, g in t.groupby(CELL + ["quantity"], sort=False):
        e, cell = g.loc[g["z"].abs().idxmax()], dict(zip(CELL + ["quantity"], key))
        name = f"{cell['architecture']}, {cell['activation']}, L={cell['depth']}, {cell['parameterization']}"
        widths = next((s.x for s in v.convergence
                       if s.label.startswith(f"{cell['quantity'].upper()} (") and s.label.endswith(": " + name)), ())
        a, se = float(e["intercept a"]), float(e["se(a)"])
        out.append(KeyNumber(cell=f"{labels.cell(name)}, entry ({e['i']},{e['j']})",
                             quantity=f"{cell['quantity'].upper()}: {QUANTITIES[cell['quantity']]}", name="intercept",
                             value=a, lo=a - z * se, hi=a + z * se, level=level, theory=0.0,
                             widths=tuple(float(w) for w in widths)))
    return tuple(out)


CLAIM = Claim(
    id="kernel-mean",
    title="Sample means of f(x)f(x') and Theta_hat equal the analytic NNGP/NTK up to O(1/width)",
    statement=("Over random initializations, E[f(x)f(x')] and E[Theta_hat(x,x')] equal the "
               "analytic NNGP K and NTK Theta plus a finite-width bias of order 1/width."),
    sources=("Neal 1994", "Lee et al. 2018, eq. 4", "Jacot et al. 2018, Thm 1, Prop. 1",
             "Yang 2019-2020, Tensor Programs I-II", "Novak et al. 2019",
             'Arora et al. 2019, "On exact computation with an infinitely wide neural net" (CNTK), sec. 4',
             'Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention", sec. 3 (attention cells)'),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check,
    key_numbers=key_numbers,
)
