"""Closed-form duals against independent implementations; quadrature against its stated error."""
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.integrate import dblquad

from ntkcheck.activations import custom, get_activation

RNG = np.random.default_rng(20261128)
K11 = RNG.uniform(0.05, 3.0, 64)
K22 = RNG.uniform(0.05, 3.0, 64)
C = np.concatenate([[1.0, -1.0, 0.0, 0.999999], RNG.uniform(-1, 1, 60)])
K12 = C * np.sqrt(K11 * K22)


def arccos_relu(k11, k12, k22):
    """Cho & Saul 2009 arc-cosine kernels as written in claims.md."""
    c = np.clip(k12 / np.sqrt(k11 * k22), -1, 1)
    th = np.arccos(c)
    return np.sqrt(k11 * k22) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi), (np.pi - th) / (2 * np.pi)


def leaky_reference(slope):
    """leaky(x) = relu(x) - s relu(-x): E = (1 + s^2) J(k12) - 2 s J(-k12); signs by orthant probabilities."""
    def ref(k11, k12, k22):
        jp, dp = arccos_relu(k11, k12, k22)
        jm, dm = arccos_relu(k11, -k12, k22)    # dm = P(u > 0, v < 0)
        return (1 + slope**2) * jp - 2 * slope * jm, dp * (1 + slope**2) + 2 * slope * dm
    return ref


def abs_reference(k11, k12, k22):
    jp, dp = arccos_relu(k11, k12, k22)
    jm, dm = arccos_relu(k11, -k12, k22)
    return 2 * jp + 2 * jm, 2 * dp - 2 * dm


def gauss_hermite_reference(fn, deriv, order=160):
    """Tensor Gauss-Hermite with a Cholesky factor: a rule independent of the library's trapezoid."""
    z, w = hermegauss(order)
    w = w / np.sqrt(2 * np.pi)

    def ref(k11, k12, k22):
        out = []
        for g in (fn, deriv):
            vals = []
            for a, c, b in zip(k11, k12, k22):
                l11 = np.sqrt(a)
                l21 = c / l11
                l22 = np.sqrt(max(b - l21**2, 0.0))
                u = l11 * z[:, None]
                v = l21 * z[:, None] + l22 * z[None, :]
                vals.append(np.sum(w[:, None] * w[None, :] * g(u) * g(v)))
            out.append(np.array(vals))
        return out
    return ref


CLOSED = {
    "relu": arccos_relu,
    "leaky_relu(0.2)": leaky_reference(0.2),
    "abs": abs_reference,
    "identity": lambda a, c, b: (c, np.ones_like(c)),
    "erf": lambda a, c, b: (
        (2 / np.pi) * np.arcsin(2 * c / np.sqrt((1 + 2 * a) * (1 + 2 * b))),
        (4 / np.pi) / np.sqrt((1 + 2 * a) * (1 + 2 * b) - 4 * c**2),
    ),
    "sin": gauss_hermite_reference(np.sin, np.cos),
    "cos": gauss_hermite_reference(np.cos, lambda x: -np.sin(x)),
    "gelu": gauss_hermite_reference(
        lambda x: x * 0.5 * (1 + __import__("scipy").special.erf(x / np.sqrt(2))),
        lambda x: 0.5 * (1 + __import__("scipy").special.erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi),
    ),
}


@pytest.mark.parametrize("name", list(CLOSED))
def test_closed_form_matches_independent_implementation(name):
    act = get_activation(name)
    assert act.closed_form
    got = act.dual(K11, K12, K22)
    want = CLOSED[name](K11, K12, K22)
    for g, w in zip(got, want):
        scale = np.maximum(np.abs(w), 1e-3 * np.sqrt(K11 * K22))  # relative, floored for values crossing 0
        np.testing.assert_array_less(np.abs(g - w) / scale, 1e-9)


def adaptive_reference(g, k11, k12, k22):
    """scipy's adaptive dblquad in (z1, z2): slow but independent of both tensor rules."""
    out = []
    for a, c, b in zip(k11, k12, k22):
        rho = np.clip(c / np.sqrt(a * b), -1, 1)
        s = np.sqrt(1 - rho**2)

        def f(z2, z1):
            return g(np.sqrt(a) * z1) * g(np.sqrt(b) * (rho * z1 + s * z2)) * np.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * np.pi)
        out.append(dblquad(f, -12, 12, -12, 12, epsabs=1e-14, epsrel=1e-12)[0])
    return np.array(out)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
def test_quadrature_within_stated_error(name):
    act = get_activation(name)
    assert not act.closed_form
    idx = slice(0, 6)   # includes c = +-1, 0
    k11, k12, k22 = K11[idx], K12[idx], K22[idx]
    got = act.dual(k11, k12, k22)
    err = act.quadrature_error(k11, k12, k22)
    ref = [adaptive_reference(g, k11, k12, k22) for g in (act.fn, act.deriv)]
    for g, e, r in zip(got, err, ref):
        np.testing.assert_array_less(np.abs(g - r), e + 1e-11)  # + dblquad's own tolerance
        np.testing.assert_array_less(e, 1e-6 * np.abs(r) + 1e-15)


@pytest.mark.parametrize("name", ["erf", "sin", "gelu"])
def test_closed_form_equals_quadrature_to_stated_error(name):
    act = get_activation(name)
    exact = act.dual(K11, K12, K22)
    quad = act.quadrature(K11, K12, K22)
    err = act.quadrature_error(K11, K12, K22)
    for x, q, e in zip(exact, quad, err):
        np.testing.assert_array_less(np.abs(x - q), e + 1e-13)


def test_edge_cases_are_finite():
    zero, one = np.zeros(3), np.ones(3)
    for name in ["relu", "abs", "leaky_relu(0.1)", "identity", "erf", "sin", "cos", "gelu", "tanh", "sigmoid", "softplus"]:
        act = get_activation(name)
        for k11, k12, k22 in [(zero, zero, zero), (one, one, one), (one, -one, one), (zero, zero, one), (one, 1 + 1e-15, one)]:
            for v in act.dual(k11, k12, k22):
                assert np.all(np.isfinite(v)), name


def test_custom_activation_uses_quadrature_and_numeric_derivative():
    act = custom(np.tanh, name="my_tanh")
    ref = get_activation("tanh")
    for a, b in zip(act.dual(K11[:8], K12[:8], K22[:8]), ref.dual(K11[:8], K12[:8], K22[:8])):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        get_activation("swishy")


# --- extreme scales ----------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.integrate import quad  # noqa: E402
from scipy.special import ndtr  # noqa: E402

EXTREME = settings(max_examples=30, deadline=None, derandomize=True)


@EXTREME
@given(st.floats(0.0, 7.0), st.floats(0.2, 5.0), st.floats(-1.0, 1.0))
def test_sin_cos_finite_and_exact_at_large_variance(log_k, ratio, c):
    """E[sin u sin v] = (e^{-Var(u-v)/2} - e^{-Var(u+v)/2}) / 2, E[cos u cos v] = (... + ...)/2:
    an independent form; the naive e^{-(k11+k22)/2} sinh k12 is 0 * inf = NaN past k ~ 700."""
    k11 = 10.0**log_k
    k22 = ratio * k11
    k12 = c * np.sqrt(k11 * k22)
    minus, plus = np.exp(-(k11 + k22 - 2 * k12) / 2), np.exp(-(k11 + k22 + 2 * k12) / 2)
    for name, want in (("sin", ((minus - plus) / 2, (minus + plus) / 2)), ("cos", ((minus + plus) / 2, (minus - plus) / 2))):
        got = get_activation(name).dual(k11, k12, k22)
        for g, w in zip(got, want):
            assert np.isfinite(g)
            assert abs(g - w) <= 1e-12 * max(abs(w), 1e-300) + 1e-300 or abs(g - w) <= 1e-15 * np.sqrt(k11 * k22) * 1e-300 or \
                abs(g - w) <= 4 * np.finfo(float).eps * (1 + abs(k12))


def _gelu_diag_reference(k):
    """E[gelu(u)^2] and E[gelu'(u)^2], u ~ N(0, k), by adaptive 1-D quadrature in x = u over
    [-40, 40] (where gelu differs from relu) plus the exact relu tails beyond."""
    s = np.sqrt(k)
    dens = lambda x: np.exp(-(x / s) ** 2 / 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    f = lambda x: (x * ndtr(x)) ** 2 * dens(x)  # noqa: E731
    d = lambda x: (ndtr(x) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)) ** 2 * dens(x)  # noqa: E731
    t = 40 / s
    tail_p, tail_m2 = ndtr(-t), t * np.exp(-t * t / 2) / np.sqrt(2 * np.pi) + ndtr(-t)
    return [quad(f, -40, 40, points=[0], epsabs=0, epsrel=1e-13, limit=400)[0] + k * tail_m2,
            quad(d, -40, 40, points=[0], epsabs=0, epsrel=1e-13, limit=400)[0] + tail_p]


@EXTREME
@given(st.floats(0.0, 18.0))
def test_erf_gelu_accurate_at_extreme_variance(log_k):
    """sigma_w up to 1e9 gives variances up to 1e18: the closed forms stay finite and accurate
    (erf against its exact diagonal (2/pi) atan(2k/sqrt(1+4k)), (4/pi)/sqrt(1+4k); gelu
    against 1-D quadrature)."""
    k = 10.0**log_k
    nngp, ntk = get_activation("erf").dual(k, k, k)
    np.testing.assert_allclose([nngp, ntk], [(2 / np.pi) * np.arctan(2 * k / np.sqrt(1 + 4 * k)),
                                             (4 / np.pi) / np.sqrt(1 + 4 * k)], rtol=1e-13)
    got = get_activation("gelu").dual(k, k, k)
    np.testing.assert_allclose(got, _gelu_diag_reference(k), rtol=1e-10)


def test_quadrature_memory_and_time_bounded_at_any_scale():
    """Variances 1e2 .. 1e16: the graded rule keeps each entry to a few hundred thousand points
    (the trapezoid would need 1e12); values approach the sign-function limit (2/pi) arcsin c."""
    import time
    act = get_activation("tanh")
    c = np.array([0.3, -0.7, 0.999])
    for k in (1e2, 1e6, 1e16):
        t = time.perf_counter()
        nngp, ntk = act.dual(np.full(3, k), c * k, np.full(3, k))
        assert time.perf_counter() - t < 20
        assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)) and np.all(ntk >= 0)
        np.testing.assert_allclose(nngp, (2 / np.pi) * np.arcsin(c), atol=10 / np.sqrt(k))


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
def test_large_variance_rule_agrees_with_trapezoid_where_both_apply(monkeypatch, name):
    """The saturation split (tanh, sigmoid) or the graded rule (softplus) against the trapezoid."""
    import ntkcheck.activations as A
    act = get_activation(name)
    k11, k22 = np.array([20.0, 30.0, 25.0]), np.array([25.0, 18.0, 25.0])
    k12 = np.array([0.5, -0.95, 1.0]) * np.sqrt(k11 * k22)
    graded = act.quadrature(k11, k12, k22)
    monkeypatch.setattr(A, "_GRADED_FROM", np.inf)
    trapezoid = act.quadrature(k11, k12, k22)
    for g, t in zip(graded, trapezoid):
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-14)


def test_interpolated_table_matches_quadrature():
    """Equal variances on a 70 x 70 matrix: the theta table is used and agrees with
    per-entry quadrature to its tolerance."""
    import ntkcheck.activations as A
    rng = np.random.default_rng(3)
    k = np.full(70, 1.7)
    c = np.clip(rng.uniform(-1, 1, (70, 70)), -1, 1)
    c[np.arange(70), np.arange(70)] = 1.0
    act = get_activation("tanh")
    table = act.dual(k[:, None], c * 1.7, k[None, :])
    direct = A._unique_quadrature(act, *np.broadcast_arrays(k[:, None], c * 1.7, k[None, :]))
    for t, d in zip(table, direct):
        np.testing.assert_allclose(t, d, rtol=0, atol=A.INTERPOLATION_TOL * np.abs(d).max())
        np.testing.assert_array_equal(np.diag(t), np.diag(d))
