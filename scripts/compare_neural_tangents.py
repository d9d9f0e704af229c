"""Cross-check ntkcheck's analytic kernels against neural-tangents' stax (the field's reference),
and time both.

neural-tangents is not a dependency; run this in a separate environment that has it, with
ntkcheck on the path (works with numpy 1.x there):

    python -m venv ntref && ntref/bin/pip install neural-tangents==0.6.5 jax==0.4.26 jaxlib==0.4.26 \\
        "numpy<2" "scipy<1.13" tf2jax==0.3.6 threadpoolctl "pandas<2.3" tqdm     # the last three: ntkcheck's
    PYTHONPATH=. ntref/bin/python scripts/compare_neural_tangents.py [--time-n 2000] [--repeat 3]

Prints the largest relative difference per activation for Dense(W_std, b_std)/activation x depth,
then Dense(1), NTK parameterization; then, per activation, NNGP + NTK in one call at depth 10 on
``--time-n`` inputs of dimension 16: neural-tangents' jitted kernel_fn (compiled before timing)
against ntkcheck's output_kernels, interleaved, best of ``--repeat``, and the deviation of each
from an independent float64 recursion (benchmarks/bench_kernels.py's plain numpy one); tanh
(no closed form in either library) against neural-tangents' ElementwiseNumerical quadrature,
timed on ``--tanh-n`` inputs and scaled to N (see ``tanh_timing``).
"""
import argparse
import os
import sys
import time

import numpy as np
import jax.numpy as jnp
from jax import config, jit

config.update("jax_enable_x64", True)
from neural_tangents import stax  # noqa: E402

from ntkcheck import MLP, nngp_kernel, ntk_kernel, output_kernels  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
from bench_kernels import plain_recursion  # noqa: E402

ACTS = {
    "relu": stax.Relu(), "abs": stax.Abs(), "leaky_relu(0.2)": stax.LeakyRelu(0.2), "identity": stax.Identity(),
    "erf": stax.Erf(), "sin": stax.Sin(), "cos": stax.Cos(), "gelu": stax.Gelu(approximate=False),
}


def accuracy():
    X = np.random.default_rng(0).standard_normal((6, 4))
    print("| activation | depth | sigma_w | sigma_b | max rel diff NNGP | max rel diff NTK |")
    print("|---|---|---|---|---|---|")
    for name, layer in ACTS.items():
        for depth, sw, sb in ((1, 1.0, 0.0), (3, 1.5, 0.2)):
            layers = [stax.Dense(512, W_std=sw, b_std=sb), layer] * depth + [stax.Dense(1, W_std=sw, b_std=sb)]
            _, _, kernel_fn = stax.serial(*layers)
            ref = kernel_fn(X, X, ("nngp", "ntk"))
            spec = MLP(depth, 512, name, sigma_w=sw, sigma_b=sb)
            rel = [np.max(np.abs(ours - np.asarray(theirs)) / np.abs(np.asarray(theirs)).max())
                   for ours, theirs in ((nngp_kernel(spec, X), ref.nngp), (ntk_kernel(spec, X), ref.ntk))]
            print(f"| {name} | {depth} | {sw} | {sb} | {rel[0]:.1e} | {rel[1]:.1e} |")


def timing(n, repeat, tanh_n, depth=10, sw=1.5, sb=0.1):
    X = np.random.default_rng(0).standard_normal((n, 16))
    print(f"\nNNGP + NTK in one call, depth {depth}, N = {n}, d = 16, sigma_w = {sw}, sigma_b = {sb}; "
          f"best of {repeat}, interleaved; deviation = max |K - K_plain| / max diag K_plain")
    print("| activation | neural-tangents (s) | ntkcheck (s) | NT / ntkcheck | NT dev NTK | ntkcheck dev NTK |")
    print("|---|---|---|---|---|---|")
    for name in ("relu", "erf", "gelu"):
        layers = [stax.Dense(512, W_std=sw, b_std=sb), ACTS[name]] * depth + [stax.Dense(1, W_std=sw, b_std=sb)]
        kernel_fn = jit(stax.serial(*layers)[2], static_argnames="get")
        kernel_fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready()     # compile outside the timing
        spec = MLP(depth, 512, name, sigma_w=sw, sigma_b=sb)
        t_nt, t_ours = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            theirs = kernel_fn(X, None, get=("nngp", "ntk"))
            theirs.ntk.block_until_ready()
            t_nt.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours = output_kernels(spec, X)
            t_ours.append(time.perf_counter() - t)
        _, ref = plain_recursion(X, depth, sw, sb, name)
        scale = np.abs(np.diag(ref)).max()
        dev = [np.abs(np.asarray(k) - ref).max() / scale for k in (theirs.ntk, ours.ntk)]
        print(f"| {name} | {min(t_nt):.3f} | {min(t_ours):.3f} | {min(t_nt) / min(t_ours):.2f}x "
              f"| {dev[0]:.1e} | {dev[1]:.1e} |")
    tanh_timing(X, tanh_n, repeat, depth, sw, sb)


def tanh_timing(X, sub, repeat, depth, sw, sb, deg=25):
    """tanh has no closed form in either library: neural-tangents integrates it with
    ElementwiseNumerical (a deg x deg Gauss-Hermite rule per entry, materialised for all
    entries at once, so it is timed on ``sub`` inputs and scaled by (N / sub)^2); ntkcheck
    interpolates a quadrature table in the correlation, on all N inputs.  The inputs are on
    the sphere |x|^2 = d (one variance per layer, where ntkcheck's table applies)."""
    n = len(X)
    Xs = X * np.sqrt(X.shape[1]) / np.linalg.norm(X, axis=1, keepdims=True)
    layers = [stax.Dense(512, W_std=sw, b_std=sb), stax.ElementwiseNumerical(jnp.tanh, deg=deg)] * depth
    kernel_fn = jit(stax.serial(*layers, stax.Dense(1, W_std=sw, b_std=sb))[2], static_argnames="get")
    kernel_fn(Xs[:sub], None, get=("nngp", "ntk")).ntk.block_until_ready()
    spec = MLP(depth, 512, "tanh", sigma_w=sw, sigma_b=sb)
    t_nt, t_ours = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        theirs = kernel_fn(Xs[:sub], None, get=("nngp", "ntk"))
        theirs.ntk.block_until_ready()
        t_nt.append((time.perf_counter() - t) * (n / sub) ** 2)
        t = time.perf_counter()
        ours = output_kernels(spec, Xs)
        t_ours.append(time.perf_counter() - t)
    _, ref = plain_recursion(Xs[:sub], depth, sw, sb, "tanh")      # order-100 Gauss-Hermite
    scale = np.abs(np.diag(ref)).max()
    dev = [np.abs(np.asarray(k)[:sub, :sub] - ref).max() / scale for k in (theirs.ntk, ours.ntk)]
    print(f"| tanh (sphere; NT deg {deg} on {sub} inputs, time x {(n / sub) ** 2:.0f}) | {min(t_nt):.3f} "
          f"| {min(t_ours):.3f} | {min(t_nt) / min(t_ours):.2f}x | {dev[0]:.1e} | {dev[1]:.1e} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-n", type=int, default=2000, help="inputs for the timing (0: skip it)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tanh-n", type=int, default=200,
                    help="inputs of neural-tangents' tanh quadrature timing (scaled to --time-n)")
    args = ap.parse_args()
    accuracy()
    if args.time_n:
        timing(args.time_n, args.repeat, min(args.tanh_n, args.time_n))


if __name__ == "__main__":
    main()
