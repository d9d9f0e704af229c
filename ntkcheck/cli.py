"""The ``ntkcheck`` command line.

    ntkcheck list                      claims with one-line summaries and sources
    ntkcheck verify [--budget B] ...   run the claims, print the verdict table
    ntkcheck run STUDY.toml            run (or resume) a study file
    ntkcheck report DIR                rebuild tables and figures from a study's CSVs
    ntkcheck calibrate --seeds K ...   re-run the verdicts under K seeds, measure false-fail rates

Exit codes: 0 every claim verified, 1 a claim failed (or its negative control was not
rejected), 2 bad input or usage, 3 an internal error (with its traceback).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from pathlib import Path

from . import __version__
from .claims import BUDGETS, all_claims

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ntkcheck", description="Monte Carlo verification of "
                                "infinite-width neural network theory (NNGP, NTK, lazy training).")
    p.add_argument("--version", action="version", version=f"ntkcheck {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the claims with their sources")

    def executors(sp):
        sp.add_argument("--jobs", type=_positive, default=None,
                        help="local worker processes (default: the study's, else the CPU count)")
        sp.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="address of a Dask scheduler, e.g. tcp://HOST:8786")
        sp.add_argument("--latex", action="store_true", help="also write LaTeX tables")

    v = sub.add_parser("verify", help="run the claims at a budget and print the verdict table")
    v.add_argument("--budget", choices=BUDGETS, default="quick")
    v.add_argument("--claims", default=None, help="comma-separated claim ids (default: all)")
    v.add_argument("--out", default=None, help="output folder (default: results/<budget>)")
    v.add_argument("--seed", type=_nonnegative, default=0, help="study seed (default 0)")
    executors(v)
    r = sub.add_parser("run", help="run or resume a study file")
    r.add_argument("study", metavar="STUDY.toml")
    r.add_argument("--out", default=None, help="output folder (default: the study's)")
    executors(r)
    rep = sub.add_parser("report", help="rebuild tables and figures from a study folder's CSVs")
    rep.add_argument("dir", metavar="DIR")
    rep.add_argument("--latex", action="store_true", help="also write LaTeX tables")
    cal = sub.add_parser("calibrate", help="re-run each claim's verdict under K study seeds and compare "
                         "its failures with the stated false-fail rate")
    cal.add_argument("--budget", choices=BUDGETS, default="quick")
    cal.add_argument("--seeds", type=_positive, required=True, metavar="K", help="number of study seeds")
    cal.add_argument("--first-seed", type=_nonnegative, default=0, help="seeds are FIRST .. FIRST+K-1 (default 0)")
    cal.add_argument("--claims", default=None, help="comma-separated claim ids (default: all)")
    cal.add_argument("--out", default="results/calibration", help="output folder (default: results/calibration)")
    cal.add_argument("--jobs", type=_positive, default=None, help="local worker processes (default: the CPU count)")
    cal.add_argument("--scheduler", default=None, metavar="ADDR", help="address of a Dask scheduler")
    return p


def _positive(text: str) -> int:
    value = _nonnegative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, sys.argv if argv is None else ["ntkcheck", *argv])
    except ValueError as err:
        print(f"ntkcheck: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ntkcheck: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception:  # an internal error: show where
        traceback.print_exc()
        return EXIT_ERROR


def _dispatch(args, command: list[str]) -> int:
    from . import report

    if args.command == "list":
        for c in all_claims().values():
            print(f"{c.id:24s} {c.title}\n{'':24s} sources: {'; '.join(c.sources)}")
        return EXIT_PASS
    if args.command == "report":
        verdicts = report.write_report(args.dir, latex=args.latex)
        return _print_verdicts(verdicts)
    from .studies import load_study, make_study

    if args.command == "calibrate":
        return _calibrate(args, command)
    if args.command == "verify":
        claims = [c.strip() for c in args.claims.split(",") if c.strip()] if args.claims is not None else None
        study = make_study(budget=args.budget, claims=claims, seed=args.seed, out=args.out,
                           scheduler=args.scheduler)
    else:
        study = load_study(args.study)
        if args.out is not None:
            study = dataclasses.replace(study, out=Path(args.out))
    from .runner import run_study

    bar = _ProgressBar()
    try:
        result = run_study(study, jobs=args.jobs, scheduler=args.scheduler, command=command, progress=bar)
    finally:
        bar.close()
    print(f"{study.out}: {result.n_run} tasks run, {result.n_skipped} already done, "
          f"{result.wall_time:.1f} s", file=sys.stderr)
    verdicts = report.write_report(study.out, result.verdicts, latex=args.latex)
    return _print_verdicts(verdicts)


def _calibrate(args, command: list[str]) -> int:
    import os

    from .calibration import markdown, run_calibration

    claims = [c.strip() for c in args.claims.split(",") if c.strip()] if args.claims is not None else None

    bar = _ProgressBar()
    try:
        result = run_calibration(args.budget, args.seeds, claims, args.out, jobs=args.jobs or os.cpu_count() or 1,
                                 scheduler=args.scheduler, first_seed=args.first_seed, command=command,
                                 progress=bar)
    finally:
        bar.close()
    print(f"{args.out}: {result.n_run} tasks run, {result.n_skipped} already done, "
          f"{result.wall_time:.1f} s", file=sys.stderr)
    print(markdown(result.table, args.budget))
    return EXIT_PASS if result.ok else EXIT_FAIL


def _print_verdicts(verdicts) -> int:
    from .report import convergence_frame, fit_line, markdown_table, verdict_frame

    for v in verdicts.values():
        print(f"## {v.claim}\n")
        for c in v.convergence:
            print(f"{c.label}\n{fit_line(c)}\n\n{markdown_table(convergence_frame(c))}\n")
    print(markdown_table(verdict_frame(verdicts)))
    return EXIT_PASS if all(v.verified for v in verdicts.values()) else EXIT_FAIL


class _ProgressBar:
    """A tqdm bar of finished tasks on stderr, silent when stderr is not a terminal."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="task", file=sys.stderr,
                            disable=not sys.stderr.isatty(), dynamic_ncols=True)
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    sys.exit(main())
