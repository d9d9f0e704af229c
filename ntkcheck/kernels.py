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

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .activations import Activation
from .spec import MLP

#: Side of the square tiles the output kernels are computed in: 3 arrays of a
#: tile (~1.5 MB) stay in cache through all layers.
TILE = 160


@dataclass(frozen=True)
class KernelState:
    """Kernels between the rows of X1 and X2 at one point of the network.

    ``nngp`` and ``ntk`` are (N1, N2); ``diag1``/``diag2`` are the NNGP
    variances of X1 and X2 (N1,), (N2,), which the activation step needs.
    A state with 1-D ``nngp`` (N,) holds the entries (x_i, x_i) only: then
    ``diag1`` and ``diag2`` are (N,) and pair entrywise.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    diag1: np.ndarray
    diag2: np.ndarray

    def variances(self) -> tuple[np.ndarray, np.ndarray]:
        """(k11, k22) broadcastable against ``nngp``."""
        if np.ndim(self.nngp) == 1:
            return self.diag1, self.diag2
        return self.diag1[:, None], self.diag2[None, :]


def input_state(X1: np.ndarray, X2: np.ndarray | None) -> KernelState:
    """The input "post-activation" kernel P = x.x'/d (Theta = 0: inputs have no parameters)."""
    d = X1.shape[1]
    same = X2 is None
    X2 = X1 if same else X2
    gram = X1 @ X2.T / d
    # variances by one formula whether or not X2 is given (calls with and without X2 agree)
    diag1 = np.einsum("ij,ij->i", X1, X1) / d
    diag2 = diag1 if same else np.einsum("ij,ij->i", X2, X2) / d
    if same:
        np.fill_diagonal(gram, diag1)   # K(x, x) and the variance agree to the bit
    return KernelState(gram, np.zeros(gram.shape), diag1, diag2)


def dense_step(state: KernelState, a: float, c: float, s_w: float, s_b: float, fan_in: int) -> KernelState:
    """Dense layer ``h = a W x + c b`` (Jacot et al. 2018, proof of Prop. 1 / Thm 1)."""
    fwd, grad = a * a * s_w * s_w * fan_in, a * a * fan_in
    bias_fwd, bias_grad = c * c * s_b * s_b, c * c
    nngp = state.nngp * fwd
    if bias_fwd:
        nngp += bias_fwd
    if grad == fwd:                     # the NTK parameterization: one pass fewer
        ntk = state.ntk + state.nngp
        ntk *= fwd
    else:
        ntk = state.ntk * fwd
        ntk += grad * state.nngp
    if bias_grad:
        ntk += bias_grad
    return KernelState(nngp, ntk, fwd * state.diag1 + bias_fwd, fwd * state.diag2 + bias_fwd)


def activation_step(state: KernelState, act: Activation, same: bool, post_diag=None) -> KernelState:
    """Nonlinearity: P = E[phi phi], Theta_post = E[phi' phi'] Theta.

    ``post_diag`` = (P(x1, x1), P(x2, x2)) when already known (the tiled recursion
    computes the diagonal once for all tiles)."""
    k11, k22 = state.variances()
    nngp, dot = act.dual(k11, state.nngp, k22)
    dot *= state.ntk
    if post_diag is None:
        diag1 = act.dual(state.diag1, state.diag1, state.diag1)[0]
        diag2 = diag1 if same else act.dual(state.diag2, state.diag2, state.diag2)[0]
    else:
        diag1, diag2 = post_diag
    return KernelState(nngp, dot, diag1, diag2)


def _layers(spec: MLP, d_in: int) -> list[tuple[float, float, float, float, int]]:
    """Per dense layer (a, c, s_w, s_b, fan_in), the output scale folded into the readout's a and c."""
    fans = (d_in,) + spec.widths
    out = []
    for l, ((a, c, s_w, s_b), fan) in enumerate(zip(spec.layer_scales(d_in), fans)):
        alpha = spec.output_scale if l == len(fans) - 1 else 1.0
        out.append((alpha * a, alpha * c, s_w, s_b, fan))
    return out


def _diagonal(spec: MLP, d: np.ndarray, d_in: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Post-activation variances P(x, x) entering dense layers 2 ... L+1 and the
    output variances, from the recursion on the entries (x, x) alone.

    Both kernels are positive semi-definite, so |K(x, x')| <= sqrt(K(x, x) K(x', x')):
    a diagonal beyond float range is where the true kernel first overflows, and is
    refused with OverflowError naming the layer (before any N1 x N2 work)."""
    state = KernelState(d, np.zeros_like(d), d, d)
    layers = _layers(spec, d_in)
    posts = []
    with np.errstate(over="ignore", invalid="ignore"):
        for l, layer in enumerate(layers):
            if l > 0:
                state = activation_step(state, spec.act, True)
                posts.append(state.nngp)
            state = dense_step(state, *layer)
            for name, values in (("NNGP", state.nngp), ("NTK", state.ntk)):
                if not np.all(np.isfinite(values)):
                    raise OverflowError(
                        f"the {name} kernel exceeds float64 range at dense layer {l + 1} of {len(layers)}; "
                        "reduce sigma_w, the depth or the input scale")
    return posts, state.nngp


def _recursion(state: KernelState, spec: MLP, d_in: int, same: bool, posts):
    """Yield the state after every dense layer, starting from the input state."""
    for l, layer in enumerate(_layers(spec, d_in)):
        if l > 0:
            state = activation_step(state, spec.act, same, posts[l - 1])
        state = dense_step(state, *layer)
        yield state


def _prepare(spec: MLP, X1, X2):
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be an MLP, got {type(spec).__name__} {spec!r:.40}")
    X1, X2 = check_inputs(X1, X2)
    same = X2 is None
    state = input_state(X1, X2)
    n1 = len(X1)
    both, last = _diagonal(spec, state.diag1 if same else np.concatenate([state.diag1, state.diag2]), X1.shape[1])
    posts = [(p, p) if same else (p[:n1], p[n1:]) for p in both]
    return state, X1.shape[1], same, posts, (last, last) if same else (last[:n1], last[n1:])


def iter_kernel_states(spec: MLP, X1, X2=None):
    """Yield the state after every dense layer: pre-activation kernels K^1 ... K^{L+1}
    (with Theta^l).  The last one is the output's and includes the output scale.
    Raises OverflowError naming the layer where a kernel exceeds float64 range."""
    state, d_in, same, posts, _ = _prepare(spec, X1, X2)
    yield from _recursion(state, spec, d_in, same, posts)


def kernel_states(spec: MLP, X1, X2=None) -> list[KernelState]:
    """All layers' states (see :func:`iter_kernel_states`)."""
    return list(iter_kernel_states(spec, X1, X2))


def _threads() -> int:
    try:
        return max(1, min(2, len(os.sched_getaffinity(0))))
    except AttributeError:      # macOS
        return max(1, min(2, os.cpu_count() or 1))


def output_kernels(spec: MLP, X1, X2=None) -> KernelState:
    """The output's NNGP and NTK in one pass.

    The recursion is entrywise once the diagonal is known, so for closed-form
    activations the output is computed in TILE x TILE tiles, each carried through
    all layers while it is in cache, only on and above the diagonal when X2 is
    None (then mirrored), with tiles spread over two threads (numpy releases
    the GIL); every entry is computed by the same operations whatever the
    tiling, so the result does not depend on the thread count.

    ``spec`` may also be a network of :mod:`ntkcheck.stax` layers.
    """
    if not isinstance(spec, MLP):   # ntkcheck.stax builds on this module, hence the late import
        from .stax import output_kernels as stax_output_kernels
        return stax_output_kernels(spec, X1, X2)
    state, d_in, same, posts, out_diag = _prepare(spec, X1, X2)
    n1, n2 = state.nngp.shape
    if not spec.act.closed_form or n1 * n2 <= 2 * TILE * TILE:
        for out in _recursion(state, spec, d_in, same, posts):
            pass
        return out
    nngp, ntk = np.empty((n1, n2)), np.empty((n1, n2))

    def tile(bounds):
        i0, i1, j0, j1 = bounds
        sub = KernelState(state.nngp[i0:i1, j0:j1], state.ntk[i0:i1, j0:j1], state.diag1[i0:i1], state.diag2[j0:j1])
        sub_posts = [(p1[i0:i1], p2[j0:j1]) for p1, p2 in posts]
        for out in _recursion(sub, spec, d_in, False, sub_posts):
            pass
        for full, part in ((nngp, out.nngp), (ntk, out.ntk)):
            if same and i0 == j0:           # a diagonal tile: its upper triangle, mirrored (exact symmetry)
                lower = np.tril_indices(i1 - i0, -1)
                part[lower] = part.T[lower]
            full[i0:i1, j0:j1] = part
            if same and i0 != j0:
                full[j0:j1, i0:i1] = part.T

    tiles = [(i, min(i + TILE, n1), j, min(j + TILE, n2))
             for i in range(0, n1, TILE) for j in range(i if same else 0, n2, TILE)]
    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(tile, tiles))
    return KernelState(nngp, ntk, *out_diag)


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
