"""Freeze the reference NNGP and NTK of the claims' architecture cells, computed by neural-tangents.

kernel-mean, nngp-gaussian and ntk-init-convergence test their CNN and residual cells against
ntkcheck's own analytic kernels, which share the layer code with the sampled networks; a bug in
that code would move both alike.  Their verdicts therefore also compare those kernels with the
kernels written here, computed outside ntkcheck by neural-tangents' ``stax`` from the networks'
definitions (``ntkcheck/claims/architectures.py``, module docstring) and the inputs' documented
recipe.  This script does not import ntkcheck.  Run it in a separate environment:

    python -m venv ntref
    ntref/bin/pip install neural-tangents==0.6.5 jax==0.4.26 jaxlib==0.4.26 "numpy<2" "scipy<1.13" tf2jax==0.3.6
    ntref/bin/python scripts/freeze_reference_kernels.py

It writes ``ntkcheck/data_files/reference_kernels.json``.  The cells are the union over every
budget (quick, standard, full) of the three claims' architecture cells; re-run it when their
grids change (``tests/test_references.py`` names a cell without a reference).  Only relu and erf
occur, both closed forms in neural-tangents (no numerical activation).  The file's ``layers``
are the networks of ``scripts/stax_networks.py`` (LayerNorm, FanInConcat, SumPool,
GlobalSumPool, ConvTranspose, ConvLocal), with one input set and two, so that the tests check
those layers' kernels without neural-tangents.
"""
import json
import os
import warnings
from pathlib import Path

import numpy as np
from jax import config

config.update("jax_enable_x64", True)
# the residual block sums the skip branch and a Dense branch: independent, as the warning asks
warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
# SumPool states the channel axis as -1 and Conv as 3 (NHWC): the same axis
warnings.filterwarnings("ignore", message="Got potentially mismatching `channel_axis`")
# linear-scaling attention ties the query weights to the key weights, as both libraries document
warnings.filterwarnings("ignore", message="Linear scaling attention used")
import jax  # noqa: E402
import neural_tangents  # noqa: E402
from neural_tangents import stax  # noqa: E402
from stax_networks import ACTIVATIONS as LAYER_ACTIVATIONS  # noqa: E402 -- scripts/, this script's directory
from stax_networks import NETWORKS  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "ntkcheck" / "data_files" / "reference_kernels.json"
INSTALL = ('pip install neural-tangents==0.6.5 jax==0.4.26 jaxlib==0.4.26 "numpy<2" "scipy<1.13" '
           "tf2jax==0.3.6")
#: positions of the CNNs' 1-D inputs
POSITIONS = 4
#: any width: in the NTK parameterization the infinite-width kernels do not depend on it
WIDTH = 64
ACTIVATIONS = {"relu": stax.Relu, "erf": stax.Erf}
#: the architectures on sequences (N, POSITIONS, d_in); the others take (N, d_in)
SEQUENCES = ("cnn-gap", "cnn-flatten", "transformer")
# The grids' arch_activation (relu; relu and erf at the full budget), arch_depth [2], sigma_w 1.5,
# sigma_b (kernel-mean 0.1; nngp-gaussian 0.2, full also 0.0; ntk-init-convergence 0.1, full
# also 0.0), the NTK parameterization, n_inputs 3 and d_in 4.
CELLS = [{"architecture": arch, "activation": act, "depth": 2, "sigma_w": 1.5, "sigma_b": sigma_b,
          "parameterization": "ntk", "n_inputs": 3, "d_in": 4}
         for arch in ("cnn-gap", "cnn-flatten", "resnet", "layernorm-mlp", "transformer") for act in ACTIVATIONS
         for sigma_b in (0.0, 0.1, 0.2)]


def network(architecture, activation, depth, sigma_w, sigma_b):
    """The architecture as ntkcheck's claims define it, in neural-tangents' stax."""
    affine = {"W_std": sigma_w, "b_std": sigma_b, "parameterization": "ntk"}
    phi = ACTIVATIONS[activation]
    if architecture == "resnet":
        block = [stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(phi(), stax.Dense(WIDTH, **affine))),
                 stax.FanInSum()]
        return stax.serial(stax.Dense(WIDTH, **affine), *block * (depth - 1), phi(), stax.Dense(1, **affine))
    if architecture == "layernorm-mlp":
        return stax.serial(*[layer for _ in range(depth) for layer in (stax.Dense(WIDTH, **affine), stax.LayerNorm(),
                                                                        phi())], stax.Dense(1, **affine))
    if architecture == "transformer":
        attention = stax.GlobalSelfAttention(WIDTH, WIDTH, WIDTH, 1, W_out_std=sigma_w, b_std=sigma_b)
        block = [_residual(stax.LayerNorm(), attention),
                 _residual(stax.LayerNorm(), stax.Dense(WIDTH, **affine), phi(), stax.Dense(WIDTH, **affine))]
        return stax.serial(stax.Dense(WIDTH, **affine), *block * (depth - 1), stax.LayerNorm(), stax.GlobalAvgPool(),
                           stax.Dense(1, **affine))
    convs = [layer for _ in range(depth) for layer in (stax.Conv(WIDTH, (2,), padding="SAME", **affine), phi())]
    pool = stax.GlobalAvgPool() if architecture == "cnn-gap" else stax.Flatten()
    return stax.serial(*convs, pool, stax.Dense(1, **affine))


def _residual(*layers):
    """x + serial(layers)(x)."""
    return stax.serial(stax.FanOut(2), stax.parallel(stax.serial(*layers), stax.Identity()), stax.FanInSum())


def inputs(architecture, n_inputs, d_in):
    """The documented recipe: N(0, I) entries from seed 0, (N, positions, d_in) for the CNNs and
    the transformer."""
    rng = np.random.default_rng(0)
    shape = (n_inputs, POSITIONS, d_in) if architecture in SEQUENCES else (n_inputs, d_in)
    return rng.standard_normal(shape)


def layer_inputs(shape):
    """The documented recipe of the layers' inputs: 5 draws of N(0, I) from seed 0, X1 the
    first 3 and X2 the last 2."""
    X = np.random.default_rng(0).standard_normal((5,) + tuple(shape))
    return X[:3], X[3:]


def layer_networks():
    """The kernels of every network of ``scripts/stax_networks.py``, both activations, on X1 and on (X1, X2)."""
    out = []
    for name, (build, shape) in NETWORKS.items():
        X1, X2 = layer_inputs(shape)
        for act, layer in LAYER_ACTIVATIONS.items():
            kernel_fn = build(stax, getattr(stax, layer))[2]
            one, two = kernel_fn(X1, None, ("nngp", "ntk")), kernel_fn(X1, X2, ("nngp", "ntk"))
            as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
            out.append({"network": name, "activation": act, "X1": X1.tolist(), "X2": X2.tolist(),
                        "nngp": as_list(one.nngp), "ntk": as_list(one.ntk),
                        "nngp_cross": as_list(two.nngp), "ntk_cross": as_list(two.ntk)})
    return out


def main():
    cells = []
    for cell in CELLS:
        X = inputs(cell["architecture"], cell["n_inputs"], cell["d_in"])
        _, _, kernel_fn = network(cell["architecture"], cell["activation"], cell["depth"], cell["sigma_w"],
                                  cell["sigma_b"])
        k = kernel_fn(X, None, ("nngp", "ntk"))
        cells.append({**cell, "inputs": X.tolist(), "nngp": np.asarray(k.nngp, dtype=np.float64).tolist(),
                      "ntk": np.asarray(k.ntk, dtype=np.float64).tolist()})
    header = {"computed_by": f"neural-tangents {neural_tangents.__version__}, jax {jax.__version__}, "
                             f"numpy {np.__version__}, float64 (jax_enable_x64)",
              "environment": INSTALL, "command": "python scripts/freeze_reference_kernels.py",
              "inputs": f"np.random.default_rng(0).standard_normal((n_inputs, {POSITIONS}, d_in)) for the CNNs "
                        "and the transformer, ((n_inputs, d_in)) for the residual network and the layernorm-mlp",
              "networks": "ntkcheck/claims/architectures.py, module docstring; W_std = sigma_w, b_std = sigma_b "
                          "in every Dense and Conv layer, W_out_std = sigma_w, b_std = sigma_b in the attention, "
                          "NTK parameterization",
              "layers": "scripts/stax_networks.py, relu and erf; X1, X2 = the first 3 and the last 2 of "
                        "np.random.default_rng(0).standard_normal((5,) + shape); nngp, ntk on X1, "
                        "nngp_cross, ntk_cross on (X1, X2)"}
    layers = layer_networks()
    tmp = OUT.with_name(OUT.name + ".tmp")
    # one line per cell: a re-freeze diffs cell by cell
    tmp.write_text('{"header": ' + json.dumps(header, indent=1) + ',\n "cells": [\n'
                   + ",\n".join(json.dumps(c) for c in cells) + '\n],\n "layers": [\n'
                   + ",\n".join(json.dumps(c) for c in layers) + "\n]}\n")
    os.replace(tmp, OUT)
    print(f"wrote {len(cells)} cells and {len(layers)} layer networks to {OUT}")


if __name__ == "__main__":
    main()
