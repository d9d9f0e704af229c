"""Dense finite networks: real weights for M networks at once, outputs and the
empirical NTK by the layerwise formula (no Jacobian is ever formed).  Sampling
many networks at init goes through :func:`ntkcheck.sampler.sample_init`.

``spec`` is an :class:`ntkcheck.MLP` or any :mod:`ntkcheck.stax` network of Dense layers
with one nonlinearity between each two (:func:`flat_network`); other stax networks have
their own passes (:func:`ntkcheck.stax.outputs_and_ntk`).

For ``h^l = a_l W^l x^{l-1} + c_l b^l`` (``x^l = phi(h^l)``, ``x^0 = x``) and
``delta^l = df/dh^l``, the tangent kernel splits by layer:

    Theta_hat(x, x') = sum_l <delta^l(x), delta^l(x')> (a_l^2 <x^{l-1}(x), x^{l-1}(x')> + c_l^2)

(Jacot et al. 2018, proof of Thm 1; the sum over a layer's weights of
``d h_i/d W_ij = a x_j`` factorises into the two Grams).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import stax
from .activations import Activation
from .kernels import check_inputs, network
from .seeding import network_rngs
from .stax import draw_affine  # noqa: F401 -- re-exported: the draw every dense path shares

#: Default memory cap for one chunk of networks (weights and activations).
MAX_BYTES = 2 * 1024**3
#: Laws of the weights (the biases are Gaussian under both): ``"gaussian"``, N(0, s_w^2), the
#: law every theory here assumes; ``"rademacher"``, +-s_w with probability 1/2 each (the same
#: variance, fourth cumulant -2 s_w^4), a setting where the finite-width theory is wrong.
WEIGHT_LAWS = ("gaussian", "rademacher")


@dataclass(frozen=True)
class DenseParams:
    """Weights ``(M, n_out, n_in)`` and biases ``(M, n_out)`` of M networks, layers 1..L+1."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @property
    def n_networks(self) -> int:
        return self.weights[0].shape[0]


@dataclass(frozen=True)
class FlatNetwork:
    """A network ``Dense, phi_1, Dense, ..., phi_L, Dense`` on inputs of dimension d.

    ``scales``: per Dense layer (a, c, weight init std, bias init std) of ``h = a W x + c b``,
    a hidden layer's ``scale`` folded into a and c; ``alpha``: the readout's ``scale``, which
    multiplies the output.  ``dims``: (d, n_1, ..., n_L, d_out)."""

    dims: tuple[int, ...]
    acts: tuple[Activation, ...]
    scales: tuple[tuple[float, float, float, float], ...]
    alpha: float

    @property
    def widths(self) -> tuple[int, ...]:
        return self.dims[1:-1]

    @property
    def d_out(self) -> int:
        return self.dims[-1]

    @property
    def depth(self) -> int:
        return len(self.dims) - 2


def flat_network(spec, d_in: int) -> FlatNetwork | None:
    """``spec``'s network as a :class:`FlatNetwork` on inputs (N, d_in), or None when it is not
    Dense layers with one nonlinearity between each two (and at least one hidden layer)."""
    try:
        return _flat_cached(spec, d_in)
    except TypeError:                  # an unhashable layer (a custom activation object)
        return _flat_network(spec, d_in)


@functools.lru_cache(maxsize=256)
def _flat_cached(spec, d_in: int) -> FlatNetwork | None:
    return _flat_network(spec, d_in)


def _flat_network(spec, d_in: int) -> FlatNetwork | None:
    layers = stax.flat_chain(network(spec))
    if layers is None or len(layers) < 3 or len(layers) % 2 == 0:
        return None
    dense, acts = layers[::2], layers[1::2]
    if not all(layer.affine for layer in dense) or any(layer.affine for layer in acts):
        return None
    dims = (d_in,) + tuple(layer.out_dim for layer in dense)
    scales = [stax._kernel_scales(layer, fan) for layer, fan in zip(dense[:-1], dims)]
    scales.append(stax._scales(dense[-1], dims[-2]))
    return FlatNetwork(dims, tuple(layer.act for layer in acts), tuple(scales), dense[-1].scale)


def flat(spec, d_in: int) -> FlatNetwork:
    """:func:`flat_network`, or a ValueError saying what it needs."""
    net = flat_network(spec, d_in)
    if net is None:
        raise ValueError(f"{network(spec)!r:.80}: these dense passes need Dense layers with one "
                         "nonlinearity between each two on inputs (N, d); see ntkcheck.stax.outputs_and_ntk")
    return net


def init_params(spec, d_in: int, seed, start: int = 0, stop: int = 1,
                dtype=np.float64, weights: str = "gaussian") -> DenseParams:
    """Initial parameters of networks ``start .. stop-1`` of the run seeded by ``seed``.

    Network i draws W^1, b^1, W^2, b^2, ... in order from its own generator
    (:func:`ntkcheck.seeding.network_rngs`), so the same i is the same network
    whatever the chunking.  ``weights`` is the weights' law (:data:`WEIGHT_LAWS`).
    """
    if weights not in WEIGHT_LAWS:
        raise ValueError(f"weights must be one of {WEIGHT_LAWS}, got {weights!r}")
    draw = draw_affine if weights == "gaussian" else _draw_rademacher
    net = flat(spec, d_in)
    dims, scales = net.dims, net.scales
    m = stop - start
    weights = [np.empty((m, dims[l + 1], dims[l]), dtype=dtype) for l in range(len(dims) - 1)]
    biases = [np.empty((m, dims[l + 1]), dtype=dtype) for l in range(len(dims) - 1)]
    for i, rng in enumerate(network_rngs(seed, start, stop)):
        for W, b, (_, _, s_w, s_b) in zip(weights, biases, scales):
            draw(rng, W[i], b[i], s_w, s_b)
    return DenseParams(tuple(weights), tuple(biases))


def _draw_rademacher(rng: np.random.Generator, W: np.ndarray, b: np.ndarray, s_w: float, s_b: float) -> None:
    """Fill W with +-s_w (probability 1/2 each) and then b with N(0, s_b^2), in place."""
    W[...] = rng.integers(0, 2, size=W.shape, dtype=np.int8)
    W *= 2 * s_w
    W -= s_w
    rng.standard_normal(out=b, dtype=b.dtype)
    b *= s_b


def forward(spec, params: DenseParams, X: np.ndarray, keep_posts: bool = False):
    """Outputs ``(M, N, d_out)`` and the pre-activations ``h^1 .. h^L`` (each (M, N, n_l));
    with ``keep_posts`` also the post-activations ``x^1 .. x^L = phi(h^l)``."""
    net = flat(spec, X.shape[1])
    scales = net.scales
    x = X.astype(params.weights[0].dtype, copy=False)
    pre, posts = [], []
    for l, (W, b, (a, c, _, _)) in enumerate(zip(params.weights, params.biases, scales)):
        h = np.matmul(x, W.transpose(0, 2, 1))
        h *= a
        h += c * b[:, None, :]
        if l == len(scales) - 1:
            h = net.alpha * h
            return (h, pre, posts) if keep_posts else (h, pre)
        pre.append(h)
        x = net.acts[l].fn(h).astype(h.dtype, copy=False)
        posts.append(x)
    raise AssertionError("unreachable")


def _gram(A: np.ndarray) -> np.ndarray:
    return np.matmul(A, A.transpose(0, 2, 1))


def backward(spec, params: DenseParams, pre: list[np.ndarray], cotangent: np.ndarray) -> list[np.ndarray]:
    """Back-propagated ``g^l = dE/dh^l`` for l = 1..L+1 (each (M, N, n_l)) of
    ``E = sum_i <cotangent_i, f(x_i)>``, ``cotangent`` of shape (M or 1, N or 1, d_out).

    ``g^{L+1} = alpha cotangent``, ``g^l = a_{l+1} (g^{l+1} W^{l+1}) * phi'(h^l)``
    (chain rule through ``h^{l+1} = a_{l+1} W^{l+1} phi(h^l) + c b``).  With a
    cotangent of ones this is delta^l of the layerwise NTK formula; with the
    residuals r/N it gives the MSE gradient ``dL/dW^l = a_l g^l^T x^{l-1}``.
    """
    net = flat(spec, params.weights[0].shape[2])
    scales = net.scales
    dtype = params.weights[0].dtype
    g = net.alpha * np.asarray(cotangent, dtype=dtype)
    out = [g]
    for l in range(len(pre) - 1, -1, -1):
        back = np.matmul(g, params.weights[l + 1])
        back *= scales[l + 1][0]
        g = back * net.acts[l].deriv(pre[l]).astype(dtype, copy=False)
        out.append(g)
    return out[::-1]


def empirical_ntk_from(spec, params: DenseParams, X: np.ndarray, pre: list[np.ndarray],
                       readout_only: bool = False, posts: list[np.ndarray] | None = None) -> np.ndarray:
    """Theta_hat(X, X), shape (M, N, N), from the pre-activations of :func:`forward`
    (and its post-activations, if kept: else they are recomputed).

    For d_out > 1 this is the mean over outputs of each output's kernel (which
    converges to Theta; the off-diagonal output blocks vanish at infinite width).
    ``readout_only`` keeps only the readout layer's term: the tangent kernel of
    the readout weights alone (the NNGP-type kernel of last-layer training).
    """
    net = flat(spec, X.shape[1])
    scales, d_out = net.scales, net.d_out
    dtype = params.weights[0].dtype
    if posts is None:
        posts = [act.fn(h).astype(dtype, copy=False) for act, h in zip(net.acts, pre)]
    posts = [X.astype(dtype, copy=False)[None]] + list(posts)
    first = len(pre) if readout_only else 0
    # layer factors a_l^2 <x^{l-1}, x^{l-1}'> + c_l^2, shared by every output
    factors = [a * a * _gram(x) + c * c for x, (a, c, _, _) in zip(posts[first:], scales[first:])]
    total = 0.0
    for k in range(d_out):
        unit = np.zeros((1, 1, d_out), dtype=dtype)
        unit[..., k] = 1.0
        deltas = [net.alpha * unit] if readout_only else backward(spec, params, pre, unit)
        for delta, factor in zip(deltas, factors):
            total = total + _gram(delta) * factor
    return total / d_out


def empirical_ntk(spec, params: DenseParams, X1, X2=None) -> np.ndarray:
    """Each network's empirical NTK Theta_hat(X1, X2): (M, N1, N2)."""
    X1, X2 = check_inputs(X1, X2)
    X = X1 if X2 is None else np.concatenate([X1, X2])
    _, pre = forward(spec, params, X)
    ntk = empirical_ntk_from(spec, params, X, pre)
    return ntk if X2 is None else ntk[:, : len(X1), len(X1):]
