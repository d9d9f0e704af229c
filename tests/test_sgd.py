"""Mini-batch SGD of the training engine (ntkcheck.train, batch_size)."""
import numpy as np
import pytest

from ntkcheck import MLP
from ntkcheck.linearized import linearized
from ntkcheck.networks import DenseParams, empirical_ntk, init_params
from ntkcheck.train import epoch_orders, gradient_descent, train_params

RNG = np.random.default_rng(np.random.SeedSequence(25))
X = RNG.standard_normal((8, 3))
X /= np.linalg.norm(X, axis=1, keepdims=True)
Y = np.sign(RNG.standard_normal(8))
SPEC = MLP(depth=2, width=32, activation="tanh", sigma_b=0.2)


def _copy(p: DenseParams, repeat: int = 1) -> DenseParams:
    return DenseParams(tuple(np.repeat(W, repeat, 0) for W in p.weights),
                       tuple(np.repeat(b, repeat, 0) for b in p.biases))


def test_full_batch_sgd_is_gd_bit_for_bit():
    gd = gradient_descent(SPEC, X, Y, 0.5, 12, n_networks=3, seed=4)
    sgd = gradient_descent(SPEC, X, Y, 0.5, 12, n_networks=3, seed=4, batch_size=len(X))
    for name in ("loss", "f_train", "dtheta_sq", "theta0_sq"):
        assert np.array_equal(getattr(gd, name), getattr(sgd, name)), name


def test_each_epoch_visits_every_input_once():
    """Step k is a GD step on exactly its batch, with the batch's share B/N of the loss;
    the batches of an epoch partition the inputs."""
    n, b, steps = len(X), 2, 8
    orders = epoch_orders(n, b, steps, 9, 0, 2)
    assert orders.shape == (2, 2, n)
    assert np.array_equal(np.sort(orders, axis=2), np.broadcast_to(np.arange(n), orders.shape))
    p0 = init_params(SPEC, 3, 1, 0, 2)
    sgd = _copy(p0)
    train_params(SPEC, sgd, X, Y, 0.7, steps, batch_size=b, orders=orders)
    for i in range(2):
        ref = DenseParams(tuple(W[i:i + 1].copy() for W in p0.weights), tuple(c[i:i + 1].copy() for c in p0.biases))
        for batch in orders[i].reshape(-1, b):
            train_params(SPEC, ref, X[batch], Y[batch], 0.7 * b / n, 1)
        for W, W_ref in zip(sgd.weights + sgd.biases, ref.weights + ref.biases):
            np.testing.assert_allclose(W[i], W_ref[0], rtol=1e-12, atol=1e-14)


def test_sgd_is_deterministic_and_chunk_free():
    kw = dict(n_networks=3, seed=6, batch_size=4)
    one = gradient_descent(SPEC, X, Y, 0.5, 9, **kw)
    again = gradient_descent(SPEC, X, Y, 0.5, 9, max_bytes=1, threads=2, **kw)
    other = gradient_descent(SPEC, X, Y, 0.5, 9, **{**kw, "seed": 7})
    assert np.array_equal(one.loss, again.loss) and np.array_equal(one.f_train, again.f_train)
    assert not np.array_equal(one.loss, other.loss)
    assert not np.array_equal(one.loss, gradient_descent(SPEC, X, Y, 0.5, 9, n_networks=3, seed=6).loss)


def test_expected_residual_follows_gd_with_step_eta_b_over_n():
    """Lee et al. 2019 (eq. 8) / Du et al. 2018 in expectation over batch orders:
    E[grad L_B] = (B/N) grad L, so a wide network's mean residual over batch orders
    follows ``(I - (eta B/N^2) Theta_hat_0)^k r_0``, to first order in eta (sampling
    without replacement adds O(eta^2) within an epoch).  Tested: the mean over 48
    orders of one network is within 5 % of the gap to the step-eta prediction."""
    n, b, steps, lr, m = len(X), 2, 24, 1.0, 48
    spec = MLP(depth=1, width=512, sigma_b=0.1)
    p = init_params(spec, 3, 7, 0, 1)
    K = empirical_ntk(spec, p, X)[0]
    tr = train_params(spec, _copy(p, m), X, Y, lr, steps, batch_size=b, orders=epoch_orders(n, b, steps, 3, 0, m),
                      track_weights=False)
    f0 = tr.f_train[0, 0]
    sgd_law, _ = linearized(K, f0, Y, lr * b / n, tr.steps, method="gd")
    gd_law, _ = linearized(K, f0, Y, lr, tr.steps, method="gd")
    gap = np.abs(gd_law - sgd_law).max()
    assert gap > 0.3
    assert np.abs(tr.f_train.mean(0) - sgd_law).max() < 0.05 * gap


@pytest.mark.parametrize("kw, match", [
    (dict(batch_size=3), "batch_size must be an integer dividing"),
    (dict(batch_size=0), "batch_size must be an integer dividing"),
    (dict(batch_size=2.0), "batch_size must be an integer dividing"),
])
def test_bad_batch_size(kw, match):
    with pytest.raises(ValueError, match=match):
        gradient_descent(SPEC, X, Y, 0.5, 3, **kw)


def test_orders_must_be_permutations():
    p = init_params(SPEC, 3, 1, 0, 1)
    with pytest.raises(ValueError, match="orders must be"):
        train_params(SPEC, p, X, Y, 0.5, 3, batch_size=2, orders=np.zeros((1, 1, 8), dtype=int))
    with pytest.raises(ValueError, match="go together"):
        train_params(SPEC, p, X, Y, 0.5, 3, batch_size=2)
