"""Results store: tidy CSV files under ``<out>/``, written atomically, resumable, verified.

Layout of a study folder::

    <out>/.ntkcheck/manifest.jsonl   every file ntkcheck wrote here: path, bytes, rows, sha256
    <out>/.ntkcheck/lock             held (flock) by the one process writing into the folder
    <out>/metadata.json              study, versions, git commit, runs (command, wall time)
    <out>/tasks/<claim>/<key>.csv    rows of one finished task (temp file + os.replace)
    <out>/<claim>.csv                all rows of a claim, in task order (rebuilt at the end)

A task file counts as done only when its bytes match its manifest entry, which is appended
after the file is in place; a new path is first claimed by a ``pending`` entry, so a file
that a run killed at that instant left without its checksum is still known to be ours.  A
run killed at any moment (even ``kill -9``) loses at most the tasks in flight, and a task
file damaged later (rows deleted, truncated, emptied) is found and recomputed.  The store
writes only into a new or empty folder or a study folder, and never replaces a file its
manifest does not list (git's rule for untracked files) unless the file shows itself ours
(a complete table of its task: a cut or emptied manifest has lost entries, see
:meth:`Store._read_manifest`).  Its lock is never followed through a link.  Floats are
written with ``repr`` (shortest exact round trip), so files are byte-identical whatever
the number of workers.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Callable, Iterable

from .claims import ROW_COLUMNS, Task

_TMP = ".ntkcheck-tmp"
#: Temp files this module makes (``.<name>.<pid>.ntkcheck-tmp[.<ext>]``): the only ones it removes.
_TMP_NAME = re.compile(r"^\..+\.\d+\.ntkcheck-tmp(\.\w+)?$")
_META_DIR = ".ntkcheck"
MANIFEST = f"{_META_DIR}/manifest.jsonl"
LOCK = f"{_META_DIR}/lock"
_FORMAT = {"ntkcheck_study": 1}
#: Figure suffixes the report writes (for adopting the files of a folder without a valid manifest).
_FIGURES = (".png", ".pdf", ".svg")


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


def temp_path(path: Path) -> Path:
    """The temp file next to ``path`` that :func:`write_atomic` writes first (same suffix,
    so that e.g. matplotlib picks the right format)."""
    return path.with_name(f".{path.stem}.{os.getpid()}{_TMP}{path.suffix}")


def drawn_bytes(path: Path, draw: Callable[[Path], None]) -> bytes:
    """What ``draw(tmp)`` writes (e.g. a figure) into the temp file of ``path``, left
    behind by nothing: the bytes to record as ``path`` (:meth:`Store.write_file`; a worker
    may draw them).  ValueError naming ``path`` if it cannot be written (disk full, ...)."""
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draw(tmp)
        return tmp.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    tmp = temp_path(path)
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:    # disk full, interrupted: leave no partial temp file behind
        tmp.unlink(missing_ok=True)
        raise


def _digest(data: bytes) -> dict:
    return {"bytes": len(data), "rows": max(data.count(b"\n") - 1, 0),
            "sha256": hashlib.sha256(data).hexdigest()}


def _task_file_problem(data: bytes, key: str) -> str | None:
    """What is wrong with a task file that has no checksum to compare (None if it is a
    complete table of that task's rows)."""
    try:
        table = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return "is not a CSV table"
    header = table[0] if table else []
    if tuple(header[:len(ROW_COLUMNS)]) != ROW_COLUMNS or len(table) < 2 or not data.endswith(b"\n"):
        return "is incomplete (no header or no rows, or cut short)"
    at = header.index("task")
    if any(len(r) != len(header) or r[at] != key for r in table[1:]):
        return "is damaged (a row with missing cells or of another task)"
    return None


class Store:
    """The folder of one study.  Use :meth:`open` (run) or :meth:`open_existing`
    (report) before writing, and :meth:`close` (or ``with``) to release the lock."""

    def __init__(self, root: str | os.PathLike):
        if not str(root).strip():
            raise ValueError("the output folder is empty (''): give a folder name, e.g. --out results/mine")
        self.root = Path(root)
        self._files: dict[str, dict] | None = None   # manifest: relative path -> entry
        self._lock = None
        self.read_only = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- preparing -------------------------------------------------------------------
    def check_writable(self) -> None:
        """ValueError unless the folder can be written: it exists writable (new, empty
        or a study folder) or can be created (creates nothing)."""
        if self.root.exists():
            if not self.root.is_dir():
                raise ValueError(f"output folder {self.root} exists and is not a folder")
            target = self.root
            self._check_ours()
        else:
            target = self.root.parent
            while not target.exists():
                target = target.parent
            if not target.is_dir():
                raise ValueError(f"cannot create output folder {self.root}: {target} is not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {self.root} is not writable (no write permission on {target})")

    def is_study_folder(self) -> bool:
        """The folder holds ntkcheck's bookkeeping, or (written before manifests existed) a
        metadata.json describing a study."""
        if (self.root / _META_DIR).is_dir():
            return True
        try:
            meta = self.read_metadata()
        except ValueError:
            return False
        return meta is not None and isinstance(meta.get("study"), dict)

    def _check_ours(self) -> None:
        try:
            entries = sorted(e.name for e in self.root.iterdir())
        except OSError as err:
            raise ValueError(f"cannot read output folder {self.root}: {err.strerror}") from None
        if entries and not self.is_study_folder():
            shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            raise ValueError(f"output folder {self.root} is not empty and not an ntkcheck study folder "
                             f"(it holds {shown}); choose a new or empty folder")

    def open(self, study: dict, merge: Callable[[dict, dict], dict | None] | None = None) -> dict:
        """Create the folder (or check that it holds the same ``study``: resume), take
        its lock and remove temp files left by a killed run of ours.  ``merge(folder's,
        study)`` may accept another study into the folder (None refuses it); returns the
        folder's study from now on."""
        self.check_writable()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create output folder {self.root}: {err.strerror}") from None
        self._acquire()
        meta = self.read_metadata()
        merged = study if meta is None or meta.get("study") == study else merge and merge(meta["study"], study)
        if merged is None:
            self.close()
            raise ValueError(f"output folder {self.root} holds results of a different study "
                             "(another grid, budget or seed); choose another --out")
        self._load_manifest(meta)
        return merged

    def open_existing(self) -> dict:
        """Lock an existing study folder for writing its report; returns its metadata.  A
        folder this process cannot write is opened :attr:`read_only` (its results can still
        be read and judged)."""
        if not self.root.is_dir():
            raise ValueError(f"{self.root} is not a folder")
        meta = self.read_metadata()
        if meta is None:
            raise ValueError(f"{self.root} is not a study folder (no metadata.json)")
        if all(os.access(p, os.W_OK | os.X_OK) for p in (self.root, self.root / _META_DIR) if p.is_dir()):
            self._acquire()
            self._load_manifest(meta)
        else:
            self._acquire(shared=True)
            self._files = self._read_manifest(meta)
            self.read_only = True
        return meta

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()       # releases the flock
            self._lock = None

    def _acquire(self, shared: bool = False) -> None:
        """An exclusive, non-blocking flock on the lock file (``shared``: a reader's lock,
        creating and writing nothing): released by the kernel when its holder exits, even
        by ``kill -9``, so a lock is never stale.  A lock that is a link is never followed."""
        path = self.root / LOCK
        if path.parent.is_symlink() or path.is_symlink():
            link = path.parent if path.parent.is_symlink() else path
            raise ValueError(f"{link} is a symbolic link, not ntkcheck's; not following it (remove it and re-run)")
        flags = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)   # nor wait on a pipe
        try:
            if shared:
                fd = os.open(path, os.O_RDONLY | flags)
            else:
                path.parent.mkdir(exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except OSError as err:
            if shared and err.errno == errno.ENOENT:   # a folder nobody can write has no lock to take
                return
            if err.errno == errno.ELOOP:   # replaced by a link since the check above
                raise ValueError(f"{path} is a symbolic link, not ntkcheck's; not following it") from None
            raise ValueError(f"cannot write into {self.root}: {err.strerror}") from None
        fh = os.fdopen(fd, "r" if shared else "r+", encoding="utf-8")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:   # a hard link would share its bytes
            fh.close()
            raise ValueError(f"{path} is not ntkcheck's lock file (not a regular file, or linked "
                             "elsewhere); remove it and re-run")
        try:
            import fcntl
        except ImportError:          # no flock (Windows): no protection against concurrent runs
            self._lock = fh
            return
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise ValueError(f"output folder {self.root} is in use by another ntkcheck process "
                             f"(pid {holder}); wait for it to finish or choose another --out") from None
        except OSError as err:       # a filesystem without locks: refuse rather than risk interleaving
            fh.close()
            raise ValueError(f"cannot lock output folder {self.root}: {err.strerror}") from None
        if not shared:
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"{os.getpid()}\n")
                fh.flush()
            except OSError as err:   # disk full: nothing else could be written either
                fh.close()
                raise ValueError(f"cannot write into {self.root}: {err.strerror}") from None
        self._lock = fh

    # -- manifest --------------------------------------------------------------------
    def _load_manifest(self, meta: dict | None) -> None:
        """Read the manifest (:meth:`_read_manifest`), rewrite it compacted and remove our
        temp files."""
        files = self._read_manifest(meta)
        self._files = files
        lines = [json.dumps(_FORMAT)] + [json.dumps(files[k], sort_keys=True) for k in sorted(files)]
        try:
            write_atomic(self.root / MANIFEST, "\n".join(lines) + "\n")
        except OSError as err:
            raise ValueError(f"cannot write into {self.root}: {err.strerror}") from None
        for folder in (self.root, self.root / _META_DIR):
            self._remove_temps(folder.glob("*"))
        self._remove_temps((self.root / "tasks").rglob("*"))

    def _read_manifest(self, meta: dict | None) -> dict[str, dict]:
        """The manifest's entries.  Without a manifest (a folder written before manifests
        existed, or the manifest deleted) the files ntkcheck writes are adopted.  A manifest
        may have lost entries (emptied, or cut): its entries are kept, and the files it does
        not list are adopted if their content shows them ours (a complete table of their
        task; the metadata, already validated) or, when it is visibly damaged (no header, a
        line that is not an entry), as for a missing one, except a task file that is not a
        complete table of its task.  A last line cut by a kill mid-append cannot be told
        from a cut manifest, so it counts as damage too."""
        path = self.root / MANIFEST
        if not path.is_file():
            return self._adopt(meta) if meta is not None else {}
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        files: dict[str, dict] = {}
        damaged = not lines or lines[0] != json.dumps(_FORMAT)
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                files[entry["path"]] = entry
            else:
                damaged = True
        if meta is not None:     # a manifest cut at a line's end looks intact: adopt what proves ours
            adopted = self._adopt(meta, listed=files, reports=damaged)
            files.update((k, e) for k, e in adopted.items() if not e.get("invalid"))
        return files

    @staticmethod
    def _remove_temps(paths) -> None:
        for tmp in paths:
            if _TMP_NAME.match(tmp.name) and tmp.is_file():
                tmp.unlink()

    def _adopt(self, meta: dict, listed=(), reports: bool = True) -> dict[str, dict]:
        """Entries for the files ntkcheck writes (metadata, task files and, if ``reports``,
        reports) that are not ``listed``."""
        claims = meta.get("study", {}).get("claims", [])
        exts = (".csv", ".md", ".tex", *_FIGURES, *(f"-figure{f}" for f in _FIGURES))
        names = ["metadata.json"] + (["summary.md", "summary.tex", "convergence.csv", "convergence.md",
                                      "convergence.tex"] + [f"{c}{e}" for c in claims for e in exts]
                                     if reports else [])
        paths = [self.root / n for n in names] + sorted((self.root / "tasks").glob("*/*.csv"))
        if reports:      # report --style paper: figures/<claim>/<panel>.<fmt>
            paths += sorted(p for p in (self.root / "figures").glob("*/*")
                            if p.parent.name in claims and p.suffix in _FIGURES)
        files = {}
        for p in paths:
            rel = p.relative_to(self.root).as_posix()
            if rel not in listed and p.is_file():
                data = p.read_bytes()
                files[rel] = {"path": rel, "adopted": True, **_digest(data)}
                if rel.startswith("tasks/"):
                    invalid = _task_file_problem(data, p.stem)
                    if invalid:
                        files[rel]["invalid"] = invalid
        return files

    def _record(self, rel: str, data: bytes | None) -> None:
        """Append ``rel``'s entry (``data=None``: a pending claim on a path about to be written)."""
        entry = {"path": rel, **(_digest(data) if data is not None else {"pending": True})}
        self._files[rel] = entry
        with open(self.root / MANIFEST, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def owns(self, path: Path) -> bool:
        return self._rel(path) in self._files

    def adopted(self, path: Path) -> bool:
        """The file predates the manifest: its entry vouches for nothing."""
        return bool(self._files.get(self._rel(path), {}).get("adopted"))

    def _refuse_if_foreign(self, path: Path) -> None:
        """ValueError if a file (or link) ntkcheck did not write is at ``path``."""
        if (path.exists() or path.is_symlink()) and not self.owns(path):
            raise ValueError(f"{path} was not written by ntkcheck; not replacing it (move it away and re-run)")

    def _check_open(self) -> None:
        if self._files is None:
            raise RuntimeError("Store.open or open_existing must come first")
        if self.read_only:
            raise RuntimeError(f"{self.root} was opened read-only")

    def write_file(self, path: Path, data: str | bytes) -> None:
        """Write (atomically) and record a file of the study folder; ValueError if a file
        ntkcheck did not write is in the way."""
        self._check_open()
        self._refuse_if_foreign(path)
        data = data.encode("utf-8") if isinstance(data, str) else data
        rel = self._rel(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if rel not in self._files:
                self._record(rel, None)    # a kill between the rename and the checksum leaves a file we own
            write_atomic(path, data)
            self._record(rel, data)
        except OSError as err:       # read-only folder, disk full, ...
            raise ValueError(f"cannot write {path}: {err.strerror or err}") from None

    def damage(self, path: Path) -> str | None:
        """Why the file at ``path`` cannot be trusted (None if it matches its entry)."""
        entry = self._files.get(self._rel(path)) if self._files is not None else None
        if not path.is_file():
            return "missing"
        if entry is None:
            return "was not written by ntkcheck"
        if entry.get("pending") or not isinstance(entry.get("bytes"), int) or "sha256" not in entry:
            return "not recorded as complete (written by a run killed at that moment?)"
        if entry.get("invalid"):
            return entry["invalid"]
        data = path.read_bytes()
        if len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]:
            return None
        rows = _digest(data)["rows"]
        if rows != entry["rows"] or len(data) != entry["bytes"]:
            return (f"is damaged: {rows} of the {entry['rows']} rows written remain "
                    f"({len(data)} of {entry['bytes']} bytes)")
        return "its content differs from what was written (checksum mismatch)"

    # -- tasks -----------------------------------------------------------------------
    def task_path(self, task: Task) -> Path:
        return self.root / "tasks" / task.claim / f"{task.key}.csv"

    def is_done(self, task: Task) -> bool:
        return self.damage(self.task_path(task)) is None

    def refuse_foreign(self, tasks: Iterable[Task]) -> None:
        """ValueError naming the first task file in the way that ntkcheck did not write."""
        for task in tasks:
            self._refuse_if_foreign(self.task_path(task))

    def task_damage(self, task: Task) -> str | None:
        """Why an existing task file must be recomputed (None if absent or intact)."""
        path = self.task_path(task)
        return None if not path.exists() else self.damage(path)

    def write_task(self, task: Task, rows: list[dict]) -> None:
        self.write_file(self.task_path(task), csv_text(rows, columns_of(rows)))

    def consolidate(self, claim: str, tasks: list[Task]) -> Path:
        """Rebuild ``<claim>.csv`` from the task files of ``tasks`` (in that order),
        copying each cell's text unchanged; ValueError naming a damaged task file."""
        tables = []
        for task in tasks:
            path = self.task_path(task)
            problem = self.damage(path)
            if problem is not None:
                raise ValueError(f"{path}: {problem}; re-run the study to recompute it")
            with open(path, encoding="utf-8", newline="") as fh:
                tables.append(list(csv.reader(fh)))
        columns = columns_of([dict.fromkeys(t[0]) for t in tables])
        rows = [dict(zip(t[0], r)) for t in tables for r in t[1:]]
        path = self.claim_path(claim)
        self.write_file(path, csv_text(rows, columns))
        return path

    def claim_path(self, claim: str) -> Path:
        return self.root / f"{claim}.csv"

    def read_claim(self, claim: str):
        """The consolidated rows of ``claim`` as a DataFrame (floats exact); ValueError
        naming the file if it is missing, damaged or not a results table."""
        import pandas as pd

        path = self.claim_path(claim)
        if not path.is_file():
            raise ValueError(f"{path} not found: run the study first")
        problem = self.damage(path) if self._files is not None else None
        if problem is not None:
            raise ValueError(f"{path}: {problem}; re-run the study to rebuild it")
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        try:
            # one pass over the file: column types inferred from all rows, not per chunk
            df = pd.read_csv(path, low_memory=False, **exact)   # floats exactly as written
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            raise ValueError(f"{path}: not a readable results table: {str(err).splitlines()[0]}") from None
        missing = [c for c in ("claim", "task", "quantity", "value") if c not in df.columns]
        if missing or df.empty:
            raise ValueError(f"{path}: not a results table of {claim} "
                             f"({'no rows' if not missing else 'no column ' + ', '.join(missing)})")
        return df

    # -- metadata --------------------------------------------------------------------
    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.json"

    def read_metadata(self) -> dict | None:
        """The folder's metadata (None if absent); ValueError naming the file if corrupt."""
        path = self.metadata_path
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: corrupt metadata (not JSON: {err})") from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read: {err.strerror}") from None
        study = meta.get("study") if isinstance(meta, dict) else None
        if not isinstance(study, dict) or not isinstance(study.get("claims"), list):
            raise ValueError(f"{path}: corrupt metadata (no study with its claims)")
        return meta

    def write_metadata(self, meta: dict) -> None:
        self.write_file(self.metadata_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
