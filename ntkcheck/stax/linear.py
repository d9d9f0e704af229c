"""Affine layers: ``Dense``, ``Conv``, ``ConvLocal`` and ``ConvTranspose``, their kernel step and
their finite parameters.

Source of the steps: Jacot et al. 2018 (NeurIPS, "Neural tangent kernel"), proof of Thm 1;
Novak et al. 2019 (ICLR) and Arora et al. 2019 (NeurIPS) for the convolution.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..states import KernelState, SpatialState
from .layer import Layer, _check_positive_int, _check_spatial, _check_window, _single_shape
from .windows import _dilate, _patch_maps, _patches, _patches_adjoint, _window_mean, _windows


def _check_affine(layer, W_std, b_std, parameterization):
    if not isinstance(W_std, numbers.Real) or not math.isfinite(W_std) or W_std < 0:
        raise ValueError(f"{type(layer).__name__}: W_std must be a finite number >= 0, got {W_std!r}")
    if b_std is not None and (not isinstance(b_std, numbers.Real) or not math.isfinite(b_std) or b_std < 0):
        raise ValueError(f"{type(layer).__name__}: b_std must be None or a finite number >= 0, got {b_std!r}")
    allowed = ("ntk", "standard", "mean_field") if isinstance(layer, Dense) else ("ntk", "standard")
    if parameterization not in allowed:
        raise ValueError(f"{type(layer).__name__}: parameterization must be one of {allowed}, "
                         f"got {parameterization!r}")


def affine_kernel(nngp, ntk, a: float, c: float, s_w: float, s_b: float, fan_in: int):
    """The step of ``h = a W x + c b`` (W ~ N(0, s_w^2), b ~ N(0, s_b^2), fan-in n) on the
    (patch-averaged) post-activation kernel P = ``nngp`` and NTK Theta = ``ntk``:
    ``K' = a^2 s_w^2 n P + c^2 s_b^2``, ``Theta' = (a^2 n P + c^2) + a^2 s_w^2 n Theta``
    (Jacot et al. 2018, proof of Prop. 1 / Thm 1; Lee et al. 2019, sec. 2).  In the NTK
    parameterization (a = W_std/sqrt(n), s_w = 1) this is ``K' = W_std^2 P + b_std^2``,
    ``Theta' = K' + W_std^2 Theta``.  Returns (K', Theta', fwd, bias_fwd) with
    ``fwd = a^2 s_w^2 n`` and ``bias_fwd = c^2 s_b^2``, the map of the variances."""
    fwd, grad = a * a * s_w * s_w * fan_in, a * a * fan_in
    bias_fwd, bias_grad = c * c * s_b * s_b, c * c
    out = nngp * fwd
    if bias_fwd:
        out += bias_fwd
    if grad == fwd:                     # the NTK parameterization: one pass fewer
        theta = ntk + nngp
        theta *= fwd
    else:
        theta = ntk * fwd
        theta += grad * nngp
    if bias_grad:
        theta += bias_grad
    return out, theta, fwd, bias_fwd


def _affine(layer, patch: SpatialState, fan_in, shape):
    """:func:`affine_kernel` on the patch covariances (the input kernel averaged over the
    filter; fan-in = channels x filter size) and on the variances."""
    a, c, s_w, s_b = _kernel_scales(layer, fan_in)
    nngp, ntk, fwd, bias = affine_kernel(patch.nngp, patch.ntk, a, c, s_w, s_b, fan_in)
    cov2 = None if patch.cov2 is None else fwd * patch.cov2 + bias
    return SpatialState(nngp, ntk, fwd * patch.cov1 + bias, cov2, shape, is_gaussian=True, fresh=True,
                        affine_seen=patch.affine_seen + 1, n_affine=patch.n_affine, pairs=patch.pairs)


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected over the channel axis (at every position), as ``stax.Dense``.

    Two extensions for :class:`ntkcheck.MLP`'s parameterizations: ``parameterization=
    "mean_field"`` multiplies by ``W_std/fan_in`` instead of ``W_std/sqrt(fan_in)`` (standard
    normal parameters; Mei, Montanari & Nguyen 2018), and ``scale`` multiplies the layer's
    output (alpha of Chizat, Oyallon & Bach 2019; 1 in neural-tangents)."""

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: str = "ntk"
    scale: float = 1.0

    affine = True

    def __post_init__(self):
        _check_positive_int(self, "out_dim", self.out_dim)
        _check_affine(self, self.W_std, self.b_std, self.parameterization)
        if not isinstance(self.scale, numbers.Real) or not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"Dense: scale must be a finite number >= 0, got {self.scale!r}")

    def __repr__(self):
        extra = "" if self.scale == 1.0 else f", scale={self.scale!r}"
        return (f"Dense(out_dim={self.out_dim!r}, W_std={self.W_std!r}, b_std={self.b_std!r}, "
                f"parameterization={self.parameterization!r}{extra})")

    def chain(self):
        return (self,)

    def kernel(self, state):
        state = self._single(state)
        return _affine(self, state, state.shape[-1], state.spatial + (self.out_dim,))

    def flat_kernel(self, state: KernelState, fan_in: int, same: bool, post_diag=None) -> KernelState:
        """:func:`affine_kernel` on a flat state (``post_diag`` unused: the variances map linearly)."""
        a, c, s_w, s_b = _kernel_scales(self, fan_in)
        nngp, ntk, fwd, bias = affine_kernel(state.nngp, state.ntk, a, c, s_w, s_b, fan_in)
        return KernelState(nngp, ntk, fwd * state.diag1 + bias, fwd * state.diag2 + bias)

    def init(self, rngs, shape, dtype=np.float64):
        shape = _single_shape(self, shape)
        return _affine_init(self, rngs, shape[-1], self.out_dim, dtype), shape[:-1] + (self.out_dim,)

    @property
    def features(self) -> int:
        return self.out_dim

    def patch_rows(self, x):
        """The vectors the weights act on, (..., fan_in), and what :meth:`patch_adjoint` needs."""
        return x, None

    def patch_adjoint(self, g, cache):
        return g

    def forward(self, params, x):
        return _affine_forward(self, params, x), x

    def backward(self, params, cache, g):
        return _affine_backward(self, params, cache, g)


@dataclass(frozen=True)
class _Conv(Layer):
    """A convolution: a dense layer on the patches of its input (``patch_rows``), NWC/NHWC layout.
    Its kernel step averages the input kernel over the filter taps, one tap shared by both
    positions of a pair (distinct taps have independent weights), then takes the affine step."""

    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: str = "ntk"

    affine = True
    scale = 1.0

    def __post_init__(self):
        _check_positive_int(self, "out_chan", self.out_chan)
        _check_window(self, "filter_shape")
        _check_affine(self, self.W_std, self.b_std, self.parameterization)

    def kernel(self, state):
        state = self._single(state)
        windows, out = self._windows(state.shape)
        dilation = self._dilation()

        def conv(x, nb):   # one filter tap o is shared by both positions: distinct taps have independent weights
            for d, window in enumerate(windows):
                axes = (nb + 2 * d, nb + 2 * d + 1)
                if dilation:
                    x = _dilate(x, axes, dilation[d])
                x = _window_mean(x, axes, *window, self.padding)
            return x
        fan_in = state.shape[-1] * math.prod(self.filter_shape)
        return _affine(self, state.map(conv), fan_in, out + (self.out_chan,))

    def init(self, rngs, shape, dtype=np.float64):
        shape = _single_shape(self, shape)
        _, out = self._windows(shape)
        fan_in = shape[-1] * math.prod(self.filter_shape)
        return _affine_init(self, rngs, fan_in, self.out_chan, dtype), out + (self.out_chan,)

    @property
    def features(self) -> int:
        return self.out_chan

    def patch_rows(self, x):
        """Patches (B, N, positions..., filter taps x channels) of x (B, N, positions..., channels):
        the conv is a dense layer on them.  Also the input shape, for :meth:`patch_adjoint`."""
        shape = x.shape[2:]
        maps = self._maps(shape)
        if self._dilation():
            x = _dilate(x, range(2, 2 + len(maps)), self._dilation())
        patches = _patches(x, maps)
        return patches.reshape(patches.shape[:2 + len(maps)] + (-1,)), shape

    def patch_adjoint(self, g, shape):
        """Cotangents of the patches (..., positions..., taps x channels) -> of the input."""
        g = g.reshape(g.shape[:-1] + self.filter_shape + shape[-1:])
        g = _patches_adjoint(g, self._maps(shape))
        if self._dilation():        # the adjoint of the dilation: the positions the input occupies
            lead = g.ndim - len(shape)
            g = g[(slice(None),) * lead + tuple(slice(None, None, s) for s in self._dilation())]
        return g

    def forward(self, params, x):
        """The conv as a dense layer on patches (positions..., filter taps x channels)."""
        patches, shape = self.patch_rows(x)
        return _affine_forward(self, params, patches), (patches, shape)

    def backward(self, params, cache, g):
        patches, shape = cache
        g_patches, ntk = _affine_backward(self, params, patches, g)
        return self.patch_adjoint(g_patches, shape), ntk

    def _windows(self, shape):
        """Per spatial axis (window, stride, padding before and after) and the output positions."""
        return _windows(self, shape, self.filter_shape)

    def _dilation(self) -> tuple[int, ...] | None:
        """Per spatial axis, the stride the input is dilated by before the filter slides over it
        (a transposed conv's strides; None: not dilated)."""
        return None

    def _maps(self, shape):
        spatial = shape[:-1]
        if self._dilation():
            spatial = tuple((L - 1) * s + 1 for L, s in zip(spatial, self._dilation()))
        return _patch_maps(self._windows(shape)[0], self.padding, spatial)


@dataclass(frozen=True)
class Conv(_Conv):
    """Convolution with shared weights over 1 or 2 (or more) spatial axes, NWC/NHWC layout, as
    ``stax.Conv``.  Kernel step: K'(x,i; x',j) = W_std^2 mean_o K(x, s i + o; x', s j + o) + b_std^2
    over the filter offsets o (Novak et al. 2019; Arora et al. 2019, the CNTK recursion)."""


@dataclass(frozen=True)
class ConvLocal(_Conv):
    """Locally connected (unshared) convolution, as ``stax.ConvLocal``: every output position
    has its own weights and biases.  Kernel step: Conv's on the position diagonal and 0 between
    distinct positions, K'(x,i; x',j) = [i = j] (W_std^2 mean_o K(x, s i + o; x', s i + o) + b_std^2)
    (Novak et al. 2019, "Bayesian deep convolutional networks with many channels are Gaussian
    processes", ICLR: the kernel of locally connected networks; neural-tangents'
    ``_conv_kernel_full_spatial_unshared``)."""

    exact_refusal = ("its weights differ per output position, and the conditional sampler shares one "
                     "weight matrix over all positions")

    def kernel(self, state):
        out = super().kernel(state)
        mask = np.ones(())
        for L in out.spatial:       # distinct positions read independent weights: (L1, L1', L2, L2', ...)
            mask = np.multiply.outer(mask, np.eye(L))
        return out.map(lambda x, nb: x * mask)

    def init(self, rngs, shape, dtype=np.float64):
        shape = _single_shape(self, shape)
        _, out = self._windows(shape)
        fan_in = shape[-1] * math.prod(self.filter_shape)
        P = math.prod(out)
        _, _, s_w, s_b = _scales(self, fan_in)
        W = np.empty((len(rngs), P, self.out_chan, fan_in), dtype=dtype)
        b = np.empty((len(rngs), P, self.out_chan), dtype=dtype)
        for i, rng in enumerate(rngs):
            draw_affine(rng, W[i], b[i], s_w, s_b)
        return _AffineParams(W, b), out + (self.out_chan,)

    def forward(self, params, x):
        """``a W_p x_p + c b_p`` at every output position p with its own (W_p, b_p)."""
        patches, shape = self.patch_rows(x)
        W, b = params
        a, c, _, _ = _scales(self, patches.shape[-1])
        B, N = patches.shape[:2]
        rows = np.broadcast_to(patches.reshape(B, N, -1, patches.shape[-1]), (len(W), N, W.shape[1], W.shape[3]))
        h = np.einsum("mnpf,mpof->mnpo", rows, W, optimize=True)
        h *= a
        if c != 0.0:
            h += c * b[:, None]
        return h.reshape((len(W),) + patches.shape[1:-1] + (W.shape[2],)), (patches, shape)

    def backward(self, params, cache, g):
        """Cotangents of the input, and the layer's NTK share: at each position its own
        parameters, so only pairs of equal positions add, a^2 sum_p <g_p, g'_p> <x_p, x'_p>
        + c^2 sum_p <g_p, g'_p>."""
        patches, shape = cache
        W, _ = params
        a, c, _, _ = _scales(self, patches.shape[-1])
        M, K, N = g.shape[:3]
        P, out = W.shape[1], W.shape[2]
        gp = g.reshape(M, K, N, P, out)
        xp = patches.reshape(patches.shape[0], N, P, -1)
        gg = np.einsum("mknpo,mkjpo->mpnj", gp, gp, optimize=True)      # per position: sum over outputs
        xx = np.einsum("bnpf,bjpf->bpnj", xp, xp, optimize=True)
        ntk = a * a * np.einsum("mpnj,mpnj->mnj", gg, np.broadcast_to(xx, gg.shape), optimize=True)
        if c != 0.0:
            ntk += c * c * gg.sum(axis=1)
        g_patches = a * np.einsum("mknpo,mpof->mknpf", gp, W, optimize=True)
        return self.patch_adjoint(g_patches.reshape(g.shape[:-1] + (-1,)), shape), ntk


@dataclass(frozen=True)
class ConvTranspose(_Conv):
    """Transposed convolution, as ``stax.ConvTranspose`` (``jax.lax.conv_transpose``): the
    input stride-dilated (s - 1 zeros between positions), padded as ``conv_transpose`` pads
    VALID and SAME, then a stride-1 convolution with fan-in channels x filter size.  Kernel
    step: the same on the input kernel, each axis of a position pair dilated, K'(x,i; x',j) =
    W_std^2 mean_o K_dil(x, i + o - lo; x', j + o - lo) + b_std^2 (Novak et al. 2020, "Neural
    Tangents", ICLR; neural-tangents' ``_conv_kernel_full_spatial_transpose``).  Output
    positions: L s + max(f - s, 0) (VALID), L s (SAME).  CIRCULAR padding is not supported.
    Its weights are shared over positions, so the exact sampler conditions it on its patches
    of the dilated input as it does a Conv."""

    def __post_init__(self):
        super().__post_init__()
        if self.padding == "CIRCULAR":
            raise ValueError("ConvTranspose: padding 'CIRCULAR' is not supported (only 'VALID' and 'SAME')")

    def _windows(self, shape):
        """``jax.lax``'s padding of a transposed conv (``_conv_transpose_padding``) on the
        dilated input of (L - 1) s + 1 positions, stride 1."""
        _check_spatial(self, shape, len(self.filter_shape))
        windows, out = [], []
        for L, f, s in zip(shape[:-1], self.filter_shape, self.strides):
            if self.padding == "SAME":
                total = f + s - 2
                lo = f - 1 if s > f - 1 else -(-total // 2)
            else:
                total = f + s - 2 + max(f - s, 0)
                lo = f - 1
            windows.append((f, 1, lo, total - lo))
            out.append((L - 1) * s + 1 + total - f + 1)
        return windows, tuple(out)

    def _dilation(self):
        return self.strides


@dataclass(frozen=True)
class _AffineParams:
    """Weights (M, out, fan_in) and biases (M, out) of one affine layer of M networks (ConvLocal:
    (M, positions, out, fan_in) and (M, positions, out), its own per output position)."""

    W: np.ndarray
    b: np.ndarray

    def __iter__(self):
        return iter((self.W, self.b))


def _scales(layer, fan_in) -> tuple[float, float, float, float]:
    """(a, c, weight init std, bias init std) of ``h = a W x + c b`` (before ``layer.scale``):
    NTK parameterization a = W_std/sqrt(fan_in), c = b_std with N(0, 1) parameters; mean field
    a = W_std/fan_in, c = b_std; standard a = c = 1 with W ~ N(0, W_std^2/fan_in),
    b ~ N(0, b_std^2).  No bias (b_std None): c = 0."""
    bias = 0.0 if layer.b_std is None else layer.b_std
    if layer.parameterization == "ntk":
        return layer.W_std / math.sqrt(fan_in), bias, 1.0, 1.0
    if layer.parameterization == "mean_field":
        return layer.W_std / fan_in, bias, 1.0, 1.0
    return 1.0, 0.0 if layer.b_std is None else 1.0, layer.W_std / math.sqrt(fan_in), bias


def _kernel_scales(layer, fan_in) -> tuple[float, float, float, float]:
    """:func:`_scales` with the layer's output multiplier folded into a and c."""
    a, c, s_w, s_b = _scales(layer, fan_in)
    return layer.scale * a, layer.scale * c, s_w, s_b


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


def _affine_init(layer, rngs, fan_in, out, dtype):
    _, _, s_w, s_b = _scales(layer, fan_in)
    W = np.empty((len(rngs), out, fan_in), dtype=dtype)
    b = np.empty((len(rngs), out), dtype=dtype)
    for i, rng in enumerate(rngs):
        draw_affine(rng, W[i], b[i], s_w, s_b)
    return _AffineParams(W, b)


def _affine_forward(layer, params, x):
    """``scale (a W x + c b)`` over the last axis of x (M or 1, N, positions..., fan_in)."""
    W, b = params
    a, c, _, _ = _scales(layer, x.shape[-1])
    h = np.matmul(x.reshape(x.shape[0], -1, x.shape[-1]), W.transpose(0, 2, 1))
    h *= a
    if c != 0.0:
        h += c * b[:, None, :]
    if layer.scale != 1.0:
        h *= layer.scale
    return h.reshape((len(W),) + x.shape[1:-1] + (W.shape[1],))


def _affine_backward(layer, params, x, g):
    """Cotangents of the layer input, ``scale a g W``, and the layer's NTK share (:func:`_affine_ntk`)."""
    W, _ = params
    a, c, _, _ = _scales(layer, x.shape[-1])
    if layer.scale != 1.0:
        g = layer.scale * g
    ntk = _affine_ntk(g, x, a, c)
    g_in = np.matmul(g.reshape(g.shape[0], -1, g.shape[-1]), W)
    g_in *= a
    return g_in.reshape(g.shape[:-1] + (W.shape[2],)), ntk


def _affine_ntk(g, x, a, c, form=None):
    """sum_k <df_k/dW, df_k/dW'> + <df_k/db, df_k/db'> of ``h = a W x + c b`` applied at every
    position, from the cotangents g (M, K, N, positions..., out) and the inputs x (M or 1, N,
    positions..., fan_in), (M, N, N).  Weights shared over positions p: df_k/dW = a sum_p
    g_p x_p^T, the correlation of the backward signal with the input (conv: with its patches).
    ``form`` "gradient" forms these per-input gradients (N, out x fan_in) and takes their Gram;
    "pairs" uses a^2 sum_{p,q} <g_p, g'_q> <x_p, x'_q> instead (without positions: the MLP
    formula of :mod:`ntkcheck.networks`); by default the one with the smaller arrays."""
    M, K, N = g.shape[:3]
    out, fan_in = g.shape[-1], x.shape[-1]
    g = g.reshape(M, K, N, -1, out)
    x = x.reshape(x.shape[0], N, -1, fan_in)
    P = g.shape[3]
    ntk = np.zeros((M, N, N), dtype=g.dtype)
    if c != 0.0:
        gs = g.sum(axis=3).transpose(0, 2, 1, 3).reshape(M, N, K * out)
        ntk += c * c * _gram(gs)
    if form is None:      # the cheaper one, in multiply-adds (both divided by N)
        form = "gradient" if K * out * fan_in * (P + N) < N * P * P * (K * out + fan_in) else "pairs"
    if form == "gradient":
        grads = np.matmul(g.transpose(0, 1, 2, 4, 3), x[:, None])     # (M, K, N, out, fan_in)
        ntk += a * a * _gram(grads.transpose(0, 2, 1, 3, 4).reshape(M, N, -1))
    else:
        gg = _gram(g.transpose(0, 2, 3, 1, 4).reshape(M, N * P, K * out)).reshape(M, N, P, N, P)
        xx = _gram(x.reshape(x.shape[0], N * P, fan_in)).reshape(-1, N, P, N, P)
        ntk += a * a * np.einsum("aipjq,aipjq->aij", gg, np.broadcast_to(xx, gg.shape))
    return ntk


def _gram(A):
    return np.matmul(A, A.transpose(0, 2, 1))

