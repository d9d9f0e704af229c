"""Infinite-width NNGP and NTK kernels by the layer recursion.

Every layer of a network owns its step of the recursion (:mod:`ntkcheck.stax`; an
:class:`ntkcheck.MLP` is the network ``serial(Dense, act, ..., Dense)``), the structure of
neural-tangents' ``stax``; this module only drives the steps:

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

A network of Dense layers and nonlinearities on inputs (N, d) (every MLP) runs each layer's
``flat_kernel`` step on N1 x N2 arrays, which is entrywise once the diagonal is known, so it
is tiled; any other network runs each layer's ``kernel`` step on the full spatial covariance.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
import numpy as np

from .states import KernelState, put_tile, refuse_overflow, tile_bounds
from .states import check_inputs  # noqa: F401 -- its public name here
from .stax.network import flat_chain, spatial_kernels

#: Side of the square tiles the output kernels are computed in: 3 arrays of a
#: tile (~1.5 MB) stay in cache through all layers.
TILE = 160


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


def network(spec):
    """The network of layers of ``spec`` (an :class:`ntkcheck.MLP` or a stax network)."""
    build = getattr(type(spec), "network", None)
    if not callable(build):
        raise ValueError(f"spec must be an MLP or a stax network, got {type(spec).__name__} {spec!r:.40}")
    return spec.network()


def _flat_steps(layers, d_in: int):
    """(layer, fan_in) per layer of a flat chain on inputs of dimension ``d_in``."""
    steps, fan = [], d_in
    for layer in layers:
        steps.append((layer, fan))
        fan = layer.out_dim if layer.affine else fan
    return steps


def _diagonal(steps, d: np.ndarray, ntk: bool = True) -> list[np.ndarray]:
    """The variances after every step, from the recursion on the entries (x, x) alone.

    Both kernels are positive semi-definite, so |K(x, x')| <= sqrt(K(x, x) K(x', x')):
    a diagonal beyond float range is where the true kernel first overflows, and is
    refused with OverflowError naming the layer and the kernel (before any N1 x N2
    work).  The NTK's diagonal is checked only if ``ntk`` (the NNGP does not depend on
    it, so an NNGP is computed wherever it is finite)."""
    state = KernelState(d, np.zeros_like(d), d, d)
    n_affine = sum(layer.affine for layer, _ in steps)
    out, k = [], 0
    with np.errstate(over="ignore", invalid="ignore"):
        for layer, fan in steps:
            state = layer.flat_kernel(state, fan, True)
            out.append(state.nngp)
            if not layer.affine:
                continue
            k += 1
            refuse_overflow((("NNGP kernel", state.nngp), ("NTK kernel", state.ntk))[:1 + ntk], layer, k, n_affine)
    return out


def _recursion(state: KernelState, steps, same: bool, diags):
    """Yield (layer, state) after every step, starting from the input state."""
    for (layer, fan), diag in zip(steps, diags):
        state = layer.flat_kernel(state, fan, same, None if layer.affine else diag)
        yield layer, state


def _prepare(spec, X1, X2, ntk: bool = True):
    """(network, inputs, flat steps or None, flat state or None, same, diagonals per step, output diagonal);
    ``ntk`` False: the NTK is not needed (its overflow is not refused)."""
    net = network(spec)
    X1, X2 = spec.check_inputs(X1, X2)
    layers = flat_chain(net) if X1.ndim == 2 else None
    if layers is None:
        return net, X1, X2, None, None, None, None, None
    steps = _flat_steps(layers, X1.shape[1])
    same = X2 is None
    state = input_state(X1, X2)
    n1 = len(X1)
    both = _diagonal(steps, state.diag1 if same else np.concatenate([state.diag1, state.diag2]), ntk)
    diags = [(p, p) if same else (p[:n1], p[n1:]) for p in both]
    return net, X1, X2, steps, state, same, diags, diags[-1]


def iter_kernel_states(spec, X1, X2=None):
    """Yield the state after every dense layer: pre-activation kernels K^1 ... K^{L+1}
    (with Theta^l).  The last one is the output's and includes the output scale.
    Raises OverflowError naming the layer where a kernel exceeds float64 range.
    For networks of Dense layers and nonlinearities on inputs (N, d)."""
    net, _, _, steps, state, same, diags, _ = _prepare(spec, X1, X2)
    if steps is None:
        raise ValueError(f"kernel_states needs Dense layers and nonlinearities on inputs (N, d); "
                         f"use output_kernels for {net!r:.60}")
    for layer, state in _recursion(state, steps, same, diags):
        if layer.affine:
            yield state


def kernel_states(spec, X1, X2=None) -> list[KernelState]:
    """All layers' states (see :func:`iter_kernel_states`)."""
    return list(iter_kernel_states(spec, X1, X2))


def _threads() -> int:
    try:
        return max(1, min(2, len(os.sched_getaffinity(0))))
    except AttributeError:      # macOS
        return max(1, min(2, os.cpu_count() or 1))


def output_kernels(spec, X1, X2=None) -> KernelState:
    """The output's NNGP and NTK in one pass, for an :class:`ntkcheck.MLP` or a network of
    :mod:`ntkcheck.stax` layers (inputs (N, d), (N, W, C) or (N, H, W, C)).

    For Dense layers and nonlinearities on inputs (N, d) the recursion is entrywise once
    the diagonal is known, so for closed-form activations the output is computed in
    TILE x TILE tiles, each carried through all layers while it is in cache, only on and
    above the diagonal when X2 is None (then mirrored), with tiles spread over two threads
    (numpy releases the GIL); every entry is computed by the same operations whatever the
    tiling, so the result does not depend on the thread count.  Other networks: every
    layer's step on the full spatial covariance (:func:`ntkcheck.stax.spatial_kernels`).
    """
    return _output_kernels(spec, X1, X2, True)


def _output_kernels(spec, X1, X2, need_ntk: bool) -> KernelState:
    """:func:`output_kernels`; ``need_ntk`` False: a flat network's NTK may exceed float64
    range (it is then not finite, and only the NNGP may be used)."""
    net, X1, X2, steps, state, same, diags, out_diag = _prepare(spec, X1, X2, need_ntk)
    if steps is None:
        return spatial_kernels(net, X1, X2, _threads())
    n1, n2 = state.nngp.shape
    closed = all(layer.affine or layer.act.closed_form for layer, _ in steps)
    # an NTK beyond float range was refused unless unneeded: then its overflow is no news
    quiet = {} if need_ntk else {"over": "ignore", "invalid": "ignore"}
    if not closed or n1 * n2 <= 2 * TILE * TILE:
        with np.errstate(**quiet):
            for _, out in _recursion(state, steps, same, diags):
                pass
        return out
    nngp, ntk = np.empty((n1, n2)), np.empty((n1, n2))

    def tile(bounds):
        i0, i1, j0, j1 = bounds
        sub = KernelState(state.nngp[i0:i1, j0:j1], state.ntk[i0:i1, j0:j1], state.diag1[i0:i1], state.diag2[j0:j1])
        sub_diags = [(p1[i0:i1], p2[j0:j1]) for p1, p2 in diags]
        with np.errstate(**quiet):      # per thread: the error state is not inherited
            for _, out in _recursion(sub, steps, False, sub_diags):
                pass
        put_tile(nngp, out.nngp, bounds, same)
        put_tile(ntk, out.ntk, bounds, same)

    tiles = tile_bounds(n1, n2, TILE, same)
    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(tile, tiles))
    return KernelState(nngp, ntk, *out_diag)


def nngp_kernel(spec, X1, X2=None) -> np.ndarray:
    """The NNGP kernel K^{L+1}(X1, X2) of the network's output (Lee et al. 2018, eq. 4);
    computed wherever it is finite, even where the NTK exceeds float64 range."""
    return _output_kernels(spec, X1, X2, False).nngp


def ntk_kernel(spec, X1, X2=None) -> np.ndarray:
    """The neural tangent kernel Theta^{L+1}(X1, X2) (Jacot et al. 2018, Thm 1)."""
    return output_kernels(spec, X1, X2).ntk
