"""Check ntkcheck.interop.to_neural_tangents against neural-tangents itself.

neural-tangents is not a dependency; run this in a separate environment that has it (see
scripts/compare_neural_tangents.py for the installation; ntkcheck's testing path needs only numpy,
scipy and threadpoolctl there):

    PYTHONPATH=. ntref/bin/python scripts/check_to_neural_tangents.py

For MLPs and the networks of compare_neural_tangents_stax.py (CNNs with Flatten or AvgPool,
residual networks, and those of LayerNorm, FanInConcat, SumPool, GlobalSumPool, ConvTranspose and
ConvLocal; relu and erf), prints the largest difference, relative to sqrt(K_ii K_jj), between the kernel_fn
of the translated network and (a) the same network built by neural-tangents' own calls, (b)
ntkcheck's analytic NNGP and NTK, off the diagonal / on it.  Then runs assert_kernel on one
translated kernel_fn (the property-test path, sampled in this environment's numpy and scipy).
Exit code 1 when a difference exceeds 1e-10 off the diagonal or 1e-8 on it: on the diagonal an
input meets itself at the same position, correlation 1, where relu's arccos(rho) turns
neural-tangents' round-off eps into sqrt(2 eps) (ntkcheck's derivative dual there is exactly 1/2).
"""
import math
import sys
import time

import numpy as np

from compare_neural_tangents_stax import ACTS, NETS, nt, ours   # noqa: F401 -- sets jax_enable_x64

import ntkcheck  # noqa: E402
from ntkcheck import MLP, nngp_kernel, ntk_kernel  # noqa: E402
from ntkcheck.interop import to_neural_tangents  # noqa: E402
from ntkcheck.testing import assert_kernel  # noqa: E402

TOL, DIAGONAL_TOL = 1e-10, 1e-8
MLPS = {"MLP relu depth 3": MLP(3, 1, "relu", math.sqrt(2), 0.1),
        "MLP erf depth 2, standard param.": MLP(2, 1, "erf", 1.5, 0.3, parameterization="standard"),
        "MLP leaky_relu(0.2), output scale 0.5": MLP(2, 1, "leaky_relu(0.2)", 1.3, 0.2, output_scale=0.5),
        "MLP gelu depth 4": MLP(4, 1, "gelu", 1.2, 0.0)}


def gap(ours_k, theirs) -> tuple[float, float]:
    """Largest |difference| / sqrt(K_ii K_jj) off the diagonal and on it."""
    theirs = np.asarray(theirs)
    d = np.sqrt(np.abs(np.diag(theirs)))
    rel = np.abs(ours_k - theirs) / np.outer(d, d)
    return float(np.max(rel[~np.eye(len(d), dtype=bool)])), float(np.max(np.diag(rel)))


def main() -> int:
    rng = np.random.default_rng(0)
    cases = [(name, spec, None, (3,)) for name, spec in MLPS.items()]
    cases += [(f"{name}, {act}", build(ours, getattr(ours, layer)), build(nt, getattr(nt, layer))[2], shape)
              for name, (build, shape) in NETS.items() for act, layer in ACTS.items()]
    print(f"numpy {np.__version__}; ntkcheck {ntkcheck.__version__}")
    print("| network | NTK vs neural-tangents' own build | NNGP vs ntkcheck (off diag. / diag.) | NTK vs ntkcheck |")
    print("|---|---|---|---|")
    worst = [0.0, 0.0]
    for name, net, direct, shape in cases:
        X = rng.standard_normal((4,) + shape)
        ref = to_neural_tangents(net)[2](X, None, ("nngp", "ntk"))
        gaps = [gap(nngp_kernel(net, X), ref.nngp), gap(ntk_kernel(net, X), ref.ntk)]
        if direct is not None:
            gaps.append(gap(np.asarray(direct(X, None, "ntk")), ref.ntk))
        worst = [max(w, *(g[i] for g in gaps)) for i, w in enumerate(worst)]
        cells = [f"{off:.1e} / {on:.1e}" for off, on in gaps] + ["-"]
        print(f"| {name} | {cells[2]} | {cells[0]} | {cells[1]} |")
    spec, X = MLPS["MLP relu depth 3"], rng.standard_normal((6, 3))
    t = time.perf_counter()
    result = assert_kernel(to_neural_tangents(spec)[2], spec, X, discrepancy=0.1, cache=False)
    print(f"\nassert_kernel(kernel_fn of the translated {spec!r}, 6 inputs, 10%): {result} "
          f"({time.perf_counter() - t:.1f} s)")
    fails = worst[0] > TOL or worst[1] > DIAGONAL_TOL
    print(f"largest difference {worst[0]:.1e} off the diagonal (tolerance {TOL:g}), {worst[1]:.1e} on it "
          f"({DIAGONAL_TOL:g}): {'FAIL' if fails else 'ok'}")
    return int(fails)


if __name__ == "__main__":
    sys.exit(main())
