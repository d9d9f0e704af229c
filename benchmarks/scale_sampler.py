"""Scale run of the exact sampler: width 10^6, 1,000 networks, N = 8, depth 3 (ReLU),
default memory cap.  Prints wall time, time per network and peak resident memory.

Run from the repository root (about half an hour):  python benchmarks/scale_sampler.py
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ntkcheck.sampler as sampler  # noqa: E402
from ntkcheck import MLP, ntk_kernel, sample_init  # noqa: E402

WIDTH, M, N, D, DEPTH = 1_000_000, 1000, 8, 8, 3


def _with_progress(chunk_fn, t0):
    """The chunk function, logging networks done to stderr every 50 networks."""
    def run(spec, X, seed, start, stop, workspace):
        out = chunk_fn(spec, X, seed, start, stop, workspace)
        if stop // 50 > start // 50:
            print(f"{stop} networks, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return out
    return run


def main():
    X = np.random.default_rng(0).standard_normal((N, D))
    sampler._exact_chunk = _with_progress(sampler._exact_chunk, time.perf_counter())
    spec = MLP(DEPTH, WIDTH, "relu", sigma_w=math.sqrt(2))
    t = time.perf_counter()
    s = sample_init(spec, X, M, seed=0, method="exact")
    elapsed = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    theta = ntk_kernel(spec, X)
    rel = np.abs(s.ntk.mean(0) - theta).max() / np.abs(theta).max()
    print(f"width {WIDTH}, {M} networks, N = {N}, depth {DEPTH}: {elapsed:.0f} s, "
          f"{elapsed / M:.2f} s/network, peak RSS {peak_gb:.2f} GB, "
          f"finite {np.isfinite(s.ntk).all() and np.isfinite(s.f).all()}, "
          f"max |mean ntk - Theta| / max Theta = {rel:.1e}")


if __name__ == "__main__":
    main()
