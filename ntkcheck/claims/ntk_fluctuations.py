"""ntk-fluctuations: n x the covariance of the empirical NTK converges to the effective theory's.

Claim (Roberts, Yaida & Hanin 2022, ch. 8; computed by :mod:`ntkcheck.effective`): for an MLP
of any activation, depth L and width n, and inputs x_a,

    Cov(Theta_hat_ab, Theta_hat_cd) = (A_(ab)(cd) + B_abcd + B_abdc) / n + O(1/n^2),

with A and B the output's NTK variance tensors (:func:`ntkcheck.effective.ntk_covariance`).
The exact ReLU single-input case is ntk-finite-width.

Measurement.  ``n Cov(Theta_hat_ab, Theta_hat_cd)`` entry by entry from the exact sampler's
empirical NTKs.  Test and controls as in :mod:`ntkcheck.claims._effective`; the control is the
prediction without its B terms (A alone: the neuron-diagonal pairing only).

Draft: not in the registry (``ntkcheck.claims._MODULES``), so ``ntkcheck verify`` does not run
it; its verdict is tested on planted data.
"""
from __future__ import annotations

from ..effective import layer_tensors, ntk_covariance
from . import CLAIM_FALSE_FAIL_RATE, Claim, Task, Verdict, split_cells
from . import _effective as common

CONTROL = "the NTK covariance without its B terms"


def _measure(spec, sample):
    return sample.ntk


def _predict(spec, X):
    n = spec.widths[-1]
    cov = ntk_covariance(spec, X)
    return n * cov.value, n * cov.error, layer_tensors(spec, X).ntk_a[-1]


def run_task(task: Task) -> list[dict]:
    """Per entry: n Cov_hat(Theta_ab, Theta_cd) and its standard error; A + 2B, its quadrature error, A."""
    return common.run_task(task, _measure, _predict)


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    return common.verdict(df, false_fail_rate, "ntk-fluctuations", CONTROL)


CLAIM = Claim(
    id="ntk-fluctuations",
    title="n x Cov(Theta_hat) -> the effective theory's A + B + B (any activation)",
    statement=("For MLPs of any activation and depth, n x the covariance of the empirical NTK's entries on "
               "several inputs converges to A_(ab)(cd) + B_abcd + B_abdc, the NTK variance tensors of the 1/n "
               "effective theory (ntkcheck.effective)."),
    sources=("Roberts, Yaida & Hanin 2022, ch. 8",),
    grids=common.GRIDS, run_task=run_task, verdict=verdict, split=split_cells, check=common.check,
)
