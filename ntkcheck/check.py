"""check_kernel: is a user's kernel the infinite-width NNGP/NTK of a spec?

Decided from samples of finite networks only (never from ntkcheck's analytic
kernels).  Design, for a requested relative discrepancy ``delta`` (relative to
the entry scale ``sqrt(K_ii K_jj)``), false-fail rate ``a`` and false-pass
rate ``b``:

1. **Width, without a bias allowance.**  The mean empirical kernel of width n
   is ``E[K_n] = K + b_1 / n + O(1/n^2)`` (Jacot et al. 2018, Thm 1; the 1/n
   expansion of Dyer & Gur-Ari 2019 and Hanin & Nica 2019, in powers of L/n).
   Every draw is a *pair* of independent networks of widths ``n_s`` and
   ``n_l = r n_s`` combined by Richardson extrapolation in 1/n,
   ``Z = (r K_{n_l} - K_{n_s}) / (r - 1)``, whose mean is ``K + O(1/(r n_s^2))``:
   the first-order width bias is removed whatever its coefficient, and what is
   left is second order, ``b_2 (L / n_s)^2 / r`` with ``n_s = 48 L``, ``r = 32``
   (``WIDTHS_PER_LAYER``, ``WIDTH_RATIO``): 1.4e-5 b_2 relative.  With per-network
   variance ``v / n`` (the empirical kernel's fluctuations are O(L/n)) and cost
   ``n``, equal numbers of networks at the two widths minimize the cost of
   ``Var Z``, which is then ((r+1)/(r-1))^2 = 1.13 times that of a single-width
   mean with the same budget.  The pairs are i.i.d., so step 3 is a plain mean test.
2. **Networks.**  A pilot of ``PILOT`` pairs estimates the per-pair relative
   spread ``s`` (largest over entries); M = :func:`ntkcheck.stats.n_samples_for_mean`
   ``(a, b, delta, s, K)`` with K the entries tested.  The pilot is part of the
   sample (nothing is drawn twice).  The first stage draws ``UNDERSHOOT`` = 80% of
   that M, since the largest of K noisy spreads overestimates the spread; M is then
   recomputed from the sample so far and topped up (at most twice) until the
   achieved discrepancy is ``delta``.
3. **Test.**  :func:`ntkcheck.stats.mean_test` of the M pairs' Z against the
   candidate (no bias term).  For the NTK these are the empirical NTKs; for the
   NNGP the conditional second moment of the output given the hidden layers,
   ``E[f f^T | x^L] = alpha^2 (a^2 s_w^2 <x^L, x^L'> + c^2 s_b^2)`` for the readout
   ``f = alpha (a W x^L + c b)`` (:func:`ntkcheck.moments.readout_kernel`): the
   same mean as ``f f^T`` (law of total expectation) with far less spread
   (Rao-Blackwell).  Each entry's null allows round-off, ``ROUNDOFF`` = 1.5e-8 of
   its scale: that alone decides an entry with zero sampled variance (exact in
   every network, standard error 0); elsewhere it is negligible beside the
   standard error and can only lower the false-fail rate.

The result's ``detectable`` is the achieved relative discrepancy (max over
entries), computed from the sample actually used.  False-fail rate and power
are measured by ``benchmarks/check_kernel_calibration.py``.

**Other architectures** (:mod:`ntkcheck.stax` networks: conv, pooling, flatten,
residual).  The width n of a pair member is every hidden channel count at once
(:func:`ntkcheck.stax.with_width`; the readout keeps its size), the depth L of
the default widths is the number of hidden affine layers
(:func:`ntkcheck.stax.depth`), and the networks are real ones
(``sample_init(..., method="dense")``: O(n^2) per hidden-to-hidden layer, so
deep wide stax checks cost far more than MLP ones, which use the O(n N^2)
exact sampler).  The Richardson step is the same, assuming as for the MLP that
the mean kernel at width n is ``K + b_1 / n + O(1/n^2)`` when all widths grow
together (Dyer & Gur-Ari 2019 state it for general architectures; the tests
check the outcome for a CNN).  The NNGP draws
are ``f f^T`` of the outputs (averaged over output units): there is no
readout-Gram Rao-Blackwellisation for stax networks, so an NNGP check is far
noisier there: the per-pair relative spread is about sqrt(2) whatever the width
(Gaussian f: Var f_i^2 = 2 K_ii^2), against 0.07 for the readout-Gram draws of a
one-hidden-layer relu MLP at n_s = 48, and the pairs needed grow as its square
(a one-layer CNN with global average pooling on 4 inputs, discrepancy 0.1:
10,580 pairs for the NNGP, the 100 of the pilot for the NTK).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import blas, stax
from .display import short_repr
from .kernels import check_inputs
from .moments import readout_kernel
from .sampler import sample_init
from .seeding import child
from .spec import MLP
from .stats import TestResult, kernel_entries, mean_test, n_samples_for_mean

#: Small width of a pair per hidden layer: n_s = 48 L keeps (L / n_s)^2 / r near 1e-5.
WIDTHS_PER_LAYER = 48
#: Large width of a pair over its small width; the extrapolation costs ((r+1)/(r-1))^2 in variance.
WIDTH_RATIO = 32
#: Pairs in the pilot that estimates the spread (they stay in the sample).
PILOT = 100
#: Share of the pilot's M drawn first: the largest of K noisy spreads overestimates the
#: spread (relu depth 3, 16 inputs: M 10-20% too large); the rest follows from the larger sample.
UNDERSHOOT = 0.8
#: Pairs per sampling task.  Fixed (not derived from ``jobs``), so the sample is the same for
#: every ``jobs``; small enough that the threads finish each stage nearly together.
BATCH = 10
#: Round-off allowance of every tested entry, relative to its scale: sqrt of float64's epsilon, the
#: accuracy of a float64 kernel computed through arccos-like steps.  It alone decides the entries
#: with zero sampled variance (exact in every network, e.g. relu without bias on inputs of opposite
#: sign), whose standard error is 0; elsewhere it is far below the standard error.
ROUNDOFF = math.sqrt(np.finfo(float).eps)
KINDS = ("ntk", "nngp")


@dataclass(frozen=True)
class KernelCheckDesign:
    """Widths of a pair, number of pairs and the error budget of a kernel check."""

    widths: tuple[int, int]     # (n_s, n_l) of every pair
    n_networks: int             # pairs M (2 M networks)
    discrepancy: float          # requested detectable relative discrepancy
    spread: float               # per-pair relative sd of Z assumed (largest entry)
    n_tests: int                # entries tested (Sidak-corrected)
    false_fail_rate: float
    false_pass_rate: float
    method: str | None = None   # how the networks were sampled ("exact", "dense"); None before sampling


def default_widths(depth: int) -> tuple[int, int]:
    """(n_s, n_l) = (48 L, 32 * 48 L)."""
    n_s = WIDTHS_PER_LAYER * depth
    return n_s, WIDTH_RATIO * n_s


def design_kernel_check(depth: int, n_tests: int, spread: float, false_fail_rate: float = 1e-3,
                        false_pass_rate: float = 1e-3, discrepancy: float = 0.01,
                        widths: tuple[int, int] | None = None) -> KernelCheckDesign:
    """Pairs needed to detect a relative ``discrepancy`` in any of ``n_tests`` entries.

    ``spread``: the per-pair relative standard deviation of the extrapolated
    kernel Z (largest over entries, e.g. from a pilot).  M is
    :func:`~ntkcheck.stats.n_samples_for_mean` ``(a, b, discrepancy, spread, n_tests)``.
    """
    if not (0 < discrepancy < 1):
        raise ValueError(f"discrepancy must be a relative discrepancy in (0, 1), got {discrepancy!r}")
    if not (spread >= 0 and math.isfinite(spread)):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    widths = _check_widths(default_widths(depth) if widths is None else widths)
    m = n_samples_for_mean(false_fail_rate, false_pass_rate, discrepancy, spread, n_tests)
    return KernelCheckDesign(widths, max(2, m), discrepancy, float(spread), n_tests, false_fail_rate,
                             false_pass_rate)


def _check_widths(widths) -> tuple[int, int]:
    try:
        n_s, n_l = (int(w) if float(w) == int(w) else None for w in widths)
    except (TypeError, ValueError):
        n_s = n_l = None
    if n_s is None or n_l is None or not 1 <= n_s < n_l:
        raise ValueError(f"widths must be two integers 1 <= n_s < n_l, got {widths!r}")
    return n_s, n_l


@dataclass(frozen=True, eq=False)
class KernelSample:
    """Extrapolated per-pair kernels ``draws`` (M, N, N) of ``spec`` on X, for a kind.

    ``width_means``: the mean kernels at the two widths (2, N, N), for the record
    (their difference estimates the first-order width bias)."""

    __repr__ = short_repr   # no array dumps in notebooks

    spec: MLP | stax.Layer
    X: np.ndarray
    kind: str
    draws: np.ndarray
    design: KernelCheckDesign
    width_means: np.ndarray

    @property
    def n_networks(self) -> int:
        return self.draws.shape[0]


def _network_kernels(spec, X: np.ndarray, kind: str, m: int, seed, method: str, jobs) -> np.ndarray:
    sample = sample_init(spec, X, m, seed=seed, method=method, jobs=jobs)
    if kind == "ntk":
        return sample.ntk
    if isinstance(spec, MLP):
        return readout_kernel(spec, sample.post_grams)
    f = sample.f[..., None] if sample.f.ndim == 2 else sample.f      # no readout Gram: f f^T itself
    return np.einsum("mik,mjk->mij", f, f) / f.shape[2]


def _at_width(spec, n: int):
    return dataclasses.replace(spec, width=n) if isinstance(spec, MLP) else stax.with_width(spec, n)


def _batch(spec, X, kind, widths, m, seed, method) -> tuple[np.ndarray, np.ndarray]:
    """m pairs: (Z (m, N, N), sums of the kernels at each width (2, N, N))."""
    r = widths[1] / widths[0]
    small, large = (_network_kernels(_at_width(spec, n), X, kind, m, child(seed, i), method, 1)
                    for i, n in enumerate(widths))
    z = (r * large - small) / (r - 1)
    return z, np.stack([small.sum(axis=0), large.sum(axis=0)])


def _pairs(spec, X, kind, widths, m, seed, method, pool) -> tuple[np.ndarray, np.ndarray]:
    """m pairs in batches of :data:`BATCH` (batch k from ``child(seed, k)``), on ``pool``'s
    threads if given: the same numbers whatever the pool."""
    sizes = [min(BATCH, m - start) for start in range(0, m, BATCH)]

    def run(k):
        return _batch(spec, X, kind, widths, sizes[k], child(seed, k), method)

    parts = list(pool.map(run, range(len(sizes)))) if pool is not None else [run(k) for k in range(len(sizes))]
    return np.concatenate([z for z, _ in parts]), sum(sums for _, sums in parts)


def _relative_spread(draws: np.ndarray) -> float:
    """Largest per-draw sd of an entry relative to sqrt(K_ii K_jj)."""
    entries, _, scale, _ = kernel_entries(draws, np.zeros(draws.shape[1:]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, entries.std(axis=0, ddof=1) / scale, 0.0)
    return float(rel.max())


def _check_kind(kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _count(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _inputs(spec, X) -> np.ndarray:
    """X validated for ``spec``: (N, d) for an MLP; (N, d), (N, W, C) or (N, H, W, C) for a stax network."""
    return stax._check_inputs(X, None)[0] if isinstance(spec, stax.Layer) else check_inputs(X)[0]


def _check_network(net: stax.Layer, X: np.ndarray, kind: str, method, widths) -> tuple[int, str]:
    """(depth, method) of a stax network, or a ValueError naming what cannot be checked."""
    if method not in (None, "dense"):
        raise ValueError(f"a stax network is sampled with method='dense' (method='exact' is MLP-only), got {method!r}")
    L = stax.depth(net)
    if L == 0:
        raise ValueError("the network has no hidden Dense or Conv layer (only a readout): there is no width "
                         "to take to infinity")
    if kind == "ntk":
        for layer in stax.fan_in_scaled(net):
            if layer.parameterization != "ntk":
                raise ValueError(f"{layer!r}: the ntk of a {layer.parameterization!r}-parameterized layer whose "
                                 "fan-in grows with the width has no width-independent limit; check_kernel "
                                 "needs parameterization='ntk' there")
    for n in _check_widths(default_widths(L) if widths is None else widths):
        stax.output_shape(stax.with_width(net, n), X.shape[1:])       # shapes fit at both widths
    return L, "dense"


def sample_kernel(spec: MLP | stax.Layer, X, kind: str = "ntk", false_fail_rate: float = 1e-3, seed=0, *,
                  false_pass_rate: float = 1e-3, discrepancy: float = 0.01, widths: tuple[int, int] | None = None,
                  n_networks: int | None = None, max_networks: int = 1_000_000,
                  method: str | None = None, jobs: int | None = None) -> KernelSample:
    """Design a kernel check (see the module docstring) and draw its pairs of networks.

    The same sample can test many candidates (:func:`kernel_test`).  ``widths``
    (n_s, n_l) and ``n_networks`` (pairs) override the design; ``max_networks``
    caps the pairs (then the achieved ``detectable`` is larger than requested).
    Seeds: pilot ``child(seed, 0)``, the stages after it ``child(seed, 1)``,
    ``child(seed, 2)``, ``child(seed, 3)``; within each, batch k of :data:`BATCH` pairs from
    ``child(., k)``, and in a batch width n_s from ``child(., 0)`` and n_l from ``child(., 1)``.
    ``jobs``: threads sampling the batches (default None: as many as BLAS may use,
    :func:`ntkcheck.blas.threads`, so one in a process limited to one BLAS thread), with
    BLAS single-threaded (:mod:`ntkcheck.blas`); the sample is identical for every ``jobs``.

    ``spec``: an :class:`~ntkcheck.MLP` (``method`` "exact", the default, or
    "dense") or a :mod:`ntkcheck.stax` network (``method`` "dense" only; widths
    by :func:`ntkcheck.stax.with_width`, depth :func:`ntkcheck.stax.depth`).
    """
    _check_kind(kind)
    if isinstance(spec, stax.Layer):
        X = _inputs(spec, X)
        L, method = _check_network(spec, X, kind, method, widths)
    elif not isinstance(spec, MLP):
        raise ValueError(f"spec must be an ntkcheck.MLP or a stax network, got {type(spec).__name__}")
    else:
        allowed = ("ntk",) if kind == "ntk" else ("ntk", "standard")
        if spec.parameterization not in allowed:
            raise ValueError(f"the {kind} of a {spec.parameterization!r}-parameterized network has no "
                             f"width-independent limit; check_kernel supports parameterization {allowed}")
        X, _ = check_inputs(X)
        L, method = spec.depth, "exact" if method is None else method
    max_networks = _count(max_networks, "max_networks", 2)
    if n_networks is not None:
        n_networks = _count(n_networks, "n_networks", 2)
    n_in = len(X)
    n_tests = n_in * (n_in + 1) // 2
    design = design_kernel_check(L, n_tests, 0.0, false_fail_rate, false_pass_rate, discrepancy, widths)
    jobs = blas.threads() if jobs is None else _count(jobs, "jobs", 1)
    # threads, not processes: the samplers' work is in BLAS, LAPACK and numpy calls that
    # release the GIL, and one pool serves every stage (no process start-up per stage)
    with blas.single_threaded(), (ThreadPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext()) as pool:
        args = (spec, X, kind, design.widths)
        if n_networks is not None:
            z, sums = _pairs(*args, n_networks, child(seed, 1), method, pool)
            spread = _relative_spread(z)
        else:
            z, sums = _pairs(*args, min(PILOT, max_networks), child(seed, 0), method, pool)
            for stage, share in ((1, UNDERSHOOT), (2, 1.0), (3, 1.0)):
                spread = _relative_spread(z)
                m = min(math.ceil(share * design_kernel_check(L, n_tests, spread, false_fail_rate, false_pass_rate,
                                                              discrepancy, design.widths).n_networks), max_networks)
                if m > len(z):
                    more, more_sums = _pairs(*args, m - len(z), child(seed, stage), method, pool)
                    z, sums = np.concatenate([z, more]), sums + more_sums
                elif share == 1.0:
                    break
            spread = _relative_spread(z)
    design = dataclasses.replace(design, n_networks=len(z), spread=spread, method=method)
    return KernelSample(spec, X, kind, z, design, sums / len(z))


def _accepts_get(fn) -> bool:
    """A neural-tangents-style ``kernel_fn(x1, x2=None, get=None)``."""
    try:
        return "get" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def candidate_kernel(candidate, X, kind: str = "ntk") -> np.ndarray:
    """Evaluate and validate a candidate kernel on X: a symmetric finite real (N, N) array.

    candidate : (N, N) array; a callable ``(X1, X2) -> (N1, N2)``; or a
    neural-tangents-style ``kernel_fn(x1, x2, get)`` (recognised by its ``get``
    parameter; called as ``kernel_fn(X, None, kind)``).  Asymmetry beyond
    round-off (1e-10 of the largest entry) is an error; round-off is averaged away.
    A complex array is an error unless its imaginary part is exactly 0.
    """
    X = np.asarray(X, dtype=float)
    n_in = len(X)
    if callable(candidate):
        cand = candidate(X, None, kind) if _accepts_get(candidate) else candidate(X, X)
    else:
        cand = candidate
    try:
        raw = np.asarray(cand)
        cand = np.asarray(raw.real, dtype=float)     # no ComplexWarning: the imaginary part is checked below
    except (TypeError, ValueError):
        raise ValueError("candidate must be an (N, N) numeric array or return one") from None
    if cand.shape != (n_in, n_in):
        raise ValueError(f"candidate kernel must have shape ({n_in}, {n_in}) for {n_in} inputs, got {cand.shape}")
    if np.iscomplexobj(raw) and np.any(raw.imag != 0):
        i, j = np.unravel_index(int(np.argmax(np.abs(raw.imag))), raw.shape)
        raise ValueError(f"candidate kernel is complex: K[{i}, {j}] = {complex(raw[i, j])} has imaginary part "
                         f"{float(raw.imag[i, j]):.6g} (the largest); a kernel is real")
    if not np.all(np.isfinite(cand)):
        raise ValueError("candidate kernel contains NaN or inf")
    gap = np.abs(cand - cand.T)
    if gap.max(initial=0.0) > 1e-10 * np.abs(cand).max(initial=0.0):
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise ValueError(f"candidate kernel is not symmetric: K[{i}, {j}] = {cand[i, j]!r} but "
                         f"K[{j}, {i}] = {cand[j, i]!r}")
    return (cand + cand.T) / 2


def _entry_scales(scale: np.ndarray) -> np.ndarray:
    """sqrt(K_ii K_jj) per entry, or the kernel's scale (its largest) where that is 0: an input
    whose kernel is 0 in every network (a zero input without bias) has no scale of its own."""
    if not scale.max(initial=0.0) > 0:
        raise ValueError("the sampled kernel is 0 on every input (zero inputs without bias?): there is no "
                         "scale to compare a candidate with")
    return np.where(scale > 0, scale, scale.max())


def kernel_test(candidate, sample: KernelSample, name: str | None = None) -> TestResult:
    """Test a candidate kernel (see :func:`candidate_kernel`) on a :class:`KernelSample`.

    Each entry's null allows round-off, ``|E Z - K| <= ROUNDOFF sqrt(K_ii K_jj)``
    (:data:`ROUNDOFF`): an entry with zero sampled variance (the same in every
    network) must match the sample to that absolute tolerance.

    ``details``: as :func:`~ntkcheck.stats.mean_test` plus ``design``, ``widths``,
    ``method`` (how the networks were sampled: "exact" or "dense"), ``index`` (rows, cols of the entries),
    ``worst_pair`` (i, j), ``candidate`` (the entries tested), ``zero_variance`` (per entry: the same in
    every network), ``relative_error`` (candidate minus sampled mean per entry, relative to sqrt(K_ii K_jj),
    or to the kernel's largest such scale where that is 0) and ``width_bias`` (the first-order bias
    ``b_1 / n_s`` at width n_s, estimated as ``(K_{n_s} - K_{n_l}) n_l / (n_l - n_s)``, relative).
    """
    cand = candidate_kernel(candidate, sample.X, sample.kind)
    draws, target, scale, (rows, cols) = kernel_entries(sample.draws, cand)
    scale = _entry_scales(scale)
    d = sample.design
    res = mean_test(draws, target, bias=ROUNDOFF * scale, false_fail_rate=d.false_fail_rate,
                    false_pass_rate=d.false_pass_rate, scale=scale, name=name or f"check_kernel[{sample.kind}]")
    relative_error = (target - res.details["mean"]) / scale
    # ties at t = inf (entries with zero sampled variance) go to the largest relative error
    worst = int(np.lexsort((np.abs(relative_error), res.details["t"]))[-1])
    n_s, n_l = d.widths
    small, large = sample.width_means[:, rows, cols]
    return dataclasses.replace(res, details={
        **res.details, "design": d, "widths": d.widths, "method": d.method, "index": (rows, cols),
        "worst_entry": (worst,), "worst_pair": (int(rows[worst]), int(cols[worst])), "candidate": target,
        "zero_variance": np.ptp(draws, axis=0) == 0, "relative_error": relative_error,
        "width_bias": (small - large) * n_l / (n_l - n_s) / scale})


def check_kernel(candidate: np.ndarray | Callable, spec: MLP | stax.Layer, X, kind: str = "ntk", false_fail_rate: float = 1e-3,
                 seed=0, **options) -> TestResult:
    """Decide whether ``candidate`` is the infinite-width ``kind`` kernel of ``spec`` on X.

    candidate : (N, N) array, a callable ``(X1, X2) -> (N1, N2)``, or a
        neural-tangents ``kernel_fn(x1, x2, get)`` (called with ``get=kind``).
        It is evaluated and validated (shape, real values, symmetry,
        finiteness) before any network is sampled.
    spec : an :class:`~ntkcheck.MLP` or a :mod:`ntkcheck.stax` network.  For a
        stax network every hidden channel count is the width (the readout keeps
        its size; :func:`ntkcheck.stax.with_width`), the networks are sampled
        with ``method="dense"`` (``details["method"]``), and the NNGP is checked
        from ``f f^T`` of the outputs, far noisier than an MLP's readout-Gram
        draws (see the module docstring): expect many more pairs.
    X : (N, d); for a stax network also (N, W, C) or (N, H, W, C).
    kind : "ntk" or "nngp".
    options : ``false_pass_rate`` (1e-3), ``discrepancy`` (0.01, relative to
        sqrt(K_ii K_jj)), ``widths``, ``n_networks``, ``max_networks``,
        ``method``, ``jobs`` (see :func:`sample_kernel`).

    Fails (``passed`` False; the result is then falsy) with probability about
    ``false_fail_rate`` when the candidate is right, and passes with probability
    <= ``false_pass_rate`` when any entry is off by more than ``detectable``
    (relative).  ``statistic, pvalue = result`` unpacks like scipy's results.
    The spec's own width (a stax network's hidden channel counts) is ignored:
    the design chooses the widths.  Deterministic given ``seed``.
    """
    _check_kind(kind)
    X = _inputs(spec, X)
    cand = candidate_kernel(candidate, X, kind)
    return kernel_test(cand, sample_kernel(spec, X, kind, false_fail_rate, seed, **options))
