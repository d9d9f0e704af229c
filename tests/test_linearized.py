import numpy as np
import pytest
from scipy.linalg import expm

from ntkcheck.linearized import linearized, mode_gains, residual_modes


def _problem(n=5, n_test=3, seed=0, shift=0.1):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n + n_test, n + n_test + 2))
    K = A @ A.T / A.shape[1] + shift * np.eye(n + n_test)
    return K[:n, :n], K[n:, :n], rng.standard_normal(n), rng.standard_normal(n_test), rng.standard_normal(n)


def test_flow_matches_matrix_exponential():
    K, Kt, f0, f0t, y = _problem()
    lr, times = 0.7, np.array([0.0, 0.5, 3.0, 40.0])
    f_train, f_test = linearized(K, f0, y, lr, times, ntk_test_train=Kt, f0_test=f0t)
    Kinv = np.linalg.inv(K)
    for j, t in enumerate(times):
        E = expm(-lr * K * t / len(y))
        np.testing.assert_allclose(f_train[j], y + E @ (f0 - y), atol=1e-12)
        np.testing.assert_allclose(f_test[j], f0t - Kt @ Kinv @ (np.eye(len(y)) - E) @ (f0 - y), atol=1e-12)


def test_gd_matches_matrix_power():
    K, Kt, f0, f0t, y = _problem()
    lr = 1.5 * len(y) / np.linalg.eigvalsh(K).max()        # above half critical: some modes oscillate
    steps = np.array([0, 1, 2, 7, 30])
    f_train, f_test = linearized(K, f0, y, lr, steps, ntk_test_train=Kt, f0_test=f0t, method="gd")
    P = np.eye(len(y)) - lr * K / len(y)
    Kinv = np.linalg.inv(K)
    for j, k in enumerate(steps):
        E = np.linalg.matrix_power(P, int(k))
        np.testing.assert_allclose(f_train[j], y + E @ (f0 - y), atol=1e-10)
        np.testing.assert_allclose(f_test[j], f0t - Kt @ Kinv @ (np.eye(len(y)) - E) @ (f0 - y), atol=1e-10)


def test_singular_kernel_is_accurate():
    """A rank-deficient kernel: the null mode's gain must be t*lr/N exactly (no 0/0)."""
    v = np.array([[1.0, 2.0], [2.0, 4.0]])                   # eigenvalues 0 and 5
    lam, V, gains = mode_gains(v, 0.3, [10.0])
    assert lam[0] == pytest.approx(0.0, abs=1e-15)
    assert gains[0, 0] == pytest.approx(10.0 * 0.3 / 2, rel=1e-12)
    lam, V, gd = mode_gains(v, 0.3, [10], method="gd")
    assert gd[0, 0] == pytest.approx(10 * 0.3 / 2, rel=1e-12)
    # tiny positive eigenvalue: -expm1 keeps the relative accuracy 1 - e^{-z} would lose
    _, _, g = mode_gains(np.array([[1e-13]]), 1.0, [1.0])
    assert g[0, 0] == pytest.approx((1 - 1e-13 / 2), rel=1e-15)


def test_limits_and_broadcasting():
    K, Kt, f0, f0t, y = _problem()
    Ks = np.stack([K, 2 * K])
    f_train, f_test = linearized(Ks, np.stack([f0, f0]), y, 1.0, [0.0, 1e6],
                                 ntk_test_train=np.stack([Kt, 2 * Kt]), f0_test=np.stack([f0t, f0t]))
    assert f_train.shape == (2, 2, 5) and f_test.shape == (2, 2, 3)
    np.testing.assert_allclose(f_train[:, 0], f0[None].repeat(2, 0))
    np.testing.assert_allclose(f_train[:, 1], np.broadcast_to(y, (2, 5)), atol=1e-10)
    # t -> infinity: kernel regression from f_0, the same for any kernel scale
    np.testing.assert_allclose(f_test[:, 1], np.broadcast_to(f0t + Kt @ np.linalg.solve(K, y - f0), (2, 3)),
                               atol=1e-10)


def test_residual_modes_decay_at_their_rates():
    K, _, f0, _, y = _problem()
    lr, times = 0.5, np.array([0.0, 2.0, 5.0])
    f_train, _ = linearized(K, f0, y, lr, times)
    lam, modes = residual_modes(K, f_train - y)
    np.testing.assert_allclose(modes, modes[:1] * np.exp(-lr * lam * times[:, None] / len(y)), atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-1.0), "lr"),
    (dict(times=[-1.0]), "times"),
    (dict(method="euler"), "method"),
    (dict(method="gd", times=[0.5]), "integers"),
    (dict(y=np.zeros(4)), "must match"),
    (dict(ntk_test_train=np.zeros((3, 4)), f0_test=np.zeros(3)), "ntk_test_train"),
])
def test_bad_input(kwargs, match):
    K, _, f0, _, y = _problem()
    args = dict(ntk_train=K, f0_train=f0, y=y, lr=1.0, times=[1.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        linearized(**args)
