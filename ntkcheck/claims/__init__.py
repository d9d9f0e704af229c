"""Claims: the statements ntkcheck verifies, and the interface every claim implements.

The formulas, assumptions and negative control of every claim are in the catalogue
``docs/claims.md``; each claim module's docstring summarises its entry.

How to write a claim
====================
One module ``ntkcheck/claims/<name>.py`` exposing ``CLAIM = Claim(...)``; add ``"<name>"``
to ``_MODULES`` below.  The runner, store, CLI and report do the rest.  Another package
registers its claims through the entry-point group :data:`ENTRY_POINT_GROUP`
(``docs/own-claims.md``); every registered claim counts in the family-wise split.

Fields of :class:`Claim`
  ``id``          kebab-case id used on the command line, e.g. ``"kernel-mean"``.
  ``title``       one line for ``ntkcheck list``.
  ``statement``   the claim in one or two sentences, with its assumptions.
  ``sources``     papers (``"Jacot et al. 2018, Thm 1"``) the claim comes from.
  ``grids``       ``{"quick": grid, "standard": grid, "full": grid}``.  A grid is a flat dict:
                  a **list** value is swept (grid axis), a **scalar** is a fixed setting.
                  Budgets: ``quick`` = CI (all claims together <= 5 min on 2 cores, so aim for
                  < 30 s), ``standard`` = the committed ``results/`` (all claims <= 30 min),
                  ``full`` = hours on a cluster.  A study may override any key of a grid
                  (never add keys); values keep the default's type.  Generic validation:
                  numbers finite; ``width``, ``depth``, ``n_networks``, ``chunk``, ``n_*`` >= 1;
                  ``sigma_*`` >= 0; lists non-empty.  Anything else goes in ``check``.
  ``run_task``    ``run_task(task: Task) -> list[dict]``: pure function of the task (its
                  ``params`` and its ``seed``), no I/O, no global state.
  ``verdict``     ``verdict(df: pandas.DataFrame, false_fail_rate: float) -> Verdict`` from all
                  rows of the claim (the consolidated ``<claim>.csv``; it must not recompute
                  anything), at the claim's level ``false_fail_rate`` (default
                  :func:`claim_false_fail_rate`); callers go through :meth:`Claim.judge`.
  ``split``       optional ``split(grid) -> list[(key, params)]``.  Default
                  :func:`split_cells`: one task per grid cell x chunk of ``grid["chunk"]``
                  networks (``params["n_networks"]`` is the chunk's size, ``params["chunk"]``
                  its index).  Keys must be unique, stable and filesystem safe
                  (:func:`task_key`).
  ``check``       optional ``check(grid)`` raising :class:`GridError(key, message)`.
  ``figure``      optional ``figure(df, verdict, path)`` drawing a figure other than the
                  convergence plots (which the report draws from ``Verdict.convergence``).
                  It saves with ``fig.savefig(path)`` (the format follows the suffix) and
                  leaves layout to the report's style (constrained layout, mathtext labels).
  ``key_numbers`` optional ``key_numbers(verdict) -> tuple[KeyNumber, ...]``: the claim's key
                  number per cell for the convergence table, when it is not the fitted
                  exponent of each ``Verdict.convergence`` series (the default); called
                  only on verdicts with their ``table``.
  ``keys``        optional ``{grid key: meaning}`` for keys the glossary
                  (:data:`ntkcheck.claims.keys.GLOSSARY`) does not name, e.g. a third-party
                  claim's own; ``ntkcheck list --grid`` and ``docs/studies.md`` show them.

Tasks and seeds
  A :class:`Task` is one grid cell x one chunk of networks.  Its ``seed`` is
  :func:`task_seed` ``(study seed, claim id, key)``: a ``SeedSequence`` child derived from
  the study seed and the task key only, never from worker identity or order, so results
  are identical with 1 job, N jobs or a Dask cluster.  Draw network i of the chunk from
  ``seeding.child(task.seed, i)`` (``sample_dense``/``sample_init`` do this for you).

Row schema (tidy: one row per measured quantity)
  ``run_task`` returns dicts with at least ``quantity`` (str) and ``value`` (float), and
  usually ``stderr``.  The runner adds ``claim``, ``task``, ``seed`` (the study seed) and
  copies ``width``, ``depth``, ``activation``, ``parameterization``, ``sigma_w``,
  ``sigma_b``, ``n_networks`` from ``task.params`` when the row does not set them.  Any
  other keys (e.g. ``i``, ``j``) become extra columns (sorted after :data:`ROW_COLUMNS`).
  Values: str, int, float or bool.  Floats are stored exactly (``repr``).  Per-chunk
  means are combined across chunks with :func:`pool`.

Error rates
  The suite's one exit code fails a correct implementation with probability
  ``FAMILY_FALSE_FAIL_RATE`` (chosen: 0.01).  Claims are independent given the study seed
  (every task draws from its own seed), so the product rule is exact: each of the ``C``
  registered claims runs at ``1 - (1 - FAMILY_FALSE_FAIL_RATE)^(1/C)`` (Sidak 1967), and any
  subset of them at most at the family rate.  ``ntkcheck verify --false-fail-rate`` changes the
  family rate; :meth:`Claim.judge` turns it into the claim's level.  A negative control is
  sized to be rejected with a far smaller miss probability; its misses are measured by
  ``ntkcheck calibrate`` with the claims' failures.

Verdict
  :class:`Verdict`: ``passed`` (the claim's test), the ``statistics`` behind it, its stated
  ``false_fail_rate`` (probability of failing when the claim holds), ``detectable`` (the
  smallest discrepancy it detects, in words), the ``negative_control`` it ran (a setting
  where the claim is false) and whether that was rejected (``negative_control_rejected``
  must be True: a check that cannot fail is a defect).  ``verified`` = both; ``status`` is
  PASS (verified), FAIL (the claim's test failed) or INCONCLUSIVE (it passed, the control was
  not rejected).  The summary opens with the claim test's outcome, "pass: ..." or "FAIL: ...".
  ``convergence`` holds :class:`Convergence` series (x vs measured error with intervals,
  fitted and theoretical exponents); ``report`` renders each as a markdown/LaTeX table and
  a log-log PNG.  ``table`` is an optional further DataFrame printed under it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..seeding import child

BUDGETS = ("quick", "standard", "full")

#: Columns every results CSV starts with, in this order.
ROW_COLUMNS = ("claim", "task", "seed", "width", "depth", "activation", "parameterization",
               "sigma_w", "sigma_b", "n_networks", "quantity", "value", "stderr")

#: Columns the runner copies from ``task.params`` into rows that do not set them.
PARAM_COLUMNS = ("width", "depth", "activation", "parameterization", "sigma_w", "sigma_b", "n_networks")

#: Entry-point group through which installed packages add claims (``id = "package.module:CLAIM"``,
#: a :class:`Claim` or a module exposing ``CLAIM``); ``verify``, ``run``, ``report`` and
#: ``calibrate`` treat them like the built-in ones.
ENTRY_POINT_GROUP = "ntkcheck.claims"

#: Claim modules, in the order ``ntkcheck list`` and ``verify`` use.
_MODULES = ("kernel_mean", "nngp_gaussian", "relu_fourth_moment", "ntk_init_convergence", "ntk_finite_width",
            "lazy_kernel", "linearization", "loss_decay", "critical_lr", "jacot_figure_1",
            "readout_posterior", "ntk_ensemble", "linear_convergence", "mean_field", "four_point_vertex",
            "ntk_fluctuations", "lottery_ticket", "deep_convergence", "sgd_structured_data")


def plugin_entry_points():
    """The installed packages' entry points in :data:`ENTRY_POINT_GROUP`, sorted by name."""
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


#: The probability that a correct implementation fails some claim of ``ntkcheck verify`` (all
#: claims) at the default settings; see "Error rates" above.
FAMILY_FALSE_FAIL_RATE = 0.01


def claim_false_fail_rate(family_rate: float = FAMILY_FALSE_FAIL_RATE, n_claims: int | None = None) -> float:
    """The level of one claim so that ``n_claims`` independent claims (default: every
    registered claim) fail together with probability ``family_rate``: the Sidak split
    ``1 - (1 - family_rate)^(1/n_claims)`` (exact for independent claims)."""
    if not 0 < family_rate < 1:
        raise ValueError(f"the family-wise false-fail rate must lie in (0, 1), got {family_rate!r}")
    n = len(_MODULES) + len(plugin_entry_points()) if n_claims is None else int(n_claims)
    return float(-math.expm1(math.log1p(-family_rate) / n))


def family_false_fail_rate(rates) -> float:
    """The probability that at least one of independent claims with these levels fails:
    ``1 - prod(1 - rate)``."""
    return float(-math.expm1(sum(math.log1p(-float(r)) for r in rates)))


#: A claim's level at the default family rate (what ``verdict(df)`` uses without an argument).
CLAIM_FALSE_FAIL_RATE = claim_false_fail_rate()


class GridError(ValueError):
    """A bad grid value; ``key`` names the offending grid key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Task:
    """One independent unit of work: a grid cell x a chunk of networks."""

    claim: str
    key: str
    params: dict
    seed: np.random.SeedSequence


@dataclass(frozen=True)
class Convergence:
    """Measured error ``y`` vs ``x`` (usually width) with a power-law fit ``y ~ exp(a) x^b``.

    ``lo``/``hi`` bound each point (a two-sided interval at confidence ``level``).
    ``fitted`` marks the points that entered the fit; ``exponent`` (b) with interval
    ``exponent_lo..hi`` at confidence ``exponent_level``, ``log_prefactor`` (a) and
    ``fit_cov`` (2x2 covariance of (a, b), for the band).  ``theory_exponent`` is the
    slope the claim predicts.  ``floor`` (optional) is the Monte Carlo resolution per
    point (the half-width of a normal interval at ``level``); ``control`` (optional) the
    same error measured against the negative control.  ``bound`` marks a claimed upper
    bound (exponent <= ``theory_exponent``) rather than a predicted exponent.
    """

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    theory_exponent: float
    exponent: float = math.nan
    exponent_lo: float = math.nan
    exponent_hi: float = math.nan
    log_prefactor: float = math.nan
    fit_cov: tuple[tuple[float, float], tuple[float, float]] | None = None
    fitted: tuple[bool, ...] = ()
    floor: tuple[float, ...] | None = None
    control: tuple[float, ...] | None = None
    x_name: str = "width"
    y_name: str = "error"
    level: float = 0.95
    exponent_level: float = 0.95
    bound: bool = False

    def __repr__(self) -> str:   # short in notebooks: no point lists
        return (f"Convergence({self.label[:60]!r}, {len(self.x)} points, exponent {self.exponent:.3g} "
                f"(theory {self.theory_exponent:g}))")


@dataclass(frozen=True)
class KeyNumber:
    """A claim's key number in one cell: ``value`` (e.g. a fitted exponent, a constant) with
    its interval ``lo..hi`` at confidence ``level``, the ``theory`` value (an upper bound if
    ``bound``; ``theory +- margin`` for an equivalence claim), and the ``widths`` measured.  ``cell`` and ``quantity`` are readable names
    (math in ``$...$``); ``name`` says what ``value`` is ("exponent", "constant")."""

    cell: str
    quantity: str
    name: str
    value: float
    lo: float
    hi: float
    level: float
    theory: float
    bound: bool = False
    widths: tuple[float, ...] = ()
    margin: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim (see the module docstring)."""

    claim: str
    passed: bool
    summary: str
    statistics: Mapping[str, float]
    false_fail_rate: float
    detectable: str
    negative_control: str
    negative_control_rejected: bool
    convergence: tuple[Convergence, ...] = ()
    table: Any = None

    @property
    def verified(self) -> bool:
        """The claim passed and its negative control was rejected."""
        return bool(self.passed and self.negative_control_rejected)

    @property
    def status(self) -> str:
        """``"PASS"`` (verified), ``"FAIL"`` (the claim's test failed) or ``"INCONCLUSIVE"``:
        the claim's test passed but its negative control was not rejected, so this study did
        not show that the check can fail (too few widths or networks for the control; at a
        built-in budget, a defect of the check)."""
        return "FAIL" if not self.passed else "PASS" if self.negative_control_rejected else "INCONCLUSIVE"

    def __repr__(self) -> str:   # short in notebooks: no statistics, series or tables dumped
        return (f"Verdict({self.claim!r}, {self.status}, false_fail_rate={self.false_fail_rate:.3g}, "
                f"{len(self.statistics)} statistics, {len(self.convergence)} convergence series)")


@dataclass(frozen=True)
class Claim:
    """A verifiable statement (see the module docstring for every field)."""

    id: str
    title: str
    statement: str
    sources: tuple[str, ...]
    grids: Mapping[str, Mapping[str, Any]]
    run_task: Callable[[Task], list[dict]]
    verdict: Callable[[Any], Verdict]
    split: Callable[[dict], list[tuple[str, dict]]] | None = None
    check: Callable[[dict], None] | None = None
    figure: Callable[[Any, Verdict, Any], None] | None = None
    key_numbers: Callable[[Verdict], tuple[KeyNumber, ...]] | None = None
    keys: Mapping[str, str] | None = None

    def __repr__(self) -> str:   # short: no grids or functions
        return f"Claim({self.id!r}, {self.title!r})"

    def __post_init__(self):
        if set(self.grids) != set(BUDGETS):
            raise ValueError(f"claim {self.id}: grids must have exactly the budgets {BUDGETS}")

    def grid(self, budget: str, overrides: Mapping[str, Any] | None = None) -> dict:
        """The budget's grid with ``overrides`` applied (validated by the study loader)."""
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        return {**self.grids[budget], **(overrides or {})}

    def judge(self, df, family_rate: float = FAMILY_FALSE_FAIL_RATE) -> Verdict:
        """The verdict on the claim's rows at its share of the family-wise rate.  Its summary
        must open with the claim test's outcome ("pass"/"FAIL"), never contradicting it."""
        v = self.verdict(df, false_fail_rate=claim_false_fail_rate(family_rate))
        if v.summary.lower().startswith("pass") != v.passed:
            raise RuntimeError(f"claim {self.id}: its summary opens with {v.summary[:5]!r} but passed={v.passed}")
        return v

    def tasks(self, grid: dict, seed: int) -> list[Task]:
        """The claim's tasks for ``grid``, each seeded by :func:`task_seed`."""
        pairs = (self.split or split_cells)(grid)
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"claim {self.id}: task keys are not unique")
        return [Task(self.id, k, dict(p), task_seed(seed, self.id, k)) for k, p in pairs]


def task_seed(seed: int, claim_id: str, key: str) -> np.random.SeedSequence:
    """The ``SeedSequence`` of a task: a child of the study seed at a spawn key made
    from a hash of (claim id, task key), so it depends on nothing else."""
    digest = hashlib.sha256(f"{claim_id}\0{key}".encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return child(seed, *words)


def task_key(params: Mapping[str, Any]) -> str:
    """A filesystem-safe key ``name=value,...`` (characters outside ``[\\w.+-=,]`` -> ``_``)."""
    text = ",".join(f"{k}={_key_value(v)}" for k, v in params.items())
    return re.sub(r"[^\w.+\-=,]", "_", text)


def _key_value(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def grid_cells(grid: Mapping[str, Any]) -> list[dict]:
    """Every combination of the grid's list values, with its scalar values added."""
    axes = [k for k, v in grid.items() if isinstance(v, (list, tuple))]
    fixed = {k: v for k, v in grid.items() if k not in axes}
    return [{**fixed, **dict(zip(axes, combo))} for combo in itertools.product(*(grid[k] for k in axes))]


def split_cells(grid: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """Default split: each grid cell x chunks of ``grid["chunk"]`` of ``grid["n_networks"]``.

    The key names the swept values and the chunk index; ``params`` holds the whole cell
    with ``n_networks`` replaced by the chunk's size and ``chunk`` by its index.
    """
    axes = [k for k, v in grid.items() if isinstance(v, (list, tuple))]
    total, size = int(grid["n_networks"]), int(grid["chunk"])
    out = []
    for cell in grid_cells(grid):
        for index, start in enumerate(range(0, total, size)):
            params = {**cell, "n_networks": min(size, total - start), "chunk": index}
            out.append((task_key({**{k: cell[k] for k in axes}, "chunk": index}), params))
    return out


def pool(df, by: list[str]):
    """Combine per-chunk rows (mean ``value``, ``stderr``, ``n_networks``) into one row per
    group ``by``: the grand mean and its standard error from the pooled sample variance
    (exact: ``sum x^2`` is recovered from each chunk's mean, stderr and size)."""
    n = df["n_networks"].astype(float)
    s2 = df["stderr"].astype(float) ** 2 * n          # chunk sample variance (ddof=1)
    work = df.assign(_n=n, _sum=df["value"] * n, _sq=(n - 1) * s2 + n * df["value"] ** 2)
    g = work.groupby(by, sort=True)[["_n", "_sum", "_sq"]].sum().reset_index()
    mean = g["_sum"] / g["_n"]
    var = (g["_sq"] - g["_n"] * mean**2) / (g["_n"] - 1)
    return g[by].assign(value=mean, stderr=np.sqrt(np.maximum(var, 0.0) / g["_n"]),
                        n_networks=g["_n"].astype(int))


def all_claims(plugins: bool = True) -> dict[str, Claim]:
    """Every registered claim by id: the built-in ones in registration order, then (with
    ``plugins``) those of installed packages (:data:`ENTRY_POINT_GROUP`) by entry-point name.
    ValueError names a plugin that cannot be loaded, is not a Claim or reuses an id."""
    claims = {}
    for name in _MODULES:
        c = importlib.import_module(f"{__name__}.{name}").CLAIM
        claims[c.id] = c
    for ep in plugin_entry_points() if plugins else ():
        where = f"claim plugin {ep.name!r} ({ep.value}, entry point group {ENTRY_POINT_GROUP})"
        try:
            obj = ep.load()
        except Exception as err:   # any failure of foreign code: name the plugin, not our stack
            raise ValueError(f"{where} cannot be loaded: {type(err).__name__}: {err}") from None
        obj = getattr(obj, "CLAIM", obj)   # a module exposing CLAIM, or the Claim itself
        if not isinstance(obj, Claim):
            raise ValueError(f"{where} is not a ntkcheck.Claim (got {type(obj).__name__})")
        if obj.id in claims:
            raise ValueError(f"{where}: claim id {obj.id!r} is already registered")
        claims[obj.id] = obj
    return claims


def get_claim(claim_id: str) -> Claim:
    """The claim with this id; ValueError naming the known ids otherwise."""
    claims = all_claims()
    if claim_id not in claims:
        raise ValueError(f"unknown claim {claim_id!r}; known claims: {', '.join(claims)}")
    return claims[claim_id]
