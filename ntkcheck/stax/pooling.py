"""Pooling and reshaping: ``AvgPool``, ``SumPool``, ``GlobalAvgPool``, ``GlobalSumPool``, ``Flatten``."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layer import Layer, _check_window, _single_shape
from .windows import _patch_maps, _patches, _patches_adjoint, _window_mean, _windows


@dataclass(frozen=True)
class _Pool(Layer):
    """Pooling over windows (strides default to 1; zero padding for VALID and SAME, wrapped for
    CIRCULAR).  ``total`` False averages over the window, True sums it."""

    window_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"

    total = False

    def __post_init__(self):
        _check_window(self, "window_shape")

    def kernel(self, state):
        state = self._single(state)
        windows, out = _windows(self, state.shape, self.window_shape)

        def pool(x, nb):
            for d, window in enumerate(windows):
                for axis in (nb + 2 * d, nb + 2 * d + 1):
                    x = _window_mean(x, (axis,), *window, self.padding)
            if self.total:      # a sum is f times the mean, on both positions of a pair
                x *= math.prod(self.window_shape) ** 2
            return x
        return state.map(pool, shape=out + state.shape[-1:])

    def out_shape(self, shape):
        shape = _single_shape(self, shape)
        return _windows(self, shape, self.window_shape)[1] + shape[-1:]

    def forward(self, params, x):
        maps = self._maps(x.shape[2:])
        k = len(maps)
        reduce = np.sum if self.total else np.mean
        return reduce(_patches(x, maps), axis=tuple(range(2 + k, 2 + 2 * k))), x.shape[2:]

    def backward(self, params, shape, g):
        maps = self._maps(shape)
        k = len(maps)
        g = np.broadcast_to(np.expand_dims(g, tuple(range(3 + k, 3 + 2 * k))),
                            g.shape[:3 + k] + self.window_shape + g.shape[-1:])
        return _patches_adjoint(g if self.total else g / math.prod(self.window_shape), maps), 0.0

    def _maps(self, shape):
        return _patch_maps(_windows(self, shape, self.window_shape)[0], self.padding, shape[:-1])


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average over windows, as ``stax.AvgPool`` (strides default to 1; SAME divides by the
    full window, neural-tangents' ``normalize_edges=False``).  K' = A K A^T per spatial axis."""


@dataclass(frozen=True)
class SumPool(_Pool):
    """Sum over windows, as ``stax.SumPool`` (strides default to 1; padded positions add
    nothing).  K' = S K S^T per spatial axis, S = f A (Novak et al. 2020, "Neural Tangents",
    ICLR; neural-tangents' ``_Pool``)."""

    total = True


@dataclass(frozen=True)
class _GlobalPool(Layer):
    """Pooling over all positions; ``total`` False averages, True sums."""

    total = False

    def kernel(self, state):
        state = self._single(state)
        reduce = np.sum if self.total else np.mean
        return state.map(lambda x, nb: reduce(x, axis=tuple(range(nb, x.ndim))), shape=state.shape[-1:])

    def out_shape(self, shape):
        return _single_shape(self, shape)[-1:]

    def forward(self, params, x):
        reduce = np.sum if self.total else np.mean
        return reduce(x, axis=tuple(range(2, x.ndim - 1))), x.shape[2:]

    def backward(self, params, shape, g):
        k = len(shape) - 1
        g = np.expand_dims(g if self.total else g / math.prod(shape[:-1]), tuple(range(3, 3 + k)))
        return np.broadcast_to(g, g.shape[:3] + shape), 0.0


@dataclass(frozen=True)
class GlobalAvgPool(_GlobalPool):
    """Mean over all positions, as ``stax.GlobalAvgPool``: K' = mean_{i,j} K(x,i; x',j)."""


@dataclass(frozen=True)
class GlobalSumPool(_GlobalPool):
    """Sum over all positions, as ``stax.GlobalSumPool``: K' = sum_{i,j} K(x,i; x',j)
    (Novak et al. 2020, "Neural Tangents", ICLR; neural-tangents' ``_GlobalPool``)."""

    total = True


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten positions and channels, as ``stax.Flatten``: the kernel of the flattened vector
    (per coordinate, on average) is the mean over positions of K(x,i; x',i).  Like
    neural-tangents, the result no longer counts as Gaussian with i.i.d. coordinates, so a
    nonlinearity after it is refused (kept Gaussian when there are no positions)."""

    def kernel(self, state):
        state = self._single(state)

        def trace(x, nb):
            while x.ndim > nb:
                x = np.trace(x, axis1=-2, axis2=-1) / x.shape[-1]
            return x
        gaussian = state.is_gaussian and not state.spatial
        return state.map(trace, shape=(math.prod(state.shape),), is_gaussian=gaussian)

    def out_shape(self, shape):
        return (math.prod(_single_shape(self, shape)),)

    def forward(self, params, x):
        return x.reshape(x.shape[:2] + (-1,)), x.shape[2:]

    def backward(self, params, shape, g):
        return g.reshape(g.shape[:3] + shape), 0.0

