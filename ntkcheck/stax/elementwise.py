"""Elementwise nonlinearities: ``Activation`` and neural-tangents' named constructors."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..activations import Activation as _Act
from ..activations import get_activation
from ..states import KernelState
from .layer import Layer, _single_shape, _spread, _spread_pairs, _variances


@dataclass(frozen=True, repr=False)
class Activation(Layer):
    """An elementwise nonlinearity by name (any of :data:`ntkcheck.activations.NAMES`, e.g.
    ``"leaky_relu(0.2)"``) or an :class:`ntkcheck.activations.Activation`.  Kernel step: its dual,
    P = E[phi(u) phi(v)], Theta' = E[phi'(u) phi'(v)] Theta, at every position pair (Jacot et al.
    2018, Thm 1; Novak et al. 2019)."""

    name: str | _Act
    act: _Act = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        try:
            object.__setattr__(self, "act", get_activation(self.name))
        except ValueError as err:
            raise ValueError(f"Activation: {err}") from None

    def __repr__(self):
        return f"Activation({self.name if isinstance(self.name, str) else self.act.name!r})"

    def __reduce__(self):
        # by name, so networks of named activations pickle (to worker processes) although the
        # functions are lambdas; an Activation object pickles as itself (or not at all)
        return Activation, (self.name,)

    def kernel(self, state):
        state = self._single(state)
        if not state.is_gaussian:
            self._fail("its input must be Gaussian: put Dense, Conv or a pooling layer after the "
                       "network input, a nonlinearity or Flatten")
        k = len(state.spatial)
        var1 = _variances(state.cov1, k)
        var2 = var1 if state.cov2 is None else _variances(state.cov2, k)
        k11, k22 = _spread_pairs(state, var1, var2, k)
        nngp, dot = self.act.dual(k11, state.nngp, k22)
        # both inputs' own covariances in one call (a few small arrays: the calls are the cost)
        var = var1 if state.cov2 is None else np.concatenate([var1, var2])
        cov = state.cov1 if state.cov2 is None else np.concatenate([state.cov1, state.cov2])
        cov = self.act.dual(_spread(var, k, 0, 1), cov, _spread(var, k, 1, 1))[0]
        cov1, cov2 = (cov, None) if state.cov2 is None else (cov[:len(var1)], cov[len(var1):])
        dot *= state.ntk            # the dual's own array (as in flat_kernel)
        return replace(state, nngp=nngp, ntk=dot, cov1=cov1, cov2=cov2,
                       is_gaussian=False, fresh=False)

    def chain(self):
        return (self,)

    def flat_kernel(self, state: KernelState, fan_in: int, same: bool, post_diag=None) -> KernelState:
        """The dual on a flat state.  ``post_diag`` = (P(x1, x1), P(x2, x2)) when already known
        (the tiled recursion computes the diagonal once for all tiles)."""
        k11, k22 = state.variances()
        nngp, dot = self.act.dual(k11, state.nngp, k22)
        dot *= state.ntk
        if post_diag is None:
            diag1 = self.act.dual(state.diag1, state.diag1, state.diag1)[0]
            diag2 = diag1 if same else self.act.dual(state.diag2, state.diag2, state.diag2)[0]
        else:
            diag1, diag2 = post_diag
        return KernelState(nngp, dot, diag1, diag2)

    def out_shape(self, shape):
        return _single_shape(self, shape)

    def forward(self, params, x):
        return np.asarray(self.act.fn(x), dtype=x.dtype), x

    def backward(self, params, x, g):
        return g * np.asarray(self.act.deriv(x), dtype=x.dtype)[:, None], 0.0


def Relu():  # noqa: N802 -- neural-tangents' names
    return Activation("relu")


def LeakyRelu(alpha: float = 0.01):  # noqa: N802
    return Activation(f"leaky_relu({float(alpha)!r})")   # by name: it pickles


def Abs():  # noqa: N802
    return Activation("abs")


def Erf():  # noqa: N802
    return Activation("erf")


def Sin():  # noqa: N802
    return Activation("sin")


def Cos():  # noqa: N802
    return Activation("cos")


def Gelu(approximate: bool = False):  # noqa: N802
    if approximate:
        raise ValueError("Gelu: only the exact gelu x Phi(x) is supported (approximate=False)")
    return Activation("gelu")


def Tanh():  # noqa: N802
    return Activation("tanh")


def Sigmoid():  # noqa: N802 -- the logistic function (not neural-tangents' erf-based Sigmoid_like)
    return Activation("sigmoid")


def Softplus():  # noqa: N802
    return Activation("softplus")

