"""ntk-fluctuations: n x the covariance of the empirical NTK converges to the effective theory's.

Claim (Roberts, Yaida & Hanin 2022 (PDLT), ch. 8; computed by :mod:`ntkcheck.effective`):
for an MLP of any activation, depth L and width n, and inputs x_a,

    Cov(Theta_hat_ab, Theta_hat_cd) = (A_(ab)(cd) + B_abcd + B_abdc) / n + O(1/n^2),

with A and B the output's NTK variance tensors (:func:`ntkcheck.effective.ntk_covariance`).
The exact ReLU single-input case is ntk-finite-width.

Measurement.  ``n Cov(Theta_hat_ab, Theta_hat_cd)`` entry by entry from the exact sampler's
empirical NTKs.  Test, negative control (Rademacher weights) and power checks as in
:mod:`ntkcheck.claims._effective`; the power check's wrong prediction is the prediction without its
B terms (A alone: the neuron-diagonal pairing only).  At quick (depth 2, widths 16, 64, 256, 7000
networks each, and the control's 500 per width; ~5 s task CPU) the most precise test detects a
covariance 10-11 % off (seeds 0-19) and a covariance 10 % off is rejected by the power check.
"""
from __future__ import annotations

from ..effective import layer_tensors, ntk_covariance
from ._effective import make_claim


def _measure(spec, sample):
    """The empirical NTK of every network, (M, N, N)."""
    return sample.ntk


def _predict(spec, X):
    """n Cov(Theta_hat) = A + B + B, its quadrature error and the power check's wrong prediction (A alone),
    each (N, N, N, N)."""
    n = spec.widths[-1]
    cov = ntk_covariance(spec, X)
    return n * cov.value, n * cov.error, layer_tensors(spec, X).ntk_a[-1]


CLAIM = make_claim(
    "ntk-fluctuations",
    "n x Cov(Theta_hat) -> the effective theory's A + B + B (any activation)",
    ("For MLPs of any activation and depth, n x the covariance of the empirical NTK's entries on several "
     "inputs converges to A_(ab)(cd) + B_abcd + B_abdc, the NTK variance tensors of the 1/n effective theory "
     "(ntkcheck.effective)."),
    ("Roberts, Yaida & Hanin 2022, The Principles of Deep Learning Theory, ch. 8",),
    _measure, _predict, "the NTK covariance without its B terms",
    r"$n\,\mathrm{Cov}(\hat\Theta_{ab}, \hat\Theta_{cd})$")
