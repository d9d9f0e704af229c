"""A whole network: its output kernels by the spatial recursion, and its finite instances
(parameters, outputs and empirical NTK, memory)."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ..seeding import network_rngs
from ..states import KernelState, SpatialState
from .combinators import Parallel, Serial, _checked
from .layer import Layer, _is_branches, input_state
from .linear import _AffineParams, _Conv
from .widths import layers


#: A spatial recursion whose kernels have more entries than this (input pairs x position pairs)
#: runs as two row blocks of X1 on up to two threads (numpy releases the GIL in its loops).  Every
#: step is entrywise in the input pair, so each entry is computed by the same operations; the
#: split depends on the sizes only, so the result does not depend on the thread count.
SPLIT_ENTRIES = 2**21


def spatial_kernels(net: Layer, X1: np.ndarray, X2: np.ndarray | None, threads: int = 1) -> KernelState:
    """The output's NNGP and NTK by every layer's :meth:`Layer.kernel` step on the full spatial
    covariance, for validated inputs (N, d), (N, W, C) or (N, H, W, C).  The network must end
    without positions (GlobalAvgPool, Flatten or dense inputs)."""
    with np.errstate(over="ignore"):        # an input Gram beyond float64 is refused at the first layer
        state = replace(input_state(X1, X2), n_affine=sum(layer.affine for layer in layers(net)))
    if state.nngp.size <= SPLIT_ENTRIES or len(X1) < 2:
        return _spatial_output(net, state)
    cov2 = state.cov1 if state.cov2 is None else state.cov2
    half = len(X1) // 2
    blocks = [replace(state, nngp=state.nngp[a:b], ntk=state.ntk[a:b], cov1=state.cov1[a:b], cov2=cov2)
              for a, b in ((0, half), (half, len(X1)))]
    with ThreadPoolExecutor(max(1, min(threads, 2))) as pool:
        parts = list(pool.map(lambda block: _spatial_output(net, block), blocks))
    diag1 = np.concatenate([p.diag1 for p in parts])
    return KernelState(np.concatenate([p.nngp for p in parts]), np.concatenate([p.ntk for p in parts]),
                       diag1, diag1 if X2 is None else parts[0].diag2)


def _spatial_output(net: Layer, state: SpatialState) -> KernelState:
    with np.errstate(over="ignore", invalid="ignore"):    # refused by name after each layer (_checked)
        state = _checked(net, state)
    if isinstance(state, tuple):
        raise ValueError(f"the network ends with {len(state)} branches: join them with FanInSum()")
    if state.spatial:
        raise ValueError(f"the network's output still has positions {state.spatial}: "
                         "end it with GlobalAvgPool() or Flatten()")
    cov2 = state.cov1 if state.cov2 is None else state.cov2
    return KernelState(state.nngp, state.ntk, state.cov1, cov2)


def flat_chain(net: Layer) -> tuple[Layer, ...] | None:
    """The layers of ``net`` when it is Dense layers with at most one nonlinearity after each
    (each nonlinearity then sees a Gaussian input), acting on inputs (N, d) entry by entry of
    the kernel; else None.  An :class:`ntkcheck.MLP`'s network is one."""
    layers = net.chain()
    if not layers or not layers[0].affine:
        return None
    for prev, layer in zip(layers, layers[1:]):
        if not (prev.affine or layer.affine):
            return None
    return layers


def init_params(net: Layer, shape: tuple[int, ...], seed, start: int = 0, stop: int = 1,
                dtype=np.float64):
    """Initial parameters of networks ``start .. stop-1`` of the run seeded by ``seed``, for inputs
    of ``shape`` (d,), (W, C) or (H, W, C).  Network i draws every affine layer's W then b, in
    network order, from its own generator (:func:`ntkcheck.seeding.network_rngs`), so the same i
    is the same network whatever the chunking -- and a serial of Dense layers draws what the
    equivalent :class:`ntkcheck.MLP` draws (a bias is drawn even when ``b_std`` is None)."""
    output_shape(net, shape)
    return net.init(network_rngs(seed, start, stop), tuple(shape), dtype)[0]


def output_shape(net: Layer, shape: tuple[int, ...]) -> tuple[int]:
    """(out,): the output shape of one input of ``shape``; a ValueError naming the layer when the
    shapes do not fit, or when the output has branches or positions."""
    out = net.init([_NoDraw()], tuple(shape))[1]
    if _is_branches(out):
        raise ValueError(f"the network ends with {len(out)} branches: join them with FanInSum()")
    if len(out) != 1:
        raise ValueError(f"the network's output still has positions {out[:-1]}: "
                         "end it with GlobalAvgPool() or Flatten()")
    return out


def outputs_and_ntk(net: Layer, params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs f (M, N, out) and empirical NTKs Theta_hat(X, X) (M, N, N) of the networks of
    ``params``; for out > 1 the NTK is the mean over outputs of each output's kernel (as
    :mod:`ntkcheck.networks`).  One forward pass and one backward pass with the ``out`` unit
    cotangents batched; every affine layer adds its parameters' share of the tangent kernel
    (Jacot et al. 2018, proof of Thm 1: Theta_hat = sum over parameters of df/dp df'/dp)."""
    dtype = _first_weight(params).dtype
    f, cache = net.forward(params, np.asarray(X, dtype=dtype)[None])
    M, N, d_out = f.shape
    unit = np.broadcast_to(np.eye(d_out, dtype=dtype)[None, :, None, :], (M, d_out, N, d_out))
    _, ntk = net.backward(params, cache, unit)
    return f, ntk / d_out


def bytes_per_network(net: Layer, shape: tuple[int, ...], n_inputs: int, itemsize: int = 8) -> int:
    """Working memory of one network in :func:`outputs_and_ntk` (an upper estimate): its
    parameters, and per layer its output kept for the backward pass, conv patches and cotangents of
    every output (with a 2x allowance for the temporaries of the NTK terms)."""
    params = net.init([_NoDraw()], tuple(shape))[0]
    d_out = output_shape(net, shape)[0]
    total = sum(W.size + b.size for W, b in _affine_params(params))
    total += n_inputs * (2 + 2 * d_out) * _activation_size(net, tuple(shape))[0]
    return itemsize * total


class _NoDraw:
    """A stand-in generator: only the parameters' shapes are needed."""

    def standard_normal(self, out, dtype=None):
        return out


def _activation_size(net: Layer, shape) -> tuple[int, tuple]:
    """Sum over layers of one input's output size (conv patches included), and the output shape."""
    if isinstance(net, Serial):
        total = 0
        for layer in net.layers:
            size, shape = _activation_size(layer, shape)
            total += size
        return total, shape
    if isinstance(net, Parallel):
        parts = [_activation_size(layer, s) for layer, s in zip(net.layers, shape)]
        return sum(n for n, _ in parts), tuple(o for _, o in parts)
    out = net.init([_NoDraw()], shape)[1]
    size = sum(math.prod(s) for s in out) if _is_branches(out) else math.prod(out)
    if isinstance(net, _Conv):      # its patches
        size += math.prod(out[:-1]) * shape[-1] * math.prod(net.filter_shape)
    size += net.cache_size(shape)
    return size, out


def _affine_params(params):
    if isinstance(params, _AffineParams):
        yield params
    elif isinstance(params, tuple):
        for p in params:
            yield from _affine_params(p)


def _first_weight(params):
    for W, _ in _affine_params(params):
        return W
    raise ValueError("the network has no Dense or Conv layer (no parameters)")

