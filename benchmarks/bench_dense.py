"""Dense sampling at init (``sample_init(method="dense")``, the path the claims use) vs its
hardware floor, and analytic-kernel speed, measured in one run.

    python benchmarks/bench_dense.py

Floor per network = time to draw the same number of Gaussians (``standard_normal`` into a
preallocated array) + the forward/backward matmul FLOPs at numpy's measured matmul rate
(one BLAS thread, as the sampler uses); for stax CNNs the conv matmuls on patches (the
weight-gradient correlations the empirical NTK needs are not in the floor).  The machine may be shared: the sampler and the
floor are timed alternately and the best of each is kept, in wall seconds and in the process's CPU
seconds (both single-threaded, so on a loaded machine the CPU ratio is the one that does not depend
on how often the longer sampler call was preempted); the load average is printed at the end.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntkcheck import MLP, output_kernels, sample_init  # noqa: E402
from ntkcheck import stax as S  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from stax_networks import transformer  # noqa: E402


def best_of(fn, repeat=3, clock=time.perf_counter):
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def matmul_rate(n=2048, clock=time.perf_counter):
    a, b = np.random.default_rng(0).standard_normal((2, n, n))
    return 2 * n**3 / best_of(lambda: a @ b, clock=clock)


def draw_time(count, clock=time.perf_counter):
    out, rng = np.empty(count), np.random.default_rng(0)
    return best_of(lambda: rng.standard_normal(out=out), clock=clock)


def dense_and_floor(net, X, M, gaussians, flops, flops_rate):
    """Seconds per network of ``sample_init(method="dense")`` and of its floor, the best of three
    alternate timings of each: ``{"wall": (dense, floor), "cpu": (dense, floor)}``."""
    best = {clock: [np.inf, np.inf] for clock in ("wall", "cpu")}
    for _ in range(3):
        for name, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
            t = best_of(lambda: sample_init(net, X, M, seed=0, method="dense"), repeat=1, clock=clock) / M
            with threadpool_limits(1, user_api="blas"):
                rate = max(flops_rate, matmul_rate(clock=clock))
            floor = draw_time(gaussians * M, clock=clock) / M + flops / rate
            best[name] = [min(best[name][0], t), min(best[name][1], floor)]
    return {name: tuple(v) for name, v in best.items()}


def row(label, M, times) -> str:
    """A table row: wall and CPU seconds per network of the sampler and its floor, and their ratios."""
    (t, floor), (tc, floor_c) = times["wall"], times["cpu"]
    return f"| {label} | {M} | {t:.4g} | {floor:.4g} | {t / floor:.2f} | {tc:.4g} | {floor_c:.4g} | {tc / floor_c:.2f} |"


HEADER = "| networks | dense s/net | floor s/net | ratio | dense CPU s/net | floor CPU s/net | CPU ratio |"


def main():
    with threadpool_limits(1, user_api="blas"):
        flops_rate = matmul_rate()
    print(f"numpy matmul (1 BLAS thread): {flops_rate / 1e9:.1f} GFLOP/s;  "
          f"Gaussian RNG: {2**24 / draw_time(2**24) / 1e6:.0f} M/s")
    print("| width " + HEADER)
    print("|---" * 8 + "|")
    d, N, depth = 8, 8, 2
    X = np.random.default_rng(1).standard_normal((N, d))
    for width, M in ((512, 64), (2048, 8), (4096, 4)):
        spec = MLP(depth, width, "relu")
        dims = (d,) + spec.widths + (1,)
        gaussians = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))
        # forward h = x W^T per layer, backward delta W per hidden layer, Grams are O(N^2 n)
        flops = sum(2 * N * dims[i] * dims[i + 1] for i in range(len(dims) - 1))
        flops += sum(2 * N * dims[i] * dims[i + 1] for i in range(1, len(dims) - 1))
        print(row(width, M, dense_and_floor(spec, X, M, gaussians, flops, flops_rate)))
    print("| CNN (SAME convs, relu, GlobalAvgPool, Dense) " + HEADER)
    print("|---" * 8 + "|")
    for chan, filt, shape, M in ((256, (3,), (16, 3), 32), (128, (3, 3), (8, 8, 3), 8)):
        conv = lambda: S.Conv(chan, filt, padding="SAME", b_std=0.1)  # noqa: E731
        net = S.serial(conv(), S.Relu(), conv(), S.Relu(), S.GlobalAvgPool(), S.Dense(1))
        X = np.random.default_rng(1).standard_normal((N,) + shape)
        P, taps = int(np.prod(shape[:-1])), int(np.prod(filt))
        gaussians = S.bytes_per_network(net, shape, 0) // 8        # parameters only, with no inputs
        # forward per layer 2 N P fan_in out; backward to the input of the second conv the same
        layers = [(P, taps * shape[-1], chan), (P, taps * chan, chan), (1, chan, 1)]
        flops = sum(2 * N * p * i * o for p, i, o in layers) + 2 * N * P * taps * chan * chan
        print(row(f"{chan} channels, filter {filt}, inputs {N}x{shape}", M,
                  dense_and_floor(net, X, M, gaussians, flops, flops_rate)))
    transformer_rows(N, flops_rate)
    X = np.random.default_rng(2).standard_normal((2000, 10))
    spec = MLP(10, 512, "relu", sigma_w=1.4, sigma_b=0.1)
    t = best_of(lambda: output_kernels(spec, X))
    print(f"analytic NNGP+NTK, relu, depth 10, 2000 inputs: {t:.3f} s")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def transformer_rows(N, flops_rate):
    """The transformer encoder of ``scripts/stax_networks.py`` (2 blocks, 4 heads, key and value
    channels = width).  Floor: the parameters' Gaussians + the matmuls of the forward pass
    (embedding, key and value projections -- queries are tied to keys --, logits, weighted values,
    output projection, MLP) and of the backward pass to the embedding's output (the same but the
    embedding); the weight-gradient correlations of the empirical NTK are not in it."""
    print("| transformer (2 blocks, 4 heads) " + HEADER)
    print("|---" * 8 + "|")
    for width, (P, d), M in ((64, (8, 8), 32), (256, (16, 8), 8)):
        net = transformer(S, S.Relu, blocks=2, width=width)
        X = np.random.default_rng(1).standard_normal((N, P, d))
        gaussians = S.bytes_per_network(net, (P, d), 0) // 8        # parameters only, with no inputs
        H = 4
        block = 2 * P * width * H * width * 3 + 2 * 2 * H * P * P * width + 2 * 2 * P * width * width
        embed = 2 * P * d * width
        flops = N * (embed + 2 * 2 * block + 2 * width)           # forward and backward of the blocks
        print(row(f"width {width}, inputs {N}x{P}x{d}", M, dense_and_floor(net, X, M, gaussians, flops, flops_rate)))


if __name__ == "__main__":
    main()
