"""kernel-mean: equal-cost chunking, grid checks, the Rao-Blackwellized NNGP sample, a small
run that passes with its mean-field control and its x1.03 power check rejected by both kernels,
and the report's levels."""
import numpy as np
import pytest

from ntkcheck.claims import Convergence, GridError
from ntkcheck.claims.kernel_mean import CLAIM, chunk_size, check, split
from ntkcheck.moments import readout_kernel, readout_variance
from ntkcheck.report import convergence_frame, fit_line
from ntkcheck.runner import run_study
from ntkcheck.sampler import sample_init
from ntkcheck.spec import MLP
from ntkcheck.stats import mean_test
from ntkcheck.studies import make_study

from test_init_claims import run_claim


def test_standard_grid_has_equal_cost_widths_and_equal_chunks():
    grid = CLAIM.grid("standard")
    every = split(grid)
    assert len({k for k, _ in every}) == len(every)
    pairs = [(k, p) for k, p in every if p["architecture"] == "mlp" and p.get("role") != "control"]
    assert len(pairs) == 2 * 2 * 11 * 16 and all(not k.startswith("architecture") for k, _ in pairs)
    controls = [p for _, p in every if p.get("role") == "control"]      # activations x control widths
    assert len(controls) == 2 * 3 and {p["parameterization"] for p in controls} == {"mean_field"}
    per_width = {n: sum(p["n_networks"] for _, p in pairs if p["width"] == n) // 4 for n in grid["width"]}
    assert per_width[64] == per_width[256] == 65536 and per_width[65536] == 256
    assert all(per_width[n] * n == 2**24 for n in grid["width"] if n >= 256)
    assert chunk_size(grid, 65536) == 16 and chunk_size(grid, 64) == 4096


@pytest.mark.parametrize("override, key", [({"n_networks": 1000, "chunk": 300}, "n_networks"),
                                           ({"width": [64, 64]}, "width"), ({"chunk": 1}, "chunk"),
                                           ({"min_networks": 0}, "min_networks"),
                                           ({"control_width": [64, 64]}, "control_width"),
                                           ({"control_n_networks": 1}, "control_n_networks")])
def test_check_names_the_bad_key(override, key):
    with pytest.raises(GridError) as err:
        check(CLAIM.grid("quick", override))
    assert err.value.key == key


def test_readout_kernel_is_the_conditional_second_moment():
    spec = MLP(depth=2, width=8, activation="relu", sigma_w=1.4, sigma_b=0.3, parameterization="standard")
    X = np.random.default_rng(3).standard_normal((3, 2))
    s = sample_init(spec, X, 20000, seed=4)
    rb = readout_kernel(spec, s.post_grams)
    np.testing.assert_array_equal(np.einsum("mii->mi", rb), readout_variance(spec, s.post_grams))
    iu = np.triu_indices(3)
    assert mean_test((s.f[:, :, None] * s.f[:, None, :] - rb)[:, iu[0], iu[1]], 0.0).passed


def test_small_run_passes_and_both_kernels_reject_the_control(tmp_path):
    grid = {"width": [64, 256, 1024], "activation": ["relu"], "n_networks": 8192, "chunk": 1024,
            "architecture": ["mlp"]}
    v = run_study(make_study("quick", claims=["kernel-mean"], out=tmp_path, overrides={"kernel-mean": grid}),
                  jobs=1).verdicts["kernel-mean"]
    assert v.passed and v.negative_control_rejected
    assert v.statistics["control_holm_p_nngp"] <= 0.01 and v.statistics["control_holm_p_ntk"] <= 0.01
    assert v.statistics["power_check_holm_p_nngp"] <= 0.01 and v.statistics["power_check_holm_p_ntk"] <= 0.01
    assert v.statistics["power_check_rejected"]
    assert v.statistics["detectable_nngp"] < 0.03 and v.statistics["detectable_ntk"] < 0.03


@pytest.fixture(scope="module")
def cnn_rows():
    """A CNN with global average pooling, with enough networks to resolve a 3 % error."""
    return run_claim("kernel-mean", architecture=["cnn-gap"], arch_n_networks=4096)


def test_cnn_cell_passes_against_its_own_kernels(cnn_rows):
    assert set(cnn_rows.architecture[cnn_rows.role.ne("control")]) == {"cnn-gap"}
    v = CLAIM.verdict(cnn_rows)
    assert v.verified, v.summary
    assert v.statistics["power_check_rejected[cnn-gap]"]
    assert "architectures cnn-gap (power check rejected in cnn-gap)" in v.summary


@pytest.mark.parametrize("quantity", ["nngp", "ntk"])
def test_cnn_cell_fails_on_a_kernel_off_by_3_percent(cnn_rows, quantity):
    bad = cnn_rows.copy()
    hit = bad.quantity == quantity
    bad.loc[hit, "target"] *= 1.03
    v = CLAIM.verdict(bad)
    assert not v.passed, v.summary


@pytest.fixture(scope="module")
def transformer_rows():
    """The transformer cell at the quick budget's sweep (one encoder block, sequences of 4)."""
    return run_claim("kernel-mean", architecture=["transformer"])


def test_transformer_cell_passes_against_its_own_and_the_frozen_kernels(transformer_rows):
    v = CLAIM.verdict(transformer_rows)
    assert v.verified, v.summary
    assert v.statistics["power_check_rejected[transformer]"]
    assert v.statistics["reference_cells"] == 1 and v.statistics["reference_max_error"] <= 1e-9


@pytest.mark.parametrize("quantity", ["nngp", "ntk"])
def test_transformer_cell_fails_on_a_kernel_off_by_3_percent(transformer_rows, quantity):
    """A planted target 3 % off fails both the fits and the frozen-reference check."""
    bad = transformer_rows.copy()
    bad.loc[bad.quantity == quantity, "target"] *= 1.03
    v = CLAIM.verdict(bad)
    assert not v.passed, v.summary
    assert v.statistics["holm_p"] <= v.false_fail_rate, v.summary
    assert "OFF the frozen neural-tangents reference in transformer relu" in v.summary


def test_results_without_architecture_are_mlp(cnn_rows):
    old = cnn_rows.drop(columns="architecture")
    assert "architectures mlp" in CLAIM.verdict(old).summary


def test_report_prints_the_stated_levels():
    c = Convergence(label="x", x=(1.0, 2.0), y=(1.0, 0.5), lo=(0.9, 0.4), hi=(1.1, 0.6), theory_exponent=-1.0,
                    exponent=-1.0, exponent_lo=-1.1, exponent_hi=-0.9, level=0.99, exponent_level=0.99875)
    assert {"99% low", "99% high"} <= set(convergence_frame(c).columns)
    assert "99.88% CI" in fit_line(c)


@pytest.fixture(scope="module")
def mlp_rows():
    """A tiny ReLU MLP run with its mean-field control."""
    return run_claim("kernel-mean", width=[64, 256, 1024], activation=["relu"], n_networks=2048, chunk=1024,
                     architecture=["mlp"])


def test_mean_field_control_networks_fail_the_claim(mlp_rows):
    """The control's own networks (readout sigma_w/n: E[f f'] -> sigma_b^2, not K) judged as
    claim rows FAIL; the true rows pass with the control rejected by both kernels."""
    good = CLAIM.verdict(mlp_rows)
    assert good.verified, good.summary
    assert "mean-field control rejected by the NNGP" in good.summary and "rejected by the NTK" in good.summary
    assert good.negative_control.startswith("the MLP cells in mean-field parameterization")
    # the claim's rows with the mean-field networks' means and standard errors planted in
    planted = mlp_rows[mlp_rows.role.ne("control")].copy()
    control = mlp_rows[mlp_rows.role.eq("control")].set_index(["quantity", "i", "j", "width"])
    at = list(zip(planted.quantity, planted.i, planted.j, planted.width))
    planted["value"], planted["stderr"] = control.value.loc[at].to_numpy(), control.stderr.loc[at].to_numpy()
    v = CLAIM.verdict(planted)
    assert not v.passed and v.statistics["max_abs_z"] > 100, v.summary


def test_missing_or_matching_control_is_not_rejected(mlp_rows):
    """Results without control rows, or control networks planted to match the NTK kernels,
    leave the control unrejected (the claim itself still passes)."""
    v = CLAIM.verdict(mlp_rows[mlp_rows.role.ne("control")])
    assert v.passed and not v.negative_control_rejected
    assert "mean-field control not run" in v.summary
    planted = mlp_rows.copy()
    hit = planted.role.eq("control")
    planted.loc[hit, "target"] = planted.loc[hit, "value"]
    v = CLAIM.verdict(planted)
    assert v.passed and not v.negative_control_rejected, v.summary
