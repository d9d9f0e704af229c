"""Hypothesis strategies for specs and inputs, for ntkcheck's tests and yours.

Requires the ``hypothesis`` package (the ``test`` extra).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .activations import NAMES
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
def inputs(draw, n=st.integers(1, 6), d=st.integers(1, 5), scale=st.floats(0.1, 3.0)) -> np.ndarray:
    """An (N, d) float array: Gaussian rows of random scale, drawn from a hypothesis seed."""
    N, dim = draw(n), draw(d)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return draw(scale) * rng.standard_normal((N, dim))


__all__ = ["specs", "inputs", "CLOSED_FORM", "QUADRATURE", "NAMES"]
