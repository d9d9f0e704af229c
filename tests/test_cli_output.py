"""What a user sees: exit 3 for bugs (one line, traceback in a file or with --debug),
progress on terminals and in logs, figure formats, portable metadata, study paths."""
import io
import json
import os
import time

import pytest

import ntkcheck.cli as cli
from ntkcheck.progress import Progress
from ntkcheck.runner import run_study
from ntkcheck.studies import StudyError, load_study, make_study

TINY = {"architecture": ["mlp"], "width": [8, 16], "activation": ["relu"], "n_networks": 40, "chunk": 20}


def test_internal_error_exits_3_with_one_line_and_a_traceback_file(monkeypatch, capsys):
    def boom(*args):
        raise RuntimeError("boom\nsecond line")
    monkeypatch.setattr(cli, "_dispatch", boom)
    assert cli.main(["list"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error: RuntimeError: boom" in err, err
    path = err.split("traceback in ")[1].split(";")[0]
    try:
        assert "Traceback" in open(path).read() and "boom" in open(path).read()
    finally:
        os.unlink(path)
    for argv in (["--debug", "list"], ["list", "--debug"]):
        assert cli.main(argv) == 3
        assert "Traceback" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(stream=out, tty=False, interval=0.05)
    p(0, 4, "kernel-mean")
    time.sleep(0.2)
    p(3, 4, "lazy-kernel")
    time.sleep(0.12)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ntkcheck: kernel-mean: 0/4 tasks, 0:00 elapsed")
    assert len(lines) >= 4 and any("lazy-kernel: 3/4 tasks" in line for line in lines)


def test_progress_bar_names_the_claim_on_a_terminal():
    out = io.StringIO()
    p = Progress(stream=out, tty=True)
    p(0, 4, "kernel-mean")
    p(2, 4, "lazy-kernel")
    p.close()
    assert "lazy-kernel" in out.getvalue() and "2/4 tasks" in out.getvalue()


def test_runner_reports_the_running_claim_and_metadata_has_no_machine_paths(tmp_path):
    calls = []
    study = make_study("quick", claims=["kernel-mean"], seed=1, out=tmp_path / "out", overrides={"kernel-mean": TINY})
    run_study(study, jobs=1, command=["/usr/bin/ntkcheck", "verify", "--out", str(tmp_path / "out")],
              progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 7, "kernel-mean") and calls[-1] == (7, 7, None)   # 4 claim + 3 control tasks
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["runs"][-1]["command"] == ["ntkcheck", "verify", "--out", "out"]
    assert str(tmp_path) not in json.dumps(meta)


def test_formats_flag(tmp_path, capsys):
    out = tmp_path / "out"
    study = make_study("quick", claims=["kernel-mean"], seed=1, out=out, overrides={"kernel-mean": TINY})
    run_study(study, jobs=1)
    assert cli.main(["report", str(out), "--format", "pdf,svg"]) in (0, 1)
    assert (out / "kernel-mean.pdf").is_file() and (out / "kernel-mean.svg").is_file()
    assert not list(out.glob("*.tmp*"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(out), "--format", "gif"])
    assert exc.value.code == 2 and "choose from png, pdf, svg" in capsys.readouterr().err


def test_study_out_is_relative_to_the_study_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.toml"
    path.write_text('out = "res"\nclaims = ["kernel-mean"]\n')
    monkeypatch.chdir(tmp_path)
    assert load_study(path).out == tmp_path / "sub" / "res"
    assert load_study("sub/s.toml").out.resolve() == tmp_path / "sub" / "res"


def test_missing_optional_dependency_is_a_planning_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(StudyError, match=r"scheduler: needs Dask.*ntkcheck\[dask\]"):
        make_study("quick", claims=["kernel-mean"], scheduler="tcp://localhost:8786")
