"""Hypothesis strategies for specs and inputs, for ntkcheck's tests and yours.

Requires the ``hypothesis`` package (the ``test`` extra); :func:`neural_tangents_pairs` also
needs neural-tangents.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .activations import NAMES
from .interop import to_neural_tangents
from .spec import MLP

#: Activations with closed-form duals (cheap enough for many examples).
CLOSED_FORM = ("relu", "leaky_relu(0.2)", "abs", "identity", "erf", "sin", "cos", "gelu")
#: Activations whose duals need quadrature.
QUADRATURE = ("tanh", "sigmoid", "softplus")


@st.composite
def specs(draw, activations=CLOSED_FORM, max_depth: int = 4, widths=st.integers(1, 64),
          parameterizations=("ntk",), sigma_w=st.floats(0.5, 2.0), sigma_b=st.floats(0.0, 1.0)) -> MLP:
    """An :class:`MLP` with the given choices of activation and parameterization."""
    depth = draw(st.integers(1, max_depth))
    return MLP(
        depth=depth,
        width=draw(widths),
        activation=draw(st.sampled_from(activations)),
        sigma_w=draw(sigma_w),
        sigma_b=draw(sigma_b),
        parameterization=draw(st.sampled_from(parameterizations)),
    )


@st.composite
def stax_networks(draw, spatial=(0, 1, 2), activations=CLOSED_FORM, max_blocks: int = 3,
                  parameterizations=("ntk", "standard"), max_positions: int = 5):
    """A pair (network, shape of one input) of :mod:`ntkcheck.stax` layers: an affine stem, then
    blocks (nonlinearity + Dense/Conv with any padding and stride, residual blocks
    ``FanOut(2), parallel(serial(nonlinearity, affine), Identity()), FanInSum()``, AvgPool), then a
    nonlinearity, GlobalAvgPool or Flatten and a Dense readout.  ``spatial``: the numbers of
    spatial axes to choose from (0: inputs (N, d))."""
    from . import stax as S

    k = draw(st.sampled_from(spatial))
    sizes = [draw(st.integers(1, max_positions)) for _ in range(k)]
    shape = tuple(sizes) + (draw(st.integers(1, 3)),)
    param = draw(st.sampled_from(parameterizations))
    width = draw(st.integers(1, 8))

    def affine(keep_shape: bool):
        W_std, b_std = draw(st.floats(0.5, 2.0)), draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
        if k == 0 or draw(st.booleans()):
            return S.Dense(width, W_std, b_std, param)
        padding = draw(st.sampled_from(("SAME", "CIRCULAR") if keep_shape else S.PADDINGS))
        filt = tuple(draw(st.integers(1, L if padding == "VALID" else 3)) for L in sizes)
        strides = (1,) * k if keep_shape else tuple(draw(st.integers(1, 2)) for _ in sizes)
        if not keep_shape:
            sizes[:] = [(L - f) // s + 1 if padding == "VALID" else -(-L // s) for L, f, s in zip(sizes, filt, strides)]
        return S.Conv(width, filt, strides, padding, W_std, b_std, param)

    act = lambda: S.Activation(draw(st.sampled_from(activations)))  # noqa: E731
    layers = [affine(False)]
    for _ in range(draw(st.integers(0, max_blocks))):
        kind = draw(st.sampled_from(("plain", "residual", "pool") if k else ("plain", "residual")))
        if kind == "plain":
            layers += [act(), affine(False)]
        elif kind == "residual":
            layers += [S.FanOut(2), S.parallel(S.serial(act(), affine(True)), S.Identity()), S.FanInSum()]
        else:
            window = tuple(draw(st.integers(1, 2)) for _ in sizes)
            layers.append(S.AvgPool(window, window, "SAME"))
            sizes[:] = [-(-L // w) for L, w in zip(sizes, window)]
    layers += [act(), draw(st.sampled_from((S.GlobalAvgPool(), S.Flatten()))), S.Dense(1, parameterization=param)]
    return S.serial(*layers), shape


def neural_tangents_pairs(networks=None):
    """Pairs (drawn, kernel_fn): a draw of ``networks`` -- a strategy of :class:`MLP` specs or
    :mod:`ntkcheck.stax` networks, or of (network, input shape) pairs as :func:`stax_networks`
    draws them (the default) -- and neural-tangents' ``kernel_fn`` of the same network
    (:func:`ntkcheck.interop.to_neural_tangents`), for property tests of a kernel against
    neural-tangents or of ``assert_kernel(kernel_fn, ...)``.  The activations must be ones
    neural-tangents has in closed form (:data:`ntkcheck.interop.ACTIVATIONS`, leaky relu: all of
    :data:`CLOSED_FORM`)."""
    def pair(drawn):
        return drawn, to_neural_tangents(drawn[0] if isinstance(drawn, tuple) else drawn)[2]
    return (stax_networks() if networks is None else networks).map(pair)


@st.composite
def inputs(draw, n=st.integers(1, 6), d=st.integers(1, 5), scale=st.floats(0.1, 3.0)) -> np.ndarray:
    """An (N, d) float array: Gaussian rows of random scale, drawn from a hypothesis seed."""
    N, dim = draw(n), draw(d)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return draw(scale) * rng.standard_normal((N, dim))


__all__ = ["specs", "stax_networks", "neural_tangents_pairs", "inputs", "CLOSED_FORM", "QUADRATURE", "NAMES"]
