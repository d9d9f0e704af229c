"""LayerNorm, FanInConcat, SumPool, GlobalSumPool, ConvTranspose and ConvLocal: the layerwise
empirical NTK against a finite-difference Jacobian, the mean of sampled networks against the
analytic kernels (Monte Carlo), the exact sampler against dense sampling, widths,
check_kernel / assert_kernel, and the refusals.
(Their kernels equal neural-tangents': tests/test_references.py.)"""
from functools import partial

import numpy as np
import pytest

from ntkcheck import sample_init
from ntkcheck import stax as S
from ntkcheck.check import kernel_test, sample_kernel
from ntkcheck.kernels import ntk_kernel, output_kernels
from ntkcheck.sampler import _exact_stax_chunk, _sample
from ntkcheck.testing import assert_kernel
from ntkcheck.train import stax_gradient_descent

from test_sampler import _two_sample
from test_stax_networks import fd_jacobian_gram

TINY = {
    "sum-pool": (S.serial(S.Conv(3, (2, 2), b_std=0.3), S.Tanh(), S.SumPool((2, 2), strides=(1, 2), padding="SAME"),
                          S.Conv(2, (2, 1)), S.Erf(), S.GlobalSumPool(), S.Dense(2, b_std=0.1)), (4, 4, 2)),
    "layer-norm": (S.serial(S.Conv(3, (2,), b_std=0.3), S.LayerNorm(axis=(1, 2)), S.Tanh(), S.Dense(4),
                            S.LayerNorm(eps=0.1), S.Erf(), S.Flatten(), S.Dense(1)), (4, 2)),
    "concat": (S.serial(S.Conv(3, (2,)), S.Tanh(), S.FanOut(3),
                        S.parallel(S.Conv(2, (2,), padding="SAME"), S.Identity(), S.Conv(3, (1,), b_std=0.2)),
                        S.FanInConcat(), S.Dense(3), S.FanOut(2), S.parallel(S.Dense(3), S.Identity()),
                        S.FanInConcat(axis=1), S.Erf(), S.Flatten(), S.Dense(2)), (4, 2)),
    "conv-local": (S.serial(S.ConvLocal(3, (2, 2), b_std=0.3, padding="SAME"), S.Tanh(),
                            S.ConvLocal(2, (2, 1), strides=(2, 1), parameterization="standard", b_std=0.1), S.Erf(),
                            S.Flatten(), S.Dense(2)), (4, 3, 2)),
    "conv-transpose": (S.serial(S.ConvTranspose(3, (3, 2), strides=(2, 1), b_std=0.3), S.Tanh(),
                                S.ConvTranspose(2, (2, 2), strides=(1, 2), padding="SAME", parameterization="standard"),
                                S.Erf(), S.GlobalAvgPool(), S.Dense(2)), (3, 2, 2)),
}


@pytest.mark.parametrize("name", TINY)
def test_layerwise_ntk_equals_jacobian_gram(name):
    net, shape = TINY[name]
    X = np.random.default_rng(0).standard_normal((3,) + shape)
    params = S.init_params(net, shape, seed=4, start=0, stop=2)
    _, ntk = S.outputs_and_ntk(net, params, X)
    ref = fd_jacobian_gram(net, params, X)
    np.testing.assert_allclose(ntk, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_sum_pools_are_the_average_pools_times_the_window():
    X = np.random.default_rng(1).standard_normal((3, 5, 4, 2))
    stem = [S.Conv(4, (2, 2), b_std=0.1), S.Relu()]
    for pool, avg, size in ((S.SumPool((2, 3), padding="SAME"), S.AvgPool((2, 3), padding="SAME"), 6),
                            (S.GlobalSumPool(), S.GlobalAvgPool(), 12)):
        tail = [] if isinstance(pool, S.GlobalSumPool) else [S.Flatten()]
        k_sum = output_kernels(S.serial(*stem, pool, *tail, S.Dense(1)), X)
        k_avg = output_kernels(S.serial(*stem, avg, *tail, S.Dense(1)), X)
        np.testing.assert_allclose(k_sum.nngp, size**2 * k_avg.nngp, rtol=1e-12)
        np.testing.assert_allclose(k_sum.ntk, size**2 * k_avg.ntk, rtol=1e-12)


# Monte Carlo against the analytic kernels, as tests/test_stax_networks.py: per entry |mean - kernel|
# <= 4 standard errors + ALLOWANCE x kernel for the O(1/width) bias (3 x depth / channels, depth 3
# here: 7%); 6 distinct entries per network, false-fail rate ~4e-4 each; the seed is fixed.
CHANNELS, N_NETWORKS = 128, 200
ALLOWANCE = 3 * 3 / CHANNELS
n = CHANNELS
WIDE = {
    "inception": (S.serial(S.Conv(n, (2,), b_std=0.1), S.Relu(), S.FanOut(2),
                           S.parallel(S.Conv(n, (1,)), S.Conv(n, (3,), padding="SAME")), S.FanInConcat(),
                           S.Conv(n, (2,)), S.Relu(), S.SumPool((2,)), S.GlobalSumPool(), S.Dense(1)), (6, 2)),
    "layer-norm-mlp": (S.serial(S.Dense(n, b_std=0.1), S.LayerNorm(), S.Relu(), S.FanOut(2),
                                S.parallel(S.Dense(n), S.serial(S.Dense(n), S.Erf(), S.Dense(n))), S.FanInConcat(),
                                S.Dense(n), S.LayerNorm(), S.Relu(), S.Dense(1)), (5,)),
    "conv-local": (S.serial(S.ConvLocal(n, (2,), b_std=0.1), S.Relu(), S.ConvLocal(n, (2,), padding="SAME"),
                            S.Relu(), S.Flatten(), S.Dense(1)), (5, 2)),
    "conv-transpose": (S.serial(S.ConvTranspose(n, (3,), strides=(2,), b_std=0.1), S.Relu(),
                                S.ConvTranspose(n, (2,), padding="SAME"), S.Relu(), S.GlobalAvgPool(), S.Dense(1)),
                       (3, 2)),
}


@pytest.mark.parametrize("name", WIDE)
def test_mean_empirical_ntk_of_sampled_networks_is_the_analytic_kernel(name):
    net, shape = WIDE[name]
    X = np.random.default_rng(1).standard_normal((3,) + shape)
    sample = sample_init(net, X, N_NETWORKS, seed=5, method="dense")
    truth = ntk_kernel(net, X)
    iu = np.triu_indices(3)
    mean, se = sample.ntk.mean(axis=0)[iu], sample.ntk.std(axis=0, ddof=1)[iu] / np.sqrt(N_NETWORKS)
    assert np.all(np.abs(mean - truth[iu]) <= 4 * se + ALLOWANCE * np.abs(truth[iu])), (mean / truth[iu] - 1)
    assert np.max(se / np.abs(truth[iu])) < 0.03            # the test has power: 4 SE is below 12%


def test_exact_sampler_equals_dense_on_transposed_convs_layer_norm_and_sum_pools():
    """The conditional sampler runs ConvTranspose as a dense layer on the patches of its dilated
    input, and LayerNorm and the sum pools as parameter-free layers (two-sample tests as
    tests/test_sampler.py's)."""
    net = S.serial(S.ConvTranspose(8, (3,), strides=(2,), b_std=0.3), S.Relu(), S.LayerNorm(),
                   S.ConvTranspose(6, (2,), padding="SAME", W_std=1.3), S.Erf(), S.SumPool((2,)),
                   S.Conv(6, (2,), b_std=0.2), S.Tanh(), S.GlobalSumPool(), S.Dense(2, b_std=0.1))
    X = np.random.default_rng(0).standard_normal((3, 3, 2))
    M = 1500
    dense = sample_init(net, X, M, seed=2, method="dense")
    p, reject = _two_sample(sample_init(net, X, M, seed=1, method="exact"), dense)
    assert not reject.any(), f"exact vs dense rejected, p = {p}"
    broken = _sample(net, X, M, 3, 2**31, partial(_exact_stax_chunk, backward="unprojected"), S.bytes_per_network)
    assert _two_sample(broken, dense)[1].any()        # the test has power


def widths(net):
    return [layer.out_dim if isinstance(layer, S.Dense) else layer.out_chan for layer in S.layers(net) if layer.affine]


def test_with_width_scales_every_hidden_channel_count():
    net = S.serial(S.ConvLocal(3, (2,)), S.Relu(), S.FanOut(2),
                   S.parallel(S.ConvTranspose(5, (2,), padding="SAME"), S.Conv(2, (1,))), S.FanInConcat(),
                   S.Dense(4), S.LayerNorm(), S.Relu(), S.SumPool((2,)), S.GlobalSumPool(), S.Dense(1))
    assert S.depth(net) == 4
    wide = S.with_width(net, 9)
    assert widths(wide) == [9, 9, 9, 9, 1]
    assert S.output_shape(wide, (6, 2)) == (1,)
    assert [type(a) for a in S.layers(wide)] == [type(a) for a in S.layers(net)]


#: every new layer in one small network (3 inputs of (4, 2)); discrepancy 0.05 at widths (16, 256):
#: ~250 networks, so that an entry 5% off is detectable by design
ALL = S.serial(S.ConvLocal(8, (2,), W_std=1.3, b_std=0.1), S.Relu(), S.FanOut(2),
               S.parallel(S.ConvTranspose(8, (2,), padding="SAME"), S.Conv(8, (1,), b_std=0.2)), S.FanInConcat(),
               S.Dense(8, W_std=1.2), S.LayerNorm(), S.Relu(), S.SumPool((2,)), S.GlobalSumPool(), S.Dense(1, b_std=0.1))
X_ALL = np.random.default_rng(2).standard_normal((3, 4, 2))
DESIGN = dict(discrepancy=0.05, widths=(16, 256))


def test_check_kernel_accepts_the_kernel_and_rejects_it_5_percent_off():
    """check_kernel is kernel_test(candidate, sample_kernel(...)): one sample serves both candidates."""
    truth = ntk_kernel(ALL, X_ALL)
    sample = sample_kernel(ALL, X_ALL, "ntk", seed=3, **DESIGN)
    res = kernel_test(truth, sample)
    assert res.passed and res.details["method"] == "dense", str(res)
    res = kernel_test(1.05 * truth, sample)
    assert res.detectable < 0.055 and not res.passed, str(res)


def test_assert_kernel_accepts_the_kernel_and_rejects_it_5_percent_off(tmp_path):
    truth = ntk_kernel(ALL, X_ALL)
    options = dict(cache=tmp_path, seed=4, **DESIGN)
    assert assert_kernel(truth, ALL, X_ALL, **options).passed
    with pytest.raises(AssertionError, match="relative error"):
        assert_kernel(1.05 * truth, ALL, X_ALL, **options)           # the cached sample


def test_refusals_name_the_reason():
    X = np.random.default_rng(0).standard_normal((2, 5, 3))
    cases = [
        (lambda: S.ConvTranspose(4, (2,), padding="CIRCULAR"), "'CIRCULAR' is not supported"),
        (lambda: S.LayerNorm(axis="channels"), "axis must be an integer or a tuple"),
        (lambda: S.LayerNorm(eps=-1.0), "eps must be a finite number >= 0"),
        (lambda: S.FanInConcat(axis=1.5), "axis must be an integer"),
        (lambda: output_kernels(S.serial(S.Conv(4, (2,)), S.LayerNorm(axis=1), S.Flatten(), S.Dense(1)), X),
         "the channel axis .* must be normalized"),
        (lambda: output_kernels(S.serial(S.Conv(4, (2,)), S.LayerNorm(axis=(0, -1)), S.Flatten(), S.Dense(1)), X),
         "batch axis"),
        (lambda: output_kernels(S.serial(S.Conv(4, (2,)), S.Relu(), S.LayerNorm(), S.Flatten(), S.Dense(1)), X),
         "LayerNorm.*input must be Gaussian"),
        (lambda: output_kernels(S.serial(S.FanOut(2), S.parallel(S.Conv(4, (2,)), S.Conv(4, (2,))),
                                         S.FanInConcat(axis=0), S.Flatten(), S.Dense(1)), X), "batch axis"),
        (lambda: output_kernels(S.serial(S.FanOut(2), S.parallel(S.Conv(4, (2,)), S.Conv(4, (3,))),
                                         S.FanInConcat(), S.Flatten(), S.Dense(1)), X), "shapes must agree"),
        (lambda: output_kernels(S.serial(S.FanOut(2), S.parallel(S.Conv(4, (2,)), S.Conv(4, (2,))),
                                         S.FanInConcat(), S.Relu(), S.Flatten(), S.Dense(1)), X),
         "input must be Gaussian"),            # as neural-tangents: no nonlinearity after a channel concat
        (lambda: output_kernels(S.serial(S.Conv(4, (2,)), S.Relu(), S.FanOut(2), S.parallel(S.Identity(), S.Identity()),
                                         S.FanInConcat(axis=1), S.Flatten(), S.Dense(1)), X),
         "needs Gaussian branches"),
        (lambda: sample_init(S.serial(S.ConvLocal(4, (2,)), S.Relu(), S.Flatten(), S.Dense(1)), X, 2),
         "method='exact' is not available.*ConvLocal"),
        (lambda: stax_gradient_descent(S.serial(S.ConvTranspose(4, (2,)), S.Relu(), S.Flatten(), S.Dense(1)), X,
                                       np.zeros(2), 0.1, 1), "Dense and Conv layers only"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
