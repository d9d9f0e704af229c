"""The 1/n effective theory of an MLP at initialization: the leading finite-width corrections.

At infinite width the preactivations of every layer are a Gaussian process with kernel K
(:mod:`ntkcheck.kernels`) and the empirical NTK is the constant Theta.  At width n the
leading corrections are of order 1/n; this module computes them for any activation, any
depth and several inputs (Roberts, Yaida & Hanin 2022, "The Principles of Deep Learning
Theory" (PDLT), ch. 4 and 8; Yaida 2020, "Non-Gaussian processes and neural networks at
finite widths").

Conventions (PDLT ch. 2, 7 and 8) and their map to :class:`ntkcheck.MLP`.  Layer l + 1
(l = 0..L; l = 0 is the input, l = L + 1 the output f) is ``z^{l+1} = b + W sigma(z^l)``
with fan-in n_l, ``Var W = C_W / n_l``, ``Var b = C_b``, and the NTK is the sum over
parameters weighted by learning rates ``lambda_W / n_l`` (weights) and ``lambda_b``
(biases).  For the layer ``h = a W x + c b``, ``W ~ N(0, s_w^2)``, ``b ~ N(0, s_b^2)`` of
:meth:`ntkcheck.MLP.layer_scales` this is

    C_W = a^2 s_w^2 n_l,   C_b = c^2 s_b^2,   lambda_W = a^2 n_l,   lambda_b = c^2,

times ``output_scale^2`` for the readout (f = alpha h^{L+1}).  In the NTK parameterization
C_W = lambda_W = sigma_w^2 and C_b = lambda_b = sigma_b^2 (Jacot et al. 2018); in the
standard one lambda_W = n_l (the NTK of plain gradient descent on ``W ~ N(0, sigma_w^2/n)``);
in the mean-field one the readout has C_W = lambda_W = sigma_w^2 / n_L.  The input layer
(l = 0) reads ``sigma(z^0) = x`` with n_0 = d.  The recursions below hold for any widths
n_1..n_L; r_l = n_l / n_{l-1} is their ratio.

Tensors (PDLT §4.2-4.3 and ch. 8).  For neurons i and inputs alpha, at layer l + 1:

    E[z_{i1 a1} z_{i2 a2} z_{i3 a3} z_{i4 a4}]_connected
        = (1/n_l) [d_{i1i2} d_{i3i4} V_{(a1a2)(a3a4)} + d_{i1i3} d_{i2i4} V_{(a1a3)(a2a4)}
                   + d_{i1i4} d_{i2i3} V_{(a1a4)(a2a3)}],
    E[z_{i1 a1} z_{i2 a2}] = d_{i1i2} (K_{a1a2} + K1_{a1a2} / n_l),
    Cov(H_{i1i2; a1a2}, H_{i3i4; a3a4})
        = (1/n_l) [d_{i1i2} d_{i3i4} A_{(a1a2)(a3a4)} + d_{i1i3} d_{i2i4} B_{a1a2a3a4}
                   + d_{i1i4} d_{i2i3} B_{a1a2a4a3}],
    E[(H_{i1i2; a1a2} - E H) z_{i3 a3} z_{i4 a4}] = (1/n_l) [d_{i1i2} d_{i3i4} D_{(a1a2)(a3a4)} + ...],

with H the empirical NTK of the layer's preactivations (its mean is d_{i1i2} Theta_{a1a2}).
``B_{a1a2a3a4}`` is the coefficient of d_{i1i3} d_{i2i4} (PDLT writes it with its indices in
another order).  V = A = B = D = K1 = 0 at layer 1: z^1 is linear in Gaussian weights with a
fixed input, so it is exactly Gaussian and its NTK is deterministic.

Derivation (the conditioning argument of PDLT §4.1-4.3 and §8.1-8.2).  Given layer l, the
weights and biases of layer l + 1 are fresh Gaussians, so ``z^{l+1}`` is Gaussian with
covariance ``G_hat = C_b + (C_W / n_l) sum_j sigma_j sigma_j`` (sigma_j = sigma(z^l_j) on
the inputs; a sum over the n_l neurons of layer l) and, writing W = sqrt(C_W/n_l) w,

    H^{l+1}_{i1i2} = d_{i1i2} Lambda_hat + (C_W/n_l) sum_{j1j2} w_{i1j1} w_{i2j2} Q_{j1j2},
    Lambda_hat = lambda_b + (lambda_W/n_l) sum_j sigma_j sigma_j,
    Q_{j1j2; a1a2} = sigma'_{j1 a1} sigma'_{j2 a2} H^l_{j1j2; a1a2}.

Wick's theorem over w and b, then the law of total covariance, give the exact identities

    V^{l+1}_{(12)(34)} = n_l Cov(G_hat_12, G_hat_34),
    A^{l+1}_{(12)(34)} = n_l Cov(M_hat_12, M_hat_34),   M_hat = E[H^{l+1}_{ii} | layer l],
    D^{l+1}_{(12)(34)} = n_l Cov(M_hat_12, G_hat_34),
    B^{l+1}_{1234}     = n_l (C_W/n_l)^2 E[sum_{j1j2} Q_{j1j2;12} Q_{j1j2;34}],

with ``M_hat_12 = (1/n_l) sum_j m_j``, ``m_12 = lambda_b + lambda_W sigma_1 sigma_2 +
C_W sigma'_1 sigma'_2 H^l_{jj;12}``.  Each covariance of a neuron sum splits into the
n_l same-neuron terms (Gaussian expectations under K^l, written <.>, at leading order) and
the n_l (n_l - 1) cross-neuron terms, which are O(1/n_{l-1}): by the cumulant expansion of
the nearly Gaussian law of layer l, for neurons j != k

    Cov(F(z_j), F'(z_k)) = (1/(4 n_{l-1})) sum V_{(b1b2)(b3b4)} <d_b1 d_b2 F> <d_b3 d_b4 F'>,
    Cov(F(z_j), H_{kk; 34}) = (1/(2 n_{l-1})) sum D_{(34)(b1b2)} <d_b1 d_b2 F>,
    Cov(H_{jj; 12}, H_{kk; 34}) = A_{(12)(34)} / n_{l-1},

and the off-diagonal NTK entries obey E[H_{j1j2;12} H_{j1j2;34}] = B_{1234} / n_{l-1}.  With
``g_12 = C_W sigma_1 sigma_2`` and ``m_12 = lambda_W sigma_1 sigma_2 + C_W Theta_12
sigma'_1 sigma'_2`` (the per-neuron summands at H = Theta; Dd = <sigma'_1 sigma'_2>):

    V' = <g g> - <g><g> + (r/4) sum V <dd g_12> <dd g_34>                       (PDLT §4.2-4.3)
    D' = <m g> - <m><g> + r [(1/4) sum V <dd m_12> <dd g_34>
                             + (C_W/2) Dd_12 sum D_{(12)(cd)} <dd_cd g_34>]          (PDLT ch. 8)
    A' = <m m> - <m><m> + r [(1/4) sum V <dd m_12> <dd m_34>
                             + (C_W/2) (Dd_12 sum D_{(12)(cd)} <dd_cd m_34> + (12 <-> 34))
                             + C_W^2 Dd_12 Dd_34 A_{(12)(34)}]                       (PDLT ch. 8)
    B'_1234 = C_W^2 [<sigma'_1 sigma'_2 sigma'_3 sigma'_4> Theta_12 Theta_34
                     + r <sigma'_1 sigma'_3> <sigma'_2 sigma'_4> B_1234]             (PDLT ch. 8)

(primes: layer l + 1; unprimed tensors and r = r_l: layer l).  Sources, by the section titles of
arXiv:2106.10165v2: the second layer's vertex (V' at l = 1, the local term alone) is §4.2 ("Second
Layer: Genesis of Non-Gaussianity"), eqs. (4.42)-(4.43) in that version's numbering (the same
index order as here), and its two-point function, hence K1' = 0 at l = 1, eq. (4.41); V' at deeper
layers §4.3 ("Deeper Layers: Accumulation of Non-Gaussianity"), its single-input form §5.4
("Fluctuations"); the NLO metric K1 §4.5 ("Subleading Corrections"); A, B and D ch. 8.  Only those
three equations have been compared with the book's (as quoted with their numbers in a public
formalization; docs/claims.md, four-point-vertex); no other equation number is cited: the
recursions are derived here, in this module's index order, and checked against exact finite-width
laws instead (tests/test_effective.py).  The mean metric follows from the same expansion applied
to E[sigma_1 sigma_2] (PDLT §4.5):

    K1' = r C_W [(1/2) sum K1_{ab} <d_a d_b sigma_1 sigma_2>
                 + (1/8) sum V_{(ab)(cd)} <d_a d_b d_c d_d sigma_1 sigma_2>].

At the output (layer L + 1, one output unit, all four neurons equal):

    E[f_a f_b f_c f_d]_connected = (1/n_L) (V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc)),
    Cov(Theta_hat_ab, Theta_hat_cd) = (1/n_L) (A_(ab)(cd) + B_abcd + B_abdc),
    E[f_a f_b] = K_ab + K1_ab / n_L,

each up to O(1/n^2).  For a one-hidden-layer network the first two are exact (the output is a
sum of n_1 i.i.d. terms).

Gaussian expectations.  The derivative terms <d_a d_b F> of F = sigma(z_1) sigma(z_2) (or
sigma' sigma') involve only the pair's two inputs; they are computed by Gaussian
integration by parts, ``<d_a d_b F> = <F (y_a y_b - P_ab)>`` with P the inverse of the pair's
2 x 2 covariance and y = P z (and the fourth-order Hermite polynomial for K1), except
``<d_1 d_1 sigma_1 sigma_2> = <z_1 sigma'_1 sigma_2>/K_11 - (K_12/K_11) <sigma'_1 sigma'_2>``
(Stein's lemma once, better conditioned).  For a single input (a = b) they reduce to
one-dimensional expectations.  All expectations are computed by quadrature in the sequential
(Cholesky) coordinates z_k = sum_j L_kj w_j of the <= 4 distinct inputs of a quartet: each
w_k is integrated by Gauss-Legendre on panels of [-9, 9] with a panel break at the kink
w_k = -(sum_{j<k} L_kj w_j) / L_kk of sigma(z_k) (the Gaussian's tail beyond 9 has mass 2e-19),
so the rule converges geometrically for activations smooth away from 0 (relu, leaky relu,
abs, identity: to ~1e-12 relative; erf, tanh, gelu, ...: geometrically, more slowly when a
variance is large and the activation varies on a scale much shorter than the Gaussian's).
Every prediction is returned with an error estimate: its difference to the same recursion
with a coarser rule (:data:`CHECK_RULES`), which bounds the returned rule's error as the rules
converge geometrically.

Cost: per hidden layer, each four-point entry from the integral over exactly its own distinct
inputs (N + C(N, 2) + C(N, 3) + C(N, 4) integrals of dimension 1 to 4, the lower dimensions
with finer rules), one more integral per input and per pair for the derivative terms, and
O(N^4) tensor operations: O(L N^4) in all.  Inputs must be nonzero when C_b = 0 (a zero
variance has no derivatives), and two distinct inputs must not have perfectly correlated
preactivations (parallel inputs without bias): the derivative terms of kinked activations
diverge there.  Duplicated rows are computed once.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .kernels import kernel_states
from .spec import MLP

#: Quadrature rules (panels, Gauss-Legendre order) per dimension, by the number of
#: dimensions (distinct inputs) of the integral; sized so a rule has <= ~1.3 M nodes.
RULES = {1: (12, 16), 2: (12, 12), 3: (12, 9), 4: (8, 6)}
#: The coarser rules whose difference to :data:`RULES` is the stated error.
CHECK_RULES = {1: (12, 12), 2: (12, 9), 3: (12, 7), 4: (8, 5)}
#: Nodes per chunk of a quadrature (bounds memory to ~100 MB).
_CHUNK = 1 << 19
#: Half-width of the integration range in standard-normal units (tail mass 2e-19).
_REACH = 9.0
#: Conditional variances below this fraction of the variance count as zero (a dependent input).
_DEGENERATE = 1e-12


@dataclass(frozen=True)
class LayerTensors:
    """The effective-theory tensors of every layer l = 1..L+1 (axis 0; the last is the output).

    ``nngp``, ``ntk``: K and Theta (L+1, N, N); ``vertex``: V, ``ntk_a``: A, ``ntk_b``: B,
    ``ntk_d``: D (L+1, N, N, N, N); ``nlo_metric``: K1 (L+1, N, N), in the normalization of
    the module docstring (layer l + 1's tensors divided by n_l give the 1/n terms).
    ``widths``: (n_1, ..., n_L).
    """

    widths: tuple[int, ...]
    nngp: np.ndarray
    ntk: np.ndarray
    vertex: np.ndarray
    ntk_a: np.ndarray
    ntk_b: np.ndarray
    ntk_d: np.ndarray
    nlo_metric: np.ndarray

    def output_cumulant4(self) -> np.ndarray:
        """E[f_a f_b f_c f_d]_connected = (V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc)) / n_L (PDLT §4.3)."""
        V = self.vertex[-1]
        return (V + V.transpose(0, 2, 1, 3) + V.transpose(0, 2, 3, 1)) / self.widths[-1]

    def ntk_covariance(self) -> np.ndarray:
        """Cov(Theta_hat_ab, Theta_hat_cd) = (A_(ab)(cd) + B_abcd + B_abdc) / n_L (PDLT ch. 8)."""
        return (self.ntk_a[-1] + self.ntk_b[-1] + self.ntk_b[-1].transpose(0, 1, 3, 2)) / self.widths[-1]


@dataclass(frozen=True)
class Prediction:
    """A predicted array and its quadrature error estimate (absolute, same shape)."""

    value: np.ndarray
    error: np.ndarray


def four_point_vertex(spec: MLP, X) -> Prediction:
    """V^l of every layer l = 1..L+1, (L+1, N, N, N, N) (module docstring; PDLT §4.3)."""
    return _predict(spec, X, lambda t: t.vertex)


def output_cumulant4(spec: MLP, X) -> Prediction:
    """E[f_a f_b f_c f_d]_connected = (V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc)) / n_L, (N, N, N, N),
    at the spec's width to leading order (PDLT §4.3); for one output unit (each has this law)."""
    return _predict(spec, X, LayerTensors.output_cumulant4)


def ntk_covariance(spec: MLP, X) -> Prediction:
    """Cov(Theta_hat_ab, Theta_hat_cd) = (A_(ab)(cd) + B_abcd + B_abdc) / n_L, (N, N, N, N), at the
    spec's width to leading order (PDLT ch. 8); Theta_hat of one output unit."""
    return _predict(spec, X, LayerTensors.ntk_covariance)


def nlo_metric(spec: MLP, X) -> Prediction:
    """K1^l of every layer l = 1..L+1, (L+1, N, N): E[z_a z_b] = K_ab + K1_ab / n_{l-1} (PDLT §4.5);
    the output's is ``[-1]``, so E[f_a f_b] = K_ab + K1_ab / n_L to leading order."""
    return _predict(spec, X, lambda t: t.nlo_metric)


def local_vertex(spec: MLP, X) -> Prediction:
    """The output's vertex without its propagation term, C_W^2 (<s s s s> - <s s><s s>) under the
    last hidden layer's kernel, (N, N, N, N): the value if layer L were exactly Gaussian (a
    negative control; it equals V^{L+1} for one hidden layer)."""
    def local(rules):
        X_, inverse, states = _unique_states(spec, X)
        C_W = layer_scales(spec, X_.shape[1])[-1][0]
        g = _expectations(spec.act, states[-2].nngp, rules, spec.depth)
        return (C_W**2 * (g.ssss - np.multiply.outer(g.ss, g.ss)))[np.ix_(inverse, inverse, inverse, inverse)]
    value = local(RULES)
    return Prediction(value, np.abs(value - local(CHECK_RULES)))


def _predict(spec, X, pick) -> Prediction:
    value = pick(layer_tensors(spec, X))
    check = pick(layer_tensors(spec, X, CHECK_RULES))
    return Prediction(value, np.abs(value - check))


def layer_scales(spec: MLP, d_in: int) -> list[tuple[float, float, float, float]]:
    """(C_W, C_b, lambda_W, lambda_b) per dense layer 1..L+1 (module docstring)."""
    fans = (d_in,) + spec.widths
    out = []
    for (a, c, s_w, s_b), fan in zip(spec.layer_scales(d_in), fans):
        out.append(((a * s_w) ** 2 * fan, (c * s_b) ** 2, a * a * fan, c * c))
    alpha2 = spec.output_scale**2
    out[-1] = tuple(alpha2 * v for v in out[-1])
    return out


def layer_tensors(spec: MLP, X, rules: dict | None = None) -> LayerTensors:
    """All layers' tensors by the recursions of the module docstring, with quadrature ``rules``
    (default :data:`RULES`).  Duplicated rows of X are computed once."""
    unique, inverse, states = _unique_states(spec, X)
    scales = layer_scales(spec, unique.shape[1])
    rules = RULES if rules is None else rules
    n, L = len(unique), spec.depth
    zero4 = np.zeros((n,) * 4)
    V, A, B, D, K1 = zero4, zero4, zero4, zero4, np.zeros((n, n))
    out = {"vertex": [V], "ntk_a": [A], "ntk_b": [B], "ntk_d": [D], "nlo_metric": [K1]}
    for l in range(1, L + 1):
        C_W, _, lam_W, _ = scales[l]
        K, H = states[l - 1].nngp, states[l - 1].ntk
        r = spec.widths[l - 1] / spec.widths[l - 2] if l >= 2 else 0.0   # layer 1's tensors vanish
        g = _expectations(spec.act, K, rules, l)
        # per-neuron summands g = C_W s s and m = lambda_W s s + C_W Theta s' s' (module docstring)
        loc_ss = g.ssss - np.multiply.outer(g.ss, g.ss)
        loc_ds = g.ddss - np.multiply.outer(g.dd, g.ss)
        loc_dd = g.dddd - np.multiply.outer(g.dd, g.dd)
        H12, H34 = H[:, :, None, None], H[None, None]
        cov_gg = C_W**2 * loc_ss
        cov_mg = lam_W * C_W * loc_ss + C_W**2 * H12 * loc_ds
        cov_mm = (lam_W**2 * loc_ss + lam_W * C_W * (H12 * loc_ds + H34 * loc_ds.transpose(2, 3, 0, 1))
                  + C_W**2 * H12 * H34 * loc_dd)
        dg = C_W * g.d2_ss                                     # <dd g_12>, (N, N, 2, 2)
        dm = lam_W * g.d2_ss + C_W * H12 * g.d2_dd              # <dd m_12>
        Dd12, Dd34 = g.dd[:, :, None, None], g.dd[None, None]
        D_dm = _apply_right(dm, D)                              # sum_cd D_(12)(cd) <d_c d_d m_34>
        V_new = cov_gg + r / 4 * _sandwich(dg, dg, V)
        D_new = cov_mg + r * (_sandwich(dm, dg, V) / 4 + C_W / 2 * Dd12 * _apply_right(dg, D))
        A_new = cov_mm + r * (_sandwich(dm, dm, V) / 4
                              + C_W / 2 * (Dd12 * D_dm + Dd34 * D_dm.transpose(2, 3, 0, 1))
                              + C_W**2 * Dd12 * Dd34 * A)
        B_new = C_W**2 * (g.dddd * H12 * H34
                          + r * np.einsum("ac,bd->abcd", g.dd, g.dd) * B)
        K1 = r * C_W * (_apply(g.d2_ss, K1) / 2 + _apply4(g.d4_ss, V) / 8)
        V, A, B, D = V_new, A_new, B_new, D_new
        for key, T in zip(("vertex", "ntk_a", "ntk_b", "ntk_d", "nlo_metric"), (V, A, B, D, K1)):
            out[key].append(T)
    expand4 = np.ix_(inverse, inverse, inverse, inverse)
    expand2 = np.ix_(inverse, inverse)
    return LayerTensors(
        widths=spec.widths,
        nngp=np.stack([s.nngp[expand2] for s in states]), ntk=np.stack([s.ntk[expand2] for s in states]),
        **{k: np.stack([T[expand4 if T.ndim == 4 else expand2] for T in v]) for k, v in out.items()})


def _unique_states(spec, X):
    """(distinct rows of X, the index of each row among them, their kernel states per layer)."""
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be an MLP, got {type(spec).__name__}")
    X = spec.check_inputs(X, names=("X", "X2"))[0]
    unique, inverse = np.unique(X, axis=0, return_inverse=True)
    return unique, inverse.ravel(), kernel_states(spec, unique)


# --- operators of the derivative terms ------------------------------------------------

def _pair_index(n: int) -> np.ndarray:
    """(N, N, 2): the inputs (i, j) of each pair."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.stack([i, j], axis=-1)


def _apply(T2: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Y[i, j, ...] = sum_{a, b in the pair (i, j)} <d_a d_b F_ij> X[a, b, ...] with T2 (N, N, 2, 2)."""
    p = _pair_index(len(T2))
    gathered = X[p[:, :, :, None], p[:, :, None, :]]              # (N, N, 2, 2, ...)
    return np.einsum("ijab,ijab...->ij...", T2, gathered)


def _apply_right(T2: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Y[a1, a2, i, j] = sum_{c, d} <d_c d_d F_ij> X[a1, a2, c, d]."""
    return np.moveaxis(_apply(T2, np.moveaxis(X, (2, 3), (0, 1))), (0, 1), (2, 3))


def _sandwich(left: np.ndarray, right: np.ndarray, V: np.ndarray) -> np.ndarray:
    """sum V_{(ab)(cd)} <d_a d_b F_12> <d_c d_d F'_34>, (N, N, N, N)."""
    return _apply_right(right, _apply(left, V))


def _apply4(T4: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Y[i, j] = sum_{a, b, c, d in (i, j)} <d_a d_b d_c d_d F_ij> V[a, b, c, d], T4 (N, N, 2, 2, 2, 2)."""
    p = _pair_index(len(T4))
    idx = [p[:, :, :, None, None, None], p[:, :, None, :, None, None],
           p[:, :, None, None, :, None], p[:, :, None, None, None, :]]
    return np.einsum("ijabcd,ijabcd->ij", T4, V[tuple(idx)])


# --- Gaussian expectations -------------------------------------------------------------

@dataclass(frozen=True)
class _Expectations:
    """Under N(0, K) of one layer, with s = sigma(z), d = sigma'(z): ``ss``, ``dd`` (N, N);
    ``ssss``, ``ddss`` (d on the first pair), ``dddd`` (N, N, N, N); the derivative terms
    ``d2_ss``, ``d2_dd`` (N, N, 2, 2) and ``d4_ss`` (N, N, 2, 2, 2, 2) over each pair's inputs
    (a single input's one-dimensional derivative in entry [0, 0] or [0, 0, 0, 0])."""

    ss: np.ndarray
    dd: np.ndarray
    ssss: np.ndarray
    ddss: np.ndarray
    dddd: np.ndarray
    d2_ss: np.ndarray
    d2_dd: np.ndarray
    d4_ss: np.ndarray


def _expectations(act, K: np.ndarray, rules: dict, layer: int) -> _Expectations:
    """The Gaussian expectations of one layer under its kernel K (N, N); ``layer`` names it in errors."""
    n = len(K)
    diag = np.diag(K)
    if np.any(diag <= 0):
        raise ValueError(f"X: an input has zero preactivation variance at layer {layer} (a zero row "
                         "without bias); the 1/n terms need nonzero inputs")
    ss, dd = np.zeros((n, n)), np.zeros((n, n))
    quads = [np.zeros((n,) * 4) for _ in range(3)]
    # each entry from the integral over exactly its own distinct inputs (lowest dimension, finest rule)
    for size in range(1, min(n, 4) + 1):
        for subset in itertools.combinations(range(n), size):
            s2, d2, q = _four_point(act, K[np.ix_(subset, subset)], rules)
            for full, part in zip([ss, dd] + quads, [s2, d2] + q):
                _fill(full, subset, part)
    d2_ss, d2_dd, d4_ss = np.zeros((n, n, 2, 2)), np.zeros((n, n, 2, 2)), np.zeros((n, n) + (2,) * 4)
    for i in range(n):
        d2_ss[i, i, 0, 0], d2_dd[i, i, 0, 0], d4_ss[i, i, 0, 0, 0, 0] = _single_derivatives(act, K[i, i], rules)
        for j in range(i + 1, n):
            pair = K[np.ix_((i, j), (i, j))]
            if pair[1, 1] - pair[0, 1] ** 2 / pair[0, 0] <= _DEGENERATE * pair[1, 1]:
                raise ValueError(f"X: rows {i} and {j} have perfectly correlated preactivations at layer "
                                 f"{layer} (parallel inputs without bias); the 1/n terms need distinct directions")
            t_ss, t_dd, t4 = _pair_derivatives(act, pair, rules)
            d2_ss[i, j], d2_dd[i, j], d4_ss[i, j] = t_ss, t_dd, t4
            # the pair (j, i) is the same pair with its inputs swapped
            d2_ss[j, i], d2_dd[j, i] = t_ss[::-1, ::-1], t_dd[::-1, ::-1]
            d4_ss[j, i] = t4[::-1, ::-1, ::-1, ::-1]
    return _Expectations(ss, dd, *quads, d2_ss, d2_dd, d4_ss)


def _fill(full: np.ndarray, subset: tuple[int, ...], part: np.ndarray) -> None:
    """Copy the entries of ``part`` (over the inputs ``subset``) that use every input of the subset."""
    local = np.array(list(np.ndindex(part.shape)))
    keep = np.array([len(set(row)) == len(subset) for row in local], dtype=bool)
    where = np.asarray(subset)[local[keep]]
    full[tuple(where.T)] = part[tuple(local[keep].T)]


def _four_point(act, K: np.ndarray, rules: dict):
    """<s_a s_b>, <d_a d_b> and <s s s s>, <d d s s>, <d d d d> over the inputs of K (<= 4)."""
    m = len(K)
    acc = [np.zeros(m * m), np.zeros(m * m), np.zeros((m * m, m * m)), np.zeros((m * m, m * m)),
           np.zeros((m * m, m * m))]
    for z, w in _gaussian_nodes(K, rules):
        s, d = act.fn(z), act.deriv(z)
        ps = (s[:, :, None] * s[:, None, :]).reshape(len(w), -1)
        pd = (d[:, :, None] * d[:, None, :]).reshape(len(w), -1)
        wps, wpd = w[:, None] * ps, w[:, None] * pd
        acc[0] += w @ ps
        acc[1] += w @ pd
        acc[2] += ps.T @ wps
        acc[3] += pd.T @ wps
        acc[4] += pd.T @ wpd
    return acc[0].reshape(m, m), acc[1].reshape(m, m), [a.reshape((m,) * 4) for a in acc[2:]]


def _single_derivatives(act, k: float, rules: dict) -> tuple[float, float, float]:
    """One input, z ~ N(0, k): <(s^2)''> = 2 <z s s'>/k, <(d^2)''> = <d^2 (z^2/k^2 - 1/k)> and
    <(s^2)''''> = <s^2 (z^4/k^4 - 6 z^2/k^3 + 3/k^2)> (Gaussian integration by parts)."""
    out = np.zeros(3)
    for z, w in _gaussian_nodes(np.array([[k]]), rules):
        z = z[:, 0]
        s, d = act.fn(z), act.deriv(z)
        y = z / k
        out += [w @ (2 * y * s * d), w @ (d * d * (y * y - 1 / k)),
                w @ (s * s * (y**4 - 6 * y * y / k + 3 / k**2))]
    return tuple(out)


def _pair_derivatives(act, C: np.ndarray, rules: dict):
    """For the pair (z_1, z_2) ~ N(0, C): <d_a d_b s_1 s_2>, <d_a d_b d_1 d_2> (2, 2) and
    <d_a d_b d_c d_d s_1 s_2> (2, 2, 2, 2) (module docstring; the fourth-order Hermite
    polynomial is y_a y_b y_c y_d - (6 terms P_ab y_c y_d) + (3 terms P_ab P_cd))."""
    P = np.linalg.inv(C)
    m0, m2, m4 = 0.0, np.zeros((2, 2)), np.zeros((2,) * 4)      # <s s>, <s s y y>, <s s y y y y>
    d0, d2 = 0.0, np.zeros((2, 2))                              # <d d>, <d d y y>
    zsd = np.zeros(2)                                           # <z_a s'_a s_b>, b != a
    for z, w in _gaussian_nodes(C, rules):
        s, d = act.fn(z), act.deriv(z)
        y = z @ P
        fs, fd = w * s[:, 0] * s[:, 1], w * d[:, 0] * d[:, 1]
        m0, d0 = m0 + fs.sum(), d0 + fd.sum()
        m2 += np.einsum("q,qa,qb->ab", fs, y, y)
        d2 += np.einsum("q,qa,qb->ab", fd, y, y)
        m4 += np.einsum("q,qa,qb,qc,qd->abcd", fs, y, y, y, y, optimize=True)
        zsd += [w @ (z[:, 0] * d[:, 0] * s[:, 1]), w @ (z[:, 1] * d[:, 1] * s[:, 0])]
    t_dd = d2 - d0 * P
    t_ss = np.full((2, 2), d0)                  # <d_1 d_2 s_1 s_2> = <s'_1 s'_2>
    t_ss[0, 0] = zsd[0] / C[0, 0] - C[0, 1] / C[0, 0] * d0
    t_ss[1, 1] = zsd[1] / C[1, 1] - C[0, 1] / C[1, 1] * d0
    pm = np.einsum("ab,cd->abcd", P, m2)
    pp = np.einsum("ab,cd->abcd", P, P)
    t4 = (m4 - (pm + pm.transpose(0, 2, 1, 3) + pm.transpose(0, 2, 3, 1) + pm.transpose(2, 3, 0, 1)
                + pm.transpose(2, 0, 3, 1) + pm.transpose(2, 0, 1, 3))
          + m0 * (pp + pp.transpose(0, 2, 1, 3) + pp.transpose(0, 2, 3, 1)))
    return t_ss, t_dd, t4


def _panel_rule(centre: np.ndarray, panels: int, order: int):
    """Nodes and weights (..., panels * order) of E[g(w)], w ~ N(0, 1), by Gauss-Legendre on
    panels of [-9, 9] with a break at ``centre`` (per leading entry): exact for polynomials
    of degree < 2 order times the density on each panel, so a kink of g at ``centre`` costs
    no accuracy."""
    t, wt = np.polynomial.legendre.leggauss(order)
    c = np.clip(centre, -_REACH + 1e-3, _REACH - 1e-3)[..., None]
    left_panels = np.clip(np.rint(panels * (c + _REACH) / (2 * _REACH)), 1, panels - 1)
    k = np.arange(panels)
    h_left, h_right = (c + _REACH) / left_panels, (_REACH - c) / (panels - left_panels)
    left = k < left_panels
    start = np.where(left, -_REACH + k * h_left, c + (k - left_panels) * h_right)
    h = np.where(left, h_left, h_right)[..., None]
    x = (start[..., None] + h / 2) + h / 2 * t
    w = h / 2 * wt * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return x.reshape(x.shape[:-2] + (-1,)), w.reshape(x.shape[:-2] + (-1,))


def _cholesky(K: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Lower factor L (K = L L^T) and the indices of its nonzero columns: an input whose
    conditional variance given the previous ones vanishes adds no dimension."""
    m = len(K)
    L = np.zeros((m, m))
    cols = []
    for k in range(m):
        v = K[k, k] - L[k, :k] @ L[k, :k]
        if v <= _DEGENERATE * K[k, k]:
            continue
        L[k, k] = math.sqrt(v)
        L[k + 1:, k] = (K[k + 1:, k] - L[k + 1:, :k] @ L[k, :k]) / L[k, k]
        cols.append(k)
    return L, cols


def _gaussian_nodes(K: np.ndarray, rules: dict):
    """Yield chunks (z (Q, m), weights (Q,)) of a quadrature of N(0, K) (module docstring):
    sequential coordinates w_k, each with a panel break at the kink of sigma(z_k)."""
    L, cols = _cholesky(K)
    panels, order = rules[max(len(cols), 1)]
    if not cols:
        yield np.zeros((1, len(K))), np.ones(1)
        return
    x1, w1 = _panel_rule(np.zeros(()), panels, order)
    per_outer = (panels * order) ** (len(cols) - 1)
    step = max(1, _CHUNK // per_outer)
    for start in range(0, x1.size, step):
        W, wts = x1[start:start + step, None], w1[start:start + step]
        for pos, k in enumerate(cols[1:], 1):
            mean = W @ L[k, cols[:pos]]
            x, wk = _panel_rule(-mean / L[k, k], panels, order)
            q = x.shape[-1]
            W = np.concatenate([np.repeat(W, q, axis=0), x.reshape(-1, 1)], axis=1)
            wts = (wts[:, None] * wk).ravel()
        yield W @ L[:, cols].T, wts
