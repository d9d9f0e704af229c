"""Moments shared by the claims at initialization: the conditional output variance, the
exact law of ReLU / linear layer norms, per-block rows and ratio-of-moments estimators.

Layer norms (*derived*, claims catalogue "relu-fourth-moment"): for a single input, ReLU
or identity, sigma_b = 0, the readout variance ``G^l = sigma_w^2 |phi(h^l)|^2 / n`` obeys
``G^l = c G^{l-1} m_l`` with independent multipliers ``m_l``: given ``h^l ~ N(0, G^{l-1} I_n)``,
``|relu(h^l)|^2 / G^{l-1}`` is chi^2 with K ~ Binomial(n, 1/2) degrees of freedom (the
positive units), so ``m = (2/n) chi^2_K`` (ReLU, c = sigma_w^2/2); for the identity
``m = chi^2_n / n`` (c = sigma_w^2).  Hence ``E[G^L^k] / E[G^L]^k = (E[m^k])^L`` exactly.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

from .spec import MLP

#: Activations whose layer multipliers have the closed-form law above.
NORM_LAWS = ("relu", "identity")


def readout_kernel(spec: MLP, post_grams: np.ndarray) -> np.ndarray:
    """E[f(x_i) f(x_j) | hidden layers] = alpha^2 (a^2 s_w^2 <x^L_i, x^L_j> + c^2 s_b^2), (M, N, N).

    For the readout ``f = alpha (a W x^L + c b)`` with independent Gaussian W, b: the
    conditional second moment of the outputs given the last hidden layer.  It has the
    same mean as ``f f^T`` (law of total expectation) with far less spread
    (Rao-Blackwell: the limit of averaging ``f f^T`` over infinitely many readouts).
    ``post_grams`` is ``InitSample.post_grams`` (M, L, N, N).  With d_out > 1 every
    output has this conditional second moment.
    """
    a, c, s_w, s_b = spec.layer_scales(1)[-1]
    gram = post_grams[:, -1] * spec.widths[-1]          # <x^L(x), x^L(x')>
    return spec.output_scale**2 * ((a * s_w) ** 2 * gram + (c * s_b) ** 2)


def readout_variance(spec: MLP, post_grams: np.ndarray) -> np.ndarray:
    """Var[f(x_i) | hidden layers], (M, N): the diagonal of :func:`readout_kernel`.

    Given the last hidden layer, f is Gaussian (its readout weights are independent
    Gaussians), so ``E[f^2] = E[G]`` and ``E[f^4] = 3 E[G^2]``: the moments of f follow
    from those of G with the readout noise integrated out (Rao-Blackwell).
    """
    if spec.d_out != 1:
        raise ValueError(f"readout_variance needs d_out = 1, got {spec.d_out}")
    return np.einsum("mii->mi", readout_kernel(spec, post_grams))


def multiplier_moment(n: int, k: int, activation: str) -> float:
    """E[m^k] of one layer's multiplier (module docstring): ``E[chi^2_K^k] =
    K (K+2) ... (K+2k-2)`` averaged over K ~ Bin(n, 1/2) (ReLU) or K = n (identity)."""
    if activation not in NORM_LAWS:
        raise ValueError(f"activation must be one of {NORM_LAWS}, got {activation!r}")
    if n < 1 or k < 0:
        raise ValueError(f"need width n >= 1 and moment order k >= 0, got n={n}, k={k}")
    dof = np.arange(n + 1, dtype=float)
    weight = binom.pmf(np.arange(n + 1), n, 0.5) if activation == "relu" else (dof == n).astype(float)
    rising = np.prod([dof + 2 * j for j in range(k)], axis=0) if k else np.ones_like(dof)
    scale = (2.0 if activation == "relu" else 1.0) / n
    return float(scale**k * np.sum(weight * rising))


def norm_ratio(n: int, depth: int, activation: str) -> float:
    """E[f^4] / (3 E[f^2]^2) = E[G^2]/E[G]^2 = (E m^2)^L: ``(1 + 5/n)^L`` (ReLU) and
    ``(1 + 2/n)^L`` (identity), exactly at every width (claims catalogue, *derived*)."""
    if activation not in NORM_LAWS:
        raise ValueError(f"activation must be one of {NORM_LAWS}, got {activation!r}")
    return (1.0 + (5.0 if activation == "relu" else 2.0) / n) ** depth


def norm_ratio_law(n: int, depth: int, activation: str) -> tuple[float, float]:
    """Under the exact law: the per-network variance of the delta-method linearization of
    ``log(mean G^2 / mean G^2)`` (so ``SE(log R_hat) = sqrt(v / M)``) and the skewness
    of ``G^2`` (the sample size needed for a normal sampling distribution).

    With ``mu_k = E[G^k] / E[G]^k = (E m^k)^L``: ``log R_hat ~ (Gbar2/mu_2) - 2 (Gbar/mu_1)``
    to first order, whose variance is ``mu_4/mu_2^2 - 4 mu_3/mu_2 + 4 mu_2 - 1``.
    """
    mu = [multiplier_moment(n, k, activation) ** depth for k in range(7)]
    var = mu[4] / mu[2] ** 2 - 4 * mu[3] / mu[2] + 4 * mu[2] - 1
    skew = (mu[6] - 3 * mu[4] * mu[2] + 2 * mu[2] ** 3) / (mu[4] - mu[2] ** 2) ** 1.5
    return float(var), float(skew)


def block_rows(values: dict[str, np.ndarray], block: int) -> list[dict]:
    """Rows of per-block means: for each name, each block of ``block`` consecutive
    networks and each column i of ``values[name]`` (M,) or (M, k): ``quantity`` = name,
    ``value`` = block mean, ``stderr`` = its standard error, ``n_networks`` = block size,
    ``block`` and (for 2-D values) ``i``.  Blocks of networks are i.i.d. units for a
    bootstrap; :func:`ntkcheck.claims.pool` recombines them exactly."""
    rows = []
    for name, x in values.items():
        x = np.asarray(x, dtype=float)
        cols = x[:, None] if x.ndim == 1 else x
        for b, start in enumerate(range(0, len(cols), block)):
            part = cols[start:start + block]
            mean = part.mean(axis=0)
            se = part.std(axis=0, ddof=1) / math.sqrt(len(part)) if len(part) > 1 else np.full_like(mean, np.nan)
            for i in range(cols.shape[1]):
                row = {"quantity": name, "value": float(mean[i]), "stderr": float(se[i]),
                       "n_networks": len(part), "block": b}
                if x.ndim == 2:
                    row["i"] = i
                rows.append(row)
    return rows


def block_array(df, quantities: list[str]) -> np.ndarray:
    """(B, Q) block means of ``quantities`` from the rows of one cell (one value per
    block and quantity; rows of several tasks are told apart by ``task``)."""
    wide = df.pivot_table(index=["task", "block"], columns="quantity", values="value", aggfunc="first")
    return wide[quantities].to_numpy(float)


def log_ratio(blocks: np.ndarray) -> tuple[float, float]:
    """``log(E[X^2] / E[X]^2)`` from (B, 2) equal-size block means of (X, X^2), and its
    delta-method standard error from the covariance of the block means."""
    b = np.asarray(blocks, dtype=float)
    m1, m2 = b.mean(axis=0)
    grad = np.array([-2.0 / m1, 1.0 / m2])
    cov = np.cov(b.T) / len(b)
    return float(math.log(m2 / m1**2)), float(math.sqrt(max(grad @ cov @ grad, 0.0)))
