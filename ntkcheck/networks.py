"""Dense finite networks: real weights for M networks at once, outputs and the
empirical NTK by the layerwise formula (no Jacobian is ever formed).  Sampling
many networks at init goes through :func:`ntkcheck.sampler.sample_init`.

For ``h^l = a_l W^l x^{l-1} + c_l b^l`` (``x^l = phi(h^l)``, ``x^0 = x``) and
``delta^l = df/dh^l``, the tangent kernel splits by layer:

    Theta_hat(x, x') = sum_l <delta^l(x), delta^l(x')> (a_l^2 <x^{l-1}(x), x^{l-1}(x')> + c_l^2)

(Jacot et al. 2018, proof of Thm 1; the sum over a layer's weights of
``d h_i/d W_ij = a x_j`` factorises into the two Grams).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import check_inputs
from .seeding import network_rngs
from .spec import MLP

#: Default memory cap for one chunk of networks (weights and activations).
MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class DenseParams:
    """Weights ``(M, n_out, n_in)`` and biases ``(M, n_out)`` of M networks, layers 1..L+1."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @property
    def n_networks(self) -> int:
        return self.weights[0].shape[0]


def init_params(spec: MLP, d_in: int, seed, start: int = 0, stop: int = 1,
                dtype=np.float64) -> DenseParams:
    """Initial parameters of networks ``start .. stop-1`` of the run seeded by ``seed``.

    Network i draws W^1, b^1, W^2, b^2, ... in order from its own generator
    (:func:`ntkcheck.seeding.network_rngs`), so the same i is the same network
    whatever the chunking.
    """
    dims = (d_in,) + spec.widths + (spec.d_out,)
    scales = spec.layer_scales(d_in)
    m = stop - start
    weights = [np.empty((m, dims[l + 1], dims[l]), dtype=dtype) for l in range(len(dims) - 1)]
    biases = [np.empty((m, dims[l + 1]), dtype=dtype) for l in range(len(dims) - 1)]
    for i, rng in enumerate(network_rngs(seed, start, stop)):
        for W, b, (_, _, s_w, s_b) in zip(weights, biases, scales):
            draw_affine(rng, W[i], b[i], s_w, s_b)
    return DenseParams(tuple(weights), tuple(biases))


def draw_affine(rng: np.random.Generator, W: np.ndarray, b: np.ndarray, s_w: float, s_b: float) -> None:
    """Fill one network's weight W with N(0, s_w^2) and then its bias b with N(0, s_b^2), in
    place; each draw is scaled while still in cache (a later pass over the stack costs a
    memory pass).  The draw order fixes the numbers every dense path shares."""
    rng.standard_normal(out=W, dtype=W.dtype)
    if s_w != 1.0:
        W *= s_w
    rng.standard_normal(out=b, dtype=b.dtype)
    if s_b != 1.0:
        b *= s_b


def forward(spec: MLP, params: DenseParams, X: np.ndarray, keep_posts: bool = False):
    """Outputs ``(M, N, d_out)`` and the pre-activations ``h^1 .. h^L`` (each (M, N, n_l));
    with ``keep_posts`` also the post-activations ``x^1 .. x^L = phi(h^l)``."""
    scales = spec.layer_scales(X.shape[1])
    x = X.astype(params.weights[0].dtype, copy=False)
    pre, posts = [], []
    for l, (W, b, (a, c, _, _)) in enumerate(zip(params.weights, params.biases, scales)):
        h = np.matmul(x, W.transpose(0, 2, 1))
        h *= a
        h += c * b[:, None, :]
        if l == len(scales) - 1:
            h = spec.output_scale * h
            return (h, pre, posts) if keep_posts else (h, pre)
        pre.append(h)
        x = spec.act.fn(h).astype(h.dtype, copy=False)
        posts.append(x)
    raise AssertionError("unreachable")


def _gram(A: np.ndarray) -> np.ndarray:
    return np.matmul(A, A.transpose(0, 2, 1))


def backward(spec: MLP, params: DenseParams, pre: list[np.ndarray], cotangent: np.ndarray) -> list[np.ndarray]:
    """Back-propagated ``g^l = dE/dh^l`` for l = 1..L+1 (each (M, N, n_l)) of
    ``E = sum_i <cotangent_i, f(x_i)>``, ``cotangent`` of shape (M or 1, N or 1, d_out).

    ``g^{L+1} = alpha cotangent``, ``g^l = a_{l+1} (g^{l+1} W^{l+1}) * phi'(h^l)``
    (chain rule through ``h^{l+1} = a_{l+1} W^{l+1} phi(h^l) + c b``).  With a
    cotangent of ones this is delta^l of the layerwise NTK formula; with the
    residuals r/N it gives the MSE gradient ``dL/dW^l = a_l g^l^T x^{l-1}``.
    """
    scales = spec.layer_scales(params.weights[0].shape[2])
    dtype = params.weights[0].dtype
    g = spec.output_scale * np.asarray(cotangent, dtype=dtype)
    out = [g]
    for l in range(len(pre) - 1, -1, -1):
        back = np.matmul(g, params.weights[l + 1])
        back *= scales[l + 1][0]
        g = back * spec.act.deriv(pre[l]).astype(dtype, copy=False)
        out.append(g)
    return out[::-1]


def empirical_ntk_from(spec: MLP, params: DenseParams, X: np.ndarray, pre: list[np.ndarray],
                       readout_only: bool = False, posts: list[np.ndarray] | None = None) -> np.ndarray:
    """Theta_hat(X, X), shape (M, N, N), from the pre-activations of :func:`forward`
    (and its post-activations, if kept: else they are recomputed).

    For d_out > 1 this is the mean over outputs of each output's kernel (which
    converges to Theta; the off-diagonal output blocks vanish at infinite width).
    ``readout_only`` keeps only the readout layer's term: the tangent kernel of
    the readout weights alone (the NNGP-type kernel of last-layer training).
    """
    scales = spec.layer_scales(X.shape[1])
    dtype = params.weights[0].dtype
    if posts is None:
        posts = [spec.act.fn(h).astype(dtype, copy=False) for h in pre]
    posts = [X.astype(dtype, copy=False)[None]] + list(posts)
    first = len(pre) if readout_only else 0
    # layer factors a_l^2 <x^{l-1}, x^{l-1}'> + c_l^2, shared by every output
    factors = [a * a * _gram(x) + c * c for x, (a, c, _, _) in zip(posts[first:], scales[first:])]
    total = 0.0
    for k in range(spec.d_out):
        unit = np.zeros((1, 1, spec.d_out), dtype=dtype)
        unit[..., k] = 1.0
        deltas = [spec.output_scale * unit] if readout_only else backward(spec, params, pre, unit)
        for delta, factor in zip(deltas, factors):
            total = total + _gram(delta) * factor
    return total / spec.d_out


def empirical_ntk(spec: MLP, params: DenseParams, X1, X2=None) -> np.ndarray:
    """Each network's empirical NTK Theta_hat(X1, X2): (M, N1, N2)."""
    X1, X2 = check_inputs(X1, X2)
    X = X1 if X2 is None else np.concatenate([X1, X2])
    _, pre = forward(spec, params, X)
    ntk = empirical_ntk_from(spec, params, X, pre)
    return ntk if X2 is None else ntk[:, : len(X1), len(X1):]
