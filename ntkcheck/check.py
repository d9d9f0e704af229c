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

4. **Two stages** (:func:`check_kernel`, :func:`two_stage_test`).  With a fixed seed a
   false fail would repeat forever, so a first-stage failure is confirmed on an independent
   sample (seed ``child(seed, 4)``) inside the same call, and the check fails only if both
   fail.  Each stage runs steps 1-3 at false-fail rate sqrt(a) and false-pass rate b/2
   (:func:`stage_rates`): P(both fail) = a for a correct kernel, and an error of the
   detectable size is caught by both with probability >= 1 - b.  A stage needs fewer
   pairs than a single test at (a, b) (M goes as (z_{a'/2} + z_{b'})^2: 6.2^2 against 7.0^2
   for a = b = 1e-3 and 10 entries), so a passing check costs less than before and a
   failing one about twice as much.  The stages share everything but their samples; a
   bias common to both (a second-order width remainder) would not be diluted, which is
   why the widths (step 1, :func:`stax_widths`) keep it far below the standard error.

The result's ``detectable`` is the achieved relative discrepancy (max over
entries), computed from the sample actually used.  False-fail rate and power
are measured by ``benchmarks/check_kernel_calibration.py``.

**Cost before commitment.**  Each sample first draws its first batch of :data:`BATCH`
pairs alone, timed; from its spread and time a :class:`KernelCheckPlan` (widths,
estimated pairs, estimated seconds) goes to ``notify`` before the rest is drawn, and
``max_seconds`` refuses a plan estimated to take longer with a one-line error naming
a discrepancy that fits (refused, not silently weakened: a check that detects less than
asked should be asked for).  The probe is part of the sample (nothing is drawn twice).

**Other architectures** (:mod:`ntkcheck.stax` networks: conv, pooling, flatten,
residual).  The width n of a pair member is every hidden channel count at once
(:func:`ntkcheck.stax.with_width`; the readout keeps its size), the depth L of
the default widths is the number of hidden affine layers
(:func:`ntkcheck.stax.depth`), and the networks are real ones
(``sample_init(..., method="dense")``: O(n^2) per hidden-to-hidden layer, so
deep wide stax checks cost far more than MLP ones, which use the O(n N^2)
exact sampler).  The widths are therefore derived from the discrepancy
(:func:`stax_widths`): the smallest n_s whose remainder ``(L / n_s)^2 / r`` is 1% of it,
r = 8 (a 2-conv CNN at 5%: (32, 256), where 48 L would give (96, 3072)).  On a 2-conv relu
CNN with global average pooling on 4 inputs of 6x6x2, 4,000 pairs at (8, 64), whose
(L / n_s)^2 / r is 7.8e-3, left a mean bias of 0.3-0.5% +- 0.3% per entry (t <= 1.4, entries
correlated): |b_2| < 1.3 at two standard errors; (16, 128) and (32, 256) left 0.1-0.3% +- 0.2%.
The Richardson step is the same, assuming as for the MLP that
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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import blas, stax
from .display import short_repr
from .kernels import check_inputs, output_kernels
from .moments import readout_kernel
from .sampler import sample_init
from .seeding import child
from .spec import MLP
from .stats import TestResult, _rate, kernel_entries, mean_test, n_samples_for_mean

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
#: Small width of a stax pair over its ratio: (L / n_s)^2 / r is at most this share of the requested
#: discrepancy (the second-order remainder of the extrapolation, b_2 (L / n_s)^2 / r with |b_2| <~ 1).
BIAS_SHARE = 0.01
#: Large width of a stax pair over its small width.  A dense network costs ~n^2 per hidden layer and the
#: pair's variance is ~v r (r+1) / ((r-1)^2 n_l); at the smallest n_l whose remainder fits BIAS_SHARE, the
#: cost of a design of many pairs goes as r^1.5 (r+1) / (r-1)^2: 4.2 at r = 8, 6.2 at r = 32.
STAX_WIDTH_RATIO = 8
#: Spawn key of the confirmation stage's seed, ``child(seed, CONFIRMATION)``: the stages of one
#: sample use keys 0-3, so the confirmation's networks are independent of the first stage's.
CONFIRMATION = 4


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
    """(n_s, n_l) = (48 L, 32 * 48 L): an MLP's pair (the exact sampler's cost is O(n N^2))."""
    n_s = WIDTHS_PER_LAYER * depth
    return n_s, WIDTH_RATIO * n_s


def stax_widths(depth: int, discrepancy: float) -> tuple[int, int]:
    """A stax network's pair for a requested relative ``discrepancy``: the smallest n_s with
    ``(L / n_s)^2 / r <= BIAS_SHARE * discrepancy`` and n_l = r n_s, r = :data:`STAX_WIDTH_RATIO`.

    Dense networks cost ~n^2 per hidden layer, so the widths are derived from the discrepancy
    instead of the MLP's fixed 48 L: the extrapolation's remainder ``b_2 (L / n_s)^2 / r`` (module
    docstring, step 1) is then at most 1% of the discrepancy for |b_2| <= 1 (a 2-conv relu CNN:
    |b_2| < 1.3, see the module docstring).  Discrepancy 0.05, L = 2: (32, 256).
    """
    if not (0 < discrepancy < 1):
        raise ValueError(f"discrepancy must be a relative discrepancy in (0, 1), got {discrepancy!r}")
    n_s = math.ceil(depth / math.sqrt(BIAS_SHARE * STAX_WIDTH_RATIO * discrepancy))
    return n_s, STAX_WIDTH_RATIO * n_s


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


def _pairs(spec, X, kind, widths, m, seed, method, pool, first=None) -> tuple[np.ndarray, np.ndarray]:
    """m pairs in batches of :data:`BATCH` (batch k from ``child(seed, k)``), on ``pool``'s
    threads if given: the same numbers whatever the pool.  ``first``: batch 0, already drawn."""
    sizes = [min(BATCH, m - start) for start in range(0, m, BATCH)]

    def run(k):
        if k == 0 and first is not None:
            return first
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


def _check_network(net: stax.Layer, X: np.ndarray, kind: str, method, widths, discrepancy) -> tuple[int, str]:
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
    design = _check_widths(stax_widths(L, discrepancy) if widths is None else widths)
    for n in design:
        stax.output_shape(stax.with_width(net, n), X.shape[1:])       # shapes fit at both widths
    if any(isinstance(layer, stax.FanInConcat) for layer in stax.layers(net)):
        # a concatenation's kernel weights its branches by their channel counts: the widths the
        # design sets must not change it (equal hidden counts in the concatenated branches)
        own = getattr(output_kernels(net, X), kind)
        for n in design:
            at_n = getattr(output_kernels(stax.with_width(net, n), X), kind)
            if np.max(np.abs(at_n - own)) > 1e-9 * np.max(np.abs(own)):
                raise ValueError("the network's FanInConcat weights its branches by their channel counts, which "
                                 f"differ from the widths the check samples ({n}): concatenate branches of equal "
                                 "hidden channel counts")
    return L, "dense"


@dataclass(frozen=True)
class KernelCheckPlan:
    """What a kernel sample will cost, stated after a timing probe and before the rest of the sampling.

    The probe is the first :data:`BATCH` pairs of the sample itself (nothing is drawn twice);
    ``n_networks`` and ``seconds`` are estimates from its spread and its time (the pilot then
    fixes M), ``seconds`` on ``jobs`` threads."""

    widths: tuple[int, int]     # (n_s, n_l) of every pair
    n_networks: int             # estimated pairs M
    seconds: float              # estimated wall seconds of the whole sample
    seconds_per_pair: float     # the probe's, on one thread
    spread: float               # the probe's per-pair relative spread (largest entry)
    discrepancy: float          # requested detectable relative discrepancy
    false_fail_rate: float      # this sample's test level
    method: str                 # "exact" or "dense"
    jobs: int
    stage: str = "sample"       # "first stage" or "confirmation" in a two-stage check

    def __str__(self) -> str:
        return (f"check_kernel {self.stage}: ~{self.n_networks} pairs of networks of widths {self.widths} "
                f"({self.method}), ~{self.seconds:.3g} s on {self.jobs} thread(s) ({self.seconds_per_pair:.2g} s a "
                f"pair); detects a relative discrepancy of {self.discrepancy:g} at false-fail rate "
                f"{self.false_fail_rate:.3g}")


def _refusal(plan: KernelCheckPlan, max_seconds: float) -> str:
    """One line: why the plan exceeds ``max_seconds`` and the discrepancy that fits.  M goes as
    1/discrepancy^2 at fixed widths, and larger discrepancies never get wider pairs, so the
    discrepancy that brings M down to what fits does fit."""
    fits = math.floor(max_seconds * plan.jobs / plan.seconds_per_pair)
    head = (f"max_seconds={max_seconds:g}: the check is estimated at {plan.seconds:.3g} s "
            f"(~{plan.n_networks} pairs of widths {plan.widths}, {plan.seconds_per_pair:.2g} s a pair)")
    if fits < min(PILOT, plan.n_networks):
        return f"{head}; even the {min(PILOT, plan.n_networks)}-pair pilot does not fit: raise max_seconds or pass smaller widths="
    cheaper = plan.discrepancy * math.sqrt(plan.n_networks / fits)
    step = 10.0 ** (math.floor(math.log10(cheaper)) - 1)          # two significant digits, rounded up
    cheaper = math.ceil(cheaper / step - 1e-9) * step
    if cheaper >= 1:
        return f"{head}; no discrepancy < 1 fits: raise max_seconds"
    return f"{head}; discrepancy={cheaper:.2g} fits"


def sample_kernel(spec: MLP | stax.Layer, X, kind: str = "ntk", false_fail_rate: float = 1e-3, seed=0, *,
                  false_pass_rate: float = 1e-3, discrepancy: float = 0.01, widths: tuple[int, int] | None = None,
                  n_networks: int | None = None, max_networks: int = 1_000_000,
                  method: str | None = None, jobs: int | None = None,
                  notify: Callable[[KernelCheckPlan], None] | None = None, max_seconds: float | None = None,
                  stage: str = "sample") -> KernelSample:
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

    Cost before commitment: the first batch is drawn alone and timed, then a
    :class:`KernelCheckPlan` (widths, estimated pairs and seconds) goes to ``notify`` (a
    callable; ``stage`` labels it) and, if its estimated seconds exceed ``max_seconds``, a
    ValueError names a discrepancy that fits (refused rather than silently weakened).

    ``spec``: an :class:`~ntkcheck.MLP` (``method`` "exact", the default, or
    "dense"; widths :func:`default_widths`) or a :mod:`ntkcheck.stax` network
    (``method`` "dense" only; widths :func:`stax_widths` set by
    :func:`ntkcheck.stax.with_width`, depth :func:`ntkcheck.stax.depth`).
    """
    _check_kind(kind)
    if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                    or not max_seconds > 0):
        raise ValueError(f"max_seconds must be a number > 0 or None, got {max_seconds!r}")
    if isinstance(spec, stax.Layer):
        X = _inputs(spec, X)
        L, method = _check_network(spec, X, kind, method, widths, discrepancy)
        widths = stax_widths(L, discrepancy) if widths is None else widths
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

    def pairs_needed(spread):
        return design_kernel_check(L, n_tests, spread, false_fail_rate, false_pass_rate, discrepancy,
                                   design.widths).n_networks

    args = (spec, X, kind, design.widths)
    first_m, first_seed = (n_networks, child(seed, 1)) if n_networks is not None else (min(PILOT, max_networks),
                                                                                       child(seed, 0))
    with blas.single_threaded():
        start = time.perf_counter()
        probe = _batch(*args, min(BATCH, first_m), child(first_seed, 0), method)
        per_pair = (time.perf_counter() - start) / len(probe[0])
    spread = _relative_spread(probe[0])
    m = n_networks if n_networks is not None else min(max(first_m, pairs_needed(spread)), max_networks)
    plan = KernelCheckPlan(design.widths, m, per_pair * (m - len(probe[0])) / jobs + per_pair * len(probe[0]),
                           per_pair, spread, discrepancy, false_fail_rate, method, jobs, stage)
    if max_seconds is not None and plan.seconds > max_seconds:
        raise ValueError(_refusal(plan, max_seconds))
    if notify is not None:
        notify(plan)
    # threads, not processes: the samplers' work is in BLAS, LAPACK and numpy calls that
    # release the GIL, and one pool serves every stage (no process start-up per stage)
    with blas.single_threaded(), (ThreadPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext()) as pool:
        z, sums = _pairs(*args, first_m, first_seed, method, pool, first=probe)
        spread = _relative_spread(z)
        if n_networks is None:
            for stage_key, share in ((1, UNDERSHOOT), (2, 1.0), (3, 1.0)):
                m = min(math.ceil(share * pairs_needed(spread)), max_networks)
                if m > len(z):
                    more, more_sums = _pairs(*args, m - len(z), child(seed, stage_key), method, pool)
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


def stage_rates(false_fail_rate: float, false_pass_rate: float) -> tuple[float, float]:
    """(false-fail rate, false-pass rate) of each stage of a two-stage check: (sqrt(a), b / 2).

    The check fails only if both stages fail, on independent samples: P(both fail) =
    sqrt(a)^2 = a for a correct kernel.  An error both stages detect with probability
    >= 1 - b/2 is missed with probability <= b (union bound).  The equal split keeps one
    design for both stages; the expected cost of a correct kernel's check, M_1 + sqrt(a) M_2,
    is within 4% of the best split (a_1 ~ 0.1 for a = 1e-3, 10 entries), and each stage
    needs fewer pairs than a single test at a (z_{a'/2} + z_{b/2} shrinks: 6.2 against 7.0
    for a = b = 1e-3 and 10 entries; M goes as its square)."""
    a = _rate(false_fail_rate, "false_fail_rate")
    return math.sqrt(a), _rate(false_pass_rate, "false_pass_rate") / 2


def confirmation_seed(seed) -> np.random.SeedSequence:
    """The confirmation stage's seed: ``child(seed, CONFIRMATION)``."""
    return child(seed, CONFIRMATION)


def two_stage_test(candidate: np.ndarray, draw: Callable, false_fail_rate: float = 1e-3, seed=0,
                   false_pass_rate: float = 1e-3) -> TestResult:
    """Test a (validated) candidate on a first sample and confirm a failure on an independent one.

    ``draw(false_fail_rate, false_pass_rate, seed, stage)`` returns a :class:`KernelSample` designed
    at a stage's rates (:func:`stage_rates`); the first stage draws with ``seed``, the confirmation
    (only after a first-stage failure) with :func:`confirmation_seed`.  The result fails only if
    both stages fail; its false-fail rate is the combined ``false_fail_rate`` and

    * ``pvalue`` is ``max(p_1, p_2)^2``: P(max(p_1, p_2)^2 <= x) = x for independent valid
      p-values, so ``passed`` is ``pvalue > false_fail_rate``.  Without a confirmation it is
      ``p_1^2`` (> the rate), a lower bound of what a confirmation would give;
    * ``statistic``, ``stderr`` and ``details`` are the first stage's (see :func:`kernel_test`), with
      ``details["stages"]`` the stages' results (the confirmation's None if not run),
      ``details["stage_seeds"]``, ``details["stage_rates"]`` (a', b') and ``details["confirmed"]``
      (both stages failed);
    * ``detectable`` is the largest of the stages' (each detects it with probability >= 1 - b/2).
    """
    a, b = stage_rates(false_fail_rate, false_pass_rate)
    seeds = (seed, confirmation_seed(seed))
    first = kernel_test(candidate, draw(a, b, seeds[0], "first stage"))
    second = None if first.passed else kernel_test(candidate, draw(a, b, seeds[1], "confirmation"))
    stages = (first, second)
    ran = [r for r in stages if r is not None]
    return TestResult(
        name=first.name, statistic=first.statistic, pvalue=max(r.pvalue for r in ran) ** 2,
        passed=any(r.passed for r in ran), false_fail_rate=false_fail_rate,
        detectable=max(r.detectable for r in ran), n_samples=sum(r.n_samples for r in ran), stderr=first.stderr,
        false_pass_rate=false_pass_rate,
        details={**first.details, "stages": stages, "stage_seeds": seeds, "stage_rates": (a, b),
                 "confirmed": not any(r.passed for r in ran)})


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
        ``method``, ``jobs``, ``notify`` (called with each sample's
        :class:`KernelCheckPlan` before its bulk is drawn), ``max_seconds`` (refuse a sample
        estimated to take longer, naming a discrepancy that fits; a failing check draws two
        samples) (see :func:`sample_kernel`).

    Two stages (:func:`two_stage_test`): a first sample at false-fail rate
    sqrt(``false_fail_rate``); a failure there is confirmed on an independent sample
    (seed ``child(seed, 4)``) before the check fails.  So the check fails with probability
    about ``false_fail_rate`` when the candidate is right, a failure is a confirmed one,
    and it passes with probability <= ``false_pass_rate`` when any entry is off by more
    than ``detectable`` (relative).  ``statistic, pvalue = result`` unpacks like scipy's
    results.  The spec's own width (a stax network's hidden channel counts) is ignored:
    the design chooses the widths.  Deterministic given ``seed``.
    """
    _check_kind(kind)
    X = _inputs(spec, X)
    cand = candidate_kernel(candidate, X, kind)
    b = options.pop("false_pass_rate", 1e-3)

    def draw(a_stage, b_stage, stage_seed, stage):
        return sample_kernel(spec, X, kind, a_stage, stage_seed, false_pass_rate=b_stage, stage=stage, **options)

    return two_stage_test(cand, draw, false_fail_rate, seed, b)
