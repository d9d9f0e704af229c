"""Branching: ``FanOut`` and ``FanInSum`` (Yang 2019: sums of independent branches)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .layer import Layer, _check_positive_int, _single_shape


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
        total = lambda name: sum(getattr(s, name) for s in state)  # noqa: E731
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

