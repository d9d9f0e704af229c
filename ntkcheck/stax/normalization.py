"""Normalization: ``LayerNorm``."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np

from .layer import Layer, _pairs_back, _single_shape, _variances


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Layer normalization without trainable parameters, as ``stax.LayerNorm``:
    ``(x - mean) / sqrt(eps + var)`` over ``axis`` of the inputs (N, positions..., channels),
    which must include the channel axis (-1) and may include position axes.  Kernel step, for a
    Gaussian input (in the infinite-width limit the mean over channels is 0 and the variance is
    deterministic): K'(x,i; x',j) = K(x,i; x',j) / sqrt(v(x,i) v(x',j)) and Theta' likewise,
    with v(x,i) = eps + the mean of K(x,p; x,p) over the positions p normalized together with i
    (Novak et al. 2020, "Neural Tangents: fast and easy infinite neural networks in Python", ICLR;
    neural-tangents' ``LayerNorm``).  The batch axis is refused: normalizing over it would make
    an input's kernel depend on the other inputs."""

    axis: int | tuple[int, ...] = -1
    eps: float = 1e-12

    def __post_init__(self):
        axes = (self.axis,) if isinstance(self.axis, numbers.Integral) else self.axis
        try:
            axes = tuple(axes)
        except TypeError:
            axes = None
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"LayerNorm: axis must be an integer or a tuple of integers, got {self.axis!r}")
        if not isinstance(self.eps, numbers.Real) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"LayerNorm: eps must be a finite number >= 0, got {self.eps!r}")

    def _positions(self, shape) -> tuple[int, ...]:
        """The position axes d (of one input's ``shape``) normalized with the channels."""
        if self.axis == -1:                  # the default, valid for every shape: the channels only
            return ()
        ndim = len(shape) + 1                # with the batch axis
        axes = (self.axis,) if isinstance(self.axis, numbers.Integral) else tuple(self.axis)
        if not all(-ndim <= a < ndim for a in axes):
            self._fail(f"axis {self.axis} is out of range for inputs with {ndim} axes (batch first)")
        axes = {a % ndim for a in axes}
        if ndim - 1 not in axes:
            self._fail(f"the channel axis ({ndim - 1}) must be normalized for the kernel to converge "
                       f"as the width grows; got axis={self.axis}")
        if 0 in axes:
            self._fail("normalizing over the batch axis (0) makes an input's kernel depend on the other inputs")
        return tuple(sorted(a - 1 for a in axes - {ndim - 1}))

    def kernel(self, state):
        state = self._single(state)
        if not state.is_gaussian:
            self._fail("its input must be Gaussian (after Dense, Conv, pooling or LayerNorm of one), "
                       "as in neural-tangents")
        positions = self._positions(state.shape)
        k = len(state.spatial)
        # both inputs' own covariances at once (a few small arrays: the calls are the cost)
        n1 = len(state.cov1)
        cov = state.cov1 if state.cov2 is None else np.concatenate([state.cov1, state.cov2])
        v = self.eps + _variances(cov, k)            # (N, L1, ..., Lk)
        if positions:
            v = np.broadcast_to(np.mean(v, axis=tuple(1 + d for d in positions), keepdims=True), v.shape)
        rows, cols = _scale_pairs(1 / np.sqrt(v))
        # every kernel by the product of its two scales, so that K(x,i; x,i) and the variance of
        # (x, i) stay equal to the bit (a correlation of exactly 1 where relu's dual is steepest)
        other = cols[:n1] if state.cov2 is None else cols[n1:]
        if state.pairs is None:
            pair = rows[:n1, None] * other[None]
        else:
            pair = (rows[state.pairs[0]] * other[state.pairs[1]])[:, None]
        pair = _pairs_back(pair.reshape(pair.shape[:2] + state.spatial * 2), 2, k)
        nngp = state.nngp * pair
        ntk = np.multiply(state.ntk, pair, out=pair)        # a fresh array fewer (page faults)
        rows *= cols                                        # each input's own pairs: the same products
        cov = cov * _pairs_back(rows.reshape(rows.shape[:1] + state.spatial * 2), 1, k)
        return replace(state, nngp=nngp, ntk=ntk, cov1=cov[:n1], cov2=None if state.cov2 is None else cov[n1:])

    def out_shape(self, shape):
        shape = _single_shape(self, shape)
        self._positions(shape)
        return shape

    def forward(self, params, x):
        axes = self._axes(x.ndim, 2)
        centred = x - x.mean(axis=axes, keepdims=True)
        sigma = np.sqrt(self.eps + np.mean(centred * centred, axis=axes, keepdims=True))
        y = centred / sigma
        return y, (y, sigma)

    def backward(self, params, cache, g):
        """The Jacobian (I - 1 1^T / n - y y^T / n) / sigma over the normalized entries is
        symmetric, so it is its own adjoint."""
        y, sigma = cache
        y, sigma = y[:, None], sigma[:, None]       # the cotangents' output axis
        axes = self._axes(g.ndim, 3)
        g_in = g - g.mean(axis=axes, keepdims=True) - y * np.mean(y * g, axis=axes, keepdims=True)
        return g_in / sigma, 0.0

    def _axes(self, ndim, lead) -> tuple[int, ...]:
        """The normalized axes of an array with ``lead`` axes before the positions."""
        return tuple(lead + d for d in self._positions((1,) * (ndim - lead))) + (ndim - 1,)


def _scale_pairs(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), (N, P^2) each for scales s (N, L1, ..., Lk) of N inputs over P = L1 ... Lk
    positions: s(x, i) and s(x, j) at i P + j.  Products of a row of one input and a row of
    another are the scales of every position pair of the input pair, formed with the position
    pairs contiguous (a broadcast with the positions innermost runs one short loop per row, ~10x
    slower)."""
    N, P = len(s), s[0].size
    flat = s.reshape(N, 1, P)
    return np.repeat(flat, P, axis=2).reshape(N, P * P), np.repeat(flat, P, axis=1).reshape(N, P * P)

