"""Analytic NNGP + NTK (output_kernels) against a plain numpy implementation of the recursion.

Per activation: our time, the plain recursion's time (both in this run, interleaved, best of
``--repeat``), their ratio and the largest deviation relative to the kernel's scale.  The plain
recursion is the textbook one: full N x N arrays, one numpy expression per formula
(Cho & Saul 2009 arc-cosine kernels for relu, Williams 1997 for erf, the same closed form as
ntkcheck for gelu, tensor Gauss-Hermite quadrature for tanh).  tanh runs on the inputs scaled to
the sphere |x|^2 = d (one variance per layer: ntkcheck then interpolates a table in the
correlation; on inputs of distinct norms it does quadrature per entry, which is slow at N = 2000),
and its plain quadrature is timed on ``--plain-rows`` inputs and scaled by (N / rows)^2.

    python benchmarks/bench_kernels.py            # depth 10, N = 2000, d = 16
    python benchmarks/bench_kernels.py --n 500 --acts relu erf
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from ntkcheck import MLP, output_kernels


def _relu(K, d):
    norm = np.sqrt(np.outer(d, d))
    c = np.clip(K / np.where(norm > 0, norm, 1), -1, 1)
    th = np.arccos(c)
    return norm * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi), (np.pi - th) / (2 * np.pi)


def _erf(K, d):
    ab = np.outer(1 + 2 * d, 1 + 2 * d)
    return (2 / np.pi) * np.arcsin(np.clip(2 * K / np.sqrt(ab), -1, 1)), (4 / np.pi) / np.sqrt(ab - 4 * K**2)


def _gelu(K, d):
    a, b, c = d[:, None], d[None, :], K
    s11, s22 = a + 1, b + 1
    det = s11 * s22 - c * c
    rho = np.clip(c / np.sqrt(s11 * s22), -1, 1)
    p = 0.25 + np.arcsin(rho) / (2 * np.pi)
    r = np.sqrt(1 - rho * rho)
    m_diag = p + rho * r / (2 * np.pi)
    m12 = np.sqrt(s11 * s22) * (rho * p + r / (2 * np.pi))
    a1, a2, b1, b2 = (a * s22 - c * c) / det, c / det, c / det, (b * s11 - c * c) / det
    nngp = a1 * s11 * m_diag * b1 + a1 * m12 * b2 + a2 * m12 * b1 + a2 * s22 * m_diag * b2 + c / det * p
    ntk = p + c / (2 * np.pi * np.sqrt(det)) * (1 / s11 + 1 / s22 + 1 / det)
    return nngp, ntk


def _gauss_hermite(fn, deriv, order=100):
    """E[f(u) f(v)] by an order x order Gauss-Hermite rule per entry (as a generic
    Elementwise-numerical layer does), entries in chunks."""
    z, w = hermegauss(order)
    w = w / np.sqrt(2 * np.pi)

    def dual(K, d):
        s = np.sqrt(d)
        out = [np.empty_like(K), np.empty_like(K)]
        for i in range(len(d)):
            c = np.clip(K[i] / np.maximum(s[i] * s, 1e-300), -1, 1)[:, None, None]
            v = s[:, None, None] * (c * z[:, None] + np.sqrt(1 - c * c) * z[None, :])
            for o, g in zip(out, (fn, deriv)):
                o[i] = np.einsum("i,j,ij,nij->n", w, w, g(s[i] * z)[:, None], g(v))
        return out
    return dual


PLAIN = {"relu": _relu, "erf": _erf, "gelu": _gelu,
         "tanh": _gauss_hermite(np.tanh, lambda x: 1 / np.cosh(x) ** 2)}


def plain_recursion(X, depth, sigma_w, sigma_b, act):
    """NTK parameterization: K^1 = sw^2 x.x'/d + sb^2, K^{l+1} = sw^2 E[phi phi] + sb^2,
    Theta^{l+1} = K^{l+1} + sw^2 E[phi' phi'] Theta^l (Jacot et al. 2018)."""
    K = sigma_w**2 * X @ X.T / X.shape[1] + sigma_b**2
    theta = K.copy()
    for _ in range(depth):
        P, Pdot = PLAIN[act](K, np.diag(K).copy())
        K = sigma_w**2 * P + sigma_b**2
        theta = K + sigma_w**2 * Pdot * theta
    return K, theta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--acts", nargs="+", default=["relu", "erf", "gelu", "tanh"])
    ap.add_argument("--plain-rows", type=int, default=60,
                    help="tanh: the plain quadrature is timed on this many inputs and scaled by (N/rows)^2")
    args = ap.parse_args(argv)
    X = np.random.default_rng(0).standard_normal((args.n, args.dim))
    sw, sb = 1.5, 0.1
    print(f"output_kernels (NNGP + NTK), depth {args.depth}, N = {args.n}, d = {args.dim}, "
          f"sigma_w = {sw}, sigma_b = {sb}; best of {args.repeat}, interleaved")
    print("| activation | ntkcheck (s) | plain numpy (s) | speed-up | max dev NNGP | max dev NTK |")
    print("|---|---|---|---|---|---|")
    for act in args.acts:
        spec = MLP(args.depth, 1, act, sigma_w=sw, sigma_b=sb)
        Xa = X if act != "tanh" else X * np.sqrt(args.dim) / np.linalg.norm(X, axis=1, keepdims=True)
        sub = Xa if act != "tanh" else Xa[:min(args.plain_rows, args.n)]
        scale = (args.n / len(sub)) ** 2
        ours, plain = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            st = output_kernels(spec, Xa)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref = plain_recursion(sub, args.depth, sw, sb, act)
            plain.append((time.perf_counter() - t) * scale)
        n = len(sub)
        devs = [np.max(np.abs(a[:n, :n] - b)) / np.max(np.abs(np.diag(b))) for a, b in zip((st.nngp, st.ntk), ref)]
        note = f" (sphere; plain on {n} inputs, time x {scale:.0f})" if n < args.n else ""
        print(f"| {act}{note} | {min(ours):.3f} | {min(plain):.3f} | {min(plain) / min(ours):.2f}x "
              f"| {devs[0]:.1e} | {devs[1]:.1e} |")


if __name__ == "__main__":
    main()
