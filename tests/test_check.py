"""check_kernel: design, determinism, acceptance of correct kernels and rejection of planted bugs.

Planted bugs are built from the analytic recursion (ntkcheck.kernels) here in
the tests; check_kernel itself sees only samples.  The unit-test configuration
is smaller than the acceptance run (benchmarks/check_kernel_calibration.py):
6 inputs and a requested detectable discrepancy of DISCREPANCY.
"""
import dataclasses
import math

import numpy as np
import pytest

import ntkcheck.check as check
from ntkcheck import MLP, nngp_kernel, ntk_kernel
from ntkcheck.check import (KernelCheckPlan, check_kernel, confirmation_seed, design_kernel_check, kernel_test,
                            sample_kernel)

DISCREPANCY = 0.1
SPECS = {"relu-3": MLP(3, 1, "relu", math.sqrt(2), 0.3), "erf-2": MLP(2, 1, "erf", 1.5, 0.3)}
X = np.random.default_rng(0).standard_normal((6, 3))
FAST = dict(discrepancy=0.2, widths=(16, 128))     # API tests: small and quick


def planted(spec, X):
    """Candidate NTKs: the right one and wrong ones."""
    ntk = ntk_kernel(spec, X)
    return {"correct": ntk, "scaled 1.1": 1.1 * ntk,
            "sigma_w +5%": ntk_kernel(dataclasses.replace(spec, sigma_w=1.05 * spec.sigma_w), X),
            "sigma_b omitted": ntk_kernel(dataclasses.replace(spec, sigma_b=0.0), X),
            "nngp for ntk": nngp_kernel(spec, X)}


@pytest.fixture(scope="module", params=sorted(SPECS))
def ntk_sample(request):
    spec = SPECS[request.param]
    return spec, sample_kernel(spec, X, "ntk", seed=1, discrepancy=DISCREPANCY)


def test_accepts_correct_and_rejects_planted_bugs(ntk_sample):
    spec, sample = ntk_sample
    assert sample.design.widths == (48 * spec.depth, 32 * 48 * spec.depth)
    truth = ntk_kernel(spec, X)
    for name, cand in planted(spec, X).items():
        res = kernel_test(cand, sample)
        size = np.max(np.abs(cand - truth) / np.sqrt(np.outer(np.diag(truth), np.diag(truth))))
        assert res.detectable <= DISCREPANCY
        if name == "correct":
            assert res.passed and res, str(res)
        else:
            assert size > res.detectable, name          # each bug is one the design guarantees to catch
            assert not res.passed and not res, (name, str(res))


def test_nngp_check_accepts_and_rejects():
    spec = SPECS["erf-2"]
    sample = sample_kernel(spec, X, "nngp", seed=2, discrepancy=DISCREPANCY)
    assert kernel_test(nngp_kernel(spec, X), sample).passed
    assert not kernel_test(ntk_kernel(spec, X), sample).passed
    assert not kernel_test(nngp_kernel(dataclasses.replace(spec, sigma_b=0.0), X), sample).passed


def test_extrapolation_removes_any_first_order_width_bias(monkeypatch):
    """Kernels K + B / n + noise at width n: the pairs' mean is K whatever B."""
    spec, K = SPECS["relu-3"], ntk_kernel(SPECS["relu-3"], X)
    B = 50.0 * np.outer(np.arange(1, 7), np.arange(1, 7))

    def fake(wide, X, kind, m, seed, method, jobs):
        noise = np.random.default_rng(seed).standard_normal((m, 6, 6)) * 1e-3
        return K + B / wide.width + (noise + noise.transpose(0, 2, 1))

    monkeypatch.setattr(check, "_network_kernels", fake)
    sample = sample_kernel(spec, X, seed=0, widths=(10, 80), n_networks=50)
    assert kernel_test(K, sample).passed
    assert np.allclose(sample.draws.mean(axis=0), K, atol=1e-3)
    res = kernel_test(K, sample)
    scale = np.sqrt(np.outer(np.diag(K), np.diag(K)))[res.details["index"]]
    assert np.allclose(res.details["width_bias"], (B / 10)[res.details["index"]] / scale, rtol=0.05, atol=1e-3)


def test_callable_candidates_and_determinism():
    spec = SPECS["relu-3"]
    ntk = ntk_kernel(spec, X)
    a = check_kernel(lambda x1, x2: ntk_kernel(spec, x1, x2), spec, X, seed=5, jobs=1, **FAST)
    b = check_kernel(ntk, spec, X, seed=5, jobs=2, **FAST)        # threads: the same sample

    def kernel_fn(x1, x2=None, get=None):          # neural-tangents' signature
        assert x2 is None and get == "ntk"
        return ntk_kernel(spec, x1, x2)

    c = check_kernel(kernel_fn, spec, X, seed=5, **FAST)
    assert a and b and c and a.details["design"] == b.details["design"] == c.details["design"]
    assert a.pvalue == b.pvalue == c.pvalue and np.array_equal(a.stderr, c.stderr)
    assert np.array_equal(a.details["mean"], b.details["mean"]) and np.array_equal(a.stderr, b.stderr)
    assert a.details["n_tests"] == 21
    statistic, pvalue = a                            # unpacks like scipy's results
    assert (statistic, pvalue) == (a.statistic, a.pvalue)
    assert "check_kernel[ntk]" in str(a) and "relative" in str(a)
    wrong = check_kernel(1.5 * ntk, spec, X, seed=5, **FAST)
    assert not wrong and not bool(wrong)


def test_design_kernel_check():
    d = design_kernel_check(3, 136, 0.05, 1e-3, 1e-3, 0.01)
    assert d.widths == (144, 4608)
    # (z + z) * spread / sqrt(M) <= discrepancy, with no share lost to a bias allowance
    assert (7.5 * 0.05 / 0.01) ** 2 <= d.n_networks <= (7.8 * 0.05 / 0.01) ** 2
    assert design_kernel_check(3, 136, 0.025, discrepancy=0.01).n_networks < d.n_networks / 3.5
    with pytest.raises(ValueError, match="widths"):
        design_kernel_check(3, 136, 0.05, widths=(100, 100))


def test_bad_input_is_refused_before_sampling(monkeypatch):
    spec = SPECS["relu-3"]

    def never(*args, **kwargs):
        raise AssertionError("sampled before validating")

    monkeypatch.setattr(check, "sample_init", never)
    with pytest.raises(ValueError, match="kind"):
        check_kernel(np.eye(6), spec, X, kind="gp")
    with pytest.raises(ValueError, match="width-independent"):
        check_kernel(np.eye(6), dataclasses.replace(spec, parameterization="standard"), X, kind="ntk")
    with pytest.raises(ValueError, match="max_networks"):
        check_kernel(np.eye(6), spec, X, max_networks=0)
    with pytest.raises(ValueError, match="n_networks"):
        check_kernel(np.eye(6), spec, X, n_networks=1)
    with pytest.raises(ValueError, match="shape"):
        check_kernel(np.eye(5), spec, X)
    with pytest.raises(ValueError, match="shape"):
        check_kernel(lambda a, b: np.eye(5), spec, X)
    with pytest.raises(ValueError, match="NaN"):
        check_kernel(np.full((6, 6), np.nan), spec, X)
    ntk = ntk_kernel(spec, X)
    with pytest.raises(ValueError, match=r"complex: K\[4, 4\] = .* imaginary part 5 "):
        check_kernel(ntk + 5j * ntk / ntk.max(), spec, X)          # its real part alone is right
    with pytest.raises(ValueError, match=r"complex: K\[1, 2\] .* imaginary part 1e-30 "):
        check_kernel(lambda a, b: ntk + 1e-30j * (np.arange(36).reshape(6, 6) == 8), spec, X)
    assert np.array_equal(check.candidate_kernel(ntk + 0j, X), check.candidate_kernel(ntk, X))    # exactly real
    asym = np.eye(6)
    asym[0, 1] = 0.1
    with pytest.raises(ValueError, match=r"not symmetric: K\[0, 1\]"):
        check_kernel(asym, spec, X)
    with pytest.raises(ValueError, match="widths"):
        check_kernel(np.eye(6), spec, X, widths=(64, 32))


def test_entries_with_zero_sampled_variance_are_exact_up_to_round_off():
    """relu without bias on 1-D inputs of opposite sign: K[0, j] (j > 0) is 0 in every network, so its
    standard error is 0; round-off in a correct candidate passes, a 1% error fails."""
    spec = MLP(1, 1, "relu", math.sqrt(2), 0.0)
    X1 = np.array([[1.7], [-0.72], [-1.0], [-2.1]])
    for kind, kernel in (("ntk", ntk_kernel), ("nngp", nngp_kernel)):
        sample = sample_kernel(spec, X1, kind, seed=0)
        truth = kernel(spec, X1)
        res = kernel_test(truth, sample)
        rows, cols = res.details["index"]
        zero = res.details["zero_variance"]
        assert res and {(int(r), int(c)) for r, c in zip(rows[zero], cols[zero])} == {(0, 1), (0, 2), (0, 3)}
        for size, passes in ((1e-12, True), (0.01, False)):
            cand = truth.copy()
            cand[0, 3] = cand[3, 0] = size * math.sqrt(truth[0, 0] * truth[3, 3])
            res = kernel_test(cand, sample)
            assert res.passed == passes, (kind, size, str(res))
        assert res.details["worst_pair"] == (0, 3) and res.statistic == math.inf


def test_an_input_whose_kernel_is_zero_takes_the_kernels_scale():
    spec = MLP(1, 1, "tanh", 1.5, 0.0)
    X0 = np.array([[0.0, 0.0], [1.0, 0.5], [-0.3, 2.0]])
    with np.errstate(all="raise"):
        sample = sample_kernel(spec, X0, seed=0, widths=(8, 64), n_networks=20)
        res = kernel_test(ntk_kernel(spec, X0), sample)
    assert res and math.isfinite(res.detectable) and np.all(np.isfinite(res.details["relative_error"]))
    cand = ntk_kernel(spec, X0)
    cand[0, 0] = 1e-3
    assert not kernel_test(cand, sample)
    with pytest.raises(ValueError, match="0 on every input"):
        kernel_test(np.zeros((2, 2)), sample_kernel(spec, np.zeros((2, 2)), seed=0, widths=(8, 64), n_networks=20))


def test_two_stages_fail_a_planted_one_percent_error_and_pass_the_correct_kernel():
    spec = MLP(1, 1, "relu", math.sqrt(2), 0.2)
    X4 = np.random.default_rng(0).standard_normal((4, 3))
    ntk = ntk_kernel(spec, X4)
    design = dict(seed=0, discrepancy=0.008, widths=(24, 768))
    ok = check_kernel(ntk, spec, X4, **design)
    assert ok and ok.details["stages"][1] is None and ok.pvalue == ok.details["stages"][0].pvalue ** 2
    bad = check_kernel(1.01 * ntk, spec, X4, **design)
    first, second = bad.details["stages"]
    assert not bad and bad.details["confirmed"] and not first.passed and not second.passed
    assert bad.pvalue == max(first.pvalue, second.pvalue) ** 2 <= bad.false_fail_rate == 1e-3
    assert bad.details["stage_rates"] == (math.sqrt(1e-3), 5e-4) == (first.false_fail_rate, first.false_pass_rate)
    seed = bad.details["stage_seeds"][1]
    assert (seed.entropy, seed.spawn_key) == (0, (4,)) == (confirmation_seed(0).entropy, confirmation_seed(0).spawn_key)
    assert not np.array_equal(first.details["mean"], second.details["mean"])           # independent samples
    assert bad.n_samples == first.n_samples + second.n_samples


def test_a_first_stage_false_alarm_cleared_by_the_confirmation_passes():
    """Seed 9 (from a scan of seeds 0-119): the correct kernel fails the first stage, at sqrt(1e-3), and the
    confirmation on the independent seed clears it."""
    spec = SPECS["erf-2"]
    res = check_kernel(ntk_kernel(spec, X), spec, X, seed=9, **FAST)
    first, second = res.details["stages"]
    assert not first.passed and second.passed and res.passed and not res.details["confirmed"]
    assert 1e-3 < res.pvalue == max(first.pvalue, second.pvalue) ** 2
    assert first.pvalue <= math.sqrt(1e-3) < second.pvalue


def counted_batches(monkeypatch) -> list:
    batches, batch = [], check._batch

    def counted(*args):
        batches.append(1)
        return batch(*args)

    monkeypatch.setattr(check, "_batch", counted)
    return batches


def test_the_plan_is_stated_after_the_probe_and_before_the_bulk(monkeypatch):
    spec = SPECS["erf-2"]
    batches, plans = counted_batches(monkeypatch), []
    res = check_kernel(ntk_kernel(spec, X), spec, X, seed=2, notify=lambda plan: plans.append((plan, len(batches))),
                       **FAST)
    ((plan, drawn),) = plans                           # one stage: the check passed at once
    assert res and drawn == 1                          # only the probe, the sample's first batch
    assert plan.stage == "first stage" and plan.widths == (16, 128) and plan.method == "exact"
    assert plan.n_networks >= 100 and plan.seconds > 0 and plan.false_fail_rate == math.sqrt(1e-3)
    assert str(plan).startswith("check_kernel first stage: ~") and "widths (16, 128)" in str(plan)
    assert res.n_samples == len(batches) * 10                                       # nothing drawn twice


def test_max_seconds_refuses_naming_a_discrepancy_that_fits(monkeypatch):
    plan = KernelCheckPlan((96, 3072), 800, 8.0, 0.01, 0.05, 0.01, math.sqrt(1e-3), "exact", 1)
    assert check._refusal(plan, 2.0) == ("max_seconds=2: the check is estimated at 8 s (~800 pairs of widths "
                                         "(96, 3072), 0.01 s a pair); discrepancy=0.02 fits")
    spec = SPECS["erf-2"]
    batches = counted_batches(monkeypatch)
    with pytest.raises(ValueError, match=r"^max_seconds=1e-09: the check is estimated at .* s \(~\d+ pairs of widths "
                       r"\(16, 128\), .*; even the 100-pair pilot does not fit: raise max_seconds or pass smaller "
                       r"widths=$"):
        check_kernel(ntk_kernel(spec, X), spec, X, max_seconds=1e-9, **FAST)
    assert len(batches) == 1                                                          # the probe only
    for bad in (0, -1.0, "60"):
        with pytest.raises(ValueError, match="max_seconds must be a number > 0"):
            check_kernel(np.eye(6), spec, X, max_seconds=bad, **FAST)
