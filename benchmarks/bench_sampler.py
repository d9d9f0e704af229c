"""Speed of the exact sampler vs dense weights and vs its own floor.

Time per network for (f, Theta_hat) at depth 3, N = 8 inputs (d = 8), ReLU, for
widths 512 / 4,096 / 65,536 / 1,048,576 with ``method="exact"``, and with
``method="dense"`` where the dense weights fit in memory (n^2 * 8 bytes per layer
under ~4 GB).  The floor of the exact sampler is the time to draw its Gaussians
(``rng.standard_normal`` into a preallocated array) plus its QR/matmul FLOPs at
the rate numpy reaches on a 2,000 x 2,000 matmul on one core, both measured in
this run.  The sampler runs BLAS single-threaded itself (``sample_init`` limits
it with threadpoolctl), and so does every measurement here.  All times are CPU
seconds of this process (``time.process_time``), so that other jobs sharing the
machine slow the numbers less than wall time; on an idle machine they equal the
wall time.  The wall time of the exact sampler is printed too.

Run from the repository root:  python benchmarks/bench_sampler.py
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntkcheck import MLP, sample_init  # noqa: E402
from ntkcheck.sampler import _draw_shapes  # noqa: E402

DEPTH, N, D = 3, 8, 8
WIDTHS = (512, 4096, 65536, 1 << 20)
DENSE_MAX_LAYER_BYTES = 4 * 1024**3


def exact_flops(spec: MLP, d_in: int, n_inputs: int) -> float:
    """FLOPs of one network in the exact sampler: Householder QR (geqrf + orgqr,
    ~4 n K^2) of x^1..x^{L-1}, the forward products F A, the Grams, the readout,
    and per backward layer delta A^T, C Q, (.) Q^T, L C and the Gram of delta."""
    widths, P = spec.widths, spec.d_out * n_inputs
    ks = (min(d_in, n_inputs),) + tuple(min(n, n_inputs) for n in widths)
    flops = 0.0
    for l, n in enumerate(widths):
        flops += 2 * n_inputs * ks[l] * n + 2 * n_inputs**2 * n          # F A, pre-activation Gram
        if l < len(widths) - 1:
            flops += 4 * n * ks[l + 1] ** 2                                 # QR of x^l
    flops += 2 * (n_inputs * spec.d_out + n_inputs**2) * widths[-1]        # readout, Gram of x^L
    for l in range(len(widths), 0, -1):
        flops += 2 * P * P * widths[l - 1]                                  # Gram of delta^l
        if l > 1:
            n_out, n_in, k = widths[l - 1], widths[l - 2], ks[l - 1]
            flops += 2 * P * k * n_out + 2 * P * k * n_in * 2 + 2 * P * P * n_in
    return flops


def per_network(fn, n_networks: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per network."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn(n_networks)
    return (time.process_time() - cpu) / n_networks, (time.perf_counter() - wall) / n_networks


def main():
    with threadpool_limits(1):        # the floor is single-core, like the sampler
        run()


def run():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    # hardware rates, measured in this run
    buf = np.empty(50_000_000)
    rng.standard_normal(out=buf)                                     # touch the pages once
    gauss_rate = buf.size / per_network(lambda _: rng.standard_normal(out=buf), 1)[0]
    a = rng.standard_normal((2000, 2000))
    a @ a
    flop_rate = 2 * 2000**3 / per_network(lambda _: a @ a, 1)[0]
    del buf
    print(f"one BLAS thread  Gaussians {gauss_rate / 1e6:.0f} M/s  matmul {flop_rate / 1e9:.1f} GFLOP/s")
    print(f"depth {DEPTH}, N = {N}, d = {D}, relu; CPU seconds per network (exact wall time in the last column)")
    print(f"{'width':>9} {'exact':>9} {'floor':>9} {'ratio':>6} {'dense':>9} {'speedup':>8} {'wall':>9}")
    for width in WIDTHS:
        spec = MLP(DEPTH, width, "relu", sigma_w=math.sqrt(2))
        m_exact = max(3, int(2e8 // (width * N * DEPTH * 20)))
        sample_init(spec, X, 1, seed=99)                             # warm-up
        exact, wall = per_network(lambda m: sample_init(spec, X, m, seed=1), m_exact)
        n_gauss = sum(math.prod(s) for s in _draw_shapes(spec, D, N))
        floor = n_gauss / gauss_rate + exact_flops(spec, D, N) / flop_rate
        dense_s = speedup = "-"
        if width * width * 8 <= DENSE_MAX_LAYER_BYTES:
            m_dense = max(2, int(2e8 // (width * width * DEPTH)))
            dense = per_network(lambda m: sample_init(spec, X, m, seed=1, method="dense"), m_dense)[0]
            dense_s, speedup = f"{dense:9.2e}", f"{dense / exact:8.0f}"
        print(f"{width:>9} {exact:9.2e} {floor:9.2e} {exact / floor:6.2f} {dense_s:>9} {speedup:>8} {wall:9.2e}", flush=True)


if __name__ == "__main__":
    main()
