"""Acceptance run for check_kernel: power against planted bugs, acceptance of the
correct kernel, achieved ``detectable`` and wall time.

Specs relu depth 3 (sigma_w = sqrt 2, sigma_b = 0.3) and erf depth 2 (sigma_w = 1.5,
sigma_b = 0.3) on N Gaussian inputs; for each seed one NTK sample (check_kernel's
design at the requested discrepancy and rates) tests six candidates: the correct
NTK, 1.03 x NTK, sigma_w + 2%, sigma_b omitted, the NTK recursion without
E[phi' phi'] on hidden layer 1, and the NNGP.  Prints the rejection rate of each
over the seeds, the design and the time of the correct relu check.

    python benchmarks/check_kernel_power.py --inputs 16 --discrepancy 0.01 --seeds 3
"""
import argparse
import pathlib
import sys
import time

import numpy as np

from ntkcheck.check import kernel_test, sample_kernel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_check import SPECS, planted  # noqa: E402  (the planted bugs live with the tests)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", type=int, default=16)
    p.add_argument("--discrepancy", type=float, default=0.01)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--false-fail-rate", type=float, default=1e-3)
    p.add_argument("--false-pass-rate", type=float, default=1e-3)
    args = p.parse_args()
    X = np.random.default_rng(0).standard_normal((args.inputs, 3))
    for label, spec in SPECS.items():
        cands = planted(spec, X)
        rejected = {name: 0 for name in cands}
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            sample = sample_kernel(spec, X, "ntk", args.false_fail_rate, seed, discrepancy=args.discrepancy,
                                   false_pass_rate=args.false_pass_rate)
            results = {name: kernel_test(c, sample) for name, c in cands.items()}
            elapsed = time.perf_counter() - t0
            for name, res in results.items():
                rejected[name] += not res.passed
            d = sample.design
            print(f"{label} seed {seed}: width {d.width}, networks {d.n_networks}, bias allowance {d.bias:.4f}, "
                  f"detectable {results['correct'].detectable:.4f} relative, {elapsed:.1f} s "
                  f"(check of the correct kernel: {results['correct']})", flush=True)
        for name, count in rejected.items():
            print(f"  {label:7s} {name:28s} rejected {count}/{args.seeds}")


if __name__ == "__main__":
    main()
