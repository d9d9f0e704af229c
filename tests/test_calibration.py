"""ntkcheck calibrate: verdicts re-run over seeds, resumable and deterministic; exact
binomial interval and test; CLI exit codes."""
import math
import os
from pathlib import Path

import pytest
from scipy import stats as sps

from ntkcheck import calibration
from ntkcheck.calibration import binomial_pvalue, clopper_pearson, run_calibration, summarize
from ntkcheck.cli import main

TINY = {"kernel-mean": {"architecture": ["mlp"], "width": [8, 16], "activation": ["relu"], "n_networks": 40, "chunk": 20,
                        "control_n_networks": 0}}


def calibrate(out, seeds=3, **kw):
    return run_calibration("quick", seeds, ["kernel-mean"], out, jobs=1, overrides=TINY, **kw)


def test_runs_writes_tables_and_resumes(tmp_path):
    first = calibrate(tmp_path / "c", seeds=2)
    assert first.n_run == first.n_tasks > 0 and first.n_skipped == 0
    for name in ("calibration.csv", "calibration.md", "seeds.csv", "metadata.json"):
        assert (tmp_path / "c" / name).is_file(), name
    again = calibrate(tmp_path / "c", seeds=3)       # one more seed: only its tasks run
    assert again.n_skipped == first.n_tasks and again.n_run == again.n_tasks - first.n_tasks
    row, family = again.table
    assert row["claim"] == "kernel-mean" and row["seeds"] == 3 and row["verdict_errors"] == 0
    # one claim: the exit code's row is that claim's claim-or-control failures at its rate
    assert family["claim"] == calibration.FAMILY and family["seeds"] == 3
    assert family["stated_false_fail_rate"] == pytest.approx(row["stated_false_fail_rate"])
    assert [o["seed"] for o in again.outcomes] == [0, 1, 2]
    header = (tmp_path / "c" / "calibration.csv").read_text().splitlines()[0]
    assert header == ",".join(calibration.COLUMNS)
    fewer = calibrate(tmp_path / "c", seeds=1)       # the table covers every finished seed
    assert fewer.n_run == 0 and fewer.table == again.table


def test_deterministic_per_seed(tmp_path):
    a = calibrate(tmp_path / "a", seeds=2)
    b = calibrate(tmp_path / "b", seeds=1, first_seed=1)
    assert a.outcomes[1] == b.outcomes[0]
    assert ((tmp_path / "a/runs/kernel-mean/seed-1/kernel-mean.csv").read_bytes()
            == (tmp_path / "b/runs/kernel-mean/seed-1/kernel-mean.csv").read_bytes())


def test_refuses_other_grid_before_writing(tmp_path):
    calibrate(tmp_path / "c", seeds=1)
    before = (tmp_path / "c" / "metadata.json").read_text()
    other = {"kernel-mean": {**TINY["kernel-mean"], "width": [8, 32]}}
    with pytest.raises(ValueError, match="different grid"):
        run_calibration("quick", 1, ["kernel-mean"], tmp_path / "c", jobs=1, overrides=other)
    assert (tmp_path / "c" / "metadata.json").read_text() == before


def test_family_row_counts_seeds_failing_any_claim_or_control():
    def o(claim, seed, passed=True, control=True):
        return {"claim": claim, "seed": seed, "passed": passed, "control_rejected": control,
                "false_fail_rate": 0.01, "error": "", "summary": ""}
    outcomes = [o("a", 0), o("b", 0), o("a", 1, passed=False), o("b", 1), o("a", 2), o("b", 2, control=False),
                o("a", 3), o("b", 3, passed=False, control=False), o("a", 4)]        # seed 4 lacks b
    row = calibration.family_row(outcomes)
    assert row["seeds"] == 4 and row["claim_failures"] == 3 and row["controls_not_rejected"] == 2
    assert row["stated_false_fail_rate"] == pytest.approx(1 - 0.99**2)
    assert row["pvalue"] == pytest.approx(sps.binom.sf(2, 4, 1 - 0.99**2))


def test_claim_levels_multiply_to_the_family_rate():
    from ntkcheck.claims import all_claims, claim_false_fail_rate, family_false_fail_rate
    n = len(all_claims())
    for family in (0.01, 0.05, 1e-4):
        each = claim_false_fail_rate(family)
        assert family_false_fail_rate([each] * n) == pytest.approx(family, rel=1e-12)
    with pytest.raises(ValueError, match="family-wise"):
        claim_false_fail_rate(1.0)


def test_clopper_pearson_and_binomial_test():
    lo, hi = clopper_pearson(3, 50)
    # exact interval: P(X >= 3 | lo) = P(X <= 3 | hi) = 2.5%
    assert math.isclose(sps.binom.sf(2, 50, lo), 0.025, rel_tol=1e-9)
    assert math.isclose(sps.binom.cdf(3, 50, hi), 0.025, rel_tol=1e-9)
    assert clopper_pearson(0, 20)[0] == 0 and clopper_pearson(20, 20)[1] == 1
    assert math.isclose(clopper_pearson(0, 20)[1], 1 - 0.025 ** (1 / 20))
    assert binomial_pvalue(0, 50, 0.0) == 1 and binomial_pvalue(1, 50, 0.0) == 0
    assert math.isclose(binomial_pvalue(2, 50, 0.01), 1 - 0.99**50 - 50 * 0.01 * 0.99**49)


def test_summary_counts_failures_controls_and_errors():
    def o(seed, passed, control, error=""):
        return {"claim": "x", "seed": seed, "passed": passed, "control_rejected": control,
                "false_fail_rate": 0.001, "error": error, "summary": ""}
    row, = summarize([o(0, True, True), o(1, False, True), o(2, False, False), o(3, None, None, "boom")])
    assert (row["seeds"], row["claim_failures"], row["controls_not_rejected"], row["verdict_errors"]) == (3, 2, 1, 1)
    assert math.isclose(row["measured_rate"], 2 / 3) and row["pvalue"] < 1e-3 and not row["consistent"]


def test_cli_calibrate_and_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(calibration, "make_study", _tiny(calibration.make_study))
    code = main(["calibrate", "--seeds", "1", "--claims", "kernel-mean", "--out", str(tmp_path / "c"), "--jobs", "1"])
    out = capsys.readouterr().out
    assert code in (0, 1) and "| kernel-mean | 1 |" in out
    assert main(["calibrate", "--seeds", "1", "--claims", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "unknown claim 'nope'" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "--seeds", "0"])
    assert exit_.value.code == 2


def _tiny(make):
    def make_tiny(budget, claims=None, overrides=None, **kw):
        return make(budget, claims=claims, overrides=TINY if claims == ["kernel-mean"] else overrides, **kw)
    return make_tiny


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(),
                    reason="counts descriptors in /proc")
def test_many_seed_folders_within_a_small_descriptor_limit(tmp_path, monkeypatch):
    # each open (claim, seed) folder holds a lock descriptor: thousands must not be open at once
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(calibration, "OPEN_FOLDERS", 2)
    monkeypatch.setattr(calibration, "_judge", lambda found, jobs, rate: [])     # the verdicts are not the point
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    try:
        result = calibrate(tmp_path / "c", seeds=12)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.n_run == result.n_tasks == 12 * 4
    assert [f[1] for f in calibration.finished(tmp_path / "c", "quick")] == list(range(12))
    assert calibrate(tmp_path / "c", seeds=12).n_skipped == 12 * 4      # and resumes


def test_too_many_seeds_are_refused_at_once(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["calibrate", "--seeds", "100000000", "--claims", "kernel-mean", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "100000000 seeds make" in err and "more than 1000000" in err, err
    assert not out.exists()


@pytest.mark.parametrize("address, message", [("tcp://127.0.0.1:1", "cannot reach Dask scheduler"),
                                              ("", "'' is not a Dask scheduler address")])
def test_bad_scheduler_is_refused_before_writing(tmp_path, capsys, address, message):
    out = tmp_path / "c"
    assert main(["calibrate", "--seeds", "1", "--claims", "kernel-mean", "--out", str(out),
                 "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_at_most_open_folders_are_locked_at_once(tmp_path):
    from ntkcheck.store import Store

    studies = calibration.calibration_studies("quick", 3, ["kernel-mean"], tmp_path / "c", TINY)
    folders = calibration._Folders(studies, limit=2)
    for st in studies:
        folders.open(st.out)
    assert list(folders.held) == [studies[1].out, studies[2].out]
    with Store(studies[0].out) as other:         # the least recently used one was released
        other.open(studies[0].fingerprint())
    folders.open(studies[0].out).write_metadata({"name": "seed-0", "study": studies[0].fingerprint()})
    folders.close_all()
    assert not folders.held
