"""Dense networks: layerwise empirical NTK vs a finite-difference Jacobian, Monte Carlo vs the
analytic kernels, determinism, and input validation."""
import numpy as np
import pytest

from ntkcheck import MLP, empirical_ntk, forward, init_params, nngp_kernel, ntk_kernel, sample_dense, sample_init
from ntkcheck.networks import DenseParams


def fd_jacobian_gram(spec, params, X, h=1e-6):
    """Gram of the central-difference Jacobian of every output w.r.t. every parameter, averaged over outputs."""
    arrays = list(params.weights) + list(params.biases)
    cols = []
    for arr in arrays:
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            fp = forward(spec, params, X)[0][0]
            arr[idx] = old - h
            fm = forward(spec, params, X)[0][0]
            arr[idx] = old
            cols.append((fp - fm) / (2 * h))       # (N, d_out)
    J = np.stack(cols, axis=-1)                     # (N, d_out, P)
    return np.einsum("ikp,jkp->ij", J, J) / spec.d_out


@pytest.mark.parametrize("act,par,d_out,alpha", [
    ("tanh", "ntk", 1, 1.0), ("erf", "standard", 2, 1.0), ("gelu", "mean_field", 1, 1.0),
    ("relu", "ntk", 3, 2.5), ("softplus", "ntk", 1, 1.0),
])
def test_layerwise_ntk_equals_finite_difference_jacobian_gram(act, par, d_out, alpha):
    spec = MLP((2), (5, 4), act, sigma_w=1.3, sigma_b=0.4, parameterization=par, d_out=d_out, output_scale=alpha)
    X = np.random.default_rng(3).standard_normal((4, 3))
    params = init_params(spec, 3, seed=11)
    want = fd_jacobian_gram(spec, params, X)
    got = empirical_ntk(spec, params, X)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_cross_empirical_ntk_is_block_of_joint():
    spec = MLP(2, 16, "erf", sigma_b=0.3)
    rng = np.random.default_rng(4)
    X1, X2 = rng.standard_normal((3, 2)), rng.standard_normal((2, 2))
    params = init_params(spec, 2, seed=5, stop=3)
    joint = empirical_ntk(spec, params, np.concatenate([X1, X2]))
    np.testing.assert_allclose(empirical_ntk(spec, params, X1, X2), joint[:, :3, 3:], rtol=1e-12)


def test_monte_carlo_mean_matches_analytic_kernels():
    """500 networks of width 512, relu depth 3: mean Theta_hat and mean f f' within 4 SE + 2%."""
    spec = MLP(3, 512, "relu", sigma_w=1.4, sigma_b=0.1)
    X = np.random.default_rng(6).standard_normal((5, 3))
    f, ntk = sample_dense(spec, X, 500, seed=7)
    f = f[..., 0]
    ff = f[:, :, None] * f[:, None, :]
    for sample, target in ((ntk, ntk_kernel(spec, X)), (ff, nngp_kernel(spec, X))):
        mean, se = sample.mean(0), sample.std(0, ddof=1) / np.sqrt(len(sample))
        assert np.all(np.abs(mean - target) <= 4 * se + 0.02 * np.abs(target))


def test_same_seed_same_networks_whatever_the_chunking():
    spec = MLP(2, 32, "tanh", sigma_b=0.2)
    X = np.random.default_rng(8).standard_normal((3, 4))
    f1, k1 = sample_dense(spec, X, 7, seed=9)
    f2, k2 = sample_dense(spec, X, 7, seed=9, max_bytes=1)   # one network per chunk
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(k1, k2)
    f3, _ = sample_dense(spec, X, 7, seed=10)
    assert not np.array_equal(f1, f3)


def test_float32_allowed():
    spec = MLP(2, 32, "relu")
    X = np.random.default_rng(8).standard_normal((3, 4))
    f, k = sample_dense(spec, X, 4, seed=1, dtype=np.float32)
    assert f.dtype == np.float32 and k.dtype == np.float32
    p64 = init_params(spec, 4, seed=1, stop=4)
    p32 = DenseParams(*(tuple(a.astype(np.float32) for a in arrs) for arrs in (p64.weights, p64.biases)))
    k32 = empirical_ntk(spec, p32, X)
    assert k32.dtype == np.float32
    np.testing.assert_allclose(k32, empirical_ntk(spec, p64, X), rtol=1e-4)


def test_params_shapes():
    p = init_params(MLP(2, (3, 4), "relu", d_out=2), 5, seed=0, start=2, stop=6)
    assert isinstance(p, DenseParams) and p.n_networks == 4
    assert [w.shape for w in p.weights] == [(4, 3, 5), (4, 4, 3), (4, 2, 4)]
    assert [b.shape for b in p.biases] == [(4, 3), (4, 4), (4, 2)]


def test_rademacher_weights_are_plus_minus_the_gaussian_std_with_gaussian_biases():
    spec = MLP(depth=2, width=64, activation="relu", sigma_w=1.5, sigma_b=0.2)
    gauss = init_params(spec, 3, seed=4, stop=50)
    rad = init_params(spec, 3, seed=4, stop=50, weights="rademacher")
    for Wg, Wr in zip(gauss.weights, rad.weights):
        s_w = np.abs(Wr).max()
        assert np.allclose(np.abs(Wr), s_w)                      # +-s_w only
        assert abs(np.mean(Wr > 0) - 0.5) < 0.02                 # each sign with probability 1/2
        assert abs(Wg.std() / s_w - 1) < 0.05                    # the Gaussian law's standard deviation
    for bg, br in zip(gauss.biases[:-1], rad.biases[:-1]):     # the hidden layers' 3,200 biases each
        assert abs(br.std() / bg.std() - 1) < 0.1


def test_weight_law_refused_by_name():
    spec = MLP(depth=1, width=8)
    with pytest.raises(ValueError, match="weights must be one of"):
        init_params(spec, 3, seed=0, weights="uniform")
    with pytest.raises(ValueError, match="weights='rademacher' needs method='dense'"):
        sample_init(spec, np.ones((2, 3)), 4, method="exact", weights="rademacher")
