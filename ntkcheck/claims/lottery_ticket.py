"""lottery-ticket: pruning a random network, no training, finds a subnetwork that
approximates a target ReLU network, with logarithmic over-parameterization.

Theorem.  (a) Random subset sum (Lueker 1998, "Exponentially small bounds on the expected
optimum of the partition and subset sum problems", Random Structures & Algorithms 12,
Thm 2.4; as used by Pensia et al. 2020, Cor. 2.5): for X_1..X_n i.i.d. Uniform[-1, 1] and
n >= C log(2/eps), with probability >= 1 - eps every z in [-1, 1] is within eps of a subset
sum.  So the worst error ``sup_z min_S |z - sum_S X_i|`` decays like ``2^(-beta n)`` for
some beta > 0; the theorem does not pin C.  Counting pins the other side: 2^n sums cannot
come closer than 2^(-n) to every point of [-1, 1], so beta <= 1 (in bits per sample); the
heuristic (and the partition problem's Theta(sqrt(n) 2^-n) optimum, Karmarkar, Karp, Lueker
& Odlyzko 1986) is beta = 1 with a polynomial prefactor.
(b) Strong lottery ticket (Pensia, Rajput, Nagle, Vishwakarma & Papailiopoulos 2020,
"Optimal lottery tickets via SubsetSum: logarithmic over-parameterization is sufficient",
NeurIPS, Thm 1): a random network of depth 2l, width 2nd, weights i.i.d. Uniform[-1, 1],
contains a pruned subnetwork g with ``sup_{|x| <= 1} |f(x) - g(x)| <= eps`` for every
target ``f(x) = W_l relu(... relu(W_1 x))`` of width d with ``|W_t| <= 1`` (spectral),
once ``n = O(log(d l / eps))`` (Malach et al. 2020 proved it with polynomial width;
Ramanujan et al. 2020 observed such subnetworks).

Measurement.  (a) For ``subset_n`` samples, the best subset sum of every target on a grid of
``subset_targets`` points of [-1, 1], exact by meet in the middle (:func:`best_subsets`:
sorted half-sums, vectorised ``searchsorted``); the worst over the grid, per trial.
(b) Pensia et al.'s construction (sec. 3, Lemma 3.2): layer pair t of the random network
approximates ``z -> W_t z``.  The first layer keeps in block j (2n neurons) only the edges
from input j, so neuron i computes ``relu(a_i z_j)`` = ``a_i relu(z_j)`` (a_i > 0) or
``|a_i| relu(-z_j)`` (a_i < 0); for output k the second layer keeps the subset of the
block's neurons whose products ``a_i b_ki`` sum closest to ``W_kj`` (positive a_i) and
``-W_kj`` (negative a_i), since ``w z = w relu(z) - w relu(-z)``.  Its sup error over
``net_inputs`` random points of the unit sphere against n, the target width d and depth l.

Tested statement (each one-sided test at a quarter of the claim's level, Student t on the
least-squares fit over all trials, heteroscedasticity-robust standard errors): (a)
``log2(worst error) = c - beta n`` with ``beta >= 1/2``; (b) ``log2(sup error) = c - beta n
+ gamma_d log2 d + gamma_l log2 l`` with ``beta >= 1/5`` and ``gamma_d, gamma_l <= 1``: an
error exponentially small in n and at most polynomial in d l is the logarithmic law
``n = O(log(d l / eps))`` (the construction's bound is ``l sqrt(d)`` times the worst
weight's subset-sum error).  The theorems pin no constant (only beta > 0): the floors 1/2
and 1/5 are this check's thresholds, set below the measured rates (about 1 bit per sample,
and 0.3-0.47 bit per neuron at n <= 14 where the products ``a_i b_ki``, peaked at 0, are
still pre-asymptotic) and far above the controls' (<= 0).  The counting ceiling beta <= 1
is asymptotic: over finite n the grid's worst decays slightly faster (edge targets gain
most), so it is reported, not tested.  The sup over finitely many inputs underestimates the
sup over the ball; the grid's worst underestimates the sup over [-1, 1].

Negative controls (each must fail the same decay test): (a) a random subset of the samples
(not optimised) per target; (b) a random mask of the ticket's sparsity on the same random
network, and the random network without pruning.

Sources: Lueker 1998; Pensia et al. 2020 (NeurIPS); Malach, Yehudai, Shalev-Shwartz & Shamir
2020, "Proving the lottery ticket hypothesis: pruning is all you need" (ICML); Ramanujan,
Wortsman, Kembhavi, Farhadi & Rastegari 2020, "What's hidden in a randomly weighted neural
network?" (CVPR).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from ..seeding import network_rngs
from .. import labels
from . import CLAIM_FALSE_FAIL_RATE, Claim, GridError, KeyNumber, Task, Verdict, task_key

#: Bits per sample: the tested floor of the subset-sum decay exponent, and the counting ceiling.
BETA_MIN, BETA_MAX = 0.5, 1.0
#: Bits per neuron (n): the tested floor of the ticket's decay exponent.
BETA_NET_MIN = 0.2
#: Largest polynomial growth in d and in l the logarithmic law is tested with.
GAMMA_MAX = 1.0
#: Largest subset-sum instance (meet in the middle holds 2 x 2^(n/2) sums per target chunk).
MAX_N = 44
#: Work memory of one chunk of targets in :func:`best_subsets` (3 arrays of targets x 2^(n/2)).
TARGET_CHUNK_BYTES = 64 * 1024**2
#: The claim's one-sided tests (its level is split evenly), and each one's miss rate for ``detectable``.
N_TESTS, FALSE_PASS_RATE = 4, 1e-3

_BASE = {"subset_targets": 257, "net_inputs": 2000}
GRIDS = {
    "quick": {**_BASE, "subset_n": [14, 16, 18, 20, 22, 24], "subset_trials": 16, "net_n": [4, 6, 8, 10, 12],
              "net_width": [2, 4], "net_depth": [1, 2], "net_trials": 4},
    "standard": {**_BASE, "subset_n": [14, 18, 22, 26, 30], "subset_trials": 40,
                 "net_n": [4, 6, 8, 10, 12, 14], "net_width": [2, 4, 8], "net_depth": [1, 2, 3],
                 "net_trials": 10},
    "full": {**_BASE, "subset_n": [14, 18, 22, 26, 30, 34, 38, 40],
             "subset_trials": 100, "net_n": [4, 6, 8, 10, 12, 14, 16], "net_width": [2, 4, 8, 16],
             "net_depth": [1, 2, 3, 4], "net_trials": 40},
}
KEYS = {
    "subset_n": "samples of one random subset-sum instance (Uniform[-1, 1])",
    "subset_targets": "targets on an even grid of [-1, 1] for the worst subset-sum error",
    "subset_trials": "random instances per subset_n",
    "net_n": "random neurons per target weight and sign (the random network has width 2 n d)",
    "net_width": "target network's width d (= input dimension)",
    "net_depth": "target network's depth l (the random network has depth 2 l)",
    "net_trials": "random (target, network) pairs per cell",
    "net_inputs": "random points of the unit sphere the sup error is taken over",
}


# --- subset sums ------------------------------------------------------------

def subset_sums(x: np.ndarray) -> np.ndarray:
    """All 2^k subset sums of ``x`` (k,); entry i is the sum over the set bits of i."""
    s = np.zeros(1)
    for v in x:
        s = np.concatenate([s, s + v])
    return s


def best_subsets(x, targets) -> tuple[np.ndarray, np.ndarray]:
    """For each target, the smallest ``|target - sum_S x|`` over subsets S of ``x`` and S
    as a bit mask (bit i: x_i in S), exactly, by meet in the middle (Horowitz & Sahni
    1974): sums of each half, the second half sorted, for every first-half sum the nearest
    second-half sum by binary search; O(2^(n/2) n) per target instead of O(2^n)."""
    x, targets = np.asarray(x, dtype=float), np.atleast_1d(np.asarray(targets, dtype=float))
    if x.ndim != 1 or not 1 <= len(x) <= MAX_N:
        raise ValueError(f"x must be 1 to {MAX_N} numbers, got shape {x.shape}")
    h = len(x) // 2
    a, b = subset_sums(x[:h]), subset_sums(x[h:])
    order = np.argsort(b, kind="stable")
    b = b[order]
    chunk = max(1, TARGET_CHUNK_BYTES // (24 * len(a)))
    err, masks = np.empty(len(targets)), np.empty(len(targets), dtype=np.int64)
    for s in range(0, len(targets), chunk):
        q = targets[s:s + chunk, None] - a[None, :]          # what the second half must supply
        hi = np.clip(np.searchsorted(b, q), 1, len(b) - 1) if len(b) > 1 else np.zeros(q.shape, dtype=int)
        lo = np.maximum(hi - 1, 0)
        pick = np.where(np.abs(q - b[lo]) <= np.abs(q - b[hi]), lo, hi)
        e = np.abs(q - b[pick])
        best = np.argmin(e, axis=1)
        rows = np.arange(len(best))
        err[s:s + chunk] = e[rows, best]
        masks[s:s + chunk] = best | (order[pick[rows, best]].astype(np.int64) << h)
    return err, masks


def subset_trial(rng: np.random.Generator, n: int, n_targets: int) -> tuple[float, float]:
    """Worst error over the target grid of the best subset sum, and of one random subset per target."""
    x = rng.uniform(-1.0, 1.0, n)
    z = np.linspace(-1.0, 1.0, n_targets)
    err, _ = best_subsets(x, z)
    random_sets = rng.random((n_targets, n)) < 0.5
    return float(err.max()), float(np.abs(z - random_sets @ x).max())


# --- the network construction -------------------------------------------------

def target_network(rng: np.random.Generator, d: int, depth: int) -> list[np.ndarray]:
    """l weight matrices (d, d), entries Uniform[-1, 1] scaled to spectral norm 1."""
    out = []
    for _ in range(depth):
        W = rng.uniform(-1.0, 1.0, (d, d))
        out.append(W / np.linalg.norm(W, 2))
    return out


def forward(weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    """``W_L relu(... relu(W_1 x))`` for inputs X (P, d): (P, d_out)."""
    h = X
    for i, W in enumerate(weights):
        h = h @ W.T
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def ticket_masks(target: list[np.ndarray], random: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Pensia et al. 2020 (Lemma 3.2 per weight, Thm 1 per layer): masks of the random
    network's 2l layers, layer pair t approximating ``z -> W_t z``.  ``random[2t]`` is
    (2nd, d), ``random[2t+1]`` (d, 2nd); block j = neurons ``2n j .. 2n (j+1) - 1``."""
    masks = []
    for t, W in enumerate(target):
        A, B = random[2 * t], random[2 * t + 1]
        d = W.shape[1]
        mA, mB = np.zeros(A.shape, dtype=bool), np.zeros(B.shape, dtype=bool)
        for j in range(d):
            block = np.arange(2 * n * j, 2 * n * (j + 1))
            mA[block, j] = True
            a = A[block, j]
            for sign in (1.0, -1.0):       # relu(z_j) part (a > 0), relu(-z_j) part (a < 0)
                idx = block[sign * a > 0]
                if len(idx) == 0:
                    continue
                for k in range(W.shape[0]):
                    _, mask = best_subsets(np.abs(A[idx, j]) * B[k, idx], sign * W[k, j])
                    mB[k, idx] = (int(mask[0]) >> np.arange(len(idx))) & 1 == 1
        masks += [mA, mB]
    return masks


def network_trial(rng: np.random.Generator, n: int, d: int, depth: int, n_inputs: int) -> dict[str, float]:
    """Sup error over random unit-sphere inputs of the ticket, of a random mask of the ticket's
    sparsity (per layer) and of the unpruned random network, for one (target, network) pair.
    A target that is 0 on every input (a dead hidden layer, e.g. one with all entries < 0:
    probability 1/16 at d = 2) is redrawn: pruning would match
    it exactly and log2 of a zero error has no place in the fit."""
    X = rng.standard_normal((n_inputs, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    target = target_network(rng, d, depth)
    while not np.any(f := forward(target, X)):
        target = target_network(rng, d, depth)
    random = []
    for _ in range(depth):
        random += [rng.uniform(-1.0, 1.0, (2 * n * d, d)), rng.uniform(-1.0, 1.0, (d, 2 * n * d))]
    masks = ticket_masks(target, random, n)
    shuffled = [rng.permutation(m.ravel()).reshape(m.shape) for m in masks]
    # the random network is a relu network too: relu after every layer but the last
    sup = lambda ws: float(np.linalg.norm(forward(ws, X) - f, axis=1).max())  # noqa: E731
    return {"ticket_error": sup([R * m for R, m in zip(random, masks)]),
            "random_mask_error": sup([R * m for R, m in zip(random, shuffled)]),
            "unpruned_error": sup(random)}


# --- tasks -----------------------------------------------------------------

def check(grid: dict) -> None:
    for key in ("subset_n", "net_n"):
        if len(set(grid[key])) < 3:
            raise GridError(key, "needs >= 3 distinct values (a decay exponent with an error)")
    if max(grid["subset_n"]) > MAX_N:
        raise GridError("subset_n", f"meet in the middle is run up to {MAX_N} samples")
    for key in ("net_width", "net_depth"):
        if len(set(grid[key])) < 2:
            raise GridError(key, "needs >= 2 distinct values (the logarithmic law's d and l exponents)")
    if grid["subset_targets"] < 3:
        raise GridError("subset_targets", "needs >= 3 targets (both ends of [-1, 1] and between)")
    for key in ("subset_trials", "net_trials"):
        if grid[key] < 2:
            raise GridError(key, "needs >= 2 trials per cell")


def split(grid: dict) -> list[tuple[str, dict]]:
    """One task per subset size and one per (n, d, l) network cell."""
    out = [(task_key({"part": "subset", "n": n}),
            {"part": "subset", "n": n, "trials": grid["subset_trials"], "targets": grid["subset_targets"]})
           for n in grid["subset_n"]]
    out += [(task_key({"part": "network", "n": n, "width": d, "depth": l}),
             {"part": "network", "n": n, "width": d, "depth": l, "trials": grid["net_trials"],
              "inputs": grid["net_inputs"]})
            for n in grid["net_n"] for d in grid["net_width"] for l in grid["net_depth"]]
    return out


def run_task(task: Task) -> list[dict]:
    """Per trial (trial i from ``child(task.seed, i)``): the worst subset-sum errors, or the
    sup errors of the ticket and the controls."""
    p = task.params
    rows = []
    for i, rng in enumerate(network_rngs(task.seed, 0, p["trials"])):
        if p["part"] == "subset":
            best, rand = subset_trial(rng, p["n"], p["targets"])
            values = {"subset_error": best, "random_subset_error": rand}
        else:
            values = network_trial(rng, p["n"], p["width"], p["depth"], p["inputs"])
        rows += [{"quantity": q, "value": v, "part": p["part"], "n": p["n"], "trial": i} for q, v in values.items()]
    return rows


# --- verdict ---------------------------------------------------------------

def decay_fit(n, log2_error, width=None, depth=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Least squares ``log2 error = c - beta n [+ gamma_d log2 d + gamma_l log2 l]`` over all
    trials: coefficients ``(c, beta[, gamma_d, gamma_l])``, their HC3 covariance
    (heteroscedasticity-robust: the spread of log errors changes with n; MacKinnon & White
    1985) and the residual degrees of freedom."""
    cols = [np.ones(len(n)), -np.asarray(n, dtype=float)]
    if width is not None:
        cols += [np.log2(np.asarray(width, dtype=float)), np.log2(np.asarray(depth, dtype=float))]
    X, y = np.column_stack(cols), np.asarray(log2_error, dtype=float)
    xtx_inv = np.linalg.pinv(X.T @ X)
    coef = xtx_inv @ X.T @ y
    resid = y - X @ coef
    lever = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    meat = X.T @ (X * (resid / (1.0 - np.minimum(lever, 1 - 1e-12)))[:, None] ** 2)
    return coef, xtx_inv @ meat @ xtx_inv, len(y) - X.shape[1]


def bound_test(name: str, value: float, se: float, dof: int, bound: float, side: str, rate: float) -> dict:
    """One-sided Student t test that ``value`` is on the claimed ``side`` ("above" or "below") of
    ``bound``: it fails when the estimate is beyond the bound by more than t_{1-rate} se."""
    t = (value - bound) / se if se > 0 else (math.inf if value > bound else -math.inf if value < bound else 0.0)
    p = float(student_t.cdf(t, dof) if side == "above" else student_t.sf(t, dof))
    return {"test": name, "estimate": value, "se": se, "bound": bound, "side": side, "t": t, "p": p,
            "rate": rate, "dof": dof, "passed": p > rate,
            "detectable": float(student_t.isf(rate, dof) + norm.isf(FALSE_PASS_RATE)) * se}


def _rows(df, quantity: str) -> pd.DataFrame:
    g = df[df.quantity == quantity]
    if not np.all(g["value"] > 0):
        raise ValueError(f"{quantity}: every error must be > 0 (the fit is of log2 errors)")
    return g.assign(log2=np.log2(g["value"].astype(float)))


def _subset_tests(g, rate: float, name: str) -> list[dict]:
    coef, cov, dof = decay_fit(g["n"], g["log2"])
    se = math.sqrt(cov[1, 1])
    return [bound_test(f"{name} beta >= {BETA_MIN:g}", coef[1], se, dof, BETA_MIN, "above", rate)]


def _network_tests(g, rate: float, name: str) -> list[dict]:
    coef, cov, dof = decay_fit(g["n"], g["log2"], g["width"], g["depth"])
    se = np.sqrt(np.diag(cov))
    return [bound_test(f"{name} beta >= {BETA_NET_MIN:g}", coef[1], se[1], dof, BETA_NET_MIN, "above", rate),
            bound_test(f"{name} gamma_d <= {GAMMA_MAX:g}", coef[2], se[2], dof, GAMMA_MAX, "below", rate),
            bound_test(f"{name} gamma_l <= {GAMMA_MAX:g}", coef[3], se[3], dof, GAMMA_MAX, "below", rate)]


def verdict(df, false_fail_rate: float = CLAIM_FALSE_FAIL_RATE) -> Verdict:
    rate = false_fail_rate / N_TESTS
    tests = _subset_tests(_rows(df, "subset_error"), rate, "subset sum") \
        + _network_tests(_rows(df, "ticket_error"), rate, "ticket")
    passed = all(t["passed"] for t in tests)
    controls = {"random subset": _subset_tests(_rows(df, "random_subset_error"), false_fail_rate, "random subset")[0],
                **{c.replace("_", " "): _network_tests(_rows(df, f"{c}_error"), false_fail_rate, c.replace("_", " "))[0]
                   for c in ("random_mask", "unpruned")}}
    rejected = all(not t["passed"] for t in controls.values())
    table = pd.DataFrame(tests + [{**t, "test": f"control: {t['test']}"} for t in controls.values()])
    stats = {**{f"{t['test']}: estimate": t["estimate"] for t in tests},
             **{f"{t['test']}: se": t["se"] for t in tests}, **{f"{t['test']}: p": t["p"] for t in tests},
             **{f"control {k}: beta": t["estimate"] for k, t in controls.items()},
             **{f"control {k}: p": t["p"] for k, t in controls.items()}}
    summary = (f"{'pass' if passed else 'FAIL'}: "
               + "; ".join(f"{t['test']}: {t['estimate']:.3f} +- {t['se']:.3f} (p = {t['p']:.2g})" for t in tests)
               + f" (counting ceiling {BETA_MAX:g}, asymptotic, not tested); each test at {rate:.3g} "
               f"(the claim's false-fail rate {false_fail_rate:.3g}); controls "
               + ", ".join(f"{k} beta = {t['estimate']:.3f} {'rejected' if not t['passed'] else 'NOT rejected'}"
                           f" (p = {t['p']:.2g})" for k, t in controls.items()))
    return Verdict(
        claim="lottery-ticket", passed=passed, summary=summary, statistics=stats, false_fail_rate=false_fail_rate,
        detectable=("an exponent beyond its bound by more than "
                    + ", ".join(f"{t['detectable']:.3g} ({t['test']})" for t in tests)
                    + f", each detected with probability >= {1 - FALSE_PASS_RATE:g}"),
        negative_control=("a random subset per target (subset sums), a random mask of the ticket's sparsity and "
                          "the unpruned random network: each must fail the decay test beta >= its floor"),
        negative_control_rejected=rejected, table=table)


#: Key number of each tested coefficient: (quantity, its sign in the table's estimate).  The
#: decay rates are shown as the slope of log2 error per sample or neuron (-beta), so that
#: every key number is "at most" its theory value.
_KEYS = {"subset sum beta": (r"slope of $\log_2$ worst subset-sum error per sample", -1.0),
         "ticket beta": (r"slope of $\log_2$ ticket sup error per neuron $n$", -1.0),
         "ticket gamma_d": (r"exponent of the target width $d$ in the ticket error", 1.0),
         "ticket gamma_l": (r"exponent of the target depth $l$ in the ticket error", 1.0)}


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """The four tested coefficients with their one-sided tests' two-sided intervals (level
    ``1 - 2 rate``), each as an upper bound: ``-beta <= -floor``, ``gamma <= 1``."""
    out = []
    for _, r in v.table[~v.table["test"].str.startswith("control")].iterrows():
        quantity, sign = _KEYS[r["test"].rsplit(" ", 2)[0]]
        half = float(student_t.isf(r["rate"], r["dof"])) * r["se"]
        value, bound = sign * r["estimate"], sign * r["bound"]
        out.append(KeyNumber(cell=labels.cell("lottery-ticket"), quantity=quantity, name="coefficient",
                             value=value, lo=value - half, hi=value + half, level=1 - 2 * r["rate"],
                             theory=bound, bound=True))
    return tuple(out)


def figure(df, v: Verdict, path) -> None:
    """log2 error vs n (means over trials, 95 % intervals) with the fitted laws (dashed):
    the subset-sum worst error and its control; the ticket per (d, l) and its controls
    (averaged over the (d, l) cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .initcommon import Z95, save_figure

    def line(ax, g, label, **kw):
        s = g.groupby("n")["log2"].agg(["mean", "std", "count"])
        return ax.errorbar(s.index, s["mean"], yerr=Z95 * s["std"] / np.sqrt(s["count"]), marker="o", ms=3,
                           capsize=2, label=label, **kw)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    g = _rows(df, "subset_error")
    coef, _, _ = decay_fit(g["n"], g["log2"])
    line(left, g, "best subset", color="C0")
    n = np.unique(g["n"])
    left.plot(n, coef[0] - coef[1] * n, "--", color="C0", label=f"fit: $\\beta$ = {coef[1]:.2f} bit / sample")
    line(left, _rows(df, "random_subset_error"), "random subset (control)", color="k")
    g = _rows(df, "ticket_error")
    coef, _, _ = decay_fit(g["n"], g["log2"], g["width"], g["depth"])
    for i, ((d, l), h) in enumerate(g.groupby(["width", "depth"])):
        color = plt.cm.viridis(i / max(1, g.groupby(["width", "depth"]).ngroups - 1))
        line(right, h, f"ticket d={int(d)}, l={int(l)}", color=color)
        n = np.unique(h["n"])
        right.plot(n, coef[0] - coef[1] * n + coef[2] * np.log2(d) + coef[3] * np.log2(l), "--", color=color)
    for q, style in (("random_mask_error", ":"), ("unpruned_error", "-.")):
        line(right, _rows(df, q), q.replace("_error", "").replace("_", " ") + " (control)", color="k", ls=style)
    right.set_title(f"pruned network, sup error on the sphere (fit $\\beta$ = {coef[1]:.2f})", fontsize=9)
    left.set_title("worst best subset sum over $z \\in [-1, 1]$", fontsize=9)
    left.set_ylabel(r"$\log_2$ error")
    for ax in (left, right):
        ax.set_xlabel("$n$")
        ax.legend(fontsize=5, loc="lower left")
    fig.suptitle("lottery-ticket: exponential decay in $n$ (logarithmic over-parameterization)", fontsize=10)
    save_figure(fig, path)


CLAIM = Claim(
    id="lottery-ticket",
    title="pruning alone finds eps-tickets in random ReLU nets with n = O(log(d l / eps)) (subset sums)",
    statement=("The best subset sum of n Uniform[-1, 1] samples comes within 2^(-beta n) of every target in "
               "[-1, 1] (beta >= 1/2 bit per sample); pruning a random depth-2l, width-2nd network "
               "approximates any width-d, depth-l ReLU network with spectral norms <= 1 on the unit ball with an "
               "error exponentially small in n and at most polynomial in d l."),
    sources=("Lueker 1998, Thm 2.4", "Pensia et al. 2020, Thm 1, Lemma 3.2, Cor. 2.5",
             "Malach et al. 2020, Thm 2.1", "Ramanujan et al. 2020"),
    grids=GRIDS, run_task=run_task, verdict=verdict, split=split, check=check, figure=figure, keys=KEYS,
    key_numbers=key_numbers,
)
