"""check_kernel and assert_kernel for stax networks: widths by with_width, acceptance of the analytic
kernel, rejection of planted bugs (x1.05, the MLP kernel of the flattened inputs, NTK for NNGP), and
refusal of bad networks and candidates before any sampling.

Small designs (4 inputs of (8, 2), discrepancy 0.1 or 0.2), so that each check runs in seconds."""
import math

import numpy as np
import pytest

import ntkcheck.check as check
from ntkcheck import nngp_kernel, ntk_kernel
from ntkcheck import stax as S
from ntkcheck.check import check_kernel, kernel_test, sample_kernel, stax_widths
from ntkcheck.testing import assert_kernel, cache_key

from test_stax_networks import TINY_RESNET

X = np.random.default_rng(0).standard_normal((4, 8, 2))
CNN_GAP = S.serial(S.Conv(8, (3,), padding="SAME", W_std=1.5, b_std=0.2), S.Relu(), S.GlobalAvgPool(),
                   S.Dense(1, W_std=1.2, b_std=0.1))
#: the structural bug: an MLP with the same layers on the flattened inputs (no weight sharing, no pooling)
FLAT_MLP = S.serial(S.Flatten(), S.Dense(8, 1.5, 0.2), S.Relu(), S.Dense(1, 1.2, 0.1))
CNN_FLATTEN = S.serial(S.Conv(8, (3,), padding="CIRCULAR", W_std=1.4, b_std=0.1), S.Erf(), S.AvgPool((2,)),
                       S.Conv(8, (3,), padding="SAME", W_std=1.4), S.Relu(), S.Flatten(), S.Dense(1, b_std=0.3))
RESNET = TINY_RESNET
#: the acceptance case of a CNN check: 2 convs + global average pooling + Dense on (4, 6, 6, 2) inputs
CNN2 = S.serial(S.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), S.Relu(),
                S.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), S.Relu(), S.GlobalAvgPool(),
                S.Dense(1, W_std=1.2, b_std=0.1))


def relative_size(cand, truth):
    return np.max(np.abs(cand - truth) / np.sqrt(np.outer(np.diag(truth), np.diag(truth))))


def affine_sizes(net):
    return [layer.out_dim if isinstance(layer, S.Dense) else layer.out_chan
            for layer in S.layers(net) if isinstance(layer, (S.Dense, S.Conv))]


def test_with_width_scales_every_hidden_channel_count_and_keeps_the_readout():
    assert affine_sizes(S.with_width(CNN_GAP, 96)) == [96, 1]
    assert affine_sizes(S.with_width(RESNET, 7)) == [7, 7, 7, 7, 1]
    assert S.depth(CNN_GAP) == 1 and S.depth(CNN_FLATTEN) == 2 and S.depth(RESNET) == 4
    assert S.output_shape(S.with_width(RESNET, 7), (8, 2)) == (1,)
    wide = S.with_width(RESNET, 7)                          # everything else unchanged
    assert [type(a) for a in S.layers(wide)] == [type(a) for a in S.layers(RESNET)]
    assert S.with_width(wide, 4) != RESNET and S.with_width(S.with_width(RESNET, 4), 7) == wide
    # the readout is every affine layer whose output reaches the output through parameter-free layers
    conv_readout = S.serial(S.Conv(6, (3,)), S.Relu(), S.Conv(3, (1,)), S.GlobalAvgPool())
    assert affine_sizes(S.with_width(conv_readout, 50)) == [50, 3]
    assert S.fan_in_scaled(conv_readout) == [S.Conv(3, (1,))]
    with pytest.raises(ValueError, match="is the readout and also feeds"):
        S.with_width(S.serial(S.Conv(4, (3,)), S.FanOut(2), S.parallel(S.Conv(4, (1,)), S.Identity()), S.FanInSum(),
                              S.GlobalAvgPool()), 10)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        S.with_width(CNN_GAP, 0)


def test_ntk_check_of_a_cnn_with_global_average_pooling():
    """Default widths from the discrepancy (stax_widths) with L = 1 hidden conv layer."""
    sample = sample_kernel(CNN_GAP, X, "ntk", seed=1, discrepancy=0.04)
    truth = ntk_kernel(CNN_GAP, X)
    assert sample.design.widths == (18, 144) and sample.design.method == "dense"
    res = kernel_test(truth, sample)
    assert res.passed and res.details["method"] == "dense" and res.detectable <= 0.04, str(res)
    for name, bug in (("x1.05", 1.05 * truth), ("flattened MLP", ntk_kernel(FLAT_MLP, X))):
        res = kernel_test(bug, sample)
        assert relative_size(bug, truth) > res.detectable, name      # a bug the design guarantees to catch
        assert not res.passed, (name, str(res))


def test_ntk_check_of_a_two_layer_cnn_with_flatten():
    truth = ntk_kernel(CNN_FLATTEN, X)
    sample = sample_kernel(CNN_FLATTEN, X, "ntk", seed=3, discrepancy=0.1, widths=(32, 512))
    assert kernel_test(truth, sample).passed
    res = kernel_test(1.05 * truth, sample)
    assert 0.05 > res.detectable and not res.passed, str(res)


def test_nngp_check_from_outputs():
    truth = nngp_kernel(CNN_GAP, X)
    sample = sample_kernel(CNN_GAP, X, "nngp", seed=2, discrepancy=0.2)
    assert sample.design.spread > 1.0          # f f^T: no Rao-Blackwellisation, a spread of order sqrt(2)
    assert kernel_test(truth, sample).passed
    for bug in (1.25 * truth, ntk_kernel(CNN_GAP, X)):         # detectable ~0.2 here
        res = kernel_test(bug, sample)
        assert relative_size(bug, truth) > res.detectable and not res.passed, str(res)


def test_bad_networks_and_candidates_are_refused_before_sampling(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("sampled before validating")

    monkeypatch.setattr(check, "sample_init", never)
    ntk = ntk_kernel(CNN_GAP, X)
    cases = [
        (dict(candidate=np.eye(3)), "shape"),
        (dict(candidate=np.full((4, 4), np.nan)), "NaN"),
        (dict(candidate=np.triu(np.ones((4, 4)))), r"not symmetric: K\[0, 1\]"),
        (dict(kind="gp"), "kind"),
        (dict(method="exact"), "method='exact' is MLP-only"),
        (dict(net=S.serial(S.Conv(1, (3,)), S.GlobalAvgPool())), "no hidden Dense or Conv layer"),
        (dict(net=S.serial(S.Conv(8, (3,)), S.Relu(), S.Conv(1, (3,), parameterization="standard"),
                           S.GlobalAvgPool())), "'standard'-parameterized layer whose fan-in grows"),
        (dict(net=S.serial(S.Conv(8, (3, 3)), S.Relu(), S.GlobalAvgPool(), S.Dense(1))), r"Conv\(.*2 spatial axes"),
        (dict(net=S.serial(S.Conv(8, (3,)), S.Relu(), S.Dense(1))), "still has positions"),
        (dict(net=S.serial(S.FanOut(2), S.parallel(S.Conv(2, (1,)), S.Identity()), S.FanInSum(), S.Relu(),
                           S.GlobalAvgPool(), S.Dense(1))), "same shape"),      # a skip from the 2 input channels
        (dict(X=X[..., None]), "shape"),
        (dict(widths=(64, 32)), "widths"),
    ]
    for case, message in cases:
        args = {"candidate": ntk, "net": CNN_GAP, "X": X, "kind": "ntk", **case}
        with pytest.raises(ValueError, match=message):
            check_kernel(args["candidate"], args["net"], args["X"], args["kind"],
                         **{k: v for k, v in case.items() if k in ("method", "widths")})
    with pytest.raises(ValueError, match="shape"):
        assert_kernel(np.eye(3), CNN_GAP, X, cache=False)


def test_assert_kernel_caches_stax_samples(tmp_path):
    truth = ntk_kernel(CNN_GAP, X)
    first = assert_kernel(truth, CNN_GAP, X, cache=tmp_path, seed=4, discrepancy=0.2)
    assert first.details["method"] == "dense"
    assert len(list(tmp_path.glob("check_kernel-*.sample"))) == 1
    with pytest.raises(AssertionError, match="relative error"):
        assert_kernel(1.1 * truth, CNN_GAP, X, cache=tmp_path, seed=4, discrepancy=0.2)
    # the failure reused the first stage's sample and cached its confirmation's, keyed by its own seed
    assert len(list(tmp_path.glob("check_kernel-*.sample"))) == 2
    with pytest.raises(AssertionError, match="confirmed on an independent seed"):
        assert_kernel(1.1 * truth, CNN_GAP, X, cache=tmp_path, seed=4, discrepancy=0.2, max_seconds=1e-9)
    assert len(list(tmp_path.glob("check_kernel-*.sample"))) == 2           # both from the cache: nothing drawn
    key = cache_key(CNN_GAP, X, "ntk", 1e-3, 4, {"discrepancy": 0.2})
    assert key == cache_key(S.with_width(CNN_GAP, 100), X, "ntk", 1e-3, 4, {"discrepancy": 0.2})
    others = {cache_key(S.serial(*CNN_GAP.layers[:-1], S.Dense(1, W_std=1.3, b_std=0.1)), X, "ntk", 1e-3, 4,
                        {"discrepancy": 0.2}),
              cache_key(CNN_FLATTEN, X, "ntk", 1e-3, 4, {"discrepancy": 0.2})}
    assert key not in others and len(others) == 2
    custom = S.serial(S.Dense(4), S.Activation(S.get_activation("relu")), S.Dense(1))
    assert cache_key(custom, X[:, :, 0], "ntk", 1e-3, 4, {}) is None


class Stop(Exception):
    """Raised by a notify callback: the sample stops after the probe."""


def test_the_design_of_a_two_conv_cnn_check_at_five_percent_is_small():
    """The widths follow the discrepancy, so the 5% check of CNN2 costs a fraction of the previous (96, 3072)
    design, which drew at least 100 pairs: >= 100 x 3072^2 = 9.4e8 weights per hidden conv layer (measured:
    ~30 s wall, ~4 s CPU on 2 loaded cores, benchmarks/check_kernel_speed.py --cnn)."""
    X2 = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    plans = []

    def notify(plan):
        plans.append(plan)
        raise Stop

    assert stax_widths(2, 0.05) == (32, 256)
    with pytest.raises(Stop):
        sample_kernel(CNN2, X2, "ntk", math.sqrt(1e-3), 0, false_pass_rate=5e-4, discrepancy=0.05, notify=notify)
    ((plan),) = plans
    assert plan.widths == (32, 256) and plan.method == "dense"
    assert plan.n_networks * (32 ** 2 + 256 ** 2) < 5e7          # weights per hidden conv layer, both widths
