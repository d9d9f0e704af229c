"""Shared fixtures."""
import pytest

from ntkcheck.runner import run_study
from ntkcheck.studies import make_study


@pytest.fixture
def run_claim(tmp_path):
    """Run one claim at the quick budget with grid ``overrides`` in-process; return its Verdict."""
    def run(claim: str, overrides: dict):
        study = make_study("quick", claims=[claim], seed=0, out=tmp_path, overrides={claim: overrides})
        return run_study(study, jobs=1).verdicts[claim]
    return run
