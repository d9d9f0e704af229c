"""Claims at initialization: nngp-gaussian, relu-fourth-moment, ntk-init-convergence,
ntk-finite-width.  Tiny grids end to end (rows through the CSV round trip, verdicts), the
exact layer-norm law against direct simulation, and planted errors that must fail."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from ntkcheck import MLP, sample_init
from ntkcheck.claims import GridError, get_claim
from ntkcheck.moments import (block_array, block_rows, log_ratio, multiplier_moment, norm_ratio,
                              norm_ratio_law, readout_variance)
from ntkcheck.runner import run_task
from ntkcheck.stats import mean_test
from ntkcheck.store import columns_of, csv_text


def run_claim(claim_id: str, budget: str = "quick", seed: int = 3, **overrides) -> pd.DataFrame:
    """All rows of a claim on a grid, through the same CSV text the store writes."""
    claim = get_claim(claim_id)
    grid = claim.grid(budget, overrides)
    claim.check(grid)
    rows = [r for t in claim.tasks(grid, seed) for r in run_task(t)]
    return pd.read_csv(io.StringIO(csv_text(rows, columns_of(rows))))


# --- the exact law of layer norms ------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_multiplier_moments_match_closed_forms(n):
    assert multiplier_moment(n, 0, "relu") == pytest.approx(1.0)
    assert multiplier_moment(n, 1, "relu") == pytest.approx(1.0)
    assert multiplier_moment(n, 2, "relu") == pytest.approx(1 + 5 / n)
    assert multiplier_moment(n, 2, "identity") == pytest.approx(1 + 2 / n)
    assert norm_ratio(n, 3, "relu") == pytest.approx(multiplier_moment(n, 2, "relu") ** 3)


def test_norm_ratio_law_against_direct_simulation():
    """Variance of the linearized log-ratio and skewness of G^2, from products of
    multipliers simulated directly (relu units, no network code)."""
    rng = np.random.default_rng(0)
    n, L, m = 32, 2, 400_000
    for act, units in (("relu", lambda g: np.maximum(g, 0) ** 2 * 2), ("identity", lambda g: g**2)):
        G = np.prod(np.mean(units(rng.standard_normal((m, L, n))), axis=2), axis=1)
        y = G**2 / np.mean(G**2) - 2 * G / np.mean(G)
        var, skew = norm_ratio_law(n, L, act)
        assert np.var(y) == pytest.approx(var, rel=0.03)
        g2 = G**2
        assert np.mean((g2 - g2.mean()) ** 3) / g2.std() ** 3 == pytest.approx(skew, rel=0.05)


def test_bad_law_inputs():
    with pytest.raises(ValueError, match="activation"):
        multiplier_moment(4, 2, "tanh")
    with pytest.raises(ValueError, match="width"):
        multiplier_moment(0, 2, "relu")


def test_readout_variance_is_the_conditional_variance_of_f():
    """f / sqrt(G) is standard normal: second moment 1 (dense and exact samplers)."""
    spec = MLP(depth=2, width=6, activation="tanh", sigma_w=1.3, sigma_b=0.4)
    X = np.random.default_rng(1).standard_normal((2, 3))
    for method in ("exact", "dense"):
        s = sample_init(spec, X, 4000, seed=5, method=method)
        z2 = s.f**2 / readout_variance(spec, s.post_grams)
        assert mean_test(z2, 1.0, false_fail_rate=1e-3).passed


def test_block_rows_pool_back_and_log_ratio():
    x = np.random.default_rng(2).exponential(size=100)
    rows = block_rows({"x": x, "x^2": x**2}, 10)
    df = pd.DataFrame(rows).assign(task="t")
    arr = block_array(df, ["x", "x^2"])
    assert arr.shape == (10, 2)
    assert arr[:, 0].mean() == pytest.approx(x.mean())
    lr, se = log_ratio(arr)
    assert lr == pytest.approx(math.log(np.mean(x**2) / x.mean() ** 2))
    assert 0 < se < 1


# --- relu-fourth-moment ------------------------------------------------------------------

TINY_R4 = dict(width=[4, 32], depth=[1, 2], n_networks=6000, chunk=3000, min_networks=1000,
               control_width=[4], dense_max_width=4)


@pytest.fixture(scope="module")
def r4_rows():
    return run_claim("relu-fourth-moment", **TINY_R4)


def test_relu_fourth_moment_rows_and_verdict(r4_rows):
    assert {"claim", "task", "quantity", "value", "stderr", "role", "method"} <= set(r4_rows.columns)
    v = get_claim("relu-fourth-moment").verdict(r4_rows)
    assert v.verified, v.summary
    t = v.table
    assert set(t.status) == {"tested", "not resolvable"}          # (4, 2) needs > 6000 networks
    assert {"dense", "exact"} <= set(t.method)


def test_relu_fourth_moment_fails_on_a_planted_error(r4_rows):
    """A 5 % error in E[G^2] at one cell (e.g. a wrong multiplier variance) fails."""
    bad = r4_rows.copy()
    hit = (bad.quantity == "G^2") & (bad.width == 32) & (bad.depth == 2) & (bad.role == "claim")
    bad.loc[hit, "value"] *= 1.05
    assert not get_claim("relu-fourth-moment").verdict(bad).passed


def test_relu_fourth_moment_grid_checks():
    claim = get_claim("relu-fourth-moment")
    for key, value in [("activation", ["tanh"]), ("sigma_b", 0.1), ("control_sigma_b", 0.0),
                       ("control_activation", "relu")]:
        with pytest.raises(GridError) as err:
            claim.check(claim.grid("quick", {key: value}))
        assert err.value.key == key


# --- nngp-gaussian ------------------------------------------------------------------------

def _synthetic_nngp_rows(exponent: float, widths=(2, 4, 64, 256, 1024, 4096, 16384)) -> pd.DataFrame:
    """Rows shaped like run_task's, from G with excess kurtosis 3/n^-exponent exactly
    (G = 1 + sqrt(Var) eps, eps ~ N(0, 1)), and test p-values that pass / reject."""
    rng = np.random.default_rng(0)
    rows = []
    for n in widths:
        kappa = 3.0 * n ** exponent
        G = 1 + math.sqrt(kappa / 3) * rng.standard_normal((400, 2))
        f2 = G * rng.chisquare(1, size=G.shape)
        task = block_rows({"G": G, "G^2": G**2}, 20) + block_rows({"f^2": f2, "f^4": f2**2}, 400)
        if n >= 10000 or n <= 4:
            role = "claim" if n >= 10000 else "control"
            p = 0.5 if role == "claim" else 0.0
            task += [{"quantity": q, "value": p if q != "covariance_control" else 0.0, "statistic": 1.0,
                      "detectable": 0.1, "role": role} for q in ("gaussianity", "covariance", "covariance_control")]
        rows += [{**r, "task": f"n={n}", "width": n, "activation": "relu", "depth": 1, "sigma_b": 0.0,
                  "in_fit": n >= 32, "n_networks": r.get("n_networks", 400)} for r in task]
    return pd.DataFrame(rows)


def test_nngp_gaussian_verdict_on_synthetic_kurtosis():
    verdict = get_claim("nngp-gaussian").verdict
    good = verdict(_synthetic_nngp_rows(-1.0))
    assert good.verified, good.summary
    assert good.convergence[0].exponent == pytest.approx(-1.0, abs=0.05)
    assert not verdict(_synthetic_nngp_rows(-0.5)).passed       # kurtosis falling like n^-1/2
    assert not verdict(_synthetic_nngp_rows(0.0)).passed        # no convergence to a Gaussian


def test_nngp_gaussian_tiny_run():
    df = run_claim("nngp-gaussian", width=[2, 64, 128, 10000], depth=[1], activation=["relu"],
                   n_networks=200, control_networks=400, fit_min_width=64, test_min_width=10000)
    v = get_claim("nngp-gaussian").verdict(df)
    assert v.negative_control_rejected, v.summary
    assert v.statistics["large_width_holm_p"] > 1e-3
    assert v.convergence[0].fitted == (False, True, True, True)


def test_nngp_gaussian_grid_checks():
    claim = get_claim("nngp-gaussian")
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"width": [2, 64]}))           # no width >= test_min_width
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"width": [64, 16384]}))       # no control width
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"n_networks": 190}))           # not a multiple of block


# --- ntk-init-convergence ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def conv_rows():
    return run_claim("ntk-init-convergence", width=[64, 256, 1024, 4096], activation=["erf"],
                     n_networks=80, dense_max_width=64)


def test_ntk_init_convergence_tiny_run(conv_rows):
    v = get_claim("ntk-init-convergence").verdict(conv_rows)
    assert v.passed, v.summary
    assert v.statistics["n_dense_tests"] == 1
    assert v.convergence[0].control is not None


def test_ntk_init_convergence_fails_without_convergence(conv_rows):
    """Errors that do not fall (e^2 multiplied by n) must fail the rate test."""
    flat = conv_rows.copy()
    hit = flat.quantity == "e2"
    flat.loc[hit, "value"] *= flat.loc[hit, "width"] / 64
    assert not get_claim("ntk-init-convergence").verdict(flat).passed


def test_ntk_init_convergence_fails_on_a_biased_mean(conv_rows):
    """A mean offset of 0.05 sqrt(Theta_ii Theta_jj) that does not vanish with n fails."""
    biased = conv_rows.copy()
    biased.loc[biased.quantity == "deviation", "value"] += 0.05
    assert not get_claim("ntk-init-convergence").verdict(biased).passed


# --- ntk-finite-width ----------------------------------------------------------------------------

def test_ntk_finite_width_tiny_run():
    df = run_claim("ntk-finite-width", width=[8, 16], beta=[0.125, 0.25, 0.5], n_networks=3000, chunk=1500,
                   block=150)
    claim = get_claim("ntk-finite-width")
    v = claim.verdict(df)
    assert v.verified, v.summary
    assert list(v.table.depth) == [1, 2, 4, 2, 4, 8]
    # planted: a 30 % error of E[Theta^2] at one width (not a function of L/n) breaks the collapse
    bad = df.copy()
    bad.loc[(bad.quantity == "theta^2") & (bad.width == 16), "value"] *= 1.3
    assert not claim.verdict(bad).passed


def test_ntk_finite_width_grid_checks():
    claim = get_claim("ntk-finite-width")
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"beta": [0.1]}))
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"sigma_b": 0.1}))
    with pytest.raises(GridError):
        claim.check(claim.grid("quick", {"beta": [0.03125, 0.5]}))        # L = 0.5 at n = 16
