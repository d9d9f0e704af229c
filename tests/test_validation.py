"""Bad specs and inputs raise ValueError naming the problem."""
import numpy as np
import pytest

from ntkcheck import MLP, nngp_kernel, ntk_kernel, sample_dense

GOOD = dict(depth=2, width=8, activation="relu")


@pytest.mark.parametrize("change,message", [
    (dict(depth=0), "MLP.depth"),
    (dict(depth=1.5), "MLP.depth"),
    (dict(width=0), "MLP.width"),
    (dict(width=-3), "MLP.width"),
    (dict(width=(4,)), "MLP.width has 1 entries but depth is 2"),
    (dict(width="wide"), "MLP.width"),
    (dict(activation="swish2"), "unknown activation 'swish2'"),
    (dict(sigma_w=float("nan")), "MLP.sigma_w"),
    (dict(sigma_b=-1.0), "MLP.sigma_b"),
    (dict(sigma_w=float("inf")), "MLP.sigma_w"),
    (dict(parameterization="muP"), "MLP.parameterization"),
    (dict(d_out=0), "MLP.d_out"),
])
def test_bad_spec(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MLP(**{**GOOD, **change})


@pytest.mark.parametrize("X,message", [
    (np.array([[1.0, np.nan]]), "X1 contains NaN or inf"),
    (np.array([[1.0, np.inf]]), "X1 contains NaN or inf"),
    (np.ones(3), r"X1 must have shape \(N, d\)"),
    (np.ones((2, 2, 2)), r"X1 must have shape \(N, d\)"),
    (np.ones((0, 3)), r"X1 must have shape \(N, d\)"),
    ([["a", "b"]], "X1 must be a numeric array"),
])
def test_bad_inputs(X, message):
    spec = MLP(**GOOD)
    for fn in (nngp_kernel, ntk_kernel):
        with pytest.raises(ValueError, match=message):
            fn(spec, X)
    with pytest.raises(ValueError, match=message.replace("X1", "X")):
        sample_dense(spec, X, 2)


def test_mismatched_dimensions():
    with pytest.raises(ValueError, match="same input dimension"):
        ntk_kernel(MLP(**GOOD), np.ones((2, 3)), np.ones((2, 4)))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_network_count(bad):
    with pytest.raises(ValueError, match="n_networks"):
        sample_dense(MLP(**GOOD), np.ones((2, 3)), bad)


def test_numpy_scalars_are_accepted():
    spec = MLP(depth=np.int64(2), width=np.int32(8), sigma_w=np.float32(1.5), sigma_b=np.float64(0.1),
               d_out=np.int64(1))
    assert spec == MLP(depth=2, width=8, sigma_w=1.5, sigma_b=0.1, d_out=1)
    assert type(spec.depth) is int and type(spec.width) is int and type(spec.sigma_w) is float
    assert MLP(depth=2, width=(np.int64(4), np.int64(8))).widths == (4, 8)
    with pytest.raises(ValueError, match="MLP.depth"):
        MLP(depth=np.bool_(True), width=8)


def test_complex_inputs_and_wrong_specs_are_refused():
    X = np.eye(2)
    for fn in (nngp_kernel, ntk_kernel):
        with pytest.raises(ValueError, match="X1 must be real, got complex values"):
            fn(MLP(**GOOD), X + 1j)
        with pytest.raises(ValueError, match="spec must be an MLP or a stax network, got str 'relu'"):
            fn("relu", X)


def test_sample_init_beyond_the_machine_is_refused_up_front():
    from ntkcheck.sampler import sample_init

    with pytest.raises(ValueError, match="sample_init of 1000000000000 networks .* needs at least .* GiB"):
        sample_init(MLP(**GOOD), np.eye(2), 10**12)
    with pytest.raises(ValueError, match="width 1099511627776"):
        sample_init(MLP(depth=1, width=2**40), np.eye(2), 1)
