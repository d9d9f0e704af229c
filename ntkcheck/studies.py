"""Studies: which claims to run, at which budget and seed, with which grid overrides.

A study is a TOML file (stdlib ``tomllib``)::

    name = "standard"            # optional: default the file's stem; folder results/<name>
    budget = "standard"          # quick | standard | full
    seed = 2024                  # study seed: every task's SeedSequence derives from it
    claims = ["kernel-mean"]     # optional: default every claim
    out = "../results/standard"  # optional, relative to this file; default results/<name> in the cwd
    scheduler = "tcp://host:8786"  # optional: a Dask scheduler (needs ntkcheck[dask])
    jobs = 2                     # optional: local processes (default: CPU count)

    [grid.kernel-mean]           # optional overrides of the budget's grid
    width = [64, 256, 1024]

Everything is validated on load, before any work: an unknown key, a wrong type, an
empty list, a negative width, a non-finite number, a grid too small for its claim's tests
(``Claim.check``) or a missing optional dependency raises :class:`StudyError` naming the
file, the key and its line.  Every key, its meaning and its per-budget default:
``docs/studies.md`` (``ntkcheck list --grid CLAIM``).  Studies of one budget and seed whose
common claims have the same grids share a folder's tasks (:func:`merge_fingerprints`).
"""
from __future__ import annotations

import importlib.util
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import resources
from .display import short_repr
from .claims import BUDGETS, Claim, GridError, all_claims

_TOP_KEYS = {"name": str, "budget": str, "seed": int, "claims": list, "out": str,
             "scheduler": str, "jobs": int, "grid": dict}
_NAME = re.compile(r"^[A-Za-z0-9][\w.+-]*$")
_SCHEDULER = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")
_POSITIVE = {"width", "depth", "n_networks", "chunk"}


class StudyError(ValueError):
    """Bad study input; the message names the file, the key and the line."""


@dataclass(frozen=True)
class Study:
    """A validated study: full grids (budget defaults with overrides) per claim."""

    __repr__ = short_repr   # the grids by count, not dumped

    name: str
    budget: str
    seed: int
    claims: tuple[str, ...]
    grids: dict
    out: Path
    scheduler: str | None = None
    jobs: int | None = None
    source: str | None = None

    def fingerprint(self) -> dict:
        """What determines the results: resuming into a folder requires the same."""
        return {"budget": self.budget, "seed": self.seed, "claims": list(self.claims),
                "grids": {c: self.grids[c] for c in self.claims}}


def load_study(path: str | Path, seed: int | None = None) -> Study:
    """Read and validate a study file; ``seed`` (if given) replaces the file's."""
    path = Path(path)
    if path.exists() and not path.is_file():      # /dev/null, a folder, a pipe
        raise StudyError(f"{path}: not a study file (not a regular file); give a .toml file")
    try:
        text = path.read_text(encoding="utf-8-sig")   # some editors start UTF-8 with a byte-order mark
    except OSError as err:
        raise StudyError(f"{path}: cannot read study file: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise StudyError(f"{path}: not a UTF-8 text file (byte {err.start}); TOML files must be UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: malformed TOML: {err}") from None
    if not data:         # would silently run every claim
        raise StudyError(f"{path}: the study file is empty; give at least its claims, "
                         'e.g. claims = ["kernel-mean"]')
    where = _Locator(path, text)
    for key, value in data.items():
        if key not in _TOP_KEYS:
            raise where.error((key,), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
        if not _is_type(value, _TOP_KEYS[key]):
            raise where.error((key,), f"must be a {_TOP_KEYS[key].__name__}, got {value!r}")
    grid = data.get("grid", {})
    for claim_id, overrides in grid.items():
        if not isinstance(overrides, dict):
            raise where.error(("grid", claim_id), "must be a table [grid.<claim>] of overrides")
    out = data.get("out")
    if out is not None and out.strip():  # like every path in a config file: relative to the file
        out = path.parent / out
    try:
        return make_study(budget=data.get("budget", "quick"), claims=data.get("claims"),
                          seed=data.get("seed", 0) if seed is None else seed, out=out,
                          name=data.get("name", path.stem), scheduler=data.get("scheduler"),
                          jobs=data.get("jobs"), overrides=grid, source=str(path))
    except _KeyError as err:
        raise where.error(err.keys, err.message) from None


def merge_fingerprints(folder: dict, study: dict) -> dict | None:
    """The fingerprint of a study folder after running ``study`` into it, or None if they
    differ.  Studies of the same budget and seed whose common claims have identical grids
    share their tasks (same keys, same seeds), so a claim subset reuses a folder's tasks and
    a further claim joins it; anything else is a different study."""
    if any(folder.get(k) != study.get(k) for k in ("budget", "seed")) or "grids" not in folder:
        return None
    if any(folder["grids"].get(c, grid) != grid for c, grid in study["grids"].items()):
        return None
    claims = list(folder["claims"]) + [c for c in study["claims"] if c not in folder["claims"]]
    return {**folder, "claims": claims, "grids": {**folder["grids"], **study["grids"]}}


def make_study(budget: str = "quick", claims=None, seed: int = 0, out=None, name: str | None = None,
               scheduler: str | None = None, jobs: int | None = None, overrides=None,
               source: str | None = None) -> Study:
    """Build and validate a study (used by ``verify`` and by :func:`load_study`).

    Errors name the offending key; :func:`load_study` adds the file and the line.
    """
    try:
        return _make(budget, claims, seed, out, name, scheduler, jobs, overrides or {}, source)
    except _KeyError as err:
        if source is not None:
            raise
        raise StudyError(f"{'.'.join(err.keys)}: {err.message}") from None


class _KeyError(Exception):
    def __init__(self, keys: tuple[str, ...], message: str):
        super().__init__(message)
        self.keys, self.message = keys, message


def _make(budget, claims, seed, out, name, scheduler, jobs, overrides, source) -> Study:
    if budget not in BUDGETS:
        raise _KeyError(("budget",), f"must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if not _is_type(seed, int) or seed < 0:
        raise _KeyError(("seed",), f"must be an integer >= 0, got {seed!r}")
    if jobs is not None and (not _is_type(jobs, int) or jobs < 1):
        raise _KeyError(("jobs",), f"must be an integer >= 1, got {jobs!r}")
    if scheduler is not None and not _SCHEDULER.match(scheduler):
        raise _KeyError(("scheduler",), f"must be an address like tcp://HOST:PORT, got {scheduler!r}")
    if scheduler is not None and importlib.util.find_spec("distributed") is None:
        raise _KeyError(("scheduler",), "needs Dask, an optional dependency: pip install 'ntkcheck[dask]'")
    known = all_claims()
    if claims is None:
        claims = list(known)
    if not claims or not all(isinstance(c, str) for c in claims):
        raise _KeyError(("claims",), "must be a non-empty list of claim ids")
    for c in claims:
        if c not in known:
            raise _KeyError(("claims",), f"unknown claim {c!r}; known claims: {', '.join(known)}")
    if len(set(claims)) != len(claims):
        raise _KeyError(("claims",), "lists a claim twice")
    for c in overrides:
        if c not in known:
            raise _KeyError(("grid", c), f"unknown claim {c!r}; known claims: {', '.join(known)}")
        if c not in claims:
            raise _KeyError(("grid", c), f"overrides a claim the study does not run ({', '.join(claims)})")
    if out is not None and not str(out).strip():
        raise _KeyError(("out",), "is empty: give a folder name, e.g. results/mine")
    name = name if name is not None else budget
    if not isinstance(name, str) or not _NAME.match(name):
        raise _KeyError(("name",), f"must be a simple folder name (letters, digits, . _ + -), got {name!r}")
    grids = {c: validate_grid(known[c], budget, overrides.get(c, {})) for c in claims}
    return Study(name=name, budget=budget, seed=int(seed), claims=tuple(claims), grids=grids,
                 out=Path(out) if out is not None else Path("results") / name,
                 scheduler=scheduler, jobs=jobs, source=source)


def validate_grid(claim: Claim, budget: str, overrides: dict) -> dict:
    """The budget's grid of ``claim`` with ``overrides``, each value checked against the
    default's type and the generic rules (finite numbers; width, depth, n_networks,
    chunk, n_* >= 1; sigma_* >= 0 and sigma_w > 0; non-empty lists without repeats; one
    network of the largest cell fits in memory), then ``claim.check``."""
    defaults = claim.grids[budget]
    grid = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise _KeyError(("grid", claim.id, key),
                            f"unknown grid key for {claim.id} (known: {', '.join(defaults)})")
        grid[key] = _check_value(claim.id, key, value, defaults[key])
    for key, value in grid.items():
        for v in value if isinstance(value, list) else [value]:
            _check_range(claim.id, key, v)
    try:
        resources.check_network(grid)    # before claim.check, which builds the networks
    except ValueError as err:
        key = next((k for k in ("depth", "width", "n_inputs", "n_train", "n_test") if k in overrides), "width")
        raise _KeyError(("grid", claim.id, key), str(err)) from None
    if claim.check is not None:
        try:
            claim.check(grid)
        except GridError as err:
            raise _KeyError(("grid", claim.id, err.key), str(err).split(": ", 1)[-1]) from None
    return grid


def _check_value(claim_id: str, key: str, value, default):
    keys = ("grid", claim_id, key)
    if isinstance(default, (list, tuple)):
        value = value if isinstance(value, list) else [value]
        if not value:
            raise _KeyError(keys, "is an empty list: give at least one value")
        kind = type(default[0])
        out = [_convert(keys, v, kind) for v in value]
        if len(set(out)) != len(out):
            raise _KeyError(keys, f"repeats a value: {value!r}")
        return out
    return _convert(keys, value, type(default))


def _convert(keys, v, kind):
    if kind is float and _is_type(v, int):
        return float(v)
    if not _is_type(v, kind):
        raise _KeyError(keys, f"must be {kind.__name__} values, got {v!r}")
    return v + 0.0 if kind is float else v     # -0.0 is 0.0: one study, one fingerprint


def _check_range(claim_id: str, key: str, v) -> None:
    keys = ("grid", claim_id, key)
    if isinstance(v, float) and not math.isfinite(v):
        raise _KeyError(keys, f"must be finite, got {v!r}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if (key in _POSITIVE or key.startswith("n_")) and v < 1:
            raise _KeyError(keys, f"must be >= 1, got {v!r}")
        if key.startswith("sigma") and v < 0:
            raise _KeyError(keys, f"must be >= 0, got {v!r}")
        if "sigma_w" in key and v == 0:
            raise _KeyError(keys, f"must be > 0, got {v!r} (zero weights: every network ignores its input)")


def _is_type(v, kind) -> bool:
    if kind is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind is float:
        return isinstance(v, float)
    return isinstance(v, kind)


class _Locator:
    """Finds the line of a key in TOML text, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def line(self, keys: tuple[str, ...]) -> int | None:
        table: tuple[str, ...] = ()
        for number, raw in enumerate(self.lines, 1):
            line = raw.split("#", 1)[0].strip()
            header = re.match(r"^\[\s*([^\[\]]+?)\s*\]$", line)
            if header:
                table = tuple(p.strip().strip('"\'') for p in header.group(1).split("."))
                if table == keys:
                    return number
                continue
            assign = re.match(r"^([\w.\"'-]+?)\s*=", line)
            if assign:
                dotted = tuple(p.strip().strip('"\'') for p in assign.group(1).split("."))
                full = table + dotted
                if full == keys or full[: len(keys)] == keys:
                    return number
        return None

    def error(self, keys: tuple[str, ...], message: str) -> StudyError:
        line = self.line(keys)
        at = f"{self.path}:{line}" if line else str(self.path)
        return StudyError(f"{at}: {'.'.join(keys)}: {message}")
