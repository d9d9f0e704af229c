"""Random networks at initialization on N inputs: outputs, empirical NTK and
layer Grams, either with real dense weights or by an exact conditional sampler
that never forms a weight matrix.

The exact sampler (``method="exact"``) draws the joint law of
``(f(X), Theta_hat(X, X), Grams)`` in O(L n N^2) time and O(n N) memory per
network.  For a hidden layer ``h = a W x + c b`` acting on post-activations
``x`` (n_in x N, columns = inputs) with i.i.d. N(0, s_w^2) weights:

* **Forward.**  Write ``x = Q R`` (Householder QR, Q with K = min(n_in, N)
  orthonormal columns, also when x is rank deficient).  ``A = W Q`` is an
  n_out x K matrix of i.i.d. N(0, s_w^2) entries, and ``W x = A R``.
* **Backward.**  Given ``A``, ``W = A Q^T + W' (I - Q Q^T)`` with ``W'``
  independent of everything drawn so far: ``W = W Q Q^T + W (I - Q Q^T)`` and,
  each row of W being N(0, s_w^2 I), its projections on the orthogonal spaces
  span(Q) and span(Q)^perp are independent (the Gaussian conditioning trick of
  Bayati & Montanari 2011 and Yang 2019, "Tensor Programs I", arXiv:1902.04760).
  For back-propagated vectors ``delta`` (n_out x P)
  ``delta^T W = (delta^T A) Q^T + delta^T W' (I - Q Q^T)`` and, given delta,
  ``delta^T W' = L C`` in law with ``C`` a fresh P x n_in Gaussian matrix and
  ``L L^T = delta^T delta`` (any square root; an eigen-factorization, robust to
  rank deficiency).
* The first layer acts on the fixed inputs: ``X W^T = F A`` with
  ``F F^T = X X^T``; the readout vector is drawn directly.

The empirical NTK then follows from the layerwise formula of
:mod:`ntkcheck.networks` (Jacot et al. 2018, proof of Thm 1):
``Theta_hat = sum_l <delta^l, delta^l'> (a_l^2 <x^{l-1}, x^{l-1}'> + c_l^2)``.

**Conv networks.**  A conv layer acts on (input, position) pairs as the dense layer
acts on inputs: its channel rows of W are i.i.d. N(0, s_w^2 I) over the fan-in
(taps x channels), so the steps above apply with x replaced by the patch matrix
(rows = (input, position) pairs; Dense is one tap) and delta's rows indexed by
(output, input, position).  Given the previous post-activations each output
channel's pre-activations over (input, position) are jointly Gaussian with
covariance ``a^2 s_w^2`` times the patch Gram (``+ c^2 s_b^2``), independent across
channels.  Pooling, GlobalAvgPool and Flatten are fixed linear maps and
nonlinearities are elementwise, so they run their own forward and backward passes
(:func:`_exact_stax_chunk`).  Branches (residual sums) are refused.

Which path runs is the network's own answer: a network of Dense layers with one
nonlinearity between each two (:func:`ntkcheck.networks.flat_network`; every MLP)
takes the dense-chain paths, any other stax network the layer-by-layer ones.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import TYPE_CHECKING, Callable

import numpy as np
from scipy.linalg import lapack

from . import blas, stax
from .display import short_repr
from .kernels import network, refuse_overflow
from .networks import MAX_BYTES, WEIGHT_LAWS, _gram, empirical_ntk_from, flat, flat_network, forward, init_params
from .resources import check_sample, die_with_parent
from .seeding import network_rngs

if TYPE_CHECKING:
    from .spec import MLP

METHODS = ("exact", "dense")
#: Working-memory target of one chunk of networks: chunks that stay in the
#: CPU caches avoid page faults on fresh arrays (width 900, N = 16, depth 3: 1.5 ms
#: per network with 8 MB chunks, 2.8 ms with 2 GB chunks).
CHUNK_BYTES = 8 * 1024**2
#: The same target for stax networks in the dense sampler: each of their layers costs ~0.1 ms
#: of Python per call whatever the number of networks, which at small widths outweighs the
#: cache (transformer of width 64 on 8 sequences of length 8, ~8 MB per network: ~9 ms of CPU
#: per network one at a time, ~6 ms fifteen at a time).
STAX_CHUNK_BYTES = 128 * 1024**2
#: Working memory of the networks of one task when ``jobs > 1`` (~1.4 s of work at width
#: 900, N = 16, depth 3): more than one task pays for starting the processes (~1 s each).
#: Fixed, so the work split does not depend on jobs.
BLOCK_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class InitSample:
    """M random networks at initialization evaluated on the N rows of X.

    Attributes
    ----------
    f : ndarray
        Outputs, (M, N) when ``spec.d_out == 1`` and (M, N, d_out) otherwise;
        they include ``spec.output_scale``.
    ntk : ndarray
        Each network's empirical NTK Theta_hat(X, X), (M, N, N); for d_out > 1
        the mean over outputs of each output's kernel (as :mod:`ntkcheck.networks`).
    pre_grams : ndarray
        (M, L, N, N): entry ``[:, l-1]`` is ``<h^l(x), h^l(x')> / n_l`` for the
        hidden layers l = 1..L (its large-width limit is
        ``kernel_states(spec, X)[l-1].nngp``).
    post_grams : ndarray
        (M, L, N, N): entry ``[:, l-1]`` is ``<x^l(x), x^l(x')> / n_l`` with
        ``x^l = phi(h^l)``, l = 1..L.
    """

    __repr__ = short_repr   # no array dumps in notebooks

    f: np.ndarray
    ntk: np.ndarray
    pre_grams: np.ndarray
    post_grams: np.ndarray

    @property
    def n_networks(self) -> int:
        return self.ntk.shape[0]


def sample_init(spec: MLP | stax.Layer, X, n_networks: int, seed=0, method: str = "exact",
                max_bytes: int = MAX_BYTES, jobs: int | None = 1, dtype=np.float64,
                weights: str = "gaussian") -> InitSample:
    """Outputs, empirical NTKs and layer Grams of ``n_networks`` networks at init.

    Parameters
    ----------
    spec : MLP or stax network
        Any :mod:`ntkcheck.stax` network: its ``f`` is (M, N) or (M, N, out) as for an MLP.
        Dense layers with one nonlinearity between each two on inputs (N, d) -- an MLP's
        network -- run the MLP paths and have layer Grams; other networks have none
        (``pre_grams`` and ``post_grams`` are empty, (M, 0, N, N)), and ``method="exact"``
        needs them serial (conv, pooling, flatten; no FanOut/FanInSum: a ValueError says why).
    X : array (N, d), or (N, W, C), (N, H, W, C) for a stax network
    n_networks : int
        M.
    seed : int or SeedSequence
        Network i draws only from ``seeding.child(seed, i)``, so the same seed
        gives identical arrays whatever ``max_bytes`` and ``jobs``.
    method : {"exact", "dense"}
        ``"exact"``: the conditional sampler of this module (exact in
        distribution, O(L n N^2) per network).  ``"dense"``: real weights
        (:func:`ntkcheck.networks.init_params`), O(L n^2) per network.  The two
        give the same law, not the same numbers.
    max_bytes : int
        Networks are processed in chunks whose working memory is estimated to
        stay under this cap (one network at a time if one alone exceeds it);
        the returned arrays come on top.  The exact sampler needs about
        ``exact_bytes_per_network`` bytes per network (~1.3 GB at width 10^6,
        depth 3, N = 8); chunks are also kept under ``CHUNK_BYTES`` (cache).
    jobs : int or None
        Processes (None: ``os.cpu_count()``).  With ``jobs > 1``, blocks of
        networks of ``BLOCK_BYTES`` working memory each are sampled in a pool of
        spawned processes (each uses up to ``max_bytes``) if there are at least
        two, unless the spec does not pickle (a custom activation defined by a
        lambda): then in this process.
    dtype : float64 or float32
        Working precision of ``method="dense"`` (the exact sampler is float64).
    weights : {"gaussian", "rademacher"}
        The weights' law (:data:`ntkcheck.networks.WEIGHT_LAWS`); ``"rademacher"`` needs
        ``method="dense"`` and an MLP's network (Dense layers and nonlinearities).

    Returns
    -------
    InitSample
        ``f`` (M, N) if ``spec.d_out == 1`` else (M, N, d_out), ``ntk``
        (M, N, N), ``pre_grams`` and ``post_grams`` (M, L, N, N).

    Notes
    -----
    Creating one generator per network costs ~10 us; at widths <= 32 that is
    about half of the exact sampler's time, which is still ~30 us per network.
    BLAS runs single-threaded: the exact sampler's matrices are small, and
    threads waiting on each other cost far more than they save (width 900,
    N = 16: 17 ms per network with 2 OpenBLAS threads on a loaded 2-core
    machine, 1.5 ms with one).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}") from None
    if dtype not in (np.float64, np.float32) or (method == "exact" and dtype != np.float64):
        raise ValueError(f"dtype must be float64 (or float32 with method='dense'), got {dtype}")
    if weights not in WEIGHT_LAWS:
        raise ValueError(f"weights must be one of {WEIGHT_LAWS}, got {weights!r}")
    net = network(spec)
    X = spec.check_inputs(X, None, names=("X", "X2"))[0]
    chain = X.ndim == 2 and flat_network(spec, X.shape[1]) is not None
    if weights != "gaussian" and (method != "dense" or not chain):
        raise ValueError(f"weights={weights!r} needs method='dense' and Dense layers with one nonlinearity "
                         "between each two (the exact sampler conditions on Gaussian weights)")
    if chain:
        if method == "exact":
            return _sample(spec, X, n_networks, seed, max_bytes, _exact_chunk, exact_bytes_per_network, jobs)
        return _sample(spec, X, n_networks, seed, max_bytes, partial(_dense_chunk, dtype=dtype, weights=weights),
                       partial(dense_bytes_per_network, itemsize=dtype.itemsize), jobs)
    if method == "exact":
        _exact_layers(net)
        return _sample(spec, X, n_networks, seed, max_bytes, _exact_stax_chunk, stax.bytes_per_network, jobs)
    return _sample(spec, X, n_networks, seed, max_bytes, partial(_stax_dense_chunk, dtype=dtype),
                   partial(stax.bytes_per_network, itemsize=dtype.itemsize), jobs, chunk_bytes=STAX_CHUNK_BYTES)


def sample_dense(spec: MLP | stax.Layer, X, n_networks: int, seed=0, max_bytes: int = MAX_BYTES,
                 dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Outputs ``(M, N, d_out)`` and empirical NTKs ``(M, N, N)`` of M dense networks at
    init (an MLP or a stax network): those of ``sample_init(..., method="dense")``."""
    s = sample_init(spec, X, n_networks, seed, "dense", max_bytes, dtype=dtype)
    return (s.f[..., None] if s.f.ndim == 2 else s.f), s.ntk


def _sample(spec, X, n_networks, seed, max_bytes, chunk_fn: Callable, bytes_fn: Callable,
            jobs: int | None = 1, block_bytes: int = BLOCK_BYTES, chunk_bytes: int = CHUNK_BYTES) -> InitSample:
    net = network(spec)
    X = spec.check_inputs(X, None, names=("X", "X2"))[0]
    if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 1:
        raise ValueError(f"n_networks must be a positive integer, got {n_networks!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    jobs = _check_jobs(jobs)
    n = len(X)
    dense = flat_network(spec, X.shape[1]) if X.ndim == 2 else None
    if dense is not None:          # Dense layers and nonlinearities: layer Grams too
        d_out, depth = dense.d_out, dense.depth
        per_network = bytes_fn(spec, X.shape[1], n)
        what = f"sample_init of {n_networks} networks (width {max(dense.widths)}, depth {depth}) on {n} inputs"
    else:
        d_out, depth = stax.output_shape(net, X.shape[1:])[0], 0
        per_network = bytes_fn(spec, X.shape[1:], n)
        what = f"sample_init of {n_networks} networks ({per_network} bytes each) on {n} inputs"
    check_sample(8 * int(n_networks) * (n * d_out + n * n + 2 * depth * n * n) + per_network, what)
    chunk = max(1, int(min(max_bytes, chunk_bytes) // per_network))
    block = max(1, int(block_bytes // per_network))
    if jobs > 1 and n_networks > block and _picklable(spec):
        starts = range(0, int(n_networks), block)
        stops = [min(n_networks, s + block) for s in starts]
        with ProcessPoolExecutor(min(jobs, len(starts)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            parts = list(pool.map(_block, repeat(spec), repeat(X), repeat(seed), starts, stops,
                                  repeat(chunk), repeat(chunk_fn)))
    else:
        parts = [_block(spec, X, seed, 0, n_networks, chunk, chunk_fn)]
    f, ntk, pre, post = (np.concatenate(p) for p in zip(*parts))
    return InitSample(f[..., 0] if d_out == 1 else f, ntk, pre, post)


def _check_jobs(jobs) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer or None, got {jobs!r}")
    return int(jobs)


def _picklable(obj) -> bool:
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _block(spec, X, seed, start, stop, chunk, chunk_fn: Callable):
    """Networks ``start .. stop-1`` in chunks of ``chunk``, BLAS single-threaded."""
    workspace = {}                         # buffers reused from chunk to chunk
    # an overflow is refused by name (_refuse_overflow), not warned about on the way
    with blas.single_threaded(), np.errstate(over="ignore", invalid="ignore"):
        parts = [chunk_fn(spec, X, seed, s, min(stop, s + chunk), workspace) for s in range(start, stop, chunk)]
    return tuple(np.concatenate(p) for p in zip(*parts))


# --- dense -----------------------------------------------------------------

def dense_bytes_per_network(spec, d_in: int, n_inputs: int, itemsize: int = 8) -> int:
    """Working memory of one network in the dense sampler: weights plus ~4 activation arrays per layer."""
    dims = flat(spec, d_in).dims
    n_weights = sum(dims[l] * dims[l + 1] + dims[l + 1] for l in range(len(dims) - 1))
    return itemsize * (n_weights + 4 * n_inputs * sum(dims))


def _dense_chunk(spec, X, seed, start, stop, workspace: dict, dtype=np.float64, weights: str = "gaussian"):
    """Networks ``start .. stop-1`` with real weights of law ``weights`` (``workspace`` unused).  Chunks are
    cache-sized (``CHUNK_BYTES``): the weights are drawn, scaled, used by the forward pass and
    by back-propagation while they stay in cache."""
    params = init_params(spec, X.shape[1], seed, start, stop, dtype, weights)
    f, pre, posts = forward(spec, params, X, keep_posts=True)
    ntk = empirical_ntk_from(spec, params, X, pre, posts=posts)
    pre_grams = np.stack([_gram(h) / h.shape[-1] for h in pre], axis=1)
    post_grams = np.stack([_gram(x) / x.shape[-1] for x in posts], axis=1)
    affine = _affine_layers(spec)
    for l, layer in enumerate(affine[:-1]):         # the first layer that overflows, in forward order
        _refuse_overflow(affine, l, ("pre-activation Gram", pre_grams[:, l]), ("post-activation Gram", post_grams[:, l]))
    _refuse_overflow(affine, len(affine) - 1, ("output", f), ("empirical NTK", ntk))
    return f, ntk, pre_grams, post_grams


def _stax_dense_chunk(net: stax.Layer, X, seed, start, stop, workspace: dict, dtype=np.float64):
    """Networks ``start .. stop-1`` of a stax network with real weights (``workspace`` unused);
    no layer Grams (empty (M, 0, N, N) arrays)."""
    params = stax.init_params(net, X.shape[1:], seed, start, stop, dtype)
    f, ntk = stax.outputs_and_ntk(net, params, X)
    affine = _affine_layers(net)
    _refuse_overflow(affine, len(affine) - 1, ("output", f), ("empirical NTK", ntk))
    empty = np.empty((stop - start, 0, len(X), len(X)))
    return f, ntk, empty, empty


def _affine_layers(spec) -> list[stax.Layer]:
    """The network's Dense and Conv layers, depth first (what overflow errors count)."""
    return [layer for layer in stax.layers(network(spec)) if layer.affine]


def _refuse_overflow(affine: list, l: int, *values) -> None:
    """An OverflowError naming the first of ``values`` (pairs (quantity, array)) that is not
    finite, at affine layer ``l`` (0-based) of ``affine``."""
    refuse_overflow(values, affine[l], l + 1, len(affine))


# --- exact -----------------------------------------------------------------

def _draw_shapes(spec, d_in: int, n_inputs: int) -> list[tuple[int, ...]]:
    """Shapes of one network's standard normal draws, in drawing order:
    per hidden layer l = 1..L ``A^l`` (K_{l-1}, n_l) and ``b^l`` (n_l,), with
    K_0 = min(d, N), K_l = min(n_l, N); the readout ``W`` (d_out, n_L) and
    ``b`` (d_out,); then for l = L..2 the backward matrix ``C^l`` (d_out N, n_{l-1})."""
    net = flat(spec, d_in)
    widths, d_out = net.widths, net.d_out
    ranks = (min(d_in, n_inputs),) + tuple(min(n, n_inputs) for n in widths)
    shapes = []
    for k, n in zip(ranks, widths):
        shapes += [(k, n), (n,)]
    shapes += [(d_out, widths[-1]), (d_out,)]
    shapes += [(d_out * n_inputs, widths[l - 2]) for l in range(len(widths), 1, -1)]
    return shapes


def exact_bytes_per_network(spec, d_in: int, n_inputs: int) -> int:
    """Working memory of one network in the exact sampler (an upper estimate):
    its Gaussians, phi'(h^l) and the kept bases Q^l for every layer, and a few
    (N or d_out N) x n temporaries."""
    n_draws = sum(math.prod(s) for s in _draw_shapes(spec, d_in, n_inputs))
    net = flat(spec, d_in)
    n_max = max(net.widths)
    n_back = net.d_out * n_inputs
    return 8 * (n_draws + 2 * n_inputs * sum(net.widths) + (3 * n_inputs + 5 * n_back) * n_max
                + 4 * n_back * n_back)


def _exact_chunk(spec, X, seed, start, stop, workspace: dict, backward: str = "conditional"):
    """Networks ``start .. stop-1`` by the conditional sampler (module docstring).

    ``backward`` other than ``"conditional"`` gives deliberately wrong samplers,
    kept only as negative controls of the distribution test:
    ``"independent"`` is the "gradient independence" shortcut (a fresh W in
    every backward product, ``delta^T W = L C``), ``"unprojected"`` forgets the
    projection ``I - Q Q^T`` (``delta^T W = (delta^T A) Q^T + L C``).
    """
    n_inputs, d_in = X.shape
    net = flat(spec, d_in)
    m, widths, d_out = stop - start, net.widths, net.d_out
    depth, n_back = len(widths), d_out * n_inputs
    scales = net.scales
    draws = _draw(_draw_shapes(spec, d_in, n_inputs), seed, start, stop, workspace)
    affine = _affine_layers(spec)     # every Gram is refused by name before a factorization meets an inf

    # forward: F is the left factor of the current layer input, F F^T = <x, x'>
    x_grams = [(X @ X.T)[None]]            # unnormalised <x^{l}, x^{l}'>, l = 0..L
    _refuse_overflow(affine, 0, ("input Gram", x_grams[0]))
    F = (X if d_in <= n_inputs else _sqrt_factor(x_grams[0][0]))[None]
    pre_grams = np.empty((m, depth, n_inputs, n_inputs))
    derivs, bases, weights = [], [], []
    for l, (n, (a, c, s_w, s_b)) in enumerate(zip(widths, scales)):
        A, b = next(draws), next(draws)
        weights.append(A)
        h = np.matmul((a * s_w) * F, A)
        if c * s_b != 0.0:
            h += (c * s_b) * b[:, None, :]
        pre_grams[:, l] = _gram(h) / n
        _refuse_overflow(affine, l, ("pre-activation Gram", pre_grams[:, l]))
        derivs.append(np.asarray(net.acts[l].deriv(h), dtype=float))
        x = np.ascontiguousarray(net.acts[l].fn(h), dtype=float)
        del h
        if l < depth - 1:
            Qt, R = _qr_rows(x)
            bases.append(Qt)
            F = R.transpose(0, 2, 1)
            x_grams.append(np.matmul(F, R))
        else:
            x_grams.append(_gram(x))
        _refuse_overflow(affine, l, ("post-activation Gram", x_grams[-1]))

    # readout, drawn directly
    a, c, s_w, s_b = scales[-1]
    alpha = net.alpha
    W, b = next(draws), next(draws)
    f = np.matmul(x, W.transpose(0, 2, 1))
    f *= alpha * a * s_w
    if c * s_b != 0.0:
        f += (alpha * c * s_b) * b[:, None, :]
    del x
    _refuse_overflow(affine, depth, ("output", f))

    # backward: delta rows are (output k, input i) pairs, delta^L = alpha a W_k phi'(h^L)
    ntk = (d_out * alpha * alpha) * (a * a * x_grams[-1] + c * c)
    _refuse_overflow(affine, depth, ("empirical NTK", ntk))
    delta = ((alpha * a * s_w) * W[:, :, None, :] * derivs.pop()[:, None]).reshape(m, n_back, widths[-1])
    for l in range(depth, 0, -1):              # delta = delta^l, 1-based hidden layer l
        a, c, s_w, _ = scales[l - 1]
        G = _gram(delta)
        ntk = ntk + _output_trace(G, d_out, n_inputs) * (a * a * x_grams[l - 1] + c * c)
        _refuse_overflow(affine, l - 1, ("empirical NTK", G), ("empirical NTK", ntk))
        if l == 1:
            break
        C = next(draws)
        back = _conditional_backward(delta, bases[l - 2], weights[l - 1], a * s_w, C, G, backward)
        n = widths[l - 2]
        back.reshape(m, d_out, n_inputs, n)[...] *= derivs.pop()[:, None]
        delta = back
    post_grams = np.stack([g / n for g, n in zip(x_grams[1:], widths)], axis=1)
    return f, ntk / d_out, pre_grams, post_grams


def _draw(shapes, seed, start, stop, workspace: dict):
    """Each network's Gaussians in one call from its own generator; yields
    views (m, *shape) in order.  The buffer is kept in ``workspace`` for the
    next chunk (a fresh one would cost a page fault per 4 KB again)."""
    sizes = [math.prod(s) for s in shapes]
    m, total = stop - start, sum(sizes)
    if workspace.get("draws", np.empty(0)).size < m * total:
        workspace["draws"] = np.empty(m * total)
    buf = workspace["draws"][: m * total].reshape(m, total)
    for row, rng in zip(buf, network_rngs(seed, start, stop)):
        rng.standard_normal(out=row)
    offset = 0
    for shape, size in zip(shapes, sizes):
        yield buf[:, offset: offset + size].reshape((len(buf),) + shape)
        offset += size


def _qr_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Householder QR of each network's x^T (columns = inputs), in place.

    x: (m, N, n) C-contiguous, overwritten.  Returns ``Qt`` (m, K, n), Q^T with
    K = min(n, N) orthonormal rows (a view of x), and R (m, K, N) with
    x = R^T Qt.  Householder QR gives orthonormal Q for any rank, so
    duplicate inputs, dead units and N > n need no special case.
    """
    m, n_inputs, n = x.shape
    k = min(n, n_inputs)
    R = np.empty((m, k, n_inputs))
    for i in range(m):
        qr, tau, _, info = lapack.dgeqrf(x[i].T, overwrite_a=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"dgeqrf failed with info={info}")
        R[i] = qr[:k]
        q, _, info = lapack.dorgqr(qr[:, :k], tau, overwrite_a=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"dorgqr failed with info={info}")
        if not np.shares_memory(q, x[i]):
            x[i, :k] = q.T
    return x[:, :k], np.triu(R)


def _sqrt_factor(G: np.ndarray) -> np.ndarray:
    """L with L L^T = G for symmetric PSD G (..., P, P), by eigendecomposition;
    round-off negative eigenvalues are clipped to 0 (rank-deficient G is fine)."""
    w, V = np.linalg.eigh(G)
    return V * np.sqrt(np.clip(w, 0.0, None))[..., None, :]


def _output_trace(G: np.ndarray, d_out: int, n_inputs: int) -> np.ndarray:
    """sum_k G[(k, i), (k, j)]: the Gram of delta summed over outputs, (m, N, N)."""
    m = G.shape[0]
    return np.einsum("akikj->aij", G.reshape(m, d_out, n_inputs, d_out, n_inputs))


# --- exact, conv networks --------------------------------------------------

def _exact_layers(net: stax.Layer) -> tuple[stax.Layer, ...]:
    """The layers of a network the conditional sampler applies to: a serial of Dense, Conv,
    ConvTranspose, nonlinearities and parameter-free layers (AvgPool, SumPool, GlobalAvgPool,
    GlobalSumPool, Flatten, LayerNorm, Identity), or a ValueError saying why not."""
    layers = tuple(stax.layers(net))
    for layer in layers:
        if layer.exact_refusal:
            raise ValueError(f"method='exact' is not available for a network with {layer!r}: "
                             f"{layer.exact_refusal}; use method='dense'")
    if sum(layer.affine for layer in layers) < 1:
        raise ValueError("the network has no Dense or Conv layer (no parameters)")
    return layers


def _exact_stax_chunk(net: stax.Layer, X, seed, start, stop, workspace: dict, backward: str = "conditional"):
    """Networks ``start .. stop-1`` of a serial conv network by Gaussian conditioning
    (``workspace`` unused), no layer Grams.

    A conv layer is a dense layer on the patches of its input (rows = (input, position) pairs,
    fan-in = taps x channels; Dense: one position, one tap), so the module docstring's steps
    apply with the patch matrix for x: forward ``h = a s_w F A`` with ``patches = F Q^T``
    (Householder QR) and fresh A, backward ``delta^T W = (delta^T A) Q^T + L C (I - Q Q^T)``
    with ``L L^T`` the Gram of the backward rows ((output, input, position) triples) --
    the channel rows of W are i.i.d. N(0, s_w^2 I), whatever the positions (Novak et al. 2019;
    Yang 2019).  The first and the last affine layers draw their weights outright (the first
    needs no backward through its input; the readout's weights are few).  Parameter-free layers
    and nonlinearities run their own forward and backward.  The empirical NTK sums every affine
    layer's share from the backward signal and the input patches (``stax._affine_ntk``).
    ``backward``: as for :func:`_exact_chunk` (negative controls only)."""
    layers = _exact_layers(net)
    m, n_inputs = stop - start, len(X)
    rngs = list(network_rngs(seed, start, stop))
    affine = [i for i, layer in enumerate(layers) if layer.affine]
    direct = {affine[0], affine[-1]}
    x = np.asarray(X, dtype=float)[None]
    caches = []
    seen = np.cumsum([layer.affine for layer in layers]).tolist()    # for overflow errors: the affine
    n_affine = len(affine)                                          # layers up to each layer
    for i, layer in enumerate(layers):
        if not layer.affine:
            x, cache = layer.forward((), x)
            caches.append(cache)
            refuse_overflow((("activation", x),), layer, seen[i], n_affine)
            continue
        P, pc = layer.patch_rows(x)
        fan, out, lead = P.shape[-1], layer.features, P.shape[1:-1]
        if i in direct:
            params = stax._affine_init(layer, rngs, fan, out, np.float64)
            x = stax._affine_forward(layer, params, P)
            caches.append((P, pc, params))
            refuse_overflow((("output" if i == affine[-1] else "pre-activation", x),), layer, seen[i], n_affine)
            continue
        a, c, s_w, s_b = stax._kernel_scales(layer, fan)
        rows = np.array(P.reshape(m, -1, fan), order="C")        # overwritten by the QR
        Qt, R = _qr_rows(rows)
        A, b = np.empty((m, Qt.shape[1], out)), np.empty((m, out))
        for k, rng in enumerate(rngs):
            rng.standard_normal(out=A[k])
            rng.standard_normal(out=b[k])
        h = np.matmul((a * s_w) * R.transpose(0, 2, 1), A)
        if c * s_b != 0.0:
            h += (c * s_b) * b[:, None, :]
        x = h.reshape((m,) + lead + (out,))
        caches.append((P, pc, (Qt, A)))
        refuse_overflow((("pre-activation", x),), layer, seen[i], n_affine)
    f = x
    d_out = f.shape[-1]
    g = np.broadcast_to(np.eye(d_out)[None, :, None, :], (m, d_out, n_inputs, d_out))
    ntk = np.zeros((m, n_inputs, n_inputs))
    for i in range(len(layers) - 1, affine[0] - 1, -1):
        layer, cache = layers[i], caches[i]
        if not layer.affine:
            g = layer.backward((), cache, g)[0]
            continue
        P, pc, params = cache
        if i in direct:
            gP, share = stax._affine_backward(layer, params, P, g)
        else:
            a, c, s_w, _ = stax._kernel_scales(layer, P.shape[-1])
            share = stax._affine_ntk(g, P, a, c)
            Qt, A = params
            delta = np.ascontiguousarray(g).reshape(m, -1, A.shape[2])
            C = np.empty((m, delta.shape[1], Qt.shape[2]))
            for k, rng in enumerate(rngs):
                rng.standard_normal(out=C[k])
            G = _gram(delta)
            refuse_overflow((("empirical NTK", G), ("empirical NTK", share)), layer, seen[i], n_affine)
            gP = _conditional_backward(delta, Qt, A, a * s_w, C, G, backward=backward)
            gP = gP.reshape(g.shape[:-1] + (Qt.shape[2],))
        ntk += share
        refuse_overflow((("empirical NTK", ntk),), layer, seen[i], n_affine)
        if i > affine[0]:
            g = layer.patch_adjoint(gP, pc)
    return f, ntk / d_out, np.empty((m, 0, n_inputs, n_inputs)), np.empty((m, 0, n_inputs, n_inputs))


def _conditional_backward(delta, Qt, A, scale, C, G=None, backward: str = "conditional"):
    """``scale delta W`` for weights conditioned on ``A`` (module docstring): with Q^T = ``Qt``
    (m, K, fan_in), A (m, K, out) and the backward rows delta (m, P, out),
    ``delta W = (delta A^T) Q^T + L C (I - Q Q^T)``, ``L L^T = G = delta delta^T``, C (m, P, fan_in)
    fresh standard normals.  ``backward``: see :func:`_exact_chunk` (negative controls)."""
    Lf = _sqrt_factor(_gram(delta) if G is None else G)      # delta^T W' = Lf C in law
    Lf *= scale                                               # scale the small factors
    if backward == "independent":
        return np.matmul(Lf, C)
    u = scale * np.matmul(delta, A.transpose(0, 2, 1))
    if backward == "conditional":
        u -= np.matmul(Lf, np.matmul(C, Qt.transpose(0, 2, 1)))
    back = np.matmul(u, Qt)
    back += np.matmul(Lf, C)
    return back
