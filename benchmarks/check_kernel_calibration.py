"""Measured false-fail rate and power of check_kernel's two-stage test.

For each seed and spec, one first-stage NTK sample (check_kernel's design at the
requested discrepancy and the stage rates, ntkcheck.check.stage_rates) tests the
correct kernel and, on the first ``--power-seeds`` seeds, planted wrong ones; a
candidate failing the first stage is retested on the confirmation sample (drawn once
per spec and seed, from the confirmation seed), exactly as check_kernel does.  Planted:
``x(1+d)`` and ``x(1-d)`` with d the requested discrepancy, sigma_w or sigma_b
raised until the largest relative error is 1.5 d, sigma_b omitted, the NTK recursion without E[phi' phi'] on hidden layer 1, and
the NNGP.  Every check goes to a CSV (one row per check with both stages' p-values,
appended as it runs, so an interrupted run keeps its rows); the summary (first-stage
and confirmed failures of the correct kernel against their stated rates, rejections of
each planted kernel, with Clopper-Pearson 95% intervals and exact binomial p-values) is
printed and written next to it.

The analytic kernels are the reference here; check_kernel never sees them.
``--width-scale s`` multiplies both widths of every pair (s < 1: smaller widths,
a larger second-order bias, a harder test of the false-fail rate than the default).

    # false-fail rate, 1,000 checks, and power (reduced design, ~20 min on 2 cores):
    python benchmarks/check_kernel_calibration.py --seeds 250 --power-seeds 50 --inputs 6 --discrepancy 0.1 \
        --width-scale 0.25 --specs relu-3,erf-2,tanh-4,gelu-3
    # power where the pilot does not bind (achieved detectable ~0.03 = the planted x(1 +- d)), ~25 min:
    python benchmarks/check_kernel_calibration.py --seeds 50 --power-seeds 50 --inputs 6 --discrepancy 0.03 \
        --width-scale 0.25 --specs relu-3,erf-2,tanh-4,gelu-3
    # power at 1% (the default design):
    python benchmarks/check_kernel_calibration.py --seeds 5 --inputs 16 --discrepancy 0.01 --specs relu-3,erf-2
"""
import argparse
import csv
import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
from scipy import optimize
from scipy import stats as sps

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ntkcheck import MLP, nngp_kernel, ntk_kernel  # noqa: E402
from ntkcheck.check import default_widths, sample_kernel, two_stage_test  # noqa: E402
from ntkcheck.kernels import KernelState, input_state  # noqa: E402
from ntkcheck.stax import flat_chain  # noqa: E402

SPECS = {"relu-3": MLP(3, 1, "relu", math.sqrt(2), 0.3), "erf-2": MLP(2, 1, "erf", 1.5, 0.3),
         "tanh-4": MLP(4, 1, "tanh", 1.3, 0.2), "gelu-3": MLP(3, 1, "gelu", 1.4, 0.1),
         "relu-6": MLP(6, 1, "relu", math.sqrt(2), 0.1)}
FIELDS = ["spec", "seed", "candidate", "size", "pvalue", "p_first", "p_confirmation", "passed", "detectable", "pairs",
          "n_s", "n_l", "seconds"]


def ntk_missing_derivative(spec, X, layer):
    """The NTK recursion with E[phi' phi'] dropped on hidden layer ``layer`` (a planted bug):
    each layer's own kernel step, except that Theta passes that nonlinearity unchanged."""
    state, fan, hidden = input_state(X, None), X.shape[1], 0
    for step in flat_chain(spec.network()):
        new = step.flat_kernel(state, fan, True)
        if step.affine:
            fan = step.out_dim
        else:
            hidden += 1
            if hidden == layer:
                new = KernelState(new.nngp, state.ntk, new.diag1, new.diag2)
        state = new
    return state.ntk


def off_by(spec, X, name, size):
    """The NTK of ``spec`` with parameter ``name`` raised until the largest relative error is ``size``."""
    ntk = ntk_kernel(spec, X)

    def excess(f):
        return relative_size(ntk_kernel(dataclasses.replace(spec, **{name: f * getattr(spec, name)}), X), ntk) - size

    f = optimize.brentq(excess, 1.0, 2.0, xtol=1e-12)
    return f"{name} +{100 * (f - 1):.2g}% (error {size:g})", ntk_kernel(
        dataclasses.replace(spec, **{name: f * getattr(spec, name)}), X)


def planted(spec, X, d):
    """The correct NTK and wrong ones: scaled by 1 +- d, sigma_w or sigma_b off by an error of 1.5 d, ..."""
    ntk = ntk_kernel(spec, X)
    return {"correct": ntk, f"x{1 + d:g}": (1 + d) * ntk, f"x{1 - d:g}": (1 - d) * ntk,
            **dict(off_by(spec, X, name, 1.5 * d) for name in ("sigma_w", "sigma_b")),
            "sigma_b omitted": ntk_kernel(dataclasses.replace(spec, sigma_b=0.0), X),
            "no E[phi'phi'] on layer 1": ntk_missing_derivative(spec, X, 1),
            "nngp for ntk": nngp_kernel(spec, X)}


def relative_size(cand, ntk):
    return float(np.max(np.abs(cand - ntk) / np.sqrt(np.outer(np.diag(ntk), np.diag(ntk)))))


def interval(k, n):
    """k/n with its Clopper-Pearson 95% interval."""
    lo = sps.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = sps.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"{k}/{n} = {k / n:.4f} [{lo:.4f}, {hi:.4f}]"


def binomial_p(k, n, rate):
    return sps.binomtest(k, n, rate).pvalue


def summary(rows, rate):
    stage = math.sqrt(rate)
    lines = [f"false-fail rate stated: {rate:g} (two stages at {stage:.4g} each)", "",
             "| spec | candidate | max rel. error | checks | first stage fails | confirmed fails (the verdict) "
             "| binomial p, first stage vs sqrt(rate) | binomial p, verdict vs rate |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["spec"], r["candidate"]) for r in rows}, key=lambda k: (k[1] != "correct", k))
    for spec, cand in keys:
        sel = [r for r in rows if r["spec"] == spec and r["candidate"] == cand]
        first = sum(float(r["p_first"]) <= stage for r in sel)
        fails = sum(not r["passed"] for r in sel)
        n = len(sel)
        tests = (f"{binomial_p(first, n, stage):.3g} | {binomial_p(fails, n, rate):.3g}" if cand == "correct"
                 else "- | -")                       # a planted kernel's rejections are power, not false fails
        lines.append(f"| {spec} | {cand} | {float(sel[0]['size']):.4f} | {n} | {interval(first, n)} | "
                     f"{interval(fails, n)} | {tests} |")
    sel = [r for r in rows if r["candidate"] == "correct"]
    if sel:
        n, first, fails = len(sel), sum(float(r["p_first"]) <= stage for r in sel), sum(not r["passed"] for r in sel)
        lines += ["", f"all specs, correct kernel: first stage failed {interval(first, n)} (stated {stage:.4g}, "
                  f"binomial p {binomial_p(first, n, stage):.3g}); the check failed {interval(fails, n)} "
                  f"(stated {rate:g}, binomial p {binomial_p(fails, n, rate):.3g})"]
        t = [float(r["seconds"]) for r in sel]
        lines.append(f"sampling time per check: median {np.median(t):.2f} s, max {np.max(t):.1f} s")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--power-seeds", type=int, default=50, help="seeds (the first ones) that also test the planted kernels")
    p.add_argument("--inputs", type=int, default=6)
    p.add_argument("--discrepancy", type=float, default=0.1)
    p.add_argument("--width-scale", type=float, default=1.0)
    p.add_argument("--specs", default=",".join(SPECS))
    p.add_argument("--false-fail-rate", type=float, default=1e-3)
    p.add_argument("--out", default="check_kernel_calibration.csv")
    args = p.parse_args()
    specs = {k: SPECS[k] for k in args.specs.split(",")}
    X = np.random.default_rng(0).standard_normal((args.inputs, 3))
    cands = {k: planted(s, X, args.discrepancy) for k, s in specs.items()}
    out = pathlib.Path(args.out)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for label, spec in specs.items():
                widths = tuple(max(1, round(args.width_scale * w)) for w in default_widths(spec.depth))
                samples, seconds = {}, []

                def draw(a, b, stage_seed, stage):        # each stage's sample drawn once, shared by the candidates
                    if stage not in samples:
                        t0 = time.perf_counter()
                        samples[stage] = sample_kernel(spec, X, "ntk", a, stage_seed, false_pass_rate=b,
                                                       discrepancy=args.discrepancy, widths=widths)
                        seconds.append(time.perf_counter() - t0)
                    return samples[stage]

                names = list(cands[label]) if seed < args.first_seed + args.power_seeds else ["correct"]
                for name in names:
                    cand = cands[label][name]
                    res = two_stage_test(cand, draw, args.false_fail_rate, seed)
                    first, second = res.details["stages"]
                    row = dict(spec=label, seed=seed, candidate=name, size=relative_size(cand, cands[label]["correct"]),
                               pvalue=res.pvalue, p_first=first.pvalue,
                               p_confirmation="" if second is None else second.pvalue, passed=res.passed,
                               detectable=res.detectable, pairs=res.n_samples, n_s=widths[0], n_l=widths[1],
                               seconds=sum(seconds))
                    writer.writerow(row)
                    rows.append(row)
                fh.flush()
    text = summary(rows, args.false_fail_rate)
    head = (f"check_kernel calibration: {args.seeds} seeds ({args.power_seeds} with planted kernels), {args.inputs} "
            f"inputs, discrepancy {args.discrepancy:g}, width scale {args.width_scale:g}\n\n")
    out.with_suffix(".md").write_text(head + text + "\n")
    print(head + text)


if __name__ == "__main__":
    main()
