"""Data sets for the training claims: synthetic inputs and the handwritten digits.

All loaders return float64 arrays, inputs (N, d), and draw from the given seed
(an int or ``numpy.random.SeedSequence``).
"""
from __future__ import annotations

import numpy as np

from .seeding import as_seed_sequence


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def gaussian_inputs(n: int, d: int, seed=0) -> np.ndarray:
    """n inputs with i.i.d. N(0, 1) entries, (n, d)."""
    rng = np.random.default_rng(as_seed_sequence(seed))
    return rng.standard_normal((_count("n", n), _count("d", d)))


def sphere_inputs(n: int, d: int, seed=0, radius: float = 1.0) -> np.ndarray:
    """n inputs uniform on the sphere of the given radius in R^d (normalised Gaussians)."""
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    X = gaussian_inputs(n, d, seed)
    return radius * X / np.linalg.norm(X, axis=1, keepdims=True)


def circle_inputs(gamma) -> np.ndarray:
    """Points ``(cos gamma, sin gamma)`` of the unit circle, (len(gamma), 2)
    (Jacot et al. 2018, Fig. 1)."""
    gamma = np.atleast_1d(np.asarray(gamma, dtype=float))
    if gamma.ndim != 1 or not np.all(np.isfinite(gamma)):
        raise ValueError("gamma must be a 1-D array of finite angles")
    return np.stack([np.cos(gamma), np.sin(gamma)], axis=1)


def digits(n_train: int, n_test: int = 0, seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A few dozen 8x8 handwritten digits: the UCI optical-digits test set (Alpaydin &
    Kaynak 1998, CC BY 4.0), the same 1797 images as scikit-learn's ``load_digits``,
    shipped with the package (``ntkcheck/data_files``).

    Points are drawn without replacement; pixels are centred by the full data
    set's mean and each image scaled to norm sqrt(64), so ``x.x/d = 1`` like a
    standard Gaussian input.  The scalar target is the parity, +1 for even
    digits and -1 for odd.  Returns ``X_train, y_train, X_test, y_test``.
    """
    n_train, n_test = _count("n_train", n_train), int(n_test)
    images, labels = digits_raw()
    images = images.astype(float)
    if n_test < 0 or n_train + n_test > len(images):
        raise ValueError(f"n_train + n_test must be in [1, {len(images)}], got {n_train} + {n_test}")
    images = images - images.mean(axis=0)
    images *= np.sqrt(images.shape[1]) / np.linalg.norm(images, axis=1, keepdims=True)
    pick = np.random.default_rng(as_seed_sequence(seed)).permutation(len(images))[: n_train + n_test]
    X, y = images[pick], np.where(labels[pick] % 2 == 0, 1.0, -1.0)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The shipped digits as stored: pixel counts (1797, 64) in 0..16 and labels (1797,)."""
    from importlib.resources import files

    with files("ntkcheck").joinpath("data_files", "digits.npz").open("rb") as fh, np.load(fh) as z:
        return z["images"], z["target"]
