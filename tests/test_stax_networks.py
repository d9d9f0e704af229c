"""Finite stax networks: the layerwise empirical NTK against a finite-difference Jacobian, the
MLP dense path, the analytic kernels (Monte Carlo), and independence of chunking."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import MLP, sample_init
from ntkcheck import stax as S
from ntkcheck.kernels import output_kernels
from ntkcheck.sampler import _sample, _stax_dense_chunk
from ntkcheck.strategies import stax_networks

from test_stax import as_serial


def fd_jacobian_gram(net, params, X, eps=1e-6):
    """sum over parameters of df_k/dp df_k/dp' by central differences, averaged over outputs k."""
    def f():
        return net.forward(params, X[None])[0]
    cols = []
    for W, b in S._affine_params(params):
        for a in (W, b):
            for idx in np.ndindex(a.shape[1:]):
                at = (slice(None),) + idx
                old = a[at].copy()
                a[at] = old + eps
                up = f()
                a[at] = old - eps
                down = f()
                a[at] = old
                cols.append((up - down) / (2 * eps))
    J = np.stack(cols, axis=-1)                      # (M, N, out, parameters)
    return np.einsum("mikp,mjkp->mij", J, J) / J.shape[2]


TINY_CNN = S.serial(S.Conv(3, (2, 2), padding="SAME", b_std=0.3), S.Relu(), S.AvgPool((2, 2), padding="SAME"),
                    S.Conv(4, (3, 1), strides=(2, 1), padding="CIRCULAR", W_std=1.3), S.Tanh(),
                    S.Conv(2, (1, 2), parameterization="standard", b_std=0.2), S.Erf(), S.Flatten(),
                    S.Dense(2, b_std=0.1))
TINY_RESNET = S.serial(
    S.Conv(4, (3,), padding="SAME"),
    S.FanOut(2), S.parallel(S.serial(S.Relu(), S.Conv(4, (3,), padding="SAME", b_std=0.2)), S.Identity()),
    S.FanInSum(), S.Gelu(),
    S.FanOut(2), S.parallel(S.serial(S.Dense(3, W_std=1.5), S.Relu(), S.Dense(4)), S.Identity()),
    S.FanInSum(), S.GlobalAvgPool(), S.Dense(1, b_std=0.5))


@pytest.mark.parametrize("net, shape", [(TINY_CNN, (5, 4, 2)), (TINY_RESNET, (6, 2))], ids=["cnn", "resnet"])
def test_layerwise_ntk_equals_jacobian_gram(net, shape):
    X = np.random.default_rng(0).standard_normal((3,) + shape)
    params = S.init_params(net, shape, seed=4, start=0, stop=2)
    f, ntk = S.outputs_and_ntk(net, params, X)
    np.testing.assert_allclose(f, net.forward(params, X[None])[0], rtol=0)
    ref = fd_jacobian_gram(net, params, X)
    np.testing.assert_allclose(ntk, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


@settings(max_examples=20, deadline=None, derandomize=True)
@given(stax_networks(activations=("erf", "gelu", "sin", "tanh"), max_positions=4), st.integers(1, 3))
def test_layerwise_ntk_equals_jacobian_gram_random_architectures(net_shape, n):
    """Smooth activations only: a finite difference across a kink of relu/abs would be wrong."""
    net, shape = net_shape
    X = np.random.default_rng(n).standard_normal((n,) + shape)
    params = S.init_params(net, shape, seed=n, start=0, stop=1)
    _, ntk = S.outputs_and_ntk(net, params, X)
    ref = fd_jacobian_gram(net, params, X)
    np.testing.assert_allclose(ntk, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_two_forms_of_the_weight_term_agree():
    """Per-input weight gradients' Gram and the position-pair formula are the same sum."""
    rng = np.random.default_rng(1)
    g, x = rng.standard_normal((2, 3, 4, 5, 6)), rng.standard_normal((1, 4, 5, 7))
    a = S._affine_ntk(g, x, 0.7, 0.3, form="gradient")
    np.testing.assert_allclose(a, S._affine_ntk(g, x, 0.7, 0.3, form="pairs"), rtol=1e-12)
    want = 0.49 * np.einsum("mkipc,ipf,mkjqc,jqf->mij", g, x[0], g, x[0]) \
        + 0.09 * np.einsum("mkipc,mkjqc->mij", g, g)
    np.testing.assert_allclose(a, want, rtol=1e-12)


@pytest.mark.parametrize("spec", [MLP(2, 7, "relu", sigma_w=1.3, sigma_b=0.4),
                                  MLP(3, 5, "erf", parameterization="standard", sigma_b=0.2, d_out=2),
                                  MLP(1, 6, "tanh", sigma_b=0.0, d_out=3)], ids=["relu", "erf-std", "tanh"])
def test_dense_serial_equals_mlp_dense_path(spec):
    """Same seed, same networks: a serial of Dense layers draws what the MLP draws."""
    X = np.random.default_rng(2).standard_normal((5, 4))
    net = as_serial(spec, spec.d_out)
    ours, mlp = sample_init(net, X, 6, seed=9, method="dense"), sample_init(spec, X, 6, seed=9, method="dense")
    np.testing.assert_allclose(ours.f, mlp.f, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.ntk, mlp.ntk, rtol=1e-12, atol=1e-14)
    if spec.sigma_b == 0.0:     # no bias (b_std None) is the MLP with sigma_b = 0
        dense = lambda n: S.Dense(n, spec.sigma_w, None, spec.parameterization)  # noqa: E731
        none = S.serial(*[l for n in spec.widths for l in (dense(n), S.Activation(spec.act))], dense(spec.d_out))
        np.testing.assert_allclose(sample_init(none, X, 6, seed=9, method="dense").ntk, mlp.ntk, rtol=1e-12)


# Monte Carlo against the analytic kernels.  Per entry |mean - kernel| <= 4 standard errors +
# ALLOWANCE x kernel, ALLOWANCE = 3 x depth / channels for the O(1/width) bias of finite networks
# (depth = 2 hidden conv layers, 256 channels: 2.3%).  With 10 distinct entries per kernel the
# false-fail rate of the 4-SE bands is ~1e-3 (Gaussian means); the seed is fixed.  Smallest
# discrepancy detected: ~5% in Theta (relative SE ~0.6%), ~40% in K (f f^T is noisy: SE ~9%).
CHANNELS, DEPTH, N_NETWORKS = 256, 2, 400
ALLOWANCE = 3 * DEPTH / CHANNELS
WIDE_CNN = S.serial(S.Conv(CHANNELS, (3,), padding="SAME", W_std=1.5, b_std=0.1), S.Relu(),
                    S.Conv(CHANNELS, (3,), padding="CIRCULAR", W_std=1.5, b_std=0.1), S.Relu(),
                    S.GlobalAvgPool(), S.Dense(1, W_std=1.5, b_std=0.1))


def _within(samples, kernel):
    iu = np.triu_indices(kernel.shape[0])
    mean, se = samples.mean(axis=0)[iu], samples.std(axis=0, ddof=1)[iu] / np.sqrt(len(samples))
    return bool(np.all(np.abs(mean - kernel[iu]) <= 4 * se + ALLOWANCE * np.abs(kernel[iu]))), \
        np.max(se / np.abs(kernel[iu]))


@pytest.fixture(scope="module")
def wide_sample():
    X = np.random.default_rng(3).standard_normal((4, 8, 3))
    return X, sample_init(WIDE_CNN, X, N_NETWORKS, seed=11, method="dense")


def test_monte_carlo_means_match_analytic_kernels(wide_sample):
    X, s = wide_sample
    k = output_kernels(WIDE_CNN, X)
    ff = s.f[:, :, None] * s.f[:, None, :]
    ok_ntk, rel_ntk = _within(s.ntk, k.ntk)
    ok_nngp, rel_nngp = _within(ff, k.nngp)
    assert ok_ntk and ok_nngp, (rel_ntk, rel_nngp)
    # resolution: relative standard errors (~0.6% for Theta, ~9% for K at these sizes)
    assert rel_ntk < 0.01 and rel_nngp < 0.12
    # negative controls: kernels off by 8% (Theta) and 50% (K) are rejected
    assert not _within(s.ntk, 1.08 * k.ntk)[0]
    assert not _within(ff, 1.5 * k.nngp)[0]


def test_chunking_and_jobs_do_not_change_the_networks():
    X = np.random.default_rng(5).standard_normal((3, 6, 2))
    net = S.serial(S.Conv(16, (3,), padding="SAME"), S.LeakyRelu(0.1), S.FanOut(2),
                   S.parallel(S.Conv(16, (1,)), S.Identity()), S.FanInSum(), S.Flatten(), S.Dense(2))
    whole = sample_init(net, X, 7, seed=3, method="dense")
    per_network = S.bytes_per_network(net, X.shape[1:], len(X))
    for max_bytes, jobs in ((1, 1), (3 * per_network, 1), (10**9, 2)):
        part = sample_init(net, X, 7, seed=3, method="dense", max_bytes=max_bytes, jobs=jobs)
        np.testing.assert_array_equal(part.f, whole.f)
        np.testing.assert_array_equal(part.ntk, whole.ntk)
    # two spawned workers, blocks of 3 networks (named activations pickle by name)
    pooled = _sample(net, X, 7, 3, 2**31, _stax_dense_chunk, S.bytes_per_network, jobs=2,
                     block_bytes=3 * per_network)
    np.testing.assert_array_equal(pooled.ntk, whole.ntk)
    np.testing.assert_array_equal(pooled.f, whole.f)
    first = sample_init(net, X, 3, seed=3, method="dense")
    np.testing.assert_array_equal(first.ntk, whole.ntk[:3])
    assert whole.f.shape == (7, 3, 2) and whole.pre_grams.shape == (7, 0, 3, 3)


def test_errors():
    X = np.zeros((2, 5, 3))
    net = S.serial(S.Conv(4, (3,)), S.Relu(), S.GlobalAvgPool(), S.Dense(1))
    with pytest.raises(ValueError, match=r"method='exact' is not available for a network with FanOut"):
        sample_init(S.serial(net.layers[0], S.FanOut(2), S.FanInSum(), *net.layers[1:]), X, 2, method="exact")
    with pytest.raises(ValueError, match=r"Conv\(.*2 spatial axes"):
        sample_init(S.serial(S.Conv(4, (3, 3)), S.GlobalAvgPool(), S.Dense(1)), X, 2, method="dense")
    with pytest.raises(ValueError, match="still has positions"):
        sample_init(S.serial(S.Conv(4, (3,))), X, 2, method="dense")
    with pytest.raises(ValueError, match="FanInSum"):
        sample_init(S.serial(S.Dense(2), S.FanOut(2)), X, 2, method="dense")
    with pytest.raises(ValueError, match="no Dense or Conv layer"):
        sample_init(S.serial(S.Relu(), S.GlobalAvgPool()), X, 2, method="dense")
    with pytest.raises(ValueError, match=r"Conv\(.*window 6 is larger"):
        sample_init(S.serial(S.Conv(2, (6,)), S.Flatten()), X, 2, method="dense")


def test_float32():
    """float32 draws its own networks (numpy's float32 normals); computed in float64 they agree."""
    X = np.random.default_rng(6).standard_normal((3, 5, 2))
    s32 = sample_init(TINY_RESNET, X, 3, seed=1, method="dense", dtype=np.float32)
    assert s32.ntk.dtype == np.float32 and s32.f.dtype == np.float32
    params = S.init_params(TINY_RESNET, X.shape[1:], 1, 0, 3, dtype=np.float32)

    def to64(p):
        if isinstance(p, S._AffineParams):
            return S._AffineParams(p.W.astype(np.float64), p.b.astype(np.float64))
        return tuple(to64(q) for q in p)
    f, ntk = S.outputs_and_ntk(TINY_RESNET, to64(params), X)
    np.testing.assert_allclose(s32.ntk, ntk, rtol=1e-4)
    np.testing.assert_allclose(s32.f, f[..., 0], rtol=1e-4, atol=1e-5)
