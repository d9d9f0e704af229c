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
TINY = '[grid.kernel-mean]\nwidth = [8, 16]\nactivation = ["relu"]\nn_networks = 40\nchunk = 20\n'


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


def test_exit_code_is_1_when_a_claim_or_its_control_fails(capsys):
    def verdict(passed, control):
        return Verdict("kernel-mean", passed, "s", {}, 0.01, "d", "c", control)
    assert _print_verdicts({"kernel-mean": verdict(True, True)}) == 0
    assert _print_verdicts({"kernel-mean": verdict(False, True)}) == 1
    assert _print_verdicts({"kernel-mean": verdict(True, False)}) == 1
    assert "NOT rejected" in capsys.readouterr().out


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
