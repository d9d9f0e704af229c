"""Time check_kernel (relu depth 3, 16 inputs, default error rates) against the previous design;
with ``--cnn``, time the 2-conv CNN check at discrepancy 0.05 instead.

The previous design, rebuilt here as the baseline: one width n = 3 L / discrepancy
with a bias allowance L / n relative per entry, M from a 400-network pilot's 90%
upper bound on the spread, for the remaining noise budget ``discrepancy - L/n``.
Runs are interleaved (new, old, new, old, ...) so that both see the same machine
load; prints wall and CPU seconds of each, their ratio and the achieved
``detectable``.  ``--jobs``: threads of the pairs design (BLAS single-threaded), processes
of the previous one's ``sample_init``.

    python benchmarks/check_kernel_speed.py [--repeats 1] [--jobs 1]

``--cnn``: a 2-conv relu CNN + global average pooling + Dense on X (4, 6, 6, 2), discrepancy 0.05
(widths from :func:`ntkcheck.check.stax_widths`, (32, 256)), the correct NTK (ntkcheck's analytic one)
and the NTK x 1.1 (a failure: both stages run); prints the plan, wall seconds and the process's user
CPU seconds (wall exceeds CPU / threads on a loaded machine).

    python benchmarks/check_kernel_speed.py --cnn [--repeats 3]
"""
import argparse
import dataclasses
import math
import os
import pathlib
import sys
import time

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from ntkcheck import MLP, ntk_kernel  # noqa: E402
from ntkcheck import stax as S  # noqa: E402
from ntkcheck.check import check_kernel  # noqa: E402
from ntkcheck.sampler import sample_init  # noqa: E402
from ntkcheck.seeding import child  # noqa: E402
from ntkcheck.stats import kernel_entries, mean_test, n_samples_for_mean  # noqa: E402

SPEC = MLP(3, 1, "relu", math.sqrt(2), 0.3)
CNN = S.serial(S.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), S.Relu(),
               S.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), S.Relu(), S.GlobalAvgPool(),
               S.Dense(1, W_std=1.2, b_std=0.1))


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


def cnn(repeats):
    X = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    ntk = ntk_kernel(CNN, X)
    for seed in range(repeats):
        for name, cand in (("correct", ntk), ("x1.1", 1.1 * ntk)):
            wall, user = time.perf_counter(), os.times().user
            res = check_kernel(cand, CNN, X, seed=seed, discrepancy=0.05, notify=lambda plan: print(f"  {plan}"))
            wall, user = time.perf_counter() - wall, os.times().user - user
            print(f"CNN {name:8s} seed {seed}: {wall:6.1f} s wall, {user:6.1f} s user CPU, {res.n_samples} pairs, "
                  f"detectable {res.detectable:.4f}, {'PASS' if res.passed else 'FAIL'}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--cnn", action="store_true", help="time the 2-conv CNN check at discrepancy 0.05")
    args = p.parse_args()
    if args.cnn:
        return cnn(args.repeats)
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
