"""The four-point-vertex claim (a draft, not registered): its verdict on planted data, and one
task against the claim's own prediction."""
import numpy as np
import pandas as pd

from ntkcheck.claims import PARAM_COLUMNS
from ntkcheck.claims.four_point_vertex import CLAIM, entries

WIDTHS = (64, 256, 1024)


def _planted(scale: float = 1.0, seed: int = 0, rel_se: float = 0.005) -> pd.DataFrame:
    """Rows of a run whose measured n Cov = V (1 + 3/n) + noise at ``rel_se`` x |V|, with the
    stored prediction ``scale`` x V; the local-only control's prediction is 0.7 V."""
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
                         for q, v in (("vertex", scale * V), ("vertex_error", 1e-12), ("local_vertex", 0.7 * V))]
    return pd.DataFrame(rows)


def test_true_vertex_passes_and_controls_are_rejected():
    v = CLAIM.verdict(_planted())
    assert v.passed and v.negative_control_rejected, v.summary


def test_vertex_ten_percent_off_fails():
    v = CLAIM.verdict(_planted(scale=1.1))
    assert not v.passed, v.summary


def test_one_task_measures_its_prediction():
    """A quick-budget task at width 256 (tanh, depth 3): each measured n Cov within 5 standard
    errors plus an O(1/n) allowance of 10 |V| / n of the stored prediction."""
    grid = {**CLAIM.grid("quick"), "activation": ["tanh"], "depth": [3], "width": [256], "n_networks": 3000,
            "chunk": 3000}
    CLAIM.check({**grid, "width": [256, 512]})
    (task,) = CLAIM.tasks(grid, seed=1)
    df = pd.DataFrame([{**{k: task.params[k] for k in PARAM_COLUMNS if k in task.params}, **r}
                       for r in CLAIM.run_task(task)])
    wide = df.pivot_table(index="entry", columns="quantity", values="value")
    se = df[df.quantity == "n_cov"].set_index("entry")["stderr"]
    assert np.all(np.abs(wide["n_cov"] - wide["vertex"]) <= 5 * se + 10 * np.abs(wide["vertex"]) / 256)
