"""The training claims end to end on tiny grids: each passes and rejects its negative control."""
import pytest

from ntkcheck.claims import get_claim

TINY = {
    "lazy-kernel": {"width": [32, 128, 512], "n_networks": 6, "chunk": 6, "steps": 40},
    "linearization": {"depth": [1], "width": [128, 512, 2048], "n_networks": 6, "chunk": 6, "steps": 40},
    "loss-decay": {"width": [32, 128, 512], "n_networks": 6, "chunk": 6, "steps": 30},
    "critical-lr": {"width": [512], "lr_factor": [0.8, 0.9, 1.2, 2.0, 30.0], "n_networks": 3, "chunk": 3,
                    "steps": 150},
    "jacot-figure-1": {"width": [100, 1000], "n_networks": 10, "chunk": 10, "steps": 50, "n_gamma": 21},
}


@pytest.mark.parametrize("claim", sorted(TINY))
def test_claim_passes_and_rejects_control(claim, run_claim):
    v = run_claim(claim, TINY[claim])
    assert v.passed, v.summary
    assert v.negative_control_rejected, v.summary


def test_claims_are_registered_with_budgets():
    for claim in TINY:
        c = get_claim(claim)
        assert c.sources and set(c.grids) == {"quick", "standard", "full"}
        c.check(c.grid("standard"))

