"""Measure the finite-width bias constant behind check.BIAS_COEFFICIENT.

For each spec and width n, prints max over entries of
|E[K_n](x, x') - K(x, x')| / sqrt(K(x, x) K(x', x')) * n / L (NTK and NNGP) with its
standard error and the 99% upper bound |bias| + 2.58 se, from dense networks (NNGP
from the mean over 64 i.i.d. readouts, as check_kernel does; the analytic kernel is
the reference here: this script calibrates the allowance, check_kernel never uses it).

    python benchmarks/check_kernel_bias.py
"""
import math

import numpy as np

from ntkcheck import MLP, nngp_kernel, ntk_kernel
from ntkcheck.networks import forward, init_params
from ntkcheck.sampler import sample_dense

SPECS = [MLP(3, 1, "relu", math.sqrt(2), 0.3), MLP(3, 1, "relu", math.sqrt(2), 0.0),
         MLP(1, 1, "relu", 1.0, 0.5), MLP(2, 1, "erf", 1.5, 0.3), MLP(4, 1, "tanh", 1.3, 0.2)]
WIDTHS = {16: 40_000, 64: 20_000}


def main():
    X = np.random.default_rng(0).standard_normal((6, 3))
    print(f"{'spec':28s} {'n':>4s} {'kind':5s} {'bias*n/L':>9s} {'se':>6s} {'99% bound':>9s}")
    worst = 0.0
    for spec in SPECS:
        exact = {"ntk": ntk_kernel(spec, X), "nngp": nngp_kernel(spec, X)}
        for n, m in WIDTHS.items():
            wide = MLP(spec.depth, n, spec.activation, spec.sigma_w, spec.sigma_b)
            _, ntk = sample_dense(wide, X, m, seed=1)
            many = MLP(spec.depth, n, spec.activation, spec.sigma_w, spec.sigma_b, d_out=64)
            f, _ = forward(many, init_params(many, X.shape[1], 2, 0, m), X)
            draws = {"ntk": ntk, "nngp": np.einsum("mik,mjk->mij", f, f) / f.shape[2]}
            for kind, K in exact.items():
                scale = np.sqrt(np.outer(np.diag(K), np.diag(K)))
                rel = (draws[kind].mean(0) - K) / scale * n / spec.depth
                se = draws[kind].std(0) / math.sqrt(m) / scale * n / spec.depth
                bound = np.abs(rel) + 2.58 * se
                i = np.unravel_index(np.argmax(bound), rel.shape)
                worst = max(worst, bound[i])
                label = f"{spec.act.name} L={spec.depth} sw={spec.sigma_w:.2f} sb={spec.sigma_b}"
                print(f"{label:28s} {n:4d} {kind:5s} {rel[i]:9.3f} {se[i]:6.3f} {bound[i]:9.3f}")
    print(f"largest 99% upper bound on |bias| * n / L: {worst:.3f}  (check.BIAS_COEFFICIENT = 1)")


if __name__ == "__main__":
    main()
