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
