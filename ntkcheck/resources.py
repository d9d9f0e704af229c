"""What a study or a sampler call needs, estimated before any work, against what the
machine has: refuse early instead of running out of memory hours later; and worker
processes that do not outlive their parent."""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

#: More tasks than this cannot even be planned cheaply (each is an object and a file).
MAX_TASKS = 1_000_000
#: Neuron evaluations (networks x inputs x units x layers) beyond which a study needs
#: days of CPU whatever the claim: refused unless forced.
MAX_WORK = 10**14
#: Resident memory of one idle local worker (Python with numpy, scipy and ntkcheck
#: imported: 137 MiB measured on Linux), counted with its task when capping ``--jobs``.
WORKER_BYTES = 140 * 1024**2


def machine_bytes() -> int:
    """Physical memory of this machine (bytes); a large number if unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gib(n: float) -> str:
    return f"{n / 1024**3:.3g} GiB"


@dataclass(frozen=True)
class Estimate:
    """Lower bounds of a study's cost: ``n_tasks``, ``task_bytes`` (the largest task's
    working memory: one network's hidden units on its inputs, plus one number per
    network) and ``work`` (neuron evaluations, summed over tasks)."""

    n_tasks: int
    task_bytes: int
    work: int


def count_tasks(grid: dict) -> int:
    """Tasks of a grid without building them: cells x chunks of ``chunk`` networks."""
    cells = math.prod(len(v) for v in grid.values() if isinstance(v, (list, tuple)))
    if isinstance(grid.get("n_networks"), int) and isinstance(grid.get("chunk"), int):
        cells *= -(-grid["n_networks"] // max(grid["chunk"], 1))
    return cells


def check_task_count(grids: dict) -> None:
    """ValueError before planning if a claim's grid makes more than :data:`MAX_TASKS` tasks."""
    for claim, grid in grids.items():
        n = count_tasks(grid)
        if n > MAX_TASKS:
            raise ValueError(f"grid.{claim}: {n} tasks (more than {MAX_TASKS}); "
                             "lower n_networks or raise chunk")


def _shape(params: dict) -> tuple[int, int, int]:
    """(width, depth, inputs) of the largest network of ``params`` (a task's or a grid's)."""
    width = params.get("width", 1)
    width = max(width) if isinstance(width, (list, tuple)) else width
    depth = params.get("depth", 1)
    depth = max(depth) if isinstance(depth, (list, tuple)) else depth
    n_in = params.get("n_inputs") or (params.get("n_train", 0) + params.get("n_test", 0)) or 1
    width, depth, n_in = (int(v) if isinstance(v, (int, float)) else 1 for v in (width, depth, n_in))
    return width, depth, n_in


def task_cost(params: dict) -> tuple[int, int]:
    """(bytes, neuron evaluations) of one task, lower bounds from its width, depth,
    number of networks and of inputs.  A task with a negative ``chunk`` index only records
    a cell skipped at this budget (see relu-fourth-moment) and costs nothing."""
    if isinstance(params.get("chunk"), int) and params["chunk"] < 0:
        return 0, 0
    m = params.get("n_networks", 1)
    m = int(m) if isinstance(m, (int, float)) else 1
    units = math.prod(_shape(params))
    return 8 * (units + m), m * units


def check_network(grid: dict) -> None:
    """ValueError if one network of the grid's widest and deepest cell cannot hold its
    hidden units on its inputs in this machine's memory: no task of it could run, forced
    or not.  Cheap, so a grid is refused before anything builds such a network."""
    width, depth, n_in = _shape(grid)
    check_sample(8 * width * depth * n_in, f"one network of width {width} and depth {depth} on {n_in} inputs",
                 "; lower width or depth")


def check_task_fits(est: Estimate) -> None:
    """ValueError if the largest task alone cannot fit in this machine's memory (no
    ``--force`` can run it)."""
    check_sample(est.task_bytes, "the largest task", "; even --force cannot run it: lower chunk (networks "
                 "per task), width or depth")


def estimate(tasks: dict) -> Estimate:
    """The :class:`Estimate` of planned tasks (``{claim: [Task, ...]}``)."""
    costs = [task_cost(t.params) for ts in tasks.values() for t in ts]
    return Estimate(len(costs), max((b for b, _ in costs), default=0), sum(w for _, w in costs))


def check_study(est: Estimate, jobs: int) -> None:
    """ValueError if the study's tasks cannot fit in memory (``jobs`` at once) or need
    more than :data:`MAX_WORK` neuron evaluations."""
    need, have = est.task_bytes * max(1, min(jobs, est.n_tasks)), machine_bytes()
    if need > have:
        raise ValueError(f"the study needs at least {gib(need)} of memory ({min(jobs, est.n_tasks)} tasks "
                         f"at once, the largest {gib(est.task_bytes)}) but this machine has {gib(have)}; "
                         "lower width, n_networks per chunk or --jobs (or --force)")
    if est.work > MAX_WORK:
        raise ValueError(f"the study needs at least {est.work:.2e} neuron evaluations (days of CPU; "
                         f"limit {MAX_WORK:.0e}); shrink the grid, or --force to run it anyway")


def cap_jobs(jobs: int, n_tasks: int, task_bytes: int) -> tuple[int, str | None]:
    """The local worker processes worth starting for ``jobs`` asked: no more than the
    tasks, the CPUs, and what fits in memory (each worker :data:`WORKER_BYTES` plus its
    largest task); with the reason when that is fewer than asked."""
    fit = machine_bytes() // (WORKER_BYTES + task_bytes)
    limits = [(max(n_tasks, 1), "the number of tasks to run"), (cpu_count(), "the number of CPUs"),
              (max(fit, 1), f"what fits in {gib(machine_bytes())} of memory at "
                            f"{gib(WORKER_BYTES + task_bytes)} per worker")]
    cap, why = min(limits, key=lambda lw: lw[0])
    return (jobs, None) if jobs <= cap else (cap, why)


def check_sample(n_bytes: int, what: str, hint: str = "") -> None:
    """ValueError if a computation needing ``n_bytes`` cannot fit in this machine's memory
    (``hint`` ends the message)."""
    have = machine_bytes()
    if n_bytes > have:
        raise ValueError(f"{what} needs at least {gib(n_bytes)} of memory but this machine has {gib(have)}{hint}")


def die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this process within ``interval`` seconds of process ``parent`` exiting
    (a daemon thread polls the parent pid: portable, and unlike PR_SET_PDEATHSIG not
    tied to the thread that started us).  The resource tracker then exits too: it
    stops once every process holding its pipe is gone."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="ntkcheck-parent-watch", daemon=True).start()
