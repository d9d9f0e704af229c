"""Monte Carlo sanity check of ntkcheck.effective: at widths n, n x the sampled connected
four-point function of f, n x Cov(Theta_hat) and n x (E[f f] - K) against the predicted
V, A + B + B and K1 (each converges to the prediction like 1/n).  K1 needs small widths and
many networks (the mean's standard error grows like sqrt(n)): :func:`nlo_metric_check`.

The four-point function is measured through the readout kernel G (f given the last hidden
layer is N(0, G), so E[f_a f_b f_c f_d]_c = Cov(G_ab, G_cd) + 2 more pairings exactly):
``n_L Cov(G_ab, G_cd)`` estimates V_(ab)(cd).  Standard errors are batch means over 20 batches.

Run from the repository root:  python benchmarks/effective_theory.py [M]
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntkcheck import MLP, readout_kernel, sample_init  # noqa: E402
from ntkcheck.effective import layer_tensors  # noqa: E402

#: two inputs of norm^2/d = 1 at correlation 0.6
X = np.sqrt(3.0) * np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
CASES = [("relu", 3, 0.0), ("erf", 3, 0.3), ("tanh", 2, 0.2), ("gelu", 2, 0.1)]
WIDTHS = (32, 128, 512)
ENTRIES = [(0, 0, 0, 0), (0, 0, 1, 1), (0, 1, 0, 1), (0, 0, 0, 1), (1, 1, 1, 1)]
BATCHES = 20


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - a.mean()) * (b - b.mean())))


def _batched(stat, *arrays) -> tuple[float, float]:
    """The statistic on all draws and its batch-means standard error."""
    parts = [stat(*(x[i::BATCHES] for x in arrays)) for i in range(BATCHES)]
    return stat(*arrays), float(np.std(parts, ddof=1) / np.sqrt(BATCHES))


def main(M: int = 40_000):
    print(f"M = {M} networks per width (exact sampler), inputs with K^0 correlation 0.6; "
          "measured: estimate +- batch-means SE")
    for act, depth, sigma_b in CASES:
        spec0 = MLP(depth=depth, width=WIDTHS[0], activation=act, sigma_w=1.5, sigma_b=sigma_b)
        t = layer_tensors(spec0, X)
        V, theta_cov = t.vertex[-1], t.ntk_covariance() * WIDTHS[0]
        K, K1 = t.nngp[-1], t.nlo_metric[-1]
        print(f"\n{act}, depth {depth}, sigma_w 1.5, sigma_b {sigma_b}")
        for n in WIDTHS:
            spec = MLP(depth=depth, width=n, activation=act, sigma_w=1.5, sigma_b=sigma_b)
            s = sample_init(spec, X, M, seed=np.random.SeedSequence([24, n, depth]))
            G = readout_kernel(spec, s.post_grams)
            rows = []
            for a, b, c, d in ENTRIES:
                v, se = _batched(_cov, G[:, a, b], G[:, c, d])
                h, hse = _batched(_cov, s.ntk[:, a, b], s.ntk[:, c, d])
                rows.append(f"V{a}{b}{c}{d} {n * v:8.4f}+-{n * se:.4f} (pred {V[a, b, c, d]:8.4f}) | "
                            f"nCov(Th) {n * h:8.3f}+-{n * hse:.3f} (pred {theta_cov[a, b, c, d]:8.3f})")
            k1, k1se = _batched(lambda g: float(g.mean()), G[:, 0, 1])
            print(f"  n = {n:4d}: n(E G01 - K01) = {n * (k1 - K[0, 1]):8.4f}+-{n * k1se:.4f} "
                  f"(pred K1_01 {K1[0, 1]:8.4f})")
            for r in rows:
                print("     ", r)


def nlo_metric_check(M: int = 400_000, chunks: int = 8):
    """n (mean G - K) at small widths against K1 (standard errors over ``chunks`` chunks)."""
    for act, depth, sigma_b in CASES[:2]:
        spec0 = MLP(depth=depth, width=16, activation=act, sigma_w=1.5, sigma_b=sigma_b)
        t = layer_tensors(spec0, X)
        K, K1 = t.nngp[-1], t.nlo_metric[-1]
        print(f"\n{act}, depth {depth}: predicted K1 = {K1.round(4).tolist()}")
        for n in (16, 32, 64):
            spec = MLP(depth=depth, width=n, activation=act, sigma_w=1.5, sigma_b=sigma_b)
            means = np.array([readout_kernel(spec, sample_init(spec, X, M // chunks, seed=np.random.SeedSequence(
                [7, n, c])).post_grams).mean(axis=0) for c in range(chunks)])
            se = means.std(axis=0, ddof=1) / np.sqrt(chunks)
            print(f"  n = {n:3d}: n (E G - K) = {(n * (means.mean(axis=0) - K)).round(4).tolist()} "
                  f"+- {(n * se).round(4).tolist()}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
    nlo_metric_check()
