"""Check your kernel: is a hand-written NTK the infinite-width NTK of a network?

ntkcheck decides from samples of finite random networks only (never from its own analytic
kernels): a correct kernel passes, one with a classic slip (the derivative term of the
recursion dropped) fails.  Runs in a few seconds.

    python examples/check_your_kernel.py
"""
import numpy as np

import ntkcheck as nc

spec = nc.MLP(depth=2, width=512, activation="relu", sigma_w=2**0.5, sigma_b=0.1)   # width: not used


def relu_ntk(X1, X2, drop_derivative=False):
    """The NTK of ``spec`` by the layer recursion (Jacot et al. 2018, Prop. 1; arc-cosine
    expectations of Cho & Saul 2009); ``drop_derivative`` plants a bug."""
    sw2, sb2 = spec.sigma_w**2, spec.sigma_b**2
    k12 = sw2 * X1 @ X2.T / X1.shape[1] + sb2
    k11 = sw2 * np.sum(X1**2, 1) / X1.shape[1] + sb2
    k22 = sw2 * np.sum(X2**2, 1) / X2.shape[1] + sb2
    theta = k12
    for _ in range(spec.depth):
        norm = np.sqrt(np.outer(k11, k22))
        t = np.arccos(np.clip(k12 / norm, -1, 1))
        e_phi = norm * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)    # E[relu(u) relu(v)]
        e_dphi = (np.pi - t) / (2 * np.pi)                                    # E[relu'(u) relu'(v)]
        k12, k11, k22 = sw2 * e_phi + sb2, sw2 * k11 / 2 + sb2, sw2 * k22 / 2 + sb2
        theta = k12 + (0 if drop_derivative else sw2 * e_dphi * theta)
    return theta


X = np.random.default_rng(0).standard_normal((4, 3))
for name, kernel in [("correct", relu_ntk), ("derivative term dropped", lambda a, b: relu_ntk(a, b, True))]:
    result = nc.check_kernel(kernel, spec, X, kind="ntk", discrepancy=0.05, seed=0)
    print(f"{name}: {result}")
