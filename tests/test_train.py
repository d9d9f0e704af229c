import numpy as np
import pytest

import ntkcheck.train as engine
from ntkcheck import MLP
from ntkcheck.networks import DenseParams, forward, init_params
from ntkcheck.linearized import linearized
from ntkcheck.train import gradient_descent, gradient_flow, gradient_flow_ode, scaled_lr, train_params

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 3))
Y = RNG.standard_normal(6)
X_TEST = RNG.standard_normal((4, 3))


def _copy(p: DenseParams) -> DenseParams:
    return DenseParams(tuple(W.copy() for W in p.weights), tuple(b.copy() for b in p.biases))


def _loss(spec, p, centered_f0=0.0):
    f = forward(spec, p, X)[0][..., 0] - centered_f0
    return 0.5 * ((f - Y) ** 2).sum(1) / len(X)


@pytest.mark.parametrize("parameterization", ["ntk", "standard", "mean_field"])
@pytest.mark.parametrize("centered", [False, True])
def test_gradient_matches_finite_differences(parameterization, centered):
    spec = MLP(depth=2, width=5, activation="tanh", sigma_b=0.5, parameterization=parameterization,
               output_scale=1.3)
    p0 = init_params(spec, 3, 1, 0, 2)
    f0 = forward(spec, p0, X)[0][..., 0] if centered else 0.0
    lr = 1e-3
    p1 = _copy(p0)
    train_params(spec, p1, X, Y, lr, 1, centered=centered)
    eps = 1e-6
    for l in range(3):
        for which in ("weights", "biases"):
            arr0 = getattr(p0, which)[l]
            idx = (1,) + tuple(s // 2 for s in arr0.shape[1:])
            plus, minus = _copy(p0), _copy(p0)
            getattr(plus, which)[l][idx] += eps
            getattr(minus, which)[l][idx] -= eps
            fd = (_loss(spec, plus, f0) - _loss(spec, minus, f0))[1] / (2 * eps)
            grad = (arr0[idx] - getattr(p1, which)[l][idx]) / lr
            # central differences: O(eps^2) truncation, O(1e-16/eps) rounding
            assert grad == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_readout_only_gd_equals_linear_model_exactly():
    """Readout training is linear in its parameters: GD is the linear model's GD exactly."""
    spec = MLP(depth=2, width=50, activation="relu", sigma_b=0.2)
    tr = gradient_descent(spec, X, Y, 0.5, 30, n_networks=3, seed=2, X_test=X_TEST,
                          readout_only=True, record_ntk=True)
    K = tr.ntk[:, 0]
    f_train, f_test = linearized(K[:, :6, :6], tr.f_train[:, 0], Y, 0.5, tr.steps,
                                 ntk_test_train=K[:, 6:, :6], f0_test=tr.f_test[:, 0], method="gd")
    np.testing.assert_allclose(f_train, tr.f_train, atol=1e-12)
    np.testing.assert_allclose(f_test, tr.f_test, atol=1e-12)
    assert tr.kernel_change.max() == 0.0
    assert np.all(tr.weight_change[:, :, :2] == 0) and np.all(tr.weight_change[:, 1:, 2] > 0)


def test_gd_matches_ode_gradient_flow_to_stated_error():
    """Small-step GD vs DOP853 (rtol 1e-10): the error equals the Richardson
    estimate up to its relative O(dt) correction."""
    spec = MLP(depth=2, width=8, activation="tanh", sigma_b=0.3)
    times = [0, 2, 5, 10]
    ode = gradient_flow_ode(spec, init_params(spec, 3, 5, 0, 2), X, Y, 1.0, times, X_test=X_TEST)
    dt = 1 / 8
    flow = gradient_flow(spec, X, Y, 1.0, 10, 8, record=times, n_networks=2, seed=5, X_test=X_TEST)
    actual = np.abs(np.concatenate([flow.f_train - ode.f_train, flow.f_test - ode.f_test], -1)).max(-1)
    assert actual[:, 0].max() < 1e-14
    ratio = actual[:, 1:] / flow.step_error[:, 1:]
    assert np.all((ratio > 1 - dt) & (ratio < 1 + dt)), ratio
    # and the flow really moved: the error is small compared with the change of f
    assert flow.step_error.max() < 0.05 * np.abs(flow.f_train[:, -1] - flow.f_train[:, 0]).max()


@pytest.mark.parametrize("spec", [MLP(depth=2, width=16, activation="relu", sigma_b=0.1),
                                  MLP(depth=2, width=300, activation="erf", sigma_b=0.1)])
def test_results_independent_of_chunking_grouping_and_threads(spec, monkeypatch):
    """Width 300 makes einsum and BLAS take size-dependent paths: the records must not."""
    kw = dict(n_networks=5, seed=3, X_test=X_TEST, record=[0, 3, 7], record_ntk=True)
    one = gradient_descent(spec, X, Y, 0.3, 7, threads=1, **kw)
    runs = [gradient_descent(spec, X, Y, 0.3, 7, max_bytes=1, **kw), gradient_descent(spec, X, Y, 0.3, 7, **kw)]
    monkeypatch.setattr(engine, "GROUP_BYTES", 1)           # one network per group, two threads
    runs.append(gradient_descent(spec, X, Y, 0.3, 7, threads=2, **kw))
    for other in runs:
        for name in ("f_train", "f_test", "loss", "ntk", "dtheta_sq", "theta0_sq"):
            np.testing.assert_array_equal(getattr(one, name), getattr(other, name))


def test_records_and_centering():
    spec = MLP(depth=1, width=32, activation="erf", output_scale=4.0)
    tr = gradient_descent(spec, X, Y, scaled_lr(spec, 0.5), 20, n_networks=2, X_test=X_TEST,
                          record=[0, 10, 20], centered=True, record_ntk=True)
    assert tr.f_train.shape == (2, 3, 6) and tr.f_test.shape == (2, 3, 4) and tr.loss.shape == (2, 21)
    assert tr.ntk.shape == (2, 3, 10, 10) and tr.weight_change.shape == (2, 3, 2)
    np.testing.assert_array_equal(tr.f_train[:, 0], 0.0)
    np.testing.assert_allclose(tr.loss[:, 0], 0.5 * np.mean(Y**2))
    assert np.all(np.diff(tr.loss, axis=1) < 0)
    np.testing.assert_allclose(tr.loss[:, tr.steps], 0.5 * np.mean(tr.residuals**2, axis=-1))
    np.testing.assert_array_equal(tr.times, [0, 10, 20])


def test_scaled_lr():
    assert scaled_lr(MLP(depth=2, width=(10, 30), parameterization="mean_field"), 0.5) == 15.0
    assert scaled_lr(MLP(depth=2, width=30, output_scale=2.0), 1.0) == 0.25


def test_divergence_is_detected_and_frozen():
    spec = MLP(depth=2, width=64, activation="relu")
    with np.errstate(all="raise"):
        tr = gradient_descent(spec, X, Y, 1e3, 30, n_networks=2, record=[0, 30])
    assert tr.diverged.all()
    assert np.isinf(tr.loss[:, -1]).all() and np.isnan(tr.f_train[:, -1]).all()
    assert np.isfinite(tr.loss[:, 0]).all()


def test_per_network_rates_scale_each_networks_step():
    spec = MLP(depth=2, width=16, activation="gelu")
    p0 = init_params(spec, 3, 7, 0, 3)
    rates = np.array([0.3, 0.0, 0.7])
    got = train_params(spec, _copy(p0), X, Y, rates, 12, record=[0, 12])
    assert np.array_equal(got.lr, rates)
    for i, lr in enumerate(rates):
        one = DenseParams(tuple(W[i:i + 1].copy() for W in p0.weights), tuple(b[i:i + 1].copy() for b in p0.biases))
        if lr == 0:     # rate 0: the network stays where it is
            assert np.all(got.loss[i] == got.loss[i, 0])
            continue
        ref = train_params(spec, one, X, Y, lr, 12, record=[0, 12])
        np.testing.assert_allclose(got.loss[i], ref.loss[0], rtol=1e-12)


def test_stax_train_params_in_place_per_network_rates_and_sgd():
    from ntkcheck import stax
    from ntkcheck.claims.architectures import build
    from ntkcheck.train import affine_weights, epoch_orders, stax_gradient_descent, stax_train_params
    net = build("resnet", "relu", 3, 16, 1.5, None)
    params = stax.init_params(net, (3,), 5, 0, 3)
    w0 = [W.copy() for W in affine_weights(net, params)]
    tr = stax_train_params(net, params, X, Y, np.array([0.4, 0.4, 0.4]), 6)
    np.testing.assert_allclose(tr.loss, stax_gradient_descent(net, X, Y, 0.4, 6, n_networks=3, seed=5).loss,
                               rtol=1e-12)
    assert all(np.any(W != W_0) for W, W_0 in zip(affine_weights(net, params), w0))    # trained in place
    # SGD: batch 2 of 6 inputs; a rate-0 network stays put; the same steps as the dense engine's masks
    params = stax.init_params(net, (3,), 5, 0, 3)
    orders = epoch_orders(6, 2, 6, 9, 0, 3)
    sgd = stax_train_params(net, params, X, Y, np.array([0.05, 0.0, 0.02]), 6, batch_size=2, orders=orders)
    assert np.all(sgd.loss[1] == sgd.loss[1, 0]) and sgd.loss[0, -1] < sgd.loss[0, 0]
    assert not np.allclose(sgd.loss[0], tr.loss[0])


@pytest.mark.parametrize("lr", [np.array([0.1, -0.1]), np.array([0.1, np.inf]), np.array([0.1, 0.2, 0.3])])
def test_bad_per_network_rates(lr):
    spec = MLP(depth=1, width=4)
    with pytest.raises(ValueError, match="one per network"):
        train_params(spec, init_params(spec, 3, 0, 0, 2), X, Y, lr, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(spec=MLP(depth=1, width=4, d_out=2)), "scalar output"),
    (dict(y=np.zeros(5)), "targets"),
    (dict(lr=0.0), "lr"),
    (dict(lr=np.nan), "lr"),
    (dict(steps=-1), "steps"),
    (dict(record=[0, 11]), "record"),
    (dict(X_test=np.zeros((2, 4))), "input dimension"),
    (dict(n_networks=0), "n_networks"),
])
def test_bad_input(kwargs, match):
    args = dict(spec=MLP(depth=1, width=4), X=X, y=Y, lr=0.1, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gradient_descent(**args)


def test_kernel_change_needs_initial_kernel():
    tr = gradient_descent(MLP(depth=1, width=4), X, Y, 0.1, 2, record=[1, 2], record_ntk=True)
    with pytest.raises(ValueError, match="step 0"):
        tr.kernel_change


# --- stax networks ------------------------------------------------------------

def _tiny_cnn():
    from ntkcheck import stax
    return stax.serial(stax.Conv(3, (2,), padding="SAME", W_std=1.3, b_std=0.4), stax.Tanh(),
                       stax.Conv(2, (2,), padding="CIRCULAR", W_std=1.1, b_std=0.2), stax.Erf(),
                       stax.GlobalAvgPool(), stax.Dense(1, W_std=1.2, b_std=0.3))


def test_stax_gd_matches_finite_difference_reference():
    """A few GD steps on a tiny CNN follow a plain reference: theta <- theta - lr * grad L with
    the gradient by central differences of the loss of :func:`ntkcheck.stax` forward passes."""
    from ntkcheck import stax
    from ntkcheck.train import _affine_layers, stax_gradient_descent
    net, Xc, lr, steps = _tiny_cnn(), RNG.standard_normal((5, 3, 2)), 0.4, 3
    tr = stax_gradient_descent(net, Xc, Y[:5], lr, steps, n_networks=2, seed=7)
    params = stax.init_params(net, Xc.shape[1:], 7, 0, 2)
    arrays = [a for _, p in _affine_layers(net, params) for a in (p.W, p.b)]

    def loss():
        f = net.forward(params, Xc[None])[0][..., 0]
        return 0.5 * ((f - Y[:5]) ** 2).sum(1) / len(Xc)
    f_ref = [net.forward(params, Xc[None])[0][..., 0]]
    h = 1e-6
    for _ in range(steps):
        grads = []
        for a in arrays:
            g = np.empty_like(a)
            for idx in np.ndindex(a.shape[1:]):
                at = (slice(None),) + idx
                keep = a[at].copy()
                a[at] = keep + h
                up = loss()
                a[at] = keep - h
                down = loss()
                a[at] = keep
                g[at] = (up - down) / (2 * h)
            grads.append(g)
        for a, g in zip(arrays, grads):
            a -= lr * g
        f_ref.append(net.forward(params, Xc[None])[0][..., 0])
    np.testing.assert_allclose(tr.f_train, np.stack(f_ref, axis=1), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tr.loss[:, -1], loss(), rtol=1e-7)
    # one column per affine layer (two convs, the readout), each moved by training
    assert tr.dtheta_sq.shape == (2, steps + 1, 3) and np.all(tr.dtheta_sq[:, 1:] > 0)


@pytest.mark.parametrize("lr", [0.3, 40.0])
def test_stax_dense_network_trains_like_the_mlp(lr):
    """serial(Dense, Relu, Dense, Relu, Dense) from the same seed is the MLP: outputs, losses,
    empirical NTKs and weight changes agree to rounding (lr 40 diverges, identically)."""
    from ntkcheck import stax
    spec = MLP(depth=2, width=7, activation="relu", sigma_w=1.5, sigma_b=0.3)
    dense = lambda n: stax.Dense(n, W_std=1.5, b_std=0.3)  # noqa: E731
    net = stax.serial(dense(7), stax.Relu(), dense(7), stax.Relu(), dense(1))
    kw = dict(n_networks=3, seed=1, X_test=X_TEST, record=[0, 5, 20], record_ntk=True)
    a, b = gradient_descent(spec, X, Y, lr, 20, **kw), gradient_descent(net, X, Y, lr, 20, **kw)
    np.testing.assert_array_equal(a.diverged, b.diverged)
    assert a.diverged.all() == (lr > 1)
    for name in ("f_train", "f_test", "loss", "ntk", "dtheta_sq", "theta0_sq"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-11, atol=1e-12, err_msg=name)


def test_stax_gd_chunks_and_centering():
    """The networks do not depend on the chunking; centred training starts at f = 0."""
    from ntkcheck.train import stax_gradient_descent
    net, Xc = _tiny_cnn(), RNG.standard_normal((5, 3, 2))
    whole = stax_gradient_descent(net, Xc, Y[:5], 0.3, 4, n_networks=3, seed=2, centered=True)
    parts = stax_gradient_descent(net, Xc, Y[:5], 0.3, 4, n_networks=3, seed=2, centered=True, max_bytes=1)
    np.testing.assert_allclose(parts.f_train, whole.f_train, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(whole.f_train[:, 0], 0.0)


def test_stax_gd_rejects_bad_networks_and_options():
    from ntkcheck import stax
    with pytest.raises(ValueError, match="scalar output"):
        gradient_descent(stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2)), X, Y, 0.1, 2)
    with pytest.raises(ValueError, match="readout_only"):
        gradient_descent(stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1)), X, Y, 0.1, 2, readout_only=True)
    with pytest.raises(ValueError, match="GlobalAvgPool"):
        gradient_descent(stax.serial(stax.Conv(4, (2,)), stax.Dense(1)), RNG.standard_normal((6, 3, 2)), Y, 0.1, 2)
    with pytest.raises(ValueError, match="lr"):
        gradient_descent(_tiny_cnn(), RNG.standard_normal((6, 3, 2)), Y, -1.0, 2)
