"""The layer protocol, the spatial input state and the argument checks every layer shares."""
from __future__ import annotations

import numbers

import numpy as np

from ..states import SpatialState, check_inputs


PADDINGS = ("VALID", "SAME", "CIRCULAR")


_LETTERS = "abcdefghijklm"


def input_state(X1: np.ndarray, X2: np.ndarray | None, pairs=None) -> SpatialState:
    """The input kernel x . x' / C over channels, for every pair of positions (Theta = 0); with
    ``pairs`` (i1, i2), for the listed input pairs only (see :class:`ntkcheck.states.SpatialState`)."""
    k, C = X1.ndim - 2, X1.shape[-1]
    other = X1 if X2 is None else X2
    if pairs is not None:
        gram = _paired_gram(X1[pairs[0]], other[pairs[1]], k)[:, None]
    else:   # one matrix product (N2 P', C) x (C, N1 P), viewed as (N1, N2, L1, L1', ...)
        spatial = X1.shape[1:-1]
        flat = other.reshape(-1, C) @ X1.reshape(-1, C).T
        flat /= C
        gram = flat.reshape((len(other),) + spatial + (len(X1),) + spatial).transpose(
            (k + 1, 0) + tuple(a for d in range(k) for a in (k + 2 + d, 1 + d)))
    return SpatialState(gram, np.zeros_like(gram), _paired_gram(X1, X1, k),
                        None if X2 is None else _paired_gram(X2, X2, k),
                        X1.shape[1:], is_gaussian=False, fresh=False, pairs=pairs)


def _paired_gram(A: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """a . b / C over channels between input p of A and input p of B, for every pair of
    positions: (P, L1, L1', ..., Lk, Lk'), one batched matrix product."""
    spatial, C = A.shape[1:-1], A.shape[-1]
    out = A.reshape(len(A), -1, C) @ B.reshape(len(B), -1, C).transpose(0, 2, 1)
    out /= C
    return out.reshape((len(A),) + spatial * 2).transpose((0,) + tuple(a for d in range(k) for a in (1 + d, 1 + k + d)))


class Layer:
    """A layer of a network.  ``kernel(state)`` is its step of the infinite-width recursion;
    branching layers take and return tuples of states.

    Finite networks, M at once (see :func:`init_params`, :func:`apply`):
    ``init(rngs, shape, dtype) -> (params, out_shape)`` draws the parameters of network i from
    ``rngs[i]`` for one input of ``shape`` (positions..., channels); ``forward(params, x) ->
    (y, cache)`` maps x (M or 1, N, *shape) to y (M, N, *out_shape); ``backward(params, cache, g)
    -> (g_in, ntk)`` maps cotangents g (M, K, N, *out_shape) of K outputs to those of the input
    and returns the layer's parameters' share of sum_k Theta_hat_k, (M, N, N), or 0.0.
    Branching layers take and return tuples of shapes, arrays and cotangents."""

    def kernel(self, state):
        raise NotImplementedError

    def out_shape(self, shape):
        """The shape of one input after the layer, for a parameter-free layer."""
        raise NotImplementedError

    def init(self, rngs, shape, dtype=np.float64):
        return (), self.out_shape(shape)

    def cache_size(self, shape) -> int:
        """Entries per input a finite network keeps for the backward pass besides the layer's
        output (memory estimates)."""
        return 0

    #: Dense, Conv, ConvLocal, ConvTranspose (and GlobalSelfAttention, which ends in an affine map): the
    #: layers :func:`with_width` scales and kernel overflow checks count.
    affine = False
    #: Why the exact conditional sampler cannot run this layer (None: it can).
    exact_refusal: str | None = None

    def network(self) -> "Layer":
        """The network of layers (itself; an :class:`ntkcheck.MLP` builds one)."""
        return self

    def check_inputs(self, X1, X2=None, names=("X1", "X2")):
        """Inputs (N, d), (N, W, C) or (N, H, W, C), validated (see :func:`_check_inputs`)."""
        return _check_inputs(X1, X2, names)

    def chain(self) -> tuple["Layer", ...] | None:
        """The layers in order when every one acts on inputs (N, d) entry by entry of the kernel
        (Dense and nonlinearities: the flat recursion of :mod:`ntkcheck.kernels`, tiled), else None."""
        return None

    def _fail(self, msg: str):
        raise ValueError(f"{self!r}: {msg}")

    def _single(self, state) -> SpatialState:
        if isinstance(state, tuple):
            self._fail(f"got {len(state)} branches (FanOut without FanInSum); expected one input")
        return state


def _is_branches(shape) -> bool:
    return isinstance(shape, tuple) and bool(shape) and isinstance(shape[0], tuple)


def _single_shape(layer, shape):
    if _is_branches(shape):
        layer._fail(f"got {len(shape)} branches (FanOut without FanInSum); expected one input")
    return shape


def _variances(cov: np.ndarray, k: int) -> np.ndarray:
    """K(x,i; x,i) from (N, L1, L1, L2, L2, ...): the diagonal of every position pair."""
    sp = _LETTERS[:k]
    return np.einsum(f"n{''.join(c + c for c in sp)}->n{sp}", cov)


def _pairs_last(x, nb, k):
    """(batch..., L1, L1', ..., Lk, Lk') -> (batch..., L1, ..., Lk, L1', ..., Lk')."""
    return x.transpose(tuple(range(nb)) + tuple(nb + 2 * d for d in range(k)) + tuple(nb + 2 * d + 1 for d in range(k)))


def _pairs_back(x, nb, k):
    """The inverse of :func:`_pairs_last`."""
    return x.transpose(tuple(range(nb)) + tuple(a for d in range(k) for a in (nb + d, nb + k + d)))


def _spread(var: np.ndarray, k: int, which: int, nb: int) -> np.ndarray:
    """Variances (N, L1, ..., Lk) broadcast against kernels with ``nb`` batch axes, as the
    first (which=0) or second (which=1) member of each pair (and of the batch pair).  Repeated
    over the other member's positions, so that a product with a kernel broadcasts over batch
    axes only (with size-1 position axes numpy runs one short inner loop per row, ~4x slower)."""
    shape = [1] * (nb + 2 * k)
    if nb == 2:
        shape[which] = var.shape[0]
    else:
        shape[0] = var.shape[0]
    full = list(shape)
    for d in range(k):
        shape[nb + 2 * d + which] = full[nb + 2 * d] = full[nb + 2 * d + 1] = var.shape[1 + d]
    out = np.empty(full, dtype=var.dtype)      # (np.broadcast_to costs ~10 us more per call)
    out[...] = var.reshape(shape)
    return out


def _spread_pairs(state: SpatialState, var1: np.ndarray, var2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-input values var1 (of ``cov1``'s inputs) and var2 (of ``cov2``'s), (N, L1, ..., Lk),
    as the first and the second member of every entry of ``state``'s kernels (see
    :func:`_spread`).  When the state lists input pairs they are gathered per entry and not
    repeated over the other member's positions (size-1 axes): a repeated copy would be as
    large as the kernels, and a step's work on it (a dual's square roots and divisions) costs
    more than the shorter inner loops of its products."""
    if state.pairs is None:
        return _spread(var1, k, 0, 2), _spread(var2, k, 1, 2)

    def member(v, i, which):    # (P, 1, L1, 1, ..., Lk, 1) or (P, 1, 1, L1, ..., 1, Lk)
        return v[i].reshape((len(i), 1) + tuple(n for L in v.shape[1:] for n in ((L, 1), (1, L))[which]))
    return member(var1, state.pairs[0], 0), member(var2, state.pairs[1], 1)


def _check_spatial(layer, shape, k):
    if len(shape) - 1 != k:
        layer._fail(f"acts on {k} spatial axes but its input has shape {shape} "
                    f"({len(shape) - 1} spatial axes, channels last)")


def _check_window(layer, name):
    """Window (filter) shape and strides as int tuples (strides default to 1), padding upper case."""
    window = _int_tuple(layer, name, getattr(layer, name))
    object.__setattr__(layer, name, window)
    strides = (1,) * len(window) if layer.strides is None else layer.strides
    object.__setattr__(layer, "strides", _int_tuple(layer, "strides", strides, len(window)))
    _check_padding(layer)


def _check_padding(layer):
    if not isinstance(layer.padding, str) or layer.padding.upper() not in PADDINGS:
        raise ValueError(f"{type(layer).__name__}: padding must be one of {PADDINGS}, got {layer.padding!r}")
    object.__setattr__(layer, "padding", layer.padding.upper())


def _check_positive_int(layer, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{type(layer).__name__}: {name} must be an integer >= 1, got {value!r}")


def _int_tuple(layer, name, value, length=None):
    value = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if (not out or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in out)
            or (length is not None and len(out) != length)):
        want = f"{length} " if length is not None else ""
        raise ValueError(f"{type(layer).__name__}: {name} must be a tuple of {want}integers >= 1, got {value!r}")
    return tuple(int(v) for v in out)


def _check_layers(name, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"{name}: argument {i} must be a layer, got {type(layer).__name__} {layer!r:.40}")
    return tuple(layers)


def _check_inputs(X1, X2, names=("X1", "X2")):
    """Inputs (N, d), (N, W, C) or (N, H, W, C) with the same shape per input; the values are
    checked (numeric, real, finite) by :func:`ntkcheck.kernels.check_inputs` on flattened rows."""
    shapes = []
    for X, name in ((X1, names[0]), (X2, names[1])):
        if X is None:
            continue
        try:
            shape = np.shape(X)
        except ValueError:     # ragged nested sequences
            shape = ()
        if not 2 <= len(shape) <= 2 + len(_LETTERS) // 2 or min(shape) < 1:
            raise ValueError(f"{name} must have shape (N, d), (N, W, C) or (N, H, W, C) with sizes >= 1, "
                             f"got shape {shape}")
        shapes.append(shape)
    if len(shapes) == 2 and shapes[0][1:] != shapes[1][1:]:
        raise ValueError(f"X1 and X2 must have the same shape per input, got {shapes[0][1:]} and {shapes[1][1:]}")
    flat = check_inputs(*(None if X is None else np.reshape(X, (len(X), -1)) for X in (X1, X2)), names=names)
    return tuple(None if F is None else F.reshape(shape) for F, shape in zip(flat, shapes + [None]))

