"""ntk-ensemble: fully trained wide ensembles are the NTK Gaussian process.

Claim (Lee et al. 2019, sec. 2.3.1, eqs. 15-16): networks in NTK parameterization trained
(all layers) by gradient descent on ``(1/2N) sum (f - y)^2`` form at infinite width a
Gaussian ensemble with ``A_t = Theta_*X Theta^{-1} (I - E_t)``, ``E_t = (I - eta Theta/N)^t``,

    mean  A_t y,     covariance  K_** + A_t K_XX A_t^T - (A_t K_X* + K_*X A_t^T),

(derived in :mod:`ntkcheck.gp`; the two cross terms exist because f_0 != 0).  The
per-network gap to the infinite-width map shrinks as O(width^-1/2) (Lee et al. 2019, Thm 2.1:
``|f_t - f^lin_t| = O(n^{-1/2})``, and Theta_hat_0 - Theta = O(n^{-1/2})).

Measured as for readout-posterior (``ntkcheck.claims._ensembles``), and on the digits data
(:func:`ntkcheck.data.digits`, parity target) the coupling gap vs width plus a table of the
ensemble mean against the NTK-GP mean, NTK and NNGP kernel regression, with accuracies.

Negative control: the same ensemble against the NNGP posterior of readout-only training (K in
place of Theta): the moment tests must reject and its coupling gap must not shrink.
"""
from __future__ import annotations

from functools import partial

from . import Claim
from . import _ensembles as ens


_BASE = {"data": ["sphere", "digits"], "activation": "relu", "depth": 1, "parameterization": "ntk",
         "sigma_w": 1.5, "sigma_b": 0.0, "n_train": 4, "n_test": 3, "d_in": 8, "lr_fraction": 0.5,
         "t_finite": 3, "steps": 80,
         "digits_train": 64, "digits_test": 64, "digits_steps": 100, "digits_networks": 16,
         "digits_width": [64, 256, 1024]}
GRIDS = {
    "quick": {**_BASE, "width": [64, 256, 1024], "n_networks": 400, "chunk": 200},
    "standard": {**_BASE, "width": [64, 256, 1024, 4096], "n_networks": 800, "chunk": 200, "digits_networks": 32},
    "full": {**_BASE, "width": [64, 256, 1024, 4096, 16384], "n_networks": 4000, "chunk": 500,
             "digits_networks": 128, "digits_width": [64, 256, 1024, 4096]},
}

CLAIM = Claim(
    id="ntk-ensemble",
    title="Fully trained wide ensembles are the NTK Gaussian process (Lee et al. 2019)",
    statement=("Wide networks (NTK parameterization) trained by GD on the MSE loss form a Gaussian ensemble with "
               "mean A_t y and covariance K_** + A_t K A_t^T - (A_t K_X* + K_*X A_t^T), A_t = Theta_*X Theta^-1 "
               "(I - E_t); the per-network gap shrinks as width^-1/2, also on digits."),
    sources=("Lee et al. 2019, sec. 2.3.1, eqs. 15-16, Thm 2.1",),
    grids=GRIDS, run_task=partial(ens.run_task, readout_only=False),
    verdict=partial(ens.verdict, claim_id="ntk-ensemble",
                    theory="NTK-GP", control="the NNGP posterior of readout-only training (K in place of Theta)"),
    split=ens.split, check=partial(ens.check, readout_only=False),
)
