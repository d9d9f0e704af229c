"""A whole network: its output kernels by the spatial recursion, and its finite instances
(parameters, outputs and empirical NTK, memory)."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from .. import blas
from ..seeding import network_rngs
from ..states import KernelState, put_tile, refuse_overflow, tile_bounds
from .combinators import FlagCount, Parallel, Serial, _checked
from .layer import Layer, _is_branches, input_state
from .linear import _AffineParams, _Conv
from .widths import layers


#: A spatial recursion whose kernels have more entries than this (input pairs x position pairs)
#: runs in tiles of input pairs (see :func:`spatial_kernels`).  Not lower: a tiled call adjusts
#: glibc's allocator for the whole process (below), and at 2**16 the claims' own cells took that
#: path, which made a whole quick verify ~25 % slower in CPU (45 sequences of length 8, 129,600
#: entries, would take 11 ms in tiles and take 23 ms whole).
SPLIT_ENTRIES = 2**17
#: Entries of one tile's kernels: large enough that a pass's fixed cost (~0.9 ms per pass of one
#: tile through a 2-block transformer) stays small, small enough for the caches (a transformer
#: costs ~100 ns per entry up to 2**16 entries, ~170 ns at 2**17).  64 sequences of length 8: one
#: tile above the diagonal and the diagonal tiles' upper triangles in one chunk of listed pairs
#: (a chunk holds up to step (step + 1) pairs, the triangles of two diagonal tiles), 51% of the
#: 64 x 64 input pairs in two parts of equal size (one per thread).
TILE_ENTRIES = 2**16


def spatial_kernels(net: Layer, X1: np.ndarray, X2: np.ndarray | None, threads: int = 1) -> KernelState:
    """The output's NNGP and NTK by every layer's :meth:`Layer.kernel` step on the full spatial
    covariance, for validated inputs (N, d), (N, W, C) or (N, H, W, C).  The network must end
    without positions (GlobalAvgPool, Flatten or dense inputs).

    Every step is entrywise in the input pair (given each input's own covariance), so a recursion
    with more than :data:`SPLIT_ENTRIES` entries runs in tiles of input pairs, each carried
    through all layers, only on and above the diagonal when X2 is None (the kernels of (x', x)
    are those of (x, x') transposed, so the output is exactly symmetric; see :func:`_tiled`),
    the tiles spread over up to ``threads`` (at most 2) threads (numpy
    releases the GIL in its loops); the tiles depend on the sizes only, so the result does not
    depend on the thread count.  BLAS runs single-threaded: its products here (the input Gram,
    attention) are small, and a second BLAS thread costs more in synchronisation than it saves
    (see :mod:`ntkcheck.blas`)."""
    n_affine = sum(layer.affine for layer in layers(net))
    n2 = len(X1 if X2 is None else X2)
    with blas.single_threaded():
        if len(X1) * n2 * math.prod(X1.shape[1:-1]) ** 2 <= SPLIT_ENTRIES or len(X1) < 2:
            return _spatial_output(net, X1, X2, n_affine)
        # a 4 MB block allocated and freed raises glibc malloc's dynamic mmap and trim thresholds
        # (to 4 and 8 MB) above every tile array and a tile's working set, so that the arrays
        # come from the heap and freed ones are reused instead of returned and faulted in again
        # (64 sequences of length 8: ~3500 page faults, 4-8 ms of system time per call
        # otherwise).  Process-wide, as after any free of a block that large (glibc's own
        # adjustment); a no-op elsewhere.  Buffers kept per tile would not do: they are fresh
        # pages on each call, and most of the arrays are the steps' outputs.
        np.empty(2**19)
        return _tiled(net, X1, X2, n_affine, threads)


def _tiled(net: Layer, X1: np.ndarray, X2: np.ndarray | None, n_affine: int, threads: int) -> KernelState:
    """:func:`_spatial_output` on tiles of input pairs, assembled.  When X2 is X1, only the tiles
    above the diagonal, mirrored, and the pairs on and above the diagonal of the diagonal tiles,
    in chunks of listed pairs (a state with ``pairs``, see :class:`ntkcheck.states.SpatialState`;
    a diagonal tile would compute both of its halves).  Each tile's input kernels are formed
    from its own inputs (not cut from the whole input Gram, which costs more than they do)."""
    same = X2 is None
    n1, n2 = len(X1), len(X1 if same else X2)
    size = math.prod(X1.shape[1:-1]) ** 2
    step = max(1, math.isqrt(TILE_ENTRIES // size))
    tiles = [t for t in tile_bounds(n1, n2, step, same) if not same or t[0] != t[2]]
    chunks = []
    if same:
        rows, cols = np.concatenate([np.add(np.triu_indices(min(i + step, n1) - i), i)
                                     for i in range(0, n1, step)], axis=1)
        ends = np.linspace(0, len(rows), -(-len(rows) // (step * (step + 1))) + 1).astype(int)
        chunks = [(rows[a:z], cols[a:z]) for a, z in zip(ends[:-1], ends[1:])]

    def run(part):
        if len(part) == 2:          # listed pairs among inputs lo .. hi - 1
            r, c = part
            lo, hi = r.min(), c.max() + 1
            return _spatial_output(net, X1[lo:hi], None, n_affine, (r - lo, c - lo))
        i0, i1, j0, j1 = part
        return _spatial_output(net, X1[i0:i1], (X1 if same else X2)[j0:j1], n_affine)
    parts = tiles + chunks
    with ThreadPoolExecutor(max(1, min(threads, 2))) as pool:
        outs = list(pool.map(run, parts))
    nngp, ntk, diag1, diag2 = np.empty((n1, n2)), np.empty((n1, n2)), np.empty(n1), np.empty(n2)
    for part, out in zip(parts, outs):
        if len(part) == 2:
            r, c = part
            nngp[r, c] = nngp[c, r] = out.nngp[:, 0]
            ntk[r, c] = ntk[c, r] = out.ntk[:, 0]
            diag1[r.min():c.max() + 1] = out.diag1
        else:
            put_tile(nngp, out.nngp, part, same)
            put_tile(ntk, out.ntk, part, same)
            diag1[part[0]:part[1]], diag2[part[2]:part[3]] = out.diag1, out.diag2
    return KernelState(nngp, ntk, diag1, diag1 if same else diag2)


def _spatial_output(net: Layer, X1: np.ndarray, X2: np.ndarray | None, n_affine: int, pairs=None) -> KernelState:
    """The output kernels of inputs X1 and X2 (or of their listed ``pairs``)."""
    # refused by name after each layer that raised a flag (_checked)
    with np.errstate(over="call", divide="call", invalid="call", call=FlagCount()):
        state = replace(input_state(X1, X2, pairs), n_affine=n_affine)
        # an input Gram beyond float64 range is refused at the first layer, as the layer's own
        # search would (it raises no flag on entries that are already infinite)
        first = next(layers(net))
        refuse_overflow([("NNGP kernel", x) for x in (state.cov1, state.cov2, state.nngp) if x is not None],
                        first, int(first.affine), n_affine)
        state = _checked(net, state)
    if isinstance(state, tuple):
        raise ValueError(f"the network ends with {len(state)} branches: join them with FanInSum()")
    if state.spatial:
        raise ValueError(f"the network's output still has positions {state.spatial}: "
                         "end it with GlobalAvgPool() or Flatten()")
    # the entries are searched only after a step that raised a floating-point flag (_checked):
    # an activation that silences its own may hide one
    refuse_overflow((("NNGP kernel", state.nngp), ("NTK kernel", state.ntk)), net, n_affine, n_affine)
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

