"""sgd-structured-data: the mixture, the SGD step and the verdict on planted data."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from ntkcheck.claims import GridError, Task, task_seed
from ntkcheck.claims import sgd_structured_data as sd

RNG = np.random.default_rng(np.random.SeedSequence(2025))
WIDTHS = (256, 1024, 4096)
P = {**sd.GRIDS["quick"], "classes": 3, "components": 2, "delta": 0.5, "d_in": 10}


def test_mixture_is_separated_and_components_are_small():
    mu, cls, radius = sd.mixture(RNG, P)
    X, y = sd.samples(RNG, mu, cls, radius, 600)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    assert D[y[:, None] != y[None]].min() >= P["delta"]
    comp = np.argmin(np.linalg.norm(X[:, None] - mu[None], axis=2), axis=1)
    for c in range(len(mu)):
        assert D[np.ix_(comp == c, comp == c)].max() <= P["delta"] / (8 * P["components"])


def test_errors_match_a_direct_count():
    X, W, A = RNG.standard_normal((2, 150, 4)), RNG.standard_normal((2, 4, 7)), RNG.standard_normal((2, 7, 3))
    y = RNG.integers(0, 3, (2, 150))
    direct = [np.mean(np.argmax(np.maximum(X[i] @ W[i], 0) @ A[i], axis=1) != y[i]) for i in range(2)]
    np.testing.assert_allclose(sd.errors(X, y, W, A), direct, rtol=0, atol=0)


def test_sgd_step_is_the_cross_entropy_gradient():
    M, B, d, m, k = 2, 4, 3, 5, 3
    X, W = RNG.standard_normal((M, B, d)), RNG.standard_normal((M, d, m))
    A = RNG.choice([-1.0, 1.0], (M, m, k))
    onehot = np.eye(k)[RNG.integers(0, k, (M, B))]
    orders = np.broadcast_to(np.arange(B), (M, 1, B)).copy()

    def loss(W):
        f = np.maximum(X @ W, 0) @ A
        return np.mean(np.log(np.exp(f).sum(-1)) - (f * onehot).sum(-1), axis=1)

    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape[1:]):
        e = np.zeros_like(W)
        e[(slice(None),) + idx] = 1e-6
        num[(slice(None),) + idx] = (loss(W + e) - loss(W - e)) / 2e-6
    W1 = W.copy()
    sd.sgd(W1, A, X, onehot, orders, B, 1, 0.1, lambda step, W: None)
    np.testing.assert_allclose(W1, W - 0.1 * num, atol=1e-8)


def _planted(flip=-0.5, error=0.0, control_error=0.65, seed=0, m=16, n_test=500):
    """Rows as run_task writes them: flip fractions C m^flip x lognormal(0.15) noise, test errors
    drawn from Binomial(n_test, error) per network."""
    rng = np.random.default_rng(seed)
    rows = []
    cells = [(w, 0, error) for w in WIDTHS] + [(WIDTHS[-1], 1, control_error)]
    for w, control, e in cells:
        q = {"test_error": rng.binomial(n_test, e, m) / n_test, "train_error": np.zeros(m),
             "test_error_init": np.full(m, 0.66), "steps_to_eps": np.full(m, 30.0),
             "flip_fraction": 1.4 * w**flip * np.exp(0.15 * rng.standard_normal(m))}
        rows += [{"width": w, "quantity": k, "value": float(v), "stderr": 0.0, "n_networks": m, "network": i,
                  "n_test": n_test, "eps": 0.02, "control": control}
                 for k, vals in q.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("flip", [-0.5, -0.45])    # -0.45: inside the margin (pre-asymptotic bend)
def test_true_data_pass_and_the_control_is_rejected(flip):
    v = sd.CLAIM.judge(_planted(flip=flip))
    assert v.status == "PASS", v.summary
    assert "false-fail rate" in v.summary and "power 0.99" in v.detectable


@pytest.mark.parametrize("kw", [dict(flip=-1.0), dict(flip=0.0), dict(flip=-1 / 3, m=64), dict(error=0.05)])
def test_planted_violations_fail(kw):
    v = sd.CLAIM.judge(_planted(**kw))
    assert not v.passed, (kw, v.summary)


def test_a_control_that_generalizes_is_not_rejected():
    v = sd.CLAIM.judge(_planted(control_error=0.0))
    assert v.passed and v.status == "INCONCLUSIVE", v.summary


def test_detectable_error_is_the_binomial_power_point():
    pooled = lambda count: pd.DataFrame({"value": [count / 8000], "n_test": [8000]})  # noqa: E731
    t = sd.error_test(pooled(0), 0.02, 1e-3)
    critical = int(binom.isf(1e-3, 8000, 0.02)) + 1
    assert sd.error_test(pooled(critical), 0.02, 1e-3)["rejected"]
    assert not sd.error_test(pooled(critical - 1), 0.02, 1e-3)["rejected"] and not t["rejected"]
    assert binom.sf(critical - 1, 8000, t["detectable"]) == pytest.approx(0.99, rel=1e-9)


def test_run_task_rows():
    grid = {**sd.GRIDS["quick"], "width": [32, 64, 128], "n_networks": 3, "chunk": 3, "steps": 20, "n_test": 100}
    sd.check(grid)
    tasks = sd.CLAIM.tasks(grid, 0)
    assert [t.params.get("control", 0) for t in tasks] == [0, 0, 0, 1] and tasks[-1].params["width"] == 128
    for t in (tasks[0], tasks[-1]):
        rows = pd.DataFrame(sd.run_task(Task(sd.CLAIM.id, "k", dict(t.params), task_seed(0, sd.CLAIM.id, t.key))))
        per = rows.pivot_table(index="network", columns="quantity", values="value")
        assert set(rows["quantity"]) == {"test_error", "train_error", "test_error_init", "flip_fraction",
                                         "steps_to_eps"}
        assert np.all((per["flip_fraction"] > 0) & (per["flip_fraction"] < 0.5))
        assert np.all(per["test_error_init"] > 0.2)
    assert per["test_error"].mean() > 0.3     # the shuffled-label control does not generalize


@pytest.mark.parametrize("key, value", [("width", [64, 256]), ("batch_size", 7), ("eps", 0.7), ("classes", 1), ("components", 0), ("d_in", 1),
                                        ("delta", 1.99), ("steps", 5), ("n_test", 20)])
def test_check_refuses(key, value):
    with pytest.raises(GridError, match=key):
        sd.check({**sd.GRIDS["quick"], key: value})
