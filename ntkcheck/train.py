"""Training engine: full-batch gradient descent, mini-batch SGD and gradient flow for
ensembles of M dense networks at once (stacked weights, one batched matmul per layer).

Loss and time follow the claims catalogue (Lee et al. 2019, sec. 2):
``L = (1/2N) sum_i (f(x_i) - y_i)^2``; gradient flow ``d theta/dt = -eta grad L``
so that ``df(X)/dt = -(eta/N) Theta_hat_t (f(X) - y)``; gradient descent is its
Euler discretisation with unit step, so GD step k sits at flow time t = k.
A step ``dt < 1`` (``theta <- theta - dt eta grad L``) approximates the flow.

Mini-batch SGD (``batch_size`` B dividing N): each network visits its own random
order of the N training inputs per epoch (:func:`epoch_orders`, drawn from the
network's seed child), B inputs per step, and steps on the batch's share of the
same loss, ``L_B = (1/2N) sum_{i in B} (f(x_i) - y_i)^2``.  Then
``E[grad L_B] = (B/N) grad L`` (derived: each input is in the step's batch with
probability B/N), so in the linear (lazy) regime of Lee et al. 2019 (sec. 2.2,
eqs. 8-9; Du et al. 2018, sec. 3 for GD) the expected residual follows the
full-batch dynamics with step ``eta B/N``, ``E[r_k] = (I - (eta B/N^2) Theta_hat)^k r_0``,
up to O(eta^2) terms (the batches of an epoch are dependent), and one epoch of SGD
is one GD step in expectation.  With B = N it is full-batch GD, bit for bit.

Gradients come from :func:`ntkcheck.networks.backward` with cotangent r/N:
``dL/dW^l = a_l g^l^T x^{l-1}``, ``dL/db^l = c_l sum_i g^l_i``.  The weight
update is fused into one BLAS ``gemm`` per network and layer
(``W^T <- W^T - eta dt a_l x^T g``), so no gradient array is ever stored.

Learning-rate conventions (:func:`scaled_lr`): under mean-field scaling the
tangent kernel is O(1/n) (readout multiplier sigma_w/n instead of
sigma_w/sqrt(n)), so the rate is multiplied by the readout fan-in n_L to make f
move O(1) in O(1) time (Mei, Montanari & Nguyen 2018; Chizat & Bach 2018).
With an output scale alpha the rate is divided by alpha^2 and the output can be
centred, ``alpha (f(theta) - f(theta_0))`` (Chizat, Oyallon & Bach 2019, sec. 2).
"""
from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg.blas import dgemm

from . import blas, stax
from .display import short_repr
from .kernels import check_inputs
from .networks import MAX_BYTES, DenseParams, backward, empirical_ntk_from, forward, init_params
from .seeding import child, network_rngs
from .spec import MLP

#: Working memory (weights and activations, :func:`train_bytes_per_network`) of one
#: group of networks trained together: small enough to stay in the CPU caches.
GROUP_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class Trajectory:
    """What a training run recorded, for M networks.

    ``steps`` (T,) are the recorded step counts and ``times`` (T,) the flow
    times ``steps * dt``.  ``f_train`` (M, T, N), ``f_test`` (M, T, N_test)
    (centred outputs if the run was centred), ``loss`` (M, n_steps + 1) at
    every step, ``ntk`` (M, T, N + N_test, N + N_test) on train then test
    inputs (or None), ``dtheta_sq`` (M, T, L+1) the squared change of each
    layer's parameters and ``theta0_sq`` (M, L+1) their initial squared norm
    (biases count only where they act, c_l != 0).  ``diverged`` (M,) marks
    networks whose loss exceeded the blow-up level; their records after that
    point are NaN (loss: inf).  ``step_error`` (M, T) is, for
    :func:`gradient_flow`, the estimated max error of f against exact flow.
    """

    __repr__ = short_repr   # no array dumps in notebooks

    steps: np.ndarray
    times: np.ndarray
    y: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    loss: np.ndarray
    ntk: np.ndarray | None
    dtheta_sq: np.ndarray
    theta0_sq: np.ndarray
    diverged: np.ndarray
    lr: float | np.ndarray
    dt: float
    step_error: np.ndarray | None = None

    @property
    def residuals(self) -> np.ndarray:
        """f_t(X) - y, (M, T, N)."""
        return self.f_train - self.y

    @property
    def weight_change(self) -> np.ndarray:
        """Relative change per layer ``|theta^l_t - theta^l_0| / |theta^l_0|``, (M, T, L+1)."""
        return np.sqrt(self.dtheta_sq / self.theta0_sq[:, None, :])

    @property
    def total_weight_change(self) -> np.ndarray:
        """``|theta_t - theta_0| / |theta_0|`` over all layers, (M, T)."""
        return np.sqrt(self.dtheta_sq.sum(-1) / self.theta0_sq.sum(-1)[:, None])

    @property
    def kernel_change(self) -> np.ndarray:
        """``|Theta_hat_t - Theta_hat_0|_F / |Theta_hat_0|_F`` on train and test inputs, (M, T)."""
        if self.ntk is None or self.steps[0] != 0:
            raise ValueError("kernel_change needs the NTK recorded at step 0 (record_ntk=True, 0 in record)")
        diff = np.linalg.norm(self.ntk - self.ntk[:, :1], axis=(2, 3))
        return diff / np.linalg.norm(self.ntk[:, 0], axis=(1, 2))[:, None]


def scaled_lr(spec: MLP, lr: float) -> float:
    """The rate to train ``spec`` with so that f moves O(1) in O(1) time: ``lr * n_L``
    under mean-field scaling (Mei, Montanari & Nguyen 2018, eq. 3 with time n
    per unit), divided by ``alpha^2`` for output scale alpha (Chizat, Oyallon &
    Bach 2019, Thm 2.2's lr/alpha^2)."""
    if spec.parameterization == "mean_field" and spec.sigma_b != 0:
        raise ValueError("scaled_lr: mean-field scaling needs sigma_b = 0 (the readout bias term of the "
                         "kernel is not O(1/n), so the n-fold rate would blow it up)")
    factor = spec.widths[-1] if spec.parameterization == "mean_field" else 1.0
    return lr * factor / spec.output_scale**2


def train_bytes_per_network(spec: MLP, d_in: int, n_inputs: int, record_ntk: bool = False,
                            n_records: int = 1, track_weights: bool = True, itemsize: int = 8) -> int:
    """Memory of one network in :func:`train_params`: weights (twice when tracking
    weight changes: current and initial), ~6 activation-sized arrays per layer for ``n_inputs`` (train and
    test) inputs, the per-layer NTK Gram factors and the recorded kernels."""
    dims = (d_in,) + spec.widths + (spec.d_out,)
    n_weights = sum(dims[l] * dims[l + 1] + dims[l + 1] for l in range(len(dims) - 1))
    ntk = (len(dims) + 2 + n_records) * n_inputs**2 if record_ntk else 0
    return itemsize * ((1 + track_weights) * n_weights + 6 * n_inputs * sum(dims) + ntk)


def _check_run(spec: MLP, X, y, X_test, lr, steps, dt):
    if X_test is None:
        X, _ = check_inputs(X, names=("X",))
        X_test = np.zeros((0, X.shape[1]))
    else:
        X, X_test = check_inputs(X, X_test, names=("X", "X_test"))
    if spec.d_out != 1:
        raise ValueError(f"training needs a scalar output (spec.d_out == 1), got d_out={spec.d_out}")
    y = np.asarray(y, dtype=float)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (len(X),) or not np.all(np.isfinite(y)):
        raise ValueError(f"y must be {len(X)} finite targets (shape (N,) or (N, 1)), got shape {y.shape}")
    for name, value in (("lr", lr), ("dt", dt)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    return X, y, X_test


def _split_rate(lr, m: int) -> tuple[float, np.ndarray | None]:
    """``(rate, None)`` for one rate; ``(1.0, rates)`` for one rate per network (M,), which
    then scale each network's cotangent (the gradient is linear in it)."""
    if np.ndim(lr) != 1:
        return lr, None
    rates = np.asarray(lr, dtype=float)
    if rates.shape != (m,) or not np.all(np.isfinite(rates) & (rates >= 0)):
        raise ValueError(f"lr must be a finite number > 0, or {m} numbers >= 0 (one per network; 0 freezes a "
                         f"network), got shape {rates.shape}")
    return 1.0, rates


def _record_steps(record, steps: int) -> np.ndarray:
    rec = np.arange(steps + 1) if record is None else np.unique(np.asarray(record))
    if rec.ndim != 1 or rec.size == 0 or not np.issubdtype(rec.dtype, np.integer) or rec[0] < 0 or rec[-1] > steps:
        raise ValueError(f"record must be integer steps in [0, {steps}], got {record!r}")
    return rec


def epoch_orders(n_inputs: int, batch_size: int, steps: int, seed, start: int, stop: int) -> np.ndarray:
    """(stop - start, epochs, n_inputs) per-epoch orders of the training inputs for
    mini-batch SGD of networks ``start .. stop-1``: network i permutes from
    ``seeding.child(seed, i)``, so its batches do not depend on chunking.  Step k
    takes inputs ``orders[:, e, b*B:(b+1)*B]`` with ``e, b = divmod(k, N/B)``."""
    _check_batch_size(batch_size, n_inputs)
    epochs = max(1, -(-steps // (n_inputs // batch_size)))
    return np.stack([np.stack([rng.permutation(n_inputs) for _ in range(epochs)])
                     for rng in network_rngs(seed, start, stop)]).reshape(stop - start, epochs, n_inputs)


def _check_batch_size(batch_size, n_inputs: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= n_inputs or n_inputs % batch_size:
        raise ValueError(f"batch_size must be an integer dividing the {n_inputs} training inputs, got {batch_size!r}")


def batch_mask(orders: np.ndarray, batch_size: int, k: int) -> np.ndarray:
    """(M, N) 1.0 on the inputs of each network's batch at step k, else 0.0."""
    epoch, b = divmod(k, orders.shape[2] // batch_size)
    mask = np.zeros((len(orders), orders.shape[2]))
    np.put_along_axis(mask, orders[:, epoch, b * batch_size:(b + 1) * batch_size], 1.0, axis=1)
    return mask


def _sq_norms(spec: MLP, params: DenseParams, d_in: int, other: DenseParams | None = None) -> np.ndarray:
    """Per-layer ``|theta^l - other^l|^2`` (M, L+1); biases only where c_l != 0."""
    out = []
    for l, (W, b, (_, c, _, _)) in enumerate(zip(params.weights, params.biases, spec.layer_scales(d_in))):
        sq = _row_sq(W, None if other is None else other.weights[l])
        if c != 0:
            sq = sq + _row_sq(b, None if other is None else other.biases[l])
        out.append(sq)
    return np.stack(out, axis=-1)


#: Elements per slice of :func:`_row_sq` (256 KiB of float64: its work buffer stays in cache).
SQ_BLOCK = 32 * 1024


def _row_sq(a: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """Each network's sum of squares of ``a`` (or of ``a - other``) without an
    array-sized temporary: through one buffer of :data:`SQ_BLOCK` elements, filled
    with whole networks when they fit (each summed by numpy's pairwise summation),
    else with consecutive slices of one network (each slice pairwise, the slices in
    order).  The same numbers however many networks ``a`` holds (einsum and BLAS
    dot are not)."""
    a = a.reshape(len(a), -1)
    other = None if other is None else other.reshape(a.shape)
    m, n = a.shape
    rows, cols = max(1, SQ_BLOCK // max(n, 1)), min(n, SQ_BLOCK)
    buf = np.empty((min(rows, m), cols), dtype=a.dtype)
    out = np.zeros(m, dtype=a.dtype)
    for i in range(0, m, rows):
        for s in range(0, n, cols):
            part = buf[:min(rows, m - i), :min(cols, n - s)]
            block = a[i:i + rows, s:s + cols]
            if other is None:
                np.multiply(block, block, out=part)
            else:
                np.subtract(block, other[i:i + rows, s:s + cols], out=part)
                np.multiply(part, part, out=part)
            out[i:i + rows] += part.sum(axis=1)
    return out


def _loss_step(f: np.ndarray, y: np.ndarray, n: int, limit, blowup: float, alive: np.ndarray):
    """Residuals on the training inputs, the loss per network, and the divergence limit (fixed
    at the first step: ``blowup`` x max(initial loss, mean y^2)); networks past it or with a
    non-finite loss are marked dead in ``alive`` (in place)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = f[:, :n] - y
        loss_k = 0.5 * _row_sq(r) / n
    if limit is None:
        limit = blowup * np.maximum(loss_k, np.mean(y * y))
    alive &= np.isfinite(loss_k) & (loss_k <= limit)
    return r, loss_k, limit


def _gd_step(spec: MLP, params: DenseParams, X: np.ndarray, pre: list[np.ndarray], posts: list[np.ndarray],
             cotangent: np.ndarray, step: float, readout_only: bool, out: DenseParams | None = None) -> None:
    """``out <- out - step * grad`` of ``sum_i cotangent_i f(x_i)`` at ``params``
    (``out`` defaults to ``params``: an in-place GD step); ``pre`` and ``posts`` are
    the pre- and post-activations of :func:`ntkcheck.networks.forward` on X."""
    out = params if out is None else out
    scales = spec.layer_scales(X.shape[1])
    first = len(pre) if readout_only else 0
    gs = [spec.output_scale * cotangent] if readout_only else backward(spec, params, pre, cotangent)
    posts = [X[None]] + list(posts)
    for l, g in zip(range(first, len(scales)), gs):
        a, c, _, _ = scales[l]
        W, x = out.weights[l], posts[l]
        for i in range(len(W)):
            # W_i^T += (-step a) x_i^T g_i, in place (F-ordered views: no copies)
            dgemm(-step * a, x[min(i, len(x) - 1)].T, g[i].T, beta=1.0, c=W[i].T, trans_b=1, overwrite_c=1)
        if c != 0:
            out.biases[l][...] -= (step * c) * g.sum(axis=1)


def _check_orders(batch_size, orders, m: int, n: int, steps: int) -> np.ndarray | None:
    if batch_size is None and orders is None:
        return None
    if batch_size is None or orders is None:
        raise ValueError("batch_size and orders go together (orders from epoch_orders)")
    _check_batch_size(batch_size, n)
    epochs = -(-steps // (n // batch_size))
    orders = np.asarray(orders)
    if orders.ndim != 3 or orders.shape[0] != m or orders.shape[1] < epochs or orders.shape[2] != n \
            or not np.array_equal(np.sort(orders, axis=2), np.broadcast_to(np.arange(n), orders.shape)):
        raise ValueError(f"orders must be ({m}, >= {epochs}, {n}) permutations of the training inputs "
                         f"(epoch_orders), got shape {orders.shape}")
    return orders


def _check_threads(threads) -> int:
    if threads is None:
        return blas.threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


def train_params(spec: MLP, params: DenseParams, X, y, lr: float | np.ndarray, steps: int, *, X_test=None,
                 record=None, readout_only: bool = False, centered: bool = False,
                 record_ntk: bool = False, dt: float = 1.0, blowup: float = 1e6,
                 track_weights: bool = True, threads: int | None = None, batch_size: int | None = None,
                 orders: np.ndarray | None = None) -> Trajectory:
    """Gradient descent on the MSE loss from ``params`` (updated in place).

    ``steps`` steps of ``theta <- theta - dt * lr * grad L`` (``lr`` one rate, or one per
    network, shape (M,), 0 for a network to stay put); ``record`` lists the
    steps (0..steps, default all) at which outputs, kernels and weight changes
    are kept; the loss is kept at every step.  ``readout_only`` trains the last
    layer only (then Theta_hat is the readout kernel).  ``centered`` trains
    ``f(theta) - f(theta_0)``.  A network whose loss exceeds ``blowup`` times
    max(initial loss, mean y^2), or is not finite, stops training and is marked
    diverged.  ``track_weights=False`` skips the weight-change records (NaN) and
    the copy of the initial weights they need (half the memory).  ``batch_size``
    makes it mini-batch SGD (module docstring) through ``orders`` (M, epochs, N),
    the networks' epoch orders from :func:`epoch_orders`; each step still passes
    all N inputs forward (the loss on all of them is recorded at every step), so
    an SGD step costs what a GD step costs.

    The networks train in groups of about :data:`GROUP_BYTES` working memory,
    each group all its steps at once (its weights stay in the CPU caches through
    forward pass, back-propagation and update), on ``threads`` Python threads
    (default: as many as BLAS may use) with BLAS single-threaded
    (:mod:`ntkcheck.blas`).  Every network's arithmetic is the same whatever the
    grouping and the thread count, so are the results.
    """
    lr, rates = _split_rate(lr, params.n_networks)
    X, y, X_test = _check_run(spec, X, y, X_test, lr, steps, dt)
    rec = _record_steps(record, steps)
    threads = _check_threads(threads)
    orders = _check_orders(batch_size, orders, params.n_networks, len(X), steps)
    dtype = params.weights[0].dtype
    if dtype != np.float64:
        raise ValueError(f"training runs in float64 (fused BLAS dgemm updates), got {dtype} parameters")
    X = X.astype(dtype)
    X_all = np.concatenate([X, X_test.astype(dtype)])
    m, d_in, n_all = params.n_networks, X.shape[1], len(X_all)
    out = Trajectory(steps=rec, times=rec * dt, y=y, f_train=None, f_test=None,
                     loss=np.full((m, steps + 1), np.inf), ntk=np.full((m, len(rec), n_all, n_all), np.nan)
                     if record_ntk else None, dtheta_sq=np.full((m, len(rec), len(spec.widths) + 1), np.nan),
                     theta0_sq=np.full((m, len(spec.widths) + 1), np.nan), diverged=np.zeros(m, dtype=bool),
                     lr=float(lr) if rates is None else rates, dt=float(dt))
    f_rec = np.full((m, len(rec), n_all), np.nan)
    size = max(1, GROUP_BYTES // train_bytes_per_network(spec, d_in, n_all, track_weights=False))
    groups = [slice(s, min(m, s + size)) for s in range(0, m, size)]
    # theta_0 copies, handed from one group to the next: fresh memory costs a page fault
    # per 4 KiB, more than the copy itself
    spares = queue.SimpleQueue()
    run = partial(_train_group, spec, params, X, X_all, y, rec, lr * dt, readout_only, centered, blowup,
                  track_weights, out, f_rec, spares, batch_size, orders, rates)
    with blas.single_threaded():
        if min(threads, len(groups)) > 1:
            with ThreadPoolExecutor(min(threads, len(groups))) as pool:
                list(pool.map(run, groups))
        else:
            for group in groups:
                run(group)
    n = len(X)
    return replace(out, f_train=f_rec[..., :n], f_test=f_rec[..., n:])


def _train_group(spec: MLP, params: DenseParams, X, X_all, y, rec, step: float, readout_only: bool,
                 centered: bool, blowup: float, track_weights: bool, out: Trajectory, f_rec: np.ndarray,
                 spares: queue.SimpleQueue, batch_size: int | None, orders: np.ndarray | None,
                 rates: np.ndarray | None, group: slice) -> None:
    """Train networks ``group`` of ``params`` (in place) and write their records
    into ``out``'s arrays and ``f_rec`` (rows ``group``); the copy of the initial
    weights goes into a spare from ``spares`` (given back at the end) if there is one."""
    params = DenseParams(tuple(W[group] for W in params.weights), tuple(b[group] for b in params.biases))
    f_rec, loss, dsq, diverged = f_rec[group], out.loss[group], out.dtheta_sq[group], out.diverged[group]
    ntk_rec = None if out.ntk is None else out.ntk[group]
    out.theta0_sq[group] = _sq_norms(spec, params, X.shape[1])
    spare = theta0 = None
    if track_weights:
        m = params.n_networks
        try:
            spare = spares.get_nowait()
        except queue.Empty:
            pass
        if spare is None or spare.n_networks < m:
            spare = DenseParams(tuple(np.empty_like(W) for W in params.weights),
                                tuple(np.empty_like(b) for b in params.biases))
        theta0 = DenseParams(tuple(W[:m] for W in spare.weights), tuple(b[:m] for b in spare.biases))
        for a, a0 in zip(params.weights + params.biases, theta0.weights + theta0.biases):
            np.copyto(a0, a)
    try:
        _train_steps(spec, params, X, X_all, y, rec, step, readout_only, centered, blowup, theta0, f_rec, loss,
                     dsq, ntk_rec, diverged, batch_size, None if orders is None else orders[group],
                     None if rates is None else rates[group])
    finally:
        if spare is not None:
            spares.put(spare)


def _train_steps(spec: MLP, params: DenseParams, X, X_all, y, rec, step: float, readout_only: bool,
                 centered: bool, blowup: float, theta0: DenseParams | None, f_rec, loss, dsq, ntk_rec,
                 diverged, batch_size: int | None = None, orders: np.ndarray | None = None,
                 rates: np.ndarray | None = None) -> None:
    """The steps of :func:`_train_group` (weight changes against ``theta0`` unless None;
    mini-batches of ``batch_size`` from ``orders`` unless None; each network's step
    times ``rates`` unless None)."""
    n, d_in, steps = len(X), X.shape[1], loss.shape[1] - 1
    f0 = forward(spec, params, X_all)[0][..., 0] if centered else 0.0
    alive = np.ones(params.n_networks, dtype=bool)
    limit = None
    j = 0  # next record
    for k in range(steps + 1):
        recording = k == rec[j] if j < len(rec) else False
        f, pre, posts = forward(spec, params, X_all if recording else X, keep_posts=True)
        f = f[..., 0]
        if centered:
            f = f - f0[:, :f.shape[1]]
        r, loss_k, limit = _loss_step(f, y, n, limit, blowup, alive)
        loss[alive, k] = loss_k[alive]
        if recording:
            f_rec[alive, j] = f[alive]
            if theta0 is not None:
                # before the first step theta is theta_0: its change is exactly 0
                dsq[alive, j] = 0.0 if k == 0 else _sq_norms(spec, params, d_in, theta0)[alive]
            if ntk_rec is not None:
                ntk_rec[alive, j] = empirical_ntk_from(spec, params, X_all, pre, readout_only, posts)[alive]
            j += 1
        if k == steps:
            break
        if recording:
            pre, posts = [h[:, :n] for h in pre], [x[:, :n] for x in posts]
        # diverged networks get a zero cotangent: frozen at their last finite weights
        cot = np.where(alive[:, None], r, 0.0)
        if orders is not None:     # inputs outside the batch: zero cotangent
            cot *= batch_mask(orders, batch_size, k)
        cot = cot[..., None] / n if rates is None else cot[..., None] * (rates / n)[:, None, None]
        _gd_step(spec, params, X, pre, posts, cot, step, readout_only)
    diverged[...] = ~alive


def gradient_descent(spec: MLP, X, y, lr: float, steps: int, *, n_networks: int = 1, seed=0,
                     X_test=None, record=None, readout_only: bool = False, centered: bool = False,
                     record_ntk: bool = False, dt: float = 1.0, blowup: float = 1e6,
                     track_weights: bool = True, max_bytes: int = MAX_BYTES,
                     threads: int | None = None, batch_size: int | None = None) -> Trajectory:
    """Train ``n_networks`` networks initialised by :func:`ntkcheck.networks.init_params`
    (network i from seed child i) with :func:`train_params`, in chunks of
    networks whose memory (:func:`train_bytes_per_network`) stays under
    ``max_bytes``; ``threads`` as in :func:`train_params`.  Results do not depend on the
    chunking nor on the threads.  ``batch_size`` (dividing N) trains by mini-batch SGD,
    network i's epoch orders from ``seeding.child(seed, 1, i)`` (:func:`epoch_orders`;
    its weights come from ``child(seed, i)``).  ``spec`` may also be a :mod:`ntkcheck.stax` network
    (:func:`stax_gradient_descent`; not ``readout_only`` nor ``batch_size``)."""
    if isinstance(spec, stax.Layer):
        if readout_only or batch_size is not None:
            raise ValueError("readout_only and mini-batch (batch_size) training are for MLPs only")
        return stax_gradient_descent(spec, X, y, lr, steps, n_networks=n_networks, seed=seed, X_test=X_test,
                                     record=record, centered=centered, record_ntk=record_ntk, dt=dt,
                                     blowup=blowup, track_weights=track_weights, max_bytes=max_bytes)
    X, _, X_all_test = _check_run(spec, X, y, X_test, lr, steps, dt)
    if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 1:
        raise ValueError(f"n_networks must be a positive integer, got {n_networks!r}")
    n_rec = len(_record_steps(record, steps))
    per = train_bytes_per_network(spec, X.shape[1], len(X) + len(X_all_test), record_ntk, n_rec, track_weights)
    chunk = max(1, int(max_bytes // per))
    parts = []
    for start in range(0, n_networks, chunk):
        stop = min(n_networks, start + chunk)
        params = init_params(spec, X.shape[1], seed, start, stop)
        orders = None if batch_size is None else epoch_orders(len(X), batch_size, steps, child(seed, 1), start, stop)
        parts.append(train_params(spec, params, X, y, lr, steps, X_test=X_test, record=record,
                                  readout_only=readout_only, centered=centered, record_ntk=record_ntk,
                                  dt=dt, blowup=blowup, track_weights=track_weights, threads=threads,
                                  batch_size=batch_size, orders=orders))
    return _concat(parts)


def _concat(parts: list[Trajectory]) -> Trajectory:
    first = parts[0]
    cat = lambda name: None if getattr(first, name) is None else np.concatenate([getattr(p, name) for p in parts])
    return Trajectory(steps=first.steps, times=first.times, y=first.y, f_train=cat("f_train"),
                      f_test=cat("f_test"), loss=cat("loss"), ntk=cat("ntk"), dtheta_sq=cat("dtheta_sq"),
                      theta0_sq=cat("theta0_sq"), diverged=cat("diverged"), lr=first.lr, dt=first.dt,
                      step_error=cat("step_error"))


def gradient_flow(spec: MLP, X, y, lr: float, t_max: float, substeps: int, *, record=None,
                  n_networks: int = 1, seed=0, **kwargs) -> Trajectory:
    """Gradient flow up to time ``t_max`` (in GD steps) by GD with step
    ``dt = 1/substeps``, with a stated step-size error.

    ``record`` are flow times (multiples of dt, default every unit of time).
    Euler's global error is first order, ``f_dt = f + C dt + O(dt^2)``, so the
    run at ``dt/2`` is also made and ``step_error = 2 max_x |f_dt - f_dt/2|``
    (over train and test inputs, per network and time) is the stated error of
    the returned ``dt`` run against the exact flow, up to a relative O(dt)
    (Richardson extrapolation; Hairer, Norsett & Wanner, *Solving ODEs I*,
    sec. II.4).
    """
    if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    times = np.arange(int(np.floor(t_max)) + 1, dtype=float) if record is None else np.asarray(record, dtype=float)
    if times.ndim != 1 or times.size == 0 or times.min() < 0 or times.max() > t_max:
        raise ValueError(f"record must be flow times in [0, t_max={t_max}], got {record!r}")
    runs = []
    for sub in (substeps, 2 * substeps):
        k = np.rint(times * sub)
        if np.any(np.abs(k - times * sub) > 1e-9 * max(1.0, t_max * sub)):
            raise ValueError(f"record times must be multiples of 1/substeps = {1 / substeps}")
        runs.append(gradient_descent(spec, X, y, lr, int(round(t_max * sub)), n_networks=n_networks,
                                     seed=seed, record=k.astype(int), dt=1.0 / sub, **kwargs))
    coarse, fine = runs
    diff = np.concatenate([coarse.f_train - fine.f_train, coarse.f_test - fine.f_test], axis=-1)
    err = np.abs(diff).max(axis=-1)
    return replace(coarse, step_error=2.0 * err)


def gradient_flow_ode(spec: MLP, params: DenseParams, X, y, lr: float, times, *, X_test=None,
                      readout_only: bool = False, centered: bool = False,
                      rtol: float = 1e-10, atol: float = 1e-12) -> Trajectory:
    """Gradient flow ``d theta/dt = -lr grad L`` by ``scipy.integrate.solve_ivp``
    (DOP853, an 8th-order Runge-Kutta) for small networks: outputs and loss at
    ``times``.  The parameters of all M networks form one state vector, so keep
    M * (number of parameters) small.  ``params`` is not modified.  The loss
    is recorded only at ``times`` (shape (M, T)), ``steps`` are the indices of
    ``times``, and ``dt`` is 0 (adaptive)."""
    times = np.asarray(times, dtype=float)
    X, y, X_test = _check_run(spec, X, y, X_test, lr, 0, 1.0)
    if times.ndim != 1 or times.size == 0 or times.min() < 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"times must be increasing and >= 0, got {times!r}")
    n, d_in = len(X), X.shape[1]
    X_all = np.concatenate([X, X_test])
    arrays = list(params.weights) + list(params.biases)
    sizes = [a.size for a in arrays]
    split = np.cumsum(sizes)[:-1]
    f0 = forward(spec, params, X_all)[0][..., 0] if centered else 0.0

    def unflatten(z):
        parts = [p.reshape(a.shape) for p, a in zip(np.split(z, split), arrays)]
        return DenseParams(tuple(parts[:len(params.weights)]), tuple(parts[len(params.weights):]))

    def rhs(_, z):
        p = unflatten(z)
        f, pre, posts = forward(spec, p, X, keep_posts=True)
        r = (f[..., 0] - (f0[:, :n] if centered else 0.0) - y)[..., None] / n
        velocity = np.zeros_like(z)
        _gd_step(spec, p, X, pre, posts, r, lr, readout_only, out=unflatten(velocity))
        return velocity

    z0 = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    sol = solve_ivp(rhs, (0.0, float(times[-1])), z0, method="DOP853", t_eval=times, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    m, T = params.n_networks, len(times)
    f_rec = np.empty((m, T, len(X_all)))
    dsq = np.empty((m, T, len(spec.widths) + 1))
    for j in range(T):
        p = unflatten(sol.y[:, j])
        f_rec[:, j] = forward(spec, p, X_all)[0][..., 0] - f0
        dsq[:, j] = _sq_norms(spec, p, d_in, params)
    r = f_rec[..., :n] - y
    return Trajectory(steps=np.arange(T), times=times, y=y, f_train=f_rec[..., :n], f_test=f_rec[..., n:],
                      loss=0.5 * np.einsum("mti,mti->mt", r, r) / n, ntk=None, dtheta_sq=dsq,
                      theta0_sq=_sq_norms(spec, params, d_in), diverged=np.zeros(m, dtype=bool),
                      lr=float(lr), dt=0.0)


# --- stax networks ----------------------------------------------------------

#: A stand-in with a scalar output, so stax runs are validated exactly as MLP runs are.
_SCALAR_OUT = MLP(depth=1, width=1)


def stax_gradient_descent(net, X, y, lr: float, steps: int, *, n_networks: int = 1, seed=0,
                          X_test=None, record=None, centered: bool = False, record_ntk: bool = False,
                          dt: float = 1.0, blowup: float = 1e6, track_weights: bool = True,
                          max_bytes: int = MAX_BYTES) -> Trajectory:
    """:func:`gradient_descent` for a network of :mod:`ntkcheck.stax` layers with a scalar
    output: inputs (N, d), (N, W, C) or (N, H, W, C); the same loss, time, rate, divergence
    and record conventions (network i from seed child i, :func:`ntkcheck.stax.init_params`,
    so a serial of Dense layers starts from the equivalent MLP's weights).

    Every affine layer ``h = a W x + c b`` (a conv is a dense layer on patches) gets
    ``dL/dW = a sum_{i,p} g_{ip} x_{ip}^T`` and ``dL/db = c sum_{i,p} g_{ip}`` from the
    backward signal g of cotangent r/N, summed over inputs i and positions p (the weights
    are shared over positions).  ``dtheta_sq`` and ``theta0_sq`` have one column per affine
    layer in network order; the empirical NTK is :func:`ntkcheck.stax.outputs_and_ntk`'s
    layerwise formula.  The networks of a chunk (memory under ``max_bytes``) train as one batch."""
    X, y, X_test = _check_stax_run(net, X, y, X_test, lr, steps, dt)
    if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 1:
        raise ValueError(f"n_networks must be a positive integer, got {n_networks!r}")
    rec = _record_steps(record, steps)
    n_all = len(X) + len(X_test)
    per = stax.bytes_per_network(net, X.shape[1:], n_all) * (1 + track_weights)
    per += 8 * (len(rec) + 2) * n_all**2 if record_ntk else 0
    chunk = max(1, int(max_bytes // per))
    parts = []
    with blas.single_threaded():     # small matmuls: BLAS threads cost more than they bring
        for start in range(0, n_networks, chunk):
            params = stax.init_params(net, X.shape[1:], seed, start, min(n_networks, start + chunk))
            parts.append(_stax_train(net, params, X, y, X_test, lr * dt, steps, rec, centered, record_ntk,
                                     blowup, track_weights, float(lr), float(dt)))
    return _concat(parts)


def stax_train_params(net, params, X, y, lr: float | np.ndarray, steps: int, *, record=None,
                      batch_size: int | None = None, orders: np.ndarray | None = None,
                      track_weights: bool = True, blowup: float = 1e6) -> Trajectory:
    """:func:`train_params` for a stax network: train ``params`` (from
    :func:`ntkcheck.stax.init_params`) in place by GD, or by mini-batch SGD through
    ``batch_size`` and ``orders``; ``lr`` one rate or one per network (0 freezes one)."""
    m = len(next(_affine_layers(net, params))[1].W)
    lr, rates = _split_rate(lr, m)
    X, y, _ = _check_stax_run(net, X, y, None, lr, steps, 1.0)
    orders = _check_orders(batch_size, orders, m, len(X), steps)
    with blas.single_threaded():
        return _stax_train(net, params, X, y, np.zeros((0,) + X.shape[1:]), float(lr), steps,
                           _record_steps(record, steps), False, False, blowup, track_weights,
                           float(lr) if rates is None else rates, 1.0, rates, batch_size, orders)


def affine_weights(net, params) -> list[np.ndarray]:
    """The weights (M, out, in) of every Dense and Conv layer of a stax network, in network order."""
    return [p.W for _, p in _affine_layers(net, params)]


def _check_stax_run(net, X, y, X_test, lr, steps, dt):
    if not isinstance(net, stax.Layer):
        raise ValueError(f"net must be a stax network, got {type(net).__name__} {net!r:.40}")
    for layer in stax.layers(net):
        if layer.affine and not isinstance(layer, (stax.Dense, stax.Conv)):
            raise ValueError(f"net: training updates the parameters of Dense and Conv layers only, got {layer!r}")
    X = np.asarray(X, dtype=float)
    X_test = np.zeros((0,) + X.shape[1:]) if X_test is None else np.asarray(X_test, dtype=float)
    if X.ndim < 2 or X_test.shape[1:] != X.shape[1:]:
        raise ValueError(f"X and X_test must be (N, d), (N, W, C) or (N, H, W, C) with the same shape per "
                         f"input, got {X.shape} and {X_test.shape}")
    out = stax.output_shape(net, X.shape[1:])
    if out != (1,):
        raise ValueError(f"training needs a scalar output, got output shape {out}")
    flat = lambda A: A.reshape(len(A), -1)  # noqa: E731
    X2, y, T2 = _check_run(_SCALAR_OUT, flat(X), y, flat(X_test) if len(X_test) else None, lr, steps, dt)
    return X2.reshape(X.shape), y, T2.reshape(X_test.shape)


def _affine_layers(net, params):
    """(layer, params) of every Dense and Conv layer, in network order."""
    if isinstance(net, (stax.Serial, stax.Parallel)):
        for layer, p in zip(net.layers, params):
            yield from _affine_layers(layer, p)
    elif isinstance(net, (stax.Dense, stax.Conv)):
        yield net, params


def _affine_sq(layer, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) ``|W|^2 + |b|^2`` of one affine layer's parameters (or their change); the bias only where c != 0."""
    sq = _row_sq(W)
    return sq + _row_sq(b) if stax._scales(layer, W.shape[2])[1] != 0 else sq


def _stax_grads(layer, params, cache, g, grads: dict, need_input: bool = True):
    """Back-propagate cotangents g (M, 1, N, *out_shape) through ``layer``; every affine
    layer's (dW, db) goes into ``grads`` under ``id`` of its parameters.  The input's
    cotangent is returned when ``need_input`` (the network's first layer does not need it)."""
    if isinstance(layer, stax.Serial):
        last = len(layer.layers) - 1
        for i in range(last, -1, -1):
            g = _stax_grads(layer.layers[i], params[i], cache[i], g, grads, need_input or i > 0)
        return g
    if isinstance(layer, stax.Parallel):
        return tuple(_stax_grads(sub, p, c, gi, grads, need_input)
                     for sub, p, c, gi in zip(layer.layers, params, cache, g))
    if not isinstance(layer, (stax.Dense, stax.Conv)):
        return layer.backward(params, cache, g)[0]
    x, shape = (cache, None) if isinstance(layer, stax.Dense) else cache
    W = params.W
    a, c, _, _ = stax._scales(layer, x.shape[-1])
    G = g.reshape(len(W), -1, W.shape[1])
    dW = np.matmul(G.transpose(0, 2, 1), x.reshape(x.shape[0], -1, x.shape[-1]))
    dW *= a
    grads[id(params)] = (dW, c * G.sum(axis=1) if c != 0 else None)
    if not need_input:
        return None
    g_in = np.matmul(G, W)
    g_in *= a
    g_in = g_in.reshape(g.shape[:-1] + (W.shape[2],))
    if shape is None:
        return g_in
    g_in = g_in.reshape(g_in.shape[:-1] + layer.filter_shape + shape[-1:])
    return stax._patches_adjoint(g_in, layer._maps(shape))


def _stax_train(net, params, X, y, X_test, step: float, steps: int, rec, centered: bool, record_ntk: bool,
                blowup: float, track_weights: bool, lr, dt: float, rates: np.ndarray | None = None,
                batch_size: int | None = None, orders: np.ndarray | None = None) -> Trajectory:
    """Train the networks of ``params`` (in place) as :func:`_train_group` trains dense ones
    (each network's step times ``rates`` unless None; mini-batches from ``orders`` unless None)."""
    X_all = np.concatenate([X, X_test])
    affine = list(_affine_layers(net, params))
    n, n_all, m = len(X), len(X_all), len(affine[0][1].W)
    theta0 = [(p.W.copy(), p.b.copy()) for _, p in affine] if track_weights else None
    theta0_sq = np.stack([_affine_sq(layer, p.W, p.b) for layer, p in affine], axis=-1)
    loss = np.full((m, steps + 1), np.inf)
    f_rec = np.full((m, len(rec), n_all), np.nan)
    ntk_rec = np.full((m, len(rec), n_all, n_all), np.nan) if record_ntk else None
    dsq = np.full((m, len(rec), len(affine)), np.nan)
    f0 = net.forward(params, X_all[None])[0][..., 0] if centered else np.zeros((m, n_all))
    alive = np.ones(m, dtype=bool)
    limit = None
    j = 0
    for k in range(steps + 1):
        recording = j < len(rec) and k == rec[j]
        # at a record step one pass over train and test inputs serves the records and the step
        f_all, cache = net.forward(params, (X_all if recording else X)[None])
        f_all = f_all[..., 0] - f0[:, :f_all.shape[1]]
        r, loss_k, limit = _loss_step(f_all, y, n, limit, blowup, alive)
        loss[alive, k] = loss_k[alive]
        if recording:
            f_rec[alive, j] = f_all[alive]
            if record_ntk:    # the layerwise formula of stax.outputs_and_ntk on this pass's cache
                unit = np.ones((m, 1, n_all, 1))
                ntk_rec[alive, j] = net.backward(params, cache, unit)[1][alive]
            if track_weights:
                dsq[alive, j] = np.stack([_affine_sq(layer, p.W - W0, p.b - b0)
                                          for (layer, p), (W0, b0) in zip(affine, theta0)], axis=-1)[alive]
            j += 1
        if k == steps:
            break
        # diverged networks get a zero cotangent: frozen at their last finite weights
        cot = np.zeros((m, 1, f_all.shape[1], 1))
        cot[:, 0, :n, 0] = np.where(alive[:, None], r, 0.0) / n     # test inputs (if any): zero
        if rates is not None:
            cot[:, 0, :n, 0] *= rates[:, None]
        if orders is not None:     # inputs outside the batch: zero cotangent
            cot[:, 0, :n, 0] *= batch_mask(orders, batch_size, k)
        grads: dict = {}
        _stax_grads(net, params, cache, cot, grads, need_input=False)
        for layer, p in affine:
            dW, db = grads[id(p)]
            p.W[...] -= step * dW
            if db is not None:
                p.b[...] -= step * db
    return Trajectory(steps=rec, times=rec * dt, y=y, f_train=f_rec[..., :n], f_test=f_rec[..., n:], loss=loss,
                      ntk=ntk_rec, dtheta_sq=dsq, theta0_sq=theta0_sq, diverged=~alive, lr=lr, dt=dt)
