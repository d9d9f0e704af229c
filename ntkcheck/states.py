"""The kernel states the layer recursion carries, and the checks every step shares.

:class:`KernelState` holds the NNGP and NTK between the rows of two inputs (N, d) (the flat
recursion of :mod:`ntkcheck.kernels`), :class:`SpatialState` the same over (input, position)
pairs (every :mod:`ntkcheck.stax` layer's ``kernel`` step).  This module sits below both the
layers and :mod:`ntkcheck.kernels`, so neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np


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


@dataclass(frozen=True)
class SpatialState:
    """Kernels between inputs X1 and X2 at one point of a network.

    ``nngp``, ``ntk``: (N1, N2, L1, L1', L2, L2', ...) -- for every spatial dimension a pair of
    axes (position in x1, position in x2), neural-tangents' layout.  ``cov1``: (N1, L1, L1', ...),
    the covariance of each input of X1 with itself over all position pairs; ``cov2`` likewise for
    X2, or None when X2 is X1 (then ``nngp`` is square and ``cov1`` serves both).
    ``shape``: one input's shape after the layer, (L1, L2, ..., channels).
    ``is_gaussian``: the entries are jointly Gaussian (after an affine layer, not after a
    nonlinearity or Flatten); a nonlinearity needs it to apply its dual kernel.
    ``fresh``: the value is an affine layer's output, zero-mean and uncorrelated with any
    other branch (what a sum of branches needs for its kernel to be the sum of kernels).
    ``affine_seen`` of the network's ``n_affine`` affine layers (depth first) are behind
    the value: where an overflow error says it arose.
    ``pairs``: None, or index arrays (i1, i2) of length P: then ``nngp`` and ``ntk`` are (P, 1,
    L1, L1', ...), entry p between input i1[p] of ``cov1`` and input i2[p] of ``cov2`` (of
    ``cov1`` when it is None) -- a list of input pairs, such as the upper triangle of a square
    kernel, instead of all of them.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    cov1: np.ndarray
    cov2: np.ndarray | None
    shape: tuple[int, ...]
    is_gaussian: bool
    fresh: bool
    affine_seen: int = 0
    n_affine: int = 0
    pairs: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[:-1]

    def map(self, fn: Callable[[np.ndarray, int], np.ndarray], **changes) -> "SpatialState":
        """Apply a linear map of the spatial axes, ``fn(array, n_batch_axes)``, to every kernel."""
        return replace(self, nngp=fn(self.nngp, 2), ntk=fn(self.ntk, 2), cov1=fn(self.cov1, 1),
                       cov2=None if self.cov2 is None else fn(self.cov2, 1), **changes)


def tile_bounds(n1: int, n2: int, step: int, same: bool) -> list[tuple[int, int, int, int]]:
    """Tiles (i0, i1, j0, j1) of an (n1, n2) kernel, ``step`` rows and columns each; only on and
    above the diagonal when ``same`` (X2 is X1: the rest is mirrored by :func:`put_tile`)."""
    return [(i, min(i + step, n1), j, min(j + step, n2))
            for i in range(0, n1, step) for j in range(i if same else 0, n2, step)]


def put_tile(full: np.ndarray, part: np.ndarray, bounds: tuple[int, int, int, int], same: bool) -> None:
    """Write a tile's kernel into ``full``; when ``same``, mirrored across the diagonal, and a
    diagonal tile's upper triangle mirrored onto its lower one (exact symmetry)."""
    i0, i1, j0, j1 = bounds
    if same and i0 == j0:
        lower = np.tril_indices(i1 - i0, -1)
        part[lower] = part.T[lower]
    full[i0:i1, j0:j1] = part
    if same and i0 != j0:
        full[j0:j1, i0:i1] = part.T


def refuse_overflow(values, layer, k: int, n: int) -> None:
    """An OverflowError naming the first of ``values``, pairs (name, array) of kernels or sampled
    quantities, with an entry that is not finite, and where: the ``layer`` that is affine layer
    ``k`` of the network's ``n`` Dense and Conv layers (counted depth first), or a parameter-free
    ``layer`` after affine layer ``k``.  On finite inputs float64 gives NaN only by way of an inf
    (inf - inf, 0 * inf), so an entry that is not finite means the range was exceeded."""
    # one fast pass per value, its sum (finite only if every entry is; a sum of finite entries
    # may overflow, hence the entrywise test then)
    with np.errstate(over="ignore", invalid="ignore"):
        name = next((name for name, v in values
                     if not np.isfinite(np.add.reduce(v, axis=None)) and not np.all(np.isfinite(v))), None)
    if name is not None:
        if layer.affine:
            at = f"{type(layer).__name__.lower()} layer {k} of {n}"
        elif k:
            at = f"{layer!r} after affine layer {k} of {n}"
        else:
            at = f"{layer!r} before affine layer 1 of {n}"
        raise OverflowError(f"the {name} exceeds float64 range at {at}; "
                            "reduce sigma_w (W_std), the depth or the input scale")


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
