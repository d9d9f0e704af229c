"""Windows over positions: the padding and output positions of a filter or pooling window, the
mean over a window of a kernel's position pairs, and patches of finite inputs with their adjoint
(a conv is a dense layer on its patches)."""
from __future__ import annotations

import numpy as np

from .layer import _check_spatial


def _patch_maps(windows, padding, spatial) -> list[tuple[int, int, int, int, int, bool]]:
    """Per spatial axis (window f, stride s, padding lo and hi, input positions L, circular):
    tap o of output i reads input s i + o - lo (wrapped for CIRCULAR, zero outside for VALID/SAME)."""
    return [(f, s, lo, hi, L, padding == "CIRCULAR") for (f, s, lo, hi), L in zip(windows, spatial)]


def _patches(x, maps):
    """x (B1, B2, L1..Lk, C) -> patches (B1, B2, n1..nk, f1..fk, C), a strided view of the padded x."""
    k, nb = len(maps), x.ndim - len(maps) - 1
    if any(lo or hi for _, _, lo, hi, _, _ in maps):
        width = [(0, 0)] * nb + [(lo, hi) for _, _, lo, hi, _, _ in maps] + [(0, 0)]
        x = np.pad(x, width, mode="wrap" if maps[0][5] else "constant")
    axes = tuple(range(nb, nb + k))
    view = np.lib.stride_tricks.sliding_window_view(x, [m[0] for m in maps], axis=axes)
    view = view[(slice(None),) * nb + tuple(slice(None, None, m[1]) for m in maps)]
    return np.moveaxis(view, nb + k, -1)


def _patches_adjoint(p, maps):
    """The adjoint of :func:`_patches`: cotangents of patches (B..., n1..nk, f1..fk, C) -> (B..., L1..Lk, C):
    each tap adds back where it read, then padding is dropped (CIRCULAR: folded back onto the positions it copies)."""
    k = len(maps)
    nb = p.ndim - 2 * k - 1
    n = p.shape[nb:nb + k]
    out = np.zeros(p.shape[:nb] + tuple(L + lo + hi for _, _, lo, hi, L, _ in maps) + p.shape[-1:], p.dtype)
    lead = (slice(None),) * nb
    for taps in np.ndindex(*(m[0] for m in maps)):
        dst = tuple(slice(o, o + s * (m - 1) + 1, s) for o, (_, s, _, _, _, _), m in zip(taps, maps, n))
        out[lead + dst] += p[lead + (slice(None),) * k + taps]
    for d, (_, _, lo, hi, L, circular) in enumerate(maps):
        if not (lo or hi):
            continue
        ax = nb + d
        core = np.take(out, np.arange(lo, lo + L), axis=ax)
        if circular:
            for j in (*range(lo), *range(lo + L, L + lo + hi)):
                at = [slice(None)] * core.ndim
                at[ax] = (j - lo) % L
                core[tuple(at)] += np.take(out, j, axis=ax)
        out = core
    return out


def _windows(layer, shape, window) -> tuple[list[tuple[int, int, int, int]], tuple[int, ...]]:
    """Per spatial axis (window, stride, padding before, padding after), and the output positions,
    for one input of ``shape`` (positions..., channels).
    Padding is TensorFlow/JAX SAME's (CIRCULAR wraps the same amounts); none for VALID."""
    _check_spatial(layer, shape, len(window))
    out, out_shape = [], []
    for L, f, s in zip(shape[:-1], window, layer.strides):
        if layer.padding == "VALID":
            if L < f:
                layer._fail(f"window {f} is larger than the input's {L} positions with VALID padding")
            lo = hi = 0
        else:
            total = max((-(-L // s) - 1) * s + f - L, 0)
            lo, hi = total // 2, total - total // 2
        out.append((f, s, lo, hi))
        out_shape.append((L + lo + hi - f) // s + 1)
    return out, tuple(out_shape)


def _window_mean(x, axes, f, s, lo, hi, padding):
    """Mean over the offsets o < f of x[.., s i + o - lo, ..], the same offset on every axis in
    ``axes``; zero padding contributes nothing, so only the in-range part of each slice is added
    (in place: these arrays are the largest of the recursion)."""
    if padding == "CIRCULAR" and (lo or hi):
        width = [(0, 0)] * x.ndim
        for a in axes:
            width[a] = (lo, hi)
        x, lo, hi = np.pad(x, width, mode="wrap"), 0, 0
    L = x.shape[axes[0]]
    n = (L + lo + hi - f) // s + 1
    shape = list(x.shape)
    for a in axes:
        shape[a] = n
    out = np.empty(shape)   # not np.zeros: with numpy < 2 its calloc'd pages fault in 4 kB at a time (7x slower)
    out.fill(0.0)
    dst, src = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for o in range(f):
        i0 = max(0, -((o - lo) // s))                 # first i with s i + o - lo >= 0
        i1 = min(n, (L - 1 - o + lo) // s + 1)        # last i with s i + o - lo <= L - 1, plus one
        if i1 <= i0:
            continue
        start = s * i0 + o - lo
        for a in axes:
            dst[a], src[a] = slice(i0, i1), slice(start, start + s * (i1 - i0 - 1) + 1, s)
        out[tuple(dst)] += x[tuple(src)]
    out /= f
    return out



def _dilate(x, axes, s):
    """x with s - 1 zeros between consecutive positions on every axis of ``axes`` (one stride
    per axis, or one for all): the input a transposed convolution slides its filter over."""
    axes = tuple(axes)
    strides = (s,) * len(axes) if isinstance(s, int) else tuple(s)
    if all(st == 1 for st in strides):
        return x
    shape = list(x.shape)
    for a, st in zip(axes, strides):
        shape[a] = (shape[a] - 1) * st + 1
    out = np.zeros(shape, dtype=x.dtype)
    at = [slice(None)] * x.ndim
    for a, st in zip(axes, strides):
        at[a] = slice(None, None, st)
    out[tuple(at)] = x
    return out
