"""The four-point-vertex and ntk-fluctuations claims: their verdicts on planted data (at a small
noise and at the quick budget's), the split, the figure and key numbers, and one task each
against the claim's own prediction."""
import itertools

import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import PARAM_COLUMNS, four_point_vertex, ntk_fluctuations
from ntkcheck.claims._effective import GRIDS, entries, inputs
from ntkcheck.claims.initcommon import cell_spec
from ntkcheck.sampler import sample_init

CLAIMS = [four_point_vertex.CLAIM, ntk_fluctuations.CLAIM]

WIDTHS = (64, 256, 1024)
CONTROL_WIDTHS = (16, 32, 64)


def _planted(scale: float = 1.0, seed: int = 0, rel_se: float = 0.005, control: float = 0.6) -> pd.DataFrame:
    """Rows of a run whose measured n Cov = V (1 + 3/n) + noise at ``rel_se`` x |V|, with the
    stored prediction ``scale`` x V (in one task per cell, as the split does); the power check's
    wrong prediction is 0.7 V; the control's networks measure ``control`` x V (1 + 3/n) at
    widths 16, 32, 64 with 4 x the noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell, (act, depth) in enumerate([("tanh", 1), ("tanh", 3), ("relu", 3)]):
        for k, (a, b, c, d) in enumerate(entries(2)):
            V = (1.0 + cell + 0.3 * k) * (-1) ** k
            entry = f"{a}{b},{c}{d}"
            for n in WIDTHS:
                se = rel_se * abs(V)
                base = {"activation": act, "depth": depth, "width": n, "n_networks": 5000, "entry": entry}
                rows.append({**base, "quantity": "n_cov", "value": V * (1 + 3 / n) + se * rng.standard_normal(),
                             "stderr": se})
                rows += [{**base, "quantity": q, "value": v, "stderr": 0.0}
                         for q, v in (("prediction", scale * V), ("prediction_error", 1e-12), ("power_target", 0.7 * V))
                         if n == WIDTHS[0]]
            for n in CONTROL_WIDTHS:
                se = 4 * rel_se * abs(V)
                rows.append({"activation": act, "depth": depth, "width": n, "n_networks": 500, "entry": entry,
                             "quantity": "n_cov_control", "stderr": se,
                             "value": control * V * (1 + 3 / n) + se * rng.standard_normal()})
    return pd.DataFrame(rows)


#: The quick budget's relative standard error of n Cov per width: sqrt(2 / M) for a variance
#: from M = 7000 networks (the measured ones are 1.6-2.3 % on the diagonal entries).
QUICK_REL_SE = 0.017


@pytest.mark.parametrize("rel_se", [0.005, QUICK_REL_SE])
@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_true_prediction_passes_and_controls_are_rejected(claim, rel_se):
    v = claim.judge(_planted(rel_se=rel_se))
    assert v.passed and v.negative_control_rejected, v.summary
    assert v.statistics["power_holm_p[x1.1]"] < v.false_fail_rate, v.summary


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_control_that_agrees_with_the_prediction_is_not_rejected(claim):
    v = claim.judge(_planted(control=1.0, rel_se=QUICK_REL_SE))
    assert v.passed and not v.negative_control_rejected, v.summary


@pytest.mark.parametrize("rel_se", [0.005, QUICK_REL_SE])
@pytest.mark.parametrize("scale", [0.9, 1.1])
@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_prediction_ten_percent_off_fails(claim, scale, rel_se):
    v = claim.judge(_planted(scale=scale, rel_se=rel_se))
    assert not v.passed, v.summary


def test_grids_too_small_are_refused():
    claim = CLAIMS[0]
    with pytest.raises(ValueError, match="width: needs >= 2 widths"):
        claim.check({**GRIDS["quick"], "width": [64]})
    with pytest.raises(ValueError, match="chunk: needs >= 3 networks"):
        claim.check({**GRIDS["quick"], "chunk": 2})
    with pytest.raises(ValueError, match="control_width: needs >= 2 widths"):
        claim.check({**GRIDS["quick"], "control_width": [16, 16]})


def test_one_task_per_cell_stores_the_prediction():
    grid = GRIDS["quick"]
    tasks = [p for _, p in CLAIMS[0].split(grid)]
    predicting = [(p["activation"], p["depth"]) for p in tasks if p["predict"]]
    assert sorted(predicting) == sorted({(p["activation"], p["depth"]) for p in tasks})
    assert all(p["width"] == min(grid["width"]) and p["chunk"] == 0 and "weights" not in p
               for p in tasks if p["predict"])
    control = [p for p in tasks if "weights" in p]
    assert len(control) == len(grid["activation"]) * len(grid["control_width"])
    assert {p["n_networks"] for p in control} == {grid["control_networks"]}


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_figure_and_key_numbers(claim, tmp_path):
    df = _planted()
    v = claim.judge(df)
    claim.figure(df, v, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    keys = claim.key_numbers(v)
    assert len(keys) == 3 and all(k.lo <= k.theory <= k.hi for k in keys)


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_one_task_measures_its_prediction(claim):
    """A task at width 256 (tanh, depth 3): each measured n Cov within 5 standard errors plus an
    O(1/n) allowance of 10 |prediction| / n of the stored prediction (stated, not tuned)."""
    grid = {**claim.grid("quick"), "activation": ["tanh"], "depth": [3], "width": [256], "n_networks": 3000,
            "chunk": 3000}
    claim.check({**grid, "width": [256, 512]})
    (task,) = [t for t in claim.tasks(grid, seed=1) if "weights" not in t.params]
    df = pd.DataFrame([{**{k: task.params[k] for k in PARAM_COLUMNS if k in task.params}, **r}
                       for r in claim.run_task(task)])
    wide = df.pivot_table(index="entry", columns="quantity", values="value")
    se = df[df.quantity == "n_cov"].set_index("entry")["stderr"]
    pred = wide["prediction"]
    assert np.all(np.abs(wide["n_cov"] - pred) <= 5 * se + 10 * np.abs(pred) / 256)


def _rademacher_one_hidden_layer(spec, X) -> tuple[np.ndarray, np.ndarray]:
    """The control's law for one hidden layer (NTK parameterization), exactly: n Cov(G_ab, G_cd)
    and n Cov(Theta_hat_ab, Theta_hat_cd), (N, N, N, N).  The n neurons are i.i.d., so n Cov is
    the covariance of one neuron's summands g_ab = C_W s_a s_b and m_ab = C_W s_a s_b + C_W
    Theta^1_ab s'_a s'_b (the readout weights' squares are 1; Gaussian ones would add
    Var(w^2) = 2 times C_W^2 Theta^1 Theta^1 <s's's's'>, the B terms), with z_a = (sigma_w / sqrt(d))
    u.x_a + sigma_b beta over the 2^d equally likely signs u and Gauss-Hermite beta."""
    d = X.shape[1]
    C_W, C_b = spec.sigma_w**2, spec.sigma_b**2
    theta1 = C_W * X @ X.T / d + C_b
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    beta, wb = np.polynomial.hermite_e.hermegauss(80)
    z = (spec.sigma_w / np.sqrt(d)) * (signs @ X.T)[:, None, :] + spec.sigma_b * beta[None, :, None]
    w = np.broadcast_to(wb / wb.sum() / len(signs), z.shape[:2]).ravel()
    s, ds = spec.act.fn(z).reshape(-1, len(X)), spec.act.deriv(z).reshape(-1, len(X))
    g = C_W * s[:, :, None] * s[:, None, :]
    m = g + C_W * theta1 * ds[:, :, None] * ds[:, None, :]

    def cov(t):
        c = t - np.tensordot(w, t, 1)
        return np.tensordot(w, c[:, :, :, None, None] * c[:, None, None, :, :], 1)
    return cov(g), cov(m)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_control_networks_follow_their_own_law_not_the_gaussian_prediction(act):
    """One hidden layer, width 16, 4,000 dense networks with Rademacher weights: each measured
    n Cov is within 5 standard errors of the exact Rademacher law, and the Gaussian-weight
    prediction (four-point-vertex's and ntk-fluctuations') is > 5 standard errors off in some entry
    of each: the negative control's networks are a setting where the prediction is wrong."""
    grid = {**GRIDS["quick"], "activation": act, "depth": 1, "width": 16}
    spec, X = cell_spec(grid), inputs(grid)
    sample = sample_init(spec, X, 4000, seed=np.random.SeedSequence([20, 24]), method="dense",
                         weights="rademacher")
    exact = _rademacher_one_hidden_layer(spec, X)
    for claim, module, law in zip(CLAIMS, (four_point_vertex, ntk_fluctuations), exact):
        S = module._measure(spec, sample)
        gaussian = module._predict(spec, X)[0]
        off = []
        for a, b, c, d in entries(len(X)):
            prod = (S[:, a, b] - S[:, a, b].mean()) * (S[:, c, d] - S[:, c, d].mean())
            value, se = 16 * prod.mean(), 16 * prod.std() / np.sqrt(len(prod))
            assert abs(value - law[a, b, c, d]) < 5 * se, (claim.id, (a, b, c, d), value, law[a, b, c, d], se)
            off.append(abs(value - gaussian[a, b, c, d]) / se)
        assert max(off) > 5, (claim.id, off)


def test_results_without_the_control_report_it_not_run():
    df = _planted()
    v = CLAIMS[0].judge(df[df.quantity != "n_cov_control"])
    assert v.passed and not v.negative_control_rejected and "not run" in v.summary, v.summary
