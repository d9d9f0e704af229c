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
