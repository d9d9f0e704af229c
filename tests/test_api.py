"""Studies and results from Python and the command line: a claim subset reuses a folder's
tasks, run --seed, report --claims, load_results, short reprs, docs/studies.md is current."""
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import ntkcheck as nc
from ntkcheck.cli import main

ROOT = Path(__file__).resolve().parents[1]
KM = '[grid.kernel-mean]\narchitecture = ["mlp"]\nwidth = [8, 16]\nactivation = ["relu"]\nn_networks = 40\nchunk = 20\n'
R4 = ('[grid.relu-fourth-moment]\nwidth = [4, 32]\ndepth = [1, 2]\nn_networks = 6000\nchunk = 3000\n'
      'min_networks = 1000\ncontrol_width = [4]\ndense_max_width = 4\n')


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_claim_subset_reuses_the_folders_tasks_and_a_new_claim_joins(tmp_path, capsys):
    out = str(tmp_path / "res")
    km = write(tmp_path, "km.toml", 'seed = 3\nclaims = ["kernel-mean"]\n' + KM)
    both = write(tmp_path, "both.toml", 'seed = 3\nclaims = ["kernel-mean", "relu-fourth-moment"]\n' + KM + R4)
    assert main(["run", km, "--jobs", "1", "--out", out]) in (0, 1, 4)
    capsys.readouterr()
    assert main(["run", both, "--jobs", "1", "--out", out]) in (0, 1, 4)     # joins: kernel-mean not recomputed
    err = capsys.readouterr().err
    assert ", 7 already done," in err, err
    summary = (tmp_path / "res" / "summary.md").read_text()
    assert main(["run", km, "--jobs", "1", "--out", out]) in (0, 1, 4)       # the subset again: nothing to compute
    assert " 0 tasks run, 7 already done" in capsys.readouterr().err
    assert (tmp_path / "res" / "summary.md").read_text() == summary         # the folder's summary stays whole
    meta = json.loads((tmp_path / "res" / "metadata.json").read_text())
    assert meta["study"]["claims"] == ["kernel-mean", "relu-fourth-moment"]
    other = write(tmp_path, "other.toml", 'seed = 4\nclaims = ["kernel-mean"]\n' + KM)
    assert main(["run", other, "--jobs", "1", "--out", out]) == 2            # another seed: another study
    assert "different study" in capsys.readouterr().err
    # report --claims judges and rewrites only the named claim
    (tmp_path / "res" / "relu-fourth-moment.md").unlink()
    assert main(["report", out, "--claims", "kernel-mean"]) in (0, 1, 4)
    assert not (tmp_path / "res" / "relu-fourth-moment.md").exists()
    assert main(["report", out, "--claims", "lazy-kernel"]) == 2
    assert "the study in" in capsys.readouterr().err
    # load_results: verdicts and frames, short reprs
    res = nc.load_results(out)
    assert set(res.verdicts) == set(res.frames) == {"kernel-mean", "relu-fourth-moment"}
    assert len(res.frames["kernel-mean"]) > 0 and res.study["seed"] == 3
    text = repr(res)
    assert text.startswith("Results(") and len(text.splitlines()) == 3 and "array" not in text
    assert repr(res.verdicts["kernel-mean"]).startswith("Verdict('kernel-mean', ")
    assert {"claim", "exponent", "theory"} <= set(res.convergence().columns)
    assert list(nc.load_results(out, claims=["kernel-mean"]).verdicts) == ["kernel-mean"]


def test_run_seed_replaces_the_study_files_seed(tmp_path, capsys):
    path = write(tmp_path, "s.toml", 'seed = 1\nclaims = ["kernel-mean"]\n' + KM)
    assert nc.load_study(path, seed=9).seed == 9 and nc.load_study(path).seed == 1
    assert main(["run", path, "--seed", "9", "--jobs", "1", "--out", str(tmp_path / "o")]) in (0, 1, 4)
    assert json.loads((tmp_path / "o" / "metadata.json").read_text())["study"]["seed"] == 9


def test_reprs_do_not_dump_arrays():
    spec = nc.MLP(depth=2, width=32, activation="relu")
    X = np.random.default_rng(0).standard_normal((3, 2))
    s = nc.sample_init(spec, X, 4, seed=0)
    assert repr(s) == ("InitSample(f=float64[4, 3], ntk=float64[4, 3, 3], pre_grams=float64[4, 2, 3, 3], "
                       "post_grams=float64[4, 2, 3, 3])")
    r = nc.mean_test(np.random.default_rng(1).standard_normal((50, 3)), np.zeros(3))
    assert repr(r).startswith("<TestResult ") and "\n" not in repr(r)
    assert repr(nc.get_claim("kernel-mean")).startswith("Claim('kernel-mean', ")
    assert f"grids={{{len(nc.all_claims())} items}}" in repr(nc.make_study("quick"))


def test_docs_studies_md_is_generated_from_the_grids():
    script = runpy.run_path(str(ROOT / "scripts" / "studies_doc.py"))
    text = (ROOT / "docs" / "studies.md").read_text(encoding="utf-8")
    assert text == script["render"](), "docs/studies.md is out of date: run python scripts/studies_doc.py"
    for c in nc.all_claims(plugins=False).values():
        assert f"## `{c.id}`" in text
        for key in c.grids["quick"]:
            assert f"| `{key}` |" in text


def test_a_summary_never_contradicts_the_claim_test():
    def claim(summary, passed):
        verdict = lambda df, false_fail_rate: nc.Verdict("x", passed, summary, {}, false_fail_rate, "d", "c", False)  # noqa: E731
        grids = {b: {"width": [1]} for b in ("quick", "standard", "full")}
        return nc.Claim("x", "t", "s", (), grids, run_task=None, verdict=verdict)
    assert claim("pass: fine", True).judge(None).status == "INCONCLUSIVE"
    assert claim("FAIL: off", False).judge(None).status == "FAIL"
    with pytest.raises(RuntimeError, match="opens with 'pass:'"):
        claim("pass: but failed", False).judge(None)
