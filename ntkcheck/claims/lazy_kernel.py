"""lazy-kernel: during training the empirical NTK and the weights of a wide network barely move.

Claim (Jacot et al. 2018, Thm 2; Lee et al. 2019, Thm 2.1 and Fig. 1; Dyer & Gur-Ari 2019):
trained by gradient descent on the MSE loss below the critical rate, for t in [0, T],
``sup_t |Theta_hat_t - Theta_hat_0|_F / |Theta_hat_0|_F = O(n^{-1/2})`` (the bound of Thm 2.1,
which assumes an activation with a Lipschitz derivative), sharply ``O(1/n)`` for smooth
activations (Dyer & Gur-Ari 2019, sec. 3: d Theta/dt = O(1/n)), and the relative weight
change is ``O(n^{-1/2})``.

Measured per network (``T`` steps at ``lr_fraction`` x the critical rate ``2N/lambda_max(Theta)``,
NTK on the training and test inputs at 21 times): the sup over t of the relative kernel
change and of each layer's relative parameter change ``|theta^l_t - theta^l_0|/|theta^l_0|``.

Tests, per cell, exponents of the mean over networks vs width
(:func:`ntkcheck.stats.power_law_fit`, small-sample Student-t interval on the bootstrap spread at level
``1 - false_fail_rate / tests``, Bonferroni):

* kernel, every activation: the bound ``O(n^{-1/2})`` over all widths: fails when the whole
  interval lies above -1/2 (or contains 0).  For ReLU this lies outside Thm 2.1's smoothness
  assumption and is an empirical bound (measured ~ -0.7; *derived guess*: activation-pattern
  flips of ~ sqrt(n) units, each O(1/n), of random sign, give -3/4).
* kernel, smooth activations (erf, tanh, ...): the sharp rate -1, two-sided, on widths >=
  ``sharp_min_width`` (below, O(n^{-3/2}) corrections bend the fit: the local slope from 64
  to 128 is ~ -0.6).  Designed by the exponent's bootstrap standard error: the verdict
  states ``detectable``, the exponent error rejected with probability 0.99; the standard
  grid's networks make it <= 0.25 (measured 0.24 over the 14 tests of the MLP and CNN cells).
* weights: the first layer (d x n) and the readout (n x 1) change by O(1) in Frobenius norm
  against norms ~ sqrt(n): exponent -1/2 exactly, tested two-sided.  Hidden-to-hidden
  layers (n x n) have entries moving O(1/n) against a norm ~ n: exponent -1 *(derived)*,
  reported.

Architectures (column ``architecture``): ``"mlp"`` and ``"cnn-gap"``, a 1-D CNN ``depth`` x
[Conv(width, (2,), SAME), phi], GlobalAvgPool, Dense(1) on the same data read as (N, 2
positions, 4 channels).  The lazy regime is not MLP-specific: Lee et al. 2019, Thm 2.1 and
Dyer & Gur-Ari 2019 state it for any architecture whose NTK converges (for CNNs, Arora et
al. 2019, "On exact computation ...", sec. 4), and the CNN's kernel change is measured with the same exponents and tests
(its rate: :func:`ntkcheck.kernels.ntk_kernel` of the stax network).  The CNN cells run on
their own widths and networks (``arch_width``, ``arch_n_networks``, ``arch_control_n_networks``):
a step costs an MLP's per position, so the CNN sweep ends at a smaller width (quick 1024,
standard 2048); at quick its sharp fit has two widths (256, 1024), hence 16 networks per
width, and its mean-field control, whose O(1) change has a small spread, 4.

Negative control: the same networks in mean-field scaling (readout sigma_w/n, rate x n,
:func:`ntkcheck.train.scaled_lr`; for the CNN the readout Dense(1) has W_std = sigma_w/sqrt(n),
i.e. multiplier sigma_w/n): the kernel and weights move O(1), exponent ~ 0 (measured
-0.01..0.02), so the kernel tests must fail in every mean-field cell.  Mean-field needs
sigma_b = 0 (its readout bias is not O(1/n)), so every cell uses sigma_b = 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stax
from ..kernels import ntk_kernel
from ..train import gradient_descent
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict, architectures, split_cells, task_key
from ._training import (TARGET_DETECTABLE, cell_lr, check_cells, check_sharp, dataset, deviation_tests, network_rows,
                        sharp_rate, spec_of, test_row, width_fit, width_series)

CELL = ["architecture", "activation", "depth", "parameterization"]
CONTROL = "mean_field"
ARCHITECTURES = ("mlp", "cnn-gap")
#: Grid keys of the non-MLP cells: each replaces the key without the ``arch_`` prefix
#: (``arch_control_n_networks``: the networks of their mean-field control cells).
ARCH_KEYS = ("arch_width", "arch_n_networks", "arch_control_n_networks")
#: The CNN reads each input's d_in = 8 numbers as 2 positions x 4 channels (each position costs an MLP step).
CNN_POSITIONS = 2

_BASE = {"architecture": list(ARCHITECTURES), "activation": ["erf"], "depth": [1],
         "parameterization": ["ntk", CONTROL], "sigma_w": 1.5,
         "sigma_b": 0.0, "data": "gaussian", "n_train": 16, "n_test": 8, "d_in": 8, "steps": 100,
         "lr_fraction": 0.5, "sharp_min_width": 256}
GRIDS = {
    "quick": {**_BASE, "width": [64, 256, 1024, 4096], "n_networks": 8, "chunk": 8,
              "arch_width": [64, 256, 1024], "arch_n_networks": 16, "arch_control_n_networks": 4},
    "standard": {**_BASE, "activation": ["erf", "relu"],
                 "width": [64, 128, 256, 512, 1024, 2048, 4096], "n_networks": 16, "chunk": 8,
                 "arch_width": [64, 128, 256, 512, 1024, 2048], "arch_n_networks": 16,
                 "arch_control_n_networks": 8},
    "full": {**_BASE, "activation": ["erf", "relu", "tanh"], "depth": [1, 2, 3],
             "width": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "n_networks": 64, "chunk": 8,
             "arch_width": [64, 128, 256, 512, 1024, 2048, 4096], "arch_n_networks": 32,
             "arch_control_n_networks": 8},
}


def expand(grid: dict) -> list[dict]:
    """The grid's sub-grids, one per entry of ``grid["architecture"]`` (a scalar there), without
    the ``arch_*`` keys: the MLP's is the grid itself, the others take ``width`` and
    ``n_networks`` from ``arch_width`` and ``arch_n_networks``, and their mean-field control cells
    (a sub-grid of their own) ``n_networks`` from ``arch_control_n_networks``: the control's
    kernel moves O(1) with a small spread, so few networks reject it."""
    base = {k: v for k, v in grid.items() if k not in ARCH_KEYS and k != "architecture"}
    out = []
    for arch in grid.get("architecture", ["mlp"]):
        sub = {**base, "architecture": arch}
        if arch == "mlp":
            out.append(sub)
            continue
        sub.update({k[len("arch_"):]: grid[k] for k in ARCH_KEYS[:2] if k in grid})
        n_control = grid.get("arch_control_n_networks", sub["n_networks"])
        pars = list(sub["parameterization"])
        if n_control == sub["n_networks"] or CONTROL not in pars:
            out.append(sub)
            continue
        out += [{**sub, "parameterization": [q for q in pars if q != CONTROL]},
                {**sub, "parameterization": [CONTROL], "n_networks": n_control}]
    return out


def split(grid: dict) -> list[tuple[str, dict]]:
    """:func:`ntkcheck.claims.split_cells` of each architecture's sub-grid; MLP task keys
    (hence seeds) are those of the grid without architectures."""
    out = []
    for sub in expand(grid):
        arch = sub.pop("architecture")
        prefix = "" if arch == "mlp" else task_key({"architecture": arch}) + ","
        out += [(prefix + key, {**params, "architecture": arch}) for key, params in split_cells(sub)]
    return out


def check(grid: dict) -> None:
    archs = grid.get("architecture", ["mlp"])
    if not isinstance(archs, (list, tuple)) or not archs or set(archs) - set(ARCHITECTURES):
        raise GridError("architecture", f"must be a list of {', '.join(ARCHITECTURES)}, got {archs!r}")
    for sub in expand(grid):
        sub = {k: v for k, v in sub.items() if k != "architecture"}
        check_cells({**sub, "parameterization": list(grid["parameterization"])}, min_widths=3, control=CONTROL)
        check_sharp(sub)


def network(p: dict, width: int | None = None) -> stax.Layer:
    """The CNN of a cell (:func:`architectures.build`, "cnn-gap"), without biases where
    sigma_b = 0 (they would be trained); mean-field: the readout's multiplier sigma_w/n
    (W_std = sigma_w/sqrt(n) over fan-in n)."""
    n = p["width"] if width is None else width
    readout = p["sigma_w"] / np.sqrt(n) if p["parameterization"] == CONTROL else p["sigma_w"]
    return architectures.build("cnn-gap", p["activation"], p["depth"], n, p["sigma_w"], p["sigma_b"] or None,
                               readout_w_std=readout)


def cnn_inputs(X: np.ndarray) -> np.ndarray:
    """Rows (N, d_in) read as (N, positions, d_in / positions), channels last."""
    return X.reshape(len(X), CNN_POSITIONS, -1)


def cnn_lr(p: dict, X: np.ndarray) -> float:
    """``lr_fraction`` x the critical rate ``2N / lambda_max`` of the CNN's analytic NTK in NTK
    parameterization (Lee et al. 2019, sec. 2.4), x n for mean-field (as
    :func:`ntkcheck.train.scaled_lr`)."""
    theta = ntk_kernel(network({**p, "parameterization": "ntk"}, width=1), X)
    rate = p["lr_fraction"] * 2 * len(X) / float(np.linalg.eigvalsh(theta)[-1])
    return rate * (p["width"] if p["parameterization"] == CONTROL else 1)


def run_task(task: Task) -> list[dict]:
    """Per network: sup_t relative kernel change, sup_t relative change of each layer and of all weights."""
    p = task.params
    arch = p.get("architecture", "mlp")
    X, y, X_test, _ = dataset(p["data"], p["n_train"], p["n_test"], p["d_in"])
    if arch == "mlp":
        net, lr = spec_of(p), cell_lr(p, X)
    else:
        X, X_test = cnn_inputs(X), cnn_inputs(X_test)
        net, lr = network(p), cnn_lr(p, X)
    record = np.unique(np.linspace(0, p["steps"], 21).round().astype(int))
    tr = gradient_descent(net, X, y, lr, p["steps"], n_networks=p["n_networks"],
                          seed=task.seed, X_test=X_test, record=record, record_ntk=True)
    quantities = {"kernel_change": tr.kernel_change.max(1), "weight_change": tr.total_weight_change.max(1),
                  "diverged": tr.diverged.astype(float)}
    for l in range(tr.weight_change.shape[2]):
        quantities[f"weight_change_layer{l + 1}"] = tr.weight_change[:, :, l].max(1)
    return network_rows(quantities, architecture=arch, sharp_min_width=p["sharp_min_width"])


def _tests(cell_df: pd.DataFrame, act: str, depth: int, alpha: float, min_width: int) -> list[dict]:
    """The cell's kernel tests (bound; sharp for smooth activations), its tested weight fits
    (first and readout layers, -1/2 two-sided) and the reported hidden-layer fits."""
    out = [{"quantity": "kernel_change", **t}
           for t in deviation_tests(cell_df[cell_df["quantity"] == "kernel_change"], act, alpha, "kernel_change",
                                    min_width=min_width)]
    layers = {1: -0.5, depth + 1: -0.5, **{l: -1.0 for l in range(2, depth + 1)}}
    for l, claimed in sorted(layers.items()):
        q = f"weight_change_layer{l}"
        fit = width_fit(cell_df[cell_df["quantity"] == q], claimed, 0, alpha, q)
        out.append({"quantity": q, "kind": "exact" if claimed == -0.5 else "reported", "claimed": claimed,
                    "fit": fit, "passed": bool(fit.passed), "note": "two-sided" if claimed == -0.5 else "derived"})
    return out


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    df = df[df["quantity"] != "diverged"].assign(value=lambda d: d["value"].astype(float))
    if "architecture" not in df:            # results from before the CNN cells
        df = df.assign(architecture="mlp")
    min_width = int(df["sharp_min_width"].iloc[0]) if "sharp_min_width" in df else 0
    cells = list(df.groupby(CELL, sort=True))
    n_tested = sum(2 + (sharp_rate(act) is not None) + 1 for (_, act, _, par), _ in cells if par != CONTROL)
    alpha = false_fail_rate / max(1, n_tested)          # Bonferroni over the claim's tests
    rows, series, fits = [], [], {}
    for (arch, act, depth, par), g in cells:
        for t in _tests(g, act, int(depth), alpha, min_width):
            fits[(arch, act, depth, par, t["quantity"], t["kind"])] = t["fit"]
            rows.append({"quantity": t["quantity"], **test_row(t, architecture=arch, activation=act, depth=depth,
                                                               parameterization=par)})
    table = pd.DataFrame(rows)
    tested = table[table["kind"] != "reported"]
    claim = tested[tested["parameterization"] != CONTROL]
    control = tested[tested["parameterization"] == CONTROL]
    passed = bool(claim["passed"].all())
    ctrl_kernel = control[control["quantity"] == "kernel_change"]
    # the control is rejected when every mean-field cell fails one of its kernel tests
    rejected = bool(len(ctrl_kernel) and not ctrl_kernel.groupby(["architecture", "activation", "depth"])["passed"].all().any())
    for (arch, act, depth, par), g in cells:
        if par == CONTROL:
            continue
        ctrl = df[(df["architecture"] == arch) & (df["activation"] == act) & (df["depth"] == depth)
                  & (df["parameterization"] == CONTROL)]
        for q in ("kernel_change", "weight_change_layer1"):
            sharp = q == "kernel_change" and sharp_rate(act) is not None
            fit = fits[(arch, act, depth, par, q, "sharp" if sharp else ("bound" if q == "kernel_change" else "exact"))]
            series.append(width_series(g[g["quantity"] == q], ctrl[ctrl["quantity"] == q], fit,
                                       f"{q}: {arch}, {act}, L={depth}, NTK parameterization (control: mean-field)",
                                       -1.0 if sharp else -0.5, r"$\sup_t$ relative change",
                                       bound=q == "kernel_change" and not sharp, min_width=min_width if sharp else 0))
    k = claim[claim["quantity"] == "kernel_change"]
    sharp_k = k[k["kind"] == "sharp"]
    exact = claim[claim["kind"] == "exact"]
    fmt = lambda t: ", ".join(f"{e:.2f} [{lo:.2f}, {hi:.2f}]" for e, lo, hi in zip(t["exponent"], t["ci_low"], t["ci_high"]))  # noqa: E731
    detect = float(max(sharp_k["detectable"].max() if len(sharp_k) else 0.0, exact["detectable"].max()))
    stats = {"n_tests": n_tested, "level": 1 - alpha, "kernel_bound_exponents": fmt(k[k["kind"] == "bound"]),
             "kernel_sharp_exponents": fmt(sharp_k), "weight_exponents": fmt(exact),
             "detectable_at_power_0.99": detect, "meets_target_0.25": bool(detect <= TARGET_DETECTABLE),
             "control_kernel_exponents": ", ".join(f"{e:.2f}" for e in ctrl_kernel[ctrl_kernel["kind"] == "bound"]["exponent"])}
    widths = sorted(df["width"].unique())
    summary = (f"{'pass' if passed else 'FAIL'}: kernel change exponents {stats['kernel_bound_exponents']} (all widths, "
               f"bound <= -1/2), smooth cells from width {min_width}: {stats['kernel_sharp_exponents'] or 'none'} "
               f"(claimed -1); first/readout weight exponents {stats['weight_exponents']} (claimed -1/2); "
               f"{100 * (1 - alpha):.4g}% intervals, widths {widths[0]}..{widths[-1]}; mean-field control "
               f"{'rejected' if rejected else 'NOT rejected'} (kernel exponents {stats['control_kernel_exponents']})")
    return Verdict(
        claim="lazy-kernel", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=(f"an exponent off its sharp value (-1 kernel, smooth; -1/2 weights) by {detect:.2g} with "
                    f"probability 0.99, or a kernel exponent whose interval lies above -1/2 (Bonferroni over "
                    f"{n_tested} tests)"),
        negative_control="mean-field scaling (rate x n): kernel and weights move O(1), exponent ~ 0",
        negative_control_rejected=rejected, convergence=tuple(series), table=table)


CLAIM = Claim(
    id="lazy-kernel",
    title="Training barely moves the NTK and the weights: relative changes O(width^-1/2)",
    statement=("Below the critical rate, sup_t |Theta_hat_t - Theta_hat_0|/|Theta_hat_0| and the relative "
               "weight change vanish as width^-1/2 or faster (NTK parameterization); not under mean-field."),
    sources=("Jacot et al. 2018, Thm 2", "Lee et al. 2019, Thm 2.1", "Dyer & Gur-Ari 2019"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check,
)
