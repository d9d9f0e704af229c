"""check_kernel: design, determinism, acceptance of correct kernels and rejection of planted bugs.

Planted bugs are built from the analytic recursion (ntkcheck.kernels) here in
the tests; check_kernel itself sees only samples.  The unit-test configuration
is smaller than the acceptance run (benchmarks/check_kernel_power.py):
6 inputs and a requested detectable discrepancy of DISCREPANCY.
"""
import dataclasses
import math

import numpy as np
import pytest

from ntkcheck import MLP, nngp_kernel, ntk_kernel
from ntkcheck.check import check_kernel, design_kernel_check, kernel_test, sample_kernel
from ntkcheck.kernels import KernelState, activation_step, dense_step, input_state

DISCREPANCY = 0.1
SPECS = {"relu-3": MLP(3, 1, "relu", math.sqrt(2), 0.3), "erf-2": MLP(2, 1, "erf", 1.5, 0.3)}
X = np.random.default_rng(0).standard_normal((6, 3))


def ntk_missing_derivative(spec, X, layer):
    """The NTK recursion with E[phi' phi'] dropped on hidden layer ``layer`` (a planted bug)."""
    state = input_state(X, None)
    scales = spec.layer_scales(X.shape[1])
    fans = (X.shape[1],) + spec.widths
    for l, ((a, c, s_w, s_b), fan) in enumerate(zip(scales, fans)):
        if l > 0:
            post = activation_step(state, spec.act, True)
            state = KernelState(post.nngp, state.ntk, post.diag1, post.diag2) if l == layer else post
        state = dense_step(state, a, c, s_w, s_b, fan)
    return state.ntk


def planted(spec, X):
    """Candidate NTKs: the right one and five wrong ones."""
    ntk = ntk_kernel(spec, X)
    return {
        "correct": ntk,
        "scaled 1.03": 1.03 * ntk,
        "sigma_w +2%": ntk_kernel(dataclasses.replace(spec, sigma_w=1.02 * spec.sigma_w), X),
        "sigma_b omitted": ntk_kernel(dataclasses.replace(spec, sigma_b=0.0), X),
        "no E[phi'phi'] on layer 1": ntk_missing_derivative(spec, X, 1),
        "nngp for ntk": nngp_kernel(spec, X),
    }


@pytest.fixture(scope="module", params=sorted(SPECS))
def ntk_sample(request):
    spec = SPECS[request.param]
    return spec, sample_kernel(spec, X, "ntk", seed=1, discrepancy=DISCREPANCY)


def test_accepts_correct_and_rejects_planted_bugs(ntk_sample):
    spec, sample = ntk_sample
    assert sample.design.width == math.ceil(3 * spec.depth / DISCREPANCY)
    for name, cand in planted(spec, X).items():
        res = kernel_test(cand, sample)
        # a bug is guaranteed to be caught only if it exceeds the achieved detectable discrepancy
        size = np.max(np.abs(cand - ntk_kernel(spec, X)) / np.sqrt(np.outer(np.diag(cand), np.diag(cand))))
        assert res.detectable <= 1.1 * DISCREPANCY
        if name == "correct":
            assert res.passed, str(res)
        elif size > res.detectable:
            assert not res.passed, (name, str(res))


def test_nngp_check_accepts_and_rejects():
    spec = SPECS["erf-2"]
    sample = sample_kernel(spec, X, "nngp", seed=2, discrepancy=DISCREPANCY)
    assert kernel_test(nngp_kernel(spec, X), sample).passed
    assert not kernel_test(ntk_kernel(spec, X), sample).passed
    assert not kernel_test(nngp_kernel(dataclasses.replace(spec, sigma_b=0.0), X), sample).passed


def test_callable_candidate_and_determinism():
    spec = SPECS["relu-3"]
    opts = dict(discrepancy=0.2, seed=5)
    a = check_kernel(lambda x1, x2: ntk_kernel(spec, x1, x2), spec, X, **opts)
    b = check_kernel(ntk_kernel(spec, X), spec, X, **opts)
    c = check_kernel(ntk_kernel(spec, X), spec, X, **opts)
    assert a.passed and b.passed and a.details["design"] == b.details["design"]
    # a kernel asymmetric in its last bits has those lower entries tested too: the first 21 are i <= j
    upper = 21
    assert a.details["n_tests"] >= upper and b.details["n_tests"] >= upper
    assert np.array_equal(a.details["mean"][:upper], b.details["mean"][:upper])
    assert b.pvalue == c.pvalue and np.array_equal(b.stderr, c.stderr)
    assert "check_kernel[ntk]" in str(a) and "relative" in str(a)


def test_design_kernel_check():
    d = design_kernel_check(3, 136, 2.0, 1e-3, 1e-3, 0.01)
    assert d.width == 900 and math.isclose(d.bias, 3 / 900)
    # the noise budget left after the bias is met: (z + z) * spread / sqrt(M) <= discrepancy - bias
    assert d.n_networks >= (7.5 * d.spread / (0.01 - d.bias)) ** 2
    assert design_kernel_check(3, 136, 2.0, discrepancy=0.01, width=9000).n_networks < d.n_networks
    with pytest.raises(ValueError, match="too small"):
        design_kernel_check(3, 136, 2.0, discrepancy=0.01, width=100)


def test_bad_input():
    spec = SPECS["relu-3"]
    with pytest.raises(ValueError, match="kind"):
        check_kernel(np.eye(6), spec, X, kind="gp")
    with pytest.raises(ValueError, match="width-independent"):
        check_kernel(np.eye(6), dataclasses.replace(spec, parameterization="standard"), X, kind="ntk")
    sample = sample_kernel(spec, X, n_networks=4, discrepancy=0.5)
    with pytest.raises(ValueError, match="shape"):
        kernel_test(np.eye(5), sample)
    with pytest.raises(ValueError, match="NaN"):
        kernel_test(np.full((6, 6), np.nan), sample)
