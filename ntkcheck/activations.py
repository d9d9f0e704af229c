"""Activations with their Gaussian dual kernels.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) an activation supplies
``E[phi(u) phi(v)]`` (the NNGP step) and ``E[phi'(u) phi'(v)]`` (the NTK step),
in closed form where one exists, else by 2-D trapezoidal quadrature with an
error estimate.  All functions broadcast over arrays of (k11, k12, k22).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.special import erf as _erf
from scipy.special import ndtr

Dual = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Quadrature points (entries x nodes^2) evaluated at once; bounds memory to ~100 MB.
_QUAD_CHUNK = 4_000_000


@dataclass(frozen=True)
class Saturation:
    """phi(x) = alpha + beta erf(kappa x) + r(x) with r odd, r and phi' analytic in
    |Im x| < (pi/2) ``scale`` and below 1e-17 of their size beyond |x| > 21 ``scale``
    (as tanh(x / scale)): at large variance the quadrature integrates only r and phi'
    (localized), in x itself, and the erf part in closed form."""

    alpha: float
    beta: float
    kappa: float
    scale: float = 1.0

    @property
    def radius(self) -> float:
        return 21.0 * self.scale


@dataclass(frozen=True)
class Activation:
    """phi, phi' and the dual kernel ``(k11, k12, k22) -> (E[phi phi], E[phi' phi'])``.

    ``closed_form`` is True when ``dual`` is exact; otherwise it is quadrature at
    ``resolution`` (1 = the default step of :func:`quad_step`) and
    :meth:`quadrature_error` estimates its error.  On a kernel matrix with few
    distinct variance pairs (inputs of equal norm) ``dual`` interpolates a table
    in the correlation instead, to within ``INTERPOLATION_TOL`` of the quadrature
    (see :func:`_tabulated_dual`).
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]
    closed: Dual | None = None
    resolution: float = 1.0
    saturation: Saturation | None = None

    @property
    def closed_form(self) -> bool:
        return self.closed is not None

    def dual(self, k11, k12, k22) -> tuple[np.ndarray, np.ndarray]:
        """(E[phi(u)phi(v)], E[phi'(u)phi'(v)]) for the given covariance entries."""
        k11, k12, k22 = (np.asarray(k, dtype=float) for k in (k11, k12, k22))
        if k11.ndim == k12.ndim == k22.ndim == 0:       # scalars: computed as 1-element arrays
            return tuple(v[0] for v in self.dual(k11[None], k12[None], k22[None]))
        if self.closed is not None:
            return self.closed(k11, k12, k22)
        return _tabulated_dual(self, k11, k12, k22)

    def quadrature(self, k11, k12, k22, resolution: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Both expectations by trapezoidal quadrature (:func:`gaussian_expectation`)."""
        res = resolution or self.resolution
        sat = self.saturation
        return (gaussian_expectation(self.fn, k11, k12, k22, res, sat),
                gaussian_expectation(self.deriv, k11, k12, k22, res,
                                     sat and Saturation(0.0, 0.0, sat.kappa, sat.scale)))

    def quadrature_error(self, k11, k12, k22) -> tuple[np.ndarray, np.ndarray]:
        """Absolute error estimate of :meth:`quadrature`: its difference to the
        rule with a 1.5x finer step.  The error falls geometrically with the
        step, so the finer rule is far more accurate and the difference
        bounds the default rule's error."""
        lo = self.quadrature(k11, k12, k22, self.resolution)
        hi = self.quadrature(k11, k12, k22, 1.5 * self.resolution)
        return tuple(np.abs(a - b) for a, b in zip(lo, hi))


#: Largest interpolation error accepted (relative to the table's largest value), checked at every midpoint.
INTERPOLATION_TOL = 1e-11
_TABLE_INTERVALS = 512
_LAGRANGE_POINTS = 6


def _tabulated_dual(act: Activation, k11, k12, k22):
    """Quadrature duals, computed once per distinct entry; on a matrix (k11 a column,
    k22 a row) with P distinct variance pairs and E entries, when a table is cheaper
    (P * 2 * 513 * 4 < E), by 6-point Lagrange interpolation in theta = arccos(c) on
    513 equispaced nodes per pair.  theta rather than c because the duals behave like
    sqrt(1 - c^2) at c = +-1 and are smooth in theta.  The interpolant is compared
    with the quadrature at every interval midpoint; if it is off by more than
    INTERPOLATION_TOL times the table's largest value anywhere, the entries are
    computed by quadrature instead.  Nodes include theta = 0, pi, so diagonal
    entries (c = 1) are the quadrature values exactly."""
    shape = np.broadcast(k11, k12, k22).shape
    u1, inv1 = _distinct(k11)
    u2, inv2 = _distinct(k22)
    pairs = u1.size * u2.size
    if k12.ndim == 2 and k11.shape == (shape[0], 1) and k22.shape == (1, shape[1]) \
            and pairs * 2 * (_TABLE_INTERVALS + 1) * 4 < k12.size:
        out = _interpolate(act, u1, inv1.reshape(-1, 1), u2, inv2.reshape(1, -1), k11, k12, k22)
        if out is not None:
            return out
    return _unique_quadrature(act, *np.broadcast_arrays(k11, k12, k22))


def _distinct(k):
    """Distinct variances up to 2^-44 relative (rounding noise of equal-norm inputs), each
    represented by one of its members: the duals move by ~6e-14 relative at most."""
    key = np.ascontiguousarray(np.maximum(k, 0), dtype=float).ravel().view(np.int64) >> 8
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return k.ravel()[first], inv


def _unique_quadrature(act, k11, k12, k22):
    """:meth:`Activation.quadrature` on the distinct (k11, k12, k22) only."""
    trip = np.stack([k11.ravel(), k12.ravel(), k22.ravel()], axis=1)
    uniq, inv = np.unique(trip, axis=0, return_inverse=True)
    vals = act.quadrature(uniq[:, 0], uniq[:, 1], uniq[:, 2])
    return tuple(v[inv.ravel()].reshape(k11.shape) for v in vals)


def _lagrange(tables, rows, t):
    """Interpolate each ``table[rows, :]`` (nodes 0..m in theta) at fractional node positions t
    with a centred stencil: the duals are even in theta about 0 and pi (c = cos theta),
    so the tables are extended by reflection there.  The weights are formed once for all
    tables, by prefix and suffix products of (x - l)."""
    n = _LAGRANGE_POINTS
    half = n // 2
    start = np.floor(t).astype(int) - half + 1                 # first stencil node, >= -half + 1
    diffs = [t - (start + l) for l in range(n)]
    start += half
    prefix = [np.ones(t.shape)]
    for l in range(n - 1):
        prefix.append(prefix[-1] * diffs[l])
    suffix = np.ones(t.shape)
    weights = [None] * n
    for k in range(n - 1, -1, -1):
        denom = math.prod(k - l for l in range(n) if l != k)
        weights[k] = prefix[k] * suffix * (1.0 / denom)
        suffix = suffix * diffs[k]
    out = []
    for table in tables:
        padded = np.concatenate([table[:, half:0:-1], table, table[:, -2:-half - 2:-1]], axis=1)
        acc = weights[0] * padded[rows, start]
        for k in range(1, n):
            acc += weights[k] * padded[rows, start + k]
        out.append(acc)
    return out


def _interpolate(act, u1, inv1, u2, inv2, k11, k12, k22):
    m = _TABLE_INTERVALS
    a, b = np.meshgrid(u1, u2, indexing="ij")
    a, b = a.ravel()[:, None], b.ravel()[:, None]
    theta = np.pi * np.arange(2 * m + 1) / (2 * m)         # nodes (even) and midpoints (odd)
    cos = np.cos(theta)
    cos[0], cos[-1] = 1.0, -1.0
    g = np.sqrt(a) * np.sqrt(b)
    vals = _unique_quadrature(act, *np.broadcast_arrays(a, g * cos, b))
    rows = np.arange(a.shape[0])[:, None]
    t_mid = np.arange(m)[None, :] + 0.5
    tables = [v[:, ::2] for v in vals]
    mids = _lagrange(tables, rows, np.broadcast_to(t_mid, (rows.size, m)))
    for v, tab, mid in zip(vals, tables, mids):
        if np.abs(mid - v[:, 1::2]).max() > INTERPOLATION_TOL * max(np.abs(tab).max(), 1e-300):
            return None
    pair = inv1 * u2.size + inv2
    shape = np.broadcast(k11, k12, k22).shape
    out = (np.empty(shape), np.empty(shape))
    rows_per = max(1, 2**18 // shape[1])
    for i in range(0, shape[0], rows_per):
        sl = slice(i, i + rows_per)
        t = np.arccos(_correlation(k11[sl], k12[sl], k22)) * (m / np.pi)
        p = np.broadcast_to(pair[sl], t.shape)
        out[0][sl], out[1][sl] = _lagrange(tables, p, t)
    return out


def _trapezoid_nodes(step: float):
    """Nodes and weights of E[g(z)], z ~ N(0, 1), by the trapezoidal rule on
    [-9, 9] (tail mass 2e-19).  For g analytic in the strip |Im z| < d the
    error decays like exp(-2 pi d / step) (Trefethen & Weideman 2014, SIAM
    Review 56, Thm 5.1), much faster per node than Gauss-Hermite when the
    activation varies on a scale shorter than the Gaussian's width."""
    m = math.ceil(9.0 / step)
    z = step * np.arange(-m, m + 1)
    return z, step * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def quad_step(kmax, resolution: float = 1.0):
    """Trapezoid step in z for variances up to ``kmax``: 0.3/sqrt(kmax) resolves
    an activation analytic in |Im x| < pi/2 (tanh, sigmoid, softplus, erf) to
    ~1e-12 (exp(-2 pi (pi/2) / 0.3) = 5e-15 times the integrand's size)."""
    return min(0.5, 0.3 / math.sqrt(max(float(kmax), 0.36))) / resolution


def gaussian_expectation(g, k11, k12, k22, resolution: float = 1.0,
                         saturation: Saturation | None = None) -> np.ndarray:
    """E[g(u) g(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]) by a 2-D product rule.

    Writes u = sqrt(k11) z1, v = sqrt(k22) (c z1 + sqrt(1 - c^2) z2) with
    z1, z2 independent standard normals, which stays exact at c = +-1.
    Entries are grouped by variance so each gets a rule fine enough for it:
    the trapezoidal rule (:func:`quad_step`) up to variance 16; beyond it, for g
    with a ``saturation`` (tanh, sigmoid and their derivatives), the split of
    :func:`_saturating_expectation`, accurate to ~1e-14 relative and of fixed cost at
    any scale; else the graded Gauss-Legendre rule of :func:`_graded_rule`, whose size
    grows only with the logarithm of the scale (capped at 2^60), so memory (at most
    ``_QUAD_CHUNK`` points at once) and time are bounded for any input scale.
    """
    k11, k12, k22 = np.broadcast_arrays(*(np.asarray(k, dtype=float) for k in (k11, k12, k22)))
    shape = k11.shape
    k11, k22 = np.maximum(k11, 0).ravel(), np.maximum(k22, 0).ravel()
    c = _correlation(k11, k12.ravel(), k22)
    s1, s2 = np.sqrt(k11), np.sqrt(k22)
    out = np.empty(k11.size)
    kmax = np.maximum(k11, k22)
    # group by variance on a ladder of steps (factor 1.5 apart) so nodes are shared within a group
    level = np.ceil(np.log(np.maximum(kmax, 0.36) / 0.36) / (2 * math.log(1.5))).astype(int)
    graded = kmax > _GRADED_FROM
    for lev in np.unique(level[~graded]):
        idx = np.flatnonzero((level == lev) & ~graded)
        z, w = _trapezoid_nodes(quad_step(0.36 * 1.5 ** (2 * lev), resolution))
        step = max(1, _QUAD_CHUNK // z.size**2)
        for i in range(0, idx.size, step):
            sl = idx[i:i + step]
            gu = g(s1[sl, None] * z)                                      # (S, q)
            cs, ss = c[sl, None, None], np.sqrt(1 - c[sl, None, None] ** 2)
            gv = g(s2[sl, None, None] * (cs * z[:, None] + ss * z[None, :]))  # (S, q, q)
            out[sl] = np.einsum("si,i,sij,j->s", gu, w, gv, w, optimize=True)
    if graded.any():
        idx = np.flatnonzero(graded)
        order = max(2, round(10 * resolution))
        if saturation is None:
            _graded_expectation(g, s1[idx], c[idx], s2[idx], out, idx, order)
        else:
            out[idx] = _saturating_expectation(g, saturation, s1[idx], c[idx], s2[idx], resolution, order)
    return out.reshape(shape)


def _saturating_expectation(g, sat: Saturation, s1, c, s2, resolution, order):
    """E[g(u) g(v)] at large variance for g = alpha + beta erf(kappa x) + r(x) (r odd, localized):

        alpha^2 + beta^2 E[erf erf] + beta (E[erf(kappa u) r(v)] + E[r(u) erf(kappa v)]) + E[r(u) r(v)]

    (the terms with one odd factor alone vanish).  E[erf erf] is Williams' closed form
    (:func:`_erf_dual` at kappa^2 Sigma); the cross terms are 1-D (:func:`_erf_cross`); the last
    is 2-D (:func:`_localized_expectation`).  No variable is stretched with the scale, so the
    cost is fixed and the localized terms (all of E[phi' phi'], ~1/sqrt(k) of it) are never
    lost.  Error: ~1e-14 relative to the size of each term (trapezoid/Gauss-Legendre rules
    whose error estimates are stated there) plus the 1e-17 truncation at ``radius``."""
    def r(x):
        out = g(x)
        if sat.beta:
            out = out - sat.alpha - sat.beta * _erf(sat.kappa * x)
        return out
    out = _localized_expectation(r, sat, s1, c, s2, resolution)
    if sat.beta:
        k = sat.kappa**2
        out += sat.beta**2 * _erf_dual(k * s1 * s1, k * (c * s1) * s2, k * s2 * s2)[0]
        out += sat.beta * (_erf_cross(r, sat, s1, c, s2, order) + _erf_cross(r, sat, s2, c, s1, order))
        out += sat.alpha**2
    return out


def _erf_cross(r, sat: Saturation, sa, c, sb, order):
    """E[erf(kappa u) r(v)], u = sa z_a, v = sb z_b with correlation c: E[erf(kappa u) | v = y] =
    erf(kappa c (sa/sb) y / sqrt(1 + 2 kappa^2 sa^2 (1 - c^2))) (E erf(a + bZ) = erf(a/sqrt(1 + 2b^2)))
    is a step at y = 0 of width 1/beta, so the 1-D integral takes the graded rule of
    :func:`_graded_rule` (error ~1e-15 relative, plus at most 2^-60 times the integrand's bound
    from the capped grading): in z = y/sb over [-9, 9] when sb <= 4, else in y over the radius."""
    slope = sat.kappa * c * sa / np.hypot(1.0, math.sqrt(2) * sat.kappa * sa * np.sqrt(np.maximum(1 - c * c, 0)))
    natural = sb > 4
    slope = np.where(natural, slope / np.where(natural, sb, 1.0), slope)    # per unit of the variable
    out = np.zeros(sa.size)
    keys = _scale_exp(np.abs(slope)) * 2 + natural
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        nat = bool(key % 2)
        t, w = _graded_rule(int(key // 2), sat.radius if nat else 9.0, order)
        if nat:
            x = t[None, :]
            dens = np.exp(-(t[None, :] / sb[idx, None]) ** 2 / 2) / (sb[idx, None] * math.sqrt(2 * math.pi))
        else:
            x = sb[idx, None] * t
            dens = np.exp(-t * t / 2)[None, :] / math.sqrt(2 * math.pi)
        vals = r(x) * _erf(slope[idx, None] * t) * dens
        out[idx] = vals @ w
    return out


def _localized_expectation(a, sat: Saturation, s1, c, s2, resolution):
    """E[a(u) a(v)] for a localized within |x| <= radius, max(s1, s2) > 4: outer integral in
    x = u over [-radius, radius] (the larger variance outside, so the inner integral varies
    in x on a scale >= 1), inner over the conditional N(mu, sigma^2), mu = c (s2/s1) x,
    sigma = s2 sqrt(1 - c^2): in z = (v - mu)/sigma over [-9, 9] when sigma <= 1, else in
    v over [-radius, radius].  Every integrand is analytic in a strip of half-width >= pi/2
    (in units of ``scale``: the poles of tanh), so the trapezoidal rule converges like
    exp(-2 pi (pi/2)/step) (Trefethen & Weideman 2014, Thm 5.1); the constant grows with
    the poles' order (sech^4 here), so the step is 0.2: E[sech^4 u] errs by 8e-11 at 0.3,
    1e-16 at 0.2."""
    s1, s2 = np.maximum(s1, s2), np.minimum(s1, s2)
    h = 0.2 * sat.scale / resolution
    m = math.ceil(sat.radius / h)
    x = h * np.arange(-m, m + 1)
    z, wz = _trapezoid_nodes(0.2 / resolution)
    ax = a(x)
    sigma = s2 * np.sqrt(np.maximum(1 - c * c, 0))
    out = np.empty(s1.size)
    for wide in (False, True):
        idx = np.flatnonzero((sigma > 1) == wide)
        step = max(1, _QUAD_CHUNK // (x.size * (x.size if wide else z.size)))
        for i in range(0, idx.size, step):
            sl = idx[i:i + step]
            mu = (c[sl] * (s2[sl] / s1[sl]))[:, None, None] * x[None, :, None]      # (S, q, 1)
            sg = sigma[sl, None, None]
            if wide:
                kern = np.exp(-((x[None, None, :] - mu) / sg) ** 2 / 2)
                inner = kern @ ax * (h / math.sqrt(2 * math.pi)) / sg[..., 0]
            else:
                inner = a(mu + sg * z) @ wz                                       # (S, q)
            dens = h * np.exp(-(x[None, :] / s1[sl, None]) ** 2 / 2) / (s1[sl, None] * math.sqrt(2 * math.pi))
            out[sl] = np.einsum("q,sq,sq->s", ax, dens, inner)
    return out


#: Variance above which the graded rule replaces the trapezoid (whose node count grows like sqrt(k)).
_GRADED_FROM = 16.0
_SCALE_EXP_MAX = 60


@lru_cache(maxsize=256)
def _graded_rule(width_exp: int, reach: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights for integrals over [-reach, reach] of functions
    that vary on scale w = 2^-width_exp near 0 and on scale 1 elsewhere.

    Panels [w 2^k, w 2^(k+1)] graded geometrically toward 0 until length 1, then
    unit panels.  A singularity at distance ~w from 0 (tanh(x / w) has poles at
    +-i pi w / 2) is >= 3 half-lengths from every panel's centre, so ``order``
    = 10 points per panel give a relative error ~(3 + sqrt 8)^-20 = 1e-15 (the
    Bernstein-ellipse bound for Gauss-Legendre; Trefethen 2008, SIAM Review 50,
    Thm 4.5).  Size: 2 order (width_exp + reach) nodes.
    """
    edges = [0.0]
    e = 2.0 ** -width_exp
    while e < 1:
        edges.append(e)
        e *= 2
    x = 1.0
    while x < reach:
        edges.append(x)
        x += 1
    edges.append(reach)
    edges = np.asarray(edges)
    edges = np.concatenate([-edges[:0:-1], edges])
    t, wt = np.polynomial.legendre.leggauss(order)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    return (mid[:, None] + half[:, None] * t).ravel(), (half[:, None] * wt).ravel()


def _scale_exp(scale: np.ndarray) -> np.ndarray:
    return np.clip(np.ceil(np.log2(np.maximum(scale, 1.0))), 0, _SCALE_EXP_MAX).astype(int)


def _graded_expectation(g, s1, c, s2, out, where, order):
    """The graded rule for E[g(s1 z1) g(s2 (c z1 + sqrt(1-c^2) z2))]: the outer integrand is
    sharp at z1 = 0 (scale 1/max(s1, s2)), the inner one at z2 = -c z1 / sqrt(1-c^2) (scale
    1/(s2 sqrt(1-c^2))), so the inner rule is centred there (clipped to [-9, 9]; reach 18
    covers [-9, 9] from any centre).  Entries are grouped by the two scale exponents."""
    ss = np.sqrt(np.maximum(1 - c * c, 0.0))
    keys = _scale_exp(np.maximum(s1, s2)) * (_SCALE_EXP_MAX + 1) + _scale_exp(s2 * ss)
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        z1, w1 = _graded_rule(int(key // (_SCALE_EXP_MAX + 1)), 9.0, order)
        off, w2 = _graded_rule(int(key % (_SCALE_EXP_MAX + 1)), 18.0, order)
        w1 = w1 * np.exp(-z1 * z1 / 2) / math.sqrt(2 * math.pi)
        outer = max(1, min(z1.size, _QUAD_CHUNK // off.size))
        step = max(1, _QUAD_CHUNK // (outer * off.size))
        for i in range(0, idx.size, step):
            sl = idx[i:i + step]
            cs, sn = c[sl, None, None], ss[sl, None, None]
            acc = np.zeros(sl.size)
            for j in range(0, z1.size, outer):
                zo = z1[None, j:j + outer, None]
                centre = np.clip(np.divide(-cs * zo, sn, out=np.zeros(np.broadcast(cs, zo).shape), where=sn > 0), -9, 9)
                z2 = centre + off                                              # (S, q1, q2)
                inner = np.exp(-z2 * z2 / 2)
                inner *= w2
                inner *= g(s2[sl, None, None] * (cs * zo + sn * z2))
                acc += np.einsum("si,i,si->s", g(s1[sl, None] * z1[None, j:j + outer]), w1[j:j + outer],
                                 inner.sum(axis=2) / math.sqrt(2 * math.pi))
            out[where[sl]] = acc


def _correlation(k11, k12, k22):
    """k12 / sqrt(k11 k22) clipped to [-1, 1]; 0 where a variance vanishes.

    The relu-family E[phi' phi'] has infinite slope at c = +-1 (arccos), so a
    correlation one rounding away from 1 would cost 1e-8 relative accuracy and
    break positive semi-definiteness for parallel inputs: values within 8 ulps
    of +-1 (below the precision the recursion carries) are set to +-1, and
    k11 == k12 == k22 gives exactly 1 (sqrt(k*k) == k in IEEE arithmetic).
    The same snap makes a kernel entry independent of whether X2 was given
    (the Gram entries of identical rows then differ only in rounding).
    """
    return _corr_and_scales(k11, k12, k22)[0]


def _corr_and_scales(k11, k12, k22):
    """(c, 1 - c^2, sqrt k11, sqrt k22) with c as in :func:`_correlation`.

    1 - c^2 is formed as (1 - c)(1 + c), exact-ish near c = +-1 where 1 - c*c
    loses digits; the scales are returned separately (their product is an outer
    product on a kernel tile, and k11 k22 may overflow where sqrt k11 sqrt k22
    does not).  The snap test reads 1 - c^2 < 16 eps, one pass, no mask unless needed."""
    s1, s2 = np.sqrt(np.maximum(k11, 0)), np.sqrt(np.maximum(k22, 0))
    inv1 = np.divide(1.0, s1, out=np.zeros(np.shape(s1)), where=s1 > 0)
    inv2 = np.divide(1.0, s2, out=np.zeros(np.shape(s2)), where=s2 > 0)
    c = np.multiply(k12, inv1)
    c *= inv2
    omc2 = 1 - c
    omc2 *= 1 + c
    if omc2.size and omc2.min() < 16.5 * np.finfo(float).eps:
        near = np.abs(c) > 1 - 8 * np.finfo(float).eps     # also clips |c| > 1
        # masked copies, not fancy indexing (which gathers and scatters, ~5x slower)
        np.copyto(c, np.sign(c), where=near)
        np.copyto(omc2, 0.0, where=near)
    return c, omc2, s1, s2


# --- closed forms ---------------------------------------------------------

def _abs_linear_dual(alpha: float, beta: float) -> Dual:
    """phi(x) = alpha x + beta |x|: relu, leaky relu, abs, identity.

    E[|u||v|] = (2/pi) sqrt(k11 k22) (sqrt(1-c^2) + c arcsin c) and
    E[sign u sign v] = (2/pi) arcsin c (the arc-cosine kernels of Cho & Saul
    2009, eq. 6, n = 1 and n = 0, written through |x| = relu(x) + relu(-x));
    the cross terms E[u |v|] vanish by symmetry.  With the derivative kernel
    D = alpha^2 + beta^2 (2/pi) arcsin c the NNGP is
    sqrt(k11 k22) (beta^2 (2/pi) sqrt(1 - c^2) + c D): one pass per operation.
    """
    kappa = beta**2 * 2 / np.pi

    def dual(k11, k12, k22):
        if beta == 0:
            return alpha**2 * k12, np.full(np.broadcast(k11, k12, k22).shape, alpha**2)
        c, nngp, s1, s2 = _corr_and_scales(k11, k12, k22)
        deriv = np.arcsin(c)          # in place below: this is the hot loop of the kernels
        deriv *= kappa
        if alpha:
            deriv += alpha**2
        np.sqrt(nngp, out=nngp)
        nngp *= kappa
        c *= deriv
        nngp += c
        nngp *= s1
        nngp *= s2
        return nngp, deriv
    return dual


def _erf_dual(k11, k12, k22):
    """Williams 1997, eq. 11, and its derivative kernel (phi' = 2/sqrt(pi) e^{-x^2}).

    With a = 1 + 2 k11, b = 1 + 2 k22 the kernels are (2/pi) arcsin(x), x = 2 k12/sqrt(ab),
    and (4/pi)/q, q^2 = ab - 4 k12^2 = ab (1 - x^2).  In the scaled variables
    e_i = 1/(1 + 2 k_ii), r_i = k_ii/(1 + 2 k_ii) (e_i + 2 r_i = 1, both in [0, 1]):
    x = 2 c sqrt(r1 r2) and 1 - x^2 = e1 e2 + 2 r1 e2 + 2 r2 e1 + 4 r1 r2 (1 - c^2),
    a sum of non-negative terms (no cancellation; the direct form loses all digits at
    k ~ 1e8), and no product of variances is formed (ab overflows past k ~ 1e154 although
    both kernels are finite at any scale).  So the NNGP is (2/pi) atan2(x, sqrt(1 - x^2))
    and the derivative kernel (4/pi) sqrt(e1 e2 / (1 - x^2)), each within a few ulps
    relative for every finite variance.
    """
    c, omc2, _, _ = _corr_and_scales(k11, k12, k22)
    (e1, r1), (e2, r2) = _erf_scaled(k11), _erf_scaled(k22)
    one_m_x2 = 2 * (r1 * e2 + r2 * e1) + e1 * e2
    one_m_x2 += 4 * r1 * r2 * omc2
    sq = np.sqrt(one_m_x2)
    c *= 2 * np.sqrt(r1)
    c *= np.sqrt(r2)
    nngp = np.arctan2(c, sq, out=c)
    nngp *= 2 / np.pi
    ntk = np.sqrt(e1) * np.sqrt(e2)
    ntk /= sq
    ntk *= 4 / np.pi
    return nngp, ntk


def _erf_scaled(k):
    """(1/(1 + 2k), k/(1 + 2k)) without forming 1 + 2k (which overflows for k > 9e307)."""
    k = np.maximum(np.asarray(k, dtype=float), 0)
    h = k + 0.5
    return 0.5 / h, 0.5 * (k / h)


def _sin_cos_parts(k11, k12, k22):
    """(e^{-(k11+k22)/2} sinh k12, e^{-(k11+k22)/2} cosh k12) in a form finite at any scale:
    e^{|k12| - (k11+k22)/2} (1 -+ e^{-2|k12|})/2, whose exponent is <= 0 (|k12| <= sqrt(k11 k22))."""
    a = np.abs(k12)
    damp = np.exp(np.minimum(a - (np.asarray(k11) + np.asarray(k22)) / 2, 0))
    damp /= 2
    sinh = np.copysign(-np.expm1(-2 * a) * damp, k12)
    damp *= 1 + np.exp(-2 * a)
    return sinh, damp


def _sin_dual(k11, k12, k22):
    """E[sin u sin v] = e^{-(k11+k22)/2} sinh k12, E[cos u cos v] = ... cosh k12
    (from E[cos(u -+ v)] = e^{-Var(u -+ v)/2})."""
    return _sin_cos_parts(k11, k12, k22)


def _cos_dual(k11, k12, k22):
    sinh, cosh = _sin_cos_parts(k11, k12, k22)
    return cosh, sinh


def _gelu_dual(k11, k12, k22):
    """phi(x) = x Phi(x) (Hendrycks & Gimpel 2016), exact.

    Derivation (this module): Phi(u) = P(z1 < u) with z1 ~ N(0, 1) independent,
    so E[u Phi(u) v Phi(v)] = E[u v 1{w > 0}] with w = (u - z1, v - z2),
    Cov w = S = Sigma + I.  Regressing (u, v) on w gives
    alpha_1^T M alpha_2 + Cov(e1, e2) P with P = P(w > 0) = 1/4 + arcsin(rho)/(2 pi)
    (Sheppard) and M = E[w w^T 1{w > 0}] the orthant second moments.
    For phi' = Phi(x) + x N(x): E[Phi Phi] = P and the Gaussian integrals of
    the N(.) factors give c / (2 pi (1+k) sqrt(D)) and c / (2 pi D^{3/2}),
    D = det S.

    Evaluated in variables bounded at every scale, so nothing overflows, underflows
    or cancels before the result does: with e_i = 1/(1 + k_ii), t_i = k_ii/(1 + k_ii),
    c0 the correlation of Sigma, D/((1 + k11)(1 + k22)) = D' = e1 + e2 t1 + t1 t2 (1 - c0^2)
    (a sum of non-negative terms, >= e1, e2, g1, g2 with g_i = e_i + t_i (1 - c0^2)),
    rho = c0 sqrt(t1 t2), arcsin(rho) = atan2(rho, sqrt(D')), q = sqrt(t1 t2 D')/(2 pi) and
    G_i = g_i/D', E_i = e_i/D' in [0, 1]:
    NNGP = sqrt(k11 k22) [c0 (P + c0 q)(t1 E2 G2 + t2 E1 G1) + (G1 G2 + c0^2 E1 E2)(c0 t1 t2 P + q)
    + c0 P e1 E2] and NTK = P + c0 q (E1 + E2 + E1 E2).  The error is a few ulps of
    sqrt(k11 k22) for any finite variances (relative to the value itself except where
    it cancels, near c0 = -1 at large variance).
    """
    a, b = np.asarray(k11, dtype=float), np.asarray(k22, dtype=float)
    c0, omc2, s1, s2 = _corr_and_scales(a, k12, b)
    (e1, t1), (e2, t2) = _gelu_scaled(a), _gelu_scaled(b)
    rt = np.sqrt(t1) * np.sqrt(t2)
    tt = t1 * t2
    d = e1 + e2 * t1 + tt * omc2
    sqd = np.sqrt(d)
    p = 0.25 + np.arctan2(c0 * rt, sqd) / (2 * np.pi)
    q = rt * sqd / (2 * np.pi)
    g1, g2 = (e1 + t1 * omc2) / d, (e2 + t2 * omc2) / d
    f1, f2 = e1 / d, e2 / d
    bracket = c0 * (p + c0 * q) * (t1 * f2 * g2 + t2 * f1 * g1)
    bracket += (g1 * g2 + c0 * c0 * f1 * f2) * (c0 * tt * p + q)
    bracket += c0 * p * e1 * f2
    nngp = s1 * s2 * bracket
    ntk = p + c0 * q * (f1 + f2 + f1 * f2)
    return nngp, ntk


def _gelu_scaled(k):
    """(1/(1 + k), k/(1 + k)), both in [0, 1]."""
    k = np.maximum(np.asarray(k, dtype=float), 0)
    h = k + 1
    return 1 / h, k / h


# --- registry -------------------------------------------------------------

def _relu_deriv(x):
    return (x > 0).astype(np.result_type(x, float))


def leaky_relu(slope: float = 0.01) -> Activation:
    """phi(x) = x for x > 0, slope * x otherwise."""
    slope = float(slope)
    return Activation(
        f"leaky_relu({slope:g})",
        lambda x: np.where(x > 0, x, slope * x),
        lambda x: np.where(x > 0, 1.0, slope),
        _abs_linear_dual((1 + slope) / 2, (1 - slope) / 2),
    )


def _sech2(x):
    """tanh' = 1/cosh^2 (cosh overflows to inf past |x| ~ 710, where 1/inf = 0 is right)."""
    with np.errstate(over="ignore"):
        return 1 / np.square(np.cosh(x))


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def _builtin(name: str) -> Activation:
    if name == "relu":
        return Activation("relu", lambda x: np.maximum(x, 0), _relu_deriv, _abs_linear_dual(0.5, 0.5))
    if name == "abs":
        return Activation("abs", np.abs, np.sign, _abs_linear_dual(0.0, 1.0))
    if name == "identity":
        return Activation("identity", lambda x: x, np.ones_like, _abs_linear_dual(1.0, 0.0))
    if name == "erf":
        return Activation("erf", _erf, lambda x: (2 / math.sqrt(math.pi)) * np.exp(-x * x), _erf_dual)
    if name == "sin":
        return Activation("sin", np.sin, np.cos, _sin_dual)
    if name == "cos":
        return Activation("cos", np.cos, lambda x: -np.sin(x), _cos_dual)
    if name == "gelu":
        return Activation("gelu", lambda x: x * ndtr(x),
                          lambda x: ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi), _gelu_dual)
    if name == "tanh":   # erf(sqrt(pi)/2 x) has tanh's slope at 0; tanh - sign ~ 2 e^{-2|x|}
        return Activation("tanh", np.tanh, _sech2, saturation=Saturation(0.0, 1.0, math.sqrt(math.pi) / 2))
    if name == "sigmoid":   # (1 + tanh(x/2))/2
        return Activation("sigmoid", _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
                          saturation=Saturation(0.5, 0.5, math.sqrt(math.pi) / 4, 2.0))
    if name == "softplus":
        return Activation("softplus", lambda x: np.logaddexp(0, x), _sigmoid)
    raise KeyError(name)


NAMES = ("relu", "leaky_relu", "abs", "identity", "erf", "sin", "cos", "gelu", "tanh", "sigmoid", "softplus")
_LEAKY = re.compile(r"leaky_relu(?:\(([-+0-9.eE]+)\))?$")


def get_activation(act: str | Activation) -> Activation:
    """An :class:`Activation` from a name (``"leaky_relu(0.2)"`` sets the slope) or itself."""
    if isinstance(act, Activation):
        return act
    if not isinstance(act, str):
        raise ValueError(f"activation must be a name or an Activation, got {act!r}")
    match = _LEAKY.match(act)
    if match:
        return leaky_relu(float(match.group(1))) if match.group(1) else leaky_relu()
    try:
        return _builtin(act)
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(NAMES)}") from None


def custom(fn: Callable, deriv: Callable | None = None, name: str = "custom",
           resolution: float = 1.0) -> Activation:
    """A user activation; its dual kernels come from quadrature.

    Without ``deriv``, phi' is the central difference with step
    ``eps^(1/3) max(1, |x|)`` (relative error ~1e-10 for smooth phi).
    """
    if deriv is None:
        def deriv(x):
            h = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(x))
            return (fn(x + h) - fn(x - h)) / (2 * h)
    return Activation(name, fn, deriv, None, resolution)
