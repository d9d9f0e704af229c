"""Runner and store: seeds independent of order, exact chunk pooling, byte-identical
CSVs with 1 job, 2 jobs and a Dask LocalCluster, resume after SIGKILL."""
import dataclasses
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import get_claim, pool, task_seed
from ntkcheck.runner import plan, run_study
from ntkcheck.store import format_value
from ntkcheck.studies import make_study

ROOT = Path(__file__).resolve().parents[1]
TINY = {"architecture": ["mlp"], "width": [8, 16], "activation": ["relu"], "n_networks": 40, "chunk": 10,
        "control_n_networks": 0}     # the machinery, not the claim: no control tasks


def tiny_study(out, **grid):
    return make_study("quick", claims=["kernel-mean"], seed=7, out=out, overrides={"kernel-mean": {**TINY, **grid}})


def csv_bytes(out):
    files = sorted(Path(out, "tasks").rglob("*.csv"))
    return Path(out, "kernel-mean.csv").read_bytes(), {f.name: f.read_bytes() for f in files}


def test_task_seeds_depend_only_on_study_seed_and_key():
    tasks = plan(tiny_study("unused"))["kernel-mean"]
    assert len(tasks) == 2 * 4 and len({t.key for t in tasks}) == len(tasks)
    for t in tasks:
        assert t.seed.spawn_key == task_seed(7, "kernel-mean", t.key).spawn_key
    reordered = plan(tiny_study("unused", width=[16, 8]))["kernel-mean"]
    by_key = {t.key: t.seed.spawn_key for t in tasks}
    assert all(by_key[t.key] == t.seed.spawn_key for t in reordered)
    other = plan(make_study("quick", claims=["kernel-mean"], seed=8, overrides={"kernel-mean": TINY}))
    assert other["kernel-mean"][0].seed.entropy == 8


def test_pool_is_exact():
    x = np.random.default_rng(1).standard_normal(30)
    chunks = [x[:10], x[10:25], x[25:]]
    df = pd.DataFrame({"g": 0, "value": [c.mean() for c in chunks],
                       "stderr": [c.std(ddof=1) / np.sqrt(len(c)) for c in chunks],
                       "n_networks": [len(c) for c in chunks]})
    p = pool(df, ["g"])
    assert p["n_networks"][0] == 30
    np.testing.assert_allclose(p["value"][0], x.mean(), rtol=1e-13)
    np.testing.assert_allclose(p["stderr"][0], x.std(ddof=1) / np.sqrt(30), rtol=1e-12)


def test_format_value_is_exact_and_plain():
    v = 0.1 + 0.2
    assert float(format_value(np.float64(v))) == v and format_value(np.float64(v)) == repr(v)
    assert format_value(np.int64(3)) == "3" and format_value(True) == "True" and format_value(None) == ""


def test_identical_values_with_1_job_2_jobs_and_dask(tmp_path):
    distributed = pytest.importorskip("distributed")
    ref = run_study(tiny_study(tmp_path / "j1"), jobs=1)
    assert ref.n_run == 8 and ref.verdicts["kernel-mean"].claim == "kernel-mean"
    run_study(tiny_study(tmp_path / "j2"), jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        run_study(tiny_study(tmp_path / "dask"), scheduler=cluster.scheduler_address)
    expected = csv_bytes(tmp_path / "j1")
    assert csv_bytes(tmp_path / "j2") == expected
    assert csv_bytes(tmp_path / "dask") == expected
    df = pd.read_csv(tmp_path / "j1" / "kernel-mean.csv")
    assert len(df) == 8 * 12 and not df.duplicated(["task", "quantity", "i", "j"]).any()
    again = run_study(tiny_study(tmp_path / "j1"), jobs=1)      # resume: nothing left to do
    assert again.n_run == 0 and again.n_skipped == 8 and csv_bytes(tmp_path / "j1") == expected


def test_foreign_task_file_is_refused_before_computing(tmp_path):
    study = tiny_study(tmp_path / "out")
    run_study(study, jobs=1)
    first = plan(study)["kernel-mean"][0]
    path = tmp_path / "out" / "tasks" / "kernel-mean" / f"{first.key}.csv"
    manifest = tmp_path / "out" / ".ntkcheck" / "manifest.jsonl"
    manifest.write_text("".join(line + "\n" for line in manifest.read_text().splitlines()
                                if path.name not in line))          # as if someone else put it there
    path.write_text("mine")
    others = {f: f.stat().st_mtime_ns for f in path.parent.glob("*.csv") if f != path}
    with pytest.raises(ValueError, match=f"{re.escape(path.name)} was not written by ntkcheck; not replacing it"):
        run_study(study, jobs=1)
    assert path.read_text() == "mine"
    assert {f: f.stat().st_mtime_ns for f in others} == others


def test_resume_after_a_kill_between_rename_and_checksum(tmp_path, monkeypatch):
    import ntkcheck.store as store_module

    calls, real = [], store_module.write_atomic

    def killed_after_third_task(path, data):
        real(path, data)
        calls.append(path)
        if path.parent.name == "kernel-mean" and sum(p.parent.name == "kernel-mean" for p in calls) == 3:
            raise KeyboardInterrupt          # the file is in place; its checksum never gets written
    monkeypatch.setattr(store_module, "write_atomic", killed_after_third_task)
    study = tiny_study(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        run_study(study, jobs=1)
    monkeypatch.setattr(store_module, "write_atomic", real)
    notes = []
    again = run_study(study, jobs=1, notify=notes.append)
    assert again.n_skipped == 2 and again.n_run == 6 and "not recorded as complete" in notes[0]
    run_study(tiny_study(tmp_path / "ref"), jobs=1)
    assert csv_bytes(tmp_path / "out") == csv_bytes(tmp_path / "ref")


def test_resume_after_sigkill(tmp_path):
    grid = {"width": [96, 128], "n_networks": 240, "chunk": 40}   # 24 tasks of ~0.1 s each
    study_file = tmp_path / "study.toml"
    study_file.write_text(
        'budget = "quick"\nseed = 7\nclaims = ["kernel-mean"]\n[grid.kernel-mean]\n'
        'architecture = ["mlp"]\nwidth = [96, 128]\nn_networks = 240\nchunk = 40\nactivation = ["relu", "erf"]\n'
        'control_n_networks = 0\n')
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ntkcheck", "run", str(study_file), "--jobs", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tasks_dir = out / "tasks" / "kernel-mean"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tasks_dir.glob("*.csv"))) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(tasks_dir.glob("*.csv")))
    assert 3 <= done < 24, "the run must be killed midway"
    assert not (out / "kernel-mean.csv").exists()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode in (1, 4), res.stderr   # no control (control_n_networks = 0): at best inconclusive
    # a task file written in the instant before its manifest entry is recomputed
    skipped = int(re.search(r"(\d+) tasks run, (\d+) already done", res.stderr).group(2))
    assert skipped in (done, done - 1) and f"{24 - skipped} tasks run" in res.stderr
    assert not list(out.rglob("*ntkcheck-tmp*"))
    ref = run_study(dataclasses.replace(tiny_study(tmp_path / "ref", **grid, activation=["relu", "erf"])), jobs=1)
    assert ref.n_run == 24
    assert csv_bytes(out) == csv_bytes(tmp_path / "ref")


def test_folder_of_another_study_is_refused(tmp_path):
    run_study(tiny_study(tmp_path / "a", width=[8, 12]), jobs=1)
    with pytest.raises(ValueError, match="different study"):
        run_study(tiny_study(tmp_path / "a"), jobs=1)


def test_claim_registry_fields():
    c = get_claim("kernel-mean")
    assert c.sources and c.title and set(c.grids) == {"quick", "standard", "full"}
    with pytest.raises(ValueError, match="unknown claim"):
        get_claim("nope")


@pytest.mark.parametrize("damage", ["rows", "empty", "half"])
def test_damaged_task_file_is_reported_and_recomputed(tmp_path, damage):
    ref = tmp_path / "ref"
    run_study(tiny_study(ref), jobs=1)
    out = tmp_path / "out"
    run_study(tiny_study(out), jobs=1)
    victim = sorted((out / "tasks" / "kernel-mean").glob("*.csv"))[3]
    text = victim.read_text()
    victim.write_text({"rows": "\n".join(text.splitlines()[:-3]) + "\n", "empty": "",
                       "half": text[: len(text) // 2]}[damage])
    notes = []
    res = run_study(tiny_study(out), jobs=100000, notify=notes.append)
    assert res.n_run == 1 and res.n_skipped == 7
    assert len(notes) == 2 and f"recomputing 1 damaged or incomplete task file(s): tasks/kernel-mean/{victim.name} " \
        "is damaged" in notes[0]
    assert notes[1] == "note: --jobs 100000 capped at 1, the number of tasks to run"
    assert csv_bytes(out) == csv_bytes(ref)


def test_second_concurrent_run_is_refused(tmp_path):
    from ntkcheck.store import Store

    holder = Store(tmp_path / "out")
    holder.open(tiny_study(tmp_path / "out").fingerprint())
    try:
        with pytest.raises(ValueError, match="is in use by another ntkcheck process"):
            run_study(tiny_study(tmp_path / "out"), jobs=1)
    finally:
        holder.close()
    assert run_study(tiny_study(tmp_path / "out"), jobs=1).n_run == 8


@pytest.mark.parametrize("grid, message", [
    ({"width": [8, 2**40]}, r"needs at least .* GiB of memory"),
    ({"n_networks": 2**40, "chunk": 2**10}, r"grid.kernel-mean: \d+ tasks \(more than 1000000\)"),
    ({"n_networks": 2**41, "chunk": 2**40}, r"needs at least .* GiB of memory"),
])
def test_study_beyond_the_machine_is_refused_before_anything_runs(tmp_path, grid, message):
    with pytest.raises(ValueError, match=message):
        run_study(tiny_study(tmp_path / "out", **grid), jobs=1)
    assert not (tmp_path / "out").exists()


def test_dask_addresses_that_cannot_work_get_one_line(tmp_path):
    import socket
    import threading

    distributed = pytest.importorskip("distributed")
    from ntkcheck.runner import dask_client

    silent = socket.create_server(("127.0.0.1", 0))      # accepts, never speaks Dask
    threading.Thread(target=lambda: [silent.accept() for _ in range(3)], daemon=True).start()
    port = silent.getsockname()[1]
    cases = {f"tcp://127.0.0.1:{port}": "no Dask scheduler answered within 1 s",
             f"tls://127.0.0.1:{port}": "tls:// needs TLS certificates",
             f"ucx://127.0.0.1:{port}": "ucx:// protocol needs the UCX backend",
             "inproc://nothing": "inproc:// names a scheduler inside this same process",
             "tcp://127.0.0.1": "has no port"}
    for address, message in cases.items():
        with pytest.raises(ValueError, match=message):
            with dask_client(address, timeout=1):
                pass
    silent.close()
    notes = []
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with pytest.raises(ValueError, match=r"no Dask worker joined the scheduler at .* within 0.5 s"):
            run_study(tiny_study(tmp_path / "out"), scheduler=cluster.scheduler_address, worker_timeout=0.5,
                      notify=notes.append)
    assert notes == [f"waiting for Dask workers at {cluster.scheduler_address} (up to 0.5 s; "
                     "--worker-timeout to change)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_parent(tmp_path):
    study_file = tmp_path / "study.toml"
    study_file.write_text('seed = 1\nclaims = ["kernel-mean"]\n[grid.kernel-mean]\nwidth = [512, 1024]\n'
                          'activation = ["relu", "erf"]\nn_networks = 4096\nchunk = 64\n')
    cmd = [sys.executable, "-m", "ntkcheck", "run", str(study_file), "--jobs", "2", "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children():
        out = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == proc.pid:
                out.add(int(stat.parent.name))
        return out

    deadline = time.time() + 60
    # workers run their parent watch once started up (imports done): wait for a first result
    while time.time() < deadline and (len(children()) < 3 or not list(tmp_path.glob("o/tasks/*/*.csv"))):
        time.sleep(0.05)
    kids = children()
    assert len(kids) >= 3, "two workers and the resource tracker"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(Path(f"/proc/{k}").exists() for k in kids):
        time.sleep(0.1)
    alive = [k for k in kids if Path(f"/proc/{k}").exists()
             and Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"processes {alive} outlived their parent"


def test_jobs_capped_at_cpus_and_memory_with_a_note(tmp_path, monkeypatch):
    from ntkcheck import resources

    monkeypatch.setattr(resources, "cpu_count", lambda: 4)
    monkeypatch.setattr(resources, "machine_bytes", lambda: 3 * resources.WORKER_BYTES + 10)
    assert resources.cap_jobs(2, 100, 0) == (2, None)
    assert resources.cap_jobs(1000, 100, 0)[0] == 3 and "fits in" in resources.cap_jobs(1000, 100, 0)[1]
    assert resources.cap_jobs(1000, 2, 0) == (2, "the number of tasks to run")
    monkeypatch.setattr(resources, "machine_bytes", lambda: 2**40)
    assert resources.cap_jobs(1000, 100, 0) == (4, "the number of CPUs")
    monkeypatch.setattr(resources, "cpu_count", lambda: 1)
    notes = []
    assert run_study(tiny_study(tmp_path / "out"), jobs=1000, notify=notes.append).n_run == 8
    assert notes == ["note: --jobs 1000 capped at 1, the number of CPUs"]


def test_killed_local_worker_is_one_line_and_keeps_finished_tasks(monkeypatch):
    from ntkcheck.runner import execute

    fork = multiprocessing.get_context("fork")            # workers that start at once (no imports)
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: fork)
    tasks = plan(tiny_study("unused", width=[32, 64], n_networks=640, chunk=20))["kernel-mean"]
    results = execute(tasks, jobs=2)
    next(results)
    os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)    # as the out-of-memory killer would
    with pytest.raises(ValueError, match="a worker process died .* tasks finished so far are kept"):
        list(results)


def _dask_cluster(distributed, workers=1):
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, protocol="tcp://",
                                    host="127.0.0.1", dashboard_address=None)


@pytest.mark.parametrize("lose", ["worker", "scheduler"])
def test_lost_dask_worker_or_scheduler_is_one_line_and_resumable(tmp_path, monkeypatch, lose):
    distributed = pytest.importorskip("distributed")
    from ntkcheck import runner

    monkeypatch.setattr(runner, "_DASK_POLL", 0.2)
    study = tiny_study(tmp_path / "out", n_networks=200)    # 40 tasks
    notes = []
    with _dask_cluster(distributed) as cluster:
        def progress(done, total, claim=None):
            if done == 3 and lose == "worker":      # it dies: no goodbye, its results are lost
                cluster.sync(next(iter(cluster.workers.values())).close)
            elif done == 3:
                cluster.close()
        message = (rf"no Dask worker at {cluster.scheduler_address} for 0.5 s \(all left mid-run\)"
                   if lose == "worker" else f"lost the Dask scheduler at {cluster.scheduler_address} mid-run")
        with pytest.raises(ValueError, match=message + ".* tasks finished so far are kept"):
            run_study(study, scheduler=cluster.scheduler_address, worker_timeout=0.5, progress=progress,
                      notify=notes.append)
    assert lose == "scheduler" or any("every Dask worker" in n and "left" in n for n in notes), notes
    again = run_study(study, jobs=1)
    assert again.n_skipped >= 3 and again.n_run + again.n_skipped == 40


def test_claims_judged_in_the_pool_write_what_judging_here_writes(tmp_path):
    """Each claim is judged (and its report drawn) in the workers as soon as its tasks are
    done: the verdicts and every report file are those of one job."""
    from ntkcheck.report import ReportFiles

    got = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        verdicts = run_study(tiny_study(out), jobs=jobs, report=ReportFiles(latex=True)).verdicts
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                 if p.is_file() and ".ntkcheck" not in p.parts and p.name != "metadata.json"}
        got[jobs] = {c: (v.status, v.summary, repr(dict(v.statistics))) for c, v in verdicts.items()}, files
    assert got[1] == got[2]
    assert {"kernel-mean.png", "kernel-mean.md", "kernel-mean.tex", "summary.md"} <= set(got[1][1])
