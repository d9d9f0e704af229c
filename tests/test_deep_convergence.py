"""deep-convergence: the linear model, the spectral norms and the verdict on planted data."""
from functools import partial

import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import GridError, Task, task_seed
from ntkcheck.claims import deep_convergence as dc

RNG = np.random.default_rng(np.random.SeedSequence(2026))
WIDTHS = (16, 64, 256)


def test_spectral_norms_match_svd():
    A = RNG.standard_normal((3, 20, 6)) @ RNG.standard_normal((3, 6, 30))    # rank 6, like a weight change
    np.testing.assert_allclose(dc.spectral_norms(A, 0), np.linalg.norm(A, 2, axis=(1, 2)), rtol=1e-6)


def test_linear_losses_full_batch_is_the_matrix_power():
    theta = RNG.standard_normal((2, 5, 5))
    theta = theta @ theta.transpose(0, 2, 1) / 5
    r0 = RNG.standard_normal((2, 5))
    lin = dc.linear_losses(theta, r0, 0.5, 5, [np.ones((2, 5))] * 7)
    for i in range(2):
        r = np.linalg.matrix_power(np.eye(5) - 0.1 * theta[i], 7) @ r0[i]
        assert lin[i, -1] == pytest.approx(0.5 * r @ r / 5, rel=1e-12)


def test_fitted_rate_of_an_exponential():
    loss = np.exp(-0.3 * np.arange(50))[None] * np.array([[2.0], [5.0]])
    np.testing.assert_allclose(dc.fitted_rate(loss, np.array([10, 40])), 0.3, rtol=1e-12)


def _planted(rate=-0.6, weight=-0.55, flip=-0.45, missed=0, control_reached=0.0, seed=0, m=10):
    """Rows as run_task writes them: per-network values C n^exponent x lognormal(0.4) noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for act in ("relu", "gelu"):
        for depth in (2, 4):
            for method in ("gd", "sgd"):
                for w in WIDTHS:
                    law = lambda e: 0.8 * w**e * np.exp(0.4 * rng.standard_normal(m))  # noqa: E731
                    reached = np.ones(m)
                    if w == WIDTHS[-1]:
                        reached[:missed] = 0.0
                    q = {"reached_eps": reached, "rate_error": law(rate), "weight_change": law(weight),
                         "flip_fraction": law(flip), "rate": np.full(m, 0.1), "rate_ntk": np.full(m, 0.09),
                         "iterations": np.full(m, 50.0), "iterations_linear": np.full(m, 48.0)}
                    rows += [{"activation": act, "depth": depth, "method": method, "width": w, "quantity": k,
                              "value": float(v), "stderr": 0.0, "n_networks": m, "network": i, "control": 0}
                             for k, vals in q.items() for i, v in enumerate(vals)]
                rows += [{"activation": act, "depth": depth, "method": method, "width": 1, "quantity": "reached_eps",
                          "value": float(i < control_reached * m), "stderr": 0.0, "n_networks": m, "network": i,
                          "control": 1} for i in range(m)]
    return pd.DataFrame(rows)


def test_true_laws_pass_and_the_control_is_rejected():
    v = dc.CLAIM.judge(_planted())
    assert v.status == "PASS", v.summary
    assert "false-fail rate" in v.summary and "power 0.99" in v.detectable


@pytest.mark.parametrize("kw", [dict(rate=0.0), dict(weight=-0.1), dict(flip=-0.05), dict(missed=1)])
def test_planted_violations_fail(kw):
    v = dc.CLAIM.judge(_planted(**kw))
    assert not v.passed, (kw, v.summary)


def test_a_converging_control_is_not_rejected():
    v = dc.CLAIM.judge(_planted(control_reached=1.0))
    assert v.passed and v.status == "INCONCLUSIVE"


def test_run_task_rows():
    grid = {**dc.GRIDS["quick"], "activation": ["relu"], "depth": [2], "method": ["sgd"], "width": [32, 64, 128],
            "n_networks": 3, "chunk": 3, "epochs": 40, "architecture": ["mlp"]}
    dc.check(grid)
    tasks = dc.CLAIM.tasks(grid, 0)
    assert sum(t.params.get("control", 0) for t in tasks) == 1 and len(tasks) == 4
    rows = pd.DataFrame(dc.run_task(Task("deep-convergence", "k", {**tasks[2].params}, task_seed(0, "dc", "k"))))
    per = rows.pivot_table(index="network", columns="quantity", values="value")
    assert set(per.columns) >= {"reached_eps", "rate_error", "weight_change", "flip_fraction",
                                "weight_change_layer3"}
    assert np.all((per["flip_fraction"] >= 0) & (per["flip_fraction"] < 0.5))
    assert np.all(per["weight_change"] >= per[[f"weight_change_layer{l}" for l in (1, 2, 3)]].max(axis=1) - 1e-12)


def test_run_task_resnet_rows():
    grid = {**dc.GRIDS["quick"], "method": ["gd"], "width": [16, 32, 64], "n_networks": 3, "chunk": 3,
            "architecture": ["resnet"], "arch_depth": [3]}
    dc.check(grid)
    task = next(t for t in dc.CLAIM.tasks(grid, 0) if t.params["width"] == 64)
    per = pd.DataFrame(dc.run_task(task)).pivot_table(index="network", columns="quantity", values="value")
    assert "flip_fraction" not in per and {"weight_change_layer3", "rate_error"} <= set(per.columns)
    assert per["reached_eps"].all() and np.all(per["rate_error"] < 1)


@pytest.mark.parametrize("key, value", [("method", ["adam"]), ("architecture", ["cnn-gap"]), ("batch_size", 3),
                                        ("control_width", 5),
                                        ("width", [16, 64]), ("lr_fraction", 1.5)])
def test_check_refuses(key, value):
    with pytest.raises(GridError, match=key):
        dc.check({**dc.GRIDS["quick"], key: value})


@pytest.mark.parametrize("width, fails", [(16, False), (256, True)])
def test_a_diverged_network_fails_only_at_the_widest_width(width, fails):
    df = _planted()
    bad = (df["quantity"] == "rate_error") & (df["width"] == width) & (df["network"] == 0) & (df["depth"] == 4)
    v = dc.CLAIM.judge(df.assign(value=np.where(bad, np.nan, df["value"])))
    assert v.passed != fails, v.summary
    assert ("UNSTABLE" in v.summary) == fails and ("left out of the fits" in v.summary) != fails


def test_train_until_stops_after_the_segment_where_every_network_is_done():
    spec = dc.spec_of({**dc.GRIDS["quick"], "activation": "relu", "depth": 2, "width": 64})
    X, y = dc.data(8, 4)
    p0 = dc.init_params(spec, 4, 3, 0, 2)
    lr = np.array([1.0, 1.5])
    train = partial(dc.train_params, spec, dc.init_params(spec, 4, 3, 0, 2), X, y)
    loss, diverged = dc.train_until(train, lr, 8, np.array([5, 5]), np.array([400, 400]), 1e-3, 400, None, None)
    seg = dc.SEGMENT_EPOCHS
    hit = (loss <= 1e-3 * loss[:, :1]).any(1)
    assert hit.all() and not diverged.any()
    last = max((loss[i] <= 1e-3 * loss[i, 0]).argmax() for i in range(2))
    assert loss.shape[1] - 1 == seg * (-(-last // seg))       # the first segment boundary past the last hit
    # the segments' losses are one uninterrupted run's
    from ntkcheck.train import train_params
    ref = train_params(spec, p0, X, y, lr, loss.shape[1] - 1)
    np.testing.assert_allclose(loss, ref.loss, rtol=1e-12)
