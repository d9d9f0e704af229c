"""Time per gradient-descent step of an ensemble next to its FLOP floor.

Setup of issue 7: depth 2, width 2,048, 32 inputs, 16 networks, float64.
The floor is the step's matmul FLOPs divided by numpy's rate on a large square
float64 matmul measured in the same run, with the same number of BLAS threads
(``--threads``, default: the environment's).  Run from the repository root:
``python benchmarks/bench_train.py [--threads 1]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntkcheck import MLP  # noqa: E402
from ntkcheck.data import gaussian_inputs  # noqa: E402
from ntkcheck.networks import init_params  # noqa: E402
from ntkcheck.train import train_params  # noqa: E402


def step_flops(n_inputs: int, d_in: int, widths: tuple[int, ...]) -> int:
    """Matmul FLOPs of one GD step of one network: forward (2 N n_in n_out per
    layer), back-propagation (the same for every layer above the first) and
    the weight update (the same again)."""
    dims = (d_in,) + widths + (1,)
    per_layer = [2 * n_inputs * dims[l] * dims[l + 1] for l in range(len(dims) - 1)]
    return 3 * sum(per_layer) - per_layer[0]


def matmul_rate(size: int = 2048, repeats: int = 3) -> float:
    """Best FLOP/s of numpy's float64 matmul on size x size operands."""
    a = np.random.default_rng(0).standard_normal((size, size))
    b = a.T.copy()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def step_bytes(d_in: int, widths: tuple[int, ...], itemsize: int = 8) -> int:
    """Weight traffic of one GD step of one network: every weight matrix is read by
    the forward pass, read again by back-propagation (all but the first layer) and
    read and written by the update."""
    dims = (d_in,) + widths + (1,)
    sizes = [dims[l] * dims[l + 1] * itemsize for l in range(len(dims) - 1)]
    return 4 * sum(sizes) - sizes[0]


def copy_bandwidth(n_bytes: int = 512 * 1024**2, repeats: int = 3) -> float:
    """Best bytes/s (read + write) of numpy copying a large float64 array."""
    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * n_bytes / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--d-in", type=int, default=32)
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as configured)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info, threadpool_limits

    if args.threads is not None:
        threadpool_limits(args.threads)
    threads = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)
    spec = MLP(depth=args.depth, width=args.width, activation="relu")
    X = gaussian_inputs(args.inputs, args.d_in, seed=0)
    y = np.sin(X[:, 0])
    params = init_params(spec, args.d_in, seed=0, start=0, stop=args.networks)
    train_params(spec, params, X, y, 0.1, 1, record=[0])                     # warm-up
    # the machine is shared: interleave the two timings and keep the best of each
    per_step, rate = np.inf, 0.0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        train_params(spec, params, X, y, 0.1, args.steps, record=[0])
        per_step = min(per_step, (time.perf_counter() - t0) / args.steps)
        rate = max(rate, matmul_rate(repeats=1))
    floor = args.networks * step_flops(args.inputs, args.d_in, spec.widths) / rate
    bandwidth = copy_bandwidth()
    mem_floor = args.networks * step_bytes(args.d_in, spec.widths) / bandwidth
    print(f"ensemble: depth {args.depth}, width {args.width}, {args.inputs} inputs, {args.networks} networks")
    print(f"numpy float64 matmul rate ({threads} BLAS threads): {rate / 1e9:.1f} GFLOP/s")
    print(f"time per GD step: {per_step * 1e3:.1f} ms; FLOP floor: {floor * 1e3:.1f} ms; "
          f"ratio {per_step / floor:.2f}x (target <= 3x)")
    print(f"memory floor (weight traffic {args.networks * step_bytes(args.d_in, spec.widths) / 1e9:.2f} GB "
          f"at the measured copy bandwidth {bandwidth / 1e9:.1f} GB/s): {mem_floor * 1e3:.1f} ms; "
          f"ratio {per_step / mem_floor:.2f}x")


if __name__ == "__main__":
    main()
