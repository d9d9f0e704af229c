"""GlobalSelfAttention: the layerwise empirical NTK against a finite-difference Jacobian for every
mechanism and scaling and in a transformer encoder block, Monte Carlo means of finite attention
networks and of a transformer encoder against the analytic kernels, widths,
check_kernel's rejection of a kernel 5% off, and the errors (no closed form, positional
embeddings, bad arguments, the exact sampler).  The kernels' agreement with neural-tangents is
tests/test_references.py's (frozen) and scripts/compare_neural_tangents_stax.py's."""
import numpy as np
import pytest

from ntkcheck import ntk_kernel, sample_init
from ntkcheck import stax as S
from ntkcheck.check import kernel_test, sample_kernel
from ntkcheck.kernels import output_kernels

from test_references import NETS        # scripts/stax_networks.py
from test_stax_networks import fd_jacobian_gram

MECHANISMS = ("SOFTMAX", "IDENTITY", "RELU", "ABS")


def tiny(mechanism, linear_scaling):
    """Attention on a Dense embedding and, after a nonlinearity, in a residual block."""
    kw = dict(linear_scaling=linear_scaling, attention_mechanism=mechanism)
    return S.serial(S.Dense(4, b_std=0.2), S.GlobalSelfAttention(3, 2, 3, 2, W_key_std=1.3, W_query_std=0.7,
                                                                 b_std=0.3, **kw),
                    S.Relu(), S.FanOut(2), S.parallel(S.GlobalSelfAttention(3, 2, 2, 3, **kw), S.Identity()),
                    S.FanInSum(), S.GlobalAvgPool(), S.Dense(2))


@pytest.mark.parametrize("linear_scaling", [True, False])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_layerwise_ntk_equals_jacobian_gram(mechanism, linear_scaling):
    net = tiny(mechanism, linear_scaling)
    X = np.random.default_rng(0).standard_normal((3, 4, 2))
    params = S.init_params(net, (4, 2), seed=4, start=0, stop=2)
    f, ntk = S.outputs_and_ntk(net, params, X)
    ref = fd_jacobian_gram(net, params, X)
    np.testing.assert_allclose(ntk, ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_transformer_layerwise_ntk_equals_jacobian_gram():
    """A pre-LayerNorm transformer encoder block (LayerNorm -> attention and LayerNorm -> MLP,
    both residual), final LayerNorm, pooling, readout."""
    def residual(*layers):
        return S.serial(S.FanOut(2), S.parallel(S.serial(*layers), S.Identity()), S.FanInSum())
    net = S.serial(S.Dense(4, b_std=0.1), residual(S.LayerNorm(), S.GlobalSelfAttention(4, 3, 3, 2, b_std=0.2)),
                   residual(S.LayerNorm(), S.Dense(5), S.Gelu(), S.Dense(4)), S.LayerNorm(), S.GlobalAvgPool(),
                   S.Dense(1))
    X = np.random.default_rng(2).standard_normal((3, 5, 2))
    params = S.init_params(net, (5, 2), seed=1, start=0, stop=2)
    ref = fd_jacobian_gram(net, params, X)
    np.testing.assert_allclose(S.outputs_and_ntk(net, params, X)[1], ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_two_spatial_axes_are_one_sequence():
    """Attention is global: on (H, W) positions it equals attention on the H x W flattened sequence."""
    att = S.GlobalSelfAttention(5, 4, 3, 2, W_key_std=1.4, b_std=0.1)
    X = np.random.default_rng(1).standard_normal((3, 2, 3, 2))
    k2 = output_kernels(S.serial(att, S.GlobalAvgPool(), S.Dense(1)), X)
    k1 = output_kernels(S.serial(att, S.GlobalAvgPool(), S.Dense(1)), X.reshape(3, 6, 2))
    np.testing.assert_allclose(k2.ntk, k1.ntk, rtol=1e-13)
    np.testing.assert_allclose(k2.nngp, k1.nngp, rtol=1e-13)


# Monte Carlo: 200 networks of width 256 (Dense embedding, 2-head softmax attention with linear
# scaling).  The finite-width bias of the means is O(1/n) (the attention weights are a nonlinear
# function of the embedding's empirical covariance): ~1.7% of sqrt(K_ii K_jj) here, within the
# allowance 3 L / n (L = 2 hidden layers).  6 distinct entries per kernel, 4-SE bands: a false-fail
# rate ~4e-4 (the seed is fixed).  Resolution: SE ~1.2% (Theta), ~12% (K) of sqrt(K_ii K_jj).
WIDTH, N_NETWORKS = 256, 200
ALLOWANCE = 3 * 2 / WIDTH
WIDE = S.serial(S.Dense(WIDTH, W_std=1.5, b_std=0.1), S.GlobalSelfAttention(WIDTH, WIDTH, WIDTH, 2, W_key_std=1.5,
                                                                            b_std=0.1),
                S.Relu(), S.GlobalAvgPool(), S.Dense(1, W_std=1.2, b_std=0.1))


def _within(samples, kernel, allowance=ALLOWANCE):
    iu = np.triu_indices(kernel.shape[0])
    scale = np.sqrt(np.outer(np.diag(kernel), np.diag(kernel)))[iu]
    mean, se = samples.mean(axis=0)[iu], samples.std(axis=0, ddof=1)[iu] / np.sqrt(len(samples))
    return bool(np.all(np.abs(mean - kernel[iu]) <= 4 * se + allowance * scale)), np.max(se / scale)


def test_monte_carlo_means_match_analytic_kernels():
    X = np.random.default_rng(3).standard_normal((3, 4, 3))
    s = sample_init(WIDE, X, N_NETWORKS, seed=11, method="dense")
    k = output_kernels(WIDE, X)
    ff = s.f[:, :, None] * s.f[:, None, :]
    (ok_ntk, se_ntk), (ok_nngp, se_nngp) = _within(s.ntk, k.ntk), _within(ff, k.nngp)
    assert ok_ntk and ok_nngp, (se_ntk, se_nngp)
    assert se_ntk < 0.015 and se_nngp < 0.15
    assert not _within(s.ntk, 1.1 * k.ntk)[0] and not _within(ff, 1.7 * k.nngp)[0]   # kernels off are rejected


def test_transformer_monte_carlo_means_match_analytic_kernels():
    """One encoder block of scripts/stax_networks.py at width 128 (L = 4 hidden layers: the
    allowance 3 L / n; the bias measured here is ~1% of sqrt(K_ii K_jj)), 200 networks."""
    net = NETS.transformer(S, S.Relu, blocks=1, width=128)
    X = np.random.default_rng(3).standard_normal((3, 4, 3))
    s = sample_init(net, X, 200, seed=11, method="dense")
    k = output_kernels(net, X)
    allowance = 3 * S.depth(net) / 128
    ff = s.f[:, :, None] * s.f[:, None, :]
    (ok_ntk, se_ntk), (ok_nngp, se_nngp) = _within(s.ntk, k.ntk, allowance), _within(ff, k.nngp, allowance)
    assert ok_ntk and ok_nngp and se_ntk < 0.015, (se_ntk, se_nngp)
    assert not _within(s.ntk, 1.2 * k.ntk, allowance)[0]


def test_with_width_scales_keys_values_and_hidden_outputs_not_heads():
    net = S.serial(S.Dense(4), S.GlobalSelfAttention(5, 6, 7, 3), S.Relu(),
                   S.GlobalSelfAttention(2, 6, 7, 2), S.GlobalAvgPool())
    wide = list(S.layers(S.with_width(net, 32)))
    assert wide[0].out_dim == 32 and S.depth(net) == 2
    assert (wide[1].n_chan_out, wide[1].n_chan_key, wide[1].n_chan_val, wide[1].n_heads) == (32, 32, 32, 3)
    # the readout attention keeps its output size; its keys and values are hidden
    assert (wide[3].n_chan_out, wide[3].n_chan_key, wide[3].n_chan_val, wide[3].n_heads) == (2, 32, 32, 2)


def test_check_kernel_rejects_an_attention_kernel_five_percent_off():
    X = np.random.default_rng(0).standard_normal((3, 4, 2))
    net = S.serial(S.Dense(8, W_std=1.5, b_std=0.2), S.GlobalSelfAttention(8, 8, 8, 2, W_key_std=1.5, b_std=0.1),
                   S.GlobalAvgPool(), S.Dense(1, W_std=1.2, b_std=0.1))
    truth = ntk_kernel(net, X)
    sample = sample_kernel(net, X, "ntk", seed=1, discrepancy=0.045, widths=(8, 128))
    assert kernel_test(truth, sample).passed
    res = kernel_test(1.05 * truth, sample)
    assert res.detectable < 0.05 and not res.passed, str(res)


def test_errors():
    X = np.random.default_rng(0).standard_normal((2, 3, 2))
    sqrt_softmax = S.serial(S.GlobalSelfAttention(4, 4, 4, 1, linear_scaling=False), S.GlobalAvgPool(), S.Dense(1))
    with pytest.raises(NotImplementedError, match="no closed-form kernel for SOFTMAX attention with linear_scaling=False"):
        output_kernels(sqrt_softmax, X)
    s = sample_init(sqrt_softmax, X, 3, seed=0, method="dense")       # its finite networks run
    assert s.f.shape == (3, 2) and np.all(np.isfinite(s.ntk))
    with pytest.raises(ValueError, match="method='exact' is not available .*GlobalSelfAttention"):
        sample_init(sqrt_softmax, X, 3, seed=0, method="exact")
    with pytest.raises(NotImplementedError, match="pos_emb_type='SUM' is not built"):
        S.GlobalSelfAttention(4, 4, 4, 1, pos_emb_type="SUM")
    for kw, match in ((dict(n_heads=0), "n_heads must be an integer >= 1"),
                      (dict(attention_mechanism="GELU"), "attention_mechanism must be one of"),
                      (dict(W_key_std=-1.0), "W_key_std must be a finite number >= 0"),
                      (dict(b_std=float("nan")), "b_std must be None or a finite number >= 0"),
                      (dict(linear_scaling="yes"), "linear_scaling must be True or False")):
        with pytest.raises(ValueError, match=match):
            S.GlobalSelfAttention(**{"n_chan_out": 4, "n_chan_key": 4, "n_chan_val": 4, "n_heads": 1, **kw})
    assert S.GlobalSelfAttention(4, 4, 4, 1, attention_mechanism="relu").attention_mechanism == "RELU"


def test_dense_transformer_samples_do_not_depend_on_the_chunking(monkeypatch):
    """sample_init runs stax networks in chunks of up to STAX_CHUNK_BYTES: a transformer's
    networks are the same arrays one at a time and many at once (batched products per network)."""
    from ntkcheck import sampler
    net = NETS.transformer(S, S.Relu, blocks=2, width=8)
    X = np.random.default_rng(3).standard_normal((3, 4, 3))
    many = sample_init(net, X, 5, seed=2, method="dense")
    monkeypatch.setattr(sampler, "STAX_CHUNK_BYTES", 1)
    one = sample_init(net, X, 5, seed=2, method="dense")
    np.testing.assert_array_equal(one.f, many.f)
    np.testing.assert_array_equal(one.ntk, many.ntk)
