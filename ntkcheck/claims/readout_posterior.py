"""readout-posterior: ensembles trained on the readout only sample the NNGP posterior.

Claim (Lee et al. 2019, sec. 2.3.1 and Appendix D; the seed memo: the GP picture
"corresponds to training only the last layer"): networks in NTK parameterization, initialised
with Gaussian weights and trained by gradient descent on the MSE loss ``(1/2N) sum (f - y)^2``
in their readout layer only, form at infinite width a Gaussian ensemble with (GD step t)

    mean  K_*X K^{-1} (I - E_t) y,     covariance  K_** - K_*X K^{-1} (I - E_t^2) K_X*,

``E_t = (I - eta K/N)^t`` (``e^{-eta K t/N}`` for flow) and K the output NNGP kernel: the
readout's tangent kernel is the Gram of its inputs, ``sigma_w^2/n phi.phi' + sigma_b^2``,
which is the output NNGP's Monte Carlo estimate.  At t = inf this is the GP posterior.
:mod:`ntkcheck.gp` derives it from the general form and the tests check it against the
engine to rounding for single networks.

Measured (``ntkcheck.claims._ensembles``): at steps ``t_finite`` and ``steps`` (where every
mode has contracted below 1e-9, i.e. t = inf to far below the Monte Carlo resolution) the
mean, covariance and Gaussianity tests of :mod:`ntkcheck.stats` at the widest width, and the
per-network coupling gap to the infinite-width map, which must shrink as O(width^-1/2) (the
readout kernel's fluctuation, K_hat - K = O(n^{-1/2})).

Negative control: the same ensemble against the NTK-GP of fully trained networks (Theta in
place of K, same rate and steps): the moment tests must reject and its coupling gap must not
shrink.
"""
from __future__ import annotations

from functools import partial

from . import Claim
from . import _ensembles as ens


_BASE = {"data": ["sphere"], "activation": "relu", "depth": 1, "parameterization": "ntk", "sigma_w": 1.5,
         "sigma_b": 0.0, "n_train": 4, "n_test": 3, "d_in": 8, "lr_fraction": 0.5, "t_finite": 3,
         "steps": 150}
GRIDS = {
    "quick": {**_BASE, "width": [64, 256, 1024], "n_networks": 400, "chunk": 200},
    "standard": {**_BASE, "width": [64, 256, 1024, 4096], "n_networks": 800, "chunk": 200},
    "full": {**_BASE, "width": [64, 256, 1024, 4096, 16384], "n_networks": 4000, "chunk": 500},
}

CLAIM = Claim(
    id="readout-posterior",
    title="Readout-only training samples the NNGP posterior (mean, covariance, Gaussianity)",
    statement=("Wide networks (NTK parameterization) trained by GD on the MSE loss in the readout only form a "
               "Gaussian ensemble with mean K_*X K^-1 (I - E_t) y and covariance K_** - K_*X K^-1 (I - E_t^2) K_X*, "
               "the NNGP posterior at t = inf; the per-network gap shrinks as width^-1/2."),
    sources=("Lee et al. 2019, sec. 2.3.1 and App. D", "Lee et al. 2018 (NNGP)"),
    grids=GRIDS, run_task=partial(ens.run_task, readout_only=True),
    verdict=partial(ens.verdict, claim_id="readout-posterior",
                    theory="NNGP posterior", control="the NTK-GP of fully trained networks (Theta in place of K)"),
    split=ens.split, check=partial(ens.check, readout_only=True),
)
