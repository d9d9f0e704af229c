"""lottery-ticket: subset sums, the pruning construction and the verdict."""
import numpy as np
import pandas as pd
import pytest

from ntkcheck.claims import GridError
from ntkcheck.claims import lottery_ticket as lt

RNG = np.random.default_rng(np.random.SeedSequence(2025))


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_meet_in_the_middle_is_exact(n):
    x, z = RNG.uniform(-1, 1, n), RNG.uniform(-1.2, 1.2, 40)
    err, masks = lt.best_subsets(x, z)
    brute = np.abs(z[:, None] - lt.subset_sums(x)[None]).min(1)
    np.testing.assert_allclose(err, brute, rtol=0, atol=1e-14)   # sums associate differently
    chosen = ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
    np.testing.assert_allclose(np.abs(z - chosen @ x), err, atol=1e-14)


def test_best_subsets_bad_input():
    with pytest.raises(ValueError, match="x must be 1 to"):
        lt.best_subsets(np.zeros(0), [0.0])
    with pytest.raises(ValueError, match="x must be 1 to"):
        lt.best_subsets(np.zeros(lt.MAX_N + 1), [0.0])


def test_ticket_is_pensia_construction():
    """Layer pair of the ticket = sum_j P_kj relu(x_j) + Q_kj relu(-x_j) with P ~ W and Q ~ -W,
    each the best subset sum of its block's products a_i b_ki (Pensia et al. 2020, Lemma 3.2)."""
    d, n = 3, 6
    W = lt.target_network(RNG, d, 1)[0]
    A, B = RNG.uniform(-1, 1, (2 * n * d, d)), RNG.uniform(-1, 1, (d, 2 * n * d))
    mA, mB = lt.ticket_masks([W], [A, B], n)
    assert np.all(mA.sum(1) == 1) and np.array_equal(mA.argmax(1), np.repeat(np.arange(d), 2 * n))
    a = (A * mA).sum(1)
    for k in range(d):
        for j in range(d):
            block = np.arange(2 * n * j, 2 * n * (j + 1))
            for sign in (1.0, -1.0):
                idx = block[sign * a[block] > 0]
                coef = (np.abs(a[idx]) * B[k, idx] * mB[k, idx]).sum()
                best, _ = lt.best_subsets(np.abs(a[idx]) * B[k, idx], sign * W[k, j])
                assert abs(coef - sign * W[k, j]) == pytest.approx(best[0], abs=1e-14)
    X = RNG.standard_normal((50, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    manual = np.maximum(X @ (A * mA).T, 0) @ (B * mB).T
    np.testing.assert_allclose(lt.forward([A * mA, B * mB], X), manual)


def _planted(subset_beta=1.0, ticket_beta=0.4, gamma_d=0.5, gamma_l=0.5, control_beta=0.0, seed=0):
    """Rows as run_task writes them, log2 errors on the given laws plus N(0, 0.5^2) noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (14, 16, 18, 20, 22, 24):
        for i in range(16):
            for q, beta in (("subset_error", subset_beta), ("random_subset_error", control_beta)):
                rows.append({"quantity": q, "value": 2.0 ** (-beta * n + 2 + 0.5 * rng.standard_normal()), "n": n})
    for n in (4, 6, 8, 10):
        for d in (2, 4):
            for l in (1, 2):
                for i in range(4):
                    for q, beta in (("ticket_error", ticket_beta), ("random_mask_error", control_beta),
                                    ("unpruned_error", control_beta)):
                        log2 = -beta * n + gamma_d * np.log2(d) + gamma_l * np.log2(l) + 0.5 * rng.standard_normal()
                        rows.append({"quantity": q, "value": 2.0**log2, "n": n, "width": d, "depth": l})
    return pd.DataFrame(rows)


def test_true_law_passes_and_controls_are_rejected():
    v = lt.CLAIM.judge(_planted())
    assert v.status == "PASS", v.summary


@pytest.mark.parametrize("kw", [dict(subset_beta=0.3), dict(ticket_beta=0.02),
                                dict(gamma_d=2.0), dict(gamma_l=2.0)])
def test_planted_wrong_rates_fail(kw):
    v = lt.CLAIM.judge(_planted(**kw))
    assert not v.passed, (kw, v.summary)


def test_decaying_control_is_not_rejected():
    v = lt.CLAIM.judge(_planted(control_beta=0.8))
    assert v.passed and not v.negative_control_rejected and v.status == "INCONCLUSIVE"


def test_small_real_run_passes():
    grid = {**lt.GRIDS["quick"], "subset_n": [12, 14, 16, 18], "subset_trials": 8, "net_n": [4, 6, 8, 10],
            "net_width": [2, 3], "net_depth": [1, 2], "net_trials": 3, "net_inputs": 300}
    lt.check(grid)
    rows = []
    for task in lt.CLAIM.tasks(grid, 3):
        cell = {k: task.params[k] for k in ("width", "depth") if k in task.params}
        rows += [{**cell, **r} for r in lt.run_task(task)]
    v = lt.CLAIM.judge(pd.DataFrame(rows))
    assert v.status == "PASS", v.summary


@pytest.mark.parametrize("key, value", [("subset_n", [10, 12]), ("net_width", [2]), ("subset_n", [10, 20, 50]),
                                        ("subset_trials", 1)])
def test_check_refuses_small_grids(key, value):
    with pytest.raises(GridError, match=key):
        lt.check({**lt.GRIDS["quick"], key: value})


def test_figure(tmp_path):
    df = _planted()
    lt.figure(df, lt.CLAIM.judge(df), tmp_path / "lt.png")
    assert (tmp_path / "lt.png").stat().st_size > 0


def test_registered_with_key_numbers():
    from ntkcheck.claims import all_claims
    from ntkcheck.keynumbers import key_numbers

    assert all_claims(plugins=False)["lottery-ticket"] is lt.CLAIM
    v = lt.CLAIM.judge(_planted())
    keys = key_numbers(v)
    assert len(keys) == 4 and all(k.bound and k.lo <= k.value <= k.hi for k in keys)
    assert [k.theory for k in keys] == [-lt.BETA_MIN, -lt.BETA_NET_MIN, lt.GAMMA_MAX, lt.GAMMA_MAX]
    assert keys[0].value == pytest.approx(-1.0, abs=0.1)   # the planted subset-sum rate
    assert "false-fail rate" in v.summary and "probability" in v.detectable
