"""Running a study: plan its tasks, execute the unfinished ones, store, judge.

Executors: ``jobs == 1`` runs tasks in this process; ``jobs > 1`` in a pool of local
processes (embedded, no server); ``scheduler="tcp://HOST:PORT"`` on an existing Dask
distributed cluster (optional extra ``ntkcheck[dask]``).  Dask workers only compute rows,
so a cluster needs no shared filesystem; local workers also judge each claim and draw its
report files (through temp files in the study folder) once its tasks are done.  This process
writes every file.  Every task carries
its own seed (:func:`ntkcheck.claims.task_seed`) and rows are stored in task order, so
the CSVs are byte-identical whatever the executor.
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from . import resources
from .claims import FAMILY_FALSE_FAIL_RATE, PARAM_COLUMNS, Task, Verdict, get_claim
from .display import short_repr
from .store import Store
from .studies import Study, merge_fingerprints

if TYPE_CHECKING:
    from .report import ReportFiles


@dataclass(frozen=True)
class RunResult:
    """Verdicts by claim id, and how many tasks this invocation computed / skipped."""

    __repr__ = short_repr   # no array dumps in notebooks

    verdicts: dict[str, Verdict]
    n_tasks: int
    n_run: int
    n_skipped: int
    wall_time: float


def plan(study: Study) -> dict[str, list[Task]]:
    """The tasks of every claim of the study (validates the cells; does no work).
    ValueError if a grid makes more tasks than can be planned, or a task larger than this
    machine."""
    resources.check_task_count(study.grids)
    tasks = {c: get_claim(c).tasks(study.grids[c], study.seed) for c in study.claims}
    resources.check_task_fits(resources.estimate(tasks))
    return tasks


def run_task(task: Task) -> list[dict]:
    """Compute one task's rows, with ``claim``, ``task``, ``seed`` and the cell's
    parameters filled in (see :data:`ntkcheck.claims.ROW_COLUMNS`)."""
    fixed = {"claim": task.claim, "task": task.key, "seed": int(task.seed.entropy)}
    fixed.update({k: task.params[k] for k in PARAM_COLUMNS if k in task.params})
    try:
        rows = get_claim(task.claim).run_task(task)
    except MemoryError as err:
        raise MemoryError(f"claim {task.claim}, task {task.key} ran out of memory") from err
    except OverflowError as err:   # a setting beyond float64: the input's fault, named by layer
        raise OverflowError(f"claim {task.claim}, task {task.key}: {err}") from None
    except Exception as err:  # keep the task's identity; workers may not pickle the cause
        raise RuntimeError(f"claim {task.claim}, task {task.key} failed: {err!r}") from err
    if not all("quantity" in r and "value" in r for r in rows):
        raise RuntimeError(f"claim {task.claim}: every row needs 'quantity' and 'value'")
    return [{**fixed, **r} for r in rows]


def _init_worker(parent: int) -> None:
    """Worker initializer: one BLAS thread per process (the processes share the cores),
    and exit as soon as the parent is gone (even killed by ``kill -9``)."""
    import scipy.linalg  # noqa: F401  (scipy brings its own BLAS: load it so that the limit binds it too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    resources.die_with_parent(parent)


#: Seconds to wait for a Dask scheduler's first worker (``--worker-timeout``).
WORKER_TIMEOUT = 300.0


@contextmanager
def dask_client(address: str, timeout: float = 10.0, worker_timeout: float = WORKER_TIMEOUT,
                notify: Callable[[str], None] | None = None):
    """A Dask ``Client`` connected to ``address`` with at least one worker.

    ValueError (one line) if nothing answers within ``timeout`` seconds, if what answers
    is not a Dask scheduler, if the address scheme cannot work here, or if no worker
    joins within ``worker_timeout`` seconds (``notify`` is told that we wait).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs Dask: pip install 'ntkcheck[dask]'") from None
    _check_scheme(address, timeout)
    client = _connect(Client, address, timeout)
    try:
        if not client.scheduler_info().get("workers"):
            if notify:
                notify(f"waiting for Dask workers at {address} (up to {worker_timeout:g} s; "
                       "--worker-timeout to change)")
            try:
                client.wait_for_workers(1, timeout=worker_timeout)
            except TimeoutError:
                raise ValueError(f"no Dask worker joined the scheduler at {address} within "
                                 f"{worker_timeout:g} s; start workers (dask worker {address}) "
                                 "or raise --worker-timeout") from None
        yield client
    finally:
        client.close()


def _check_scheme(address: str, timeout: float) -> None:
    """Reject at once the addresses that cannot work, with the reason; probe TCP ports
    (a refused or unresolvable address fails fast instead of retrying until timeout)."""
    if not re.match(r"^[a-z]+://\S+$", address):
        raise ValueError(f"{address!r} is not a Dask scheduler address: give one like tcp://HOST:8786")
    scheme = address.split("://", 1)[0]
    if scheme == "inproc":
        from distributed.comm.inproc import global_manager

        try:
            listener = global_manager.get_listener_for(address)
        except ValueError:
            listener = None
        if listener is None:
            raise ValueError(f"no Dask scheduler at {address}: inproc:// names a scheduler inside this same "
                             "process; for a separate scheduler use tcp://HOST:PORT")
        return
    if scheme == "ucx":
        try:
            from distributed.comm.registry import get_backend

            get_backend("ucx").get_connector()
        except Exception:             # not installed, or a stub without a connector
            raise ValueError(f"cannot use {address}: the ucx:// protocol needs the UCX backend "
                             "(distributed-ucxx), which is not installed here; use tcp://") from None
    if scheme in ("tls", "wss"):
        from distributed.security import Security

        if Security().get_connection_args("client").get("ssl_context") is None:
            raise ValueError(f"cannot use {address}: {scheme}:// needs TLS certificates in the Dask "
                             "configuration (distributed.comm.tls.ca-file, .client.cert, .client.key)")
    host = re.match(r"^(tcp|tls|ws|wss|ucx)://\[?([^\]]+?)\]?:(\d+)$", address)
    if host is None:
        raise ValueError(f"Dask scheduler address {address} has no port: use e.g. tcp://HOST:8786")
    try:
        socket.create_connection((host.group(2), int(host.group(3))), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"cannot reach Dask scheduler at {address}: {err.strerror or err}") from None


def _connect(Client, address: str, timeout: float):
    """``Client(address)`` with a hard deadline: a service that accepts the connection
    but does not speak Dask's protocol would otherwise hang the handshake forever."""
    import threading

    box: dict = {}

    def connect():
        try:
            box["client"] = Client(address, timeout=timeout, set_as_default=False)
        except BaseException as err:          # reported by the caller
            box["error"] = err

    thread = threading.Thread(target=connect, name="ntkcheck-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 2)
    if "client" in box:
        return box["client"]
    err = box.get("error")
    if err is None:
        why = f"no Dask scheduler answered within {timeout:g} s (is it a Dask scheduler?)"
    else:
        why = (str(err).splitlines() or [""])[0]
        why = why if isinstance(err, (OSError, TimeoutError)) else f"{type(err).__name__}: {why}"
    raise ValueError(f"cannot connect to Dask scheduler at {address}: {why}") from None


def execute(tasks: list[Task], jobs: int = 1, client=None, worker_timeout: float = WORKER_TIMEOUT,
            notify: Callable[[str], None] | None = None, pool: Executor | None = None
            ) -> Iterator[tuple[Task, list[dict]]]:
    """Yield ``(task, rows)`` as tasks finish, in completion order.

    ``pool``: a :func:`local_pool` of ``jobs`` workers to run them in (by default one of its
    own when ``jobs > 1``), which may take other work meanwhile: at most 2 x ``jobs`` of
    these tasks wait in it at a time, so such work starts after those at most.
    A lost executor (a local worker killed, e.g. by the out-of-memory killer; the Dask
    scheduler gone; no Dask worker for ``worker_timeout`` seconds) raises a one-line
    ValueError: the tasks yielded so far are the caller's to keep.
    """
    if client is not None:
        yield from _dask_results(tasks, client, worker_timeout, notify)
    elif pool is not None:
        yield from _pool_results(pool, tasks, jobs)
    elif jobs == 1 or len(tasks) <= 1:
        for t in tasks:
            yield t, run_task(t)
    else:
        with local_pool(jobs) as pool:
            yield from _pool_results(pool, tasks, jobs)


@contextmanager
def local_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``jobs`` worker processes (one BLAS thread each, gone with this process);
    work still waiting in it is cancelled on exit."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool_results(pool: Executor, tasks: list[Task], jobs: int) -> Iterator[tuple[Task, list[dict]]]:
    """:func:`execute` in ``pool``, submitting tasks as others finish (2 x ``jobs`` waiting)."""
    backlog, futures = iter(tasks), {}

    def top_up():
        for t in islice(backlog, max(0, 2 * jobs - len(futures))):
            futures[pool.submit(run_task, t)] = t
    top_up()
    try:
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                task, rows = futures.pop(future), pool_result(future)
                top_up()
                yield task, rows
    finally:
        for f in futures:
            f.cancel()


def pool_result(future: Future):
    """The result of a local pool's ``future``; a dead worker is a one-line ValueError."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise ValueError(f"a worker process died ({_KEPT}, or with fewer --jobs if memory "
                         "is short; killed by the system, e.g. out of memory?)") from None


#: How a lost executor's error ends: what happened to the work.
_KEPT = "the tasks finished so far are kept: re-run the same command to resume"
#: Seconds between checks that a Dask run still has a scheduler and a worker.
_DASK_POLL = 1.0


def _dask_results(tasks: list[Task], client, worker_timeout: float,
                  notify: Callable[[str], None] | None) -> Iterator[tuple[Task, list[dict]]]:
    """:func:`execute` on a Dask cluster; a lost scheduler or a killed worker is a one-line
    ValueError."""
    from distributed.scheduler import KilledWorker

    futures = {client.submit(run_task, t, key=f"ntkcheck-{t.claim}-{t.key}-{t.seed.entropy}",
                             pure=False): t for t in tasks}
    address = client.scheduler.address
    try:
        yield from _dask_loop(futures, client, address, worker_timeout, notify)
    except (CancelledError, OSError) as err:      # the scheduler is gone (or dropped our tasks)
        raise ValueError(f"lost the Dask scheduler at {address} mid-run ({type(err).__name__}); {_KEPT}") from None
    except KilledWorker as err:
        raise ValueError(f"a task killed every Dask worker that ran it (out of memory?): "
                         f"{(str(err).splitlines() or [''])[0]}; {_KEPT}") from None
    finally:    # nothing left running for a client about to close (Dask would log tracebacks)
        if client.status == "running":
            client.cancel([f for f in futures if not f.done()])


def _dask_loop(futures: dict, client, address: str, worker_timeout: float,
               notify: Callable[[str], None] | None) -> Iterator[tuple[Task, list[dict]]]:
    """Results as they come, with a check every :data:`_DASK_POLL` seconds that the
    cluster still has a worker: Dask itself waits forever for one to run the tasks of
    workers that died."""
    from distributed import wait

    waiting, idle_since = set(futures), None
    while waiting:
        try:
            with client.as_current():      # wait looks up the current client
                done, waiting = wait(waiting, timeout=_DASK_POLL, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        fetched = False
        for future in done:
            try:
                rows = future.result(timeout=_DASK_POLL)
            except TimeoutError:       # its result was on a worker that died: recomputed, if a worker is left
                waiting.add(future)
                continue
            fetched = True
            yield futures[future], rows
        if fetched:
            continue
        if client.status != "running":         # reconnecting: the scheduler is gone
            raise ConnectionError(f"client {client.status}")
        if client.scheduler_info().get("workers"):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
            if notify:
                notify(f"every Dask worker at {address} left; waiting up to {worker_timeout:g} s for one "
                       "to join (--worker-timeout to change)")
        elif time.monotonic() - idle_since > worker_timeout:
            raise ValueError(f"no Dask worker at {address} for {worker_timeout:g} s (all left mid-run); "
                             f"{_KEPT} once workers are back")


def run_study(study: Study, jobs: int | None = None, scheduler: str | None = None,
              command: list[str] | None = None,
              progress: Callable[[int, int, str | None], None] | None = None, force: bool = False,
              worker_timeout: float = WORKER_TIMEOUT,
              notify: Callable[[str], None] | None = None,
              family_rate: float = FAMILY_FALSE_FAIL_RATE,
              report: ReportFiles | None = None) -> RunResult:
    """Run (or resume) ``study`` and judge its claims, each at its share of the family-wise
    false-fail rate ``family_rate`` (:meth:`ntkcheck.claims.Claim.judge`).

    Everything is validated before the output folder is touched, including the study's
    estimated memory and work (:mod:`ntkcheck.resources`; ``force`` skips that check).
    ``progress(done, total, claim)`` is called before the first task and after each one
    (e.g. :class:`ntkcheck.progress.Progress`); ``claim`` is the claim of the first
    unfinished task (the one being computed), None when all are done.  ``notify(line)``
    receives notes: damaged task files being recomputed, jobs capped (at the number of
    tasks, of CPUs, or at what fits in memory), waiting for Dask workers.  ``report``
    (:class:`ntkcheck.report.ReportFiles`): the report to write before the folder's lock is
    released.  Each claim is judged, and its report files drawn, as soon as its tasks are
    done: with local workers in their pool, meanwhile the other claims' tasks (with one job,
    or on Dask, in this process).
    """
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    asked = jobs or study.jobs
    jobs = asked or resources.cpu_count()
    scheduler = scheduler if scheduler is not None else study.scheduler
    tasks = plan(study)
    est = resources.estimate(tasks)
    if not force:
        resources.check_study(est, 1 if scheduler is not None else
                              resources.cap_jobs(jobs, est.n_tasks, est.task_bytes)[0])
    store = Store(study.out)
    store.check_writable()
    with (dask_client(scheduler, worker_timeout=worker_timeout, notify=notify) if scheduler is not None
          else _nothing()) as client, store:
        fingerprint = store.open(study.fingerprint(), merge=merge_fingerprints)
        everything = [t for c in study.claims for t in tasks[c]]
        store.refuse_foreign(everything)      # before computing anything
        meta = _metadata(study, store.read_metadata(), fingerprint)
        meta["family_false_fail_rate"] = family_rate
        meta["runs"][-1].update(command=_portable_command(command if command is not None else sys.argv),
                                started=started.isoformat(timespec="seconds"),
                                executor=f"dask {scheduler}" if scheduler else f"local jobs={jobs}")
        store.write_metadata(meta)
        pending = [t for t in everything if not store.is_done(t)]
        damaged = [(t, store.task_damage(t)) for t in pending]
        damaged = [(store.task_path(t).relative_to(store.root), why) for t, why in damaged if why]
        if damaged and notify:
            shown = "; ".join(f"{p} {why}" for p, why in damaged[:3])
            notify(f"recomputing {len(damaged)} damaged or incomplete task file(s): {shown}"
                   + (f"; and {len(damaged) - 3} more" if len(damaged) > 3 else ""))
        jobs, why = resources.cap_jobs(jobs, len(pending), est.task_bytes)
        if client is None and asked and pending and why and notify:
            notify(f"note: --jobs {asked} capped at {jobs}, {why}")
        done = len(everything) - len(pending)
        current = _Current(pending)
        if progress:
            progress(done, len(everything), current.claim)
        left = Counter(t.claim for t in pending)
        with (local_pool(jobs) if client is None and jobs > 1 else _nothing()) as pool:
            judging = _Judging(store, tasks, family_rate, report, pool)
            for c in study.claims:
                if not left[c]:
                    judging.start(c)
            for task, rows in execute(pending, jobs, client, worker_timeout, notify, pool):
                store.write_task(task, rows)
                done += 1
                left[task.claim] -= 1
                if not left[task.claim]:
                    judging.start(task.claim)
                if progress:
                    progress(done, len(everything), current.finish(task))
            verdicts, drawn = judging.results(study.claims)
        wall = time.perf_counter() - t0
        meta["runs"][-1].update(wall_time_s=round(wall, 3), tasks_run=len(pending),
                                verdicts={c: v.verified for c, v in verdicts.items()})
        store.write_metadata(meta)
        if report:
            report.write(store, verdicts, drawn)
    return RunResult(verdicts, len(everything), len(pending), len(everything) - len(pending), wall)


class _Judging:
    """Each claim judged (and its report files drawn) as soon as its tasks are done: in
    ``pool`` if there is one, so that it overlaps the other claims' tasks, else here."""

    def __init__(self, store: Store, tasks: dict[str, list[Task]], family_rate: float,
                 report: ReportFiles | None, pool: Executor | None):
        self.store, self.tasks, self.family_rate, self.report, self.pool = store, tasks, family_rate, report, pool
        self.started: dict = {}

    def start(self, claim: str) -> None:
        self.store.consolidate(claim, self.tasks[claim])
        args = (self.store.root, claim, self.family_rate, self.report)
        self.started[claim] = self.pool.submit(judge_claim, *args) if self.pool else judge_claim(*args)

    def results(self, claims: list[str]) -> tuple[dict[str, Verdict], dict[str, dict]]:
        """Verdicts and drawn files by claim, in the order of ``claims``."""
        out = {c: pool_result(self.started[c]) if self.pool else self.started[c] for c in claims}
        return {c: v for c, (v, _) in out.items()}, {c: files for c, (_, files) in out.items()}


def judge_claim(root: Path, claim: str, family_rate: float, report: ReportFiles | None = None
                ) -> tuple[Verdict, dict]:
    """The verdict of ``claim`` from its consolidated CSV in the study folder ``root`` and,
    given a ``report`` (:class:`ntkcheck.report.ReportFiles`), its report files, drawn but
    not recorded (:func:`ntkcheck.report.claim_files`)."""
    df = Store(root).read_claim(claim)
    v = get_claim(claim).judge(df, family_rate)
    return v, report.claim(root, claim, v, df) if report is not None else {}


class _Current:
    """The claim of the first unfinished task, as tasks finish in any order."""

    def __init__(self, pending: list[Task]):
        self.pending, self.finished, self.next = pending, set(), 0

    @property
    def claim(self) -> str | None:
        return self.pending[self.next].claim if self.next < len(self.pending) else None

    def finish(self, task: Task) -> str | None:
        self.finished.add((task.claim, task.key))
        while self.next < len(self.pending) and (self.pending[self.next].claim,
                                                 self.pending[self.next].key) in self.finished:
            self.next += 1
        return self.claim


@contextmanager
def _nothing():
    yield None


def _metadata(study: Study, previous: dict | None, fingerprint: dict) -> dict:
    """metadata.json: the folder's study (``fingerprint``: every claim run into it), package
    versions, git commit, and one entry per run."""
    runs = (previous or {}).get("runs", [])
    name, source = study.name, study.source and _portable_path(study.source)
    if previous is not None and previous.get("study") != study.fingerprint():   # a claim subset or addition
        name, source = previous.get("name", name), previous.get("source")
    return {"name": name, "source": source, "study": fingerprint,
            "versions": _versions(), "git_commit": _git_commit(), "runs": runs + [{}]}


def _portable_command(argv: list[str]) -> list[str]:
    """The command as a user would retype it: no interpreter or machine paths."""
    return ["ntkcheck", *map(_portable_path, argv[1:])]


def _portable_path(arg: str) -> str:
    """An absolute path becomes relative to the working directory, or its bare name when
    outside it (machine paths such as scratch folders mean nothing elsewhere)."""
    if not os.path.isabs(arg):
        return arg
    rel = os.path.relpath(arg)
    return os.path.basename(arg.rstrip(os.sep)) or arg if rel.startswith(os.pardir) else rel


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("ntkcheck", "numpy", "scipy", "pandas", "matplotlib", "distributed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None
