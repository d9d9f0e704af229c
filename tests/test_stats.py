"""Calibration (false-fail rates, p-value uniformity), power and API of ntkcheck.stats.

Calibration runs R = 1,000 seeded null replications at small sample sizes and a
nominal rate of 0.05, so the 99.9% binomial interval of the rejection rate is
informative (about 0.03..0.075).
"""
import math

import numpy as np
import pytest
from scipy import stats as sps

from ntkcheck import stats

R = 1000
ALPHA = 0.05


def binomial_interval(p, n=R, level=0.999):
    return sps.binom.ppf((1 - level) / 2, n, p) / n, sps.binom.isf((1 - level) / 2, n, p) / n


def assert_calibrated(pvalues, alpha=ALPHA, uniform=True):
    pvalues = np.asarray(pvalues)
    lo, hi = binomial_interval(alpha)
    rate = np.mean(pvalues <= alpha)
    assert lo <= rate <= hi, (rate, lo, hi)
    if uniform:
        assert sps.kstest(pvalues, "uniform").pvalue > 1e-3


def wishart_cov(rng, n):
    A = rng.standard_normal((n, n))
    return A @ A.T / n + 0.5 * np.eye(n)


# --- mean_test ---------------------------------------------------------------

def test_mean_test_calibrated_and_uniform():
    rng = np.random.default_rng(0)
    M, K = 20, 5
    target = rng.normal(size=K)
    scale = rng.uniform(0.5, 2, size=K)
    draws = target + scale * rng.standard_normal((R, M, K))
    p = [stats.mean_test(d, target, false_fail_rate=ALPHA).pvalue for d in draws]
    assert_calibrated(p)


def test_mean_test_calibrated_on_narrow_relu_networks():
    # real draws: skewed, heavy-tailed kernel entries of width-16 relu networks, M = 10 per
    # test; one hidden layer, so the analytic NTK is the exact mean (Student t: ~10% at 5%)
    from ntkcheck import MLP, ntk_kernel, sample_init
    from ntkcheck.data import sphere_inputs

    X, M = sphere_inputs(4, 3, seed=0), 10
    spec = MLP(1, 16, "relu", math.sqrt(2), 0.3)
    iu = np.triu_indices(4)
    draws = sample_init(spec, X, R * M, seed=3).ntk.reshape(R, M, 4, 4)[:, :, iu[0], iu[1]]
    target = ntk_kernel(spec, X)[iu]
    p = [stats.mean_test(d, target, false_fail_rate=ALPHA, seed=i).pvalue for i, d in enumerate(draws)]
    assert_calibrated(p, uniform=False)


def test_mean_test_bias_allowance_valid_at_boundary():
    # true offset exactly at the allowance: rate <= nominal (least favourable point ~ alpha/2)
    rng = np.random.default_rng(1)
    draws = 0.3 + rng.standard_normal((R, 30, 1))
    rate = np.mean([stats.mean_test(d, 0.0, bias=0.3, false_fail_rate=ALPHA).pvalue <= ALPHA for d in draws])
    assert rate <= binomial_interval(ALPHA)[1]


def test_mean_test_power_at_detectable():
    rng = np.random.default_rng(2)
    M, K, beta = 40, 4, 0.1
    base = stats.mean_test(rng.standard_normal((M, K)), np.zeros(K), false_fail_rate=ALPHA, false_pass_rate=beta)
    shift = np.zeros(K)
    shift[0] = base.detectable          # one entry off by the stated detectable discrepancy
    res = [stats.mean_test(shift + rng.standard_normal((M, K)), np.zeros(K), false_fail_rate=ALPHA,
                           false_pass_rate=beta) for _ in range(R)]
    rejected = np.mean([not r.passed for r in res])
    assert rejected >= 1 - beta - 0.05    # detectable is itself estimated: allow its spread


def test_mean_test_summary_and_errors():
    res = stats.mean_test(np.ones((5, 2)) + np.arange(5)[:, None], [3.0, 30.0], scale=[1.0, 1.0])
    assert "FAIL" in str(res) and "relative" in str(res)
    assert res.n_samples == 5 and res.details["worst_entry"] == (1,)
    with pytest.raises(ValueError, match="M >= 2"):
        stats.mean_test(np.ones((1, 3)), 0.0)
    with pytest.raises(ValueError, match="broadcast"):
        stats.mean_test(np.ones((4, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="false_fail_rate"):
        stats.mean_test(np.ones((4, 3)), 0.0, false_fail_rate=0)
    with pytest.raises(ValueError, match="bias"):
        stats.mean_test(np.ones((4, 3)), 0.0, bias=-1)
    with pytest.raises(ValueError, match="NaN"):
        stats.mean_test(np.full((4, 3), np.nan), 0.0)


def test_constant_samples():
    assert stats.mean_test(np.ones((4, 2)), 1.0).passed
    assert not stats.mean_test(np.ones((4, 2)), 1.5).passed


# --- sample-size design -----------------------------------------------------------

def test_n_samples_for_mean_meets_target_and_is_minimal():
    a, b, d, s, k = 1e-3, 1e-2, 0.1, 2.0, 10
    m = stats.n_samples_for_mean(a, b, d, s, n_tests=k)
    a_e = stats.sidak_level(a, k)
    reach = lambda m: (sps.t.isf(a_e / 2, m - 1) + sps.t.isf(b, m - 1)) * s / math.sqrt(m)  # noqa: E731
    assert reach(m) <= d < reach(m - 1)
    z = sps.norm.isf(a_e / 2) + sps.norm.isf(b)
    assert m >= (z * s / d) ** 2
    with pytest.raises(ValueError, match="discrepancy"):
        stats.n_samples_for_mean(a, b, 0.0, s)


def test_design_achieves_power():
    # M from the design, shift = discrepancy in one entry: rejection rate >= 1 - b
    a, b, d = ALPHA, 0.1, 0.5
    m = stats.n_samples_for_mean(a, b, d, 1.0, n_tests=3)
    rng = np.random.default_rng(3)
    shift = np.array([d, 0, 0])
    rate = np.mean([not stats.mean_test(shift + rng.standard_normal((m, 3)), 0.0, false_fail_rate=a).passed
                    for _ in range(R)])
    assert rate >= binomial_interval(1 - b)[0]


# --- covariance_test ----------------------------------------------------------------

def test_covariance_test_calibrated():
    # one entry: uniform p-values; three inputs (6 correlated entries): Sidak is
    # conservative, so rate within the interval and p-values stochastically >= uniform.
    # 2000 draws: the Student-t regime (the bootstrap regime is calibrated on real draws)
    rng = np.random.default_rng(4)
    x = 1.7 * rng.standard_normal((R, 2000, 1))
    assert_calibrated([stats.covariance_test(xi, [[1.7**2]], false_fail_rate=ALPHA).pvalue for xi in x])
    C = wishart_cov(rng, 3)
    x = rng.multivariate_normal(np.zeros(3), C, size=(R, 2000))
    p = [stats.covariance_test(xi, C, false_fail_rate=ALPHA).pvalue for xi in x]
    assert_calibrated(p, uniform=False)
    assert sps.kstest(p, "uniform", alternative="greater").pvalue > 1e-3


def test_covariance_test_rejects_scaled_kernel_and_asymmetry():
    rng = np.random.default_rng(5)
    C = wishart_cov(rng, 4)
    x = rng.multivariate_normal(np.zeros(4), C, size=(4000, 8))    # 8 outputs per draw
    x = x.transpose(0, 2, 1)
    ok = stats.covariance_test(x, C)
    assert ok.passed and ok.detectable < 0.1
    assert not stats.covariance_test(x, 1.1 * C).passed
    bad = C.copy()
    bad[0, 1] += 0.2
    res = stats.covariance_test(x, bad)
    assert not res.passed and res.details["n_tests"] == 11    # 10 upper entries + the asymmetric one


# --- gaussianity_test -------------------------------------------------------------------

def test_ad_pvalue_matches_known_quantiles():
    # limiting AD quantiles (Stephens 1974; Marsaglia & Marsaglia 2004)
    np.testing.assert_allclose(stats.ad_pvalue([1.933, 2.492]), [0.10, 0.05], atol=2e-4)


def test_gaussianity_components_calibrated():
    rng = np.random.default_rng(6)
    N, M = 3, 60
    C = wishart_cov(rng, N)
    x = rng.multivariate_normal(np.zeros(N), C, size=(R, M))
    res = [stats.gaussianity_test(xi, C, seed=7, false_fail_rate=ALPHA) for xi in x]
    comp = np.array([r.details["component_pvalues"] for r in res])          # (R, components)
    for j in range(comp.shape[1] - 1):     # every AD component: uniform, nominal rate
        assert_calibrated(comp[:, j])
    # the kurtosis z-test is a normal approximation: nominal rate within the interval
    assert_calibrated(comp[:, -1], uniform=False)
    # Holm-combined: valid (rate <= nominal)
    combined = np.mean([not r.passed for r in res])
    assert combined <= binomial_interval(ALPHA)[1]


def test_gaussianity_rejects_heavy_tails_and_wrong_covariance():
    rng = np.random.default_rng(8)
    N, M = 4, 2000
    C = wishart_cov(rng, N)
    g = rng.multivariate_normal(np.zeros(N), C, size=M)
    assert stats.gaussianity_test(g, C).passed
    assert not stats.gaussianity_test(g, 1.2 * C).passed
    # a Gaussian scale mixture with the same covariance (a "narrow network" output)
    s = np.sqrt(rng.chisquare(4, size=(M, 1)) / 4)
    res = stats.gaussianity_test(g * s, C)
    assert not res.passed and res.details["relative_radial_kurtosis"] > res.detectable / 2
    with pytest.raises(ValueError, match="positive definite"):
        stats.gaussianity_test(g, -C)


# --- holm -------------------------------------------------------------------------------

def test_holm_calibrated_for_independent_checks():
    rng = np.random.default_rng(9)
    K = 3
    combined = []
    for _ in range(R):
        parts = [stats.mean_test(rng.standard_normal((15, 2)), 0.0, false_fail_rate=ALPHA, name=f"c{k}")
                 for k in range(K)]
        combined.append(stats.holm(parts, ALPHA).pvalue)
    assert_calibrated(combined, uniform=False)    # rate 1 - (1 - a/K)^K = 0.0492
    assert sps.kstest(combined, "uniform", alternative="greater").pvalue > 1e-3   # p >= uniform


def test_holm_step_down():
    mk = lambda p, n: stats.TestResult(n, 0.0, p, p > 0.05, 0.05, None, 10)  # noqa: E731
    res = stats.holm([mk(0.01, "a"), mk(0.04, "b"), mk(0.03, "c")], 0.05)
    np.testing.assert_allclose(res.details["holm_pvalues"], [0.03, 0.06, 0.06])
    assert not res.passed and res.details["failed"] == ["a"]
    with pytest.raises(ValueError, match="non-empty"):
        stats.holm([], 0.05)


# --- power_law_fit -----------------------------------------------------------------------

def _power_law_groups(rng, widths, m, exponent, batch=()):
    """Per-network errors with mean exactly width^exponent (gamma noise, shape 4)."""
    return [w ** exponent * rng.gamma(4.0, 0.25, size=batch + (m,)) for w in widths]


def test_power_law_interval_coverage():
    rng = np.random.default_rng(10)
    widths = np.array([64, 256, 1024])
    groups = _power_law_groups(rng, widths, 100, -0.5, batch=(R,))
    res = [stats.power_law_fit(widths, [g[r] for g in groups], -0.5, seed=r, n_boot=400, false_fail_rate=0.1)
           for r in range(R)]
    miss = np.mean([not (x.ci_low <= -0.5 <= x.ci_high) for x in res])
    lo, hi = binomial_interval(0.1)
    assert lo <= miss <= hi


def test_power_law_interval_small_samples_heavy_tails():
    """8 networks per width, lognormal errors: the t_{M-1} interval with the rescaled bootstrap
    spread covers at (or above) nominal, where the percentile bootstrap missed ~4x too often."""
    rng = np.random.default_rng(12)
    widths = np.array([256, 1024, 4096])
    res = [stats.power_law_fit(widths, [w**-1.0 * rng.lognormal(0.0, 1.0, 8) for w in widths], -1.0, seed=r,
                               n_boot=400, false_fail_rate=ALPHA) for r in range(R)]
    miss = np.mean([not (x.ci_low <= -1.0 <= x.ci_high) for x in res])
    assert miss <= binomial_interval(ALPHA)[1], miss
    # the p-value agrees with the interval
    assert all((x.pvalue > ALPHA) == (x.ci_low <= -1.0 <= x.ci_high) for x in res)


def test_power_law_stderr_and_detectable():
    """The standard error is the delta-method one of the per-width log means (the bootstrap
    spread rescaled by M/(M-1)), and ``detectable`` uses the interval's own t quantiles."""
    rng = np.random.default_rng(13)
    widths = np.array([100.0, 1000.0])
    groups = [w**-0.5 * rng.gamma(4.0, 0.25, 10) for w in widths]
    fit = stats.power_law_fit(widths, groups, -0.5, seed=0, n_boot=20000, false_fail_rate=0.01,
                              false_pass_rate=0.05)
    c = 1 / np.log(10.0)
    delta = c * math.sqrt(sum(g.var(ddof=1) / (len(g) * g.mean() ** 2) for g in groups))
    assert abs(fit.stderr / delta - 1) < 0.05
    assert fit.details["dof"] == 9
    t_a, t_b = sps.t.isf(0.005, 9), sps.t.isf(0.05, 9)
    assert fit.detectable == pytest.approx((t_a + t_b) * fit.stderr)
    assert fit.ci_high - fit.ci_low == pytest.approx(2 * t_a * fit.stderr)


def test_power_law_fit_bias_band():
    """A known exponent bias makes the claim a band: errors with a next-order 1/n term (steeper
    fit) fail the point -1/2 and pass the band it bounds; bias 0 is the point test."""
    rng = np.random.default_rng(5)
    widths = np.array([32.0, 64.0, 128.0, 256.0])
    groups = [(w**-1 * (1 + 16 / w)) * rng.gamma(400.0, 1 / 400, 40) for w in widths]   # E e^2 (1 + kappa/n)
    sqrt_mean = lambda b: np.sqrt(b.mean(axis=-1))       # noqa: E731
    point = stats.power_law_fit(widths, groups, -0.5, seed=0, statistic=sqrt_mean, n_boot=2000)
    assert not point.passed and point.exponent < -0.55
    bias = float(stats.slope_weights(widths) @ (0.5 * np.log1p(16 / widths)))
    band = stats.power_law_fit(widths, groups, -0.5, seed=0, statistic=sqrt_mean, n_boot=2000, bias=bias)
    assert band.passed and band.exponent == point.exponent and band.details["bias"] == bias
    assert band.detectable == pytest.approx(point.detectable + abs(bias))
    assert band.pvalue > point.pvalue
    same = stats.power_law_fit(widths, groups, -0.5, seed=0, statistic=sqrt_mean, n_boot=2000, bias=0.0)
    assert (same.passed, same.pvalue, same.detectable) == (point.passed, point.pvalue, point.detectable)
    with pytest.raises(ValueError, match="bias"):
        stats.power_law_fit(widths, groups, -0.5, bias=math.nan)


def test_power_law_fit_statistic_and_plateau():
    rng = np.random.default_rng(11)
    widths = [32, 128, 512, 2048]
    truth = np.eye(3)
    # per-network kernels with spread ~ 1/sqrt(width): relative error of the MEAN kernel ~ width^-1/2
    per = [truth + rng.standard_normal((200, 3, 3)) / math.sqrt(w) for w in widths]

    def rel_err(batch):      # (B, M, 3, 3) -> (B,)
        return np.linalg.norm(batch.mean(axis=1) - truth, axis=(1, 2)) / np.linalg.norm(truth)

    good = stats.power_law_fit(widths, per, -0.5, seed=0, statistic=rel_err, n_boot=2000)
    assert good.passed and abs(good.exponent + 0.5) < good.detectable
    # negative control: compare with a kernel 5% off: the error plateaus, exponent ~ 0
    bad_truth = 1.05 * truth
    plateau = stats.power_law_fit(
        widths, per, -0.5, seed=0, n_boot=2000,
        statistic=lambda b: np.linalg.norm(b.mean(axis=1) - bad_truth, axis=(1, 2)) / np.linalg.norm(truth))
    assert not plateau.passed and abs(plateau.exponent) < 0.1
    assert "power law" in str(good)
    with pytest.raises(ValueError, match="distinct"):
        stats.power_law_fit([4, 4], per[:2], -0.5)


WIDTHS = np.array([64.0, 128, 256, 512, 1024])


def test_intercept_test_calibrated_with_free_bias():
    rng = np.random.default_rng(20)
    se = rng.uniform(0.5, 2.0, size=WIDTHS.size) * 1e-3
    d = 0.4 / WIDTHS + se * rng.standard_normal((R, WIDTHS.size))     # a = 0, b = 0.4
    res = [stats.intercept_test(WIDTHS, row, se, false_fail_rate=ALPHA) for row in d]
    assert_calibrated([r.pvalue for r in res])
    assert_calibrated([r.details["gof_pvalue"] for r in res])          # the a + b/n model fits


def test_intercept_test_power_at_detectable():
    rng = np.random.default_rng(21)
    se, beta = np.full(WIDTHS.size, 1e-3), 0.1
    a = stats.intercept_test(WIDTHS, np.zeros(WIDTHS.size), se, ALPHA, beta).detectable
    rejected = np.mean([not stats.intercept_test(WIDTHS, a + 0.4 / WIDTHS + se * rng.standard_normal(WIDTHS.size),
                                                 se, ALPHA, beta).passed for _ in range(R)])
    assert rejected >= binomial_interval(1 - beta)[0]


def test_intercept_test_recovers_exact_line_and_rejects_bad_input():
    res = stats.intercept_test(WIDTHS, 0.3 + 2.0 / WIDTHS, np.full(5, 1e-9), n_samples=50)
    assert res.details["a"] == pytest.approx(0.3) and res.details["b"] == pytest.approx(2.0)
    assert res.details["chi2"] < 1e-6 and not res.passed and res.n_samples == 50
    for widths, d, se, match in [([64, 64], [0, 0], [1, 1], "distinct"), (WIDTHS, [0, 0], [1] * 5, "shape"),
                                 (WIDTHS, np.zeros(5), np.zeros(5), "stderrs"),
                                 (WIDTHS, [np.nan] * 5, np.ones(5), "finite")]:
        with pytest.raises(ValueError, match=match):
            stats.intercept_test(widths, d, se)


def test_sequential_bootstrap_stops_early_only_far_from_rejecting():
    """Besag-Clifford: a statistic with many exceedances stops after SEQUENTIAL_HITS of them
    (p = hits / l, never below the level it is sized for); an extreme one draws every resample."""
    from ntkcheck.stats import SEQUENTIAL_HITS, _sequential_bootstrap
    x = np.random.default_rng(3).standard_normal((50, 4))
    boot, p = _sequential_bootstrap(x, 1.0, seed=0, n_boot=99_999)
    assert len(boot) < 99_999 and np.sum(boot >= 1.0) == SEQUENTIAL_HITS and p == SEQUENTIAL_HITS / len(boot)
    boot, p = _sequential_bootstrap(x, 1e6, seed=0, n_boot=4_999)
    assert len(boot) == 4_999 and p == 1 / 5_000
    again, _ = _sequential_bootstrap(x, 1.0, seed=0, n_boot=99_999)   # a prefix of the same stream
    assert np.array_equal(again, _sequential_bootstrap(x, 1e6, seed=0, n_boot=len(again))[0])


def test_mean_test_p_values_are_uniform_under_the_null_with_sequential_stopping():
    rng = np.random.default_rng(5)
    from ntkcheck.stats import mean_test
    p = np.array([mean_test(rng.standard_normal((40, 3)), 0.0, false_fail_rate=1e-3, seed=s).pvalue
                  for s in range(300)])
    assert 0.02 <= np.mean(p <= 0.05) <= 0.09 and 0.4 <= np.median(p) <= 0.6
