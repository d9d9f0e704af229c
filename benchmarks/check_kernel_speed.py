"""Time check_kernel (relu depth 3, 16 inputs, default error rates) against the previous design.

The previous design, rebuilt here as the baseline: one width n = 3 L / discrepancy
with a bias allowance L / n relative per entry, M from a 400-network pilot's 90%
upper bound on the spread, for the remaining noise budget ``discrepancy - L/n``.
Runs are interleaved (new, old, new, old, ...) so that both see the same machine
load; prints wall and CPU seconds of each, their ratio and the achieved
``detectable``.  ``--jobs``: threads of the pairs design (BLAS single-threaded), processes
of the previous one's ``sample_init``.

    python benchmarks/check_kernel_speed.py [--repeats 1] [--jobs 1]
"""
import argparse
import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from ntkcheck import MLP, ntk_kernel  # noqa: E402
from ntkcheck.check import check_kernel  # noqa: E402
from ntkcheck.sampler import sample_init  # noqa: E402
from ntkcheck.seeding import child  # noqa: E402
from ntkcheck.stats import kernel_entries, mean_test, n_samples_for_mean  # noqa: E402

SPEC = MLP(3, 1, "relu", math.sqrt(2), 0.3)


def previous_design(cand, spec, X, seed, jobs, a=1e-3, b=1e-3, delta=0.01, pilot=400):
    n = math.ceil(3 * spec.depth / delta)
    wide = dataclasses.replace(spec, width=n)
    k = len(X) * (len(X) + 1) // 2
    e, _, scale, _ = kernel_entries(sample_init(wide, X, pilot, seed=child(seed, 0)).ntk, cand)
    s = float(np.max(e.std(axis=0, ddof=1) / scale)) * math.sqrt((pilot - 1) / sps.chi2.ppf(0.1, pilot - 1))
    m = n_samples_for_mean(a, b, delta - spec.depth / n, s, k)
    draws, target, scale, _ = kernel_entries(sample_init(wide, X, m, seed=child(seed, 1), jobs=jobs).ntk, cand)
    return mean_test(draws, target, bias=spec.depth / n * scale, false_fail_rate=a, false_pass_rate=b, scale=scale)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    res = fn()
    return res, time.perf_counter() - w, time.process_time() - c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args()
    X = np.random.default_rng(0).standard_normal((16, 3))
    cand = ntk_kernel(SPEC, X)
    rows = {"pairs design": [], "previous design": []}
    for seed in range(args.repeats):
        for name, fn in (("pairs design", lambda: check_kernel(cand, SPEC, X, seed=seed, jobs=args.jobs)),
                         ("previous design", lambda: previous_design(cand, SPEC, X, seed, args.jobs))):
            res, wall, cpu = timed(fn)
            rows[name].append((wall, cpu))
            print(f"{name:16s} seed {seed}: {wall:6.1f} s wall, {cpu:6.1f} s CPU (this process), {res.n_samples} draws, "
                  f"detectable {res.detectable:.4f}, {'PASS' if res.passed else 'FAIL'}", flush=True)
    (nw, nc), (ow, oc) = (np.median(np.array(r), axis=0) for r in rows.values())
    print(f"median: pairs design {nw:.1f} s wall / {nc:.1f} s CPU; previous {ow:.1f} s / {oc:.1f} s; "
          f"ratio new/old {nw / ow:.2f} wall, {nc / oc:.2f} CPU (jobs={args.jobs})")


if __name__ == "__main__":
    main()
