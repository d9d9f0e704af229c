"""The ``ntkcheck`` command line.

    ntkcheck list                      claims with one-line summaries and sources
    ntkcheck verify [--budget B] ...   run the claims, print the verdict table
    ntkcheck run STUDY.toml            run (or resume) a study file
    ntkcheck report DIR                rebuild tables and figures from a study's CSVs
    ntkcheck calibrate --seeds K ...   re-run the verdicts under K seeds, measure false-fail rates

Exit codes: 0 every claim verified, 1 a claim's test failed, 2 bad input or usage, or a
setting whose kernels exceed float64 (one line on stderr, nothing written), 3 an internal
error (a bug: one line on stderr naming the file that holds the traceback; ``--debug``
prints the traceback instead), 4 inconclusive: no claim failed but some negative control
was not rejected (the study cannot show that its check can fail: widen it).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from . import __version__
from .claims import BUDGETS, FAMILY_FALSE_FAIL_RATE, all_claims, get_claim
from .runner import WORKER_TIMEOUT

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
EXIT_CODES = ("exit codes: 0 every claim verified; 1 a claim's test failed; 2 bad input or usage; "
              "3 an internal error (a bug); 4 inconclusive: no claim failed, but some negative control "
              "was not rejected (the study is too small to show that its check can fail)")
FIGURE_FORMATS = ("png", "pdf", "svg")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ntkcheck", description="Monte Carlo verification of "
                                "infinite-width neural network theory (NNGP, NTK, lazy training).",
                                epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"ntkcheck {__version__}")
    p.add_argument("--debug", action="store_true", help="on an internal error print its traceback")
    common = argparse.ArgumentParser(add_help=False)   # so --debug also works after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="list the claims with their sources", parents=[common])
    ls.add_argument("--grid", default=None, metavar="CLAIM",
                    help="print CLAIM's study-file keys instead: meaning and default per budget")

    def rate(sp, default=None):
        sp.add_argument("--false-fail-rate", type=_rate, default=default, metavar="RATE",
                        help="family-wise false-fail rate: the probability that a correct implementation fails "
                        f"some claim when every claim runs (default {FAMILY_FALSE_FAIL_RATE:g}; for report: the "
                        "study's); each claim runs at its equal share, 1 - (1 - RATE)^(1/claims)")

    def outputs(sp):
        sp.add_argument("--latex", action="store_true", help="also write LaTeX tables")
        rate(sp)
        sp.add_argument("--format", type=_formats, default=("png",), metavar="FMT[,FMT]",
                        help=f"figure formats, comma-separated from {','.join(FIGURE_FORMATS)} (default png)")

    def dask(sp):
        sp.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="address of a Dask scheduler, e.g. tcp://HOST:8786")
        sp.add_argument("--worker-timeout", type=_seconds, default=WORKER_TIMEOUT, metavar="SECONDS",
                        help=f"with --scheduler: wait this long for a worker, at the start or when all "
                             f"have left (default {WORKER_TIMEOUT:g})")

    def executors(sp):
        sp.add_argument("--jobs", type=_positive, default=None,
                        help="local worker processes (default: the study's, else the CPU count)")
        dask(sp)
        outputs(sp)
        sp.add_argument("--force", action="store_true",
                        help="run even if the study's estimated memory or work exceeds this machine's")

    v = sub.add_parser("verify", help="run the claims at a budget and print the verdict table", parents=[common],
                       epilog=EXIT_CODES)
    v.add_argument("--budget", choices=BUDGETS, default="quick")
    v.add_argument("--claims", default=None, help="comma-separated claim ids (default: all)")
    v.add_argument("--out", default=None, help="output folder (default: results/<budget>)")
    v.add_argument("--seed", type=_nonnegative, default=0, help="study seed (default 0)")
    executors(v)
    r = sub.add_parser("run", help="run or resume a study file", parents=[common], epilog=EXIT_CODES)
    r.add_argument("study", metavar="STUDY.toml")
    r.add_argument("--out", default=None, help="output folder (default: the study's)")
    r.add_argument("--seed", type=_nonnegative, default=None, help="study seed (default: the study's)")
    executors(r)
    rep = sub.add_parser("report", help="rebuild tables and figures from a study folder's CSVs",
                         parents=[common], epilog=EXIT_CODES)
    rep.add_argument("dir", metavar="DIR")
    rep.add_argument("--claims", default=None, help="comma-separated claim ids (default: the study's)")
    outputs(rep)
    rep.add_argument("--style", choices=("report", "paper"), default="report",
                     help="paper: one single-column figure per cell, figures/<claim>/<cell>.<fmt>, no verdicts")
    cal = sub.add_parser("calibrate", help="re-run each claim's verdict under K study seeds and compare "
                         "its failures with the stated false-fail rate", parents=[common])
    cal.add_argument("--budget", choices=BUDGETS, default="quick")
    cal.add_argument("--seeds", type=_positive, required=True, metavar="K", help="number of study seeds")
    cal.add_argument("--first-seed", type=_nonnegative, default=0, help="seeds are FIRST .. FIRST+K-1 (default 0)")
    cal.add_argument("--claims", default=None, help="comma-separated claim ids (default: all)")
    cal.add_argument("--out", default="results/calibration", help="output folder (default: results/calibration)")
    cal.add_argument("--jobs", type=_positive, default=None, help="local worker processes (default: the CPU count)")
    dask(cal)
    rate(cal, FAMILY_FALSE_FAIL_RATE)
    return p


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    bad = [f for f in names if f not in FIGURE_FORMATS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FIGURE_FORMATS)}, got {text!r}")
    return names


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability strictly between 0 and 1, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
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
    except (ValueError, OverflowError) as err:   # bad input, or a setting beyond float64 (named)
        print(f"ntkcheck: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as err:   # the machine's limit, not a failed claim
        print(f"ntkcheck: error: out of memory{f' ({err})' if str(err) else ''}; lower width, "
              "n_networks per chunk or --jobs", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ntkcheck: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line here, the traceback in a file (or here with --debug)
        if args.debug:
            traceback.print_exc()
            return EXIT_ERROR
        where = _save_traceback()
        first = (str(err).strip().splitlines() or [""])[0]
        saved = f"traceback in {where}" if where else "re-run with --debug for the traceback"
        print(f"ntkcheck: internal error: {type(err).__name__}: {first} ({saved}; please report it)",
              file=sys.stderr)
        return EXIT_ERROR


def _save_traceback() -> str | None:
    """Write the current exception's traceback to a new file in the temp folder; its path."""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="ntkcheck-error-", suffix=".log", delete=False,
                                         encoding="utf-8") as fh:
            fh.write(f"ntkcheck {__version__}, command: {' '.join(sys.argv)}\n\n")
            traceback.print_exc(file=fh)
            return fh.name
    except OSError:
        return None


def _dispatch(args, command: list[str]) -> int:
    from . import report

    if args.command == "list":
        if args.grid is not None:
            from .claims.keys import grid_markdown

            print(grid_markdown(get_claim(args.grid)))
            return EXIT_PASS
        for c in all_claims().values():
            print(f"{c.id:24s} {c.title}\n{'':24s} sources: {'; '.join(c.sources)}")
        return EXIT_PASS
    if args.command == "report":
        from .progress import Progress

        bar = Progress(unit="claim", announce=False)   # in a log: a line every 30 s of judging
        try:
            verdicts = report.write_report(args.dir, latex=args.latex, formats=args.format, notify=_note,
                                           family_rate=args.false_fail_rate, claims=_claim_list(args.claims),
                                           progress=bar, style=args.style)
        finally:
            bar.close()
        return _print_verdicts(verdicts, args.dir)
    from .studies import load_study, make_study

    if args.command == "calibrate":
        return _calibrate(args, command)
    if args.command == "verify":
        study = make_study(budget=args.budget, claims=_claim_list(args.claims), seed=args.seed, out=args.out)
    else:
        study = load_study(args.study, seed=args.seed)
        if args.out is not None:
            if not args.out.strip():
                raise ValueError("--out is empty: give a folder name, e.g. --out results/mine")
            study = dataclasses.replace(study, out=Path(args.out))
    from .runner import run_study

    from .progress import Progress

    if (args.scheduler or study.scheduler) is not None:
        _quiet_dask(args)
    bar = Progress()
    try:
        result = run_study(study, jobs=args.jobs, scheduler=args.scheduler, command=command, progress=bar,
                           force=args.force, worker_timeout=args.worker_timeout, notify=_note,
                           family_rate=args.false_fail_rate or FAMILY_FALSE_FAIL_RATE,
                           report=report.ReportFiles(args.latex, args.format))
    finally:
        bar.close()
    print(f"{study.out}: {result.n_run} tasks run, {result.n_skipped} already done, "
          f"{result.wall_time:.1f} s", file=sys.stderr)
    return _print_verdicts(result.verdicts, study.out)


def _claim_list(text: str | None) -> list[str] | None:
    """``--claims a,b`` as a list (None: every claim)."""
    return [c.strip() for c in text.split(",") if c.strip()] if text is not None else None


def _quiet_dask(args) -> None:
    """Dask logs a lost scheduler or worker as tracebacks, several screens of them; ntkcheck
    says what happened in one line (``--debug`` keeps Dask's log)."""
    if args.debug:
        return
    try:
        import distributed  # noqa: F401  (importing it configures the logger set here)
    except ImportError:
        return
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)     # Dask's configuration sets some children too


def _note(line: str) -> None:
    print(f"ntkcheck: {line}", file=sys.stderr, flush=True)


def _calibrate(args, command: list[str]) -> int:
    from .calibration import markdown, run_calibration
    from .progress import Progress

    claims = _claim_list(args.claims)
    if args.scheduler is not None:
        _quiet_dask(args)
    bar = Progress()
    try:
        result = run_calibration(args.budget, args.seeds, claims, args.out, jobs=args.jobs,
                                 scheduler=args.scheduler, first_seed=args.first_seed, command=command,
                                 progress=bar, family_rate=args.false_fail_rate,
                                 worker_timeout=args.worker_timeout, notify=_note)
    finally:
        bar.close()
    print(f"{args.out}: {result.n_run} tasks run, {result.n_skipped} already done, "
          f"{result.wall_time:.1f} s", file=sys.stderr)
    print(markdown(result.table, args.budget))
    return EXIT_PASS if result.ok else EXIT_FAIL


def _print_verdicts(verdicts, out=None) -> int:
    """The verdict table, cut to the terminal's width (the full text is in the .md files)."""
    from .report import _cell, verdict_frame

    df = verdict_frame(verdicts).drop(columns="claim test")
    df["negative control"] = ["rejected" if v.negative_control_rejected else "NOT rejected"
                              for v in verdicts.values()]
    cells = [list(df.columns)] + [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[k]) for r in cells) for k in range(len(df.columns) - 1)]
    columns = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 160  # logs: wider
    room = max(columns - sum(widths) - 3 * len(widths) - 4, 20)
    for r in cells:
        r[-1] = _shorten(r[-1], room)
    widths.append(max(len(r[-1]) for r in cells))
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print("\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                     *map(line, cells[1:])]))
    from .report import verified_line

    print(f"\n{verified_line(verdicts)}")
    if out is not None:
        print(f"full results: {Path(out) / 'summary.md'} (one .md per claim)")
    return exit_code(verdicts)


def exit_code(verdicts) -> int:
    """FAIL if a claim's test failed, else INCONCLUSIVE if a control was not rejected, else PASS."""
    statuses = {v.status for v in verdicts.values()}
    return EXIT_FAIL if "FAIL" in statuses else EXIT_INCONCLUSIVE if "INCONCLUSIVE" in statuses else EXIT_PASS


def _shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


if __name__ == "__main__":
    sys.exit(main())
