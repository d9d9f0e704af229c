"""The linearized network ``f^lin_t = f_0 + grad f_0 (theta_t - theta_0)`` in closed form.

Trained on the MSE loss ``(1/2N) sum (f - y)^2`` the linear model obeys
``df^lin(X)/dt = -(eta/N) Theta_0 (f^lin(X) - y)`` with the fixed kernel
Theta_0 = Theta_hat_0, so (Lee et al. 2019, eqs. 8-9 and sec. 2.3)

    f^lin_t(X)  = y + e^{-eta Theta_0 t/N} (f_0(X) - y)                     (flow)
    f^lin_t(x*) = f_0(x*) - Theta_0(x*, X) Theta_0^{-1} (I - e^{-eta Theta_0 t/N}) (f_0(X) - y)

and for gradient descent (step k) the exponential becomes ``(I - eta Theta_0/N)^k``.
Both are evaluated in the eigenbasis ``Theta_0 = V diag(lam) V^T`` with
``Theta_0^{-1}(I - e^{-eta Theta_0 t/N}) = V diag(t eta/N * phi(eta lam t/N)) V^T``,
``phi(z) = -expm1(-z)/z`` (phi(0) = 1): no inverse is formed and small
eigenvalues lose no accuracy.
"""
from __future__ import annotations

import numpy as np


def _check_kernel(ntk_train: np.ndarray, ntk_test_train: np.ndarray | None, f0_train, f0_test, y):
    ntk_train = np.asarray(ntk_train, dtype=float)
    if ntk_train.ndim < 2 or ntk_train.shape[-1] != ntk_train.shape[-2]:
        raise ValueError(f"ntk_train must be (..., N, N), got shape {ntk_train.shape}")
    n = ntk_train.shape[-1]
    f0_train = np.asarray(f0_train, dtype=float)
    y = np.asarray(y, dtype=float)
    if f0_train.shape[-1] != n or y.shape != (n,):
        raise ValueError(f"f0_train (..., {n}) and y ({n},) must match ntk_train's N={n}; "
                         f"got {f0_train.shape} and {y.shape}")
    if ntk_test_train is not None:
        ntk_test_train = np.asarray(ntk_test_train, dtype=float)
        f0_test = np.asarray(f0_test, dtype=float)
        if ntk_test_train.shape[-1] != n or f0_test.shape[-1] != ntk_test_train.shape[-2]:
            raise ValueError(f"ntk_test_train must be (..., N_test, {n}) and f0_test (..., N_test); "
                             f"got {ntk_test_train.shape} and {f0_test.shape}")
    return ntk_train, ntk_test_train, f0_train, f0_test, y


def _check_lr(lr, times, method):
    if method not in ("flow", "gd"):
        raise ValueError(f"method must be 'flow' or 'gd', got {method!r}")
    if isinstance(lr, bool) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"times must be finite and >= 0, got {times!r}")
    if method == "gd" and np.any(t != np.round(t)):
        raise ValueError(f"gd times are step counts (integers), got {times!r}")
    return t


def _phi(z: np.ndarray) -> np.ndarray:
    """(1 - e^{-z})/z with phi(0) = 1."""
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    return np.where(small, 1.0 - z / 2, -np.expm1(-safe) / safe)


def _gd_gain(u: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(1 - (1 - u)^k)/u with value k at u = 0 (GD's per-mode counterpart of t*phi)."""
    small = np.abs(u) < 1e-8
    safe = np.where(small, 1.0, u)
    # for |u| < 1 expm1/log1p keep accuracy when u is tiny; beyond it the power is exact enough
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        near = -np.expm1(k * np.log1p(-np.minimum(safe, 0.5))) / safe
        far = (1.0 - (1.0 - safe) ** k) / safe
    return np.where(small, k, np.where(np.abs(safe) < 0.5, near, far))


def mode_gains(ntk_train, lr: float, times, method: str = "flow") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues lam (..., N), eigenvectors V (..., N, N) of ``Theta_0`` and the
    gains G (..., T, N) with ``Theta_0^{-1}(I - E_t) = V diag(G_t) V^T`` and
    ``E_t = V diag(1 - lam G_t) V^T`` the residual propagator
    (``e^{-eta Theta_0 t/N}`` or ``(I - eta Theta_0/N)^t``)."""
    ntk_train = np.asarray(ntk_train, dtype=float)
    t = _check_lr(lr, times, method)
    n = ntk_train.shape[-1]
    lam, V = np.linalg.eigh(ntk_train)
    lam_t = lam[..., None, :]
    tt = t[:, None]
    if method == "flow":
        gains = (lr * tt / n) * _phi(lr * lam_t * tt / n)
    else:
        gains = (lr / n) * _gd_gain(lr * lam_t / n, tt)
    return lam, V, gains


def linearized(ntk_train, f0_train, y, lr: float, times, *, ntk_test_train=None, f0_test=None,
               method: str = "flow") -> tuple[np.ndarray, np.ndarray | None]:
    """``f^lin_t`` on the training inputs (..., T, N) and, given ``ntk_test_train``
    = Theta_0(X*, X) (..., N*, N) and ``f0_test`` (..., N*), on test inputs
    (..., T, N*); leading axes (e.g. networks) broadcast.  ``times`` are flow
    times (``method="flow"``) or GD step counts (``method="gd"``), in the
    convention ``df/dt = -(lr/N) Theta (f - y)`` (Lee et al. 2019, eqs. 8-9)."""
    ntk_train, ntk_test_train, f0_train, f0_test, y = _check_kernel(ntk_train, ntk_test_train, f0_train, f0_test, y)
    lam, V, gains = mode_gains(ntk_train, lr, times, method)
    r0 = np.einsum("...ij,...i->...j", V, f0_train - y)             # V^T (f_0 - y)
    coef = gains * r0[..., None, :]                                 # (..., T, N): G_t V^T r_0
    f_train = f0_train[..., None, :] - np.einsum("...ij,...tj->...ti", V * lam[..., None, :], coef)
    if ntk_test_train is None:
        return f_train, None
    f_test = f0_test[..., None, :] - np.einsum("...ij,...tj->...ti", ntk_test_train @ V, coef)
    return f_train, f_test


def residual_modes(ntk_train, residuals) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues lam (..., N) (ascending) of Theta_0 and the residuals projected on
    its eigenvectors, ``V^T r_t`` (..., T, N): the linear model predicts
    ``(V^T r_t)_i = (V^T r_0)_i e^{-eta lam_i t/N}`` (flow) — the seed memo's
    ``exp(-eta Theta t)`` law, mode by mode (Lee et al. 2019, eq. 9;
    Arora et al. 2019, "Fine-grained analysis ...", sec. 4)."""
    lam, V = np.linalg.eigh(np.asarray(ntk_train, dtype=float))
    return lam, np.einsum("...ij,...ti->...tj", V, np.asarray(residuals, dtype=float))
