"""Study files: defaults, overrides, and one clear error (file, key, line) per bad input."""
import re
from pathlib import Path

import pytest

from ntkcheck.claims import get_claim
from ntkcheck.studies import StudyError, load_study, make_study

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_committed_studies_load():
    for path in sorted((ROOT / "studies").glob("*.toml")):
        study = load_study(path)
        out = study.out.resolve().relative_to(ROOT) if study.out.is_absolute() else study.out
        assert study.claims and out.parts[0] == "results", (path, study.out)


def test_defaults_and_overrides(tmp_path):
    s = load_study(write(tmp_path, 'seed = 3\n[grid.kernel-mean]\nwidth = [8, 16]\nsigma_w = 2\ndepth = 3\n'))
    g = s.grids["kernel-mean"]
    assert s.name == "s" and s.budget == "quick" and s.seed == 3 and str(s.out) == "results/s"
    assert g["width"] == [8, 16] and g["sigma_w"] == 2.0 and isinstance(g["sigma_w"], float)
    assert g["depth"] == [3]                                     # a scalar for a swept key is one value
    assert g["activation"] == get_claim("kernel-mean").grids["quick"]["activation"]
    assert make_study("standard").grids == {c: get_claim(c).grids["standard"] for c in make_study().claims}


@pytest.mark.parametrize("text, where", [
    ('seed = 1\nbudget = "huge"\n', ":2: budget: must be one of"),
    ('seed = 1\ncolour = "red"\n', ":2: colour: unknown key"),
    ('seed = "one"\n', ":1: seed: must be a int"),
    ('seed = -1\n', ":1: seed: must be an integer >= 0"),
    ('claims = ["kernel-mean", "no-such-claim"]\n', ":1: claims: unknown claim 'no-such-claim'"),
    ('\n[grid.kernel-mean]\nwidth = [64, -8]\n', ":3: grid.kernel-mean.width: must be >= 1, got -8"),
    ('[grid.kernel-mean]\n\nwidth = []\n', ":3: grid.kernel-mean.width: is an empty list"),
    ('[grid.kernel-mean]\nsigma_w = nan\n', ":2: grid.kernel-mean.sigma_w: must be finite, got nan"),
    ('[grid.kernel-mean]\nsigma_b = -0.5\n', ":2: grid.kernel-mean.sigma_b: must be >= 0"),
    ('[grid.kernel-mean]\nwidth = ["wide"]\n', ":2: grid.kernel-mean.width: must be int values"),
    ('[grid.kernel-mean]\nwidth = [8, 8]\n', ":2: grid.kernel-mean.width: repeats a value"),
    ('[grid.kernel-mean]\nwidths = [8]\n', ":2: grid.kernel-mean.widths: unknown grid key"),
    ('[grid.kernel-mean]\nactivation = ["swish2"]\n', ":2: grid.kernel-mean.activation: "),
    ('[grid.nope]\nwidth = [8]\n', ":1: grid.nope: unknown claim"),
    ('scheduler = "localhost"\n', ":1: scheduler: must be an address like tcp://HOST:PORT"),
])
def test_bad_values_name_file_key_and_line(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value), str(err.value)


def test_malformed_toml(tmp_path):
    path = write(tmp_path, 'budget = "quick"\nseed = = 1\n')
    with pytest.raises(StudyError, match=r"s\.toml: malformed TOML: .*line 2"):
        load_study(path)


def test_make_study_errors_name_the_option():
    with pytest.raises(StudyError, match="^claims: unknown claim 'x'"):
        make_study(claims=["x"])
    with pytest.raises(StudyError, match="^budget: must be one of"):
        make_study(budget="medium")


def test_a_network_too_large_for_the_machine_is_refused_before_it_is_built(tmp_path, monkeypatch):
    import time

    from ntkcheck import resources

    monkeypatch.setattr(resources, "machine_bytes", lambda: 16 * 1024**3)
    path = write(tmp_path, 'claims = ["kernel-mean"]\n[grid.kernel-mean]\ndepth = [1000000]\n')
    start = time.perf_counter()
    with pytest.raises(StudyError, match=r"s\.toml:3: grid\.kernel-mean\.depth: one network of width 16384 and "
                                         r"depth 1000000 on 3 inputs needs at least 366 GiB"):
        load_study(path)
    assert time.perf_counter() - start < 1          # building that network took minutes


@pytest.mark.parametrize("claim, key, value", [("kernel-mean", "sigma_w", "0"), ("kernel-mean", "sigma_w", "0.0"),
                                                ("kernel-mean", "sigma_w", "-0.0"),
                                                ("nngp-gaussian", "power_sigma_w_factor", "0")])
def test_zero_sigma_w_is_refused_naming_the_key(tmp_path, claim, key, value):
    with pytest.raises(StudyError, match=rf":2: grid\.{claim}\.{key}: must be > 0, got 0\.0"):
        load_study(write(tmp_path, f'[grid.{claim}]\n{key} = {value}\n'))


def test_negative_zero_is_zero(tmp_path):
    s = load_study(write(tmp_path, '[grid.kernel-mean]\nsigma_b = -0.0\n'))
    assert str(s.grids["kernel-mean"]["sigma_b"]) == "0.0"


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b'\xef\xbb\xbfseed = 3\nclaims = ["kernel-mean"]\n')
    s = load_study(path)
    assert s.seed == 3 and s.claims == ("kernel-mean",)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "not a study file (not a regular file)"),
    (lambda p: p.write_text(""), "the study file is empty"),
    (lambda p: p.write_text("# only a comment\n\n"), "the study file is empty"),
])
def test_a_study_file_that_is_not_one_is_refused(tmp_path, make, message):
    path = tmp_path / "s.toml"
    make(path)
    with pytest.raises(StudyError, match=f"^{re.escape(str(path))}: {re.escape(message)}"):
        load_study(path)
    with pytest.raises(StudyError, match="^/dev/null: not a study file"):
        load_study("/dev/null")
