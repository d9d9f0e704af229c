"""Calibration: re-run every claim's whole verdict under many study seeds and compare the
number of failures with the false-fail rate the verdict states.

A verdict's ``false_fail_rate`` is a claim about a probability; this module measures it.
Each (claim, seed) pair is an ordinary study of one claim (its own folder, so runs resume
and ``--claims`` or ``--seeds`` may grow later); the tasks of all pairs go through one
executor pass, so every worker stays busy.  Layout of the output folder::

    <out>/runs/<claim>/seed-<s>/   a study folder (tasks/, <claim>.csv, metadata.json)
    <out>/seeds.csv                one row per finished (claim, seed): passed, control rejected, ...
    <out>/calibration.csv          one row per claim (columns below), over every finished
                                   seed in the folder (earlier invocations included)
    <out>/calibration.md           the same as a markdown table
    <out>/metadata.json            budget, seeds, versions, git commit, runs

Per claim, over K seeds: the verdict's claim test failed ``claim_failures`` times and its
negative control was not rejected ``controls_not_rejected`` times.  The measured rate is
``claim_failures / K`` with the exact Clopper-Pearson interval (Clopper & Pearson 1934,
Biometrika 26) at ``CI_LEVEL``; ``pvalue`` is the exact one-sided binomial test of the
failure count against the stated rate, ``P(X >= failures)`` for ``X ~ Bin(K, stated)``
(failing *less* often than stated is conservative, not a defect).  ``consistent`` is
``pvalue > TEST_LEVEL``.  One more row, :func:`family_row`, does the same for the suite's
exit code (a seed fails when any claim fails or any control is not rejected) against the
family-wise rate.  Verdicts are judged at ``family_rate``'s per-claim share.  The verdicts are recomputed from the stored rows on every run
(cheap next to the networks), so they always reflect the current verdict code.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import resources
from .claims import FAMILY_FALSE_FAIL_RATE, Task, all_claims, family_false_fail_rate, get_claim
from .runner import (WORKER_TIMEOUT, _git_commit, _nothing, _portable_command, _versions, dask_client, execute,
                     local_pool, plan)
from .store import Store, csv_text
from .studies import Study, make_study

CI_LEVEL = 0.95
TEST_LEVEL = 0.05

COLUMNS = ("claim", "seeds", "claim_failures", "controls_not_rejected", "verdict_errors",
           "stated_false_fail_rate", "measured_rate", "ci_low", "ci_high", "ci_level", "pvalue",
           "test_level", "consistent")
#: At most this many (claim, seed) folders are open (locked: one file descriptor each) at once.
OPEN_FOLDERS = 32
SEED_COLUMNS = ("claim", "seed", "passed", "control_rejected", "false_fail_rate", "error", "summary")


@dataclass(frozen=True)
class CalibrationResult:
    """Per-claim table (:data:`COLUMNS`), per-seed outcomes (:data:`SEED_COLUMNS`) and how
    many tasks this invocation computed / skipped."""

    table: list[dict]
    outcomes: list[dict]
    n_tasks: int
    n_run: int
    n_skipped: int
    wall_time: float

    @property
    def ok(self) -> bool:
        """Every claim consistent with its stated rate, every control rejected, no errors."""
        return all(r["consistent"] and r["controls_not_rejected"] == 0 and r["verdict_errors"] == 0
                   for r in self.table)


def calibration_studies(budget: str, seeds: int, claims=None, out="results/calibration",
                        overrides=None, first_seed: int = 0) -> list[Study]:
    """One validated study per (seed, claim), seeds ``first_seed .. first_seed + seeds - 1``,
    seed-major (an interrupted run leaves whole seeds finished)."""
    calibration_estimate(budget, seeds, claims, overrides)
    claims = list(make_study(budget, claims=claims, out=out, overrides=overrides).claims)
    out = Path(out)
    return [make_study(budget, claims=[c], seed=s, out=out / "runs" / c / f"seed-{s}", name=f"seed-{s}",
                       overrides={c: (overrides or {})[c]} if c in (overrides or {}) else None)
            for s in range(first_seed, first_seed + seeds) for c in claims]


def calibration_estimate(budget: str, seeds: int, claims=None, overrides=None) -> resources.Estimate:
    """The cost of ``seeds`` seeds from one seed's tasks (a task's cost does not depend on
    its seed), before any study is built; ValueError beyond :data:`resources.MAX_TASKS` tasks."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    one = resources.estimate(plan(make_study(budget, claims=claims, overrides=overrides)))
    est = resources.Estimate(one.n_tasks * seeds, one.task_bytes, one.work * seeds)
    if est.n_tasks > resources.MAX_TASKS:
        raise ValueError(f"{seeds} seeds make {est.n_tasks} tasks ({one.n_tasks} per seed; more than "
                         f"{resources.MAX_TASKS}); calibrate fewer seeds at a time (--first-seed continues "
                         "where the last run stopped, into the same --out)")
    return est


def run_calibration(budget: str = "quick", seeds: int = 20, claims=None, out="results/calibration",
                    jobs: int | None = None, scheduler: str | None = None, overrides=None, first_seed: int = 0,
                    command: list[str] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    family_rate: float = FAMILY_FALSE_FAIL_RATE,
                    worker_timeout: float = WORKER_TIMEOUT,
                    notify: Callable[[str], None] | None = None) -> CalibrationResult:
    """Run (or resume) the calibration and write its files (see the module docstring).

    Everything is validated before anything is written, the estimated memory and work
    first (:mod:`ntkcheck.resources`); ``jobs`` (default: the CPUs) is capped as in
    :func:`ntkcheck.runner.run_study`; ``progress(done, total)`` and ``notify(line)`` as there.
    """
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    est = calibration_estimate(budget, seeds, claims, overrides)
    asked = jobs
    jobs, why = resources.cap_jobs(jobs or resources.cpu_count(), est.n_tasks, est.task_bytes)
    if asked and why and scheduler is None and notify:
        notify(f"note: --jobs {asked} capped at {jobs}, {why}")
    resources.check_study(est, 1 if scheduler is not None else jobs)
    studies = calibration_studies(budget, seeds, claims, out, overrides, first_seed)
    root = Store(out)
    root.check_writable()
    planned = [(st, get_claim(st.claims[0]).tasks(st.grids[st.claims[0]], st.seed)) for st in studies]
    folders = _Folders(studies)
    for st in studies:  # refuse a folder of other results before writing anything
        meta = folders.stores[st.out].read_metadata() if st.out.is_dir() else None
        if meta is not None and meta.get("study") != st.fingerprint():
            raise ValueError(f"{st.out} holds results of a different grid or budget; choose another --out")
    with (dask_client(scheduler, worker_timeout=worker_timeout, notify=notify) if scheduler is not None
          else _nothing()) as client, root:
        # the folder's own "study": a calibration of this budget (claims and seeds may grow)
        root.open({"calibration": True, "budget": budget, "claims": []})
        try:
            for st in studies:
                store = folders.open(st.out)
                if store.read_metadata() is None:
                    store.write_metadata({"name": st.name, "study": st.fingerprint()})
                folders.close(st.out)     # its manifest stays loaded: is_done below needs no lock
            owner: dict[int, Path] = {}
            everything: list[Task] = []
            for st, tasks in planned:
                for t in tasks:
                    owner[id(t)] = st.out
                    everything.append(t)
            pending = [t for t in everything if not folders.stores[owner[id(t)]].is_done(t)]
            left = Counter(owner[id(t)] for t in pending)
            meta = root.read_metadata() or {"study": {"calibration": True, "budget": budget, "claims": []},
                                            "runs": []}
            meta.update(budget=budget, versions=_versions(), git_commit=_git_commit())
            meta["runs"].append({"command": _portable_command(command if command is not None else sys.argv),
                                 "started": started.isoformat(timespec="seconds"),
                                 "seeds": [first_seed, first_seed + seeds - 1],
                                 "claims": sorted({st.claims[0] for st in studies}),
                                 "executor": f"dask {scheduler}" if scheduler else f"local jobs={jobs}"})
            root.write_metadata(meta)
            done = len(everything) - len(pending)
            if progress:
                progress(done, len(everything))
            for task, rows in execute(pending, jobs, client, worker_timeout, notify):
                folder = owner[id(task)]
                folders.open(folder).write_task(task, rows)
                left[folder] -= 1
                if not left[folder]:
                    folders.close(folder)
                done += 1
                if progress:
                    progress(done, len(everything), task.claim)
        finally:
            folders.close_all()
        outcomes = _judge(finished(root.root, budget), jobs if scheduler is None else 1, family_rate)
        table = summarize(outcomes)
        table.append(family_row(outcomes))
        root.write_file(root.root / "seeds.csv", csv_text(outcomes, list(SEED_COLUMNS)))
        root.write_file(root.root / "calibration.csv", csv_text(table, list(COLUMNS)))
        root.write_file(root.root / "calibration.md", markdown(table, budget) + "\n")
        wall = time.perf_counter() - t0
        meta["runs"][-1].update(wall_time_s=round(wall, 3), tasks_run=len(pending))
        root.write_metadata(meta)
    return CalibrationResult(table, outcomes, len(everything), len(pending), len(everything) - len(pending), wall)


class _Folders:
    """The (claim, seed) study folders of a calibration, at most ``limit`` of them open at
    once: an open folder holds its lock, one file descriptor, and thousands of folders
    would exhaust the process's limit (1,024 by default).  The calibration folder's own
    lock keeps other calibrations out of all of them meanwhile."""

    def __init__(self, studies: list[Study], limit: int = OPEN_FOLDERS):
        self.fingerprints = {st.out: st.fingerprint() for st in studies}
        self.stores = {out: Store(out) for out in self.fingerprints}
        self.limit = limit
        self.held: dict[Path, None] = {}      # open folders, least recently used first

    def open(self, out: Path) -> Store:
        """The store of ``out``, opened (and so locked) unless it is already."""
        if out in self.held:
            self.held[out] = self.held.pop(out)
        else:
            while len(self.held) >= self.limit:
                self.close(next(iter(self.held)))
            self.stores[out].open(self.fingerprints[out])
            self.held[out] = None
        return self.stores[out]

    def close(self, out: Path) -> None:
        if out in self.held:
            del self.held[out]
            self.stores[out].close()

    def close_all(self) -> None:
        for out in list(self.held):
            self.close(out)


def finished(out: Path, budget: str) -> list[tuple[str, int, list[Task], Path]]:
    """Every finished (claim, seed) study of ``budget`` under ``out/runs``, also those of
    earlier invocations (so cheap claims may have more seeds), in claim then seed order."""
    found = []
    for c in all_claims():
        for path in (out / "runs" / c).glob("seed-*"):
            meta = Store(path).read_metadata()
            study = (meta or {}).get("study", {})
            if study.get("budget") != budget or study.get("claims") != [c]:
                continue
            # the stored grid has sorted keys; the budget's key order defines the task keys
            try:
                grid = make_study(budget, claims=[c], overrides={c: study["grids"][c]}).grids[c]
            except ValueError:      # a grid the claim no longer has: results of older code
                continue
            tasks = get_claim(c).tasks(grid, study["seed"])
            with Store(path) as store:
                store.open_existing()
                if all(store.is_done(t) for t in tasks):
                    found.append((c, study["seed"], tasks, path))
    order = list(all_claims())
    return sorted(found, key=lambda f: (order.index(f[0]), f[1]))


def _judge(found: list, jobs: int, family_rate: float = FAMILY_FALSE_FAIL_RATE) -> list[dict]:
    """The verdicts of the finished studies, on ``jobs`` processes (each verdict is seeded by
    its data, so the outcomes do not depend on ``jobs``)."""
    if jobs == 1 or len(found) <= 1:
        return [_outcome(*f, family_rate) for f in found]
    with local_pool(jobs) as pool:
        return list(pool.map(_outcome, *zip(*found), [family_rate] * len(found)))


def _outcome(claim: str, seed: int, tasks: list[Task], path: Path, family_rate: float) -> dict:
    """The verdict of one (claim, seed) study, from its stored rows."""
    row = {"claim": claim, "seed": seed}
    with Store(path) as store:
        store.open_existing()
        store.consolidate(claim, tasks)
        df = store.read_claim(claim)
    try:
        v = get_claim(claim).judge(df, family_rate)
    except Exception as err:  # a verdict that crashes on some seeds is a finding, not a stop
        return {**row, "passed": None, "control_rejected": None, "false_fail_rate": None,
                "error": f"{type(err).__name__}: {err}".replace("\n", " "), "summary": ""}
    return {**row, "passed": bool(v.passed), "control_rejected": bool(v.negative_control_rejected),
            "false_fail_rate": float(v.false_fail_rate), "error": "", "summary": v.summary.replace("\n", " ")}


def clopper_pearson(k: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes in n trials (Clopper & Pearson 1934)."""
    from scipy.stats import beta

    a = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def binomial_pvalue(k: int, n: int, rate: float) -> float:
    """Exact one-sided p-value ``P(X >= k)``, ``X ~ Bin(n, rate)``: are there too many failures?"""
    from scipy.stats import binom

    if k == 0:
        return 1.0
    if not rate > 0:
        return 0.0
    return float(binom.sf(k - 1, n, rate))


def summarize(outcomes: list[dict]) -> list[dict]:
    """One :data:`COLUMNS` row per claim (in first-seen order) from per-seed outcomes."""
    table = []
    for claim in dict.fromkeys(o["claim"] for o in outcomes):
        rows = [o for o in outcomes if o["claim"] == claim]
        ok = [o for o in rows if not o["error"]]
        n, fails = len(ok), sum(not o["passed"] for o in ok)
        # a verdict states one rate; if seeds disagree (data-dependent), the largest is the claim
        stated = max((o["false_fail_rate"] for o in ok), default=math.nan)
        lo, hi = clopper_pearson(fails, n) if n else (math.nan, math.nan)
        p = binomial_pvalue(fails, n, stated) if n else math.nan
        table.append({"claim": claim, "seeds": n, "claim_failures": fails,
                      "controls_not_rejected": sum(not o["control_rejected"] for o in ok),
                      "verdict_errors": len(rows) - n, "stated_false_fail_rate": stated,
                      "measured_rate": fails / n if n else math.nan, "ci_low": lo, "ci_high": hi,
                      "ci_level": CI_LEVEL, "pvalue": p, "test_level": TEST_LEVEL,
                      "consistent": bool(n and p > TEST_LEVEL)})
    return table


FAMILY = "all claims (exit code)"


def family_row(outcomes: list[dict]) -> dict:
    """The suite's exit code as one more :data:`COLUMNS` row: over the seeds at which every
    claim of the folder has a verdict, a seed fails when some claim failed or some control
    was not rejected (``verify`` exits non-zero).  Its stated rate is the product-rule
    family rate of the claims' stated rates (claims are independent given the seed); a
    control's misses are not part of that statement, so they count against it."""
    claims = list(dict.fromkeys(o["claim"] for o in outcomes))
    by_seed: dict[int, list[dict]] = {}
    for o in outcomes:
        by_seed.setdefault(o["seed"], []).append(o)
    complete = [rows for rows in by_seed.values()
                if {r["claim"] for r in rows if not r["error"]} == set(claims)]
    n = len(complete)
    fails = sum(any(not (r["passed"] and r["control_rejected"]) for r in rows if not r["error"]) for rows in complete)
    stated = family_false_fail_rate(max((o["false_fail_rate"] for o in outcomes if o["claim"] == c and not o["error"]),
                                        default=0.0) for c in claims)
    lo, hi = clopper_pearson(fails, n) if n else (math.nan, math.nan)
    p = binomial_pvalue(fails, n, stated) if n else math.nan
    return {"claim": FAMILY, "seeds": n, "claim_failures": fails,
            "controls_not_rejected": sum(any(not r["control_rejected"] for r in rows if not r["error"])
                                         for rows in complete),
            # seeds at which some verdict raised (not the verdicts outside the complete seeds)
            "verdict_errors": sum(any(r["error"] for r in rows) for rows in by_seed.values()),
            "stated_false_fail_rate": stated, "measured_rate": fails / n if n else math.nan,
            "ci_low": lo, "ci_high": hi, "ci_level": CI_LEVEL, "pvalue": p, "test_level": TEST_LEVEL,
            "consistent": bool(n and p > TEST_LEVEL)}


def markdown(table: list[dict], budget: str) -> str:
    """The calibration table in markdown, with a line saying how to read it."""
    head = ("| claim | seeds | claim failures | controls not rejected | verdict errors | stated false-fail rate "
            f"| measured rate [{100 * CI_LEVEL:g}% Clopper-Pearson] | binomial p (too many failures) "
            f"| consistent at {TEST_LEVEL:g} |")
    lines = [f"Calibration at the {budget} budget: each claim's verdict re-run under independent study seeds.",
             "", head, "|" + "---|" * 9]
    for r in table:
        lines.append(f"| {r['claim']} | {r['seeds']} | {r['claim_failures']} | {r['controls_not_rejected']} "
                     f"| {r['verdict_errors']} | {r['stated_false_fail_rate']:.3g} | {r['measured_rate']:.3g} "
                     f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}] | {r['pvalue']:.3g} "
                     f"| {'yes' if r['consistent'] else 'NO'} |")
    return "\n".join(lines)
