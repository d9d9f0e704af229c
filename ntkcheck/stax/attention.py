"""Attention: ``GlobalSelfAttention``, its kernel step and its finite networks.

Sources: Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention: NNGP and NTK for deep
attention networks" (ICML; arXiv:2006.10540), sec. 3: the d^-1 ("linear") scaling with tied query
and key weights, under which the attention weights converge to a function of the input
covariance, and the kernels of d^-1/2 identity attention; Novak et al. 2020, "Neural Tangents"
(ICLR), ``stax.GlobalSelfAttention``, whose arguments, defaults and finite-network scalings this
layer takes.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..states import SpatialState
from .layer import Layer, _check_positive_int, _pairs_back, _pairs_last, _single_shape
from .linear import Dense, _affine_backward, _affine_forward, _affine_ntk, _AffineParams, draw_affine

#: The attention mechanisms of neural-tangents' ``AttentionMechanism``.
MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")


@dataclass(frozen=True)
class GlobalSelfAttention(Layer):
    """Multi-head scaled dot-product self-attention over all positions, as neural-tangents'
    ``stax.GlobalSelfAttention`` (no positional embeddings, no masks).  Per head h, on an input
    x (positions P, channels C), NTK parameterization with N(0, 1) weights:
    ``A_h = mech(W_query_std W_key_std / (C d^e) (x W_Q^h)(x W_K^h)^T)`` (``n_chan_key`` = d;
    softmax over the attended position), ``y = W_out_std W_value_std / sqrt(n_heads
    n_chan_val C) concat_h(A_h x W_V^h) W_O + b_std b``.  ``linear_scaling=True``: e = 1 and
    the query weights are the key weights (W_Q = W_K); ``False``: e = 1/2 and independent
    query weights.

    Kernel step (the width and the key/value channels to infinity; with 1/sqrt scaling the
    output is a Gaussian process only as the heads grow too, Hron et al. 2020), with K, Theta
    the input's NNGP and NTK over position pairs, sigma_OV = W_out_std W_value_std and
    sigma_QK = W_query_std W_key_std:
    linear scaling, any mechanism: ``G(x) = mech(sigma_QK K(x, x))`` per input (softmax over
    the second position), ``K' = sigma_OV^2 G(x) K G(x')^T + b_std^2``, ``Theta' = sigma_OV^2
    G(x) (Theta + 2 K) G(x')^T + b_std^2`` (Hron et al. 2020, sec. 3, and their NTK: the
    query/key weights' share vanishes; value and output weights give 2 K);
    1/sqrt scaling, IDENTITY only: ``K'_ij = s^2 K_ij sum_kl K_kl^2 + b_std^2``, ``Theta'_ij =
    s^2 [2 K_ij sum_kl K_kl Theta_kl + sum_kl K_kl^2 (Theta_ij + 4 K_ij)] + b_std^2`` with
    s = sigma_QK sigma_OV (Hron et al. 2020, sec. 3); other mechanisms with 1/sqrt scaling have
    no closed form (the logits stay random at infinite width) and the step refuses them, as
    neural-tangents does.  Finite networks run every mechanism."""

    n_chan_out: int
    n_chan_key: int
    n_chan_val: int
    n_heads: int
    linear_scaling: bool = True
    W_key_std: float = 1.0
    W_value_std: float = 1.0
    W_query_std: float = 1.0
    W_out_std: float = 1.0
    b_std: float | None = None
    attention_mechanism: str = "SOFTMAX"
    pos_emb_type: str = "NONE"

    #: :func:`with_width` scales it and overflow errors count it (it ends in an affine map);
    #: the exact sampler cannot condition it (see ``exact_refusal``).
    affine = True
    parameterization = "ntk"
    exact_refusal = ("the conditional sampler conditions affine layers on their inputs, and attention "
                     "multiplies the input by weights that depend on it -- that conditioning is not built")

    def __post_init__(self):
        for name in ("n_chan_out", "n_chan_key", "n_chan_val", "n_heads"):
            _check_positive_int(self, name, getattr(self, name))
        if not isinstance(self.linear_scaling, (bool, np.bool_)):
            raise ValueError(f"GlobalSelfAttention: linear_scaling must be True or False, got {self.linear_scaling!r}")
        for name in ("W_key_std", "W_value_std", "W_query_std", "W_out_std", "b_std"):
            v = getattr(self, name)
            if (v is not None or name != "b_std") and (
                    not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0):
                none = "None or " if name == "b_std" else ""
                raise ValueError(f"GlobalSelfAttention: {name} must be {none}a finite number >= 0, got {v!r}")
        mech = self.attention_mechanism
        if not isinstance(mech, str) or mech.upper() not in MECHANISMS:
            raise ValueError(f"GlobalSelfAttention: attention_mechanism must be one of {MECHANISMS}, got {mech!r}")
        object.__setattr__(self, "attention_mechanism", mech.upper())
        if self.pos_emb_type != "NONE":
            raise NotImplementedError(f"GlobalSelfAttention: pos_emb_type={self.pos_emb_type!r} is not built; "
                                      "only 'NONE' (no positional embeddings)")

    # --- the kernel step ---------------------------------------------------------------------

    def kernel(self, state):
        state = self._single(state)
        if not self.linear_scaling and self.attention_mechanism != "IDENTITY":
            raise NotImplementedError(
                f"{self!r}: no closed-form kernel for {self.attention_mechanism} attention with "
                "linear_scaling=False: with 1/sqrt(n_chan_key) scaling the logits stay random at infinite "
                "width (Hron et al. 2020, sec. 3); use linear_scaling=True or IDENTITY")
        k, P = len(state.spatial), math.prod(state.spatial)
        flat = lambda x, nb: _pairs_last(x, nb, k).reshape(x.shape[:nb] + (P, P))  # noqa: E731
        # both inputs' own covariances at once (a few small arrays: the calls are the cost)
        n1 = len(state.cov1)
        cov = flat(state.cov1 if state.cov2 is None else np.concatenate([state.cov1, state.cov2]), 1)
        ov2, bias = (self.W_out_std * self.W_value_std) ** 2, (self.b_std or 0.0) ** 2
        if self.linear_scaling:
            G = self._weights(cov)
            G1, G2 = (G, G) if state.cov2 is None else (G[:n1], G[n1:])
            nngp, ntk = _sandwich(G1, (state.nngp, state.ntk), G2, k, ov2, bias, state.pairs)
            cov = ov2 * (G @ cov @ G.transpose(0, 2, 1)) + bias
        else:
            K, T = flat(state.nngp, 2), flat(state.ntk, 2)
            s2 = (self.W_query_std * self.W_key_std) ** 2 * ov2
            # sums of products by ufuncs, not einsum, which raises no overflow flag (see _checked)
            kk = np.sum(K * K, axis=(2, 3), keepdims=True)
            kt = np.sum(K * T, axis=(2, 3), keepdims=True)
            nngp = _pairs_back((s2 * kk * K + bias).reshape(K.shape[:2] + state.spatial * 2), 2, k)
            ntk = _pairs_back((s2 * (2 * kt * K + kk * (T + 4 * K)) + bias).reshape(nngp.shape), 2, k)
            cov = s2 * np.sum(cov * cov, axis=(1, 2), keepdims=True) * cov + bias
        cov = _pairs_back(cov.reshape(cov.shape[:1] + state.spatial * 2), 1, k)
        return SpatialState(nngp, ntk, cov[:n1], None if state.cov2 is None else cov[n1:],
                            state.spatial + (self.n_chan_out,), is_gaussian=True, fresh=True,
                            affine_seen=state.affine_seen + 1, n_affine=state.n_affine, pairs=state.pairs)

    def _weights(self, cov):
        """The limit attention weights of each input, mech(sigma_QK cov) (N, P, P) (Hron et al.
        2020, sec. 3: the logits converge to the input covariance with tied query and key weights)."""
        return _mechanism(self.attention_mechanism, self.W_query_std * self.W_key_std * cov)

    # --- finite networks ---------------------------------------------------------------------

    def init(self, rngs, shape, dtype=np.float64):
        """Per network: the key, query (1/sqrt scaling only) and value weights of all heads as one
        (heads x (key [+ query] + value channels), fan-in) matrix drawn in that row order, then the
        output weights and the bias (drawn even when ``b_std`` is None, as Dense)."""
        shape = _single_shape(self, shape)
        C, M = shape[-1], len(rngs)
        proj = _AffineParams(np.empty((M, sum(self._projections()), C), dtype), np.empty((M, 0), dtype))
        out = _AffineParams(np.empty((M, self.n_chan_out, self.n_heads * self.n_chan_val), dtype),
                            np.empty((M, self.n_chan_out), dtype))
        for i, rng in enumerate(rngs):
            for W, b in (proj, out):
                draw_affine(rng, W[i], b[i], 1.0, 1.0)
        return (proj, out), shape[:-1] + (self.n_chan_out,)

    def forward(self, params, x):
        """x (M or 1, N, positions..., C) -> (M, N, positions..., n_chan_out)."""
        proj, out = params
        B, N, spatial, C = x.shape[0], x.shape[1], x.shape[2:-1], x.shape[-1]
        xf = x.reshape(B, N, -1, C)
        # one product per network over all inputs and positions (not one per input)
        h = np.matmul(xf.reshape(B, -1, C), proj.W.transpose(0, 2, 1))
        h = h.reshape((len(h), N, -1, h.shape[-1]))                           # (M, N, P, projections)
        parts = np.split(h, np.cumsum(self._projections())[:-1], axis=-1)
        k, *q, v = (_split_heads(part, self.n_heads) for part in parts)
        q = q[0] if q else k            # linear scaling ties the query weights to the key weights
        logits = (q @ k.swapaxes(-1, -2)) * self._logit_scale(C)
        A = _mechanism(self.attention_mechanism, logits)
        heads = (A @ v).transpose(0, 1, 3, 2, 4)                              # (M, N, P, H, dv)
        heads = heads.reshape(heads.shape[:3] + (-1,))
        y = _affine_forward(self._out_layer(C), out, heads)
        return y.reshape(y.shape[:2] + spatial + y.shape[-1:]), (xf, spatial, q, k, v, logits, A, heads)

    def backward(self, params, cache, g):
        """Cotangents g (M, K, N, positions..., n_chan_out) back through the output, value, key
        and query projections; the NTK share of all their weights and the bias."""
        proj, out = params
        xf, spatial, q, k, v, logits, A, heads = cache
        M, K, N, C = g.shape[0], g.shape[1], g.shape[2], xf.shape[-1]
        g = g.reshape(M, K, N, -1, g.shape[-1])
        g_heads, ntk = _affine_backward(self._out_layer(C), out, heads, g)
        gh = _split_heads(g_heads, self.n_heads)                              # (M, K, N, H, P, dv)
        g_v = A.swapaxes(-1, -2)[:, None] @ gh
        g_logits = _mechanism_backward(self.attention_mechanism, logits[:, None], A[:, None],
                                       gh @ v.swapaxes(-1, -2)[:, None])
        g_logits *= self._logit_scale(C)
        g_q = g_logits @ k[:, None]
        g_k = g_logits.swapaxes(-1, -2) @ q[:, None]
        parts = [g_k + g_q, g_v] if self.linear_scaling else [g_k, g_q, g_v]
        # (M, K, N, H, P, d) -> (M, K, N, P, H x d), in the row order of the projection weights
        P, H = parts[0].shape[4], self.n_heads
        gp = np.empty((M, K, N, P, sum(p.shape[3] * p.shape[5] for p in parts)), dtype=parts[0].dtype)
        at = 0
        for p in parts:
            width = H * p.shape[5]
            np.copyto(gp[..., at:at + width].reshape(M, K, N, P, H, -1), p.transpose(0, 1, 2, 4, 3, 5))
            at += width
        ntk = ntk + _affine_ntk(gp, xf, 1.0, 0.0)
        g_in = gp.reshape(M, -1, gp.shape[-1]) @ proj.W
        return g_in.reshape((M, K, N) + spatial + (C,)), ntk

    def _projections(self) -> list[int]:
        """Channels of the key, query (1/sqrt scaling only) and value projections, all heads."""
        H = self.n_heads
        return [H * self.n_chan_key] * (1 if self.linear_scaling else 2) + [H * self.n_chan_val]

    def cache_size(self, shape) -> int:
        """Per input: keys, queries (1/sqrt scaling), values, logits, attention weights and heads."""
        P, H = math.prod(shape[:-1]), self.n_heads
        return P * H * (self.n_chan_key * (1 if self.linear_scaling else 2) + 2 * self.n_chan_val) + 2 * H * P * P

    def _logit_scale(self, C):
        d = self.n_chan_key if self.linear_scaling else math.sqrt(self.n_chan_key)
        return self.W_query_std * self.W_key_std / (C * d)

    def _out_layer(self, C):
        """The output projection as a Dense layer on the concatenated heads: fan-in n_heads
        n_chan_val, so W_std = sigma_OV / sqrt(C) gives neural-tangents' 1/sqrt(n_heads n_chan_val C)."""
        return Dense(self.n_chan_out, W_std=self.W_out_std * self.W_value_std / math.sqrt(C), b_std=self.b_std)


def _sandwich(G1, kernels, G2, k, scale, shift, pairs=None):
    """``scale G1(x) A(x, x') G2(x')^T + shift`` for A = K and A = Theta + 2 K, the kernels (N1,
    N2, L1, L1', ..., Lk, Lk') over position pairs and G1, G2 (N, P, P) the attention weights of
    each input over the P = L1 ... Lk flattened positions; with ``pairs`` (i1, i2) the kernels
    (P, 1, ...) list input pairs (see :class:`ntkcheck.states.SpatialState`).  One P x P
    product per input pair and side, batched, on the kernels' own layout (no transposed copy of
    them), with each input's weights scaled once; G (Theta + 2 K) as G Theta + G K + G K."""
    K, T = kernels
    n1, n2 = K.shape[:2]
    P = G1.shape[-1]
    left, right = scale * G1, G2.transpose(0, 2, 1)
    if pairs is None:                       # broadcast over the other input of the pair
        left, right = left[:, None], right[None]
    else:
        left, right = left[pairs[0]][:, None], right[pairs[1]][:, None]
    # [G K; G (Theta + 2 K)] into one array, then both right products in one call into another
    # (two arrays in all: a tile's temporaries stay in the caches)
    GA = np.empty((2, n1, n2, P, P))
    np.matmul(left, _pairs_last(K, 2, k).reshape(n1, n2, P, P), out=GA[0])
    np.matmul(left, _pairs_last(T, 2, k).reshape(n1, n2, P, P), out=GA[1])
    GA[1] += GA[0]
    GA[1] += GA[0]
    out = np.matmul(GA, right[None])
    out += shift
    out = _pairs_back(out.reshape((2, n1, n2) + K.shape[2::2] * 2), 3, k)
    return out[0], out[1]


def _split_heads(h, n_heads):
    """(..., P, heads x d) -> (..., heads, P, d)."""
    return np.moveaxis(h.reshape(h.shape[:-1] + (n_heads, -1)), -2, -3)


def _mechanism(name, logits):
    if name == "SOFTMAX":
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "IDENTITY":
        return logits
    if name == "RELU":
        return np.maximum(logits, 0.0)
    return np.abs(logits)


def _mechanism_backward(name, logits, A, g):
    """Cotangents of the logits from those g of the attention weights A = mech(logits)."""
    if name == "SOFTMAX":
        return A * (g - (g * A).sum(axis=-1, keepdims=True))
    if name == "IDENTITY":
        return g
    return g * (logits > 0) if name == "RELU" else g * np.sign(logits)
