"""Kernels at extreme scales (variances and sigma_w from 1e-100 to 1e100 and beyond): finite and
within a stated tolerance of a reference where the true value is finite, else OverflowError
naming the layer and the kernel."""
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import MLP, nngp_kernel, ntk_kernel, output_kernels
from ntkcheck.activations import get_activation

EXTREME = settings(max_examples=40, deadline=None, derandomize=True)
EPS = np.finfo(float).eps
#: correlations kept 1e-3 away from +-1 (or exactly +-1): there the kernels' condition in c
#: is below 1e3, so the reference from the float inputs is comparable at 1e-12
CORRELATIONS = st.one_of(st.floats(-0.999, 0.999), st.sampled_from([-1.0, 1.0]))


def _triple(log_a, log_b, c):
    a, b = 10.0**log_a, 10.0**log_b
    k12 = a if (c == 1 and a == b) else -a if (c == -1 and a == b) else c * np.sqrt(a) * np.sqrt(b)
    return a, k12, b


def _mp_corr(a, k12, b):
    a, k12, b = mp.mpf(a), mp.mpf(k12), mp.mpf(b)
    c = k12 / mp.sqrt(a * b) if a > 0 and b > 0 else mp.mpf(0)
    if abs(c) > 1 - 8 * EPS:    # the kernels' documented snap of rounding-level correlations to +-1
        c = mp.sign(c)
    return a, b, c


def erf_reference(a, k12, b):
    """Williams 1997, eq. 11 and (4/pi)/sqrt((1+2a)(1+2b) - 4 k12^2), in 60-digit arithmetic
    (with 1 - c^2 formed exactly there, so no cancellation and no exponent limit)."""
    with mp.workdps(60):
        a, b, c = _mp_corr(a, k12, b)
        q2 = 1 + 2 * a + 2 * b + 4 * a * b * (1 - c * c)
        return (float(2 / mp.pi * mp.atan2(2 * c * mp.sqrt(a * b), mp.sqrt(q2))), float(4 / mp.pi / mp.sqrt(q2)))


def gelu_reference(a, k12, b):
    """The orthant-moment closed form of gelu's kernels (Sheppard's formula for P(w > 0)),
    unscaled, in 60-digit arithmetic."""
    with mp.workdps(60):
        a, b, c0 = _mp_corr(a, k12, b)
        c = c0 * mp.sqrt(a * b)
        d0 = a * b * (1 - c0 * c0)
        s11, s22, det = a + 1, b + 1, 1 + a + b + d0
        sq = mp.sqrt(det)
        p = mp.mpf(1) / 4 + mp.atan2(c, sq) / (2 * mp.pi)
        m_diag = p + c * sq / (2 * mp.pi * s11 * s22)
        m12 = c * p + sq / (2 * mp.pi)
        a1, b2 = a + d0, b + d0
        nngp = (a1 * c * s11 * m_diag + (a1 * b2 + c * c) * m12 + c * b2 * s22 * m_diag) / det**2 + c * p / det
        ntk = p + c / (2 * mp.pi * sq) * (1 / s11 + 1 / s22 + 1 / det)
        return float(nngp), float(ntk)


@EXTREME
@given(st.sampled_from(["erf", "gelu"]), st.floats(-300, 300), st.floats(-300, 300), CORRELATIONS)
def test_erf_gelu_duals_accurate_at_any_variance(name, log_a, log_b, c):
    """Finite for every finite variance; relative error 1e-12, or a few ulps of the scale of the
    entry (sqrt(k11 k22) for gelu's NNGP, 1 otherwise) where the value cancels to below it."""
    a, k12, b = _triple(log_a, log_b, c)
    got = get_activation(name).dual(a, k12, b)
    want = (erf_reference if name == "erf" else gelu_reference)(a, k12, b)
    scales = (np.sqrt(a) * np.sqrt(b) if name == "gelu" else 1.0, 1.0)
    for g, w, s in zip(got, want, scales):
        assert np.isfinite(g)
        assert abs(g - w) <= 1e-12 * abs(w) + 16 * EPS * s, (g, w)


@pytest.mark.parametrize("n", [2, 400])    # one pass, and the tiled threaded path
def test_nngp_computed_where_only_the_ntk_overflows(n):
    """relu, depth 100, sigma_w 47.2 on unit-norm inputs: the NNGP (~1e308) is finite, the NTK
    (100 times larger) is not; only ntk_kernel refuses, naming the NTK and the layer.  Relu
    without bias is homogeneous, so the NNGP is that at sigma_w 1 times 47.2^202."""
    X = np.random.default_rng(0).standard_normal((n, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(3)
    spec = MLP(100, 8, "relu", sigma_w=47.2, sigma_b=0.0)
    with np.errstate(all="raise"):
        K = nngp_kernel(spec, X)
    assert np.all(np.isfinite(K))
    unit = nngp_kernel(MLP(100, 8, "relu", sigma_w=1.0, sigma_b=0.0), X)
    np.testing.assert_allclose(K / 47.2**101 / 47.2**101, unit, rtol=1e-12)
    for call in (ntk_kernel, output_kernels):
        with pytest.raises(OverflowError, match=r"^the NTK kernel exceeds float64 range at dense layer 101 of 101"):
            call(spec, X)
    with pytest.raises(OverflowError, match=r"^the NNGP kernel exceeds float64 range at dense layer 101 of 101"):
        nngp_kernel(MLP(100, 8, "relu", sigma_w=48.0, sigma_b=0.0), X)


def _saturating_diag_reference(name, k):
    """E[phi(u)^2] and E[phi'(u)^2], u ~ N(0, k >= 16), by adaptive 1-D quadrature in x = u of
    localized integrands: E[tanh^2] = 1 - E[sech^2], E[sigmoid^2] = (1 + E[tanh^2(u/2)])/4."""
    from scipy.integrate import quad
    h = 1.0 if name == "tanh" else 0.5
    s = np.sqrt(k)
    dens = lambda x: np.exp(-(x / s) ** 2 / 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    sech2 = lambda x: 1 / np.cosh(h * x) ** 2  # noqa: E731
    ball = 40 / h
    e2 = quad(lambda x: sech2(x) * dens(x), -ball, ball, points=[0], epsabs=0, epsrel=1e-13, limit=400)[0]
    e4 = quad(lambda x: sech2(x) ** 2 * dens(x), -ball, ball, points=[0], epsabs=0, epsrel=1e-13, limit=400)[0]
    return (1 - e2, e4) if name == "tanh" else ((2 - e2) / 4, e4 / 16)


@EXTREME
@given(st.sampled_from(["tanh", "sigmoid"]), st.floats(1.3, 300))
def test_saturating_quadrature_accurate_at_any_variance(name, log_k):
    """The diagonal duals at variances 20 .. 1e300 within 1e-12 relative of 1-D adaptive
    quadrature (the derivative term ~1/sqrt(k) is kept, not lost to the rule's range)."""
    k = 10.0**log_k
    got = get_activation(name).dual(k, k, k)
    np.testing.assert_allclose(got, _saturating_diag_reference(name, k), rtol=1e-12, atol=0)


def test_tanh_ntk_scales_linearly_with_the_input_beyond_the_rules_range():
    """The issue's case: NTK[0, 0]/c for tanh, depth 1, on c X tends to a constant (the
    derivative term (4/3) sqrt(K1/(2 pi)) dominates); it was 16% off at 1e20 and lost at 1e30."""
    X = np.random.default_rng(0).standard_normal((2, 3))
    spec = MLP(1, 64, "tanh")
    ratios = [ntk_kernel(spec, c * X)[0, 0] / c for c in (1e10, 1e20, 1e30, 1e100)]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    k1 = X[0] @ X[0] / 3
    np.testing.assert_allclose(ratios[-1], (4 / 3) * np.sqrt(k1 / (2 * np.pi)), rtol=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.sampled_from(["relu", "leaky_relu(0.2)", "abs", "identity", "erf", "sin", "cos", "gelu", "tanh"]),
       st.integers(1, 2), st.floats(-100, 100), st.floats(-100, 100), st.integers(0, 2**32 - 1))
def test_kernels_finite_or_overflow_naming_layer_and_kernel(act, depth, log_sw, log_x, seed):
    """Inputs and sigma_w from 1e-100 to 1e100: every entry finite, or OverflowError naming the
    layer and the kernel; NNGP(s X) = s^2 NNGP(X) for relu without bias (homogeneity)."""
    X = np.random.default_rng(seed).standard_normal((3, 2)) * 10.0**log_x
    spec = MLP(depth, 8, act, sigma_w=10.0**log_sw, sigma_b=0.0)
    for kernel in (nngp_kernel, ntk_kernel):
        try:
            with np.errstate(all="raise", under="ignore"):
                K = kernel(spec, X)
        except OverflowError as err:
            assert "dense layer" in str(err) and ("NNGP" in str(err) or "NTK" in str(err))
            continue
        assert np.all(np.isfinite(K))
        if act == "relu" and kernel is nngp_kernel:
            unit = nngp_kernel(MLP(depth, 8, act, sigma_w=1.0, sigma_b=0.0), X / 10.0**log_x)
            scale = 10.0 ** (log_sw * (depth + 1)) * 10.0**log_x
            np.testing.assert_allclose(K / scale / scale, unit, rtol=1e-10,
                                       atol=1e-10 * np.abs(np.diag(unit)).max())
