"""The examples/ scripts: every one compiles; the two cheapest run as written."""
import py_compile
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_compiles(path):
    py_compile.compile(str(path), doraise=True)


def test_there_are_the_three_documented_examples():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {"reproduce_a_theorem.py", "check_your_kernel.py",
                                                      "write_your_own_study.py"}


def test_check_your_kernel_passes_the_right_kernel_and_fails_the_slip(capsys):
    runpy.run_path(str(EXAMPLES / "check_your_kernel.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "correct: check_kernel[ntk]: PASS" in out and "dropped: check_kernel[ntk]: FAIL" in out


def test_write_your_own_study_runs_and_reads_its_results(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["write_your_own_study.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "write_your_own_study.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Results(" in out and "kernel-mean: PASS" in out and (tmp_path / "tanh" / "kernel-mean.csv").is_file()
