"""Infinite-width NNGP and NTK kernels by the layer recursion.

One function per recursion step, shared by both kernels (the structure of
neural-tangents' ``stax``: a dense step and an activation step):

    dense:       K' = a^2 s_w^2 n P + c^2 s_b^2,   Theta' = (a^2 n P + c^2) + a^2 s_w^2 n Theta_post
    activation:  P  = E[phi(u) phi(v)],            Theta_post = E[phi'(u) phi'(v)] Theta

with (u, v) ~ N(0, K) and, for the layer ``h = a W x + c b`` with
``W ~ N(0, s_w^2)``, ``b ~ N(0, s_b^2)`` and fan-in n.  In the NTK
parameterization (a = sigma_w/sqrt(n), s_w = 1) this is exactly
``K^{l+1} = sigma_w^2 E[phi phi] + sigma_b^2`` and
``Theta^{l+1} = K^{l+1} + sigma_w^2 E[phi' phi'] Theta^l`` (Jacot et al. 2018,
Thm 1 and Prop. 1; Lee et al. 2018, eq. 4).  For the standard and mean-field
parameterizations the same step gives the large-width expectation at the
spec's widths (the NTK then depends on width).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import Activation
from .spec import MLP


@dataclass(frozen=True)
class KernelState:
    """Kernels between the rows of X1 and X2 at one point of the network.

    ``nngp`` and ``ntk`` are (N1, N2); ``diag1``/``diag2`` are the NNGP
    variances of X1 and X2 (N1,), (N2,), which the activation step needs.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    diag1: np.ndarray
    diag2: np.ndarray


def input_state(X1: np.ndarray, X2: np.ndarray | None) -> KernelState:
    """The input "post-activation" kernel P = x.x'/d (Theta = 0: inputs have no parameters)."""
    d = X1.shape[1]
    same = X2 is None
    X2 = X1 if same else X2
    gram = X1 @ X2.T / d
    # the diagonal of the Gram itself, so that K(x, x) and the variances agree to the bit
    diag1 = gram.diagonal().copy() if same else np.einsum("ij,ij->i", X1, X1) / d
    diag2 = diag1 if same else np.einsum("ij,ij->i", X2, X2) / d
    return KernelState(gram, np.zeros_like(gram), diag1, diag2)


def dense_step(state: KernelState, a: float, c: float, s_w: float, s_b: float, fan_in: int) -> KernelState:
    """Dense layer ``h = a W x + c b`` (Jacot et al. 2018, proof of Prop. 1 / Thm 1)."""
    fwd, grad = a * a * s_w * s_w * fan_in, a * a * fan_in
    bias_fwd, bias_grad = c * c * s_b * s_b, c * c
    return KernelState(
        nngp=fwd * state.nngp + bias_fwd,
        ntk=grad * state.nngp + bias_grad + fwd * state.ntk,
        diag1=fwd * state.diag1 + bias_fwd,
        diag2=fwd * state.diag2 + bias_fwd,
    )


def activation_step(state: KernelState, act: Activation, same: bool) -> KernelState:
    """Nonlinearity: P = E[phi phi], Theta_post = E[phi' phi'] Theta."""
    k11, k22 = state.diag1[:, None], state.diag2[None, :]
    nngp, dot = act.dual(k11, state.nngp, k22)
    diag1 = act.dual(state.diag1, state.diag1, state.diag1)[0]
    diag2 = diag1 if same else act.dual(state.diag2, state.diag2, state.diag2)[0]
    return KernelState(nngp, dot * state.ntk, diag1, diag2)


def iter_kernel_states(spec: MLP, X1, X2=None):
    """Yield the state after every dense layer: pre-activation kernels K^1 ... K^{L+1}
    (with Theta^l).  The last one is the output's and includes the output scale."""
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be an MLP, got {type(spec).__name__} {spec!r:.40}")
    X1, X2 = check_inputs(X1, X2)
    same = X2 is None
    state = input_state(X1, X2)
    scales = spec.layer_scales(X1.shape[1])
    fans = (X1.shape[1],) + spec.widths
    for l, ((a, c, s_w, s_b), fan) in enumerate(zip(scales, fans)):
        if l > 0:
            state = activation_step(state, spec.act, same)
        state = dense_step(state, a, c, s_w, s_b, fan)
        if l == len(fans) - 1 and spec.output_scale != 1.0:
            a2 = spec.output_scale**2
            state = KernelState(a2 * state.nngp, a2 * state.ntk, a2 * state.diag1, a2 * state.diag2)
        yield state


def kernel_states(spec: MLP, X1, X2=None) -> list[KernelState]:
    """All layers' states (see :func:`iter_kernel_states`)."""
    return list(iter_kernel_states(spec, X1, X2))


def output_kernels(spec: MLP, X1, X2=None) -> KernelState:
    """The output's NNGP and NTK in one pass, keeping one layer in memory at a time.
    ``spec`` is an MLP or a network of :mod:`ntkcheck.stax` layers."""
    if not isinstance(spec, MLP):   # ntkcheck.stax builds on this module, hence the late import
        from .stax import output_kernels as stax_output_kernels
        return stax_output_kernels(spec, X1, X2)
    for state in iter_kernel_states(spec, X1, X2):
        pass
    return state


def nngp_kernel(spec: MLP, X1, X2=None) -> np.ndarray:
    """The NNGP kernel K^{L+1}(X1, X2) of the network's output (Lee et al. 2018, eq. 4)."""
    return output_kernels(spec, X1, X2).nngp


def ntk_kernel(spec: MLP, X1, X2=None) -> np.ndarray:
    """The neural tangent kernel Theta^{L+1}(X1, X2) (Jacot et al. 2018, Thm 1)."""
    return output_kernels(spec, X1, X2).ntk


def check_inputs(X1, X2=None, names=("X1", "X2")) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate inputs: finite float arrays of shape (N, d), equal d. Raises ValueError
    naming the argument (``names``)."""
    X1 = _as_inputs(X1, names[0])
    if X2 is not None:
        X2 = _as_inputs(X2, names[1])
        if X2.shape[1] != X1.shape[1]:
            raise ValueError(f"X1 and X2 must have the same input dimension, got {X1.shape[1]} and {X2.shape[1]}")
    return X1, X2


def _as_inputs(X, name: str) -> np.ndarray:
    try:
        raw = np.asarray(X)
        arr = None if raw.dtype.kind == "c" else np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (N, d)") from None
    if arr is None:   # a cast to float would silently drop the imaginary part
        raise ValueError(f"{name} must be real, got complex values")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, d) with N, d >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr
