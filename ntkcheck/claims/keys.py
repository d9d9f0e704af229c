"""Study-file keys: what each grid key of a claim means, and its default per budget.

``GLOSSARY`` names the keys of the built-in claims; a claim's own ``Claim.keys`` (a
third-party claim's keys) take precedence.  ``docs/studies.md`` and ``ntkcheck list --grid
CLAIM`` are rendered from these and the claims' ``grids``, so they cannot drift apart.
"""
from __future__ import annotations

from . import BUDGETS, Claim

#: Meaning of every grid key of the built-in claims.  A list value in a grid is swept (one
#: cell per value), a scalar is fixed.  "control" keys size the negative control, "power"
#: keys the power check reported beside it, "arch" keys the non-MLP architecture cells.
GLOSSARY = {
    "width": "hidden-layer widths n swept (the claim's x axis)",
    "depth": "number of hidden layers L",
    "activation": "activation functions swept (relu, erf, tanh, gelu, identity, ...)",
    "parameterization": "ntk, standard or mean-field parameterization",
    "sigma_w": "weight standard deviation (NTK parameterization: W ~ N(0, sigma_w^2), scaled by 1/sqrt(fan-in))",
    "sigma_b": "bias standard deviation",
    "n_networks": "random networks per cell (the Monte Carlo sample size)",
    "chunk": "networks per task: one task, one seed, one file each (resumable unit; no effect on the draws' law)",
    "block": "networks per block: the bootstrap's resampling unit (n_networks must give >= 10 blocks)",
    "n_inputs": "number of fixed inputs x the kernels are evaluated on",
    "d_in": "input dimension",
    "correlation": "cosine of the angle between the two inputs (|x|^2 / d = 1 each)",
    "data": "training data set (gaussian, sphere, circle or digits)",
    "n_train": "training points",
    "n_test": "test points",
    "steps": "gradient-descent steps",
    "lr": "learning rate",
    "lr_fraction": "learning rate as a fraction of the critical rate 2N/lambda_max of the analytic NTK",
    "lr_factor": "learning rates swept, as multiples of 2N/lambda_max(Theta_hat_0)",
    "t_finite": "the earlier step at which the ensemble is also compared with its Gaussian-process law",
    "n_modes": "number of largest NTK eigen-modes whose residual decay is tested",
    "n_gamma": "angles of the unit-circle inputs (the figure's x axis)",
    "beta": "depth-to-width ratios L/n swept",
    "architecture": "architectures swept, of mlp, cnn-gap (CNN, global average pooling), cnn-flatten, resnet, "
                    "layernorm-mlp, transformer (one-head softmax encoder, linear scaling)",
    "arch_width": "widths (channels) of the non-MLP architecture cells",
    "arch_depth": "depths of the non-MLP architecture cells",
    "arch_activation": "activations of the non-MLP architecture cells",
    "arch_parameterization": "parameterizations of the non-MLP architecture cells",
    "arch_n_networks": "networks per non-MLP architecture cell",
    "arch_chunk": "networks per task in the non-MLP architecture cells",
    "arch_control_n_networks": "networks per width of the negative control in the non-MLP architecture cells",
    "arch_test_min_width": "non-MLP cells: smallest width at which the Gaussianity tests run",
    "layernorm_width": "widths of the LayerNorm architecture cells (layernorm-mlp, transformer), replacing "
                       "arch_width in them",
    "arch_power_factor": "non-MLP cells: the power check's kernel factor (the claim's samples re-scored against "
                         "factor x Theta)",
    "power_factor": "the power check's kernel factor: the claim's samples re-scored against factor x Theta",
    "power_sigma_w_factor": "the power check's covariance: NNGP of the network with sigma_w x this factor",
    "dense_max_width": "widths up to this are also sampled with real dense weights (exact-vs-dense cross-check)",
    "cost_width": "widths up to this get chunk networks per task; wider ones fewer (equal cost per width)",
    "min_networks": "at least this many networks per width",
    "skew_limit": "largest skewness(G^2)/sqrt(M) allowed, which sets the networks per cell (normal approximation)",
    "sharp_min_width": "the sharp exponent fits use widths from this one on (below, higher-order corrections bend "
                       "the fit)",
    "fit_min_width": "the kurtosis fit uses widths n >= fit_min_width x L",
    "test_min_width": "smallest width at which the Gaussianity and covariance tests run",
    "control_width": "widths of the negative control (a setting where the claim is false)",
    "control_n_networks": "networks per width of the negative control (0: no control)",
    "control_networks": "networks per width of the negative control",
    "control_max_width": "the negative control's widths: up to this one",
    "attention_width": "widths of the attention control (single-head 1/sqrt softmax attention and its two "
                       "Gaussian twins, Hron et al. 2020)",
    "attention_networks": "networks per width of the attention control (0: no attention control)",
    "control_depth": "depths of the negative control",
    "control_activation": "activation of the negative control",
    "control_sigma_b": "bias standard deviation of the negative control",
    "control_beta": "the negative control's fixed depth-to-width ratio L/n (Hanin & Nica 2019)",
    "control_steps": "gradient-descent steps of the negative control",
    "control_lr_factor": "learning-rate factors of the negative control (mean-field scaling)",
    "digits_width": "widths of the digits-data cells",
    "digits_networks": "networks per digits-data cell",
    "digits_train": "digits training points",
    "digits_test": "digits test points",
    "digits_steps": "gradient-descent steps of the digits-data cells",
    "alpha_sqrt_n": "output scales alpha/sqrt(n) swept from mean-field to lazy",
    "alpha_width": "widths of the alpha sweep",
    "alpha_n_networks": "networks per cell of the alpha sweep",
    "alpha_lazy_min": "alpha/sqrt(n) from which the alpha sweep is in the lazy regime (its exponent fit)",
}


def meaning(claim: Claim, key: str) -> str:
    """What ``key`` means in ``claim``'s grids; ValueError if nobody documents it."""
    own = dict(claim.keys or {})
    if key in own:
        return own[key]
    if key in GLOSSARY:
        return GLOSSARY[key]
    raise ValueError(f"claim {claim.id}: grid key {key!r} has no meaning: give it in Claim(keys={{...}})")


def _value(v) -> str:
    return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)


def grid_markdown(claim: Claim) -> str:
    """A markdown table of ``claim``'s study-file keys: meaning and default per budget."""
    keys = list(dict.fromkeys(k for b in BUDGETS for k in claim.grids[b]))
    esc = lambda s: s.replace("|", "\\|")   # noqa: E731
    lines = ["| key | meaning | " + " | ".join(BUDGETS) + " |", "|---|---|" + "---|" * len(BUDGETS)]
    lines += [f"| `{k}` | {esc(meaning(claim, k))} | "
              + " | ".join(esc(_value(claim.grids[b][k])) if k in claim.grids[b] else "-" for b in BUDGETS) + " |"
              for k in keys]
    return "\n".join(lines)
