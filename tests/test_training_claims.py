"""The training claims end to end: each passes and rejects its negative control on true data,
and each verdict FAILS on planted wrong data (a rate off by 1/2, a bound-violating rate, an
eta_crit off by 25 %)."""
import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import get_claim
from ntkcheck.runner import run_study
from ntkcheck.studies import make_study

TINY = {"jacot-figure-1": {"width": [100, 1000], "n_networks": 10, "chunk": 10, "steps": 50, "n_gamma": 21}}
#: Claims whose verdicts are tested on planted data: run at their quick budget (the sharp tests
#: need its widths and networks to detect an exponent off by 1/2).
PLANTED = ("lazy-kernel", "linearization", "loss-decay", "critical-lr")


@pytest.mark.parametrize("claim", sorted(TINY))
def test_claim_passes_and_rejects_control(claim, run_claim):
    v = run_claim(claim, TINY[claim])
    assert v.passed, v.summary
    assert v.negative_control_rejected, v.summary


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    """Each planted claim's consolidated rows at the quick budget, study seed 0."""
    out = tmp_path_factory.mktemp("training")
    run_study(make_study("quick", claims=list(PLANTED), seed=0, out=out), jobs=1)
    return {c: pd.read_csv(out / f"{c}.csv") for c in PLANTED}


def _shift_exponent(df, quantities, by: float, parameterization="ntk"):
    """Multiply the rows of ``quantities`` (claim cells only) by width^by: exponent + by."""
    df = df.copy()
    rows = df["quantity"].isin(quantities) & (df["parameterization"] == parameterization)
    df.loc[rows, "value"] = df.loc[rows, "value"].astype(float) * df.loc[rows, "width"].astype(float) ** by
    return df


@pytest.mark.parametrize("claim", PLANTED)
def test_true_data_pass(claim, quick_data):
    v = get_claim(claim).verdict(quick_data[claim])
    assert v.passed, v.summary
    assert v.negative_control_rejected, v.summary
    assert 0 < v.false_fail_rate < 0.05


DEVIATIONS = {"lazy-kernel": ["kernel_change"], "linearization": ["train", "test"], "loss-decay": ["rate_error"]}


@pytest.mark.parametrize("claim", sorted(DEVIATIONS))
def test_sharp_rate_off_by_half_fails(claim, quick_data):
    """erf: -1 planted as -1/2 still satisfies the bound; only the sharp test can fail it."""
    v = get_claim(claim).verdict(_shift_exponent(quick_data[claim], DEVIATIONS[claim], 0.5))
    assert not v.passed, v.summary


@pytest.mark.parametrize("claim", sorted(DEVIATIONS))
def test_bound_violated_fails(claim, quick_data):
    v = get_claim(claim).verdict(_shift_exponent(quick_data[claim], DEVIATIONS[claim], 0.75))
    assert not v.passed, v.summary


def test_loss_decay_robust_to_a_mode_starting_near_zero(quick_data):
    """A network whose residual mode starts at ~0 has a huge relative rate error at any width
    (seen at width 4096: 0.25 against ~0.002); planted at the widest width, it must not fail
    the true data, while the same data with the rate off by 1/2 still fail."""
    df = quick_data["loss-decay"].copy()
    hit = ((df["quantity"] == "rate_error") & (df["parameterization"] == "ntk") & (df["width"] == df["width"].max())
           & (df["network"] == 0) & (df["mode"] == 1))
    df.loc[hit, "value"] = 0.25
    v = get_claim("loss-decay").verdict(df)
    assert v.passed, v.summary
    assert not get_claim("loss-decay").verdict(_shift_exponent(df, ["rate_error"], 0.5)).passed


@pytest.mark.parametrize("claim", ["linearization", "loss-decay"])
def test_sharp_rate_wrong_constant_passes_wrong_rate_at_large_widths_fails(claim, quick_data):
    """The sharp test is about the rate, not the constant: errors x 3 at every width pass;
    errors x 3 at the widest width only (a rate bent to ~ -1/2 there) fail."""
    df = quick_data[claim].copy()
    rows = df["quantity"].isin(DEVIATIONS[claim]) & (df["parameterization"] == "ntk")
    scaled = df.copy()
    scaled.loc[rows, "value"] = scaled.loc[rows, "value"].astype(float) * 3
    assert get_claim(claim).verdict(scaled).passed
    bent = df.copy()
    wide = rows & (df["width"] == df["width"].max())
    bent.loc[wide, "value"] = bent.loc[wide, "value"].astype(float) * 4
    v = get_claim(claim).verdict(bent)
    assert not v.passed, v.summary


def test_weight_rate_off_by_quarter_fails(quick_data):
    v = get_claim("lazy-kernel").verdict(_shift_exponent(quick_data["lazy-kernel"], ["weight_change_layer1"], 0.25))
    assert not v.passed, v.summary


@pytest.mark.parametrize("factor", [0.75, 1.33])
def test_critical_rate_off_fails(factor, quick_data):
    """eta_crit off by 25 % either way (c measured against a wrong lambda_max)."""
    df = quick_data["critical-lr"].copy()
    rows = df["quantity"].isin(["c", "c_final"])
    df.loc[rows, "value"] = df.loc[rows, "value"].astype(float) * factor
    v = get_claim("critical-lr").verdict(df)
    assert not v.passed, v.summary


def test_catapult_without_kernel_drop_fails(quick_data):
    """Runs that converge above eta_crit while keeping eta lambda_max > 2N contradict the claim."""
    df = quick_data["critical-lr"].copy()
    wide = df.pivot_table(index=["task", "network"], columns="quantity", values="value", aggfunc="first")
    window = wide[(wide["c"] > 1.3) & (wide["converged"] == 1)].index
    rows = df.set_index(["task", "network"]).index.isin(window) & (df["quantity"] == "c_final")
    assert rows.sum() > 0
    df.loc[rows, "value"] = 1.05
    v = get_claim("critical-lr").verdict(df)
    assert not v.passed, v.summary


def test_critical_lr_edges_on_a_sharp_step():
    from ntkcheck.claims.critical_lr import _brackets

    c = np.array([[0.5, 0.8, 0.9, 1.1, 1.2, 2.0]])
    lo, hi, errors = _brackets(c, np.array([[0, 0, 0, 1, 1, 1]], dtype=float))
    assert (lo[0], hi[0], errors[0]) == (0.9, 1.1, 0)
    lo, hi, errors = _brackets(c, np.array([[0, 1, 0, 1, 1, 1]], dtype=float))   # one misclassified run
    assert errors[0] == 1 and lo[0] in (0.5, 0.9) and hi[0] in (0.8, 1.1)


def test_claims_are_registered_with_budgets():
    for claim in (*TINY, *PLANTED):
        c = get_claim(claim)
        assert c.sources and set(c.grids) == {"quick", "standard", "full"}
        c.check(c.grid("standard"))
