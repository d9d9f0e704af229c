"""Gaussian-process laws of trained infinite-width ensembles (Lee et al. 2019, sec. 2.3).

A network trained on the MSE loss ``(1/2N) sum (f - y)^2`` in its linear regime maps its
initial function f_0 affinely: with the (deterministic, infinite-width) tangent kernel Theta,

    f_t(x*) = f_0(x*) - A_t (f_0(X) - y),     A_t = Theta(x*, X) Theta^{-1} (I - E_t),

``E_t = e^{-eta Theta t/N}`` (flow) or ``(I - eta Theta/N)^t`` (gradient descent, step t) and
``A_inf = Theta(x*, X) Theta^{-1}``.  With f_0 ~ GP(0, K) (K the NNGP kernel) the ensemble is
Gaussian with (Lee et al. 2019, eqs. 15-16)

    mu_t    = A_t y
    Sigma_t = K(x*, x*) + A_t K(X, X) A_t^T - (A_t K(X, x*) + K(x*, X) A_t^T).

All three Sigma terms exist because f_0 != 0: the first is the prior, the other two come from
the part ``-A_t f_0(X)`` of the map and its correlation with f_0(x*).

Training only the readout is exactly linear in the trained parameters and its tangent kernel
is the Gram of the readout's inputs, which at infinite width is the output NNGP K (NTK
parameterization: ``sigma_w^2/n phi.phi' + sigma_b^2``).  Then Theta = K and, since E_t commutes
with K, Sigma_t = K_** - K_*X K^{-1} (I - E_t^2) K_X*: the NNGP posterior at t = inf
(Lee et al. 2019, sec. 2.3.1 and Appendix D; derived here from the general form).
"""
from __future__ import annotations

import numpy as np

from .linearized import mode_gains


def ensemble_map(theta_train, theta_test_train, lr: float, times, method: str = "gd") -> np.ndarray:
    """``A_t`` (T, N*, N) for each time (``np.inf`` allowed: ``A_inf = Theta_*X Theta^{-1}``).

    ``theta_train`` (N, N) and ``theta_test_train`` (N*, N) are the tangent kernel on the
    training inputs and between test and training inputs; ``times`` are flow times
    (``method="flow"``) or GD step counts (``method="gd"``)."""
    theta_train = np.asarray(theta_train, dtype=float)
    theta_test_train = np.asarray(theta_test_train, dtype=float)
    n = theta_train.shape[-1]
    if theta_train.shape != (n, n) or theta_test_train.ndim != 2 or theta_test_train.shape[1] != n:
        raise ValueError(f"theta_train must be (N, N) and theta_test_train (N*, N); got "
                         f"{theta_train.shape} and {theta_test_train.shape}")
    t = np.atleast_1d(np.asarray(times, dtype=float))
    finite = np.isfinite(t)
    lam, V, gains = mode_gains(theta_train, lr, np.where(finite, t, 0.0), method)
    if np.any(~finite):
        if np.any(t[~finite] < 0) or lam[0] <= 0:
            raise ValueError("t = inf needs +inf and a positive definite theta_train")
        gains = np.where(finite[:, None], gains, 1.0 / lam)
    return np.einsum("sj,jk,tk,lk->tsl", theta_test_train, V, gains, V)


def ensemble_moments(A, k_train, k_test_train, k_test, y) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``mu_t = A_t y`` (T, N*) and covariance ``Sigma_t`` (T, N*, N*) of the trained
    ensemble, from ``A`` (T, N*, N) of :func:`ensemble_map` and the NNGP kernel of the initial
    function: ``k_train`` (N, N), ``k_test_train`` (N*, N), ``k_test`` (N*, N*)
    (Lee et al. 2019, eqs. 15-16)."""
    A = np.asarray(A, dtype=float)
    k_train, k_test_train, k_test = (np.asarray(k, dtype=float) for k in (k_train, k_test_train, k_test))
    y = np.asarray(y, dtype=float)
    _, n_test, n = A.shape
    if (k_train.shape != (n, n) or k_test_train.shape != (n_test, n) or k_test.shape != (n_test, n_test)
            or y.shape != (n,)):
        raise ValueError(f"kernels must be ({n}, {n}), ({n_test}, {n}), ({n_test}, {n_test}) and y ({n},) "
                         f"to match A {A.shape}")
    cross = A @ k_test_train.T                                   # A K_X*
    sigma = k_test + A @ k_train @ A.transpose(0, 2, 1) - cross - cross.transpose(0, 2, 1)
    return A @ y, 0.5 * (sigma + sigma.transpose(0, 2, 1))


def coupling_gap(A, f0_train, f0_test, f_test, y) -> np.ndarray:
    """Per network and time, the RMS over test inputs of ``f_t(x*) - [f_0(x*) - A_t(f_0(X) - y)]``:
    the distance of each trained network from the infinite-width affine map applied to its
    own initial function.  ``f0_train`` (M, N), ``f0_test`` (M, N*), ``f_test`` (M, T, N*)
    -> (M, T).  Its mean square bounds the squared 2-Wasserstein distance between the
    ensemble's law and that map's image of the law of f_0 (a coupling)."""
    target = f0_test[:, None, :] - np.einsum("tsl,ml->mts", np.asarray(A, dtype=float), f0_train - y)
    return np.sqrt(np.mean((np.asarray(f_test) - target) ** 2, axis=-1))
