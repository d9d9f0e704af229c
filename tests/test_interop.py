"""ntkcheck.interop.to_neural_tangents and strategies.neural_tangents_pairs: the translation's calls
(against a stand-in neural_tangents.stax, so it runs without neural-tangents) and, where
neural-tangents is installed, its kernels against ntkcheck's analytic ones."""
import math
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings

from ntkcheck import MLP, nngp_kernel, ntk_kernel, stax
from ntkcheck.activations import custom
from ntkcheck.interop import to_neural_tangents
from ntkcheck.strategies import neural_tangents_pairs, specs

LAYERS = ("Dense", "Conv", "AvgPool", "GlobalAvgPool", "Flatten", "Identity", "FanOut", "FanInSum",
          "Relu", "LeakyRelu", "Abs", "Erf", "Sin", "Cos", "Gelu")
PROPS = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def resnet(s):
    """A residual CNN, by the same calls in ntkcheck.stax and neural_tangents.stax."""
    block = s.serial(s.FanOut(2), s.parallel(s.serial(s.Relu(), s.Conv(8, (3, 3), padding="SAME", b_std=0.1)),
                                             s.Identity()), s.FanInSum())
    return s.serial(s.Conv(8, (2, 3), padding="CIRCULAR", W_std=1.3), block, s.AvgPool((2, 2), (2, 2), "SAME"),
                    s.LeakyRelu(0.2), s.GlobalAvgPool(), s.Dense(1, W_std=1.5, b_std=0.1, parameterization="standard"))


def networks(s):
    """name -> (network, shape of one input): MLP-like, CNN + GlobalAvgPool, Flatten, resnet."""
    return {"dense": (s.serial(s.Dense(8, 1.4, 0.2), s.Erf(), s.Dense(8, 1.4, 0.2), s.Sin(), s.Dense(1, 1.4)), (3,)),
            "cnn-gap": (s.serial(s.Conv(8, (3, 3), padding="SAME", W_std=1.3, b_std=0.2), s.Relu(),
                                 s.Conv(8, (2, 2), strides=(2, 1), W_std=1.3), s.Abs(), s.GlobalAvgPool(),
                                 s.Dense(1, W_std=1.3, b_std=0.2)), (5, 4, 2)),
            "cnn-flatten": (s.serial(s.Conv(8, (3,), padding="CIRCULAR", W_std=1.2, b_std=0.3), s.Cos(),
                                     s.Flatten(), s.Dense(1, W_std=1.2)), (6, 2)),
            "resnet": (resnet(s), (4, 4, 2))}


@pytest.fixture
def fake_nt(monkeypatch):
    """A neural_tangents.stax whose layers return (None, None, (name, args, kwargs)) and whose
    serial/parallel return (None, None, (name, [their layers' descriptions]))."""
    def layer(name):
        return lambda *args, **kwargs: (None, None, (name, args, kwargs))

    def combinator(name):
        return lambda *layers: (None, None, (name, [d for _, _, d in layers]))

    nt = types.SimpleNamespace(**{name: layer(name) for name in LAYERS},
                               serial=combinator("serial"), parallel=combinator("parallel"))
    monkeypatch.setitem(sys.modules, "neural_tangents", types.SimpleNamespace(stax=nt))
    return nt


def names(desc):
    """The layer names of a description, nested as serial/parallel nest them."""
    return (desc[0], [names(d) for d in desc[1]]) if desc[0] in ("serial", "parallel") else desc[0]


def test_translation_calls_the_same_layers(fake_nt):
    _, _, desc = to_neural_tangents(resnet(stax))
    assert names(desc) == names(resnet(fake_nt)[2])     # the layers that build it in neural-tangents
    conv, block, pool, leaky, gap, readout = desc[1]
    assert conv == ("Conv", (8, (2, 3)), dict(strides=(1, 1), padding="CIRCULAR", W_std=1.3, b_std=None,
                                             parameterization="ntk"))
    assert block[1][1][1][0][1][1] == ("Conv", (8, (3, 3)), dict(strides=(1, 1), padding="SAME", W_std=1.0,
                                                                 b_std=0.1, parameterization="ntk"))
    assert block[1][0] == ("FanOut", (2,), {}) and block[1][2] == ("FanInSum", (), {})
    assert leaky == ("LeakyRelu", (0.2,), {}) and gap == ("GlobalAvgPool", (), {})
    assert pool == ("AvgPool", ((2, 2),), dict(strides=(2, 2), padding="SAME"))
    assert readout == ("Dense", (1,), dict(W_std=1.5, b_std=0.1, parameterization="standard"))


def test_mlp_output_scale_is_folded_into_the_readout(fake_nt):
    _, _, desc = to_neural_tangents(MLP(2, 5, "leaky_relu(0.3)", 1.5, 0.4, output_scale=0.5))
    dense = lambda n, w, b: ("Dense", (n,), dict(W_std=w, b_std=b, parameterization="ntk"))  # noqa: E731
    leaky = ("LeakyRelu", (0.3,), {})
    assert desc == ("serial", [dense(5, 1.5, 0.4), leaky, dense(5, 1.5, 0.4), leaky, dense(1, 0.75, 0.2)])


def test_untranslatable_networks_are_refused(fake_nt, monkeypatch):
    cases = {"no mean_field parameterization": MLP(2, 4, "relu", parameterization="mean_field"),
             "activation 'tanh' has no closed-form": MLP(1, 4, "tanh"),
             "only activations given by name": stax.serial(stax.Dense(2), stax.Activation(custom(np.tanh)),
                                                            stax.Dense(1)),
             "output scale != 1 is translated only in the ntk": MLP(1, 4, "relu", parameterization="standard",
                                                                    output_scale=2.0),
             "net must be an ntkcheck.MLP": "relu"}
    for message, net in cases.items():
        with pytest.raises(ValueError, match=message):
            to_neural_tangents(net)
    monkeypatch.setitem(sys.modules, "neural_tangents", None)          # not installed
    with pytest.raises(ImportError, match=r"needs neural-tangents \(pip install neural-tangents\)"):
        to_neural_tangents(MLP(1, 4, "relu"))


def count_affine(desc) -> int:
    name, *rest = desc
    if name in ("serial", "parallel"):
        return sum(count_affine(d) for d in rest[0])
    return name in ("Dense", "Conv")


def test_strategy_pairs_networks_with_their_kernel_fn(fake_nt):
    @PROPS
    @given(neural_tangents_pairs(), neural_tangents_pairs(specs()))
    def check(stax_pair, mlp_pair):
        (net, shape), desc = stax_pair
        assert isinstance(shape, tuple) and count_affine(desc) == sum(layer.affine for layer in stax.layers(net))
        spec, desc = mlp_pair
        assert isinstance(spec, MLP) and count_affine(desc) == spec.depth + 1
    check()


# --- against neural-tangents itself (skipped where it is not installed) -----------------------

def relative_gap(ours, theirs) -> float:
    """max |ours - theirs| / sqrt(K_ii K_jj), over the entries."""
    theirs = np.asarray(theirs)
    d = np.sqrt(np.abs(np.diag(theirs)))
    return float(np.max(np.abs(ours - theirs) / np.outer(d, d)))


@pytest.fixture(scope="module")
def real_nt():
    pytest.importorskip("neural_tangents")
    from jax import config
    config.update("jax_enable_x64", True)       # neural-tangents in float64, as ntkcheck


@pytest.mark.parametrize("name", ["dense", "cnn-gap", "cnn-flatten", "resnet", "mlp"])
def test_kernels_equal_neural_tangents(real_nt, name):
    net, shape = networks(stax)[name] if name != "mlp" else (MLP(3, 8, "gelu", math.sqrt(2), 0.1, output_scale=0.7), (3,))
    X = np.random.default_rng(0).standard_normal((4, *shape))
    ref = to_neural_tangents(net)[2](X, None, ("nngp", "ntk"))
    assert relative_gap(nngp_kernel(net, X), ref.nngp) < 1e-10
    assert relative_gap(ntk_kernel(net, X), ref.ntk) < 1e-10


def test_strategy_kernels_equal_neural_tangents(real_nt):
    @settings(PROPS, max_examples=6)           # neural-tangents compiles each network: seconds an example
    @given(neural_tangents_pairs())
    def check(pair):
        (net, shape), kernel_fn = pair
        X = np.random.default_rng(1).standard_normal((3, *shape))
        ref = kernel_fn(X, None, ("nngp", "ntk"))
        # 1e-7, not 1e-10: where two inputs or patches are collinear (one channel, filter 1), relu's
        # arccos(rho) at rho = 1 - eps turns neural-tangents' round-off eps into sqrt(2 eps) ~ 2e-8
        # (ntkcheck is exact there: Dense(1), Relu, Dense(1) on 1-D inputs of one sign gives x x')
        assert relative_gap(nngp_kernel(net, X), ref.nngp) < 1e-7
        assert relative_gap(ntk_kernel(net, X), ref.ntk) < 1e-7
    check()
