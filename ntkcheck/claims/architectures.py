"""Architectures of the claims' grid cells: a name, a builder and the inputs of that name.

The infinite-width limits are not MLP-specific: a random network of any architecture
built from dense, convolutional, pooling and residual layers converges to a Gaussian
process with an analytic NNGP and NTK (the Tensor Programs master theorem, Yang 2019,
"Tensor Programs I", arXiv:1902.04760, and Yang 2020, "Tensor Programs II",
arXiv:2006.14548; for CNNs Novak et al. 2019, "Bayesian deep convolutional networks with
many channels are Gaussian processes", and the CNTK of Arora, Du, Hu, Li, Salakhutdinov
& Wang 2019, "On exact computation with an infinitely wide neural net", sec. 4).  The claims
at initialization run cells of these architectures:

``"mlp"``
    :class:`ntkcheck.MLP` on inputs (N, d_in).
``"cnn-gap"``
    ``depth`` x [Conv(width, (2,), SAME), phi], GlobalAvgPool, Dense(1) on 1-D inputs
    (N, positions, channels).
``"cnn-flatten"``
    the same with Flatten instead of the pooling (the readout sees every position).
``"resnet"``
    Dense(width), then ``depth - 1`` residual blocks FanOut(2), parallel(Identity,
    serial(phi, Dense(width))), FanInSum, then phi, Dense(1), on inputs (N, d_in).
``"layernorm-mlp"``
    ``depth`` x [Dense(width), LayerNorm, phi], Dense(1), on inputs (N, d_in) (the MLP's).
``"transformer"``
    a pre-LayerNorm transformer encoder on sequences (N, positions, d_in): Dense(width)
    embedding, then ``depth - 1`` encoder blocks, each a residual [LayerNorm,
    GlobalSelfAttention(width, width, width, n_heads=1, SOFTMAX, linear_scaling=True)] and a
    residual [LayerNorm, Dense(width), phi, Dense(width)], then LayerNorm, GlobalAvgPool,
    Dense(1).  The attention's key, query and value weights have neural-tangents' default
    std 1, its output weights ``W_out_std = sigma_w`` and ``b_std = sigma_b``.  With the
    1/n_chan_key ("linear") logit scaling and query weights tied to the key weights the
    attention weights converge to softmax of the attention input's covariance over positions,
    so even one head is a Gaussian process in the limit (Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention",
    arXiv:2006.10540, sec. 3); with the standard 1/sqrt scaling it is not (nngp-gaussian's
    attention control).

In the MLP, CNNs and the layernorm-mlp ``depth`` is the number of hidden affine layers
(:func:`ntkcheck.stax.depth`), in the residual network and the transformer the number of
hidden affine layers outside the blocks plus the blocks; each Dense and Conv layer has
``W_std = sigma_w``, ``b_std = sigma_b``.  A grid names them with the list
``"architecture"``; the non-MLP cells take their own, smaller sweep from the ``arch_*`` keys,
and the :data:`LAYERNORM` cells from the ``layernorm_*`` keys where a grid has them
(:func:`expand`).

What a non-MLP cell tests.  Its samples (real weights) and its targets (the recursion of
:mod:`ntkcheck.stax`: convolution, residual, LayerNorm and attention steps) come from the same
layer code, so the sampled statistics only show that the sampler and the recursion agree: a
bug shared by both (say in a padding rule) passes.  What ties the targets to independent theory is :func:`reference_check`: the
analytic NNGP and NTK of every cell the claims' grids use are frozen in
``data_files/reference_kernels.json``, computed by neural-tangents' ``stax`` outside
ntkcheck (``scripts/freeze_reference_kernels.py``), and the verdicts FAIL when the kernels
the claim used are off it.  A cell no grid uses (a study's override) has no reference and
is reported as unchecked.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib.resources import files

import numpy as np

from .. import stax
from .. import blas
from ..kernels import output_kernels
from ..moments import readout_kernel
from ..sampler import STAX_CHUNK_BYTES, sample_init
from ..spec import MLP
from . import GridError

ARCHITECTURES = ("mlp", "cnn-gap", "cnn-flatten", "resnet", "layernorm-mlp", "transformer")
#: Sampler of each architecture; the MLP has the exact conditional sampler, the others
#: real (dense) weights until the exact sampler covers them.
METHOD = {"mlp": "exact", **{a: "dense" for a in ARCHITECTURES[1:]}}
#: The architectures on sequences (N, positions, channels); the others take (N, d_in).
SEQUENCES = ("cnn-gap", "cnn-flatten", "transformer")
#: Prefix of the grid keys of the non-MLP cells: ``arch_<key>`` replaces ``<key>`` in them.
PREFIX = "arch_"
#: The architectures with LayerNorm, whose finite-width corrections are larger (a grid may give
#: them their own widths).
LAYERNORM = ("layernorm-mlp", "transformer")
#: Prefix of the grid keys of the :data:`LAYERNORM` cells: ``layernorm_<key>`` replaces ``<key>``
#: in them, after the ``arch_*`` keys.
LAYERNORM_PREFIX = "layernorm_"
#: Largest error |K - K_ref| / sqrt(K_ref_ii K_ref_jj) of a cell's kernels against the frozen
#: reference: both are float64 closed-form recursions (relu, erf), which agree to ~1e-15.
REFERENCE_TOLERANCE = 1e-9
#: The parameters that fix a cell's analytic kernels (its inputs: ``n_inputs``, ``d_in``).
REFERENCE_KEY = ("architecture", "activation", "depth", "sigma_w", "sigma_b", "parameterization",
                 "n_inputs", "d_in")
#: Rows from before the ``n_inputs`` and ``d_in`` columns: every claim grid had these inputs.
INPUTS_BEFORE = {"n_inputs": 3, "d_in": 4, "parameterization": "ntk"}


def build(architecture: str, activation: str, depth: int, width: int, sigma_w: float, sigma_b: float | None,
          parameterization: str = "ntk", readout_w_std: float | None = None) -> MLP | stax.Layer:
    """The network of an architecture (module docstring); a ValueError names an unknown one.
    ``readout_w_std`` (stax networks): the readout's W_std if not sigma_w (lazy-kernel's
    mean-field control); ``sigma_b=None``: no biases (for training, unlike b_std = 0)."""
    if architecture == "mlp":
        return MLP(depth=depth, width=width, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                   parameterization=parameterization)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    affine = dict(W_std=sigma_w, b_std=sigma_b, parameterization=parameterization)
    phi = stax.Activation(activation)
    readout = stax.Dense(1, **{**affine, "W_std": sigma_w if readout_w_std is None else readout_w_std})
    if architecture == "resnet":
        block = [stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(phi, stax.Dense(width, **affine))),
                 stax.FanInSum()]
        return stax.serial(stax.Dense(width, **affine), *block * (depth - 1), phi, readout)
    if architecture == "layernorm-mlp":
        return stax.serial(*[layer for _ in range(depth) for layer in (stax.Dense(width, **affine), stax.LayerNorm(),
                                                                        phi)], readout)
    if architecture == "transformer":
        if parameterization != "ntk":
            raise ValueError(f"architecture 'transformer': parameterization must be 'ntk' (GlobalSelfAttention has "
                             f"only neural-tangents' NTK scaling), got {parameterization!r}")
        attention = stax.GlobalSelfAttention(width, width, width, 1, W_out_std=sigma_w, b_std=sigma_b)
        block = [_residual(stax.LayerNorm(), attention),
                 _residual(stax.LayerNorm(), stax.Dense(width, **affine), phi, stax.Dense(width, **affine))]
        return stax.serial(stax.Dense(width, **affine), *block * (depth - 1), stax.LayerNorm(), stax.GlobalAvgPool(),
                           readout)
    convs = [layer for _ in range(depth) for layer in (stax.Conv(width, (2,), padding="SAME", **affine), phi)]
    pool = stax.GlobalAvgPool() if architecture == "cnn-gap" else stax.Flatten()
    return stax.serial(*convs, pool, readout)


def _residual(*layers: stax.Layer) -> stax.Layer:
    """x + serial(layers)(x)."""
    return stax.serial(stax.FanOut(2), stax.parallel(stax.serial(*layers), stax.Identity()), stax.FanInSum())


def inputs(architecture: str, n_inputs: int, d_in: int, positions: int = 4) -> np.ndarray:
    """The fixed inputs of an architecture, ``N(0, I)`` entries from seed 0: (N, d_in) for the
    MLP, the residual network and the layernorm-mlp (the MLP's inputs exactly), (N, positions,
    d_in) for the :data:`SEQUENCES`."""
    rng = np.random.default_rng(0)
    if architecture in SEQUENCES:
        return rng.standard_normal((n_inputs, positions, d_in))
    return rng.standard_normal((n_inputs, d_in))


def expand(grid: dict) -> list[dict]:
    """The grid's sub-grids, one per entry of ``grid["architecture"]``, with ``architecture`` a
    scalar and the ``arch_*`` and ``layernorm_*`` keys removed.  The MLP sub-grid is the grid
    itself; the others take ``activation``, ``depth``, ``width`` and ``n_networks`` from the
    ``arch_*`` keys (they are sampled with real weights, so they get their own, smaller sweep),
    the :data:`LAYERNORM` cells then from the ``layernorm_*`` keys."""
    base = {k: v for k, v in grid.items()
            if not k.startswith((PREFIX, LAYERNORM_PREFIX)) and k != "architecture"}
    out = []
    for arch in grid["architecture"]:
        sub = {**base, "architecture": arch}
        for prefix in _prefixes(arch):
            sub.update({k[len(prefix):]: v for k, v in grid.items() if k.startswith(prefix)})
        out.append(sub)
    return out


def grid_key(grid: dict, architecture: str, key: str) -> str:
    """The key of ``grid`` that sets ``key`` in the sub-grid of ``architecture`` (:func:`expand`),
    for error messages."""
    return next((p + key for p in reversed(_prefixes(architecture)) if p + key in grid), key)


def _prefixes(architecture: str) -> tuple[str, ...]:
    """The key prefixes that apply to an architecture's sub-grid, in the order they apply."""
    if architecture == "mlp":
        return ()
    return (PREFIX, LAYERNORM_PREFIX) if architecture in LAYERNORM else (PREFIX,)


def check(grid: dict, check_one) -> None:
    """GridError unless every architecture is known and ``check_one`` accepts each sub-grid."""
    for arch in grid["architecture"]:
        if arch not in ARCHITECTURES:
            raise GridError("architecture", f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    for sub in expand(grid):
        check_one(sub)


def split(grid: dict, split_one) -> list[tuple[str, dict]]:
    """``split_one`` of every sub-grid, task keys prefixed by :func:`key_prefix`."""
    return [(key_prefix(sub["architecture"]) + key, params) for sub in expand(grid) for key, params in split_one(sub)]


def with_architecture(rows: list[dict], p: dict) -> list[dict]:
    """The rows of a task with its ``architecture``, ``n_inputs`` and ``d_in`` columns (what
    :func:`reference_check` looks a cell up by)."""
    return [{**r, "architecture": p.get("architecture", "mlp"), "n_inputs": p["n_inputs"], "d_in": p["d_in"]}
            for r in rows]


def fill(df):
    """Results from before the ``architecture`` column are MLP results."""
    if "architecture" not in df:
        return df.assign(architecture="mlp")
    return df.assign(architecture=df["architecture"].fillna("mlp"))


def key_prefix(architecture: str) -> str:
    """Task-key prefix: none for the MLP (its keys and seeds predate the other architectures)."""
    return "" if architecture == "mlp" else f"architecture={architecture},"


def network(p: dict, sigma_w_factor: float = 1.0) -> MLP | stax.Layer:
    """The network of a cell ``p`` (``architecture`` defaults to ``"mlp"``)."""
    return build(p.get("architecture", "mlp"), p["activation"], p["depth"], p["width"],
                 p["sigma_w"] * sigma_w_factor, p["sigma_b"], p.get("parameterization", "ntk"))


def cell_inputs(p: dict) -> np.ndarray:
    return inputs(p.get("architecture", "mlp"), p["n_inputs"], p["d_in"])


def sample(net: MLP | stax.Layer, X: np.ndarray, n_networks: int, seed, method: str,
           ntk: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(f, ntk, readout)`` of ``n_networks`` random networks: outputs (M, N), empirical NTKs
    (M, N, N) (None if not ``ntk``) and the readout kernel ``E[f(x) f(x') | hidden layers]``
    (M, N, N), the readout's conditional second moment (its mean is the NNGP, its spread
    O(n^{-1/2}): Rao-Blackwell).  For a stax network ending in ``Dense(1)`` the readout kernel is
    ``W_std^2 <z(x), z(x')> / fan_in + b_std^2`` of the readout's input z (both
    parameterizations), from the same networks as ``sample_init(..., method="dense")`` (network
    i draws from ``seeding.child(seed, i)``)."""
    if isinstance(net, MLP):
        s = sample_init(net, X, n_networks, seed=seed, method=method)
        return s.f, s.ntk, readout_kernel(net, s.post_grams)
    if method != "dense":
        raise ValueError(f"{net!r:.60}: only method='dense' gives the readout kernel of a stax network")
    last = net.layers[-1]
    if not isinstance(last, stax.Dense) or last.out_dim != 1:
        raise ValueError(f"{net!r:.60}: the network must end in Dense(1)")
    body = stax.serial(*net.layers[:-1])
    # chunks that stay in the caches, single-threaded BLAS: as sample_init does
    step = max(1, STAX_CHUNK_BYTES // stax.bytes_per_network(net, X.shape[1:], len(X)))
    fs, ntks, reads = [], [], []
    with blas.single_threaded():
        for start in range(0, n_networks, step):
            _chunk(net, body, X, seed, start, min(n_networks, start + step), ntk, fs, ntks, reads)
    return np.concatenate(fs), (np.concatenate(ntks) if ntk else None), np.concatenate(reads)


def _chunk(net, body, X, seed, start, stop, ntk, fs, ntks, reads):
    """Networks ``start .. stop-1``: appends their outputs, NTKs and readout kernels."""
    last = net.layers[-1]
    params = stax.init_params(net, X.shape[1:], seed, start, stop)
    z, _ = body.forward(params[:-1], X[None])
    z = z.reshape(stop - start, len(X), -1)
    bias = 0.0 if last.b_std is None else last.b_std**2
    reads.append(last.W_std**2 * np.matmul(z, z.transpose(0, 2, 1)) / z.shape[-1] + bias)
    if ntk:
        f, t = stax.outputs_and_ntk(net, params, X)
        ntks.append(t)
    else:
        f, _ = last.forward(params[-1], z)
    fs.append(f[..., 0])


def stat_name(cell: tuple) -> str:
    """``"relu,L=2,sigma_b=0.1"`` of a cell (architecture, activation, depth, sigma_b), prefixed
    by the architecture unless it is the MLP (so the MLP's statistics keep their names)."""
    arch, act, depth, sigma_b = cell
    return ("" if arch == "mlp" else f"{arch},") + f"{act},L={depth},sigma_b={sigma_b:g}"


@dataclass(frozen=True)
class ReferenceCheck:
    """The non-MLP cells of a claim's rows against the frozen reference kernels: the cells
    compared, those without a reference, and each cell off it by more than
    :data:`REFERENCE_TOLERANCE` (named, with its error)."""

    checked: tuple[str, ...]
    unchecked: tuple[str, ...]
    off: tuple[str, ...]
    max_error: float

    @property
    def passed(self) -> bool:
        return not self.off

    @property
    def statistics(self) -> dict:
        return {"reference_cells": len(self.checked), "reference_unchecked_cells": len(self.unchecked),
                "reference_max_error": self.max_error}

    @property
    def text(self) -> str:
        """One clause for a verdict's summary."""
        if self.off:
            out = f"analytic kernels OFF the frozen neural-tangents reference in {'; '.join(self.off)}"
        elif self.checked:
            out = (f"{len(self.checked)} architecture cells match the frozen neural-tangents kernels "
                   f"(max error {self.max_error:.1g} <= {REFERENCE_TOLERANCE:g})")
        else:
            out = "no non-MLP cell to check against the frozen reference"
        if self.unchecked:
            out += f"; no reference for {', '.join(self.unchecked)} (not checked)"
        return out


def reference_check(df, kernels: tuple[str, ...] = ("nngp", "ntk")) -> ReferenceCheck:
    """The analytic ``kernels`` a claim used for each non-MLP cell of its rows ``df`` (after
    :func:`fill`) against the frozen reference (module docstring): the rows' ``target``
    column where they carry it (per ``quantity``, ``i``, ``j``), else the kernels computed once
    from the cell's parameters.  Rows without ``n_inputs``/``d_in``/``parameterization``
    take :data:`INPUTS_BEFORE`."""
    cells = df[df["architecture"] != "mlp"] if "architecture" in df else df.iloc[:0]
    if not len(cells):          # MLP cells only: nothing to compare
        return ReferenceCheck((), (), (), 0.0)
    cells = cells.assign(**{k: cells[k].astype(object).fillna(v) if k in cells else v
                            for k, v in INPUTS_BEFORE.items()})
    refs = references()
    checked, unchecked, off, worst = [], [], [], 0.0
    for key, g in cells.groupby(list(REFERENCE_KEY), sort=True):
        cell = dict(zip(REFERENCE_KEY, key))
        name = (f"{cell['architecture']} {cell['activation']} L={int(cell['depth'])} sigma_w={cell['sigma_w']:g} "
                f"sigma_b={cell['sigma_b']:g} ({int(cell['n_inputs'])} inputs, d_in={int(cell['d_in'])})")
        ref = refs.get(reference_key(cell))
        if ref is None:
            unchecked.append(name)
            continue
        errors = {q: _error(g, q, np.asarray(ref[q]), cell) for q in kernels}
        checked.append(name)
        worst = max([worst] + [e for e in errors.values() if not math.isnan(e)])
        bad = [f"{q.upper()} by {e:.2g}" for q, e in errors.items() if not e <= REFERENCE_TOLERANCE]
        if bad:
            off.append(f"{name}: {', '.join(bad)}")
    return ReferenceCheck(tuple(checked), tuple(unchecked), tuple(off), worst)


def _error(g, quantity: str, ref: np.ndarray, cell: dict) -> float:
    """Largest |K - K_ref| / sqrt(K_ref_ii K_ref_jj) of one kernel of a cell (NaN stays NaN: off)."""
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    rows = g[g["quantity"] == quantity] if "target" in g else g.iloc[:0]
    rows = rows[rows["target"].notna()] if len(rows) else rows
    if len(rows):
        i, j = rows["i"].to_numpy(int), rows["j"].to_numpy(int)
        err = np.abs(rows["target"].to_numpy(float) - ref[i, j]) / scale[i, j]
    else:
        p = {**cell, "depth": int(cell["depth"]), "n_inputs": int(cell["n_inputs"]), "d_in": int(cell["d_in"]),
             "width": int(g["width"].iloc[0])}
        err = np.abs(getattr(output_kernels(network(p), cell_inputs(p)), quantity) - ref) / scale
    return float(err.max()) if not np.isnan(err).any() else math.nan


def reference_key(cell: dict) -> tuple:
    """The :data:`REFERENCE_KEY` values of a cell, typed (CSV columns may come back as floats)."""
    return (cell["architecture"], cell["activation"], int(cell["depth"]), float(cell["sigma_w"]),
            float(cell["sigma_b"]), cell["parameterization"], int(cell["n_inputs"]), int(cell["d_in"]))


def references() -> dict[tuple, dict]:
    """The frozen cells of ``data_files/reference_kernels.json`` by :func:`reference_key` (each
    with its ``inputs``, ``nngp`` and ``ntk``; the file's header names how they were made)."""
    cells = json.loads(files("ntkcheck").joinpath("data_files", "reference_kernels.json").read_text())["cells"]
    return {reference_key(c): c for c in cells}
