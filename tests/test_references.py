"""The frozen neural-tangents kernels of the architecture cells: every cell the claims' grids use
has one, ntkcheck's kernels equal them, and a bug shared by the layer recursion and the sampled
networks (SAME padding's split swapped) FAILs the verdicts that would otherwise pass.  Also the
frozen kernels of the networks of LayerNorm, FanInConcat, SumPool, GlobalSumPool, ConvTranspose
and ConvLocal (``scripts/stax_networks.py``), which ntkcheck's equal to 1e-10."""
import importlib.util
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntkcheck import stax
from ntkcheck.claims import get_claim, grid_cells
from ntkcheck.claims import architectures as A
from ntkcheck.claims import nngp_gaussian
from ntkcheck.kernels import output_kernels

from test_init_claims import run_claim

CLAIMS = ("kernel-mean", "nngp-gaussian", "ntk-init-convergence")


def test_every_architecture_cell_of_every_budget_has_a_reference():
    refs = A.references()
    used = set()
    for claim_id in CLAIMS:
        claim = get_claim(claim_id)
        for budget in ("quick", "standard", "full"):
            for sub in A.expand(claim.grid(budget)):
                if sub["architecture"] != "mlp":
                    used |= {A.reference_key({"parameterization": "ntk", **cell}) for cell in grid_cells(sub)}
    assert used and used <= set(refs), sorted(used - set(refs))
    assert used == set(refs)      # no reference of a cell no grid uses


@pytest.mark.parametrize("key", sorted(A.references()))
def test_the_reference_equals_ntkcheck_kernels(key):
    ref = A.references()[key]
    X = A.inputs(ref["architecture"], ref["n_inputs"], ref["d_in"])
    np.testing.assert_array_equal(X, np.array(ref["inputs"]))     # the documented recipe of the inputs
    net = A.build(ref["architecture"], ref["activation"], ref["depth"], 16, ref["sigma_w"], ref["sigma_b"])
    k = output_kernels(net, X)
    for q in ("nngp", "ntk"):
        R = np.array(ref[q])
        err = np.abs(getattr(k, q) - R) / np.sqrt(np.outer(np.diag(R), np.diag(R)))
        assert err.max() <= A.REFERENCE_TOLERANCE, (q, err.max())


@pytest.fixture
def swapped_same_padding(monkeypatch):
    """SAME padding with its lo/hi split swapped, in the recursion and the sampled networks alike."""
    original = stax._windows

    def swapped(layer, shape, window):
        windows, out = original(layer, shape, window)
        if layer.padding == "SAME":
            windows = [(f, s, hi, lo) for f, s, lo, hi in windows]
        return windows, out
    for module in (stax.linear, stax.pooling):       # the layers that place windows
        monkeypatch.setattr(module, "_windows", swapped)


SMALL = {"kernel-mean": dict(arch_width=[16, 32], arch_n_networks=64, arch_chunk=32),
         "nngp-gaussian": dict(arch_width=[2, 64, 128], arch_test_min_width=128, arch_n_networks=20, block=2,
                               control_networks=20, attention_networks=0),
         "ntk-init-convergence": dict(arch_width=[16, 32, 64], arch_n_networks=40)}


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_swapped_same_padding_fails_the_reference_check(claim_id, swapped_same_padding, monkeypatch):
    """The mutated code's samples match its own kernels; only the frozen reference tells."""
    # a coarse bootstrap for the stored large-width tests: it is not what this tests
    monkeypatch.setattr(nngp_gaussian, "TEST_BOOT", 999)
    X = A.inputs("cnn-gap", 3, 4)
    net = A.build("cnn-gap", "relu", 2, 16, 1.5, 0.1)
    ref = A.references()[A.reference_key({"architecture": "cnn-gap", "activation": "relu", "depth": 2,
                                          "sigma_w": 1.5, "sigma_b": 0.1, "parameterization": "ntk",
                                          "n_inputs": 3, "d_in": 4})]
    assert np.abs(output_kernels(net, X).ntk / np.array(ref["ntk"]) - 1).max() > 0.05   # the mutation bites
    rows = run_claim(claim_id, architecture=["cnn-gap"], **SMALL[claim_id])
    v = get_claim(claim_id).verdict(rows)
    assert not v.passed, v.summary
    assert "OFF the frozen neural-tangents reference in cnn-gap relu L=2 sigma_w=1.5" in v.summary
    assert v.statistics["reference_cells"] == 1 and v.statistics["reference_max_error"] > 0.05
    if claim_id == "kernel-mean":     # the sampled means do match the mutated kernels
        assert v.statistics["holm_p"] > v.false_fail_rate


def test_rows_carry_the_targets_the_check_compares():
    """kernel-mean's rows carry their targets: a planted target off by 1e-6 is caught without the
    kernels being recomputed; a cell no grid uses is reported, not checked."""
    ref = A.references()[("resnet", "erf", 2, 1.5, 0.0, "ntk", 3, 4)]
    iu = np.triu_indices(3)
    rows = pd.DataFrame([{"architecture": "resnet", "activation": "erf", "depth": 2, "sigma_w": 1.5,
                          "sigma_b": 0.0, "parameterization": "ntk", "n_inputs": 3, "d_in": 4, "width": 8,
                          "quantity": q, "i": i, "j": j, "target": ref[q][i][j]}
                         for q in ("nngp", "ntk") for i, j in zip(*iu)])
    assert A.reference_check(rows).passed and A.reference_check(rows).max_error == 0.0
    bad = rows.copy()
    bad.loc[5, "target"] *= 1 + 1e-6
    check = A.reference_check(bad)
    assert not check.passed and check.off == ("resnet erf L=2 sigma_w=1.5 sigma_b=0 (3 inputs, d_in=4): NNGP by 1e-06",)
    other = A.reference_check(rows.assign(d_in=5))
    assert other.passed and other.unchecked and "not checked" in other.text


def test_rows_from_before_the_inputs_columns_use_the_grids_inputs():
    """No n_inputs, d_in or parameterization: the grids' 3 x 4 inputs, NTK parameterization;
    no targets in the rows: the kernels are computed from the cell's parameters."""
    rows = pd.DataFrame([{"architecture": "cnn-flatten", "activation": "relu", "depth": 2, "sigma_w": 1.5,
                          "sigma_b": 0.2, "parameterization": np.nan, "width": 8, "quantity": "G", "i": 0}])
    check = A.reference_check(rows, ("nngp", "ntk"))
    assert check.passed and len(check.checked) == 1 and 0 < check.max_error <= A.REFERENCE_TOLERANCE


def _load_stax_networks():
    """``scripts/stax_networks.py``, the networks the frozen ``layers`` were computed on."""
    spec = importlib.util.spec_from_file_location(
        "stax_networks", Path(__file__).resolve().parents[1] / "scripts" / "stax_networks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NETS = _load_stax_networks()
LAYERS = json.loads(files("ntkcheck").joinpath("data_files", "reference_kernels.json").read_text())["layers"]


def test_every_layer_network_has_a_reference():
    assert {(r["network"], r["activation"]) for r in LAYERS} == \
        {(name, act) for name in NETS.NETWORKS for act in NETS.ACTIVATIONS}


@pytest.mark.parametrize("ref", LAYERS, ids=lambda r: f"{r['network']}-{r['activation']}")
def test_the_layer_networks_kernels_equal_the_frozen_neural_tangents_kernels(ref):
    """nngp and ntk on X1 and on (X1, X2), to 1e-10 of the largest entry -- but for relu's NTK at
    (x, x): there the correlation before each relu is exactly 1 (ntkcheck keeps K(x,i; x,i) and the
    variance equal to the bit), where relu's derivative kernel (pi - arccos rho) / (2 pi) is
    steepest, and neural-tangents' correlation rounded to 1 - O(1e-16) moves it by O(1e-8)."""
    build, shape = NETS.NETWORKS[ref["network"]]
    X = np.random.default_rng(0).standard_normal((5,) + shape)       # the documented recipe
    X1, X2 = np.array(ref["X1"]), np.array(ref["X2"])
    np.testing.assert_array_equal(X1, X[:3])
    np.testing.assert_array_equal(X2, X[3:])
    net = build(stax, getattr(stax, NETS.ACTIVATIONS[ref["activation"]]))
    for k, suffix in ((output_kernels(net, X1), ""), (output_kernels(net, X1, X2), "_cross")):
        for q in ("nngp", "ntk"):
            R = np.array(ref[q + suffix])
            tol = np.full(R.shape, 1e-10)
            if ref["activation"] == "relu" and q + suffix == "ntk":
                np.fill_diagonal(tol, 1e-7)
            assert np.all(np.abs(getattr(k, q) - R) <= tol * np.abs(R).max()), (q + suffix)
