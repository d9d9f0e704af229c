"""Properties of the analytic NNGP/NTK recursion (hypothesis) and closed-form special cases."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from ntkcheck import MLP, kernel_states, nngp_kernel, ntk_kernel, output_kernels
from ntkcheck.strategies import inputs, specs

PROPS = settings(max_examples=40, deadline=None, derandomize=True)


@PROPS
@given(specs(parameterizations=("ntk", "standard", "mean_field")), inputs())
def test_symmetric_psd_and_ntk_dominates_nngp_on_diagonal(spec, X):
    st_ = output_kernels(spec, X)
    for K in (st_.nngp, st_.ntk):
        np.testing.assert_allclose(K, K.T, rtol=1e-12, atol=1e-14)
        eig = np.linalg.eigvalsh((K + K.T) / 2)
        assert eig.min() >= -1e-10 * max(np.trace(K), 1e-300)
    if spec.parameterization == "ntk":
        assert np.all(np.diag(st_.ntk) >= np.diag(st_.nngp) * (1 - 1e-12))


@PROPS
@given(specs(), inputs(), inputs(n=st.integers(1, 4)))
def test_cross_kernel_is_block_of_joint_kernel(spec, X1, X2):
    X2 = X2[:, :1].repeat(X1.shape[1], axis=1) if X2.shape[1] != X1.shape[1] else X2
    joint = output_kernels(spec, np.concatenate([X1, X2]))
    cross = output_kernels(spec, X1, X2)
    n1 = len(X1)
    np.testing.assert_allclose(cross.nngp, joint.nngp[:n1, n1:], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(cross.ntk, joint.ntk[:n1, n1:], rtol=1e-9, atol=1e-13)


@PROPS
@given(specs(activations=("relu",), sigma_b=st.just(0.0)), inputs(), st.floats(0.1, 10.0), st.floats(0.1, 10.0))
def test_relu_kernels_positively_homogeneous_without_bias(spec, X, s, t):
    """K(s x, t x') = s t K(x, x') for relu and no bias (degree-1 homogeneity of every layer)."""
    np.testing.assert_allclose(nngp_kernel(spec, s * X, t * X), s * t * nngp_kernel(spec, X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ntk_kernel(spec, s * X, t * X), s * t * ntk_kernel(spec, X), rtol=1e-9, atol=1e-12)


@PROPS
@given(specs(activations=("relu", "erf", "gelu", "tanh")), inputs(d=st.integers(2, 5)), st.integers(0, 2**31))
def test_rotation_invariance(spec, X, seed):
    R = special_ortho_group.rvs(X.shape[1], random_state=seed)
    np.testing.assert_allclose(nngp_kernel(spec, X @ R.T), nngp_kernel(spec, X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ntk_kernel(spec, X @ R.T), ntk_kernel(spec, X), rtol=1e-9, atol=1e-12)


@PROPS
@given(inputs(), st.floats(0.3, 2.0), st.floats(0.0, 1.0))
def test_depth1_linear_network_textbook_form(X, sw, sb):
    """f = sw/sqrt(n) W2 (sw/sqrt(d) W1 x + sb b1) + sb b2:  K = sw^2 K1 + sb^2 with
    K1 = sw^2 x.x'/d + sb^2, and Theta = K + sw^2 K1 (both layers' gradients)."""
    spec = MLP(1, 7, "identity", sigma_w=sw, sigma_b=sb)
    K1 = sw**2 * X @ X.T / X.shape[1] + sb**2
    np.testing.assert_allclose(nngp_kernel(spec, X), sw**2 * K1 + sb**2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ntk_kernel(spec, X), sw**2 * K1 + sb**2 + sw**2 * K1, rtol=1e-12, atol=1e-14)


def test_relu_recursion_matches_arccos_closed_form_by_hand():
    """Two unit inputs at angle gamma, relu, sigma_w^2 = 2, no bias: the normalised kernel follows
    the arc-cosine map c -> (sin t + (pi - t) cos t)/pi (Cho & Saul 2009), depth 2."""
    g = 1.1
    X = np.array([[1.0, 0.0], [np.cos(g), np.sin(g)]]) * np.sqrt(2)  # |x|^2/d = 1
    spec = MLP(2, 5, "relu", sigma_w=np.sqrt(2.0))
    c = np.cos(g)
    k = 2.0 * 1.0  # K^1 diag = sigma_w^2 |x|^2 / d
    ntk = k * c
    for _ in range(2):
        t = np.arccos(c)
        c_next = (np.sin(t) + (np.pi - t) * c) / np.pi
        ntk = k * c_next + 2.0 * (np.pi - t) / (2 * np.pi) * ntk
        c = c_next
    np.testing.assert_allclose(nngp_kernel(spec, X)[0, 1], k * c, rtol=1e-12)
    np.testing.assert_allclose(ntk_kernel(spec, X)[0, 1], ntk, rtol=1e-12)
    np.testing.assert_allclose(ntk_kernel(spec, X)[0, 0], 3 * k, rtol=1e-12)  # (L+1) K on the diagonal


def test_output_scale_multiplies_kernels_by_alpha_squared():
    X = np.random.default_rng(1).standard_normal((4, 3))
    base, scaled = MLP(2, 8, "erf", sigma_b=0.2), MLP(2, 8, "erf", sigma_b=0.2, output_scale=3.0)
    np.testing.assert_allclose(nngp_kernel(scaled, X), 9 * nngp_kernel(base, X), rtol=1e-13)
    np.testing.assert_allclose(ntk_kernel(scaled, X), 9 * ntk_kernel(base, X), rtol=1e-13)


def test_standard_parameterization_ntk_grows_with_width_nngp_does_not():
    X = np.random.default_rng(2).standard_normal((3, 4))
    """In SP every hidden layer's gradient term is n <x, x'>/n-scale, so Theta is affine in n."""
    k = [output_kernels(MLP(2, n, "relu", sigma_b=0.1, parameterization="standard"), X) for n in (100, 200, 300)]
    np.testing.assert_allclose(k[0].nngp, k[2].nngp, rtol=1e-13)
    slope = k[1].ntk - k[0].ntk
    np.testing.assert_allclose(k[2].ntk - k[1].ntk, slope, rtol=1e-10)
    assert np.all(slope > 0)


def test_kernel_states_one_per_dense_layer_and_zero_norm_input():
    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    states = kernel_states(MLP(3, 4, "relu"), X)
    assert len(states) == 4
    assert np.all(np.isfinite(states[-1].ntk)) and states[-1].ntk[0, 0] == 0.0


# --- extreme scales ----------------------------------------------------------

import pytest  # noqa: E402

EXTREME = settings(max_examples=25, deadline=None, derandomize=True)


@EXTREME
@given(st.sampled_from(("relu", "erf", "gelu", "sin", "cos")), st.integers(1, 3), st.floats(0.0, 9.0),
       st.floats(0.0, 6.0), inputs(n=st.integers(2, 4)))
def test_finite_and_one_two_argument_calls_agree_at_extreme_scales(act, depth, log_sw, log_x, X):
    """sigma_w up to 1e9 and inputs up to 1e6: finite wherever the kernel is representable,
    NTK >= NNGP on the diagonal, and K(X)[i, j] == K(X[:i+1], X[j:]) to 1e-12 (two identical
    rows included, whose Gram entries differ only in rounding between the two calls).  sin and
    cos take exp(-(q + q' - 2 c) / 2) from Gram entries of size q: the exponent's rounding,
    a few eps x q, is their conditioning, so their tolerance grows with the largest variance."""
    spec = MLP(depth, 8, act, sigma_w=10.0**log_sw, sigma_b=0.1)
    X = np.concatenate([X, X[:1]]) * 10.0**log_x
    try:
        joint = output_kernels(spec, X)
    except OverflowError:
        return
    for K in (joint.nngp, joint.ntk):
        assert np.all(np.isfinite(K))
    assert np.all(np.diag(joint.ntk) >= np.diag(joint.nngp) * (1 - 1e-12))
    cross = output_kernels(spec, X[:1], X[1:])
    rtol = 1e-12
    if act in ("sin", "cos"):
        q = max(float(np.diag(state.nngp).max()) for state in kernel_states(spec, X))
        rtol += 16 * np.finfo(float).eps * q
    for a, b in ((joint.nngp, cross.nngp), (joint.ntk, cross.ntk)):
        np.testing.assert_allclose(b[0], a[0, 1:], rtol=rtol, atol=rtol * np.abs(np.diag(a)).max())


@pytest.mark.parametrize("act", ["relu", "identity"])
def test_overflow_names_the_layer(act):
    X = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(OverflowError, match=r"at dense layer \d+ of 101"):
        ntk_kernel(MLP(100, 8, act, sigma_w=1e3), X)


def test_tiled_equals_layerwise_recursion():
    """The tiled, threaded output (upper triangle mirrored) equals the layer-at-a-time recursion."""
    X = np.random.default_rng(5).standard_normal((400, 6))
    for act in ("relu", "erf", "gelu"):
        spec = MLP(3, 8, act, sigma_w=1.3, sigma_b=0.2)
        tiled, layerwise = output_kernels(spec, X), kernel_states(spec, X)[-1]
        np.testing.assert_allclose(tiled.nngp, layerwise.nngp, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(tiled.ntk, layerwise.ntk, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(tiled.nngp, tiled.nngp.T)
        cross = output_kernels(spec, X[:250], X[250:])
        np.testing.assert_allclose(cross.ntk, tiled.ntk[:250, 250:], rtol=1e-13, atol=1e-15)


def test_quadrature_network_at_large_input_scale_bounded():
    """The issue's case: depth 1 tanh on 300 X used to need > 24 GB."""
    X = np.random.default_rng(0).standard_normal((2, 3))
    st_ = output_kernels(MLP(1, 64, "tanh"), 300 * X)
    assert np.all(np.isfinite(st_.nngp)) and np.all(np.isfinite(st_.ntk))
