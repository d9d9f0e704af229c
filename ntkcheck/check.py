"""check_kernel: is a user's kernel the infinite-width NNGP/NTK of a spec?

Decided from samples of finite networks only (never from ntkcheck's analytic
kernels).  Design, for a requested relative discrepancy ``delta`` (relative to
the entry scale ``sqrt(K_ii K_jj)``), false-fail rate ``a`` and false-pass
rate ``b``:

1. **Width.**  The mean of the empirical kernel at width n differs from its
   limit by O(L/n) (Jacot et al. 2018, Thm 1; Hanin & Nica 2019).  We allow a
   bias ``c_b L / n`` relative per entry, with ``c_b = 1`` (``BIAS_COEFFICIENT``):
   ``max |E[K_n] - K| / sqrt(K_ii K_jj) * n / L`` measured over relu (L = 1, 3;
   sigma_b = 0, 0.3), erf (L = 2) and tanh (L = 4), NTK and NNGP, n = 16 and 64,
   is at most 0.38 (99% upper bound 0.62; ``benchmarks/check_kernel_bias.py``).
   The allowance is not a proof: pass ``bias_coefficient`` for other
   architectures (deep nets with L/n not small need more).  The detectable discrepancy is ``noise + bias``;
   the budget ``n * M`` (the cost of the exact sampler) is smallest when
   the bias takes a third of ``delta``, so ``n = ceil(3 c_b L / delta)``.
2. **Networks.**  A pilot of ``PILOT`` networks (its own seed) estimates the
   per-network relative spread ``s`` (largest over entries; a 90% upper
   confidence bound); then M = :func:`ntkcheck.stats.n_samples_for_mean`
   ``(a, b, delta - bias, s, K)`` with K the entries tested.
3. **Test.**  :func:`ntkcheck.stats.mean_test` on the M fresh networks' kernels
   against the candidate, with the bias allowance.  For the NTK these are the
   empirical NTKs; for the NNGP the conditional second moment of the output
   given the hidden layers, ``E[f f^T | x^L] = alpha^2 (a^2 s_w^2 <x^L, x^L'> + c^2 s_b^2)``
   for the readout ``f = alpha (a W x^L + c b)`` (:func:`ntkcheck.moments.readout_kernel`):
   the same mean as ``f f^T`` (law of total expectation) with far less spread
   (Rao-Blackwell; it is the limit of averaging ``f f^T`` over infinitely many
   i.i.d. readouts).

The result's ``detectable`` is the achieved relative discrepancy (max over
entries), computed from the sample actually used.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as sps

from .kernels import check_inputs
from .moments import readout_kernel
from .sampler import sample_init
from .seeding import child
from .spec import MLP
from .stats import TestResult, kernel_entries, mean_test, n_samples_for_mean

#: Relative finite-width bias allowance per hidden layer: |E K_n - K| <= c_b (L / n) sqrt(K_ii K_jj).
BIAS_COEFFICIENT = 1.0
#: Networks in the pilot that estimates the per-network spread.  Its 90% upper bound
#: exceeds the spread by a factor sqrt((P-1)/chi2_{0.1,P-1}) (1.14 at P = 100, 1.07 at
#: 400) that inflates M by its square: 400 pilot networks save ~15% of M (relu depth 3,
#: 16 inputs: M ~ 16,500 instead of ~19,700, benchmarks/check_kernel_power.py).
PILOT = 400
#: Share of the requested discrepancy given to the bias; 1/3 minimizes n * M.
BIAS_FRACTION = 1 / 3
KINDS = ("ntk", "nngp")


@dataclass(frozen=True)
class KernelCheckDesign:
    """Width, number of networks and the error budget of a kernel check."""

    width: int
    n_networks: int
    discrepancy: float          # requested detectable relative discrepancy
    bias: float                 # relative bias allowance c_b L / n
    spread: float               # per-network relative sd assumed (largest entry)
    n_tests: int                # entries tested (Sidak-corrected)
    false_fail_rate: float
    false_pass_rate: float


def design_kernel_check(depth: int, n_tests: int, spread_coefficient: float, false_fail_rate: float = 1e-3,
                        false_pass_rate: float = 1e-3, discrepancy: float = 0.01, width: int | None = None,
                        bias_coefficient: float = BIAS_COEFFICIENT,
                        bias_fraction: float = BIAS_FRACTION) -> KernelCheckDesign:
    """Width and networks needed to detect a relative ``discrepancy`` in any entry.

    The per-network relative spread is modelled as ``spread_coefficient * sqrt(L / n)``
    (the empirical NTK's fluctuations are O(sqrt(L/n)), Hanin & Nica 2019).
    Width: ``n = ceil(c_b L / (bias_fraction * discrepancy))`` unless given; networks:
    :func:`~ntkcheck.stats.n_samples_for_mean` for the remaining noise budget
    ``discrepancy - c_b L / n``.
    """
    if not (0 < discrepancy < 1):
        raise ValueError(f"discrepancy must be a relative discrepancy in (0, 1), got {discrepancy!r}")
    if not (0 < bias_fraction < 1):
        raise ValueError(f"bias_fraction must be in (0, 1), got {bias_fraction!r}")
    if not (bias_coefficient >= 0 and spread_coefficient >= 0):
        raise ValueError("bias_coefficient and spread_coefficient must be >= 0")
    if width is None:
        width = max(1, math.ceil(bias_coefficient * depth / (bias_fraction * discrepancy) * (1 - 1e-12)))
    bias = bias_coefficient * depth / width
    if bias >= discrepancy:
        raise ValueError(f"width {width} is too small: its bias allowance {bias:.3g} is not below "
                         f"the discrepancy {discrepancy:g}; use width > {bias_coefficient * depth / discrepancy:.0f}")
    spread = spread_coefficient * math.sqrt(depth / width)
    m = n_samples_for_mean(false_fail_rate, false_pass_rate, discrepancy - bias, spread, n_tests)
    return KernelCheckDesign(int(width), m, discrepancy, bias, spread, n_tests, false_fail_rate, false_pass_rate)


@dataclass(frozen=True, eq=False)
class KernelSample:
    """Per-network kernels ``draws`` (M, N, N) of ``spec`` at ``width`` on X, for a kind."""

    spec: MLP
    X: np.ndarray
    kind: str
    draws: np.ndarray
    design: KernelCheckDesign

    @property
    def n_networks(self) -> int:
        return self.draws.shape[0]


def _network_kernels(spec: MLP, X: np.ndarray, kind: str, m: int, seed, method: str, jobs=1) -> np.ndarray:
    sample = sample_init(spec, X, m, seed=seed, method=method, jobs=jobs)
    if kind == "ntk":
        return sample.ntk
    return readout_kernel(spec, sample.post_grams)


def _relative_spread(draws: np.ndarray) -> float:
    """Largest per-network sd of an entry relative to sqrt(K_ii K_jj), 90% upper bound."""
    m = draws.shape[0]
    entries, _, scale, _ = kernel_entries(draws, np.zeros(draws.shape[1:]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, entries.std(axis=0, ddof=1) / scale, 0.0)
    return float(rel.max() * math.sqrt((m - 1) / sps.chi2.ppf(0.1, m - 1)))


def sample_kernel(spec: MLP, X, kind: str = "ntk", false_fail_rate: float = 1e-3, seed=0, *,
                  false_pass_rate: float = 1e-3, discrepancy: float = 0.01, width: int | None = None,
                  n_networks: int | None = None,
                  bias_coefficient: float = BIAS_COEFFICIENT, max_networks: int = 1_000_000,
                  method: str = "exact", jobs: int | None = 1) -> KernelSample:
    """Design a kernel check (see the module docstring) and draw its networks.

    The same sample can test many candidates (:func:`kernel_test`).  ``width``
    and ``n_networks`` override the design; ``max_networks`` caps M (then the
    achieved ``detectable`` is larger than requested).  Seeds: pilot ``child(seed, 0)``, networks ``child(seed, 1)``.
    ``jobs``: processes sampling the networks (default 1; None: all CPUs; the
    pilot runs in this process); the sample is identical for every ``jobs``.
    More than one process uses ``spawn``, so a calling script needs the usual
    ``if __name__ == "__main__":`` guard — hence the default of 1.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be an ntkcheck.MLP, got {type(spec).__name__}")
    allowed = ("ntk",) if kind == "ntk" else ("ntk", "standard")
    if spec.parameterization not in allowed:
        raise ValueError(f"the {kind} of a {spec.parameterization!r}-parameterized network has no width-independent "
                         f"limit; check_kernel supports parameterization {allowed}")
    X, _ = check_inputs(X)
    n_in = len(X)
    n_tests = n_in * (n_in + 1) // 2
    provisional = design_kernel_check(spec.depth, n_tests, 0.0, false_fail_rate, false_pass_rate, discrepancy,
                                      width, bias_coefficient)
    n = provisional.width
    wide = dataclasses.replace(spec, width=n)
    if n_networks is None:
        pilot = _network_kernels(wide, X, kind, PILOT, child(seed, 0), method)
        coef = _relative_spread(pilot) * math.sqrt(n / spec.depth)
        design = design_kernel_check(spec.depth, n_tests, coef, false_fail_rate, false_pass_rate, discrepancy,
                                     n, bias_coefficient)
        m = min(design.n_networks, int(max_networks))
    else:
        if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 2:
            raise ValueError(f"n_networks must be an integer >= 2, got {n_networks!r}")
        design, m = provisional, int(n_networks)
    design = dataclasses.replace(design, n_networks=m)
    draws = _network_kernels(wide, X, kind, m, child(seed, 1), method, jobs)
    return KernelSample(spec, X, kind, draws, design)


def kernel_test(candidate, sample: KernelSample, name: str | None = None) -> TestResult:
    """Test a candidate kernel — (N, N) array or callable ``(X1, X2) -> (N, N)`` — on a :class:`KernelSample`."""
    n_in = len(sample.X)
    cand = candidate(sample.X, sample.X) if callable(candidate) else candidate
    try:
        cand = np.asarray(cand, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("candidate must be an (N, N) numeric array or return one") from None
    if cand.shape != (n_in, n_in):
        raise ValueError(f"candidate kernel must have shape ({n_in}, {n_in}) for {n_in} inputs, got {cand.shape}")
    if not np.all(np.isfinite(cand)):
        raise ValueError("candidate kernel contains NaN or inf")
    draws, target, scale, (rows, cols) = kernel_entries(sample.draws, cand)
    d = sample.design
    res = mean_test(draws, target, bias=d.bias * scale, false_fail_rate=d.false_fail_rate,
                    false_pass_rate=d.false_pass_rate, scale=scale, name=name or f"check_kernel[{sample.kind}]")
    worst = res.details["worst_entry"][0]
    return TestResult(
        res.name, res.statistic, res.pvalue, res.passed, res.false_fail_rate, res.detectable, res.n_samples,
        res.stderr, res.false_pass_rate,
        {**res.details, "design": d, "width": d.width, "index": (rows, cols),
         "worst_pair": (int(rows[worst]), int(cols[worst])),
         "relative_error": (res.details["mean"] - target) / scale})


def check_kernel(candidate: np.ndarray | Callable, spec: MLP, X, kind: str = "ntk", false_fail_rate: float = 1e-3,
                 seed=0, **options) -> TestResult:
    """Decide whether ``candidate`` is the infinite-width ``kind`` kernel of ``spec`` on X.

    candidate : (N, N) array, or a callable ``(X1, X2) -> (N1, N2)`` (e.g.
        ``lambda a, b: nt_kernel_fn(a, b, "ntk")``).
    kind : "ntk" or "nngp".
    options : ``false_pass_rate`` (1e-3), ``discrepancy`` (0.01, relative to
        sqrt(K_ii K_jj)), ``width``, ``n_networks``,
        ``bias_coefficient``, ``max_networks``, ``method``, ``jobs`` (see :func:`sample_kernel`).

    Fails (``passed`` False) with probability <= ``false_fail_rate`` when the
    candidate is right (given the stated bias bound), and passes with
    probability <= ``false_pass_rate`` when any entry is off by more than
    ``detectable`` (relative).  The spec's own width is ignored: the design
    chooses it.  Deterministic given ``seed``.
    """
    return kernel_test(candidate, sample_kernel(spec, X, kind, false_fail_rate, seed, **options))
