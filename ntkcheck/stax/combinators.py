"""Combinators: ``serial``, ``parallel`` and ``Identity``, and the overflow check after every step."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..states import SpatialState, refuse_overflow
from .layer import Layer, _check_layers, _is_branches


@dataclass(frozen=True)
class Identity(Layer):
    """The identity map, as ``stax.Identity`` (the skip branch of a residual block)."""

    def kernel(self, state):
        return state

    def out_shape(self, shape):
        return shape

    def forward(self, params, x):
        return x, None

    def backward(self, params, cache, g):
        return g, 0.0


@dataclass(frozen=True)
class Parallel(Layer):
    """Layer i on branch i, as ``stax.parallel``."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    layers: tuple[Layer, ...]

    def kernel(self, state):
        if not isinstance(state, tuple) or len(state) != len(self.layers):
            got = len(state) if isinstance(state, tuple) else 1
            self._fail(f"has {len(self.layers)} layers but got {got} branches")
        out, seen = [], _seen(state[0])
        for layer, s in zip(self.layers, state):     # affine layers counted depth first, branch by branch
            s = _checked(layer, replace(s, affine_seen=seen) if isinstance(s, SpatialState) else s)
            out.append(s)
            seen = _seen(s)
        return tuple(out)

    def init(self, rngs, shape, dtype=np.float64):
        if not _is_branches(shape) or len(shape) != len(self.layers):
            got = len(shape) if _is_branches(shape) else 1
            self._fail(f"has {len(self.layers)} layers but got {got} branches")
        parts = [layer.init(rngs, s, dtype) for layer, s in zip(self.layers, shape)]
        return tuple(p for p, _ in parts), tuple(o for _, o in parts)

    def forward(self, params, x):
        parts = [layer.forward(p, xi) for layer, p, xi in zip(self.layers, params, x)]
        return tuple(y for y, _ in parts), tuple(c for _, c in parts)

    def backward(self, params, cache, g):
        parts = [layer.backward(p, c, gi) for layer, p, c, gi in zip(self.layers, params, cache, g)]
        return tuple(gi for gi, _ in parts), sum(t for _, t in parts)


@dataclass(frozen=True)
class Serial(Layer):
    """Layers applied in order, as ``stax.serial``; a network is a Serial (or any layer)."""

    layers: tuple[Layer, ...]

    def kernel(self, state):
        for layer in self.layers:
            state = _checked(layer, state)
        return state

    def chain(self):
        parts = [layer.chain() for layer in self.layers]
        return None if any(p is None for p in parts) else sum(parts, ())

    def init(self, rngs, shape, dtype=np.float64):
        params = []
        for layer in self.layers:
            p, shape = layer.init(rngs, shape, dtype)
            params.append(p)
        return tuple(params), shape

    def forward(self, params, x):
        caches = []
        for layer, p in zip(self.layers, params):
            x, c = layer.forward(p, x)
            caches.append(c)
        return x, caches

    def backward(self, params, cache, g):
        ntk = 0.0
        for layer, p, c in zip(self.layers[::-1], params[::-1], cache[::-1]):
            g, t = layer.backward(p, c, g)
            ntk = ntk + t
        return g, ntk


def serial(*layers: Layer) -> Serial:
    return Serial(_check_layers("serial", layers))


def parallel(*layers: Layer) -> Parallel:
    return Parallel(_check_layers("parallel", layers))


def _seen(state) -> int:
    """The affine layers behind a state or behind the last of branches."""
    return max(map(_seen, state)) if isinstance(state, tuple) else state.affine_seen


class FlagCount:
    """A numpy error callback (``np.errstate(over="call", ..., call=FlagCount())``) counting the
    floating-point flags raised: what :func:`_checked` reads to skip searching a step's arrays."""

    def __init__(self):
        self.count = 0

    def __call__(self, kind, flag):
        self.count += 1


def _checked(layer: Layer, state):
    """``layer.kernel(state)``, refused with an OverflowError naming the layer and the kernel
    where an entry exceeds float64 range (a NaN only ever comes from such an entry).  From
    finite entries, one that is not finite arises only by an operation that raises numpy's
    overflow, divide-by-zero or invalid flag, so under a :class:`FlagCount` the new arrays are
    searched only after a step that raised one (searching after every step cost ~15% of a
    transformer's kernels); without one, after every step."""
    if isinstance(layer, (Serial, Parallel)):      # their layers are checked one by one
        return layer.kernel(state)
    flags = np.geterrcall()
    before = flags.count if isinstance(flags, FlagCount) else None
    out = layer.kernel(state)
    if before is None or flags.count > before:
        # an array passed on unchanged (FanOut's copies, Identity) was checked where it was made
        checked = {id(x) for s in (state if isinstance(state, tuple) else (state,)) for x in _arrays(s)}
        for s in out if isinstance(out, tuple) else (out,):
            new = [(name, x) for name, x in zip(("NNGP kernel",) * 3 + ("NTK kernel",), _arrays(s))
                   if x is not None and id(x) not in checked]
            if new:
                refuse_overflow(new, layer, s.affine_seen, s.n_affine)
                checked.update(id(x) for _, x in new)
    return out


def _arrays(state: SpatialState) -> tuple:
    return state.cov1, state.cov2, state.nngp, state.ntk

