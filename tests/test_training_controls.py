"""Real negative controls of the training claims (their own networks where the theory is false:
each verdict rejects them, and the true data pass) and linear-convergence's exact mean test."""
import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import CLAIM_FALSE_FAIL_RATE, get_claim
from ntkcheck.claims import linear_convergence as lc
from ntkcheck.runner import run_study
from ntkcheck.studies import make_study

#: linear-convergence on a tiny grid (seconds).
LC_TINY = {"width": [16, 64, 256, 1024], "n_networks": 12, "chunk": 12, "steps": 200, "control_steps": 50}


def _run(tmp_path_factory, claim, overrides):
    out = tmp_path_factory.mktemp(claim)
    run_study(make_study("quick", claims=[claim], seed=0, out=out, overrides={claim: overrides}), jobs=1)
    return pd.read_csv(out / f"{claim}.csv")


@pytest.fixture(scope="module")
def lc_data(tmp_path_factory):
    return _run(tmp_path_factory, "linear-convergence", LC_TINY)


def _swap(df, target, source):
    """The rows of quantity ``target`` with the values of ``source`` (same widths and networks)."""
    df = df.copy()
    keys = ["task", "network"]
    src = df[df["quantity"] == source].set_index(keys)["value"]
    rows = df["quantity"] == target
    df.loc[rows, "value"] = src.reindex(pd.MultiIndex.from_frame(df.loc[rows, keys])).to_numpy()
    return df


def test_linear_convergence_true_data_pass_and_controls_rejected(lc_data):
    v = get_claim("linear-convergence").verdict(lc_data)
    assert v.passed and v.negative_control_rejected, v.summary
    assert "mean-field" in v.negative_control and "power check" in v.summary


def test_linear_convergence_mean_field_control_behaving_lazily_is_not_rejected(lc_data):
    """A mean-field control whose weights moved like the claim's (m^-1/2) is not rejected."""
    v = get_claim("linear-convergence").verdict(_swap(lc_data, "max_weight_change_mean_field", "max_weight_change"))
    assert v.passed and not v.negative_control_rejected, v.summary


def test_linear_convergence_fails_on_mean_field_weights(lc_data):
    """The mean-field networks' weight changes (O(1)) as the claim's data FAIL the claim."""
    v = get_claim("linear-convergence").verdict(_swap(lc_data, "max_weight_change", "max_weight_change_mean_field"))
    assert not v.passed, v.summary


def test_linear_convergence_needs_the_new_columns(lc_data):
    with pytest.raises(ValueError, match="gram"):
        get_claim("linear-convergence").verdict(lc_data.drop(columns="gram"))


def _binomial_h0(widths, networks, scale, seed=0):
    """H(0) rows with each entry's unit count drawn Binomial(m, scale p_ij) per network."""
    X, _ = lc.data(5, 3)
    G, H = X @ X.T, lc.h_infinity(X)
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(len(X))
    rows = []
    for w in widths:
        for k in range(networks):
            counts = rng.binomial(w, scale * H[iu] / G[iu])
            rows += [{"quantity": "H0", "width": w, "task": f"w{w}", "network": k, "i": i, "j": j,
                      "value": c * G[i, j] / w, "target": H[i, j], "gram": G[i, j]}
                     for i, j, c in zip(*iu, counts)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("scale, passes", [(1.0, True), (1.05, False)])
def test_linear_convergence_mean_test_rejects_at_21_widths(scale, passes):
    """The exact count test has no p-value floor: at 21 widths (Holm) it still rejects a 5 %
    error in E[H(0)] (the bootstrap sized to the claim's level could not: floor 21/(n_boot+1))
    and passes the true law."""
    alpha = CLAIM_FALSE_FAIL_RATE / 3
    h = _binomial_h0(range(1000, 22000, 1000), 4, scale)
    combined, parts = lc._mean_tests(h, 1.0, alpha)
    assert len(parts) == 21 and combined.passed == passes, combined.pvalue
    if not passes:
        assert combined.pvalue < 1e-6
