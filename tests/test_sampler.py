"""Tests of ntkcheck.sampler: the exact conditional sampler has the law of dense sampling.

Distribution tests compare every entry of f and Theta_hat and a few products
(two-sample KS, Holm-corrected, family-wise alpha = 1e-3).  With M draws per
method and m tests the smallest sup-distance between CDFs that is detected
(about half the time) is ``D = sqrt(ln(2 m / alpha) / M)``: 0.023 for M = 20,000
and m = 14.  Negative controls, which the same test must reject: the sampler
without the projection I - Q Q^T in the backward pass (all three
architectures), and the "gradient independence" shortcut, a fresh W in every
backward product (tanh; at erf depth 2 its smallest p-value, ~5e-5, sits at the
Holm threshold 7e-5, and for bias-free ReLU it gets the second moments right,
E[a a^T 1(a.r > 0)] = I/2, so 20,000 draws do not expose it).
"""
import re
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from ntkcheck import MLP, custom, kernel_states, ntk_kernel, output_kernels, sample_init
from ntkcheck import stax as S
from ntkcheck.sampler import METHODS, InitSample, _exact_chunk, _exact_stax_chunk, _sample, exact_bytes_per_network

ALPHA = 1e-3
X3 = np.array([[1.0, 0.2, -0.5, 0.7, 0.0],
               [0.3, -1.0, 0.8, 0.1, -0.4],
               [-0.7, 0.5, 0.4, -0.2, 0.9]])          # N = 3 < d = 5: eigen input factor


def _holm(pvalues, alpha):
    """Holm's step-down procedure: which hypotheses are rejected at family-wise alpha."""
    p = np.asarray(pvalues)
    order = np.argsort(p)
    reject = np.zeros(len(p), dtype=bool)
    for rank, k in enumerate(order):
        if p[k] > alpha / (len(p) - rank):
            break
        reject[k] = True
    return reject


def _statistics(s: InitSample) -> dict[str, np.ndarray]:
    """Every entry of f and of the upper triangle of Theta_hat, and a few products."""
    f, ntk = s.f.reshape(len(s.f), -1), s.ntk          # f columns: (input, output) pairs
    n = ntk.shape[1]
    out = {f"f{i}": f[:, i] for i in range(f.shape[1])}
    out.update({f"ntk{i}{j}": ntk[:, i, j] for i in range(n) for j in range(i, n)})
    out.update({"f0*ntk01": f[:, 0] * ntk[:, 0, 1], "f0*f1": f[:, 0] * f[:, 1],
                "f1*ntk12": f[:, 1] * ntk[:, 1, 2], "ntk00*ntk11": ntk[:, 0, 0] * ntk[:, 1, 1],
                "f0^2*ntk00": f[:, 0] ** 2 * ntk[:, 0, 0]})
    return out


def _two_sample(a: InitSample, b: InitSample):
    """KS p-values of all statistics and Holm's rejections at family-wise ALPHA."""
    sa, sb = _statistics(a), _statistics(b)
    p = np.array([ks_2samp(sa[k], sb[k]).pvalue for k in sa])
    return dict(zip(sa, p)), _holm(p, ALPHA)


def _broken(spec, X, M, seed, backward):
    """A deliberately wrong sampler (negative control), see ``_exact_chunk``."""
    return _sample(spec, X, M, seed, 2**31, partial(_exact_chunk, backward=backward),
                   exact_bytes_per_network)


ARCHS = {
    "relu-3": MLP(3, (8, 16, 8), "relu", sigma_w=2**0.5),
    "erf-2": MLP(2, 8, "erf", sigma_w=2.5),
    "tanh-4": MLP(4, 8, "tanh", sigma_w=2.0, sigma_b=0.5),
}
#: the broken samplers each architecture's test must reject
CONTROLS = {"relu-3": ("unprojected",), "erf-2": ("unprojected",), "tanh-4": ("unprojected", "independent")}


@pytest.mark.parametrize("name", list(ARCHS))
def test_exact_equals_dense_in_distribution(name):
    spec, M = ARCHS[name], 20_000
    dense = sample_init(spec, X3, M, seed=1, method="dense")
    exact = sample_init(spec, X3, M, seed=2, method="exact")
    p, reject = _two_sample(exact, dense)
    assert not reject.any(), f"{name}: exact vs dense rejected, p = {p}"
    for k, backward in enumerate(CONTROLS[name]):
        p_broken, reject_broken = _two_sample(_broken(spec, X3, M, 3 + k, backward), dense)
        assert reject_broken.any(), f"{name}: {backward} sampler not rejected, p = {p_broken}"


def _assert_same_law(spec, X, M):
    dense = sample_init(spec, X, M, seed=11, method="dense")
    exact = sample_init(spec, X, M, seed=12, method="exact")
    for s in (dense, exact):
        assert all(np.isfinite(a).all() for a in (s.f, s.ntk, s.pre_grams, s.post_grams))
    p, reject = _two_sample(exact, dense)
    assert not reject.any(), f"exact vs dense rejected, p = {p}"
    return exact


def test_duplicate_inputs_more_inputs_than_width_and_dead_units():
    # N = 6 > widths 3, 4; duplicated rows; a zero input (dead ReLU units for it); d = 2 < N
    X = np.array([[1.0, 0.5], [1.0, 0.5], [-0.3, 1.2], [0.0, 0.0], [2.0, 1.0], [-0.3, 1.2]])
    exact = _assert_same_law(MLP(2, (3, 4), "relu", sigma_w=1.5), X, 10_000)
    np.testing.assert_allclose(exact.ntk[:, 0], exact.ntk[:, 1], rtol=1e-12, atol=1e-12)   # duplicates agree


@pytest.mark.parametrize("spec", [
    MLP(2, (12, 8), "gelu", sigma_w=1.5, sigma_b=0.3, parameterization="standard", d_out=3, output_scale=1.7),
    MLP(2, 10, "sin", sigma_b=0.2, parameterization="mean_field"),
    MLP(1, 6, "abs", sigma_b=0.4, d_out=2),
])
def test_other_parameterizations_and_outputs(spec):
    _assert_same_law(spec, X3, 10_000)


def test_dead_relu_layer():
    # width-1 middle layer: with probability ~1/2 all its post-activations are 0
    exact = _assert_same_law(MLP(3, (8, 1, 8), "relu", sigma_b=0.5), X3, 10_000)
    dead = np.all(exact.post_grams[:, 1] == 0, axis=(1, 2)).mean()
    assert 0.2 < dead < 0.8


def test_linear_network_mean_ntk_is_exact():
    """Deep linear networks: E[Theta_hat] = Theta and E[layer-1 Gram] = K^1 at every width
    (claims catalogue, ntk-init-convergence).  5 standard errors: false-fail ~6e-7 per entry."""
    spec = MLP(3, (16, 24, 8), "identity", sigma_w=1.1, sigma_b=0.3)
    s = sample_init(spec, X3, 4000, seed=5)
    for sample, target in ((s.ntk, ntk_kernel(spec, X3)), (s.pre_grams[:, 0], kernel_states(spec, X3)[0].nngp)):
        se = sample.std(0) / np.sqrt(len(sample))
        assert np.all(np.abs(sample.mean(0) - target) < 5 * se)
    # identity activation: post-activation Gram (from the QR factors) equals the pre-activation Gram
    np.testing.assert_allclose(s.post_grams, s.pre_grams, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "dense"])
def test_same_seed_same_arrays_whatever_the_chunking(method):
    spec = MLP(2, (32, 16), "gelu", sigma_b=0.2, d_out=2)
    whole = sample_init(spec, X3, 7, seed=4, method=method)
    chunked = sample_init(spec, X3, 7, seed=4, method=method, max_bytes=1)
    for name in ("f", "ntk", "pre_grams", "post_grams"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    other = sample_init(spec, X3, 7, seed=5, method=method)
    assert not np.array_equal(whole.f, other.f)


def test_same_arrays_whatever_the_number_of_processes():
    spec = MLP(2, (32, 16), "gelu", sigma_b=0.2, d_out=2)
    serial = sample_init(spec, X3, 7, seed=4, jobs=1)
    block = 3 * exact_bytes_per_network(spec, 5, 3)                 # blocks of 3 networks in two spawned workers
    pooled = _sample(spec, X3, 7, 4, 2**31, _exact_chunk, exact_bytes_per_network, jobs=2, block_bytes=block)
    for name in ("f", "ntk", "pre_grams", "post_grams"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(pooled, name))
    lam = MLP(1, 8, custom(lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0))   # does not pickle: in-process
    block = exact_bytes_per_network(lam, 5, 3)
    np.testing.assert_array_equal(_sample(lam, X3, 4, 0, 2**31, _exact_chunk, exact_bytes_per_network, jobs=2,
                                          block_bytes=block).ntk, sample_init(lam, X3, 4).ntk)


def test_shapes_and_ntk_is_a_gram_matrix():
    for d_out, f_shape in ((1, (5, 3)), (3, (5, 3, 3))):
        s = sample_init(MLP(3, 12, "tanh", d_out=d_out), X3, 5)
        assert s.f.shape == f_shape and s.ntk.shape == (5, 3, 3)
        assert s.pre_grams.shape == s.post_grams.shape == (5, 3, 3, 3)
        np.testing.assert_allclose(s.ntk, s.ntk.transpose(0, 2, 1), rtol=1e-12)
        assert np.linalg.eigvalsh(s.ntk).min() > -1e-10 * s.ntk.max()


def test_memory_stays_under_the_cap():
    import tracemalloc
    spec, X = MLP(3, 4096, "relu"), np.random.default_rng(0).standard_normal((8, 4))
    cap = 2 * exact_bytes_per_network(spec, 4, 8)
    tracemalloc.start()
    s = sample_init(spec, X, 4, seed=0, max_bytes=cap)      # two chunks of two networks
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < cap + sum(a.nbytes for a in (s.f, s.ntk, s.pre_grams, s.post_grams)) * 2


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "fast"}, "method"), ({"n_networks": 0}, "n_networks"),
    ({"max_bytes": 0}, "max_bytes"), ({"X": np.ones(3)}, "shape"), ({"spec": "relu"}, "spec"),
    ({"jobs": 0}, "jobs"), ({"jobs": 1.5}, "jobs"),
])
def test_bad_input(kwargs, match):
    args = {"spec": MLP(1, 4), "X": X3, "n_networks": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        sample_init(**args)


# --- conv networks -----------------------------------------------------------

X_CONV = np.random.default_rng(0).standard_normal((3, 4, 2))       # 3 inputs, 4 positions, 2 channels
#: channels 8 and 6 with filters 2-3: fan-ins 16-24 > 6-12 (input, position) rows, so the conditioned
#: layers have a weight part W' orthogonal to the patches that the backward pass must draw afresh
CNN = S.serial(S.Conv(8, (3,), padding="SAME", b_std=0.3), S.Relu(),
               S.Conv(8, (2,), (2,), "CIRCULAR", W_std=1.3), S.Erf(),
               S.Conv(6, (2,), padding="SAME", parameterization="standard", b_std=0.2), S.Tanh(),
               S.GlobalAvgPool(), S.Dense(2, b_std=0.1))


def test_conv_exact_equals_dense_in_distribution():
    M = 3000
    dense = sample_init(CNN, X_CONV, M, seed=2, method="dense")
    exact = sample_init(CNN, X_CONV, M, seed=1, method="exact")
    assert exact.f.shape == dense.f.shape == (M, 3, 2) and exact.pre_grams.shape == (M, 0, 3, 3)
    p, reject = _two_sample(exact, dense)
    assert not reject.any(), f"exact vs dense rejected, p = {p}"
    broken = _sample(CNN, X_CONV, M, 3, 2**31, partial(_exact_stax_chunk, backward="unprojected"),
                     S.bytes_per_network)
    p_broken, reject_broken = _two_sample(broken, dense)
    assert reject_broken.any(), f"unprojected conv sampler not rejected, p = {p_broken}"


def test_linear_conv_means_are_the_analytic_kernels():
    """Linear conv networks (any padding, stride, AvgPool, Flatten): E[f f^T] = K and E[Theta_hat] = Theta
    at every width (each layer's backward signal is independent of its input).  5 standard errors."""
    net = S.serial(S.Conv(5, (3,), padding="SAME", b_std=0.3), S.Conv(7, (2,), (2,), "CIRCULAR", W_std=1.3),
                   S.AvgPool((2,), padding="SAME"), S.Conv(6, (2,), padding="VALID", b_std=0.2), S.Flatten(),
                   S.Dense(1, b_std=0.1))
    s, k = sample_init(net, X_CONV, 400, seed=4, method="exact"), output_kernels(net, X_CONV)
    for draws, target in ((s.ntk, k.ntk), (np.einsum("mi,mj->mij", s.f, s.f), k.nngp)):
        assert np.all(np.abs(draws.mean(0) - target) < 5 * draws.std(0) / np.sqrt(len(draws)))


def test_conv_exact_chunking_and_refusals():
    whole = sample_init(CNN, X_CONV, 5, seed=7, method="exact")
    part = sample_init(CNN, X_CONV, 5, seed=7, method="exact", max_bytes=1)
    np.testing.assert_array_equal(part.ntk, whole.ntk)
    np.testing.assert_array_equal(part.f, whole.f)
    resnet = S.serial(S.Dense(4), S.FanOut(2), S.parallel(S.serial(S.Relu(), S.Dense(4)), S.Identity()),
                      S.FanInSum(), S.Relu(), S.Dense(1))
    with pytest.raises(ValueError, match=r"method='exact' is not available for a network with FanOut.*skip"):
        sample_init(resnet, X3, 2, method="exact")


# --- extreme scales ----------------------------------------------------------

OVERFLOW = (r"the (input Gram|pre-activation Gram|post-activation Gram|output|pre-activation|activation|empirical NTK) "
            r"exceeds float64 range at (dense layer|conv layer|.* affine layer) \d+ of \d+")


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.sampled_from(METHODS), st.integers(1, 3), st.integers(1, 6), st.integers(-40, 170), st.integers(0, 2**32 - 1))
def test_extreme_sigma_w_is_exact_or_refused_by_name(method, depth, width, log_s, seed):
    """A bias-free relu MLP in the NTK parameterization with sigma_w = s is the same network as at
    s = 1 with the same draws, times s per layer: f scales by s^(L+1), the empirical NTK by
    s^(2(L+1)), the layer-l Grams by s^(2l).  Up to s = 1e170 the sample is that, or (only near or
    beyond float64) an OverflowError naming the layer and the quantity: never NaN, inf or LinAlgError."""
    X = np.random.default_rng(seed).standard_normal((3, 4))
    spec = MLP(depth, width, "relu", sigma_b=0.0)
    ref = sample_init(spec, X, 2, seed=seed, method=method)
    powers = [(ref.f, depth + 1), (ref.ntk, 2 * depth + 2)] + \
             [(g[:, l], 2 * l + 2) for g in (ref.pre_grams, ref.post_grams) for l in range(depth)]
    top = max(p * log_s + np.log10(np.abs(v).max() + 1e-300) for v, p in powers)
    try:
        out = sample_init(replace(spec, sigma_w=10.0**log_s), X, 2, seed=seed, method=method)
    except OverflowError as err:
        assert re.search(OVERFLOW, str(err)), err
        assert top > 280, (top, err)          # refused only near or beyond the range
        return
    got = [out.f, out.ntk] + [g[:, l] for g in (out.pre_grams, out.post_grams) for l in range(depth)]
    for v, (v1, p) in zip(got, powers):
        assert np.all(np.isfinite(v))
        scaled = v
        for _ in range(p):
            scaled = scaled / 10.0**log_s
        np.testing.assert_allclose(scaled, v1, rtol=1e-8, atol=1e-10 * np.abs(v1).max())


@pytest.mark.parametrize("method", METHODS)
def test_extreme_scales_refused_naming_layer_and_quantity(method):
    """sigma_w = 1e160 gave NaN (dense) or LinAlgError (exact); 1e308 too; conv networks at
    W_std = 1e40 gave NaN with both methods."""
    for sigma_w in (1e160, 1e308):
        with pytest.raises(OverflowError, match="the pre-activation Gram exceeds float64 range at dense layer 1 of 3"):
            sample_init(MLP(2, 16, sigma_w=sigma_w), X3, 2, method=method)
    X = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
    cnn = S.serial(*[S.Conv(8, (3, 3), W_std=1e40, padding="SAME"), S.Relu()] * 10, S.GlobalAvgPool(), S.Dense(1))
    where = "the pre-activation exceeds float64 range at conv layer 8 of 11" if method == "exact" else \
        "the output exceeds float64 range at dense layer 11 of 11"
    with pytest.raises(OverflowError, match=where):
        sample_init(cnn, X, 2, method=method)
    with pytest.raises(OverflowError, match=OVERFLOW):
        sample_init(MLP(1, 4), 1e200 * X3, 2, method=method)
