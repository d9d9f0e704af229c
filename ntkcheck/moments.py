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

import functools
import itertools
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


def norm_ratio_bias(n: int, depth: int, activation: str, m: int) -> float:
    """Second-order bias of ``log(mean G^2 / mean(G)^2)`` over ``m`` networks under the
    exact law: ``E[log R_hat] - log R = ((mu_2 - 1) - (mu_4/mu_2^2 - 1)/2) / m + O(m^-2)``
    with ``mu_k = (E m^k)^L`` (Taylor expansion of each log to second order; the two sample
    means enter separate logs, so no covariance term).  It is of order ``SE^2`` per cell
    but does not shrink when many cells are pooled, so pooled tests subtract it."""
    mu2, mu4 = (multiplier_moment(n, k, activation) ** depth for k in (2, 4))
    return float(((mu2 - 1) - (mu4 / mu2**2 - 1) / 2) / m)


def _relu_joint_moment(n: int, p: int, r: int, q: int) -> float:
    """``E[m^p a^r b^q]`` of one ReLU layer's factors (see :func:`relu_ntk_moments`):
    ``m = (2/n) chi^2_K``, ``a = (2/n) 1{K >= 1}``, ``b = (2/n) chi^2_{K-1}`` (0 if
    K = 0), the two chi^2 independent given K ~ Binomial(n, 1/2)."""
    k = np.arange(n + 1, dtype=float)
    kb = np.maximum(k - 1, 0.0)                       # dof of the backward chi^2
    value = binom.pmf(np.arange(n + 1), n, 0.5) * (k >= 1 if r else 1.0)
    for j in range(p):
        value = value * (k + 2 * j)
    for j in range(q):
        value = value * (kb + 2 * j)
    return float((2.0 / n) ** (p + r + q) * np.sum(value))


# The layer map y_l = (m E_m + a E_a + b E_b) y_{l+1} on the state
# y = (PS_0, PS_2, Pt_0, Pt_2, P) (subscripts: coefficients of u^0 and u^2), see relu_ntk_moments.
_E = np.zeros((3, 5, 5))
_E[0][0, 0] = _E[0][1, 1] = _E[0][4, 4] = 1.0            # m: PS <- m PS, P <- m P
_E[1][1, 4] = _E[1][3, 4] = 1.0                          # a: PS_2, Pt_2 <- a P
_E[2][0, 2] = _E[2][1, 3] = _E[2][2, 2] = _E[2][3, 3] = 1.0   # b: PS, Pt <- b Pt


@functools.lru_cache(maxsize=64)     # a pure function of (n, order); cells share widths
def _layer_operator(n: int, order: int):
    """``E[M^{(x) order}]`` of one layer of width n, a sparse (5^order, 5^order) matrix."""
    from scipy import sparse

    moments = {c: _relu_joint_moment(n, *c) for c in itertools.product(range(order + 1), repeat=3)
               if sum(c) == order}
    out = sparse.csr_matrix((5**order, 5**order))
    for assign in itertools.product(range(3), repeat=order):
        op = sparse.csr_matrix(np.ones((1, 1)))
        for x in assign:
            op = sparse.kron(op, sparse.csr_matrix(_E[x]), format="csr")
        out = out + moments[tuple(assign.count(x) for x in range(3))] * op
    return out


def relu_ntk_moments(widths, order: int = 2) -> tuple[float, ...]:
    """``E[Theta(x,x)^k]``, k = 1..order, of a ReLU network, sigma_w^2 = 2, sigma_b = 0,
    NTK parameterization, hidden widths ``n_1..n_L``, in units of ``c_0^k`` with
    ``c_0 = 2 |x|^2 / d_in`` (exact at every width; *derived*, claims catalogue
    "ntk-finite-width").

    Derivation.  ``Theta = sum_{l=1}^{L+1} (2/n_{l-1}) |x^{l-1}|^2 |delta^l|^2`` with
    ``delta^l = df/dh^l`` (Jacot et al. 2018; Hanin & Nica 2019, eq. (9)).  Forward, as in
    the module docstring, ``|x^l|^2 = (2/n_{l-1}) |x^{l-1}|^2 chi^2_{K_l}``.  Backward,
    split ``W^l = W^l P + W^l (1 - P)`` with P the projection on ``x^{l-1}``: the second part
    is independent of the forward pass, and the component along ``x^{l-1}`` is ``f`` itself
    (ReLU without bias: ``f = <delta^l, h^l>``), so
    ``|delta^{l-1}|^2 = 1{K_{l-1} >= 1} (f^2/|x^{l-1}|^2 + (2/n_{l-1}) |delta^l|^2 B_{l-1})``
    with ``B ~ chi^2_{K-1}`` independent given K.  With ``f^2 = G u^2`` (u ~ N(0, 1) the
    readout's component along x^L, G the readout variance) this gives
    ``Theta / c_0 = PS_1 = alpha + beta u^2``, where from ``y_{L+1} = (1, 1, 1)`` on
    (PS, Pt, P):  ``P_l = m_l P_{l+1}``, ``(Pt)_l = a_l u^2 P_{l+1} + b_l (Pt)_{l+1}``,
    ``(PS)_l = m_l (PS)_{l+1} + (Pt)_l`` with independent layer factors
    ``m = (2/n) chi^2_K``, ``a = (2/n) 1{K >= 1}``, ``b = (2/n) B``.  The map is linear
    with independent random matrices, so ``E[y^{(x) k}]`` follows layer by layer exactly
    (``E[u^{2j}] = (2j - 1)!!``).  ``E[Theta] = (L + 1) c_0`` at every width.
    """
    widths = [int(n) for n in widths]
    if any(n < 1 for n in widths):
        raise ValueError(f"widths must be >= 1, got {widths}")
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    out = []
    y0 = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    for k in range(1, order + 1):
        ops = {n: _layer_operator(n, k) for n in set(widths)}
        Y = y0
        for _ in range(k - 1):
            Y = np.kron(Y, y0)
        for n in reversed(widths):
            Y = ops[n] @ Y
        Y = Y.reshape((5,) * k)
        # Theta^k = sum_j C(k, j) alpha^(k-j) beta^j u^(2j); alpha = y_0, beta = y_1
        out.append(sum(math.comb(k, j) * Y[(0,) * (k - j) + (1,) * j] * _double_factorial(2 * j - 1)
                       for j in range(k + 1)))
    return tuple(float(v) for v in out)


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


def relu_ntk_log_ratio_law(width: int, depth: int, m: int) -> tuple[float, float, float]:
    """For ``log R_hat = log(mean Theta^2 / mean(Theta)^2)`` over m networks (equal widths):
    the exact ``log R``, the delta-method standard error and the second-order bias, all
    from the exact moments (:func:`relu_ntk_moments`, order 4), as
    :func:`norm_ratio_law` / :func:`norm_ratio_bias` do for G."""
    mu = relu_ntk_moments([width] * depth, order=4)
    r2, r3, r4 = mu[1] / mu[0] ** 2, mu[2] / (mu[0] * mu[1]), mu[3] / mu[1] ** 2
    var = r4 - 4 * r3 + 4 * r2 - 1
    bias = ((r2 - 1) - (r4 - 1) / 2) / m
    return float(math.log(r2)), float(math.sqrt(max(var, 0.0) / m)), float(bias)


def relu_ntk_ratio(width: int, depth: int) -> float:
    """``E[Theta(x,x)^2] / E[Theta(x,x)]^2`` exactly (:func:`relu_ntk_moments`), equal widths."""
    first, second = relu_ntk_moments([width] * depth)
    return second / first**2


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
