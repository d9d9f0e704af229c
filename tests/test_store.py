"""The store writes only where it may and never loses what is not its own: foreign
folders refused, unlisted files never replaced, only its own temp files removed, one
writer at a time, damaged files found by their manifest entries."""
import errno
import json
import os
import subprocess
import sys

import pytest

from ntkcheck.claims import Task
from ntkcheck.store import LOCK, MANIFEST, Store, columns_of, csv_text, drawn_bytes

STUDY = {"budget": "quick", "seed": 1, "claims": ["kernel-mean"], "grids": {}}
TASK = Task("kernel-mean", "width=8,chunk=0", {}, None)
ROWS = [{"claim": "kernel-mean", "task": TASK.key, "quantity": "q", "value": 0.1 * i} for i in range(10)]


def user_folder(root):
    """The folder of the issue: a user's files, two of them hidden temp files."""
    (root / "project" / ".cache").mkdir(parents=True)
    files = {"notes.txt": "mine", ".draft.tmp": "draft", "project/.cache/.build.tmp": "build",
             "kernel-mean.csv": "a,b\n1,2\n", "summary.md": "# my summary\n"}
    for name, text in files.items():
        (root / name).write_text(text)
    return files


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def opened(root):
    store = Store(root)
    store.open(STUDY)
    return store


def test_foreign_folder_is_refused_and_left_untouched(tmp_path):
    user_folder(tmp_path)
    before = snapshot(tmp_path)
    for call in (Store(tmp_path).check_writable, lambda: Store(tmp_path).open(STUDY)):
        with pytest.raises(ValueError, match="not empty and not an ntkcheck study folder"):
            call()
    assert snapshot(tmp_path) == before


def test_empty_out_is_refused():
    for out in ("", "  "):
        with pytest.raises(ValueError, match="output folder is empty"):
            Store(out)


def test_unlisted_files_are_never_replaced_and_only_own_temps_removed(tmp_path):
    with opened(tmp_path) as store:
        store.write_task(TASK, ROWS)
    (tmp_path / "summary.md").write_text("mine")
    (tmp_path / ".notes.tmp").write_text("mine")
    (tmp_path / "tasks" / ".x.123.tmp").write_text("mine")
    ours = tmp_path / "tasks" / "kernel-mean" / ".a.123.ntkcheck-tmp"
    ours.write_text("left by a killed run")
    with opened(tmp_path) as store:
        assert not ours.exists()
        assert (tmp_path / ".notes.tmp").exists() and (tmp_path / "tasks" / ".x.123.tmp").exists()
        with pytest.raises(ValueError, match="summary.md was not written by ntkcheck; not replacing it"):
            store.write_file(tmp_path / "summary.md", "report")
        store.write_task(TASK, ROWS)              # its own file: may be rewritten
    assert (tmp_path / "summary.md").read_text() == "mine"


def test_second_writer_is_refused_and_a_dead_holder_does_not_block(tmp_path):
    first = opened(tmp_path)
    with pytest.raises(ValueError, match=rf"in use by another ntkcheck process \(pid {os.getpid()}\)"):
        Store(tmp_path).open(STUDY)
    first.close()
    # a process that took the lock and was killed: flock dies with it, only its pid stays
    code = (f"import os; from ntkcheck.store import Store; s = Store({str(tmp_path)!r}); "
            f"s.open({STUDY!r}); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert (tmp_path / LOCK).read_text().strip() != str(os.getpid())
    opened(tmp_path).close()


@pytest.mark.parametrize("damage, message", [
    (lambda t: "\n".join(t.splitlines()[:-3]) + "\n", "7 of the 10 rows written remain"),
    (lambda t: "", "0 of the 10 rows written remain"),
    (lambda t: t[: len(t) // 2], "rows written remain"),
    (lambda t: t.replace("0.1", "0.2"), "checksum mismatch"),
])
def test_damaged_task_file_is_found(tmp_path, damage, message):
    with opened(tmp_path) as store:
        store.write_task(TASK, ROWS)
        assert store.is_done(TASK) and store.task_damage(TASK) is None
        path = store.task_path(TASK)
        path.write_text(damage(path.read_text()))
        assert not store.is_done(TASK) and message in store.task_damage(TASK)
    with opened(tmp_path) as store:              # the manifest survives the reopening
        assert message in store.task_damage(TASK)


def test_task_file_without_its_manifest_entry_is_incomplete(tmp_path):
    with opened(tmp_path) as store:
        store.write_task(TASK, ROWS)
    manifest = tmp_path / MANIFEST
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + '\n{"path": "tasks/kern')   # killed mid-append
    with opened(tmp_path) as store:
        assert "not recorded as complete" in store.task_damage(TASK)
        store.write_task(TASK, ROWS)         # its pending entry says the file is ours: recomputed
        assert store.is_done(TASK)


def test_task_file_nobody_recorded_is_foreign(tmp_path):
    with opened(tmp_path) as store:
        path = store.task_path(TASK)
        path.parent.mkdir(parents=True)
        path.write_text("mine")
        assert store.task_damage(TASK) == "was not written by ntkcheck"
        with pytest.raises(ValueError, match="was not written by ntkcheck; not replacing it"):
            store.refuse_foreign([TASK])
        with pytest.raises(ValueError, match="was not written by ntkcheck; not replacing it"):
            store.write_task(TASK, ROWS)
    assert path.read_text() == "mine"


@pytest.mark.parametrize("text, message", [("{}", "no study with its claims"), ("garbage{", "not JSON"),
                                           ('{"study": 3}', "no study with its claims")])
def test_corrupt_metadata_is_named(tmp_path, text, message):
    (tmp_path / "metadata.json").write_text(text)
    with pytest.raises(ValueError, match=rf"metadata.json: corrupt metadata \({message}"):
        Store(tmp_path).read_metadata()


def test_folder_from_before_manifests_is_adopted(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"name": "x", "study": STUDY}))
    (tmp_path / "tasks" / "kernel-mean").mkdir(parents=True)
    (tmp_path / "tasks" / "kernel-mean" / f"{TASK.key}.csv").write_text(csv_text(ROWS, columns_of(ROWS)))
    (tmp_path / "kernel-mean.md").write_text("old report")
    (tmp_path / "notes.txt").write_text("mine")
    broken = Task("kernel-mean", "width=16,chunk=0", {}, None)
    (tmp_path / "tasks" / "kernel-mean" / f"{broken.key}.csv").write_text("claim,task\nkernel-mean,wid")
    with opened(tmp_path) as store:
        assert store.is_done(TASK) and store.adopted(tmp_path / "kernel-mean.md")
        assert "is incomplete" in store.task_damage(broken)
        store.write_task(broken, ROWS)       # recomputed: ntkcheck wrote it, if not completely
        store.write_file(tmp_path / "kernel-mean.md", "new report")
        with pytest.raises(ValueError, match="notes.txt was not written by ntkcheck"):
            store.write_file(tmp_path / "notes.txt", "x")


@pytest.mark.parametrize("link", ["symlink", "hardlink", "symlinked folder"])
def test_a_linked_lock_is_never_followed(tmp_path, link):
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    out = tmp_path / "out"
    opened(out).close()
    lock = out / LOCK
    lock.unlink()
    if link == "symlink":
        lock.symlink_to(target)
    elif link == "hardlink":
        os.link(target, lock)
    else:
        (tmp_path / "elsewhere").mkdir()
        (out / MANIFEST).rename(tmp_path / "elsewhere" / "manifest.jsonl")
        lock.parent.rmdir()
        lock.parent.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="lock|.ntkcheck"):
        opened(out)
    assert target.read_text() == "mine"
    assert not (tmp_path / "elsewhere" / "lock").exists()


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_writing_the_lock_pid_is_one_clear_error(tmp_path, monkeypatch):
    opened(tmp_path).close()
    before = snapshot(tmp_path)
    real_open = os.fdopen

    def fdopen(fd, *args, **kwargs):
        fh = real_open(fd, *args, **kwargs)
        fh.write = disk_full
        return fh
    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(ValueError, match="cannot write into .*No space left on device"):
        opened(tmp_path)
    monkeypatch.undo()
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != LOCK} == {k: v for k, v in before.items() if k != LOCK}
    opened(tmp_path).close()


def test_disk_full_drawing_a_figure_keeps_the_old_one(tmp_path):
    figure = tmp_path / "kernel-mean.png"
    with opened(tmp_path) as store:
        store.write_file(figure, b"old figure")

        def draw(tmp):
            tmp.write_bytes(b"half a fig")
            disk_full()
        with pytest.raises(ValueError, match=r"cannot write .*kernel-mean.png: No space left on device"):
            store.write_file(figure, drawn_bytes(figure, draw))
        assert figure.read_bytes() == b"old figure" and store.damage(figure) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ntkcheck", "kernel-mean.png"]


def finished(root):
    """A study folder with a task file, metadata and a report file, all in the manifest."""
    (root / "metadata.json").write_text(json.dumps({"name": "x", "study": STUDY}))
    with opened(root) as store:
        store.write_task(TASK, ROWS)
        store.write_file(root / "kernel-mean.md", "report")
        store.write_file(root / "metadata.json", json.dumps({"name": "x", "study": STUDY}))
    return root / MANIFEST


@pytest.mark.parametrize("damage, visible", [(lambda t: "", True), (lambda t: t[: len(t) // 2], True),
                                             (lambda t: t[:10], True), (lambda t: "garbage\n" + t, True),
                                             (lambda t: t.splitlines()[0] + "\n", False)])
def test_a_damaged_manifest_recovers_like_a_deleted_one(tmp_path, damage, visible):
    manifest = finished(tmp_path)
    foreign = Task("kernel-mean", "width=16,chunk=0", {}, None)
    path = tmp_path / "tasks" / "kernel-mean" / f"{foreign.key}.csv"
    path.write_text("mine")                   # not a table of its task: never adopted
    manifest.write_text(damage(manifest.read_text()))
    with opened(tmp_path) as store:           # done, or (cut after its pending entry) recomputed
        assert store.is_done(TASK) or "not recorded as complete" in store.task_damage(TASK)
        store.write_task(TASK, ROWS)
        store.write_metadata({"name": "x", "study": STUDY})
        if visible:
            store.write_file(tmp_path / "kernel-mean.md", "new report")
        else:                                 # cut at a line's end: a report proves nothing
            with pytest.raises(ValueError, match="kernel-mean.md was not written by ntkcheck"):
                store.write_file(tmp_path / "kernel-mean.md", "new report")
        with pytest.raises(ValueError, match="was not written by ntkcheck"):
            store.write_task(foreign, ROWS)
    assert path.read_text() == "mine"
    with opened(tmp_path) as store:           # the recovered manifest is intact again
        assert store.is_done(TASK) and store.task_damage(foreign) == "was not written by ntkcheck"


def test_a_read_only_folder_is_opened_for_reading_only(tmp_path, monkeypatch):
    finished(tmp_path)
    (tmp_path / "tasks" / ".x.1.ntkcheck-tmp").write_text("left by a killed run")
    before = snapshot(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(tmp_path))
                        else real_access(p, mode))
    with Store(tmp_path) as store:
        assert store.open_existing()["study"] == STUDY
        assert store.read_only and store.is_done(TASK)
        with pytest.raises(RuntimeError, match="opened read-only"):
            store.write_file(tmp_path / "kernel-mean.md", "x")
        monkeypatch.undo()
        with pytest.raises(ValueError, match="in use by another ntkcheck process"):
            opened(tmp_path)                  # a reader keeps writers out
    assert snapshot(tmp_path) == before
