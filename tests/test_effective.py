"""ntkcheck.effective: the 1/n tensors against exact finite-width laws, direct one-hidden-layer
calculations, their symmetries and positivity, and one Monte Carlo check."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ntkcheck import MLP, custom, kernel_states, readout_kernel, sample_init
from ntkcheck.effective import (CHECK_RULES, four_point_vertex, layer_scales, layer_tensors, nlo_metric,
                                ntk_covariance, output_cumulant4)
from ntkcheck.moments import multiplier_moment, relu_ntk_moments
from ntkcheck.strategies import CLOSED_FORM, inputs, specs

#: three inputs of norm^2/d = 1, pairwise correlations 0.6, 0, 0.48
X3 = math.sqrt(3.0) * np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]])


@pytest.mark.parametrize("act", ["relu", "identity"])
@pytest.mark.parametrize("widths", [(8,), (8, 8, 8, 8), (3, 7, 5)])
def test_vertex_is_first_order_of_exact_norm_law(act, widths):
    """E[f^4]/(3 E[f^2]^2) = prod_l E[m_l^2] exactly (ntkcheck.moments; (1 + 5/n)^L for relu,
    (1 + 2/n)^L for linear nets): its 1/n term sum_l (E[m_l^2] - 1) is E[f^4]_c / (3 K^2)."""
    spec = MLP(depth=len(widths), width=widths, activation=act, sigma_w=1.5)
    X = np.full((1, 4), 0.7)
    K = kernel_states(spec, X)[-1].nngp[0, 0]
    pred = output_cumulant4(spec, X)
    exact = sum(multiplier_moment(n, 2, act) - 1 for n in widths)
    np.testing.assert_allclose(pred.value[0, 0, 0, 0] / (3 * K**2), exact, rtol=1e-10)
    assert pred.error[0, 0, 0, 0] <= 1e-10 * pred.value[0, 0, 0, 0]
    # relu and linear nets without bias: E[f^2] = K at every width, so K1 = 0
    np.testing.assert_allclose(nlo_metric(spec, X).value, 0.0, atol=1e-10 * K)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_ntk_variance_is_first_order_of_exact_relu_law(depth):
    """ntk-finite-width's exact E[Theta^2] (relu, sigma_w^2 = 2, one input): n Var(Theta) at two
    large widths, Richardson-extrapolated to n -> infinity, is (A + 2B) / c_0^2 of the output."""
    X = np.ones((1, 3))                       # c_0 = 2 |x|^2 / d = 2
    spec = MLP(depth=depth, width=10, activation="relu", sigma_w=math.sqrt(2.0))
    pred = ntk_covariance(spec, X).value[0, 0, 0, 0] * 10 / 4
    scaled = []
    for n in (20000, 40000):
        m1, m2 = relu_ntk_moments([n] * depth)
        scaled.append(n * (m2 - m1**2))
    np.testing.assert_allclose(pred, 2 * scaled[1] - scaled[0], rtol=1e-6)


def _gauss_hermite(K, nodes=60):
    """Independent Gaussian rule: tensor Gauss-Hermite in the eigenbasis of K, (points, weights)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    evals, evecs = np.linalg.eigh(K)
    grid = np.array(list(itertools.product(range(nodes), repeat=len(K))))
    z = x[grid] * np.sqrt(np.maximum(evals, 0)) @ evecs.T
    return z, np.prod(w[grid], axis=1)


@pytest.mark.parametrize("act,param", [("erf", "ntk"), ("tanh", "standard"), ("gelu", "ntk")])
def test_one_hidden_layer_equals_direct_calculation(act, param):
    """One hidden layer: f = sum_i of n i.i.d. terms, so E[f f f f]_c = (1/n) kappa_4 of one term
    and Cov(Theta_hat) = (1/n) Cov of one term, exactly; here with tensor Gauss-Hermite (200 nodes
    per dimension, accurate to ~1e-12 here), within the stated quadrature error."""
    n, sigma_w, sigma_b = 16, 1.3, 0.4
    X = X3[:2]
    spec = MLP(depth=1, width=n, activation=act, sigma_w=sigma_w, sigma_b=sigma_b, parameterization=param)
    _, (C_W, _, lam_W, _) = layer_scales(spec, 3)
    state = kernel_states(spec, X)[0]
    K, theta = state.nngp, state.ntk
    z, w = _gauss_hermite(K, 200)
    s, d = spec.act.fn(z), spec.act.deriv(z)

    def e4(a, b):      # <a_i a_j b_k b_l>
        return np.einsum("q,qi,qj,qk,ql->ijkl", w, a, a, b, b, optimize=True)

    def e2(a):
        return np.einsum("q,qi,qj->ij", w, a, a)
    ss, dd = e2(s), e2(d)
    pair = np.multiply.outer
    kappa = 3 * C_W**2 * e4(s, s) - C_W**2 * (pair(ss, ss) + pair(ss, ss).transpose(0, 2, 1, 3)
                                              + pair(ss, ss).transpose(0, 2, 3, 1))
    _within_stated_error(output_cumulant4(spec, X), kappa / n, 1e-11)
    # one term t_ab = lam_W s_a s_b + C_W W^2 d_a d_b Theta1_ab (E W^2 = 1, E W^4 = 3)
    T12, T34 = theta[:, :, None, None], theta[None, None]
    cov = (lam_W**2 * (e4(s, s) - pair(ss, ss))
           + lam_W * C_W * (T12 * (e4(d, s) - pair(dd, ss)) + T34 * (e4(s, d) - pair(ss, dd)))
           + C_W**2 * T12 * T34 * (3 * e4(d, d) - pair(dd, dd)))
    _within_stated_error(ntk_covariance(spec, X), cov / n, 1e-11)


def _within_stated_error(pred, exact, rtol):
    """|prediction - exact| within the prediction's stated quadrature error plus ``rtol`` (the
    reference rule's own accuracy)."""
    assert np.all(np.abs(pred.value - exact) <= pred.error + rtol * np.abs(exact).max())


def test_three_inputs_of_a_linear_layer_are_wick():
    """Three inputs (three-dimensional quadrature): for the identity, z^1 Gaussian gives
    V^2_(ab)(cd) = C_W^2 (K_ac K_bd + K_ad K_bc) exactly (Wick)."""
    spec = MLP(depth=1, width=5, activation="identity", sigma_w=1.2, sigma_b=0.3)
    K = kernel_states(spec, X3)[0].nngp
    V = four_point_vertex(spec, X3)
    wick = 1.2**4 * (np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K))
    np.testing.assert_allclose(V.value[1], wick, rtol=0, atol=1e-11 * wick.max())
    assert V.error.max() <= 1e-11 * wick.max()


def test_nlo_metric_of_a_quadratic_network_is_exact():
    """phi(x) = x^2, two hidden layers, no bias.  Given layer 1, z^2 ~ N(0, G_hat) with
    G_hat = C_W (1/n_1) sum_j phi_j phi_j, so E[f_a f_b] = C_W E[G_aa G_bb + 2 G_ab^2] and the
    exact excess over K is C_W (V_(aa)(bb) + 2 V_(ab)(ab)) / n_1 with V = V^2 (one input:
    V = 96 C_W^2 k^4, K1 = 288 sigma_w^6 k^4)."""
    square = custom(lambda x: x * x, lambda x: 2 * x, name="square")
    widths, sigma_w = (4, 6), 0.9
    spec = MLP(depth=2, width=widths, activation=square, sigma_w=sigma_w)
    X = np.array([[1.0, 0.2], [0.3, -0.8]])
    t = layer_tensors(spec, X)
    V = t.vertex[1]
    exact = sigma_w**2 * (np.einsum("aabb->ab", V) + 2 * np.einsum("abab->ab", V))
    np.testing.assert_allclose(t.nlo_metric[-1] / widths[1], exact / widths[0], rtol=1e-9)
    k = sigma_w**2 * np.sum(X[0] ** 2) / 2
    np.testing.assert_allclose(V[0, 0, 0, 0], 96 * sigma_w**4 * k**4, rtol=1e-9)
    np.testing.assert_allclose(t.nlo_metric[-1][0, 0] * widths[0] / widths[1], 288 * sigma_w**6 * k**4, rtol=1e-9)


def test_error_estimate_bounds_the_quadrature_error():
    """tanh at a large variance (sharp in the Gaussian's units): the stated error bounds the
    distance to a much finer rule."""
    spec = MLP(depth=2, width=8, activation="tanh", sigma_w=3.0, sigma_b=0.5)
    X = X3[:2]
    pred = four_point_vertex(spec, X)
    fine = layer_tensors(spec, X, {1: (24, 24), 2: (24, 18)}).vertex
    assert np.all(np.abs(pred.value - fine) <= pred.error + 1e-13 * np.abs(fine).max())
    assert pred.error.max() > 0 and CHECK_RULES[2][1] < 18


PROPS = settings(max_examples=12, deadline=None, derandomize=True)


@PROPS
@given(specs(activations=CLOSED_FORM + ("tanh",), max_depth=3, widths=st.tuples(st.integers(1, 9)).map(lambda t: t[0]),
             parameterizations=("ntk", "standard")),
       inputs(n=st.integers(1, 2), d=st.integers(2, 3)))
def test_symmetries_and_positivity(spec, X):
    if len(X) == 2:
        c = X[0] @ X[1] / np.linalg.norm(X[0]) / np.linalg.norm(X[1])
        assume(abs(c) < 0.95)
    t = layer_tensors(spec, X)
    N = len(X)
    for T in (t.vertex, t.ntk_a, t.ntk_b, t.ntk_d):
        np.testing.assert_array_equal(T[0], 0.0)                  # layer 1 is exactly Gaussian
    np.testing.assert_array_equal(t.nlo_metric[0], 0.0)
    for V in (t.vertex, t.ntk_a):
        scale = np.abs(V).max() + 1e-300
        for perm in [(0, 1, 2, 4, 3), (0, 2, 1, 3, 4), (0, 3, 4, 1, 2)]:
            np.testing.assert_allclose(V.transpose(perm), V, rtol=0, atol=1e-10 * scale)
        # n Cov of the layer's neuron sums: a PSD matrix over pairs (ab)
        for layer in V:
            eig = np.linalg.eigvalsh((layer.reshape(N * N, N * N) + layer.reshape(N * N, N * N).T) / 2)
            assert eig.min() >= -1e-9 * scale
    # one input: V = n Var(G_hat) >= 0 for any activation
    assert np.all(np.einsum("liiii->li", t.vertex) >= -1e-12 * np.abs(t.vertex).max())
    cov, k4 = t.ntk_covariance(), t.output_cumulant4()
    for perm in itertools.permutations(range(4)):
        np.testing.assert_allclose(k4.transpose(perm), k4, rtol=0, atol=1e-10 * (np.abs(k4).max() + 1e-300))
    for perm in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1)]:
        np.testing.assert_allclose(cov.transpose(perm), cov, rtol=0, atol=1e-10 * (np.abs(cov).max() + 1e-300))
    eig = np.linalg.eigvalsh(cov.reshape(N * N, N * N))
    assert eig.min() >= -1e-9 * (np.abs(cov).max() + 1e-300)


def test_bad_inputs_raise_clear_errors():
    spec = MLP(depth=2, width=4, activation="relu")
    with pytest.raises(ValueError, match="X"):
        four_point_vertex(spec, np.ones(3))
    with pytest.raises(ValueError, match="zero preactivation variance"):
        four_point_vertex(spec, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="rows 0 and 1 have perfectly correlated"):
        four_point_vertex(spec, np.array([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match="spec must be an MLP"):
        four_point_vertex("relu", np.ones((1, 3)))
    # duplicated rows are one input
    X = np.array([[1.0, 0.0], [0.3, 1.0], [1.0, 0.0]])
    V = four_point_vertex(spec, X).value
    np.testing.assert_allclose(V[:, 2, 1, 2, 2], V[:, 0, 1, 0, 0], rtol=1e-14)


def test_monte_carlo_at_two_widths():
    """n_L Cov(G_ab, G_cd) (G: the readout kernel, so the connected four-point function of f) and
    n_L Cov(Theta_hat) from the exact sampler approach V and A + 2B.  Stated tolerance, not tuned:
    4 batch-means standard errors plus an O(1/n) remainder of at most 10 |prediction| / n."""
    X = X3[:2]
    M, batches = 8000, 16
    for n in (64, 256):
        spec = MLP(depth=2, width=n, activation="tanh", sigma_w=1.5, sigma_b=0.2)
        t = layer_tensors(spec, X)
        V, C = t.vertex[-1], t.ntk_covariance() * n
        s = sample_init(spec, X, M, seed=np.random.SeedSequence([24, n]))
        G = readout_kernel(spec, s.post_grams)
        for sample, pred in ((G, V), (s.ntk, C)):
            for a, b, c, d in [(0, 0, 0, 0), (0, 1, 0, 1), (0, 0, 1, 1)]:
                x, y = sample[:, a, b], sample[:, c, d]
                parts = [n * np.cov(x[i::batches], y[i::batches])[0, 1] for i in range(batches)]
                est, se = n * np.cov(x, y)[0, 1], np.std(parts, ddof=1) / math.sqrt(batches)
                assert abs(est - pred[a, b, c, d]) <= 4 * se + 10 * abs(pred[a, b, c, d]) / n
