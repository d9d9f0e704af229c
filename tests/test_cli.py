"""The ntkcheck command line: list, run, report; exit codes; bad input -> exit 2 with
one clear line on stderr, no traceback and no files."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntkcheck.claims import Verdict
from ntkcheck.cli import _print_verdicts, main

ROOT = Path(__file__).resolve().parents[1]
TINY = '[grid.kernel-mean]\narchitecture = ["mlp"]\nwidth = [8, 16]\nactivation = ["relu"]\nn_networks = 40\nchunk = 20\n'


def study(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "kernel-mean" in out and "Jacot et al. 2018" in out


def test_run_then_report_rebuilds_without_recomputing(tmp_path, capsys):
    out = tmp_path / "res"
    path = study(tmp_path, 'seed = 5\nclaims = ["kernel-mean"]\n' + TINY)
    code = main(["run", path, "--jobs", "1", "--out", str(out), "--latex"])
    printed = capsys.readouterr().out
    assert code in (0, 1) and "| kernel-mean " in printed and "summary.md" in printed
    for name in ("kernel-mean.csv", "kernel-mean.md", "kernel-mean.tex", "kernel-mean.png", "summary.md",
                 "metadata.json"):
        assert (out / name).is_file(), name
    csv = (out / "kernel-mean.csv").read_bytes()
    (out / "kernel-mean.md").unlink()
    (out / "kernel-mean.png").unlink()
    assert main(["report", str(out)]) == code
    assert (out / "kernel-mean.md").is_file() and (out / "kernel-mean.png").is_file()
    assert (out / "kernel-mean.csv").read_bytes() == csv


def test_exit_code_1_when_a_claim_fails_4_when_only_a_control_is_not_rejected(capsys):
    def verdict(passed, control, claim="kernel-mean"):
        return Verdict(claim, passed, "pass: s" if passed else "FAIL: s", {}, 0.01, "d", "c", control)
    assert _print_verdicts({"kernel-mean": verdict(True, True)}) == 0
    assert _print_verdicts({"kernel-mean": verdict(False, True)}) == 1
    assert _print_verdicts({"kernel-mean": verdict(False, False)}) == 1
    assert _print_verdicts({"kernel-mean": verdict(True, False)}) == 4
    out = capsys.readouterr().out
    assert "NOT rejected" in out and "| INCONCLUSIVE |" in out
    # a failed claim outweighs an inconclusive one
    assert _print_verdicts({"kernel-mean": verdict(True, False), "lazy-kernel": verdict(False, True, "lazy-kernel")}) == 1


def test_exit_codes_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "4 inconclusive" in " ".join(capsys.readouterr().out.split())


def test_list_grid_prints_every_key_with_its_defaults(capsys):
    assert main(["list", "--grid", "ntk-init-convergence"]) == 0
    out = capsys.readouterr().out
    assert "| `power_factor` |" in out and "| `control_beta` | " in out and "| quick | standard | full |" in out
    assert main(["list", "--grid", "no-such-claim"]) == 2


def test_narrowed_ntk_init_convergence_is_refused_naming_the_widths_it_needs(tmp_path, capsys):
    study = tmp_path / "narrow.toml"
    study.write_text('claims = ["ntk-init-convergence"]\n[grid.ntk-init-convergence]\n'
                     'width = [64, 128, 256, 512, 1024]\n')
    assert main(["run", str(study), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "narrow.toml:3: grid.ntk-init-convergence.width: too narrow for the power check" in err
    assert "add widths >= 3018, or set power_factor >= 1.053" in err
    assert not (tmp_path / "out").exists()


BAD = {
    "malformed TOML": ('seed = = 1\n', [], "malformed TOML"),
    "unknown claim": ('claims = ["kernel-means"]\n', [], "unknown claim 'kernel-means'"),
    "unknown key": ('seed = 1\nbugdet = "quick"\n', [], ":2: bugdet: unknown key"),
    "negative width": ('[grid.kernel-mean]\nwidth = [-64, 128]\n', [], "width: must be >= 1, got -64"),
    "NaN sigma": ('[grid.kernel-mean]\nsigma_w = nan\n', [], "sigma_w: must be finite, got nan"),
    "unwritable out": ('seed = 1\n' + TINY, ["--out", "{file}/sub"], "is not a folder"),
    "unreachable scheduler": ('seed = 1\n' + TINY, ["--scheduler", "tcp://127.0.0.1:1"],
                              "cannot reach Dask scheduler at tcp://127.0.0.1:1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exit_2_one_line_no_files(tmp_path, capsys, case):
    text, extra, message = BAD[case]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = tmp_path / "out"
    args = [a.format(file=blocker) for a in extra]
    if "--out" not in args:
        args += ["--out", str(out)]
    assert main(["run", study(tmp_path, text), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("ntkcheck: error: ") and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "s.toml"]


def test_console_usage_errors_exit_2_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args, message in [(["verify", "--claims", "nope"], "unknown claim 'nope'"),
                          (["verify", "--budget", "huge"], "invalid choice"),
                          (["run", str(tmp_path / "missing.toml")], "cannot read study file")]:
        res = subprocess.run([sys.executable, "-m", "ntkcheck", *args], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


MORE_BAD = {
    "empty out": ('seed = 1\nout = ""\n' + TINY, [], "out: is empty"),
    "empty --out": ('seed = 1\n' + TINY, ["--out", ""], "--out is empty"),
    "jobs -1": ('seed = 1\n' + TINY, ["--jobs", "-1"], "--jobs: must be an integer >= 1, got '-1'"),
    "width 2^40": ('claims = ["kernel-mean"]\n' + TINY.replace("[8, 16]", "[8, 1099511627776]"), [],
                   "GiB of memory"),
    "n_networks 2^40": ('claims = ["kernel-mean"]\n' + TINY.replace("40", str(2**40)).replace("20", "1024"), [],
                        "tasks (more than 1000000)"),
}


@pytest.mark.parametrize("case", list(MORE_BAD))
def test_more_bad_input_exit_2_one_line_no_files(tmp_path, capsys, case):
    text, extra, message = MORE_BAD[case]
    args = ["run", study(tmp_path, text), *extra]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "out")]
    try:
        code = main(args)
    except SystemExit as exit_:              # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err.splitlines()[-1], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_study_file_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"{path}: not a UTF-8 text file" in capsys.readouterr().err


def test_foreign_output_folder_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "project" / ".cache").mkdir(parents=True)
    for name in ("notes.txt", ".draft.tmp", "project/.cache/.build.tmp", "kernel-mean.csv", "summary.md"):
        (out / name).write_text(name)
    assert main(["run", study(tmp_path, 'claims = ["kernel-mean"]\n' + TINY), "--out", str(out)]) == 2
    assert "is not empty and not an ntkcheck study folder" in capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        ["notes.txt", ".draft.tmp", "project/.cache/.build.tmp", "kernel-mean.csv", "summary.md"])
    assert all(p.read_text() == p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def done_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("done")
    out = root / "res"
    assert main(["run", study(root, 'seed = 5\nclaims = ["kernel-mean"]\n' + TINY), "--jobs", "1",
                 "--out", str(out)]) in (0, 1)
    return out


def broken(done_study, tmp_path, name, content, legacy=False):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(done_study, out)
    if legacy:                                 # a folder written before manifests existed
        shutil.rmtree(out / ".ntkcheck")
    path = out / name
    path.write_text(content(path.read_text()) if callable(content) else content)
    return out, path


@pytest.mark.parametrize("name, content, legacy, message", [
    ("metadata.json", "{}", False, "metadata.json: corrupt metadata (no study with its claims)"),
    ("metadata.json", "garbage{", False, "metadata.json: corrupt metadata (not JSON"),
    ("kernel-mean.csv", lambda t: t[: len(t) // 2], False, "kernel-mean.csv: is damaged"),
    ("kernel-mean.csv", lambda t: "\n".join(t.splitlines()[:-3]) + "\n", False, "rows written remain"),
    ("kernel-mean.csv", 'a,b\n1,"2\n', True, "kernel-mean.csv: not a readable results table"),
    ("kernel-mean.csv", "claim,task\n", True, "kernel-mean.csv: not a results table of kernel-mean"),
    ("kernel-mean.csv", lambda t: "\n".join(t.splitlines()[:20]) + "\n", True,
     "kernel-mean.csv: cannot judge kernel-mean from it"),
])
def test_report_refuses_damaged_inputs_naming_the_file(done_study, tmp_path, capsys, name, content, legacy,
                                                       message):
    out, path = broken(done_study, tmp_path, name, content, legacy)
    before = path.read_bytes()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
    assert path.read_bytes() == before


def test_run_resumes_over_a_damaged_task_file(done_study, tmp_path, capsys):
    task = sorted((done_study / "tasks" / "kernel-mean").glob("*.csv"))[0].name
    out, path = broken(done_study, tmp_path, f"tasks/kernel-mean/{task}", "")
    assert main(["run", study(tmp_path, 'seed = 5\nclaims = ["kernel-mean"]\n' + TINY), "--jobs", "1",
                 "--out", str(out)]) in (0, 1)
    err = capsys.readouterr().err
    assert f"ntkcheck: recomputing 1 damaged or incomplete task file(s): tasks/kernel-mean/{task} is damaged" in err
    assert "1 tasks run, 6 already done" in err          # 4 claim + 3 control tasks
    assert path.read_bytes() == (done_study / "tasks" / "kernel-mean" / task).read_bytes()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_into_read_only_folder(done_study, tmp_path, capsys):
    out, _ = broken(done_study, tmp_path, "summary.md", "x")
    for p in [out, *out.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        assert main(["report", str(out)]) in (0, 1)
    finally:
        for p in [out, *out.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    captured = capsys.readouterr()
    assert "| kernel-mean " in captured.out and "is read-only: verdicts judged from its CSVs" in captured.err
    assert (out / "summary.md").read_text() == "x"


def test_report_of_a_folder_it_cannot_write_prints_the_verdicts(done_study, tmp_path, capsys, monkeypatch):
    out, _ = broken(done_study, tmp_path, "summary.md", "x")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(out)) and real_access(p, mode))
    code = main(["report", str(out)])
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert code == main(["report", str(done_study)]) and "| kernel-mean " in captured.out, captured.err
    assert captured.err == f"ntkcheck: {out} is read-only: verdicts judged from its CSVs; tables and figures not rebuilt\n"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_memory_error_is_exit_2_not_a_failed_claim(tmp_path, capsys, monkeypatch):
    import ntkcheck.runner

    def run_study(*args, **kwargs):
        raise MemoryError("claim kernel-mean, task x ran out of memory")
    monkeypatch.setattr(ntkcheck.runner, "run_study", run_study)
    assert main(["run", study(tmp_path, 'claims = ["kernel-mean"]\n' + TINY), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("ntkcheck: error: out of memory (claim kernel-mean, task x")


def test_run_dev_null_is_refused(tmp_path, capsys):
    assert main(["run", "/dev/null", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "ntkcheck: error: /dev/null: not a study file (not a regular file); give a .toml file\n"
    assert list(tmp_path.iterdir()) == []


def test_force_does_not_run_a_task_larger_than_the_machine(tmp_path, capsys):
    text = 'claims = ["kernel-mean"]\n' + TINY.replace("40", str(2**41)).replace("20", str(2**40))
    assert main(["run", study(tmp_path, text), "--force", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntkcheck: error: the largest task needs at least 8.19e+03 GiB of memory") and \
        "even --force cannot run it" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_disk_full_drawing_a_figure_is_exit_2_and_keeps_the_old_one(done_study, tmp_path, capsys, monkeypatch):
    import errno

    import ntkcheck.report

    out, _ = broken(done_study, tmp_path, "summary.md", "x")
    figure = (out / "kernel-mean.png").read_bytes()

    def save_figure(fig, path):
        Path(path).write_bytes(b"half a figure")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(ntkcheck.report, "save_figure", save_figure)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"ntkcheck: error: cannot write {out / 'kernel-mean.png'}: No space left on device\n"
    assert (out / "kernel-mean.png").read_bytes() == figure
    assert not [p for p in out.iterdir() if "ntkcheck-tmp" in p.name]


def test_the_folder_stays_locked_until_the_report_is_written(tmp_path, capsys, monkeypatch):
    import ntkcheck.report
    from ntkcheck.store import Store

    write_files, tried = ntkcheck.report.write_files, []

    def report_after_a_rival(store, *args):
        with pytest.raises(ValueError, match="in use by another ntkcheck process"):
            Store(store.root).open_existing()      # another process in the gap before the report
        tried.append(store.root)
        write_files(store, *args)
    monkeypatch.setattr(ntkcheck.report, "write_files", report_after_a_rival)
    out = tmp_path / "out"
    assert main(["run", study(tmp_path, 'claims = ["kernel-mean"]\n' + TINY), "--jobs", "1",
                 "--out", str(out)]) in (0, 1)
    assert tried == [out] and (out / "summary.md").is_file()


@pytest.mark.parametrize("content", ["", lambda t: t[: len(t) // 2]])
def test_run_resumes_over_a_cut_or_emptied_manifest(done_study, tmp_path, capsys, content):
    out, _ = broken(done_study, tmp_path, ".ntkcheck/manifest.jsonl", content)
    assert main(["run", study(tmp_path, 'seed = 5\nclaims = ["kernel-mean"]\n' + TINY), "--jobs", "1",
                 "--out", str(out)]) in (0, 1)
    err = capsys.readouterr().err
    assert "not written by ntkcheck" not in err and " tasks run, " in err, err
    assert (out / "kernel-mean.csv").read_bytes() == (done_study / "kernel-mean.csv").read_bytes()


@pytest.mark.parametrize("study_meta, message", [
    ({"calibration": True, "budget": "quick", "claims": []}, "is a calibration folder, not a study: its table is"),
    ({"budget": "quick", "seed": 0, "claims": []}, "lists no claims, so there is nothing to report"),
])
def test_report_of_a_folder_without_claims_is_one_line(tmp_path, capsys, study_meta, message):
    import json

    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"study": study_meta, "runs": []}))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert [p.name for p in folder.iterdir()] == ["metadata.json"]


@pytest.mark.parametrize("address", ["", "bogus", "localhost:8786"])
def test_bad_scheduler_address_is_worded_alike_by_run_and_verify(tmp_path, capsys, address):
    errors = []
    for args in (["run", study(tmp_path, 'seed = 1\n' + TINY)], ["verify", "--claims", "kernel-mean"]):
        assert main([*args, "--out", str(tmp_path / "out"), "--scheduler", address]) == 2
        errors.append(capsys.readouterr().err.strip())
    assert errors[0] == errors[1] == (f"ntkcheck: error: {address!r} is not a Dask scheduler address: "
                                      "give one like tcp://HOST:8786")
    assert not (tmp_path / "out").exists()
