"""Statistical checks with stated error rates.

Every check returns a :class:`TestResult`: the verdict, its p-value, the
false-fail rate it was run at (probability that correct code fails) and
``detectable``, the smallest discrepancy it detects with probability at least
``1 - false_pass_rate``.  All functions are pure, vectorized and seeded.

Public API (stable)::

    TestResult(name, statistic, pvalue, passed, false_fail_rate, detectable,
               n_samples, stderr=None, false_pass_rate=None, details={})
    PowerLawResult(TestResult) + exponent, ci_low, ci_high, claimed, level
    mean_test(samples, target, bias=0.0, false_fail_rate=1e-3, false_pass_rate=1e-3,
              scale=None, name="mean", seed=0, n_boot=None)  samples (M, ...) vs target (...)
    covariance_test(samples, kernel, bias=0.0, ...)        E[x x^T] = kernel, samples (M, N[, k])
    kernel_entries(stack, kernel)                          (M, N, N), (N, N) -> (M, K), (K,), scale (K,), index
    gaussianity_test(samples, cov, seed=0, mean=None, n_projections=None,
                     false_fail_rate=1e-3, false_pass_rate=1e-3)
    power_law_fit(widths, per_network, claimed_exponent, seed=0, statistic=None,
                  n_boot=10_000, false_fail_rate=1e-3, false_pass_rate=1e-3)
    holm(results, false_fail_rate=1e-3, name="holm")
    intercept_test(widths, values, stderrs, false_fail_rate=1e-3, false_pass_rate=1e-3,
                   name="intercept", n_samples=None)    d_n = a + b/n over widths, test a = 0
    n_samples_for_mean(false_fail_rate, false_pass_rate, discrepancy, sigma, n_tests=1)
    ad_pvalue(a2)                                          Anderson-Darling upper tail

A test *fails* (rejects) when ``pvalue <= false_fail_rate``.  Under the null
hypothesis the p-value of :func:`mean_test` (bootstrap-t up to 1000 draws),
:func:`covariance_test` and each Gaussianity component is (close to) uniform, so the
false-fail rate is the nominal one; combinations by :func:`holm` are valid
under any dependence and conservative (rate <= nominal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

from . import blas
from .seeding import as_seed_sequence


@dataclass(frozen=True, eq=False)
class TestResult:
    """Outcome of one statistical check (scipy.stats style).

    ``detectable`` is the smallest discrepancy (in the test's own units, stated
    in ``details["detectable_units"]``) detected with probability at least
    ``1 - false_pass_rate`` at this sample size; None when not defined.
    """

    __test__ = False  # not a pytest test class

    name: str
    statistic: float
    pvalue: float
    passed: bool
    false_fail_rate: float
    detectable: float | None
    n_samples: int
    stderr: np.ndarray | float | None = None
    false_pass_rate: float | None = None
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Truthy only when the check passed: ``assert result`` asserts the verdict."""
        return bool(self.passed)

    def __iter__(self):
        """``statistic, pvalue = result``, as scipy.stats results unpack."""
        return iter((self.statistic, self.pvalue))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:   # one line, no arrays from details or stderr
        return f"<{type(self).__name__} {self}>"

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"{self.name}: {verdict} (p = {self.pvalue:.3g}, false-fail rate {self.false_fail_rate:g}; "
                f"statistic {self.statistic:.4g}, n = {self.n_samples}")
        if self.detectable is not None:
            units = self.details.get("detectable_units", "")
            text += (f"; detects {self.detectable:.3g}{' ' + units if units else ''}"
                     f" with prob >= {1 - (self.false_pass_rate or 0):g}")
        return text + ")"


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class PowerLawResult(TestResult):
    """Fitted exponent of ``error ~ width^exponent`` with its interval (bootstrap standard error,
    Student t quantile: :func:`power_law_fit`)."""

    exponent: float
    ci_low: float
    ci_high: float
    claimed: float
    level: float


# --- helpers ----------------------------------------------------------------

def _rate(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def sidak_level(false_fail_rate: float, n_tests: int) -> float:
    """Per-test level so that K independent tests reject any with prob ``false_fail_rate``.

    ``1 - (1 - a)^(1/K)``; valid (conservative) for two-sided tests of
    correlated Gaussian means by Sidak's inequality (Sidak 1967, JASA 62).
    """
    return -math.expm1(math.log1p(-false_fail_rate) / n_tests)


def _sidak_pvalue(p_min: float, n_tests: int) -> float:
    """Global p-value of the minimum of K p-values: ``1 - (1 - p_min)^K``."""
    return float(-np.expm1(n_tests * np.log1p(-min(p_min, 1.0)))) if p_min < 1 else 1.0


# --- means --------------------------------------------------------------------

#: From ``BOOTSTRAP_SAMPLES[0]`` to ``[1]`` draws :func:`mean_test` calibrates its statistic
#: by the bootstrap-t.  Beyond, Student t, whose two-sided error is O(1/M) (relu kernels at
#: width 16: 7.6% rejected at nominal 5% with M = 40, so ~5.1% at M = 1000).  Below, too
#: few distinct resamples (M = 5: a resample of one repeated draw has probability 1.6e-3).
BOOTSTRAP_SAMPLES = (10, 1000)


def mean_test(samples, target, bias=0.0, false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
              scale=None, name: str = "mean", seed=0, n_boot: int | None = None) -> TestResult:
    """Test E[samples] = target entrywise, allowing a known bias.

    samples : (M, ...) array, M independent draws (networks) of a vector/matrix.
    target : array broadcastable to ``samples.shape[1:]``.
    bias : allowance per entry (e.g. ``c / width`` for a known O(1/n) finite-width
        bias): the null is ``|E[x] - target| <= bias``.
    scale : optional per-entry scale; then ``detectable`` is relative to it
        (e.g. ``sqrt(K_ii K_jj)`` for kernels), else absolute.
    seed, n_boot : the bootstrap's seed and resamples (default ``max(999, 5 / rate - 1)``:
        ~5 resamples beyond the critical value; the Monte Carlo p-value is valid at any
        ``n_boot``, and a statistic whose ideal bootstrap p-value is below rate/5 is rejected
        with probability >= 0.996, so only borderline cases lose power to the resampling).

    Each entry gets the statistic ``t = max(|mean - target| - bias, 0) / se`` with
    ``se = sd / sqrt(M)``; the verdict takes the largest.  Its null law is calibrated

    * for 10 <= M <= 1000 (:data:`BOOTSTRAP_SAMPLES`) by the **bootstrap-t of the maximum**: the
      law of ``max_k |mean*_k - mean_k| / se*_k`` over resamples of the M draws
      (symmetric bootstrap-t, two-sided error O(M^-2): Hall 1988, Ann. Statist. 16,
      927-985; the maximum handles correlated entries exactly, as in Westfall & Young
      1993, single step).  Student t is not valid here: kernel entries of narrow relu
      networks are skewed and heavy-tailed, and at width 16 with M = 10 its nominal 5%
      rejects 13%; the bootstrap-t 4.3% (``benchmarks/calibrate_stats.py``);
    * otherwise by Student t with M - 1 degrees of freedom and a Sidak correction over
      the K entries (conservative for correlated entries; ``details["method"]``); for
      M < 10 the stated rate holds only for near-Gaussian draws.

    ``pvalue`` of the bootstrap is sequential (:func:`_sequential_bootstrap`): ``hits / l`` if the
    ``SEQUENTIAL_HITS``-th resample reaching T is the l-th, else ``(1 + #{T* >= T}) / (n_boot + 1)``;
    stopped early, the critical value below is Student t's (Sidak).  ``detectable``
    is ``(c + t_{1 - b}) se + bias`` with ``c`` the critical value of the statistic at
    the false-fail rate and b the false-pass rate: an entry off by at least that is
    detected with probability >= 1 - b (normal approximation).
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    x = np.asarray(samples, dtype=float)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"samples must have shape (M, ...) with M >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contain NaN or inf")
    m = x.shape[0]
    shape = x.shape[1:]
    try:
        target = np.broadcast_to(np.asarray(target, dtype=float), shape)
        bias = np.broadcast_to(np.asarray(bias, dtype=float), shape)
        scale = None if scale is None else np.broadcast_to(np.asarray(scale, dtype=float), shape)
    except ValueError:
        raise ValueError(f"target, bias and scale must broadcast to the sample shape {shape}") from None
    if not np.all(np.isfinite(target)):
        raise ValueError("target contains NaN or inf")
    if np.any(bias < 0) or not np.all(np.isfinite(bias)):
        raise ValueError("bias must be finite and >= 0")
    if n_boot is None:
        n_boot = max(999, math.ceil(5 / alpha) - 1)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 99:
        raise ValueError(f"n_boot must be an integer >= 99, got {n_boot!r}")
    mean = x.mean(axis=0)
    se = x.std(axis=0, ddof=1) / math.sqrt(m)
    excess = np.maximum(np.abs(mean - target) - bias, 0.0)
    t = _ratio(excess, se)
    k = max(1, int(np.prod(shape)))
    t_max = float(t.max())
    if BOOTSTRAP_SAMPLES[0] <= m <= BOOTSTRAP_SAMPLES[1]:
        boot, pvalue = _sequential_bootstrap(x.reshape(m, -1), t_max, seed, int(n_boot))
        if len(boot) == n_boot:
            critical, method = float(np.quantile(boot, 1 - alpha, method="higher")), "bootstrap-t"
        else:   # stopped early: far from rejecting; the tail quantile was not drawn
            critical, method = float(sps.t.isf(sidak_level(alpha, k) / 2, m - 1)), "bootstrap-t (sequential)"
    else:
        pvalue = _sidak_pvalue(float(2 * sps.t.sf(t_max, m - 1)), k)
        critical, method = float(sps.t.isf(sidak_level(alpha, k) / 2, m - 1)), "student-t"
    detect = (critical + sps.t.isf(beta, m - 1)) * se + bias
    if scale is None:
        detectable, units = float(detect.max()), "absolute"
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            detectable, units = float(np.max(detect / scale)), "relative"
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(t)), shape)) if shape else ()
    return TestResult(
        name=name, statistic=t_max, pvalue=pvalue, passed=bool(pvalue > alpha),
        false_fail_rate=alpha, detectable=detectable, n_samples=m, stderr=se, false_pass_rate=beta,
        details={"mean": mean, "target": target, "bias": bias, "t": t, "n_tests": k,
                 "detectable_entries": detect, "detectable_units": units, "worst_entry": worst,
                 "critical_t": critical, "method": method})


def _ratio(num: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``num / se`` with 0/0 = 0 and x/0 = inf (an entry without spread)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, num / np.where(se > 0, se, 1.0), np.where(num > 0, np.inf, 0.0))


#: Exceedances after which :func:`_sequential_bootstrap` stops (Besag & Clifford 1991).
SEQUENTIAL_HITS = 20


def _max_t_blocks(x: np.ndarray, seed, n_boot: int):
    """Yield ``max_k |mean*_k - mean_k| / se*_k`` for ``n_boot`` resamples of the rows of x
    (M, K), in blocks of fixed sizes (so a prefix does not depend on where one stops).

    Resamples are multinomial counts, so means and second moments are matrix products;
    the columns are centred first (no cancellation in the variance)."""
    m, k = x.shape
    c = x - x.mean(axis=0)
    moments = np.hstack([c, c * c])          # one product gives both resampled moments
    rng = np.random.default_rng(as_seed_sequence(seed))
    block = max(1, min(1000, int(2e6 // m)))     # <= ~16 MB of counts at a time
    for s in range(0, n_boot, block):
        b = min(block, n_boot - s)
        idx = rng.integers(0, m, size=(b, m)) + m * np.arange(b)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * m).reshape(b, m) / m
        with blas.single_threaded():        # thin products: threads cost more than they save
            both = w @ moments
        d = both[:, :k]                     # mean* - mean
        var = np.maximum(both[:, k:] - d * d, 0.0) * (m / (m - 1))
        yield _ratio(np.abs(d), np.sqrt(var / m)).max(axis=1)


def _sequential_bootstrap(x: np.ndarray, t_max: float, seed, n_boot: int) -> tuple[np.ndarray, float]:
    """The resampled statistics drawn and the bootstrap p-value of ``t_max``, sequentially
    (Besag & Clifford 1991, Biometrika 78, 301-304): resample until ``SEQUENTIAL_HITS``
    statistics reach ``t_max`` (after l resamples, p = hits / l) or ``n_boot`` are drawn
    (p = (1 + hits) / (n_boot + 1)).  Both are valid p-values; a statistic far from
    rejecting stops after ~hits / p resamples, so small levels (large ``n_boot``) cost only
    where the decision needs them."""
    drawn, hits = [], 0
    for block in _max_t_blocks(x, seed, n_boot):
        drawn.append(block)
        hits += int(np.sum(block >= t_max))
        if hits >= SEQUENTIAL_HITS:
            boot = np.concatenate(drawn)
            l = int(np.flatnonzero(boot >= t_max)[SEQUENTIAL_HITS - 1]) + 1
            return boot[:l], SEQUENTIAL_HITS / l
    return np.concatenate(drawn), (1 + hits) / (n_boot + 1)


def n_samples_for_mean(false_fail_rate: float, false_pass_rate: float, discrepancy: float, sigma: float,
                       n_tests: int = 1) -> int:
    """Smallest M for which :func:`mean_test` detects a shift of ``discrepancy``.

    With per-draw standard deviation ``sigma`` and K = ``n_tests`` entries
    (Sidak level a' per entry), M is the least integer with
    ``(t_{1-a'/2, M-1} + t_{1-b, M-1}) sigma / sqrt(M) <= discrepancy``: a shift of
    ``discrepancy`` in any one entry is then detected with probability >= 1 - b
    while correct code fails with probability <= a (normal approximation to the
    noncentral t).  The same role as TFP's ``min_num_samples_for_dkwm_mean_test``,
    with a known spread instead of bounded support.
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    if not (discrepancy > 0 and math.isfinite(discrepancy)):
        raise ValueError(f"discrepancy must be a finite number > 0, got {discrepancy!r}")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if isinstance(n_tests, bool) or not isinstance(n_tests, (int, np.integer)) or n_tests < 1:
        raise ValueError(f"n_tests must be a positive integer, got {n_tests!r}")
    a_entry = sidak_level(alpha, int(n_tests))

    def enough(m: int) -> bool:
        return (sps.t.isf(a_entry / 2, m - 1) + sps.t.isf(beta, m - 1)) * sigma / math.sqrt(m) <= discrepancy

    z = sps.norm.isf(a_entry / 2) + sps.norm.isf(beta)
    lo = max(2, math.ceil((z * sigma / discrepancy) ** 2))   # the normal bound is a lower bound
    hi = lo
    while not enough(hi):
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if not enough(mid) else (lo, mid)
    return int(lo)


# --- covariances ----------------------------------------------------------------

def kernel_entries(stack, kernel) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Entries of symmetric per-draw matrices to compare with a claimed kernel.

    stack : (M, N, N) symmetric draws; kernel : (N, N).  Returns the draws and
    targets at the upper triangle (i <= j) plus every lower entry where the
    kernel differs from its mirror (so an asymmetric claim is tested on both
    sides), the entry scales ``sqrt(S_ii S_jj)`` from the mean draw S, and the
    (rows, cols) index.
    """
    stack = np.asarray(stack, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ValueError(f"draws must have shape (M, N, N), got {stack.shape}")
    if kernel.shape != stack.shape[1:]:
        raise ValueError(f"kernel must have shape {stack.shape[1:]}, got {kernel.shape}")
    n = kernel.shape[0]
    rows, cols = np.triu_indices(n)
    lr, lc = np.tril_indices(n, -1)
    asym = kernel[lr, lc] != kernel[lc, lr]
    rows, cols = np.concatenate([rows, lr[asym]]), np.concatenate([cols, lc[asym]])
    diag = np.abs(np.einsum("mii->i", stack)) / len(stack)
    return stack[:, rows, cols], kernel[rows, cols], np.sqrt(diag[rows] * diag[cols]), (rows, cols)


def covariance_test(samples, kernel, bias=0.0, false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
                    name: str = "covariance", n_boot: int | None = None) -> TestResult:
    """Test E[x x^T] = kernel for zero-mean draws (e.g. network outputs vs the NNGP).

    samples : (M, N) draws, or (M, N, k) with k i.i.d. outputs per draw (their
        products are averaged within a draw, which keeps draws independent).
    kernel : (N, N) claimed second-moment matrix.  bias : allowance per entry.

    :func:`mean_test` on the products ``x_i x_j`` (i <= j) with scale
    ``sqrt(K_ii K_jj)`` from the sample diagonal (``details["scale"]``), so ``detectable`` is
    relative; ``n_boot``: its bootstrap's resamples (default: sized to ``false_fail_rate``).
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"samples must have shape (M, N) or (M, N, k), got {np.shape(samples)}")
    products = np.einsum("mik,mjk->mij", x, x) / x.shape[2]
    draws, target, scale, (rows, cols) = kernel_entries(products, kernel)
    res = mean_test(draws, target, bias, false_fail_rate, false_pass_rate, scale=scale, name=name, n_boot=n_boot)
    return _with_details(res, index=(rows, cols), scale=scale)


def _with_details(res: TestResult, **extra) -> TestResult:
    return TestResult(res.name, res.statistic, res.pvalue, res.passed, res.false_fail_rate, res.detectable,
                      res.n_samples, res.stderr, res.false_pass_rate, {**res.details, **extra})


# --- Gaussianity ------------------------------------------------------------------

def ad_statistic(u: np.ndarray) -> np.ndarray:
    """Anderson-Darling A^2 of each column of probabilities ``u`` (M, K) against U(0, 1)
    (Anderson & Darling 1954, eq. for the fully specified case)."""
    u = np.clip(np.sort(u, axis=0), 1e-300, 1 - 1e-16)
    m = u.shape[0]
    w = (2 * np.arange(1, m + 1) - 1)[:, None]
    return -m - np.sum(w * (np.log(u) + np.log1p(-u[::-1])), axis=0) / m


def ad_pvalue(a2) -> np.ndarray:
    """P(A^2 > a2) under a fully specified null, by the limiting distribution
    (Marsaglia & Marsaglia 2004, J. Stat. Softw. 9(2), ``adinf``; absolute error
    < 2e-6; the finite-M correction there is below 1e-3 for M >= 10)."""
    z = np.maximum(np.asarray(a2, dtype=float), 1e-3)
    low = np.exp(-1.2337141 / z) / np.sqrt(z) * (
        2.00012 + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * z) * z) * z) * z) * z)
    tail_exp = np.exp(1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * z) * z) * z) * z) * z)
    p = np.where(z < 2, 1 - low, -np.expm1(-tail_exp))
    return np.clip(p, 0.0, 1.0)


def gaussianity_test(samples, cov, seed=0, mean=None, n_projections: int | None = None,
                     false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
                     name: str = "gaussianity") -> TestResult:
    """Test that draws (M, N) are N(mean, cov) with the CLAIMED covariance.

    Components, Holm-combined (:func:`holm`):

    * Anderson-Darling (fully specified) on each marginal ``x_i / sqrt(C_ii)``;
    * AD on ``n_projections`` (default 2N) random unit projections of the draws
      whitened by the claimed covariance (``z = L^{-1} x``, ``C = L L^T``);
    * AD of the squared Mahalanobis radii ``|z|^2`` against chi^2_N (joint shape);
    * the radial fourth moment: z-test of ``mean |z|^4 = N (N + 2)`` (Mardia's
      kurtosis with the covariance known), with null variance from the chi^2_N
      moments ``E|z|^8 = N(N+2)(N+4)(N+6)``.

    ``detectable`` is that of the kurtosis component: the smallest relative
    excess of ``E|z|^4`` over ``N(N + 2)`` detected with probability >= 1 - b
    (at finite width the excess is the 4th cumulant, O(L/n)).
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    x = np.asarray(samples, dtype=float)
    if x.ndim != 2 or x.shape[0] < 10:
        raise ValueError(f"samples must have shape (M, N) with M >= 10, got {x.shape}")
    m, n = x.shape
    cov = np.asarray(cov, dtype=float)
    if cov.shape != (n, n) or not np.allclose(cov, cov.T, rtol=1e-10, atol=0):
        raise ValueError(f"cov must be a symmetric ({n}, {n}) matrix")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("cov must be positive definite") from None
    if mean is not None:
        x = x - np.broadcast_to(np.asarray(mean, dtype=float), (n,))
    n_proj = 2 * n if n_projections is None else int(n_projections)
    if n_proj < 0:
        raise ValueError(f"n_projections must be >= 0, got {n_projections!r}")
    z = np.linalg.solve(chol, x.T).T
    dirs = np.random.default_rng(as_seed_sequence(seed)).standard_normal((n_proj, n))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    r2 = np.einsum("mi,mi->m", z, z)
    u = np.concatenate([special.ndtr(x / np.sqrt(np.diag(cov))), special.ndtr(z @ dirs.T),
                        special.chdtr(n, r2)[:, None]], axis=1)
    a2 = ad_statistic(u)
    p_ad = ad_pvalue(a2)
    m4, sd4 = _radius_fourth_moments(n)
    zk = (np.mean(r2 * r2) - m4) / (sd4 / math.sqrt(m))
    labels = ([f"AD marginal {i}" for i in range(n)] + [f"AD projection {j}" for j in range(n_proj)]
              + ["AD radius", "radial kurtosis"])
    pvals = np.append(p_ad, 2 * special.ndtr(-abs(zk)))
    comb = _holm_pvalues(pvals)
    pvalue = float(comb.min())
    detectable = radial_kurtosis_detectable(n, m, len(pvals), alpha, beta)
    return TestResult(
        name=name, statistic=float(a2.max()), pvalue=pvalue, passed=bool(pvalue > alpha),
        false_fail_rate=alpha, detectable=detectable, n_samples=m, false_pass_rate=beta,
        details={"components": labels, "component_pvalues": pvals, "holm_pvalues": comb,
                 "ad_statistics": a2, "kurtosis_z": float(zk),
                 "relative_radial_kurtosis": float(np.mean(r2 * r2) / m4 - 1),
                 "detectable_units": "relative excess of E|z|^4"})


def radial_kurtosis_detectable(n_dims: int, n_draws: int, n_tests: int, false_fail_rate: float = 1e-3,
                               false_pass_rate: float = 1e-3) -> float:
    """:func:`gaussianity_test`'s ``detectable``: the smallest relative excess of ``E|z|^4`` over
    ``N(N + 2)`` (N = ``n_dims``) that its radial kurtosis z-test on ``n_draws`` draws, one of
    ``n_tests`` Holm components at ``false_fail_rate``, detects with probability >= 1 -
    ``false_pass_rate`` (chi^2_N moments, normal approximation)."""
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    m4, sd4 = _radius_fourth_moments(n_dims)
    crit = sps.norm.isf(alpha / (2 * n_tests)) + sps.norm.isf(beta)
    return float(crit * sd4 / math.sqrt(n_draws) / m4)


def _radius_fourth_moments(n: int) -> tuple[float, float]:
    """Mean and sd of ``|z|^4`` for ``z ~ N(0, I_n)``: chi^2_n moments ``E r^4 = n(n+2)``,
    ``E r^8 = n(n+2)(n+4)(n+6)``."""
    m4 = n * (n + 2.0)
    return m4, math.sqrt(n * (n + 2.0) * (n + 4.0) * (n + 6.0) - m4 * m4)


# --- combination --------------------------------------------------------------

def _holm_pvalues(p: np.ndarray) -> np.ndarray:
    """Holm (1979) adjusted p-values, in the input order."""
    p = np.asarray(p, dtype=float)
    k = p.size
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p[order]))
    out = np.empty(k)
    out[order] = adj
    return out


def holm(results: Sequence[TestResult], false_fail_rate: float = 1e-3, name: str = "holm") -> TestResult:
    """Combine checks into one verdict by Holm's step-down procedure (Holm 1979).

    The verdict fails when any Holm-adjusted p-value is <= ``false_fail_rate``,
    i.e. when ``K * min p <= false_fail_rate``: valid under any dependence
    between the checks (conservative).  ``details["failed"]`` lists the
    components rejected.  Components' ``detectable`` apply at their own rates;
    run them at ``false_fail_rate / K`` for the Bonferroni budget.
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    results = list(results)
    if not results or not all(isinstance(r, TestResult) for r in results):
        raise ValueError("results must be a non-empty sequence of TestResult")
    p = np.array([r.pvalue for r in results], dtype=float)
    adj = _holm_pvalues(p)
    pvalue = float(adj.min())
    failed = [r.name for r, a in zip(results, adj) if a <= alpha]
    return TestResult(
        name=name, statistic=float(p.min()), pvalue=pvalue, passed=bool(pvalue > alpha),
        false_fail_rate=alpha, detectable=None, n_samples=int(sum(r.n_samples for r in results)),
        details={"components": [r.name for r in results], "component_pvalues": p, "holm_pvalues": adj,
                 "failed": failed, "results": results})


# --- finite-width extrapolation -------------------------------------------------

def intercept_test(widths, values, stderrs, false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
                   name: str = "intercept", n_samples: int | None = None) -> TestResult:
    """Test that a finite-width discrepancy vanishes at infinite width: ``d_n = a + b/n``, ``a = 0``.

    widths : (W,) widths n (>= 2 distinct).  values : (W,) measured d_n, e.g. the
    normalized error of a mean over networks.  stderrs : (W,) their standard errors
    (independent across widths, treated as known).  n_samples : the networks behind
    the values, for the record (default W).

    Weighted least squares (weights ``1/stderr^2``) of ``d_n`` on ``(1, 1/n)``: the
    bias coefficient b is free (the O(1/n) finite-width bias, e.g. of the mean
    empirical NNGP/NTK: Jacot et al. 2018, Thm 1; Hanin & Nica 2019), and the
    claim is ``a = 0``: ``z = a / SE(a)``, two-sided normal p-value.  ``detectable``
    is ``(z_{1-a/2} + z_{1-b}) SE(a)`` in the units of ``values``: an intercept that
    large is detected with probability >= 1 - b.  ``details``: ``a``, ``se_a``,
    ``b``, ``cov`` (of (a, b)), ``chi2`` (weighted residual sum of squares), ``dof``
    (W - 2) and ``gof_pvalue`` (chi^2 upper tail of the fit's adequacy; NaN when
    dof = 0).
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    n, d, se = (np.asarray(v, dtype=float) for v in (widths, values, stderrs))
    if n.ndim != 1 or n.size < 2 or np.any(n <= 0) or np.unique(n).size < 2:
        raise ValueError("widths must be a 1-D array of >= 2 distinct positive widths")
    if d.shape != n.shape or se.shape != n.shape:
        raise ValueError(f"values and stderrs must have the widths' shape {n.shape}, got {d.shape} and {se.shape}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise ValueError("values must be finite and stderrs finite and > 0")
    A = np.stack([np.ones_like(n), 1.0 / n], axis=1)
    w = 1.0 / se**2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    coef = cov @ (A.T @ (w * d))
    chi2 = float(np.sum(w * (d - A @ coef) ** 2))
    se_a = math.sqrt(cov[0, 0])
    z = coef[0] / se_a
    pvalue = float(2 * sps.norm.sf(abs(z)))
    dof = n.size - 2
    return TestResult(
        name=name, statistic=float(z), pvalue=pvalue, passed=bool(pvalue > alpha), false_fail_rate=alpha,
        detectable=float((sps.norm.isf(alpha / 2) + sps.norm.isf(beta)) * se_a), n_samples=int(n.size if n_samples is None else n_samples),
        stderr=se_a, false_pass_rate=beta,
        details={"a": float(coef[0]), "se_a": se_a, "b": float(coef[1]), "cov": cov, "chi2": chi2, "dof": dof,
                 "gof_pvalue": float(sps.chi2.sf(chi2, dof)) if dof > 0 else math.nan,
                 "detectable_units": "units of values (intercept)"})


# --- power laws -----------------------------------------------------------------

def _mean_statistic(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(batch.shape[0], batch.shape[1], -1).mean(axis=(1, 2))


def slope_weights(widths) -> np.ndarray:
    """The weights ``c`` of the least-squares slope of ``log y`` on ``log n``: slope = ``c . log y``."""
    lw = np.log(np.asarray(widths, dtype=float))
    lw -= lw.mean()
    return lw / (lw @ lw)


def power_law_fit(widths, per_network, claimed_exponent: float, seed=0,
                  statistic: Callable[[np.ndarray], np.ndarray] | None = None, n_boot: int = 10_000,
                  false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
                  name: str = "power law", bias: float = 0.0) -> PowerLawResult:
    """Fit ``error(n) ~ C n^exponent`` over widths and test the exponent.

    widths : (W,) widths n.
    per_network : a list of W arrays (M_w, ...) or a (W, M, ...) array: per-network
        quantities at each width, independent across networks.
    statistic : maps a batch of resampled networks, shape (B, M_w, ...), to the
        error at that width, shape (B,); default the mean.  Use it for errors of a
        mean over networks, e.g. the relative Frobenius error of the mean kernel.

    The exponent is the least-squares slope ``sum_w c_w log e_w`` of log(error) on
    log(width).  Its standard error comes from the bootstrap over networks, resampled
    independently at each width: ``v_w``, the bootstrap variance of ``log e_w``, is
    rescaled by ``M_w / (M_w - 1)`` (the ideal bootstrap standard error of a mean is
    ``sqrt((M - 1)/M) s / sqrt(M)``, biased low: Efron & Tibshirani 1993, ch. 5-6), and
    ``se^2 = sum_w c_w^2 v_w``.  The interval at level ``1 - false_fail_rate`` is
    ``exponent +- t_{nu, 1 - a/2} se`` with ``nu = min_w M_w - 1`` degrees of freedom: the
    spread at each width is itself estimated from M_w networks.  For Gaussian
    per-width estimates the Welch-Satterthwaite df (Satterthwaite 1946, Biometrics Bull.
    2, 110; Welch 1947, Biometrika 34, 28) is ``>= min M_w - 1``, but with heavy-tailed
    per-network errors the estimated spread varies more than a chi-square and the
    Welch interval undercovers (lognormal noise, 8 networks at 3 widths: 1.4 % missed at
    nominal 1 %, 0.33 % at 0.15 %); ``min M_w - 1`` covers at or above nominal (0.66 %,
    0.04 %; mean and median statistics, chi^2_1 and gamma noise likewise:
    ``benchmarks/power_law_coverage.py``).  The percentile bootstrap it replaces missed
    3.9 % at nominal 1 % and 1.5 % at 0.15 % there (its spread is biased low and its far
    tails rest on few distinct resamples).

    Passes when the claimed exponent lies in the interval AND the interval excludes
    0 (no plateau).  ``pvalue`` is the two-sided t p-value of the claimed exponent
    (``pvalue > false_fail_rate`` iff it lies in the interval); ``detectable`` =
    ``(t_{nu, 1-a/2} + t_{nu, 1-b}) se``: an exponent off by that much is detected
    with probability >= 1 - b (normal approximation to the noncentral t).

    bias : a known bound on the fitted exponent's finite-width bias (signed; e.g. a
        next-order ``1/n`` term of the error steepens the slope over small widths): the
        claim is then the band between ``claimed_exponent`` and ``claimed_exponent + bias``,
        which the interval must meet; ``pvalue`` is that of the band's nearest end and
        ``detectable`` grows by ``|bias|`` (as :func:`mean_test`'s ``bias``).
    """
    alpha = _rate(false_fail_rate, "false_fail_rate")
    beta = _rate(false_pass_rate, "false_pass_rate")
    w = np.asarray(widths, dtype=float)
    if w.ndim != 1 or w.size < 2 or np.any(w <= 0) or np.unique(w).size < 2:
        raise ValueError("widths must be a 1-D array of >= 2 distinct positive widths")
    groups = [np.asarray(g, dtype=float) for g in per_network]
    if len(groups) != w.size:
        raise ValueError(f"per_network has {len(groups)} groups but there are {w.size} widths")
    if any(g.ndim < 1 or g.shape[0] < 2 for g in groups):
        raise ValueError("each width needs an array (M, ...) of at least 2 networks")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if not math.isfinite(bias):
        raise ValueError(f"bias must be finite, got {bias!r}")
    stat = _mean_statistic if statistic is None else statistic
    rng = np.random.default_rng(as_seed_sequence(seed))
    point = np.array([float(np.asarray(stat(g[None])).reshape(-1)[0]) for g in groups])
    boot = np.empty((n_boot, w.size))
    for k, g in enumerate(groups):
        # chunks bound the memory of the resampled copies to ~64 MB
        chunk = max(1, int(8e6 // max(1, g.size)))
        for s in range(0, n_boot, chunk):
            idx = rng.integers(0, g.shape[0], size=(min(chunk, n_boot - s), g.shape[0]))
            boot[s:s + len(idx), k] = np.asarray(stat(g[idx]), dtype=float).reshape(-1)
    if np.any(point <= 0) or np.any(boot <= 0) or not np.all(np.isfinite(boot)):
        raise ValueError("errors must be finite and > 0 to fit a power law")
    m = np.array([g.shape[0] for g in groups], dtype=float)
    c = slope_weights(w)                             # slope = c . log(errors)
    exponent = float(np.log(point) @ c)
    v = np.log(boot).var(axis=0, ddof=1) * m / (m - 1)
    parts = c * c * v
    se = float(math.sqrt(parts.sum()))
    nu = float(m.min() - 1)
    t_a, t_b = float(sps.t.isf(alpha / 2, nu)), float(sps.t.isf(beta, nu))
    lo, hi = exponent - t_a * se, exponent + t_a * se
    claimed = float(claimed_exponent)
    band = sorted((claimed, claimed + float(bias)))
    off = max(band[0] - exponent, exponent - band[1], 0.0)      # distance to the claimed band
    pvalue = float(2 * sps.t.sf(off / se, nu)) if se > 0 else float(off == 0)
    passed = bool(lo <= band[1] and band[0] <= hi and not lo <= 0 <= hi)
    return PowerLawResult(
        name=name, statistic=exponent, pvalue=pvalue, passed=passed, false_fail_rate=alpha,
        detectable=float((t_a + t_b) * se + abs(bias)), n_samples=int(m.sum()), stderr=se, false_pass_rate=beta,
        details={"widths": w, "errors": point, "n_boot": n_boot, "detectable_units": "exponent", "dof": nu,
                 "bias": float(bias),
                 "interval": f"Student t, {nu:.0f} df, bootstrap se",
                 "log_prefactor": float(np.mean(np.log(point)) - exponent * np.mean(np.log(w)))},
        exponent=exponent, ci_low=float(lo), ci_high=float(hi), claimed=claimed, level=1 - alpha)
