"""deep-convergence: wide deep networks trained by GD or mini-batch SGD reach zero training
loss linearly, at the rate their initial tangent kernel predicts, while every layer and the
ReLU activation patterns barely move.

Theorem.  Allen-Zhu, Li & Song 2019 ("A convergence theory for deep learning via
over-parameterization", ICML, Thms 1-2): a ReLU network of depth L and width
``m >= poly(N, L, 1/delta)`` on N separated inputs, trained by GD or SGD, finds an
eps-minimiser of the square loss in ``O(N^2 L^2 log(1/eps) / delta^2)`` (GD) iterations,
i.e. linearly; on the way every layer's weights move by ``omega = O(N^3 / (delta sqrt(m)))``
in spectral norm (their W has entries N(0, 2/m), spectral norm O(1): a relative change of
``O(m^{-1/2})``), and at most an ``O(omega^{2/3})`` fraction of the ReLU activation patterns
change (their Lemma 8.2; Li & Liang 2018, NeurIPS, Lemma 5.1 for two layers).  Du, Lee, Li,
Wang & Zhai 2019 ("Gradient descent finds global minima of deep neural networks", ICML,
Thm 5.1) prove the linear rate for smooth activations, ``(1 - eta lambda_min(K^(L))/2)^k``,
with the Gram matrix of the last layers.  In the kernel language of this catalogue (Lee et
al. 2019, sec. 2.2): ``f_k - y = (I - (eta/N) Theta_hat_0)^k (f_0 - y)`` up to the kernel's
drift, so the loss decays asymptotically at ``-2 log(1 - eta lambda_min(Theta_hat_0)/N)`` per step.

Prediction tested for SGD (B inputs per step, a random order per epoch, loss the batch's
share of ``(1/2N) sum (f - y)^2``, :mod:`ntkcheck.train`): in the lazy regime the residual
follows the same linear model driven by the same batches,
``r_{k+1} = (I - (eta/N) Theta_hat_0 D_k) r_k`` with ``D_k`` the batch's indicator (derived:
the update of f is ``-(eta/N) Theta_hat_t D_k r_k`` exactly to first order in the step, and
Theta_hat_t = Theta_hat_0 + O(n^{-1/2})); in expectation over orders this is the full-batch
dynamics with step ``eta B/N`` up to O(eta^2) terms.  For GD, D_k = I.

Measurement, per network (N = 8 inputs on the unit sphere of R^4, labels N(0, 1), as
linear-convergence; NTK parameterization, sigma_w = 1.5, no bias; each network at
``lr_fraction`` x its own critical rate ``2N/lambda_max(Theta_hat_0)`` (Lee et al. 2019,
sec. 2.4, applied to the finite network: the analytic kernel's rate put some narrow and deep
networks' top mode at eta lambda_max / N = 1.97, on the edge, and 2 of 60 quick seeds had a
width-16 network diverge); trained until every network has reached ``eps`` L_0 or spent
:data:`REACH_FACTOR` x its linear model's iterations, at most ``epochs`` passes over the
data (:func:`train_until`): the network's loss L_k and the linear model's L^lin_k from its own
Theta_hat_0, f_0 and batches;
the linear model's iterations to ``eps`` L_0 (``k_eps``); the fitted rate of log loss, the
least-squares slope of ``-log(L_k/L_0)`` over k <= k_eps, for both, and the relative rate
error ``|rate / rate_lin - 1|``; whether the network reached eps L_0; the relative spectral
change of each layer ``|W_l(K) - W_l(0)|_2 / |W_l(0)|_2`` (power iteration) and its maximum
over layers; the fraction of (hidden unit, training input) pairs whose pre-activation changed
sign.  Reported: the NTK rate ``-2 log(1 - eta lambda_min(Theta_hat_0)/N)`` (x B/N for SGD)
against the fitted rate, and iterations against the linear model's.  sigma_w = 1.5 rather
than 1: gelu at sigma_w = 1 contracts the kernel with depth, the rate 2N/lambda_max grows and
the networks of width <= 1024 leave the lazy regime (measured: rate error 0.4 at width 1024).

Tests (per method, GD and SGD, Bonferroni over the fits at the claim's level): every network
at the widest width of every cell reaches eps L_0 within :data:`REACH_FACTOR` x its linear
model's iterations, and none diverges (exact: no error rate, a miss fails; its rate is
measured by the calibration.  The margin is chosen: over quick seeds 0-11 the largest ratio
at the widest width is 1.79, ReLU at depth 4.  The former fixed budget of 60 epochs at the
analytic kernel's rate failed 2 of 60 quick seeds on networks whose linear model itself was
not done); a narrower network that diverges is reported and left out of the fits; three
width exponents, each pooled over the cells (:func:`pooled_fit`: the mean of the cells' slopes,
with 4 cells x M networks per width, where a per-cell fit from M = 10 networks at the split
level has a Student t quantile of ~8 and no power): the rate error is ``O(n^{-1/2})``, the
largest relative spectral change of a layer is ``O(n^{-1/2})`` (Allen-Zhu et al.'s omega: an
upper bound), and for ReLU the flip fraction is ``O(n^{-1/3})`` (their ``omega^{2/3}``), each
one-sided: it passes unless the whole interval lies above the bound.  Not also "the interval
excludes 0" (no decay), as the other training claims' bounds: that test's false-fail rate is
1 - its power, and at quick it failed 3 of 200 correct seeds (rate error, intervals about
+-0.35 wide).  What the one-sided tests detect (power 0.99), over 200 quick seeds: a layer change
or flip exponent 0.16-0.23 above its bound (median; at most 0.40), so no decay is rejected; a
rate-error exponent 0.51-0.53 above -1/2 (median; at most 0.73), so at quick no decay of the
rate error is rejected with probability ~0.99 only at the median seed (~0.95 at a typical
worst); at standard (seed 0) 0.24 and 0.30, well inside.  Measured at quick (seed 0): rate
error -0.55 [-0.94, -0.16] (GD) and -0.57 [-0.97, -0.17] (SGD), layer change -0.55 and -0.60,
flips -0.40 (GD) and -0.51 (SGD): the heuristic ``n^{-1/2}`` for flips (a pre-activation moves
O(n^{-1/2}) and has a bounded density at 0) fits better than the bound.  Per cell exponents
are reported, and they qualify the pooled rate error: at quick the gelu cells decay as ~ n^-1
(Dyer & Gur-Ari's 1/n drift) and the ReLU cells only as ~ n^-0.3 over widths 16-256 (ReLU's
kinks: pre-asymptotic, or slower than the smooth-activation rate), so the pooled -0.6 is mostly
the gelu cells'; a ReLU network at width 256 takes ~1.2-1.3 x its linear model's iterations.
Standard (seed 0, widths 64-1024, depths 2-8, 16 networks; 783 s wall on one loaded core): PASS,
pooled rate error -0.49 [-0.64, -0.34] (GD) and -0.44 [-0.63, -0.25] (SGD), layer change -0.54
and -0.54, flips -0.51 and -0.52, control rejected, one width-64 network diverged (left out);
per cell the ReLU rate errors decay as n^-0.15...-0.32 and gelu at depth 8 is not lazy at width
1024 (0.64-0.67 x the linear model's iterations).

Residual cells (``architecture`` "resnet", :mod:`ntkcheck.claims.architectures`: Dense(width),
depth - 1 blocks ``x + Dense(phi(x))``, phi, Dense(1); relu, depth 4 at quick, 4 and 8 at
standard), trained by :func:`ntkcheck.train.stax_train_params` with the same rates, batches and
stopping rule: Allen-Zhu et al.'s theory applies to ResNets as well, and Du et al. 2019's main
result is a ResNet's (both abstracts); their residual branches' depth-dependent scaling is not
reproduced (NTK parameterization, unscaled branches: the kernel grows with depth and each
network's own rate absorbs it).  They join the rate-error and layer-change fits; their flips are not measured
(the stax forward pass keeps no per-layer pre-activations for it).  Measured at quick (seed
0): the resnet cells' rate errors decay as n^-0.47 (GD) and n^-0.66 (SGD), layer changes as
n^-0.58 and n^-0.60, and at width 256 a network takes 1.16 x its linear model's iterations;
standard (seed 0, depths 4 and 8): rate errors n^-0.30...-0.54, 1.05-1.08 x at width 1024.

Negative control: the same cells at ``control_width`` (1 unit per layer: L <= N hidden units
in all, below over-parameterization; every layer a scalar, f depends on x through one
projection only): the loss plateaus, so not every network
may reach eps L_0.

Sources: Allen-Zhu, Li & Song 2019 (ICML), Thms 1-2, Lemma 8.2; Du, Lee, Li, Wang & Zhai 2019
(ICML), Thm 5.1 and their ResNet result; Li & Liang 2018 (NeurIPS), Lemma 5.1; Lee et al. 2019 (NeurIPS), sec. 2.2.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from functools import partial

from .. import stax
from ..networks import empirical_ntk_from, forward, init_params
from ..seeding import child
from ..train import affine_weights, batch_mask, epoch_orders, stax_train_params, train_params
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, Task, Verdict, architectures, split_cells, task_key
from ._training import (check_cells, geometric_mean, network_rows, spec_of, width_fit,
                        width_series)
from .linear_convergence import data

METHODS = ("gd", "sgd")
#: Power iterations of the spectral norms (from a fixed start: the same numbers every run).
POWER_STEPS = 30
#: Training runs in segments of this many epochs, and stops at the end of the first segment
#: after which every network is done (:func:`train_until`).
SEGMENT_EPOCHS = 4
#: A network "reaches eps" if it does within this many times its linear model's iterations
#: (a chosen margin: the largest ratio at the widest quick width over seeds 0-11 is 1.79).
REACH_FACTOR = 4
#: Allen-Zhu et al.'s flip-fraction exponent (omega^{2/3}, omega ~ n^{-1/2}): the tested bound.
FLIP_BOUND = -1.0 / 3.0

_BASE = {"n_train": 8, "d_in": 4, "sigma_b": 0.0, "parameterization": "ntk",
         "sigma_w": 1.5, "batch_size": 4, "lr_fraction": 0.5, "eps": 1e-3, "control_width": 1}
GRIDS = {
    "quick": {**_BASE, "activation": ["relu", "gelu"], "depth": [2, 4], "method": ["gd", "sgd"],
              "width": [16, 64, 256], "epochs": 200, "n_networks": 10, "chunk": 10,
              "architecture": ["mlp", "resnet"], "arch_activation": ["relu"], "arch_depth": [4]},
    "standard": {**_BASE, "activation": ["relu", "gelu"], "depth": [2, 4, 8], "method": ["gd", "sgd"],
                 "width": [64, 256, 1024], "epochs": 200, "n_networks": 16, "chunk": 8,
                 "architecture": ["mlp", "resnet"], "arch_activation": ["relu"], "arch_depth": [4, 8]},
    "full": {**_BASE, "activation": ["relu", "gelu"], "depth": [2, 4, 8], "method": ["gd", "sgd"],
             "width": [64, 128, 256, 512, 1024, 2048], "epochs": 200, "n_networks": 64, "chunk": 16,
             "architecture": ["mlp", "resnet"], "arch_activation": ["relu", "gelu"], "arch_depth": [4, 8]},
}
KEYS = {
    "method": "training: 'gd' (full batch) or 'sgd' (mini-batches of batch_size, a random order per epoch)",
    "batch_size": "inputs per SGD step (divides n_train)",
    "epochs": "at most this many passes over the training inputs (GD: steps; SGD: steps x batch_size / n_train); "
              "training stops once every network is done",
    "lr_fraction": "each network's learning rate as a fraction of its own critical rate 2N/lambda_max(Theta_hat_0)",
    "eps": "target loss as a fraction of the initial loss",
    "control_width": "width of the under-parameterized control (hidden units in all <= n_train)",
    "architecture": "'mlp' and/or 'resnet' (Dense(width), depth - 1 residual blocks x + Dense(phi(x)), phi, Dense(1))",
    "arch_activation": "the resnet cells' activations",
    "arch_depth": "the resnet cells' depths (hidden Dense layers)",
}


def check(grid: dict) -> None:
    if not set(grid["architecture"]) <= {"mlp", "resnet"}:
        raise GridError("architecture", "must be a list of 'mlp', 'resnet' (the networks trained here)")
    architectures.check(grid, _check_one)


def _check_one(grid: dict) -> None:
    if not set(grid["method"]) <= set(METHODS):
        raise GridError("method", f"must be a list of {', '.join(METHODS)}")
    check_cells({k: v for k, v in grid.items() if k not in ("method", "architecture")}, min_widths=3)
    if grid["n_train"] % grid["batch_size"]:
        raise GridError("batch_size", f"must divide n_train ({grid['n_train']})")
    if not 0 < grid["eps"] < 1:
        raise GridError("eps", "must lie in (0, 1)")
    if not 0 < grid["lr_fraction"] < 1:
        raise GridError("lr_fraction", "must lie in (0, 1): the claim is stated below the critical rate")
    if grid["control_width"] * max(grid["depth"]) > grid["n_train"]:
        raise GridError("control_width", "needs control_width x depth <= n_train (under-parameterized)")


def split(grid: dict) -> list[tuple[str, dict]]:
    """Per architecture (resnet keys prefixed ``architecture=resnet,``), the cells, then the
    control cells at ``control_width`` (keys prefixed ``control=1,``)."""
    return architectures.split(grid, _split_one)


def _split_one(grid: dict) -> list[tuple[str, dict]]:
    control = {**grid, "width": [grid["control_width"]]}
    return split_cells(grid) + [(task_key({"control": 1}) + "," + key, {**params, "control": 1})
                                for key, params in split_cells(control)]


def spectral_norms(A: np.ndarray, seed) -> np.ndarray:
    """``|A_i|_2`` of a stack (M, p, q) by :data:`POWER_STEPS` power iterations on A^T A from
    one random start: a lower bound, tight to ~1e-6 for the weight changes (rank <= N: a
    spectral gap) and up to ~1.5 % low for the Gaussian W_l(0) (no gap at the Marchenko-Pastur
    edge; measured 0.2 % at width 64, 1.5 % at 1024): a bias of the width exponent below 0.01."""
    v = np.random.default_rng(seed).standard_normal(A.shape[2])
    v = np.broadcast_to(v, (A.shape[0], A.shape[2])).copy()
    for _ in range(POWER_STEPS):
        v = np.einsum("mpq,mp->mq", A, np.einsum("mpq,mq->mp", A, v))
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    return np.linalg.norm(np.einsum("mpq,mq->mp", A, v), axis=1)


def linear_losses(theta0: np.ndarray, r0: np.ndarray, step, n: int, masks) -> np.ndarray:
    """Losses (M, K+1) of the linear model ``r_{k+1} = (I - (step/N) Theta_hat_0 D_k) r_k``
    (Lee et al. 2019, eq. 8, discretised; D_k the batch indicator, ``masks[k]`` (M, N); ``step``
    one rate or one per network)."""
    r, out = r0.copy(), []
    step = np.asarray(step, dtype=float)[..., None]
    for k in range(len(masks)):
        out.append(0.5 * np.einsum("mi,mi->m", r, r) / n)
        r = r - step / n * np.einsum("mij,mj->mi", theta0, masks[k] * r)
    out.append(0.5 * np.einsum("mi,mi->m", r, r) / n)
    return np.stack(out, axis=1)


def train_until(train, lr, n: int, k_fit, k_max, eps: float, cap: int, batch_size, orders):
    """Train in segments of :data:`SEGMENT_EPOCHS` epochs until every network has passed
    ``k_fit`` steps and either reached ``eps`` x its initial loss or passed ``k_max`` steps (or
    diverged), at most ``cap`` steps; ``train(lr, steps, batch_size=, orders=)`` trains the
    networks in place (:func:`ntkcheck.train.train_params` or ``stax_train_params`` with the
    networks bound) on ``n`` inputs.  Returns the losses (M, steps + 1) and the diverged flags
    (M,).  Stopping early saves the steps a fixed budget spends on networks already at eps; the
    segments are fixed, so the stopping step (and the weights measured there) is the same every
    run."""
    per_epoch = n // (batch_size or n)
    seg = SEGMENT_EPOCHS * per_epoch
    losses, k = [], 0
    diverged, reached = np.zeros(len(lr), dtype=bool), np.zeros(len(lr), dtype=bool)
    while k < cap:
        s = min(seg, cap - k)
        # a network that diverged stays where it stopped (rate 0), its losses inf
        tr = train(np.where(diverged, 0.0, lr), s, batch_size=batch_size,
                   orders=None if orders is None else orders[:, k // per_epoch:])
        losses.append(np.where(diverged[:, None], np.inf, tr.loss)[:, 1 if k else 0:])
        reached |= (losses[-1] <= eps * losses[0][:, :1]).any(1)
        diverged |= tr.diverged
        k += s
        if np.all(diverged | ((k >= k_fit) & (reached | (k >= k_max)))):
            break
    return np.concatenate(losses, axis=1), diverged


def initial_networks(p: dict, X: np.ndarray, y: np.ndarray, seed, m: int):
    """A cell's M networks at initialization: their outputs f_0 (M, N), tangent kernels
    Theta_hat_0 (M, N, N), a function that returns the hidden pre-activations (a list of (M, N,
    n) arrays: the MLP's; None for a resnet, whose flips are not measured), ``train`` for
    :func:`train_until` and a function that returns the weights (a list of (M, out, in)),
    both acting on the same parameters, trained in place."""
    if p.get("architecture", "mlp") == "mlp":
        spec = spec_of(p)
        params = init_params(spec, X.shape[1], seed, 0, m)
        f0, pre0, posts0 = forward(spec, params, X, keep_posts=True)
        theta0 = empirical_ntk_from(spec, params, X, pre0, posts=posts0)
        train = partial(train_params, spec, params, X, y, record=[0], track_weights=False)
        return (f0[..., 0], theta0, lambda: forward(spec, params, X)[1], train, lambda: list(params.weights))
    net = architectures.build(p["architecture"], p["activation"], p["depth"], p["width"], p["sigma_w"], None)
    params = stax.init_params(net, X.shape[1:], seed, 0, m)
    f0, cache = net.forward(params, X[None])
    theta0 = net.backward(params, cache, np.ones((m, 1, len(X), 1)))[1]     # stax.outputs_and_ntk's formula
    train = partial(stax_train_params, net, params, X, y, record=[0], track_weights=False)
    return f0[..., 0], theta0, lambda: None, train, lambda: affine_weights(net, params)


def fitted_rate(loss: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Per row, the least-squares slope of ``-log(L_k/L_0)`` on k over ``0 <= k <= stop``."""
    out = np.empty(len(loss))
    for i, (row, s) in enumerate(zip(loss, stop)):
        k = np.arange(int(s) + 1)
        out[i] = -np.polyfit(k, np.log(row[:int(s) + 1] / row[0]), 1)[0]
    return out


def run_task(task: Task) -> list[dict]:
    p = task.params
    X, y = data(p["n_train"], p["d_in"])
    n, m = len(X), p["n_networks"]
    f0, theta0, preactivations, train, weights = initial_networks(p, X, y, task.seed, m)
    pre0, w0 = preactivations(), [W.copy() for W in weights()]
    eig = np.linalg.eigvalsh(theta0)
    # each network below its own critical rate 2N / lambda_max(Theta_hat_0): the analytic
    # kernel's rate puts a narrow or deep network's top mode near (or past) the edge.  A dead
    # control network (Theta_hat_0 = 0: no gradient, no rate moves it) gets rate lr_fraction
    lr = p["lr_fraction"] * np.where(eig[:, -1] > 0, 2 * n / np.maximum(eig[:, -1], 1e-300), 1.0)
    sgd = p["method"] == "sgd"
    batch = p["batch_size"] if sgd else n
    cap = p["epochs"] * (n // batch)     # the same epochs (passes over the data) for GD and SGD
    orders = epoch_orders(n, batch, cap, child(task.seed, 1), 0, m)
    # each network's batch at step k (all inputs for GD)
    lin = linear_losses(theta0, f0 - y, lr, n, [batch_mask(orders, batch, k) for k in range(cap)])
    target = p["eps"] * lin[:, :1]
    k_lin = np.where((lin <= target).any(1), (lin <= target).argmax(1), cap)
    loss, diverged = train_until(train, lr, n, k_lin, REACH_FACTOR * k_lin, p["eps"], cap,
                                 batch if sgd else None, orders if sgd else None)
    steps = loss.shape[1] - 1
    hit = loss <= p["eps"] * loss[:, :1]
    reached = hit.any(1) & ~diverged
    k_net = np.where(reached, hit.argmax(1), steps)
    reached &= k_net <= REACH_FACTOR * k_lin
    lin = lin[:, :steps + 1]
    # a dead control network (width 1) has a flat loss: rate 0, its rate error NaN (never fitted)
    with np.errstate(divide="ignore", invalid="ignore"):
        kfit = np.maximum(np.minimum(k_lin, steps), 2)
        rate, rate_lin = fitted_rate(loss, kfit), fitted_rate(lin, kfit)
        rate_error = np.abs(rate / rate_lin - 1)
    ntk_rate = -2 * np.log1p(-lr * eig[:, 0] / n) * batch / n
    layer = np.stack([spectral_norms(W - W_0, child(task.seed, 2, l)) / spectral_norms(W_0, child(task.seed, 3, l))
                      for l, (W, W_0) in enumerate(zip(weights(), w0))], axis=1)
    quantities = {"reached_eps": reached.astype(float), "iterations": k_net.astype(float),
                  "iterations_linear": k_lin.astype(float), "rate": rate, "rate_linear": rate_lin,
                  "rate_ntk": ntk_rate, "rate_error": rate_error}
    if pre0 is not None:
        flips = [(a > 0) != (b > 0) for a, b in zip(pre0, preactivations())]
        quantities["flip_fraction"] = np.mean(np.concatenate(flips, axis=2), axis=(1, 2))
    quantities.update({"weight_change": layer.max(1), "diverged": diverged.astype(float)})
    quantities.update({f"weight_change_layer{l + 1}": layer[:, l] for l in range(layer.shape[1])})
    return network_rows(quantities, method=p["method"], control=int(p.get("control", 0)),
                        architecture=p.get("architecture", "mlp"))


CELL = ["architecture", "activation", "depth", "method"]


def _cells(df):
    return df.groupby(CELL, sort=True)


def pooled_fit(g, claimed: float, alpha: float, name: str):
    """One width exponent for the cells of ``g`` (rows of one quantity): each row divided by
    its cell's geometric mean (a constant per cell: it leaves every cell's slope unchanged and
    keeps the scale differences between cells out of the bootstrap spread), then
    :func:`width_fit` of the geometric mean over all the cells' networks at each width (its
    slope is the mean of the cells' slopes of mean log values).  Returns the fit and the
    scaled rows (what the fit sees, to plot)."""
    scale = g.groupby(["architecture", "activation", "depth"])["value"].transform(lambda v: np.exp(np.log(v).mean()))
    scaled = g.assign(value=g["value"] / scale)
    return width_fit(scaled, claimed, 0, alpha, name, geometric_mean), scaled


#: The pooled fits per method: (quantity, claimed exponent, a bound?, activations, label).
FITS = (("rate_error", -0.5, True, None, r"rate error $|\rho/\rho_{lin} - 1|$"),
        ("weight_change", -0.5, True, None, r"max layer $\|\Delta W_l\|_2/\|W_l(0)\|_2$"),
        ("flip_fraction", FLIP_BOUND, True, ("relu",), "ReLU flip fraction"))


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    df = architectures.fill(df).assign(value=lambda d: d["value"].astype(float))
    claim, ctrl = df[df["control"] == 0], df[df["control"] == 1]
    # a network that diverged (its kernel grew past 2N/eta while training: a narrow network,
    # outside the lazy regime) has no rate error and leaves the fits; dropping a narrow width's
    # worst networks flattens the fitted decay, so the bounds get harder to pass, not easier.
    # At the widest width it fails the claim.
    unstable = claim[(claim["quantity"] == "rate_error") & ~np.isfinite(claim["value"])]
    unstable_top = unstable[unstable["width"] == claim["width"].max()]
    claim = claim[~claim.set_index(CELL + ["width", "network"]).index.isin(
        unstable.set_index(CELL + ["width", "network"]).index)]
    methods = sorted(claim["method"].unique())
    n_fits = len(methods) * sum(1 for f in FITS if f[3] is None or set(f[3]) & set(claim["activation"]))
    alpha = false_fail_rate / n_fits
    fits, series = [], []
    for method in methods:
        for quantity, claimed, bound, acts, label in FITS:
            g = claim[(claim["method"] == method) & (claim["quantity"] == quantity)]
            if acts is not None:
                g = g[g["activation"].isin(acts)]
            if g.empty:
                continue
            fit, scaled = pooled_fit(g, claimed, alpha, f"{quantity}: {method}")
            # a bound passes unless the whole interval lies above it (one-sided, at the fit's
            # level).  No "interval excludes 0" on top: that test's false-fail rate is 1 - its
            # power (3 of 200 correct quick seeds failed on it), and no decay already lies
            # beyond every fit's detectable
            ok = bool(fit.ci_low <= claimed) if bound else bool(fit.passed)
            fits.append({"method": method, "quantity": quantity, "claimed": claimed,
                         "kind": "bound" if bound else "two-sided", "exponent": fit.exponent, "ci_low": fit.ci_low,
                         "ci_high": fit.ci_high, "detectable": fit.detectable, "passed": ok})
            series.append(width_series(scaled, g.iloc[:0], fit, f"{label} (cells pooled): {method}", claimed,
                                       quantity.replace("_", " ") + " / its cell's geometric mean", robust=True,
                                       bound=bound))
    cells = []
    for (arch, act, depth, method), g in _cells(claim):
        q = lambda name: g[g["quantity"] == name]  # noqa: E731
        top = g["width"] == g["width"].max()
        c = ctrl[(ctrl["architecture"] == arch) & (ctrl["activation"] == act) & (ctrl["depth"] == depth)
                 & (ctrl["method"] == method)]
        c_reached = float(c.loc[c["quantity"] == "reached_eps", "value"].mean())
        cell = {"architecture": arch, "activation": act, "depth": depth, "method": method,
                "fraction reaching eps (widest)": float(g.loc[top & (g["quantity"] == "reached_eps"), "value"].mean()),
                "rate / NTK rate (widest)": float(g.loc[top & (g["quantity"] == "rate"), "value"].mean()
                                                  / g.loc[top & (g["quantity"] == "rate_ntk"), "value"].mean()),
                "iterations / linear (widest)": float(g.loc[top & (g["quantity"] == "iterations"), "value"].mean()
                                                      / g.loc[top & (g["quantity"] == "iterations_linear"), "value"].mean()),
                "control: fraction reaching eps": c_reached}
        for quantity, _, _, acts, _ in FITS:
            if (acts is None or act in acts) and len(q(quantity)):    # reported, not tested: the slope of mean logs
                logs = q(quantity).assign(log=lambda h: np.log(h["value"])).groupby("width")["log"].mean()
                cell[f"{quantity} exponent (reported)"] = float(np.polyfit(np.log(logs.index), logs.to_numpy(), 1)[0])
        cells.append(cell)
    cells, fits = pd.DataFrame(cells), pd.DataFrame(fits)
    reached = bool((cells["fraction reaching eps (widest)"] == 1.0).all())
    passed = bool(reached and fits["passed"].all() and unstable_top.empty)
    rejected = bool(len(ctrl) and (cells["control: fraction reaching eps"] < 1.0).all())
    summary = (f"{'pass' if passed else 'FAIL'}: every network at the widest width reaches eps L_0 (within "
               f"{REACH_FACTOR}x its linear model's iterations) in "
               f"{int((cells['fraction reaching eps (widest)'] == 1.0).sum())}/{len(cells)} cells; "
               + (f"{len(unstable_top)} networks of the widest width UNSTABLE (diverged); "
                  if len(unstable_top) else "")
               + (f"{len(unstable) - len(unstable_top)} narrower networks diverged (widths "
                  f"{', '.join(str(int(w)) for w in sorted(unstable['width'].unique()))}; left out of the fits); "
                  if len(unstable) > len(unstable_top) else "")
               + "pooled exponents "
               + "; ".join(f"{r.quantity} ({r.method}) {r.exponent:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] "
                           f"({'<= ' if r.kind == 'bound' else ''}{r.claimed:.2g}: {'ok' if r.passed else 'FAILED'})"
                           for r in fits.itertuples())
               + f"; {len(fits)} fits at {alpha:.3g} each (the claim's false-fail rate {false_fail_rate:.3g}); "
               f"control (under-parameterized) {'rejected' if rejected else 'NOT rejected'}: fractions reaching eps "
               + ", ".join(f"{v:.2f}" for v in cells["control: fraction reaching eps"]))
    stats = {"fits": len(fits), "level per fit": 1 - alpha,
             **{f"{r.quantity} exponent ({r.method})": r.exponent for r in fits.itertuples()},
             **{f"{r.quantity} ({r.method}) passed": float(r.passed) for r in fits.itertuples()},
             **{f"{r['architecture']}, {r['activation']}, L={r['depth']}, {r['method']}: rate / NTK rate (widest)":
                r["rate / NTK rate (widest)"] for _, r in cells.iterrows()},
             "control: largest fraction reaching eps": float(cells["control: fraction reaching eps"].max())}
    return Verdict(
        claim="deep-convergence", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=("a pooled exponent off its claimed value (or beyond its bound) by "
                    + ", ".join(f"{r.detectable:.2g} ({r.quantity}, {r.method})" for r in fits.itertuples())
                    + " at power 0.99; one network of the widest width not reaching eps"),
        negative_control=("the same cells at control_width (hidden units in all <= n_train, under-parameterized): "
                          "the loss plateaus, so some network must miss eps L_0"),
        negative_control_rejected=rejected, convergence=tuple(series), table=cells)


CLAIM = Claim(
    id="deep-convergence",
    title=("deep ReLU/smooth nets and ResNets, GD and SGD: linear convergence at the NTK rate; layers move "
           "n^-1/2, few flips"),
    statement=("Wide networks (MLPs and ResNets) of depth 2-8 in NTK parameterization trained by full-batch GD or "
               "mini-batch SGD below their own critical rate reach eps x the initial loss, at the rate of the "
               "linear model of their initial tangent kernel (error O(n^-1/2)); each layer moves n^-1/2 in relative "
               "spectral norm and an O(n^-1/3) fraction of ReLU activation patterns flips."),
    sources=("Allen-Zhu, Li & Song 2019, Thms 1-2, Lemma 8.2",
             "Du, Lee, Li, Wang & Zhai 2019, Thm 5.1 and the ResNet result",
             "Li & Liang 2018, Lemma 5.1", "Lee et al. 2019, sec. 2.2"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, keys=KEYS,
)
