"""Results store: tidy CSV files under ``<out>/``, written atomically, resumable.

Layout of a study folder::

    <out>/metadata.json              study, versions, git commit, runs (command, wall time)
    <out>/tasks/<claim>/<key>.csv    rows of one finished task (temp file + os.replace)
    <out>/<claim>.csv                all rows of a claim, in task order (rebuilt at the end)

A task file exists only once complete (``os.replace`` is atomic), so a run killed at any
moment (even ``kill -9``) loses at most the tasks in flight; re-running skips the tasks
whose file exists.  Floats are written with ``repr`` (shortest exact round trip), so files
are byte-identical whatever the number of workers.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Iterable

from .claims import ROW_COLUMNS, Task

_TMP = ".tmp"


def format_value(v) -> str:
    """Deterministic text of a cell: exact floats (``repr``), ints, strings, '' for None."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (hasattr(v, "dtype") and v.dtype.kind in "iu"):
        return str(int(v))
    if isinstance(v, float) or (hasattr(v, "dtype") and v.dtype.kind == "f"):
        v = float(v)
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def columns_of(rows: Iterable[dict]) -> list[str]:
    """:data:`ROW_COLUMNS` followed by the sorted extra columns of ``rows``."""
    extra = sorted({k for r in rows for k in r} - set(ROW_COLUMNS))
    return list(ROW_COLUMNS) + extra


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([format_value(r.get(c)) for c in columns])
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Store:
    """The folder of one study."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- preparing -------------------------------------------------------------------
    def check_writable(self) -> None:
        """ValueError unless the folder exists writable or can be created (creates nothing)."""
        if self.root.exists():
            if not self.root.is_dir():
                raise ValueError(f"output folder {self.root} exists and is not a folder")
            target = self.root
        else:
            target = self.root.parent
            while not target.exists():
                target = target.parent
            if not target.is_dir():
                raise ValueError(f"cannot create output folder {self.root}: {target} is not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {self.root} is not writable (no write permission on {target})")

    def open(self, study: dict) -> None:
        """Create the folder, or check that it holds the same ``study`` (resume), and
        remove temp files left by a killed run."""
        meta = self.read_metadata()
        if meta is not None and meta.get("study") != study:
            raise ValueError(f"output folder {self.root} holds results of a different study "
                             "(other claims, grid, budget or seed); choose another --out")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create output folder {self.root}: {err.strerror}") from None
        for tmp in self.root.rglob(f".*{_TMP}"):
            tmp.unlink()

    # -- tasks -----------------------------------------------------------------------
    def task_path(self, task: Task) -> Path:
        return self.root / "tasks" / task.claim / f"{task.key}.csv"

    def is_done(self, task: Task) -> bool:
        return self.task_path(task).is_file()

    def write_task(self, task: Task, rows: list[dict]) -> None:
        path = self.task_path(task)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, csv_text(rows, columns_of(rows)))

    def consolidate(self, claim: str, tasks: list[Task]) -> Path:
        """Rebuild ``<claim>.csv`` from the task files of ``tasks`` (in that order),
        copying each cell's text unchanged."""
        tables = []
        for task in tasks:
            with open(self.task_path(task), encoding="utf-8", newline="") as fh:
                tables.append(list(csv.reader(fh)))
        columns = columns_of([dict.fromkeys(t[0]) for t in tables])
        rows = [dict(zip(t[0], r)) for t in tables for r in t[1:]]
        path = self.claim_path(claim)
        write_atomic(path, csv_text(rows, columns))
        return path

    def claim_path(self, claim: str) -> Path:
        return self.root / f"{claim}.csv"

    def read_claim(self, claim: str):
        """The consolidated rows of ``claim`` as a DataFrame (floats exact)."""
        import pandas as pd

        path = self.claim_path(claim)
        if not path.is_file():
            raise ValueError(f"{path} not found: run the study first")
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        return pd.read_csv(path, **exact)   # floats exactly as written

    # -- metadata --------------------------------------------------------------------
    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.json"

    def read_metadata(self) -> dict | None:
        if not self.metadata_path.is_file():
            return None
        with open(self.metadata_path, encoding="utf-8") as fh:
            return json.load(fh)

    def write_metadata(self, meta: dict) -> None:
        write_atomic(self.metadata_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
