"""Third-party claims through the entry-point group ntkcheck.claims: the example of
docs/own-claims.md, registered through a faked entry point, runs under verify and report
like a built-in claim, and its own test (true data PASS, planted data FAIL) passes."""
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

from ntkcheck.claims import ENTRY_POINT_GROUP, all_claims, claim_false_fail_rate
from ntkcheck.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-claims.md"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The doc's two code blocks as files, the claim registered through a faked entry point."""
    claim, test = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (tmp_path / "my_claims.py").write_text(claim)
    (tmp_path / "test_relu_variance.py").write_text(test)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = md.entry_points
    ep = md.EntryPoint(name="relu-variance", value="my_claims:CLAIM", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(md, "entry_points", lambda **kw: [ep] if kw.get("group") == ENTRY_POINT_GROUP else real(**kw))
    yield tmp_path
    for name in ("my_claims", "test_relu_variance"):
        sys.modules.pop(name, None)


def test_the_documented_claim_runs_like_a_built_in_one(plugin, tmp_path, capsys):
    claims = all_claims()
    assert list(claims)[-1] == "relu-variance" and "relu-variance" not in all_claims(plugins=False)
    assert claim_false_fail_rate(0.01) == claim_false_fail_rate(0.01, n_claims=len(claims))   # it counts
    assert main(["list"]) == 0 and "relu-variance" in capsys.readouterr().out
    out = str(tmp_path / "res")
    assert main(["verify", "--claims", "relu-variance", "--jobs", "1", "--out", out]) == 0
    assert "| relu-variance | PASS " in capsys.readouterr().out
    assert main(["report", out]) == 0 and (tmp_path / "res" / "relu-variance.md").is_file()
    assert main(["list", "--grid", "relu-variance"]) == 0 and "the control's width" in capsys.readouterr().out


def test_the_documented_planted_data_test_passes(plugin, tmp_path):
    from test_relu_variance import test_relu_variance

    (tmp_path / "run").mkdir()
    test_relu_variance(tmp_path / "run")


def test_a_broken_plugin_is_named(monkeypatch):
    real = md.entry_points
    ep = md.EntryPoint(name="broken", value="no_such_module_xyz:CLAIM", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(md, "entry_points", lambda **kw: [ep] if kw.get("group") == ENTRY_POINT_GROUP else real(**kw))
    with pytest.raises(ValueError, match="claim plugin 'broken' .* cannot be loaded: ModuleNotFoundError"):
        all_claims()
