"""four-point-vertex: n x the connected four-point function of f converges to the predicted vertex.

Claim (Roberts, Yaida & Hanin 2022 (PDLT), §4.2-4.3 and §5.4; Yaida 2020; computed by
:mod:`ntkcheck.effective`): for an MLP of any activation, depth L and width n, and inputs x_a,

    E[f_a f_b f_c f_d]_connected = (V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc)) / n + O(1/n^2),

with V = V^{L+1} the output's four-point vertex (:func:`ntkcheck.effective.four_point_vertex`).
The exact ReLU / linear single-input case is relu-fourth-moment.

Measurement.  f given the last hidden layer is N(0, G) with G the readout kernel
(:func:`ntkcheck.moments.readout_kernel`), so the connected four-point function of f is exactly
``Cov(G_ab, G_cd) + Cov(G_ac, G_bd) + Cov(G_ad, G_bc)``, and ``V_(ab)(cd)`` is measured entry by
entry as ``n Cov(G_ab, G_cd)`` (the readout noise integrated out).  Test, negative control
(Rademacher weights) and power checks as in :mod:`ntkcheck.claims._effective`; the power check's
wrong prediction is the vertex without its propagation term
(:func:`ntkcheck.effective.local_vertex`).  At quick (depth 2, widths 16, 64, 256, 7000 networks
each, and the control's 500 per width; ~5 s task CPU) the most precise test detects a vertex
~9 % off and a vertex 10 % off is rejected by the power check.
"""
from __future__ import annotations

from ..effective import four_point_vertex, local_vertex
from ..moments import readout_kernel
from ._effective import make_claim


def _measure(spec, sample):
    """The readout kernel G of every network, (M, N, N)."""
    return readout_kernel(spec, sample.post_grams)


def _predict(spec, X):
    """V, its quadrature error and the power check's wrong prediction (the local term alone), each (N, N, N, N)."""
    V = four_point_vertex(spec, X)
    return V.value[-1], V.error[-1], local_vertex(spec, X).value


CLAIM = make_claim(
    "four-point-vertex",
    "n x connected four-point function of f -> the effective theory's vertex V (any activation)",
    ("For MLPs of any activation and depth, n x the connected four-point function of the outputs on several "
     "inputs converges to V_(ab)(cd) + V_(ac)(bd) + V_(ad)(bc), V the four-point vertex of the 1/n effective "
     "theory (ntkcheck.effective)."),
    ("Roberts, Yaida & Hanin 2022, The Principles of Deep Learning Theory, sec. 4.2-4.3, 5.4", "Yaida 2020"),
    _measure, _predict, "the vertex without its propagation term",
    r"$n\,\mathrm{Cov}(G_{ab}, G_{cd})$")
