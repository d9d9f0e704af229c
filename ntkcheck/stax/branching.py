"""Branching: ``FanOut``, ``FanInSum`` and ``FanInConcat`` (Yang 2019: sums of independent branches)."""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, replace

import numpy as np

from .layer import Layer, _check_positive_int, _is_branches, _single_shape


@dataclass(frozen=True)
class FanOut(Layer):
    """``n`` copies of the input, as ``stax.FanOut``."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    num: int

    def __post_init__(self):
        _check_positive_int(self, "num", self.num)

    def kernel(self, state):
        state = self._single(state)
        return (replace(state, fresh=False),) * self.num   # the copies are one value, not independent

    def out_shape(self, shape):
        return (_single_shape(self, shape),) * self.num

    def forward(self, params, x):
        return (x,) * self.num, None

    def backward(self, params, cache, g):
        return sum(g[1:], g[0]), 0.0


@dataclass(frozen=True)
class FanInSum(Layer):
    """Sum of branches, as ``stax.FanInSum``.  The kernel of a sum is the sum of the kernels
    only when the cross-covariances vanish: every branch but at most one must end in an affine
    layer (its zero-mean weights are independent of the other branches; Yang 2019),
    which is checked here (neural-tangents warns that it does not verify it)."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    def kernel(self, state):
        if not isinstance(state, tuple):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        shapes = {s.shape for s in state}
        if len(shapes) > 1:
            self._fail(f"all branches must have the same shape, got {sorted(shapes)}")
        if len(state) > 1 and not all(s.is_gaussian for s in state):
            self._fail("all branches must be Gaussian (end in Dense, Conv, pooling or Identity of one)")
        if sum(not s.fresh for s in state) > 1:
            self._fail("more than one branch does not end in an affine layer: the branches are "
                       "correlated and the kernel of their sum is not the sum of their kernels")
        first = state[0]
        # the first branch's array plus the others (sum() would start with a pass 0 + array)
        total = lambda name: functools.reduce(np.add, (getattr(s, name) for s in state))  # noqa: E731
        return replace(first, nngp=total("nngp"), ntk=total("ntk"), cov1=total("cov1"),
                       cov2=None if first.cov2 is None else total("cov2"),
                       is_gaussian=all(s.is_gaussian for s in state), fresh=all(s.fresh for s in state),
                       affine_seen=max(s.affine_seen for s in state))

    def out_shape(self, shape):
        if not isinstance(shape, tuple) or not shape or not isinstance(shape[0], tuple):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        if len(set(shape)) > 1:
            self._fail(f"all branches must have the same shape, got {sorted(set(shape))}")
        return shape[0]

    def forward(self, params, x):
        return sum(x[1:], x[0]), len(x)

    def backward(self, params, n, g):
        return (g,) * n, 0.0



@dataclass(frozen=True)
class FanInConcat(Layer):
    """Concatenation of branches along ``axis`` of the inputs (N, positions..., channels), as
    ``stax.FanInConcat`` (Novak et al. 2020, "Neural Tangents", ICLR; neural-tangents'
    ``_concat_kernels``).  Along the channels the kernel is the branches' kernels averaged with
    their channel counts as weights (a layer after it sums over all channels), and, as in
    neural-tangents, a nonlinearity after it is refused (its coordinates are not identically
    distributed).  Along a spatial axis the kernel is block diagonal in that axis's position
    pairs: the branches must be Gaussian and independent (all but at most one end in an affine
    layer, as for :class:`FanInSum`).  The batch axis (0) is refused: it would mix the inputs."""

    exact_refusal = FanInSum.exact_refusal

    axis: int = -1

    def __post_init__(self):
        if not isinstance(self.axis, numbers.Integral) or isinstance(self.axis, bool):
            raise ValueError(f"FanInConcat: axis must be an integer, got {self.axis!r}")

    def _spatial_axis(self, shapes) -> int | None:
        """The position axis d of one input's shape to concatenate along, or None for channels."""
        ndim = len(shapes[0]) + 1           # with the batch axis
        if not -ndim <= self.axis < ndim:
            self._fail(f"axis {self.axis} is out of range for inputs with {ndim} axes (batch first)")
        axis = self.axis % ndim
        if axis == 0:
            self._fail("concatenating along the batch axis (0) mixes the inputs; use a position or the channel axis")
        d = None if axis == ndim - 1 else axis - 1
        kept = {s[:d] + s[d + 1:] if d is not None else s[:-1] for s in shapes}
        if len({len(s) for s in shapes}) > 1 or len(kept) > 1:
            self._fail(f"the branches' shapes must agree but on axis {self.axis}, got {list(shapes)}")
        return d

    def kernel(self, state):
        if not isinstance(state, tuple):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        shapes = [s.shape for s in state]
        d = self._spatial_axis(shapes)
        first = state[0]
        common = dict(affine_seen=max(s.affine_seen for s in state), fresh=all(s.fresh for s in state))
        arrays = ("nngp", "ntk", "cov1") + (() if first.cov2 is None else ("cov2",))
        if d is None:
            widths = [s[-1] for s in shapes]
            weights = [1] * len(widths) if len(set(widths)) == 1 else widths    # equal widths: a plain mean
            mean = {name: sum(w * getattr(s, name) for w, s in zip(weights, state)) / sum(weights)
                    for name in arrays}
            return replace(first, **mean, shape=shapes[0][:-1] + (sum(widths),), is_gaussian=False, **common)
        if not all(s.is_gaussian for s in state):
            self._fail("concatenating along a position axis needs Gaussian branches "
                       "(each ending in Dense, Conv, pooling or Identity of one)")
        if sum(not s.fresh for s in state) > 1:
            self._fail("more than one branch does not end in an affine layer: the branches are "
                       "correlated and the kernel between them is not 0")
        block = {name: _block_diagonal([getattr(s, name) for s in state], (2 if name in ("nngp", "ntk") else 1) + 2 * d)
                 for name in arrays}
        shape = list(shapes[0])
        shape[d] = sum(s[d] for s in shapes)
        return replace(first, **block, shape=tuple(shape), is_gaussian=True, **common)

    def out_shape(self, shape):
        if not _is_branches(shape):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        d = self._spatial_axis(shape)
        d = len(shape[0]) - 1 if d is None else d
        out = list(shape[0])
        out[d] = sum(s[d] for s in shape)
        return tuple(out)

    def forward(self, params, x):
        M = max(len(xi) for xi in x)        # a branch that is still the input has one leading copy
        axis = self.axis % (x[0].ndim - 1) + 1
        parts = [np.broadcast_to(xi, (M,) + xi.shape[1:]) for xi in x]
        return np.concatenate(parts, axis=axis), [xi.shape[axis] for xi in x]

    def backward(self, params, sizes, g):
        axis = self.axis % (g.ndim - 2) + 2
        return tuple(np.split(g, np.cumsum(sizes)[:-1], axis=axis)), 0.0


def _block_diagonal(mats, axis):
    """Kernels of branches concatenated along the position pair (``axis``, ``axis`` + 1): each
    branch's kernel on its diagonal block, 0 between branches."""
    sizes = [m.shape[axis] for m in mats]
    shape = list(mats[0].shape)
    shape[axis] = shape[axis + 1] = sum(sizes)
    out = np.zeros(shape)
    at = [slice(None)] * len(shape)
    for m, lo in zip(mats, np.cumsum([0] + sizes[:-1])):
        at[axis] = at[axis + 1] = slice(lo, lo + m.shape[axis])
        out[tuple(at)] = m
    return out
